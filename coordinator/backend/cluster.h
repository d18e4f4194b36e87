/* The coordinator's side of the control protocol: one TCP connection per
 * daemon, all on one uv_loop, behind a synchronous-looking API. Every call
 * runs the loop (UV_RUN_ONCE) until it is done, a deadline passes, a server
 * is lost or the caller's guard says stop, so other handles on the same loop
 * (the launcher's processes, signal watchers) keep being served meanwhile.
 *
 * Who may call: clsnap's commands (cmd/) and the backend modules built on
 * it (cluster_setup.c, local.c). Not re-entrant: one call at a time per
 * cluster.
 *
 * What it tracks: replies matched to requests by `req` (they may arrive in
 * any order); COMPLETE notifications per snapshot id as a set of servers,
 * and LOCAL_STATE notifications (for ids the connection WATCHes) the same
 * way plus the state itself until taken;
 * NOTICE notifications are printed to stderr ("notice from N3: ...");
 * a lost connection is remembered ("server N3 lost (connection closed)") and
 * makes every pending and later call to that server fail at once with
 * CL_ELOST.
 *
 * Ownership: the cluster copies the endpoints; replies handed back are owned
 * by the caller (cl_msg_free each). cl_cluster_free closes every handle it
 * opened and runs the loop until they are closed; the loop stays the
 * caller's.
 */
#ifndef CL_CLUSTER_H
#define CL_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "secret.h"
#include "replay.h"
#include "util.h"
#include "wire.h"

/* One daemon to talk to. */
typedef struct cl_endpoint {
  char id[CL_ID_SIZE];
  char addr[CL_ADDR_SIZE]; /* "host:port" */
} cl_endpoint_t;

typedef struct cl_cluster cl_cluster_t;

/* Bytes of one reply frame plus what is buffered behind it. Local states of
 * long load runs can hold many recorded messages, hence more than the
 * daemon-side default. */
#define CL_CLUSTER_DECODER_CAP (64u << 20)
/* Snapshot ids whose COMPLETE notifications are tracked at once; later ids
 * are not tracked (waiting for them times out) until some are forgotten. */
#define CL_CLUSTER_MAX_TRACKED 65536
/* Requests in one call. */
#define CL_CLUSTER_MAX_CALL 65536

/* Called after every loop turn while the cluster waits. Return 0 to go on,
 * or a negative CL_E* code with a message in err to abort the wait (a daemon
 * process died, the user pressed Ctrl-C). */
typedef int (*cl_guard_fn)(void *ctx, char *err, size_t errsize);

/* n endpoints (ids distinct). Index i in every call is endpoint i. Returns
 * NULL on allocation failure or n == 0. The name sent in CLIENT is
 * "clsnap-<pid>". */
cl_cluster_t *cl_cluster_new(uv_loop_t *loop, const cl_endpoint_t *eps,
                             size_t n);
void cl_cluster_free(cl_cluster_t *c);

size_t cl_cluster_size(const cl_cluster_t *c);
const char *cl_cluster_id(const cl_cluster_t *c, size_t i);
const char *cl_cluster_addr(const cl_cluster_t *c, size_t i);
/* 1 if connection i is up. */
int cl_cluster_up(const cl_cluster_t *c, size_t i);
/* Why connection i is not up ("" if it is). */
const char *cl_cluster_why(const cl_cluster_t *c, size_t i);
/* The id of the server the last failed call, connect, sleep or wait was
 * about (lost, not connected, no reply in time), for an error report that
 * names it apart from the message; NULL when it was about no one server.
 * Code built on the cluster that fails because of server i's reply says
 * so with cl_cluster_blame. */
const char *cl_cluster_culprit(const cl_cluster_t *c);
void cl_cluster_blame(cl_cluster_t *c, size_t i);

void cl_cluster_set_guard(cl_cluster_t *c, cl_guard_fn fn, void *ctx);
/* Deadline of each backend call (default 30 s). */
void cl_cluster_set_call_timeout(cl_cluster_t *c, uint64_t ms);
/* 0: stop printing NOTICE lines (e.g. while shutting servers down). */
void cl_cluster_set_notices(cl_cluster_t *c, int on);
/* The secret to prove to every server (borrowed; NULL or len 0: none).
 * Set before cl_cluster_connect. */
void cl_cluster_set_secret(cl_cluster_t *c, const cl_secret_t *secret);
/* fn (or NULL) is called right before a NOTICE line is printed, so that the
 * caller can first erase a status line it keeps on the terminal. */
void cl_cluster_set_before_notice(cl_cluster_t *c, void (*fn)(void));

/* Connect to every endpoint and send CLIENT first. Returns 0 when all are
 * up; otherwise, with err naming the first server that failed (the
 * culprit), CL_ETIMEOUT if its connect did not finish in time, CL_ELOST if
 * it failed, or the guard's code. Servers that did connect stay up either way,
 * so a caller that tolerates missing servers can go on (cl_cluster_up). */
int cl_cluster_connect(cl_cluster_t *c, uint64_t timeout_ms, char *err,
                       size_t errsize);

/* Send n requests (reqs[i] to server servers[i]; their req fields are
 * replaced by fresh ids) and wait for every reply. replies[i] is OK, ERROR,
 * STATE or STATUS_R; a refusal is an ERROR reply, not a failure. Returns 0;
 * CL_ELOST (a server is or gets lost), CL_ETIMEOUT, CL_EINVAL (bad index,
 * unencodable request), the guard's code. On failure every reply is freed
 * and zeroed. */
int cl_cluster_call(cl_cluster_t *c, size_t n, const uint32_t *servers,
                    const cl_msg_t *reqs, cl_msg_t *replies,
                    uint64_t timeout_ms, char *err, size_t errsize);

/* The request req to every server: as cl_cluster_call, or, if tolerant,
 * as cl_cluster_call_each. On success *replies is a new array of one reply
 * per server (free it with cl_cluster_free_replies). Also CL_ENOMEM. */
int cl_cluster_call_all(cl_cluster_t *c, const cl_msg_t *req,
                        uint64_t timeout_ms, int tolerant, cl_msg_t **replies,
                        char *err, size_t errsize);
/* Free the replies of cl_cluster_call_all (NULL is fine). */
void cl_cluster_free_replies(const cl_cluster_t *c, cl_msg_t *replies);

/* Like cl_cluster_call, but a server that is lost, not connected or does
 * not answer in time only leaves its reply zeroed (type 0); the others are
 * still waited for. Returns 0, CL_EINVAL or the guard's code. */
int cl_cluster_call_each(cl_cluster_t *c, size_t n, const uint32_t *servers,
                         const cl_msg_t *reqs, cl_msg_t *replies,
                         uint64_t timeout_ms, char *err, size_t errsize);

/* Run the loop for ms milliseconds. CL_ELOST if any server is lost, or the
 * guard's code. */
int cl_cluster_sleep(cl_cluster_t *c, uint64_t ms, char *err, size_t errsize);

/* Servers that reported snapshot id complete. */
size_t cl_cluster_completed(const cl_cluster_t *c, uint64_t id);
/* 1 if server i reported snapshot id complete. */
int cl_cluster_has_completed(const cl_cluster_t *c, uint64_t id, size_t i);
/* 1 and the LOCAL_STATE server i pushed for snapshot id moved into *out
 * (the caller frees it with cl_msg_free), or 0 if none is held (not pushed
 * yet, already taken, or the server sent COMPLETE instead). */
int cl_cluster_take_state(cl_cluster_t *c, uint64_t id, size_t i,
                          cl_msg_t *out);
/* Stop tracking snapshot id (frees its entry and any state not taken);
 * a COMPLETE or LOCAL_STATE of it that comes later is dropped, as long
 * as it is among the last CL_CLUSTER_FORGOTTEN ids forgotten. */
#define CL_CLUSTER_FORGOTTEN 1024
void cl_cluster_forget(cl_cluster_t *c, uint64_t id);

/* Wait until every server reported every listed id complete. CL_ETIMEOUT
 * (err lists which servers miss which snapshot), CL_ELOST (a server that
 * has not completed one of them is lost), the guard's code. */
int cl_cluster_wait_complete(cl_cluster_t *c, const uint64_t *ids, size_t n,
                             uint64_t timeout_ms, char *err, size_t errsize);

/* The replay backend over this cluster (ctx is c, borrowed): call uses the
 * call timeout, sleep_ms runs the loop, wait_complete as above. Backend
 * server indexes are endpoint indexes, so create the cluster in topology
 * order. */
cl_backend_t cl_cluster_backend(cl_cluster_t *c);

#endif
