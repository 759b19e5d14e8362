/* fuzz_cli_template.c : libFuzzer target for the weft command's text side
 * (programs/weft/template.c): the template parser and expander, the shell
 * quoting, the no-shell word reader, the record splitter and --colsep.
 * The input is "TEMPLATE \x01 RECORDS": the template is parsed with the
 * default replacement strings (and, by the first byte, -I-style overrides
 * and header names), the records are cut by a delimiter chosen by the
 * length, fed in pieces, split into columns and expanded as one job in
 * every -X mode. Checks, beyond no crash, leak or undefined behaviour:
 * quoting round-trips through wt_shell_words, and a template without
 * replacement strings expands to itself. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../programs/weft/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_quote(const char *s, size_t n)
{
    /* a value without NUL quoted, then read back as shell words by
     * "printf X": must give exactly the value */
    if (memchr(s, '\0', n)) return;
    wt_buf b = {0};
    if (wt_buf_add(&b, "printf ", 7) || wt_quote(&b, s, n)) {
        wt_buf_free(&b);
        return;
    }
    char **argv = NULL;
    int r = wt_shell_words(b.p, b.len, &argv);
    if (r == 1) {
        if (!argv[1] || argv[2] || strlen(argv[1]) != n || memcmp(argv[1], s, n)) abort();
        free(argv);
    } else if (r == 0) {
        /* only a value that forces the shell (e.g. a newline) may do this */
        for (size_t i = 0; i < n; i++)
            if (s[i] == '\n' || s[i] == '\r') goto ok;
        abort();
    }
ok:
    wt_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *sep = memchr(in, '\x01', size);
    size_t tl = sep ? (size_t)(sep - in) : size;
    char *text = malloc(tl + 1);
    if (!text) return 0;
    memcpy(text, in, tl);
    text[tl] = '\0';
    const char *recs = sep ? sep + 1 : in + size;
    size_t rl = sep ? size - tl - 1 : 0;

    static const char *const names[] = {"a", "name", "1x"};
    wt_rpl rpl;
    memset(&rpl, 0, sizeof rpl);
    if (size > 0 && (data[0] & 1)) rpl.s[WT_R_ARG] = "XX";
    if (size > 0 && (data[0] & 2)) rpl.s[WT_R_NOEXT] = "{..}";
    if (size > 0 && (data[0] & 4)) {
        rpl.names = names;
        rpl.nnames = 3;
    }
    wt_template t;
    if (wt_template_parse(&t, text, &rpl) == 0) {
        /* the records */
        static const char delims[] = {'\n', '\0', ',', '\t'};
        wt_split sp;
        wt_split_init(&sp, delims[size % 4]);
        size_t piece = 1 + size % 7;
        for (size_t off = 0; off < rl; off += piece) {
            size_t n = rl - off < piece ? rl - off : piece;
            if (wt_split_feed(&sp, recs + off, n)) break;
        }
        wt_split_finish(&sp);
        const char *v[16];
        size_t lens[16], nv = 0;
        const char *r;
        size_t l;
        while (nv < 16 && wt_split_next(&sp, &r, &l)) {
            v[nv] = r;
            lens[nv++] = l;
            check_quote(r, l);
        }
        wt_job_args a = {.v = v, .lens = lens, .n = nv, .seq = 7, .slot = 2};
        for (int x = 0; x < 3; x++) {
            wt_buf out = {0};
            if (wt_template_expand(&t, &a, (wt_xmode)x, x == 1, true, &out) == 0) {
                if (!t.has_repl && nv == 0 &&
                    (out.len != strlen(text) || memcmp(out.p, text, out.len)))
                    abort();
                char **argv = NULL;
                if (wt_shell_words(out.p, out.len, &argv) == 1) free(argv);
            }
            wt_buf_free(&out);
        }
        /* columns of the first record */
        wt_colsep *c;
        if (nv > 0 && wt_colsep_compile("[\t,]+", &c) == 0) {
            wt_buf cols = {0};
            size_t *cl = NULL, cn = 0;
            if (wt_colsep_split(c, v[0], lens[0], &cols, &cl, &cn) == 0) {
                size_t sum = 0;
                for (size_t i = 0; i < cn; i++) sum += cl[i];
                if (sum > lens[0] || cn == 0) abort();
                free(cl);
            }
            wt_buf_free(&cols);
            wt_colsep_free(c);
        }
        wt_split_free(&sp);
        wt_template_free(&t);
    }
    char d;
    (void)wt_parse_delim(text, &d);
    unsigned long long sz;
    (void)wt_parse_size(text, &sz);
    free(text);
    return 0;
}
