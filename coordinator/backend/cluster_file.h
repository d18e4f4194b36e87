/* Cluster files: the running daemons a user names with `clsnap --cluster
 * FILE`, one `ID HOST:PORT` line each, `#` comments and blank lines
 * allowed. Reading one, finding a server in it, and taking a topology's
 * servers from it in topology order.
 *
 * Who may call: the commands that work on running daemons. Nothing here
 * prints: problems come back in a cl_diag_t or err, ready to print.
 */
#ifndef CL_CLUSTER_FILE_H
#define CL_CLUSTER_FILE_H

#include <stddef.h>

#include "cluster.h"
#include "scenario.h"

/* Read a cluster file. Returns 0 and a malloc'd array in *out (caller
 * frees) of *n >= 1 entries, or CL_EINVAL (or the reader's code) with the
 * file, line and problem in diag. */
int cl_cluster_file_load(const char *path, cl_endpoint_t **out, size_t *n,
                         cl_diag_t *diag);

/* Index of server id among eps[0..n), or -1. */
int cl_cluster_file_find(const cl_endpoint_t *eps, size_t n, const char *id);

/* The endpoints of the topology's servers, in topology order, taken from a
 * cluster file's entries (file_name names it in messages). Returns 0 and a
 * malloc'd array in *out (caller frees), or CL_ENOENT with err naming the
 * first server the file lacks. */
int cl_cluster_file_endpoints(const cl_topology_t *topo,
                              const cl_endpoint_t *file, size_t nfile,
                              const char *file_name, cl_endpoint_t **out,
                              char *err, size_t errsize);

#endif
