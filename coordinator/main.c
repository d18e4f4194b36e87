/* clsnap: the coordinator command line. Global options, then dispatch to a
 * command (cmd/).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cmds.h"
#include "usage.h"

/* Every command and its entry point. */
static const struct {
  const char *name;
  int (*run)(int argc, char **argv, const char *cluster_file);
} commands[] = {
    {"run", cl_cmd_run},           {"bench", cl_cmd_bench},
    {"configure", cl_cmd_cluster}, {"send", cl_cmd_cluster},
    {"snapshot", cl_cmd_cluster},  {"collect", cl_cmd_cluster},
    {"status", cl_cmd_cluster},    {"shutdown", cl_cmd_cluster},
};

/* A usage error of the global part: the message, then the hint. */
static int usage_error(const char *fmt, const char *arg) {
  cl_cli_errf(fmt, arg);
  cl_usage_hint(NULL);
  return CL_EXIT_USAGE;
}

/* `clsnap help [COMMAND]`. Returns the exit status. */
static int help(const char *cmd) {
  if (cmd == NULL)
    cl_usage(NULL, stdout);
  else if (cl_usage(cmd, stdout) != 0)
    return usage_error("unknown command '%s'", cmd);
  return CL_EXIT_OK;
}

/* The global options, then the command. Returns the exit status. */
static int run(int argc, char **argv) {
  const char *cluster_file = NULL;
  size_t k;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
      return help(NULL);
    if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
      printf("clsnap %s\n", CL_VERSION);
      return CL_EXIT_OK;
    }
    if (strcmp(a, "--cluster") == 0 && i + 1 >= argc)
      return usage_error("option '%s' needs a value", a);
    if (strcmp(a, "--cluster") == 0)
      cluster_file = argv[++i];
    else if (strncmp(a, "--cluster=", 10) == 0)
      cluster_file = a + 10;
    else
      return usage_error("unknown option '%s'", a);
  }
  if (i >= argc)
    return usage_error("%s", "no command given");
  if (strcmp(argv[i], "help") == 0)
    return help(i + 1 < argc ? argv[i + 1] : NULL);
  for (k = 0; k < sizeof commands / sizeof commands[0]; k++)
    if (strcmp(argv[i], commands[k].name) == 0)
      return commands[k].run(argc - i, argv + i, cluster_file);
  return usage_error("unknown command '%s'", argv[i]);
}

/* Output that could not be written is a failure (as GNU close_stdout):
 * `clsnap run ... > /dev/full` must not exit 0. */
static int close_stdout(int status) {
  int bad = ferror(stdout) != 0;
  bad |= fclose(stdout) != 0;
  if (!bad)
    return status;
  fprintf(stderr, "clsnap: write error on standard output: %s\n",
          strerror(errno));
  return status == CL_EXIT_OK ? CL_EXIT_FAIL : status;
}

int main(int argc, char **argv) {
  /* A daemon that goes away mid-write must surface as an error, not kill
   * clsnap. */
  signal(SIGPIPE, SIG_IGN);
  return close_stdout(run(argc, argv));
}
