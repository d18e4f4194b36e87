#include "launcher.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

/* A READY line is short; anything longer is not one. */
#define LINE_MAX_BYTES 256

typedef struct dproc {
  cl_launcher_t *l;
  char id[CL_ID_SIZE];
  uv_process_t proc;
  uv_pipe_t out;
  int proc_open, pipe_open;
  int running;
  int ready;
  int exited; /* exit seen while not stopping */
  int bad_stop; /* while stopping: a non-zero status or a signal */
  int64_t stop_status;
  int stop_signal;
  int pid;
  char addr[CL_ADDR_SIZE];
  char line[LINE_MAX_BYTES];
  size_t linelen;
  int overlong; /* current line exceeded the buffer: ignore it */
  char rbuf[512];
} dproc_t;

struct cl_launcher {
  uv_loop_t *loop;
  size_t n;
  dproc_t *d;
  char log_dir[PATH_MAX];
  int tmp_dir;
  int stopping, stopped;
  int failed;
  char fail_msg[300];
  int interrupted;
  uv_timer_t timer;
  int timer_open, timer_fired;
  uv_signal_t sigint, sigterm;
  int sig_open;
};

/* 1 if p can be executed. */
static int executable(const char *p) { return access(p, X_OK) == 0; }

/* Resolve the clsnapd to run; see launcher.h for the order. */
int cl_launcher_find_daemon(const char *explicit_path, char *out,
                            size_t outsize, char *err, size_t errsize) {
  char exe[PATH_MAX], cand[PATH_MAX + 32], *slash;
  size_t size = sizeof exe;
  const char *path;
  if (explicit_path != NULL) {
    if (!executable(explicit_path)) {
      cl_set_err(err, errsize, "cannot run clsnapd at %s: %s", explicit_path,
                 strerror(errno));
      return CL_ENOENT;
    }
    snprintf(out, outsize, "%s", explicit_path);
    return 0;
  }
  if (uv_exepath(exe, &size) == 0 && (slash = strrchr(exe, '/')) != NULL) {
    *slash = '\0';
    snprintf(cand, sizeof cand, "%s/clsnapd", exe);
    if (executable(cand)) {
      snprintf(out, outsize, "%s", cand);
      return 0;
    }
    snprintf(cand, sizeof cand, "%s/../daemon/clsnapd", exe);
    if (executable(cand)) {
      char real[PATH_MAX];
      /* A clean path reads better in ps and logs. */
      snprintf(out, outsize, "%s", realpath(cand, real) ? real : cand);
      return 0;
    }
  }
  path = getenv("PATH");
  while (path != NULL && *path != '\0') {
    const char *end = strchr(path, ':');
    size_t len = end ? (size_t)(end - path) : strlen(path);
    if (len > 0 && len < PATH_MAX) {
      snprintf(cand, sizeof cand, "%.*s/clsnapd", (int)len, path);
      if (executable(cand)) {
        snprintf(out, outsize, "%s", cand);
        return 0;
      }
    }
    path = end ? end + 1 : NULL;
  }
  cl_set_err(err, errsize,
             "cannot find clsnapd (looked next to clsnap, in ../daemon and in "
             "PATH); use --daemon PATH");
  return CL_ENOENT;
}

/* Close callback: clears the open flag the handle points at. */
static void on_handle_closed(uv_handle_t *h) {
  int *flag = h->data;
  *flag = 0;
}

/* Close h once, clearing *flag when the close completes. */
static void close_flagged(uv_handle_t *h, int *flag) {
  if (*flag && !uv_is_closing(h)) {
    h->data = flag;
    uv_close(h, on_handle_closed);
  }
}

/* A daemon exited: a failure of the run unless we are stopping. */
static void on_exit_cb(uv_process_t *p, int64_t status, int sig) {
  dproc_t *d = p->data;
  cl_launcher_t *l = d->l;
  d->running = 0;
  if (l->stopping) {
    /* A daemon stops with status 0 on SHUTDOWN or SIGTERM; anything else
     * (a sanitizer's report at exit, a crash on the way out, the SIGKILL
     * after the grace) is a failure of the run. */
    d->bad_stop = status != 0 || sig != 0;
    d->stop_status = status;
    d->stop_signal = sig;
  } else {
    d->exited = 1;
    if (!l->failed) {
      l->failed = 1;
      if (sig != 0)
        snprintf(l->fail_msg, sizeof l->fail_msg,
                 "server %s (pid %d) exited with signal %d (%s)", d->id,
                 d->pid, sig, strsignal(sig));
      else
        snprintf(l->fail_msg, sizeof l->fail_msg,
                 "server %s (pid %d) exited with status %lld", d->id, d->pid,
                 (long long)status);
    }
  }
  close_flagged((uv_handle_t *)&d->proc, &d->proc_open);
}

/* Daemon stdout is read into a small per-daemon buffer. */
static void on_out_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  dproc_t *d = h->data;
  (void)suggested;
  buf->base = d->rbuf;
  buf->len = sizeof d->rbuf;
}

/* One complete stdout line: the first READY line makes the daemon ready. */
static void out_line(dproc_t *d) {
  char id[CL_ID_SIZE + 1], addr[CL_ADDR_SIZE + 1], extra;
  if (d->ready)
    return;
  if (sscanf(d->line, "READY %64s %64s %c", id, addr, &extra) == 2 &&
      strcmp(id, d->id) == 0 && strlen(addr) < CL_ADDR_SIZE) {
    snprintf(d->addr, sizeof d->addr, "%s", addr);
    d->ready = 1;
  }
}

/* Split daemon stdout into lines; the first READY line counts. */
static void on_out_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  dproc_t *d = s->data;
  ssize_t i;
  if (nread < 0) {
    close_flagged((uv_handle_t *)&d->out, &d->pipe_open);
    return;
  }
  for (i = 0; i < nread; i++) {
    char ch = buf->base[i];
    if (ch == '\n') {
      d->line[d->linelen] = '\0';
      if (!d->overlong)
        out_line(d);
      d->linelen = 0;
      d->overlong = 0;
    } else if (d->linelen + 1 < sizeof d->line) {
      d->line[d->linelen++] = ch;
    } else {
      d->overlong = 1;
    }
  }
}

/* SIGINT/SIGTERM: remember it; waits see it through the guard. */
static void on_signal(uv_signal_t *h, int signum) {
  cl_launcher_t *l = h->data;
  if (l->interrupted == 0)
    l->interrupted = signum;
}

/* Deadline reached: the waiting loop notices the flag. */
static void on_timer(uv_timer_t *t) {
  cl_launcher_t *l = t->data;
  l->timer_fired = 1;
}

/* Close callback of the timer. */
static void on_timer_closed(uv_handle_t *h) {
  cl_launcher_t *l = h->data;
  l->timer_open = 0;
}

/* Close callback of a signal watcher. */
static void on_sig_closed(uv_handle_t *h) {
  cl_launcher_t *l = h->data;
  l->sig_open--;
}

/* Use (creating it) the given log directory, or make a temporary one. */
static int make_log_dir(cl_launcher_t *l, const char *given, char *err,
                        size_t errsize) {
  if (given != NULL) {
    if (strlen(given) + CL_ID_SIZE + 8 >= sizeof l->log_dir) {
      cl_set_err(err, errsize, "log directory path too long: %s", given);
      return CL_EINVAL;
    }
    if (mkdir(given, 0777) != 0 && errno != EEXIST) {
      cl_set_err(err, errsize, "cannot create log directory %s: %s", given,
                 strerror(errno));
      return CL_EIO;
    }
    snprintf(l->log_dir, sizeof l->log_dir, "%s", given);
    return 0;
  } else {
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || *tmp == '\0' || strlen(tmp) > PATH_MAX - 128)
      tmp = "/tmp";
    snprintf(l->log_dir, sizeof l->log_dir, "%s/clsnap-XXXXXX", tmp);
    if (mkdtemp(l->log_dir) == NULL) {
      cl_set_err(err, errsize, "cannot create a log directory under %s: %s",
                 tmp, strerror(errno));
      l->log_dir[0] = '\0';
      return CL_EIO;
    }
    l->tmp_dir = 1;
    return 0;
  }
}

/* Spawn daemon d. Returns 0 or CL_EIO with err set. */
static int spawn_one(cl_launcher_t *l, dproc_t *d, const char *path,
                     const cl_launch_opts_t *opts, char *err,
                     size_t errsize) {
  char logpath[PATH_MAX + CL_ID_SIZE + 8];
  char *args[11];
  uv_process_options_t po;
  uv_stdio_container_t io[3];
  int fd, rc, a = 0;
  snprintf(logpath, sizeof logpath, "%s/%s.log", l->log_dir, d->id);
  fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    cl_set_err(err, errsize, "cannot create %s: %s", logpath, strerror(errno));
    return CL_EIO;
  }
  args[a++] = (char *)path;
  args[a++] = "--id";
  args[a++] = d->id;
  args[a++] = "--listen";
  args[a++] = "127.0.0.1:0";
  args[a++] = "--die-with-parent";
  if (opts->extra != NULL)
    args[a++] = (char *)opts->extra;
  if (opts->secret_file != NULL) {
    args[a++] = "--secret-file";
    args[a++] = (char *)opts->secret_file;
  }
  args[a] = NULL;
  uv_pipe_init(l->loop, &d->out, 0);
  d->out.data = d;
  d->pipe_open = 1;
  memset(&po, 0, sizeof po);
  memset(io, 0, sizeof io);
  io[0].flags = UV_IGNORE;
  io[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  io[1].data.stream = (uv_stream_t *)&d->out;
  io[2].flags = UV_INHERIT_FD;
  io[2].data.fd = fd;
  po.file = path;
  po.args = args;
  po.stdio = io;
  po.stdio_count = 3;
  po.exit_cb = on_exit_cb;
  /* Own session: a Ctrl-C at the terminal reaches clsnap only, which then
   * stops its daemons in order. --die-with-parent still covers a clsnap
   * that is killed outright. */
  po.flags = UV_PROCESS_DETACHED;
  d->proc.data = d;
  rc = uv_spawn(l->loop, &d->proc, &po);
  close(fd);
  d->proc_open = 1; /* initialised even when spawning failed */
  if (rc < 0) {
    close_flagged((uv_handle_t *)&d->proc, &d->proc_open);
    close_flagged((uv_handle_t *)&d->out, &d->pipe_open);
    cl_set_err(err, errsize, "cannot start %s for server %s: %s", path, d->id,
               uv_strerror(rc));
    return CL_EIO;
  }
  d->proc.data = d;
  d->pid = d->proc.pid;
  d->running = 1;
  rc = uv_read_start((uv_stream_t *)&d->out, on_out_alloc, on_out_read);
  if (rc < 0) {
    cl_set_err(err, errsize, "cannot read the output of server %s: %s", d->id,
               uv_strerror(rc));
    return CL_EIO;
  }
  return 0;
}

/* Arm the launcher's timer. */
static void timer_start(cl_launcher_t *l, uint64_t ms) {
  l->timer_fired = 0;
  uv_timer_start(&l->timer, on_timer, ms, 0);
}

/* Spawn every daemon, then run the loop until all are READY, one fails, time
 * runs out or a signal comes. */
int cl_launcher_start(uv_loop_t *loop, const cl_launch_opts_t *opts,
                      const char (*ids)[CL_ID_SIZE], size_t n,
                      cl_launcher_t **out, char *err, size_t errsize) {
  cl_launcher_t *l;
  char path[PATH_MAX];
  size_t i;
  int rc;
  uint64_t ready_ms = opts->ready_ms ? opts->ready_ms : CL_LAUNCH_READY_MS;
  *out = NULL;
  l = calloc(1, sizeof *l);
  if (l == NULL || (l->d = calloc(n ? n : 1, sizeof *l->d)) == NULL) {
    free(l);
    cl_set_err(err, errsize, "out of memory");
    return CL_ENOMEM;
  }
  l->loop = loop;
  l->n = n;
  for (i = 0; i < n; i++) {
    l->d[i].l = l;
    snprintf(l->d[i].id, sizeof l->d[i].id, "%s", ids[i]);
  }
  uv_timer_init(loop, &l->timer);
  l->timer.data = l;
  l->timer_open = 1;
  uv_signal_init(loop, &l->sigint);
  uv_signal_init(loop, &l->sigterm);
  l->sigint.data = l->sigterm.data = l;
  l->sig_open = 2;
  uv_signal_start(&l->sigint, on_signal, SIGINT);
  uv_signal_start(&l->sigterm, on_signal, SIGTERM);
  *out = l;

  rc = cl_launcher_find_daemon(opts->daemon, path, sizeof path, err, errsize);
  if (rc < 0)
    return rc;
  rc = make_log_dir(l, opts->log_dir, err, errsize);
  if (rc < 0)
    return rc;
  for (i = 0; i < n; i++)
    if ((rc = spawn_one(l, &l->d[i], path, opts, err, errsize)) < 0)
      return rc;

  timer_start(l, ready_ms);
  for (;;) {
    size_t ready = 0;
    for (i = 0; i < n; i++)
      ready += (size_t)l->d[i].ready;
    if (ready == n)
      break;
    if ((rc = cl_launcher_guard(l, err, errsize)) < 0)
      break;
    if (l->timer_fired) {
      for (i = 0; i < n && l->d[i].ready; i++)
        ;
      cl_set_err(err, errsize,
                 "server %s not ready after %llu ms (see %s/%s.log)",
                 l->d[i].id, (unsigned long long)ready_ms, l->log_dir,
                 l->d[i].id);
      rc = CL_ETIMEOUT;
      break;
    }
    uv_run(loop, UV_RUN_ONCE);
  }
  uv_timer_stop(&l->timer);
  return rc;
}

/* Accessors; see launcher.h. */
const char *cl_launcher_addr(const cl_launcher_t *l, size_t i) {
  return l->d[i].addr;
}


int cl_launcher_interrupted(const cl_launcher_t *l) { return l->interrupted; }

/* Guard for cluster waits: interrupted or a daemon died. */
int cl_launcher_guard(void *ctx, char *err, size_t errsize) {
  cl_launcher_t *l = ctx;
  if (l->interrupted) {
    cl_set_err(err, errsize, "interrupted by %s", strsignal(l->interrupted));
    return CL_EIO;
  }
  if (l->failed) {
    cl_set_err(err, errsize, "%s", l->fail_msg);
    return CL_EIO;
  }
  return 0;
}

/* Give a dying daemon's exit a moment to be reaped. */
int cl_launcher_settle(cl_launcher_t *l, uint64_t ms, char *err,
                       size_t errsize) {
  if (!l->failed && !l->stopping) {
    timer_start(l, ms);
    while (!l->failed && !l->timer_fired)
      uv_run(l->loop, UV_RUN_ONCE);
    uv_timer_stop(&l->timer);
  }
  if (l->failed) {
    cl_set_err(err, errsize, "%s", l->fail_msg);
    return CL_EIO;
  }
  return 0;
}

/* Daemons not yet seen to exit. */
static size_t count_running(const cl_launcher_t *l) {
  size_t i, r = 0;
  for (i = 0; i < l->n; i++)
    r += (size_t)l->d[i].running;
  return r;
}

/* Run the loop until no daemon runs or ms pass. */
static void wait_exits(cl_launcher_t *l, uint64_t ms) {
  if (count_running(l) == 0)
    return;
  timer_start(l, ms);
  while (count_running(l) > 0 && !l->timer_fired)
    uv_run(l->loop, UV_RUN_ONCE);
  uv_timer_stop(&l->timer);
}

/* 1 if process pid is stopped (state T or t in /proc/PID/stat). */
static int proc_stopped(int pid) {
  char path[64], buf[512], *p;
  size_t n;
  FILE *f;
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  if ((f = fopen(path, "r")) == NULL)
    return 0;
  n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  p = strrchr(buf, ')');
  return p != NULL && p[1] == ' ' && (p[2] == 'T' || p[2] == 't');
}

/* SIGTERM those not told to shut down; SIGKILL after the short grace those
 * that are stopped, after the long one any still running; reap all; then
 * say whether one of them stopped badly. */
int cl_launcher_stop(cl_launcher_t *l, const uint8_t *asked, char *err,
                     size_t errsize) {
  size_t i;
  if (l == NULL || l->stopped)
    return 0;
  l->stopping = 1;
  for (i = 0; i < l->n; i++)
    if (l->d[i].running && !(asked && asked[i]))
      uv_process_kill(&l->d[i].proc, SIGTERM);
  wait_exits(l, CL_LAUNCH_KILL_MS);
  /* A stopped daemon (SIGSTOP) cannot exit: SIGKILL now. One that runs
   * may be on its way out, slowly: it may have taken SHUTDOWN after the
   * wait for its reply, or be in its leak check at exit under ASan on a
   * loaded machine (CI lost a 50-daemon run to SIGKILL that way). */
  for (i = 0; i < l->n; i++)
    if (l->d[i].running && !(asked && asked[i]) &&
        proc_stopped(l->d[i].pid))
      uv_process_kill(&l->d[i].proc, SIGKILL);
  /* Every other one gets the long grace. */
  wait_exits(l, CL_LAUNCH_EXIT_MS - CL_LAUNCH_KILL_MS);
  for (i = 0; i < l->n; i++)
    if (l->d[i].running)
      uv_process_kill(&l->d[i].proc, SIGKILL);
  /* SIGKILL cannot be ignored; the bound only guards against a process
   * stuck in the kernel. */
  wait_exits(l, 10000);
  l->stopped = 1;
  for (i = 0; i < l->n; i++) {
    dproc_t *d = &l->d[i];
    if (!d->bad_stop)
      continue;
    if (d->stop_signal != 0)
      cl_set_err(err, errsize, "server %s (pid %d) was ended by signal %d "
                 "(%s) while stopping (see %s/%s.log)", d->id, d->pid,
                 d->stop_signal, strsignal(d->stop_signal), l->log_dir,
                 d->id);
    else
      cl_set_err(err, errsize, "server %s (pid %d) exited with status %lld "
                 "while stopping (see %s/%s.log)", d->id, d->pid,
                 (long long)d->stop_status, l->log_dir, d->id);
    return CL_EIO;
  }
  return 0;
}

/* Stop, close every handle, then keep or remove the logs. */
void cl_launcher_free(cl_launcher_t *l, int keep_logs) {
  size_t i;
  int pending;
  if (l == NULL)
    return;
  (void)cl_launcher_stop(l, NULL, NULL, 0);
  for (i = 0; i < l->n; i++) {
    dproc_t *d = &l->d[i];
    if (!d->running)
      close_flagged((uv_handle_t *)&d->proc, &d->proc_open);
    close_flagged((uv_handle_t *)&d->out, &d->pipe_open);
  }
  if (l->timer_open && !uv_is_closing((uv_handle_t *)&l->timer))
    uv_close((uv_handle_t *)&l->timer, on_timer_closed);
  if (l->sig_open == 2) {
    uv_close((uv_handle_t *)&l->sigint, on_sig_closed);
    uv_close((uv_handle_t *)&l->sigterm, on_sig_closed);
  }
  do {
    pending = l->timer_open || l->sig_open > 0;
    for (i = 0; i < l->n; i++)
      pending |= l->d[i].pipe_open || (l->d[i].proc_open && !l->d[i].running);
    if (pending)
      uv_run(l->loop, UV_RUN_ONCE);
  } while (pending);
  /* A process that would not die even after SIGKILL keeps its handle; it
   * is left to the kernel rather than blocking forever. */
  for (i = 0; i < l->n; i++)
    if (l->d[i].proc_open)
      uv_unref((uv_handle_t *)&l->d[i].proc);
  if (l->log_dir[0] != '\0') {
    if (keep_logs) {
      fprintf(stderr, "clsnap: daemon logs kept in %s\n", l->log_dir);
    } else if (l->tmp_dir) {
      char p[PATH_MAX + CL_ID_SIZE + 8];
      for (i = 0; i < l->n; i++) {
        snprintf(p, sizeof p, "%s/%s.log", l->log_dir, l->d[i].id);
        unlink(p);
      }
      rmdir(l->log_dir);
    }
  }
  free(l->d);
  free(l);
}
