/* sync_internal.h : helpers shared by the synchronization primitives.
 *
 * The public structs (include/weft/sync.h) hold plain uint32_t fields so that
 * the header stays valid C++; every shared field is accessed here only with
 * the GCC __atomic builtins (what <stdatomic.h> maps to), which TSan
 * understands. Futex words are 32-bit and 4-byte aligned. */
#ifndef WEFT_SYNC_INTERNAL_H
#define WEFT_SYNC_INTERNAL_H

#include "internal.h"

/* Magic values: "initialised" per type; finalised objects get FINI. */
#define WEFT__MAGIC_LOCK 0x4c4b7766u    /* "fwKL" */
#define WEFT__MAGIC_RLOCK 0x4c527766u   /* "fwRL" */
#define WEFT__MAGIC_SEM 0x4d537766u     /* "fwSM" */
#define WEFT__MAGIC_COND 0x44437766u    /* "fwCD" */
#define WEFT__MAGIC_BARRIER 0x52427766u /* "fwBR" */
#define WEFT__MAGIC_EVENT 0x56457766u   /* "fwEV" */
#define WEFT__MAGIC_FINI 0x2d2d2d2du

/* Spins before sleeping: a handoff on another core usually completes
 * within this many pauses, far cheaper than two futex calls. */
#define WEFT__SPIN 100

/* The lock word does not spin (as glibc's default mutex). A spinning waiter
 * grabs the lock the moment it is released, so two threads that keep
 * taking it alternate and the cache line crosses cores on every
 * acquisition: sync_bench's lock_handoff measured 155 ns per acquisition
 * with 100 pauses of spin against 24 ns without (pthread: 20-23 ns) on this
 * project's machine (2026-12-02). A waiter that sleeps instead lets the
 * holder re-take the free lock many times per wake-up. */
#define WEFT__LOCK_SPIN 0

#define ld_relaxed(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define ld_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define st_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define st_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

static inline bool weft__sync_shared(uint32_t flags)
{
    return (flags & WEFT_SYNC_PSHARED) != 0;
}

/* A deadline in monotonic ns from a relative limit (-1: none -> 0). */
static inline uint64_t weft__deadline(int64_t ns)
{
    return ns < 0 ? 0 : weft__now_ns() + (uint64_t)ns;
}

/* Nanoseconds left until `deadline` (0 = none: -1); 0 when passed. */
static inline int64_t weft__remaining(uint64_t deadline)
{
    if (deadline == 0) return -1;
    uint64_t now = weft__now_ns();
    return now >= deadline ? 0 : (int64_t)(deadline - now);
}

/* The raw three-state lock word, shared by weft_lock, weft_rlock and the
 * barrier's internal lock. Returns 0 or WEFT_ETIMEDOUT. */
int weft__lockword_acquire_slow(uint32_t *w, uint64_t deadline, bool try_only, bool shared);

static inline void weft__lockword_release(uint32_t *w, bool shared)
{
    if (__atomic_exchange_n(w, 0, __ATOMIC_RELEASE) == 2) weft__futex_wake_ex(w, 1, shared);
}

static inline void weft__lockword_acquire(uint32_t *w, bool shared)
{
    uint32_t z = 0;
    if (!__atomic_compare_exchange_n(w, &z, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        weft__lockword_acquire_slow(w, 0, false, shared);
}

#endif
