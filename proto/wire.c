/* The clsnap wire codec: cl_msg_t <-> msgpack frames, and a bounded
 * streaming decoder. See wire.h for the field layouts; they are the protocol.
 *
 * Decoding happens in two passes over each byte. A small resumable scanner
 * walks the raw bytes first and rejects what msgpack-c would otherwise turn
 * into large allocations (an array header declaring 2^32 elements makes the
 * unpacker allocate 24 bytes per declared element up front), strings longer
 * than the cap, 0xc1 and deep nesting. Only bytes the scanner accepted reach
 * msgpack_unpacker_next, whose objects are then checked field by field and
 * copied out before the msgpack zone is released.
 */
#include "wire.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

/* Deepest nesting a valid message needs is 4 ([32, req, state, [[src, seq,
 * n]...]]); anything past this is not ours. */
#define WIRE_MAX_DEPTH 8
/* Largest unpacker buffer to start with. The unpacker only ever doubles its
 * buffer, so the start size is chosen as (cap + 64) / 2^k, rounded up: then
 * the doubling stops at about cap + 64 bytes instead of overshooting to
 * twice the cap. */
#define WIRE_INIT_BUFFER (64u * 1024u)

struct cl_wire_decoder {
  msgpack_unpacker u;
  size_t cap;
  int err; /* sticky: after an error every call returns it */
  /* Scanner state, in stream offsets (bytes since the decoder was made). */
  uint64_t fed;         /* bytes handed to the unpacker */
  uint64_t scanned;     /* bytes the scanner has accepted */
  uint64_t frame_start; /* where the frame being scanned began */
  uint64_t skip;        /* payload bytes of a str/bin/ext still to pass */
  uint32_t ready;       /* frames scanned, not yet taken from the unpacker */
  uint32_t depth;
  uint32_t left[WIRE_MAX_DEPTH]; /* elements still expected per level */
  /* A header that arrived in part, kept here (and counted in scanned)
   * rather than read back from the unpacker's buffer: msgpack_unpacker_next
   * consumes the type byte of a str/bin/ext/array/map header whose length
   * field is incomplete, and the next reserve may then move or rewind its
   * buffer without it. */
  unsigned char hdr[8];
  uint32_t nhdr;
};

/* ------------------------------------------------------------------ */
/* Names and freeing                                                   */

const char *cl_msg_type_name(int type) {
  switch (type) {
  case CL_MSG_HELLO: return "HELLO";
  case CL_MSG_TOKEN: return "TOKEN";
  case CL_MSG_MARKER: return "MARKER";
  case CL_MSG_WELCOME: return "WELCOME";
  case CL_MSG_ACK: return "ACK";
  case CL_MSG_CHALLENGE: return "CHALLENGE";
  case CL_MSG_AUTH: return "AUTH";
  case CL_MSG_AUTH_OK: return "AUTH_OK";
  case CL_MSG_CLIENT: return "CLIENT";
  case CL_MSG_CONFIGURE: return "CONFIGURE";
  case CL_MSG_CONNECT: return "CONNECT";
  case CL_MSG_SEND: return "SEND";
  case CL_MSG_SNAPSHOT: return "SNAPSHOT";
  case CL_MSG_COLLECT: return "COLLECT";
  case CL_MSG_STATUS: return "STATUS";
  case CL_MSG_DELIVER: return "DELIVER";
  case CL_MSG_SHUTDOWN: return "SHUTDOWN";
  case CL_MSG_CIRCULATE: return "CIRCULATE";
  case CL_MSG_WATCH: return "WATCH";
  case CL_MSG_NEXT_ID: return "NEXT_ID";
  case CL_MSG_DROP: return "DROP";
  case CL_MSG_FREEZE: return "FREEZE";
  case CL_MSG_RESTORE: return "RESTORE";
  case CL_MSG_RESUME: return "RESUME";
  case CL_MSG_PEEK: return "PEEK";
  case CL_MSG_TRACE: return "TRACE";
  case CL_MSG_TRACE_READ: return "TRACE_READ";
  case CL_MSG_TRACE_R: return "TRACE_R";
  case CL_MSG_OK: return "OK";
  case CL_MSG_ERROR: return "ERROR";
  case CL_MSG_STATE: return "STATE";
  case CL_MSG_STATUS_R: return "STATUS_R";
  case CL_MSG_COMPLETE: return "COMPLETE";
  case CL_MSG_NOTICE: return "NOTICE";
  case CL_MSG_LOCAL_STATE: return "LOCAL_STATE";
  default: return "UNKNOWN";
  }
}

/* Free the arrays a message owns (which ones depends on its type) and zero
 * the whole message. */
void cl_msg_free(cl_msg_t *m) {
  uint32_t i;
  if (m == NULL)
    return;
  switch (m->type) {
  case CL_MSG_CONFIGURE:
    free(m->u.configure.out);
    free(m->u.configure.in);
    break;
  case CL_MSG_OK:
    free(m->u.ok.sent);
    break;
  case CL_MSG_STATE:
  case CL_MSG_LOCAL_STATE:
    free(m->u.state.recorded);
    free(m->u.state.sent);
    free(m->u.state.recv);
    break;
  case CL_MSG_RESTORE:
    free(m->u.restore.state.recorded);
    free(m->u.restore.state.sent);
    free(m->u.restore.state.recv);
    break;
  case CL_MSG_TRACE_R:
    for (i = 0; i < m->u.trace_r.nevents && m->u.trace_r.events; i++)
      free(m->u.trace_r.events[i].recorded);
    free(m->u.trace_r.events);
    break;
  case CL_MSG_STATUS_R:
    free(m->u.status.out);
    free(m->u.status.in);
    free(m->u.status.active);
    free(m->u.status.done);
    break;
  default:
    break;
  }
  memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------ */
/* Frames                                                              */

/* Element count of each type's frame, type number included; 0: unknown. */
static uint32_t frame_len(uint64_t type) {
  switch (type) {
  case CL_MSG_HELLO: return 6;
  case CL_MSG_TOKEN: return 3;
  case CL_MSG_MARKER: return 2;
  case CL_MSG_WELCOME: return 3;
  case CL_MSG_ACK: return 2;
  case CL_MSG_CHALLENGE: return 3;
  case CL_MSG_AUTH: return 3;
  case CL_MSG_AUTH_OK: return 2;
  case CL_MSG_CLIENT: return 2;
  case CL_MSG_CONFIGURE: return 12;
  case CL_MSG_CONNECT: return 2;
  case CL_MSG_SEND: return 4;
  case CL_MSG_SNAPSHOT: return 3;
  case CL_MSG_COLLECT: return 4;
  case CL_MSG_STATUS: return 2;
  case CL_MSG_DELIVER: return 3;
  case CL_MSG_SHUTDOWN: return 2;
  case CL_MSG_CIRCULATE: return 3;
  case CL_MSG_WATCH: return 4;
  case CL_MSG_NEXT_ID: return 2;
  case CL_MSG_DROP: return 4;
  case CL_MSG_FREEZE: return 3;
  case CL_MSG_RESTORE: return 5;
  case CL_MSG_RESUME: return 2;
  case CL_MSG_PEEK: return 2;
  case CL_MSG_TRACE: return 4;
  case CL_MSG_TRACE_READ: return 4;
  case CL_MSG_OK: return 6;
  case CL_MSG_ERROR: return 4;
  case CL_MSG_STATE: return 3;
  case CL_MSG_STATUS_R: return 3;
  case CL_MSG_TRACE_R: return 5;
  case CL_MSG_COMPLETE: return 3;
  case CL_MSG_NOTICE: return 3;
  case CL_MSG_LOCAL_STATE: return 2;
  default: return 0;
  }
}

/* 1 for the types whose frame carries req right after the type: every
 * control request and reply. */
static int has_req(uint64_t type) {
  return type >= CL_MSG_CONFIGURE && type <= CL_MSG_TRACE_R;
}

/* ------------------------------------------------------------------ */
/* Encoding                                                            */

/* A packer that remembers its first failure, so the per-type encoders read
 * as straight lists of fields and check once at the end. */
typedef struct enc {
  msgpack_packer pk;
  int err;
} enc_t;

static void enc_fail(enc_t *e, int err) {
  if (e->err == 0)
    e->err = err;
}

static void enc_check(enc_t *e, int ok) {
  if (!ok)
    enc_fail(e, CL_EINVAL);
}

static void put_u64(enc_t *e, uint64_t v) {
  if (e->err == 0 && msgpack_pack_uint64(&e->pk, v) != 0)
    enc_fail(e, CL_ENOMEM);
}

static void put_i64(enc_t *e, int64_t v) {
  if (e->err == 0 && msgpack_pack_int64(&e->pk, v) != 0)
    enc_fail(e, CL_ENOMEM);
}

static void put_bool(enc_t *e, unsigned v) { put_u64(e, v ? 1 : 0); }

static void put_nil(enc_t *e) {
  if (e->err == 0 && msgpack_pack_nil(&e->pk) != 0)
    enc_fail(e, CL_ENOMEM);
}

static void put_array(enc_t *e, size_t n) {
  if (e->err == 0 && msgpack_pack_array(&e->pk, n) != 0)
    enc_fail(e, CL_ENOMEM);
}

static void put_bin(enc_t *e, const uint8_t *b, size_t len) {
  if (e->err != 0)
    return;
  if (msgpack_pack_bin(&e->pk, len) != 0 ||
      msgpack_pack_bin_body(&e->pk, b, len) != 0)
    enc_fail(e, CL_ENOMEM);
}

static void put_str(enc_t *e, const char *s, size_t len) {
  if (e->err != 0)
    return;
  if (msgpack_pack_str(&e->pk, len) != 0 ||
      msgpack_pack_str_body(&e->pk, s, len) != 0)
    enc_fail(e, CL_ENOMEM);
}

static void put_id(enc_t *e, const char *id) {
  if (!cl_id_valid(id)) {
    enc_fail(e, CL_EINVAL);
    return;
  }
  put_str(e, id, strlen(id));
}

/* Addresses are checked the way the decoder checks them, so whatever encodes
 * also decodes. */
static void put_addr(enc_t *e, const char *addr) {
  char host[CL_ADDR_SIZE];
  int port;
  size_t len = strnlen(addr, CL_ADDR_SIZE);
  if (len == 0 || len >= CL_ADDR_SIZE ||
      cl_addr_split(addr, host, &port) != 0) {
    enc_fail(e, CL_EINVAL);
    return;
  }
  put_str(e, addr, len);
}

static void put_text(enc_t *e, const char *text) {
  put_str(e, text, strnlen(text, CL_TEXT_SIZE - 1));
}

/* A list header; refuses counts the decoder would refuse. */
static void put_list(enc_t *e, uint32_t n, const void *items) {
  enc_check(e, n <= CL_WIRE_MAX_ITEMS && (n == 0 || items != NULL));
  put_array(e, n);
}

static void put_sent(enc_t *e, const cl_sent_t *s) {
  enc_check(e, s->kind == CL_MSG_TOKEN || s->kind == CL_MSG_MARKER);
  if (s->kind == CL_MSG_TOKEN)
    enc_check(e, s->seq >= 1 && s->value >= 1 && s->value <= INT64_MAX);
  put_array(e, 4);
  put_id(e, s->dest);
  put_u64(e, s->kind);
  put_u64(e, s->value);
  put_u64(e, s->seq);
}

static void put_chan_counts(enc_t *e, uint32_t n, const cl_chan_count_t *c) {
  uint32_t i;
  put_list(e, n, c);
  for (i = 0; i < n && e->err == 0; i++) {
    put_array(e, 2);
    put_id(e, c[i].peer);
    put_u64(e, c[i].count);
  }
}

static void put_local_state(enc_t *e, const cl_local_state_t *s) {
  uint32_t i;
  enc_check(e, s->tokens >= 0 && s->initial_tokens >= 0);
  put_array(e, 7);
  put_u64(e, s->snapshot_id);
  put_id(e, s->server);
  put_i64(e, s->tokens);
  put_i64(e, s->initial_tokens);
  put_list(e, s->nrecorded, s->recorded);
  for (i = 0; i < s->nrecorded && e->err == 0; i++) {
    const cl_recorded_t *r = &s->recorded[i];
    enc_check(e, r->seq >= 1 && r->count >= 1 &&
                     r->count - 1 <= UINT64_MAX - r->seq && r->n >= 1);
    put_array(e, 4);
    put_id(e, r->src);
    put_u64(e, r->seq);
    put_u64(e, r->count);
    put_i64(e, r->n);
  }
  put_chan_counts(e, s->nsent, s->sent);
  put_chan_counts(e, s->nrecv, s->recv);
}

static void put_u64_list(enc_t *e, uint32_t n, const uint64_t *v) {
  uint32_t i;
  put_list(e, n, v);
  for (i = 0; i < n && e->err == 0; i++)
    put_u64(e, v[i]);
}

static void put_trace_event(enc_t *e, const cl_trace_event_t *v) {
  enc_check(e, v->ev >= CL_TEV_SEND && v->ev <= CL_TEV_DROPPED &&
                   (v->peer[0] == '\0' || cl_id_valid(v->peer)));
  put_array(e, 9);
  put_u64(e, v->i);
  put_u64(e, v->ev);
  if (v->peer[0] == '\0')
    put_nil(e);
  else
    put_id(e, v->peer);
  put_u64(e, v->seq);
  put_i64(e, v->n);
  put_u64(e, v->snap);
  put_u64_list(e, v->nrecorded, v->recorded);
  put_i64(e, v->tokens);
  put_u64(e, v->t_us);
}

static void put_status(enc_t *e, const cl_status_t *s) {
  uint32_t i;
  enc_check(e, s->tokens >= 0 && s->initial_tokens >= 0);
  put_array(e, 15);
  put_id(e, s->self);
  put_i64(e, s->tokens);
  put_i64(e, s->initial_tokens);
  put_bool(e, s->lockstep);
  put_bool(e, s->configured);
  put_list(e, s->nout, s->out);
  for (i = 0; i < s->nout && e->err == 0; i++) {
    put_array(e, 4);
    put_id(e, s->out[i].peer);
    put_u64(e, s->out[i].sent);
    put_bool(e, s->out[i].connected);
    put_u64(e, s->out[i].queued_bytes);
  }
  put_list(e, s->nin, s->in);
  for (i = 0; i < s->nin && e->err == 0; i++) {
    put_array(e, 4);
    put_id(e, s->in[i].peer);
    put_u64(e, s->in[i].received);
    put_bool(e, s->in[i].connected);
    put_u64(e, s->in[i].held);
  }
  put_u64_list(e, s->nactive, s->active);
  put_u64_list(e, s->ndone, s->done);
  put_u64(e, s->config_id);
  put_u64(e, s->epoch);
  put_bool(e, s->frozen);
  put_bool(e, s->paused);
  put_u64(e, s->discarded);
  put_u64(e, s->restored_id);
}

static void put_configure(enc_t *e, const cl_configure_t *c) {
  uint32_t i;
  put_id(e, c->self);
  put_i64(e, c->tokens);
  put_u64(e, c->rank);
  put_u64(e, c->nservers);
  put_bool(e, c->lockstep);
  put_u64(e, c->jitter_ms);
  put_u64(e, c->seed);
  put_list(e, c->nout, c->out);
  for (i = 0; i < c->nout && e->err == 0; i++) {
    put_array(e, 2);
    put_id(e, c->out[i].id);
    put_addr(e, c->out[i].addr);
  }
  put_list(e, c->nin, c->in);
  for (i = 0; i < c->nin && e->err == 0; i++)
    put_id(e, c->in[i]);
  put_u64(e, c->config_id);
}

/* The checks of m's values that come before any byte of its frame. */
static void check_msg(enc_t *e, const cl_msg_t *m) {
  const cl_configure_t *c = &m->u.configure;
  switch (m->type) {
  case CL_MSG_TOKEN:
    enc_check(e, m->u.token.seq >= 1 && m->u.token.n >= 1);
    break;
  case CL_MSG_CONFIGURE:
    enc_check(e, c->tokens >= 0 && c->nservers >= 1 && c->rank < c->nservers);
    break;
  case CL_MSG_SEND:
    enc_check(e, m->u.send.n >= 1);
    break;
  case CL_MSG_WATCH:
    enc_check(e, m->u.watch.count <= UINT64_MAX - m->u.watch.first);
    break;
  case CL_MSG_OK:
    enc_check(e, m->u.ok.delivered_kind == 0 ||
                     m->u.ok.delivered_kind == CL_MSG_TOKEN ||
                     m->u.ok.delivered_kind == CL_MSG_MARKER);
    break;
  default:
    break;
  }
}

/* The fields of a peer-channel frame: HELLO, TOKEN, MARKER, WELCOME,
 * ACK. */
static void put_peer_fields(enc_t *e, const cl_msg_t *m) {
  switch (m->type) {
  case CL_MSG_HELLO:
    put_id(e, m->u.hello.from);
    put_id(e, m->u.hello.to);
    put_u64(e, m->u.hello.config_id);
    put_u64(e, m->u.hello.incarnation);
    put_u64(e, m->u.hello.epoch);
    break;
  case CL_MSG_TOKEN:
    put_u64(e, m->u.token.seq);
    put_i64(e, m->u.token.n);
    break;
  case CL_MSG_MARKER:
    put_u64(e, m->u.marker.snapshot_id);
    break;
  case CL_MSG_WELCOME:
    put_id(e, m->u.welcome.from);
    put_u64(e, m->u.welcome.received);
    break;
  case CL_MSG_ACK:
    put_u64(e, m->u.ack.received);
    break;
  case CL_MSG_CHALLENGE:
    put_bin(e, m->u.challenge.nonce, CL_AUTH_NONCE);
    put_bool(e, m->u.challenge.required);
    break;
  case CL_MSG_AUTH:
    put_bin(e, m->u.auth.nonce, CL_AUTH_NONCE);
    put_bin(e, m->u.auth.mac, CL_AUTH_MAC);
    break;
  case CL_MSG_AUTH_OK:
    put_bin(e, m->u.auth_ok.mac, CL_AUTH_MAC);
    break;
  default:
    break;
  }
}

/* The fields of CLIENT and of the control requests, after req. */
static void put_request_fields(enc_t *e, const cl_msg_t *m) {
  switch (m->type) {
  case CL_MSG_CLIENT:
    put_id(e, m->u.client.name);
    break;
  case CL_MSG_CONFIGURE:
    put_configure(e, &m->u.configure);
    break;
  case CL_MSG_SEND:
    put_id(e, m->u.send.dest);
    put_i64(e, m->u.send.n);
    break;
  case CL_MSG_SNAPSHOT:
    if (m->u.snapshot.has_id)
      put_u64(e, m->u.snapshot.snapshot_id);
    else
      put_nil(e);
    break;
  case CL_MSG_COLLECT:
    put_u64(e, m->u.collect.snapshot_id);
    put_bool(e, m->u.collect.release);
    break;
  case CL_MSG_DELIVER:
    put_id(e, m->u.deliver.src);
    break;
  case CL_MSG_CIRCULATE:
    put_bool(e, m->u.circulate.on);
    break;
  case CL_MSG_WATCH:
    put_u64(e, m->u.watch.first);
    put_u64(e, m->u.watch.count);
    break;
  case CL_MSG_DROP:
    put_u64(e, m->u.drop.snapshot_id);
    put_bool(e, m->u.drop.started);
    break;
  case CL_MSG_FREEZE:
    put_u64(e, m->u.freeze.epoch);
    break;
  case CL_MSG_TRACE:
    put_bool(e, m->u.trace.on);
    put_u64(e, m->u.trace.max_events);
    break;
  case CL_MSG_TRACE_READ:
    put_u64(e, m->u.trace_read.first);
    put_u64(e, m->u.trace_read.max);
    break;
  case CL_MSG_RESTORE:
    put_u64(e, m->u.restore.epoch);
    put_bool(e, m->u.restore.paused);
    put_local_state(e, &m->u.restore.state);
    break;
  default: /* CONNECT, STATUS, SHUTDOWN, NEXT_ID, RESUME, PEEK: req only */
    break;
  }
}

/* The fields of the replies (after req) and of the notifications. */
static void put_reply_fields(enc_t *e, const cl_msg_t *m) {
  uint32_t i;
  switch (m->type) {
  case CL_MSG_OK:
    put_u64(e, m->u.ok.snapshot_id);
    put_list(e, m->u.ok.nsent, m->u.ok.sent);
    for (i = 0; i < m->u.ok.nsent && e->err == 0; i++)
      put_sent(e, &m->u.ok.sent[i]);
    put_u64(e, m->u.ok.delivered_kind);
    put_u64(e, m->u.ok.delivered_value);
    break;
  case CL_MSG_ERROR:
    put_i64(e, m->u.error.code);
    put_text(e, m->u.error.text);
    break;
  case CL_MSG_STATE:
  case CL_MSG_LOCAL_STATE:
    put_local_state(e, &m->u.state);
    break;
  case CL_MSG_STATUS_R:
    put_status(e, &m->u.status);
    break;
  case CL_MSG_TRACE_R:
    put_bool(e, m->u.trace_r.on);
    put_u64(e, m->u.trace_r.next);
    put_list(e, m->u.trace_r.nevents, m->u.trace_r.events);
    for (i = 0; i < m->u.trace_r.nevents && e->err == 0; i++)
      put_trace_event(e, &m->u.trace_r.events[i]);
    break;
  case CL_MSG_COMPLETE:
    put_u64(e, m->u.complete.snapshot_id);
    put_id(e, m->u.complete.server);
    break;
  case CL_MSG_NOTICE:
    put_id(e, m->u.notice.peer);
    put_text(e, m->u.notice.text);
    break;
  default:
    break;
  }
}

/* Append one frame for m to sb. Returns 0, CL_EINVAL (unknown type, invalid
 * id or address, value the decoder would refuse) or CL_ENOMEM; on error sb
 * is left exactly as it was. Never takes ownership of anything in m. */
int cl_wire_encode(const cl_msg_t *m, msgpack_sbuffer *sb) {
  enc_t e;
  size_t start;
  uint32_t len;
  if (m == NULL || sb == NULL)
    return CL_EINVAL;
  start = sb->size;
  e.err = 0;
  msgpack_packer_init(&e.pk, sb, msgpack_sbuffer_write);
  len = frame_len(m->type);
  enc_check(&e, len > 0);
  check_msg(&e, m);
  /* [type, req (requests and replies), fields...] */
  put_array(&e, len);
  put_u64(&e, m->type);
  if (has_req(m->type))
    put_u64(&e, m->req);
  if (m->type <= CL_MSG_LAST_PEER)
    put_peer_fields(&e, m);
  else if (m->type <= CL_MSG_LAST_REQUEST)
    put_request_fields(&e, m);
  else
    put_reply_fields(&e, m);
  if (e.err != 0)
    sb->size = start;
  return e.err;
}

int cl_sbuf_reserve(msgpack_sbuffer *sb, size_t n) {
  size_t want;
  char *p;
  if (sb->alloc - sb->size >= n)
    return 0;
  if (n > SIZE_MAX / 4 - sb->size)
    return CL_ENOMEM;
  want = sb->alloc ? sb->alloc * 2 : 8192;
  while (want < sb->size + n)
    want *= 2;
  p = realloc(sb->data, want);
  if (p == NULL)
    return CL_ENOMEM;
  sb->data = p;
  sb->alloc = want;
  return 0;
}

/* Append [2, seq, n]. Returns 0, CL_EINVAL (seq < 1 or n < 1) or
 * CL_ENOMEM; sb is unchanged on error. */
int cl_wire_encode_token(msgpack_sbuffer *sb, uint64_t seq, int64_t n) {
  enc_t e;
  size_t start;
  if (sb == NULL || seq < 1 || n < 1)
    return CL_EINVAL;
  start = sb->size;
  e.err = 0;
  msgpack_packer_init(&e.pk, sb, msgpack_sbuffer_write);
  put_array(&e, 3);
  put_u64(&e, CL_MSG_TOKEN);
  put_u64(&e, seq);
  put_i64(&e, n);
  if (e.err != 0)
    sb->size = start;
  return e.err;
}

/* Append [3, snapshot_id]. Returns 0 or CL_ENOMEM (sb unchanged). */
int cl_wire_encode_marker(msgpack_sbuffer *sb, uint64_t snapshot_id) {
  enc_t e;
  size_t start;
  if (sb == NULL)
    return CL_EINVAL;
  start = sb->size;
  e.err = 0;
  msgpack_packer_init(&e.pk, sb, msgpack_sbuffer_write);
  put_array(&e, 2);
  put_u64(&e, CL_MSG_MARKER);
  put_u64(&e, snapshot_id);
  if (e.err != 0)
    sb->size = start;
  return e.err;
}

/* ------------------------------------------------------------------ */
/* Decoding one msgpack object into a cl_msg_t                         */

#define TRY(expr)                                                              \
  do {                                                                         \
    int rc_ = (expr);                                                          \
    if (rc_ < 0)                                                               \
      return rc_;                                                              \
  } while (0)

static int get_u64(const msgpack_object *o, uint64_t min, uint64_t max,
                   uint64_t *out) {
  if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 < min ||
      o->via.u64 > max)
    return CL_EPROTO;
  *out = o->via.u64;
  return 0;
}

static int get_u32(const msgpack_object *o, uint32_t min, uint32_t max,
                   uint32_t *out) {
  uint64_t v;
  TRY(get_u64(o, min, max, &v));
  *out = (uint32_t)v;
  return 0;
}

static int get_i64(const msgpack_object *o, int64_t min, int64_t max,
                   int64_t *out) {
  int64_t v;
  if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
    if (o->via.u64 > (uint64_t)INT64_MAX)
      return CL_EPROTO;
    v = (int64_t)o->via.u64;
  } else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
    v = o->via.i64;
  } else {
    return CL_EPROTO;
  }
  if (v < min || v > max)
    return CL_EPROTO;
  *out = v;
  return 0;
}

/* Flags travel as ints 0/1 or as msgpack booleans; both are accepted. */
static int get_bool(const msgpack_object *o, uint8_t *out) {
  if (o->type == MSGPACK_OBJECT_BOOLEAN) {
    *out = o->via.boolean ? 1 : 0;
    return 0;
  }
  if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= 1) {
    *out = (uint8_t)o->via.u64;
    return 0;
  }
  return CL_EPROTO;
}

/* Exactly n bytes of bin. */
static int get_bin(const msgpack_object *o, uint8_t *dst, uint32_t n) {
  if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != n)
    return CL_EPROTO;
  memcpy(dst, o->via.bin.ptr, n);
  return 0;
}

static int get_id(const msgpack_object *o, char dst[CL_ID_SIZE]) {
  uint32_t len;
  if (o->type != MSGPACK_OBJECT_STR)
    return CL_EPROTO;
  len = o->via.str.size;
  if (len == 0 || len > CL_ID_MAX)
    return CL_EPROTO;
  memcpy(dst, o->via.str.ptr, len);
  dst[len] = '\0';
  /* An embedded NUL would make a shorter id than the one on the wire. */
  if (strlen(dst) != len || !cl_id_valid(dst)) {
    dst[0] = '\0';
    return CL_EPROTO;
  }
  return 0;
}

static int get_addr(const msgpack_object *o, char dst[CL_ADDR_SIZE]) {
  char host[CL_ADDR_SIZE];
  int port;
  uint32_t len;
  if (o->type != MSGPACK_OBJECT_STR)
    return CL_EPROTO;
  len = o->via.str.size;
  if (len == 0 || len >= CL_ADDR_SIZE)
    return CL_EPROTO;
  memcpy(dst, o->via.str.ptr, len);
  dst[len] = '\0';
  if (strlen(dst) != len || cl_addr_split(dst, host, &port) != 0) {
    dst[0] = '\0';
    return CL_EPROTO;
  }
  return 0;
}

/* Free text: cut to CL_TEXT_SIZE - 1 bytes, backing off so a UTF-8
 * sequence is never split. */
static int get_text(const msgpack_object *o, char dst[CL_TEXT_SIZE]) {
  size_t len;
  const unsigned char *s;
  if (o->type != MSGPACK_OBJECT_STR)
    return CL_EPROTO;
  s = (const unsigned char *)o->via.str.ptr;
  len = o->via.str.size;
  if (len > CL_TEXT_SIZE - 1) {
    size_t k = CL_TEXT_SIZE - 1, back = 0;
    while (k > 0 && back < 3 && (s[k] & 0xC0) == 0x80) {
      k--;
      back++;
    }
    len = (back < 3 || (s[k] & 0xC0) == 0xC0) ? k : CL_TEXT_SIZE - 1;
  }
  memcpy(dst, s, len);
  dst[len] = '\0';
  return 0;
}

/* An array of exactly n elements. */
static int get_tuple(const msgpack_object *o, uint32_t n,
                     const msgpack_object **items) {
  if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != n)
    return CL_EPROTO;
  *items = o->via.array.ptr;
  return 0;
}

/* A list: an array of at most CL_WIRE_MAX_ITEMS elements, and heap room for
 * its converted elements (NULL when empty). *out must be freed by the
 * caller on every path, which cl_msg_free does. */
static int get_list(const msgpack_object *o, size_t elem_size, uint32_t *n,
                    const msgpack_object **items, void **out) {
  uint32_t count;
  *out = NULL;
  *n = 0;
  if (o->type != MSGPACK_OBJECT_ARRAY)
    return CL_EPROTO;
  count = o->via.array.size;
  if (count > CL_WIRE_MAX_ITEMS)
    return CL_EPROTO;
  *items = o->via.array.ptr;
  if (count > 0) {
    *out = calloc(count, elem_size);
    if (*out == NULL)
      return CL_ENOMEM;
  }
  *n = count;
  return 0;
}

static int get_chan_counts(const msgpack_object *o, uint32_t *n,
                           cl_chan_count_t **out) {
  const msgpack_object *items, *f;
  void *mem;
  uint32_t i;
  int rc = get_list(o, sizeof **out, n, &items, &mem);
  *out = mem;
  TRY(rc);
  for (i = 0; i < *n; i++) {
    TRY(get_tuple(&items[i], 2, &f));
    TRY(get_id(&f[0], (*out)[i].peer));
    TRY(get_u64(&f[1], 0, UINT64_MAX, &(*out)[i].count));
  }
  return 0;
}

static int get_u64_list(const msgpack_object *o, uint32_t *n, uint64_t **out) {
  const msgpack_object *items;
  void *mem;
  uint32_t i;
  int rc = get_list(o, sizeof **out, n, &items, &mem);
  *out = mem;
  TRY(rc);
  for (i = 0; i < *n; i++)
    TRY(get_u64(&items[i], 0, UINT64_MAX, &(*out)[i]));
  return 0;
}

static int get_configure(const msgpack_object *f, cl_configure_t *c) {
  const msgpack_object *items, *p;
  void *mem;
  uint32_t i;
  int rc;
  TRY(get_id(&f[2], c->self));
  TRY(get_i64(&f[3], 0, INT64_MAX, &c->tokens));
  TRY(get_u32(&f[4], 0, UINT32_MAX, &c->rank));
  TRY(get_u32(&f[5], 1, UINT32_MAX, &c->nservers));
  if (c->rank >= c->nservers)
    return CL_EPROTO;
  TRY(get_bool(&f[6], &c->lockstep));
  TRY(get_u32(&f[7], 0, UINT32_MAX, &c->jitter_ms));
  TRY(get_u64(&f[8], 0, UINT64_MAX, &c->seed));
  rc = get_list(&f[9], sizeof *c->out, &c->nout, &items, &mem);
  c->out = mem;
  TRY(rc);
  for (i = 0; i < c->nout; i++) {
    TRY(get_tuple(&items[i], 2, &p));
    TRY(get_id(&p[0], c->out[i].id));
    TRY(get_addr(&p[1], c->out[i].addr));
  }
  rc = get_list(&f[10], sizeof *c->in, &c->nin, &items, &mem);
  c->in = mem;
  TRY(rc);
  for (i = 0; i < c->nin; i++)
    TRY(get_id(&items[i], c->in[i]));
  return get_u64(&f[11], 0, UINT64_MAX, &c->config_id);
}

static int get_sent_list(const msgpack_object *o, uint32_t *n,
                         cl_sent_t **out) {
  const msgpack_object *items, *f;
  void *mem;
  uint32_t i;
  uint64_t kind;
  int rc = get_list(o, sizeof **out, n, &items, &mem);
  *out = mem;
  TRY(rc);
  for (i = 0; i < *n; i++) {
    cl_sent_t *s = &(*out)[i];
    TRY(get_tuple(&items[i], 4, &f));
    TRY(get_id(&f[0], s->dest));
    TRY(get_u64(&f[1], CL_MSG_TOKEN, CL_MSG_MARKER, &kind));
    s->kind = (uint8_t)kind;
    if (kind == CL_MSG_TOKEN) {
      TRY(get_u64(&f[2], 1, INT64_MAX, &s->value));
      TRY(get_u64(&f[3], 1, UINT64_MAX, &s->seq));
    } else {
      TRY(get_u64(&f[2], 0, UINT64_MAX, &s->value));
      TRY(get_u64(&f[3], 0, UINT64_MAX, &s->seq));
    }
  }
  return 0;
}

static int get_local_state(const msgpack_object *o, cl_local_state_t *s) {
  const msgpack_object *f, *items, *r;
  void *mem;
  uint32_t i;
  int rc;
  TRY(get_tuple(o, 7, &f));
  TRY(get_u64(&f[0], 0, UINT64_MAX, &s->snapshot_id));
  TRY(get_id(&f[1], s->server));
  TRY(get_i64(&f[2], 0, INT64_MAX, &s->tokens));
  TRY(get_i64(&f[3], 0, INT64_MAX, &s->initial_tokens));
  rc = get_list(&f[4], sizeof *s->recorded, &s->nrecorded, &items, &mem);
  s->recorded = mem;
  TRY(rc);
  for (i = 0; i < s->nrecorded; i++) {
    cl_recorded_t *run = &s->recorded[i];
    TRY(get_tuple(&items[i], 4, &r));
    TRY(get_id(&r[0], run->src));
    TRY(get_u64(&r[1], 1, UINT64_MAX, &run->seq));
    /* The run's last seq, seq + count - 1, must exist. */
    TRY(get_u64(&r[2], 1, UINT64_MAX - run->seq + 1, &run->count));
    TRY(get_i64(&r[3], 1, INT64_MAX, &run->n));
  }
  TRY(get_chan_counts(&f[5], &s->nsent, &s->sent));
  TRY(get_chan_counts(&f[6], &s->nrecv, &s->recv));
  return 0;
}

static int get_trace_events(const msgpack_object *o, uint32_t *n,
                            cl_trace_event_t **out) {
  const msgpack_object *items, *f;
  void *mem;
  uint64_t ev;
  uint32_t i;
  int rc = get_list(o, sizeof **out, n, &items, &mem);
  *out = mem;
  TRY(rc);
  for (i = 0; i < *n; i++) {
    cl_trace_event_t *v = &(*out)[i];
    TRY(get_tuple(&items[i], 9, &f));
    TRY(get_u64(&f[0], 0, UINT64_MAX, &v->i));
    TRY(get_u64(&f[1], CL_TEV_SEND, CL_TEV_DROPPED, &ev));
    v->ev = (uint8_t)ev;
    if (f[2].type != MSGPACK_OBJECT_NIL)
      TRY(get_id(&f[2], v->peer));
    TRY(get_u64(&f[3], 0, UINT64_MAX, &v->seq));
    TRY(get_i64(&f[4], INT64_MIN, INT64_MAX, &v->n));
    TRY(get_u64(&f[5], 0, UINT64_MAX, &v->snap));
    TRY(get_u64_list(&f[6], &v->nrecorded, &v->recorded));
    TRY(get_i64(&f[7], INT64_MIN, INT64_MAX, &v->tokens));
    TRY(get_u64(&f[8], 0, UINT64_MAX, &v->t_us));
  }
  return 0;
}

static int get_status(const msgpack_object *o, cl_status_t *s) {
  const msgpack_object *f, *items, *c;
  void *mem;
  uint32_t i;
  int rc;
  TRY(get_tuple(o, 15, &f));
  TRY(get_id(&f[0], s->self));
  TRY(get_i64(&f[1], 0, INT64_MAX, &s->tokens));
  TRY(get_i64(&f[2], 0, INT64_MAX, &s->initial_tokens));
  TRY(get_bool(&f[3], &s->lockstep));
  TRY(get_bool(&f[4], &s->configured));
  rc = get_list(&f[5], sizeof *s->out, &s->nout, &items, &mem);
  s->out = mem;
  TRY(rc);
  for (i = 0; i < s->nout; i++) {
    TRY(get_tuple(&items[i], 4, &c));
    TRY(get_id(&c[0], s->out[i].peer));
    TRY(get_u64(&c[1], 0, UINT64_MAX, &s->out[i].sent));
    TRY(get_bool(&c[2], &s->out[i].connected));
    TRY(get_u64(&c[3], 0, UINT64_MAX, &s->out[i].queued_bytes));
  }
  rc = get_list(&f[6], sizeof *s->in, &s->nin, &items, &mem);
  s->in = mem;
  TRY(rc);
  for (i = 0; i < s->nin; i++) {
    TRY(get_tuple(&items[i], 4, &c));
    TRY(get_id(&c[0], s->in[i].peer));
    TRY(get_u64(&c[1], 0, UINT64_MAX, &s->in[i].received));
    TRY(get_bool(&c[2], &s->in[i].connected));
    TRY(get_u64(&c[3], 0, UINT64_MAX, &s->in[i].held));
  }
  TRY(get_u64_list(&f[7], &s->nactive, &s->active));
  TRY(get_u64_list(&f[8], &s->ndone, &s->done));
  TRY(get_u64(&f[9], 0, UINT64_MAX, &s->config_id));
  TRY(get_u64(&f[10], 0, UINT64_MAX, &s->epoch));
  TRY(get_bool(&f[11], &s->frozen));
  TRY(get_bool(&f[12], &s->paused));
  TRY(get_u64(&f[13], 0, UINT64_MAX, &s->discarded));
  return get_u64(&f[14], 0, UINT64_MAX, &s->restored_id);
}

/* The fields of a peer-channel frame f[] into *m. */
static int get_peer_fields(const msgpack_object *f, cl_msg_t *m) {
  switch (m->type) {
  case CL_MSG_HELLO:
    TRY(get_id(&f[1], m->u.hello.from));
    TRY(get_id(&f[2], m->u.hello.to));
    TRY(get_u64(&f[3], 0, UINT64_MAX, &m->u.hello.config_id));
    TRY(get_u64(&f[4], 0, UINT64_MAX, &m->u.hello.incarnation));
    return get_u64(&f[5], 0, UINT64_MAX, &m->u.hello.epoch);
  case CL_MSG_TOKEN:
    TRY(get_u64(&f[1], 1, UINT64_MAX, &m->u.token.seq));
    return get_i64(&f[2], 1, INT64_MAX, &m->u.token.n);
  case CL_MSG_MARKER:
    return get_u64(&f[1], 0, UINT64_MAX, &m->u.marker.snapshot_id);
  case CL_MSG_WELCOME:
    TRY(get_id(&f[1], m->u.welcome.from));
    return get_u64(&f[2], 0, UINT64_MAX, &m->u.welcome.received);
  case CL_MSG_ACK:
    return get_u64(&f[1], 0, UINT64_MAX, &m->u.ack.received);
  case CL_MSG_CHALLENGE:
    TRY(get_bin(&f[1], m->u.challenge.nonce, CL_AUTH_NONCE));
    return get_bool(&f[2], &m->u.challenge.required);
  case CL_MSG_AUTH:
    TRY(get_bin(&f[1], m->u.auth.nonce, CL_AUTH_NONCE));
    return get_bin(&f[2], m->u.auth.mac, CL_AUTH_MAC);
  case CL_MSG_AUTH_OK:
    return get_bin(&f[1], m->u.auth_ok.mac, CL_AUTH_MAC);
  default:
    return CL_ETYPE;
  }
}

/* The fields of CLIENT or a control request f[] (req is read) into *m. */
static int get_request_fields(const msgpack_object *f, cl_msg_t *m) {
  switch (m->type) {
  case CL_MSG_CLIENT:
    return get_id(&f[1], m->u.client.name);
  case CL_MSG_CONFIGURE:
    return get_configure(f, &m->u.configure);
  case CL_MSG_CONNECT:
  case CL_MSG_STATUS:
  case CL_MSG_SHUTDOWN:
  case CL_MSG_NEXT_ID:
    return 0;
  case CL_MSG_SEND:
    TRY(get_id(&f[2], m->u.send.dest));
    return get_i64(&f[3], 1, INT64_MAX, &m->u.send.n);
  case CL_MSG_SNAPSHOT:
    if (f[2].type == MSGPACK_OBJECT_NIL)
      return 0;
    m->u.snapshot.has_id = 1;
    return get_u64(&f[2], 0, UINT64_MAX, &m->u.snapshot.snapshot_id);
  case CL_MSG_COLLECT:
    TRY(get_u64(&f[2], 0, UINT64_MAX, &m->u.collect.snapshot_id));
    return get_bool(&f[3], &m->u.collect.release);
  case CL_MSG_DELIVER:
    return get_id(&f[2], m->u.deliver.src);
  case CL_MSG_CIRCULATE:
    return get_bool(&f[2], &m->u.circulate.on);
  case CL_MSG_DROP:
    TRY(get_u64(&f[2], 0, UINT64_MAX, &m->u.drop.snapshot_id));
    return get_bool(&f[3], &m->u.drop.started);
  case CL_MSG_FREEZE:
    return get_u64(&f[2], 0, UINT64_MAX, &m->u.freeze.epoch);
  case CL_MSG_TRACE:
    TRY(get_bool(&f[2], &m->u.trace.on));
    return get_u64(&f[3], 0, UINT64_MAX, &m->u.trace.max_events);
  case CL_MSG_TRACE_READ:
    TRY(get_u64(&f[2], 0, UINT64_MAX, &m->u.trace_read.first));
    return get_u64(&f[3], 0, UINT64_MAX, &m->u.trace_read.max);
  case CL_MSG_RESTORE:
    TRY(get_u64(&f[2], 0, UINT64_MAX, &m->u.restore.epoch));
    TRY(get_bool(&f[3], &m->u.restore.paused));
    return get_local_state(&f[4], &m->u.restore.state);
  case CL_MSG_RESUME:
  case CL_MSG_PEEK:
    return 0;
  case CL_MSG_WATCH:
    TRY(get_u64(&f[2], 0, UINT64_MAX, &m->u.watch.first));
    return get_u64(&f[3], 0, UINT64_MAX - m->u.watch.first,
                   &m->u.watch.count);
  default:
    return CL_ETYPE;
  }
}

/* The fields of a reply (req is read) or a notification f[] into *m. */
static int get_reply_fields(const msgpack_object *f, cl_msg_t *m) {
  uint64_t v;
  int64_t code;
  switch (m->type) {
  case CL_MSG_OK:
    TRY(get_u64(&f[2], 0, UINT64_MAX, &m->u.ok.snapshot_id));
    TRY(get_sent_list(&f[3], &m->u.ok.nsent, &m->u.ok.sent));
    TRY(get_u64(&f[4], 0, CL_MSG_MARKER, &v));
    if (v == 1)
      return CL_EPROTO;
    m->u.ok.delivered_kind = (uint8_t)v;
    return get_u64(&f[5], 0, UINT64_MAX, &m->u.ok.delivered_value);
  case CL_MSG_ERROR:
    TRY(get_i64(&f[2], INT32_MIN, INT32_MAX, &code));
    m->u.error.code = (int32_t)code;
    return get_text(&f[3], m->u.error.text);
  case CL_MSG_STATE:
    return get_local_state(&f[2], &m->u.state);
  case CL_MSG_STATUS_R:
    return get_status(&f[2], &m->u.status);
  case CL_MSG_TRACE_R:
    TRY(get_bool(&f[2], &m->u.trace_r.on));
    TRY(get_u64(&f[3], 0, UINT64_MAX, &m->u.trace_r.next));
    return get_trace_events(&f[4], &m->u.trace_r.nevents,
                            &m->u.trace_r.events);
  case CL_MSG_COMPLETE:
    TRY(get_u64(&f[1], 0, UINT64_MAX, &m->u.complete.snapshot_id));
    return get_id(&f[2], m->u.complete.server);
  case CL_MSG_NOTICE:
    TRY(get_id(&f[1], m->u.notice.peer));
    return get_text(&f[2], m->u.notice.text);
  case CL_MSG_LOCAL_STATE:
    return get_local_state(&f[1], &m->u.state);
  default:
    return CL_ETYPE;
  }
}

/* Check one decoded frame and copy it into *m (zeroed by the caller, type
 * set here). Arrays allocated on the way belong to *m even on error. */
static int decode_fields(const msgpack_object *o, cl_msg_t *m) {
  const msgpack_object *f;
  uint64_t type;
  uint32_t want;
  if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size == 0)
    return CL_EPROTO;
  f = o->via.array.ptr;
  if (f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
    return CL_EPROTO;
  type = f[0].via.u64;
  want = frame_len(type);
  if (want == 0)
    return CL_ETYPE;
  if (o->via.array.size != want)
    return CL_EPROTO;
  m->type = (uint8_t)type;
  if (has_req(type))
    TRY(get_u64(&f[1], 0, UINT64_MAX, &m->req));
  if (type <= CL_MSG_LAST_PEER)
    return get_peer_fields(f, m);
  if (type <= CL_MSG_LAST_REQUEST)
    return get_request_fields(f, m);
  return get_reply_fields(f, m);
}

/* ------------------------------------------------------------------ */
/* The pre-scanner                                                     */

static uint64_t be(const unsigned char *p, unsigned n) {
  uint64_t v = 0;
  unsigned i;
  for (i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

/* One element finished: count it against the open containers, and note a
 * frame boundary when the top-level object is done. */
static void scan_item_done(cl_wire_decoder_t *d) {
  while (d->depth > 0) {
    if (--d->left[d->depth - 1] > 0)
      return;
    d->depth--;
  }
  d->frame_start = d->scanned;
  d->ready++;
}

/* Keep the first `have` bytes of an incomplete header (h) in the decoder,
 * counted as scanned; the rest comes with the next feed. Returns 0. */
static int scan_stash(cl_wire_decoder_t *d, const unsigned char *h,
                      unsigned have) {
  memcpy(d->hdr, h, have);
  d->scanned += have - d->nhdr;
  d->nhdr = have;
  return 0;
}

/* What a msgpack element is, as far as its size goes. */
typedef enum hdr_kind {
  HDR_SCALAR,  /* the header is all of it */
  HDR_PAYLOAD, /* len bytes follow the header */
  HDR_ARRAY,   /* count elements follow */
  HDR_MAP      /* count key-value pairs follow */
} hdr_kind_t;

/* What a msgpack header says about the element it begins. */
typedef struct hdr {
  hdr_kind_t kind;
  uint64_t len;   /* payload bytes after the header */
  uint64_t count; /* array or map entries */
  unsigned hl;    /* header bytes */
} hdr_t;

/* Read the header in h[0..have) (have >= 1). Returns 1 with *x filled, 0
 * when it is not complete yet, or CL_EPROTO for a byte msgpack never uses. */
static int scan_header(const unsigned char *h, unsigned have, hdr_t *x) {
  unsigned char b = h[0];
  unsigned lb = 0; /* bytes of the length or count field */
  hdr_kind_t kind = HDR_SCALAR;
  uint64_t len = 0, count = 0;
  unsigned hl = 1;
  if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
    kind = HDR_SCALAR;
  } else if (b <= 0x8f) {
    kind = HDR_MAP, count = b & 0x0f;
  } else if (b <= 0x9f) {
    kind = HDR_ARRAY, count = b & 0x0f;
  } else if (b <= 0xbf) {
    kind = HDR_PAYLOAD, len = b & 0x1f;
  } else {
    switch (b) {
    /* bin and str 8/16/32, then ext 8/16/32 (a type byte after the size) */
    case 0xc4: case 0xd9: kind = HDR_PAYLOAD, lb = 1; break;
    case 0xc5: case 0xda: kind = HDR_PAYLOAD, lb = 2; break;
    case 0xc6: case 0xdb: kind = HDR_PAYLOAD, lb = 4; break;
    case 0xc7: kind = HDR_PAYLOAD, lb = 1, hl = 2; break;
    case 0xc8: kind = HDR_PAYLOAD, lb = 2, hl = 2; break;
    case 0xc9: kind = HDR_PAYLOAD, lb = 4, hl = 2; break;
    /* float 32/64, uint and int 8..64, fixext 1..16 */
    case 0xca: kind = HDR_PAYLOAD, len = 4; break;
    case 0xcb: kind = HDR_PAYLOAD, len = 8; break;
    case 0xcc: case 0xd0: kind = HDR_PAYLOAD, len = 1; break;
    case 0xcd: case 0xd1: kind = HDR_PAYLOAD, len = 2; break;
    case 0xce: case 0xd2: kind = HDR_PAYLOAD, len = 4; break;
    case 0xcf: case 0xd3: kind = HDR_PAYLOAD, len = 8; break;
    case 0xd4: kind = HDR_PAYLOAD, len = 2; break;
    case 0xd5: kind = HDR_PAYLOAD, len = 3; break;
    case 0xd6: kind = HDR_PAYLOAD, len = 5; break;
    case 0xd7: kind = HDR_PAYLOAD, len = 9; break;
    case 0xd8: kind = HDR_PAYLOAD, len = 17; break;
    /* array and map 16/32 */
    case 0xdc: kind = HDR_ARRAY, lb = 2; break;
    case 0xdd: kind = HDR_ARRAY, lb = 4; break;
    case 0xde: kind = HDR_MAP, lb = 2; break;
    case 0xdf: kind = HDR_MAP, lb = 4; break;
    default: return CL_EPROTO; /* 0xc1: never used */
    }
    if (lb > 0) {
      if (have < 1 + lb)
        return 0;
      if (kind == HDR_PAYLOAD)
        len = be(h + 1, lb);
      else
        count = be(h + 1, lb);
      hl += lb;
    }
  }
  x->kind = kind;
  x->len = len;
  x->count = count;
  x->hl = hl;
  return have >= hl;
}

/* Skip what is left of a payload, as far as the bytes fed go. */
static void scan_skip(cl_wire_decoder_t *d) {
  uint64_t avail = d->fed - d->scanned;
  uint64_t n = d->skip < avail ? d->skip : avail;
  d->skip -= n;
  d->scanned += n;
  if (d->skip == 0)
    scan_item_done(d);
}

/* Past the header of a payload: skip its len bytes. A frame that must grow
 * past the cap is refused now, not after buffering it. */
static int scan_payload(cl_wire_decoder_t *d, const hdr_t *x) {
  if (d->scanned - d->nhdr - d->frame_start + x->hl + x->len > d->cap)
    return CL_ETOOBIG;
  d->scanned += x->hl - d->nhdr;
  d->nhdr = 0;
  d->skip = x->len;
  if (x->len == 0)
    scan_item_done(d);
  return 0;
}

/* Past the header of an array or map (already counted as scanned): open
 * it. Every element takes at least one byte, so a count the cap cannot
 * hold is refused before msgpack allocates room for it. The elements the
 * open containers still expect count too (each level's current element is
 * the one being read): nested headers that fit the cap one by one would
 * otherwise allocate up to depth times as much. */
static int scan_container(cl_wire_decoder_t *d, const hdr_t *x) {
  uint64_t count = x->count, need;
  uint32_t i;
  if (count > CL_WIRE_MAX_ITEMS)
    return CL_EPROTO;
  if (x->kind == HDR_MAP)
    count *= 2;
  need = count;
  for (i = 0; i < d->depth; i++)
    need += d->left[i] - 1;
  if (d->scanned - d->frame_start + need > d->cap)
    return CL_ETOOBIG;
  if (count == 0) {
    scan_item_done(d);
    return 0;
  }
  if (d->depth >= WIRE_MAX_DEPTH)
    return CL_EPROTO;
  d->left[d->depth++] = (uint32_t)count;
  return 0;
}

/* Walk the bytes fed since the last call, up to the end of the next whole
 * frame (so frames before a bad byte are still delivered) or of the data.
 * Keeps an incomplete header and resumes with it next time. Returns 0,
 * CL_EPROTO or CL_ETOOBIG. */
static int scan(cl_wire_decoder_t *d) {
  const unsigned char *end =
      (const unsigned char *)d->u.buffer + d->u.used;
  int rc = 0;
  while (rc == 0 && d->scanned < d->fed && d->ready == 0) {
    const unsigned char *p = end - (d->fed - d->scanned);
    uint64_t avail = d->fed - d->scanned;
    unsigned char h[8]; /* the header: stashed bytes, then new ones */
    unsigned have = d->nhdr;
    hdr_t x;
    int got;
    if (d->skip > 0) {
      scan_skip(d);
      continue;
    }
    memcpy(h, d->hdr, have);
    if (avail > sizeof h - have)
      avail = sizeof h - have;
    memcpy(h + have, p, (size_t)avail);
    have += (unsigned)avail;
    got = scan_header(h, have, &x);
    if (got == 0)
      return scan_stash(d, h, have); /* header still incomplete */
    if (got < 0)
      return got;
    if (x.kind == HDR_PAYLOAD) {
      rc = scan_payload(d, &x);
      continue;
    }
    d->scanned += x.hl - d->nhdr;
    d->nhdr = 0;
    if (x.kind == HDR_SCALAR)
      scan_item_done(d);
    else
      rc = scan_container(d, &x);
  }
  return rc;
}

/* ------------------------------------------------------------------ */
/* The streaming decoder                                               */

/* Record an error that makes the decoder unusable, and return it. */
static int decoder_fail(cl_wire_decoder_t *d, int err) {
  d->err = err;
  return err;
}

/* New decoder holding at most cap undecoded bytes (0: the default cap).
 * Returns NULL when out of memory; free with cl_wire_decoder_free. */
cl_wire_decoder_t *cl_wire_decoder_new(size_t cap) {
  cl_wire_decoder_t *d = calloc(1, sizeof *d);
  size_t init;
  if (d == NULL)
    return NULL;
  d->cap = cap ? cap : CL_WIRE_DEFAULT_CAP;
  if (d->cap > SIZE_MAX / 2)
    d->cap = SIZE_MAX / 2;
  init = d->cap + 64;
  while (init > WIRE_INIT_BUFFER)
    init = (init + 1) / 2;
  if (!msgpack_unpacker_init(&d->u, init)) {
    free(d);
    return NULL;
  }
  return d;
}

void cl_wire_decoder_free(cl_wire_decoder_t *d) {
  if (d == NULL)
    return;
  msgpack_unpacker_destroy(&d->u);
  free(d);
}

/* Room to read into. *avail is at least want unless that would take the
 * undecoded bytes past the cap, in which case it is what is left below the
 * cap (so a frame of exactly cap bytes can still arrive). Returns 0,
 * CL_ETOOBIG (already at the cap: the frame is larger than the cap) or
 * CL_ENOMEM; like every error of the decoder, these stick. */
int cl_wire_decoder_reserve(cl_wire_decoder_t *d, size_t want, char **buf,
                            size_t *avail) {
  size_t held, room, cap;
  if (d->err != 0)
    return d->err;
  held = msgpack_unpacker_message_size(&d->u);
  if (held >= d->cap)
    return decoder_fail(d, CL_ETOOBIG);
  room = d->cap - held;
  if (want == 0)
    want = 1;
  if (want > room)
    want = room;
  if (!msgpack_unpacker_reserve_buffer(&d->u, want))
    return decoder_fail(d, CL_ENOMEM);
  cap = msgpack_unpacker_buffer_capacity(&d->u);
  *buf = msgpack_unpacker_buffer(&d->u);
  *avail = cap < room ? cap : room;
  return 0;
}

/* Commit n bytes written into the last reserved buffer. */
void cl_wire_decoder_consumed(cl_wire_decoder_t *d, size_t n) {
  size_t cap;
  if (d->err != 0)
    return;
  cap = msgpack_unpacker_buffer_capacity(&d->u);
  if (n > cap)
    n = cap; /* a caller bug; never let the unpacker run past its buffer */
  msgpack_unpacker_buffer_consumed(&d->u, n);
  d->fed += n;
}

/* Copy len bytes in. Returns 0, CL_ETOOBIG (all of it would not fit under
 * the cap; nothing is taken, and the decoder is done: the stream has lost
 * bytes) or CL_ENOMEM. Drain with cl_wire_next between feeds. */
int cl_wire_decoder_feed(cl_wire_decoder_t *d, const char *data, size_t len) {
  char *buf;
  size_t avail;
  int rc;
  if (len == 0)
    return d->err;
  rc = cl_wire_decoder_reserve(d, len, &buf, &avail);
  if (rc < 0)
    return rc;
  if (avail < len)
    return decoder_fail(d, CL_ETOOBIG);
  memcpy(buf, data, len);
  cl_wire_decoder_consumed(d, len);
  return 0;
}

/* Next frame: 1 and *m filled (caller frees), 0 when more bytes are needed,
 * or a negative CL_E code, which is then returned by every later call. *m is
 * zeroed whenever 1 is not returned. */
int cl_wire_next(cl_wire_decoder_t *d, cl_msg_t *m) {
  msgpack_unpacked up;
  int rc;
  memset(m, 0, sizeof *m);
  if (d->err != 0)
    return d->err;
  rc = scan(d);
  if (rc < 0)
    return decoder_fail(d, rc);
  msgpack_unpacked_init(&up);
  switch (msgpack_unpacker_next(&d->u, &up)) {
  case MSGPACK_UNPACK_SUCCESS:
    if (d->ready > 0)
      d->ready--;
    rc = decode_fields(&up.data, m);
    msgpack_unpacked_destroy(&up);
    if (rc < 0) {
      cl_msg_free(m);
      return decoder_fail(d, rc);
    }
    return 1;
  case MSGPACK_UNPACK_CONTINUE:
    msgpack_unpacked_destroy(&up);
    /* An unfinished frame already holding cap bytes can only get bigger. */
    if (msgpack_unpacker_message_size(&d->u) >= d->cap)
      return decoder_fail(d, CL_ETOOBIG);
    return 0;
  case MSGPACK_UNPACK_NOMEM_ERROR:
    msgpack_unpacked_destroy(&up);
    return decoder_fail(d, CL_ENOMEM);
  default:
    msgpack_unpacked_destroy(&up);
    return decoder_fail(d, CL_EPROTO);
  }
}

/* Undecoded bytes: the unfinished frame plus everything behind it. */
size_t cl_wire_decoder_buffered(const cl_wire_decoder_t *d) {
  return msgpack_unpacker_message_size(&d->u);
}

/* The unpacker's whole input buffer, free part included. */
size_t cl_wire_decoder_allocated(const cl_wire_decoder_t *d) {
  return d->u.used + d->u.free;
}
