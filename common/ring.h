/* A FIFO ring of fixed-size entries that grows by doubling. Pure; the
 * memory comes through common/alloc.h, so the allocation test hook covers
 * it. Reserve first, then push: a push into reserved room cannot fail.
 *
 * Ownership: the ring owns its array; a zeroed ring with esz set (or
 * cl_ring_init) is empty.
 */
#ifndef CL_RING_H
#define CL_RING_H

#include <stddef.h>

typedef struct cl_ring {
  char *v;
  size_t head, n, cap, esz;
} cl_ring_t;

void cl_ring_init(cl_ring_t *r, size_t esz);
/* Room for `more` pushes. 0 or CL_ENOMEM (the ring unchanged). */
int cl_ring_reserve(cl_ring_t *r, size_t more);
/* The new last entry, in room reserved before. */
void *cl_ring_push(cl_ring_t *r);
/* Entry i from the front (i < n). */
void *cl_ring_at(const cl_ring_t *r, size_t i);
/* Drop the front entry (n > 0). */
void cl_ring_pop(cl_ring_t *r);
/* Drop every entry; the room stays. */
void cl_ring_clear(cl_ring_t *r);
void cl_ring_free(cl_ring_t *r);

#endif
