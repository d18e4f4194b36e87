/* Control requests from the coordinator: each becomes node calls and a
 * reply echoing its req id. DELIVER (lockstep, nothing held yet) and CONNECT
 * (channels still connecting) are parked and answered later, so replies may
 * come out of order. Notifications (COMPLETE, NOTICE) go to every control
 * connection; a COMPLETE caused by a request is queued before its reply. A
 * connection that asked for PUSH gets LOCAL_STATE (the completed state
 * itself, released here) instead of COMPLETE.
 *
 * Token accounting: a SEND is checked completely (peer, channel, tokens,
 * write cap, memory) before the node is touched, so a refused SEND changes
 * nothing.
 */
#include "daemon.h"
#include "local_state.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Queue ERROR{req, code, text} to c. */
static void reply_error(cl_conn_t *c, uint64_t req, int code, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));
static void reply_error(cl_conn_t *c, uint64_t req, int code, const char *fmt,
                        ...) {
  cl_msg_t m;
  va_list ap;
  memset(&m, 0, sizeof m);
  m.type = CL_MSG_ERROR;
  m.req = req;
  m.u.error.code = code;
  va_start(ap, fmt);
  vsnprintf(m.u.error.text, sizeof m.u.error.text, fmt, ap);
  va_end(ap);
  cl_log_debug("%s: req %llu: ERROR %s: %s", cl_conn_label(c),
               (unsigned long long)req, cl_err_name(code), m.u.error.text);
  cl_conn_send(c, &m);
}

/* Queue OK{req, snapshot_id, sent = what this command sent, delivered}. */
static void reply_ok(cl_conn_t *c, uint64_t req, uint64_t snapshot_id,
                     uint8_t dkind, uint64_t dvalue) {
  cl_daemon_t *d = c->d;
  cl_msg_t m;
  memset(&m, 0, sizeof m);
  m.type = CL_MSG_OK;
  m.req = req;
  m.u.ok.snapshot_id = snapshot_id;
  m.u.ok.nsent = (uint32_t)d->nsent;
  m.u.ok.sent = d->nsent ? d->sent : NULL;
  m.u.ok.delivered_kind = dkind;
  m.u.ok.delivered_value = dvalue;
  cl_conn_send(c, &m);
}

/* Start listing what the node sends for this command. */
static void collect_begin(cl_daemon_t *d) {
  d->collect = 1;
  d->nsent = 0;
}

/* Stop listing; the list is only read by the reply just queued. */
static void collect_end(cl_daemon_t *d) {
  d->collect = 0;
  d->nsent = 0;
}

/* Append a parked request to a FIFO list; bounded by CL_PARKED_MAX. */
static int park(cl_daemon_t *d, cl_parked_t **head, cl_parked_t **tail,
                cl_conn_t *c, uint64_t req) {
  cl_parked_t *p;
  if (d->nparked >= CL_PARKED_MAX)
    return CL_EFULL;
  p = calloc(1, sizeof *p);
  if (p == NULL)
    return CL_ENOMEM;
  p->conn = c;
  p->req = req;
  if (tail != NULL && *tail != NULL) {
    (*tail)->next = p;
    *tail = p;
  } else {
    cl_parked_t **q = head;
    while (*q != NULL)
      q = &(*q)->next;
    *q = p;
    if (tail != NULL)
      *tail = p;
  }
  d->nparked++;
  return 0;
}

/* Notification to every control connection. */
static void broadcast(cl_daemon_t *d, const cl_msg_t *m) {
  cl_conn_t *c;
  for (c = d->conns; c != NULL; c = c->next)
    if (c->kind == CL_CONN_CONTROL && !c->closing)
      cl_conn_send(c, m);
}

/* Fill ls with the local state st of snapshot id (arrays malloc'd; free
 * with free_local_state). 0, CL_ETOOBIG (more runs than one frame may
 * list: such a state can be neither pushed nor collected) or CL_ENOMEM. */
static int fill_local_state(cl_daemon_t *d, uint64_t id,
                            const cl_node_state_t *st, cl_local_state_t *ls) {
  memset(ls, 0, sizeof *ls);
  if (st->nrecorded > CL_WIRE_MAX_ITEMS)
    return CL_ETOOBIG;
  return cl_local_state_from_node(d->node, id, st, ls);
}

static void free_local_state(cl_local_state_t *ls) {
  free(ls->recorded);
  free(ls->sent);
  free(ls->recv);
}

/* A control connection that takes pushed states now. */
static int pushing(const cl_conn_t *c) {
  return c->kind == CL_CONN_CONTROL && !c->closing && !c->stopping &&
         c->push;
}

/* Snapshot id completed here: LOCAL_STATE{state} to every client that asked
 * for PUSH, COMPLETE{snapshot_id, server} to every other one, and to a
 * PUSH client that cannot be given the state (it cannot be built or sent;
 * logged) but is still connected. The state is released once queued for
 * at least one client; if none took it, it stays kept for COLLECT. */
void cl_control_complete(cl_daemon_t *d, uint64_t snapshot_id) {
  cl_msg_t m, ls;
  cl_node_state_t st;
  cl_conn_t *c;
  int pushers = 0, have = 0, taken = 0, r = CL_ENOENT;
  for (c = d->conns; c != NULL; c = c->next)
    pushers += pushing(c);
  memset(&ls, 0, sizeof ls);
  ls.type = CL_MSG_LOCAL_STATE;
  if (pushers > 0 && cl_node_state(d->node, snapshot_id, &st) == 0 &&
      st.complete) {
    r = fill_local_state(d, snapshot_id, &st, &ls.u.state);
    have = r == 0;
    if (!have)
      cl_log_error("cannot push the state of snapshot %llu (%zu recorded "
                   "runs): %s; it stays kept for COLLECT",
                   (unsigned long long)snapshot_id, st.nrecorded,
                   cl_strerror(r));
  }
  memset(&m, 0, sizeof m);
  m.type = CL_MSG_COMPLETE;
  m.u.complete.snapshot_id = snapshot_id;
  memcpy(m.u.complete.server, d->id, CL_ID_SIZE);
  for (c = d->conns; c != NULL; c = c->next) {
    if (c->kind != CL_CONN_CONTROL || c->closing)
      continue;
    if (pushing(c) && have) {
      if (cl_conn_send(c, &ls) == 0) {
        taken = 1;
        continue;
      }
      if (c->closing) /* over its reply cap, or out of memory: closed */
        continue;
    }
    cl_conn_send(c, &m);
  }
  if (taken)
    cl_node_release(d->node, snapshot_id);
  free_local_state(&ls.u.state);
}

/* NOTICE{peer, text} to every client. */
void cl_control_notice(cl_daemon_t *d, const char *peer, const char *text) {
  cl_msg_t m;
  memset(&m, 0, sizeof m);
  m.type = CL_MSG_NOTICE;
  snprintf(m.u.notice.peer, sizeof m.u.notice.peer, "%s", peer);
  snprintf(m.u.notice.text, sizeof m.u.notice.text, "%s", text);
  broadcast(d, &m);
}

/* Answer a CONNECT now: OK, or ERROR naming the channel at fault. Returns 1
 * if answered, 0 if it must wait. */
static int connect_answer(cl_daemon_t *d, cl_conn_t *c, uint64_t req) {
  size_t bad = 0;
  int st = cl_peer_connect_state(d, &bad);
  if (st == 0)
    return 0;
  if (st == 1) {
    collect_begin(d);
    reply_ok(c, req, 0, 0, 0);
    collect_end(d);
  } else if (st == CL_ELOST) {
    reply_error(c, req, CL_ELOST, "channel %s->%s (%s) was lost", d->id,
                d->out[bad].id, d->out[bad].addr);
  } else {
    reply_error(c, req, CL_EIO, "cannot connect %s to %s at %s: %s", d->id,
                d->out[bad].id, d->out[bad].addr,
                cl_daemon_strerror(d->out[bad].last_err));
  }
  return 1;
}

/* An outbound channel changed state: answer parked CONNECTs if settled. */
void cl_control_connect_progress(cl_daemon_t *d) {
  size_t bad;
  cl_parked_t *p;
  if (d->connect_parked == NULL || cl_peer_connect_state(d, &bad) == 0)
    return;
  while ((p = d->connect_parked) != NULL) {
    d->connect_parked = p->next;
    d->nparked--;
    connect_answer(d, p->conn, p->req);
    free(p);
  }
}

/* Deliver the head held message of inbound i and answer req on c. */
static void deliver_now(cl_daemon_t *d, cl_conn_t *c, uint64_t req,
                        size_t i) {
  uint8_t kind = 0;
  uint64_t value = 0;
  char why[200] = "";
  int r;
  collect_begin(d);
  r = cl_peer_deliver(d, i, &kind, &value, why, sizeof why);
  if (r < 0)
    reply_error(c, req, r, "channel %s->%s: %s", d->in[i].id, d->id, why);
  else
    reply_ok(c, req, 0, kind, value);
  collect_end(d);
}

/* A message arrived on inbound i: serve parked DELIVERs in order. */
void cl_control_deliver_parked(cl_daemon_t *d, size_t i) {
  cl_in_chan_t *ch = &d->in[i];
  cl_parked_t *p;
  while ((p = ch->phead) != NULL && ch->hcount > 0) {
    ch->phead = p->next;
    if (ch->phead == NULL)
      ch->ptail = NULL;
    d->nparked--;
    deliver_now(d, p->conn, p->req, i);
    free(p);
  }
}

/* Inbound i was lost: nothing more will arrive for its parked DELIVERs. */
void cl_control_deliver_lost(cl_daemon_t *d, size_t i) {
  cl_in_chan_t *ch = &d->in[i];
  cl_parked_t *p;
  while ((p = ch->phead) != NULL) {
    ch->phead = p->next;
    if (ch->phead == NULL)
      ch->ptail = NULL;
    d->nparked--;
    reply_error(p->conn, p->req, CL_ELOST, "channel %s->%s was lost",
                ch->id, d->id);
    free(p);
  }
}

/* Drop c's entries from one parked list. */
static void forget_in(cl_daemon_t *d, cl_parked_t **head, cl_parked_t **tail,
                      cl_conn_t *c) {
  cl_parked_t **q = head, *last = NULL;
  while (*q != NULL) {
    cl_parked_t *p = *q;
    if (p->conn == c) {
      *q = p->next;
      free(p);
      d->nparked--;
    } else {
      last = p;
      q = &p->next;
    }
  }
  if (tail != NULL)
    *tail = last;
}

/* Connection c is closing: its parked requests have no one to answer. The
 * messages they waited for stay held for a later DELIVER. */
void cl_control_forget(cl_daemon_t *d, cl_conn_t *c) {
  size_t i;
  forget_in(d, &d->connect_parked, NULL, c);
  for (i = 0; d->in != NULL && i < d->nin; i++)
    forget_in(d, &d->in[i].phead, &d->in[i].ptail, c);
}

/* Free whatever is still parked (after the loop is closed). */
void cl_control_free(cl_daemon_t *d) {
  size_t i;
  while (d->connect_parked != NULL) {
    cl_parked_t *p = d->connect_parked;
    d->connect_parked = p->next;
    free(p);
  }
  for (i = 0; d->in != NULL && i < d->nin; i++)
    while (d->in[i].phead != NULL) {
      cl_parked_t *p = d->in[i].phead;
      d->in[i].phead = p->next;
      free(p);
    }
  d->nparked = 0;
}

/* CONFIGURE: once; self must be this server. Only stores configuration. */
static void do_configure(cl_conn_t *c, const cl_msg_t *m) {
  cl_daemon_t *d = c->d;
  const cl_configure_t *cfg = &m->u.configure;
  char host[CL_ADDR_SIZE];
  uint32_t i;
  int port, r;

  if (d->configured) {
    reply_error(c, m->req, CL_ESTATE, "%s is already configured", d->id);
    return;
  }
  if (strcmp(cfg->self, d->id) != 0) {
    reply_error(c, m->req, CL_EINVAL,
                "CONFIGURE is for server %s but this is %s", cfg->self,
                d->id);
    return;
  }
  if (cfg->nservers == 0 || cfg->rank >= cfg->nservers) {
    reply_error(c, m->req, CL_EINVAL, "rank %u out of range for %u servers",
                cfg->rank, cfg->nservers);
    return;
  }
  if (cfg->tokens < 0 || cfg->tokens > CL_NODE_TOKENS_MAX) {
    reply_error(c, m->req, CL_ERANGE, "token count %lld out of range",
                (long long)cfg->tokens);
    return;
  }
  for (i = 0; i < cfg->nout; i++)
    if (cl_addr_split(cfg->out[i].addr, host, &port) < 0) {
      reply_error(c, m->req, CL_EINVAL, "bad address '%s' for peer %s",
                  cfg->out[i].addr, cfg->out[i].id);
      return;
    }
  r = cl_peer_setup(d, cfg);
  if (r < 0) {
    reply_error(c, m->req, r,
                "invalid configuration for %s: %s (duplicate or invalid "
                "peer, or self as a peer)",
                d->id, cl_strerror(r));
    return;
  }
  d->configured = 1;
  cl_log_info("configured: %lld tokens, %u outbound, %u inbound, %s%s",
              (long long)cfg->tokens, cfg->nout, cfg->nin,
              cfg->lockstep ? "lockstep" : "free-running",
              (!cfg->lockstep && cfg->jitter_ms) ? ", jitter" : "");
  collect_begin(d);
  reply_ok(c, m->req, 0, 0, 0);
  collect_end(d);
}

/* CONNECT: open outbound channels; answer when all are up. */
static void do_connect(cl_conn_t *c, const cl_msg_t *m) {
  cl_daemon_t *d = c->d;
  int r;
  cl_peer_connect_all(d);
  if (connect_answer(d, c, m->req))
    return;
  r = park(d, &d->connect_parked, NULL, c, m->req);
  if (r < 0)
    reply_error(c, m->req, r, "too many requests waiting");
}

/* SEND: every refusal is decided before the node changes. */
static void do_send(cl_conn_t *c, const cl_msg_t *m) {
  cl_daemon_t *d = c->d;
  const char *dest = m->u.send.dest;
  int64_t n = m->u.send.n, have;
  size_t q;
  int i, r;

  i = cl_node_out_index(d->node, dest);
  if (i < 0) {
    reply_error(c, m->req, CL_ENOPEER, "%s has no channel to %s", d->id,
                dest);
    return;
  }
  if (n < 1) {
    reply_error(c, m->req, CL_EINVAL, "cannot send %lld tokens: at least 1",
                (long long)n);
    return;
  }
  if (d->out[i].state == CL_OUT_LOST) {
    reply_error(c, m->req, CL_ELOST, "channel %s->%s was lost", d->id, dest);
    return;
  }
  if (d->out[i].state == CL_OUT_FAILED) {
    reply_error(c, m->req, CL_EIO, "channel %s->%s is not connected (%s)",
                d->id, dest, cl_daemon_strerror(d->out[i].last_err));
    return;
  }
  have = cl_node_tokens(d->node);
  if (have < n) {
    reply_error(c, m->req, CL_ENOTOKENS,
                "%s has %lld tokens, cannot send %lld to %s", d->id,
                (long long)have, (long long)n, dest);
    return;
  }
  q = cl_peer_queued(d, (size_t)i);
  if (q + CL_FRAME_EST > d->write_cap) {
    reply_error(c, m->req, CL_EFULL,
                "channel %s->%s has %zu bytes queued (write cap %zu)", d->id,
                dest, q, d->write_cap);
    return;
  }
  if (cl_peer_reserve(d, (size_t)i) < 0) {
    reply_error(c, m->req, CL_ENOMEM, "out of memory");
    return;
  }
  collect_begin(d);
  r = cl_node_send_tokens(d->node, (uint32_t)i, n, &d->acts);
  if (r < 0) {
    reply_error(c, m->req, r, "%s cannot send %lld to %s: %s", d->id,
                (long long)n, dest, cl_strerror(r));
  } else {
    cl_peer_apply(d);
    reply_ok(c, m->req, 0, 0, 0);
  }
  collect_end(d);
}

/* SNAPSHOT: start one here (auto id if nil); markers go out at once. */
static void do_snapshot(cl_conn_t *c, const cl_msg_t *m) {
  cl_daemon_t *d = c->d;
  uint64_t id;
  int r;

  if (m->u.snapshot.has_id) {
    id = m->u.snapshot.snapshot_id;
    if (cl_node_has_snapshot(d->node, id)) {
      reply_error(c, m->req, CL_EEXIST, "snapshot %llu already exists on %s",
                  (unsigned long long)id, d->id);
      return;
    }
  } else {
    /* Auto ids 1000000 + k*nservers + rank are disjoint across servers and
     * from the 0..K-1 ids of scripted runs. The node keeps a bounded number
     * of ids, so this loop ends. */
    do {
      id = 1000000u + d->auto_k * d->nservers + d->rank;
      d->auto_k++;
    } while (cl_node_has_snapshot(d->node, id));
  }
  if (cl_peer_reserve_all(d) < 0) {
    reply_error(c, m->req, CL_ENOMEM, "out of memory");
    return;
  }
  collect_begin(d);
  r = cl_node_start_snapshot(d->node, id, &d->acts);
  if (r == CL_EFULL) {
    reply_error(c, m->req, r, "%s has %d snapshots in progress; refusing "
                "snapshot %llu", d->id, CL_NODE_ACTIVE_MAX,
                (unsigned long long)id);
  } else if (r < 0) {
    reply_error(c, m->req, r, "cannot start snapshot %llu on %s: %s",
                (unsigned long long)id, d->id, cl_strerror(r));
  } else {
    cl_log_info("snapshot %llu started here", (unsigned long long)id);
    cl_peer_apply(d);
    reply_ok(c, m->req, id, 0, 0);
  }
  collect_end(d);
}

/* COLLECT: the local state of a completed snapshot; release frees it. */
static void do_collect(cl_conn_t *c, const cl_msg_t *m) {
  cl_daemon_t *d = c->d;
  uint64_t id = m->u.collect.snapshot_id;
  cl_node_state_t st;
  cl_msg_t out;
  int r;

  r = cl_node_state(d->node, id, &st);
  if (r < 0) {
    reply_error(c, m->req, CL_ENOENT, "snapshot %llu is unknown on %s",
                (unsigned long long)id, d->id);
    return;
  }
  if (!st.complete) {
    reply_error(c, m->req, CL_EAGAIN, "snapshot %llu is still in progress "
                "on %s", (unsigned long long)id, d->id);
    return;
  }
  memset(&out, 0, sizeof out);
  out.type = CL_MSG_STATE;
  out.req = m->req;
  r = fill_local_state(d, id, &st, &out.u.state);
  if (r == CL_ETOOBIG) {
    reply_error(c, m->req, r, "the state of snapshot %llu on %s has %zu "
                "recorded runs, more than one STATE can list (%u)",
                (unsigned long long)id, d->id, st.nrecorded,
                (unsigned)CL_WIRE_MAX_ITEMS);
    goto done;
  }
  if (r < 0) {
    reply_error(c, m->req, CL_ENOMEM, "out of memory");
    goto done;
  }
  r = cl_conn_send(c, &out);
  if (r < 0 && !c->closing) {
    reply_error(c, m->req, r, "cannot encode the state of snapshot %llu "
                "(%zu recorded runs): %s", (unsigned long long)id,
                st.nrecorded, cl_strerror(r));
    goto done;
  }
  /* Release only a state queued for a client still there: past the reply
   * cap, or to a closing client, it would be lost with the connection. */
  if (r == 0 && m->u.collect.release)
    cl_node_release(d->node, id);
done:
  free_local_state(&out.u.state);
}

/* STATUS: counters, channel states and snapshot ids. */
static void do_status(cl_conn_t *c, const cl_msg_t *m) {
  cl_daemon_t *d = c->d;
  cl_msg_t out;
  cl_status_t *s;
  uint64_t dummy;
  size_t k, na = 0, nk = 0;

  memset(&out, 0, sizeof out);
  out.type = CL_MSG_STATUS_R;
  out.req = m->req;
  s = &out.u.status;
  memcpy(s->self, d->id, CL_ID_SIZE);
  s->configured = (uint8_t)d->configured;
  if (d->configured) {
    s->tokens = cl_node_tokens(d->node);
    s->initial_tokens = cl_node_initial_tokens(d->node);
    s->lockstep = (uint8_t)d->lockstep;
    na = cl_node_active(d->node, &dummy, 0);
    nk = cl_node_kept(d->node, &dummy, 0);
    s->out = calloc(d->nout ? d->nout : 1, sizeof *s->out);
    s->in = calloc(d->nin ? d->nin : 1, sizeof *s->in);
    s->active = calloc(na ? na : 1, sizeof *s->active);
    s->done = calloc(nk ? nk : 1, sizeof *s->done);
    if (s->out == NULL || s->in == NULL || s->active == NULL ||
        s->done == NULL) {
      reply_error(c, m->req, CL_ENOMEM, "out of memory");
      goto done;
    }
    s->nout = (uint32_t)d->nout;
    s->nin = (uint32_t)d->nin;
    for (k = 0; k < d->nout; k++) {
      snprintf(s->out[k].peer, CL_ID_SIZE, "%s", d->out[k].id);
      s->out[k].sent = cl_node_sent(d->node, k);
      s->out[k].connected = d->out[k].state == CL_OUT_UP;
      s->out[k].queued_bytes = cl_peer_queued(d, k);
    }
    for (k = 0; k < d->nin; k++) {
      snprintf(s->in[k].peer, CL_ID_SIZE, "%s", d->in[k].id);
      s->in[k].received = cl_node_received(d->node, k);
      s->in[k].connected = d->in[k].state == CL_IN_UP;
      s->in[k].held = d->in[k].hcount;
    }
    s->nactive = (uint32_t)cl_node_active(d->node, s->active, na);
    s->ndone = (uint32_t)cl_node_kept(d->node, s->done, nk);
    if (s->nactive > na)
      s->nactive = (uint32_t)na;
    if (s->ndone > nk)
      s->ndone = (uint32_t)nk;
  }
  if (cl_conn_send(c, &out) < 0 && !c->closing)
    reply_error(c, m->req, CL_EIO, "cannot encode the status");
done:
  free(s->out);
  free(s->in);
  free(s->active);
  free(s->done);
}

/* DELIVER (lockstep): the head message from src now, or when it arrives. */
static void do_deliver(cl_conn_t *c, const cl_msg_t *m) {
  cl_daemon_t *d = c->d;
  cl_in_chan_t *ch;
  int i, r;
  if (!d->lockstep) {
    reply_error(c, m->req, CL_ESTATE, "DELIVER needs lockstep mode");
    return;
  }
  i = cl_node_in_index(d->node, m->u.deliver.src);
  if (i < 0) {
    reply_error(c, m->req, CL_ENOPEER, "%s has no channel from %s", d->id,
                m->u.deliver.src);
    return;
  }
  ch = &d->in[i];
  if (ch->phead == NULL && ch->hcount > 0) {
    deliver_now(d, c, m->req, (size_t)i);
    return;
  }
  if (ch->state == CL_IN_LOST && ch->hcount == 0) {
    reply_error(c, m->req, CL_ELOST, "channel %s->%s was lost", ch->id,
                d->id);
    return;
  }
  r = park(d, &ch->phead, &ch->ptail, c, m->req);
  if (r < 0)
    reply_error(c, m->req, r, "too many requests waiting");
}

/* CIRCULATE: load mode on/off (free-running only). */
static void do_circulate(cl_conn_t *c, const cl_msg_t *m) {
  cl_daemon_t *d = c->d;
  if (d->lockstep) {
    reply_error(c, m->req, CL_ESTATE, "CIRCULATE needs free-running mode");
    return;
  }
  d->circulate = m->u.circulate.on != 0;
  cl_log_info("circulate %s", d->circulate ? "on" : "off");
  collect_begin(d);
  reply_ok(c, m->req, 0, 0, 0);
  collect_end(d);
}

/* PUSH: from now on (or no longer) send this connection each completed
 * local state as a LOCAL_STATE notification instead of COMPLETE. */
static void do_push(cl_conn_t *c, const cl_msg_t *m) {
  cl_daemon_t *d = c->d;
  c->push = m->u.push.on != 0;
  cl_log_info("%s: push %s", cl_conn_label(c), c->push ? "on" : "off");
  collect_begin(d);
  reply_ok(c, m->req, 0, 0, 0);
  collect_end(d);
}

/* Dispatch one control request. */
void cl_control_request(cl_conn_t *c, const cl_msg_t *m) {
  cl_daemon_t *d = c->d;
  cl_log_debug("%s: req %llu: %s", cl_conn_label(c),
               (unsigned long long)m->req, cl_msg_type_name(m->type));
  switch (m->type) {
  case CL_MSG_CONFIGURE:
    do_configure(c, m);
    return;
  case CL_MSG_STATUS:
    do_status(c, m);
    return;
  case CL_MSG_PUSH:
    do_push(c, m);
    return;
  case CL_MSG_SHUTDOWN:
    cl_log_info("SHUTDOWN from %s", cl_conn_label(c));
    collect_begin(d);
    reply_ok(c, m->req, 0, 0, 0);
    collect_end(d);
    cl_daemon_stop(d, 0);
    return;
  default:
    break;
  }
  if (!d->configured) {
    reply_error(c, m->req, CL_ESTATE, "%s is not configured yet (%s)", d->id,
                cl_msg_type_name(m->type));
    return;
  }
  switch (m->type) {
  case CL_MSG_CONNECT:
    do_connect(c, m);
    break;
  case CL_MSG_SEND:
    do_send(c, m);
    break;
  case CL_MSG_SNAPSHOT:
    do_snapshot(c, m);
    break;
  case CL_MSG_COLLECT:
    do_collect(c, m);
    break;
  case CL_MSG_DELIVER:
    do_deliver(c, m);
    break;
  case CL_MSG_CIRCULATE:
    do_circulate(c, m);
    break;
  default:
    reply_error(c, m->req, CL_ETYPE, "unexpected request %s",
                cl_msg_type_name(m->type));
    break;
  }
}
