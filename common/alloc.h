/* Allocation for the pure protocol code (node core, session, local states),
 * with a test hook that makes an allocation fail on purpose.
 *
 * Who may call: daemon/node.c, daemon/session.c, daemon/local_state.c; the
 * hook only from tests. The counter is process-global and not thread-safe,
 * like the daemon itself.
 */
#ifndef CL_ALLOC_H
#define CL_ALLOC_H

#include <stddef.h>

/* malloc/calloc/realloc, except that the n-th call after
 * cl_alloc_fail_after(n) returns NULL (once). */
void *cl_malloc(size_t n);
void *cl_calloc(size_t n, size_t size);
void *cl_realloc(void *p, size_t n);

/* Tests: make the n-th allocation from now on fail (n >= 1); 0 turns the
 * hook off. */
void cl_alloc_fail_after(unsigned long n);
/* Tests: 1 if the hook has made an allocation fail since it was set. */
int cl_alloc_failed(void);

#endif
