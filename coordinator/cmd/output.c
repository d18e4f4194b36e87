#include "output.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* One checked snapshot as a JSON object. */
json_t *cl_json_checked(uint64_t id, const cl_snap_t *snap,
                        const cl_verdict_t *v) {
  json_t *o = json_object(), *tokens = json_object(), *servers = json_object(),
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
      json_object_set_new(servers, snap->servers[i].id,
                          json_integer(snap->servers[i].tokens));
    for (i = 0; i < snap->nmsgs; i++) {
      json_t *m = json_object();
      json_object_set_new(m, "src", json_string(snap->msgs[i].src));
      json_object_set_new(m, "dst", json_string(snap->msgs[i].dst));
      json_object_set_new(m, "tokens", json_integer(snap->msgs[i].n));
      json_array_append_new(msgs, m);
    }
  }
  json_object_set_new(o, "servers", servers);
  json_object_set_new(o, "messages", msgs);
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
  json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  fputc('\n', stdout);
  json_decref(j);
}

/* mkdir -p. Returns 0 or -1 with errno. */
static int mkdirs(const char *dir) {
  char buf[4096];
  size_t i, len = strlen(dir);
  if (len == 0 || len >= sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(buf, dir, len + 1);
  for (i = 1; i <= len; i++) {
    if (buf[i] == '/' || buf[i] == '\0') {
      char c = buf[i];
      buf[i] = '\0';
      if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return -1;
      buf[i] = c;
    }
  }
  return 0;
}

/* Write DIR/<id>.snap, creating DIR first. */
int cl_output_snap_file(const char *dir, uint64_t id, const cl_snap_t *snap) {
  char path[4200];
  FILE *f;
  int bad;
  if (mkdirs(dir) != 0) {
    cl_cli_errf("cannot create directory %s: %s", dir, strerror(errno));
    return -1;
  }
  snprintf(path, sizeof path, "%s/%" PRIu64 ".snap", dir, id);
  f = fopen(path, "w");
  if (f == NULL) {
    cl_cli_errf("cannot write %s: %s", path, strerror(errno));
    return -1;
  }
  bad = cl_snap_write(snap, f) < 0;
  bad |= ferror(f) != 0;
  bad |= fclose(f) != 0;
  if (bad) {
    cl_cli_errf("cannot write %s", path);
    return -1;
  }
  return 0;
}

/* Milliseconds below a second, seconds above. */
void cl_output_duration(double seconds, char *buf, size_t size) {
  if (seconds < 1.0)
    snprintf(buf, size, "%.1f ms", seconds * 1000.0);
  else
    snprintf(buf, size, "%.2f s", seconds);
}
