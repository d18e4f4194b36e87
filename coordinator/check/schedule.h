/* Lockstep scheduling: the reference simulator's clock and delivery rules,
 * as a pure module. The coordinator tells it every message sent (in sending
 * order); it draws one delay per send and, at each tick, says which
 * messages are delivered, following ../shared/conformance/README.md:
 *
 * - time starts at 0; a message sent at time t is due at t + 1 + delay;
 * - a tick advances time by one, then visits source servers in id order
 *   and, for each, its outbound links in destination id order, delivering
 *   the head of the first link whose head is due: at most one delivery per
 *   source server per tick;
 * - deliveries of one tick are decided at its start: handling them can only
 *   enqueue messages due at a later tick, and never changes a link's head.
 *
 * The module never talks to servers; replay.c drives it.
 */
#ifndef CL_SCHEDULE_H
#define CL_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "scenario.h"

/* ---- delay sources ------------------------------------------------------ */

typedef struct cl_delays cl_delays_t;

/* Delays read from a file, one non-negative integer per line. Errors name
 * the line. */
int cl_delays_load(const char *path, cl_delays_t **out, cl_diag_t *diag);
/* The project's own generator (splitmix64), delays uniform in
 * [0, max_delay]. Same seed, same stream, on every platform. */
cl_delays_t *cl_delays_seeded(uint64_t seed, uint32_t max_delay);
void cl_delays_free(cl_delays_t *d);
/* Next delay: 0 and *out, or CL_ENOENT when a file runs out. */
int cl_delays_next(cl_delays_t *d, uint32_t *out);
/* Delays drawn so far. */
uint64_t cl_delays_used(const cl_delays_t *d);
/* Values a file holds (0 for a generator, which never runs out). */
uint64_t cl_delays_available(const cl_delays_t *d);
/* limits of a delay file. A line holds one integer in
 * [0, CL_DELAY_MAX_VALUE], optionally surrounded by blanks; blank lines are
 * rejected (a final newline is fine); at most CL_DELAYS_MAX_COUNT lines.
 * The generator draws next() % (max_delay + 1) from splitmix64 seeded with
 * seed (the modulo bias is below 2^-32 for any 32-bit max_delay). */
#define CL_DELAY_MAX_VALUE 1000000u
#define CL_DELAYS_MAX_COUNT ((uint64_t)1 << 24)

/* ---- the scheduler ---------------------------------------------------- */

typedef struct cl_sched_msg {
  uint8_t kind;   /* CL_MSG_TOKEN or CL_MSG_MARKER */
  uint64_t value; /* TOKEN: n; MARKER: snapshot id */
  uint64_t seq;   /* TOKEN: channel sequence number */
} cl_sched_msg_t;

typedef struct cl_delivery {
  uint32_t src, dst; /* topology indexes */
  cl_sched_msg_t msg;
} cl_delivery_t;

typedef struct cl_sched cl_sched_t;

/* The scheduler borrows topo and delays; both must outlive it. */
cl_sched_t *cl_sched_new(const cl_topology_t *topo, cl_delays_t *delays);
void cl_sched_free(cl_sched_t *s);

uint64_t cl_sched_now(const cl_sched_t *s);
/* Messages sent and not yet delivered. */
size_t cl_sched_in_flight(const cl_sched_t *s);

/* src sent msg to dst now: draw a delay and enqueue. CL_ENOPEER (no such
 * link), CL_ENOENT (the delay source ran out). */
int cl_sched_sent(cl_sched_t *s, uint32_t src, uint32_t dst,
                  const cl_sched_msg_t *msg);

/* Advance time by one and take this tick's deliveries, in the order they
 * must be handled (source id order). Writes at most nservers entries into
 * out (size it topo->nservers); returns the count. */
size_t cl_sched_tick(cl_sched_t *s, cl_delivery_t *out);

/* at most CL_SCHED_MAX_IN_FLIGHT messages may be in flight;
 * cl_sched_sent returns CL_EFULL beyond that (and CL_ENOMEM when memory runs
 * out); neither draws a delay. */
#define CL_SCHED_MAX_IN_FLIGHT ((size_t)1 << 24)

/* advance time by up to max ticks in which cl_sched_tick would
 * deliver nothing (all of them when nothing is in flight). Returns the
 * number of ticks skipped; the next tick after a short skip delivers. */
uint64_t cl_sched_idle(cl_sched_t *s, uint64_t max);

#endif
