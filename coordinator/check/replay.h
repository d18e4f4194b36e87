/* Running an event script against a set of servers, in either mode, then
 * collecting and checking every snapshot. The servers are behind a backend:
 * real daemons (backend/cluster.c) or in-process sessions (backend/sim.c).
 * Lockstep is a delivery policy on top of the same backend calls, not a
 * second engine.
 */
#ifndef CL_REPLAY_H
#define CL_REPLAY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "scenario.h"
#include "schedule.h"
#include "verify.h"
#include "wire.h"

/* What replay needs from a set of servers. Server arguments are topology
 * indexes. Every function returns 0 or a negative CL_E* code with a message
 * in err naming the server at fault (a lost server is CL_ELOST). */
typedef struct cl_backend {
  void *ctx;
  /* Send n control requests (SEND, SNAPSHOT, DELIVER, COLLECT, WATCH,
   * STATUS) to the given servers, concurrently where the backend can, and
   * wait for every reply. replies[i] becomes OK, ERROR, STATE or STATUS_R
   * (caller frees each with cl_msg_free). A request the server refuses is
   * an ERROR reply, not a failure of call. */
  int (*call)(void *ctx, size_t n, const uint32_t *servers,
              const cl_msg_t *reqs, cl_msg_t *replies, char *err,
              size_t errsize);
  /* Let real time pass (free-running ticks). In-process: nothing. */
  int (*sleep_ms)(void *ctx, uint64_t ms, char *err, size_t errsize);
  /* Number of servers that reported snapshot id complete (a COMPLETE or
   * the state itself, pushed because replay WATCHes every snapshot). */
  size_t (*completed)(void *ctx, uint64_t id);
  /* 1 if server i reported snapshot id complete. */
  int (*reported)(void *ctx, uint64_t id, size_t server);
  /* 1 and the LOCAL_STATE server i pushed for id moved into *out (caller
   * frees it), or 0 if none is held. */
  int (*take_state)(void *ctx, uint64_t id, size_t server, cl_msg_t *out);
  /* Stop tracking id (frees what is held for it). */
  void (*forget)(void *ctx, uint64_t id);
  /* Wait until every server reported every listed id complete, or
   * timeout_ms passes (CL_ETIMEOUT, err lists what is missing). */
  int (*wait_complete)(void *ctx, const uint64_t *ids, size_t n,
                       uint64_t timeout_ms, char *err, size_t errsize);
} cl_backend_t;

/* Where a run is, for a progress line: handed to cl_replay_opts_t.progress
 * after every event and every lockstep tick that delivers something. */
typedef struct cl_replay_progress {
  size_t events, nevents;       /* events issued, of the script's */
  uint64_t tick;                /* lockstep: the schedule's time; else 0 */
  size_t checked, nsnapshots;   /* snapshots collected and checked, of the
                                   script's */
  uint64_t messages;            /* peer messages sent so far */
} cl_replay_progress_t;

typedef struct cl_replay_opts {
  int lockstep;
  cl_delays_t *delays;  /* lockstep: borrowed */
  uint64_t tick_ms;     /* free-running: wall time per tick */
  uint64_t timeout_ms;  /* waiting for snapshots (and for tokens in flight) */
  const char *events_path; /* named in errors about an event ("PATH:LINE:
                              ..."); NULL: "events" */
  /* NULL, or called with where the run is; it runs on every event and
   * lockstep tick, so it must be cheap (throttle there, not here). */
  void (*progress)(void *ctx, const cl_replay_progress_t *p);
  void *progress_ctx;
  int keep_states;      /* keep each snapshot's local states in r->states */
  /* NULL, or the wall clock (UTC microseconds) that stamps each snapshot's
   * trigger and collection in r->trigger_us and r->done_us: the replay
   * itself reads no clock. */
  int64_t (*clock_us)(void);
} cl_replay_opts_t;

typedef struct cl_replay_result {
  size_t nsnapshots;
  size_t started;         /* snapshots whose SNAPSHOT request was sent (all
                             of them unless the run failed early) */
  uint64_t *ids;          /* [nsnapshots] daemon snapshot id of the k-th */
  cl_snap_t **snaps;      /* [nsnapshots] reference form, id = k */
  cl_verdict_t *verdicts; /* [nsnapshots] */
  uint8_t *collected;     /* [nsnapshots] 1 once collected and checked
                             (its verdict and snap are filled in); after a
                             failure also those completed whose states
                             were all in hand (see cl_replay_run) */
  size_t checked;         /* how many collected[] are set */
  cl_local_state_t **states; /* with keep_states: [nsnapshots], each NULL
                                (not collected) or the nservers local states
                                as the servers sent them, topology order */
  size_t nservers;        /* local states per entry of states */
  int64_t *trigger_us;    /* with clock_us: [nsnapshots] SNAPSHOT sent */
  int64_t *done_us;       /* with clock_us: [nsnapshots] collected (0: not) */
  uint64_t ticks;         /* lockstep: final time */
  uint64_t delays_used;   /* lockstep */
  uint64_t messages;      /* peer messages sent (from reply lists) */
  double seconds;         /* wall time of the replay */
  /* On failure, where it was, for a report with fields: the line in the
   * events file of the event that failed (0: not an event's failure) and
   * the server that refused or failed (borrowed from the topology; NULL:
   * no one server, or the backend's own failure on one, which the
   * backend names). */
  int fail_line;
  const char *fail_server;
} cl_replay_result_t;

/* Frees what r holds and zeroes it; safe on a zeroed or partly filled r. */
void cl_replay_result_free(cl_replay_result_t *r);

/* After the last event, lockstep keeps ticking at most this many ticks for
 * snapshots to complete before giving up. */
#define CL_REPLAY_MAX_TAIL_TICKS ((uint64_t)10000000)

/* Replay script on backend. Snapshot k (event order) gets id k; before the
 * first event every server is asked to WATCH ids 0..K-1, so each local
 * state comes to the coordinator as soon as it completes and no server's
 * retention bound can drop one that is waited for. Returns 0 when
 * everything ran and every snapshot was collected and checked (check
 * results are in r->verdicts: a failed check is not an error here); CL_E*
 * with err set when the run could not complete (refused send, lost server,
 * timeout, delay file exhausted). A refused send fails the run at once,
 * but in free-running mode a SEND refused for lack of tokens is tried
 * again every tick, until timeout_ms, while token messages are on their
 * way to its server (asked with STATUS). An error caused by an event
 * starts with "EVENTS_PATH:LINE: " (LINE also in r->fail_line). r is
 * zeroed first and may be partly filled on failure: always release it with
 * cl_replay_result_free.
 *
 * On failure, every started snapshot that every server reported complete
 * and whose states were all pushed already is still checked, without
 * asking the backend anything (after an interrupt it may not be asked), so
 * that r->collected holds every snapshot that finished. If a SEND was cut
 * off (its reply never came), what it sent is unknown and those late
 * checks leave out the ledger's amounts; conservation and the channels'
 * sequence numbers are still checked. */
int cl_replay_run(const cl_topology_t *topo, const cl_script_t *script,
                  const cl_backend_t *backend, const cl_replay_opts_t *opts,
                  cl_replay_result_t *r, char *err, size_t errsize);

#endif
