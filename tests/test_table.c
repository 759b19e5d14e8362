/* test_table.c : partitioned tables (issue 15) -- weft_table, the CSV reader
 * and writer, frames and their operations on serial, threads and processes,
 * against a serial reference written plainly here and against pandas
 * (tests/table_oracle.py, run with /usr/bin/python3; the pandas case SKIPs
 * when pandas is missing), the memory bound of a streaming groupby, and
 * the external sort (against the in-memory one, against pandas, and under
 * its memory bound on a file 4x larger).
 * weft-test-timeout: 600 */
/* the two memory-bound cases each read a 143 MiB file (and the sort's is
 * compared with pandas): over a minute each on a loaded 2-core machine */
#define CHECK_WATCHDOG_SECONDS 300
#define CHECK_CUSTOM_MAIN
#include "check.h"

#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "table/table_internal.h"

static const weft_backend backends[] = {WEFT_BACKEND_SERIAL, WEFT_BACKEND_THREADS,
                                        WEFT_BACKEND_PROCESSES};
#define NBACKENDS (sizeof backends / sizeof backends[0])

static weft_executor *make_exec(weft_backend b)
{
    weft_options o = WEFT_OPTIONS_INIT;
    o.backend = b;
    o.workers = b == WEFT_BACKEND_SERIAL ? 1 : 2;
    weft_executor *ex = NULL;
    int rc = weft_executor_create(&o, &ex);
    if (rc) printf("    executor %s: %s\n", weft_backend_name(b), weft_last_error());
    return ex;
}

static void write_file(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    if (n) REQUIRE(fwrite(data, 1, n, f) == n);
    REQUIRE(fclose(f) == 0);
}

static int read_all(const char *path, const weft_csv_options *o, weft_executor *ex,
                    weft_table **out)
{
    weft_frame *f;
    int rc = weft_frame_read_csv(&path, 1, o, &f);
    if (rc) return rc;
    rc = weft_frame_compute(f, ex, NULL, out);
    weft_frame_destroy(f);
    return rc;
}

/* ---- tables ---- */

TEST(table_build_read_slice_concat)
{
    weft_table *t;
    REQUIRE_OK(weft_table_create(&t));
    int64_t a[4] = {1, -2, 3, INT64_MIN};
    double d[4] = {0.5, -0.0, 1e300, 2};
    bool b[4] = {true, false, true, true};
    uint8_t v[4] = {1, 1, 0, 1};
    const char *s[4] = {"x", "", NULL, "a,\"b\"\n"};
    CHECK_OK(weft_table_add_int64(t, "a", a, NULL, 4));
    CHECK_OK(weft_table_add_double(t, "d", d, v, 4));
    CHECK_OK(weft_table_add_bool(t, "b", b, NULL, 4));
    CHECK_OK(weft_table_add_text(t, "s", s, 4));
    CHECK_RC(weft_table_add_int64(t, "a", a, NULL, 4), WEFT_EINVAL); /* same name */
    CHECK_RC(weft_table_add_int64(t, "z", a, NULL, 3), WEFT_EINVAL); /* other length */
    CHECK_EQ_U64(weft_table_rows(t), 4);
    CHECK_EQ_U64(weft_table_cols(t), 4);
    size_t col;
    CHECK_OK(weft_table_col_index(t, "s", &col));
    CHECK_EQ_U64(col, 3);
    CHECK_RC(weft_table_col_index(t, "nope", &col), WEFT_ENOENT);
    CHECK_EQ_INT(weft_table_col_type(t, 1), WEFT_COL_DOUBLE);
    CHECK_EQ_STR(weft_table_col_name(t, 2), "b");
    int64_t iv;
    double dv;
    bool bv, ok;
    const char *sv;
    CHECK_OK(weft_table_get_int64(t, 0, 3, &iv, &ok));
    CHECK(iv == INT64_MIN && ok);
    CHECK_OK(weft_table_get_double(t, 1, 2, &dv, &ok));
    CHECK(!ok && isnan(dv));
    CHECK_OK(weft_table_get_double(t, 0, 1, &dv, &ok)); /* an int read as double */
    CHECK(dv == -2.0 && ok);
    CHECK_OK(weft_table_get_bool(t, 2, 0, &bv, &ok));
    CHECK(bv && ok);
    CHECK_OK(weft_table_get_text(t, 3, 3, &sv, &ok));
    CHECK_EQ_STR(sv, "a,\"b\"\n");
    CHECK_OK(weft_table_get_text(t, 3, 2, &sv, &ok));
    CHECK(!ok);
    CHECK_RC(weft_table_get_text(t, 0, 0, &sv, &ok), WEFT_EINVAL);
    CHECK_RC(weft_table_get_int64(t, 0, 4, &iv, &ok), WEFT_EINVAL);
    const void *data;
    const uint8_t *valid;
    CHECK_OK(weft_table_col_data(t, 1, &data, &valid));
    CHECK(valid && valid[2] == 0 && ((const double *)data)[2] != ((const double *)data)[2]);
    CHECK_OK(weft_table_col_data(t, 0, &data, &valid));
    CHECK(valid == NULL && ((const int64_t *)data)[1] == -2);
    CHECK_RC(weft_table_col_data(t, 3, &data, &valid), WEFT_EINVAL);

    weft_table *p1, *p2, *back;
    CHECK_OK(weft_table_slice(t, 0, 1, &p1));
    CHECK_OK(weft_table_slice(t, 1, 4, &p2));
    CHECK_RC(weft_table_slice(t, 3, 5, &back), WEFT_EINVAL);
    CHECK_EQ_U64(weft_table_rows(p2), 3);
    const weft_table *parts[2] = {p1, p2};
    CHECK_OK(weft_table_concat(parts, 2, &back));
    CHECK(weft_table_equal(back, t));
    weft_table_destroy(back);

    /* serialization round trip; every shorter prefix is refused */
    void *buf;
    size_t len;
    CHECK_OK(weft_table_serialize(t, &buf, &len));
    CHECK_OK(weft_table_deserialize(buf, len, &back));
    CHECK(weft_table_equal(back, t));
    weft_table_destroy(back);
    for (size_t n = 0; n < len; n++) {
        int rc = weft_table_deserialize(buf, n, &back);
        CHECK_MSG(rc == WEFT_EINVAL, "prefix %zu gave %d", n, rc);
        if (!rc) weft_table_destroy(back);
    }
    free(buf);
    weft_table_destroy(p1);
    weft_table_destroy(p2);
    weft_table_destroy(t);
}

/* ---- CSV ---- */

/* quotes with delimiters, escaped quotes, embedded LF and CRLF, CRLF line
 * ends, empty fields, NA strings, no final newline */
static const char tricky[] = "id,name,score,ok\r\n"
                             "1,plain,1.5,true\r\n"
                             "2,\"with, comma\",-2,false\r\n"
                             "3,\"say \"\"hi\"\"\",,True\r\n"
                             "4,\"two\nlines\",1e3,FALSE\r\n"
                             "5,\"crlf\r\ninside\",NA,\n"
                             "6,,0.1,true\n"
                             "7,\"\"\"\",3,false\n"
                             "8,\"a\"\"\nb,\"\"c\",4.25,true";

static weft_table *tricky_expected(void)
{
    weft_table *t;
    REQUIRE_OK(weft_table_create(&t));
    int64_t id[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const char *name[8] = {"plain",          "with, comma", "say \"hi\"", "two\nlines",
                           "crlf\r\ninside", NULL,          "\"",         "a\"\nb,\"c"};
    double sc[8] = {1.5, -2, 0, 1e3, 0, 0.1, 3, 4.25};
    uint8_t scv[8] = {1, 1, 0, 1, 0, 1, 1, 1};
    bool ok[8] = {true, false, true, false, false, true, false, true};
    uint8_t okv[8] = {1, 1, 1, 1, 0, 1, 1, 1};
    REQUIRE_OK(weft_table_add_int64(t, "id", id, NULL, 8));
    REQUIRE_OK(weft_table_add_text(t, "name", name, 8));
    REQUIRE_OK(weft_table_add_double(t, "score", sc, scv, 8));
    REQUIRE_OK(weft_table_add_bool(t, "ok", ok, okv, 8));
    return t;
}

TEST(csv_tricky_file_every_partition_count)
{
    size_t len = sizeof tricky - 1;
    write_file("tricky.csv", tricky, len);
    weft_table *want = tricky_expected();
    weft_executor *ex = make_exec(WEFT_BACKEND_THREADS);
    REQUIRE(ex);
    /* every partition count 1..64, and every block size 1..len */
    for (size_t k = 1; k <= 64 + len; k++) {
        size_t block = k <= 64 ? (len + k - 1) / k : k - 64;
        weft_csv_options o = {.block_size = block};
        weft_frame *f;
        REQUIRE_OK(weft_frame_read_csv((const char *[]){"tricky.csv"}, 1, &o, &f));
        weft_table *got = NULL;
        int rc = weft_frame_compute(f, ex, NULL, &got);
        CHECK_MSG(rc == 0 && weft_table_equal(got, want), "block %zu (%zu partitions): rc %d %s",
                  block, weft_frame_partitions(f), rc, rc ? weft_last_error() : "tables differ");
        weft_table_destroy(got);
        weft_frame_destroy(f);
    }
    /* the same with a schema (types given, inference off) */
    weft_csv_column sch[4] = {{"id", WEFT_COL_INT64},
                              {"name", WEFT_COL_TEXT},
                              {"score", WEFT_COL_DOUBLE},
                              {"ok", WEFT_COL_BOOL}};
    weft_csv_options o = {.schema = sch, .n_schema = 4, .block_size = 7};
    weft_table *got;
    CHECK_OK(read_all("tricky.csv", &o, ex, &got));
    CHECK(weft_table_equal(got, want));
    weft_table_destroy(got);
    weft_table_destroy(want);
    weft_executor_destroy(ex);
}

TEST(csv_bom_header_only_empty_and_blank_lines)
{
    weft_executor *ex = make_exec(WEFT_BACKEND_SERIAL);
    REQUIRE(ex);
    weft_table *t;
    write_file("bom.csv",
               "\xEF\xBB\xBF"
               "a;b\n1;x\n\n2;y\n",
               16);
    weft_csv_options semi = {.delimiter = ';'};
    CHECK_OK(read_all("bom.csv", &semi, ex, &t));
    CHECK_EQ_U64(weft_table_rows(t), 2);
    CHECK_EQ_STR(weft_table_col_name(t, 0), "a");
    CHECK_EQ_INT(weft_table_col_type(t, 0), WEFT_COL_INT64);
    CHECK_EQ_INT(weft_table_col_type(t, 1), WEFT_COL_TEXT);
    weft_table_destroy(t);

    write_file("header.csv", "a,b,c\n", 6);
    CHECK_OK(read_all("header.csv", NULL, ex, &t));
    CHECK_EQ_U64(weft_table_rows(t), 0);
    CHECK_EQ_U64(weft_table_cols(t), 3);
    weft_table_destroy(t);
    write_file("header2.csv", "a,b,c", 5); /* no final newline */
    CHECK_OK(read_all("header2.csv", NULL, ex, &t));
    CHECK_EQ_U64(weft_table_rows(t), 0);
    CHECK_EQ_U64(weft_table_cols(t), 3);
    weft_table_destroy(t);

    write_file("empty.csv", "", 0);
    weft_frame *f;
    CHECK_ERR(weft_frame_read_csv((const char *[]){"empty.csv"}, 1, NULL, &f), WEFT_EINVAL);
    weft_csv_column sch[1] = {{"a", WEFT_COL_DOUBLE}};
    weft_csv_options o = {.schema = sch, .n_schema = 1};
    CHECK_OK(read_all("empty.csv", &o, ex, &t));
    CHECK_EQ_U64(weft_table_rows(t), 0);
    CHECK_EQ_U64(weft_table_cols(t), 1);
    weft_table_destroy(t);

    /* no header: columns c0, c1 */
    write_file("nohdr.csv", "1,2\n3,4\n", 8);
    weft_csv_options nh = {.flags = WEFT_CSV_NO_HEADER};
    CHECK_OK(read_all("nohdr.csv", &nh, ex, &t));
    CHECK_EQ_U64(weft_table_rows(t), 2);
    CHECK_EQ_STR(weft_table_col_name(t, 1), "c1");
    weft_table_destroy(t);
    weft_executor_destroy(ex);
}

TEST(csv_malformed_rows_error_or_skip)
{
    weft_executor *ex = make_exec(WEFT_BACKEND_THREADS);
    REQUIRE(ex);
    weft_table *t;
    const char ragged[] = "a,b\n1,2\n3\n4,5,6\n\"x\n";
    write_file("ragged.csv", ragged, sizeof ragged - 1);
    weft_csv_column sch[2] = {{"a", WEFT_COL_TEXT}, {"b", WEFT_COL_INT64}};
    weft_csv_options o = {.schema = sch, .n_schema = 2};
    CHECK_ERR(read_all("ragged.csv", &o, ex, &t), WEFT_EINVAL);
    CHECK_MSG(strstr(weft_last_error(), "ragged.csv:3") != NULL, "%s", weft_last_error());
    o.flags = WEFT_CSV_SKIP_BAD;
    for (size_t block = 1; block <= sizeof ragged; block++) {
        o.block_size = block;
        t = NULL;
        CHECK_OK(read_all("ragged.csv", &o, ex, &t));
        CHECK_EQ_U64(weft_table_rows(t), 1);
        CHECK_EQ_U64(weft_table_skipped(t), 3); /* short, long, unterminated */
        weft_table_destroy(t);
    }
    /* a value of the wrong type names file, line and field */
    const char badval[] = "a,b\n1,2\n\"multi\nline\",3\nz,4.5\n";
    write_file("badval.csv", badval, sizeof badval - 1);
    o.flags = 0;
    o.block_size = 0;
    CHECK_ERR(read_all("badval.csv", &o, ex, &t), WEFT_EINVAL);
    CHECK_MSG(strstr(weft_last_error(), "badval.csv:5: field 2 (b): '4.5' is not an int64"), "%s",
              weft_last_error());
    /* a stray quote in an unquoted field */
    write_file("stray.csv", "a,b\nx\"y,1\n", 10);
    CHECK_ERR(read_all("stray.csv", &o, ex, &t), WEFT_EINVAL);
    CHECK_MSG(strstr(weft_last_error(), "stray.csv:2: field 1"), "%s", weft_last_error());
    weft_executor_destroy(ex);
}

TEST(csv_doubles_are_correctly_rounded)
{
    static const char *const v[] = {"0.1",
                                    "1e22",
                                    "1e23",
                                    "9007199254740993",
                                    "9007199254740992",
                                    "2.2250738585072014e-308",
                                    "4.9e-324",
                                    "1.7976931348623157e308",
                                    "-0",
                                    "123456789012345678901234567890",
                                    "1e-22",
                                    "0.30000000000000004",
                                    "3.14159265358979323846264338327950288",
                                    "1e400",
                                    "-1e-400",
                                    "7.038531e-26",
                                    "8.533e+68",
                                    "4.1006e-184",
                                    "9.998e+307",
                                    "9.9538452227e-280",
                                    "6.47660115e-260",
                                    "7.4e+47",
                                    "5.92e+48",
                                    "7.35e+66",
                                    "8.32116e+55",
                                    ".5",
                                    "5.",
                                    "+2.5e+3",
                                    "1234567890123456789",
                                    "0.000001",
                                    "123.456e-7"};
    size_t nv = sizeof v / sizeof *v;
    char text[8192];
    size_t n = (size_t)snprintf(text, sizeof text, "x\n");
    weft_rng r;
    weft_rng_seed(&r, 42);
    char more[200][40];
    for (int i = 0; i < 200; i++) {
        double d = (weft_rng_double(&r) - 0.5) * pow(10, (double)weft_rng_range(&r, -30, 30));
        snprintf(more[i], sizeof more[i], "%.*g", (int)weft_rng_range(&r, 1, 17), d);
    }
    for (size_t i = 0; i < nv; i++) n += (size_t)snprintf(text + n, sizeof text - n, "%s\n", v[i]);
    for (int i = 0; i < 200; i++) n += (size_t)snprintf(text + n, sizeof text - n, "%s\n", more[i]);
    write_file("doubles.csv", text, n);
    weft_executor *ex = make_exec(WEFT_BACKEND_SERIAL);
    REQUIRE(ex);
    weft_table *t;
    REQUIRE_OK(read_all("doubles.csv", NULL, ex, &t));
    REQUIRE(weft_table_col_type(t, 0) == WEFT_COL_DOUBLE);
    REQUIRE(weft_table_rows(t) == nv + 200);
    for (size_t i = 0; i < nv + 200; i++) {
        const char *s = i < nv ? v[i] : more[i - nv];
        double got, want = strtod(s, NULL);
        CHECK_OK(weft_table_get_double(t, 0, i, &got, NULL));
        CHECK_MSG(memcmp(&got, &want, sizeof got) == 0, "%s: %a != %a", s, got, want);
    }
    weft_table_destroy(t);
    weft_executor_destroy(ex);
}

/* ---- the field scanner ---- */

/* The first delimiter, newline or quote of b[j..n), plainly. */
static size_t find_ref(const char *b, size_t j, size_t n, char d)
{
    while (j < n && b[j] != d && b[j] != '\n' && b[j] != '"') j++;
    return j;
}

/* Every scanner gives the plain answer at every start, end
 * and alignment, never reading past the end: the bytes sit right before a
 * page that may not be read (PROT_NONE). */
TEST(csv_scanner_agrees_at_every_alignment)
{
    long pg = sysconf(_SC_PAGESIZE);
    char *m =
        mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(m != MAP_FAILED);
    REQUIRE(mprotect(m + pg, (size_t)pg, PROT_NONE) == 0);
    static const char alpha[] = {'a', ',', ';', '\n', '"', '\r', 'x', (char)0x80, (char)0xff, 0};
    weft_rng r;
    weft_rng_seed(&r, 7);
    int kinds[4] = {WEFT__CSV_SCAN_SCALAR, WEFT__CSV_SCAN_SWAR, WEFT__CSV_SCAN_SSE2,
                    WEFT__CSV_SCAN_AVX2};
    size_t checked = 0;
    for (int pass = 0; pass < 40; pass++) {
        /* sparse or dense special bytes */
        int spread = pass % 4 == 0 ? 1 : pass % 4 == 1 ? 8 : pass % 4 == 2 ? 40 : 200;
        for (size_t n = 0; n <= 80; n++) {
            char *b = m + pg - n; /* b[n] is the guard page */
            for (size_t i = 0; i < n; i++) {
                int k = (int)weft_rng_range(&r, 0, spread);
                b[i] = k < (int)sizeof alpha ? alpha[k] : (char)('b' + k % 20);
            }
            for (size_t j = 0; j <= n; j++)
                for (int d = 0; d < 2; d++) {
                    char delim = d ? ';' : ',';
                    size_t want = find_ref(b, j, n, delim);
                    for (int q = 0; q < 4; q++) { /* one this build lacks runs the plain loop */
                        size_t got = weft__csv_find(b, j, n, delim, kinds[q]);
                        CHECK_MSG(got == want, "kind %d n %zu j %zu delim %c: %zu, want %zu",
                                  kinds[q], n, j, delim, got, want);
                        checked++;
                    }
                    CHECK_EQ_U64(weft__csv_find(b, j, n, delim, WEFT__CSV_SCAN_BEST), want);
                }
        }
    }
    REQUIRE_OK(weft__csv_set_scanner(WEFT__CSV_SCAN_BEST));
    CHECK(checked > 100000);
    CHECK_ERR(weft__csv_set_scanner(9), WEFT_EINVAL);
    munmap(m, (size_t)pg * 2);
}

/* The tricky corpus shifted by 0..63 bytes (blank lines after the header,
 * which the reader skips) so every field meets every alignment of the
 * scanner's 64-byte blocks, at every
 * partition count 1..64, with every scanner: always the same table. */
TEST(csv_tricky_file_every_alignment_and_scanner)
{
    weft_table *want = tricky_expected();
    weft_executor *ex = make_exec(WEFT_BACKEND_SERIAL);
    REQUIRE(ex);
    const char *hdr_end = strchr(tricky, '\n') + 1;
    size_t hl = (size_t)(hdr_end - tricky), rest = sizeof tricky - 1 - hl;
    char buf[sizeof tricky + 64];
    int kinds[5] = {WEFT__CSV_SCAN_BEST, WEFT__CSV_SCAN_SCALAR, WEFT__CSV_SCAN_SWAR,
                    WEFT__CSV_SCAN_SSE2, WEFT__CSV_SCAN_AVX2};
    for (int q = 0; q < 5; q++) {
        if (weft__csv_set_scanner(kinds[q]) != 0) continue; /* not in this build */
        for (size_t shift = 0; shift < 64; shift++) {
            memcpy(buf, tricky, hl);
            memset(buf + hl, '\n', shift);
            memcpy(buf + hl + shift, hdr_end, rest);
            size_t len = hl + shift + rest;
            write_file("tricky_shift.csv", buf, len);
            /* every count for the default scanner at the first 16 shifts, a
             * few for the others, four past them */
            for (size_t k = 1; k <= 64; k += shift >= 16 ? 21 : q == 0 ? 1 : 9) {
                weft_csv_options o = {.block_size = (len - hl + k - 1) / k};
                weft_table *got = NULL;
                int rc = read_all("tricky_shift.csv", &o, ex, &got);
                CHECK_MSG(rc == 0 && weft_table_equal(got, want),
                          "scanner %d shift %zu block %zu: rc %d %s", kinds[q], shift,
                          (size_t)o.block_size, rc, rc ? weft_last_error() : "tables differ");
                weft_table_destroy(got);
            }
        }
    }
    REQUIRE_OK(weft__csv_set_scanner(WEFT__CSV_SCAN_BEST));
    /* a malformed file gives the same message with every scanner */
    static const char stray[] = "a,b\n1,2\nxxxxxxxxxxxxxxxxxxxx\"y,1\n";
    write_file("stray2.csv", stray, sizeof stray - 1);
    char first[512] = "";
    for (int q = 0; q < 5; q++) {
        if (weft__csv_set_scanner(kinds[q]) != 0) continue;
        weft_table *t = NULL;
        CHECK_ERR(read_all("stray2.csv", NULL, ex, &t), WEFT_EINVAL);
        if (!first[0])
            snprintf(first, sizeof first, "%s", weft_last_error());
        else
            CHECK_EQ_STR(weft_last_error(), first);
    }
    CHECK_MSG(strstr(first, "stray2.csv:3: field 1"), "%s", first);
    REQUIRE_OK(weft__csv_set_scanner(WEFT__CSV_SCAN_BEST));
    weft_table_destroy(want);
    weft_executor_destroy(ex);
}

/* The reader's walk over 64-byte blocks: from every start, the masks of
 * consecutive blocks give every delimiter, newline and quote (or every
 * quote, for quoted fields) in order, with every scanner, on bytes that end
 * right before an unreadable page (the last block, shorter than 64 bytes,
 * is never loaded whole). */
TEST(csv_scanner_walks_blocks_like_a_plain_loop)
{
    long pg = sysconf(_SC_PAGESIZE);
    char *m =
        mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(m != MAP_FAILED);
    REQUIRE(mprotect(m + pg, (size_t)pg, PROT_NONE) == 0);
    static const char alpha[] = {'a', ',', ';', '\n', '"', '\r', 'x', (char)0x80, (char)0xff, 0};
    static const size_t lens[] = {0,   1,   2,   15,  16,  17,  31,  32,  33,  63,  64,
                                  65,  66,  95,  127, 128, 129, 130, 191, 192, 193, 200,
                                  255, 256, 257, 300, 319, 320, 321, 383, 384, 385};
    int kinds[5] = {WEFT__CSV_SCAN_SCALAR, WEFT__CSV_SCAN_SWAR, WEFT__CSV_SCAN_SSE2,
                    WEFT__CSV_SCAN_AVX2, WEFT__CSV_SCAN_BEST};
    weft_rng r;
    weft_rng_seed(&r, 64);
    size_t want[400], got[400], checked = 0;
    for (int pass = 0; pass < 8; pass++) {
        int spread = pass % 4 == 0 ? 1 : pass % 4 == 1 ? 8 : pass % 4 == 2 ? 40 : 200;
        for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
            size_t n = lens[li];
            char *b = m + pg - n; /* b[n] is the guard page */
            for (size_t i = 0; i < n; i++) {
                int k = (int)weft_rng_range(&r, 0, spread);
                b[i] = k < (int)sizeof alpha ? alpha[k] : (char)('b' + k % 20);
            }
            for (size_t j = 0; j <= n; j++)
                for (int qo = 0; qo < 2; qo++) {
                    char delim = pass & 1 ? ';' : ',';
                    size_t nw = 0;
                    for (size_t i = j; i < n; i++)
                        if (b[i] == '"' || (!qo && (b[i] == delim || b[i] == '\n'))) want[nw++] = i;
                    for (int q = 0; q < 5; q++) {
                        size_t ng = weft__csv_walk(b, j, n, delim, kinds[q], qo, got, 400);
                        bool same = ng == nw && (nw == 0 || !memcmp(got, want, nw * sizeof *got));
                        CHECK_MSG(same, "kind %d n %zu j %zu quotes %d: %zu hits, want %zu",
                                  kinds[q], n, j, qo, ng, nw);
                        checked++;
                    }
                }
        }
    }
    CHECK(checked > 50000);
    munmap(m, (size_t)pg * 2);
}

/* A file built so that its delimiters, quotes (opening, doubled, closing),
 * CRLF line ends and CRLF inside quoted fields fall at every offset of the
 * scanner's 64-byte blocks (fields of every length 0..66, the whole shifted
 * by 0..63 blank lines; every third shift for the scanners not the best),
 * with and without a final newline (a length that is
 * no multiple of the block): the same table with every scanner, as one
 * partition and cut into ranges. */
TEST(csv_fields_at_every_block_edge)
{
    enum {
        ROWS = 268
    };
    size_t cap = 64 + ROWS * 256, n = 0;
    char *body = malloc(cap), *file = malloc(cap + 64);
    char(*names)[160] = malloc(ROWS * sizeof *names);
    const char **np = malloc(ROWS * sizeof *np);
    int64_t id[ROWS];
    double sc[ROWS];
    uint8_t scv[ROWS];
    REQUIRE(body && file && names && np);
    for (int i = 0; i < ROWS; i++) {
        int len = i % 67, form = i % 4;
        char pad[80];
        memset(pad, 'a' + i % 26, (size_t)len);
        pad[len] = 0;
        id[i] = i * 7 - 300;
        n += (size_t)snprintf(body + n, cap - n, "%lld,", (long long)id[i]);
        if (form == 0) { /* plain */
            snprintf(names[i], sizeof names[i], "%s", pad);
            n += (size_t)snprintf(body + n, cap - n, "%s", pad);
        } else if (form == 1) { /* a delimiter inside quotes */
            snprintf(names[i], sizeof names[i], "%s,z", pad);
            n += (size_t)snprintf(body + n, cap - n, "\"%s,z\"", pad);
        } else if (form == 2) { /* a doubled quote */
            snprintf(names[i], sizeof names[i], "q\"%s", pad);
            n += (size_t)snprintf(body + n, cap - n, "\"q\"\"%s\"", pad);
        } else { /* CRLF inside quotes */
            snprintf(names[i], sizeof names[i], "l\r\n%s", pad);
            n += (size_t)snprintf(body + n, cap - n, "\"l\r\n%s\"", pad);
        }
        np[i] = form == 0 && len == 0 ? NULL : names[i]; /* an empty field is NA */
        scv[i] = i % 9 != 0;
        sc[i] = scv[i] ? (double)(i - 100) / 7.0 * 1e3 : 0;
        if (scv[i])
            n += (size_t)snprintf(body + n, cap - n, ",%.17g", sc[i]);
        else
            n += (size_t)snprintf(body + n, cap - n, ",");
        n += (size_t)snprintf(body + n, cap - n, "%s", i % 3 == 0 ? "\r\n" : "\n");
    }
    weft_table *want;
    REQUIRE_OK(weft_table_create(&want));
    REQUIRE_OK(weft_table_add_int64(want, "id", id, NULL, ROWS));
    REQUIRE_OK(weft_table_add_text(want, "name", np, ROWS));
    REQUIRE_OK(weft_table_add_double(want, "score", sc, scv, ROWS));
    weft_executor *ex = make_exec(WEFT_BACKEND_SERIAL);
    REQUIRE(ex);
    int kinds[5] = {WEFT__CSV_SCAN_BEST, WEFT__CSV_SCAN_SCALAR, WEFT__CSV_SCAN_SWAR,
                    WEFT__CSV_SCAN_SSE2, WEFT__CSV_SCAN_AVX2};
    static const char hdr[] = "id,name,score\n";
    size_t hl = sizeof hdr - 1;
    for (int q = 0; q < 5; q++) {
        if (weft__csv_set_scanner(kinds[q]) != 0) continue; /* not in this build or CPU */
        for (size_t shift = 0; shift < 64; shift += q == 0 ? 1 : 3)
            for (int last = 0; last < 2; last++) {
                memcpy(file, hdr, hl);
                memset(file + hl, '\n', shift);
                memcpy(file + hl + shift, body, n);
                size_t len = hl + shift + n;
                if (last) len -= 1 + (file[len - 2] == '\r'); /* no final newline */
                write_file("edges.csv", file, len);
                size_t blocks[4] = {len, (len - hl) / 2 + 1, (len - hl) / 7 + 1,
                                    (len - hl) / 13 + 1};
                for (int bi = 0; bi < 4; bi++) {
                    weft_csv_options o = {.block_size = blocks[bi]};
                    weft_table *got = NULL;
                    int rc = read_all("edges.csv", &o, ex, &got);
                    CHECK_MSG(rc == 0 && weft_table_equal(got, want),
                              "scanner %d shift %zu last %d block %zu: rc %d %s", kinds[q], shift,
                              last, blocks[bi], rc, rc ? weft_last_error() : "tables differ");
                    weft_table_destroy(got);
                }
            }
    }
    REQUIRE_OK(weft__csv_set_scanner(WEFT__CSV_SCAN_BEST));
    weft_table_destroy(want);
    weft_executor_destroy(ex);
    free(body), free(file), free(names), free(np);
}

/* m / 10^k for 17 to 19 digits m and k = 1..22 is read by a product with
 * 5^k's 128-bit reciprocal, and by the exact division where the product
 * cannot decide (the exact quotients and the ties): bit for bit strtod's
 * answer, for random digits and for m = j x 5^k (the value j / 2^k, exact,
 * or a tie when j is odd and of 54 bits), and their neighbours m +- 1;
 * and every length of integer part and fraction (the digits read up to
 * eight at a time). */
TEST(csv_reciprocal_division_matches_strtod)
{
    enum {
        N = 9200
    };
    char(*v)[48] = malloc(N * sizeof *v);
    REQUIRE(v);
    weft_rng r;
    weft_rng_seed(&r, 1522);
    size_t n = 0;
    uint64_t p5[23];
    p5[0] = 1;
    for (int k = 1; k <= 22; k++) p5[k] = p5[k - 1] * 5;
    while (n < N / 2) { /* exact quotients, ties and their neighbours */
        int k = (int)weft_rng_range(&r, 1, 22);
        int bits = (int)weft_rng_range(&r, 40, 54);
        uint64_t j = ((uint64_t)1 << (bits - 1)) |
                     (uint64_t)weft_rng_range(&r, 0, (int64_t)(((uint64_t)1 << (bits - 1)) - 1));
        if (bits == 54) j |= 1; /* odd, 54 bits: halfway between two doubles */
        if (j > UINT64_MAX / p5[k]) continue;
        uint64_t mm = j * p5[k];
        if (mm <= (1ull << 53) || mm >= 10000000000000000000ull) continue;
        for (int d = -1; d <= 1; d++) {
            char dig[24];
            int nd = snprintf(dig, sizeof dig, "%llu", (unsigned long long)(mm + (uint64_t)d));
            if (nd > k)
                snprintf(v[n++], sizeof v[0], "%.*s.%s", nd - k, dig, dig + nd - k);
            else
                snprintf(v[n++], sizeof v[0], "%s%se-%d", d < 0 ? "-" : "", dig, k);
        }
    }
    /* every length of integer part (0..12) and fraction (0..13), signed or
     * not, with an exponent or not: the digits are taken up to eight at a
     * time from the field's bytes, the last eight when fewer remain */
    for (int ip = 0; ip <= 12; ip++)
        for (int fp = 0; fp <= 13; fp++)
            for (int rep = 0; rep < 4; rep++) {
                char dig[32];
                int at = 0;
                if (rep & 1) dig[at++] = '-';
                for (int q = 0; q < ip; q++)
                    dig[at++] = (char)('0' + weft_rng_range(&r, q == 0, 9));
                if (fp || !ip) dig[at++] = '.';
                for (int q = 0; q < fp; q++) dig[at++] = (char)('0' + weft_rng_range(&r, 0, 9));
                if (!ip && !fp) dig[at++] = '5';
                dig[at] = 0;
                snprintf(v[n++], sizeof v[0], "%s%s", dig, rep >= 2 ? "e-3" : "");
            }
    while (n < N) { /* random 17..19 digits, a point or an exponent */
        int nd = (int)weft_rng_range(&r, 17, 19), k = (int)weft_rng_range(&r, 1, 22);
        char dig[24];
        dig[0] = (char)('1' + weft_rng_range(&r, 0, 8));
        for (int q = 1; q < nd; q++) dig[q] = (char)('0' + weft_rng_range(&r, 0, 9));
        dig[nd] = 0;
        if (nd > k && weft_rng_range(&r, 0, 1))
            snprintf(v[n++], sizeof v[0], "%.*s.%s", nd - k, dig, dig + nd - k);
        else
            snprintf(v[n++], sizeof v[0], "%se-%d", dig, k);
    }
    size_t cap = (size_t)N * 48 + 8, at = 0;
    char *text = malloc(cap);
    REQUIRE(text);
    at += (size_t)snprintf(text, cap, "x\n");
    for (size_t i = 0; i < n; i++) at += (size_t)snprintf(text + at, cap - at, "%s\n", v[i]);
    write_file("recip.csv", text, at);
    weft_executor *ex = make_exec(WEFT_BACKEND_SERIAL);
    REQUIRE(ex);
    weft_table *t;
    REQUIRE_OK(read_all("recip.csv", NULL, ex, &t));
    REQUIRE(weft_table_col_type(t, 0) == WEFT_COL_DOUBLE);
    REQUIRE(weft_table_rows(t) == n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        double got, want = strtod(v[i], NULL);
        CHECK_OK(weft_table_get_double(t, 0, i, &got, NULL));
        if (memcmp(&got, &want, sizeof got) && bad++ < 10)
            CHECK_MSG(false, "%s: %a != %a", v[i], got, want);
    }
    CHECK_EQ_U64(bad, 0);
    weft_table_destroy(t);
    weft_executor_destroy(ex);
    free(text);
    free(v);
}

/* Line numbers in errors come from the ranges' newline counts (the SSE2
 * count over long runs of bytes): right at every block size. */
TEST(csv_error_line_numbers_at_every_block_size)
{
    size_t cap = 1 << 20, at = 0, line = 1;
    char *text = malloc(cap);
    REQUIRE(text);
    at += (size_t)sprintf(text, "a,b\n");
    line++;
    for (int i = 0; i < 20000; i++) {
        if (i % 97 == 0) {
            at += (size_t)sprintf(text + at, "%d,\"x\ny\"\n", i); /* a newline inside quotes */
            line += 2;
        } else {
            at += (size_t)sprintf(text + at, "%d,plain%d\n", i, i);
            line++;
        }
    }
    at += (size_t)sprintf(text + at, "oops,z\n"); /* `line` is its line */
    write_file("lines.csv", text, at);
    free(text);
    weft_csv_column sch[2] = {{"a", WEFT_COL_INT64}, {"b", WEFT_COL_TEXT}};
    char want[64];
    snprintf(want, sizeof want, "lines.csv:%zu: field 1 (a)", line);
    weft_executor *ex = make_exec(WEFT_BACKEND_SERIAL);
    REQUIRE(ex);
    size_t blocks[] = {97, 1000, 4096, 5000, 65536, 1 << 20};
    for (size_t q = 0; q < sizeof blocks / sizeof *blocks; q++) {
        weft_csv_options o = {.schema = sch, .n_schema = 2, .block_size = blocks[q]};
        weft_table *t = NULL;
        CHECK_ERR(read_all("lines.csv", &o, ex, &t), WEFT_EINVAL);
        CHECK_MSG(strstr(weft_last_error(), want), "block %zu: %s, want %s", blocks[q],
                  weft_last_error(), want);
    }
    weft_executor_destroy(ex);
}

/* A read task reads its range in chunks (1 MiB; a record that runs past a
 * chunk's end moves to the front, a record longer than the chunk makes it
 * larger): with chunks of 1 to 70 bytes and 4 KiB, every record and field
 * crosses a chunk somewhere -- the tricky corpus at several partition
 * counts, a file with a quoted newline every 97 records and a bad value
 * on its last line (the same line in the message), and the same file's
 * records skipped and counted, with a groupby straight from the CSV. */
TEST(csv_read_in_tiny_chunks)
{
    size_t cap = 1 << 20, at = 0, line = 1;
    char *text = malloc(cap);
    REQUIRE(text);
    at += (size_t)sprintf(text, "a,b\n");
    line++;
    for (int i = 0; i < 3000; i++) {
        if (i % 97 == 0) {
            at += (size_t)sprintf(text + at, "%d,\"x\ny\"\n", i % 13);
            line += 2;
        } else {
            at += (size_t)sprintf(text + at, "%d,plain%d\n", i % 13, i);
            line++;
        }
    }
    at += (size_t)sprintf(text + at, "oops,z\n");
    write_file("chunks.csv", text, at);
    write_file("tricky.csv", tricky, sizeof tricky - 1);
    free(text);
    weft_csv_column sch[2] = {{"a", WEFT_COL_INT64}, {"b", WEFT_COL_TEXT}};
    char want[64];
    snprintf(want, sizeof want, "chunks.csv:%zu: field 1 (a)", line);
    weft_table *tricky_want = tricky_expected();
    weft_executor *ex = make_exec(WEFT_BACKEND_SERIAL);
    weft_executor *th = make_exec(WEFT_BACKEND_THREADS);
    REQUIRE(ex && th);
    const char *keys[1] = {"a"};
    weft_agg cnt[1] = {{"b", WEFT_AGG_COUNT, NULL}};
    weft_table *gb_want = NULL;
    for (size_t ch = 0; ch <= 71; ch++) {
        REQUIRE_OK(weft__csv_set_chunk(ch == 71 ? 4096 : ch)); /* 0: the default */
        for (size_t k = 1; k <= 9; k += 4) {
            weft_csv_options o = {.block_size = (sizeof tricky - 1 + k - 1) / k};
            weft_table *got = NULL;
            int rc = read_all("tricky.csv", &o, ex, &got);
            CHECK_MSG(rc == 0 && weft_table_equal(got, tricky_want), "chunk %zu, %zu parts: %s", ch,
                      k, rc ? weft_last_error() : "tables differ");
            weft_table_destroy(got);
        }
        weft_csv_options o = {.schema = sch, .n_schema = 2, .block_size = 9000};
        weft_table *t = NULL;
        CHECK_ERR(read_all("chunks.csv", &o, ex, &t), WEFT_EINVAL);
        CHECK_MSG(strstr(weft_last_error(), want), "chunk %zu: %s, want %s", ch, weft_last_error(),
                  want);
        o.flags = WEFT_CSV_SKIP_BAD;
        weft_frame *f;
        REQUIRE_OK(weft_frame_read_csv((const char *[]){"chunks.csv"}, 1, &o, &f));
        weft_table *g = NULL;
        CHECK_OK(weft_frame_groupby(f, keys, 1, cnt, 1, th, NULL, &g));
        if (!gb_want)
            gb_want = g, g = NULL;
        else
            CHECK_MSG(weft_table_equal(g, gb_want), "chunk %zu: the groupby differs", ch);
        weft_table_destroy(g);
        weft_frame_destroy(f);
        CHECK_OK(read_all("chunks.csv", &o, th, &t));
        CHECK_EQ_U64(weft_table_rows(t), 3000);
        CHECK_EQ_U64(weft_table_skipped(t), 1);
        weft_table_destroy(t);
    }
    REQUIRE_OK(weft__csv_set_chunk(0));
    CHECK_EQ_U64(weft_table_rows(gb_want), 13);
    weft_table_destroy(gb_want);
    weft_table_destroy(tricky_want);
    weft_executor_destroy(ex);
    weft_executor_destroy(th);
}

/* Doubles of 17 to 19 significant digits (what %.17g and repr print) take
 * the exact 128-bit path: every one equals strtod's, ties to even too. */
TEST(csv_long_doubles_are_correctly_rounded)
{
    enum {
        N = 6000
    };
    char(*v)[48] = malloc(N * sizeof *v);
    REQUIRE(v);
    weft_rng r;
    weft_rng_seed(&r, 99);
    size_t n = 0;
    /* ties: n.5 in [2^52, 2^53), odd n in [2^53, 2^54), 4k+2 in [2^54, 2^55) */
    for (int i = 0; i < 300; i++) {
        uint64_t a = (1ull << 52) + weft_rng_range(&r, 0, (int64_t)((1ull << 52) - 1));
        snprintf(v[n++], sizeof v[0], "%llu.5", (unsigned long long)a);
        snprintf(v[n++], sizeof v[0], "%llu.50", (unsigned long long)a);
        snprintf(v[n++], sizeof v[0], "-%llu5e-1", (unsigned long long)a);
        snprintf(v[n++], sizeof v[0], "%llu.25", (unsigned long long)a);
        uint64_t b = (1ull << 53) + 2 * (uint64_t)weft_rng_range(&r, 0, (int64_t)(1ull << 51)) + 1;
        snprintf(v[n++], sizeof v[0], "%llu", (unsigned long long)b);
        uint64_t c = (1ull << 54) + 4 * (uint64_t)weft_rng_range(&r, 0, (int64_t)(1ull << 50)) + 2;
        snprintf(v[n++], sizeof v[0], "%llu", (unsigned long long)c);
        snprintf(v[n++], sizeof v[0], "%llu.0", (unsigned long long)c);
    }
    /* random mantissas of 16..19 digits at every decimal exponent -24..21 */
    while (n < N - 200) {
        int nd = (int)weft_rng_range(&r, 16, 19);
        char dig[24];
        dig[0] = (char)('1' + weft_rng_range(&r, 0, 8));
        for (int k = 1; k < nd; k++) dig[k] = (char)('0' + weft_rng_range(&r, 0, 9));
        dig[nd] = 0;
        int form = (int)weft_rng_range(&r, 0, 2), e = (int)weft_rng_range(&r, -24, 21);
        if (form == 0) /* d.ddd e */
            snprintf(v[n++], sizeof v[0], "%c.%se%d", dig[0], dig + 1, e);
        else if (form == 1) { /* a point inside the digits */
            int at = (int)weft_rng_range(&r, 1, nd - 1);
            snprintf(v[n++], sizeof v[0], "%.*s.%s", at, dig, dig + at);
        } else /* 0.000ddd */
            snprintf(v[n++], sizeof v[0], "0.%.*s%s", (int)weft_rng_range(&r, 0, 4), "0000", dig);
    }
    /* and %.17g of random doubles, the bench's own */
    while (n < N) snprintf(v[n++], sizeof v[0], "%.17g", (weft_rng_double(&r) - 0.5) * 1e4);
    size_t cap = (size_t)N * 48 + 8, at = 0;
    char *text = malloc(cap);
    REQUIRE(text);
    at += (size_t)snprintf(text, cap, "x\n");
    for (size_t i = 0; i < n; i++) at += (size_t)snprintf(text + at, cap - at, "%s\n", v[i]);
    write_file("longdoubles.csv", text, at);
    weft_executor *ex = make_exec(WEFT_BACKEND_SERIAL);
    REQUIRE(ex);
    weft_table *t;
    REQUIRE_OK(read_all("longdoubles.csv", NULL, ex, &t));
    REQUIRE(weft_table_col_type(t, 0) == WEFT_COL_DOUBLE);
    REQUIRE(weft_table_rows(t) == n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        double got, want = strtod(v[i], NULL);
        CHECK_OK(weft_table_get_double(t, 0, i, &got, NULL));
        if (memcmp(&got, &want, sizeof got)) {
            if (bad++ < 10) CHECK_MSG(false, "%s: %a != %a", v[i], got, want);
        }
    }
    CHECK_EQ_U64(bad, 0);
    weft_table_destroy(t);
    weft_executor_destroy(ex);
    free(text);
    free(v);
}

/* groupby, describe and nlargest straight on a CSV frame parse the ranges
 * themselves (one task, only the columns they use): the same results as
 * through a full partition (a select of every column, same partitions),
 * the same rows skipped for a bad value in a column they do not use, and
 * the same error without WEFT_CSV_SKIP_BAD. */
TEST(csv_partials_match_the_full_read)
{
    char *text = malloc(1 << 20);
    REQUIRE(text);
    size_t at = (size_t)sprintf(text, "k,x,note,y,flag\n");
    weft_rng r;
    weft_rng_seed(&r, 5);
    for (int i = 0; i < 3000; i++) {
        int64_t k = weft_rng_range(&r, 0, 9);
        double x = (weft_rng_double(&r) - 0.5) * 100;
        const char *note = i % 7 == 0 ? "\"a,\"\"b\"\"\nc\"" : i % 5 == 0 ? "" : "plain";
        at += (size_t)sprintf(text + at, "%lld,%.17g,%s,", (long long)k, x, note);
        if (i % 401 == 17)
            at += (size_t)sprintf(text + at, "zz");
        else if (i % 13 != 0)
            at += (size_t)sprintf(text + at, "%.3f", weft_rng_double(&r));
        at += (size_t)sprintf(text + at, ",%s\n", i % 3 ? "true" : "False");
    }
    write_file("partials.csv", text, at);
    free(text);
    weft_csv_column sch[5] = {{"k", WEFT_COL_INT64},
                              {"x", WEFT_COL_DOUBLE},
                              {"note", WEFT_COL_TEXT},
                              {"y", WEFT_COL_DOUBLE},
                              {"flag", WEFT_COL_BOOL}};
    const char *all[5] = {"k", "x", "note", "y", "flag"};
    const char *keys[1] = {"k"};
    weft_agg aggs[4] = {{"x", WEFT_AGG_MEAN, NULL},
                        {"x", WEFT_AGG_MEDIAN, NULL},
                        {"k", WEFT_AGG_COUNT, NULL},
                        {"x", WEFT_AGG_VAR, NULL}};
    for (size_t b = 0; b < NBACKENDS; b++) {
        weft_executor *ex = make_exec(backends[b]);
        if (!ex) continue;
        weft_csv_options o = {
            .schema = sch, .n_schema = 5, .flags = WEFT_CSV_SKIP_BAD, .block_size = 4096};
        weft_frame *f, *g;
        REQUIRE_OK(weft_frame_read_csv((const char *[]){"partials.csv"}, 1, &o, &f));
        REQUIRE(weft_frame_partitions(f) > 10);
        REQUIRE_OK(weft_frame_select(f, all, 5, &g));
        weft_table *a[3] = {NULL}, *c[3] = {NULL};
        CHECK_OK(weft_frame_groupby(f, keys, 1, aggs, 4, ex, NULL, &a[0]));
        CHECK_OK(weft_frame_groupby(g, keys, 1, aggs, 4, ex, NULL, &c[0]));
        CHECK_OK(weft_frame_describe(f, ex, NULL, &a[1]));
        CHECK_OK(weft_frame_describe(g, ex, NULL, &c[1]));
        CHECK_OK(weft_frame_nlargest(f, 20, "x", ex, NULL, &a[2]));
        CHECK_OK(weft_frame_nlargest(g, 20, "x", ex, NULL, &c[2]));
        CHECK_EQ_U64(weft_table_skipped(a[0]), 8); /* the rows with y = zz */
        CHECK_EQ_U64(weft_table_skipped(c[0]), 8);
        CHECK_EQ_U64(weft_table_rows(a[0]), 10);
        for (int q = 0; q < 3; q++) {
            CHECK_MSG(weft_table_equal(a[q], c[q]), "%s: op %d differs",
                      weft_backend_name(backends[b]), q);
            weft_table_destroy(a[q]);
            weft_table_destroy(c[q]);
        }
        weft_frame_destroy(g);
        weft_frame_destroy(f);
        /* strict: the bad value of y fails the groupby of x as it fails the read */
        o.flags = 0;
        REQUIRE_OK(weft_frame_read_csv((const char *[]){"partials.csv"}, 1, &o, &f));
        weft_table *t = NULL;
        CHECK_ERR(weft_frame_groupby(f, keys, 1, aggs, 1, ex, NULL, &t), WEFT_EINVAL);
        CHECK_MSG(strstr(weft_last_error(), "field 4 (y): 'zz' is not a double"), "%s",
                  weft_last_error());
        weft_frame_destroy(f);
        weft_executor_destroy(ex);
    }
}

/* groupby's partial by array (int64 keys of a small range) and by hash (a
 * key of a large range) give the same groups and the same aggregates, bit
 * for bit. */
TEST(groupby_by_array_matches_by_hash)
{
    enum {
        N = 5000
    };
    int64_t *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    double *x = malloc(N * sizeof *x);
    uint8_t *va = malloc(N);
    REQUIRE(a && b && x && va);
    weft_rng r;
    weft_rng_seed(&r, 11);
    for (int i = 0; i < N; i++) {
        a[i] = weft_rng_range(&r, -3, 40);
        b[i] = a[i] * 1000000000000 + 7;
        x[i] = weft_rng_double(&r) - 0.5;
        va[i] = i % 17 != 0; /* some keys missing */
    }
    weft_table *t;
    REQUIRE_OK(weft_table_create(&t));
    REQUIRE_OK(weft_table_add_int64(t, "a", a, va, N));
    REQUIRE_OK(weft_table_add_int64(t, "b", b, va, N));
    REQUIRE_OK(weft_table_add_double(t, "x", x, NULL, N));
    weft_executor *ex = make_exec(WEFT_BACKEND_THREADS);
    REQUIRE(ex);
    weft_frame *f;
    REQUIRE_OK(weft_frame_from_table(t, 4, &f));
    weft_agg aggs[4] = {{"x", WEFT_AGG_MEAN, "m"},
                        {"x", WEFT_AGG_MEDIAN, "md"},
                        {"x", WEFT_AGG_VAR, "v"},
                        {"x", WEFT_AGG_SUM, "s"}};
    const char *ka[1] = {"a"}, *kb[1] = {"b"};
    weft_table *ga = NULL, *gb = NULL;
    CHECK_OK(weft_frame_groupby(f, ka, 1, aggs, 4, ex, NULL, &ga));
    CHECK_OK(weft_frame_groupby(f, kb, 1, aggs, 4, ex, NULL, &gb));
    REQUIRE(ga && gb);
    CHECK_EQ_U64(weft_table_rows(ga), 44);
    CHECK_EQ_U64(weft_table_rows(gb), weft_table_rows(ga));
    for (size_t i = 0; i < weft_table_rows(ga) && i < weft_table_rows(gb); i++) {
        int64_t ka_v, kb_v;
        CHECK_OK(weft_table_get_int64(ga, 0, i, &ka_v, NULL));
        CHECK_OK(weft_table_get_int64(gb, 0, i, &kb_v, NULL));
        CHECK_EQ_INT(ka_v * 1000000000000 + 7, kb_v);
        for (size_t c = 1; c < 5; c++) {
            double p, q;
            CHECK_OK(weft_table_get_double(ga, c, i, &p, NULL));
            CHECK_OK(weft_table_get_double(gb, c, i, &q, NULL));
            CHECK_MSG(memcmp(&p, &q, sizeof p) == 0, "group %zu column %zu: %a != %a", i, c, p, q);
        }
    }
    weft_table_destroy(ga);
    weft_table_destroy(gb);
    weft_frame_destroy(f);
    weft_table_destroy(t);
    weft_executor_destroy(ex);
    free(a), free(b), free(x), free(va);
}

/* The full read on threads and serial hands each parsed partition over by
 * pointer and the tasks copy it into the one result themselves (gather.c);
 * on processes every partition is serialized and appended by the caller.
 * Both give the same table, also where the result must grow (the first
 * partition's rows are long, the later ones short: more rows than the
 * first x the partition count x 1.25), where a column's first missing
 * value comes in a late partition (the result's mask made then), with
 * partitions of blank lines only, two files of other row widths, skipped
 * records, and in_flight 1 to 8. */
TEST(csv_read_handover_matches_the_copy_path)
{
    size_t cap = 4 << 20, at = 0;
    char *text = malloc(cap);
    REQUIRE(text);
    at += (size_t)sprintf(text + at, "id,x,note,flag,y\n");
    weft_rng r;
    weft_rng_seed(&r, 21);
    for (int i = 0; i < 12000; i++) {
        if (i == 7000) /* ranges of blank lines only */
            for (int b = 0; b < 9000; b++) text[at++] = '\n';
        bool long_row = i < 600;
        at += (size_t)sprintf(text + at, "%d,", i);
        if (i > 9000 && i % 11 == 0)
            at += (size_t)sprintf(text + at, "NA"); /* x's first NA: late */
        else
            at += (size_t)sprintf(text + at, "%.17g", (weft_rng_double(&r) - 0.5) * 1e3);
        if (long_row)
            at += (size_t)sprintf(text + at, ",\"long, \"\"row\"\"\n%0120d\"", i);
        else
            at += (size_t)sprintf(text + at, ",%s", i % 9 == 0 ? "" : i % 4 ? "s" : "\"a,b\"");
        at += (size_t)sprintf(text + at, ",%s,", i % 3 ? "true" : "false");
        if (i % 997 == 500)
            at += (size_t)sprintf(text + at, "bad"); /* skipped with WEFT_CSV_SKIP_BAD */
        else
            at += (size_t)sprintf(text + at, "%d", i * 7);
        text[at++] = '\n';
        REQUIRE(at + 512 < cap);
    }
    write_file("handover1.csv", text, at);
    /* a second file: the same header, rows of another width */
    at = (size_t)sprintf(text, "id,x,note,flag,y\n");
    for (int i = 0; i < 20000; i++)
        at +=
            (size_t)sprintf(text + at, "%d,%d.5,,%s,%d\n", i, i % 100, i % 2 ? "True" : "False", i);
    write_file("handover2.csv", text, at);
    free(text);
    weft_csv_column sch[5] = {{"id", WEFT_COL_INT64},
                              {"x", WEFT_COL_DOUBLE},
                              {"note", WEFT_COL_TEXT},
                              {"flag", WEFT_COL_BOOL},
                              {"y", WEFT_COL_INT64}};
    const char *files[2] = {"handover1.csv", "handover2.csv"};
    weft_executor *ser = make_exec(WEFT_BACKEND_SERIAL);
    REQUIRE(ser);
    weft_csv_options one = {
        .schema = sch, .n_schema = 5, .flags = WEFT_CSV_SKIP_BAD, .block_size = 1u << 30};
    weft_frame *f;
    weft_table *want = NULL;
    REQUIRE_OK(weft_frame_read_csv(files, 2, &one, &f));
    REQUIRE_OK(weft_frame_compute(f, ser, NULL, &want));
    weft_frame_destroy(f);
    CHECK_EQ_U64(weft_table_rows(want), 12000 - 12 + 20000);
    CHECK_EQ_U64(weft_table_skipped(want), 12);
    size_t cx;
    const uint8_t *vx = NULL;
    REQUIRE_OK(weft_table_col_index(want, "x", &cx));
    REQUIRE_OK(weft_table_col_data(want, cx, NULL, &vx));
    CHECK(vx != NULL && vx[0] == 1);
    for (size_t b = 0; b < NBACKENDS; b++) {
        if (CHECK_TSAN && backends[b] == WEFT_BACKEND_PROCESSES) continue;
        weft_executor *ex = make_exec(backends[b]);
        REQUIRE(ex);
        for (size_t block = 4096; block <= 65536; block *= 16) {
            for (size_t k = 1; k <= 8; k *= 2) {
                weft_csv_options o = one;
                o.block_size = block;
                weft_table_run_options ro = {.in_flight = k};
                weft_table *got = NULL;
                REQUIRE_OK(weft_frame_read_csv(files, 2, &o, &f));
                int rc = weft_frame_compute(f, ex, &ro, &got);
                CHECK_MSG(rc == 0 && weft_table_equal(got, want) && weft_table_skipped(got) == 12,
                          "%s, block %zu (%zu partitions), in_flight %zu: rc %d %s",
                          weft_backend_name(backends[b]), block, weft_frame_partitions(f), k, rc,
                          rc ? weft_last_error() : "");
                weft_table_destroy(got);
                weft_frame_destroy(f);
            }
        }
        /* a failure in one range fails the read and frees every partition */
        weft_csv_options strict = one;
        strict.flags = 0;
        strict.block_size = 4096;
        weft_table *got = NULL;
        REQUIRE_OK(weft_frame_read_csv(files, 2, &strict, &f));
        CHECK_ERR(weft_frame_compute(f, ex, NULL, &got), WEFT_EINVAL);
        CHECK(got == NULL);
        CHECK_MSG(strstr(weft_last_error(), "'bad' is not an int64"), "%s", weft_last_error());
        weft_frame_destroy(f);
        weft_executor_destroy(ex);
    }
    weft_table_destroy(want);
    weft_executor_destroy(ser);
}

/* A groupby's partials are merged in a fixed order (lanes of partitions,
 * table_internal.h), whether the caller merges them (processes, a derived
 * frame) or the tasks fold them (a CSV frame on threads and serial): the
 * same bits on every backend and both paths, for the aggregates whose
 * floating point result depends on the order (mean, sum, var of values
 * of wide magnitudes). */
TEST(csv_groupby_same_bits_on_every_backend_and_path)
{
    size_t cap = 2 << 20, at = 0;
    char *text = malloc(cap);
    REQUIRE(text);
    at += (size_t)sprintf(text + at, "k,x,j\n");
    weft_rng r;
    weft_rng_seed(&r, 33);
    for (int i = 0; i < 20000; i++) {
        double mag = pow(10.0, (double)weft_rng_range(&r, -6, 9));
        at += (size_t)sprintf(text + at, "%lld,%.17g,%lld\n", (long long)weft_rng_range(&r, 0, 40),
                              (weft_rng_double(&r) - 0.3) * mag,
                              (long long)weft_rng_range(&r, -5, 5));
        REQUIRE(at + 128 < cap);
    }
    write_file("lanes.csv", text, at);
    free(text);
    const char *keys[1] = {"k"};
    weft_agg aggs[7] = {{"x", WEFT_AGG_MEAN, NULL},    {"x", WEFT_AGG_SUM, NULL},
                        {"x", WEFT_AGG_VAR, NULL},     {"x", WEFT_AGG_MEDIAN, NULL},
                        {"j", WEFT_AGG_NUNIQUE, NULL}, {"x", WEFT_AGG_MIN, NULL},
                        {"j", WEFT_AGG_SUM, NULL}};
    const char *all[3] = {"k", "x", "j"};
    weft_table *first = NULL;
    for (size_t b = 0; b < NBACKENDS; b++) {
        if (CHECK_TSAN && backends[b] == WEFT_BACKEND_PROCESSES) continue;
        weft_executor *ex = make_exec(backends[b]);
        REQUIRE(ex);
        for (size_t k = 1; k <= 4; k *= 2) {
            weft_csv_options o = {.block_size = 8192};
            weft_table_run_options ro = {.in_flight = k};
            weft_frame *f, *g;
            REQUIRE_OK(weft_frame_read_csv((const char *[]){"lanes.csv"}, 1, &o, &f));
            REQUIRE(weft_frame_partitions(f) > 20);
            REQUIRE_OK(weft_frame_select(f, all, 3, &g));
            weft_table *a = NULL, *c = NULL;
            CHECK_OK(weft_frame_groupby(f, keys, 1, aggs, 7, ex, &ro, &a));
            CHECK_OK(weft_frame_groupby(g, keys, 1, aggs, 7, ex, &ro, &c));
            CHECK_EQ_U64(weft_table_rows(a), 41);
            CHECK_MSG(weft_table_equal(a, c),
                      "%s in_flight %zu: the CSV path and the derived "
                      "frame's differ",
                      weft_backend_name(backends[b]), k);
            if (!first)
                first = a, a = NULL;
            else
                CHECK_MSG(weft_table_equal(first, a), "%s in_flight %zu: differs from serial",
                          weft_backend_name(backends[b]), k);
            weft_table_destroy(a);
            weft_table_destroy(c);
            weft_frame_destroy(g);
            weft_frame_destroy(f);
        }
        weft_executor_destroy(ex);
    }
    weft_table_destroy(first);
}

/* On threads and serial a groupby's partials reuse pooled scratch (the
 * key-tuple array, reset slot by slot) and the state tables of ranges
 * already folded. Ranges that meet other groups than the one before (a
 * key window sliding along the file, 2 int keys, some keys missing), and
 * every aggregate: the same result as the derived frame's partials, which
 * use fresh arrays, and as serial's. */
TEST(groupby_pooled_partials_match_fresh_ones)
{
    size_t cap = 2 << 20, at = 0;
    char *text = malloc(cap);
    REQUIRE(text);
    at += (size_t)sprintf(text + at, "a,b,x,j\n");
    weft_rng r;
    weft_rng_seed(&r, 77);
    for (int i = 0; i < 30000; i++) {
        long long a = i / 400 + weft_rng_range(&r, 0, 6), b = weft_rng_range(&r, -3, 3);
        if (weft_rng_range(&r, 0, 99) == 0)
            at += (size_t)sprintf(text + at, ",%lld", b); /* a missing key */
        else
            at += (size_t)sprintf(text + at, "%lld,%lld", a, b);
        at += (size_t)sprintf(text + at, ",%.17g,%lld\n", (weft_rng_double(&r) - 0.5) * 1e3,
                              (long long)weft_rng_range(&r, -9, 9));
        REQUIRE(at + 128 < cap);
    }
    write_file("pooled.csv", text, at);
    free(text);
    const char *keys[2] = {"a", "b"};
    weft_agg aggs[8] = {{"x", WEFT_AGG_MEAN, NULL},   {"x", WEFT_AGG_COUNT, NULL},
                        {"x", WEFT_AGG_VAR, NULL},    {"x", WEFT_AGG_MAX, NULL},
                        {"j", WEFT_AGG_MIN, NULL},    {"j", WEFT_AGG_SUM, NULL},
                        {"x", WEFT_AGG_MEDIAN, NULL}, {"j", WEFT_AGG_NUNIQUE, NULL}};
    const char *all[4] = {"a", "b", "x", "j"};
    weft_table *first = NULL;
    weft_backend bk[2] = {WEFT_BACKEND_SERIAL, WEFT_BACKEND_THREADS};
    for (int b = 0; b < 2; b++) {
        weft_executor *ex = make_exec(bk[b]);
        REQUIRE(ex);
        for (size_t blk = 4096; blk <= 65536; blk *= 4) {
            weft_csv_options o = {.block_size = blk};
            weft_frame *f, *g;
            REQUIRE_OK(weft_frame_read_csv((const char *[]){"pooled.csv"}, 1, &o, &f));
            REQUIRE_OK(weft_frame_select(f, all, 4, &g));
            weft_table *p = NULL, *q = NULL;
            uint64_t dense0 = weft__gb_dense_partials();
            CHECK_OK(weft_frame_groupby(f, keys, 2, aggs, 8, ex, NULL, &p));
            CHECK(weft__gb_dense_partials() > dense0);
            CHECK_OK(weft_frame_groupby(g, keys, 2, aggs, 8, ex, NULL, &q));
            CHECK_MSG(p && q && weft_table_equal(p, q), "%s block %zu: pooled and fresh differ",
                      weft_backend_name(bk[b]), blk);
            if (!first && p)
                first = p, p = NULL;
            else if (p && blk == 4096)
                CHECK_MSG(weft_table_equal(first, p), "%s: differs from serial",
                          weft_backend_name(bk[b]));
            weft_table_destroy(p);
            weft_table_destroy(q);
            weft_frame_destroy(g);
            weft_frame_destroy(f);
        }
        weft_executor_destroy(ex);
    }
    weft_table_destroy(first);
}

/* The bench's groupby keys, (k1, k2) of 100 x 1000 values, are grouped by
 * array in every partition's partial (not hashed), and the result has
 * every pair met. */
TEST(groupby_two_keys_of_100x1000_by_array)
{
    enum {
        N = 80000
    };
    char *text = malloc((size_t)N * 40 + 64);
    REQUIRE(text);
    size_t at = (size_t)sprintf(text, "k1,k2,d\n");
    uint8_t *seen = calloc(100 * 1000, 1);
    REQUIRE(seen);
    weft_rng r;
    weft_rng_seed(&r, 8);
    size_t pairs = 0;
    for (int i = 0; i < N; i++) {
        int64_t a = weft_rng_range(&r, 0, 99), b = weft_rng_range(&r, 0, 999);
        pairs += !seen[a * 1000 + b];
        seen[a * 1000 + b] = 1;
        at += (size_t)sprintf(text + at, "%lld,%lld,%.6f\n", (long long)a, (long long)b,
                              weft_rng_double(&r));
    }
    write_file("pairs.csv", text, at);
    free(text);
    free(seen);
    const char *keys[2] = {"k1", "k2"};
    weft_agg mean[1] = {{"d", WEFT_AGG_MEAN, NULL}};
    weft_executor *ex = make_exec(WEFT_BACKEND_THREADS);
    REQUIRE(ex);
    weft_csv_options o = {.block_size = 256 << 10}; /* about 13000 rows a range */
    weft_frame *f;
    REQUIRE_OK(weft_frame_read_csv((const char *[]){"pairs.csv"}, 1, &o, &f));
    size_t np = weft_frame_partitions(f);
    CHECK(np >= 4);
    uint64_t before = weft__gb_dense_partials();
    weft_table *t = NULL;
    CHECK_OK(weft_frame_groupby(f, keys, 2, mean, 1, ex, NULL, &t));
    CHECK_EQ_U64(weft__gb_dense_partials() - before, np);
    CHECK_EQ_U64(weft_table_rows(t), pairs);
    weft_table_destroy(t);
    weft_frame_destroy(f);
    weft_executor_destroy(ex);
}

/* ---- generated data for the operations ---- */

static const char *const words[] = {"alpha", "beta", "ga,mma", "del\"ta", "eps\nilon", "zeta"};

/* rows of: k1 int 0..6, k2 text (NA ~3%), x double (NA ~5%), y int, z double
 * (NA ~2%), flag bool, note text */
static size_t gen_csv(const char *path, size_t rows, uint64_t seed)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    weft_rng r;
    weft_rng_seed(&r, seed);
    fprintf(f, "k1,k2,x,y,z,flag,note\n");
    for (size_t i = 0; i < rows; i++) {
        int64_t k1 = weft_rng_range(&r, 0, 6);
        int w = (int)weft_rng_range(&r, 0, 5);
        bool k2na = weft_rng_range(&r, 0, 99) < 3;
        bool xna = weft_rng_range(&r, 0, 99) < 5, zna = weft_rng_range(&r, 0, 99) < 2;
        double x = (weft_rng_double(&r) - 0.3) * 100;
        int64_t y = weft_rng_range(&r, -1000000, 1000000);
        double z = weft_rng_double(&r) * 1e6 + (double)weft_rng_range(&r, 0, 3) * 0.25;
        bool flag = weft_rng_range(&r, 0, 1);
        fprintf(f, "%lld,", (long long)k1);
        if (!k2na) {
            const char *s = words[w];
            if (strpbrk(s, ",\"\n")) {
                fputc('"', f);
                for (; *s; s++) {
                    if (*s == '"') fputc('"', f);
                    fputc(*s, f);
                }
                fputc('"', f);
            } else {
                fputs(s, f);
            }
        }
        fputc(',', f);
        if (!xna) fprintf(f, "%.17g", x);
        fprintf(f, ",%lld,", (long long)y);
        if (!zna) fprintf(f, "%.17g", z);
        fprintf(f, ",%s,note %zu\n", flag ? "True" : "False", i % 97);
    }
    long sz = ftell(f);
    fclose(f);
    return (size_t)sz;
}

/* The iris notebook's parallel_apply: three derived columns per partition. */
static int add_three(weft_ctx *ctx, const void *in, size_t len)
{
    weft_table *t;
    int rc = weft_table_arg(in, len, 0, &t);
    if (rc) return weft_ctx_fail(ctx, rc, "not a table");
    size_t n = weft_table_rows(t), xc, yc, zc;
    if (weft_table_col_index(t, "x", &xc) || weft_table_col_index(t, "y", &yc) ||
        weft_table_col_index(t, "z", &zc)) {
        weft_table_destroy(t);
        return weft_ctx_fail(ctx, WEFT_EINVAL, "missing columns");
    }
    double *x2 = malloc((n + 1) * sizeof *x2), *xz = malloc((n + 1) * sizeof *xz);
    bool *even = malloc(n + 1);
    uint8_t *xv = malloc(n + 1), *x2v = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        double x, z;
        int64_t y;
        bool okx, okz;
        weft_table_get_double(t, xc, i, &x, &okx);
        weft_table_get_double(t, zc, i, &z, &okz);
        weft_table_get_int64(t, yc, i, &y, NULL);
        x2[i] = x * 2;
        xz[i] = x + z;
        even[i] = y % 2 == 0;
        xv[i] = okx && okz;
        x2v[i] = okx;
    }
    rc = weft_table_add_double(t, "x2", x2, x2v, n);
    if (!rc) rc = weft_table_add_double(t, "xz", xz, xv, n);
    if (!rc) rc = weft_table_add_bool(t, "even", even, NULL, n);
    if (!rc) rc = weft_table_output(ctx, t);
    free(x2), free(xz), free(even), free(xv), free(x2v);
    weft_table_destroy(t);
    return rc;
}
WEFT_TASK_REGISTER(add_three);

/* assign: a column y / scale (the scale comes in the argument bytes) */
static int y_scaled(weft_ctx *ctx, const void *in, size_t len)
{
    weft_table *t, *o;
    int rc = weft_table_arg(in, len, 0, &t);
    const void *a;
    size_t alen;
    double scale;
    if (rc || weft_args_get(in, len, 1, &a, &alen) || alen != sizeof scale)
        return weft_ctx_fail(ctx, WEFT_EINVAL, "bad input");
    memcpy(&scale, a, sizeof scale);
    size_t n = weft_table_rows(t), yc;
    weft_table_col_index(t, "y", &yc);
    const void *yd;
    weft_table_col_data(t, yc, &yd, NULL);
    double *r = malloc((n + 1) * sizeof *r);
    for (size_t i = 0; i < n; i++) r[i] = (double)((const int64_t *)yd)[i] / scale;
    weft_table_create(&o);
    rc = weft_table_add_double(o, "r", r, NULL, n);
    if (!rc) rc = weft_table_output(ctx, o);
    free(r);
    weft_table_destroy(o);
    weft_table_destroy(t);
    return rc;
}
WEFT_TASK_REGISTER(y_scaled);

/* ---- the serial reference: plain loops over the whole table ---- */

static int dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static bool close_enough(double a, double b, double rel)
{
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    if (a == b) return true;
    return fabs(a - b) <= rel * fmax(fabs(a), fabs(b));
}

/* groupby k1,k2: count(x), sum(y), mean(x), min(z), max(y), var(x),
 * nunique(note), median(x) -- checked row by row */
static const weft_agg gb_aggs[] = {
    {"x", WEFT_AGG_COUNT, "x_count"}, {"y", WEFT_AGG_SUM, "y_sum"},
    {"x", WEFT_AGG_MEAN, "x_mean"},   {"z", WEFT_AGG_MIN, "z_min"},
    {"y", WEFT_AGG_MAX, "y_max"},     {"x", WEFT_AGG_VAR, "x_var"},
    {"note", WEFT_AGG_NUNIQUE, NULL}, {"x", WEFT_AGG_MEDIAN, "x_median"},
    {"z", WEFT_AGG_SUM, "z_sum"}};
#define NAGGS (sizeof gb_aggs / sizeof gb_aggs[0])

static void check_groupby_reference(const weft_table *all, const weft_table *gb)
{
    size_t c1, c2, cx, cy, cz, cn;
    REQUIRE_OK(weft_table_col_index(all, "k1", &c1));
    REQUIRE_OK(weft_table_col_index(all, "k2", &c2));
    REQUIRE_OK(weft_table_col_index(all, "x", &cx));
    REQUIRE_OK(weft_table_col_index(all, "y", &cy));
    REQUIRE_OK(weft_table_col_index(all, "z", &cz));
    REQUIRE_OK(weft_table_col_index(all, "note", &cn));
    size_t n = weft_table_rows(all), ng = weft_table_rows(gb);
    CHECK_EQ_U64(weft_table_cols(gb), 2 + NAGGS);
    double *xs = malloc((n + 1) * sizeof *xs);
    const char **notes = malloc((n + 1) * sizeof *notes);
    size_t groups_seen = 0;
    for (size_t g = 0; g < ng; g++) {
        int64_t gk1;
        const char *gk2;
        weft_table_get_int64(gb, 0, g, &gk1, NULL);
        weft_table_get_text(gb, 1, g, &gk2, NULL);
        if (g > 0) { /* sorted by keys */
            int64_t pk1;
            const char *pk2;
            weft_table_get_int64(gb, 0, g - 1, &pk1, NULL);
            weft_table_get_text(gb, 1, g - 1, &pk2, NULL);
            CHECK(pk1 < gk1 || (pk1 == gk1 && strcmp(pk2, gk2) < 0));
        }
        int64_t cnt = 0, ysum = 0, ymax = INT64_MIN, nn = 0, rows = 0;
        double xsum = 0, zmin = INFINITY, zsum = 0;
        for (size_t i = 0; i < n; i++) {
            int64_t k1;
            const char *k2;
            bool ok2, okx, okz;
            weft_table_get_int64(all, c1, i, &k1, NULL);
            weft_table_get_text(all, c2, i, &k2, &ok2);
            if (!ok2 || k1 != gk1 || strcmp(k2, gk2)) continue;
            rows++;
            double x, z;
            int64_t y;
            weft_table_get_double(all, cx, i, &x, &okx);
            weft_table_get_int64(all, cy, i, &y, NULL);
            weft_table_get_double(all, cz, i, &z, &okz);
            if (okx) xs[cnt++] = x, xsum += x;
            ysum += y;
            if (y > ymax) ymax = y;
            if (okz) {
                if (z < zmin) zmin = z;
                zsum += z;
            }
            const char *note;
            weft_table_get_text(all, cn, i, &note, NULL);
            bool seen = false;
            for (int64_t q = 0; q < nn && !seen; q++) seen = !strcmp(notes[q], note);
            if (!seen) notes[nn++] = note;
        }
        CHECK(rows > 0);
        groups_seen += (size_t)rows;
        double mean = cnt ? xsum / (double)cnt : NAN, var = 0;
        for (int64_t q = 0; q < cnt; q++) var += (xs[q] - mean) * (xs[q] - mean);
        var = cnt > 1 ? var / (double)(cnt - 1) : NAN;
        qsort(xs, (size_t)cnt, sizeof *xs, dcmp);
        double med = !cnt ? NAN : cnt % 2 ? xs[cnt / 2] : (xs[cnt / 2 - 1] + xs[cnt / 2]) / 2;
        int64_t iv;
        double dv;
        weft_table_get_int64(gb, 2, g, &iv, NULL);
        CHECK_EQ_INT(iv, cnt);
        weft_table_get_int64(gb, 3, g, &iv, NULL);
        CHECK_EQ_INT(iv, ysum);
        weft_table_get_double(gb, 4, g, &dv, NULL);
        CHECK_MSG(close_enough(dv, mean, 1e-12), "group %zu mean %.17g != %.17g", g, dv, mean);
        weft_table_get_double(gb, 5, g, &dv, NULL);
        CHECK_MSG(dv == zmin, "group %zu min %.17g != %.17g", g, dv, zmin);
        weft_table_get_int64(gb, 6, g, &iv, NULL);
        CHECK_EQ_INT(iv, ymax);
        weft_table_get_double(gb, 7, g, &dv, NULL);
        CHECK_MSG(close_enough(dv, var, 1e-12), "group %zu var %.17g != %.17g", g, dv, var);
        weft_table_get_int64(gb, 8, g, &iv, NULL);
        CHECK_EQ_INT(iv, nn);
        weft_table_get_double(gb, 9, g, &dv, NULL);
        CHECK_MSG(dv == med || (isnan(dv) && isnan(med)), "group %zu median %.17g != %.17g", g, dv,
                  med);
        weft_table_get_double(gb, 10, g, &dv, NULL);
        CHECK_MSG(close_enough(dv, zsum, 1e-12), "group %zu zsum %.17g != %.17g", g, dv, zsum);
    }
    /* every row with a key is in some group */
    size_t keyed = 0;
    for (size_t i = 0; i < n; i++) {
        bool ok;
        const char *k2;
        weft_table_get_text(all, c2, i, &k2, &ok);
        keyed += ok;
    }
    CHECK_EQ_U64(groups_seen, keyed);
    free(xs);
    free(notes);
}

/* runs every operation on one backend; results go in out[] */
enum {
    R_ALL,
    R_GB,
    R_DESC,
    R_NL,
    R_NS,
    R_SORT,
    R_FILTER,
    R_SELECT,
    R_APPLY,
    R_ASSIGN,
    R_HEAD,
    R_JOIN,
    R_N
};

static weft_table *small_table(void)
{
    weft_table *s;
    REQUIRE_OK(weft_table_create(&s));
    int64_t k1[6] = {0, 1, 2, 2, 5, 9};
    const char *label[6] = {"zero", "one", "two", "deux", "five", "nine"};
    double w[6] = {0.5, 1.5, 2.5, 3.5, 5.5, 9.5};
    REQUIRE_OK(weft_table_add_int64(s, "k1", k1, NULL, 6));
    REQUIRE_OK(weft_table_add_text(s, "label", label, 6));
    REQUIRE_OK(weft_table_add_double(s, "x", w, NULL, 6)); /* clashes: x_x, x_y */
    return s;
}

static void run_ops(weft_frame *f, weft_executor *ex, const weft_table_run_options *ro,
                    weft_table **out)
{
    memset(out, 0, R_N * sizeof *out);
    CHECK_OK(weft_frame_compute(f, ex, ro, &out[R_ALL]));
    const char *keys[2] = {"k1", "k2"};
    CHECK_OK(weft_frame_groupby(f, keys, 2, gb_aggs, NAGGS, ex, ro, &out[R_GB]));
    CHECK_OK(weft_frame_describe(f, ex, ro, &out[R_DESC]));
    CHECK_OK(weft_frame_nlargest(f, 25, "z", ex, ro, &out[R_NL]));
    CHECK_OK(weft_frame_nsmallest(f, 25, "k1", ex, ro, &out[R_NS]));
    CHECK_OK(weft_frame_sort(f, "z", false, ex, ro, &out[R_SORT]));
    weft_frame *g, *h;
    CHECK_OK(weft_frame_filter_cmp(f, "x", WEFT_CMP_GT, 0.5, &g));
    CHECK_OK(weft_frame_compute(g, ex, ro, &out[R_FILTER]));
    weft_frame_destroy(g);
    const char *sel[3] = {"note", "y", "k1"};
    CHECK_OK(weft_frame_select(f, sel, 3, &g));
    CHECK_OK(weft_frame_compute(g, ex, ro, &out[R_SELECT]));
    weft_frame_destroy(g);
    CHECK_OK(weft_frame_map_partitions(f, add_three, NULL, 0, &g));
    CHECK_OK(weft_frame_compute(g, ex, ro, &out[R_APPLY]));
    /* filter on a computed bool column, chained */
    CHECK_OK(weft_frame_filter(g, "even", &h));
    weft_frame_destroy(g);
    double scale = 3.0;
    CHECK_OK(weft_frame_assign(h, y_scaled, &scale, sizeof scale, &g));
    CHECK_OK(weft_frame_compute(g, ex, ro, &out[R_ASSIGN]));
    weft_frame_destroy(g);
    weft_frame_destroy(h);
    CHECK_OK(weft_frame_head(f, 17, ex, ro, &out[R_HEAD]));
    weft_table *s = small_table();
    CHECK_OK(weft_frame_join(f, s, "k1", WEFT_JOIN_LEFT, &g));
    CHECK_OK(weft_frame_compute(g, ex, ro, &out[R_JOIN]));
    weft_frame_destroy(g);
    weft_table_destroy(s);
}

static void free_ops(weft_table **t)
{
    for (int i = 0; i < R_N; i++) weft_table_destroy(t[i]);
}

static void check_ops_reference(weft_table **r)
{
    const weft_table *all = r[R_ALL];
    size_t n = weft_table_rows(all);
    REQUIRE(n > 0);
    check_groupby_reference(all, r[R_GB]);
    /* describe: count, mean, min, max, quartiles of z */
    size_t cz, dz;
    REQUIRE_OK(weft_table_col_index(all, "z", &cz));
    REQUIRE_OK(weft_table_col_index(r[R_DESC], "z", &dz));
    CHECK_EQ_U64(weft_table_cols(r[R_DESC]), 1 + 4); /* stat, k1, x, y, z */
    double *v = malloc(n * sizeof *v);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        bool ok;
        weft_table_get_double(all, cz, i, &v[m], &ok);
        m += ok;
    }
    qsort(v, m, sizeof *v, dcmp);
    double want[8], sum = 0;
    for (size_t i = 0; i < m; i++) sum += v[i];
    want[0] = (double)m;
    want[1] = sum / (double)m;
    double ss = 0;
    for (size_t i = 0; i < m; i++) ss += (v[i] - want[1]) * (v[i] - want[1]);
    want[2] = sqrt(ss / (double)(m - 1));
    want[3] = v[0];
    for (int q = 1; q <= 3; q++) {
        double idx = q * 0.25 * (double)(m - 1), t = idx - floor(idx);
        size_t lo = (size_t)floor(idx);
        double a = v[lo], b = v[lo + 1 < m ? lo + 1 : lo];
        want[3 + q] = t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t;
    }
    want[7] = v[m - 1];
    for (int q = 0; q < 8; q++) {
        double got;
        weft_table_get_double(r[R_DESC], dz, (size_t)q, &got, NULL);
        CHECK_MSG(q == 3 || q == 7 || (q >= 4 && q <= 6) ? got == want[q]
                                                         : close_enough(got, want[q], 1e-12),
                  "describe z row %d: %.17g != %.17g", q, got, want[q]);
    }
    /* nlargest z: the 25 largest, descending */
    for (size_t i = 0; i < 25; i++) {
        double got;
        REQUIRE_OK(weft_table_get_double(r[R_NL], cz, i, &got, NULL));
        CHECK(got == v[m - 1 - i]);
    }
    /* sort by z: ascending, missing last, stable */
    CHECK_EQ_U64(weft_table_rows(r[R_SORT]), n);
    for (size_t i = 0; i < n; i++) {
        double got;
        bool ok;
        weft_table_get_double(r[R_SORT], cz, i, &got, &ok);
        if (i < m)
            CHECK(ok && got == v[i]);
        else
            CHECK(!ok);
    }
    free(v);
    /* nsmallest k1: ties in row order, so the first 25 rows with the smallest k1 */
    size_t c1;
    weft_table_col_index(all, "k1", &c1);
    size_t *rows = malloc(n * sizeof *rows), k = 0;
    for (int64_t want1 = 0; want1 <= 6 && k < 25; want1++)
        for (size_t i = 0; i < n && k < 25; i++) {
            int64_t x;
            weft_table_get_int64(all, c1, i, &x, NULL);
            if (x == want1) rows[k++] = i;
        }
    weft_table *exp;
    weft_table *pick = NULL;
    REQUIRE_OK(weft_table_slice(all, 0, 0, &exp));
    weft_table_destroy(exp);
    /* build the expected rows by slicing one at a time */
    weft_table **ones = malloc(25 * sizeof *ones);
    for (size_t i = 0; i < k; i++)
        REQUIRE_OK(weft_table_slice(all, rows[i], rows[i] + 1, &ones[i]));
    REQUIRE_OK(weft_table_concat((const weft_table *const *)ones, k, &pick));
    CHECK(weft_table_equal(pick, r[R_NS]));
    for (size_t i = 0; i < k; i++) weft_table_destroy(ones[i]);
    free(ones);
    weft_table_destroy(pick);
    free(rows);
    /* head is a prefix of all */
    weft_table *pre;
    REQUIRE_OK(weft_table_slice(all, 0, 17, &pre));
    CHECK(weft_table_equal(pre, r[R_HEAD]));
    weft_table_destroy(pre);
    /* filter: exactly the rows with x > 0.5, in order */
    size_t cx, fx = 0;
    weft_table_col_index(all, "x", &cx);
    for (size_t i = 0; i < n; i++) {
        double x;
        bool ok;
        weft_table_get_double(all, cx, i, &x, &ok);
        if (!ok || !(x > 0.5)) continue;
        double got;
        CHECK_OK(weft_table_get_double(r[R_FILTER], cx, fx, &got, NULL));
        CHECK(got == x);
        fx++;
    }
    CHECK_EQ_U64(weft_table_rows(r[R_FILTER]), fx);
    CHECK_EQ_U64(weft_table_cols(r[R_SELECT]), 3);
    CHECK_EQ_STR(weft_table_col_name(r[R_SELECT], 0), "note");
    CHECK_EQ_U64(weft_table_rows(r[R_APPLY]), n);
    CHECK_EQ_U64(weft_table_cols(r[R_APPLY]), weft_table_cols(all) + 3);
    /* assign after filter(even): r == y / 3 on every kept row, and y even */
    size_t ay, ar;
    REQUIRE_OK(weft_table_col_index(r[R_ASSIGN], "y", &ay));
    REQUIRE_OK(weft_table_col_index(r[R_ASSIGN], "r", &ar));
    for (size_t i = 0; i < weft_table_rows(r[R_ASSIGN]); i++) {
        int64_t y;
        double q;
        weft_table_get_int64(r[R_ASSIGN], ay, i, &y, NULL);
        weft_table_get_double(r[R_ASSIGN], ar, i, &q, NULL);
        CHECK(y % 2 == 0 && q == (double)y / 3.0);
    }
    /* left join with the small table: k1 0,1,2(x2),5 match, others not */
    size_t expect = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t x;
        weft_table_get_int64(all, c1, i, &x, NULL);
        expect += x == 2 ? 2 : 1;
    }
    CHECK_EQ_U64(weft_table_rows(r[R_JOIN]), expect);
    size_t jx, jy, jl;
    CHECK_OK(weft_table_col_index(r[R_JOIN], "x_x", &jx));
    CHECK_OK(weft_table_col_index(r[R_JOIN], "x_y", &jy));
    CHECK_OK(weft_table_col_index(r[R_JOIN], "label", &jl));
}

TEST(operations_match_the_reference_on_every_backend)
{
    gen_csv("gen.csv", 6000, 7);
    weft_table *res[NBACKENDS][R_N];
    weft_table_run_options ro = {.in_flight = 3};
    for (size_t b = 0; b < NBACKENDS; b++) {
        if (CHECK_TSAN && backends[b] == WEFT_BACKEND_PROCESSES) {
            memset(res[b], 0, sizeof res[b]);
            continue; /* TSan cannot follow the fork server (test_processes says so too) */
        }
        weft_executor *ex = make_exec(backends[b]);
        REQUIRE(ex);
        weft_csv_options o = {.block_size = 20000 + 7000 * b}; /* other partitionings */
        weft_frame *f;
        REQUIRE_OK(weft_frame_read_csv((const char *[]){"gen.csv"}, 1, &o, &f));
        CHECK(weft_frame_partitions(f) > 5);
        run_ops(f, ex, &ro, res[b]);
        weft_frame_destroy(f);
        weft_executor_destroy(ex);
    }
    check_ops_reference(res[0]);
    /* the same results, to the bit, on every backend and partitioning (the
     * groupby sums may differ in the last bits: other partial boundaries) */
    for (size_t b = 1; b < NBACKENDS; b++) {
        if (!res[b][R_ALL]) continue;
        for (int i = 0; i < R_N; i++)
            if (i != R_GB && i != R_DESC)
                CHECK_MSG(weft_table_equal(res[0][i], res[b][i]), "result %d differs on %s", i,
                          weft_backend_name(backends[b]));
        check_ops_reference(res[b]);
    }
    for (size_t b = 0; b < NBACKENDS; b++) free_ops(res[b]);
}

TEST(frame_from_table_and_partition_counts)
{
    gen_csv("gen2.csv", 500, 3);
    weft_executor *ex = make_exec(WEFT_BACKEND_THREADS);
    REQUIRE(ex);
    weft_table *all;
    REQUIRE_OK(read_all("gen2.csv", NULL, ex, &all));
    const char *keys[2] = {"k1", "k2"};
    weft_table *gb1 = NULL;
    for (size_t np = 1; np <= 64; np++) {
        weft_frame *f;
        REQUIRE_OK(weft_frame_from_table(all, np, &f));
        CHECK_EQ_U64(weft_frame_partitions(f), np);
        weft_table *back, *gb;
        CHECK_OK(weft_frame_compute(f, ex, NULL, &back));
        CHECK(weft_table_equal(back, all));
        CHECK_OK(weft_frame_groupby(f, keys, 2, gb_aggs, NAGGS, ex, NULL, &gb));
        if (np == 1) {
            check_groupby_reference(all, gb);
            gb1 = gb;
        } else {
            check_groupby_reference(all, gb);
            weft_table_destroy(gb);
        }
        weft_table_destroy(back);
        weft_frame_destroy(f);
    }
    weft_table_destroy(gb1);
    weft_table_destroy(all);
    weft_executor_destroy(ex);
}

TEST(write_csv_and_npy_read_back)
{
    gen_csv("gen3.csv", 3000, 11);
    weft_executor *ex = make_exec(WEFT_BACKEND_THREADS);
    REQUIRE(ex);
    weft_csv_options o = {.block_size = 30000};
    weft_frame *f;
    REQUIRE_OK(weft_frame_read_csv((const char *[]){"gen3.csv"}, 1, &o, &f));
    weft_table *all, *back;
    REQUIRE_OK(weft_frame_compute(f, ex, NULL, &all));
    CHECK_OK(weft_frame_write_csv(f, "out.csv", NULL, ex, NULL));
    CHECK_OK(read_all("out.csv", NULL, ex, &back));
    CHECK(weft_table_equal(all, back));
    weft_table_destroy(back);
    weft_csv_write_options w = {.one_per_partition = true};
    CHECK_OK(weft_frame_write_csv(f, "part-*.csv", &w, ex, NULL));
    size_t np = weft_frame_partitions(f);
    const char **paths = malloc(np * sizeof *paths);
    char(*names)[32] = malloc(np * sizeof *names);
    for (size_t p = 0; p < np; p++) {
        snprintf(names[p], sizeof names[p], "part-%zu.csv", p);
        paths[p] = names[p];
    }
    weft_frame *g;
    REQUIRE_OK(weft_frame_read_csv(paths, np, NULL, &g));
    CHECK_OK(weft_frame_compute(g, ex, NULL, &back));
    CHECK(weft_table_equal(all, back));
    weft_table_destroy(back);
    weft_frame_destroy(g);
    free(paths);
    free(names);
    /* .npy: header and data of y (int64, no missing) and x (double, NaN) */
    mkdir("npy", 0755);
    weft_frame *nox;
    const char *sel[2] = {"y", "x"};
    CHECK_OK(weft_frame_select(f, sel, 2, &nox));
    CHECK_OK(weft_frame_write_npy(nox, "npy", ex, NULL));
    FILE *fp = fopen("npy/y.npy", "rb");
    REQUIRE(fp);
    char hdr[128];
    REQUIRE(fread(hdr, 1, 128, fp) == 128);
    CHECK(memcmp(hdr, "\x93NUMPY\x01\x00", 8) == 0 && hdr[127] == '\n');
    char want[64];
    snprintf(want, sizeof want, "'shape': (%zu,)", weft_table_rows(all));
    CHECK(strstr(hdr + 10, "'descr': '<i8'") && strstr(hdr + 10, want));
    size_t yc;
    weft_table_col_index(all, "y", &yc);
    const void *yd;
    weft_table_col_data(all, yc, &yd, NULL);
    int64_t *ys = malloc(weft_table_rows(all) * 8);
    CHECK(fread(ys, 8, weft_table_rows(all), fp) == weft_table_rows(all));
    CHECK(memcmp(ys, yd, weft_table_rows(all) * 8) == 0);
    free(ys);
    fclose(fp);
    /* a missing int64 cannot go to numpy */
    weft_table *mi;
    weft_table_create(&mi);
    int64_t iv[2] = {1, 2};
    uint8_t vv[2] = {1, 0};
    weft_table_add_int64(mi, "i", iv, vv, 2);
    weft_frame *mf;
    REQUIRE_OK(weft_frame_from_table(mi, 1, &mf));
    CHECK_ERR(weft_frame_write_npy(mf, "npy", ex, NULL), WEFT_EINVAL);
    weft_frame_destroy(mf);
    weft_table_destroy(mi);
    weft_frame_destroy(nox);
    weft_table_destroy(all);
    weft_frame_destroy(f);
    weft_executor_destroy(ex);
}

TEST(errors_are_named)
{
    weft_executor *ex = make_exec(WEFT_BACKEND_THREADS);
    REQUIRE(ex);
    weft_frame *f;
    CHECK_RC(weft_frame_read_csv((const char *[]){"does-not-exist.csv"}, 1, NULL, &f), -ENOENT);
    gen_csv("gen4.csv", 100, 5);
    REQUIRE_OK(weft_frame_read_csv((const char *[]){"gen4.csv"}, 1, NULL, &f));
    weft_table *t;
    const char *keys[1] = {"nope"};
    weft_agg a[1] = {{"x", WEFT_AGG_SUM, NULL}};
    CHECK_ERR(weft_frame_groupby(f, keys, 1, a, 1, ex, NULL, &t), WEFT_EINVAL);
    CHECK_MSG(strstr(weft_last_error(), "no key column 'nope'"), "%s", weft_last_error());
    keys[0] = "k1";
    a[0].column = "note";
    CHECK_ERR(weft_frame_groupby(f, keys, 1, a, 1, ex, NULL, &t), WEFT_EINVAL);
    CHECK_MSG(strstr(weft_last_error(), "sum of column 'note' (text)"), "%s", weft_last_error());
    weft_frame *g;
    CHECK_OK(weft_frame_filter(f, "x", &g)); /* x is not bool: fails when run */
    CHECK_ERR(weft_frame_compute(g, ex, NULL, &t), WEFT_EINVAL);
    weft_frame_destroy(g);
    weft_frame_destroy(f);
    weft_executor_destroy(ex);
}

/* ---- sorting past the memory bound ---- */

typedef struct chunks {
    weft_table **t;
    size_t n, cap, max_rows, stop_after;
    bool too_big;
} chunks;

static int collect_chunk(void *arg, const weft_table *c)
{
    chunks *s = arg;
    if (s->max_rows && weft_table_rows(c) > s->max_rows) s->too_big = true;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        weft_table **p = realloc(s->t, nc * sizeof *p);
        if (!p) return WEFT_ENOMEM;
        s->t = p;
        s->cap = nc;
    }
    int rc = weft_table_slice(c, 0, weft_table_rows(c), &s->t[s->n]);
    if (rc) return rc;
    s->n++;
    return s->stop_after && s->n >= s->stop_after ? 1 : 0;
}

static weft_table *chunks_take(chunks *s)
{
    weft_table *all = NULL;
    CHECK_OK(weft_table_concat((const weft_table *const *)s->t, s->n, &all));
    for (size_t i = 0; i < s->n; i++) weft_table_destroy(s->t[i]);
    free(s->t);
    memset(s, 0, sizeof *s);
    return all;
}

static size_t dir_entries(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return SIZE_MAX;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* key order of adjacent rows: present keys (desc or asc), missing last */
static bool sorted_by(const weft_table *t, const char *col, bool desc)
{
    size_t c;
    if (weft_table_col_index(t, col, &c)) return false;
    weft_col_type ty = weft_table_col_type(t, c);
    bool seen_missing = false;
    for (size_t i = 0; i < weft_table_rows(t); i++) {
        bool ok;
        double v = 0, w = 0;
        const char *s = "", *u = "";
        if (ty == WEFT_COL_TEXT)
            weft_table_get_text(t, c, i, &s, &ok);
        else if (ty == WEFT_COL_BOOL) {
            bool b;
            weft_table_get_bool(t, c, i, &b, &ok);
            v = b;
        } else
            weft_table_get_double(t, c, i, &v, &ok);
        if (ok && v != v) ok = false;
        if (!ok) {
            seen_missing = true;
            continue;
        }
        if (seen_missing) return false;
        if (i == 0) continue;
        bool pok;
        if (ty == WEFT_COL_TEXT) {
            weft_table_get_text(t, c, i - 1, &u, &pok);
            int r = strcmp(u, s);
            if (desc ? r < 0 : r > 0) return false;
        } else if (ty == WEFT_COL_BOOL) {
            bool b;
            weft_table_get_bool(t, c, i - 1, &b, &pok);
            w = b;
            if (desc ? w < v : w > v) return false;
        } else {
            weft_table_get_double(t, c, i - 1, &w, &pok);
            if (desc ? w < v : w > v) return false;
        }
    }
    return true;
}

TEST(sort_each_matches_the_in_memory_sort)
{
    gen_csv("sorte.csv", 6000, 11);
    mkdir("sorttmp", 0755);
    weft_csv_options o = {.block_size = 20000};
    static const struct {
        const char *col;
        bool desc;
    } keys[] = {{"z", false},  {"z", true}, {"k1", false},   {"k1", true},
                {"k2", false}, {"x", true}, {"flag", false}, {"note", true}};
    for (size_t b = 0; b < NBACKENDS; b++) {
        weft_executor *ex = make_exec(backends[b]);
        REQUIRE(ex);
        weft_frame *f;
        REQUIRE_OK(weft_frame_read_csv((const char *[]){"sorte.csv"}, 1, &o, &f));
        CHECK(weft_frame_partitions(f) >= 16);
        /* sanitizers: every other key (each type still sorted both ways
         * across the backends' runs) */
        size_t step = CHECK_ASAN || CHECK_TSAN ? 2 : 1;
        for (size_t k = (b % 2) * (step - 1); k < sizeof keys / sizeof *keys; k += step) {
            weft_table *want = NULL;
            CHECK_OK(weft_frame_sort(f, keys[k].col, keys[k].desc, ex, NULL, &want));
            CHECK_MSG(sorted_by(want, keys[k].col, keys[k].desc), "weft_frame_sort by %s",
                      keys[k].col);
            for (int z = 0; z < 2; z++) {
                /* 64 KiB: blocks of 16 KiB, fan-in 2 (five merge passes over
                 * about 20 runs); 1 MiB: fan-in 16 (two passes) */
                weft_sort_options so = {.memory_bytes = z ? (64u << 10) : (1u << 20),
                                        .tmp_dir = "sorttmp",
                                        .no_compress = !z,
                                        .chunk_rows = z ? 0 : 777};
                chunks ch = {.max_rows = z ? 0 : 777};
                CHECK_OK(weft_frame_sort_each(f, keys[k].col, keys[k].desc, &so, ex, NULL,
                                              collect_chunk, &ch));
                CHECK(!ch.too_big);
                weft_table *got = chunks_take(&ch);
                CHECK_MSG(weft_table_equal(got, want), "%s: sort_each by %s%s (%s) differs",
                          weft_backend_name(backends[b]), keys[k].col, keys[k].desc ? " desc" : "",
                          z ? "zstd, 64 KiB" : "raw, 1 MiB");
                weft_table_destroy(got);
                CHECK_EQ_U64(dir_entries("sorttmp"), 0);
            }
            weft_table_destroy(want);
        }
        weft_frame_destroy(f);
        weft_executor_destroy(ex);
    }
    rmdir("sorttmp");
}

static int failing_sink(void *arg, const weft_table *c)
{
    (void)c;
    return ++*(int *)arg == 2 ? WEFT_ENOSPC : 0;
}

TEST(sort_each_stops_fails_and_cleans_up)
{
    gen_csv("sortf.csv", 3000, 12);
    mkdir("sorttmp2", 0755);
    weft_executor *ex = make_exec(WEFT_BACKEND_THREADS);
    REQUIRE(ex);
    weft_csv_options o = {.block_size = 30000};
    weft_frame *f;
    REQUIRE_OK(weft_frame_read_csv((const char *[]){"sortf.csv"}, 1, &o, &f));
    weft_sort_options so = {.tmp_dir = "sorttmp2", .chunk_rows = 100};
    /* a sink that has enough stops the sort without error */
    chunks ch = {.stop_after = 3};
    CHECK_OK(weft_frame_sort_each(f, "y", false, &so, ex, NULL, collect_chunk, &ch));
    CHECK_EQ_U64(ch.n, 3);
    weft_table *got = chunks_take(&ch), *want = NULL, *head = NULL;
    CHECK_OK(weft_frame_sort(f, "y", false, ex, NULL, &want));
    if (want) CHECK_OK(weft_table_slice(want, 0, 300, &head));
    CHECK(weft_table_equal(got, head));
    weft_table_destroy(got);
    weft_table_destroy(head);
    weft_table_destroy(want);
    CHECK_EQ_U64(dir_entries("sorttmp2"), 0);
    /* a failing sink's code comes back */
    int calls = 0;
    CHECK_ERR(weft_frame_sort_each(f, "y", false, &so, ex, NULL, failing_sink, &calls),
              WEFT_ENOSPC);
    CHECK_EQ_INT(calls, 2);
    CHECK_EQ_U64(dir_entries("sorttmp2"), 0);
    /* no such column: the run tasks fail, naming it */
    ch = (chunks){0};
    CHECK_ERR(weft_frame_sort_each(f, "nope", false, &so, ex, NULL, collect_chunk, &ch),
              WEFT_EINVAL);
    CHECK_MSG(strstr(weft_last_error(), "nope") != NULL, "%s", weft_last_error());
    CHECK_EQ_U64(ch.n, 0);
    CHECK_EQ_U64(dir_entries("sorttmp2"), 0);
    CHECK_ERR(weft_frame_sort_each(f, "y", false, &so, ex, NULL, NULL, NULL), WEFT_EINVAL);
    weft_sort_options bad = {.tmp_dir = "no/such/dir"};
    CHECK(weft_frame_sort_each(f, "y", false, &bad, ex, NULL, collect_chunk, &ch) == -ENOENT);
    weft_frame_destroy(f);
    weft_executor_destroy(ex);
    rmdir("sorttmp2");
}

/* ---- pandas ---- */

static bool tables_close(const weft_table *a, const weft_table *b, double rel, char *why,
                         size_t wsz)
{
    if (weft_table_rows(a) != weft_table_rows(b)) {
        snprintf(why, wsz, "rows %zu != %zu", weft_table_rows(a), weft_table_rows(b));
        return false;
    }
    for (size_t j = 0; j < weft_table_cols(b); j++) {
        const char *nm = weft_table_col_name(b, j);
        size_t ja;
        if (weft_table_col_index(a, nm, &ja)) {
            snprintf(why, wsz, "no column %s", nm);
            return false;
        }
        weft_col_type ta = weft_table_col_type(a, ja), tb = weft_table_col_type(b, j);
        for (size_t i = 0; i < weft_table_rows(b); i++) {
            if (ta == WEFT_COL_TEXT || tb == WEFT_COL_TEXT) {
                const char *x = "", *y = "";
                bool ox = false, oy = false;
                if (ta == WEFT_COL_TEXT) weft_table_get_text(a, ja, i, &x, &ox);
                if (tb == WEFT_COL_TEXT) weft_table_get_text(b, j, i, &y, &oy);
                if (ox != oy || (ox && strcmp(x, y))) {
                    snprintf(why, wsz, "%s row %zu: '%s' != '%s'", nm, i, x, y);
                    return false;
                }
            } else if (ta == WEFT_COL_BOOL || tb == WEFT_COL_BOOL) {
                bool x = false, y = false;
                weft_table_get_bool(a, ja, i, &x, NULL);
                weft_table_get_bool(b, j, i, &y, NULL);
                if (x != y || ta != tb) {
                    snprintf(why, wsz, "%s row %zu: bools differ", nm, i);
                    return false;
                }
            } else {
                double x, y;
                bool ox, oy;
                weft_table_get_double(a, ja, i, &x, &ox);
                weft_table_get_double(b, j, i, &y, &oy);
                if (!ox) x = NAN;
                if (!oy) y = NAN;
                bool exact = ta == WEFT_COL_INT64 && tb == WEFT_COL_INT64;
                if (exact ? !(x == y) : !close_enough(x, y, rel)) {
                    snprintf(why, wsz, "%s row %zu: %.17g != %.17g", nm, i, x, y);
                    return false;
                }
            }
        }
    }
    return true;
}

TEST(operations_match_pandas)
{
    const char *src = getenv("WEFT_TEST_SRCDIR");
    if (!src) SKIP("WEFT_TEST_SRCDIR is not set");
    if (access("/usr/bin/python3", X_OK)) SKIP("/usr/bin/python3 is missing");
    int probe = system("/usr/bin/python3 -c 'import pandas, numpy' >/dev/null 2>&1");
    if (probe != 0) SKIP("pandas is not installed for /usr/bin/python3");
    gen_csv("pd.csv", 20000, 99);
    weft_executor *ex = make_exec(WEFT_BACKEND_THREADS);
    REQUIRE(ex);
    weft_csv_options o = {.block_size = 100000};
    weft_frame *f;
    REQUIRE_OK(weft_frame_read_csv((const char *[]){"pd.csv"}, 1, &o, &f));
    weft_table *r[R_N];
    run_ops(f, ex, NULL, r);
    mkdir("pdnpy", 0755);
    weft_frame *num;
    const char *sel[4] = {"k1", "y", "z", "flag"};
    CHECK_OK(weft_frame_select(f, sel, 4, &num));
    CHECK_OK(weft_frame_write_npy(num, "pdnpy", ex, NULL));
    weft_frame_destroy(num);
    weft_frame_destroy(f);
    weft_table *s = small_table();
    weft_frame *sf;
    REQUIRE_OK(weft_frame_from_table(s, 1, &sf));
    CHECK_OK(weft_frame_write_csv(sf, "small.csv", NULL, ex, NULL));
    weft_frame_destroy(sf);
    weft_table_destroy(s);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/table_oracle.py pd.csv small.csv pdnpy pdout",
             src);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "%s exited %d", cmd, rc);
    if (rc) {
        free_ops(r);
        weft_executor_destroy(ex);
        return;
    }
    static const struct {
        int idx;
        const char *file;
    } cmp[] = {{R_ALL, "all"},      {R_GB, "groupby"}, {R_DESC, "describe"}, {R_NL, "nlargest"},
               {R_NS, "nsmallest"}, {R_SORT, "sort"},  {R_FILTER, "filter"}, {R_APPLY, "apply"},
               {R_HEAD, "head"},    {R_JOIN, "join"}};
    /* the external sort, spilled and merged in 64 KiB, against pandas'
     * sort_values(kind='mergesort'), which is stable */
    static const struct {
        const char *col, *file;
        bool desc;
    } srt[] = {{"z", "sort", false},
               {"k1", "sort_k1_desc", true},
               {"k2", "sort_k2", false},
               {"x", "sort_x_desc", true}};
    for (size_t i = 0; i < sizeof srt / sizeof *srt; i++) {
        weft_frame *sf2;
        REQUIRE_OK(weft_frame_read_csv((const char *[]){"pd.csv"}, 1, &o, &sf2));
        weft_sort_options so = {.memory_bytes = 64u << 10};
        chunks ch = {0};
        CHECK_OK(
            weft_frame_sort_each(sf2, srt[i].col, srt[i].desc, &so, ex, NULL, collect_chunk, &ch));
        weft_frame_destroy(sf2);
        weft_table *got = chunks_take(&ch), *p = NULL;
        char path[256], why[512] = "";
        snprintf(path, sizeof path, "pdout/%s.csv", srt[i].file);
        CHECK_OK(read_all(path, NULL, ex, &p));
        if (p && got)
            CHECK_MSG(tables_close(got, p, 0, why, sizeof why), "sort_each %s vs pandas: %s",
                      srt[i].file, why);
        weft_table_destroy(p);
        weft_table_destroy(got);
    }
    for (size_t i = 0; i < sizeof cmp / sizeof *cmp; i++) {
        char path[256], why[512] = "";
        snprintf(path, sizeof path, "pdout/%s.csv", cmp[i].file);
        weft_table *p = NULL;
        CHECK_OK(read_all(path, NULL, ex, &p));
        if (!p) continue;
        CHECK_MSG(tables_close(r[cmp[i].idx], p, 1e-12, why, sizeof why), "%s vs pandas: %s",
                  cmp[i].file, why);
        weft_table_destroy(p);
    }
    free_ops(r);
    weft_executor_destroy(ex);
}

/* ---- derived frames over a CSV read: one task per range, in a window ---- */

/* map -> filter -> assign -> select and filter_cmp -> map, then compute,
 * groupby, nlargest, head and describe of them. */
enum {
    C_SELECT,
    C_ASSIGN,
    C_GB,
    C_NL,
    C_HEAD,
    C_MAP2,
    C_DESC,
    C_N
};

static void chain_ops(weft_frame *f, weft_executor *ex, const weft_table_run_options *ro,
                      weft_table **out)
{
    memset(out, 0, C_N * sizeof *out);
    weft_frame *a = NULL, *b = NULL, *c = NULL, *d = NULL, *e = NULL, *g = NULL;
    CHECK_OK(weft_frame_map_partitions(f, add_three, NULL, 0, &a));
    CHECK_OK(weft_frame_filter(a, "even", &b));
    double scale = 4.0;
    CHECK_OK(weft_frame_assign(b, y_scaled, &scale, sizeof scale, &c));
    const char *sel[4] = {"r", "k1", "note", "xz"};
    CHECK_OK(weft_frame_select(c, sel, 4, &d));
    CHECK_OK(weft_frame_compute(d, ex, ro, &out[C_SELECT]));
    CHECK_OK(weft_frame_compute(c, ex, ro, &out[C_ASSIGN]));
    const char *keys[1] = {"k1"};
    /* aggregates that do not depend on the partitioning (no double sums) */
    weft_agg ag[4] = {{"y", WEFT_AGG_SUM, NULL},
                      {"r", WEFT_AGG_MEDIAN, NULL},
                      {"x2", WEFT_AGG_COUNT, NULL},
                      {"xz", WEFT_AGG_MIN, NULL}};
    CHECK_OK(weft_frame_groupby(c, keys, 1, ag, 4, ex, ro, &out[C_GB]));
    CHECK_OK(weft_frame_nlargest(c, 9, "xz", ex, ro, &out[C_NL]));
    CHECK_OK(weft_frame_head(d, 33, ex, ro, &out[C_HEAD]));
    CHECK_OK(weft_frame_filter_cmp(f, "z", WEFT_CMP_LT, 4e5, &e));
    CHECK_OK(weft_frame_map_partitions(e, add_three, NULL, 0, &g));
    CHECK_OK(weft_frame_compute(g, ex, ro, &out[C_MAP2]));
    CHECK_OK(weft_frame_describe(g, ex, ro, &out[C_DESC]));
    weft_frame_destroy(a), weft_frame_destroy(b), weft_frame_destroy(c);
    weft_frame_destroy(d), weft_frame_destroy(e), weft_frame_destroy(g);
}

static void chain_check(weft_table **ref, weft_table **got, const char *what)
{
    for (int i = 0; i < C_N; i++) {
        if (i == C_DESC) { /* means and deviations: other partial boundaries */
            char why[256] = "";
            CHECK_MSG(tables_close(ref[i], got[i], 1e-12, why, sizeof why), "%s: describe: %s",
                      what, why);
            continue;
        }
        CHECK_MSG(weft_table_equal(ref[i], got[i]), "%s: result %d differs", what, i);
    }
}

TEST(derived_chains_stream_and_match_on_every_backend)
{
    gen_csv("chain.csv", 9000, 11);
    weft_table_run_options ro = {.in_flight = 3};
    /* the serial reference: the table read whole, split in memory, the
     * operations as graph nodes */
    weft_executor *ser = make_exec(WEFT_BACKEND_SERIAL);
    REQUIRE(ser);
    weft_table *all = NULL, *ref[C_N];
    REQUIRE_OK(read_all("chain.csv", NULL, ser, &all));
    weft_frame *mem;
    REQUIRE_OK(weft_frame_from_table(all, 5, &mem));
    chain_ops(mem, ser, &ro, ref);
    weft_frame_destroy(mem);
    weft_executor_destroy(ser);
    CHECK(weft_table_rows(ref[C_ASSIGN]) > 1000);
    CHECK_EQ_INT(weft_table_rows(ref[C_HEAD]), 33);
    for (size_t b = 0; b < NBACKENDS; b++) {
        if (CHECK_TSAN && backends[b] == WEFT_BACKEND_PROCESSES) continue;
        for (int serialize = 0; serialize < 2; serialize++) {
            if (serialize && backends[b] == WEFT_BACKEND_PROCESSES) continue;
            /* threads and serial also on the serialized path (as processes) */
            if (serialize) setenv("WEFT_TABLE_SERIALIZE", "1", 1);
            weft_executor *ex = make_exec(backends[b]);
            REQUIRE(ex);
            weft_csv_options o = {.block_size = 23000 + 5000 * b};
            weft_frame *f;
            REQUIRE_OK(weft_frame_read_csv((const char *[]){"chain.csv"}, 1, &o, &f));
            size_t np = weft_frame_partitions(f);
            CHECK(np > 10);
            uint64_t before = weft__frame_chain_tasks();
            weft_table *got[C_N];
            chain_ops(f, ex, &ro, got);
            uint64_t ran = weft__frame_chain_tasks() - before;
            /* one chain task per range for compute x3, groupby, nlargest,
             * describe; head fewer (in this process: not on processes) */
            if (backends[b] != WEFT_BACKEND_PROCESSES)
                CHECK_MSG(ran >= 6 * np && ran <= 7 * np, "%llu chain tasks for %zu ranges",
                          (unsigned long long)ran, np);
            char what[64];
            snprintf(what, sizeof what, "%s%s", weft_backend_name(backends[b]),
                     serialize ? " serialized" : "");
            chain_check(ref, got, what);
            for (int i = 0; i < C_N; i++) weft_table_destroy(got[i]);
            weft_frame_destroy(f);
            weft_executor_destroy(ex);
            unsetenv("WEFT_TABLE_SERIALIZE");
        }
    }
    for (int i = 0; i < C_N; i++) weft_table_destroy(ref[i]);
    weft_table_destroy(all);
    unlink("chain.csv");
}

/* map_partitions task: fails on the partition holding id *arg */
static atomic_int fail_calls;
static int fail_at(weft_ctx *ctx, const void *in, size_t len)
{
    atomic_fetch_add(&fail_calls, 1);
    weft_table *t;
    const void *a;
    size_t alen, c;
    int64_t bad;
    int rc = weft_table_arg(in, len, 0, &t);
    if (rc) return weft_ctx_fail(ctx, rc, "not a table");
    const void *d;
    if (weft_args_get(in, len, 1, &a, &alen) || alen != sizeof bad ||
        weft_table_col_index(t, "id", &c) || weft_table_col_data(t, c, &d, NULL)) {
        weft_table_destroy(t);
        return weft_ctx_fail(ctx, WEFT_EINVAL, "bad input");
    }
    memcpy(&bad, a, sizeof bad);
    for (size_t i = 0; i < weft_table_rows(t); i++)
        if (((const int64_t *)d)[i] == bad) {
            weft_table_destroy(t);
            return weft_ctx_fail(ctx, WEFT_EPERM, "boom at id %lld", (long long)bad);
        }
    rc = weft_table_output(ctx, t);
    weft_table_destroy(t);
    return rc;
}
WEFT_TASK_REGISTER(fail_at);

/* not registered: callable only where the caller's memory is */
static int unnamed_double_v(weft_ctx *ctx, const void *in, size_t len)
{
    weft_table *t;
    int rc = weft_table_arg(in, len, 0, &t);
    if (rc) return rc;
    size_t c, n = weft_table_rows(t);
    const void *d;
    if (weft_table_col_index(t, "v", &c) || weft_table_col_data(t, c, &d, NULL)) {
        weft_table_destroy(t);
        return weft_ctx_fail(ctx, WEFT_EINVAL, "no v");
    }
    double *w = malloc((n + 1) * sizeof *w);
    for (size_t i = 0; i < n; i++) w[i] = ((const double *)d)[i] * 2;
    rc = weft_table_add_double(t, "w", w, NULL, n);
    if (!rc) rc = weft_table_output(ctx, t);
    free(w);
    weft_table_destroy(t);
    return rc;
}

TEST(derived_chain_of_an_unregistered_function)
{
    FILE *fp = fopen("ids2.csv", "wb");
    REQUIRE(fp);
    fputs("id,v\n", fp);
    for (int i = 0; i < 5000; i++) fprintf(fp, "%d,%d.25\n", i, i % 77);
    REQUIRE(fclose(fp) == 0);
    weft_csv_options o = {.block_size = 4000};
    for (size_t b = 0; b < NBACKENDS; b++) {
        if (CHECK_TSAN && backends[b] == WEFT_BACKEND_PROCESSES) continue;
        weft_executor *ex = make_exec(backends[b]);
        REQUIRE(ex);
        weft_frame *f, *m;
        REQUIRE_OK(weft_frame_read_csv((const char *[]){"ids2.csv"}, 1, &o, &f));
        REQUIRE_OK(weft_frame_map_partitions(f, unnamed_double_v, NULL, 0, &m));
        weft_table *t = NULL;
        uint64_t before = weft__frame_chain_tasks();
        int rc = weft_frame_compute(m, ex, NULL, &t);
        if (backends[b] == WEFT_BACKEND_PROCESSES) {
            /* no name to call it by in a worker: graph nodes, refused as before */
            CHECK(rc < 0);
            CHECK(t == NULL);
        } else {
            CHECK_OK(rc);
            CHECK_EQ_INT(weft_table_rows(t), 5000);
            CHECK_EQ_INT(weft_table_cols(t), 3);
            double w;
            CHECK_OK(weft_table_get_double(t, 2, 4999, &w, NULL));
            CHECK(w == (4999 % 77 + 0.25) * 2);
            CHECK_EQ_U64(weft__frame_chain_tasks() - before, weft_frame_partitions(f));
        }
        weft_table_destroy(t);
        weft_frame_destroy(m);
        weft_frame_destroy(f);
        weft_executor_destroy(ex);
    }
    unlink("ids2.csv");
}

TEST(derived_chain_error_at_partition_k_and_cancellation)
{
    FILE *fp = fopen("ids.csv", "wb");
    REQUIRE(fp);
    fputs("id,v\n", fp);
    for (int i = 0; i < 20000; i++) fprintf(fp, "%d,%d.5\n", i, i % 1000);
    REQUIRE(fclose(fp) == 0);
    weft_csv_options o = {.block_size = 6000}; /* about 600 rows a range */
    weft_table_run_options ro = {.in_flight = 2};
    for (size_t b = 0; b < NBACKENDS; b++) {
        if (CHECK_TSAN && backends[b] == WEFT_BACKEND_PROCESSES) continue;
        bool here = backends[b] != WEFT_BACKEND_PROCESSES; /* calls counted in this process */
        weft_executor *ex = make_exec(backends[b]);
        REQUIRE(ex);
        weft_frame *f, *m, *g;
        REQUIRE_OK(weft_frame_read_csv((const char *[]){"ids.csv"}, 1, &o, &f));
        size_t np = weft_frame_partitions(f);
        CHECK(np >= 30);
        int64_t bad = 2500; /* in the 5th range or so */
        REQUIRE_OK(weft_frame_map_partitions(f, fail_at, &bad, sizeof bad, &m));
        REQUIRE_OK(weft_frame_filter_cmp(m, "v", WEFT_CMP_GE, 0, &g));
        weft_table *t = (weft_table *)1;
        atomic_store(&fail_calls, 0);
        CHECK_ERR(weft_frame_compute(g, ex, &ro, &t), WEFT_EPERM);
        CHECK(t == NULL);
        CHECK_MSG(strstr(weft_last_error(), "boom at id 2500"), "%s", weft_last_error());
        CHECK_MSG(strstr(weft_last_error(), "fail_at"), "%s", weft_last_error());
        /* the rest cancelled: the failing range, those before it, and at
         * most what the window holds (in_flight) and the workers run */
        if (here)
            CHECK_MSG(atomic_load(&fail_calls) <= 2500 / 500 + 1 + 2 + 2, "%d calls of %zu",
                      atomic_load(&fail_calls), np);
        const char *keys[1] = {"id"};
        weft_agg a[1] = {{"v", WEFT_AGG_SUM, NULL}};
        CHECK_ERR(weft_frame_groupby(g, keys, 1, a, 1, ex, &ro, &t), WEFT_EPERM);
        CHECK_MSG(strstr(weft_last_error(), "boom at id 2500"), "%s", weft_last_error());
        /* head stops once it has its rows: the first range only, plus what
         * was already running */
        atomic_store(&fail_calls, 0);
        CHECK_OK(weft_frame_head(g, 10, ex, NULL, &t));
        CHECK_EQ_INT(weft_table_rows(t), 10);
        weft_table_destroy(t);
        if (here)
            CHECK_MSG(atomic_load(&fail_calls) <= 4, "head: %d calls", atomic_load(&fail_calls));
        weft_frame_destroy(g);
        weft_frame_destroy(m);
        /* the same executor runs a good chain to the end afterwards */
        bad = -1;
        REQUIRE_OK(weft_frame_map_partitions(f, fail_at, &bad, sizeof bad, &m));
        CHECK_OK(weft_frame_compute(m, ex, &ro, &t));
        CHECK_EQ_INT(weft_table_rows(t), 20000);
        weft_table_destroy(t);
        weft_frame_destroy(m);
        weft_frame_destroy(f);
        weft_executor_destroy(ex);
    }
    unlink("ids.csv");
}

/* ---- the memory bound ---- */

TEST(streaming_groupby_stays_under_the_memory_bound)
{
    if (CHECK_ASAN || CHECK_TSAN) SKIP("sanitizers inflate RSS (shadow memory): plain build only");
    const size_t bound = 32u << 20;
    size_t size;
    /* 4x the bound: about 65 bytes a row */
    size = gen_csv("big.csv", 4 * bound / 60 + 1000, 1);
    CHECK(size >= 4 * bound);
    int pfd[2];
    REQUIRE(pipe(pfd) == 0);
    /* the child's peak RSS starts at what this process holds when it
     * forks: give back what the earlier cases freed (glibc keeps it) */
    weft_table_cache_release(); /* the blocks parked by the earlier cases */
    malloc_trim(0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        weft_options eo = WEFT_OPTIONS_INIT;
        eo.backend = WEFT_BACKEND_THREADS;
        eo.workers = 2;
        weft_executor *ex;
        long out[3] = {-1, 0, 0};
        if (weft_executor_create(&eo, &ex) == 0) {
            weft_csv_options o = {.block_size = 2u << 20};
            weft_table_run_options ro = {.in_flight = 2};
            weft_frame *f;
            const char *keys[2] = {"k1", "k2"};
            weft_agg a[3] = {
                {"x", WEFT_AGG_MEAN, NULL}, {"y", WEFT_AGG_SUM, NULL}, {"z", WEFT_AGG_MAX, NULL}};
            weft_table *t = NULL;
            int rc = weft_frame_read_csv((const char *[]){"big.csv"}, 1, &o, &f);
            if (!rc) rc = weft_frame_groupby(f, keys, 2, a, 3, ex, &ro, &t);
            out[0] = rc;
            out[2] = (long)weft_table_rows(t);
            weft_table_destroy(t);
            weft_frame_destroy(f);
            weft_executor_destroy(ex);
        }
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        out[1] = ru.ru_maxrss; /* KiB */
        ssize_t w = write(pfd[1], out, sizeof out);
        _exit(w == sizeof out ? 0 : 1);
    }
    close(pfd[1]);
    long res[3] = {-1, 0, 0};
    ssize_t got = read(pfd[0], res, sizeof res);
    close(pfd[0]);
    int st;
    waitpid(pid, &st, 0);
    CHECK(got == sizeof res);
    CHECK_EQ_INT(res[0], 0);
    CHECK_EQ_INT(res[2], 7 * 6);
    printf("    file %zu MiB, bound %zu MiB, peak RSS %ld MiB\n", size >> 20, bound >> 20,
           res[1] >> 10);
    CHECK_MSG((size_t)res[1] * 1024 < bound, "peak RSS %ld KiB over the bound", res[1]);
    unlink("big.csv");
}

TEST(derived_frame_stays_under_the_memory_bound)
{
    if (CHECK_ASAN || CHECK_TSAN) SKIP("sanitizers inflate RSS (shadow memory): plain build only");
    const size_t bound = 32u << 20;
    /* 4x the bound through map_partitions (three derived columns), a
     * filter and an assign, into a streaming groupby */
    size_t size = gen_csv("bigchain.csv", 4 * bound / 60 + 1000, 3);
    CHECK(size >= 4 * bound);
    int pfd[2];
    REQUIRE(pipe(pfd) == 0);
    weft_table_cache_release();
    malloc_trim(0); /* as the groupby's case */
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        weft_options eo = WEFT_OPTIONS_INIT;
        eo.backend = WEFT_BACKEND_THREADS;
        eo.workers = 2;
        weft_executor *ex;
        long out[4] = {-1, 0, 0, 0};
        if (weft_executor_create(&eo, &ex) == 0) {
            weft_csv_options o = {.block_size = 1u << 20};
            weft_table_run_options ro = {.in_flight = 2};
            weft_frame *f = NULL, *m = NULL, *h = NULL, *g = NULL;
            const char *keys[1] = {"k1"};
            weft_agg a[2] = {{"xz", WEFT_AGG_MAX, NULL}, {"r", WEFT_AGG_COUNT, NULL}};
            weft_table *t = NULL;
            double scale = 2.0;
            uint64_t before = weft__frame_chain_tasks();
            int rc = weft_frame_read_csv((const char *[]){"bigchain.csv"}, 1, &o, &f);
            if (!rc) rc = weft_frame_map_partitions(f, add_three, NULL, 0, &m);
            if (!rc) rc = weft_frame_filter(m, "even", &h);
            if (!rc) rc = weft_frame_assign(h, y_scaled, &scale, sizeof scale, &g);
            if (!rc) rc = weft_frame_groupby(g, keys, 1, a, 2, ex, &ro, &t);
            out[0] = rc;
            out[2] = (long)weft_table_rows(t);
            out[3] = (long)(weft__frame_chain_tasks() - before) == (long)weft_frame_partitions(f);
            weft_table_destroy(t);
            weft_frame_destroy(g), weft_frame_destroy(h), weft_frame_destroy(m);
            weft_frame_destroy(f);
            weft_executor_destroy(ex);
        }
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        out[1] = ru.ru_maxrss; /* KiB */
        ssize_t w = write(pfd[1], out, sizeof out);
        _exit(w == sizeof out ? 0 : 1);
    }
    close(pfd[1]);
    long res[4] = {-1, 0, 0, 0};
    ssize_t got = read(pfd[0], res, sizeof res);
    close(pfd[0]);
    int st;
    waitpid(pid, &st, 0);
    CHECK(got == sizeof res);
    CHECK_EQ_INT(res[0], 0);
    CHECK_EQ_INT(res[2], 7);
    CHECK_MSG(res[3] == 1, "the groupby did not run one chain task per range");
    printf("    file %zu MiB, bound %zu MiB, peak RSS %ld MiB\n", size >> 20, bound >> 20,
           res[1] >> 10);
    CHECK_MSG((size_t)res[1] * 1024 < bound, "peak RSS %ld KiB over the bound", res[1]);
    unlink("bigchain.csv");
}

typedef struct csv_sink {
    FILE *f;
    size_t rows;
    bool header;
} csv_sink;

static int write_chunk(void *arg, const weft_table *c)
{
    csv_sink *s = arg;
    char *buf;
    size_t len;
    int rc = weft_table_to_csv(c, NULL, !s->header, &buf, &len);
    if (rc) return rc;
    s->header = true;
    s->rows += weft_table_rows(c);
    size_t w = fwrite(buf, 1, len, s->f);
    free(buf);
    return w == len ? 0 : -EIO;
}

/* issue 15: a sort of a file 4x the memory bound stays under it, and gives
 * pandas' sort_values(kind='mergesort', na_position='last') */
TEST(external_sort_stays_under_the_memory_bound)
{
    if (CHECK_ASAN || CHECK_TSAN) SKIP("sanitizers inflate RSS (shadow memory): plain build only");
    const size_t bound = 32u << 20;
    const size_t rows = 4 * bound / 60 + 1000;
    size_t size = gen_csv("bigsort.csv", rows, 5);
    CHECK(size >= 4 * bound);
    mkdir("bigsorttmp", 0755);
    int pfd[2];
    REQUIRE(pipe(pfd) == 0);
    /* the child's peak RSS starts at what this process holds when it
     * forks: give back what the earlier cases freed (glibc keeps it) */
    weft_table_cache_release(); /* the blocks parked by the earlier cases */
    malloc_trim(0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        weft_options eo = WEFT_OPTIONS_INIT;
        eo.backend = WEFT_BACKEND_THREADS;
        eo.workers = 2;
        weft_executor *ex;
        long out[3] = {-1, 0, 0};
        if (weft_executor_create(&eo, &ex) == 0) {
            weft_csv_options o = {.block_size = 2u << 20};
            weft_table_run_options ro = {.in_flight = 2};
            weft_sort_options so = {.memory_bytes = 8u << 20, .tmp_dir = "bigsorttmp"};
            csv_sink s = {fopen("bigsorted.csv", "wb"), 0, false};
            weft_frame *f;
            int rc = s.f ? weft_frame_read_csv((const char *[]){"bigsort.csv"}, 1, &o, &f) : -1;
            if (!rc) {
                rc = weft_frame_sort_each(f, "z", false, &so, ex, &ro, write_chunk, &s);
                weft_frame_destroy(f);
            }
            if (s.f && fclose(s.f) && !rc) rc = -5;
            out[0] = rc;
            out[2] = (long)s.rows;
            weft_executor_destroy(ex);
        }
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        out[1] = ru.ru_maxrss; /* KiB */
        ssize_t w = write(pfd[1], out, sizeof out);
        _exit(w == sizeof out ? 0 : 1);
    }
    close(pfd[1]);
    long res[3] = {-1, 0, 0};
    ssize_t got = read(pfd[0], res, sizeof res);
    close(pfd[0]);
    int st;
    waitpid(pid, &st, 0);
    CHECK(got == sizeof res);
    CHECK_EQ_INT(res[0], 0);
    CHECK_EQ_U64((size_t)res[2], rows);
    CHECK_EQ_U64(dir_entries("bigsorttmp"), 0);
    rmdir("bigsorttmp");
    printf("    file %zu MiB, bound %zu MiB, peak RSS %ld MiB\n", size >> 20, bound >> 20,
           res[1] >> 10);
    CHECK_MSG((size_t)res[1] * 1024 < bound, "peak RSS %ld KiB over the bound", res[1]);
    const char *src = getenv("WEFT_TEST_SRCDIR");
    int probe = src ? system("/usr/bin/python3 -c 'import pandas' >/dev/null 2>&1") : -1;
    if (probe == 0 && res[0] == 0) {
        char cmd[4096];
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 %s/table_sort_oracle.py bigsort.csv bigsorted.csv z asc", src);
        int rc = system(cmd);
        CHECK_MSG(rc == 0, "%s exited %d", cmd, rc);
    } else {
        printf(
            "    (pandas or WEFT_TEST_SRCDIR missing: the order was not compared with pandas)\n");
    }
    unlink("bigsort.csv");
    unlink("bigsorted.csv");
}

/* ---- mpi (tests/CMakeLists.txt runs this under mpirun -n 3) ---- */

static bool under_mpi;

TEST(operations_on_mpi)
{
    if (!under_mpi) SKIP("not launched by mpirun (ctest test_table_mpi does)");
    gen_csv("mpi.csv", 6000, 7);
    weft_table_run_options ro = {.in_flight = 3};
    weft_table *ser[R_N], *mpi[R_N];
    weft_csv_options o = {.block_size = 20000};
    for (int pass = 0; pass < 2; pass++) {
        weft_options eo = WEFT_OPTIONS_INIT;
        eo.backend = pass ? WEFT_BACKEND_MPI : WEFT_BACKEND_SERIAL;
        weft_executor *ex;
        REQUIRE_OK(weft_executor_create(&eo, &ex));
        weft_frame *f;
        REQUIRE_OK(weft_frame_read_csv((const char *[]){"mpi.csv"}, 1, &o, &f));
        run_ops(f, ex, &ro, pass ? mpi : ser);
        weft_frame_destroy(f);
        weft_executor_destroy(ex);
    }
    check_ops_reference(mpi);
    for (int i = 0; i < R_N; i++)
        CHECK_MSG(weft_table_equal(ser[i], mpi[i]), "result %d differs on mpi", i);
    free_ops(ser);
    free_ops(mpi);
}

/* ---- the cache of large blocks (table.c) ----
 * After the memory-bound cases: the threads' churn leaves glibc arenas
 * holding freed memory in this process, which a child forked later
 * inherits resident and would count in its peak RSS. */

static weft_table *int_table(size_t n, int64_t mul)
{
    int64_t *v = malloc((n + 1) * sizeof *v);
    REQUIRE(v);
    for (size_t i = 0; i < n; i++) v[i] = (int64_t)i * mul;
    weft_table *t = NULL;
    REQUIRE_OK(weft_table_create(&t));
    REQUIRE_OK(weft_table_add_int64(t, "v", v, NULL, n));
    free(v);
    return t;
}

static void check_ints(const weft_table *t, size_t n, int64_t mul)
{
    const void *d;
    const uint8_t *valid;
    REQUIRE_OK(weft_table_col_data(t, 0, &d, &valid));
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += ((const int64_t *)d)[i] != (int64_t)i * mul;
    CHECK_EQ_U64(bad, 0);
}

TEST(table_cache_parks_and_hands_out_blocks)
{
    unsetenv("WEFT_TABLE_CACHE_MIB");
    REQUIRE_OK(weft_table_cache_release());
    size_t bytes, blocks;
    uint64_t hits, misses, h0;
    weft__blk_stats(&bytes, &blocks, &h0, NULL);
    CHECK_EQ_U64(bytes, 0);
    CHECK_EQ_U64(blocks, 0);
    const size_t n = 300000; /* 2.4 MB a column */
    weft_table *t = int_table(n, 1);
    check_ints(t, n, 1);
    weft_table_destroy(t);
    weft__blk_stats(&bytes, &blocks, NULL, NULL);
    CHECK_EQ_U64(blocks, 1);
    CHECK(bytes >= n * 8);
    /* the next table of that size gets the parked block, with its own values */
    t = int_table(n, 3);
    weft__blk_stats(&bytes, &blocks, &hits, NULL);
    CHECK_EQ_U64(hits - h0, 1);
    CHECK_EQ_U64(blocks, 0);
    check_ints(t, n, 3);
    /* a smaller table (not a fit for 2.4 MB: more than half unused) and a
     * small one (under 1 MiB) do not take it */
    weft_table_destroy(t);
    weft_table *small = int_table(1000, 1);
    weft_table *half = int_table(n / 4, 1);
    weft__blk_stats(NULL, &blocks, &hits, NULL);
    CHECK_EQ_U64(blocks, 1);
    CHECK_EQ_U64(hits - h0, 1);
    weft_table_destroy(small);
    weft__blk_stats(NULL, &blocks, NULL, NULL);
    CHECK_EQ_U64(blocks, 1); /* 8 KB: freed, not parked */
    weft_table_destroy(half);
    /* WEFT_TABLE_CACHE_MIB=0: nothing parked */
    REQUIRE_OK(weft_table_cache_release());
    setenv("WEFT_TABLE_CACHE_MIB", "0", 1);
    weft_table_destroy(int_table(n, 1));
    weft__blk_stats(&bytes, &blocks, NULL, NULL);
    CHECK_EQ_U64(blocks, 0);
    CHECK_EQ_U64(bytes, 0);
    /* a bound of 3 MiB: an 8 MiB block is freed (a column's capacity is a
     * power of 2 rows), of two 2 MiB blocks the older leaves when the
     * second is parked */
    setenv("WEFT_TABLE_CACHE_MIB", "3", 1);
    weft_table_destroy(int_table(5u << 17, 1));
    weft__blk_stats(&bytes, &blocks, NULL, NULL);
    CHECK_EQ_U64(blocks, 0);
    weft_table *a = int_table(1u << 18, 1), *b = int_table(1u << 18, 2);
    weft_table_destroy(a);
    weft_table_destroy(b);
    weft__blk_stats(&bytes, &blocks, NULL, NULL);
    CHECK_EQ_U64(blocks, 1);
    CHECK(bytes <= (size_t)3 << 20);
    /* a malformed bound is the default */
    setenv("WEFT_TABLE_CACHE_MIB", "12x", 1);
    weft_table_destroy(int_table(n, 1));
    weft__blk_stats(NULL, &blocks, NULL, &misses);
    CHECK_EQ_U64(blocks, 2);
    unsetenv("WEFT_TABLE_CACHE_MIB");
    REQUIRE_OK(weft_table_cache_release());
    weft__blk_stats(&bytes, &blocks, NULL, NULL);
    CHECK_EQ_U64(bytes, 0);
    CHECK_EQ_U64(blocks, 0);
}

typedef struct cache_worker {
    int id;
    size_t bad;
} cache_worker;

static void *cache_churn(void *arg)
{
    cache_worker *w = arg;
    weft_rng r;
    weft_rng_seed(&r, (uint64_t)w->id + 100);
    for (int it = 0; it < 60; it++) {
        size_t n = (size_t)weft_rng_range(&r, 1 << 17, 1 << 19); /* 1..4 MiB of int64 */
        int64_t mul = w->id * 1000 + it + 1;
        weft_table *t = int_table(n, mul);
        /* the values stay ours while other threads park and take blocks */
        const void *d;
        const uint8_t *valid;
        if (weft_table_col_data(t, 0, &d, &valid)) w->bad++;
        for (size_t i = 0; i < n; i += 97) w->bad += ((const int64_t *)d)[i] != (int64_t)i * mul;
        weft_table_destroy(t);
    }
    return NULL;
}

TEST(table_cache_is_shared_by_threads_safely)
{
    unsetenv("WEFT_TABLE_CACHE_MIB");
    REQUIRE_OK(weft_table_cache_release());
    uint64_t h0, h1;
    weft__blk_stats(NULL, NULL, &h0, NULL);
    enum {
        NT = 8
    };
    pthread_t th[NT];
    cache_worker w[NT];
    for (int i = 0; i < NT; i++) {
        w[i].id = i;
        w[i].bad = 0;
        REQUIRE(pthread_create(&th[i], NULL, cache_churn, &w[i]) == 0);
    }
    size_t bad = 0;
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        bad += w[i].bad;
    }
    CHECK_EQ_U64(bad, 0);
    weft__blk_stats(NULL, NULL, &h1, NULL);
    CHECK(h1 > h0); /* blocks went from one thread's table to another's */
    REQUIRE_OK(weft_table_cache_release());
}

TEST(groupby_runs_reuse_parked_blocks)
{
    unsetenv("WEFT_TABLE_CACHE_MIB");
    size_t size = gen_csv("cache.csv", 300000, 11);
    weft_executor *ex = make_exec(WEFT_BACKEND_THREADS);
    REQUIRE(ex);
    REQUIRE_OK(weft_table_cache_release());
    const char *keys[2] = {"k1", "k2"};
    weft_agg a[3] = {
        {"x", WEFT_AGG_MEAN, NULL}, {"y", WEFT_AGG_SUM, NULL}, {"z", WEFT_AGG_MEDIAN, NULL}};
    weft_table *res[2] = {NULL, NULL};
    uint64_t miss[3], hit[3];
    weft__blk_stats(NULL, NULL, &hit[0], &miss[0]);
    for (int run = 0; run < 2; run++) {
        weft_csv_options o = {.block_size = size / 4 + 1};
        weft_frame *f;
        REQUIRE_OK(weft_frame_read_csv((const char *[]){"cache.csv"}, 1, &o, &f));
        REQUIRE_OK(weft_frame_groupby(f, keys, 2, a, 3, ex, NULL, &res[run]));
        weft_frame_destroy(f);
        weft__blk_stats(NULL, NULL, &hit[run + 1], &miss[run + 1]);
    }
    printf("    run 1: %llu blocks new, %llu parked ones; run 2: %llu new, %llu parked\n",
           (unsigned long long)(miss[1] - miss[0]), (unsigned long long)(hit[1] - hit[0]),
           (unsigned long long)(miss[2] - miss[1]), (unsigned long long)(hit[2] - hit[1]));
    CHECK(miss[1] - miss[0] > 0);
    CHECK(hit[2] - hit[1] > 0);
    CHECK(miss[2] - miss[1] < miss[1] - miss[0]); /* the second run allocates less anew */
    /* and computes the same table, to the bit */
    REQUIRE(res[0] && res[1]);
    CHECK_EQ_U64(weft_table_rows(res[0]), 7 * 6);
    void *b0, *b1;
    size_t l0, l1;
    REQUIRE_OK(weft_table_serialize(res[0], &b0, &l0));
    REQUIRE_OK(weft_table_serialize(res[1], &b1, &l1));
    CHECK(l0 == l1 && memcmp(b0, b1, l0) == 0);
    free(b0);
    free(b1);
    weft_table_destroy(res[0]);
    weft_table_destroy(res[1]);
    weft_executor_destroy(ex);
    REQUIRE_OK(weft_table_cache_release());
    unlink("cache.csv");
}

int main(int argc, char **argv)
{
    int rc = weft_init(&argc, &argv);
    if (rc) {
        printf("weft_init: %s\n", weft_last_error());
        return 1;
    }
    /* only rank 0 gets here under mpirun */
    weft_options o = WEFT_OPTIONS_INIT;
    o.backend = WEFT_BACKEND_MPI;
    weft_executor *probe = NULL;
    if (weft_executor_create(&o, &probe) == 0) {
        under_mpi = true;
        weft_executor_destroy(probe);
    }
    return check_main(argc, argv);
}
