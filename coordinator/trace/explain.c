/* One snapshot of a trace in plain words (explain.h). The explanation is
 * built once, as a JSON object (explain --json prints it), and the text is
 * printed from it. The reasons are cl_tf_why's, the same words the
 * diagram's titles use. */
#include "explain.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* At most this many messages not recorded are named per channel: the last
 * one received before the receiver recorded, and the first one sent after
 * the sender recorded (those nearest the cut). */
#define NEARBY 2

/* The server whose first marker of snap made it record (its previous
 * event, on the same server, is that marker's receive), or UINT32_MAX:
 * it started the snapshot (or its trace began with the record). */
static uint32_t marker_from(const cl_tf_t *tf, const cl_tf_snap_t *sn,
                            uint32_t s) {
  size_t r = sn->record[s];
  if (r == CL_TF_NONE || r == tf->first[s] ||
      tf->ev[r - 1].ev != CL_TEV_MARKER_RECV || tf->ev[r - 1].snap != sn->id)
    return UINT32_MAX;
  return tf->ev[r - 1].peer;
}

/* The first of the token messages of channel src -> dst in tf->msgs (they
 * are sorted by src, dst, seq), or nmsgs. */
static size_t channel_start(const cl_tf_t *tf, uint32_t src, uint32_t dst) {
  size_t lo = 0, hi = tf->nmsgs;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const cl_tf_msg_t *m = &tf->msgs[mid];
    if (!m->marker && (m->src < src || (m->src == src && m->dst < dst)))
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* a + b, held at INT64_MAX (a trace file's sums could overflow). */
static int64_t sat_add(int64_t a, int64_t b) {
  return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static int u64_cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static json_t *message(const cl_tf_msg_t *m, const char *why) {
  return json_pack("{s:I, s:I, s:s}", "seq", (json_int_t)m->seq, "n",
                   (json_int_t)m->n, "why", why);
}

/* One channel src -> dst. Adds what it recorded to *msgs and *tokens and
 * the disagreements to *bad. */
static json_t *channel(const cl_tf_t *tf, const cl_tf_snap_t *sn,
                       uint32_t src, uint32_t dst, uint64_t *msgs,
                       int64_t *tokens, int *bad) {
  const cl_tf_msg_t *mk = cl_tf_marker(tf, src, dst, sn->id);
  size_t k, ms = mk ? mk->send : CL_TF_NONE, mr = mk ? mk->recv : CL_TF_NONE;
  size_t rq = sn->record[dst], rp = sn->record[src];
  const cl_tf_msg_t *nearby[NEARBY] = {NULL, NULL};
  json_t *o = json_object(), *rec = json_array(), *not = json_array(),
         *dis = json_array();
  char why[512];
  json_object_set_new(o, "src", json_string(tf->servers[src]));
  json_object_set_new(o, "dst", json_string(tf->servers[dst]));
  json_object_set_new(
      o, "marker_sent",
      ms == CL_TF_NONE ? json_null()
                       : json_pack("{s:I, s:I}", "event",
                                   (json_int_t)tf->ev[ms].i, "after",
                                   (json_int_t)tf->ev[ms].seq));
  json_object_set_new(o, "marker_received",
                      mr == CL_TF_NONE
                          ? json_null()
                          : json_pack("{s:I}", "event",
                                      (json_int_t)tf->ev[mr].i));
  /* Rule and record must agree where the snapshot completed at dst; where
   * it did not (still recording when the trace ended, or given up: a DROP
   * stops recording and leaves no event), the server may have recorded
   * less, never more. */
  int strict = sn->done[dst] != CL_TF_NONE;
  for (k = channel_start(tf, src, dst); k < tf->nmsgs; k++) {
    const cl_tf_msg_t *e = &tf->msgs[k];
    int r, listed;
    if (e->marker || e->src != src || e->dst != dst)
      break;
    r = cl_tf_why(tf, sn, e, why, sizeof why);
    listed = e->recv != CL_TF_NONE && cl_tf_listed(&tf->ev[e->recv], sn->id);
    if (strict ? r != listed : listed && !r) {
      json_t *d = message(e, why);
      json_object_set_new(d, "rule", json_boolean(r));
      json_object_set_new(d, "server", json_boolean(listed));
      json_array_append_new(dis, d);
      (*bad)++;
    }
    if (r) {
      json_array_append_new(rec, message(e, why));
      (*msgs)++;
      *tokens = sat_add(*tokens, e->n);
    } else if (rp != CL_TF_NONE && e->send != CL_TF_NONE &&
               tf->ev[e->send].i > tf->ev[rp].i) {
      if (nearby[1] == NULL)
        nearby[1] = e;
    } else if (rq != CL_TF_NONE && e->recv != CL_TF_NONE &&
               tf->ev[e->recv].i < tf->ev[rq].i) {
      nearby[0] = e;
    }
  }
  for (k = 0; k < NEARBY; k++)
    if (nearby[k] != NULL) {
      (void)cl_tf_why(tf, sn, nearby[k], why, sizeof why);
      json_array_append_new(not, message(nearby[k], why));
    }
  json_object_set_new(o, "recorded", rec);
  json_object_set_new(o, "not_recorded", not);
  json_object_set_new(o, "disagree", dis);
  return o;
}

int cl_explain_json(const cl_tf_t *tf, uint64_t snap, json_t **out) {
  cl_tf_snap_t sn;
  uint32_t s, who;
  size_t k, nrec = 0, ndone = 0, nchan = 0;
  uint64_t *chan;
  uint64_t msgs = 0;
  int64_t held = 0, flight = 0, start = 0;
  int bad = 0;
  json_t *o, *servers, *channels;
  *out = NULL;
  for (k = 0; k < tf->nsnaps && tf->snaps[k] != snap; k++)
    ;
  if (k == tf->nsnaps)
    return CL_ENOENT;
  if (cl_tf_snap(tf, snap, &sn) < 0)
    return CL_ENOMEM;
  /* The channels: every pair a message or a marker went over, in order. */
  chan = malloc((tf->nmsgs ? tf->nmsgs : 1) * sizeof *chan);
  if (chan == NULL) {
    cl_tf_snap_free(&sn);
    return CL_ENOMEM;
  }
  for (k = 0; k < tf->nmsgs; k++)
    chan[nchan++] = (uint64_t)tf->msgs[k].src << 32 | tf->msgs[k].dst;
  qsort(chan, nchan, sizeof *chan, u64_cmp);
  for (who = 0; who < tf->nservers; who++)
    if (sn.record[who] != CL_TF_NONE && marker_from(tf, &sn, who) == UINT32_MAX)
      break;
  if (who == tf->nservers)
    who = UINT32_MAX;
  o = json_object();
  servers = json_array();
  channels = json_array();
  json_object_set_new(o, "snapshot", json_integer((json_int_t)snap));
  json_object_set_new(o, "initiator", who == UINT32_MAX
                                          ? json_null()
                                          : json_string(tf->servers[who]));
  for (s = 0; s < tf->nservers; s++) {
    size_t r = sn.record[s];
    json_t *x = json_pack("{s:s}", "server", tf->servers[s]);
    start = sat_add(start, cl_tf_initial_tokens(tf, s));
    json_object_set_new(x, "recorded", json_boolean(r != CL_TF_NONE));
    if (r != CL_TF_NONE) {
      nrec++;
      held = sat_add(held, tf->ev[r].tokens);
      ndone += sn.done[s] != CL_TF_NONE;
      json_object_set_new(x, "event", json_integer((json_int_t)tf->ev[r].i));
      json_object_set_new(x, "tokens", json_integer(tf->ev[r].tokens));
      uint32_t from = marker_from(tf, &sn, s);
      json_object_set_new(x, "marker_from",
                          from == UINT32_MAX ? json_null()
                                             : json_string(tf->servers[from]));
      json_object_set_new(x, "complete", json_boolean(sn.done[s] != CL_TF_NONE));
    }
    json_array_append_new(servers, x);
  }
  for (k = 0; k < nchan; k++)
    if (k == 0 || chan[k] != chan[k - 1])
      json_array_append_new(channels,
                            channel(tf, &sn, (uint32_t)(chan[k] >> 32),
                                    (uint32_t)chan[k], &msgs, &flight, &bad));
  json_object_set_new(o, "servers", servers);
  json_object_set_new(o, "channels", channels);
  json_object_set_new(o, "recorded_servers", json_integer((json_int_t)nrec));
  json_object_set_new(o, "complete_servers", json_integer((json_int_t)ndone));
  json_object_set_new(o, "tokens_held", json_integer(held));
  json_object_set_new(o, "tokens_in_flight", json_integer(flight));
  json_object_set_new(o, "messages", json_integer((json_int_t)msgs));
  json_object_set_new(o, "tokens_at_start", json_integer(start));
  json_object_set_new(o, "agree", json_boolean(!bad));
  free(chan);
  cl_tf_snap_free(&sn);
  *out = o;
  return bad ? 1 : 0;
}

static json_int_t num(const json_t *o, const char *key) {
  return json_integer_value(json_object_get(o, key));
}

static const char *str(const json_t *o, const char *key) {
  return json_string_value(json_object_get(o, key));
}

static const char *plural(json_int_t n) { return n == 1 ? "" : "s"; }

/* One message line: "  recorded #1, 3 tokens: why". */
static void message_line(FILE *f, const char *what, const json_t *m) {
  fprintf(f, "  %s #%" JSON_INTEGER_FORMAT ", %" JSON_INTEGER_FORMAT
          " token%s: %s\n", what, num(m, "seq"), num(m, "n"),
          plural(num(m, "n")), str(m, "why"));
}

void cl_explain_print(const json_t *o, FILE *f) {
  const json_t *x, *c, *m;
  size_t k, j, nserv = json_array_size(json_object_get(o, "servers"));
  json_int_t bad = 0;
  fprintf(f, "snapshot %" JSON_INTEGER_FORMAT ", started by %s\n",
          num(o, "snapshot"),
          str(o, "initiator") ? str(o, "initiator") : "(no server recorded it)");
  json_array_foreach(json_object_get(o, "servers"), k, x) {
    if (!json_is_true(json_object_get(x, "recorded"))) {
      fprintf(f, "  %s: did not record its state in the trace\n",
              str(x, "server"));
      continue;
    }
    fprintf(f, "  %s: recorded %" JSON_INTEGER_FORMAT " token%s at its "
            "event %" JSON_INTEGER_FORMAT " (%s%s)%s\n", str(x, "server"),
            num(x, "tokens"), plural(num(x, "tokens")), num(x, "event"),
            str(x, "marker_from") ? "on its first marker, from "
                                  : "it started the snapshot",
            str(x, "marker_from") ? str(x, "marker_from") : "",
            json_is_true(json_object_get(x, "complete"))
                ? "" : "; not complete there");
  }
  json_array_foreach(json_object_get(o, "channels"), k, c) {
    const json_t *sent = json_object_get(c, "marker_sent");
    const json_t *got = json_object_get(c, "marker_received");
    fprintf(f, "\nchannel %s -> %s: ", str(c, "src"), str(c, "dst"));
    if (json_is_null(sent))
      fprintf(f, "no marker sent");
    else
      fprintf(f, "marker sent by %s after %" JSON_INTEGER_FORMAT " token "
              "message%s (event %" JSON_INTEGER_FORMAT ")", str(c, "src"),
              num(sent, "after"), plural(num(sent, "after")),
              num(sent, "event"));
    if (json_is_null(got))
      fprintf(f, ", not received by the end of the trace\n");
    else
      fprintf(f, ", received by %s (event %" JSON_INTEGER_FORMAT ")\n",
              str(c, "dst"), num(got, "event"));
    json_array_foreach(json_object_get(c, "disagree"), j, m) {
      fprintf(f, "  DISAGREES #%" JSON_INTEGER_FORMAT ": by the rules it was "
              "%srecorded (%s), but %s's trace says it was%s (a bug in "
              "clsnap)\n", num(m, "seq"),
              json_is_true(json_object_get(m, "rule")) ? "" : "not ",
              str(m, "why"), str(c, "dst"),
              json_is_true(json_object_get(m, "server")) ? "" : " not");
      bad++;
    }
    json_array_foreach(json_object_get(c, "recorded"), j, m)
      message_line(f, "recorded", m);
    if (json_array_size(json_object_get(c, "recorded")) == 0)
      fprintf(f, "  nothing recorded: the channel was empty at the cut\n");
    json_array_foreach(json_object_get(c, "not_recorded"), j, m)
      message_line(f, "not recorded", m);
  }
  fprintf(f, "\nin all: %" JSON_INTEGER_FORMAT " of %zu servers recorded, %"
          JSON_INTEGER_FORMAT " complete; %" JSON_INTEGER_FORMAT " token%s "
          "held + %" JSON_INTEGER_FORMAT " in flight (%" JSON_INTEGER_FORMAT
          " message%s) = %" JSON_INTEGER_FORMAT "; the servers held %"
          JSON_INTEGER_FORMAT " when the trace began\n",
          num(o, "recorded_servers"), nserv, num(o, "complete_servers"),
          num(o, "tokens_held"), plural(num(o, "tokens_held")),
          num(o, "tokens_in_flight"),
          num(o, "messages"), plural(num(o, "messages")),
          (json_int_t)sat_add(num(o, "tokens_held"),
                              num(o, "tokens_in_flight")),
          num(o, "tokens_at_start"));
  if (bad)
    fprintf(f, "%" JSON_INTEGER_FORMAT " message%s disagree%s with the "
            "servers' records: a bug in clsnap\n", bad, plural(bad),
            bad == 1 ? "s" : "");
  else
    fprintf(f, "the servers' own records agree with these rules\n");
}
