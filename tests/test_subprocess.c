/* test_subprocess.c : weft_run, weft_run_shell, weft_run_capture and weft_popen,
 * checked against what Python's subprocess.run and Popen promise: every
 * stdio mode, environment and working directory, timeouts that end the
 * whole process group (also a child ignoring SIGTERM and a grandchild),
 * check mode, specific spawn errors, no descriptor leaks (into the child or
 * in the caller, with 8 threads), no deadlock with megabytes on both
 * stdout and stderr, and the interactive calls of popen.
 *
 * Children are ordinary tools of every Debian system (sh, cat, head, tr,
 * env, ls, sleep, true, false). Tests run in their own directory
 * (build/tests/work/test_subprocess), where they write their files. */
// weft-test-timeout: 300
#include "check.h"

#include "subprocess/subprocess_internal.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

static void write_file(const char *path, const char *data, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    REQUIRE(fd >= 0);
    size_t n = strlen(data);
    REQUIRE(write(fd, data, n) == (ssize_t)n);
    close(fd);
    chmod(path, mode);
}

/* The whole file into buf (NUL-terminated); returns its length, -1 if absent. */
static long read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(fd, buf + n, cap - 1 - n)) > 0) n += (size_t)r;
    buf[n] = '\0';
    close(fd);
    return (long)n;
}

/* Runs `cmd` through the shell with stdout captured; returns the result. */
static int shell_capture(const char *cmd, weft_run_opts *o, weft_run_result *r)
{
    weft_run_opts d = {0};
    if (!o) o = &d;
    o->out.mode = WEFT_STDIO_PIPE;
    return weft_run_shell(cmd, o, r);
}

/* ------------------------------------------------------------------------
 * weft_run: status, argv, shell
 * ------------------------------------------------------------------------ */

TEST(run_exit_status_and_result)
{
    weft_run_result r;
    CHECK_OK(weft_run(ARGV("/bin/sh", "-c", "exit 3"), NULL, &r));
    CHECK_EQ_INT(r.exit_code, 3);
    CHECK_EQ_INT(r.signal, 0);
    CHECK(!r.timed_out);
    CHECK(r.pid > 0);
    CHECK(r.wall > 0 && r.wall < 10);
    CHECK(r.out == NULL && r.err == NULL); /* nothing captured by default */
    weft_run_result_fini(&r);
    CHECK(r.out == NULL && r.pid == 0);

    CHECK_OK(weft_run(ARGV("true"), NULL, &r)); /* PATH lookup */
    CHECK_EQ_INT(r.exit_code, 0);
    weft_run_result_fini(&r);
    weft_run_result_fini(NULL); /* a no-op */
}

TEST(run_argv_is_not_parsed_by_a_shell)
{
    weft_run_result r;
    CHECK_OK(weft_run_capture(ARGV("printf", "%s|", "a b;$HOME", "*", "`id`"), 10, &r));
    CHECK_EQ_INT(r.exit_code, 0);
    CHECK_EQ_STR(r.out, "a b;$HOME|*|`id`|");
    CHECK_EQ_INT(r.out_len, strlen("a b;$HOME|*|`id`|"));
    CHECK_EQ_STR(r.err, "");
    weft_run_result_fini(&r);
}

TEST(run_shell_parses_the_command)
{
    weft_run_result r;
    CHECK_OK(shell_capture("echo $((1+2)) | tr 3 x; echo two", NULL, &r));
    CHECK_EQ_STR(r.out, "x\ntwo\n");
    weft_run_result_fini(&r);
    CHECK_ERR(weft_run_shell(NULL, NULL, &r), WEFT_EINVAL);
}

TEST(run_capture_both_streams_and_binary)
{
    weft_run_result r;
    CHECK_OK(
        weft_run_capture(ARGV("/bin/sh", "-c", "printf 'o\\000k'; echo err >&2; exit 4"), 10, &r));
    CHECK_EQ_INT(r.exit_code, 4);
    REQUIRE(r.out && r.err);
    CHECK_EQ_INT(r.out_len, 3);
    CHECK(memcmp(r.out, "o\0k", 3) == 0 && r.out[3] == '\0');
    CHECK_EQ_STR(r.err, "err\n");
    weft_run_result_fini(&r);
}

TEST(run_check_mode)
{
    weft_run_result r;
    weft_run_opts o = {.flags = WEFT_RUN_CHECK};
    CHECK_OK(weft_run(ARGV("true"), &o, &r));
    weft_run_result_fini(&r);
    CHECK_ERR(weft_run(ARGV("false"), &o, &r), WEFT_EEXIT);
    CHECK_EQ_INT(r.exit_code, 1);
    CHECK(strstr(weft_last_error(), "status 1") != NULL);
    weft_run_result_fini(&r);
    CHECK_ERR(weft_run(ARGV("/bin/sh", "-c", "kill -KILL $$"), &o, &r), WEFT_EEXIT);
    CHECK_EQ_INT(r.signal, SIGKILL);
    CHECK_EQ_INT(r.exit_code, -1);
    weft_run_result_fini(&r);
    /* without check a signal is a result, not an error */
    CHECK_OK(weft_run(ARGV("/bin/sh", "-c", "kill -TERM $$"), NULL, &r));
    CHECK_EQ_INT(r.signal, SIGTERM);
    CHECK_EQ_INT(r.exit_code, -1);
    weft_run_result_fini(&r);
}

/* ------------------------------------------------------------------------
 * stdio modes
 * ------------------------------------------------------------------------ */

TEST(stderr_merged_into_stdout)
{
    weft_run_result r;
    weft_run_opts o = {.out.mode = WEFT_STDIO_PIPE, .err.mode = WEFT_STDIO_STDOUT};
    CHECK_OK(weft_run_shell("echo one; echo two >&2; echo three", &o, &r));
    CHECK_EQ_STR(r.out, "one\ntwo\nthree\n");
    CHECK(r.err == NULL);
    weft_run_result_fini(&r);
}

TEST(stdout_and_stderr_to_files_truncate_and_append)
{
    char buf[256];
    write_file("old.txt", "previous contents\n", 0644);
    weft_run_result r;
    weft_run_opts o = {.out = {.mode = WEFT_STDIO_FILE, .path = "old.txt"},
                       .err = {.mode = WEFT_STDIO_FILE, .path = "err.txt"}};
    CHECK_OK(weft_run_shell("echo new; echo oops >&2", &o, &r));
    weft_run_result_fini(&r);
    CHECK_EQ_INT(read_file("old.txt", buf, sizeof buf), 4);
    CHECK_EQ_STR(buf, "new\n");
    CHECK(read_file("err.txt", buf, sizeof buf) > 0);
    CHECK_EQ_STR(buf, "oops\n");
    o.out.append = true;
    CHECK_OK(weft_run_shell("echo more", &o, &r));
    weft_run_result_fini(&r);
    read_file("old.txt", buf, sizeof buf);
    CHECK_EQ_STR(buf, "new\nmore\n");
    /* an output file in a missing directory is the caller's error */
    o.out.path = "no/such/dir/out.txt";
    CHECK_ERR(weft_run_shell("echo x", &o, &r), WEFT_ENOENT);
    CHECK(strstr(weft_last_error(), "no/such/dir/out.txt") != NULL);
}

TEST(stdin_from_file_devnull_fd_and_bytes)
{
    weft_run_result r;
    write_file("in.txt", "from a file\n", 0644);
    weft_run_opts o = {.in = {.mode = WEFT_STDIO_FILE, .path = "in.txt"},
                       .out.mode = WEFT_STDIO_PIPE};
    CHECK_OK(weft_run(ARGV("cat"), &o, &r));
    CHECK_EQ_STR(r.out, "from a file\n");
    weft_run_result_fini(&r);

    o.in = (weft_stdio){.mode = WEFT_STDIO_NULL};
    CHECK_OK(weft_run(ARGV("cat"), &o, &r));
    CHECK_EQ_STR(r.out, "");
    CHECK_EQ_INT(r.out_len, 0);
    weft_run_result_fini(&r);

    int pf[2];
    REQUIRE(pipe(pf) == 0);
    REQUIRE(write(pf[1], "through a pipe", 14) == 14);
    close(pf[1]);
    o.in = (weft_stdio){.mode = WEFT_STDIO_FD, .fd = pf[0]};
    CHECK_OK(weft_run(ARGV("cat"), &o, &r));
    CHECK_EQ_STR(r.out, "through a pipe");
    weft_run_result_fini(&r);
    CHECK(fcntl(pf[0], F_GETFD) >= 0); /* the caller's descriptor stays open */
    close(pf[0]);

    o.in = (weft_stdio){0};
    o.input = "bytes\nfrom memory";
    o.input_len = strlen(o.input);
    CHECK_OK(weft_run(ARGV("cat"), &o, &r));
    CHECK_EQ_STR(r.out, "bytes\nfrom memory");
    weft_run_result_fini(&r);

    o.in = (weft_stdio){.mode = WEFT_STDIO_FILE, .path = "missing-input.txt"};
    o.input = NULL;
    o.input_len = 0;
    CHECK_ERR(weft_run(ARGV("cat"), &o, &r), WEFT_ENOENT);
    CHECK(strstr(weft_last_error(), "missing-input.txt") != NULL);
}

/* Runs with the test process's fd `slot` temporarily pointing at `path`. */
static int run_with_own_fd(int slot, const char *path, int flags, const char *cmd, weft_run_opts *o,
                           weft_run_result *r)
{
    fflush(stdout);
    int saved = dup(slot);
    int fd = open(path, flags | O_CLOEXEC, 0644);
    REQUIRE(saved >= 0 && fd >= 0);
    REQUIRE(dup2(fd, slot) == slot);
    close(fd);
    int rc = weft_run_shell(cmd, o, r);
    fflush(stdout);
    dup2(saved, slot);
    close(saved);
    return rc;
}

TEST(inherit_is_the_callers_descriptor)
{
    char buf[256];
    weft_run_result r;
    write_file("own-in.txt", "inherited input\n", 0644);
    weft_run_opts o = {.out.mode = WEFT_STDIO_PIPE};
    CHECK_OK(run_with_own_fd(0, "own-in.txt", O_RDONLY, "cat", &o, &r));
    CHECK_EQ_STR(r.out, "inherited input\n");
    weft_run_result_fini(&r);

    weft_run_opts d = {0};
    CHECK_OK(
        run_with_own_fd(1, "own-out.txt", O_WRONLY | O_CREAT | O_TRUNC, "echo to stdout", &d, &r));
    weft_run_result_fini(&r);
    read_file("own-out.txt", buf, sizeof buf);
    CHECK_EQ_STR(buf, "to stdout\n");
}

TEST(discard_and_fd_outputs)
{
    weft_run_result r;
    weft_run_opts o = {.out.mode = WEFT_STDIO_NULL, .err.mode = WEFT_STDIO_PIPE};
    CHECK_OK(weft_run_shell("echo gone; echo kept >&2", &o, &r));
    CHECK(r.out == NULL);
    CHECK_EQ_STR(r.err, "kept\n");
    weft_run_result_fini(&r);

    int fd = open("fd-out.txt", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    o = (weft_run_opts){.out = {.mode = WEFT_STDIO_FD, .fd = fd}, .err.mode = WEFT_STDIO_STDOUT};
    CHECK_OK(weft_run_shell("echo a; echo b >&2", &o, &r));
    weft_run_result_fini(&r);
    close(fd);
    char buf[64];
    read_file("fd-out.txt", buf, sizeof buf);
    CHECK_EQ_STR(buf, "a\nb\n");
}

TEST(fd_sources_in_the_low_slots_are_not_clobbered)
{
    /* out.fd = 2 and err.fd = 1: a naive dup2 sequence would send both to
     * the same place. The test's own 1 and 2 point at two files meanwhile. */
    fflush(stdout);
    int s1 = dup(1), s2 = dup(2);
    int fa = open("slot1.txt", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int fb = open("slot2.txt", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(s1 >= 0 && s2 >= 0 && fa >= 0 && fb >= 0);
    dup2(fa, 1);
    dup2(fb, 2);
    weft_run_result r;
    weft_run_opts o = {.out = {.mode = WEFT_STDIO_FD, .fd = 2},
                       .err = {.mode = WEFT_STDIO_FD, .fd = 1}};
    int rc = weft_run_shell("echo O; echo E >&2", &o, &r);
    dup2(s1, 1);
    dup2(s2, 2);
    close(s1);
    close(s2);
    close(fa);
    close(fb);
    CHECK_OK(rc);
    weft_run_result_fini(&r);
    char buf[64];
    read_file("slot1.txt", buf, sizeof buf);
    CHECK_EQ_STR(buf, "E\n");
    read_file("slot2.txt", buf, sizeof buf);
    CHECK_EQ_STR(buf, "O\n");
}

/* ------------------------------------------------------------------------
 * Environment and working directory
 * ------------------------------------------------------------------------ */

TEST(env_replace)
{
    weft_run_result r;
    weft_run_opts o = {.flags = WEFT_RUN_ENV_REPLACE,
                       .env = ARGV("A=1", "B=two words", "EMPTY="),
                       .out.mode = WEFT_STDIO_PIPE};
    /* no PATH in the new environment: "env" is found in /bin:/usr/bin */
    CHECK_OK(weft_run(ARGV("env"), &o, &r));
    CHECK_EQ_STR(r.out, "A=1\nB=two words\nEMPTY=\n");
    weft_run_result_fini(&r);

    o.env = ARGV(NULL);
    CHECK_OK(weft_run(ARGV("env"), &o, &r));
    CHECK_EQ_STR(r.out, "");
    weft_run_result_fini(&r);
}

TEST(env_add_override_remove)
{
    setenv("WEFT_T_KEEP", "k", 1);
    setenv("WEFT_T_OVER", "old", 1);
    setenv("WEFT_T_DEL", "d", 1);
    weft_run_result r;
    weft_run_opts o = {.env = ARGV("WEFT_T_OVER=new", "WEFT_T_NEW=n=m", "WEFT_T_DEL"),
                       .out.mode = WEFT_STDIO_PIPE};
    CHECK_OK(weft_run(ARGV("env"), &o, &r));
    REQUIRE(r.out);
    CHECK(strstr(r.out, "WEFT_T_KEEP=k\n") != NULL);
    CHECK(strstr(r.out, "WEFT_T_OVER=new\n") != NULL);
    CHECK(strstr(r.out, "WEFT_T_OVER=old") == NULL);
    CHECK(strstr(r.out, "WEFT_T_NEW=n=m\n") != NULL);
    CHECK(strstr(r.out, "WEFT_T_DEL") == NULL);
    CHECK(strstr(r.out, "PATH=") != NULL);
    weft_run_result_fini(&r);
    CHECK_EQ_STR(getenv("WEFT_T_DEL"), "d"); /* the caller's environment is untouched */

    /* PATH from the edited environment is the one searched */
    o.env = ARGV("PATH=/nonexistent-dir");
    CHECK_ERR(weft_run(ARGV("env"), &o, &r), WEFT_ENOENT);
    o.path = "/usr/bin:/bin"; /* opts.path wins */
    CHECK_OK(weft_run(ARGV("env"), &o, &r));
    CHECK(r.out && strstr(r.out, "PATH=/nonexistent-dir\n") != NULL);
    weft_run_result_fini(&r);
    unsetenv("WEFT_T_KEEP");
    unsetenv("WEFT_T_OVER");
    unsetenv("WEFT_T_DEL");
}

TEST(cwd)
{
    weft_run_result r;
    weft_run_opts o = {.cwd = "/", .out.mode = WEFT_STDIO_PIPE};
    CHECK_OK(weft_run(ARGV("pwd"), &o, &r));
    CHECK_EQ_STR(r.out, "/\n");
    weft_run_result_fini(&r);
    REQUIRE(mkdir("sub", 0755) == 0 || errno == EEXIST);
    write_file("sub/marker", "here\n", 0644);
    o.cwd = "sub";
    CHECK_OK(weft_run(ARGV("cat", "marker"), &o, &r));
    CHECK_EQ_STR(r.out, "here\n");
    weft_run_result_fini(&r);
}

/* ------------------------------------------------------------------------
 * Errors: reported by the call, nothing left behind
 * ------------------------------------------------------------------------ */

TEST(spawn_errors_are_specific)
{
    int fds = check_count_fds();
    weft_run_result r;
    CHECK_ERR(weft_run(ARGV("/nonexistent/program"), NULL, &r), WEFT_ENOENT);
    CHECK(strstr(weft_last_error(), "/nonexistent/program") != NULL);
    CHECK_EQ_INT(r.pid, 0);
    CHECK_EQ_INT(r.exit_code, -1);
    CHECK_ERR(weft_run(ARGV("weft-no-such-program-xyz"), NULL, &r), WEFT_ENOENT);
    CHECK(strstr(weft_last_error(), "not found") != NULL);

    write_file("not-exec.sh", "#!/bin/sh\necho hi\n", 0644);
    CHECK_ERR(weft_run(ARGV("./not-exec.sh"), NULL, &r), WEFT_EPERM);
    CHECK(strstr(weft_last_error(), "not executable") != NULL);
    CHECK_ERR(weft_run(ARGV("/tmp"), NULL, &r), WEFT_EPERM); /* a directory */
    write_file("garbage.bin", "this is not an executable\n", 0755);
    CHECK_ERR(weft_run(ARGV("./garbage.bin"), NULL, &r), WEFT_EPERM); /* ENOEXEC, no sh fallback */
    write_file("exec.sh", "#!/bin/sh\necho hi\n", 0755);
    weft_run_opts o = {.out.mode = WEFT_STDIO_PIPE};
    CHECK_OK(weft_run(ARGV("./exec.sh"), &o, &r));
    CHECK_EQ_STR(r.out, "hi\n");
    weft_run_result_fini(&r);

    o.cwd = "/nonexistent-directory";
    CHECK_ERR(weft_run(ARGV("true"), &o, &r), WEFT_ENOTDIR);
    CHECK(strstr(weft_last_error(), "/nonexistent-directory") != NULL);
    o.cwd = "exec.sh"; /* a file, not a directory */
    CHECK_ERR(weft_run(ARGV("true"), &o, &r), WEFT_ENOTDIR);
    o.cwd = "/";
    CHECK_ERR(weft_run(ARGV("./exec.sh"), &o, &r), WEFT_ENOENT); /* relative to the new cwd */

    weft_proc *p = (weft_proc *)1;
    CHECK_ERR(weft_popen(ARGV("/nonexistent/program"), NULL, &p), WEFT_ENOENT);
    CHECK(p == NULL);
    CHECK_EQ_INT(check_count_fds(), fds);
    /* no zombie was left: this process has no child at all */
    CHECK(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD);
}

TEST(bad_arguments)
{
    weft_run_result r;
    weft_run_opts o;
    CHECK_ERR(weft_run(NULL, NULL, &r), WEFT_EINVAL);
    CHECK_ERR(weft_run(ARGV(""), NULL, &r), WEFT_EINVAL);
    CHECK_ERR(weft_run(ARGV("true"), NULL, NULL), WEFT_EINVAL);
    o = (weft_run_opts){.out.mode = WEFT_STDIO_STDOUT};
    CHECK_ERR(weft_run(ARGV("true"), &o, &r), WEFT_EINVAL);
    o = (weft_run_opts){.in.mode = (weft_stdio_mode)99};
    CHECK_ERR(weft_run(ARGV("true"), &o, &r), WEFT_EINVAL);
    o = (weft_run_opts){.err = {.mode = WEFT_STDIO_FD, .fd = -1}};
    CHECK_ERR(weft_run(ARGV("true"), &o, &r), WEFT_EINVAL);
    o = (weft_run_opts){.out.mode = WEFT_STDIO_FILE};
    CHECK_ERR(weft_run(ARGV("true"), &o, &r), WEFT_EINVAL);
    o = (weft_run_opts){.timeout = -1};
    CHECK_ERR(weft_run(ARGV("true"), &o, &r), WEFT_EINVAL);
    o = (weft_run_opts){.kill_grace = NAN};
    CHECK_ERR(weft_run(ARGV("true"), &o, &r), WEFT_EINVAL);
    o = (weft_run_opts){.flags = 1u << 20};
    CHECK_ERR(weft_run(ARGV("true"), &o, &r), WEFT_EINVAL);
    o = (weft_run_opts){.flags = WEFT_RUN_ENV_REPLACE, .env = ARGV("NOEQUALS")};
    CHECK_ERR(weft_run(ARGV("true"), &o, &r), WEFT_EINVAL);
    o = (weft_run_opts){.env = ARGV("=x")};
    CHECK_ERR(weft_run(ARGV("true"), &o, &r), WEFT_EINVAL);
    o = (weft_run_opts){.in.mode = WEFT_STDIO_NULL, .input = "x", .input_len = 1};
    CHECK_ERR(weft_run(ARGV("true"), &o, &r), WEFT_EINVAL);
    o = (weft_run_opts){.input_len = 5};
    CHECK_ERR(weft_run(ARGV("true"), &o, &r), WEFT_EINVAL);
    o = (weft_run_opts){.cwd = ""};
    CHECK_ERR(weft_run(ARGV("true"), &o, &r), WEFT_EINVAL);
    weft_proc *p;
    CHECK_ERR(weft_popen(ARGV("true"), NULL, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_popen(NULL, NULL, &p), WEFT_EINVAL);
    CHECK(p == NULL);
}

/* ------------------------------------------------------------------------
 * Timeouts
 * ------------------------------------------------------------------------ */

TEST(timeout_terminates)
{
    weft_run_result r;
    weft_run_opts o = {.timeout = 0.3};
    double t0 = check_now();
    CHECK_ERR(weft_run(ARGV("sleep", "30"), &o, &r), WEFT_ETIMEDOUT);
    double dt = check_now() - t0;
    CHECK(r.timed_out);
    CHECK_EQ_INT(r.signal, SIGTERM);
    CHECK_MSG(dt >= 0.29 && dt < 1.9, "took %.3f s", dt); /* SIGTERM was enough: no grace */
    CHECK(r.wall >= 0.29);
    weft_run_result_fini(&r);

    /* a child that finishes in time is not touched; WEFT_FOREVER is no limit */
    o.timeout = 30;
    CHECK_OK(weft_run(ARGV("true"), &o, &r));
    CHECK(!r.timed_out);
    o.timeout = WEFT_FOREVER;
    CHECK_OK(weft_run(ARGV("true"), &o, &r));
}

TEST(timeout_kills_a_child_that_ignores_sigterm)
{
    weft_run_result r;
    weft_run_opts o = {.timeout = 0.3, .kill_grace = 0.4, .out.mode = WEFT_STDIO_PIPE};
    double t0 = check_now();
    CHECK_ERR(weft_run_shell("trap '' TERM; echo ready; sleep 30; echo never", &o, &r),
              WEFT_ETIMEDOUT);
    double dt = check_now() - t0;
    CHECK(r.timed_out);
    CHECK_EQ_INT(r.signal, SIGKILL);
    CHECK_MSG(dt >= 0.65 && dt < 5, "took %.3f s (timeout 0.3 + grace 0.4)", dt);
    CHECK_EQ_STR(r.out, "ready\n"); /* output until the kill is kept */
    weft_run_result_fini(&r);
}

/* Starts a shell whose background job (a grandchild of ours) prints its
 * pid, then times out; checks the grandchild died of `want_sig`. */
static void grandchild_case(const char *cmd, int want_sig)
{
    /* Orphans are re-parented to us, so we can reap the grandchild and see
     * how it died (PID 1 here may not reap at all). */
    REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
    weft_run_result r;
    weft_run_opts o = {.timeout = 0.5, .kill_grace = 0.3, .out.mode = WEFT_STDIO_PIPE};
    double t0 = check_now();
    CHECK_ERR(weft_run_shell(cmd, &o, &r), WEFT_ETIMEDOUT);
    CHECK_MSG(check_now() - t0 < 5, "took %.3f s", check_now() - t0);
    long gpid = r.out ? strtol(r.out, NULL, 10) : 0;
    CHECK_MSG(gpid > 0, "grandchild pid from \"%s\"", r.out ? r.out : "(null)");
    weft_run_result_fini(&r);
    if (gpid > 0) {
        int st = 0;
        pid_t w = 0;
        double end = check_now() + 10;
        while ((w = waitpid((pid_t)gpid, &st, WNOHANG)) == 0 && check_now() < end)
            check_sleep(0.01);
        CHECK_MSG(w == (pid_t)gpid, "grandchild %ld was not reaped (waitpid %d)", gpid, (int)w);
        if (w == (pid_t)gpid)
            CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == want_sig,
                      "grandchild: signalled %d sig %d, want %d", WIFSIGNALED(st),
                      WIFSIGNALED(st) ? WTERMSIG(st) : 0, want_sig);
    }
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST(timeout_ends_grandchildren_in_the_group)
{
    /* the grandchild holds the stdout pipe: weft_run also waits for its EOF */
    grandchild_case("sleep 30 & echo $!; wait", SIGTERM);
    /* one that ignores SIGTERM gets SIGKILL once the leader is gone */
    grandchild_case("(trap '' TERM; exec sleep 30) & echo $!; wait", SIGKILL);
}

TEST(timeout_does_not_wait_for_a_pipe_held_outside_the_group)
{
    /* `setsid` moves the sleep out of the group: the kill misses it, and
     * it holds stdout open for 2 s; weft_run gives up reading after one
     * more grace period instead of waiting for it. */
    weft_run_result r;
    weft_run_opts o = {.timeout = 0.2, .kill_grace = 0.2, .out.mode = WEFT_STDIO_PIPE};
    double t0 = check_now();
    CHECK_ERR(weft_run_shell("setsid sleep 2 & echo bye; sleep 30", &o, &r), WEFT_ETIMEDOUT);
    double dt = check_now() - t0;
    CHECK_MSG(dt < 1.5, "took %.3f s", dt);
    CHECK_EQ_STR(r.out, "bye\n");
    weft_run_result_fini(&r);
}

/* The process group of a child running `cat /proc/self/stat` (field 5). */
static int child_pgrp(weft_run_opts *o, int *pid)
{
    weft_run_result r;
    o->out.mode = WEFT_STDIO_PIPE;
    CHECK_OK(weft_run(ARGV("cat", "/proc/self/stat"), o, &r));
    int pgrp = -1;
    const char *rp = r.out ? strrchr(r.out, ')') : NULL;
    CHECK(rp && sscanf(rp, ") %*c %*d %d", &pgrp) == 1);
    *pid = r.pid;
    weft_run_result_fini(&r);
    return pgrp;
}

TEST(process_group_only_with_a_timeout_or_asked)
{
    int pid;
    /* no timeout: the caller's group, where a terminal's Ctrl-C reaches it */
    weft_run_opts o = {0};
    CHECK_EQ_INT(child_pgrp(&o, &pid), (int)getpgrp());
    /* a timeout: a group of its own, which the timeout kills */
    o = (weft_run_opts){.timeout = 30};
    CHECK_EQ_INT(child_pgrp(&o, &pid), pid);
    o = (weft_run_opts){.flags = WEFT_RUN_NEW_PGROUP};
    CHECK_EQ_INT(child_pgrp(&o, &pid), pid);
    o = (weft_run_opts){.timeout = 30, .flags = WEFT_RUN_SAME_PGROUP};
    CHECK_EQ_INT(child_pgrp(&o, &pid), (int)getpgrp());
    weft_run_result r;
    o = (weft_run_opts){.flags = WEFT_RUN_SAME_PGROUP | WEFT_RUN_NEW_PGROUP};
    CHECK_ERR(weft_run(ARGV("true"), &o, &r), WEFT_EINVAL);
}

/* The child's signal masks as /proc/self/status shows them. */
static void child_sigmasks(unsigned flags, unsigned long long *ign, unsigned long long *blk)
{
    weft_run_result r;
    weft_run_opts o = {.flags = flags, .out.mode = WEFT_STDIO_PIPE};
    CHECK_OK(weft_run(ARGV("grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"), &o, &r));
    const char *s = r.out ? strstr(r.out, "SigIgn:") : NULL;
    const char *b = r.out ? strstr(r.out, "SigBlk:") : NULL;
    CHECK(s && b);
    *ign = s ? strtoull(s + 7, NULL, 16) : ~0ull;
    *blk = b ? strtoull(b + 7, NULL, 16) : ~0ull;
    weft_run_result_fini(&r);
}

TEST(child_signal_state_is_reset)
{
    /* The caller ignores SIGPIPE and blocks SIGTERM in this thread: the
     * child still gets default SIGPIPE and an empty mask (else a timeout's
     * SIGTERM would never reach it). */
    struct sigaction sa = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGPIPE, &sa, &old);
    sigset_t term, oldmask;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, &oldmask);
    unsigned long long ign, blk;
    child_sigmasks(0, &ign, &blk);
    CHECK_MSG(!(ign & (1ull << (SIGPIPE - 1))), "SigIgn %llx", ign);
    CHECK_EQ_U64(blk, 0);
    child_sigmasks(WEFT_RUN_KEEP_SIGNALS, &ign, &blk);
    CHECK_MSG(ign & (1ull << (SIGPIPE - 1)), "SigIgn %llx with KEEP_SIGNALS", ign);
    pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
    sigaction(SIGPIPE, &old, NULL);
}

/* ------------------------------------------------------------------------
 * Big data, resource usage
 * ------------------------------------------------------------------------ */

TEST(megabytes_on_stdout_and_stderr_at_once)
{
    /* 1 MiB to stdout, then 1 MiB to stderr, 64 times: a reader that drains
     * one stream before the other deadlocks on the first round. */
    const size_t mib = 1u << 20, n = 64;
    weft_run_result r;
    weft_run_opts o = {.out.mode = WEFT_STDIO_PIPE, .err.mode = WEFT_STDIO_PIPE, .timeout = 200};
    CHECK_OK(weft_run_shell("i=0; while [ $i -lt 64 ]; do head -c 1048576 /dev/zero; "
                            "head -c 1048576 /dev/zero | tr '\\000' e >&2; i=$((i+1)); done",
                            &o, &r));
    CHECK(!r.timed_out);
    CHECK_EQ_U64(r.out_len, n * mib);
    CHECK_EQ_U64(r.err_len, n * mib);
    bool ok = r.out && r.err;
    for (size_t i = 0; ok && i < n * mib; i += 4093) ok = r.out[i] == 0 && r.err[i] == 'e';
    CHECK(ok);
    CHECK(r.out && r.out[r.out_len] == '\0' && r.err && r.err[r.err_len] == '\0');
    weft_run_result_fini(&r);
}

TEST(stdin_from_a_10_mib_buffer)
{
    size_t n = 10u << 20;
    char *in = malloc(n);
    REQUIRE(in);
    for (size_t i = 0; i < n; i++) in[i] = (char)(i * 131 + (i >> 12));
    weft_run_result r;
    /* cat echoes it: input written while output is read */
    weft_run_opts o = {.input = in, .input_len = n, .out.mode = WEFT_STDIO_PIPE, .timeout = 100};
    CHECK_OK(weft_run(ARGV("cat"), &o, &r));
    CHECK_EQ_U64(r.out_len, n);
    CHECK(r.out && memcmp(r.out, in, n) == 0);
    weft_run_result_fini(&r);
    CHECK_OK(weft_run(ARGV("wc", "-c"), &o, &r));
    CHECK(r.out && strtoull(r.out, NULL, 10) == n);
    weft_run_result_fini(&r);
    /* a child that reads nothing: EPIPE inside, no SIGPIPE for the caller */
    CHECK_OK(weft_run(ARGV("true"), &o, &r));
    CHECK_EQ_INT(r.exit_code, 0);
    weft_run_result_fini(&r);
    free(in);
}

TEST(resource_usage)
{
    weft_run_result r;
    weft_run_opts o = {.out.mode = WEFT_STDIO_NULL};
    CHECK_OK(weft_run_shell("i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done", &o, &r));
    CHECK_MSG(r.user_cpu + r.sys_cpu > 0.02, "cpu %.3f + %.3f", r.user_cpu, r.sys_cpu);
    CHECK_MSG(r.wall >= 0.5 * (r.user_cpu + r.sys_cpu), "wall %.3f", r.wall);
    CHECK_MSG(r.max_rss_kib > 100, "max rss %ld KiB", r.max_rss_kib);
    weft_run_result_fini(&r);
}

/* ------------------------------------------------------------------------
 * Descriptors: nothing leaks into the child, nothing stays open here
 * ------------------------------------------------------------------------ */

TEST(no_descriptor_leaks_into_the_child)
{
    int leaky = dup(1); /* no O_CLOEXEC: a naive spawn would pass it on */
    int leaky2 = open("/dev/null", O_RDONLY);
    REQUIRE(leaky > 2 && leaky2 > 2);
    weft_run_result r;
    weft_run_opts o = {.in.mode = WEFT_STDIO_PIPE,
                       .input = "x",
                       .input_len = 1,
                       .out.mode = WEFT_STDIO_PIPE,
                       .err.mode = WEFT_STDIO_PIPE};
    /* ls opens the directory as fd 3 while listing it */
    CHECK_OK(weft_run(ARGV("ls", "/proc/self/fd"), &o, &r));
    CHECK_EQ_STR(r.out, "0\n1\n2\n3\n");
    weft_run_result_fini(&r);
    close(leaky);
    close(leaky2);
}

enum {
    CONC_THREADS = 8,
    CONC_EACH = 25
};

static atomic_int conc_bad;

static void *conc_thread(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < CONC_EACH; i++) {
        char word[64];
        snprintf(word, sizeof word, "t%d-i%d", id, i);
        weft_run_result r;
        int rc;
        switch (i % 4) {
        case 0: { /* stdin bytes -> stdout */
            weft_run_opts o = {.input = word,
                               .input_len = strlen(word),
                               .out.mode = WEFT_STDIO_PIPE,
                               .err.mode = WEFT_STDIO_PIPE,
                               .timeout = 60};
            rc = weft_run(ARGV("cat"), &o, &r);
            if (rc || !r.out || strcmp(r.out, word)) atomic_fetch_add(&conc_bad, 1);
            break;
        }
        case 1: /* capture both */
            rc = weft_run_capture(ARGV("/bin/sh", "-c", "echo \"$0\"; echo e >&2", word), 60, &r);
            if (rc || !r.out || strncmp(r.out, word, strlen(word)) || !r.err ||
                strcmp(r.err, "e\n"))
                atomic_fetch_add(&conc_bad, 1);
            break;
        case 2: /* a spawn error */
            rc = weft_run(ARGV("weft-no-such-program"), NULL, &r);
            if (rc != WEFT_ENOENT) atomic_fetch_add(&conc_bad, 1);
            break;
        default: { /* popen, write, read a line, wait */
            weft_proc *p = NULL;
            weft_run_opts o = {.in.mode = WEFT_STDIO_PIPE, .out.mode = WEFT_STDIO_PIPE};
            memset(&r, 0, sizeof r);
            rc = weft_popen(ARGV("cat"), &o, &p);
            const char *line = NULL;
            char msg[80];
            snprintf(msg, sizeof msg, "%s\n", word);
            if (!rc) rc = weft_proc_write(p, msg, strlen(msg), 30, NULL);
            if (!rc) rc = weft_proc_read_line(p, WEFT_PROC_STDOUT, 30, &line, NULL);
            if (!rc && strcmp(line, msg)) rc = -1;
            if (!rc) rc = weft_proc_close_stdin(p);
            if (!rc) rc = weft_proc_wait(p, 30, &r);
            weft_proc_destroy(p);
            if (rc) atomic_fetch_add(&conc_bad, 1);
            break;
        }
        }
        weft_run_result_fini(&r);
    }
    return NULL;
}

TEST(concurrent_runs_from_8_threads_leak_no_descriptors)
{
    int before = check_count_fds();
    pthread_t th[CONC_THREADS];
    for (int i = 0; i < CONC_THREADS; i++)
        REQUIRE(pthread_create(&th[i], NULL, conc_thread, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < CONC_THREADS; i++) pthread_join(th[i], NULL);
    CHECK_EQ_INT(atomic_load(&conc_bad), 0);
    CHECK_EQ_INT(check_count_fds(), before);
    CHECK(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD); /* every child reaped */
}

/* ------------------------------------------------------------------------
 * popen
 * ------------------------------------------------------------------------ */

TEST(popen_interactive_lines)
{
    weft_proc *p;
    weft_run_opts o = {.in.mode = WEFT_STDIO_PIPE, .out.mode = WEFT_STDIO_PIPE};
    REQUIRE_OK(weft_popen(ARGV("cat"), &o, &p));
    CHECK(weft_proc_pid(p) > 0);
    const char *line;
    size_t len;
    CHECK_OK(weft_proc_write(p, "hello\n", 6, 5, NULL));
    CHECK_OK(weft_proc_read_line(p, WEFT_PROC_STDOUT, 5, &line, &len));
    CHECK_EQ_STR(line, "hello\n");
    CHECK_EQ_INT(len, 6);
    size_t w = 0;
    CHECK_OK(weft_proc_write(p, "a\nb", 3, 5, &w));
    CHECK_EQ_INT(w, 3);
    CHECK_OK(weft_proc_read_line(p, WEFT_PROC_STDOUT, 5, &line, &len));
    CHECK_EQ_STR(line, "a\n");
    double t0 = check_now();
    CHECK_RC(weft_proc_read_line(p, WEFT_PROC_STDOUT, 0.2, &line, &len), WEFT_ETIMEDOUT);
    CHECK(check_now() - t0 >= 0.19);
    CHECK_OK(weft_proc_write(p, "c\nd", 3, 5, NULL));
    CHECK_OK(weft_proc_read_line(p, WEFT_PROC_STDOUT, 5, &line, &len));
    CHECK_EQ_STR(line, "bc\n"); /* the partial line was kept */
    CHECK_OK(weft_proc_close_stdin(p));
    CHECK_OK(weft_proc_close_stdin(p)); /* twice is fine */
    CHECK_RC(weft_proc_write(p, "x", 1, 1, NULL), WEFT_EINVAL);
    CHECK_OK(weft_proc_read_line(p, WEFT_PROC_STDOUT, 5, &line, &len));
    CHECK_EQ_STR(line, "d"); /* the last line, no newline */
    CHECK_EQ_INT(len, 1);
    CHECK_RC(weft_proc_read_line(p, WEFT_PROC_STDOUT, 5, &line, &len), WEFT_EOF);
    weft_run_result r;
    CHECK_OK(weft_proc_wait(p, 5, &r));
    CHECK_EQ_INT(r.exit_code, 0);
    CHECK(r.out == NULL);
    weft_proc_destroy(p);
}

TEST(popen_read_timeouts_poll_wait_signal)
{
    weft_proc *p;
    weft_run_opts o = {.out.mode = WEFT_STDIO_PIPE, .err.mode = WEFT_STDIO_PIPE};
    REQUIRE_OK(weft_popen(ARGV("sleep", "30"), &o, &p));
    char buf[16];
    size_t got = 99;
    double t0 = check_now();
    CHECK_RC(weft_proc_read(p, WEFT_PROC_STDOUT, 0, buf, sizeof buf, &got), WEFT_ETIMEDOUT);
    CHECK(check_now() - t0 < 0.5); /* no wait */
    CHECK_EQ_INT(got, 0);
    t0 = check_now();
    CHECK_RC(weft_proc_read(p, WEFT_PROC_STDERR, 0.2, buf, sizeof buf, &got), WEFT_ETIMEDOUT);
    double dt = check_now() - t0;
    CHECK_MSG(dt >= 0.19 && dt < 2, "%.3f s", dt);
    weft_run_result r;
    CHECK_EQ_INT(weft_proc_poll(p, &r), 0);
    CHECK_RC(weft_proc_wait(p, 0.1, &r), WEFT_ETIMEDOUT);
    CHECK_RC(weft_proc_wait(p, -1, &r), WEFT_EINVAL);
    CHECK_OK(weft_proc_signal(p, SIGUSR1, false));
    CHECK_OK(weft_proc_wait(p, 10, &r));
    CHECK_EQ_INT(r.signal, SIGUSR1);
    CHECK_EQ_INT(weft_proc_poll(p, &r), 1); /* the same result again */
    CHECK_EQ_INT(r.signal, SIGUSR1);
    CHECK_OK(weft_proc_wait(p, 0, &r));
    CHECK_EQ_INT(r.signal, SIGUSR1);
    CHECK_RC(weft_proc_read(p, WEFT_PROC_STDOUT, 1, buf, sizeof buf, &got), WEFT_EOF);
    CHECK_OK(weft_proc_kill(p));                               /* reaped: nothing is sent */
    CHECK_RC(weft_proc_signal(p, SIGKILL, true), WEFT_EINVAL); /* no group of its own */
    CHECK_RC(weft_proc_read(p, 3, 1, buf, sizeof buf, &got), WEFT_EINVAL);
    CHECK_RC(weft_proc_write(p, "x", 1, 1, NULL), WEFT_EINVAL); /* stdin not a pipe */
    CHECK_RC(weft_proc_signal(p, -5, false), WEFT_EINVAL);
    weft_proc_destroy(p);
    weft_proc_destroy(NULL);
}

TEST(popen_kill_ends_the_group)
{
    REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
    weft_proc *p;
    weft_run_opts o = {.out.mode = WEFT_STDIO_PIPE, .flags = WEFT_RUN_NEW_PGROUP};
    REQUIRE_OK(weft_popen_shell("sleep 30 & echo $!; wait", &o, &p));
    const char *line;
    CHECK_OK(weft_proc_read_line(p, WEFT_PROC_STDOUT, 10, &line, NULL));
    long gpid = line ? strtol(line, NULL, 10) : 0;
    CHECK_OK(weft_proc_kill(p));
    weft_run_result r;
    CHECK_OK(weft_proc_wait(p, 10, &r));
    CHECK_EQ_INT(r.signal, SIGKILL);
    weft_proc_destroy(p);
    int st = 0;
    pid_t w = 0;
    double end = check_now() + 10;
    while (gpid > 0 && (w = waitpid((pid_t)gpid, &st, WNOHANG)) == 0 && check_now() < end)
        check_sleep(0.01);
    CHECK(gpid > 0 && w == (pid_t)gpid && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST(popen_communicate)
{
    weft_proc *p;
    weft_run_opts o = {.in.mode = WEFT_STDIO_PIPE,
                       .out.mode = WEFT_STDIO_PIPE,
                       .err.mode = WEFT_STDIO_PIPE,
                       .input = "abc\nrest\n",
                       .input_len = 9,
                       .flags = WEFT_RUN_CHECK};
    REQUIRE_OK(weft_popen_shell("read x; echo got $x; echo e >&2; cat; exit 2", &o, &p));
    const char *line;
    /* a line read first is not lost to communicate: the rest comes after */
    CHECK_OK(weft_proc_write(p, "first\n", 6, 5, NULL));
    CHECK_OK(weft_proc_read_line(p, WEFT_PROC_STDOUT, 5, &line, NULL));
    CHECK_EQ_STR(line, "got first\n");
    weft_run_result r;
    CHECK_ERR(weft_proc_communicate(p, &r), WEFT_EEXIT);
    CHECK_EQ_INT(r.exit_code, 2);
    CHECK_EQ_STR(r.out, "abc\nrest\n");
    CHECK_EQ_STR(r.err, "e\n");
    weft_run_result_fini(&r);
    weft_proc_destroy(p);

    /* a timeout in communicate ends the child as weft_run does */
    o = (weft_run_opts){.out.mode = WEFT_STDIO_PIPE, .timeout = 0.2};
    REQUIRE_OK(weft_popen_shell("echo partial; sleep 30", &o, &p));
    CHECK_ERR(weft_proc_communicate(p, &r), WEFT_ETIMEDOUT);
    CHECK(r.timed_out);
    CHECK_EQ_STR(r.out, "partial\n");
    weft_run_result_fini(&r);
    weft_proc_destroy(p);
}

TEST(popen_write_epipe_and_timeout)
{
    weft_proc *p;
    weft_run_opts o = {.in.mode = WEFT_STDIO_PIPE};
    REQUIRE_OK(weft_popen(ARGV("true"), &o, &p));
    weft_run_result r;
    CHECK_OK(weft_proc_wait(p, 10, &r));
    size_t n = 1u << 20, w = 0;
    char *big = calloc(1, n);
    REQUIRE(big);
    CHECK_ERR(weft_proc_write(p, big, n, 5, &w), WEFT_EPIPE);
    CHECK(w < n);
    weft_proc_destroy(p);

    REQUIRE_OK(weft_popen(ARGV("sleep", "30"), &o, &p));
    double t0 = check_now();
    CHECK_RC(weft_proc_write(p, big, n, 0.2, &w), WEFT_ETIMEDOUT);
    CHECK(check_now() - t0 >= 0.19);
    CHECK_MSG(w > 0 && w < n, "wrote %zu", w); /* a pipe's worth went in */
    int pid = weft_proc_pid(p);
    weft_proc_destroy(p); /* ends and reaps the running child */
    CHECK(kill(pid, 0) == -1 && errno == ESRCH);
    free(big);
}

TEST(popen_read_mixed_with_read_line)
{
    weft_proc *p;
    weft_run_opts o = {.out.mode = WEFT_STDIO_PIPE};
    REQUIRE_OK(weft_popen_shell("printf 'l1\\nl2\\nl3'", &o, &p));
    const char *line;
    CHECK_OK(weft_proc_read_line(p, WEFT_PROC_STDOUT, 5, &line, NULL));
    CHECK_EQ_STR(line, "l1\n");
    char buf[64];
    size_t got = 0, total = 0;
    int rc;
    while ((rc = weft_proc_read(p, WEFT_PROC_STDOUT, 5, buf + total, sizeof buf - 1 - total,
                                &got)) == 0)
        total += got;
    CHECK_RC(rc, WEFT_EOF);
    buf[total] = '\0';
    CHECK_EQ_STR(buf, "l2\nl3");
    weft_run_result r;
    CHECK_OK(weft_proc_wait(p, 5, &r));
    weft_proc_destroy(p);
}

TEST(without_pidfd_waitid_polling_works)
{
    /* as on kernels before 5.3: the loops poll waitid(WNOWAIT) instead */
    atomic_store(&weft__proc_no_pidfd, 1);
    weft_run_result r;
    weft_run_opts o = {.timeout = 0.3, .kill_grace = 0.3, .out.mode = WEFT_STDIO_PIPE};
    CHECK_ERR(weft_run_shell("trap '' TERM; echo a; sleep 30", &o, &r), WEFT_ETIMEDOUT);
    CHECK_EQ_INT(r.signal, SIGKILL);
    CHECK_EQ_STR(r.out, "a\n");
    weft_run_result_fini(&r);
    o = (weft_run_opts){.input = "xyz", .input_len = 3, .out.mode = WEFT_STDIO_PIPE, .timeout = 30};
    CHECK_OK(weft_run(ARGV("cat"), &o, &r));
    CHECK_EQ_STR(r.out, "xyz");
    weft_run_result_fini(&r);
    weft_proc *p;
    REQUIRE_OK(weft_popen(ARGV("sleep", "0.2"), NULL, &p));
    CHECK_RC(weft_proc_wait(p, 0.05, &r), WEFT_ETIMEDOUT);
    CHECK_OK(weft_proc_wait(p, 10, &r));
    CHECK_EQ_INT(r.exit_code, 0);
    weft_proc_destroy(p);
    atomic_store(&weft__proc_no_pidfd, 0);
}
