/* The commands that read the snapshot store, offline: history (the list)
 * and inspect (one snapshot re-verified). Neither talks to a daemon.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "cmds.h"
#include "error.h"
#include "output.h"
#include "store.h"
#include "stored.h"
#include "usage.h"
#include "util.h"

/* One row of history: the file, and what reading it gave. */
typedef struct row {
  const cl_store_file_t *file;
  cl_stored_t rec;
  int damaged;
  char why[PATH_MAX + 256];
} row_t;

/* "2.1 ms" for microseconds. */
static void duration_text(int64_t us, char *buf, size_t size) {
  cl_output_duration((double)us / 1e6, buf, size);
}

/* A JSON integer, or null when the snapshot has no verdict. */
static json_t *json_checked(const cl_stored_t *rec, int64_t v) {
  return rec->checked ? json_integer(v) : json_null();
}

/* The fields history and inspect share: id, status, reason, initiator,
 * duration_us, size, into o. */
static void json_meta(json_t *o, const cl_stored_t *rec) {
  json_object_set_new(o, "id", json_integer((json_int_t)rec->id));
  json_object_set_new(o, "status",
                      json_string(cl_store_status_name(rec->status)));
  json_object_set_new(o, "reason", rec->reason[0]
                                       ? cl_cli_json_text(rec->reason)
                                       : json_null());
  json_object_set_new(o, "initiator", json_string(rec->initiator));
  json_object_set_new(o, "duration_us", json_integer(rec->duration_us));
  json_object_set_new(o, "size", json_integer((json_int_t)rec->size));
}

static json_t *row_json(const row_t *r) {
  char trig[32];
  const cl_stored_t *rec = &r->rec;
  json_t *o = json_object();
  json_object_set_new(o, "seq", json_integer((json_int_t)r->file->seq));
  if (r->damaged) {
    json_object_set_new(o, "status", json_string(
                                         cl_store_status_name(r->file->status)));
    json_object_set_new(o, "damaged", cl_cli_json_text(r->why));
    json_object_set_new(o, "file", cl_cli_json_text(r->file->path));
    return o;
  }
  cl_store_time(rec->trigger_us, trig, sizeof trig);
  json_meta(o, rec);
  json_object_set_new(o, "trigger_time", json_string(trig));
  json_object_set_new(o, "tokens_on_servers",
                      json_checked(rec, rec->verdict.server_tokens));
  json_object_set_new(o, "tokens_in_flight",
                      json_checked(rec, rec->verdict.channel_tokens));
  json_object_set_new(o, "messages_in_flight",
                      json_checked(rec, (int64_t)rec->verdict.nrecorded));
  json_object_set_new(o, "ok", json_boolean(rec->checked && rec->verdict.ok));
  json_object_set_new(o, "file", cl_cli_json_text(rec->path));
  return o;
}

static void row_text(const row_t *r) {
  const cl_stored_t *rec = &r->rec;
  char trig[32], dur[32], srv[24], fly[24];
  if (r->damaged) {
    printf("%6" PRIu64 "  %-10s  DAMAGED: %s\n", r->file->seq, "-", r->why);
    return;
  }
  cl_store_time(rec->trigger_us, trig, sizeof trig);
  duration_text(rec->duration_us, dur, sizeof dur);
  snprintf(srv, sizeof srv, "%" PRId64, rec->verdict.server_tokens);
  snprintf(fly, sizeof fly, "%" PRId64, rec->verdict.channel_tokens);
  printf("%6" PRIu64 "  %-10" PRIu64 "  %-9s  %-9s  %s  %10s  %9" PRIu64
         "  %8s  %9s\n",
         rec->seq, rec->id, cl_store_status_name(rec->status),
         rec->initiator, trig, dur, rec->size, rec->checked ? srv : "-",
         rec->checked ? fly : "-");
  if (rec->reason[0] != '\0')
    printf("%8s%s\n", "", rec->reason);
}

/* `history`: every stored snapshot, checked, as a table or JSON. */
static int cmd_history(const char *dir, int json) {
  cl_store_file_t *files;
  size_t n, i, count[3] = {0, 0, 0}, damaged = 0;
  row_t *rows;
  char why[PATH_MAX + 256];
  json_t *arr;
  if (cl_store_list(dir, &files, &n, why, sizeof why) < 0) {
    cl_cli_fail(CL_EIO, NULL, dir, 0, "%s", why);
    return CL_EXIT_FAIL;
  }
  rows = cl_xcalloc(n ? n : 1, sizeof *rows);
  for (i = 0; i < n; i++) {
    rows[i].file = &files[i];
    if (cl_store_read(files[i].path, &rows[i].rec, rows[i].why,
                      sizeof rows[i].why) < 0) {
      rows[i].damaged = 1;
      damaged++;
      cl_cli_fail(CL_EINVAL, NULL, files[i].path, 0, "history: %s",
                  rows[i].why);
    } else {
      count[rows[i].rec.status]++;
    }
  }
  if (json) {
    arr = json_array();
    for (i = 0; i < n; i++)
      json_array_append_new(arr, row_json(&rows[i]));
    cl_json_print(arr);
  } else {
    if (n > 0)
      printf("%6s  %-10s  %-9s  %-9s  %-27s  %10s  %9s  %8s  %9s\n", "SEQ",
             "ID", "STATUS", "INITIATOR", "TRIGGERED (UTC)", "DURATION",
             "BYTES", "SERVERS", "IN FLIGHT");
    for (i = 0; i < n; i++)
      row_text(&rows[i]);
    printf("%zu stored in %s: %zu completed, %zu failed, %zu timed out",
           n, dir, count[CL_STORED_COMPLETED], count[CL_STORED_FAILED],
           count[CL_STORED_TIMED_OUT]);
    if (damaged > 0)
      printf(", %zu DAMAGED", damaged);
    printf("\n");
  }
  for (i = 0; i < n; i++)
    cl_store_record_free(&rows[i].rec);
  free(rows);
  free(files);
  return damaged > 0 ? CL_EXIT_FAIL : CL_EXIT_OK;
}

/* The metadata of rec as `key: value` lines. */
static void print_meta(const cl_stored_t *rec) {
  char t[32], dur[32];
  printf("file: %s\n", rec->path);
  printf("seq: %" PRIu64 "\n", rec->seq);
  printf("id: %" PRIu64 "\n", rec->id);
  printf("status: %s\n", cl_store_status_name(rec->status));
  if (rec->reason[0] != '\0')
    printf("reason: %s\n", rec->reason);
  printf("initiator: %s\n", rec->initiator);
  cl_store_time(rec->trigger_us, t, sizeof t);
  printf("triggered: %s\n", t);
  if (rec->completion_us != 0) {
    cl_store_time(rec->completion_us, t, sizeof t);
    printf("completed: %s\n", t);
  }
  duration_text(rec->duration_us, dur, sizeof dur);
  printf("duration: %s\n", dur);
  printf("size: %" PRIu64 " bytes\n", rec->size);
  printf("checksum: sha256:%s (verified)\n", rec->sha256);
  if (rec->topology != NULL)
    printf("topology: sha256:%s\n", rec->topology_sha256);
  else
    printf("topology: unknown\n");
}

/* inspect --json: the metadata, and the checked snapshot when there are
 * states (snap and v then hold it). */
static json_t *inspect_json(const cl_stored_t *rec, const cl_snap_t *snap,
                            const cl_verdict_t *v) {
  json_t *o = json_object();
  json_object_set_new(o, "file", cl_cli_json_text(rec->path));
  json_object_set_new(o, "seq", json_integer((json_int_t)rec->seq));
  json_meta(o, rec);
  json_object_set_new(o, "sha256", json_string(rec->sha256));
  json_object_set_new(o, "checksum_ok", json_true());
  if (v != NULL)
    json_object_set_new(o, "snapshot",
                        cl_json_checked(rec->id, snap, v, rec->states,
                                        rec->nstates));
  return o;
}

/* The checked snapshot as text: the .snap lines, the verdict line and
 * its problems. */
static void inspect_text(const cl_stored_t *rec, const cl_snap_t *snap,
                         const cl_verdict_t *v, int snap_only) {
  char line[1024];
  size_t i;
  if (snap != NULL)
    cl_snap_write(snap, stdout);
  else if (!snap_only)
    printf("(%zu recorded messages: too many to list)\n", v->nrecorded);
  if (snap_only)
    return;
  cl_verify_line(rec->id, v, line, sizeof line);
  printf("%s\n", line);
  for (i = 0; !v->ok && i < v->nproblems && i < CL_VERIFY_MAX_PROBLEMS; i++)
    printf("  %s\n", v->problems[i]);
}

/* `inspect SEQ|latest`: read, check and print one stored snapshot. A
 * failed entry with states is checked and printed too; exit 0 only for a
 * completed snapshot that passes. */
static int cmd_inspect(const char *dir, const char *which, int json,
                       int snap_only) {
  char path[PATH_MAX], why[PATH_MAX + 256];
  cl_stored_t rec;
  cl_verdict_t v;
  cl_snap_t *snap = NULL;
  int has = 0, status = cl_stored_find(dir, which, "inspect", path, sizeof path);
  if (status != 0)
    return status;
  if (cl_store_read(path, &rec, why, sizeof why) < 0) {
    cl_cli_fail(CL_EINVAL, NULL, path, 0, "inspect: %s", why);
    return CL_EXIT_FAIL;
  }
  if (rec.nstates > 0) {
    if (cl_stored_recheck(&rec, &v, why, sizeof why) < 0) {
      cl_cli_fail(CL_EINVAL, NULL, path, 0, "inspect: %s", why);
      cl_store_record_free(&rec);
      return CL_EXIT_FAIL;
    }
    has = 1;
    if (cl_verify_global_snap(rec.id, rec.states, rec.nstates, &snap) < 0)
      snap = NULL;
  }
  if (json) {
    cl_json_print(inspect_json(&rec, snap, has ? &v : NULL));
  } else {
    if (!snap_only)
      print_meta(&rec);
    if (has)
      inspect_text(&rec, snap, &v, snap_only);
  }
  status = CL_EXIT_OK;
  if (rec.status != CL_STORED_COMPLETED) {
    cl_cli_fail(CL_ESTATE, NULL, path, 0, "inspect: #%" PRIu64 " %s: %s",
                rec.seq, rec.status == CL_STORED_TIMED_OUT ? "timed out"
                                                           : "failed",
                rec.reason[0] ? rec.reason : "no reason given");
    status = CL_EXIT_FAIL;
  } else if (!has || !v.ok) {
    cl_cli_fail(CL_EINVAL, NULL, path, 0, "inspect: #%" PRIu64 " fails its "
                "check: %s", rec.seq, has ? v.problems[0] : "no states");
    status = CL_EXIT_FAIL;
  }
  if (snap != NULL)
    cl_snap_free(snap);
  cl_store_record_free(&rec);
  return status;
}

/* The store must exist: a mistyped --store is said, not shown as empty.
 * 0, or the exit status after saying why not. */
static int store_exists(const char *cmd, const char *dir) {
  struct stat st;
  if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
    return 0;
  cl_cli_fail(CL_ENOENT, NULL, dir, 0, "%s: %s: no snapshot store there "
              "(%s)", cmd, dir,
              errno == ENOENT ? "no such directory" : "not a directory");
  return CL_EXIT_FAIL;
}

int cl_cmd_store(int argc, char **argv, const char *cluster_file) {
  const char *store = NULL, *cluster = cluster_file, *pos[1];
  int snap_only = 0, npos, want = strcmp(argv[0], "inspect") == 0;
  char dir[PATH_MAX];
  cl_opt_t opts[] = {{"store", 0, 1, &store, NULL},
                     {"cluster", 0, 1, &cluster, NULL},
                     {"snap", 0, 0, NULL, &snap_only},
                     {NULL, 0, 0, NULL, NULL}};
  if (!want)
    opts[2] = opts[3];
  npos = cl_cli_parse(argc, argv, opts, pos, want);
  if (npos < 0)
    return CL_EXIT_USAGE;
  if (cl_cli.help)
    return cl_cli_help(argv[0]);
  if (npos != want)
    return cl_cli_usage("needs SEQ (a number from clsnap history) or latest");
  if (cl_stored_dir(store, cluster, dir, sizeof dir) < 0)
    return CL_EXIT_USAGE;
  errno = 0;
  if (store_exists(argv[0], dir) != 0)
    return CL_EXIT_FAIL;
  if (want)
    return cmd_inspect(dir, pos[0], cl_cli.json, snap_only);
  return cmd_history(dir, cl_cli.json);
}
