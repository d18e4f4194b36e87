/* A map from 64-bit ids (snapshot ids) to indexes or pointers: open addressing with
 * linear probing and backward-shift deletion, so no tombstones pile up.
 * Pure, no I/O. Ids that are small consecutive numbers spread well: keys
 * are mixed with cl_mix64 first.
 *
 * Ownership: the map owns its table; free it with cl_idmap_free. A zeroed
 * cl_idmap_t is an empty map.
 */
#ifndef CL_IDMAP_H
#define CL_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct cl_idmap_slot {
  uint64_t key;
  uintptr_t val; /* 0: empty slot; stored values are val + 1 */
} cl_idmap_slot_t;

typedef struct cl_idmap {
  cl_idmap_slot_t *t;
  size_t cap, n; /* cap is a power of two, or 0 */
} cl_idmap_t;

/* Room for `more` entries beyond n, so that as many puts cannot fail.
 * 0 or CL_ENOMEM (the map unchanged). */
int cl_idmap_reserve(cl_idmap_t *m, size_t more);
/* Set key -> val (val < UINTPTR_MAX: an index or a pointer). 0 or
 * CL_ENOMEM. */
int cl_idmap_put(cl_idmap_t *m, uint64_t key, uintptr_t val);
/* 1 and *val if key is there, else 0. */
int cl_idmap_get(const cl_idmap_t *m, uint64_t key, uintptr_t *val);
/* Remove key (if there). */
void cl_idmap_del(cl_idmap_t *m, uint64_t key);
void cl_idmap_free(cl_idmap_t *m);
/* Walk the entries: start with *pos = 0; returns 1 with the next key and
 * value, or 0 at the end. The map must not change meanwhile. */
int cl_idmap_next(const cl_idmap_t *m, size_t *pos, uint64_t *key,
                  uintptr_t *val);

#endif
