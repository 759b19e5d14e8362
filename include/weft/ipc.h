/* weft/ipc.h : objects shared between processes -- multiprocessing's Value,
 * Array, Pipe, Queue and Lock. Included by weft.h; include <weft.h>, not
 * this file.
 *
 *   weft_shm       a shared-memory region (Value, Array): every process that
 *                  attaches reads and writes the same bytes in place, with a
 *                  process-shared weft_lock in the region's header
 *   weft_channel   a point-to-point channel of byte messages between two
 *                  processes, one way or both ways (Pipe)
 *   weft_mpqueue   a bounded multi-producer multi-consumer queue of byte
 *                  messages for any number of processes (Queue)
 *
 * Tokens, not inheritance. Worker processes of the processes backend are
 * forked from a fork server started by weft_init(), not from the process
 * that creates an IPC object, so they cannot inherit it. Every object is a
 * memfd (never named in /dev/shm, mode 0600, close-on-exec, sealed against
 * resizing) mapped by its owner, and is named by a small copyable token
 * (weft_ipc_token, 40 bytes of plain data): put it in a task's input bytes,
 * on a command line (weft_ipc_token_format/_parse) or anywhere else, and
 * any process of the same user attaches with it. The token carries a random
 * 64-bit key that the object's header must match, so a stale token (the
 * owner destroyed the object or exited, its fd number now names something
 * else) fails cleanly with WEFT_ENOENT instead of mapping the wrong memory.
 *
 * Lifetime. The owner (the creating process) keeps one fd per object; the
 * memory is freed by the kernel when the owner has destroyed its handle (or
 * exited) and every attached process has destroyed its handle (or exited).
 * Nothing is left behind in the file system. Attaching needs the owner to
 * be alive and to hold the object.
 *
 * Handles. A handle (weft_shm *, weft_channel *, weft_mpqueue *) belongs to
 * one process: it is never copied into another process -- send its token
 * instead. Create and attach both return a handle; destroy frees either.
 * A fork()ed child must attach again rather than use its parent's handles
 * (the mapping is inherited, the rights to the owner's fd are not).
 *
 * Thread safety is stated for each type. */
#ifndef WEFT_IPC_H
#define WEFT_IPC_H

#ifndef WEFT_H
#error "include <weft.h>, not <weft/ipc.h>"
#endif

#include "weft/sync.h" /* weft_lock, for weft_shm_lock() */

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Tokens
 * ------------------------------------------------------------------------ */

/* What a token names. */
typedef enum weft_ipc_kind {
    WEFT_IPC_SHM = 1,
    WEFT_IPC_CHANNEL = 2,
    WEFT_IPC_MPQUEUE = 3,
} weft_ipc_kind;

/* A token: plain bytes, copy it freely (memcpy, a task's input, a file).
 * The fields may be read (e.g. `fd` to pass the descriptor with SCM_RIGHTS);
 * only weft_ipc_token_local_fd() should change them. */
typedef struct weft_ipc_token {
    uint32_t magic; /* WEFT_IPC_TOKEN_MAGIC */
    uint32_t kind;  /* weft_ipc_kind */
    int32_t pid;    /* the process holding `fd` (the owner) */
    int32_t fd;     /* the memfd in that process */
    uint64_t size;  /* bytes of the mapping */
    uint64_t key;   /* random; equal to the key in the object's header */
    uint64_t reserved;
} weft_ipc_token;

#define WEFT_IPC_TOKEN_MAGIC 0x43504977u /* "wIPC" */

/* Room for weft_ipc_token_format()'s text, with its terminating NUL. */
#define WEFT_IPC_TOKEN_STRLEN 96

/* weft_ipc_token_format() :
 * Writes `t` as text ("weft-ipc:KIND:PID:FD:SIZE:KEY", no spaces, ASCII) into
 * `buf[0..len)`, for a command line or an environment variable.
 * Threads: any. @return 0, or WEFT_EINVAL (NULL, or `len` too small: use
 * WEFT_IPC_TOKEN_STRLEN). */
WEFT_API int weft_ipc_token_format(const weft_ipc_token *t, char *buf, size_t len);

/* weft_ipc_token_parse() :
 * Reads a token written by weft_ipc_token_format().
 * Threads: any. @return 0, or WEFT_EINVAL (NULL, not a token). */
WEFT_API int weft_ipc_token_parse(const char *s, weft_ipc_token *out);

/* weft_ipc_token_local_fd() :
 * Makes `t` name `fd`, a descriptor of the calling process for the same
 * object (received with SCM_RIGHTS over a unix socket, or inherited), so
 * that an attach with it opens that descriptor instead of the owner's. This
 * is the fallback where the owner's /proc/<pid>/fd cannot be opened (another
 * user, or an owner made non-dumpable with prctl(PR_SET_DUMPABLE, 0)). The
 * key is still checked. The caller keeps `fd` (attach does not close it).
 * Threads: any. @return 0, WEFT_EINVAL (NULL, fd < 0). */
WEFT_API int weft_ipc_token_local_fd(weft_ipc_token *t, int fd);

/* ------------------------------------------------------------------------
 * Shared-memory region (multiprocessing.Value / Array)
 * ------------------------------------------------------------------------ */

typedef struct weft_shm weft_shm;

/* weft_shm_create() :
 * Creates a region of `size` (>= 1) zero-filled bytes shared by every process
 * that attaches to it, with a free process-shared lock (weft_shm_lock).
 * The bytes (weft_shm_ptr) are 64-byte aligned; a typed array or value is
 * a region used through a cast: `double *a = weft_shm_ptr(s);`.
 * Ownership: the caller destroys `*out` with weft_shm_destroy().
 * Threads: any. @return 0, or WEFT_EINVAL (NULL out, size 0 or too large),
 * WEFT_ENOMEM (out of memory, or the kernel refused the memfd or mapping);
 * `*out` is NULL on error. */
WEFT_API int weft_shm_create(size_t size, weft_shm **out);

/* weft_shm_attach() :
 * Maps the region named by `tok` into the calling process (zero copy: the
 * same physical pages as every other process's handle).
 * Ownership: the caller destroys `*out` with weft_shm_destroy().
 * Threads: any. @return 0, or WEFT_EINVAL (NULL, not a token, a token of
 * another kind), WEFT_ENOENT (the object no longer exists: destroyed, owner
 * exited, stale token), WEFT_EPERM (the owner's fd cannot be opened: another
 * user or a non-dumpable owner; see weft_ipc_token_local_fd), WEFT_ENOMEM. */
WEFT_API int weft_shm_attach(const weft_ipc_token *tok, weft_shm **out);

/* weft_shm_ptr(), weft_shm_size() : the region's bytes and their number.
 * The pointer is valid until weft_shm_destroy() of this handle; other
 * processes see the same bytes at other addresses (store offsets, not
 * pointers, inside a region). NULL/0 for a NULL handle. Threads: any. */
WEFT_API void *weft_shm_ptr(const weft_shm *s);
WEFT_API size_t weft_shm_size(const weft_shm *s);

/* weft_shm_token() :
 * Gives the token of the region (the same from every handle of it).
 * Threads: any. @return 0, WEFT_EINVAL (NULL). */
WEFT_API int weft_shm_token(const weft_shm *s, weft_ipc_token *out);

/* weft_shm_lock() :
 * The region's process-shared weft_lock (multiprocessing's
 * Value(lock=True).get_lock()), initialised free at create; use it with
 * weft_lock_acquire/_release, or weft_cond with a PSHARED weft_cond that you
 * place in the region. It lives in the region's header, valid as long as
 * the handle. A process that dies holding it leaves it held: hold it
 * briefly and acquire with a timeout where a crash is possible.
 * Threads: any. @return the lock, or NULL for a NULL handle. */
WEFT_API weft_lock *weft_shm_lock(weft_shm *s);

/* weft_shm_destroy() :
 * Unmaps the region from this process and frees the handle (for the owner,
 * also closes its fd: later attaches fail with WEFT_ENOENT, while processes
 * already attached keep the memory until they destroy their handles).
 * Pointers into the region from this handle become invalid. NULL is a no-op.
 * Threads: no other call on this handle may be in progress or follow.
 * @return 0. */
WEFT_API int weft_shm_destroy(weft_shm *s);

/* ------------------------------------------------------------------------
 * Channel (multiprocessing.Pipe)
 * ------------------------------------------------------------------------ */

typedef struct weft_channel weft_channel;

/* Which way messages go. The zero value is both ways, as Pipe(duplex=True). */
typedef enum weft_channel_direction {
    WEFT_CHANNEL_DUPLEX = 0,   /* owner <-> peer: two rings */
    WEFT_CHANNEL_TO_PEER = 1,  /* owner -> peer only */
    WEFT_CHANNEL_TO_OWNER = 2, /* peer -> owner only */
} weft_channel_direction;

typedef struct weft_channel_options {
    size_t size; /* sizeof the struct as the caller's header had it; 0 = weft 0.2's layout */
    /* Ring bytes per direction; 0 = 256 KiB. Rounded up to a power of two,
     * 4 KiB .. 1 GiB. A message takes its length rounded up to 8, plus 8
     * bytes; the largest message is capacity - 8 bytes
     * (weft_channel_max_message). */
    size_t capacity;
    weft_channel_direction direction;
} weft_channel_options;
/* weft_channel_options o = WEFT_CHANNEL_OPTIONS_INIT; records this header's size */
#define WEFT_CHANNEL_OPTIONS_INIT            \
    {                                        \
        .size = sizeof(weft_channel_options) \
    }

/* weft_channel_create() :
 * Creates a channel; the calling process holds its owner end. One other
 * handle, the peer end, attaches with the token (a second attach is
 * WEFT_EBUSY). Messages are byte strings delivered whole, in order, once.
 * Ownership: the caller destroys `*out` with weft_channel_destroy().
 * Threads: any. @return 0, WEFT_EINVAL (NULL out, bad option), WEFT_ENOMEM;
 * `*out` is NULL on error. */
WEFT_API int weft_channel_create(const weft_channel_options *opts, weft_channel **out);

/* weft_channel_attach() :
 * Attaches the peer end of the channel named by `tok`.
 * Ownership: the caller destroys `*out` with weft_channel_destroy().
 * Threads: any. @return 0, or as weft_shm_attach, and WEFT_EBUSY (a peer
 * attached already), WEFT_ECLOSED (the owner closed the channel). */
WEFT_API int weft_channel_attach(const weft_ipc_token *tok, weft_channel **out);

/* weft_channel_token() : the channel's token. @return 0, WEFT_EINVAL. */
WEFT_API int weft_channel_token(const weft_channel *ch, weft_ipc_token *out);

/* weft_channel_max_message() : the largest message the channel carries, in
 * bytes (0 for NULL). Threads: any. */
WEFT_API size_t weft_channel_max_message(const weft_channel *ch);

/* weft_channel_send() :
 * Sends `data[0..len)` (len may be 0) to the other end, waiting at most
 * `timeout` for room in the ring. The message is copied; it is delivered
 * whole or not at all. Larger messages than weft_channel_max_message() are
 * refused (pass big data through a weft_shm and send its offset).
 * Threads: one thread at a time per end (each ring has a single writer and
 * a single reader; use weft_mpqueue for many). A send and a recv on one end
 * may run in two threads at once.
 * @return 0, WEFT_ETIMEDOUT (no room in time: nothing was sent),
 * WEFT_EOVERFLOW (len > max message), WEFT_ECLOSED (this end was closed, or
 * the other end closed: nobody will read), WEFT_EPEERDIED (the other end's
 * process died without closing), WEFT_EPERM (this end does not send: a
 * one-way channel), WEFT_EINVAL. */
WEFT_API int weft_channel_send(weft_channel *ch, const void *data, size_t len, double timeout);

/* weft_channel_recv() :
 * Receives the next message into `buf[0..cap)` and its length into `*len`,
 * waiting at most `timeout`. If the message is longer than `cap`, it stays
 * in the channel, `*len` is its length and the call fails with
 * WEFT_EOVERFLOW (Python's BufferTooShort): call again with a bigger buffer.
 * While the ring is empty, the other end's process is checked every 100 ms
 * (and at the timeout): a receiver never waits forever on a dead writer.
 * Threads: as weft_channel_send.
 * @return 0, WEFT_ETIMEDOUT, WEFT_EOF (the other end closed and every
 * message sent before was received), WEFT_EPEERDIED (the other end's
 * process died without closing, and every message it sent was received),
 * WEFT_ECLOSED (this end was closed), WEFT_EOVERFLOW, WEFT_EPERM (this end
 * does not receive), WEFT_EINVAL. */
WEFT_API int weft_channel_recv(weft_channel *ch, double timeout, void *buf, size_t cap,
                               size_t *len);

/* weft_channel_recv_alloc() :
 * weft_channel_recv() into a buffer it allocates: `*data` (malloc; the caller
 * frees it with free(); never NULL on success, even for an empty message).
 * @return as weft_channel_recv, without WEFT_EOVERFLOW, plus WEFT_ENOMEM
 * (the message stays in the channel). */
WEFT_API int weft_channel_recv_alloc(weft_channel *ch, double timeout, void **data, size_t *len);

/* weft_channel_poll() :
 * Waits at most `timeout` until a recv would not wait: a message is ready,
 * or the other end closed or died (Python's Connection.poll).
 * Threads: as weft_channel_recv. @return 0 (ready), WEFT_ETIMEDOUT,
 * WEFT_ECLOSED (this end was closed), WEFT_EPERM, WEFT_EINVAL. */
WEFT_API int weft_channel_poll(weft_channel *ch, double timeout);

/* weft_channel_close() :
 * Closes this end, both ways: the other end's recv returns WEFT_EOF once it
 * has received everything sent before, its send returns WEFT_ECLOSED; this
 * end's later calls return WEFT_ECLOSED. Wakes waiters of both ends.
 * Idempotent. Threads: any. @return 0, WEFT_EINVAL. */
WEFT_API int weft_channel_close(weft_channel *ch);

/* weft_channel_destroy() :
 * Closes this end (as weft_channel_close), unmaps the channel and frees the
 * handle (for the owner, also closes its fd). NULL is a no-op.
 * Threads: no other call on this handle may be in progress or follow.
 * @return 0. */
WEFT_API int weft_channel_destroy(weft_channel *ch);

/* ------------------------------------------------------------------------
 * Multi-process queue (multiprocessing.Queue)
 * ------------------------------------------------------------------------ */

typedef struct weft_mpqueue weft_mpqueue;

typedef struct weft_mpqueue_options {
    size_t size; /* sizeof the struct as the caller's header had it; 0 = weft 0.2's layout */
    /* Ring bytes; 0 = 1 MiB. Rounded up to a power of two, 4 KiB .. 1 GiB.
     * A message takes its length rounded up to 8, plus 8 bytes. */
    size_t capacity;
    /* At most this many messages (Queue(maxsize)); 0 = bounded by bytes only. */
    size_t maxsize;
} weft_mpqueue_options;
/* weft_mpqueue_options o = WEFT_MPQUEUE_OPTIONS_INIT; records this header's size */
#define WEFT_MPQUEUE_OPTIONS_INIT            \
    {                                        \
        .size = sizeof(weft_mpqueue_options) \
    }

/* weft_mpqueue_create() :
 * Creates a bounded FIFO queue of byte messages that any number of threads
 * of any number of attached processes put to and get from. The queue is
 * guarded by a robust process-shared mutex: a process that dies inside a
 * put or get leaves the queue consistent (its message is then wholly in or
 * wholly out), and never blocks the others.
 * Ownership: the caller destroys `*out` with weft_mpqueue_destroy().
 * Threads: any. @return 0, WEFT_EINVAL (NULL out, bad option), WEFT_ENOMEM;
 * `*out` is NULL on error. */
WEFT_API int weft_mpqueue_create(const weft_mpqueue_options *opts, weft_mpqueue **out);

/* weft_mpqueue_attach() : attaches to the queue named by `tok` (any number
 * of times, from any number of processes). Ownership, @return: as
 * weft_shm_attach. */
WEFT_API int weft_mpqueue_attach(const weft_ipc_token *tok, weft_mpqueue **out);

/* weft_mpqueue_token() : the queue's token. @return 0, WEFT_EINVAL. */
WEFT_API int weft_mpqueue_token(const weft_mpqueue *q, weft_ipc_token *out);

/* weft_mpqueue_max_message() : the largest message the queue carries. */
WEFT_API size_t weft_mpqueue_max_message(const weft_mpqueue *q);

/* weft_mpqueue_put() :
 * Appends a copy of `data[0..len)`, waiting at most `timeout` for room.
 * Threads: any thread of any attached process.
 * @return 0, WEFT_ETIMEDOUT (full: nothing was put), WEFT_EOVERFLOW (len >
 * max message), WEFT_ECLOSED (the queue was closed), WEFT_EINVAL. */
WEFT_API int weft_mpqueue_put(weft_mpqueue *q, const void *data, size_t len, double timeout);

/* weft_mpqueue_get() :
 * Removes the oldest message into `buf[0..cap)`, its length into `*len`,
 * waiting at most `timeout` while the queue is empty. A message longer than
 * `cap` stays first in the queue: `*len` is its length, the call fails with
 * WEFT_EOVERFLOW.
 * Threads: any thread of any attached process.
 * @return 0, WEFT_ETIMEDOUT, WEFT_EOF (closed and empty), WEFT_EOVERFLOW,
 * WEFT_EINVAL. */
WEFT_API int weft_mpqueue_get(weft_mpqueue *q, double timeout, void *buf, size_t cap, size_t *len);

/* weft_mpqueue_get_alloc() : weft_mpqueue_get() into a malloc'd `*data`
 * (the caller frees it). @return as weft_mpqueue_get without
 * WEFT_EOVERFLOW, plus WEFT_ENOMEM (the message stays in the queue). */
WEFT_API int weft_mpqueue_get_alloc(weft_mpqueue *q, double timeout, void **data, size_t *len);

/* weft_mpqueue_count() : messages in the queue (a snapshot; Queue.qsize),
 * 0 for NULL. Threads: any. */
WEFT_API size_t weft_mpqueue_count(weft_mpqueue *q);

/* weft_mpqueue_close() :
 * Closes the queue for every process: puts fail with WEFT_ECLOSED, gets
 * return what is left, then WEFT_EOF. Wakes every waiter. Idempotent.
 * Threads: any. @return 0, WEFT_EINVAL. */
WEFT_API int weft_mpqueue_close(weft_mpqueue *q);

/* weft_mpqueue_destroy() :
 * Unmaps the queue from this process and frees the handle (the owner also
 * closes its fd). It does not close the queue for the others: call
 * weft_mpqueue_close() first for that. NULL is a no-op.
 * Threads: no other call on this handle may be in progress or follow.
 * @return 0. */
WEFT_API int weft_mpqueue_destroy(weft_mpqueue *q);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_IPC_H */
