#include "cluster_setup.h"

#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"

/* Check that every reply is OK; err names the first server that refused
 * (the cluster's culprit), and the refusal's code is returned (CL_EPROTO
 * for a reply that is no answer). */
static int all_ok(cl_cluster_t *c, const char *what, size_t n,
                  const uint32_t *servers, const cl_msg_t *replies, char *err,
                  size_t errsize) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (replies[i].type == CL_MSG_OK)
      continue;
    cl_cluster_blame(c, servers[i]);
    if (replies[i].type == CL_MSG_ERROR) {
      snprintf(err, errsize, "server %s refused %s: %s (%s)",
               cl_cluster_id(c, servers[i]), what, replies[i].u.error.text,
               cl_err_name(replies[i].u.error.code));
      return cl_err_from_wire(replies[i].u.error.code);
    }
    snprintf(err, errsize, "server %s answered %s with %s",
             cl_cluster_id(c, servers[i]), what,
             cl_msg_type_name(replies[i].type));
    return CL_EPROTO;
  }
  return 0;
}

/* Fill the channel lists of server i's CONFIGURE from topo's links, with
 * the addresses the cluster has. Returns 0 or CL_ENOMEM. */
static int fill_channels(cl_configure_t *cf, const cl_cluster_t *c,
                         const cl_topology_t *topo, size_t i) {
  size_t l;
  for (l = 0; l < topo->nlinks; l++) {
    cf->nout += topo->links[l].src == i;
    cf->nin += topo->links[l].dst == i;
  }
  cf->out = calloc(cf->nout ? cf->nout : 1, sizeof *cf->out);
  cf->in = calloc(cf->nin ? cf->nin : 1, sizeof *cf->in);
  if (cf->out == NULL || cf->in == NULL)
    return CL_ENOMEM;
  cf->nout = cf->nin = 0;
  /* Links are sorted by (src, dst), so peers come out in id order. */
  for (l = 0; l < topo->nlinks; l++) {
    const cl_link_t *k = &topo->links[l];
    if (k->src == i) {
      memcpy(cf->out[cf->nout].id, topo->servers[k->dst].id, CL_ID_SIZE);
      snprintf(cf->out[cf->nout].addr, CL_ADDR_SIZE, "%s",
               cl_cluster_addr(c, k->dst));
      cf->nout++;
    }
    if (k->dst == i)
      memcpy(cf->in[cf->nin++], topo->servers[k->src].id, CL_ID_SIZE);
  }
  return 0;
}

/* The CONFIGURE request of every server into reqs[n]. Returns 0 or
 * CL_ENOMEM (the channel lists made so far stay for free_configures). */
static int make_configures(cl_msg_t *reqs, const cl_cluster_t *c,
                           const cl_topology_t *topo, int lockstep,
                           uint32_t jitter_ms, uint64_t seed) {
  size_t n = topo->nservers, i;
  uint64_t config_id = cl_topology_hash(topo);
  for (i = 0; i < n; i++) {
    cl_configure_t *cf = &reqs[i].u.configure;
    reqs[i].type = CL_MSG_CONFIGURE;
    memcpy(cf->self, topo->servers[i].id, CL_ID_SIZE);
    cf->tokens = topo->servers[i].tokens;
    cf->rank = (uint32_t)i;
    cf->nservers = (uint32_t)n;
    cf->lockstep = (uint8_t)(lockstep != 0);
    cf->jitter_ms = jitter_ms;
    /* Spread one seed over servers, so their jitter streams differ. */
    cf->seed = cl_rng_at(seed, i + 1);
    cf->config_id = config_id;
    if (fill_channels(cf, c, topo, i) < 0)
      return CL_ENOMEM;
  }
  return 0;
}

/* Free the channel lists of the CONFIGURE requests among reqs[n]. */
static void free_configures(cl_msg_t *reqs, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    if (reqs[i].type == CL_MSG_CONFIGURE) {
      free(reqs[i].u.configure.out);
      free(reqs[i].u.configure.in);
    }
}

/* reqs[n] to servers[n], all answers must be OK (what names the request in
 * err). The replies are freed. */
static int call_all_ok(cl_cluster_t *c, const char *what, size_t n,
                       const uint32_t *servers, const cl_msg_t *reqs,
                       cl_msg_t *replies, uint64_t timeout_ms, char *err,
                       size_t errsize) {
  size_t i;
  int rc = cl_cluster_call(c, n, servers, reqs, replies, timeout_ms, err,
                           errsize);
  if (rc == 0)
    rc = all_ok(c, what, n, servers, replies, err, errsize);
  for (i = 0; i < n; i++)
    cl_msg_free(&replies[i]);
  return rc;
}

/* CONFIGURE the servers listed; see cluster_setup.h. */
int cl_cluster_configure(cl_cluster_t *c, const cl_topology_t *topo,
                         const uint32_t *which, size_t nwhich, int lockstep,
                         uint64_t timeout_ms, char *err, size_t errsize) {
  size_t n = topo->nservers, i;
  cl_msg_t *all = calloc(n, sizeof *all);
  cl_msg_t *reqs = calloc(nwhich ? nwhich : 1, sizeof *reqs);
  cl_msg_t *replies = calloc(nwhich ? nwhich : 1, sizeof *replies);
  int rc = CL_ENOMEM;
  if (all == NULL || reqs == NULL || replies == NULL ||
      make_configures(all, c, topo, lockstep, 0, cl_now_ns()) < 0) {
    snprintf(err, errsize, "out of memory");
  } else {
    for (i = 0; i < nwhich; i++)
      reqs[i] = all[which[i]]; /* borrowed: all owns the lists */
    rc = call_all_ok(c, "CONFIGURE", nwhich, which, reqs, replies, timeout_ms,
                     err, errsize);
  }
  if (all != NULL)
    free_configures(all, n);
  free(all);
  free(reqs);
  free(replies);
  return rc;
}

/* CONFIGURE everyone, then CONNECT everyone; see cluster_setup.h. */
int cl_cluster_setup(cl_cluster_t *c, const cl_topology_t *topo,
                     int lockstep, uint32_t jitter_ms, uint64_t seed,
                     uint64_t timeout_ms, char *err, size_t errsize) {
  size_t n = topo->nservers, i;
  cl_msg_t *reqs = calloc(n, sizeof *reqs);
  cl_msg_t *replies = calloc(n, sizeof *replies);
  uint32_t *servers = calloc(n, sizeof *servers);
  int rc = CL_ENOMEM;
  if (reqs == NULL || replies == NULL || servers == NULL ||
      make_configures(reqs, c, topo, lockstep, jitter_ms, seed) < 0) {
    snprintf(err, errsize, "out of memory");
    goto done;
  }
  for (i = 0; i < n; i++)
    servers[i] = (uint32_t)i;
  rc = call_all_ok(c, "CONFIGURE", n, servers, reqs, replies, timeout_ms, err,
                   errsize);
  if (rc < 0)
    goto done;
  free_configures(reqs, n);
  for (i = 0; i < n; i++) {
    memset(&reqs[i], 0, sizeof reqs[i]);
    reqs[i].type = CL_MSG_CONNECT;
  }
  /* Daemons retry refused connects for up to 10 s before they answer. */
  rc = call_all_ok(c, "CONNECT", n, servers, reqs, replies,
                   timeout_ms > 15000 ? timeout_ms : 15000, err, errsize);
done:
  if (reqs != NULL)
    free_configures(reqs, n);
  free(reqs);
  free(replies);
  free(servers);
  return rc;
}
