/* Peer channels. Outbound: one TCP connection per outbound peer, opened by
 * CONNECT with retries, HELLO as its first frame, frames appended to a
 * per-channel buffer and written once per loop turn (double buffered),
 * optionally delayed by a per-message jitter (FIFO kept), bounded by the
 * write cap. Inbound: channel state, lockstep held FIFOs (bounded: a channel
 * holding more than CL_HELD_MAX messages is not read until drained), and
 * free-running delivery straight into the node. Also circulate mode and the
 * node-actions -> frames step.
 */
#include "daemon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void out_attempt(cl_out_chan_t *ch);

/* splitmix64: small, seedable, good enough for send delays. */
static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* 1 if outbound messages wait out a random delay. */
static int jitter_on(const cl_daemon_t *d) {
  return d->jitter_ms > 0 && !d->lockstep;
}

/* Ensure sb can take n more bytes without reallocating. 0 or CL_ENOMEM. */
static int sbuf_reserve(msgpack_sbuffer *sb, size_t n) {
  size_t want;
  char *p;
  if (sb->alloc - sb->size >= n)
    return 0;
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

/* Grow a ring buffer of `esz`-byte entries to twice its capacity, keeping
 * order and moving the head to 0. 0 or CL_ENOMEM. */
static int ring_grow(void **v, size_t esz, size_t *head, size_t count,
                     size_t *cap) {
  size_t ncap = *cap ? *cap * 2 : 64, i;
  char *nv = malloc(ncap * esz);
  const char *ov = *v;
  if (nv == NULL)
    return CL_ENOMEM;
  for (i = 0; i < count; i++)
    memcpy(nv + i * esz, ov + ((*head + i) % *cap) * esz, esz);
  free(*v);
  *v = nv;
  *head = 0;
  *cap = ncap;
  return 0;
}

/* Create the node and the channels from a CONFIGURE. Nothing is kept on
 * failure. Returns 0, CL_EINVAL or CL_ENOMEM. */
int cl_peer_setup(cl_daemon_t *d, const cl_configure_t *cfg) {
  cl_node_config_t nc;
  const char **outs = NULL, **ins = NULL;
  cl_node_t *node = NULL;
  size_t i, j;
  int r = CL_ENOMEM;

  outs = calloc(cfg->nout ? cfg->nout : 1, sizeof *outs);
  ins = calloc(cfg->nin ? cfg->nin : 1, sizeof *ins);
  if (outs == NULL || ins == NULL)
    goto fail;
  for (i = 0; i < cfg->nout; i++)
    outs[i] = cfg->out[i].id;
  for (i = 0; i < cfg->nin; i++)
    ins[i] = cfg->in[i];
  memset(&nc, 0, sizeof nc);
  nc.self = cfg->self;
  nc.tokens = cfg->tokens;
  nc.nout = cfg->nout;
  nc.out = outs;
  nc.nin = cfg->nin;
  nc.in = ins;
  nc.max_kept = d->max_kept;
  r = cl_node_new(&nc, &node);
  if (r < 0)
    goto fail;
  r = CL_ENOMEM;
  d->nout = cl_node_nout(node);
  d->nin = cl_node_nin(node);
  d->out = calloc(d->nout ? d->nout : 1, sizeof *d->out);
  d->in = calloc(d->nin ? d->nin : 1, sizeof *d->in);
  if (d->out == NULL || d->in == NULL)
    goto fail_arrays;
  for (i = 0; i < d->nout; i++) {
    cl_out_chan_t *ch = &d->out[i];
    cl_msg_t hello;
    char host[CL_ADDR_SIZE];
    int port;
    ch->d = d;
    ch->index = (uint32_t)i;
    snprintf(ch->id, sizeof ch->id, "%s", cl_node_out_id(node, i));
    for (j = 0; j < cfg->nout; j++)
      if (strcmp(cfg->out[j].id, ch->id) == 0)
        snprintf(ch->addr, sizeof ch->addr, "%s", cfg->out[j].addr);
    msgpack_sbuffer_init(&ch->out.pend);
    msgpack_sbuffer_init(&ch->out.fly);
    /* HELLO goes first so that nothing queued later can precede it. */
    memset(&hello, 0, sizeof hello);
    hello.type = CL_MSG_HELLO;
    memcpy(hello.u.hello.from, cfg->self, CL_ID_SIZE);
    memcpy(hello.u.hello.to, ch->id, CL_ID_SIZE);
    r = cl_wire_encode(&hello, &ch->out.pend);
    if (r < 0)
      goto fail_arrays;
    if (cl_addr_split(ch->addr, host, &port) < 0) {
      r = CL_EINVAL;
      goto fail_arrays;
    }
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ch->sa) == 0 ||
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ch->sa) == 0)
      ch->have_sa = 1;
  }
  for (i = 0; i < d->nin; i++)
    snprintf(d->in[i].id, sizeof d->in[i].id, "%s", cl_node_in_id(node, i));
  /* Nothing below can fail: timers are initialised last so that a failed
   * setup leaves no handle behind. */
  for (i = 0; i < d->nout; i++) {
    uv_timer_init(d->loop, &d->out[i].retry);
    d->out[i].retry.data = &d->out[i];
  }
  free(outs);
  free(ins);
  d->node = node;
  d->lockstep = cfg->lockstep != 0;
  d->jitter_ms = cfg->jitter_ms;
  d->rng = cfg->seed;
  d->rank = cfg->rank;
  d->nservers = cfg->nservers;
  cl_actions_init(&d->acts);
  return 0;

fail_arrays:
  if (d->out != NULL)
    for (i = 0; i < d->nout; i++) {
      msgpack_sbuffer_destroy(&d->out[i].out.pend);
      msgpack_sbuffer_destroy(&d->out[i].out.fly);
    }
  free(d->out);
  free(d->in);
  d->out = NULL;
  d->in = NULL;
  d->nout = d->nin = 0;
fail:
  cl_node_free(node);
  free(outs);
  free(ins);
  return r;
}

/* Bytes queued on outbound channel i: both buffers plus the jitter queue at
 * its worst-case frame size. */
size_t cl_peer_queued(const cl_daemon_t *d, size_t i) {
  const cl_out_chan_t *ch = &d->out[i];
  return ch->out.pend.size + ch->out.fly.size + ch->jcount * CL_FRAME_EST;
}

/* Make room for one more frame on channel i so queuing it cannot fail. */
int cl_peer_reserve(cl_daemon_t *d, size_t i) {
  cl_out_chan_t *ch = &d->out[i];
  if (jitter_on(d)) {
    if (ch->jcount < ch->jcap)
      return 0;
    return ring_grow((void **)&ch->jq, sizeof *ch->jq, &ch->jhead,
                     ch->jcount, &ch->jcap);
  }
  return sbuf_reserve(&ch->out.pend, CL_FRAME_EST);
}

/* Room for one frame on every outbound channel (a marker may go to all). */
int cl_peer_reserve_all(cl_daemon_t *d) {
  size_t i;
  int r;
  for (i = 0; i < d->nout; i++)
    if ((r = cl_peer_reserve(d, i)) < 0)
      return r;
  return 0;
}

/* Append one TOKEN/MARKER frame to channel ch's pending buffer. */
static void out_encode(cl_out_chan_t *ch, uint8_t kind, uint64_t a,
                       int64_t n) {
  int r = kind == CL_NODE_TOKEN ? cl_wire_encode_token(&ch->out.pend, a, n)
                                : cl_wire_encode_marker(&ch->out.pend, a);
  if (r < 0)
    cl_log_error("cannot queue %s on channel %s->%s: %s",
                 kind == CL_NODE_TOKEN ? "TOKEN" : "MARKER",
                 cl_node_self(ch->d->node), ch->id, cl_strerror(r));
}

/* Jitter timer: move every message whose delay is over into its channel's
 * buffer, then re-arm for the earliest one left. */
static void jitter_cb(uv_timer_t *t) {
  cl_daemon_t *d = t->data;
  uint64_t now = uv_now(d->loop), next = 0;
  size_t i;
  d->jit_next = 0;
  for (i = 0; i < d->nout; i++) {
    cl_out_chan_t *ch = &d->out[i];
    while (ch->jcount > 0 && ch->jq[ch->jhead].due <= now) {
      cl_jit_t *e = &ch->jq[ch->jhead];
      if (sbuf_reserve(&ch->out.pend, CL_FRAME_EST) < 0)
        break; /* try again on the next tick */
      out_encode(ch, e->kind, e->a, e->n);
      ch->jhead = (ch->jhead + 1) % ch->jcap;
      ch->jcount--;
    }
    if (ch->jcount > 0) {
      uint64_t due = ch->jq[ch->jhead].due;
      if (due <= now)
        due = now + 1;
      if (next == 0 || due < next)
        next = due;
    }
  }
  if (next != 0 && !d->stopping) {
    d->jit_next = next;
    uv_timer_start(&d->jitter_timer, jitter_cb, next - now, 0);
  }
}

/* Queue one peer message on outbound channel i (reserved beforehand). */
static void out_emit(cl_daemon_t *d, uint32_t i, uint8_t kind, uint64_t a,
                     int64_t n) {
  cl_out_chan_t *ch = &d->out[i];
  if (ch->state == CL_OUT_LOST) {
    cl_log_debug("dropping %s for lost channel %s->%s",
                 kind == CL_NODE_TOKEN ? "TOKEN" : "MARKER", d->id, ch->id);
    return;
  }
  if (jitter_on(d)) {
    uint64_t now = uv_now(d->loop);
    uint64_t due = now + rng_next(&d->rng) % ((uint64_t)d->jitter_ms + 1);
    cl_jit_t *e;
    if (due < ch->last_due)
      due = ch->last_due; /* a channel stays FIFO */
    ch->last_due = due;
    if (ch->jcount == ch->jcap &&
        ring_grow((void **)&ch->jq, sizeof *ch->jq, &ch->jhead, ch->jcount,
                  &ch->jcap) < 0) {
      cl_log_error("out of memory queuing on channel %s->%s", d->id, ch->id);
      return;
    }
    e = &ch->jq[(ch->jhead + ch->jcount) % ch->jcap];
    e->due = due;
    e->kind = kind;
    e->a = a;
    e->n = n;
    ch->jcount++;
    if (d->jit_next == 0 || due < d->jit_next) {
      d->jit_next = due;
      uv_timer_start(&d->jitter_timer, jitter_cb, due - now, 0);
    }
    return;
  }
  out_encode(ch, kind, a, n);
}

/* Remember a sent message for the reply of the command being handled. */
static void note_sent(cl_daemon_t *d, const cl_action_t *a) {
  cl_sent_t *s;
  if (d->nsent == d->sent_cap) {
    size_t ncap = d->sent_cap ? d->sent_cap * 2 : 16;
    cl_sent_t *nv = realloc(d->sent, ncap * sizeof *nv);
    if (nv == NULL) {
      cl_log_error("out of memory listing sent messages");
      return;
    }
    d->sent = nv;
    d->sent_cap = ncap;
  }
  s = &d->sent[d->nsent++];
  memset(s, 0, sizeof *s);
  snprintf(s->dest, sizeof s->dest, "%s", d->out[a->peer].id);
  s->kind = a->msg;
  s->value = a->msg == CL_NODE_TOKEN ? (uint64_t)a->n : a->snapshot_id;
  s->seq = a->msg == CL_NODE_TOKEN ? a->seq : 0;
}

/* Carry out the node's actions: frames, completion notices, evictions. */
void cl_peer_apply(cl_daemon_t *d) {
  size_t k;
  for (k = 0; k < d->acts.n; k++) {
    const cl_action_t *a = &d->acts.v[k];
    switch (a->kind) {
    case CL_ACT_SEND:
      if (a->peer >= d->nout)
        break;
      if (a->msg == CL_NODE_TOKEN) {
        out_emit(d, a->peer, CL_NODE_TOKEN, a->seq, a->n);
        cl_log_debug("send TOKEN seq %llu n %lld to %s",
                     (unsigned long long)a->seq, (long long)a->n,
                     d->out[a->peer].id);
      } else {
        out_emit(d, a->peer, CL_NODE_MARKER, a->snapshot_id, 0);
        cl_log_debug("send MARKER %llu to %s",
                     (unsigned long long)a->snapshot_id, d->out[a->peer].id);
      }
      if (d->collect)
        note_sent(d, a);
      break;
    case CL_ACT_COMPLETE:
      cl_log_info("snapshot %llu complete",
                  (unsigned long long)a->snapshot_id);
      cl_control_complete(d, a->snapshot_id);
      break;
    case CL_ACT_EVICT:
      cl_log_warn("dropped the kept state of snapshot %llu (over --max-kept "
                  "%zu; collect with release=1 to keep up)",
                  (unsigned long long)a->snapshot_id,
                  d->max_kept ? d->max_kept : (size_t)CL_NODE_DEFAULT_KEPT);
      break;
    default:
      break;
    }
  }
  cl_actions_clear(&d->acts);
}

/* Hand a node error on inbound i to the log/close path with a clear text. */
static void inbound_reason(cl_daemon_t *d, size_t i, const cl_held_t *h,
                           int r, char *why, size_t whysz) {
  if (h->kind == CL_NODE_TOKEN && r == CL_ESEQ)
    snprintf(why, whysz, "TOKEN seq %llu out of order (expected %llu)",
             (unsigned long long)h->a,
             (unsigned long long)(cl_node_received(d->node, i) + 1));
  else if (h->kind == CL_NODE_MARKER && r == CL_EDUP)
    snprintf(why, whysz, "duplicate MARKER for snapshot %llu",
             (unsigned long long)h->a);
  else if (h->kind == CL_NODE_MARKER && r == CL_EFULL)
    snprintf(why, whysz, "MARKER for snapshot %llu would start one more than "
             "the %d snapshots in progress allowed", (unsigned long long)h->a,
             CL_NODE_ACTIVE_MAX);
  else if (h->kind == CL_NODE_TOKEN)
    snprintf(why, whysz, "bad TOKEN seq %llu n %lld: %s",
             (unsigned long long)h->a, (long long)h->n, cl_strerror(r));
  else
    snprintf(why, whysz, "bad MARKER %llu: %s", (unsigned long long)h->a,
             cl_strerror(r));
}

/* Hand one peer message on inbound i to the node. 0 or a CL_E error (the
 * node is then unchanged; `why` says what was wrong). */
static int inbound_handle(cl_daemon_t *d, size_t i, const cl_held_t *h,
                          char *why, size_t whysz) {
  int r;
  if (h->kind == CL_NODE_MARKER) {
    r = cl_peer_reserve_all(d);
    if (r == 0)
      r = cl_node_receive_marker(d->node, (uint32_t)i, h->a, &d->acts);
  } else {
    r = cl_node_receive_token(d->node, (uint32_t)i, h->a, h->n, &d->acts);
  }
  if (r < 0) {
    inbound_reason(d, i, h, r, why, whysz);
    return r;
  }
  cl_log_debug("received %s %llu on %s->%s",
               h->kind == CL_NODE_TOKEN ? "TOKEN seq" : "MARKER",
               (unsigned long long)h->a, d->in[i].id, d->id);
  cl_peer_apply(d);
  return 0;
}

/* A TOKEN or MARKER arrived on peer connection c. Free-running: handle it
 * now. Lockstep: hold it, serve a parked DELIVER, stop reading past the
 * bound. */
void cl_peer_inbound(cl_conn_t *c, const cl_msg_t *m) {
  cl_daemon_t *d = c->d;
  cl_in_chan_t *ch = &d->in[c->in];
  cl_held_t h;
  char why[200];

  h.kind = m->type == CL_MSG_TOKEN ? CL_NODE_TOKEN : CL_NODE_MARKER;
  h.a = h.kind == CL_NODE_TOKEN ? m->u.token.seq : m->u.marker.snapshot_id;
  h.n = h.kind == CL_NODE_TOKEN ? m->u.token.n : 0;
  if (!d->lockstep) {
    if (inbound_handle(d, (size_t)c->in, &h, why, sizeof why) < 0)
      cl_conn_fail(c, "%s", why);
    return;
  }
  if (ch->hcount == ch->hcap &&
      ring_grow((void **)&ch->held, sizeof *ch->held, &ch->hhead, ch->hcount,
                &ch->hcap) < 0) {
    cl_conn_fail(c, "out of memory holding messages");
    return;
  }
  ch->held[(ch->hhead + ch->hcount) % ch->hcap] = h;
  ch->hcount++;
  cl_log_debug("holding %s %llu from %s (%zu held)",
               h.kind == CL_NODE_TOKEN ? "TOKEN seq" : "MARKER",
               (unsigned long long)h.a, ch->id, ch->hcount);
  if (ch->phead != NULL) {
    cl_control_deliver_parked(d, (size_t)c->in);
    return;
  }
  if (ch->hcount > CL_HELD_MAX && !c->paused) {
    /* Bound memory: the sender's bytes wait in the kernel until DELIVERs
     * drain this channel. */
    c->paused = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    cl_log_debug("channel %s->%s holds %zu messages; not reading it", ch->id,
                 d->id, ch->hcount);
  }
}

/* One msgpack unsigned integer in its shortest forms (what the encoder
 * writes): 1 and *v, *len; 0 when more bytes are needed; -1 for any other
 * form (the generic decoder then judges it). */
static int fast_uint(const unsigned char *p, size_t n, uint64_t *v,
                     size_t *len) {
  size_t k, i;
  if (n == 0)
    return 0;
  if (p[0] <= 0x7f) {
    *v = p[0];
    *len = 1;
    return 1;
  }
  switch (p[0]) {
  case 0xcc: k = 1; break;
  case 0xcd: k = 2; break;
  case 0xce: k = 4; break;
  case 0xcf: k = 8; break;
  default: return -1;
  }
  if (n < k + 1)
    return 0;
  *v = 0;
  for (i = 1; i <= k; i++)
    *v = (*v << 8) | p[i];
  *len = k + 1;
  return 1;
}

/* Hand a run of one-token messages (consecutive seqs from first) on
 * c's inbound channel to the node. 0, or the node's error after failing the
 * connection with the refused message. */
static int fast_run(cl_conn_t *c, uint64_t first, uint64_t count) {
  cl_daemon_t *d = c->d;
  uint64_t done = 0, k;
  cl_held_t h;
  char why[200];
  int r;
  if (count == 0)
    return 0;
  r = cl_node_receive_ones(d->node, (uint32_t)c->in, first, count, &done);
  if (cl_log_enabled(CL_LOG_DEBUG))
    for (k = 0; k < done; k++)
      cl_log(CL_LOG_DEBUG, "received TOKEN seq %llu on %s->%s",
             (unsigned long long)(first + k), d->in[c->in].id, d->id);
  if (r < 0) {
    h.kind = CL_NODE_TOKEN;
    h.a = first + done;
    h.n = 1;
    inbound_reason(d, (size_t)c->in, &h, r, why, sizeof why);
    cl_conn_fail(c, "%s", why);
  }
  return r;
}

/* 1 if f (8 bytes) is the usual TOKEN frame under load, [2, seq, 1] with a
 * 32-bit seq, carrying sequence number seq. */
static int usual_token(const unsigned char *f, uint64_t seq) {
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  /* One load and two compares instead of eight byte loads. */
  uint64_t w;
  memcpy(&w, f, 8);
  return (w & 0xff00000000ffffffull) == 0x0100000000ce0293ull &&
         __builtin_bswap32((uint32_t)(w >> 24)) == seq;
#else
  return f[0] == 0x93 && f[1] == CL_MSG_TOKEN && f[2] == 0xce && f[7] == 1 &&
         ((uint64_t)f[3] << 24 | (uint64_t)f[4] << 16 | (uint64_t)f[5] << 8 |
          f[6]) == seq;
#endif
}

/* Free-running peer input parsed in place: TOKEN [2, seq, n] and MARKER
 * [3, id] in the encoder's forms go straight to the node, one-token
 * messages with consecutive seqs as one run, without the generic decoder's
 * allocation and copying per frame. Returns the bytes consumed: everything
 * but a trailing partial frame (*stop = 0), or up to a frame this parser
 * does not take (*stop = 1: the caller hands the rest to the generic
 * decoder, which accepts or rejects it exactly as ever), or up to where the
 * connection failed (c->closing). */
size_t cl_peer_fast_input(cl_conn_t *c, const char *buf, size_t n,
                          int *stop) {
  cl_daemon_t *d = c->d;
  const unsigned char *p = (const unsigned char *)buf;
  size_t off = 0, l1, l2;
  uint64_t a, b, first = 0, count = 0;
  cl_held_t h;
  char why[200];
  int r;
  *stop = 0;
  while (off < n && !c->closing && !d->stopping) {
    const unsigned char *f = p + off;
    size_t left = n - off;
    if (count > 0) {
      /* The hot loop: the run goes on while frames are the usual ones. */
      while (left >= 8 && usual_token(f, first + count)) {
        count++;
        f += 8;
        left -= 8;
        off += 8;
      }
    }
    if (left < 2)
      break;
    if (f[0] == 0x93 && f[1] == CL_MSG_TOKEN) {
      r = fast_uint(f + 2, left - 2, &a, &l1);
      if (r > 0)
        r = fast_uint(f + 2 + l1, left - 2 - l1, &b, &l2);
      if (r == 0)
        break;
      if (r < 0 || a < 1 || b < 1 || b > (uint64_t)INT64_MAX) {
        *stop = 1;
        break;
      }
      off += 2 + l1 + l2;
      if (b == 1 && count > 0 && a == first + count) {
        count++;
        continue;
      }
      if (fast_run(c, first, count) < 0)
        return off;
      count = 0;
      if (b == 1) {
        first = a;
        count = 1;
        continue;
      }
      h.kind = CL_NODE_TOKEN;
      h.a = a;
      h.n = (int64_t)b;
    } else if (f[0] == 0x92 && f[1] == CL_MSG_MARKER) {
      r = fast_uint(f + 2, left - 2, &a, &l1);
      if (r == 0)
        break;
      if (r < 0) {
        *stop = 1;
        break;
      }
      /* Tokens before the marker are handled before it. */
      if (fast_run(c, first, count) < 0)
        return off;
      count = 0;
      off += 2 + l1;
      h.kind = CL_NODE_MARKER;
      h.a = a;
      h.n = 0;
    } else {
      *stop = 1;
      break;
    }
    if (inbound_handle(d, (size_t)c->in, &h, why, sizeof why) < 0) {
      cl_conn_fail(c, "%s", why);
      return off;
    }
  }
  if (!c->closing && !d->stopping && fast_run(c, first, count) < 0)
    return off;
  if (c->closing || d->stopping)
    *stop = 0;
  return off;
}

/* Lockstep DELIVER: handle the head held message from inbound i. */
int cl_peer_deliver(cl_daemon_t *d, size_t i, uint8_t *kind, uint64_t *value,
                    char *why, size_t whysz) {
  cl_in_chan_t *ch = &d->in[i];
  cl_held_t h;
  int r;
  if (ch->hcount == 0)
    return CL_EAGAIN;
  h = ch->held[ch->hhead];
  r = inbound_handle(d, i, &h, why, whysz);
  if (r < 0) {
    /* The stream from this peer cannot be trusted past a bad message:
     * drop what is held and fail the channel. */
    ch->hcount = 0;
    ch->hhead = 0;
    if (ch->conn != NULL)
      cl_conn_fail(ch->conn, "%s", why);
    return r;
  }
  ch->hhead = (ch->hhead + 1) % ch->hcap;
  ch->hcount--;
  *kind = h.kind;
  *value = h.kind == CL_NODE_TOKEN ? (uint64_t)h.n : h.a;
  return 0;
}

/* Inbound channel i lost its connection. */
void cl_peer_inbound_lost(cl_daemon_t *d, size_t i, const char *why) {
  cl_in_chan_t *ch = &d->in[i];
  char text[CL_TEXT_SIZE];
  if (ch->state != CL_IN_UP)
    return;
  ch->state = CL_IN_LOST;
  ch->conn = NULL;
  if (d->stopping)
    return;
  snprintf(text, sizeof text, "lost channel %s->%s: %s", ch->id, d->id, why);
  cl_log_warn("%s", text);
  cl_control_notice(d, ch->id, text);
  cl_control_deliver_lost(d, i);
}

/* Close callback of an outbound handle that is not retried. */
static void out_closed_cb(uv_handle_t *h) {
  cl_out_chan_t *ch = h->data;
  ch->tcp_open = 0;
}

/* Outbound channel ch is gone after being up: log, NOTICE, drop its queue
 * (those messages can no longer be delivered), refuse further sends. */
static void out_lost(cl_out_chan_t *ch, int err, const char *why) {
  cl_daemon_t *d = ch->d;
  char text[CL_TEXT_SIZE];
  if (ch->state != CL_OUT_UP)
    return;
  ch->state = CL_OUT_LOST;
  ch->last_err = err;
  if (ch->tcp_open && !uv_is_closing((uv_handle_t *)&ch->tcp))
    uv_close((uv_handle_t *)&ch->tcp, out_closed_cb);
  ch->out.pend.size = 0;
  ch->jcount = 0;
  if (d->stopping)
    return;
  snprintf(text, sizeof text, "lost channel %s->%s: %s", d->id, ch->id, why);
  cl_log_warn("%s", text);
  cl_control_notice(d, ch->id, text);
  cl_control_connect_progress(d);
}

/* Backoff over: try again. */
static void out_retry_cb(uv_timer_t *t) { out_attempt(t->data); }

/* Retry after a failed connect attempt with exponential backoff (50 ms up to
 * 1 s), or give up once the CONNECT window is over. */
static void out_retry_later(cl_out_chan_t *ch) {
  cl_daemon_t *d = ch->d;
  uint64_t now = uv_now(d->loop), delay = ch->backoff_ms;
  if (d->stopping)
    return;
  if (now >= ch->deadline) {
    ch->state = CL_OUT_FAILED;
    cl_log_warn("cannot connect channel %s->%s to %s: %s", d->id, ch->id,
                ch->addr, cl_daemon_strerror(ch->last_err));
    cl_control_connect_progress(d);
    return;
  }
  if (delay > ch->deadline - now)
    delay = ch->deadline - now;
  cl_log_debug("connect %s->%s (%s): %s; retrying in %llu ms", d->id, ch->id,
               ch->addr, cl_daemon_strerror(ch->last_err),
               (unsigned long long)delay);
  ch->backoff_ms = ch->backoff_ms * 2 > 1000 ? 1000 : ch->backoff_ms * 2;
  uv_timer_start(&ch->retry, out_retry_cb, delay, 0);
}

/* Close callback after a failed attempt: the handle may be re-initialised
 * only now. */
static void out_retry_close_cb(uv_handle_t *h) {
  cl_out_chan_t *ch = h->data;
  ch->tcp_open = 0;
  out_retry_later(ch);
}

/* Static sink for bytes a receiver should never send us. */
static void out_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  static char sink[256];
  (void)h;
  (void)suggested;
  buf->base = sink;
  buf->len = sizeof sink;
}

/* Reading an outbound channel only detects its end. */
static void out_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  cl_out_chan_t *ch = s->data;
  (void)buf;
  if (nread > 0)
    out_lost(ch, CL_EPROTO, "unexpected bytes from the receiver");
  else if (nread < 0)
    out_lost(ch, (int)nread, cl_daemon_strerror((int)nread));
}

/* Connected (or not): up means HELLO and everything queued can go. */
static void out_connect_cb(uv_connect_t *req, int status) {
  cl_out_chan_t *ch = req->data;
  cl_daemon_t *d = ch->d;
  int r;
  if (d->stopping || status == UV_ECANCELED)
    return;
  uv_timer_stop(&ch->retry); /* the attempt's deadline timer */
  if (status < 0) {
    ch->last_err = status;
    uv_close((uv_handle_t *)&ch->tcp, out_retry_close_cb);
    return;
  }
  ch->state = CL_OUT_UP;
  uv_tcp_nodelay(&ch->tcp, 1);
  r = uv_read_start((uv_stream_t *)&ch->tcp, out_alloc_cb, out_read_cb);
  if (r < 0) {
    out_lost(ch, r, cl_daemon_strerror(r));
    return;
  }
  cl_log_info("channel %s->%s up (%s)", d->id, ch->id, ch->addr);
  cl_control_connect_progress(d);
}

/* Name resolution finished for a channel whose address is a host name. */
static void out_gai_cb(uv_getaddrinfo_t *req, int status,
                       struct addrinfo *res) {
  cl_out_chan_t *ch = req->data;
  char host[CL_ADDR_SIZE];
  int port = 0;
  ch->gai_busy = 0;
  if (ch->d->stopping || status == UV_EAI_CANCELED) {
    uv_freeaddrinfo(res);
    return;
  }
  if (status < 0 || res == NULL) {
    uv_freeaddrinfo(res);
    ch->last_err = status < 0 ? status : UV_EAI_NONAME;
    out_retry_later(ch);
    return;
  }
  memcpy(&ch->sa, res->ai_addr, res->ai_addrlen);
  uv_freeaddrinfo(res);
  cl_addr_split(ch->addr, host, &port);
  if (ch->sa.ss_family == AF_INET)
    ((struct sockaddr_in *)&ch->sa)->sin_port = htons((uint16_t)port);
  else
    ((struct sockaddr_in6 *)&ch->sa)->sin6_port = htons((uint16_t)port);
  ch->have_sa = 1;
  out_attempt(ch);
}

/* The CONNECT window ran out with a connect still pending (neither
 * accepted nor refused: e.g. SYNs dropped by a full listen backlog, which
 * the kernel would retry for about two minutes). Closing the handle cancels
 * the connect (its callback gets UV_ECANCELED); the close callback then
 * finds the window over and fails the channel, answering parked CONNECTs. */
static void out_connect_timeout_cb(uv_timer_t *t) {
  cl_out_chan_t *ch = t->data;
  if (ch->d->stopping || ch->state != CL_OUT_CONNECTING || !ch->tcp_open ||
      uv_is_closing((uv_handle_t *)&ch->tcp))
    return;
  ch->last_err = UV_ETIMEDOUT;
  uv_close((uv_handle_t *)&ch->tcp, out_retry_close_cb);
}

/* Shortest time a connect attempt is given, even at the end of the window
 * (the last retry starts at the deadline itself). */
#define CL_CONNECT_ATTEMPT_MIN_MS 100

/* One connect attempt (resolving the name first if needed). A started
 * connect is bounded by what is left of the CONNECT window. */
static void out_attempt(cl_out_chan_t *ch) {
  cl_daemon_t *d = ch->d;
  int r;
  if (d->stopping)
    return;
  if (!ch->have_sa) {
    char host[CL_ADDR_SIZE];
    int port;
    struct addrinfo hints;
    cl_addr_split(ch->addr, host, &port);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    ch->gai.data = ch;
    r = uv_getaddrinfo(d->loop, &ch->gai, out_gai_cb, host, NULL, &hints);
    if (r < 0) {
      ch->last_err = r;
      out_retry_later(ch);
      return;
    }
    ch->gai_busy = 1;
    return;
  }
  uv_tcp_init(d->loop, &ch->tcp);
  ch->tcp.data = ch;
  ch->tcp_open = 1;
  ch->creq.data = ch;
  r = uv_tcp_connect(&ch->creq, &ch->tcp, (const struct sockaddr *)&ch->sa,
                     out_connect_cb);
  if (r < 0) {
    ch->last_err = r;
    uv_close((uv_handle_t *)&ch->tcp, out_retry_close_cb);
    return;
  }
  {
    uint64_t now = uv_now(d->loop);
    uint64_t left = ch->deadline > now ? ch->deadline - now : 0;
    if (left < CL_CONNECT_ATTEMPT_MIN_MS)
      left = CL_CONNECT_ATTEMPT_MIN_MS;
    uv_timer_start(&ch->retry, out_connect_timeout_cb, left, 0);
  }
}

/* CONNECT: start every channel not yet up, connecting or lost. */
void cl_peer_connect_all(cl_daemon_t *d) {
  size_t i;
  d->connect_asked = 1;
  for (i = 0; i < d->nout; i++) {
    cl_out_chan_t *ch = &d->out[i];
    if (ch->state != CL_OUT_IDLE && ch->state != CL_OUT_FAILED)
      continue;
    ch->state = CL_OUT_CONNECTING;
    ch->deadline = uv_now(d->loop) + CL_CONNECT_WINDOW_MS;
    ch->backoff_ms = 50;
    ch->last_err = 0;
    out_attempt(ch);
  }
}

/* Summary of the outbound channels for parked CONNECTs. */
int cl_peer_connect_state(const cl_daemon_t *d, size_t *bad) {
  size_t i;
  int all = 1;
  for (i = 0; i < d->nout; i++) {
    switch (d->out[i].state) {
    case CL_OUT_UP:
      break;
    case CL_OUT_FAILED:
      *bad = i;
      return CL_EIO;
    case CL_OUT_LOST:
      *bad = i;
      return CL_ELOST;
    default:
      all = 0;
      break;
    }
  }
  return all;
}

/* Largest buffer an idle outbound channel keeps: a share of
 * CL_OUT_IDLE_BUDGET, so that a daemon with many channels gives idle memory
 * back (the next busy channel reuses it) and one with few keeps its
 * buffers and allocates nothing per write. */
static size_t out_keep(const cl_daemon_t *d) {
  size_t keep = CL_OUT_IDLE_BUDGET / (d->nout ? d->nout : 1);
  return keep < CL_OUT_KEEP_MIN ? CL_OUT_KEEP_MIN : keep;
}

/* Write callback of an outbound channel: `fly` may be reused. */
static void out_write_cb(uv_write_t *req, int status) {
  cl_out_chan_t *ch = req->data;
  ch->out.writing = 0;
  ch->out.fly.size = 0;
  if (ch->out.fly.alloc > out_keep(ch->d)) {
    msgpack_sbuffer_destroy(&ch->out.fly);
    msgpack_sbuffer_init(&ch->out.fly);
  }
  if (status < 0 && status != UV_ECANCELED)
    out_lost(ch, status, cl_daemon_strerror(status));
}

/* Write everything queued on ch since its last write. Most turns the
 * socket takes it all at once; an idle big buffer then goes back to the
 * heap, where the next busy channel reuses it: memory follows the channels
 * in use at once, not the sum of every channel's busiest turn. */
static void out_flush(cl_out_chan_t *ch) {
  int r;
  if (ch->state != CL_OUT_UP || ch->out.writing || ch->out.pend.size == 0)
    return;
  r = cl_outbuf_write(&ch->out, (uv_stream_t *)&ch->tcp, out_write_cb, ch,
                      out_keep(ch->d));
  if (r < 0)
    out_lost(ch, r, cl_daemon_strerror(r));
}

/* Bytes of a msgpack unsigned integer in its shortest form. */
static size_t uint_len(uint64_t v) {
  return v <= 0x7f ? 1 : v <= 0xff ? 2 : v <= 0xffff ? 3
         : v <= 0xffffffffu ? 5 : 9;
}

/* Write v as msgpack does (shortest form); returns the bytes written. */
static size_t put_uint(unsigned char *p, uint64_t v) {
  size_t k, i;
  if (v <= 0x7f) {
    p[0] = (unsigned char)v;
    return 1;
  }
  k = uint_len(v) - 1;
  p[0] = k == 1 ? 0xcc : k == 2 ? 0xcd : k == 4 ? 0xce : 0xcf;
  for (i = 0; i < k; i++)
    p[1 + i] = (unsigned char)(v >> (8 * (k - 1 - i)));
  return k + 1;
}

/* Circulate k tokens to outbound channel i (up, no jitter), one per TOKEN
 * message: the node moves them, the frames (the same bytes
 * cl_wire_encode_token writes) go straight into the pending buffer.
 * Returns the tokens sent. */
static size_t circ_send(cl_daemon_t *d, size_t i, size_t k) {
  cl_out_chan_t *ch = &d->out[i];
  unsigned char *p;
  uint64_t first, seq, j;
  int dbg = cl_log_enabled(CL_LOG_DEBUG);
  /* A one-token frame is at most 2 + 9 + 1 bytes. */
  if (k == 0 || sbuf_reserve(&ch->out.pend, k * 12) < 0 ||
      cl_node_send_ones(d->node, (uint32_t)i, k, &first) < 0)
    return 0;
  p = (unsigned char *)ch->out.pend.data + ch->out.pend.size;
  seq = first;
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  if (!dbg && seq > 0xffff && seq + k - 1 <= 0xffffffffu) {
    /* The usual frames under load, [2, seq, 1] with a 32-bit seq: one
     * 8-byte store each. */
    for (j = 0; j < k; j++, seq++, p += 8) {
      uint64_t w = 0x0100000000ce0293ull |
                   (uint64_t)__builtin_bswap32((uint32_t)seq) << 24;
      memcpy(p, &w, 8);
    }
    ch->out.pend.size = (size_t)((char *)p - ch->out.pend.data);
    return k;
  }
#endif
  for (j = 0; j < k; j++, seq++) {
    if (seq > 0xffff && seq <= 0xffffffffu) {
      /* The usual frame under load: 32-bit seq. */
      p[0] = 0x93;
      p[1] = CL_MSG_TOKEN;
      p[2] = 0xce;
      p[3] = (unsigned char)(seq >> 24);
      p[4] = (unsigned char)(seq >> 16);
      p[5] = (unsigned char)(seq >> 8);
      p[6] = (unsigned char)seq;
      p[7] = 1;
      p += 8;
    } else {
      p[0] = 0x93;
      p[1] = CL_MSG_TOKEN;
      p += 2;
      p += put_uint(p, seq);
      *p++ = 1;
    }
    if (dbg)
      cl_log(CL_LOG_DEBUG, "send TOKEN seq %llu n 1 to %s",
             (unsigned long long)seq, ch->id);
  }
  ch->out.pend.size = (size_t)((char *)p - ch->out.pend.data);
  return k;
}

/* Circulate mode: keep moving held tokens to outbound peers round-robin,
 * one token per message, while their queues are below the low-water mark.
 * Tokens are dealt out in passes: each channel under the mark gets its
 * share of what is held, at most what fills it to the mark. The budget
 * keeps one loop turn short. */
static void circulate(cl_daemon_t *d) {
  size_t budget = CL_CIRC_BUDGET, tried = 0, i = 0, sent;
  /* The write cap bounds circulation too, not only SEND. */
  const size_t mark = d->write_cap < CL_CIRC_LOW_WATER ? d->write_cap
                                                       : CL_CIRC_LOW_WATER;
  if (!d->circulate || d->node == NULL || d->nout == 0)
    return;
  if (d->acts.n > 0)
    cl_peer_apply(d);
  if (!jitter_on(d)) {
    do {
      size_t open = 0, k;
      int64_t held = cl_node_tokens(d->node);
      sent = 0;
      for (i = 0; i < d->nout; i++)
        open += d->out[i].state == CL_OUT_UP && cl_peer_queued(d, i) < mark;
      /* A few tokens go to the next channel or two, not a handful to every
       * channel: each channel written in a turn costs a system call. */
      if ((size_t)held / CL_CIRC_MIN_BATCH < open)
        open = (size_t)held / CL_CIRC_MIN_BATCH ? (size_t)held /
                                                     CL_CIRC_MIN_BATCH
                                               : 1;
      for (tried = 0; tried < d->nout && open > 0 && held > 0 && budget > 0;
           tried++) {
        size_t q, fsz, room;
        i = (d->circ_rr + tried) % d->nout;
        q = cl_peer_queued(d, i);
        if (d->out[i].state != CL_OUT_UP || q >= mark)
          continue;
        fsz = 3 + uint_len(cl_node_sent(d->node, i) + 1);
        room = (mark - q + fsz - 1) / fsz;
        k = ((size_t)held + open - 1) / open;
        if (k > room)
          k = room;
        if (k > budget)
          k = budget;
        k = circ_send(d, i, k);
        held -= (int64_t)k;
        budget -= k;
        sent += k;
        open--;
        if (k > 0)
          d->circ_rr = i + 1;
      }
    } while (sent > 0 && budget > 0 && cl_node_tokens(d->node) > 0);
    return;
  }
  while (budget-- > 0 && cl_node_tokens(d->node) > 0) {
    for (tried = 0; tried < d->nout; tried++) {
      i = (d->circ_rr + tried) % d->nout;
      if (d->out[i].state == CL_OUT_UP && cl_peer_queued(d, i) < mark)
        break;
    }
    if (tried == d->nout)
      break;
    if (cl_peer_reserve(d, i) < 0 ||
        cl_node_send_tokens(d->node, (uint32_t)i, 1, &d->acts) < 0)
      break;
    cl_peer_apply(d);
    d->circ_rr = i + 1;
  }
}

/* Once per loop turn, before the loop sleeps: circulate, resume drained
 * inbound channels, then one write per outbound channel. */
void cl_peer_flush(cl_daemon_t *d) {
  size_t i;
  if (d->node == NULL)
    return;
  circulate(d);
  for (i = 0; i < d->nin; i++) {
    cl_conn_t *c = d->in[i].conn;
    if (c != NULL && c->paused && d->in[i].hcount <= CL_HELD_MAX / 2)
      cl_server_resume(c);
  }
  for (i = 0; i < d->nout; i++)
    out_flush(&d->out[i]);
}

/* Shutdown: close every outbound handle and cancel resolutions. */
void cl_peer_stop(cl_daemon_t *d) {
  size_t i;
  for (i = 0; i < d->nout; i++) {
    cl_out_chan_t *ch = &d->out[i];
    if (ch->gai_busy)
      uv_cancel((uv_req_t *)&ch->gai);
    if (ch->tcp_open && !uv_is_closing((uv_handle_t *)&ch->tcp))
      uv_close((uv_handle_t *)&ch->tcp, out_closed_cb);
    if (!uv_is_closing((uv_handle_t *)&ch->retry))
      uv_close((uv_handle_t *)&ch->retry, NULL);
  }
}

/* After the loop is closed: free channels, the node and lists. */
void cl_peer_free(cl_daemon_t *d) {
  size_t i;
  for (i = 0; d->out != NULL && i < d->nout; i++) {
    msgpack_sbuffer_destroy(&d->out[i].out.pend);
    msgpack_sbuffer_destroy(&d->out[i].out.fly);
    free(d->out[i].jq);
  }
  for (i = 0; d->in != NULL && i < d->nin; i++)
    free(d->in[i].held);
  free(d->out);
  free(d->in);
  d->out = NULL;
  d->in = NULL;
  d->nout = d->nin = 0;
  if (d->node != NULL)
    cl_node_free(d->node);
  d->node = NULL;
  cl_actions_free(&d->acts);
  free(d->rbuf);
  d->rbuf = NULL;
  free(d->sent);
  d->sent = NULL;
  d->nsent = d->sent_cap = 0;
}
