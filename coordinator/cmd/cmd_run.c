/* `clsnap run`: start (or borrow) a cluster, configure it for a topology,
 * replay an event script, check and print every snapshot.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmds.h"
#include "error.h"
#include "launcher.h"
#include "local.h"
#include "output.h"
#include "replay.h"
#include "schedule.h"
#include "sim.h"


/* Check that every reply is OK; err names the first server that refused. */
static int all_ok(const cl_cluster_t *c, const char *what, size_t n,
                  const uint32_t *servers, const cl_msg_t *replies, char *err,
                  size_t errsize) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (replies[i].type == CL_MSG_OK)
      continue;
    if (replies[i].type == CL_MSG_ERROR)
      snprintf(err, errsize, "server %s refused %s: %s (%s)",
               cl_cluster_id(c, servers[i]), what, replies[i].u.error.text,
               cl_err_name(replies[i].u.error.code));
    else
      snprintf(err, errsize, "server %s answered %s with %s",
               cl_cluster_id(c, servers[i]), what,
               cl_msg_type_name(replies[i].type));
    return CL_EIO;
  }
  return 0;
}

/* CONFIGURE everyone, then CONNECT everyone; see cmds.h. */
int cl_configure_cluster(cl_cluster_t *c, const cl_topology_t *topo,
                         int lockstep, uint32_t jitter_ms, uint64_t seed,
                         uint64_t timeout_ms, char *err, size_t errsize) {
  size_t n = topo->nservers, i, l;
  cl_msg_t *reqs = calloc(n, sizeof *reqs), *replies = calloc(n, sizeof *replies);
  uint32_t *servers = calloc(n, sizeof *servers);
  uint64_t config_id = cl_topology_hash(topo);
  int rc = CL_ENOMEM;
  if (reqs == NULL || replies == NULL || servers == NULL) {
    snprintf(err, errsize, "out of memory");
    goto done;
  }
  for (i = 0; i < n; i++) {
    cl_configure_t *cf = &reqs[i].u.configure;
    servers[i] = (uint32_t)i;
    reqs[i].type = CL_MSG_CONFIGURE;
    memcpy(cf->self, topo->servers[i].id, CL_ID_SIZE);
    cf->tokens = topo->servers[i].tokens;
    cf->rank = (uint32_t)i;
    cf->nservers = (uint32_t)n;
    cf->lockstep = (uint8_t)(lockstep != 0);
    cf->jitter_ms = jitter_ms;
    /* Spread one seed over servers, so their jitter streams differ. */
    cf->seed = cl_rng_at(seed, i + 1);
    cf->config_id = config_id;
    for (l = 0; l < topo->nlinks; l++) {
      cf->nout += topo->links[l].src == i;
      cf->nin += topo->links[l].dst == i;
    }
    cf->out = calloc(cf->nout ? cf->nout : 1, sizeof *cf->out);
    cf->in = calloc(cf->nin ? cf->nin : 1, sizeof *cf->in);
    if (cf->out == NULL || cf->in == NULL) {
      snprintf(err, errsize, "out of memory");
      goto done;
    }
    cf->nout = cf->nin = 0;
    /* Links are sorted by (src, dst), so peers come out in id order. */
    for (l = 0; l < topo->nlinks; l++) {
      const cl_link_t *k = &topo->links[l];
      if (k->src == i) {
        memcpy(cf->out[cf->nout].id, topo->servers[k->dst].id, CL_ID_SIZE);
        snprintf(cf->out[cf->nout].addr, CL_ADDR_SIZE, "%s",
                 cl_cluster_addr(c, k->dst));
        cf->nout++;
      }
      if (k->dst == i)
        memcpy(cf->in[cf->nin++], topo->servers[k->src].id, CL_ID_SIZE);
    }
  }
  rc = cl_cluster_call(c, n, servers, reqs, replies, timeout_ms, err, errsize);
  if (rc == 0)
    rc = all_ok(c, "CONFIGURE", n, servers, replies, err, errsize);
  for (i = 0; i < n; i++)
    cl_msg_free(&replies[i]);
  if (rc < 0)
    goto done;
  for (i = 0; i < n; i++) {
    free(reqs[i].u.configure.out);
    free(reqs[i].u.configure.in);
    memset(&reqs[i], 0, sizeof reqs[i]);
    reqs[i].type = CL_MSG_CONNECT;
  }
  /* Daemons retry refused connects for up to 10 s before they answer. */
  rc = cl_cluster_call(c, n, servers, reqs, replies,
                       timeout_ms > 15000 ? timeout_ms : 15000, err, errsize);
  if (rc == 0)
    rc = all_ok(c, "CONNECT", n, servers, replies, err, errsize);
  for (i = 0; i < n; i++)
    cl_msg_free(&replies[i]);
done:
  if (reqs != NULL)
    for (i = 0; i < n; i++)
      if (reqs[i].type == CL_MSG_CONFIGURE) {
        free(reqs[i].u.configure.out);
        free(reqs[i].u.configure.in);
      }
  free(reqs);
  free(replies);
  free(servers);
  return rc;
}

typedef struct run_args {
  const char *topo_path, *events_path;
  const char *delays, *seed, *max_delay, *tick_ms, *jitter_ms, *timeout;
  const char *snap_dir, *cluster, *daemon, *log_dir;
  int lockstep, json, in_process, quiet, help;
} run_args_t;

/* What the run found, for printing. */
static int print_results(const run_args_t *a, const cl_topology_t *topo,
                         const cl_replay_result_t *r, int has_seed,
                         uint64_t seed) {
  size_t k, passed = 0, failed = 0;
  int write_failed = 0;
  char dur[32];
  for (k = 0; k < r->nsnapshots; k++) {
    if (r->verdicts[k].ok)
      passed++;
    else
      failed++;
    if (a->snap_dir != NULL && r->snaps[k] != NULL &&
        cl_write_snap_file(a->snap_dir, k, r->snaps[k]) != 0)
      write_failed = 1;
  }
  if (a->json) {
    json_t *o = json_object(), *arr = json_array();
    json_object_set_new(o, "mode", json_string(a->lockstep ? "lockstep" : "free"));
    json_object_set_new(o, "topology", json_string(a->topo_path));
    json_object_set_new(o, "events", json_string(a->events_path));
    json_object_set_new(o, "servers", json_integer((json_int_t)topo->nservers));
    if (has_seed)
      json_object_set_new(o, "seed", json_integer((json_int_t)seed));
    for (k = 0; k < r->nsnapshots; k++)
      json_array_append_new(arr, cl_json_checked(k, r->snaps[k], &r->verdicts[k]));
    json_object_set_new(o, "snapshots", arr);
    json_object_set_new(o, "passed", json_integer((json_int_t)passed));
    json_object_set_new(o, "failed", json_integer((json_int_t)failed));
    json_object_set_new(o, "seconds", json_real(r->seconds));
    json_object_set_new(o, "messages", json_integer((json_int_t)r->messages));
    json_object_set_new(o, "ticks", json_integer((json_int_t)r->ticks));
    cl_json_print(o);
  } else {
    for (k = 0; k < r->nsnapshots; k++)
      cl_print_checked(stdout, k, r->snaps[k], &r->verdicts[k], a->quiet);
    printf("%zu snapshot%s: %zu passed, %zu failed\n", r->nsnapshots,
           r->nsnapshots == 1 ? "" : "s", passed, failed);
  }
  fflush(stdout);
  /* Wall time goes to stderr so that stdout of a lockstep run is the same
   * bytes every time. */
  cl_format_duration(r->seconds, dur, sizeof dur);
  if (a->lockstep)
    fprintf(stderr, "ran in %s: %" PRIu64 " ticks, %" PRIu64 " peer messages\n",
            dur, r->ticks, r->messages);
  else
    fprintf(stderr, "ran in %s\n", dur);
  /* Free-running timing is not reproducible, but the jitter stream is. */
  if (failed > 0 && !a->lockstep && has_seed)
    cl_errf("jitter seed was %" PRIu64 " (--seed %" PRIu64 " repeats it)",
            seed, seed);
  return failed == 0 && !write_failed ? 0 : -1;
}

/* Append the ids of snapshots 0..k-1 with done(id) == want as ranges
 * ("0 2-5 9") to buf; returns how many there are. */
static size_t id_ranges(const cl_cluster_t *c, size_t k, int want, char *buf,
                        size_t size) {
  size_t i = 0, count = 0, len = strlen(buf);
  size_t nserv = cl_cluster_size(c);
  while (i < k) {
    size_t j = i;
    if ((cl_cluster_completed(c, i) == nserv) != want) {
      i++;
      continue;
    }
    while (j + 1 < k && (cl_cluster_completed(c, j + 1) == nserv) == want)
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

/* After a failed run on daemons: say which of the snapshots started (ids
 * 0..started-1) cannot complete now and which did complete everywhere (they
 * are not reported: a failed run prints no results), and which of the
 * script's total were never started. */
static void report_unfinished(const cl_cluster_t *c, size_t started,
                              size_t total) {
  char bad[400] = "", done[400] = "";
  size_t nbad = id_ranges(c, started, 0, bad, sizeof bad);
  size_t ndone = id_ranges(c, started, 1, done, sizeof done);
  if (nbad > 0)
    cl_errf("snapshot%s %s cannot complete%s%s%s", nbad == 1 ? "" : "s", bad,
            ndone ? " (" : "", done,
            ndone ? " completed on every server, not reported)" : "");
  else if (ndone > 0)
    cl_errf("snapshot%s %s completed on every server (not reported)",
            ndone == 1 ? "" : "s", done);
  if (total > started + 1)
    cl_errf("snapshots %zu-%zu cannot complete: never started", started,
            total - 1);
  else if (total == started + 1)
    cl_errf("snapshot %zu cannot complete: never started", started);
}

/* See cmds.h. */
int cl_report_failure(cl_launcher_t *launcher, const char *what,
                      const char *err, int rc) {
  /* A broken connection is often a dead process: give its exit a moment to
   * be reaped so the message names the real cause. */
  if (launcher != NULL && !cl_launcher_interrupted(launcher)) {
    char why[400];
    if (cl_launcher_settle(launcher, 300, why, sizeof why) < 0 &&
        strstr(err, why) == NULL)
      cl_errf("%s", why);
  }
  if (launcher != NULL && cl_launcher_interrupted(launcher)) {
    cl_errf("interrupted; stopping the servers");
    return CL_EXIT_INTR;
  }
  cl_errf("%s failed: %s", what, err[0] ? err : cl_strerror(rc));
  return CL_EXIT_FAIL;
}

/* The JSON printed instead of results when the run failed. */
static void print_json_error(const run_args_t *a, const char *msg) {
  json_t *o = json_object();
  json_object_set_new(o, "mode", json_string(a->lockstep ? "lockstep" : "free"));
  json_object_set_new(o, "topology", json_string(a->topo_path));
  json_object_set_new(o, "events", json_string(a->events_path));
  json_object_set_new(o, "error", json_string(msg));
  cl_json_print(o);
}

/* 0 if every snapshot event's markers can reach every server; else -1
 * after naming the first that cannot (events line, initiator, servers). */
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
    cl_errf("%s:%d: no marker from %s can reach %s (no path of channels), "
            "so this snapshot could never complete", events_path, ev->line,
            topo->servers[ev->src].id, who);
    rc = -1;
  }
  free(miss);
  free(checked);
  return rc;
}

/* `clsnap run`: parse, start or borrow a cluster, replay, print, clean up.
 * Returns the exit status. */
int cl_cmd_run(int argc, char **argv, const char *cluster_file) {
  run_args_t a;
  const char *pos[2];
  cl_opt_t opts[] = {
      {"--lockstep", 0, NULL, &a.lockstep},
      {"--delays", 1, &a.delays, NULL},
      {"--seed", 1, &a.seed, NULL},
      {"--max-delay", 1, &a.max_delay, NULL},
      {"--tick-ms", 1, &a.tick_ms, NULL},
      {"--jitter-ms", 1, &a.jitter_ms, NULL},
      {"--timeout", 1, &a.timeout, NULL},
      {"--snap-dir", 1, &a.snap_dir, NULL},
      {"--json", 0, NULL, &a.json},
      {"--in-process", 0, NULL, &a.in_process},
      {"--cluster", 1, &a.cluster, NULL},
      {"--daemon", 1, &a.daemon, NULL},
      {"--log-dir", 1, &a.log_dir, NULL},
      {"--quiet", 0, NULL, &a.quiet},
      {NULL, 0, NULL, NULL}};
  uint64_t seed = 1, max_delay = 4, tick_ms = 5, jitter_ms = 0, timeout_s = 30;
  int npos, has_seed, rc, status = CL_EXIT_FAIL, replayed = 0;
  char err[1024] = "";
  cl_diag_t diag;
  char dbuf[600];
  cl_topology_t *topo = NULL;
  cl_script_t *script = NULL;
  cl_delays_t *delays = NULL;
  cl_sim_t *sim = NULL;
  uv_loop_t loop;
  int loop_open = 0;
  cl_launcher_t *launcher = NULL;
  cl_cluster_t *cluster = NULL;
  cl_endpoint_t *eps = NULL, *file_eps = NULL;
  size_t nfile = 0;
  cl_backend_t backend;
  cl_replay_opts_t ro;
  cl_replay_result_t res;

  memset(&a, 0, sizeof a);
  memset(&res, 0, sizeof res);
  a.cluster = cluster_file;
  npos = cl_cli_parse("run", argc, argv, opts, pos, 2, &a.help);
  if (npos < 0)
    return CL_EXIT_USAGE;
  if (a.help) {
    cl_usage("run", stdout);
    return CL_EXIT_OK;
  }
  if (npos != 2) {
    cl_errf("run: needs TOPOLOGY and EVENTS files");
    cl_usage_hint("run");
    return CL_EXIT_USAGE;
  }
  a.topo_path = pos[0];
  a.events_path = pos[1];
  has_seed = a.seed != NULL;
  if (cl_cli_u64("--seed", a.seed, 0, UINT64_MAX, &seed) ||
      cl_cli_u64("--max-delay", a.max_delay, 0, 1000000, &max_delay) ||
      cl_cli_u64("--tick-ms", a.tick_ms, 0, 3600000, &tick_ms) ||
      cl_cli_u64("--jitter-ms", a.jitter_ms, 0, 60000, &jitter_ms) ||
      cl_cli_u64("--timeout", a.timeout, 1, 86400, &timeout_s))
    return CL_EXIT_USAGE;
  if (a.delays != NULL && !a.lockstep) {
    cl_errf("run: --delays needs --lockstep");
    return CL_EXIT_USAGE;
  }
  if (a.delays != NULL && a.seed != NULL) {
    cl_errf("run: use either --delays or --seed, not both");
    return CL_EXIT_USAGE;
  }
  if (a.in_process && !a.lockstep) {
    cl_errf("run: --in-process needs --lockstep");
    return CL_EXIT_USAGE;
  }
  if (a.in_process && a.cluster != NULL) {
    cl_errf("run: --in-process and --cluster exclude each other");
    return CL_EXIT_USAGE;
  }

  if (cl_topology_load(a.topo_path, &topo, &diag) < 0 ||
      cl_script_load(a.events_path, topo, &script, &diag) < 0) {
    cl_diag_format(&diag, dbuf, sizeof dbuf);
    cl_errf("%s", dbuf);
    status = CL_EXIT_USAGE;
    goto out;
  }
  if (check_reachable(a.events_path, topo, script) < 0) {
    status = CL_EXIT_USAGE;
    goto out;
  }
  if (a.lockstep) {
    if (a.delays != NULL) {
      if (cl_delays_load(a.delays, &delays, &diag) < 0) {
        cl_diag_format(&diag, dbuf, sizeof dbuf);
        cl_errf("%s", dbuf);
        status = CL_EXIT_USAGE;
        goto out;
      }
    } else {
      delays = cl_delays_seeded(seed, (uint32_t)max_delay);
      has_seed = 1;
    }
    if (delays == NULL) {
      cl_errf("out of memory");
      goto out;
    }
  } else if (!has_seed) {
    seed = cl_now_ns() ^ ((uint64_t)getpid() << 32);
    has_seed = 1;
  }

  memset(&ro, 0, sizeof ro);
  ro.lockstep = a.lockstep;
  ro.delays = delays;
  ro.tick_ms = tick_ms;
  ro.timeout_ms = timeout_s * 1000;
  ro.progress = NULL;

  if (a.in_process) {
    sim = cl_sim_new(topo);
    if (sim == NULL) {
      cl_errf("cannot set up the in-process servers");
      goto out;
    }
    backend = cl_sim_backend(sim);
  } else {
    uint64_t tmo = timeout_s * 1000;
    if (uv_loop_init(&loop) != 0) {
      cl_errf("cannot create an event loop");
      goto out;
    }
    loop_open = 1;
    if (a.cluster != NULL) {
      if (cl_cluster_file_load(a.cluster, &file_eps, &nfile) != 0 ||
          cl_endpoints_for_topology(topo, file_eps, nfile, a.cluster, &eps) !=
              0) {
        status = CL_EXIT_USAGE;
        goto out;
      }
    } else {
      cl_launch_opts_t lo;
      memset(&lo, 0, sizeof lo);
      lo.daemon = a.daemon;
      lo.log_dir = a.log_dir;
      rc = cl_start_local(&loop, topo, &lo, &launcher, &eps, err, sizeof err);
      if (rc < 0)
        goto failed;
    }
    cluster = cl_cluster_new(&loop, eps, topo->nservers);
    if (cluster == NULL) {
      cl_errf("out of memory");
      goto out;
    }
    if (launcher != NULL)
      cl_cluster_set_guard(cluster, cl_launcher_guard, launcher);
    cl_cluster_set_call_timeout(cluster, tmo);
    rc = cl_cluster_connect(cluster, 10000, err, sizeof err);
    if (rc == 0)
      rc = cl_configure_cluster(cluster, topo, a.lockstep,
                                (uint32_t)jitter_ms, seed, tmo, err,
                                sizeof err);
    if (rc < 0)
      goto failed;
    backend = cl_cluster_backend(cluster);
  }

  replayed = 1;
  rc = cl_replay_run(topo, script, &backend, &ro, &res, err, sizeof err);
  if (rc < 0)
    goto failed;
  status = print_results(&a, topo, &res, has_seed, seed) == 0 ? CL_EXIT_OK
                                                              : CL_EXIT_FAIL;
  goto out;

failed:
  status = cl_report_failure(launcher, "run", err, rc);
  if (replayed && cluster != NULL)
    report_unfinished(cluster, res.started, script->nsnapshots);
  if (a.json)
    print_json_error(&a, err);

out:
  if (launcher != NULL) {
    if (cl_stop_local(cluster, launcher, err, sizeof err) < 0 &&
        status == CL_EXIT_OK) {
      cl_errf("%s", err);
      status = CL_EXIT_FAIL;
    }
    if (cl_launcher_interrupted(launcher) && status != CL_EXIT_INTR) {
      cl_errf("interrupted");
      status = CL_EXIT_INTR;
    }
  }
  cl_cluster_free(cluster);
  if (launcher != NULL)
    cl_launcher_free(launcher, status != CL_EXIT_OK);
  if (loop_open && uv_loop_close(&loop) != 0)
    cl_errf("internal: event loop still busy at exit");
  cl_replay_result_free(&res);
  if (sim != NULL)
    cl_sim_free(sim);
  if (delays != NULL)
    cl_delays_free(delays);
  if (script != NULL)
    cl_script_free(script);
  if (topo != NULL)
    cl_topology_free(topo);
  free(eps);
  free(file_eps);
  return status;
}
