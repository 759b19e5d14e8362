/* memo_store.h : the store's calls by key, for the memoized calls
 * (memo_exec.c). Not installed. */
#ifndef WEFT_MEMO_STORE_H
#define WEFT_MEMO_STORE_H

#include "memo/memo_internal.h"

int weft__memo_store_open(const char *path, uint64_t bound, const weft_memo_options *opts,
                          weft_memo **out);
int weft__memo_store_close(weft_memo *m);
/* The version string of the memo's keys. */
const char *weft__memo_version(const weft_memo *m);
/* weft_memo_get / weft_memo_put by key (counted in the stats as they are). */
int weft__memo_get_key(weft_memo *m, const weft__memo_key *k, void **out, size_t *out_len);
int weft__memo_put_key(weft_memo *m, const weft__memo_key *k, const void *out, size_t out_len);
/* Counts a memoized run whose store failed. */
void weft__memo_note_store_error(weft_memo *m);

#endif
