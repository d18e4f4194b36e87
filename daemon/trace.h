/* A server's trace buffer: the events the node core applies, in order, in
 * a bounded buffer that grows as they come (docs/TRACE.md). Pure: no I/O;
 * the clock is the caller's.
 *
 * Who may call: daemon/node.c appends (cl_trace_add, cl_trace_ones);
 * daemon/session.c creates, reads and frees. Peers are node indexes
 * (outbound for send and marker_send, inbound for recv and marker_recv).
 *
 * Bound: at most max_events events are kept. When one more would not
 * fit (or memory runs out), the event is counted instead: a last entry
 * is (or already was) a DROPPED entry at the first missing index,
 * whose count grows with every event lost. Indices go on either way, so
 * a reader sees exactly where the gap is.
 */
#ifndef CL_TRACE_H
#define CL_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h" /* CL_TEV_* */

/* Default and largest buffer, in events (TRACE's max_events). */
#define CL_TRACE_DEFAULT_EVENTS ((size_t)262144)
#define CL_TRACE_MAX_EVENTS ((size_t)16777216)

/* One kept event. recorded ids live in the buffer's id array, from
 * rec_off (nrec of them). For DROPPED, n is the count. */
typedef struct cl_trace_entry {
  uint64_t i;
  uint64_t seq;
  uint64_t snap;
  uint64_t t_us;
  int64_t n;
  int64_t tokens;
  size_t rec_off;
  uint32_t peer;
  uint32_t nrec;
  uint8_t ev; /* CL_TEV_* */
} cl_trace_entry_t;

typedef struct cl_trace cl_trace_t;

/* A trace that keeps at most max_events events (0: the default; more
 * than CL_TRACE_MAX_EVENTS is clamped), then a DROPPED entry, whose events are stamped by clock(ctx)
 * (microseconds; NULL: 0). NULL when out of memory. */
cl_trace_t *cl_trace_new(size_t max_events, uint64_t (*clock)(void *ctx),
                         void *ctx);
void cl_trace_free(cl_trace_t *t);

/* Append one event. nrec recorded ids go with a RECV: the returned
 * pointer has room for them (the caller fills it in, ascending); NULL
 * when nrec is 0 or the event was dropped. */
uint64_t *cl_trace_add(cl_trace_t *t, uint8_t ev, uint32_t peer, uint64_t seq,
                       int64_t n, uint64_t snap, int64_t tokens, size_t nrec);

/* count one-token messages on `peer` with seqs first, first + 1, ...
 * (ev SEND or RECV), the node's tokens being `tokens` before the first;
 * each RECV recorded by the nrec ids rec. What does not fit is counted as
 * dropped in one step. */
void cl_trace_ones(cl_trace_t *t, uint8_t ev, uint32_t peer, uint64_t first,
                   uint64_t count, int64_t tokens, size_t nrec,
                   const uint64_t *rec);

/* count events that could not be kept (out of memory on the way). */
void cl_trace_lose(cl_trace_t *t, uint64_t count);

/* Index the next event will get (events recorded and dropped so far). */
uint64_t cl_trace_next(const cl_trace_t *t);
/* Entries kept (a DROPPED entry counts as one). */
size_t cl_trace_count(const cl_trace_t *t);
/* Entry k (k < cl_trace_count), and its recorded ids. */
const cl_trace_entry_t *cl_trace_entry(const cl_trace_t *t, size_t k);
const uint64_t *cl_trace_ids(const cl_trace_t *t, const cl_trace_entry_t *e);
/* The first entry whose events are at index >= i or contain it (a
 * DROPPED one), or cl_trace_count if none. */
size_t cl_trace_find(const cl_trace_t *t, uint64_t i);

#endif
