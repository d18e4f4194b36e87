/* clsnapd: one Chandy-Lamport server. Parses arguments, listens, prints
 * READY, runs the libuv loop until SIGTERM/SIGINT or SHUTDOWN, then closes
 * every handle and checks that the loop closes cleanly.
 */
#include "daemon.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <unistd.h>

static const char usage_text[] =
    "Usage: clsnapd --id ID --listen HOST:PORT [options]\n"
    "\n"
    "One Chandy-Lamport snapshot server. Listens on HOST:PORT (port 0: the\n"
    "kernel picks one) for peers and the coordinator, prints\n"
    "`READY <id> <host>:<port>` on stdout once listening, logs to stderr.\n"
    "\n"
    "  -i, --id ID             server id: 1-63 characters of [A-Za-z0-9._-]\n"
    "  -l, --listen HOST:PORT  address to listen on ([v6]:port for IPv6)\n"
    "      --log-level LEVEL   debug, info (default), warn or error\n"
    "      --die-with-parent   exit (SIGTERM) when the parent process dies\n"
    "      --max-kept N        completed snapshot states kept that no client\n"
    "                          watches, until collected (default 256)\n"
    "      --max-active N      snapshots in progress at once (default 1024)\n"
    "      --write-cap BYTES   per outbound channel queue cap (default 64\n"
    "                          MiB); a SEND beyond it is refused\n"
    "      --input-cap BYTES   per connection input cap (default 1 MiB)\n"
    "      --frame-timeout MS  close a connection whose first frame, or any\n"
    "                          frame once begun, takes longer (default 10000)\n"
    "      --peer-timeout MS   a peer connection whose frames get no\n"
    "                          acknowledgement this long is broken and\n"
    "                          reconnected (default 5000)\n"
    "      --peer-lost MS      a channel not reconnected within this long is\n"
    "                          lost (default 30000)\n"
    "      --secret-file FILE  every connection, peer or control, must prove\n"
    "                          it knows the secret in FILE (raw bytes, one\n"
    "                          trailing newline ignored; mode 600 or stricter)\n"
    "  -h, --help              show this help\n"
    "  -V, --version           show the version\n"
    "\n"
    "Long options may be abbreviated where unambiguous (--lis for --listen).\n"
    "\n"
    "Exit status: 0 after SIGTERM/SIGINT/SHUTDOWN, 1 if it cannot listen,\n"
    "2 on bad usage or a secret file it refuses.\n";

/* Print a usage error naming the bad argument; exit 2. */
static void bad_usage(const char *fmt, const char *arg) {
  fprintf(stderr, "clsnapd: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\nTry 'clsnapd --help'.\n");
  exit(2);
}

typedef struct opts {
  const char *id, *listen;
  int level;
  int die_with_parent;
  uint64_t max_kept, max_active, write_cap, input_cap, frame_timeout;
  uint64_t peer_timeout, peer_lost;
  const char *secret_file;
} opts_t;

/* Parse a byte count/limit option or exit 2. */
static uint64_t parse_num(const char *name, const char *v, uint64_t min,
                          uint64_t max) {
  uint64_t x = 0;
  char msg[160];
  if (cl_parse_u64(v, max, &x) < 0 || x < min) {
    snprintf(msg, sizeof msg,
             "bad value '%%s' for %s (a whole number from %llu to %llu)",
             name, (unsigned long long)min, (unsigned long long)max);
    bad_usage(msg, v);
  }
  return x;
}

/* Why getopt_long refused argv[optind - 1] (its '?' or ':' with optopt):
 * the GNU wordings; exits 2. */
static void refused(const struct option *lo, char **argv, int c) {
  const char *arg = argv[optind - 1];
  char msg[256];
  size_t len = strcspn(arg + 2, "="), matches = 0;
  const struct option *o;
  if (strncmp(arg, "--", 2) != 0) {
    snprintf(msg, sizeof msg, c == ':' ? "option requires an argument -- '%c'"
                                       : "invalid option -- '%c'",
             optopt);
    bad_usage("%s", msg);
  }
  if (c == ':')
    bad_usage("option '%s' requires an argument", arg);
  if (optopt != 0) {
    snprintf(msg, sizeof msg, "option '%.*s' doesn't allow an argument",
             (int)len + 2, arg);
    bad_usage("%s", msg);
  }
  for (o = lo; o->name != NULL; o++)
    matches += strncmp(o->name, arg + 2, len) == 0;
  snprintf(msg, sizeof msg, "%s option '%%s'",
           matches > 1 ? "ambiguous" : "unrecognized");
  bad_usage(msg, arg);
}

/* Parse argv into o with getopt_long(3): abbreviations, --opt=value; exits
 * 0 for --help and --version, 2 on bad usage. */
static void parse_args(int argc, char **argv, opts_t *o) {
  enum { O_MAX_KEPT = 256, O_MAX_ACTIVE, O_WRITE_CAP, O_INPUT_CAP,
         O_FRAME_TIMEOUT, O_LOG_LEVEL, O_DIE, O_PEER_TIMEOUT, O_PEER_LOST,
         O_SECRET_FILE };
  static const struct option lo[] = {
      {"id", required_argument, NULL, 'i'},
      {"listen", required_argument, NULL, 'l'},
      {"log-level", required_argument, NULL, O_LOG_LEVEL},
      {"die-with-parent", no_argument, NULL, O_DIE},
      {"max-kept", required_argument, NULL, O_MAX_KEPT},
      {"max-active", required_argument, NULL, O_MAX_ACTIVE},
      {"write-cap", required_argument, NULL, O_WRITE_CAP},
      {"input-cap", required_argument, NULL, O_INPUT_CAP},
      {"frame-timeout", required_argument, NULL, O_FRAME_TIMEOUT},
      {"peer-timeout", required_argument, NULL, O_PEER_TIMEOUT},
      {"peer-lost", required_argument, NULL, O_PEER_LOST},
      {"secret-file", required_argument, NULL, O_SECRET_FILE},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0}};
  char host[CL_ADDR_SIZE];
  int c, port;
  memset(o, 0, sizeof *o);
  o->level = CL_LOG_INFO;
  o->write_cap = CL_DEFAULT_WRITE_CAP;
  o->input_cap = CL_DEFAULT_INPUT_CAP;
  o->frame_timeout = CL_DEFAULT_FRAME_TIMEOUT_MS;
  o->peer_timeout = CL_DEFAULT_PEER_TIMEOUT_MS;
  o->peer_lost = CL_DEFAULT_PEER_LOST_MS;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":i:l:hV", lo, NULL)) != -1) {
    switch (c) {
    case 'h':
      fputs(usage_text, stdout);
      exit(0);
    case 'V':
      printf("clsnapd %s\n", CL_VERSION);
      exit(0);
    case 'i':
      if (!cl_id_valid(optarg))
        bad_usage("bad --id '%s' (1-63 characters of [A-Za-z0-9._-])",
                  optarg);
      o->id = optarg;
      break;
    case 'l':
      if (cl_addr_split(optarg, host, &port) < 0)
        bad_usage("bad --listen '%s' (expected HOST:PORT)", optarg);
      o->listen = optarg;
      break;
    case O_LOG_LEVEL:
      o->level = cl_log_parse_level(optarg);
      if (o->level < 0)
        bad_usage("bad --log-level '%s' (debug, info, warn or error)",
                  optarg);
      break;
    case O_DIE:
      o->die_with_parent = 1;
      break;
    case O_MAX_KEPT:
      o->max_kept = parse_num("--max-kept", optarg, 1, 1000000);
      break;
    case O_MAX_ACTIVE:
      o->max_active = parse_num("--max-active", optarg, 1, 1000000);
      break;
    case O_WRITE_CAP:
      o->write_cap = parse_num("--write-cap", optarg, 64, (uint64_t)1 << 30);
      break;
    case O_INPUT_CAP:
      o->input_cap = parse_num("--input-cap", optarg, 64, (uint64_t)1 << 30);
      break;
    case O_FRAME_TIMEOUT:
      o->frame_timeout = parse_num("--frame-timeout", optarg, 10, 86400000);
      break;
    case O_PEER_TIMEOUT:
      o->peer_timeout = parse_num("--peer-timeout", optarg, 100, 86400000);
      break;
    case O_PEER_LOST:
      o->peer_lost = parse_num("--peer-lost", optarg, 100, 86400000);
      break;
    case O_SECRET_FILE:
      o->secret_file = optarg;
      break;
    default:
      refused(lo, argv, c);
    }
  }
  if (optind < argc)
    bad_usage("unexpected argument '%s'", argv[optind]);
  if (o->id == NULL)
    bad_usage("missing %s", "--id");
  if (o->listen == NULL)
    bad_usage("missing %s", "--listen");
}

/* 1 if host is a loopback address (127.0.0.0/8, ::1, localhost). */
static int loopback(const char *host) {
  struct in_addr a4;
  struct in6_addr a6;
  if (strcmp(host, "localhost") == 0)
    return 1;
  if (inet_pton(AF_INET, host, &a4) == 1)
    return (ntohl(a4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, host, &a6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&a6);
  return 0;
}

/* SIGTERM/SIGINT: clean exit 0. */
static void signal_cb(uv_signal_t *s, int signum) {
  cl_daemon_t *d = s->data;
  cl_log_info("caught signal %d", signum);
  cl_daemon_stop(d, 0);
}

/* Before the loop sleeps: one coalesced write per channel and client. */
static void prepare_cb(uv_prepare_t *p) { cl_dispatch_flush(p->data); }

/* uv_walk callback: close leftovers so uv_loop_close can succeed. */
static void walk_close(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

/* Test hook: $CLSNAPD_EXIT_DELAY_MS makes the way out that much longer, so
 * that a test can signal a daemon while it exits (failure.sh). */
static void exit_delay(void) {
  const char *v = getenv("CLSNAPD_EXIT_DELAY_MS");
  if (v != NULL && *v != '\0')
    uv_sleep((unsigned int)strtoul(v, NULL, 10));
}

/* Parse, listen, print READY, run; returns the exit status. */
int main(int argc, char **argv) {
  static cl_daemon_t daemon;
  cl_daemon_t *d = &daemon;
  uv_loop_t loop;
  opts_t o;
  char host[CL_ADDR_SIZE], bound[CL_ADDR_SIZE + 16];
  int port, r, code;

  parse_args(argc, argv, &o);
  if (o.die_with_parent) {
    pid_t parent = getppid();
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
      return 1; /* the parent is already gone */
  }
  signal(SIGPIPE, SIG_IGN);
  cl_log_init(o.id, o.level);
  cl_addr_split(o.listen, host, &port);
  memset(d, 0, sizeof *d);
  /* libsodium starts once, before any connection's handshake. */
  if (cl_auth_init() < 0) {
    cl_log_error("cannot initialise libsodium (no random source?)");
    return 1;
  }
  if (o.secret_file != NULL) {
    char err[600];
    if (cl_secret_load(o.secret_file, &d->secret, err, sizeof err) < 0) {
      fprintf(stderr, "clsnapd: %s\n", err);
      return 2;
    }
  } else if (!loopback(host)) {
    cl_log_warn("listening on %s without --secret-file: anyone who can "
                "reach it can reconfigure or stop this server",
                o.listen);
  }

  if (uv_loop_init(&loop) != 0) {
    cl_log_error("cannot create the event loop");
    return 1;
  }
  d->loop = &loop;
  memcpy(d->id, o.id, strlen(o.id) + 1);
  d->max_kept = (size_t)o.max_kept;
  d->max_active = (size_t)o.max_active;
  d->log_level = o.level;
  d->write_cap = (size_t)o.write_cap;
  d->input_cap = (size_t)o.input_cap;
  d->frame_timeout_ms = o.frame_timeout;
  d->peer_timeout_ms = o.peer_timeout;
  if (getenv("CLSNAPD_SHUTDOWN_DELAY_MS") != NULL)
    d->shutdown_delay_ms = strtoull(getenv("CLSNAPD_SHUTDOWN_DELAY_MS"),
                                    NULL, 10);
  d->peer_lost_ms = o.peer_lost;
  /* Names this process in its HELLOs: a receiver takes a reconnect only
   * from the process that opened the channel. */
  if (uv_random(NULL, NULL, &d->incarnation, sizeof d->incarnation, 0,
                NULL) != 0)
    d->incarnation = ((uint64_t)getpid() << 32) ^ uv_hrtime();
  d->exit_code = 0;

  uv_timer_init(&loop, &d->stop_timer);
  d->stop_timer.data = d;
  uv_timer_init(&loop, &d->jitter_timer);
  d->jitter_timer.data = d;
  uv_prepare_init(&loop, &d->prepare);
  d->prepare.data = d;
  uv_signal_init(&loop, &d->sigterm);
  d->sigterm.data = d;
  uv_signal_init(&loop, &d->sigint);
  d->sigint.data = d;

  if (cl_dispatch_init(d) < 0) {
    cl_log_error("out of memory");
    return 1;
  }
  r = cl_server_listen(d, host, port, bound, sizeof bound);
  if (r < 0) {
    cl_log_error("cannot listen on %s: %s", o.listen, uv_strerror(r));
    d->exit_code = 1;
    d->stopping = 1;
  } else {
    uv_prepare_start(&d->prepare, prepare_cb);
    cl_server_sweep_start(d);
    cl_dispatch_tick_start(d);
    uv_signal_start(&d->sigterm, signal_cb, SIGTERM);
    uv_signal_start(&d->sigint, signal_cb, SIGINT);
    printf("READY %s %s\n", d->id, bound);
    fflush(stdout);
    cl_log_info("listening on %s", bound);
    uv_run(&loop, UV_RUN_DEFAULT);
  }

  uv_walk(&loop, walk_close, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  /* Closing the signal handles gave SIGTERM and SIGINT back their default
   * action, which would kill a daemon already on its way out (a stopping
   * coordinator sends SIGTERM to one that did not answer SHUTDOWN in time,
   * and the leak check at exit takes long under ASan): ignore them now. */
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  cl_log_info("loop ended; exiting");
  exit_delay();
  r = uv_loop_close(&loop);
  if (r != 0) {
    cl_log_error("event loop did not close cleanly: %s", uv_strerror(r));
    if (d->exit_code == 0)
      d->exit_code = 1;
  }
  code = d->exit_code;
  cl_dispatch_free(d);
  cl_secret_free(&d->secret);
  if (code == 0) {
    uv_rusage_t ru;
    if (uv_getrusage(&ru) == 0)
      cl_log_info("stopped (peak RSS %ld KiB)", (long)ru.ru_maxrss);
    else
      cl_log_info("stopped");
  }
  return code;
}
