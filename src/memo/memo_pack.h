/* memo_pack.h : small entries packed into append-only pack files with a
 * shared hash index (memo_pack.c), for the store (memo_store.c). Not
 * installed. memo_pack.c opens with the design; docs/memo.md has the
 * format. */
#ifndef WEFT_MEMO_PACK_H
#define WEFT_MEMO_PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memo/memo_internal.h"

#define WEFT__PACKS 64u         /* packs per directory: the key's first 6 bits */
#define WEFT__PACK_IDX_HDR 128u /* index header bytes; slots follow */
#define WEFT__PACK_SLOT 32u     /* key low, key high, loc, last use (u64 each, native order) */
#define WEFT__PACK_IDX_MAGIC "WEFTPIDX"
#define WEFT__PACK_IDX_VERSION 1u
#define WEFT__PACK_BOM 0x01020304u
#define WEFT__PACK_TOMB 1u        /* slot length of a removed entry; 0 = empty */
#define WEFT__PACK_MAX_REC 65536u /* the largest packed record (pack_max's limit) */

typedef struct weft__packs weft__packs;

/* Writes a fresh temporary path (in the memo's tmp/, same file system) into
 * buf[0..n). */
typedef void (*weft__packs_tmpname_fn)(void *ctx, char *buf, size_t n);

/* Opens root/packs (creating it 0700). `epoch` points into the shared
 * ledger: bumped (under the ledger lock) by every replacement of an index,
 * read lock-free by every call. */
int weft__packs_open(const char *root, bool fsync, uint64_t *epoch, weft__packs_tmpname_fn tmpname,
                     void *tmpctx, weft__packs **out);
void weft__packs_close(weft__packs *P);

/* Lock-free: the record of key k (its 72-byte header and payload) as a
 * malloc'd buffer, or only its header (`header_only`: *buf holds
 * WEFT__MEMO_HDR bytes, *len the record's length). Not checked: a record
 * read while a writer of another process changes its slot may be torn, so
 * a record that does not check is read again under the ledger lock before
 * it is called corrupt. With `touch`, the entry's last use is set to now
 * when more than a second old. `*len` may be short of the slot's length
 * (a truncated pack): the check fails then.
 * @return 0, WEFT_ENOENT (not packed), WEFT_ENOMEM, or a negated errno. */
int weft__packs_read(weft__packs *P, const weft__memo_key *k, bool header_only, bool touch,
                     void **buf, size_t *len);

/* The rest: the caller holds the ledger lock. `*dbytes` / `*dentries`
 * get the change of the packs' bytes (pack file lengths) and entries. */

/* Appends record hdr+payload (hlen + plen bytes) for k, replacing a packed
 * entry of the same key. @return 0, WEFT_ENOSPC, WEFT_ENOMEM or a negated
 * errno (then nothing changed). */
int weft__packs_put(weft__packs *P, const weft__memo_key *k, const void *hdr, size_t hlen,
                    const void *payload, size_t plen, int64_t *dbytes, int64_t *dentries);
/* Removes the packed entry of k (compacting its pack when removed records
 * outweigh live ones). @return 0, WEFT_ENOENT, or a negated errno. */
int weft__packs_remove(weft__packs *P, const weft__memo_key *k, int64_t *dbytes, int64_t *dentries);

/* One live packed entry, for eviction and verification. */
typedef struct weft__pack_item {
    weft__memo_key key;
    uint32_t len;      /* record bytes */
    uint32_t last_use; /* seconds since the epoch */
} weft__pack_item;
typedef int (*weft__pack_item_fn)(void *arg, const weft__pack_item *it);
/* Calls fn for every live packed entry (stops at a nonzero return, which
 * it returns). */
int weft__packs_each(weft__packs *P, weft__pack_item_fn fn, void *arg);
/* Marks k removed without compacting (eviction; weft__packs_settle
 * compacts after). @return 0 or WEFT_ENOENT. */
int weft__packs_drop(weft__packs *P, const weft__memo_key *k);
/* Checks every packed record with `check` (0 = sound) and drops the bad
 * ones; `*bad` counts them. */
int weft__packs_check(weft__packs *P, int (*check)(const weft__memo_key *k, void *rec, size_t len),
                      size_t *bad);
/* Compacts every pack holding removed records, cuts every pack file to its
 * index's end, removes pack files no index names, and gives the totals:
 * bytes of the pack files, live entries. */
int weft__packs_settle(weft__packs *P, uint64_t *bytes, uint64_t *entries);

#endif
