#include "scenario.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"

/* Fields kept per line; longer lines are only counted, which is enough to
 * report a wrong field count. */
#define MAX_FIELDS 8
/* Room for a quoted (escaped, shortened) field in a diagnostic. */
#define QUOTE_SIZE 72

typedef struct field {
  const char *p;
  size_t len;
} field_t;

/* Walks a NUL-terminated text physical line by physical line, skipping blank
 * and comment lines, and splits each kept line into fields. */
typedef struct reader {
  const char *p, *end;
  int line;
  const char *name;
  cl_diag_t *diag;
  size_t nf; /* fields on the line, possibly more than MAX_FIELDS */
  field_t f[MAX_FIELDS];
} reader_t;

static void reader_init(reader_t *r, const char *name, const char *text,
                        cl_diag_t *diag) {
  memset(r, 0, sizeof *r);
  r->p = text;
  r->end = text + strlen(text);
  r->name = name ? name : "(input)";
  r->diag = diag;
}

/* Advance to the next line that has content. Returns 1, or 0 at the end of
 * the text (r->line is then the last physical line, 0 for empty text). */
static int reader_next(reader_t *r) {
  while (r->p < r->end) {
    const char *s = r->p;
    const char *eol = memchr(s, '\n', (size_t)(r->end - s));
    const char *e;
    if (eol == NULL)
      eol = r->end;
    r->p = eol < r->end ? eol + 1 : r->end;
    if (r->line < INT_MAX)
      r->line++;
    e = eol;
    if (e > s && e[-1] == '\r')
      e--;
    while (s < e && (*s == ' ' || *s == '\t'))
      s++;
    if (s == e || *s == '#')
      continue;
    r->nf = 0;
    while (s < e) {
      const char *b = s;
      while (s < e && *s != ' ' && *s != '\t')
        s++;
      if (r->nf < MAX_FIELDS) {
        r->f[r->nf].p = b;
        r->f[r->nf].len = (size_t)(s - b);
      }
      r->nf++;
      while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    }
    return 1;
  }
  return 0;
}

/* Fill diag (if any) and return err. line 0 means "not tied to a line". */
static int diag_set(cl_diag_t *d, const char *name, int line, int err,
                    const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int diag_set(cl_diag_t *d, const char *name, int line, int err,
                    const char *fmt, ...) {
  va_list ap;
  if (d == NULL)
    return err;
  snprintf(d->file, sizeof d->file, "%s", name ? name : "(input)");
  d->line = line;
  va_start(ap, fmt);
  vsnprintf(d->msg, sizeof d->msg, fmt, ap);
  va_end(ap);
  return err;
}

#define FAIL(r, err, ...) diag_set((r)->diag, (r)->name, (r)->line, err, __VA_ARGS__)

/* A field made safe to print: non-printable bytes escaped, long fields cut,
 * so diagnostics stay one short line whatever the input holds. */
static const char *quote(const field_t *f, char buf[QUOTE_SIZE]) {
  static const char hex[] = "0123456789abcdef";
  size_t o = 0, i;
  for (i = 0; i < f->len; i++) {
    unsigned char c = (unsigned char)f->p[i];
    if (o + 8 >= QUOTE_SIZE) {
      memcpy(buf + o, "...", 3);
      o += 3;
      break;
    }
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      buf[o++] = (char)c;
    } else {
      buf[o++] = '\\';
      buf[o++] = 'x';
      buf[o++] = hex[c >> 4];
      buf[o++] = hex[c & 15];
    }
  }
  buf[o] = '\0';
  return buf;
}

/* Copy a field into buf as a string; -1 if it does not fit. */
static int field_str(const field_t *f, char *buf, size_t size) {
  if (f->len >= size)
    return -1;
  memcpy(buf, f->p, f->len);
  buf[f->len] = '\0';
  return 0;
}

/* Parse a field as a decimal integer in [min, max]: 0, CL_EINVAL or
 * CL_ERANGE (an over-long run of digits is out of range, not invalid). */
static int field_i64(const field_t *f, int64_t min, int64_t max,
                     int64_t *out) {
  char buf[32];
  if (field_str(f, buf, sizeof buf) != 0) {
    size_t i = f->p[0] == '-' ? 1 : 0;
    for (; i < f->len; i++)
      if (f->p[i] < '0' || f->p[i] > '9')
        return CL_EINVAL;
    return CL_ERANGE;
  }
  return cl_parse_i64(buf, min, max, out);
}

/* Parse a field as a server id into id. Returns 0 or CL_EINVAL. */
static int field_id(const field_t *f, char id[CL_ID_SIZE]) {
  if (field_str(f, id, CL_ID_SIZE) != 0 || !cl_id_valid(id))
    return CL_EINVAL;
  return 0;
}

/* A token count field in [0, CL_TOKENS_MAX], with a diagnostic that says
 * which way it is wrong. */
static int parse_tokens(reader_t *r, const field_t *f, int64_t *out) {
  char q[QUOTE_SIZE];
  int rc = field_i64(f, 0, CL_TOKENS_MAX, out);
  if (rc == CL_EINVAL)
    return FAIL(r, CL_EINVAL, "invalid token count '%s' (expected an integer)",
                quote(f, q));
  if (rc != 0) {
    if (f->p[0] == '-')
      return FAIL(r, CL_ERANGE, "negative token count %s", quote(f, q));
    return FAIL(r, CL_ERANGE, "token count %s exceeds the maximum %lld",
                quote(f, q), (long long)CL_TOKENS_MAX);
  }
  return 0;
}

/* A server id field, with "invalid server id 'x'" on failure. */
static int parse_id(reader_t *r, const field_t *f, char id[CL_ID_SIZE]) {
  char q[QUOTE_SIZE];
  if (field_id(f, id) != 0)
    return FAIL(r, CL_EINVAL,
                "invalid server id '%s' (1..%d of [A-Za-z0-9._-])",
                quote(f, q), CL_ID_MAX);
  return 0;
}

static int server_cmp(const void *a, const void *b) {
  return cl_id_cmp(((const cl_server_t *)a)->id, ((const cl_server_t *)b)->id);
}

/* Order of links: by src, then dst (see scenario.h). */
int cl_link_cmp(const void *a, const void *b) {
  const cl_link_t *x = a, *y = b;
  if (x->src != y->src)
    return x->src < y->src ? -1 : 1;
  if (x->dst != y->dst)
    return x->dst < y->dst ? -1 : 1;
  return 0;
}

void cl_diag_format(const cl_diag_t *d, char *buf, size_t size) {
  if (buf == NULL || size == 0)
    return;
  if (d == NULL) {
    buf[0] = '\0';
    return;
  }
  if (d->file[0] != '\0' && d->line > 0)
    snprintf(buf, size, "%s:%d: %s", d->file, d->line, d->msg);
  else if (d->file[0] != '\0')
    snprintf(buf, size, "%s: %s", d->file, d->msg);
  else if (d->line > 0)
    snprintf(buf, size, "line %d: %s", d->line, d->msg);
  else
    snprintf(buf, size, "%s", d->msg);
}

/* ---- file reading ------------------------------------------------------ */

int cl_read_file(const char *path, char **out, size_t *len, cl_diag_t *diag) {
  FILE *f;
  struct stat st;
  char *buf = NULL, *nul;
  size_t cap = 0, n = 0;
  *out = NULL;
  if (len)
    *len = 0;
  if (path == NULL)
    return diag_set(diag, "(null)", 0, CL_EIO, "no file name");
  f = fopen(path, "rb");
  if (f == NULL)
    return diag_set(diag, path, 0, CL_EIO, "cannot open: %s", strerror(errno));
  /* Fail fast on a regular file known to be too big; the read loop below
   * still enforces the cap for everything else. */
  if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) &&
      (uintmax_t)st.st_size > CL_FILE_MAX) {
    fclose(f);
    return diag_set(diag, path, 0, CL_EIO, "file is larger than %d MiB",
                    (int)(CL_FILE_MAX >> 20));
  }
  /* Read in growing chunks rather than trusting the size from stat, so
   * pipes and files that change under us are handled the same way. */
  for (;;) {
    size_t got;
    if (n == cap) {
      size_t ncap = cap ? cap * 2 : 64 * 1024;
      char *nb;
      if (ncap > CL_FILE_MAX + 1)
        ncap = CL_FILE_MAX + 1;
      if (ncap == cap) {
        free(buf);
        fclose(f);
        return diag_set(diag, path, 0, CL_EIO, "file is larger than %d MiB",
                        (int)(CL_FILE_MAX >> 20));
      }
      nb = realloc(buf, ncap + 1);
      if (nb == NULL) {
        free(buf);
        fclose(f);
        return diag_set(diag, path, 0, CL_EIO, "out of memory reading file");
      }
      buf = nb;
      cap = ncap;
    }
    got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0) {
      if (ferror(f)) {
        int e = errno;
        free(buf);
        fclose(f);
        return diag_set(diag, path, 0, CL_EIO, "read error: %s", strerror(e));
      }
      break;
    }
  }
  fclose(f);
  if (n > CL_FILE_MAX) {
    free(buf);
    return diag_set(diag, path, 0, CL_EIO, "file is larger than %d MiB",
                    (int)(CL_FILE_MAX >> 20));
  }
  if (buf == NULL) {
    buf = malloc(1);
    if (buf == NULL)
      return diag_set(diag, path, 0, CL_EIO, "out of memory reading file");
  }
  buf[n] = '\0';
  nul = memchr(buf, '\0', n);
  if (nul != NULL) {
    int line = 1;
    const char *p;
    for (p = buf; p < nul; p++)
      if (*p == '\n' && line < INT_MAX)
        line++;
    free(buf);
    return diag_set(diag, path, line, CL_EIO,
                    "file contains a NUL byte (not a text file?)");
  }
  *out = buf;
  if (len)
    *len = n;
  return 0;
}

/* ---- topology ---------------------------------------------------------- */

void cl_topology_free(cl_topology_t *t) {
  if (t == NULL)
    return;
  free(t->servers);
  free(t->links);
  free(t);
}

int cl_topology_find(const cl_topology_t *t, const char *id) {
  if (t == NULL)
    return -1;
  return (int)cl_id_search(t->servers, t->nservers, sizeof *t->servers, id);
}

long cl_topology_link(const cl_topology_t *t, uint32_t src, uint32_t dst) {
  cl_link_t key;
  const cl_link_t *k;
  if (t == NULL || t->nlinks == 0)
    return -1;
  key.src = src;
  key.dst = dst;
  k = bsearch(&key, t->links, t->nlinks, sizeof key, cl_link_cmp);
  return k != NULL ? (long)(k - t->links) : -1;
}

int cl_topology_has_link(const cl_topology_t *t, uint32_t src, uint32_t dst) {
  return cl_topology_link(t, src, dst) >= 0;
}

/* Link-parsing state: the growing link array, the line of each link (to
 * name the first one of a duplicate) and an nservers^2 bitmap so duplicate
 * detection stays linear however many links there are. */
typedef struct links_acc {
  cl_link_t *links;
  int *lines;
  size_t n, cap;
  unsigned char *seen;
} links_acc_t;

static void links_acc_free(links_acc_t *a) {
  free(a->links);
  free(a->lines);
  free(a->seen);
}

/* Read the link lines that follow the servers. */
static int topo_parse_links(reader_t *r, cl_topology_t *t, links_acc_t *a) {
  size_t nsrv = t->nservers;
  a->seen = calloc((nsrv * nsrv + 7) / 8, 1);
  if (a->seen == NULL)
    return FAIL(r, CL_ENOMEM, "out of memory");
  while (reader_next(r)) {
    char id[2][CL_ID_SIZE];
    int idx[2], k;
    size_t bit, i;
    if (r->nf != 2)
      return FAIL(r, CL_EINVAL, "a link line is 'SRC DEST', found %zu fields",
                  r->nf);
    for (k = 0; k < 2; k++) {
      int rc = parse_id(r, &r->f[k], id[k]);
      if (rc != 0)
        return rc;
    }
    for (k = 0; k < 2; k++) {
      idx[k] = cl_topology_find(t, id[k]);
      if (idx[k] < 0)
        return FAIL(r, CL_ENOENT, "link %s->%s: unknown server %s", id[0],
                    id[1], id[k]);
    }
    if (idx[0] == idx[1])
      return FAIL(r, CL_EINVAL, "self-link %s->%s is not allowed", id[0],
                  id[1]);
    bit = (size_t)idx[0] * nsrv + (size_t)idx[1];
    if (a->seen[bit / 8] & (1u << (bit % 8))) {
      int first = 0;
      for (i = 0; i < a->n; i++)
        if (a->links[i].src == (uint32_t)idx[0] &&
            a->links[i].dst == (uint32_t)idx[1])
          first = a->lines[i];
      return FAIL(r, CL_EDUP, "duplicate link %s->%s (first on line %d)",
                  id[0], id[1], first);
    }
    a->seen[bit / 8] |= (unsigned char)(1u << (bit % 8));
    if (a->n == a->cap) {
      size_t ncap = a->cap ? a->cap * 2 : 64;
      cl_link_t *nl = realloc(a->links, ncap * sizeof *nl);
      int *nli;
      if (nl == NULL)
        return FAIL(r, CL_ENOMEM, "out of memory");
      a->links = nl;
      nli = realloc(a->lines, ncap * sizeof *nli);
      if (nli == NULL)
        return FAIL(r, CL_ENOMEM, "out of memory");
      a->lines = nli;
      a->cap = ncap;
    }
    a->links[a->n].src = (uint32_t)idx[0];
    a->links[a->n].dst = (uint32_t)idx[1];
    a->lines[a->n] = r->line;
    a->n++;
  }
  return 0;
}

/* Read the count line and the server lines into t (unsorted). Returns 0 or
 * a CL_E code with the diag filled. */
static int topo_parse_servers(reader_t *r, cl_topology_t *t, int **linesp) {
  char q[QUOTE_SIZE];
  int64_t count;
  size_t n = 0, i;
  int rc, *lines;
  if (!reader_next(r))
    return FAIL(r, CL_EINVAL,
                "empty topology: expected the server count on the first line");
  if (r->nf != 1)
    return FAIL(r, CL_EINVAL,
                "expected the server count alone on the first line, found %zu "
                "fields",
                r->nf);
  rc = field_i64(&r->f[0], INT64_MIN, INT64_MAX, &count);
  if (rc == CL_EINVAL)
    return FAIL(r, CL_EINVAL, "invalid server count '%s' (expected an integer)",
                quote(&r->f[0], q));
  if (rc != 0 || count < 1 || count > CL_SERVERS_MAX)
    return FAIL(r, CL_ERANGE, "server count %s out of range 1..%d",
                quote(&r->f[0], q), CL_SERVERS_MAX);
  t->servers = calloc((size_t)count, sizeof *t->servers);
  lines = *linesp = malloc((size_t)count * sizeof *lines);
  if (t->servers == NULL || lines == NULL)
    return FAIL(r, CL_ENOMEM, "out of memory");
  while (n < (size_t)count) {
    cl_server_t *s = &t->servers[n];
    int64_t tok;
    if (!reader_next(r))
      return FAIL(r, CL_EINVAL, "expected %lld servers, found %zu",
                  (long long)count, n);
    if (r->nf != 2)
      return FAIL(r, CL_EINVAL,
                  "a server line is 'ID TOKENS', found %zu fields (server %zu "
                  "of %lld)",
                  r->nf, n + 1, (long long)count);
    rc = parse_id(r, &r->f[0], s->id);
    if (rc != 0)
      return rc;
    /* A line naming two servers already seen is a link: the count promised
     * more servers than the file lists. */
    if (field_i64(&r->f[1], INT64_MIN, INT64_MAX, &tok) == CL_EINVAL) {
      char other[CL_ID_SIZE];
      int seen0 = 0, seen1 = 0;
      if (field_id(&r->f[1], other) == 0)
        for (i = 0; i < n; i++) {
          seen0 |= strcmp(t->servers[i].id, s->id) == 0;
          seen1 |= strcmp(t->servers[i].id, other) == 0;
        }
      if (seen0 && seen1)
        return FAIL(r, CL_EINVAL,
                    "expected %lld servers, found %zu before this link line",
                    (long long)count, n);
    }
    rc = parse_tokens(r, &r->f[1], &s->tokens);
    if (rc != 0)
      return rc;
    for (i = 0; i < n; i++)
      if (strcmp(t->servers[i].id, s->id) == 0)
        return FAIL(r, CL_EDUP, "duplicate server id %s (first on line %d)",
                    s->id, lines[i]);
    lines[n] = r->line;
    t->total_tokens += s->tokens;
    n++;
  }
  t->nservers = n;
  return 0;
}

int cl_topology_parse(const char *name, const char *text, cl_topology_t **out,
                      cl_diag_t *diag) {
  reader_t r;
  cl_topology_t *t;
  links_acc_t acc;
  int *lines = NULL;
  int rc;
  if (out == NULL)
    return diag_set(diag, name, 0, CL_EINVAL, "no output");
  *out = NULL;
  if (text == NULL)
    return diag_set(diag, name, 0, CL_EINVAL, "no text");
  reader_init(&r, name, text, diag);
  t = calloc(1, sizeof *t);
  memset(&acc, 0, sizeof acc);
  if (t == NULL)
    return FAIL(&r, CL_ENOMEM, "out of memory");
  rc = topo_parse_servers(&r, t, &lines);
  free(lines);
  if (rc == 0) {
    qsort(t->servers, t->nservers, sizeof *t->servers, server_cmp);
    rc = topo_parse_links(&r, t, &acc);
  }
  if (rc != 0) {
    links_acc_free(&acc);
    cl_topology_free(t);
    return rc;
  }
  free(acc.lines);
  free(acc.seen);
  t->links = acc.links;
  t->nlinks = acc.n;
  if (t->nlinks > 0)
    qsort(t->links, t->nlinks, sizeof *t->links, cl_link_cmp);
  *out = t;
  return 0;
}

int cl_topology_load(const char *path, cl_topology_t **out, cl_diag_t *diag) {
  char *text;
  int rc;
  if (out != NULL)
    *out = NULL;
  rc = cl_read_file(path, &text, NULL, diag);
  if (rc != 0)
    return rc;
  rc = cl_topology_parse(path, text, out, diag);
  free(text);
  return rc;
}

int cl_topology_write(const cl_topology_t *t, FILE *f) {
  size_t i;
  if (t == NULL || f == NULL)
    return CL_EINVAL;
  fprintf(f, "%zu\n", t->nservers);
  for (i = 0; i < t->nservers; i++)
    fprintf(f, "%s %lld\n", t->servers[i].id, (long long)t->servers[i].tokens);
  for (i = 0; i < t->nlinks; i++) {
    if (t->links[i].src >= t->nservers || t->links[i].dst >= t->nservers)
      return CL_EINVAL;
    fprintf(f, "%s %s\n", t->servers[t->links[i].src].id,
            t->servers[t->links[i].dst].id);
  }
  return ferror(f) ? CL_EIO : 0;
}

/* ---- events ------------------------------------------------------------ */

void cl_script_free(cl_script_t *s) {
  if (s == NULL)
    return;
  free(s->events);
  free(s);
}

/* Resolve an id field to its topology index, with a diagnostic. */
static int event_server(reader_t *r, const cl_topology_t *topo,
                        const field_t *f, uint32_t *idx) {
  char id[CL_ID_SIZE];
  int rc = parse_id(r, f, id), k;
  if (rc != 0)
    return rc;
  k = cl_topology_find(topo, id);
  if (k < 0)
    return FAIL(r, CL_ENOENT, "unknown server %s (not in the topology)", id);
  *idx = (uint32_t)k;
  return 0;
}

/* Parse one event line into ev. */
static int parse_event(reader_t *r, const cl_topology_t *topo,
                       cl_event_t *ev) {
  char q[QUOTE_SIZE];
  const field_t *kw = &r->f[0];
  int rc;
  memset(ev, 0, sizeof *ev);
  ev->line = r->line;
  if (kw->len == 4 && memcmp(kw->p, "send", 4) == 0) {
    if (r->nf != 4)
      return FAIL(r, CL_EINVAL, "expected 'send SRC DEST N', found %zu fields",
                  r->nf);
    ev->kind = CL_EV_SEND;
    if ((rc = event_server(r, topo, &r->f[1], &ev->src)) != 0 ||
        (rc = event_server(r, topo, &r->f[2], &ev->dst)) != 0)
      return rc;
    rc = field_i64(&r->f[3], 1, CL_TOKENS_MAX, &ev->n);
    if (rc == CL_EINVAL)
      return FAIL(r, rc, "invalid token count '%s' in send (expected an "
                  "integer >= 1)", quote(&r->f[3], q));
    if (rc != 0)
      return FAIL(r, rc, "token count %s in send out of range 1..%lld",
                  quote(&r->f[3], q), (long long)CL_TOKENS_MAX);
    if (!cl_topology_has_link(topo, ev->src, ev->dst))
      return FAIL(r, CL_ENOPEER, "no link %s->%s in topology",
                  topo->servers[ev->src].id, topo->servers[ev->dst].id);
    return 0;
  }
  if (kw->len == 8 && memcmp(kw->p, "snapshot", 8) == 0) {
    if (r->nf != 2)
      return FAIL(r, CL_EINVAL, "expected 'snapshot ID', found %zu fields",
                  r->nf);
    ev->kind = CL_EV_SNAPSHOT;
    return event_server(r, topo, &r->f[1], &ev->src);
  }
  if (kw->len == 4 && memcmp(kw->p, "tick", 4) == 0) {
    ev->kind = CL_EV_TICK;
    ev->n = 1;
    if (r->nf == 1)
      return 0;
    if (r->nf != 2)
      return FAIL(r, CL_EINVAL, "expected 'tick' or 'tick N', found %zu fields",
                  r->nf);
    rc = field_i64(&r->f[1], 1, CL_TICK_MAX, &ev->n);
    if (rc == CL_EINVAL)
      return FAIL(r, rc, "invalid tick count '%s' (expected an integer >= 1)",
                  quote(&r->f[1], q));
    if (rc != 0)
      return FAIL(r, rc, "tick count %s out of range 1..%d", quote(&r->f[1], q),
                  CL_TICK_MAX);
    return 0;
  }
  return FAIL(r, CL_EINVAL,
              "unknown event '%s' (expected send, snapshot or tick)",
              quote(kw, q));
}

int cl_script_parse(const char *name, const char *text,
                    const cl_topology_t *topo, cl_script_t **out,
                    cl_diag_t *diag) {
  reader_t r;
  cl_script_t *s;
  size_t cap = 0;
  if (out == NULL)
    return diag_set(diag, name, 0, CL_EINVAL, "no output");
  *out = NULL;
  if (text == NULL || topo == NULL)
    return diag_set(diag, name, 0, CL_EINVAL, "no text or no topology");
  reader_init(&r, name, text, diag);
  s = calloc(1, sizeof *s);
  if (s == NULL)
    return FAIL(&r, CL_ENOMEM, "out of memory");
  while (reader_next(&r)) {
    int rc;
    if (s->nevents == CL_EVENTS_MAX) {
      cl_script_free(s);
      return FAIL(&r, CL_ETOOBIG, "more than %d events", CL_EVENTS_MAX);
    }
    if (s->nevents == cap) {
      size_t ncap = cap ? cap * 2 : 256;
      cl_event_t *ne;
      if (ncap > CL_EVENTS_MAX)
        ncap = CL_EVENTS_MAX;
      ne = realloc(s->events, ncap * sizeof *ne);
      if (ne == NULL) {
        cl_script_free(s);
        return FAIL(&r, CL_ENOMEM, "out of memory");
      }
      s->events = ne;
      cap = ncap;
    }
    rc = parse_event(&r, topo, &s->events[s->nevents]);
    if (rc != 0) {
      cl_script_free(s);
      return rc;
    }
    if (s->events[s->nevents].kind == CL_EV_SNAPSHOT)
      s->nsnapshots++;
    s->nevents++;
  }
  *out = s;
  return 0;
}

int cl_script_load(const char *path, const cl_topology_t *topo,
                   cl_script_t **out, cl_diag_t *diag) {
  char *text;
  int rc;
  if (out != NULL)
    *out = NULL;
  rc = cl_read_file(path, &text, NULL, diag);
  if (rc != 0)
    return rc;
  rc = cl_script_parse(path, text, topo, out, diag);
  free(text);
  return rc;
}

/* ---- global snapshots --------------------------------------------------- */

void cl_snap_free(cl_snap_t *s) {
  if (s == NULL)
    return;
  free(s->servers);
  free(s->msgs);
  free(s);
}

/* Parse "token(N)" with N in [1, CL_TOKENS_MAX]. */
static int parse_token_field(reader_t *r, const field_t *f, int64_t *n) {
  char q[QUOTE_SIZE];
  field_t inner;
  int rc;
  if (f->len < 8 || memcmp(f->p, "token(", 6) != 0 || f->p[f->len - 1] != ')')
    return FAIL(r, CL_EINVAL, "expected 'token(N)', found '%s'", quote(f, q));
  inner.p = f->p + 6;
  inner.len = f->len - 7;
  rc = field_i64(&inner, 1, CL_TOKENS_MAX, n);
  if (rc == CL_EINVAL)
    return FAIL(r, rc, "expected 'token(N)' with an integer N, found '%s'",
                quote(f, q));
  if (rc != 0)
    return FAIL(r, rc, "token amount in '%s' out of range 1..%lld",
                quote(f, q), (long long)CL_TOKENS_MAX);
  return 0;
}

/* Append a server line to s; lines[] remembers where each one was. Both
 * arrays grow together, up to CL_SERVERS_MAX. */
static int snap_add_server(reader_t *r, cl_snap_t *s, int **linesp,
                           size_t *cap) {
  cl_server_t sv;
  int *lines = *linesp;
  size_t i;
  int rc;
  if ((rc = parse_id(r, &r->f[0], sv.id)) != 0 ||
      (rc = parse_tokens(r, &r->f[1], &sv.tokens)) != 0)
    return rc;
  for (i = 0; i < s->nservers; i++)
    if (strcmp(s->servers[i].id, sv.id) == 0)
      return FAIL(r, CL_EDUP, "duplicate server %s (first on line %d)", sv.id,
                  lines[i]);
  if (s->nservers == CL_SERVERS_MAX)
    return FAIL(r, CL_ERANGE, "more than %d servers", CL_SERVERS_MAX);
  if (s->nservers == *cap) {
    size_t ncap = *cap ? *cap * 2 : 16;
    cl_server_t *ns;
    if (ncap > CL_SERVERS_MAX)
      ncap = CL_SERVERS_MAX;
    ns = realloc(s->servers, ncap * sizeof *ns);
    if (ns == NULL)
      return FAIL(r, CL_ENOMEM, "out of memory");
    s->servers = ns;
    lines = realloc(lines, ncap * sizeof *lines);
    if (lines == NULL)
      return FAIL(r, CL_ENOMEM, "out of memory");
    *linesp = lines;
    *cap = ncap;
  }
  lines[s->nservers] = r->line;
  s->servers[s->nservers++] = sv;
  return 0;
}

/* Append a message line to s, growing msgs as needed. */
static int snap_add_msg(reader_t *r, cl_snap_t *s, size_t *cap) {
  cl_snap_msg_t m;
  int rc;
  if ((rc = parse_id(r, &r->f[0], m.src)) != 0 ||
      (rc = parse_id(r, &r->f[1], m.dst)) != 0 ||
      (rc = parse_token_field(r, &r->f[2], &m.n)) != 0)
    return rc;
  if (s->nmsgs == CL_SNAP_MSGS_MAX)
    return FAIL(r, CL_ETOOBIG, "more than %d recorded messages",
                CL_SNAP_MSGS_MAX);
  if (s->nmsgs == *cap) {
    size_t ncap = *cap ? *cap * 2 : 64;
    cl_snap_msg_t *nm;
    if (ncap > CL_SNAP_MSGS_MAX)
      ncap = CL_SNAP_MSGS_MAX;
    nm = realloc(s->msgs, ncap * sizeof *nm);
    if (nm == NULL)
      return FAIL(r, CL_ENOMEM, "out of memory");
    s->msgs = nm;
    *cap = ncap;
  }
  s->msgs[s->nmsgs++] = m;
  return 0;
}

/* The body of cl_snap_parse; s is freed by the caller on failure. */
static int snap_parse(reader_t *r, cl_snap_t *s, int **lines) {
  char q[QUOTE_SIZE];
  size_t mcap = 0, scap = 0;
  int first_msg_line = 0, rc;
  if (!reader_next(r))
    return FAIL(r, CL_EINVAL,
                "empty snapshot: expected the snapshot id on the first line");
  if (r->nf != 1)
    return FAIL(r, CL_EINVAL,
                "expected the snapshot id alone on the first line, found %zu "
                "fields",
                r->nf);
  {
    char buf[32];
    uint64_t u;
    if (field_str(&r->f[0], buf, sizeof buf) != 0 ||
        cl_parse_u64(buf, UINT64_MAX, &u) != 0)
      return FAIL(r, CL_EINVAL, "invalid snapshot id '%s' (expected an "
                  "unsigned integer)", quote(&r->f[0], q));
    s->id = u;
  }
  while (reader_next(r)) {
    if (r->nf == 2) {
      if (first_msg_line)
        return FAIL(r, CL_EINVAL,
                    "server line after the messages (first message on line "
                    "%d); servers come first",
                    first_msg_line);
      rc = snap_add_server(r, s, lines, &scap);
    } else if (r->nf == 3) {
      if (!first_msg_line)
        first_msg_line = r->line;
      rc = snap_add_msg(r, s, &mcap);
    } else {
      rc = FAIL(r, CL_EINVAL,
                "expected 'ID TOKENS' or 'SRC DEST token(N)', found %zu fields",
                r->nf);
    }
    if (rc != 0)
      return rc;
  }
  if (s->nservers == 0)
    return FAIL(r, CL_EINVAL, "no server lines in snapshot");
  qsort(s->servers, s->nservers, sizeof *s->servers, server_cmp);
  return 0;
}

int cl_snap_parse(const char *name, const char *text, cl_snap_t **out,
                  cl_diag_t *diag) {
  reader_t r;
  cl_snap_t *s;
  int *lines = NULL;
  int rc;
  if (out == NULL)
    return diag_set(diag, name, 0, CL_EINVAL, "no output");
  *out = NULL;
  if (text == NULL)
    return diag_set(diag, name, 0, CL_EINVAL, "no text");
  reader_init(&r, name, text, diag);
  s = calloc(1, sizeof *s);
  if (s == NULL)
    return FAIL(&r, CL_ENOMEM, "out of memory");
  rc = snap_parse(&r, s, &lines);
  free(lines);
  if (rc != 0) {
    cl_snap_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

int cl_snap_load(const char *path, cl_snap_t **out, cl_diag_t *diag) {
  char *text;
  int rc;
  if (out != NULL)
    *out = NULL;
  rc = cl_read_file(path, &text, NULL, diag);
  if (rc != 0)
    return rc;
  rc = cl_snap_parse(path, text, out, diag);
  free(text);
  return rc;
}

/* Message order key for grouping by destination: (dst, original index). */
typedef struct msg_key {
  const cl_snap_msg_t *m;
  size_t i;
} msg_key_t;

static int msg_key_cmp(const void *a, const void *b) {
  const msg_key_t *x = a, *y = b;
  int c = cl_id_cmp(x->m->dst, y->m->dst);
  if (c != 0)
    return c;
  return x->i < y->i ? -1 : x->i > y->i;
}

/* Keys of s's messages grouped by destination (stable), or NULL when out of
 * memory or when there are none. Caller frees. */
static msg_key_t *msgs_by_dst(const cl_snap_t *s) {
  msg_key_t *k;
  size_t i;
  if (s->nmsgs == 0)
    return NULL;
  k = malloc(s->nmsgs * sizeof *k);
  if (k == NULL)
    return NULL;
  for (i = 0; i < s->nmsgs; i++) {
    k[i].m = &s->msgs[i];
    k[i].i = i;
  }
  qsort(k, s->nmsgs, sizeof *k, msg_key_cmp);
  return k;
}

static int server_ptr_cmp(const void *a, const void *b) {
  return cl_id_cmp((*(const cl_server_t *const *)a)->id,
                   (*(const cl_server_t *const *)b)->id);
}

int cl_snap_write(const cl_snap_t *s, FILE *f) {
  const cl_server_t **sv;
  msg_key_t *k;
  size_t i;
  if (s == NULL || f == NULL)
    return CL_EINVAL;
  /* Sort copies rather than trusting the caller's order: snapshots built by
   * other modules are written too. */
  sv = malloc((s->nservers ? s->nservers : 1) * sizeof *sv);
  if (sv == NULL)
    return CL_ENOMEM;
  for (i = 0; i < s->nservers; i++)
    sv[i] = &s->servers[i];
  qsort(sv, s->nservers, sizeof *sv, server_ptr_cmp);
  k = msgs_by_dst(s);
  if (k == NULL && s->nmsgs > 0) {
    free(sv);
    return CL_ENOMEM;
  }
  fprintf(f, "%llu\n", (unsigned long long)s->id);
  for (i = 0; i < s->nservers; i++)
    fprintf(f, "%s %lld\n", sv[i]->id, (long long)sv[i]->tokens);
  for (i = 0; i < s->nmsgs; i++)
    fprintf(f, "%s %s token(%lld)\n", k[i].m->src, k[i].m->dst,
            (long long)k[i].m->n);
  free(sv);
  free(k);
  return ferror(f) ? CL_EIO : 0;
}

/* Server id in s, by binary search when s is sorted (the normal case) and by
 * a scan otherwise. */
static const cl_server_t *snap_find(const cl_snap_t *s, int sorted,
                                    const char *id) {
  size_t i;
  if (sorted) {
    cl_server_t key;
    snprintf(key.id, sizeof key.id, "%s", id);
    return bsearch(&key, s->servers, s->nservers, sizeof key, server_cmp);
  }
  for (i = 0; i < s->nservers; i++)
    if (strcmp(s->servers[i].id, id) == 0)
      return &s->servers[i];
  return NULL;
}

static int snap_sorted(const cl_snap_t *s) {
  size_t i;
  for (i = 1; i < s->nservers; i++)
    if (cl_id_cmp(s->servers[i - 1].id, s->servers[i].id) >= 0)
      return 0;
  return 1;
}

/* Fill why (if any) and return 0. */
static int differ(char *why, size_t whysize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int differ(char *why, size_t whysize, const char *fmt, ...) {
  va_list ap;
  if (why != NULL && whysize > 0) {
    va_start(ap, fmt);
    vsnprintf(why, whysize, fmt, ap);
    va_end(ap);
  }
  return 0;
}

/* "N1 token(3)" for a message, "none" for a missing one. */
static const char *msg_str(const cl_snap_msg_t *m, char buf[96]) {
  if (m == NULL)
    return "none";
  snprintf(buf, 96, "%s token(%lld)", m->src, (long long)m->n);
  return buf;
}

/* Compare message i of one destination; 1 if the same. */
static int msg_same(const cl_snap_msg_t *x, const cl_snap_msg_t *y) {
  return x != NULL && y != NULL && strcmp(x->src, y->src) == 0 && x->n == y->n;
}

static int msgs_differ(char *why, size_t whysize, const char *dst, size_t pos,
                       const cl_snap_msg_t *x, const cl_snap_msg_t *y) {
  char bx[96], by[96];
  return differ(why, whysize, "messages to %s differ at position %zu: %s vs %s",
                dst, pos, msg_str(x, bx), msg_str(y, by));
}

/* Compare the destination-grouped key arrays of two snapshots with the same
 * number of messages, one destination at a time; positions are 1-based. */
static int msgs_equal(const msg_key_t *ka, const msg_key_t *kb, size_t n,
                      char *why, size_t whysize) {
  size_t i = 0, j = 0, pos;
  while (i < n || j < n) {
    const char *dst;
    /* The destination to compare next is the smaller head of the two. */
    if (i < n && j < n)
      dst = cl_id_cmp(ka[i].m->dst, kb[j].m->dst) <= 0 ? ka[i].m->dst
                                                       : kb[j].m->dst;
    else
      dst = i < n ? ka[i].m->dst : kb[j].m->dst;
    for (pos = 1;; pos++) {
      const cl_snap_msg_t *x = NULL, *y = NULL;
      if (i < n && strcmp(ka[i].m->dst, dst) == 0)
        x = ka[i].m;
      if (j < n && strcmp(kb[j].m->dst, dst) == 0)
        y = kb[j].m;
      if (x == NULL && y == NULL)
        break;
      if (!msg_same(x, y))
        return msgs_differ(why, whysize, dst, pos, x, y);
      i++;
      j++;
    }
  }
  return 1;
}

/* The same comparison without allocating, used when memory is short:
 * quadratic, but always gives an answer. Counts are already equal, so once
 * every destination of a matches, b has no other messages. */
static int msgs_equal_slow(const cl_snap_t *a, const cl_snap_t *b, char *why,
                           size_t whysize) {
  size_t i, j, ia, ib, pos;
  for (i = 0; i < a->nmsgs; i++) {
    const char *dst = a->msgs[i].dst;
    for (j = 0; j < i; j++)
      if (strcmp(a->msgs[j].dst, dst) == 0)
        break;
    if (j < i)
      continue; /* destination already compared */
    ia = i;
    ib = 0;
    for (pos = 1;; pos++) {
      const cl_snap_msg_t *x = NULL, *y = NULL;
      for (; ia < a->nmsgs && x == NULL; ia++)
        if (strcmp(a->msgs[ia].dst, dst) == 0)
          x = &a->msgs[ia];
      for (; ib < b->nmsgs && y == NULL; ib++)
        if (strcmp(b->msgs[ib].dst, dst) == 0)
          y = &b->msgs[ib];
      if (x == NULL && y == NULL)
        break;
      if (!msg_same(x, y))
        return msgs_differ(why, whysize, dst, pos, x, y);
    }
  }
  return 1;
}

int cl_snap_equal(const cl_snap_t *a, const cl_snap_t *b, char *why,
                  size_t whysize) {
  msg_key_t *ka, *kb;
  int sa, sb, eq;
  size_t i;
  if (why != NULL && whysize > 0)
    why[0] = '\0';
  if (a == NULL || b == NULL)
    return differ(why, whysize, "missing snapshot");
  if (a->id != b->id)
    return differ(why, whysize, "snapshot id %llu vs %llu",
                  (unsigned long long)a->id, (unsigned long long)b->id);
  sa = snap_sorted(a);
  sb = snap_sorted(b);
  for (i = 0; i < a->nservers; i++) {
    const cl_server_t *x = &a->servers[i];
    const cl_server_t *y = snap_find(b, sb, x->id);
    if (y == NULL)
      return differ(why, whysize, "server %s only in the first snapshot",
                    x->id);
    if (x->tokens != y->tokens)
      return differ(why, whysize, "server %s: %lld tokens vs %lld", x->id,
                    (long long)x->tokens, (long long)y->tokens);
  }
  for (i = 0; i < b->nservers; i++)
    if (snap_find(a, sa, b->servers[i].id) == NULL)
      return differ(why, whysize, "server %s only in the second snapshot",
                    b->servers[i].id);
  if (a->nservers != b->nservers)
    return differ(why, whysize, "%zu servers vs %zu (duplicate ids)",
                  a->nservers, b->nservers);
  if (a->nmsgs != b->nmsgs)
    return differ(why, whysize, "%zu recorded messages vs %zu", a->nmsgs,
                  b->nmsgs);
  if (a->nmsgs == 0)
    return 1;
  ka = msgs_by_dst(a);
  kb = msgs_by_dst(b);
  if (ka == NULL || kb == NULL) {
    free(ka);
    free(kb);
    return msgs_equal_slow(a, b, why, whysize);
  }
  eq = msgs_equal(ka, kb, a->nmsgs, why, whysize);
  free(ka);
  free(kb);
  return eq;
}

/* FNV-1a, 64 bits, over n bytes, continuing from h. */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  size_t i;
  for (i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

/* See scenario.h. Servers and links are stored sorted, so equal topologies
 * hash equal whatever order their files list them in. */
uint64_t cl_topology_hash(const cl_topology_t *t) {
  uint64_t h = 0xcbf29ce484222325ULL;
  size_t i;
  for (i = 0; i < t->nservers; i++) {
    int64_t tok = t->servers[i].tokens;
    h = fnv1a(h, t->servers[i].id, strlen(t->servers[i].id) + 1);
    h = fnv1a(h, &tok, sizeof tok);
  }
  for (i = 0; i < t->nlinks; i++) {
    uint32_t e[2] = {t->links[i].src, t->links[i].dst};
    h = fnv1a(h, e, sizeof e);
  }
  return h ? h : 1;
}

/* See scenario.h: a breadth-first walk over the sorted links. */
size_t cl_topology_unreachable(const cl_topology_t *t, uint32_t from,
                               uint32_t *out) {
  size_t ns = t->nservers, head = 0, tail = 0, i, n = 0;
  uint8_t *seen = calloc(ns ? ns : 1, 1);
  uint32_t *queue = calloc(ns ? ns : 1, sizeof *queue);
  size_t *first = calloc(ns + 1, sizeof *first); /* s's links: [first[s],
                                                     first[s + 1]) */
  if (seen == NULL || queue == NULL || first == NULL || from >= ns) {
    free(seen);
    free(queue);
    free(first);
    return 0;
  }
  for (i = 0; i < t->nlinks; i++)
    first[t->links[i].src + 1]++;
  for (i = 0; i < ns; i++)
    first[i + 1] += first[i];
  seen[from] = 1;
  queue[tail++] = from;
  while (head < tail) {
    uint32_t src = queue[head++];
    for (i = first[src]; i < first[src + 1]; i++) {
      uint32_t d = t->links[i].dst;
      if (!seen[d]) {
        seen[d] = 1;
        queue[tail++] = d;
      }
    }
  }
  for (i = 0; i < ns; i++)
    if (!seen[i])
      out[n++] = (uint32_t)i;
  free(seen);
  free(queue);
  free(first);
  return n;
}
