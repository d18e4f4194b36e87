/* A cluster of local daemons for one command (run, bench): started from a
 * topology, one clsnapd per server on 127.0.0.1, and stopped in order.
 *
 * Who may call: the commands that start their own daemons.
 */
#ifndef CL_LOCAL_H
#define CL_LOCAL_H

#include <stddef.h>

#include <uv.h>

#include "cluster.h"
#include "launcher.h"
#include "scenario.h"

/* Start one local clsnapd per topology server (in topology order) and
 * give their endpoints in *eps (malloc'd, caller frees). Returns 0, or a
 * negative CL_E* code with err set; *launcher may be set even on failure
 * (it holds what must still be stopped). */
int cl_local_start(uv_loop_t *loop, const cl_topology_t *topo,
                   const cl_launch_opts_t *lo, cl_launcher_t **launcher,
                   cl_endpoint_t **eps, char *err, size_t errsize);

/* Ask every server still connected (cluster may be NULL) to shut down,
 * then stop the launcher. Returns 0, or CL_EIO with err naming a daemon
 * that stopped badly (a non-zero status at exit, as a sanitizer's leak
 * report gives, a signal, or the kill after the grace). */
int cl_local_stop(cl_cluster_t *cluster, cl_launcher_t *launcher, char *err,
                  size_t errsize);

#endif
