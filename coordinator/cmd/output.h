/* The ways clsnap's commands print a checked global snapshot (text, .snap
 * files, JSON), and durations. Only the clsnap executable uses it; unlike
 * the library modules it prints, because printing is its job.
 */
#ifndef CL_OUTPUT_H
#define CL_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "scenario.h"
#include "verify.h"

/* Print the .snap text (unless quiet), the verdict line and, on failure, one
 * indented line per problem. */
void cl_output_checked(FILE *f, uint64_t id, const cl_snap_t *snap,
                       const cl_verdict_t *v, int quiet);

/* The JSON object of one checked snapshot, the same wherever it appears
 * (run's "snapshots", snapshot, collect): id, ok, conserved,
 * channels_exact, complete, tokens{expected,servers,channels},
 * servers[{id,tokens}], messages[{src,dst,tokens}], problems[]; and, when
 * the nstates local states it was checked from are given (states not
 * NULL), channels[{src,dst,sent,received,recorded[[seq,count,n]...]}]
 * copied from them, not from the verdict (README.md, "JSON output";
 * docs/clsnap.schema.json). servers comes from snap (sorted by id), or
 * from the states (in their order) when snap is NULL. New reference. */
json_t *cl_json_checked(uint64_t id, const cl_snap_t *snap,
                        const cl_verdict_t *v, const cl_local_state_t *states,
                        size_t nstates);

/* Print a JSON value on stdout (indented, newline). Takes the reference. */
void cl_json_print(json_t *j);

/* Before any work: create dir (and parents) if needed and check that it is
 * a directory clsnap can write in; option ("--snap-dir") names it in the
 * complaint. 0, or -1 after printing why. */
int cl_output_dir(const char *option, const char *dir);

/* Write dir/<id>.snap into a dir cl_output_dir has made and checked.
 * Returns 0, or -1 after printing why. */
int cl_output_snap_file(const char *dir, uint64_t id, const cl_snap_t *snap);

/* Snapshot ids for a person: sorted, runs of consecutive ids as
 * "FIRST..LAST", ranges joined by ", ", at most max_ranges of them and then
 * ", ... (K more)" with K the ids not shown ("1000001..1000003, 1000007").
 * ids is not changed. Cut short (with the same tail) where buf ends; a buf
 * of 64 + 44 * max_ranges bytes always holds all max_ranges. */
void cl_output_id_ranges(const uint64_t *ids, size_t n, size_t max_ranges,
                         char *buf, size_t size);

/* "12.3 ms" or "4.56 s". */
void cl_output_duration(double seconds, char *buf, size_t size);

#endif
