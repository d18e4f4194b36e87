/* Unit tests of the snapshot store (coordinator/store/store.c): a record
 * read back equals what was written; damage of every kind is named; the
 * numbering follows reservations and skips crashed ones; retention keeps
 * exactly the newest N of each kind; and a crash at every step of a write
 * (a child killed by the CLSNAP_STORE_CRASH hook) leaves the whole
 * snapshot or nothing that claims to be one. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "check.h"
#include "error.h"
#include "store.h"
#include "util.h"

static char root[256];

/* A fresh empty directory under root. */
static void fresh_dir(char *dir, size_t size, const char *name) {
  char cmd[600];
  snprintf(dir, size, "%s/%s", root, name);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    exit(1);
}

/* A server's state with one channel each way to peer. */
static void fill_state(cl_local_state_t *st, const char *self, int64_t tokens,
                       int64_t initial, const char *peer, uint64_t sent,
                       uint64_t received) {
  snprintf(st->server, sizeof st->server, "%s", self);
  st->tokens = tokens;
  st->initial_tokens = initial;
  st->nsent = st->nrecv = 1;
  st->sent = calloc(1, sizeof *st->sent);
  st->recv = calloc(1, sizeof *st->recv);
  snprintf(st->sent[0].peer, sizeof st->sent[0].peer, "%s", peer);
  snprintf(st->recv[0].peer, sizeof st->recv[0].peer, "%s", peer);
  st->sent[0].count = sent;
  st->recv[0].count = received;
}

/* A two-server record: N1 holds 3, N2 holds 4, and N2 recorded two runs
 * from N1 (seq 5..6 of 1 token, seq 7 of 2 tokens): 10 tokens in all. */
static void make_record(cl_stored_t *rec, uint64_t id, int status) {
  cl_local_state_t *st;
  memset(rec, 0, sizeof *rec);
  rec->id = id;
  snprintf(rec->initiator, sizeof rec->initiator, "N1");
  rec->status = status;
  if (status != CL_STORED_COMPLETED)
    snprintf(rec->reason, sizeof rec->reason, "N2 did not complete in 1 s");
  rec->trigger_us = 1796361153123456;
  rec->completion_us = status == CL_STORED_COMPLETED ? 1796361153125001 : 0;
  rec->duration_us = 1545;
  rec->topology = strdup("2\nN1 6\nN2 4\nN1 N2\nN2 N1\n");
  rec->nstates = 2;
  rec->states = calloc(2, sizeof *st);
  fill_state(&rec->states[0], "N1", 3, 6, "N2", 7, 2);
  fill_state(&rec->states[1], "N2", 4, 4, "N1", 2, 4);
  st = &rec->states[1];
  st->nrecorded = 2;
  st->recorded = calloc(2, sizeof *st->recorded);
  snprintf(st->recorded[0].src, CL_ID_SIZE, "N1");
  st->recorded[0].seq = 5;
  st->recorded[0].count = 2;
  st->recorded[0].n = 1;
  snprintf(st->recorded[1].src, CL_ID_SIZE, "N1");
  st->recorded[1].seq = 7;
  st->recorded[1].count = 1;
  st->recorded[1].n = 2;
  rec->checked = status == CL_STORED_COMPLETED;
  rec->verdict.ok = rec->verdict.complete = rec->verdict.conserved =
      rec->verdict.channels_exact = rec->checked;
  rec->verdict.expected_tokens = 10;
  rec->verdict.server_tokens = 7;
  rec->verdict.channel_tokens = 3;
  rec->verdict.nrecorded = 3;
}

/* Store one record; returns its seq (0 on failure). */
static uint64_t put(cl_store_t *s, uint64_t id, int status, uint64_t keep) {
  cl_stored_t rec;
  char why[512];
  uint64_t seq;
  int r;
  make_record(&rec, id, status);
  r = cl_store_put(s, &rec, keep, why, sizeof why);
  if (r != 0)
    fprintf(stderr, "put: %s\n", why);
  CHECK_EQ_INT(r, 0);
  seq = rec.seq;
  cl_store_record_free(&rec);
  return r == 0 ? seq : 0;
}

/* Written, then read back: every field as it was. */
static void test_round_trip(void) {
  char dir[512], why[512];
  cl_store_t *s;
  cl_stored_t w, r;
  struct stat st;
  fresh_dir(dir, sizeof dir, "roundtrip/deeper");
  CHECK_EQ_INT(cl_store_open(dir, &s, why, sizeof why), 0);
  make_record(&w, 1000004, CL_STORED_COMPLETED);
  CHECK_EQ_INT(cl_store_put(s, &w, 0, why, sizeof why), 0);
  CHECK_EQ_INT((int)w.seq, 1);
  CHECK(strstr(w.path, "/000001-completed.json") != NULL);
  CHECK_EQ_INT(stat(w.path, &st), 0);
  CHECK_EQ_INT((int)st.st_size, (int)w.size);
  CHECK_EQ_INT(cl_store_read(w.path, &r, why, sizeof why), 0);
  CHECK_EQ_INT((int)r.seq, 1);
  CHECK(r.id == 1000004);
  CHECK_EQ_STR(r.initiator, "N1");
  CHECK_EQ_INT(r.status, CL_STORED_COMPLETED);
  CHECK_EQ_STR(r.reason, "");
  CHECK(r.trigger_us == w.trigger_us);
  CHECK(r.completion_us == w.completion_us);
  CHECK(r.duration_us == 1545);
  CHECK_EQ_STR(r.topology, w.topology);
  CHECK_EQ_STR(r.topology_sha256, w.topology_sha256);
  CHECK_EQ_STR(r.sha256, w.sha256);
  CHECK_EQ_INT(r.checked, 1);
  CHECK_EQ_INT(r.verdict.ok, 1);
  CHECK(r.verdict.server_tokens == 7 && r.verdict.channel_tokens == 3);
  CHECK_EQ_INT((int)r.nstates, 2);
  CHECK_EQ_STR(r.states[1].server, "N2");
  CHECK_EQ_INT((int)r.states[1].nrecorded, 2);
  CHECK(r.states[1].recorded[0].seq == 5 && r.states[1].recorded[0].count == 2);
  CHECK(r.states[1].recorded[1].n == 2);
  CHECK(r.states[0].sent[0].count == 7 && r.states[1].recv[0].count == 4);
  CHECK(r.states[1].snapshot_id == 1000004);
  cl_store_record_free(&r);
  cl_store_record_free(&w);
  /* A timed-out entry: no completion, no verdict, its reason. */
  make_record(&w, 1000005, CL_STORED_TIMED_OUT);
  CHECK_EQ_INT(cl_store_put(s, &w, 0, why, sizeof why), 0);
  CHECK(strstr(w.path, "/000002-timed_out.json") != NULL);
  CHECK_EQ_INT(cl_store_read(w.path, &r, why, sizeof why), 0);
  CHECK_EQ_INT(r.status, CL_STORED_TIMED_OUT);
  CHECK(r.completion_us == 0 && r.checked == 0);
  CHECK_EQ_STR(r.reason, "N2 did not complete in 1 s");
  cl_store_record_free(&r);
  cl_store_record_free(&w);
  cl_store_close(s);
}

/* Rewrite path with fn applied to its bytes. */
static void mangle(const char *path, void (*fn)(char *, size_t *)) {
  FILE *f = fopen(path, "rb");
  char *buf = malloc(1 << 20);
  size_t n = fread(buf, 1, 1 << 20, f);
  fclose(f);
  fn(buf, &n);
  f = fopen(path, "wb");
  fwrite(buf, 1, n, f);
  fclose(f);
  free(buf);
}
static void flip_body(char *b, size_t *n) { b[*n - 20] ^= 0x01; }
static void flip_sum(char *b, size_t *n) {
  (void)n;
  b[45] = b[45] == 'a' ? 'b' : 'a';
}
static void truncate_half(char *b, size_t *n) {
  (void)b;
  *n /= 2;
}
static void not_ours(char *b, size_t *n) {
  memcpy(b, "hello", 5);
  *n = 5;
}

/* Replace the first `from` in the body of the file at path by `to` and
 * write a fresh checksum: an edit that a checksum cannot see, which the
 * field checks must. */
static void edit_body(const char *path, const char *from, const char *to) {
  static const char head[] = "{\"format\":\"clsnap-snapshot-1\",\"sha256\":\"";
  FILE *f = fopen(path, "rb");
  char *buf = calloc(1, 1 << 20), *out = calloc(1, 1 << 20), *at, *body;
  unsigned char h[crypto_hash_sha256_BYTES];
  size_t n = fread(buf, 1, (1 << 20) - 1, f), hl = sizeof head - 1, blen;
  fclose(f);
  at = strstr(buf, from);
  if (at == NULL) {
    fprintf(stderr, "edit_body: %s not in %s\n", from, path);
    exit(1);
  }
  snprintf(out, 1 << 20, "%.*s%s%s", (int)(at - buf), buf, to,
           at + strlen(from));
  n = strlen(out);
  body = out + hl + 64 + strlen("\",\"snapshot\":");
  blen = (size_t)(out + n - 2 - body);
  crypto_hash_sha256(h, (unsigned char *)body, blen);
  sodium_bin2hex(buf, 65, h, sizeof h);
  memcpy(out + hl, buf, 64);
  f = fopen(path, "wb");
  fwrite(out, 1, n, f);
  fclose(f);
  free(buf);
  free(out);
}

/* Edits with a recomputed checksum: each named by its field. */
static void test_edited_fields(void) {
  static const struct {
    const char *from, *to, *says;
  } cases[] = {
      {"\"status\":\"completed\"", "\"status\":\"done\"", "bad field status"},
      {"\"recorded\":[[\"N1\",5,2,1]", "\"recorded\":[[\"N1\",5,0,1]",
       "bad field states[1].recorded"},
      {"\"tokens\":3", "\"tokens\":-3", "bad field states[0].tokens"},
      {"\"ok\":true", "\"ok\":1", "bad field verdict"},
      {"N1 6\\n", "N1 7\\n", "its text does not match its sha256"},
      {"\"trigger_time\":\"2026-12-04", "\"trigger_time\":\"2026-13-04",
       "bad field trigger_time"},
      {"\"seq\":1,", "\"seq\":2,", "its name says seq 1"},
  };
  char dir[512], why[512], path[1024];
  cl_store_t *s;
  cl_stored_t r;
  size_t i;
  fresh_dir(dir, sizeof dir, "edited");
  CHECK_EQ_INT(cl_store_open(dir, &s, why, sizeof why), 0);
  put(s, 1, CL_STORED_COMPLETED, 0);
  snprintf(path, sizeof path, "%s/000001-completed.json", dir);
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char cmd[2200];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s.orig'", path, path);
    CHECK_EQ_INT(system(cmd), 0);
    edit_body(path, cases[i].from, cases[i].to);
    CHECK_EQ_INT(cl_store_read(path, &r, why, sizeof why), CL_EINVAL);
    if (strstr(why, cases[i].says) == NULL)
      fprintf(stderr, "edit %zu: %s\n", i, why);
    CHECK(strstr(why, cases[i].says) != NULL);
    CHECK(r.states == NULL && r.topology == NULL);
    snprintf(cmd, sizeof cmd, "mv '%s.orig' '%s'", path, path);
    CHECK_EQ_INT(system(cmd), 0);
    CHECK_EQ_INT(cl_store_read(path, &r, why, sizeof why), 0);
    cl_store_record_free(&r);
  }
  cl_store_close(s);
}

/* Each kind of damage is named, and the record comes back empty. */
static void test_damage(void) {
  static const struct {
    void (*fn)(char *, size_t *);
    const char *says;
  } cases[] = {{flip_body, "checksum mismatch"},
               {flip_sum, "checksum mismatch"},
               {truncate_half, "truncated"},
               {not_ours, "not a clsnap snapshot file"}};
  char dir[512], why[512], path[1024];
  cl_store_t *s;
  cl_stored_t r;
  size_t i;
  fresh_dir(dir, sizeof dir, "damage");
  CHECK_EQ_INT(cl_store_open(dir, &s, why, sizeof why), 0);
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint64_t seq = put(s, 7, CL_STORED_COMPLETED, 0);
    snprintf(path, sizeof path, "%s/%06" PRIu64 "-completed.json", dir, seq);
    mangle(path, cases[i].fn);
    CHECK_EQ_INT(cl_store_read(path, &r, why, sizeof why), CL_EINVAL);
    CHECK(strstr(why, cases[i].says) != NULL);
    CHECK(strstr(why, path) != NULL);
    CHECK(r.states == NULL && r.topology == NULL);
  }
  /* A file renamed to another number. */
  {
    uint64_t seq = put(s, 8, CL_STORED_COMPLETED, 0);
    char to[1024];
    snprintf(path, sizeof path, "%s/%06" PRIu64 "-completed.json", dir, seq);
    snprintf(to, sizeof to, "%s/%06d-completed.json", dir, 99);
    CHECK_EQ_INT(rename(path, to), 0);
    CHECK_EQ_INT(cl_store_read(to, &r, why, sizeof why), CL_EINVAL);
    CHECK(strstr(why, "its name says seq 99") != NULL);
  }
  /* A missing file. */
  snprintf(path, sizeof path, "%s/000042-completed.json", dir);
  CHECK_EQ_INT(cl_store_read(path, &r, why, sizeof why), CL_EIO);
  CHECK(strstr(why, path) != NULL);
  cl_store_close(s);
}

/* Numbers follow reservations; a reservation nobody holds any more (its
 * writer crashed) is removed and its number reused; a held one is not. */
static void test_numbering(void) {
  char dir[512], why[512], stale[1024];
  cl_store_t *a, *b;
  uint64_t sa, sb;
  int fd;
  cl_store_file_t *files;
  size_t n;
  fresh_dir(dir, sizeof dir, "numbering");
  CHECK_EQ_INT(cl_store_open(dir, &a, why, sizeof why), 0);
  CHECK_EQ_INT(cl_store_open(dir, &b, why, sizeof why), 0);
  CHECK_EQ_INT(cl_store_reserve(a, &sa, why, sizeof why), 0);
  CHECK_EQ_INT(cl_store_reserve(b, &sb, why, sizeof why), 0);
  CHECK_EQ_INT((int)sa, 1);
  CHECK_EQ_INT((int)sb, 2);
  CHECK_EQ_INT((int)put(b, 1, CL_STORED_COMPLETED, 0), 2); /* stored late */
  CHECK_EQ_INT((int)put(a, 2, CL_STORED_COMPLETED, 0), 1);
  snprintf(stale, sizeof stale, "%s/.000003.tmp", dir);
  fd = open(stale, O_WRONLY | O_CREAT, 0644);
  CHECK(fd >= 0);
  close(fd);
  CHECK_EQ_INT((int)put(a, 3, CL_STORED_COMPLETED, 0), 3);
  CHECK(access(stale, F_OK) != 0);
  cl_store_cancel(a);
  CHECK_EQ_INT(cl_store_list(dir, &files, &n, why, sizeof why), 0);
  CHECK_EQ_INT((int)n, 3);
  CHECK(n == 3 && files[0].seq == 1 && files[2].seq == 3);
  free(files);
  cl_store_close(a);
  cl_store_close(b);
}

/* keep 3: the 3 newest completed stay, and the 3 newest of the others. */
static void test_retention(void) {
  static const int kinds[] = {
      CL_STORED_COMPLETED, CL_STORED_FAILED,    CL_STORED_COMPLETED,
      CL_STORED_TIMED_OUT, CL_STORED_COMPLETED, CL_STORED_FAILED,
      CL_STORED_COMPLETED, CL_STORED_TIMED_OUT, CL_STORED_COMPLETED,
      CL_STORED_COMPLETED};
  static const uint64_t left[] = {4, 6, 7, 8, 9, 10};
  char dir[512], why[512];
  cl_store_t *s;
  cl_store_file_t *files;
  size_t n, i, ndone = 0;
  fresh_dir(dir, sizeof dir, "retention");
  CHECK_EQ_INT(cl_store_open(dir, &s, why, sizeof why), 0);
  for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    put(s, 100 + i, kinds[i], 3);
  CHECK_EQ_INT(cl_store_list(dir, &files, &n, why, sizeof why), 0);
  CHECK_EQ_INT((int)n, 6);
  for (i = 0; i < n && i < 6; i++) {
    CHECK(files[i].seq == left[i]);
    ndone += files[i].status == CL_STORED_COMPLETED;
  }
  CHECK_EQ_INT((int)ndone, 3);
  free(files);
  cl_store_close(s);
}

/* A child stores snapshot 2 and is killed at `step`; what is left. */
static void crash_at(const char *step, int whole) {
  char dir[512], why[512], name[64];
  cl_store_t *s;
  cl_store_file_t *files;
  cl_stored_t r;
  size_t n, i;
  pid_t pid;
  int st;
  snprintf(name, sizeof name, "crash-%s", step);
  fresh_dir(dir, sizeof dir, name);
  CHECK_EQ_INT(cl_store_open(dir, &s, why, sizeof why), 0);
  put(s, 1, CL_STORED_COMPLETED, 0);
  put(s, 2, CL_STORED_COMPLETED, 0);
  fflush(NULL);
  pid = fork();
  if (pid == 0) {
    setenv("CLSNAP_STORE_CRASH", step, 1);
    put(s, 3, CL_STORED_COMPLETED, 1); /* retention would delete 1 and 2 */
    _exit(0);
  }
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  CHECK_EQ_INT(cl_store_list(dir, &files, &n, why, sizeof why), 0);
  /* Every file that claims to be a snapshot is one. */
  for (i = 0; i < n; i++) {
    CHECK_EQ_INT(cl_store_read(files[i].path, &r, why, sizeof why), 0);
    cl_store_record_free(&r);
  }
  CHECK(n >= 1 && files[n - 1].seq == (whole ? 3u : 2u));
  free(files);
  /* The store goes on: the next one takes the next number, and the
   * crashed write's temporary file is gone. */
  CHECK_EQ_INT((int)put(s, 4, CL_STORED_COMPLETED, 0), whole ? 4 : 3);
  CHECK_EQ_INT(cl_store_list(dir, &files, &n, why, sizeof why), 0);
  free(files);
  {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -q '\\.tmp$'", dir);
    CHECK(system(cmd) != 0);
  }
  cl_store_close(s);
}

static void test_crashes(void) {
  crash_at("reserved", 0);
  crash_at("half-written", 0);
  crash_at("written", 0);
  crash_at("synced", 0);
  crash_at("renamed", 1);
  crash_at("dir-synced", 1);
  crash_at("retention", 1);
}

/* The time format, both ways through a stored file. */
static void test_time(void) {
  char buf[32];
  cl_store_time(1796361153123456, buf, sizeof buf);
  CHECK_EQ_STR(buf, "2026-12-04T05:12:33.123456Z");
  cl_store_time(0, buf, sizeof buf);
  CHECK_EQ_STR(buf, "1970-01-01T00:00:00.000000Z");
}

int main(void) {
  const char *tmp = getenv("TMPDIR");
  if (sodium_init() < 0)
    return 1;
  snprintf(root, sizeof root, "%s/clsnap-test-store-%d", tmp ? tmp : "/tmp",
           (int)getpid());
  test_time();
  test_round_trip();
  test_damage();
  test_edited_fields();
  test_numbering();
  test_retention();
  test_crashes();
  {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
      return 1;
  }
  return check_done("store");
}
