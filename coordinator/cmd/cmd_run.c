/* `clsnap run`: start (or borrow) a cluster, configure it for a topology,
 * replay an event script, check and print every snapshot.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cluster_setup.h"
#include "collect.h"
#include "cmds.h"
#include "daemons.h"
#include "delays.h"
#include "error.h"
#include "output.h"
#include "progress.h"
#include "replay.h"
#include "store.h"
#include "stored.h"
#include "sim.h"
#include "usage.h"

/* The options as given, and the numbers parsed from them. */
typedef struct run_args {
  const char *topo_path, *events_path;
  const char *delays, *seed, *max_delay, *tick_ms, *jitter_ms, *timeout;
  const char *snap_dir, *cluster, *daemon, *log_dir, *store, *keep;
  const char *trace, *trace_events;
  int lockstep, json, in_process, quiet;
  int has_seed; /* seed is printed: given, lockstep's, or free-running's */
  uint64_t seed_v, max_delay_v, tick_ms_v, jitter_ms_v, timeout_ms, keep_v;
  uint64_t trace_events_v;
} run_args_t;

/* Everything one run holds, released by run_close. */
typedef struct run {
  run_args_t a;
  cl_topology_t *topo;
  cl_script_t *script;
  cl_delays_t *delays;
  cl_sim_t *sim;         /* --in-process */
  cl_daemons_t d;        /* otherwise */
  cl_endpoint_t *file;   /* --cluster: the file's entries */
  cl_endpoint_t *eps;    /* --cluster: the topology's, in its order */
  cl_backend_t backend;
  cl_replay_result_t res;
  char err[1024];
} run_t;

/* parse_args and load_inputs: go on with the run. */
#define RUN_GO (-1)

/* The run's servers in topology order, as [{"id": ID}, ...]. */
static json_t *json_servers(const cl_topology_t *topo) {
  json_t *arr = json_array();
  size_t i;
  for (i = 0; i < topo->nservers; i++)
    json_array_append_new(arr, json_pack("{s:s}", "id", topo->servers[i].id));
  return arr;
}

/* Where a lockstep run's delays came from: the --delays file's path, or
 * {"seed", "max"} of the seeded generator. */
static json_t *json_delays(const run_args_t *a) {
  if (a->delays != NULL)
    return cl_cli_json_text(a->delays);
  return json_pack("{s:I, s:I}", "seed", (json_int_t)a->seed_v, "max",
                   (json_int_t)a->max_delay_v);
}

/* run --json: the run, then every snapshot checked (README.md, "JSON
 * output"; docs/clsnap.schema.json). */
static json_t *run_json(const run_args_t *a, const cl_topology_t *topo,
                        const cl_replay_result_t *r, size_t passed,
                        size_t failed) {
  json_t *o = json_object(), *arr = json_array();
  size_t k;
  json_object_set_new(o, "mode",
                      json_string(a->lockstep ? "lockstep" : "free"));
  json_object_set_new(o, "topology", cl_cli_json_text(a->topo_path));
  json_object_set_new(o, "events", cl_cli_json_text(a->events_path));
  json_object_set_new(o, "servers", json_servers(topo));
  if (a->has_seed)
    json_object_set_new(o, "seed", json_integer((json_int_t)a->seed_v));
  if (a->lockstep)
    json_object_set_new(o, "delays", json_delays(a));
  for (k = 0; k < r->nsnapshots; k++)
    if (r->collected[k])
      json_array_append_new(
          arr, cl_json_checked(k, r->snaps[k], &r->verdicts[k],
                               r->states ? r->states[k] : NULL, r->nservers));
  json_object_set_new(o, "snapshots", arr);
  json_object_set_new(o, "passed", json_integer((json_int_t)passed));
  json_object_set_new(o, "failed", json_integer((json_int_t)failed));
  json_object_set_new(o, "seconds", json_real(r->seconds));
  json_object_set_new(o, "messages", json_integer((json_int_t)r->messages));
  json_object_set_new(o, "ticks", json_integer((json_int_t)r->ticks));
  return o;
}

/* With a run that stopped early (stopped: how it ended, status: its exit
 * status), the JSON also says why and which snapshots were not checked. */
static void json_stopped(json_t *o, const cl_replay_result_t *r, int status) {
  json_t *left = json_array();
  size_t k;
  for (k = 0; k < r->nsnapshots; k++)
    if (!r->collected[k])
      json_array_append_new(left, json_integer((json_int_t)k));
  json_object_set_new(o, "unchecked", left);
  json_object_set_new(o, "error", cl_cli_error_json(status));
}

/* What the run found, for printing: every snapshot checked, then the
 * summary. A run that stopped early (stopped: "was interrupted" or
 * "failed", status: its exit status; NULL and 0 for a whole run) prints
 * the snapshots it checked the same way. */
static int print_results(const run_args_t *a, const cl_topology_t *topo,
                         const cl_replay_result_t *r, const char *stopped,
                         int status) {
  int has_seed = a->has_seed;
  uint64_t seed = a->seed_v;
  size_t k, passed = 0, failed = 0;
  int write_failed = 0;
  char dur[32];
  for (k = 0; k < r->nsnapshots; k++) {
    if (!r->collected[k])
      continue;
    if (r->verdicts[k].ok)
      passed++;
    else
      failed++;
    if (a->snap_dir != NULL && r->snaps[k] != NULL &&
        cl_output_snap_file(a->snap_dir, k, r->snaps[k]) != 0)
      write_failed = 1;
  }
  if (a->json) {
    json_t *o = run_json(a, topo, r, passed, failed);
    if (stopped != NULL)
      json_stopped(o, r, status);
    cl_json_print(o);
  } else {
    for (k = 0; k < r->nsnapshots; k++)
      if (r->collected[k])
        cl_output_checked(stdout, k, r->snaps[k], &r->verdicts[k], a->quiet);
    if (stopped != NULL)
      printf("%zu of %zu snapshot%s checked before the run %s: %zu passed, "
             "%zu failed\n", r->checked, r->nsnapshots,
             r->nsnapshots == 1 ? "" : "s", stopped, passed, failed);
    else
      printf("%zu snapshot%s: %zu passed, %zu failed\n", r->nsnapshots,
             r->nsnapshots == 1 ? "" : "s", passed, failed);
  }
  fflush(stdout);
  /* Wall time goes to stderr so that stdout of a lockstep run is the same
   * bytes every time. */
  cl_output_duration(r->seconds, dur, sizeof dur);
  if (a->lockstep)
    fprintf(stderr, "ran in %s: %" PRIu64 " ticks, %" PRIu64 " peer messages\n",
            dur, r->ticks, r->messages);
  else
    fprintf(stderr, "ran in %s\n", dur);
  /* Free-running timing is not reproducible, but the jitter stream is. */
  if (failed > 0 && !a->lockstep && has_seed)
    cl_cli_errf("jitter seed was %" PRIu64 " (--seed %" PRIu64 " repeats it)",
                seed, seed);
  return failed == 0 && !write_failed ? 0 : -1;
}

/* Where snapshot i of a run that stopped early got to. */
enum { SNAP_CHECKED, SNAP_UNCHECKED, SNAP_INCOMPLETE };

/* Snapshot i's place: checked (printed), completed on every server but
 * not checked (not every state had come in), or not complete. */
static int snap_state(const cl_backend_t *be, const cl_replay_result_t *res,
                      size_t i) {
  if (res->collected[i])
    return SNAP_CHECKED;
  return be->completed(be->ctx, res->ids[i]) == res->nservers
             ? SNAP_UNCHECKED
             : SNAP_INCOMPLETE;
}

/* Append the ids of snapshots 0..k-1 in state `want` as ranges ("0 2-5
 * 9") to buf; returns how many there are. */
static size_t id_ranges(const cl_backend_t *be, const cl_replay_result_t *res,
                        size_t k, int want, char *buf, size_t size) {
  size_t i = 0, count = 0, len = strlen(buf);
  while (i < k) {
    size_t j = i;
    if (snap_state(be, res, i) != want) {
      i++;
      continue;
    }
    while (j + 1 < k && snap_state(be, res, j + 1) == want)
      j++;
    count += j - i + 1;
    if (len + 48 < size) {
      len += (size_t)snprintf(buf + len, size - len,
                              j > i ? "%s%zu-%zu" : "%s%zu", len ? " " : "",
                              i, j);
    }
    i = j + 1;
  }
  return count;
}

/* After a run that stopped early (the checked snapshots are printed): say
 * which of the snapshots started (ids 0..started-1) completed everywhere
 * but could not be checked, which did not complete (interrupted) or cannot
 * complete now (failed), and which of the script's total never started. */
static void report_unfinished(const cl_backend_t *be,
                              const cl_replay_result_t *res, size_t total,
                              int interrupted) {
  char bad[400] = "", done[400] = "";
  size_t started = res->started;
  size_t nbad = id_ranges(be, res, started, SNAP_INCOMPLETE, bad, sizeof bad);
  size_t ndone = id_ranges(be, res, started, SNAP_UNCHECKED, done,
                           sizeof done);
  if (ndone > 0)
    cl_cli_errf("snapshot%s %s completed on every server, not checked: not "
                "every server's state had reached clsnap",
                ndone == 1 ? "" : "s", done);
  if (nbad > 0)
    cl_cli_errf("snapshot%s %s %s", nbad == 1 ? "" : "s", bad,
                interrupted ? "had not completed" : "cannot complete");
  if (total > started) {
    char ids[64];
    if (total == started + 1)
      snprintf(ids, sizeof ids, "snapshot %zu", started);
    else
      snprintf(ids, sizeof ids, "snapshots %zu-%zu", started, total - 1);
    cl_cli_errf("%s %s", ids,
                interrupted ? "never started" : "cannot complete: never started");
  }
}

/* 0 if every snapshot event's markers can reach every server; else -1
 * after naming the first that cannot (events file and line, initiator,
 * servers). */
static int check_reachable(const char *events_path, const cl_topology_t *topo,
                           const cl_script_t *script) {
  uint32_t *miss = calloc(topo->nservers, sizeof *miss);
  uint8_t *checked = calloc(topo->nservers, 1);
  size_t e, n, i, len;
  char who[512];
  int rc = 0;
  if (miss == NULL || checked == NULL) {
    free(miss);
    free(checked);
    return 0; /* the run itself would then say what is missing */
  }
  for (e = 0; e < script->nevents && rc == 0; e++) {
    const cl_event_t *ev = &script->events[e];
    if (ev->kind != CL_EV_SNAPSHOT || checked[ev->src])
      continue;
    checked[ev->src] = 1;
    n = cl_topology_unreachable(topo, ev->src, miss);
    if (n == 0)
      continue;
    for (i = 0, len = 0; i < n && len + CL_ID_SIZE + 8 < sizeof who; i++)
      len += (size_t)snprintf(who + len, sizeof who - len, "%s%s",
                              i ? ", " : "", topo->servers[miss[i]].id);
    cl_cli_fail(CL_EINVAL, topo->servers[ev->src].id, events_path, ev->line,
                "%s:%d: no marker from %s can reach %s (no path of channels), "
                "so this snapshot could never complete",
                events_path, ev->line, topo->servers[ev->src].id, who);
    rc = -1;
  }
  free(miss);
  free(checked);
  return rc;
}


/* Check the options that exclude or need each other and parse the numbers.
 * --delays, --max-delay and --in-process imply --lockstep (--seed does
 * not: it also seeds free-running jitter). Returns RUN_GO or CL_EXIT_USAGE
 * (printed). */
static int check_args(run_args_t *a) {
  a->seed_v = 1;
  a->max_delay_v = 4;
  a->tick_ms_v = 5;
  a->timeout_ms = 30000;
  a->has_seed = a->seed != NULL;
  if (cl_cli_u64("--seed", a->seed, 0, INT64_MAX, &a->seed_v) ||
      cl_cli_u64("--max-delay", a->max_delay, 0, 1000000, &a->max_delay_v) ||
      cl_cli_u64("--tick-ms", a->tick_ms, 0, 3600000, &a->tick_ms_v) ||
      cl_cli_u64("--jitter-ms", a->jitter_ms, 0, 60000, &a->jitter_ms_v) ||
      cl_cli_duration("--timeout", a->timeout, 1, 86400000,
                      &a->timeout_ms) ||
      cl_cli_u64("--keep", a->keep, 1, UINT64_MAX, &a->keep_v) ||
      cl_cli_u64("--trace-events", a->trace_events, 2, 16777216,
                 &a->trace_events_v))
    return CL_EXIT_USAGE;
  if (a->trace_events != NULL && a->trace == NULL)
    return cl_cli_usage("--trace-events goes with --trace");
  if (a->delays != NULL || a->max_delay != NULL || a->in_process)
    a->lockstep = 1;
  if (a->delays != NULL && a->seed != NULL)
    return cl_cli_usage("use either --delays or --seed, not both");
  if (a->delays != NULL && a->max_delay != NULL)
    return cl_cli_usage("use either --delays or --max-delay, not both");
  if (a->keep != NULL && a->store == NULL)
    return cl_cli_usage("--keep goes with --store");
  if (a->in_process && a->cluster != NULL)
    return cl_cli_usage("--in-process and --cluster exclude each other");
  if (a->lockstep && a->tick_ms != NULL)
    return cl_cli_usage("--tick-ms is for free-running runs; a lockstep "
                        "run's ticks take no wall time");
  return RUN_GO;
}

/* Parse run's command line into a (cluster_file: the global --cluster).
 * Returns RUN_GO, or the exit status after --help or a usage error. */
static int parse_args(run_args_t *a, int argc, char **argv,
                      const char *cluster_file) {
  const char *pos[2];
  const cl_opt_t opts[] = {
      {"lockstep", 0, 0, NULL, &a->lockstep},
      {"delays", 0, 1, &a->delays, NULL},
      {"seed", 0, 1, &a->seed, NULL},
      {"max-delay", 0, 1, &a->max_delay, NULL},
      {"tick-ms", 0, 1, &a->tick_ms, NULL},
      {"jitter-ms", 0, 1, &a->jitter_ms, NULL},
      {"timeout", 0, 1, &a->timeout, NULL},
      {"snap-dir", 0, 1, &a->snap_dir, NULL},
      {"store", 0, 1, &a->store, NULL},
      {"keep", 0, 1, &a->keep, NULL},
      {"trace", 0, 1, &a->trace, NULL},
      {"trace-events", 0, 1, &a->trace_events, NULL},
      {"in-process", 0, 0, NULL, &a->in_process},
      {"cluster", 0, 1, &a->cluster, NULL},
      {"daemon", 0, 1, &a->daemon, NULL},
      {"log-dir", 0, 1, &a->log_dir, NULL},
      {NULL, 0, 0, NULL, NULL}};
  int npos;
  a->cluster = cluster_file;
  npos = cl_cli_parse(argc, argv, opts, pos, 2);
  if (npos < 0)
    return CL_EXIT_USAGE;
  if (cl_cli.help)
    return cl_cli_help("run");
  if (npos != 2)
    return cl_cli_usage("needs TOPOLOGY and EVENTS files");
  a->topo_path = pos[0];
  a->events_path = pos[1];
  a->json = cl_cli.json;
  a->quiet = cl_cli.quiet;
  return check_args(a);
}

/* Read the topology and the script and check that every snapshot can
 * complete; pick the delays (lockstep) or the jitter seed (free-running).
 * Returns RUN_GO or the exit status (printed). */
static int load_inputs(run_t *r) {
  run_args_t *a = &r->a;
  cl_diag_t diag;
  if (cl_topology_load(a->topo_path, &r->topo, &diag) < 0 ||
      cl_script_load(a->events_path, r->topo, &r->script, &diag) < 0)
    return cl_cli_bad_input(&diag);
  if (check_reachable(a->events_path, r->topo, r->script) < 0)
    return CL_EXIT_USAGE;
  if (a->snap_dir != NULL && cl_output_dir("--snap-dir", a->snap_dir) < 0)
    return CL_EXIT_USAGE;
  if (!a->in_process && a->cluster == NULL &&
      cl_daemons_check(a->daemon, a->log_dir) < 0)
    return CL_EXIT_USAGE;
  if (!a->lockstep) {
    if (!a->has_seed)
      a->seed_v = (cl_now_ns() ^ ((uint64_t)getpid() << 32)) & INT64_MAX;
    a->has_seed = 1;
    return RUN_GO;
  }
  if (a->delays != NULL) {
    if (cl_delays_load(a->delays, &r->delays, &diag) < 0)
      return cl_cli_bad_input(&diag);
  } else {
    r->delays = cl_delays_seeded(a->seed_v, (uint32_t)a->max_delay_v);
    a->has_seed = 1;
  }
  if (r->delays == NULL) {
    cl_cli_errf("out of memory");
    return CL_EXIT_FAIL;
  }
  return RUN_GO;
}

/* Daemons: started here, or those of the cluster file, connected and
 * configured for the topology. Returns 0, an exit status (printed), or a
 * negative CL_E* code with r->err set. */
static int open_daemons(run_t *r) {
  run_args_t *a = &r->a;
  uint64_t tmo = a->timeout_ms;
  size_t nfile = 0;
  int rc;
  if (cl_daemons_init(&r->d) < 0)
    return CL_EXIT_FAIL;
  if (a->cluster != NULL) {
    if (cl_daemons_file_load(a->cluster, &r->file, &nfile) != 0 ||
        cl_daemons_file_endpoints(r->topo, r->file, nfile, a->cluster,
                                  &r->eps) != 0)
      return CL_EXIT_USAGE;
  } else {
    cl_launch_opts_t lo;
    memset(&lo, 0, sizeof lo);
    lo.daemon = a->daemon;
    lo.log_dir = a->log_dir;
    if ((rc = cl_daemons_start(&r->d, r->topo, &lo, r->err,
                               sizeof r->err)) < 0)
      return rc;
  }
  if (cl_daemons_attach(&r->d, r->eps ? r->eps : r->d.started,
                        r->topo->nservers, tmo) < 0)
    return CL_EXIT_FAIL;
  rc = cl_cluster_connect(r->d.cluster, 10000, r->err, sizeof r->err);
  if (rc == 0)
    rc = cl_cluster_setup(r->d.cluster, r->topo, a->lockstep,
                          (uint32_t)a->jitter_ms_v, a->seed_v, tmo, r->err,
                          sizeof r->err);
  if (rc == 0)
    r->backend = cl_cluster_backend(r->d.cluster);
  return rc;
}

/* The backend: in-process sessions or daemons. Returns as open_daemons. */
static int open_backend(run_t *r) {
  if (!r->a.in_process)
    return open_daemons(r);
  r->sim = cl_sim_new(r->topo);
  if (r->sim == NULL) {
    cl_cli_errf("cannot set up the in-process servers");
    return CL_EXIT_FAIL;
  }
  r->backend = cl_sim_backend(r->sim);
  return 0;
}

/* cl_replay_opts_t.progress of run (ctx: its args): the status line. */
static void show_progress(void *ctx, const cl_replay_progress_t *p) {
  const run_args_t *a = ctx;
  if (a->lockstep)
    cl_progress_show("run: event %zu/%zu, tick %" PRIu64
                     ", snapshots %zu/%zu done",
                     p->events, p->nevents, p->tick, p->checked,
                     p->nsnapshots);
  else
    cl_progress_show("run: event %zu/%zu, snapshots %zu/%zu done", p->events,
                     p->nevents, p->checked, p->nsnapshots);
}

/* The replay failed with rc (r->err says why): say so, print the
 * snapshots it checked before, if any (as a whole run prints them), and
 * what became of the others. Returns the exit status. */
static int report_failed(run_t *r, int rc) {
  const char *events = r->res.fail_line > 0 ? r->a.events_path : NULL;
  int status = cl_daemons_failed(&r->d, "run", r->err, rc, r->res.fail_server,
                                 events, r->res.fail_line);
  int interrupted = status == CL_EXIT_INTR;
  if (r->res.collected == NULL) /* failed before it began */
    return status;
  /* With nothing checked there is no result: only the error (and with
   * --json the error object) says what happened. */
  if (r->res.checked > 0)
    print_results(&r->a, r->topo, &r->res,
                  interrupted ? "was interrupted" : "failed", status);
  report_unfinished(&r->backend, &r->res, r->script->nsnapshots,
                    interrupted);
  return status;
}

/* The server that starts snapshot k of the script. */
static const char *initiator(const run_t *r, size_t k) {
  size_t i, seen = 0;
  for (i = 0; i < r->script->nevents; i++)
    if (r->script->events[i].kind == CL_EV_SNAPSHOT && seen++ == k)
      return r->topo->servers[r->script->events[i].src].id;
  return "?";
}

/* --store: keep every snapshot the run started, in trigger order: those
 * checked as completed (or failed, if the check failed), the others as
 * failed with why (why: the run's failure, NULL for a whole run). Returns
 * 0, or -1 after printing why one could not be stored. */
static int store_results(run_t *r, const char *why) {
  const cl_replay_result_t *res = &r->res;
  cl_store_t *st;
  char *topology;
  size_t k;
  int rc = 0;
  if (r->a.store == NULL || res->collected == NULL)
    return 0;
  if ((st = cl_stored_open(r->a.store)) == NULL)
    return -1;
  topology = cl_stored_topology(r->topo);
  for (k = 0; k < res->started && rc == 0; k++) {
    cl_stored_t rec;
    const cl_verdict_t *v = &res->verdicts[k];
    if (res->collected[k])
      cl_stored_make(&rec, k, initiator(r, k),
                     v->ok ? CL_STORED_COMPLETED : CL_STORED_FAILED,
                     v->ok ? NULL : v->problems[0], res->trigger_us[k],
                     res->done_us[k], topology,
                     res->states ? res->states[k] : NULL, r->topo->nservers,
                     v);
    else
      cl_stored_make(&rec, k, initiator(r, k), CL_STORED_FAILED,
                     why ? why : "not collected", res->trigger_us[k], 0,
                     topology, NULL, 0, NULL);
    rc = cl_stored_save(st, &rec, r->a.keep_v);
    if (rc == 0 && !r->a.json && !r->a.quiet)
      fprintf(stderr, "stored snapshot %zu as #%" PRIu64 ": %s\n", k,
              rec.seq, rec.path);
    cl_store_record_free(&rec);
  }
  free(topology);
  cl_store_close(st);
  return rc;
}

/* The servers' ids, in topology order (the backend's), or NULL. */
static const char **server_ids(const run_t *r) {
  const char **ids = calloc(r->topo->nservers, sizeof *ids);
  size_t k;
  for (k = 0; ids != NULL && k < r->topo->nservers; k++)
    ids[k] = r->topo->servers[k].id;
  return ids;
}

/* --trace: tracing on (before the first event). Returns 0 or the exit
 * status (printed). */
static int trace_switch(run_t *r, int on) {
  const char **ids = server_ids(r);
  int rc = ids == NULL ? CL_ENOMEM
                       : cl_collect_switch(&r->backend, r->topo->nservers,
                                           ids, on, r->a.trace_events_v,
                                           r->err, sizeof r->err);
  free(ids);
  if (rc < 0)
    return cl_daemons_failed(&r->d, "run --trace", r->err, rc, NULL, NULL, 0);
  return 0;
}

/* --trace: read the servers' events and write the file. 0 or -1
 * (printed: after an interrupt or a lost server the read fails and says
 * so, and nothing is written). */
static int trace_dump(run_t *r) {
  const char **ids = server_ids(r);
  int rc = ids == NULL ? -1
                       : cl_trace_save(&r->backend, r->topo->nservers, ids,
                                       r->a.trace);
  free(ids);
  return rc;
}

/* Open the backend, replay, print. Returns the exit status. */
static int run_replay(run_t *r) {
  run_args_t *a = &r->a;
  cl_replay_opts_t ro;
  int rc = open_backend(r);
  if (rc > 0)
    return rc;
  if (rc < 0)
    return cl_daemons_failed(&r->d, "run", r->err, rc, NULL, NULL, 0);
  memset(&ro, 0, sizeof ro);
  ro.lockstep = a->lockstep;
  ro.delays = r->delays;
  ro.tick_ms = a->tick_ms_v;
  ro.timeout_ms = a->timeout_ms;
  ro.events_path = a->events_path;
  if (cl_progress_mode() != CL_PROGRESS_OFF) {
    ro.progress = show_progress;
    ro.progress_ctx = a;
  }
  /* The JSON lists each channel's raw counts; the store keeps them. */
  ro.keep_states = a->json || a->store != NULL;
  ro.clock_us = cl_utc_us;
  if (a->trace != NULL && (rc = trace_switch(r, 1)) != 0)
    return rc;
  rc = cl_replay_run(r->topo, r->script, &r->backend, &ro, &r->res, r->err,
                     sizeof r->err);
  cl_progress_clear();
  /* The trace is written whatever became of the run: what happened until
   * it stopped is what the user wants to see. */
  if (a->trace != NULL && trace_dump(r) < 0 && rc == 0) {
    (void)print_results(a, r->topo, &r->res, NULL, 0);
    return CL_EXIT_FAIL;
  }
  if (rc < 0) {
    int status = report_failed(r, rc);
    (void)store_results(r, r->err);
    return status;
  }
  rc = print_results(a, r->topo, &r->res, NULL, 0);
  if (store_results(r, NULL) < 0)
    rc = -1;
  return rc == 0 ? CL_EXIT_OK : CL_EXIT_FAIL;
}

/* Stop what the run started and free what it holds. Returns the final
 * exit status. */
static int run_close(run_t *r, int status) {
  status = cl_daemons_stop(&r->d, status);
  status = cl_daemons_interrupted(&r->d, status);
  cl_daemons_close(&r->d, status != CL_EXIT_OK);
  cl_replay_result_free(&r->res);
  if (r->sim != NULL)
    cl_sim_free(r->sim);
  if (r->delays != NULL)
    cl_delays_free(r->delays);
  if (r->script != NULL)
    cl_script_free(r->script);
  if (r->topo != NULL)
    cl_topology_free(r->topo);
  free(r->eps);
  free(r->file);
  return status;
}

/* `clsnap run`: parse, load, open the backend, replay, print, clean up.
 * Returns the exit status. */
int cl_cmd_run(int argc, char **argv, const char *cluster_file) {
  run_t r;
  int status;
  memset(&r, 0, sizeof r);
  status = parse_args(&r.a, argc, argv, cluster_file);
  if (status != RUN_GO)
    return status;
  cl_progress_init(cl_cli.quiet, cl_cli.json, cl_cli.progress);
  status = load_inputs(&r);
  if (status == RUN_GO)
    status = run_replay(&r);
  return run_close(&r, status);
}
