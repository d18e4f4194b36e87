/* The daemons one command works with, started here (run, bench) or named
 * by a cluster file: the event loop, the launcher of the started ones and
 * the cluster of connections, opened and closed in order, and the one way
 * a failure on them is reported.
 *
 * Who may call: the commands. Like every cmd/ file this prints (error
 * lines on stderr) and speaks in exit statuses.
 */
#ifndef CL_DAEMONS_H
#define CL_DAEMONS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "cluster.h"
#include "launcher.h"
#include "scenario.h"

typedef struct cl_daemons {
  uv_loop_t loop;
  int loop_open;
  cl_launcher_t *launcher; /* NULL: daemons named by a cluster file */
  cl_cluster_t *cluster;   /* NULL until cl_daemons_attach */
  cl_endpoint_t *started;  /* [topology servers] endpoints of the daemons
                              cl_daemons_start started (owned) */
} cl_daemons_t;

/* Zero d and create its loop. Returns 0, or -1 after printing why. */
int cl_daemons_init(cl_daemons_t *d);

/* Before any daemon starts: the clsnapd to run can be found (daemon:
 * --daemon or NULL) and log_dir (--log-dir or NULL) is a directory clsnap
 * can write in. Returns 0, or -1 after printing why. */
int cl_daemons_check(const char *daemon, const char *log_dir);

/* Start one local clsnapd per topology server (in topology order); their
 * endpoints are then d->started. Returns 0, or a negative CL_E* code with
 * err set (d->launcher may be set even then: what did start is stopped by
 * cl_daemons_stop). */
int cl_daemons_start(cl_daemons_t *d, const cl_topology_t *topo,
                     const cl_launch_opts_t *lo, char *err, size_t errsize);

/* Read the cluster file at path into *file (*n >= 1 entries, caller
 * frees). Returns 0, or CL_EXIT_USAGE after printing why (its file and
 * line kept for --json). */
int cl_daemons_file_load(const char *path, cl_endpoint_t **file, size_t *n);

/* The topology's servers, in topology order, from the nfile entries of the
 * cluster file at path into *eps (caller frees). Returns 0, or
 * CL_EXIT_USAGE after naming the first server the file lacks. */
int cl_daemons_file_endpoints(const cl_topology_t *topo,
                              const cl_endpoint_t *file, size_t nfile,
                              const char *path, cl_endpoint_t **eps);

/* Create the cluster of n endpoints on d's loop (not connected yet), with
 * the launcher as its guard if there is one and call_timeout_ms as the
 * deadline of backend calls. Returns 0, or -1 after printing why. */
int cl_daemons_attach(cl_daemons_t *d, const cl_endpoint_t *eps, size_t n,
                      uint64_t call_timeout_ms);

/* After a command on the daemons failed with rc and err: name the daemon
 * whose exit broke it, then print "WHAT failed: ERR", kept for --json's
 * error object with the code rc, the server at fault (server, else the
 * cluster's culprit) and the input file and line at fault (file NULL if
 * none). Returns the exit status: CL_EXIT_INTR if clsnap was interrupted,
 * CL_EXIT_FAIL otherwise. */
int cl_daemons_failed(cl_daemons_t *d, const char *what, const char *err,
                      int rc, const char *server, const char *file, int line);

/* Stop the daemons d started (nothing for a cluster file's): SHUTDOWN to
 * those still connected, then the launcher stops them all. Returns status,
 * or CL_EXIT_FAIL after printing why if status was CL_EXIT_OK and a daemon
 * stopped badly. */
int cl_daemons_stop(cl_daemons_t *d, int status);

/* status, or CL_EXIT_INTR after saying so if clsnap was interrupted while
 * it ran daemons of its own. */
int cl_daemons_interrupted(const cl_daemons_t *d, int status);

/* Close the connections, free the launcher (keeping a temporary log
 * directory if keep_logs) and close the loop. Safe after a failed init. */
void cl_daemons_close(cl_daemons_t *d, int keep_logs);

#endif
