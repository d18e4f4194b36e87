#include "local_state.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"

/* Copy a node's id (valid, so NUL-terminated within CL_ID_SIZE). */
static void copy_id(char dst[CL_ID_SIZE], const char *id) {
  memcpy(dst, id, strlen(id) + 1);
}

/* See local_state.h. */
int cl_local_state_from_node(const cl_node_t *node, uint64_t id,
                             const cl_node_state_t *st, cl_local_state_t *ls) {
  size_t k, nout = cl_node_nout(node), nin = cl_node_nin(node);
  memset(ls, 0, sizeof *ls);
  ls->snapshot_id = id;
  copy_id(ls->server, cl_node_self(node));
  ls->tokens = st->tokens;
  ls->initial_tokens = cl_node_initial_tokens(node);
  /* Every field of every run is set below: no need to zero it first. */
  if ((st->nrecorded &&
       !(ls->recorded = cl_malloc(st->nrecorded * sizeof *ls->recorded))) ||
      (nout && !(ls->sent = cl_calloc(nout, sizeof *ls->sent))) ||
      (nin && !(ls->recv = cl_calloc(nin, sizeof *ls->recv))))
    return CL_ENOMEM;
  ls->nrecorded = (uint32_t)st->nrecorded;
  for (k = 0; k < st->nrecorded; k++) {
    cl_recorded_t *r = &ls->recorded[k];
    copy_id(r->src, cl_node_in_id(node, st->recorded[k].in));
    r->seq = st->recorded[k].seq;
    r->count = st->recorded[k].count;
    r->n = st->recorded[k].n;
  }
  ls->nsent = (uint32_t)nout;
  for (k = 0; k < nout; k++) {
    copy_id(ls->sent[k].peer, cl_node_out_id(node, k));
    ls->sent[k].count = st->sent[k];
  }
  ls->nrecv = (uint32_t)nin;
  for (k = 0; k < nin; k++) {
    copy_id(ls->recv[k].peer, cl_node_in_id(node, k));
    ls->recv[k].count = st->recv[k];
  }
  return 0;
}
