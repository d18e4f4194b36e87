/* The commands that act on an already running cluster named by a cluster
 * file: configure, send, snapshot, collect, status, shutdown.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cluster_file.h"
#include "cluster_setup.h"
#include "cluster_take.h"
#include "cmds.h"
#include "daemons.h"
#include "error.h"
#include "output.h"
#include "stored.h"
#include "usage.h"
#include "verify.h"

/* ---- shared steps --------------------------------------------------------- */

/* A call to the cluster failed with rc and err: print it, kept for --json
 * with the server it was about. */
static void call_failed(const cl_daemons_t *s, int rc, const char *err) {
  cl_cli_fail(rc, cl_cluster_culprit(s->cluster), NULL, 0, "%s", err);
}

/* Server id answered `what` with rep, neither the answer wanted nor OK:
 * print it as "ID refused WHAT: TEXT (ECODE)" (an ERROR) or "ID answered
 * WHAT with TYPE", kept for --json with the server and the refusal's
 * code. */
static void reply_failed(const char *id, const char *what,
                         const cl_msg_t *rep) {
  if (rep->type == CL_MSG_ERROR)
    cl_cli_fail(cl_err_from_wire(rep->u.error.code), id, NULL, 0,
                "%s refused %s: %s (%s)", id, what, rep->u.error.text,
                cl_err_name(rep->u.error.code));
  else
    cl_cli_fail(CL_EPROTO, id, NULL, 0, "%s answered %s with %s", id, what,
                cl_msg_type_name(rep->type));
}

/* Open connections to eps on a fresh loop. strict: every server must
 * answer (exit 1 otherwise, printed). Returns 0 or -1. */
static int session_open(cl_daemons_t *s, const cl_endpoint_t *eps, size_t n,
                        uint64_t timeout_ms, int strict) {
  char err[512];
  int rc;
  if (cl_daemons_init(s) < 0 || cl_daemons_attach(s, eps, n, timeout_ms) < 0)
    return -1;
  rc = cl_cluster_connect(s->cluster, timeout_ms < 10000 ? timeout_ms : 10000,
                          err, sizeof err);
  if (rc < 0 && strict) {
    call_failed(s, rc, err);
    return -1;
  }
  return 0;
}

/* The request req to every server: strict (cl_cluster_call) or each on its
 * own (cl_cluster_call_each, a missing reply stays zeroed). Returns the
 * replies, one per server (free with cl_cluster_free_replies), or NULL
 * after printing why the call failed. */
static cl_msg_t *ask_all(cl_daemons_t *s, const cl_msg_t *req,
                         uint64_t timeout_ms, int strict) {
  cl_msg_t *reps;
  char err[512];
  int rc = cl_cluster_call_all(s->cluster, req, timeout_ms, !strict, &reps,
                               err, sizeof err);
  if (rc == 0)
    return reps;
  call_failed(s, rc, err);
  return NULL;
}

/* Check the global snapshot sid made of states[n] into *v and print it
 * (and write its .snap file into snap_dir if given). Returns the exit
 * status. */
static int check_and_print(uint64_t sid, const cl_local_state_t *states,
                           size_t n, int json, int quiet,
                           const char *snap_dir, cl_verdict_t *v) {
  cl_snap_t *snap = NULL;
  int status, rc;
  cl_verify(NULL, NULL, states, n, v);
  rc = cl_verify_global_snap(sid, states, n, &snap);
  if (rc == CL_ETOOBIG) /* the verdict still stands; only the list is cut */
    cl_cli_errf("snapshot %" PRIu64 ": %zu recorded messages are too many to "
                "list (at most %zu); the check below covers them all",
                sid, v->nrecorded, (size_t)CL_GLOBAL_SNAP_MSGS_MAX);
  else if (rc < 0) {
    cl_cli_errf("snapshot %" PRIu64 ": out of memory", sid);
    return CL_EXIT_FAIL;
  }
  if (json)
    cl_json_print(cl_json_checked(sid, snap, v, states, n));
  else
    cl_output_checked(stdout, sid, snap, v, quiet);
  status = v->ok ? CL_EXIT_OK : CL_EXIT_FAIL;
  if (snap_dir != NULL && snap == NULL) {
    cl_cli_errf("snapshot %" PRIu64 ": no %s/%" PRIu64 ".snap written "
                "(too many messages to list)", sid, snap_dir, sid);
    status = CL_EXIT_FAIL;
  } else if (snap_dir != NULL &&
             cl_output_snap_file(snap_dir, sid, snap) != 0) {
    status = CL_EXIT_FAIL;
  }
  if (snap != NULL)
    cl_snap_free(snap);
  return status;
}

/* After cl_cluster_take_gather failed: name every server whose reply in
 * reps[n] holds no state (a refusal or an unexpected reply); 0 if none
 * did (the call itself failed). */
static size_t name_stateless(const cl_daemons_t *s, const cl_msg_t *reps,
                             size_t n) {
  size_t i, nbad = 0;
  for (i = 0; reps != NULL && i < n; i++) {
    const char *id = cl_cluster_id(s->cluster, i);
    if (reps[i].type == CL_MSG_STATE || reps[i].type == CL_MSG_LOCAL_STATE ||
        reps[i].type == 0)
      continue;
    nbad++;
    if (reps[i].type == CL_MSG_ERROR)
      cl_cli_fail(cl_err_from_wire(reps[i].u.error.code), id, NULL, 0,
                  "%s: %s (%s)", id, reps[i].u.error.text,
                  cl_err_name(reps[i].u.error.code));
    else
      cl_cli_fail(CL_EPROTO, id, NULL, 0, "server %s answered COLLECT with %s",
                  id, cl_msg_type_name(reps[i].type));
  }
  return nbad;
}

/* Gather snapshot sid from everyone, check, print. Returns the exit
 * status. */
static int collect_and_check(cl_daemons_t *s, uint64_t sid, int json,
                             int quiet, const char *snap_dir,
                             uint64_t timeout_ms) {
  size_t n = cl_cluster_size(s->cluster);
  cl_take_t t;
  cl_verdict_t v;
  char err[1024];
  int status = CL_EXIT_FAIL, rc;
  memset(&t, 0, sizeof t);
  rc = cl_cluster_take_gather(s->cluster, sid, timeout_ms, &t, err, sizeof err);
  if (rc < 0) {
    if (name_stateless(s, t.reps, n) == 0)
      call_failed(s, rc, err);
  } else {
    status = check_and_print(sid, t.states, n, json, quiet, snap_dir, &v);
  }
  cl_cluster_take_free(&t, n);
  return status;
}

/* ---- JSON results ---------------------------------------------------------- */

/* {"id", "address"} of a server of the cluster file. */
static json_t *json_endpoint(const cl_endpoint_t *ep) {
  return json_pack("{s:s, s:o}", "id", ep->id, "address",
                   cl_cli_json_text(ep->addr));
}

/* configure --json: the servers configured (topology order) and how. */
static json_t *configure_json(const cl_topology_t *topo,
                              const cl_endpoint_t *eps, int lockstep,
                              uint64_t jitter_ms, uint64_t seed) {
  json_t *o = json_object(), *arr = json_array();
  size_t i;
  for (i = 0; i < topo->nservers; i++)
    json_array_append_new(arr, json_endpoint(&eps[i]));
  json_object_set_new(o, "servers", arr);
  json_object_set_new(o, "mode", json_string(lockstep ? "lockstep" : "free"));
  json_object_set_new(o, "channels", json_integer((json_int_t)topo->nlinks));
  json_object_set_new(o, "tokens", json_integer(topo->total_tokens));
  json_object_set_new(o, "jitter_ms", json_integer((json_int_t)jitter_ms));
  json_object_set_new(o, "seed", json_integer((json_int_t)seed));
  return o;
}

/* send --json: the token message sent (seq NULL: the server did not say). */
static json_t *send_json(const char *src, const char *dst, uint64_t tokens,
                         const uint64_t *seq) {
  return json_pack("{s:s, s:s, s:I, s:o}", "src", src, "dst", dst, "tokens",
                   (json_int_t)tokens,
                   "seq", seq ? json_integer((json_int_t)*seq) : json_null());
}

/* ---- commands ------------------------------------------------------------- */

typedef struct cargs {
  const char *timeout, *jitter, *seed, *snap_dir, *cluster, *store, *keep_s;
  int lockstep, json, quiet, no_wait, brief, snap;
  uint64_t timeout_ms, keep;
} cargs_t;

/* `configure TOPOLOGY`: CONFIGURE then CONNECT every server. */
static int cmd_configure(cargs_t *a, const char *const *pos,
                         const cl_endpoint_t *file, size_t nfile,
                         const char *file_name) {
  cl_topology_t *topo = NULL;
  cl_endpoint_t *eps = NULL;
  cl_diag_t diag;
  char buf[1024];
  uint64_t jitter = 0, seed;
  cl_daemons_t s;
  int status = CL_EXIT_FAIL;
  /* 63 bits, so that JSON prints it as it is */
  seed = (cl_now_ns() ^ ((uint64_t)getpid() << 32)) & INT64_MAX;
  if (cl_cli_u64("--jitter-ms", a->jitter, 0, 60000, &jitter) ||
      cl_cli_u64("--seed", a->seed, 0, INT64_MAX, &seed))
    return CL_EXIT_USAGE;
  if (cl_topology_load(pos[0], &topo, &diag) < 0)
    return cl_cli_bad_input(&diag);
  if (cl_daemons_file_endpoints(topo, file, nfile, file_name, &eps) != 0) {
    cl_topology_free(topo);
    return CL_EXIT_USAGE;
  }
  if (session_open(&s, eps, topo->nservers, a->timeout_ms, 1) == 0) {
    int rc = cl_cluster_setup(s.cluster, topo, a->lockstep, (uint32_t)jitter,
                              seed, a->timeout_ms, buf, sizeof buf);
    if (rc < 0) {
      call_failed(&s, rc, buf);
    } else if (a->json) {
      cl_json_print(configure_json(topo, eps, a->lockstep, jitter, seed));
      status = CL_EXIT_OK;
    } else {
      printf("configured and connected %zu servers (%s, %zu channels, "
             "%" PRId64 " tokens)\n",
             topo->nservers,
             a->lockstep ? "lockstep" : "free-running", topo->nlinks,
             topo->total_tokens);
      status = CL_EXIT_OK;
    }
  }
  cl_daemons_close(&s, 0);
  free(eps);
  cl_topology_free(topo);
  return status;
}

/* What `send` sent, as the OK reply ok of src says (its first sent
 * message; without one, the n tokens asked for to dst). */
static void print_sent(int json, const char *src, const char *dst, uint64_t n,
                       const cl_msg_t *ok) {
  const cl_sent_t *m = ok->u.ok.nsent >= 1 ? &ok->u.ok.sent[0] : NULL;
  if (m != NULL) {
    dst = m->dest;
    n = m->value;
  }
  if (json)
    cl_json_print(send_json(src, dst, n, m ? &m->seq : NULL));
  else if (m != NULL)
    printf("%s -> %s: %" PRIu64 " token%s (seq %" PRIu64 ")\n", src, dst, n,
           n == 1 ? "" : "s", m->seq);
  else
    printf("%s -> %s: %" PRIu64 " token%s\n", src, dst, n, n == 1 ? "" : "s");
}

/* `send SRC DEST N`: one SEND at SRC; prints the token sent or the refusal. */
static int cmd_send(cargs_t *a, const char *const *pos,
                    const cl_endpoint_t *file, size_t nfile) {
  int src = cl_cluster_file_find(file, nfile, pos[0]);
  int dst = cl_cluster_file_find(file, nfile, pos[1]);
  uint64_t n = 0;
  cl_daemons_t s;
  cl_msg_t req, rep;
  uint32_t server = 0;
  char err[512];
  int status = CL_EXIT_FAIL;
  if (src < 0 || dst < 0)
    return cl_cli_unknown_server(src < 0 ? pos[0] : pos[1], a->cluster);
  if (cl_cli_u64("N", pos[2], 1, (uint64_t)CL_TOKENS_MAX, &n))
    return CL_EXIT_USAGE;
  memset(&req, 0, sizeof req);
  memset(&rep, 0, sizeof rep);
  req.type = CL_MSG_SEND;
  memcpy(req.u.send.dest, file[dst].id, CL_ID_SIZE);
  req.u.send.n = (int64_t)n;
  if (session_open(&s, &file[src], 1, a->timeout_ms, 1) == 0) {
    int rc = cl_cluster_call(s.cluster, 1, &server, &req, &rep, a->timeout_ms,
                             err, sizeof err);
    if (rc < 0) {
      call_failed(&s, rc, err);
    } else if (rep.type == CL_MSG_ERROR) {
      cl_cli_fail(cl_err_from_wire(rep.u.error.code), file[src].id, NULL, 0,
                  "%s refused: %s (%s)", file[src].id, rep.u.error.text,
                  cl_err_name(rep.u.error.code));
    } else if (rep.type == CL_MSG_OK) {
      print_sent(a->json, file[src].id, file[dst].id, n, &rep);
      status = CL_EXIT_OK;
    } else {
      reply_failed(file[src].id, "SEND", &rep);
    }
    cl_msg_free(&rep);
  }
  cl_daemons_close(&s, 0);
  return status;
}

/* Servers no marker from server `at` can reach, from the outbound
 * channels each server reported in its STATUS: "N4, N7" into buf; returns
 * how many. */
static size_t unreachable_from(const cl_endpoint_t *file, size_t nfile,
                               size_t at, const cl_msg_t *st, char *buf,
                               size_t size) {
  uint8_t *seen = cl_xcalloc(nfile, 1);
  size_t *queue = cl_xcalloc(nfile, sizeof *queue), head = 0, tail = 0, i,
         j, n = 0, len = 0;
  buf[0] = '\0';
  seen[at] = 1;
  queue[tail++] = at;
  while (head < tail) {
    const cl_status_t *ss = &st[queue[head++]].u.status;
    for (j = 0; j < ss->nout; j++) {
      int k = cl_cluster_file_find(file, nfile, ss->out[j].peer);
      if (k >= 0 && !seen[k]) {
        seen[k] = 1;
        queue[tail++] = (size_t)k;
      }
    }
  }
  for (i = 0; i < nfile; i++)
    if (!seen[i]) {
      n++;
      if (len + CL_ID_SIZE + 3 < size)
        len += (size_t)snprintf(buf + len, size - len, "%s%s", len ? ", " : "",
                                file[i].id);
    }
  free(seen);
  free(queue);
  return n;
}

/* One request to server `at`; 0 and its OK reply in *rep, or -1 after
 * printing why (`what` names the request). */
static int ask_one(cl_daemons_t *s, size_t at, cl_msg_t *req, cl_msg_t *rep,
                   const char *what, uint64_t timeout_ms) {
  uint32_t server = (uint32_t)at;
  char err[1024];
  int rc = cl_cluster_call(s->cluster, 1, &server, req, rep, timeout_ms, err,
                           sizeof err);
  if (rc < 0) {
    call_failed(s, rc, err);
    return -1;
  }
  if (rep->type == CL_MSG_OK)
    return 0;
  reply_failed(cl_cluster_id(s->cluster, at), what, rep);
  cl_msg_free(rep);
  return -1;
}

/* Every server's channels first (a snapshot that cannot reach a server
 * would only time out): all must be configured, and all reachable by
 * markers from server `at`. The topology their replies describe goes
 * into *topology (malloc'd) if it is not NULL. Returns 0, or the exit
 * status after printing why not. */
static int check_reach(cl_daemons_t *s, const cl_endpoint_t *file,
                       size_t nfile, size_t at, uint64_t timeout_ms,
                       char **topology) {
  cl_msg_t req = {.type = CL_MSG_STATUS};
  cl_msg_t *reps = ask_all(s, &req, timeout_ms, 1);
  char who[512];
  size_t i;
  int status = CL_EXIT_FAIL;
  if (reps == NULL)
    return CL_EXIT_FAIL;
  for (i = 0; i < nfile; i++)
    if (reps[i].type != CL_MSG_STATUS_R || !reps[i].u.status.configured) {
      cl_cli_fail(CL_ESTATE, file[i].id, NULL, 0,
                  "snapshot: %s is not configured", file[i].id);
      goto done;
    }
  if (unreachable_from(file, nfile, at, reps, who, sizeof who) > 0) {
    cl_cli_fail(CL_EINVAL, file[at].id, NULL, 0,
                "snapshot: no marker from %s can reach %s (no path of "
                "channels), so the snapshot could never complete",
                file[at].id, who);
    status = CL_EXIT_USAGE;
    goto done;
  }
  if (topology != NULL)
    *topology = cl_stored_topology_of(reps, nfile);
  status = 0;
done:
  cl_cluster_free_replies(s->cluster, reps);
  return status;
}

/* SNAPSHOT at server `at`, the server picking the id. Returns 0 and the
 * snapshot's id in *id, or -1 as ask_one. */
static int start_at(cl_daemons_t *s, size_t at, uint64_t timeout_ms,
                    uint64_t *id) {
  cl_msg_t req, rep;
  memset(&req, 0, sizeof req);
  memset(&rep, 0, sizeof rep);
  req.type = CL_MSG_SNAPSHOT;
  if (ask_one(s, at, &req, &rep, "SNAPSHOT", timeout_ms) < 0)
    return -1;
  *id = rep.u.ok.snapshot_id;
  cl_msg_free(&rep);
  return 0;
}

/* A snapshot that did not complete (rc, err from cl_cluster_take): said,
 * given up on the servers if it got an id, and stored as timed out or
 * failed when st is not NULL (as checkpoint stores them). */
static void snapshot_lost(cl_daemons_t *s, const cargs_t *a, size_t at,
                          cl_take_t *t, int rc, const char *err,
                          const char *topology, cl_store_t *st) {
  cl_stored_t rec;
  call_failed(s, rc, err); /* names the snapshot and the servers missing */
  if (st != NULL)
    cl_stored_make(&rec, t->id, cl_cluster_id(s->cluster, at),
                   rc == CL_ETIMEOUT ? CL_STORED_TIMED_OUT : CL_STORED_FAILED,
                   err, t->trigger_us, 0, topology, NULL, 0, NULL);
  if (t->id != 0)
    (void)cl_cluster_take_drop(s->cluster, t->id, t->sent, 1000);
  if (st == NULL)
    return;
  if (cl_stored_save(st, &rec, a->keep) == 0 && !a->json)
    printf("stored #%" PRIu64 " (%s): %s\n", rec.seq,
           cl_store_status_name(rec.status), rec.path);
  cl_store_record_free(&rec);
}

/* A fresh id from server `at`, every server asked to push that snapshot's
 * state here before it starts, start it, wait for the states, check; and
 * with --store, keep it. Returns the exit status. */
static int snapshot_watched(cl_daemons_t *s, const cargs_t *a, size_t at,
                            const char *topology, cl_store_t *st) {
  size_t n = cl_cluster_size(s->cluster);
  cl_take_t t;
  cl_verdict_t v;
  cl_stored_t rec;
  char err[1024];
  uint64_t seq;
  int status, rc;
  if (st != NULL && cl_store_reserve(st, &seq, err, sizeof err) < 0) {
    cl_cli_fail(CL_EIO, NULL, a->store, 0, "%s", err);
    return CL_EXIT_FAIL;
  }
  rc = cl_cluster_take(s->cluster, at, a->timeout_ms, &t, err, sizeof err);
  if (rc < 0) {
    snapshot_lost(s, a, at, &t, rc, err, topology, st);
    cl_cluster_take_free(&t, n);
    return CL_EXIT_FAIL;
  }
  status = check_and_print(t.id, t.states, n, a->json, a->quiet, a->snap_dir,
                           &v);
  if (st != NULL) {
    cl_stored_make(&rec, t.id, cl_cluster_id(s->cluster, at),
                   v.ok ? CL_STORED_COMPLETED : CL_STORED_FAILED,
                   v.ok ? NULL : v.problems[0], t.trigger_us,
                   t.completion_us, topology, t.states, n, &v);
    if (cl_stored_save(st, &rec, a->keep) < 0)
      status = CL_EXIT_FAIL;
    else if (!a->json)
      printf("stored #%" PRIu64 " (%s): %s\n", rec.seq,
             cl_store_status_name(rec.status), rec.path);
    cl_store_record_free(&rec);
  }
  cl_cluster_take_free(&t, n);
  return status;
}

/* `snapshot ID`: check that it can complete, then start it at ID. With
 * --no-wait only start it and say its id: nobody watches it, so its states
 * stay kept (within --max-kept) for a later `collect`. Otherwise watch it
 * and check it; however many callers do this at once, each gets its own
 * snapshot and no server drops a state one of them waits for. */
static int cmd_snapshot(cargs_t *a, const char *const *pos,
                        const cl_endpoint_t *file, size_t nfile) {
  int at = cl_cluster_file_find(file, nfile, pos[0]);
  cl_daemons_t s;
  cl_store_t *st = NULL;
  char *topology = NULL;
  uint64_t id;
  int status = CL_EXIT_FAIL;
  if (at < 0)
    return cl_cli_unknown_server(pos[0], a->cluster);
  if (a->keep_s != NULL && a->store == NULL)
    return cl_cli_usage("--keep goes with --store");
  if (a->store != NULL && a->no_wait)
    return cl_cli_usage("--store keeps a snapshot it waits for: it cannot "
                        "go with --no-wait");
  if (a->store != NULL && (st = cl_stored_open(a->store)) == NULL)
    return CL_EXIT_FAIL;
  if (session_open(&s, file, nfile, a->timeout_ms, 1) == 0)
    status = check_reach(&s, file, nfile, (size_t)at, a->timeout_ms,
                         st != NULL ? &topology : NULL);
  if (status == 0 && a->no_wait) {
    status = start_at(&s, (size_t)at, a->timeout_ms, &id) < 0
                 ? CL_EXIT_FAIL
                 : CL_EXIT_OK;
    if (status == CL_EXIT_OK && a->json)
      cl_json_print(json_pack("{s:I, s:s}", "id", (json_int_t)id, "server",
                              file[at].id));
    else if (status == CL_EXIT_OK)
      printf("%" PRIu64 "\n", id);
  } else if (status == 0) {
    status = snapshot_watched(&s, a, (size_t)at, topology, st);
  }
  cl_daemons_close(&s, 0);
  cl_store_close(st);
  free(topology);
  return status;
}

/* `collect SNAPSHOT_ID`: collect and check a kept snapshot. */
static int cmd_collect(cargs_t *a, const char *const *pos,
                       const cl_endpoint_t *file, size_t nfile) {
  uint64_t sid = 0;
  cl_daemons_t s;
  int status = CL_EXIT_FAIL;
  if (cl_cli_u64("SNAPSHOT_ID", pos[0], 0, UINT64_MAX, &sid))
    return CL_EXIT_USAGE;
  if (session_open(&s, file, nfile, a->timeout_ms, 1) == 0)
    status = collect_and_check(&s, sid, a->json, a->quiet, a->snap_dir,
                               a->timeout_ms);
  cl_daemons_close(&s, 0);
  return status;
}

/* Snapshot ids as a JSON array. */
static json_t *json_ids(const uint64_t *ids, size_t n) {
  json_t *arr = json_array();
  size_t i;
  for (i = 0; i < n; i++)
    json_array_append_new(arr, json_integer((json_int_t)ids[i]));
  return arr;
}

/* Why server i gave no STATUS_R (rep): its refusal, no reply, or why its
 * connection is not up. */
static const char *no_status(const cl_daemons_t *s, size_t i,
                             const cl_msg_t *rep) {
  if (rep->type == CL_MSG_ERROR)
    return rep->u.error.text;
  return cl_cluster_up(s->cluster, i) ? "no reply"
                                      : cl_cluster_why(s->cluster, i);
}

/* What the STATUS replies add up to, and the widths of the table. */
typedef struct status_sum {
  size_t idw, addrw, unreachable;
  int64_t total, initial;
  uint64_t config;
  int overflow, mixed;
} status_sum_t;

/* Add up the replies reps[nfile]. */
static void status_sum(const cl_endpoint_t *file, size_t nfile,
                       const cl_msg_t *reps, status_sum_t *t) {
  size_t i;
  memset(t, 0, sizeof *t);
  t->idw = 6;
  t->addrw = 7;
  for (i = 0; i < nfile; i++) {
    const cl_status_t *st = &reps[i].u.status;
    if (strlen(file[i].id) > t->idw)
      t->idw = strlen(file[i].id);
    if (strlen(file[i].addr) > t->addrw)
      t->addrw = strlen(file[i].addr);
    if (reps[i].type != CL_MSG_STATUS_R) {
      t->unreachable++;
      continue;
    }
    /* The numbers come from daemons: a sum that does not fit is said, not
     * wrapped. */
    t->overflow |= __builtin_add_overflow(t->total, st->tokens, &t->total);
    t->overflow |= __builtin_add_overflow(t->initial, st->initial_tokens,
                                          &t->initial);
    if (st->configured) {
      if (t->config != 0 && st->config_id != t->config)
        t->mixed = 1;
      t->config = st->config_id;
    }
  }
}

/* A server's channels as JSON arrays: out (outbound) and in (inbound). */
static void json_channels(json_t *sv, const cl_status_t *st) {
  json_t *outs = json_array(), *ins = json_array();
  size_t j;
  for (j = 0; j < st->nout; j++) {
    json_t *c = json_object();
    json_object_set_new(c, "peer", json_string(st->out[j].peer));
    json_object_set_new(c, "sent", json_integer((json_int_t)st->out[j].sent));
    json_object_set_new(c, "connected", json_boolean(st->out[j].connected));
    json_object_set_new(c, "queued_bytes",
                        json_integer((json_int_t)st->out[j].queued_bytes));
    json_array_append_new(outs, c);
  }
  for (j = 0; j < st->nin; j++) {
    json_t *c = json_object();
    json_object_set_new(c, "peer", json_string(st->in[j].peer));
    json_object_set_new(c, "received",
                        json_integer((json_int_t)st->in[j].received));
    json_object_set_new(c, "connected", json_boolean(st->in[j].connected));
    json_object_set_new(c, "held", json_integer((json_int_t)st->in[j].held));
    json_array_append_new(ins, c);
  }
  json_object_set_new(sv, "outbound", outs);
  json_object_set_new(sv, "inbound", ins);
}

/* Server i (endpoint ep, STATUS reply rep) as a JSON object. */
static json_t *json_server(const cl_daemons_t *s, size_t i,
                           const cl_endpoint_t *ep, const cl_msg_t *rep) {
  json_t *sv = json_endpoint(ep);
  const cl_status_t *st = &rep->u.status;
  json_object_set_new(sv, "reachable",
                      json_boolean(rep->type == CL_MSG_STATUS_R));
  if (rep->type != CL_MSG_STATUS_R) {
    json_object_set_new(sv, "error", cl_cli_json_text(no_status(s, i, rep)));
    return sv;
  }
  json_object_set_new(sv, "tokens", json_integer(st->tokens));
  json_object_set_new(sv, "initial_tokens", json_integer(st->initial_tokens));
  json_object_set_new(sv, "configured", json_boolean(st->configured));
  json_object_set_new(sv, "lockstep", json_boolean(st->lockstep));
  json_channels(sv, st);
  json_object_set_new(sv, "epoch", json_integer((json_int_t)st->epoch));
  json_object_set_new(sv, "frozen", json_boolean(st->frozen));
  json_object_set_new(sv, "paused", json_boolean(st->paused));
  json_object_set_new(sv, "discarded",
                      json_integer((json_int_t)st->discarded));
  json_object_set_new(sv, "in_progress", json_ids(st->active, st->nactive));
  json_object_set_new(sv, "kept", json_ids(st->done, st->ndone));
  return sv;
}

/* status --json. */
static void status_json(const cl_daemons_t *s, const cl_endpoint_t *file,
                        size_t nfile, const cl_msg_t *reps,
                        const status_sum_t *t) {
  json_t *o = json_object(), *arr = json_array();
  size_t i;
  for (i = 0; i < nfile; i++)
    json_array_append_new(arr, json_server(s, i, &file[i], &reps[i]));
  json_object_set_new(o, "servers", arr);
  json_object_set_new(o, "tokens",
                      t->overflow ? json_null() : json_integer(t->total));
  json_object_set_new(o, "initial_tokens",
                      t->overflow ? json_null() : json_integer(t->initial));
  json_object_set_new(o, "in_flight",
                      t->overflow || t->unreachable
                          ? json_null()
                          : json_integer(t->initial - t->total));
  json_object_set_new(o, "unreachable",
                      json_integer((json_int_t)t->unreachable));
  json_object_set_new(o, "mixed_topologies", json_boolean(t->mixed));
  cl_json_print(o);
}

/* Ranges shown on one line of snapshot ids in status; the rest is
 * counted, so a server with thousands kept still takes one short line. */
#define STATUS_ID_RANGES 8

/* A server's mode as status shows it. */
static const char *status_mode(const cl_status_t *st) {
  return !st->configured ? "unconfig"
         : st->paused    ? "paused"
         : st->frozen    ? "frozen"
         : st->lockstep  ? "lockstep"
                         : "free";
}

/* "  N WHAT: ranges" for a non-empty id list (WHAT: kept, in progress). */
static void status_ids(const char *what, const uint64_t *ids, uint32_t n) {
  char buf[64 + 44 * STATUS_ID_RANGES];
  if (n == 0)
    return;
  cl_output_id_ranges(ids, n, STATUS_ID_RANGES, buf, sizeof buf);
  printf("  %" PRIu32 " %s: %s\n", n, what, buf);
}

/* "connected", "N of M channels down", or "no channels". */
static void status_channels(const cl_status_t *st, char *buf, size_t size) {
  uint32_t j, down = 0, all = st->nout + st->nin;
  for (j = 0; j < st->nout; j++)
    down += !st->out[j].connected;
  for (j = 0; j < st->nin; j++)
    down += !st->in[j].connected;
  if (all == 0)
    snprintf(buf, size, "no channels");
  else if (down == 0)
    snprintf(buf, size, "connected");
  else
    snprintf(buf, size, "%" PRIu32 " of %" PRIu32 " channels down", down, all);
}

/* Server i as its one line of status --brief. */
static void status_brief_server(const cl_daemons_t *s, size_t i,
                                const cl_endpoint_t *ep, const cl_msg_t *rep,
                                const status_sum_t *t) {
  const cl_status_t *st = &rep->u.status;
  int idw = (int)t->idw, addrw = (int)t->addrw;
  char chans[64];
  if (rep->type != CL_MSG_STATUS_R) {
    printf("%-*s  %-*s  unreachable: %s\n", idw, ep->id, addrw, ep->addr,
           no_status(s, i, rep));
    return;
  }
  status_channels(st, chans, sizeof chans);
  printf("%-*s  %-*s  %6" PRId64 " tokens  %-8s  %3" PRIu32
         " in progress  %3" PRIu32 " kept  %s\n", idw, ep->id, addrw,
         ep->addr, st->tokens, status_mode(st), st->nactive, st->ndone,
         chans);
}

/* Server i's lines of the status table. */
static void status_server(const cl_daemons_t *s, size_t i,
                          const cl_endpoint_t *ep, const cl_msg_t *rep,
                          const status_sum_t *t) {
  const cl_status_t *st = &rep->u.status;
  int idw = (int)t->idw, addrw = (int)t->addrw;
  size_t j;
  if (rep->type != CL_MSG_STATUS_R) {
    printf("%-*s  %-*s  unreachable: %s\n", idw, ep->id, addrw, ep->addr,
           no_status(s, i, rep));
    return;
  }
  printf("%-*s  %-*s  %10" PRId64 "  %-9s  %8" PRIu32 "  %5" PRIu32 "\n",
         idw, ep->id, addrw, ep->addr, st->tokens, status_mode(st),
         st->nactive, st->ndone);
  for (j = 0; j < st->nout; j++)
    printf("%*s-> %-*s  sent %8" PRIu64 "  %-12s  queued %" PRIu64 " B\n", 2,
           "", idw, st->out[j].peer, st->out[j].sent,
           st->out[j].connected ? "connected" : "DISCONNECTED",
           st->out[j].queued_bytes);
  for (j = 0; j < st->nin; j++)
    printf("%*s<- %-*s  recv %8" PRIu64 "  %-12s  held %" PRIu64 "\n", 2, "",
           idw, st->in[j].peer, st->in[j].received,
           st->in[j].connected ? "connected" : "DISCONNECTED", st->in[j].held);
  status_ids("in progress", st->active, st->nactive);
  status_ids("kept", st->done, st->ndone);
  if (st->epoch > 0)
    printf("  restore epoch %" PRIu64 " (snapshot %" PRIu64 "), %" PRIu64
           " connection%s of an older epoch refused\n", st->epoch,
           st->restored_id, st->discarded, st->discarded == 1 ? "" : "s");
}

/* The status table's last lines: mixed topologies, then the total. */
static void status_total(const cl_endpoint_t *file, size_t nfile,
                         const cl_msg_t *reps, const status_sum_t *t) {
  size_t i;
  if (t->mixed) {
    printf("warning: the servers were configured from different "
           "topologies:");
    for (i = 0; i < nfile; i++)
      if (reps[i].type == CL_MSG_STATUS_R && reps[i].u.status.configured)
        printf(" %s (config %016" PRIx64 ")", file[i].id,
               reps[i].u.status.config_id);
    printf("; their channels refuse each other: configure them again\n");
  }
  if (t->overflow)
    printf("total: unknown: the token counts the servers report do not "
           "add up within 64 bits (a server reports wrong numbers)\n");
  else if (t->unreachable)
    printf("total: %" PRId64 " tokens on the %zu reachable servers of %"
           PRId64 " configured on them (in flight unknown: %zu server%s "
           "unreachable)\n", t->total, nfile - t->unreachable, t->initial,
           t->unreachable, t->unreachable == 1 ? "" : "s");
  else
    printf("total: %" PRId64 " tokens on servers of %" PRId64
           " configured (%" PRId64 " in flight)\n",
           t->total, t->initial, t->initial - t->total);
}

/* `status --snap`: a frozen (restored, paused) cluster's state in the
 * reference .snap format: every server's tokens and the messages waiting
 * on its channels, from PEEK. */
static int status_snap(cargs_t *a, const cl_endpoint_t *file, size_t nfile) {
  cl_daemons_t s;
  cl_msg_t req = {.type = CL_MSG_PEEK}, *reps = NULL;
  cl_local_state_t *states = NULL;
  cl_snap_t *snap = NULL;
  size_t i, bad = 0;
  int status = CL_EXIT_FAIL;
  if (session_open(&s, file, nfile, a->timeout_ms, 1) == 0 &&
      (reps = ask_all(&s, &req, a->timeout_ms, 1)) != NULL) {
    states = cl_xcalloc(nfile, sizeof *states);
    for (i = 0; i < nfile; i++) {
      if (reps[i].type == CL_MSG_STATE) {
        states[i] = reps[i].u.state;
        continue;
      }
      bad++;
      reply_failed(file[i].id, "PEEK", &reps[i]);
    }
    if (bad == 0 &&
        cl_verify_global_snap(states[0].snapshot_id, states, nfile, &snap) ==
            0) {
      cl_verdict_t v;
      cl_verify(NULL, NULL, states, nfile, &v);
      if (a->json)
        cl_json_print(cl_json_checked(states[0].snapshot_id, snap, &v,
                                      states, nfile));
      else
        cl_snap_write(snap, stdout);
      cl_snap_free(snap);
      status = CL_EXIT_OK;
    }
  }
  free(states);
  cl_cluster_free_replies(s.cluster, reps);
  cl_daemons_close(&s, 0);
  return status;
}

/* `status`: one STATUS per server, as a table or JSON. */
static int cmd_status(cargs_t *a, const cl_endpoint_t *file, size_t nfile) {
  cl_daemons_t s;
  cl_msg_t req = {.type = CL_MSG_STATUS}, *reps = NULL;
  status_sum_t t;
  size_t i;
  int status = CL_EXIT_FAIL;
  if (session_open(&s, file, nfile, a->timeout_ms, 0) == 0 &&
      (reps = ask_all(&s, &req, a->timeout_ms, 0)) != NULL) {
    status_sum(file, nfile, reps, &t);
    if (a->json) {
      status_json(&s, file, nfile, reps, &t);
    } else if (a->brief) {
      for (i = 0; i < nfile; i++)
        status_brief_server(&s, i, &file[i], &reps[i], &t);
      status_total(file, nfile, reps, &t);
    } else {
      printf("%-*s  %-*s  %10s  %-9s  %8s  %5s\n", (int)t.idw, "SERVER",
             (int)t.addrw, "ADDRESS", "TOKENS", "MODE", "ACTIVE", "KEPT");
      for (i = 0; i < nfile; i++)
        status_server(&s, i, &file[i], &reps[i], &t);
      status_total(file, nfile, reps, &t);
    }
    status = t.unreachable || t.overflow || t.mixed ? CL_EXIT_FAIL
                                                    : CL_EXIT_OK;
  }
  cl_cluster_free_replies(s.cluster, reps);
  cl_daemons_close(&s, 0);
  return status;
}

/* shutdown --json: server i of the cluster file (endpoint ep, reply rep):
 * whether it is shutting down, and why not. */
static json_t *shutdown_json(const cl_daemons_t *s, size_t i,
                             const cl_endpoint_t *ep, const cl_msg_t *rep) {
  json_t *o = json_endpoint(ep);
  json_object_set_new(o, "ok", json_boolean(rep->type == CL_MSG_OK));
  if (rep->type != CL_MSG_OK)
    json_object_set_new(o, "error", cl_cli_json_text(no_status(s, i, rep)));
  return o;
}

/* `shutdown`: SHUTDOWN to every reachable server. */
static int cmd_shutdown(cargs_t *a, const cl_endpoint_t *file, size_t nfile) {
  cl_daemons_t s;
  cl_msg_t req = {.type = CL_MSG_SHUTDOWN}, *reps = NULL;
  json_t *arr = json_array();
  size_t i, bad = 0;
  int status = CL_EXIT_FAIL;
  if (session_open(&s, file, nfile, a->timeout_ms, 0) == 0) {
    cl_cluster_set_notices(s.cluster, 0);
    reps = ask_all(&s, &req, a->timeout_ms, 0);
  }
  for (i = 0; reps != NULL && i < nfile; i++) {
    bad += reps[i].type != CL_MSG_OK;
    if (a->json)
      json_array_append_new(arr, shutdown_json(&s, i, &file[i], &reps[i]));
    else if (reps[i].type == CL_MSG_OK)
      printf("%s: shutting down\n", file[i].id);
    else if (reps[i].type == CL_MSG_ERROR)
      printf("%s: refused: %s\n", file[i].id, reps[i].u.error.text);
    else
      printf("%s: %s\n", file[i].id, no_status(&s, i, &reps[i]));
  }
  if (reps != NULL && a->json)
    cl_json_print(json_pack("{s:O}", "servers", arr));
  json_decref(arr);
  if (reps != NULL)
    status = bad ? CL_EXIT_FAIL : CL_EXIT_OK;
  cl_cluster_free_replies(s.cluster, reps);
  cl_daemons_close(&s, 0);
  return status;
}

/* The options of cluster command cmd (all take --timeout and --cluster)
 * into opts (room for 8), and how many operands it wants. */
static int cluster_opts(const char *cmd, cargs_t *a, cl_opt_t *opts) {
  int no = 0, want = 0;
  opts[no++] = (cl_opt_t){"timeout", 0, 1, &a->timeout, NULL};
  opts[no++] = (cl_opt_t){"cluster", 0, 1, &a->cluster, NULL};
  if (strcmp(cmd, "configure") == 0) {
    opts[no++] = (cl_opt_t){"jitter-ms", 0, 1, &a->jitter, NULL};
    opts[no++] = (cl_opt_t){"seed", 0, 1, &a->seed, NULL};
    opts[no++] = (cl_opt_t){"lockstep", 0, 0, NULL, &a->lockstep};
    want = 1;
  } else if (strcmp(cmd, "send") == 0) {
    want = 3;
  } else if (strcmp(cmd, "snapshot") == 0 || strcmp(cmd, "collect") == 0) {
    if (strcmp(cmd, "snapshot") == 0) {
      opts[no++] = (cl_opt_t){"no-wait", 0, 0, NULL, &a->no_wait};
      opts[no++] = (cl_opt_t){"store", 0, 1, &a->store, NULL};
      opts[no++] = (cl_opt_t){"keep", 0, 1, &a->keep_s, NULL};
    }
    opts[no++] = (cl_opt_t){"snap-dir", 0, 1, &a->snap_dir, NULL};
    want = 1;
  } else if (strcmp(cmd, "status") == 0) {
    opts[no++] = (cl_opt_t){"brief", 0, 0, NULL, &a->brief};
    opts[no++] = (cl_opt_t){"snap", 0, 0, NULL, &a->snap};
  }
  opts[no] = (cl_opt_t){NULL, 0, 0, NULL, NULL};
  return want;
}

/* What each cluster command needs as operands, for its usage error. */
static const char *operands(const char *cmd) {
  if (strcmp(cmd, "configure") == 0)
    return "needs the TOPOLOGY file";
  if (strcmp(cmd, "send") == 0)
    return "needs SRC, DEST and N";
  if (strcmp(cmd, "snapshot") == 0)
    return "needs the server ID to start it at";
  return "needs the SNAPSHOT_ID";
}

/* Parse a cluster command's options and run it. Returns the exit status. */
int cl_cmd_cluster(int argc, char **argv, const char *cluster_file) {
  const char *cmd = argv[0];
  cargs_t a;
  const char *pos[3];
  int npos, want, status;
  cl_endpoint_t *file = NULL;
  size_t nfile = 0;
  cl_opt_t opts[8];
  memset(&a, 0, sizeof a);
  a.cluster = cluster_file;
  want = cluster_opts(cmd, &a, opts);
  npos = cl_cli_parse(argc, argv, opts, pos, want);
  if (npos < 0)
    return CL_EXIT_USAGE;
  if (cl_cli.help)
    return cl_cli_help(cmd);
  if (npos != want)
    return cl_cli_usage("%s", operands(cmd));
  a.json = cl_cli.json;
  a.quiet = cl_cli.quiet;
  a.timeout_ms = 30000;
  if (cl_cli_duration("--timeout", a.timeout, 1, 86400000, &a.timeout_ms) ||
      cl_cli_u64("--keep", a.keep_s, 1, UINT64_MAX, &a.keep))
    return CL_EXIT_USAGE;
  if ((a.cluster = cl_cli_cluster(a.cluster)) == NULL)
    return CL_EXIT_USAGE;
  if (a.snap_dir != NULL && cl_output_dir("--snap-dir", a.snap_dir) < 0)
    return CL_EXIT_USAGE;
  if (cl_daemons_file_load(a.cluster, &file, &nfile) != 0)
    return CL_EXIT_USAGE;
  if (strcmp(cmd, "configure") == 0)
    status = cmd_configure(&a, pos, file, nfile, a.cluster);
  else if (strcmp(cmd, "send") == 0)
    status = cmd_send(&a, pos, file, nfile);
  else if (strcmp(cmd, "snapshot") == 0)
    status = cmd_snapshot(&a, pos, file, nfile);
  else if (strcmp(cmd, "collect") == 0)
    status = cmd_collect(&a, pos, file, nfile);
  else if (strcmp(cmd, "status") == 0 && a.snap)
    status = status_snap(&a, file, nfile);
  else if (strcmp(cmd, "status") == 0)
    status = cmd_status(&a, file, nfile);
  else
    status = cmd_shutdown(&a, file, nfile);
  free(file);
  return status;
}
