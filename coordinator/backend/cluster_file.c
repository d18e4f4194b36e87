#include "cluster_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* A cluster-file problem at line (0: the whole file) into diag. Returns
 * CL_EINVAL. */
static int file_err(cl_diag_t *diag, const char *path, int line,
                    const char *fmt, const char *a) {
  snprintf(diag->file, sizeof diag->file, "%s", path);
  diag->line = line;
  snprintf(diag->msg, sizeof diag->msg, fmt, a);
  return CL_EINVAL;
}

/* Check one `ID HOST:PORT` line p (line number line) against the eps[0..n)
 * read so far and copy it into *ep. Returns 0, or CL_EINVAL with diag
 * set. */
static int parse_line(const char *path, int line, const char *p,
                      const cl_endpoint_t *eps, size_t n, cl_endpoint_t *ep,
                      cl_diag_t *diag) {
  char id[CL_ID_SIZE + 2], addr[CL_ADDR_SIZE + 2], junk[2], host[CL_ADDR_SIZE];
  char fmt[64];
  int port, got;
  snprintf(fmt, sizeof fmt, "%%%ds %%%ds %%1s", CL_ID_SIZE, CL_ADDR_SIZE);
  got = sscanf(p, fmt, id, addr, junk);
  if (got != 2)
    return file_err(diag, path, line, "%s",
                    got < 2 ? "expected `ID HOST:PORT`"
                            : "unexpected text after HOST:PORT");
  if (!cl_id_valid(id))
    return file_err(diag, path, line, "invalid server id '%s'", id);
  if (strlen(addr) >= CL_ADDR_SIZE || cl_addr_split(addr, host, &port) != 0 ||
      port == 0)
    return file_err(diag, path, line,
                    "invalid address '%s' (want HOST:PORT)", addr);
  if (cl_cluster_file_find(eps, n, id) >= 0)
    return file_err(diag, path, line, "server %s listed twice", id);
  if (n >= CL_SERVERS_MAX)
    return file_err(diag, path, line, "more than %s servers", "4096");
  memcpy(ep->id, id, strlen(id) + 1);       /* lengths checked above */
  memcpy(ep->addr, addr, strlen(addr) + 1);
  return 0;
}

/* Parse `ID HOST:PORT` lines; see cluster_file.h. */
int cl_cluster_file_load(const char *path, cl_endpoint_t **out, size_t *n,
                         cl_diag_t *diag) {
  char *text = NULL, *p, *next;
  size_t len, cnt = 0, cap = 0;
  int line = 0, rc = 0;
  cl_endpoint_t *eps = NULL;
  *out = NULL;
  *n = 0;
  if ((rc = cl_read_file(path, &text, &len, diag)) < 0)
    return rc;
  for (p = text; p != NULL && *p != '\0' && rc == 0; p = next) {
    line++;
    next = strchr(p, '\n');
    if (next != NULL)
      *next++ = '\0';
    while (*p == ' ' || *p == '\t' || *p == '\r')
      p++;
    if (*p == '\0' || *p == '#')
      continue;
    if (cnt == cap) {
      cap = cap ? cap * 2 : 16;
      eps = cl_xrealloc(eps, cap * sizeof *eps);
    }
    rc = parse_line(path, line, p, eps, cnt, &eps[cnt], diag);
    cnt += rc == 0;
  }
  if (rc == 0 && cnt == 0)
    rc = file_err(diag, path, 0, "%s", "no servers listed");
  free(text);
  if (rc < 0) {
    free(eps);
    return rc;
  }
  *out = eps;
  *n = cnt;
  return 0;
}

/* Linear: cluster files are short and read once per command. */
int cl_cluster_file_find(const cl_endpoint_t *eps, size_t n, const char *id) {
  size_t i;
  for (i = 0; i < n; i++)
    if (strcmp(eps[i].id, id) == 0)
      return (int)i;
  return -1;
}

/* Endpoints in topology order; see cluster_file.h. */
int cl_cluster_file_endpoints(const cl_topology_t *topo,
                              const cl_endpoint_t *file, size_t nfile,
                              const char *file_name, cl_endpoint_t **out,
                              char *err, size_t errsize) {
  size_t i;
  cl_endpoint_t *eps = cl_xcalloc(topo->nservers, sizeof *eps);
  for (i = 0; i < topo->nservers; i++) {
    int k = cl_cluster_file_find(file, nfile, topo->servers[i].id);
    if (k < 0) {
      cl_set_err(err, errsize, "server %s of the topology is not in %s",
                 topo->servers[i].id, file_name);
      free(eps);
      return CL_ENOENT;
    }
    eps[i] = file[k];
  }
  *out = eps;
  return 0;
}
