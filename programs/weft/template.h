/* template.h : the pure text side of the weft command -- GNU parallel's
 * replacement strings, its shell quoting, the input splitter and the test
 * that tells whether a command line can run without a shell. Nothing here
 * starts a process or touches a file, so the libFuzzer target
 * (fuzz/fuzz_cli_template.c) compiles this file alone.
 *
 * Strings are byte strings; UTF-8 passes through untouched. Every function
 * that allocates returns 0 or -1 (out of memory / invalid input). */
#ifndef WEFT_CLI_TEMPLATE_H
#define WEFT_CLI_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

/* A growable byte buffer. */
typedef struct wt_buf {
    char *p;
    size_t len, cap;
} wt_buf;

int wt_buf_add(wt_buf *b, const void *s, size_t n);
int wt_buf_addc(wt_buf *b, char c);
int wt_buf_adds(wt_buf *b, const char *s);
void wt_buf_free(wt_buf *b);

/* Appends `s[0..n)` quoted for a Bourne shell exactly as GNU parallel
 * quotes an argument: as is when made only of [-_.+a-zA-Z0-9/], '' when
 * empty, else in single quotes ('"'"' for a quote). */
int wt_quote(wt_buf *b, const char *s, size_t n);

/* What a replacement string gives. */
typedef enum wt_rkind {
    WT_R_ARG = 0,   /* {}   the argument */
    WT_R_NOEXT,     /* {.}  without its extension */
    WT_R_BASE,      /* {/}  basename */
    WT_R_DIR,       /* {//} dirname */
    WT_R_BASENOEXT, /* {/.} basename without extension */
    WT_R_SEQ,       /* {#}  job sequence number */
    WT_R_SLOT,      /* {%}  job slot number */
    WT_R_NKINDS
} wt_rkind;

/* The replacement strings; NULL entries take GNU parallel's defaults
 * ({} {.} {/} {//} {/.} {#} {%}). -I and --extensionreplace and friends set
 * them. Header names (--header :) are extra strings "{name}" that select
 * column `i` (1-based). */
typedef struct wt_rpl {
    const char *s[WT_R_NKINDS];
    const char *const *names; /* header names, or NULL */
    size_t nnames;
} wt_rpl;

typedef struct wt_part {
    bool repl;       /* a replacement string (else literal text) */
    wt_rkind kind;   /* repl */
    int col;         /* repl: 0 = every argument, n > 0 = the nth, n < 0 = from the end */
    size_t off, len; /* literal: bytes of the template's text */
    bool word_start; /* -X: this part begins a shell word (after unquoted blank) */
} wt_part;

typedef struct wt_template {
    char *text; /* the command line as given (words joined by spaces) */
    wt_part *parts;
    size_t nparts;
    bool has_repl;    /* any replacement string at all */
    bool has_arg_rpl; /* one that uses the arguments ({}, {1}, ...), not only {#} {%} */
} wt_template;

/* Parses the command `text` (the command words joined by single spaces,
 * each already quoted if -q) into `t`. Never fails on content: text that
 * is no replacement string is literal. */
int wt_template_parse(wt_template *t, const char *text, const wt_rpl *rpl);
void wt_template_free(wt_template *t);

/* How the arguments of one job are put into the template. */
typedef enum wt_xmode {
    WT_X_NONE = 0, /* {} is the arguments joined by spaces */
    WT_X_CONTEXT,  /* -X: the word around {} repeated for each argument */
    WT_X_MULTI,    /* -m: as NONE (each argument quoted on its own) */
} wt_xmode;

typedef struct wt_job_args {
    const char *const *v; /* the arguments (records x columns, flattened) */
    const size_t *lens;
    size_t n;
    unsigned long long seq; /* {#} */
    unsigned slot;          /* {%} */
} wt_job_args;

/* Expands `t` for one job into `out` (appended): replacement strings are
 * replaced by the quoted values (unquoted with `raw`, for --tagstring and
 * --results paths); with no argument replacement string, the quoted
 * arguments are appended after a space (when `append`). */
int wt_template_expand(const wt_template *t, const wt_job_args *a, wt_xmode x, bool raw,
                       bool append, wt_buf *out);

/* Applies replacement kind `k` to the value `s[0..n)` into `out`. */
int wt_apply(wt_rkind k, const char *s, size_t n, wt_buf *out);

/* Splits `line[0..n)` at each match of the POSIX extended regular
 * expression `re` (--colsep). Fields go to `out` as NUL-separated strings
 * with their lengths in `lens`; `*count` gets their number. The regex is
 * compiled by the caller (wt_colsep_compile). */
typedef struct wt_colsep wt_colsep;
int wt_colsep_compile(const char *re, wt_colsep **out);
void wt_colsep_free(wt_colsep *c);
int wt_colsep_split(const wt_colsep *c, const char *line, size_t n, wt_buf *out, size_t **lens,
                    size_t *count);

/* The record splitter: cuts a byte stream into records ending with `delim`
 * (one byte: '\n' by default, '\0' with -0, the -d byte). Feed chunks with
 * wt_split_feed, take records with wt_split_next until it returns 0, and
 * wt_split_finish at end of input for the last record without delimiter.
 * A record given by wt_split_next stays valid until the next feed. */
typedef struct wt_split {
    char delim;
    wt_buf buf;
    size_t pos; /* start of the next record in buf */
    bool eof;
} wt_split;

void wt_split_init(wt_split *s, char delim);
int wt_split_feed(wt_split *s, const char *data, size_t n);
void wt_split_finish(wt_split *s);
/* @return 1 with the next record (without its delimiter), 0 if none is complete. */
int wt_split_next(wt_split *s, const char **rec, size_t *len);
void wt_split_free(wt_split *s);

/* Parses a -d argument (C escapes \n \t \0 \\ \xHH, or a single byte).
 * @return 0 and `*out`, -1 if it is not one byte. */
int wt_parse_delim(const char *s, char *out);

/* Reads the shell words of `cmd` if it needs no shell: only words of plain
 * characters, '...' and "..." (without $ ` \ inside), and backslash
 * escapes, separated by blanks; the first word is no shell keyword or
 * builtin that a program cannot replace. `*argv` gets the words
 * (NULL-terminated, one malloc'd block: free(*argv)).
 * @return 1 (direct: argv filled), 0 (needs a shell), -1 (out of memory). */
int wt_shell_words(const char *cmd, size_t n, char ***argv);

/* Parses a size with an optional suffix as GNU parallel's --block: K M G
 * T P (powers of 1024) or k m g t p (powers of 1000). @return 0 or -1. */
int wt_parse_size(const char *s, unsigned long long *out);

#endif
