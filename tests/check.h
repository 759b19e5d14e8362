/* check.h : a tiny test framework for weft's tests.
 *
 *     #include "check.h"
 *     TEST(adds) { CHECK_EQ_INT(1 + 1, 2); }
 *
 * Every TEST in a file is registered before main() runs; the main() defined
 * here runs them all in file order (or only those named on the command line),
 * prints one line per test and a final "N passed, N failed, N skipped" line,
 * and exits non-zero if any test failed.
 *
 * CHECK* macros are non-fatal and may be used from any thread. REQUIRE* macros
 * abort the current test (longjmp) when used on the test's own thread, and
 * abort the process when used elsewhere. SKIP(reason) ends a test as skipped.
 *
 * Numeric command-line arguments are stress parameters: the first is a thread
 * count (check_arg_threads()), the second a scale (check_stress_scale(), else
 * WEFT_STRESS_SCALE, else 1.0). Other arguments name tests to run.
 *
 * Executors for a test: tests/check_exec.h (make_ex, check_executor).
 *
 * A watchdog (SIGALRM) ends the process with the name of a test that runs
 * longer than CHECK_WATCHDOG_SECONDS (define it before including, or set the
 * env CHECK_WATCHDOG), so a hang names its test instead of only timing out.
 */
#ifndef WEFT_CHECK_H
#define WEFT_CHECK_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "weft.h"

#ifndef CHECK_WATCHDOG_SECONDS
#define CHECK_WATCHDOG_SECONDS 110
#endif

#define CHECK_MAX_TESTS 512

/* CHECK_TSAN / CHECK_ASAN: 1 when built with that sanitizer. */
#if defined(__SANITIZE_ADDRESS__)
#define CHECK_ASAN 1
#else
#define CHECK_ASAN 0
#endif
#if defined(__SANITIZE_THREAD__)
#define CHECK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CHECK_TSAN 1
#endif
#endif
#ifndef CHECK_TSAN
#define CHECK_TSAN 0
#endif

typedef void (*check_fn)(void);

struct check_test {
    const char *name;
    check_fn fn;
    int line;
};

static struct check_test check__tests[CHECK_MAX_TESTS];
static int check__ntests;
static atomic_int check__failures;
static jmp_buf check__jmp;
static pthread_t check__test_thread;
static const char *volatile check__current = "";
static char check__skip_reason[256];
static int check__threads_arg = -1;
static double check__scale_arg = -1.0;
static pthread_mutex_t check__print_lock = PTHREAD_MUTEX_INITIALIZER;

static void check__register(const char *name, check_fn fn, int line)
{
    if (check__ntests >= CHECK_MAX_TESTS) {
        fprintf(stderr, "check.h: too many tests\n");
        abort();
    }
    check__tests[check__ntests].name = name;
    check__tests[check__ntests].fn = fn;
    check__tests[check__ntests].line = line;
    check__ntests++;
}

#define TEST(name)                                                   \
    static void test_##name(void);                                   \
    __attribute__((constructor)) static void check__reg_##name(void) \
    {                                                                \
        check__register(#name, test_##name, __LINE__);               \
    }                                                                \
    static void test_##name(void)

__attribute__((format(printf, 3, 4), unused)) static void check__fail(const char *file, int line,
                                                                      const char *fmt, ...)
{
    atomic_fetch_add(&check__failures, 1);
    pthread_mutex_lock(&check__print_lock);
    printf("    %s:%d: [%s] ", file, line, check__current);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    pthread_mutex_unlock(&check__print_lock);
}

__attribute__((format(printf, 4, 5), unused)) static void
check__fail_msg(const char *file, int line, const char *cond, const char *fmt, ...)
{
    char m[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    check__fail(file, line, "CHECK(%s): %s", cond, m);
}

__attribute__((noreturn, unused)) static void check__abort_test(void)
{
    if (pthread_equal(pthread_self(), check__test_thread)) longjmp(check__jmp, 1);
    fprintf(stderr, "check.h: fatal check failed outside the test thread\n");
    abort();
}

/* Non-fatal checks (any thread). */
#define CHECK(cond)                                                       \
    do {                                                                  \
        if (!(cond)) check__fail(__FILE__, __LINE__, "CHECK(%s)", #cond); \
    } while (0)

#define CHECK_MSG(cond, ...)                                                  \
    do {                                                                      \
        if (!(cond)) check__fail_msg(__FILE__, __LINE__, #cond, __VA_ARGS__); \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                \
    do {                                                                                  \
        long long check__a = (long long)(a), check__b = (long long)(b);                   \
        if (check__a != check__b)                                                         \
            check__fail(__FILE__, __LINE__, "CHECK_EQ_INT(%s, %s): %lld != %lld", #a, #b, \
                        check__a, check__b);                                              \
    } while (0)

#define CHECK_EQ_U64(a, b)                                                                \
    do {                                                                                  \
        unsigned long long check__a = (unsigned long long)(a);                            \
        unsigned long long check__b = (unsigned long long)(b);                            \
        if (check__a != check__b)                                                         \
            check__fail(__FILE__, __LINE__, "CHECK_EQ_U64(%s, %s): %llu != %llu", #a, #b, \
                        check__a, check__b);                                              \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                    \
    do {                                                                                      \
        const char *check__a = (a), *check__b = (b);                                          \
        if (!check__a || !check__b || strcmp(check__a, check__b) != 0)                        \
            check__fail(__FILE__, __LINE__, "CHECK_EQ_STR(%s, %s): \"%s\" != \"%s\"", #a, #b, \
                        check__a ? check__a : "(null)", check__b ? check__b : "(null)");      \
    } while (0)

/* Expects `expr` to return 0; prints the code's name and weft_last_error(). */
#define CHECK_OK(expr)                                                                    \
    do {                                                                                  \
        int check__rc = (expr);                                                           \
        if (check__rc != 0)                                                               \
            check__fail(__FILE__, __LINE__, "CHECK_OK(%s): %d %s (%s)", #expr, check__rc, \
                        weft_strerror(check__rc), weft_last_error());                     \
    } while (0)

/* Expects `expr` to return `code` and weft_last_error() to be non-empty. */
#define CHECK_ERR(expr, code)                                                                   \
    do {                                                                                        \
        int check__rc = (expr);                                                                 \
        int check__want = (code);                                                               \
        if (check__rc != check__want) {                                                         \
            check__fail(__FILE__, __LINE__, "CHECK_ERR(%s): got %d %s, want %d %s (%s)", #expr, \
                        check__rc, weft_strerror(check__rc), check__want,                       \
                        weft_strerror(check__want), weft_last_error());                         \
        } else {                                                                                \
            const char *check__le = weft_last_error();                                          \
            if (!check__le || !check__le[0])                                                    \
                check__fail(__FILE__, __LINE__, "CHECK_ERR(%s): weft_last_error() is empty",    \
                            #expr);                                                             \
        }                                                                                       \
    } while (0)

/* Expects `expr` to return `code` (no check of weft_last_error()). */
#define CHECK_RC(expr, code)                                                                   \
    do {                                                                                       \
        int check__rc = (expr);                                                                \
        int check__want = (code);                                                              \
        if (check__rc != check__want)                                                          \
            check__fail(__FILE__, __LINE__, "CHECK_RC(%s): got %d %s, want %d %s (%s)", #expr, \
                        check__rc, weft_strerror(check__rc), check__want,                      \
                        weft_strerror(check__want), weft_last_error());                        \
    } while (0)

/* Fatal checks: end the test at once. */
#define REQUIRE(cond)                                              \
    do {                                                           \
        if (!(cond)) {                                             \
            check__fail(__FILE__, __LINE__, "REQUIRE(%s)", #cond); \
            check__abort_test();                                   \
        }                                                          \
    } while (0)

#define REQUIRE_OK(expr)                                                                    \
    do {                                                                                    \
        int check__rc = (expr);                                                             \
        if (check__rc != 0) {                                                               \
            check__fail(__FILE__, __LINE__, "REQUIRE_OK(%s): %d %s (%s)", #expr, check__rc, \
                        weft_strerror(check__rc), weft_last_error());                       \
            check__abort_test();                                                            \
        }                                                                                   \
    } while (0)

#define SKIP(...)                                                             \
    do {                                                                      \
        snprintf(check__skip_reason, sizeof check__skip_reason, __VA_ARGS__); \
        longjmp(check__jmp, 2);                                               \
    } while (0)

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

__attribute__((unused)) static double check_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

__attribute__((unused)) static void check_sleep(double seconds)
{
    if (seconds <= 0) return;
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int check__count_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        n++;
    }
    closedir(d);
    return n;
}

/* The number of open file descriptors of the process. */
__attribute__((unused)) static int check_count_fds(void)
{
    int n = check__count_dir("/proc/self/fd");
    return n < 0 ? -1 : n - 1; /* minus the directory's own fd */
}

/* The number of threads of the process. */
__attribute__((unused)) static int check_count_threads(void)
{
    return check__count_dir("/proc/self/task");
}

/* Waits up to `timeout` seconds for the thread count to fall to at most
 * `n` (exited threads may linger briefly); returns the last count. */
__attribute__((unused)) static int check_wait_threads_at_most(int n, double timeout)
{
    double end = check_now() + timeout;
    int c;
    while ((c = check_count_threads()) > n && check_now() < end) check_sleep(0.005);
    return c;
}

/* Waits up to `timeout` seconds for `*flag` >= `value`. */
__attribute__((unused)) static bool check_wait_atomic(atomic_int *flag, int value, double timeout)
{
    double end = check_now() + timeout;
    while (atomic_load(flag) < value) {
        if (check_now() > end) return false;
        check_sleep(0.0005);
    }
    return true;
}

/* Stress scale: argv's second number, else WEFT_STRESS_SCALE, else 1.0
 * (the same in sanitizer builds: the issue asks for full-size runs there). */
__attribute__((unused)) static double check_stress_scale(void)
{
    if (check__scale_arg > 0) return check__scale_arg;
    const char *s = getenv("WEFT_STRESS_SCALE");
    if (s && *s) {
        double v = strtod(s, NULL);
        if (v > 0 && isfinite(v)) return v;
    }
    return 1.0;
}

/* `n` scaled by check_stress_scale(), at least `min`. */
__attribute__((unused)) static size_t check_scaled(size_t n, size_t min)
{
    double v = (double)n * check_stress_scale();
    size_t r = (size_t)v;
    return r < min ? min : r;
}

/* argv's first number (thread count), or `def`. */
__attribute__((unused)) static int check_arg_threads(int def)
{
    return check__threads_arg > 0 ? check__threads_arg : def;
}

/* ------------------------------------------------------------------------
 * Runner
 * ------------------------------------------------------------------------ */

/* A test whose work is legitimately long (gigabytes through memory on a
 * busy machine) gives itself `seconds` from now instead of the default
 * watchdog. Hangs are still caught, only later. */
static inline void check_watchdog_extend(unsigned seconds)
{
    alarm(seconds);
}

static void check__watchdog(int sig)
{
    (void)sig;
    const char *a = "\nTIMEOUT: test '";
    const char *b = (const char *)check__current;
    const char *c = "' is still running (watchdog); a hang?\n";
    ssize_t w;
    w = write(2, a, strlen(a));
    w = write(2, b, strlen(b));
    w = write(2, c, strlen(c));
    w = write(1, a, strlen(a));
    w = write(1, b, strlen(b));
    w = write(1, c, strlen(c));
    (void)w;
    _exit(3);
}

static int check__by_line(const void *a, const void *b)
{
    const struct check_test *x = a, *y = b;
    return (x->line > y->line) - (x->line < y->line);
}

static bool check__is_number(const char *s)
{
    if (!*s) return false;
    char *end;
    strtod(s, &end);
    return *end == '\0';
}

static int check_main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    qsort(check__tests, (size_t)check__ntests, sizeof check__tests[0], check__by_line);
    int nnum = 0, nnames = 0;
    for (int i = 1; i < argc; i++) {
        if (check__is_number(argv[i])) {
            if (nnum == 0)
                check__threads_arg = atoi(argv[i]);
            else if (nnum == 1)
                check__scale_arg = strtod(argv[i], NULL);
            nnum++;
        } else {
            nnames++;
        }
    }
    int watchdog = CHECK_WATCHDOG_SECONDS;
    const char *w = getenv("CHECK_WATCHDOG");
    if (w && atoi(w) > 0)
        watchdog = atoi(w);
    else if (CHECK_TSAN)
        watchdog *= 3; /* CTest's timeouts grow the same way */
    else if (CHECK_ASAN)
        watchdog *= 2;
    signal(SIGALRM, check__watchdog);

    int passed = 0, failed = 0, skipped = 0;
    for (int t = 0; t < check__ntests; t++) {
        struct check_test *test = &check__tests[t];
        if (nnames > 0) {
            bool want = false;
            for (int i = 1; i < argc; i++)
                if (!check__is_number(argv[i]) && strcmp(argv[i], test->name) == 0) want = true;
            if (!want) continue;
        }
        check__current = test->name;
        check__test_thread = pthread_self();
        atomic_store(&check__failures, 0);
        check__skip_reason[0] = '\0';
        double t0 = check_now();
        alarm((unsigned)watchdog);
        int jumped = setjmp(check__jmp);
        if (jumped == 0) test->fn();
        alarm(0);
        double dt = check_now() - t0;
        if (jumped == 2) {
            printf("SKIP %s (%s)\n", test->name, check__skip_reason);
            skipped++;
        } else if (atomic_load(&check__failures) > 0 || jumped) {
            printf("FAIL %s (%.3f s)\n", test->name, dt);
            failed++;
        } else {
            printf("ok   %s (%.3f s)\n", test->name, dt);
            passed++;
        }
        fflush(stdout);
    }
    check__current = "";
    if (nnames > 0 && passed + failed + skipped == 0) {
        printf("no test matched the names given\n");
        failed = 1;
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    if (failed) return 1;
    return passed == 0 && skipped > 0 ? 77 : 0; /* 77: CTest's "skipped" */
}

#ifndef CHECK_CUSTOM_MAIN
int main(int argc, char **argv)
{
    return check_main(argc, argv);
}
#endif

#endif /* WEFT_CHECK_H */
