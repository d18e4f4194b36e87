/* What the daemons said they sent: the amount of every token message, per
 * channel and sequence number, for checking that recorded messages carry
 * what was sent. Pure.
 */
#ifndef CL_LEDGER_H
#define CL_LEDGER_H

#include <stdint.h>

#include "scenario.h"

/* Amounts of the token messages sent on each channel, by sequence number,
 * as reported by the daemons when they sent them. Optional input to
 * cl_verify. */
typedef struct cl_ledger cl_ledger_t;
cl_ledger_t *cl_ledger_new(const cl_topology_t *topo);
void cl_ledger_free(cl_ledger_t *l);
/* Record that src sent token message seq (n tokens) to dst. CL_ENOPEER if
 * the link does not exist, CL_ESEQ if seq is not the next on that channel. */
int cl_ledger_add(cl_ledger_t *l, uint32_t src, uint32_t dst, uint64_t seq,
                  int64_t n);
/* the ledger borrows topo (it must outlive the ledger) and holds at
 * most CL_LEDGER_MAX_MSGS messages in all; cl_ledger_add returns CL_EFULL
 * beyond that and CL_ENOMEM when memory runs out. */
#define CL_LEDGER_MAX_MSGS ((uint64_t)1 << 26)
/* amount of token message seq on src->dst: 0 and *n, or CL_ENOENT
 * (never sent) / CL_ENOPEER (no such link). */
int cl_ledger_get(const cl_ledger_t *l, uint32_t src, uint32_t dst,
                  uint64_t seq, int64_t *n);
/* The topology the ledger was made for (its server indexes). */
const cl_topology_t *cl_ledger_topology(const cl_ledger_t *l);

#endif
