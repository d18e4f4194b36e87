/* A node's recorded state for one snapshot in the wire's form
 * (cl_local_state_t): what the daemon sends in STATE and LOCAL_STATE and
 * what the in-process backend replies with. Pure: no I/O.
 *
 * Who may call: daemon/control.c and coordinator/sim.c.
 */
#ifndef CL_LOCAL_STATE_H
#define CL_LOCAL_STATE_H

#include <stdint.h>

#include "node.h"
#include "wire.h"

/* Fill ls (zeroed first) from st, node's recorded state of snapshot id:
 * the server's id and token counts, the recorded runs with their source
 * ids, and the sent and received counts per channel in the node's index
 * order. The arrays are malloc'd and owned by ls (free each, or
 * cl_msg_free the message holding ls); on failure what was allocated is
 * still in ls. The caller bounds st->nrecorded (the counts in ls are
 * 32-bit; a frame lists at most CL_WIRE_MAX_ITEMS). Returns 0 or
 * CL_ENOMEM. */
int cl_local_state_from_node(const cl_node_t *node, uint64_t id,
                             const cl_node_state_t *st, cl_local_state_t *ls);

#endif
