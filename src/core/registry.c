/* registry.c : the task registry, name <-> function.
 *
 * Names are what let a task cross a process or machine boundary: a worker in
 * another address space finds the same function by its name. Registrations
 * mostly happen in constructors before main(), lookups by pointer on the
 * submit path of backends that need names and when a trace is written. The
 * table is small and changes rarely, so one mutex guards it; entries are
 * never removed, so the names handed out live as long as the process. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct entry {
    char *name;
    weft_task_fn fn;
} entry;

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static entry *reg;
static size_t reg_n, reg_cap;
/* names that two functions tried to take through WEFT_TASK_REGISTER: a
 * lookup of such a name is ambiguous and fails */
static char **clashed;
static size_t nclashed;

static int reg_add(const char *name, weft_task_fn fn)
{
    for (size_t i = 0; i < reg_n; i++) {
        bool same_name = strcmp(reg[i].name, name) == 0;
        if (same_name && reg[i].fn == fn) return 0;
        if (same_name)
            return weft__err(WEFT_EEXIST,
                             "task name '%s' is already registered to another function", name);
        if (reg[i].fn == fn)
            return weft__err(WEFT_EEXIST, "task function is already registered as '%s', not '%s'",
                             reg[i].name, name);
    }
    if (weft__grow(&reg, &reg_cap, reg_n + 1, sizeof *reg, 32))
        return weft__err(WEFT_ENOMEM, "out of memory registering task '%s'", name);
    char *copy = strdup(name);
    if (!copy) return weft__err(WEFT_ENOMEM, "out of memory registering task '%s'", name);
    reg[reg_n].name = copy;
    reg[reg_n].fn = fn;
    reg_n++;
    return 0;
}

int weft_task_register(const char *name, weft_task_fn fn)
{
    if (!name || !*name) return weft__err(WEFT_EINVAL, "weft_task_register: empty task name");
    if (!fn) return weft__err(WEFT_EINVAL, "weft_task_register: NULL function for '%s'", name);
    pthread_mutex_lock(&reg_mu);
    int rc = reg_add(name, fn);
    pthread_mutex_unlock(&reg_mu);
    return rc;
}

void weft__task_register_static(const char *name, weft_task_fn fn)
{
    if (!name || !*name || !fn) return;
    pthread_mutex_lock(&reg_mu);
    int rc = reg_add(name, fn);
    if (rc == WEFT_EEXIST) {
        char **c = realloc(clashed, (nclashed + 1) * sizeof *c);
        if (c) {
            clashed = c;
            if ((clashed[nclashed] = strdup(name))) nclashed++;
        }
    }
    pthread_mutex_unlock(&reg_mu);
}

int weft_task_lookup(const char *name, weft_task_fn *fn)
{
    if (fn) *fn = NULL;
    if (!name || !fn) return weft__err(WEFT_EINVAL, "weft_task_lookup: NULL argument");
    int rc = weft__err(WEFT_ENOENT, "no task is registered under the name '%s'", name);
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < reg_n; i++) {
        if (strcmp(reg[i].name, name) == 0) {
            *fn = reg[i].fn;
            rc = 0;
            break;
        }
    }
    for (size_t i = 0; i < nclashed; i++) {
        if (strcmp(clashed[i], name) == 0) {
            *fn = NULL;
            rc = weft__err(WEFT_EEXIST,
                           "task name '%s' was registered by two different functions: rename one",
                           name);
            break;
        }
    }
    pthread_mutex_unlock(&reg_mu);
    return rc;
}

const char *weft_task_name(weft_task_fn fn)
{
    const char *name = NULL;
    if (!fn) return NULL;
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < reg_n; i++) {
        if (reg[i].fn == fn) {
            name = reg[i].name;
            break;
        }
    }
    pthread_mutex_unlock(&reg_mu);
    return name;
}

int weft__check_registered(weft_task_fn fn, const char *who)
{
    static __thread weft_task_fn ok[4];
    static __thread unsigned next;
    for (int i = 0; i < 4; i++)
        if (ok[i] == fn) return 0;
    const char *name = weft_task_name(fn);
    if (!name)
        return weft__err(WEFT_ENOTREG,
                         "%s: the task function is not registered; the processes and mpi backends "
                         "find tasks by name (use WEFT_TASK_REGISTER or weft_task_register)",
                         who);
    /* the first function of a name two static registrations took has the
     * name, but a worker's lookup of it fails: refuse it here, at submit */
    bool clash = false;
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < nclashed && !clash; i++) clash = strcmp(clashed[i], name) == 0;
    pthread_mutex_unlock(&reg_mu);
    if (clash)
        return weft__err(WEFT_EEXIST,
                         "%s: task name '%s' was registered by two different functions: rename one",
                         who, name);
    ok[next++ & 3] = fn;
    return 0;
}

int weft__check_hooks_registered(weft_task_fn initializer, weft_task_fn finalizer,
                                 const char *backend)
{
    const weft_task_fn fns[2] = {initializer, finalizer};
    static const char *const what[2] = {"initializer", "finalizer"};
    for (int i = 0; i < 2; i++)
        if (fns[i] && !weft_task_name(fns[i]))
            return weft__err(WEFT_ENOTREG,
                             "weft_executor_create: the %s is not registered; the %s backend "
                             "finds functions by name (use WEFT_TASK_REGISTER or "
                             "weft_task_register)",
                             what[i], backend);
    return 0;
}
