#include "cli.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "usage.h"
#include "util.h"

/* Print one "clsnap: " error line. */
void cl_cli_errf(const char *fmt, ...) {
  va_list ap;
  fflush(stdout); /* keep stdout and stderr in order on a terminal */
  fputs("clsnap: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

/* Long options anywhere among the positionals; see cli.h. */
int cl_cli_parse(const char *cmd, int argc, char **argv, const cl_opt_t *opts,
                 const char **pos, int maxpos, int *help) {
  int i, npos = 0, only_pos = 0;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i], *eq, *val = NULL;
    const cl_opt_t *o;
    size_t len;
    if (only_pos || a[0] != '-' || a[1] == '\0') {
      if (npos >= maxpos) {
        cl_cli_errf("%s: unexpected argument '%s'", cmd, a);
        cl_usage_hint(cmd);
        return -1;
      }
      pos[npos++] = a;
      continue;
    }
    if (strcmp(a, "--") == 0) {
      only_pos = 1;
      continue;
    }
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      *help = 1;
      continue;
    }
    eq = strchr(a, '=');
    len = eq ? (size_t)(eq - a) : strlen(a);
    for (o = opts; o->name != NULL; o++)
      if (strlen(o->name) == len && strncmp(o->name, a, len) == 0)
        break;
    if (o->name == NULL) {
      cl_cli_errf("%s: unknown option '%.*s'", cmd, (int)len, a);
      cl_usage_hint(cmd);
      return -1;
    }
    if (!o->arg) {
      if (eq) {
        cl_cli_errf("%s: option '%s' takes no value", cmd, o->name);
        cl_usage_hint(cmd);
        return -1;
      }
      *o->flag = 1;
      continue;
    }
    if (eq)
      val = eq + 1;
    else if (i + 1 < argc)
      val = argv[++i];
    else {
      cl_cli_errf("%s: option '%s' needs a value", cmd, o->name);
      cl_usage_hint(cmd);
      return -1;
    }
    *o->value = val;
  }
  return npos;
}

/* Whole number in [min, max] or a printed complaint. */
int cl_cli_u64(const char *what, const char *s, uint64_t min, uint64_t max,
               uint64_t *out) {
  uint64_t v;
  int rc;
  if (s == NULL)
    return 0;
  rc = cl_parse_u64(s, max, &v);
  if (rc == CL_EINVAL) {
    cl_cli_errf("%s: '%s' is not a whole number", what, s);
    return -1;
  }
  if (rc < 0 || v < min) {
    cl_cli_errf("%s: %s is out of range (%" PRIu64 "..%" PRIu64 ")", what, s,
                min, max);
    return -1;
  }
  *out = v;
  return 0;
}
