/* memo_exec.c : weft_memo_open/close and memoized execution.
 *
 * The core passes a call flagged WEFT_SUBMIT_MEMO / WEFT_MAP_MEMO to the hook
 * installed here (core/memo_hook.h). Where the lookup happens: on the
 * caller, always. The key is hashed and the entry read on the thread that
 * submits, before anything is queued, so a hit on the processes or mpi
 * backends sends no input to a worker and no task is queued at all; only
 * misses travel. The store happens where the result arrives in the caller's
 * process: in the future's completion callback for submits (graph nodes are
 * submits), and in the map's result delivery for maps, item by item, so a
 * map killed half way has stored every item delivered before the kill.
 * The task itself never sees the memo, so a worker process or a rank needs
 * no access to the cache directory.
 *
 * A map: the caller hashes and looks up every item first; hits fill the
 * results at once, misses run as one weft_map_bufs (the same chunking,
 * retries, timeout and progress) whose on_result stores each output and
 * delivers it. Delivery order is kept: in ordered mode a hit is delivered
 * when every item before it has been, in unordered mode hits come first. */
#include <stdlib.h>
#include <string.h>

#include "core/memo_hook.h"
#include "memo/memo_store.h"

/* ---- submit ------------------------------------------------------------------------- */

typedef struct store_ctx {
    weft_memo *memo;
    weft__memo_key key;
} store_ctx;

static void store_done(weft_future *f, void *arg)
{
    store_ctx *c = arg;
    const void *d;
    size_t l;
    if (weft_future_state_get(f) == WEFT_FUTURE_DONE && weft_future_result(f, 0, &d, &l) == 0) {
        if (weft__memo_put_key(c->memo, &c->key, d, l) != 0) weft__memo_note_store_error(c->memo);
    }
    free(c);
}

static const char *task_name(weft_task_fn fn, const char *call)
{
    const char *name = weft_task_name(fn);
    if (!name)
        weft__err(WEFT_ENOTREG,
                  "%s: a memoized call needs a registered task (its name is part of the key)",
                  call);
    return name;
}

static int memo_submit(weft_executor *ex, weft_memo *memo, weft_task_fn fn, const void *in,
                       size_t len, const weft_submit_options *opts, weft_future **out)
{
    const char *name = task_name(fn, "weft_submit");
    if (!name) return WEFT_ENOTREG;
    store_ctx *c = malloc(sizeof *c);
    if (!c) return weft__err(WEFT_ENOMEM, "weft_submit: out of memory");
    c->memo = memo;
    weft__memo_key_of(name, weft__memo_version(memo), in, len, &c->key);
    void *data = NULL;
    size_t dlen = 0;
    if (weft__memo_get_key(memo, &c->key, &data, &dlen) == 0) {
        free(c);
        weft_future *f;
        int rc = weft_promise_create(&f);
        if (!rc) rc = weft_promise_set_result(f, data, dlen);
        free(data);
        if (rc) {
            weft_future_release(f);
            return rc;
        }
        *out = f;
        return 0;
    }
    weft_submit_options so = *opts;
    so.flags &= ~(unsigned)WEFT_SUBMIT_MEMO;
    weft_future *f;
    int rc = weft_submit_ex(ex, fn, in, len, &so, &f);
    if (rc) {
        free(c);
        return rc;
    }
    if (weft_future_on_done(f, store_done, c) != 0) { /* out of memory: run, not stored */
        free(c);
        weft__memo_note_store_error(memo);
    }
    *out = f;
    return 0;
}

/* ---- map ---------------------------------------------------------------------------- */

typedef struct mstate {
    weft_memo *memo;
    weft_results *res;
    weft__memo_key *keys;
    unsigned char *hit;
    size_t *miss; /* indices of the items that missed */
    size_t count, cursor;
    bool ordered;
    weft_result_cb cb;
    void *arg;
} mstate;

/* Ordered: delivers the hits before item `limit` not delivered yet. */
static int deliver_hits(mstate *s, size_t limit)
{
    for (; s->cursor < limit; s->cursor++) {
        if (!s->hit[s->cursor]) continue;
        const void *d;
        size_t l;
        weft_results_get(s->res, s->cursor, &d, &l);
        int rc = s->cb(s->arg, s->cursor, 0, d, l, NULL);
        if (rc) {
            s->cursor++;
            return rc;
        }
    }
    return 0;
}

static int on_miss(void *arg, uint64_t j, int err, const void *out, size_t len, const char *msg)
{
    mstate *s = arg;
    size_t i = s->miss[j];
    if (!err && weft__memo_put_key(s->memo, &s->keys[i], out, len) != 0)
        weft__memo_note_store_error(s->memo);
    if (weft__results_set(s->res, i, err, out, len, msg) != 0 && !err)
        return weft__err(WEFT_ENOMEM, "weft_map: out of memory for item %zu's output", i);
    if (!s->cb) return 0;
    if (s->ordered) {
        int rc = deliver_hits(s, i);
        if (rc) return rc;
        s->cursor = i + 1;
    }
    return s->cb(s->arg, i, err, out, len, msg);
}

static int memo_map(weft_executor *ex, weft_memo *memo, weft_task_fn fn, const weft_buf *items,
                    size_t count, const weft_map_options *opts, weft_results **out,
                    const char *call)
{
    const char *name = task_name(fn, call);
    if (!name) return WEFT_ENOTREG;
    if (count && !items) return weft__err(WEFT_EINVAL, "%s: items is NULL", call);
    if (!out && !opts->on_result)
        return weft__err(WEFT_EINVAL, "%s: neither out nor on_result is given", call);
    mstate s = {0};
    s.memo = memo;
    s.count = count;
    s.ordered = !(opts->flags & WEFT_MAP_UNORDERED);
    s.cb = opts->on_result;
    s.arg = opts->arg;
    size_t n1 = count ? count : 1;
    s.keys = malloc(n1 * sizeof *s.keys);
    s.hit = calloc(n1, 1);
    s.miss = malloc(n1 * sizeof *s.miss);
    weft_buf *mb = malloc(n1 * sizeof *mb);
    int rc = 0;
    if (!s.keys || !s.hit || !s.miss || !mb) {
        rc = weft__err(WEFT_ENOMEM, "%s: out of memory for %zu items", call, count);
        goto done;
    }
    rc = weft__results_new(count, &s.res);
    if (rc) goto done;
    const char *version = weft__memo_version(memo);
    size_t nmiss = 0;
    bool give = false; /* past the argument checks: *out is set, as weft_map's */
    for (size_t i = 0; i < count; i++) {
        if (!items[i].data && items[i].len) {
            rc = weft__err(WEFT_EINVAL, "%s: items[%zu] has NULL data", call, i);
            goto done;
        }
        weft__memo_key_of(name, version, items[i].data, items[i].len, &s.keys[i]);
        void *d = NULL;
        size_t l = 0;
        if (weft__memo_get_key(memo, &s.keys[i], &d, &l) == 0 &&
            weft__results_set(s.res, i, 0, d, l, NULL) == 0) {
            s.hit[i] = 1;
        } else {
            s.miss[nmiss] = i;
            mb[nmiss++] = items[i];
        }
        free(d);
    }
    give = true;
    if (s.cb && !s.ordered) {
        for (size_t i = 0; i < count && !rc; i++) {
            if (!s.hit[i]) continue;
            const void *d;
            size_t l;
            weft_results_get(s.res, i, &d, &l);
            rc = s.cb(s.arg, i, 0, d, l, NULL);
        }
        if (rc) goto done;
    }
    if (nmiss) {
        weft_map_options mo = *opts;
        mo.flags &= ~(unsigned)WEFT_MAP_MEMO;
        mo.on_result = on_miss;
        mo.arg = &s;
        rc = weft_map_bufs(ex, fn, mb, nmiss, &mo, NULL);
    }
    if (!rc && s.cb && s.ordered) rc = deliver_hits(&s, count);
done:
    free(s.keys);
    free(s.hit);
    free(s.miss);
    free(mb);
    if (out && give)
        *out = s.res;
    else
        weft_results_destroy(s.res);
    return rc;
}

static const weft__memo_hook hook = {memo_submit, memo_map};

/* ---- open / close ------------------------------------------------------------------- */

int weft_memo_open(const char *path, uint64_t bound, const weft_memo_options *opts, weft_memo **out)
{
    int rc = weft__memo_store_open(path, bound, opts, out);
    if (!rc) weft__memo_hook_set(&hook);
    return rc;
}

int weft_memo_close(weft_memo *m)
{
    return weft__memo_store_close(m);
}
