/* Unit tests of the wire codec (proto/wire.c): a round trip of every message
 * type, exact bytes of the hot frames, streams fed byte by byte and in
 * random splits, and every malformed, oversized or truncated input we could
 * think of, each of which must fail with the right code, leave the message
 * zeroed and leak nothing (run under valgrind and ASan). */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "error.h"
#include "scan.h"
#include "wire.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static void set_id(char dst[CL_ID_SIZE], const char *s) {
  memset(dst, 0, CL_ID_SIZE);
  strncpy(dst, s, CL_ID_SIZE - 1);
}

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n, size);
  if (p == NULL) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  return p;
}

static int is_zero(const cl_msg_t *m) {
  static const cl_msg_t zero;
  return memcmp(m, &zero, sizeof zero) == 0;
}

/* Pack a frame from a format: A array(int n), M map(int n), i int,
 * L long long, U unsigned long long, s str, S str(ptr, int len), n nil,
 * T true, F false, d double. Appends to sb. */
static void build(msgpack_sbuffer *sb, const char *fmt, ...) {
  msgpack_packer pk;
  va_list ap;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  va_start(ap, fmt);
  for (; *fmt; fmt++) {
    switch (*fmt) {
    case 'A': msgpack_pack_array(&pk, (size_t)va_arg(ap, int)); break;
    case 'M': msgpack_pack_map(&pk, (size_t)va_arg(ap, int)); break;
    case 'i': msgpack_pack_int64(&pk, va_arg(ap, int)); break;
    case 'L': msgpack_pack_int64(&pk, va_arg(ap, long long)); break;
    case 'U': msgpack_pack_uint64(&pk, va_arg(ap, unsigned long long)); break;
    case 's': {
      const char *s = va_arg(ap, const char *);
      msgpack_pack_str(&pk, strlen(s));
      msgpack_pack_str_body(&pk, s, strlen(s));
      break;
    }
    case 'S': {
      const char *s = va_arg(ap, const char *);
      int len = va_arg(ap, int);
      msgpack_pack_str(&pk, (size_t)len);
      msgpack_pack_str_body(&pk, s, (size_t)len);
      break;
    }
    case 'n': msgpack_pack_nil(&pk); break;
    case 'T': msgpack_pack_true(&pk); break;
    case 'F': msgpack_pack_false(&pk); break;
    case 'd': msgpack_pack_double(&pk, va_arg(ap, double)); break;
    case ' ': break;
    default:
      fprintf(stderr, "build: bad format char %c\n", *fmt);
      exit(1);
    }
  }
  va_end(ap);
}

/* Decode one buffer with a fresh decoder. On success *m holds the message
 * and the decoder must have nothing left; on failure it checks that *m is
 * zeroed and the error sticks. Returns what cl_wire_next returned. */
static int decode_buf(const char *buf, size_t len, size_t cap, cl_msg_t *m) {
  cl_wire_decoder_t *d = cl_wire_decoder_new(cap);
  int rc;
  CHECK(d != NULL);
  if (d == NULL)
    return CL_ENOMEM;
  rc = cl_wire_decoder_feed(d, buf, len);
  if (rc == 0)
    rc = cl_wire_next(d, m);
  else
    memset(m, 0, sizeof *m);
  if (rc == 1) {
    cl_msg_t extra;
    CHECK_EQ_INT(cl_wire_next(d, &extra), 0);
    CHECK_EQ_INT(cl_wire_decoder_buffered(d), 0);
  } else if (rc < 0) {
    cl_msg_t again;
    CHECK(is_zero(m));
    CHECK_EQ_INT(cl_wire_next(d, &again), rc);
    CHECK(is_zero(&again));
  }
  cl_wire_decoder_free(d);
  return rc;
}

/* Decode the bytes built so far in sb and expect error want. */
static void expect_err(msgpack_sbuffer *sb, size_t cap, int want, int line) {
  cl_msg_t m;
  int rc = decode_buf(sb->data, sb->size, cap, &m);
  if (rc != want)
    fprintf(stderr, "  (case at line %d: got %d %s, want %d %s)\n", line, rc,
            rc < 0 ? cl_err_name(rc) : "", want, cl_err_name(want));
  CHECK_EQ_INT(rc, want);
  if (rc == 1)
    cl_msg_free(&m);
  msgpack_sbuffer_clear(sb);
}
#define EXPECT(sb, err) expect_err((sb), 0, (err), __LINE__)
#define EXPECT_CAP(sb, cap, err) expect_err((sb), (cap), (err), __LINE__)

/* ------------------------------------------------------------------ */
/* Sample messages with non-trivial contents, one per type              */

static const int all_types[] = {
    CL_MSG_HELLO,    CL_MSG_TOKEN,    CL_MSG_MARKER,   CL_MSG_WELCOME,
    CL_MSG_ACK,      CL_MSG_CHALLENGE, CL_MSG_AUTH,   CL_MSG_AUTH_OK,
    CL_MSG_CLIENT,
    CL_MSG_CONFIGURE, CL_MSG_CONNECT, CL_MSG_SEND,     CL_MSG_SNAPSHOT,
    CL_MSG_COLLECT,  CL_MSG_STATUS,   CL_MSG_DELIVER,  CL_MSG_SHUTDOWN,
    CL_MSG_CIRCULATE, CL_MSG_WATCH,   CL_MSG_NEXT_ID,  CL_MSG_DROP,
    CL_MSG_FREEZE,   CL_MSG_RESTORE,  CL_MSG_RESUME,   CL_MSG_PEEK,
    CL_MSG_TRACE,    CL_MSG_TRACE_READ, CL_MSG_TRACE_R,
    CL_MSG_OK,
    CL_MSG_ERROR,
    CL_MSG_STATE,    CL_MSG_STATUS_R, CL_MSG_COMPLETE, CL_MSG_NOTICE,
    CL_MSG_LOCAL_STATE};
#define NTYPES (sizeof all_types / sizeof all_types[0])

/* Element count of each frame, type included, from the wire.h layouts. */
static unsigned layout_len(int type) {
  switch (type) {
  case CL_MSG_CONFIGURE: return 12;
  case CL_MSG_OK: return 6;
  case CL_MSG_HELLO: return 6;
  case CL_MSG_RESTORE: case CL_MSG_TRACE_R: return 5;
  case CL_MSG_TRACE: case CL_MSG_TRACE_READ: return 4;
  case CL_MSG_SEND: case CL_MSG_COLLECT: case CL_MSG_ERROR:
  case CL_MSG_WATCH: case CL_MSG_DROP: return 4;
  case CL_MSG_MARKER: case CL_MSG_CLIENT: case CL_MSG_CONNECT:
  case CL_MSG_ACK: case CL_MSG_AUTH_OK:
  case CL_MSG_STATUS: case CL_MSG_SHUTDOWN: case CL_MSG_LOCAL_STATE:
  case CL_MSG_NEXT_ID: case CL_MSG_RESUME: case CL_MSG_PEEK:
    return 2;
  default: return 3;
  }
}

/* Two local states field by field. */
static int states_equal(const cl_local_state_t *x, const cl_local_state_t *y) {
  uint32_t i;
  if (x->snapshot_id != y->snapshot_id || strcmp(x->server, y->server) != 0 ||
      x->tokens != y->tokens || x->initial_tokens != y->initial_tokens ||
      x->nrecorded != y->nrecorded || x->nsent != y->nsent ||
      x->nrecv != y->nrecv)
    return 0;
  for (i = 0; i < x->nrecorded; i++)
    if (strcmp(x->recorded[i].src, y->recorded[i].src) != 0 ||
        x->recorded[i].seq != y->recorded[i].seq ||
        x->recorded[i].count != y->recorded[i].count ||
        x->recorded[i].n != y->recorded[i].n)
      return 0;
  for (i = 0; i < x->nsent; i++)
    if (strcmp(x->sent[i].peer, y->sent[i].peer) != 0 ||
        x->sent[i].count != y->sent[i].count)
      return 0;
  for (i = 0; i < x->nrecv; i++)
    if (strcmp(x->recv[i].peer, y->recv[i].peer) != 0 ||
        x->recv[i].count != y->recv[i].count)
      return 0;
  return 1;
}

static void make_sample(int type, cl_msg_t *m) {
  memset(m, 0, sizeof *m);
  m->type = (uint8_t)type;
  m->req = 100 + (uint64_t)type;
  switch (type) {
  case CL_MSG_HELLO:
    m->req = 0;
    set_id(m->u.hello.from, "N1");
    set_id(m->u.hello.to, "server-2.b_c");
    m->u.hello.config_id = 0x0123456789abcdefULL;
    m->u.hello.incarnation = 0xfedcba9876543210ULL;
    m->u.hello.epoch = 3;
    break;
  case CL_MSG_TOKEN:
    m->req = 0;
    m->u.token.seq = 42;
    m->u.token.n = 7;
    break;
  case CL_MSG_MARKER:
    m->req = 0;
    m->u.marker.snapshot_id = 1000003;
    break;
  case CL_MSG_CLIENT:
    m->req = 0;
    set_id(m->u.client.name, "clsnap");
    break;
  case CL_MSG_WELCOME:
    m->req = 0;
    set_id(m->u.welcome.from, "N7");
    m->u.welcome.received = 1ULL << 40;
    break;
  case CL_MSG_ACK:
    m->req = 0;
    m->u.ack.received = 123456789;
    break;
  case CL_MSG_CHALLENGE: {
    int i;
    m->req = 0;
    for (i = 0; i < CL_AUTH_NONCE; i++)
      m->u.challenge.nonce[i] = (uint8_t)(i * 7 + 1);
    m->u.challenge.required = 1;
    break;
  }
  case CL_MSG_AUTH: {
    int i;
    m->req = 0;
    for (i = 0; i < CL_AUTH_NONCE; i++) {
      m->u.auth.nonce[i] = (uint8_t)(255 - i);
      m->u.auth.mac[i] = (uint8_t)(i * 13);
    }
    break;
  }
  case CL_MSG_AUTH_OK: {
    int i;
    m->req = 0;
    for (i = 0; i < CL_AUTH_MAC; i++)
      m->u.auth_ok.mac[i] = (uint8_t)(i ^ 0x5a);
    break;
  }
  case CL_MSG_CONFIGURE: {
    cl_configure_t *c = &m->u.configure;
    set_id(c->self, "N2");
    c->tokens = 100;
    c->rank = 1;
    c->nservers = 3;
    c->lockstep = 1;
    c->jitter_ms = 25;
    c->seed = 0xdeadbeefcafef00dULL;
    c->nout = 2;
    c->out = xcalloc(2, sizeof *c->out);
    set_id(c->out[0].id, "N1");
    strcpy(c->out[0].addr, "127.0.0.1:4001");
    set_id(c->out[1].id, "N3");
    strcpy(c->out[1].addr, "[::1]:4003");
    c->nin = 3;
    c->in = xcalloc(3, sizeof *c->in);
    set_id(c->in[0], "N1");
    set_id(c->in[1], "N3");
    set_id(c->in[2], "N4");
    c->config_id = 0xfedcba9876543210ULL;
    break;
  }
  case CL_MSG_SEND:
    set_id(m->u.send.dest, "N3");
    m->u.send.n = 12;
    break;
  case CL_MSG_SNAPSHOT:
    m->u.snapshot.has_id = 1;
    m->u.snapshot.snapshot_id = 17;
    break;
  case CL_MSG_COLLECT:
    m->u.collect.snapshot_id = 17;
    m->u.collect.release = 1;
    break;
  case CL_MSG_DELIVER:
    set_id(m->u.deliver.src, "N1");
    break;
  case CL_MSG_CIRCULATE:
    m->u.circulate.on = 1;
    break;
  case CL_MSG_WATCH:
    m->u.watch.first = 1000000;
    m->u.watch.count = 300;
    break;
  case CL_MSG_DROP:
    m->u.drop.snapshot_id = 1000007;
    m->u.drop.started = 1;
    break;
  case CL_MSG_FREEZE:
    m->u.freeze.epoch = 4;
    break;
  case CL_MSG_TRACE:
    m->u.trace.on = 1;
    m->u.trace.max_events = 1u << 20;
    break;
  case CL_MSG_TRACE_READ:
    m->u.trace_read.first = 4096;
    m->u.trace_read.max = 100;
    break;
  case CL_MSG_TRACE_R: {
    /* One of each kind, a recv recorded by two snapshots, a gap. */
    cl_trace_event_t *e;
    int k;
    m->u.trace_r.on = 1;
    m->u.trace_r.next = 5000;
    m->u.trace_r.nevents = 7;
    m->u.trace_r.events = e = xcalloc(7, sizeof *e);
    for (k = 0; k < 7; k++) {
      e[k].i = 4090u + (unsigned)k;
      e[k].ev = (uint8_t)(CL_TEV_SEND + k);
      e[k].tokens = 100 - k;
      e[k].t_us = 1234567890123ULL + (unsigned)k;
      if (k < 4)
        set_id(e[k].peer, k % 2 ? "N1" : "N3");
      if (k >= 2 && k < 6)
        e[k].snap = 1000000u + (unsigned)k;
    }
    e[0].seq = e[1].seq = 9;
    e[0].n = e[1].n = 3;
    e[1].nrecorded = 2;
    e[1].recorded = xcalloc(2, sizeof *e[1].recorded);
    e[1].recorded[0] = 7;
    e[1].recorded[1] = 1000003;
    e[6].n = 904; /* dropped: the count */
    break;
  }
  case CL_MSG_RESTORE: {
    /* The STATE sample's local state, to restore. */
    cl_msg_t st;
    make_sample(CL_MSG_STATE, &st);
    m->u.restore.epoch = 4;
    m->u.restore.paused = 1;
    m->u.restore.state = st.u.state;
    break;
  }
  case CL_MSG_LOCAL_STATE:
    /* The STATE sample's local state, as a notification (no req). */
    make_sample(CL_MSG_STATE, m);
    m->type = CL_MSG_LOCAL_STATE;
    m->req = 0;
    break;
  case CL_MSG_OK:
    m->u.ok.snapshot_id = 17;
    m->u.ok.nsent = 2;
    m->u.ok.sent = xcalloc(2, sizeof *m->u.ok.sent);
    set_id(m->u.ok.sent[0].dest, "N1");
    m->u.ok.sent[0].kind = CL_MSG_TOKEN;
    m->u.ok.sent[0].value = 5;
    m->u.ok.sent[0].seq = 3;
    set_id(m->u.ok.sent[1].dest, "N3");
    m->u.ok.sent[1].kind = CL_MSG_MARKER;
    m->u.ok.sent[1].value = 17;
    m->u.ok.sent[1].seq = 0;
    m->u.ok.delivered_kind = CL_MSG_MARKER;
    m->u.ok.delivered_value = 17;
    break;
  case CL_MSG_ERROR:
    m->u.error.code = CL_ENOTOKENS;
    strcpy(m->u.error.text, "N1 has 3 tokens, cannot send 5 to N2");
    break;
  case CL_MSG_STATE: {
    cl_local_state_t *s = &m->u.state;
    s->snapshot_id = 17;
    set_id(s->server, "N2");
    s->tokens = 90;
    s->initial_tokens = 100;
    s->nrecorded = 3;
    s->recorded = xcalloc(3, sizeof *s->recorded);
    set_id(s->recorded[0].src, "N1");
    s->recorded[0].seq = 4;
    s->recorded[0].count = 1;
    s->recorded[0].n = 2;
    set_id(s->recorded[1].src, "N3");
    s->recorded[1].seq = 1;
    s->recorded[1].count = 1000000;
    s->recorded[1].n = 8;
    set_id(s->recorded[2].src, "N1");
    s->recorded[2].seq = 5;
    s->recorded[2].count = 3;
    s->recorded[2].n = 1;
    s->nsent = 2;
    s->sent = xcalloc(2, sizeof *s->sent);
    set_id(s->sent[0].peer, "N1");
    s->sent[0].count = 3;
    set_id(s->sent[1].peer, "N3");
    s->sent[1].count = 0;
    s->nrecv = 2;
    s->recv = xcalloc(2, sizeof *s->recv);
    set_id(s->recv[0].peer, "N1");
    s->recv[0].count = 5;
    set_id(s->recv[1].peer, "N3");
    s->recv[1].count = 1;
    break;
  }
  case CL_MSG_STATUS_R: {
    cl_status_t *s = &m->u.status;
    set_id(s->self, "N2");
    s->tokens = 90;
    s->initial_tokens = 100;
    s->lockstep = 0;
    s->configured = 1;
    s->nout = 2;
    s->out = xcalloc(2, sizeof *s->out);
    set_id(s->out[0].peer, "N1");
    s->out[0].sent = 3;
    s->out[0].connected = 1;
    s->out[0].queued_bytes = 128;
    set_id(s->out[1].peer, "N3");
    s->nin = 1;
    s->in = xcalloc(1, sizeof *s->in);
    set_id(s->in[0].peer, "N1");
    s->in[0].received = 5;
    s->in[0].connected = 1;
    s->in[0].held = 2;
    s->nactive = 2;
    s->active = xcalloc(2, sizeof *s->active);
    s->active[0] = 17;
    s->active[1] = UINT64_MAX;
    s->ndone = 3;
    s->done = xcalloc(3, sizeof *s->done);
    s->done[0] = 1;
    s->done[1] = 2;
    s->done[2] = 3;
    s->epoch = 4;
    s->frozen = 1;
    s->paused = 1;
    s->discarded = 12;
    s->restored_id = 1000003;
    break;
  }
  case CL_MSG_COMPLETE:
    m->req = 0;
    m->u.complete.snapshot_id = 17;
    set_id(m->u.complete.server, "N2");
    break;
  case CL_MSG_NOTICE:
    m->req = 0;
    set_id(m->u.notice.peer, "N3");
    strcpy(m->u.notice.text, "lost channel N3->N2: connection reset");
    break;
  default: /* CONNECT, STATUS, SHUTDOWN: req only */
    break;
  }
}

#define EQ(f) (a->f == b->f)
#define EQS(f) (strcmp(a->f, b->f) == 0)

/* Field-by-field equality of two messages of the same type. */
static int msg_eq(const cl_msg_t *a, const cl_msg_t *b) {
  uint32_t i;
  if (!EQ(type) || !EQ(req))
    return 0;
  switch (a->type) {
  case CL_MSG_HELLO:
    return EQS(u.hello.from) && EQS(u.hello.to) && EQ(u.hello.config_id) &&
           EQ(u.hello.incarnation) && EQ(u.hello.epoch);
  case CL_MSG_TOKEN: return EQ(u.token.seq) && EQ(u.token.n);
  case CL_MSG_MARKER: return EQ(u.marker.snapshot_id);
  case CL_MSG_CLIENT: return EQS(u.client.name);
  case CL_MSG_WELCOME:
    return EQS(u.welcome.from) && EQ(u.welcome.received);
  case CL_MSG_ACK: return EQ(u.ack.received);
  case CL_MSG_CHALLENGE:
    return memcmp(a->u.challenge.nonce, b->u.challenge.nonce,
                  CL_AUTH_NONCE) == 0 && EQ(u.challenge.required);
  case CL_MSG_AUTH:
    return memcmp(&a->u.auth, &b->u.auth, sizeof a->u.auth) == 0;
  case CL_MSG_AUTH_OK:
    return memcmp(a->u.auth_ok.mac, b->u.auth_ok.mac, CL_AUTH_MAC) == 0;
  case CL_MSG_CONFIGURE:
    if (!EQS(u.configure.self) || !EQ(u.configure.tokens) ||
        !EQ(u.configure.rank) || !EQ(u.configure.nservers) ||
        !EQ(u.configure.lockstep) || !EQ(u.configure.jitter_ms) ||
        !EQ(u.configure.seed) || !EQ(u.configure.nout) ||
        !EQ(u.configure.nin) || !EQ(u.configure.config_id))
      return 0;
    for (i = 0; i < a->u.configure.nout; i++)
      if (!EQS(u.configure.out[i].id) || !EQS(u.configure.out[i].addr))
        return 0;
    for (i = 0; i < a->u.configure.nin; i++)
      if (!EQS(u.configure.in[i]))
        return 0;
    return 1;
  case CL_MSG_CONNECT: case CL_MSG_STATUS: case CL_MSG_SHUTDOWN:
  case CL_MSG_NEXT_ID: case CL_MSG_RESUME: case CL_MSG_PEEK:
    return 1;
  case CL_MSG_FREEZE: return EQ(u.freeze.epoch);
  case CL_MSG_TRACE: return EQ(u.trace.on) && EQ(u.trace.max_events);
  case CL_MSG_TRACE_READ:
    return EQ(u.trace_read.first) && EQ(u.trace_read.max);
  case CL_MSG_TRACE_R:
    if (!EQ(u.trace_r.on) || !EQ(u.trace_r.next) || !EQ(u.trace_r.nevents))
      return 0;
    for (i = 0; i < a->u.trace_r.nevents; i++) {
      const cl_trace_event_t *x = &a->u.trace_r.events[i],
                             *y = &b->u.trace_r.events[i];
      if (x->i != y->i || x->ev != y->ev || strcmp(x->peer, y->peer) != 0 ||
          x->seq != y->seq || x->n != y->n || x->snap != y->snap ||
          x->tokens != y->tokens || x->t_us != y->t_us ||
          x->nrecorded != y->nrecorded ||
          (x->nrecorded && memcmp(x->recorded, y->recorded,
                                  x->nrecorded * sizeof *x->recorded) != 0))
        return 0;
    }
    return 1;
  case CL_MSG_RESTORE:
    return EQ(u.restore.epoch) && EQ(u.restore.paused) &&
           states_equal(&a->u.restore.state, &b->u.restore.state);
  case CL_MSG_SEND: return EQS(u.send.dest) && EQ(u.send.n);
  case CL_MSG_SNAPSHOT:
    return EQ(u.snapshot.has_id) && EQ(u.snapshot.snapshot_id);
  case CL_MSG_COLLECT:
    return EQ(u.collect.snapshot_id) && EQ(u.collect.release);
  case CL_MSG_DELIVER: return EQS(u.deliver.src);
  case CL_MSG_CIRCULATE: return EQ(u.circulate.on);
  case CL_MSG_WATCH: return EQ(u.watch.first) && EQ(u.watch.count);
  case CL_MSG_DROP: return EQ(u.drop.snapshot_id) && EQ(u.drop.started);
  case CL_MSG_OK:
    if (!EQ(u.ok.snapshot_id) || !EQ(u.ok.nsent) ||
        !EQ(u.ok.delivered_kind) || !EQ(u.ok.delivered_value))
      return 0;
    for (i = 0; i < a->u.ok.nsent; i++)
      if (!EQS(u.ok.sent[i].dest) || !EQ(u.ok.sent[i].kind) ||
          !EQ(u.ok.sent[i].value) || !EQ(u.ok.sent[i].seq))
        return 0;
    return 1;
  case CL_MSG_ERROR: return EQ(u.error.code) && EQS(u.error.text);
  case CL_MSG_STATE:
  case CL_MSG_LOCAL_STATE:
    return states_equal(&a->u.state, &b->u.state);
  case CL_MSG_STATUS_R:
    if (!EQS(u.status.self) || !EQ(u.status.tokens) ||
        !EQ(u.status.initial_tokens) || !EQ(u.status.lockstep) ||
        !EQ(u.status.configured) || !EQ(u.status.nout) || !EQ(u.status.nin) ||
        !EQ(u.status.nactive) || !EQ(u.status.ndone) ||
        !EQ(u.status.config_id) || !EQ(u.status.epoch) ||
        !EQ(u.status.frozen) || !EQ(u.status.paused) ||
        !EQ(u.status.discarded) || !EQ(u.status.restored_id))
      return 0;
    for (i = 0; i < a->u.status.nout; i++)
      if (!EQS(u.status.out[i].peer) || !EQ(u.status.out[i].sent) ||
          !EQ(u.status.out[i].connected) || !EQ(u.status.out[i].queued_bytes))
        return 0;
    for (i = 0; i < a->u.status.nin; i++)
      if (!EQS(u.status.in[i].peer) || !EQ(u.status.in[i].received) ||
          !EQ(u.status.in[i].connected) || !EQ(u.status.in[i].held))
        return 0;
    for (i = 0; i < a->u.status.nactive; i++)
      if (!EQ(u.status.active[i]))
        return 0;
    for (i = 0; i < a->u.status.ndone; i++)
      if (!EQ(u.status.done[i]))
        return 0;
    return 1;
  case CL_MSG_COMPLETE:
    return EQ(u.complete.snapshot_id) && EQS(u.complete.server);
  case CL_MSG_NOTICE: return EQS(u.notice.peer) && EQS(u.notice.text);
  default: return 0;
  }
}

/* Encode, decode, compare; returns 1 when the copy equals the original. */
static int roundtrip(const cl_msg_t *in, cl_msg_t *out) {
  msgpack_sbuffer sb;
  int rc, ok;
  msgpack_sbuffer_init(&sb);
  rc = cl_wire_encode(in, &sb);
  CHECK_EQ_INT(rc, 0);
  rc = decode_buf(sb.data, sb.size, 0, out);
  CHECK_EQ_INT(rc, 1);
  ok = rc == 1 && msg_eq(in, out);
  msgpack_sbuffer_destroy(&sb);
  return ok;
}

/* ------------------------------------------------------------------ */
/* Round trips                                                         */

static void test_roundtrip_all(void) {
  size_t i;
  for (i = 0; i < NTYPES; i++) {
    cl_msg_t in, out;
    make_sample(all_types[i], &in);
    if (!roundtrip(&in, &out))
      fprintf(stderr, "  round trip of %s differs\n",
              cl_msg_type_name(all_types[i]));
    CHECK(msg_eq(&in, &out));
    cl_msg_free(&in);
    cl_msg_free(&out);
    CHECK(is_zero(&in) && is_zero(&out));
  }
}

/* Spot checks of decoded values against what the samples were built with,
 * so the comparator above is not the only judge. */
static void test_roundtrip_values(void) {
  cl_msg_t in, out;

  make_sample(CL_MSG_CONFIGURE, &in);
  CHECK(roundtrip(&in, &out));
  CHECK_EQ_INT(out.req, 111);
  CHECK_EQ_STR(out.u.configure.self, "N2");
  CHECK_EQ_INT(out.u.configure.nout, 2);
  CHECK_EQ_STR(out.u.configure.out[1].id, "N3");
  CHECK_EQ_STR(out.u.configure.out[1].addr, "[::1]:4003");
  CHECK_EQ_INT(out.u.configure.nin, 3);
  CHECK_EQ_STR(out.u.configure.in[2], "N4");
  CHECK(out.u.configure.seed == 0xdeadbeefcafef00dULL);
  CHECK_EQ_INT(out.u.configure.lockstep, 1);
  cl_msg_free(&in);
  cl_msg_free(&out);

  make_sample(CL_MSG_STATE, &in);
  CHECK(roundtrip(&in, &out));
  CHECK_EQ_INT(out.u.state.nrecorded, 3);
  CHECK_EQ_STR(out.u.state.recorded[1].src, "N3");
  CHECK_EQ_INT(out.u.state.recorded[1].seq, 1);
  CHECK_EQ_INT(out.u.state.recorded[1].count, 1000000);
  CHECK_EQ_INT(out.u.state.recorded[1].n, 8);
  CHECK_EQ_INT(out.u.state.recv[0].count, 5);
  CHECK_EQ_INT(out.u.state.tokens, 90);
  cl_msg_free(&in);
  cl_msg_free(&out);

  make_sample(CL_MSG_STATUS_R, &in);
  CHECK(roundtrip(&in, &out));
  CHECK_EQ_INT(out.u.status.nin, 1);
  CHECK_EQ_INT(out.u.status.in[0].held, 2);
  CHECK(out.u.status.active[1] == UINT64_MAX);
  CHECK_EQ_INT(out.u.status.ndone, 3);
  CHECK_EQ_INT(out.u.status.done[2], 3);
  CHECK_EQ_INT(out.u.status.out[1].connected, 0);
  cl_msg_free(&in);
  cl_msg_free(&out);

  make_sample(CL_MSG_OK, &in);
  CHECK(roundtrip(&in, &out));
  CHECK_EQ_INT(out.u.ok.sent[0].kind, CL_MSG_TOKEN);
  CHECK_EQ_INT(out.u.ok.sent[0].seq, 3);
  CHECK_EQ_INT(out.u.ok.sent[1].kind, CL_MSG_MARKER);
  CHECK_EQ_INT(out.u.ok.delivered_value, 17);
  cl_msg_free(&in);
  cl_msg_free(&out);

  make_sample(CL_MSG_ERROR, &in);
  CHECK(roundtrip(&in, &out));
  CHECK_EQ_INT(out.u.error.code, CL_ENOTOKENS);
  CHECK_EQ_STR(out.u.error.text, "N1 has 3 tokens, cannot send 5 to N2");
  cl_msg_free(&in);
  cl_msg_free(&out);

  /* SNAPSHOT: nil means "daemon picks"; id 0 is a real id, not nil. */
  make_sample(CL_MSG_SNAPSHOT, &in);
  in.u.snapshot.has_id = 0;
  in.u.snapshot.snapshot_id = 0;
  CHECK(roundtrip(&in, &out));
  CHECK_EQ_INT(out.u.snapshot.has_id, 0);
  cl_msg_free(&out);
  in.u.snapshot.has_id = 1;
  CHECK(roundtrip(&in, &out));
  CHECK_EQ_INT(out.u.snapshot.has_id, 1);
  CHECK_EQ_INT(out.u.snapshot.snapshot_id, 0);
  cl_msg_free(&out);
  in.u.snapshot.snapshot_id = UINT64_MAX;
  CHECK(roundtrip(&in, &out));
  CHECK(out.u.snapshot.snapshot_id == UINT64_MAX);
  cl_msg_free(&out);

  /* Empty lists everywhere, and a full-length text and id. */
  memset(&in, 0, sizeof in);
  in.type = CL_MSG_STATUS_R;
  set_id(in.u.status.self,
         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.");
  CHECK_EQ_INT(strlen(in.u.status.self), CL_ID_MAX);
  CHECK(roundtrip(&in, &out));
  CHECK(out.u.status.out == NULL && out.u.status.active == NULL);
  cl_msg_free(&out);

  memset(&in, 0, sizeof in);
  in.type = CL_MSG_NOTICE;
  set_id(in.u.notice.peer, "x");
  memset(in.u.notice.text, 'q', CL_TEXT_SIZE - 1);
  CHECK(roundtrip(&in, &out));
  CHECK_EQ_INT(strlen(out.u.notice.text), CL_TEXT_SIZE - 1);
  cl_msg_free(&out);

  /* Exactly CL_WIRE_MAX_ITEMS elements is allowed (with a cap that holds
   * them: each takes at least one byte). */
  memset(&in, 0, sizeof in);
  in.type = CL_MSG_STATUS_R;
  set_id(in.u.status.self, "N1");
  in.u.status.ndone = CL_WIRE_MAX_ITEMS;
  in.u.status.done = xcalloc(CL_WIRE_MAX_ITEMS, sizeof(uint64_t));
  in.u.status.done[CL_WIRE_MAX_ITEMS - 1] = 99;
  {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    CHECK_EQ_INT(cl_wire_encode(&in, &sb), 0);
    CHECK(sb.size > CL_WIRE_MAX_ITEMS);
    CHECK_EQ_INT(decode_buf(sb.data, sb.size, sb.size, &out), 1);
    CHECK(msg_eq(&in, &out));
    CHECK_EQ_INT(out.u.status.ndone, CL_WIRE_MAX_ITEMS);
    if (out.u.status.ndone == CL_WIRE_MAX_ITEMS)
      CHECK_EQ_INT(out.u.status.done[CL_WIRE_MAX_ITEMS - 1], 99);
    /* The default cap cannot hold it. */
    cl_msg_free(&out);
    CHECK_EQ_INT(decode_buf(sb.data, sb.size, 0, &out), CL_ETOOBIG);
    msgpack_sbuffer_destroy(&sb);
  }
  cl_msg_free(&in);
  cl_msg_free(&out);
}

/* Text longer than CL_TEXT_SIZE - 1 is cut, never overflowing, and never in
 * the middle of a UTF-8 sequence. */
static void test_text_truncation(void) {
  msgpack_sbuffer sb;
  cl_msg_t m;
  char big[400];
  msgpack_sbuffer_init(&sb);

  memset(big, 'z', sizeof big);
  build(&sb, "A i s S", 3, CL_MSG_NOTICE, "N3", big, (int)sizeof big);
  CHECK_EQ_INT(decode_buf(sb.data, sb.size, 0, &m), 1);
  CHECK_EQ_INT(strlen(m.u.notice.text), CL_TEXT_SIZE - 1);
  CHECK_EQ_INT(m.u.notice.text[0], 'z');
  cl_msg_free(&m);
  msgpack_sbuffer_clear(&sb);

  /* "é" (c3 a9) straddling the cut at byte 255: both bytes go. */
  memset(big, 'a', sizeof big);
  big[254] = (char)0xc3;
  big[255] = (char)0xa9;
  build(&sb, "A i i i S", 4, CL_MSG_ERROR, 1, -1, big, 300);
  CHECK_EQ_INT(decode_buf(sb.data, sb.size, 0, &m), 1);
  CHECK_EQ_INT(strlen(m.u.error.text), 254);
  CHECK_EQ_INT(m.u.error.code, -1);
  cl_msg_free(&m);
  msgpack_sbuffer_clear(&sb);

  /* The same character ending exactly at byte 255 is kept whole. */
  big[253] = (char)0xc3;
  big[254] = (char)0xa9;
  big[255] = 'a';
  build(&sb, "A i i i S", 4, CL_MSG_ERROR, 1, -1, big, 300);
  CHECK_EQ_INT(decode_buf(sb.data, sb.size, 0, &m), 1);
  CHECK_EQ_INT(strlen(m.u.error.text), 255);
  CHECK_EQ_INT((unsigned char)m.u.error.text[254], 0xa9);
  cl_msg_free(&m);
  msgpack_sbuffer_destroy(&sb);
}

/* Encoding-side behaviour: exact bytes of the hot frames, refusals leave the
 * buffer as it was. */
static void test_encode(void) {
  static const unsigned char token[] = {0x93, 0x02, 0x07, 0x05};
  static const unsigned char marker[] = {0x92, 0x03, 0xcd, 0x01, 0x2c};
  static const unsigned char hello[] = {0x96, 0x01, 0xa1, 'a', 0xa1,
                                        'b',  0x00, 0x2a, 0x00};
  msgpack_sbuffer sb;
  cl_msg_t m;
  size_t before;

  msgpack_sbuffer_init(&sb);
  CHECK_EQ_INT(cl_wire_encode_token(&sb, 7, 5), 0);
  CHECK(sb.size == sizeof token && memcmp(sb.data, token, sizeof token) == 0);
  msgpack_sbuffer_clear(&sb);
  CHECK_EQ_INT(cl_wire_encode_marker(&sb, 300), 0);
  CHECK(sb.size == sizeof marker &&
        memcmp(sb.data, marker, sizeof marker) == 0);
  msgpack_sbuffer_clear(&sb);

  memset(&m, 0, sizeof m);
  m.type = CL_MSG_HELLO;
  set_id(m.u.hello.from, "a");
  set_id(m.u.hello.to, "b");
  m.u.hello.incarnation = 42;
  CHECK_EQ_INT(cl_wire_encode(&m, &sb), 0);
  CHECK(sb.size == sizeof hello && memcmp(sb.data, hello, sizeof hello) == 0);

  /* The same as the generic encoder would produce for a TOKEN. */
  msgpack_sbuffer_clear(&sb);
  make_sample(CL_MSG_TOKEN, &m);
  CHECK_EQ_INT(cl_wire_encode(&m, &sb), 0);
  before = sb.size;
  CHECK_EQ_INT(cl_wire_encode_token(&sb, 42, 7), 0);
  CHECK(sb.size == 2 * before &&
        memcmp(sb.data, sb.data + before, before) == 0);

  CHECK_EQ_INT(cl_wire_encode_token(&sb, 0, 5), CL_EINVAL);
  CHECK_EQ_INT(cl_wire_encode_token(&sb, 1, 0), CL_EINVAL);
  CHECK_EQ_INT(cl_wire_encode_token(&sb, 1, -3), CL_EINVAL);
  CHECK(sb.size == 2 * before);

  /* Refusals: the buffer keeps exactly what it had. */
  before = sb.size;
  memset(&m, 0, sizeof m);
  m.type = CL_MSG_HELLO;
  set_id(m.u.hello.from, "good");
  set_id(m.u.hello.to, "bad id");
  CHECK_EQ_INT(cl_wire_encode(&m, &sb), CL_EINVAL);
  CHECK(sb.size == before);
  set_id(m.u.hello.to, "");
  CHECK_EQ_INT(cl_wire_encode(&m, &sb), CL_EINVAL);
  memset(m.u.hello.to, 'x', CL_ID_SIZE); /* no NUL inside the field */
  CHECK_EQ_INT(cl_wire_encode(&m, &sb), CL_EINVAL);
  m.type = 99;
  CHECK_EQ_INT(cl_wire_encode(&m, &sb), CL_EINVAL);
  m.type = 0;
  CHECK_EQ_INT(cl_wire_encode(&m, &sb), CL_EINVAL);
  CHECK(sb.size == before);

  /* A bad id deep in a list: half a frame was written, then taken back. */
  make_sample(CL_MSG_STATUS_R, &m);
  set_id(m.u.status.in[0].peer, "N/1");
  CHECK_EQ_INT(cl_wire_encode(&m, &sb), CL_EINVAL);
  CHECK(sb.size == before);
  cl_msg_free(&m);

  make_sample(CL_MSG_CONFIGURE, &m);
  strcpy(m.u.configure.out[1].addr, "no-port");
  CHECK_EQ_INT(cl_wire_encode(&m, &sb), CL_EINVAL);
  strcpy(m.u.configure.out[1].addr, "[::1]:4003");
  m.u.configure.rank = 3;
  CHECK_EQ_INT(cl_wire_encode(&m, &sb), CL_EINVAL);
  m.u.configure.rank = 0;
  m.u.configure.nservers = 0;
  CHECK_EQ_INT(cl_wire_encode(&m, &sb), CL_EINVAL);
  m.u.configure.nservers = 1;
  m.u.configure.tokens = -1;
  CHECK_EQ_INT(cl_wire_encode(&m, &sb), CL_EINVAL);
  m.u.configure.tokens = 0;
  CHECK(sb.size == before);
  CHECK_EQ_INT(cl_wire_encode(&m, &sb), 0);
  CHECK(sb.size > before);
  cl_msg_free(&m);
  sb.size = before;

  make_sample(CL_MSG_OK, &m);
  m.u.ok.sent[1].kind = 1;
  CHECK_EQ_INT(cl_wire_encode(&m, &sb), CL_EINVAL);
  m.u.ok.sent[1].kind = CL_MSG_MARKER;
  m.u.ok.sent[0].seq = 0; /* a TOKEN's seq starts at 1 */
  CHECK_EQ_INT(cl_wire_encode(&m, &sb), CL_EINVAL);
  m.u.ok.sent[0].seq = 3;
  m.u.ok.nsent = CL_WIRE_MAX_ITEMS + 1;
  CHECK_EQ_INT(cl_wire_encode(&m, &sb), CL_EINVAL);
  m.u.ok.nsent = 2;
  CHECK(sb.size == before);
  cl_msg_free(&m);

  make_sample(CL_MSG_SEND, &m);
  m.u.send.n = 0;
  CHECK_EQ_INT(cl_wire_encode(&m, &sb), CL_EINVAL);
  CHECK(sb.size == before);

  /* Only what was there before the refusals decodes: two TOKENs. */
  {
    cl_wire_decoder_t *d = cl_wire_decoder_new(0);
    cl_msg_t t;
    CHECK_EQ_INT(cl_wire_decoder_feed(d, sb.data, sb.size), 0);
    CHECK_EQ_INT(cl_wire_next(d, &t), 1);
    CHECK_EQ_INT(t.type, CL_MSG_TOKEN);
    CHECK_EQ_INT(cl_wire_next(d, &t), 1);
    CHECK_EQ_INT(t.u.token.seq, 42);
    CHECK_EQ_INT(cl_wire_next(d, &t), 0);
    cl_wire_decoder_free(d);
  }
  msgpack_sbuffer_destroy(&sb);
}

static void test_names(void) {
  CHECK_EQ_STR(cl_msg_type_name(CL_MSG_TOKEN), "TOKEN");
  CHECK_EQ_STR(cl_msg_type_name(CL_MSG_STATUS_R), "STATUS_R");
  CHECK_EQ_STR(cl_msg_type_name(CL_MSG_NOTICE), "NOTICE");
  CHECK_EQ_STR(cl_msg_type_name(CL_MSG_CONFIGURE), "CONFIGURE");
  CHECK_EQ_STR(cl_msg_type_name(99), "UNKNOWN");
  CHECK_EQ_STR(cl_msg_type_name(-1), "UNKNOWN");
  {
    cl_msg_t m;
    memset(&m, 0, sizeof m);
    cl_msg_free(&m);
    cl_msg_free(&m);
    cl_msg_free(NULL);
    CHECK(is_zero(&m));
  }
}

/* ------------------------------------------------------------------ */
/* Streams                                                             */

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;
static uint32_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 16);
}

#define STREAM_FRAMES 1000

/* Feed the whole stream in chunks (max_chunk 1: byte by byte; 0: random
 * 1..200 bytes, through reserve/consumed or feed alternately), draining
 * after each chunk; check every frame against the originals. */
static void stream_check(const msgpack_sbuffer *sb, const cl_msg_t *want,
                         size_t nwant, size_t max_chunk, size_t cap) {
  cl_wire_decoder_t *d = cl_wire_decoder_new(cap);
  size_t off = 0, got = 0, bad = 0;
  int rc = 0;
  while (off < sb->size && rc >= 0) {
    size_t k = max_chunk ? max_chunk : 1 + rng() % 200;
    cl_msg_t m;
    if (k > sb->size - off)
      k = sb->size - off;
    if (max_chunk == 0 && (rng() & 1)) {
      rc = cl_wire_decoder_feed(d, sb->data + off, k);
    } else {
      char *buf;
      size_t avail;
      rc = cl_wire_decoder_reserve(d, k, &buf, &avail);
      if (rc == 0) {
        CHECK(avail >= k);
        memcpy(buf, sb->data + off, k);
        cl_wire_decoder_consumed(d, k);
      }
    }
    if (rc < 0)
      break;
    off += k;
    CHECK(cl_wire_decoder_buffered(d) <= cap);
    while ((rc = cl_wire_next(d, &m)) == 1) {
      if (got >= nwant || !msg_eq(&want[got], &m))
        bad++;
      got++;
      cl_msg_free(&m);
    }
  }
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(off, sb->size);
  CHECK_EQ_INT(got, nwant);
  CHECK_EQ_INT(bad, 0);
  CHECK_EQ_INT(cl_wire_decoder_buffered(d), 0);
  cl_wire_decoder_free(d);
}

static void test_streams(void) {
  static cl_msg_t msgs[STREAM_FRAMES];
  msgpack_sbuffer sb;
  size_t i;
  msgpack_sbuffer_init(&sb);
  for (i = 0; i < STREAM_FRAMES; i++) {
    make_sample(all_types[i % NTYPES], &msgs[i]);
    /* Vary the contents so a frame mix-up cannot go unnoticed. */
    msgs[i].req = i * 7919u;
    if (msgs[i].type == CL_MSG_TOKEN) {
      msgs[i].u.token.seq = i + 1;
      msgs[i].u.token.n = (int64_t)(i * 1000003u) + 1;
    } else if (msgs[i].type == CL_MSG_SNAPSHOT && i % 2) {
      msgs[i].u.snapshot.has_id = 0;
      msgs[i].u.snapshot.snapshot_id = 0;
    }
    if (msgs[i].type == CL_MSG_HELLO || msgs[i].type == CL_MSG_TOKEN ||
        msgs[i].type == CL_MSG_MARKER || msgs[i].type == CL_MSG_CLIENT ||
        msgs[i].type == CL_MSG_WELCOME || msgs[i].type == CL_MSG_ACK ||
        msgs[i].type == CL_MSG_CHALLENGE || msgs[i].type == CL_MSG_AUTH ||
        msgs[i].type == CL_MSG_AUTH_OK ||
        msgs[i].type == CL_MSG_COMPLETE || msgs[i].type == CL_MSG_NOTICE ||
        msgs[i].type == CL_MSG_LOCAL_STATE)
      msgs[i].req = 0; /* these frames carry no req */
    CHECK_EQ_INT(cl_wire_encode(&msgs[i], &sb), 0);
  }
  CHECK(sb.size > 20000); /* many read chunks of the tests */

  stream_check(&sb, msgs, STREAM_FRAMES, 1, CL_WIRE_DEFAULT_CAP);
  rng_state = 12345;
  stream_check(&sb, msgs, STREAM_FRAMES, 0, CL_WIRE_DEFAULT_CAP);
  rng_state = 987654321;
  stream_check(&sb, msgs, STREAM_FRAMES, 0, CL_WIRE_DEFAULT_CAP);
  /* A small cap: every single frame fits, the stream as a whole does not;
   * draining after each chunk keeps the decoder under it. */
  rng_state = 42;
  stream_check(&sb, msgs, STREAM_FRAMES, 0, 600);
  stream_check(&sb, msgs, STREAM_FRAMES, 1, 600);
  for (i = 0; i < STREAM_FRAMES; i++)
    cl_msg_free(&msgs[i]);
  msgpack_sbuffer_destroy(&sb);
}

/* A frame cut short and then nothing more: 0 every time, nothing leaks. */
static void test_truncated(void) {
  size_t t, k;
  for (t = 0; t < NTYPES; t++) {
    msgpack_sbuffer sb;
    cl_msg_t src;
    make_sample(all_types[t], &src);
    msgpack_sbuffer_init(&sb);
    CHECK_EQ_INT(cl_wire_encode(&src, &sb), 0);
    for (k = 0; k < sb.size; k++) {
      cl_wire_decoder_t *d = cl_wire_decoder_new(0);
      cl_msg_t m;
      CHECK_EQ_INT(cl_wire_decoder_feed(d, sb.data, k), 0);
      CHECK_EQ_INT(cl_wire_next(d, &m), 0);
      CHECK(is_zero(&m));
      CHECK_EQ_INT(cl_wire_next(d, &m), 0);
      CHECK_EQ_INT(cl_wire_decoder_buffered(d), k);
      cl_wire_decoder_free(d);
    }
    cl_msg_free(&src);
    msgpack_sbuffer_destroy(&sb);
  }
}

/* ------------------------------------------------------------------ */
/* Malformed input                                                     */

static void test_shape(void) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);

  build(&sb, "i", 5);                 EXPECT(&sb, CL_EPROTO); /* not array */
  build(&sb, "s", "hello");           EXPECT(&sb, CL_EPROTO);
  build(&sb, "n", 0);                 EXPECT(&sb, CL_EPROTO);
  build(&sb, "M", 0);                 EXPECT(&sb, CL_EPROTO);
  build(&sb, "M i i", 1, 1, 2);       EXPECT(&sb, CL_EPROTO);
  build(&sb, "A", 0);                 EXPECT(&sb, CL_EPROTO); /* [] */
  build(&sb, "A s s s", 3, "1", "a", "b"); EXPECT(&sb, CL_EPROTO);
  build(&sb, "A n i", 2, 3);          EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i i i", 3, -1, 1, 1); EXPECT(&sb, CL_EPROTO); /* negative */
  build(&sb, "A d i i", 3, 2.0, 1, 1); EXPECT(&sb, CL_EPROTO); /* float */
  build(&sb, "A T s s", 3, "a", "b"); EXPECT(&sb, CL_EPROTO); /* bool */
  build(&sb, "A A i i", 2, 1, 1, 3);  EXPECT(&sb, CL_EPROTO);
  /* Well-formed arrays with unknown type numbers. */
  build(&sb, "A i i i", 3, 99, 1, 2); EXPECT(&sb, CL_ETYPE);
  build(&sb, "A i", 1, 0);            EXPECT(&sb, CL_ETYPE);
  build(&sb, "A i i", 2, 20, 1);      EXPECT(&sb, CL_ETYPE); /* was PUSH */
  build(&sb, "A i i", 2, 35, 1);      EXPECT(&sb, CL_ETYPE);
  build(&sb, "A i i", 2, 9, 1);       EXPECT(&sb, CL_ETYPE);
  build(&sb, "A U", 1, 0x100000002ULL); EXPECT(&sb, CL_ETYPE);
  build(&sb, "A i M", 2, 50, 0);      EXPECT(&sb, CL_ETYPE);
  msgpack_sbuffer_destroy(&sb);
}

/* Re-pack a valid frame of every type with one element too few and one too
 * many, and with each field replaced by a value of the wrong msgpack type. */
static void test_counts_and_field_types(void) {
  size_t t;
  for (t = 0; t < NTYPES; t++) {
    msgpack_sbuffer sb, bad;
    msgpack_packer pk;
    msgpack_unpacked up;
    cl_msg_t src;
    size_t off = 0;
    uint32_t n, i, j;
    const msgpack_object *f;
    make_sample(all_types[t], &src);
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_init(&bad);
    msgpack_packer_init(&pk, &bad, msgpack_sbuffer_write);
    CHECK_EQ_INT(cl_wire_encode(&src, &sb), 0);
    msgpack_unpacked_init(&up);
    CHECK(msgpack_unpack_next(&up, sb.data, sb.size, &off) ==
          MSGPACK_UNPACK_SUCCESS);
    CHECK(up.data.type == MSGPACK_OBJECT_ARRAY);
    n = up.data.via.array.size;
    f = up.data.via.array.ptr;
    CHECK_EQ_INT(n, layout_len(all_types[t]));

    /* One too few. */
    msgpack_pack_array(&pk, n - 1);
    for (i = 0; i + 1 < n; i++)
      msgpack_pack_object(&pk, f[i]);
    EXPECT(&bad, CL_EPROTO);
    /* One too many (a harmless-looking 0 at the end). */
    msgpack_pack_array(&pk, n + 1);
    for (i = 0; i < n; i++)
      msgpack_pack_object(&pk, f[i]);
    msgpack_pack_int(&pk, 0);
    EXPECT(&bad, CL_EPROTO);
    /* Each field with a wrong type: ints and nil become str, str and arrays
     * become ints; then each field as a float and as a map. */
    for (i = 1; i < n; i++) {
      int variant;
      for (variant = 0; variant < 3; variant++) {
        msgpack_pack_array(&pk, n);
        for (j = 0; j < n; j++) {
          if (j != i) {
            msgpack_pack_object(&pk, f[j]);
          } else if (variant == 1) {
            msgpack_pack_double(&pk, 1.0);
          } else if (variant == 2) {
            msgpack_pack_map(&pk, 0);
          } else if (f[j].type == MSGPACK_OBJECT_STR) {
            msgpack_pack_int(&pk, 1);
          } else {
            msgpack_pack_str(&pk, 1);
            msgpack_pack_str_body(&pk, "1", 1);
          }
        }
        EXPECT(&bad, CL_EPROTO);
      }
    }
    /* Sanity: the untouched frame re-packed still decodes. */
    msgpack_pack_object(&pk, up.data);
    EXPECT(&bad, 1);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&bad);
    cl_msg_free(&src);
  }
}

static void test_values(void) {
  static const char long_id[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-";
  msgpack_sbuffer sb;
  cl_msg_t m;
  msgpack_sbuffer_init(&sb);

  /* Ids. */
  build(&sb, "A i s s", 3, 1, "N1", "a b");   EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i s s", 3, 1, "N1", "a/b");   EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i s s", 3, 1, "N1", "\xc3\xa9"); EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i s s", 3, 1, "", "N2");      EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i s S", 3, 1, "N1", "a\0b", 3); EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i s s", 3, 1, "N1", long_id); EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i i s", 3, 17, 1, long_id);   EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i S", 2, 10, long_id, 64);    EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i S", 2, 10, long_id, 63);    EXPECT(&sb, 1); /* 63 fits */
  build(&sb, "A i s", 2, 10, "clsnap run");   EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i i s", 3, 17, 1, "N\n1");    EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i i s", 3, 40, 5, "a:b");     EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i s s", 3, 41, "", "text");   EXPECT(&sb, CL_EPROTO);

  /* Numbers out of range. */
  build(&sb, "A i i i", 3, 2, 1, 0);          EXPECT(&sb, CL_EPROTO); /* n 0 */
  build(&sb, "A i i i", 3, 2, 1, -5);         EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i i i", 3, 2, 0, 5);          EXPECT(&sb, CL_EPROTO); /* seq */
  build(&sb, "A i U i", 3, 2, 18446744073709551615ULL, 5); EXPECT(&sb, 1);
  build(&sb, "A i i U", 3, 2, 1, 9223372036854775808ULL);
  EXPECT(&sb, CL_EPROTO); /* n past INT64_MAX */
  build(&sb, "A i i s i", 4, 13, 1, "N2", 0);  EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i i s i", 4, 13, 1, "N2", -1); EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i i", 2, 3, -1);               EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i i", 2, 12, -1);              EXPECT(&sb, CL_EPROTO); /* req */
  build(&sb, "A i i i i", 4, 31, 1, 1 << 30, 0); EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i i L s", 4, 31, 1, 4294967296LL, "x"); EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i i i s", 4, 31, 1, CL_ENOENT, ""); EXPECT(&sb, 1);

  /* Flags: 0/1 or msgpack booleans, nothing else. */
  build(&sb, "A i i i T", 4, 15, 1, 17);
  CHECK_EQ_INT(decode_buf(sb.data, sb.size, 0, &m), 1);
  CHECK_EQ_INT(m.u.collect.release, 1);
  msgpack_sbuffer_clear(&sb);
  build(&sb, "A i i F", 3, 19, 1);
  CHECK_EQ_INT(decode_buf(sb.data, sb.size, 0, &m), 1);
  CHECK_EQ_INT(m.u.circulate.on, 0);
  msgpack_sbuffer_clear(&sb);
  build(&sb, "A i i i i", 4, 15, 1, 17, 2);  EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i i i", 3, 19, 1, -1);       EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i i n", 3, 19, 1);           EXPECT(&sb, CL_EPROTO);
  /* Nil only where documented. */
  build(&sb, "A i i n", 3, 14, 1);           EXPECT(&sb, 1);
  build(&sb, "A i n", 2, 3);                 EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i i n i", 4, 15, 1, 0);      EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i n s", 3, 1, "b");          EXPECT(&sb, CL_EPROTO);

  /* Non-negative values packed as signed ints are still plain ints. */
  {
    static const unsigned char tok[] = {0x93, 0xd0, 0x02, 0xd1, 0x00, 0x09,
                                        0xd3, 0, 0, 0, 0, 0, 0, 0, 0x05};
    CHECK_EQ_INT(decode_buf((const char *)tok, sizeof tok, 0, &m), 1);
    CHECK_EQ_INT(m.type, CL_MSG_TOKEN);
    CHECK_EQ_INT(m.u.token.seq, 9);
    CHECK_EQ_INT(m.u.token.n, 5);
  }

  /* CONFIGURE: rank must be below nservers, addresses must parse. */
  build(&sb, "A i i s i i i i i i A A i", 12, 11, 1, "N1", 5, 0, 1, 0, 0, 0, 0,
        0, 0);
  EXPECT(&sb, 1);
  build(&sb, "A i i s i i i i i i A A i", 12, 11, 1, "N1", 5, 1, 1, 0, 0, 0, 0,
        0, 0);
  EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i i s i i i i i i A A i", 12, 11, 1, "N1", 5, 0, 0, 0, 0, 0, 0,
        0, 0);
  EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i i s i i i i i i A A i", 12, 11, 1, "N1", -5, 0, 1, 0, 0, 0, 0,
        0, 0);
  EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i i s i i i i i i A A i", 12, 11, 1, "N1", 5, 0, 1, 0,
        -1, 0, 0, 0, 0);
  EXPECT(&sb, CL_EPROTO); /* jitter */
  build(&sb, "A i i s i i i i i i A A s s A i", 12, 11, 1, "N1", 5, 0, 1, 0, 0,
        0, 1, 2, "N2", "localhost", 0, 0);
  EXPECT(&sb, CL_EPROTO); /* no port */
  build(&sb, "A i i s i i i i i i A A s s A i", 12, 11, 1, "N1", 5, 0, 1, 0, 0,
        0, 1, 2, "N2", "h:99999", 0, 0);
  EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i i s i i i i i i A A s i A i", 12, 11, 1, "N1", 5, 0, 1, 0, 0,
        0, 1, 2, "N2", 4000, 0, 0);
  EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i i s i i i i i i A A s A i", 12, 11, 1, "N1", 5, 0, 1, 0, 0,
        0, 1, 1, "N2", 0, 0);
  EXPECT(&sb, CL_EPROTO); /* pair of one */
  build(&sb, "A i i s i i i i i i A A i i", 12, 11, 1, "N1", 5, 0, 1, 0, 0,
        0, 0, 1, 7, 0);
  EXPECT(&sb, CL_EPROTO); /* inbound id as int */
  {
    char addr[80];
    memset(addr, '1', sizeof addr);
    memcpy(addr + 70, ":1", 3);
    build(&sb, "A i i s i i i i i i A A s s A i", 12, 11, 1, "N1", 5, 0, 1, 0,
          0, 0, 1, 2, "N2", addr, 0, 0);
    EXPECT(&sb, CL_EPROTO); /* address longer than CL_ADDR_SIZE */
  }
  build(&sb, "A i i s i i i i i i A A s s A s i", 12, 11, 1, "N1", 5, 0, 1, 0,
        0, 0, 1, 2, "N2", "10.0.0.2:7000", 1, "N2", 0);
  CHECK_EQ_INT(decode_buf(sb.data, sb.size, 0, &m), 1);
  CHECK_EQ_STR(m.u.configure.out[0].addr, "10.0.0.2:7000");
  CHECK_EQ_STR(m.u.configure.in[0], "N2");
  cl_msg_free(&m);
  msgpack_sbuffer_clear(&sb);

  /* OK: sent entries and delivered kind. */
  build(&sb, "A i i i A A s i i i i i", 6, 30, 1, 0, 1, 4, "N2", 1, 5, 1, 0, 0);
  EXPECT(&sb, CL_EPROTO); /* kind 1 */
  build(&sb, "A i i i A A s i i i i i", 6, 30, 1, 0, 1, 4, "N2", 2, 5, 0, 0, 0);
  EXPECT(&sb, CL_EPROTO); /* TOKEN seq 0 */
  build(&sb, "A i i i A A s i i i i i", 6, 30, 1, 0, 1, 4, "N2", 2, 0, 1, 0, 0);
  EXPECT(&sb, CL_EPROTO); /* TOKEN n 0 */
  build(&sb, "A i i i A A s i i i i", 6, 30, 1, 0, 1, 3, "N2", 2, 5, 0, 0);
  EXPECT(&sb, CL_EPROTO); /* entry of three */
  build(&sb, "A i i i A i i", 6, 30, 1, 0, 0, 1, 0);
  EXPECT(&sb, CL_EPROTO); /* delivered kind 1 */
  build(&sb, "A i i i A i i", 6, 30, 1, 0, 0, 4, 0);
  EXPECT(&sb, CL_EPROTO);
  build(&sb, "A i i i A i i", 6, 30, 1, 0, 0, 2, 5);
  EXPECT(&sb, 1);
  build(&sb, "A i i i i i i", 6, 30, 1, 0, 0, 0, 0);
  EXPECT(&sb, CL_EPROTO); /* list as int */

  /* STATE and STATUS_R nested shapes. */
  build(&sb, "A i i A i s i i A A A", 3, 32, 1, 7, 5, "N1", 1, 1, 0, 0, 0);
  EXPECT(&sb, 1);
  build(&sb, "A i i A i s i i A A", 3, 32, 1, 6, 5, "N1", 1, 1, 0, 0);
  EXPECT(&sb, CL_EPROTO); /* state of six */
  build(&sb, "A i i A i s i i A A s i i i A A", 3, 32, 1, 7, 5, "N1", 1, 1, 1,
        4, "N2", 1, 2, 3, 0, 0);
  EXPECT(&sb, 1); /* a run: seqs 1, 2 of 3 tokens each */
  build(&sb, "A i i A i s i i A A s i i A A", 3, 32, 1, 7, 5, "N1", 1, 1, 1, 3,
        "N2", 1, 4, 0, 0);
  EXPECT(&sb, CL_EPROTO); /* recorded entry of three (no count) */
  build(&sb, "A i i A i s i i A A s i i i A A", 3, 32, 1, 7, 5, "N1", 1, 1, 1,
        4, "N2", 1, 1, 0, 0, 0);
  EXPECT(&sb, CL_EPROTO); /* recorded n 0 */
  build(&sb, "A i i A i s i i A A s i i i A A", 3, 32, 1, 7, 5, "N1", 1, 1, 1,
        4, "N2", 0, 1, 4, 0, 0);
  EXPECT(&sb, CL_EPROTO); /* recorded seq 0 */
  build(&sb, "A i i A i s i i A A s i i i A A", 3, 32, 1, 7, 5, "N1", 1, 1, 1,
        4, "N2", 1, 0, 4, 0, 0);
  EXPECT(&sb, CL_EPROTO); /* recorded count 0 */
  build(&sb, "A i i A i s i i A A s U U i A A", 3, 32, 1, 7, 5, "N1", 1, 1, 1,
        4, "N2", (unsigned long long)UINT64_MAX, 2ULL, 4, 0, 0);
  EXPECT(&sb, CL_EPROTO); /* run past the last seq */
  build(&sb, "A i i A i s i i A A s U U i A A", 3, 32, 1, 7, 5, "N1", 1, 1, 1,
        4, "N2", (unsigned long long)UINT64_MAX, 1ULL, 4, 0, 0);
  EXPECT(&sb, 1); /* a run of one: the last seq */
  build(&sb, "A i i A i s i i A A s U U i A A", 3, 32, 1, 7, 5, "N1", 1, 1, 1,
        4, "N2", 1ULL, (unsigned long long)UINT64_MAX, 4, 0, 0);
  EXPECT(&sb, 1); /* every seq from 1 */
  build(&sb, "A i i A i s i i A A A A s i", 3, 32, 1, 7, 5, "N1", -1, 1, 0, 0,
        1, 2, "N2", 3);
  EXPECT(&sb, CL_EPROTO); /* tokens < 0 */
  build(&sb, "A i i A i s i i A A A A s i", 3, 32, 1, 7, 5, "N1", 1, 1, 0, 0,
        1, 2, "N2", -3);
  EXPECT(&sb, CL_EPROTO); /* recv count < 0 */
  build(&sb, "A i i A s i i i i A A A A i i i i i i", 3, 33, 1, 15, "N1", 0, 0, 1, 1,
        0, 0, 0, 0, 5, 0, 0, 0, 0, 0);
  EXPECT(&sb, 1);
  build(&sb, "A i i A s i i i i A A A A", 3, 33, 1, 9, "N1", 0, 0, 1, 1, 0, 0,
        0, 0);
  EXPECT(&sb, CL_EPROTO); /* no config id */
  build(&sb, "A i i A s i i i i A A s i i i A A A i i i i i i", 3, 33, 1, 15, "N1", 0,
        0, 1, 1, 1, 4, "N2", 0, 2, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0);
  EXPECT(&sb, CL_EPROTO); /* connected 2 */
  build(&sb, "A i i A s i i i i A A A i A i i i i i i", 3, 33, 1, 15, "N1", 0, 0, 1, 1,
        0, 0, 1, -4, 0, 5, 0, 0, 0, 0, 0);
  EXPECT(&sb, CL_EPROTO); /* negative snapshot id */
  build(&sb, "A i i A s i i i i A A A s A", 3, 33, 1, 9, "N1", 0, 0, 1, 1, 0,
        0, 1, "x", 0);
  EXPECT(&sb, CL_EPROTO);
  msgpack_sbuffer_destroy(&sb);
}

/* Decode whatever comes out of random bytes (mutate = 0) or of a sample
 * frame with 1-3 random bytes replaced (mutate = 1). */
static void garbage_run(int mutate) {
  msgpack_sbuffer sb;
  cl_wire_decoder_t *d = cl_wire_decoder_new(0);
  cl_msg_t m;
  size_t j;
  int rc;
  msgpack_sbuffer_init(&sb);
  memset(&m, 0, sizeof m);
  if (mutate) {
    make_sample(all_types[rng() % NTYPES], &m);
    cl_wire_encode(&m, &sb);
    cl_msg_free(&m);
    for (j = 1 + rng() % 3; j > 0; j--)
      sb.data[rng() % sb.size] = (char)rng();
  } else {
    size_t len = 1 + rng() % 64;
    for (j = 0; j < len; j++) {
      char c = (char)rng();
      msgpack_sbuffer_write(&sb, &c, 1);
    }
  }
  rc = cl_wire_decoder_feed(d, sb.data, sb.size);
  while (rc == 0 && (rc = cl_wire_next(d, &m)) == 1)
    cl_msg_free(&m), rc = 0;
  CHECK(rc == 0 || rc == CL_EPROTO || rc == CL_ETYPE || rc == CL_ETOOBIG);
  if (rc < 0)
    CHECK(is_zero(&m));
  cl_wire_decoder_free(d);
  msgpack_sbuffer_destroy(&sb);
}

/* Sizes and counts: the cap, CL_WIRE_MAX_ITEMS, huge declared lengths,
 * nesting, bytes that are never msgpack. */
static void test_limits(void) {
  msgpack_sbuffer sb;
  cl_wire_decoder_t *d;
  cl_msg_t m;
  char *buf;
  size_t avail, i;
  int rc;
  msgpack_sbuffer_init(&sb);

  /* 0xc1 is never valid msgpack; garbage after a good frame still lets the
   * good frame through first. */
  {
    static const char c1[] = {(char)0xc1};
    static const char junk[] = {(char)0x93, 0x02, 0x01, 0x05, (char)0xc1,
                                0x00};
    static const char nest[] = {(char)0x91, (char)0xc1};
    CHECK_EQ_INT(decode_buf(c1, 1, 0, &m), CL_EPROTO);
    CHECK_EQ_INT(decode_buf(nest, 2, 0, &m), CL_EPROTO);
    d = cl_wire_decoder_new(0);
    CHECK_EQ_INT(cl_wire_decoder_feed(d, junk, sizeof junk), 0);
    CHECK_EQ_INT(cl_wire_next(d, &m), 1);
    CHECK_EQ_INT(m.u.token.n, 5);
    CHECK_EQ_INT(cl_wire_next(d, &m), CL_EPROTO);
    CHECK(is_zero(&m));
    CHECK_EQ_INT(cl_wire_next(d, &m), CL_EPROTO);
    CHECK_EQ_INT(cl_wire_decoder_feed(d, junk, 4), CL_EPROTO);
    CHECK_EQ_INT(cl_wire_decoder_reserve(d, 10, &buf, &avail), CL_EPROTO);
    cl_wire_decoder_free(d);
  }
  /* Random garbage, and valid frames with a few bytes changed, never crash
   * and end in data, a wait or one of the protocol errors. */
  rng_state = 777;
  for (i = 0; i < 3000; i++)
    garbage_run(i % 2);
  /* Array counts over CL_WIRE_MAX_ITEMS are refused from the header alone,
   * before anything is allocated for them. */
  {
    static const unsigned char over[] = {0x96, 0x1e, 0x01, 0x00,
                                         0xdd, 0x00, 0x10, 0x00, 0x01};
    static const unsigned char huge_arr[] = {0x91, 0xdd, 0xff, 0xff, 0xff,
                                             0xff};
    static const unsigned char huge_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char huge_str[] = {0x94, 0x1f, 0x01, 0xff,
                                             0xdb, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char huge_bin[] = {0xc6, 0x7f, 0xff, 0xff, 0xff};
    static const unsigned char huge_ext[] = {0xc9, 0x7f, 0xff, 0xff, 0xff, 1};
    CHECK_EQ_INT(decode_buf((const char *)over, sizeof over, 0, &m),
                 CL_EPROTO);
    CHECK_EQ_INT(decode_buf((const char *)huge_arr, sizeof huge_arr, 0, &m),
                 CL_EPROTO);
    CHECK_EQ_INT(decode_buf((const char *)huge_map, sizeof huge_map, 0, &m),
                 CL_EPROTO);
    CHECK_EQ_INT(decode_buf((const char *)huge_str, sizeof huge_str, 0, &m),
                 CL_ETOOBIG);
    CHECK_EQ_INT(decode_buf((const char *)huge_bin, sizeof huge_bin, 0, &m),
                 CL_ETOOBIG);
    CHECK_EQ_INT(decode_buf((const char *)huge_ext, sizeof huge_ext, 0, &m),
                 CL_ETOOBIG);
    /* Only part of the header so far: wait, then refuse once it is whole. */
    d = cl_wire_decoder_new(0);
    CHECK_EQ_INT(cl_wire_decoder_feed(d, (const char *)huge_arr, 3), 0);
    CHECK_EQ_INT(cl_wire_next(d, &m), 0);
    CHECK_EQ_INT(cl_wire_decoder_feed(d, (const char *)huge_arr + 3, 3), 0);
    CHECK_EQ_INT(cl_wire_next(d, &m), CL_EPROTO);
    cl_wire_decoder_free(d);
  }
  /* A whole frame with CL_WIRE_MAX_ITEMS + 1 ids in a list. */
  build(&sb, "A i i A s i i i i A A A", 3, 33, 1, 9, "N1", 0, 0, 1, 1, 0, 0,
        CL_WIRE_MAX_ITEMS + 1);
  for (i = 0; i <= CL_WIRE_MAX_ITEMS; i++)
    build(&sb, "i", 1);
  build(&sb, "A", 0);
  EXPECT_CAP(&sb, 4 * CL_WIRE_MAX_ITEMS, CL_EPROTO);
  /* A count that cannot fit under a small cap is refused at once. */
  {
    static const unsigned char many[] = {0x93, 0x21, 0x01, 0xdc, 0x04, 0x00};
    CHECK_EQ_INT(decode_buf((const char *)many, sizeof many, 1000, &m),
                 CL_ETOOBIG);
  }
  /* Nesting deeper than any message needs. */
  for (i = 0; i < 20; i++)
    build(&sb, "A", 1);
  build(&sb, "i", 1);
  EXPECT(&sb, CL_EPROTO);

  /* The cap: a frame of exactly cap bytes passes, one byte more does not. */
  {
    char text[200];
    size_t flen;
    memset(text, 't', sizeof text);
    build(&sb, "A i s S", 3, CL_MSG_NOTICE, "N1", text, (int)sizeof text);
    flen = sb.size; /* 1 + 1 + 3 + 2 + 200 */
    CHECK_EQ_INT(flen, 207);
    CHECK_EQ_INT(decode_buf(sb.data, flen, flen, &m), 1);
    CHECK_EQ_INT(decode_buf(sb.data, flen, flen - 1, &m), CL_ETOOBIG);
    /* Fed through reserve in read-sized chunks: the str header alone
     * already tells the frame will not fit. */
    d = cl_wire_decoder_new(100);
    rc = cl_wire_decoder_reserve(d, 65536, &buf, &avail);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(avail, 100); /* clamped to the cap */
    memcpy(buf, sb.data, 100);
    cl_wire_decoder_consumed(d, 100);
    CHECK_EQ_INT(cl_wire_next(d, &m), CL_ETOOBIG);
    CHECK(is_zero(&m));
    cl_wire_decoder_free(d);
    msgpack_sbuffer_clear(&sb);
  }
  /* Many small elements (no single large string): the decoder refuses
   * to buffer past the cap, through reserve or in next. */
  {
    size_t fed = 0, cap = 120;
    build(&sb, "A i i A s i i i i A A A", 3, 33, 1, 9, "N1", 0, 0, 1, 1, 0, 0,
          30);
    for (i = 0; i < 30; i++)
      build(&sb, "U", 0x1000000000ULL); /* 9 bytes each */
    build(&sb, "A", 0);
    CHECK(sb.size > 2 * cap);
    d = cl_wire_decoder_new(cap);
    rc = 0;
    while (fed < sb.size) {
      rc = cl_wire_decoder_reserve(d, 7, &buf, &avail);
      if (rc < 0)
        break;
      CHECK(avail >= 1 && avail <= cap);
      if (avail > 7)
        avail = 7;
      if (avail > sb.size - fed)
        avail = sb.size - fed;
      memcpy(buf, sb.data + fed, avail);
      cl_wire_decoder_consumed(d, avail);
      fed += avail;
      CHECK(cl_wire_decoder_buffered(d) <= cap);
      rc = cl_wire_next(d, &m);
      if (rc != 0)
        break;
    }
    CHECK_EQ_INT(rc, CL_ETOOBIG);
    CHECK(fed <= cap);
    cl_wire_decoder_free(d);
    /* The same frame all at once is refused by feed without taking it. */
    d = cl_wire_decoder_new(cap);
    CHECK_EQ_INT(cl_wire_decoder_feed(d, sb.data, sb.size), CL_ETOOBIG);
    CHECK_EQ_INT(cl_wire_decoder_buffered(d), 0);
    cl_wire_decoder_free(d);
    msgpack_sbuffer_clear(&sb);
  }
  /* reserve: full want when there is room, what is left under the cap near
   * it, CL_ETOOBIG at it. */
  {
    static const char part[] = {(char)0x93, 0x02};
    d = cl_wire_decoder_new(10);
    CHECK_EQ_INT(cl_wire_decoder_reserve(d, 4, &buf, &avail), 0);
    CHECK(avail >= 4 && avail <= 10);
    CHECK_EQ_INT(cl_wire_decoder_feed(d, part, 2), 0);
    CHECK_EQ_INT(cl_wire_decoder_buffered(d), 2);
    CHECK_EQ_INT(cl_wire_next(d, &m), 0);
    CHECK_EQ_INT(cl_wire_decoder_buffered(d), 2);
    CHECK_EQ_INT(cl_wire_decoder_reserve(d, 100, &buf, &avail), 0);
    CHECK_EQ_INT(avail, 8);
    buf[0] = 0x01;
    buf[1] = 0x05;
    cl_wire_decoder_consumed(d, 2);
    CHECK_EQ_INT(cl_wire_next(d, &m), 1);
    CHECK_EQ_INT(m.u.token.n, 5);
    CHECK_EQ_INT(cl_wire_decoder_buffered(d), 0);
    cl_wire_decoder_free(d);
  }
  msgpack_sbuffer_destroy(&sb);
}

/* A long-running connection: many frames through a small cap and small
 * reads, the buffered count returning to zero between frames. */
static void test_long_stream(void) {
  cl_wire_decoder_t *d = cl_wire_decoder_new(256);
  msgpack_sbuffer sb;
  uint64_t seq, got = 0, sum = 0, want = 0;
  msgpack_sbuffer_init(&sb);
  for (seq = 1; seq <= 200000; seq++) {
    cl_msg_t m;
    int rc;
    msgpack_sbuffer_clear(&sb);
    if (seq % 10 == 0)
      cl_wire_encode_marker(&sb, seq);
    else
      cl_wire_encode_token(&sb, seq, (int64_t)(seq % 5) + 1);
    if (seq % 10)
      want += seq % 5 + 1;
    if (cl_wire_decoder_feed(d, sb.data, sb.size) != 0)
      break;
    while ((rc = cl_wire_next(d, &m)) == 1) {
      got++;
      if (m.type == CL_MSG_TOKEN)
        sum += (uint64_t)m.u.token.n;
    }
    if (rc != 0)
      break;
  }
  CHECK_EQ_INT(got, 200000);
  CHECK(sum == want);
  CHECK_EQ_INT(cl_wire_decoder_buffered(d), 0);
  msgpack_sbuffer_destroy(&sb);
  cl_wire_decoder_free(d);
}

/* Small frames, one frame of exactly cap bytes, small frames again, read
 * in chunks: all decode, and the input buffer never grows past about the
 * cap (msgpack-c alone would double it to twice the cap). */
static void test_buffer_bound(size_t cap, size_t chunk) {
  cl_wire_decoder_t *d = cl_wire_decoder_new(cap);
  msgpack_sbuffer sb;
  size_t i, off = 0, most = 0, body, hdr;
  char *text;
  int got = 0, big = 0, rc = 0;
  msgpack_sbuffer_init(&sb);
  for (i = 1; i <= 50; i++)
    cl_wire_encode_token(&sb, i, 1);
  /* [41, "N1", str]: 1 + 1 + 3 bytes, then the str header and body. */
  hdr = cap - 5 - 3 <= 0xffff ? 3 : 5;
  body = cap - 5 - hdr;
  text = xcalloc(body, 1);
  memset(text, 'y', body);
  i = sb.size;
  build(&sb, "A i s S", 3, CL_MSG_NOTICE, "N1", text, (int)body);
  CHECK_EQ_INT(sb.size - i, cap);
  for (i = 51; i <= 100; i++)
    cl_wire_encode_token(&sb, i, 1);
  while (off < sb.size) {
    char *buf;
    size_t avail, k;
    cl_msg_t m;
    rc = cl_wire_decoder_reserve(d, chunk, &buf, &avail);
    if (rc < 0)
      break;
    k = avail < chunk ? avail : chunk;
    if (k > sb.size - off)
      k = sb.size - off;
    memcpy(buf, sb.data + off, k);
    cl_wire_decoder_consumed(d, k);
    off += k;
    if (cl_wire_decoder_allocated(d) > most)
      most = cl_wire_decoder_allocated(d);
    while ((rc = cl_wire_next(d, &m)) == 1) {
      got++;
      if (m.type == CL_MSG_NOTICE)
        big++;
      cl_msg_free(&m);
    }
    if (rc < 0)
      break;
  }
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(got, 101);
  CHECK_EQ_INT(big, 1);
  if (most > cap + 4096)
    fprintf(stderr, "  cap %zu: input buffer grew to %zu\n", cap, most);
  CHECK(most >= cap && most <= cap + 4096);
  free(text);
  msgpack_sbuffer_destroy(&sb);
  cl_wire_decoder_free(d);
}

/* Feed sb to d in reads of at most 4096 bytes (as the coordinator's client
 * does), then a cut: bytes [from, to) only. Decoded frames go to got[]. */
static int feed_range(cl_wire_decoder_t *d, const msgpack_sbuffer *sb,
                      size_t from, size_t to, cl_msg_t *got, int *ngot,
                      int max) {
  int rc = 0;
  while (from < to) {
    char *buf;
    size_t avail, k;
    cl_msg_t m;
    rc = cl_wire_decoder_reserve(d, 4096, &buf, &avail);
    if (rc < 0)
      return rc;
    k = avail < to - from ? avail : to - from;
    memcpy(buf, sb->data + from, k);
    cl_wire_decoder_consumed(d, k);
    from += k;
    while ((rc = cl_wire_next(d, &m)) == 1) {
      if (*ngot < max)
        got[(*ngot)++] = m;
      else
        cl_msg_free(&m);
    }
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* A read that ends inside a header's length field (array16/32 of a large
 * local state, str8 of a text), then a reserve that makes msgpack-c move or
 * rewind its buffer: msgpack_unpacker_next has already consumed the type
 * byte, so the scanner must not read it back from the buffer. It did, and
 * misread the refcount in front of the moved data as the header: the
 * coordinator saw "message exceeds the size cap", malformed messages, or
 * crashed reading before the buffer. */
static void test_split_header(void) {
  static const uint32_t counts[] = {100, 40000, 56700, 70000};
  size_t ci;
  for (ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
    uint32_t n = counts[ci], i;
    msgpack_sbuffer sb;
    cl_msg_t m;
    size_t hs, hn, cuts[6], ncuts = 0, c;
    char text[101];
    msgpack_sbuffer_init(&sb);
    memset(&m, 0, sizeof m);
    m.type = CL_MSG_STATE;
    m.req = 7;
    m.u.state.snapshot_id = 5;
    set_id(m.u.state.server, "N1");
    m.u.state.nrecorded = n;
    m.u.state.recorded = xcalloc(n, sizeof *m.u.state.recorded);
    for (i = 0; i < n; i++) {
      set_id(m.u.state.recorded[i].src, "N2");
      m.u.state.recorded[i].seq = i + 1;
      m.u.state.recorded[i].count = 1;
      m.u.state.recorded[i].n = 1;
    }
    CHECK_EQ_INT(cl_wire_encode(&m, &sb), 0);
    cl_msg_free(&m);
    /* [32, 7, [5, "N1", 0, 0, recorded...]]: the list header is at 10 */
    hs = 10;
    CHECK((unsigned char)sb.data[hs] == (n > 0xffff ? 0xdd : 0xdc));
    memset(text, 'x', 100);
    text[100] = '\0';
    hn = sb.size + 5; /* [41, "N1", text]: str8 header at 5 */
    build(&sb, "A i s s", 3, CL_MSG_NOTICE, "N1", text);
    CHECK((unsigned char)sb.data[hn] == 0xd9);
    for (c = 1; c < (n > 0xffff ? 5u : 3u); c++)
      cuts[ncuts++] = hs + c;
    cuts[ncuts++] = hn + 1;
    for (c = 0; c < ncuts; c++) {
      int move;
      for (move = 0; move <= 1; move++) {
        cl_wire_decoder_t *d = cl_wire_decoder_new(64u << 20);
        cl_msg_t got[2];
        int ngot = 0, k;
        memset(got, 0, sizeof got);
        CHECK_EQ_INT(feed_range(d, &sb, 0, cuts[c], got, &ngot, 2), 0);
        if (move) {
          char *buf;
          size_t avail;
          CHECK_EQ_INT(cl_wire_decoder_reserve(d, 1u << 22, &buf, &avail), 0);
          cl_wire_decoder_consumed(d, 0);
        }
        CHECK_EQ_INT(feed_range(d, &sb, cuts[c], sb.size, got, &ngot, 2), 0);
        CHECK_EQ_INT(ngot, 2);
        if (ngot == 2) {
          CHECK_EQ_INT(got[0].type, CL_MSG_STATE);
          CHECK_EQ_INT(got[0].u.state.nrecorded, n);
          if (got[0].u.state.nrecorded == n)
            CHECK_EQ_INT(got[0].u.state.recorded[n - 1].seq, n);
          CHECK_EQ_INT(got[1].type, CL_MSG_NOTICE);
          CHECK_EQ_STR(got[1].u.notice.text, text);
        }
        CHECK_EQ_INT(cl_wire_decoder_buffered(d), 0);
        for (k = 0; k < ngot; k++)
          cl_msg_free(&got[k]);
        cl_wire_decoder_free(d);
      }
    }
    msgpack_sbuffer_destroy(&sb);
  }
}

/* ------------------------------------------------------------------ */
/* The in-place scanner, stopped by a callback                         */

typedef struct scan_log {
  int stop_ones, stop_msg; /* which callback stops the scan */
  char seen[256];          /* "ones 1+2;token 7 n3;marker 9;" */
} scan_log_t;

static void scan_logf(scan_log_t *l, const char *fmt, ...) {
  size_t len = strlen(l->seen);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(l->seen + len, sizeof l->seen - len, fmt, ap);
  va_end(ap);
}

static int scan_ones(void *ctx, uint64_t first, uint64_t count) {
  scan_log_t *l = ctx;
  scan_logf(l, "ones %llu+%llu;", (unsigned long long)first,
            (unsigned long long)count);
  return l->stop_ones;
}

static int scan_msg(void *ctx, const cl_msg_t *m) {
  scan_log_t *l = ctx;
  if (m->type == CL_MSG_TOKEN)
    scan_logf(l, "token %llu n%lld;", (unsigned long long)m->u.token.seq,
              (long long)m->u.token.n);
  else
    scan_logf(l, "marker %llu;",
              (unsigned long long)m->u.marker.snapshot_id);
  return l->stop_msg;
}

/* A callback that stops the scan leaves every frame it has not been handed
 * unconsumed: the bytes returned are exactly those of what was delivered,
 * and feeding the rest delivers the rest. (Once, a one-token run stopped
 * while going out counted the next frame as consumed and lost it.) */
static void test_scan_stop(void) {
  static const cl_scan_ops_t ops = {scan_ones, scan_msg};
  msgpack_sbuffer sb;
  size_t one, two, three, used, rest;
  cl_scan_t s;
  scan_log_t l;
  int stopped;
  msgpack_sbuffer_init(&sb);
  CHECK_EQ_INT(cl_wire_encode_token(&sb, 1, 1), 0);
  one = sb.size;
  CHECK_EQ_INT(cl_wire_encode_token(&sb, 2, 1), 0);
  two = sb.size;
  CHECK_EQ_INT(cl_wire_encode_token(&sb, 7, 3), 0);
  three = sb.size;
  CHECK_EQ_INT(cl_wire_encode_marker(&sb, 9), 0);
  CHECK(one > 0 && two == 2 * one); /* [2, seq, 1]: as long as each other */

  /* The run 1..2 goes out when token 7 comes, and stops the scan there. */
  memset(&s, 0, sizeof s);
  memset(&l, 0, sizeof l);
  l.stop_ones = 1;
  used = cl_scan_feed(&s, sb.data, sb.size, &ops, &l, &stopped);
  CHECK_EQ_INT(stopped, 1);
  CHECK_EQ_INT((int)used, (int)two);
  CHECK_EQ_STR(l.seen, "ones 1+2;");
  l.stop_ones = 0;
  l.seen[0] = '\0';
  rest = cl_scan_feed(&s, sb.data + used, sb.size - used, &ops, &l, &stopped);
  CHECK_EQ_INT(stopped, 0);
  CHECK_EQ_INT((int)(used + rest), (int)sb.size);
  CHECK_EQ_STR(l.seen, "token 7 n3;marker 9;");

  /* A stop by the message itself: that message was delivered, so it is
   * consumed; the marker is not. */
  memset(&s, 0, sizeof s);
  memset(&l, 0, sizeof l);
  l.stop_msg = 1;
  used = cl_scan_feed(&s, sb.data, sb.size, &ops, &l, &stopped);
  CHECK_EQ_INT(stopped, 1);
  CHECK_EQ_INT((int)used, (int)three);
  CHECK_EQ_STR(l.seen, "ones 1+2;token 7 n3;");
  msgpack_sbuffer_destroy(&sb);
}

int main(void) {
  test_names();
  test_encode();
  test_roundtrip_all();
  test_roundtrip_values();
  test_text_truncation();
  test_streams();
  test_truncated();
  test_shape();
  test_counts_and_field_types();
  test_values();
  test_limits();
  test_long_stream();
  test_split_header();
  test_scan_stop();
  test_buffer_bound(CL_WIRE_DEFAULT_CAP, 65536);
  test_buffer_bound(CL_WIRE_DEFAULT_CAP, 1000);
  test_buffer_bound(5000, 1);
  test_buffer_bound(300000, 4096);
  return check_done("wire");
}
