/* An in-process backend: one cl_node per server and a FIFO queue per
 * channel, no sockets. Lockstep replay over it is the reference model the
 * multi-process run is compared with (tests/), and it is handy for trying a
 * scenario without starting processes.
 *
 * Only lockstep delivery makes sense here: DELIVER pops the head of the
 * channel queue src->server and hands it to the server's node.
 */
#ifndef CL_SIM_H
#define CL_SIM_H

#include "replay.h"
#include "scenario.h"

typedef struct cl_sim cl_sim_t;

/* Most token messages queued on one channel; a SEND beyond it is an ERROR
 * reply CL_EFULL (markers are always queued, like the daemon's write cap). */
#define CL_SIM_QUEUE_MAX ((size_t)1 << 20)

/* Returns NULL on allocation failure or an invalid topology. */
cl_sim_t *cl_sim_new(const cl_topology_t *topo);
void cl_sim_free(cl_sim_t *sim);
/* A backend whose ctx is sim (borrowed). */
cl_backend_t cl_sim_backend(cl_sim_t *sim);

#endif
