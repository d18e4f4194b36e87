/* `clsnap bench`: start a local cluster in a generated topology, put it in
 * circulate mode (every daemon forwards the tokens it holds as fast as its
 * channels take them), measure token messages delivered per second, take
 * snapshots under that load every M ms and check each one, and report
 * snapshot latency and the daemons' peak RSS. With --baseline it first runs
 * clsnap-baseline (tests/bench/baseline.c: the same processes and
 * connections moving frames of a TOKEN's size with no processing at all) and
 * prints the ratio.
 *
 * Measuring: throughput is the sum over every daemon of its inbound channels'
 * `received` counts (STATUS) at the end of the window minus at its start,
 * divided by the wall time between the two STATUS rounds; the window starts
 * after a warm-up. Snapshot latency is from sending SNAPSHOT to receiving
 * the last STATE reply of its COLLECT (release=1); snapshots are taken one
 * at a time at a rotating initiator, ids 0, 1, 2, ...
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <time.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "collect.h"
#include "cluster_setup.h"
#include "cmds.h"
#include "daemons.h"
#include "error.h"
#include "output.h"
#include "progress.h"
#include "usage.h"
#include "verify.h"

#define BENCH_MAX_NODES 256 /* mesh: N-1 inbound + control per daemon */
/* Default tokens in the whole system, shared among the servers: 2 MiB of
 * TOKEN frames in flight, enough to keep this kind of machine's CPUs busy
 * whatever the number of servers (with too few, throughput is bound by
 * the time a token takes around, not by the machine). */
#define BENCH_DEFAULT_TOTAL_TOKENS 262144
#define BENCH_DEFAULT_WARMUP_MS 500
#define BENCH_MAX_SNAPSHOTS 1000000
#define BENCH_BASELINE_OUT_MAX 65536
#define BENCH_RECENT 16 /* latencies that decide how long collecting pauses */
#define BENCH_SLICE_MS 1000 /* --alternate: length of each slice */

typedef struct bench_args {
  const char *nodes, *topology, *seconds, *every, *tokens, *warmup;
  const char *baseline_program, *daemon, *log_dir, *trace_events;
  int idle, baseline, alternate, json, quiet, trace;
  int mesh;
  uint64_t nodes_v, seconds_v, every_ms, tokens_v, warmup_ms;
  uint64_t trace_events_v;
} bench_args_t;

/* parse_args: go on with the bench. */
#define BENCH_GO (-1)

typedef struct bench_result {
  double seconds;       /* measured window */
  uint64_t messages;    /* token messages delivered in the window */
  double tokens_per_s;
  size_t snapshots, snapshots_ok;
  uint64_t *lat_ns; /* [snapshots] */
  size_t lat_cap;
  uint64_t recorded_max; /* most in-flight messages in one snapshot */
  uint64_t runs_max;     /* most recorded runs (what STATEs carry) in one */
  size_t paused;         /* snapshots whose collection began with a pause */
  int alternated;        /* --alternate: the two rates below are apart */
  double tokens_per_s_without; /* --alternate: in the slices without */
  long rss_kib_max, rss_kib_sum;
  size_t rss_n;
  uint64_t traced_made, traced_kept; /* --trace: events, all servers */
  int have_baseline;
  double frames_per_s;
  uint64_t frame_bytes;
} bench_result_t;

/* The topology as .top text: ids N01.. (zero-padded so byte order is
 * numeric order), `tokens` each, ring or mesh links. Returns a malloc'd
 * string or NULL. */
static char *topology_text(size_t n, int mesh, uint64_t tokens) {
  size_t cap = 64 + n * 48 + (mesh ? n * n * 24 : n * 24), len = 0, i, j;
  int width = n < 100 ? 2 : 3;
  char *s = malloc(cap);
  if (s == NULL)
    return NULL;
  len += (size_t)snprintf(s + len, cap - len, "%zu\n", n);
  for (i = 0; i < n; i++)
    len += (size_t)snprintf(s + len, cap - len, "N%0*zu %" PRIu64 "\n", width,
                            i + 1, tokens);
  for (i = 0; i < n; i++) {
    if (!mesh) {
      len += (size_t)snprintf(s + len, cap - len, "N%0*zu N%0*zu\n", width,
                              i + 1, width, (i + 1) % n + 1);
      continue;
    }
    for (j = 0; j < n; j++)
      if (j != i)
        len += (size_t)snprintf(s + len, cap - len, "N%0*zu N%0*zu\n", width,
                                i + 1, width, j + 1);
  }
  return s;
}

/* Send the same request to every server and check every reply is of type
 * `want`. Returns 0 and the replies in *out (free with
 * cl_cluster_free_replies), or CL_E* with err set. */
static int call_all(cl_cluster_t *c, const cl_msg_t *req, uint8_t want,
                    const char *what, cl_msg_t **out, char *err,
                    size_t errsize) {
  size_t n = cl_cluster_size(c), i;
  cl_msg_t *replies;
  int rc = cl_cluster_call_all(c, req, 30000, 0, &replies, err, errsize);
  for (i = 0; rc == 0 && i < n; i++) {
    if (replies[i].type == want)
      continue;
    if (replies[i].type == CL_MSG_ERROR)
      snprintf(err, errsize, "server %s refused %s: %s",
               cl_cluster_id(c, i), what, replies[i].u.error.text);
    else
      snprintf(err, errsize, "server %s answered %s with %s",
               cl_cluster_id(c, i), what, cl_msg_type_name(replies[i].type));
    cl_cluster_free_replies(c, replies);
    rc = CL_EIO;
  }
  if (rc == 0)
    *out = replies;
  return rc;
}

/* Sum of inbound `received` counts over every server (one STATUS round). */
static int total_received(cl_cluster_t *c, uint64_t *sum, char *err,
                          size_t errsize) {
  cl_msg_t req = {.type = CL_MSG_STATUS}, *reps;
  size_t i, k;
  int rc = call_all(c, &req, CL_MSG_STATUS_R, "STATUS", &reps, err, errsize);
  if (rc < 0)
    return rc;
  *sum = 0;
  for (i = 0; i < cl_cluster_size(c); i++)
    for (k = 0; k < reps[i].u.status.nin; k++)
      *sum += reps[i].u.status.in[k].received;
  cl_cluster_free_replies(c, reps);
  return 0;
}

/* One request everywhere, OK expected: CL_MSG_CIRCULATE (load mode on or
 * off), CL_MSG_WATCH (every snapshot bench starts: its local states are
 * pushed to this client as they complete) or CL_MSG_TRACE (on, with room
 * for `on` events per server). */
static int switch_all(cl_cluster_t *c, uint8_t type, int on, char *err,
                      size_t errsize) {
  cl_msg_t req = {.type = type}, *reps;
  int rc;
  if (type == CL_MSG_WATCH) {
    req.u.watch.first = 0;
    req.u.watch.count = UINT64_MAX;
  } else if (type == CL_MSG_TRACE) {
    req.u.trace.on = 1;
    req.u.trace.max_events = (uint64_t)on;
  } else {
    req.u.circulate.on = (uint8_t)(on != 0);
  }
  rc = call_all(c, &req, CL_MSG_OK, cl_msg_type_name(type), &reps, err,
                errsize);
  if (rc == 0)
    cl_cluster_free_replies(c, reps);
  return rc;
}

/* The cluster's guard while bench runs: the launcher's (a daemon died, the
 * user pressed Ctrl-C), and, while `armed`, "a server not yet collected
 * has completed snapshot id" (CL_EAGAIN), which ends a wait early so its
 * state can be collected at once. */
typedef struct bench_guard {
  cl_launcher_t *launcher;
  cl_cluster_t *cluster;
  uint64_t id;
  const uint8_t *asked; /* [n]: COLLECT sent */
  int armed;
} bench_guard_t;

/* cl_guard_fn of bench (ctx: bench_guard_t). 0, the launcher's code, or
 * CL_EAGAIN while armed and a new completion is there. */
static int bench_guard(void *ctx, char *err, size_t errsize) {
  bench_guard_t *g = ctx;
  size_t i, n;
  int rc = cl_launcher_guard(g->launcher, err, errsize);
  if (rc < 0 || !g->armed)
    return rc;
  n = cl_cluster_size(g->cluster);
  for (i = 0; i < n; i++)
    if (!g->asked[i] && cl_cluster_has_completed(g->cluster, g->id, i)) {
      snprintf(err, errsize, "a server completed");
      return CL_EAGAIN;
    }
  return 0;
}

/* Let ms pass without running the loop: nothing wakes this process, not
 * even what the servers send (it waits in the kernel; stopping the reads
 * instead would cost two epoll_ctl per connection), then take in one go
 * what arrived meanwhile. A signal ends the pause early; the loop then
 * sees it. */
static int pause_then_read(cl_cluster_t *c, uint64_t ms, char *err,
                           size_t errsize) {
  struct timespec ts;
  ts.tv_sec = (time_t)(ms / 1000);
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  (void)nanosleep(&ts, NULL);
  return cl_cluster_sleep(c, 0, err, errsize);
}

/* What one snapshot came to (one_snapshot). */
typedef struct snap_outcome {
  int ok;           /* the verdict */
  uint64_t lat_ns;  /* SNAPSHOT sent to the last state in */
  size_t nrecorded; /* in-flight messages recorded */
  size_t nruns;     /* recorded runs (what the states carry) */
} snap_outcome_t;

/* One snapshot's states being taken in: arrays of one entry per server. */
typedef struct snap_take {
  cl_cluster_t *c;
  uint64_t id, t0, pause_ms;
  size_t n, got;
  cl_msg_t *reqs, *reps;     /* the COLLECT batch and its replies */
  cl_msg_t *kept;            /* [got] states taken (owned) */
  uint32_t *batch;           /* servers of the COLLECT batch */
  uint8_t *asked;            /* state taken or COLLECT sent */
  cl_local_state_t *states;  /* kept's states, for the check */
  cl_verdict_t *v;
} snap_take_t;

/* Room for snapshot id of c. Returns 0 or CL_ENOMEM (take_free still
 * needed). */
static int take_alloc(snap_take_t *x, cl_cluster_t *c, uint64_t id,
                      uint64_t pause_ms) {
  size_t n = cl_cluster_size(c);
  memset(x, 0, sizeof *x);
  x->c = c;
  x->id = id;
  x->pause_ms = pause_ms;
  x->n = n;
  x->reqs = calloc(n, sizeof *x->reqs);
  x->reps = calloc(n, sizeof *x->reps);
  x->states = calloc(n, sizeof *x->states);
  x->batch = calloc(n, sizeof *x->batch);
  x->asked = calloc(n, 1);
  x->kept = calloc(n, sizeof *x->kept);
  x->v = malloc(sizeof *x->v);
  return x->reqs == NULL || x->reps == NULL || x->states == NULL ||
                 x->batch == NULL || x->asked == NULL || x->kept == NULL ||
                 x->v == NULL
             ? CL_ENOMEM
             : 0;
}

/* Free what take_alloc made and the states taken. */
static void take_free(snap_take_t *x) {
  size_t i;
  for (i = 0; x->kept != NULL && i < x->got; i++)
    cl_msg_free(&x->kept[i]);
  free(x->kept);
  free(x->reqs);
  free(x->reps);
  free(x->states);
  free(x->batch);
  free(x->asked);
  free(x->v);
}

/* SNAPSHOT id at server `at`; a refusal is CL_EIO with err saying why. */
static int start_snapshot(cl_cluster_t *c, uint64_t id, size_t at, char *err,
                          size_t errsize) {
  uint32_t sv = (uint32_t)at;
  cl_msg_t req, rep;
  int rc;
  memset(&req, 0, sizeof req);
  memset(&rep, 0, sizeof rep);
  req.type = CL_MSG_SNAPSHOT;
  req.u.snapshot.has_id = 1;
  req.u.snapshot.snapshot_id = id;
  rc = cl_cluster_call(c, 1, &sv, &req, &rep, 30000, err, errsize);
  if (rc == 0 && rep.type != CL_MSG_OK) {
    snprintf(err, errsize, "server %s refused SNAPSHOT %" PRIu64 ": %.200s",
             cl_cluster_id(c, at), id,
             rep.type == CL_MSG_ERROR ? rep.u.error.text : "?");
    rc = CL_EIO;
  }
  cl_msg_free(&rep);
  return rc;
}

/* Of the servers that completed the snapshot and are not asked yet: take
 * the states pushed already (WATCH), and make a COLLECT (release) for each
 * of the others. Returns the size of that batch. */
static size_t take_completed(snap_take_t *x) {
  size_t i, k = 0;
  for (i = 0; i < x->n; i++) {
    if (x->asked[i] || !cl_cluster_has_completed(x->c, x->id, i))
      continue;
    x->asked[i] = 1;
    if (cl_cluster_take_state(x->c, x->id, i, &x->kept[x->got])) {
      x->got++;
      continue;
    }
    x->batch[k] = (uint32_t)i;
    memset(&x->reqs[k], 0, sizeof x->reqs[k]);
    x->reqs[k].type = CL_MSG_COLLECT;
    x->reqs[k].u.collect.snapshot_id = x->id;
    x->reqs[k].u.collect.release = 1;
    k++;
  }
  return k;
}

/* Nothing to collect now: wait for more servers to complete, in rounds of
 * a quarter of the pause (one wake-up for what came in during each, not
 * one per state) while there is a pause, else until one completes (the
 * guard's CL_EAGAIN, not an error) within what is left of the 30 s a
 * snapshot may take. Returns 0 or a negative CL_E* code. */
static int wait_completed(snap_take_t *x, bench_guard_t *g, char *err,
                          size_t errsize) {
  uint64_t spent_ms;
  int rc;
  if (x->pause_ms > 0 && cl_now_ns() - x->t0 < 30000000000ull)
    return pause_then_read(x->c, x->pause_ms / 4 ? x->pause_ms / 4 : 1, err,
                           errsize);
  spent_ms = (cl_now_ns() - x->t0) / 1000000;
  g->armed = 1;
  rc = cl_cluster_wait_complete(x->c, &x->id, 1,
                                spent_ms < 30000 ? 30000 - spent_ms : 1, err,
                                errsize);
  g->armed = 0;
  return rc == CL_EAGAIN ? 0 : rc;
}

/* COLLECT the batch of k and keep the replies; each must be a STATE. */
static int collect_batch(snap_take_t *x, size_t k, char *err,
                         size_t errsize) {
  size_t i;
  int rc = cl_cluster_call(x->c, k, x->batch, x->reqs, x->reps, 30000, err,
                           errsize);
  if (rc < 0)
    return rc;
  for (i = 0; i < k; i++) { /* all kept, so that all are freed */
    const cl_msg_t *m = &x->reps[i];
    x->kept[x->got++] = *m;
    if (m->type != CL_MSG_STATE && rc == 0) {
      snprintf(err, errsize, "server %s answered COLLECT with %s%s%.200s",
               cl_cluster_id(x->c, x->batch[i]), cl_msg_type_name(m->type),
               m->type == CL_MSG_ERROR ? ": " : "",
               m->type == CL_MSG_ERROR ? m->u.error.text : "");
      rc = CL_EIO;
    }
  }
  return rc;
}

/* Check the states taken; a failed check is printed to stderr. */
static void check_taken(snap_take_t *x, const cl_topology_t *topo,
                        snap_outcome_t *out) {
  size_t i;
  for (i = 0; i < x->n; i++)
    x->states[i] = x->kept[i].u.state;
  cl_verify(topo, NULL, x->states, x->n, x->v);
  out->ok = x->v->ok;
  out->nrecorded = x->v->nrecorded;
  out->nruns = 0;
  for (i = 0; i < x->n; i++)
    out->nruns += x->states[i].nrecorded;
  if (!x->v->ok) {
    cl_cli_errf("snapshot %" PRIu64 " failed its checks:", x->id);
    cl_output_checked(stderr, x->id, NULL, x->v, 1);
  }
}

/* One snapshot: SNAPSHOT id at server `at`, then COLLECT (release) from each
 * server as soon as it reports the snapshot complete, so collecting overlaps
 * the markers still travelling; check. A failed check is printed to
 * stderr; it is not an error of this function. */
static int one_snapshot(cl_cluster_t *c, bench_guard_t *g,
                        const cl_topology_t *topo, uint64_t id, size_t at,
                        uint64_t pause_ms, snap_outcome_t *out, char *err,
                        size_t errsize) {
  snap_take_t x;
  int rc = take_alloc(&x, c, id, pause_ms);
  if (rc < 0) {
    snprintf(err, errsize, "out of memory");
    take_free(&x);
    return rc;
  }
  x.t0 = cl_now_ns();
  rc = start_snapshot(c, id, at, err, errsize);
  /* Most states cannot be here before pause_ms (below the fastest recent
   * snapshot): let them queue in the kernel and take them in one wake-up
   * instead of one each, so collecting costs the loaded daemons fewer
   * preemptions. Only a snapshot much faster than the recent ones is seen
   * late, by at most pause_ms. */
  if (rc == 0 && pause_ms > 0)
    rc = pause_then_read(c, pause_ms, err, errsize);
  g->id = id;
  g->asked = x.asked;
  while (rc == 0 && x.got < x.n) {
    size_t k = take_completed(&x);
    if (x.got < x.n)
      rc = k == 0 ? wait_completed(&x, g, err, errsize)
                  : collect_batch(&x, k, err, errsize);
  }
  if (rc == 0) {
    out->lat_ns = cl_now_ns() - x.t0;
    cl_cluster_forget(c, id);
    check_taken(&x, topo, out);
  }
  g->armed = 0;
  g->asked = NULL;
  take_free(&x);
  return rc;
}

/* VmHWM (peak RSS, KiB) of every child of this process: by the time it is
 * called those are the daemons (the baseline has exited), whatever their
 * executable is called (--daemon may name a wrapper). */
static void peak_rss(bench_result_t *r) {
  DIR *dir = opendir("/proc");
  struct dirent *e;
  pid_t self = getpid();
  if (dir == NULL)
    return;
  while ((e = readdir(dir)) != NULL) {
    char path[300], buf[4096], *p;
    FILE *f;
    long ppid = -1, hwm = -1;
    size_t len;
    if (e->d_name[0] < '0' || e->d_name[0] > '9')
      continue;
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    f = fopen(path, "r");
    if (f == NULL)
      continue;
    len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    /* "pid (comm) state ppid ...": comm may hold spaces, so go from ')'. */
    p = strrchr(buf, ')');
    if (p == NULL || sscanf(p + 1, " %*c %ld", &ppid) != 1 || ppid != self)
      continue;
    snprintf(path, sizeof path, "/proc/%s/status", e->d_name);
    f = fopen(path, "r");
    if (f == NULL)
      continue;
    while (fgets(buf, sizeof buf, f) != NULL)
      if (sscanf(buf, "VmHWM: %ld", &hwm) == 1)
        break;
    fclose(f);
    if (hwm < 0)
      continue;
    if (hwm > r->rss_kib_max)
      r->rss_kib_max = hwm;
    r->rss_kib_sum += hwm;
    r->rss_n++;
  }
  closedir(dir);
}

/* Nearest-rank percentile of sorted v[n]. */
static uint64_t percentile(const uint64_t *v, size_t n, double p) {
  size_t k;
  if (n == 0)
    return 0;
  k = (size_t)ceil(p * (double)n);
  if (k < 1)
    k = 1;
  if (k > n)
    k = n;
  return v[k - 1];
}

/* qsort order of uint64_t. */
static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Find clsnap-baseline: explicit path, next to this executable, the build
 * tree's tests/bench, then PATH. */
static void find_baseline(const char *explicit_path, char *out, size_t n) {
  char exe[PATH_MAX], cand[PATH_MAX + 64];
  ssize_t len;
  char *slash;
  const char *rel[] = {"clsnap-baseline", "../tests/bench/clsnap-baseline"};
  size_t i;
  if (explicit_path != NULL) {
    snprintf(out, n, "%s", explicit_path);
    return;
  }
  len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len > 0) {
    exe[len] = '\0';
    slash = strrchr(exe, '/');
    if (slash != NULL) {
      *slash = '\0';
      for (i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        if ((size_t)snprintf(cand, sizeof cand, "%s/%s", exe, rel[i]) >=
            sizeof cand)
          continue;
        if (access(cand, X_OK) == 0 &&
            (size_t)snprintf(out, n, "%s", cand) < n)
          return;
      }
    }
  }
  snprintf(out, n, "clsnap-baseline");
}

/* Run clsnap-baseline --json and take frames_per_s and frame_bytes. */
static int run_baseline(const char *prog, size_t nodes, int mesh,
                        uint64_t seconds, uint64_t warmup_ms,
                        bench_result_t *r, char *err, size_t errsize) {
  char path[PATH_MAX], ns[32], ss[32], ws[32];
  char *out = malloc(BENCH_BASELINE_OUT_MAX);
  size_t len = 0;
  int fds[2], status;
  pid_t pid;
  json_t *j;
  json_error_t je;
  if (out == NULL)
    return CL_ENOMEM;
  find_baseline(prog, path, sizeof path);
  snprintf(ns, sizeof ns, "%zu", nodes);
  snprintf(ss, sizeof ss, "%" PRIu64, seconds);
  snprintf(ws, sizeof ws, "%" PRIu64, warmup_ms);
  if (pipe(fds) < 0) {
    free(out);
    snprintf(err, errsize, "pipe failed");
    return CL_EIO;
  }
  fflush(NULL);
  pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    free(out);
    snprintf(err, errsize, "fork failed");
    return CL_EIO;
  }
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    execlp(path, path, "--nodes", ns, "--topology", mesh ? "mesh" : "ring",
           "--seconds", ss, "--warmup-ms", ws, "--json", (char *)NULL);
    fprintf(stderr, "clsnap: cannot run %s\n", path);
    _exit(127);
  }
  close(fds[1]);
  for (;;) {
    ssize_t k = read(fds[0], out + len, BENCH_BASELINE_OUT_MAX - 1 - len);
    if (k <= 0)
      break;
    len += (size_t)k;
    if (len >= BENCH_BASELINE_OUT_MAX - 1)
      break;
  }
  out[len] = '\0';
  close(fds[0]);
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      snprintf(err, errsize, "waitpid failed");
      free(out);
      return CL_EIO;
    }
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    snprintf(err, errsize, "%.300s failed (exit %d)", path,
             WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    free(out);
    return CL_EIO;
  }
  j = json_loads(out, 0, &je);
  free(out);
  if (j == NULL || !json_is_number(json_object_get(j, "frames_per_s"))) {
    snprintf(err, errsize, "%.300s printed no frames_per_s", path);
    json_decref(j);
    return CL_EIO;
  }
  r->frames_per_s = json_number_value(json_object_get(j, "frames_per_s"));
  r->frame_bytes =
      (uint64_t)json_integer_value(json_object_get(j, "frame_bytes"));
  r->have_baseline = 1;
  json_decref(j);
  return 0;
}

/* From here on (the daemons are started and keep the normal policy) this
 * process is SCHED_BATCH: its wake-ups for replies and pushed states do not
 * preempt a daemon moving tokens, they wait for the next switch on that
 * CPU, where several arrivals are often handled at once (8-server mesh,
 * 32768 tokens each, snapshot every 10 ms: throughput cost 5.5% -> 3.9%,
 * mean of 3 interleaved runs). Failure (no such policy) changes nothing
 * but that. */
static void batch_sched(void) {
  struct sched_param p;
  memset(&p, 0, sizeof p);
  (void)sched_setscheduler(0, SCHED_BATCH, &p);
}

/* How long to pause after starting a snapshot: 0.8 x the fastest of
 * the last BENCH_RECENT snapshots, in whole ms (0 before there are any).
 * The fastest, not a mean: one slow snapshot must not make the next ones
 * wait (a paused snapshot is measured no faster than its pause, which would
 * feed back into a mean). */
static uint64_t pause_for(const uint64_t *recent, size_t taken) {
  size_t i, n = taken < BENCH_RECENT ? taken : BENCH_RECENT;
  uint64_t least = UINT64_MAX;
  for (i = 0; i < n; i++)
    if (recent[i] < least)
      least = recent[i];
  return n == 0 ? 0 : least * 8 / 10000000; /* ns -> 0.8 x, in ms */
}

/* The measured window under way. */
typedef struct window {
  uint64_t t0, end;        /* the window */
  uint64_t slice_end;      /* of the slice under way (--alternate), or end */
  uint64_t next;           /* when the next snapshot is due */
  uint64_t mark, mark_sum; /* end of the last slice, messages then */
  uint64_t id;             /* of the next snapshot */
  uint64_t recent[BENCH_RECENT]; /* latest latencies, ns (ring) */
  uint64_t msgs[2], ns[2]; /* [0] slices without snapshots, [1] with */
  int on;                  /* snapshots in this slice */
  uint64_t show;           /* next status line, or 0: none (cmd/progress) */
  uint64_t show_at, show_sum; /* time and messages at the last one */
} window_t;

/* Watch every snapshot, circulate on (unless idle), warm up, then open the
 * window. */
static int window_start(cl_cluster_t *c, const bench_args_t *a, window_t *w,
                        char *err, size_t errsize) {
  uint64_t sum0 = 0;
  int rc;
  memset(w, 0, sizeof *w);
  if ((rc = switch_all(c, CL_MSG_WATCH, 1, err, errsize)) < 0)
    return rc;
  if (!a->idle && (rc = switch_all(c, CL_MSG_CIRCULATE, 1, err, errsize)) < 0)
    return rc;
  if ((rc = cl_cluster_sleep(c, a->warmup_ms, err, errsize)) < 0)
    return rc;
  /* --trace: from the window's start, so the buffers fill while it is
   * measured. */
  if (a->trace && (rc = switch_all(c, CL_MSG_TRACE, (int)a->trace_events_v,
                                   err, errsize)) < 0)
    return rc;
  if ((rc = total_received(c, &sum0, err, errsize)) < 0)
    return rc;
  w->t0 = w->mark = cl_now_ns();
  w->mark_sum = sum0;
  w->end = w->t0 + a->seconds_v * 1000000000ull;
  w->slice_end =
      a->alternate ? w->t0 + BENCH_SLICE_MS * 1000000ull : w->end;
  w->next = w->t0;
  w->on = !a->alternate;
  if (cl_progress_mode() != CL_PROGRESS_OFF) {
    w->show = w->t0 + 1000000000ull;
    w->show_at = w->t0;
    w->show_sum = sum0;
  }
  return 0;
}

/* The earlier of t and the next status line. */
static uint64_t or_show(const window_t *w, uint64_t t) {
  return w->show != 0 && w->show < t ? w->show : t;
}

/* Once a second while the status line is on (never otherwise): the rate
 * since the last one, which takes a STATUS round (the counts are in the
 * daemons; a few hundred bytes each way, against the millions of token
 * messages of that second), and one line. */
static int show_rate(cl_cluster_t *c, window_t *w, const bench_args_t *a,
                     const bench_result_t *r, char *err, size_t errsize) {
  uint64_t sum, done, now = cl_now_ns();
  double secs, mps;
  int rc;
  w->show = now + 1000000000ull;
  if (!cl_progress_due())
    return 0;
  if ((rc = total_received(c, &sum, err, errsize)) < 0)
    return rc;
  now = cl_now_ns();
  secs = (double)(now - w->show_at) / 1e9;
  done = (now - w->t0 + 500000000ull) / 1000000000ull;
  mps = (double)(sum - w->show_sum) / secs / 1e6;
  if (a->every_ms > 0)
    cl_progress_show("bench: %" PRIu64 "/%" PRIu64 " s, %.1f M token "
                     "messages/s, snapshots %zu (%zu passed)",
                     done, a->seconds_v, mps, r->snapshots, r->snapshots_ok);
  else
    cl_progress_show("bench: %" PRIu64 "/%" PRIu64 " s, %.1f M token "
                     "messages/s", done, a->seconds_v, mps);
  w->show_at = now;
  w->show_sum = sum;
  return 0;
}

/* A slice (or the window) is over: count it where it belongs. Returns 1
 * when the window is over, 0 when the next slice begins, or CL_E*. */
static int slice_over(cl_cluster_t *c, window_t *w, char *err,
                      size_t errsize) {
  uint64_t sum, now;
  int rc = total_received(c, &sum, err, errsize);
  if (rc < 0)
    return rc;
  now = cl_now_ns();
  w->msgs[w->on] += sum - w->mark_sum;
  w->ns[w->on] += now - w->mark;
  w->mark = now;
  w->mark_sum = sum;
  if (now >= w->end)
    return 1;
  w->on = !w->on;
  w->slice_end = now + BENCH_SLICE_MS * 1000000ull;
  w->next = now;
  return 0;
}

/* Run the loop from now until `until` (ns), rounded up to whole ms. */
static int sleep_until(cl_cluster_t *c, uint64_t now, uint64_t until,
                       char *err, size_t errsize) {
  return cl_cluster_sleep(c, (until - now + 999999) / 1000000, err, errsize);
}

/* Room for one more latency in r. Returns 0, 1 when BENCH_MAX_SNAPSHOTS
 * are taken, or CL_ENOMEM. */
static int latency_room(bench_result_t *r, char *err, size_t errsize) {
  size_t ncap = r->lat_cap ? r->lat_cap * 2 : 1024;
  uint64_t *nv;
  if (r->snapshots < r->lat_cap)
    return 0;
  if (ncap > BENCH_MAX_SNAPSHOTS)
    return 1;
  nv = realloc(r->lat_ns, ncap * sizeof *nv);
  if (nv == NULL) {
    snprintf(err, errsize, "out of memory");
    return CL_ENOMEM;
  }
  r->lat_ns = nv;
  r->lat_cap = ncap;
  return 0;
}

/* Take the snapshot that is due, at a rotating initiator, and count it. */
static int take_next(cl_cluster_t *c, bench_guard_t *g,
                     const cl_topology_t *topo, uint64_t every_ms,
                     window_t *w, bench_result_t *r, char *err,
                     size_t errsize) {
  snap_outcome_t o;
  uint64_t pause_ms = pause_for(w->recent, r->snapshots);
  size_t n = cl_cluster_size(c);
  int rc;
  memset(&o, 0, sizeof o);
  rc = one_snapshot(c, g, topo, w->id, (size_t)(w->id % n), pause_ms, &o,
                    err, errsize);
  r->paused += pause_ms > 0;
  if (rc < 0)
    return rc;
  r->lat_ns[r->snapshots++] = o.lat_ns;
  w->recent[(r->snapshots - 1) % BENCH_RECENT] = o.lat_ns;
  r->snapshots_ok += o.ok != 0;
  if (o.nrecorded > r->recorded_max)
    r->recorded_max = o.nrecorded;
  if (o.nruns > r->runs_max)
    r->runs_max = o.nruns;
  w->id++;
  w->next += every_ms * 1000000ull;
  if (w->next < cl_now_ns())
    w->next = cl_now_ns(); /* one at a time: a slow one delays the rest */
  return 0;
}

/* The measured part: circulate on, warm up, window with snapshots. With
 * `alternate`, the window is cut into BENCH_SLICE_MS slices, without and
 * with snapshots in turn (starting without), each ended by a STATUS round,
 * and the two rates are measured apart: the cost of snapshots then comes
 * from one cluster in one run, not from two runs that differ by more than
 * that on a busy machine. */
static int measure(cl_cluster_t *c, bench_guard_t *g,
                   const cl_topology_t *topo, const bench_args_t *a,
                   bench_result_t *r, char *err, size_t errsize) {
  window_t w;
  int rc = window_start(c, a, &w, err, errsize);
  while (rc >= 0) {
    uint64_t now = cl_now_ns();
    if (now >= w.slice_end || now >= w.end) {
      if ((rc = slice_over(c, &w, err, errsize)) == 1)
        break;
    } else if (w.show != 0 && now >= w.show) {
      rc = show_rate(c, &w, a, r, err, errsize);
    } else if (a->every_ms == 0 || !w.on) {
      rc = sleep_until(
          c, now, or_show(&w, w.slice_end < w.end ? w.slice_end : w.end), err,
          errsize);
    } else if (now < w.next) {
      rc = sleep_until(
          c, now, or_show(&w, w.next < w.slice_end ? w.next : w.slice_end),
          err, errsize);
    } else if ((rc = latency_room(r, err, errsize)) == 0) {
      rc = take_next(c, g, topo, a->every_ms, &w, r, err, errsize);
    } else if (rc == 1) {
      break;
    }
  }
  if (rc < 0)
    return rc;
  r->seconds = (double)(w.mark - w.t0) / 1e9;
  r->messages = w.msgs[0] + w.msgs[1];
  /* Without `alternate` everything is counted as "with" (on is 1). */
  r->tokens_per_s =
      w.ns[1] ? (double)w.msgs[1] / ((double)w.ns[1] / 1e9) : 0;
  if (a->alternate) {
    r->alternated = 1;
    r->tokens_per_s_without =
        w.ns[0] ? (double)w.msgs[0] / ((double)w.ns[0] / 1e9) : 0;
  }
  peak_rss(r);
  rc = 0;
  if (a->trace) {
    cl_backend_t be = cl_cluster_backend(c);
    const char **ids = calloc(topo->nservers, sizeof *ids);
    size_t k;
    if (ids == NULL)
      return CL_ENOMEM;
    for (k = 0; k < topo->nservers; k++)
      ids[k] = topo->servers[k].id;
    /* Stopped first: the load goes on, and a trace still recording would
     * drop more between the two reads of cl_collect_counts. */
    rc = cl_collect_switch(&be, topo->nservers, ids, 0, 0, err, errsize);
    if (rc == 0)
      rc = cl_collect_counts(&be, topo->nservers, ids, &r->traced_made,
                             &r->traced_kept, err, errsize);
    free(ids);
  }
  return rc;
}

/* Latency percentiles of a run, in microseconds. */
typedef struct latency {
  uint64_t p50, p99, max;
} latency_t;

/* The results as one JSON object. */
static void print_json(const bench_args_t *a, size_t nodes, size_t nlinks,
                       const bench_result_t *r, const latency_t *l) {
  json_t *o = json_object(), *lat = json_object();
  json_object_set_new(o, "nodes", json_integer((json_int_t)nodes));
  json_object_set_new(o, "topology", json_string(a->mesh ? "mesh" : "ring"));
  json_object_set_new(o, "channels", json_integer((json_int_t)nlinks));
  json_object_set_new(o, "tokens_per_server",
                      json_integer((json_int_t)a->tokens_v));
  json_object_set_new(o, "load", json_boolean(!a->idle));
  json_object_set_new(o, "snapshot_every_ms",
                      json_integer((json_int_t)a->every_ms));
  json_object_set_new(o, "seconds", json_real(r->seconds));
  json_object_set_new(o, "messages", json_integer((json_int_t)r->messages));
  json_object_set_new(o, "tokens_per_s", json_real(r->tokens_per_s));
  if (r->alternated) {
    json_object_set_new(o, "tokens_per_s_without",
                        json_real(r->tokens_per_s_without));
    json_object_set_new(
        o, "snapshot_cost",
        json_real(r->tokens_per_s_without > 0
                      ? 1 - r->tokens_per_s / r->tokens_per_s_without
                      : 0));
  }
  json_object_set_new(o, "snapshots", json_integer((json_int_t)r->snapshots));
  json_object_set_new(o, "snapshots_ok",
                      json_integer((json_int_t)r->snapshots_ok));
  json_object_set_new(o, "recorded_max",
                      json_integer((json_int_t)r->recorded_max));
  json_object_set_new(o, "recorded_runs_max",
                      json_integer((json_int_t)r->runs_max));
  json_object_set_new(o, "paused", json_integer((json_int_t)r->paused));
  json_object_set_new(lat, "p50", json_integer((json_int_t)l->p50));
  json_object_set_new(lat, "p99", json_integer((json_int_t)l->p99));
  json_object_set_new(lat, "max", json_integer((json_int_t)l->max));
  json_object_set_new(o, "latency_us", lat);
  if (a->trace)
    json_object_set_new(o, "trace",
                        json_pack("{s:I, s:I, s:I}", "events_per_server",
                                  (json_int_t)a->trace_events_v, "made",
                                  (json_int_t)r->traced_made, "kept",
                                  (json_int_t)r->traced_kept));
  json_object_set_new(o, "rss_kib_max", json_integer(r->rss_kib_max));
  json_object_set_new(
      o, "rss_kib_mean",
      json_integer(r->rss_n ? r->rss_kib_sum / (long)r->rss_n : 0));
  if (r->have_baseline) {
    json_t *b = json_object();
    json_object_set_new(b, "frames_per_s", json_real(r->frames_per_s));
    json_object_set_new(b, "frame_bytes",
                        json_integer((json_int_t)r->frame_bytes));
    json_object_set_new(o, "baseline", b);
    json_object_set_new(o, "ratio",
                        json_real(r->frames_per_s > 0
                                      ? r->tokens_per_s / r->frames_per_s
                                      : 0));
  }
  cl_json_print(o);
}

/* The results as lines of text. */
static void print_text(const bench_args_t *a, size_t nodes, size_t nlinks,
                       const bench_result_t *r, const latency_t *l) {
  printf("%zu nodes, %s (%zu channels), %" PRIu64 " tokens each, %s\n",
         nodes, a->mesh ? "mesh" : "ring", nlinks, a->tokens_v,
         a->idle ? "idle" : "circulating");
  if (r->have_baseline)
    printf("baseline:    %14.0f frames/s (%" PRIu64 "-byte frames)\n",
           r->frames_per_s, r->frame_bytes);
  if (r->alternated)
    printf("clsnap:      %14.0f token messages/s in the slices with "
           "snapshots (%" PRIu64 " in all in %.2f s)\n",
           r->tokens_per_s, r->messages, r->seconds);
  else
    printf("clsnap:      %14.0f token messages/s (%" PRIu64 " in %.2f s)\n",
           r->tokens_per_s, r->messages, r->seconds);
  if (r->have_baseline && r->frames_per_s > 0)
    printf("ratio:       %14.3f\n", r->tokens_per_s / r->frames_per_s);
  if (r->alternated && r->tokens_per_s_without > 0)
    printf("alternating: %14.0f token messages/s in the slices without "
           "snapshots; those with them %.1f%% %s\n",
           r->tokens_per_s_without,
           100 * fabs(1 - r->tokens_per_s / r->tokens_per_s_without),
           r->tokens_per_s <= r->tokens_per_s_without ? "lower" : "higher");
  if (a->trace)
    printf("tracing:     %" PRIu64 " events made, %" PRIu64 " kept (room "
           "for %" PRIu64 " per server), the rest counted as dropped\n",
           r->traced_made, r->traced_kept, a->trace_events_v);
  if (a->every_ms > 0)
    printf("snapshots:   %zu taken, %zu passed; latency us p50 %" PRIu64
           " p99 %" PRIu64 " max %" PRIu64 "; at most %" PRIu64
           " messages in flight recorded (%" PRIu64 " runs)\n",
           r->snapshots, r->snapshots_ok, l->p50, l->p99, l->max,
           r->recorded_max, r->runs_max);
  printf("peak RSS:    %ld KiB max, %ld KiB mean per daemon\n", r->rss_kib_max,
         r->rss_n ? r->rss_kib_sum / (long)r->rss_n : 0);
}

/* Print the results as text or JSON (sorts the latencies). */
static void print_result(const bench_args_t *a, size_t nodes, size_t nlinks,
                         bench_result_t *r) {
  latency_t l;
  if (r->snapshots > 0) /* lat_ns is NULL without snapshots */
    qsort(r->lat_ns, r->snapshots, sizeof *r->lat_ns, cmp_u64);
  l.p50 = percentile(r->lat_ns, r->snapshots, 0.50) / 1000;
  l.p99 = percentile(r->lat_ns, r->snapshots, 0.99) / 1000;
  l.max = r->snapshots ? r->lat_ns[r->snapshots - 1] / 1000 : 0;
  if (a->json)
    print_json(a, nodes, nlinks, r, &l);
  else
    print_text(a, nodes, nlinks, r, &l);
}

/* Check the options against each other and parse the numbers. Returns
 * BENCH_GO or CL_EXIT_USAGE (printed). */
static int check_args(bench_args_t *a) {
  if (a->nodes == NULL || a->topology == NULL || a->seconds == NULL) {
    return cl_cli_usage("needs --nodes, --topology and --seconds");
  }
  if (strcmp(a->topology, "ring") != 0 && strcmp(a->topology, "mesh") != 0) {
    return cl_cli_usage("--topology must be ring or mesh, not '%s'",
                        a->topology);
  }
  a->mesh = strcmp(a->topology, "mesh") == 0;
  a->warmup_ms = BENCH_DEFAULT_WARMUP_MS;
  if (cl_cli_u64("--nodes", a->nodes, 2, BENCH_MAX_NODES, &a->nodes_v) ||
      cl_cli_u64("--seconds", a->seconds, 1, 3600, &a->seconds_v) ||
      cl_cli_u64("--snapshot-every-ms", a->every, 0, 3600000, &a->every_ms) ||
      cl_cli_u64("--tokens", a->tokens, 0, 1000000000, &a->tokens_v) ||
      cl_cli_u64("--warmup-ms", a->warmup, 0, 600000, &a->warmup_ms) ||
      cl_cli_u64("--trace-events", a->trace_events, 2, 16777216,
                 &a->trace_events_v))
    return CL_EXIT_USAGE;
  if (a->trace_events != NULL && !a->trace)
    return cl_cli_usage("--trace-events goes with --trace");
  if (a->trace && a->trace_events == NULL)
    a->trace_events_v = 262144;
  if (a->tokens == NULL)
    a->tokens_v = BENCH_DEFAULT_TOTAL_TOKENS / a->nodes_v;
  if (a->idle && a->baseline)
    return cl_cli_usage("--idle and --baseline exclude each other");
  if (a->alternate && (a->every_ms == 0 || a->seconds_v < 2))
    return cl_cli_usage("--alternate needs --snapshot-every-ms and --seconds "
                        "2 or more");
  return cl_daemons_check(a->daemon, a->log_dir) < 0 ? CL_EXIT_USAGE
                                                     : BENCH_GO;
}

/* Parse bench's command line into a. Returns BENCH_GO, or the exit status
 * after --help or a usage error. */
static int parse_args(bench_args_t *a, int argc, char **argv) {
  const cl_opt_t opts[] = {{"nodes", 0, 1, &a->nodes, NULL},
                           {"topology", 0, 1, &a->topology, NULL},
                           {"seconds", 0, 1, &a->seconds, NULL},
                           {"snapshot-every-ms", 0, 1, &a->every, NULL},
                           {"tokens", 0, 1, &a->tokens, NULL},
                           {"warmup-ms", 0, 1, &a->warmup, NULL},
                           {"idle", 0, 0, NULL, &a->idle},
                           {"alternate", 0, 0, NULL, &a->alternate},
                           {"trace", 0, 0, NULL, &a->trace},
                           {"trace-events", 0, 1, &a->trace_events, NULL},
                           {"baseline", 0, 0, NULL, &a->baseline},
                           {"baseline-program", 0, 1, &a->baseline_program,
                            NULL},
                           {"daemon", 0, 1, &a->daemon, NULL},
                           {"log-dir", 0, 1, &a->log_dir, NULL},
                           {NULL, 0, 0, NULL, NULL}};
  const char *pos[1];
  if (cl_cli_parse(argc, argv, opts, pos, 0) < 0)
    return CL_EXIT_USAGE;
  if (cl_cli.help)
    return cl_cli_help("bench");
  a->json = cl_cli.json;
  a->quiet = cl_cli.quiet;
  return check_args(a);
}

/* Start the daemons, then (SCHED_BATCH from here on) open the cluster with
 * bench's guard. Returns 0, an exit status (printed) or a negative CL_E*
 * code with err set. */
static int start_daemons(cl_daemons_t *d, const bench_args_t *a,
                         const cl_topology_t *topo, bench_guard_t *guard,
                         char *err, size_t errsize) {
  cl_launch_opts_t lo;
  int rc;
  memset(&lo, 0, sizeof lo);
  lo.daemon = a->daemon;
  lo.log_dir = a->log_dir;
  lo.extra = "--log-level=warn";
  if ((rc = cl_daemons_start(d, topo, &lo, err, errsize)) < 0)
    return rc;
  batch_sched();
  if (cl_daemons_attach(d, d->started, topo->nservers, 30000) < 0)
    return CL_EXIT_FAIL;
  guard->launcher = d->launcher;
  guard->cluster = d->cluster;
  cl_cluster_set_guard(d->cluster, bench_guard, guard);
  return 0;
}

/* The measured run on a fresh local cluster, printed. Returns the exit
 * status. */
static int bench_daemons(const bench_args_t *a, const cl_topology_t *topo,
                         bench_result_t *res) {
  cl_daemons_t d;
  bench_guard_t guard;
  char err[1024] = "";
  int rc, status;
  memset(&guard, 0, sizeof guard);
  if (cl_daemons_init(&d) < 0)
    return CL_EXIT_FAIL;
  rc = start_daemons(&d, a, topo, &guard, err, sizeof err);
  if (rc == 0)
    rc = cl_cluster_connect(d.cluster, 10000, err, sizeof err);
  if (rc == 0)
    rc = cl_cluster_setup(d.cluster, topo, 0, 0, 1, 30000, err, sizeof err);
  if (rc == 0)
    rc = measure(d.cluster, &guard, topo, a, res, err, sizeof err);
  cl_progress_clear();
  if (rc == 0) {
    print_result(a, topo->nservers, topo->nlinks, res);
    status = res->snapshots_ok == res->snapshots ? CL_EXIT_OK : CL_EXIT_FAIL;
  } else {
    status = rc < 0 ? cl_daemons_failed(&d, "bench", err, rc, NULL, NULL, 0)
                    : rc;
  }
  status = cl_daemons_stop(&d, status);
  cl_daemons_close(&d, status != CL_EXIT_OK);
  return status;
}

/* `clsnap bench`: parse, build the topology, run the baseline if asked,
 * then the cluster. Returns the exit status. */
int cl_cmd_bench(int argc, char **argv, const char *cluster_file) {
  bench_args_t a;
  bench_result_t res;
  cl_topology_t *topo = NULL;
  cl_diag_t diag;
  char err[1024] = "", *text;
  int status;
  (void)cluster_file;
  memset(&a, 0, sizeof a);
  memset(&res, 0, sizeof res);
  status = parse_args(&a, argc, argv);
  if (status != BENCH_GO)
    return status;
  cl_progress_init(cl_cli.quiet, cl_cli.json, cl_cli.progress);
  text = topology_text((size_t)a.nodes_v, a.mesh, a.tokens_v);
  if (text == NULL || cl_topology_parse("bench", text, &topo, &diag) < 0) {
    cl_cli_errf("bench: cannot build the topology");
    status = CL_EXIT_FAIL;
  } else if (a.baseline &&
             run_baseline(a.baseline_program, (size_t)a.nodes_v, a.mesh,
                          a.seconds_v, a.warmup_ms, &res, err,
                          sizeof err) < 0) {
    cl_cli_errf("bench: baseline: %s", err);
    status = CL_EXIT_FAIL;
  } else {
    status = bench_daemons(&a, topo, &res);
  }
  if (topo != NULL)
    cl_topology_free(topo);
  free(res.lat_ns);
  free(text);
  return status;
}
