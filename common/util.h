/* Small helpers shared by the daemon, the coordinator and the tests:
 * server-id validation, number parsing, address parsing, checked allocation.
 * Pure functions: no I/O, no global state.
 */
#ifndef CL_UTIL_H
#define CL_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* A server id is 1..CL_ID_MAX bytes of [A-Za-z0-9._-]. Fixed-size buffers of
 * CL_ID_SIZE hold any valid id with its NUL, so ids never need allocation. */
#define CL_ID_MAX 63
#define CL_ID_SIZE (CL_ID_MAX + 1)
/* "host:port", IPv4 or bracketed IPv6. */
#define CL_ADDR_SIZE 64

/* 1 if s is a valid server id, else 0. */
int cl_id_valid(const char *s);
/* Copy a valid id into dst (CL_ID_SIZE bytes). Returns 0 or CL_EINVAL. */
int cl_id_copy(char dst[CL_ID_SIZE], const char *src);
/* Byte-wise order of ids (strcmp), the order the reference uses. */
int cl_id_cmp(const char *a, const char *b);
/* qsort comparator for arrays of char[CL_ID_SIZE]. */
int cl_id_qsort_cmp(const void *a, const void *b);
/* Index of id among n records of `size` bytes sorted by the id each holds
 * at its start (a char[CL_ID_SIZE], or a struct beginning with one), or -1.
 * Binary search in cl_id_cmp order. */
long cl_id_search(const void *base, size_t n, size_t size, const char *id);

/* Parse a whole decimal string into [min, max]. Returns 0, CL_EINVAL (not a
 * number, trailing junk, empty) or CL_ERANGE. */
int cl_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
int cl_parse_u64(const char *s, uint64_t max, uint64_t *out);

/* Split "host:port" ("[v6]:port" too) into host (NUL-terminated, size
 * CL_ADDR_SIZE) and port. Returns 0 or CL_EINVAL. */
int cl_addr_split(const char *addr, char host[CL_ADDR_SIZE], int *port);

/* malloc/calloc/realloc that abort with a message on exhaustion. Used only
 * where running on without memory has no sensible meaning (tools, tests). */
void *cl_xmalloc(size_t n);
void *cl_xcalloc(size_t n, size_t size);
void *cl_xrealloc(void *p, size_t n);

/* The splitmix64 finaliser: mixes all 64 bits of x. Hash tables use it
 * (snapshot ids are often small consecutive numbers), and cl_rng_next. */
uint64_t cl_mix64(uint64_t x);
/* The project's random generator, splitmix64: advances *state and returns
 * the next value. Same seed, same stream, on every platform. */
uint64_t cl_rng_next(uint64_t *state);
/* The k-th value (k >= 1) of the stream seeded with seed, without walking
 * it: cl_rng_next called k times from that seed returns the same. */
uint64_t cl_rng_at(uint64_t seed, uint64_t k);

/* mkdir -p: dir and its missing parents (mode 0777 less the umask).
 * Returns 0 (also when dir exists) or -1 with errno. */
int cl_mkdirs(const char *dir);

/* A malloc'd copy of s with every byte >= 0x80 made '?': what is left of
 * a text that was not UTF-8 (a path, a peer's error text) where UTF-8 is
 * required (JSON). Aborts when out of memory, as cl_xmalloc. */
char *cl_ascii_copy(const char *s);

/* Wall-clock time: microseconds since the epoch, UTC. */
int64_t cl_utc_us(void);

/* Monotonic clock in nanoseconds. */
uint64_t cl_now_ns(void);

/* printf into err (errsize bytes, always NUL-terminated) if the caller gave
 * room for a message; err may be NULL or errsize 0, then nothing happens.
 * For functions that report failures through an optional buffer. */
void cl_set_err(char *err, size_t errsize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
