/* weft/progress.h : progress bars and the task-stream picture -- what a user
 * sees of a parallel run while it goes and after it ended (tqdm, dask's
 * dashboard). Included by weft.h; include <weft.h>, not this file.
 *
 *   weft_progress   done/total, rate, elapsed, ETA on stderr: redrawn in
 *                   place on a terminal, plain periodic lines otherwise.
 *                   weft_map, weft_parallel and weft_graph_compute draw one
 *                   when their `progress` option is > 0, or when it is 0 and
 *                   WEFT_PROGRESS=1 is in the environment (read when the
 *                   call starts); off, they pay one predictable branch per
 *                   chunk (map) or per node (compute).
 *   weft_trace_svg  a Chrome trace (weft_trace_write, WEFT_TRACE) drawn as
 *                   an SVG Gantt chart: a lane per worker, a bar per task
 *                   coloured by task name, idle gaps, a time axis. */
#ifndef WEFT_PROGRESS_H
#define WEFT_PROGRESS_H

#ifndef WEFT_H
#error "include <weft.h>, not <weft/progress.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Progress bars
 * ------------------------------------------------------------------------ */

typedef struct weft_progress weft_progress;

typedef enum weft_progress_mode {
    WEFT_PROGRESS_AUTO = 0,  /* TTY if the file descriptor is a terminal, else LINES */
    WEFT_PROGRESS_TTY = 1,   /* one line redrawn in place ("\r", clear to end of line) */
    WEFT_PROGRESS_LINES = 2, /* a plain line per interval, and a last one at the end */
} weft_progress_mode;

typedef struct weft_progress_options {
    size_t size; /* sizeof the struct as the caller's header had it; 0 = weft 0.2's layout */
    int fd;      /* where to draw; 0 = stderr (2) */
    weft_progress_mode mode; /* 0 = AUTO */
    /* Seconds between draws: 0 = 0.1 s on a terminal, 1 s for lines. */
    double interval;
    int width; /* bar width in characters; 0 = 24 */
} weft_progress_options;
/* weft_progress_options o = WEFT_PROGRESS_OPTIONS_INIT; records this header's size */
#define WEFT_PROGRESS_OPTIONS_INIT            \
    {                                         \
        .size = sizeof(weft_progress_options) \
    }

/* weft_progress_create() :
 * Starts a progress bar named `label` (copied; NULL = "progress") over
 * `total` steps (0: unknown, then no percentage or ETA) and draws it once.
 * Ownership: the caller ends it with weft_progress_destroy().
 * Threads: any thread.
 * @return 0, WEFT_EINVAL (NULL out, negative or NaN interval, negative
 * width, unknown mode), WEFT_ENOMEM. */
WEFT_API int weft_progress_create(const char *label, uint64_t total,
                                  const weft_progress_options *opts, weft_progress **out);

/* weft_progress_add() :
 * Counts `n` more steps done; draws if the interval has passed since the
 * last draw. Cheap: an atomic add and a clock read; the drawing is done by
 * one thread at a time, the others skip it.
 * Threads: safe from any thread at once (tasks, callbacks). NULL is a no-op. */
WEFT_API void weft_progress_add(weft_progress *p, uint64_t n);

/* weft_progress_set_total() : changes the total (e.g. once a stream's
 * length is known). Threads: any. NULL is a no-op. */
WEFT_API void weft_progress_set_total(weft_progress *p, uint64_t total);

/* weft_progress_done() : the steps counted so far (0 for NULL). */
WEFT_API uint64_t weft_progress_done(const weft_progress *p);

/* weft_progress_destroy() :
 * Draws the final state (ending the terminal line) and frees `p`. NULL is
 * a no-op. Threads: once no other thread uses `p`. @return 0. */
WEFT_API int weft_progress_destroy(weft_progress *p);

/* ------------------------------------------------------------------------
 * Task-stream picture
 * ------------------------------------------------------------------------ */

typedef struct weft_svg_options {
    size_t size;       /* sizeof the struct as the caller's header had it; 0 = weft 0.2's layout */
    const char *title; /* heading; NULL = "weft task stream" + the trace's backend */
    int width;         /* picture width in pixels; 0 = 1000 */
    int lane_height;   /* pixels per worker lane; 0 = 28 */
} weft_svg_options;
/* weft_svg_options o = WEFT_SVG_OPTIONS_INIT; records this header's size */
#define WEFT_SVG_OPTIONS_INIT            \
    {                                    \
        .size = sizeof(weft_svg_options) \
    }

/* weft_trace_svg() :
 * Reads the Chrome trace-event JSON file `json_path` (as weft_trace_write
 * writes it; other tools' complete "X" events with ts/dur in microseconds
 * work too) and writes an SVG Gantt chart of it to `svg_path`: one lane per
 * (pid, tid) -- weft's workers --, one bar per task coloured by task name
 * (a legend maps colours to names), grey where a worker sat idle, a time
 * axis in seconds. Bars narrower than a pixel in the same lane and colour
 * are drawn as one, so a trace of a million tasks stays a small picture.
 * Threads: any thread.
 * @return 0, WEFT_EINVAL (NULL path, not a trace: a message says where the
 * JSON is malformed), WEFT_ENOMEM, or -errno of a file. */
WEFT_API int weft_trace_svg(const char *json_path, const char *svg_path,
                            const weft_svg_options *opts);

/* weft_trace_write_svg() :
 * Draws the trace `ex` recorded so far (see weft_trace_enable) as
 * weft_trace_svg() would, to `svg_path`. Threads: any thread.
 * @return as weft_trace_svg(). */
WEFT_API int weft_trace_write_svg(weft_executor *ex, const char *svg_path,
                                  const weft_svg_options *opts);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_PROGRESS_H */
