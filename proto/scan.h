/* Reading a free-running peer channel fast: TOKEN and MARKER frames in the
 * encoder's own forms are parsed in place, one-token messages with
 * consecutive sequence numbers as one run, without the generic decoder's
 * allocation and copying per frame. Any other byte sequence sends the rest
 * of the stream to the generic decoder (wire.h) for good, so the same input
 * is accepted or refused exactly as the decoder would; fuzz/fuzz_scan.c
 * holds the two to that.
 *
 * Also the bulk encoder of the load path: runs of one-token TOKEN frames,
 * the same bytes cl_wire_encode_token writes.
 *
 * Pure: no I/O. Who may call: the daemon's transport, tests and fuzzers.
 */
#ifndef CL_SCAN_H
#define CL_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "wire.h"

/* What a scan found, handed over as it goes. A callback returns 0 to go
 * on, anything else to stop the scan there (the connection is closing or
 * paused). */
typedef struct cl_scan_ops {
  /* count one-token messages with seqs first, first + 1, ... */
  int (*ones)(void *ctx, uint64_t first, uint64_t count);
  /* any other TOKEN, or a MARKER */
  int (*msg)(void *ctx, const cl_msg_t *m);
} cl_scan_ops_t;

typedef enum {
  CL_SCAN_FAST = 0, /* parsing in place */
  CL_SCAN_SLOW      /* everything goes to the generic decoder now */
} cl_scan_mode_t;

/* A scanner's state between reads: the bytes of a frame cut by the read
 * (a fast frame is at most 20 bytes). A zeroed cl_scan_t is ready. */
typedef struct cl_scan {
  cl_scan_mode_t mode;
  unsigned ncarry;
  unsigned char carry[24];
} cl_scan_t;

/* Room a read buffer needs in front of new bytes for the carry. */
#define CL_SCAN_CARRY_MAX 24

/* Put the carried bytes at the start of buf (room: CL_SCAN_CARRY_MAX) and
 * return how many; the next read goes right after them. */
size_t cl_scan_prefix(cl_scan_t *s, char *buf);

/* Scan buf[0..n) (carry first, as cl_scan_prefix put it). Whole frames go
 * to ops; a frame cut at the end is carried to the next call. Returns the
 * bytes consumed. If a callback stopped the scan, *stopped is 1 and the
 * rest is not looked at. If s->mode is CL_SCAN_SLOW afterwards, the bytes
 * from the return value on belong to the generic decoder, as does every
 * later byte of the stream. */
size_t cl_scan_feed(cl_scan_t *s, const char *buf, size_t n,
                    const cl_scan_ops_t *ops, void *ctx, int *stopped);

/* Append count frames [2, seq, 1] for seq = first, first + 1, ...: the
 * bytes cl_wire_encode_token(sb, seq, 1) writes for each. 0 or CL_ENOMEM
 * (sb unchanged). */
int cl_wire_encode_ones(msgpack_sbuffer *sb, uint64_t first, uint64_t count);
/* Room in sb for count such frames, so that cl_wire_encode_ones of at most
 * count frames cannot fail. 0 or CL_ENOMEM. */
int cl_wire_reserve_ones(msgpack_sbuffer *sb, uint64_t count);
/* Bytes of the frame [2, seq, 1]. */
size_t cl_wire_one_size(uint64_t seq);

#endif
