/* Traces from the command line (docs/TRACE.md): `trace start|stop|dump` on
 * a running cluster, `run --trace` (through cl_trace_save), `diagram` and
 * `explain` on a trace file.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cmds.h"
#include "collect.h"
#include "daemons.h"
#include "diagram.h"
#include "error.h"
#include "explain.h"
#include "output.h"
#include "progress.h"
#include "usage.h"

/* cl_collect_read's progress: the status line. */
static void show_read(void *ctx, uint64_t events) {
  (void)ctx;
  cl_progress_show("trace: %" PRIu64 " events read", events);
}

/* An output file: path.tmp, renamed to path when complete (a reader never
 * sees half a file), when path is a regular file or does not exist yet;
 * path itself otherwise: a symlink (/dev/stdout), a device, a pipe must
 * stay what they are (lstat: renaming over a symlink would replace it);
 * stdout for "-". */
typedef struct out {
  const char *path;
  char tmp[4096];
  FILE *f;
} out_t;

/* Open o for path. 0, or -1 after saying why. */
static int out_open(out_t *o, const char *path) {
  struct stat st;
  o->path = path;
  o->tmp[0] = '\0';
  if (strcmp(path, "-") == 0) {
    o->f = stdout;
    return 0;
  }
  if (lstat(path, &st) != 0 || S_ISREG(st.st_mode))
    snprintf(o->tmp, sizeof o->tmp, "%s.tmp", path);
  if ((o->f = fopen(o->tmp[0] ? o->tmp : path, "w")) == NULL) {
    cl_cli_fail(CL_EIO, NULL, path, 0, "cannot write %s: %s",
                o->tmp[0] ? o->tmp : path, strerror(errno));
    return -1;
  }
  return 0;
}

/* Close o, renaming it into place if rc is 0; else (or if that fails) the
 * temporary file goes. Returns 0, or -1 after saying why. */
static int out_close(out_t *o, int rc) {
  int e = rc < 0 ? EIO : 0;
  if (o->f == stdout)
    return fflush(stdout) == 0 && rc == 0 ? 0 : -1;
  if (fclose(o->f) != 0 && rc == 0) {
    e = errno;
    rc = -1;
  }
  if (rc == 0 && o->tmp[0] && rename(o->tmp, o->path) != 0) {
    e = errno;
    rc = -1;
  }
  if (rc < 0) {
    cl_cli_fail(CL_EIO, NULL, o->path, 0, "cannot write %s: %s", o->path,
                strerror(e));
    if (o->tmp[0])
      unlink(o->tmp);
  }
  return rc;
}

/* Give o up (what failed was said already): the temporary file goes. */
static void out_discard(out_t *o) {
  if (o->f == stdout)
    return;
  fclose(o->f);
  unlink(o->tmp[0] ? o->tmp : o->path);
}

/* Write tf to path. Returns 0, or -1 after saying why. */
static int write_trace(const cl_tf_t *tf, const char *path) {
  out_t o;
  if (out_open(&o, path) < 0)
    return -1;
  return out_close(&o, cl_tf_write(tf, o.f));
}

/* Count what a trace holds, for the summary line. */
static void summary(const cl_tf_t *tf, const char *path) {
  size_t k, msgs = 0, markers = 0;
  for (k = 0; k < tf->nev; k++) {
    msgs += tf->ev[k].ev == CL_TEV_SEND;
    markers += tf->ev[k].ev == CL_TEV_MARKER_SEND;
  }
  if (cl_cli.json) {
    cl_json_print(json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:b}", "trace",
                            path, "servers", (json_int_t)tf->nservers,
                            "events", (json_int_t)tf->nev, "messages",
                            (json_int_t)msgs, "markers", (json_int_t)markers,
                            "snapshots", (json_int_t)tf->nsnaps, "complete",
                            tf->gap_server == UINT32_MAX));
    return;
  }
  if (cl_cli.quiet)
    return;
  /* On stdout it is trace dump's result; run's results and a trace on
   * stdout leave it to stderr. */
  fprintf(strcmp(cl_cli.cmd, "run") == 0 || strcmp(path, "-") == 0 ? stderr
                                                                    : stdout,
          "trace: %zu events from %zu servers (%zu token message%s, %zu "
          "marker%s, %zu snapshot%s) in %s\n", tf->nev, tf->nservers, msgs,
          msgs == 1 ? "" : "s", markers, markers == 1 ? "" : "s",
          tf->nsnaps, tf->nsnaps == 1 ? "" : "s", path);
  if (tf->gap_server != UINT32_MAX)
    cl_cli_errf("%s dropped %" PRIu64 " events from its event %" PRIu64
                " on: its trace buffer was full (trace start --events N)",
                tf->servers[tf->gap_server], tf->gap_count, tf->gap_i);
}

int cl_trace_save(const cl_backend_t *be, size_t n, const char *const *ids,
                  const char *path) {
  cl_tf_t *tf = NULL;
  char err[1024];
  int rc = cl_collect_read(be, n, ids,
                           cl_progress_mode() != CL_PROGRESS_OFF ? show_read
                                                                 : NULL,
                           NULL, &tf, err, sizeof err);
  cl_progress_clear();
  if (rc < 0) {
    cl_cli_fail(rc, NULL, NULL, 0, "cannot read the trace: %s", err);
    return -1;
  }
  rc = write_trace(tf, path);
  /* run --json prints the run, not the trace. */
  if (rc == 0 && !(cl_cli.json && strcmp(cl_cli.cmd, "run") == 0))
    summary(tf, path);
  cl_tf_free(tf);
  return rc;
}

/* ---- trace start|stop|dump --------------------------------------------- */

static int cmd_trace(int argc, char **argv, const char *cluster) {
  const char *timeout = NULL, *events = NULL, *pos[2];
  cl_opt_t opts[] = {{"events", 0, 1, &events, NULL},
                     {"timeout", 0, 1, &timeout, NULL},
                     {"cluster", 0, 1, &cluster, NULL},
                     {NULL, 0, 0, NULL, NULL}};
  cl_endpoint_t *file = NULL;
  cl_daemons_t d;
  cl_backend_t be;
  const char **ids = NULL;
  uint64_t timeout_ms = 30000, nevents = 0;
  char err[1024];
  size_t n = 0, i;
  int npos = cl_cli_parse(argc, argv, opts, pos, 2), rc, status = CL_EXIT_FAIL;
  const char *op;
  if (npos < 0)
    return CL_EXIT_USAGE;
  if (cl_cli.help)
    return cl_cli_help("trace");
  if (npos < 1)
    return cl_cli_usage("needs start, stop or dump FILE");
  op = pos[0];
  if (strcmp(op, "dump") == 0 ? npos != 2
      : (strcmp(op, "start") == 0 || strcmp(op, "stop") == 0) ? npos != 1
                                                              : 1)
    return cl_cli_usage(strcmp(op, "dump") == 0 ? "dump needs FILE (- for "
                        "standard output)" : "needs start, stop or dump FILE");
  if (events != NULL && strcmp(op, "start") != 0)
    return cl_cli_usage("--events goes with start");
  if (cl_cli_duration("--timeout", timeout, 1, 86400000, &timeout_ms) ||
      cl_cli_u64("--events", events, 2, 16777216, &nevents) ||
      (cluster = cl_cli_cluster(cluster)) == NULL ||
      cl_daemons_file_load(cluster, &file, &n) != 0)
    return CL_EXIT_USAGE;
  cl_progress_init(cl_cli.quiet, cl_cli.json, cl_cli.progress);
  if ((ids = calloc(n, sizeof *ids)) == NULL) {
    free(file);
    cl_cli_errf("out of memory");
    return CL_EXIT_FAIL;
  }
  for (i = 0; i < n; i++)
    ids[i] = file[i].id;
  rc = cl_daemons_init(&d) < 0 || cl_daemons_attach(&d, file, n, timeout_ms) < 0
           ? CL_EIO
           : cl_cluster_connect(d.cluster, 10000, err, sizeof err);
  if (rc < 0 && d.cluster != NULL)
    cl_cli_fail(rc, cl_cluster_culprit(d.cluster), NULL, 0, "%s", err);
  if (rc == 0) {
    be = cl_cluster_backend(d.cluster);
    if (strcmp(op, "dump") == 0) {
      if (cl_trace_save(&be, n, ids, pos[1]) == 0)
        status = CL_EXIT_OK;
    } else if ((rc = cl_collect_switch(&be, n, ids, strcmp(op, "start") == 0,
                                       nevents, err, sizeof err)) < 0) {
      cl_cli_fail(rc, cl_cluster_culprit(d.cluster), NULL, 0, "%s", err);
    } else {
      status = CL_EXIT_OK;
      if (cl_cli.json)
        cl_json_print(json_pack("{s:b, s:I}", "tracing",
                                strcmp(op, "start") == 0, "servers",
                                (json_int_t)n));
      else if (strcmp(op, "start") == 0)
        printf("tracing on %zu servers (room for %" PRIu64 " events "
               "each)\n", n, nevents ? nevents : (uint64_t)262144);
      else
        printf("tracing stopped on %zu servers (trace dump FILE reads "
               "it)\n", n);
    }
  }
  cl_daemons_close(&d, 0);
  free(ids);
  free(file);
  return status;
}

/* ---- diagram and explain ------------------------------------------------ */

/* Parse "0,2,5-7" into sel (1 for each listed id found in ids[0..n)).
 * Returns 0, or -1 after a usage error naming opt. */
static int id_list(const char *opt, const char *text, const uint64_t *ids,
                   size_t n, uint8_t *sel) {
  const char *p = text;
  while (*p) {
    char *end;
    unsigned long long a, b;
    size_t k;
    errno = 0;
    if (*p < '0' || *p > '9')
      goto bad;
    a = strtoull(p, &end, 10);
    b = a;
    if (end == p || errno)
      goto bad;
    if (*end == '-') {
      p = end + 1;
      if (*p < '0' || *p > '9')
        goto bad;
      b = strtoull(p, &end, 10);
      if (end == p || errno || b < a)
        goto bad;
    }
    for (k = 0; k < n; k++)
      if (ids[k] >= a && ids[k] <= b)
        sel[k] = 1;
    if (*end != ',' && *end != '\0')
      goto bad;
    p = *end ? end + 1 : end;
  }
  return 0;
bad:
  cl_cli_usage("%s: '%s' is not a list of numbers and ranges like 0,2,5-7",
               opt, text);
  return -1;
}

/* Load and link a trace. Returns the trace, or NULL after saying why. */
static cl_tf_t *load(const char *path) {
  cl_tf_t *tf;
  cl_diag_t diag;
  if (cl_tf_load(path, &tf, &diag) < 0 || cl_tf_link(tf, path, &diag) < 0) {
    cl_cli_bad_input(&diag);
    if (tf != NULL)
      cl_tf_free(tf);
    return NULL;
  }
  return tf;
}

/* The format from --format or the file's extension. */
static const char *format_of(const char *format, const char *out) {
  const char *dot = out ? strrchr(out, '.') : NULL;
  if (format != NULL)
    return format;
  if (dot != NULL && (strcmp(dot, ".html") == 0 || strcmp(dot, ".htm") == 0))
    return "html";
  return "svg";
}

static int cmd_diagram(int argc, char **argv) {
  const char *out = NULL, *format = NULL, *snaps = NULL, *servers = NULL,
             *from = NULL, *to = NULL, *title = NULL, *pos[1];
  cl_opt_t opts[] = {{"output", 'o', 1, &out, NULL},
                     {"format", 0, 1, &format, NULL},
                     {"snap", 0, 1, &snaps, NULL},
                     {"servers", 0, 1, &servers, NULL},
                     {"from", 0, 1, &from, NULL},
                     {"to", 0, 1, &to, NULL},
                     {"title", 0, 1, &title, NULL},
                     {NULL, 0, 0, NULL, NULL}};
  cl_diagram_opts_t o;
  cl_tf_t *tf;
  uint8_t *snapsel = NULL, *srvsel = NULL;
  out_t out_file;
  int npos = cl_cli_parse(argc, argv, opts, pos, 1), rc = -1;
  if (npos < 0)
    return CL_EXIT_USAGE;
  if (cl_cli.help)
    return cl_cli_help("diagram");
  if (npos != 1)
    return cl_cli_usage("needs a TRACE file");
  memset(&o, 0, sizeof o);
  format = format_of(format, out);
  if (strcmp(format, "svg") != 0 && strcmp(format, "html") != 0 &&
      strcmp(format, "shiviz") != 0)
    return cl_cli_usage("--format is svg, html or shiviz, not '%s'", format);
  if (cl_cli_u64("--from", from, 1, UINT64_MAX, &o.from) ||
      cl_cli_u64("--to", to, 1, UINT64_MAX, &o.to))
    return CL_EXIT_USAGE;
  if (o.to && o.to < o.from)
    return cl_cli_usage("--to %" PRIu64 " is before --from %" PRIu64, o.to,
                        o.from);
  if ((tf = load(pos[0])) == NULL)
    return CL_EXIT_USAGE;
  snapsel = calloc(tf->nsnaps + 1, 1);
  srvsel = calloc(tf->nservers + 1, 1);
  if (snapsel == NULL || srvsel == NULL) {
    cl_cli_errf("out of memory");
    goto done;
  }
  if (snaps != NULL) {
    if (id_list("--snap", snaps, tf->snaps, tf->nsnaps, snapsel) < 0) {
      rc = -2;
      goto done;
    }
    o.snaps = snapsel;
  }
  if (servers != NULL) {
    char *copy = strdup(servers), *tok, *save = NULL;
    if (copy == NULL) {
      cl_cli_errf("out of memory");
      goto done;
    }
    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
      uint32_t s = cl_tf_server(tf, tok);
      if (s == UINT32_MAX) {
        cl_cli_fail(CL_EINVAL, tok, pos[0], 0, "--servers: %s is not in "
                    "the trace %s", tok, pos[0]);
        free(copy);
        rc = -2;
        goto done;
      }
      srvsel[s] = 1;
    }
    free(copy);
    o.servers = srvsel;
  }
  o.title = title ? title : pos[0];
  if (out_open(&out_file, out ? out : "-") < 0)
    goto done;
  if (strcmp(format, "shiviz") == 0)
    rc = cl_diagram_shiviz(tf, out_file.f);
  else if (strcmp(format, "html") == 0)
    rc = cl_diagram_html(tf, &o, out_file.f);
  else
    rc = cl_diagram_svg(tf, &o, out_file.f);
  if (rc == CL_ERANGE) {
    cl_cli_fail(CL_ERANGE, NULL, pos[0], 0, "%s spans %" PRIu64 " logical "
                "steps: too wide to draw; choose a window of at most %d "
                "with --from and --to", pos[0], tf->max_lamport,
                CL_DIAGRAM_MAX_STEPS);
    out_discard(&out_file);
    rc = -2;
    goto done;
  }
  rc = out_close(&out_file, rc);
  if (rc == 0 && out != NULL && strcmp(out, "-") != 0) {
    if (cl_cli.json)
      cl_json_print(json_pack("{s:s, s:s, s:I, s:I}", "diagram", out,
                              "format", format, "events", (json_int_t)tf->nev,
                              "servers", (json_int_t)tf->nservers));
    else if (!cl_cli.quiet)
      fprintf(stderr, "wrote %s (%s, %zu events, %zu servers)\n", out,
              format, tf->nev, tf->nservers);
  }
done:
  free(snapsel);
  free(srvsel);
  cl_tf_free(tf);
  return rc == 0 ? CL_EXIT_OK : rc == -2 ? CL_EXIT_USAGE : CL_EXIT_FAIL;
}

static int cmd_explain(int argc, char **argv) {
  const char *pos[2];
  cl_opt_t opts[] = {{NULL, 0, 0, NULL, NULL}};
  cl_tf_t *tf;
  json_t *o = NULL;
  uint64_t snap;
  int npos = cl_cli_parse(argc, argv, opts, pos, 2), rc;
  if (npos < 0)
    return CL_EXIT_USAGE;
  if (cl_cli.help)
    return cl_cli_help("explain");
  if (npos != 2)
    return cl_cli_usage("needs a TRACE file and a SNAPSHOT id");
  if (cl_cli_u64("SNAPSHOT", pos[1], 0, UINT64_MAX, &snap))
    return CL_EXIT_USAGE;
  if ((tf = load(pos[0])) == NULL)
    return CL_EXIT_USAGE;
  rc = cl_explain_json(tf, snap, &o);
  if (rc >= 0) {
    if (cl_cli.json)
      cl_json_print(json_incref(o));
    else
      cl_explain_print(o, stdout);
    json_decref(o);
  }
  if (rc == CL_ENOENT) {
    char ids[256] = "";
    size_t k, len = 0;
    for (k = 0; k < tf->nsnaps && len + 24 < sizeof ids; k++)
      len += (size_t)snprintf(ids + len, sizeof ids - len, "%s%" PRIu64,
                              k ? " " : "", tf->snaps[k]);
    cl_cli_fail(CL_ENOENT, NULL, pos[0], 0, "%s has no snapshot %" PRIu64
                " (it has: %s)", pos[0], snap, tf->nsnaps ? ids : "none");
    rc = CL_EXIT_USAGE;
  } else if (rc < 0) {
    cl_cli_errf("out of memory");
    rc = CL_EXIT_FAIL;
  } else {
    rc = rc == 0 ? CL_EXIT_OK : CL_EXIT_FAIL;
  }
  cl_tf_free(tf);
  return rc;
}

int cl_cmd_trace(int argc, char **argv, const char *cluster_file) {
  if (strcmp(argv[0], "diagram") == 0)
    return cmd_diagram(argc, argv);
  if (strcmp(argv[0], "explain") == 0)
    return cmd_explain(argc, argv);
  return cmd_trace(argc, argv, cluster_file);
}
