/* sched.c : the event scheduler (include/weft/sched.h).
 *
 * Design. One mutex `mu` guards everything in a weft_sched. Events live in a
 * slot table; a binary min-heap of small entries (time, priority, seq, slot)
 * orders them, and each pending slot records its heap position, so cancel
 * finds and removes its entry in O(log n) with no search. An id is
 * (generation << 32 | slot index); a slot's generation grows each time it is
 * freed, so the id of an event that ran or was cancelled never names a later
 * event (WEFT_ENOENT, as Python's ValueError).
 *
 * Slot states: FREE (on the free list), PENDING (in the heap), RUNNING (a
 * periodic event whose action runs now; it goes back into the heap after, or
 * is freed if it was cancelled meanwhile or the scheduler stopped). A
 * one-shot event's slot is freed as it is popped, before its action runs.
 *
 * No lock is held while an action, a custom delayfunc or on_submit runs, so
 * callbacks may enter and cancel events; every slot pointer is re-read after
 * the lock is taken again (the table may have been reallocated). timefunc is
 * called under the lock (a clock must not call back).
 *
 * Waiting: runners (the background thread, blocking runs with the default
 * delayfunc) sleep on `cv` for the gap to the heap's top; an enter that puts
 * a new event on top, and stop, broadcast `cv`, so a sleeper wakes early for
 * an earlier event. `idle` is broadcast when the last foreground run returns
 * and when the background thread is joined (destroy and concurrent stops
 * wait on it).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

enum {
    SLOT_FREE = 0,
    SLOT_PENDING = 1,
    SLOT_RUNNING = 2
};

#define NO_SLOT UINT32_MAX
/* Longest single wait: bounds the timespec arithmetic; loops re-check. */
#define MAX_WAIT_S 3600.0
/* With a custom timefunc a sleeper re-reads the clock at least this often. */
#define CUSTOM_CLOCK_POLL_S 0.01

typedef struct slot {
    uint32_t gen;   /* generation, >= 1; part of the id */
    uint8_t state;  /* SLOT_* */
    bool cancelled; /* RUNNING: cancelled while its action ran */
    uint8_t mode;   /* weft_sched_period_mode */
    uint32_t pos;   /* PENDING: heap index; FREE: next free slot */
    int priority;
    double time;   /* due time */
    double period; /* > 0: periodic */
    weft_sched_fn fn;
    void *arg;
    weft_task_fn task;
    void *in; /* heap copy of a task's input, or NULL */
    size_t len;
} slot;

typedef struct hent {
    double time;
    int priority;
    uint32_t slot;
    uint64_t seq;
} hent;

struct weft_sched {
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* the heap's top changed, or stop */
    pthread_cond_t idle; /* active runs fell to 0, or the thread was joined */
    double (*timefunc)(void *);
    void (*delayfunc)(void *, double);
    void *clock_arg;
    bool custom_time;
    weft_executor *ex;
    weft_sched_submit_cb on_submit;
    void *submit_arg;

    hent *heap;
    size_t n, cap;
    slot *slots;
    uint32_t nslots, slots_cap, free_head;
    uint64_t seq;
    size_t nrunning; /* RUNNING slots not cancelled */
    int active;      /* foreground run loops in progress */
    int waiters;     /* threads sleeping on cv */

    bool closed;   /* enters fail */
    bool draining; /* stop(DRAIN): runners return once the heap is empty */
    bool stopping; /* stop(CANCEL): the thread returns */
    bool background;
    bool thread_started, joining, joined;
    pthread_t thread;
};

/* The scheduler whose callback the calling thread is running, if any. */
static __thread weft_sched *in_callback;

static double default_time(void *arg)
{
    (void)arg;
    return weft_now();
}

static inline weft_sched_id make_id(uint32_t gen, uint32_t idx)
{
    return ((uint64_t)gen << 32) | idx;
}

/* ---- heap ---------------------------------------------------------------- */

static inline bool before(const hent *a, const hent *b)
{
    if (a->time != b->time) return a->time < b->time;
    if (a->priority != b->priority) return a->priority < b->priority;
    return a->seq < b->seq;
}

static inline void heap_set(weft_sched *s, size_t i, hent e)
{
    s->heap[i] = e;
    s->slots[e.slot].pos = (uint32_t)i;
}

static void sift_up(weft_sched *s, size_t i)
{
    hent e = s->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&e, &s->heap[p])) break;
        heap_set(s, i, s->heap[p]);
        i = p;
    }
    heap_set(s, i, e);
}

static void sift_down(weft_sched *s, size_t i)
{
    hent e = s->heap[i];
    size_t n = s->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && before(&s->heap[c + 1], &s->heap[c])) c++;
        if (!before(&s->heap[c], &e)) break;
        heap_set(s, i, s->heap[c]);
        i = c;
    }
    heap_set(s, i, e);
}

/* Removes heap entry i. */
static void heap_remove(weft_sched *s, size_t i)
{
    s->n--;
    if (i == s->n) return;
    heap_set(s, i, s->heap[s->n]);
    if (i > 0 && before(&s->heap[i], &s->heap[(i - 1) / 2]))
        sift_up(s, i);
    else
        sift_down(s, i);
}

/* Puts slot `idx` (its time and priority set) into the heap as PENDING and
 * wakes sleepers if it became the top. The heap has room. */
static void heap_push(weft_sched *s, uint32_t idx)
{
    slot *sl = &s->slots[idx];
    sl->state = SLOT_PENDING;
    hent e = {sl->time, sl->priority, idx, s->seq++};
    size_t i = s->n++;
    s->heap[i] = e;
    sl->pos = (uint32_t)i;
    sift_up(s, i);
    if (s->slots[idx].pos == 0 && s->waiters > 0) pthread_cond_broadcast(&s->cv);
}

static int heap_reserve(weft_sched *s)
{
    if (weft__grow(&s->heap, &s->cap, s->n + 1, sizeof *s->heap, 64))
        return weft__err(WEFT_ENOMEM, "weft_sched: out of memory growing the heap");
    return 0;
}

/* ---- slots --------------------------------------------------------------- */

static int slot_alloc(weft_sched *s, uint32_t *out)
{
    if (s->free_head != NO_SLOT) {
        *out = s->free_head;
        s->free_head = s->slots[*out].pos;
        return 0;
    }
    if (s->nslots == s->slots_cap) {
        if (s->slots_cap >= (UINT32_MAX - 1) / 2)
            return weft__err(WEFT_ENOMEM, "weft_sched: too many events");
        uint32_t cap = s->slots_cap ? s->slots_cap * 2 : 64;
        slot *t = realloc(s->slots, (size_t)cap * sizeof *t);
        if (!t) return weft__err(WEFT_ENOMEM, "weft_sched: out of memory growing the events");
        s->slots = t;
        s->slots_cap = cap;
    }
    *out = s->nslots++;
    s->slots[*out].gen = 1;
    return 0;
}

/* Frees slot idx (not its input: the caller owns that now). */
static void slot_free(weft_sched *s, uint32_t idx)
{
    slot *sl = &s->slots[idx];
    uint32_t gen = sl->gen + 1;
    memset(sl, 0, sizeof *sl);
    sl->gen = gen ? gen : 1;
    sl->state = SLOT_FREE;
    sl->pos = s->free_head;
    s->free_head = idx;
}

/* The slot named by `id`, if it is not FREE. */
static slot *slot_find(weft_sched *s, weft_sched_id id, uint32_t *idx)
{
    uint32_t i = (uint32_t)id, gen = (uint32_t)(id >> 32);
    if (gen == 0 || i >= s->nslots) return NULL;
    slot *sl = &s->slots[i];
    if (sl->gen != gen || sl->state == SLOT_FREE) return NULL;
    *idx = i;
    return sl;
}

/* Drops pending periodic events (all pending ones if `all`) and marks
 * running periodic ones cancelled. */
static void cancel_all(weft_sched *s, bool all)
{
    for (size_t i = s->n; i-- > 0;) {
        uint32_t idx = s->heap[i].slot;
        slot *sl = &s->slots[idx];
        if (!all && !(sl->period > 0)) continue;
        heap_remove(s, i);
        free(sl->in);
        slot_free(s, idx);
    }
    for (uint32_t i = 0; i < s->nslots; i++) {
        slot *sl = &s->slots[i];
        if (sl->state == SLOT_RUNNING && !sl->cancelled) {
            sl->cancelled = true;
            s->nrunning--;
        }
    }
}

/* ---- waiting ------------------------------------------------------------- */

/* Sleeps on cv for up to `gap` seconds (< 0: no limit). Lock held. */
static void wait_gap(weft_sched *s, double gap)
{
    s->waiters++;
    if (gap < 0) {
        pthread_cond_wait(&s->cv, &s->mu);
    } else {
        if (s->custom_time && gap > CUSTOM_CLOCK_POLL_S) gap = CUSTOM_CLOCK_POLL_S;
        if (gap > MAX_WAIT_S) gap = MAX_WAIT_S;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double whole = floor(gap);
        ts.tv_sec += (time_t)whole;
        ts.tv_nsec += (long)((gap - whole) * 1e9);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    s->waiters--;
}

/* ---- running ------------------------------------------------------------- */

enum {
    LOOP_POLL,
    LOOP_BLOCK,
    LOOP_THREAD
};

/* Pops the heap's top (due) and runs it without the lock. Lock held on
 * entry and on return. */
static void run_top(weft_sched *s, int how)
{
    uint32_t idx = s->heap[0].slot;
    heap_remove(s, 0);
    slot *sl = &s->slots[idx];
    weft_sched_fn fn = sl->fn;
    void *arg = sl->arg;
    weft_task_fn task = sl->task;
    void *in = sl->in;
    size_t len = sl->len;
    weft_sched_id id = make_id(sl->gen, idx);
    bool periodic = sl->period > 0;
    if (periodic) {
        sl->state = SLOT_RUNNING;
        sl->cancelled = false;
        s->nrunning++;
    } else {
        slot_free(s, idx); /* `in` is ours now */
    }
    pthread_mutex_unlock(&s->mu);

    weft_sched *prev = in_callback;
    in_callback = s;
    if (fn) {
        fn(arg);
    } else {
        weft_future *f = NULL;
        int rc = weft_submit(s->ex, task, in, len, &f);
        if (s->on_submit) s->on_submit(s->submit_arg, id, rc, rc ? NULL : f);
        weft_future_release(f);
    }
    in_callback = prev;
    if (!periodic) free(in);
    if (s->delayfunc && how != LOOP_THREAD) s->delayfunc(s->clock_arg, 0);

    pthread_mutex_lock(&s->mu);
    if (!periodic) return;
    sl = &s->slots[idx]; /* the table may have moved */
    if (sl->cancelled || s->closed) {
        if (!sl->cancelled) s->nrunning--;
        free(sl->in);
        slot_free(s, idx);
        return;
    }
    s->nrunning--;
    if (sl->mode == WEFT_SCHED_FIXED_DELAY)
        sl->time = s->timefunc(s->clock_arg) + sl->period;
    else
        sl->time += sl->period;
    if (heap_reserve(s) != 0) {
        /* out of memory: the event ends here (rare: its own entry left the
         * heap, but enters may have filled the room meanwhile) */
        free(sl->in);
        slot_free(s, idx);
        return;
    }
    heap_push(s, idx);
}

/* The run loop, lock held. LOOP_POLL runs what is due and returns;
 * LOOP_BLOCK runs until the heap is empty; LOOP_THREAD runs until stop
 * (until empty when draining). */
static void run_loop(weft_sched *s, int how, double *next_in)
{
    for (;;) {
        if (how == LOOP_THREAD && s->stopping) break;
        if (s->n == 0) {
            if (how == LOOP_THREAD && !s->draining) {
                wait_gap(s, -1);
                continue;
            }
            if (next_in) *next_in = WEFT_FOREVER;
            return;
        }
        double due = s->heap[0].time;
        double now = s->timefunc(s->clock_arg);
        if (due > now) {
            double gap = due - now;
            if (how == LOOP_POLL) {
                if (next_in) *next_in = gap;
                return;
            }
            if (how == LOOP_BLOCK && s->delayfunc) {
                pthread_mutex_unlock(&s->mu);
                s->delayfunc(s->clock_arg, gap);
                pthread_mutex_lock(&s->mu);
            } else {
                wait_gap(s, gap);
            }
            continue;
        }
        run_top(s, how);
    }
}

static void *sched_thread(void *p)
{
    weft_sched *s = p;
    pthread_mutex_lock(&s->mu);
    run_loop(s, LOOP_THREAD, NULL);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- public -------------------------------------------------------------- */

int weft_sched_create(const weft_sched_options *opts, weft_sched **out)
{
    if (!out) return weft__err(WEFT_EINVAL, "weft_sched_create: out is NULL");
    *out = NULL;
    weft_sched_options o;
    int orc = WEFT__OPTS_READ(o, opts, "weft_sched_create: weft_sched_options");
    if (orc) return orc;
    if (o.on_submit && !o.executor)
        return weft__err(WEFT_EINVAL, "weft_sched_create: on_submit is set but executor is NULL");
    weft_sched *s = calloc(1, sizeof *s);
    if (!s) return weft__err(WEFT_ENOMEM, "weft_sched_create: out of memory");
    s->timefunc = o.timefunc ? o.timefunc : default_time;
    s->custom_time = o.timefunc != NULL;
    s->delayfunc = o.delayfunc;
    s->clock_arg = o.clock_arg;
    s->ex = o.executor;
    s->on_submit = o.on_submit;
    s->submit_arg = o.submit_arg;
    s->free_head = NO_SLOT;
    s->background = o.background;

    pthread_condattr_t ca;
    int rc = pthread_condattr_init(&ca);
    if (rc == 0) rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0) rc = pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc) {
        free(s);
        return weft__err(WEFT_ENOMEM, "weft_sched_create: pthread_cond_init failed");
    }
    pthread_cond_init(&s->idle, NULL);
    pthread_mutex_init(&s->mu, NULL);
    if (s->background) {
        rc = pthread_create(&s->thread, NULL, sched_thread, s);
        if (rc) {
            pthread_mutex_destroy(&s->mu);
            pthread_cond_destroy(&s->cv);
            pthread_cond_destroy(&s->idle);
            free(s);
            return weft__err(WEFT_EAGAIN, "weft_sched_create: cannot start the thread (errno %d)",
                             rc);
        }
        s->thread_started = true;
    }
    *out = s;
    return 0;
}

static int check_delay(double d, const char *fn)
{
    if (d != d) return weft__err(WEFT_EINVAL, "%s: delay is NaN", fn);
    if (d < 0) return weft__err(WEFT_EINVAL, "%s: delay %g is negative", fn, d);
    if (isinf(d)) return weft__err(WEFT_EINVAL, "%s: delay is infinite", fn);
    return 0;
}

int weft_sched_enter_ex(weft_sched *s, const weft_sched_event *ev, weft_sched_id *id)
{
    static const char *F = "weft_sched_enter";
    if (id) *id = 0;
    if (!s) return weft__err(WEFT_EINVAL, "%s: scheduler is NULL", F);
    if (!ev) return weft__err(WEFT_EINVAL, "%s: event is NULL", F);
    weft_sched_event evl;
    int orc = WEFT__OPTS_READ(evl, ev, "weft_sched_enter_ex: weft_sched_event");
    if (orc) return orc;
    ev = &evl;
    if (!ev->fn == !ev->task)
        return weft__err(WEFT_EINVAL, "%s: set exactly one of fn (inline) and task (executor)", F);
    if (ev->task && !s->ex)
        return weft__err(WEFT_EINVAL, "%s: a task event needs options.executor", F);
    if (ev->task && !ev->in && ev->len > 0)
        return weft__err(WEFT_EINVAL, "%s: input is NULL with len %zu", F, ev->len);
    if (ev->absolute) {
        if (!isfinite(ev->time))
            return weft__err(WEFT_EINVAL, "%s: absolute time %g is not finite", F, ev->time);
    } else {
        int rc = check_delay(ev->time, F);
        if (rc) return rc;
    }
    if (ev->period != ev->period || ev->period < 0 || isinf(ev->period))
        return weft__err(WEFT_EINVAL, "%s: period %g is not a finite number >= 0", F, ev->period);
    if (ev->mode != WEFT_SCHED_FIXED_RATE && ev->mode != WEFT_SCHED_FIXED_DELAY)
        return weft__err(WEFT_EINVAL, "%s: unknown period mode %d", F, (int)ev->mode);

    void *in = NULL;
    if (ev->task && ev->len > 0) {
        in = malloc(ev->len);
        if (!in) return weft__err(WEFT_ENOMEM, "%s: out of memory copying the input", F);
        memcpy(in, ev->in, ev->len);
    }

    pthread_mutex_lock(&s->mu);
    int rc = 0;
    uint32_t idx = 0;
    if (s->closed)
        rc = weft__err(WEFT_ECLOSED, "%s: the scheduler is stopped", F);
    else if ((rc = heap_reserve(s)) == 0)
        rc = slot_alloc(s, &idx);
    if (rc) {
        pthread_mutex_unlock(&s->mu);
        free(in);
        return rc;
    }
    slot *sl = &s->slots[idx];
    sl->time = ev->absolute ? ev->time : s->timefunc(s->clock_arg) + ev->time;
    sl->priority = ev->priority;
    sl->period = ev->period;
    sl->mode = (uint8_t)ev->mode;
    sl->fn = ev->fn;
    sl->arg = ev->arg;
    sl->task = ev->task;
    sl->in = in;
    sl->len = ev->task ? ev->len : 0;
    sl->cancelled = false;
    if (id) *id = make_id(sl->gen, idx);
    heap_push(s, idx);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int weft_sched_enter(weft_sched *s, double delay, int priority, weft_sched_fn fn, void *arg,
                     weft_sched_id *id)
{
    if (!fn) {
        if (id) *id = 0;
        return weft__err(WEFT_EINVAL, "weft_sched_enter: fn is NULL");
    }
    weft_sched_event ev = {.time = delay, .priority = priority, .fn = fn, .arg = arg};
    return weft_sched_enter_ex(s, &ev, id);
}

int weft_sched_enterabs(weft_sched *s, double time, int priority, weft_sched_fn fn, void *arg,
                        weft_sched_id *id)
{
    if (!fn) {
        if (id) *id = 0;
        return weft__err(WEFT_EINVAL, "weft_sched_enterabs: fn is NULL");
    }
    weft_sched_event ev = {
        .time = time, .absolute = true, .priority = priority, .fn = fn, .arg = arg};
    return weft_sched_enter_ex(s, &ev, id);
}

int weft_sched_enter_periodic(weft_sched *s, double delay, double period,
                              weft_sched_period_mode mode, int priority, weft_sched_fn fn,
                              void *arg, weft_sched_id *id)
{
    if (id) *id = 0;
    if (!fn) return weft__err(WEFT_EINVAL, "weft_sched_enter_periodic: fn is NULL");
    if (!(period > 0))
        return weft__err(WEFT_EINVAL, "weft_sched_enter_periodic: period %g is not > 0", period);
    weft_sched_event ev = {
        .time = delay, .priority = priority, .period = period, .mode = mode, .fn = fn, .arg = arg};
    return weft_sched_enter_ex(s, &ev, id);
}

int weft_sched_enter_task(weft_sched *s, double delay, int priority, weft_task_fn fn,
                          const void *in, size_t len, weft_sched_id *id)
{
    if (!fn) {
        if (id) *id = 0;
        return weft__err(WEFT_EINVAL, "weft_sched_enter_task: task fn is NULL");
    }
    weft_sched_event ev = {.time = delay, .priority = priority, .task = fn, .in = in, .len = len};
    return weft_sched_enter_ex(s, &ev, id);
}

int weft_sched_cancel(weft_sched *s, weft_sched_id id)
{
    if (!s) return weft__err(WEFT_EINVAL, "weft_sched_cancel: scheduler is NULL");
    pthread_mutex_lock(&s->mu);
    uint32_t idx;
    slot *sl = slot_find(s, id, &idx);
    int rc = 0;
    if (sl && sl->state == SLOT_PENDING) {
        bool top = sl->pos == 0;
        heap_remove(s, sl->pos);
        free(sl->in);
        slot_free(s, idx);
        /* a blocking run waiting for this event must re-read the top */
        if (top && s->waiters > 0) pthread_cond_broadcast(&s->cv);
    } else if (sl && sl->state == SLOT_RUNNING && !sl->cancelled) {
        sl->cancelled = true;
        s->nrunning--;
    } else {
        rc = weft__err(WEFT_ENOENT,
                       "weft_sched_cancel: event %#llx is not pending (it already ran, was "
                       "cancelled, or never existed)",
                       (unsigned long long)id);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int weft_sched_run(weft_sched *s, bool blocking, double *next_in)
{
    if (next_in) *next_in = WEFT_FOREVER;
    if (!s) return weft__err(WEFT_EINVAL, "weft_sched_run: scheduler is NULL");
    if (s->background)
        return weft__err(WEFT_EBUSY,
                         "weft_sched_run: this scheduler runs its events on its own thread");
    pthread_mutex_lock(&s->mu);
    s->active++;
    run_loop(s, blocking ? LOOP_BLOCK : LOOP_POLL, next_in);
    if (--s->active == 0) pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

bool weft_sched_empty(weft_sched *s)
{
    if (!s) return true;
    pthread_mutex_lock(&s->mu);
    bool e = s->n == 0 && s->nrunning == 0;
    pthread_mutex_unlock(&s->mu);
    return e;
}

typedef struct qent {
    hent key;
    weft_sched_id id;
} qent;

static int cmp_qent(const void *a, const void *b)
{
    const qent *x = a, *y = b;
    return before(&x->key, &y->key) ? -1 : before(&y->key, &x->key) ? 1 : 0;
}

int weft_sched_queue(weft_sched *s, weft_sched_entry *entries, size_t cap, size_t *n)
{
    if (n) *n = 0;
    if (!s || !n) return weft__err(WEFT_EINVAL, "weft_sched_queue: scheduler or n is NULL");
    if (!entries && cap > 0)
        return weft__err(WEFT_EINVAL, "weft_sched_queue: entries is NULL with cap %zu", cap);
    pthread_mutex_lock(&s->mu);
    size_t count = s->n;
    qent *q = NULL;
    if (cap > 0 && count > 0) {
        q = malloc(count * sizeof *q);
        if (!q) {
            pthread_mutex_unlock(&s->mu);
            return weft__err(WEFT_ENOMEM, "weft_sched_queue: out of memory");
        }
        for (size_t i = 0; i < count; i++) {
            q[i].key = s->heap[i];
            q[i].id = make_id(s->slots[s->heap[i].slot].gen, s->heap[i].slot);
        }
    }
    pthread_mutex_unlock(&s->mu);
    *n = count;
    if (!q) return 0;
    qsort(q, count, sizeof *q, cmp_qent);
    size_t m = count < cap ? count : cap;
    for (size_t i = 0; i < m; i++) {
        entries[i].id = q[i].id;
        entries[i].time = q[i].key.time;
        entries[i].priority = q[i].key.priority;
    }
    free(q);
    return 0;
}

int weft_sched_stop(weft_sched *s, weft_sched_stop_mode mode)
{
    if (!s) return weft__err(WEFT_EINVAL, "weft_sched_stop: scheduler is NULL");
    if (mode != WEFT_SCHED_STOP_CANCEL && mode != WEFT_SCHED_STOP_DRAIN)
        return weft__err(WEFT_EINVAL, "weft_sched_stop: unknown mode %d", (int)mode);
    if (in_callback == s)
        return weft__err(WEFT_EDEADLK, "weft_sched_stop: called from the scheduler's own callback");
    pthread_mutex_lock(&s->mu);
    s->closed = true;
    if (mode == WEFT_SCHED_STOP_CANCEL) {
        s->stopping = true;
        cancel_all(s, true);
    } else {
        s->draining = true;
        cancel_all(s, false);
    }
    pthread_cond_broadcast(&s->cv);
    if (s->thread_started) {
        if (!s->joining) {
            s->joining = true;
            pthread_mutex_unlock(&s->mu);
            pthread_join(s->thread, NULL);
            pthread_mutex_lock(&s->mu);
            s->joined = true;
            pthread_cond_broadcast(&s->idle);
        }
        while (!s->joined) pthread_cond_wait(&s->idle, &s->mu);
    } else if (mode == WEFT_SCHED_STOP_DRAIN) {
        s->active++;
        run_loop(s, LOOP_BLOCK, NULL);
        if (--s->active == 0) pthread_cond_broadcast(&s->idle);
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int weft_sched_destroy(weft_sched *s)
{
    if (!s) return 0;
    if (in_callback == s)
        return weft__err(WEFT_EDEADLK,
                         "weft_sched_destroy: called from the scheduler's own callback");
    weft_sched_stop(s, WEFT_SCHED_STOP_CANCEL); /* idempotent; joins the thread */
    pthread_mutex_lock(&s->mu);
    while (s->active > 0) pthread_cond_wait(&s->idle, &s->mu);
    pthread_mutex_unlock(&s->mu);
    for (uint32_t i = 0; i < s->nslots; i++)
        if (s->slots[i].state != SLOT_FREE) free(s->slots[i].in);
    free(s->slots);
    free(s->heap);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->idle);
    free(s);
    return 0;
}
