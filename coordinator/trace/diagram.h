/* Pictures of a linked trace (tracefile.h, docs/TRACE.md): the space-time
 * diagram as SVG, the same in a self-contained page that steps through
 * the run, and the trace as a ShiViz log with vector clocks.
 *
 * Who may call: the diagram command.
 */
#ifndef CL_DIAGRAM_H
#define CL_DIAGRAM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tracefile.h"

typedef struct cl_diagram_opts {
  const uint8_t *snaps;   /* [tf->nsnaps]: 1 = draw snapshot tf->snaps[k];
                             NULL: all */
  uint64_t from, to;      /* Lamport window, both included; to 0: the end */
  const uint8_t *servers; /* [tf->nservers]: 1 = draw; NULL: all */
  const char *title;      /* the page's heading (HTML) */
} cl_diagram_opts_t;

/* The widest window drawn, in logical steps (46 px each). */
#define CL_DIAGRAM_MAX_STEPS 1000000

/* Write the diagram. 0, CL_ERANGE (the window is wider than
 * CL_DIAGRAM_MAX_STEPS; nothing written), or -1 (out of memory or a write
 * error). */
int cl_diagram_svg(const cl_tf_t *tf, const cl_diagram_opts_t *o, FILE *f);
int cl_diagram_html(const cl_tf_t *tf, const cl_diagram_opts_t *o, FILE *f);
int cl_diagram_shiviz(const cl_tf_t *tf, FILE *f);

/* The events of tf in step order (Lamport time, then server), into a new
 * array of nev indexes (caller frees), or NULL. */
size_t *cl_diagram_order(const cl_tf_t *tf);

#endif
