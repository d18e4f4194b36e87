/* Taking one snapshot on a cluster (see cluster_take.h). */
#include "cluster_take.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"

/* Server i answered `what` with rep, neither the answer wanted nor OK:
 * err says so; returns the code. */
static int refused(cl_cluster_t *c, cl_take_t *t, size_t i, const char *what,
                   const cl_msg_t *rep, char *err, size_t errsize) {
  t->culprit = (int)i;
  cl_cluster_blame(c, i);
  if (rep->type == CL_MSG_ERROR) {
    cl_set_err(err, errsize, "%s refused %s: %s (%s)", cl_cluster_id(c, i),
               what, rep->u.error.text, cl_err_name(rep->u.error.code));
    return cl_err_from_wire(rep->u.error.code);
  }
  cl_set_err(err, errsize, "%s answered %s with %s", cl_cluster_id(c, i),
             what, rep->type ? cl_msg_type_name(rep->type) : "nothing");
  return CL_EPROTO;
}

/* One request to server `at`, an OK wanted: 0 and the reply in *rep, or
 * the failure's code. */
static int ask_one(cl_cluster_t *c, cl_take_t *t, size_t at,
                   const cl_msg_t *req, cl_msg_t *rep, uint64_t timeout_ms,
                   char *err, size_t errsize) {
  uint32_t server = (uint32_t)at;
  int rc = cl_cluster_call(c, 1, &server, req, rep, timeout_ms, err, errsize);
  if (rc < 0) {
    t->culprit = (int)at;
    return rc;
  }
  if (rep->type == CL_MSG_OK)
    return 0;
  rc = refused(c, t, at, cl_msg_type_name(req->type), rep, err, errsize);
  cl_msg_free(rep);
  return rc;
}

/* The request req to every server, an OK wanted from each. */
static int ask_all(cl_cluster_t *c, cl_take_t *t, const cl_msg_t *req,
                   uint64_t timeout_ms, char *err, size_t errsize) {
  cl_msg_t *reps;
  size_t i, n = cl_cluster_size(c);
  int rc = cl_cluster_call_all(c, req, timeout_ms, 0, &reps, err, errsize);
  if (rc < 0)
    return rc;
  for (i = 0; rc == 0 && i < n; i++)
    if (reps[i].type != CL_MSG_OK)
      rc = refused(c, t, i, cl_msg_type_name(req->type), &reps[i], err,
                   errsize);
  cl_cluster_free_replies(c, reps);
  return rc;
}

int cl_cluster_take_gather(cl_cluster_t *c, uint64_t id, uint64_t timeout_ms,
                           cl_take_t *t, char *err, size_t errsize) {
  size_t n = cl_cluster_size(c), i, nask = 0;
  cl_msg_t *reqs = cl_xcalloc(n, sizeof *reqs);
  cl_msg_t *got = cl_xcalloc(n, sizeof *got);
  uint32_t *sv = cl_xcalloc(n, sizeof *sv);
  int rc = 0;
  if (t->reps == NULL)
    t->reps = cl_xcalloc(n, sizeof *t->reps);
  for (i = 0; i < n; i++) {
    if (t->reps[i].type != 0 || cl_cluster_take_state(c, id, i, &t->reps[i]))
      continue;
    reqs[nask].type = CL_MSG_COLLECT;
    reqs[nask].u.collect.snapshot_id = id;
    sv[nask++] = (uint32_t)i;
  }
  if (nask > 0)
    rc = cl_cluster_call(c, nask, sv, reqs, got, timeout_ms, err, errsize);
  for (i = 0; rc == 0 && i < nask; i++) {
    t->reps[sv[i]] = got[i];
    memset(&got[i], 0, sizeof got[i]);
  }
  for (i = 0; rc == 0 && i < n; i++)
    if (t->reps[i].type != CL_MSG_STATE &&
        t->reps[i].type != CL_MSG_LOCAL_STATE)
      rc = refused(c, t, i, "COLLECT", &t->reps[i], err, errsize);
  if (rc == 0) {
    t->states = cl_xcalloc(n, sizeof *t->states);
    for (i = 0; i < n; i++)
      t->states[i] = t->reps[i].u.state;
  }
  free(reqs);
  free(got);
  free(sv);
  return rc;
}

int cl_cluster_take(cl_cluster_t *c, size_t at, uint64_t timeout_ms,
                    cl_take_t *t, char *err, size_t errsize) {
  cl_msg_t req, rep;
  int rc;
  memset(t, 0, sizeof *t);
  t->culprit = -1;
  memset(&req, 0, sizeof req);
  memset(&rep, 0, sizeof rep);
  t->trigger_us = cl_utc_us();
  req.type = CL_MSG_NEXT_ID;
  if ((rc = ask_one(c, t, at, &req, &rep, timeout_ms, err, errsize)) < 0)
    return rc;
  t->id = rep.u.ok.snapshot_id;
  cl_msg_free(&rep);
  memset(&req, 0, sizeof req);
  req.type = CL_MSG_WATCH;
  req.u.watch.first = t->id;
  req.u.watch.count = 1;
  if ((rc = ask_all(c, t, &req, timeout_ms, err, errsize)) < 0)
    return rc;
  memset(&req, 0, sizeof req);
  req.type = CL_MSG_SNAPSHOT;
  req.u.snapshot.has_id = 1;
  req.u.snapshot.snapshot_id = t->id;
  t->sent = 1;
  if ((rc = ask_one(c, t, at, &req, &rep, timeout_ms, err, errsize)) < 0)
    return rc;
  cl_msg_free(&rep);
  t->started = 1;
  rc = cl_cluster_wait_complete(c, &t->id, 1, timeout_ms, err, errsize);
  if (rc == 0)
    rc = cl_cluster_take_gather(c, t->id, timeout_ms, t, err, errsize);
  if (rc == 0) {
    t->completion_us = cl_utc_us();
    cl_cluster_forget(c, t->id);
  }
  return rc;
}

size_t cl_cluster_take_drop(cl_cluster_t *c, uint64_t id, int started,
                            uint64_t timeout_ms) {
  size_t n = cl_cluster_size(c), i, nask = 0, ok = 0;
  cl_msg_t *reqs = cl_xcalloc(n, sizeof *reqs);
  cl_msg_t *reps = cl_xcalloc(n, sizeof *reps);
  uint32_t *sv = cl_xcalloc(n, sizeof *sv);
  char err[256];
  /* A server that completed it pushed its state here and forgot it: it
   * has nothing to drop, and would only remember the id for nothing. */
  for (i = 0; i < n; i++) {
    if (cl_cluster_has_completed(c, id, i))
      continue;
    reqs[nask].type = CL_MSG_DROP;
    reqs[nask].u.drop.snapshot_id = id;
    reqs[nask].u.drop.started = (uint8_t)(started != 0);
    sv[nask++] = (uint32_t)i;
  }
  if (nask > 0 && cl_cluster_call_each(c, nask, sv, reqs, reps, timeout_ms,
                                       err, sizeof err) == 0)
    for (i = 0; i < nask; i++)
      ok += reps[i].type == CL_MSG_OK;
  for (i = 0; i < nask; i++)
    cl_msg_free(&reps[i]);
  cl_cluster_forget(c, id);
  free(reqs);
  free(reps);
  free(sv);
  return ok;
}

void cl_cluster_take_free(cl_take_t *t, size_t n) {
  size_t i;
  for (i = 0; t->reps != NULL && i < n; i++)
    cl_msg_free(&t->reps[i]);
  free(t->reps);
  free(t->states);
  memset(t, 0, sizeof *t);
  t->culprit = -1;
}
