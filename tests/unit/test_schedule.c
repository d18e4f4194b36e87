/* Unit tests for coordinator/check/delays.c and schedule.c: delay files,
 * the seeded generator and the reference's delivery rules on hand-built
 * topologies. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "error.h"
#include "schedule.h"
#include "wire.h"

static char tmp_path[64];

/* Writes text to a fresh temporary file; returns its path (static). */
static const char *write_tmp(const char *text) {
  int fd;
  FILE *f;
  strcpy(tmp_path, "/tmp/clsnap-test-delays-XXXXXX");
  fd = mkstemp(tmp_path);
  if (fd < 0)
    return NULL;
  f = fdopen(fd, "w");
  if (f == NULL) {
    close(fd);
    return NULL;
  }
  fputs(text, f);
  fclose(f);
  return tmp_path;
}

/* Loads text as a delay file; returns the rc, *out and the diag line. */
static int load_text(const char *text, cl_delays_t **out, int *line) {
  cl_diag_t diag;
  const char *p = write_tmp(text);
  int rc;
  memset(&diag, 0, sizeof(diag));
  CHECK(p != NULL);
  if (p == NULL)
    return CL_EIO;
  rc = cl_delays_load(p, out, &diag);
  if (line != NULL)
    *line = diag.line;
  if (rc < 0)
    CHECK(strlen(diag.msg) > 0);
  unlink(p);
  return rc;
}

static void test_delay_file(void) {
  cl_delays_t *d = NULL;
  uint32_t v = 99;
  int line = -1;

  CHECK_EQ_INT(load_text("3\n0\n4\n", &d, NULL), 0);
  CHECK_EQ_INT(cl_delays_available(d), 3);
  CHECK_EQ_INT(cl_delays_next(d, &v), 0);
  CHECK_EQ_INT(v, 3);
  CHECK_EQ_INT(cl_delays_next(d, &v), 0);
  CHECK_EQ_INT(v, 0);
  CHECK_EQ_INT(cl_delays_next(d, &v), 0);
  CHECK_EQ_INT(v, 4);
  CHECK_EQ_INT(cl_delays_used(d), 3);
  CHECK_EQ_INT(cl_delays_next(d, &v), CL_ENOENT); /* ran out */
  CHECK_EQ_INT(cl_delays_used(d), 3);
  cl_delays_free(d);

  /* No final newline; CRLF and surrounding blanks are fine. */
  CHECK_EQ_INT(load_text("1\r\n 12 \n1000000", &d, NULL), 0);
  CHECK_EQ_INT(cl_delays_available(d), 3);
  CHECK_EQ_INT(cl_delays_next(d, &v), 0);
  CHECK_EQ_INT(cl_delays_next(d, &v), 0);
  CHECK_EQ_INT(v, 12);
  CHECK_EQ_INT(cl_delays_next(d, &v), 0);
  CHECK_EQ_INT(v, 1000000);
  cl_delays_free(d);

  /* Bad lines are named. */
  d = NULL;
  CHECK_EQ_INT(load_text("1\n\n2\n", &d, &line), CL_EINVAL);
  CHECK_EQ_INT(line, 2);
  CHECK(d == NULL);
  CHECK_EQ_INT(load_text("1\n2\nx\n", &d, &line), CL_EINVAL);
  CHECK_EQ_INT(line, 3);
  CHECK_EQ_INT(load_text("-1\n", &d, &line), CL_EINVAL);
  CHECK_EQ_INT(line, 1);
  CHECK_EQ_INT(load_text("0\n1 2\n", &d, &line), CL_EINVAL);
  CHECK_EQ_INT(line, 2);
  CHECK_EQ_INT(load_text("1000001\n", &d, &line), CL_EINVAL);
  CHECK_EQ_INT(line, 1);
  CHECK_EQ_INT(load_text("99999999999999999999999\n", &d, &line), CL_EINVAL);
  CHECK_EQ_INT(load_text("1\n\n", &d, &line), CL_EINVAL);
  CHECK_EQ_INT(line, 2);
  CHECK_EQ_INT(load_text("1\n  \n", &d, &line), CL_EINVAL);
  CHECK_EQ_INT(line, 2);
  CHECK_EQ_INT(load_text("", &d, NULL), CL_EINVAL);
  {
    cl_diag_t diag;
    CHECK_EQ_INT(cl_delays_load("/nonexistent/clsnap-delays", &d, &diag),
                 CL_EIO);
    CHECK_EQ_STR(diag.file, "/nonexistent/clsnap-delays");
  }
}

/* The reference's stream: 100,000 values in [0, 4], starting 3 2 3 2 0. */
static void test_go_delays(void) {
  const char *dir = getenv("CONFORMANCE_DIR");
  char path[512];
  cl_delays_t *d = NULL;
  cl_diag_t diag;
  uint32_t v, first[5], bad = 0;
  if (dir == NULL) {
    fprintf(stderr, "CONFORMANCE_DIR not set\n");
    CHECK(0);
    return;
  }
  snprintf(path, sizeof(path), "%s/go-delays.txt", dir);
  CHECK_EQ_INT(cl_delays_load(path, &d, &diag), 0);
  if (d == NULL)
    return;
  CHECK_EQ_INT(cl_delays_available(d), 100000);
  for (int i = 0; i < 5; i++)
    CHECK_EQ_INT(cl_delays_next(d, &first[i]), 0);
  CHECK_EQ_INT(first[0], 3);
  CHECK_EQ_INT(first[1], 2);
  CHECK_EQ_INT(first[2], 3);
  CHECK_EQ_INT(first[3], 2);
  CHECK_EQ_INT(first[4], 0);
  while (cl_delays_next(d, &v) == 0)
    bad += v > 4;
  CHECK_EQ_INT(bad, 0);
  CHECK_EQ_INT(cl_delays_used(d), 100000);
  cl_delays_free(d);
}

static void test_generator(void) {
  cl_delays_t *a = cl_delays_seeded(0, UINT32_MAX);
  cl_delays_t *b, *c;
  uint32_t v, w, seen[5] = {0}, differ = 0, out_of_range = 0;

  /* splitmix64 from state 0 starts 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4
   * (Vigna's reference code); with max UINT32_MAX the delay is the low 32
   * bits. */
  CHECK_EQ_INT(cl_delays_next(a, &v), 0);
  CHECK_EQ_INT(v, 0x7b1dcdafu);
  CHECK_EQ_INT(cl_delays_next(a, &v), 0);
  CHECK_EQ_INT(v, 0xa1b965f4u);
  CHECK_EQ_INT(cl_delays_used(a), 2);
  CHECK_EQ_INT(cl_delays_available(a), 0);
  cl_delays_free(a);

  /* The delay is the output modulo max + 1. */
  a = cl_delays_seeded(0, 4);
  CHECK_EQ_INT(cl_delays_next(a, &v), 0);
  CHECK_EQ_INT(v, 0xe220a8397b1dcdafull % 5);
  cl_delays_free(a);

  /* Same seed, same stream; other seed, other stream; range kept. */
  a = cl_delays_seeded(42, 4);
  b = cl_delays_seeded(42, 4);
  c = cl_delays_seeded(43, 4);
  for (int i = 0; i < 10000; i++) {
    uint32_t x;
    cl_delays_next(a, &v);
    cl_delays_next(b, &w);
    cl_delays_next(c, &x);
    CHECK(v == w);
    differ += v != x;
    if (v > 4)
      out_of_range++;
    else
      seen[v]++;
  }
  CHECK_EQ_INT(out_of_range, 0);
  CHECK(differ > 5000); /* independent streams agree about 1 time in 5 */
  for (int i = 0; i < 5; i++)
    CHECK(seen[i] > 1500 && seen[i] < 2500);
  cl_delays_free(a);
  cl_delays_free(b);
  cl_delays_free(c);

  a = cl_delays_seeded(7, 0);
  for (int i = 0; i < 100; i++) {
    cl_delays_next(a, &v);
    CHECK_EQ_INT(v, 0);
  }
  cl_delays_free(a);
}

/* A (0), B (1), C (2); links A->B, A->C, B->C, C->A (sorted). */
static cl_server_t abc_servers[3] = {{"A", 0}, {"B", 0}, {"C", 0}};
static cl_link_t abc_links[4] = {{0, 1}, {0, 2}, {1, 2}, {2, 0}};
static cl_topology_t abc = {3, abc_servers, 4, abc_links, 0};

static cl_schedule_msg_t tok(uint64_t n, uint64_t seq) {
  cl_schedule_msg_t m = {CL_MSG_TOKEN, n, seq};
  return m;
}

static cl_schedule_msg_t marker(uint64_t id) {
  cl_schedule_msg_t m = {CL_MSG_MARKER, id, 0};
  return m;
}

/* A scheduler on abc whose delays are the given file text. */
static cl_schedule_t *sched_with(const char *delays, cl_delays_t **d) {
  CHECK_EQ_INT(load_text(delays, d, NULL), 0);
  return cl_schedule_new(&abc, *d);
}

static void test_due_times(void) {
  cl_delays_t *d;
  cl_schedule_t *s = sched_with("0\n2\n", &d);
  cl_delivery_t out[3];
  cl_schedule_msg_t m1 = tok(1, 1), m2 = tok(5, 2);
  CHECK_EQ_INT(cl_schedule_now(s), 0);
  CHECK_EQ_INT(cl_schedule_sent(s, 0, 1, &m1), 0); /* due 0+1+0 = 1 */
  CHECK_EQ_INT(cl_schedule_sent(s, 0, 1, &m2), 0); /* due 0+1+2 = 3 */
  CHECK_EQ_INT(cl_schedule_in_flight(s), 2);
  CHECK_EQ_INT(cl_schedule_tick(s, out), 1);
  CHECK_EQ_INT(cl_schedule_now(s), 1);
  CHECK_EQ_INT(out[0].src, 0);
  CHECK_EQ_INT(out[0].dst, 1);
  CHECK_EQ_INT(out[0].msg.kind, CL_MSG_TOKEN);
  CHECK_EQ_INT(out[0].msg.value, 1);
  CHECK_EQ_INT(out[0].msg.seq, 1);
  CHECK_EQ_INT(cl_schedule_tick(s, out), 0); /* time 2 */
  CHECK_EQ_INT(cl_schedule_tick(s, out), 1); /* time 3 */
  CHECK_EQ_INT(out[0].msg.value, 5);
  CHECK_EQ_INT(out[0].msg.seq, 2);
  CHECK_EQ_INT(cl_schedule_in_flight(s), 0);
  /* No link B->A; the source ran out: neither consumes a delay. */
  CHECK_EQ_INT(cl_schedule_sent(s, 1, 0, &m1), CL_ENOPEER);
  CHECK_EQ_INT(cl_schedule_sent(s, 7, 0, &m1), CL_ENOPEER);
  CHECK_EQ_INT(cl_delays_used(d), 2);
  CHECK_EQ_INT(cl_schedule_sent(s, 0, 1, &m1), CL_ENOENT);
  CHECK_EQ_INT(cl_schedule_in_flight(s), 0);
  /* A message sent at time 3 with delay 0 is due at 4. */
  cl_schedule_free(s);
  cl_delays_free(d);

  s = sched_with("0\n", &d);
  for (int i = 0; i < 3; i++)
    cl_schedule_tick(s, out);
  CHECK_EQ_INT(cl_schedule_now(s), 3);
  CHECK_EQ_INT(cl_schedule_sent(s, 2, 0, &m1), 0);
  CHECK_EQ_INT(cl_schedule_tick(s, out), 1);
  CHECK_EQ_INT(cl_schedule_now(s), 4);
  CHECK_EQ_INT(out[0].src, 2);
  CHECK_EQ_INT(out[0].dst, 0);
  cl_schedule_free(s);
  cl_delays_free(d);
}

static void test_one_per_source(void) {
  cl_delays_t *d;
  cl_schedule_t *s = sched_with("0\n0\n0\n0\n", &d);
  cl_delivery_t out[3];
  cl_schedule_msg_t m = tok(1, 1);
  CHECK_EQ_INT(cl_schedule_sent(s, 0, 1, &m), 0); /* A->B */
  CHECK_EQ_INT(cl_schedule_sent(s, 0, 2, &m), 0); /* A->C */
  CHECK_EQ_INT(cl_schedule_sent(s, 1, 2, &m), 0); /* B->C */
  CHECK_EQ_INT(cl_schedule_sent(s, 2, 0, &m), 0); /* C->A */
  /* Tick 1: A delivers only its first link (A->B), then B, then C, in
   * source order. */
  CHECK_EQ_INT(cl_schedule_tick(s, out), 3);
  CHECK_EQ_INT(out[0].src, 0);
  CHECK_EQ_INT(out[0].dst, 1);
  CHECK_EQ_INT(out[1].src, 1);
  CHECK_EQ_INT(out[1].dst, 2);
  CHECK_EQ_INT(out[2].src, 2);
  CHECK_EQ_INT(out[2].dst, 0);
  /* Tick 2: A->C, left over. */
  CHECK_EQ_INT(cl_schedule_tick(s, out), 1);
  CHECK_EQ_INT(out[0].src, 0);
  CHECK_EQ_INT(out[0].dst, 2);
  CHECK_EQ_INT(cl_schedule_in_flight(s), 0);
  cl_schedule_free(s);
  cl_delays_free(d);
}

static void test_first_due_link(void) {
  cl_delays_t *d;
  cl_schedule_t *s = sched_with("3\n0\n0\n0\n", &d);
  cl_delivery_t out[3];
  cl_schedule_msg_t m1 = tok(1, 1), m2 = tok(2, 1), m3 = tok(3, 1);
  /* A->B is due at 4, A->C at 1: the first link in destination order is
   * not due, so the next one delivers. */
  CHECK_EQ_INT(cl_schedule_sent(s, 0, 1, &m1), 0);
  CHECK_EQ_INT(cl_schedule_sent(s, 0, 2, &m2), 0);
  CHECK_EQ_INT(cl_schedule_tick(s, out), 1);
  CHECK_EQ_INT(out[0].dst, 2);
  CHECK_EQ_INT(out[0].msg.value, 2);
  cl_schedule_free(s);
  cl_delays_free(d);

  /* Both due: destination order wins over sending order. */
  s = sched_with("0\n0\n", &d);
  CHECK_EQ_INT(cl_schedule_sent(s, 0, 2, &m3), 0);
  CHECK_EQ_INT(cl_schedule_sent(s, 0, 1, &m1), 0);
  CHECK_EQ_INT(cl_schedule_tick(s, out), 1);
  CHECK_EQ_INT(out[0].dst, 1);
  CHECK_EQ_INT(cl_schedule_tick(s, out), 1);
  CHECK_EQ_INT(out[0].dst, 2);
  cl_schedule_free(s);
  cl_delays_free(d);
}

static void test_head_of_line(void) {
  cl_delays_t *d;
  cl_schedule_t *s = sched_with("4\n0\n", &d);
  cl_delivery_t out[3];
  cl_schedule_msg_t m1 = tok(1, 1), m2 = tok(2, 2);
  CHECK_EQ_INT(cl_schedule_sent(s, 0, 1, &m1), 0); /* due 5 */
  CHECK_EQ_INT(cl_schedule_sent(s, 0, 1, &m2), 0); /* due 1, but behind m1 */
  for (int t = 1; t <= 4; t++)
    CHECK_EQ_INT(cl_schedule_tick(s, out), 0);
  CHECK_EQ_INT(cl_schedule_tick(s, out), 1); /* time 5 */
  CHECK_EQ_INT(out[0].msg.seq, 1);
  CHECK_EQ_INT(cl_schedule_tick(s, out), 1); /* time 6: one per source */
  CHECK_EQ_INT(out[0].msg.seq, 2);
  CHECK_EQ_INT(cl_schedule_now(s), 6);
  cl_schedule_free(s);
  cl_delays_free(d);
}

static void test_idle(void) {
  cl_delays_t *d;
  cl_schedule_t *s = sched_with("4\n", &d);
  cl_delivery_t out[3];
  cl_schedule_msg_t m = tok(1, 1);
  CHECK_EQ_INT(cl_schedule_idle(s, 10), 10); /* nothing in flight */
  CHECK_EQ_INT(cl_schedule_now(s), 10);
  CHECK_EQ_INT(cl_schedule_sent(s, 0, 1, &m), 0); /* due 15 */
  CHECK_EQ_INT(cl_schedule_idle(s, 2), 2);
  CHECK_EQ_INT(cl_schedule_idle(s, 100), 2); /* to 14: tick 15 delivers */
  CHECK_EQ_INT(cl_schedule_now(s), 14);
  CHECK_EQ_INT(cl_schedule_idle(s, 100), 0);
  CHECK_EQ_INT(cl_schedule_tick(s, out), 1);
  CHECK_EQ_INT(cl_schedule_now(s), 15);
  cl_schedule_free(s);
  cl_delays_free(d);
}

/* Worked by hand from the reference rules: the 2nodes-message case
 * (N1 holds 1 token; links N1->N2, N2->N1; events `send N1 N2 1`,
 * `snapshot N2`, `tick`) with the first go-delays values 3, 2, 3.
 *   t=0  send N1->N2 token(1): delay 3, due 4
 *        snapshot 0 at N2: marker N2->N1, delay 2, due 3
 *   t=1,2  nothing is due
 *   t=3  N2->N1 marker; N1 records and sends marker N1->N2: delay 3, due 7
 *   t=4  N1->N2 token (N2 records it: its channel from N1 is open)
 *   t=5,6  nothing
 *   t=7  N1->N2 marker: snapshot complete. */
static void test_worked_example(void) {
  static cl_server_t sv[2] = {{"N1", 1}, {"N2", 0}};
  static cl_link_t lk[2] = {{0, 1}, {1, 0}};
  cl_topology_t t = {2, sv, 2, lk, 1};
  cl_delays_t *d;
  cl_schedule_t *s;
  cl_delivery_t out[2];
  cl_schedule_msg_t tk = tok(1, 1), mk = marker(0);
  CHECK_EQ_INT(load_text("3\n2\n3\n", &d, NULL), 0);
  s = cl_schedule_new(&t, d);
  CHECK(s != NULL);
  CHECK_EQ_INT(cl_schedule_sent(s, 0, 1, &tk), 0);
  CHECK_EQ_INT(cl_schedule_sent(s, 1, 0, &mk), 0);
  CHECK_EQ_INT(cl_schedule_tick(s, out), 0);
  CHECK_EQ_INT(cl_schedule_tick(s, out), 0);
  CHECK_EQ_INT(cl_schedule_tick(s, out), 1);
  CHECK_EQ_INT(cl_schedule_now(s), 3);
  CHECK_EQ_INT(out[0].src, 1);
  CHECK_EQ_INT(out[0].dst, 0);
  CHECK_EQ_INT(out[0].msg.kind, CL_MSG_MARKER);
  CHECK_EQ_INT(cl_schedule_sent(s, 0, 1, &mk), 0);
  CHECK_EQ_INT(cl_schedule_tick(s, out), 1);
  CHECK_EQ_INT(out[0].src, 0);
  CHECK_EQ_INT(out[0].msg.kind, CL_MSG_TOKEN);
  CHECK_EQ_INT(cl_schedule_tick(s, out), 0);
  CHECK_EQ_INT(cl_schedule_tick(s, out), 0);
  CHECK_EQ_INT(cl_schedule_tick(s, out), 1);
  CHECK_EQ_INT(cl_schedule_now(s), 7);
  CHECK_EQ_INT(out[0].msg.kind, CL_MSG_MARKER);
  CHECK_EQ_INT(out[0].msg.value, 0);
  CHECK_EQ_INT(cl_schedule_in_flight(s), 0);
  CHECK_EQ_INT(cl_delays_used(d), 3);
  cl_schedule_free(s);
  cl_delays_free(d);
}

static void test_bad_topology(void) {
  static cl_link_t unsorted[2] = {{1, 0}, {0, 1}};
  cl_topology_t t = {2, abc_servers, 2, unsorted, 0};
  cl_delays_t *d = cl_delays_seeded(1, 4);
  CHECK(cl_schedule_new(&t, d) == NULL);
  CHECK(cl_schedule_new(NULL, d) == NULL);
  cl_delays_free(d);
}

int main(void) {
  test_delay_file();
  test_go_delays();
  test_generator();
  test_due_times();
  test_one_per_source();
  test_first_due_link();
  test_head_of_line();
  test_idle();
  test_worked_example();
  test_bad_topology();
  return check_done("schedule");
}
