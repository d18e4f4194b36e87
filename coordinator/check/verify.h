/* Checking a global snapshot, and turning collected local states into the
 * reference's global-snapshot form. Pure: no I/O.
 *
 * The two checks (docs/DESIGN.md, "Checking a snapshot"):
 * 1. Conservation: tokens on servers + tokens in recorded messages equal the
 *    system's total.
 * 2. Exact channel state: for every channel S->D the messages D recorded from
 *    S are exactly those with sequence numbers in (received by D before D
 *    recorded, sent by S before S recorded], in order; and, when a ledger of
 *    what was sent is given, each carries the amount that was sent.
 */
#ifndef CL_VERIFY_H
#define CL_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "ledger.h"
#include "scenario.h"
#include "wire.h"

#define CL_VERIFY_MAX_PROBLEMS 16

typedef struct cl_verdict {
  int ok;             /* conserved && channels_exact && complete */
  int complete;       /* one state per server, channel sets consistent */
  int conserved;
  int channels_exact;
  int64_t expected_tokens;
  int64_t server_tokens;  /* sum over servers */
  int64_t channel_tokens; /* sum over recorded messages */
  size_t nrecorded;       /* recorded messages (runs counted out, saturating) */
  size_t nproblems;       /* total found; the first CL_VERIFY_MAX_PROBLEMS
                             are described in problems[] */
  char problems[CL_VERIFY_MAX_PROBLEMS][256]; /* "channel N1->N2: ..." */
  size_t nchannels;       /* channels checked (for cl_verify_line) */
} cl_verdict_t;

/* Check one global snapshot made of nstates local states (any order).
 * topo may be NULL: the channel set is then taken from the states
 * themselves (each server's sent/received lists) and the expected total is
 * the sum of their initial_tokens. With a topology, every server must appear
 * exactly once and every channel must match a link. ledger may be NULL. */
void cl_verify(const cl_topology_t *topo, const cl_ledger_t *ledger,
               const cl_local_state_t *states, size_t nstates,
               cl_verdict_t *v);

/* The reference form of a global snapshot: servers sorted by id, recorded
 * messages grouped by destination (destinations in id order), each group in
 * arrival order. `id` is the id to print (the event-order number in run
 * mode); runs of recorded messages are written out message by message.
 * Returns 0, CL_ETOOBIG (more than CL_GLOBAL_SNAP_MSGS_MAX messages: a run
 * of a few bytes on the wire may claim billions) or CL_ENOMEM. */
#define CL_GLOBAL_SNAP_MSGS_MAX ((size_t)1 << 20)
int cl_verify_global_snap(uint64_t id, const cl_local_state_t *states,
                          size_t nstates, cl_snap_t **out);

/* One line: "snapshot 3: ok (tokens 40 = 36 on servers + 4 in 2 messages,
 * 18 channels exact)" or "snapshot 3: FAILED (...first problem...)". */
void cl_verify_line(uint64_t id, const cl_verdict_t *v, char *buf, size_t size);

#endif
