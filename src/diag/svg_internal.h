/* svg_internal.h : the SVG drawing of a trace held in memory, for
 * weft_trace_write_svg and the fuzz target (fuzz/fuzz_svg.c). Not installed. */
#ifndef WEFT_SVG_INTERNAL_H
#define WEFT_SVG_INTERNAL_H

#include <stddef.h>

#include "weft.h"

/* Parses the trace-event JSON buf[0..len) (it need not be NUL-terminated)
 * and draws it to `svg_path`, as weft_trace_svg does with a file. `what`
 * names the input in error messages. Returns 0, WEFT_EINVAL (not a trace),
 * WEFT_ENOMEM or -errno of writing the picture. */
int weft__svg_from_buffer(const char *buf, size_t len, const char *what, const char *svg_path,
                          const weft_svg_options *opts);

#endif
