/* forkserver.c : the fork server of the processes backend.
 *
 * Why a server: fork() in a program that has threads copies only the calling
 * thread; a lock another thread held (malloc's, stdio's, the program's own)
 * stays locked forever in the child. A worker process must be forked from a
 * process that has exactly one thread. weft_init() forks this server first
 * thing in main(), while the program is still single-threaded; from then on
 * every worker, including each replacement of a crashed one, is forked by
 * the server, which never starts a thread.
 *
 * Protocol: a SOCK_SEQPACKET socket pair (message boundaries kept). The
 * program sends one request at a time under fs_mu and reads the reply:
 *   SPAWN  + the worker's memfd (SCM_RIGHTS) -> pid or -errno
 *   KILL   pid, signal                       -> 0 or -errno
 * The server reaps its children itself (SIGCHLD through a signalfd), so no
 * zombie is left, and it reports each death in the worker's control block
 * (the first page of the memfd, mapped by the server too): wait status,
 * peak RSS, `dead` set, a futex wake on resp_seq for the proxy waiting
 * there. Because the server kills only children it has not reaped, a kill
 * can never hit a recycled pid.
 *
 * Isolation: a worker holds its own arena and nothing of its siblings. The
 * server's mappings of the control blocks are MADV_DONTFORK (and unmapped
 * in the child besides), it keeps no worker's memfd after the spawn, and at
 * start it closes every descriptor it inherited from the program (however
 * many: close_range, or a walk of /proc/self/fd).
 *
 * Lifetime: PR_SET_PDEATHSIG(SIGKILL) in the server (parent: the program)
 * and in every worker (parent: the server), so killing the program kills
 * the server and with it every worker. When the program closes its end of
 * the socket (it exits), the server kills and reaps its workers and exits.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/processes/processes_internal.h"

enum {
    OP_SPAWN = 1,
    OP_KILL = 2
};

typedef struct fs_req {
    int32_t op;
    int32_t pid;
    int32_t sig;
    int32_t pad;
    uint64_t memory_limit;
} fs_req;

typedef struct fs_rep {
    int32_t rc;
    int32_t pid;
} fs_rep;

static pthread_mutex_t fs_mu = PTHREAD_MUTEX_INITIALIZER;
static int fs_sock = -1;
static pid_t fs_server;
/* what a forked worker runs (remote.c's weft__worker_main, handed in by
 * weft__fs_start so that this file does not call back into remote.c) */
static void (*fs_worker_main)(int memfd);

bool weft__in_worker(void)
{
    return weft__worker_process;
}

pid_t weft__fs_pid(void)
{
    pthread_mutex_lock(&fs_mu);
    pid_t p = fs_server;
    pthread_mutex_unlock(&fs_mu);
    return p;
}

/* ---- the server side ------------------------------------------------------------ */

typedef struct child {
    pid_t pid;
    weft__wctl *ctl;
} child;

static child *kids;
static size_t nkids, capkids;

static void report_death(pid_t pid, int status, const struct rusage *ru)
{
    for (size_t i = 0; i < nkids; i++) {
        if (kids[i].pid != pid) continue;
        weft__wctl *c = kids[i].ctl;
        c->status = status;
        c->maxrss_kb = ru->ru_maxrss;
        __atomic_store_n(&c->dead, 1, __ATOMIC_SEQ_CST);
        __atomic_fetch_add(&c->resp_seq, 1, __ATOMIC_SEQ_CST);
        weft__futex_wake_ex(&c->resp_seq, 8, true);
        munmap(c, WEFT__ARENA_CTRL);
        kids[i] = kids[--nkids];
        return;
    }
}

static void reap(void)
{
    for (;;) {
        int status;
        struct rusage ru;
        pid_t p = wait4(-1, &status, WNOHANG, &ru);
        if (p <= 0) return;
        report_death(p, status, &ru);
    }
}

static int server_spawn(int sock, int sfd, int memfd, uint64_t memory_limit, pid_t *out)
{
    void *m = mmap(NULL, WEFT__ARENA_CTRL, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (m == MAP_FAILED) return -errno;
    /* The server's view of a control block is its own: a worker forked
     * later must not get it (a task could then write another worker's
     * block: mark it dead, fail an innocent task). */
    madvise(m, WEFT__ARENA_CTRL, MADV_DONTFORK);
    if (weft__grow(&kids, &capkids, nkids + 1, sizeof *kids, 16)) {
        munmap(m, WEFT__ARENA_CTRL);
        return -ENOMEM;
    }
    pid_t server = getpid();
    pid_t p = fork();
    if (p < 0) {
        int e = errno;
        munmap(m, WEFT__ARENA_CTRL);
        return -e;
    }
    if (p == 0) {
        /* the worker */
        weft__worker_process = true;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != server) _exit(111);
        close(sock);
        close(sfd);
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        signal(SIGCHLD, SIG_DFL);
        /* MADV_DONTFORK kept them out; should it have failed, unmap them */
        munmap(m, WEFT__ARENA_CTRL);
        for (size_t i = 0; i < nkids; i++) munmap(kids[i].ctl, WEFT__ARENA_CTRL);
        if (memory_limit) {
            struct rlimit rl = {(rlim_t)memory_limit, (rlim_t)memory_limit};
            setrlimit(RLIMIT_DATA, &rl);
        }
        fs_worker_main(memfd); /* never returns */
        _exit(127);
    }
    kids[nkids].pid = p;
    kids[nkids].ctl = m;
    nkids++;
    *out = p;
    return 0;
}

static void server_loop(int sock) __attribute__((noreturn));
static void server_loop(int sock)
{
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    int keep[2] = {sock, sfd};
    weft__close_fds_except(keep, 2); /* all the program's others, however many */
    for (;;) {
        struct pollfd pf[2] = {{sock, POLLIN, 0}, {sfd, POLLIN, 0}};
        int r = poll(pf, 2, -1);
        if (r < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (pf[1].revents) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
            }
            reap();
        }
        if (!pf[0].revents) continue;
        fs_req q;
        int memfd = -1;
        char cbuf[CMSG_SPACE(sizeof(int))];
        struct iovec iov = {&q, sizeof q};
        struct msghdr mh = {0};
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof cbuf;
        ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) continue;
            break; /* the program is gone */
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                memcpy(&memfd, CMSG_DATA(c), sizeof memfd);
        fs_rep rep = {-EINVAL, 0};
        if (q.op == OP_SPAWN && memfd >= 0 && n == (ssize_t)sizeof q) {
            pid_t p = 0;
            rep.rc = server_spawn(sock, sfd, memfd, q.memory_limit, &p);
            rep.pid = p;
        } else if (q.op == OP_KILL && n == (ssize_t)sizeof q) {
            reap(); /* a child already dead is reported, not killed */
            rep.rc = -ESRCH;
            for (size_t i = 0; i < nkids; i++)
                if (kids[i].pid == q.pid) rep.rc = kill(q.pid, q.sig) == 0 ? 0 : -errno;
        }
        if (memfd >= 0) close(memfd);
        while (send(sock, &rep, sizeof rep, MSG_NOSIGNAL) < 0 && errno == EINTR) {
        }
    }
    for (size_t i = 0; i < nkids; i++) kill(kids[i].pid, SIGKILL);
    while (nkids > 0) {
        int status;
        struct rusage ru;
        pid_t p = wait4(-1, &status, 0, &ru);
        if (p < 0) break;
        report_death(p, status, &ru);
    }
    _exit(0);
}

/* ---- the program side ------------------------------------------------------------- */

static int thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* Reaps a dead server (the program's own child) and forgets it. fs_mu held. */
static void server_gone(void)
{
    if (fs_sock >= 0) close(fs_sock);
    fs_sock = -1;
    if (fs_server > 0) waitpid(fs_server, NULL, 0);
    fs_server = 0;
}

bool weft__fs_alive(void)
{
    pthread_mutex_lock(&fs_mu);
    bool ok = fs_server > 0;
    if (ok) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_PID, (id_t)fs_server, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid)
            ok = false;
        if (!ok) server_gone();
    }
    pthread_mutex_unlock(&fs_mu);
    return ok;
}

int weft__fs_start(const char *who, void (*worker_main)(int memfd))
{
    fs_worker_main = worker_main;
    pthread_mutex_lock(&fs_mu);
    if (fs_sock >= 0) {
        pthread_mutex_unlock(&fs_mu);
        return 0;
    }
    if (weft__worker_process) {
        pthread_mutex_unlock(&fs_mu);
        return weft__err(WEFT_ENOTSUP, "%s: not inside a worker process of the processes backend",
                         who);
    }
    int nt = thread_count();
    if (nt != 1) {
        pthread_mutex_unlock(&fs_mu);
        return weft__err(WEFT_ENOTSUP,
                         "%s: the processes backend needs weft_init(&argc, &argv) at the start of "
                         "main(), before any thread is created (this program has %d threads now, "
                         "and forking workers from it is not safe)",
                         who, nt);
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        int e = errno;
        pthread_mutex_unlock(&fs_mu);
        return weft__err(WEFT_EAGAIN, "%s: socketpair: %s", who, strerror(e));
    }
    fflush(NULL); /* nothing buffered may be written twice */
    pid_t parent = getpid();
    pid_t p = fork();
    if (p < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        pthread_mutex_unlock(&fs_mu);
        return weft__err(WEFT_EAGAIN, "%s: cannot fork the fork server: %s", who, strerror(e));
    }
    if (p == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(0);
        prctl(PR_SET_NAME, "weft-forksrv");
        close(sv[0]);
        signal(SIGINT, SIG_IGN); /* ^C goes to the program, which decides */
        signal(SIGPIPE, SIG_IGN);
        server_loop(sv[1]);
    }
    close(sv[1]);
    fs_sock = sv[0];
    fs_server = p;
    pthread_mutex_unlock(&fs_mu);
    return 0;
}

/* One request and its reply; fs_mu held. */
static int call(const fs_req *q, int fd, fs_rep *rep)
{
    if (fs_sock < 0) return -EPIPE;
    struct iovec iov = {(void *)q, sizeof *q};
    struct msghdr mh = {0};
    char cbuf[CMSG_SPACE(sizeof(int))];
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (fd >= 0) {
        memset(cbuf, 0, sizeof cbuf);
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof cbuf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    ssize_t n;
    while ((n = sendmsg(fs_sock, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
    }
    if (n != (ssize_t)sizeof *q) {
        server_gone();
        return -EPIPE;
    }
    while ((n = recv(fs_sock, rep, sizeof *rep, 0)) < 0 && errno == EINTR) {
    }
    if (n != (ssize_t)sizeof *rep) {
        server_gone();
        return -EPIPE;
    }
    return 0;
}

int weft__fs_spawn(int memfd, size_t memory_limit, pid_t *pid)
{
    fs_req q = {OP_SPAWN, 0, 0, 0, memory_limit};
    fs_rep rep;
    pthread_mutex_lock(&fs_mu);
    int rc = call(&q, memfd, &rep);
    pthread_mutex_unlock(&fs_mu);
    if (rc)
        return weft__err(WEFT_ECRASHED, "the fork server of the processes backend is gone: no "
                                        "new worker can be started");
    if (rep.rc < 0)
        return weft__err(WEFT_EAGAIN, "cannot fork a worker process: %s", strerror(-rep.rc));
    *pid = rep.pid;
    return 0;
}

int weft__fs_kill(pid_t pid, int sig)
{
    fs_req q = {OP_KILL, pid, sig, 0, 0};
    fs_rep rep;
    pthread_mutex_lock(&fs_mu);
    int rc = call(&q, -1, &rep);
    pthread_mutex_unlock(&fs_mu);
    if (rc) return WEFT_ECRASHED;
    return rep.rc < 0 ? WEFT_ENOENT : 0;
}
