#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "error.h"

int cl_id_valid(const char *s) {
  size_t n = 0;
  if (s == NULL)
    return 0;
  for (; s[n] != '\0'; n++) {
    char c = s[n];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok || n >= CL_ID_MAX)
      return 0;
  }
  return n > 0;
}

int cl_id_copy(char dst[CL_ID_SIZE], const char *src) {
  if (!cl_id_valid(src))
    return CL_EINVAL;
  memcpy(dst, src, strlen(src) + 1);
  return 0;
}

int cl_id_cmp(const char *a, const char *b) { return strcmp(a, b); }

int cl_id_qsort_cmp(const void *a, const void *b) {
  return strcmp((const char *)a, (const char *)b);
}

int cl_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out) {
  char *end;
  long long v;
  if (s == NULL || *s == '\0' || *s == ' ' || *s == '+')
    return CL_EINVAL;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (*end != '\0')
    return CL_EINVAL;
  if (errno == ERANGE || v < min || v > max)
    return CL_ERANGE;
  *out = (int64_t)v;
  return 0;
}

int cl_parse_u64(const char *s, uint64_t max, uint64_t *out) {
  char *end;
  unsigned long long v;
  if (s == NULL || *s < '0' || *s > '9')
    return CL_EINVAL;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (*end != '\0')
    return CL_EINVAL;
  if (errno == ERANGE || v > max)
    return CL_ERANGE;
  *out = (uint64_t)v;
  return 0;
}

int cl_addr_split(const char *addr, char host[CL_ADDR_SIZE], int *port) {
  const char *colon, *hs = addr, *he;
  int64_t p;
  if (addr == NULL)
    return CL_EINVAL;
  colon = strrchr(addr, ':');
  if (colon == NULL)
    return CL_EINVAL;
  he = colon;
  if (addr[0] == '[') {
    if (colon == addr || colon[-1] != ']')
      return CL_EINVAL;
    hs = addr + 1;
    he = colon - 1;
  }
  if (he <= hs || (size_t)(he - hs) >= CL_ADDR_SIZE)
    return CL_EINVAL;
  if (cl_parse_i64(colon + 1, 0, 65535, &p) != 0)
    return CL_EINVAL;
  memcpy(host, hs, (size_t)(he - hs));
  host[he - hs] = '\0';
  *port = (int)p;
  return 0;
}

static void oom(size_t n) {
  fprintf(stderr, "clsnap: out of memory allocating %zu bytes\n", n);
  abort();
}

void *cl_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p == NULL)
    oom(n);
  return p;
}

void *cl_xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (p == NULL)
    oom(n * size);
  return p;
}

void *cl_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (q == NULL)
    oom(n);
  return q;
}


uint64_t cl_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* See util.h. */
void cl_set_err(char *err, size_t errsize, const char *fmt, ...) {
  va_list ap;
  if (err == NULL || errsize == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(err, errsize, fmt, ap);
  va_end(ap);
}

long cl_id_search(const void *base, size_t n, size_t size, const char *id) {
  size_t lo = 0, hi = n;
  if (base == NULL || id == NULL)
    return -1;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = cl_id_cmp((const char *)base + mid * size, id);
    if (c == 0)
      return (long)mid;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

uint64_t cl_mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/* splitmix64's increment: the golden ratio, 2^64 / phi. */
#define CL_RNG_GAMMA 0x9e3779b97f4a7c15ULL

uint64_t cl_rng_next(uint64_t *state) {
  return cl_mix64(*state += CL_RNG_GAMMA);
}

uint64_t cl_rng_at(uint64_t seed, uint64_t k) {
  return cl_mix64(seed + k * CL_RNG_GAMMA);
}

/* mkdir -p dir (see util.h). */
int cl_mkdirs(const char *dir) {
  char buf[4096];
  size_t i, len = strlen(dir);
  if (len == 0 || len >= sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(buf, dir, len + 1);
  for (i = 1; i <= len; i++) {
    if (buf[i] == '/' || buf[i] == '\0') {
      char c = buf[i];
      buf[i] = '\0';
      if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return -1;
      buf[i] = c;
    }
  }
  return 0;
}

int64_t cl_utc_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

char *cl_ascii_copy(const char *s) {
  size_t i, n = strlen(s);
  char *copy = cl_xmalloc(n + 1);
  for (i = 0; i <= n; i++)
    copy[i] = (unsigned char)s[i] >= 0x80 ? '?' : s[i];
  return copy;
}
