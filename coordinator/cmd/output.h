/* clsnap's command-line plumbing: option parsing, usage texts, error
 * messages, and the shared ways of printing a checked global snapshot (text,
 * .snap files, JSON). Only the clsnap executable uses it; unlike the library
 * modules it prints, because printing is its job.
 */
#ifndef CL_OUTPUT_H
#define CL_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "scenario.h"
#include "verify.h"

/* From meson's project(version), so there is one place to bump it. */
#ifndef CL_VERSION
#define CL_VERSION "unknown"
#endif

enum { CL_EXIT_OK = 0, CL_EXIT_FAIL = 1, CL_EXIT_USAGE = 2, CL_EXIT_INTR = 130 };

/* "clsnap: <message>\n" on stderr. */
void cl_errf(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* ---- options ------------------------------------------------------------ */

/* One long option. Flags (arg == 0) set *flag to 1; options with an
 * argument store a pointer into argv in *value (the last one wins). */
typedef struct cl_opt {
  const char *name; /* "--tick-ms" */
  int arg;
  const char **value;
  int *flag;
} cl_opt_t;

/* Parse argv[1..argc-1] (argv[0] is the command name) against opts, which
 * ends with a zeroed entry. `--help`/`-h` sets *help. `--name=value` works;
 * `--` ends options. Positional arguments go to pos (at most maxpos).
 * Returns the number of positionals, or -1 after printing the problem and a
 * usage hint for cmd. */
int cl_cli_parse(const char *cmd, int argc, char **argv, const cl_opt_t *opts,
                 const char **pos, int maxpos, int *help);

/* Parse a number for option or argument `what` in [min, max] (a NULL s
 * leaves *out alone). Returns 0, or -1 after printing why. */
int cl_cli_u64(const char *what, const char *s, uint64_t min, uint64_t max,
               uint64_t *out);

/* ---- usage -------------------------------------------------------------- */

/* Full help of clsnap (cmd NULL) or of one command, to f. Returns 0, or -1
 * if cmd is unknown. */
int cl_usage(const char *cmd, FILE *f);
/* "Try 'clsnap CMD --help'." (or 'clsnap --help') on stderr. */
void cl_usage_hint(const char *cmd);

/* ---- snapshots ---------------------------------------------------------- */

/* Print the .snap text (unless quiet), the verdict line and, on failure, one
 * indented line per problem. */
void cl_print_checked(FILE *f, uint64_t id, const cl_snap_t *snap,
                      const cl_verdict_t *v, int quiet);

/* The JSON object of one checked snapshot: id, ok, conserved,
 * channels_exact, tokens{expected,servers,channels}, servers{ID:n},
 * messages[{src,dst,tokens}], problems[]. New reference. */
json_t *cl_json_checked(uint64_t id, const cl_snap_t *snap,
                        const cl_verdict_t *v);

/* Print a JSON value on stdout (indented, newline). Takes the reference. */
void cl_json_print(json_t *j);

/* Create dir (and parents) if needed and write dir/<id>.snap. Returns 0, or
 * -1 after printing why. */
int cl_write_snap_file(const char *dir, uint64_t id, const cl_snap_t *snap);

/* "12.3 ms" or "4.56 s". */
void cl_format_duration(double seconds, char *buf, size_t size);

#endif
