/* bag_wordcount.c : word count and the 10 most frequent words of a text
 * file, as dask.bag writes it:
 *
 *     db.read_text(path).map(str.split).flatten().frequencies()
 *       .topk(10, key=lambda wc: wc[1])
 *
 * weft_bag_read_text splits the file into byte ranges read by all workers
 * at once; a flatmap splits lines into words; weft_bag_frequencies counts
 * them per partition in a hash table and merges the tables in a tree;
 * weft_bag_topk keeps the 10 largest counts. Memory holds a read buffer and
 * a table per task, never the file. The total is checked against a plain
 * count of words (what `wc -w` does).
 *
 * Usage: bag_wordcount [FILE] [--generate MIB] [--backend NAME]
 *   without FILE a deterministic text of MIB MiB (default 64) is written to
 *   bag_wordcount.txt first.
 * Exit status 0, 1 on a wrong answer or an error, 2 on bad arguments. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

/* flatmap: a line -> its words (split on spaces and tabs) */
static int split_words(const void *rec, size_t len, const void *arg, size_t alen,
                       weft_bag_emit *out)
{
    (void)arg, (void)alen;
    const unsigned char *p = rec, *end = p + len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        const unsigned char *w = p;
        while (p < end && *p != ' ' && *p != '\t') p++;
        if (p > w) {
            int rc = weft_bag_emit_rec(out, w, (size_t)(p - w));
            if (rc) return rc;
        }
    }
    return 0;
}
WEFT_BAG_FN(split_words);

/* A deterministic text: words of a Zipf-like vocabulary, lines of ~10 words. */
static int generate(const char *path, size_t mib)
{
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    weft_rng r;
    weft_rng_seed(&r, 2026);
    static const char syl[][4] = {"ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "ve", "zu"};
    size_t target = mib << 20, written = 0;
    char line[256];
    while (written < target) {
        size_t n = 0;
        int words = 5 + (int)(weft_rng_next(&r) % 11);
        for (int w = 0; w < words; w++) {
            /* rank ~ 1/u: small ranks are frequent */
            uint64_t rank = (uint64_t)(1.0 / (weft_rng_double(&r) + 1e-6)) % 50000;
            if (w) line[n++] = ' ';
            do {
                memcpy(line + n, syl[rank % 10], 2);
                n += 2;
                rank /= 10;
            } while (rank);
        }
        line[n++] = '\n';
        fwrite(line, 1, n, f);
        written += n;
    }
    return fclose(f) != 0;
}

static uint64_t plain_count(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uint64_t n = 0;
    int in = 0, c;
    while ((c = getc(f)) != EOF) {
        int sp = c == ' ' || c == '\t' || c == '\n' || c == '\r';
        if (!sp && !in) n++;
        in = !sp;
    }
    fclose(f);
    return n;
}

int main(int argc, char **argv)
{
    if (weft_init(&argc, &argv)) return 1;
    const char *path = NULL;
    size_t mib = 64;
    weft_options o = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--backend") && i + 1 < argc) {
            if (weft_backend_parse(argv[++i], &o.backend)) return 2;
        } else if (!strcmp(argv[i], "--generate") && i + 1 < argc) {
            mib = (size_t)atoll(argv[++i]);
        } else if (argv[i][0] != '-') {
            path = argv[i];
        } else {
            fprintf(stderr, "usage: %s [FILE] [--generate MIB] [--backend NAME]\n", argv[0]);
            return 2;
        }
    }
    if (!path) {
        path = "bag_wordcount.txt";
        if (generate(path, mib)) {
            fprintf(stderr, "cannot write %s\n", path);
            return 1;
        }
    }
    weft_executor *ex;
    if (weft_executor_create(&o, &ex)) return 1;
    weft_bag *lines = NULL, *words = NULL, *freq = NULL;
    weft_bag_records *top = NULL;
    weft_bag_text_options to = {.blocksize = 16u << 20};
    weft_bag_topk_options ko = {.key = WEFT_BAG_KEY_PAIR_INT64};
    double t0 = weft_now();
    int rc = weft_bag_read_text(path, &to, &lines);
    if (!rc) rc = weft_bag_flatmap(lines, split_words, NULL, 0, &words);
    if (!rc) rc = weft_bag_frequencies(words, &freq);
    if (!rc) rc = weft_bag_topk(freq, ex, 10, &ko, &top);
    double t1 = weft_now();
    uint64_t distinct = 0, total = 0;
    if (!rc) rc = weft_bag_count(freq, ex, &distinct);
    if (!rc) rc = weft_bag_count(words, ex, &total);
    int status = 0;
    if (rc) {
        fprintf(stderr, "bag_wordcount: %s\n", weft_last_error());
        status = 1;
    } else {
        printf("%s: %s: frequencies + top 10 in %.3f s; %llu words, %llu distinct\n",
               weft_backend_name(weft_executor_backend(ex)), path, t1 - t0,
               (unsigned long long)total, (unsigned long long)distinct);
        for (size_t i = 0; i < weft_bag_records_count(top); i++) {
            const void *d, *k, *v;
            size_t l, kl, vl;
            int64_t c;
            weft_bag_records_get(top, i, &d, &l);
            weft_bag_pair_get(d, l, &k, &kl, &v, &vl);
            memcpy(&c, v, 8);
            printf("  %8lld  %.*s\n", (long long)c, (int)kl, (const char *)k);
        }
        uint64_t ref = plain_count(path);
        if (ref != total) {
            fprintf(stderr, "bag_wordcount: WRONG: %llu words, a plain count says %llu\n",
                    (unsigned long long)total, (unsigned long long)ref);
            status = 1;
        }
    }
    weft_bag_records_destroy(top);
    weft_bag_release(freq);
    weft_bag_release(words);
    weft_bag_release(lines);
    weft_executor_destroy(ex);
    return status;
}
