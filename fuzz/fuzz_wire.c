/* libFuzzer target for the streaming wire decoder (proto/wire.c).
 *
 * The input is what a connection might deliver. Byte 0 picks the decoder cap
 * (64 << (b % 15): 64 B .. 1 MiB), bytes 0-1 seed the generator that splits
 * the rest into chunks of 1 byte .. everything. Chunks go in alternately
 * through reserve/consumed (the transport's zero-copy path) and feed, and the
 * decoder is drained with cl_wire_next after each one, as the daemon does.
 *
 * Every decoded message must survive encode -> decode unchanged, field for
 * field, and encoding it again must give the same bytes; the decoder must
 * never hold more than its cap, never allocate much beyond it, and keep
 * returning its error once it failed. Any violation abort()s: that is a bug
 * in the codec, not in the input. The first decoder error ends the run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "wire.h"

/* wire.h promises an input buffer of "about cap + 64 at most"; the unit
 * test allows 4 KiB of slack for the unpacker's own bookkeeping. */
#define ALLOC_SLACK 4096
/* msgpack-c allocates a msgpack_object (24 bytes) per declared array or map
 * element when it reads the header. Every element takes at least one byte,
 * so a decoder that refuses what cannot fit in its cap holds at most 24 *
 * cap bytes of objects; zone chunks round a request up to at most twice its
 * size (8 KiB minimum). */
#define OBJ_SIZE 24
#define ZONE_SLACK (2 * 8192)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* From the sanitizer runtime (ASan, which the fuzz build uses); weak so the
 * target still links without one, and the memory check is then skipped. */
size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));

static size_t heap_now(void) {
  return __sanitizer_get_current_allocated_bytes
             ? __sanitizer_get_current_allocated_bytes()
             : 0;
}

/* Report a broken invariant and crash, so libFuzzer saves the input. */
static void fail(const char *what, int type) {
  if (type != 0)
    fprintf(stderr, "fuzz_wire: %s (type %d %s)\n", what, type,
            cl_msg_type_name(type));
  else
    fprintf(stderr, "fuzz_wire: %s\n", what);
  abort();
}

/* xorshift32: cheap, deterministic from the two seed bytes. */
static uint32_t next_rand(uint32_t *s) {
  uint32_t x = *s;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  *s = x;
  return x;
}

/* Length of the next chunk: mostly small, so frame headers and bodies get
 * split everywhere, sometimes all that is left. */
static size_t chunk_len(uint32_t *s, size_t left) {
  uint32_t r = next_rand(s);
  size_t n;
  switch (r & 3) {
  case 0: n = 1; break;
  case 1: n = 1 + ((r >> 2) & 15); break;
  case 2: n = 1 + ((r >> 2) & 1023); break;
  default: n = left; break;
  }
  return n < left ? n : left;
}

static int id_eq(const char *a, const char *b) { return strcmp(a, b) == 0; }

static int configure_eq(const cl_configure_t *a, const cl_configure_t *b) {
  uint32_t i;
  if (!id_eq(a->self, b->self) || a->tokens != b->tokens ||
      a->rank != b->rank || a->nservers != b->nservers ||
      a->lockstep != b->lockstep || a->jitter_ms != b->jitter_ms ||
      a->seed != b->seed || a->nout != b->nout || a->nin != b->nin ||
      a->config_id != b->config_id)
    return 0;
  for (i = 0; i < a->nout; i++)
    if (!id_eq(a->out[i].id, b->out[i].id) ||
        strcmp(a->out[i].addr, b->out[i].addr) != 0)
      return 0;
  for (i = 0; i < a->nin; i++)
    if (!id_eq(a->in[i], b->in[i]))
      return 0;
  return 1;
}

static int counts_eq(uint32_t n, const cl_chan_count_t *a,
                     const cl_chan_count_t *b) {
  uint32_t i;
  for (i = 0; i < n; i++)
    if (!id_eq(a[i].peer, b[i].peer) || a[i].count != b[i].count)
      return 0;
  return 1;
}

static int state_eq(const cl_local_state_t *a, const cl_local_state_t *b) {
  uint32_t i;
  if (a->snapshot_id != b->snapshot_id || !id_eq(a->server, b->server) ||
      a->tokens != b->tokens || a->initial_tokens != b->initial_tokens ||
      a->nrecorded != b->nrecorded || a->nsent != b->nsent ||
      a->nrecv != b->nrecv)
    return 0;
  for (i = 0; i < a->nrecorded; i++)
    if (!id_eq(a->recorded[i].src, b->recorded[i].src) ||
        a->recorded[i].seq != b->recorded[i].seq ||
        a->recorded[i].count != b->recorded[i].count ||
        a->recorded[i].n != b->recorded[i].n)
      return 0;
  return counts_eq(a->nsent, a->sent, b->sent) &&
         counts_eq(a->nrecv, a->recv, b->recv);
}

static int status_eq(const cl_status_t *a, const cl_status_t *b) {
  uint32_t i;
  if (!id_eq(a->self, b->self) || a->tokens != b->tokens ||
      a->initial_tokens != b->initial_tokens || a->lockstep != b->lockstep ||
      a->configured != b->configured || a->nout != b->nout ||
      a->nin != b->nin || a->nactive != b->nactive || a->ndone != b->ndone ||
      a->config_id != b->config_id || a->epoch != b->epoch ||
      a->frozen != b->frozen || a->paused != b->paused ||
      a->discarded != b->discarded || a->restored_id != b->restored_id)
    return 0;
  for (i = 0; i < a->nout; i++)
    if (!id_eq(a->out[i].peer, b->out[i].peer) ||
        a->out[i].sent != b->out[i].sent ||
        a->out[i].connected != b->out[i].connected ||
        a->out[i].queued_bytes != b->out[i].queued_bytes)
      return 0;
  for (i = 0; i < a->nin; i++)
    if (!id_eq(a->in[i].peer, b->in[i].peer) ||
        a->in[i].received != b->in[i].received ||
        a->in[i].connected != b->in[i].connected ||
        a->in[i].held != b->in[i].held)
      return 0;
  for (i = 0; i < a->nactive; i++)
    if (a->active[i] != b->active[i])
      return 0;
  for (i = 0; i < a->ndone; i++)
    if (a->done[i] != b->done[i])
      return 0;
  return 1;
}

/* Field-for-field equality of two decoded messages. Text fields compare as
 * C strings: that is all a caller can see of them. */
static int msg_eq(const cl_msg_t *a, const cl_msg_t *b) {
  uint32_t i;
  if (a->type != b->type || a->req != b->req)
    return 0;
  switch (a->type) {
  case CL_MSG_HELLO:
    return id_eq(a->u.hello.from, b->u.hello.from) &&
           id_eq(a->u.hello.to, b->u.hello.to) &&
           a->u.hello.config_id == b->u.hello.config_id &&
           a->u.hello.incarnation == b->u.hello.incarnation &&
           a->u.hello.epoch == b->u.hello.epoch;
  case CL_MSG_WELCOME:
    return id_eq(a->u.welcome.from, b->u.welcome.from) &&
           a->u.welcome.received == b->u.welcome.received;
  case CL_MSG_ACK:
    return a->u.ack.received == b->u.ack.received;
  case CL_MSG_CHALLENGE:
    return memcmp(a->u.challenge.nonce, b->u.challenge.nonce,
                  CL_AUTH_NONCE) == 0 &&
           a->u.challenge.required == b->u.challenge.required;
  case CL_MSG_AUTH:
    return memcmp(&a->u.auth, &b->u.auth, sizeof a->u.auth) == 0;
  case CL_MSG_AUTH_OK:
    return memcmp(a->u.auth_ok.mac, b->u.auth_ok.mac, CL_AUTH_MAC) == 0;
  case CL_MSG_TOKEN:
    return a->u.token.seq == b->u.token.seq && a->u.token.n == b->u.token.n;
  case CL_MSG_MARKER:
    return a->u.marker.snapshot_id == b->u.marker.snapshot_id;
  case CL_MSG_CLIENT:
    return id_eq(a->u.client.name, b->u.client.name);
  case CL_MSG_CONFIGURE:
    return configure_eq(&a->u.configure, &b->u.configure);
  case CL_MSG_CONNECT:
  case CL_MSG_STATUS:
  case CL_MSG_SHUTDOWN:
  case CL_MSG_NEXT_ID:
    return 1;
  case CL_MSG_SEND:
    return id_eq(a->u.send.dest, b->u.send.dest) && a->u.send.n == b->u.send.n;
  case CL_MSG_SNAPSHOT:
    return a->u.snapshot.has_id == b->u.snapshot.has_id &&
           a->u.snapshot.snapshot_id == b->u.snapshot.snapshot_id;
  case CL_MSG_COLLECT:
    return a->u.collect.snapshot_id == b->u.collect.snapshot_id &&
           a->u.collect.release == b->u.collect.release;
  case CL_MSG_DELIVER:
    return id_eq(a->u.deliver.src, b->u.deliver.src);
  case CL_MSG_CIRCULATE:
    return a->u.circulate.on == b->u.circulate.on;
  case CL_MSG_WATCH:
    return a->u.watch.first == b->u.watch.first &&
           a->u.watch.count == b->u.watch.count;
  case CL_MSG_DROP:
    return a->u.drop.snapshot_id == b->u.drop.snapshot_id &&
           a->u.drop.started == b->u.drop.started;
  case CL_MSG_FREEZE:
    return a->u.freeze.epoch == b->u.freeze.epoch;
  case CL_MSG_RESTORE:
    return a->u.restore.epoch == b->u.restore.epoch &&
           a->u.restore.paused == b->u.restore.paused &&
           state_eq(&a->u.restore.state, &b->u.restore.state);
  case CL_MSG_RESUME:
  case CL_MSG_PEEK:
    return 1;
  case CL_MSG_OK:
    if (a->u.ok.snapshot_id != b->u.ok.snapshot_id ||
        a->u.ok.nsent != b->u.ok.nsent ||
        a->u.ok.delivered_kind != b->u.ok.delivered_kind ||
        a->u.ok.delivered_value != b->u.ok.delivered_value)
      return 0;
    for (i = 0; i < a->u.ok.nsent; i++) {
      const cl_sent_t *x = &a->u.ok.sent[i], *y = &b->u.ok.sent[i];
      if (!id_eq(x->dest, y->dest) || x->kind != y->kind ||
          x->value != y->value || x->seq != y->seq)
        return 0;
    }
    return 1;
  case CL_MSG_ERROR:
    return a->u.error.code == b->u.error.code &&
           strcmp(a->u.error.text, b->u.error.text) == 0;
  case CL_MSG_STATE:
  case CL_MSG_LOCAL_STATE:
    return state_eq(&a->u.state, &b->u.state);
  case CL_MSG_STATUS_R:
    return status_eq(&a->u.status, &b->u.status);
  case CL_MSG_COMPLETE:
    return a->u.complete.snapshot_id == b->u.complete.snapshot_id &&
           id_eq(a->u.complete.server, b->u.complete.server);
  case CL_MSG_NOTICE:
    return id_eq(a->u.notice.peer, b->u.notice.peer) &&
           strcmp(a->u.notice.text, b->u.notice.text) == 0;
  default:
    return 0;
  }
}

/* Decode exactly one frame from buf with a fresh decoder whose cap is the
 * frame's own size (wire.h: a frame of exactly cap bytes is accepted); this
 * also keeps the decoder's buffer small, which matters for speed under ASan.
 * Aborts unless buf is one whole valid frame. */
static void decode_one(const char *buf, size_t len, cl_msg_t *out, int type) {
  cl_wire_decoder_t *d = cl_wire_decoder_new(len);
  cl_msg_t extra;
  if (d == NULL)
    fail("out of memory", type);
  if (cl_wire_decoder_feed(d, buf, len) != 0)
    fail("re-encoded frame refused by feed", type);
  if (cl_wire_next(d, out) != 1)
    fail("re-encoded frame does not decode", type);
  if (cl_wire_next(d, &extra) != 0 || cl_wire_decoder_buffered(d) != 0)
    fail("re-encoded frame leaves bytes behind", type);
  cl_wire_decoder_free(d);
}

/* The round trip of one decoded message. */
static void check_roundtrip(const cl_msg_t *m) {
  msgpack_sbuffer sb1, sb2;
  cl_msg_t again;
  msgpack_sbuffer_init(&sb1);
  msgpack_sbuffer_init(&sb2);
  if (cl_wire_encode(m, &sb1) != 0)
    fail("decoded message does not encode", m->type);
  decode_one(sb1.data, sb1.size, &again, m->type);
  if (!msg_eq(m, &again))
    fail("decode(encode(m)) differs from m", m->type);
  if (cl_wire_encode(&again, &sb2) != 0 || sb1.size != sb2.size ||
      memcmp(sb1.data, sb2.data, sb1.size) != 0)
    fail("encoding is not stable across a round trip", m->type);
  /* The hot-path encoders must produce the very same frames. */
  if (m->type == CL_MSG_TOKEN || m->type == CL_MSG_MARKER) {
    sb2.size = 0;
    if ((m->type == CL_MSG_TOKEN
             ? cl_wire_encode_token(&sb2, m->u.token.seq, m->u.token.n)
             : cl_wire_encode_marker(&sb2, m->u.marker.snapshot_id)) != 0 ||
        sb1.size != sb2.size || memcmp(sb1.data, sb2.data, sb1.size) != 0)
      fail("fast-path encoder differs from cl_wire_encode", m->type);
  }
  cl_msg_free(&again);
  msgpack_sbuffer_destroy(&sb1);
  msgpack_sbuffer_destroy(&sb2);
}

/* The decoder's stated bounds, checked after every chunk. */
static void check_bounds(const cl_wire_decoder_t *d, size_t cap) {
  if (cl_wire_decoder_buffered(d) > cap)
    fail("decoder holds more than its cap", 0);
  if (cl_wire_decoder_allocated(d) > cap + 64 + ALLOC_SLACK)
    fail("decoder input buffer grew past cap + 64 (+slack)", 0);
}

/* The decoder's whole heap, measured against what it had when new: objects
 * for at most cap declared elements, and the input buffer (twice: msgpack
 * keeps the old buffer alive while a partial frame still points into it).
 * Called after a drain, when every decoded message has been freed. */
static void check_heap(size_t base, size_t cap) {
  size_t now = heap_now(), most;
  most = 2 * OBJ_SIZE * cap + ZONE_SLACK + 2 * (cap + 64 + ALLOC_SLACK);
  if (base != 0 && now > base && now - base > most) {
    fprintf(stderr, "fuzz_wire: decoder heap grew by %zu bytes, cap %zu\n",
            now - base, cap);
    fail("decoder memory not bounded by its cap", 0);
  }
}

/* Take every complete frame. Returns 0 or the decoder's error. */
static int drain(cl_wire_decoder_t *d) {
  static const cl_msg_t zero;
  cl_msg_t m;
  int rc;
  while ((rc = cl_wire_next(d, &m)) == 1) {
    if (strcmp(cl_msg_type_name(m.type), "UNKNOWN") == 0)
      fail("decoded a message of unknown type", m.type);
    check_roundtrip(&m);
    cl_msg_free(&m);
  }
  if (memcmp(&m, &zero, sizeof m) != 0)
    fail("message not zeroed when no frame was returned", m.type);
  if (rc < 0) {
    /* Errors stick: the transport relies on it to close exactly once. */
    if (cl_wire_next(d, &m) != rc || memcmp(&m, &zero, sizeof m) != 0)
      fail("decoder error did not stick", 0);
  }
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cl_wire_decoder_t *d;
  size_t cap, off = 2, base;
  uint32_t seed;
  unsigned k = 0;
  if (size < 2)
    return 0;
  cap = (size_t)64 << (data[0] % 15);
  seed = ((uint32_t)data[0] << 8 | data[1]) * 2654435761u + 1;
  if (seed == 0)
    seed = 1;
  base = heap_now();
  d = cl_wire_decoder_new(cap);
  if (d == NULL)
    return 0;
  while (off < size) {
    size_t len = chunk_len(&seed, size - off);
    int rc;
    if (k++ % 2 == 0) {
      char *buf;
      size_t avail;
      rc = cl_wire_decoder_reserve(d, len, &buf, &avail);
      if (rc < 0)
        break;
      /* reserve promises room for at least one byte when it succeeds;
       * zero would make a read loop spin. */
      if (avail == 0)
        fail("reserve succeeded with no room", 0);
      if (len > avail)
        len = avail;
      memcpy(buf, data + off, len);
      cl_wire_decoder_consumed(d, len);
    } else {
      rc = cl_wire_decoder_feed(d, (const char *)data + off, len);
      if (rc < 0)
        break;
    }
    off += len;
    check_bounds(d, cap);
    rc = drain(d);
    check_heap(base, cap);
    if (rc < 0)
      break;
  }
  cl_wire_decoder_free(d);
  return 0;
}
