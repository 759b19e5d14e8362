/* weft/sched.h : the event scheduler, Python's sched.scheduler in C.
 *
 * Included by weft.h; do not include it on its own.
 *
 * A weft_sched holds events, each a time, a priority and an action, and runs
 * each at its time: ordered by time, then priority (lower first), then the
 * order they were entered, exactly as sched.scheduler. Beyond sched:
 * - a background variant (weft_sched_options.background) runs the events on
 *   its own thread, accepts new ones from any thread and wakes early when an
 *   earlier event arrives;
 * - periodic events (fixed-rate or fixed-delay) run until cancelled;
 * - an event's action may be a registered weft task, handed to an executor
 *   with weft_submit() when due (weft_sched_options.executor).
 * The clock and the sleep are injectable, so tests run on a virtual clock.
 *
 * Threads: every function is safe from any thread, including from inside an
 * event's callback (no lock is held while a callback runs), except where a
 * function says otherwise (stop and destroy from a callback: WEFT_EDEADLK).
 * See docs/sched.md.
 */
#ifndef WEFT_SCHED_H
#define WEFT_SCHED_H

#ifndef WEFT_H
#error "include weft.h, not weft/sched.h"
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_sched weft_sched;

/* An event's id: never 0; not reused for a long time (a generation counter
 * per slot), so a stale id is WEFT_ENOENT, not another event. */
typedef uint64_t weft_sched_id;

/* An inline event's action: runs on the thread that runs the scheduler. */
typedef void (*weft_sched_fn)(void *arg);

/* Called after a task event was handed to the executor: `rc` is weft_submit's
 * result and `f` its future (NULL if rc != 0), borrowed: retain it to keep it
 * past the call. Runs on the scheduler's thread, without its lock held. */
typedef void (*weft_sched_submit_cb)(void *arg, weft_sched_id id, int rc, weft_future *f);

typedef struct weft_sched_options {
    size_t size; /* sizeof the struct as the caller's header had it; 0 = weft 0.2's layout */
    /* The clock, in seconds: NULL takes weft_now() (monotonic). Called with
     * the scheduler's lock held: it must not call the scheduler. */
    double (*timefunc)(void *arg);
    /* The sleep of weft_sched_run(blocking): NULL waits on a condition
     * variable for the gap (real seconds), woken early by an earlier event
     * entered from another thread, or by stop. A custom one is called without
     * the lock, with the gap, and with 0 after each event (as Python). */
    void (*delayfunc)(void *arg, double seconds);
    void *clock_arg; /* passed to timefunc and delayfunc */
    /* Run the events on a thread of the scheduler's own, started at create.
     * weft_sched_run() then fails with WEFT_EBUSY. The thread waits on the
     * real clock for the gap timefunc reports; with a custom timefunc it
     * re-reads the clock at least every 10 ms. delayfunc is not used. */
    bool background;
    /* Where task events (weft_sched_enter_task) go when due; NULL: task
     * events are refused (WEFT_EINVAL). Not owned: it must outlive the
     * scheduler (destroy or stop it first). */
    weft_executor *executor;
    weft_sched_submit_cb on_submit; /* optional, for task events */
    void *submit_arg;               /* passed to on_submit */
} weft_sched_options;
/* weft_sched_options o = WEFT_SCHED_OPTIONS_INIT; records this header's size */
#define WEFT_SCHED_OPTIONS_INIT            \
    {                                      \
        .size = sizeof(weft_sched_options) \
    }

typedef enum weft_sched_period_mode {
    /* The next run is due `period` after the previous one was due: runs stay
     * on the grid start + k * period; a run that is late is followed by the
     * ones missed meanwhile, back to back (as Java's scheduleAtFixedRate). */
    WEFT_SCHED_FIXED_RATE = 0,
    /* The next run is due `period` after the previous one finished (the
     * clock read when its action returned). */
    WEFT_SCHED_FIXED_DELAY = 1,
} weft_sched_period_mode;

/* Everything an event can be; zero means defaults. Exactly one of `fn` and
 * `task` is set. */
typedef struct weft_sched_event {
    size_t size;   /* sizeof the struct as the caller's header had it; 0 = weft 0.2's layout */
    double time;   /* delay in seconds from now (>= 0, finite), or an absolute
                      time on the scheduler's clock if `absolute` */
    bool absolute; /* `time` is absolute (finite, any sign) */
    int priority;  /* among events due at the same time, lower runs first */
    double period; /* > 0: periodic, every `period` seconds until cancelled */
    weft_sched_period_mode mode;
    weft_sched_fn fn;  /* inline action ... */
    void *arg;         /* ... and its argument (not owned) */
    weft_task_fn task; /* or a task for the executor, with its input */
    const void *in;    /* copied at enter */
    size_t len;
} weft_sched_event;
/* weft_sched_event o = WEFT_SCHED_EVENT_INIT; records this header's size */
#define WEFT_SCHED_EVENT_INIT            \
    {                                    \
        .size = sizeof(weft_sched_event) \
    }

/* One entry of weft_sched_queue(). */
typedef struct weft_sched_entry {
    weft_sched_id id;
    double time; /* when it is due, on the scheduler's clock */
    int priority;
} weft_sched_entry;

typedef enum weft_sched_stop_mode {
    /* Drop every pending event: none of them runs (inputs are freed). */
    WEFT_SCHED_STOP_CANCEL = 0,
    /* Run every pending one-shot event at its time, then stop; periodic
     * events are cancelled (they would never end). */
    WEFT_SCHED_STOP_DRAIN = 1,
} weft_sched_stop_mode;

/* weft_sched_create() :
 * Creates a scheduler from `opts` (NULL = defaults: weft_now() clock, real
 * sleep, no background thread, no executor).
 * Ownership: the caller destroys `*out` with weft_sched_destroy().
 * Threads: any thread.
 * @return 0, or WEFT_EINVAL (out NULL; on_submit without executor),
 * WEFT_ENOMEM, WEFT_EAGAIN (cannot start the thread); `*out` is NULL on error. */
WEFT_API int weft_sched_create(const weft_sched_options *opts, weft_sched **out);

/* weft_sched_enter() :
 * Schedules `fn(arg)` `delay` seconds from now with `priority` (Python's
 * scheduler.enter), and gives its id in `*id` (may be NULL).
 * Ownership: `arg` is not owned; it must stay valid until the event ran or
 * was cancelled. Threads: any, including from a callback.
 * @return 0, or WEFT_EINVAL (NULL s or fn; delay NaN, negative or infinite),
 * WEFT_ENOMEM, WEFT_ECLOSED (stopped); on error the event never runs. */
WEFT_API int weft_sched_enter(weft_sched *s, double delay, int priority, weft_sched_fn fn,
                              void *arg, weft_sched_id *id);

/* weft_sched_enterabs() :
 * weft_sched_enter() at the absolute `time` on the scheduler's clock
 * (Python's enterabs); a time already past runs at the next run.
 * @return as weft_sched_enter(); WEFT_EINVAL for a NaN or infinite time. */
WEFT_API int weft_sched_enterabs(weft_sched *s, double time, int priority, weft_sched_fn fn,
                                 void *arg, weft_sched_id *id);

/* weft_sched_enter_periodic() :
 * Schedules `fn(arg)` first `delay` seconds from now, then every `period`
 * seconds (`mode`: fixed-rate or fixed-delay) until cancelled; the id stays
 * the same for every run. Cancel it from anywhere, its own callback included.
 * @return as weft_sched_enter(); WEFT_EINVAL for a period that is not > 0
 * and finite, or an unknown mode. */
WEFT_API int weft_sched_enter_periodic(weft_sched *s, double delay, double period,
                                       weft_sched_period_mode mode, int priority, weft_sched_fn fn,
                                       void *arg, weft_sched_id *id);

/* weft_sched_enter_task() :
 * Schedules the task `fn` with a copy of `in[0..len)` `delay` seconds from
 * now; when due it is submitted to the scheduler's executor with
 * weft_submit() and its future handed to opts.on_submit (if set).
 * @return as weft_sched_enter(); WEFT_EINVAL if the scheduler has no
 * executor or `in` is NULL with len > 0. */
WEFT_API int weft_sched_enter_task(weft_sched *s, double delay, int priority, weft_task_fn fn,
                                   const void *in, size_t len, weft_sched_id *id);

/* weft_sched_enter_ex() :
 * The general form: schedules `*ev` (see weft_sched_event); the others are
 * shorthands for it. `ev` is read during the call only.
 * @return as weft_sched_enter(). */
WEFT_API int weft_sched_enter_ex(weft_sched *s, const weft_sched_event *ev, weft_sched_id *id);

/* weft_sched_cancel() :
 * Removes the pending event `id`, in O(log n): it will not run. A periodic
 * event may be cancelled while its action runs: that run finishes, no more
 * follow. Threads: any, including from a callback.
 * @return 0, WEFT_ENOENT (already ran, already cancelled, or unknown id: as
 * Python's ValueError), WEFT_EINVAL (s NULL). */
WEFT_API int weft_sched_cancel(weft_sched *s, weft_sched_id id);

/* weft_sched_run() :
 * Runs the events that are due, in order, on the calling thread (Python's
 * scheduler.run). Blocking: waits for each next event (opts.delayfunc) until
 * the queue is empty. Non-blocking: runs what is due and returns. `*next_in`
 * (may be NULL) gets the seconds until the next pending event, or
 * WEFT_FOREVER when there is none. Events entered by callbacks run in the
 * same call when due. Several threads may run one scheduler; each event runs
 * once. Threads: any, except on a background scheduler.
 * @return 0, WEFT_EINVAL (s NULL), WEFT_EBUSY (background scheduler). */
WEFT_API int weft_sched_run(weft_sched *s, bool blocking, double *next_in);

/* weft_sched_empty() :
 * @return true if no event is pending (a periodic event whose action is
 * running counts as pending). A snapshot. Threads: any. */
WEFT_API bool weft_sched_empty(weft_sched *s);

/* weft_sched_queue() :
 * Copies the pending events, in the order they will run (time, priority,
 * insertion), into `entries[0..min(cap, n))` and their count into `*n`
 * (Python's scheduler.queue). A snapshot: call with cap 0 to size the
 * buffer; `entries` may be NULL when cap is 0. Threads: any.
 * @return 0, WEFT_EINVAL (s or n NULL, entries NULL with cap > 0),
 * WEFT_ENOMEM. */
WEFT_API int weft_sched_queue(weft_sched *s, weft_sched_entry *entries, size_t cap, size_t *n);

/* weft_sched_stop() :
 * Stops the scheduler: later enters fail with WEFT_ECLOSED. CANCEL drops every
 * pending event; DRAIN runs every pending one-shot event at its time (on the
 * background thread, or on the calling thread for a foreground scheduler)
 * and cancels periodic ones. Then it joins the background thread. An action
 * running meanwhile on another thread finishes first. Idempotent; a CANCEL
 * may follow a DRAIN from another thread.
 * Threads: any, but not from a callback of `s` (WEFT_EDEADLK).
 * @return 0, WEFT_EINVAL, WEFT_EDEADLK. */
WEFT_API int weft_sched_stop(weft_sched *s, weft_sched_stop_mode mode);

/* weft_sched_destroy() :
 * Stops with WEFT_SCHED_STOP_CANCEL (pending events never run) unless
 * already stopped, waits for weft_sched_run() calls in progress on other
 * threads to return, and frees `s`. NULL is a no-op.
 * Threads: not from a callback of `s` (WEFT_EDEADLK); no call on `s` may
 * start after it. @return 0 or WEFT_EDEADLK. */
WEFT_API int weft_sched_destroy(weft_sched *s);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_SCHED_H */
