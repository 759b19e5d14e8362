/* help.h : helping while waiting, without a cycle of calls.
 *
 * A thread of an executor's pool that waits on a future (inside a task)
 * runs other queued tasks meanwhile, so nested waits never deadlock. The
 * waiting code (futures, map, graphs) must not call the pool directly (the
 * pool calls them), so the pool registers a helper for its threads here
 * and the waiters ask through it. */
#ifndef WEFT_CORE_HELP_H
#define WEFT_CORE_HELP_H

#include <stdbool.h>

#include "weft.h"

/* On a pool thread: `ex` is its executor and `help` runs one queued task
 * of it (false when none). NULL, NULL when the thread leaves the pool. */
void weft__help_register(weft_executor *ex, bool (*help)(weft_executor *ex));

#endif
