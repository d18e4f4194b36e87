/* clsnap's help texts: the whole program's and each command's.
 */
#ifndef CL_USAGE_H
#define CL_USAGE_H

#include <stdio.h>

/* Full help of clsnap (cmd NULL) or of one command, to f. Returns 0, or -1
 * if cmd is unknown. */
int cl_usage(const char *cmd, FILE *f);
/* "Try 'clsnap CMD --help'." (or 'clsnap --help') on stderr. */
void cl_usage_hint(const char *cmd);

#endif
