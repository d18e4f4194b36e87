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

#include "delays.h"
#include "scenario.h"

typedef struct cl_schedule_msg {
  uint8_t kind;   /* CL_MSG_TOKEN or CL_MSG_MARKER */
  uint64_t value; /* TOKEN: n; MARKER: snapshot id */
  uint64_t seq;   /* TOKEN: channel sequence number */
} cl_schedule_msg_t;

typedef struct cl_delivery {
  uint32_t src, dst; /* topology indexes */
  cl_schedule_msg_t msg;
} cl_delivery_t;

typedef struct cl_schedule cl_schedule_t;

/* The scheduler borrows topo and delays; both must outlive it. */
cl_schedule_t *cl_schedule_new(const cl_topology_t *topo, cl_delays_t *delays);
void cl_schedule_free(cl_schedule_t *s);

uint64_t cl_schedule_now(const cl_schedule_t *s);
/* Messages sent and not yet delivered. */
size_t cl_schedule_in_flight(const cl_schedule_t *s);

/* src sent msg to dst now: draw a delay and enqueue. CL_ENOPEER (no such
 * link), CL_ENOENT (the delay source ran out). */
int cl_schedule_sent(cl_schedule_t *s, uint32_t src, uint32_t dst,
                     const cl_schedule_msg_t *msg);

/* Advance time by one and take this tick's deliveries, in the order they
 * must be handled (source id order). Writes at most nservers entries into
 * out (size it topo->nservers); returns the count. */
size_t cl_schedule_tick(cl_schedule_t *s, cl_delivery_t *out);

/* at most CL_SCHEDULE_MAX_IN_FLIGHT messages may be in flight;
 * cl_schedule_sent returns CL_EFULL beyond that (and CL_ENOMEM when memory runs
 * out); neither draws a delay. */
#define CL_SCHEDULE_MAX_IN_FLIGHT ((size_t)1 << 24)

/* advance time by up to max ticks in which cl_schedule_tick would
 * deliver nothing (all of them when nothing is in flight). Returns the
 * number of ticks skipped; the next tick after a short skip delivers. */
uint64_t cl_schedule_idle(cl_schedule_t *s, uint64_t max);

#endif
