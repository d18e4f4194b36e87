/* Tracing a set of servers through a replay backend (check/replay.h):
 * turning it on and off, and reading every server's events into a trace.
 * The same calls work on daemons and on in-process sessions.
 *
 * Who may call: the commands (run --trace, trace).
 */
#ifndef CL_COLLECT_H
#define CL_COLLECT_H

#include <stddef.h>
#include <stdint.h>

#include "replay.h"
#include "tracefile.h"

/* TRACE on (a new trace, room for max_events per server; 0: default) or
 * off on the n servers of be. Returns 0, or a CL_E code with err naming
 * the server that refused. */
int cl_collect_switch(const cl_backend_t *be, size_t n,
                      const char *const *ids, int on, uint64_t max_events,
                      char *err, size_t errsize);

/* Read the n servers' traces (ids: their ids, backend order) into *out.
 * progress, if not NULL, is called after each round with the events read
 * so far. Returns 0, or a CL_E code with err. */
int cl_collect_read(const cl_backend_t *be, size_t n, const char *const *ids,
                    void (*progress)(void *ctx, uint64_t events), void *ctx,
                    cl_tf_t **out, char *err, size_t errsize);

/* How many events the n servers made since their trace started (*made)
 * and kept (*kept; the rest were dropped), as of one moment per server.
 * Returns 0 or a CL_E code with err. */
int cl_collect_counts(const cl_backend_t *be, size_t n,
                      const char *const *ids, uint64_t *made, uint64_t *kept,
                      char *err, size_t errsize);

#endif
