/* Keeping snapshots from the commands (see stored.h). */
#include "stored.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "error.h"
#include "util.h"

int cl_stored_dir(const char *given, const char *cluster, char *dir,
                  size_t size) {
  const char *slash;
  if (given != NULL) {
    snprintf(dir, size, "%s", given);
    return 0;
  }
  if ((cluster = cl_cli_cluster(cluster)) == NULL)
    return -1;
  slash = strrchr(cluster, '/');
  if (slash == NULL)
    snprintf(dir, size, "snapshots");
  else
    snprintf(dir, size, "%.*s/snapshots", (int)(slash - cluster), cluster);
  return 0;
}

char *cl_stored_topology(const cl_topology_t *topo) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (f == NULL)
    return NULL;
  if (cl_topology_write(topo, f) < 0) {
    fclose(f);
    free(text);
    return NULL;
  }
  fclose(f);
  return text;
}

char *cl_stored_topology_of(const cl_msg_t *reps, size_t n) {
  char *text = NULL, *canon = NULL;
  size_t len = 0, i;
  uint32_t j;
  cl_topology_t *topo;
  cl_diag_t diag;
  FILE *f = open_memstream(&text, &len);
  if (f == NULL)
    return NULL;
  fprintf(f, "%zu\n", n);
  for (i = 0; i < n; i++) {
    if (reps[i].type != CL_MSG_STATUS_R || !reps[i].u.status.configured) {
      fclose(f);
      free(text);
      return NULL;
    }
    fprintf(f, "%s %" PRId64 "\n", reps[i].u.status.self,
            reps[i].u.status.initial_tokens);
  }
  for (i = 0; i < n; i++)
    for (j = 0; j < reps[i].u.status.nout; j++)
      fprintf(f, "%s %s\n", reps[i].u.status.self,
              reps[i].u.status.out[j].peer);
  fclose(f);
  if (cl_topology_parse("status", text, &topo, &diag) == 0) {
    canon = cl_stored_topology(topo);
    cl_topology_free(topo);
  }
  free(text);
  return canon;
}

/* A copy of n items of size bytes (NULL for none). */
static void *dup_items(const void *p, size_t n, size_t size) {
  void *q;
  if (n == 0)
    return NULL;
  q = cl_xmalloc(n * size);
  memcpy(q, p, n * size);
  return q;
}

void cl_stored_make(cl_stored_t *rec, uint64_t id, const char *initiator,
                    int status, const char *reason, int64_t trigger_us,
                    int64_t completion_us, const char *topology,
                    const cl_local_state_t *states, size_t n,
                    const cl_verdict_t *v) {
  size_t i;
  memset(rec, 0, sizeof *rec);
  rec->id = id;
  snprintf(rec->initiator, sizeof rec->initiator, "%s", initiator);
  rec->status = status;
  if (reason != NULL)
    snprintf(rec->reason, sizeof rec->reason, "%s", reason);
  rec->trigger_us = trigger_us;
  rec->completion_us = completion_us;
  rec->duration_us = (completion_us ? completion_us : cl_utc_us()) -
                     trigger_us;
  if (rec->duration_us < 0)
    rec->duration_us = 0;
  if (topology != NULL) {
    rec->topology = cl_xmalloc(strlen(topology) + 1);
    memcpy(rec->topology, topology, strlen(topology) + 1);
  }
  rec->nstates = states != NULL ? n : 0;
  rec->states = rec->nstates ? cl_xcalloc(n, sizeof *rec->states) : NULL;
  for (i = 0; i < rec->nstates; i++) {
    cl_local_state_t *d = &rec->states[i];
    *d = states[i];
    d->recorded = dup_items(states[i].recorded, states[i].nrecorded,
                            sizeof *d->recorded);
    d->sent = dup_items(states[i].sent, states[i].nsent, sizeof *d->sent);
    d->recv = dup_items(states[i].recv, states[i].nrecv, sizeof *d->recv);
  }
  if (v != NULL) {
    rec->checked = 1;
    rec->verdict = *v;
  }
}

int cl_stored_save(cl_store_t *st, cl_stored_t *rec, uint64_t keep) {
  char why[PATH_MAX + 256];
  if (cl_store_put(st, rec, keep, why, sizeof why) == 0)
    return 0;
  cl_cli_fail(CL_EIO, NULL, NULL, 0, "snapshot %" PRIu64 " not stored: %s",
              rec->id, why);
  return -1;
}

cl_store_t *cl_stored_open(const char *dir) {
  char why[PATH_MAX + 256];
  cl_store_t *st;
  if (cl_store_open(dir, &st, why, sizeof why) == 0)
    return st;
  cl_cli_fail(CL_EIO, NULL, dir, 0, "%s", why);
  return NULL;
}

/* The file of SEQ|latest in dir into path. latest: the newest completed
 * snapshot. Returns 0, or the exit status after saying why not. */
int cl_stored_find(const char *dir, const char *which, const char *cmd,
                   char *path, size_t size) {
  cl_store_file_t *files;
  size_t n, i;
  uint64_t seq = 0;
  char why[PATH_MAX + 256];
  int latest = strcmp(which, "latest") == 0, found = -1;
  if (!latest && cl_cli_u64("SEQ", which, 1, UINT64_MAX, &seq) < 0)
    return CL_EXIT_USAGE;
  if (cl_store_list(dir, &files, &n, why, sizeof why) < 0) {
    cl_cli_fail(CL_EIO, NULL, dir, 0, "%s", why);
    return CL_EXIT_FAIL;
  }
  for (i = 0; i < n; i++)
    if (latest ? files[i].status == CL_STORED_COMPLETED
               : files[i].seq == seq)
      found = (int)i;
  if (found >= 0)
    snprintf(path, size, "%s", files[found].path);
  free(files);
  if (found >= 0)
    return 0;
  if (latest)
    cl_cli_fail(CL_ENOENT, NULL, dir, 0, "%s: no completed snapshot in "
                "%s (%zu stored; see clsnap history)", cmd, dir, n);
  else
    cl_cli_fail(CL_ENOENT, NULL, dir, 0, "%s: no snapshot #%" PRIu64
                " in %s: never stored, deleted by --keep, or its file is "
                "missing (see clsnap history)", cmd, seq, dir);
  return CL_EXIT_FAIL;
}

/* Re-check rec's states against its own topology into v. Returns 0, or
 * -1 with why set (the topology does not parse). */
int cl_stored_recheck(const cl_stored_t *rec, cl_verdict_t *v, char *why,
                      size_t size) {
  cl_topology_t *topo = NULL;
  cl_diag_t diag;
  if (rec->topology != NULL &&
      cl_topology_parse("topology", rec->topology, &topo, &diag) < 0) {
    char d[512];
    cl_diag_format(&diag, d, sizeof d);
    snprintf(why, size, "%.3500s: its topology does not parse: %.200s",
             rec->path, d);
    return -1;
  }
  cl_verify(topo, NULL, rec->states, rec->nstates, v);
  cl_topology_free(topo);
  return 0;
}

