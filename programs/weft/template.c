/* template.c : replacement strings, quoting, splitting (see template.h).
 *
 * The rules follow GNU parallel 20221122 as read from its documentation and
 * checked side by side (tests/test_cli.sh):
 *   {.}  removes /\.[^/.]*$/        {/}  removes /.*\//
 *   {//} is POSIX dirname()         {/.} is {/} then {.}
 * An argument is quoted only when it holds a byte outside [-_.+a-zA-Z0-9/]. */
#include "template.h"

#include <errno.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int wt_buf_add(wt_buf *b, const void *s, size_t n)
{
    if (n == 0) return 0;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 64;
        while (nc < b->len + n + 1) {
            if (nc > SIZE_MAX / 2) return -1;
            nc *= 2;
        }
        char *np = realloc(b->p, nc);
        if (!np) return -1;
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int wt_buf_addc(wt_buf *b, char c)
{
    return wt_buf_add(b, &c, 1);
}

int wt_buf_adds(wt_buf *b, const char *s)
{
    return wt_buf_add(b, s, strlen(s));
}

void wt_buf_free(wt_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static bool plain_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '+' || c == '/';
}

int wt_quote(wt_buf *b, const char *s, size_t n)
{
    if (n == 0) return wt_buf_add(b, "''", 2);
    size_t i;
    for (i = 0; i < n && plain_byte((unsigned char)s[i]); i++) {
    }
    if (i == n) return wt_buf_add(b, s, n);
    /* '...' with each ' as '"'"'; the '' that this leaves at either end
     * is dropped, as GNU parallel does. */
    bool open = false;
    for (i = 0; i < n; i++) {
        if (s[i] == '\'') {
            if (open && wt_buf_addc(b, '\'')) return -1;
            open = false;
            if (wt_buf_add(b, "\"'\"", 3)) return -1;
        } else {
            if (!open && wt_buf_addc(b, '\'')) return -1;
            open = true;
            if (wt_buf_addc(b, s[i])) return -1;
        }
    }
    if (open && wt_buf_addc(b, '\'')) return -1;
    return 0;
}

/* ------------------------------------------------------------------ apply */

static int noext(const char *base, size_t bn, wt_buf *out)
{
    /* /\.[^/.]*$/ : the last '.' if no '/' follows it */
    for (size_t i = bn; i-- > 0;) {
        if (base[i] == '/') break;
        if (base[i] == '.') return wt_buf_add(out, base, i);
    }
    return wt_buf_add(out, base, bn);
}

int wt_apply(wt_rkind k, const char *s, size_t n, wt_buf *out)
{
    switch (k) {
    case WT_R_ARG:
        return wt_buf_add(out, s, n);
    case WT_R_NOEXT:
        return noext(s, n, out);
    case WT_R_BASE:
    case WT_R_BASENOEXT: {
        const char *sl = memrchr(s, '/', n);
        const char *base = sl ? sl + 1 : s;
        size_t bn = n - (size_t)(base - s);
        return k == WT_R_BASE ? wt_buf_add(out, base, bn) : noext(base, bn, out);
    }
    case WT_R_DIR: {
        /* POSIX dirname: strip trailing slashes, the last component, and
         * the slashes before it; "." if nothing is left, "/" for root. */
        size_t e = n;
        while (e > 1 && s[e - 1] == '/') e--;
        while (e > 0 && s[e - 1] != '/') e--;
        if (e == 0) return wt_buf_addc(out, '.');
        while (e > 1 && s[e - 1] == '/') e--;
        return wt_buf_add(out, s, e);
    }
    default:
        return -1;
    }
}

/* ------------------------------------------------------------------ parse */

static int add_part(wt_template *t, wt_part p)
{
    if ((t->nparts & (t->nparts + 1)) == 0 || t->nparts == 0) {
        size_t nc = t->nparts ? (t->nparts + 1) * 2 : 8;
        wt_part *np = realloc(t->parts, nc * sizeof *np);
        if (!np) return -1;
        t->parts = np;
    }
    t->parts[t->nparts++] = p;
    return 0;
}

static const char *const default_rpl[WT_R_NKINDS] = {"{}",   "{.}", "{/}", "{//}",
                                                     "{/.}", "{#}", "{%}"};

/* A positional replacement string {n}, {-n}, {n.}, {n/}, {n//}, {n/.} at s.
 * @return its length, 0 if there is none. */
static size_t positional(const char *s, int *col, wt_rkind *kind)
{
    if (s[0] != '{') return 0;
    size_t i = 1;
    bool neg = false;
    if (s[i] == '-') {
        neg = true;
        i++;
    }
    if (s[i] < '0' || s[i] > '9') return 0;
    long v = 0;
    while (s[i] >= '0' && s[i] <= '9') {
        if (v < 100000000) v = v * 10 + (s[i] - '0');
        i++;
    }
    if (v == 0) return 0;
    static const struct {
        const char *suf;
        wt_rkind k;
    } sufs[] = {{"}", WT_R_ARG},
                {".}", WT_R_NOEXT},
                {"/}", WT_R_BASE},
                {"//}", WT_R_DIR},
                {"/.}", WT_R_BASENOEXT}};
    for (size_t j = 0; j < sizeof sufs / sizeof sufs[0]; j++) {
        size_t l = strlen(sufs[j].suf);
        if (strncmp(s + i, sufs[j].suf, l) == 0) {
            *col = neg ? -(int)v : (int)v;
            *kind = sufs[j].k;
            return i + l;
        }
    }
    return 0;
}

int wt_template_parse(wt_template *t, const char *text, const wt_rpl *rpl)
{
    memset(t, 0, sizeof *t);
    t->text = strdup(text);
    if (!t->text) return -1;
    const char *r[WT_R_NKINDS];
    for (int k = 0; k < WT_R_NKINDS; k++) {
        r[k] = rpl && rpl->s[k] && rpl->s[k][0] ? rpl->s[k] : default_rpl[k];
    }
    size_t n = strlen(text), lit = 0, i = 0;
    bool word_start = true;
    while (i < n) {
        /* the longest replacement string that starts here */
        size_t best = 0;
        wt_part p = {.repl = true};
        for (int k = 0; k < WT_R_NKINDS; k++) {
            size_t l = strlen(r[k]);
            if (l > best && strncmp(text + i, r[k], l) == 0) {
                best = l;
                p.kind = (wt_rkind)k;
                p.col = 0;
            }
        }
        for (size_t h = 0; rpl && h < rpl->nnames; h++) {
            size_t l = strlen(rpl->names[h]);
            if (text[i] == '{' && l + 2 > best && strncmp(text + i + 1, rpl->names[h], l) == 0 &&
                text[i + 1 + l] == '}') {
                best = l + 2;
                p.kind = WT_R_ARG;
                p.col = (int)h + 1;
            }
        }
        int col;
        wt_rkind kind;
        size_t pl = positional(text + i, &col, &kind);
        if (pl > best) {
            best = pl;
            p.kind = kind;
            p.col = col;
        }
        bool blank = text[i] == ' ' || text[i] == '\t';
        if (best == 0 && !blank) {
            if (lit == i) {
                /* a new literal part starts here */
            }
            i++;
            continue;
        }
        if (i > lit) {
            wt_part l = {.off = lit, .len = i - lit, .word_start = word_start};
            if (add_part(t, l)) return -1;
            word_start = false;
        }
        if (blank) {
            size_t j = i;
            while (j < n && (text[j] == ' ' || text[j] == '\t')) j++;
            wt_part l = {.off = i, .len = j - i, .word_start = true};
            if (add_part(t, l)) return -1;
            word_start = true;
            i = lit = j;
            continue;
        }
        p.word_start = word_start;
        word_start = false;
        if (add_part(t, p)) return -1;
        t->has_repl = true;
        if (p.kind != WT_R_SEQ && p.kind != WT_R_SLOT) t->has_arg_rpl = true;
        i += best;
        lit = i;
    }
    if (n > lit) {
        wt_part l = {.off = lit, .len = n - lit, .word_start = word_start};
        if (add_part(t, l)) return -1;
    }
    return 0;
}

void wt_template_free(wt_template *t)
{
    free(t->text);
    free(t->parts);
    memset(t, 0, sizeof *t);
}

/* ----------------------------------------------------------------- expand */

static int put_value(wt_rkind k, const char *s, size_t n, bool raw, wt_buf *out, wt_buf *tmp)
{
    if (raw) return wt_apply(k, s, n, out);
    tmp->len = 0;
    if (wt_apply(k, s, n, tmp)) return -1;
    return wt_quote(out, tmp->p ? tmp->p : "", tmp->len);
}

/* One replacement part; `only` >= 0: the -X repetition for argument `only`. */
static int put_part(const wt_part *p, const wt_job_args *a, long only, bool raw, wt_buf *out,
                    wt_buf *tmp)
{
    char num[32];
    if (p->kind == WT_R_SEQ || p->kind == WT_R_SLOT) {
        int l = snprintf(num, sizeof num, "%llu",
                         p->kind == WT_R_SEQ ? a->seq : (unsigned long long)a->slot);
        return wt_buf_add(out, num, (size_t)l);
    }
    if (p->col != 0) {
        long c = p->col > 0 ? p->col - 1 : (long)a->n + p->col;
        if (c < 0 || (size_t)c >= a->n) return 0; /* as GNU parallel: nothing */
        return put_value(p->kind, a->v[c], a->lens[c], raw, out, tmp);
    }
    if (only >= 0) return put_value(p->kind, a->v[only], a->lens[only], raw, out, tmp);
    if (a->n == 0) return raw ? 0 : wt_buf_add(out, "''", 2);
    for (size_t i = 0; i < a->n; i++) {
        if (i && wt_buf_addc(out, ' ')) return -1;
        if (put_value(p->kind, a->v[i], a->lens[i], raw, out, tmp)) return -1;
    }
    return 0;
}

static bool arg_part(const wt_part *p)
{
    return p->repl && p->kind != WT_R_SEQ && p->kind != WT_R_SLOT && p->col == 0;
}

int wt_template_expand(const wt_template *t, const wt_job_args *a, wt_xmode x, bool raw,
                       bool append, wt_buf *out)
{
    wt_buf tmp = {0};
    int rc = 0;
    for (size_t i = 0; i < t->nparts && rc == 0;) {
        /* the word [i, e) */
        size_t e = i + 1;
        while (e < t->nparts && !t->parts[e].word_start) e++;
        bool repeat = false;
        if (x == WT_X_CONTEXT)
            for (size_t j = i; j < e; j++) repeat |= arg_part(&t->parts[j]);
        size_t reps = repeat ? a->n : 1;
        for (size_t r = 0; r < reps && rc == 0; r++) {
            if (r && wt_buf_addc(out, ' ')) rc = -1;
            for (size_t j = i; j < e && rc == 0; j++) {
                const wt_part *p = &t->parts[j];
                if (!p->repl)
                    rc = wt_buf_add(out, t->text + p->off, p->len);
                else
                    rc = put_part(p, a, repeat ? (long)r : -1, raw, out, &tmp);
            }
        }
        i = e;
    }
    if (rc == 0 && append && !t->has_repl) {
        for (size_t i = 0; i < a->n && rc == 0; i++) {
            if (out->len > 0 && wt_buf_addc(out, ' ')) rc = -1;
            if (rc == 0)
                rc =
                    raw ? wt_buf_add(out, a->v[i], a->lens[i]) : wt_quote(out, a->v[i], a->lens[i]);
        }
    }
    if (rc == 0 && !out->p) {
        out->p = calloc(1, 16);
        out->cap = 16;
        if (!out->p) rc = -1;
    }
    wt_buf_free(&tmp);
    return rc;
}

/* ----------------------------------------------------------------- colsep */

struct wt_colsep {
    regex_t re;
};

int wt_colsep_compile(const char *re, wt_colsep **out)
{
    wt_colsep *c = malloc(sizeof *c);
    if (!c) return -1;
    /* GNU parallel's --colsep is a Perl regex: the common Perl escapes are
     * turned into their POSIX ERE forms (docs/cli.md) */
    wt_buf b = {0};
    int rc = 0;
    for (const char *p = re; *p && rc == 0; p++) {
        if (*p != '\\' || !p[1]) {
            rc = wt_buf_addc(&b, *p);
            continue;
        }
        const char *rep = NULL;
        char one[3] = {'\\', p[1], 0};
        switch (p[1]) {
        case 't':
            rep = "\t";
            break;
        case 'n':
            rep = "\n";
            break;
        case 'r':
            rep = "\r";
            break;
        case 's':
            rep = "[[:space:]]";
            break;
        case 'S':
            rep = "[^[:space:]]";
            break;
        case 'd':
            rep = "[0-9]";
            break;
        case 'D':
            rep = "[^0-9]";
            break;
        case 'w':
            rep = "[[:alnum:]_]";
            break;
        case 'W':
            rep = "[^[:alnum:]_]";
            break;
        default:
            rep = one;
            break;
        }
        rc = wt_buf_adds(&b, rep);
        p++;
    }
    if (rc || regcomp(&c->re, b.p ? b.p : "", REG_EXTENDED)) {
        wt_buf_free(&b);
        free(c);
        return -1;
    }
    wt_buf_free(&b);
    *out = c;
    return 0;
}

void wt_colsep_free(wt_colsep *c)
{
    if (!c) return;
    regfree(&c->re);
    free(c);
}

int wt_colsep_split(const wt_colsep *c, const char *line, size_t n, wt_buf *out, size_t **lens,
                    size_t *count)
{
    /* regexec needs a NUL-terminated string: a line with a NUL inside is
     * split only up to it, the rest is one more field. */
    char *s = malloc(n + 1);
    if (!s) return -1;
    memcpy(s, line, n);
    s[n] = '\0';
    size_t cnt = 0, cap = 8, pos = 0;
    size_t *ls = malloc(cap * sizeof *ls);
    int rc = ls ? 0 : -1;
    size_t lim = strlen(s);
    while (rc == 0) {
        regmatch_t m;
        size_t flen;
        bool last = true;
        if (pos <= lim && regexec(&c->re, s + pos, 1, &m, pos ? REG_NOTBOL : 0) == 0 &&
            m.rm_eo > 0 && pos + (size_t)m.rm_eo <= lim) {
            flen = (size_t)m.rm_so;
            last = false;
        } else {
            flen = n - pos;
        }
        if (cnt == cap) {
            size_t *nl = realloc(ls, (cap *= 2) * sizeof *ls);
            if (!nl) {
                rc = -1;
                break;
            }
            ls = nl;
        }
        ls[cnt++] = flen;
        if (wt_buf_add(out, s + pos, flen) || wt_buf_addc(out, '\0')) rc = -1;
        if (last) break;
        pos += (size_t)m.rm_eo;
    }
    free(s);
    if (rc) {
        free(ls);
        return -1;
    }
    *lens = ls;
    *count = cnt;
    return 0;
}

/* --------------------------------------------------------------- splitter */

void wt_split_init(wt_split *s, char delim)
{
    memset(s, 0, sizeof *s);
    s->delim = delim;
}

int wt_split_feed(wt_split *s, const char *data, size_t n)
{
    if (s->pos > 0) {
        /* drop what was consumed before appending */
        memmove(s->buf.p, s->buf.p + s->pos, s->buf.len - s->pos);
        s->buf.len -= s->pos;
        s->pos = 0;
    }
    return wt_buf_add(&s->buf, data, n);
}

void wt_split_finish(wt_split *s)
{
    s->eof = true;
}

int wt_split_next(wt_split *s, const char **rec, size_t *len)
{
    if (s->pos >= s->buf.len) return 0;
    char *start = s->buf.p + s->pos;
    size_t avail = s->buf.len - s->pos;
    char *d = memchr(start, s->delim, avail);
    if (!d) {
        if (!s->eof) return 0;
        *rec = start;
        *len = avail;
        s->pos = s->buf.len;
        return 1;
    }
    *rec = start;
    *len = (size_t)(d - start);
    s->pos += *len + 1;
    return 1;
}

void wt_split_free(wt_split *s)
{
    wt_buf_free(&s->buf);
}

int wt_parse_delim(const char *s, char *out)
{
    if (s[0] && !s[1]) {
        *out = s[0];
        return 0;
    }
    if (s[0] != '\\' || !s[1]) return -1;
    switch (s[1]) {
    case 'n':
        *out = '\n';
        break;
    case 't':
        *out = '\t';
        break;
    case 'r':
        *out = '\r';
        break;
    case '0':
        *out = '\0';
        break;
    case '\\':
        *out = '\\';
        break;
    case 'x': {
        char *e;
        if (!s[2]) return -1;
        errno = 0;
        unsigned long v = strtoul(s + 2, &e, 16);
        if (*e || v > 255 || e - (s + 2) > 2) return -1;
        *out = (char)v;
        return 0;
    }
    default:
        return -1;
    }
    return s[2] ? -1 : 0;
}

/* ------------------------------------------------------------ shell words */

/* Words a program cannot stand in for: keywords, special builtins and the
 * builtins that change the shell itself. `echo` is handled apart. */
static bool needs_shell_word(const char *w)
{
    static const char *const kw[] = {
        "!",         "{",      "}",       "[[",      "]]",       "case",     "do",      "done",
        "elif",      "else",   "esac",    "fi",      "for",      "function", "if",      "in",
        "select",    "then",   "time",    "until",   "while",    ".",        ":",       "alias",
        "bg",        "break",  "cd",      "command", "continue", "eval",     "exec",    "exit",
        "export",    "fc",     "fg",      "getopts", "hash",     "jobs",     "local",   "read",
        "readonly",  "return", "set",     "shift",   "source",   "times",    "trap",    "type",
        "typeset",   "ulimit", "umask",   "unalias", "unset",    "wait",     "declare", "let",
        "builtin",   "disown", "enable",  "history", "logout",   "mapfile",  "popd",    "pushd",
        "readarray", "shopt",  "suspend", "coproc"};
    for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++)
        if (strcmp(w, kw[i]) == 0) return true;
    return false;
}

int wt_shell_words(const char *cmd, size_t n, char ***argv)
{
    /* First pass: check and count; second: copy. Words are at most n
     * bytes together, so one block of n + words + pointers holds them. */
    size_t words = 0;
    bool in_word = false, backslash = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)cmd[i];
        if (c == ' ' || c == '\t') {
            in_word = false;
            continue;
        }
        if (!in_word) {
            words++;
            in_word = true;
        }
        if (c == '\'') {
            const char *q = memchr(cmd + i + 1, '\'', n - i - 1);
            if (!q) return 0;
            i = (size_t)(q - cmd);
        } else if (c == '"') {
            size_t j = i + 1;
            while (j < n && cmd[j] != '"') {
                if (cmd[j] == '$' || cmd[j] == '`' || cmd[j] == '\\' || cmd[j] == '!') return 0;
                j++;
            }
            if (j >= n) return 0;
            i = j;
        } else if (c == '\\') {
            if (i + 1 >= n || cmd[i + 1] == '\n') return 0;
            backslash = true;
            i++;
        } else if (strchr("|&;<>()$`*?[]~#={}!\n\r", c) || c == '\0') {
            return 0;
        }
    }
    if (words == 0) return 0;
    char **v = malloc((words + 1) * sizeof *v + n + words);
    if (!v) return -1;
    char *o = (char *)(v + words + 1);
    size_t w = 0;
    in_word = false;
    for (size_t i = 0; i < n; i++) {
        char c = cmd[i];
        if (c == ' ' || c == '\t') {
            if (in_word) *o++ = '\0';
            in_word = false;
            continue;
        }
        if (!in_word) {
            v[w++] = o;
            in_word = true;
        }
        if (c == '\'') {
            for (i++; cmd[i] != '\''; i++) *o++ = cmd[i];
        } else if (c == '"') {
            for (i++; cmd[i] != '"'; i++) *o++ = cmd[i];
        } else if (c == '\\') {
            *o++ = cmd[++i];
        } else {
            *o++ = c;
        }
    }
    if (in_word) *o = '\0';
    v[w] = NULL;
    bool shell = needs_shell_word(v[0]);
    if (!shell && strcmp(v[0], "echo") == 0) {
        /* dash's echo reads backslash escapes and -n; /bin/echo reads -e too */
        if (backslash) shell = true;
        for (size_t i = 1; i < w && !shell; i++)
            if (v[i][0] == '-' || strchr(v[i], '\\')) shell = true;
    }
    if (shell) {
        free(v);
        return 0;
    }
    *argv = v;
    return 1;
}

int wt_parse_size(const char *s, unsigned long long *out)
{
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (e == s || errno || v < 0) return -1;
    /* as GNU parallel: K M G T P powers of 1024, k m g t p of 1000 */
    static const char units[] = "KMGTP", units10[] = "kmgtp";
    double m = 1;
    if (*e) {
        const char *u = strchr(units, *e), *u10 = strchr(units10, *e);
        if (u)
            for (long i = 0; i <= u - units; i++) m *= 1024.0;
        else if (u10)
            for (long i = 0; i <= u10 - units10; i++) m *= 1000.0;
        else
            return -1;
    }
    if (*e && e[1]) return -1;
    v *= m;
    if (v >= 1.8e19) return -1;
    *out = (unsigned long long)v;
    return 0;
}
