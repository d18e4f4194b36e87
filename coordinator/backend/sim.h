/* An in-process backend: one daemon session (daemon/session.h) per server,
 * frames handed from one to another in memory, no sockets. Lockstep replay
 * over it is the reference model the multi-process run is compared with
 * (tests/), and it is handy for trying a scenario without starting
 * processes.
 *
 * Only lockstep delivery makes sense here: DELIVER hands the next frame
 * held on channel src->server to the server's session.
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
