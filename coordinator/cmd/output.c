#include "output.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "error.h"
#include "util.h"

/* Snapshot text, verdict and problems, as `run` and `snapshot` print them. */
void cl_output_checked(FILE *f, uint64_t id, const cl_snap_t *snap,
                       const cl_verdict_t *v, int quiet) {
  char line[1024];
  size_t i, shown;
  if (!quiet && snap != NULL)
    cl_snap_write(snap, f);
  cl_verify_line(id, v, line, sizeof line);
  fprintf(f, "%s\n", line);
  if (!v->ok) {
    shown = v->nproblems < CL_VERIFY_MAX_PROBLEMS ? v->nproblems
                                                   : CL_VERIFY_MAX_PROBLEMS;
    for (i = 0; i < shown; i++)
      fprintf(f, "  %s\n", v->problems[i]);
    if (v->nproblems > shown)
      fprintf(f, "  ... and %zu more problems\n", v->nproblems - shown);
  }
  if (!quiet)
    fputc('\n', f);
}

/* One fact a local state reports about channel src->dst: the sender's
 * count, the receiver's count, or one recorded run (order: its place in the
 * receiver's arrival order, from 1; 0 for the counts). */
typedef struct chan_fact {
  const char *src, *dst;
  const uint64_t *sent, *received;
  const cl_recorded_t *run;
  uint64_t order;
} chan_fact_t;

static int cmp_fact(const void *a, const void *b) {
  const chan_fact_t *x = a, *y = b;
  int c = strcmp(x->src, y->src);
  if (c == 0)
    c = strcmp(x->dst, y->dst);
  if (c == 0)
    c = (x->order > y->order) - (x->order < y->order);
  return c;
}

/* A count, or null when no local state reported it. */
static json_t *json_count(const uint64_t *count) {
  return count != NULL ? json_integer((json_int_t)*count) : json_null();
}

/* The "channels" array: every channel any local state names, sorted by src
 * then dst, with the raw counts and runs the servers reported (nothing
 * taken from the verdict, so a checker can redo the checks from it). */
static json_t *json_channels(const cl_local_state_t *states, size_t nstates) {
  json_t *arr = json_array();
  chan_fact_t *f;
  size_t nf = 0, i, j;
  uint32_t k;
  for (i = 0; i < nstates; i++)
    nf += (size_t)states[i].nsent + states[i].nrecv + states[i].nrecorded;
  f = cl_xcalloc(nf ? nf : 1, sizeof *f);
  nf = 0;
  for (i = 0; i < nstates; i++) {
    const cl_local_state_t *s = &states[i];
    for (k = 0; k < s->nsent; k++)
      f[nf++] = (chan_fact_t){.src = s->server, .dst = s->sent[k].peer,
                              .sent = &s->sent[k].count};
    for (k = 0; k < s->nrecv; k++)
      f[nf++] = (chan_fact_t){.src = s->recv[k].peer, .dst = s->server,
                              .received = &s->recv[k].count};
    for (k = 0; k < s->nrecorded; k++)
      f[nf++] = (chan_fact_t){.src = s->recorded[k].src, .dst = s->server,
                              .run = &s->recorded[k], .order = k + 1u};
  }
  qsort(f, nf, sizeof *f, cmp_fact);
  for (i = 0; i < nf; i = j) {
    json_t *c = json_object(), *runs = json_array();
    const uint64_t *sent = NULL, *received = NULL;
    for (j = i; j < nf && strcmp(f[j].src, f[i].src) == 0 &&
                strcmp(f[j].dst, f[i].dst) == 0;
         j++) {
      if (f[j].sent != NULL && sent == NULL)
        sent = f[j].sent;
      if (f[j].received != NULL && received == NULL)
        received = f[j].received;
      if (f[j].run != NULL)
        json_array_append_new(
            runs, json_pack("[I, I, I]", (json_int_t)f[j].run->seq,
                            (json_int_t)f[j].run->count,
                            (json_int_t)f[j].run->n));
    }
    json_object_set_new(c, "src", json_string(f[i].src));
    json_object_set_new(c, "dst", json_string(f[i].dst));
    json_object_set_new(c, "sent", json_count(sent));
    json_object_set_new(c, "received", json_count(received));
    json_object_set_new(c, "recorded", runs);
    json_array_append_new(arr, c);
  }
  free(f);
  return arr;
}

/* {"id": ID, "tokens": N}: one server's tokens in a snapshot. */
static json_t *json_server_tokens(const char *id, int64_t tokens) {
  return json_pack("{s:s, s:I}", "id", id, "tokens", (json_int_t)tokens);
}

/* One checked snapshot as a JSON object. */
json_t *cl_json_checked(uint64_t id, const cl_snap_t *snap,
                        const cl_verdict_t *v, const cl_local_state_t *states,
                        size_t nstates) {
  json_t *o = json_object(), *tokens = json_object(), *servers = json_array(),
         *msgs = json_array(), *problems = json_array();
  size_t i, shown;
  json_object_set_new(o, "id", json_integer((json_int_t)id));
  json_object_set_new(o, "ok", json_boolean(v->ok));
  json_object_set_new(o, "conserved", json_boolean(v->conserved));
  json_object_set_new(o, "channels_exact", json_boolean(v->channels_exact));
  json_object_set_new(o, "complete", json_boolean(v->complete));
  json_object_set_new(tokens, "expected", json_integer(v->expected_tokens));
  json_object_set_new(tokens, "servers", json_integer(v->server_tokens));
  json_object_set_new(tokens, "channels", json_integer(v->channel_tokens));
  json_object_set_new(o, "tokens", tokens);
  if (snap != NULL) {
    for (i = 0; i < snap->nservers; i++)
      json_array_append_new(servers,
                            json_server_tokens(snap->servers[i].id,
                                               snap->servers[i].tokens));
    for (i = 0; i < snap->nmsgs; i++) {
      json_t *m = json_object();
      json_object_set_new(m, "src", json_string(snap->msgs[i].src));
      json_object_set_new(m, "dst", json_string(snap->msgs[i].dst));
      json_object_set_new(m, "tokens", json_integer(snap->msgs[i].n));
      json_array_append_new(msgs, m);
    }
  } else {
    for (i = 0; states != NULL && i < nstates; i++)
      json_array_append_new(servers, json_server_tokens(states[i].server,
                                                        states[i].tokens));
  }
  json_object_set_new(o, "servers", servers);
  json_object_set_new(o, "messages", msgs);
  if (states != NULL)
    json_object_set_new(o, "channels", json_channels(states, nstates));
  shown = v->nproblems < CL_VERIFY_MAX_PROBLEMS ? v->nproblems
                                                 : CL_VERIFY_MAX_PROBLEMS;
  for (i = 0; i < shown; i++)
    json_array_append_new(problems, json_string(v->problems[i]));
  if (v->nproblems > shown) {
    char more[64];
    snprintf(more, sizeof more, "... and %zu more problems",
             v->nproblems - shown);
    json_array_append_new(problems, json_string(more));
  }
  json_object_set_new(o, "problems", problems);
  return o;
}

/* Dump and release a JSON value. */
void cl_json_print(json_t *j) {
  cl_cli.printed = 1; /* a result: no {"error": ...} after it */
  json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  fputc('\n', stdout);
  json_decref(j);
}

/* See output.h. */
int cl_output_dir(const char *option, const char *dir) {
  struct stat st;
  if (cl_mkdirs(dir) != 0 || stat(dir, &st) != 0) {
    cl_cli_fail(CL_EINVAL, NULL, dir, 0, "%s %s: cannot create it: %s",
                option, dir, strerror(errno));
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) {
    cl_cli_fail(CL_EINVAL, NULL, dir, 0, "%s %s: not a directory", option,
                dir);
    return -1;
  }
  if (access(dir, W_OK | X_OK) != 0) {
    cl_cli_fail(CL_EINVAL, NULL, dir, 0, "%s %s: cannot write in it: %s",
                option, dir, strerror(errno));
    return -1;
  }
  return 0;
}

/* Write DIR/<id>.snap (DIR made by cl_output_dir). */
int cl_output_snap_file(const char *dir, uint64_t id, const cl_snap_t *snap) {
  char path[4200];
  FILE *f;
  int bad;
  snprintf(path, sizeof path, "%s/%" PRIu64 ".snap", dir, id);
  f = fopen(path, "w");
  if (f == NULL) {
    cl_cli_fail(CL_EIO, NULL, path, 0, "cannot write %s: %s", path,
                strerror(errno));
    return -1;
  }
  bad = cl_snap_write(snap, f) < 0;
  bad |= ferror(f) != 0;
  bad |= fclose(f) != 0;
  if (bad) {
    cl_cli_fail(CL_EIO, NULL, path, 0, "cannot write %s", path);
    return -1;
  }
  return 0;
}

/* qsort order of snapshot ids. */
static int id_cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Room kept at the end of cl_output_id_ranges' buf for the longest tail,
 * ", ... (18446744073709551615 more)" and its NUL. */
#define ID_TAIL_ROOM 40

/* Sorted ids as ranges (see output.h). */
void cl_output_id_ranges(const uint64_t *ids, size_t n, size_t max_ranges,
                         char *buf, size_t size) {
  uint64_t *v;
  size_t i = 0, len = 0, nranges = 0;
  buf[0] = '\0';
  if (n == 0 || size < ID_TAIL_ROOM)
    return;
  v = cl_xmalloc(n * sizeof *v);
  memcpy(v, ids, n * sizeof *v);
  qsort(v, n, sizeof *v, id_cmp);
  while (i < n && nranges < max_ranges) {
    char range[48];
    size_t j = i, rlen;
    while (j + 1 < n && v[j + 1] == v[j] + 1)
      j++;
    if (j == i)
      rlen = (size_t)snprintf(range, sizeof range, "%" PRIu64, v[i]);
    else
      rlen = (size_t)snprintf(range, sizeof range, "%" PRIu64 "..%" PRIu64,
                              v[i], v[j]);
    if (len + 2 + rlen + ID_TAIL_ROOM > size)
      break;
    len += (size_t)snprintf(buf + len, size - len, "%s%s",
                            nranges > 0 ? ", " : "", range);
    nranges++;
    i = j + 1;
  }
  if (i < n)
    snprintf(buf + len, size - len, "%s... (%zu more)", len > 0 ? ", " : "",
             n - i);
  free(v);
}

/* Milliseconds below a second, seconds above. */
void cl_output_duration(double seconds, char *buf, size_t size) {
  if (seconds < 1.0)
    snprintf(buf, size, "%.1f ms", seconds * 1000.0);
  else
    snprintf(buf, size, "%.2f s", seconds);
}
