/* clsnap's command line: exit statuses, error lines, long options and
 * numbers. Only the clsnap executable uses it; unlike the library modules
 * it prints, because talking to the user is its job.
 */
#ifndef CL_CLI_H
#define CL_CLI_H

#include <stdint.h>

/* From meson's project(version), so there is one place to bump it. */
#ifndef CL_VERSION
#define CL_VERSION "unknown"
#endif

enum { CL_EXIT_OK = 0, CL_EXIT_FAIL = 1, CL_EXIT_USAGE = 2, CL_EXIT_INTR = 130 };

/* "clsnap: <message>\n" on stderr. */
void cl_cli_errf(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

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

#endif
