/* weft/proc.h : subprocess control -- Python's subprocess.run and Popen in C.
 * Included by <weft.h>; do not include it on its own.
 *
 *   weft_run()          start a program from an argv array (no shell), wait for
 *                       it, give its exit status, captured output, wall time and
 *                       resource usage (subprocess.run)
 *   weft_run_shell()    the same for a command string run by /bin/sh -c: the
 *                       only calls that involve a shell, and they say so
 *   weft_run_capture()  the common case in one call: stdout and stderr
 *                       captured, stdin from /dev/null, a timeout
 *   weft_popen()        start a program and keep its pipes open: write its
 *                       stdin, read its stdout/stderr (blocking, polling, with
 *                       a timeout, line by line), poll, wait, signal, kill
 *                       (subprocess.Popen)
 *
 * The child is started with posix_spawn (glibc: clone(CLONE_VM|CLONE_VFORK),
 * no copy of the caller's memory), so it is fast and safe in a program with
 * many threads. Every descriptor weft opens is close-on-exec, and the child
 * closes every descriptor above 2 before exec, so nothing but its 0/1/2
 * leaks into it, whatever other threads open meanwhile.
 *
 * A child started with a timeout runs in a new process group of its own,
 * so that the timeout ends its descendants too: the group gets SIGTERM, and
 * SIGKILL once the child has exited or `kill_grace` seconds have passed.
 * WEFT_RUN_NEW_PGROUP gives the child its own group without a timeout (then
 * weft_proc_kill() ends the group), WEFT_RUN_SAME_PGROUP keeps it in the
 * caller's even with one (then only the child is signalled). Without a
 * group of its own the child stays in the caller's foreground group, so
 * Ctrl-C in a terminal reaches it as it reaches the caller; a child in its
 * own group does not get Ctrl-C, and stops with SIGTTIN if it reads from
 * the terminal.
 *
 * Errors are reported by the call that starts the child, never by a child
 * that exits 127: WEFT_ENOENT (program not found, or a file named in the
 * stdio options does not exist), WEFT_EPERM (the program is not executable:
 * no execute permission, a directory, not a valid executable format),
 * WEFT_ENOTDIR (the working directory cannot be entered), WEFT_EAGAIN (the
 * process limit is reached), WEFT_ENOMEM. weft_last_error() names the
 * program, the file or the directory.
 *
 * The child is waited for with wait4() on its pid: a program that sets
 * SIGCHLD to SIG_IGN (children reaped by the kernel) loses the exit status. */
#ifndef WEFT_PROC_H
#define WEFT_PROC_H

#ifndef WEFT_H
#error "include <weft.h>, not <weft/proc.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* What the child's stdin, stdout or stderr is. */
typedef enum weft_stdio_mode {
    WEFT_STDIO_INHERIT = 0, /* the caller's own descriptor (the default) */
    WEFT_STDIO_PIPE,        /* stdout/stderr: captured in memory by weft_run, a pipe
                               read with weft_proc_read by weft_popen; stdin: fed
                               from opts.input by weft_run, written with
                               weft_proc_write after weft_popen */
    WEFT_STDIO_NULL,        /* /dev/null: empty input, discarded output */
    WEFT_STDIO_FD,          /* the caller's descriptor `fd` (not closed by weft) */
    WEFT_STDIO_FILE,        /* the file at `path`: read for stdin; for stdout and
                               stderr created (mode 0666 & ~umask) and truncated,
                               or appended to with `append` */
    WEFT_STDIO_STDOUT,      /* stderr only: the same as the child's stdout (2>&1) */
} weft_stdio_mode;

/* One of the child's standard streams; the zero value inherits. */
typedef struct weft_stdio {
    weft_stdio_mode mode;
    int fd;           /* WEFT_STDIO_FD: a descriptor >= 0 */
    const char *path; /* WEFT_STDIO_FILE */
    bool append;      /* WEFT_STDIO_FILE for stdout/stderr: O_APPEND, no truncation */
} weft_stdio;

/* Flags of weft_run_opts. */
enum {
    WEFT_RUN_CHECK = 1u << 0,        /* a non-zero exit or death by a signal is
                                        the error WEFT_EEXIT (Python's check=True) */
    WEFT_RUN_ENV_REPLACE = 1u << 1,  /* `env` is the child's whole environment;
                                        without it, `env` edits the caller's */
    WEFT_RUN_SAME_PGROUP = 1u << 2,  /* keep the child in the caller's process
                                        group even with a timeout: timeouts and
                                        kill then signal the child only */
    WEFT_RUN_KEEP_SIGNALS = 1u << 3, /* do not reset SIGPIPE and SIGXFSZ to their
                                        default action in the child (an ignored
                                        signal otherwise stays ignored across exec) */
    WEFT_RUN_NEW_PGROUP = 1u << 4,   /* a process group of its own for the child
                                        also without a timeout (for weft_popen:
                                        weft_proc_kill then ends its descendants) */
};

/* Options of weft_run() and weft_popen(); the zero value (or NULL) means: the
 * caller's directory, environment, stdio and process group, no timeout. */
typedef struct weft_run_opts {
    size_t size;     /* sizeof the struct as the caller's header had it; 0 = weft 0.2's layout */
    unsigned flags;  /* WEFT_RUN_* */
    const char *cwd; /* working directory of the child; NULL: the caller's */
    /* NULL-terminated list of "NAME=VALUE" entries (copied at the call). With
     * WEFT_RUN_ENV_REPLACE it is the child's whole environment (an entry
     * without '=' is WEFT_EINVAL); without it, each entry adds NAME or
     * overrides the caller's NAME, and an entry "NAME" without '=' removes
     * NAME from what the child inherits. NULL: the caller's environment. */
    const char *const *env;
    weft_stdio in;  /* the child's stdin  */
    weft_stdio out; /* the child's stdout */
    weft_stdio err; /* the child's stderr (WEFT_STDIO_STDOUT: merged into stdout) */
    /* Bytes written to the child's stdin by weft_run and weft_proc_communicate
     * (then stdin is closed). Setting `input` with in.mode left at INHERIT
     * selects WEFT_STDIO_PIPE. Not copied: valid until the call returns. */
    const void *input;
    size_t input_len;
    /* Seconds the child may run, counted from its start (weft_run,
     * weft_proc_communicate); 0 (the default) and WEFT_FOREVER mean no
     * limit; negative or NaN is WEFT_EINVAL. */
    double timeout;
    /* Seconds between SIGTERM and SIGKILL when a timeout or weft_proc_kill
     * ends the child; 0 means the default, 2 seconds; negative or NaN is
     * WEFT_EINVAL. */
    double kill_grace;
    /* PATH used to find a program named without a '/'; NULL: the PATH of the
     * child's environment, else the caller's, else "/bin:/usr/bin". */
    const char *path;
} weft_run_opts;
/* weft_run_opts o = WEFT_RUN_OPTS_INIT; records this header's size */
#define WEFT_RUN_OPTS_INIT            \
    {                                 \
        .size = sizeof(weft_run_opts) \
    }

/* What a child did. Filled by weft_run(), weft_proc_wait(),
 * weft_proc_communicate(); release with weft_run_result_fini(). */
typedef struct weft_run_result {
    int pid;       /* the child's process id (and process group id, if it has its own) */
    int exit_code; /* 0..255 if it exited, else -1 */
    int signal;    /* the signal that ended it, else 0 */
    bool core_dumped;
    bool timed_out; /* the timeout passed and weft ended the child */
    /* Captured stdout / stderr (WEFT_STDIO_PIPE), NUL-terminated (the NUL is
     * not counted in the length); NULL when that stream was not captured.
     * Owned by the result: freed by weft_run_result_fini(). */
    char *out;
    size_t out_len;
    char *err;
    size_t err_len;
    double wall;      /* seconds from the start to the end of the child */
    double user_cpu;  /* CPU seconds in user mode (the child and the
                         descendants it waited for) */
    double sys_cpu;   /* CPU seconds in the kernel */
    long max_rss_kib; /* peak resident set size in KiB */
} weft_run_result;

/* weft_run() :
 * Starts the program `argv[0]` with the arguments `argv` (NULL-terminated; no
 * shell is involved: each element is one argument, as is), feeds it
 * opts->input, collects the streams set to WEFT_STDIO_PIPE, waits for it to
 * exit and describes it in `*res`. A program named without a '/' is looked
 * up in PATH (see opts.path). stdout and stderr are read at the same time
 * while the input is written, so a child writing megabytes to both never
 * deadlocks. After opts.timeout seconds the child's process group gets
 * SIGTERM, then SIGKILL once the child has exited or opts.kill_grace seconds
 * have passed; output written until then is kept.
 * Ownership: `*res` is always initialised (also on error); release it with
 * weft_run_result_fini(). Nothing in `argv` or `opts` is kept.
 * Threads: safe from any number of threads at once.
 * @return 0 if the child ran and exited (whatever its status, unless
 * WEFT_RUN_CHECK), WEFT_ETIMEDOUT (it was ended by the timeout: `*res` is
 * filled, res->timed_out set), WEFT_EEXIT (WEFT_RUN_CHECK and the child
 * exited non-zero or died of a signal: `*res` is filled), or, with nothing
 * started: WEFT_ENOENT, WEFT_EPERM, WEFT_ENOTDIR, WEFT_EAGAIN, WEFT_ENOMEM,
 * WEFT_EINVAL (NULL or empty argv, a bad option), or the negated errno of a
 * failed open, pipe or spawn. */
WEFT_API int weft_run(const char *const *argv, const weft_run_opts *opts, weft_run_result *res);

/* weft_run_shell() :
 * weft_run() of {"/bin/sh", "-c", command}: the command string is parsed by
 * the shell (globs, pipes, redirections, $VARIABLES). Never pass it text
 * you did not write: use weft_run() with an argv instead.
 * Ownership, threads, @return: as weft_run(). */
WEFT_API int weft_run_shell(const char *command, const weft_run_opts *opts, weft_run_result *res);

/* weft_run_capture() :
 * weft_run() with stdin from /dev/null, stdout and stderr captured, and
 * `timeout` seconds (0 or WEFT_FOREVER: no limit):
 *     weft_run_result r;
 *     if (weft_run_capture((const char *[]){"uname", "-r", NULL}, 5, &r) == 0)
 *         printf("%s", r.out);
 *     weft_run_result_fini(&r);
 * Ownership, threads, @return: as weft_run() (no check of the exit code:
 * read r.exit_code). */
WEFT_API int weft_run_capture(const char *const *argv, double timeout, weft_run_result *res);

/* weft_run_result_fini() :
 * Frees the captured output of `res` and zeroes it. NULL is a no-op; a
 * zeroed or already finalised result is fine. Threads: the owner's.
 * @return 0. */
WEFT_API int weft_run_result_fini(weft_run_result *res);

/* ------------------------------------------------------------------------
 * Popen: a child with its pipes open
 * ------------------------------------------------------------------------ */

typedef struct weft_proc weft_proc;

/* The streams of weft_proc_read(): the child's stdout or stderr. */
typedef enum weft_proc_stream {
    WEFT_PROC_STDOUT = 1,
    WEFT_PROC_STDERR = 2,
} weft_proc_stream;

/* weft_popen() :
 * Starts `argv` as weft_run() does and returns at once. Streams set to
 * WEFT_STDIO_PIPE stay open: write the child's stdin with weft_proc_write(),
 * read its stdout/stderr with weft_proc_read() and weft_proc_read_line().
 * opts.input and opts.timeout are used only by weft_proc_communicate().
 * Ownership: the caller destroys `*out` with weft_proc_destroy().
 * Threads: safe from any thread.
 * @return 0, or the errors of weft_run() that mean nothing was started;
 * `*out` is NULL on error. */
WEFT_API int weft_popen(const char *const *argv, const weft_run_opts *opts, weft_proc **out);

/* weft_popen_shell() : weft_popen() of {"/bin/sh", "-c", command}. */
WEFT_API int weft_popen_shell(const char *command, const weft_run_opts *opts, weft_proc **out);

/* weft_proc_pid() : the child's process id (its process group id too, if it
 * has its own group), or -1 for NULL. */
WEFT_API int weft_proc_pid(const weft_proc *p);

/* weft_proc_write() :
 * Writes `buf[0..len)` to the child's stdin, waiting at most `timeout`
 * seconds for room in the pipe (0: write what fits now). `*written` (may be
 * NULL) gets the number of bytes written, also on error. A child that has
 * closed its stdin or exited makes this WEFT_EPIPE, never a SIGPIPE.
 * Threads: one thread at a time per weft_proc, but it may run at the same
 * time as weft_proc_read/_read_line on another thread.
 * @return 0 (all written), WEFT_ETIMEDOUT (not all written in time),
 * WEFT_EPIPE, WEFT_EINVAL (stdin is not a pipe, or was closed), -errno. */
WEFT_API int weft_proc_write(weft_proc *p, const void *buf, size_t len, double timeout,
                             size_t *written);

/* weft_proc_close_stdin() :
 * Closes the pipe to the child's stdin, so that it reads end-of-file.
 * Closing twice is fine. Threads: as weft_proc_write.
 * @return 0, WEFT_EINVAL (NULL, or stdin is not a pipe). */
WEFT_API int weft_proc_close_stdin(weft_proc *p);

/* weft_proc_read() :
 * Reads up to `cap` bytes of the child's `stream` (WEFT_PROC_STDOUT or
 * WEFT_PROC_STDERR) into `buf`, waiting at most `timeout` seconds for the
 * first byte (0: only what is there now). `*got` gets the count.
 * Threads: one thread at a time per stream; stdout and stderr may be read
 * on two threads at once, and as weft_proc_write runs on a third.
 * @return 0 (`*got` >= 1), WEFT_EOF (the child closed the stream and all was
 * read), WEFT_ETIMEDOUT (nothing came in time, also for timeout 0),
 * WEFT_EINVAL (the stream is not a pipe, cap 0, NULL), -errno. */
WEFT_API int weft_proc_read(weft_proc *p, weft_proc_stream stream, double timeout, void *buf,
                            size_t cap, size_t *got);

/* weft_proc_read_line() :
 * Gives the next line of `stream`, with its '\n' and a NUL after it; the
 * last line may lack the '\n'. Waits at most `timeout` seconds for the line
 * to be complete; a partial line is kept for the next call.
 * Ownership: `*line` belongs to `p` and is valid until the next read on
 * this stream or weft_proc_destroy(). `len` may be NULL.
 * Threads: as weft_proc_read. Mixing it with weft_proc_read is fine: bytes
 * buffered by one are returned by the other first.
 * @return 0, WEFT_EOF (nothing left), WEFT_ETIMEDOUT, WEFT_EINVAL,
 * WEFT_ENOMEM, -errno. */
WEFT_API int weft_proc_read_line(weft_proc *p, weft_proc_stream stream, double timeout,
                                 const char **line, size_t *len);

/* weft_proc_poll() :
 * Checks whether the child has exited, without waiting; if it has, reaps it
 * and fills `*res` (may be NULL) as weft_proc_wait() does.
 * Threads: one thread at a time per weft_proc (not with read or write).
 * @return 1 (exited), 0 (still running), WEFT_EINVAL. */
WEFT_API int weft_proc_poll(weft_proc *p, weft_run_result *res);

/* weft_proc_wait() :
 * Waits at most `timeout` seconds for the child to exit, then fills `*res`
 * (may be NULL) with its status, wall time and resource usage (out and err
 * are NULL: read the pipes with weft_proc_read, or use
 * weft_proc_communicate). Waiting again after the exit gives the same
 * result. As with Popen.wait, a child that fills a pipe nobody reads never
 * exits: read the pipes or use weft_proc_communicate().
 * Ownership: `*res` as in weft_run(). Threads: as weft_proc_poll.
 * @return 0, WEFT_ETIMEDOUT (still running; `*res` zeroed), WEFT_EEXIT (with
 * WEFT_RUN_CHECK: a non-zero exit or a signal), WEFT_EINVAL. */
WEFT_API int weft_proc_wait(weft_proc *p, double timeout, weft_run_result *res);

/* weft_proc_communicate() :
 * Writes opts.input (given at weft_popen) to stdin if it is a pipe and still
 * open, closes it, reads stdout and stderr to their end into res->out and
 * res->err (with any bytes the reads before left buffered), and waits for
 * the child, as weft_run() does -- including opts.timeout, counted from the
 * child's start, and the kill when it passes.
 * Ownership: `*res` as in weft_run(). Threads: as weft_proc_poll.
 * @return as weft_run() after the start: 0, WEFT_ETIMEDOUT, WEFT_EEXIT,
 * WEFT_ENOMEM, WEFT_EINVAL. */
WEFT_API int weft_proc_communicate(weft_proc *p, weft_run_result *res);

/* weft_proc_signal() :
 * Sends `sig` to the child (to its whole process group with `group`; that
 * needs a group of its own: WEFT_RUN_NEW_PGROUP or a timeout). After the child
 * was reaped (wait, poll or communicate saw it exit) nothing is sent: its
 * pid may belong to another process by then.
 * Threads: as weft_proc_poll.
 * @return 0 (sent, or the child is gone), WEFT_EINVAL (bad signal, or
 * `group` without an own group), -errno of kill(). */
WEFT_API int weft_proc_signal(weft_proc *p, int sig, bool group);

/* weft_proc_kill() :
 * Ends the child now: SIGKILL to its process group if it has its own
 * (WEFT_RUN_NEW_PGROUP or a timeout), else to the child alone. Then
 * weft_proc_wait() reaps it.
 * @return as weft_proc_signal(). */
WEFT_API int weft_proc_kill(weft_proc *p);

/* weft_proc_destroy() :
 * Closes the pipes and frees `p`. A child not yet reaped is ended first
 * (SIGKILL, to its group if it has its own) and reaped, so no zombie and no orphan is left:
 * wait for it before, if it should finish. NULL is a no-op.
 * Threads: no other call on `p` may be in progress or follow. @return 0. */
WEFT_API int weft_proc_destroy(weft_proc *p);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_PROC_H */
