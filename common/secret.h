/* The shared secret of a cluster (--secret-file, CLSNAP_SECRET_FILE): read
 * from a file that only its owner may read. Used by clsnapd and clsnap;
 * the handshake that proves knowledge of it is proto/auth.h.
 *
 * Ownership: a loaded secret owns its bytes; cl_secret_free wipes and
 * frees them (a zeroed secret is "no secret").
 */
#ifndef CL_SECRET_H
#define CL_SECRET_H

#include <stddef.h>
#include <stdint.h>

/* Longest secret accepted, bytes. */
#define CL_SECRET_MAX 4096

typedef struct cl_secret {
  uint8_t *bytes;
  size_t len; /* 0: no secret */
} cl_secret_t;

/* Read the secret in `path`: its raw bytes, one trailing newline removed.
 * Refused (CL_EINVAL, *err says why and what to do) when the file cannot
 * be read, is not a regular file, grants any permission to group or
 * others (mode & 077), is empty (after the newline) or holds more than
 * CL_SECRET_MAX bytes; CL_ENOMEM. */
int cl_secret_load(const char *path, cl_secret_t *out, char *err,
                   size_t errsize);
void cl_secret_free(cl_secret_t *s);

#endif
