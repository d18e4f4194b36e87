/* Unit tests of the node core's batched calls for the load path
 * (cl_node_send_ones, cl_node_receive_ones): each must leave the node
 * exactly as the equivalent sequence of single calls would, refusals
 * included. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "error.h"
#include "node.h"

static const char *const outs[] = {"B", "C"};
static const char *const ins[] = {"B", "C"};

/* Node A with two outbound and two inbound peers; exits if creation
 * fails, since every later check would be meaningless. */
static cl_node_t *mk(int64_t tokens) {
  cl_node_config_t cfg;
  cl_node_t *n = NULL;
  memset(&cfg, 0, sizeof cfg);
  cfg.self = "A";
  cfg.tokens = tokens;
  cfg.out = outs;
  cfg.nout = 2;
  cfg.in = ins;
  cfg.nin = 2;
  if (cl_node_new(&cfg, &n) != 0 || n == NULL) {
    fprintf(stderr, "cl_node_new failed\n");
    exit(1);
  }
  return n;
}

/* send_ones numbers messages like single sends and refuses what they
 * would refuse, changing nothing. */
static void test_send_ones(void) {
  cl_node_t *n = mk(10);
  cl_actions_t acts;
  uint64_t first = 0;
  cl_actions_init(&acts);
  CHECK_EQ_INT(cl_node_send_ones(n, 0, 3, &first), 0);
  CHECK_EQ_INT(first, 1);
  CHECK_EQ_INT(cl_node_tokens(n), 7);
  CHECK_EQ_INT(cl_node_sent(n, 0), 3);
  CHECK_EQ_INT(cl_node_sent(n, 1), 0);
  /* A single send afterwards continues the channel's numbering. */
  CHECK_EQ_INT(cl_node_send_tokens(n, 0, 1, &acts), 0);
  CHECK_EQ_INT(acts.n, 1);
  CHECK_EQ_INT(acts.v[0].seq, 4);
  cl_actions_clear(&acts);
  CHECK_EQ_INT(cl_node_send_ones(n, 0, 2, &first), 0);
  CHECK_EQ_INT(first, 5);
  /* 4 tokens left: 5 messages of one token cannot go. */
  CHECK_EQ_INT(cl_node_send_ones(n, 1, 5, &first), CL_ENOTOKENS);
  CHECK_EQ_INT(cl_node_send_ones(n, 1, 0, &first), CL_EINVAL);
  CHECK_EQ_INT(cl_node_send_ones(n, 2, 1, &first), CL_EINVAL);
  CHECK_EQ_INT(cl_node_tokens(n), 4);
  CHECK_EQ_INT(cl_node_sent(n, 1), 0);
  CHECK_EQ_INT(cl_node_send_ones(n, 1, 4, &first), 0);
  CHECK_EQ_INT(first, 1);
  CHECK_EQ_INT(cl_node_tokens(n), 0);
  cl_actions_free(&acts);
  cl_node_free(n);
}

/* Same recorded state in a and b for snapshot id. */
static void check_same_state(cl_node_t *a, cl_node_t *b, uint64_t id) {
  cl_node_state_t sa, sb;
  size_t k;
  CHECK_EQ_INT(cl_node_state(a, id, &sa), 0);
  CHECK_EQ_INT(cl_node_state(b, id, &sb), 0);
  CHECK_EQ_INT(sa.complete, sb.complete);
  CHECK_EQ_INT(sa.tokens, sb.tokens);
  CHECK_EQ_INT(sa.nrecorded, sb.nrecorded);
  for (k = 0; k < sa.nrecorded && k < sb.nrecorded; k++) {
    CHECK_EQ_INT(sa.recorded[k].in, sb.recorded[k].in);
    CHECK_EQ_INT(sa.recorded[k].seq, sb.recorded[k].seq);
    CHECK_EQ_INT(sa.recorded[k].count, sb.recorded[k].count);
    CHECK_EQ_INT(sa.recorded[k].n, sb.recorded[k].n);
  }
}

/* receive_ones against single receives, with and without a snapshot
 * recording the channel. */
static void test_receive_ones(void) {
  cl_node_t *a = mk(0), *b = mk(0);
  cl_actions_t acts;
  uint64_t done = 99, s;
  cl_node_state_t st;
  cl_actions_init(&acts);

  /* No snapshot: counts only. */
  CHECK_EQ_INT(cl_node_receive_ones(a, 1, 1, 5, &done), 0);
  CHECK_EQ_INT(done, 5);
  for (s = 1; s <= 5; s++)
    CHECK_EQ_INT(cl_node_receive_token(b, 1, s, 1, &acts), 0);
  CHECK_EQ_INT(cl_node_tokens(a), 5);
  CHECK_EQ_INT(cl_node_received(a, 1), 5);
  CHECK_EQ_INT(cl_node_received(a, 0), 0);

  /* Snapshot 7 records both channels: the run on channel 0 is recorded
   * as one run of 3, like three single receives. */
  CHECK_EQ_INT(cl_node_start_snapshot(a, 7, &acts), 0);
  cl_actions_clear(&acts);
  CHECK_EQ_INT(cl_node_start_snapshot(b, 7, &acts), 0);
  cl_actions_clear(&acts);
  CHECK_EQ_INT(cl_node_receive_ones(a, 0, 1, 3, &done), 0);
  CHECK_EQ_INT(done, 3);
  for (s = 1; s <= 3; s++)
    CHECK_EQ_INT(cl_node_receive_token(b, 0, s, 1, &acts), 0);
  check_same_state(a, b, 7);
  CHECK_EQ_INT(cl_node_state(a, 7, &st), 0);
  CHECK_EQ_INT(st.nrecorded, 1);
  CHECK_EQ_INT(st.recorded[0].in, 0);
  CHECK_EQ_INT(st.recorded[0].seq, 1);
  CHECK_EQ_INT(st.recorded[0].count, 3);
  CHECK_EQ_INT(st.recorded[0].n, 1);
  CHECK_EQ_INT(st.tokens, 5);

  /* Marker closes channel 0; later messages on it are not recorded, those
   * on channel 1 still are. */
  CHECK_EQ_INT(cl_node_receive_marker(a, 0, 7, &acts), 0);
  cl_actions_clear(&acts);
  CHECK_EQ_INT(cl_node_receive_marker(b, 0, 7, &acts), 0);
  cl_actions_clear(&acts);
  CHECK_EQ_INT(cl_node_receive_ones(a, 0, 4, 2, &done), 0);
  CHECK_EQ_INT(cl_node_receive_ones(a, 1, 6, 2, &done), 0);
  for (s = 4; s <= 5; s++)
    CHECK_EQ_INT(cl_node_receive_token(b, 0, s, 1, &acts), 0);
  for (s = 6; s <= 7; s++)
    CHECK_EQ_INT(cl_node_receive_token(b, 1, s, 1, &acts), 0);
  check_same_state(a, b, 7);
  CHECK_EQ_INT(cl_node_state(a, 7, &st), 0);
  CHECK_EQ_INT(st.nrecorded, 2);
  CHECK_EQ_INT(st.recorded[1].in, 1);
  CHECK_EQ_INT(st.recorded[1].seq, 6);
  CHECK_EQ_INT(st.recorded[1].count, 2);
  CHECK_EQ_INT(cl_node_tokens(a), cl_node_tokens(b));
  CHECK_EQ_INT(cl_node_tokens(a), 12);

  /* Refusals: out of order, bad index, nothing to do. */
  done = 99;
  CHECK_EQ_INT(cl_node_receive_ones(a, 0, 7, 1, &done), CL_ESEQ);
  CHECK_EQ_INT(done, 0);
  CHECK_EQ_INT(cl_node_receive_ones(a, 2, 1, 1, &done), CL_EINVAL);
  CHECK_EQ_INT(cl_node_receive_ones(a, 0, 6, 0, &done), CL_EINVAL);
  CHECK_EQ_INT(cl_node_received(a, 0), 5);
  CHECK_EQ_INT(cl_node_tokens(a), 12);
  cl_actions_free(&acts);
  cl_node_free(a);
  cl_node_free(b);
}

/* A run that would pass the token limit stops where single receives
 * would: the messages before the limit are taken. */
static void test_receive_ones_range(void) {
  cl_node_t *a = mk(CL_MSG_TOKENS_MAX - 2);
  cl_actions_t acts;
  uint64_t done = 99;
  cl_actions_init(&acts);
  CHECK_EQ_INT(cl_node_receive_ones(a, 0, 1, 5, &done), CL_ERANGE);
  CHECK_EQ_INT(done, 2);
  CHECK_EQ_INT(cl_node_tokens(a), CL_MSG_TOKENS_MAX);
  CHECK_EQ_INT(cl_node_received(a, 0), 2);
  CHECK_EQ_INT(cl_node_receive_token(a, 0, 3, 1, &acts), CL_ERANGE);
  cl_actions_free(&acts);
  cl_node_free(a);
}

int main(void) {
  test_send_ones();
  test_receive_ones();
  test_receive_ones_range();
  return check_done("node-batch");
}
