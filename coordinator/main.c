/* clsnap: the coordinator command line. Global options, then dispatch to a
 * command (cmd/).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "cli.h"
#include "cmds.h"
#include "error.h"
#include "output.h"
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
    {"history", cl_cmd_store},     {"inspect", cl_cmd_store},
    {"checkpoint", cl_cmd_checkpoint}, {"circulate", cl_cmd_checkpoint},
    {"restore", cl_cmd_restore},   {"resume", cl_cmd_restore},
    {"trace", cl_cmd_trace},       {"diagram", cl_cmd_trace},
    {"explain", cl_cmd_trace},
};

/* `clsnap help [COMMAND]`. Returns the exit status. */
static int help(const char *cmd) {
  if (cl_cli_help(cmd) != CL_EXIT_OK)
    return cl_cli_usage("unknown command '%s'", cmd ? cmd : "");
  return CL_EXIT_OK;
}

/* Whether -j or --json is among the arguments (up to a `--`). */
static int wants_json(int argc, char **argv) {
  int i;
  for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
    if (strcmp(argv[i], "-j") == 0 || strcmp(argv[i], "--json") == 0)
      return 1;
  return 0;
}

/* The secret of --secret-file, else of $CLSNAP_SECRET_FILE if set and not
 * empty, into cl_cli.secret. Returns the exit status so far. */
static int load_secret(void) {
  char err[PATH_MAX + 256];
  const char *env = getenv("CLSNAP_SECRET_FILE");
  if (cl_cli.secret_file == NULL && env != NULL && *env != '\0')
    cl_cli.secret_file = env;
  if (cl_cli.secret_file == NULL)
    return CL_EXIT_OK;
  if (cl_secret_load(cl_cli.secret_file, &cl_cli.secret, err, sizeof err) <
      0) {
    cl_cli_fail(CL_EINVAL, NULL, cl_cli.secret_file, 0, "%s", err);
    return CL_EXIT_USAGE;
  }
  return CL_EXIT_OK;
}

/* The global options (getopt_long, stopping at the command), then the
 * command. Returns the exit status. */
static int run(int argc, char **argv) {
  static const struct option lo[] = {{"cluster", required_argument, NULL, 'c'},
                                     {"secret-file", required_argument, NULL,
                                      's'},
                                     {"help", no_argument, NULL, 'h'},
                                     {"version", no_argument, NULL, 'V'},
                                     {NULL, 0, NULL, 0}};
  const char *cluster_file = NULL;
  size_t k;
  int c;
  /* A usage error before any command has parsed its options (an unknown
   * command, a bad global option) is JSON too if --json was asked for;
   * the command itself then decides from its own options. */
  cl_cli.json = wants_json(argc, argv);
  opterr = 0;
  while ((c = getopt_long(argc, argv, "+:hV", lo, NULL)) != -1) {
    if (c == 'h')
      return help(NULL);
    if (c == 'V' && cl_cli.json) {
      cl_json_print(json_pack("{s:s}", "version", CL_VERSION));
      return CL_EXIT_OK;
    }
    if (c == 'V') {
      printf("clsnap %s\n", CL_VERSION);
      return CL_EXIT_OK;
    }
    if (c == 'c')
      cluster_file = optarg;
    else if (c == 's')
      cl_cli.secret_file = optarg;
    else if (c == ':')
      return cl_cli_usage("option '%s' requires an argument",
                          argv[optind - 1]);
    else if (optopt != 0 && strncmp(argv[optind - 1], "--", 2) != 0)
      return cl_cli_usage("invalid option -- '%c'", optopt);
    else if (optopt != 0)
      return cl_cli_usage("option '%.*s' doesn't allow an argument",
                          (int)strcspn(argv[optind - 1], "="),
                          argv[optind - 1]);
    else
      return cl_cli_usage("unrecognized option '%s' (command options go "
                          "after the command)", argv[optind - 1]);
  }
  if (optind >= argc)
    return cl_cli_usage("no command given");
  if (strcmp(argv[optind], "help") == 0)
    return help(optind + 1 < argc ? argv[optind + 1] : NULL);
  /* libsodium starts once, before any handshake (proto/auth.h). */
  if (cl_auth_init() < 0) {
    cl_cli_fail(CL_EIO, NULL, NULL, 0, "cannot initialise libsodium (no "
                "random source?)");
    return CL_EXIT_FAIL;
  }
  if ((c = load_secret()) != CL_EXIT_OK)
    return c;
  for (k = 0; k < sizeof commands / sizeof commands[0]; k++)
    if (strcmp(argv[optind], commands[k].name) == 0) {
      cl_cli.json = 0;
      return commands[k].run(argc - optind, argv + optind, cluster_file);
    }
  return cl_cli_usage("unknown command '%s'", argv[optind]);
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
  int status = cl_cli_finish(run(argc, argv));
  cl_secret_free(&cl_cli.secret);
  return close_stdout(status);
}
