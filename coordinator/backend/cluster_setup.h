/* Setting up a cluster of daemons for a topology: CONFIGURE every server,
 * then CONNECT them all, which opens the peer channels.
 *
 * Who may call: the commands that configure daemons (run, configure,
 * bench), on a cluster created in topology order.
 */
#ifndef CL_CLUSTER_SETUP_H
#define CL_CLUSTER_SETUP_H

#include <stddef.h>
#include <stdint.h>

#include "cluster.h"
#include "scenario.h"

/* CONFIGURE every server of c (endpoint i is topology server i) for topo,
 * wait for all OKs, then CONNECT all and wait for all OKs. The seed of
 * server i is derived from seed and i so that jitter streams differ.
 * Returns 0 or a negative CL_E* code with err naming the server. */
int cl_cluster_setup(cl_cluster_t *c, const cl_topology_t *topo,
                     int lockstep, uint32_t jitter_ms, uint64_t seed,
                     uint64_t timeout_ms, char *err, size_t errsize);

/* CONFIGURE only the nwhich servers listed (endpoint i is topology server
 * i), free-running unless lockstep, no jitter: for servers restarted
 * after a crash (clsnap restore). No CONNECT: the restore's FREEZE opens
 * every channel. Returns 0 or a CL_E* code with err naming the server. */
int cl_cluster_configure(cl_cluster_t *c, const cl_topology_t *topo,
                         const uint32_t *which, size_t nwhich, int lockstep,
                         uint64_t timeout_ms, char *err, size_t errsize);

#endif
