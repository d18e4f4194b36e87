/* Where lockstep's message delays come from: a file of numbers (such as
 * the reference's go-delays.txt) or the project's own generator. Pure but
 * for reading the file.
 */
#ifndef CL_DELAYS_H
#define CL_DELAYS_H

#include <stdint.h>

#include "scenario.h"

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

#endif
