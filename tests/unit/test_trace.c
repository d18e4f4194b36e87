/* Unit tests of tracing in the node core (daemon/node.c appending to
 * daemon/trace.c): a two-server run step by step against the event list
 * written out by hand from docs/TRACE.md, the batch paths, the bound and
 * its dropped entry, and tracing switched off. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "error.h"
#include "node.h"
#include "trace.h"

static cl_node_t *mk(const char *self, int64_t tokens, const char *peer) {
  cl_node_config_t cfg;
  cl_node_t *n = NULL;
  const char *peers[1];
  peers[0] = peer;
  memset(&cfg, 0, sizeof cfg);
  cfg.self = self;
  cfg.tokens = tokens;
  cfg.out = peers;
  cfg.nout = 1;
  cfg.in = peers;
  cfg.nin = 1;
  if (cl_node_new(&cfg, &n) != 0) {
    fprintf(stderr, "cl_node_new(%s) failed\n", self);
    exit(1);
  }
  return n;
}

static uint64_t ticks;
static uint64_t fake_clock(void *ctx) {
  (void)ctx;
  return ++ticks;
}

/* The trace as text, one line per entry: "I EV PEER SEQ N SNAP TOKENS
 * [RECORDED]" (peer and recorded only where they apply). */
static char *render(const cl_trace_t *t) {
  static const char *names[] = {"?", "send", "recv", "marker_send",
                                "marker_recv", "record", "done", "dropped"};
  size_t k, len = 0, cap = 4096;
  char *s = malloc(cap);
  s[0] = '\0';
  for (k = 0; k < cl_trace_count(t); k++) {
    const cl_trace_entry_t *e = cl_trace_entry(t, k);
    uint32_t j;
    if (len + 256 > cap)
      s = realloc(s, cap *= 2);
    if (e->ev == CL_TEV_DROPPED) {
      len += (size_t)sprintf(s + len, "%" PRIu64 " dropped %" PRId64 "\n",
                             e->i, e->n);
      continue;
    }
    len += (size_t)sprintf(s + len, "%" PRIu64 " %s", e->i, names[e->ev]);
    if (e->ev <= CL_TEV_MARKER_RECV)
      len += (size_t)sprintf(s + len, " p%" PRIu32 " seq%" PRIu64, e->peer,
                             e->seq);
    if (e->ev <= CL_TEV_RECV)
      len += (size_t)sprintf(s + len, " n%" PRId64, e->n);
    if (e->ev >= CL_TEV_MARKER_SEND)
      len += (size_t)sprintf(s + len, " s%" PRIu64, e->snap);
    len += (size_t)sprintf(s + len, " t%" PRId64, e->tokens);
    if (e->ev == CL_TEV_RECV) {
      len += (size_t)sprintf(s + len, " [");
      for (j = 0; j < e->nrec; j++)
        len += (size_t)sprintf(s + len, "%s%" PRIu64, j ? "," : "",
                               cl_trace_ids(t, e)[j]);
      len += (size_t)sprintf(s + len, "]");
    }
    len += (size_t)sprintf(s + len, "\n");
  }
  return s;
}

static void expect_trace(const cl_trace_t *t, const char *want) {
  char *got = render(t);
  if (strcmp(got, want) != 0)
    fprintf(stderr, "trace:\n%swanted:\n%s", got, want);
  CHECK_EQ_STR(got, want);
  free(got);
}

/* A (5 tokens) and B (none), a channel each way. A sends 2, starts
 * snapshot 7, sends 1; B receives the 2, sends 1 back (before the
 * marker, so A records it), takes the marker; A takes B's token, then
 * its marker; B takes A's second token after completing. */
static void test_two_servers(void) {
  cl_node_t *a = mk("A", 5, "B"), *b = mk("B", 0, "A");
  cl_trace_t *ta = cl_trace_new(0, fake_clock, NULL);
  cl_trace_t *tb = cl_trace_new(0, fake_clock, NULL);
  cl_actions_t acts;
  cl_actions_init(&acts);
  cl_node_set_trace(a, ta);
  cl_node_set_trace(b, tb);
  CHECK_EQ_INT(cl_node_send_tokens(a, 0, 2, &acts), 0);
  CHECK_EQ_INT(cl_node_start_snapshot(a, 7, &acts), 0);
  CHECK_EQ_INT(cl_node_send_tokens(a, 0, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_token(b, 0, 1, 2, &acts), 0);
  CHECK_EQ_INT(cl_node_send_tokens(b, 0, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_marker(b, 0, 7, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_token(a, 0, 1, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_marker(a, 0, 7, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_token(b, 0, 2, 1, &acts), 0);
  /* A refused call adds nothing. */
  CHECK_EQ_INT(cl_node_receive_token(b, 0, 9, 1, &acts), CL_ESEQ);
  CHECK_EQ_INT(cl_node_send_tokens(b, 0, 99, &acts), CL_ENOTOKENS);
  expect_trace(ta, "0 send p0 seq1 n2 t3\n"
                   "1 record s7 t3\n"
                   "2 marker_send p0 seq1 s7 t3\n"
                   "3 send p0 seq2 n1 t2\n"
                   "4 recv p0 seq1 n1 t3 [7]\n"
                   "5 marker_recv p0 seq1 s7 t3\n"
                   "6 done s7 t3\n");
  expect_trace(tb, "0 recv p0 seq1 n2 t2 []\n"
                   "1 send p0 seq1 n1 t1\n"
                   "2 marker_recv p0 seq1 s7 t1\n"
                   "3 record s7 t1\n"
                   "4 marker_send p0 seq1 s7 t1\n"
                   "5 done s7 t1\n"
                   "6 recv p0 seq2 n1 t2 []\n");
  CHECK_EQ_INT(cl_trace_next(ta), 7);
  /* Stamps come from the clock, in order. */
  CHECK(cl_trace_entry(ta, 6)->t_us > cl_trace_entry(ta, 0)->t_us);
  /* Off: nothing more. */
  cl_node_set_trace(a, NULL);
  CHECK_EQ_INT(cl_node_send_tokens(a, 0, 1, &acts), 0);
  CHECK_EQ_INT(cl_trace_count(ta), 7);
  cl_actions_free(&acts);
  cl_node_free(a);
  cl_node_free(b);
  cl_trace_free(ta);
  cl_trace_free(tb);
}

/* The batch paths give one event per message, recorded like single ones,
 * with two snapshots recording the channel (ids listed ascending). */
static void test_batches(void) {
  cl_node_t *a = mk("A", 4, "B"), *b = mk("B", 0, "A");
  cl_trace_t *ta = cl_trace_new(0, NULL, NULL), *tb = cl_trace_new(0, NULL, NULL);
  cl_actions_t acts;
  uint64_t first, done;
  cl_actions_init(&acts);
  cl_node_set_trace(a, ta);
  cl_node_set_trace(b, tb);
  CHECK_EQ_INT(cl_node_send_ones(a, 0, 3, &first), 0);
  CHECK_EQ_INT(first, 1);
  CHECK_EQ_INT(cl_node_start_snapshot(b, 9, &acts), 0);
  CHECK_EQ_INT(cl_node_start_snapshot(b, 4, &acts), 0);
  CHECK_EQ_INT(cl_node_receive_ones(b, 0, 1, 2, &done), 0);
  expect_trace(ta, "0 send p0 seq1 n1 t3\n"
                   "1 send p0 seq2 n1 t2\n"
                   "2 send p0 seq3 n1 t1\n");
  expect_trace(tb, "0 record s9 t0\n"
                   "1 marker_send p0 seq0 s9 t0\n"
                   "2 record s4 t0\n"
                   "3 marker_send p0 seq0 s4 t0\n"
                   "4 recv p0 seq1 n1 t1 [4,9]\n"
                   "5 recv p0 seq2 n1 t2 [4,9]\n");
  cl_actions_free(&acts);
  cl_node_free(a);
  cl_node_free(b);
  cl_trace_free(ta);
  cl_trace_free(tb);
}

/* Room for 4 events, then one dropped entry that counts every later
 * event, single or batched; indices go on; find locates both. */
static void test_bound(void) {
  cl_node_t *a = mk("A", 100, "B");
  cl_trace_t *t = cl_trace_new(4, NULL, NULL);
  cl_actions_t acts;
  uint64_t first;
  int k;
  cl_actions_init(&acts);
  cl_node_set_trace(a, t);
  for (k = 0; k < 5; k++)
    CHECK_EQ_INT(cl_node_send_tokens(a, 0, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_send_ones(a, 0, 10, &first), 0);
  expect_trace(t, "0 send p0 seq1 n1 t99\n"
                  "1 send p0 seq2 n1 t98\n"
                  "2 send p0 seq3 n1 t97\n"
                  "3 send p0 seq4 n1 t96\n"
                  "4 dropped 11\n");
  CHECK_EQ_INT(cl_trace_next(t), 15);
  CHECK_EQ_INT(cl_trace_find(t, 0), 0);
  CHECK_EQ_INT(cl_trace_find(t, 3), 3);
  CHECK_EQ_INT(cl_trace_find(t, 4), 4);
  CHECK_EQ_INT(cl_trace_find(t, 14), 4);
  CHECK_EQ_INT(cl_trace_find(t, 15), 5);
  cl_trace_lose(t, 5);
  CHECK_EQ_INT(cl_trace_next(t), 20);
  CHECK_EQ_INT(cl_trace_count(t), 5);
  cl_actions_free(&acts);
  cl_node_free(a);
  cl_trace_free(t);
}

/* Room for one event: it, then the dropped entry. */
static void test_tiny(void) {
  cl_trace_t *t = cl_trace_new(1, NULL, NULL);
  (void)cl_trace_add(t, CL_TEV_RECORD, 0, 0, 0, 1, 5, 0);
  (void)cl_trace_add(t, CL_TEV_DONE, 0, 0, 0, 1, 5, 0);
  expect_trace(t, "0 record s1 t5\n1 dropped 1\n");
  cl_trace_free(t);
}

/* Past the first allocation: the buffers grow, and what was kept stays. */
static void test_growth(void) {
  cl_trace_t *t = cl_trace_new(0, NULL, NULL);
  uint64_t rec[3] = {1, 2, 3}, k;
  cl_trace_ones(t, CL_TEV_RECV, 0, 1, 5000, 0, 3, rec);
  CHECK_EQ_INT(cl_trace_count(t), 5000);
  CHECK_EQ_INT(cl_trace_next(t), 5000);
  for (k = 0; k < 5000; k += 997) {
    const cl_trace_entry_t *e = cl_trace_entry(t, (size_t)k);
    CHECK_EQ_INT(e->i, k);
    CHECK_EQ_INT(e->seq, k + 1);
    CHECK_EQ_INT(e->tokens, (int64_t)k + 1);
    CHECK_EQ_INT(e->nrec, 3);
    CHECK_EQ_INT(cl_trace_ids(t, e)[2], 3);
  }
  cl_trace_free(t);
}

int main(void) {
  test_growth();
  test_two_servers();
  test_batches();
  test_bound();
  test_tiny();
  return check_done("trace");
}
