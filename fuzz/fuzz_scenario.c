/* libFuzzer target for the scenario file readers (common/scenario.c).
 *
 * Byte 0 picks the reader (mod 3): 0 .top, 1 .events (against a fixed
 * four-server topology), 2 .snap; the rest, NUL-terminated, is the text.
 * Whatever parses must satisfy the documented invariants (sorted servers,
 * values in range, indexes inside the topology) and survive a round trip:
 * written back (cl_topology_write / cl_snap_write, or the .events syntax for
 * scripts), the text must parse again to an equal value, and writing that
 * value again must give the same bytes. Any violation abort()s.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "scenario.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* N1..N3 fully connected, N4 with one link out and none in: enough for
 * unknown servers, missing links and self-sends to be reachable. */
static const char events_topology[] =
    "4\nN1 10\nN2 3\nN3 0\nN4 7\n"
    "N1 N2\nN2 N1\nN1 N3\nN3 N1\nN2 N3\nN3 N2\nN4 N1\n";

static void fail(const char *what) {
  fprintf(stderr, "fuzz_scenario: %s\n", what);
  abort();
}

/* Run a writer into a heap buffer. Returns the NUL-terminated text (caller
 * frees); aborts if the writer fails on a value its own reader produced. */
typedef int (*writer_fn)(const void *obj, FILE *f);

static char *write_text(writer_fn w, const void *obj, size_t *len) {
  char *buf = NULL;
  FILE *f = open_memstream(&buf, len);
  int rc;
  if (f == NULL)
    fail("open_memstream failed");
  rc = w(obj, f);
  if (fclose(f) != 0 || rc != 0)
    fail("writer failed on a parsed value");
  return buf;
}

/* ---- .top -------------------------------------------------------------- */

static int write_top(const void *t, FILE *f) {
  return cl_topology_write(t, f);
}

static void check_topology(const cl_topology_t *t) {
  int64_t total = 0;
  size_t i;
  if (t->nservers < 1 || t->nservers > CL_SERVERS_MAX)
    fail("topology: server count out of range");
  for (i = 0; i < t->nservers; i++) {
    const cl_server_t *s = &t->servers[i];
    if (!cl_id_valid(s->id) || s->tokens < 0 || s->tokens > CL_TOKENS_MAX)
      fail("topology: invalid server");
    if (i > 0 && cl_id_cmp(t->servers[i - 1].id, s->id) >= 0)
      fail("topology: servers not strictly sorted");
    if (cl_topology_find(t, s->id) != (int)i)
      fail("topology: find does not return the server's index");
    total += s->tokens;
  }
  if (total != t->total_tokens)
    fail("topology: total_tokens is not the sum");
  for (i = 0; i < t->nlinks; i++) {
    const cl_link_t *l = &t->links[i];
    if (l->src >= t->nservers || l->dst >= t->nservers || l->src == l->dst)
      fail("topology: invalid link");
    if (i > 0 && (t->links[i - 1].src > l->src ||
                  (t->links[i - 1].src == l->src &&
                   t->links[i - 1].dst >= l->dst)))
      fail("topology: links not strictly sorted");
    if (!cl_topology_has_link(t, l->src, l->dst))
      fail("topology: has_link misses a link");
  }
}

static int topology_eq(const cl_topology_t *a, const cl_topology_t *b) {
  size_t i;
  if (a->nservers != b->nservers || a->nlinks != b->nlinks ||
      a->total_tokens != b->total_tokens)
    return 0;
  for (i = 0; i < a->nservers; i++)
    if (strcmp(a->servers[i].id, b->servers[i].id) != 0 ||
        a->servers[i].tokens != b->servers[i].tokens)
      return 0;
  for (i = 0; i < a->nlinks; i++)
    if (a->links[i].src != b->links[i].src ||
        a->links[i].dst != b->links[i].dst)
      return 0;
  return 1;
}

static void fuzz_top(const char *text) {
  cl_topology_t *t, *t2;
  cl_diag_t diag;
  char *w1, *w2;
  size_t n1, n2;
  if (cl_topology_parse("fuzz.top", text, &t, &diag) != 0) {
    if (t != NULL)
      fail("topology: failed parse returned an object");
    return;
  }
  check_topology(t);
  w1 = write_text(write_top, t, &n1);
  if (cl_topology_parse("rewrite.top", w1, &t2, &diag) != 0)
    fail("topology: written text does not parse");
  check_topology(t2);
  if (!topology_eq(t, t2))
    fail("topology: round trip changed the topology");
  w2 = write_text(write_top, t2, &n2);
  if (n1 != n2 || memcmp(w1, w2, n1) != 0)
    fail("topology: writer output not stable");
  free(w1);
  free(w2);
  cl_topology_free(t);
  cl_topology_free(t2);
}

/* ---- .events ----------------------------------------------------------- */

/* The .events syntax for a parsed script (there is no library writer). */
static int write_script(const cl_script_t *s, const cl_topology_t *topo,
                        FILE *f) {
  size_t i;
  for (i = 0; i < s->nevents; i++) {
    const cl_event_t *e = &s->events[i];
    switch (e->kind) {
    case CL_EV_SEND:
      fprintf(f, "send %s %s %lld\n", topo->servers[e->src].id,
              topo->servers[e->dst].id, (long long)e->n);
      break;
    case CL_EV_SNAPSHOT:
      fprintf(f, "snapshot %s\n", topo->servers[e->src].id);
      break;
    case CL_EV_TICK:
      if (e->n == 1)
        fprintf(f, "tick\n");
      else
        fprintf(f, "tick %lld\n", (long long)e->n);
      break;
    default:
      return CL_EINVAL;
    }
  }
  return 0;
}

static void check_script(const cl_script_t *s, const cl_topology_t *topo) {
  size_t i, snaps = 0;
  int last_line = 0;
  for (i = 0; i < s->nevents; i++) {
    const cl_event_t *e = &s->events[i];
    if (e->line <= last_line)
      fail("events: lines not increasing");
    last_line = e->line;
    switch (e->kind) {
    case CL_EV_SEND:
      if (e->src >= topo->nservers || e->dst >= topo->nservers ||
          !cl_topology_has_link(topo, e->src, e->dst) || e->n < 1 ||
          e->n > CL_TOKENS_MAX)
        fail("events: invalid send");
      break;
    case CL_EV_SNAPSHOT:
      if (e->src >= topo->nservers)
        fail("events: invalid snapshot initiator");
      snaps++;
      break;
    case CL_EV_TICK:
      if (e->n < 1 || e->n > CL_TICK_MAX)
        fail("events: tick count out of range");
      break;
    default:
      fail("events: unknown kind");
    }
  }
  if (snaps != s->nsnapshots)
    fail("events: nsnapshots is not the number of snapshot events");
}

static void fuzz_events(const char *text) {
  static cl_topology_t *topo;
  cl_script_t *s, *s2;
  cl_diag_t diag;
  char *w = NULL;
  size_t n = 0, i;
  FILE *f;
  if (topo == NULL &&
      cl_topology_parse("fixed.top", events_topology, &topo, &diag) != 0)
    fail("events: fixed topology does not parse");
  if (cl_script_parse("fuzz.events", text, topo, &s, &diag) != 0) {
    if (s != NULL)
      fail("events: failed parse returned an object");
    return;
  }
  check_script(s, topo);
  f = open_memstream(&w, &n);
  if (f == NULL)
    fail("open_memstream failed");
  if (write_script(s, topo, f) != 0 || fclose(f) != 0)
    fail("events: cannot write a parsed script");
  if (cl_script_parse("rewrite.events", w, topo, &s2, &diag) != 0)
    fail("events: written text does not parse");
  if (s2->nevents != s->nevents || s2->nsnapshots != s->nsnapshots)
    fail("events: round trip changed the event count");
  for (i = 0; i < s->nevents; i++) {
    const cl_event_t *a = &s->events[i], *b = &s2->events[i];
    if (a->kind != b->kind || a->src != b->src || a->n != b->n ||
        (a->kind == CL_EV_SEND && a->dst != b->dst) ||
        b->line != (int)i + 1)
      fail("events: round trip changed an event");
  }
  free(w);
  cl_script_free(s);
  cl_script_free(s2);
}

/* ---- .snap ------------------------------------------------------------- */

static int write_snap(const void *s, FILE *f) { return cl_snap_write(s, f); }

static void check_snap(const cl_snap_t *s) {
  size_t i;
  if (s->nservers < 1 || s->nservers > CL_SERVERS_MAX ||
      s->nmsgs > CL_SNAP_MSGS_MAX)
    fail("snap: counts out of range");
  for (i = 0; i < s->nservers; i++) {
    if (!cl_id_valid(s->servers[i].id) || s->servers[i].tokens < 0 ||
        s->servers[i].tokens > CL_TOKENS_MAX)
      fail("snap: invalid server");
    if (i > 0 && cl_id_cmp(s->servers[i - 1].id, s->servers[i].id) >= 0)
      fail("snap: servers not strictly sorted");
  }
  for (i = 0; i < s->nmsgs; i++)
    if (!cl_id_valid(s->msgs[i].src) || !cl_id_valid(s->msgs[i].dst) ||
        s->msgs[i].n < 1 || s->msgs[i].n > CL_TOKENS_MAX)
      fail("snap: invalid message");
  if (cl_snap_equal(s, s, NULL, 0) != 1)
    fail("snap: not equal to itself");
}

/* Field-for-field: the same servers in the same (sorted) order, and per
 * destination the same messages in the same order (the writer regroups
 * messages by destination, so only that order is kept). */
static int snap_eq(const cl_snap_t *a, const cl_snap_t *b) {
  size_t i, j, ia, ib;
  if (a->id != b->id || a->nservers != b->nservers || a->nmsgs != b->nmsgs)
    return 0;
  for (i = 0; i < a->nservers; i++)
    if (strcmp(a->servers[i].id, b->servers[i].id) != 0 ||
        a->servers[i].tokens != b->servers[i].tokens)
      return 0;
  /* Quadratic, but inputs are a few KiB. */
  for (i = 0; i < a->nmsgs; i++) {
    const char *dst = a->msgs[i].dst;
    for (j = 0; j < i && strcmp(a->msgs[j].dst, dst) != 0; j++)
      ;
    if (j < i)
      continue;
    for (ia = i, ib = 0;; ia++, ib++) {
      while (ia < a->nmsgs && strcmp(a->msgs[ia].dst, dst) != 0)
        ia++;
      while (ib < b->nmsgs && strcmp(b->msgs[ib].dst, dst) != 0)
        ib++;
      if (ia == a->nmsgs || ib == b->nmsgs) {
        if (ia != a->nmsgs || ib != b->nmsgs)
          return 0;
        break;
      }
      if (strcmp(a->msgs[ia].src, b->msgs[ib].src) != 0 ||
          a->msgs[ia].n != b->msgs[ib].n)
        return 0;
    }
  }
  return 1;
}

static void fuzz_snap(const char *text) {
  cl_snap_t *s, *s2;
  cl_diag_t diag;
  char why[256], *w1, *w2;
  size_t n1, n2;
  if (cl_snap_parse("fuzz.snap", text, &s, &diag) != 0) {
    if (s != NULL)
      fail("snap: failed parse returned an object");
    return;
  }
  check_snap(s);
  w1 = write_text(write_snap, s, &n1);
  if (cl_snap_parse("rewrite.snap", w1, &s2, &diag) != 0)
    fail("snap: written text does not parse");
  check_snap(s2);
  if (!snap_eq(s, s2))
    fail("snap: round trip changed the snapshot");
  if (cl_snap_equal(s, s2, why, sizeof why) != 1 ||
      cl_snap_equal(s2, s, why, sizeof why) != 1)
    fail("snap: cl_snap_equal disagrees with the round trip");
  w2 = write_text(write_snap, s2, &n2);
  if (n1 != n2 || memcmp(w1, w2, n1) != 0)
    fail("snap: writer output not stable");
  free(w1);
  free(w2);
  cl_snap_free(s);
  cl_snap_free(s2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text;
  if (size < 1)
    return 0;
  text = malloc(size);
  if (text == NULL)
    return 0;
  memcpy(text, data + 1, size - 1);
  text[size - 1] = '\0';
  switch (data[0] % 3) {
  case 0: fuzz_top(text); break;
  case 1: fuzz_events(text); break;
  default: fuzz_snap(text); break;
  }
  free(text);
  return 0;
}
