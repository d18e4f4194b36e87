/* The protocol session with no sockets: requests and peer frames go in,
 * effects come out, and the test reads them. Covers configuration, CONNECT
 * and SEND parking, the id rule and its overflow, lockstep holds and
 * DELIVER parking, WATCH/LOCAL_STATE, COLLECT, the kept-state bound, every
 * refusal, and a failed allocation at every point of every request: the
 * reply is then an ERROR and the session's state is as before.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "check.h"
#include "error.h"
#include "session.h"

/* ---- a fake transport --------------------------------------------------- */

typedef struct env {
  size_t queued[4];   /* bytes "queued" per outbound channel */
  int fail_configure; /* env.configure refuses */
  size_t nout;
} env_t;

static int env_reserve(void *ctx, uint32_t chan, size_t frames) {
  (void)ctx;
  (void)chan;
  (void)frames;
  return 0;
}

static size_t env_queued(void *ctx, uint32_t chan) {
  return ((env_t *)ctx)->queued[chan];
}

static int env_configure(void *ctx, const cl_configure_t *cfg, size_t nout,
                         const char *const *out_ids) {
  env_t *e = ctx;
  (void)cfg;
  (void)out_ids;
  e->nout = nout;
  return e->fail_configure ? CL_EIO : 0;
}

/* One session under test: server B of a 3-ring-and-back (A, B, C), rank 1,
 * 10 tokens, outbound A and C, inbound A and C. */
typedef struct t {
  cl_session_t *s;
  env_t env;
  int tag1, tag2;
  cl_session_client_t *c1, *c2;
  cl_fx_list_t fx, logs;
  uint64_t req;
} t_t;

static cl_session_t *new_session(t_t *t, size_t max_kept) {
  cl_session_config_t sc;
  memset(&sc, 0, sizeof sc);
  sc.self = "B";
  sc.max_kept = max_kept;
  sc.write_cap = 1000;
  sc.log_level = CL_SLOG_DEBUG;
  sc.env.ctx = &t->env;
  sc.env.reserve = env_reserve;
  sc.env.queued = env_queued;
  sc.env.configure = env_configure;
  CHECK_EQ_INT(cl_session_new(&sc, &t->s), 0);
  t->c1 = cl_session_client_open(t->s, &t->tag1);
  t->c2 = cl_session_client_open(t->s, &t->tag2);
  CHECK(t->c1 != NULL && t->c2 != NULL);
  return t->s;
}

/* Take the effects made so far into t->fx (logs into t->logs). */
static void take(t_t *t) {
  cl_fx_list_clear(&t->fx);
  cl_fx_list_clear(&t->logs);
  cl_session_take(t->s, &t->fx, &t->logs);
}

/* A request from client c; its effects are taken. Returns its req. */
static uint64_t ask(t_t *t, cl_session_client_t *c, cl_msg_t *m) {
  m->req = ++t->req;
  cl_session_request(t->s, c, m);
  take(t);
  return m->req;
}

/* ask() with the n-th allocation of the request failing; returns 1 if the
 * hook made one fail (the effects are taken with the hook off). */
static int ask_failing(t_t *t, cl_session_client_t *c, cl_msg_t *m,
                       unsigned long n) {
  int failed;
  m->req = ++t->req;
  cl_alloc_fail_after(n);
  cl_session_request(t->s, c, m);
  failed = cl_alloc_failed();
  cl_alloc_fail_after(0);
  take(t);
  return failed;
}

/* The reply to req for tag among t->fx: its type (CL_MSG_ERROR for an
 * ERROR effect), or 0 if there is none; *code and text for errors; *out
 * the message (not owned). */
static int reply_of(const t_t *t, const void *tag, uint64_t req, int *code,
                    const char **text, const cl_msg_t **out) {
  size_t i;
  for (i = 0; i < t->fx.n; i++) {
    const cl_fx_t *f = &t->fx.v[i];
    if (f->client != tag)
      continue;
    if (f->kind == CL_FX_ERROR && f->a == req) {
      if (code)
        *code = f->code;
      if (text)
        *text = f->text;
      return CL_MSG_ERROR;
    }
    if (f->kind == CL_FX_MSG && f->msg->req == req &&
        f->msg->type != CL_MSG_LOCAL_STATE &&
        f->msg->type != CL_MSG_COMPLETE && f->msg->type != CL_MSG_NOTICE) {
      if (out)
        *out = f->msg;
      return f->msg->type;
    }
  }
  return 0;
}

/* How many effects of a kind (and, for MSG, of a message type) there are
 * for tag (NULL: any). */
static size_t count_fx(const t_t *t, int kind, int type, const void *tag) {
  size_t i, n = 0;
  for (i = 0; i < t->fx.n; i++) {
    const cl_fx_t *f = &t->fx.v[i];
    if (f->kind != kind || (tag != NULL && f->client != tag))
      continue;
    if (kind == CL_FX_MSG && type != 0 && f->msg->type != type)
      continue;
    n++;
  }
  return n;
}

/* 1 if some log line contains s. */
static int logged(const t_t *t, const char *s) {
  size_t i;
  for (i = 0; i < t->logs.n; i++)
    if (strstr(t->logs.v[i].text, s) != NULL)
      return 1;
  return 0;
}

static cl_msg_t configure_msg(int lockstep) {
  static cl_peer_addr_t outs[2] = {{"A", "127.0.0.1:1"}, {"C", "127.0.0.1:3"}};
  static char ins[2][CL_ID_SIZE] = {"A", "C"};
  cl_msg_t m;
  memset(&m, 0, sizeof m);
  m.type = CL_MSG_CONFIGURE;
  strcpy(m.u.configure.self, "B");
  m.u.configure.tokens = 10;
  m.u.configure.rank = 1;
  m.u.configure.nservers = 3;
  m.u.configure.lockstep = (uint8_t)lockstep;
  m.u.configure.nout = 2;
  m.u.configure.out = outs;
  m.u.configure.nin = 2;
  m.u.configure.in = ins;
  m.u.configure.config_id = 77;
  return m;
}

/* Outbound chan's receiver said WELCOME with no frames had: it is up. */
static void welcome(cl_session_t *s, uint32_t chan) {
  char why[256];
  CHECK_EQ_INT(cl_session_out_welcome(s, chan, 0, why, sizeof why), 0);
}

/* A configured, connected session (both ways), at rank `rank` of 3 (only
 * the id rule looks at the rank). */
static void ready_at(t_t *t, int lockstep, size_t max_kept, uint32_t rank) {
  cl_msg_t m = configure_msg(lockstep), h;
  uint32_t in;
  uint64_t rcv;
  char why[256];
  memset(t, 0, sizeof *t);
  new_session(t, max_kept);
  m.u.configure.rank = rank;
  CHECK_EQ_INT(reply_of(t, &t->tag1, ask(t, t->c1, &m), NULL, NULL, NULL),
               CL_MSG_OK);
  memset(&m, 0, sizeof m);
  m.type = CL_MSG_CONNECT;
  ask(t, t->c1, &m);
  welcome(t->s, 0);
  welcome(t->s, 1);
  take(t);
  memset(&h, 0, sizeof h);
  h.type = CL_MSG_HELLO;
  strcpy(h.u.hello.to, "B");
  h.u.hello.config_id = 77;
  strcpy(h.u.hello.from, "A");
  CHECK_EQ_INT(cl_session_hello(t->s, &h, &in, &rcv, why, sizeof why), 0);
  CHECK_EQ_INT(in, 0);
  strcpy(h.u.hello.from, "C");
  CHECK_EQ_INT(cl_session_hello(t->s, &h, &in, &rcv, why, sizeof why), 0);
  CHECK_EQ_INT(in, 1);
  take(t);
}

/* ready_at B's own rank, 1. */
static void ready(t_t *t, int lockstep, size_t max_kept) {
  ready_at(t, lockstep, max_kept, 1);
}

static void done(t_t *t) {
  cl_fx_list_free(&t->fx);
  cl_fx_list_free(&t->logs);
  cl_session_free(t->s);
}

static cl_msg_t send_msg(const char *dest, int64_t n) {
  cl_msg_t m;
  memset(&m, 0, sizeof m);
  m.type = CL_MSG_SEND;
  strcpy(m.u.send.dest, dest);
  m.u.send.n = n;
  return m;
}

static cl_msg_t simple(uint8_t type) {
  cl_msg_t m;
  memset(&m, 0, sizeof m);
  m.type = type;
  return m;
}

static cl_msg_t snapshot_msg(int has, uint64_t id) {
  cl_msg_t m = simple(CL_MSG_SNAPSHOT);
  m.u.snapshot.has_id = (uint8_t)has;
  m.u.snapshot.snapshot_id = id;
  return m;
}

/* A peer frame on inbound in; returns the session's verdict. */
static int peer(t_t *t, uint32_t in, int marker, uint64_t a, int64_t n) {
  cl_msg_t m;
  char why[256];
  int r;
  memset(&m, 0, sizeof m);
  m.type = marker ? CL_MSG_MARKER : CL_MSG_TOKEN;
  if (marker)
    m.u.marker.snapshot_id = a;
  else {
    m.u.token.seq = a;
    m.u.token.n = n;
  }
  r = cl_session_peer(t->s, in, &m, why, sizeof why);
  take(t);
  return r;
}

/* ---- tests -------------------------------------------------------------- */

static void test_configure(void) {
  t_t t;
  cl_msg_t m = configure_msg(0);
  const char *text = NULL;
  int code = 0;
  memset(&t, 0, sizeof t);
  new_session(&t, 0);
  /* Before CONFIGURE only CONFIGURE, STATUS, WATCH and SHUTDOWN. */
  {
    cl_msg_t q = send_msg("A", 1);
    CHECK_EQ_INT(reply_of(&t, &t.tag1, ask(&t, t.c1, &q), &code, &text, NULL),
                 CL_MSG_ERROR);
    CHECK_EQ_INT(code, CL_ESTATE);
    CHECK_EQ_STR(text, "B is not configured yet (SEND)");
  }
  strcpy(m.u.configure.self, "X");
  CHECK_EQ_INT(reply_of(&t, &t.tag1, ask(&t, t.c1, &m), &code, &text, NULL),
               CL_MSG_ERROR);
  CHECK_EQ_STR(text, "CONFIGURE is for server X but this is B");
  m = configure_msg(0);
  m.u.configure.rank = 3;
  ask(&t, t.c1, &m);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, t.req, &code, &text, NULL),
               CL_MSG_ERROR);
  CHECK_EQ_STR(text, "rank 3 out of range for 3 servers");
  m = configure_msg(0);
  t.env.fail_configure = 1;
  ask(&t, t.c1, &m);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, t.req, &code, NULL, NULL), CL_MSG_ERROR);
  CHECK_EQ_INT(code, CL_EIO);
  CHECK(!cl_session_configured(t.s));
  t.env.fail_configure = 0;
  ask(&t, t.c1, &m);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, t.req, NULL, NULL, NULL), CL_MSG_OK);
  CHECK(cl_session_configured(t.s));
  CHECK_EQ_INT(t.env.nout, 2);
  ask(&t, t.c1, &m);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, t.req, &code, &text, NULL),
               CL_MSG_ERROR);
  CHECK_EQ_STR(text, "B is already configured");
  done(&t);
}

/* CONNECT waits for every channel; a failed one answers with its reason. */
static void test_connect(void) {
  t_t t;
  cl_msg_t m = configure_msg(0), *c;
  uint64_t req;
  const char *text = NULL;
  memset(&t, 0, sizeof t);
  new_session(&t, 0);
  ask(&t, t.c1, &m);
  c = &m;
  *c = simple(CL_MSG_CONNECT);
  req = ask(&t, t.c1, c);
  CHECK_EQ_INT(count_fx(&t, CL_FX_CONNECT, 0, NULL), 2);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, req, NULL, NULL, NULL), 0); /* parked */
  welcome(t.s, 0);
  take(&t);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, req, NULL, NULL, NULL), 0);
  cl_session_out_state(t.s, 1, CL_CHAN_FAILED, "connection refused");
  take(&t);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, req, NULL, &text, NULL), CL_MSG_ERROR);
  CHECK_EQ_STR(text, "cannot connect B to C at 127.0.0.1:3: connection "
                     "refused");
  CHECK(logged(&t, "cannot connect channel B->C to 127.0.0.1:3"));
  /* A second CONNECT retries only the failed channel. */
  req = ask(&t, t.c1, c);
  CHECK_EQ_INT(count_fx(&t, CL_FX_CONNECT, 0, NULL), 1);
  CHECK_EQ_INT(t.fx.v[0].chan, 1);
  welcome(t.s, 1);
  take(&t);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, req, NULL, NULL, NULL), CL_MSG_OK);
  /* All up: answered at once. */
  req = ask(&t, t.c1, c);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, req, NULL, NULL, NULL), CL_MSG_OK);
  done(&t);
}

/* SEND: refusals change nothing; a channel still connecting holds the
 * SEND until it is up (or refuses it if it fails). */
static void test_send(void) {
  t_t t;
  cl_msg_t m = configure_msg(0);
  const cl_msg_t *ok = NULL;
  const char *text = NULL;
  int code = 0;
  uint64_t req;
  memset(&t, 0, sizeof t);
  new_session(&t, 0);
  ask(&t, t.c1, &m);
  m = send_msg("A", 1);
  ask(&t, t.c1, &m);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, t.req, &code, &text, NULL),
               CL_MSG_ERROR);
  CHECK_EQ_INT(code, CL_EIO);
  CHECK_EQ_STR(text, "channel B->A is not connected (the cluster was "
                     "configured but never connected: CONNECT)");
  m = simple(CL_MSG_CONNECT);
  ask(&t, t.c1, &m);
  m = send_msg("A", 3);
  req = ask(&t, t.c2, &m);
  CHECK_EQ_INT(reply_of(&t, &t.tag2, req, NULL, NULL, NULL), 0); /* waits */
  CHECK_EQ_INT(cl_session_tokens(t.s), 10);
  m = send_msg("C", 4);
  ask(&t, t.c2, &m); /* waits on C */
  welcome(t.s, 0);
  take(&t);
  CHECK_EQ_INT(reply_of(&t, &t.tag2, req, NULL, NULL, &ok), CL_MSG_OK);
  CHECK_EQ_INT(ok->u.ok.nsent, 1);
  CHECK_EQ_STR(ok->u.ok.sent[0].dest, "A");
  CHECK_EQ_INT(ok->u.ok.sent[0].seq, 1);
  CHECK_EQ_INT(count_fx(&t, CL_FX_FRAME, 0, NULL), 1);
  CHECK_EQ_INT(cl_session_tokens(t.s), 7);
  cl_session_out_state(t.s, 1, CL_CHAN_FAILED, "no route");
  take(&t);
  CHECK_EQ_INT(reply_of(&t, &t.tag2, req + 1, &code, &text, NULL),
               CL_MSG_ERROR);
  CHECK_EQ_STR(text, "channel B->C is not connected: no route");
  CHECK_EQ_INT(cl_session_tokens(t.s), 7); /* the 4 stayed */
  /* The refusals on a connected channel, each changing nothing. */
  m = send_msg("Z", 1);
  ask(&t, t.c1, &m);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, t.req, &code, &text, NULL),
               CL_MSG_ERROR);
  CHECK_EQ_INT(code, CL_ENOPEER);
  CHECK_EQ_STR(text, "B has no channel to Z");
  m = send_msg("A", 0);
  ask(&t, t.c1, &m);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, t.req, &code, NULL, NULL), CL_MSG_ERROR);
  CHECK_EQ_INT(code, CL_EINVAL);
  m = send_msg("A", 8);
  ask(&t, t.c1, &m);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, t.req, &code, &text, NULL),
               CL_MSG_ERROR);
  CHECK_EQ_STR(text, "B has 7 tokens, cannot send 8 to A");
  t.env.queued[0] = 990;
  m = send_msg("A", 1);
  ask(&t, t.c1, &m);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, t.req, &code, &text, NULL),
               CL_MSG_ERROR);
  CHECK_EQ_INT(code, CL_EFULL);
  CHECK_EQ_STR(text, "channel B->A has 990 bytes queued (write cap 1000)");
  t.env.queued[0] = 0;
  cl_session_out_state(t.s, 0, CL_CHAN_LOST, "connection reset");
  take(&t);
  CHECK_EQ_INT(count_fx(&t, CL_FX_MSG, CL_MSG_NOTICE, NULL), 2);
  ask(&t, t.c1, &m);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, t.req, &code, &text, NULL),
               CL_MSG_ERROR);
  CHECK_EQ_INT(code, CL_ELOST);
  CHECK_EQ_STR(text, "channel B->A was lost: connection reset");
  CHECK_EQ_INT(cl_session_tokens(t.s), 7);
  /* A client that goes away forgets what it had parked. */
  done(&t);
}

/* The id of an OK answering m from c1; 0 (and a failed check) if the
 * answer is not OK. */
static uint64_t id_of(t_t *t, cl_msg_t m) {
  const cl_msg_t *ok = NULL;
  const char *text = "";
  int type = reply_of(t, &t->tag1, ask(t, t->c1, &m), NULL, &text, &ok);
  CHECK_EQ_INT(type, CL_MSG_OK);
  if (type != CL_MSG_OK) {
    fprintf(stderr, "  %s refused: %s\n", cl_msg_type_name(m.type), text);
    return 0;
  }
  return ok->u.ok.snapshot_id;
}

static uint64_t next_id(t_t *t) { return id_of(t, simple(CL_MSG_NEXT_ID)); }

/* Snapshots in progress, as STATUS reports them. */
static size_t nactive(t_t *t) {
  const cl_msg_t *st = NULL;
  cl_msg_t m = simple(CL_MSG_STATUS);
  CHECK_EQ_INT(reply_of(t, &t->tag1, ask(t, t->c1, &m), NULL, NULL, &st),
               CL_MSG_STATUS_R);
  return st != NULL ? st->u.status.nactive : 0;
}

/* Automatic ids at B, rank 1 of 3: the smallest id above every id >=
 * 1000000 seen that is 1000001 modulo 3. The expected ids are worked out
 * by hand. */
static void test_ids(void) {
  t_t t;
  cl_msg_t m;
  const cl_msg_t *ok = NULL;
  const char *text = NULL;
  size_t active;
  int code = 0;
  ready(&t, 0, 0);
  CHECK_EQ_INT(next_id(&t), 1000001);
  CHECK_EQ_INT(next_id(&t), 1000004);
  m = snapshot_msg(0, 0);
  ask(&t, t.c1, &m);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, t.req, NULL, NULL, &ok), CL_MSG_OK);
  CHECK_EQ_INT(ok->u.ok.snapshot_id, 1000007);
  CHECK_EQ_INT(ok->u.ok.nsent, 2); /* markers to A, C in id order */
  CHECK_EQ_STR(ok->u.ok.sent[0].dest, "A");
  CHECK_EQ_STR(ok->u.ok.sent[1].dest, "C");
  /* Explicit ids below the base (a scripted run's) move nothing. */
  CHECK_EQ_INT(id_of(&t, snapshot_msg(1, 5)), 5);
  CHECK_EQ_INT(id_of(&t, snapshot_msg(1, 999999)), 999999);
  CHECK_EQ_INT(next_id(&t), 1000010);
  /* A marker of another server's snapshot 1000015: the next id is the
   * first above it, not a whole round of 3 further. */
  CHECK_EQ_INT(peer(&t, 0, 1, 1000015, 0), 0);
  CHECK_EQ_INT(next_id(&t), 1000016);
  CHECK_EQ_INT(peer(&t, 1, 1, 1000017, 0), 0);
  CHECK_EQ_INT(next_id(&t), 1000019);
  /* A smaller id met later does not take the next one back. */
  CHECK_EQ_INT(peer(&t, 0, 1, 1000011, 0), 0);
  CHECK_EQ_INT(next_id(&t), 1000022);
  /* An explicit id above the base counts once the snapshot started. */
  CHECK_EQ_INT(id_of(&t, snapshot_msg(1, 1000030)), 1000030);
  CHECK_EQ_INT(next_id(&t), 1000031);
  m = snapshot_msg(1, 1000007);
  ask(&t, t.c1, &m);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, t.req, &code, &text, NULL),
               CL_MSG_ERROR);
  CHECK_EQ_INT(code, CL_EEXIST);
  CHECK_EQ_STR(text, "snapshot 1000007 already exists on B");
  /* A SNAPSHOT that fails after picking its id (its reply cannot be
   * allocated) uses none up. */
  m = snapshot_msg(0, 0);
  CHECK(ask_failing(&t, t.c1, &m, 1));
  CHECK_EQ_INT(reply_of(&t, &t.tag1, t.req, &code, NULL, NULL),
               CL_MSG_ERROR);
  CHECK_EQ_INT(code, CL_ENOMEM);
  CHECK_EQ_INT(id_of(&t, snapshot_msg(0, 0)), 1000034);
  /* The overflow, a boundary pair: 2^64 - 1 is 0 modulo 3 and 1000001 is
   * 2, so 2^64 - 2 is B's last id. After 2^64 - 3 it is still given out;
   * after it, ERANGE, and nothing starts. */
  CHECK_EQ_INT(id_of(&t, snapshot_msg(1, UINT64_MAX - 2)), UINT64_MAX - 2);
  CHECK(next_id(&t) == UINT64_MAX - 1);
  active = nactive(&t);
  m = simple(CL_MSG_NEXT_ID);
  ask(&t, t.c1, &m);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, t.req, &code, &text, NULL),
               CL_MSG_ERROR);
  CHECK_EQ_INT(code, CL_ERANGE);
  CHECK_EQ_STR(text, "B has run out of snapshot ids");
  m = snapshot_msg(0, 0);
  ask(&t, t.c1, &m);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, t.req, &code, &text, NULL),
               CL_MSG_ERROR);
  CHECK_EQ_INT(code, CL_ERANGE);
  CHECK_EQ_STR(text, "B has run out of snapshot ids");
  CHECK_EQ_INT(nactive(&t), active);
  done(&t);
}

/* Three servers' sessions, ranks 0, 1 and 2 of 3 (the id rule needs no
 * more of a server than its rank), asked for ids in turn: each gets its
 * own residue, so no two ids are equal; and once a server has met another
 * one's snapshot in a marker, its next id is larger than that snapshot's,
 * the rank breaking the tie. The ids are worked out by hand. */
static void test_ids_servers(void) {
  static const uint64_t want[3][3] = {{1000000, 1000003, 1000006},
                                      {1000001, 1000004, 1000007},
                                      {1000002, 1000005, 1000008}};
  t_t t[3];
  uint64_t got[9];
  size_t r, i, j;
  for (r = 0; r < 3; r++)
    ready_at(&t[r], 0, 0, (uint32_t)r);
  for (i = 0; i < 3; i++)
    for (r = 0; r < 3; r++) {
      got[i * 3 + r] = next_id(&t[r]);
      CHECK_EQ_INT(got[i * 3 + r], want[r][i]);
    }
  for (i = 0; i < 9; i++)
    for (j = i + 1; j < 9; j++)
      CHECK(got[i] != got[j]);
  /* Rank 2 starts one (1000011); its marker reaches rank 0, which starts
   * the next, whose marker reaches rank 1: each id is above the last. */
  CHECK_EQ_INT(id_of(&t[2], snapshot_msg(0, 0)), 1000011);
  CHECK_EQ_INT(peer(&t[0], 1, 1, 1000011, 0), 0);
  CHECK_EQ_INT(id_of(&t[0], snapshot_msg(0, 0)), 1000012);
  CHECK_EQ_INT(peer(&t[1], 0, 1, 1000012, 0), 0);
  CHECK_EQ_INT(id_of(&t[1], snapshot_msg(0, 0)), 1000013);
  /* Rank 2 has not met either: it goes on from its own. */
  CHECK_EQ_INT(next_id(&t[2]), 1000014);
  for (r = 0; r < 3; r++)
    done(&t[r]);
}

/* Lockstep: frames are held until DELIVER; a DELIVER with nothing held
 * waits; the hold bound stops reading and a drain resumes it. */
static void test_lockstep(void) {
  t_t t;
  cl_msg_t m;
  const cl_msg_t *ok = NULL;
  const char *text = NULL;
  int code = 0;
  uint64_t req, k;
  ready(&t, 1, 0);
  m = simple(CL_MSG_DELIVER);
  strcpy(m.u.deliver.src, "C");
  req = ask(&t, t.c1, &m);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, req, NULL, NULL, NULL), 0); /* parked */
  CHECK_EQ_INT(peer(&t, 1, 0, 1, 4), 0);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, req, NULL, NULL, &ok), CL_MSG_OK);
  CHECK_EQ_INT(ok->u.ok.delivered_kind, CL_MSG_TOKEN);
  CHECK_EQ_INT(ok->u.ok.delivered_value, 4);
  CHECK_EQ_INT(cl_session_tokens(t.s), 14);
  /* Held, not handled, until DELIVER. */
  CHECK_EQ_INT(peer(&t, 1, 0, 2, 1), 0);
  CHECK_EQ_INT(cl_session_tokens(t.s), 14);
  CHECK_EQ_INT(cl_session_held(t.s, 1), 1);
  strcpy(m.u.deliver.src, "Z");
  ask(&t, t.c1, &m);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, t.req, &code, &text, NULL),
               CL_MSG_ERROR);
  CHECK_EQ_STR(text, "B has no channel from Z");
  /* A bad message held: DELIVER refuses it and the channel is lost. */
  CHECK_EQ_INT(peer(&t, 1, 0, 9, 1), 0);
  strcpy(m.u.deliver.src, "C");
  ask(&t, t.c1, &m); /* seq 2: fine */
  CHECK_EQ_INT(reply_of(&t, &t.tag1, t.req, NULL, NULL, NULL), CL_MSG_OK);
  ask(&t, t.c1, &m); /* seq 9 */
  CHECK_EQ_INT(reply_of(&t, &t.tag1, t.req, &code, &text, NULL),
               CL_MSG_ERROR);
  CHECK_EQ_INT(code, CL_ESEQ);
  CHECK_EQ_STR(text, "channel C->B: TOKEN seq 9 out of order (expected 3)");
  CHECK_EQ_INT(count_fx(&t, CL_FX_CLOSE_IN, 0, NULL), 1);
  CHECK_EQ_INT(count_fx(&t, CL_FX_MSG, CL_MSG_NOTICE, NULL), 2);
  ask(&t, t.c1, &m);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, t.req, &code, NULL, NULL), CL_MSG_ERROR);
  CHECK_EQ_INT(code, CL_ELOST);
  CHECK_EQ_INT(cl_session_tokens(t.s), 15);
  /* The hold bound on A->B. */
  for (k = 1; k <= CL_HELD_MAX; k++)
    CHECK_EQ_INT(peer(&t, 0, 0, k, 1) == 0 ? 0 : 1, 0);
  CHECK_EQ_INT(peer(&t, 0, 0, CL_HELD_MAX + 1, 1), 1); /* stop reading */
  strcpy(m.u.deliver.src, "A");
  for (k = 0; k < CL_HELD_MAX / 2; k++) {
    ask(&t, t.c1, &m);
    CHECK_EQ_INT(count_fx(&t, CL_FX_RESUME, 0, NULL), 0);
  }
  ask(&t, t.c1, &m);
  CHECK_EQ_INT(count_fx(&t, CL_FX_RESUME, 0, NULL), 1);
  done(&t);
}

/* WATCH: a watched state is pushed and released; others get COMPLETE; an
 * unwatched state is kept for COLLECT; --max-kept drops only those. */
static void test_watch(void) {
  t_t t;
  cl_msg_t m;
  const cl_msg_t *st = NULL;
  int code = 0;
  size_t i;
  ready(&t, 1, 2);
  m = simple(CL_MSG_WATCH);
  m.u.watch.first = 5;
  m.u.watch.count = 2; /* 5 and 6 */
  ask(&t, t.c1, &m);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, t.req, NULL, NULL, NULL), CL_MSG_OK);
  /* Snapshot 5 from A: B records, its two channels close in turn. */
  CHECK_EQ_INT(peer(&t, 0, 1, 5, 0), 0);
  CHECK_EQ_INT(peer(&t, 1, 1, 5, 0), 0);
  m = simple(CL_MSG_DELIVER);
  strcpy(m.u.deliver.src, "A");
  ask(&t, t.c2, &m);
  strcpy(m.u.deliver.src, "C");
  ask(&t, t.c2, &m);
  CHECK_EQ_INT(count_fx(&t, CL_FX_MSG, CL_MSG_LOCAL_STATE, &t.tag1), 1);
  CHECK_EQ_INT(count_fx(&t, CL_FX_MSG, CL_MSG_COMPLETE, &t.tag2), 1);
  CHECK_EQ_INT(count_fx(&t, CL_FX_MSG, CL_MSG_COMPLETE, &t.tag1), 0);
  for (i = 0; i < t.fx.n; i++)
    if (t.fx.v[i].kind == CL_FX_MSG &&
        t.fx.v[i].msg->type == CL_MSG_LOCAL_STATE)
      CHECK_EQ_STR(t.fx.v[i].msg->u.state.server, "B");
  m = simple(CL_MSG_COLLECT);
  m.u.collect.snapshot_id = 5;
  ask(&t, t.c2, &m);
  CHECK_EQ_INT(reply_of(&t, &t.tag2, t.req, &code, NULL, NULL),
               CL_MSG_ERROR);
  CHECK_EQ_INT(code, CL_ENOENT); /* released once pushed */
  /* Four unwatched snapshots started here: each completes when both
   * markers come back; only the two newest stay (--max-kept 2). */
  for (i = 0; i < 4; i++) {
    cl_msg_t q = snapshot_msg(1, 100 + i);
    ask(&t, t.c2, &q);
    CHECK_EQ_INT(peer(&t, 0, 1, 100 + i, 0), 0);
    CHECK_EQ_INT(peer(&t, 1, 1, 100 + i, 0), 0);
    strcpy(m.u.deliver.src, "A");
    m.type = CL_MSG_DELIVER;
    ask(&t, t.c2, &m);
    strcpy(m.u.deliver.src, "C");
    ask(&t, t.c2, &m);
  }
  CHECK(logged(&t, "dropped the kept state of snapshot 101 (over "
                   "--max-kept 2"));
  m = simple(CL_MSG_COLLECT);
  m.u.collect.snapshot_id = 100;
  ask(&t, t.c2, &m);
  CHECK_EQ_INT(reply_of(&t, &t.tag2, t.req, &code, NULL, NULL), CL_MSG_ERROR);
  CHECK_EQ_INT(code, CL_ENOENT);
  m.u.collect.snapshot_id = 103;
  m.u.collect.release = 1;
  ask(&t, t.c2, &m);
  CHECK_EQ_INT(reply_of(&t, &t.tag2, t.req, NULL, NULL, &st), CL_MSG_STATE);
  CHECK_EQ_INT(st->u.state.snapshot_id, 103);
  CHECK(t.fx.v[0].has_release && t.fx.v[0].release == 103);
  cl_session_queued(t.s, 103);
  ask(&t, t.c2, &m);
  CHECK_EQ_INT(reply_of(&t, &t.tag2, t.req, &code, NULL, NULL), CL_MSG_ERROR);
  CHECK_EQ_INT(code, CL_ENOENT);
  /* A late WATCH of 102: pushed at once, before the reply. */
  m = simple(CL_MSG_WATCH);
  m.u.watch.first = 102;
  m.u.watch.count = 1;
  ask(&t, t.c1, &m);
  CHECK_EQ_INT(t.fx.n, 2);
  CHECK(t.fx.v[0].kind == CL_FX_MSG &&
        t.fx.v[0].msg->type == CL_MSG_LOCAL_STATE &&
        t.fx.v[0].msg->u.state.snapshot_id == 102);
  CHECK(t.fx.v[1].kind == CL_FX_MSG && t.fx.v[1].msg->type == CL_MSG_OK);
  m.u.watch.count = 0;
  ask(&t, t.c1, &m);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, t.req, &code, NULL, NULL), CL_MSG_ERROR);
  CHECK_EQ_INT(code, CL_EINVAL);
  done(&t);
}

/* Free-running peer frames: handled at once; a bad one is refused with
 * a reason and changes nothing; HELLO refusals. */
static void test_peer(void) {
  t_t t;
  cl_msg_t h;
  char why[256];
  uint32_t in;
  uint64_t rcv;
  ready(&t, 0, 0);
  CHECK_EQ_INT(peer(&t, 0, 0, 1, 3), 0);
  CHECK_EQ_INT(cl_session_tokens(t.s), 13);
  {
    cl_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = CL_MSG_TOKEN;
    m.u.token.seq = 5;
    m.u.token.n = 1;
    CHECK_EQ_INT(cl_session_peer(t.s, 0, &m, why, sizeof why), CL_ESEQ);
    CHECK_EQ_STR(why, "TOKEN seq 5 out of order (expected 2)");
  }
  CHECK_EQ_INT(cl_session_receive_ones(t.s, 0, 2, 3, why, sizeof why), 0);
  CHECK_EQ_INT(cl_session_tokens(t.s), 16);
  CHECK_EQ_INT(cl_session_receive_ones(t.s, 0, 9, 1, why, sizeof why),
               CL_ESEQ);
  CHECK_EQ_INT(peer(&t, 0, 1, 7, 0), 0);
  CHECK_EQ_INT(count_fx(&t, CL_FX_FRAME, 0, NULL), 2); /* markers on */
  {
    cl_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = CL_MSG_MARKER;
    m.u.marker.snapshot_id = 7;
    CHECK_EQ_INT(cl_session_peer(t.s, 0, &m, why, sizeof why), CL_EDUP);
    CHECK_EQ_STR(why, "duplicate MARKER for snapshot 7");
  }
  cl_session_in_lost(t.s, 0, "connection reset");
  take(&t);
  CHECK(logged(&t, "lost channel A->B: connection reset"));
  memset(&h, 0, sizeof h);
  h.type = CL_MSG_HELLO;
  strcpy(h.u.hello.from, "A");
  strcpy(h.u.hello.to, "B");
  h.u.hello.config_id = 77;
  CHECK_EQ_INT(cl_session_hello(t.s, &h, &in, &rcv, why, sizeof why), CL_ELOST);
  CHECK_EQ_STR(why, "HELLO for channel A->B, which was lost");
  strcpy(h.u.hello.from, "C");
  h.u.hello.incarnation = 99; /* not the process that opened C->B */
  CHECK_EQ_INT(cl_session_hello(t.s, &h, &in, &rcv, why, sizeof why), CL_EDUP);
  CHECK_EQ_STR(why, "HELLO for channel C->B from another C process "
                    "(incarnation 0000000000000063, the channel's is "
                    "0000000000000000)");
  h.u.hello.incarnation = 0;
  h.u.hello.config_id = 78;
  strcpy(h.u.hello.from, "C");
  CHECK_EQ_INT(cl_session_hello(t.s, &h, &in, &rcv, why, sizeof why), CL_ESTATE);
  CHECK_EQ_STR(why, "HELLO from C, which was configured from another "
                    "topology (config 000000000000004e, B has "
                    "000000000000004d)");
  strcpy(h.u.hello.to, "Q");
  CHECK_EQ_INT(cl_session_hello(t.s, &h, &in, &rcv, why, sizeof why), CL_EINVAL);
  done(&t);
}

/* ---- out of memory at every allocation ---------------------------------- */

/* STATUS of t as a comparable string: tokens, counts, holds, snapshots. */
static void state_text(t_t *t, char *buf, size_t size) {
  cl_msg_t m = simple(CL_MSG_STATUS);
  const cl_msg_t *r = NULL;
  const cl_status_t *st;
  size_t len = 0, i;
  ask(t, t->c2, &m);
  CHECK_EQ_INT(reply_of(t, &t->tag2, t->req, NULL, NULL, &r),
               CL_MSG_STATUS_R);
  buf[0] = '\0';
  if (r == NULL)
    return;
  st = &r->u.status;
  len += (size_t)snprintf(buf + len, size - len, "t%" PRId64 " c%d",
                          st->tokens, st->configured);
  for (i = 0; i < st->nout; i++)
    len += (size_t)snprintf(buf + len, size - len, " s%" PRIu64,
                            st->out[i].sent);
  for (i = 0; i < st->nin; i++)
    len += (size_t)snprintf(buf + len, size - len, " r%" PRIu64 "h%" PRIu64,
                            st->in[i].received, st->in[i].held);
  for (i = 0; i < st->nactive; i++)
    len += (size_t)snprintf(buf + len, size - len, " a%" PRIu64,
                            st->active[i]);
  for (i = 0; i < st->ndone && len < size - 32; i++)
    len += (size_t)snprintf(buf + len, size - len, " k%" PRIu64,
                            st->done[i]);
}

typedef void (*prepare_fn)(t_t *t);

/* A lockstep session with tokens and markers held on both channels, a
 * snapshot in progress and one kept. */
static void prep_lockstep(t_t *t) {
  cl_msg_t m = snapshot_msg(1, 40);
  ready(t, 1, 0);
  ask(t, t->c2, &m);
  peer(t, 0, 0, 1, 2);
  peer(t, 0, 1, 50, 0);
  peer(t, 1, 1, 51, 0);
  peer(t, 1, 0, 1, 1);
}

static void prep_free(t_t *t) {
  cl_msg_t m = snapshot_msg(1, 40);
  ready(t, 0, 0);
  ask(t, t->c2, &m);
  peer(t, 0, 1, 40, 0); /* 40 still waits for C */
}

/* Run one request (or peer frame, `frame` set) with the n-th allocation
 * failing, for n = 1, 2, ... until a run makes no allocation fail. Each
 * failed run must answer ERROR (or refuse the frame) and leave the state
 * as it was; or, when the allocation was a notification to another client
 * made after the change, close that client (DROP) rather than leave it
 * waiting for a notification that will never come. */
static void oom_case(const char *name, prepare_fn prep, cl_msg_t req,
                     int frame_in, const cl_msg_t *frame) {
  unsigned long n;
  for (n = 1; n < 1000; n++) {
    t_t t;
    char before[1024], after[1024], why[256];
    int failed, r = 0;
    prep(&t);
    state_text(&t, before, sizeof before);
    if (frame != NULL) {
      cl_alloc_fail_after(n);
      r = cl_session_peer(t.s, (uint32_t)frame_in, frame, why, sizeof why);
      failed = cl_alloc_failed();
      cl_alloc_fail_after(0);
      take(&t);
    } else {
      failed = ask_failing(&t, t.c1, &req, n);
    }
    if (!failed) {
      done(&t);
      break;
    }
    if (count_fx(&t, CL_FX_DROP, 0, NULL) > 0) {
      done(&t);
      continue;
    }
    if (frame != NULL) {
      if (r >= 0)
        fprintf(stderr, "%s: allocation %lu failed, frame taken\n", name, n);
      CHECK(r < 0);
    } else {
      int type = reply_of(&t, &t.tag1, t.req, NULL, NULL, NULL);
      if (type != CL_MSG_ERROR)
        fprintf(stderr, "%s: allocation %lu failed, reply %d\n", name, n,
                type);
      CHECK_EQ_INT(type, CL_MSG_ERROR);
    }
    state_text(&t, after, sizeof after);
    if (strcmp(before, after) != 0)
      fprintf(stderr, "%s: allocation %lu failed, state %s -> %s\n", name,
              n, before, after);
    CHECK_EQ_STR(after, before);
    done(&t);
  }
  CHECK(n > 1 && n < 1000); /* some allocation was made, and all tried */
}

static void test_oom(void) {
  cl_msg_t m, f;
  oom_case("SEND", prep_free, send_msg("A", 2), 0, NULL);
  oom_case("SNAPSHOT", prep_free, snapshot_msg(1, 70), 0, NULL);
  oom_case("NEXT_ID", prep_free, simple(CL_MSG_NEXT_ID), 0, NULL);
  m = simple(CL_MSG_DELIVER);
  strcpy(m.u.deliver.src, "A");
  oom_case("DELIVER token", prep_lockstep, m, 0, NULL);
  strcpy(m.u.deliver.src, "C");
  oom_case("DELIVER marker", prep_lockstep, m, 0, NULL);
  m = simple(CL_MSG_WATCH);
  m.u.watch.first = 0;
  m.u.watch.count = 100;
  oom_case("WATCH", prep_lockstep, m, 0, NULL);
  m = simple(CL_MSG_COLLECT);
  m.u.collect.snapshot_id = 40;
  oom_case("COLLECT", prep_free, m, 0, NULL);
  oom_case("STATUS", prep_free, simple(CL_MSG_STATUS), 0, NULL);
  m = simple(CL_MSG_TRACE);
  m.u.trace.on = 1;
  oom_case("TRACE", prep_free, m, 0, NULL);
  m = simple(CL_MSG_TRACE_READ);
  m.u.trace_read.max = 10;
  oom_case("TRACE_READ", prep_free, m, 0, NULL);
  m = simple(CL_MSG_CONNECT);
  oom_case("CONNECT", prep_free, m, 0, NULL);
  memset(&f, 0, sizeof f);
  f.type = CL_MSG_MARKER;
  f.u.marker.snapshot_id = 90;
  oom_case("peer MARKER", prep_free, m, 1, &f);
  f.u.marker.snapshot_id = 40; /* closes C: completes 40 */
  oom_case("peer MARKER completing", prep_free, m, 1, &f);
  f.type = CL_MSG_TOKEN;
  f.u.token.seq = 1;
  f.u.token.n = 1;
  oom_case("peer TOKEN recorded", prep_free, m, 1, &f);
}

/* CONFIGURE under a failing allocation: refused, still unconfigured. */
static void test_oom_configure(void) {
  unsigned long n;
  for (n = 1; n < 200; n++) {
    t_t t;
    cl_msg_t m = configure_msg(0);
    int failed, type;
    memset(&t, 0, sizeof t);
    new_session(&t, 0);
    failed = ask_failing(&t, t.c1, &m, n);
    type = reply_of(&t, &t.tag1, t.req, NULL, NULL, NULL);
    if (!failed) {
      CHECK_EQ_INT(type, CL_MSG_OK);
      done(&t);
      break;
    }
    CHECK_EQ_INT(type, CL_MSG_ERROR);
    CHECK(!cl_session_configured(t.s));
    done(&t);
  }
  CHECK(n > 1 && n < 200);
}

/* Effects of a kind in a list. */
static size_t count_fx_list(const cl_fx_list_t *l, int kind) {
  size_t i, n = 0;
  for (i = 0; i < l->n; i++)
    n += l->v[i].kind == kind;
  return n;
}

/* 1 if a log line in l contains s. */
static int list_logged(const cl_fx_list_t *l, const char *s) {
  size_t i;
  for (i = 0; i < l->n; i++)
    if (strstr(l->v[i].text, s) != NULL)
      return 1;
  return 0;
}

/* ---- reconnection: two sessions joined by a wire that can break ---------- */

/* Servers A (100 tokens) and B (0) with a channel each way. Frames the
 * sessions make go onto a per-direction wire; deliver() hands them to the
 * receiving session as the transport would; cut() loses what is on the
 * wire, as a reset loses bytes in the kernel, and reports the ends. */
typedef struct frame {
  uint8_t kind;
  uint64_t a;
  int64_t n;
} frame_t;

typedef struct pair {
  cl_session_t *s[2]; /* A, B */
  env_t env[2];
  int tag[2];
  cl_session_client_t *c[2];
  frame_t wire[2][256]; /* [from] in flight, FIFO */
  size_t nwire[2];
  int faults;           /* cl_session_peer refusals seen */
  uint64_t req;
  cl_fx_list_t fx, logs;
} pair_t;

/* Perform what session k made: frames onto its wire, ACKs to the other
 * side; replies and the rest are dropped (the test asks STATUS). */
static void pair_run(pair_t *p, int k) {
  size_t i;
  uint64_t j;
  char why[256];
  cl_session_take(p->s[k], &p->fx, &p->logs);
  for (i = 0; i < p->fx.n; i++) {
    const cl_fx_t *f = &p->fx.v[i];
    if (f->kind == CL_FX_FRAME) {
      for (j = 0; j < f->count; j++) {
        frame_t *w = &p->wire[k][p->nwire[k]++];
        CHECK(p->nwire[k] <= 256);
        w->kind = f->frame;
        w->a = f->frame == CL_MSG_TOKEN ? f->a + j : f->a;
        w->n = f->n;
      }
    } else if (f->kind == CL_FX_ACK) {
      CHECK_EQ_INT(cl_session_out_ack(p->s[!k], 0, f->a, why, sizeof why),
                   0);
    } else if (f->kind == CL_FX_MSG && f->has_release) {
      cl_session_queued(p->s[k], f->release); /* COLLECT with release */
    }
  }
  cl_fx_list_clear(&p->fx);
  cl_fx_list_clear(&p->logs);
}

/* Deliver the first n frames on the wire from k. */
static void pair_deliver(pair_t *p, int k, size_t n) {
  size_t i;
  char why[256];
  for (i = 0; i < n && i < p->nwire[k]; i++) {
    cl_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = p->wire[k][i].kind;
    if (m.type == CL_MSG_TOKEN) {
      m.u.token.seq = p->wire[k][i].a;
      m.u.token.n = p->wire[k][i].n;
    } else {
      m.u.marker.snapshot_id = p->wire[k][i].a;
    }
    if (cl_session_peer(p->s[!k], 0, &m, why, sizeof why) != 0)
      p->faults++;
    pair_run(p, !k);
    pair_run(p, k);
  }
  memmove(p->wire[k], p->wire[k] + i, (p->nwire[k] - i) * sizeof(frame_t));
  p->nwire[k] -= i;
}

/* Channel k -> !k (re)connects: k's HELLO at the receiver, whose count
 * goes back in WELCOME. Returns that count. */
static uint64_t pair_connect(pair_t *p, int k) {
  static const char *ids[2] = {"A", "B"};
  cl_msg_t h;
  uint32_t in;
  uint64_t rcv = 0;
  char why[256];
  memset(&h, 0, sizeof h);
  h.type = CL_MSG_HELLO;
  strcpy(h.u.hello.from, ids[k]);
  strcpy(h.u.hello.to, ids[!k]);
  h.u.hello.config_id = 5;
  h.u.hello.incarnation = 1000 + (uint64_t)k;
  CHECK_EQ_INT(cl_session_hello(p->s[!k], &h, &in, &rcv, why, sizeof why), 0);
  CHECK_EQ_INT(cl_session_out_welcome(p->s[k], 0, rcv, why, sizeof why), 0);
  pair_run(p, k);
  return rcv;
}

/* The connection from k to the other breaks: what is in flight is lost;
 * the sender reconnects, and the receiver's WELCOME count decides what is
 * resent. Returns that count. */
static uint64_t pair_reconnect(pair_t *p, int k) {
  p->nwire[k] = 0;
  cl_session_out_state(p->s[k], 0, CL_CHAN_CONNECTING, "connection reset");
  cl_session_in_down(p->s[!k], 0, "connection reset");
  pair_run(p, k);
  pair_run(p, !k);
  return pair_connect(p, k);
}

static void pair_ask(pair_t *p, int k, cl_msg_t *m) {
  m->req = ++p->req;
  cl_session_request(p->s[k], p->c[k], m);
  pair_run(p, k);
}

static void pair_init(pair_t *p) {
  static const char *ids[2] = {"A", "B"};
  int k;
  memset(p, 0, sizeof *p);
  for (k = 0; k < 2; k++) {
    cl_session_config_t sc;
    cl_peer_addr_t out;
    char in[1][CL_ID_SIZE];
    cl_msg_t m;
    memset(&sc, 0, sizeof sc);
    sc.self = ids[k];
    sc.write_cap = 1 << 20;
    sc.env.ctx = &p->env[k];
    sc.env.reserve = env_reserve;
    sc.env.queued = env_queued;
    sc.env.configure = env_configure;
    CHECK_EQ_INT(cl_session_new(&sc, &p->s[k]), 0);
    p->c[k] = cl_session_client_open(p->s[k], &p->tag[k]);
    cl_session_tick(p->s[k], 1000);
    memset(&m, 0, sizeof m);
    m.type = CL_MSG_CONFIGURE;
    strcpy(m.u.configure.self, ids[k]);
    m.u.configure.tokens = k == 0 ? 100 : 0;
    m.u.configure.rank = (uint32_t)k;
    m.u.configure.nservers = 2;
    strcpy(out.id, ids[!k]);
    strcpy(out.addr, "127.0.0.1:9");
    strcpy(in[0], ids[!k]);
    m.u.configure.nout = 1;
    m.u.configure.out = &out;
    m.u.configure.nin = 1;
    m.u.configure.in = in;
    m.u.configure.config_id = 5;
    pair_ask(p, k, &m);
    m = simple(CL_MSG_CONNECT);
    pair_ask(p, k, &m);
  }
  for (k = 0; k < 2; k++)
    CHECK_EQ_INT(pair_connect(p, k), 0);
}

static void pair_free(pair_t *p) {
  cl_fx_list_free(&p->fx);
  cl_fx_list_free(&p->logs);
  cl_session_free(p->s[0]);
  cl_session_free(p->s[1]);
}

/* Tokens held plus tokens on the wires (what the sessions still owe). */
static int64_t pair_tokens(const pair_t *p) {
  int64_t t = cl_session_tokens(p->s[0]) + cl_session_tokens(p->s[1]);
  size_t k, i;
  for (k = 0; k < 2; k++)
    for (i = 0; i < p->nwire[k]; i++)
      if (p->wire[k][i].kind == CL_MSG_TOKEN)
        t += p->wire[k][i].n;
  return t;
}

/* Frames lost on a broken connection are resent from the receiver's
 * count, in order, once; frames made while reconnecting wait for it; a
 * marker the receiver already had (its snapshot completed and released
 * since) is not resent, so it starts nothing. */
static void test_reconnect(void) {
  pair_t p;
  cl_msg_t m;
  uint64_t rcv;
  char why[256];
  int i;
  pair_init(&p);
  for (i = 1; i <= 5; i++) {
    m = send_msg("B", i); /* 15 tokens in 5 frames */
    pair_ask(&p, 0, &m);
  }
  CHECK_EQ_INT(p.nwire[0], 5);
  CHECK_EQ_INT(cl_session_unacked(p.s[0], 0), 5);
  pair_deliver(&p, 0, 2); /* B has frames 1, 2 (3 tokens) */
  cl_session_tick(p.s[1], 1100);
  pair_run(&p, 1); /* B acknowledges 2 */
  CHECK_EQ_INT(cl_session_unacked(p.s[0], 0), 3);
  CHECK_EQ_INT(cl_session_unacked_runs(p.s[0], 0), 3);
  pair_deliver(&p, 0, 1); /* frame 3 arrives, not acknowledged yet */
  /* The connection breaks with frames 4 and 5 in flight. */
  CHECK_EQ_INT(pair_tokens(&p), 100);
  p.nwire[0] = 0;
  cl_session_out_state(p.s[0], 0, CL_CHAN_CONNECTING, "connection reset");
  cl_session_in_down(p.s[1], 0, "connection reset");
  pair_run(&p, 0);
  pair_run(&p, 1);
  /* While reconnecting: a snapshot's marker is kept, not written; a SEND
   * waits for the connection. */
  m = snapshot_msg(1, 7);
  pair_ask(&p, 0, &m);
  m = send_msg("B", 6);
  pair_ask(&p, 0, &m);
  CHECK_EQ_INT(p.nwire[0], 0);
  /* 3 (had, not acknowledged), 4, 5 and the marker */
  CHECK_EQ_INT(cl_session_unacked(p.s[0], 0), 4);
  /* A's tokens: 100 - 15 sent; the SEND of 6 still waits. */
  CHECK_EQ_INT(cl_session_tokens(p.s[0]), 85);
  /* Reconnect: B has 3 frames; 4, 5, the marker, then the SEND. */
  {
    cl_msg_t h;
    uint32_t in;
    memset(&h, 0, sizeof h);
    h.type = CL_MSG_HELLO;
    strcpy(h.u.hello.from, "A");
    strcpy(h.u.hello.to, "B");
    h.u.hello.config_id = 5;
    h.u.hello.incarnation = 1000;
    CHECK_EQ_INT(cl_session_hello(p.s[1], &h, &in, &rcv, why, sizeof why), 0);
    CHECK_EQ_INT(rcv, 3);
    /* A count outside what was sent and confirmed is refused. */
    CHECK_EQ_INT(cl_session_out_welcome(p.s[0], 0, 9, why, sizeof why),
                 CL_EPROTO);
    CHECK_EQ_STR(why, "B says it has 9 frames of channel A->B, but 6 were "
                      "sent and 2 confirmed");
    CHECK_EQ_INT(cl_session_out_welcome(p.s[0], 0, 1, why, sizeof why),
                 CL_EPROTO);
    CHECK_EQ_INT(cl_session_out_welcome(p.s[0], 0, rcv, why, sizeof why), 0);
    pair_run(&p, 0);
  }
  CHECK_EQ_INT(p.nwire[0], 4);
  CHECK(p.wire[0][0].kind == CL_MSG_TOKEN && p.wire[0][0].a == 4 &&
        p.wire[0][0].n == 4);
  CHECK(p.wire[0][1].kind == CL_MSG_TOKEN && p.wire[0][1].a == 5 &&
        p.wire[0][1].n == 5);
  CHECK(p.wire[0][2].kind == CL_MSG_MARKER && p.wire[0][2].a == 7);
  CHECK(p.wire[0][3].kind == CL_MSG_TOKEN && p.wire[0][3].a == 6 &&
        p.wire[0][3].n == 6);
  pair_deliver(&p, 0, 4);
  pair_deliver(&p, 1, p.nwire[1]); /* B's marker back to A */
  CHECK_EQ_INT(p.faults, 0);
  CHECK_EQ_INT(cl_session_tokens(p.s[1]), 21);
  CHECK_EQ_INT(pair_tokens(&p), 100);
  /* Snapshot 7 completed on both: A recorded 85 tokens, B 15 (the marker
   * came after frames 1..5), nothing in flight either way. */
  m = simple(CL_MSG_COLLECT);
  m.u.collect.snapshot_id = 7;
  m.u.collect.release = 1;
  pair_ask(&p, 1, &m); /* B's state released */
  /* B had the marker (its count says so) but A has no ACK for it yet:
   * the connection breaks again now. The marker must not come back: its
   * snapshot is gone from B, and a marker of an unknown id would start a
   * new snapshot 7 there. */
  CHECK(cl_session_unacked(p.s[0], 0) > 0);
  rcv = pair_reconnect(&p, 0);
  CHECK_EQ_INT(rcv, 7);
  CHECK_EQ_INT(p.nwire[0], 0);
  CHECK_EQ_INT(cl_session_unacked(p.s[0], 0), 0);
  /* B knows no snapshot: 7 was released, none was started again. */
  m = simple(CL_MSG_STATUS);
  p.req++;
  m.req = p.req;
  cl_session_request(p.s[1], p.c[1], &m);
  cl_session_take(p.s[1], &p.fx, &p.logs);
  CHECK_EQ_INT(p.fx.n, 1);
  CHECK(p.fx.v[0].kind == CL_FX_MSG &&
        p.fx.v[0].msg->type == CL_MSG_STATUS_R);
  CHECK_EQ_INT(p.fx.v[0].msg->u.status.nactive, 0);
  CHECK_EQ_INT(p.fx.v[0].msg->u.status.ndone, 0);
  cl_fx_list_clear(&p.fx);
  cl_fx_list_clear(&p.logs);
  /* Runs: 1000 one-token messages are one kept run; a partial ACK trims
   * it; a reconnect resends the rest as one FRAME effect. */
  {
    uint64_t first, unacked0 = cl_session_unacked(p.s[0], 0);
    CHECK_EQ_INT(unacked0, 0);
    CHECK_EQ_INT(cl_session_send_ones(p.s[0], 0, 60, &first), 0);
    CHECK_EQ_INT(first, 7);
    CHECK_EQ_INT(cl_session_unacked_runs(p.s[0], 0), 1);
    CHECK_EQ_INT(cl_session_out_ack(p.s[0], 0, 7 + 20, why, sizeof why), 0);
    CHECK_EQ_INT(cl_session_unacked(p.s[0], 0), 40);
    CHECK_EQ_INT(cl_session_out_ack(p.s[0], 0, 7 + 70, why, sizeof why),
                 CL_EPROTO);
    cl_session_out_state(p.s[0], 0, CL_CHAN_CONNECTING, "reset");
    CHECK_EQ_INT(cl_session_out_welcome(p.s[0], 0, 7 + 25, why, sizeof why),
                 0);
    cl_session_take(p.s[0], &p.fx, &p.logs);
    CHECK_EQ_INT(count_fx_list(&p.fx, CL_FX_FRAME), 1);
    CHECK_EQ_INT(p.fx.v[0].count, 35);
    CHECK_EQ_INT(p.fx.v[0].a, 7 + 25);
    cl_fx_list_clear(&p.fx);
    cl_fx_list_clear(&p.logs);
  }
  pair_free(&p);
}

/* The clock: ACKs for what arrived since the last one; a sender that gets
 * none for the peer timeout breaks its connection (once per timeout); a
 * receiver whose sender does not come back within peer_lost loses the
 * channel for good, and then refuses its HELLO. */
static void test_ticks(void) {
  pair_t p;
  cl_msg_t m, h;
  uint32_t in;
  uint64_t rcv;
  char why[256];
  pair_init(&p);
  m = send_msg("B", 1);
  pair_ask(&p, 0, &m);
  cl_session_tick(p.s[0], 1000 + CL_DEFAULT_PEER_TIMEOUT_MS - 1);
  cl_session_take(p.s[0], &p.fx, &p.logs);
  CHECK_EQ_INT(count_fx_list(&p.fx, CL_FX_BREAK), 0);
  cl_session_tick(p.s[0], 1000 + CL_DEFAULT_PEER_TIMEOUT_MS);
  cl_session_take(p.s[0], &p.fx, &p.logs);
  CHECK_EQ_INT(count_fx_list(&p.fx, CL_FX_BREAK), 1);
  CHECK_EQ_STR(p.fx.v[0].text, "B acknowledged nothing for 5000 ms (1 "
                               "frames unconfirmed)");
  cl_session_tick(p.s[0], 1000 + CL_DEFAULT_PEER_TIMEOUT_MS + 100);
  cl_session_take(p.s[0], &p.fx, &p.logs);
  CHECK_EQ_INT(count_fx_list(&p.fx, CL_FX_BREAK), 0);
  /* B: one frame, acknowledged on the next tick, not again after. */
  pair_deliver(&p, 0, 1);
  cl_session_tick(p.s[1], 2000);
  cl_session_take(p.s[1], &p.fx, &p.logs);
  CHECK_EQ_INT(count_fx_list(&p.fx, CL_FX_ACK), 1);
  CHECK_EQ_INT(p.fx.v[0].a, 1);
  cl_session_tick(p.s[1], 2100);
  cl_session_take(p.s[1], &p.fx, &p.logs);
  CHECK_EQ_INT(count_fx_list(&p.fx, CL_FX_ACK), 0);
  /* B's inbound goes down and stays away. */
  cl_session_in_down(p.s[1], 0, "connection reset");
  cl_session_tick(p.s[1], 2100 + CL_DEFAULT_PEER_LOST_MS - 1);
  cl_session_take(p.s[1], &p.fx, &p.logs);
  CHECK(!list_logged(&p.logs, "lost channel A->B"));
  cl_session_tick(p.s[1], 2100 + CL_DEFAULT_PEER_LOST_MS);
  cl_session_take(p.s[1], &p.fx, &p.logs);
  CHECK(list_logged(&p.logs, "lost channel A->B: A did not reconnect "
                             "within 30000 ms"));
  memset(&h, 0, sizeof h);
  h.type = CL_MSG_HELLO;
  strcpy(h.u.hello.from, "A");
  strcpy(h.u.hello.to, "B");
  h.u.hello.config_id = 5;
  h.u.hello.incarnation = 1000;
  CHECK_EQ_INT(cl_session_hello(p.s[1], &h, &in, &rcv, why, sizeof why),
               CL_ELOST);
  cl_fx_list_clear(&p.fx);
  cl_fx_list_clear(&p.logs);
  pair_free(&p);
}

/* A receiver that claims frames never sent on a new channel: refused, and
 * the transport's LOST then answers the waiting CONNECT. */
static void test_welcome_lie(void) {
  t_t t;
  cl_msg_t m = configure_msg(0);
  uint64_t req;
  const char *text = NULL;
  char why[256];
  memset(&t, 0, sizeof t);
  new_session(&t, 0);
  ask(&t, t.c1, &m);
  m = simple(CL_MSG_CONNECT);
  req = ask(&t, t.c1, &m);
  CHECK_EQ_INT(cl_session_out_welcome(t.s, 0, 5, why, sizeof why), CL_EPROTO);
  CHECK_EQ_STR(why, "A says it has 5 frames of channel B->A, but 0 were "
                    "sent and 0 confirmed");
  cl_session_out_state(t.s, 0, CL_CHAN_LOST, why);
  take(&t);
  CHECK_EQ_INT(reply_of(&t, &t.tag1, req, NULL, &text, NULL), CL_MSG_ERROR);
  CHECK(text != NULL && strstr(text, "channel B->A (127.0.0.1:1) was lost")
                            != NULL);
  done(&t);
}

/* TRACE and TRACE_READ: refused before CONFIGURE and past the bound;
 * events read back with peer ids, page by page; FREEZE stops tracing. */
static void test_trace(void) {
  t_t t;
  cl_msg_t m;
  const cl_msg_t *r = NULL;
  const char *text = NULL;
  int code = 0;
  memset(&t, 0, sizeof t);
  new_session(&t, 0);
  m = simple(CL_MSG_TRACE);
  m.u.trace.on = 1;
  CHECK_EQ_INT(reply_of(&t, &t.tag1, ask(&t, t.c1, &m), &code, NULL, NULL),
               CL_MSG_ERROR);
  CHECK_EQ_INT(code, CL_ESTATE);
  done(&t);
  ready(&t, 0, 0);
  m = simple(CL_MSG_TRACE);
  m.u.trace.on = 1;
  m.u.trace.max_events = 16777217;
  CHECK_EQ_INT(reply_of(&t, &t.tag1, ask(&t, t.c1, &m), &code, &text, NULL),
               CL_MSG_ERROR);
  CHECK_EQ_INT(code, CL_ERANGE);
  m.u.trace.max_events = 0;
  CHECK_EQ_INT(reply_of(&t, &t.tag1, ask(&t, t.c1, &m), NULL, NULL, NULL),
               CL_MSG_OK);
  m = send_msg("C", 2);
  ask(&t, t.c1, &m);
  CHECK_EQ_INT(peer(&t, 0, 0, 1, 5), 0); /* A -> B #1, 5 tokens */
  m = simple(CL_MSG_TRACE_READ);
  m.u.trace_read.first = 0;
  m.u.trace_read.max = 1;
  CHECK_EQ_INT(reply_of(&t, &t.tag1, ask(&t, t.c1, &m), NULL, NULL, &r),
               CL_MSG_TRACE_R);
  CHECK_EQ_INT(r->u.trace_r.on, 1);
  CHECK_EQ_INT(r->u.trace_r.next, 2);
  CHECK_EQ_INT(r->u.trace_r.nevents, 1);
  CHECK_EQ_INT(r->u.trace_r.events[0].ev, CL_TEV_SEND);
  CHECK_EQ_STR(r->u.trace_r.events[0].peer, "C");
  CHECK_EQ_INT(r->u.trace_r.events[0].n, 2);
  CHECK_EQ_INT(r->u.trace_r.events[0].tokens, 8);
  m.u.trace_read.first = 1;
  m.u.trace_read.max = 100;
  CHECK_EQ_INT(reply_of(&t, &t.tag1, ask(&t, t.c1, &m), NULL, NULL, &r),
               CL_MSG_TRACE_R);
  CHECK_EQ_INT(r->u.trace_r.nevents, 1);
  CHECK_EQ_INT(r->u.trace_r.events[0].i, 1);
  CHECK_EQ_INT(r->u.trace_r.events[0].ev, CL_TEV_RECV);
  CHECK_EQ_STR(r->u.trace_r.events[0].peer, "A");
  CHECK_EQ_INT(r->u.trace_r.events[0].seq, 1);
  CHECK_EQ_INT(r->u.trace_r.events[0].tokens, 13);
  m.u.trace_read.first = 2;
  CHECK_EQ_INT(reply_of(&t, &t.tag1, ask(&t, t.c1, &m), NULL, NULL, &r),
               CL_MSG_TRACE_R);
  CHECK_EQ_INT(r->u.trace_r.nevents, 0);
  /* A restore stops it: the next send is not traced. */
  m = simple(CL_MSG_FREEZE);
  m.u.freeze.epoch = 1;
  CHECK_EQ_INT(reply_of(&t, &t.tag1, ask(&t, t.c1, &m), NULL, NULL, NULL),
               CL_MSG_OK);
  m = simple(CL_MSG_TRACE_READ);
  m.u.trace_read.max = 100;
  CHECK_EQ_INT(reply_of(&t, &t.tag1, ask(&t, t.c1, &m), NULL, NULL, &r),
               CL_MSG_TRACE_R);
  CHECK_EQ_INT(r->u.trace_r.on, 0);
  CHECK_EQ_INT(r->u.trace_r.nevents, 2);
  /* Tracing cannot start while frozen. */
  m = simple(CL_MSG_TRACE);
  m.u.trace.on = 1;
  CHECK_EQ_INT(reply_of(&t, &t.tag1, ask(&t, t.c1, &m), &code, NULL, NULL),
               CL_MSG_ERROR);
  CHECK_EQ_INT(code, CL_ESTATE);
  done(&t);
}

int main(void) {
  test_configure();
  test_connect();
  test_send();
  test_ids();
  test_ids_servers();
  test_lockstep();
  test_watch();
  test_peer();
  test_oom();
  test_oom_configure();
  test_reconnect();
  test_welcome_lie();
  test_trace();
  test_ticks();
  return check_done("session");
}
