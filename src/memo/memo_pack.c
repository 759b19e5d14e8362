/* memo_pack.c : small memo entries packed many to a file.
 *
 * A file per entry costs an inode, a directory entry and at least one 4 KiB
 * block (a page on tmpfs), and its store costs a file creation: a million
 * 100-byte results take 4 GiB and minutes. Entries whose record (the 72-byte
 * header and the payload, the same bytes as an entry file) fits pack_max
 * bytes are instead appended to one of 64 packs, chosen by the key's first
 * 6 bits:
 *
 *   packs/<xx>.idx          the pack's index: an open-addressing hash table
 *                           of slots {key, offset, length, last use}, mapped
 *                           shared by every handle of every process
 *   packs/<xx>.<gen>.pack   the records, appended; <gen> names the file the
 *                           index describes (a compaction writes a new one)
 *
 * Index file (native byte order, a byte-order mark checks it): header of
 * 128 bytes -- magic "WEFTPIDX", u32 version 1, u32 BOM 0x01020304, then
 * u64 capacity (slots, a power of two), used (non-empty slots), live
 * (entries), live_bytes (their record bytes), end (bytes of the pack in
 * use), gen (pack file generation) -- then `capacity` slots of four u64:
 * key low, key high, loc = offset << 20 | length, and last use (seconds
 * since the epoch). loc 0 is an empty slot, 1 a removed entry (probing
 * goes on past it). Offset and length share one word so that a slot's
 * place changes in one store: no reader, and no crash, ever pairs the
 * offset of one record with the length of another.
 *
 * Invariants and concurrency:
 * - Every change happens under the memo's ledger lock (flock + mutex:
 *   memo_store.c), so there is one writer per directory at a time. A writer
 *   first checks that its mapping is the file the name holds (one fstatat),
 *   because another process may have replaced the index.
 * - Readers take no lock across processes: they probe the mapped slots
 *   with atomic loads and pread the record from the pack file. A record is
 *   written and `end` moved past it before its slot is published (loc
 *   stored last, with release order), so a reader that sees a slot sees its
 *   record -- in this process. Across processes a slot can still be read
 *   half-changed (replace of one key): the reader then gets a record that
 *   does not check, and the store reads it again under the lock before
 *   calling it corrupt. Nothing a reader sees is ever taken for a result
 *   without the record's own checks (key, length, checksums).
 * - An index is never rewritten in place when it grows or its pack is
 *   compacted: a new index (and pack) is written under tmp/ and renamed in,
 *   and the shared ledger's `epoch` counter is bumped after. A reader
 *   compares the epoch with the one it last checked at (a load from the
 *   mapped ledger, no system call) and re-checks the index's inode when it
 *   moved. A reader still on an old index reads an old pack through its
 *   open file descriptor: old records, which are sound, or misses.
 * - Crashes: a writer killed after appending a record but before
 *   publishing its slot leaves dead bytes (past `end`: overwritten by the
 *   next append; before it: removed by the next compaction). A compaction
 *   killed half way leaves a temporary file (removed by the next open) or a
 *   pack file no index names (removed by the next settle: eviction pass,
 *   verify, open). No state of the files reads wrong.
 * - In a handle, a pack's state (mapping, pack fd) is guarded by a
 *   rwlock: lookups hold it shared, changes and remaps exclusively. Lock
 *   order: the ledger lock, then a pack's rwlock; never two packs at once.
 * - Compaction: a pack is rewritten (live records only, into a new
 *   generation) when its removed records outweigh its live ones and are at
 *   least 64 KiB, and at every eviction pass, so the pack files hold at
 *   most about twice the live bytes between passes, and the live bytes
 *   after one. Its cost is proportional to the live bytes, paid once per
 *   as many bytes removed: O(1) amortized per byte stored. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "memo/memo_pack.h"

#define H_CAP 16
#define H_USED 24
#define H_LIVE 32
#define H_LIVE_BYTES 40
#define H_END 48
#define H_GEN 56
#define MIN_CAP 64u
#define COMPACT_MIN ((uint64_t)64 << 10)
#define COPY_BUF ((size_t)1 << 20)
#define S_LOC 16
#define S_USE 24
#define LOC_BITS 20
#define LOC_LEN(l) ((uint32_t)((l) & ((1u << LOC_BITS) - 1)))
#define LOC_OFF(l) ((l) >> LOC_BITS)
#define LOC(off, len) ((uint64_t)(off) << LOC_BITS | (uint64_t)(len))

typedef struct pack {
    pthread_rwlock_t rw;
    unsigned char *map; /* the index, or NULL: no pack */
    size_t map_len;
    uint64_t cap; /* slots, from map_len */
    int fd;       /* the pack file */
    uint64_t epoch;
    bool checked;
    dev_t dev;
    ino_t ino;
} pack;

struct weft__packs {
    char *dir; /* root/packs */
    int dfd;
    bool fsync;
    uint64_t *epoch;
    weft__packs_tmpname_fn tmpname;
    void *tmpctx;
    pack p[WEFT__PACKS];
};

/* ---- small helpers ------------------------------------------------------------------- */

static uint64_t ld(const unsigned char *map, size_t off)
{
    return __atomic_load_n((const uint64_t *)(const void *)(map + off), __ATOMIC_ACQUIRE);
}

static void st(unsigned char *map, size_t off, uint64_t v)
{
    __atomic_store_n((uint64_t *)(void *)(map + off), v, __ATOMIC_RELEASE);
}

static size_t slot_off(uint64_t i)
{
    return WEFT__PACK_IDX_HDR + (size_t)i * WEFT__PACK_SLOT;
}

static uint64_t key_word(const weft__memo_key *k, int w)
{
    uint64_t v;
    memcpy(&v, k->b + 8 * w, 8);
    return v;
}

static unsigned pack_of(const weft__memo_key *k)
{
    return (unsigned)(k->b[0] >> 2);
}

/* Seconds, for the last-use words (1 s granularity): the coarse clock is a
 * load from the vDSO page, where CLOCK_REALTIME also reads and scales the
 * clock source -- 2% of a disk hit (perf of a loop of hits). */
static uint32_t now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return (uint32_t)ts.tv_sec;
}

static int perr(int e, const char *what, const char *dir, const char *name)
{
    if (e == ENOSPC || e == EDQUOT)
        return weft__err(WEFT_ENOSPC, "weft_memo: %s %s/%s: no space left on the device", what, dir,
                         name);
    return weft__err(-e, "weft_memo: %s %s/%s: %s", what, dir, name, strerror(e));
}

static void idx_name(unsigned i, char *b)
{
    snprintf(b, 16, "%02x.idx", i);
}

static void pack_name(unsigned i, uint64_t gen, char *b)
{
    snprintf(b, 40, "%02x.%llu.pack", i, (unsigned long long)gen);
}

static uint64_t epoch_now(const weft__packs *P)
{
    return __atomic_load_n(P->epoch, __ATOMIC_ACQUIRE);
}

static uint64_t epoch_bump(weft__packs *P)
{
    return __atomic_add_fetch(P->epoch, 1, __ATOMIC_ACQ_REL);
}

/* ---- probing ------------------------------------------------------------------------ */

/* The slot (byte offset) of key (k0, k1) in an index of `cap` slots (from
 * the mapping's length, never from the file's header), or 0. With `fr`,
 * the first free slot on its way (removed or empty) goes there (0 if
 * none). */
static size_t probe(const unsigned char *map, uint64_t cap, uint64_t k0, uint64_t k1, size_t *fr)
{
    uint64_t mask = cap - 1;
    if (fr) *fr = 0;
    for (uint64_t n = 0, i = k1 & mask; n < cap; n++, i = (i + 1) & mask) {
        size_t s = slot_off(i);
        uint32_t len = LOC_LEN(ld(map, s + S_LOC));
        if (len == 0) {
            if (fr && !*fr) *fr = s;
            return 0;
        }
        if (len == WEFT__PACK_TOMB) {
            if (fr && !*fr) *fr = s;
            continue;
        }
        if (ld(map, s) == k0 && ld(map, s + 8) == k1) return s;
    }
    return 0;
}

/* ---- mapping an index ------------------------------------------------------------------ */

static void unmap(pack *pk)
{
    if (pk->map) munmap(pk->map, pk->map_len);
    if (pk->fd >= 0) close(pk->fd);
    pk->map = NULL;
    pk->map_len = 0;
    pk->cap = 0;
    pk->fd = -1;
    pk->dev = 0;
    pk->ino = 0;
}

static bool idx_sound(const unsigned char *map, size_t len)
{
    if (len < WEFT__PACK_IDX_HDR || memcmp(map, WEFT__PACK_IDX_MAGIC, 8) != 0) return false;
    uint32_t v, bom;
    memcpy(&v, map + 8, 4);
    memcpy(&bom, map + 12, 4);
    uint64_t cap = ld(map, H_CAP);
    return v == WEFT__PACK_IDX_VERSION && bom == WEFT__PACK_BOM && cap >= MIN_CAP &&
           (cap & (cap - 1)) == 0 && cap <= ((uint64_t)1 << 40) && slot_off(cap) == len &&
           ld(map, H_GEN) != 0;
}

/* Holding pk->rw exclusively: maps the index the name holds now (or none).
 * A reader may open an index just before a compaction of another process
 * renames a new one in and removes the old pack: the old pack's name is
 * then gone, and the load starts again with the new index.
 * @return 0, 1 (the index or its pack is unsound: none mapped), or a
 * negated errno. */
static int load(weft__packs *P, unsigned i)
{
    pack *pk = &P->p[i];
    int tries = 0;
again:;
    uint64_t e = epoch_now(P);
    unmap(pk);
    char nb[40];
    idx_name(i, nb);
    int fd = openat(P->dfd, nb, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) return perr(errno, "cannot open", P->dir, nb);
        pk->epoch = e;
        pk->checked = true;
        return 0;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int rc = perr(errno, "cannot stat", P->dir, nb);
        close(fd);
        return rc;
    }
    size_t len = (size_t)sb.st_size;
    void *m = len >= WEFT__PACK_IDX_HDR ? mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                                        : MAP_FAILED;
    close(fd);
    int bad = 0;
    if (m == MAP_FAILED) {
        bad = 1;
    } else if (!idx_sound(m, len)) {
        munmap(m, len);
        bad = 1;
    }
    if (bad) {
        pk->epoch = e;
        pk->checked = true;
        pk->dev = sb.st_dev;
        pk->ino = sb.st_ino;
        return 1;
    }
    char pn[40];
    pack_name(i, ld(m, H_GEN), pn);
    int pfd = openat(P->dfd, pn, O_RDWR | O_CLOEXEC);
    if (pfd < 0) {
        int e2 = errno;
        munmap(m, len);
        if (e2 != ENOENT) return perr(e2, "cannot open", P->dir, pn);
        struct stat now;
        if (tries++ < 100 && fstatat(P->dfd, nb, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
            (now.st_ino != sb.st_ino || now.st_dev != sb.st_dev))
            goto again; /* replaced meanwhile */
        pk->epoch = e;
        pk->checked = true;
        pk->dev = sb.st_dev;
        pk->ino = sb.st_ino;
        return 1;
    }
    pk->map = m;
    pk->map_len = len;
    pk->cap = (len - WEFT__PACK_IDX_HDR) / WEFT__PACK_SLOT;
    pk->fd = pfd;
    pk->dev = sb.st_dev;
    pk->ino = sb.st_ino;
    pk->epoch = e;
    pk->checked = true;
    return 0;
}

/* Holding pk->rw exclusively: does the name still hold the index mapped? */
static bool current(weft__packs *P, unsigned i)
{
    pack *pk = &P->p[i];
    char nb[16];
    idx_name(i, nb);
    struct stat sb;
    if (fstatat(P->dfd, nb, &sb, AT_SYMLINK_NOFOLLOW) != 0) return !pk->map && !pk->ino;
    return (pk->map || pk->ino) && sb.st_dev == pk->dev && sb.st_ino == pk->ino;
}

/* Reader side (pk->rw held exclusively): refresh when the epoch moved. */
static int rsync(weft__packs *P, unsigned i)
{
    pack *pk = &P->p[i];
    uint64_t e = epoch_now(P);
    if (pk->checked && pk->epoch == e) return 0;
    if (pk->checked && current(P, i)) {
        pk->epoch = e;
        return 0;
    }
    int rc = load(P, i);
    return rc < 0 ? rc : 0;
}

/* Writer side (ledger lock and pk->rw exclusively held): the mapping is the
 * file the name holds; an unsound index is removed (its entries become
 * misses; the next settle recounts). Every replacement of an index bumps
 * the epoch before its rename, under the ledger lock, so a writer whose
 * epoch is current needs no system call: nothing was replaced since it
 * checked (also when that writer was killed between the bump and the
 * rename: the bump was first). */
static int wsync(weft__packs *P, unsigned i)
{
    pack *pk = &P->p[i];
    uint64_t e = epoch_now(P);
    if (pk->checked && pk->epoch == e) return 0;
    if (pk->checked && current(P, i)) {
        pk->epoch = e;
        return 0;
    }
    int rc = load(P, i);
    if (rc == 1) {
        char nb[16];
        idx_name(i, nb);
        epoch_bump(P);
        unlinkat(P->dfd, nb, 0);
        epoch_bump(P);
        unmap(pk);
        pk->epoch = epoch_now(P);
        rc = 0;
    }
    return rc;
}

/* ---- open / close ------------------------------------------------------------------------ */

int weft__packs_open(const char *root, bool fsync, uint64_t *epoch, weft__packs_tmpname_fn tmpname,
                     void *tmpctx, weft__packs **out)
{
    *out = NULL;
    weft__packs *P = calloc(1, sizeof *P);
    if (!P) return weft__err(WEFT_ENOMEM, "weft_memo_open: out of memory");
    size_t rl = strlen(root);
    P->dir = malloc(rl + 8);
    if (!P->dir) {
        free(P);
        return weft__err(WEFT_ENOMEM, "weft_memo_open: out of memory");
    }
    snprintf(P->dir, rl + 8, "%s/packs", root);
    P->fsync = fsync;
    P->epoch = epoch;
    P->tmpname = tmpname;
    P->tmpctx = tmpctx;
    P->dfd = -1;
    for (unsigned i = 0; i < WEFT__PACKS; i++) {
        pthread_rwlock_init(&P->p[i].rw, NULL);
        P->p[i].fd = -1;
    }
    int rc = 0;
    if (mkdir(P->dir, 0700) != 0 && errno != EEXIST)
        rc = weft__err(-errno, "weft_memo: cannot create the directory %s: %s", P->dir,
                       strerror(errno));
    if (!rc) {
        P->dfd = open(P->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (P->dfd < 0)
            rc = weft__err(errno == ENOTDIR ? WEFT_ENOTDIR : -errno,
                           "weft_memo: cannot open %s: %s", P->dir, strerror(errno));
    }
    if (rc) {
        weft__packs_close(P);
        return rc;
    }
    *out = P;
    return 0;
}

void weft__packs_close(weft__packs *P)
{
    if (!P) return;
    for (unsigned i = 0; i < WEFT__PACKS; i++) {
        unmap(&P->p[i]);
        pthread_rwlock_destroy(&P->p[i].rw);
    }
    if (P->dfd >= 0) close(P->dfd);
    free(P->dir);
    free(P);
}

/* ---- reading -------------------------------------------------------------------------- */

int weft__packs_read(weft__packs *P, const weft__memo_key *k, bool header_only, bool touch,
                     void **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    unsigned i = pack_of(k);
    pack *pk = &P->p[i];
    pthread_rwlock_rdlock(&pk->rw);
    if (!pk->checked || pk->epoch != epoch_now(P)) {
        pthread_rwlock_unlock(&pk->rw);
        pthread_rwlock_wrlock(&pk->rw);
        int rc = rsync(P, i);
        pthread_rwlock_unlock(&pk->rw);
        if (rc) return rc;
        pthread_rwlock_rdlock(&pk->rw);
    }
    int rc = WEFT_ENOENT;
    size_t s = pk->map ? probe(pk->map, pk->cap, key_word(k, 0), key_word(k, 1), NULL) : 0;
    if (s) {
        uint64_t loc = ld(pk->map, s + S_LOC), off = LOC_OFF(loc);
        uint32_t rl = LOC_LEN(loc);
        if (rl < WEFT__MEMO_HDR || rl > WEFT__PACK_MAX_REC)
            rl = WEFT__MEMO_HDR; /* changed under us, or corrupt: the check fails */
        size_t want = header_only ? WEFT__MEMO_HDR : rl;
        unsigned char *b = malloc(want);
        if (!b) {
            rc = weft__err(WEFT_ENOMEM, "weft_memo_get: out of memory for %u bytes", rl);
        } else {
            size_t got = 0;
            while (got < want) {
                ssize_t r = pread(pk->fd, b + got, want - got, (off_t)(off + got));
                if (r < 0 && errno == EINTR) continue;
                if (r <= 0) break;
                got += (size_t)r;
            }
            *buf = b;
            *len = header_only ? rl : got;
            if (header_only && got < want) *len = got; /* short: fails the check */
            rc = 0;
            if (touch) { /* a racing store or touch may win: either is recent */
                uint64_t now = now_s();
                if (now > ld(pk->map, s + S_USE) + 1) st(pk->map, s + S_USE, now);
            }
        }
    }
    pthread_rwlock_unlock(&pk->rw);
    return rc;
}

/* ---- writing an index ---------------------------------------------------------------------- */

static uint64_t cap_for(uint64_t live)
{
    uint64_t c = MIN_CAP;
    while (c < 2 * live + 2 && c < ((uint64_t)1 << 40)) c *= 2;
    return c;
}

/* live slots of a mapped index, counted (its header is not trusted) */
static uint64_t count_live(const pack *pk)
{
    uint64_t n = 0;
    for (uint64_t j = 0; j < pk->cap; j++) {
        uint32_t len = LOC_LEN(ld(pk->map, slot_off(j) + S_LOC));
        n += len >= WEFT__MEMO_HDR && len <= WEFT__PACK_MAX_REC;
    }
    return n;
}

/* A fresh, empty index image of `cap` slots for pack generation `gen`
 * (image_insert fills it). */
static unsigned char *idx_image(uint64_t cap, uint64_t gen, size_t *len)
{
    *len = slot_off(cap);
    unsigned char *b = calloc(1, *len);
    if (!b) return NULL;
    memcpy(b, WEFT__PACK_IDX_MAGIC, 8);
    uint32_t v = WEFT__PACK_IDX_VERSION, bom = WEFT__PACK_BOM;
    memcpy(b + 8, &v, 4);
    memcpy(b + 12, &bom, 4);
    st(b, H_CAP, cap);
    st(b, H_GEN, gen);
    return b;
}

static void image_insert(unsigned char *b, uint64_t k0, uint64_t k1, uint64_t loc, uint64_t use)
{
    size_t fr;
    /* A damaged index may hold a key twice: the first copy stays, the
     * other's record is dead bytes for compaction. fr is 0 when the key is
     * found before a free slot, or when no slot is free: writing there
     * would overwrite the image's header (found by fuzz_memo_pack). */
    if (probe(b, ld(b, H_CAP), k0, k1, &fr) || fr == 0) return;
    st(b, fr, k0);
    st(b, fr + 8, k1);
    st(b, fr + S_USE, use);
    st(b, fr + S_LOC, loc);
    st(b, H_USED, ld(b, H_USED) + 1);
    st(b, H_LIVE, ld(b, H_LIVE) + 1);
    st(b, H_LIVE_BYTES, ld(b, H_LIVE_BYTES) + LOC_LEN(loc));
}

static int write_file_at(int fd, const void *b, size_t n)
{
    const char *p = b;
    size_t done = 0;
    while (done < n) {
        ssize_t w = pwrite(fd, p + done, n - done, (off_t)done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return errno;
        if (w == 0) return ENOSPC;
        done += (size_t)w;
    }
    return 0;
}

/* Writes image b[0..len) as a temporary file and renames it over the
 * index of pack i, then bumps the epoch and maps it. */
static int install_idx(weft__packs *P, unsigned i, const unsigned char *b, size_t len)
{
    char tmp[4200];
    P->tmpname(P->tmpctx, tmp, sizeof tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return perr(errno, "cannot create", tmp, "");
    int e = write_file_at(fd, b, len);
    if (!e && P->fsync && fsync(fd) != 0) e = errno;
    if (close(fd) != 0 && !e && errno != EINTR) e = errno;
    char nb[16];
    idx_name(i, nb);
    if (!e) epoch_bump(P); /* before (writers) and after (readers) the rename */
    if (!e && renameat(AT_FDCWD, tmp, P->dfd, nb) != 0) e = errno;
    if (e) {
        unlink(tmp);
        return perr(e, "cannot write the index", P->dir, nb);
    }
    epoch_bump(P);
    int rc = load(P, i);
    return rc == 1 ? weft__err(WEFT_EINVAL, "weft_memo: the new index of %s is unsound", P->dir)
                   : rc;
}

/* A new, empty pack i (none exists). */
static int create(weft__packs *P, unsigned i)
{
    uint64_t gen = epoch_bump(P);
    char pn[40];
    pack_name(i, gen, pn);
    unlinkat(P->dfd, pn, 0);
    int fd = openat(P->dfd, pn, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return perr(errno, "cannot create", P->dir, pn);
    close(fd);
    size_t len;
    unsigned char *b = idx_image(MIN_CAP, gen, &len);
    if (!b) {
        unlinkat(P->dfd, pn, 0);
        return weft__err(WEFT_ENOMEM, "weft_memo_put: out of memory");
    }
    int rc = install_idx(P, i, b, len);
    free(b);
    if (rc) unlinkat(P->dfd, pn, 0);
    return rc;
}

/* The index of pack i again, with room (same pack file). */
static int rebuild(weft__packs *P, unsigned i)
{
    pack *pk = &P->p[i];
    uint64_t cap = pk->cap;
    size_t len;
    unsigned char *b = idx_image(cap_for(count_live(pk) + 1), ld(pk->map, H_GEN), &len);
    if (!b) return weft__err(WEFT_ENOMEM, "weft_memo_put: out of memory");
    for (uint64_t j = 0; j < cap; j++) {
        size_t s = slot_off(j);
        uint64_t loc = ld(pk->map, s + S_LOC);
        if (LOC_LEN(loc) >= WEFT__MEMO_HDR && LOC_LEN(loc) <= WEFT__PACK_MAX_REC)
            image_insert(b, ld(pk->map, s), ld(pk->map, s + 8), loc, ld(pk->map, s + S_USE));
    }
    st(b, H_END, ld(pk->map, H_END));
    int rc = install_idx(P, i, b, len);
    free(b);
    return rc;
}

/* Rewrites pack i with its live records only (a new generation). *dbytes
 * gets the change of the pack's length. */
static int compact(weft__packs *P, unsigned i, int64_t *dbytes)
{
    pack *pk = &P->p[i];
    uint64_t old_end = ld(pk->map, H_END), old_gen = ld(pk->map, H_GEN);
    char oldpn[40], nb[16];
    pack_name(i, old_gen, oldpn);
    idx_name(i, nb);
    if (count_live(pk) == 0) {
        epoch_bump(P);
        unlinkat(P->dfd, nb, 0);
        epoch_bump(P);
        unlinkat(P->dfd, oldpn, 0);
        unmap(pk);
        pk->epoch = epoch_now(P);
        *dbytes -= (int64_t)old_end;
        return 0;
    }
    uint64_t gen = epoch_bump(P);
    uint64_t cap = pk->cap;
    size_t ilen;
    unsigned char *b = idx_image(cap_for(count_live(pk)), gen, &ilen);
    unsigned char *buf = malloc(COPY_BUF);
    char tmp[4200];
    P->tmpname(P->tmpctx, tmp, sizeof tmp);
    int fd = b && buf ? open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600) : -1;
    if (fd < 0) {
        int rc = b && buf ? perr(errno, "cannot create", tmp, "")
                          : weft__err(WEFT_ENOMEM, "weft_memo: out of memory compacting");
        free(b);
        free(buf);
        return rc;
    }
    uint64_t end = 0;
    size_t used = 0;
    int e = 0;
    for (uint64_t j = 0; j < cap && !e; j++) {
        size_t s = slot_off(j);
        uint64_t loc = ld(pk->map, s + S_LOC);
        uint32_t rl = LOC_LEN(loc);
        if (rl < WEFT__MEMO_HDR || rl > WEFT__PACK_MAX_REC) continue;
        if (rl > COPY_BUF - used) {
            ssize_t w = pwrite(fd, buf, used, (off_t)(end - used));
            if (w != (ssize_t)used) e = w < 0 ? errno : ENOSPC;
            used = 0;
            if (e) break;
        }
        if (pread(pk->fd, buf + used, rl, (off_t)LOC_OFF(loc)) != (ssize_t)rl)
            continue; /* lost: dropped */
        weft__memo_hdr h;
        weft__memo_key k;
        uint64_t k0 = ld(pk->map, s), k1 = ld(pk->map, s + 8);
        memcpy(k.b, &k0, 8);
        memcpy(k.b + 8, &k1, 8);
        if (weft__memo_hdr_decode(buf + used, rl, &k, &h) != 0 ||
            h.stored_len + WEFT__MEMO_HDR != rl)
            continue; /* not a sound record: dropped */
        image_insert(b, k0, k1, LOC(end, rl), ld(pk->map, s + S_USE));
        used += rl;
        end += rl;
    }
    if (!e && used) {
        ssize_t w = pwrite(fd, buf, used, (off_t)(end - used));
        if (w != (ssize_t)used) e = w < 0 ? errno : ENOSPC;
    }
    free(buf);
    if (!e && P->fsync && fsync(fd) != 0) e = errno;
    if (close(fd) != 0 && !e && errno != EINTR) e = errno;
    char pn[40];
    pack_name(i, gen, pn);
    if (!e && renameat(AT_FDCWD, tmp, P->dfd, pn) != 0) e = errno;
    if (e) {
        unlink(tmp);
        free(b);
        return perr(e, "cannot compact into", P->dir, pn);
    }
    st(b, H_END, end);
    int rc = install_idx(P, i, b, ilen);
    free(b);
    if (rc) {
        unlinkat(P->dfd, pn, 0);
        return rc;
    }
    unlinkat(P->dfd, oldpn, 0);
    *dbytes += (int64_t)end - (int64_t)old_end;
    return 0;
}

static bool worth_compacting(const unsigned char *map)
{
    uint64_t live = ld(map, H_LIVE_BYTES), dead = ld(map, H_END) - live;
    return dead > live && dead >= COMPACT_MIN;
}

int weft__packs_put(weft__packs *P, const weft__memo_key *k, const void *hdr, size_t hlen,
                    const void *payload, size_t plen, int64_t *dbytes, int64_t *dentries)
{
    *dbytes = *dentries = 0;
    size_t n = hlen + plen;
    unsigned i = pack_of(k);
    pack *pk = &P->p[i];
    pthread_rwlock_wrlock(&pk->rw);
    int rc = wsync(P, i);
    if (!rc && !pk->map) rc = create(P, i);
    if (!rc && (ld(pk->map, H_USED) + 1) * 4 > pk->cap * 3) rc = rebuild(P, i);
    if (rc) {
        pthread_rwlock_unlock(&pk->rw);
        return rc;
    }
    uint64_t off = ld(pk->map, H_END);
    if (LOC_OFF(LOC(off, n)) != off) {
        pthread_rwlock_unlock(&pk->rw);
        return weft__err(WEFT_EOVERFLOW, "weft_memo_put: pack %02x of %s is full", i, P->dir);
    }
    struct iovec iov[2] = {{(void *)hdr, hlen}, {(void *)payload, plen}};
    ssize_t w;
    do w = pwritev(pk->fd, iov, plen ? 2 : 1, (off_t)off);
    while (w < 0 && errno == EINTR);
    int e = w < 0 ? errno : (size_t)w != n ? ENOSPC : 0; /* a short write: the disk filled */
    if (!e && P->fsync && fdatasync(pk->fd) != 0) e = errno;
    if (e) {
        if (ftruncate(pk->fd, (off_t)off) != 0) { /* the bytes past end are never read */
        }
        pthread_rwlock_unlock(&pk->rw);
        char pn[40];
        pack_name(i, ld(pk->map, H_GEN), pn);
        return perr(e, "cannot append to", P->dir, pn);
    }
    st(pk->map, H_END, off + n);
    uint64_t k0 = key_word(k, 0), k1 = key_word(k, 1);
    size_t fr, s = probe(pk->map, pk->cap, k0, k1, &fr);
    if (!s && !fr) { /* no free slot: only an index changed behind our back */
        pthread_rwlock_unlock(&pk->rw);
        return weft__err(WEFT_EINVAL, "weft_memo_put: the index of pack %02x in %s is full", i,
                         P->dir);
    }
    uint64_t loc = LOC(off, n);
    if (s) {
        uint32_t old = LOC_LEN(ld(pk->map, s + S_LOC));
        st(pk->map, s + S_USE, now_s());
        st(pk->map, s + S_LOC, loc);
        st(pk->map, H_LIVE_BYTES, ld(pk->map, H_LIVE_BYTES) - old + n);
    } else {
        if (ld(pk->map, fr + S_LOC) == 0) st(pk->map, H_USED, ld(pk->map, H_USED) + 1);
        st(pk->map, fr, k0);
        st(pk->map, fr + 8, k1);
        st(pk->map, fr + S_USE, now_s());
        st(pk->map, fr + S_LOC, loc);
        st(pk->map, H_LIVE, ld(pk->map, H_LIVE) + 1);
        st(pk->map, H_LIVE_BYTES, ld(pk->map, H_LIVE_BYTES) + n);
        *dentries = 1;
    }
    *dbytes = (int64_t)n;
    if (P->fsync) msync(pk->map, pk->map_len, MS_SYNC);
    if (s && worth_compacting(pk->map)) compact(P, i, dbytes); /* a failure leaves it as it is */
    pthread_rwlock_unlock(&pk->rw);
    return 0;
}

/* Holding the locks: marks the slot of k removed. @return its length or 0. */
static uint32_t drop(pack *pk, const weft__memo_key *k)
{
    if (!pk->map) return 0;
    size_t s = probe(pk->map, pk->cap, key_word(k, 0), key_word(k, 1), NULL);
    if (!s) return 0;
    uint32_t len = LOC_LEN(ld(pk->map, s + S_LOC));
    st(pk->map, s + S_LOC, WEFT__PACK_TOMB);
    st(pk->map, H_LIVE, ld(pk->map, H_LIVE) - 1);
    st(pk->map, H_LIVE_BYTES, ld(pk->map, H_LIVE_BYTES) - len);
    return len;
}

int weft__packs_remove(weft__packs *P, const weft__memo_key *k, int64_t *dbytes, int64_t *dentries)
{
    *dbytes = *dentries = 0;
    unsigned i = pack_of(k);
    pack *pk = &P->p[i];
    pthread_rwlock_wrlock(&pk->rw);
    int rc = wsync(P, i);
    if (!rc) rc = drop(pk, k) ? 0 : WEFT_ENOENT;
    if (!rc) {
        *dentries = -1;
        if (worth_compacting(pk->map) || ld(pk->map, H_LIVE) == 0) compact(P, i, dbytes);
    }
    pthread_rwlock_unlock(&pk->rw);
    return rc;
}

int weft__packs_drop(weft__packs *P, const weft__memo_key *k)
{
    unsigned i = pack_of(k);
    pack *pk = &P->p[i];
    pthread_rwlock_wrlock(&pk->rw);
    int rc = wsync(P, i);
    if (!rc) rc = drop(pk, k) ? 0 : WEFT_ENOENT;
    pthread_rwlock_unlock(&pk->rw);
    return rc;
}

/* ---- whole-directory passes (ledger lock held) ---------------------------------------- */

int weft__packs_each(weft__packs *P, weft__pack_item_fn fn, void *arg)
{
    int rc = 0;
    for (unsigned i = 0; i < WEFT__PACKS && !rc; i++) {
        pack *pk = &P->p[i];
        pthread_rwlock_wrlock(&pk->rw);
        rc = wsync(P, i);
        if (!rc && pk->map) {
            uint64_t cap = pk->cap;
            for (uint64_t j = 0; j < cap && !rc; j++) {
                size_t s = slot_off(j);
                uint64_t loc = ld(pk->map, s + S_LOC);
                if (LOC_LEN(loc) < WEFT__MEMO_HDR) continue;
                weft__pack_item it;
                uint64_t k0 = ld(pk->map, s), k1 = ld(pk->map, s + 8);
                memcpy(it.key.b, &k0, 8);
                memcpy(it.key.b + 8, &k1, 8);
                it.len = LOC_LEN(loc);
                it.last_use = (uint32_t)ld(pk->map, s + S_USE);
                rc = fn(arg, &it);
            }
        }
        pthread_rwlock_unlock(&pk->rw);
    }
    return rc;
}

int weft__packs_check(weft__packs *P, int (*check)(const weft__memo_key *k, void *rec, size_t len),
                      size_t *bad)
{
    *bad = 0;
    int rc = 0;
    for (unsigned i = 0; i < WEFT__PACKS && !rc; i++) {
        pack *pk = &P->p[i];
        pthread_rwlock_wrlock(&pk->rw);
        rc = wsync(P, i);
        if (!rc && pk->map) {
            uint64_t cap = pk->cap;
            for (uint64_t j = 0; j < cap && !rc; j++) {
                size_t s = slot_off(j);
                uint64_t loc = ld(pk->map, s + S_LOC);
                uint32_t rl = LOC_LEN(loc);
                if (rl < WEFT__MEMO_HDR) continue;
                if (rl > WEFT__PACK_MAX_REC) rl = WEFT__MEMO_HDR; /* fails the check */
                weft__memo_key k;
                uint64_t k0 = ld(pk->map, s), k1 = ld(pk->map, s + 8);
                memcpy(k.b, &k0, 8);
                memcpy(k.b + 8, &k1, 8);
                unsigned char *b = malloc(rl);
                if (!b) {
                    rc = weft__err(WEFT_ENOMEM, "weft_memo_verify: out of memory");
                    break;
                }
                ssize_t r = pread(pk->fd, b, rl, (off_t)LOC_OFF(loc));
                if (r != (ssize_t)rl || check(&k, b, rl) != 0) {
                    drop(pk, &k);
                    (*bad)++;
                }
                free(b);
            }
        }
        pthread_rwlock_unlock(&pk->rw);
    }
    return rc;
}

int weft__packs_settle(weft__packs *P, uint64_t *bytes, uint64_t *entries)
{
    *bytes = *entries = 0;
    int rc = 0;
    uint64_t gens[WEFT__PACKS] = {0};
    for (unsigned i = 0; i < WEFT__PACKS && !rc; i++) {
        pack *pk = &P->p[i];
        pthread_rwlock_wrlock(&pk->rw);
        rc = wsync(P, i);
        if (!rc && pk->map && ld(pk->map, H_END) > ld(pk->map, H_LIVE_BYTES)) {
            int64_t d = 0;
            rc = compact(P, i, &d);
        }
        if (!rc && pk->map) {
            struct stat sb;
            uint64_t end = ld(pk->map, H_END);
            if (fstat(pk->fd, &sb) == 0 && (uint64_t)sb.st_size > end &&
                ftruncate(pk->fd, (off_t)end) != 0)
                end = (uint64_t)sb.st_size;
            *bytes += end;
            *entries += ld(pk->map, H_LIVE);
            gens[i] = ld(pk->map, H_GEN);
        }
        pthread_rwlock_unlock(&pk->rw);
    }
    if (rc) return rc;
    /* pack files no index names: left by a compaction or removal killed
     * half way */
    DIR *d = opendir(P->dir);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        unsigned i;
        unsigned long long g;
        char tail[8];
        if (sscanf(e->d_name, "%2x.%llu.%7s", &i, &g, tail) != 3 || strcmp(tail, "pack") != 0 ||
            i >= WEFT__PACKS)
            continue;
        if (g != gens[i]) unlinkat(P->dfd, e->d_name, 0);
    }
    closedir(d);
    return 0;
}
