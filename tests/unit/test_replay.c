/* Unit tests for coordinator/check/replay.c over the in-process backend:
 * the seven reference cases replayed in lockstep with the reference's delay
 * stream must give exactly the expected snapshots; plus the failure paths
 * (refused sends, waiting for tokens only while some are on their way, a
 * snapshot that cannot complete, a delay file that runs out). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "error.h"
#include "replay.h"
#include "sim.h"

static const char *cdir;

typedef struct ref_case {
  const char *top, *events, *snap; /* snap: base name; NULL-terminated */
  size_t nsnaps;                   /* 1: base.snap; more: base{k}.snap */
} ref_case_t;

/* The table in ../shared/conformance/README.md. */
static const ref_case_t cases[] = {
    {"2nodes.top", "2nodes-simple.events", "2nodes-simple", 1},
    {"2nodes.top", "2nodes-message.events", "2nodes-message", 1},
    {"3nodes.top", "3nodes-simple.events", "3nodes-simple", 1},
    {"3nodes.top", "3nodes-bidirectional-messages.events",
     "3nodes-bidirectional-messages", 1},
    {"8nodes.top", "8nodes-sequential-snapshots.events",
     "8nodes-sequential-snapshots", 2},
    {"8nodes.top", "8nodes-concurrent-snapshots.events",
     "8nodes-concurrent-snapshots", 5},
    {"10nodes.top", "10nodes.events", "10nodes", 10},
};

static void path_of(char *buf, size_t size, const char *sub,
                    const char *name) {
  snprintf(buf, size, "%s/%s%s", cdir, sub, name);
}

/* A backend that forwards to the sim but counts what replay asks of it.
 * With arrive_from set, the next STATUS request is preceded by a DELIVER
 * of the message held from that server (not counted): a message that
 * arrives between a refusal and the question whether any are on their
 * way. */
typedef struct spy {
  cl_backend_t inner;
  uint64_t slept_ms, sleeps, calls, waits;
  const char *arrive_from;
  /* Not 0: the first DELIVER after this many servers completed snapshot 0
   * fails, as a call does when clsnap is interrupted; calls counts it. */
  size_t fail_when_done;
  uint64_t calls_at_fail;
} spy_t;

static int spy_call(void *ctx, size_t n, const uint32_t *servers,
                    const cl_msg_t *reqs, cl_msg_t *replies, char *err,
                    size_t errsize) {
  spy_t *s = ctx;
  s->calls++;
  if (s->fail_when_done > 0 && reqs[0].type == CL_MSG_DELIVER &&
      s->inner.completed(s->inner.ctx, 0) == s->fail_when_done) {
    s->calls_at_fail = s->calls;
    snprintf(err, errsize, "interrupted by Interrupt");
    return CL_EIO;
  }
  if (s->arrive_from != NULL && n == 1 && reqs[0].type == CL_MSG_STATUS) {
    cl_msg_t q, rep;
    memset(&q, 0, sizeof(q));
    q.type = CL_MSG_DELIVER;
    q.req = reqs[0].req;
    snprintf(q.u.deliver.src, CL_ID_SIZE, "%s", s->arrive_from);
    s->arrive_from = NULL;
    CHECK_EQ_INT(s->inner.call(s->inner.ctx, 1, servers, &q, &rep, err,
                               errsize), 0);
    CHECK_EQ_INT(rep.type, CL_MSG_OK);
    cl_msg_free(&rep);
  }
  return s->inner.call(s->inner.ctx, n, servers, reqs, replies, err, errsize);
}

static int spy_sleep(void *ctx, uint64_t ms, char *err, size_t errsize) {
  spy_t *s = ctx;
  s->sleeps++;
  s->slept_ms += ms;
  return s->inner.sleep_ms(s->inner.ctx, ms, err, errsize);
}

static size_t spy_completed(void *ctx, uint64_t id) {
  spy_t *s = ctx;
  return s->inner.completed(s->inner.ctx, id);
}

static int spy_wait(void *ctx, const uint64_t *ids, size_t n,
                    uint64_t timeout_ms, char *err, size_t errsize) {
  spy_t *s = ctx;
  s->waits++;
  return s->inner.wait_complete(s->inner.ctx, ids, n, timeout_ms, err,
                                errsize);
}

static int spy_reported(void *ctx, uint64_t id, size_t server) {
  spy_t *s = ctx;
  return s->inner.reported(s->inner.ctx, id, server);
}

static int spy_take(void *ctx, uint64_t id, size_t server, cl_msg_t *out) {
  spy_t *s = ctx;
  return s->inner.take_state(s->inner.ctx, id, server, out);
}

static void spy_forget(void *ctx, uint64_t id) {
  spy_t *s = ctx;
  s->inner.forget(s->inner.ctx, id);
}

static cl_backend_t spy_backend(spy_t *s, cl_sim_t *sim) {
  cl_backend_t b = {.ctx = s,
                    .call = spy_call,
                    .sleep_ms = spy_sleep,
                    .completed = spy_completed,
                    .reported = spy_reported,
                    .take_state = spy_take,
                    .forget = spy_forget,
                    .wait_complete = spy_wait};
  memset(s, 0, sizeof(*s));
  s->inner = cl_sim_backend(sim);
  return b;
}

static cl_delays_t *go_delays(void) {
  char path[512];
  cl_delays_t *d = NULL;
  cl_diag_t diag;
  snprintf(path, sizeof(path), "%s/go-delays.txt", cdir);
  CHECK_EQ_INT(cl_delays_load(path, &d, &diag), 0);
  return d;
}

/* The reference case's topology and events (cos418/TOP, cos418/EVENTS).
 * Returns 0, or -1 after a failed check with nothing left to free. */
static int load_case(const char *top, const char *events, cl_topology_t **t,
                     cl_script_t **s) {
  char path[512];
  cl_diag_t diag;
  *t = NULL;
  *s = NULL;
  path_of(path, sizeof(path), "cos418/", top);
  CHECK_EQ_INT(cl_topology_load(path, t, &diag), 0);
  path_of(path, sizeof(path), "cos418/", events);
  if (*t == NULL || cl_script_load(path, *t, s, &diag) < 0) {
    CHECK(0);
    cl_topology_free(*t);
    *t = NULL;
    return -1;
  }
  return 0;
}

/* Delays read from a file holding text (as --delays reads them), or NULL
 * after a failed check. */
static cl_delays_t *delays_text(const char *text) {
  char path[] = "/tmp/clsnap-test-replay-XXXXXX";
  cl_delays_t *d = NULL;
  cl_diag_t diag;
  size_t len = strlen(text);
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0)
    return NULL;
  CHECK_EQ_INT(write(fd, text, len), (ssize_t)len);
  close(fd);
  CHECK_EQ_INT(cl_delays_load(path, &d, &diag), 0);
  unlink(path);
  return d;
}

/* One lockstep replay over in-process servers: fx_start, fx_run, then
 * fx_free. */
typedef struct fx {
  cl_topology_t *t;
  cl_script_t *s;
  cl_delays_t *d;
  cl_sim_t *sim;
  cl_backend_t be;
  cl_replay_opts_t opts;
  cl_replay_result_t r;
  char err[256];
} fx_t;

/* Frees what x holds (each part may be missing). */
static void fx_free(fx_t *x) {
  cl_replay_result_free(&x->r);
  cl_sim_free(x->sim);
  cl_script_free(x->s);
  cl_topology_free(x->t);
  cl_delays_free(x->d);
  memset(x, 0, sizeof(*x));
}

/* Take t, s and d (any NULL: a load failed, already checked) and set up
 * the servers. Returns 0, or -1 after freeing them. */
static int fx_start(fx_t *x, cl_topology_t *t, cl_script_t *s,
                    cl_delays_t *d) {
  memset(x, 0, sizeof(*x));
  x->t = t;
  x->s = s;
  x->d = d;
  if (t == NULL || s == NULL || d == NULL ||
      (x->sim = cl_sim_new(t)) == NULL) {
    CHECK(x->sim != NULL);
    fx_free(x);
    return -1;
  }
  x->be = cl_sim_backend(x->sim);
  x->opts.lockstep = 1;
  x->opts.delays = d;
  return 0;
}

/* Replay; returns cl_replay_run's code (x->r and x->err hold the rest). */
static int fx_run(fx_t *x) {
  return cl_replay_run(x->t, x->s, &x->be, &x->opts, &x->r, x->err,
                       sizeof(x->err));
}

/* Replays one reference case and compares every snapshot. */
static void run_case(const ref_case_t *c) {
  char path[512], why[256], line[512];
  cl_topology_t *topo = NULL;
  cl_script_t *script = NULL;
  cl_delays_t *delays = go_delays();
  cl_sim_t *sim = NULL;
  cl_backend_t be;
  cl_replay_opts_t opts;
  cl_replay_result_t r;
  cl_diag_t diag;
  char err[512] = "";
  int rc;

  path_of(path, sizeof(path), "cos418/", c->top);
  CHECK_EQ_INT(cl_topology_load(path, &topo, &diag), 0);
  path_of(path, sizeof(path), "cos418/", c->events);
  if (topo != NULL)
    CHECK_EQ_INT(cl_script_load(path, topo, &script, &diag), 0);
  if (topo == NULL || script == NULL || delays == NULL) {
    fprintf(stderr, "%s: cannot load inputs\n", c->events);
    goto out;
  }
  CHECK_EQ_INT(script->nsnapshots, c->nsnaps);
  sim = cl_sim_new(topo);
  CHECK(sim != NULL);
  if (sim == NULL)
    goto out;
  be = cl_sim_backend(sim);
  memset(&opts, 0, sizeof(opts));
  opts.lockstep = 1;
  opts.delays = delays;
  opts.timeout_ms = 1000;
  rc = cl_replay_run(topo, script, &be, &opts, &r, err, sizeof(err));
  if (rc != 0)
    fprintf(stderr, "%s: replay failed: %s\n", c->events, err);
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(r.nsnapshots, c->nsnaps);
  for (size_t k = 0; rc == 0 && k < r.nsnapshots; k++) {
    cl_snap_t *want = NULL;
    char name[128];
    if (c->nsnaps == 1)
      snprintf(name, sizeof(name), "%s.snap", c->snap);
    else
      snprintf(name, sizeof(name), "%s%zu.snap", c->snap, k);
    path_of(path, sizeof(path), "cos418/", name);
    CHECK_EQ_INT(cl_snap_load(path, &want, &diag), 0);
    CHECK_EQ_INT(r.ids[k], k);
    if (!cl_snap_equal(want, r.snaps[k], why, sizeof(why))) {
      fprintf(stderr, "%s: snapshot %zu differs from %s: %s\n", c->events, k,
              name, why);
      if (r.snaps[k] != NULL)
        cl_snap_write(r.snaps[k], stderr);
      CHECK(0);
    }
    cl_verify_line(k, &r.verdicts[k], line, sizeof(line));
    if (!r.verdicts[k].ok)
      fprintf(stderr, "%s: %s\n", c->events, line);
    CHECK(r.verdicts[k].ok);
    CHECK_EQ_INT(r.verdicts[k].expected_tokens, topo->total_tokens);
    cl_snap_free(want);
  }
  CHECK(r.delays_used > 0);
  CHECK(r.messages >= r.delays_used); /* every message drew one delay */
  CHECK_EQ_INT(r.messages, r.delays_used);
  cl_replay_result_free(&r);
out:
  cl_sim_free(sim);
  cl_script_free(script);
  cl_topology_free(topo);
  cl_delays_free(delays);
}

/* Parses in-memory topology and events; both must succeed. */
static int load_text(const char *top, const char *events, cl_topology_t **t,
                     cl_script_t **s) {
  cl_diag_t diag;
  *t = NULL;
  *s = NULL;
  if (cl_topology_parse("test.top", top, t, &diag) < 0 ||
      cl_script_parse("test.events", events, *t, s, &diag) < 0) {
    fprintf(stderr, "%s:%d: %s\n", diag.file, diag.line, diag.msg);
    CHECK(0);
    return -1;
  }
  return 0;
}

static const char *two_nodes = "2\nN1 1\nN2 0\nN1 N2\nN2 N1\n";

/* Worked by hand in test_schedule.c: with delays 3, 2, 3 the snapshot
 * completes at tick 7 after 3 messages. */
static void test_counts(void) {
  cl_topology_t *t;
  cl_script_t *s;
  cl_delays_t *d = go_delays();
  cl_sim_t *sim;
  cl_backend_t be;
  spy_t spy;
  cl_replay_opts_t opts = {0};
  cl_replay_result_t r;
  char err[256];
  if (load_text(two_nodes, "send N1 N2 1\nsnapshot N2\ntick\n", &t, &s) < 0)
    return;
  sim = cl_sim_new(t);
  be = spy_backend(&spy, sim);
  opts.lockstep = 1;
  opts.delays = d;
  CHECK_EQ_INT(cl_replay_run(t, s, &be, &opts, &r, err, sizeof(err)), 0);
  CHECK_EQ_INT(r.ticks, 7);
  CHECK_EQ_INT(r.messages, 3);
  CHECK_EQ_INT(r.delays_used, 3);
  CHECK_EQ_INT(r.nsnapshots, 1);
  CHECK(r.verdicts[0].ok);
  CHECK_EQ_INT(r.snaps[0]->nmsgs, 1);
  /* 2 events + deliveries at ticks 3, 4, 7 + one COLLECT call. */
  CHECK_EQ_INT(spy.calls, 6);
  CHECK_EQ_INT(spy.sleeps, 0);
  cl_replay_result_free(&r);
  cl_replay_result_free(&r); /* idempotent on a zeroed result */
  cl_sim_free(sim);
  cl_script_free(s);
  cl_topology_free(t);
  cl_delays_free(d);
}

static void test_refused_send(void) {
  cl_topology_t *t;
  cl_script_t *s;
  cl_delays_t *d = go_delays();
  cl_sim_t *sim;
  cl_backend_t be;
  spy_t spy;
  cl_replay_opts_t opts = {0};
  cl_replay_result_t r;
  char err[256];
  if (load_text(two_nodes, "tick\nsend N1 N2 5\n", &t, &s) < 0)
    return;

  /* Lockstep: refused at once. */
  sim = cl_sim_new(t);
  be = spy_backend(&spy, sim);
  opts.lockstep = 1;
  opts.delays = d;
  opts.tick_ms = 10;
  opts.timeout_ms = 50;
  opts.events_path = "dir/ex.events";
  CHECK_EQ_INT(cl_replay_run(t, s, &be, &opts, &r, err, sizeof(err)),
               CL_ENOTOKENS);
  CHECK_EQ_STR(err, "dir/ex.events:2: N1 has 1 tokens, cannot send 5 to N2");
  CHECK_EQ_INT(spy.sleeps, 0);
  cl_replay_result_free(&r);
  cl_sim_free(sim);

  /* Free-running, no token on its way to N1: refused at once too, after
   * one STATUS, instead of being retried until timeout_ms. */
  sim = cl_sim_new(t);
  be = spy_backend(&spy, sim);
  opts.lockstep = 0;
  opts.delays = NULL;
  CHECK_EQ_INT(cl_replay_run(t, s, &be, &opts, &r, err, sizeof(err)),
               CL_ENOTOKENS);
  CHECK_EQ_STR(err, "dir/ex.events:2: N1 refused to send 5 tokens to N2: "
                    "not enough tokens (N1 has 1, none on their way to it)");
  CHECK_EQ_INT(spy.sleeps, 1); /* the tick only */
  CHECK_EQ_INT(spy.slept_ms, 10);
  CHECK_EQ_INT(spy.calls, 2); /* SEND, STATUS */
  cl_replay_result_free(&r);
  cl_sim_free(sim);
  cl_script_free(s);
  cl_topology_free(t);

  /* Free-running, N2's 2 tokens on their way to N1 (the in-process servers
   * hold them until a DELIVER, which free-running replay never sends):
   * retried every tick_ms until timeout_ms. */
  if (load_text("2\nN1 1\nN2 2\nN1 N2\nN2 N1\n",
                "send N2 N1 2\nsend N1 N2 3\n", &t, &s) < 0) {
    cl_delays_free(d);
    return;
  }
  sim = cl_sim_new(t);
  be = spy_backend(&spy, sim);
  CHECK_EQ_INT(cl_replay_run(t, s, &be, &opts, &r, err, sizeof(err)),
               CL_ENOTOKENS);
  CHECK_EQ_STR(err, "dir/ex.events:2: N1 has 1 tokens, cannot send 3 to N2 "
                    "(waited 50 ms)");
  CHECK_EQ_INT(spy.sleeps, 5);
  CHECK_EQ_INT(spy.slept_ms, 50);
  CHECK_EQ_INT(spy.calls, 1 + 6 + 6); /* N2's SEND; 6 x (SEND, STATUS) */
  cl_replay_result_free(&r);
  cl_sim_free(sim);

  /* The tokens arrive between the refusal and the STATUS: none is on its
   * way any more, but N1 now holds enough, so the SEND is tried again
   * (and succeeds) rather than failed. */
  sim = cl_sim_new(t);
  be = spy_backend(&spy, sim);
  spy.arrive_from = "N2";
  CHECK_EQ_INT(cl_replay_run(t, s, &be, &opts, &r, err, sizeof(err)), 0);
  CHECK_EQ_INT(spy.sleeps, 1);
  CHECK_EQ_INT(spy.calls, 1 + 2 + 1); /* N2's SEND; SEND, STATUS; SEND */
  CHECK_EQ_INT(r.messages, 2);
  cl_replay_result_free(&r);
  cl_sim_free(sim);
  cl_script_free(s);
  cl_topology_free(t);
  cl_delays_free(d);
}

static void test_free_running(void) {
  cl_diag_t diag;
  cl_topology_t *t;
  cl_script_t *s;
  cl_sim_t *sim;
  cl_backend_t be;
  spy_t spy;
  cl_replay_opts_t opts = {0};
  cl_replay_result_t r;
  char err[256];
  if (load_text(two_nodes, "tick 3\nsend N1 N2 1\ntick\n", &t, &s) < 0)
    return;
  sim = cl_sim_new(t);
  be = spy_backend(&spy, sim);
  opts.tick_ms = 7;
  opts.timeout_ms = 100;
  CHECK_EQ_INT(cl_replay_run(t, s, &be, &opts, &r, err, sizeof(err)), 0);
  CHECK_EQ_INT(spy.slept_ms, 28);
  CHECK_EQ_INT(spy.waits, 0); /* no snapshots to wait for */
  CHECK_EQ_INT(r.messages, 1);
  CHECK_EQ_INT(r.nsnapshots, 0);
  cl_replay_result_free(&r);
  cl_sim_free(sim);
  cl_script_free(s);

  /* The in-process backend never delivers on its own: the wait fails and
   * says what is missing. */
  CHECK_EQ_INT(cl_script_parse("x.events", "snapshot N2\n", t, &s, &diag), 0);
  sim = cl_sim_new(t);
  be = spy_backend(&spy, sim);
  CHECK_EQ_INT(cl_replay_run(t, s, &be, &opts, &r, err, sizeof(err)),
               CL_ETIMEOUT);
  CHECK_EQ_INT(spy.waits, 1);
  CHECK(strncmp(err, "waiting for snapshots: ", 23) == 0);
  CHECK(strstr(err, "N1") != NULL);
  cl_replay_result_free(&r);
  cl_sim_free(sim);
  cl_script_free(s);
  cl_topology_free(t);
}

/* N3 only sends to N1: a snapshot started at N1 never reaches N3, and N1
 * waits for N3's marker forever. */
static void test_stuck(void) {
  cl_topology_t *t;
  cl_script_t *s;
  cl_delays_t *d = cl_delays_seeded(1, 4);
  cl_sim_t *sim;
  cl_backend_t be;
  cl_replay_opts_t opts = {0};
  cl_replay_result_t r;
  char err[256];
  if (load_text("3\nN1 1\nN2 0\nN3 0\nN1 N2\nN3 N1\n", "snapshot N1\n", &t,
                &s) < 0)
    return;
  sim = cl_sim_new(t);
  be = cl_sim_backend(sim);
  opts.lockstep = 1;
  opts.delays = d;
  CHECK_EQ_INT(cl_replay_run(t, s, &be, &opts, &r, err, sizeof(err)),
               CL_ETIMEOUT);
  CHECK_EQ_STR(err, "snapshot 0 cannot complete: N3 never recorded "
                    "(unreachable by markers?); N1 still waiting for "
                    "markers");
  cl_replay_result_free(&r);
  cl_sim_free(sim);
  cl_script_free(s);
  cl_topology_free(t);
  cl_delays_free(d);
}

static void test_delays_run_out(void) {
  cl_topology_t *t;
  cl_script_t *s;
  fx_t x;
  load_text(two_nodes, "send N1 N2 1\nsnapshot N2\ntick\n", &t, &s);
  if (fx_start(&x, t, s, delays_text("1\n")) < 0)
    return;
  CHECK_EQ_INT(fx_run(&x), CL_ENOENT);
  /* No events_path given: errors name the file "events". */
  CHECK_EQ_STR(x.err, "events:2: delay file ran out after 1 delays");
  fx_free(&x);
}

/* The project's own generator: same seed, same snapshots; all checks pass
 * on the biggest reference case; long ticks are cheap. */
static void test_seeded(void) {
  char why[256], err[256];
  cl_topology_t *t;
  cl_script_t *s;
  cl_replay_result_t r[2];
  if (load_case("10nodes.top", "10nodes.events", &t, &s) < 0)
    return;
  for (int i = 0; i < 2; i++) {
    cl_delays_t *d = cl_delays_seeded(12345, 9);
    cl_sim_t *sim = cl_sim_new(t);
    cl_backend_t be = cl_sim_backend(sim);
    cl_replay_opts_t opts = {0};
    opts.lockstep = 1;
    opts.delays = d;
    CHECK_EQ_INT(cl_replay_run(t, s, &be, &opts, &r[i], err, sizeof(err)), 0);
    for (size_t k = 0; k < r[i].nsnapshots; k++)
      CHECK(r[i].verdicts[k].ok);
    cl_sim_free(sim);
    cl_delays_free(d);
  }
  CHECK_EQ_INT(r[0].nsnapshots, 10);
  CHECK_EQ_INT(r[0].ticks, r[1].ticks);
  for (size_t k = 0; k < r[0].nsnapshots && k < r[1].nsnapshots; k++)
    CHECK(cl_snap_equal(r[0].snaps[k], r[1].snaps[k], why, sizeof(why)));
  cl_replay_result_free(&r[0]);
  cl_replay_result_free(&r[1]);
  cl_script_free(s);
  cl_topology_free(t);

  /* A billion ticks with nothing in flight take no time. */
  if (load_text(two_nodes, "tick 1000000000\nsnapshot N1\n", &t, &s) == 0) {
    cl_delays_t *d = cl_delays_seeded(1, 4);
    cl_sim_t *sim = cl_sim_new(t);
    cl_backend_t be = cl_sim_backend(sim);
    cl_replay_opts_t opts = {0};
    opts.lockstep = 1;
    opts.delays = d;
    CHECK_EQ_INT(cl_replay_run(t, s, &be, &opts, &r[0], err, sizeof(err)), 0);
    CHECK(r[0].ticks > 1000000000);
    CHECK(r[0].verdicts[0].ok);
    cl_replay_result_free(&r[0]);
    cl_sim_free(sim);
    cl_delays_free(d);
    cl_script_free(s);
    cl_topology_free(t);
  }
}

/* One tick's deliveries share a call, except that no call carries two
 * DELIVERs to the same server (a daemon could reorder those). */
static void test_batching(void) {
  static const char *tops[2] = {"3\nA 2\nB 2\nC 0\nA C\nB C\n",
                                "3\nA 2\nB 2\nC 0\nA B\nB C\n"};
  static const char *evs[2] = {"send A C 1\nsend B C 1\ntick\n",
                               "send A B 1\nsend B C 1\ntick\n"};
  static const uint64_t want_calls[2] = {2 + 2, 2 + 1};
  for (int i = 0; i < 2; i++) {
    cl_topology_t *t;
    cl_script_t *s;
    cl_delays_t *d = cl_delays_seeded(5, 0); /* every delay 0: due at 1 */
    cl_sim_t *sim;
    cl_backend_t be;
    spy_t spy;
    cl_replay_opts_t opts = {0};
    cl_replay_result_t r;
    char err[256];
    if (load_text(tops[i], evs[i], &t, &s) < 0) {
      cl_delays_free(d);
      return;
    }
    sim = cl_sim_new(t);
    be = spy_backend(&spy, sim);
    opts.lockstep = 1;
    opts.delays = d;
    CHECK_EQ_INT(cl_replay_run(t, s, &be, &opts, &r, err, sizeof(err)), 0);
    CHECK_EQ_INT(spy.calls, want_calls[i]);
    CHECK_EQ_INT(r.ticks, 1);
    CHECK_EQ_INT(r.messages, 2);
    cl_replay_result_free(&r);
    cl_sim_free(sim);
    cl_script_free(s);
    cl_topology_free(t);
    cl_delays_free(d);
  }
}

/* What the progress callback saw (ctx of count_progress). */
typedef struct seen {
  size_t calls, backwards;
  cl_replay_progress_t last;
} seen_t;

static void count_progress(void *ctx, const cl_replay_progress_t *p) {
  seen_t *s = ctx;
  if (s->calls > 0 && (p->events < s->last.events ||
                       p->checked < s->last.checked || p->tick < s->last.tick))
    s->backwards++;
  s->calls++;
  s->last = *p;
}

/* The progress callback: called on every event (and more, on lockstep
 * ticks), never going back, and last with everything done. */
static void test_progress(void) {
  cl_topology_t *t;
  cl_script_t *s;
  seen_t seen;
  fx_t x;
  load_case("10nodes.top", "10nodes.events", &t, &s);
  if (fx_start(&x, t, s, cl_delays_seeded(7, 4)) < 0)
    return;
  memset(&seen, 0, sizeof(seen));
  x.opts.progress = count_progress;
  x.opts.progress_ctx = &seen;
  CHECK_EQ_INT(fx_run(&x), 0);
  CHECK(seen.calls > s->nevents);
  CHECK_EQ_INT(seen.backwards, 0);
  CHECK_EQ_INT(seen.last.events, s->nevents);
  CHECK_EQ_INT(seen.last.nevents, s->nevents);
  CHECK_EQ_INT(seen.last.checked, 10);
  CHECK_EQ_INT(seen.last.nsnapshots, 10);
  CHECK_EQ_INT(seen.last.tick, x.r.ticks);
  CHECK_EQ_INT(seen.last.messages, x.r.messages);
  CHECK_EQ_INT(x.r.checked, 10);
  fx_free(&x);
}

/* A run that fails after a snapshot completed everywhere, before it was
 * collected: the states pushed already are checked without another call.
 * Delays 1, 9, 1: N2's marker reaches N1 at tick 2 and N1's reaches N2 at
 * tick 4 (snapshot 0 complete), N2's token reaches N1 at tick 11, and that
 * DELIVER fails. */
static void test_salvage(void) {
  cl_topology_t *t;
  cl_script_t *s;
  spy_t spy;
  fx_t x;
  load_text("2\nN1 0\nN2 1\nN1 N2\nN2 N1\n",
            "snapshot N2\nsend N2 N1 1\ntick 20\n", &t, &s);
  if (fx_start(&x, t, s, delays_text("1\n9\n1\n")) < 0)
    return;
  x.be = spy_backend(&spy, x.sim);
  spy.fail_when_done = 2;
  CHECK_EQ_INT(fx_run(&x), CL_EIO);
  /* The failure's message is kept, and nothing was asked after it. */
  CHECK_EQ_STR(x.err, "delivering: interrupted by Interrupt");
  CHECK(spy.calls_at_fail > 0);
  CHECK_EQ_INT(spy.calls, spy.calls_at_fail);
  CHECK_EQ_INT(x.r.started, 1);
  CHECK_EQ_INT(x.r.checked, 1);
  CHECK_EQ_INT(x.r.collected[0], 1);
  CHECK(x.r.verdicts[0].ok);
  CHECK_EQ_INT(x.r.verdicts[0].expected_tokens, 1);
  CHECK_EQ_INT(x.r.verdicts[0].server_tokens, 1); /* N2 recorded 1, N1 0 */
  CHECK(x.r.snaps[0] != NULL);
  fx_free(&x);
}

int main(void) {
  cdir = getenv("CONFORMANCE_DIR");
  if (cdir == NULL) {
    fprintf(stderr, "CONFORMANCE_DIR not set\n");
    return 1;
  }
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    run_case(&cases[i]);
  test_counts();
  test_refused_send();
  test_free_running();
  test_stuck();
  test_delays_run_out();
  test_seeded();
  test_batching();
  test_progress();
  test_salvage();
  return check_done("replay");
}
