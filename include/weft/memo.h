/* weft/memo.h : an on-disk memo of task results -- joblib's Memory.cache for
 * weft's tasks, on every backend. Included by weft.h; include <weft.h>, not
 * this file.
 *
 *   weft_memo      a cache directory: get, put, contains, remove, clear,
 *                  stats, verify; an optional in-memory tier in front
 *   memoized runs  weft_options.memo attaches a memo to an executor; calls
 *                  that set WEFT_SUBMIT_MEMO, WEFT_MAP_MEMO (map, weft_parallel)
 *                  or WEFT_COMPUTE_MEMO (graph nodes) look their result up
 *                  before running and store it after
 *
 * The key of an entry is the XXH3-128 hash of the task's registered name,
 * the memo's version string (bump it when the task's code changes) and the
 * input bytes. Small entries (up to 4 KiB) are appended to one of 64
 * shared pack files, each with a hash index mapped by every handle; larger
 * ones are written to a temporary file and renamed into place; either way a
 * reader sees a whole entry or none. Each carries a checksum,
 * and an entry that is corrupt, truncated or of another format version
 * reads as a miss and is removed. Outputs of at least `compress_min` bytes
 * are stored zstd-compressed when that makes them smaller. The size bound is
 * enforced by every store: least recently used entries are removed down to
 * the low-water mark. docs/memo.md has the file format and the concurrency
 * and crash guarantees.
 *
 * Threads: a weft_memo is safe from any thread, concurrently, except
 * weft_memo_close(). Several handles -- in threads, worker processes, MPI
 * ranks -- may share one directory. */
#ifndef WEFT_MEMO_H
#define WEFT_MEMO_H

#ifndef WEFT_H
#error "include <weft.h>, not <weft/memo.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* (typedef struct weft_memo weft_memo; is in weft.h, for weft_options.memo) */

typedef struct weft_memo_options {
    /* Part of the key of every entry: bump it when a task's code changes
     * so that old results are no longer found. NULL = "". Copied. */
    const char *version;
    /* Outputs of at least this many bytes are zstd-compressed (kept raw
     * when that does not make them smaller); 0 = 4096; SIZE_MAX = never. */
    size_t compress_min;
    /* zstd level, 1..19; 0 = 3. */
    int compress_level;
    /* After a store that takes the directory over its bound, least recently
     * used entries are removed until it holds at most low_water * bound
     * bytes; 0 = 0.8. Must be in (0, 1]. */
    double low_water;
    /* fsync each entry (and its directory) before it is renamed into place
     * / after, so a power loss keeps every stored entry; default off (a
     * crash of the program never leaves a broken entry either way). */
    bool fsync;
    /* In-memory tier: at most this many bytes of outputs kept in this
     * process, least recently used dropped first; 0 = none. */
    size_t memory_bytes;
    /* Entries whose record (72-byte header and stored payload) is at most
     * this many bytes are appended to shared pack files instead of a file
     * each (docs/memo.md, "Packs"); 0 = 4096, at most 65536; below 72
     * (e.g. 1): every entry is a file of its own. Handles with different
     * values may share a directory. */
    size_t pack_max;
} weft_memo_options;

/* Counters of one handle (hits, misses, stores, evictions, errors) and of
 * the directory (bytes, entries: shared by every handle). */
typedef struct weft_memo_stats {
    uint64_t hits;         /* gets that found an entry (memory_hits of them in memory) */
    uint64_t memory_hits;  /* hits answered by the in-memory tier */
    uint64_t misses;       /* gets that found none (corrupt entries included) */
    uint64_t stores;       /* entries written */
    uint64_t evictions;    /* entries removed by this handle to keep the bound */
    uint64_t corrupt;      /* corrupt, truncated or foreign entries met and removed */
    uint64_t store_errors; /* memoized runs whose store failed (full disk, ...) */
    uint64_t bytes;        /* bytes of the entry and pack files in the directory (ledger) */
    uint64_t entries;      /* entries in the directory (ledger) */
} weft_memo_stats;

/* weft_memo_open() :
 * Opens (creating it 0700 if needed) the memo directory `path`, bounded to
 * `bound` bytes of entries (0: no bound), and hands it back in `*out`.
 * Leftover temporary files of writers that died are removed.
 * Ownership: the caller closes `*out` with weft_memo_close(); `path` and
 * opts are copied. Threads: any.
 * @return 0, WEFT_EINVAL (NULL path/out, bad option), WEFT_ENOMEM, or the
 * negated errno of the directory (WEFT_EPERM, WEFT_ENOTDIR, ...); `*out`
 * is NULL on error. */
WEFT_API int weft_memo_open(const char *path, uint64_t bound, const weft_memo_options *opts,
                            weft_memo **out);

/* weft_memo_close() :
 * Frees the handle (the directory stays). NULL is a no-op. Threads: no
 * other call on `m` may be in progress or follow; an executor it is
 * attached to must be destroyed first. @return 0. */
WEFT_API int weft_memo_close(weft_memo *m);

/* weft_memo_get() :
 * Looks up the output of task `name` for input in[0..len). On a hit `*out`
 * is a malloc'd copy of the output (free it with free(); non-NULL even for
 * 0 bytes) and `*out_len` its length. A corrupt entry is removed and counts
 * as a miss. Threads: any.
 * @return 0 (hit), WEFT_ENOENT (miss: `*out` NULL), WEFT_EINVAL,
 * WEFT_ENOMEM, or the negated errno of a read that failed. */
WEFT_API int weft_memo_get(weft_memo *m, const char *name, const void *in, size_t len, void **out,
                           size_t *out_len);

/* weft_memo_put() :
 * Stores out[0..out_len) as the output of task `name` for in[0..len),
 * replacing an entry of the same key, then evicts least recently used
 * entries if the directory went over its bound. Threads: any; processes
 * and MPI ranks may store the same key at once (one entry results).
 * @return 0, WEFT_EINVAL, WEFT_EOVERFLOW (the entry alone is larger than
 * the bound: not stored), WEFT_ENOSPC (the disk is full: nothing is left
 * behind), WEFT_ENOMEM, or another negated errno of the file system. */
WEFT_API int weft_memo_put(weft_memo *m, const char *name, const void *in, size_t len,
                           const void *out, size_t out_len);

/* weft_memo_contains() :
 * True when an entry for (name, in) exists and its header is sound (the
 * payload is checked by get and verify, not here). Does not count as a hit
 * or a miss nor refresh the entry's age. Threads: any. */
WEFT_API bool weft_memo_contains(weft_memo *m, const char *name, const void *in, size_t len);

/* weft_memo_remove() :
 * Removes the entry for (name, in). Threads: any.
 * @return 0, WEFT_ENOENT (there was none), WEFT_EINVAL, or a negated errno. */
WEFT_API int weft_memo_remove(weft_memo *m, const char *name, const void *in, size_t len);

/* weft_memo_clear() :
 * Removes every entry (and this handle's in-memory tier). Threads: any;
 * entries stored by others while it runs may survive.
 * @return 0 or a negated errno. */
WEFT_API int weft_memo_clear(weft_memo *m);

/* weft_memo_stats_get() :
 * Fills `*st` (see weft_memo_stats). Threads: any. @return 0, WEFT_EINVAL. */
WEFT_API int weft_memo_stats_get(weft_memo *m, weft_memo_stats *st);

/* weft_memo_verify() :
 * Reads every entry, removes those that do not check (bad header, bad
 * checksum, truncated, other version) and recounts the directory's bytes
 * and entries into its ledger. `*bad` (may be NULL) gets the number
 * removed. Threads: any; O(entries). @return 0 or a negated errno. */
WEFT_API int weft_memo_verify(weft_memo *m, size_t *bad);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_MEMO_H */
