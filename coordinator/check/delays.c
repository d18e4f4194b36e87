#include "delays.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"

struct cl_delays {
  int from_file;
  uint32_t *v;    /* file: the values */
  uint64_t n;     /* file: how many */
  uint64_t used;  /* drawn so far (the file's cursor) */
  uint64_t state; /* generator: splitmix64 state */
  uint32_t max;   /* generator: largest delay */
};

static int diag_set(cl_diag_t *diag, const char *path, int line, int rc,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int diag_set(cl_diag_t *diag, const char *path, int line, int rc,
                    const char *fmt, ...) {
  if (diag != NULL) {
    va_list ap;
    size_t n = strlen(path);
    /* Keep the tail of a long path: it is the part that identifies it. */
    const char *p = n >= sizeof(diag->file) ? path + n - (sizeof(diag->file) - 1)
                                            : path;
    memcpy(diag->file, p, strlen(p) + 1);
    diag->line = line;
    va_start(ap, fmt);
    vsnprintf(diag->msg, sizeof(diag->msg), fmt, ap);
    va_end(ap);
  }
  return rc;
}

/* The line of a delay file being read. */
typedef struct line {
  int no;         /* 1-based */
  uint64_t value;
  int digits;     /* a digit seen */
  int after;      /* a blank after the digits */
  int blanks;     /* a blank seen */
} line_t;

/* Append v to d's values (cap: room allocated). 0 or CL_ENOMEM. */
static int push_delay(cl_delays_t *d, uint64_t *cap, uint32_t v) {
  if (d->n == *cap) {
    uint64_t ncap = *cap ? *cap * 2 : 1024;
    uint32_t *nv = realloc(d->v, ncap * sizeof(*nv));
    if (nv == NULL)
      return CL_ENOMEM;
    d->v = nv;
    *cap = ncap;
  }
  d->v[d->n++] = v;
  return 0;
}

/* One character c of line l, neither a newline nor EOF. Returns 0, or
 * CL_EINVAL with diag naming the line. */
static int take_char(int c, line_t *l, const char *path, cl_diag_t *diag) {
  if (c >= '0' && c <= '9') {
    if (l->after)
      return diag_set(diag, path, l->no, CL_EINVAL,
                      "expected one integer >= 0, found more");
    l->value = l->value * 10 + (uint64_t)(c - '0');
    l->digits = 1;
    if (l->value > CL_DELAY_MAX_VALUE)
      return diag_set(diag, path, l->no, CL_EINVAL,
                      "delay out of range (largest allowed %u)",
                      CL_DELAY_MAX_VALUE);
    return 0;
  }
  if (c == ' ' || c == '\t' || c == '\r') {
    l->blanks = 1;
    if (l->digits)
      l->after = 1;
    return 0;
  }
  return diag_set(diag, path, l->no, CL_EINVAL,
                  "expected one integer >= 0, found '%c'",
                  (c >= 32 && c < 127) ? c : '?');
}

/* The end of line l (eof: the end of the file): its value joins d's.
 * Returns 1 at the end of the file, 0 for the next line, or a negative
 * code (diag set but for CL_ENOMEM). */
static int end_line(cl_delays_t *d, uint64_t *cap, line_t *l, int eof,
                    const char *path, cl_diag_t *diag) {
  if (!l->digits) {
    if (eof && !l->blanks)
      return 1; /* nothing after the last newline */
    return diag_set(diag, path, l->no, CL_EINVAL,
                    "blank line (expected one integer >= 0)");
  }
  if (d->n >= CL_DELAYS_MAX_COUNT)
    return diag_set(diag, path, l->no, CL_EINVAL, "more than %llu delays",
                    (unsigned long long)CL_DELAYS_MAX_COUNT);
  if (push_delay(d, cap, (uint32_t)l->value) < 0)
    return CL_ENOMEM;
  if (eof)
    return 1;
  l->no++;
  l->digits = l->after = l->blanks = 0;
  l->value = 0;
  return 0;
}

/* Reads a delay file (format in delays.h). Returns 0 and *out (free with
 * cl_delays_free), CL_EIO (cannot read), CL_EINVAL (bad line; diag names it)
 * or CL_ENOMEM. */
int cl_delays_load(const char *path, cl_delays_t **out, cl_diag_t *diag) {
  FILE *f;
  cl_delays_t *d;
  uint64_t cap = 0;
  line_t l = {1, 0, 0, 0, 0};
  int c, rc = 0;

  *out = NULL;
  f = fopen(path, "r");
  if (f == NULL)
    return diag_set(diag, path, 0, CL_EIO, "cannot open: %s", strerror(errno));
  d = calloc(1, sizeof(*d));
  if (d == NULL) {
    fclose(f);
    return CL_ENOMEM;
  }
  d->from_file = 1;
  while (rc == 0) {
    c = getc(f);
    if (c == EOF || c == '\n')
      rc = end_line(d, &cap, &l, c == EOF, path, diag);
    else
      rc = take_char(c, &l, path, diag);
  }
  if (rc > 0 && ferror(f))
    rc = diag_set(diag, path, l.no, CL_EIO, "read error");
  else if (rc > 0 && d->n == 0)
    rc = diag_set(diag, path, 0, CL_EINVAL, "no delays");
  fclose(f);
  if (rc < 0) {
    cl_delays_free(d);
    return rc;
  }
  *out = d;
  return 0;
}

/* A splitmix64 stream; NULL on allocation failure. */
cl_delays_t *cl_delays_seeded(uint64_t seed, uint32_t max_delay) {
  cl_delays_t *d = calloc(1, sizeof(*d));
  if (d == NULL)
    return NULL;
  d->state = seed;
  d->max = max_delay;
  return d;
}

void cl_delays_free(cl_delays_t *d) {
  if (d == NULL)
    return;
  free(d->v);
  free(d);
}

/* 0 and *out, or CL_ENOENT when a file is used up. */
int cl_delays_next(cl_delays_t *d, uint32_t *out) {
  if (d->from_file) {
    if (d->used >= d->n)
      return CL_ENOENT;
    *out = d->v[d->used++];
    return 0;
  }
  *out = (uint32_t)(cl_rng_next(&d->state) % ((uint64_t)d->max + 1));
  d->used++;
  return 0;
}

uint64_t cl_delays_used(const cl_delays_t *d) { return d->used; }

uint64_t cl_delays_available(const cl_delays_t *d) {
  return d->from_file ? d->n : 0;
}
