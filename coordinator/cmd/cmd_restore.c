/* `clsnap restore SEQ|latest` and `clsnap resume`: bring a running
 * cluster back to a stored snapshot (docs/RESTORE.md): check it, FREEZE
 * every server at a new epoch, RESTORE each one's state, RESUME.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cluster_file.h"
#include "cluster_setup.h"
#include "cmds.h"
#include "daemons.h"
#include "error.h"
#include "output.h"
#include "store.h"
#include "stored.h"
#include "usage.h"
#include "util.h"

/* The request req to every server, OK wanted from each; 0, or -1 after
 * printing why (what names the step). */
static int all_ok(cl_daemons_t *d, const cl_endpoint_t *file, size_t n,
                  const cl_msg_t *req, uint64_t timeout_ms, const char *what) {
  cl_msg_t *reps;
  char err[1024];
  size_t i, bad = 0;
  int rc = cl_cluster_call_all(d->cluster, req, timeout_ms, 0, &reps, err,
                               sizeof err);
  if (rc < 0) {
    cl_cli_fail(rc, cl_cluster_culprit(d->cluster), NULL, 0, "%s: %s", what,
                err);
    return -1;
  }
  for (i = 0; i < n; i++)
    if (reps[i].type != CL_MSG_OK) {
      bad++;
      cl_cli_fail(reps[i].type == CL_MSG_ERROR
                      ? cl_err_from_wire(reps[i].u.error.code)
                      : CL_EPROTO,
                  file[i].id, NULL, 0, "%s: %s refused: %s", what, file[i].id,
                  reps[i].type == CL_MSG_ERROR ? reps[i].u.error.text
                                               : "unexpected reply");
    }
  cl_cluster_free_replies(d->cluster, reps);
  return bad ? -1 : 0;
}

/* STATUS of every server (strict) into *reps. 0 or -1 (printed). */
static int statuses(cl_daemons_t *d, uint64_t timeout_ms, cl_msg_t **reps) {
  cl_msg_t req = {.type = CL_MSG_STATUS};
  char err[1024];
  int rc = cl_cluster_call_all(d->cluster, &req, timeout_ms, 0, reps, err,
                               sizeof err);
  if (rc < 0)
    cl_cli_fail(rc, cl_cluster_culprit(d->cluster), NULL, 0, "%s", err);
  return rc < 0 ? -1 : 0;
}

/* The stored snapshot: read, a completed one, passing its check. Returns
 * 0, or the exit status after saying why not. */
static int load(const char *dir, const char *which, cl_stored_t *rec) {
  char path[PATH_MAX], why[PATH_MAX + 256];
  cl_verdict_t v;
  int status = cl_stored_find(dir, which, "restore", path, sizeof path);
  if (status != 0)
    return status;
  if (cl_store_read(path, rec, why, sizeof why) < 0) {
    cl_cli_fail(CL_EINVAL, NULL, path, 0, "restore: %s", why);
    return CL_EXIT_FAIL;
  }
  if (rec->status != CL_STORED_COMPLETED || rec->nstates == 0) {
    cl_cli_fail(CL_ESTATE, NULL, path, 0, "restore: #%" PRIu64 " %s, there "
                "is nothing to restore: %s", rec->seq,
                cl_store_status_name(rec->status),
                rec->reason[0] ? rec->reason : "no states");
    return CL_EXIT_FAIL;
  }
  if (cl_stored_recheck(rec, &v, why, sizeof why) < 0 || !v.ok) {
    cl_cli_fail(CL_EINVAL, NULL, path, 0, "restore: #%" PRIu64 " fails its "
                "check: %s", rec->seq, v.ok ? why : v.problems[0]);
    return CL_EXIT_FAIL;
  }
  return 0;
}

/* The cluster must run the snapshot's topology. Returns 0, or the exit
 * status after saying why not; *epoch: 1 + the largest epoch reported. */
static int same_topology(const cl_stored_t *rec, const cl_msg_t *reps,
                         size_t n, uint64_t *epoch) {
  char *text = cl_stored_topology_of(reps, n), hash[65];
  size_t i;
  *epoch = 0;
  for (i = 0; i < n; i++)
    if (reps[i].u.status.epoch > *epoch)
      *epoch = reps[i].u.status.epoch;
  (*epoch)++;
  if (text == NULL) {
    cl_cli_fail(CL_ESTATE, NULL, NULL, 0, "restore: the servers are not all "
                "configured (configure them with the snapshot's topology)");
    return CL_EXIT_FAIL;
  }
  cl_store_sha256(text, strlen(text), hash);
  free(text);
  if (rec->topology == NULL || strcmp(hash, rec->topology_sha256) != 0) {
    cl_cli_fail(CL_EINVAL, NULL, rec->path, 0, "restore: #%" PRIu64 " was "
                "taken on another topology (sha256 %.16s...) than the "
                "cluster's (%.16s...)", rec->seq, rec->topology_sha256, hash);
    return CL_EXIT_USAGE;
  }
  return 0;
}

/* RESTORE to every server, each its own stored state. 0 or -1. */
static int restore_all(cl_daemons_t *d, const cl_endpoint_t *file, size_t n,
                       const cl_stored_t *rec, uint64_t epoch, int paused,
                       uint64_t timeout_ms) {
  cl_msg_t *reqs = cl_xcalloc(n, sizeof *reqs);
  cl_msg_t *reps = cl_xcalloc(n, sizeof *reps);
  uint32_t *sv = cl_xcalloc(n, sizeof *sv);
  char err[1024];
  size_t i, j, bad = 0;
  int rc;
  for (i = 0; i < n; i++) {
    sv[i] = (uint32_t)i;
    reqs[i].type = CL_MSG_RESTORE;
    reqs[i].u.restore.epoch = epoch;
    reqs[i].u.restore.paused = (uint8_t)(paused != 0);
    for (j = 0; j < rec->nstates; j++)
      if (strcmp(rec->states[j].server, file[i].id) == 0)
        reqs[i].u.restore.state = rec->states[j]; /* borrowed */
  }
  rc = cl_cluster_call(d->cluster, n, sv, reqs, reps, timeout_ms, err,
                       sizeof err);
  if (rc < 0)
    cl_cli_fail(rc, cl_cluster_culprit(d->cluster), NULL, 0, "RESTORE: %s",
                err);
  for (i = 0; rc == 0 && i < n; i++)
    if (reps[i].type != CL_MSG_OK) {
      bad++;
      cl_cli_fail(reps[i].type == CL_MSG_ERROR
                      ? cl_err_from_wire(reps[i].u.error.code)
                      : CL_EPROTO,
                  file[i].id, NULL, 0, "RESTORE: %s refused: %s", file[i].id,
                  reps[i].type == CL_MSG_ERROR ? reps[i].u.error.text
                                               : "unexpected reply");
    }
  for (i = 0; i < n; i++)
    cl_msg_free(&reps[i]);
  free(reqs); /* the states are rec's */
  free(reps);
  free(sv);
  return rc < 0 || bad ? -1 : 0;
}

/* Snapshots in progress when the cluster froze: stored as failed, aborted
 * by the restore (st NULL: not stored). Returns how many there were. */
static size_t abort_in_progress(const cl_msg_t *reps, size_t n,
                                const cl_stored_t *rec, cl_store_t *st) {
  uint64_t *seen = NULL;
  size_t nseen = 0, i, k, j;
  char why[256];
  for (i = 0; i < n; i++)
    for (k = 0; k < reps[i].u.status.nactive; k++) {
      uint64_t id = reps[i].u.status.active[k];
      cl_stored_t fail;
      for (j = 0; j < nseen && seen[j] != id; j++)
        ;
      if (j < nseen)
        continue;
      seen = cl_xrealloc(seen, (nseen + 1) * sizeof *seen);
      seen[nseen++] = id;
      if (st == NULL)
        continue;
      snprintf(why, sizeof why, "aborted by the restore to #%" PRIu64
               " (snapshot %" PRIu64 ")", rec->seq, rec->id);
      cl_stored_make(&fail, id, reps[i].u.status.self, CL_STORED_FAILED, why,
                     cl_utc_us(), 0, rec->topology, NULL, 0, NULL);
      (void)cl_stored_save(st, &fail, 0);
      cl_store_record_free(&fail);
    }
  free(seen);
  return nseen;
}

/* The cluster must be the snapshot's: the cluster file lists exactly its
 * servers, and every configured server runs its topology (CONFIGURE's
 * config id is the topology's fingerprint). Checked before anything is
 * configured or changed. Returns 0, or the exit status after saying why
 * not. */
static int same_cluster(const cl_stored_t *rec, const cl_topology_t *topo,
                        size_t nall, const cl_msg_t *reps) {
  uint64_t want = cl_topology_hash(topo);
  size_t i;
  if (nall != topo->nservers) {
    cl_cli_fail(CL_EINVAL, NULL, rec->path, 0, "restore: #%" PRIu64 " was "
                "taken on another topology (%zu servers; the cluster has "
                "%zu)", rec->seq, topo->nservers, nall);
    return CL_EXIT_USAGE;
  }
  for (i = 0; i < topo->nservers; i++)
    if (reps[i].u.status.configured && reps[i].u.status.config_id != want) {
      cl_cli_fail(CL_EINVAL, topo->servers[i].id, rec->path, 0,
                  "restore: #%" PRIu64 " was taken on another topology than "
                  "the one %s runs", rec->seq, topo->servers[i].id);
      return CL_EXIT_USAGE;
    }
  return 0;
}

/* Servers that are not configured (restarted after a crash) are
 * configured from the snapshot's topology, in the mode of the others.
 * *reps are the STATUS replies, asked again afterwards. Returns 0 or -1
 * (printed); *nconf: how many were configured. */
static int configure_missing(cl_daemons_t *d, const cl_topology_t *topo,
                             uint64_t timeout_ms, cl_msg_t **reps,
                             size_t *nconf) {
  size_t n = topo->nservers, i;
  uint32_t *which = cl_xcalloc(n, sizeof *which);
  char err[1024];
  int lockstep = 0, rc = 0;
  *nconf = 0;
  for (i = 0; i < n; i++) {
    if ((*reps)[i].u.status.configured)
      lockstep |= (*reps)[i].u.status.lockstep;
    else
      which[(*nconf)++] = (uint32_t)i;
  }
  if (*nconf > 0) {
    rc = cl_cluster_configure(d->cluster, topo, which, *nconf, lockstep,
                              timeout_ms, err, sizeof err);
    if (rc < 0)
      cl_cli_fail(rc, cl_cluster_culprit(d->cluster), NULL, 0, "%s", err);
    cl_cluster_free_replies(d->cluster, *reps);
    *reps = NULL;
    if (rc == 0)
      rc = statuses(d, timeout_ms, reps);
  }
  free(which);
  return rc < 0 ? -1 : 0;
}

/* The test hook: CLSNAP_RESTORE_CRASH=STEP kills clsnap with SIGKILL
 * after that step (frozen, restored), as a coordinator killed half way. */
static void crash_point(const char *step) {
  const char *at = getenv("CLSNAP_RESTORE_CRASH");
  if (at != NULL && strcmp(at, step) == 0)
    raise(SIGKILL);
}

/* `restore SEQ|latest`: the three steps. Returns the exit status. */
static int do_restore(const char *cluster, const char *dir, const char *which,
                      int paused, uint64_t timeout_ms) {
  cl_endpoint_t *all = NULL, *file = NULL;
  cl_topology_t *topo = NULL;
  cl_diag_t diag;
  size_t n = 0, nall = 0, nconf = 0;
  cl_daemons_t d;
  cl_stored_t rec;
  cl_msg_t *reps = NULL, req;
  cl_store_t *st = NULL;
  uint64_t epoch = 0, t0 = cl_now_ns(), messages = 0;
  int64_t tokens = 0;
  size_t i, aborted;
  char dur[32], err[1024];
  int status;
  memset(&rec, 0, sizeof rec);
  if ((status = load(dir, which, &rec)) != 0)
    return status;
  /* The cluster in the topology's order, so that a restarted server can
   * be configured from it. */
  if (rec.topology == NULL ||
      cl_topology_parse("topology", rec.topology, &topo, &diag) < 0) {
    cl_cli_fail(CL_EINVAL, NULL, rec.path, 0, "restore: #%" PRIu64 " has no "
                "usable topology", rec.seq);
    cl_store_record_free(&rec);
    return CL_EXIT_FAIL;
  }
  if (cl_daemons_file_load(cluster, &all, &nall) != 0) {
    cl_topology_free(topo);
    cl_store_record_free(&rec);
    return CL_EXIT_USAGE;
  }
  if (cl_daemons_file_endpoints(topo, all, nall, cluster, &file) != 0) {
    cl_cli_fail(CL_EINVAL, NULL, rec.path, 0, "restore: #%" PRIu64 " was "
                "taken on another topology, whose servers the cluster file "
                "%s lacks", rec.seq, cluster);
    free(all);
    cl_topology_free(topo);
    cl_store_record_free(&rec);
    return CL_EXIT_USAGE;
  }
  n = topo->nservers;
  status = CL_EXIT_FAIL;
  memset(&d, 0, sizeof d);
  if (cl_daemons_init(&d) < 0 || cl_daemons_attach(&d, file, n, timeout_ms) < 0)
    goto done;
  if (cl_cluster_connect(d.cluster, timeout_ms, err, sizeof err) < 0) {
    cl_cli_fail(CL_ELOST, cl_cluster_culprit(d.cluster), NULL, 0, "%s", err);
    goto done;
  }
  if (statuses(&d, timeout_ms, &reps) < 0)
    goto done;
  if ((status = same_cluster(&rec, topo, nall, reps)) != 0)
    goto done;
  status = CL_EXIT_FAIL;
  if (configure_missing(&d, topo, timeout_ms, &reps, &nconf) < 0)
    goto done;
  if ((status = same_topology(&rec, reps, n, &epoch)) != 0)
    goto done;
  status = CL_EXIT_FAIL;
  cl_cluster_free_replies(d.cluster, reps);
  reps = NULL;
  memset(&req, 0, sizeof req);
  req.type = CL_MSG_FREEZE;
  req.u.freeze.epoch = epoch;
  if (all_ok(&d, file, n, &req, timeout_ms, "FREEZE") < 0 ||
      statuses(&d, timeout_ms, &reps) < 0)
    goto half;
  crash_point("frozen");
  st = cl_stored_open(dir);
  aborted = abort_in_progress(reps, n, &rec, st);
  if (restore_all(&d, file, n, &rec, epoch, paused, timeout_ms) < 0)
    goto half;
  crash_point("restored");
  memset(&req, 0, sizeof req);
  req.type = CL_MSG_RESUME;
  if (!paused && all_ok(&d, file, n, &req, timeout_ms, "RESUME") < 0) {
    cl_cli_errf("restore: every server took #%" PRIu64 " at epoch %" PRIu64
                ", not every one resumed: run clsnap resume", rec.seq, epoch);
    goto done;
  }
  for (i = 0; i < rec.nstates; i++) {
    uint32_t k;
    tokens += rec.states[i].tokens;
    for (k = 0; k < rec.states[i].nrecorded; k++)
      messages += rec.states[i].recorded[k].count;
  }
  if (cl_cli.json) {
    cl_json_print(json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:f}", "seq",
        (json_int_t)rec.seq, "id", (json_int_t)rec.id, "epoch",
        (json_int_t)epoch, "servers", (json_int_t)n, "tokens",
        (json_int_t)tokens, "messages", (json_int_t)messages, "aborted",
        (json_int_t)aborted, "paused", paused,
        "seconds", (double)(cl_now_ns() - t0) / 1e9));
    status = CL_EXIT_OK;
    goto done;
  }
  cl_output_duration((double)(cl_now_ns() - t0) / 1e9, dur, sizeof dur);
  if (nconf > 0)
    printf("configured %zu restarted server%s from the snapshot's topology\n",
           nconf, nconf == 1 ? "" : "s");
  printf("restored #%" PRIu64 " (snapshot %" PRIu64 ") on %zu servers at "
         "epoch %" PRIu64 " in %s: %" PRId64 " tokens on servers, %" PRIu64
         " messages put back on their channels; %zu snapshot%s in progress "
         "aborted\n", rec.seq, rec.id, n, epoch, dur, tokens, messages,
         aborted, aborted == 1 ? "" : "s");
  if (paused)
    printf("paused: the cluster is the stored snapshot (clsnap status "
           "--snap); clsnap resume carries on\n");
  status = CL_EXIT_OK;
  goto done;
half:
  cl_cli_errf("restore: not every server took epoch %" PRIu64 "; those that "
              "did refuse the others' channels. Run the restore again to "
              "repair the cluster", epoch);
done:
  if (reps != NULL)
    cl_cluster_free_replies(d.cluster, reps);
  cl_store_close(st);
  cl_daemons_close(&d, 0);
  cl_store_record_free(&rec);
  cl_topology_free(topo);
  free(file);
  free(all);
  return status;
}

/* `resume`: RESUME every server. */
static int do_resume(const char *cluster, uint64_t timeout_ms) {
  cl_endpoint_t *file = NULL;
  size_t n = 0;
  cl_daemons_t d;
  cl_msg_t req;
  char err[1024];
  int status = CL_EXIT_FAIL;
  if (cl_daemons_file_load(cluster, &file, &n) != 0)
    return CL_EXIT_USAGE;
  memset(&d, 0, sizeof d);
  memset(&req, 0, sizeof req);
  req.type = CL_MSG_RESUME;
  if (cl_daemons_init(&d) == 0 &&
      cl_daemons_attach(&d, file, n, timeout_ms) == 0) {
    if (cl_cluster_connect(d.cluster, timeout_ms, err, sizeof err) < 0)
      cl_cli_fail(CL_ELOST, cl_cluster_culprit(d.cluster), NULL, 0, "%s",
                  err);
    else if (all_ok(&d, file, n, &req, timeout_ms, "RESUME") == 0) {
      if (cl_cli.json)
        cl_json_print(json_pack("{s:I}", "resumed", (json_int_t)n));
      else
        printf("resumed %zu servers\n", n);
      status = CL_EXIT_OK;
    }
  }
  cl_daemons_close(&d, 0);
  free(file);
  return status;
}

int cl_cmd_restore(int argc, char **argv, const char *cluster_file) {
  const char *store = NULL, *cluster = cluster_file, *timeout = NULL,
             *pos[1];
  int paused = 0, want = strcmp(argv[0], "restore") == 0, npos;
  uint64_t timeout_ms = 30000;
  char dir[PATH_MAX];
  cl_opt_t opts[] = {{"timeout", 0, 1, &timeout, NULL},
                     {"cluster", 0, 1, &cluster, NULL},
                     {"store", 0, 1, &store, NULL},
                     {"paused", 0, 0, NULL, &paused},
                     {NULL, 0, 0, NULL, NULL}};
  if (!want)
    opts[2] = opts[4];
  npos = cl_cli_parse(argc, argv, opts, pos, want);
  if (npos < 0)
    return CL_EXIT_USAGE;
  if (cl_cli.help)
    return cl_cli_help(argv[0]);
  if (npos != want)
    return cl_cli_usage("needs SEQ (a number from clsnap history) or latest");
  if (cl_cli_duration("--timeout", timeout, 1, 86400000, &timeout_ms) ||
      (cluster = cl_cli_cluster(cluster)) == NULL)
    return CL_EXIT_USAGE;
  if (!want)
    return do_resume(cluster, timeout_ms);
  if (cl_stored_dir(store, cluster, dir, sizeof dir) < 0)
    return CL_EXIT_USAGE;
  return do_restore(cluster, dir, pos[0], paused, timeout_ms);
}
