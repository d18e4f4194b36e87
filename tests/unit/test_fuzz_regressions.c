/* Regression inputs from fuzzing (fuzz/): byte streams for the wire decoder
 * and texts for the scenario readers that once misbehaved or sit on an
 * edge the fuzzers found. Each must give the error or the value worked out
 * below, leak nothing and stay inside its memory bound (run it under the
 * ASan build too). docs/RELIABILITY.md tells each case's story. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "error.h"
#include "scenario.h"
#include "wire.h"

/* ------------------------------------------------------------------ */
/* Wire                                                                */

/* Feed len bytes in one go to a decoder with the given cap and take every
 * frame. Returns the first non-1 result of cl_wire_next (0: all frames
 * taken, more bytes needed) or the feed error; *nframes counts the frames,
 * each of which must encode and decode back to the same type. */
static int wire_run(const unsigned char *in, size_t len, size_t cap,
                    int *nframes) {
  cl_wire_decoder_t *d = cl_wire_decoder_new(cap);
  cl_msg_t m;
  int rc;
  *nframes = 0;
  if (d == NULL)
    return CL_ENOMEM;
  rc = cl_wire_decoder_feed(d, (const char *)in, len);
  while (rc == 0 && (rc = cl_wire_next(d, &m)) == 1) {
    rc = 0;
    msgpack_sbuffer sb;
    cl_wire_decoder_t *d2 = cl_wire_decoder_new(0);
    cl_msg_t again;
    (*nframes)++;
    msgpack_sbuffer_init(&sb);
    CHECK_EQ_INT(cl_wire_encode(&m, &sb), 0);
    CHECK_EQ_INT(cl_wire_decoder_feed(d2, sb.data, sb.size), 0);
    CHECK_EQ_INT(cl_wire_next(d2, &again), 1);
    CHECK_EQ_INT(again.type, m.type);
    cl_msg_free(&again);
    cl_wire_decoder_free(d2);
    msgpack_sbuffer_destroy(&sb);
    cl_msg_free(&m);
  }
  cl_wire_decoder_free(d);
  return rc;
}

/* Nested array32 headers, each declaring 0x0ff000 (1044480) elements: one
 * fits the default 1 MiB cap, but the second one's elements plus the first
 * one's still expected do not. The scanner used to check each header on its
 * own, so three such headers (15 bytes) made msgpack-c set aside 24 bytes per
 * declared element, about 100 MB, while the decoder waited for more input. */
static void test_nested_counts(void) {
  static const unsigned char three[] = {0xdd, 0x00, 0x0f, 0xf0, 0x00,
                                        0xdd, 0x00, 0x0f, 0xf0, 0x00,
                                        0xdd, 0x00, 0x0f, 0xf0, 0x00};
  /* Maps count twice (keys and values): 0x07f800 pairs are 1044480
   * elements, the same total as above. */
  static const unsigned char maps[] = {0xdf, 0x00, 0x07, 0xf8, 0x00,
                                       0x91, 0xdf, 0x00, 0x07, 0xf8, 0x00};
  /* fuzz_wire's own find, minimized (its 2 header bytes 09 11 chose a
   * 32 KiB cap): two array16 headers of 0x79cd (31181) elements. The second
   * needs 6 + 31181 + 31180 bytes at least. */
  static const unsigned char found[] = {0xdc, 0x79, 0xcd, 0xdc, 0x79, 0xcd};
  int n;
  CHECK_EQ_INT(wire_run(found, sizeof found, 32768, &n), CL_ETOOBIG);
  CHECK_EQ_INT(wire_run(found, 3, 32768, &n), 0);
  CHECK_EQ_INT(wire_run(three, sizeof three, 0, &n), CL_ETOOBIG);
  CHECK_EQ_INT(n, 0);
  CHECK_EQ_INT(wire_run(three, 10, 0, &n), CL_ETOOBIG);
  /* One such header alone is still only a frame waiting for its bytes. */
  CHECK_EQ_INT(wire_run(three, 5, 0, &n), 0);
  /* The key of the first map is a one-element array holding a second map:
   * 1044480 - 1 elements still expected at the top, 1 at the middle level
   * (its element in progress), then 1044480 more. */
  CHECK_EQ_INT(wire_run(maps, sizeof maps, 0, &n), CL_ETOOBIG);
}

/* The fix counts exactly what the open containers still need, not more:
 * [1, [1, 2], 3] is 6 bytes, and with a cap of exactly 6 it must get past
 * the scanner (at the inner header: 3 bytes read, 2 inner elements and 1
 * outer one to come). It is then refused for its shape, HELLO wanting ids. */
static void test_nested_exact_cap(void) {
  static const unsigned char f[] = {0x93, 0x01, 0x92, 0x01, 0x02, 0x03};
  /* [30, 1, 0, [["N2", 2, 1, 1]], 0, 0]: OK with one sent TOKEN, 14 bytes;
   * its nested lists fill the cap exactly. */
  static const unsigned char ok[] = {0x96, 0x1e, 0x01, 0x00, 0x91, 0x94,
                                     0xa2, 'N',  '2',  0x02, 0x01, 0x01,
                                     0x00, 0x00};
  int n;
  CHECK_EQ_INT(wire_run(f, sizeof f, 6, &n), CL_EPROTO);
  CHECK_EQ_INT(n, 0);
  CHECK_EQ_INT(wire_run(ok, sizeof ok, sizeof ok, &n), 0);
  CHECK_EQ_INT(n, 1);
}

/* ------------------------------------------------------------------ */
/* Scenario readers                                                    */

/* A .snap text parses to s; writing it and parsing the output gives a
 * snapshot equal to it, written identically. */
static void snap_roundtrip(const char *text, cl_snap_t **out) {
  cl_snap_t *s = NULL, *s2 = NULL;
  cl_diag_t d;
  char *w1 = NULL, *w2 = NULL;
  size_t n1 = 0, n2 = 0;
  FILE *f;
  *out = NULL;
  CHECK_EQ_INT(cl_snap_parse("t.snap", text, &s, &d), 0);
  if (s == NULL)
    return;
  f = open_memstream(&w1, &n1);
  CHECK_EQ_INT(cl_snap_write(s, f), 0);
  fclose(f);
  CHECK_EQ_INT(cl_snap_parse("w.snap", w1, &s2, &d), 0);
  CHECK_EQ_INT(cl_snap_equal(s, s2, NULL, 0), 1);
  f = open_memstream(&w2, &n2);
  CHECK_EQ_INT(cl_snap_write(s2, f), 0);
  fclose(f);
  CHECK(n1 == n2 && memcmp(w1, w2, n1) == 0);
  free(w1);
  free(w2);
  cl_snap_free(s2);
  *out = s;
}

/* Edges the scenario fuzzer kept returning to: the largest snapshot id, the
 * largest token amount, messages to several destinations (the writer
 * regroups them by destination), and text that stops at a NUL. */
static void test_snap_edges(void) {
  cl_snap_t *s;
  cl_diag_t d;
  snap_roundtrip("18446744073709551615\nN3 0\nN1 4\n"
                 "N3 N1 token(5)\nN1 N3 token(1)\nN3 N1 token(1099511627776)\n",
                 &s);
  if (s != NULL) {
    CHECK(s->id == UINT64_MAX);
    CHECK_EQ_INT(s->nservers, 2);
    CHECK_EQ_STR(s->servers[0].id, "N1");
    CHECK_EQ_INT(s->nmsgs, 3);
    CHECK_EQ_INT(s->msgs[2].n, (int64_t)1 << 40);
    cl_snap_free(s);
  }
  /* 2^64 does not fit the id; token(0) and token(2^40 + 1) are out of range. */
  CHECK_EQ_INT(cl_snap_parse("t.snap", "18446744073709551616\nN1 0\n", &s, &d),
               CL_EINVAL);
  CHECK(s == NULL);
  CHECK_EQ_INT(cl_snap_parse("t.snap", "1\nN1 0\nN1 N2 token(0)\n", &s, &d),
               CL_ERANGE);
  CHECK_EQ_INT(
      cl_snap_parse("t.snap", "1\nN1 0\nN1 N2 token(1099511627777)\n", &s, &d),
      CL_ERANGE);
  CHECK_EQ_INT(cl_snap_parse("t.snap", "1\nN1 0\nN1 N2 token()\n", &s, &d),
               CL_EINVAL);
}

/* A topology written back must read back the same, CRLF and comments
 * included; a count line promising more servers than listed is an error. */
static void test_topology_edges(void) {
  cl_topology_t *t = NULL, *t2 = NULL;
  cl_diag_t d;
  char *w = NULL;
  size_t n = 0;
  FILE *f;
  CHECK_EQ_INT(cl_topology_parse("t.top",
                                 "# c\r\n2\r\n\tN2 1099511627776\r\nN1 0\r\n"
                                 "N2 N1\r\n",
                                 &t, &d),
               0);
  if (t != NULL) {
    CHECK_EQ_INT(t->nservers, 2);
    CHECK(t->total_tokens == (int64_t)1 << 40);
    f = open_memstream(&w, &n);
    CHECK_EQ_INT(cl_topology_write(t, f), 0);
    fclose(f);
    CHECK_EQ_STR(w, "2\nN1 0\nN2 1099511627776\nN2 N1\n");
    CHECK_EQ_INT(cl_topology_parse("w.top", w, &t2, &d), 0);
    CHECK(t2 != NULL && t2->nlinks == 1 && t2->links[0].src == 1 &&
          t2->links[0].dst == 0);
    free(w);
    cl_topology_free(t2);
    cl_topology_free(t);
  }
  CHECK_EQ_INT(cl_topology_parse("t.top", "3\nN1 1\nN2 2\nN1 N2\n", &t, &d),
               CL_EINVAL);
  CHECK_EQ_INT(d.line, 4);
  CHECK(t == NULL);
  CHECK_EQ_INT(cl_topology_parse("t.top", "4097\n", &t, &d), CL_ERANGE);
}

/* Events against the fuzzer's fixed topology: sends only over its links,
 * tick counts up to CL_TICK_MAX. */
static void test_events_edges(void) {
  static const char topo_text[] = "4\nN1 10\nN2 3\nN3 0\nN4 7\n"
                                  "N1 N2\nN2 N1\nN1 N3\nN3 N1\nN2 N3\nN3 N2\n"
                                  "N4 N1\n";
  cl_topology_t *t = NULL;
  cl_script_t *s = NULL;
  cl_diag_t d;
  CHECK_EQ_INT(cl_topology_parse("t.top", topo_text, &t, &d), 0);
  if (t == NULL)
    return;
  CHECK_EQ_INT(cl_script_parse("t.events",
                               "send N4 N1 7\ntick 1000000000\nsnapshot N4\n",
                               t, &s, &d),
               0);
  if (s != NULL) {
    CHECK_EQ_INT(s->nevents, 3);
    CHECK_EQ_INT(s->nsnapshots, 1);
    CHECK_EQ_INT(s->events[1].n, CL_TICK_MAX);
    cl_script_free(s);
  }
  CHECK_EQ_INT(cl_script_parse("t.events", "send N1 N4 1\n", t, &s, &d),
               CL_ENOPEER);
  CHECK_EQ_INT(cl_script_parse("t.events", "tick 1000000001\n", t, &s, &d),
               CL_ERANGE);
  CHECK_EQ_INT(cl_script_parse("t.events", "send N1 N1 1\n", t, &s, &d),
               CL_ENOPEER);
  CHECK(s == NULL);
  cl_topology_free(t);
}

int main(void) {
  test_nested_counts();
  test_nested_exact_cap();
  test_snap_edges();
  test_topology_edges();
  test_events_edges();
  return check_done("fuzz_regressions");
}
