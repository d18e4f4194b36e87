#include "daemons.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cluster_file.h"
#include "cmds.h"
#include "error.h"
#include "local.h"
#include "output.h"
#include "progress.h"

/* See daemons.h. */
int cl_daemons_init(cl_daemons_t *d) {
  memset(d, 0, sizeof *d);
  if (uv_loop_init(&d->loop) != 0) {
    cl_cli_errf("cannot create an event loop");
    return -1;
  }
  d->loop_open = 1;
  return 0;
}

/* See daemons.h. */
int cl_daemons_start(cl_daemons_t *d, const cl_topology_t *topo,
                     const cl_launch_opts_t *lo, char *err, size_t errsize) {
  cl_launch_opts_t o = *lo;
  /* The daemons clsnap starts share its secret. */
  if (cl_cli.secret.len > 0)
    o.secret_file = cl_cli.secret_file;
  return cl_local_start(&d->loop, topo, &o, &d->launcher, &d->started, err,
                        errsize);
}

/* See daemons.h. */
int cl_daemons_file_load(const char *path, cl_endpoint_t **file, size_t *n) {
  cl_diag_t diag;
  if (cl_cluster_file_load(path, file, n, &diag) < 0)
    return cl_cli_bad_input(&diag);
  return 0;
}

/* See daemons.h. */
int cl_daemons_file_endpoints(const cl_topology_t *topo,
                              const cl_endpoint_t *file, size_t nfile,
                              const char *path, cl_endpoint_t **eps) {
  char why[CL_CMD_WHY_SIZE];
  size_t i = 0;
  int rc = cl_cluster_file_endpoints(topo, file, nfile, path, eps, why,
                                     sizeof why);
  if (rc == 0)
    return 0;
  while (i + 1 < topo->nservers &&
         cl_cluster_file_find(file, nfile, topo->servers[i].id) >= 0)
    i++;
  cl_cli_fail(rc, topo->servers[i].id, path, 0, "%s", why);
  return CL_EXIT_USAGE;
}

/* See daemons.h. */
int cl_daemons_attach(cl_daemons_t *d, const cl_endpoint_t *eps, size_t n,
                      uint64_t call_timeout_ms) {
  d->cluster = cl_cluster_new(&d->loop, eps, n);
  if (d->cluster == NULL) {
    cl_cli_errf("out of memory");
    return -1;
  }
  if (d->launcher != NULL)
    cl_cluster_set_guard(d->cluster, cl_launcher_guard, d->launcher);
  cl_cluster_set_before_notice(d->cluster, cl_progress_clear);
  cl_cluster_set_call_timeout(d->cluster, call_timeout_ms);
  cl_cluster_set_secret(d->cluster, &cl_cli.secret);
  return 0;
}

/* See daemons.h. */
int cl_daemons_check(const char *daemon, const char *log_dir) {
  char path[PATH_MAX], err[PATH_MAX + 128];
  if (cl_launcher_find_daemon(daemon, path, sizeof path, err, sizeof err) <
      0) {
    cl_cli_fail(CL_ENOENT, NULL, daemon, 0, "%s", err);
    return -1;
  }
  return log_dir != NULL ? cl_output_dir("--log-dir", log_dir) : 0;
}

/* See daemons.h. */
int cl_daemons_failed(cl_daemons_t *d, const char *what, const char *err,
                      int rc, const char *server, const char *file, int line) {
  cl_launcher_t *l = d->launcher;
  /* A broken connection is often a dead process: give its exit a moment to
   * be reaped so the message names the real cause. */
  if (l != NULL && !cl_launcher_interrupted(l)) {
    char why[400];
    if (cl_launcher_settle(l, 300, why, sizeof why) < 0 &&
        strstr(err, why) == NULL)
      cl_cli_errf("%s", why);
  }
  if (l != NULL && cl_launcher_interrupted(l)) {
    cl_cli_errf("interrupted; stopping the servers");
    return CL_EXIT_INTR;
  }
  if (server == NULL && d->cluster != NULL)
    server = cl_cluster_culprit(d->cluster);
  cl_cli_fail(rc < 0 ? rc : 0, server, file, line, "%s failed: %s", what,
              err[0] ? err : cl_strerror(rc));
  return CL_EXIT_FAIL;
}

/* See daemons.h. */
int cl_daemons_stop(cl_daemons_t *d, int status) {
  char err[1024];
  if (d->launcher == NULL)
    return status;
  if (cl_local_stop(d->cluster, d->launcher, err, sizeof err) < 0 &&
      status == CL_EXIT_OK) {
    cl_cli_errf("%s", err);
    return CL_EXIT_FAIL;
  }
  return status;
}

/* See daemons.h. */
int cl_daemons_interrupted(const cl_daemons_t *d, int status) {
  if (d->launcher != NULL && cl_launcher_interrupted(d->launcher) &&
      status != CL_EXIT_INTR) {
    cl_cli_errf("interrupted");
    return CL_EXIT_INTR;
  }
  return status;
}

/* See daemons.h. */
void cl_daemons_close(cl_daemons_t *d, int keep_logs) {
  cl_cluster_free(d->cluster);
  d->cluster = NULL;
  if (d->launcher != NULL)
    cl_launcher_free(d->launcher, keep_logs);
  d->launcher = NULL;
  if (d->loop_open && uv_loop_close(&d->loop) != 0)
    cl_cli_errf("internal: event loop still busy at exit");
  d->loop_open = 0;
  free(d->started);
  d->started = NULL;
}
