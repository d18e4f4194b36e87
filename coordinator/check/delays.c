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

/* Reads a delay file (format in schedule.h). Returns 0 and *out (free with
 * cl_delays_free), CL_EIO (cannot read), CL_EINVAL (bad line; diag names it)
 * or CL_ENOMEM. */
int cl_delays_load(const char *path, cl_delays_t **out, cl_diag_t *diag) {
  FILE *f;
  cl_delays_t *d;
  uint64_t cap = 0, value = 0;
  int line = 1, c, rc = 0;
  int digits = 0, after = 0, blanks = 0; /* state of the current line */

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
  for (;;) {
    c = getc(f);
    if (c == EOF || c == '\n') {
      if (!digits) {
        if (c == EOF && !blanks)
          break; /* nothing after the last newline */
        rc = diag_set(diag, path, line, CL_EINVAL,
                      "blank line (expected one integer >= 0)");
        goto fail;
      }
      if (d->n >= CL_DELAYS_MAX_COUNT) {
        rc = diag_set(diag, path, line, CL_EINVAL, "more than %llu delays",
                      (unsigned long long)CL_DELAYS_MAX_COUNT);
        goto fail;
      }
      if (d->n == cap) {
        uint64_t ncap = cap ? cap * 2 : 1024;
        uint32_t *nv = realloc(d->v, ncap * sizeof(*nv));
        if (nv == NULL) {
          rc = CL_ENOMEM;
          goto fail;
        }
        d->v = nv;
        cap = ncap;
      }
      d->v[d->n++] = (uint32_t)value;
      if (c == EOF)
        break;
      line++;
      digits = after = blanks = 0;
      value = 0;
    } else if (c >= '0' && c <= '9') {
      if (after) {
        rc = diag_set(diag, path, line, CL_EINVAL,
                      "expected one integer >= 0, found more");
        goto fail;
      }
      value = value * 10 + (uint64_t)(c - '0');
      digits = 1;
      if (value > CL_DELAY_MAX_VALUE) {
        rc = diag_set(diag, path, line, CL_EINVAL,
                      "delay out of range (largest allowed %u)",
                      CL_DELAY_MAX_VALUE);
        goto fail;
      }
    } else if (c == ' ' || c == '\t' || c == '\r') {
      blanks = 1;
      if (digits)
        after = 1;
    } else {
      rc = diag_set(diag, path, line, CL_EINVAL,
                    "expected one integer >= 0, found '%c'",
                    (c >= 32 && c < 127) ? c : '?');
      goto fail;
    }
  }
  if (ferror(f)) {
    rc = diag_set(diag, path, line, CL_EIO, "read error");
    goto fail;
  }
  if (d->n == 0) {
    rc = diag_set(diag, path, 0, CL_EINVAL, "no delays");
    goto fail;
  }
  fclose(f);
  *out = d;
  return 0;
fail:
  fclose(f);
  cl_delays_free(d);
  return rc;
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
