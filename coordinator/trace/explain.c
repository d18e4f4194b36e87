/* One snapshot of a trace in plain words (explain.h). The reasons are
 * cl_tf_why's, the same words the diagram's titles use. */
#include "explain.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* At most this many messages not recorded are named per channel: those
 * nearest the cut. */
#define NEARBY 2

/* The server that started snap: one whose record no marker_recv of snap
 * came before. UINT32_MAX if none is seen. */
static uint32_t initiator(const cl_tf_t *tf, const cl_tf_snap_t *sn) {
  size_t s;
  for (s = 0; s < tf->nservers; s++) {
    size_t r = sn->record[s];
    if (r != CL_TF_NONE &&
        (r == tf->first[s] || tf->ev[r - 1].ev != CL_TEV_MARKER_RECV ||
         tf->ev[r - 1].snap != sn->id))
      return (uint32_t)s;
  }
  return UINT32_MAX;
}

/* The marker_send of snap on src -> dst, or NONE. */
static size_t marker_send(const cl_tf_t *tf, uint32_t src, uint32_t dst,
                          uint64_t snap) {
  size_t k;
  for (k = tf->first[src]; k < tf->first[src + 1]; k++) {
    const cl_tf_event_t *e = &tf->ev[k];
    if (e->ev == CL_TEV_MARKER_SEND && e->peer == dst && e->snap == snap)
      return k;
  }
  return CL_TF_NONE;
}

/* Tell one channel src -> dst. Adds to *msgs and *tokens what it
 * recorded; returns the number of disagreements found. */
static int channel(const cl_tf_t *tf, const cl_tf_snap_t *sn, uint32_t src,
                   uint32_t dst, FILE *f, uint64_t *msgs, int64_t *tokens) {
  size_t k, ms = marker_send(tf, src, dst, sn->id);
  size_t mr = cl_tf_marker_recv(tf, src, dst, sn->id);
  size_t rq = sn->record[dst], rp = sn->record[src];
  size_t last_before = CL_TF_NONE, first_after = CL_TF_NONE, nrec = 0;
  int bad = 0;
  char why[512];
  fprintf(f, "\nchannel %s -> %s: ", tf->servers[src], tf->servers[dst]);
  if (ms == CL_TF_NONE)
    fprintf(f, "no marker sent");
  else
    fprintf(f, "marker sent by %s after %" PRIu64 " token message%s "
            "(event %" PRIu64 ")", tf->servers[src], tf->ev[ms].seq,
            tf->ev[ms].seq == 1 ? "" : "s", tf->ev[ms].i);
  if (mr != CL_TF_NONE)
    fprintf(f, ", received by %s (event %" PRIu64 ")\n", tf->servers[dst],
            tf->ev[mr].i);
  else
    fprintf(f, ", not received by the end of the trace\n");
  /* Every token message of the channel, in order: the recorded ones are
   * named; of the others, the last received before dst recorded and the
   * first sent after src recorded. */
  for (k = tf->first[src]; k < tf->first[src + 1]; k++) {
    const cl_tf_event_t *e = &tf->ev[k];
    int r, listed;
    if (e->ev != CL_TEV_SEND || e->peer != dst)
      continue;
    r = cl_tf_why(tf, sn, k, why, sizeof why);
    listed = e->match != CL_TF_NONE && cl_tf_listed(&tf->ev[e->match], sn->id);
    if (r != listed) {
      fprintf(f, "  DISAGREES #%" PRIu64 ": by the rules it was %srecorded "
              "(%s), but %s's trace says it was%s (a bug in clsnap)\n",
              e->seq, r ? "" : "not ", why, tf->servers[dst],
              listed ? "" : " not");
      bad++;
    }
    if (r) {
      fprintf(f, "  recorded #%" PRIu64 ", %" PRId64 " token%s: %s\n",
              e->seq, e->n, e->n == 1 ? "" : "s", why);
      nrec++;
      (*msgs)++;
      *tokens += e->n;
    } else if (rp != CL_TF_NONE && e->i > tf->ev[rp].i) {
      if (first_after == CL_TF_NONE)
        first_after = k;
    } else if (rq != CL_TF_NONE && e->match != CL_TF_NONE &&
               tf->ev[e->match].i < tf->ev[rq].i) {
      last_before = k;
    }
  }
  if (nrec == 0)
    fprintf(f, "  nothing recorded: the channel was empty at the cut\n");
  for (k = 0; k < NEARBY; k++) {
    size_t at = k == 0 ? last_before : first_after;
    const cl_tf_event_t *e;
    if (at == CL_TF_NONE)
      continue;
    e = &tf->ev[at];
    (void)cl_tf_why(tf, sn, at, why, sizeof why);
    fprintf(f, "  not recorded #%" PRIu64 ", %" PRId64 " token%s: %s\n",
            e->seq, e->n, e->n == 1 ? "" : "s", why);
  }
  return bad;
}

int cl_explain(const cl_tf_t *tf, uint64_t snap, FILE *f) {
  cl_tf_snap_t sn;
  uint32_t s, d, who;
  size_t k, nrec = 0, ndone = 0;
  uint8_t *chan;
  uint64_t msgs = 0;
  int64_t held = 0, flight = 0, start = 0;
  int bad = 0;
  for (k = 0; k < tf->nsnaps && tf->snaps[k] != snap; k++)
    ;
  if (k == tf->nsnaps)
    return CL_ENOENT;
  if (cl_tf_snap(tf, snap, &sn) < 0)
    return CL_ENOMEM;
  /* The channels: every pair a message or a marker went over. */
  chan = calloc(tf->nservers * tf->nservers + 1, 1);
  if (chan == NULL) {
    cl_tf_snap_free(&sn);
    return CL_ENOMEM;
  }
  for (k = 0; k < tf->nev; k++)
    if (tf->ev[k].ev == CL_TEV_SEND || tf->ev[k].ev == CL_TEV_MARKER_SEND)
      chan[tf->ev[k].server * tf->nservers + tf->ev[k].peer] = 1;
  who = initiator(tf, &sn);
  fprintf(f, "snapshot %" PRIu64 ", started by %s\n", snap,
          who == UINT32_MAX ? "(no server recorded it)" : tf->servers[who]);
  for (s = 0; s < tf->nservers; s++) {
    size_t r = sn.record[s];
    start += cl_tf_initial_tokens(tf, s);
    if (r == CL_TF_NONE) {
      fprintf(f, "  %s: never recorded its state\n", tf->servers[s]);
      continue;
    }
    nrec++;
    held += tf->ev[r].tokens;
    if (sn.done[s] != CL_TF_NONE)
      ndone++;
    fprintf(f, "  %s: recorded %" PRId64 " token%s at its event %" PRIu64
            " (%s%s)%s\n", tf->servers[s], tf->ev[r].tokens,
            tf->ev[r].tokens == 1 ? "" : "s", tf->ev[r].i,
            s == who ? "it started the snapshot" : "on its first marker, "
            "from ", s == who ? "" : tf->servers[tf->ev[r - 1].peer],
            sn.done[s] != CL_TF_NONE ? "" : "; not complete there");
  }
  for (s = 0; s < tf->nservers; s++)
    for (d = 0; d < tf->nservers; d++)
      if (chan[s * tf->nservers + d])
        bad += channel(tf, &sn, s, d, f, &msgs, &flight);
  fprintf(f, "\nin all: %zu of %zu servers recorded, %zu complete; %" PRId64
          " tokens held + %" PRId64 " in flight (%" PRIu64 " message%s) = %"
          PRId64 "; the servers held %" PRId64 " when the trace began\n",
          nrec, tf->nservers, ndone, held, flight, msgs,
          msgs == 1 ? "" : "s", held + flight, start);
  if (bad)
    fprintf(f, "%d message%s disagree%s with the servers' records: a bug "
            "in clsnap\n", bad, bad == 1 ? "" : "s", bad == 1 ? "s" : "");
  else
    fprintf(f, "the servers' own records agree with these rules\n");
  free(chan);
  cl_tf_snap_free(&sn);
  return bad ? 1 : 0;
}
