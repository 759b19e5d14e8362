/* ipc_internal.h : what the IPC objects (shm, channel, mpqueue) share.
 *
 * Every object is one memfd mapping that starts with a weft__ipc_hdr. The
 * owner creates the memfd (close-on-exec, mode 0600, sealed against
 * shrinking and growing, so that no process can make another's mapping
 * fault with SIGBUS), maps it, lays out the object, and publishes it by
 * storing the random key last (release). An attacher opens the owner's
 * /proc/<pid>/fd/<fd>, maps it, closes its own fd at once, and accepts the
 * mapping only if magic, kind, size and key (acquire) match the token:
 * a stale token then fails cleanly.
 *
 * Shared fields are plain integers accessed only with __atomic builtins
 * (as in src/sync); futex words are 32-bit and waited on without
 * FUTEX_PRIVATE_FLAG, since the processes map them at different addresses. */
#ifndef WEFT_IPC_INTERNAL_H
#define WEFT_IPC_INTERNAL_H

#include <string.h>

#include "internal.h"

#define WEFT__IPC_MAGIC 0x4f435049u /* "IPCO" */
#define WEFT__IPC_VERSION 1u
#define WEFT__IPC_HDR 64 /* bytes of weft__ipc_hdr, padded */

/* How long a waiter sleeps between checks that the other side still lives. */
#define WEFT__IPC_SLICE_NS 100000000ll /* 100 ms */
/* How long a waiter spins at most before it sleeps: a message from a
 * process on another core usually arrives within this, far cheaper than two
 * futex calls and a context switch each way. */
#define WEFT__IPC_SPIN_NS 20000u /* 20 us */

#define ipc_ld(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ipc_ld_relaxed(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define ipc_st(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ipc_st_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define ipc_ld_sc(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define ipc_st_sc(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)

/* Adaptive spinning, one per waiting side of a handle. Spinning only pays
 * when the partner runs on another CPU at the same time; on a loaded
 * machine it may share ours, and then every spin steals the time slice it
 * needs to answer. So a wait whose spin saw the event grows the budget
 * (doubling, up to WEFT__IPC_SPIN_NS), one that had to sleep halves it, down
 * to no spinning at all; every 32nd wait probes with the full budget, so
 * spinning comes back when the CPUs free up. Fields are relaxed atomics:
 * threads sharing a handle may race on them harmlessly. */
typedef struct weft__ipc_spin {
    uint32_t budget_ns;
    uint32_t waits;
} weft__ipc_spin;

static inline uint32_t weft__spin_budget(weft__ipc_spin *s)
{
    uint32_t w = __atomic_fetch_add(&s->waits, 1, __ATOMIC_RELAXED);
    if ((w & 31) == 0) return WEFT__IPC_SPIN_NS;
    return __atomic_load_n(&s->budget_ns, __ATOMIC_RELAXED);
}

static inline void weft__spin_result(weft__ipc_spin *s, bool hit)
{
    uint32_t b = __atomic_load_n(&s->budget_ns, __ATOMIC_RELAXED);
    if (hit)
        b = b >= WEFT__IPC_SPIN_NS / 2 ? WEFT__IPC_SPIN_NS : 2 * b + 500;
    else
        b = b < 1000 ? 0 : b / 2;
    __atomic_store_n(&s->budget_ns, b, __ATOMIC_RELAXED);
}

/* Spins while `still(arg)` for at most `budget` ns (and not past
 * `deadline`, 0 = none); true if the wait ended during the spin. */
static inline bool weft__spin_while(bool (*still)(void *), void *arg, uint32_t budget,
                                    uint64_t deadline)
{
    if (!budget) return !still(arg);
    uint64_t end = weft__now_ns() + budget;
    if (deadline && deadline < end) end = deadline;
    for (int i = 0;; i++) {
        if (!still(arg)) return true;
        weft__cpu_relax();
        if ((i & 63) == 63 && weft__now_ns() >= end) return false;
    }
}

/* At offset 0 of every mapping. */
typedef struct weft__ipc_hdr {
    uint32_t magic;
    uint32_t version;
    uint32_t kind;
    int32_t owner_pid;
    uint64_t size;        /* bytes of the whole mapping */
    uint64_t owner_start; /* the owner's start time (clock ticks since boot) */
    uint64_t key;         /* stored last by the owner (release) */
    int32_t owner_fd;     /* the owner's memfd, for tokens made from a local fd */
    uint32_t reserved;
} weft__ipc_hdr;

/* A process's view of one object. */
typedef struct weft__ipc_map {
    unsigned char *base;
    size_t size;
    int fd; /* the owner's memfd; -1 in an attached handle */
    weft_ipc_token token;
} weft__ipc_map;

static inline weft__ipc_hdr *weft__ipc_hdr_of(const weft__ipc_map *m)
{
    return (weft__ipc_hdr *)m->base;
}

/* Creates and maps a zero-filled object of `size` bytes (header included)
 * of `kind`; the caller lays it out, then calls weft__ipc_publish(). */
int weft__ipc_create(weft_ipc_kind kind, size_t size, const char *fn, weft__ipc_map *m);
/* Makes the object attachable (stores the key). */
void weft__ipc_publish(weft__ipc_map *m);
/* Maps the object of `kind` named by `tok`. */
int weft__ipc_attach(const weft_ipc_token *tok, weft_ipc_kind kind, const char *fn,
                     weft__ipc_map *m);
/* Unmaps and, for the owner, closes the fd. */
void weft__ipc_unmap(weft__ipc_map *m);
/* The start of an object's create or attach (fn names the call): a zeroed
 * handle of handle_size bytes whose weft__ipc_map is at map_off, with its
 * region of `kind` attached from tok (attach) or created with `size` bytes
 * (the caller lays it out, then calls weft__ipc_publish). 0 and the handle
 * in *out, or the error with nothing left behind. */
int weft__ipc_open(bool attach, const weft_ipc_token *tok, weft_ipc_kind kind, size_t size,
                   const char *fn, size_t handle_size, size_t map_off, void **out);
/* Undoes weft__ipc_open: unmaps the region, frees the handle. */
void weft__ipc_close(void *handle, size_t map_off);

/* The start time of the calling process (for liveness checks). */
uint64_t weft__ipc_self_start(void);
/* False if process `pid` is gone, a zombie, or a different process (its start
 * time is not `start`, when `start` is not 0). Costs a read of /proc. */
bool weft__ipc_proc_alive(int32_t pid, uint64_t start);

/* Circular copies for rings of `mask + 1` bytes (a power of two). */
static inline void weft__ring_put(unsigned char *data, uint64_t mask, uint64_t pos, const void *src,
                                  size_t n)
{
    size_t off = (size_t)(pos & mask), room = (size_t)(mask + 1) - off;
    if (n <= room) {
        memcpy(data + off, src, n);
    } else {
        memcpy(data + off, src, room);
        memcpy(data, (const unsigned char *)src + room, n - room);
    }
}

static inline void weft__ring_get(const unsigned char *data, uint64_t mask, uint64_t pos, void *dst,
                                  size_t n)
{
    size_t off = (size_t)(pos & mask), room = (size_t)(mask + 1) - off;
    if (n <= room) {
        memcpy(dst, data + off, n);
    } else {
        memcpy(dst, data + off, room);
        memcpy((unsigned char *)dst + room, data, n - room);
    }
}

/* Bytes a message of `len` takes in a ring: an 8-byte length, then the
 * payload rounded up to 8, so that a length never wraps. */
static inline uint64_t weft__ring_need(size_t len)
{
    return 8u + (((uint64_t)len + 7u) & ~(uint64_t)7u);
}

/* Rounds a ring capacity option (0 = `def`) to a power of two in
 * [4 KiB, 1 GiB]; returns 0 if out of range. */
/* An attached region's ring layout is sound: nrings rings of cap bytes (a
 * power of two, >= 4 KiB) from data_off fill exactly `size` bytes. */
static inline bool weft__ring_fits(uint64_t cap, uint64_t data_off, uint64_t nrings, size_t size)
{
    return cap >= 4096 && !(cap & (cap - 1)) && data_off + cap * nrings == size;
}

static inline uint64_t weft__ring_capacity(size_t opt, uint64_t def)
{
    uint64_t c = opt ? (uint64_t)opt : def;
    if (c > (1ull << 30)) return 0;
    uint64_t p = 4096;
    while (p < c) p <<= 1;
    return p;
}

#endif
