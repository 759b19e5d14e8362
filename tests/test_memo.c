/* test_memo.c : the memo (weft_memo_*) and memoized execution.
 *
 * Store: round trips, keys, corrupt entries (entry files and packed
 * records), the bound after every store, LRU order, the in-memory tier,
 * file modes. Concurrency: one key written at once by 8 threads and by 4
 * processes, as a file and packed (test_memo_mpi.c does 3 MPI ranks).
 * Crashes: writers killed with SIGKILL in the middle of stores, a full disk
 * (a small tmpfs in a user namespace; skipped with the reason when the
 * system does not allow the mount), both for files and packs. Execution:
 * memoized submit, map, batch and graph on serial, threads and processes; a
 * memoized map of a million items killed with SIGKILL half way recomputes
 * exactly what was not stored.
 *
 * Args: `resume_items=N` sets the size of that map (default 1,000,000;
 * 200,000 under ASan, 50,000 under TSan) and `base=DIR` where the memo
 * directories go (default: the working directory).
 * weft-test-timeout: 600 */
#define CHECK_CUSTOM_MAIN
/* the million-item map takes ~35 s of CPU; on a machine loaded 15x over its
 * cores that is minutes of wall time: the watchdog stays under the test's
 * timeout (600 s) and still names a test that hangs */
#define CHECK_WATCHDOG_SECONDS 590
#include "check.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "memo/memo_internal.h"

/* a million in the plain build (~30 s on 2 busy cores); fewer under the
 * sanitizers, whose instrumentation of every store makes a million take
 * minutes */
static size_t resume_items = CHECK_TSAN ? 50000 : CHECK_ASAN ? 200000 : 1000000;
static const char *base = ".";

/* ---- helpers ---------------------------------------------------------------------- */

static void rm_rf(const char *path)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "rm -rf %s failed\n", path);
}

/* a fresh directory name under the test's working directory */
static void fresh_dir(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/memo-%s", base, name);
    rm_rf(out);
}

typedef struct scan {
    size_t entries, tmp, bad_mode;
    uint64_t bytes;
} scan;

/* ---- the pack layout, read here independently of the library (the format
 * of docs/memo.md, "Packs") ---- */

#define LOC_LEN(l) ((uint32_t)((l)&0xfffff))
#define LOC_OFF(l) ((l) >> 20)

static unsigned char *read_whole(const char *p, size_t *n)
{
    int fd = open(p, O_RDONLY);
    if (fd < 0) return NULL;
    struct stat st;
    fstat(fd, &st);
    unsigned char *b = malloc((size_t)st.st_size + 1);
    *n = pread(fd, b, (size_t)st.st_size, 0) == st.st_size ? (size_t)st.st_size : 0;
    close(fd);
    return b;
}

static uint64_t u64_at(const unsigned char *b, size_t off)
{
    uint64_t v;
    memcpy(&v, b + off, 8);
    return v;
}

/* live entries of an index file (slots holding a record) */
static size_t idx_live(const char *p)
{
    size_t n, live = 0;
    unsigned char *b = read_whole(p, &n);
    if (b && n >= 128)
        for (size_t s = 128; s + 32 <= n; s += 32) live += LOC_LEN(u64_at(b, s + 16)) >= 72;
    free(b);
    return live;
}

/* Where the entry of (name, version, in) is: its own file (off 0, len the
 * file's size) or a record of a pack (file = the pack, idx and slot = its
 * index slot). @return false when there is none. */
typedef struct where {
    bool packed;
    char file[4096], idx[4096];
    off_t off, slot;
    size_t len;
} where;

static bool locate(const char *root, const char *name, const char *version, const void *in,
                   size_t len, where *w)
{
    weft__memo_key k;
    weft__memo_key_of(name, version, in, len, &k);
    memset(w, 0, sizeof *w);
    snprintf(w->idx, sizeof w->idx, "%s/packs/%02x.idx", root, k.b[0] >> 2);
    size_t n;
    unsigned char *b = read_whole(w->idx, &n);
    if (b && n >= 128) {
        uint64_t cap = (n - 128) / 32, k0, k1;
        memcpy(&k0, k.b, 8);
        memcpy(&k1, k.b + 8, 8);
        for (uint64_t j = 0, i = k1 & (cap - 1); j < cap; j++, i = (i + 1) & (cap - 1)) {
            size_t s = 128 + 32 * i;
            uint64_t loc = u64_at(b, s + 16);
            if (loc == 0) break;
            if (LOC_LEN(loc) < 72 || u64_at(b, s) != k0 || u64_at(b, s + 8) != k1) continue;
            w->packed = true;
            w->slot = (off_t)s;
            w->off = (off_t)LOC_OFF(loc);
            w->len = LOC_LEN(loc);
            snprintf(w->file, sizeof w->file, "%s/packs/%02x.%llu.pack", root, k.b[0] >> 2,
                     (unsigned long long)u64_at(b, 56));
            free(b);
            return true;
        }
    }
    free(b);
    char hex[33];
    weft__memo_key_hex(&k, hex);
    snprintf(w->file, sizeof w->file, "%s/entries/%.2s/%.2s/%s", root, hex, hex + 2, hex);
    struct stat st;
    if (stat(w->file, &st) != 0) return false;
    w->len = (size_t)st.st_size;
    return true;
}

static void scan_dir(const char *path, int depth, scan *s, bool in_tmp)
{
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        struct stat st;
        if (lstat(p, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            if ((st.st_mode & 0777) != 0700) s->bad_mode++;
            scan_dir(p, depth + 1, s, depth == 0 && strcmp(e->d_name, "tmp") == 0);
        } else {
            if ((st.st_mode & 0777) != 0600) s->bad_mode++;
            size_t nl = strlen(e->d_name);
            if (in_tmp) {
                s->tmp++;
            } else if (depth == 1 && nl > 5 && strcmp(e->d_name + nl - 5, ".pack") == 0) {
                s->bytes += (uint64_t)st.st_size;
            } else if (depth == 1 && nl > 4 && strcmp(e->d_name + nl - 4, ".idx") == 0) {
                s->entries += idx_live(p);
            } else if (depth == 3) {
                s->entries++;
                s->bytes += (uint64_t)st.st_size;
            }
        }
    }
    closedir(d);
}

static scan scan_memo(const char *root)
{
    scan s = {0};
    struct stat st;
    if (stat(root, &st) == 0 && (st.st_mode & 0777) != 0700) s.bad_mode++;
    scan_dir(root, 0, &s, false);
    return s;
}

static void fill(unsigned char *p, size_t n, uint64_t seed)
{
    weft_rng r;
    weft_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = weft_rng_next(&r);
        memcpy(p + i, &v, n - i < 8 ? n - i : 8);
    }
}

/* ---- the store ------------------------------------------------------------------- */

TEST(put_get_contains_remove)
{
    char dir[256];
    fresh_dir(dir, sizeof dir, "basic");
    weft_memo *m;
    REQUIRE_OK(weft_memo_open(dir, 0, NULL, &m));
    void *o = (void *)1;
    size_t ol = 7;
    CHECK_RC(weft_memo_get(m, "t", "abc", 3, &o, &ol), WEFT_ENOENT);
    CHECK(o == NULL && ol == 0);
    CHECK(!weft_memo_contains(m, "t", "abc", 3));
    /* sizes around the compression threshold, compressible and not */
    size_t sizes[] = {0, 1, 64, 4095, 4096, 100000, 1 << 20};
    for (int z = 0; z < 2; z++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            unsigned char *v = malloc(n + 1);
            if (z)
                fill(v, n, i);
            else
                memset(v, 'x', n);
            uint64_t in[2] = {i, (uint64_t)z};
            CHECK_OK(weft_memo_put(m, "t", in, sizeof in, v, n));
            CHECK(weft_memo_contains(m, "t", in, sizeof in));
            CHECK_OK(weft_memo_get(m, "t", in, sizeof in, &o, &ol));
            CHECK(o != NULL);
            CHECK_EQ_U64(ol, n);
            CHECK(n == 0 || memcmp(o, v, n) == 0);
            free(o);
            free(v);
        }
    /* a compressible 1 MiB entry is stored compressed */
    uint64_t in1[2] = {6, 0};
    where w;
    REQUIRE(locate(dir, "t", "", in1, sizeof in1, &w));
    CHECK_MSG(w.len < 10000, "1 MiB of 'x' stored in %zu bytes", w.len);
    CHECK(w.packed); /* small once compressed: packed */
    uint64_t in_big[2] = {6, 1};
    REQUIRE(locate(dir, "t", "", in_big, sizeof in_big, &w));
    CHECK(!w.packed && w.len == WEFT__MEMO_HDR + (1 << 20)); /* 1 MiB of noise: a file */
    /* another name, another version: other keys */
    CHECK_RC(weft_memo_get(m, "u", in1, sizeof in1, &o, &ol), WEFT_ENOENT);
    CHECK_OK(weft_memo_remove(m, "t", in1, sizeof in1));
    CHECK_RC(weft_memo_remove(m, "t", in1, sizeof in1), WEFT_ENOENT);
    CHECK(!weft_memo_contains(m, "t", in1, sizeof in1));
    weft_memo_stats s;
    CHECK_OK(weft_memo_stats_get(m, &s));
    CHECK_EQ_U64(s.stores, 14);
    CHECK_EQ_U64(s.hits, 14);
    CHECK_EQ_U64(s.misses, 2);
    scan sc = scan_memo(dir);
    CHECK_EQ_U64(s.entries, sc.entries);
    CHECK_EQ_U64(s.bytes, sc.bytes);
    CHECK_EQ_U64(sc.entries, 13);
    CHECK_EQ_U64(sc.bad_mode, 0);
    CHECK_EQ_U64(sc.tmp, 0);
    CHECK_OK(weft_memo_clear(m));
    sc = scan_memo(dir);
    CHECK_EQ_U64(sc.entries, 0);
    CHECK_OK(weft_memo_stats_get(m, &s));
    CHECK_EQ_U64(s.bytes, 0);
    CHECK_EQ_U64(s.entries, 0);
    CHECK_OK(weft_memo_close(m));

    weft_memo_options vo = {.version = "v2"};
    REQUIRE_OK(weft_memo_open(dir, 0, NULL, &m));
    CHECK_OK(weft_memo_put(m, "t", "k", 1, "one", 3));
    CHECK_OK(weft_memo_close(m));
    REQUIRE_OK(weft_memo_open(dir, 0, &vo, &m));
    CHECK_RC(weft_memo_get(m, "t", "k", 1, &o, &ol), WEFT_ENOENT);
    CHECK_OK(weft_memo_close(m));
}

TEST(bad_arguments)
{
    weft_memo *m = (weft_memo *)1;
    CHECK_ERR(weft_memo_open(NULL, 0, NULL, &m), WEFT_EINVAL);
    CHECK(m == NULL);
    weft_memo_options bad = {.low_water = 1.5};
    CHECK_ERR(weft_memo_open("memo-bad", 0, &bad, &m), WEFT_EINVAL);
    CHECK_ERR(weft_memo_open("/proc/version/memo", 0, NULL, &m), WEFT_ENOTDIR);
    REQUIRE_OK(weft_memo_open("memo-bad", 100, NULL, &m));
    char big[200] = {0};
    CHECK_ERR(weft_memo_put(m, "t", "k", 1, big, sizeof big), WEFT_EOVERFLOW);
    CHECK_ERR(weft_memo_put(m, NULL, "k", 1, big, 1), WEFT_EINVAL);
    CHECK_ERR(weft_memo_get(m, "t", NULL, 1, NULL, NULL), WEFT_EINVAL);
    CHECK_OK(weft_memo_close(m));
    CHECK_OK(weft_memo_close(NULL));
}

/* rewrites the header of the entry at base..base+len of fd with another
 * version and a good header checksum */
static void set_version(int fd, off_t base, size_t len, uint32_t version)
{
    unsigned char h[WEFT__MEMO_HDR];
    REQUIRE(pread(fd, h, sizeof h, base) == (ssize_t)sizeof h);
    weft__memo_hdr d;
    REQUIRE(weft__memo_hdr_decode(h, sizeof h, NULL, &d) == 0);
    d.version = version;
    size_t n = len - WEFT__MEMO_HDR;
    unsigned char *payload = malloc(n + 1);
    REQUIRE(pread(fd, payload, n, base + WEFT__MEMO_HDR) == (ssize_t)n);
    weft__memo_hdr_encode(&d, payload, h);
    REQUIRE(pwrite(fd, h, sizeof h, base) == (ssize_t)sizeof h);
    free(payload);
}

/* Every kind of damage to entry files (packed: false) or to packed records
 * (the record just stored is the last of its pack file). */
static void corrupt_cases(bool packed)
{
    char dir[256];
    fresh_dir(dir, sizeof dir, packed ? "corrupt-packed" : "corrupt");
    weft_memo_options o = {.pack_max = packed ? 0 : 1};
    weft_memo *m;
    REQUIRE_OK(weft_memo_open(dir, 0, &o, &m));
    size_t vlen = packed ? 2000 : 20000;
    unsigned char v[20000];
    enum {
        FLIP_HDR,
        FLIP_KEY,
        FLIP_PAYLOAD,
        TRUNCATE,
        TRUNCATE_HDR,
        APPEND,
        VERSION,
        EMPTY,
        NCASE
    };
    for (int zip = 0; zip < 2; zip++) {
        for (int c = 0; c < NCASE; c++) {
            uint64_t in = (uint64_t)(c + 100 * zip);
            if (zip)
                memset(v, c, vlen);
            else
                fill(v, vlen, in);
            REQUIRE_OK(weft_memo_put(m, "t", &in, sizeof in, v, vlen));
            where w;
            REQUIRE(locate(dir, "t", "", &in, sizeof in, &w));
            CHECK(w.packed == packed);
            int fd = open(w.file, O_RDWR);
            REQUIRE(fd >= 0);
            struct stat st;
            fstat(fd, &st);
            REQUIRE((size_t)st.st_size == (size_t)w.off + w.len); /* the last record */
            unsigned char b;
            off_t at = w.off + (c == FLIP_HDR ? 35 : c == FLIP_KEY ? 20 : (off_t)w.len - 3);
            switch (c) {
            case FLIP_HDR:
            case FLIP_KEY:
            case FLIP_PAYLOAD:
                REQUIRE(pread(fd, &b, 1, at) == 1);
                b ^= 0x10;
                REQUIRE(pwrite(fd, &b, 1, at) == 1);
                break;
            case TRUNCATE:
                REQUIRE(ftruncate(fd, st.st_size - 1) == 0);
                break;
            case TRUNCATE_HDR:
                REQUIRE(ftruncate(fd, w.off + 40) == 0);
                break;
            case APPEND:
                REQUIRE(pwrite(fd, "z", 1, st.st_size) == 1);
                if (packed) { /* the slot says one byte more */
                    int ifd = open(w.idx, O_RDWR);
                    REQUIRE(ifd >= 0);
                    uint64_t loc;
                    REQUIRE(pread(ifd, &loc, 8, w.slot + 16) == 8);
                    loc++;
                    REQUIRE(pwrite(ifd, &loc, 8, w.slot + 16) == 8);
                    close(ifd);
                }
                break;
            case VERSION:
                set_version(fd, w.off, w.len, WEFT__MEMO_VERSION + 1);
                break;
            case EMPTY:
                REQUIRE(ftruncate(fd, w.off) == 0);
                break;
            }
            close(fd);
            void *out = NULL;
            size_t ol = 0;
            CHECK_MSG(weft_memo_get(m, "t", &in, sizeof in, &out, &ol) == WEFT_ENOENT,
                      "case %d zip %d read as a hit", c, zip);
            free(out);
            CHECK_MSG(!locate(dir, "t", "", &in, sizeof in, &w),
                      "case %d zip %d: the corrupt entry is still there", c, zip);
        }
    }
    weft_memo_stats s;
    CHECK_OK(weft_memo_stats_get(m, &s));
    CHECK_EQ_U64(s.corrupt, 2 * NCASE);
    CHECK_EQ_U64(s.misses, 2 * NCASE);
    CHECK_EQ_U64(s.entries, 0);
    /* the bytes of files changed behind the memo's back are recounted by
     * the next pass (here, verify) */
    CHECK_OK(weft_memo_verify(m, NULL));
    CHECK_OK(weft_memo_stats_get(m, &s));
    CHECK_EQ_U64(s.bytes, 0);
    CHECK_EQ_U64(scan_memo(dir).bytes, 0);
    /* verify finds and removes corrupt entries nobody has read */
    uint64_t in = 7;
    REQUIRE_OK(weft_memo_put(m, "t", &in, sizeof in, v, 100));
    REQUIRE_OK(weft_memo_put(m, "t", "good", 4, v, 100));
    where w;
    REQUIRE(locate(dir, "t", "", &in, sizeof in, &w));
    int fd = open(w.file, O_RDWR);
    REQUIRE(fd >= 0);
    REQUIRE(pwrite(fd, "!", 1, w.off + WEFT__MEMO_HDR + 5) == 1);
    close(fd);
    size_t bad = 0;
    CHECK_OK(weft_memo_verify(m, &bad));
    CHECK_EQ_U64(bad, 1);
    CHECK_OK(weft_memo_stats_get(m, &s));
    CHECK_EQ_U64(s.entries, 1);
    scan sc = scan_memo(dir);
    CHECK_EQ_U64(sc.entries, 1);
    CHECK_EQ_U64(sc.bytes, s.bytes);
    CHECK_OK(weft_memo_close(m));
}

TEST(corrupt_entries_read_as_misses_and_are_removed)
{
    corrupt_cases(false);
}

TEST(corrupt_packed_entries_read_as_misses_and_are_removed)
{
    corrupt_cases(true);
}

/* 300 stores of random sizes up to maxlen, of keys i % keys */
static void bound_run(const char *name, uint64_t keys, size_t maxlen)
{
    char dir[256];
    fresh_dir(dir, sizeof dir, name);
    const uint64_t bound = 64 * 1024;
    weft_memo *m;
    REQUIRE_OK(weft_memo_open(dir, bound, NULL, &m));
    unsigned char v[6000];
    weft_rng r;
    weft_rng_seed(&r, 9);
    size_t over = 0;
    for (uint64_t j = 0; j < 300; j++) {
        uint64_t i = j % keys;
        size_t n = (size_t)weft_rng_range(&r, 0, maxlen);
        fill(v, n, j);
        REQUIRE_OK(weft_memo_put(m, "t", &i, sizeof i, v, n));
        scan sc = scan_memo(dir);
        if (sc.bytes > bound) over++;
        CHECK(weft_memo_contains(m, "t", &i, sizeof i)); /* the newest survives */
        weft_memo_stats s;
        CHECK_OK(weft_memo_stats_get(m, &s));
        CHECK_MSG(s.bytes == sc.bytes && s.entries == sc.entries,
                  "ledger %llu bytes %llu entries, directory %llu, %zu",
                  (unsigned long long)s.bytes, (unsigned long long)s.entries,
                  (unsigned long long)sc.bytes, sc.entries);
    }
    CHECK_EQ_U64(over, 0);
    weft_memo_stats s;
    CHECK_OK(weft_memo_stats_get(m, &s));
    CHECK_MSG(s.evictions > 50, "%llu evictions", (unsigned long long)s.evictions);
    CHECK_OK(weft_memo_close(m));
}

/* entries of up to 6000 bytes: files and packed ones mixed */
TEST(the_bound_holds_after_every_store)
{
    bound_run("bound", UINT64_MAX, 6000);
}

/* packed entries, 60 keys stored again and again: removed records in the
 * packs count until a compaction takes them out */
TEST(the_bound_holds_with_packed_entries_replaced)
{
    bound_run("bound-packed", 60, 4000);
}

/* the last use of an entry: the file's mtime, or its index slot's word */
static void set_last_use(const char *root, uint64_t key, time_t t)
{
    where w;
    REQUIRE(locate(root, "t", "", &key, sizeof key, &w));
    if (w.packed) {
        int fd = open(w.idx, O_RDWR);
        REQUIRE(fd >= 0);
        uint64_t v = (uint64_t)t;
        REQUIRE(pwrite(fd, &v, 8, w.slot + 24) == 8);
        close(fd);
        return;
    }
    struct timespec ts[2] = {{t, 0}, {t, 0}};
    REQUIRE(utimensat(AT_FDCWD, w.file, ts, 0) == 0);
}

static void lru_run(bool packed)
{
    char dir[256];
    fresh_dir(dir, sizeof dir, packed ? "lru-packed" : "lru");
    /* entries of 1072 bytes: 10 fit in 11000, low water 0.5 keeps 5 */
    weft_memo_options o = {.low_water = 0.5, .pack_max = packed ? 0 : 1};
    weft_memo *m;
    REQUIRE_OK(weft_memo_open(dir, 11000, &o, &m));
    unsigned char v[1000];
    fill(v, sizeof v, 1);
    time_t t0 = time(NULL) - 1000;
    for (uint64_t i = 0; i < 10; i++) {
        REQUIRE_OK(weft_memo_put(m, "t", &i, sizeof i, v, sizeof v));
        set_last_use(dir, i, t0 + (time_t)i); /* stored long ago, in order */
    }
    /* using entry 0 makes it the most recent */
    void *out;
    size_t ol;
    REQUIRE_OK(weft_memo_get(m, "t", (uint64_t[]){0}, 8, &out, &ol));
    free(out);
    uint64_t k = 10;
    REQUIRE_OK(weft_memo_put(m, "t", &k, sizeof k, v, sizeof v));
    /* 11 entries > bound: down to 5 -- the new one, entry 0, and 7, 8, 9 */
    CHECK(weft_memo_contains(m, "t", &k, sizeof k));
    CHECK(weft_memo_contains(m, "t", (uint64_t[]){0}, 8));
    for (uint64_t i = 1; i < 7; i++)
        CHECK_MSG(!weft_memo_contains(m, "t", &i, 8), "%llu kept", (unsigned long long)i);
    for (uint64_t i = 7; i < 10; i++)
        CHECK_MSG(weft_memo_contains(m, "t", &i, 8), "%llu gone", (unsigned long long)i);
    weft_memo_stats s;
    CHECK_OK(weft_memo_stats_get(m, &s));
    CHECK_EQ_U64(s.evictions, 6);
    CHECK_EQ_U64(s.entries, 5);
    CHECK_OK(weft_memo_close(m));
}

TEST(least_recently_used_goes_first)
{
    lru_run(false);
}

TEST(least_recently_used_packed_entry_goes_first)
{
    lru_run(true);
}

TEST(memory_tier)
{
    char dir[256];
    fresh_dir(dir, sizeof dir, "tier");
    weft_memo_options o = {.memory_bytes = 4096};
    weft_memo *m;
    REQUIRE_OK(weft_memo_open(dir, 0, &o, &m));
    unsigned char v[1000];
    fill(v, sizeof v, 3);
    for (uint64_t i = 0; i < 8; i++) REQUIRE_OK(weft_memo_put(m, "t", &i, 8, v, sizeof v));
    void *out;
    size_t ol;
    /* the last 4 are in memory (newest first), the first ones only on disk */
    for (uint64_t i = 8; i-- > 0;) {
        REQUIRE_OK(weft_memo_get(m, "t", &i, 8, &out, &ol));
        CHECK(ol == sizeof v && memcmp(out, v, ol) == 0);
        free(out);
    }
    weft_memo_stats s;
    CHECK_OK(weft_memo_stats_get(m, &s));
    CHECK_EQ_U64(s.hits, 8);
    CHECK_EQ_U64(s.memory_hits, 4);
    uint64_t i = 0; /* read from disk last: now in memory */
    REQUIRE_OK(weft_memo_get(m, "t", &i, 8, &out, &ol));
    free(out);
    CHECK_OK(weft_memo_stats_get(m, &s));
    CHECK_EQ_U64(s.memory_hits, 5);
    CHECK_OK(weft_memo_remove(m, "t", &i, 8));
    CHECK_RC(weft_memo_get(m, "t", &i, 8, &out, &ol), WEFT_ENOENT);
    CHECK_OK(weft_memo_close(m));
}

/* ---- concurrent writers of one key ----------------------------------------------------- */

/* 50,000 bytes: an entry file; 1000: a packed record */
#define ONE_KEY_MAX 50000
static size_t one_len = ONE_KEY_MAX;
static unsigned char one_value[ONE_KEY_MAX];

static void check_one_key(const char *dir)
{
    weft_memo *m;
    REQUIRE_OK(weft_memo_open(dir, 0, NULL, &m));
    void *o = NULL;
    size_t ol = 0;
    CHECK_OK(weft_memo_get(m, "one", "key", 3, &o, &ol));
    CHECK(ol == one_len && o && memcmp(o, one_value, ol) == 0);
    free(o);
    size_t bad = 1;
    CHECK_OK(weft_memo_verify(m, &bad));
    CHECK_EQ_U64(bad, 0);
    weft_memo_stats s;
    CHECK_OK(weft_memo_stats_get(m, &s));
    scan sc = scan_memo(dir);
    CHECK_EQ_U64(sc.entries, 1);
    CHECK_EQ_U64(sc.tmp, 0);
    CHECK_EQ_U64(sc.bad_mode, 0);
    CHECK_EQ_U64(s.entries, 1);
    CHECK_EQ_U64(s.bytes, sc.bytes);
    CHECK_OK(weft_memo_close(m));
}

typedef struct writer_arg {
    weft_memo *m;
    int rounds;
    _Atomic int *wrong;
} writer_arg;

static void *writer(void *p)
{
    writer_arg *a = p;
    for (int i = 0; i < a->rounds; i++) {
        if (weft_memo_put(a->m, "one", "key", 3, one_value, one_len) != 0)
            atomic_fetch_add(a->wrong, 1);
        void *o = NULL;
        size_t ol = 0;
        int rc = weft_memo_get(a->m, "one", "key", 3, &o, &ol);
        if (rc != 0 || ol != one_len || memcmp(o, one_value, ol) != 0)
            atomic_fetch_add(a->wrong, 1);
        free(o);
    }
    return NULL;
}

static void one_key_threads(size_t len)
{
    one_len = len;
    char dir[256];
    fresh_dir(dir, sizeof dir, len < 4000 ? "threads8-packed" : "threads8");
    fill(one_value, one_len, 42);
    weft_memo *m;
    REQUIRE_OK(weft_memo_open(dir, 0, NULL, &m));
    _Atomic int wrong = 0;
    writer_arg a = {m, CHECK_TSAN ? 20 : 100, &wrong};
    pthread_t th[8];
    for (int i = 0; i < 8; i++) pthread_create(&th[i], NULL, writer, &a);
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    CHECK_EQ_INT(atomic_load(&wrong), 0);
    weft_memo_stats s;
    CHECK_OK(weft_memo_stats_get(m, &s));
    CHECK_EQ_U64(s.stores, 8 * (uint64_t)a.rounds);
    CHECK_OK(weft_memo_close(m));
    check_one_key(dir);
}

TEST(one_key_from_8_threads)
{
    one_key_threads(ONE_KEY_MAX);
}

/* the same key packed: every store appends a record, and the pack is
 * compacted while the other threads read it */
TEST(one_packed_key_from_8_threads)
{
    one_key_threads(1000);
}

static void one_key_processes(size_t len)
{
    one_len = len;
    char dir[256];
    fresh_dir(dir, sizeof dir, len < 4000 ? "procs4-packed" : "procs4");
    fill(one_value, one_len, 42);
    weft_memo *shared;
    REQUIRE_OK(weft_memo_open(dir, 0, NULL, &shared));
    pid_t kids[4];
    for (int k = 0; k < 4; k++) {
        kids[k] = fork();
        REQUIRE(kids[k] >= 0);
        if (kids[k] == 0) {
            /* two children open their own handle, two use the parent's
             * (which reopens its ledger in the child) */
            weft_memo *m = shared;
            if (k % 2 == 0 && weft_memo_open(dir, 0, NULL, &m) != 0) _exit(2);
            _Atomic int wrong = 0;
            writer_arg a = {m, 100, &wrong};
            writer(&a);
            _exit(atomic_load(&wrong) ? 1 : 0);
        }
    }
    for (int k = 0; k < 4; k++) {
        int st;
        REQUIRE(waitpid(kids[k], &st, 0) == kids[k]);
        CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer %d: status 0x%x", k, st);
    }
    CHECK_OK(weft_memo_close(shared));
    check_one_key(dir);
}

TEST(one_key_from_4_processes)
{
    one_key_processes(ONE_KEY_MAX);
}

/* packed: one process compacts the pack while the others read it through
 * their own mappings of the old index */
TEST(one_packed_key_from_4_processes)
{
    one_key_processes(1000);
}

/* ---- crashes ------------------------------------------------------------------------- */

#define KILL_KEYS 64
#define KILL_MAX (256 * 1024)

/* writers of KILL_KEYS keys of `len` bytes (256 KiB: files; 1000: packed,
 * with compactions) killed at 20..220 ms */
static void kill_run(size_t len)
{
    const size_t kill_len = len;
    char dir[256];
    fresh_dir(dir, sizeof dir, len < 4000 ? "kill-packed" : "kill");
    weft_memo *m;
    REQUIRE_OK(weft_memo_open(dir, 0, NULL, &m));
    REQUIRE_OK(weft_memo_close(m));
    unsigned char *v = malloc(KILL_MAX);
    for (int round = 0; round < 6; round++) {
        pid_t p = fork();
        REQUIRE(p >= 0);
        if (p == 0) {
            weft_memo *c;
            weft_memo_options o = {.compress_min = (round & 1) ? 1 : SIZE_MAX};
            if (weft_memo_open(dir, 0, &o, &c) != 0) _exit(2);
            for (uint64_t i = 0;; i = (i + 1) % KILL_KEYS) {
                fill(v, kill_len, i);
                if ((round & 1) && i % 2) memset(v, (int)i, kill_len / 2);
                weft_memo_put(c, "t", &i, sizeof i, v, kill_len);
            }
        }
        struct timespec ts = {0, (long)(20 + 40 * round) * 1000000L};
        nanosleep(&ts, NULL);
        kill(p, SIGKILL);
        int st;
        waitpid(p, &st, 0);
        CHECK(WIFSIGNALED(st));
    }
    REQUIRE_OK(weft_memo_open(dir, 0, NULL, &m));
    size_t hits = 0;
    for (uint64_t i = 0; i < KILL_KEYS; i++) {
        void *o = NULL;
        size_t ol = 0;
        int rc = weft_memo_get(m, "t", &i, sizeof i, &o, &ol);
        CHECK(rc == 0 || rc == WEFT_ENOENT);
        if (rc == 0) {
            hits++;
            fill(v, kill_len, i);
            bool a = ol == kill_len && memcmp(o, v, ol) == 0;
            memset(v, (int)i, kill_len / 2);
            bool b = ol == kill_len && memcmp(o, v, ol) == 0;
            CHECK_MSG(a || b, "key %llu reads wrong", (unsigned long long)i);
        }
        free(o);
    }
    weft_memo_stats s;
    CHECK_OK(weft_memo_stats_get(m, &s));
    CHECK_EQ_U64(s.corrupt, 0);
    size_t bad = 1;
    CHECK_OK(weft_memo_verify(m, &bad));
    CHECK_EQ_U64(bad, 0);
    scan sc = scan_memo(dir);
    CHECK_EQ_U64(sc.tmp, 0); /* the killed writers' temporary files were removed at open */
    CHECK_OK(weft_memo_stats_get(m, &s));
    CHECK_EQ_U64(s.bytes, sc.bytes);
    printf("    %zu of %d keys stored before the kills\n", hits, KILL_KEYS);
    CHECK_OK(weft_memo_close(m));
    free(v);
}

TEST(sigkill_in_the_middle_of_stores_leaves_nothing_wrong)
{
    kill_run(KILL_MAX);
}

TEST(sigkill_in_the_middle_of_packed_stores_leaves_nothing_wrong)
{
    kill_run(1000);
}

/* In a child: a user and mount namespace with a 512 KiB tmpfs, filled until
 * a store fails. Exit 0 ok, 77 no mount, 1 wrong. */
static int full_disk_child(const char *mnt, bool packed)
{
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=512k,mode=0700") != 0) {
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return 77;
        if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return 77;
        if (mount("tmpfs", mnt, "tmpfs", 0, "size=512k,mode=0700") != 0) return 77;
    }
    char dir[512];
    snprintf(dir, sizeof dir, "%s/memo", mnt);
    weft_memo *m;
    if (weft_memo_open(dir, 0, NULL, &m) != 0) return 1;
    static unsigned char v[100000];
    size_t vlen = packed ? 3000 : sizeof v; /* 3000: packed records */
    int rc = 0;
    uint64_t i;
    for (i = 0; i < (packed ? 2000 : 100) && rc == 0; i++) {
        fill(v, vlen, i);
        rc = weft_memo_put(m, "t", &i, sizeof i, v, vlen);
    }
    printf("    stored %llu entries, then: %s (%s)\n", (unsigned long long)i - 1, weft_strerror(rc),
           weft_last_error());
    if (rc != WEFT_ENOSPC || !strstr(weft_last_error(), "no space")) return 1;
    /* nothing partial: no temporary file, every entry reads right */
    scan sc = scan_memo(dir);
    if (sc.tmp != 0) return 1;
    for (uint64_t k = 0; k + 1 < i; k++) {
        void *o;
        size_t ol;
        if (weft_memo_get(m, "t", &k, sizeof k, &o, &ol) != 0) return 1;
        fill(v, vlen, k);
        if (ol != vlen || memcmp(o, v, ol) != 0) return 1;
        free(o);
    }
    uint64_t k = i - 1;
    if (weft_memo_contains(m, "t", &k, sizeof k)) return 1;
    size_t bad = 1;
    if (weft_memo_verify(m, &bad) != 0 || bad != 0) return 1;
    weft_memo_close(m);
    return 0;
}

static void full_disk_run(bool packed)
{
    char mnt[256];
    snprintf(mnt, sizeof mnt, "%s/memo-tmpfs", base);
    mkdir(mnt, 0700);
    fflush(stdout);
    pid_t p = fork();
    REQUIRE(p >= 0);
    if (p == 0) _exit(full_disk_child(mnt, packed));
    int st;
    REQUIRE(waitpid(p, &st, 0) == p);
    REQUIRE(WIFEXITED(st));
    if (WEXITSTATUS(st) == 77)
        SKIP("cannot mount a tmpfs here (no CAP_SYS_ADMIN and no user namespaces)");
    CHECK_EQ_INT(WEXITSTATUS(st), 0);
    umount2(mnt, MNT_DETACH); /* if it was mounted in this namespace */
}

TEST(a_full_disk_is_a_clear_error_and_leaves_nothing_partial)
{
    full_disk_run(false);
}

TEST(a_full_disk_under_packed_stores_is_a_clear_error_and_leaves_nothing_partial)
{
    full_disk_run(true);
}

/* ---- memoized execution ---------------------------------------------------------------- */

/* calls of `square`: in memory shared with forked children (main maps it) */
static _Atomic long local_calls;
static _Atomic long *calls = &local_calls;

static int square(weft_ctx *ctx, const void *in, size_t len)
{
    if (len != 8) return weft_ctx_fail(ctx, WEFT_EINVAL, "bad length %zu", len);
    atomic_fetch_add_explicit(calls, 1, memory_order_relaxed);
    uint64_t x;
    memcpy(&x, in, 8);
    x = x * x + 1;
    return weft_ctx_set_output(ctx, &x, 8);
}
WEFT_TASK_REGISTER(square);

static int twice(weft_ctx *ctx, const void *in, size_t len)
{
    if (len != 8) return weft_ctx_fail(ctx, WEFT_EINVAL, "bad length %zu", len);
    uint64_t x;
    memcpy(&x, in, 8);
    x *= 2;
    return weft_ctx_set_output(ctx, &x, 8);
}
WEFT_TASK_REGISTER(twice);

/* graph tasks read their argument from the argument block */
static int gsquare(weft_ctx *ctx, const void *in, size_t len)
{
    const void *a;
    size_t al;
    if (weft_args_get(in, len, 0, &a, &al) != 0 || al != 8)
        return weft_ctx_fail(ctx, WEFT_EINVAL, "bad argument");
    return square(ctx, a, al);
}
WEFT_TASK_REGISTER(gsquare);

static int gtwice(weft_ctx *ctx, const void *in, size_t len)
{
    const void *a;
    size_t al;
    if (weft_args_get(in, len, 0, &a, &al) != 0 || al != 8)
        return weft_ctx_fail(ctx, WEFT_EINVAL, "bad argument");
    return twice(ctx, a, al);
}
WEFT_TASK_REGISTER(gtwice);

static int unregistered(weft_ctx *ctx, const void *in, size_t len)
{
    (void)ctx, (void)in, (void)len;
    return 0;
}

static const weft_backend backends[] = {WEFT_BACKEND_SERIAL, WEFT_BACKEND_THREADS,
                                        WEFT_BACKEND_PROCESSES};

static weft_executor *executor(weft_backend b, weft_memo *m)
{
    weft_options o = WEFT_OPTIONS_INIT;
    o.backend = b;
    o.workers = 2;
    o.memo = m;
    weft_executor *ex = NULL;
    int rc = weft_executor_create(&o, &ex);
    if (rc) printf("    executor %s: %s\n", weft_backend_name(b), weft_last_error());
    return ex;
}

TEST(memoized_submit_on_every_backend)
{
    for (size_t b = 0; b < sizeof backends / sizeof backends[0]; b++) {
        char dir[256];
        fresh_dir(dir, sizeof dir, weft_backend_name(backends[b]));
        weft_memo *m;
        REQUIRE_OK(weft_memo_open(dir, 0, NULL, &m));
        for (int round = 0; round < 2; round++) {
            weft_executor *ex = executor(backends[b], m);
            REQUIRE(ex);
            weft_submit_options so = {.flags = WEFT_SUBMIT_MEMO};
            weft_future *f[20];
            for (uint64_t i = 0; i < 20; i++)
                REQUIRE_OK(weft_submit_ex(ex, square, &i, 8, &so, &f[i]));
            for (uint64_t i = 0; i < 20; i++) {
                const void *d;
                size_t l;
                CHECK_OK(weft_future_result(f[i], WEFT_FOREVER, &d, &l));
                uint64_t y = 0;
                if (l == 8) memcpy(&y, d, 8);
                CHECK_EQ_U64(y, i * i + 1);
                weft_future_release(f[i]);
            }
            CHECK_OK(weft_executor_destroy(ex));
            weft_memo_stats s;
            CHECK_OK(weft_memo_stats_get(m, &s));
            CHECK_EQ_U64(s.hits, round ? 20 : 0);
            CHECK_EQ_U64(s.stores, 20);
        }
        CHECK_OK(weft_memo_close(m));
    }
}

TEST(memoized_calls_need_a_memo_and_a_registered_task)
{
    weft_executor *ex = executor(WEFT_BACKEND_THREADS, NULL);
    REQUIRE(ex);
    weft_submit_options so = {.flags = WEFT_SUBMIT_MEMO};
    weft_future *f;
    uint64_t x = 1;
    CHECK_ERR(weft_submit_ex(ex, square, &x, 8, &so, &f), WEFT_EINVAL);
    weft_map_options mo = {.flags = WEFT_MAP_MEMO};
    weft_results *r;
    CHECK_ERR(weft_map(ex, square, &x, 8, 1, &mo, &r), WEFT_EINVAL);
    CHECK_OK(weft_executor_destroy(ex));
    weft_memo *m;
    char dir[256];
    fresh_dir(dir, sizeof dir, "reg");
    REQUIRE_OK(weft_memo_open(dir, 0, NULL, &m));
    ex = executor(WEFT_BACKEND_THREADS, m);
    REQUIRE(ex);
    CHECK_ERR(weft_submit_ex(ex, unregistered, &x, 8, &so, &f), WEFT_ENOTREG);
    CHECK_ERR(weft_map_zip(ex, square, &(weft_map_input){&x, 8, NULL, 1}, 1, &mo, &r),
              WEFT_ENOTSUP);
    CHECK_OK(weft_executor_destroy(ex));
    CHECK_OK(weft_memo_close(m));
}

typedef struct order {
    uint64_t next;
    bool in_order, right;
    size_t n;
} order;

static int check_order(void *arg, uint64_t index, int err, const void *out, size_t len,
                       const char *msg)
{
    (void)msg;
    order *o = arg;
    if (index != o->next) o->in_order = false;
    o->next = index + 1;
    o->n++;
    uint64_t y = 0;
    if (len == 8) memcpy(&y, out, 8);
    if (err || y != index * index + 1) o->right = false;
    return 0;
}

TEST(memoized_map_on_every_backend)
{
    enum {
        N = 600
    };
    uint64_t *xs = malloc(N * sizeof *xs);
    for (uint64_t i = 0; i < N; i++) xs[i] = i;
    for (size_t b = 0; b < sizeof backends / sizeof backends[0]; b++) {
        char dir[256];
        fresh_dir(dir, sizeof dir, "map");
        weft_memo *m;
        REQUIRE_OK(weft_memo_open(dir, 0, NULL, &m));
        weft_executor *ex = executor(backends[b], m);
        REQUIRE(ex);
        weft_map_options mo = {.flags = WEFT_MAP_MEMO};
        weft_results *r;
        /* a third first, then all: hits and misses interleave */
        REQUIRE_OK(weft_map(ex, square, xs, 8, N / 3, &mo, &r));
        weft_results_destroy(r);
        for (uint64_t i = N / 3; i < N; i += 7)
            CHECK_OK(weft_memo_put(m, "square", &i, 8, (uint64_t[]){i * i + 1}, 8));
        for (int unordered = 0; unordered < 2; unordered++) {
            order o = {0, true, true, 0};
            weft_map_options mo2 = {.flags = WEFT_MAP_MEMO | (unordered ? WEFT_MAP_UNORDERED : 0),
                                    .on_result = check_order,
                                    .arg = &o};
            REQUIRE_OK(weft_map(ex, square, xs, 8, N, &mo2, &r));
            CHECK(o.right);
            CHECK_EQ_U64(o.n, N);
            if (!unordered) CHECK(o.in_order);
            uint64_t *ys = malloc(N * 8);
            CHECK_OK(weft_results_gather(r, ys, 8, N, NULL));
            for (uint64_t i = 0; i < N; i++) CHECK(ys[i] == i * i + 1);
            free(ys);
            weft_results_destroy(r);
        }
        weft_memo_stats s;
        CHECK_OK(weft_memo_stats_get(m, &s));
        /* first map: N/3 misses; second: the rest minus the 1/7 put by hand */
        uint64_t hand = 0;
        for (uint64_t i = N / 3; i < N; i += 7) hand++;
        CHECK_EQ_U64(s.stores, (uint64_t)N); /* the map's and the hand-made ones */
        CHECK_EQ_U64(s.hits, (uint64_t)N / 3 + hand + N);
        CHECK_OK(weft_executor_destroy(ex));
        CHECK_OK(weft_memo_close(m));
    }
    free(xs);
}

TEST(memoized_batch_and_graph)
{
    for (size_t b = 0; b < sizeof backends / sizeof backends[0]; b++) {
        char dir[256];
        fresh_dir(dir, sizeof dir, "graph");
        weft_memo *m;
        REQUIRE_OK(weft_memo_open(dir, 0, NULL, &m));
        weft_executor *ex = executor(backends[b], m);
        REQUIRE(ex);
        uint64_t xs[6] = {1, 2, 3, 4, 5, 6};
        weft_call calls6[6];
        for (int i = 0; i < 6; i++) calls6[i] = (weft_call){i % 2 ? twice : square, &xs[i], 8};
        for (int round = 0; round < 2; round++) {
            weft_parallel_options po = {.executor = ex, .flags = WEFT_MAP_MEMO};
            weft_results *r;
            REQUIRE_OK(weft_parallel(calls6, 6, &po, &r));
            uint64_t ys[6];
            CHECK_OK(weft_results_gather(r, ys, 8, 6, NULL));
            for (int i = 0; i < 6; i++) CHECK(ys[i] == (i % 2 ? 2 * xs[i] : xs[i] * xs[i] + 1));
            weft_results_destroy(r);
        }
        weft_memo_stats s;
        CHECK_OK(weft_memo_stats_get(m, &s));
        CHECK_EQ_U64(s.stores, 6);
        CHECK_EQ_U64(s.hits, 6);

        /* a chain x -> square -> twice -> square, computed twice on fresh graphs */
        for (int round = 0; round < 2; round++) {
            weft_graph *g;
            REQUIRE_OK(weft_graph_create(NULL, &g));
            uint64_t x = 5;
            weft_node a, c, d;
            REQUIRE_OK(weft_graph_call(g, gsquare, (weft_arg[]){weft_arg_bytes(&x, 8)}, 1, &a));
            REQUIRE_OK(weft_graph_call(g, gtwice, (weft_arg[]){weft_arg_node(a)}, 1, &c));
            REQUIRE_OK(weft_graph_call(g, gsquare, (weft_arg[]){weft_arg_node(c)}, 1, &d));
            weft_compute_options co = {.flags = WEFT_COMPUTE_MEMO};
            REQUIRE_OK(weft_graph_compute(g, ex, &d, 1, &co));
            const void *out;
            size_t len;
            REQUIRE_OK(weft_graph_result(g, d, &out, &len));
            uint64_t y = 0;
            if (len == 8) memcpy(&y, out, 8);
            CHECK_EQ_U64(y, 52ull * 52 + 1);
            weft_graph_destroy(g);
        }
        CHECK_OK(weft_memo_stats_get(m, &s));
        CHECK_EQ_U64(s.stores, 9);
        CHECK_EQ_U64(s.hits, 9);
        CHECK_OK(weft_executor_destroy(ex));
        CHECK_OK(weft_memo_close(m));
    }
}

/* ---- a map killed half way resumes ------------------------------------------------------ */

/* A child process runs a memoized map of n items (n = resume_items: a
 * million in the plain build); the parent watches the directory's ledger
 * and kills the child with SIGKILL once half the items are stored, at
 * whatever point of a store it is. Run again, the map calls the task
 * exactly for the items not stored (counted in shared memory), and all n
 * results are right. */
TEST(a_map_killed_half_way_recomputes_only_the_missing_items)
{
    size_t n = resume_items;
    char dir[256];
    fresh_dir(dir, sizeof dir, "resume");
    uint64_t *xs = malloc(n * sizeof *xs);
    for (uint64_t i = 0; i < n; i++) xs[i] = i;
    weft_memo *watch;
    REQUIRE_OK(weft_memo_open(dir, 0, NULL, &watch));
    atomic_store(calls, 0);
    struct timespec t0, t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    fflush(stdout);
    pid_t p = fork();
    REQUIRE(p >= 0);
    if (p == 0) {
        weft_memo *m;
        if (weft_memo_open(dir, 0, NULL, &m) != 0) _exit(2);
        weft_executor *ex = executor(WEFT_BACKEND_THREADS, m);
        if (!ex) _exit(2);
        weft_map_options mo = {.flags = WEFT_MAP_MEMO};
        weft_results *r;
        int rc = weft_map(ex, square, xs, 8, n, &mo, &r);
        printf("    the first run was not killed: %s\n", rc ? weft_last_error() : "it finished");
        fflush(stdout);
        _exit(4); /* not reached: killed half way */
    }
    int st = 0;
    bool ended = false;
    for (;;) {
        weft_memo_stats ws;
        if (weft_memo_stats_get(watch, &ws) == 0 && ws.entries >= n / 2) break;
        if (waitpid(p, &st, WNOHANG) == p) {
            ended = true;
            break;
        }
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    if (!ended) {
        kill(p, SIGKILL);
        REQUIRE(waitpid(p, &st, 0) == p);
    }
    CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the first run ended with 0x%x", st);
    long first_calls = atomic_load(calls);
    CHECK_OK(weft_memo_close(watch));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    weft_memo *m;
    REQUIRE_OK(weft_memo_open(dir, 0, NULL, &m));
    weft_memo_stats s0;
    REQUIRE_OK(weft_memo_verify(m, NULL)); /* recount: the killed run counted a store ahead */
    REQUIRE_OK(weft_memo_stats_get(m, &s0));
    printf("    %llu of %zu items stored before the kill (%ld computed)\n",
           (unsigned long long)s0.entries, n, first_calls);
    CHECK(s0.entries >= n / 2 && s0.entries < n);
    CHECK((uint64_t)first_calls >= s0.entries);
    CHECK_EQ_U64(s0.corrupt, 0);
    weft_executor *ex = executor(WEFT_BACKEND_THREADS, m);
    REQUIRE(ex);
    atomic_store(calls, 0);
    weft_map_options mo = {.flags = WEFT_MAP_MEMO};
    weft_results *r;
    REQUIRE_OK(weft_map(ex, square, xs, 8, n, &mo, &r));
    CHECK_EQ_U64((uint64_t)atomic_load(calls), n - s0.entries);
    uint64_t *ys = malloc(n * 8);
    CHECK_OK(weft_results_gather(r, ys, 8, n, NULL));
    size_t wrong = 0;
    for (uint64_t i = 0; i < n; i++) wrong += ys[i] != i * i + 1;
    CHECK_EQ_U64(wrong, 0);
    weft_results_destroy(r);
    free(ys);
    weft_memo_stats s;
    CHECK_OK(weft_memo_stats_get(m, &s));
    CHECK_EQ_U64(s.hits, s0.entries);
    CHECK_EQ_U64(s.entries, n);
    CHECK_EQ_U64(s.corrupt, 0);
    CHECK_OK(weft_executor_destroy(ex));
    CHECK_OK(weft_memo_close(m));
    clock_gettime(CLOCK_MONOTONIC, &t2);
    printf("    first run and kill %.1f s, second run %.1f s\n",
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec),
           (double)(t2.tv_sec - t1.tv_sec) + 1e-9 * (double)(t2.tv_nsec - t1.tv_nsec));
    free(xs);
    rm_rf(dir);
}

int main(int argc, char **argv)
{
    if (weft_init(&argc, &argv) != 0) {
        printf("weft_init: %s\n", weft_last_error());
        return 1;
    }
    void *shared =
        mmap(NULL, sizeof *calls, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared != MAP_FAILED) calls = shared;
    int k = 1;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "resume_items=", 13) == 0)
            resume_items = strtoull(argv[i] + 13, NULL, 10);
        else if (strncmp(argv[i], "base=", 5) == 0)
            base = argv[i] + 5;
        else
            argv[k++] = argv[i];
    }
    argc = k;
    return check_main(argc, argv);
}
