/* `explain`: one snapshot of a linked trace in plain words, channel by
 * channel (docs/TRACE.md, "Explain"), or as JSON.
 *
 * Who may call: the explain command.
 */
#ifndef CL_EXPLAIN_H
#define CL_EXPLAIN_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "tracefile.h"

/* The explanation of snapshot snap as a new JSON object in *out (the
 * explain definition of docs/clsnap.schema.json). Returns 0; 1 if the
 * servers' `recorded` fields disagree with the rules (listed under each
 * channel's "disagree"); CL_ENOENT if the trace has no such snapshot;
 * CL_ENOMEM. */
int cl_explain_json(const cl_tf_t *tf, uint64_t snap, json_t **out);

/* The explanation as text, from cl_explain_json's object. */
void cl_explain_print(const json_t *o, FILE *f);

#endif
