/* The reference scenario files: topologies (.top), event scripts (.events)
 * and global snapshots (.snap). Readers and writers, no other I/O.
 *
 * Formats (as defined by the reference suite, `#` starts a comment line):
 *   .top     first line N; then N lines `ID TOKENS`; then one line per
 *            directed link `SRC DEST`.
 *   .events  one event per line: `send SRC DEST N`, `snapshot ID`, `tick`,
 *            `tick N`.
 *   .snap    first line the snapshot id; then `ID TOKENS` for every server;
 *            then `SRC DEST token(N)` per recorded in-flight message.
 *
 * Every reader fills a cl_diag_t on failure with the file name, the 1-based
 * line and a message, so callers can print "FILE:LINE: message". Readers
 * take a name (used only in diagnostics) and the text; the *_load helpers
 * read a file first. Objects returned are owned by the caller and released
 * with the matching *_free.
 */
#ifndef CL_SCENARIO_H
#define CL_SCENARIO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util.h"

typedef struct cl_diag {
  char file[256];
  int line;         /* 1-based; 0 when the problem is not tied to a line */
  char msg[256];
} cl_diag_t;

/* "FILE:LINE: msg" (or "FILE: msg" when line is 0) into buf. */
void cl_diag_format(const cl_diag_t *d, char *buf, size_t size);

/* ---- topology ---------------------------------------------------------- */

typedef struct cl_server {
  char id[CL_ID_SIZE];
  int64_t tokens;
} cl_server_t;

typedef struct cl_link {
  uint32_t src, dst; /* indexes into cl_topology_t.servers */
} cl_link_t;

/* Servers are stored sorted by id (byte-wise), whatever the file order, so a
 * server's index is its rank in the reference's visiting order. Links are
 * stored sorted by (src, dst). Token counts are in [0, 2^40]; the total fits
 * comfortably in int64_t. */
typedef struct cl_topology {
  size_t nservers;
  cl_server_t *servers;
  size_t nlinks;
  cl_link_t *links;
  int64_t total_tokens;
} cl_topology_t;

#define CL_TOKENS_MAX ((int64_t)1 << 40)
#define CL_SERVERS_MAX 4096

int cl_topology_parse(const char *name, const char *text, cl_topology_t **out,
                      cl_diag_t *diag);
int cl_topology_load(const char *path, cl_topology_t **out, cl_diag_t *diag);
void cl_topology_free(cl_topology_t *t);
/* Index of server id, or -1. */
int cl_topology_find(const cl_topology_t *t, const char *id);
/* Index in t->links of the directed link src->dst, or -1. */
long cl_topology_link(const cl_topology_t *t, uint32_t src, uint32_t dst);
/* 1 if the directed link src->dst exists. */
int cl_topology_has_link(const cl_topology_t *t, uint32_t src, uint32_t dst);
/* qsort/bsearch order of cl_link_t: by src, then dst (t->links is sorted
 * so). */
int cl_link_cmp(const void *a, const void *b);
/* Write in .top format (servers sorted, links sorted). */
int cl_topology_write(const cl_topology_t *t, FILE *f);
/* A 64-bit fingerprint of the topology (servers, tokens, links), the
 * same for every file that describes it; never 0. Daemons configured from
 * different topologies refuse each other's channels by it. */
uint64_t cl_topology_hash(const cl_topology_t *t);
/* The servers no marker from server `from` can reach (following links),
 * in index order, into out (room for t->nservers); returns how many. */
size_t cl_topology_unreachable(const cl_topology_t *t, uint32_t from,
                               uint32_t *out);

/* ---- events ------------------------------------------------------------ */

typedef enum { CL_EV_SEND = 1, CL_EV_SNAPSHOT, CL_EV_TICK } cl_event_kind_t;

typedef struct cl_event {
  cl_event_kind_t kind;
  int line;          /* line in the events file, for error messages */
  uint32_t src, dst; /* server indexes in the topology: SEND uses both,
                        SNAPSHOT uses src (the initiator) */
  int64_t n;         /* SEND: tokens (>= 1); TICK: ticks (>= 1) */
} cl_event_t;

typedef struct cl_script {
  size_t nevents;
  cl_event_t *events;
  size_t nsnapshots; /* number of `snapshot` events */
} cl_script_t;

/* Parse against a topology: unknown servers and sends over links that do not
 * exist are errors naming the line. Token sufficiency is NOT checked here
 * (it depends on timing); the daemons refuse what they cannot cover. */
int cl_script_parse(const char *name, const char *text,
                    const cl_topology_t *topo, cl_script_t **out,
                    cl_diag_t *diag);
int cl_script_load(const char *path, const cl_topology_t *topo,
                   cl_script_t **out, cl_diag_t *diag);
void cl_script_free(cl_script_t *s);

/* ---- global snapshots --------------------------------------------------- */

typedef struct cl_snap_msg {
  char src[CL_ID_SIZE];
  char dst[CL_ID_SIZE];
  int64_t n;
} cl_snap_msg_t;

/* A global snapshot as the reference prints it. Servers are kept sorted by
 * id; messages in the order given (the writer groups them by destination in
 * id order, keeping each destination's arrival order). */
typedef struct cl_snap {
  uint64_t id;
  size_t nservers;
  cl_server_t *servers;
  size_t nmsgs;
  cl_snap_msg_t *msgs;
} cl_snap_t;

int cl_snap_parse(const char *name, const char *text, cl_snap_t **out,
                  cl_diag_t *diag);
int cl_snap_load(const char *path, cl_snap_t **out, cl_diag_t *diag);
void cl_snap_free(cl_snap_t *s);
int cl_snap_write(const cl_snap_t *s, FILE *f);

/* The reference's comparison: equal ids, equal token count for every
 * server, equal number of messages, and for every destination the messages
 * to it in the same order. Returns 1 if equal; otherwise 0 and a one-line
 * reason in why (may be NULL). */
int cl_snap_equal(const cl_snap_t *a, const cl_snap_t *b, char *why,
                  size_t whysize);

/* Read a whole file into a NUL-terminated heap buffer. Returns 0 or
 * CL_EIO (diag says why). */
int cl_read_file(const char *path, char **out, size_t *len, cl_diag_t *diag);

/* ---- limits and return codes (additions) -------------------------------
 *
 * Stated maxima: input files are at most CL_FILE_MAX bytes (cl_read_file
 * fails with CL_EIO beyond), a script holds at most CL_EVENTS_MAX events,
 * `tick N` allows N <= CL_TICK_MAX, a .snap holds at most CL_SERVERS_MAX
 * servers and CL_SNAP_MSGS_MAX messages, and `send`/`token(N)` amounts are
 * in [1, CL_TOKENS_MAX].
 *
 * Reader return codes (diag always filled): CL_EINVAL malformed line (field
 * count, not a number, invalid id, unknown keyword, self-link, missing
 * servers, server line after messages); CL_ERANGE number out of range;
 * CL_EDUP duplicate server or link; CL_ENOENT unknown server; CL_ENOPEER a
 * send over a link the topology lacks; CL_ETOOBIG too many events or
 * messages; CL_ENOMEM; CL_EIO from the *_load helpers (cl_read_file).
 *
 * Ownership: cl_snap_free frees s->servers, s->msgs and s, each a separate
 * malloc block (possibly NULL), so other modules may build cl_snap_t values
 * and release them with it. Same for cl_topology_t (servers, links) and
 * cl_script_t (events).
 *
 * cl_snap_equal reasons name the first difference found, checking in this
 * order: id, each server's tokens, servers present in only one snapshot,
 * message count, then per destination (in id order) the 1-based position:
 * "server N3: 10 tokens vs 9",
 * "messages to N2 differ at position 1: N1 token(3) vs N1 token(2)". */
#define CL_FILE_MAX ((size_t)256 << 20)
#define CL_EVENTS_MAX 10000000
#define CL_TICK_MAX 1000000000
#define CL_SNAP_MSGS_MAX 10000000

#endif
