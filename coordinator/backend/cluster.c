#include "cluster.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "error.h"
#include "idmap.h"

/* Where a control connection is. */
typedef enum conn_state {
  CONN_IDLE = 0,   /* not connected yet (zeroed) */
  CONN_CONNECTING, /* resolved, connect under way */
  CONN_HANDSHAKE,  /* connected: waiting for CHALLENGE, or for AUTH_OK */
  CONN_UP,         /* connected, CLIENT sent */
  CONN_DOWN        /* failed or lost for good; why says which */
} conn_state_t;

typedef struct conn {
  cl_cluster_t *c;
  uint32_t idx;
  char id[CL_ID_SIZE];
  char addr[CL_ADDR_SIZE];
  uv_tcp_t tcp;
  uv_connect_t creq;
  int open;  /* tcp initialised and its close callback not yet run */
  conn_state_t state;
  int watching; /* a WATCH was sent: LOCAL_STATE notifications expected */
  int timed_out; /* its connect was given up at the deadline */
  int code;      /* why it is down, when not lost or timed out (CL_EAUTH) */
  int proving;   /* AUTH sent, waiting for AUTH_OK */
  uint8_t nonce_s[CL_AUTH_NONCE], nonce_c[CL_AUTH_NONCE];
  cl_wire_decoder_t *dec;
  char why[256];
} conn_t;

/* One request of the call in progress. */
typedef struct slot {
  uint32_t server;
  int done; /* 1 reply stored, -1 given up (tolerant calls) */
} slot_t;

/* A write's bytes live until its callback. */
typedef struct wreq {
  uv_write_t w;
  char *data;
} wreq_t;

/* COMPLETE (or LOCAL_STATE) notifications of one snapshot id: a bitset
 * over servers, and the pushed states not yet taken. */
typedef struct track {
  uint64_t id;
  size_t count;
  uint64_t *bits;
  cl_msg_t *pushed; /* [n] LOCAL_STATE messages (type 0: none), or NULL */
} track_t;

struct cl_cluster {
  uv_loop_t *loop;
  size_t n;
  conn_t *conns;
  uv_timer_t timer;
  int timer_open;
  int timer_fired;
  char name[CL_ID_SIZE];
  uint64_t next_req;
  uint64_t call_timeout_ms;
  int notices;
  void (*before_notice)(void);
  cl_guard_fn guard;
  void *guard_ctx;
  long culprit; /* the server the last failure was about, or -1 */
  /* the call in progress */
  uint64_t call_base;
  size_t call_n, call_left;
  slot_t *slots;
  cl_msg_t *replies;
  const cl_secret_t *secret; /* borrowed; NULL or len 0: none */
  cl_idmap_t tracks; /* snapshot id -> track_t * */
  size_t words;      /* bitset words per track */
  /* The ids forgotten last (a ring): a late COMPLETE or LOCAL_STATE of
   * one, from a server that was slow or stopped, is dropped on arrival
   * instead of tracked again for nobody. */
  uint64_t forgotten[CL_CLUSTER_FORGOTTEN];
  size_t nforgotten, forgotten_at;
};

/* ---- tracking COMPLETE --------------------------------------------------- */

/* The entry of id, or NULL. */
static track_t *track_find(const cl_cluster_t *c, uint64_t id) {
  uintptr_t v;
  return cl_idmap_get(&c->tracks, id, &v) ? (track_t *)v : NULL;
}

/* Record that server reported snapshot id complete (ids past the cap are
 * dropped). Returns the entry, or NULL if it was dropped. */
static track_t *track_add(cl_cluster_t *c, uint64_t id, uint32_t server) {
  track_t *t = track_find(c, id);
  size_t k;
  if (t == NULL) {
    for (k = 0; k < c->nforgotten; k++)
      if (c->forgotten[k] == id)
        return NULL;
    if (c->tracks.n >= CL_CLUSTER_MAX_TRACKED ||
        cl_idmap_reserve(&c->tracks, 1) < 0 ||
        (t = calloc(1, sizeof *t)) == NULL)
      return NULL;
    t->bits = calloc(c->words, sizeof *t->bits);
    if (t->bits == NULL) {
      free(t);
      return NULL;
    }
    t->id = id;
    (void)cl_idmap_put(&c->tracks, id, (uintptr_t)t); /* reserved */
  }
  if (!(t->bits[server / 64] & ((uint64_t)1 << (server % 64)))) {
    t->bits[server / 64] |= (uint64_t)1 << (server % 64);
    t->count++;
  }
  return t;
}

/* Keep the LOCAL_STATE m that server pushed for its snapshot (takes m; a
 * second one from the same server replaces the first). */
static void track_push(cl_cluster_t *c, uint32_t server, cl_msg_t *m) {
  track_t *t = track_add(c, m->u.state.snapshot_id, server);
  if (t != NULL && t->pushed == NULL)
    t->pushed = calloc(c->n, sizeof *t->pushed);
  if (t == NULL || t->pushed == NULL) {
    cl_msg_free(m);
    return;
  }
  cl_msg_free(&t->pushed[server]);
  t->pushed[server] = *m;
  memset(m, 0, sizeof *m);
}

/* Free a track entry and what it holds. */
static void track_free(cl_cluster_t *c, track_t *t) {
  size_t i;
  for (i = 0; t->pushed != NULL && i < c->n; i++)
    cl_msg_free(&t->pushed[i]);
  free(t->pushed);
  free(t->bits);
  free(t);
}

/* The pushed state of server i for id, moved out; see cluster.h. */
int cl_cluster_take_state(cl_cluster_t *c, uint64_t id, size_t i,
                          cl_msg_t *out) {
  track_t *t = track_find(c, id);
  if (t == NULL || t->pushed == NULL || i >= c->n ||
      t->pushed[i].type != CL_MSG_LOCAL_STATE)
    return 0;
  *out = t->pushed[i];
  memset(&t->pushed[i], 0, sizeof t->pushed[i]);
  return 1;
}

/* Servers that reported id complete; see cluster.h. */
size_t cl_cluster_completed(const cl_cluster_t *c, uint64_t id) {
  const track_t *t = track_find(c, id);
  return t ? t->count : 0;
}

/* Whether server i reported id complete; see cluster.h. */
int cl_cluster_has_completed(const cl_cluster_t *c, uint64_t id, size_t i) {
  const track_t *t = track_find(c, id);
  if (t == NULL || i >= c->n)
    return 0;
  return (t->bits[i / 64] >> (i % 64)) & 1;
}

/* Stop tracking id, and ignore what comes of it later. */
void cl_cluster_forget(cl_cluster_t *c, uint64_t id) {
  track_t *t = track_find(c, id);
  c->forgotten[c->forgotten_at] = id;
  c->forgotten_at = (c->forgotten_at + 1) % CL_CLUSTER_FORGOTTEN;
  if (c->nforgotten < CL_CLUSTER_FORGOTTEN)
    c->nforgotten++;
  if (t == NULL)
    return;
  cl_idmap_del(&c->tracks, id);
  track_free(c, t);
}

/* ---- connections ------------------------------------------------------- */

/* Close callback of a connection: only now may its decoder go. */
static void on_close(uv_handle_t *h) {
  conn_t *k = h->data;
  k->open = 0;
  cl_wire_decoder_free(k->dec);
  k->dec = NULL;
}

/* Mark connection k down with a reason (kept if one is already there). */
static void conn_down(conn_t *k, const char *fmt, ...) {
  if (k->state != CONN_DOWN && k->why[0] == '\0') {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->why, sizeof k->why, fmt, ap);
    va_end(ap);
  }
  k->state = CONN_DOWN;
  if (k->open && !uv_is_closing((uv_handle_t *)&k->tcp))
    uv_close((uv_handle_t *)&k->tcp, on_close);
}

/* Write callback: the bytes can go; a failed write loses the server. */
static void on_write(uv_write_t *w, int status) {
  wreq_t *r = (wreq_t *)w;
  conn_t *k = w->handle->data;
  free(r->data);
  free(r);
  if (status < 0 && status != UV_ECANCELED)
    conn_down(k, "server %s lost (write failed: %s)", k->id,
              uv_strerror(status));
}

/* Write the bytes of sb on k, or queue what the socket does not take (the
 * write then owns sb's buffer). The caller destroys sb either way. Returns
 * 0 or CL_E*. */
static int conn_write(conn_t *k, msgpack_sbuffer *sb) {
  wreq_t *r;
  uv_buf_t buf;
  int rc;
  if (k->state != CONN_UP && k->state != CONN_HANDSHAKE)
    return CL_ELOST;
  /* Synchronously when the socket takes it all: no write request, no
   * completion round (an extra loop turn and epoll_ctl in libuv 1.44). */
  buf = uv_buf_init(sb->data, (unsigned)sb->size);
  rc = uv_try_write((uv_stream_t *)&k->tcp, &buf, 1);
  if (rc == (int)sb->size) {
    sb->size = 0;
    return 0;
  }
  if (rc < 0 && rc != UV_EAGAIN) {
    conn_down(k, "server %s lost (write failed: %s)", k->id, uv_strerror(rc));
    return CL_ELOST;
  }
  if (rc < 0)
    rc = 0;
  r = malloc(sizeof *r);
  if (r == NULL) {
    /* Part of a frame written and the rest cannot follow: the stream is
     * out of step, so the connection cannot go on. */
    if (rc > 0)
      conn_down(k, "server %s lost (out of memory mid-frame)", k->id);
    return rc > 0 ? CL_ELOST : CL_ENOMEM;
  }
  buf.len = sb->size - (size_t)rc;
  r->data = msgpack_sbuffer_release(sb);
  buf.base = r->data + rc;
  rc = uv_write(&r->w, (uv_stream_t *)&k->tcp, &buf, 1, on_write);
  if (rc < 0) {
    free(r->data);
    free(r);
    conn_down(k, "server %s lost (write failed: %s)", k->id, uv_strerror(rc));
    return CL_ELOST;
  }
  return 0;
}

/* A reply for the call in progress is moved into its slot; anything else
 * (a late reply of a call that gave up) is dropped. */
static void take_reply(conn_t *k, cl_msg_t *m) {
  cl_cluster_t *c = k->c;
  if (c->call_n > 0 && m->req >= c->call_base &&
      m->req - c->call_base < c->call_n) {
    size_t i = (size_t)(m->req - c->call_base);
    if (c->slots[i].server == k->idx && c->slots[i].done == 0) {
      c->replies[i] = *m;
      c->slots[i].done = 1;
      c->call_left--;
      memset(m, 0, sizeof *m);
      return;
    }
  }
  cl_msg_free(m);
}

/* Dispatch one decoded frame from server k; takes ownership of m. */
static void handle_msg(conn_t *k, cl_msg_t *m) {
  switch (m->type) {
  case CL_MSG_OK:
  case CL_MSG_ERROR:
  case CL_MSG_STATE:
  case CL_MSG_STATUS_R:
  case CL_MSG_TRACE_R:
    take_reply(k, m);
    break;
  case CL_MSG_COMPLETE:
    track_add(k->c, m->u.complete.snapshot_id, k->idx);
    cl_msg_free(m);
    break;
  case CL_MSG_LOCAL_STATE:
    if (!k->watching) {
      conn_down(k, "server %s lost (protocol error: LOCAL_STATE without "
                   "WATCH)", k->id);
      cl_msg_free(m);
      break;
    }
    track_push(k->c, k->idx, m);
    break;
  case CL_MSG_NOTICE:
    /* The text names the peer already; the field is for programs. */
    if (k->c->notices && k->c->before_notice != NULL)
      k->c->before_notice();
    if (k->c->notices)
      fprintf(stderr, "notice from %s: %s\n", k->id,
              m->u.notice.text[0] ? m->u.notice.text : m->u.notice.peer);
    cl_msg_free(m);
    break;
  default:
    conn_down(k, "server %s lost (protocol error: unexpected %s message)",
              k->id, cl_msg_type_name(m->type));
    cl_msg_free(m);
    break;
  }
}

/* Encode m and write it on k; a failure marks k down. */
static void conn_say(conn_t *k, const cl_msg_t *m) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  if (cl_wire_encode(m, &sb) != 0)
    conn_down(k, "cannot greet %s: encoding failed", k->id);
  else
    (void)conn_write(k, &sb); /* failure shows as lost */
  msgpack_sbuffer_destroy(&sb);
}

/* The handshake done (or none asked): say CLIENT; k is up. */
static void conn_greet(conn_t *k) {
  cl_msg_t hello;
  memset(&hello, 0, sizeof hello);
  hello.type = CL_MSG_CLIENT;
  memcpy(hello.u.client.name, k->c->name, sizeof hello.u.client.name);
  k->state = CONN_UP;
  conn_say(k, &hello);
}

/* Authentication failed on k: down with CL_EAUTH and why, naming it. */
static void auth_failed(conn_t *k, const char *why) {
  k->code = CL_EAUTH;
  conn_down(k, "server %s (%s): %s", k->id, k->addr, why);
}

/* A frame before CLIENT: the daemon's CHALLENGE, then its AUTH_OK if the
 * secret had to be proved (proto/auth.h), or its ERROR. */
static void handshake(conn_t *k, const cl_msg_t *m) {
  const cl_secret_t none = {NULL, 0};
  const cl_secret_t *key = k->c->secret ? k->c->secret : &none;
  char why[256];
  cl_msg_t auth;
  int r;
  if (m->type == CL_MSG_ERROR) {
    if (cl_err_from_wire(m->u.error.code) == CL_EAUTH)
      auth_failed(k, m->u.error.text);
    else
      conn_down(k, "server %s (%s) refused the connection: %s", k->id,
                k->addr, m->u.error.text);
  } else if (m->type == CL_MSG_CHALLENGE && !k->proving) {
    memcpy(k->nonce_s, m->u.challenge.nonce, CL_AUTH_NONCE);
    cl_auth_nonce(k->nonce_c);
    r = cl_auth_answer(key, m, k->nonce_c, &auth, why, sizeof why);
    if (r < 0) {
      auth_failed(k, why);
    } else if (r == 1) {
      k->proving = 1;
      conn_say(k, &auth);
    } else {
      conn_greet(k);
    }
  } else if (m->type == CL_MSG_AUTH_OK && k->proving) {
    if (cl_auth_verify(key, k->nonce_s, k->nonce_c, m) < 0)
      auth_failed(k, "authentication failed: the server does not know "
                     "the secret");
    else
      conn_greet(k);
  } else {
    conn_down(k, "server %s (%s) is not a clsnapd of this version "
                 "(%s before the handshake ended)", k->id, k->addr,
              cl_msg_type_name(m->type));
  }
}

/* Read straight into the decoder's buffer (no copy). */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn_t *k = h->data;
  char *p = NULL;
  size_t avail = 0;
  (void)suggested;
  if (k->dec == NULL ||
      cl_wire_decoder_reserve(k->dec, 4096, &p, &avail) != 0) {
    buf->base = NULL;
    buf->len = 0; /* read_cb gets UV_ENOBUFS */
    return;
  }
  buf->base = p;
  buf->len = avail;
}

/* Feed bytes to the decoder and handle every complete frame. */
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn_t *k = s->data;
  cl_msg_t m;
  int rc;
  (void)buf;
  if (nread == 0)
    return;
  if (nread < 0) {
    if (nread == UV_EOF)
      conn_down(k, "server %s lost (connection closed)", k->id);
    else if (nread == UV_ENOBUFS)
      conn_down(k, "server %s lost (reply larger than %u bytes)", k->id,
                CL_CLUSTER_DECODER_CAP);
    else
      conn_down(k, "server %s lost (%s)", k->id, uv_strerror((int)nread));
    return;
  }
  cl_wire_decoder_consumed(k->dec, (size_t)nread);
  for (rc = 1; rc > 0 && (k->state == CONN_UP ||
                          k->state == CONN_HANDSHAKE);) {
    memset(&m, 0, sizeof m);
    if ((rc = cl_wire_next(k->dec, &m)) <= 0)
      break;
    if (k->state == CONN_HANDSHAKE) {
      handshake(k, &m);
      cl_msg_free(&m);
    } else {
      handle_msg(k, &m);
    }
  }
  if (rc < 0)
    conn_down(k, "server %s lost (protocol error: %s)", k->id,
              cl_strerror(rc));
}

/* Connected (or not): start reading; the daemon speaks first. */
static void on_connect(uv_connect_t *req, int status) {
  conn_t *k = req->data;
  if (k->state != CONN_CONNECTING)
    return; /* gave up already (timeout) */
  if (status < 0) {
    conn_down(k, "cannot connect to %s at %s: %s", k->id, k->addr,
              uv_strerror(status));
    return;
  }
  k->state = CONN_HANDSHAKE;
  uv_tcp_nodelay(&k->tcp, 1);
  status = uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
  if (status < 0)
    conn_down(k, "cannot read from %s at %s: %s", k->id, k->addr,
              uv_strerror(status));
}

/* Resolve "host:port" (numeric, else by name) into ss. */
static int resolve(uv_loop_t *loop, const char *addr,
                   struct sockaddr_storage *ss, char *why, size_t whysize) {
  char host[CL_ADDR_SIZE], portstr[16];
  int port, rc;
  uv_getaddrinfo_t gai;
  struct addrinfo hints;
  if (cl_addr_split(addr, host, &port) != 0) {
    cl_set_err(why, whysize, "bad address '%s' (want HOST:PORT)", addr);
    return CL_EINVAL;
  }
  memset(ss, 0, sizeof *ss);
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
    return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
    return 0;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(portstr, sizeof portstr, "%d", port);
  /* No callback: resolves synchronously. */
  rc = uv_getaddrinfo(loop, &gai, NULL, host, portstr, &hints);
  if (rc < 0 || gai.addrinfo == NULL) {
    cl_set_err(why, whysize, "cannot resolve '%s': %s", host,
               rc < 0 ? uv_strerror(rc) : "no address");
    if (rc == 0)
      uv_freeaddrinfo(gai.addrinfo);
    return CL_EIO;
  }
  memcpy(ss, gai.addrinfo->ai_addr, gai.addrinfo->ai_addrlen);
  uv_freeaddrinfo(gai.addrinfo);
  return 0;
}

/* ---- the cluster -------------------------------------------------------- */

/* Deadline reached: the waiting loop notices the flag. */
static void on_timer(uv_timer_t *t) {
  cl_cluster_t *c = t->data;
  c->timer_fired = 1;
  /* A deadline that is already due when uv_run(UV_RUN_ONCE) starts fires in
   * the timer phase, before the poll; without uv_stop the poll would then
   * block with no timer left, forever if no byte arrives. uv_stop makes the
   * poll return at once. */
  uv_stop(t->loop);
}

/* Close callback of the deadline timer. */
static void on_timer_close(uv_handle_t *h) {
  cl_cluster_t *c = h->data;
  c->timer_open = 0;
}

/* Allocate the cluster and its deadline timer; nothing connects yet. */
cl_cluster_t *cl_cluster_new(uv_loop_t *loop, const cl_endpoint_t *eps,
                             size_t n) {
  cl_cluster_t *c;
  size_t i;
  if (n == 0 || n > UINT32_MAX)
    return NULL;
  c = calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->conns = calloc(n, sizeof *c->conns);
  if (c->conns == NULL) {
    free(c);
    return NULL;
  }
  c->loop = loop;
  c->n = n;
  c->words = (n + 63) / 64;
  c->next_req = 1;
  c->call_timeout_ms = 30000;
  c->notices = 1;
  c->culprit = -1;
  snprintf(c->name, sizeof c->name, "clsnap-%ld", (long)getpid());
  for (i = 0; i < n; i++) {
    conn_t *k = &c->conns[i];
    k->c = c;
    k->idx = (uint32_t)i;
    snprintf(k->id, sizeof k->id, "%s", eps[i].id);
    snprintf(k->addr, sizeof k->addr, "%s", eps[i].addr);
    snprintf(k->why, sizeof k->why, "server %s not connected", k->id);
  }
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  c->timer_open = 1;
  return c;
}

/* Close every handle and wait for the close callbacks, then free. */
void cl_cluster_free(cl_cluster_t *c) {
  size_t i;
  int pending;
  if (c == NULL)
    return;
  for (i = 0; i < c->n; i++) {
    conn_t *k = &c->conns[i];
    if (k->open && !uv_is_closing((uv_handle_t *)&k->tcp))
      uv_close((uv_handle_t *)&k->tcp, on_close);
  }
  if (c->timer_open && !uv_is_closing((uv_handle_t *)&c->timer))
    uv_close((uv_handle_t *)&c->timer, on_timer_close);
  /* Close callbacks run in the same loop turn; this does not block. */
  do {
    pending = c->timer_open;
    for (i = 0; i < c->n; i++)
      pending |= c->conns[i].open;
    if (pending)
      uv_run(c->loop, UV_RUN_ONCE);
  } while (pending);
  for (i = 0; i < c->n; i++)
    cl_wire_decoder_free(c->conns[i].dec);
  {
    size_t pos = 0;
    uint64_t id;
    uintptr_t v;
    while (cl_idmap_next(&c->tracks, &pos, &id, &v))
      track_free(c, (track_t *)v);
  }
  cl_idmap_free(&c->tracks);
  free(c->conns);
  free(c);
}

/* Accessors; see cluster.h. */
size_t cl_cluster_size(const cl_cluster_t *c) { return c->n; }
const char *cl_cluster_id(const cl_cluster_t *c, size_t i) {
  return c->conns[i].id;
}
const char *cl_cluster_addr(const cl_cluster_t *c, size_t i) {
  return c->conns[i].addr;
}
int cl_cluster_up(const cl_cluster_t *c, size_t i) {
  return i < c->n && c->conns[i].state == CONN_UP;
}
const char *cl_cluster_why(const cl_cluster_t *c, size_t i) {
  return c->conns[i].state == CONN_UP ? "" : c->conns[i].why;
}
void cl_cluster_blame(cl_cluster_t *c, size_t i) {
  c->culprit = i < c->n ? (long)i : -1;
}
const char *cl_cluster_culprit(const cl_cluster_t *c) {
  return c->culprit >= 0 ? c->conns[c->culprit].id : NULL;
}

/* A failure because server i is not up: its reason into err, and it is
 * the culprit. Returns rc. */
static int fail_down(cl_cluster_t *c, size_t i, int rc, char *err,
                     size_t errsize) {
  cl_set_err(err, errsize, "%s", c->conns[i].why);
  c->culprit = (long)i;
  return c->conns[i].code != 0 ? c->conns[i].code : rc;
}

/* Install the check run after every loop turn while waiting. */
void cl_cluster_set_guard(cl_cluster_t *c, cl_guard_fn fn, void *ctx) {
  c->guard = fn;
  c->guard_ctx = ctx;
}

/* Deadline used by the backend's call. */
void cl_cluster_set_call_timeout(cl_cluster_t *c, uint64_t ms) {
  c->call_timeout_ms = ms;
}

/* Turn NOTICE printing on or off. */
void cl_cluster_set_notices(cl_cluster_t *c, int on) { c->notices = on; }

void cl_cluster_set_secret(cl_cluster_t *c, const cl_secret_t *secret) {
  c->secret = secret;
}

void cl_cluster_set_before_notice(cl_cluster_t *c, void (*fn)(void)) {
  c->before_notice = fn;
}

/* Arm the single deadline timer; waits are never nested. */
static void deadline_start(cl_cluster_t *c, uint64_t ms) {
  c->timer_fired = 0;
  uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* Disarm the deadline timer. */
static void deadline_stop(cl_cluster_t *c) { uv_timer_stop(&c->timer); }

/* Run the guard: 0, or its negative code with err set. */
static int check_guard(cl_cluster_t *c, char *err, size_t errsize) {
  int rc;
  if (c->guard == NULL)
    return 0;
  rc = c->guard(c->guard_ctx, err, errsize);
  return rc < 0 ? rc : 0;
}

/* One look at what a wait is waiting for (arg: the wait's own). Before the
 * deadline (timed_out 0): 1 when done, 0 to keep waiting, or a negative
 * CL_E* code (with err) to give up. At the deadline (timed_out 1): what
 * the wait returns then, 0 or a negative code. */
typedef int (*wait_step_fn)(cl_cluster_t *c, void *arg, int timed_out,
                            char *err, size_t errsize);

/* The one way this file waits: run the loop a turn at a time until step
 * says done or fails, the guard says stop, or ms pass. Returns 0 or a
 * negative CL_E* code with err set. */
static int run_until(cl_cluster_t *c, uint64_t ms, wait_step_fn step,
                     void *arg, char *err, size_t errsize) {
  int rc;
  c->culprit = -1;
  deadline_start(c, ms);
  for (;;) {
    if ((rc = step(c, arg, 0, err, errsize)) != 0)
      break;
    if ((rc = check_guard(c, err, errsize)) < 0)
      break;
    if (c->timer_fired) {
      rc = step(c, arg, 1, err, errsize);
      break;
    }
    uv_run(c->loop, UV_RUN_ONCE);
  }
  deadline_stop(c);
  return rc < 0 ? rc : 0;
}

/* Resolve connection k's address and start connecting (a failure marks it
 * down with the reason). */
static void conn_start(cl_cluster_t *c, conn_t *k) {
  struct sockaddr_storage ss;
  char why[160];
  int rc;
  k->why[0] = '\0';
  if (resolve(c->loop, k->addr, &ss, why, sizeof why) != 0) {
    k->state = CONN_DOWN;
    snprintf(k->why, sizeof k->why, "cannot connect to %s: %s", k->id, why);
    return;
  }
  k->dec = cl_wire_decoder_new(CL_CLUSTER_DECODER_CAP);
  if (k->dec == NULL) {
    k->state = CONN_DOWN;
    snprintf(k->why, sizeof k->why, "cannot connect to %s: out of memory",
             k->id);
    return;
  }
  uv_tcp_init(c->loop, &k->tcp);
  k->tcp.data = k;
  k->creq.data = k;
  k->open = 1;
  k->state = CONN_CONNECTING;
  rc = uv_tcp_connect(&k->creq, &k->tcp, (const struct sockaddr *)&ss,
                      on_connect);
  if (rc < 0)
    conn_down(k, "cannot connect to %s at %s: %s", k->id, k->addr,
              uv_strerror(rc));
}

/* Waiting for connects: done when none is still connecting; at the
 * deadline those still connecting are given up. */
static int connect_step(cl_cluster_t *c, void *arg, int timed_out, char *err,
                        size_t errsize) {
  size_t i;
  int busy = 0;
  (void)arg;
  (void)err;
  (void)errsize;
  for (i = 0; i < c->n; i++) {
    conn_t *k = &c->conns[i];
    if (k->state != CONN_CONNECTING && k->state != CONN_HANDSHAKE)
      continue;
    busy = 1;
    if (timed_out) {
      k->timed_out = 1;
      conn_down(k, "cannot connect to %s at %s: timed out", k->id, k->addr);
    }
  }
  return timed_out || busy ? 0 : 1;
}

/* Start every connect, then run the loop until all settle or time runs out. */
int cl_cluster_connect(cl_cluster_t *c, uint64_t timeout_ms, char *err,
                       size_t errsize) {
  size_t i;
  int rc;
  for (i = 0; i < c->n; i++)
    if (c->conns[i].state == CONN_IDLE)
      conn_start(c, &c->conns[i]);
  rc = run_until(c, timeout_ms, connect_step, NULL, err, errsize);
  if (rc < 0)
    return rc;
  for (i = 0; i < c->n; i++)
    if (c->conns[i].state != CONN_UP)
      return fail_down(c, i, c->conns[i].timed_out ? CL_ETIMEOUT : CL_ELOST,
                       err, errsize);
  return 0;
}

/* Drop the call in progress; free replies if failed. */
static void call_end(cl_cluster_t *c, int failed) {
  size_t i;
  if (failed)
    for (i = 0; i < c->call_n; i++)
      cl_msg_free(&c->replies[i]);
  free(c->slots);
  c->slots = NULL;
  c->replies = NULL;
  c->call_n = c->call_left = 0;
}

/* The arguments of a call: n within CL_CLUSTER_MAX_CALL, server indexes
 * that exist and, unless tolerant, whose connections are up. Zeroes the
 * replies once n is known to fit. */
static int call_check(cl_cluster_t *c, size_t n, const uint32_t *servers,
                      cl_msg_t *replies, int tolerant, char *err,
                      size_t errsize) {
  size_t i;
  if (n > CL_CLUSTER_MAX_CALL) {
    cl_set_err(err, errsize, "too many requests in one call (%zu)", n);
    return CL_EINVAL;
  }
  memset(replies, 0, n * sizeof *replies);
  for (i = 0; i < n; i++) {
    if (servers[i] >= c->n) {
      cl_set_err(err, errsize, "no server with index %" PRIu32, servers[i]);
      return CL_EINVAL;
    }
    if (!tolerant && c->conns[servers[i]].state != CONN_UP)
      return fail_down(c, servers[i], CL_ELOST, err, errsize);
  }
  return 0;
}

/* Encode the call's requests into one buffer per server (sbs[c->n], zeroed
 * == empty), in order, and write each buffer at once. A request for a
 * server that is down (tolerant calls) gets no reply and is given up.
 * Frees sbs. Returns 0 or the encoder's code with err set. */
static int call_send(cl_cluster_t *c, size_t n, const uint32_t *servers,
                     const cl_msg_t *reqs, msgpack_sbuffer *sbs, char *err,
                     size_t errsize) {
  size_t i;
  int rc = 0;
  for (i = 0; i < n && rc == 0; i++) {
    cl_msg_t m = reqs[i];
    c->slots[i].server = servers[i];
    m.req = c->call_base + i;
    if (c->conns[servers[i]].state != CONN_UP) {
      c->slots[i].done = -1; /* tolerant: no reply will come */
      c->call_left--;
      continue;
    }
    if (m.type == CL_MSG_WATCH)
      c->conns[servers[i]].watching = 1;
    rc = cl_wire_encode(&m, &sbs[servers[i]]);
    if (rc < 0) {
      cl_set_err(err, errsize, "cannot encode %s request for %s: %s",
                 cl_msg_type_name(m.type), c->conns[servers[i]].id,
                 cl_strerror(rc));
      c->culprit = (long)servers[i];
    }
  }
  for (i = 0; i < c->n; i++) {
    if (rc == 0 && sbs[i].size > 0)
      (void)conn_write(&c->conns[i], &sbs[i]); /* failure shows as lost */
    msgpack_sbuffer_destroy(&sbs[i]);
  }
  free(sbs);
  return rc;
}

/* Servers of the call that are lost before replying: the call fails at
 * once, or (tolerant) stops waiting for them. Returns 0 or CL_ELOST. */
static int call_lost(cl_cluster_t *c, int tolerant, char *err,
                     size_t errsize) {
  size_t i;
  for (i = 0; i < c->call_n; i++) {
    conn_t *k = &c->conns[c->slots[i].server];
    if (c->slots[i].done != 0 || k->state == CONN_UP)
      continue;
    if (!tolerant)
      return fail_down(c, c->slots[i].server, CL_ELOST, err, errsize);
    c->slots[i].done = -1;
    c->call_left--;
  }
  return 0;
}

/* What a call's wait needs to know. */
typedef struct call_wait {
  const cl_msg_t *reqs;
  uint64_t timeout_ms;
  int tolerant;
} call_wait_t;

/* Waiting for a call's replies: done when every reply is in (or given up);
 * at the deadline a strict call fails naming the first server that did not
 * answer, a tolerant one leaves the missing replies zeroed. */
static int call_step(cl_cluster_t *c, void *arg, int timed_out, char *err,
                     size_t errsize) {
  const call_wait_t *w = arg;
  size_t i;
  int rc;
  if (!timed_out) {
    if (c->call_left > 0 && (rc = call_lost(c, w->tolerant, err, errsize)) < 0)
      return rc;
    return c->call_left == 0 ? 1 : 0;
  }
  if (w->tolerant)
    return 0;
  for (i = 0; i < c->call_n && c->slots[i].done != 0; i++)
    ;
  cl_set_err(err, errsize, "no reply from %s to %s within %" PRIu64 " ms",
             c->conns[c->slots[i].server].id,
             cl_msg_type_name(w->reqs[i].type), w->timeout_ms);
  c->culprit = (long)c->slots[i].server;
  return CL_ETIMEOUT;
}

/* Send n requests (one write per server) and wait for the replies; tolerant
 * calls give up on lost servers instead of failing. */
static int do_call(cl_cluster_t *c, size_t n, const uint32_t *servers,
                   const cl_msg_t *reqs, cl_msg_t *replies,
                   uint64_t timeout_ms, int tolerant, char *err,
                   size_t errsize) {
  msgpack_sbuffer *sbs;
  int rc;
  if (n == 0)
    return 0;
  c->culprit = -1;
  if ((rc = call_check(c, n, servers, replies, tolerant, err, errsize)) < 0 ||
      (rc = check_guard(c, err, errsize)) < 0)
    return rc;
  c->slots = calloc(n, sizeof *c->slots);
  sbs = calloc(c->n, sizeof *sbs); /* zeroed == empty msgpack_sbuffer */
  if (c->slots == NULL || sbs == NULL) {
    free(sbs);
    free(c->slots);
    c->slots = NULL;
    cl_set_err(err, errsize, "out of memory");
    return CL_ENOMEM;
  }
  c->replies = replies;
  c->call_base = c->next_req;
  c->next_req += n;
  c->call_n = c->call_left = n;
  /* Requests to one server go out in one write, in order. */
  rc = call_send(c, n, servers, reqs, sbs, err, errsize);
  if (rc == 0) {
    call_wait_t w = {reqs, timeout_ms, tolerant};
    rc = run_until(c, timeout_ms, call_step, &w, err, errsize);
  }
  call_end(c, rc < 0);
  return rc;
}

/* Strict call: any lost server fails the whole call at once. */
int cl_cluster_call(cl_cluster_t *c, size_t n, const uint32_t *servers,
                    const cl_msg_t *reqs, cl_msg_t *replies,
                    uint64_t timeout_ms, char *err, size_t errsize) {
  return do_call(c, n, servers, reqs, replies, timeout_ms, 0, err, errsize);
}

/* Tolerant call: missing replies stay zeroed. */
int cl_cluster_call_each(cl_cluster_t *c, size_t n, const uint32_t *servers,
                         const cl_msg_t *reqs, cl_msg_t *replies,
                         uint64_t timeout_ms, char *err, size_t errsize) {
  return do_call(c, n, servers, reqs, replies, timeout_ms, 1, err, errsize);
}

/* One request to everyone; see cluster.h. */
int cl_cluster_call_all(cl_cluster_t *c, const cl_msg_t *req,
                        uint64_t timeout_ms, int tolerant, cl_msg_t **replies,
                        char *err, size_t errsize) {
  cl_msg_t *reqs = calloc(c->n, sizeof *reqs);
  cl_msg_t *reps = calloc(c->n, sizeof *reps);
  uint32_t *sv = calloc(c->n, sizeof *sv);
  size_t i;
  int rc = CL_ENOMEM;
  if (reqs == NULL || reps == NULL || sv == NULL) {
    cl_set_err(err, errsize, "out of memory");
  } else {
    for (i = 0; i < c->n; i++) {
      reqs[i] = *req;
      sv[i] = (uint32_t)i;
    }
    rc = do_call(c, c->n, sv, reqs, reps, timeout_ms, tolerant, err,
                 errsize);
  }
  free(reqs);
  free(sv);
  if (rc < 0) {
    free(reps); /* a failed call leaves no reply */
    return rc;
  }
  *replies = reps;
  return 0;
}

/* See cluster.h. */
void cl_cluster_free_replies(const cl_cluster_t *c, cl_msg_t *replies) {
  size_t i;
  for (i = 0; replies != NULL && i < c->n; i++)
    cl_msg_free(&replies[i]);
  free(replies);
}

/* First lost server, or -1. */
static int first_lost(const cl_cluster_t *c) {
  size_t i;
  for (i = 0; i < c->n; i++)
    if (c->conns[i].state != CONN_UP)
      return (int)i;
  return -1;
}

/* Sleeping: only a lost server ends it early. */
static int sleep_step(cl_cluster_t *c, void *arg, int timed_out, char *err,
                      size_t errsize) {
  int lost = timed_out ? -1 : first_lost(c);
  (void)arg;
  if (lost < 0)
    return 0;
  return fail_down(c, (size_t)lost, CL_ELOST, err, errsize);
}

/* Let ms pass with the loop running, so notifications keep flowing. */
int cl_cluster_sleep(cl_cluster_t *c, uint64_t ms, char *err,
                     size_t errsize) {
  return run_until(c, ms, sleep_step, NULL, err, errsize);
}

/* Describe which servers miss which of ids into err; returns how many
 * (snapshot, server) pairs are missing. If lost is not NULL, set it to the
 * index of a lost server that misses one, or -1. */
static size_t describe_missing(const cl_cluster_t *c, const uint64_t *ids,
                               size_t n, int *lost, char *err,
                               size_t errsize) {
  size_t i, s, missing = 0, len = 0;
  if (lost)
    *lost = -1;
  if (err && errsize)
    err[0] = '\0';
  for (i = 0; i < n; i++) {
    int first = 1;
    if (cl_cluster_completed(c, ids[i]) == c->n)
      continue;
    for (s = 0; s < c->n; s++) {
      if (cl_cluster_has_completed(c, ids[i], s))
        continue;
      missing++;
      if (lost && *lost < 0 && c->conns[s].state != CONN_UP)
        *lost = (int)s;
      if (err && len + 1 < errsize) {
        int w;
        if (first)
          w = snprintf(err + len, errsize - len,
                       "%ssnapshot %" PRIu64 " not complete on %s",
                       len ? "; " : "", ids[i], c->conns[s].id);
        else
          w = snprintf(err + len, errsize - len, ", %s", c->conns[s].id);
        if (w > 0)
          len += (size_t)w < errsize - len ? (size_t)w : errsize - len - 1;
        first = 0;
      }
    }
  }
  return missing;
}

/* What waiting for snapshots needs to know. */
typedef struct complete_wait {
  const uint64_t *ids;
  size_t n;
  uint64_t timeout_ms;
} complete_wait_t;

/* Waiting for snapshots: done when every server reported every id; a lost
 * server that misses one, or the deadline, ends it naming what is
 * missing. */
static int complete_step(cl_cluster_t *c, void *arg, int timed_out,
                         char *err, size_t errsize) {
  const complete_wait_t *w = arg;
  char what[512];
  int lost;
  if (!timed_out) {
    if (describe_missing(c, w->ids, w->n, &lost, NULL, 0) == 0)
      return 1;
    if (lost < 0)
      return 0;
  }
  describe_missing(c, w->ids, w->n, NULL, what, sizeof what);
  if (timed_out) {
    cl_set_err(err, errsize, "timed out after %" PRIu64 " ms: %s",
               w->timeout_ms, what);
    return CL_ETIMEOUT;
  }
  /* Name the snapshots as well as the server: the user asked for those. */
  cl_set_err(err, errsize, "%s, so these cannot complete: %s",
             c->conns[lost].why, what);
  c->culprit = lost;
  return CL_ELOST;
}

/* Run the loop until every server reported every id complete. */
int cl_cluster_wait_complete(cl_cluster_t *c, const uint64_t *ids, size_t n,
                             uint64_t timeout_ms, char *err,
                             size_t errsize) {
  complete_wait_t w = {ids, n, timeout_ms};
  return run_until(c, timeout_ms, complete_step, &w, err, errsize);
}

/* ---- backend ------------------------------------------------------------ */

/* Backend adapters over the functions above. */
static int be_call(void *ctx, size_t n, const uint32_t *servers,
                   const cl_msg_t *reqs, cl_msg_t *replies, char *err,
                   size_t errsize) {
  cl_cluster_t *c = ctx;
  return cl_cluster_call(c, n, servers, reqs, replies, c->call_timeout_ms,
                         err, errsize);
}

static int be_sleep(void *ctx, uint64_t ms, char *err, size_t errsize) {
  return cl_cluster_sleep(ctx, ms, err, errsize);
}

static size_t be_completed(void *ctx, uint64_t id) {
  return cl_cluster_completed(ctx, id);
}

static int be_wait(void *ctx, const uint64_t *ids, size_t n,
                   uint64_t timeout_ms, char *err, size_t errsize) {
  return cl_cluster_wait_complete(ctx, ids, n, timeout_ms, err, errsize);
}

static int be_take_state(void *ctx, uint64_t id, size_t server,
                         cl_msg_t *out) {
  return cl_cluster_take_state(ctx, id, server, out);
}

static void be_forget(void *ctx, uint64_t id) { cl_cluster_forget(ctx, id); }

static int be_reported(void *ctx, uint64_t id, size_t server) {
  return cl_cluster_has_completed(ctx, id, server);
}

/* The replay backend of this cluster. */
cl_backend_t cl_cluster_backend(cl_cluster_t *c) {
  return (cl_backend_t){.ctx = c, .call = be_call, .sleep_ms = be_sleep,
                        .completed = be_completed, .reported = be_reported,
                        .take_state = be_take_state, .forget = be_forget,
                        .wait_complete = be_wait};
}
