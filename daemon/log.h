/* Leveled logging for clsnapd: one line per event on stderr,
 *   <ISO8601 UTC time with ms> clsnapd[<id>] <level>: <message>
 * Only the daemon's transport and control layers log; the node core and the
 * wire codec never do. Not thread-safe (the daemon has one thread).
 */
#ifndef CL_DAEMON_LOG_H
#define CL_DAEMON_LOG_H

typedef enum {
  CL_LOG_DEBUG = 0,
  CL_LOG_INFO = 1,
  CL_LOG_WARN = 2,
  CL_LOG_ERROR = 3
} cl_log_level_t;

/* Set the server id shown in every line and the lowest level printed. The id
 * is copied (truncated to 63 bytes). */
void cl_log_init(const char *id, int level);

/* "debug"/"info"/"warn"/"error" -> level, or -1 for anything else. */
int cl_log_parse_level(const char *s);

/* 1 if a message at `level` would be printed. Check this before building an
 * expensive message on a hot path. */
int cl_log_enabled(int level);

/* Print one line (the message is truncated to about 1 KiB). */
void cl_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define cl_log_debug(...)                                                     \
  do {                                                                        \
    if (cl_log_enabled(CL_LOG_DEBUG))                                         \
      cl_log(CL_LOG_DEBUG, __VA_ARGS__);                                      \
  } while (0)
#define cl_log_info(...) cl_log(CL_LOG_INFO, __VA_ARGS__)
#define cl_log_warn(...) cl_log(CL_LOG_WARN, __VA_ARGS__)
#define cl_log_error(...) cl_log(CL_LOG_ERROR, __VA_ARGS__)

#endif
