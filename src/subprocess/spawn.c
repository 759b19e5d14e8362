/* spawn.c : starting a child for weft_run and weft_popen.
 *
 * The child is made by posix_spawn: glibc's uses clone(CLONE_VM|CLONE_VFORK),
 * so nothing of the caller's memory is copied (fork's cost grows with the
 * caller's size) and only glibc's own code runs in the child before exec,
 * which is what makes it safe in a program with threads.
 *
 * Descriptors. Everything opened here is O_CLOEXEC. The child's 0/1/2 are
 * set by dup2 file actions (dup2 clears close-on-exec on the copy), and a
 * closefrom(3) action then closes every other descriptor in the child, so a
 * descriptor another thread opened without O_CLOEXEC does not leak either.
 * A source descriptor that is itself 0, 1 or 2 but meant for another slot
 * (the caller closed its stdin, so pipe2 handed out 0; or out.fd = 2 and
 * err.fd = 1) is first copied above 2, so no dup2 overwrites a source a
 * later dup2 still needs.
 *
 * Errors. posix_spawn reports a failed exec (and chdir) as its own return
 * value, so the call fails instead of a child exiting 127. glibc cannot say
 * whether chdir or exec failed; when a working directory was given, weft
 * checks it after a failure: a directory that cannot be entered is
 * WEFT_ENOTDIR, otherwise the exec's error stands. Programs named without a
 * '/' are looked up in PATH here (not by posix_spawnp), so that "not found"
 * and "found but not executable" are told apart, the child's PATH is the
 * one searched (as Python does), and no shell fallback runs for ENOEXEC. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "subprocess/subprocess_internal.h"

extern char **environ;

_Atomic int weft__proc_no_pidfd;

weft_stdio_mode weft__proc_in_mode(const weft_run_opts *o)
{
    if (o->in.mode == WEFT_STDIO_INHERIT && o->input) return WEFT_STDIO_PIPE;
    return o->in.mode;
}

static int check_stdio(const weft_stdio *s, int slot, const char *fn)
{
    static const char *names[] = {"in", "out", "err"};
    switch (s->mode) {
    case WEFT_STDIO_INHERIT:
    case WEFT_STDIO_PIPE:
    case WEFT_STDIO_NULL:
        return 0;
    case WEFT_STDIO_FD:
        if (s->fd < 0)
            return weft__err(WEFT_EINVAL, "%s: opts.%s.fd = %d is not a descriptor", fn,
                             names[slot], s->fd);
        return 0;
    case WEFT_STDIO_FILE:
        if (!s->path || !s->path[0])
            return weft__err(WEFT_EINVAL, "%s: opts.%s is WEFT_STDIO_FILE without a path", fn,
                             names[slot]);
        return 0;
    case WEFT_STDIO_STDOUT:
        if (slot != 2)
            return weft__err(WEFT_EINVAL, "%s: WEFT_STDIO_STDOUT is for opts.err only", fn);
        return 0;
    }
    return weft__err(WEFT_EINVAL, "%s: opts.%s.mode = %d is not a weft_stdio_mode", fn, names[slot],
                     (int)s->mode);
}

static int check_seconds(double v, const char *what, const char *fn)
{
    if (v != v) return weft__err(WEFT_EINVAL, "%s: %s is NaN", fn, what);
    if (v < 0) return weft__err(WEFT_EINVAL, "%s: %s %g is negative", fn, what, v);
    return 0;
}

int weft__proc_check(const char *const *argv, const weft_run_opts *o, const char *fn)
{
    if (!argv || !argv[0] || !argv[0][0])
        return weft__err(WEFT_EINVAL, "%s: argv is NULL or its program name is empty", fn);
    unsigned known = WEFT_RUN_CHECK | WEFT_RUN_ENV_REPLACE | WEFT_RUN_SAME_PGROUP |
                     WEFT_RUN_KEEP_SIGNALS | WEFT_RUN_NEW_PGROUP;
    if (o->flags & ~known)
        return weft__err(WEFT_EINVAL, "%s: unknown flags 0x%x", fn, o->flags & ~known);
    if ((o->flags & WEFT_RUN_SAME_PGROUP) && (o->flags & WEFT_RUN_NEW_PGROUP))
        return weft__err(WEFT_EINVAL, "%s: WEFT_RUN_SAME_PGROUP with WEFT_RUN_NEW_PGROUP", fn);
    int rc;
    if ((rc = check_stdio(&o->in, 0, fn)) || (rc = check_stdio(&o->out, 1, fn)) ||
        (rc = check_stdio(&o->err, 2, fn)))
        return rc;
    if (o->input_len && !o->input)
        return weft__err(WEFT_EINVAL, "%s: input_len %zu with a NULL input", fn, o->input_len);
    if (o->input && weft__proc_in_mode(o) != WEFT_STDIO_PIPE)
        return weft__err(WEFT_EINVAL, "%s: opts.input needs opts.in.mode PIPE (or INHERIT)", fn);
    if ((rc = check_seconds(o->timeout, "opts.timeout", fn)) ||
        (rc = check_seconds(o->kill_grace, "opts.kill_grace", fn)))
        return rc;
    if (o->cwd && !o->cwd[0]) return weft__err(WEFT_EINVAL, "%s: opts.cwd is empty", fn);
    if (o->env && (o->flags & WEFT_RUN_ENV_REPLACE)) {
        for (const char *const *e = o->env; *e; e++)
            if (!strchr(*e, '=') || **e == '=')
                return weft__err(WEFT_EINVAL, "%s: environment entry \"%s\" is not NAME=VALUE", fn,
                                 *e);
    } else if (o->env) {
        for (const char *const *e = o->env; *e; e++)
            if (!**e || **e == '=')
                return weft__err(WEFT_EINVAL, "%s: environment entry \"%s\" has no name", fn, *e);
    }
    return 0;
}

/* ---- environment ---------------------------------------------------------- */

static size_t name_len(const char *entry)
{
    const char *eq = strchr(entry, '=');
    return eq ? (size_t)(eq - entry) : strlen(entry);
}

/* The child's environment: `environ` itself (no copy) when inheriting, the
 * caller's list when replacing, else a new array of pointers (into environ
 * and o->env; the strings are not copied) that *owned gets to free. */
static int build_env(const weft_run_opts *o, char ***envp, char ***owned, const char *fn)
{
    *owned = NULL;
    if (!o->env) {
        *envp = environ;
        return 0;
    }
    if (o->flags & WEFT_RUN_ENV_REPLACE) {
        *envp = (char **)o->env;
        return 0;
    }
    size_t n = 0, m = 0;
    for (char **e = environ; e && *e; e++) n++;
    for (const char *const *e = o->env; *e; e++) m++;
    char **v = malloc((n + m + 1) * sizeof *v);
    if (!v) return weft__err(WEFT_ENOMEM, "%s: out of memory for the environment", fn);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) v[k++] = environ[i];
    for (size_t j = 0; j < m; j++) {
        const char *e = o->env[j];
        size_t nl = name_len(e);
        bool set = e[nl] == '=';
        size_t w = 0;
        /* drop every inherited (or earlier) entry of that name */
        for (size_t i = 0; i < k; i++)
            if (!(name_len(v[i]) == nl && !strncmp(v[i], e, nl))) v[w++] = v[i];
        k = w;
        if (set) v[k++] = (char *)e;
    }
    v[k] = NULL;
    *envp = v;
    *owned = v;
    return 0;
}

/* The value of NAME in `env` (a NULL-terminated list), or NULL. */
static const char *env_get(char *const *env, const char *name)
{
    size_t nl = strlen(name);
    for (char *const *e = env; e && *e; e++)
        if (!strncmp(*e, name, nl) && (*e)[nl] == '=') return *e + nl + 1;
    return NULL;
}

/* ---- program lookup ------------------------------------------------------- */

/* Finds `name` (no '/') in `path`: the first regular file with execute
 * permission. @return 0 with *out (malloc'ed), WEFT_ENOENT, WEFT_EPERM (found
 * only entries that are not executable), WEFT_ENOMEM. */
static int search_path(const char *name, const char *path, char **out, const char *fn)
{
    size_t nlen = strlen(name);
    bool denied = false;
    const char *p = path;
    for (;;) {
        const char *colon = strchr(p, ':');
        size_t dlen = colon ? (size_t)(colon - p) : strlen(p);
        /* an empty entry means the current directory, as in execvp */
        char *full = malloc(dlen + nlen + 3);
        if (!full) return weft__err(WEFT_ENOMEM, "%s: out of memory", fn);
        if (dlen == 0) {
            memcpy(full, "./", 2);
            memcpy(full + 2, name, nlen + 1);
        } else {
            memcpy(full, p, dlen);
            full[dlen] = '/';
            memcpy(full + dlen + 1, name, nlen + 1);
        }
        struct stat st;
        if (stat(full, &st) == 0) {
            if (S_ISREG(st.st_mode) && access(full, X_OK) == 0) {
                *out = full;
                return 0;
            }
            denied = true;
        }
        free(full);
        if (!colon) break;
        p = colon + 1;
    }
    if (denied)
        return weft__err(WEFT_EPERM, "%s: '%s' is in PATH but not executable (PATH=%s)", fn, name,
                         path);
    return weft__err(WEFT_ENOENT, "%s: program '%s' not found in PATH=%s", fn, name, path);
}

/* ---- stdio ----------------------------------------------------------------- */

typedef struct spawn_fds {
    int child[3];  /* the descriptor dup2'ed to 0/1/2 in the child, -1 inherit */
    int close[10]; /* descriptors to close in the parent after the spawn */
    int nclose;
    int devnull;
    bool merge_err; /* 2>&1 */
} spawn_fds;

static void fds_close_all(spawn_fds *f)
{
    for (int i = 0; i < f->nclose; i++) close(f->close[i]);
    f->nclose = 0;
}

static int open_devnull(spawn_fds *f, const char *fn)
{
    if (f->devnull >= 0) return f->devnull;
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return weft__err(-e, "%s: cannot open /dev/null: %s", fn, strerror(e));
    }
    f->devnull = fd;
    f->close[f->nclose++] = fd;
    return fd;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -errno;
    return 0;
}

/* Sets up the child's descriptor for `slot` (0 stdin, 1 stdout, 2 stderr);
 * the parent's end of a pipe goes to *parent. */
static int setup_slot(const weft_stdio *s, weft_stdio_mode mode, int slot, spawn_fds *f,
                      int *parent, const char *fn)
{
    static const char *names[] = {"stdin", "stdout", "stderr"};
    *parent = -1;
    switch (mode) {
    case WEFT_STDIO_INHERIT:
        return 0;
    case WEFT_STDIO_PIPE: {
        int pf[2];
        if (pipe2(pf, O_CLOEXEC) != 0) {
            int e = errno;
            return weft__err(e == EMFILE || e == ENFILE ? WEFT_EAGAIN : -e,
                             "%s: pipe for the child's %s: %s", fn, names[slot], strerror(e));
        }
        int mine = slot == 0 ? pf[1] : pf[0], theirs = slot == 0 ? pf[0] : pf[1];
        f->close[f->nclose++] = theirs;
        int rc = set_nonblock(mine);
        if (rc) {
            close(mine);
            return weft__err(rc, "%s: fcntl: %s", fn, strerror(-rc));
        }
        *parent = mine;
        f->child[slot] = theirs;
        return 0;
    }
    case WEFT_STDIO_NULL: {
        int fd = open_devnull(f, fn);
        if (fd < 0) return fd;
        f->child[slot] = fd;
        return 0;
    }
    case WEFT_STDIO_FD:
        f->child[slot] = s->fd;
        return 0;
    case WEFT_STDIO_FILE: {
        int fl = slot == 0 ? O_RDONLY : O_WRONLY | O_CREAT | (s->append ? O_APPEND : O_TRUNC);
        int fd = open(s->path, fl | O_CLOEXEC, 0666);
        if (fd < 0) {
            int e = errno;
            return weft__err(-e, "%s: cannot open '%s' for the child's %s: %s", fn, s->path,
                             names[slot], strerror(e));
        }
        f->close[f->nclose++] = fd;
        f->child[slot] = fd;
        return 0;
    }
    case WEFT_STDIO_STDOUT:
        f->merge_err = true;
        return 0;
    }
    return WEFT_EINVAL;
}

/* ---- errors ----------------------------------------------------------------- */

static int spawn_error(int e, const char *prog, const char *cwd, const char *fn)
{
    if (cwd && (e == ENOENT || e == ENOTDIR || e == EACCES || e == ELOOP || e == ENAMETOOLONG)) {
        int dfd = open(cwd, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int de = dfd < 0 ? errno : 0;
        if (dfd >= 0) {
            if (faccessat(dfd, ".", X_OK, 0) != 0) de = errno;
            close(dfd);
        }
        if (de)
            return weft__err(WEFT_ENOTDIR, "%s: cannot enter the working directory '%s': %s", fn,
                             cwd, strerror(de));
    }
    switch (e) {
    case ENOENT:
    case ENOTDIR:
    case ELOOP:
    case ENAMETOOLONG:
        return weft__err(WEFT_ENOENT, "%s: program '%s' not found: %s", fn, prog, strerror(e));
    case EACCES:
    case EPERM:
    case ENOEXEC:
    case EISDIR:
        return weft__err(WEFT_EPERM, "%s: '%s' is not executable: %s", fn, prog, strerror(e));
    case EAGAIN:
        return weft__err(WEFT_EAGAIN, "%s: cannot start '%s': %s", fn, prog, strerror(e));
    case ENOMEM:
        return weft__err(WEFT_ENOMEM, "%s: cannot start '%s': %s", fn, prog, strerror(e));
    default:
        return weft__err(-e, "%s: cannot start '%s': %s", fn, prog, strerror(e));
    }
}

/* ---- spawn ---------------------------------------------------------------- */

int weft__proc_spawn(const char *const *argv, const weft_run_opts *o, bool want_pidfd, weft_proc *p,
                     const char *fn)
{
    p->pid = -1;
    p->pidfd = p->in_fd = p->out.fd = p->err.fd = -1;

    char **envp = NULL, **env_owned = NULL;
    int rc = build_env(o, &envp, &env_owned, fn);
    if (rc) return rc;

    const char *prog = argv[0];
    char *found = NULL;
    if (!strchr(prog, '/')) {
        const char *path = o->path;
        if (!path) path = env_get(envp, "PATH");
        if (!path) path = "/bin:/usr/bin";
        rc = search_path(prog, path, &found, fn);
        if (rc) {
            free(env_owned);
            return rc;
        }
        prog = found;
    }

    /* A group of its own is what a timeout kills; without one the child
     * stays in the caller's (foreground) group, where Ctrl-C reaches it. */
    bool timeout = o->timeout > 0 && o->timeout < 9.2e9;
    bool own_group =
        !(o->flags & WEFT_RUN_SAME_PGROUP) && (timeout || (o->flags & WEFT_RUN_NEW_PGROUP));
    spawn_fds f = {.child = {-1, -1, -1}, .devnull = -1};
    int parent[3] = {-1, -1, -1};
    const weft_stdio *slots[3] = {&o->in, &o->out, &o->err};
    weft_stdio_mode modes[3] = {weft__proc_in_mode(o), o->out.mode, o->err.mode};
    for (int i = 0; i < 3 && !rc; i++) rc = setup_slot(slots[i], modes[i], i, &f, &parent[i], fn);
    /* A source in 0..2 that is not its own slot is moved above 2 first. */
    for (int i = 0; i < 3 && !rc; i++) {
        int src = f.child[i];
        if (src >= 0 && src <= 2 && src != i) {
            int d = fcntl(src, F_DUPFD_CLOEXEC, 3);
            if (d < 0) {
                int e = errno;
                rc = weft__err(-e, "%s: fcntl(F_DUPFD_CLOEXEC): %s", fn, strerror(e));
                break;
            }
            f.close[f.nclose++] = d;
            for (int j = i; j < 3; j++)
                if (f.child[j] == src) f.child[j] = d;
        }
    }

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    bool fa_init = false, attr_init = false;
    if (!rc) {
        int e = posix_spawn_file_actions_init(&fa);
        fa_init = e == 0;
        for (int i = 0; i < 3 && !e; i++)
            if (f.child[i] >= 0) e = posix_spawn_file_actions_adddup2(&fa, f.child[i], i);
        if (!e && f.merge_err) e = posix_spawn_file_actions_adddup2(&fa, 1, 2);
        if (!e && o->cwd) e = posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
        if (!e) e = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
        if (!e) {
            e = posix_spawnattr_init(&attr);
            attr_init = e == 0;
        }
        short flags = POSIX_SPAWN_SETSIGMASK;
        if (!e) {
            sigset_t none;
            sigemptyset(&none);
            e = posix_spawnattr_setsigmask(&attr, &none);
        }
        if (!e && !(o->flags & WEFT_RUN_KEEP_SIGNALS)) {
            sigset_t def;
            sigemptyset(&def);
            sigaddset(&def, SIGPIPE);
            sigaddset(&def, SIGXFSZ);
            e = posix_spawnattr_setsigdefault(&attr, &def);
            flags |= POSIX_SPAWN_SETSIGDEF;
        }
        if (!e && own_group) {
            e = posix_spawnattr_setpgroup(&attr, 0);
            flags |= POSIX_SPAWN_SETPGROUP;
        }
        if (!e) e = posix_spawnattr_setflags(&attr, flags);
        if (e)
            rc = weft__err(e == ENOMEM ? WEFT_ENOMEM : -e, "%s: posix_spawn setup: %s", fn,
                           strerror(e));
    }

    if (!rc) {
        p->t0_ns = weft__now_ns();
        pid_t pid;
        int e = posix_spawn(&pid, prog, &fa, &attr, (char *const *)argv, envp);
        if (e)
            rc = spawn_error(e, prog, o->cwd, fn);
        else
            p->pid = pid;
    }

    if (fa_init) posix_spawn_file_actions_destroy(&fa);
    if (attr_init) posix_spawnattr_destroy(&attr);
    fds_close_all(&f);
    free(found);
    free(env_owned);
    if (rc) {
        for (int i = 0; i < 3; i++)
            if (parent[i] >= 0) close(parent[i]);
        return rc;
    }
    p->in_fd = parent[0];
    p->in_pipe = parent[0] >= 0;
    p->out.fd = parent[1];
    p->err.fd = parent[2];
    p->own_group = own_group;
    if (want_pidfd && !atomic_load_explicit(&weft__proc_no_pidfd, memory_order_relaxed))
        p->pidfd = weft__pidfd_open((int)p->pid);
    return 0;
}
