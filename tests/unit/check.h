/* A tiny assertion helper for the unit tests: CHECK() records a failure with
 * file and line and carries on, so one run reports every broken case;
 * check_done() prints "N checks, M failed" and returns the exit status. */
#ifndef CL_CHECK_H
#define CL_CHECK_H

#include <stdio.h>

extern int check_count, check_failed;

#define CHECK(cond)                                                            \
  do {                                                                         \
    check_count++;                                                             \
    if (!(cond)) {                                                             \
      check_failed++;                                                          \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                     \
  do {                                                                         \
    long long a_ = (long long)(a), b_ = (long long)(b);                        \
    check_count++;                                                             \
    if (a_ != b_) {                                                            \
      check_failed++;                                                          \
      fprintf(stderr, "%s:%d: check failed: %s == %s (%lld != %lld)\n",        \
              __FILE__, __LINE__, #a, #b, a_, b_);                             \
    }                                                                          \
  } while (0)

#define CHECK_EQ_STR(a, b)                                                     \
  do {                                                                         \
    const char *a_ = (a), *b_ = (b);                                           \
    check_count++;                                                             \
    if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {                     \
      check_failed++;                                                          \
      fprintf(stderr, "%s:%d: check failed: %s == %s (\"%s\" != \"%s\")\n",    \
              __FILE__, __LINE__, #a, #b, a_ ? a_ : "(null)",                  \
              b_ ? b_ : "(null)");                                             \
    }                                                                          \
  } while (0)

/* Print the summary; returns 0 if nothing failed, 1 otherwise. */
int check_done(const char *suite);

#endif
