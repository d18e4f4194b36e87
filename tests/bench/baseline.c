/* clsnap-baseline: the transport ceiling that `clsnap bench --baseline`
 * compares clsnap against. N processes, each with one libuv loop, connected
 * like the benchmarked cluster (ring: i -> i+1; mesh: every directed pair,
 * one TCP connection each, TCP_NODELAY), every process writing frames of a
 * TOKEN message's size to all its outbound connections as fast as the
 * sockets take them (WRITES_IN_FLIGHT writes of CHUNK bytes per connection,
 * re-issued from the write callbacks) and counting the bytes it receives.
 * No decoding, no per-frame work: bytes / frame size is the most frames per
 * second this machine's loopback moves in that pattern.
 *
 * The parent only coordinates over pipes: it collects the children's ports,
 * hands everyone the list, waits until all connections are up, says go,
 * then asks every child for its received-byte count at the start and at the
 * end of the measured window.
 *
 * Usage: clsnap-baseline --nodes N --topology ring|mesh --seconds S
 *        [--warmup-ms W] [--frame-bytes B] [--json]
 * Prints one line (or one JSON object: nodes, topology, connections,
 * frame_bytes, seconds, frames, frames_per_s, bytes_per_s). Exit 0, 1 when a
 * child failed, 2 on bad usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "wire.h"

#define MAX_NODES 256
#define CHUNK ((size_t)32 << 10)
#define WRITES_IN_FLIGHT 2 /* 64 KiB queued per connection */
#define READ_BUF ((size_t)64 << 10)

typedef struct out_conn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t w[WRITES_IN_FLIGHT];
  struct child *ch;
} out_conn_t;

typedef struct child {
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_pipe_t ctl;
  int up_fd; /* child -> parent */
  int index, nodes, mesh;
  uint16_t ports[MAX_NODES];
  size_t nports;
  out_conn_t *out;
  size_t nout, connected;
  size_t nin, accepted;
  int going, ready_sent;
  uint64_t received;
  uv_buf_t chunk;
} child_t;

static char g_read_buf[READ_BUF];

/* Print to stderr and exit the child with status 1. */
static void die(const char *what, int err) {
  fprintf(stderr, "clsnap-baseline: %s: %s\n", what,
          err < 0 ? uv_strerror(err) : strerror(err));
  _exit(1);
}

/* Write all of buf to fd (blocking). */
static void write_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      die("write to pipe", errno);
    p += w;
    n -= (size_t)w;
  }
}

/* Read exactly n bytes from fd (blocking). 0, or -1 on EOF/error. */
static int read_all(int fd, void *buf, size_t n) {
  char *p = buf;
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

/* Tell the parent once every connection is up. */
static void maybe_ready(child_t *c) {
  if (!c->ready_sent && c->connected == c->nout && c->accepted == c->nin) {
    c->ready_sent = 1;
    write_all(c->up_fd, "R", 1);
  }
}

static void pump(out_conn_t *o, size_t k);

/* A chunk went out: send it again. */
static void on_write(uv_write_t *w, int status) {
  out_conn_t *o = w->data;
  if (status < 0)
    _exit(0); /* the receiver is gone: the run is over */
  pump(o, (size_t)(w - o->w));
}

/* Issue write slot k of connection o. */
static void pump(out_conn_t *o, size_t k) {
  int r;
  o->w[k].data = o;
  r = uv_write(&o->w[k], (uv_stream_t *)&o->tcp, &o->ch->chunk, 1, on_write);
  if (r < 0)
    die("uv_write", r);
}

/* One read buffer for every connection: reads never overlap. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  buf->base = g_read_buf;
  buf->len = sizeof g_read_buf;
}

/* Inbound bytes are only counted. */
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  child_t *c = s->data;
  (void)buf;
  if (nread > 0)
    c->received += (uint64_t)nread;
  else if (nread < 0)
    uv_close((uv_handle_t *)s, (uv_close_cb)free);
}

/* Outbound connections are read only to notice the end. */
static void on_out_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  (void)s;
  (void)buf;
  if (nread < 0)
    _exit(0); /* the receiver is gone: the run is over */
}

/* Accept an inbound connection and count what it brings. */
static void on_connection(uv_stream_t *server, int status) {
  child_t *c = server->data;
  uv_tcp_t *t;
  int r;
  if (status < 0)
    die("accept", status);
  t = malloc(sizeof *t);
  if (t == NULL)
    die("accept", ENOMEM);
  uv_tcp_init(&c->loop, t);
  t->data = c;
  r = uv_accept(server, (uv_stream_t *)t);
  if (r < 0)
    die("accept", r);
  uv_tcp_nodelay(t, 1);
  r = uv_read_start((uv_stream_t *)t, on_alloc, on_read);
  if (r < 0)
    die("read", r);
  c->accepted++;
  maybe_ready(c);
}

/* An outbound connection is up. */
static void on_connect(uv_connect_t *req, int status) {
  out_conn_t *o = req->data;
  if (status < 0)
    die("connect", status);
  uv_tcp_nodelay(&o->tcp, 1);
  uv_read_start((uv_stream_t *)&o->tcp, on_alloc, on_out_read);
  o->ch->connected++;
  maybe_ready(o->ch);
}

/* Commands from the parent: port list, G(o), M(ark), Q(uit). */
static void on_ctl(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  child_t *c = s->data;
  ssize_t i;
  size_t j, k;
  if (nread < 0)
    _exit(0);
  for (i = 0; i < nread; i++) {
    char cmd = buf->base[i];
    if (cmd == 'G' && !c->going) {
      c->going = 1;
      for (j = 0; j < c->nout; j++)
        for (k = 0; k < WRITES_IN_FLIGHT; k++)
          pump(&c->out[j], k);
    } else if (cmd == 'M') {
      write_all(c->up_fd, &c->received, sizeof c->received);
    } else if (cmd == 'Q') {
      _exit(0);
    }
  }
}

/* Outbound neighbour indexes of node i. */
static size_t neighbours(int i, int nodes, int mesh, int *out) {
  size_t n = 0;
  int j;
  if (!mesh) {
    out[n++] = (i + 1) % nodes;
    return n;
  }
  for (j = 0; j < nodes; j++)
    if (j != i)
      out[n++] = j;
  return n;
}

/* Body of child i: listen, report the port, read everyone's ports, connect,
 * then serve until told to quit. Never returns. */
static void child_main(int index, int nodes, int mesh, int down_fd,
                       int up_fd, size_t frame_bytes) {
  child_t c;
  struct sockaddr_in sa;
  struct sockaddr_storage ss;
  int len = (int)sizeof ss, r, nb[MAX_NODES];
  uint16_t port;
  size_t i, nframes;
  char frame[32];
  msgpack_sbuffer sb;

  prctl(PR_SET_PDEATHSIG, SIGKILL);
  memset(&c, 0, sizeof c);
  c.index = index;
  c.nodes = nodes;
  c.mesh = mesh;
  c.up_fd = up_fd;
  /* One chunk of whole TOKEN frames, as clsnap would send them. */
  msgpack_sbuffer_init(&sb);
  if (cl_wire_encode_token(&sb, 1000000, 1) < 0 || sb.size > sizeof frame)
    die("encode", EINVAL);
  memcpy(frame, sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
  nframes = CHUNK / frame_bytes;
  c.chunk.base = malloc(nframes * frame_bytes);
  c.chunk.len = nframes * frame_bytes;
  if (c.chunk.base == NULL)
    die("malloc", ENOMEM);
  for (i = 0; i < nframes; i++) {
    memset(c.chunk.base + i * frame_bytes, 0, frame_bytes);
    memcpy(c.chunk.base + i * frame_bytes, frame,
           frame_bytes < 8 ? frame_bytes : 8);
  }

  uv_loop_init(&c.loop);
  uv_tcp_init(&c.loop, &c.listener);
  c.listener.data = &c;
  uv_ip4_addr("127.0.0.1", 0, &sa);
  if ((r = uv_tcp_bind(&c.listener, (struct sockaddr *)&sa, 0)) < 0 ||
      (r = uv_listen((uv_stream_t *)&c.listener, 511, on_connection)) < 0 ||
      (r = uv_tcp_getsockname(&c.listener, (struct sockaddr *)&ss, &len)) < 0)
    die("listen", r);
  port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  write_all(up_fd, &port, sizeof port);
  if (read_all(down_fd, c.ports, (size_t)nodes * sizeof c.ports[0]) < 0)
    _exit(1);
  c.nout = neighbours(index, nodes, mesh, nb);
  c.nin = mesh ? (size_t)nodes - 1 : 1;
  c.out = calloc(c.nout, sizeof *c.out);
  if (c.out == NULL)
    die("calloc", ENOMEM);
  for (i = 0; i < c.nout; i++) {
    out_conn_t *o = &c.out[i];
    o->ch = &c;
    uv_tcp_init(&c.loop, &o->tcp);
    o->tcp.data = &c;
    o->creq.data = o;
    uv_ip4_addr("127.0.0.1", c.ports[nb[i]], &sa);
    r = uv_tcp_connect(&o->creq, &o->tcp, (struct sockaddr *)&sa, on_connect);
    if (r < 0)
      die("connect", r);
  }
  uv_pipe_init(&c.loop, &c.ctl, 0);
  c.ctl.data = &c;
  uv_pipe_open(&c.ctl, down_fd);
  uv_read_start((uv_stream_t *)&c.ctl, on_alloc, on_ctl);
  uv_run(&c.loop, UV_RUN_DEFAULT);
  _exit(0);
}

/* Monotonic time in seconds. */
static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleep s seconds (s <= 0: not at all). */
static void sleep_s(double s) {
  struct timespec ts;
  if (s <= 0)
    return;
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

/* Usage on stderr; returns exit status 2. */
static int usage(void) {
  fprintf(stderr, "usage: clsnap-baseline --nodes N --topology ring|mesh "
                  "--seconds S [--warmup-ms W] [--frame-bytes B] [--json]\n");
  return 2;
}

/* Sum of every child's received bytes, asked with one 'M' each. */
static int mark(int nodes, const int *down, const int *up, uint64_t *sum) {
  int i;
  *sum = 0;
  for (i = 0; i < nodes; i++)
    write_all(down[i], "M", 1);
  for (i = 0; i < nodes; i++) {
    uint64_t v;
    if (read_all(up[i], &v, sizeof v) < 0)
      return -1;
    *sum += v;
  }
  return 0;
}

/* Parse, fork the children, run the window, print. Exit status. */
int main(int argc, char **argv) {
  int nodes = 0, mesh = -1, json = 0, i;
  double seconds = 0, warmup_ms = 500;
  size_t frame_bytes = 0;
  int down[MAX_NODES], up[MAX_NODES];
  pid_t pids[MAX_NODES];
  uint16_t ports[MAX_NODES];
  uint64_t b0, b1;
  double t0, t1, frames, fps;
  char c;
  int failed = 0, status;
  msgpack_sbuffer sb;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--json") == 0) {
      json = 1;
      continue;
    }
    if (v == NULL)
      return usage();
    if (strcmp(a, "--nodes") == 0)
      nodes = atoi(v);
    else if (strcmp(a, "--topology") == 0)
      mesh = strcmp(v, "mesh") == 0 ? 1 : strcmp(v, "ring") == 0 ? 0 : -2;
    else if (strcmp(a, "--seconds") == 0)
      seconds = atof(v);
    else if (strcmp(a, "--warmup-ms") == 0)
      warmup_ms = atof(v);
    else if (strcmp(a, "--frame-bytes") == 0)
      frame_bytes = (size_t)atoi(v);
    else
      return usage();
    i++;
  }
  if (nodes < 2 || nodes > MAX_NODES || mesh < 0 || seconds <= 0 ||
      warmup_ms < 0 || frame_bytes > 1024)
    return usage();
  if (frame_bytes == 0) {
    /* A TOKEN frame as sent under load (seq past 2^16). */
    msgpack_sbuffer_init(&sb);
    if (cl_wire_encode_token(&sb, 1000000, 1) < 0)
      return 1;
    frame_bytes = sb.size;
    msgpack_sbuffer_destroy(&sb);
  }
  signal(SIGPIPE, SIG_IGN);

  for (i = 0; i < nodes; i++) {
    int p1[2], p2[2];
    if (pipe(p1) < 0 || pipe(p2) < 0) {
      perror("pipe");
      return 1;
    }
    fflush(NULL);
    pids[i] = fork();
    if (pids[i] < 0) {
      perror("fork");
      return 1;
    }
    if (pids[i] == 0) {
      int j;
      close(p1[1]);
      close(p2[0]);
      for (j = 0; j < i; j++) {
        close(down[j]);
        close(up[j]);
      }
      child_main(i, nodes, mesh, p1[0], p2[1], frame_bytes);
    }
    close(p1[0]);
    close(p2[1]);
    down[i] = p1[1];
    up[i] = p2[0];
  }
  for (i = 0; i < nodes; i++)
    if (read_all(up[i], &ports[i], sizeof ports[i]) < 0) {
      failed = 1;
      goto out;
    }
  for (i = 0; i < nodes; i++)
    write_all(down[i], ports, (size_t)nodes * sizeof ports[0]);
  for (i = 0; i < nodes; i++)
    if (read_all(up[i], &c, 1) < 0 || c != 'R') {
      failed = 1;
      goto out;
    }
  for (i = 0; i < nodes; i++)
    write_all(down[i], "G", 1);
  sleep_s(warmup_ms / 1000.0);
  t0 = now_s();
  if (mark(nodes, down, up, &b0) < 0) {
    failed = 1;
    goto out;
  }
  sleep_s(seconds - (now_s() - t0));
  if (mark(nodes, down, up, &b1) < 0) {
    failed = 1;
    goto out;
  }
  t1 = now_s();
  frames = (double)(b1 - b0) / (double)frame_bytes;
  fps = frames / (t1 - t0);
  if (json)
    printf("{\"nodes\": %d, \"topology\": \"%s\", \"connections\": %d, "
           "\"frame_bytes\": %zu, \"seconds\": %.3f, \"frames\": %.0f, "
           "\"frames_per_s\": %.0f, \"bytes_per_s\": %.0f}\n",
           nodes, mesh ? "mesh" : "ring", mesh ? nodes * (nodes - 1) : nodes,
           frame_bytes, t1 - t0, frames, fps,
           (double)(b1 - b0) / (t1 - t0));
  else
    printf("baseline: %d nodes, %s, %zu-byte frames: %.0f frames/s "
           "(%.1f MB/s) over %.2f s\n",
           nodes, mesh ? "mesh" : "ring", frame_bytes, fps,
           (double)(b1 - b0) / (t1 - t0) / 1e6, t1 - t0);
out:
  for (i = 0; i < nodes; i++)
    if (write(down[i], "Q", 1) < 0) {
      /* that child is gone already; waitpid tells how */
    }
  for (i = 0; i < nodes; i++) {
    if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
      failed = 1;
  }
  if (failed)
    fprintf(stderr, "clsnap-baseline: a child failed\n");
  return failed ? 1 : 0;
}
