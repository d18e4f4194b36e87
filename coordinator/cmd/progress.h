/* The status line of the commands that take a while (run, bench): one
 * line on stderr saying how far they are.
 *
 * How it shows (cl_progress_init decides, once per process):
 *  - stderr is a terminal: one line redrawn in place ("\r", the text,
 *    "\033[K"), at most 10 times a second;
 *  - stderr is not a terminal and --progress was given: plain lines with no
 *    escape at all, at most about one a second, so a log stays readable;
 *  - otherwise, and always with --quiet or --json: nothing.
 * The line has no colour, so NO_COLOR (https://no-color.org) changes
 * nothing: the only escape ever written is the line clearing "\033[K", on
 * a terminal.
 *
 * Who may call: the commands. A command that prints anything else first
 * calls cl_progress_clear (cl_cli_errf does it for error lines), so that
 * nothing is written behind a half line. Independent of the rest of cmd/
 * (cli.c calls it, not the other way round).
 */
#ifndef CL_PROGRESS_H
#define CL_PROGRESS_H

#include <stdint.h>

typedef enum cl_progress_mode {
  CL_PROGRESS_OFF,   /* nothing */
  CL_PROGRESS_TTY,   /* one line redrawn in place */
  CL_PROGRESS_LINES  /* plain lines */
} cl_progress_mode_t;

/* Pick the mode from the common options (quiet, json, forced: --progress)
 * and whether stderr is a terminal, and start the clock of the throttle:
 * the first line shows one interval after this. Returns the mode. */
cl_progress_mode_t cl_progress_init(int quiet, int json, int forced);

/* The mode picked (CL_PROGRESS_OFF before cl_progress_init). */
cl_progress_mode_t cl_progress_mode(void);

/* 1 if a line shown now would be drawn (the mode is not off and the last
 * one is old enough), else 0. A clock read; lets a caller skip the work of
 * gathering what the line says. */
int cl_progress_due(void);

/* Show the status line (printf format, no newline) if cl_progress_due(),
 * else nothing. On a terminal the line is cut to the terminal's width so
 * that "\r" can redraw it. */
void cl_progress_show(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Erase the line on the terminal if one is shown (nothing otherwise, and
 * nothing in the other modes), so that other output starts at the left
 * margin. The next cl_progress_show draws it again. */
void cl_progress_clear(void);

#endif
