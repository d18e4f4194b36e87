#include "usage.h"

#include <string.h>

static const char usage_main[] =
    "Usage: clsnap [--cluster FILE] [--secret-file FILE] COMMAND [ARGS...]\n"
    "\n"
    "Consistent global snapshots of a token-passing system with the\n"
    "Chandy-Lamport algorithm: each server is a clsnapd process; clsnap\n"
    "configures them, injects transfers, starts snapshots and checks them.\n"
    "\n"
    "Commands:\n"
    "  run TOPOLOGY EVENTS        start a local cluster (or use --cluster),\n"
    "                             replay the events, collect and check every\n"
    "                             snapshot\n"
    "  configure TOPOLOGY         configure and connect a running cluster\n"
    "  send SRC DEST N            move N tokens from SRC to DEST\n"
    "  snapshot ID                start a snapshot at server ID, wait, check\n"
    "  collect SNAPSHOT_ID        collect and check a completed snapshot\n"
    "  status                     show every server's state\n"
    "  checkpoint --every DURATION\n"
    "                             take snapshots periodically into the store\n"
    "  circulate on|off           keep tokens moving (a load to checkpoint)\n"
    "  history                    list the stored snapshots\n"
    "  inspect SEQ|latest         re-verify a stored snapshot and print it\n"
    "  restore SEQ|latest         bring the cluster back to a stored snapshot\n"
    "  resume                     carry on after restore --paused\n"
    "  shutdown                   stop every server\n"
    "  bench [options]            start a cluster under load: throughput,\n"
    "                             snapshot latency and cost, memory\n"
    "  help [COMMAND]             show help\n"
    "\n"
    "Global options:\n"
    "  --cluster FILE             the running daemons: lines `ID HOST:PORT`,\n"
    "                             `#` comments. The cluster commands use\n"
    "                             --cluster, else $CLSNAP_CLUSTER, else\n"
    "                             ./.clsnap/cluster (deploy/cluster.sh up\n"
    "                             writes it); run uses only --cluster\n"
    "  --secret-file FILE         prove to every server that clsnap knows\n"
    "                             the secret in FILE (mode 600), and check\n"
    "                             that they do; else $CLSNAP_SECRET_FILE.\n"
    "                             run and bench give it to the daemons they\n"
    "                             start\n"
    "  -h, --help                 show this help\n"
    "  -V, --version              show the version\n"
    "\n"
    "Every command takes -h/--help, -j/--json (only JSON on stdout, also\n"
    "for failures: {\"error\": {\"code\", \"message\", ...}}), -q/--quiet\n"
    "and --progress (a status line even when stderr is not a terminal).\n"
    "Long options may be abbreviated where unambiguous and may follow the\n"
    "operands; `--` ends the options.\n"
    "\n"
    "Exit status: 0 success; 1 a snapshot failed its checks or the cluster\n"
    "failed; 2 bad usage or bad input file; 130 interrupted.\n"
    "Run 'clsnap COMMAND --help' for a command's options.\n";

static const char usage_run[] =
    "Usage: clsnap run TOPOLOGY EVENTS [options]\n"
    "\n"
    "Start one clsnapd per server of TOPOLOGY on 127.0.0.1, configure and\n"
    "connect them, replay EVENTS, then collect every snapshot (the k-th\n"
    "`snapshot` event is snapshot k), check it (token conservation and exact\n"
    "channel states) and print it in the reference .snap format followed by\n"
    "its verdict, and a summary line.\n"
    "\n"
    "Modes:\n"
    "  (default)             free-running: daemons handle messages as they\n"
    "                        arrive; `tick` lets --tick-ms pass\n"
    "  --lockstep            deterministic: clsnap is the clock and follows\n"
    "                        the reference simulator's scheduling rules\n"
    "                        (--delays, --max-delay and --in-process imply\n"
    "                        it)\n"
    "\n"
    "Options:\n"
    "  --lockstep            deterministic replay\n"
    "  --delays FILE         lockstep: message delays, one per line (e.g.\n"
    "                        conformance/go-delays.txt)\n"
    "  --seed N              lockstep: seed of the delay generator (default\n"
    "                        1); free-running: seed of the daemons' jitter\n"
    "                        (default: from the clock); 0..2^63-1\n"
    "  --max-delay D         lockstep: generated delays are 0..D (default 4)\n"
    "  --tick-ms MS          free-running: wall time of one tick (default 5)\n"
    "  --jitter-ms MS        random 0..MS ms send delay per message at the\n"
    "                        sender, FIFO kept (default 0)\n"
    "  --timeout DURATION    give up waiting for replies or snapshots after\n"
    "                        this: N, Nms, Ns or Nm (a bare number is\n"
    "                        seconds; default 30)\n"
    "  --snap-dir DIR        also write DIR/<k>.snap per snapshot\n"
    "  --store DIR           keep every snapshot in the snapshot store DIR\n"
    "                        (clsnap history --help), in trigger order, when\n"
    "                        the run ends\n"
    "  --keep N              with --store: keep only the N newest completed\n"
    "                        (and N failed)\n"
    "  -j, --json            print only JSON on stdout\n"
    "  -q, --quiet           print verdicts and the summary, not .snap texts\n"
    "  --progress            show events, ticks and snapshots done on\n"
    "                        stderr also when it is not a terminal (as a\n"
    "                        line a second; never with -q or -j)\n"
    "  --in-process          lockstep over in-process node cores, no daemons\n"
    "  --cluster FILE        use these running daemons instead of starting\n"
    "                        new ones (they must not be configured yet)\n"
    "  --daemon PATH         clsnapd to start (default: next to clsnap, then\n"
    "                        ../daemon/clsnapd, then PATH)\n"
    "  --log-dir DIR         daemon logs as DIR/<id>.log (default: a\n"
    "                        temporary directory, removed after a successful\n"
    "                        run, kept and named on failure)\n"
    "  -h, --help            show this help\n"
    "\n"
    "A run that stops early (Ctrl-C, a lost server) still prints the\n"
    "snapshots it checked, then how many of all; stderr names the others.\n"
    "\n"
    "Exit status: 0 every snapshot passed; 1 a check failed or the cluster\n"
    "failed; 2 bad usage or bad input file; 130 interrupted.\n";

static const char usage_configure[] =
    "Usage: clsnap [--cluster FILE] configure TOPOLOGY [options]\n"
    "\n"
    "Send CONFIGURE to every server of TOPOLOGY (each must be in FILE), wait\n"
    "for all, then CONNECT them all (opens the peer channels).\n"
    "\n"
    "Options:\n"
    "  --lockstep            servers hold messages until told to deliver\n"
    "  --jitter-ms MS        random 0..MS ms send delay (default 0)\n"
    "  --seed N              seed of the jitter, 0..2^63-1 (default: from\n"
    "                        the clock)\n"
    "  --timeout SEC         default 30\n"
    "  -j, --json            print JSON\n"
    "  -h, --help            show this help\n";

static const char usage_send[] =
    "Usage: clsnap [--cluster FILE] send SRC DEST N\n"
    "\n"
    "Move N tokens from server SRC to server DEST over their channel.\n"
    "Prints `SRC -> DEST: N tokens (seq S)`; a refusal (not enough tokens,\n"
    "no such channel) is printed and exits 1.\n"
    "\n"
    "Options:\n"
    "  --timeout SEC         default 30\n"
    "  -j, --json            print JSON\n"
    "  -h, --help            show this help\n";

static const char usage_snapshot[] =
    "Usage: clsnap [--cluster FILE] snapshot ID [options]\n"
    "\n"
    "Start a snapshot at server ID (that server picks a fresh id), have\n"
    "every server send its local state here as soon as it completes, check\n"
    "the global snapshot and print it with its verdict. Several invocations\n"
    "may run at once; each gets its own snapshot, and no server drops a\n"
    "state one of them waits for. A snapshot whose markers cannot reach\n"
    "every server from ID is refused before it starts (exit 2).\n"
    "\n"
    "Options:\n"
    "  --no-wait             start it, print its id and return; its states\n"
    "                        stay kept on the servers (up to their\n"
    "                        --max-kept) for `collect`\n"
    "  --timeout SEC         wait at most SEC seconds (default 30)\n"
    "  -j, --json            print JSON\n"
    "  -q, --quiet           print the verdict, not the .snap text\n"
    "  --snap-dir DIR        also write DIR/<snapshot id>.snap\n"
    "  --store DIR           keep it in the snapshot store DIR (see\n"
    "                        `clsnap history --help`); one that times out or\n"
    "                        fails is kept as such, with the reason\n"
    "  --keep N              with --store: keep only the N newest completed\n"
    "                        snapshots (and N failed or timed out ones)\n"
    "  -h, --help            show this help\n"
    "\n"
    "--timeout takes a DURATION: N, Nms, Ns or Nm (a bare number is\n"
    "seconds).\n";

static const char usage_collect[] =
    "Usage: clsnap [--cluster FILE] collect SNAPSHOT_ID [options]\n"
    "\n"
    "Collect a completed snapshot's local states from every server, check\n"
    "the global snapshot and print it with its verdict.\n"
    "\n"
    "Options:\n"
    "  -j, --json            print JSON\n"
    "  -q, --quiet           print the verdict, not the .snap text\n"
    "  --snap-dir DIR        also write DIR/<snapshot id>.snap\n"
    "  --timeout SEC         default 30\n"
    "  -h, --help            show this help\n";

static const char usage_status[] =
    "Usage: clsnap [--cluster FILE] status [options]\n"
    "\n"
    "Show every server: address, tokens, per-channel sent/received counts\n"
    "and connection state, snapshots in progress and kept (sorted, runs of\n"
    "consecutive ids as FIRST..LAST, at most 8 ranges a line); then the\n"
    "total. Exits 1 if a server cannot be reached.\n"
    "\n"
    "Options:\n"
    "  --snap                after restore --paused: the cluster's state in\n"
    "                        the reference .snap format (the restored id,\n"
    "                        every server's tokens, the messages waiting on\n"
    "                        each channel, in order)\n"
    "  --brief               one line per server: tokens, mode, how many\n"
    "                        snapshots in progress and kept, channels down\n"
    "  -j, --json            print JSON (instead of the table or --brief)\n"
    "  --timeout SEC         default 30\n"
    "  -h, --help            show this help\n";

static const char usage_shutdown[] =
    "Usage: clsnap [--cluster FILE] shutdown [options]\n"
    "\n"
    "Tell every server to close its connections and exit.\n"
    "\n"
    "Options:\n"
    "  --timeout SEC         default 30\n"
    "  -j, --json            print JSON\n"
    "  -h, --help            show this help\n";

static const char usage_bench[] =
    "Usage: clsnap bench --nodes N --topology ring|mesh --seconds S [options]\n"
    "\n"
    "Start N clsnapd processes on 127.0.0.1 (ids N01, N02, ...), connect\n"
    "them as a ring (Ni -> Ni+1) or a full mesh (every directed pair), give\n"
    "each server --tokens tokens and switch them to circulate mode: every\n"
    "daemon forwards the tokens it holds to its outbound peers, one token per\n"
    "message, as fast as the channels take them. After a warm-up, measure\n"
    "for S seconds: token messages delivered per second, and, with\n"
    "--snapshot-every-ms, snapshots taken under that load (each one\n"
    "collected and checked: conservation and exact channel states), their\n"
    "latency (SNAPSHOT sent to the last local state received) and the\n"
    "daemons' peak RSS.\n"
    "\n"
    "Options:\n"
    "  --nodes N               servers, 2..256\n"
    "  --topology ring|mesh\n"
    "  --seconds S             measured window, 1..3600\n"
    "  --snapshot-every-ms M   start a snapshot every M ms (0: none, the\n"
    "                          default); one at a time, initiator rotating\n"
    "  --tokens T              tokens per server (default 262144 / N: 2 MiB\n"
    "                          of TOKEN frames in flight in all)\n"
    "  --warmup-ms W           load before measuring (default 500)\n"
    "  --idle                  no load: measure snapshots of an idle cluster\n"
    "  --alternate             with --snapshot-every-ms: 1-second slices\n"
    "                          without and with snapshots in turn, in the\n"
    "                          same cluster; report both rates and the\n"
    "                          difference (what snapshots cost the load)\n"
    "  --baseline              first run clsnap-baseline with the same N,\n"
    "                          topology and seconds; print both and the ratio\n"
    "                          tokens_per_s / frames_per_s\n"
    "  --baseline-program P    the clsnap-baseline executable (default: next\n"
    "                          to clsnap, ../tests/bench/ in a build tree, or\n"
    "                          PATH)\n"
    "  -j, --json              one JSON object: tokens_per_s, snapshots,\n"
    "                          snapshots_ok, latency_us{p50,p99,max},\n"
    "                          rss_kib_max, and more\n"
    "  --daemon PATH           the clsnapd executable\n"
    "  --log-dir DIR           keep the daemons' logs in DIR\n"
    "  --progress              the per-second status line (seconds done,\n"
    "                          rate of the last second, snapshots) on stderr\n"
    "                          also when it is not a terminal (never with -q\n"
    "                          or -j); each costs one STATUS round\n"
    "  -h, --help              show this help\n"
    "\n"
    "Exit status: 0 every snapshot passed; 1 a snapshot failed its checks or\n"
    "the cluster failed; 2 bad usage.\n";

static const char usage_checkpoint[] =
    "Usage: clsnap [--cluster FILE] checkpoint --every DURATION [options]\n"
    "\n"
    "Take a snapshot every DURATION, check it and keep it in the snapshot\n"
    "store, until Ctrl-C (or SIGTERM), --count, or too many failures. At\n"
    "most one checkpoint is in flight: one that runs late delays the next.\n"
    "One that does not complete within --timeout is kept as timed_out, the\n"
    "servers are told to drop it (DROP), and the next one starts. Prints a\n"
    "line per checkpoint (on a terminal, a status line instead, unless\n"
    "--verbose), then a summary with the latency percentiles.\n"
    "\n"
    "Options:\n"
    "  --every DURATION      time between triggers (N, Nms, Ns or Nm; a\n"
    "                        bare number is seconds)\n"
    "  --count C             stop after C checkpoints (default: no end)\n"
    "  --keep N              keep the N newest completed snapshots, and N\n"
    "                        failed or timed out (default 100; 0: all)\n"
    "  --timeout DURATION    give a checkpoint up after this (default 10s)\n"
    "  --tolerate K          exit 1 once more than K checkpoints in a row\n"
    "                        failed or timed out (default 0)\n"
    "  --from SERVER         start every checkpoint at SERVER (default: the\n"
    "                        first server of the cluster file)\n"
    "  --rotate              start them at each server in turn\n"
    "  --store DIR           the store (default: snapshots/ beside the\n"
    "                        cluster file)\n"
    "  --verbose             a line per checkpoint also on a terminal\n"
    "  -j, --json            one JSON object at the end: the checkpoints and\n"
    "                        the summary\n"
    "  -q, --quiet           only the summary\n"
    "  -h, --help            show this help\n"
    "\n"
    "Exit status: 0 every checkpoint was stored, at most K in a row failed\n"
    "or timed out; 1 more than K in a row did, or the cluster or the store\n"
    "failed; 2 bad usage; 130 interrupted (after the summary; no partial\n"
    "file is left).\n";

static const char usage_circulate[] =
    "Usage: clsnap [--cluster FILE] circulate on|off [options]\n"
    "\n"
    "Switch every server's circulate mode: each forwards the tokens it holds\n"
    "to its outbound peers, one token per message, as fast as the channels\n"
    "take them and with at most a bounded backlog per channel (the load\n"
    "`clsnap bench` uses). Tokens are never created or lost, so snapshots\n"
    "and checkpoints taken meanwhile still check exactly. Needs a\n"
    "free-running cluster.\n"
    "\n"
    "Options:\n"
    "  --timeout DURATION    default 30s\n"
    "  -j, --json            print JSON\n"
    "  -h, --help            show this help\n";

static const char usage_history[] =
    "Usage: clsnap [--cluster FILE] history [--store DIR] [options]\n"
    "\n"
    "List the snapshot store: seq, snapshot id, status (completed, failed,\n"
    "timed_out), initiator, trigger time (UTC), duration, file size, tokens\n"
    "on servers and in flight. Every file's checksum is verified; a damaged\n"
    "one is listed as DAMAGED with what is wrong, and the exit status is 1.\n"
    "Reads files only: no server is asked.\n"
    "\n"
    "Options:\n"
    "  --store DIR           the store (default: snapshots/ beside the\n"
    "                        cluster file)\n"
    "  -j, --json            an array of objects: seq, id, status, reason,\n"
    "                        initiator, trigger_time, duration_us, size,\n"
    "                        tokens_on_servers, tokens_in_flight, ok, file\n"
    "  -h, --help            show this help\n"
    "\n"
    "The store is a directory with one file per snapshot,\n"
    "NNNNNN-STATUS.json (docs/STORE.md).\n";

static const char usage_inspect[] =
    "Usage: clsnap [--cluster FILE] inspect SEQ|latest [--store DIR] [options]\n"
    "\n"
    "Re-verify one stored snapshot offline: its checksum, token\n"
    "conservation and exact channel states against the topology it was\n"
    "taken on. Prints its metadata as `key: value` lines, the snapshot in\n"
    "the reference .snap format, and the verdict line. latest is the newest\n"
    "completed snapshot. A damaged or edited file is named with what is\n"
    "wrong (exit 1). An entry that failed is printed and checked too, if it\n"
    "has states, and exits 1 with its reason; so does one that timed out.\n"
    "\n"
    "Options:\n"
    "  --store DIR           the store (default: snapshots/ beside the\n"
    "                        cluster file)\n"
    "  --snap                print only the .snap text\n"
    "  -j, --json            print JSON\n"
    "  -h, --help            show this help\n";

static const char usage_restore[] =
    "Usage: clsnap [--cluster FILE] restore SEQ|latest [--store DIR] [options]\n"
    "\n"
    "Bring the running cluster back to a stored snapshot (docs/RESTORE.md):\n"
    "every server's tokens become the recorded ones, every channel is\n"
    "emptied and carries exactly the recorded messages, in order, and the\n"
    "cluster carries on. Nothing from before is handled after: the servers\n"
    "move to a new restore epoch, and channels of an older one are refused.\n"
    "Snapshots in progress are aborted (stored as failed). Refused: a\n"
    "snapshot of another topology, a damaged file, one that failed or timed\n"
    "out.\n"
    "\n"
    "Options:\n"
    "  --paused              hold the restored messages until clsnap resume;\n"
    "                        clsnap status --snap shows the cluster's state\n"
    "  --store DIR           the store (default: snapshots/ beside the\n"
    "                        cluster file)\n"
    "  --timeout DURATION    default 30s\n"
    "  -h, --help            show this help\n";

static const char usage_resume[] =
    "Usage: clsnap [--cluster FILE] resume [options]\n"
    "\n"
    "After restore --paused: every server handles the restored messages and\n"
    "carries on.\n"
    "\n"
    "Options:\n"
    "  --timeout DURATION    default 30s\n"
    "  -h, --help            show this help\n";

static const struct {
  const char *cmd;
  const char *text;
} usages[] = {
    {"restore", usage_restore},   {"resume", usage_resume},
    {"checkpoint", usage_checkpoint}, {"circulate", usage_circulate},
    {"history", usage_history},   {"inspect", usage_inspect},
    {"run", usage_run},           {"configure", usage_configure},
    {"send", usage_send},         {"snapshot", usage_snapshot},
    {"collect", usage_collect},   {"status", usage_status},
    {"shutdown", usage_shutdown}, {"bench", usage_bench},
    {"help", usage_main},
};

/* Print the help of clsnap or of one command. */
int cl_usage(const char *cmd, FILE *f) {
  size_t i;
  if (cmd == NULL) {
    fputs(usage_main, f);
    return 0;
  }
  for (i = 0; i < sizeof usages / sizeof usages[0]; i++) {
    if (strcmp(usages[i].cmd, cmd) == 0) {
      fputs(usages[i].text, f);
      return 0;
    }
  }
  return -1;
}

/* Point at the right --help after a usage error. */
void cl_usage_hint(const char *cmd) {
  if (cmd != NULL && strcmp(cmd, "clsnap") != 0)
    fprintf(stderr, "Try 'clsnap %s --help'.\n", cmd);
  else
    fprintf(stderr, "Try 'clsnap --help'.\n");
}
