#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "error.h"
#include "sim.h"

static cl_msg_t one(cl_backend_t *b, uint32_t s, cl_msg_t q) {
  cl_msg_t r; char err[256];
  int rc = b->call(b->ctx, 1, &s, &q, &r, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "call failed: %s\n", err);
  CHECK_EQ_INT(rc, 0);
  return r;
}
static cl_msg_t send_(cl_backend_t *b, uint32_t s, const char *d, int64_t n) {
  cl_msg_t q; memset(&q, 0, sizeof q); q.type = CL_MSG_SEND; q.req = 7;
  strcpy(q.u.send.dest, d); q.u.send.n = n; return one(b, s, q);
}
static cl_msg_t snap_(cl_backend_t *b, uint32_t s, int has, uint64_t id) {
  cl_msg_t q; memset(&q, 0, sizeof q); q.type = CL_MSG_SNAPSHOT; q.req = 8;
  q.u.snapshot.has_id = (uint8_t)has; q.u.snapshot.snapshot_id = id; return one(b, s, q);
}
static cl_msg_t deliver_(cl_backend_t *b, uint32_t s, const char *src) {
  cl_msg_t q; memset(&q, 0, sizeof q); q.type = CL_MSG_DELIVER; q.req = 9;
  strcpy(q.u.deliver.src, src); return one(b, s, q);
}
static cl_msg_t collect_(cl_backend_t *b, uint32_t s, uint64_t id, int rel) {
  cl_msg_t q; memset(&q, 0, sizeof q); q.type = CL_MSG_COLLECT; q.req = 10;
  q.u.collect.snapshot_id = id; q.u.collect.release = (uint8_t)rel; return one(b, s, q);
}

int main(void) {
  cl_topology_t *t; cl_diag_t dg; cl_sim_t *sim; cl_backend_t b; cl_msg_t r, q;
  char err[256]; uint64_t ids[2] = {0, 5};
  CHECK_EQ_INT(cl_topology_parse("t", "3\nN1 3\nN2 0\nN3 1\nN1 N2\nN2 N1\nN2 N3\nN3 N1\n", &t, &dg), 0);
  sim = cl_sim_new(t); CHECK(sim != NULL); b = cl_sim_backend(sim);
  r = send_(&b, 0, "N2", 5);
  CHECK_EQ_INT(r.type, CL_MSG_ERROR); CHECK_EQ_INT(r.u.error.code, CL_ENOTOKENS);
  CHECK_EQ_STR(r.u.error.text, "N1 has 3 tokens, cannot send 5 to N2"); CHECK_EQ_INT(r.req, 7); cl_msg_free(&r);
  r = send_(&b, 0, "N3", 1);
  CHECK_EQ_INT(r.u.error.code, CL_ENOPEER); CHECK_EQ_STR(r.u.error.text, "N1 has no channel to N3"); cl_msg_free(&r);
  r = send_(&b, 0, "N2", 2);
  CHECK_EQ_INT(r.type, CL_MSG_OK); CHECK_EQ_INT(r.u.ok.nsent, 1);
  CHECK_EQ_STR(r.u.ok.sent[0].dest, "N2"); CHECK_EQ_INT(r.u.ok.sent[0].kind, CL_MSG_TOKEN);
  CHECK_EQ_INT(r.u.ok.sent[0].value, 2); CHECK_EQ_INT(r.u.ok.sent[0].seq, 1); cl_msg_free(&r);
  /* snapshot 0 at N2: markers to N1, N3 in order */
  r = snap_(&b, 1, 1, 0);
  CHECK_EQ_INT(r.type, CL_MSG_OK); CHECK_EQ_INT(r.u.ok.snapshot_id, 0); CHECK_EQ_INT(r.u.ok.nsent, 2);
  CHECK_EQ_STR(r.u.ok.sent[0].dest, "N1"); CHECK_EQ_STR(r.u.ok.sent[1].dest, "N3");
  CHECK_EQ_INT(r.u.ok.sent[1].kind, CL_MSG_MARKER); CHECK_EQ_INT(r.u.ok.sent[1].value, 0); cl_msg_free(&r);
  r = snap_(&b, 1, 1, 0); CHECK_EQ_INT(r.u.error.code, CL_EEXIST); cl_msg_free(&r);
  r = collect_(&b, 1, 0, 0); CHECK_EQ_INT(r.u.error.code, CL_EAGAIN); cl_msg_free(&r);
  r = collect_(&b, 1, 4, 0); CHECK_EQ_INT(r.u.error.code, CL_ENOENT); cl_msg_free(&r);
  CHECK_EQ_INT(b.completed(b.ctx, 0), 0);
  CHECK_EQ_INT(b.wait_complete(b.ctx, ids, 1, 10, err, sizeof err), CL_ETIMEOUT);
  CHECK_EQ_STR(err, "snapshot 0 not complete on N1, N2, N3");
  /* N2 receives token from N1 (recorded) */
  r = deliver_(&b, 1, "N1"); CHECK_EQ_INT(r.type, CL_MSG_OK); CHECK_EQ_INT(r.u.ok.nsent, 0);
  CHECK_EQ_INT(r.u.ok.delivered_kind, CL_MSG_TOKEN); CHECK_EQ_INT(r.u.ok.delivered_value, 2); cl_msg_free(&r);
  /* Nothing held on N1->N2: in one process the DELIVER would wait forever,
   * so the call fails (and the parked request is forgotten). */
  memset(&q, 0, sizeof q); q.type = CL_MSG_DELIVER; q.req = 9; strcpy(q.u.deliver.src, "N1");
  { uint32_t n2 = 1; CHECK_EQ_INT(b.call(b.ctx, 1, &n2, &q, &r, err, sizeof err), CL_EPROTO); }
  CHECK_EQ_STR(err, "N2: DELIVER waits for a message that is not in flight");
  r = deliver_(&b, 1, "N3"); CHECK_EQ_INT(r.u.error.code, CL_ENOPEER); cl_msg_free(&r);
  /* N3 gets marker from N2: completes (single inbound), marker to N1 */
  r = deliver_(&b, 2, "N2"); CHECK_EQ_INT(r.u.ok.nsent, 1); CHECK_EQ_STR(r.u.ok.sent[0].dest, "N1");
  CHECK_EQ_INT(r.u.ok.delivered_kind, CL_MSG_MARKER); cl_msg_free(&r);
  CHECK_EQ_INT(b.completed(b.ctx, 0), 1);
  /* N1 gets marker from N2: records, marker to N2; N3 still open */
  r = deliver_(&b, 0, "N2"); CHECK_EQ_INT(r.u.ok.nsent, 1); cl_msg_free(&r);
  r = deliver_(&b, 0, "N3"); CHECK_EQ_INT(r.u.ok.nsent, 0); cl_msg_free(&r);
  CHECK_EQ_INT(b.completed(b.ctx, 0), 2);
  CHECK_EQ_INT(b.wait_complete(b.ctx, ids, 1, 10, err, sizeof err), CL_ETIMEOUT);
  CHECK_EQ_STR(err, "snapshot 0 not complete on N2");
  r = deliver_(&b, 1, "N1"); cl_msg_free(&r);
  CHECK_EQ_INT(b.completed(b.ctx, 0), 3);
  CHECK_EQ_INT(b.wait_complete(b.ctx, ids, 1, 10, err, sizeof err), 0);
  r = collect_(&b, 1, 0, 1);
  CHECK_EQ_INT(r.type, CL_MSG_STATE); CHECK_EQ_INT(r.req, 10);
  CHECK_EQ_STR(r.u.state.server, "N2"); CHECK_EQ_INT(r.u.state.tokens, 0); CHECK_EQ_INT(r.u.state.initial_tokens, 0);
  CHECK_EQ_INT(r.u.state.nrecorded, 1); CHECK_EQ_STR(r.u.state.recorded[0].src, "N1");
  CHECK_EQ_INT(r.u.state.recorded[0].n, 2); CHECK_EQ_INT(r.u.state.recorded[0].seq, 1);
  CHECK_EQ_INT(r.u.state.nsent, 2); CHECK_EQ_STR(r.u.state.sent[1].peer, "N3");
  CHECK_EQ_INT(r.u.state.nrecv, 1); CHECK_EQ_STR(r.u.state.recv[0].peer, "N1"); CHECK_EQ_INT(r.u.state.recv[0].count, 0);
  cl_msg_free(&r);
  r = collect_(&b, 1, 0, 0); CHECK_EQ_INT(r.u.error.code, CL_ENOENT); cl_msg_free(&r);
  r = collect_(&b, 0, 0, 0); CHECK_EQ_INT(r.type, CL_MSG_STATE); CHECK_EQ_INT(r.u.state.tokens, 1);
  CHECK_EQ_INT(r.u.state.nsent, 1); CHECK_EQ_INT(r.u.state.sent[0].count, 1); cl_msg_free(&r);
  /* auto ids: N3 rank 2 of 3 -> 1000002; then 1000005 */
  r = snap_(&b, 2, 0, 0); CHECK_EQ_INT(r.u.ok.snapshot_id, 1000002); cl_msg_free(&r);
  r = snap_(&b, 0, 1, 1000003); CHECK_EQ_INT(r.u.ok.snapshot_id, 1000003); cl_msg_free(&r);
  r = snap_(&b, 2, 0, 0); CHECK_EQ_INT(r.u.ok.snapshot_id, 1000005); cl_msg_free(&r);
  /* STATUS is the session's, as on a daemon: N1 sent 1 on N1->N2. */
  memset(&q, 0, sizeof q); q.type = CL_MSG_STATUS; r = one(&b, 0, q);
  CHECK_EQ_INT(r.type, CL_MSG_STATUS_R); CHECK_EQ_INT(r.u.status.tokens, 1);
  CHECK_EQ_INT(r.u.status.nout, 1); CHECK_EQ_INT(r.u.status.out[0].sent, 1);
  CHECK_EQ_INT(r.u.status.out[0].connected, 1); cl_msg_free(&r);
  { uint32_t bad = 3; CHECK_EQ_INT(b.call(b.ctx, 1, &bad, &q, &r, err, sizeof err), CL_EINVAL); cl_msg_free(&r); }
  /* batch of 2 */
  { uint32_t sv[2] = {0, 2}; cl_msg_t qs[2], rs[2];
    memset(qs, 0, sizeof qs); qs[0].type = CL_MSG_SEND; strcpy(qs[0].u.send.dest, "N2"); qs[0].u.send.n = 1; qs[0].req = 1;
    qs[1].type = CL_MSG_SEND; strcpy(qs[1].u.send.dest, "N1"); qs[1].u.send.n = 1; qs[1].req = 2;
    CHECK_EQ_INT(b.call(b.ctx, 2, sv, qs, rs, err, sizeof err), 0);
    CHECK_EQ_INT(rs[0].type, CL_MSG_OK); CHECK_EQ_INT(rs[0].req, 1); CHECK_EQ_INT(rs[0].u.ok.sent[0].seq, 2);
    CHECK_EQ_INT(rs[1].type, CL_MSG_OK); CHECK_EQ_INT(rs[1].req, 2); CHECK_EQ_INT(rs[1].u.ok.sent[0].seq, 1);
    cl_msg_free(&rs[0]); cl_msg_free(&rs[1]); }
  CHECK_EQ_INT(b.sleep_ms(b.ctx, 5, err, sizeof err), 0);
  cl_sim_free(sim);
  /* invalid topology */
  { cl_link_t l = {0, 7}; cl_topology_t bad = *t; bad.nlinks = 1; bad.links = &l; CHECK(cl_sim_new(&bad) == NULL); }
  cl_topology_free(t);
  return check_done("sim");
}
