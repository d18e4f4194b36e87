/* The snapshot store: a directory with one file per stored snapshot,
 * written atomically and checked whenever it is read (docs/STORE.md has
 * the layout and the format).
 *
 *   DIR/.lock                       flock(2)ed while numbering or deleting
 *   DIR/.000007.tmp                 seq 7 reserved, being written (flock'ed
 *                                   by its writer: one nobody holds is a
 *                                   crashed write and is removed)
 *   DIR/000007-completed.json       a stored snapshot: seq, then status
 *   DIR/000008-timed_out.json       (completed, failed, timed_out)
 *
 * A file is one JSON text:
 *   {"format":"clsnap-snapshot-1","sha256":"<64 hex>","snapshot":BODY}\n
 * where the SHA-256 is of BODY's bytes exactly as they are in the file.
 *
 * Who may call: the commands (they print; this module does not). Plain
 * POSIX file I/O, no event loop.
 */
#ifndef CL_STORE_H
#define CL_STORE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "verify.h"
#include "wire.h"

typedef enum cl_stored_status {
  CL_STORED_COMPLETED,
  CL_STORED_FAILED,
  CL_STORED_TIMED_OUT
} cl_stored_status_t;

/* "completed", "failed", "timed_out". */
const char *cl_store_status_name(int status);

/* One stored snapshot: what a command gives cl_store_put, and what
 * cl_store_read gives back. */
typedef struct cl_stored {
  uint64_t seq;                /* set by cl_store_put */
  uint64_t id;                 /* the snapshot id */
  char initiator[CL_ID_SIZE];
  int status;                  /* cl_stored_status_t */
  char reason[1024];           /* why it failed or timed out; "" if not */
  int64_t trigger_us;          /* UTC, microseconds since the epoch */
  int64_t completion_us;       /* 0: it never completed */
  int64_t duration_us;         /* trigger to completion (or to giving up) */
  char *topology;              /* .top text (owned; NULL: unknown) */
  cl_local_state_t *states;    /* owned; the servers' local states */
  size_t nstates;
  int checked;                 /* verdict holds the check of the states */
  cl_verdict_t verdict;
  /* Filled by cl_store_put and cl_store_read: */
  char topology_sha256[65];    /* of the topology text */
  char sha256[65];             /* of the body */
  uint64_t size;               /* bytes of the file */
  char path[PATH_MAX];
} cl_stored_t;

/* Release what rec owns (states, topology) and zero it. */
void cl_store_record_free(cl_stored_t *rec);

typedef struct cl_store cl_store_t;

/* Open (and create, with its parents) the store at dir. Returns 0, or
 * CL_EIO with why set. */
int cl_store_open(const char *dir, cl_store_t **out, char *why,
                  size_t whysize);

/* Give up the reservation if any, and free. NULL is fine. */
void cl_store_close(cl_store_t *s);

/* Reserve the next sequence number (at trigger time, so that numbers
 * follow trigger order across every process sharing the store). One
 * reservation at a time per handle. Returns 0, or CL_EIO with why. */
int cl_store_reserve(cl_store_t *s, uint64_t *seq, char *why, size_t whysize);

/* Drop the reservation; nothing is stored. */
void cl_store_cancel(cl_store_t *s);

/* Store rec under the reserved number (reserving one if none is), then
 * apply retention: with keep > 0, only the keep newest completed
 * snapshots stay, and the keep newest failed or timed-out ones. Fills
 * rec->seq, sha256, size, path, topology_sha256. Returns 0, or CL_EIO with
 * why (nothing that claims to be a snapshot is left behind then). */
int cl_store_put(cl_store_t *s, cl_stored_t *rec, uint64_t keep, char *why,
                 size_t whysize);

/* One file of the store as its name says. */
typedef struct cl_store_file {
  uint64_t seq;
  int status;
  char path[PATH_MAX];
} cl_store_file_t;

/* The snapshot files in dir, by sequence number (*files owned by the
 * caller; dir missing: none). Returns 0, or CL_EIO with why. */
int cl_store_list(const char *dir, cl_store_file_t **files, size_t *n,
                  char *why, size_t whysize);

/* Read and check the file at path into *rec: its format, its checksum,
 * its fields, its name (seq and status), its topology's hash. Returns 0;
 * CL_EIO (cannot read it); CL_EINVAL (damaged or edited: why says what is
 * wrong, rec is freed). */
int cl_store_read(const char *path, cl_stored_t *rec, char *why,
                  size_t whysize);

/* The body of rec as JSON text (malloc'd, NUL-terminated), as the file
 * holds it; NULL on allocation failure. */
char *cl_store_body(const cl_stored_t *rec);

/* The SHA-256 of n bytes, as 64 hex digits and a NUL, into hex[65] (a
 * topology's hash is of its canonical text). */
void cl_store_sha256(const void *p, size_t n, char *hex);

/* us (UTC microseconds) as "2026-12-04T05:12:33.123456Z" (buf >= 32). */
void cl_store_time(int64_t us, char *buf, size_t size);

#endif
