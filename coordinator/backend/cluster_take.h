/* Taking one snapshot on a cluster of daemons, from its start to the
 * servers' states in hand, and giving one up: what `clsnap snapshot`,
 * `clsnap collect` and `clsnap checkpoint` share. Prints nothing: failures
 * come back as a code, a text and the server at fault.
 *
 * Who may call: the commands, on a connected cluster.
 */
#ifndef CL_CLUSTER_TAKE_H
#define CL_CLUSTER_TAKE_H

#include <stddef.h>
#include <stdint.h>

#include "cluster.h"

/* One snapshot as far as it got. */
typedef struct cl_take {
  uint64_t id;              /* its id; 0 until one was reserved */
  int sent;                 /* SNAPSHOT was sent: it may run somewhere */
  int started;              /* the initiator accepted SNAPSHOT */
  int64_t trigger_us;       /* UTC, when it was triggered (NEXT_ID sent) */
  int64_t completion_us;    /* UTC, when every state was in hand; 0 if not */
  cl_msg_t *reps;           /* [n] the replies holding the states (owned) */
  cl_local_state_t *states; /* [n] borrowed from reps; NULL until all came */
  int culprit;              /* the server at fault, or -1 */
} cl_take_t;

/* A fresh id from server `at` (NEXT_ID), every server asked to push that
 * snapshot's state here (WATCH), SNAPSHOT at `at`, the wait for every
 * server to complete it, and its states gathered. Each step is bounded
 * by timeout_ms. Returns 0 (t->states holds one state per server, in
 * cluster order); CL_ETIMEOUT (it did not complete in time; err names the
 * servers it waits for); or another CL_E* code (a refusal: the server's
 * code) with err saying why and t->culprit the server. Free t with
 * cl_cluster_take_free either way. */
int cl_cluster_take(cl_cluster_t *c, size_t at, uint64_t timeout_ms,
                    cl_take_t *t, char *err, size_t errsize);

/* The states of snapshot id from every server into t: those pushed
 * (WATCH) are here already, the others are asked for with COLLECT (they
 * stay kept on the servers). Returns 0, or a CL_E* code with err naming
 * the first server that has none (t->culprit). */
int cl_cluster_take_gather(cl_cluster_t *c, uint64_t id, uint64_t timeout_ms,
                           cl_take_t *t, char *err, size_t errsize);

/* DROP snapshot id on every server that has not reported it complete
 * (started: SNAPSHOT was sent, so its markers may still come; 0: only the
 * servers' WATCH of it ends), waiting timeout_ms at most for answers (a
 * stopped server handles it when it runs again), and stop tracking it.
 * Returns how many answered OK. */
size_t cl_cluster_take_drop(cl_cluster_t *c, uint64_t id, int started,
                            uint64_t timeout_ms);

/* Free what t holds (n: the cluster's size) and zero it. */
void cl_cluster_take_free(cl_take_t *t, size_t n);

#endif
