/* test_errors.c : weft_strerror, weft_last_error, weft_version. */
#include "check.h"

#include <limits.h>

static const struct {
    int code;
    const char *name;
} codes[] = {
    {WEFT_EPERM, "WEFT_EPERM"},
    {WEFT_ENOENT, "WEFT_ENOENT"},
    {WEFT_ENOMEM, "WEFT_ENOMEM"},
    {WEFT_EBUSY, "WEFT_EBUSY"},
    {WEFT_EEXIST, "WEFT_EEXIST"},
    {WEFT_EINVAL, "WEFT_EINVAL"},
    {WEFT_EDEADLK, "WEFT_EDEADLK"},
    {WEFT_ENOTSUP, "WEFT_ENOTSUP"},
    {WEFT_ETIMEDOUT, "WEFT_ETIMEDOUT"},
    {WEFT_EAGAIN, "WEFT_EAGAIN"},
    {WEFT_ETASK, "WEFT_ETASK"},
    {WEFT_ECANCELLED, "WEFT_ECANCELLED"},
    {WEFT_ECLOSED, "WEFT_ECLOSED"},
    {WEFT_ECRASHED, "WEFT_ECRASHED"},
    {WEFT_EOF, "WEFT_EOF"},
    {WEFT_ENOTREG, "WEFT_ENOTREG"},
    {WEFT_EDEPEND, "WEFT_EDEPEND"},
    {WEFT_EOVERFLOW, "WEFT_EOVERFLOW"},
    {WEFT_EBROKEN, "WEFT_EBROKEN"},
    {WEFT_EMEMLIMIT, "WEFT_EMEMLIMIT"},
    {WEFT_EPEERDIED, "WEFT_EPEERDIED"},
    {WEFT_ENOTDIR, "WEFT_ENOTDIR"},
    {WEFT_EPIPE, "WEFT_EPIPE"},
    {WEFT_EEXIT, "WEFT_EEXIT"},
};
#define NCODES (sizeof codes / sizeof codes[0])

TEST(strerror_names_every_code)
{
    for (size_t i = 0; i < NCODES; i++) {
        const char *s = weft_strerror(codes[i].code);
        CHECK_MSG(s != NULL, "code %s", codes[i].name);
        if (!s) continue;
        /* "WEFT_ETIMEDOUT: timed out": starts with the code's name, then ':' */
        size_t n = strlen(codes[i].name);
        CHECK_MSG(strncmp(s, codes[i].name, n) == 0 && s[n] == ':',
                  "weft_strerror(%d) = \"%s\" should start with \"%s:\"", codes[i].code, s,
                  codes[i].name);
        CHECK_MSG(strlen(s) > n + 2, "weft_strerror(%s) = \"%s\" has no description", codes[i].name,
                  s);
        CHECK_MSG(strcmp(s, "unknown error") != 0, "%s", codes[i].name);
    }
}

TEST(strerror_distinct)
{
    for (size_t i = 0; i < NCODES; i++)
        for (size_t j = i + 1; j < NCODES; j++)
            CHECK_MSG(strcmp(weft_strerror(codes[i].code), weft_strerror(codes[j].code)) != 0,
                      "%s and %s have the same string", codes[i].name, codes[j].name);
}

TEST(strerror_ok_and_unknown)
{
    const char *ok = weft_strerror(WEFT_OK);
    CHECK(ok != NULL && ok[0] != '\0');
    CHECK(ok != NULL && strcmp(ok, "unknown error") != 0);
    CHECK_EQ_STR(weft_strerror(12345), "unknown error");
    CHECK_EQ_STR(weft_strerror(-12345), "unknown error");
    CHECK_EQ_STR(weft_strerror(-999), "unknown error");
    CHECK_EQ_STR(weft_strerror(-1011), "unknown error"); /* the first unassigned code */
    CHECK_EQ_STR(weft_strerror(INT_MIN), "unknown error");
    CHECK_EQ_STR(weft_strerror(INT_MAX), "unknown error");
}

TEST(strerror_is_static)
{
    const char *a = weft_strerror(WEFT_EINVAL);
    const char *b = weft_strerror(WEFT_ETIMEDOUT);
    const char *a2 = weft_strerror(WEFT_EINVAL);
    CHECK(a == a2);
    CHECK(strcmp(a, b) != 0);
}

static void *fresh_thread_last_error(void *arg)
{
    (void)arg;
    const char *s = weft_last_error();
    CHECK(s != NULL);
    if (s) CHECK_EQ_STR(s, "");
    /* A failure on this thread sets it. */
    weft_task_fn fn = (weft_task_fn)1;
    CHECK_RC(weft_task_lookup("no.such.task.in.thread", &fn), WEFT_ENOENT);
    s = weft_last_error();
    CHECK(s != NULL && s[0] != '\0');
    return NULL;
}

TEST(last_error_empty_on_fresh_thread)
{
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, fresh_thread_last_error, NULL) == 0);
    pthread_join(t, NULL);
}

static void *other_thread_fails(void *arg)
{
    (void)arg;
    weft_task_fn fn;
    CHECK_RC(weft_task_lookup("another.missing.task", &fn), WEFT_ENOENT);
    return NULL;
}

TEST(last_error_after_failures)
{
    weft_task_fn fn = (weft_task_fn)1;
    CHECK_ERR(weft_task_lookup("definitely.not.registered", &fn), WEFT_ENOENT);
    CHECK(fn == NULL);

    weft_executor *ex = (weft_executor *)1;
    weft_options o = {0};
    o.workers = -3;
    CHECK_ERR(weft_executor_create(&o, &ex), WEFT_EINVAL);
    CHECK(ex == NULL);
    char saved[512];
    snprintf(saved, sizeof saved, "%s", weft_last_error());
    CHECK(saved[0] != '\0');

    /* Thread-local: another thread's failure does not change ours. */
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, other_thread_fails, NULL) == 0);
    pthread_join(t, NULL);
    CHECK_EQ_STR(weft_last_error(), saved);

    weft_backend b;
    CHECK_ERR(weft_backend_parse("no-such-backend", &b), WEFT_EINVAL);
    CHECK_ERR(weft_backend_parse(NULL, &b), WEFT_EINVAL);
}

TEST(version)
{
    const char *v = weft_version();
    REQUIRE(v != NULL);
    CHECK_EQ_STR(v, WEFT_VERSION_STRING);
    char buf[64];
    snprintf(buf, sizeof buf, "%d.%d.%d", WEFT_VERSION_MAJOR, WEFT_VERSION_MINOR,
             WEFT_VERSION_PATCH);
    CHECK_EQ_STR(v, buf);
    CHECK(weft_version() == v);
}

TEST(backend_names)
{
    static const struct {
        const char *name;
        weft_backend b;
    } bs[] = {{"serial", WEFT_BACKEND_SERIAL},
              {"threads", WEFT_BACKEND_THREADS},
              {"processes", WEFT_BACKEND_PROCESSES},
              {"mpi", WEFT_BACKEND_MPI}};
    for (size_t i = 0; i < 4; i++) {
        weft_backend b = WEFT_BACKEND_DEFAULT;
        CHECK_OK(weft_backend_parse(bs[i].name, &b));
        CHECK_EQ_INT(b, bs[i].b);
        CHECK_EQ_STR(weft_backend_name(bs[i].b), bs[i].name);
    }
    weft_backend b = WEFT_BACKEND_DEFAULT;
    CHECK_OK(weft_backend_parse("THREADS", &b));
    CHECK_EQ_INT(b, WEFT_BACKEND_THREADS);
    CHECK_OK(weft_backend_parse("Serial", &b));
    CHECK_EQ_INT(b, WEFT_BACKEND_SERIAL);
    CHECK_EQ_STR(weft_backend_name((weft_backend)99), "unknown");
    CHECK(weft_backend_available(WEFT_BACKEND_SERIAL));
    CHECK(weft_backend_available(WEFT_BACKEND_THREADS));
    CHECK(!weft_backend_available((weft_backend)99));
    CHECK_ERR(weft_backend_parse("", &b), WEFT_EINVAL);
    CHECK_ERR(weft_backend_parse("thread", &b), WEFT_EINVAL);
}

TEST(now_is_monotonic)
{
    double a = weft_now();
    check_sleep(0.02);
    double b = weft_now();
    CHECK(b >= a + 0.015);
    CHECK(b - a < 5.0);
}
