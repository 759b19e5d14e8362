/* region.c : the memfd mappings under every IPC object, their tokens, the
 * liveness check of the processes at the other end, and weft_shm.
 *
 * Why memfd and /proc/<pid>/fd. Workers of the processes backend are forked
 * from a fork server that was forked before the program created any IPC
 * object, so they cannot inherit it, and a shm_open name would be a file
 * that outlives a crashed owner. A memfd has no name in any file system;
 * opening /proc/<owner>/fd/<n> gives another process its own description of
 * the same memory, with the same permission check as ptrace's read mode
 * (same user, owner dumpable). The kernel frees the memory when the last fd
 * and the last mapping are gone: after a crash, nothing is left to clean.
 *
 * Stale tokens. The owner's fd number can be reused after it destroys the
 * object, and its pid after it exits. The attacher therefore checks that
 * the target is a weft memfd (readlink), a regular file of the token's size,
 * sealed against shrinking (so that it cannot SIGBUS us later), and that
 * the header carries the token's random key, stored last by the owner. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ipc/ipc_internal.h"

/* Largest object: far beyond any sane use, small enough that sizes never
 * overflow. */
#define MAX_MAPPING (1ull << 40)

static const char *kind_name(uint32_t kind)
{
    switch (kind) {
    case WEFT_IPC_SHM:
        return "shm";
    case WEFT_IPC_CHANNEL:
        return "channel";
    case WEFT_IPC_MPQUEUE:
        return "mpqueue";
    default:
        return "unknown";
    }
}

/* ---- processes ----------------------------------------------------------- */

/* Reads field 3 (state) and 22 (starttime) of /proc/<pid>/stat. Returns 1,
 * 0 if the process does not exist, -1 if it cannot tell. */
static int read_stat(int32_t pid, char *state, uint64_t *start)
{
    char path[64], buf[1024];
    if (pid <= 0) return 0;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT || errno == ESRCH ? 0 : -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    int e = errno;
    close(fd);
    if (n <= 0) return n == 0 || e == ESRCH ? 0 : -1;
    buf[n] = '\0';
    /* the command name (field 2) may hold spaces and parentheses: the
     * fields that follow start after its last ')' */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ') return -1;
    p += 2;
    *state = *p;
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p) return -1;
        p++;
    }
    *start = strtoull(p, NULL, 10);
    return 1;
}

static int32_t self_pid;
static uint64_t self_start;

uint64_t weft__ipc_self_start(void)
{
    /* cached per process: a fork()ed child has another pid and start */
    int32_t pid = (int32_t)getpid();
    if (__atomic_load_n(&self_pid, __ATOMIC_ACQUIRE) == pid)
        return __atomic_load_n(&self_start, __ATOMIC_RELAXED);
    char st;
    uint64_t start = 0;
    if (read_stat(pid, &st, &start) != 1) start = 0;
    __atomic_store_n(&self_start, start, __ATOMIC_RELAXED);
    __atomic_store_n(&self_pid, pid, __ATOMIC_RELEASE);
    return start;
}

bool weft__ipc_proc_alive(int32_t pid, uint64_t start)
{
    char st = '?';
    uint64_t s = 0;
    int r = read_stat(pid, &st, &s);
    if (r < 0) return true; /* cannot tell (out of fds?): do not declare a death */
    if (r == 0) return false;
    if (st == 'Z' || st == 'X' || st == 'x') return false; /* exited, not yet reaped */
    if (start != 0 && s != start) return false;            /* the pid was reused */
    return true;
}

/* ---- mappings ------------------------------------------------------------ */

static uint64_t random_key(void)
{
    uint64_t k = 0;
    if (getrandom(&k, sizeof k, GRND_NONBLOCK) != (ssize_t)sizeof k) {
        /* no entropy yet (early boot): mix what differs between objects */
        static uint64_t counter;
        uint64_t x = weft__now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&k ^
                     __atomic_add_fetch(&counter, 0x9e3779b97f4a7c15ull, __ATOMIC_RELAXED);
        k = weft__splitmix64(&x);
    }
    return k ? k : 1;
}

int weft__ipc_create(weft_ipc_kind kind, size_t size, const char *fn, weft__ipc_map *m)
{
    memset(m, 0, sizeof *m);
    m->fd = -1;
    if (size < WEFT__IPC_HDR || size > MAX_MAPPING)
        return weft__err(WEFT_EINVAL, "%s: %zu bytes is too large", fn, size);
    char name[32];
    snprintf(name, sizeof name, "weft-%s", kind_name(kind));
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return weft__err(WEFT_ENOMEM, "%s: memfd_create: %s", fn, strerror(errno));
    int rc = 0;
    const char *what = NULL;
    if (fchmod(fd, 0600) != 0) {
        what = "fchmod 0600";
    } else if (ftruncate(fd, (off_t)size) != 0) {
        what = "ftruncate";
    } else if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        what = "F_ADD_SEALS";
    }
    if (what) {
        rc = weft__err(WEFT_ENOMEM, "%s: %s of a %zu-byte memfd: %s", fn, what, size,
                       strerror(errno));
        close(fd);
        return rc;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        rc = weft__err(WEFT_ENOMEM, "%s: mmap of %zu bytes: %s", fn, size, strerror(errno));
        close(fd);
        return rc;
    }
    m->base = p;
    m->size = size;
    m->fd = fd;
    weft__ipc_hdr *h = weft__ipc_hdr_of(m);
    h->magic = WEFT__IPC_MAGIC;
    h->version = WEFT__IPC_VERSION;
    h->kind = (uint32_t)kind;
    h->owner_pid = (int32_t)getpid();
    h->size = size;
    h->owner_start = weft__ipc_self_start();
    h->owner_fd = fd;
    m->token.magic = WEFT_IPC_TOKEN_MAGIC;
    m->token.kind = (uint32_t)kind;
    m->token.pid = h->owner_pid;
    m->token.fd = fd;
    m->token.size = size;
    m->token.key = random_key();
    m->token.reserved = 0;
    return 0;
}

void weft__ipc_publish(weft__ipc_map *m)
{
    ipc_st(&weft__ipc_hdr_of(m)->key, m->token.key);
}

static int check_token(const weft_ipc_token *tok, weft_ipc_kind kind, const char *fn)
{
    if (!tok) return weft__err(WEFT_EINVAL, "%s: token is NULL", fn);
    if (tok->magic != WEFT_IPC_TOKEN_MAGIC)
        return weft__err(WEFT_EINVAL, "%s: not a weft IPC token (bad magic)", fn);
    if (tok->kind != (uint32_t)kind)
        return weft__err(WEFT_EINVAL, "%s: the token names a %s, not a %s", fn,
                         kind_name(tok->kind), kind_name(kind));
    if (tok->pid <= 0 || tok->fd < 0 || tok->size < WEFT__IPC_HDR || tok->size > MAX_MAPPING ||
        tok->key == 0)
        return weft__err(WEFT_EINVAL, "%s: malformed token (pid %d, fd %d, size %" PRIu64 ")", fn,
                         (int)tok->pid, (int)tok->fd, tok->size);
    return 0;
}

static int gone(const weft_ipc_token *tok, const char *fn, const char *why)
{
    return weft__err(WEFT_ENOENT,
                     "%s: the %s of process %d (fd %d) no longer exists (%s): destroyed, its "
                     "owner exited, or a stale token",
                     fn, kind_name(tok->kind), (int)tok->pid, (int)tok->fd, why);
}

/* Another user's or an undumpable owner's fd: /proc does not let us in. */
static int denied(const char *fn, const char *verb, const char *path)
{
    return weft__err(WEFT_EPERM,
                     "%s: cannot %s %s: %s (the owner is another user or is not dumpable; pass "
                     "the fd with SCM_RIGHTS and weft_ipc_token_local_fd)",
                     fn, verb, path, strerror(errno));
}

int weft__ipc_attach(const weft_ipc_token *tok, weft_ipc_kind kind, const char *fn,
                     weft__ipc_map *m)
{
    memset(m, 0, sizeof *m);
    m->fd = -1;
    int rc = check_token(tok, kind, fn);
    if (rc) return rc;

    char path[64], link[128];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)tok->pid, (int)tok->fd);
    /* A cheap first check before open(), which on a device or fifo could
     * have effects: the fd must be one of weft's memfds. */
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n < 0) {
        if (errno == EACCES || errno == EPERM) return denied(fn, "read", path);
        return gone(tok, fn, strerror(errno));
    }
    link[n] = '\0';
    if (strncmp(link, "/memfd:weft-", 12) != 0) return gone(tok, fn, "not a weft memfd");

    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        if (errno == EACCES || errno == EPERM) return denied(fn, "open", path);
        if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
            return weft__err(WEFT_ENOMEM, "%s: open %s: %s", fn, path, strerror(errno));
        return gone(tok, fn, strerror(errno));
    }
    struct stat st;
    int seals = fcntl(fd, F_GET_SEALS);
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != tok->size ||
        seals < 0 || !(seals & F_SEAL_SHRINK)) {
        close(fd);
        return gone(tok, fn, "another file now has that fd");
    }
    void *p = mmap(NULL, (size_t)tok->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps the memory; no fd stays open here */
    if (p == MAP_FAILED)
        return weft__err(WEFT_ENOMEM, "%s: mmap of %" PRIu64 " bytes: %s", fn, tok->size,
                         strerror(e));
    weft__ipc_hdr *h = p;
    if (ipc_ld(&h->key) != tok->key || h->magic != WEFT__IPC_MAGIC || h->kind != (uint32_t)kind ||
        h->size != tok->size || h->version != WEFT__IPC_VERSION) {
        munmap(p, (size_t)tok->size);
        return gone(tok, fn, "the key does not match");
    }
    m->base = p;
    m->size = (size_t)tok->size;
    m->token = *tok;
    /* the token names the owner's fd, whichever fd we opened */
    m->token.pid = h->owner_pid;
    m->token.fd = h->owner_fd;
    return 0;
}

void weft__ipc_unmap(weft__ipc_map *m)
{
    if (m->base) munmap(m->base, m->size);
    if (m->fd >= 0) close(m->fd);
    m->base = NULL;
    m->fd = -1;
}

/* ---- tokens -------------------------------------------------------------- */

int weft_ipc_token_format(const weft_ipc_token *t, char *buf, size_t len)
{
    if (!t || !buf) return weft__err(WEFT_EINVAL, "weft_ipc_token_format: NULL argument");
    int n =
        snprintf(buf, len, "weft-ipc:%" PRIu32 ":%" PRId32 ":%" PRId32 ":%" PRIu64 ":%016" PRIx64,
                 t->kind, t->pid, t->fd, t->size, t->key);
    if (n < 0 || (size_t)n >= len) {
        if (len) buf[0] = '\0';
        return weft__err(WEFT_EINVAL,
                         "weft_ipc_token_format: a buffer of %zu bytes is too small (use "
                         "WEFT_IPC_TOKEN_STRLEN)",
                         len);
    }
    return 0;
}

/* Reads an unsigned decimal (or hex) number up to `sep`; advances *s. */
static bool parse_num(const char **s, int base, char sep, uint64_t max, uint64_t *out)
{
    const char *p = *s;
    if (!((*p >= '0' && *p <= '9') ||
          (base == 16 && ((*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F')))))
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, base);
    if (errno || end == p || *end != sep || v > max) return false;
    *out = v;
    *s = sep ? end + 1 : end;
    return true;
}

int weft_ipc_token_parse(const char *s, weft_ipc_token *out)
{
    if (!s || !out) return weft__err(WEFT_EINVAL, "weft_ipc_token_parse: NULL argument");
    const char *p = s;
    uint64_t kind, pid, fd, size, key;
    if (strncmp(p, "weft-ipc:", 9) != 0) goto bad;
    p += 9;
    if (!parse_num(&p, 10, ':', UINT32_MAX, &kind) || !parse_num(&p, 10, ':', INT32_MAX, &pid) ||
        !parse_num(&p, 10, ':', INT32_MAX, &fd) || !parse_num(&p, 10, ':', UINT64_MAX, &size) ||
        !parse_num(&p, 16, '\0', UINT64_MAX, &key))
        goto bad;
    memset(out, 0, sizeof *out);
    out->magic = WEFT_IPC_TOKEN_MAGIC;
    out->kind = (uint32_t)kind;
    out->pid = (int32_t)pid;
    out->fd = (int32_t)fd;
    out->size = size;
    out->key = key;
    return 0;
bad:
    return weft__err(WEFT_EINVAL,
                     "weft_ipc_token_parse: \"%.80s\" is not a token "
                     "(weft-ipc:KIND:PID:FD:SIZE:KEY)",
                     s);
}

int weft_ipc_token_local_fd(weft_ipc_token *t, int fd)
{
    if (!t) return weft__err(WEFT_EINVAL, "weft_ipc_token_local_fd: token is NULL");
    if (fd < 0) return weft__err(WEFT_EINVAL, "weft_ipc_token_local_fd: fd %d", fd);
    t->pid = (int32_t)getpid();
    t->fd = fd;
    return 0;
}

/* ---- weft_shm ------------------------------------------------------------ */

/* Layout: the common header, the lock on its own cache line, the user's
 * bytes from offset 128 (64-byte aligned). */
#define SHM_LOCK_OFF 64
#define SHM_DATA_OFF 128

struct weft_shm {
    weft__ipc_map map;
};

static int shm_new(const weft__ipc_map *m, weft_shm **out, const char *fn)
{
    weft_shm *s = malloc(sizeof *s);
    if (!s) return weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
    s->map = *m;
    *out = s;
    return 0;
}

int weft__ipc_open(bool attach, const weft_ipc_token *tok, weft_ipc_kind kind, size_t size,
                   const char *fn, size_t handle_size, size_t map_off, void **out)
{
    unsigned char *h = calloc(1, handle_size);
    if (!h) return weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
    weft__ipc_map *m = (weft__ipc_map *)(h + map_off);
    int rc = attach ? weft__ipc_attach(tok, kind, fn, m) : weft__ipc_create(kind, size, fn, m);
    if (rc) {
        free(h);
        return rc;
    }
    *out = h;
    return 0;
}

void weft__ipc_close(void *handle, size_t map_off)
{
    weft__ipc_unmap((weft__ipc_map *)((unsigned char *)handle + map_off));
    free(handle);
}

int weft_shm_create(size_t size, weft_shm **out)
{
    if (out) *out = NULL;
    if (!out) return weft__err(WEFT_EINVAL, "weft_shm_create: out is NULL");
    if (size == 0) return weft__err(WEFT_EINVAL, "weft_shm_create: size is 0");
    if (size > MAX_MAPPING - SHM_DATA_OFF)
        return weft__err(WEFT_EINVAL, "weft_shm_create: %zu bytes is too large", size);
    weft__ipc_map m;
    int rc = weft__ipc_create(WEFT_IPC_SHM, SHM_DATA_OFF + size, "weft_shm_create", &m);
    if (rc) return rc;
    weft_lock_init((weft_lock *)(m.base + SHM_LOCK_OFF), WEFT_SYNC_PSHARED);
    rc = shm_new(&m, out, "weft_shm_create");
    if (rc) {
        weft__ipc_unmap(&m);
        return rc;
    }
    weft__ipc_publish(&m);
    return 0;
}

int weft_shm_attach(const weft_ipc_token *tok, weft_shm **out)
{
    if (out) *out = NULL;
    if (!out) return weft__err(WEFT_EINVAL, "weft_shm_attach: out is NULL");
    weft__ipc_map m;
    int rc = weft__ipc_attach(tok, WEFT_IPC_SHM, "weft_shm_attach", &m);
    if (rc) return rc;
    if (m.size <= SHM_DATA_OFF) {
        weft__ipc_unmap(&m);
        return weft__err(WEFT_EINVAL, "weft_shm_attach: malformed region");
    }
    rc = shm_new(&m, out, "weft_shm_attach");
    if (rc) weft__ipc_unmap(&m);
    return rc;
}

void *weft_shm_ptr(const weft_shm *s)
{
    return s ? s->map.base + SHM_DATA_OFF : NULL;
}

size_t weft_shm_size(const weft_shm *s)
{
    return s ? s->map.size - SHM_DATA_OFF : 0;
}

int weft_shm_token(const weft_shm *s, weft_ipc_token *out)
{
    if (!s || !out) return weft__err(WEFT_EINVAL, "weft_shm_token: NULL argument");
    *out = s->map.token;
    return 0;
}

weft_lock *weft_shm_lock(weft_shm *s)
{
    return s ? (weft_lock *)(s->map.base + SHM_LOCK_OFF) : NULL;
}

int weft_shm_destroy(weft_shm *s)
{
    if (!s) return 0;
    weft__ipc_unmap(&s->map);
    free(s);
    return 0;
}
