/* test_sched.c : weft_sched, the event scheduler: Python's sched.scheduler
 * contract on a virtual clock (ordering, enterabs, cancel, run blocking and
 * not, queue, empty, re-entrant callbacks), periodic events, the background
 * thread on the real clock, hand-off to an executor, stop/destroy, bad input. */
#include "check.h"

/* ---- a virtual clock ---- */

typedef struct vclock {
    double now;
    int delays;      /* delayfunc calls with a gap > 0 */
    int zero_delays; /* delayfunc(0) calls (after each event) */
} vclock;

static double vtime(void *a)
{
    return ((vclock *)a)->now;
}

static void vdelay(void *a, double d)
{
    vclock *c = a;
    if (d > 0) {
        c->now += d;
        c->delays++;
    } else {
        c->zero_delays++;
    }
}

static weft_sched *make_virtual(vclock *c)
{
    weft_sched_options o = {0};
    o.timefunc = vtime;
    o.delayfunc = vdelay;
    o.clock_arg = c;
    weft_sched *s = NULL;
    int rc = weft_sched_create(&o, &s);
    CHECK_OK(rc);
    return s;
}

/* ---- a log of what ran, and when ---- */

#define LOG_MAX 4096
static int log_v[LOG_MAX];
static double log_t[LOG_MAX];
static atomic_int log_n;
static vclock *log_clock; /* when set, events record its time */

static void log_reset(vclock *c)
{
    atomic_store(&log_n, 0);
    log_clock = c;
}

static void rec(void *arg)
{
    int i = atomic_fetch_add(&log_n, 1);
    if (i >= LOG_MAX) return;
    log_v[i] = (int)(intptr_t)arg;
    log_t[i] = log_clock ? log_clock->now : check_now();
}

#define V(x) ((void *)(intptr_t)(x))

/* ---- sched.scheduler semantics, virtual clock ---- */

TEST(order_by_time_then_priority_then_insertion)
{
    vclock c = {0};
    weft_sched *s = make_virtual(&c);
    REQUIRE(s);
    log_reset(&c);
    CHECK_OK(weft_sched_enterabs(s, 3.0, 0, rec, V(6), NULL));
    CHECK_OK(weft_sched_enterabs(s, 1.0, 5, rec, V(3), NULL));
    CHECK_OK(weft_sched_enterabs(s, 1.0, 1, rec, V(1), NULL));
    CHECK_OK(weft_sched_enterabs(s, 1.0, 1, rec, V(2), NULL)); /* same key: after 1 */
    CHECK_OK(weft_sched_enterabs(s, 2.0, -7, rec, V(4), NULL));
    CHECK_OK(weft_sched_enterabs(s, 2.0, -7, rec, V(5), NULL));
    CHECK_OK(weft_sched_enterabs(s, 0.5, 100, rec, V(0), NULL));
    CHECK_OK(weft_sched_run(s, true, NULL));
    CHECK_EQ_INT(atomic_load(&log_n), 7);
    const double when[] = {0.5, 1, 1, 1, 2, 2, 3};
    for (int i = 0; i < 7; i++) {
        CHECK_EQ_INT(log_v[i], i);
        CHECK_MSG(log_t[i] == when[i], "event %d ran at %g, due %g", i, log_t[i], when[i]);
    }
    CHECK(c.now == 3.0);
    CHECK(weft_sched_empty(s));
    CHECK_OK(weft_sched_destroy(s));
}

TEST(enter_is_relative_to_the_clock)
{
    vclock c = {.now = 10};
    weft_sched *s = make_virtual(&c);
    REQUIRE(s);
    log_reset(&c);
    weft_sched_id id;
    CHECK_OK(weft_sched_enter(s, 5, 0, rec, V(1), &id));
    CHECK(id != 0);
    weft_sched_entry e[2];
    size_t n = 0;
    CHECK_OK(weft_sched_queue(s, e, 2, &n));
    CHECK_EQ_INT(n, 1);
    CHECK(e[0].time == 15.0);
    CHECK_EQ_U64(e[0].id, id);
    CHECK_OK(weft_sched_run(s, true, NULL));
    CHECK_EQ_INT(atomic_load(&log_n), 1);
    CHECK(log_t[0] == 15.0);
    CHECK_OK(weft_sched_destroy(s));
}

TEST(enterabs_in_the_past_runs_at_once)
{
    vclock c = {.now = 100};
    weft_sched *s = make_virtual(&c);
    REQUIRE(s);
    log_reset(&c);
    CHECK_OK(weft_sched_enterabs(s, -5, 0, rec, V(1), NULL));
    double next = 0;
    CHECK_OK(weft_sched_run(s, false, &next));
    CHECK_EQ_INT(atomic_load(&log_n), 1);
    CHECK(isinf(next));
    CHECK(c.now == 100);
    CHECK_OK(weft_sched_destroy(s));
}

TEST(cancel_pending_event)
{
    vclock c = {0};
    weft_sched *s = make_virtual(&c);
    REQUIRE(s);
    log_reset(&c);
    weft_sched_id a, b, d;
    CHECK_OK(weft_sched_enter(s, 1, 0, rec, V(1), &a));
    CHECK_OK(weft_sched_enter(s, 2, 0, rec, V(2), &b));
    CHECK_OK(weft_sched_enter(s, 3, 0, rec, V(3), &d));
    CHECK(a != b && b != d && a != d);
    CHECK_OK(weft_sched_cancel(s, b));
    CHECK_ERR(weft_sched_cancel(s, b), WEFT_ENOENT); /* twice: ValueError */
    size_t n = 0;
    CHECK_OK(weft_sched_queue(s, NULL, 0, &n));
    CHECK_EQ_INT(n, 2);
    CHECK_OK(weft_sched_run(s, true, NULL));
    CHECK_EQ_INT(atomic_load(&log_n), 2);
    CHECK_EQ_INT(log_v[0], 1);
    CHECK_EQ_INT(log_v[1], 3);
    CHECK_OK(weft_sched_destroy(s));
}

TEST(cancel_of_an_event_that_ran_is_enoent)
{
    vclock c = {0};
    weft_sched *s = make_virtual(&c);
    REQUIRE(s);
    log_reset(&c);
    weft_sched_id a, b;
    CHECK_OK(weft_sched_enter(s, 0, 0, rec, V(1), &a));
    CHECK_OK(weft_sched_run(s, true, NULL));
    CHECK_ERR(weft_sched_cancel(s, a), WEFT_ENOENT);
    /* the slot is reused, but the stale id still names nothing */
    CHECK_OK(weft_sched_enter(s, 1, 0, rec, V(2), &b));
    CHECK(a != b);
    CHECK_ERR(weft_sched_cancel(s, a), WEFT_ENOENT);
    CHECK_ERR(weft_sched_cancel(s, 0), WEFT_ENOENT);
    CHECK_ERR(weft_sched_cancel(s, 0xdead00000001ull), WEFT_ENOENT);
    CHECK_OK(weft_sched_cancel(s, b));
    CHECK_OK(weft_sched_destroy(s));
}

TEST(nonblocking_run_returns_time_to_next_event)
{
    vclock c = {0};
    weft_sched *s = make_virtual(&c);
    REQUIRE(s);
    log_reset(&c);
    CHECK_OK(weft_sched_enter(s, 1, 0, rec, V(1), NULL));
    CHECK_OK(weft_sched_enter(s, 3, 0, rec, V(2), NULL));
    double next = -1;
    CHECK_OK(weft_sched_run(s, false, &next));
    CHECK_EQ_INT(atomic_load(&log_n), 0);
    CHECK(next == 1.0);
    c.now = 1.5;
    CHECK_OK(weft_sched_run(s, false, &next));
    CHECK_EQ_INT(atomic_load(&log_n), 1);
    CHECK(next == 1.5);
    c.now = 5;
    CHECK_OK(weft_sched_run(s, false, &next));
    CHECK_EQ_INT(atomic_load(&log_n), 2);
    CHECK(next == WEFT_FOREVER);
    CHECK_EQ_INT(c.delays, 0); /* non-blocking never sleeps */
    CHECK_OK(weft_sched_run(s, false, NULL));
    CHECK_OK(weft_sched_destroy(s));
}

TEST(blocking_run_sleeps_with_delayfunc_until_empty)
{
    vclock c = {0};
    weft_sched *s = make_virtual(&c);
    REQUIRE(s);
    log_reset(&c);
    for (int i = 0; i < 5; i++) CHECK_OK(weft_sched_enter(s, 2.0 * (i + 1), 0, rec, V(i), NULL));
    CHECK_OK(weft_sched_run(s, true, NULL));
    CHECK_EQ_INT(atomic_load(&log_n), 5);
    CHECK(c.now == 10.0);
    CHECK_EQ_INT(c.delays, 5);
    CHECK_EQ_INT(c.zero_delays, 5); /* delayfunc(0) after each event, as Python */
    CHECK(weft_sched_empty(s));
    CHECK_OK(weft_sched_run(s, true, NULL)); /* empty: returns at once */
    CHECK_OK(weft_sched_destroy(s));
}

TEST(queue_lists_in_run_order)
{
    vclock c = {0};
    weft_sched *s = make_virtual(&c);
    REQUIRE(s);
    weft_sched_id id[6];
    CHECK_OK(weft_sched_enterabs(s, 5, 0, rec, V(0), &id[0]));
    CHECK_OK(weft_sched_enterabs(s, 1, 2, rec, V(0), &id[1]));
    CHECK_OK(weft_sched_enterabs(s, 1, 1, rec, V(0), &id[2]));
    CHECK_OK(weft_sched_enterabs(s, 3, 0, rec, V(0), &id[3]));
    CHECK_OK(weft_sched_enterabs(s, 1, 1, rec, V(0), &id[4]));
    CHECK_OK(weft_sched_enterabs(s, 0, 9, rec, V(0), &id[5]));
    const int order[] = {5, 2, 4, 1, 3, 0};
    weft_sched_entry e[8];
    size_t n = 0;
    CHECK_OK(weft_sched_queue(s, e, 8, &n));
    CHECK_EQ_INT(n, 6);
    for (int i = 0; i < 6; i++) CHECK_EQ_U64(e[i].id, id[order[i]]);
    CHECK(e[0].time == 0 && e[0].priority == 9);
    CHECK(e[1].time == 1 && e[1].priority == 1);
    CHECK(e[5].time == 5);
    /* a small buffer gets the first entries and the full count */
    weft_sched_entry two[2];
    CHECK_OK(weft_sched_queue(s, two, 2, &n));
    CHECK_EQ_INT(n, 6);
    CHECK_EQ_U64(two[0].id, id[5]);
    CHECK_EQ_U64(two[1].id, id[2]);
    CHECK_OK(weft_sched_cancel(s, id[2]));
    CHECK_OK(weft_sched_queue(s, e, 8, &n));
    CHECK_EQ_INT(n, 5);
    CHECK_EQ_U64(e[1].id, id[4]);
    CHECK_OK(weft_sched_destroy(s));
}

TEST(empty)
{
    vclock c = {0};
    weft_sched *s = make_virtual(&c);
    REQUIRE(s);
    CHECK(weft_sched_empty(s));
    weft_sched_id a;
    CHECK_OK(weft_sched_enter(s, 1, 0, rec, V(0), &a));
    CHECK(!weft_sched_empty(s));
    CHECK_OK(weft_sched_cancel(s, a));
    CHECK(weft_sched_empty(s));
    CHECK(weft_sched_empty(NULL));
    CHECK_OK(weft_sched_destroy(s));
}

/* A heap check: many events, random times and priorities, random cancels;
 * what runs comes out in (time, priority, insertion) order. */
static int seen_count;
static double seen_time[2000];
static int seen_prio[2000];
static int seen_idx[2000];
static vclock *seen_clock;
typedef struct ev_info {
    int idx;
    int prio;
} ev_info;

static void seen(void *arg)
{
    ev_info *e = arg;
    seen_time[seen_count] = seen_clock->now;
    seen_prio[seen_count] = e->prio;
    seen_idx[seen_count] = e->idx;
    seen_count++;
}

TEST(random_events_come_out_in_order)
{
    vclock c = {0};
    weft_sched *s = make_virtual(&c);
    REQUIRE(s);
    seen_count = 0;
    seen_clock = &c;
    enum {
        N = 2000
    };
    static ev_info info[N];
    static weft_sched_id ids[N];
    static bool cancelled[N];
    weft_rng r;
    weft_rng_seed(&r, 42);
    for (int i = 0; i < N; i++) {
        info[i].idx = i;
        info[i].prio = (int)weft_rng_range(&r, -3, 3);
        double t = (double)weft_rng_range(&r, 0, 50);
        cancelled[i] = false;
        CHECK_OK(weft_sched_enterabs(s, t, info[i].prio, seen, &info[i], &ids[i]));
    }
    int ncancel = 0;
    for (int i = 0; i < N; i += 3) {
        CHECK_OK(weft_sched_cancel(s, ids[i]));
        cancelled[i] = true;
        ncancel++;
    }
    CHECK_OK(weft_sched_run(s, true, NULL));
    CHECK_EQ_INT(seen_count, N - ncancel);
    for (int k = 0; k < seen_count; k++) {
        CHECK(!cancelled[seen_idx[k]]);
        if (k == 0) continue;
        bool ok = seen_time[k - 1] < seen_time[k] ||
                  (seen_time[k - 1] == seen_time[k] &&
                   (seen_prio[k - 1] < seen_prio[k] ||
                    (seen_prio[k - 1] == seen_prio[k] && seen_idx[k - 1] < seen_idx[k])));
        CHECK_MSG(ok, "out of order at %d", k);
    }
    CHECK_OK(weft_sched_destroy(s));
}

/* ---- re-entrancy: callbacks enter and cancel ---- */

typedef struct reenter {
    weft_sched *s;
    weft_sched_id victim;
    int rc_cancel, rc_enter;
} reenter;

static void spawner(void *arg)
{
    reenter *r = arg;
    rec(V(1));
    r->rc_enter = weft_sched_enter(r->s, 0, 0, rec, V(2), NULL);
    if (!r->rc_enter) r->rc_enter = weft_sched_enter(r->s, 1, 0, rec, V(3), NULL);
    r->rc_cancel = weft_sched_cancel(r->s, r->victim);
}

TEST(callback_enters_and_cancels_events)
{
    vclock c = {0};
    weft_sched *s = make_virtual(&c);
    REQUIRE(s);
    log_reset(&c);
    reenter r = {.s = s, .rc_cancel = 1, .rc_enter = 1};
    CHECK_OK(weft_sched_enter(s, 0, 0, spawner, &r, NULL));
    CHECK_OK(weft_sched_enter(s, 0.5, 0, rec, V(99), &r.victim));
    CHECK_OK(weft_sched_run(s, true, NULL));
    CHECK_EQ_INT(r.rc_enter, 0);
    CHECK_EQ_INT(r.rc_cancel, 0);
    CHECK_EQ_INT(atomic_load(&log_n), 3);
    CHECK_EQ_INT(log_v[0], 1);
    CHECK_EQ_INT(log_v[1], 2);
    CHECK_EQ_INT(log_v[2], 3);
    CHECK(log_t[2] == 1.0);
    CHECK_OK(weft_sched_destroy(s));
}

typedef struct selfstop {
    weft_sched *s;
    int rc_stop, rc_destroy;
} selfstop;

static void try_stop(void *arg)
{
    selfstop *x = arg;
    x->rc_stop = weft_sched_stop(x->s, WEFT_SCHED_STOP_CANCEL);
    x->rc_destroy = weft_sched_destroy(x->s);
}

TEST(stop_or_destroy_from_a_callback_is_edeadlk)
{
    vclock c = {0};
    weft_sched *s = make_virtual(&c);
    REQUIRE(s);
    selfstop x = {.s = s};
    CHECK_OK(weft_sched_enter(s, 0, 0, try_stop, &x, NULL));
    CHECK_OK(weft_sched_run(s, true, NULL));
    CHECK_EQ_INT(x.rc_stop, WEFT_EDEADLK);
    CHECK_EQ_INT(x.rc_destroy, WEFT_EDEADLK);
    CHECK_OK(weft_sched_destroy(s));
}

/* ---- periodic events, virtual clock ---- */

typedef struct ticker {
    weft_sched *s;
    vclock *c;
    weft_sched_id id;
    int runs, max_runs;
    double work; /* virtual seconds each run takes */
    double at[64];
    int rc_cancel;
} ticker;

static void tick(void *arg)
{
    ticker *t = arg;
    if (t->runs < 64) t->at[t->runs] = t->c->now;
    t->runs++;
    t->c->now += t->work;
    if (t->max_runs && t->runs == t->max_runs) t->rc_cancel = weft_sched_cancel(t->s, t->id);
}

TEST(periodic_fixed_rate_keeps_the_grid)
{
    vclock c = {0};
    weft_sched *s = make_virtual(&c);
    REQUIRE(s);
    ticker t = {.s = s, .c = &c, .max_runs = 5, .work = 0.25, .rc_cancel = 1};
    CHECK_OK(weft_sched_enter_periodic(s, 0, 1.0, WEFT_SCHED_FIXED_RATE, 0, tick, &t, &t.id));
    CHECK_OK(weft_sched_run(s, true, NULL)); /* ends: the 5th run cancels itself */
    CHECK_EQ_INT(t.runs, 5);
    CHECK_EQ_INT(t.rc_cancel, 0);
    for (int i = 0; i < 5; i++) CHECK_MSG(t.at[i] == (double)i, "run %d at %g", i, t.at[i]);
    CHECK(weft_sched_empty(s));
    CHECK_ERR(weft_sched_cancel(s, t.id), WEFT_ENOENT);
    CHECK_OK(weft_sched_destroy(s));
}

TEST(periodic_fixed_delay_counts_from_the_end_of_a_run)
{
    vclock c = {0};
    weft_sched *s = make_virtual(&c);
    REQUIRE(s);
    ticker t = {.s = s, .c = &c, .max_runs = 5, .work = 0.25, .rc_cancel = 1};
    CHECK_OK(weft_sched_enter_periodic(s, 0, 1.0, WEFT_SCHED_FIXED_DELAY, 0, tick, &t, &t.id));
    CHECK_OK(weft_sched_run(s, true, NULL));
    CHECK_EQ_INT(t.runs, 5);
    for (int i = 0; i < 5; i++) CHECK_MSG(t.at[i] == 1.25 * i, "run %d at %g", i, t.at[i]);
    CHECK_OK(weft_sched_destroy(s));
}

TEST(periodic_fixed_rate_catches_up_and_counts_exactly)
{
    vclock c = {0};
    weft_sched *s = make_virtual(&c);
    REQUIRE(s);
    ticker t = {.s = s, .c = &c};
    CHECK_OK(weft_sched_enter_periodic(s, 0.5, 0.5, WEFT_SCHED_FIXED_RATE, 0, tick, &t, &t.id));
    c.now = 10.0; /* a stall: runs at 0.5, 1.0, ..., 10.0 are all due */
    double next = 0;
    CHECK_OK(weft_sched_run(s, false, &next));
    CHECK_EQ_INT(t.runs, 20);
    CHECK(next == 0.5);
    CHECK(!weft_sched_empty(s));
    c.now = 12.25;
    CHECK_OK(weft_sched_run(s, false, &next));
    CHECK_EQ_INT(t.runs, 24);
    CHECK(next == 0.25);
    /* fixed delay, same stall: one run, then one period after it */
    weft_sched_id d;
    ticker u = {.s = s, .c = &c};
    CHECK_OK(weft_sched_enter_periodic(s, 0, 0.5, WEFT_SCHED_FIXED_DELAY, 0, tick, &u, &d));
    c.now = 20.0;
    CHECK_OK(weft_sched_run(s, false, &next));
    CHECK_EQ_INT(u.runs, 1);
    CHECK_OK(weft_sched_cancel(s, t.id));
    CHECK_OK(weft_sched_cancel(s, d));
    CHECK_ERR(weft_sched_cancel(s, d), WEFT_ENOENT);
    CHECK(weft_sched_empty(s));
    CHECK_OK(weft_sched_destroy(s));
}

TEST(periodic_cancel_between_runs)
{
    vclock c = {0};
    weft_sched *s = make_virtual(&c);
    REQUIRE(s);
    ticker t = {.s = s, .c = &c};
    CHECK_OK(weft_sched_enter_periodic(s, 1, 1, WEFT_SCHED_FIXED_RATE, 0, tick, &t, &t.id));
    for (int i = 1; i <= 3; i++) {
        c.now = i;
        CHECK_OK(weft_sched_run(s, false, NULL));
    }
    CHECK_EQ_INT(t.runs, 3);
    CHECK_OK(weft_sched_cancel(s, t.id));
    c.now = 100;
    CHECK_OK(weft_sched_run(s, false, NULL));
    CHECK_EQ_INT(t.runs, 3);
    CHECK_OK(weft_sched_destroy(s));
}

/* ---- stop ---- */

TEST(stop_drain_runs_one_shots_and_cancels_periodic)
{
    vclock c = {0};
    weft_sched *s = make_virtual(&c);
    REQUIRE(s);
    log_reset(&c);
    ticker t = {.s = s, .c = &c};
    CHECK_OK(weft_sched_enter_periodic(s, 0.5, 1, WEFT_SCHED_FIXED_RATE, 0, tick, &t, &t.id));
    CHECK_OK(weft_sched_enter(s, 2, 0, rec, V(2), NULL));
    CHECK_OK(weft_sched_enter(s, 1, 0, rec, V(1), NULL));
    CHECK_OK(weft_sched_stop(s, WEFT_SCHED_STOP_DRAIN));
    CHECK_EQ_INT(atomic_load(&log_n), 2);
    CHECK_EQ_INT(log_v[0], 1);
    CHECK_EQ_INT(log_v[1], 2);
    CHECK(c.now == 2.0);
    CHECK_EQ_INT(t.runs, 0);
    CHECK(weft_sched_empty(s));
    CHECK_ERR(weft_sched_enter(s, 0, 0, rec, V(3), NULL), WEFT_ECLOSED);
    CHECK_OK(weft_sched_stop(s, WEFT_SCHED_STOP_CANCEL)); /* idempotent */
    CHECK_OK(weft_sched_destroy(s));
}

TEST(stop_cancel_drops_pending_events)
{
    vclock c = {0};
    weft_sched *s = make_virtual(&c);
    REQUIRE(s);
    log_reset(&c);
    CHECK_OK(weft_sched_enter(s, 1, 0, rec, V(1), NULL));
    CHECK_OK(weft_sched_stop(s, WEFT_SCHED_STOP_CANCEL));
    CHECK(weft_sched_empty(s));
    c.now = 5;
    CHECK_OK(weft_sched_run(s, true, NULL));
    CHECK_EQ_INT(atomic_load(&log_n), 0);
    CHECK_ERR(weft_sched_enter(s, 0, 0, rec, V(3), NULL), WEFT_ECLOSED);
    CHECK_OK(weft_sched_destroy(s));
}

/* ---- background scheduler, real clock ---- */

typedef struct stamp {
    double due; /* not before this (real clock) */
    double ran;
    int order;
    atomic_int *counter;
} stamp;

static void stamp_run(void *arg)
{
    stamp *st = arg;
    st->ran = weft_now();
    st->order = atomic_fetch_add(st->counter, 1);
}

static weft_sched *make_background(weft_executor *ex)
{
    weft_sched_options o = {0};
    o.background = true;
    o.executor = ex;
    weft_sched *s = NULL;
    CHECK_OK(weft_sched_create(&o, &s));
    return s;
}

TEST(background_runs_in_time_order_never_early)
{
    weft_sched *s = make_background(NULL);
    REQUIRE(s);
    atomic_int counter = 0;
    const double delays[] = {0.06, 0.01, 0.04, 0.02};
    stamp st[4];
    double base = weft_now(); /* absolute times: the order cannot depend on preemption */
    for (int i = 0; i < 4; i++) {
        st[i] = (stamp){.due = base + delays[i], .counter = &counter};
        CHECK_OK(weft_sched_enterabs(s, base + delays[i], 0, stamp_run, &st[i], NULL));
    }
    CHECK(check_wait_atomic(&counter, 4, 30));
    CHECK_OK(weft_sched_destroy(s)); /* joins: the stamps are visible */
    CHECK_EQ_INT(st[1].order, 0);
    CHECK_EQ_INT(st[3].order, 1);
    CHECK_EQ_INT(st[2].order, 2);
    CHECK_EQ_INT(st[0].order, 3);
    for (int i = 0; i < 4; i++)
        CHECK_MSG(st[i].ran >= st[i].due, "event %d ran %.6f s early", i, st[i].due - st[i].ran);
}

TEST(background_run_is_ebusy)
{
    weft_sched *s = make_background(NULL);
    REQUIRE(s);
    CHECK_ERR(weft_sched_run(s, false, NULL), WEFT_EBUSY);
    CHECK_OK(weft_sched_destroy(s));
}

TEST(background_wakes_early_for_an_earlier_event)
{
    weft_sched *s = make_background(NULL);
    REQUIRE(s);
    atomic_int counter = 0;
    stamp late = {.counter = &counter}, early = {.counter = &counter};
    CHECK_OK(weft_sched_enter(s, 30, 0, stamp_run, &late, NULL));
    check_sleep(0.02); /* the thread now sleeps until +30 s */
    double t0 = weft_now();
    early.due = t0 + 0.01;
    CHECK_OK(weft_sched_enter(s, 0.01, 0, stamp_run, &early, NULL));
    CHECK(check_wait_atomic(&counter, 1, 10)); /* far sooner than 30 s */
    double took = weft_now() - t0;
    CHECK_MSG(took < 10, "the early event took %.3f s", took);
    CHECK_OK(weft_sched_destroy(s)); /* cancels the late one */
    CHECK_EQ_INT(atomic_load(&counter), 1);
    CHECK(early.ran >= early.due);
    CHECK(late.ran == 0);
}

typedef struct enterer {
    weft_sched *s;
    int base;
    stamp *st;
    int n;
    int errors;
} enterer;

static void *enter_thread(void *p)
{
    enterer *e = p;
    weft_rng r;
    weft_rng_seed(&r, (uint64_t)e->base + 1);
    for (int i = 0; i < e->n; i++) {
        double d = (double)weft_rng_range(&r, 0, 20) * 1e-3;
        stamp *st = &e->st[e->base + i];
        st->due = weft_now() + d;
        if (weft_sched_enter(e->s, d, 0, stamp_run, st, NULL)) e->errors++;
    }
    return NULL;
}

TEST(background_accepts_events_from_many_threads)
{
    weft_sched *s = make_background(NULL);
    REQUIRE(s);
    enum {
        T = 4,
        PER = 100
    };
    static stamp st[T * PER];
    atomic_int counter = 0;
    for (int i = 0; i < T * PER; i++) st[i] = (stamp){.counter = &counter};
    pthread_t th[T];
    enterer e[T];
    for (int t = 0; t < T; t++) {
        e[t] = (enterer){.s = s, .base = t * PER, .st = st, .n = PER};
        REQUIRE(pthread_create(&th[t], NULL, enter_thread, &e[t]) == 0);
    }
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        CHECK_EQ_INT(e[t].errors, 0);
    }
    CHECK(check_wait_atomic(&counter, T * PER, 30));
    CHECK_OK(weft_sched_destroy(s));
    CHECK_EQ_INT(atomic_load(&counter), T * PER);
    for (int i = 0; i < T * PER; i++) CHECK_MSG(st[i].ran >= st[i].due, "event %d early", i);
}

typedef struct rticker {
    atomic_int runs;
    double last;
} rticker;

static void rtick(void *arg)
{
    rticker *t = arg;
    t->last = weft_now();
    atomic_fetch_add(&t->runs, 1);
}

TEST(background_periodic_until_cancelled)
{
    weft_sched *s = make_background(NULL);
    REQUIRE(s);
    rticker a = {0}, b = {0};
    weft_sched_id ia, ib;
    double t0 = weft_now();
    CHECK_OK(weft_sched_enter_periodic(s, 0, 0.005, WEFT_SCHED_FIXED_RATE, 0, rtick, &a, &ia));
    CHECK_OK(weft_sched_enter_periodic(s, 0, 0.005, WEFT_SCHED_FIXED_DELAY, 0, rtick, &b, &ib));
    CHECK(check_wait_atomic(&a.runs, 5, 30));
    CHECK(check_wait_atomic(&b.runs, 5, 30));
    CHECK_OK(weft_sched_cancel(s, ia));
    CHECK_OK(weft_sched_cancel(s, ib));
    double t1 = weft_now();
    int ra = atomic_load(&a.runs), rb = atomic_load(&b.runs);
    check_sleep(0.05);
    /* a run already started when cancel returned may still finish */
    CHECK(atomic_load(&a.runs) <= ra + 1);
    CHECK(atomic_load(&b.runs) <= rb + 1);
    /* fixed rate: never more runs than the grid allows */
    CHECK_MSG(ra <= (int)((t1 - t0) / 0.005) + 2, "%d runs in %.3f s", ra, t1 - t0);
    CHECK_OK(weft_sched_destroy(s));
}

TEST(background_stop_drain_runs_pending_events)
{
    weft_sched *s = make_background(NULL);
    REQUIRE(s);
    atomic_int counter = 0;
    stamp st[3];
    for (int i = 0; i < 3; i++) {
        double d = 0.01 * (i + 1);
        st[i] = (stamp){.due = weft_now() + d, .counter = &counter};
        CHECK_OK(weft_sched_enter(s, d, 0, stamp_run, &st[i], NULL));
    }
    rticker p = {0};
    CHECK_OK(weft_sched_enter_periodic(s, 0.001, 0.001, WEFT_SCHED_FIXED_RATE, 0, rtick, &p, NULL));
    CHECK_OK(weft_sched_stop(s, WEFT_SCHED_STOP_DRAIN));
    CHECK_EQ_INT(atomic_load(&counter), 3);
    for (int i = 0; i < 3; i++) CHECK(st[i].ran >= st[i].due);
    CHECK_ERR(weft_sched_enter(s, 0, 0, rec, V(0), NULL), WEFT_ECLOSED);
    CHECK_OK(weft_sched_destroy(s));
}

TEST(background_destroy_with_pending_events_cancels_them)
{
    weft_sched *s = make_background(NULL);
    REQUIRE(s);
    atomic_int counter = 0;
    stamp st = {.counter = &counter};
    for (int i = 0; i < 100; i++) CHECK_OK(weft_sched_enter(s, 60 + i, i, stamp_run, &st, NULL));
    CHECK_OK(weft_sched_enter_periodic(s, 60, 1, WEFT_SCHED_FIXED_RATE, 0, stamp_run, &st, NULL));
    double t0 = weft_now();
    CHECK_OK(weft_sched_destroy(s));
    CHECK(weft_now() - t0 < 10);
    CHECK_EQ_INT(atomic_load(&counter), 0);
}

/* A foreground blocking run with the default delayfunc sleeps on a condition
 * variable: an earlier event entered from another thread wakes it. */
typedef struct fg_run {
    weft_sched *s;
    int rc;
} fg_run;

static void *fg_runner(void *p)
{
    fg_run *r = p;
    r->rc = weft_sched_run(r->s, true, NULL);
    return NULL;
}

TEST(foreground_blocking_run_wakes_early_and_ends_on_stop)
{
    weft_sched *s = NULL;
    CHECK_OK(weft_sched_create(NULL, &s));
    REQUIRE(s);
    atomic_int counter = 0;
    stamp late = {.counter = &counter}, early = {.counter = &counter};
    CHECK_OK(weft_sched_enter(s, 30, 0, stamp_run, &late, NULL));
    fg_run r = {.s = s, .rc = 1};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, fg_runner, &r) == 0);
    check_sleep(0.02);
    early.due = weft_now() + 0.005;
    CHECK_OK(weft_sched_enter(s, 0.005, 0, stamp_run, &early, NULL));
    CHECK(check_wait_atomic(&counter, 1, 10));
    CHECK_OK(weft_sched_stop(s, WEFT_SCHED_STOP_CANCEL)); /* ends the run */
    pthread_join(th, NULL);
    CHECK_EQ_INT(r.rc, 0);
    CHECK(early.ran >= early.due);
    CHECK_EQ_INT(atomic_load(&counter), 1);
    CHECK_OK(weft_sched_destroy(s));
}

/* ---- hand-off to an executor ---- */

static int square(weft_ctx *ctx, const void *in, size_t len)
{
    int64_t v;
    if (len != sizeof v) return weft_ctx_fail(ctx, WEFT_EINVAL, "want 8 bytes, got %zu", len);
    memcpy(&v, in, sizeof v);
    v *= v;
    return weft_ctx_set_output(ctx, &v, sizeof v);
}
WEFT_TASK_REGISTER(square);

typedef struct collected {
    pthread_mutex_t mu;
    weft_future *f[64];
    weft_sched_id id[64];
    int rc[64];
    atomic_int n;
} collected;

static void collect(void *arg, weft_sched_id id, int rc, weft_future *f)
{
    collected *c = arg;
    pthread_mutex_lock(&c->mu);
    int i = atomic_load(&c->n);
    if (i < 64) {
        c->id[i] = id;
        c->rc[i] = rc;
        c->f[i] = f;
        if (f) weft_future_retain(f);
    }
    atomic_store(&c->n, i + 1);
    pthread_mutex_unlock(&c->mu);
}

static weft_executor *make_ex(void)
{
    weft_options o = {0};
    o.backend = WEFT_BACKEND_THREADS;
    o.workers = 2;
    weft_executor *ex = NULL;
    CHECK_OK(weft_executor_create(&o, &ex));
    return ex;
}

TEST(task_events_go_to_the_executor_virtual_clock)
{
    weft_executor *ex = make_ex();
    REQUIRE(ex);
    vclock c = {0};
    collected col = {.mu = PTHREAD_MUTEX_INITIALIZER};
    weft_sched_options o = {0};
    o.timefunc = vtime;
    o.delayfunc = vdelay;
    o.clock_arg = &c;
    o.executor = ex;
    o.on_submit = collect;
    o.submit_arg = &col;
    weft_sched *s = NULL;
    CHECK_OK(weft_sched_create(&o, &s));
    REQUIRE(s);
    weft_sched_id ids[5];
    for (int64_t i = 0; i < 5; i++) {
        int64_t v = i + 1; /* copied: the local may change after enter */
        CHECK_OK(weft_sched_enter_task(s, (double)(5 - i), 0, square, &v, sizeof v, &ids[i]));
    }
    CHECK_OK(weft_sched_run(s, true, NULL));
    REQUIRE(atomic_load(&col.n) == 5);
    for (int k = 0; k < 5; k++) {
        /* due at 5 - i: submitted in reverse order of entry */
        int i = 4 - k;
        CHECK_EQ_U64(col.id[k], ids[i]);
        CHECK_EQ_INT(col.rc[k], 0);
        const void *out;
        size_t len;
        CHECK_OK(weft_future_result(col.f[k], 30, &out, &len));
        int64_t v = 0;
        if (len == sizeof v) memcpy(&v, out, sizeof v);
        CHECK_EQ_INT(v, (int64_t)(i + 1) * (i + 1));
        weft_future_release(col.f[k]);
    }
    CHECK_OK(weft_sched_destroy(s));
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(task_events_background_and_periodic)
{
    weft_executor *ex = make_ex();
    REQUIRE(ex);
    collected col = {.mu = PTHREAD_MUTEX_INITIALIZER};
    weft_sched_options o = {0};
    o.background = true;
    o.executor = ex;
    o.on_submit = collect;
    o.submit_arg = &col;
    weft_sched *s = NULL;
    CHECK_OK(weft_sched_create(&o, &s));
    REQUIRE(s);
    int64_t seven = 7;
    weft_sched_event ev = {.time = 0.001,
                           .period = 0.005,
                           .mode = WEFT_SCHED_FIXED_RATE,
                           .task = square,
                           .in = &seven,
                           .len = sizeof seven};
    weft_sched_id pid;
    CHECK_OK(weft_sched_enter_ex(s, &ev, &pid));
    CHECK(check_wait_atomic(&col.n, 4, 30));
    CHECK_OK(weft_sched_cancel(s, pid));
    CHECK_OK(weft_sched_destroy(s)); /* joined: no more submits */
    int n = atomic_load(&col.n);
    CHECK(n >= 4); /* only the first 64 futures were kept */
    for (int k = 0; k < n && k < 64; k++) {
        CHECK_EQ_U64(col.id[k], pid);
        CHECK_EQ_INT(col.rc[k], 0);
        const void *out;
        size_t len;
        CHECK_OK(weft_future_result(col.f[k], 30, &out, &len));
        int64_t v = 0;
        if (len == sizeof v) memcpy(&v, out, sizeof v);
        CHECK_EQ_INT(v, 49);
        weft_future_release(col.f[k]);
    }
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(task_event_on_a_shut_down_executor_reports_eclosed)
{
    weft_executor *ex = make_ex();
    REQUIRE(ex);
    vclock c = {0};
    collected col = {.mu = PTHREAD_MUTEX_INITIALIZER};
    weft_sched_options o = {.timefunc = vtime,
                            .delayfunc = vdelay,
                            .clock_arg = &c,
                            .executor = ex,
                            .on_submit = collect,
                            .submit_arg = &col};
    weft_sched *s = NULL;
    CHECK_OK(weft_sched_create(&o, &s));
    REQUIRE(s);
    int64_t v = 3;
    CHECK_OK(weft_sched_enter_task(s, 1, 0, square, &v, sizeof v, NULL));
    CHECK_OK(weft_executor_shutdown(ex, WEFT_SHUTDOWN_WAIT));
    CHECK_OK(weft_sched_run(s, true, NULL));
    CHECK_EQ_INT(atomic_load(&col.n), 1);
    CHECK_EQ_INT(col.rc[0], WEFT_ECLOSED);
    CHECK(col.f[0] == NULL);
    CHECK_OK(weft_sched_destroy(s));
    CHECK_OK(weft_executor_destroy(ex));
}

TEST(destroy_with_pending_task_events_frees_their_inputs)
{
    weft_executor *ex = make_ex();
    REQUIRE(ex);
    vclock c = {0};
    weft_sched_options o = {
        .timefunc = vtime, .delayfunc = vdelay, .clock_arg = &c, .executor = ex};
    weft_sched *s = NULL;
    CHECK_OK(weft_sched_create(&o, &s));
    REQUIRE(s);
    char big[1000] = {0};
    for (int i = 0; i < 50; i++)
        CHECK_OK(weft_sched_enter_task(s, 1 + i, 0, square, big, sizeof big, NULL));
    weft_sched_event ev = {.time = 1, .period = 1, .task = square, .in = big, .len = 10};
    CHECK_OK(weft_sched_enter_ex(s, &ev, NULL));
    weft_sched_id gone;
    CHECK_OK(weft_sched_enter_task(s, 1, 0, square, big, sizeof big, &gone));
    CHECK_OK(weft_sched_cancel(s, gone));
    CHECK_OK(weft_sched_destroy(s)); /* ASan's leak check sees the rest */
    CHECK_OK(weft_executor_destroy(ex));
}

/* ---- bad input ---- */

static double bad_time(void *a)
{
    (void)a;
    return 0;
}

TEST(bad_input_is_einval_with_a_message)
{
    weft_sched *s = NULL;
    CHECK_ERR(weft_sched_create(NULL, NULL), WEFT_EINVAL);
    weft_sched_options o = {.on_submit = collect};
    CHECK_ERR(weft_sched_create(&o, &s), WEFT_EINVAL);
    CHECK(s == NULL);
    weft_sched_options vo = {.timefunc = bad_time};
    CHECK_OK(weft_sched_create(&vo, &s));
    REQUIRE(s);
    weft_sched_id id = 123;
    CHECK_ERR(weft_sched_enter(NULL, 1, 0, rec, NULL, &id), WEFT_EINVAL);
    CHECK_EQ_U64(id, 0);
    CHECK_ERR(weft_sched_enter(s, 1, 0, NULL, NULL, &id), WEFT_EINVAL);
    CHECK_ERR(weft_sched_enter(s, NAN, 0, rec, NULL, &id), WEFT_EINVAL);
    CHECK_ERR(weft_sched_enter(s, -1, 0, rec, NULL, &id), WEFT_EINVAL);
    CHECK_ERR(weft_sched_enter(s, -0.0001, 0, rec, NULL, &id), WEFT_EINVAL);
    CHECK_ERR(weft_sched_enter(s, INFINITY, 0, rec, NULL, &id), WEFT_EINVAL);
    CHECK_ERR(weft_sched_enterabs(s, NAN, 0, rec, NULL, &id), WEFT_EINVAL);
    CHECK_ERR(weft_sched_enterabs(s, INFINITY, 0, rec, NULL, &id), WEFT_EINVAL);
    CHECK_ERR(weft_sched_enterabs(s, 1, 0, NULL, NULL, &id), WEFT_EINVAL);
    CHECK_ERR(weft_sched_enter_periodic(s, 0, 0, WEFT_SCHED_FIXED_RATE, 0, rec, NULL, &id),
              WEFT_EINVAL);
    CHECK_ERR(weft_sched_enter_periodic(s, 0, -1, WEFT_SCHED_FIXED_RATE, 0, rec, NULL, &id),
              WEFT_EINVAL);
    CHECK_ERR(weft_sched_enter_periodic(s, 0, NAN, WEFT_SCHED_FIXED_RATE, 0, rec, NULL, &id),
              WEFT_EINVAL);
    CHECK_ERR(weft_sched_enter_periodic(s, 0, INFINITY, WEFT_SCHED_FIXED_RATE, 0, rec, NULL, &id),
              WEFT_EINVAL);
    CHECK_ERR(weft_sched_enter_periodic(s, NAN, 1, WEFT_SCHED_FIXED_RATE, 0, rec, NULL, &id),
              WEFT_EINVAL);
    CHECK_ERR(weft_sched_enter_periodic(s, 0, 1, (weft_sched_period_mode)7, 0, rec, NULL, &id),
              WEFT_EINVAL);
    /* a task event needs an executor */
    CHECK_ERR(weft_sched_enter_task(s, 0, 0, square, NULL, 0, &id), WEFT_EINVAL);
    CHECK_ERR(weft_sched_enter_task(s, 0, 0, NULL, NULL, 0, &id), WEFT_EINVAL);
    weft_sched_event both = {.fn = rec, .task = square};
    CHECK_ERR(weft_sched_enter_ex(s, &both, &id), WEFT_EINVAL);
    weft_sched_event none = {.time = 1};
    CHECK_ERR(weft_sched_enter_ex(s, &none, &id), WEFT_EINVAL);
    CHECK_ERR(weft_sched_enter_ex(s, NULL, &id), WEFT_EINVAL);
    CHECK_ERR(weft_sched_cancel(NULL, 1), WEFT_EINVAL);
    CHECK_ERR(weft_sched_run(NULL, false, NULL), WEFT_EINVAL);
    size_t n;
    weft_sched_entry e;
    CHECK_ERR(weft_sched_queue(s, &e, 1, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_sched_queue(NULL, &e, 1, &n), WEFT_EINVAL);
    CHECK_ERR(weft_sched_queue(s, NULL, 1, &n), WEFT_EINVAL);
    CHECK_ERR(weft_sched_stop(NULL, WEFT_SCHED_STOP_CANCEL), WEFT_EINVAL);
    CHECK_ERR(weft_sched_stop(s, (weft_sched_stop_mode)9), WEFT_EINVAL);
    CHECK(weft_sched_empty(s)); /* nothing bad got in */
    CHECK_OK(weft_sched_destroy(NULL));
    CHECK_OK(weft_sched_destroy(s));

    weft_executor *ex = make_ex();
    REQUIRE(ex);
    weft_sched_options xo = {.executor = ex};
    CHECK_OK(weft_sched_create(&xo, &s));
    REQUIRE(s);
    CHECK_ERR(weft_sched_enter_task(s, 0, 0, square, NULL, 4, &id), WEFT_EINVAL);
    CHECK_OK(weft_sched_enter_task(s, 0, 0, square, NULL, 0, &id)); /* empty input is fine */
    CHECK_OK(weft_sched_destroy(s));
    CHECK_OK(weft_executor_destroy(ex));
}
