#include "alloc.h"

#include <stdlib.h>

/* Allocations left before the planned failure; 0: none planned. */
static unsigned long countdown;
static int failed;

/* 1 if this allocation is the one planned to fail. */
static int fail_now(void) {
  if (countdown == 0)
    return 0;
  if (--countdown > 0)
    return 0;
  failed = 1;
  return 1;
}

void *cl_malloc(size_t n) { return fail_now() ? NULL : malloc(n); }

void *cl_calloc(size_t n, size_t size) {
  return fail_now() ? NULL : calloc(n, size);
}

void *cl_realloc(void *p, size_t n) {
  return fail_now() ? NULL : realloc(p, n);
}

void cl_alloc_fail_after(unsigned long n) {
  countdown = n;
  failed = 0;
}

int cl_alloc_failed(void) { return failed; }
