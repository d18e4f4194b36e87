#include "output.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "util.h"

/* Print one "clsnap: " error line. */
void cl_errf(const char *fmt, ...) {
  va_list ap;
  fflush(stdout); /* keep stdout and stderr in order on a terminal */
  fputs("clsnap: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

/* ---- options ------------------------------------------------------------ */

/* Long options anywhere among the positionals; see output.h. */
int cl_cli_parse(const char *cmd, int argc, char **argv, const cl_opt_t *opts,
                 const char **pos, int maxpos, int *help) {
  int i, npos = 0, only_pos = 0;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i], *eq, *val = NULL;
    const cl_opt_t *o;
    size_t len;
    if (only_pos || a[0] != '-' || a[1] == '\0') {
      if (npos >= maxpos) {
        cl_errf("%s: unexpected argument '%s'", cmd, a);
        cl_usage_hint(cmd);
        return -1;
      }
      pos[npos++] = a;
      continue;
    }
    if (strcmp(a, "--") == 0) {
      only_pos = 1;
      continue;
    }
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      *help = 1;
      continue;
    }
    eq = strchr(a, '=');
    len = eq ? (size_t)(eq - a) : strlen(a);
    for (o = opts; o->name != NULL; o++)
      if (strlen(o->name) == len && strncmp(o->name, a, len) == 0)
        break;
    if (o->name == NULL) {
      cl_errf("%s: unknown option '%.*s'", cmd, (int)len, a);
      cl_usage_hint(cmd);
      return -1;
    }
    if (!o->arg) {
      if (eq) {
        cl_errf("%s: option '%s' takes no value", cmd, o->name);
        cl_usage_hint(cmd);
        return -1;
      }
      *o->flag = 1;
      continue;
    }
    if (eq)
      val = eq + 1;
    else if (i + 1 < argc)
      val = argv[++i];
    else {
      cl_errf("%s: option '%s' needs a value", cmd, o->name);
      cl_usage_hint(cmd);
      return -1;
    }
    *o->value = val;
  }
  return npos;
}

/* Whole number in [min, max] or a printed complaint. */
int cl_cli_u64(const char *what, const char *s, uint64_t min, uint64_t max,
               uint64_t *out) {
  uint64_t v;
  int rc;
  if (s == NULL)
    return 0;
  rc = cl_parse_u64(s, max, &v);
  if (rc == CL_EINVAL) {
    cl_errf("%s: '%s' is not a whole number", what, s);
    return -1;
  }
  if (rc < 0 || v < min) {
    cl_errf("%s: %s is out of range (%" PRIu64 "..%" PRIu64 ")", what, s, min,
            max);
    return -1;
  }
  *out = v;
  return 0;
}

/* ---- usage -------------------------------------------------------------- */

static const char usage_main[] =
    "Usage: clsnap [--cluster FILE] COMMAND [ARGS...]\n"
    "\n"
    "Consistent global snapshots of a token-passing system with the\n"
    "Chandy-Lamport algorithm: each server is a clsnapd process; clsnap\n"
    "configures them, injects transfers, starts snapshots and checks them.\n"
    "\n"
    "Commands:\n"
    "  run TOPOLOGY EVENTS        start a local cluster (or use --cluster),\n"
    "                             replay the events, collect and check every\n"
    "                             snapshot\n"
    "  configure TOPOLOGY         configure and connect a running cluster\n"
    "  send SRC DEST N            move N tokens from SRC to DEST\n"
    "  snapshot ID                start a snapshot at server ID, wait, check\n"
    "  collect SNAPSHOT_ID        collect and check a completed snapshot\n"
    "  status                     show every server's state\n"
    "  shutdown                   stop every server\n"
    "  bench [options]            start a cluster under load: throughput,\n"
    "                             snapshot latency and cost, memory\n"
    "  help [COMMAND]             show help\n"
    "\n"
    "Global options:\n"
    "  --cluster FILE             the running daemons: lines `ID HOST:PORT`,\n"
    "                             `#` comments (needed by the cluster\n"
    "                             commands)\n"
    "  -h, --help                 show this help\n"
    "  -V, --version              show the version\n"
    "\n"
    "Exit status: 0 success; 1 a snapshot failed its checks or the cluster\n"
    "failed; 2 bad usage or bad input file.\n"
    "Run 'clsnap COMMAND --help' for a command's options.\n";

static const char usage_run[] =
    "Usage: clsnap run TOPOLOGY EVENTS [options]\n"
    "\n"
    "Start one clsnapd per server of TOPOLOGY on 127.0.0.1, configure and\n"
    "connect them, replay EVENTS, then collect every snapshot (the k-th\n"
    "`snapshot` event is snapshot k), check it (token conservation and exact\n"
    "channel states) and print it in the reference .snap format followed by\n"
    "its verdict, and a summary line.\n"
    "\n"
    "Modes:\n"
    "  (default)             free-running: daemons handle messages as they\n"
    "                        arrive; `tick` lets --tick-ms pass\n"
    "  --lockstep            deterministic: clsnap is the clock and follows\n"
    "                        the reference simulator's scheduling rules\n"
    "\n"
    "Options:\n"
    "  --lockstep            deterministic replay\n"
    "  --delays FILE         lockstep: message delays, one per line (e.g.\n"
    "                        conformance/go-delays.txt)\n"
    "  --seed N              lockstep: seed of the delay generator (default\n"
    "                        1); free-running: seed of the daemons' jitter\n"
    "                        (default: from the clock)\n"
    "  --max-delay D         lockstep: generated delays are 0..D (default 4)\n"
    "  --tick-ms MS          free-running: wall time of one tick (default 5)\n"
    "  --jitter-ms MS        random 0..MS ms send delay per message at the\n"
    "                        sender, FIFO kept (default 0)\n"
    "  --timeout SEC         give up waiting for replies or snapshots after\n"
    "                        SEC seconds (default 30)\n"
    "  --snap-dir DIR        also write DIR/<k>.snap per snapshot\n"
    "  --json                print only JSON on stdout\n"
    "  --quiet               print verdicts and the summary, not .snap texts\n"
    "  --in-process          lockstep over in-process node cores, no daemons\n"
    "  --cluster FILE        use these running daemons instead of starting\n"
    "                        new ones (they must not be configured yet)\n"
    "  --daemon PATH         clsnapd to start (default: next to clsnap, then\n"
    "                        ../daemon/clsnapd, then PATH)\n"
    "  --log-dir DIR         daemon logs as DIR/<id>.log (default: a\n"
    "                        temporary directory, removed after a successful\n"
    "                        run, kept and named on failure)\n"
    "  -h, --help            show this help\n"
    "\n"
    "Exit status: 0 every snapshot passed; 1 a check failed or the cluster\n"
    "failed; 2 bad usage or bad input file.\n";

static const char usage_configure[] =
    "Usage: clsnap --cluster FILE configure TOPOLOGY [options]\n"
    "\n"
    "Send CONFIGURE to every server of TOPOLOGY (each must be in FILE), wait\n"
    "for all, then CONNECT them all (opens the peer channels).\n"
    "\n"
    "Options:\n"
    "  --lockstep            servers hold messages until told to deliver\n"
    "  --jitter-ms MS        random 0..MS ms send delay (default 0)\n"
    "  --seed N              seed of the jitter (default: from the clock)\n"
    "  --timeout SEC         default 30\n"
    "  -h, --help            show this help\n";

static const char usage_send[] =
    "Usage: clsnap --cluster FILE send SRC DEST N\n"
    "\n"
    "Move N tokens from server SRC to server DEST over their channel.\n"
    "Prints `SRC -> DEST: N tokens (seq S)`; a refusal (not enough tokens,\n"
    "no such channel) is printed and exits 1.\n"
    "\n"
    "Options:\n"
    "  --timeout SEC         default 30\n"
    "  -h, --help            show this help\n";

static const char usage_snapshot[] =
    "Usage: clsnap --cluster FILE snapshot ID [options]\n"
    "\n"
    "Start a snapshot at server ID (that server picks a fresh id), have\n"
    "every server send its local state here as soon as it completes, check\n"
    "the global snapshot and print it with its verdict. Several invocations\n"
    "may run at once; each gets its own snapshot, and no server drops a\n"
    "state one of them waits for. A snapshot whose markers cannot reach\n"
    "every server from ID is refused before it starts (exit 2).\n"
    "\n"
    "Options:\n"
    "  --no-wait             start it, print its id and return; its states\n"
    "                        stay kept on the servers (up to their\n"
    "                        --max-kept) for `collect`\n"
    "  --timeout SEC         wait at most SEC seconds (default 30)\n"
    "  --json                print JSON\n"
    "  --quiet               print the verdict, not the .snap text\n"
    "  --snap-dir DIR        also write DIR/<snapshot id>.snap\n"
    "  -h, --help            show this help\n";

static const char usage_collect[] =
    "Usage: clsnap --cluster FILE collect SNAPSHOT_ID [options]\n"
    "\n"
    "Collect a completed snapshot's local states from every server, check\n"
    "the global snapshot and print it with its verdict.\n"
    "\n"
    "Options:\n"
    "  --json                print JSON\n"
    "  --quiet               print the verdict, not the .snap text\n"
    "  --snap-dir DIR        also write DIR/<snapshot id>.snap\n"
    "  --timeout SEC         default 30\n"
    "  -h, --help            show this help\n";

static const char usage_status[] =
    "Usage: clsnap --cluster FILE status [options]\n"
    "\n"
    "Show every server: address, tokens, per-channel sent/received counts\n"
    "and connection state, snapshots in progress and kept; then the total.\n"
    "Exits 1 if a server cannot be reached.\n"
    "\n"
    "Options:\n"
    "  --json                print JSON\n"
    "  --timeout SEC         default 30\n"
    "  -h, --help            show this help\n";

static const char usage_shutdown[] =
    "Usage: clsnap --cluster FILE shutdown [options]\n"
    "\n"
    "Tell every server to close its connections and exit.\n"
    "\n"
    "Options:\n"
    "  --timeout SEC         default 30\n"
    "  -h, --help            show this help\n";

static const struct {
  const char *cmd;
  const char *text;
} usages[] = {
    {"run", usage_run},           {"configure", usage_configure},
    {"send", usage_send},         {"snapshot", usage_snapshot},
    {"collect", usage_collect},   {"status", usage_status},
    {"shutdown", usage_shutdown}, {"help", usage_main},
};

/* Print the help of clsnap or of one command. */
int cl_usage(const char *cmd, FILE *f) {
  size_t i;
  if (cmd == NULL) {
    fputs(usage_main, f);
    return 0;
  }
  for (i = 0; i < sizeof usages / sizeof usages[0]; i++) {
    if (strcmp(usages[i].cmd, cmd) == 0) {
      fputs(usages[i].text, f);
      return 0;
    }
  }
  return -1;
}

/* Point at the right --help after a usage error. */
void cl_usage_hint(const char *cmd) {
  if (cmd != NULL && strcmp(cmd, "clsnap") != 0)
    fprintf(stderr, "Try 'clsnap %s --help'.\n", cmd);
  else
    fprintf(stderr, "Try 'clsnap --help'.\n");
}

/* ---- snapshots ---------------------------------------------------------- */

/* Snapshot text, verdict and problems, as `run` and `snapshot` print them. */
void cl_print_checked(FILE *f, uint64_t id, const cl_snap_t *snap,
                      const cl_verdict_t *v, int quiet) {
  char line[1024];
  size_t i, shown;
  if (!quiet && snap != NULL)
    cl_snap_write(snap, f);
  cl_verdict_line(id, v, line, sizeof line);
  fprintf(f, "%s\n", line);
  if (!v->ok) {
    shown = v->nproblems < CL_VERIFY_MAX_PROBLEMS ? v->nproblems
                                                   : CL_VERIFY_MAX_PROBLEMS;
    for (i = 0; i < shown; i++)
      fprintf(f, "  %s\n", v->problems[i]);
    if (v->nproblems > shown)
      fprintf(f, "  ... and %zu more problems\n", v->nproblems - shown);
  }
  if (!quiet)
    fputc('\n', f);
}

/* One checked snapshot as a JSON object. */
json_t *cl_json_checked(uint64_t id, const cl_snap_t *snap,
                        const cl_verdict_t *v) {
  json_t *o = json_object(), *tokens = json_object(), *servers = json_object(),
         *msgs = json_array(), *problems = json_array();
  size_t i, shown;
  json_object_set_new(o, "id", json_integer((json_int_t)id));
  json_object_set_new(o, "ok", json_boolean(v->ok));
  json_object_set_new(o, "conserved", json_boolean(v->conserved));
  json_object_set_new(o, "channels_exact", json_boolean(v->channels_exact));
  json_object_set_new(o, "complete", json_boolean(v->complete));
  json_object_set_new(tokens, "expected", json_integer(v->expected_tokens));
  json_object_set_new(tokens, "servers", json_integer(v->server_tokens));
  json_object_set_new(tokens, "channels", json_integer(v->channel_tokens));
  json_object_set_new(o, "tokens", tokens);
  if (snap != NULL) {
    for (i = 0; i < snap->nservers; i++)
      json_object_set_new(servers, snap->servers[i].id,
                          json_integer(snap->servers[i].tokens));
    for (i = 0; i < snap->nmsgs; i++) {
      json_t *m = json_object();
      json_object_set_new(m, "src", json_string(snap->msgs[i].src));
      json_object_set_new(m, "dst", json_string(snap->msgs[i].dst));
      json_object_set_new(m, "tokens", json_integer(snap->msgs[i].n));
      json_array_append_new(msgs, m);
    }
  }
  json_object_set_new(o, "servers", servers);
  json_object_set_new(o, "messages", msgs);
  shown = v->nproblems < CL_VERIFY_MAX_PROBLEMS ? v->nproblems
                                                 : CL_VERIFY_MAX_PROBLEMS;
  for (i = 0; i < shown; i++)
    json_array_append_new(problems, json_string(v->problems[i]));
  if (v->nproblems > shown) {
    char more[64];
    snprintf(more, sizeof more, "... and %zu more problems",
             v->nproblems - shown);
    json_array_append_new(problems, json_string(more));
  }
  json_object_set_new(o, "problems", problems);
  return o;
}

/* Dump and release a JSON value. */
void cl_json_print(json_t *j) {
  json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  fputc('\n', stdout);
  json_decref(j);
}

/* mkdir -p. Returns 0 or -1 with errno. */
static int mkdirs(const char *dir) {
  char buf[4096];
  size_t i, len = strlen(dir);
  if (len == 0 || len >= sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(buf, dir, len + 1);
  for (i = 1; i <= len; i++) {
    if (buf[i] == '/' || buf[i] == '\0') {
      char c = buf[i];
      buf[i] = '\0';
      if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return -1;
      buf[i] = c;
    }
  }
  return 0;
}

/* Write DIR/<id>.snap, creating DIR first. */
int cl_write_snap_file(const char *dir, uint64_t id, const cl_snap_t *snap) {
  char path[4200];
  FILE *f;
  int bad;
  if (mkdirs(dir) != 0) {
    cl_errf("cannot create directory %s: %s", dir, strerror(errno));
    return -1;
  }
  snprintf(path, sizeof path, "%s/%" PRIu64 ".snap", dir, id);
  f = fopen(path, "w");
  if (f == NULL) {
    cl_errf("cannot write %s: %s", path, strerror(errno));
    return -1;
  }
  bad = cl_snap_write(snap, f) < 0;
  bad |= ferror(f) != 0;
  bad |= fclose(f) != 0;
  if (bad) {
    cl_errf("cannot write %s", path);
    return -1;
  }
  return 0;
}

/* Milliseconds below a second, seconds above. */
void cl_format_duration(double seconds, char *buf, size_t size) {
  if (seconds < 1.0)
    snprintf(buf, size, "%.1f ms", seconds * 1000.0);
  else
    snprintf(buf, size, "%.2f s", seconds);
}
