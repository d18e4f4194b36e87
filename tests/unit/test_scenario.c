/* Unit tests for common/scenario: the reference files load with the counts
 * read off the files by hand, writers round-trip, cl_snap_equal follows the
 * reference comparison, and every malformed input is refused with the right
 * code, line and message. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "error.h"
#include "scenario.h"

static const char *conf_dir(void) {
  const char *d = getenv("CONFORMANCE_DIR");
  return d ? d : "../shared/conformance";
}

static void cos_path(char *buf, size_t size, const char *file) {
  snprintf(buf, size, "%s/cos418/%s", conf_dir(), file);
}

static int ends_with(const char *s, const char *suf) {
  size_t n = strlen(s), m = strlen(suf);
  return n >= m && strcmp(s + n - m, suf) == 0;
}

/* Check a failed parse: code, diag line and a key word of the message. On
 * failure, say which test line it was and what the diag said. */
static void check_diag(int tline, int rc, const cl_diag_t *d, int code,
                       int line, const char *word) {
  int before = check_failed;
  CHECK_EQ_INT(rc, code);
  CHECK_EQ_INT(d->line, line);
  CHECK(strstr(d->msg, word) != NULL);
  CHECK_EQ_STR(d->file, "t.in");
  if (check_failed != before)
    fprintf(stderr, "  (case at test line %d: rc=%s line=%d msg=\"%s\")\n",
            tline, cl_err_name(rc), d->line, d->msg);
}

static void top_bad(int tline, const char *text, int code, int line,
                    const char *word) {
  cl_topology_t *t = (cl_topology_t *)1;
  cl_diag_t d;
  int rc;
  memset(&d, 0, sizeof d);
  rc = cl_topology_parse("t.in", text, &t, &d);
  check_diag(tline, rc, &d, code, line, word);
  CHECK(t == NULL);
}
#define TOP_BAD(text, code, line, word) top_bad(__LINE__, text, code, line, word)

/* Topology for the event tests: N1<->N2, N1->N3, N2->N3 (no N3->anything). */
static const char *ev_top = "3\nN1 10\nN2 3\nN3 0\nN1 N2\nN2 N1\nN1 N3\n"
                            "N2 N3\n";

static void ev_bad(int tline, const char *text, int code, int line,
                   const char *word) {
  cl_topology_t *t = NULL;
  cl_script_t *s = (cl_script_t *)1;
  cl_diag_t d;
  int rc;
  memset(&d, 0, sizeof d);
  CHECK_EQ_INT(cl_topology_parse("top", ev_top, &t, &d), 0);
  rc = cl_script_parse("t.in", text, t, &s, &d);
  check_diag(tline, rc, &d, code, line, word);
  CHECK(s == NULL);
  cl_topology_free(t);
}
#define EV_BAD(text, code, line, word) ev_bad(__LINE__, text, code, line, word)

static void snap_bad(int tline, const char *text, int code, int line,
                     const char *word) {
  cl_snap_t *s = (cl_snap_t *)1;
  cl_diag_t d;
  int rc;
  memset(&d, 0, sizeof d);
  rc = cl_snap_parse("t.in", text, &s, &d);
  check_diag(tline, rc, &d, code, line, word);
  CHECK(s == NULL);
}
#define SNAP_BAD(text, code, line, word)                                       \
  snap_bad(__LINE__, text, code, line, word)

/* ---- reference files ---------------------------------------------------- */

typedef struct top_case {
  const char *file;
  size_t nservers, nlinks;
  int64_t total;
} top_case_t;

/* Read off the files: 8nodes.top lists 18 links after its `#` drawing. */
static const top_case_t top_cases[] = {
    {"2nodes.top", 2, 2, 1},
    {"3nodes.top", 3, 6, 13},
    {"8nodes.top", 8, 18, 40},
    {"10nodes.top", 10, 10, 1000},
};

typedef struct ev_case {
  const char *file, *top;
  size_t nevents, nsend, nsnap, ntick;
  int64_t ticks; /* sum of tick amounts */
} ev_case_t;

static const ev_case_t ev_cases[] = {
    {"2nodes-simple.events", "2nodes.top", 2, 0, 1, 1, 1},
    {"2nodes-message.events", "2nodes.top", 3, 1, 1, 1, 1},
    {"3nodes-simple.events", "3nodes.top", 7, 4, 1, 2, 5},
    {"3nodes-bidirectional-messages.events", "3nodes.top", 11, 6, 1, 4, 6},
    {"8nodes-sequential-snapshots.events", "8nodes.top", 15, 7, 2, 6, 60},
    {"8nodes-concurrent-snapshots.events", "8nodes.top", 17, 7, 5, 5, 23},
    {"10nodes.events", "10nodes.top", 120, 100, 10, 10, 10},
};

typedef struct snap_case {
  const char *file, *top;
  uint64_t id;
  size_t nservers, nmsgs;
  int64_t server_tokens, msg_tokens;
} snap_case_t;

static const snap_case_t snap_cases[] = {
    {"10nodes0.snap", "10nodes.top", 0, 10, 10, 900, 100},
    {"10nodes1.snap", "10nodes.top", 1, 10, 10, 900, 100},
    {"10nodes2.snap", "10nodes.top", 2, 10, 10, 900, 100},
    {"10nodes3.snap", "10nodes.top", 3, 10, 10, 900, 100},
    {"10nodes4.snap", "10nodes.top", 4, 10, 8, 920, 80},
    {"10nodes5.snap", "10nodes.top", 5, 10, 8, 920, 80},
    {"10nodes6.snap", "10nodes.top", 6, 10, 8, 920, 80},
    {"10nodes7.snap", "10nodes.top", 7, 10, 5, 950, 50},
    {"10nodes8.snap", "10nodes.top", 8, 10, 6, 940, 60},
    {"10nodes9.snap", "10nodes.top", 9, 10, 5, 950, 50},
    {"2nodes-message.snap", "2nodes.top", 0, 2, 1, 0, 1},
    {"2nodes-simple.snap", "2nodes.top", 0, 2, 0, 1, 0},
    {"3nodes-bidirectional-messages.snap", "3nodes.top", 0, 3, 3, 7, 6},
    {"3nodes-simple.snap", "3nodes.top", 0, 3, 2, 8, 5},
    {"8nodes-concurrent-snapshots0.snap", "8nodes.top", 0, 8, 1, 38, 2},
    {"8nodes-concurrent-snapshots1.snap", "8nodes.top", 1, 8, 1, 37, 3},
    {"8nodes-concurrent-snapshots2.snap", "8nodes.top", 2, 8, 1, 36, 4},
    {"8nodes-concurrent-snapshots3.snap", "8nodes.top", 3, 8, 1, 38, 2},
    {"8nodes-concurrent-snapshots4.snap", "8nodes.top", 4, 8, 0, 40, 0},
    {"8nodes-sequential-snapshots0.snap", "8nodes.top", 0, 8, 1, 38, 2},
    {"8nodes-sequential-snapshots1.snap", "8nodes.top", 1, 8, 1, 38, 2},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static cl_topology_t *load_top(const char *file) {
  char path[1024];
  cl_topology_t *t = NULL;
  cl_diag_t d;
  cos_path(path, sizeof path, file);
  if (cl_topology_load(path, &t, &d) != 0)
    fprintf(stderr, "%s:%d: %s\n", d.file, d.line, d.msg);
  return t;
}

static void test_reference_tops(void) {
  size_t i, j;
  for (i = 0; i < NELEM(top_cases); i++) {
    cl_topology_t *t = load_top(top_cases[i].file);
    int64_t sum = 0;
    CHECK(t != NULL);
    if (t == NULL)
      continue;
    CHECK_EQ_INT(t->nservers, top_cases[i].nservers);
    CHECK_EQ_INT(t->nlinks, top_cases[i].nlinks);
    CHECK_EQ_INT(t->total_tokens, top_cases[i].total);
    for (j = 0; j < t->nservers; j++)
      sum += t->servers[j].tokens;
    CHECK_EQ_INT(sum, top_cases[i].total);
    for (j = 1; j < t->nservers; j++)
      CHECK(strcmp(t->servers[j - 1].id, t->servers[j].id) < 0);
    for (j = 1; j < t->nlinks; j++)
      CHECK(t->links[j - 1].src < t->links[j].src ||
            (t->links[j - 1].src == t->links[j].src &&
             t->links[j - 1].dst < t->links[j].dst));
    cl_topology_free(t);
  }

  /* 10nodes: byte-wise order puts N10 right after N1. */
  {
    cl_topology_t *t = load_top("10nodes.top");
    CHECK(t != NULL);
    if (t != NULL) {
      CHECK_EQ_STR(t->servers[0].id, "N1");
      CHECK_EQ_STR(t->servers[1].id, "N10");
      CHECK_EQ_STR(t->servers[2].id, "N2");
      CHECK_EQ_STR(t->servers[9].id, "N9");
      CHECK_EQ_INT(cl_topology_find(t, "N10"), 1);
      CHECK_EQ_INT(cl_topology_find(t, "N9"), 9);
      CHECK_EQ_INT(cl_topology_find(t, "N11"), -1);
      CHECK_EQ_INT(cl_topology_find(t, ""), -1);
      /* Links: N1->N2 is (0,2), N10->N1 is (1,0), N9->N10 is (9,1). */
      CHECK_EQ_INT(t->links[0].src, 0);
      CHECK_EQ_INT(t->links[0].dst, 2);
      CHECK_EQ_INT(t->links[1].src, 1);
      CHECK_EQ_INT(t->links[1].dst, 0);
      CHECK(cl_topology_has_link(t, 9, 1));
      CHECK(cl_topology_has_link(t, 1, 0));
      CHECK(!cl_topology_has_link(t, 0, 1));
      CHECK(!cl_topology_has_link(t, 2, 0));
      CHECK(!cl_topology_has_link(t, 100, 0));
      /* The index names the link itself; -1 when there is none. */
      {
        long k = cl_topology_link(t, 9, 1);
        CHECK(k >= 0 && (size_t)k < t->nlinks);
        if (k >= 0 && (size_t)k < t->nlinks)
          CHECK(t->links[k].src == 9 && t->links[k].dst == 1);
        CHECK_EQ_INT(cl_topology_link(t, 0, 1), -1);
      }
      CHECK_EQ_INT(t->servers[1].tokens, 100);
    }
    cl_topology_free(t);
  }
  {
    cl_topology_t *t = load_top("3nodes.top");
    CHECK(t != NULL);
    if (t != NULL) {
      CHECK_EQ_STR(t->servers[1].id, "N2");
      CHECK_EQ_INT(t->servers[0].tokens, 10);
      CHECK_EQ_INT(t->servers[1].tokens, 3);
      CHECK_EQ_INT(t->servers[2].tokens, 0);
    }
    cl_topology_free(t);
  }
}

static void test_reference_events(void) {
  size_t i, j;
  for (i = 0; i < NELEM(ev_cases); i++) {
    char path[1024];
    cl_topology_t *t = load_top(ev_cases[i].top);
    cl_script_t *s = NULL;
    cl_diag_t d;
    size_t nsend = 0, nsnap = 0, ntick = 0;
    int64_t ticks = 0;
    int rc;
    CHECK(t != NULL);
    if (t == NULL)
      continue;
    cos_path(path, sizeof path, ev_cases[i].file);
    rc = cl_script_load(path, t, &s, &d);
    CHECK_EQ_INT(rc, 0);
    if (rc != 0) {
      fprintf(stderr, "%s:%d: %s\n", d.file, d.line, d.msg);
      cl_topology_free(t);
      continue;
    }
    CHECK_EQ_INT(s->nevents, ev_cases[i].nevents);
    CHECK_EQ_INT(s->nsnapshots, ev_cases[i].nsnap);
    for (j = 0; j < s->nevents; j++) {
      const cl_event_t *e = &s->events[j];
      /* None of the reference files has blank or comment lines. */
      CHECK_EQ_INT(e->line, (int)j + 1);
      if (e->kind == CL_EV_SEND) {
        nsend++;
        CHECK(e->n >= 1);
        CHECK(cl_topology_has_link(t, e->src, e->dst));
      } else if (e->kind == CL_EV_SNAPSHOT) {
        nsnap++;
        CHECK(e->src < t->nservers);
      } else {
        CHECK_EQ_INT(e->kind, CL_EV_TICK);
        ntick++;
        ticks += e->n;
      }
    }
    CHECK_EQ_INT(nsend, ev_cases[i].nsend);
    CHECK_EQ_INT(nsnap, ev_cases[i].nsnap);
    CHECK_EQ_INT(ntick, ev_cases[i].ntick);
    CHECK_EQ_INT(ticks, ev_cases[i].ticks);
    cl_script_free(s);
    cl_topology_free(t);
  }

  /* 3nodes-bidirectional-messages: line 1 `send N1 N2 3`, line 3
   * `snapshot N2`, line 10 `tick 3`, line 11 `send N3 N2 1`. */
  {
    char path[1024];
    cl_topology_t *t = load_top("3nodes.top");
    cl_script_t *s = NULL;
    cl_diag_t d;
    cos_path(path, sizeof path, "3nodes-bidirectional-messages.events");
    CHECK(t != NULL);
    if (t != NULL && cl_script_load(path, t, &s, &d) == 0) {
      CHECK_EQ_INT(s->events[0].kind, CL_EV_SEND);
      CHECK_EQ_INT(s->events[0].src, 0);
      CHECK_EQ_INT(s->events[0].dst, 1);
      CHECK_EQ_INT(s->events[0].n, 3);
      CHECK_EQ_INT(s->events[2].kind, CL_EV_SNAPSHOT);
      CHECK_EQ_INT(s->events[2].src, 1);
      CHECK_EQ_INT(s->events[9].kind, CL_EV_TICK);
      CHECK_EQ_INT(s->events[9].n, 3);
      CHECK_EQ_INT(s->events[10].src, 2);
      CHECK_EQ_INT(s->events[10].dst, 1);
      CHECK_EQ_INT(s->events[10].n, 1);
    } else {
      CHECK(0);
    }
    cl_script_free(s);
    cl_topology_free(t);
  }
}

static cl_snap_t *load_snap(const char *file) {
  char path[1024];
  cl_snap_t *s = NULL;
  cl_diag_t d;
  cos_path(path, sizeof path, file);
  if (cl_snap_load(path, &s, &d) != 0)
    fprintf(stderr, "%s:%d: %s\n", d.file, d.line, d.msg);
  return s;
}

static void test_reference_snaps(void) {
  size_t i, j;
  for (i = 0; i < NELEM(snap_cases); i++) {
    cl_snap_t *s = load_snap(snap_cases[i].file);
    cl_topology_t *t = load_top(snap_cases[i].top);
    int64_t st = 0, mt = 0;
    char why[256];
    CHECK(s != NULL && t != NULL);
    if (s == NULL || t == NULL) {
      cl_snap_free(s);
      cl_topology_free(t);
      continue;
    }
    CHECK_EQ_INT(s->id, snap_cases[i].id);
    CHECK_EQ_INT(s->nservers, snap_cases[i].nservers);
    CHECK_EQ_INT(s->nmsgs, snap_cases[i].nmsgs);
    for (j = 0; j < s->nservers; j++) {
      st += s->servers[j].tokens;
      /* Every snapshot lists exactly the topology's servers, sorted. */
      CHECK_EQ_STR(s->servers[j].id, t->servers[j].id);
    }
    for (j = 0; j < s->nmsgs; j++) {
      int a = cl_topology_find(t, s->msgs[j].src);
      int b = cl_topology_find(t, s->msgs[j].dst);
      mt += s->msgs[j].n;
      CHECK(a >= 0 && b >= 0 &&
            cl_topology_has_link(t, (uint32_t)a, (uint32_t)b));
    }
    CHECK_EQ_INT(st, snap_cases[i].server_tokens);
    CHECK_EQ_INT(mt, snap_cases[i].msg_tokens);
    /* The reference's conservation check holds for its own files. */
    CHECK_EQ_INT(st + mt, t->total_tokens);
    CHECK(cl_snap_equal(s, s, why, sizeof why));
    CHECK_EQ_STR(why, "");
    cl_snap_free(s);
    cl_topology_free(t);
  }

  /* Message order as in the file: token(3), token(2), token(1) to N2. */
  {
    cl_snap_t *s = load_snap("3nodes-bidirectional-messages.snap");
    CHECK(s != NULL);
    if (s != NULL) {
      CHECK_EQ_STR(s->msgs[0].src, "N1");
      CHECK_EQ_STR(s->msgs[0].dst, "N2");
      CHECK_EQ_INT(s->msgs[0].n, 3);
      CHECK_EQ_INT(s->msgs[1].n, 2);
      CHECK_EQ_INT(s->msgs[2].n, 1);
      CHECK_EQ_STR(s->servers[0].id, "N1");
      CHECK_EQ_INT(s->servers[0].tokens, 4);
      CHECK_EQ_INT(s->servers[2].tokens, 2);
    }
    cl_snap_free(s);
  }
}

/* Every .top/.events/.snap in the directory is covered by a table above, so
 * a file added to the suite cannot go untested silently. */
static void test_every_file_listed(void) {
  char path[1024];
  DIR *dir;
  struct dirent *de;
  size_t seen = 0;
  snprintf(path, sizeof path, "%s/cos418", conf_dir());
  dir = opendir(path);
  CHECK(dir != NULL);
  if (dir == NULL)
    return;
  while ((de = readdir(dir)) != NULL) {
    size_t i;
    int found = 0;
    if (ends_with(de->d_name, ".top")) {
      for (i = 0; i < NELEM(top_cases); i++)
        found |= strcmp(top_cases[i].file, de->d_name) == 0;
    } else if (ends_with(de->d_name, ".events")) {
      for (i = 0; i < NELEM(ev_cases); i++)
        found |= strcmp(ev_cases[i].file, de->d_name) == 0;
    } else if (ends_with(de->d_name, ".snap")) {
      for (i = 0; i < NELEM(snap_cases); i++)
        found |= strcmp(snap_cases[i].file, de->d_name) == 0;
    } else {
      continue;
    }
    seen++;
    if (!found)
      fprintf(stderr, "unlisted reference file %s\n", de->d_name);
    CHECK(found);
  }
  closedir(dir);
  CHECK_EQ_INT(seen, NELEM(top_cases) + NELEM(ev_cases) + NELEM(snap_cases));
}

/* ---- round trips -------------------------------------------------------- */

/* Write with fn into a memory buffer. Caller frees. */
static char *write_top(const cl_topology_t *t) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  CHECK_EQ_INT(cl_topology_write(t, f), 0);
  fclose(f);
  return buf;
}

static char *write_snap(const cl_snap_t *s) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  CHECK_EQ_INT(cl_snap_write(s, f), 0);
  fclose(f);
  return buf;
}

static void test_round_trips(void) {
  size_t i, j;
  for (i = 0; i < NELEM(top_cases); i++) {
    cl_topology_t *t = load_top(top_cases[i].file), *u = NULL;
    cl_diag_t d;
    char *text;
    CHECK(t != NULL);
    if (t == NULL)
      continue;
    text = write_top(t);
    CHECK_EQ_INT(cl_topology_parse("rt", text, &u, &d), 0);
    if (u != NULL) {
      CHECK_EQ_INT(u->nservers, t->nservers);
      CHECK_EQ_INT(u->nlinks, t->nlinks);
      CHECK_EQ_INT(u->total_tokens, t->total_tokens);
      for (j = 0; j < t->nservers && j < u->nservers; j++) {
        CHECK_EQ_STR(u->servers[j].id, t->servers[j].id);
        CHECK_EQ_INT(u->servers[j].tokens, t->servers[j].tokens);
      }
      for (j = 0; j < t->nlinks && j < u->nlinks; j++) {
        CHECK_EQ_INT(u->links[j].src, t->links[j].src);
        CHECK_EQ_INT(u->links[j].dst, t->links[j].dst);
      }
    }
    free(text);
    cl_topology_free(u);
    cl_topology_free(t);
  }

  /* Exact text for 2nodes: servers then links, sorted. */
  {
    cl_topology_t *t = load_top("2nodes.top");
    char *text = t ? write_top(t) : NULL;
    CHECK_EQ_STR(text, "2\nN1 1\nN2 0\nN1 N2\nN2 N1\n");
    free(text);
    cl_topology_free(t);
  }

  for (i = 0; i < NELEM(snap_cases); i++) {
    cl_snap_t *s = load_snap(snap_cases[i].file), *u = NULL;
    cl_diag_t d;
    char *text;
    char why[256];
    CHECK(s != NULL);
    if (s == NULL)
      continue;
    text = write_snap(s);
    CHECK_EQ_INT(cl_snap_parse("rt", text, &u, &d), 0);
    CHECK(u != NULL && cl_snap_equal(s, u, why, sizeof why));
    /* Every reference file has one destination (or none), so the writer
     * keeps message order and the text is identical to the file's. */
    {
      char path[1024], *orig = NULL;
      cos_path(path, sizeof path, snap_cases[i].file);
      CHECK_EQ_INT(cl_read_file(path, &orig, NULL, &d), 0);
      CHECK_EQ_STR(text, orig);
      free(orig);
    }
    free(text);
    cl_snap_free(u);
    cl_snap_free(s);
  }

  /* A snapshot built by hand, servers unsorted and messages interleaved:
   * the writer sorts servers and groups messages by destination in id
   * order, keeping each destination's order. */
  {
    cl_server_t sv[3] = {{"N3", 0}, {"N1", 1}, {"N2", 2}};
    cl_snap_msg_t m[4] = {{"N1", "N3", 5},
                          {"N3", "N1", 1},
                          {"N2", "N3", 4},
                          {"N2", "N1", 7}};
    cl_snap_t s;
    char *text;
    s.id = 12;
    s.nservers = 3;
    s.servers = sv;
    s.nmsgs = 4;
    s.msgs = m;
    text = write_snap(&s);
    CHECK_EQ_STR(text, "12\nN1 1\nN2 2\nN3 0\nN3 N1 token(1)\n"
                       "N2 N1 token(7)\nN1 N3 token(5)\nN2 N3 token(4)\n");
    free(text);
  }
}

/* ---- cl_snap_equal -------------------------------------------------------- */

static cl_snap_t *snap_of(const char *text) {
  cl_snap_t *s = NULL;
  cl_diag_t d;
  if (cl_snap_parse("t.in", text, &s, &d) != 0)
    fprintf(stderr, "snap_of: %d: %s\n", d.line, d.msg);
  CHECK(s != NULL);
  return s;
}

static const char *base_snap = "0\nN1 1\nN2 2\nN3 10\n"
                               "N1 N2 token(3)\nN2 N1 token(1)\n"
                               "N1 N2 token(2)\nN3 N1 token(4)\n";

/* Compare base_snap with text: expect `equal`, and when not equal a reason
 * containing `reason`. */
static void equal_case(int tline, const char *text, int equal,
                       const char *reason) {
  cl_snap_t *a = snap_of(base_snap), *b = snap_of(text);
  char why[256];
  int before = check_failed;
  if (a == NULL || b == NULL) {
    cl_snap_free(a);
    cl_snap_free(b);
    return;
  }
  strcpy(why, "unset");
  CHECK_EQ_INT(cl_snap_equal(a, b, why, sizeof why), equal);
  if (equal)
    CHECK_EQ_STR(why, "");
  else
    CHECK(strstr(why, reason) != NULL);
  /* Symmetric in its verdict. */
  CHECK_EQ_INT(cl_snap_equal(b, a, NULL, 0), equal);
  if (check_failed != before)
    fprintf(stderr, "  (equal case at test line %d: why=\"%s\")\n", tline,
            why);
  cl_snap_free(a);
  cl_snap_free(b);
}
#define EQUAL_CASE(text, eq, reason) equal_case(__LINE__, text, eq, reason)

static void test_snap_equal(void) {
  /* Same content; servers in another order; messages reordered across
   * destinations but each destination's order kept. */
  EQUAL_CASE(base_snap, 1, "");
  EQUAL_CASE("0\nN3 10\nN2 2\nN1 1\n"
             "N2 N1 token(1)\nN3 N1 token(4)\n"
             "N1 N2 token(3)\nN1 N2 token(2)\n",
             1, "");
  EQUAL_CASE("# comment\n0\r\nN1 1\r\nN2 2\r\nN3 10\r\n"
             "N3 N1 token(4)\nN1 N2 token(3)\nN1 N2 token(2)\n"
             "N2 N1 token(1)\n",
             0, "messages to N1 differ at position 1: N2 token(1) vs N3 "
                "token(4)");

  /* Each kind of difference, with its reason. */
  EQUAL_CASE("1\nN1 1\nN2 2\nN3 10\n"
             "N1 N2 token(3)\nN2 N1 token(1)\nN1 N2 token(2)\nN3 N1 token(4)\n",
             0, "snapshot id 0 vs 1");
  EQUAL_CASE("0\nN1 1\nN2 2\nN3 9\n"
             "N1 N2 token(3)\nN2 N1 token(1)\nN1 N2 token(2)\nN3 N1 token(4)\n",
             0, "server N3: 10 tokens vs 9");
  EQUAL_CASE("0\nN1 1\nN2 2\n"
             "N1 N2 token(3)\nN2 N1 token(1)\nN1 N2 token(2)\nN3 N1 token(4)\n",
             0, "server N3 only in the first");
  EQUAL_CASE("0\nN1 1\nN2 2\nN3 10\nN4 0\n"
             "N1 N2 token(3)\nN2 N1 token(1)\nN1 N2 token(2)\nN3 N1 token(4)\n",
             0, "server N4 only in the second");
  EQUAL_CASE("0\nN1 1\nN2 2\nN3 10\n"
             "N1 N2 token(3)\nN2 N1 token(1)\nN1 N2 token(2)\n",
             0, "4 recorded messages vs 3");
  EQUAL_CASE("0\nN1 1\nN2 2\nN3 10\n"
             "N1 N2 token(2)\nN2 N1 token(1)\nN1 N2 token(3)\nN3 N1 token(4)\n",
             0, "messages to N2 differ at position 1: N1 token(3) vs N1 "
                "token(2)");
  EQUAL_CASE("0\nN1 1\nN2 2\nN3 10\n"
             "N1 N2 token(3)\nN2 N1 token(1)\nN3 N2 token(2)\nN3 N1 token(4)\n",
             0, "messages to N2 differ at position 2: N1 token(2) vs N3 "
                "token(2)");
  EQUAL_CASE("0\nN1 1\nN2 2\nN3 10\n"
             "N1 N2 token(3)\nN2 N1 token(1)\nN1 N2 token(2)\nN3 N1 token(5)\n",
             0, "messages to N1 differ at position 2: N3 token(4) vs N3 "
                "token(5)");
  /* Same count, but one message moved to another destination. */
  EQUAL_CASE("0\nN1 1\nN2 2\nN3 10\n"
             "N1 N2 token(3)\nN2 N1 token(1)\nN1 N2 token(2)\nN1 N3 token(4)\n",
             0, "messages to N1 differ at position 2: N3 token(4) vs none");
}

/* ---- malformed input ---------------------------------------------------- */

static void test_top_errors(void) {
  /* Accepted: comments anywhere, CRLF, tabs, leading blanks, 2^40 tokens. */
  {
    cl_topology_t *t = NULL;
    cl_diag_t d;
    const char *text = "# header\r\n\r\n2\r\n  N2\t1099511627776\r\n"
                       "# mid\r\nN1 0 \r\n\t# drawing\r\nN2 N1\r\nN1\tN2";
    CHECK_EQ_INT(cl_topology_parse("t.in", text, &t, &d), 0);
    if (t != NULL) {
      CHECK_EQ_INT(t->nservers, 2);
      CHECK_EQ_INT(t->nlinks, 2);
      CHECK_EQ_STR(t->servers[0].id, "N1");
      CHECK_EQ_INT(t->total_tokens, (int64_t)1 << 40);
      CHECK_EQ_INT(t->links[0].src, 0);
      CHECK_EQ_INT(t->links[0].dst, 1);
    }
    cl_topology_free(t);
  }
  /* A single server without links is a valid topology. */
  {
    cl_topology_t *t = NULL;
    cl_diag_t d;
    CHECK_EQ_INT(cl_topology_parse("t.in", "1\nsolo 5\n", &t, &d), 0);
    CHECK(t != NULL && t->nservers == 1 && t->nlinks == 0);
    cl_topology_free(t);
  }

  TOP_BAD("", CL_EINVAL, 0, "empty");
  TOP_BAD("# nothing\n\n", CL_EINVAL, 2, "empty");
  TOP_BAD("two\nN1 1\n", CL_EINVAL, 1, "invalid server count 'two'");
  TOP_BAD("\n2 3\nN1 1\n", CL_EINVAL, 2, "alone");
  TOP_BAD("0\n", CL_ERANGE, 1, "out of range");
  TOP_BAD("4097\n", CL_ERANGE, 1, "out of range");
  TOP_BAD("-1\n", CL_ERANGE, 1, "out of range");
  TOP_BAD("99999999999999999999999\n", CL_ERANGE, 1, "out of range");
  TOP_BAD("8\nN1 1\nN2 1\nN3 1\nN4 1\nN5 1\n", CL_EINVAL, 6,
          "expected 8 servers, found 5");
  TOP_BAD("3\nN1 1\n# trailing comment\n", CL_EINVAL, 3,
          "expected 3 servers, found 1");
  TOP_BAD("3\nN1 1\nN2 1\nN1 N2\nN2 N1\n", CL_EINVAL, 4,
          "expected 3 servers, found 2");
  TOP_BAD("2\nN1 1 5\nN2 0\n", CL_EINVAL, 2, "ID TOKENS");
  TOP_BAD("2\nN1\nN2 0\n", CL_EINVAL, 2, "ID TOKENS");
  TOP_BAD("2\nN/1 1\nN2 0\n", CL_EINVAL, 2, "invalid server id 'N/1'");
  TOP_BAD("2\nN1 1\n"
          "N1234567890123456789012345678901234567890123456789012345678901234"
          " 0\n",
          CL_EINVAL, 3, "invalid server id");
  TOP_BAD("3\nN1 1\n\nN3 0\nN3 5\n", CL_EDUP, 5,
          "duplicate server id N3 (first on line 4)");
  TOP_BAD("2\nN1 x\nN2 0\n", CL_EINVAL, 2, "invalid token count 'x'");
  TOP_BAD("2\nN1 1.5\nN2 0\n", CL_EINVAL, 2, "invalid token count");
  TOP_BAD("2\nN1 -5\nN2 0\n", CL_ERANGE, 2, "negative");
  TOP_BAD("2\nN1 1\nN2 1099511627777\n", CL_ERANGE, 3, "exceeds");
  TOP_BAD("2\nN1 1\nN2 123456789012345678901234567890\n", CL_ERANGE, 3,
          "exceeds");
  TOP_BAD("2\nN1 1\nN2 0\nN1 N2 N3\n", CL_EINVAL, 4, "SRC DEST");
  TOP_BAD("2\nN1 1\nN2 0\nN1\n", CL_EINVAL, 4, "SRC DEST");
  TOP_BAD("2\nN1 1\nN2 0\nN1 N9\n", CL_ENOENT, 4, "unknown server N9");
  TOP_BAD("2\nN1 1\nN2 0\nN9 N1\n", CL_ENOENT, 4, "unknown server N9");
  TOP_BAD("2\nN1 1\nN2 0\nN1 N2\nN2 N2\n", CL_EINVAL, 5, "self-link");
  TOP_BAD("2\nN1 1\nN2 0\nN1 N2\nN2 N1\n# x\nN1 N2\n", CL_EDUP, 7,
          "duplicate link N1->N2 (first on line 4)");
  TOP_BAD("2\nN1 1\nN2 0\nN1 N/2\n", CL_EINVAL, 4, "invalid server id");

  /* The largest topology: CL_SERVERS_MAX servers in a bidirectional ring. */
  {
    size_t cap = 40 * (3 * CL_SERVERS_MAX + 1), o = 0;
    char *text = malloc(cap);
    cl_topology_t *t = NULL;
    cl_diag_t d;
    int i;
    o += (size_t)snprintf(text + o, cap - o, "%d\n", CL_SERVERS_MAX);
    for (i = 0; i < CL_SERVERS_MAX; i++)
      o += (size_t)snprintf(text + o, cap - o, "S%d %d\n", i, i % 3);
    for (i = 0; i < CL_SERVERS_MAX; i++)
      o += (size_t)snprintf(text + o, cap - o, "S%d S%d\nS%d S%d\n", i,
                            (i + 1) % CL_SERVERS_MAX, (i + 1) % CL_SERVERS_MAX,
                            i);
    CHECK_EQ_INT(cl_topology_parse("t.in", text, &t, &d), 0);
    if (t != NULL) {
      int a = cl_topology_find(t, "S4095"), b = cl_topology_find(t, "S0");
      CHECK_EQ_INT(t->nservers, CL_SERVERS_MAX);
      CHECK_EQ_INT(t->nlinks, 2 * CL_SERVERS_MAX);
      /* i % 3 over 0..4095: 1366 zeros (0, 3, ..., 4095), 1365 ones and
       * 1365 twos, so 1365 + 2730. */
      CHECK_EQ_INT(t->total_tokens, 4095);
      CHECK(a >= 0 && b >= 0);
      CHECK(cl_topology_has_link(t, (uint32_t)a, (uint32_t)b));
      CHECK(cl_topology_has_link(t, (uint32_t)b, (uint32_t)a));
    }
    cl_topology_free(t);
    free(text);
  }
}

static void test_event_errors(void) {
  /* Accepted forms, with comments and CRLF; lines are physical lines. */
  {
    cl_topology_t *t = NULL;
    cl_script_t *s = NULL;
    cl_diag_t d;
    CHECK_EQ_INT(cl_topology_parse("top", ev_top, &t, &d), 0);
    CHECK_EQ_INT(cl_script_parse("t.in",
                                 "# start\r\nsend N1 N3 5\r\n\r\n"
                                 "  snapshot\tN3\ntick\ntick 1000000000\n"
                                 "snapshot N1",
                                 t, &s, &d),
                 0);
    if (s != NULL) {
      CHECK_EQ_INT(s->nevents, 5);
      CHECK_EQ_INT(s->nsnapshots, 2);
      CHECK_EQ_INT(s->events[0].kind, CL_EV_SEND);
      CHECK_EQ_INT(s->events[0].line, 2);
      CHECK_EQ_INT(s->events[0].src, 0);
      CHECK_EQ_INT(s->events[0].dst, 2);
      CHECK_EQ_INT(s->events[0].n, 5);
      CHECK_EQ_INT(s->events[1].kind, CL_EV_SNAPSHOT);
      CHECK_EQ_INT(s->events[1].line, 4);
      CHECK_EQ_INT(s->events[1].src, 2);
      CHECK_EQ_INT(s->events[2].n, 1);
      CHECK_EQ_INT(s->events[3].n, 1000000000);
      CHECK_EQ_INT(s->events[4].line, 7);
    }
    cl_script_free(s);
    s = NULL;
    /* An empty script is valid. */
    CHECK_EQ_INT(cl_script_parse("t.in", "# nothing\n", t, &s, &d), 0);
    CHECK(s != NULL && s->nevents == 0 && s->nsnapshots == 0);
    cl_script_free(s);
    cl_topology_free(t);
  }

  EV_BAD("tick\nfoo N1\n", CL_EINVAL, 2, "unknown event 'foo'");
  EV_BAD("Send N1 N2 1\n", CL_EINVAL, 1, "unknown event 'Send'");
  EV_BAD("send N1 N2\n", CL_EINVAL, 1, "send SRC DEST N");
  EV_BAD("send N1 N2 1 2\n", CL_EINVAL, 1, "send SRC DEST N");
  EV_BAD("send N1 N2 x\n", CL_EINVAL, 1, "invalid token count 'x'");
  EV_BAD("send N1 N2 0\n", CL_ERANGE, 1, "out of range");
  EV_BAD("send N1 N2 -3\n", CL_ERANGE, 1, "out of range");
  EV_BAD("send N9 N2 1\n", CL_ENOENT, 1, "unknown server N9");
  EV_BAD("\nsend N1 N9 1\n", CL_ENOENT, 2, "unknown server N9");
  EV_BAD("send N1 N$ 1\n", CL_EINVAL, 1, "invalid server id 'N$'");
  EV_BAD("tick\n# c\nsend N3 N1 1\n", CL_ENOPEER, 3,
         "no link N3->N1 in topology");
  EV_BAD("send N1 N1 1\n", CL_ENOPEER, 1, "no link N1->N1");
  EV_BAD("snapshot\n", CL_EINVAL, 1, "snapshot ID");
  EV_BAD("snapshot N1 N2\n", CL_EINVAL, 1, "snapshot ID");
  EV_BAD("snapshot N7\n", CL_ENOENT, 1, "unknown server N7");
  EV_BAD("tick 0\n", CL_ERANGE, 1, "out of range");
  EV_BAD("tick 1000000001\n", CL_ERANGE, 1, "out of range");
  EV_BAD("tick x\n", CL_EINVAL, 1, "invalid tick count 'x'");
  EV_BAD("tick 1 2\n", CL_EINVAL, 1, "tick N");

  /* The event cap: CL_EVENTS_MAX events pass, one more is refused at its
   * line. Only when asked (CLSNAP_SLOW_TESTS=1): the script takes ~250 MB. */
  if (getenv("CLSNAP_SLOW_TESTS") != NULL) {
    size_t n = (size_t)CL_EVENTS_MAX + 1, i;
    char *text = malloc(n * 5 + 1);
    cl_topology_t *t = NULL;
    cl_script_t *s = NULL;
    cl_diag_t d;
    CHECK(text != NULL);
    CHECK_EQ_INT(cl_topology_parse("top", ev_top, &t, &d), 0);
    for (i = 0; text != NULL && i < n; i++)
      memcpy(text + i * 5, "tick\n", 5);
    if (text != NULL) {
      text[n * 5] = '\0';
      memset(&d, 0, sizeof d);
      CHECK_EQ_INT(cl_script_parse("t.in", text, t, &s, &d), CL_ETOOBIG);
      CHECK_EQ_INT(d.line, CL_EVENTS_MAX + 1);
      CHECK(strstr(d.msg, "more than") != NULL);
      text[(n - 1) * 5] = '\0';
      CHECK_EQ_INT(cl_script_parse("t.in", text, t, &s, &d), 0);
      CHECK(s != NULL && s->nevents == (size_t)CL_EVENTS_MAX);
      cl_script_free(s);
    }
    free(text);
    cl_topology_free(t);
  }
}

static void test_snap_errors(void) {
  /* Accepted: comments, CRLF, tabs, no messages. */
  {
    cl_snap_t *s = NULL;
    cl_diag_t d;
    CHECK_EQ_INT(cl_snap_parse("t.in",
                               "# c\r\n18446744073709551615\r\nN2\t3\r\n"
                               "N1 4\r\n# m\r\nN2 N1 token(1099511627776)\r\n",
                               &s, &d),
                 0);
    if (s != NULL) {
      CHECK(s->id == UINT64_MAX);
      CHECK_EQ_INT(s->nservers, 2);
      CHECK_EQ_STR(s->servers[0].id, "N1");
      CHECK_EQ_INT(s->servers[0].tokens, 4);
      CHECK_EQ_INT(s->nmsgs, 1);
      CHECK_EQ_INT(s->msgs[0].n, (int64_t)1 << 40);
    }
    cl_snap_free(s);
  }

  SNAP_BAD("", CL_EINVAL, 0, "empty");
  SNAP_BAD("# only\n", CL_EINVAL, 1, "empty");
  SNAP_BAD("x\nN1 1\n", CL_EINVAL, 1, "invalid snapshot id 'x'");
  SNAP_BAD("-1\nN1 1\n", CL_EINVAL, 1, "invalid snapshot id");
  SNAP_BAD("18446744073709551616\nN1 1\n", CL_EINVAL, 1,
           "invalid snapshot id");
  SNAP_BAD("0 1\nN1 1\n", CL_EINVAL, 1, "alone");
  SNAP_BAD("0\n", CL_EINVAL, 1, "no server lines");
  SNAP_BAD("0\nN1 1\nN2 0\nN1 N2 token(1)\nN3 0\n", CL_EINVAL, 5,
           "server line after the messages (first message on line 4)");
  SNAP_BAD("0\nN1 1\n\nN1 0\n", CL_EDUP, 4, "duplicate server N1 (first on "
                                           "line 2)");
  SNAP_BAD("0\nN1 1\nN1 N2 token3\n", CL_EINVAL, 3, "token(N)");
  SNAP_BAD("0\nN1 1\nN1 N2 token(x)\n", CL_EINVAL, 3, "token(N)");
  SNAP_BAD("0\nN1 1\nN1 N2 token()\n", CL_EINVAL, 3, "token(N)");
  SNAP_BAD("0\nN1 1\nN1 N2 token(3\n", CL_EINVAL, 3, "token(N)");
  SNAP_BAD("0\nN1 1\nN1 N2 tok(3)\n", CL_EINVAL, 3, "token(N)");
  SNAP_BAD("0\nN1 1\nN1 N2 token(0)\n", CL_ERANGE, 3, "out of range");
  SNAP_BAD("0\nN1 1\nN1 N2 token(1099511627777)\n", CL_ERANGE, 3,
           "out of range");
  SNAP_BAD("0\nN1 1\nN1 N2 token (3)\n", CL_EINVAL, 3, "found 4 fields");
  SNAP_BAD("0\nN1\n", CL_EINVAL, 2, "found 1 fields");
  SNAP_BAD("0\nN1 x\n", CL_EINVAL, 2, "invalid token count");
  SNAP_BAD("0\nN1 -1\n", CL_ERANGE, 2, "negative");
  SNAP_BAD("0\nN1 1\nN1 N:2 token(1)\n", CL_EINVAL, 3, "invalid server id");

  /* CL_SERVERS_MAX servers pass; one more is refused at its line. */
  {
    size_t cap = 16 * (CL_SERVERS_MAX + 2), o = 0;
    char *text = malloc(cap);
    cl_snap_t *sn = NULL;
    cl_diag_t d;
    int i, rc;
    o += (size_t)snprintf(text + o, cap - o, "7\n");
    for (i = 0; i < CL_SERVERS_MAX; i++)
      o += (size_t)snprintf(text + o, cap - o, "S%d 1\n", i);
    rc = cl_snap_parse("t.in", text, &sn, &d);
    CHECK_EQ_INT(rc, 0);
    CHECK(sn != NULL && sn->nservers == CL_SERVERS_MAX);
    cl_snap_free(sn);
    sn = NULL;
    snprintf(text + o, cap - o, "extra 1\n");
    memset(&d, 0, sizeof d);
    rc = cl_snap_parse("t.in", text, &sn, &d);
    CHECK_EQ_INT(rc, CL_ERANGE);
    CHECK_EQ_INT(d.line, CL_SERVERS_MAX + 2);
    CHECK(strstr(d.msg, "more than 4096 servers") != NULL);
    CHECK(sn == NULL);
    free(text);
  }
}

/* ---- files -------------------------------------------------------------- */

static void write_tmp(const char *path, const char *data, size_t len) {
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  if (f != NULL) {
    CHECK_EQ_INT(fwrite(data, 1, len, f), len);
    fclose(f);
  }
}

static void test_files(void) {
  char dir[] = "/tmp/clsnap-scen-XXXXXX", path[256];
  cl_diag_t d;
  char *buf = NULL;
  size_t len = 99;
  cl_topology_t *t = NULL;
  FILE *f;

  CHECK(mkdtemp(dir) != NULL);

  snprintf(path, sizeof path, "%s/missing.top", dir);
  memset(&d, 0, sizeof d);
  CHECK_EQ_INT(cl_read_file(path, &buf, &len, &d), CL_EIO);
  CHECK(buf == NULL);
  CHECK_EQ_INT(d.line, 0);
  CHECK_EQ_STR(d.file, path);
  CHECK(strstr(d.msg, "cannot open") != NULL);
  CHECK_EQ_INT(cl_topology_load(path, &t, &d), CL_EIO);
  CHECK(t == NULL);

  snprintf(path, sizeof path, "%s/ok.top", dir);
  write_tmp(path, "1\nA 1\n", 6);
  CHECK_EQ_INT(cl_read_file(path, &buf, &len, &d), 0);
  CHECK_EQ_INT(len, 6);
  CHECK_EQ_STR(buf, "1\nA 1\n");
  free(buf);
  buf = NULL;
  CHECK_EQ_INT(cl_topology_load(path, &t, &d), 0);
  CHECK(t != NULL && t->nservers == 1);
  cl_topology_free(t);
  t = NULL;

  snprintf(path, sizeof path, "%s/empty.top", dir);
  write_tmp(path, "", 0);
  CHECK_EQ_INT(cl_read_file(path, &buf, &len, &d), 0);
  CHECK_EQ_INT(len, 0);
  CHECK(buf != NULL && buf[0] == '\0');
  free(buf);
  buf = NULL;
  /* The loader's diagnostics name the file. */
  CHECK_EQ_INT(cl_topology_load(path, &t, &d), CL_EINVAL);
  CHECK_EQ_STR(d.file, path);

  snprintf(path, sizeof path, "%s/nul.top", dir);
  write_tmp(path, "2\nN1 1\n\nN2 \0 0\n", 15);
  memset(&d, 0, sizeof d);
  CHECK_EQ_INT(cl_read_file(path, &buf, &len, &d), CL_EIO);
  CHECK(buf == NULL);
  CHECK_EQ_INT(d.line, 4);
  CHECK(strstr(d.msg, "NUL") != NULL);
  CHECK_EQ_INT(cl_topology_load(path, &t, &d), CL_EIO);
  CHECK_EQ_INT(d.line, 4);
  CHECK(t == NULL);
  {
    cl_snap_t *s = NULL;
    cl_script_t *sc = NULL;
    CHECK_EQ_INT(cl_snap_load(path, &s, &d), CL_EIO);
    CHECK(s == NULL);
    t = load_top("2nodes.top");
    CHECK_EQ_INT(cl_script_load(path, t, &sc, &d), CL_EIO);
    CHECK(sc == NULL);
    cl_topology_free(t);
    t = NULL;
  }

  /* One byte over the cap, as a sparse file. */
  snprintf(path, sizeof path, "%s/big.top", dir);
  f = fopen(path, "wb");
  CHECK(f != NULL);
  if (f != NULL) {
    CHECK_EQ_INT(ftruncate(fileno(f), (off_t)CL_FILE_MAX + 1), 0);
    fclose(f);
    memset(&d, 0, sizeof d);
    CHECK_EQ_INT(cl_read_file(path, &buf, &len, &d), CL_EIO);
    CHECK(buf == NULL);
    CHECK(strstr(d.msg, "larger than 256 MiB") != NULL);
    unlink(path);
  }

  /* A directory is not a readable text file. */
  memset(&d, 0, sizeof d);
  CHECK_EQ_INT(cl_read_file(dir, &buf, &len, &d), CL_EIO);
  CHECK(buf == NULL);

  snprintf(path, sizeof path, "%s/missing.top", dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/ok.top", dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/empty.top", dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/nul.top", dir);
  unlink(path);
  CHECK_EQ_INT(rmdir(dir), 0);
}

static void test_diag_format(void) {
  cl_diag_t d;
  char buf[64];
  memset(&d, 0, sizeof d);
  strcpy(d.file, "a.top");
  d.line = 3;
  strcpy(d.msg, "self-link N1->N1 is not allowed");
  cl_diag_format(&d, buf, sizeof buf);
  CHECK_EQ_STR(buf, "a.top:3: self-link N1->N1 is not allowed");
  d.line = 0;
  cl_diag_format(&d, buf, sizeof buf);
  CHECK_EQ_STR(buf, "a.top: self-link N1->N1 is not allowed");
  /* Truncated, never overflowing. */
  cl_diag_format(&d, buf, 8);
  CHECK_EQ_STR(buf, "a.top: ");
  cl_diag_format(&d, buf, 0);
}

/* ---- robustness ----------------------------------------------------------- */

/* Every prefix of every reference file, and random line noise, must either
 * parse or fail with a diagnostic; nothing may crash or leak. */
static void test_no_crash(void) {
  static const char *files[] = {"8nodes.top", "10nodes.events",
                                "3nodes-bidirectional-messages.snap"};
  static const char alphabet[] = "N1 0-#\n\r\ttoken()sndapshick9\\x";
  cl_topology_t *topo = load_top("10nodes.top");
  size_t fi, cut, iter;
  uint32_t seed = 12345;
  CHECK(topo != NULL);
  for (fi = 0; fi < NELEM(files) && topo != NULL; fi++) {
    char path[1024], *text = NULL;
    size_t len = 0;
    cl_diag_t d;
    cos_path(path, sizeof path, files[fi]);
    CHECK_EQ_INT(cl_read_file(path, &text, &len, &d), 0);
    for (cut = 0; text != NULL && cut <= len; cut++) {
      char *pre = malloc(cut + 1);
      cl_topology_t *t = NULL;
      cl_script_t *s = NULL;
      cl_snap_t *sn = NULL;
      int rc;
      memcpy(pre, text, cut);
      pre[cut] = '\0';
      memset(&d, 0, sizeof d);
      rc = cl_topology_parse("t.in", pre, &t, &d);
      CHECK(rc == 0 ? t != NULL : (t == NULL && d.msg[0] != '\0'));
      rc = cl_script_parse("t.in", pre, topo, &s, &d);
      CHECK(rc == 0 ? s != NULL : (s == NULL && d.msg[0] != '\0'));
      rc = cl_snap_parse("t.in", pre, &sn, &d);
      CHECK(rc == 0 ? sn != NULL : (sn == NULL && d.msg[0] != '\0'));
      cl_topology_free(t);
      cl_script_free(s);
      cl_snap_free(sn);
      free(pre);
    }
    free(text);
  }
  for (iter = 0; iter < 3000 && topo != NULL; iter++) {
    char text[200];
    size_t n, i;
    cl_topology_t *t = NULL;
    cl_script_t *s = NULL;
    cl_snap_t *sn = NULL;
    cl_diag_t d;
    seed = seed * 1103515245u + 12345u;
    n = (seed >> 16) % (sizeof text - 1);
    for (i = 0; i < n; i++) {
      seed = seed * 1103515245u + 12345u;
      /* Mostly plausible characters, sometimes any non-NUL byte. */
      if ((seed >> 16) % 8 == 0)
        text[i] = (char)(1 + (seed >> 20) % 255);
      else
        text[i] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
    }
    text[n] = '\0';
    if (cl_topology_parse("t.in", text, &t, &d) != 0)
      CHECK(t == NULL && d.line >= 0);
    if (cl_script_parse("t.in", text, topo, &s, &d) != 0)
      CHECK(s == NULL && d.line >= 0);
    if (cl_snap_parse("t.in", text, &sn, &d) != 0)
      CHECK(sn == NULL && d.line >= 0);
    cl_topology_free(t);
    cl_script_free(s);
    cl_snap_free(sn);
  }
  cl_topology_free(topo);
}

int main(void) {
  test_reference_tops();
  test_reference_events();
  test_reference_snaps();
  test_every_file_listed();
  test_round_trips();
  test_snap_equal();
  test_top_errors();
  test_event_errors();
  test_snap_errors();
  test_files();
  test_diag_format();
  test_no_crash();
  return check_done("scenario");
}
