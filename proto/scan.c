/* The in-place TOKEN/MARKER scanner and the bulk TOKEN encoder (scan.h).
 * Both know the encoder's byte forms: a TOKEN is [2, seq, n] as
 * 0x93 0x02 <uint seq> <uint n>, a MARKER [3, id] as 0x92 0x03 <uint id>,
 * each uint in its shortest msgpack form. Under load the frame is almost
 * always 0x93 0x02 0xce <seq, 4 bytes big-endian> 0x01: 8 bytes.
 */
#include "scan.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

/* The usual frame under load, [2, seq, 1] with a 32-bit seq: its bytes
 * with the seq zeroed, and the mask of the bytes that must match, as
 * little-endian 64-bit words (seq sits in bytes 3..6). */
#define USUAL_FRAME 0x0100000000ce0293ull
#define USUAL_MASK 0xff00000000ffffffull

/* One msgpack unsigned integer in its shortest forms (what the encoder
 * writes): 1 and *v, *len; 0 when more bytes are needed; -1 for any other
 * form (the generic decoder then judges it). */
static int scan_uint(const unsigned char *p, size_t n, uint64_t *v,
                     size_t *len) {
  size_t k, i;
  if (n == 0)
    return 0;
  if (p[0] <= 0x7f) {
    *v = p[0];
    *len = 1;
    return 1;
  }
  switch (p[0]) {
  case 0xcc: k = 1; break;
  case 0xcd: k = 2; break;
  case 0xce: k = 4; break;
  case 0xcf: k = 8; break;
  default: return -1;
  }
  if (n < k + 1)
    return 0;
  *v = 0;
  for (i = 1; i <= k; i++)
    *v = (*v << 8) | p[i];
  *len = k + 1;
  return 1;
}

/* 1 if f (8 bytes) is the usual TOKEN frame carrying sequence number seq. */
static int usual_token(const unsigned char *f, uint64_t seq) {
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  /* One load and two compares instead of eight byte loads. */
  uint64_t w;
  memcpy(&w, f, 8);
  return (w & USUAL_MASK) == USUAL_FRAME &&
         __builtin_bswap32((uint32_t)(w >> 24)) == seq;
#else
  return f[0] == 0x93 && f[1] == CL_MSG_TOKEN && f[2] == 0xce && f[7] == 1 &&
         ((uint64_t)f[3] << 24 | (uint64_t)f[4] << 16 | (uint64_t)f[5] << 8 |
          f[6]) == seq;
#endif
}

size_t cl_scan_prefix(cl_scan_t *s, char *buf) {
  memcpy(buf, s->carry, s->ncarry);
  return s->ncarry;
}

/* The frame at f[0..left) (left >= 2) if it is a TOKEN or MARKER in the
 * encoder's forms: 1 with it in *m and its size in *size, 0 when it is cut
 * (more bytes needed), -1 for anything else (the decoder judges it). */
static int read_frame(const unsigned char *f, size_t left, cl_msg_t *m,
                      size_t *size) {
  uint64_t a, b;
  size_t l1, l2;
  int r;
  memset(m, 0, sizeof *m);
  if (f[0] == 0x93 && f[1] == CL_MSG_TOKEN) {
    r = scan_uint(f + 2, left - 2, &a, &l1);
    if (r > 0)
      r = scan_uint(f + 2 + l1, left - 2 - l1, &b, &l2);
    if (r <= 0)
      return r;
    if (a < 1 || b < 1 || b > (uint64_t)INT64_MAX)
      return -1;
    m->type = CL_MSG_TOKEN;
    m->u.token.seq = a;
    m->u.token.n = (int64_t)b;
    *size = 2 + l1 + l2;
    return 1;
  }
  if (f[0] == 0x92 && f[1] == CL_MSG_MARKER) {
    r = scan_uint(f + 2, left - 2, &a, &l1);
    if (r <= 0)
      return r;
    m->type = CL_MSG_MARKER;
    m->u.marker.snapshot_id = a;
    *size = 2 + l1;
    return 1;
  }
  return -1;
}

/* A scan under way: where its findings go, and the run of one-token
 * messages being gathered (seqs first .. first + count - 1). */
typedef struct scanner {
  const cl_scan_ops_t *ops;
  void *ctx;
  uint64_t first, count;
} scanner_t;

/* Hand the run gathered so far to ops. Returns non-zero if that stopped
 * the scan. */
static int run_flush(scanner_t *x) {
  int stop = x->count > 0 && x->ops->ones(x->ctx, x->first, x->count) != 0;
  x->count = 0;
  return stop;
}

/* Take the frame m of size bytes found at *off: a one-token message that
 * continues the run joins it; anything else goes out after the run (a
 * one-token message then starts a new one). Moves *off past the frame once
 * it is taken, and only then: a stop while the run goes out leaves the
 * frame unconsumed. Returns non-zero if a callback stopped the scan. */
static int take_frame(scanner_t *x, const cl_msg_t *m, size_t size,
                      size_t *off) {
  int one = m->type == CL_MSG_TOKEN && m->u.token.n == 1;
  if (one && x->count > 0 && m->u.token.seq == x->first + x->count) {
    *off += size;
    x->count++;
    return 0;
  }
  /* Messages before this one are handled before it. */
  if (run_flush(x))
    return 1;
  *off += size;
  if (one) {
    x->first = m->u.token.seq;
    x->count = 1;
    return 0;
  }
  return x->ops->msg(x->ctx, m) != 0;
}

/* Whole frames of buf[0..n) to ops; see scan.h for the contract. The run
 * being gathered goes out before anything that follows it, so the order of
 * messages is the stream's. */
static size_t scan(const unsigned char *p, size_t n, const cl_scan_ops_t *ops,
                   void *ctx, int *stopped, int *slow) {
  scanner_t x = {ops, ctx, 0, 0};
  size_t off = 0, size = 0;
  cl_msg_t m;
  int r;
  *stopped = 0;
  *slow = 0;
  while (off < n) {
    const unsigned char *f = p + off;
    size_t left = n - off;
    /* The hot loop: the run goes on while frames are the usual ones (in
     * locals: x's address is taken below, which would keep it in memory). */
    if (x.count > 0) {
      uint64_t next = x.first + x.count, start = next;
      while (left >= 8 && usual_token(f, next)) {
        next++;
        f += 8;
        left -= 8;
      }
      x.count += next - start;
      off += (size_t)(next - start) * 8;
    }
    if (left < 2) {
      /* One byte: wait for the next only if it can begin a frame of ours;
       * anything else the decoder judges now, as it would. */
      if (left == 1 && f[0] != 0x93 && f[0] != 0x92)
        *slow = 1;
      break;
    }
    r = read_frame(f, left, &m, &size);
    if (r <= 0) {
      *slow = r < 0;
      break;
    }
    if (take_frame(&x, &m, size, &off)) {
      *stopped = 1;
      return off;
    }
  }
  if (run_flush(&x))
    *stopped = 1;
  return off;
}

size_t cl_scan_feed(cl_scan_t *s, const char *buf, size_t n,
                    const cl_scan_ops_t *ops, void *ctx, int *stopped) {
  int slow;
  size_t used = scan((const unsigned char *)buf, n, ops, ctx, stopped, &slow);
  if (*stopped) {
    s->ncarry = 0;
    return used;
  }
  if (slow || n - used > sizeof s->carry) {
    /* Not a frame of ours, or longer than any: the decoder decides. */
    s->mode = CL_SCAN_SLOW;
    s->ncarry = 0;
    return used;
  }
  s->ncarry = (unsigned)(n - used);
  memcpy(s->carry, buf + used, s->ncarry);
  return n;
}

/* Bytes of a msgpack unsigned integer in its shortest form. */
static size_t uint_len(uint64_t v) {
  return v <= 0x7f ? 1 : v <= 0xff ? 2 : v <= 0xffff ? 3
         : v <= 0xffffffffu ? 5 : 9;
}

/* Write v as msgpack does (shortest form); returns the bytes written. */
static size_t put_uint(unsigned char *p, uint64_t v) {
  size_t k, i;
  if (v <= 0x7f) {
    p[0] = (unsigned char)v;
    return 1;
  }
  k = uint_len(v) - 1;
  p[0] = k == 1 ? 0xcc : k == 2 ? 0xcd : k == 4 ? 0xce : 0xcf;
  for (i = 0; i < k; i++)
    p[1 + i] = (unsigned char)(v >> (8 * (k - 1 - i)));
  return k + 1;
}

size_t cl_wire_one_size(uint64_t seq) { return 3 + uint_len(seq); }

/* A one-token frame is at most 2 + 9 + 1 bytes. */
int cl_wire_reserve_ones(msgpack_sbuffer *sb, uint64_t count) {
  if (count > SIZE_MAX / 12 || cl_sbuf_reserve(sb, (size_t)count * 12) < 0)
    return CL_ENOMEM;
  return 0;
}

int cl_wire_encode_ones(msgpack_sbuffer *sb, uint64_t first, uint64_t count) {
  unsigned char *p;
  uint64_t seq = first, j;
  if (cl_wire_reserve_ones(sb, count) < 0)
    return CL_ENOMEM;
  p = (unsigned char *)sb->data + sb->size;
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  if (seq > 0xffff && seq + count - 1 <= 0xffffffffu) {
    /* The usual frames under load: one 8-byte store each. */
    for (j = 0; j < count; j++, seq++, p += 8) {
      uint64_t w = USUAL_FRAME | (uint64_t)__builtin_bswap32((uint32_t)seq)
                                     << 24;
      memcpy(p, &w, 8);
    }
    sb->size = (size_t)((char *)p - sb->data);
    return 0;
  }
#endif
  for (j = 0; j < count; j++, seq++) {
    p[0] = 0x93;
    p[1] = CL_MSG_TOKEN;
    p += 2;
    p += put_uint(p, seq);
    *p++ = 1;
  }
  sb->size = (size_t)((char *)p - sb->data);
  return 0;
}
