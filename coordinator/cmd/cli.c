#include "cli.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "error.h"
#include "progress.h"
#include "scenario.h"
#include "usage.h"
#include "util.h"

cl_cli_t cl_cli = {.cmd = "clsnap"};

/* The fields of a failure that the kept one lacks: code, server, and file
 * with its line. */
static void fill_error(int code, const char *server, const char *file,
                       int line) {
  if (cl_cli.err.code == 0)
    cl_cli.err.code = code;
  if (cl_cli.err.server[0] == '\0' && server != NULL)
    snprintf(cl_cli.err.server, sizeof cl_cli.err.server, "%s", server);
  if (cl_cli.err.file[0] == '\0' && file != NULL && file[0] != '\0') {
    snprintf(cl_cli.err.file, sizeof cl_cli.err.file, "%s", file);
    cl_cli.err.line = line;
  }
}

/* Keep the first failure for --json's error object: the first message,
 * and each field from the first failure that gave it (the first message is
 * often the cause, a later line the classification: "run failed: ..."
 * with the code, or the server and the events file's line). */
static void keep_error(int code, const char *server, const char *file,
                       int line, const char *fmt, va_list ap) {
  if (!cl_cli.err.set) {
    cl_cli.err.set = 1;
    vsnprintf(cl_cli.err.message, sizeof cl_cli.err.message, fmt, ap);
  }
  fill_error(code, server, file, line);
}

/* "clsnap: " (and "CMD: " when with_cmd), the message, a newline. */
static void print_error(int with_cmd, const char *fmt, va_list ap) {
  cl_progress_clear(); /* not behind a half-drawn status line */
  fflush(stdout); /* keep stdout and stderr in order on a terminal */
  fputs("clsnap: ", stderr);
  if (with_cmd && strcmp(cl_cli.cmd, "clsnap") != 0)
    fprintf(stderr, "%s: ", cl_cli.cmd);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
}

void cl_cli_errf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  print_error(0, fmt, ap);
  va_end(ap);
  va_start(ap, fmt);
  keep_error(0, NULL, NULL, 0, fmt, ap);
  va_end(ap);
}

void cl_cli_fail(int code, const char *server, const char *file, int line,
                 const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  print_error(0, fmt, ap);
  va_end(ap);
  va_start(ap, fmt);
  keep_error(code, server, file, line, fmt, ap);
  va_end(ap);
}

int cl_cli_usage(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  print_error(1, fmt, ap);
  va_end(ap);
  va_start(ap, fmt);
  keep_error(CL_EINVAL, NULL, NULL, 0, fmt, ap);
  va_end(ap);
  cl_usage_hint(cl_cli.cmd);
  return CL_EXIT_USAGE;
}

int cl_cli_unknown_server(const char *id, const char *cluster_file) {
  cl_cli_usage("unknown server '%s' (not in the cluster file %s)", id,
               cluster_file);
  fill_error(CL_EINVAL, id, NULL, 0);
  return CL_EXIT_USAGE;
}

int cl_cli_bad_input(const struct cl_diag *diag) {
  char buf[600];
  cl_diag_format(diag, buf, sizeof buf);
  cl_cli_fail(CL_EINVAL, NULL, diag->file, diag->line, "%s", buf);
  return CL_EXIT_USAGE;
}

/* ---- the option parser ---------------------------------------------------- */

/* The options every command takes; getopt_long values of long-only
 * options start above every character. */
enum { OPT_PROGRESS = 256, OPT_FIRST_OWN = 257 };

static const struct {
  const char *name;
  int key;
  int *flag;
} common_opts[] = {
    {"help", 'h', &cl_cli.help},
    {"json", 'j', &cl_cli.json},
    {"quiet", 'q', &cl_cli.quiet},
    {"progress", OPT_PROGRESS, &cl_cli.progress},
};
#define NCOMMON (sizeof common_opts / sizeof common_opts[0])

/* The long option table and optstring for opts (with the common ones in
 * front); free *lo. Returns the number of the command's own options. */
static size_t build_table(const cl_opt_t *opts, struct option **lo,
                          char *shorts, size_t size) {
  size_t n = 0, i, k = 0;
  while (opts[n].name != NULL)
    n++;
  *lo = cl_xcalloc(NCOMMON + n + 1, sizeof **lo);
  shorts[k++] = ':'; /* a missing argument returns ':' */
  for (i = 0; i < NCOMMON; i++) {
    (*lo)[i] = (struct option){common_opts[i].name, no_argument, NULL,
                               common_opts[i].key};
    if (common_opts[i].key < 256)
      shorts[k++] = (char)common_opts[i].key;
  }
  for (i = 0; i < n; i++) {
    int val = opts[i].key ? opts[i].key : OPT_FIRST_OWN + (int)i;
    (*lo)[NCOMMON + i] = (struct option){
        opts[i].name, opts[i].arg ? required_argument : no_argument, NULL,
        val};
    if (opts[i].key && k + 3 < size) {
      shorts[k++] = (char)opts[i].key;
      if (opts[i].arg)
        shorts[k++] = ':';
    }
  }
  shorts[k] = '\0';
  return n;
}

/* The option (common or own) getopt_long returned as val: its name. */
static const char *opt_name(const struct option *lo, int val) {
  for (; lo->name != NULL; lo++)
    if (lo->val == val)
      return lo->name;
  return "?";
}

/* Why getopt_long refused argument `arg` (its '?' with optopt). */
static int refused(const struct option *lo, const char *arg, int opt) {
  char names[512] = "";
  size_t len, matches = 0, used = 0;
  const struct option *o;
  if (strncmp(arg, "--", 2) != 0) {
    if (opt != 0)
      return cl_cli_usage("invalid option -- '%c'", opt);
    return cl_cli_usage("invalid option '%s'", arg);
  }
  len = strcspn(arg + 2, "=");
  if (opt != 0)
    return cl_cli_usage("option '--%s' doesn't allow an argument",
                        opt_name(lo, opt));
  for (o = lo; o->name != NULL; o++)
    if (strncmp(o->name, arg + 2, len) == 0) {
      matches++;
      if (used + strlen(o->name) + 6 < sizeof names)
        used += (size_t)snprintf(names + used, sizeof names - used,
                                 " '--%s'", o->name);
    }
  if (matches > 1)
    return cl_cli_usage("option '%.*s' is ambiguous; possibilities:%s",
                        (int)len + 2, arg, names);
  return cl_cli_usage("unrecognized option '%.*s'", (int)len + 2, arg);
}

/* Apply option val (its argument in optarg). */
static void apply(const cl_opt_t *opts, size_t n, int val) {
  size_t i;
  for (i = 0; i < NCOMMON; i++)
    if (common_opts[i].key == val) {
      *common_opts[i].flag = 1;
      return;
    }
  for (i = 0; i < n; i++)
    if ((opts[i].key ? opts[i].key : OPT_FIRST_OWN + (int)i) == val) {
      if (opts[i].arg)
        *opts[i].value = optarg;
      else
        *opts[i].flag = 1;
      return;
    }
}

int cl_cli_parse(int argc, char **argv, const cl_opt_t *opts, const char **pos,
                 int maxpos) {
  struct option *lo;
  char shorts[64];
  size_t n;
  int c, rc = 0, i;
  cl_cli.cmd = argv[0];
  n = build_table(opts, &lo, shorts, sizeof shorts);
  opterr = 0;
  optind = 0; /* glibc: start afresh (the global options used it) */
  while (rc == 0 && (c = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
    if (c == ':')
      rc = optopt < 256 && strncmp(argv[optind - 1], "--", 2) != 0
               ? cl_cli_usage("option requires an argument -- '%c'", optopt)
               : cl_cli_usage("option '--%s' requires an argument",
                              opt_name(lo, optopt));
    else if (c == '?')
      rc = refused(lo, argv[optind - 1], optopt);
    else
      apply(opts, n, c);
  }
  free(lo);
  if (rc != 0)
    return -1;
  if (cl_cli.help)
    return 0;
  if (argc - optind > maxpos)
    return cl_cli_usage("unexpected argument '%s'", argv[optind + maxpos]),
           -1;
  for (i = optind; i < argc; i++)
    pos[i - optind] = argv[i];
  return argc - optind;
}

/* Whole number in [min, max] or a usage error. */
int cl_cli_u64(const char *what, const char *s, uint64_t min, uint64_t max,
               uint64_t *out) {
  uint64_t v;
  int rc;
  if (s == NULL)
    return 0;
  rc = cl_parse_u64(s, max, &v);
  if (rc == CL_EINVAL) {
    cl_cli_usage("%s: '%s' is not a whole number", what, s);
    return -1;
  }
  if (rc < 0 || v < min) {
    cl_cli_usage("%s: %s is out of range (%" PRIu64 "..%" PRIu64 ")", what, s,
                 min, max);
    return -1;
  }
  *out = v;
  return 0;
}

/* See cli.h. */
int cl_cli_duration(const char *what, const char *s, uint64_t min_ms,
                    uint64_t max_ms, uint64_t *ms) {
  static const struct {
    const char *unit;
    uint64_t ms;
  } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"", 1000}};
  char num[32];
  size_t len, k;
  uint64_t v;
  if (s == NULL)
    return 0;
  len = strspn(s, "0123456789");
  for (k = 0; k < sizeof units / sizeof units[0]; k++)
    if (strcmp(s + len, units[k].unit) == 0)
      break;
  if (len == 0 || len >= sizeof num || k == sizeof units / sizeof units[0]) {
    cl_cli_usage("%s: '%s' is not a duration (N, Nms, Ns or Nm; a bare "
                 "number is seconds)", what, s);
    return -1;
  }
  memcpy(num, s, len);
  num[len] = '\0';
  if (cl_parse_u64(num, UINT64_MAX / 60000, &v) < 0 ||
      v * units[k].ms < min_ms || v * units[k].ms > max_ms) {
    cl_cli_usage("%s: %s is out of range (%" PRIu64 "ms..%" PRIu64 "s)",
                 what, s, min_ms, max_ms / 1000);
    return -1;
  }
  *ms = v * units[k].ms;
  return 0;
}

/* See cli.h. */
int cl_cli_help(const char *cmd) {
  char *text = NULL;
  size_t len = 0;
  FILE *f;
  int rc;
  if (!cl_cli.json)
    return cl_usage(cmd, stdout) == 0 ? CL_EXIT_OK : CL_EXIT_USAGE;
  f = open_memstream(&text, &len);
  if (f == NULL)
    return CL_EXIT_FAIL;
  rc = cl_usage(cmd, f);
  fclose(f);
  if (rc == 0) {
    json_t *j = json_pack("{s:s}", "usage", text);
    cl_cli.printed = 1;
    json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    json_decref(j);
  }
  free(text);
  return rc == 0 ? CL_EXIT_OK : CL_EXIT_USAGE;
}

/* ---- the cluster file ----------------------------------------------------- */

#define CL_CLUSTER_DEFAULT "./.clsnap/cluster"

const char *cl_cli_cluster(const char *given) {
  const char *env = getenv("CLSNAP_CLUSTER");
  if (given != NULL)
    return given;
  if (env != NULL && env[0] != '\0')
    return env;
  if (access(CL_CLUSTER_DEFAULT, F_OK) == 0)
    return CL_CLUSTER_DEFAULT;
  cl_cli_usage("which cluster? give --cluster FILE, set CLSNAP_CLUSTER, or "
               "run where %s exists (deploy/cluster.sh up writes it)",
               CL_CLUSTER_DEFAULT);
  return NULL;
}

/* ---- --json failures ------------------------------------------------------ */

/* See cli.h. */
json_t *cl_cli_json_text(const char *s) {
  json_t *j = json_string(s);
  char *copy;
  if (j != NULL)
    return j;
  copy = cl_ascii_copy(s);
  j = json_string(copy);
  free(copy);
  return j;
}

json_t *cl_cli_error_json(int status) {
  json_t *e;
  int code = cl_cli.err.code;
  if (code == 0)
    code = status == CL_EXIT_USAGE  ? CL_EINVAL
           : status == CL_EXIT_INTR ? CL_EINTR
                                    : CL_EIO;
  e = json_object();
  json_object_set_new(e, "code", json_string(cl_err_name(code)));
  json_object_set_new(e, "message",
                      cl_cli_json_text(cl_cli.err.set ? cl_cli.err.message
                                               : cl_strerror(code)));
  if (cl_cli.err.server[0] != '\0')
    json_object_set_new(e, "server", cl_cli_json_text(cl_cli.err.server));
  if (cl_cli.err.file[0] != '\0')
    json_object_set_new(e, "file", cl_cli_json_text(cl_cli.err.file));
  if (cl_cli.err.line > 0)
    json_object_set_new(e, "line", json_integer(cl_cli.err.line));
  return e;
}

int cl_cli_finish(int status) {
  json_t *o;
  if (!cl_cli.json || status == CL_EXIT_OK || cl_cli.printed)
    return status;
  o = json_pack("{s:o}", "error", cl_cli_error_json(status));
  json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  fputc('\n', stdout);
  json_decref(o);
  return status;
}
