/* test_options.c : every public options struct starts with `size_t size`
 * and is read through one helper: NULL and size 0 are the defaults (0 =
 * weft 0.2's layout), a struct of an older, shorter size is read only as
 * far as its size (the rest defaults: the struct is allocated at exactly
 * that size, so ASan sees any read past it), a struct smaller than its size
 * field is WEFT_EINVAL, and a newer, longer one is accepted while its
 * unknown tail is zero and refused with WEFT_ENOTSUP when the tail is set. */
#include <fcntl.h>

#include "check.h"

static int echo(weft_ctx *ctx, const void *in, size_t len)
{
    return weft_ctx_set_output(ctx, in, len);
}
WEFT_TASK_REGISTER(echo);

static weft_executor *EX; /* a threads executor for the calls that need one */

/* One public call that takes an options struct; 0 on success, and it
 * frees what it made. */
typedef int (*call_fn)(const void *opts);

static int call_submit(const void *o)
{
    weft_future *f = NULL;
    int rc = weft_submit_ex(EX, echo, "x", 1, o, &f);
    if (rc) return rc;
    rc = weft_future_result(f, WEFT_FOREVER, NULL, NULL);
    weft_future_release(f);
    return rc;
}

static int call_map(const void *o)
{
    weft_results *r = NULL;
    int rc = weft_map(EX, echo, "abc", 1, 3, o, &r);
    if (!rc && weft_results_count(r) != 3) rc = WEFT_ETASK;
    weft_results_destroy(r);
    return rc;
}

static int call_graph_create(const void *o)
{
    weft_graph *g = NULL;
    int rc = weft_graph_create(o, &g);
    weft_graph_destroy(g);
    return rc;
}

static int call_compute(const void *o)
{
    weft_graph *g = NULL;
    int rc = weft_graph_create(NULL, &g);
    if (rc) return rc;
    weft_node n;
    weft_arg a = weft_arg_bytes("q", 1);
    rc = weft_graph_call(g, echo, &a, 1, &n);
    if (!rc) rc = weft_graph_compute(g, EX, &n, 1, o);
    weft_graph_destroy(g);
    return rc;
}

static int call_parallel(const void *o)
{
    weft_call calls[2] = {{echo, "a", 1}, {echo, "b", 1}};
    weft_results *r = NULL;
    int rc = weft_parallel(calls, 2, o, &r);
    weft_results_destroy(r);
    return rc;
}

static int call_queue(const void *o)
{
    weft_queue *q = NULL;
    int rc = weft_queue_create(o, &q);
    weft_queue_destroy(q);
    return rc;
}

static int call_channel(const void *o)
{
    weft_channel *c = NULL;
    int rc = weft_channel_create(o, &c);
    weft_channel_destroy(c);
    return rc;
}

static int call_mpqueue(const void *o)
{
    weft_mpqueue *q = NULL;
    int rc = weft_mpqueue_create(o, &q);
    weft_mpqueue_destroy(q);
    return rc;
}

static int call_sched(const void *o)
{
    weft_sched *s = NULL;
    int rc = weft_sched_create(o, &s);
    weft_sched_destroy(s);
    return rc;
}

static void nothing(void *arg)
{
    (void)arg;
}

/* weft_sched_event: its defaults alone are no event (neither fn nor task),
 * so the call is checked with the fields of a 0.2 event set in `o`. */
static int call_sched_event(const void *o)
{
    weft_sched *s = NULL;
    int rc = weft_sched_create(NULL, &s);
    if (rc) return rc;
    weft_sched_id id = 0;
    rc = weft_sched_enter_ex(s, o, &id);
    weft_sched_destroy(s);
    return rc;
}

static int call_run(const void *o)
{
    weft_run_result r;
    int rc = weft_run((const char *[]){"true", NULL}, o, &r);
    weft_run_result_fini(&r);
    return rc;
}

static int devnull = -1;

/* weft_progress_options: `fd` is set to /dev/null in `o` when it has room */
static int call_progress(const void *o)
{
    weft_progress *p = NULL;
    int rc = weft_progress_create("options", 3, o, &p);
    weft_progress_add(p, 3);
    weft_progress_destroy(p);
    return rc;
}

static int call_svg(const void *o)
{
    return weft_trace_write_svg(EX, "t.svg", o);
}

typedef struct kind {
    const char *name;
    call_fn call;
    size_t size;        /* sizeof the struct in this header */
    const void *sample; /* a struct of this header (size field 0), or NULL: all defaults */
} kind;

static weft_sched_event sample_event;
static weft_progress_options sample_progress;

/* A copy of sample's first `size` bytes in a block of exactly `alloc` bytes
 * (zero past the copy), with its size field set to `size`. */
static void *sized(const kind *k, size_t size, size_t alloc)
{
    unsigned char *b = calloc(1, alloc ? alloc : 1);
    if (!b) return NULL;
    if (k->sample) memcpy(b, k->sample, size < k->size ? size : k->size);
    if (alloc >= sizeof(size_t)) memcpy(b, &size, sizeof size);
    return b;
}

TEST(every_options_struct_carries_its_size)
{
    weft_options eo = {.backend = WEFT_BACKEND_THREADS, .workers = 2};
    REQUIRE_OK(weft_executor_create(&eo, &EX));
    REQUIRE_OK(weft_trace_enable(EX));
    devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    REQUIRE(devnull >= 0);
    sample_event = (weft_sched_event){.time = 0, .fn = nothing};
    sample_progress = (weft_progress_options){.fd = devnull};
    const kind kinds[] = {
        {"weft_submit_options", call_submit, sizeof(weft_submit_options), NULL},
        {"weft_map_options", call_map, sizeof(weft_map_options), NULL},
        {"weft_graph_options", call_graph_create, sizeof(weft_graph_options), NULL},
        {"weft_compute_options", call_compute, sizeof(weft_compute_options), NULL},
        {"weft_parallel_options", call_parallel, sizeof(weft_parallel_options), NULL},
        {"weft_queue_options", call_queue, sizeof(weft_queue_options), NULL},
        {"weft_channel_options", call_channel, sizeof(weft_channel_options), NULL},
        {"weft_mpqueue_options", call_mpqueue, sizeof(weft_mpqueue_options), NULL},
        {"weft_sched_options", call_sched, sizeof(weft_sched_options), NULL},
        {"weft_sched_event", call_sched_event, sizeof(weft_sched_event), &sample_event},
        {"weft_run_opts", call_run, sizeof(weft_run_opts), NULL},
        {"weft_progress_options", call_progress, sizeof(weft_progress_options), &sample_progress},
        {"weft_svg_options", call_svg, sizeof(weft_svg_options), NULL},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        const kind *k = &kinds[i];
        printf("    %s\n", k->name);
        /* NULL (where a struct is optional) and size 0: the defaults */
        if (!k->sample) CHECK_OK(k->call(NULL));
        void *b = sized(k, k->size, k->size);
        REQUIRE(b);
        memset(b, 0, sizeof(size_t));
        CHECK_OK(k->call(b));
        free(b);
        /* this header's size */
        b = sized(k, k->size, k->size);
        REQUIRE(b);
        CHECK_OK(k->call(b));
        free(b);
        /* an older header: the struct ends earlier; for the structs whose
         * defaults suffice, only the size field */
        size_t old = sizeof(size_t);
        if (k->sample == (const void *)&sample_progress)
            old = offsetof(weft_progress_options, fd) + sizeof(int);
        if (k->sample == (const void *)&sample_event)
            old = offsetof(weft_sched_event, fn) + sizeof(weft_sched_fn);
        b = sized(k, old, old);
        REQUIRE(b);
        CHECK_MSG(k->call(b) == 0, "%s of size %zu: %s", k->name, old, weft_last_error());
        free(b);
        /* smaller than the size field */
        b = sized(k, 4, k->size);
        REQUIRE(b);
        CHECK_ERR(k->call(b), WEFT_EINVAL);
        CHECK_MSG(strstr(weft_last_error(), "smaller than the size field"), "%s",
                  weft_last_error());
        free(b);
        /* a newer header: a longer struct, unknown tail zero, then set */
        size_t big = k->size + 24;
        unsigned char *nb = sized(k, big, big);
        REQUIRE(nb);
        CHECK_OK(k->call(nb));
        nb[k->size + 9] = 1;
        CHECK_ERR(k->call(nb), WEFT_ENOTSUP);
        CHECK_MSG(strstr(weft_last_error(), "does not know"), "%s", weft_last_error());
        free(nb);
    }
    close(devnull);
    CHECK_OK(weft_executor_destroy(EX));
    EX = NULL;
}

/* The initializers record this header's size. */
TEST(init_macros_record_the_size)
{
    weft_options o = WEFT_OPTIONS_INIT;
    weft_submit_options so = WEFT_SUBMIT_OPTIONS_INIT;
    weft_map_options mo = WEFT_MAP_OPTIONS_INIT;
    weft_graph_options go = WEFT_GRAPH_OPTIONS_INIT;
    weft_compute_options co = WEFT_COMPUTE_OPTIONS_INIT;
    weft_parallel_options po = WEFT_PARALLEL_OPTIONS_INIT;
    weft_queue_options qo = WEFT_QUEUE_OPTIONS_INIT;
    weft_channel_options cho = WEFT_CHANNEL_OPTIONS_INIT;
    weft_mpqueue_options mqo = WEFT_MPQUEUE_OPTIONS_INIT;
    weft_sched_options sco = WEFT_SCHED_OPTIONS_INIT;
    weft_sched_event ev = WEFT_SCHED_EVENT_INIT;
    weft_run_opts ro = WEFT_RUN_OPTS_INIT;
    weft_progress_options pgo = WEFT_PROGRESS_OPTIONS_INIT;
    weft_svg_options svo = WEFT_SVG_OPTIONS_INIT;
    CHECK(o.size == sizeof o && so.size == sizeof so && mo.size == sizeof mo);
    CHECK(go.size == sizeof go && co.size == sizeof co && po.size == sizeof po);
    CHECK(qo.size == sizeof qo && cho.size == sizeof cho && mqo.size == sizeof mqo);
    CHECK(sco.size == sizeof sco && ev.size == sizeof ev && ro.size == sizeof ro);
    CHECK(pgo.size == sizeof pgo && svo.size == sizeof svo);
    CHECK(WEFT_OPTIONS_SIZE_0_2 <= sizeof(weft_options));
    CHECK(WEFT_OPTIONS_SIZE_0_2 > offsetof(weft_options, mpi));
}
