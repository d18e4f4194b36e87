/* What the commands that keep snapshots share: where the store is, the
 * topology a snapshot was taken on, a stored record made from a taken
 * snapshot, and saving it with the failure printed.
 *
 * Who may call: the commands (it prints, through cli.h).
 */
#ifndef CL_STORED_H
#define CL_STORED_H

#include <stddef.h>
#include <stdint.h>

#include "scenario.h"
#include "store.h"
#include "verify.h"

/* The store directory into dir: `given` (--store) if not NULL, else
 * "snapshots" beside the cluster file (cl_cli_cluster's lookup). Returns
 * 0, or -1 after a usage error. */
int cl_stored_dir(const char *given, const char *cluster, char *dir,
                  size_t size);

/* topo as canonical .top text (servers and links sorted; malloc'd). */
char *cl_stored_topology(const cl_topology_t *topo);

/* The topology n STATUS replies describe (each server's id, configured
 * tokens and outbound channels) as canonical .top text (malloc'd), or
 * NULL when a reply is not a configured STATUS_R or they make none. */
char *cl_stored_topology_of(const cl_msg_t *reps, size_t n);

/* Fill rec (zeroed first) with a snapshot and copies of its n states;
 * v NULL: not checked. topology is copied (NULL: unknown). reason may be
 * NULL. */
void cl_stored_make(cl_stored_t *rec, uint64_t id, const char *initiator,
                    int status, const char *reason, int64_t trigger_us,
                    int64_t completion_us, const char *topology,
                    const cl_local_state_t *states, size_t n,
                    const cl_verdict_t *v);

/* Store rec in st with retention keep (0: keep all). Returns 0, or -1
 * after printing why. */
int cl_stored_save(cl_store_t *st, cl_stored_t *rec, uint64_t keep);

/* Open the store at dir, printing why not. NULL on failure. */
cl_store_t *cl_stored_open(const char *dir);

/* The file of SEQ|latest (latest: the newest completed snapshot) in the
 * store dir into path; cmd names the command in the complaint. Returns 0,
 * or the exit status after saying why not. */
int cl_stored_find(const char *dir, const char *which, const char *cmd,
                   char *path, size_t size);

/* Check rec's states again, against its own topology, into v. Returns 0,
 * or -1 with why set (its topology does not parse). */
int cl_stored_recheck(const cl_stored_t *rec, cl_verdict_t *v, char *why,
                      size_t size);

#endif
