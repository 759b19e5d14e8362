/* subprocess_internal.h : what spawn.c and subprocess.c share. Not installed.
 *
 * A weft_proc is the parent's view of one child: its pid, a pidfd (poll()
 * says readable once the child has exited, without reaping it), the parent
 * ends of its pipes, and, once reaped, its status and rusage.
 *
 * Invariant: the child is reaped (wait4) only after weft is done signalling
 * its process group. An unreaped child -- even a zombie -- pins its pid, and
 * with it the process group id, so kill(-pgid) can never reach a group that
 * a new process made of a recycled pid. After reaping, nothing is sent.
 *
 * weft_run() uses a weft_proc on its own stack; weft_popen() one on the heap. */
#ifndef WEFT_SUBPROCESS_INTERNAL_H
#define WEFT_SUBPROCESS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "internal.h"

/* The parent's end of the child's stdout or stderr. */
typedef struct weft__pstream {
    int fd;    /* non-blocking read end, -1 if not a pipe or closed */
    bool eof;  /* read() gave 0 */
    char *buf; /* bytes read but not yet handed out: buf[off..len) */
    size_t off, len, cap;
    char *line; /* the last line weft_proc_read_line handed out */
    size_t line_cap;
} weft__pstream;

struct weft_proc {
    pid_t pid;
    int pidfd;      /* -1 when the kernel has none (then waitid polling) */
    int in_fd;      /* non-blocking write end of the child's stdin, -1 if none */
    bool in_pipe;   /* stdin was a pipe (even once closed) */
    bool own_group; /* the child leads its own process group */
    bool exited;    /* the child has exited (seen, not necessarily reaped) */
    bool reaped;
    bool timed_out;
    int status; /* wait status, once reaped */
    struct rusage ru;
    uint64_t t0_ns, t_end_ns;
    unsigned flags;
    uint64_t timeout_ns; /* 0: none */
    uint64_t grace_ns;
    const void *input; /* for weft_proc_communicate (a heap copy for popen) */
    size_t input_len;
    bool input_owned;
    weft__pstream out, err;
};

/* Starts `argv` per `o` (already validated by weft__proc_check_opts) into
 * `p` (zeroed by the caller). `want_pidfd`: open a pidfd for the child.
 * `fn` names the public call for messages. @return 0 or a WEFT_E* code with
 * weft_last_error() set; on error nothing is left open and no child runs. */
int weft__proc_spawn(const char *const *argv, const weft_run_opts *o, bool want_pidfd, weft_proc *p,
                     const char *fn);

/* Tests set it to make weft__proc_spawn open no pidfd, to exercise the
 * waitid polling that kernels before 5.3 need. Not for other use. */
extern _Atomic int weft__proc_no_pidfd;

/* Validates options and argv: 0 or WEFT_EINVAL with a message. */
int weft__proc_check(const char *const *argv, const weft_run_opts *o, const char *fn);

/* The stdin mode in effect (input set with INHERIT selects PIPE). */
weft_stdio_mode weft__proc_in_mode(const weft_run_opts *o);

#endif
