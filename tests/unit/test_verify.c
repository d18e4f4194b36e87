/* Unit tests for coordinator/check/verify.c and ledger.c: hand-built
 * topologies and local states, one correct snapshot and one defect at a
 * time. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "error.h"
#include "verify.h"

/* Topology: N1 (10 tokens), N2 (5), N3 (0); links N1->N2, N2->N1, N2->N3,
 * N3->N1. Total 15.
 *
 * History behind the correct snapshot 7:
 *   N1 sent N2 three messages (1, 2, 3 tokens); N2 got seq 1 before it
 *   recorded, so it recorded seqs 2 and 3 (5 tokens).
 *   N2 sent N1 one message (1 token), N1 recorded it after recording.
 *   N2 sent N3 two messages (1, 1), both received before N3 recorded.
 *   N3 sent N1 one message (1 token), recorded by N1 before N2's.
 * Tokens: N1 10-6 = 4; N2 5+1-1-2 = 3; N3 2-1 = 1; servers 8, channels 7. */
static cl_server_t servers[3] = {{"N1", 10}, {"N2", 5}, {"N3", 0}};
static cl_link_t links[4] = {{0, 1}, {1, 0}, {1, 2}, {2, 0}};
static cl_topology_t topo = {3, servers, 4, links, 15};

typedef struct fx {
  cl_local_state_t st[4];
  cl_recorded_t rec[4][8];
  cl_chan_count_t sent[4][4], recv[4][4];
} fx_t;

static void set_state(fx_t *f, int i, const char *id, int64_t tokens,
                      int64_t initial) {
  cl_local_state_t *s = &f->st[i];
  s->snapshot_id = 7;
  strcpy(s->server, id);
  s->tokens = tokens;
  s->initial_tokens = initial;
  s->recorded = f->rec[i];
  s->sent = f->sent[i];
  s->recv = f->recv[i];
}

/* A run of `count` recorded messages of n tokens from src, seqs from seq. */
static void add_run(fx_t *f, int i, const char *src, uint64_t seq,
                    uint64_t count, int64_t n) {
  cl_recorded_t *r = &f->rec[i][f->st[i].nrecorded++];
  strcpy(r->src, src);
  r->seq = seq;
  r->count = count;
  r->n = n;
}

static void add_rec(fx_t *f, int i, const char *src, uint64_t seq, int64_t n) {
  add_run(f, i, src, seq, 1, n);
}

static void add_count(cl_chan_count_t *arr, uint32_t *n, const char *peer,
                      uint64_t count) {
  strcpy(arr[*n].peer, peer);
  arr[*n].count = count;
  (*n)++;
}

static void fx_good(fx_t *f) {
  memset(f, 0, sizeof(*f));
  set_state(f, 0, "N1", 4, 10);
  add_rec(f, 0, "N3", 1, 1);
  add_rec(f, 0, "N2", 1, 1);
  add_count(f->sent[0], &f->st[0].nsent, "N2", 3);
  add_count(f->recv[0], &f->st[0].nrecv, "N2", 0);
  add_count(f->recv[0], &f->st[0].nrecv, "N3", 0);
  set_state(f, 1, "N2", 3, 5);
  add_rec(f, 1, "N1", 2, 2);
  add_rec(f, 1, "N1", 3, 3);
  add_count(f->sent[1], &f->st[1].nsent, "N1", 1);
  add_count(f->sent[1], &f->st[1].nsent, "N3", 2);
  add_count(f->recv[1], &f->st[1].nrecv, "N1", 1);
  set_state(f, 2, "N3", 1, 0);
  add_count(f->sent[2], &f->st[2].nsent, "N1", 1);
  add_count(f->recv[2], &f->st[2].nrecv, "N2", 2);
}

static cl_ledger_t *good_ledger(void) {
  cl_ledger_t *l = cl_ledger_new(&topo);
  CHECK(l != NULL);
  CHECK_EQ_INT(cl_ledger_add(l, 0, 1, 1, 1), 0);
  CHECK_EQ_INT(cl_ledger_add(l, 0, 1, 2, 2), 0);
  CHECK_EQ_INT(cl_ledger_add(l, 0, 1, 3, 3), 0);
  CHECK_EQ_INT(cl_ledger_add(l, 1, 0, 1, 1), 0);
  CHECK_EQ_INT(cl_ledger_add(l, 1, 2, 1, 1), 0);
  CHECK_EQ_INT(cl_ledger_add(l, 1, 2, 2, 1), 0);
  CHECK_EQ_INT(cl_ledger_add(l, 2, 0, 1, 1), 0);
  return l;
}

/* 1 if some problem equals want exactly. */
static int has_problem(const cl_verdict_t *v, const char *want) {
  for (size_t i = 0; i < v->nproblems && i < CL_VERIFY_MAX_PROBLEMS; i++)
    if (strcmp(v->problems[i], want) == 0)
      return 1;
  for (size_t i = 0; i < v->nproblems && i < CL_VERIFY_MAX_PROBLEMS; i++)
    fprintf(stderr, "  problem: %s\n", v->problems[i]);
  fprintf(stderr, "  wanted:  %s\n", want);
  return 0;
}

static void test_ledger(void) {
  cl_ledger_t *l = good_ledger();
  int64_t n = 0;
  CHECK_EQ_INT(cl_ledger_add(l, 0, 1, 5, 1), CL_ESEQ);   /* 4 is next */
  CHECK_EQ_INT(cl_ledger_add(l, 0, 1, 3, 1), CL_ESEQ);   /* already there */
  CHECK_EQ_INT(cl_ledger_add(l, 0, 2, 1, 1), CL_ENOPEER);
  CHECK_EQ_INT(cl_ledger_add(l, 2, 1, 1, 1), CL_ENOPEER);
  CHECK_EQ_INT(cl_ledger_add(l, 0, 1, 4, 0), CL_EINVAL);
  CHECK_EQ_INT(cl_ledger_get(l, 0, 1, 2, &n), 0);
  CHECK_EQ_INT(n, 2);
  CHECK_EQ_INT(cl_ledger_get(l, 0, 1, 4, &n), CL_ENOENT);
  CHECK_EQ_INT(cl_ledger_get(l, 0, 1, 0, &n), CL_ENOENT);
  CHECK_EQ_INT(cl_ledger_get(l, 1, 1, 1, &n), CL_ENOPEER);
  cl_ledger_free(l);
  cl_ledger_free(NULL);
}

static void test_good(void) {
  fx_t f;
  cl_verdict_t v;
  cl_ledger_t *l = good_ledger();
  char line[512];
  cl_local_state_t shuffled[3];

  fx_good(&f);
  cl_verify(&topo, l, f.st, 3, &v);
  CHECK(v.ok);
  CHECK(v.complete);
  CHECK(v.conserved);
  CHECK(v.channels_exact);
  CHECK_EQ_INT(v.nproblems, 0);
  CHECK_EQ_INT(v.expected_tokens, 15);
  CHECK_EQ_INT(v.server_tokens, 8);
  CHECK_EQ_INT(v.channel_tokens, 7);
  CHECK_EQ_INT(v.nrecorded, 4);
  CHECK_EQ_INT(v.nchannels, 4);
  cl_verify_line(7, &v, line, sizeof(line));
  CHECK_EQ_STR(line, "snapshot 7: ok (tokens 15 = 8 on servers + 7 in 4 "
                     "messages, 4 channels exact)");

  /* Any order of states. */
  shuffled[0] = f.st[2];
  shuffled[1] = f.st[0];
  shuffled[2] = f.st[1];
  cl_verify(&topo, l, shuffled, 3, &v);
  CHECK(v.ok);

  /* Without a ledger too. */
  cl_verify(&topo, NULL, f.st, 3, &v);
  CHECK(v.ok);
  cl_ledger_free(l);
}

static void test_token_missing(void) {
  fx_t f;
  cl_verdict_t v;
  char line[512];
  fx_good(&f);
  f.st[1].nrecorded = 1; /* N2 lost seq 3 */
  cl_verify(&topo, NULL, f.st, 3, &v);
  CHECK(!v.ok);
  CHECK(!v.channels_exact);
  CHECK(!v.conserved);
  CHECK(v.complete);
  CHECK(has_problem(&v, "channel N1->N2: recorded seq 2 but expected 2..3 "
                        "(N2 received 1 before recording, N1 sent 3)"));
  CHECK(has_problem(&v, "tokens not conserved: 8 on servers + 4 in 3 "
                        "messages, expected 15"));
  CHECK_EQ_INT(v.nproblems, 2);
  cl_verify_line(7, &v, line, sizeof(line));
  CHECK_EQ_STR(line, "snapshot 7: FAILED (channel N1->N2: recorded seq 2 but "
                     "expected 2..3 (N2 received 1 before recording, N1 sent "
                     "3); 1 more problem)");
}

static void test_token_duplicated(void) {
  fx_t f;
  cl_verdict_t v;
  fx_good(&f);
  add_rec(&f, 1, "N1", 3, 3);
  f.st[1].tokens = 0; /* keep the sum right: only the channel check fails */
  cl_verify(&topo, NULL, f.st, 3, &v);
  CHECK(!v.ok);
  CHECK(v.conserved);
  CHECK(!v.channels_exact);
  CHECK(has_problem(&v, "channel N1->N2: recorded seqs 2,3,3 but expected "
                        "2..3 (N2 received 1 before recording, N1 sent 3)"));
  CHECK_EQ_INT(v.nproblems, 1);
}

static void test_wrong_range(void) {
  fx_t f;
  cl_verdict_t v;
  fx_good(&f);
  f.recv[1][0].count = 0; /* N2 claims it received nothing from N1 */
  cl_verify(&topo, NULL, f.st, 3, &v);
  CHECK(!v.ok);
  CHECK(v.conserved);
  CHECK(has_problem(&v, "channel N1->N2: recorded seqs 2,3 but expected "
                        "1..3 (N2 received 0 before recording, N1 sent 3)"));

  /* One message too many after the cut: N1 sent only 2 before recording. */
  fx_good(&f);
  f.sent[0][0].count = 2;
  cl_verify(&topo, NULL, f.st, 3, &v);
  CHECK(!v.channels_exact);
  CHECK(has_problem(&v, "channel N1->N2: recorded seqs 2,3 but expected 2 "
                        "(N2 received 1 before recording, N1 sent 2)"));

  /* Nothing expected, something recorded. */
  fx_good(&f);
  f.sent[1][0].count = 0;
  cl_verify(&topo, NULL, f.st, 3, &v);
  CHECK(has_problem(&v, "channel N2->N1: recorded seq 1 but expected none "
                        "(N1 received 0 before recording, N2 sent 0)"));

  /* Receiver saw more than the sender sent: not a cut at all. */
  fx_good(&f);
  f.recv[1][0].count = 4;
  cl_verify(&topo, NULL, f.st, 3, &v);
  CHECK(!v.channels_exact);
  CHECK(has_problem(&v, "channel N1->N2: inconsistent cut: N2 received 4 "
                        "before recording but N1 sent only 3"));
}

static void test_out_of_order(void) {
  fx_t f;
  cl_verdict_t v;
  fx_good(&f);
  f.rec[1][0].seq = 3;
  f.rec[1][0].n = 3;
  f.rec[1][1].seq = 2;
  f.rec[1][1].n = 2;
  cl_verify(&topo, NULL, f.st, 3, &v);
  CHECK(!v.ok);
  CHECK(v.conserved);
  CHECK(has_problem(&v, "channel N1->N2: recorded seqs 3,2 but expected 2..3 "
                        "(N2 received 1 before recording, N1 sent 3)"));
  CHECK_EQ_INT(v.nproblems, 1);
}

static void test_ledger_mismatch(void) {
  fx_t f;
  cl_verdict_t v;
  cl_ledger_t *l = good_ledger();
  fx_good(&f);
  f.rec[1][0].n = 4; /* seq 2 carried 2 tokens */
  f.st[1].tokens = 1;
  cl_verify(&topo, l, f.st, 3, &v);
  CHECK(!v.ok);
  CHECK(v.conserved);
  CHECK(!v.channels_exact);
  CHECK(has_problem(&v, "channel N1->N2: recorded seq 2 carries 4 tokens but "
                        "2 were sent"));
  CHECK_EQ_INT(v.nproblems, 1);
  /* The seqs alone cannot see it. */
  cl_verify(&topo, NULL, f.st, 3, &v);
  CHECK(v.ok);

  /* A seq the ledger never saw (and the counts agree with it). */
  fx_good(&f);
  add_rec(&f, 1, "N1", 4, 1);
  f.sent[0][0].count = 4;
  f.st[0].tokens = 3;
  cl_verify(&topo, l, f.st, 3, &v);
  CHECK(!v.ok);
  CHECK(v.conserved);
  CHECK(has_problem(&v, "channel N1->N2: recorded seq 4 (1 tokens) was never "
                        "sent"));
  cl_ledger_free(l);
}

static void test_missing_and_duplicate_server(void) {
  fx_t f;
  cl_verdict_t v;
  cl_local_state_t dup[4];
  fx_good(&f);
  cl_verify(&topo, NULL, f.st, 2, &v); /* N3 missing */
  CHECK(!v.ok);
  CHECK(!v.complete);
  CHECK(has_problem(&v, "server N3: no state"));

  dup[0] = f.st[0];
  dup[1] = f.st[1];
  dup[2] = f.st[2];
  dup[3] = f.st[0];
  cl_verify(&topo, NULL, dup, 4, &v);
  CHECK(!v.ok);
  CHECK(!v.complete);
  CHECK(v.conserved); /* the duplicate is not counted twice */
  CHECK(has_problem(&v, "server N1: duplicate state"));
  CHECK_EQ_INT(v.nproblems, 1);

  cl_verify(&topo, NULL, f.st, 0, &v);
  CHECK(!v.ok);
  CHECK(has_problem(&v, "no local states"));
}

static void test_snapshot_id(void) {
  fx_t f;
  cl_verdict_t v;
  fx_good(&f);
  f.st[2].snapshot_id = 8;
  cl_verify(&topo, NULL, f.st, 3, &v);
  CHECK(!v.ok);
  CHECK(!v.complete);
  CHECK(has_problem(&v, "server N3: snapshot id 8, expected 7 (as N1)"));
}

static void test_channel_lists(void) {
  fx_t f;
  cl_verdict_t v;
  fx_good(&f);
  add_count(f.sent[2], &f.st[2].nsent, "N2", 0); /* no link N3->N2 */
  cl_verify(&topo, NULL, f.st, 3, &v);
  CHECK(!v.ok);
  CHECK(!v.complete);
  CHECK(has_problem(&v, "channel N3->N2: in N3's sent counts but not in the "
                        "topology"));

  fx_good(&f);
  f.st[1].nrecv = 0; /* N2 lost its inbound list */
  cl_verify(&topo, NULL, f.st, 3, &v);
  CHECK(!v.complete);
  CHECK(has_problem(&v, "channel N1->N2: missing from N2's received counts"));

  fx_good(&f);
  add_count(f.recv[0], &f.st[0].nrecv, "N3", 0);
  cl_verify(&topo, NULL, f.st, 3, &v);
  CHECK(!v.complete);
  CHECK(has_problem(&v, "channel N3->N1: listed twice in N1's received "
                        "counts"));

  /* A recorded message from a server that is not an inbound peer. */
  fx_good(&f);
  add_rec(&f, 2, "N1", 1, 1);
  f.st[2].tokens = 0;
  cl_verify(&topo, NULL, f.st, 3, &v);
  CHECK(!v.ok);
  CHECK(!v.channels_exact);
  CHECK(has_problem(&v, "channel N1->N3: N3 recorded seq 1 but N1 is not an "
                        "inbound peer"));

  /* Initial tokens must match the topology. */
  fx_good(&f);
  f.st[1].initial_tokens = 6;
  cl_verify(&topo, NULL, f.st, 3, &v);
  CHECK(!v.ok);
  CHECK(has_problem(&v, "server N2: initial tokens 6, the topology says 5"));

  /* A server the topology does not know. */
  fx_good(&f);
  set_state(&f, 3, "N9", 0, 0);
  cl_verify(&topo, NULL, f.st, 4, &v);
  CHECK(!v.ok);
  CHECK(has_problem(&v, "server N9: not in the topology"));
}

static void test_conservation(void) {
  fx_t f;
  cl_verdict_t v;
  char line[512];
  fx_good(&f);
  f.st[0].tokens = 5;
  cl_verify(&topo, NULL, f.st, 3, &v);
  CHECK(!v.ok);
  CHECK(!v.conserved);
  CHECK(v.channels_exact);
  CHECK(v.complete);
  CHECK_EQ_INT(v.server_tokens, 9);
  CHECK(has_problem(&v, "tokens not conserved: 9 on servers + 7 in 4 "
                        "messages, expected 15"));
  cl_verify_line(2, &v, line, sizeof(line));
  CHECK_EQ_STR(line, "snapshot 2: FAILED (tokens not conserved: 9 on servers "
                     "+ 7 in 4 messages, expected 15)");
  /* A tiny buffer is truncated, not overrun. */
  cl_verify_line(2, &v, line, 8);
  CHECK_EQ_STR(line, "snapsho");
}

static void test_no_topology(void) {
  fx_t f;
  cl_verdict_t v;
  fx_good(&f);
  cl_verify(NULL, NULL, f.st, 3, &v);
  CHECK(v.ok);
  CHECK_EQ_INT(v.expected_tokens, 15); /* sum of initial tokens */
  CHECK_EQ_INT(v.nchannels, 4);

  /* Defects are still found against the derived channel set. */
  fx_good(&f);
  f.st[1].nrecorded = 1;
  cl_verify(NULL, NULL, f.st, 3, &v);
  CHECK(!v.ok);
  CHECK(has_problem(&v, "channel N1->N2: recorded seq 2 but expected 2..3 "
                        "(N2 received 1 before recording, N1 sent 3)"));

  /* The two ends disagree about a channel. */
  fx_good(&f);
  f.st[1].nsent = 1; /* N2 forgets N3 (its sent list is N1, N3) */
  cl_verify(NULL, NULL, f.st, 3, &v);
  CHECK(!v.ok);
  CHECK(!v.complete);
  CHECK(has_problem(&v, "channel N2->N3: listed by N3 (received 2) but not "
                        "by N2"));

  /* A channel to a server with no state. */
  fx_good(&f);
  add_count(f.sent[0], &f.st[0].nsent, "N9", 0);
  cl_verify(NULL, NULL, f.st, 3, &v);
  CHECK(!v.ok);
  CHECK(has_problem(&v, "channel N1->N9: listed by N1 but the peer has no "
                        "state"));

  /* Duplicates are found without a topology too. */
  {
    cl_local_state_t dup[4] = {f.st[0], f.st[1], f.st[2], f.st[1]};
    fx_good(&f);
    dup[0] = f.st[0];
    cl_verify(NULL, NULL, dup, 4, &v);
    CHECK(!v.ok);
    CHECK(has_problem(&v, "server N2: duplicate state"));
  }
}

static void test_global_snap(void) {
  fx_t f;
  cl_local_state_t ord[3];
  cl_snap_t *s = NULL;
  fx_good(&f);
  ord[0] = f.st[2];
  ord[1] = f.st[1];
  ord[2] = f.st[0];
  CHECK_EQ_INT(cl_verify_global_snap(3, ord, 3, &s), 0);
  CHECK(s != NULL);
  if (s == NULL)
    return;
  CHECK_EQ_INT(s->id, 3);
  CHECK_EQ_INT(s->nservers, 3);
  CHECK_EQ_STR(s->servers[0].id, "N1");
  CHECK_EQ_INT(s->servers[0].tokens, 4);
  CHECK_EQ_STR(s->servers[1].id, "N2");
  CHECK_EQ_INT(s->servers[1].tokens, 3);
  CHECK_EQ_STR(s->servers[2].id, "N3");
  CHECK_EQ_INT(s->servers[2].tokens, 1);
  CHECK_EQ_INT(s->nmsgs, 4);
  /* Destination N1 first, in arrival order (N3's before N2's), then N2. */
  CHECK_EQ_STR(s->msgs[0].src, "N3");
  CHECK_EQ_STR(s->msgs[0].dst, "N1");
  CHECK_EQ_INT(s->msgs[0].n, 1);
  CHECK_EQ_STR(s->msgs[1].src, "N2");
  CHECK_EQ_STR(s->msgs[1].dst, "N1");
  CHECK_EQ_STR(s->msgs[2].src, "N1");
  CHECK_EQ_STR(s->msgs[2].dst, "N2");
  CHECK_EQ_INT(s->msgs[2].n, 2);
  CHECK_EQ_STR(s->msgs[3].src, "N1");
  CHECK_EQ_INT(s->msgs[3].n, 3);
  cl_snap_free(s);

  CHECK_EQ_INT(cl_verify_global_snap(0, NULL, 0, &s), 0);
  CHECK_EQ_INT(s->nservers, 0);
  CHECK_EQ_INT(s->nmsgs, 0);
  cl_snap_free(s);
}

/* Runs of recorded messages: A(5) -> B(0); A sent 5 one-token messages,
 * B received 1 before recording, so seqs 2..5 were in flight. */
static cl_server_t run_servers[2] = {{"A", 5}, {"B", 0}};
static cl_link_t run_links[1] = {{0, 1}};
static cl_topology_t run_topo = {2, run_servers, 1, run_links, 5};

static void fx_runs(fx_t *f) {
  memset(f, 0, sizeof(*f));
  set_state(f, 0, "A", 0, 5);
  add_count(f->sent[0], &f->st[0].nsent, "B", 5);
  set_state(f, 1, "B", 1, 0);
  add_count(f->recv[1], &f->st[1].nrecv, "A", 1);
}

static void test_runs(void) {
  fx_t f;
  cl_verdict_t v;
  cl_snap_t *s = NULL;
  cl_ledger_t *l;

  /* 2..4 and 5 cover the flight exactly: counted as 4 messages. */
  fx_runs(&f);
  add_run(&f, 1, "A", 2, 3, 1);
  add_run(&f, 1, "A", 5, 1, 1);
  cl_verify(&run_topo, NULL, f.st, 2, &v);
  CHECK(v.ok);
  CHECK_EQ_INT(v.nrecorded, 4);
  CHECK_EQ_INT(v.channel_tokens, 4);
  /* ...and with a ledger that agrees. */
  l = cl_ledger_new(&run_topo);
  for (uint64_t q = 1; q <= 5; q++)
    CHECK_EQ_INT(cl_ledger_add(l, 0, 1, q, 1), 0);
  cl_verify(&run_topo, l, f.st, 2, &v);
  CHECK(v.ok);
  /* Written out message by message for the reference form. */
  CHECK_EQ_INT(cl_verify_global_snap(1, f.st, 2, &s), 0);
  CHECK(s != NULL && s->nmsgs == 4);
  if (s != NULL && s->nmsgs == 4)
    for (size_t i = 0; i < 4; i++) {
      CHECK_EQ_STR(s->msgs[i].src, "A");
      CHECK_EQ_STR(s->msgs[i].dst, "B");
      CHECK_EQ_INT(s->msgs[i].n, 1);
    }
  cl_snap_free(s);

  /* A run of 4 two-token messages: conservation counts n * count. */
  fx_runs(&f);
  add_run(&f, 1, "A", 2, 4, 2);
  cl_verify(&run_topo, NULL, f.st, 2, &v);
  CHECK(!v.ok);
  CHECK(v.channels_exact);
  CHECK_EQ_INT(v.channel_tokens, 8);
  CHECK(has_problem(&v, "tokens not conserved: 1 on servers + 8 in 4 "
                        "messages, expected 5"));
  /* The ledger finds the first message whose amount differs. */
  cl_verify(&run_topo, l, f.st, 2, &v);
  CHECK(!v.channels_exact);
  CHECK(has_problem(&v, "channel A->B: recorded seq 2 carries 2 tokens but "
                        "1 were sent"));
  cl_ledger_free(l);

  /* A gap between runs. */
  fx_runs(&f);
  add_run(&f, 1, "A", 2, 2, 1);
  add_run(&f, 1, "A", 5, 1, 1);
  cl_verify(&run_topo, NULL, f.st, 2, &v);
  CHECK(!v.channels_exact);
  CHECK(has_problem(&v, "channel A->B: recorded seqs 2..3,5 but expected "
                        "2..5 (B received 1 before recording, A sent 5)"));
  /* A run past what was sent. */
  fx_runs(&f);
  add_run(&f, 1, "A", 2, 5, 1);
  cl_verify(&run_topo, NULL, f.st, 2, &v);
  CHECK(!v.channels_exact);
  CHECK(has_problem(&v, "channel A->B: recorded seqs 2..6 but expected "
                        "2..5 (B received 1 before recording, A sent 5)"));
  /* Overlapping runs, and an empty run. */
  fx_runs(&f);
  add_run(&f, 1, "A", 2, 3, 1);
  add_run(&f, 1, "A", 4, 2, 1);
  cl_verify(&run_topo, NULL, f.st, 2, &v);
  CHECK(!v.channels_exact);
  fx_runs(&f);
  add_run(&f, 1, "A", 2, 4, 1);
  add_run(&f, 1, "A", 6, 0, 1);
  cl_verify(&run_topo, NULL, f.st, 2, &v);
  CHECK(!v.channels_exact);

  /* Token counts that overflow: n * count, then the sum. */
  fx_runs(&f);
  add_run(&f, 1, "A", 2, 4, INT64_MAX / 2);
  cl_verify(&run_topo, NULL, f.st, 2, &v);
  CHECK(!v.conserved);
  CHECK(has_problem(&v, "recorded token counts overflow"));
  fx_runs(&f);
  add_run(&f, 1, "A", 2, UINT64_MAX - 1, 1);
  cl_verify(&run_topo, NULL, f.st, 2, &v);
  CHECK(!v.ok);
  CHECK(has_problem(&v, "recorded token counts overflow"));
  CHECK_EQ_INT(v.nrecorded, UINT64_MAX - 1 > SIZE_MAX ? SIZE_MAX
                                                      : UINT64_MAX - 1);
  /* Too many messages to write out in the reference form. */
  CHECK_EQ_INT(cl_verify_global_snap(1, f.st, 2, &s), CL_ETOOBIG);
  CHECK(s == NULL);
  /* A run of a few wire bytes may not make the coordinator allocate more
   * than CL_GLOBAL_SNAP_MSGS_MAX messages: refused before allocating. */
  fx_runs(&f);
  add_run(&f, 1, "A", 2, CL_GLOBAL_SNAP_MSGS_MAX + 1, 1);
  CHECK_EQ_INT(cl_verify_global_snap(1, f.st, 2, &s), CL_ETOOBIG);
  CHECK(s == NULL);
}

int main(void) {
  test_ledger();
  test_good();
  test_token_missing();
  test_token_duplicated();
  test_wrong_range();
  test_out_of_order();
  test_ledger_mismatch();
  test_missing_and_duplicate_server();
  test_snapshot_id();
  test_channel_lists();
  test_conservation();
  test_no_topology();
  test_global_snap();
  test_runs();
  return check_done("verify");
}
