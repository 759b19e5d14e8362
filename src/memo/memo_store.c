/* memo_store.c : the memo's directory -- entries, ledger, eviction, and the
 * in-memory tier.
 *
 * Layout of a memo directory (created 0700; every file 0600):
 *
 *   ledger                  48 bytes: "WEFTLEDG", version 2, bytes, entries,
 *                           and the packs' epoch (memo_pack.c)
 *   packs/                  entries of at most pack_max bytes, appended to
 *                           64 packs with shared hash indexes (memo_pack.c
 *                           has their design; the rest of this comment is
 *                           about entry files, and the ledger and eviction
 *                           that both kinds share)
 *   entries/ab/cd/<key>     one file per larger entry, <key> the 32 hex digits of
 *                           the key, ab and cd its first two bytes (two levels
 *                           of 256 directories, made as needed: ten million
 *                           entries are ~150 per directory)
 *   tmp/<host>.<pid>.<n>    entries being written
 *
 * Writing: the entry is written to tmp/, (optionally fsync'd,) then renamed
 * over entries/ab/cd/<key> while the ledger lock is held. rename(2) is
 * atomic, so a reader opens the old file, the new one, or none, never a
 * part; two writers of one key rename whole files of the same content, and
 * the last rename wins. The temporary file is outside the lock, so the lock
 * is held for a stat, a rename and a 32-byte write.
 *
 * The ledger lock is flock(2) on the ledger file (across processes and, on
 * a shared file system, ranks; NFS emulates it with byte-range locks) plus
 * a mutex (flock is per open file, so threads of one handle share it). A
 * handle used in a forked child reopens the ledger first, so parent and
 * child do not share one lock. Lock order: tier mutex never held with it.
 *
 * Accounting: the ledger counts the bytes and entries of entries/. A store
 * adds its file's size (less the size of a file it replaces) *before* its
 * rename, so a writer killed between the two leaves the ledger too high,
 * never too low: the bound is never exceeded because of a crash. Every
 * eviction pass recounts the directory exactly and rewrites the ledger, as
 * does weft_memo_verify, so an over-count heals at the next pass.
 *
 * Eviction: a store that takes the ledger over the bound lists every entry
 * (one fstatat each), sorts them by last use and removes the oldest until
 * the directory holds at most low_water * bound. Last use is the file's
 * mtime, which the memo itself sets: at the store, and on a hit when it is
 * more than a second old (so LRU is exact to a second, and a burst of hits
 * on one entry costs one futimens). The file system's atime is never used.
 * A pass costs O(entries) but frees (1 - low_water) of the bound, so over
 * many stores of similar size it is O(1) amortized per store (at 0.8, one
 * pass per ~n/4 stores of n entries).
 *
 * Readers take no lock: open, read, check. A corrupt entry (bad header or
 * checksum, wrong size, other format version, a key that is not its name)
 * is removed under the lock, only if the name still holds that very file
 * (same inode), so a good entry renamed in meanwhile is never removed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "memo/memo_internal.h"
#include "memo/memo_pack.h"
#include "memo/memo_store.h"

#define LEDGER_MAGIC "WEFTLEDG"
#define LEDGER_SIZE 48
#define LEDGER_VERSION 2
#define LEDGER_EPOCH 32 /* the packs' epoch (memo_pack.c), a native u64 */
#define LEDGER_FILES 40 /* entry files (not packed), a native u64, read lock-free */
#define PACK_MAX_DEFAULT 4096
#define PACK_MAX_LIMIT WEFT__PACK_MAX_REC
#define STALE_TMP_NS (24ull * 3600 * 1000000000ull)
#define TOUCH_NS 1000000000ull
#define MAX_RAW ((size_t)1 << 46)

typedef struct tier_node {
    weft__memo_key key;
    struct tier_node *hnext;       /* hash chain */
    struct tier_node *prev, *next; /* LRU list: head = most recent */
    size_t len;
    unsigned char data[];
} tier_node;

struct weft_memo {
    char *root;
    size_t root_len;
    char *version;
    uint64_t bound, low_bytes;
    size_t compress_min;
    int level;
    bool fsync;
    size_t pack_max; /* records (header + payload) of at most this many bytes are packed */
    char host[64];
    weft__packs *packs;

    pthread_mutex_t mu; /* with the flock: the ledger lock */
    int ledger_fd;
    int entries_fd;          /* root/entries, for openat: a hit resolves ab/cd/<key> only */
    uint64_t fork_gen;       /* fork generation that opened ledger_fd */
    unsigned char *ledger_m; /* the ledger, mapped shared (kept across fork) */

    _Atomic uint64_t hits, memory_hits, misses, stores, evictions, corrupt, store_errors;
    _Atomic uint64_t tmp_seq;

    /* in-memory tier */
    size_t tier_cap, tier_bytes, tier_count;
    pthread_mutex_t tier_mu;
    tier_node **buckets;
    size_t nbuckets;
    tier_node *head, *tail;
};

/* ---- paths ------------------------------------------------------------------------ */

#define PATH_ENTRY_TAIL (sizeof "/entries/ab/cd/" - 1 + 32 + 1)

/* root/entries/ab/cd/<hex> into p (room: root_len + PATH_ENTRY_TAIL + 1) */
static void entry_path(const weft_memo *m, const weft__memo_key *k, char *p)
{
    char hex[33];
    weft__memo_key_hex(k, hex);
    memcpy(p, m->root, m->root_len);
    char *q = p + m->root_len;
    memcpy(q, "/entries/", 9);
    q += 9;
    q[0] = hex[0], q[1] = hex[1], q[2] = '/', q[3] = hex[2], q[4] = hex[3], q[5] = '/';
    memcpy(q + 6, hex, 33);
}

static int sys_err(int e, const char *what, const char *path)
{
    if (e == ENOSPC || e == EDQUOT)
        return weft__err(WEFT_ENOSPC, "weft_memo: %s %s: no space left on the device", what, path);
    return weft__err(-e, "weft_memo: %s %s: %s", what, path, strerror(e));
}

/* ---- the ledger lock ------------------------------------------------------------- */

typedef struct ledger {
    uint64_t bytes, entries;
} ledger;

/* Bumped in every child at fork: a handle used in a child reopens its
 * ledger file (flock belongs to an open file, which a fork shares). */
static _Atomic uint64_t fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static _Atomic long my_pid; /* getpid(), kept current by on_fork_child */

static void on_fork_child(void)
{
    atomic_fetch_add_explicit(&fork_gen, 1, memory_order_relaxed);
    atomic_store_explicit(&my_pid, (long)getpid(), memory_order_relaxed);
}

static void install_atfork(void)
{
    atomic_store_explicit(&my_pid, (long)getpid(), memory_order_relaxed);
    pthread_atfork(NULL, NULL, on_fork_child);
}

static int ledger_open(weft_memo *m)
{
    char p[m->root_len + 16];
    snprintf(p, sizeof p, "%s/ledger", m->root);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return sys_err(errno, "cannot open", p);
    m->ledger_fd = fd;
    m->fork_gen = atomic_load_explicit(&fork_gen, memory_order_relaxed);
    return 0;
}

/* Under the lock, once: the ledger at least LEDGER_SIZE bytes, mapped. */
static int ledger_map(weft_memo *m)
{
    struct stat st;
    if (fstat(m->ledger_fd, &st) != 0) return sys_err(errno, "cannot stat the ledger of", m->root);
    if (st.st_size < LEDGER_SIZE && ftruncate(m->ledger_fd, LEDGER_SIZE) != 0)
        return sys_err(errno, "cannot size the ledger of", m->root);
    void *p = mmap(NULL, LEDGER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m->ledger_fd, 0);
    if (p == MAP_FAILED) return sys_err(errno, "cannot map the ledger of", m->root);
    m->ledger_m = p;
    return 0;
}

static int lock(weft_memo *m)
{
    pthread_mutex_lock(&m->mu);
    if (m->fork_gen != atomic_load_explicit(&fork_gen, memory_order_relaxed)) {
        /* a forked child: its own open file, its own lock */
        close(m->ledger_fd);
        int rc = ledger_open(m);
        if (rc) {
            m->ledger_fd = -1;
            pthread_mutex_unlock(&m->mu);
            return rc;
        }
    }
    if (m->ledger_fd < 0) {
        pthread_mutex_unlock(&m->mu);
        return weft__err(WEFT_EINVAL, "weft_memo: the ledger could not be reopened");
    }
    while (flock(m->ledger_fd, LOCK_EX) != 0) {
        if (errno == EINTR) continue;
        int e = errno;
        pthread_mutex_unlock(&m->mu);
        return sys_err(e, "cannot lock the ledger of", m->root);
    }
    return 0;
}

static void unlock(weft_memo *m)
{
    flock(m->ledger_fd, LOCK_UN);
    pthread_mutex_unlock(&m->mu);
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Under the lock. @return 0, or 1 when the ledger is new or unreadable. */
static int ledger_read(weft_memo *m, ledger *l)
{
    const unsigned char *b = m->ledger_m;
    l->bytes = l->entries = 0;
    if (memcmp(b, LEDGER_MAGIC, 8) != 0 || get64(b + 8) != LEDGER_VERSION) return 1;
    l->bytes = get64(b + 16);
    l->entries = get64(b + 24);
    return 0;
}

static void ledger_write(weft_memo *m, const ledger *l)
{
    unsigned char *b = m->ledger_m;
    put64(b + 16, l->bytes);
    put64(b + 24, l->entries);
    put64(b + 8, LEDGER_VERSION);
    memcpy(b, LEDGER_MAGIC, 8);
}

/* The number of entry files (entries/), kept in the ledger under the lock
 * and read without it: when there are none, a lookup that misses the packs
 * and a packed store need not look for a file (no system call). A reader
 * racing a store of the first file may miss it: a miss, as any lookup that
 * races a store. */
static uint64_t files_now(const weft_memo *m)
{
    return __atomic_load_n((const uint64_t *)(const void *)(m->ledger_m + LEDGER_FILES),
                           __ATOMIC_ACQUIRE);
}

static void files_set(weft_memo *m, uint64_t n)
{
    __atomic_store_n((uint64_t *)(void *)(m->ledger_m + LEDGER_FILES), n, __ATOMIC_RELEASE);
}

static void files_add(weft_memo *m, int64_t d)
{
    uint64_t n = files_now(m);
    files_set(m, d < 0 && (uint64_t)-d > n ? 0 : (uint64_t)((int64_t)n + d));
}

/* Under the lock: the ledger plus a change (never below 0). */
static ledger ledger_add(weft_memo *m, int64_t db, int64_t de)
{
    ledger l;
    ledger_read(m, &l);
    l.bytes = db < 0 && (uint64_t)-db > l.bytes ? 0 : (uint64_t)((int64_t)l.bytes + db);
    l.entries = de < 0 && (uint64_t)-de > l.entries ? 0 : (uint64_t)((int64_t)l.entries + de);
    ledger_write(m, &l);
    return l;
}

/* ---- listing the entries --------------------------------------------------------------- */

typedef struct item {
    uint64_t mtime_ns;
    uint64_t size;
    weft__memo_key key;
    bool packed;
    char rel[6 + 33]; /* files: "ab/cd/<hex>" */
} item;

typedef struct listing {
    item *v;
    size_t n, cap;
    uint64_t bytes;
} listing;

static void hex_key(const char *hex, weft__memo_key *k)
{
    for (int j = 0; j < 16; j++) {
        unsigned hi = (unsigned)(hex[2 * j] <= '9' ? hex[2 * j] - '0' : hex[2 * j] - 'a' + 10);
        unsigned lo =
            (unsigned)(hex[2 * j + 1] <= '9' ? hex[2 * j + 1] - '0' : hex[2 * j + 1] - 'a' + 10);
        k->b[j] = (uint8_t)(hi << 4 | lo);
    }
}

static int listing_grow(listing *L)
{
    if (L->n < L->cap) return 0;
    size_t cap = L->cap ? 2 * L->cap : 1024;
    item *v = realloc(L->v, cap * sizeof *v);
    if (!v) return weft__err(WEFT_ENOMEM, "weft_memo: out of memory listing entries");
    L->v = v;
    L->cap = cap;
    return 0;
}

static bool is_hex_name(const char *s, size_t n)
{
    size_t i = 0;
    for (; s[i] && i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return i == n && s[i] == '\0';
}

/* Lists entries/: counts and sums them, and with `keep` lists each (path,
 * size, last use). @return 0 or a negated errno / WEFT_ENOMEM. */
static int list_entries(weft_memo *m, listing *L, bool keep)
{
    char p[m->root_len + 64];
    snprintf(p, sizeof p, "%s/entries", m->root);
    DIR *d1 = opendir(p);
    if (!d1) return errno == ENOENT ? 0 : sys_err(errno, "cannot list", p);
    int rc = 0;
    struct dirent *e1;
    while (!rc && (e1 = readdir(d1))) {
        if (!is_hex_name(e1->d_name, 2)) continue;
        snprintf(p, sizeof p, "%s/entries/%s", m->root, e1->d_name);
        DIR *d2 = opendir(p);
        if (!d2) continue;
        struct dirent *e2;
        while (!rc && (e2 = readdir(d2))) {
            if (!is_hex_name(e2->d_name, 2)) continue;
            snprintf(p, sizeof p, "%s/entries/%s/%s", m->root, e1->d_name, e2->d_name);
            DIR *d3 = opendir(p);
            if (!d3) continue;
            int dfd = dirfd(d3);
            struct dirent *e3;
            while (!rc && (e3 = readdir(d3))) {
                if (!is_hex_name(e3->d_name, 32)) continue;
                struct stat st;
                if (fstatat(dfd, e3->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
                    continue;
                L->bytes += (uint64_t)st.st_size;
                if (!keep) {
                    L->n++;
                    continue;
                }
                if ((rc = listing_grow(L))) break;
                item *it = &L->v[L->n++];
                it->packed = false;
                hex_key(e3->d_name, &it->key);
                it->mtime_ns =
                    (uint64_t)st.st_mtim.tv_sec * 1000000000ull + (uint64_t)st.st_mtim.tv_nsec;
                it->size = (uint64_t)st.st_size;
                /* names checked above: 2, 2 and 32 hex digits */
                memcpy(it->rel, e1->d_name, 2);
                it->rel[2] = '/';
                memcpy(it->rel + 3, e2->d_name, 2);
                it->rel[5] = '/';
                memcpy(it->rel + 6, e3->d_name, 33);
            }
            closedir(d3);
        }
        closedir(d2);
    }
    closedir(d1);
    return rc;
}

static int by_age(const void *a, const void *b)
{
    const item *x = a, *y = b;
    if (x->mtime_ns != y->mtime_ns) return x->mtime_ns < y->mtime_ns ? -1 : 1;
    if (x->packed != y->packed) return x->packed ? 1 : -1;
    return memcmp(x->key.b, y->key.b, 16);
}

static int list_packed(void *arg, const weft__pack_item *it)
{
    listing *L = arg;
    int rc = listing_grow(L);
    if (rc) return rc;
    item *d = &L->v[L->n++];
    d->mtime_ns = (uint64_t)it->last_use * 1000000000ull;
    d->size = it->len;
    d->key = it->key;
    d->packed = true;
    d->rel[0] = '\0';
    L->bytes += it->len;
    return 0;
}

/* Under the lock: the ledger recounted from the directory (entry files and
 * pack files, packs compacted and settled first). */
static int recount(weft_memo *m, ledger *l)
{
    uint64_t pb, pe;
    int rc = weft__packs_settle(m->packs, &pb, &pe);
    if (rc) return rc;
    listing C = {0};
    rc = list_entries(m, &C, false);
    if (rc) return rc;
    l->bytes = C.bytes + pb;
    l->entries = C.n + pe;
    ledger_write(m, l);
    files_set(m, C.n);
    return 0;
}

/* Under the lock: lists every entry (files and packed), removes least
 * recently used ones (never `keep`, the one just stored) until at most
 * `target` bytes of entries remain, compacts the packs and recounts. */
static int evict_to(weft_memo *m, uint64_t target, const weft__memo_key *keep)
{
    listing L = {0};
    int rc = list_entries(m, &L, true);
    uint64_t fbytes = L.bytes, fentries = L.n; /* the entry files */
    if (!rc) rc = weft__packs_each(m->packs, list_packed, &L);
    if (rc) {
        free(L.v);
        return rc;
    }
    ledger l = {L.bytes, L.n};
    if (l.bytes > target) {
        qsort(L.v, L.n, sizeof *L.v, by_age);
        char p[m->root_len + PATH_ENTRY_TAIL + 8];
        for (size_t i = 0; i < L.n && l.bytes > target; i++) {
            if (keep && memcmp(L.v[i].key.b, keep->b, 16) == 0) continue;
            if (L.v[i].packed) {
                if (weft__packs_drop(m->packs, &L.v[i].key) != 0) continue;
                l.bytes -= L.v[i].size;
                l.entries--;
                atomic_fetch_add_explicit(&m->evictions, 1, memory_order_relaxed);
                continue;
            }
            snprintf(p, sizeof p, "%s/entries/%s", m->root, L.v[i].rel);
            if (unlink(p) != 0) continue;
            l.bytes -= L.v[i].size;
            l.entries--;
            fbytes -= L.v[i].size;
            fentries--;
            atomic_fetch_add_explicit(&m->evictions, 1, memory_order_relaxed);
            /* drop directories left empty, so a pass lists no more directories
             * than entries (a store recreates them, under this same lock) */
            char *s1 = strrchr(p, '/');
            *s1 = '\0';
            if (rmdir(p) == 0) {
                *strrchr(p, '/') = '\0';
                rmdir(p);
            }
        }
    }
    free(L.v);
    uint64_t pb, pe;
    rc = weft__packs_settle(m->packs, &pb, &pe);
    if (rc) return rc;
    l = (ledger){fbytes + pb, fentries + pe};
    ledger_write(m, &l);
    files_set(m, fentries);
    return 0;
}

/* ---- in-memory tier ----------------------------------------------------------------- */

static size_t tier_hash(const weft_memo *m, const weft__memo_key *k)
{
    uint64_t h;
    memcpy(&h, k->b, 8);
    return (size_t)h & (m->nbuckets - 1);
}

static void tier_unlink(weft_memo *m, tier_node *n)
{
    tier_node **pp = &m->buckets[tier_hash(m, &n->key)];
    while (*pp != n) pp = &(*pp)->hnext;
    *pp = n->hnext;
    if (n->prev)
        n->prev->next = n->next;
    else
        m->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        m->tail = n->prev;
    m->tier_bytes -= n->len;
    m->tier_count--;
}

static tier_node *tier_find(weft_memo *m, const weft__memo_key *k)
{
    for (tier_node *n = m->buckets[tier_hash(m, k)]; n; n = n->hnext)
        if (memcmp(n->key.b, k->b, 16) == 0) return n;
    return NULL;
}

static void tier_front(weft_memo *m, tier_node *n)
{
    if (m->head == n) return;
    n->prev->next = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        m->tail = n->prev;
    n->prev = NULL;
    n->next = m->head;
    m->head->prev = n;
    m->head = n;
}

static bool tier_get(weft_memo *m, const weft__memo_key *k, void **out, size_t *len)
{
    if (!m->tier_cap) return false;
    pthread_mutex_lock(&m->tier_mu);
    tier_node *n = tier_find(m, k);
    bool hit = false;
    if (n) {
        void *o = malloc(n->len ? n->len : 1);
        if (o) {
            memcpy(o, n->data, n->len);
            *out = o;
            *len = n->len;
            tier_front(m, n);
            hit = true;
        }
    }
    pthread_mutex_unlock(&m->tier_mu);
    return hit;
}

static void tier_grow(weft_memo *m)
{
    size_t nb = m->nbuckets ? m->nbuckets * 2 : 64;
    tier_node **b = calloc(nb, sizeof *b);
    if (!b) return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        tier_node *n = m->buckets[i];
        while (n) {
            tier_node *next = n->hnext;
            uint64_t h;
            memcpy(&h, n->key.b, 8);
            size_t j = (size_t)h & (nb - 1);
            n->hnext = b[j];
            b[j] = n;
            n = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
}

static void tier_put(weft_memo *m, const weft__memo_key *k, const void *data, size_t len)
{
    if (!m->tier_cap || len > m->tier_cap / 2) return;
    tier_node *n = malloc(sizeof *n + len);
    if (!n) return;
    n->key = *k;
    n->len = len;
    if (len) memcpy(n->data, data, len);
    pthread_mutex_lock(&m->tier_mu);
    tier_node *old = tier_find(m, k);
    if (old) {
        tier_unlink(m, old);
        free(old);
    }
    while (m->tier_bytes + len > m->tier_cap && m->tail) {
        tier_node *t = m->tail;
        tier_unlink(m, t);
        free(t);
    }
    if (m->tier_count + 1 > m->nbuckets) tier_grow(m);
    size_t j = tier_hash(m, k);
    n->hnext = m->buckets[j];
    m->buckets[j] = n;
    n->prev = NULL;
    n->next = m->head;
    if (m->head) m->head->prev = n;
    m->head = n;
    if (!m->tail) m->tail = n;
    m->tier_bytes += len;
    m->tier_count++;
    pthread_mutex_unlock(&m->tier_mu);
}

static void tier_drop(weft_memo *m, const weft__memo_key *k)
{
    if (!m->tier_cap) return;
    pthread_mutex_lock(&m->tier_mu);
    tier_node *n = k ? tier_find(m, k) : NULL;
    if (n) {
        tier_unlink(m, n);
        free(n);
    } else if (!k) {
        while (m->tail) {
            tier_node *t = m->tail;
            tier_unlink(m, t);
            free(t);
        }
    }
    pthread_mutex_unlock(&m->tier_mu);
}

/* ---- open / close --------------------------------------------------------------------- */

static int mkdir_0700(const char *p)
{
    if (mkdir(p, 0700) == 0) return 0;
    if (errno != EEXIST) return sys_err(errno, "cannot create the directory", p);
    struct stat st;
    if (stat(p, &st) != 0) return sys_err(errno, "cannot stat", p);
    if (!S_ISDIR(st.st_mode))
        return weft__err(WEFT_ENOTDIR, "weft_memo: %s exists and is not a directory", p);
    return 0;
}

/* Removes temporary files of writers that died (same host, pid gone) or
 * that are a day old. */
static void clean_tmp(weft_memo *m)
{
    char p[m->root_len + 8];
    snprintf(p, sizeof p, "%s/tmp", m->root);
    DIR *d = opendir(p);
    if (!d) return;
    int dfd = dirfd(d);
    uint64_t now = (uint64_t)time(NULL) * 1000000000ull;
    size_t hl = strlen(m->host);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        bool dead = false;
        if (strncmp(e->d_name, m->host, hl) == 0 && e->d_name[hl] == '.') {
            long pid = strtol(e->d_name + hl + 1, NULL, 10);
            dead = pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
        }
        struct stat st;
        if (!dead && fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
            dead = (uint64_t)st.st_mtim.tv_sec * 1000000000ull + STALE_TMP_NS < now;
        if (dead) unlinkat(dfd, e->d_name, 0);
    }
    closedir(d);
}

/* A fresh temporary path tmp/<host>.<pid>.<n> (clean_tmp knows the form). */
static void tmp_name(void *ctx, char *buf, size_t n)
{
    weft_memo *m = ctx;
    snprintf(buf, n, "%s/tmp/%s.%ld.%llu", m->root, m->host,
             atomic_load_explicit(&my_pid, memory_order_relaxed),
             (unsigned long long)atomic_fetch_add_explicit(&m->tmp_seq, 1, memory_order_relaxed));
}

int weft__memo_store_open(const char *path, uint64_t bound, const weft_memo_options *opts,
                          weft_memo **out)
{
    static const weft_memo_options defaults;
    if (out) *out = NULL;
    if (!path || !*path || !out)
        return weft__err(WEFT_EINVAL, "weft_memo_open: %s", !out ? "out is NULL" : "no path");
    if (!opts) opts = &defaults;
    double lw = opts->low_water == 0 ? 0.8 : opts->low_water;
    if (!(lw > 0 && lw <= 1))
        return weft__err(WEFT_EINVAL, "weft_memo_open: low_water %g is not in (0, 1]",
                         opts->low_water);
    if (opts->compress_level < 0 || opts->compress_level > 19)
        return weft__err(WEFT_EINVAL, "weft_memo_open: compress_level %d is not in 1..19",
                         opts->compress_level);
    if (opts->pack_max > PACK_MAX_LIMIT)
        return weft__err(WEFT_EINVAL, "weft_memo_open: pack_max %zu is over %d", opts->pack_max,
                         PACK_MAX_LIMIT);
    size_t rl = strlen(path);
    while (rl > 1 && path[rl - 1] == '/') rl--;
    if (rl > 3000) return weft__err(WEFT_EINVAL, "weft_memo_open: the path is too long");
    weft_memo *m = calloc(1, sizeof *m);
    if (!m) return weft__err(WEFT_ENOMEM, "weft_memo_open: out of memory");
    m->root = strndup(path, rl);
    m->version = strdup(opts->version ? opts->version : "");
    if (!m->root || !m->version) {
        free(m->root);
        free(m->version);
        free(m);
        return weft__err(WEFT_ENOMEM, "weft_memo_open: out of memory");
    }
    m->root_len = rl;
    m->bound = bound;
    m->low_bytes = (uint64_t)((double)bound * lw);
    m->compress_min = opts->compress_min ? opts->compress_min : 4096;
    m->level = opts->compress_level ? opts->compress_level : 3;
    m->fsync = opts->fsync;
    m->pack_max = opts->pack_max ? opts->pack_max : PACK_MAX_DEFAULT;
    m->tier_cap = opts->memory_bytes;
    m->ledger_fd = -1;
    m->entries_fd = -1;
    if (gethostname(m->host, sizeof m->host - 1) != 0 || !m->host[0]) strcpy(m->host, "host");
    for (char *c = m->host; *c; c++)
        if (*c == '/' || *c == '.') *c = '_';
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->tier_mu, NULL);
    char p[rl + 16];
    int rc = mkdir_0700(m->root);
    if (!rc) {
        snprintf(p, sizeof p, "%s/entries", m->root);
        rc = mkdir_0700(p);
    }
    if (!rc) {
        m->entries_fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (m->entries_fd < 0) rc = sys_err(errno, "cannot open", p);
    }
    if (!rc) {
        snprintf(p, sizeof p, "%s/tmp", m->root);
        rc = mkdir_0700(p);
    }
    if (!rc && m->tier_cap) {
        tier_grow(m);
        if (!m->buckets) rc = weft__err(WEFT_ENOMEM, "weft_memo_open: out of memory");
    }
    pthread_once(&atfork_once, install_atfork);
    if (!rc) rc = ledger_open(m);
    if (!rc) rc = lock(m);
    if (!rc) {
        rc = ledger_map(m);
        if (rc) {
            unlock(m);
            goto failed;
        }
        rc = weft__packs_open(m->root, m->fsync, (uint64_t *)(void *)(m->ledger_m + LEDGER_EPOCH),
                              tmp_name, m, &m->packs);
        ledger l;
        if (!rc && ledger_read(m, &l) != 0) rc = recount(m, &l);
        unlock(m);
    }
failed:
    if (rc) {
        weft__memo_store_close(m);
        return rc;
    }
    clean_tmp(m);
    *out = m;
    return 0;
}

int weft__memo_store_close(weft_memo *m)
{
    if (!m) return 0;
    tier_drop(m, NULL);
    free(m->buckets);
    weft__packs_close(m->packs);
    if (m->ledger_m) munmap(m->ledger_m, LEDGER_SIZE);
    if (m->ledger_fd >= 0) close(m->ledger_fd);
    if (m->entries_fd >= 0) close(m->entries_fd);
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->tier_mu);
    free(m->root);
    free(m->version);
    free(m);
    return 0;
}

const char *weft__memo_version(const weft_memo *m)
{
    return m->version;
}

void weft__memo_note_store_error(weft_memo *m)
{
    atomic_fetch_add_explicit(&m->store_errors, 1, memory_order_relaxed);
}

/* ---- get ------------------------------------------------------------------------------- */

/* Removes the corrupt file at p if it is still the file `st` described. */
static void remove_corrupt(weft_memo *m, const char *p, const struct stat *st)
{
    atomic_fetch_add_explicit(&m->corrupt, 1, memory_order_relaxed);
    if (lock(m) != 0) return;
    struct stat now;
    if (lstat(p, &now) == 0 && now.st_ino == st->st_ino && now.st_dev == st->st_dev &&
        unlink(p) == 0) {
        ledger l;
        ledger_read(m, &l);
        l.bytes = l.bytes > (uint64_t)now.st_size ? l.bytes - (uint64_t)now.st_size : 0;
        l.entries = l.entries ? l.entries - 1 : 0;
        ledger_write(m, &l);
        files_add(m, -1);
    }
    unlock(m);
}

/* Reads and checks the entry file at p. @return 0 (a hit), WEFT_ENOENT
 * (none, or corrupt and removed), or another error. */
static int read_entry(weft_memo *m, const weft__memo_key *k, const char *p, bool touch, void **out,
                      size_t *out_len)
{
    int fd = openat(m->entries_fd, p + m->root_len + 9, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) return WEFT_ENOENT;
        return sys_err(errno, "cannot open", p);
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return sys_err(e, "cannot stat", p);
    }
    size_t size = (size_t)st.st_size;
    if (size < WEFT__MEMO_HDR || !S_ISREG(st.st_mode)) {
        close(fd);
        remove_corrupt(m, p, &st);
        return WEFT_ENOENT;
    }
    unsigned char *buf = malloc(size);
    if (!buf) {
        close(fd);
        return weft__err(WEFT_ENOMEM, "weft_memo_get: out of memory for %zu bytes", size);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = pread(fd, buf + got, size - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    if (got == size && touch) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        uint64_t mt = (uint64_t)st.st_mtim.tv_sec * 1000000000ull + (uint64_t)st.st_mtim.tv_nsec;
        if (now > mt + TOUCH_NS) futimens(fd, NULL);
    }
    close(fd);
    int rc = got == size ? weft__memo_entry_read(buf, size, k, MAX_RAW, true, out, out_len)
                         : WEFT_EINVAL;
    if (*out != buf) free(buf);
    if (rc == WEFT_EINVAL) {
        remove_corrupt(m, p, &st);
        return WEFT_ENOENT;
    }
    if (rc) return weft__err(rc, "weft_memo_get: out of memory");
    return 0;
}

/* The packed entry of k: 0 (a hit), WEFT_ENOENT (none packed), 1 (it was
 * corrupt: removed), or another error. A record that does not check is
 * read again under the ledger lock (a writer of another process may have
 * been changing its slot) before it is called corrupt. */
static int read_packed(weft_memo *m, const weft__memo_key *k, bool touch, void **out,
                       size_t *out_len)
{
    void *buf;
    size_t len;
    int rc = weft__packs_read(m->packs, k, false, touch, &buf, &len);
    if (rc) return rc;
    rc = weft__memo_entry_read(buf, len, k, MAX_RAW, true, out, out_len);
    if (*out != buf) free(buf);
    if (rc != WEFT_EINVAL) return rc ? weft__err(rc, "weft_memo_get: out of memory") : 0;
    rc = lock(m);
    if (rc) return rc;
    rc = weft__packs_read(m->packs, k, false, false, &buf, &len);
    if (rc == 0) {
        rc = weft__memo_entry_read(buf, len, k, MAX_RAW, true, out, out_len);
        if (*out != buf) free(buf);
        if (rc == WEFT_EINVAL) {
            int64_t db, de;
            atomic_fetch_add_explicit(&m->corrupt, 1, memory_order_relaxed);
            if (weft__packs_remove(m->packs, k, &db, &de) == 0) ledger_add(m, db, de);
            rc = 1;
        } else if (rc) {
            rc = weft__err(rc, "weft_memo_get: out of memory");
        }
    }
    unlock(m);
    return rc;
}

int weft__memo_get_key(weft_memo *m, const weft__memo_key *k, void **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (tier_get(m, k, out, out_len)) {
        atomic_fetch_add_explicit(&m->hits, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&m->memory_hits, 1, memory_order_relaxed);
        return 0;
    }
    int rc = read_packed(m, k, true, out, out_len);
    if (rc == 1)
        rc = WEFT_ENOENT; /* corrupt: a miss */
    else if (rc == WEFT_ENOENT && files_now(m)) {
        char p[m->root_len + PATH_ENTRY_TAIL + 1];
        entry_path(m, k, p);
        rc = read_entry(m, k, p, true, out, out_len);
    }
    if (rc == 0) {
        atomic_fetch_add_explicit(&m->hits, 1, memory_order_relaxed);
        tier_put(m, k, *out, *out_len);
    } else if (rc == WEFT_ENOENT) {
        atomic_fetch_add_explicit(&m->misses, 1, memory_order_relaxed);
    }
    return rc;
}

/* ---- put ------------------------------------------------------------------------------- */

static int write_all(int fd, const struct iovec *iov0, int n)
{
    struct iovec iov[2];
    memcpy(iov, iov0, (size_t)n * sizeof *iov);
    int i = 0;
    while (i < n) {
        ssize_t w = writev(fd, iov + i, n - i);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (w == 0) return ENOSPC;
        size_t left = (size_t)w;
        while (i < n && left >= iov[i].iov_len) left -= iov[i++].iov_len;
        if (i < n) {
            iov[i].iov_base = (char *)iov[i].iov_base + left;
            iov[i].iov_len -= left;
        }
    }
    return 0;
}

/* Creates root/entries/ab and root/entries/ab/cd for entry path p (an
 * existing one that is not a directory fails the rename after). */
static int make_parents(weft_memo *m, const char *p)
{
    size_t base = m->root_len + 9; /* ".../entries/" */
    char d[m->root_len + 16];
    for (size_t at = base + 2; at <= base + 5; at += 3) {
        memcpy(d, p, at);
        d[at] = '\0';
        if (mkdir(d, 0700) != 0 && errno != EEXIST)
            return sys_err(errno, "cannot create the directory", d);
    }
    return 0;
}

static void fsync_dir_of(const char *p)
{
    char d[strlen(p) + 1];
    strcpy(d, p);
    char *s = strrchr(d, '/');
    if (!s) return;
    *s = '\0';
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Writes the entry (header + stored payload) and renames it into place. */
static int store_file(weft_memo *m, const weft__memo_key *k, uint32_t flags, const void *stored,
                      size_t stored_len, size_t out_len)
{
    uint64_t size = WEFT__MEMO_HDR + (uint64_t)stored_len;
    if (m->bound && size > m->bound)
        return weft__err(WEFT_EOVERFLOW,
                         "weft_memo_put: an entry of %llu bytes does not fit the bound of %llu",
                         (unsigned long long)size, (unsigned long long)m->bound);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    weft__memo_hdr h = {WEFT__MEMO_VERSION,
                        flags,
                        *k,
                        out_len,
                        stored_len,
                        0,
                        (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec};
    unsigned char hdr[WEFT__MEMO_HDR];
    weft__memo_hdr_encode(&h, stored, hdr);

    char tmp[m->root_len + sizeof m->host + 64];
    tmp_name(m, tmp, sizeof tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return sys_err(errno, "cannot create", tmp);
    struct iovec iov[2] = {{hdr, sizeof hdr}, {(void *)stored, stored_len}};
    int e = write_all(fd, iov, stored_len ? 2 : 1);
    if (!e && m->fsync && fsync(fd) != 0) e = errno;
    if (close(fd) != 0 && !e && errno != EINTR) e = errno;
    if (e) {
        unlink(tmp);
        return sys_err(e, "cannot write", tmp);
    }

    char p[m->root_len + PATH_ENTRY_TAIL + 1];
    entry_path(m, k, p);
    int rc = lock(m);
    if (rc) {
        unlink(tmp);
        return rc;
    }
    ledger l;
    ledger_read(m, &l);
    /* count first, rename after: a crash in between over-counts. The common
     * case (a new key) needs no stat: rename without replacing; a key that
     * exists is replaced knowing the size of what it replaces. */
    ledger l2 = {l.bytes + size, l.entries + 1};
    ledger_write(m, &l2);
    files_add(m, 1); /* counted first too: a crash over-counts (one more lookup), never under */
    bool replaces = false;
    int r = renameat2(AT_FDCWD, tmp, AT_FDCWD, p, RENAME_NOREPLACE);
    if (r != 0 && errno == ENOENT) {
        rc = make_parents(m, p);
        if (!rc) r = renameat2(AT_FDCWD, tmp, AT_FDCWD, p, RENAME_NOREPLACE);
    }
    if (!rc && r != 0 && (errno == EEXIST || errno == EINVAL || errno == ENOSYS)) {
        struct stat old;
        replaces = lstat(p, &old) == 0;
        uint64_t old_size = replaces ? (uint64_t)old.st_size : 0;
        uint64_t grown = l.bytes + size;
        l2 =
            (ledger){grown - (old_size < grown ? old_size : grown), l.entries + (replaces ? 0 : 1)};
        ledger_write(m, &l2);
        r = rename(tmp, p);
    }
    if (!rc && r != 0) rc = sys_err(errno, "cannot rename into", p);
    if (rc || replaces) files_add(m, -1);
    if (rc) {
        ledger_write(m, &l);
        unlock(m);
        unlink(tmp);
        return rc;
    }
    int64_t db, de; /* a packed entry of the same key (stored smaller) is replaced too */
    if (weft__packs_remove(m->packs, k, &db, &de) == 0) l2 = ledger_add(m, db, de);
    if (m->bound && l2.bytes > m->bound) evict_to(m, m->low_bytes, k);
    unlock(m);
    if (m->fsync) fsync_dir_of(p);
    return 0;
}

/* Appends the entry to its pack (see memo_pack.c). */
static int store_in_pack(weft_memo *m, const weft__memo_key *k, uint32_t flags, const void *stored,
                         size_t stored_len, size_t out_len)
{
    uint64_t size = WEFT__MEMO_HDR + (uint64_t)stored_len;
    if (m->bound && size > m->bound)
        return weft__err(WEFT_EOVERFLOW,
                         "weft_memo_put: an entry of %llu bytes does not fit the bound of %llu",
                         (unsigned long long)size, (unsigned long long)m->bound);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    weft__memo_hdr h = {WEFT__MEMO_VERSION,
                        flags,
                        *k,
                        out_len,
                        stored_len,
                        0,
                        (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec};
    unsigned char hdr[WEFT__MEMO_HDR];
    weft__memo_hdr_encode(&h, stored, hdr);
    int rc = lock(m);
    if (rc) return rc;
    /* count first (a crash after the append over-counts, never under) */
    ledger l;
    ledger_read(m, &l);
    ledger_add(m, (int64_t)size, 1);
    int64_t db, de;
    rc = weft__packs_put(m->packs, k, hdr, sizeof hdr, stored, stored_len, &db, &de);
    if (rc) {
        ledger_write(m, &l);
        unlock(m);
        return rc;
    }
    ledger_write(m, &l);
    ledger l2 = ledger_add(m, db, de);
    /* an entry file of the same key (stored larger, or by a handle that packs
     * less) is replaced too */
    char p[m->root_len + PATH_ENTRY_TAIL + 1];
    entry_path(m, k, p);
    struct stat old;
    if (files_now(m) &&
        fstatat(m->entries_fd, p + m->root_len + 9, &old, AT_SYMLINK_NOFOLLOW) == 0 &&
        unlinkat(m->entries_fd, p + m->root_len + 9, 0) == 0) {
        l2 = ledger_add(m, -(int64_t)old.st_size, -1);
        files_add(m, -1);
    }
    if (m->bound && l2.bytes > m->bound) evict_to(m, m->low_bytes, k);
    unlock(m);
    return 0;
}

int weft__memo_put_key(weft_memo *m, const weft__memo_key *k, const void *out, size_t out_len)
{
    const void *stored;
    size_t stored_len;
    uint32_t flags;
    bool heap;
    if (weft__memo_pack(out, out_len, m->compress_min, m->level, &stored, &stored_len, &flags,
                        &heap) != 0)
        return weft__err(WEFT_ENOMEM, "weft_memo_put: out of memory compressing %zu bytes",
                         out_len);
    int rc = WEFT__MEMO_HDR + stored_len <= m->pack_max
                 ? store_in_pack(m, k, flags, stored, stored_len, out_len)
                 : store_file(m, k, flags, stored, stored_len, out_len);
    if (heap) free((void *)stored);
    if (rc) return rc;
    atomic_fetch_add_explicit(&m->stores, 1, memory_order_relaxed);
    tier_put(m, k, out, out_len);
    return 0;
}

/* ---- the public calls that take (name, input) ------------------------------------------ */

static int check(weft_memo *m, const char *name, const void *in, size_t len, const char *fn)
{
    if (!m || !name || (!in && len))
        return weft__err(WEFT_EINVAL, "%s: %s is NULL", fn,
                         !m      ? "the memo"
                         : !name ? "the name"
                                 : "the input");
    return 0;
}

int weft_memo_get(weft_memo *m, const char *name, const void *in, size_t len, void **out,
                  size_t *out_len)
{
    if (out) *out = NULL;
    if (out_len) *out_len = 0;
    int rc = check(m, name, in, len, "weft_memo_get");
    if (rc) return rc;
    if (!out || !out_len) return weft__err(WEFT_EINVAL, "weft_memo_get: out is NULL");
    weft__memo_key k;
    weft__memo_key_of(name, m->version, in, len, &k);
    return weft__memo_get_key(m, &k, out, out_len);
}

int weft_memo_put(weft_memo *m, const char *name, const void *in, size_t len, const void *out,
                  size_t out_len)
{
    int rc = check(m, name, in, len, "weft_memo_put");
    if (rc) return rc;
    if (!out && out_len) return weft__err(WEFT_EINVAL, "weft_memo_put: out is NULL");
    weft__memo_key k;
    weft__memo_key_of(name, m->version, in, len, &k);
    return weft__memo_put_key(m, &k, out ? out : "", out_len);
}

bool weft_memo_contains(weft_memo *m, const char *name, const void *in, size_t len)
{
    if (check(m, name, in, len, "weft_memo_contains")) return false;
    weft__memo_key k;
    weft__memo_key_of(name, m->version, in, len, &k);
    void *rec;
    size_t rl;
    if (weft__packs_read(m->packs, &k, true, false, &rec, &rl) == 0) {
        weft__memo_hdr h;
        bool ok = rl >= WEFT__MEMO_HDR && weft__memo_hdr_decode(rec, WEFT__MEMO_HDR, &k, &h) == 0 &&
                  rl == WEFT__MEMO_HDR + h.stored_len;
        free(rec);
        if (ok) return true;
    }
    if (!files_now(m)) return false;
    char p[m->root_len + PATH_ENTRY_TAIL + 1];
    entry_path(m, &k, p);
    int fd = openat(m->entries_fd, p + m->root_len + 9, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    unsigned char hdr[WEFT__MEMO_HDR];
    struct stat st;
    bool ok = fstat(fd, &st) == 0 && pread(fd, hdr, sizeof hdr, 0) == (ssize_t)sizeof hdr;
    close(fd);
    weft__memo_hdr h;
    return ok && weft__memo_hdr_decode(hdr, sizeof hdr, &k, &h) == 0 &&
           (uint64_t)st.st_size == WEFT__MEMO_HDR + h.stored_len;
}

int weft_memo_remove(weft_memo *m, const char *name, const void *in, size_t len)
{
    int rc = check(m, name, in, len, "weft_memo_remove");
    if (rc) return rc;
    weft__memo_key k;
    weft__memo_key_of(name, m->version, in, len, &k);
    tier_drop(m, &k);
    char p[m->root_len + PATH_ENTRY_TAIL + 1];
    entry_path(m, &k, p);
    rc = lock(m);
    if (rc) return rc;
    int64_t db, de;
    int prc = weft__packs_remove(m->packs, &k, &db, &de);
    if (prc == 0) ledger_add(m, db, de);
    struct stat st;
    if (lstat(p, &st) != 0 || unlink(p) != 0) {
        int e = errno;
        unlock(m);
        if (e == ENOENT || e == ENOTDIR) return prc == 0 ? 0 : prc;
        return sys_err(e, "cannot remove", p);
    }
    ledger_add(m, -(int64_t)st.st_size, -1);
    files_add(m, -1);
    unlock(m);
    return 0;
}

int weft_memo_clear(weft_memo *m)
{
    if (!m) return weft__err(WEFT_EINVAL, "weft_memo_clear: the memo is NULL");
    tier_drop(m, NULL);
    int rc = lock(m);
    if (rc) return rc;
    /* an eviction to 0 bytes, without a kept entry, and not counted */
    uint64_t ev = atomic_load_explicit(&m->evictions, memory_order_relaxed);
    rc = evict_to(m, 0, NULL);
    atomic_store_explicit(&m->evictions, ev, memory_order_relaxed);
    unlock(m);
    return rc;
}

int weft_memo_stats_get(weft_memo *m, weft_memo_stats *st)
{
    if (!m || !st) return weft__err(WEFT_EINVAL, "weft_memo_stats_get: NULL argument");
    memset(st, 0, sizeof *st);
    st->hits = atomic_load_explicit(&m->hits, memory_order_relaxed);
    st->memory_hits = atomic_load_explicit(&m->memory_hits, memory_order_relaxed);
    st->misses = atomic_load_explicit(&m->misses, memory_order_relaxed);
    st->stores = atomic_load_explicit(&m->stores, memory_order_relaxed);
    st->evictions = atomic_load_explicit(&m->evictions, memory_order_relaxed);
    st->corrupt = atomic_load_explicit(&m->corrupt, memory_order_relaxed);
    st->store_errors = atomic_load_explicit(&m->store_errors, memory_order_relaxed);
    int rc = lock(m);
    if (rc) return rc;
    ledger l;
    ledger_read(m, &l);
    unlock(m);
    st->bytes = l.bytes;
    st->entries = l.entries;
    return 0;
}

static int check_record(const weft__memo_key *k, void *rec, size_t len)
{
    void *o = NULL;
    size_t ol;
    int rc = weft__memo_entry_read(rec, len, k, MAX_RAW, false, &o, &ol);
    free(o);
    return rc;
}

int weft_memo_verify(weft_memo *m, size_t *bad)
{
    if (bad) *bad = 0;
    if (!m) return weft__err(WEFT_EINVAL, "weft_memo_verify: the memo is NULL");
    listing L = {0};
    int rc = list_entries(m, &L, true);
    size_t nbad = 0;
    char p[m->root_len + PATH_ENTRY_TAIL + 8];
    for (size_t i = 0; !rc && i < L.n; i++) {
        weft__memo_key k = L.v[i].key;
        const char *hex = L.v[i].rel + 6;
        snprintf(p, sizeof p, "%s/entries/%s", m->root, L.v[i].rel);
        bool placed = L.v[i].rel[0] == hex[0] && L.v[i].rel[1] == hex[1] &&
                      L.v[i].rel[3] == hex[2] && L.v[i].rel[4] == hex[3];
        void *o = NULL;
        size_t ol = 0;
        int r = placed ? read_entry(m, &k, p, false, &o, &ol) : WEFT_ENOENT;
        free(o);
        if (r == WEFT_ENOENT) {
            if (!placed) unlink(p);
            nbad++;
        } else if (r) {
            rc = r;
        }
    }
    free(L.v);
    if (rc) return rc;
    rc = lock(m);
    if (rc) return rc;
    size_t pbad = 0;
    rc = weft__packs_check(m->packs, check_record, &pbad);
    if (pbad) {
        atomic_fetch_add_explicit(&m->corrupt, pbad, memory_order_relaxed);
        nbad += pbad;
    }
    ledger l;
    if (!rc) rc = recount(m, &l);
    unlock(m);
    if (bad) *bad = nbad;
    return rc;
}
