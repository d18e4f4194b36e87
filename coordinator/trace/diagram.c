/* The space-time diagram, the step-through page and the ShiViz log
 * (diagram.h). Layout: x is Lamport time, one lane per drawn server. */
#include "diagram.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"

/* Geometry, px. */
#define DX 46       /* per Lamport step */
#define DY 74       /* per lane */
#define LEFT 70     /* lane names */
#define TOP 34
#define TAIL 70     /* right of the last step: where in-flight messages end */
#define LEGEND 96

/* Snapshot colours, by the snapshot's rank in tf->snaps. */
static const char *const palette[] = {"#d62728", "#1f77b4", "#2ca02c",
                                      "#9467bd", "#ff7f0e", "#8c564b",
                                      "#e377c2", "#17becf", "#bcbd22",
                                      "#7f7f7f"};
#define NPALETTE (sizeof palette / sizeof palette[0])

typedef struct layout {
  const cl_tf_t *tf;
  const cl_diagram_opts_t *o;
  uint64_t from, to;  /* window */
  int *lane;          /* [nservers]: lane, or -1 (not drawn) */
  int nlanes;
  int width, height;
  cl_tf_snap_t *sn;   /* [nsnaps] */
  uint8_t *drawn;     /* [nsnaps] */
} layout_t;

static const char *colour(size_t rank) { return palette[rank % NPALETTE]; }

/* The rank of snapshot id in tf->snaps, or nsnaps. */
static size_t snap_rank(const cl_tf_t *tf, uint64_t id) {
  size_t lo = 0, hi = tf->nsnaps;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (tf->snaps[mid] < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < tf->nsnaps && tf->snaps[lo] == id ? lo : tf->nsnaps;
}

static int x_of(const layout_t *L, uint64_t lamport) {
  if (lamport < L->from)
    return LEFT;
  if (lamport > L->to)
    return L->width - TAIL + 20;
  return LEFT + (int)(lamport - L->from + 1) * DX;
}

static int y_of(const layout_t *L, uint32_t server) {
  return TOP + L->lane[server] * DY;
}

static int in_window(const layout_t *L, uint64_t lamport) {
  return lamport >= L->from && lamport <= L->to;
}

static void layout_free(layout_t *L) {
  size_t k;
  if (L->sn != NULL)
    for (k = 0; k < L->tf->nsnaps; k++)
      cl_tf_snap_free(&L->sn[k]);
  free(L->sn);
  free(L->lane);
  free(L->drawn);
}

static int layout(const cl_tf_t *tf, const cl_diagram_opts_t *o,
                  layout_t *L) {
  size_t k;
  memset(L, 0, sizeof *L);
  L->tf = tf;
  L->o = o;
  L->from = o->from ? o->from : 1;
  L->to = o->to && o->to < tf->max_lamport ? o->to : tf->max_lamport;
  if (L->to < L->from)
    L->to = L->from;
  if (L->to - L->from >= CL_DIAGRAM_MAX_STEPS)
    return CL_ERANGE;
  L->lane = malloc((tf->nservers ? tf->nservers : 1) * sizeof *L->lane);
  L->sn = calloc(tf->nsnaps ? tf->nsnaps : 1, sizeof *L->sn);
  L->drawn = calloc(tf->nsnaps ? tf->nsnaps : 1, 1);
  if (L->lane == NULL || L->sn == NULL || L->drawn == NULL)
    goto fail;
  for (k = 0; k < tf->nservers; k++)
    L->lane[k] = o->servers == NULL || o->servers[k] ? L->nlanes++ : -1;
  for (k = 0; k < tf->nsnaps; k++) {
    if (cl_tf_snap(tf, tf->snaps[k], &L->sn[k]) < 0)
      goto fail;
    L->drawn[k] = o->snaps == NULL || o->snaps[k];
  }
  L->width = LEFT + (int)(L->to - L->from + 1) * DX + TAIL;
  if (L->width < 520)
    L->width = 520;
  L->height = TOP + (L->nlanes ? L->nlanes - 1 : 0) * DY + 40 + LEGEND;
  return 0;
fail:
  layout_free(L);
  return -1;
}

/* ---- SVG ------------------------------------------------------------ */

/* Message m's line, clipped to the window: from its send to its receive.
 * An end outside the trace is at an edge: sent before the trace or
 * received before the receiver's began, the left; sent after the
 * sender's trace ended or not received, the right. 0 if nothing of it is
 * in the window or a lane. */
static int endpoints(const layout_t *L, const cl_tf_msg_t *m, int *x1,
                     int *y1, int *x2, int *y2) {
  const cl_tf_t *tf = L->tf;
  int left = LEFT - 20, right = L->width - TAIL + 40;
  uint64_t la, lb;
  if (L->lane[m->src] < 0 || L->lane[m->dst] < 0)
    return 0;
  la = m->send != CL_TF_NONE ? tf->ev[m->send].lamport
       : m->outside == CL_TF_SENT_AFTER ? UINT64_MAX : 0;
  lb = m->recv != CL_TF_NONE ? tf->ev[m->recv].lamport
       : m->outside == CL_TF_RECV_BEFORE ? 0 : UINT64_MAX;
  if ((la > L->to && la != UINT64_MAX) || (lb < L->from && lb != 0))
    return 0;
  *x1 = la == 0 ? left : la == UINT64_MAX ? right : x_of(L, la);
  *x2 = lb == 0 ? left + 10 : lb == UINT64_MAX ? right : x_of(L, lb);
  *y1 = y_of(L, m->src);
  *y2 = y_of(L, m->dst);
  return 1;
}

/* How a message's line ends, for titles and labels. */
static const char *ends(const cl_tf_msg_t *m) {
  switch (m->outside) {
  case CL_TF_SENT_BEFORE:
    return ", sent before the trace began";
  case CL_TF_SENT_AFTER:
    return ", sent after the sender's trace ended";
  case CL_TF_RECV_BEFORE:
    return ", received before the receiver's trace began";
  }
  return m->recv == CL_TF_NONE ? ", in flight at the end" : "";
}

/* The message's title: what it is, then per drawn snapshot why it was or
 * was not recorded. Into buf; returns the ids that recorded it, as text
 * ("0 3"), in rec. */
static void msg_title(const layout_t *L, const cl_tf_msg_t *m, char *buf,
                      size_t size, char *rec, size_t recsize) {
  const cl_tf_t *tf = L->tf;
  size_t len, k, rl = 0;
  len = (size_t)snprintf(buf, size, "%s -> %s #%" PRIu64 ", %" PRId64
                         " token%s%s", tf->servers[m->src],
                         tf->servers[m->dst], m->seq, m->n,
                         m->n == 1 ? "" : "s", ends(m));
  rec[0] = '\0';
  for (k = 0; k < tf->nsnaps; k++) {
    char why[512];
    int r;
    if (!L->drawn[k])
      continue;
    r = cl_tf_why(tf, &L->sn[k], m, why, sizeof why);
    if (len < size)
      len += (size_t)snprintf(buf + len, size - len, "\nsnapshot %" PRIu64
                              ": %s: %s", tf->snaps[k],
                              r ? "recorded" : "not recorded", why);
    if (r && rl + 24 < recsize)
      rl += (size_t)snprintf(rec + rl, recsize - rl, "%s%" PRIu64,
                             rl ? " " : "", tf->snaps[k]);
  }
}

static void svg_defs(const layout_t *L, FILE *f) {
  size_t k;
  fputs("<defs>\n", f);
  fputs("<marker id=\"ah\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" "
        "markerUnits=\"userSpaceOnUse\" markerWidth=\"9\" "
        "markerHeight=\"9\" orient=\"auto\">"
        "<path d=\"M0,0 L10,5 L0,10 z\" fill=\"#333\"/></marker>\n", f);
  for (k = 0; k < L->tf->nsnaps && k < NPALETTE; k++)
    fprintf(f, "<marker id=\"ah%zu\" viewBox=\"0 0 10 10\" refX=\"9\" "
            "refY=\"5\" markerUnits=\"userSpaceOnUse\" markerWidth=\"9\" "
            "markerHeight=\"9\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"%s\"/>"
            "</marker>\n", k, colour(k));
  fputs("</defs>\n", f);
}

static void svg_lanes(const layout_t *L, FILE *f) {
  size_t k;
  for (k = 0; k < L->tf->nservers; k++) {
    int y;
    if (L->lane[k] < 0)
      continue;
    y = y_of(L, (uint32_t)k);
    fprintf(f, "<line class=\"lane\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
            "stroke=\"#888\"/>\n<text class=\"server\" x=\"%d\" y=\"%d\" "
            "font-weight=\"bold\" font-size=\"13\">%s</text>\n",
            LEFT, y, L->width - 20, y, 10, y + 4, L->tf->servers[k]);
  }
}

static void svg_messages(const layout_t *L, FILE *f) {
  const cl_tf_t *tf = L->tf;
  char title[4096], rec[256];
  size_t k;
  for (k = 0; k < tf->nmsgs; k++) {
    const cl_tf_msg_t *m = &tf->msgs[k];
    const char *src = tf->servers[m->src], *dst = tf->servers[m->dst];
    int x1, y1, x2, y2;
    if (!endpoints(L, m, &x1, &y1, &x2, &y2))
      continue;
    if (m->marker) {
      size_t r = snap_rank(tf, m->snap);
      if (r >= tf->nsnaps || !L->drawn[r])
        continue;
      fprintf(f, "<g class=\"msg marker\" data-src=\"%s\" data-dst=\"%s\" "
              "data-seq=\"%" PRIu64 "\" data-snap=\"%" PRIu64 "\"><title>"
              "marker of snapshot %" PRIu64 ", %s -> %s, after %" PRIu64
              " token message%s%s</title><line x1=\"%d\" y1=\"%d\" "
              "x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"1.2\" "
              "stroke-dasharray=\"5 3\" marker-end=\"url(#ah%zu)\"/></g>\n",
              src, dst, m->seq, m->snap, m->snap, src, dst, m->seq,
              m->seq == 1 ? "" : "s", ends(m), x1, y1, x2, y2, colour(r),
              r % NPALETTE);
      continue;
    }
    msg_title(L, m, title, sizeof title, rec, sizeof rec);
    if (rec[0]) {
      size_t r = snap_rank(tf, strtoull(rec, NULL, 10));
      fprintf(f, "<g class=\"msg token recorded\" data-src=\"%s\" "
              "data-dst=\"%s\" data-seq=\"%" PRIu64 "\" data-snap=\"%s\">"
              "<title>%s</title><line x1=\"%d\" y1=\"%d\" x2=\"%d\" "
              "y2=\"%d\" stroke=\"%s\" stroke-width=\"3.5\" "
              "marker-end=\"url(#ah%zu)\"/></g>\n",
              src, dst, m->seq, rec, title, x1, y1, x2, y2, colour(r),
              r % NPALETTE);
    } else {
      fprintf(f, "<g class=\"msg token\" data-src=\"%s\" data-dst=\"%s\" "
              "data-seq=\"%" PRIu64 "\"><title>%s</title><line x1=\"%d\" "
              "y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\" "
              "stroke-width=\"1.4\"%s marker-end=\"url(#ah)\"/></g>\n",
              src, dst, m->seq, title, x1, y1, x2, y2,
              m->send == CL_TF_NONE || m->recv == CL_TF_NONE
                  ? " stroke-dasharray=\"2 3\"" : "");
    }
    /* The label a third of the way along: messages from one point fan
     * out there, so their labels overlap less than at the middle. */
    fprintf(f, "<text class=\"label\" x=\"%d\" y=\"%d\" text-anchor=\"middle\" "
            "fill=\"#222\" stroke=\"#fff\" stroke-width=\"3\" "
            "paint-order=\"stroke\">%" PRId64 " #%" PRIu64 "%s</text>\n",
            x1 + (x2 - x1) / 3 + 6, y1 + (y2 - y1) / 3 - 3, m->n, m->seq,
            m->recv == CL_TF_NONE && m->outside == CL_TF_INSIDE
                ? " (in flight)" : "");
  }
}

static void svg_cuts(const layout_t *L, FILE *f) {
  const cl_tf_t *tf = L->tf;
  size_t k, s;
  for (k = 0; k < tf->nsnaps; k++) {
    int first = 1, lx = 0, ly = 0, any = 0;
    if (!L->drawn[k])
      continue;
    for (s = 0; s < tf->nservers; s++)
      if (L->lane[s] >= 0 && L->sn[k].record[s] != CL_TF_NONE)
        any = 1;
    if (!any)
      continue;
    fprintf(f, "<polyline class=\"cut\" data-snap=\"%" PRIu64 "\" points=\"",
            tf->snaps[k]);
    for (s = 0; s < tf->nservers; s++) {
      size_t r = L->sn[k].record[s];
      int x, y;
      if (L->lane[s] < 0 || r == CL_TF_NONE)
        continue;
      x = x_of(L, tf->ev[r].lamport) + 5;
      y = y_of(L, (uint32_t)s);
      if (first)
        fprintf(f, "%d,%d ", x, y - 22);
      fprintf(f, "%d,%d ", x, y);
      first = 0;
      lx = x;
      ly = y;
    }
    fprintf(f, "%d,%d\" fill=\"none\" stroke=\"%s\" stroke-width=\"5\" "
            "stroke-opacity=\"0.4\" stroke-linejoin=\"round\"/>\n", lx, ly + 22, colour(k));
    fprintf(f, "<text class=\"snaplabel\" x=\"%d\" y=\"%d\" fill=\"%s\" "
            "font-weight=\"bold\">S%" PRIu64 "</text>\n", lx + 4, ly + 34,
            colour(k), tf->snaps[k]);
  }
}

static void svg_events(const layout_t *L, FILE *f) {
  const cl_tf_t *tf = L->tf;
  size_t k;
  for (k = 0; k < tf->nev; k++) {
    const cl_tf_event_t *e = &tf->ev[k];
    int x, y;
    if (L->lane[e->server] < 0 || !in_window(L, e->lamport))
      continue;
    x = x_of(L, e->lamport);
    y = y_of(L, e->server);
    if (e->ev == CL_TEV_RECORD) {
      size_t r = snap_rank(tf, e->snap);
      fprintf(f, "<rect class=\"rec-ev\" id=\"e%zu\" x=\"%d\" y=\"%d\" "
              "width=\"10\" height=\"10\" fill=\"%s\"><title>%s records "
              "its state for snapshot %" PRIu64 ": %" PRId64 " tokens"
              "</title></rect>\n", k, x - 5, y - 5,
              r < tf->nsnaps && L->drawn[r] ? colour(r) : "#999",
              tf->servers[e->server], e->snap, e->tokens);
    } else {
      fprintf(f, "<circle class=\"ev\" id=\"e%zu\" cx=\"%d\" cy=\"%d\" "
              "r=\"3\" fill=\"%s\" stroke=\"#222\"/>\n", k, x, y,
              e->ev == CL_TEV_DONE ? "#fff" : "#222");
    }
  }
}

static void svg_legend(const layout_t *L, FILE *f) {
  const cl_tf_t *tf = L->tf;
  int y = L->height - LEGEND + 24, x = LEFT;
  size_t k;
  fprintf(f, "<g class=\"legend\" font-size=\"11\">\n");
  fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\" "
          "stroke-width=\"1.4\" marker-end=\"url(#ah)\"/><text x=\"%d\" "
          "y=\"%d\">token message: n #seq</text>\n", x, y, x + 36, y,
          x + 44, y + 4);
  fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\" "
          "stroke-dasharray=\"2 3\"/><text x=\"%d\" y=\"%d\">in flight at "
          "the end</text>\n", x + 200, y, x + 236, y, x + 244, y + 4);
  fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" "
          "fill=\"#999\"/><text x=\"%d\" y=\"%d\">state recorded</text>\n",
          x + 380, y - 5, x + 396, y + 4);
  y += 22;
  for (k = 0; k < tf->nsnaps && x < L->width - 200; k++) {
    if (!L->drawn[k])
      continue;
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" "
            "stroke-dasharray=\"5 3\"/><line x1=\"%d\" y1=\"%d\" x2=\"%d\" "
            "y2=\"%d\" stroke=\"%s\" stroke-width=\"3.5\"/><line x1=\"%d\" "
            "y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"5\" stroke-opacity=\"0.4\"/>"
            "<text x=\"%d\" y=\"%d\">snapshot %" PRIu64 ": marker, recorded "
            "in flight, cut</text>\n", x, y, x + 20, y, colour(k), x + 24, y,
            x + 44, y, colour(k), x + 52, y - 8, x + 52, y + 8, colour(k),
            x + 60, y + 4, tf->snaps[k]);
    y += 18;
    if (y > L->height - 8) {
      y = L->height - LEGEND + 46;
      x += 330;
    }
  }
  fputs("</g>\n", f);
}

static void svg_write(const layout_t *L, FILE *f) {
  fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
          "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" "
          "font-size=\"11\">\n", L->width, L->height, L->width, L->height);
  fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" "
          "fill=\"#fff\"/>\n", L->width, L->height);
  svg_defs(L, f);
  svg_lanes(L, f);
  svg_cuts(L, f);
  svg_messages(L, f);
  svg_events(L, f);
  svg_legend(L, f);
  fprintf(f, "<circle id=\"cursor\" cx=\"-20\" cy=\"-20\" r=\"9\" "
          "fill=\"none\" stroke=\"#000\" stroke-width=\"2\"/>\n</svg>\n");
}

int cl_diagram_svg(const cl_tf_t *tf, const cl_diagram_opts_t *o, FILE *f) {
  layout_t L;
  int rc = layout(tf, o, &L);
  if (rc < 0)
    return rc == CL_ERANGE ? rc : -1;
  fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
  svg_write(&L, f);
  layout_free(&L);
  return ferror(f) ? -1 : 0;
}

/* ---- step order ---------------------------------------------------------- */

static const cl_tf_t *sort_tf; /* qsort has no context argument */

static int step_cmp(const void *a, const void *b) {
  const cl_tf_event_t *x = &sort_tf->ev[*(const size_t *)a];
  const cl_tf_event_t *y = &sort_tf->ev[*(const size_t *)b];
  if (x->lamport != y->lamport)
    return x->lamport < y->lamport ? -1 : 1;
  if (x->server != y->server)
    return x->server < y->server ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}

size_t *cl_diagram_order(const cl_tf_t *tf) {
  size_t *order = malloc((tf->nev ? tf->nev : 1) * sizeof *order), k;
  if (order == NULL)
    return NULL;
  for (k = 0; k < tf->nev; k++)
    order[k] = k;
  sort_tf = tf;
  qsort(order, tf->nev, sizeof *order, step_cmp);
  sort_tf = NULL;
  return order;
}

/* ---- the page ------------------------------------------------------------- */

extern const char cl_page_js[];

/* The data the page's script reads: servers, their first tokens,
 * channels, snapshots, and the events in step order. */
static void page_data(const cl_tf_t *tf, const size_t *order, FILE *f) {
  size_t k, j;
  fputs("{\"servers\":[", f);
  for (k = 0; k < tf->nservers; k++)
    fprintf(f, "%s\"%s\"", k ? "," : "", tf->servers[k]);
  fputs("],\"tokens\":[", f);
  for (k = 0; k < tf->nservers; k++)
    fprintf(f, "%s%" PRId64, k ? "," : "", cl_tf_initial_tokens(tf, k));
  fputs("],\"snaps\":[", f);
  for (k = 0; k < tf->nsnaps; k++)
    fprintf(f, "%s%" PRIu64, k ? "," : "", tf->snaps[k]);
  fputs("],\"colours\":[", f);
  for (k = 0; k < tf->nsnaps; k++)
    fprintf(f, "%s\"%s\"", k ? "," : "", colour(k));
  /* Token messages in flight when the trace began (received in it, sent
   * before the sender's trace): [src, dst, seq, n]. */
  fputs("],\"before\":[", f);
  for (k = 0, j = 0; k < tf->nmsgs; k++) {
    const cl_tf_msg_t *m = &tf->msgs[k];
    if (m->marker || m->outside != CL_TF_SENT_BEFORE)
      continue;
    fprintf(f, "%s[%" PRIu32 ",%" PRIu32 ",%" PRIu64 ",%" PRId64 "]",
            j++ ? "," : "", m->src, m->dst, m->seq, m->n);
  }
  /* Token messages sent in the trace but received before the receiver's
   * trace began: never in flight on the page. [src, dst, seq]. */
  fputs("],\"early\":[", f);
  for (k = 0, j = 0; k < tf->nmsgs; k++) {
    const cl_tf_msg_t *m = &tf->msgs[k];
    if (m->marker || m->outside != CL_TF_RECV_BEFORE)
      continue;
    fprintf(f, "%s[%" PRIu32 ",%" PRIu32 ",%" PRIu64 "]", j++ ? "," : "",
            m->src, m->dst, m->seq);
  }
  /* Each step: [event id, server, ev, peer (-1), seq, n, snap, tokens,
   * recorded] */
  fputs("],\"steps\":[\n", f);
  for (k = 0; k < tf->nev; k++) {
    const cl_tf_event_t *e = &tf->ev[order[k]];
    fprintf(f, "%s[%zu,%" PRIu32 ",\"%s\",%ld,%" PRIu64 ",%" PRId64 ",%" PRIu64
            ",%" PRId64 ",[", k ? ",\n" : "", order[k], e->server,
            cl_tf_ev_name(e->ev), e->peer == UINT32_MAX ? -1L : (long)e->peer,
            e->seq, e->n, e->snap, e->tokens);
    for (j = 0; j < e->nrec; j++)
      fprintf(f, "%s%" PRIu64, j ? "," : "", e->rec[j]);
    fputs("]]", f);
  }
  fputs("]}", f);
}

/* text with &, <, > and " escaped into buf (cut short if it must be). */
static void html_escape(const char *text, char *buf, size_t size) {
  size_t n = 0;
  for (; *text && n + 7 < size; text++) {
    const char *r = *text == '&' ? "&amp;" : *text == '<' ? "&lt;"
                    : *text == '>' ? "&gt;" : *text == '"' ? "&quot;" : NULL;
    if (r != NULL) {
      memcpy(buf + n, r, strlen(r));
      n += strlen(r);
    } else {
      buf[n++] = *text;
    }
  }
  buf[n] = '\0';
}

int cl_diagram_html(const cl_tf_t *tf, const cl_diagram_opts_t *o, FILE *f) {
  char title[1024];
  layout_t L;
  size_t *order = cl_diagram_order(tf);
  int rc = order == NULL ? -1 : layout(tf, o, &L);
  if (rc < 0) {
    free(order);
    return rc == CL_ERANGE ? rc : -1;
  }
  html_escape(o->title ? o->title : "clsnap trace", title, sizeof title);
  fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta "
          "charset=\"utf-8\">\n<title>%s</title>\n<style>\n"
          "body{font-family:sans-serif;margin:16px;color:#222}\n"
          "h1{font-size:18px;margin:0 0 8px}\n"
          "#wrap{overflow-x:auto;border:1px solid #ddd}\n"
          "#bar{margin:10px 0;display:flex;gap:8px;align-items:center}\n"
          "#slider{flex:1}\n#step{font-weight:bold}\n"
          "#state{background:#f6f6f6;padding:8px;margin:0;"
          "white-space:pre-wrap}\n"
          ".hint{color:#666;font-size:12px}\n</style>\n</head>\n<body>\n"
          "<h1>%s</h1>\n<p class=\"hint\">Time runs left to right in "
          "logical steps. Hover a message to see why each snapshot did or "
          "did not record it; step through the run with the buttons, the "
          "slider or the arrow keys.</p>\n<div id=\"wrap\">\n",
          title, title);
  svg_write(&L, f);
  fprintf(f, "</div>\n<div id=\"bar\"><button id=\"prev\" "
          "type=\"button\">&#9664; previous</button><input id=\"slider\" "
          "type=\"range\" min=\"0\" max=\"%zu\" value=\"0\"><button "
          "id=\"next\" type=\"button\">next &#9654;</button></div>\n"
          "<div id=\"step\"></div>\n<pre id=\"state\"></pre>\n"
          "<script type=\"application/json\" id=\"trace-data\">", tf->nev);
  page_data(tf, order, f);
  fprintf(f, "</script>\n<script>\n%s</script>\n</body>\n</html>\n",
          cl_page_js);
  layout_free(&L);
  free(order);
  return ferror(f) ? -1 : 0;
}

/* ---- ShiViz ---------------------------------------------------------------- */

/* One line describing event e, for ShiViz. */
static void shiviz_text(const cl_tf_t *tf, const cl_tf_event_t *e, FILE *f) {
  const char *peer = e->peer == UINT32_MAX ? "" : tf->servers[e->peer];
  switch (e->ev) {
  case CL_TEV_SEND:
    fprintf(f, "send %" PRId64 " token%s to %s (#%" PRIu64 ")", e->n,
            e->n == 1 ? "" : "s", peer, e->seq);
    break;
  case CL_TEV_RECV:
    fprintf(f, "receive %" PRId64 " token%s from %s (#%" PRIu64 ")", e->n,
            e->n == 1 ? "" : "s", peer, e->seq);
    if (e->nrec > 0) {
      uint32_t j;
      fputs(", recorded by snapshot", f);
      for (j = 0; j < e->nrec; j++)
        fprintf(f, "%s %" PRIu64, j ? "," : "", e->rec[j]);
    }
    break;
  case CL_TEV_MARKER_SEND:
    fprintf(f, "marker snapshot %" PRIu64 " to %s", e->snap, peer);
    break;
  case CL_TEV_MARKER_RECV:
    fprintf(f, "marker snapshot %" PRIu64 " from %s", e->snap, peer);
    break;
  case CL_TEV_RECORD:
    fprintf(f, "record snapshot %" PRIu64 " (tokens %" PRId64 ")", e->snap,
            e->tokens);
    break;
  case CL_TEV_DONE:
    fprintf(f, "snapshot %" PRIu64 " done", e->snap);
    break;
  default:
    fputs("?", f);
  }
}

int cl_diagram_shiviz(const cl_tf_t *tf, FILE *f) {
  /* One clock per server, and a copy of the clock of each send until its
   * receive takes it: memory for the messages in flight, not for every
   * event. Step order puts a receive after its send. */
  size_t n = tf->nservers, k, s, *order = cl_diagram_order(tf);
  uint64_t *now = calloc((n ? n : 1) * (n ? n : 1), sizeof *now);
  uint64_t **sent = calloc(tf->nev ? tf->nev : 1, sizeof *sent);
  int rc = 0;
  if (order == NULL || now == NULL || sent == NULL)
    rc = -1;
  for (k = 0; rc == 0 && k < tf->nev; k++) {
    size_t at = order[k];
    const cl_tf_event_t *e = &tf->ev[at];
    uint64_t *c = &now[(size_t)e->server * n];
    int first = 1;
    if ((e->ev == CL_TEV_RECV || e->ev == CL_TEV_MARKER_RECV) &&
        e->match != CL_TF_NONE && sent[e->match] != NULL) {
      for (s = 0; s < n; s++)
        if (sent[e->match][s] > c[s])
          c[s] = sent[e->match][s];
      free(sent[e->match]);
      sent[e->match] = NULL;
    }
    c[e->server]++;
    if ((e->ev == CL_TEV_SEND || e->ev == CL_TEV_MARKER_SEND) &&
        e->match != CL_TF_NONE) {
      if ((sent[at] = malloc(n * sizeof *c)) == NULL) {
        rc = -1;
        break;
      }
      memcpy(sent[at], c, n * sizeof *c);
    }
    shiviz_text(tf, e, f);
    fprintf(f, "\n%s {", tf->servers[e->server]);
    for (s = 0; s < n; s++)
      if (c[s] > 0) {
        fprintf(f, "%s\"%s\": %" PRIu64, first ? "" : ", ", tf->servers[s],
                c[s]);
        first = 0;
      }
    fputs("}\n", f);
  }
  for (k = 0; sent != NULL && k < tf->nev; k++)
    free(sent[k]);
  free(sent);
  free(order);
  free(now);
  return rc == 0 && !ferror(f) ? 0 : -1;
}
