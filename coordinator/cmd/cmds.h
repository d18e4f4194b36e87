/* clsnap's commands. Each takes the argument vector starting at the command
 * name and returns the process exit status (CL_EXIT_*).
 */
#ifndef CL_CMDS_H
#define CL_CMDS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cluster.h"
#include "launcher.h"
#include "scenario.h"

/* `clsnap run TOPOLOGY EVENTS [options]`. cluster_file: the global
 * --cluster option, or NULL. */
int cl_cmd_run(int argc, char **argv, const char *cluster_file);

/* configure, send, snapshot, collect, status, shutdown against the daemons
 * of a cluster file. */
int cl_cmd_cluster(int argc, char **argv, const char *cluster_file);

/* `clsnap bench --nodes N --topology ring|mesh --seconds S [options]`:
 * throughput and snapshot cost of a local cluster in circulate mode. */
int cl_cmd_bench(int argc, char **argv);
/* bench's help text, to f. */
void cl_bench_usage(FILE *f);

/* 1 if cmd is one of the cluster commands. */
int cl_is_cluster_cmd(const char *cmd);

/* Read a cluster file (`ID HOST:PORT` lines, `#` comments). Returns 0 and a
 * malloc'd array, or -1 after printing "FILE:LINE: message". */
int cl_cluster_file_load(const char *path, cl_endpoint_t **out, size_t *n);

/* The endpoints of the topology's servers, in topology order, taken from a
 * cluster file's entries. Returns 0, or -1 after printing which server is
 * missing from the file. */
int cl_endpoints_for_topology(const cl_topology_t *topo,
                              const cl_endpoint_t *file, size_t nfile,
                              const char *file_name, cl_endpoint_t **out);

/* CONFIGURE every server of the cluster (created in topology order) for
 * topo, wait for all OKs, then CONNECT all and wait for all OKs. The seed of
 * server i is derived from seed and i so that jitter streams differ.
 * Returns 0 or a negative CL_E* code with err naming the server. */
int cl_configure_cluster(cl_cluster_t *c, const cl_topology_t *topo,
                         int lockstep, uint32_t jitter_ms, uint64_t seed,
                         uint64_t timeout_ms, char *err, size_t errsize);

/* After a command on a cluster failed with rc and err: name the daemon
 * whose exit broke it (launcher may be NULL), then print "WHAT failed:
 * ERR". Returns the exit status: CL_EXIT_INTR if clsnap was interrupted,
 * CL_EXIT_FAIL otherwise. */
int cl_report_failure(cl_launcher_t *launcher, const char *what,
                      const char *err, int rc);

#endif
