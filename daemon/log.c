#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char log_id[64] = "?";
static int log_level = CL_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* Remember the id and threshold; later lines use them. */
void cl_log_init(const char *id, int level) {
  snprintf(log_id, sizeof log_id, "%s", id != NULL ? id : "?");
  if (level >= CL_LOG_DEBUG && level <= CL_LOG_ERROR)
    log_level = level;
}

/* Map a --log-level word to a level; -1 if unknown. */
int cl_log_parse_level(const char *s) {
  int i;
  if (s == NULL)
    return -1;
  for (i = 0; i <= CL_LOG_ERROR; i++)
    if (strcmp(s, level_names[i]) == 0)
      return i;
  return -1;
}

/* 1 if lines at this level are printed. */
int cl_log_enabled(int level) { return level >= log_level; }

/* Format the whole line first and emit it with one write(2), so lines from
 * several daemons sharing a terminal or file do not interleave mid-line. */
void cl_log(int level, const char *fmt, ...) {
  char line[1280];
  struct timespec ts;
  struct tm tm;
  size_t n;
  int k;
  va_list ap;
  ssize_t w;

  if (level < log_level || level < CL_LOG_DEBUG || level > CL_LOG_ERROR)
    return;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
  k = snprintf(line + n, sizeof line - n, ".%03ldZ clsnapd[%s] %s: ",
               (long)(ts.tv_nsec / 1000000), log_id, level_names[level]);
  if (k < 0)
    return;
  n += (size_t)k;
  if (n >= sizeof line - 2)
    n = sizeof line - 2;
  va_start(ap, fmt);
  k = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
  va_end(ap);
  if (k < 0)
    k = 0;
  n += (size_t)k;
  if (n > sizeof line - 2)
    n = sizeof line - 2; /* truncated: keep the newline */
  line[n++] = '\n';
  w = write(STDERR_FILENO, line, n);
  (void)w;
}
