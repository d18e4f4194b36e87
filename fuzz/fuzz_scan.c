/* libFuzzer target: the in-place TOKEN/MARKER scanner (proto/scan.c)
 * against the generic decoder (proto/wire.c) on the same bytes.
 *
 * The input is what a peer connection might deliver. Bytes 0-1 seed the
 * generator that splits the rest into chunks of 1 byte .. 4 KiB, as reads
 * would. Path A feeds every chunk to a decoder. Path B does what the
 * daemon does on a free-running channel: each chunk goes to the scanner
 * after the bytes it carried, and once the scanner turns the stream over
 * (a frame it does not take), the rest of that chunk and every later one
 * go to a decoder. Runs of one-token messages are expanded to TOKENs.
 *
 * Both paths must produce the same messages in the same order, then end
 * the same way: both waiting for more bytes, or both failing with the same
 * error. Anything else abort()s: a bug in the scanner, not in the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "scan.h"
#include "wire.h"

#define CAP CL_WIRE_DEFAULT_CAP
#define MAX_MSGS 100000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct seen {
  uint8_t type;
  uint64_t a;
  int64_t n;
} seen_t;

typedef struct path {
  seen_t *v;
  size_t n, cap;
  int err; /* the decoder's error, 0 if none */
} path_t;

static void fail(const char *what) {
  fprintf(stderr, "fuzz_scan: %s\n", what);
  abort();
}

static void add(path_t *p, uint8_t type, uint64_t a, int64_t n) {
  if (p->n >= MAX_MSGS)
    return; /* past the cap both lists are cut at the same length */
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 64;
    seen_t *v = realloc(p->v, cap * sizeof *v);
    if (v == NULL)
      fail("out of memory");
    p->v = v;
    p->cap = cap;
  }
  p->v[p->n].type = type;
  p->v[p->n].a = a;
  p->v[p->n].n = n;
  p->n++;
}

/* Drain d into p; stops at the first error (kept in p->err). */
static void drain(cl_wire_decoder_t *d, path_t *p) {
  cl_msg_t m;
  int r;
  while (p->err == 0) {
    memset(&m, 0, sizeof m);
    r = cl_wire_next(d, &m);
    if (r == 0)
      return;
    if (r < 0) {
      p->err = r;
      return;
    }
    if (m.type == CL_MSG_TOKEN)
      add(p, m.type, m.u.token.seq, m.u.token.n);
    else if (m.type == CL_MSG_MARKER)
      add(p, m.type, m.u.marker.snapshot_id, 0);
    else
      add(p, m.type, 0, 0); /* any other frame: the type is what counts */
    cl_msg_free(&m);
  }
}

static int on_ones(void *ctx, uint64_t first, uint64_t count) {
  path_t *p = ctx;
  uint64_t k;
  for (k = 0; k < count && p->n < MAX_MSGS; k++)
    add(p, CL_MSG_TOKEN, first + k, 1);
  return 0;
}

static int on_msg(void *ctx, const cl_msg_t *m) {
  path_t *p = ctx;
  if (m->type == CL_MSG_TOKEN)
    add(p, m->type, m->u.token.seq, m->u.token.n);
  else
    add(p, m->type, m->u.marker.snapshot_id, 0);
  return 0;
}

static uint32_t next_rand(uint32_t *s) {
  uint32_t x = *s;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *s = x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const cl_scan_ops_t ops = {on_ones, on_msg};
  path_t a = {0}, b = {0};
  cl_wire_decoder_t *da, *db;
  cl_scan_t sc;
  char *buf;
  uint32_t seed;
  size_t off = 2, i;
  if (size < 2)
    return 0;
  seed = ((uint32_t)data[0] << 8 | data[1]) | 1u;
  buf = malloc(4096 + CL_SCAN_CARRY_MAX);
  da = cl_wire_decoder_new(CAP);
  db = cl_wire_decoder_new(CAP);
  if (buf == NULL || da == NULL || db == NULL)
    fail("out of memory");
  memset(&sc, 0, sizeof sc);
  while (off < size) {
    size_t k = 1 + next_rand(&seed) % 4096, pre, used;
    int stopped;
    if (k > size - off)
      k = size - off;
    /* Path A: the decoder alone. */
    if (a.err == 0) {
      if (cl_wire_decoder_feed(da, (const char *)data + off, k) < 0)
        a.err = CL_ETOOBIG;
      else
        drain(da, &a);
    }
    /* Path B: the scanner, then the decoder for good. */
    if (b.err == 0) {
      if (sc.mode == CL_SCAN_FAST) {
        pre = cl_scan_prefix(&sc, buf);
        memcpy(buf + pre, data + off, k);
        used = cl_scan_feed(&sc, buf, pre + k, &ops, &b, &stopped);
        if (stopped)
          fail("a scan stopped though no callback asked it to");
        if (sc.mode == CL_SCAN_SLOW) {
          if (cl_wire_decoder_feed(db, buf + used, pre + k - used) < 0)
            b.err = CL_ETOOBIG;
          else
            drain(db, &b);
        } else if (used != pre + k) {
          fail("a fast scan left bytes neither consumed nor carried");
        }
      } else if (cl_wire_decoder_feed(db, (const char *)data + off, k) < 0) {
        b.err = CL_ETOOBIG;
      } else {
        drain(db, &b);
      }
    }
    off += k;
  }
  if (a.n != b.n) {
    fprintf(stderr, "decoder %zu messages, scanner %zu\n", a.n, b.n);
    fail("the paths gave different numbers of messages");
  }
  for (i = 0; i < a.n; i++)
    if (a.v[i].type != b.v[i].type || a.v[i].a != b.v[i].a ||
        a.v[i].n != b.v[i].n) {
      fprintf(stderr, "message %zu: decoder %u %llu %lld, scanner %u %llu "
              "%lld\n", i, a.v[i].type, (unsigned long long)a.v[i].a,
              (long long)a.v[i].n, b.v[i].type, (unsigned long long)b.v[i].a,
              (long long)b.v[i].n);
      fail("the paths gave different messages");
    }
  if (a.err != b.err) {
    fprintf(stderr, "decoder error %s, scanner path error %s\n",
            a.err ? cl_err_name(a.err) : "none",
            b.err ? cl_err_name(b.err) : "none");
    fail("the paths ended differently");
  }
  cl_wire_decoder_free(da);
  cl_wire_decoder_free(db);
  free(a.v);
  free(b.v);
  free(buf);
  return 0;
}
