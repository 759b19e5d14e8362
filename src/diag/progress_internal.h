/* progress_internal.h : how map, batch calls and compute start a progress
 * bar. Not installed. */
#ifndef WEFT_PROGRESS_INTERNAL_H
#define WEFT_PROGRESS_INTERNAL_H

#include "weft.h"

/* Whether a call with progress option `opt` draws a bar: opt > 0 yes, opt
 * < 0 no, opt == 0 if WEFT_PROGRESS is set to something other than "" or
 * "0" (read now). */
bool weft__progress_wanted(weft_show_progress opt);

/* A bar on stderr with the defaults, or NULL if it cannot be made (progress
 * is best effort: a failure never fails the call that asked for it). */
weft_progress *weft__progress_start(const char *label, uint64_t total);

#endif
