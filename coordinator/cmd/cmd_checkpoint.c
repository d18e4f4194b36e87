/* `clsnap checkpoint`: periodic snapshots of a running cluster into the
 * snapshot store, one in flight at a time, in the manner of Flink's
 * checkpoint coordinator (interval, timeout, tolerable failures,
 * retention); and `clsnap circulate on|off`, the load to take them under.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cli.h"
#include "cluster_file.h"
#include "cluster_take.h"
#include "cmds.h"
#include "daemons.h"
#include "error.h"
#include "output.h"
#include "progress.h"
#include "store.h"
#include "stored.h"
#include "usage.h"
#include "util.h"

/* Latencies kept for the percentiles (the first ones of a longer run). */
#define CKPT_SAMPLES_MAX 1000000

typedef struct ckpt {
  cl_daemons_t d;
  const cl_endpoint_t *file;
  size_t n;
  cl_store_t *store;
  char dir[PATH_MAX];
  char *topology;
  uint64_t every_ms, count, keep, timeout_ms, tolerate;
  size_t from;
  int rotate, verbose, json, quiet;
  uv_signal_t sigint, sigterm;
  int signals_open;
  int interrupted;
  /* what happened */
  uint64_t taken, completed, failed, timed_out, bad_in_row, store_failed;
  uint64_t *lat_us, *write_us;
  size_t nsamples;
  json_t *list; /* --json: one object per checkpoint */
  char last[256];
} ckpt_t;

/* SIGINT/SIGTERM: remember it; the waits see it through the guard. */
static void on_signal(uv_signal_t *h, int signum) {
  ckpt_t *k = h->data;
  if (k->interrupted == 0)
    k->interrupted = signum;
}

/* Guard of every cluster wait: stop at a signal. */
static int guard(void *ctx, char *err, size_t errsize) {
  ckpt_t *k = ctx;
  if (!k->interrupted)
    return 0;
  cl_set_err(err, errsize, "interrupted by %s", strsignal(k->interrupted));
  return CL_EIO;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* The p-th percentile (nearest rank) of the n sorted values v. */
static uint64_t pct(const uint64_t *v, size_t n, double p) {
  size_t r;
  if (n == 0)
    return 0;
  r = (size_t)(p / 100.0 * (double)n + 0.999999);
  return v[r == 0 ? 0 : r - 1];
}

/* Say one checkpoint: a line (or the status line on a terminal), and
 * the --json entry. */
static void report(ckpt_t *k, const cl_stored_t *rec, int stored,
                   uint64_t write_us) {
  char dur[32], line[1536], snap[48];
  const char *base = strrchr(rec->path, '/');
  if (rec->id != 0)
    snprintf(snap, sizeof snap, "snapshot %" PRIu64 " ", rec->id);
  else
    snap[0] = '\0'; /* it never got an id */
  cl_output_duration((double)rec->duration_us / 1e6, dur, sizeof dur);
  if (rec->status == CL_STORED_COMPLETED)
    snprintf(line, sizeof line,
             "checkpoint #%" PRIu64 ": %sfrom %s ok in %s: %" PRId64
             " tokens on servers + %" PRId64 " in %zu messages; %s",
             rec->seq, snap, rec->initiator, dur,
             rec->verdict.server_tokens, rec->verdict.channel_tokens,
             rec->verdict.nrecorded, stored ? base + 1 : "NOT STORED");
  else
    snprintf(line, sizeof line,
             "checkpoint #%" PRIu64 ": %sfrom %s %s after %s: %s; %s",
             rec->seq, snap, rec->initiator,
             rec->status == CL_STORED_TIMED_OUT ? "TIMED OUT" : "FAILED",
             dur, rec->reason, stored ? base + 1 : "NOT STORED");
  snprintf(k->last, sizeof k->last, "%.255s", line);
  if (k->json) {
    json_array_append_new(
        k->list,
        json_pack("{s:I, s:I, s:s, s:s, s:o, s:I, s:I, s:o}", "seq",
                  (json_int_t)rec->seq, "id", (json_int_t)rec->id, "status",
                  cl_store_status_name(rec->status), "initiator",
                  rec->initiator, "reason",
                  rec->reason[0] ? cl_cli_json_text(rec->reason)
                                 : json_null(),
                  "duration_us", (json_int_t)rec->duration_us, "write_us",
                  (json_int_t)write_us, "file",
                  stored ? cl_cli_json_text(rec->path) : json_null()));
  } else if (cl_progress_mode() == CL_PROGRESS_TTY && !k->verbose) {
    cl_progress_show("checkpoints: %" PRIu64 " (%" PRIu64 " ok, %" PRIu64
                     " failed, %" PRIu64 " timed out); last #%" PRIu64
                     " %s %s",
                     k->taken, k->completed, k->failed, k->timed_out,
                     rec->seq, cl_store_status_name(rec->status), dur);
  } else if (!k->quiet) {
    cl_progress_clear();
    printf("%s\n", line);
    fflush(stdout);
  }
}

/* One checkpoint at server `at`: take it, check it, store it, say it.
 * Returns 0, or 1 when it was interrupted before it completed (nothing
 * stored). */
static int one(ckpt_t *k, size_t at) {
  cl_cluster_t *c = k->d.cluster;
  cl_take_t t;
  cl_verdict_t v;
  cl_stored_t rec;
  char err[1024];
  uint64_t seq, w0, write_us;
  int rc, status, stored;
  if (cl_store_reserve(k->store, &seq, err, sizeof err) < 0) {
    cl_cli_fail(CL_EIO, NULL, k->dir, 0, "checkpoint: %s", err);
    k->store_failed++;
    return 0;
  }
  rc = cl_cluster_take(c, at, k->timeout_ms, &t, err, sizeof err);
  if (k->interrupted && rc < 0) {
    /* Nothing partial: give it up on the servers (past the guard, which
     * would stop the DROP too) and store nothing. One that completed just
     * as the signal came is stored whole below. */
    cl_cluster_set_guard(c, NULL, NULL);
    if (t.id != 0)
      (void)cl_cluster_take_drop(c, t.id, t.sent, 1000);
    cl_store_cancel(k->store);
    cl_cluster_take_free(&t, k->n);
    return 1;
  }
  if (rc == 0) {
    cl_verify(NULL, NULL, t.states, k->n, &v);
    status = v.ok ? CL_STORED_COMPLETED : CL_STORED_FAILED;
    cl_stored_make(&rec, t.id, cl_cluster_id(c, at), status,
                   v.ok ? NULL : v.problems[0], t.trigger_us,
                   t.completion_us, k->topology, t.states, k->n, &v);
  } else {
    status = rc == CL_ETIMEOUT ? CL_STORED_TIMED_OUT : CL_STORED_FAILED;
    cl_stored_make(&rec, t.id, cl_cluster_id(c, at), status, err,
                   t.trigger_us, 0, k->topology, NULL, 0, NULL);
    if (t.id != 0) /* it may still run on some servers: they give it up */
      (void)cl_cluster_take_drop(c, t.id, t.sent,
                                 k->timeout_ms < 1000 ? k->timeout_ms : 1000);
  }
  cl_cluster_take_free(&t, k->n);
  w0 = cl_now_ns();
  stored = cl_stored_save(k->store, &rec, k->keep) == 0;
  write_us = (cl_now_ns() - w0) / 1000;
  k->taken++;
  k->store_failed += !stored;
  if (status == CL_STORED_COMPLETED) {
    k->completed++;
    k->bad_in_row = 0;
    if (k->nsamples < CKPT_SAMPLES_MAX) {
      k->lat_us[k->nsamples] = (uint64_t)rec.duration_us;
      k->write_us[k->nsamples++] = write_us;
    }
  } else {
    k->bad_in_row++;
    if (status == CL_STORED_TIMED_OUT)
      k->timed_out++;
    else
      k->failed++;
  }
  report(k, &rec, stored, write_us);
  cl_store_record_free(&rec);
  return 0;
}

/* The summary line (or object) after the last checkpoint. */
static void summary(ckpt_t *k) {
  char p50[32], p99[32], max[32], w50[32], w99[32];
  json_t *o;
  qsort(k->lat_us, k->nsamples, sizeof *k->lat_us, cmp_u64);
  qsort(k->write_us, k->nsamples, sizeof *k->write_us, cmp_u64);
  if (k->json) {
    o = json_pack("{s:I, s:I, s:I, s:I, s:{s:I, s:I, s:I}, s:{s:I, s:I}, "
                  "s:o, s:b}",
                  "taken", (json_int_t)k->taken, "completed",
                  (json_int_t)k->completed, "failed", (json_int_t)k->failed,
                  "timed_out", (json_int_t)k->timed_out, "latency_us", "p50",
                  (json_int_t)pct(k->lat_us, k->nsamples, 50), "p99",
                  (json_int_t)pct(k->lat_us, k->nsamples, 99), "max",
                  (json_int_t)pct(k->lat_us, k->nsamples, 100), "write_us",
                  "p50", (json_int_t)pct(k->write_us, k->nsamples, 50), "p99",
                  (json_int_t)pct(k->write_us, k->nsamples, 99), "store",
                  cl_cli_json_text(k->dir), "interrupted",
                  k->interrupted != 0);
    json_object_set_new(o, "checkpoints", k->list);
    k->list = NULL;
    cl_json_print(o);
    return;
  }
  cl_progress_clear();
  cl_output_duration((double)pct(k->lat_us, k->nsamples, 50) / 1e6, p50,
                     sizeof p50);
  cl_output_duration((double)pct(k->lat_us, k->nsamples, 99) / 1e6, p99,
                     sizeof p99);
  cl_output_duration((double)pct(k->lat_us, k->nsamples, 100) / 1e6, max,
                     sizeof max);
  cl_output_duration((double)pct(k->write_us, k->nsamples, 50) / 1e6, w50,
                     sizeof w50);
  cl_output_duration((double)pct(k->write_us, k->nsamples, 99) / 1e6, w99,
                     sizeof w99);
  printf("%" PRIu64 " checkpoints: %" PRIu64 " completed, %" PRIu64
         " failed, %" PRIu64 " timed out; latency p50 %s, p99 %s, max %s; "
         "store write p50 %s, p99 %s; store %s\n",
         k->taken, k->completed, k->failed, k->timed_out, p50, p99, max, w50,
         w99, k->dir);
}

/* Connect, learn the topology, set up the signals. Returns 0 or the exit
 * status. */
static int start(ckpt_t *k) {
  cl_msg_t req = {.type = CL_MSG_STATUS}, *reps;
  char err[1024];
  size_t i;
  int rc;
  if (cl_daemons_init(&k->d) < 0 ||
      cl_daemons_attach(&k->d, k->file, k->n, k->timeout_ms) < 0)
    return CL_EXIT_FAIL;
  cl_cluster_set_guard(k->d.cluster, guard, k);
  uv_signal_init(&k->d.loop, &k->sigint);
  uv_signal_init(&k->d.loop, &k->sigterm);
  k->sigint.data = k->sigterm.data = k;
  uv_signal_start(&k->sigint, on_signal, SIGINT);
  uv_signal_start(&k->sigterm, on_signal, SIGTERM);
  k->signals_open = 1;
  rc = cl_cluster_connect(k->d.cluster,
                          k->timeout_ms < 10000 ? k->timeout_ms : 10000, err,
                          sizeof err);
  if (rc == 0)
    rc = cl_cluster_call_all(k->d.cluster, &req, k->timeout_ms, 0, &reps, err,
                             sizeof err);
  if (rc < 0) {
    cl_cli_fail(rc, cl_cluster_culprit(k->d.cluster), NULL, 0, "%s", err);
    return CL_EXIT_FAIL;
  }
  for (i = 0; i < k->n && rc == 0; i++)
    if (reps[i].type != CL_MSG_STATUS_R || !reps[i].u.status.configured) {
      cl_cli_fail(CL_ESTATE, k->file[i].id, NULL, 0,
                  "checkpoint: %s is not configured", k->file[i].id);
      rc = -1;
    }
  if (rc == 0)
    k->topology = cl_stored_topology_of(reps, k->n);
  cl_cluster_free_replies(k->d.cluster, reps);
  return rc == 0 ? 0 : CL_EXIT_FAIL;
}

/* The loop: trigger, take, store, wait for the next trigger time. */
static int loop(ckpt_t *k) {
  uint64_t next = cl_now_ns(), i;
  char err[512];
  for (i = 0; k->count == 0 || i < k->count; i++) {
    uint64_t now = cl_now_ns();
    if (next > now &&
        cl_cluster_sleep(k->d.cluster, (next - now + 999999) / 1000000, err,
                         sizeof err) < 0 &&
        !k->interrupted) {
      cl_cli_fail(CL_ELOST, cl_cluster_culprit(k->d.cluster), NULL, 0,
                  "checkpoint: %s", err);
      return CL_EXIT_FAIL;
    }
    if (k->interrupted)
      break;
    /* A checkpoint that runs late delays the next one, never doubles up. */
    next = cl_now_ns() > next ? cl_now_ns() : next;
    next += k->every_ms * 1000000u;
    if (one(k, k->rotate ? (size_t)(i % k->n) : k->from) != 0 ||
        k->interrupted)
      break;
    if (k->bad_in_row > k->tolerate) {
      summary(k);
      cl_cli_fail(CL_ETIMEOUT, NULL, NULL, 0,
                  "checkpoint: %" PRIu64 " checkpoints in a row failed or "
                  "timed out (more than --tolerate %" PRIu64 "); the last: "
                  "%s", k->bad_in_row, k->tolerate, k->last);
      return CL_EXIT_FAIL;
    }
    if (k->store_failed > 0) {
      summary(k);
      return CL_EXIT_FAIL;
    }
  }
  summary(k);
  if (k->interrupted) {
    cl_cli_errf("checkpoint: interrupted by %s; nothing partial is left in "
                "%s", strsignal(k->interrupted), k->dir);
    return CL_EXIT_INTR;
  }
  return CL_EXIT_OK;
}

/* Close what start opened. */
static void stop(ckpt_t *k) {
  if (k->signals_open) {
    uv_close((uv_handle_t *)&k->sigint, NULL);
    uv_close((uv_handle_t *)&k->sigterm, NULL);
  }
  cl_daemons_close(&k->d, 0);
  cl_store_close(k->store);
  free(k->topology);
  free(k->lat_us);
  free(k->write_us);
  json_decref(k->list);
}

static int cmd_checkpoint(int argc, char **argv, const char *cluster) {
  const char *every = NULL, *count = NULL, *keep = NULL, *timeout = NULL,
             *tolerate = NULL, *from = NULL, *store = NULL, *pos[1];
  int rotate = 0, verbose = 0, status;
  cl_opt_t opts[] = {{"every", 0, 1, &every, NULL},
                     {"count", 0, 1, &count, NULL},
                     {"keep", 0, 1, &keep, NULL},
                     {"timeout", 0, 1, &timeout, NULL},
                     {"tolerate", 0, 1, &tolerate, NULL},
                     {"from", 0, 1, &from, NULL},
                     {"rotate", 0, 0, NULL, &rotate},
                     {"store", 0, 1, &store, NULL},
                     {"cluster", 0, 1, &cluster, NULL},
                     {"verbose", 'v', 0, NULL, &verbose},
                     {NULL, 0, 0, NULL, NULL}};
  cl_endpoint_t *file = NULL;
  ckpt_t k;
  int npos = cl_cli_parse(argc, argv, opts, pos, 0);
  if (npos < 0)
    return CL_EXIT_USAGE;
  if (cl_cli.help)
    return cl_cli_help("checkpoint");
  memset(&k, 0, sizeof k);
  k.keep = 100;
  k.timeout_ms = 10000;
  if (every == NULL)
    return cl_cli_usage("needs --every DURATION (e.g. --every 5s)");
  if (cl_cli_duration("--every", every, 1, 86400000, &k.every_ms) ||
      cl_cli_duration("--timeout", timeout, 1, 86400000, &k.timeout_ms) ||
      cl_cli_u64("--count", count, 1, UINT64_MAX, &k.count) ||
      cl_cli_u64("--keep", keep, 0, UINT64_MAX, &k.keep) ||
      cl_cli_u64("--tolerate", tolerate, 0, UINT64_MAX, &k.tolerate))
    return CL_EXIT_USAGE;
  if (from != NULL && rotate)
    return cl_cli_usage("--from and --rotate exclude each other");
  if ((cluster = cl_cli_cluster(cluster)) == NULL ||
      cl_stored_dir(store, cluster, k.dir, sizeof k.dir) < 0 ||
      cl_daemons_file_load(cluster, &file, &k.n) != 0)
    return CL_EXIT_USAGE;
  k.file = file;
  if (from != NULL) {
    int at = cl_cluster_file_find(file, k.n, from);
    if (at < 0) {
      free(file);
      return cl_cli_unknown_server(from, cluster);
    }
    k.from = (size_t)at;
  }
  k.rotate = rotate;
  k.verbose = verbose;
  k.json = cl_cli.json;
  k.quiet = cl_cli.quiet;
  cl_progress_init(k.quiet, k.json, cl_cli.progress);
  if (k.json)
    k.list = json_array();
  k.lat_us = cl_xcalloc(CKPT_SAMPLES_MAX, sizeof *k.lat_us);
  k.write_us = cl_xcalloc(CKPT_SAMPLES_MAX, sizeof *k.write_us);
  if ((k.store = cl_stored_open(k.dir)) == NULL)
    status = CL_EXIT_FAIL;
  else if ((status = start(&k)) == 0)
    status = loop(&k);
  stop(&k);
  free(file);
  return status;
}

/* `circulate on|off`: CIRCULATE to every server. */
static int cmd_circulate(int argc, char **argv, const char *cluster) {
  const char *timeout = NULL, *pos[1];
  cl_opt_t opts[] = {{"timeout", 0, 1, &timeout, NULL},
                     {"cluster", 0, 1, &cluster, NULL},
                     {NULL, 0, 0, NULL, NULL}};
  cl_endpoint_t *file = NULL;
  cl_daemons_t d;
  cl_msg_t req, *reps = NULL;
  uint64_t timeout_ms = 30000;
  char err[1024];
  size_t n = 0, i;
  int npos = cl_cli_parse(argc, argv, opts, pos, 1), on, rc,
      status = CL_EXIT_FAIL;
  if (npos < 0)
    return CL_EXIT_USAGE;
  if (cl_cli.help)
    return cl_cli_help("circulate");
  if (npos != 1 || (strcmp(pos[0], "on") != 0 && strcmp(pos[0], "off") != 0))
    return cl_cli_usage("needs on or off");
  on = strcmp(pos[0], "on") == 0;
  if (cl_cli_duration("--timeout", timeout, 1, 86400000, &timeout_ms) ||
      (cluster = cl_cli_cluster(cluster)) == NULL ||
      cl_daemons_file_load(cluster, &file, &n) != 0)
    return CL_EXIT_USAGE;
  memset(&req, 0, sizeof req);
  req.type = CL_MSG_CIRCULATE;
  req.u.circulate.on = (uint8_t)on;
  rc = cl_daemons_init(&d) < 0 || cl_daemons_attach(&d, file, n, timeout_ms) < 0
           ? CL_EIO
           : cl_cluster_connect(d.cluster, 10000, err, sizeof err);
  if (rc == 0)
    rc = cl_cluster_call_all(d.cluster, &req, timeout_ms, 0, &reps, err,
                             sizeof err);
  if (rc < 0 && d.cluster != NULL)
    cl_cli_fail(rc, cl_cluster_culprit(d.cluster), NULL, 0, "%s", err);
  for (i = 0; rc == 0 && i < n; i++)
    if (reps[i].type != CL_MSG_OK) {
      cl_cli_fail(reps[i].type == CL_MSG_ERROR
                      ? cl_err_from_wire(reps[i].u.error.code)
                      : CL_EPROTO,
                  file[i].id, NULL, 0, "%s refused circulate %s: %s",
                  file[i].id, pos[0],
                  reps[i].type == CL_MSG_ERROR ? reps[i].u.error.text
                                               : "unexpected reply");
      rc = -1;
    }
  if (rc == 0) {
    status = CL_EXIT_OK;
    if (cl_cli.json)
      cl_json_print(json_pack("{s:b, s:I}", "circulate", on, "servers",
                              (json_int_t)n));
    else
      printf("circulate %s: %zu servers\n", pos[0], n);
  }
  if (reps != NULL)
    cl_cluster_free_replies(d.cluster, reps);
  cl_daemons_close(&d, 0);
  free(file);
  return status;
}

int cl_cmd_checkpoint(int argc, char **argv, const char *cluster_file) {
  if (strcmp(argv[0], "circulate") == 0)
    return cmd_circulate(argc, argv, cluster_file);
  return cmd_checkpoint(argc, argv, cluster_file);
}
