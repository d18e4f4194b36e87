/* Unit tests of the node core (daemon/node.c): the seed's token-passing
 * examples step by step, concurrent snapshots, batch receives recording the
 * same runs as single ones, every refusal, kept states and release, and a
 * randomized network of FIFO queues whose every snapshot must conserve
 * tokens and record exactly the in-flight messages. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "error.h"
#include "node.h"

/* A node from string lists; aborts the test run if creation fails, since
 * every later check would be meaningless. */
static cl_node_t *mk(const char *self, int64_t tokens, const char *const *out,
                     size_t nout, const char *const *in, size_t nin,
                     size_t max_active) {
  cl_node_config_t cfg;
  cl_node_t *n = NULL;
  int rc;
  memset(&cfg, 0, sizeof(cfg));
  cfg.self = self;
  cfg.tokens = tokens;
  cfg.out = out;
  cfg.nout = nout;
  cfg.in = in;
  cfg.nin = nin;
  cfg.max_active = max_active;
  rc = cl_node_new(&cfg, &n);
  if (rc != 0 || n == NULL) {
    fprintf(stderr, "cl_node_new(%s) failed: %d\n", self, rc);
    exit(1);
  }
  return n;
}

static int is_marker(const cl_action_t *a, uint32_t peer, uint64_t id) {
  return a->kind == CL_ACT_SEND && a->msg == CL_MSG_MARKER &&
         a->peer == peer && a->snapshot_id == id;
}

static int is_token(const cl_action_t *a, uint32_t peer, uint64_t seq,
                    int64_t n) {
  return a->kind == CL_ACT_SEND && a->msg == CL_MSG_TOKEN &&
         a->peer == peer && a->seq == seq && a->n == n;
}

static int is_kind(const cl_action_t *a, int kind, uint64_t id) {
  return a->kind == kind && a->snapshot_id == id;
}

/* Seed example 1: A sends 1 token; A snapshots; B receives the token; B
 * receives the marker; A receives B's marker. The token is not recorded:
 * B received it before recording its state. */
static void test_seed_example1(void) {
  const char *a_peer[] = {"B"}, *b_peer[] = {"A"};
  cl_node_t *a = mk("A", 1, a_peer, 1, a_peer, 1, 0);
  cl_node_t *b = mk("B", 0, b_peer, 1, b_peer, 1, 0);
  cl_actions_t acts;
  cl_node_state_t sa, sb;
  cl_actions_init(&acts);

  /* 1. A sends 1 token. */
  CHECK_EQ_INT(cl_node_send_tokens(a, 0, 1, &acts), 0);
  CHECK_EQ_INT(acts.n, 1);
  CHECK(is_token(&acts.v[0], 0, 1, 1));
  CHECK_EQ_INT(cl_node_tokens(a), 0);
  cl_actions_clear(&acts);

  /* 2. A starts snapshot 0: records 0 tokens, marker to B. */
  CHECK_EQ_INT(cl_node_start_snapshot(a, 0, &acts), 0);
  CHECK_EQ_INT(acts.n, 1);
  CHECK(is_marker(&acts.v[0], 0, 0));
  cl_actions_clear(&acts);

  /* 3. B receives 1 token: not recording yet. */
  CHECK_EQ_INT(cl_node_receive_token(b, 0, 1, 1, &acts), 0);
  CHECK_EQ_INT(acts.n, 0);
  CHECK_EQ_INT(cl_node_tokens(b), 1);
  CHECK(!cl_node_has_snapshot(b, 0));

  /* 4. B receives the marker: records 1 token, channel A->B empty, marker to
   * A, and completes since A->B is its only inbound channel. */
  CHECK_EQ_INT(cl_node_receive_marker(b, 0, 0, &acts), 0);
  CHECK_EQ_INT(acts.n, 2);
  CHECK(is_marker(&acts.v[0], 0, 0));
  CHECK(is_kind(&acts.v[1], CL_ACT_COMPLETE, 0));
  cl_actions_clear(&acts);

  CHECK_EQ_INT(cl_node_state(a, 0, &sa), 0);
  CHECK_EQ_INT(sa.complete, 0);

  /* 5. A receives B's marker: ends the snapshot. */
  CHECK_EQ_INT(cl_node_receive_marker(a, 0, 0, &acts), 0);
  CHECK_EQ_INT(acts.n, 1);
  CHECK(is_kind(&acts.v[0], CL_ACT_COMPLETE, 0));

  CHECK_EQ_INT(cl_node_state(a, 0, &sa), 0);
  CHECK_EQ_INT(cl_node_state(b, 0, &sb), 0);
  CHECK_EQ_INT(sa.complete, 1);
  CHECK_EQ_INT(sb.complete, 1);
  CHECK_EQ_INT(sa.tokens, 0);
  CHECK_EQ_INT(sb.tokens, 1);
  CHECK_EQ_INT(sa.nrecorded, 0);
  CHECK_EQ_INT(sb.nrecorded, 0);
  /* A recorded after sending seq 1; B after receiving it. */
  CHECK_EQ_INT(sa.sent[0], 1);
  CHECK_EQ_INT(sb.recv[0], 1);
  CHECK_EQ_INT(sa.recv[0], 0);
  CHECK_EQ_INT(sb.sent[0], 0);

  cl_actions_free(&acts);
  cl_node_free(a);
  cl_node_free(b);
}

/* Seed example 2: B sends 1 token; A snapshots; A receives the token and
 * records it; B receives the marker; A receives B's marker. */
static void test_seed_example2(void) {
  const char *a_peer[] = {"B"}, *b_peer[] = {"A"};
  cl_node_t *a = mk("A", 0, a_peer, 1, a_peer, 1, 0);
  cl_node_t *b = mk("B", 1, b_peer, 1, b_peer, 1, 0);
  cl_actions_t acts;
  cl_node_state_t sa, sb;
  cl_actions_init(&acts);

  CHECK_EQ_INT(cl_node_send_tokens(b, 0, 1, &acts), 0);
  CHECK(acts.n == 1 && is_token(&acts.v[0], 0, 1, 1));
  cl_actions_clear(&acts);

  CHECK_EQ_INT(cl_node_start_snapshot(a, 0, &acts), 0);
  CHECK(acts.n == 1 && is_marker(&acts.v[0], 0, 0));
  cl_actions_clear(&acts);

  /* 3. A receives the token after recording: it is recorded. */
  CHECK_EQ_INT(cl_node_receive_token(a, 0, 1, 1, &acts), 0);
  CHECK_EQ_INT(acts.n, 0);
  CHECK_EQ_INT(cl_node_tokens(a), 1);

  CHECK_EQ_INT(cl_node_receive_marker(b, 0, 0, &acts), 0);
  CHECK_EQ_INT(acts.n, 2);
  CHECK(is_marker(&acts.v[0], 0, 0));
  CHECK(is_kind(&acts.v[1], CL_ACT_COMPLETE, 0));
  cl_actions_clear(&acts);

  CHECK_EQ_INT(cl_node_receive_marker(a, 0, 0, &acts), 0);
  CHECK(acts.n == 1 && is_kind(&acts.v[0], CL_ACT_COMPLETE, 0));

  CHECK_EQ_INT(cl_node_state(a, 0, &sa), 0);
  CHECK_EQ_INT(cl_node_state(b, 0, &sb), 0);
  CHECK_EQ_INT(sa.tokens, 0);
  CHECK_EQ_INT(sb.tokens, 0);
  CHECK_EQ_INT(sa.nrecorded, 1);
  if (sa.nrecorded == 1) {
    CHECK_EQ_INT(sa.recorded[0].in, 0);
    CHECK_EQ_INT(sa.recorded[0].seq, 1);
    CHECK_EQ_INT(sa.recorded[0].n, 1);
  }
  CHECK_EQ_INT(sb.nrecorded, 0);
  /* Conservation: 0 + 0 + 1 recorded == the one token. */
  CHECK_EQ_INT(sa.tokens + sb.tokens + sa.recorded[0].n, 1);
  /* The channel B->A state is (recv 0 at A, sent 1 at B] = {1}. */
  CHECK_EQ_INT(sa.recv[0], 0);
  CHECK_EQ_INT(sb.sent[0], 1);

  cl_actions_free(&acts);
  cl_node_free(a);
  cl_node_free(b);
}

/* Two snapshots started at A and B at once share both channels; each
 * channel holds one snapshot's marker ahead of a token, so each token is
 * recorded by exactly the snapshot still recording its channel. */
static void test_concurrent_shared_channel(void) {
  const char *a_peer[] = {"B"}, *b_peer[] = {"A"};
  cl_node_t *a = mk("A", 5, a_peer, 1, a_peer, 1, 0);
  cl_node_t *b = mk("B", 5, b_peer, 1, b_peer, 1, 0);
  cl_actions_t acts;
  cl_node_state_t s;
  uint64_t ids[4];
  cl_actions_init(&acts);

  CHECK_EQ_INT(cl_node_start_snapshot(a, 1, &acts), 0); /* A->B: M1 */
  CHECK_EQ_INT(cl_node_start_snapshot(b, 2, &acts), 0); /* B->A: M2 */
  CHECK_EQ_INT(cl_node_send_tokens(b, 0, 2, &acts), 0); /* B->A: M2 T2 */
  CHECK_EQ_INT(cl_node_send_tokens(a, 0, 1, &acts), 0); /* A->B: M1 T1 */
  CHECK_EQ_INT(acts.n, 4);
  cl_actions_clear(&acts);

  /* B gets M1: records snapshot 1 (3 tokens) and completes it at once. */
  CHECK_EQ_INT(cl_node_receive_marker(b, 0, 1, &acts), 0);
  CHECK_EQ_INT(acts.n, 2);
  CHECK(is_marker(&acts.v[0], 0, 1));
  CHECK(is_kind(&acts.v[1], CL_ACT_COMPLETE, 1));
  cl_actions_clear(&acts);
  CHECK_EQ_INT(cl_node_active(b, ids, 4), 1);
  CHECK_EQ_INT(ids[0], 2);
  CHECK_EQ_INT(cl_node_kept(b, ids, 4), 1);
  CHECK_EQ_INT(ids[0], 1);

  /* B gets T1: recorded by snapshot 2 only (1's channel closed). */
  CHECK_EQ_INT(cl_node_receive_token(b, 0, 1, 1, &acts), 0);
  /* A gets M2: records snapshot 2 (4 tokens), completes it. */
  CHECK_EQ_INT(cl_node_receive_marker(a, 0, 2, &acts), 0);
  CHECK_EQ_INT(acts.n, 2);
  CHECK(is_marker(&acts.v[0], 0, 2));
  CHECK(is_kind(&acts.v[1], CL_ACT_COMPLETE, 2));
  cl_actions_clear(&acts);
  /* A gets T2: recorded by snapshot 1 only. */
  CHECK_EQ_INT(cl_node_receive_token(a, 0, 1, 2, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_marker(a, 0, 1, &acts), 0);
  CHECK(acts.n == 1 && is_kind(&acts.v[0], CL_ACT_COMPLETE, 1));
  cl_actions_clear(&acts);
  CHECK_EQ_INT(cl_node_receive_marker(b, 0, 2, &acts), 0);
  CHECK(acts.n == 1 && is_kind(&acts.v[0], CL_ACT_COMPLETE, 2));

  /* Snapshot 1: A 5, B 3, B->A token(2). */
  CHECK_EQ_INT(cl_node_state(a, 1, &s), 0);
  CHECK_EQ_INT(s.tokens, 5);
  CHECK_EQ_INT(s.nrecorded, 1);
  CHECK(s.nrecorded == 1 && s.recorded[0].seq == 1 && s.recorded[0].n == 2);
  CHECK_EQ_INT(cl_node_state(b, 1, &s), 0);
  CHECK_EQ_INT(s.tokens, 3);
  CHECK_EQ_INT(s.nrecorded, 0);
  /* Snapshot 2: B 5, A 4, A->B token(1). */
  CHECK_EQ_INT(cl_node_state(b, 2, &s), 0);
  CHECK_EQ_INT(s.tokens, 5);
  CHECK(s.nrecorded == 1 && s.recorded[0].seq == 1 && s.recorded[0].n == 1);
  CHECK_EQ_INT(cl_node_state(a, 2, &s), 0);
  CHECK_EQ_INT(s.tokens, 4);
  CHECK_EQ_INT(s.nrecorded, 0);
  /* Completion order at A: 2 then 1. */
  CHECK_EQ_INT(cl_node_kept(a, ids, 4), 2);
  CHECK(ids[0] == 2 && ids[1] == 1);

  cl_actions_free(&acts);
  cl_node_free(a);
  cl_node_free(b);
}

/* One token arriving while two snapshots record its channel is recorded in
 * both. */
static void test_token_recorded_twice(void) {
  const char *a_peer[] = {"B"}, *b_peer[] = {"A"};
  cl_node_t *a = mk("A", 0, a_peer, 1, a_peer, 1, 0);
  cl_node_t *b = mk("B", 3, b_peer, 1, b_peer, 1, 0);
  cl_actions_t acts;
  cl_node_state_t s;
  uint64_t ids[4];
  uint64_t id;
  cl_actions_init(&acts);

  CHECK_EQ_INT(cl_node_send_tokens(b, 0, 3, &acts), 0);
  CHECK_EQ_INT(cl_node_start_snapshot(a, 10, &acts), 0);
  CHECK_EQ_INT(cl_node_start_snapshot(a, 11, &acts), 0);
  CHECK_EQ_INT(cl_node_active(a, ids, 4), 2);
  CHECK(ids[0] == 10 && ids[1] == 11);
  CHECK_EQ_INT(cl_node_receive_token(a, 0, 1, 3, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_marker(b, 0, 10, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_marker(b, 0, 11, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_marker(a, 0, 10, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_marker(a, 0, 11, &acts), 0);
  CHECK_EQ_INT(cl_node_active(a, ids, 4), 0);
  for (id = 10; id <= 11; id++) {
    CHECK_EQ_INT(cl_node_state(a, id, &s), 0);
    CHECK_EQ_INT(s.complete, 1);
    CHECK_EQ_INT(s.tokens, 0);
    CHECK_EQ_INT(s.nrecorded, 1);
    CHECK(s.nrecorded == 1 && s.recorded[0].in == 0 &&
          s.recorded[0].seq == 1 && s.recorded[0].n == 3);
    CHECK_EQ_INT(cl_node_state(b, id, &s), 0);
    CHECK_EQ_INT(s.tokens, 0);
    CHECK_EQ_INT(s.nrecorded, 0);
  }
  cl_actions_free(&acts);
  cl_node_free(a);
  cl_node_free(b);
}

/* Recorded messages form runs: consecutive arrivals on one channel with
 * the same token count share a run; a message from another channel, or
 * with another count, starts a new one, so the runs keep arrival order
 * exactly. A snapshot started in the middle starts its own run. */
static void test_recorded_runs(void) {
  const char *in[] = {"B", "C"}, *none[] = {"X"};
  cl_node_t *a = mk("A", 0, none, 1, in, 2, 0);
  cl_actions_t acts;
  cl_node_state_t s;
  uint64_t done = 0;
  cl_actions_init(&acts);
  CHECK_EQ_INT(cl_node_start_snapshot(a, 1, &acts), 0);
  /* Arrivals: B1 B2 (1 token each), C1, B3, B4 (2 tokens), B5 B6 B7 (a
   * batch of ones), then snapshot 2 starts, then B8. */
  CHECK_EQ_INT(cl_node_receive_token(a, 0, 1, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_token(a, 0, 2, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_token(a, 1, 1, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_token(a, 0, 3, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_token(a, 0, 4, 2, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_ones(a, 0, 5, 3, &done), 0);
  CHECK_EQ_INT(cl_node_start_snapshot(a, 2, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_token(a, 0, 8, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_state(a, 1, &s), 0);
  CHECK_EQ_INT(s.nrecorded, 5);
  if (s.nrecorded == 5) {
    /* {in, seq, count, n} */
    const uint64_t want[5][4] = {
        {0, 1, 2, 1}, {1, 1, 1, 1}, {0, 3, 1, 1}, {0, 4, 1, 2}, {0, 5, 4, 1}};
    for (size_t k = 0; k < 5; k++) {
      CHECK_EQ_INT(s.recorded[k].in, want[k][0]);
      CHECK_EQ_INT(s.recorded[k].seq, want[k][1]);
      CHECK_EQ_INT(s.recorded[k].count, want[k][2]);
      CHECK_EQ_INT(s.recorded[k].n, want[k][3]);
    }
  }
  CHECK_EQ_INT(cl_node_state(a, 2, &s), 0);
  CHECK_EQ_INT(s.nrecorded, 1);
  CHECK(s.nrecorded == 1 && s.recorded[0].in == 0 && s.recorded[0].seq == 8 &&
        s.recorded[0].count == 1 && s.recorded[0].n == 1);
  CHECK_EQ_INT(s.recv[0], 7);
  cl_actions_free(&acts);
  cl_node_free(a);
}

/* ---- batch receive against single receives ----------------------------- */

/* One step of test_batch_matches_single: a receive of `count` messages of
 * n tokens on inbound `in` (seqs continue the channel), or a marker for
 * snapshot `id` on `in` (count 0), or a local snapshot start (in < 0). */
typedef struct bstep {
  int in;
  uint64_t count;
  int64_t n;
  uint64_t id;   /* markers and starts */
  int single;    /* single receives even on the batch node */
} bstep_t;

/* Apply one step to node x. Token steps of ones go through
 * cl_node_receive_ones when `batch` (unless the step is marked single),
 * else through count cl_node_receive_token calls. */
static void bstep_apply(cl_node_t *x, const bstep_t *p, int batch,
                        cl_actions_t *acts) {
  uint64_t j, done = 0, seq;
  if (p->in < 0) {
    CHECK_EQ_INT(cl_node_start_snapshot(x, p->id, acts), 0);
  } else if (p->count == 0) {
    CHECK_EQ_INT(cl_node_receive_marker(x, (uint32_t)p->in, p->id, acts), 0);
  } else {
    seq = cl_node_received(x, (size_t)p->in) + 1;
    if (batch && !p->single && p->n == 1) {
      CHECK_EQ_INT(cl_node_receive_ones(x, (uint32_t)p->in, seq, p->count,
                                        &done), 0);
      CHECK_EQ_INT(done, p->count);
    } else {
      for (j = 0; j < p->count; j++)
        CHECK_EQ_INT(cl_node_receive_token(x, (uint32_t)p->in, seq + j, p->n,
                                           acts), 0);
    }
  }
  cl_actions_clear(acts);
}

/* Snapshot id of x is complete, with these tokens, receive counts and runs
 * ({in, seq, count, n} each). */
static void check_recorded(cl_node_t *x, uint64_t id, int64_t tokens,
                           const uint64_t recv[2], const uint64_t (*runs)[4],
                           size_t nruns) {
  cl_node_state_t st;
  size_t k;
  CHECK_EQ_INT(cl_node_state(x, id, &st), 0);
  CHECK_EQ_INT(st.complete, 1);
  CHECK_EQ_INT(st.tokens, tokens);
  CHECK_EQ_INT(st.recv[0], recv[0]);
  CHECK_EQ_INT(st.recv[1], recv[1]);
  CHECK_EQ_INT(st.nrecorded, nruns);
  for (k = 0; k < st.nrecorded && k < nruns; k++) {
    CHECK_EQ_INT(st.recorded[k].in, runs[k][0]);
    CHECK_EQ_INT(st.recorded[k].seq, runs[k][1]);
    CHECK_EQ_INT(st.recorded[k].count, runs[k][2]);
    CHECK_EQ_INT(st.recorded[k].n, runs[k][3]);
  }
}

/* cl_node_receive_ones must record exactly what the same messages received
 * one at a time record: a batch that continues a run (started by a single
 * message or by another batch) lengthens it by the whole batch, a batch
 * after a break starts one, and a marker between batches splits what each
 * snapshot sees. The expected runs are worked out by hand for batch size k
 * (below), and both nodes, one fed batches and one fed single messages,
 * must match them. Batch size 1 and large batches are both edge cases of
 * the run arithmetic. */
static void test_batch_matches_single(void) {
  static const uint64_t sizes[] = {1, 2, 3, 1000};
  const char *in[] = {"B", "C"}; /* inbound 0 = B, 1 = C */
  enum { B = 0, C = 1 };
  size_t z, i;
  cl_actions_t acts;
  cl_actions_init(&acts);
  for (z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
    const uint64_t k = sizes[z];
    /* Seqs on B: 1 | 2..k+1 | k+2..2k+1 | (C1) | 2k+2 (2 tokens) |
     * 2k+3..3k+2 | (M2 on C) | 3k+3..4k+2 | (M1 on B) | 4k+3..5k+2;
     * then C2..Ck+1 on C, M1 on C, M2 on B. */
    const bstep_t script[] = {
        {-1, 0, 0, 1, 0}, /* snapshot 1 starts here, 0 tokens */
        {B, 1, 1, 0, 1},  /* single: run (B, 1, 1) */
        {B, k, 1, 0, 0},  /* batch continues it: (B, 1, k+1) */
        {B, k, 1, 0, 0},  /* batch continues a batch: (B, 1, 2k+1) */
        {C, 1, 1, 0, 1},  /* other channel: (C, 1, 1) */
        {B, 1, 2, 0, 1},  /* other token count: (B, 2k+2, 1) of 2 */
        {B, k, 1, 0, 0},  /* batch after it starts (B, 2k+3, k) */
        {C, 0, 0, 2, 0},  /* first marker of 2: 3k+4 tokens, C closed */
        {B, k, 1, 0, 0},  /* 1: lengthens to (B, 2k+3, 2k); 2: (B, 3k+3, k) */
        {B, 0, 0, 1, 0},  /* closes B in 1 */
        {B, k, 1, 0, 0},  /* 1: not recorded; 2: (B, 3k+3, 2k) */
        {C, k, 1, 0, 0},  /* 1: (C, 2, k); 2: C closed, not recorded */
        {C, 0, 0, 1, 0},  /* 1 complete */
        {B, 0, 0, 2, 0},  /* 2 complete */
    };
    const uint64_t recv1[2] = {0, 0}, recv2[2] = {3 * k + 2, 1};
    const uint64_t runs1[][4] = {{B, 1, 2 * k + 1, 1},
                                 {C, 1, 1, 1},
                                 {B, 2 * k + 2, 1, 2},
                                 {B, 2 * k + 3, 2 * k, 1},
                                 {C, 2, k, 1}};
    const uint64_t runs2[][4] = {{B, 3 * k + 3, 2 * k, 1}};
    cl_node_t *x;
    int batch, failed = check_failed;
    for (batch = 0; batch < 2; batch++) {
      x = mk("A", 0, NULL, 0, in, 2, 0);
      for (i = 0; i < sizeof(script) / sizeof(script[0]); i++)
        bstep_apply(x, &script[i], batch, &acts);
      CHECK_EQ_INT(cl_node_tokens(x), 6 * k + 4);
      CHECK_EQ_INT(cl_node_received(x, B), 5 * k + 2);
      CHECK_EQ_INT(cl_node_received(x, C), k + 1);
      check_recorded(x, 1, 0, recv1, runs1, 5);
      check_recorded(x, 2, 3 * (int64_t)k + 4, recv2, runs2, 1);
      cl_node_free(x);
    }
    if (check_failed > failed)
      fprintf(stderr, "test_batch_matches_single: batch size %llu\n",
              (unsigned long long)k);
  }
  cl_actions_free(&acts);
}

/* A server without inbound channels completes right after its markers. */
static void test_no_inbound(void) {
  const char *out[] = {"Y", "X"};
  cl_node_t *s = mk("S", 4, out, 2, NULL, 0, 0);
  cl_actions_t acts;
  cl_node_state_t st;
  cl_actions_init(&acts);
  CHECK_EQ_INT(cl_node_start_snapshot(s, 3, &acts), 0);
  CHECK_EQ_INT(acts.n, 3);
  CHECK(is_marker(&acts.v[0], 0, 3));
  CHECK(is_marker(&acts.v[1], 1, 3));
  CHECK(is_kind(&acts.v[2], CL_ACT_COMPLETE, 3));
  CHECK_EQ_STR(cl_node_out_id(s, 0), "X");
  CHECK_EQ_STR(cl_node_out_id(s, 1), "Y");
  CHECK_EQ_INT(cl_node_state(s, 3, &st), 0);
  CHECK_EQ_INT(st.complete, 1);
  CHECK_EQ_INT(st.tokens, 4);
  /* No inbound channel to receive on. */
  cl_actions_clear(&acts);
  CHECK_EQ_INT(cl_node_receive_token(s, 0, 1, 1, &acts), CL_EINVAL);
  CHECK_EQ_INT(cl_node_receive_marker(s, 0, 9, &acts), CL_EINVAL);
  CHECK_EQ_INT(acts.n, 0);
  cl_actions_free(&acts);
  cl_node_free(s);
}

/* Peers are ordered byte-wise: "N10" < "N2" < "alpha" < "db-2". */
static void test_marker_order(void) {
  const char *out[] = {"db-2", "N2", "alpha", "N10"};
  const char *in[] = {"alpha", "N2"};
  const char *want[] = {"N10", "N2", "alpha", "db-2"};
  cl_node_t *s = mk("me", 0, out, 4, in, 2, 0);
  cl_actions_t acts;
  size_t i;
  cl_actions_init(&acts);
  for (i = 0; i < 4; i++) {
    CHECK_EQ_STR(cl_node_out_id(s, i), want[i]);
    CHECK_EQ_INT(cl_node_out_index(s, want[i]), (int)i);
  }
  CHECK(cl_node_out_id(s, 4) == NULL);
  CHECK_EQ_INT(cl_node_out_index(s, "N1"), -1);
  CHECK_EQ_INT(cl_node_out_index(s, "me"), -1);
  CHECK_EQ_INT(cl_node_in_index(s, "N2"), 0);
  CHECK_EQ_INT(cl_node_in_index(s, "alpha"), 1);
  CHECK_EQ_INT(cl_node_in_index(s, "db-2"), -1);
  CHECK_EQ_INT(cl_node_nout(s), 4);
  CHECK_EQ_INT(cl_node_nin(s), 2);
  CHECK_EQ_STR(cl_node_self(s), "me");

  /* First marker from "alpha" (inbound 1): markers out in id order. */
  CHECK_EQ_INT(cl_node_receive_marker(s, 1, 42, &acts), 0);
  CHECK_EQ_INT(acts.n, 4);
  for (i = 0; i < 4 && i < acts.n; i++)
    CHECK(is_marker(&acts.v[i], (uint32_t)i, 42));
  cl_actions_free(&acts);
  cl_node_free(s);
}

/* Invalid configurations are refused. */
static void test_new_invalid(void) {
  const char *dup[] = {"B", "C", "B"}, *self_peer[] = {"A"},
             *bad[] = {"a b"}, *ok[] = {"B"};
  cl_node_config_t cfg;
  cl_node_t *n = (cl_node_t *)&cfg;
  memset(&cfg, 0, sizeof(cfg));
  cfg.self = "A";
  cfg.out = dup;
  cfg.nout = 3;
  CHECK_EQ_INT(cl_node_new(&cfg, &n), CL_EINVAL);
  CHECK(n == NULL);
  cfg.out = self_peer;
  cfg.nout = 1;
  CHECK_EQ_INT(cl_node_new(&cfg, &n), CL_EINVAL);
  cfg.out = ok;
  cfg.in = bad;
  cfg.nin = 1;
  CHECK_EQ_INT(cl_node_new(&cfg, &n), CL_EINVAL);
  cfg.in = ok;
  cfg.tokens = -1;
  CHECK_EQ_INT(cl_node_new(&cfg, &n), CL_EINVAL);
  cfg.tokens = CL_MSG_TOKENS_MAX + 1;
  CHECK_EQ_INT(cl_node_new(&cfg, &n), CL_EINVAL);
  cfg.tokens = 7;
  cfg.self = "";
  CHECK_EQ_INT(cl_node_new(&cfg, &n), CL_EINVAL);
  cfg.self = "A";
  CHECK_EQ_INT(cl_node_new(&cfg, &n), 0);
  CHECK(n != NULL);
  CHECK_EQ_INT(cl_node_tokens(n), 7);
  CHECK_EQ_INT(cl_node_initial_tokens(n), 7);
  cl_node_free(n);
  cl_node_free(NULL);
}

/* Refusals change neither the node nor the action list. */
static void test_refusals(void) {
  const char *out[] = {"B"}, *in[] = {"B", "C"};
  cl_node_t *a = mk("A", 3, out, 1, in, 2, 0);
  cl_actions_t acts;
  cl_node_state_t st;
  cl_actions_init(&acts);
  /* One action already in the list must survive every refusal. */
  CHECK_EQ_INT(cl_node_send_tokens(a, 0, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_tokens(a), 2);

  CHECK_EQ_INT(cl_node_send_tokens(a, 0, 5, &acts), CL_ENOTOKENS);
  CHECK_EQ_INT(cl_node_send_tokens(a, 0, 3, &acts), CL_ENOTOKENS);
  CHECK_EQ_INT(cl_node_send_tokens(a, 0, 0, &acts), CL_EINVAL);
  CHECK_EQ_INT(cl_node_send_tokens(a, 0, -2, &acts), CL_EINVAL);
  CHECK_EQ_INT(cl_node_send_tokens(a, 1, 1, &acts), CL_EINVAL);
  CHECK_EQ_INT(cl_node_tokens(a), 2);
  CHECK_EQ_INT(cl_node_sent(a, 0), 1);
  CHECK_EQ_INT(acts.n, 1);

  /* Sequence numbers: 1 must come first, then 2. */
  CHECK_EQ_INT(cl_node_receive_token(a, 0, 2, 1, &acts), CL_ESEQ);
  CHECK_EQ_INT(cl_node_receive_token(a, 0, 0, 1, &acts), CL_ESEQ);
  CHECK_EQ_INT(cl_node_received(a, 0), 0);
  CHECK_EQ_INT(cl_node_receive_token(a, 0, 1, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_token(a, 0, 1, 1, &acts), CL_ESEQ);
  CHECK_EQ_INT(cl_node_receive_token(a, 0, 3, 1, &acts), CL_ESEQ);
  CHECK_EQ_INT(cl_node_receive_token(a, 0, 2, 0, &acts), CL_EINVAL);
  CHECK_EQ_INT(cl_node_receive_token(a, 2, 1, 1, &acts), CL_EINVAL);
  CHECK_EQ_INT(cl_node_received(a, 0), 1);
  CHECK_EQ_INT(cl_node_tokens(a), 3);
  /* Channels are independent: C's first is seq 1. */
  CHECK_EQ_INT(cl_node_receive_token(a, 1, 1, 4, &acts), 0);
  CHECK_EQ_INT(cl_node_tokens(a), 7);
  CHECK_EQ_INT(acts.n, 1);

  /* Overflow past CL_MSG_TOKENS_MAX. */
  CHECK_EQ_INT(cl_node_receive_token(a, 0, 2, CL_MSG_TOKENS_MAX, &acts),
               CL_ERANGE);
  CHECK_EQ_INT(cl_node_receive_token(a, 0, 2, CL_MSG_TOKENS_MAX - 7, &acts),
               0);
  CHECK_EQ_INT(cl_node_tokens(a), CL_MSG_TOKENS_MAX);
  CHECK_EQ_INT(cl_node_receive_token(a, 0, 3, 1, &acts), CL_ERANGE);
  CHECK_EQ_INT(cl_node_received(a, 0), 2);

  /* Duplicate markers. */
  cl_actions_clear(&acts);
  CHECK_EQ_INT(cl_node_receive_marker(a, 0, 7, &acts), 0);
  CHECK_EQ_INT(acts.n, 1); /* marker to B; C still open */
  CHECK_EQ_INT(cl_node_receive_marker(a, 0, 7, &acts), CL_EDUP);
  CHECK_EQ_INT(cl_node_receive_marker(a, 2, 7, &acts), CL_EINVAL);
  CHECK_EQ_INT(cl_node_start_snapshot(a, 7, &acts), CL_EEXIST);
  CHECK_EQ_INT(acts.n, 1);
  CHECK_EQ_INT(cl_node_state(a, 7, &st), 0);
  CHECK_EQ_INT(st.complete, 0);
  CHECK_EQ_INT(cl_node_receive_marker(a, 1, 7, &acts), 0);
  CHECK_EQ_INT(acts.n, 2);
  CHECK(is_kind(&acts.v[1], CL_ACT_COMPLETE, 7));
  CHECK_EQ_INT(cl_node_receive_marker(a, 1, 7, &acts), CL_EDUP);
  CHECK_EQ_INT(cl_node_receive_marker(a, 0, 7, &acts), CL_EDUP);
  CHECK_EQ_INT(cl_node_start_snapshot(a, 7, &acts), CL_EEXIST);
  CHECK_EQ_INT(acts.n, 2);
  CHECK_EQ_INT(cl_node_state(a, 8, &st), CL_ENOENT);

  cl_actions_free(&acts);
  cl_node_free(a);
}

/* Completed states stay, in completion order, until released: how many
 * to keep is the session's policy, not the node's. A released id can be
 * used again. */
static void test_kept(void) {
  const char *out[] = {"B"};
  cl_node_t *a = mk("A", 0, out, 1, NULL, 0, 0);
  cl_actions_t acts;
  uint64_t ids[4];
  int k;
  cl_actions_init(&acts);
  for (k = 1; k <= 3; k++)
    CHECK_EQ_INT(cl_node_start_snapshot(a, (uint64_t)k, &acts), 0);
  CHECK_EQ_INT(acts.n, 6); /* marker + complete each, nothing else */
  CHECK(is_marker(&acts.v[4], 0, 3));
  CHECK(is_kind(&acts.v[5], CL_ACT_COMPLETE, 3));
  CHECK_EQ_INT(cl_node_kept(a, ids, 4), 3);
  CHECK(ids[0] == 1 && ids[1] == 2 && ids[2] == 3);
  CHECK_EQ_INT(cl_node_release(a, 1), 0);
  CHECK(!cl_node_has_snapshot(a, 1));
  cl_actions_clear(&acts);
  CHECK_EQ_INT(cl_node_start_snapshot(a, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_kept(a, ids, 1), 3); /* writes 1, reports 3 */
  CHECK_EQ_INT(ids[0], 2);
  cl_actions_free(&acts);
  cl_node_free(a);
}

/* max_active bounds the snapshots in progress; a boundary pair. */
static void test_max_active(void) {
  const char *out[] = {"B"}, *in[] = {"B", "C"}; /* C keeps each open */
  cl_node_t *a = mk("A", 0, out, 1, in, 2, 3);
  cl_actions_t acts;
  cl_actions_init(&acts);
  CHECK_EQ_INT(cl_node_start_snapshot(a, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_start_snapshot(a, 2, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_marker(a, 0, 3, &acts), 0); /* the 3rd */
  cl_actions_clear(&acts);
  CHECK_EQ_INT(cl_node_start_snapshot(a, 4, &acts), CL_EFULL);
  CHECK_EQ_INT(cl_node_receive_marker(a, 0, 5, &acts), CL_EFULL);
  CHECK_EQ_INT(acts.n, 0);
  CHECK(!cl_node_has_snapshot(a, 4) && !cl_node_has_snapshot(a, 5));
  /* Completing one makes room for exactly one more. */
  CHECK_EQ_INT(cl_node_receive_marker(a, 0, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_marker(a, 1, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_start_snapshot(a, 4, &acts), 0);
  CHECK_EQ_INT(cl_node_start_snapshot(a, 5, &acts), CL_EFULL);
  cl_actions_free(&acts);
  cl_node_free(a);
}

/* Release frees a completed state; active ones are refused. */
static void test_release(void) {
  const char *peer[] = {"B"};
  cl_node_t *a = mk("A", 0, peer, 1, peer, 1, 0);
  cl_actions_t acts;
  cl_actions_init(&acts);
  CHECK_EQ_INT(cl_node_release(a, 5), CL_ENOENT);
  CHECK_EQ_INT(cl_node_start_snapshot(a, 5, &acts), 0);
  CHECK_EQ_INT(cl_node_release(a, 5), CL_EAGAIN);
  CHECK_EQ_INT(cl_node_receive_marker(a, 0, 5, &acts), 0);
  CHECK_EQ_INT(cl_node_kept(a, NULL, 0), 1);
  CHECK_EQ_INT(cl_node_release(a, 5), 0);
  CHECK_EQ_INT(cl_node_release(a, 5), CL_ENOENT);
  CHECK(!cl_node_has_snapshot(a, 5));
  CHECK_EQ_INT(cl_node_kept(a, NULL, 0), 0);
  CHECK_EQ_INT(cl_node_active(a, NULL, 0), 0);
  cl_actions_free(&acts);
  cl_node_free(a);
}

/* DROP: an active snapshot stops recording and leaves the active list, a
 * kept one is released, an unknown one is remembered; the markers still
 * due only close channels (no second start, no markers sent, no
 * COMPLETE), and the last one forgets it. */
static void test_drop(void) {
  const char *peers[] = {"B", "C"};
  cl_node_t *a = mk("A", 10, peers, 2, peers, 2, 1);
  cl_actions_t acts;
  cl_node_state_t st;
  cl_actions_init(&acts);
  /* In progress: dropped, frees its slot (max_active 1). */
  CHECK_EQ_INT(cl_node_start_snapshot(a, 7, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_token(a, 0, 1, 2, &acts), 0);
  CHECK_EQ_INT(cl_node_drop(a, 7), 0);
  CHECK_EQ_INT(cl_node_drop(a, 7), 0);
  CHECK_EQ_INT(cl_node_active(a, NULL, 0), 0);
  CHECK_EQ_INT(cl_node_kept(a, NULL, 0), 0);
  CHECK_EQ_INT(cl_node_state(a, 7, &st), CL_ENOENT);
  CHECK_EQ_INT(cl_node_release(a, 7), CL_ENOENT);
  CHECK(cl_node_has_snapshot(a, 7));
  CHECK_EQ_INT(cl_node_start_snapshot(a, 7, &acts), CL_EEXIST);
  cl_actions_clear(&acts);
  CHECK_EQ_INT(cl_node_receive_token(a, 1, 1, 3, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_marker(a, 0, 7, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_marker(a, 0, 7, &acts), CL_EDUP);
  CHECK_EQ_INT(cl_node_receive_marker(a, 1, 7, &acts), 0);
  CHECK_EQ_INT(acts.n, 0); /* its markers went out when it started */
  CHECK(!cl_node_has_snapshot(a, 7)); /* its last marker forgot it */
  CHECK_EQ_INT(cl_node_tokens(a), 15);
  /* Never seen: its late first marker does not start it (nothing
   * active, nothing recorded), but passes the wave on to both peers, so
   * that they forget it too. */
  CHECK_EQ_INT(cl_node_drop(a, 8), 0);
  CHECK_EQ_INT(cl_node_receive_marker(a, 1, 8, &acts), 0);
  CHECK_EQ_INT(acts.n, 2);
  CHECK(acts.n == 2 && is_marker(&acts.v[0], 0, 8) && is_marker(&acts.v[1], 1, 8));
  CHECK_EQ_INT(cl_node_active(a, NULL, 0), 0);
  cl_actions_clear(&acts);
  /* The slot is free for a new snapshot while 8 still waits for B. */
  CHECK_EQ_INT(cl_node_start_snapshot(a, 9, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_marker(a, 0, 8, &acts), 0);
  CHECK(!cl_node_has_snapshot(a, 8));
  /* Kept: released. */
  cl_actions_clear(&acts);
  CHECK_EQ_INT(cl_node_receive_marker(a, 0, 9, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_marker(a, 1, 9, &acts), 0);
  CHECK_EQ_INT(cl_node_kept(a, NULL, 0), 1);
  CHECK_EQ_INT(cl_node_drop(a, 9), 0);
  CHECK_EQ_INT(cl_node_kept(a, NULL, 0), 0);
  CHECK(!cl_node_has_snapshot(a, 9));
  cl_actions_free(&acts);
  cl_node_free(a);
}

/* A chain A -> B -> C where everyone drops snapshot 5 before B has seen
 * it: A's marker still reaches C through B, and every node forgets it. */
static void test_drop_wave(void) {
  const char *a_out[] = {"B"}, *b_in[] = {"A"}, *b_out[] = {"C"},
             *c_in[] = {"B"};
  cl_node_t *a = mk("A", 0, a_out, 1, NULL, 0, 0);
  cl_node_t *b = mk("B", 0, b_out, 1, b_in, 1, 0);
  cl_node_t *c = mk("C", 0, NULL, 0, c_in, 1, 0);
  cl_actions_t acts;
  cl_actions_init(&acts);
  CHECK_EQ_INT(cl_node_start_snapshot(a, 5, &acts), 0); /* A's marker to B */
  CHECK_EQ_INT(cl_node_drop(a, 5), 0);
  CHECK_EQ_INT(cl_node_drop(b, 5), 0);
  CHECK_EQ_INT(cl_node_drop(c, 5), 0);
  cl_actions_clear(&acts);
  CHECK_EQ_INT(cl_node_receive_marker(b, 0, 5, &acts), 0);
  CHECK(acts.n == 1 && is_marker(&acts.v[0], 0, 5));
  CHECK(!cl_node_has_snapshot(b, 5));
  cl_actions_clear(&acts);
  CHECK_EQ_INT(cl_node_receive_marker(c, 0, 5, &acts), 0);
  CHECK_EQ_INT(acts.n, 0);
  CHECK(!cl_node_has_snapshot(c, 5));
  cl_actions_free(&acts);
  cl_node_free(a);
  cl_node_free(b);
  cl_node_free(c);
}

/* A restore sets tokens and every channel's counts, forgets every
 * snapshot (in progress, kept, dropped), and the node goes on from there:
 * the next token out gets the restored count + 1, the next one in must
 * have it, and snapshots work as before. */
static void test_restore(void) {
  const char *peers[] = {"B", "C"};
  const uint64_t sent[] = {7, 2}, recv[] = {4, 9};
  cl_node_t *a = mk("A", 10, peers, 2, peers, 2, 0);
  cl_actions_t acts;
  cl_node_state_t st;
  cl_actions_init(&acts);
  CHECK_EQ_INT(cl_node_start_snapshot(a, 1, &acts), 0);     /* active */
  CHECK_EQ_INT(cl_node_start_snapshot(a, 2, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_marker(a, 0, 2, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_marker(a, 1, 2, &acts), 0); /* kept */
  CHECK_EQ_INT(cl_node_drop(a, 3), 0);                      /* dropped */
  CHECK_EQ_INT(cl_node_restore(a, -1, sent, recv), CL_EINVAL);
  CHECK_EQ_INT(cl_node_active(a, NULL, 0), 1);
  CHECK_EQ_INT(cl_node_restore(a, 5, sent, recv), 0);
  CHECK_EQ_INT(cl_node_tokens(a), 5);
  CHECK_EQ_INT(cl_node_initial_tokens(a), 10);
  CHECK(cl_node_sent(a, 0) == 7 && cl_node_sent(a, 1) == 2);
  CHECK(cl_node_received(a, 0) == 4 && cl_node_received(a, 1) == 9);
  CHECK_EQ_INT(cl_node_active(a, NULL, 0), 0);
  CHECK_EQ_INT(cl_node_kept(a, NULL, 0), 0);
  CHECK(!cl_node_has_snapshot(a, 1) && !cl_node_has_snapshot(a, 2) &&
        !cl_node_has_snapshot(a, 3));
  cl_actions_clear(&acts);
  CHECK_EQ_INT(cl_node_send_tokens(a, 1, 2, &acts), 0);
  CHECK(acts.n == 1 && is_token(&acts.v[0], 1, 3, 2));
  CHECK_EQ_INT(cl_node_receive_token(a, 0, 4, 1, &acts), CL_ESEQ);
  CHECK_EQ_INT(cl_node_receive_token(a, 0, 5, 1, &acts), 0);
  /* A snapshot after the restore records from the restored counts. */
  CHECK_EQ_INT(cl_node_start_snapshot(a, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_token(a, 1, 10, 3, &acts), 0);
  CHECK_EQ_INT(cl_node_state(a, 1, &st), 0);
  CHECK(st.tokens == 4 && st.sent[1] == 3 && st.recv[0] == 5 &&
        st.recv[1] == 9);
  CHECK(st.nrecorded == 1 && st.recorded[0].seq == 10);
  cl_actions_free(&acts);
  cl_node_free(a);
}

/* The dropped list is bounded: the oldest dropped id is forgotten first. */
static void test_drop_bound(void) {
  const char *peers[] = {"B"};
  cl_node_t *a = mk("A", 0, peers, 1, peers, 1, 0);
  uint64_t id;
  for (id = 1; id <= CL_NODE_DROPPED_MAX + 2; id++)
    CHECK_EQ_INT(cl_node_drop(a, id), 0);
  CHECK(!cl_node_has_snapshot(a, 1));
  CHECK(!cl_node_has_snapshot(a, 2));
  CHECK(cl_node_has_snapshot(a, 3));
  CHECK(cl_node_has_snapshot(a, CL_NODE_DROPPED_MAX + 2));
  cl_node_free(a); /* frees the dropped list: valgrind and ASan check */
}

/* Many snapshots through the id table: start, release at random, and the
 * node must agree with a plain bitmap model throughout. */
static void test_many_ids(void) {
  enum { N = 4000 };
  const char *out[] = {"B"};
  cl_node_t *a = mk("A", 0, out, 1, NULL, 0, N);
  cl_actions_t acts;
  static unsigned char known[N];
  uint32_t x = 12345;
  size_t i, nk = 0, bad = 0;
  cl_actions_init(&acts);
  for (i = 0; i < 3 * N; i++) {
    uint64_t id;
    x = x * 1103515245u + 12345u;
    id = (x >> 8) % N;
    if (known[id]) {
      if (cl_node_release(a, id) != 0)
        bad++;
      known[id] = 0;
      nk--;
    } else {
      if (cl_node_start_snapshot(a, id, &acts) != 0)
        bad++;
      known[id] = 1;
      nk++;
    }
    cl_actions_clear(&acts);
  }
  CHECK_EQ_INT(bad, 0);
  for (i = 0; i < N; i++)
    if (cl_node_has_snapshot(a, i) != known[i])
      bad++;
  CHECK_EQ_INT(bad, 0);
  CHECK_EQ_INT(cl_node_kept(a, NULL, 0), nk);
  cl_actions_free(&acts);
  cl_node_free(a);
}

/* Snapshots in progress are capped: at CL_NODE_ACTIVE_MAX, both a local
 * start and a first marker with a fresh id are CL_EFULL and change nothing
 * (no state, no actions, tokens not recorded anywhere new); a marker for a
 * snapshot already in progress still closes its channel, and once one
 * completes a new one may start. */
static void test_active_cap(void) {
  const char *peer[] = {"B", "C"};
  cl_node_t *a = mk("A", 5, peer, 2, peer, 2, 0);
  cl_actions_t acts;
  cl_node_state_t st;
  uint64_t i, bad = 0, first = 0, last = 0;
  cl_actions_init(&acts);
  for (i = 0; i < CL_NODE_ACTIVE_MAX; i++) {
    /* Half started here, half by a first marker on inbound 0. */
    int r = i % 2 ? cl_node_start_snapshot(a, i, &acts)
                  : cl_node_receive_marker(a, 0, i, &acts);
    if (r != 0)
      bad++;
    cl_actions_clear(&acts);
  }
  CHECK_EQ_INT(bad, 0);
  CHECK_EQ_INT(cl_node_active(a, NULL, 0), CL_NODE_ACTIVE_MAX);

  /* Past the cap: refused, acts and node unchanged. */
  acts.n = 0;
  CHECK_EQ_INT(cl_node_start_snapshot(a, 50000, &acts), CL_EFULL);
  CHECK_EQ_INT(acts.n, 0);
  CHECK_EQ_INT(cl_node_receive_marker(a, 1, 50001, &acts), CL_EFULL);
  CHECK_EQ_INT(acts.n, 0);
  CHECK_EQ_INT(cl_node_receive_marker(a, 0, 50002, &acts), CL_EFULL);
  CHECK_EQ_INT(acts.n, 0);
  CHECK(!cl_node_has_snapshot(a, 50000));
  CHECK(!cl_node_has_snapshot(a, 50001));
  CHECK(!cl_node_has_snapshot(a, 50002));
  CHECK_EQ_INT(cl_node_state(a, 50001, &st), CL_ENOENT);
  CHECK_EQ_INT(cl_node_active(a, &first, 1), CL_NODE_ACTIVE_MAX);
  CHECK_EQ_INT(first, 0);
  CHECK_EQ_INT(cl_node_kept(a, NULL, 0), 0);
  CHECK_EQ_INT(cl_node_tokens(a), 5);
  /* An existing id is still EEXIST, not EFULL. */
  CHECK_EQ_INT(cl_node_start_snapshot(a, 3, &acts), CL_EEXIST);
  CHECK_EQ_INT(acts.n, 0);

  /* 50,000 fresh markers from a hostile peer create nothing. */
  bad = 0;
  for (i = 100000; i < 150000; i++)
    if (cl_node_receive_marker(a, 1, i, &acts) != CL_EFULL || acts.n != 0)
      bad++;
  CHECK_EQ_INT(bad, 0);
  CHECK_EQ_INT(cl_node_active(a, NULL, 0), CL_NODE_ACTIVE_MAX);

  /* Markers of snapshots in progress are still taken: snapshot 1 (started
   * here) completes once both channels' markers arrive, freeing a slot. */
  CHECK_EQ_INT(cl_node_receive_marker(a, 0, 1, &acts), 0);
  CHECK_EQ_INT(acts.n, 0);
  CHECK_EQ_INT(cl_node_receive_marker(a, 1, 1, &acts), 0);
  CHECK_EQ_INT(acts.n, 1);
  CHECK(is_kind(&acts.v[0], CL_ACT_COMPLETE, 1));
  cl_actions_clear(&acts);
  CHECK_EQ_INT(cl_node_active(a, NULL, 0), CL_NODE_ACTIVE_MAX - 1);
  CHECK_EQ_INT(cl_node_receive_marker(a, 1, 50001, &acts), 0);
  CHECK_EQ_INT(acts.n, 2);
  CHECK(is_marker(&acts.v[0], 0, 50001));
  CHECK(is_marker(&acts.v[1], 1, 50001));
  cl_actions_clear(&acts);
  CHECK_EQ_INT(cl_node_active(a, NULL, 0), CL_NODE_ACTIVE_MAX);
  CHECK_EQ_INT(cl_node_start_snapshot(a, 50000, &acts), CL_EFULL);
  {
    uint64_t ids[CL_NODE_ACTIVE_MAX];
    cl_node_active(a, ids, CL_NODE_ACTIVE_MAX);
    last = ids[CL_NODE_ACTIVE_MAX - 1];
  }
  CHECK_EQ_INT(last, 50001);
  cl_actions_free(&acts);
  cl_node_free(a);
}

/* sent/recv are the counts at the moment of recording, not later ones. */
static void test_counts_at_record(void) {
  const char *peer[] = {"C", "B"};
  cl_node_t *a = mk("A", 10, peer, 2, peer, 2, 0);
  cl_actions_t acts;
  cl_node_state_t st;
  int ib = cl_node_out_index(a, "B"), ic = cl_node_out_index(a, "C");
  cl_actions_init(&acts);
  CHECK(ib == 0 && ic == 1);
  CHECK_EQ_INT(cl_node_send_tokens(a, 0, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_send_tokens(a, 0, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_send_tokens(a, 0, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_send_tokens(a, 1, 2, &acts), 0);
  CHECK(is_token(&acts.v[2], 0, 3, 1));
  CHECK(is_token(&acts.v[3], 1, 1, 2));
  CHECK_EQ_INT(cl_node_receive_token(a, 0, 1, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_token(a, 0, 2, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_start_snapshot(a, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_send_tokens(a, 1, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_token(a, 1, 1, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_state(a, 1, &st), 0);
  CHECK_EQ_INT(st.tokens, 7);
  CHECK_EQ_INT(st.sent[0], 3);
  CHECK_EQ_INT(st.sent[1], 1);
  CHECK_EQ_INT(st.recv[0], 2);
  CHECK_EQ_INT(st.recv[1], 0);
  CHECK_EQ_INT(st.nrecorded, 1);
  CHECK(st.nrecorded == 1 && st.recorded[0].in == 1 && st.recorded[0].seq == 1);
  CHECK_EQ_INT(cl_node_sent(a, 1), 2);
  CHECK_EQ_INT(cl_node_received(a, 1), 1);
  cl_actions_free(&acts);
  cl_node_free(a);
}

/* ---- randomized network ------------------------------------------------- */

enum { RN = 5, RSNAPS = 60, RQMAX = 4096, RLOG = 8192 };

typedef struct rmsg {
  uint8_t kind;
  uint64_t seq, id;
  int64_t n;
} rmsg_t;

typedef struct rnet {
  cl_node_t *node[RN];
  int link[RN][RN];
  rmsg_t q[RN][RN][RQMAX]; /* FIFO per channel, head..tail */
  size_t head[RN][RN], tail[RN][RN];
  int64_t logn[RN][RN][RLOG]; /* tokens of seq s at logn[..][s] */
  uint64_t rng;
} rnet_t;

static uint64_t rnd(rnet_t *w, uint64_t bound) {
  w->rng ^= w->rng << 13;
  w->rng ^= w->rng >> 7;
  w->rng ^= w->rng << 17;
  return w->rng % bound;
}

/* Recorded messages seen over all random runs: the runs must exercise
 * in-flight recording, not only empty channels. */
static size_t random_recorded;

static const char *rname[RN] = {"n0", "n1", "n2", "n3", "n4"};

static int idx_of(const char *id) {
  int i;
  for (i = 0; i < RN; i++)
    if (strcmp(rname[i], id) == 0)
      return i;
  return -1;
}

/* Turn node s's SEND actions into queued messages; counts overflows. */
static int apply(rnet_t *w, int s, cl_actions_t *acts) {
  size_t i;
  int bad = 0;
  for (i = 0; i < acts->n; i++) {
    const cl_action_t *a = &acts->v[i];
    int d;
    rmsg_t *m;
    if (a->kind != CL_ACT_SEND)
      continue;
    d = idx_of(cl_node_out_id(w->node[s], a->peer));
    if (d < 0 || !w->link[s][d] || w->tail[s][d] >= RQMAX) {
      bad++;
      continue;
    }
    m = &w->q[s][d][w->tail[s][d]++];
    m->kind = a->msg;
    m->seq = a->seq;
    m->n = a->n;
    m->id = a->snapshot_id;
    if (a->msg == CL_MSG_TOKEN) {
      if (a->seq < RLOG)
        w->logn[s][d][a->seq] = a->n;
      else
        bad++;
    }
  }
  cl_actions_clear(acts);
  return bad;
}

/* Deliver the head of channel s->d. */
static int deliver(rnet_t *w, int s, int d, cl_actions_t *acts) {
  rmsg_t *m = &w->q[s][d][w->head[s][d]++];
  int in = cl_node_in_index(w->node[d], rname[s]);
  int rc;
  if (m->kind == CL_MSG_TOKEN)
    rc = cl_node_receive_token(w->node[d], (uint32_t)in, m->seq, m->n, acts);
  else
    rc = cl_node_receive_marker(w->node[d], (uint32_t)in, m->id, acts);
  return (rc != 0) + apply(w, d, acts);
}

/* One random run: sends, snapshot starts and deliveries interleaved at
 * random, then drain; every snapshot must be complete everywhere, conserve
 * tokens and record on each channel exactly seqs (recv_at, sent_at]. */
static void random_run(uint64_t seed) {
  static rnet_t w;
  cl_actions_t acts;
  int s, d, bad = 0, nsnap = 0;
  int64_t total = 0;
  size_t step;
  uint64_t id;
  memset(&w, 0, sizeof(w));
  w.rng = seed * 0x2545f4914f6cdd1dULL + 1;
  cl_actions_init(&acts);
  /* A ring keeps it strongly connected; other links at random. */
  for (s = 0; s < RN; s++)
    for (d = 0; d < RN; d++)
      w.link[s][d] = s != d && (d == (s + 1) % RN || rnd(&w, 100) < 50);
  for (s = 0; s < RN; s++) {
    const char *out[RN], *in[RN];
    size_t no = 0, ni = 0;
    int64_t tok = (int64_t)rnd(&w, 20);
    for (d = 0; d < RN; d++) {
      if (w.link[s][d])
        out[no++] = rname[d];
      if (w.link[d][s])
        in[ni++] = rname[d];
    }
    w.node[s] = mk(rname[s], tok, out, no, in, ni, 0);
    total += tok;
  }
  for (step = 0; step < 3000; step++) {
    uint64_t r = rnd(&w, 100);
    if (r < 40) {
      s = (int)rnd(&w, RN);
      if (cl_node_tokens(w.node[s]) > 0) {
        int64_t n = 1 + (int64_t)rnd(&w, (uint64_t)cl_node_tokens(w.node[s]));
        uint32_t o = (uint32_t)rnd(&w, cl_node_nout(w.node[s]));
        bad += cl_node_send_tokens(w.node[s], o, n, &acts) != 0;
        bad += apply(&w, s, &acts);
      }
    } else if (r < 43 && nsnap < RSNAPS) {
      s = (int)rnd(&w, RN);
      bad += cl_node_start_snapshot(w.node[s], (uint64_t)nsnap++, &acts) != 0;
      bad += apply(&w, s, &acts);
    } else {
      s = (int)rnd(&w, RN);
      d = (int)rnd(&w, RN);
      if (w.head[s][d] < w.tail[s][d])
        bad += deliver(&w, s, d, &acts);
    }
  }
  /* Drain every channel. */
  for (;;) {
    int any = 0;
    for (s = 0; s < RN; s++)
      for (d = 0; d < RN; d++)
        while (w.head[s][d] < w.tail[s][d]) {
          bad += deliver(&w, s, d, &acts);
          any = 1;
        }
    if (!any)
      break;
  }
  CHECK_EQ_INT(bad, 0);
  CHECK(nsnap > 10);

  for (id = 0; id < (uint64_t)nsnap; id++) {
    cl_node_state_t st[RN];
    int64_t sum = 0;
    int ok = 1;
    for (s = 0; s < RN; s++) {
      if (cl_node_state(w.node[s], id, &st[s]) != 0 || !st[s].complete)
        ok = 0;
    }
    CHECK(ok);
    if (!ok)
      continue;
    for (s = 0; s < RN; s++) {
      size_t k;
      sum += st[s].tokens;
      for (k = 0; k < st[s].nrecorded; k++) {
        random_recorded += st[s].recorded[k].count;
        sum += st[s].recorded[k].n * (int64_t)st[s].recorded[k].count;
      }
    }
    CHECK_EQ_INT(sum, total);
    /* Exact channel states. */
    for (s = 0; s < RN; s++)
      for (d = 0; d < RN; d++) {
        uint64_t lo, hi, want;
        size_t k;
        int in, out;
        if (!w.link[s][d])
          continue;
        out = cl_node_out_index(w.node[s], rname[d]);
        in = cl_node_in_index(w.node[d], rname[s]);
        hi = st[s].sent[out];
        lo = st[d].recv[in];
        want = lo + 1;
        for (k = 0; k < st[d].nrecorded; k++) {
          const cl_node_record_t *r = &st[d].recorded[k];
          uint64_t j;
          if (r->in != (uint32_t)in)
            continue;
          if (r->seq != want || r->count < 1)
            ok = 0;
          for (j = 0; ok && j < r->count; j++)
            if (r->seq + j >= RLOG || r->n != w.logn[s][d][r->seq + j])
              ok = 0;
          want += r->count;
        }
        if (want != hi + 1 || hi < lo)
          ok = 0;
      }
    CHECK(ok);
  }
  for (s = 0; s < RN; s++) {
    CHECK_EQ_INT(cl_node_active(w.node[s], NULL, 0), 0);
    cl_node_free(w.node[s]);
  }
  cl_actions_free(&acts);
}

static void test_random_conservation(void) {
  uint64_t seed;
  for (seed = 1; seed <= 20; seed++)
    random_run(seed);
  CHECK(random_recorded > 100);
}

int main(void) {
  test_seed_example1();
  test_seed_example2();
  test_concurrent_shared_channel();
  test_token_recorded_twice();
  test_recorded_runs();
  test_batch_matches_single();
  test_no_inbound();
  test_marker_order();
  test_new_invalid();
  test_refusals();
  test_kept();
  test_max_active();
  test_release();
  test_drop();
  test_drop_wave();
  test_restore();
  test_drop_bound();
  test_many_ids();
  test_active_cap();
  test_counts_at_record();
  test_random_conservation();
  return check_done("node");
}
