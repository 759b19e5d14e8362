/* memo_hook.h : how the core hands memoized calls to the memo layer
 * (src/memo/) without calling up into it.
 *
 * A call flagged WEFT_SUBMIT_MEMO or WEFT_MAP_MEMO is passed, on the
 * caller's thread, to the hook the memo layer installed when a memo was
 * first opened (weft__memo_hook_set). The hook looks the result up, and
 * runs what missed through the ordinary public calls with the flag cleared,
 * so the core knows nothing of keys, files or stores. A flagged call on an
 * executor without a memo is WEFT_EINVAL. Not installed. */
#ifndef WEFT_CORE_MEMO_HOOK_H
#define WEFT_CORE_MEMO_HOOK_H

#include "internal.h"

typedef struct weft__memo_hook {
    int (*submit)(weft_executor *ex, weft_memo *memo, weft_task_fn fn, const void *in, size_t len,
                  const weft_submit_options *opts, weft_future **out);
    int (*map)(weft_executor *ex, weft_memo *memo, weft_task_fn fn, const weft_buf *items,
               size_t count, const weft_map_options *opts, weft_results **out, const char *name);
} weft__memo_hook;

/* Installs the memo layer's hook (idempotent; `h` has static storage). */
void weft__memo_hook_set(const weft__memo_hook *h);
/* The memo attached to `ex` (weft_options.memo), or NULL. */
weft_memo *weft__executor_memo(const weft_executor *ex);
/* A flagged submit / map: passes it to the hook, or fails with WEFT_EINVAL
 * when `ex` has no memo. */
int weft__memo_submit(weft_executor *ex, weft_task_fn fn, const void *in, size_t len,
                      const weft_submit_options *opts, weft_future **out);
int weft__memo_map(weft_executor *ex, weft_task_fn fn, const weft_buf *items, size_t count,
                   const weft_map_options *opts, weft_results **out, const char *name);

/* Results built by a layer above map.c (map.c): `count` entries, each
 * WEFT_ECANCELLED until set. */
int weft__results_new(size_t count, weft_results **out);
/* Sets entry i: the output (copied) when err == 0, else err and a copy of
 * msg (may be NULL). @return 0 or WEFT_ENOMEM. Not thread-safe. */
int weft__results_set(weft_results *r, size_t i, int err, const void *data, size_t len,
                      const char *msg);

#endif
