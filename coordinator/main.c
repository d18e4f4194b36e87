/* clsnap: the coordinator command line. Global options, then dispatch to a
 * command (cmd_run.c, cmd_cluster.c).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cmds.h"
#include "output.h"

/* Returns the exit status. */
int main(int argc, char **argv) {
  const char *cluster_file = NULL;
  const char *cmd;
  int i = 1;
  /* A daemon that goes away mid-write must surface as an error, not kill
   * clsnap. */
  signal(SIGPIPE, SIG_IGN);
  while (i < argc && argv[i][0] == '-') {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      cl_usage(NULL, stdout);
      return CL_EXIT_OK;
    } else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
      printf("clsnap %s\n", CL_VERSION);
      return CL_EXIT_OK;
    } else if (strcmp(a, "--cluster") == 0) {
      if (i + 1 >= argc) {
        cl_errf("option '--cluster' needs a value");
        cl_usage_hint(NULL);
        return CL_EXIT_USAGE;
      }
      cluster_file = argv[i + 1];
      i += 2;
    } else if (strncmp(a, "--cluster=", 10) == 0) {
      cluster_file = a + 10;
      i++;
    } else {
      cl_errf("unknown option '%s'", a);
      cl_usage_hint(NULL);
      return CL_EXIT_USAGE;
    }
  }
  if (i >= argc) {
    cl_errf("no command given");
    cl_usage_hint(NULL);
    return CL_EXIT_USAGE;
  }
  cmd = argv[i];
  if (strcmp(cmd, "help") == 0) {
    if (i + 1 < argc && strcmp(argv[i + 1], "bench") == 0) {
      cl_bench_usage(stdout);
      return CL_EXIT_OK;
    }
    if (i + 1 < argc && cl_usage(argv[i + 1], stdout) != 0) {
      cl_errf("unknown command '%s'", argv[i + 1]);
      cl_usage_hint(NULL);
      return CL_EXIT_USAGE;
    }
    if (i + 1 >= argc)
      cl_usage(NULL, stdout);
    return CL_EXIT_OK;
  }
  if (strcmp(cmd, "run") == 0)
    return cl_cmd_run(argc - i, argv + i, cluster_file);
  if (strcmp(cmd, "bench") == 0)
    return cl_cmd_bench(argc - i, argv + i);
  if (cl_is_cluster_cmd(cmd))
    return cl_cmd_cluster(argc - i, argv + i, cluster_file);
  cl_errf("unknown command '%s'", cmd);
  cl_usage_hint(NULL);
  return CL_EXIT_USAGE;
}
