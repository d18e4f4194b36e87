/* A trace in memory (docs/TRACE.md): every server's events in (server, i)
 * order, read from the servers or from a JSON Lines file, written back as
 * JSON Lines, and linked: each receive to its send, each event to its
 * Lamport time, each snapshot to the events that record it. Pure: the
 * callers open the files.
 *
 * Who may call: the commands (run --trace, trace, diagram, explain) and
 * the renderers in this folder.
 */
#ifndef CL_TRACEFILE_H
#define CL_TRACEFILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "scenario.h" /* cl_diag_t */
#include "wire.h"     /* cl_trace_event_t, CL_TEV_* */

#define CL_TF_NONE ((size_t)-1)

typedef struct cl_tf_event {
  uint32_t server; /* index into servers */
  uint8_t ev;      /* CL_TEV_* */
  uint32_t peer;   /* index into servers; UINT32_MAX: none */
  uint64_t i, seq, snap, t_us;
  int64_t n, tokens;
  uint32_t nrec;
  uint64_t *rec;   /* owned */
  int line;        /* in the file it was read from (0: not read) */
  /* Filled in by cl_tf_link: */
  size_t match;    /* send <-> recv, marker_send <-> marker_recv, or NONE */
  uint64_t lamport;/* 1 + max(previous on the server, matching send) */
} cl_tf_event_t;

/* A message the trace shows: a token message or a marker, with its send
 * and its receive (either NONE: sent before the trace began, or not
 * received by its end; never both). */
/* Where a message with a missing end was, by its channel's messages in
 * the two servers' traces (traces of a running cluster start and end at
 * slightly different moments on each server). */
enum {
  CL_TF_INSIDE = 0,  /* both ends traced, or not received by the end */
  CL_TF_SENT_BEFORE, /* no send: sent before the sender's trace began */
  CL_TF_SENT_AFTER,  /* no send: sent after the sender's trace ended */
  CL_TF_RECV_BEFORE  /* no recv: received before the receiver's began */
};

typedef struct cl_tf_msg {
  uint32_t src, dst;
  uint8_t marker;    /* 0: a token message; 1: a marker of snap */
  uint8_t outside;   /* CL_TF_* above */
  uint64_t seq;      /* token: its seq; marker: token messages before it */
  int64_t n;         /* token: tokens */
  uint64_t snap;     /* marker */
  size_t send, recv; /* events, or NONE */
} cl_tf_msg_t;

typedef struct cl_tf {
  size_t nservers;
  char (*servers)[CL_ID_SIZE]; /* byte order */
  size_t nev;
  cl_tf_event_t *ev;           /* (server, i) order */
  size_t *first;               /* [nservers + 1]: server k's events are
                                  ev[first[k]] .. ev[first[k+1] - 1] */
  /* A gap: the first DROPPED event (ev CL_TEV_DROPPED, n its count; its
   * server and line), else gap_server is UINT32_MAX. */
  uint32_t gap_server;
  uint64_t gap_i, gap_count;
  int gap_line;
  size_t nsnaps;
  uint64_t *snaps;             /* snapshot ids met, ascending */
  uint64_t max_lamport;        /* after cl_tf_link */
  size_t nmsgs;                /* after cl_tf_link: every message, token */
  cl_tf_msg_t *msgs;           /* messages first, by (src, dst, seq), then
                                  markers by (src, dst, snap) */
} cl_tf_t;

void cl_tf_free(cl_tf_t *tf);

/* A trace from events read off the servers: nservers ids (any order) and
 * for each its events (cl_trace_event_t, in index order). Returns 0 and
 * *out, CL_EINVAL with err (a peer that is no server) or CL_ENOMEM. */
int cl_tf_from_events(size_t nservers, const char *const *ids,
                      const cl_trace_event_t *const *events,
                      const size_t *nevents, cl_tf_t **out, char *err,
                      size_t errsize);

/* Write tf as JSON Lines (docs/TRACE.md); dropped lines where the gap
 * is. Returns 0 or -1 (a write error: errno). */
int cl_tf_write(const cl_tf_t *tf, FILE *f);

/* Read a JSON Lines trace (name: for diagnostics). Each line is checked:
 * JSON, keys, types and ranges for its ev, order, indexes; what lines say
 * together (matching, FIFO, one record per snapshot and server) is
 * cl_tf_link's. Returns 0 and *out, or -1 with diag (name, line, what). */
int cl_tf_read(const char *name, const char *text, size_t len, cl_tf_t **out,
               cl_diag_t *diag);
int cl_tf_load(const char *path, cl_tf_t **out, cl_diag_t *diag);

/* Link the events (matching, messages, Lamport times), for a trace
 * without a gap. A receive whose send is not in the trace is a message
 * sent before the trace began: allowed when no later message of its
 * channel was sent in the trace (for a marker: when its sender did not
 * record that snapshot in the trace). Returns 0, or -1 with diag saying
 * where the trace is not whole (a gap, a receive of a message sent in the
 * trace but never, a message out of FIFO order). */
int cl_tf_link(cl_tf_t *tf, const char *name, cl_diag_t *diag);

/* Index of server id, or UINT32_MAX. */
uint32_t cl_tf_server(const cl_tf_t *tf, const char *id);

/* ---- one snapshot, as the trace shows it -------------------------------- */

/* Where snapshot `snap` happened on each server: its record and its done
 * (indexes into ev, or NONE). Its markers are messages (cl_tf_marker). */
typedef struct cl_tf_snap {
  uint64_t id;
  size_t *record; /* [nservers] */
  size_t *done;   /* [nservers] */
} cl_tf_snap_t;

/* 0 and *out filled (free with cl_tf_snap_free), or CL_ENOMEM. */
int cl_tf_snap(const cl_tf_t *tf, uint64_t snap, cl_tf_snap_t *out);
void cl_tf_snap_free(cl_tf_snap_t *s);

/* The marker of snap on channel src -> dst (its send and receive), or
 * NULL; a binary search of msgs. */
const cl_tf_msg_t *cl_tf_marker(const cl_tf_t *tf, uint32_t src, uint32_t dst,
                                uint64_t snap);

/* Why snapshot sn did or did not record token message m: the rule of
 * docs/TRACE.md applied to the trace. Returns 1 recorded, 0 not; why (may
 * be NULL) gets one sentence. */
int cl_tf_why(const cl_tf_t *tf, const cl_tf_snap_t *sn, const cl_tf_msg_t *m,
              char *why, size_t whysize);

/* 1 if the server's recv event `recv` lists snap in `recorded`. */
int cl_tf_listed(const cl_tf_event_t *recv, uint64_t snap);

/* The tokens server s held before its first event (0 with none). */
int64_t cl_tf_initial_tokens(const cl_tf_t *tf, size_t s);

/* "send", "recv", ... */
const char *cl_tf_ev_name(uint8_t ev);

#endif
