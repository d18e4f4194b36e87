#include "local.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* See local.h. */
int cl_local_start(uv_loop_t *loop, const cl_topology_t *topo,
                   const cl_launch_opts_t *lo, cl_launcher_t **launcher,
                   cl_endpoint_t **eps_out, char *err, size_t errsize) {
  char(*ids)[CL_ID_SIZE] = calloc(topo->nservers, sizeof *ids);
  cl_endpoint_t *eps = calloc(topo->nservers, sizeof *eps);
  size_t i;
  int rc;
  if (ids == NULL || eps == NULL) {
    free(ids);
    free(eps);
    snprintf(err, errsize, "out of memory");
    return CL_ENOMEM;
  }
  for (i = 0; i < topo->nservers; i++)
    memcpy(ids[i], topo->servers[i].id, CL_ID_SIZE);
  rc = cl_launcher_start(loop, lo, (const char(*)[CL_ID_SIZE])ids,
                         topo->nservers, launcher, err, errsize);
  free(ids);
  if (rc < 0) {
    free(eps);
    return rc;
  }
  for (i = 0; i < topo->nservers; i++) {
    memcpy(eps[i].id, topo->servers[i].id, CL_ID_SIZE);
    snprintf(eps[i].addr, sizeof eps[i].addr, "%s",
             cl_launcher_addr(*launcher, i));
  }
  *eps_out = eps;
  return 0;
}

/* See local.h. */
int cl_local_stop(cl_cluster_t *cluster, cl_launcher_t *launcher, char *err,
                  size_t errsize) {
  size_t n = cluster != NULL ? cl_cluster_size(cluster) : 0, k = 0, i;
  uint8_t *asked = calloc(n ? n : 1, 1);
  cl_msg_t *reqs = calloc(n ? n : 1, sizeof *reqs);
  cl_msg_t *reps = calloc(n ? n : 1, sizeof *reps);
  uint32_t *sv = calloc(n ? n : 1, sizeof *sv);
  int rc;
  if (cluster != NULL && asked != NULL && reqs != NULL && reps != NULL &&
      sv != NULL) {
    cl_cluster_set_notices(cluster, 0); /* channels close as servers go */
    cl_cluster_set_guard(cluster, NULL, NULL);
    for (i = 0; i < n; i++)
      if (cl_cluster_up(cluster, i)) {
        sv[k] = (uint32_t)i;
        reqs[k++].type = CL_MSG_SHUTDOWN;
      }
    if (cl_cluster_call_each(cluster, k, sv, reqs, reps, 2000, NULL, 0) == 0)
      for (i = 0; i < k; i++)
        asked[sv[i]] = reps[i].type == CL_MSG_OK;
    for (i = 0; i < k; i++)
      cl_msg_free(&reps[i]);
  }
  rc = cl_launcher_stop(launcher, asked, err, errsize);
  free(asked);
  free(reqs);
  free(reps);
  free(sv);
  return rc;
}
