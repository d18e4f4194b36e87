#include "progress.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util.h"

/* Redraws on a terminal: 10 a second look live and cost nothing. */
#define PROGRESS_TTY_NS 100000000ull
/* Lines in a log: about one a second. */
#define PROGRESS_LINES_NS 1000000000ull
/* A caller that paces itself at the same period (bench: once a second)
 * wakes a little early or late; this much early still counts as due. */
#define PROGRESS_SLACK_NS 10000000ull
/* Longest line kept, and the escape bytes around it. */
#define PROGRESS_LINE_MAX 256

/* One per process: there is one stderr. */
static struct {
  cl_progress_mode_t mode;
  uint64_t last_ns; /* last line drawn, or when init ran */
  int shown;        /* TTY: a line is on the screen */
} pg;

cl_progress_mode_t cl_progress_init(int quiet, int json, int forced) {
  const char *term = getenv("TERM");
  /* A terminal that cannot clear a line gets the plain lines instead. */
  int tty = isatty(STDERR_FILENO) && !(term != NULL && !strcmp(term, "dumb"));
  if (quiet || json)
    pg.mode = CL_PROGRESS_OFF;
  else if (tty)
    pg.mode = CL_PROGRESS_TTY;
  else
    pg.mode = forced ? CL_PROGRESS_LINES : CL_PROGRESS_OFF;
  pg.last_ns = cl_now_ns();
  pg.shown = 0;
  return pg.mode;
}

cl_progress_mode_t cl_progress_mode(void) { return pg.mode; }

int cl_progress_due(void) {
  uint64_t gap;
  if (pg.mode == CL_PROGRESS_OFF)
    return 0;
  gap = pg.mode == CL_PROGRESS_TTY ? PROGRESS_TTY_NS : PROGRESS_LINES_NS;
  return cl_now_ns() - pg.last_ns + PROGRESS_SLACK_NS >= gap;
}

/* All of buf[0..len) to stderr in one write where the kernel allows. A
 * failed write (stderr closed) is dropped: progress is not worth failing
 * for. */
static void put(const char *buf, size_t len) {
  while (len > 0) {
    ssize_t w = write(STDERR_FILENO, buf, len);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return;
    buf += w;
    len -= (size_t)w;
  }
}

/* Columns of the terminal on stderr, 80 if it does not say. */
static size_t columns(void) {
  struct winsize ws;
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    return ws.ws_col;
  return 80;
}

void cl_progress_show(const char *fmt, ...) {
  char text[PROGRESS_LINE_MAX], line[PROGRESS_LINE_MAX + 8];
  size_t len, width;
  va_list ap;
  int n;
  if (!cl_progress_due())
    return;
  va_start(ap, fmt);
  n = vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  len = strlen(text);
  pg.last_ns = cl_now_ns();
  if (pg.mode == CL_PROGRESS_LINES) {
    n = snprintf(line, sizeof line, "%s\n", text);
    put(line, (size_t)n);
    return;
  }
  /* One column short of the width: a line that fills the last column
   * wraps on some terminals, and "\r" then redraws only its second row. */
  width = columns() - 1;
  if (len > width)
    len = width;
  n = snprintf(line, sizeof line, "\r%.*s\033[K", (int)len, text);
  put(line, (size_t)n);
  pg.shown = 1;
}

void cl_progress_clear(void) {
  if (!pg.shown)
    return;
  put("\r\033[K", 4);
  pg.shown = 0;
}
