#include "check.h"

int check_count, check_failed;

int check_done(const char *suite) {
  printf("%s: %d checks, %d failed\n", suite, check_count, check_failed);
  return check_failed ? 1 : 0;
}
