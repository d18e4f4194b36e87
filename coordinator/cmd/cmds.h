/* clsnap's commands. Each takes the argument vector starting at the command
 * name and the global --cluster option (or NULL), and returns the process
 * exit status (CL_EXIT_*).
 */
#ifndef CL_CMDS_H
#define CL_CMDS_H

#include <stddef.h>

#include <limits.h>

/* Room for a message that names a file: any path, a line and the problem. */
#define CL_CMD_WHY_SIZE (PATH_MAX + 512)

/* `clsnap run TOPOLOGY EVENTS [options]`. */
int cl_cmd_run(int argc, char **argv, const char *cluster_file);

/* configure, send, snapshot, collect, status, shutdown against the daemons
 * of a cluster file. */
int cl_cmd_cluster(int argc, char **argv, const char *cluster_file);

/* `clsnap bench --nodes N --topology ring|mesh --seconds S [options]`:
 * throughput and snapshot cost of a local cluster in circulate mode (it
 * starts its own daemons: cluster_file is not used). */
int cl_cmd_bench(int argc, char **argv, const char *cluster_file);

/* `history` and `inspect SEQ|latest`: the snapshot store, offline. */
int cl_cmd_store(int argc, char **argv, const char *cluster_file);

/* `checkpoint --every DURATION ...`: periodic snapshots into the store;
 * `circulate on|off`: the load that keeps tokens moving. */
int cl_cmd_checkpoint(int argc, char **argv, const char *cluster_file);

/* `restore SEQ|latest` and `resume` (docs/RESTORE.md). */
int cl_cmd_restore(int argc, char **argv, const char *cluster_file);

/* `trace start|stop|dump FILE`, `diagram TRACE`, `explain TRACE SNAPSHOT`
 * (docs/TRACE.md). */
int cl_cmd_trace(int argc, char **argv, const char *cluster_file);

/* Read the n servers' traces through be (ids: theirs, backend order) and
 * write the merged trace to path ("-": stdout), with a summary line on
 * stderr. Returns 0, or -1 after saying why. For run --trace. */
struct cl_backend;
int cl_trace_save(const struct cl_backend *be, size_t n,
                  const char *const *ids, const char *path);

#endif
