/* The node core: one server's tokens and the Chandy-Lamport rules (see
 * node.h for the contract). Layout choices, all for the token hot path:
 * - peers are sorted once at creation, so an index is a rank and id lookups
 *   are binary searches;
 * - active snapshots sit in a small array of their own, so a token touches
 *   only those (none active: O(1), no allocation);
 * - completed snapshots are a list in completion order (O(1) append, evict
 *   and release) and every known snapshot is also in an id hash table, so
 *   markers and lookups do not scan the kept states.
 * Every mutating operation first reserves all memory it may need (actions,
 * records, table slots), then mutates, so a failure changes nothing.
 */
#include "node.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "idmap.h"
#include "trace.h"
#include "util.h"

/* One snapshot's recorded state. sent/recv/open live in the same block. */
typedef struct snap {
  uint64_t id;
  int complete;
  int dropped;     /* given up (DROP): records nothing and never
                      completes; on the dropped list */
  int marked;      /* its markers went out here (dropped: when not, the
                      first marker to come sends them, so that the
                      snapshot's marker wave still reaches everyone and
                      every server forgets it) */
  int64_t tokens;
  uint64_t *sent;  /* [nout] token messages sent when recorded */
  uint64_t *recv;  /* [nin] token messages received when recorded */
  uint8_t *open;   /* [nin] 1 while the channel is still being recorded */
  size_t nopen;
  /* Recorded messages as runs (node.h), arrival order. No separate cap:
   * every run holds at least one token message received while recording,
   * so a snapshot of an honest system has at most as many runs as the
   * system has tokens in flight. */
  cl_node_record_t *rec;
  size_t nrec, caprec;
  struct snap *prev, *next; /* kept list (completion order), or the
                               dropped list (drop order) */
} snap_t;

struct cl_node {
  char self[CL_ID_SIZE];
  int64_t tokens, initial;
  size_t nout, nin;
  char (*out)[CL_ID_SIZE]; /* sorted */
  char (*in)[CL_ID_SIZE];  /* sorted */
  uint64_t *sent;          /* [nout] */
  uint64_t *recv;          /* [nin] */
  size_t max_active;
  snap_t **active;         /* oldest first */
  size_t nactive, capactive;
  snap_t *kept_head, *kept_tail; /* oldest at head */
  size_t nkept;
  snap_t *drop_head, *drop_tail;  /* dropped, markers still due; oldest at
                                     head */
  size_t ndropped;
  cl_idmap_t table;        /* id -> snap_t *, active, kept and dropped */
  cl_trace_t *trace;       /* NULL: not tracing (borrowed) */
};

/* ---- actions ------------------------------------------------------------ */

/* Start an empty action list that owns nothing. */
void cl_actions_init(cl_actions_t *a) {
  a->v = NULL;
  a->n = 0;
  a->cap = 0;
}

/* Forget the actions but keep the capacity for reuse. */
void cl_actions_clear(cl_actions_t *a) { a->n = 0; }

/* Release the list's memory; the list is empty and reusable afterwards. */
void cl_actions_free(cl_actions_t *a) {
  free(a->v);
  cl_actions_init(a);
}

/* Make room for `more` actions beyond a->n. Returns 0 or CL_ENOMEM; never
 * changes the actions already there. */
static int actions_reserve(cl_actions_t *a, size_t more) {
  size_t need, cap;
  cl_action_t *v;
  if (more > SIZE_MAX / sizeof(cl_action_t) - a->n)
    return CL_ENOMEM;
  need = a->n + more;
  if (need <= a->cap)
    return 0;
  cap = a->cap ? a->cap : 16;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 / sizeof(cl_action_t) ? need : cap * 2;
  v = cl_realloc(a->v, cap * sizeof(cl_action_t));
  if (v == NULL)
    return CL_ENOMEM;
  a->v = v;
  a->cap = cap;
  return 0;
}

/* Append to a list whose capacity was reserved. */
static cl_action_t *actions_push(cl_actions_t *a, uint8_t kind) {
  cl_action_t *x = &a->v[a->n++];
  memset(x, 0, sizeof(*x));
  x->kind = kind;
  return x;
}

/* ---- trace ---------------------------------------------------------------- */

/* Every event the rules apply goes to the trace here, once it is sure to
 * happen (docs/TRACE.md); tokens are the node's after the event. */
static void trace_ev(cl_node_t *node, uint8_t ev, uint32_t peer, uint64_t seq,
                     int64_t n, uint64_t snap) {
  if (node->trace != NULL)
    (void)cl_trace_add(node->trace, ev, peer, seq, n, snap, node->tokens, 0);
}

/* The ids of the active snapshots recording inbound `in`, ascending, into
 * ids (room for nactive). Returns how many. */
static size_t recording(const cl_node_t *node, uint32_t in, uint64_t *ids);

/* ---- id table ----------------------------------------------------------- */

/* The snapshot with id, active, kept or dropped, or NULL. */
static snap_t *table_find(const cl_node_t *node, uint64_t id) {
  uintptr_t v;
  return cl_idmap_get(&node->table, id, &v) ? (snap_t *)v : NULL;
}

/* Room for one more entry. Rehashing does not change what the node
 * reports, so it is safe before a possible failure. */
static int table_reserve(cl_node_t *node) {
  return cl_idmap_reserve(&node->table, 1);
}

/* Insert after table_reserve (cannot fail then). */
static void table_insert(cl_node_t *node, snap_t *s) {
  (void)cl_idmap_put(&node->table, s->id, (uintptr_t)s);
}

static void table_remove(cl_node_t *node, uint64_t id) {
  cl_idmap_del(&node->table, id);
}

/* ---- snapshots ---------------------------------------------------------- */

/* A fresh snapshot record recording the node's current state, with every
 * inbound channel open. NULL on allocation failure; nothing is linked. */
static snap_t *snap_new(const cl_node_t *node, uint64_t id) {
  size_t nout = node->nout, nin = node->nin;
  size_t size = sizeof(snap_t) + (nout + nin) * sizeof(uint64_t) + nin;
  snap_t *s = cl_malloc(size);
  if (s == NULL)
    return NULL;
  memset(s, 0, sizeof(*s));
  s->id = id;
  s->tokens = node->tokens;
  s->sent = (uint64_t *)(void *)(s + 1);
  s->recv = s->sent + nout;
  s->open = (uint8_t *)(s->recv + nin);
  if (nout)
    memcpy(s->sent, node->sent, nout * sizeof(uint64_t));
  if (nin) {
    memcpy(s->recv, node->recv, nin * sizeof(uint64_t));
    memset(s->open, 1, nin);
  }
  s->nopen = nin;
  return s;
}

/* Free a snapshot record that is linked nowhere any more. */
static void snap_free(snap_t *s) {
  if (s != NULL)
    free(s->rec);
  free(s);
}

/* Room for one more recorded run. */
static int snap_reserve_rec(snap_t *s) {
  size_t cap;
  cl_node_record_t *r;
  if (s->nrec < s->caprec)
    return 0;
  cap = s->caprec ? s->caprec * 2 : 8;
  if (cap > SIZE_MAX / sizeof(*r))
    return CL_ENOMEM;
  r = cl_realloc(s->rec, cap * sizeof(*r));
  if (r == NULL)
    return CL_ENOMEM;
  s->rec = r;
  s->caprec = cap;
  return 0;
}

/* Record `count` messages of n tokens on `in`, seqs from seq, in s: they
 * lengthen the last run when they continue it, else start a new run (room
 * reserved beforehand with snap_reserve_rec). */
static void snap_record(snap_t *s, uint32_t in, uint64_t seq, uint64_t count,
                        int64_t n) {
  cl_node_record_t *r = s->nrec ? &s->rec[s->nrec - 1] : NULL;
  if (r != NULL && r->in == in && r->n == n && r->seq + r->count == seq) {
    r->count += count;
    return;
  }
  r = &s->rec[s->nrec++];
  r->in = in;
  r->seq = seq;
  r->count = count;
  r->n = n;
}

/* Room for one more active snapshot. */
static int active_reserve(cl_node_t *node) {
  size_t cap;
  snap_t **a;
  if (node->nactive < node->capactive)
    return 0;
  cap = node->capactive ? node->capactive * 2 : 4;
  if (cap > SIZE_MAX / sizeof(*a))
    return CL_ENOMEM;
  a = cl_realloc(node->active, cap * sizeof(*a));
  if (a == NULL)
    return CL_ENOMEM;
  node->active = a;
  node->capactive = cap;
  return 0;
}

/* Take s out of the list head..tail of n entries (the id table is the
 * caller's business). */
static void list_unlink(snap_t **head, snap_t **tail, size_t *n, snap_t *s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    *head = s->next;
  if (s->next)
    s->next->prev = s->prev;
  else
    *tail = s->prev;
  s->prev = s->next = NULL;
  (*n)--;
}

/* Append s to the list head..tail of n entries. */
static void list_append(snap_t **head, snap_t **tail, size_t *n, snap_t *s) {
  s->prev = *tail;
  s->next = NULL;
  if (*tail)
    (*tail)->next = s;
  else
    *head = s;
  *tail = s;
  (*n)++;
}

/* Take s out of the kept list. */
static void kept_unlink(cl_node_t *node, snap_t *s) {
  list_unlink(&node->kept_head, &node->kept_tail, &node->nkept, s);
}

/* Forget dropped snapshot s altogether: table, list, memory. */
static void dropped_forget(cl_node_t *node, snap_t *s) {
  list_unlink(&node->drop_head, &node->drop_tail, &node->ndropped, s);
  table_remove(node, s->id);
  snap_free(s);
}

/* Move active snapshot at index k to the kept list and emit COMPLETE.
 * Needs 1 reserved action. */
static void complete_at(cl_node_t *node, size_t k, cl_actions_t *acts) {
  snap_t *s = node->active[k];
  cl_action_t *a;
  /* Keep the active array in start order: it is reported oldest first. */
  memmove(&node->active[k], &node->active[k + 1],
          (node->nactive - k - 1) * sizeof(snap_t *));
  node->nactive--;
  s->complete = 1;
  list_append(&node->kept_head, &node->kept_tail, &node->nkept, s);
  a = actions_push(acts, CL_ACT_COMPLETE);
  a->snapshot_id = s->id;
  trace_ev(node, CL_TEV_DONE, 0, 0, 0, s->id);
}

/* Record a new snapshot (reservations done), closing inbound channel
 * `closed` if it is not SIZE_MAX, send markers, complete if nothing is open. */
static void record_and_mark(cl_node_t *node, snap_t *s, size_t closed,
                            cl_actions_t *acts) {
  size_t i;
  if (closed != SIZE_MAX) {
    s->open[closed] = 0;
    s->nopen--;
  }
  table_insert(node, s);
  node->active[node->nactive++] = s;
  s->marked = 1;
  trace_ev(node, CL_TEV_RECORD, 0, 0, 0, s->id);
  for (i = 0; i < node->nout; i++) {
    cl_action_t *a = actions_push(acts, CL_ACT_SEND);
    a->msg = CL_MSG_MARKER;
    a->peer = (uint32_t)i;
    a->snapshot_id = s->id;
    trace_ev(node, CL_TEV_MARKER_SEND, (uint32_t)i, node->sent[i], 0, s->id);
  }
  if (s->nopen == 0)
    complete_at(node, node->nactive - 1, acts);
}

/* Everything a new snapshot needs, reserved up front: the record itself,
 * table and active slots, and nout markers + COMPLETE actions.
 * CL_EFULL at CL_NODE_ACTIVE_MAX snapshots in progress, before anything is
 * reserved. */
static int prepare_snapshot(cl_node_t *node, uint64_t id, cl_actions_t *acts,
                            snap_t **out) {
  int err;
  snap_t *s;
  if (node->nactive >= node->max_active)
    return CL_EFULL;
  if ((err = actions_reserve(acts, node->nout + 1)) < 0 ||
      (err = table_reserve(node)) < 0 || (err = active_reserve(node)) < 0)
    return err;
  s = snap_new(node, id);
  if (s == NULL)
    return CL_ENOMEM;
  *out = s;
  return 0;
}

/* ---- creation ----------------------------------------------------------- */

/* Copy, validate and sort a peer list. Returns 0, CL_EINVAL or CL_ENOMEM. */
static int copy_peers(const char *self, size_t n, const char *const *ids,
                      char (**out)[CL_ID_SIZE]) {
  size_t i;
  char(*v)[CL_ID_SIZE];
  *out = NULL;
  if (n == 0)
    return 0;
  if (ids == NULL || n > CL_NODE_PEERS_MAX)
    return CL_EINVAL;
  v = cl_malloc(n * sizeof(*v));
  if (v == NULL)
    return CL_ENOMEM;
  for (i = 0; i < n; i++) {
    if (cl_id_copy(v[i], ids[i]) < 0 || strcmp(v[i], self) == 0) {
      free(v);
      return CL_EINVAL;
    }
  }
  qsort(v, n, sizeof(*v), cl_id_qsort_cmp);
  for (i = 1; i < n; i++) {
    if (strcmp(v[i - 1], v[i]) == 0) {
      free(v);
      return CL_EINVAL;
    }
  }
  *out = v;
  return 0;
}

/* Create a node from cfg (copied). Returns 0 and *out, CL_EINVAL or
 * CL_ENOMEM; the caller owns the node (cl_node_free). */
int cl_node_new(const cl_node_config_t *cfg, cl_node_t **out) {
  cl_node_t *node;
  int err;
  if (out == NULL)
    return CL_EINVAL;
  *out = NULL;
  if (cfg == NULL || !cl_id_valid(cfg->self) || cfg->tokens < 0 ||
      cfg->tokens > CL_MSG_TOKENS_MAX)
    return CL_EINVAL;
  node = cl_calloc(1, sizeof(*node));
  if (node == NULL)
    return CL_ENOMEM;
  memcpy(node->self, cfg->self, strlen(cfg->self) + 1);
  node->tokens = node->initial = cfg->tokens;
  node->max_active = cfg->max_active ? cfg->max_active : CL_NODE_ACTIVE_MAX;
  if ((err = copy_peers(cfg->self, cfg->nout, cfg->out, &node->out)) < 0 ||
      (err = copy_peers(cfg->self, cfg->nin, cfg->in, &node->in)) < 0)
    goto fail;
  node->nout = cfg->nout;
  node->nin = cfg->nin;
  err = CL_ENOMEM;
  if ((node->nout &&
       (node->sent = cl_calloc(node->nout, sizeof(uint64_t))) == NULL) ||
      (node->nin && (node->recv = cl_calloc(node->nin, sizeof(uint64_t))) == NULL))
    goto fail;
  *out = node;
  return 0;
fail:
  cl_node_free(node);
  return err;
}

/* Free every snapshot the node knows (active, kept, dropped) and empty
 * its lists; the id table is left to the caller. */
static void forget_snapshots(cl_node_t *node) {
  size_t i;
  snap_t *s, *next;
  for (i = 0; i < node->nactive; i++)
    snap_free(node->active[i]);
  node->nactive = 0;
  for (s = node->kept_head; s != NULL; s = next) {
    next = s->next;
    snap_free(s);
  }
  node->kept_head = node->kept_tail = NULL;
  node->nkept = 0;
  for (s = node->drop_head; s != NULL; s = next) {
    next = s->next;
    snap_free(s);
  }
  node->drop_head = node->drop_tail = NULL;
  node->ndropped = 0;
}

/* Free the node and every state it keeps. NULL is fine. */
void cl_node_free(cl_node_t *node) {
  if (node == NULL)
    return;
  forget_snapshots(node);
  free(node->active);
  cl_idmap_free(&node->table);
  free(node->out);
  free(node->in);
  free(node->sent);
  free(node->recv);
  free(node);
}

/* ---- accessors ---------------------------------------------------------- */

const char *cl_node_self(const cl_node_t *node) { return node->self; }
int64_t cl_node_tokens(const cl_node_t *node) { return node->tokens; }
int64_t cl_node_initial_tokens(const cl_node_t *node) { return node->initial; }
size_t cl_node_nout(const cl_node_t *node) { return node->nout; }
size_t cl_node_nin(const cl_node_t *node) { return node->nin; }

/* Id of outbound peer i, or NULL out of range. */
const char *cl_node_out_id(const cl_node_t *node, size_t i) {
  return i < node->nout ? node->out[i] : NULL;
}

/* Id of inbound peer i, or NULL out of range. */
const char *cl_node_in_id(const cl_node_t *node, size_t i) {
  return i < node->nin ? node->in[i] : NULL;
}

/* Outbound index of id by binary search, or -1. */
int cl_node_out_index(const cl_node_t *node, const char *id) {
  return (int)cl_id_search(node->out, node->nout, CL_ID_SIZE, id);
}

/* Inbound index of id by binary search, or -1. */
int cl_node_in_index(const cl_node_t *node, const char *id) {
  return (int)cl_id_search(node->in, node->nin, CL_ID_SIZE, id);
}

/* Token messages sent on outbound i (0 out of range). */
uint64_t cl_node_sent(const cl_node_t *node, size_t i) {
  return i < node->nout ? node->sent[i] : 0;
}

/* Token messages received on inbound i (0 out of range). */
uint64_t cl_node_received(const cl_node_t *node, size_t i) {
  return i < node->nin ? node->recv[i] : 0;
}

/* ---- events ------------------------------------------------------------- */

/* Take n tokens off the node and emit one SEND TOKEN with the channel's next
 * sequence number. */
int cl_node_send_tokens(cl_node_t *node, uint32_t out, int64_t n,
                        cl_actions_t *acts) {
  cl_action_t *a;
  int err;
  if (n < 1 || out >= node->nout)
    return CL_EINVAL;
  if (n > node->tokens)
    return CL_ENOTOKENS;
  if ((err = actions_reserve(acts, 1)) < 0)
    return err;
  node->tokens -= n;
  a = actions_push(acts, CL_ACT_SEND);
  a->msg = CL_MSG_TOKEN;
  a->peer = out;
  a->seq = ++node->sent[out];
  a->n = n;
  trace_ev(node, CL_TEV_SEND, out, a->seq, n, 0);
  return 0;
}

/* Initiate snapshot id here with every inbound channel open. */
int cl_node_start_snapshot(cl_node_t *node, uint64_t id, cl_actions_t *acts) {
  snap_t *s;
  int err;
  if (table_find(node, id) != NULL)
    return CL_EEXIST;
  if ((err = prepare_snapshot(node, id, acts, &s)) < 0)
    return err;
  record_and_mark(node, s, SIZE_MAX, acts);
  return 0;
}

/* Accept a token message; recorded in every active snapshot still recording
 * channel `in`. Only the active array is visited. */
int cl_node_receive_token(cl_node_t *node, uint32_t in, uint64_t seq,
                          int64_t n, cl_actions_t *acts) {
  size_t k;
  int err;
  (void)acts; /* a token never causes an action */
  if (in >= node->nin || n < 1)
    return CL_EINVAL;
  if (seq != node->recv[in] + 1)
    return CL_ESEQ;
  if (n > CL_MSG_TOKENS_MAX - node->tokens)
    return CL_ERANGE;
  /* Reserve in every recording snapshot before touching any of them. */
  for (k = 0; k < node->nactive; k++)
    if (node->active[k]->open[in] &&
        (err = snap_reserve_rec(node->active[k])) < 0)
      return err;
  node->tokens += n;
  node->recv[in] = seq;
  for (k = 0; k < node->nactive; k++)
    if (node->active[k]->open[in])
      snap_record(node->active[k], in, seq, 1, n);
  if (node->trace != NULL) {
    size_t nrec = recording(node, in, NULL);
    uint64_t *ids = cl_trace_add(node->trace, CL_TEV_RECV, in, seq, n, 0,
                                 node->tokens, nrec);
    if (ids != NULL)
      (void)recording(node, in, ids);
  }
  return 0;
}

/* count one-token messages to `out` in one step (see node.h). */
int cl_node_send_ones(cl_node_t *node, uint32_t out, uint64_t count,
                      uint64_t *first_seq) {
  if (out >= node->nout || count == 0)
    return CL_EINVAL;
  if (count > (uint64_t)node->tokens)
    return CL_ENOTOKENS;
  if (node->trace != NULL)
    cl_trace_ones(node->trace, CL_TEV_SEND, out, node->sent[out] + 1, count,
                  node->tokens, 0, NULL);
  node->tokens -= (int64_t)count;
  *first_seq = node->sent[out] + 1;
  node->sent[out] += count;
  return 0;
}

/* Trace count one-token messages received on `in` from first (the node's
 * tokens still before them). The recorded ids go in a small array on the
 * stack; with more snapshots recording than fit, one allocation. */
static void trace_ones_in(cl_node_t *node, uint32_t in, uint64_t first,
                          uint64_t count) {
  uint64_t small[16], *ids = small;
  size_t nrec = recording(node, in, NULL);
  if (nrec > 16 && (ids = cl_malloc(nrec * sizeof *ids)) == NULL) {
    /* Without memory the events cannot be kept: count them as lost. */
    cl_trace_lose(node->trace, count);
    return;
  }
  (void)recording(node, in, ids);
  cl_trace_ones(node->trace, CL_TEV_RECV, in, first, count, node->tokens,
                nrec, ids);
  if (ids != small)
    free(ids);
}

/* A run of one-token messages on `in` (see node.h). Every snapshot still
 * recording `in` gets room for one more run first, so a failure to
 * allocate changes nothing. */
int cl_node_receive_ones(cl_node_t *node, uint32_t in, uint64_t first_seq,
                         uint64_t count, uint64_t *done) {
  uint64_t ok = count;
  size_t k;
  *done = 0;
  if (in >= node->nin || count == 0)
    return CL_EINVAL;
  if (first_seq != node->recv[in] + 1)
    return CL_ESEQ;
  if (ok > (uint64_t)(CL_MSG_TOKENS_MAX - node->tokens))
    ok = (uint64_t)(CL_MSG_TOKENS_MAX - node->tokens);
  if (ok == 0)
    return CL_ERANGE;
  for (k = 0; k < node->nactive; k++) {
    snap_t *s = node->active[k];
    int err;
    if (s->open[in] && (err = snap_reserve_rec(s)) < 0)
      return err;
  }
  if (node->trace != NULL)
    trace_ones_in(node, in, first_seq, ok);
  node->tokens += (int64_t)ok;
  node->recv[in] += ok;
  for (k = 0; k < node->nactive; k++)
    if (node->active[k]->open[in])
      snap_record(node->active[k], in, first_seq, ok, 1);
  *done = ok;
  return ok < count ? CL_ERANGE : 0;
}

/* Accept a marker: the first one of a snapshot records state (channel `in`
 * empty) and sends markers on; later ones close their channel. */
int cl_node_receive_marker(cl_node_t *node, uint32_t in, uint64_t id,
                           cl_actions_t *acts) {
  snap_t *s;
  size_t k;
  int err;
  if (in >= node->nin)
    return CL_EINVAL;
  s = table_find(node, id);
  if (s == NULL) {
    if ((err = prepare_snapshot(node, id, acts, &s)) < 0)
      return err;
    trace_ev(node, CL_TEV_MARKER_RECV, in, node->recv[in], 0, id);
    record_and_mark(node, s, in, acts);
    return 0;
  }
  if (s->complete || !s->open[in])
    return CL_EDUP;
  if (s->dropped) {
    /* It records nothing, but passes the marker wave on: the servers
     * after this one wait for it to forget the snapshot too. */
    if (!s->marked) {
      size_t i;
      if ((err = actions_reserve(acts, node->nout)) < 0)
        return err;
      trace_ev(node, CL_TEV_MARKER_RECV, in, node->recv[in], 0, id);
      for (i = 0; i < node->nout; i++) {
        cl_action_t *a = actions_push(acts, CL_ACT_SEND);
        a->msg = CL_MSG_MARKER;
        a->peer = (uint32_t)i;
        a->snapshot_id = s->id;
        trace_ev(node, CL_TEV_MARKER_SEND, (uint32_t)i, node->sent[i], 0,
                 s->id);
      }
      s->marked = 1;
    } else {
      trace_ev(node, CL_TEV_MARKER_RECV, in, node->recv[in], 0, id);
    }
    s->open[in] = 0; /* its last marker forgets it */
    if (--s->nopen == 0)
      dropped_forget(node, s);
    return 0;
  }
  if ((err = actions_reserve(acts, 1)) < 0)
    return err;
  trace_ev(node, CL_TEV_MARKER_RECV, in, node->recv[in], 0, id);
  s->open[in] = 0;
  if (--s->nopen == 0) {
    for (k = 0; node->active[k] != s; k++)
      ;
    complete_at(node, k, acts);
  }
  return 0;
}

static size_t recording(const cl_node_t *node, uint32_t in, uint64_t *ids) {
  size_t k, n = 0;
  for (k = 0; k < node->nactive; k++) {
    uint64_t id = node->active[k]->id;
    size_t j;
    if (!node->active[k]->open[in])
      continue;
    if (ids != NULL) { /* insertion: a handful of snapshots at most */
      for (j = n; j > 0 && ids[j - 1] > id; j--)
        ids[j] = ids[j - 1];
      ids[j] = id;
    }
    n++;
  }
  return n;
}

void cl_node_set_trace(cl_node_t *node, cl_trace_t *trace) {
  node->trace = trace;
}

/* 1 if id is active, kept or dropped here. */
int cl_node_has_snapshot(const cl_node_t *node, uint64_t id) {
  return table_find(node, id) != NULL;
}

/* Borrowed view of snapshot id's state (see node.h for its lifetime). */
int cl_node_state(const cl_node_t *node, uint64_t id, cl_node_state_t *st) {
  const snap_t *s = table_find(node, id);
  if (s == NULL || s->dropped)
    return CL_ENOENT;
  st->snapshot_id = s->id;
  st->complete = s->complete;
  st->tokens = s->tokens;
  st->sent = s->sent;
  st->recv = s->recv;
  st->nrecorded = s->nrec;
  st->recorded = s->rec;
  return 0;
}

/* Drop a completed state (the coordinator has collected it). */
int cl_node_release(cl_node_t *node, uint64_t id) {
  snap_t *s = table_find(node, id);
  if (s == NULL || s->dropped)
    return CL_ENOENT;
  if (!s->complete)
    return CL_EAGAIN;
  kept_unlink(node, s);
  table_remove(node, id);
  snap_free(s);
  return 0;
}

/* Give snapshot id up (see node.h). */
int cl_node_drop(cl_node_t *node, uint64_t id) {
  snap_t *s = table_find(node, id);
  size_t k;
  if (s != NULL && s->dropped)
    return 0;
  if (s != NULL && s->complete) {
    kept_unlink(node, s);
    table_remove(node, id);
    snap_free(s);
    return 0;
  }
  if (s == NULL) { /* never seen here: its markers may still come */
    if (node->nin == 0)
      return 0;
    if (table_reserve(node) < 0 || (s = snap_new(node, id)) == NULL)
      return CL_ENOMEM;
    table_insert(node, s);
  } else {
    for (k = 0; node->active[k] != s; k++)
      ;
    memmove(&node->active[k], &node->active[k + 1],
            (node->nactive - k - 1) * sizeof(snap_t *));
    node->nactive--;
    free(s->rec);
    s->rec = NULL;
    s->nrec = s->caprec = 0;
  }
  s->dropped = 1;
  list_append(&node->drop_head, &node->drop_tail, &node->ndropped, s);
  if (node->ndropped > CL_NODE_DROPPED_MAX)
    dropped_forget(node, node->drop_head);
  return 0;
}

/* Bring the node to a recorded state (see node.h). */
int cl_node_restore(cl_node_t *node, int64_t tokens, const uint64_t *sent,
                    const uint64_t *recv) {
  if (tokens < 0 || tokens > CL_MSG_TOKENS_MAX)
    return CL_EINVAL;
  forget_snapshots(node);
  cl_idmap_free(&node->table); /* a fresh, empty table */
  node->tokens = tokens;
  if (node->nout)
    memcpy(node->sent, sent, node->nout * sizeof(uint64_t));
  if (node->nin)
    memcpy(node->recv, recv, node->nin * sizeof(uint64_t));
  return 0;
}

/* Ids of active snapshots in start order; returns how many there are. */
size_t cl_node_active(const cl_node_t *node, uint64_t *ids, size_t max) {
  size_t i;
  for (i = 0; i < node->nactive && i < max; i++)
    ids[i] = node->active[i]->id;
  return node->nactive;
}

/* Ids of kept states in completion order; returns how many there are. */
size_t cl_node_kept(const cl_node_t *node, uint64_t *ids, size_t max) {
  size_t i = 0;
  const snap_t *s;
  for (s = node->kept_head; s != NULL && i < max; s = s->next)
    ids[i++] = s->id;
  return node->nkept;
}
