/* stress_subprocess.c : many threads running children at once -- captures with
 * input, timeouts racing the child's own exit, popen dialogues, spawn
 * errors -- then checks that no descriptor and no child is left behind.
 * Arguments: [threads] [scale]; WEFT_STRESS_SCALE scales the iterations. */
// weft-test-timeout: 240
#include "check.h"

#include <sys/wait.h>

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

static atomic_int bad, timeouts, finished;
static long iters;

static void bad_case(const char *what, int rc)
{
    atomic_fetch_add(&bad, 1);
    printf("    bad: %s: %s (%s)\n", what, weft_strerror(rc), weft_last_error());
}

static void one(int id, long i)
{
    weft_run_result r;
    int rc;
    char word[48];
    snprintf(word, sizeof word, "w%d.%ld", id, i);
    switch (i % 5) {
    case 0: { /* input through cat, both streams captured */
        weft_run_opts o = {.input = word,
                           .input_len = strlen(word),
                           .out.mode = WEFT_STDIO_PIPE,
                           .err.mode = WEFT_STDIO_PIPE,
                           .timeout = 60};
        rc = weft_run(ARGV("cat"), &o, &r);
        if (rc || !r.out || strcmp(r.out, word) || !r.err || r.err_len) bad_case("cat", rc);
        break;
    }
    case 1: { /* a timeout racing the exit: either outcome, told consistently */
        weft_run_opts o = {.timeout = 0.02, .kill_grace = 0.05, .out.mode = WEFT_STDIO_PIPE};
        rc = weft_run_shell("sleep 0.01; echo done", &o, &r);
        if (rc == WEFT_ETIMEDOUT) {
            atomic_fetch_add(&timeouts, 1);
            if (!r.timed_out) bad_case("timeout without timed_out", rc);
        } else if (rc != 0 || r.timed_out || r.exit_code != 0 || !r.out ||
                   strcmp(r.out, "done\n")) {
            bad_case("race", rc);
        } else {
            atomic_fetch_add(&finished, 1);
        }
        break;
    }
    case 2: { /* popen dialogue */
        weft_proc *p = NULL;
        weft_run_opts o = {.in.mode = WEFT_STDIO_PIPE, .out.mode = WEFT_STDIO_PIPE};
        char line[64];
        const char *got = NULL;
        snprintf(line, sizeof line, "%s\n", word);
        memset(&r, 0, sizeof r);
        rc = weft_popen(ARGV("cat"), &o, &p);
        if (!rc) rc = weft_proc_write(p, line, strlen(line), 30, NULL);
        if (!rc) rc = weft_proc_read_line(p, WEFT_PROC_STDOUT, 30, &got, NULL);
        if (!rc && strcmp(got, line)) rc = WEFT_EINVAL;
        if (!rc) rc = weft_proc_close_stdin(p);
        if (!rc) rc = weft_proc_wait(p, 30, &r);
        if (rc || r.exit_code != 0) bad_case("popen", rc);
        weft_proc_destroy(p);
        break;
    }
    case 3: /* errors */
        rc = weft_run(ARGV("/no/such/program"), NULL, &r);
        if (rc != WEFT_ENOENT) bad_case("enoent", rc);
        weft_run_opts o = {.cwd = "/no/such/dir"};
        rc = weft_run(ARGV("true"), &o, &r);
        if (rc != WEFT_ENOTDIR) bad_case("enotdir", rc);
        break;
    default: { /* a popen destroyed while its child runs */
        weft_proc *p = NULL;
        memset(&r, 0, sizeof r);
        rc = weft_popen(ARGV("sleep", "30"), NULL, &p);
        if (rc) bad_case("popen sleep", rc);
        weft_proc_destroy(p);
        break;
    }
    }
    weft_run_result_fini(&r);
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (long i = 0; i < iters; i++) one(id, i);
    return NULL;
}

TEST(many_threads_many_children)
{
    int nth = check_arg_threads(6);
    iters = (long)check_scaled(20, 5);
    int fds = check_count_fds();
    pthread_t *th = calloc((size_t)nth, sizeof *th);
    REQUIRE(th);
    double t0 = check_now();
    for (int i = 0; i < nth; i++)
        REQUIRE(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < nth; i++) pthread_join(th[i], NULL);
    free(th);
    printf("    %d threads x %ld children in %.2f s; timeout races: %d timed out, %d finished\n",
           nth, iters, check_now() - t0, atomic_load(&timeouts), atomic_load(&finished));
    CHECK_EQ_INT(atomic_load(&bad), 0);
    CHECK_EQ_INT(check_count_fds(), fds);
    CHECK(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD);
}
