/* reg.c : names of range bodies, so that worker processes and ranks find
 * the body a loop runs (weft_range_register). Registrations mostly happen
 * in constructors before main(); lookups once per loop on processes and
 * mpi. One mutex; entries are never removed, so names live as long as the
 * process. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "range/range_internal.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static weft__range_entry *tab;
static size_t ntab, captab;

static int add(const char *name, weft_range_fn body, weft_range_reduce_fn rbody,
               weft_range_combine_fn combine, const char *who)
{
    if (!name || !*name) return weft__err(WEFT_EINVAL, "%s: empty name", who);
    if (!body && !rbody) return weft__err(WEFT_EINVAL, "%s: NULL body for '%s'", who, name);
    if (rbody && !combine) return weft__err(WEFT_EINVAL, "%s: NULL combine for '%s'", who, name);
    int rc = 0;
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < ntab; i++) {
        weft__range_entry *e = &tab[i];
        bool same_fn = (body && e->body == body) || (rbody && e->rbody == rbody);
        if (strcmp(e->name, name) == 0) {
            if (same_fn && e->combine == combine) goto out;
            rc = weft__err(WEFT_EEXIST, "%s: the name '%s' is already registered to another body",
                           who, name);
            goto out;
        }
        if (same_fn) {
            rc = weft__err(WEFT_EEXIST, "%s: the body is already registered as '%s', not '%s'", who,
                           e->name, name);
            goto out;
        }
    }
    if (ntab == captab) {
        size_t cap = captab ? 2 * captab : 16;
        weft__range_entry *t = realloc(tab, cap * sizeof *t);
        if (!t) {
            rc = weft__err(WEFT_ENOMEM, "%s: out of memory", who);
            goto out;
        }
        tab = t;
        captab = cap;
    }
    char *copy = strdup(name);
    if (!copy) {
        rc = weft__err(WEFT_ENOMEM, "%s: out of memory", who);
        goto out;
    }
    tab[ntab++] = (weft__range_entry){copy, body, rbody, combine};
out:
    pthread_mutex_unlock(&mu);
    return rc;
}

int weft_range_register(const char *name, weft_range_fn body)
{
    return add(name, body, NULL, NULL, "weft_range_register");
}

int weft_range_register_reduce(const char *name, weft_range_reduce_fn body,
                               weft_range_combine_fn combine)
{
    return add(name, NULL, body, combine, "weft_range_register_reduce");
}

int weft__range_find_body(weft_range_fn body, weft_range_reduce_fn rbody, weft__range_entry *out,
                          const char *who)
{
    int rc = WEFT_ENOTREG;
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < ntab; i++) {
        if ((body && tab[i].body == body) || (rbody && tab[i].rbody == rbody)) {
            *out = tab[i];
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&mu);
    if (rc)
        return weft__err(rc,
                         "%s: the body is not registered; the processes and mpi backends find "
                         "bodies by name (use WEFT_RANGE_REGISTER or WEFT_RANGE_REGISTER_REDUCE)",
                         who);
    return 0;
}

int weft__range_find_name(const char *name, weft__range_entry *out)
{
    int rc = WEFT_ENOTREG;
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < ntab; i++) {
        if (strcmp(tab[i].name, name) == 0) {
            *out = tab[i];
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&mu);
    return rc;
}
