/* svg.c : a Chrome trace drawn as an SVG Gantt chart (the task stream of
 * dask's dashboard, as a file).
 *
 * Input: the trace-event JSON weft_trace_write writes -- {"traceEvents":
 * [...], "otherData": {"backend": ...}} -- or a bare array of events, as
 * other tools write them. Complete events ("ph":"X", ts and dur in
 * microseconds) become bars; "M" thread_name events name the lanes; every
 * other event and field is skipped. The parser is a small recursive-descent
 * reader of exactly JSON (depth-limited, every read bounds-checked), since
 * trace files are outside input: a malformed file is WEFT_EINVAL with the
 * byte offset, never a crash.
 *
 * Layout: a lane per (pid, tid), named by its thread_name or "pid/tid",
 * with its busy share; a light grey lane background, so idle time shows as
 * gaps between bars; bars coloured by task name (a 12-colour palette in
 * order of total time, then hashed hues), red-outlined when the task
 * failed, each with a <title> tooltip; consecutive bars in one lane that
 * are narrower than a pixel and of one colour are merged into one bar with
 * a count, so a million tasks make a picture of bounded size; a time axis
 * in round steps; a legend. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "diag/svg_internal.h"
#include "internal.h"

#define MAX_DEPTH 64
#define NAME_MAX_LEN 128

/* ---- JSON reading ---------------------------------------------------------- */

typedef struct jp {
    const char *s, *p, *e;
    const char *err; /* first error, or NULL */
    size_t err_at;
} jp;

static bool jfail(jp *j, const char *what)
{
    if (!j->err) {
        j->err = what;
        j->err_at = (size_t)(j->p - j->s);
    }
    return false;
}

static void ws(jp *j)
{
    while (j->p < j->e && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t')) j->p++;
}

static bool expect(jp *j, char c)
{
    ws(j);
    if (j->p >= j->e || *j->p != c) return jfail(j, c == ':' ? "expected ':'" : "unexpected token");
    j->p++;
    return true;
}

static bool peek(jp *j, char c)
{
    ws(j);
    return j->p < j->e && *j->p == c;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads a string into out[0..cap) (truncated, NUL-terminated; out may be
 * NULL to skip). Non-ASCII \u escapes become '?'. */
static bool jstring(jp *j, char *out, size_t cap)
{
    ws(j);
    if (j->p >= j->e || *j->p != '"') return jfail(j, "expected a string");
    j->p++;
    size_t n = 0;
    while (j->p < j->e) {
        char c = *j->p++;
        if (c == '"') {
            if (out && cap) out[n < cap ? n : cap - 1] = '\0';
            return true;
        }
        if ((unsigned char)c < 0x20) return jfail(j, "control character in a string");
        if (c == '\\') {
            if (j->p >= j->e) break;
            char x = *j->p++;
            switch (x) {
            case '"':
            case '\\':
            case '/':
                c = x;
                break;
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'n':
                c = '\n';
                break;
            case 'r':
                c = '\r';
                break;
            case 't':
                c = '\t';
                break;
            case 'u': {
                if (j->e - j->p < 4) return jfail(j, "short \\u escape");
                int v = 0;
                for (int k = 0; k < 4; k++) {
                    int h = hexval(j->p[k]);
                    if (h < 0) return jfail(j, "bad \\u escape");
                    v = v * 16 + h;
                }
                j->p += 4;
                c = v >= 0x20 && v < 0x7f ? (char)v : '?';
                break;
            }
            default:
                return jfail(j, "bad escape");
            }
        }
        if (out && n + 1 < cap) out[n] = c;
        n++;
    }
    return jfail(j, "unterminated string");
}

static bool jnumber(jp *j, double *v)
{
    ws(j);
    const char *q = j->p;
    if (q < j->e && *q == '-') q++;
    if (q >= j->e || *q < '0' || *q > '9') return jfail(j, "expected a number");
    while (q < j->e && ((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E' ||
                        *q == '+' || *q == '-'))
        q++;
    char buf[64];
    size_t n = (size_t)(q - j->p);
    if (n >= sizeof buf) return jfail(j, "number too long");
    memcpy(buf, j->p, n);
    buf[n] = '\0';
    char *end;
    double d = strtod(buf, &end);
    if (*end || !isfinite(d)) return jfail(j, "bad number");
    j->p = q;
    *v = d;
    return true;
}

static bool jliteral(jp *j, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(j->e - j->p) < n || memcmp(j->p, word, n) != 0) return jfail(j, "bad literal");
    j->p += n;
    return true;
}

/* Reads one value of an object (key: its member's name, truncated to 31
 * bytes) or of an array (key NULL). */
typedef bool (*jvalue_fn)(jp *j, const char *key, void *arg);

/* The one walker of objects ('{') and arrays ('['): every member or
 * element's value is read by fn, the separators and the end here. */
static bool jwalk(jp *j, char open, jvalue_fn fn, void *arg)
{
    char close = open == '{' ? '}' : ']';
    if (!expect(j, open)) return false;
    if (peek(j, close)) {
        j->p++;
        return true;
    }
    for (;;) {
        char key[32];
        if (open == '{' && (!jstring(j, key, sizeof key) || !expect(j, ':'))) return false;
        ws(j);
        if (!fn(j, open == '{' ? key : NULL, arg)) return false;
        if (peek(j, ',')) {
            j->p++;
            continue;
        }
        return expect(j, close);
    }
}

static bool jskip(jp *j, int depth);

static bool skip_value(jp *j, const char *key, void *depth)
{
    (void)key;
    return jskip(j, *(int *)depth + 1);
}

static bool jskip(jp *j, int depth)
{
    if (depth > MAX_DEPTH) return jfail(j, "nested too deeply");
    ws(j);
    if (j->p >= j->e) return jfail(j, "unexpected end");
    char c = *j->p;
    if (c == '"') return jstring(j, NULL, 0);
    if (c == '{' || c == '[') return jwalk(j, c, skip_value, &depth);
    if (c == 't') return jliteral(j, "true");
    if (c == 'f') return jliteral(j, "false");
    if (c == 'n') return jliteral(j, "null");
    double d;
    return jnumber(j, &d);
}

/* pid / tid: a number, or a string (hashed) */
static bool jid(jp *j, double *v)
{
    ws(j);
    if (j->p < j->e && *j->p == '"') {
        char s[NAME_MAX_LEN];
        if (!jstring(j, s, sizeof s)) return false;
        uint64_t h = 1469598103934665603ull;
        for (const char *q = s; *q; q++) h = (h ^ (unsigned char)*q) * 1099511628211ull;
        *v = (double)(h >> 12);
        return true;
    }
    return jnumber(j, v);
}

/* ---- the trace --------------------------------------------------------------- */

typedef struct ev {
    double ts, dur;
    uint32_t lane, name;
    bool failed;
} ev;

typedef struct lane {
    double pid, tid;
    char label[NAME_MAX_LEN];
    bool named;
    double busy;
    uint32_t orig; /* index before sorting (draw) */
} lane;

typedef struct tname {
    char s[NAME_MAX_LEN];
    double total;
    int color;
} tname;

typedef struct trace {
    ev *ev;
    size_t nev, cap_ev;
    lane *lanes;
    size_t nlanes, cap_lanes;
    uint32_t *ltable; /* open addressing over lanes, by (pid, tid) */
    size_t ltable_cap;
    tname *names;
    size_t nnames, cap_names;
    uint32_t *ntable; /* open addressing over names */
    size_t ntable_cap;
    char backend[64];
} trace;

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int name_index(trace *t, const char *s, uint32_t *out)
{
    if ((t->nnames + 1) * 2 > t->ntable_cap) {
        size_t cap = t->ntable_cap ? t->ntable_cap * 2 : 64;
        uint32_t *tab = malloc(cap * sizeof *tab);
        if (!tab) return WEFT_ENOMEM;
        memset(tab, 0xff, cap * sizeof *tab);
        for (size_t i = 0; i < t->nnames; i++) {
            size_t k = (size_t)str_hash(t->names[i].s) & (cap - 1);
            while (tab[k] != UINT32_MAX) k = (k + 1) & (cap - 1);
            tab[k] = (uint32_t)i;
        }
        free(t->ntable);
        t->ntable = tab;
        t->ntable_cap = cap;
    }
    size_t k = (size_t)str_hash(s) & (t->ntable_cap - 1);
    while (t->ntable[k] != UINT32_MAX) {
        if (!strcmp(t->names[t->ntable[k]].s, s)) {
            *out = t->ntable[k];
            return 0;
        }
        k = (k + 1) & (t->ntable_cap - 1);
    }
    if (weft__grow(&t->names, &t->cap_names, t->nnames + 1, sizeof *t->names, 64))
        return WEFT_ENOMEM;
    tname *n = &t->names[t->nnames];
    snprintf(n->s, sizeof n->s, "%s", s);
    n->total = 0;
    n->color = 0;
    t->ntable[k] = (uint32_t)t->nnames;
    *out = (uint32_t)t->nnames++;
    return 0;
}

static uint64_t lane_hash(double pid, double tid)
{
    uint64_t a, b;
    pid += 0.0; /* -0.0 == 0.0: one key, one hash */
    tid += 0.0;
    memcpy(&a, &pid, sizeof a);
    memcpy(&b, &tid, sizeof b);
    uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15ull)) * 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 31);
}

/* The lane of (pid, tid), added if new. A hash table, not a scan: a trace
 * of many threads (or a hostile one, a lane per event) stays linear. */
static int lane_index(trace *t, double pid, double tid, uint32_t *out)
{
    if ((t->nlanes + 1) * 2 > t->ltable_cap) {
        size_t cap = t->ltable_cap ? t->ltable_cap * 2 : 64;
        uint32_t *tab = malloc(cap * sizeof *tab);
        if (!tab) return WEFT_ENOMEM;
        memset(tab, 0xff, cap * sizeof *tab);
        for (size_t i = 0; i < t->nlanes; i++) {
            size_t k = (size_t)lane_hash(t->lanes[i].pid, t->lanes[i].tid) & (cap - 1);
            while (tab[k] != UINT32_MAX) k = (k + 1) & (cap - 1);
            tab[k] = (uint32_t)i;
        }
        free(t->ltable);
        t->ltable = tab;
        t->ltable_cap = cap;
    }
    size_t k = (size_t)lane_hash(pid, tid) & (t->ltable_cap - 1);
    while (t->ltable[k] != UINT32_MAX) {
        const lane *l = &t->lanes[t->ltable[k]];
        if (l->pid == pid && l->tid == tid) {
            *out = t->ltable[k];
            return 0;
        }
        k = (k + 1) & (t->ltable_cap - 1);
    }
    if (weft__grow(&t->lanes, &t->cap_lanes, t->nlanes + 1, sizeof *t->lanes, 64))
        return WEFT_ENOMEM;
    lane *l = &t->lanes[t->nlanes];
    memset(l, 0, sizeof *l);
    l->pid = pid;
    l->tid = tid;
    t->ltable[k] = (uint32_t)t->nlanes;
    *out = (uint32_t)t->nlanes++;
    return 0;
}

/* The fields of one event read so far. */
typedef struct evf {
    char name[NAME_MAX_LEN], ph[8], tname[NAME_MAX_LEN], outcome[16];
    double ts, dur, pid, tid;
} evf;

static bool is_string(const jp *j)
{
    return j->p < j->e && *j->p == '"';
}

static bool event_arg(jp *j, const char *key, void *arg)
{
    evf *f = arg;
    if (is_string(j) && !strcmp(key, "name")) return jstring(j, f->tname, sizeof f->tname);
    if (is_string(j) && !strcmp(key, "outcome")) return jstring(j, f->outcome, sizeof f->outcome);
    return jskip(j, 3);
}

static bool event_member(jp *j, const char *key, void *arg)
{
    evf *f = arg;
    if (!strcmp(key, "name")) return jstring(j, f->name, sizeof f->name);
    if (!strcmp(key, "ph")) return jstring(j, f->ph, sizeof f->ph);
    if (!strcmp(key, "ts")) return jnumber(j, &f->ts);
    if (!strcmp(key, "dur")) return jnumber(j, &f->dur);
    if (!strcmp(key, "pid")) return jid(j, &f->pid);
    if (!strcmp(key, "tid")) return jid(j, &f->tid);
    if (!strcmp(key, "args") && peek(j, '{')) return jwalk(j, '{', event_arg, f);
    return jskip(j, 2);
}

typedef struct reader {
    trace *t;
    int *oom;
    bool seen; /* the traceEvents array */
} reader;

/* One event object. */
static bool parse_event(jp *j, const char *key, void *arg)
{
    (void)key;
    reader *rd = arg;
    trace *t = rd->t;
    evf f = {"", "", "", "", NAN, NAN, 0, 0};
    if (!jwalk(j, '{', event_member, &f)) return false;
    uint32_t li, ni;
    if (!strcmp(f.ph, "M") && !strcmp(f.name, "thread_name") && f.tname[0]) {
        if (lane_index(t, f.pid, f.tid, &li)) return *rd->oom = 1, false;
        snprintf(t->lanes[li].label, sizeof t->lanes[li].label, "%s", f.tname);
        t->lanes[li].named = true;
    } else if (!strcmp(f.ph, "X") && isfinite(f.ts) && isfinite(f.dur) && f.dur >= 0) {
        if (lane_index(t, f.pid, f.tid, &li) || name_index(t, f.name[0] ? f.name : "?", &ni) ||
            weft__grow(&t->ev, &t->cap_ev, t->nev + 1, sizeof *t->ev, 64))
            return *rd->oom = 1, false;
        t->ev[t->nev++] = (ev){f.ts, f.dur, li, ni, f.outcome[0] && strcmp(f.outcome, "ok") != 0};
    }
    return true;
}

static bool other_member(jp *j, const char *key, void *arg)
{
    trace *t = arg;
    if (!strcmp(key, "backend") && is_string(j)) return jstring(j, t->backend, sizeof t->backend);
    return jskip(j, 2);
}

static bool trace_member(jp *j, const char *key, void *arg)
{
    reader *rd = arg;
    if (!strcmp(key, "traceEvents")) {
        rd->seen = true;
        return jwalk(j, '[', parse_event, rd);
    }
    if (!strcmp(key, "otherData") && peek(j, '{')) return jwalk(j, '{', other_member, rd->t);
    return jskip(j, 1);
}

static bool parse_trace(jp *j, trace *t, int *oom)
{
    reader rd = {t, oom, false};
    ws(j);
    if (peek(j, '[')) {
        if (!jwalk(j, '[', parse_event, &rd)) return false;
    } else {
        if (!jwalk(j, '{', trace_member, &rd)) return false;
        if (!rd.seen) return jfail(j, "no \"traceEvents\" array");
    }
    ws(j);
    if (j->p != j->e) return jfail(j, "trailing bytes after the JSON value");
    return true;
}

static void trace_free(trace *t)
{
    free(t->ev);
    free(t->lanes);
    free(t->names);
    free(t->ntable);
    free(t->ltable);
}

/* ---- drawing ------------------------------------------------------------------ */

static const char *palette[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948",
                                "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac", "#86bcb6", "#d37295"};
#define NPALETTE (sizeof palette / sizeof palette[0])

static void color_of(const trace *t, uint32_t name, char *buf, size_t cap)
{
    int c = t->names[name].color;
    if ((size_t)c < NPALETTE) {
        snprintf(buf, cap, "%s", palette[c]);
    } else {
        unsigned hue = (unsigned)(str_hash(t->names[name].s) % 360);
        snprintf(buf, cap, "hsl(%u,55%%,60%%)", hue);
    }
}

static void xml_str(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&apos;", f);
            break;
        default:
            if ((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f) fputc(*s, f);
            break;
        }
    }
}

static void fmt_secs(char *b, size_t cap, double s)
{
    double a = fabs(s);
    if (a == 0)
        snprintf(b, cap, "0");
    else if (a < 1e-3)
        snprintf(b, cap, "%.4g us", s * 1e6);
    else if (a < 1)
        snprintf(b, cap, "%.4g ms", s * 1e3);
    else
        snprintf(b, cap, "%.4g s", s);
}

static double nice_step(double span)
{
    double raw = span / 8;
    double p = pow(10, floor(log10(raw)));
    double m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

static int by_lane_ts(const void *a, const void *b)
{
    const ev *x = a, *y = b;
    if (x->lane != y->lane) return x->lane < y->lane ? -1 : 1;
    return (x->ts > y->ts) - (x->ts < y->ts);
}

static int by_lane_key(const void *a, const void *b)
{
    const lane *x = a, *y = b;
    if (x->pid != y->pid) return x->pid < y->pid ? -1 : 1;
    return (x->tid > y->tid) - (x->tid < y->tid);
}

static int draw(trace *t, const char *path, const weft_svg_options *o)
{
    int width = o->width > 0 ? o->width : 1000;
    int lh = o->lane_height > 0 ? o->lane_height : 28;
    if (width < 300) width = 300;
    if (width > 20000) width = 20000;
    if (lh < 6) lh = 6;
    if (lh > 400) lh = 400;
    const int left = 150, right = 20, top = 64, gap = 6;
    const double plot = (double)(width - left - right);

    /* lanes in (pid, tid) order; events re-pointed */
    size_t nl = t->nlanes;
    uint32_t *remap = malloc((nl ? nl : 1) * sizeof *remap);
    lane *sorted = malloc((nl ? nl : 1) * sizeof *sorted);
    if (!remap || !sorted) {
        free(remap);
        free(sorted);
        return weft__err(WEFT_ENOMEM, "weft_trace_svg: out of memory");
    }
    if (nl) memcpy(sorted, t->lanes, nl * sizeof *sorted);
    for (size_t i = 0; i < nl; i++) sorted[i].orig = (uint32_t)i;
    if (nl) qsort(sorted, nl, sizeof *sorted, by_lane_key);
    for (size_t k = 0; k < nl; k++) remap[sorted[k].orig] = (uint32_t)k;
    for (size_t i = 0; i < t->nev; i++) t->ev[i].lane = remap[t->ev[i].lane];
    free(remap);
    free(t->lanes);
    t->lanes = sorted;
    if (t->nev) qsort(t->ev, t->nev, sizeof *t->ev, by_lane_ts);

    double t0 = INFINITY, t1 = -INFINITY;
    for (size_t i = 0; i < t->nev; i++) {
        ev *e = &t->ev[i];
        if (e->ts < t0) t0 = e->ts;
        if (e->ts + e->dur > t1) t1 = e->ts + e->dur;
        t->names[e->name].total += e->dur;
        t->lanes[e->lane].busy += e->dur;
    }
    if (!t->nev) t0 = 0, t1 = 1;
    double span = t1 - t0 > 0 ? t1 - t0 : 1; /* microseconds */
    double scale = plot / span;

    /* colours: the palette by total time, hashed hues after that */
    size_t nn = t->nnames;
    uint32_t *order = malloc((nn ? nn : 1) * sizeof *order);
    if (!order) return weft__err(WEFT_ENOMEM, "weft_trace_svg: out of memory");
    for (size_t i = 0; i < nn; i++) order[i] = (uint32_t)i;
    for (size_t i = 1; i < nn; i++) { /* insertion sort by total, descending */
        uint32_t x = order[i];
        size_t k = i;
        while (k > 0 && t->names[order[k - 1]].total < t->names[x].total) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = x;
    }
    for (size_t i = 0; i < nn; i++) t->names[order[i]].color = (int)i;

    size_t legend_n = nn < 24 ? nn : 24;
    int legend_rows = (int)((legend_n + 3) / 4);
    int lanes_h = (int)(nl ? nl : 1) * (lh + gap);
    int axis_y = top + lanes_h;
    int height = axis_y + 44 + legend_rows * 18 + (nn > legend_n ? 18 : 0) + 10;

    FILE *f = fopen(path, "w");
    if (!f) {
        int e = errno;
        free(order);
        return weft__err(-e, "weft_trace_svg: cannot open '%s': %s", path, strerror(e));
    }
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
            width, height, width, height);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%d\" y=\"24\" font-size=\"16\" font-weight=\"bold\">", left);
    if (o->title) {
        xml_str(f, o->title);
    } else {
        fputs("weft task stream", f);
        if (t->backend[0]) {
            fputs(": ", f);
            xml_str(f, t->backend);
        }
    }
    char spans[32];
    fmt_secs(spans, sizeof spans, span * 1e-6);
    fprintf(f,
            "</text>\n<text x=\"%d\" y=\"44\" fill=\"#555\">%zu tasks on %zu lanes over %s; "
            "grey is idle</text>\n",
            left, t->nev, nl, spans);

    for (size_t l = 0; l < nl; l++) {
        int y = top + (int)l * (lh + gap);
        lane *ln = &t->lanes[l];
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%d\" fill=\"#eeeeee\"/>\n",
                left, y, plot, lh);
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", left - 8, y + lh / 2 + 4);
        if (ln->named)
            xml_str(f, ln->label);
        else
            fprintf(f, "%.0f/%.0f", ln->pid, ln->tid);
        fprintf(f, " (%.0f%%)</text>\n", 100.0 * ln->busy / span);
    }

    /* bars, merging runs of sub-pixel bars of one colour */
    size_t i = 0;
    while (i < t->nev) {
        ev *e = &t->ev[i];
        double x0 = left + (e->ts - t0) * scale, x1 = x0 + e->dur * scale;
        size_t count = 1;
        bool failed = e->failed;
        size_t k = i + 1;
        if (x1 - x0 < 1) {
            while (k < t->nev && t->ev[k].lane == e->lane && t->ev[k].name == e->name) {
                double a = left + (t->ev[k].ts - t0) * scale, b = a + t->ev[k].dur * scale;
                if (b - a >= 1 || a > x1 + 1) break;
                if (b > x1) x1 = b;
                failed |= t->ev[k].failed;
                count++;
                k++;
            }
        }
        double w = x1 - x0 < 0.5 ? 0.5 : x1 - x0;
        int y = top + (int)e->lane * (lh + gap);
        char col[40];
        color_of(t, e->name, col, sizeof col);
        fprintf(f, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"%s\"", x0, y + 2,
                w, lh - 4, col);
        if (failed)
            fputs(" stroke=\"#b00000\" stroke-width=\"1.5\"", f);
        else if (w >= 4) /* a hairline between neighbouring bars of one colour */
            fputs(" stroke=\"white\" stroke-width=\"0.75\"", f);
        fputs("><title>", f);
        xml_str(f, t->names[e->name].s);
        char d[32];
        fmt_secs(d, sizeof d, (count == 1 ? e->dur : (x1 - x0) / scale) * 1e-6);
        if (count == 1)
            fprintf(f, ": %s%s", d, failed ? " (failed)" : "");
        else
            fprintf(f, ": %zu tasks in %s%s", count, d, failed ? " (some failed)" : "");
        fputs("</title></rect>\n", f);
        i = k;
    }

    /* time axis */
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", left, axis_y,
            width - right, axis_y);
    double step = nice_step(span * 1e-6);
    for (int k = 0; k * step <= span * 1e-6 * 1.0001 && k < 1000; k++) {
        double x = left + k * step * 1e6 * scale;
        char lab[32];
        fmt_secs(lab, sizeof lab, k * step);
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#333\"/>"
                "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
                x, axis_y, x, axis_y + 5, x, axis_y + 18, lab);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"#555\">time since the first task</text>\n", left,
            axis_y + 34);
    /* legend */
    for (size_t li = 0; li < legend_n; li++) {
        uint32_t nm = order[li];
        int x = left + (int)(li % 4) * (int)(plot / 4), y = axis_y + 46 + (int)(li / 4) * 18;
        char col[40];
        color_of(t, nm, col, sizeof col);
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>", x, y, col);
        fprintf(f, "<text x=\"%d\" y=\"%d\">", x + 16, y + 10);
        xml_str(f, t->names[nm].s);
        fputs("</text>\n", f);
    }
    if (nn > legend_n)
        fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"#555\">and %zu more task names</text>\n", left,
                axis_y + 46 + legend_rows * 18 + 10, nn - legend_n);
    fputs("</svg>\n", f);
    free(order);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        int e = errno ? errno : EIO;
        return weft__err(-e, "weft_trace_svg: error writing '%s': %s", path, strerror(e));
    }
    return 0;
}

int weft__svg_from_buffer(const char *buf, size_t len, const char *what, const char *svg_path,
                          const weft_svg_options *opts)
{
    weft_svg_options local_opts;
    int orc = WEFT__OPTS_READ(local_opts, opts, "weft_trace_svg: weft_svg_options");
    if (orc) return orc;
    opts = &local_opts;
    trace t;
    memset(&t, 0, sizeof t);
    jp j = {buf, buf, buf + len, NULL, 0};
    int oom = 0;
    int rc = 0;
    if (!parse_trace(&j, &t, &oom)) {
        if (oom)
            rc = weft__err(WEFT_ENOMEM, "weft_trace_svg: out of memory reading %s", what);
        else
            rc = weft__err(WEFT_EINVAL, "weft_trace_svg: %s is not a trace: %s at byte %zu", what,
                           j.err ? j.err : "malformed JSON", j.err_at);
    } else {
        rc = draw(&t, svg_path, opts);
    }
    trace_free(&t);
    return rc;
}

static int read_fd(int fd, char **out, size_t *len)
{
    struct stat st;
    if (fstat(fd, &st) != 0) return -errno;
    size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096, n = 0;
    char *b = malloc(cap);
    if (!b) return WEFT_ENOMEM;
    for (;;) {
        if (n == cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) {
                free(b);
                return WEFT_ENOMEM;
            }
            b = nb;
        }
        ssize_t r = pread(fd, b + n, cap - n, (off_t)n);
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            free(b);
            return -e;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    *out = b;
    *len = n;
    return 0;
}

int weft_trace_svg(const char *json_path, const char *svg_path, const weft_svg_options *opts)
{
    if (!json_path || !svg_path || !*json_path || !*svg_path)
        return weft__err(WEFT_EINVAL, "weft_trace_svg: NULL path");
    int fd = open(json_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return weft__err(-e, "weft_trace_svg: cannot open '%s': %s", json_path, strerror(e));
    }
    char *buf;
    size_t len;
    int rc = read_fd(fd, &buf, &len);
    close(fd);
    if (rc) return weft__err(rc, "weft_trace_svg: cannot read '%s'", json_path);
    char what[256];
    snprintf(what, sizeof what, "'%.200s'", json_path);
    rc = weft__svg_from_buffer(buf, len, what, svg_path, opts);
    free(buf);
    return rc;
}

int weft_trace_write_svg(weft_executor *ex, const char *svg_path, const weft_svg_options *opts)
{
    if (!ex || !svg_path || !*svg_path)
        return weft__err(WEFT_EINVAL, "weft_trace_write_svg: NULL argument");
    /* The trace goes through weft_trace_write into an anonymous memory file
     * (a temporary file where memfd is missing), then is drawn from memory. */
    char path[64];
    int fd = memfd_create("weft-trace", MFD_CLOEXEC);
    char tmpl[4096];
    bool tmp = false;
    if (fd >= 0) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        if (access(path, W_OK) != 0) {
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0) {
        const char *dir = getenv("TMPDIR");
        snprintf(tmpl, sizeof tmpl, "%s/weft-trace-XXXXXX", dir && *dir ? dir : "/tmp");
        fd = mkostemp(tmpl, O_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            return weft__err(-e, "weft_trace_write_svg: no temporary file: %s", strerror(e));
        }
        tmp = true;
    }
    int rc = weft_trace_write(ex, tmp ? tmpl : path);
    char *buf = NULL;
    size_t len = 0;
    if (!rc) rc = read_fd(fd, &buf, &len);
    close(fd);
    if (tmp) unlink(tmpl);
    if (rc)
        return weft__err(rc, "weft_trace_write_svg: cannot capture the trace: %s",
                         weft_last_error());
    rc = weft__svg_from_buffer(buf, len, "the executor's trace", svg_path, opts);
    free(buf);
    return rc;
}
