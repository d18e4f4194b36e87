/* A trace in memory, read, written and linked (tracefile.h). */
#include "tracefile.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "error.h"
#include "util.h"

/* The most tokens a server holds or a message carries (the daemon's
 * CL_MSG_TOKENS_MAX): sums of a few million of them stay in int64_t. */
#define TF_TOKENS_MAX ((int64_t)1 << 50)

static const char *const ev_names[] = {
    NULL, "send", "recv", "marker_send", "marker_recv", "record", "done",
    "dropped"};

const char *cl_tf_ev_name(uint8_t ev) {
  return ev >= CL_TEV_SEND && ev <= CL_TEV_DROPPED ? ev_names[ev] : "?";
}

/* The ev number of a name, or 0. */
static uint8_t ev_number(const char *name) {
  uint8_t k;
  for (k = CL_TEV_SEND; k <= CL_TEV_DROPPED; k++)
    if (strcmp(name, ev_names[k]) == 0)
      return k;
  return 0;
}

/* Which keys an event has beyond server, i, ev (docs/TRACE.md). */
static int has_peer(uint8_t ev) { return ev >= CL_TEV_SEND && ev <= CL_TEV_MARKER_RECV; }
static int has_n(uint8_t ev) { return ev == CL_TEV_SEND || ev == CL_TEV_RECV; }
static int has_snap(uint8_t ev) { return ev >= CL_TEV_MARKER_SEND && ev <= CL_TEV_DONE; }

void cl_tf_free(cl_tf_t *tf) {
  size_t k;
  if (tf == NULL)
    return;
  for (k = 0; k < tf->nev; k++)
    free(tf->ev[k].rec);
  free(tf->ev);
  free(tf->servers);
  free(tf->first);
  free(tf->snaps);
  free(tf->msgs);
  free(tf);
}

uint32_t cl_tf_server(const cl_tf_t *tf, const char *id) {
  long k = cl_id_search(tf->servers, tf->nservers, CL_ID_SIZE, id);
  return k < 0 ? UINT32_MAX : (uint32_t)k;
}

static int u64_cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* After the events are in: per-server starts, the gap, the snapshot ids.
 * Returns 0 or CL_ENOMEM. */
static int finish(cl_tf_t *tf) {
  size_t k, n = 0;
  tf->first = calloc(tf->nservers + 1, sizeof *tf->first);
  tf->snaps = malloc((tf->nev ? tf->nev : 1) * sizeof *tf->snaps);
  if (tf->first == NULL || tf->snaps == NULL)
    return CL_ENOMEM;
  tf->gap_server = UINT32_MAX;
  for (k = 0; k < tf->nev; k++) {
    const cl_tf_event_t *e = &tf->ev[k];
    tf->first[e->server + 1] = k + 1;
    if (e->ev == CL_TEV_DROPPED && tf->gap_server == UINT32_MAX) {
      tf->gap_server = e->server;
      tf->gap_i = e->i;
      tf->gap_count = (uint64_t)e->n;
      tf->gap_line = e->line;
    }
    if (has_snap(e->ev))
      tf->snaps[n++] = e->snap;
  }
  /* A server with no event starts where the one before it ends. */
  for (k = 1; k <= tf->nservers; k++)
    if (tf->first[k] < tf->first[k - 1])
      tf->first[k] = tf->first[k - 1];
  qsort(tf->snaps, n, sizeof *tf->snaps, u64_cmp);
  tf->nsnaps = 0;
  for (k = 0; k < n; k++)
    if (tf->nsnaps == 0 || tf->snaps[tf->nsnaps - 1] != tf->snaps[k])
      tf->snaps[tf->nsnaps++] = tf->snaps[k];
  return 0;
}

/* ---- from the servers ---------------------------------------------------- */

static int id_cmp(const void *a, const void *b) { return strcmp(a, b); }

int cl_tf_from_events(size_t nservers, const char *const *ids,
                      const cl_trace_event_t *const *events,
                      const size_t *nevents, cl_tf_t **out, char *err,
                      size_t errsize) {
  cl_tf_t *tf = calloc(1, sizeof *tf);
  size_t k, j, total = 0;
  uint32_t s;
  int rc = CL_ENOMEM;
  *out = NULL;
  if (tf == NULL)
    return CL_ENOMEM;
  for (k = 0; k < nservers; k++)
    total += nevents[k];
  tf->servers = calloc(nservers ? nservers : 1, sizeof *tf->servers);
  tf->ev = calloc(total ? total : 1, sizeof *tf->ev);
  if (tf->servers == NULL || tf->ev == NULL)
    goto fail;
  tf->nservers = nservers;
  for (k = 0; k < nservers; k++)
    snprintf(tf->servers[k], CL_ID_SIZE, "%s", ids[k]);
  qsort(tf->servers, nservers, CL_ID_SIZE, id_cmp);
  /* Server by server in id order, so the events come out in (server, i)
   * order: j is where server s was given. */
  for (s = 0; s < nservers; s++) {
    for (j = 0; strcmp(ids[j], tf->servers[s]) != 0; j++)
      ;
    for (k = 0; k < nevents[j]; k++) {
      const cl_trace_event_t *v = &events[j][k];
      cl_tf_event_t *e = &tf->ev[tf->nev++];
      e->server = s;
      e->ev = v->ev;
      e->i = v->i;
      e->seq = v->seq;
      e->n = v->n;
      e->snap = v->snap;
      e->tokens = v->tokens;
      e->t_us = v->t_us;
      e->peer = UINT32_MAX;
      e->match = CL_TF_NONE;
      if (has_peer(v->ev) &&
          (e->peer = cl_tf_server(tf, v->peer)) == UINT32_MAX) {
        snprintf(err, errsize, "%s's event %" PRIu64 " names %s, which is "
                 "not one of the servers", ids[j], v->i, v->peer);
        rc = CL_EINVAL;
        goto fail;
      }
      if (v->nrecorded > 0) {
        e->rec = malloc(v->nrecorded * sizeof *e->rec);
        if (e->rec == NULL)
          goto fail;
        memcpy(e->rec, v->recorded, v->nrecorded * sizeof *e->rec);
        e->nrec = v->nrecorded;
      }
    }
  }
  if (finish(tf) < 0)
    goto fail;
  *out = tf;
  return 0;
fail:
  cl_tf_free(tf);
  return rc;
}

/* ---- JSON Lines -------------------------------------------------------- */

int cl_tf_write(const cl_tf_t *tf, FILE *f) {
  size_t k, j;
  for (k = 0; k < tf->nev; k++) {
    const cl_tf_event_t *e = &tf->ev[k];
    fprintf(f, "{\"server\":\"%s\",\"i\":%" PRIu64 ",\"ev\":\"%s\"",
            tf->servers[e->server], e->i, cl_tf_ev_name(e->ev));
    if (e->ev == CL_TEV_DROPPED) {
      fprintf(f, ",\"count\":%" PRId64 "}\n", e->n);
      continue;
    }
    if (has_peer(e->ev))
      fprintf(f, ",\"peer\":\"%s\",\"seq\":%" PRIu64, tf->servers[e->peer],
              e->seq);
    if (has_n(e->ev))
      fprintf(f, ",\"n\":%" PRId64, e->n);
    if (has_snap(e->ev))
      fprintf(f, ",\"snap\":%" PRIu64, e->snap);
    if (e->ev == CL_TEV_RECV) {
      fputs(",\"recorded\":[", f);
      for (j = 0; j < e->nrec; j++)
        fprintf(f, "%s%" PRIu64, j ? "," : "", e->rec[j]);
      fputc(']', f);
    }
    fprintf(f, ",\"tokens\":%" PRId64 ",\"t_us\":%" PRIu64 "}\n", e->tokens,
            e->t_us);
  }
  return ferror(f) ? -1 : 0;
}

/* Set diag to "name:line: fmt..." and return -1. */
static int bad(cl_diag_t *diag, const char *name, int line, const char *fmt,
               ...) __attribute__((format(printf, 4, 5)));
static int bad(cl_diag_t *diag, const char *name, int line, const char *fmt,
               ...) {
  va_list ap;
  memset(diag, 0, sizeof *diag);
  snprintf(diag->file, sizeof diag->file, "%s", name);
  diag->line = line;
  va_start(ap, fmt);
  vsnprintf(diag->msg, sizeof diag->msg, fmt, ap);
  va_end(ap);
  return -1;
}

/* An unsigned integer member, or -1 (missing or not one). */
static int get_uint(json_t *o, const char *key, uint64_t *v) {
  json_t *x = json_object_get(o, key);
  if (!json_is_integer(x) || json_integer_value(x) < 0)
    return -1;
  *v = (uint64_t)json_integer_value(x);
  return 0;
}

/* One parsed line before the servers are known: the server's name. */
typedef struct pending {
  char server[CL_ID_SIZE];
  char peer[CL_ID_SIZE];
} pending_t;

/* One line into e and p. Returns 0 or -1 with diag. */
static int read_line(const char *name, int line, json_t *o, cl_tf_event_t *e,
                     pending_t *p, cl_diag_t *diag) {
  json_t *x;
  const char *evs;
  uint64_t v;
  size_t j;
  if (!json_is_object(o))
    return bad(diag, name, line, "not a JSON object");
  x = json_object_get(o, "server");
  if (!json_is_string(x) || !cl_id_valid(json_string_value(x)))
    return bad(diag, name, line, "\"server\" must be a server id");
  snprintf(p->server, CL_ID_SIZE, "%s", json_string_value(x));
  if (get_uint(o, "i", &e->i) < 0)
    return bad(diag, name, line, "\"i\" must be an index (0, 1, 2, ...)");
  x = json_object_get(o, "ev");
  evs = json_is_string(x) ? json_string_value(x) : "";
  if ((e->ev = ev_number(evs)) == 0)
    return bad(diag, name, line, "\"ev\" must be send, recv, marker_send, "
               "marker_recv, record, done or dropped");
  e->line = line;
  e->peer = UINT32_MAX;
  e->match = CL_TF_NONE;
  if (e->ev == CL_TEV_DROPPED) {
    if (get_uint(o, "count", &v) < 0 || v == 0)
      return bad(diag, name, line, "a dropped line needs \"count\" >= 1");
    e->n = (int64_t)v;
    return 0;
  }
  if (has_peer(e->ev)) {
    x = json_object_get(o, "peer");
    if (!json_is_string(x) || !cl_id_valid(json_string_value(x)))
      return bad(diag, name, line, "%s needs \"peer\", a server id", evs);
    snprintf(p->peer, CL_ID_SIZE, "%s", json_string_value(x));
    if (get_uint(o, "seq", &e->seq) < 0)
      return bad(diag, name, line, "%s needs \"seq\" >= 0", evs);
  }
  if (has_n(e->ev)) {
    if (get_uint(o, "n", &v) < 0 || v == 0 || v > TF_TOKENS_MAX ||
        e->seq == 0)
      return bad(diag, name, line, "%s needs \"n\" from 1 to 2^50 and "
                 "\"seq\" >= 1", evs);
    e->n = (int64_t)v;
  }
  if (has_snap(e->ev) && get_uint(o, "snap", &e->snap) < 0)
    return bad(diag, name, line, "%s needs \"snap\", a snapshot id", evs);
  if (e->ev == CL_TEV_RECV) {
    x = json_object_get(o, "recorded");
    if (!json_is_array(x))
      return bad(diag, name, line, "recv needs \"recorded\", a list of "
                 "snapshot ids");
    e->nrec = (uint32_t)json_array_size(x);
    if (e->nrec > 0 && (e->rec = malloc(e->nrec * sizeof *e->rec)) == NULL)
      return bad(diag, name, line, "out of memory");
    for (j = 0; j < e->nrec; j++) {
      json_t *id = json_array_get(x, j);
      if (!json_is_integer(id) || json_integer_value(id) < 0)
        return bad(diag, name, line, "\"recorded\" must list snapshot ids");
      e->rec[j] = (uint64_t)json_integer_value(id);
    }
  }
  x = json_object_get(o, "tokens");
  if (!json_is_integer(x) || json_integer_value(x) < 0 ||
      json_integer_value(x) > TF_TOKENS_MAX)
    return bad(diag, name, line, "%s needs \"tokens\", from 0 to 2^50",
               evs);
  e->tokens = (int64_t)json_integer_value(x);
  if (get_uint(o, "t_us", &e->t_us) < 0)
    return bad(diag, name, line, "%s needs \"t_us\"", evs);
  return 0;
}

/* Add id to the sorted server list unless it is there. 0, -1 (out of
 * memory) or -2 (more than CL_SERVERS_MAX servers, which no topology
 * has: each insertion moves the list, so this also bounds the work). */
static int add_server(cl_tf_t *tf, const char *id) {
  size_t lo = 0, hi = tf->nservers;
  char(*v)[CL_ID_SIZE];
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(tf->servers[mid], id);
    if (c == 0)
      return 0;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (tf->nservers >= CL_SERVERS_MAX)
    return -2;
  v = realloc(tf->servers, (tf->nservers + 1) * sizeof *v);
  if (v == NULL)
    return -1;
  tf->servers = v;
  memmove(v[lo + 1], v[lo], (tf->nservers - lo) * sizeof *v);
  snprintf(v[lo], CL_ID_SIZE, "%s", id);
  tf->nservers++;
  return 0;
}

int cl_tf_read(const char *name, const char *text, size_t len, cl_tf_t **out,
               cl_diag_t *diag) {
  cl_tf_t *tf = calloc(1, sizeof *tf);
  pending_t *pend = NULL;
  size_t cap = 0, pos = 0, k;
  int line = 0;
  *out = NULL;
  if (tf == NULL)
    return bad(diag, name, 0, "out of memory");
  while (pos < len) {
    const char *nl = memchr(text + pos, '\n', len - pos);
    size_t end = nl ? (size_t)(nl - text) : len;
    json_error_t je;
    json_t *o;
    line++;
    if (end == pos) { /* an empty line */
      pos = end + 1;
      continue;
    }
    if (tf->nev == cap) {
      size_t ncap = cap ? cap * 2 : 256;
      cl_tf_event_t *ev = realloc(tf->ev, ncap * sizeof *ev);
      pending_t *pe = realloc(pend, ncap * sizeof *pe);
      if (ev != NULL)
        tf->ev = ev;
      if (pe != NULL)
        pend = pe;
      if (ev == NULL || pe == NULL) {
        bad(diag, name, line, "out of memory");
        goto fail;
      }
      cap = ncap;
    }
    memset(&tf->ev[tf->nev], 0, sizeof tf->ev[0]);
    memset(&pend[tf->nev], 0, sizeof pend[0]);
    o = json_loadb(text + pos, end - pos, JSON_REJECT_DUPLICATES, &je);
    if (o == NULL) {
      bad(diag, name, line, "not JSON: %s", je.text);
      goto fail;
    }
    tf->nev++;
    if (read_line(name, line, o, &tf->ev[tf->nev - 1], &pend[tf->nev - 1],
                  diag) < 0) {
      json_decref(o);
      goto fail;
    }
    json_decref(o);
    pos = end + 1;
  }
  if (tf->nev == 0) {
    bad(diag, name, 0, "no events: an empty trace");
    goto fail;
  }
  /* The servers: every name met, in byte order. */
  for (k = 0; k < tf->nev; k++) {
    int r = add_server(tf, pend[k].server);
    if (r == 0 && pend[k].peer[0])
      r = add_server(tf, pend[k].peer);
    if (r < 0) {
      bad(diag, name, tf->ev[k].line, r == -2 ? "more than %d servers" :
          "out of memory", CL_SERVERS_MAX);
      goto fail;
    }
  }
  for (k = 0; k < tf->nev; k++) {
    cl_tf_event_t *e = &tf->ev[k];
    const cl_tf_event_t *prev = k ? &tf->ev[k - 1] : NULL;
    e->server = cl_tf_server(tf, pend[k].server);
    if (pend[k].peer[0])
      e->peer = cl_tf_server(tf, pend[k].peer);
    if (e->peer == e->server) {
      bad(diag, name, e->line, "%s names itself as its peer", pend[k].server);
      goto fail;
    }
    if (prev != NULL && prev->server == e->server) {
      uint64_t want = prev->i + (prev->ev == CL_TEV_DROPPED
                                     ? (uint64_t)prev->n : 1);
      if (e->i != want) {
        bad(diag, name, e->line, "%s's event %" PRIu64 " follows its event %"
            PRIu64 ": expected index %" PRIu64 " (lines are ordered by "
            "server, then i, with no gap but a dropped line)",
            pend[k].server, e->i, prev->i, want);
        goto fail;
      }
    } else if (prev != NULL && prev->server > e->server) {
      bad(diag, name, e->line, "server %s after %s: lines are ordered by "
          "server id", pend[k].server, tf->servers[prev->server]);
      goto fail;
    } else if (e->i != 0) {
      bad(diag, name, e->line, "%s's first event has index %" PRIu64
          ", not 0: the start of its trace is missing", pend[k].server,
          e->i);
      goto fail;
    }
  }
  free(pend);
  pend = NULL;
  if (finish(tf) < 0) {
    bad(diag, name, 0, "out of memory");
    goto fail;
  }
  *out = tf;
  return 0;
fail:
  free(pend);
  cl_tf_free(tf);
  return -1;
}

int cl_tf_load(const char *path, cl_tf_t **out, cl_diag_t *diag) {
  char *text;
  size_t len;
  int rc;
  *out = NULL;
  if (cl_read_file(path, &text, &len, diag) < 0)
    return -1;
  rc = cl_tf_read(path, text, len, out, diag);
  free(text);
  return rc;
}

/* ---- linking ------------------------------------------------------------ */

/* Sort keys for matching: (src, dst, seq or snap, kind) of a send. */
typedef struct key {
  uint32_t src, dst;
  uint64_t v;
  uint8_t marker;
  size_t at;
} msgkey_t;

static int msg_cmp(const void *a, const void *b) {
  const cl_tf_msg_t *x = a, *y = b;
  if (x->marker != y->marker)
    return x->marker < y->marker ? -1 : 1;
  if (x->src != y->src)
    return x->src < y->src ? -1 : 1;
  if (x->dst != y->dst)
    return x->dst < y->dst ? -1 : 1;
  /* A channel carries one marker per snapshot: (src, dst, snap) is a
   * marker's key, whatever its seq. */
  if (x->marker)
    return x->snap < y->snap ? -1 : x->snap > y->snap;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int key_cmp(const void *a, const void *b) {
  const msgkey_t *x = a, *y = b;
  if (x->marker != y->marker)
    return x->marker < y->marker ? -1 : 1;
  if (x->src != y->src)
    return x->src < y->src ? -1 : 1;
  if (x->dst != y->dst)
    return x->dst < y->dst ? -1 : 1;
  return x->v < y->v ? -1 : x->v > y->v;
}

/* Where the event at k is, for a message: "FILE:LINE" or server and i. */
static void where(const cl_tf_t *tf, size_t k, char *buf, size_t size) {
  const cl_tf_event_t *e = &tf->ev[k];
  snprintf(buf, size, "%s's event %" PRIu64, tf->servers[e->server], e->i);
}

/* 1 if the trace of server s records snapshot snap. */
static int records(const cl_tf_t *tf, uint32_t s, uint64_t snap) {
  size_t k;
  for (k = tf->first[s]; k < tf->first[s + 1]; k++)
    if (tf->ev[k].ev == CL_TEV_RECORD && tf->ev[k].snap == snap)
      return 1;
  return 0;
}

/* The first key at or after want in keys[0..n) (sorted). */
static size_t lower_bound(const msgkey_t *keys, size_t n, const msgkey_t *want) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (key_cmp(&keys[mid], want) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* A receive with no send in the trace (k): CL_TF_SENT_BEFORE or
 * CL_TF_SENT_AFTER when its channel's messages in the sender's trace are
 * all after or all before it, else -1 with diag (a message the sender's
 * trace should hold). */
static int unsent(const cl_tf_t *tf, size_t k, const msgkey_t *keys, size_t n,
                  const char *name, cl_diag_t *diag) {
  const cl_tf_event_t *e = &tf->ev[k];
  msgkey_t want = {e->peer, e->server, 0, e->ev == CL_TEV_MARKER_RECV, 0};
  size_t at;
  int later, earlier;
  char w[CL_ID_SIZE + 64];
  where(tf, k, w, sizeof w);
  if (want.marker) {
    if (!records(tf, e->peer, e->snap))
      return CL_TF_SENT_BEFORE;
    return bad(diag, name, e->line, "%s receives the marker of snapshot %"
               PRIu64 " from %s, which recorded it in the trace but never "
               "sent that marker", w, e->snap, tf->servers[e->peer]);
  }
  want.v = e->seq;
  at = lower_bound(keys, n, &want);
  later = at < n && !keys[at].marker && keys[at].src == e->peer &&
          keys[at].dst == e->server;
  earlier = at > 0 && !keys[at - 1].marker && keys[at - 1].src == e->peer &&
            keys[at - 1].dst == e->server;
  if (!earlier)
    return CL_TF_SENT_BEFORE;
  if (!later)
    return CL_TF_SENT_AFTER;
  return bad(diag, name, e->line, "%s receives token message #%" PRIu64
             " from %s, which %s's trace should hold but does not (it "
             "sends #%" PRIu64 " and #%" PRIu64 ")", w, e->seq,
             tf->servers[e->peer], tf->servers[e->peer], keys[at - 1].v,
             keys[at].v);
}

/* The messages, from the matched events: every send, and every receive
 * of a message sent before the trace. */
static int messages(cl_tf_t *tf, const uint8_t *outside) {
  size_t k, n = 0;
  tf->msgs = malloc((tf->nev ? tf->nev : 1) * sizeof *tf->msgs);
  if (tf->msgs == NULL)
    return CL_ENOMEM;
  for (k = 0; k < tf->nev; k++) {
    const cl_tf_event_t *e = &tf->ev[k];
    cl_tf_msg_t *m;
    int send = e->ev == CL_TEV_SEND || e->ev == CL_TEV_MARKER_SEND;
    int recv = e->ev == CL_TEV_RECV || e->ev == CL_TEV_MARKER_RECV;
    if (!send && !(recv && e->match == CL_TF_NONE))
      continue;
    m = &tf->msgs[n++];
    m->src = send ? e->server : e->peer;
    m->dst = send ? e->peer : e->server;
    m->marker = e->ev == CL_TEV_MARKER_SEND || e->ev == CL_TEV_MARKER_RECV;
    m->seq = e->seq;
    m->n = e->n;
    m->snap = m->marker ? e->snap : 0;
    m->send = send ? k : CL_TF_NONE;
    m->recv = send ? e->match : k;
    m->outside = send ? CL_TF_INSIDE : outside[k];
  }
  tf->nmsgs = n;
  qsort(tf->msgs, n, sizeof *tf->msgs, msg_cmp);
  /* A token message sent in the trace and not received there, followed
   * on its channel by one received there, was received before the
   * receiver's trace began (FIFO). Messages are in (src, dst, seq) order:
   * walk each channel from its end. */
  for (k = n; k-- > 0;) {
    cl_tf_msg_t *m = &tf->msgs[k];
    const cl_tf_msg_t *next = k + 1 < n ? &tf->msgs[k + 1] : NULL;
    if (m->marker || m->recv != CL_TF_NONE || next == NULL || next->marker ||
        next->src != m->src || next->dst != m->dst)
      continue;
    if (next->recv != CL_TF_NONE || next->outside == CL_TF_RECV_BEFORE)
      m->outside = CL_TF_RECV_BEFORE;
  }
  return 0;
}

/* Match each recv to its send (and markers), checking FIFO order. */
static int match(cl_tf_t *tf, const char *name, cl_diag_t *diag) {
  msgkey_t *keys = malloc((tf->nev ? tf->nev : 1) * sizeof *keys);
  uint64_t *last = calloc(tf->nservers ? tf->nservers : 1, sizeof *last);
  uint8_t *seen = calloc(tf->nservers ? tf->nservers : 1, 1);
  uint8_t *outside = calloc(tf->nev ? tf->nev : 1, 1);
  size_t k, n = 0;
  int rc = 0;
  char w[CL_ID_SIZE + 64];
  if (keys == NULL || last == NULL || seen == NULL || outside == NULL) {
    free(keys);
    free(last);
    free(seen);
    free(outside);
    return bad(diag, name, 0, "out of memory");
  }
  for (k = 0; k < tf->nev; k++) {
    const cl_tf_event_t *e = &tf->ev[k];
    if (e->ev == CL_TEV_SEND || e->ev == CL_TEV_MARKER_SEND) {
      msgkey_t *x = &keys[n++];
      x->src = e->server;
      x->dst = e->peer;
      x->marker = e->ev == CL_TEV_MARKER_SEND;
      x->v = x->marker ? e->snap : e->seq;
      x->at = k;
    }
  }
  qsort(keys, n, sizeof *keys, key_cmp);
  for (k = 1; k < n && rc == 0; k++)
    if (key_cmp(&keys[k - 1], &keys[k]) == 0) {
      where(tf, keys[k].at, w, sizeof w);
      rc = bad(diag, name, tf->ev[keys[k].at].line, "%s sends %s%" PRIu64
               " to %s a second time", w, keys[k].marker ? "the marker of "
               "snapshot " : "token message #", keys[k].v,
               tf->servers[keys[k].dst]);
    }
  for (k = 0; k < tf->nev && rc == 0; k++) {
    cl_tf_event_t *e = &tf->ev[k];
    msgkey_t want, *hit;
    if (k == 0 || tf->ev[k - 1].server != e->server) {
      memset(last, 0, tf->nservers * sizeof *last);
      memset(seen, 0, tf->nservers);
    }
    if (e->ev != CL_TEV_RECV && e->ev != CL_TEV_MARKER_RECV)
      continue;
    want.src = e->peer;
    want.dst = e->server;
    want.marker = e->ev == CL_TEV_MARKER_RECV;
    want.v = want.marker ? e->snap : e->seq;
    hit = bsearch(&want, keys, n, sizeof *keys, key_cmp);
    where(tf, k, w, sizeof w);
    if (!want.marker) {
      /* FIFO: after the channel's first receive in the trace, each is the
       * next one. */
      if (seen[e->peer] && e->seq != last[e->peer] + 1) {
        rc = bad(diag, name, e->line, "%s receives #%" PRIu64 " from %s "
                 "after #%" PRIu64 ": not the channel's next message", w,
                 e->seq, tf->servers[e->peer], last[e->peer]);
        break;
      }
      seen[e->peer] = 1;
      last[e->peer] = e->seq;
    }
    if (hit == NULL) {
      if ((rc = unsent(tf, k, keys, n, name, diag)) < 0)
        break;
      outside[k] = (uint8_t)rc;
      rc = 0;
      continue;
    }
    if (tf->ev[hit->at].match != CL_TF_NONE) {
      rc = bad(diag, name, e->line, "%s receives a message twice", w);
      break;
    }
    if (!want.marker && e->n != tf->ev[hit->at].n) {
      rc = bad(diag, name, e->line, "%s receives #%" PRIu64 " from %s with %"
               PRId64 " tokens, but it was sent with %" PRId64, w, e->seq,
               tf->servers[e->peer], e->n, tf->ev[hit->at].n);
      break;
    }
    if (want.marker && e->seq != tf->ev[hit->at].seq) {
      rc = bad(diag, name, e->line, "%s receives snapshot %" PRIu64 "'s "
               "marker after %" PRIu64 " token messages, but %s sent it after %"
               PRIu64 ": the channel is not FIFO", w, e->snap, e->seq,
               tf->servers[e->peer], tf->ev[hit->at].seq);
      break;
    }
    e->match = hit->at;
    tf->ev[hit->at].match = k;
  }
  free(keys);
  free(last);
  free(seen);
  if (rc == 0 && messages(tf, outside) < 0)
    rc = bad(diag, name, 0, "out of memory");
  free(outside);
  return rc;
}

/* Lamport times: each event 1 + the latest of its server's previous one
 * and its send. Servers advance in turn; a receive waits for its send. */
static int lamport(cl_tf_t *tf, const char *name, cl_diag_t *diag) {
  size_t *at = malloc((tf->nservers ? tf->nservers : 1) * sizeof *at);
  uint8_t *done = calloc(tf->nev ? tf->nev : 1, 1);
  size_t left = tf->nev, s;
  int moved = 1;
  if (at == NULL || done == NULL) {
    free(at);
    free(done);
    return bad(diag, name, 0, "out of memory");
  }
  for (s = 0; s < tf->nservers; s++)
    at[s] = tf->first[s];
  tf->max_lamport = 0;
  while (left > 0 && moved) {
    moved = 0;
    for (s = 0; s < tf->nservers; s++) {
      while (at[s] < tf->first[s + 1]) {
        cl_tf_event_t *e = &tf->ev[at[s]];
        uint64_t t = at[s] > tf->first[s] ? tf->ev[at[s] - 1].lamport : 0;
        if ((e->ev == CL_TEV_RECV || e->ev == CL_TEV_MARKER_RECV) &&
            e->match != CL_TF_NONE) {
          if (!done[e->match])
            break;
          if (tf->ev[e->match].lamport > t)
            t = tf->ev[e->match].lamport;
        }
        e->lamport = t + 1;
        if (e->lamport > tf->max_lamport)
          tf->max_lamport = e->lamport;
        done[at[s]++] = 1;
        left--;
        moved = 1;
      }
    }
  }
  free(at);
  free(done);
  if (left > 0)
    return bad(diag, name, 0, "the receives wait on each other in a cycle: "
               "this is no trace of a real run");
  return 0;
}

/* A server records a snapshot once and completes it once: a second
 * record or done of one snapshot on one server is refused. */
static int once(const cl_tf_t *tf, const char *name, cl_diag_t *diag) {
  size_t k, j;
  for (k = 0; k < tf->nev; k++) {
    const cl_tf_event_t *e = &tf->ev[k];
    if (e->ev != CL_TEV_RECORD && e->ev != CL_TEV_DONE)
      continue;
    /* Later ones of this server only: O(events of a server) per record,
     * and a server has one record and one done per snapshot. */
    for (j = k + 1; j < tf->first[e->server + 1]; j++)
      if (tf->ev[j].ev == e->ev && tf->ev[j].snap == e->snap)
        return bad(diag, name, tf->ev[j].line, "%s's event %" PRIu64
                   " is its second %s of snapshot %" PRIu64 " (the first is "
                   "event %" PRIu64 ")", tf->servers[e->server], tf->ev[j].i,
                   cl_tf_ev_name(e->ev), e->snap, e->i);
  }
  return 0;
}

int cl_tf_link(cl_tf_t *tf, const char *name, cl_diag_t *diag) {
  if (tf->gap_server != UINT32_MAX)
    return bad(diag, name, tf->gap_line, "%s dropped %" PRIu64 " events "
               "from its event %" PRIu64 " on (its trace buffer was full): "
               "this needs a whole trace (trace start --events N with a "
               "larger N, or a shorter run)", tf->servers[tf->gap_server],
               tf->gap_count, tf->gap_i);
  if (once(tf, name, diag) < 0 || match(tf, name, diag) < 0)
    return -1;
  return lamport(tf, name, diag);
}

/* ---- snapshots ---------------------------------------------------------- */

int cl_tf_snap(const cl_tf_t *tf, uint64_t snap, cl_tf_snap_t *out) {
  size_t k;
  out->id = snap;
  out->record = malloc((tf->nservers ? tf->nservers : 1) * sizeof(size_t));
  out->done = malloc((tf->nservers ? tf->nservers : 1) * sizeof(size_t));
  if (out->record == NULL || out->done == NULL) {
    cl_tf_snap_free(out);
    return CL_ENOMEM;
  }
  for (k = 0; k < tf->nservers; k++)
    out->record[k] = out->done[k] = CL_TF_NONE;
  for (k = 0; k < tf->nev; k++) {
    const cl_tf_event_t *e = &tf->ev[k];
    if (e->snap != snap)
      continue;
    if (e->ev == CL_TEV_RECORD)
      out->record[e->server] = k;
    else if (e->ev == CL_TEV_DONE)
      out->done[e->server] = k;
  }
  return 0;
}

void cl_tf_snap_free(cl_tf_snap_t *s) {
  free(s->record);
  free(s->done);
  s->record = s->done = NULL;
}

const cl_tf_msg_t *cl_tf_marker(const cl_tf_t *tf, uint32_t src, uint32_t dst,
                                uint64_t snap) {
  cl_tf_msg_t want;
  memset(&want, 0, sizeof want);
  want.src = src;
  want.dst = dst;
  want.marker = 1;
  want.snap = snap;
  return bsearch(&want, tf->msgs, tf->nmsgs, sizeof *tf->msgs, msg_cmp);
}

int cl_tf_listed(const cl_tf_event_t *recv, uint64_t snap) {
  uint32_t j;
  for (j = 0; j < recv->nrec; j++)
    if (recv->rec[j] == snap)
      return 1;
  return 0;
}

/* How message m left its sender, for cl_tf_why: "sent by P (event 3)
 * before it recorded snapshot 2 (event 5)" and the like. */
static void sent_part(const cl_tf_t *tf, const cl_tf_snap_t *sn,
                      const cl_tf_msg_t *m, char *buf, size_t size) {
  const char *P = tf->servers[m->src];
  size_t rp = sn->record[m->src];
  if (m->send == CL_TF_NONE)
    snprintf(buf, size, "sent by %s %s its trace", P,
             m->outside == CL_TF_SENT_AFTER ? "after" : "before");
  else if (rp == CL_TF_NONE)
    snprintf(buf, size, "sent by %s (event %" PRIu64 "), which had not "
             "recorded snapshot %" PRIu64 " in its trace", P,
             tf->ev[m->send].i, sn->id);
  else
    snprintf(buf, size, "sent by %s (event %" PRIu64 ") before it recorded "
             "snapshot %" PRIu64 " (event %" PRIu64 ")", P, tf->ev[m->send].i,
             sn->id, tf->ev[rp].i);
}

int cl_tf_why(const cl_tf_t *tf, const cl_tf_snap_t *sn, const cl_tf_msg_t *m,
              char *why, size_t whysize) {
  const char *P = tf->servers[m->src], *Q = tf->servers[m->dst];
  size_t rp = sn->record[m->src], rq = sn->record[m->dst], mq;
  const cl_tf_msg_t *mk = cl_tf_marker(tf, m->src, m->dst, sn->id);
  char tmp[8], sent[160], mark[64] = " (which had not come)";
  if (why == NULL) {
    why = tmp;
    whysize = sizeof tmp;
  }
  mq = mk != NULL ? mk->recv : CL_TF_NONE;
  /* The rule is the receiver's: after it recorded, before the marker on
   * this channel. The sender's side only explains it. */
  if (rp != CL_TF_NONE &&
      ((m->send != CL_TF_NONE && tf->ev[m->send].i > tf->ev[rp].i) ||
       m->outside == CL_TF_SENT_AFTER)) {
    char at[48] = "";
    if (m->send != CL_TF_NONE)
      snprintf(at, sizeof at, " (event %" PRIu64 ")", tf->ev[m->send].i);
    snprintf(why, whysize, "sent by %s%s after it recorded snapshot %" PRIu64
             " (event %" PRIu64 "), so after the marker on this FIFO channel: "
             "outside the cut on both sides", P, at, sn->id, tf->ev[rp].i);
    return 0;
  }
  if (rq == CL_TF_NONE) {
    snprintf(why, whysize, "%s did not record snapshot %" PRIu64 " in its "
             "trace", Q, sn->id);
    return 0;
  }
  if (m->outside == CL_TF_RECV_BEFORE) {
    snprintf(why, whysize, "received by %s before its trace began, so before "
             "it recorded snapshot %" PRIu64 ": its recorded tokens include "
             "these", Q, sn->id);
    return 0;
  }
  sent_part(tf, sn, m, sent, sizeof sent);
  if (m->recv == CL_TF_NONE) {
    snprintf(why, whysize, "%s, not received by the end of the trace: %s "
             "was still recording this channel, and records it if it comes "
             "before the marker", sent, Q);
    return 0;
  }
  if (tf->ev[m->recv].i < tf->ev[rq].i) {
    snprintf(why, whysize, "received by %s (event %" PRIu64 ") before it "
             "recorded snapshot %" PRIu64 " (event %" PRIu64 "): its "
             "recorded tokens include these", Q, tf->ev[m->recv].i, sn->id,
             tf->ev[rq].i);
    return 0;
  }
  if (mq != CL_TF_NONE && tf->ev[m->recv].i > tf->ev[mq].i) {
    snprintf(why, whysize, "received by %s (event %" PRIu64 ") after "
             "snapshot %" PRIu64 "'s marker from %s (event %" PRIu64 ")", Q,
             tf->ev[m->recv].i, sn->id, P, tf->ev[mq].i);
    return 0;
  }
  if (mq != CL_TF_NONE)
    snprintf(mark, sizeof mark, " (event %" PRIu64 ")", tf->ev[mq].i);
  snprintf(why, whysize, "%s, received by %s (event %" PRIu64 ") after it "
           "recorded (event %" PRIu64 ") and before the marker from %s%s: in "
           "flight across the cut", sent, Q, tf->ev[m->recv].i, tf->ev[rq].i,
           P, mark);
  return 1;
}

int64_t cl_tf_initial_tokens(const cl_tf_t *tf, size_t s) {
  const cl_tf_event_t *e;
  if (tf->first[s] == tf->first[s + 1])
    return 0;
  e = &tf->ev[tf->first[s]];
  if (e->ev == CL_TEV_SEND)
    return e->tokens + e->n;
  if (e->ev == CL_TEV_RECV)
    return e->tokens - e->n;
  return e->tokens;
}
