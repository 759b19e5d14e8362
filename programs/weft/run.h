/* run.h : one job of the weft command, as a registered weft task.
 *
 * The job travels as bytes (a header, the command, the tag, the stdin
 * data), so the same task runs on a thread of this machine (threads
 * backend) or on another MPI rank (mpi backend). It starts the command with
 * posix_spawn in a process group of its own -- directly from an argv when
 * the command line needs no shell, else with $PARALLEL_SHELL or /bin/sh -c
 * -- feeds it its stdin data, reads its stdout and stderr until both close,
 * and returns a result: exit status, signal, start time, run time, and the
 * output, kept in memory up to a bound and spilled past it into a
 * zstd-compressed file in $TMPDIR.
 *
 * Why not weft_run()/weft_popen() of include/weft/proc.h: weft_run keeps all
 * of a child's output in memory, and weft_popen reads one stream at a time;
 * a job must stream two outputs and an input at once with a memory bound,
 * forward lines as they come (--line-buffer) and be killed with its whole
 * group from a signal handler, so it polls the three pipes itself. */
#ifndef WEFT_CLI_RUN_H
#define WEFT_CLI_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <weft.h>

#include "template.h"

enum {
    WT_JOB_SHELL = 1u << 0,      /* cmd is a shell command line, else NUL-separated argv */
    WT_JOB_UNGROUP = 1u << 1,    /* stdout/stderr inherited (--ungroup) */
    WT_JOB_LINEBUF = 1u << 2,    /* complete lines written to fd 1/2 as they come */
    WT_JOB_STDIN = 1u << 3,      /* feed the data as stdin (--pipe), else /dev/null */
    WT_JOB_INHERIT_IN = 1u << 4, /* stdin inherited (-a / ::: inputs, --tty-like) */
    /* With WT_JOB_STDIN, where the chunk is (the last three only in this
     * process: the threads backend, never --mpi). The data starts with a
     * wt_stdin_ref, then the bytes written before it (--header's record). */
    WT_JOB_STDIN_MEM = 1u << 5,  /* chunk at a pointer of this process (main.c owns it) */
    WT_JOB_STDIN_FILE = 1u << 6, /* chunk is a byte range of an fd: spliced, no copy */
    WT_JOB_STDIN_FEED = 1u << 7, /* chunks taken from a wt_feed (--roundrobin) */
    WT_JOB_PATH = 1u << 8,       /* direct command: first word is the program's path */
};

typedef struct wt_feed wt_feed;

/* Where a job's stdin comes from, for WT_JOB_STDIN_MEM/FILE/FEED. */
typedef struct wt_stdin_ref {
    const char *mem; /* MEM */
    wt_feed *feed;   /* FEED */
    int32_t fd;      /* FILE */
    int32_t pad;
    uint64_t off; /* FILE */
    uint64_t len; /* MEM, FILE */
} wt_stdin_ref;

/* --roundrobin: a bounded queue of chunks that running jobs take from,
 * whichever is ready (one feed shared by all jobs), or one feed per job
 * (-k: the same chunks go to the same job slot in every run). The main
 * thread pushes, the jobs' threads pull; thread-safe. */
wt_feed *wt_feed_create(size_t cap);
/* A job that will pull from `f` is about to start (main thread). */
void wt_feed_add_consumer(wt_feed *f);
/* Hands the chunk `p[0..len)` (inside the malloc'd `own`) to the feed (own is
 * the feed's from now on); waits while the feed is full, up to 100 ms at a
 * time, calling `stop()` between waits. @return 0; -1 when no job pulls
 * any more or stop() said so (own is freed). */
int wt_feed_push(wt_feed *f, char *own, const char *p, size_t len, bool (*stop)(void));
/* No more chunks: the jobs end once they have written what is queued. */
void wt_feed_close(wt_feed *f);
/* Frees the feed (after every job pulling from it has finished). */
void wt_feed_destroy(wt_feed *f);

typedef struct wt_jobhdr {
    uint32_t flags;
    uint32_t slot; /* 1-based job slot: indexes the running-children table */
    uint64_t seq;
    double timeout;     /* seconds; 0: none */
    uint64_t mem_bound; /* bytes of each output kept in memory; 0: no bound */
    uint64_t cmd_len, tag_len, in_len;
} wt_jobhdr;

/* Encodes a job into `b` (cleared first). */
int wt_job_encode(wt_buf *b, const wt_jobhdr *h, const char *cmd, size_t cmd_len, const char *tag,
                  size_t tag_len, const void *in, size_t in_len);

typedef struct wt_result {
    int exit_code; /* 0..255, or -1 when ended by the timeout */
    int signal;    /* the signal that ended it, else 0 */
    int timed_out;
    int skipped;    /* never started: wt_stop_starting() came first */
    int error;      /* errno-style: the spawn failed (ENOENT: 127) or the spill did */
    double start;   /* epoch seconds */
    double runtime; /* seconds */
    uint64_t out_total, err_total; /* bytes the job wrote (also when spilled) */
    uint64_t in_total;             /* bytes given to its stdin (--pipe) */
    /* in memory: the bytes (out_len of them); spilled: a NUL-terminated
     * path of a zstd file */
    const char *out, *err;
    size_t out_len, err_len;
    bool out_spilled, err_spilled;
    char msg[200]; /* what failed, with error != 0 */
} wt_result;

/* Reads a task's output into `r` (pointers into `data`). @return 0 or -1. */
int wt_result_decode(const void *data, size_t len, wt_result *r);

/* The task. */
int weft_cli_job(weft_ctx *ctx, const void *in, size_t len);

/* Writes all of `data` to `fd`, each line prefixed by `tag` (if tag_len):
 * the grouped output of a job. Spilled output is read back with
 * wt_write_spilled. @return 0 or -errno. */
int wt_write_tagged(int fd, const char *tag, size_t tag_len, const char *data, size_t len,
                    bool *at_line_start);
int wt_write_spilled(int fd, const char *path, const char *tag, size_t tag_len);

/* The table of running children (process group ids, by slot), for the
 * second SIGINT/SIGTERM: wt_kill_all is async-signal-safe. */
int wt_children_init(size_t slots);
void wt_kill_all(int sig);
void wt_children_free(void);
/* From now on, a job that has not started its command yet does not start
 * it: its result says `skipped` (the jobs queued ahead of the free slots).
 * Async-signal-safe. */
void wt_stop_starting(void);

/* Set once by the command: serialise line-buffered writes. */
void wt_set_output_lock(void (*lock)(void), void (*unlock)(void));

#endif
