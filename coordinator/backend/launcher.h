/* Starting and stopping a local cluster of clsnapd processes for `clsnap
 * run`: one `clsnapd --id ID --listen 127.0.0.1:0 --die-with-parent` per
 * server, spawned with uv_spawn on the caller's loop. A daemon is ready when
 * it prints `READY <id> <host:port>` on stdout; its stderr goes to
 * DIR/<id>.log. A daemon that exits before it is told to is a failure of the
 * run, detected whenever the loop runs (cl_launcher_failed).
 *
 * The launcher also watches SIGINT and SIGTERM while it lives, so that an
 * interrupted run still stops its daemons (cl_launcher_interrupted).
 *
 * Ownership: the launcher owns its process, pipe, timer and signal handles;
 * cl_launcher_free closes them and runs the loop until they are closed.
 */
#ifndef CL_LAUNCHER_H
#define CL_LAUNCHER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "util.h"

#define CL_LAUNCH_READY_MS 10000
/* Grace between SIGTERM and SIGKILL. */
#define CL_LAUNCH_KILL_MS 2000
/* Grace between an acknowledged SHUTDOWN and SIGKILL. */
#define CL_LAUNCH_EXIT_MS 30000

typedef struct cl_launch_opts {
  const char *daemon;  /* clsnapd path, or NULL to search */
  const char *log_dir; /* NULL: a fresh temporary directory */
  const char *extra;   /* NULL, or one extra argument for every daemon */
  const char *secret_file; /* NULL, or every daemon's --secret-file */
  uint64_t ready_ms;   /* 0: CL_LAUNCH_READY_MS */
} cl_launch_opts_t;

typedef struct cl_launcher cl_launcher_t;

/* Find clsnapd: explicit path if given; else next to this executable, then
 * ../daemon/clsnapd relative to it (build tree), then PATH. Writes the path
 * (or bare "clsnapd" for a PATH search) into out. Returns 0 or CL_ENOENT
 * (err says where it looked). */
int cl_launcher_find_daemon(const char *explicit_path, char *out,
                            size_t outsize, char *err, size_t errsize);

/* Start n daemons (ids distinct, valid) and wait until all are ready.
 * Returns 0 and *out; on failure a negative CL_E* code with err naming the
 * server, and *out is still set (so the caller can stop what did start and
 * free it) unless allocation failed (then NULL). */
int cl_launcher_start(uv_loop_t *loop, const cl_launch_opts_t *opts,
                      const char (*ids)[CL_ID_SIZE], size_t n,
                      cl_launcher_t **out, char *err, size_t errsize);

/* The address daemon i reported ("127.0.0.1:PORT"), "" before READY. */
const char *cl_launcher_addr(const cl_launcher_t *l, size_t i);

/* CL_EIO with err set if a daemon exited while it should be running; 0
 * otherwise. Usable as a cl_guard_fn (ctx is the launcher); also reports
 * CL_EIO "interrupted" after SIGINT/SIGTERM. */
int cl_launcher_guard(void *ctx, char *err, size_t errsize);
/* Signal number that interrupted the run, or 0. */
int cl_launcher_interrupted(const cl_launcher_t *l);
/* Run the loop for up to ms, returning early once a daemon exit is seen;
 * then like cl_launcher_guard but only for exits. Lets a caller whose
 * connection broke learn whether the process died, and how. */
int cl_launcher_settle(cl_launcher_t *l, uint64_t ms, char *err,
                       size_t errsize);

/* Stop every daemon still running: those with asked[i] set acknowledged
 * SHUTDOWN and get CL_LAUNCH_EXIT_MS to exit, the others get SIGTERM at
 * once and SIGKILL after CL_LAUNCH_KILL_MS; then wait for every exit. asked
 * may be NULL. Returns 0, or CL_EIO with err naming the first daemon that
 * stopped badly: a non-zero status (a sanitizer's report at exit), a
 * signal, or the SIGKILL after the grace. Only the first call stops. */
int cl_launcher_stop(cl_launcher_t *l, const uint8_t *asked, char *err,
                     size_t errsize);

/* Stop (if not done), close every handle, and remove the temporary log
 * directory if keep_logs is 0 (a directory given by the user is never
 * removed). When logs of a temporary directory are kept, its path is
 * printed to stderr. */
void cl_launcher_free(cl_launcher_t *l, int keep_logs);

#endif
