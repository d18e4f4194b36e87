/* clsnap's command line: exit statuses, the one option parser (getopt_long),
 * usage errors, error lines, the cluster file lookup and the --json error
 * object. Only the clsnap executable uses it; unlike the library modules it
 * prints, because talking to the user is its job.
 */
#ifndef CL_CLI_H
#define CL_CLI_H

#include <limits.h>
#include <stdint.h>

#include <jansson.h>

#include "secret.h"

/* From meson's project(version), so there is one place to bump it. */
#ifndef CL_VERSION
#define CL_VERSION "unknown"
#endif

enum { CL_EXIT_OK = 0, CL_EXIT_FAIL = 1, CL_EXIT_USAGE = 2, CL_EXIT_INTR = 130 };

/* The one invocation: its command and the output choices every command
 * shares (the common options -h -j -q --progress), and the first failure,
 * which --json prints as {"error": {...}} when no result was printed. One
 * per process: clsnap runs one command. */
typedef struct cl_cli {
  const char *cmd; /* "run"; "clsnap" before the command is known */
  int help, json, quiet, progress;
  int printed; /* a JSON result went to stdout */
  const char *secret_file; /* --secret-file or $CLSNAP_SECRET_FILE */
  cl_secret_t secret;      /* its contents (len 0: no secret) */
  struct {
    int set, code, line;
    char message[1024], server[64], file[PATH_MAX];
  } err;
} cl_cli_t;

extern cl_cli_t cl_cli;

/* "clsnap: <message>\n" on stderr; the first one is also kept as the
 * --json error's message. */
void cl_cli_errf(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* The same, with what --json's error object says besides the message: code
 * (a CL_E* code, 0 if none), server (NULL if none), file and line (NULL, 0
 * if none). The first message of a run is kept, and each field from the
 * first failure that gave it. */
void cl_cli_fail(int code, const char *server, const char *file, int line,
                 const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* A usage error: "clsnap: CMD: <message>", then "Try 'clsnap CMD --help'.".
 * Returns CL_EXIT_USAGE. */
int cl_cli_usage(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* The usage error of a server id that cluster_file does not list, with
 * the id as the --json error's server. Returns CL_EXIT_USAGE. */
int cl_cli_unknown_server(const char *id, const char *cluster_file);

/* A complaint about an input file: "clsnap: FILE:LINE: message", kept with
 * its file and line (code CL_EINVAL). Returns CL_EXIT_USAGE. */
struct cl_diag;
int cl_cli_bad_input(const struct cl_diag *diag);

/* One option of a command, besides the common ones (-h/--help, -j/--json,
 * -q/--quiet, --progress), which every command takes. Flags (arg == 0) set
 * *flag to 1; options with an argument store a pointer into argv in *value
 * (the last one wins). */
typedef struct cl_opt {
  const char *name; /* "tick-ms", without the dashes */
  int key;          /* its short option ('o'), or 0 */
  int arg;
  const char **value;
  int *flag;
} cl_opt_t;

/* Parse the options of command argv[0] (cl_cli.cmd is set to it) with
 * getopt_long(3): unambiguous abbreviations, --name=value, options after
 * operands, `--` ends options. The operands go to pos (at most maxpos).
 * opts ends with a zeroed entry. Returns the number of operands, or -1
 * after a usage error (printed). */
int cl_cli_parse(int argc, char **argv, const cl_opt_t *opts, const char **pos,
                 int maxpos);

/* Parse a number for option or operand `what` in [min, max] (a NULL s
 * leaves *out alone). Returns 0, or -1 after a usage error naming it. */
int cl_cli_u64(const char *what, const char *s, uint64_t min, uint64_t max,
               uint64_t *out);

/* The help of cmd (NULL: clsnap's own) on stdout: the text, or with
 * --json {"usage": TEXT}. CL_EXIT_OK, or CL_EXIT_USAGE for an unknown
 * command (nothing printed). */
int cl_cli_help(const char *cmd);

/* Parse a DURATION for option `what`: N[ms|s|m], a bare number meaning
 * seconds, in [min_ms, max_ms] (a NULL s leaves *ms alone). Returns 0, or
 * -1 after a usage error naming it. */
int cl_cli_duration(const char *what, const char *s, uint64_t min_ms,
                    uint64_t max_ms, uint64_t *ms);

/* The cluster file: `given` (--cluster) if not NULL, else $CLSNAP_CLUSTER
 * if set and not empty, else ./.clsnap/cluster if it exists. NULL after a
 * usage error naming all three. */
const char *cl_cli_cluster(const char *given);

/* A JSON string of s (new reference); bytes that are not UTF-8 (a path or
 * a daemon's text can hold any) become '?'. */
json_t *cl_cli_json_text(const char *s);

/* The --json error object of a failure with exit status `status`: {"code",
 * "message", "server", "file", "line"} from the first failure kept (the
 * last three where they apply). New reference. */
json_t *cl_cli_error_json(int status);

/* At exit: with --json, a failure (status not 0) that printed no JSON
 * result prints {"error": {"code", "message", "server", "file", "line"}}.
 * Returns status. */
int cl_cli_finish(int status);

#endif
