/* `explain`: one snapshot of a linked trace in plain words, channel by
 * channel (docs/TRACE.md, "Explain").
 *
 * Who may call: the explain command.
 */
#ifndef CL_EXPLAIN_H
#define CL_EXPLAIN_H

#include <stdint.h>
#include <stdio.h>

#include "tracefile.h"

/* Write the explanation of snapshot snap. Returns 0; 1 if the servers'
 * `recorded` fields disagree with the rules (said in the text); CL_ENOENT
 * if the trace has no such snapshot; CL_ENOMEM. */
int cl_explain(const cl_tf_t *tf, uint64_t snap, FILE *f);

#endif
