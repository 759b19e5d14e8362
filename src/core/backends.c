/* backends.c : the registered backends, the one place that lists them.
 * Adding a backend: its folder under src/backends/, its value in
 * weft_backend (include/weft.h), and one line in the table below. */
#include <strings.h>

#include "core/backend.h"
#include "internal.h"

extern const weft__backend weft__backend_serial, weft__backend_threads, weft__backend_processes,
    weft__backend_mpi;

/* weft_init order: processes before mpi (the fork server must be forked
 * before MPI_Init starts threads) */
const weft__backend *const weft__backends[] = {
    &weft__backend_serial,
    &weft__backend_threads,
    &weft__backend_processes,
    &weft__backend_mpi,
};
const size_t weft__nbackends = sizeof weft__backends / sizeof weft__backends[0];

const weft__backend *weft__backend_of(weft_backend kind)
{
    for (size_t i = 0; i < weft__nbackends; i++)
        if (weft__backends[i]->kind == kind) return weft__backends[i];
    return NULL;
}

int weft_backend_parse(const char *name, weft_backend *out)
{
    if (!name || !out) return weft__err(WEFT_EINVAL, "weft_backend_parse: NULL argument");
    for (size_t i = 0; i < weft__nbackends; i++) {
        if (strcasecmp(name, weft__backends[i]->name) == 0) {
            *out = weft__backends[i]->kind;
            return 0;
        }
    }
    return weft__err(WEFT_EINVAL, "'%s' is not a backend: use serial, threads, processes or mpi",
                     name);
}

const char *weft_backend_name(weft_backend b)
{
    if (b == WEFT_BACKEND_DEFAULT) return "default";
    const weft__backend *o = weft__backend_of(b);
    return o ? o->name : "unknown";
}

bool weft_backend_available(weft_backend b)
{
    const weft__backend *o = weft__backend_of(b);
    return o && (!o->available || o->available());
}
