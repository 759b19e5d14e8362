/* main.c : the weft command -- GNU parallel's syntax on weft's executor.
 *
 * Shape of a run: options are read (opts.c-style, below), the input sources
 * are opened, and the main thread makes jobs one at a time: it takes the
 * next records, expands the command template (template.c), and submits a
 * `weft_cli_job` task (run.c) when a job slot is free. The executor runs
 * the task on a thread (or, with --mpi, on another rank); when it finishes,
 * its future's callback queues it and posts a semaphore; the main thread
 * writes the job's output (at once, or in input order with -k), its joblog
 * line, and decides on retries and --halt. So the main thread is the only
 * one that touches the job table, the output and the joblog; the tasks
 * touch only their own job, and (--line-buffer) stdout under a mutex.
 *
 * Signals: the first SIGINT/SIGTERM stops the making of jobs and lets the
 * running ones finish; the second kills their process groups (run.c keeps
 * the table of groups, read by the handler). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <weft.h>

#include "run.h"
#include "template.h"

#define MAX_LINE (120 * 1000) /* -X/-m: longest command line made (Linux: 128 KiB an argument) */

/* ---------------------------------------------------------------- options */

typedef struct halt_spec {
    bool on;
    bool now;        /* now: kill running jobs; soon: let them finish */
    bool on_success; /* success=..., else fail=... */
    double count;    /* N, or a percentage with pct */
    bool pct;
} halt_spec;

typedef struct source {
    char **v; /* values (::: words, or records of a file) */
    size_t n, cap;
    bool linked;      /* :::+ / ::::+ : linked to the previous source */
    const char *file; /* ::::/-a: read from this file ("-": stdin) */
} source;

typedef struct opts {
    const char *jobs_spec;
    bool keep, null, quote, xctx, multi, dry, linebuf, ungroup, tag, pipe, shuf, mpi, verbose;
    bool resume, resume_failed, retry_failed, bar, eta, progress, no_empty, roundrobin;
    char delim;
    const char *colsep, *header, *tagstring, *results, *joblog;
    long nargs; /* -N / -n: 0 = one record per job */
    bool nargs_set;
    wt_rpl rpl;
    int retries;
    double timeout, timeout_pct, delay;
    halt_spec halt;
    unsigned long long block;
    long lines; /* -L */
    const char *recstart, *recend;
    uint64_t mem_bound;
    source *src;
    size_t nsrc;
    char **cmd;
    size_t ncmd;
} opts;

static const char *prog = "weft";

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) die(255, "out of memory");
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) die(255, "out of memory");
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void src_add(source *s, const char *v, size_t n)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->v = xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = xstrndup(v, n);
}

static source *new_source(opts *o, bool linked, const char *file)
{
    o->src = xrealloc(o->src, (o->nsrc + 1) * sizeof *o->src);
    source *s = &o->src[o->nsrc++];
    memset(s, 0, sizeof *s);
    s->linked = linked;
    s->file = file;
    return s;
}

static void usage(FILE *f)
{
    fputs("Usage: weft [OPTIONS] [COMMAND [ARGS]] [::: ARGS...] [:::: FILES...]\n"
          "Runs COMMAND once per input, in parallel, with GNU parallel's syntax.\n"
          "\n"
          "Inputs:\n"
          "  ::: a b c        arguments; several ::: give every combination\n"
          "  :::+ a b c       linked to the source before (taken side by side)\n"
          "  :::: file        lines of a file (::::+ linked); no source: stdin\n"
          "  -a, --arg-file F   as :::: F          -0, --null   NUL ends a record\n"
          "  -d, --delimiter D  D ends a record    -C, --colsep RE  split records into columns\n"
          "  -N n, -n n       n records per job    -X / -m  as many as fit (-X: per word)\n"
          "  --header :       first value of each source names it: {name}\n"
          "  -r, --no-run-if-empty  skip empty records\n"
          "Replacement strings: {} {.} {/} {//} {/.} {#} {%} {n} {n.} {n/} {n//} {n/.};\n"
          "  -I str, --extensionreplace, --basenamereplace, --dirnamereplace,\n"
          "  --basenameextensionreplace, --seqreplace, --slotreplace change them.\n"
          "  Without one, the arguments are appended. -q quotes the command.\n"
          "Running:\n"
          "  -j N, -j +N, -j -N, -j 50%, -j 0   job slots (default: CPU count)\n"
          "  -k, --keep-order   output in input order\n"
          "  --group (default), --line-buffer, -u/--ungroup, --tag, --tagstring STR, -v\n"
          "  --results DIR, --joblog FILE, --resume, --resume-failed, --retry-failed\n"
          "  --retries N, --timeout SECS|N%, --halt now|soon,fail|success=N|N%\n"
          "  --delay SECS, --bar, --eta, --progress, --dry-run, --shuf\n"
          "  --pipe [--block SIZE] [-L N] [--recstart S] [--recend S] [--header :]\n"
          "  --roundrobin       --pipe with at most -j jobs, each fed chunks as it reads\n"
          "  --mpi              under mpirun: jobs run on every worker rank\n"
          "  --output-memory SIZE  output kept in memory per job before it is\n"
          "                     spilled (zstd) to $TMPDIR (default 4M)\n"
          "Commands without shell syntax run directly (no shell); others with\n"
          "$PARALLEL_SHELL or /bin/sh -c. Exit status: the number of failed jobs\n"
          "(101: more than 100), the failing job's with --halt, 255 on error.\n"
          "See weft(1) and docs/cli.md.\n",
          f);
}

/* Options that take a value; `key` is the long name without dashes. */
static const char *const with_value[] = {"jobs",
                                         "arg-file",
                                         "delimiter",
                                         "colsep",
                                         "max-args",
                                         "header",
                                         "extensionreplace",
                                         "basenamereplace",
                                         "dirnamereplace",
                                         "basenameextensionreplace",
                                         "seqreplace",
                                         "slotreplace",
                                         "tagstring",
                                         "results",
                                         "joblog",
                                         "retries",
                                         "timeout",
                                         "halt",
                                         "delay",
                                         "block",
                                         "max-lines",
                                         "recstart",
                                         "recend",
                                         "output-memory",
                                         "replace",
                                         "N",
                                         NULL};

static bool takes_value(const char *k)
{
    for (int i = 0; with_value[i]; i++)
        if (strcmp(k, with_value[i]) == 0) return true;
    return false;
}

static double parse_num(const char *name, const char *v)
{
    char *e;
    errno = 0;
    double d = strtod(v, &e);
    if (e == v || *e || errno || !isfinite(d) || d < 0)
        die(255, "--%s: '%s' is not a number of seconds or a count", name, v);
    return d;
}

static void parse_halt(halt_spec *h, const char *v)
{
    /* legacy forms: 0 (never), 1 (soon,fail=1), 2 (now,fail=1) */
    if (strcmp(v, "0") == 0 || strcmp(v, "never") == 0) return;
    if (strcmp(v, "1") == 0) {
        *h = (halt_spec){.on = true, .count = 1};
        return;
    }
    if (strcmp(v, "2") == 0) {
        *h = (halt_spec){.on = true, .now = true, .count = 1};
        return;
    }
    const char *c = strchr(v, ',');
    if (!c) die(255, "--halt: expected now|soon,fail|success=N|N%%, got '%s'", v);
    if (strncmp(v, "now", (size_t)(c - v)) == 0 && c - v == 3)
        h->now = true;
    else if (!(strncmp(v, "soon", 4) == 0 && c - v == 4))
        die(255, "--halt: '%s': when must be now or soon", v);
    const char *w = c + 1;
    const char *eq = strchr(w, '=');
    if (!eq) die(255, "--halt: '%s': expected fail=N or success=N", v);
    if (strncmp(w, "fail", 4) == 0 && eq - w == 4)
        h->on_success = false;
    else if (strncmp(w, "success", 7) == 0 && eq - w == 7)
        h->on_success = true;
    else if (strncmp(w, "done", 4) == 0 && eq - w == 4)
        die(255, "--halt ...,done=N is not supported (see docs/cli.md)");
    else
        die(255, "--halt: '%s': expected fail or success", v);
    char *e;
    h->count = strtod(eq + 1, &e);
    if (*e == '%') {
        h->pct = true;
        e++;
    }
    if (*e || h->count <= 0) die(255, "--halt: '%s': bad count", v);
    h->on = true;
}

static void set_option(opts *o, const char *k, const char *v)
{
    if (!strcmp(k, "jobs") || !strcmp(k, "j") || !strcmp(k, "P")) {
        o->jobs_spec = v;
    } else if (!strcmp(k, "arg-file") || !strcmp(k, "a")) {
        new_source(o, false, v);
    } else if (!strcmp(k, "delimiter") || !strcmp(k, "d")) {
        if (wt_parse_delim(v, &o->delim)) die(255, "-d: '%s' is not one character", v);
    } else if (!strcmp(k, "colsep") || !strcmp(k, "C")) {
        o->colsep = v;
    } else if (!strcmp(k, "max-args") || !strcmp(k, "n") || !strcmp(k, "N")) {
        char *e;
        o->nargs = strtol(v, &e, 10);
        if (*e || o->nargs < 0) die(255, "-%s: '%s' is not a count", k, v);
        o->nargs_set = true;
    } else if (!strcmp(k, "header")) {
        o->header = v;
    } else if (!strcmp(k, "I") || !strcmp(k, "replace")) {
        o->rpl.s[WT_R_ARG] = v;
    } else if (!strcmp(k, "extensionreplace") || !strcmp(k, "U")) {
        o->rpl.s[WT_R_NOEXT] = v;
    } else if (!strcmp(k, "basenamereplace")) {
        o->rpl.s[WT_R_BASE] = v;
    } else if (!strcmp(k, "dirnamereplace")) {
        o->rpl.s[WT_R_DIR] = v;
    } else if (!strcmp(k, "basenameextensionreplace")) {
        o->rpl.s[WT_R_BASENOEXT] = v;
    } else if (!strcmp(k, "seqreplace")) {
        o->rpl.s[WT_R_SEQ] = v;
    } else if (!strcmp(k, "slotreplace")) {
        o->rpl.s[WT_R_SLOT] = v;
    } else if (!strcmp(k, "tagstring")) {
        o->tagstring = v;
        o->tag = true;
    } else if (!strcmp(k, "results") || !strcmp(k, "res")) {
        o->results = v;
    } else if (!strcmp(k, "joblog")) {
        o->joblog = v;
    } else if (!strcmp(k, "retries")) {
        o->retries = (int)parse_num(k, v);
    } else if (!strcmp(k, "timeout")) {
        size_t l = strlen(v);
        if (l > 1 && v[l - 1] == '%') {
            char *t = xstrndup(v, l - 1);
            o->timeout_pct = parse_num(k, t);
            free(t);
        } else {
            o->timeout = parse_num(k, v);
        }
    } else if (!strcmp(k, "halt") || !strcmp(k, "halt-on-error")) {
        parse_halt(&o->halt, v);
    } else if (!strcmp(k, "delay")) {
        o->delay = parse_num(k, v);
    } else if (!strcmp(k, "block") || !strcmp(k, "block-size")) {
        if (wt_parse_size(v, &o->block) || o->block == 0) die(255, "--block: bad size '%s'", v);
    } else if (!strcmp(k, "max-lines") || !strcmp(k, "L")) {
        char *e;
        o->lines = strtol(v, &e, 10);
        if (*e || o->lines <= 0) die(255, "-L: '%s' is not a count", v);
    } else if (!strcmp(k, "recstart")) {
        o->recstart = v;
    } else if (!strcmp(k, "recend")) {
        o->recend = v;
    } else if (!strcmp(k, "output-memory")) {
        unsigned long long b;
        if (wt_parse_size(v, &b)) die(255, "--output-memory: bad size '%s'", v);
        o->mem_bound = b ? b : 1;
    } else {
        die(255, "unknown option --%s (weft --help lists them)", k);
    }
}

static bool set_flag(opts *o, const char *k)
{
    static const struct {
        const char *name;
        size_t off;
    } flags[] = {
        {"k", offsetof(opts, keep)},
        {"keep-order", offsetof(opts, keep)},
        {"0", offsetof(opts, null)},
        {"null", offsetof(opts, null)},
        {"q", offsetof(opts, quote)},
        {"quote", offsetof(opts, quote)},
        {"X", offsetof(opts, xctx)},
        {"xargs", offsetof(opts, multi)},
        {"m", offsetof(opts, multi)},
        {"dry-run", offsetof(opts, dry)},
        {"dryrun", offsetof(opts, dry)},
        {"line-buffer", offsetof(opts, linebuf)},
        {"lb", offsetof(opts, linebuf)},
        {"linebuffer", offsetof(opts, linebuf)},
        {"u", offsetof(opts, ungroup)},
        {"ungroup", offsetof(opts, ungroup)},
        {"tag", offsetof(opts, tag)},
        {"pipe", offsetof(opts, pipe)},
        {"spreadstdin", offsetof(opts, pipe)},
        {"shuf", offsetof(opts, shuf)},
        {"mpi", offsetof(opts, mpi)},
        {"v", offsetof(opts, verbose)},
        {"resume", offsetof(opts, resume)},
        {"resume-failed", offsetof(opts, resume_failed)},
        {"retry-failed", offsetof(opts, retry_failed)},
        {"bar", offsetof(opts, bar)},
        {"eta", offsetof(opts, eta)},
        {"progress", offsetof(opts, progress)},
        {"r", offsetof(opts, no_empty)},
        {"no-run-if-empty", offsetof(opts, no_empty)},
        {"roundrobin", offsetof(opts, roundrobin)},
        {"round-robin", offsetof(opts, roundrobin)},
    };
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        if (strcmp(k, flags[i].name) == 0) {
            *(bool *)((char *)o + flags[i].off) = true;
            return true;
        }
    }
    /* accepted and ignored: weft prints no notice, groups by default */
    static const char *const ignored[] = {"will-cite", "willcite", "no-notice", "nonotice", "group",
                                          "g",         "plain",    "silent",    "gnu",      NULL};
    for (int i = 0; ignored[i]; i++)
        if (strcmp(k, ignored[i]) == 0) return true;
    return false;
}

static bool is_sep(const char *a)
{
    return !strcmp(a, ":::") || !strcmp(a, ":::+") || !strcmp(a, "::::") || !strcmp(a, "::::+");
}

static void parse_args(opts *o, int argc, char **argv)
{
    int i = 1;
    for (; i < argc; i++) {
        char *a = argv[i];
        if (is_sep(a)) break;
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0') break;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--version") || !strcmp(a, "-V")) {
            printf("weft %s (GNU parallel's syntax)\n", weft_version());
            exit(0);
        }
        if (a[1] == '-') {
            char *k = a + 2, *eq = strchr(k, '=');
            char key[64];
            const char *val = NULL;
            size_t kl = eq ? (size_t)(eq - k) : strlen(k);
            if (kl >= sizeof key) die(255, "unknown option %s", a);
            memcpy(key, k, kl);
            key[kl] = '\0';
            if (eq) val = eq + 1;
            if (!val && set_flag(o, key)) continue;
            if (!takes_value(key) && strcmp(key, "res") && strcmp(key, "halt-on-error") &&
                strcmp(key, "block-size"))
                die(255, "unknown option %s (weft --help lists them)", a);
            if (!val) {
                if (++i >= argc) die(255, "option %s needs a value", a);
                val = argv[i];
            }
            set_option(o, key, val);
            continue;
        }
        /* short options, bundled flags: -kq, -j4, -j 4 */
        for (char *c = a + 1; *c; c++) {
            char key[2] = {*c, 0};
            if (strchr("jPadCnNILU", *c)) {
                const char *val = c[1] ? c + 1 : NULL;
                if (!val) {
                    if (++i >= argc) die(255, "option -%c needs a value", *c);
                    val = argv[i];
                }
                set_option(o, key, val);
                break;
            }
            if (!set_flag(o, key)) die(255, "unknown option -%c (weft --help lists them)", *c);
        }
    }
    /* the command: up to the first source separator */
    int c0 = i;
    while (i < argc && !is_sep(argv[i])) i++;
    o->cmd = argv + c0;
    o->ncmd = (size_t)(i - c0);
    /* the sources */
    while (i < argc) {
        const char *sep = argv[i++];
        bool linked = sep[strlen(sep) - 1] == '+';
        bool files = !strncmp(sep, "::::", 4);
        if (files) {
            for (; i < argc && !is_sep(argv[i]); i++) {
                new_source(o, linked, argv[i]);
                linked = false;
            }
        } else {
            source *s = new_source(o, linked, NULL);
            for (; i < argc && !is_sep(argv[i]); i++) {
                /* as GNU parallel: a newline inside a ::: word ends a record */
                const char *w = argv[i];
                for (;;) {
                    const char *nl = strchr(w, '\n');
                    if (!nl) {
                        src_add(s, w, strlen(w));
                        break;
                    }
                    src_add(s, w, (size_t)(nl - w));
                    w = nl + 1;
                    if (!*w) break;
                }
            }
        }
    }
}

/* ----------------------------------------------------------------- inputs */

/* One record: its columns. */
typedef struct rec {
    const char **v;
    size_t *l;
    size_t n;
} rec;

typedef struct input {
    opts *o;
    bool stream; /* one file/stdin source read as it goes */
    int fd;
    wt_split sp;
    bool eof;
    wt_colsep *colsep;
    wt_buf colbuf;
    size_t *collens;
    /* loaded sources: per source, per value, the columns */
    size_t nsrc;
    size_t *count; /* values per source */
    rec **vals;    /* vals[s][i] */
    size_t ngroups;
    size_t *group_of; /* source -> group; sources of a group advance together */
    size_t *group_len;
    uint64_t total, next; /* odometer position */
    uint64_t *perm;       /* --shuf */
    /* the current record */
    const char **cv;
    size_t *cl;
    size_t cn, ccap;
    char **names;
    size_t nnames;
    size_t *skip; /* values of a source taken as its header */
} input;

static void rec_free(rec *r)
{
    for (size_t i = 0; i < r->n; i++) free((char *)r->v[i]);
    free(r->v);
    free(r->l);
}

static void input_free(input *in)
{
    wt_split_free(&in->sp);
    wt_colsep_free(in->colsep);
    if (in->stream && in->fd > 0) close(in->fd);
    for (size_t s = 0; s < in->nsrc; s++) {
        rec *base = in->vals[s] - in->skip[s];
        for (size_t i = 0; i < in->count[s] + in->skip[s]; i++) rec_free(&base[i]);
        free(base);
    }
    free(in->vals);
    free(in->count);
    free(in->group_of);
    free(in->group_len);
    free(in->skip);
    free(in->perm);
    free(in->cv);
    free(in->cl);
    for (size_t i = 0; i < in->nnames; i++) free(in->names[i]);
    free(in->names);
}

static void split_cols(input *in, const char *s, size_t n, rec *r)
{
    if (!in->colsep) {
        r->n = 1;
        r->v = xmalloc(sizeof *r->v);
        r->l = xmalloc(sizeof *r->l);
        r->v[0] = xstrndup(s, n);
        r->l[0] = n;
        return;
    }
    wt_buf b = {0};
    size_t *lens, cnt;
    if (wt_colsep_split(in->colsep, s, n, &b, &lens, &cnt)) die(255, "out of memory");
    r->n = cnt;
    r->v = xmalloc(cnt * sizeof *r->v);
    r->l = lens;
    size_t off = 0;
    for (size_t i = 0; i < cnt; i++) {
        r->v[i] = xstrndup(b.p + off, lens[i]);
        off += lens[i] + 1;
    }
    wt_buf_free(&b);
}

static int open_file(const char *path)
{
    if (!strcmp(path, "-")) return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die(255, "cannot open input file '%s': %s", path, strerror(errno));
    return fd;
}

/* Reads the next record of a stream. @return 1, or 0 at the end. */
static int stream_next(input *in, const char **r, size_t *l)
{
    for (;;) {
        if (wt_split_next(&in->sp, r, l)) return 1;
        if (in->eof) return 0;
        char buf[1 << 16];
        ssize_t got = read(in->fd, buf, sizeof buf);
        if (got < 0) {
            if (errno == EINTR) continue;
            die(255, "reading input: %s", strerror(errno));
        }
        if (got == 0) {
            in->eof = true;
            wt_split_finish(&in->sp);
        } else if (wt_split_feed(&in->sp, buf, (size_t)got)) {
            die(255, "out of memory");
        }
    }
}

static void load_source(input *in, size_t s, source *src)
{
    size_t cap = 16, n = 0;
    rec *v = xmalloc(cap * sizeof *v);
    if (src->file) {
        int fd = open_file(src->file);
        input tmp = {.fd = fd};
        wt_split_init(&tmp.sp, in->sp.delim);
        const char *r;
        size_t l;
        while (stream_next(&tmp, &r, &l)) {
            if (n == cap) v = xrealloc(v, (cap *= 2) * sizeof *v);
            split_cols(in, r, l, &v[n++]);
        }
        wt_split_free(&tmp.sp);
        if (fd > 0) close(fd);
    } else {
        for (size_t i = 0; i < src->n; i++) {
            if (n == cap) v = xrealloc(v, (cap *= 2) * sizeof *v);
            split_cols(in, src->v[i], strlen(src->v[i]), &v[n++]);
        }
    }
    in->vals[s] = v;
    in->count[s] = n;
}

static void add_names(input *in, const rec *r)
{
    for (size_t i = 0; i < r->n; i++) {
        in->names = xrealloc(in->names, (in->nnames + 1) * sizeof *in->names);
        in->names[in->nnames++] = xstrndup(r->v[i], r->l[i]);
    }
}

static void input_open(input *in, opts *o, size_t jobs_hint)
{
    (void)jobs_hint;
    memset(in, 0, sizeof *in);
    in->o = o;
    wt_split_init(&in->sp, o->null ? '\0' : o->delim);
    if (o->colsep && wt_colsep_compile(o->colsep, &in->colsep))
        die(255, "--colsep: '%s' is not a valid regular expression", o->colsep);
    if (o->nsrc == 0) new_source(o, false, "-");
    bool header = o->header != NULL;
    if (o->nsrc == 1 && o->src[0].file && !o->shuf && !o->xctx && !o->multi) {
        in->stream = true;
        in->fd = open_file(o->src[0].file);
        if (header) {
            const char *r;
            size_t l;
            if (stream_next(in, &r, &l)) {
                rec hr;
                split_cols(in, r, l, &hr);
                add_names(in, &hr);
                rec_free(&hr);
            }
        }
        return;
    }
    in->nsrc = o->nsrc;
    in->count = xmalloc(o->nsrc * sizeof *in->count);
    in->vals = xmalloc(o->nsrc * sizeof *in->vals);
    in->group_of = xmalloc(o->nsrc * sizeof *in->group_of);
    in->group_len = xmalloc(o->nsrc * sizeof *in->group_len);
    in->skip = xmalloc(o->nsrc * sizeof *in->skip);
    for (size_t s = 0; s < o->nsrc; s++) {
        load_source(in, s, &o->src[s]);
        in->skip[s] = 0;
        if (header && in->count[s] > 0) {
            add_names(in, &in->vals[s][0]);
            in->vals[s]++;
            in->count[s]--;
            in->skip[s] = 1;
        }
        if (s == 0 || !o->src[s].linked) {
            in->group_len[in->ngroups] = 0;
            in->ngroups++;
        }
        size_t g = in->ngroups - 1;
        in->group_of[s] = g;
        /* linked sources: as long as the shortest (GNU parallel 20221122) */
        if (s == 0 || !o->src[s].linked || in->count[s] < in->group_len[g])
            in->group_len[g] = in->count[s];
    }
    in->total = 1;
    for (size_t g = 0; g < in->ngroups; g++) {
        if (in->group_len[g] == 0) {
            in->total = 0;
            break;
        }
        if (in->total > UINT64_MAX / in->group_len[g]) die(255, "too many combinations");
        in->total *= in->group_len[g];
    }
    if (o->shuf && in->total) {
        if (in->total > SIZE_MAX / sizeof(uint64_t)) die(255, "too many jobs to shuffle");
        in->perm = xmalloc(in->total * sizeof *in->perm);
        for (uint64_t i = 0; i < in->total; i++) in->perm[i] = i;
        uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
        for (uint64_t i = in->total - 1; i > 0; i--) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            uint64_t j = x % (i + 1), t = in->perm[i];
            in->perm[i] = in->perm[j];
            in->perm[j] = t;
        }
    }
}

static void cur_add(input *in, const char *v, size_t l)
{
    if (in->cn == in->ccap) {
        in->ccap = in->ccap ? in->ccap * 2 : 8;
        in->cv = xrealloc(in->cv, in->ccap * sizeof *in->cv);
        in->cl = xrealloc(in->cl, in->ccap * sizeof *in->cl);
    }
    in->cv[in->cn] = v;
    in->cl[in->cn++] = l;
}

/* Appends the next record's columns to the current argument list (the
 * caller resets in->cn per job). Stream records are copied into `keep`.
 * @return 1, or 0 at the end of input. */
static int input_next(input *in, wt_buf *keep, size_t *keep_off)
{
    if (in->stream) {
        const char *r;
        size_t l;
        for (;;) {
            if (!stream_next(in, &r, &l)) return 0;
            if (in->o->no_empty && l == 0) continue;
            break;
        }
        if (!in->colsep) {
            keep_off[in->cn] = keep->len;
            if (wt_buf_add(keep, r, l) || wt_buf_addc(keep, '\0')) die(255, "out of memory");
            cur_add(in, NULL, l);
            return 1;
        }
        wt_buf b = {0};
        size_t *lens, cnt;
        if (wt_colsep_split(in->colsep, r, l, &b, &lens, &cnt)) die(255, "out of memory");
        size_t off = 0;
        for (size_t i = 0; i < cnt; i++) {
            keep_off[in->cn] = keep->len;
            if (wt_buf_add(keep, b.p + off, lens[i]) || wt_buf_addc(keep, '\0'))
                die(255, "out of memory");
            cur_add(in, NULL, lens[i]);
            off += lens[i] + 1;
        }
        free(lens);
        wt_buf_free(&b);
        return 1;
    }
    for (;;) {
        if (in->next >= in->total) return 0;
        uint64_t k = in->perm ? in->perm[in->next] : in->next;
        in->next++;
        /* the odometer: the last group varies fastest */
        uint64_t idx[64];
        uint64_t rest = k;
        size_t ng = in->ngroups;
        uint64_t *ix = ng <= 64 ? idx : xmalloc(ng * sizeof *ix);
        for (size_t g = ng; g-- > 0;) {
            ix[g] = rest % in->group_len[g];
            rest /= in->group_len[g];
        }
        bool empty = true;
        size_t start = in->cn;
        for (size_t s = 0; s < in->nsrc; s++) {
            uint64_t i = ix[in->group_of[s]] % in->count[s]; /* linked: shorter ones wrap */
            rec *r = &in->vals[s][i];
            for (size_t c = 0; c < r->n; c++) {
                cur_add(in, r->v[c], r->l[c]);
                if (r->l[c]) empty = false;
            }
        }
        if (ix != idx) free(ix);
        if (in->o->no_empty && empty) {
            in->cn = start;
            continue;
        }
        return 1;
    }
}

/* ------------------------------------------------------------------- jobs */

typedef struct job {
    uint64_t seq;
    unsigned slot;
    char *cmd; /* expanded, for the joblog and -v */
    size_t cmd_len;
    char *tag;
    size_t tag_len;
    char *results_dir;
    wt_buf enc;
    char *chunk_own; /* --pipe: the buffer its chunk is in (WT_JOB_STDIN_MEM) */
    weft_future *f;
    int attempts;
    bool done;
    uint64_t send;
    struct job *next_done;
} job;

static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;
static job *done_head, *done_tail;
static sem_t done_sem;
static volatile sig_atomic_t sig_count, sig_last;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static void lock_out(void)
{
    pthread_mutex_lock(&out_mu);
}

static void unlock_out(void)
{
    pthread_mutex_unlock(&out_mu);
}

static void on_done(weft_future *f, void *arg)
{
    (void)f;
    job *j = arg;
    pthread_mutex_lock(&done_mu);
    j->next_done = NULL;
    if (done_tail)
        done_tail->next_done = j;
    else
        done_head = j;
    done_tail = j;
    pthread_mutex_unlock(&done_mu);
    sem_post(&done_sem);
}

static bool rr_stop(void)
{
    return sig_count != 0;
}

static void on_signal(int sig)
{
    sig_last = sig;
    wt_stop_starting();
    if (++sig_count >= 2) wt_kill_all(SIGKILL);
    sem_post(&done_sem);
}

typedef struct run {
    opts *o;
    weft_executor *ex;
    int slots;
    unsigned *free_slots;
    int nfree;
    int running;
    /* -k: jobs in seq order not yet written */
    job **ring;
    uint64_t ring_cap, ring_head_seq, ring_count;
    uint64_t last_seq; /* the highest seq made (or skipped by --resume) so far */
    FILE *joblog;
    uint64_t failed, succeeded, finished;
    int halt_exit;
    bool halting, stop_making, spill_error;
    weft_progress *bar;
    double *runtimes;
    size_t nrt, rtcap;
    double median;
    size_t median_at;
    /* --resume */
    uint8_t *logged; /* by seq: 1 ok, 2 failed */
    uint64_t nlogged;
    /* --roundrobin */
    wt_feed **feeds;
    size_t nfeeds;
} run;

static void write_out(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EPIPE) exit(255);
            die(255, "writing output: %s", strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
}

static void write_job_output(run *R, job *j, const wt_result *r)
{
    opts *o = R->o;
    if (o->verbose) {
        write_out(1, j->cmd, j->cmd_len);
        write_out(1, "\n", 1);
    }
    if (o->ungroup || o->linebuf) return;
    bool ls = true;
    const char *tg = o->tag ? j->tag : NULL;
    size_t tl = o->tag ? j->tag_len : 0;
    for (int k = 0; k < 2; k++) {
        int fd = k ? 2 : 1;
        bool spilled = k ? r->err_spilled : r->out_spilled;
        const char *p = k ? r->err : r->out;
        size_t n = k ? r->err_len : r->out_len;
        ls = true;
        if (spilled) {
            int rc = wt_write_spilled(fd, p, tg, tl);
            unlink(p);
            if (rc) {
                fprintf(stderr, "%s: job %llu: cannot read its spilled output %s: %s\n", prog,
                        (unsigned long long)j->seq, p, strerror(-rc));
                R->spill_error = true;
            }
        } else if (n) {
            if (wt_write_tagged(fd, tg, tl, p, n, &ls)) {
                if (errno == EPIPE) exit(255);
                die(255, "writing output: %s", strerror(errno));
            }
        }
    }
}

static void write_results(run *R, job *j, const wt_result *r)
{
    (void)R;
    if (!j->results_dir) return;
    char path[PATH_MAX];
    static const char *const names[3] = {"stdout", "stderr", "seq"};
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/%s", j->results_dir, names[k]);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
        if (fd < 0) {
            fprintf(stderr, "%s: --results: cannot create %s: %s\n", prog, path, strerror(errno));
            continue;
        }
        if (k == 2) {
            char s[32];
            int l = snprintf(s, sizeof s, "%llu\n", (unsigned long long)j->seq);
            write_out(fd, s, (size_t)l);
        } else {
            bool spilled = k ? r->err_spilled : r->out_spilled;
            const char *p = k ? r->err : r->out;
            size_t n = k ? r->err_len : r->out_len;
            if (spilled)
                wt_write_spilled(fd, p, NULL, 0);
            else
                write_out(fd, p, n);
        }
        close(fd);
    }
}

static void joblog_line(run *R, job *j, const wt_result *r)
{
    if (!R->joblog) return;
    fprintf(R->joblog, "%llu\t:\t%.3f\t%10.3f\t%llu\t%llu\t%d\t%d\t", (unsigned long long)j->seq,
            r->start, r->runtime, (unsigned long long)j->send, (unsigned long long)r->out_total,
            r->exit_code, r->signal);
    for (size_t i = 0; i < j->cmd_len; i++) fputc(j->cmd[i] == '\n' ? '\0' : j->cmd[i], R->joblog);
    fputc('\n', R->joblog);
    fflush(R->joblog);
}

static void job_free(job *j)
{
    if (j->f) weft_future_release(j->f);
    wt_buf_free(&j->enc);
    free(j->chunk_own);
    free(j->cmd);
    free(j->tag);
    free(j->results_dir);
    free(j);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void halt_check(run *R, const wt_result *r, bool failed)
{
    halt_spec *h = &R->o->halt;
    if (!h->on || R->halting) return;
    uint64_t n = h->on_success ? R->succeeded : R->failed;
    if (failed == h->on_success) return;
    bool trip;
    if (h->pct) {
        uint64_t base = R->finished;
        trip = base >= 3 && (double)n * 100.0 >= h->count * (double)base;
    } else {
        trip = (double)n >= h->count;
    }
    if (!trip) return;
    R->halting = true;
    R->stop_making = true;
    wt_stop_starting();
    R->halt_exit = h->on_success ? 0 : (r->exit_code > 0 ? r->exit_code : 1);
    if (r->signal && !h->on_success) R->halt_exit = 128 + r->signal;
    if (h->now) wt_kill_all(SIGTERM);
}

static void submit(run *R, job *j);
static void flush_ring(run *R);

/* One finished job: @return true when it is final (not retried). */
static bool job_finished(run *R, job *j)
{
    const void *data = NULL;
    size_t len = 0;
    int rc = weft_future_result(j->f, WEFT_FOREVER, &data, &len);
    wt_result r;
    if (rc != 0 || wt_result_decode(data, len, &r)) {
        memset(&r, 0, sizeof r);
        r.exit_code = 255;
        snprintf(r.msg, sizeof r.msg, "%s", rc ? weft_future_error(j->f) : "bad job result");
        r.error = EIO;
        r.out = r.err = "";
    }
    if (r.skipped) return true; /* queued, never started: no output, joblog line or count */
    bool failed = r.exit_code != 0 || r.signal != 0 || (r.error && r.exit_code == 0);
    if (r.error && r.error != ENOENT && r.exit_code != 127 && r.exit_code != 126) {
        fprintf(stderr, "%s: job %llu: %s\n", prog, (unsigned long long)j->seq, r.msg);
        R->spill_error = true;
        failed = true;
    } else if (r.error) {
        fprintf(stderr, "%s: %s\n", prog, r.msg);
    }
    if (failed && j->attempts < R->o->retries && !R->stop_making && !sig_count &&
        !R->o->roundrobin) {
        /* drop this attempt's output, run it again in the same slot */
        if (r.out_spilled) unlink(r.out);
        if (r.err_spilled) unlink(r.err);
        weft_future_release(j->f);
        j->f = NULL;
        submit(R, j);
        return false;
    }
    if (r.timed_out && !r.signal) r.signal = SIGTERM;
    R->finished++;
    if (failed)
        R->failed++;
    else {
        R->succeeded++;
        if (R->o->timeout_pct > 0) {
            if (R->nrt == R->rtcap) {
                R->rtcap = R->rtcap ? R->rtcap * 2 : 64;
                R->runtimes = xrealloc(R->runtimes, R->rtcap * sizeof *R->runtimes);
            }
            R->runtimes[R->nrt++] = r.runtime;
            if (R->nrt >= 3 && (R->nrt < 64 || R->nrt >= R->median_at * 2)) {
                double *c = xmalloc(R->nrt * sizeof *c);
                memcpy(c, R->runtimes, R->nrt * sizeof *c);
                qsort(c, R->nrt, sizeof *c, cmp_double);
                R->median = c[R->nrt / 2];
                R->median_at = R->nrt;
                free(c);
            }
        }
    }
    if (r.timed_out)
        fprintf(stderr, "%s: job %llu timed out: %.*s\n", prog, (unsigned long long)j->seq,
                (int)j->cmd_len, j->cmd);
    if (R->o->roundrobin) j->send = r.in_total; /* what it took from the feed */
    write_results(R, j, &r);
    write_job_output(R, j, &r);
    joblog_line(R, j, &r);
    if (R->bar) weft_progress_add(R->bar, 1);
    halt_check(R, &r, failed);
    return true;
}

static void submit(run *R, job *j)
{
    weft_submit_options so = {.flags = WEFT_SUBMIT_BORROW};
    j->attempts++;
    int rc = weft_submit_ex(R->ex, weft_cli_job, j->enc.p, j->enc.len, &so, &j->f);
    if (rc) die(255, "cannot start a job: %s", weft_strerror(rc));
    rc = weft_future_on_done(j->f, on_done, j);
    if (rc) die(255, "cannot watch a job: %s", weft_strerror(rc));
}

/* Takes finished jobs off the queue and handles them. */
static void reap(run *R, bool block)
{
    if (block) {
        while (sem_wait(&done_sem) != 0 && errno == EINTR) {
        }
    } else if (sem_trywait(&done_sem) != 0) {
        return;
    }
    for (;;) {
        pthread_mutex_lock(&done_mu);
        job *j = done_head;
        if (j) {
            done_head = j->next_done;
            if (!done_head) done_tail = NULL;
        }
        pthread_mutex_unlock(&done_mu);
        if (!j) break;
        if (!R->o->keep) {
            if (job_finished(R, j)) {
                R->free_slots[R->nfree++] = j->slot;
                R->running--;
                job_free(j);
            }
            continue;
        }
        /* -k: mark done; write out the head of the ring in order */
        j->done = true;
        R->free_slots[R->nfree++] = j->slot;
        R->running--;
        flush_ring(R);
    }
}

/* -k: writes out the finished jobs at the head of the ring, in seq order.
 * A seq at or below last_seq with no job is one --resume skipped: a hole,
 * passed over here, so jobs finished behind it are never left unwritten. */
static void flush_ring(run *R)
{
    while (R->ring_head_seq <= R->last_seq) {
        job *h = R->ring[R->ring_head_seq % R->ring_cap];
        if (!h) {
            R->ring_head_seq++;
            continue;
        }
        if (!h->done) break;
        if (!job_finished(R, h)) {
            h->done = false;
            R->nfree--;
            R->running++;
            break;
        }
        R->ring[R->ring_head_seq % R->ring_cap] = NULL;
        R->ring_head_seq++;
        R->ring_count--;
        job_free(h);
    }
}

/* ---------------------------------------------------------------- --pipe */

/* stdin for --pipe, three ways:
 * - memory: read into `buf`; a chunk is cut from it. With `detach` (every
 *   run on this process's threads), the buffer holding a chunk is handed to
 *   its job whole and the few bytes after the cut are moved into a fresh
 *   one, so the chunk is never copied again: the job writes it from there.
 * - file: stdin is a regular file and the records are lines: a chunk is a
 *   byte range, found by reading only near the block's end, and the job
 *   splices it from the page cache into its pipe (no copy in weft at all).
 * - --mpi: the chunk is copied into the task's bytes (it travels). */
typedef struct pipe_in {
    wt_buf buf;
    size_t pos;
    bool eof;
    wt_buf header;
    bool detach;
    bool file;
    uint64_t foff, fsize; /* file: the next chunk's offset, the size */
} pipe_in;

static void pipe_fill(pipe_in *p, size_t want)
{
    if (p->pos > 0 && p->pos >= p->buf.len / 2) {
        memmove(p->buf.p, p->buf.p + p->pos, p->buf.len - p->pos);
        p->buf.len -= p->pos;
        p->pos = 0;
    }
    while (!p->eof && p->buf.len - p->pos < want) {
        size_t room = want - (p->buf.len - p->pos);
        if (room < (1 << 16)) room = 1 << 16;
        if (p->buf.cap < p->buf.len + room + 1) {
            size_t nc = p->buf.cap ? p->buf.cap : (1 << 16);
            while (nc < p->buf.len + room + 1) nc *= 2;
            p->buf.p = xrealloc(p->buf.p, nc);
            p->buf.cap = nc;
        }
        ssize_t got = read(0, p->buf.p + p->buf.len, room);
        if (got < 0) {
            if (errno == EINTR) continue;
            die(255, "reading stdin: %s", strerror(errno));
        }
        if (got == 0)
            p->eof = true;
        else
            p->buf.len += (size_t)got;
    }
}

/* Hands the buffer holding the chunk just cut (the bytes before p->pos)
 * to the caller, who frees it; what follows the chunk moves to a new
 * buffer of the same capacity. */
static char *pipe_detach(pipe_in *p)
{
    char *own = p->buf.p;
    size_t rest = p->buf.len - p->pos;
    size_t cap = p->buf.cap > rest + 1 ? p->buf.cap : rest + 1;
    char *nb = xmalloc(cap);
    memcpy(nb, own + p->pos, rest);
    p->buf.p = nb;
    p->buf.len = rest;
    p->buf.cap = cap;
    p->pos = 0;
    return own;
}

/* Is there a record boundary at p (recend before, recstart after)? */
static bool boundary(const char *b, size_t len, size_t p, const char *rs, const char *re)
{
    size_t sl = strlen(rs), el = strlen(re);
    if (el && (p < el || memcmp(b + p - el, re, el))) return false;
    if (sl && (p + sl > len || memcmp(b + p, rs, sl))) return false;
    return true;
}

/* Are the records plain lines, one per unit (the case read near the block
 * end only)? */
static bool pipe_lines(const opts *o)
{
    long unit = o->lines > 0 ? o->lines : (o->nargs_set && o->nargs > 0 ? o->nargs : 1);
    return unit == 1 && !o->recstart && (!o->recend || strcmp(o->recend, "\n") == 0);
}

/* The next chunk of stdin for a --pipe job: at most `block` bytes cut at a
 * record boundary (past the block if one record is longer), in units of
 * `unit` records. @return false at the end of input. */
static bool pipe_next(pipe_in *p, opts *o, const char **data, size_t *len)
{
    const char *rs = o->recstart ? o->recstart : "";
    const char *re = o->recend ? o->recend : (o->recstart ? "" : "\n");
    size_t block = o->block ? (size_t)o->block : 1 << 20;
    long unit = o->lines > 0 ? o->lines : (o->nargs_set && o->nargs > 0 ? o->nargs : 1);
    bool lines = pipe_lines(o);
    pipe_fill(p, block);
    for (;;) {
        const char *b = p->buf.p + p->pos;
        size_t avail = p->buf.len - p->pos;
        if (avail == 0) return false;
        size_t cut = 0;
        if (lines) {
            /* the common case: the last newline within the block, else
             * (a longer line) the first one after it */
            size_t lim = avail < block ? avail : block;
            if (p->eof && avail <= block) {
                cut = avail;
            } else {
                const char *nl = memrchr(b, '\n', lim);
                if (!nl && avail > lim) nl = memchr(b + lim, '\n', avail - lim);
                if (nl) cut = (size_t)(nl - b) + 1;
            }
        } else {
            long recs = 0;
            for (size_t q = 1; q <= avail; q++) {
                if (!boundary(b, avail, q, rs, re)) continue;
                if (++recs % unit) continue;
                if (q > block && cut) break;
                cut = q;
                if (q >= block) break;
            }
            /* at the end, a last partial unit (-L 7: the 1 line left after
             * 7) is a chunk of its own, as in GNU parallel */
        }
        if (cut == 0) {
            if (p->eof) {
                cut = avail;
            } else {
                pipe_fill(p, (p->buf.len - p->pos) * 2);
                continue;
            }
        }
        *data = b;
        *len = cut;
        p->pos += cut;
        return true;
    }
}

static size_t pread_some(int fd, char *buf, size_t n, uint64_t off)
{
    for (;;) {
        ssize_t g = pread(fd, buf, n, (off_t)off);
        if (g >= 0) return (size_t)g;
        if (errno != EINTR) die(255, "reading stdin: %s", strerror(errno));
    }
}

/* File mode: the next chunk as a byte range of stdin, cut as pipe_next
 * cuts lines; only the bytes before the block's end (back to the last
 * newline) are read. @return false at the end of input. */
static bool pipe_file_next(pipe_in *p, opts *o, uint64_t *off, uint64_t *len)
{
    uint64_t block = o->block ? o->block : 1 << 20;
    if (p->foff >= p->fsize) {
        struct stat st; /* the file may have grown since */
        if (fstat(0, &st) == 0 && (uint64_t)st.st_size > p->fsize) p->fsize = (uint64_t)st.st_size;
        if (p->foff >= p->fsize) return false;
    }
    uint64_t start = p->foff, avail = p->fsize - start, cut = 0;
    static char w[1 << 16];
    if (avail <= block) {
        cut = avail;
    } else {
        for (uint64_t hi = start + block; hi > start && !cut;) {
            uint64_t lo = hi - start > sizeof w ? hi - sizeof w : start;
            size_t g = pread_some(0, w, (size_t)(hi - lo), lo);
            if (g < hi - lo) break; /* shorter than it was */
            const char *nl = memrchr(w, '\n', g);
            if (nl) cut = lo + (uint64_t)(nl - w) + 1 - start;
            hi = lo;
        }
        for (uint64_t q = start + block; !cut && q < p->fsize;) {
            size_t g = pread_some(0, w, sizeof w, q);
            if (g == 0) break;
            const char *nl = memchr(w, '\n', g);
            if (nl) cut = q + (uint64_t)(nl - w) + 1 - start;
            q += g;
        }
        if (!cut) cut = p->fsize - start;
    }
    *off = start;
    *len = cut;
    p->foff += cut;
    return true;
}

/* ---------------------------------------------------------------- resume */

static void read_joblog(run *R, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        char *e;
        unsigned long long seq = strtoull(line, &e, 10);
        if (e == line || *e != '\t' || seq == 0 || seq > (1ull << 40)) continue;
        /* column 7: exit value, 8: signal */
        char *c = e;
        int col = 1;
        long ev = 0, sg = 0;
        while (*c && col < 8) {
            if (*c == '\t') {
                col++;
                if (col == 7) ev = strtol(c + 1, NULL, 10);
                if (col == 8) sg = strtol(c + 1, NULL, 10);
            }
            c++;
        }
        if (col < 8) continue;
        if (seq >= R->nlogged) {
            uint64_t nc = R->nlogged ? R->nlogged : 1024;
            while (nc <= seq) nc *= 2;
            R->logged = xrealloc(R->logged, nc);
            memset(R->logged + R->nlogged, 0, nc - R->nlogged);
            R->nlogged = nc;
        }
        R->logged[seq] = (ev == 0 && sg == 0) ? 1 : 2;
    }
    free(line);
    fclose(f);
}

/* ---------------------------------------------------------------- results */

static char *results_path(const char *dir, input *in, const char *const *v, const size_t *l,
                          size_t n)
{
    (void)in;
    wt_buf b = {0};
    if (wt_buf_adds(&b, dir)) die(255, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char num[32];
        snprintf(num, sizeof num, "/%zu/", i + 1);
        wt_buf_adds(&b, num);
        for (size_t k = 0; k < l[i]; k++) {
            if (v[i][k] == '/')
                wt_buf_add(&b, "\\_", 2);
            else if (v[i][k] == '\\')
                wt_buf_add(&b, "\\\\", 2);
            else
                wt_buf_addc(&b, v[i][k]);
        }
        if (l[i] == 0) wt_buf_adds(&b, "");
    }
    /* mkdir -p */
    for (size_t i = 1; i <= b.len; i++) {
        if (i == b.len || b.p[i] == '/') {
            char c = b.p[i];
            b.p[i] = '\0';
            if (mkdir(b.p, 0777) && errno != EEXIST)
                die(255, "--results: cannot create %s: %s", b.p, strerror(errno));
            b.p[i] = c;
        }
    }
    return b.p;
}

/* ------------------------------------------------------------------- main */

static int jobs_from_spec(const char *spec, int ncpu)
{
    if (!spec) return ncpu;
    char *e;
    size_t l = strlen(spec);
    if (l && spec[l - 1] == '%') {
        double p = strtod(spec, &e);
        if (e != spec + l - 1 || p < 0) die(255, "-j: bad value '%s'", spec);
        int j = (int)(ncpu * p / 100.0);
        return j < 1 ? 1 : j;
    }
    long v = strtol(spec, &e, 10);
    if (*e || e == spec) die(255, "-j: bad value '%s'", spec);
    if (spec[0] == '+' || spec[0] == '-') {
        long j = ncpu + v;
        return j < 1 ? 1 : (int)j;
    }
    if (v == 0) return 250; /* as many as possible: GNU parallel stops near there too */
    if (v > 100000) die(255, "-j: %ld job slots is too many", v);
    return (int)v;
}

/* A direct command's program, looked up in PATH once per name (as a
 * shell's hash table does) instead of by posix_spawnp in every job, which
 * tries an execve in each PATH entry before the right one. NULL: a name
 * with '/', one not found (posix_spawnp then gives the same error as
 * without the lookup), or the table is full. */
static const char *path_lookup(const char *name)
{
    static struct {
        char *name, *path;
    } cache[64];
    static size_t n;
    if (!*name || strchr(name, '/')) return NULL;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(cache[i].name, name)) return cache[i].path;
    if (n == sizeof cache / sizeof cache[0]) return NULL;
    const char *pv = getenv("PATH");
    if (!pv) pv = "/bin:/usr/bin"; /* glibc's default for execvp */
    char *found = NULL;
    char buf[PATH_MAX];
    for (const char *p = pv;;) {
        const char *c = strchr(p, ':');
        size_t dl = c ? (size_t)(c - p) : strlen(p);
        int l = dl ? snprintf(buf, sizeof buf, "%.*s/%s", (int)dl, p, name)
                   : snprintf(buf, sizeof buf, "%s", name);
        struct stat st;
        if (l > 0 && (size_t)l < sizeof buf && stat(buf, &st) == 0 && S_ISREG(st.st_mode) &&
            access(buf, X_OK) == 0) {
            found = xstrndup(buf, (size_t)l);
            break;
        }
        if (!c) break;
        p = c + 1;
    }
    cache[n].name = xstrndup(name, strlen(name));
    cache[n].path = found;
    n++;
    return found;
}

int main(int argc, char **argv)
{
    opts o;
    memset(&o, 0, sizeof o);
    o.delim = '\n';
    o.mem_bound = 4u << 20;
    prog = "weft";
    /* --pipe moves megabytes per job through malloc'd buffers: keep freed
     * ones in the heap for the next job instead of returning them to the
     * kernel, which would make every job fault its pages in again */
    mallopt(M_MMAP_THRESHOLD, 512 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    /* --mpi: every rank must reach weft_init before anything else */
    bool mpi = false;
    for (int i = 1; i < argc && !is_sep(argv[i]); i++)
        if (!strcmp(argv[i], "--mpi")) mpi = true;
    if (mpi) {
        int rc = weft_init(&argc, &argv);
        if (rc) die(255, "--mpi: %s (%s)", weft_strerror(rc), weft_last_error());
    }
    parse_args(&o, argc, argv);
    if (o.roundrobin) {
        if (mpi) die(255, "--roundrobin is not supported with --mpi (see docs/cli.md)");
        if (o.retries) die(255, "--retries cannot be combined with --roundrobin");
        o.pipe = true; /* as GNU parallel: --roundrobin implies --pipe */
    }
    if (o.retry_failed) o.resume_failed = true;
    if (o.resume_failed) o.resume = true;
    if (o.resume && !o.joblog) die(255, "--resume needs --joblog");
    if (o.linebuf && o.keep) o.linebuf = false; /* -k wins, as in GNU parallel */
    if (mpi && (o.linebuf || o.ungroup)) {
        fprintf(stderr, "%s: --mpi: output is grouped per job (--line-buffer/--ungroup ignored)\n",
                prog);
        o.linebuf = o.ungroup = false;
    }

    long ncpu_l = sysconf(_SC_NPROCESSORS_ONLN);
    int ncpu = ncpu_l > 0 ? (int)ncpu_l : 1;
    int jobs = jobs_from_spec(o.jobs_spec, ncpu);

    /* --retry-failed: the commands come from the joblog */
    run R;
    memset(&R, 0, sizeof R);
    R.o = &o;
    if (o.resume) read_joblog(&R, o.joblog);

    /* the command template */
    wt_buf ctext = {0};
    bool no_cmd = o.ncmd == 0;
    for (size_t i = 0; i < o.ncmd; i++) {
        if (i) wt_buf_addc(&ctext, ' ');
        if (!o.quote) wt_buf_adds(&ctext, o.cmd[i]);
    }

    input in;
    memset(&in, 0, sizeof in);
    if (!o.pipe) input_open(&in, &o, (size_t)jobs);
    o.rpl.names = (const char *const *)(o.pipe ? NULL : in.names);
    o.rpl.nnames = o.pipe ? 0 : in.nnames;
    wt_template tmpl, tagt;
    if (o.quote) {
        /* rebuild with replacement strings unquoted: parse each word, quote
         * literal runs only */
        wt_buf_free(&ctext);
        for (size_t i = 0; i < o.ncmd; i++) {
            if (i) wt_buf_addc(&ctext, ' ');
            wt_template wt;
            if (wt_template_parse(&wt, o.cmd[i], &o.rpl)) die(255, "out of memory");
            size_t pos = 0, n = strlen(o.cmd[i]);
            for (size_t p = 0; p < wt.nparts; p++) {
                const wt_part *pp = &wt.parts[p];
                if (pp->repl) continue;
                /* text between pos and this literal is a replacement string */
                if (pp->off > pos) wt_buf_add(&ctext, o.cmd[i] + pos, pp->off - pos);
                size_t e = p, len = 0;
                while (e < wt.nparts && !wt.parts[e].repl) len += wt.parts[e++].len;
                wt_quote(&ctext, o.cmd[i] + pp->off, len);
                pos = pp->off + len;
                p = e - 1;
            }
            if (n > pos) wt_buf_add(&ctext, o.cmd[i] + pos, n - pos);
            wt_template_free(&wt);
        }
    }
    if (wt_template_parse(&tmpl, ctext.p ? ctext.p : "", &o.rpl)) die(255, "out of memory");
    if (wt_template_parse(&tagt, o.tagstring ? o.tagstring : "{}", &o.rpl))
        die(255, "out of memory");

    /* -X / -m: arguments per job from the total, as GNU parallel spreads
     * them over the job slots */
    size_t per_job = o.nargs_set && o.nargs > 0 ? (size_t)o.nargs : 1;
    bool fill = (o.xctx || o.multi) && !o.nargs_set;
    if (fill && !o.pipe) {
        uint64_t t = in.total;
        per_job = (size_t)((t + (uint64_t)jobs - 1) / (uint64_t)jobs);
        if (per_job < 1) per_job = 1;
    }
    wt_xmode xm = o.xctx ? WT_X_CONTEXT : (o.multi ? WT_X_MULTI : WT_X_NONE);

    /* the executor */
    weft_options wo = WEFT_OPTIONS_INIT;
    if (mpi) {
        wo.backend = WEFT_BACKEND_MPI;
        wo.mpi.threads = jobs;
    } else {
        wo.backend = WEFT_BACKEND_THREADS;
        wo.workers = jobs;
    }
    wo.exit_mode = WEFT_EXIT_NONE;
    if (!o.dry) {
        int rc = weft_executor_create(&wo, &R.ex);
        if (rc)
            die(255, "cannot start %s workers: %s (%s)", mpi ? "mpi" : "thread", weft_strerror(rc),
                weft_last_error());
        if (mpi) jobs = weft_executor_workers(R.ex); /* worker ranks x jobs threads */
    }
    /* stdin a regular file of lines for --pipe: chunks are byte ranges */
    struct stat st0;
    memset(&st0, 0, sizeof st0);
    bool stdin_file = o.pipe && !mpi && !o.roundrobin && pipe_lines(&o) && fstat(0, &st0) == 0 &&
                      S_ISREG(st0.st_mode) && st0.st_size > 0;

    R.slots = jobs;
    R.free_slots = xmalloc((size_t)R.slots * sizeof *R.free_slots);
    for (int s = R.slots; s >= 1; s--) R.free_slots[R.nfree++] = (unsigned)s;
    if (wt_children_init((size_t)R.slots)) die(255, "out of memory");
    wt_set_output_lock(lock_out, unlock_out);
    sem_init(&done_sem, 0, 0);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (o.joblog && !o.dry) {
        bool exists = access(o.joblog, F_OK) == 0;
        R.joblog = fopen(o.joblog, o.resume ? "a" : "w");
        if (!R.joblog) die(255, "--joblog: cannot open %s: %s", o.joblog, strerror(errno));
        if (!o.resume || !exists)
            fputs("Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n",
                  R.joblog);
        fflush(R.joblog);
    }
    if ((o.bar || o.eta || o.progress) && !o.dry) {
        weft_progress_options po = {0};
        if (weft_progress_create("weft", o.pipe ? 0 : in.total, &po, &R.bar)) R.bar = NULL;
    }
    R.ring_cap = 1024;
    if (o.keep) R.ring = calloc(R.ring_cap, sizeof *R.ring);
    if (o.keep && !R.ring) die(255, "out of memory");
    R.ring_head_seq = 1;

    pipe_in pin;
    memset(&pin, 0, sizeof pin);
    off_t start0 = -1;
    /* stdin a regular file of lines: chunks are spliced from it by range */
    if (stdin_file) start0 = lseek(0, 0, SEEK_CUR);
    pin.detach = o.pipe && !mpi;
    if (o.pipe && o.header) {
        /* the first record is a header, given to every job */
        pipe_fill(&pin, 1 << 16);
        const char *re = o.recend ? o.recend : "\n";
        char *h = memmem(pin.buf.p ? pin.buf.p : "", pin.buf.len, re, strlen(re));
        size_t hl = h ? (size_t)(h - pin.buf.p) + strlen(re) : pin.buf.len;
        wt_buf_add(&pin.header, pin.buf.p, hl);
        pin.pos = hl;
    }
    if (start0 >= 0) {
        pin.file = true;
        pin.foff = (uint64_t)start0 + pin.pos;
        pin.fsize = (uint64_t)st0.st_size;
        wt_buf_free(&pin.buf);
        pin.pos = 0;
    }
    /* --roundrobin: the feeds the jobs take chunks from (one shared; -k:
     * one per job, each chunk to the next job in turn) */
    bool rr = o.roundrobin && !o.dry;
    int rr_started = 0;
    uint64_t rr_next = 0;
    if (rr) {
        R.nfeeds = o.keep ? (size_t)jobs : 1;
        R.feeds = calloc(R.nfeeds, sizeof *R.feeds);
        if (!R.feeds) die(255, "out of memory");
        for (size_t i = 0; i < R.nfeeds; i++) {
            R.feeds[i] = wt_feed_create(o.keep ? 2 : (size_t)jobs);
            if (!R.feeds[i]) die(255, "out of memory");
        }
    }
    wt_buf sdata = {0};

    wt_buf keep = {0}, cmd = {0}, tag = {0};
    size_t *keep_off = NULL, keep_cap = 0;
    uint64_t seq = 0;
    bool more = true;
    double last_start = 0;
    const char **av = NULL;
    wt_buf chunk = {0};
    while (more || R.running > 0) {
        if (sig_count) R.stop_making = true;
        bool made = false;
        while (more && !R.stop_making && (R.nfree > 0 || (rr && rr_started == R.slots)) &&
               !sig_count) {
            /* -k: bound the jobs waiting behind a slow head */
            if (o.keep && (seq + 1) - R.ring_head_seq >= R.ring_cap) {
                job **nr = calloc(R.ring_cap * 2, sizeof *nr);
                if (!nr) die(255, "out of memory");
                for (uint64_t s = R.ring_head_seq; s <= seq; s++)
                    nr[s % (R.ring_cap * 2)] = R.ring[s % R.ring_cap];
                free(R.ring);
                R.ring = nr;
                R.ring_cap *= 2;
            }
            /* the job's arguments */
            const char *pdata = NULL;
            size_t plen = 0;
            char *chunk_own = NULL; /* the buffer holding pdata, the job's to free */
            uint64_t foff = 0, flen = 0;
            if (o.pipe) {
                bool got_chunk = pin.file ? pipe_file_next(&pin, &o, &foff, &flen)
                                          : pipe_next(&pin, &o, &pdata, &plen);
                if (!got_chunk) {
                    more = false;
                    break;
                }
                if (pin.detach && !pin.file) chunk_own = pipe_detach(&pin);
                if (rr && rr_started == R.slots) {
                    /* every job runs: the chunk goes to one of them */
                    wt_feed *fd = R.feeds[o.keep ? rr_next++ % R.nfeeds : 0];
                    wt_feed_push(fd, chunk_own, pdata, plen, rr_stop);
                    reap(&R, false);
                    continue;
                }
                if (!pin.detach && pin.header.len) {
                    chunk.len = 0;
                    wt_buf_add(&chunk, pin.header.p, pin.header.len);
                    wt_buf_add(&chunk, pdata, plen);
                    pdata = chunk.p;
                    plen = chunk.len;
                }
                in.cn = 0;
            } else {
                in.cn = 0;
                keep.len = 0;
                size_t got = 0, fill_bytes = 0;
                while (got < per_job) {
                    if (in.cn + 64 > keep_cap) {
                        keep_cap = (in.cn + 64) * 2;
                        keep_off = xrealloc(keep_off, keep_cap * sizeof *keep_off);
                    }
                    size_t before = in.cn;
                    if (!input_next(&in, &keep, keep_off)) break;
                    got++;
                    if (fill) {
                        /* -X/-m: no longer than a command line may be */
                        for (size_t i = before; i < in.cn; i++) fill_bytes += in.cl[i] + 3;
                        if (fill_bytes + strlen(tmpl.text) > MAX_LINE) break;
                    }
                }
                if (got == 0) {
                    more = false;
                    break;
                }
                if (in.stream)
                    for (size_t i = 0; i < in.cn; i++) in.cv[i] = keep.p + keep_off[i];
            }
            seq++;
            R.last_seq = seq;
            if (R.logged && seq < R.nlogged && R.logged[seq] &&
                (R.logged[seq] == 1 || !o.resume_failed)) {
                free(chunk_own);
                continue;
            }
            /* expand */
            wt_job_args ja = {.v = in.cv,
                              .lens = in.cl,
                              .n = in.cn,
                              .seq = seq,
                              .slot = R.free_slots[R.nfree - 1]};
            cmd.len = 0;
            if (no_cmd) {
                for (size_t i = 0; i < in.cn; i++) {
                    if (i) wt_buf_addc(&cmd, ' ');
                    wt_buf_add(&cmd, in.cv[i], in.cl[i]);
                }
                if (!cmd.p) wt_buf_add(&cmd, " ", 1), cmd.len = 0;
            } else if (wt_template_expand(&tmpl, &ja, xm, false, !o.pipe, &cmd)) {
                die(255, "out of memory");
            }
            if (o.dry) {
                write_out(1, cmd.p, cmd.len);
                write_out(1, "\n", 1);
                free(chunk_own);
                continue;
            }
            tag.len = 0;
            if (o.tag) {
                if (wt_template_expand(&tagt, &ja, WT_X_NONE, true, false, &tag))
                    die(255, "out of memory");
                wt_buf_addc(&tag, '\t');
            }
            job *j = calloc(1, sizeof *j);
            if (!j) die(255, "out of memory");
            j->seq = seq;
            j->slot = R.free_slots[--R.nfree];
            j->cmd = xstrndup(cmd.p, cmd.len);
            j->cmd_len = cmd.len;
            j->tag = xstrndup(tag.p ? tag.p : "", tag.len);
            j->tag_len = tag.len;
            j->send = !o.pipe ? 0 : !pin.detach ? plen : pin.header.len + (pin.file ? flen : plen);
            if (o.results) j->results_dir = results_path(o.results, &in, in.cv, in.cl, in.cn);
            wt_jobhdr h = {.slot = j->slot, .seq = seq, .mem_bound = mpi ? 0 : o.mem_bound};
            h.timeout = o.timeout;
            if (o.timeout_pct > 0 && R.nrt >= 3) h.timeout = R.median * o.timeout_pct / 100.0;
            if (o.ungroup) h.flags |= WT_JOB_UNGROUP;
            if (o.linebuf) h.flags |= WT_JOB_LINEBUF;
            if (o.pipe) h.flags |= WT_JOB_STDIN;
            char **words = NULL;
            int direct = wt_shell_words(cmd.p, cmd.len, &words);
            if (direct < 0) die(255, "out of memory");
            wt_buf argvb = {0};
            const char *cp = cmd.p;
            size_t cl = cmd.len;
            if (direct == 1) {
                /* the program found in PATH here, once per name, not by
                 * posix_spawnp's execve per PATH entry in every job */
                const char *path = mpi ? NULL : path_lookup(words[0]);
                if (path) {
                    wt_buf_add(&argvb, path, strlen(path) + 1);
                    h.flags |= WT_JOB_PATH;
                }
                for (size_t w = 0; words[w]; w++)
                    wt_buf_add(&argvb, words[w], strlen(words[w]) + 1);
                free(words);
                cp = argvb.p;
                cl = argvb.len - 1;
            } else {
                h.flags |= WT_JOB_SHELL;
            }
            /* stdin by reference (this process): the chunk's buffer, a
             * range of the stdin file, or the --roundrobin feed; then the
             * --header record to write first */
            const void *jin = pdata;
            size_t jin_len = plen;
            wt_feed *jfeed = NULL;
            if (o.pipe && pin.detach) {
                wt_stdin_ref ref;
                memset(&ref, 0, sizeof ref);
                if (rr) {
                    jfeed = R.feeds[o.keep ? (size_t)rr_started : 0];
                    ref.feed = jfeed;
                    h.flags |= WT_JOB_STDIN_FEED;
                    rr_next = (uint64_t)rr_started + 1;
                } else if (pin.file) {
                    ref.fd = 0;
                    ref.off = foff;
                    ref.len = flen;
                    h.flags |= WT_JOB_STDIN_FILE;
                } else {
                    ref.mem = pdata;
                    ref.len = plen;
                    h.flags |= WT_JOB_STDIN_MEM;
                    j->chunk_own = chunk_own;
                }
                sdata.len = 0;
                if (wt_buf_add(&sdata, &ref, sizeof ref) ||
                    wt_buf_add(&sdata, pin.header.p, pin.header.len))
                    die(255, "out of memory");
                jin = sdata.p;
                jin_len = sdata.len;
            }
            if (wt_job_encode(&j->enc, &h, cp, cl, j->tag, o.linebuf ? j->tag_len : 0, jin,
                              jin_len))
                die(255, "out of memory");
            wt_buf_free(&argvb);
            if (o.delay > 0 && last_start > 0) {
                double wait = last_start + o.delay - weft_now();
                if (wait > 0) {
                    struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
                    while (nanosleep(&ts, &ts) && errno == EINTR && !sig_count) {
                    }
                }
            }
            last_start = weft_now();
            if (o.keep) {
                R.ring[seq % R.ring_cap] = j;
                R.ring_count++;
            }
            R.running++;
            made = true;
            if (jfeed) wt_feed_add_consumer(jfeed);
            submit(&R, j);
            if (jfeed) {
                /* its first chunk: the job was started for it */
                wt_feed_push(jfeed, chunk_own, pdata, plen, rr_stop);
                rr_started++;
            }
            reap(&R, false);
        }
        if (rr && (!more || R.stop_making || sig_count))
            for (size_t i = 0; i < R.nfeeds; i++) wt_feed_close(R.feeds[i]);
        if (o.keep) {
            /* holes left by --resume may hold finished jobs back */
            R.last_seq = seq;
            flush_ring(&R);
        }
        if (o.dry && !more) break;
        if (R.running == 0 && (!more || R.stop_making)) break;
        (void)made;
        /* read the next chunk while the jobs run */
        if (o.pipe && !pin.file && !rr && more && !R.stop_making && !sig_count && !pin.eof &&
            R.running > 0)
            pipe_fill(&pin, o.block ? (size_t)o.block : 1 << 20);
        if (R.running > 0) reap(&R, true);
    }
    free(av);
    wt_buf_free(&chunk);
    wt_buf_free(&keep);
    wt_buf_free(&cmd);
    wt_buf_free(&tag);
    free(keep_off);
    if (R.ex) weft_executor_destroy(R.ex);
    for (size_t i = 0; i < R.nfeeds; i++) wt_feed_destroy(R.feeds[i]);
    free(R.feeds);
    wt_buf_free(&sdata);
    /* stdin left where the chunks taken end, as after reading them */
    if (pin.file) lseek(0, (off_t)pin.foff, SEEK_SET);
    if (R.bar) weft_progress_destroy(R.bar);
    if (R.joblog) fclose(R.joblog);
    wt_template_free(&tmpl);
    wt_template_free(&tagt);
    wt_buf_free(&ctext);
    if (!o.pipe) input_free(&in);
    for (size_t i = 0; i < o.nsrc; i++) {
        for (size_t k = 0; k < o.src[i].n; k++) free(o.src[i].v[k]);
        free(o.src[i].v);
    }
    free(o.src);
    wt_buf_free(&pin.buf);
    wt_buf_free(&pin.header);
    free(R.free_slots);
    free(R.ring);
    free(R.runtimes);
    free(R.logged);
    wt_children_free();
    if (mpi) weft_finalize();
    if (sig_count) return 128 + (int)sig_last;
    if (R.spill_error) return 255;
    if (R.halting) return R.halt_exit;
    return R.failed > 100 ? 101 : (int)R.failed;
}
