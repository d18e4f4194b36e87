/* The snapshot store (see store.h and docs/STORE.md).
 *
 * Durability: a snapshot is written to its reserved temporary file,
 * fsync'ed, renamed to its final name and the directory fsync'ed; only
 * then are older ones deleted. A crash anywhere leaves the whole file or
 * only a temporary one, which claims nothing and goes at the next
 * reservation. CLSNAP_STORE_CRASH=STEP kills the process with SIGKILL at
 * that step of a write (reserved, half-written, written, synced, renamed,
 * dir-synced, retention) and CLSNAP_STORE_DELAY_MS=N pauses half way
 * through writing: test hooks, documented in docs/RELIABILITY.md.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "error.h"
#include "scenario.h"
#include "util.h"

#define FORMAT "clsnap-snapshot-1"
#define PREFIX "{\"format\":\"" FORMAT "\",\"sha256\":\""
#define MIDDLE "\",\"snapshot\":"
#define SUFFIX "}\n"
#define PREFIX_LEN (sizeof PREFIX - 1)
#define HEAD_LEN (PREFIX_LEN + 64 + sizeof MIDDLE - 1)
#define SUFFIX_LEN (sizeof SUFFIX - 1)

struct cl_store {
  char dir[PATH_MAX - 64]; /* room for "/.<seq>.tmp" and "/<seq>-<status>.json" */
  int lock_fd;
  int tmp_fd;       /* the reservation, flock'ed; -1: none */
  uint64_t tmp_seq;
  char tmp_path[PATH_MAX];
};

static const char *const status_names[] = {"completed", "failed",
                                           "timed_out"};

const char *cl_store_status_name(int status) {
  return status >= 0 && status <= CL_STORED_TIMED_OUT ? status_names[status]
                                                      : "unknown";
}

/* The status of a name, or -1. */
static int status_of(const char *name, size_t len) {
  int i;
  for (i = 0; i <= CL_STORED_TIMED_OUT; i++)
    if (strlen(status_names[i]) == len &&
        memcmp(status_names[i], name, len) == 0)
      return i;
  return -1;
}

void cl_store_record_free(cl_stored_t *rec) {
  size_t i;
  for (i = 0; rec->states != NULL && i < rec->nstates; i++) {
    free(rec->states[i].recorded);
    free(rec->states[i].sent);
    free(rec->states[i].recv);
  }
  free(rec->states);
  free(rec->topology);
  memset(rec, 0, sizeof *rec);
}

/* ---- time ---------------------------------------------------------------- */

void cl_store_time(int64_t us, char *buf, size_t size) {
  time_t sec = (time_t)(us / 1000000);
  struct tm tm;
  char day[24];
  gmtime_r(&sec, &tm);
  strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, size, "%s.%06dZ", day, (int)(us % 1000000));
}

/* "YYYY-MM-DDTHH:MM:SS.UUUUUUZ" back into microseconds; 0 or -1. */
static int parse_time(const char *s, int64_t *us) {
  struct tm tm;
  int micro, n = 0;
  char back[32];
  memset(&tm, 0, sizeof tm);
  if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%6dZ%n", &tm.tm_year, &tm.tm_mon,
             &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &micro,
             &n) != 7 || n != 27 || s[n] != '\0')
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  *us = (int64_t)timegm(&tm) * 1000000 + micro;
  cl_store_time(*us, back, sizeof back); /* rejects 2026-13-45 */
  return strcmp(back, s) == 0 ? 0 : -1;
}

/* ---- the body ------------------------------------------------------------- */

static json_t *json_counts(const cl_chan_count_t *c, uint32_t n) {
  json_t *a = json_array();
  uint32_t i;
  for (i = 0; i < n; i++)
    json_array_append_new(a, json_pack("[s, I]", c[i].peer,
                                       (json_int_t)c[i].count));
  return a;
}

static json_t *json_state(const cl_local_state_t *st) {
  json_t *runs = json_array();
  uint32_t i;
  for (i = 0; i < st->nrecorded; i++)
    json_array_append_new(runs, json_pack("[s, I, I, I]",
                                          st->recorded[i].src,
                                          (json_int_t)st->recorded[i].seq,
                                          (json_int_t)st->recorded[i].count,
                                          (json_int_t)st->recorded[i].n));
  return json_pack("{s:s, s:I, s:I, s:o, s:o, s:o}", "server", st->server,
                   "tokens", (json_int_t)st->tokens, "initial_tokens",
                   (json_int_t)st->initial_tokens, "sent",
                   json_counts(st->sent, st->nsent), "received",
                   json_counts(st->recv, st->nrecv), "recorded", runs);
}

static json_t *json_verdict(const cl_stored_t *rec) {
  const cl_verdict_t *v = &rec->verdict;
  json_t *problems;
  size_t i;
  if (!rec->checked)
    return json_null();
  problems = json_array();
  for (i = 0; i < v->nproblems && i < CL_VERIFY_MAX_PROBLEMS; i++)
    json_array_append_new(problems, json_string(v->problems[i]));
  return json_pack("{s:b, s:b, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:o}",
                   "ok", v->ok, "complete", v->complete, "conserved",
                   v->conserved, "channels_exact", v->channels_exact,
                   "expected_tokens", (json_int_t)v->expected_tokens,
                   "server_tokens", (json_int_t)v->server_tokens,
                   "channel_tokens", (json_int_t)v->channel_tokens,
                   "messages", (json_int_t)v->nrecorded, "problems_total",
                   (json_int_t)v->nproblems, "problems", problems);
}

/* The hex SHA-256 of n bytes into hex[65]. */
void cl_store_sha256(const void *p, size_t n, char *hex) {
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, p, n);
  sodium_bin2hex(hex, 65, h, sizeof h);
}

/* A JSON string of text; bytes that are not UTF-8 (a daemon's error text
 * can hold any) become '?'. NULL only when out of memory. */
static json_t *json_text(const char *text) {
  json_t *j = json_string(text);
  char *copy;
  if (j != NULL)
    return j;
  copy = cl_ascii_copy(text);
  j = json_string(copy);
  free(copy);
  return j;
}

char *cl_store_body(const cl_stored_t *rec) {
  json_t *o, *states = json_array(), *topo;
  char trig[32], done[32], hash[65];
  size_t i;
  char *text;
  cl_store_time(rec->trigger_us, trig, sizeof trig);
  if (rec->completion_us != 0)
    cl_store_time(rec->completion_us, done, sizeof done);
  for (i = 0; i < rec->nstates; i++)
    json_array_append_new(states, json_state(&rec->states[i]));
  if (rec->topology != NULL) {
    cl_store_sha256(rec->topology, strlen(rec->topology), hash);
    topo = json_pack("{s:s, s:s}", "sha256", hash, "text", rec->topology);
  } else {
    topo = json_null();
  }
  o = json_pack("{s:I, s:I, s:s, s:s, s:o, s:s, s:o, s:I, s:o, s:o, s:o}",
                "seq", (json_int_t)rec->seq, "id", (json_int_t)rec->id,
                "initiator", rec->initiator, "status",
                cl_store_status_name(rec->status), "reason",
                rec->reason[0] ? json_text(rec->reason) : json_null(),
                "trigger_time", trig, "completion_time",
                rec->completion_us ? json_string(done) : json_null(),
                "duration_us", (json_int_t)rec->duration_us, "verdict",
                json_verdict(rec), "topology", topo, "states", states);
  if (o == NULL)
    return NULL;
  text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(o);
  return text;
}

/* ---- opening, locking, names ---------------------------------------------- */

int cl_store_open(const char *dir, cl_store_t **out, char *why,
                  size_t whysize) {
  cl_store_t *s;
  char path[PATH_MAX + 8];
  struct stat st;
  *out = NULL;
  if (strlen(dir) >= PATH_MAX - 64) {
    cl_set_err(why, whysize, "store %s: path too long", dir);
    return CL_EIO;
  }
  if (cl_mkdirs(dir) != 0 || stat(dir, &st) != 0) {
    cl_set_err(why, whysize, "store %s: cannot create it: %s", dir,
               strerror(errno));
    return CL_EIO;
  }
  if (!S_ISDIR(st.st_mode)) {
    cl_set_err(why, whysize, "store %s: not a directory", dir);
    return CL_EIO;
  }
  snprintf(path, sizeof path, "%s/.lock", dir);
  s = cl_xcalloc(1, sizeof *s);
  snprintf(s->dir, sizeof s->dir, "%s", dir);
  s->tmp_fd = -1;
  s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (s->lock_fd < 0) {
    cl_set_err(why, whysize, "store %s: cannot write in it: %s", dir,
               strerror(errno));
    free(s);
    return CL_EIO;
  }
  *out = s;
  return 0;
}

void cl_store_close(cl_store_t *s) {
  if (s == NULL)
    return;
  cl_store_cancel(s);
  close(s->lock_fd);
  free(s);
}

/* A snapshot file's name: "<digits>-<status>.json". 1 and its seq and
 * status, else 0. */
static int parse_name(const char *name, uint64_t *seq, int *status) {
  const char *dash = strchr(name, '-'), *dot;
  size_t len = strlen(name);
  if (dash == NULL || dash == name || len < 5 ||
      strcmp(name + len - 5, ".json") != 0)
    return 0;
  dot = name + len - 5;
  *status = status_of(dash + 1, (size_t)(dot - dash - 1));
  if (*status < 0 || dash - name > 19)
    return 0;
  for (const char *p = name; p < dash; p++)
    if (*p < '0' || *p > '9')
      return 0;
  *seq = strtoull(name, NULL, 10);
  return *seq > 0;
}

/* A reservation's name: ".<digits>.tmp". 1 and its seq, else 0. */
static int parse_tmp(const char *name, uint64_t *seq) {
  size_t len = strlen(name), i;
  if (len < 6 || len > 24 || name[0] != '.' ||
      strcmp(name + len - 4, ".tmp") != 0)
    return 0;
  for (i = 1; i < len - 4; i++)
    if (name[i] < '0' || name[i] > '9')
      return 0;
  *seq = strtoull(name + 1, NULL, 10);
  return 1;
}

/* Under the directory lock: remove reservations nobody holds (crashed
 * writes) and return the highest seq in use, files and reservations. */
static int scan_locked(cl_store_t *s, uint64_t *max, char *why,
                       size_t whysize) {
  DIR *d = opendir(s->dir);
  struct dirent *e;
  *max = 0;
  if (d == NULL) {
    cl_set_err(why, whysize, "store %s: %s", s->dir, strerror(errno));
    return CL_EIO;
  }
  while ((e = readdir(d)) != NULL) {
    uint64_t seq;
    int status;
    if (parse_name(e->d_name, &seq, &status)) {
      if (seq > *max)
        *max = seq;
    } else if (parse_tmp(e->d_name, &seq)) {
      char path[PATH_MAX + 32];
      int fd;
      snprintf(path, sizeof path, "%s/%s", s->dir, e->d_name);
      fd = open(path, O_RDONLY | O_CLOEXEC);
      /* Nobody holds it: its writer is gone. Renames and cancels happen
       * under the directory lock, which this scan holds, so a reservation
       * cannot turn into a file meanwhile; still, a number whose
       * reservation could not be removed stays in use. */
      if (!(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 &&
            unlink(path) == 0) &&
          seq > *max)
        *max = seq;
      if (fd >= 0)
        close(fd);
    }
  }
  closedir(d);
  return 0;
}

/* fsync the store's directory (a rename or unlink in it is durable then). */
static int sync_dir(const cl_store_t *s) {
  int fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;
  if (fd < 0)
    return -1;
  r = fsync(fd);
  close(fd);
  return r;
}

/* The test hook: die here if CLSNAP_STORE_CRASH names this step. */
static void crash_point(const char *step) {
  const char *at = getenv("CLSNAP_STORE_CRASH");
  if (at != NULL && strcmp(at, step) == 0)
    raise(SIGKILL);
}

/* The test hook: CLSNAP_STORE_DELAY_MS milliseconds, whatever signals
 * come. */
static void delay_point(void) {
  const char *ms = getenv("CLSNAP_STORE_DELAY_MS");
  uint64_t until;
  if (ms == NULL)
    return;
  until = cl_now_ns() + strtoull(ms, NULL, 10) * 1000000u;
  while (cl_now_ns() < until) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
}

int cl_store_reserve(cl_store_t *s, uint64_t *seq, char *why,
                     size_t whysize) {
  uint64_t max;
  int r;
  if (s->tmp_fd >= 0) {
    *seq = s->tmp_seq;
    return 0;
  }
  if (flock(s->lock_fd, LOCK_EX) != 0) {
    cl_set_err(why, whysize, "store %s: cannot lock it: %s", s->dir,
               strerror(errno));
    return CL_EIO;
  }
  r = scan_locked(s, &max, why, whysize);
  if (r == 0) {
    s->tmp_seq = max + 1;
    snprintf(s->tmp_path, sizeof s->tmp_path, "%s/.%06" PRIu64 ".tmp",
             s->dir, s->tmp_seq);
    s->tmp_fd = open(s->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                     0644);
    if (s->tmp_fd < 0 || flock(s->tmp_fd, LOCK_EX | LOCK_NB) != 0) {
      cl_set_err(why, whysize, "store %s: cannot create %s: %s", s->dir,
                 s->tmp_path, strerror(errno));
      if (s->tmp_fd >= 0) {
        close(s->tmp_fd);
        (void)unlink(s->tmp_path);
      }
      s->tmp_fd = -1;
      r = CL_EIO;
    }
  }
  flock(s->lock_fd, LOCK_UN);
  if (r == 0) {
    *seq = s->tmp_seq;
    crash_point("reserved");
  }
  return r;
}

void cl_store_cancel(cl_store_t *s) {
  int locked;
  if (s->tmp_fd < 0)
    return;
  locked = flock(s->lock_fd, LOCK_EX) == 0;
  (void)unlink(s->tmp_path);
  close(s->tmp_fd);
  s->tmp_fd = -1;
  if (locked)
    flock(s->lock_fd, LOCK_UN);
}

/* Rename the reservation to final under the directory lock (so that no
 * reservation scan sees the number vanish), never over an existing file.
 * 0 or -1 with errno. */
static int publish(cl_store_t *s, const char *final) {
  int r;
  if (flock(s->lock_fd, LOCK_EX) != 0)
    return -1;
  r = link(s->tmp_path, final);
  if (r == 0)
    (void)unlink(s->tmp_path);
  flock(s->lock_fd, LOCK_UN);
  return r;
}

/* ---- writing -------------------------------------------------------------- */

/* Write all n bytes. 0 or -1 with errno. */
static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* qsort order of files by seq. */
static int file_cmp(const void *a, const void *b) {
  const cl_store_file_t *x = a, *y = b;
  return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Retention, under the directory lock: the keep newest completed files
 * stay, and the keep newest of the others. 1 if any file went. */
static int retain(cl_store_t *s, uint64_t keep) {
  cl_store_file_t *f = NULL;
  size_t n = 0, i, ndone = 0, nbad = 0, seen_done = 0, seen_bad = 0;
  int gone = 0;
  if (cl_store_list(s->dir, &f, &n, NULL, 0) != 0)
    return 0;
  for (i = 0; i < n; i++) {
    if (f[i].status == CL_STORED_COMPLETED)
      ndone++;
    else
      nbad++;
  }
  for (i = 0; i < n; i++) {
    int done = f[i].status == CL_STORED_COMPLETED;
    size_t rank = done ? seen_done++ : seen_bad++;
    size_t total = done ? ndone : nbad;
    if (total - rank > keep) {
      crash_point("retention");
      if (unlink(f[i].path) == 0)
        gone = 1;
    }
  }
  free(f);
  return gone;
}

int cl_store_put(cl_store_t *s, cl_stored_t *rec, uint64_t keep, char *why,
                 size_t whysize) {
  char *body, head[HEAD_LEN + 1], final[PATH_MAX];
  size_t blen;
  uint64_t seq;
  int r;
  if ((r = cl_store_reserve(s, &seq, why, whysize)) < 0)
    return r;
  rec->seq = seq;
  body = cl_store_body(rec);
  if (body == NULL) {
    cl_set_err(why, whysize, "out of memory writing snapshot %" PRIu64,
               rec->id);
    cl_store_cancel(s);
    return CL_EIO;
  }
  blen = strlen(body);
  cl_store_sha256(body, blen, rec->sha256);
  if (rec->topology != NULL)
    cl_store_sha256(rec->topology, strlen(rec->topology), rec->topology_sha256);
  snprintf(head, sizeof head, "%s%s%s", PREFIX, rec->sha256, MIDDLE);
  snprintf(final, sizeof final, "%s/%06" PRIu64 "-%s.json", s->dir, seq,
           cl_store_status_name(rec->status));
  r = write_all(s->tmp_fd, head, HEAD_LEN) < 0 ||
      write_all(s->tmp_fd, body, blen / 2) < 0;
  if (r == 0) {
    crash_point("half-written");
    delay_point();
    r = write_all(s->tmp_fd, body + blen / 2, blen - blen / 2) < 0 ||
        write_all(s->tmp_fd, SUFFIX, SUFFIX_LEN) < 0;
  }
  free(body);
  if (r == 0)
    crash_point("written");
  if (r == 0 && (r = fsync(s->tmp_fd)) == 0)
    crash_point("synced");
  if (r == 0 && (r = publish(s, final)) == 0)
    crash_point("renamed");
  if (r != 0) {
    cl_set_err(why, whysize, "cannot write %s: %s", final, strerror(errno));
    cl_store_cancel(s);
    return CL_EIO;
  }
  close(s->tmp_fd);
  s->tmp_fd = -1;
  if (sync_dir(s) != 0) { /* the file is whole, but may not survive */
    cl_set_err(why, whysize, "%s is written, but the directory %s could not "
               "be synced, so it may not survive a crash: %s", final, s->dir,
               strerror(errno));
    return CL_EIO;
  }
  crash_point("dir-synced");
  rec->size = HEAD_LEN + blen + SUFFIX_LEN;
  snprintf(rec->path, sizeof rec->path, "%s", final);
  if (keep > 0 && flock(s->lock_fd, LOCK_EX) == 0) {
    if (retain(s, keep))
      (void)sync_dir(s);
    flock(s->lock_fd, LOCK_UN);
  }
  return 0;
}

/* ---- listing -------------------------------------------------------------- */

int cl_store_list(const char *dir, cl_store_file_t **files, size_t *n,
                  char *why, size_t whysize) {
  DIR *d = opendir(dir);
  struct dirent *e;
  size_t cap = 0;
  *files = NULL;
  *n = 0;
  if (d == NULL && errno == ENOENT)
    return 0;
  if (d == NULL) {
    cl_set_err(why, whysize, "store %s: %s", dir, strerror(errno));
    return CL_EIO;
  }
  while ((e = readdir(d)) != NULL) {
    cl_store_file_t f;
    if (!parse_name(e->d_name, &f.seq, &f.status))
      continue;
    snprintf(f.path, sizeof f.path, "%s/%.200s", dir, e->d_name);
    if (*n == cap) {
      cap = cap ? cap * 2 : 64;
      *files = cl_xrealloc(*files, cap * sizeof **files);
    }
    (*files)[(*n)++] = f;
  }
  closedir(d);
  if (*n > 0)
    qsort(*files, *n, sizeof **files, file_cmp);
  return 0;
}

/* ---- reading -------------------------------------------------------------- */

/* Member key of o as a number in [min, max]; 0 or -1. */
static int get_int(json_t *o, const char *key, int64_t min, int64_t max,
                   int64_t *out) {
  json_t *v = json_object_get(o, key);
  if (!json_is_integer(v) || json_integer_value(v) < min ||
      json_integer_value(v) > max)
    return -1;
  *out = json_integer_value(v);
  return 0;
}

/* [[peer, count]...] into *c, *n. 0 or -1. */
static int get_counts(json_t *a, cl_chan_count_t **c, uint32_t *n) {
  size_t i;
  json_t *x;
  if (!json_is_array(a) || json_array_size(a) > CL_WIRE_MAX_ITEMS)
    return -1;
  *n = (uint32_t)json_array_size(a);
  *c = cl_xcalloc(*n ? *n : 1, sizeof **c);
  json_array_foreach(a, i, x) {
    json_t *p = json_array_get(x, 0), *k = json_array_get(x, 1);
    if (json_array_size(x) != 2 || !json_is_string(p) ||
        cl_id_copy((*c)[i].peer, json_string_value(p)) < 0 ||
        !json_is_integer(k) || json_integer_value(k) < 0)
      return -1;
    (*c)[i].count = (uint64_t)json_integer_value(k);
  }
  return 0;
}

/* One "states" element into st. 0, or -1 with what in *what. */
static int get_state(json_t *o, uint64_t id, cl_local_state_t *st,
                     const char **what) {
  json_t *sv = json_object_get(o, "server"), *runs, *x;
  size_t i;
  st->snapshot_id = id;
  *what = "server";
  if (!json_is_string(sv) || cl_id_copy(st->server, json_string_value(sv)) < 0)
    return -1;
  *what = "tokens";
  if (get_int(o, "tokens", 0, CL_TOKENS_MAX * 4096, &st->tokens) < 0 ||
      get_int(o, "initial_tokens", 0, CL_TOKENS_MAX * 4096,
              &st->initial_tokens) < 0)
    return -1;
  *what = "sent";
  if (get_counts(json_object_get(o, "sent"), &st->sent, &st->nsent) < 0)
    return -1;
  *what = "received";
  if (get_counts(json_object_get(o, "received"), &st->recv, &st->nrecv) < 0)
    return -1;
  *what = "recorded";
  runs = json_object_get(o, "recorded");
  if (!json_is_array(runs) || json_array_size(runs) > CL_WIRE_MAX_ITEMS)
    return -1;
  st->nrecorded = (uint32_t)json_array_size(runs);
  st->recorded = cl_xcalloc(st->nrecorded ? st->nrecorded : 1,
                            sizeof *st->recorded);
  json_array_foreach(runs, i, x) {
    cl_recorded_t *r = &st->recorded[i];
    json_t *src = json_array_get(x, 0), *f[3];
    int k;
    if (json_array_size(x) != 4 || !json_is_string(src) ||
        cl_id_copy(r->src, json_string_value(src)) < 0)
      return -1;
    for (k = 0; k < 3; k++) {
      f[k] = json_array_get(x, (size_t)k + 1);
      if (!json_is_integer(f[k]) || json_integer_value(f[k]) < 1)
        return -1;
    }
    r->seq = (uint64_t)json_integer_value(f[0]);
    r->count = (uint64_t)json_integer_value(f[1]);
    r->n = json_integer_value(f[2]);
  }
  return 0;
}

/* The stored verdict o into rec. 0 or -1. */
static int get_verdict(json_t *o, cl_stored_t *rec) {
  cl_verdict_t *v = &rec->verdict;
  json_t *p, *x;
  int64_t msgs, total;
  size_t i;
  if (json_is_null(o))
    return 0;
  if (!json_is_object(o))
    return -1;
  rec->checked = 1;
  if (!json_is_boolean(json_object_get(o, "ok")) ||
      !json_is_boolean(json_object_get(o, "complete")) ||
      !json_is_boolean(json_object_get(o, "conserved")) ||
      !json_is_boolean(json_object_get(o, "channels_exact")))
    return -1;
  v->ok = json_is_true(json_object_get(o, "ok"));
  v->complete = json_is_true(json_object_get(o, "complete"));
  v->conserved = json_is_true(json_object_get(o, "conserved"));
  v->channels_exact = json_is_true(json_object_get(o, "channels_exact"));
  if (get_int(o, "expected_tokens", INT64_MIN, INT64_MAX,
              &v->expected_tokens) < 0 ||
      get_int(o, "server_tokens", INT64_MIN, INT64_MAX, &v->server_tokens) <
          0 ||
      get_int(o, "channel_tokens", INT64_MIN, INT64_MAX,
              &v->channel_tokens) < 0 ||
      get_int(o, "messages", 0, INT64_MAX, &msgs) < 0 ||
      get_int(o, "problems_total", 0, INT64_MAX, &total) < 0)
    return -1;
  v->nrecorded = (size_t)msgs;
  v->nproblems = (size_t)total;
  p = json_object_get(o, "problems");
  if (!json_is_array(p) || json_array_size(p) > v->nproblems ||
      json_array_size(p) > CL_VERIFY_MAX_PROBLEMS)
    return -1;
  json_array_foreach(p, i, x) {
    if (!json_is_string(x))
      return -1;
    if (i < CL_VERIFY_MAX_PROBLEMS)
      snprintf(v->problems[i], sizeof v->problems[i], "%s",
               json_string_value(x));
  }
  return 0;
}

/* The parsed body into rec. 0, or -1 with the field at fault in *what
 * (which may point into field[64]). */
static int get_body(json_t *o, cl_stored_t *rec, const char **what,
                    char *field) {
  json_t *x, *topo, *states;
  int64_t v;
  size_t i;
  *what = "the body (not an object)";
  if (!json_is_object(o))
    return -1;
  *what = "seq";
  if (get_int(o, "seq", 1, INT64_MAX, &v) < 0)
    return -1;
  rec->seq = (uint64_t)v;
  *what = "id";
  if (get_int(o, "id", 0, INT64_MAX, &v) < 0)
    return -1;
  rec->id = (uint64_t)v;
  *what = "initiator";
  x = json_object_get(o, "initiator");
  if (!json_is_string(x) || cl_id_copy(rec->initiator,
                                       json_string_value(x)) < 0)
    return -1;
  *what = "status";
  x = json_object_get(o, "status");
  if (!json_is_string(x) || (rec->status = status_of(
                                 json_string_value(x),
                                 strlen(json_string_value(x)))) < 0)
    return -1;
  *what = "reason";
  x = json_object_get(o, "reason");
  if (json_is_string(x))
    snprintf(rec->reason, sizeof rec->reason, "%s", json_string_value(x));
  else if (!json_is_null(x))
    return -1;
  *what = "trigger_time";
  x = json_object_get(o, "trigger_time");
  if (!json_is_string(x) || parse_time(json_string_value(x),
                                       &rec->trigger_us) < 0)
    return -1;
  *what = "completion_time";
  x = json_object_get(o, "completion_time");
  if (json_is_string(x)) {
    if (parse_time(json_string_value(x), &rec->completion_us) < 0)
      return -1;
  } else if (!json_is_null(x)) {
    return -1;
  }
  *what = "duration_us";
  if (get_int(o, "duration_us", 0, INT64_MAX, &rec->duration_us) < 0)
    return -1;
  *what = "verdict";
  if (get_verdict(json_object_get(o, "verdict"), rec) < 0)
    return -1;
  *what = "topology";
  topo = json_object_get(o, "topology");
  if (json_is_object(topo)) {
    json_t *t = json_object_get(topo, "text"),
           *h = json_object_get(topo, "sha256");
    char hash[65];
    if (!json_is_string(t) || !json_is_string(h))
      return -1;
    rec->topology = cl_xmalloc(strlen(json_string_value(t)) + 1);
    strcpy(rec->topology, json_string_value(t));
    snprintf(rec->topology_sha256, sizeof rec->topology_sha256, "%s",
             json_string_value(h));
    cl_store_sha256(rec->topology, strlen(rec->topology), hash);
    *what = "topology (its text does not match its sha256)";
    if (strcmp(hash, rec->topology_sha256) != 0)
      return -1;
  } else if (!json_is_null(topo)) {
    return -1;
  }
  *what = "states";
  states = json_object_get(o, "states");
  if (!json_is_array(states) || json_array_size(states) > CL_SERVERS_MAX)
    return -1;
  rec->nstates = json_array_size(states);
  rec->states = cl_xcalloc(rec->nstates ? rec->nstates : 1,
                           sizeof *rec->states);
  json_array_foreach(states, i, x) {
    const char *sub;
    if (get_state(x, rec->id, &rec->states[i], &sub) < 0) {
      snprintf(field, 64, "states[%zu].%s", i, sub);
      *what = field;
      return -1;
    }
  }
  return 0;
}

int cl_store_read(const char *path, cl_stored_t *rec, char *why,
                  size_t whysize) {
  char *text = NULL, hash[65], want[65], field[64];
  const char *slash = strrchr(path, '/'), *what;
  size_t len;
  cl_diag_t diag;
  json_t *body;
  json_error_t jerr;
  uint64_t seq;
  int status, r;
  memset(rec, 0, sizeof *rec);
  if (cl_read_file(path, &text, &len, &diag) < 0) {
    cl_set_err(why, whysize, "%s: cannot read it: %s", path, diag.msg);
    return CL_EIO;
  }
  snprintf(rec->path, sizeof rec->path, "%s", path);
  rec->size = len;
  if (len < HEAD_LEN + SUFFIX_LEN || memcmp(text, PREFIX, PREFIX_LEN) != 0 ||
      memcmp(text + PREFIX_LEN + 64, MIDDLE, sizeof MIDDLE - 1) != 0) {
    cl_set_err(why, whysize, "%s: not a clsnap snapshot file (it does not "
               "start with the %s header)", path, FORMAT);
    free(text);
    return CL_EINVAL;
  }
  memcpy(want, text + PREFIX_LEN, 64);
  want[64] = '\0';
  if (memcmp(text + len - SUFFIX_LEN, SUFFIX, SUFFIX_LEN) != 0) {
    cl_set_err(why, whysize, "%s: truncated (%zu bytes; it does not end "
               "as a stored snapshot ends)", path, len);
    free(text);
    return CL_EINVAL;
  }
  cl_store_sha256(text + HEAD_LEN, len - HEAD_LEN - SUFFIX_LEN, hash);
  if (strcmp(hash, want) != 0) {
    cl_set_err(why, whysize, "%s: checksum mismatch: the file says sha256 "
               "%.16s..., its contents hash to %.16s... (damaged or edited)",
               path, want, hash);
    free(text);
    return CL_EINVAL;
  }
  memcpy(rec->sha256, want, sizeof want);
  body = json_loadb(text + HEAD_LEN, len - HEAD_LEN - SUFFIX_LEN, 0, &jerr);
  free(text);
  if (body == NULL) {
    cl_set_err(why, whysize, "%s: its body is not JSON: %s", path, jerr.text);
    return CL_EINVAL;
  }
  r = get_body(body, rec, &what, field);
  json_decref(body);
  if (r < 0) {
    cl_set_err(why, whysize, "%s: bad field %s", path, what);
  } else if (parse_name(slash ? slash + 1 : path, &seq, &status) &&
             (seq != rec->seq || status != rec->status)) {
    cl_set_err(why, whysize, "%s: its name says seq %" PRIu64 " %s, its "
               "contents seq %" PRIu64 " %s (renamed?)", path, seq,
               cl_store_status_name(status), rec->seq,
               cl_store_status_name(rec->status));
    r = -1;
  }
  if (r < 0) {
    size_t size = rec->size;
    char keep[PATH_MAX];
    memcpy(keep, rec->path, sizeof keep);
    cl_store_record_free(rec);
    rec->size = size;
    memcpy(rec->path, keep, sizeof keep);
    return CL_EINVAL;
  }
  return 0;
}
