/* run.c : running commands with weft_run and weft_popen.
 *
 *   ./build/examples/run
 *
 * 1. captures the output of a command (an argv: no shell) with a timeout;
 * 2. a command that runs too long is ended by its timeout, together with
 *    the process it started (its whole process group);
 * 3. feeds bytes to a command's stdin and reads what it prints;
 * 4. talks to a child line by line through weft_popen;
 * 5. shows that a missing program is an error of the call itself.
 * Exits 0 when every step behaved as described. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <weft.h>

static int fail(const char *what, int rc)
{
    fprintf(stderr, "run: %s: %s (%s)\n", what, weft_strerror(rc), weft_last_error());
    return 1;
}

int main(void)
{
    weft_run_result r;
    int rc;

    /* 1. The common case: stdout and stderr captured, 10 seconds at most. */
    const char *uname_argv[] = {"uname", "-sr", NULL};
    rc = weft_run_capture(uname_argv, 10, &r);
    if (rc) return fail("uname", rc);
    printf("uname -sr  -> exit %d, %zu bytes: %s", r.exit_code, r.out_len, r.out);
    printf("              wall %.1f ms, cpu %.1f ms, max rss %ld KiB\n", r.wall * 1e3,
           (r.user_cpu + r.sys_cpu) * 1e3, r.max_rss_kib);
    weft_run_result_fini(&r);

    /* 2. A timeout: the shell and the sleep it started both get SIGTERM
     *    after 0.5 s (SIGKILL would follow after kill_grace). */
    weft_run_opts slow = {.timeout = 0.5, .kill_grace = 1, .out.mode = WEFT_STDIO_PIPE};
    rc = weft_run_shell("echo started; sleep 60; echo never printed", &slow, &r);
    printf("sleep 60   -> %s, timed_out %d, signal %d (SIGTERM is %d), after %.2f s, output "
           "\"%.*s\"\n",
           weft_strerror(rc), r.timed_out, r.signal, SIGTERM, r.wall,
           (int)(r.out_len ? r.out_len - 1 : 0), r.out ? r.out : "");
    bool timed_ok = rc == WEFT_ETIMEDOUT && r.timed_out && r.signal == SIGTERM;
    weft_run_result_fini(&r);
    if (!timed_ok) return fail("timeout", rc);

    /* 3. stdin from memory, check mode (a non-zero exit is WEFT_EEXIT). */
    const char *text = "pear\napple\nfig\n";
    weft_run_opts sort_opts = {.flags = WEFT_RUN_CHECK,
                               .input = text,
                               .input_len = strlen(text),
                               .out.mode = WEFT_STDIO_PIPE,
                               .env = (const char *const[]){"LC_ALL=C", NULL},
                               .timeout = 10};
    const char *sort_argv[] = {"sort", NULL};
    rc = weft_run(sort_argv, &sort_opts, &r);
    if (rc) return fail("sort", rc);
    printf("sort       -> %s", r.out);
    weft_run_result_fini(&r);

    /* 4. An interactive child: write a line, read the answer, close stdin. */
    weft_proc *bc;
    weft_run_opts pipes = {.in.mode = WEFT_STDIO_PIPE, .out.mode = WEFT_STDIO_PIPE};
    const char *sh_argv[] = {"/bin/sh", "-c", "while read a b; do echo $((a * b)); done", NULL};
    rc = weft_popen(sh_argv, &pipes, &bc);
    if (rc) return fail("popen", rc);
    for (int i = 2; i <= 4; i++) {
        char q[32];
        const char *answer;
        snprintf(q, sizeof q, "%d %d\n", i, i + 1);
        if ((rc = weft_proc_write(bc, q, strlen(q), 5, NULL)) ||
            (rc = weft_proc_read_line(bc, WEFT_PROC_STDOUT, 5, &answer, NULL))) {
            weft_proc_destroy(bc);
            return fail("popen dialogue", rc);
        }
        printf("popen      -> %d * %d = %s", i, i + 1, answer);
    }
    weft_proc_close_stdin(bc); /* the loop reads EOF and the shell exits */
    rc = weft_proc_wait(bc, 5, &r);
    printf("popen      -> the shell exited with %d\n", r.exit_code);
    weft_proc_destroy(bc);
    if (rc) return fail("wait", rc);

    /* 5. A program that does not exist: the call says so. */
    const char *missing[] = {"no-such-program-here", NULL};
    rc = weft_run(missing, NULL, &r);
    printf("missing    -> %s: %s\n", weft_strerror(rc), weft_last_error());
    weft_run_result_fini(&r);
    return rc == WEFT_ENOENT ? 0 : 1;
}
