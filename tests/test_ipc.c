/* test_ipc.c : weft_shm, weft_channel, weft_mpqueue, and their tokens.
 *
 * Cross-process tests run the other side in a fresh process: this test
 * binary exec'd again ("--child ROLE TOKEN ..."), which attaches by the
 * token on its command line. An exec'd child inherits no mapping and no
 * memfd (they are close-on-exec), so these tests prove the token path that
 * workers of the processes backend use, not fork inheritance.
 *
 * Every test checks for leaks: open fds before and after, no weft memfd
 * left mapped (/proc/self/maps), and, at the end, /dev/shm unchanged and no
 * child process left.
 *
 * The tests that start threads come last (tests run in file order), so that
 * every fork happens while the process is single-threaded, as TSan needs. */
// weft-test-timeout: 180
#define CHECK_CUSTOM_MAIN
#include "check.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static int count_weft_mappings(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "/memfd:weft-")) n++;
    fclose(f);
    return n;
}

/* /dev/shm is shared by every process of the machine (other programs come
 * and go there), so the check is about us: no entry named weft*, and no fd
 * or mapping of ours into /dev/shm. */
static int own_dev_shm_uses(void)
{
    int n = 0;
    DIR *d = opendir("/dev/shm");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (strncmp(e->d_name, "weft", 4) == 0) n++;
        closedir(d);
    }
    d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *e;
        char path[300], link[256];
        while ((e = readdir(d)) != NULL) {
            snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
            ssize_t k = readlink(path, link, sizeof link - 1);
            if (k > 0) {
                link[k] = '\0';
                if (!strncmp(link, "/dev/shm/", 9)) n++;
            }
        }
        closedir(d);
    }
    FILE *f = fopen("/proc/self/maps", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f))
            if (strstr(line, "/dev/shm/")) n++;
        fclose(f);
    }
    return n;
}

#define LEAK_BEGIN() int leak_fds0_ = check_count_fds()
#define LEAK_END()                                                           \
    do {                                                                     \
        CHECK_EQ_INT(check_count_fds(), leak_fds0_);                         \
        CHECK_MSG(count_weft_mappings() == 0, "%d weft memfds still mapped", \
                  count_weft_mappings());                                    \
        CHECK_EQ_INT(own_dev_shm_uses(), 0);                                 \
    } while (0)

/* Starts this binary again as "--child ROLE ARGS...". */
static pid_t spawn(const char *role, const char *a1, const char *a2, const char *a3)
{
    fflush(stdout);
    fflush(stderr);
    pid_t p = fork();
    if (p == 0) {
        char *argv[] = {(char *)"test_ipc", (char *)"--child", (char *)role, (char *)a1,
                        (char *)a2,         (char *)a3,        NULL};
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    return p;
}

static void token_str(const weft_ipc_token *t, char *s)
{
    int rc = weft_ipc_token_format(t, s, WEFT_IPC_TOKEN_STRLEN);
    if (rc) check__fail(__FILE__, __LINE__, "token format: %s", weft_last_error());
}

/* Waits for `pid`, checks it exited with `code`. */
static void reap_code(pid_t pid, int code)
{
    int st = 0;
    pid_t r = waitpid(pid, &st, 0);
    CHECK_MSG(r == pid, "waitpid(%d) = %d", (int)pid, (int)r);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == code, "child %d: %s %d (want exit %d)", (int)pid,
              WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
              code);
}

static void reap(pid_t pid)
{
    reap_code(pid, 0);
}

/* The byte at offset i of message k (a pattern both sides can check). */
static unsigned char pat(uint64_t k, size_t i)
{
    return (unsigned char)(k * 131u + i * 7u + 1u);
}

static size_t msg_len(uint64_t k)
{
    return (size_t)((k * 2654435761u) % 3001u); /* 0 .. 3000 bytes */
}

static void fill(unsigned char *b, uint64_t k, size_t n)
{
    for (size_t i = 0; i < n; i++) b[i] = pat(k, i);
}

static bool check_fill(const unsigned char *b, uint64_t k, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != pat(k, i)) return false;
    return true;
}

/* ------------------------------------------------------------------------
 * Child roles (run in a fresh process by exec)
 * ------------------------------------------------------------------------ */

#define CHILD_FAIL(...)                                            \
    do {                                                           \
        fprintf(stderr, "child %s: ", role);                       \
        fprintf(stderr, __VA_ARGS__);                              \
        fprintf(stderr, " (last error: %s)\n", weft_last_error()); \
        return 10 + __LINE__ % 100;                                \
    } while (0)

struct counter_region {
    long counter; /* under the region's lock */
    int seen_pattern;
    int pad;
    int data[1000];
};

static int child_main(int argc, char **argv)
{
    const char *role = argv[2];
    weft_ipc_token tok;
    if (argc < 4 || weft_ipc_token_parse(argv[3], &tok) != 0) {
        fprintf(stderr, "child: bad arguments\n");
        return 2;
    }

    if (!strcmp(role, "shm_add")) { /* adds argv[4] times under the lock */
        long n = atol(argv[4]);
        weft_shm *s;
        if (weft_shm_attach(&tok, &s)) CHILD_FAIL("attach");
        struct counter_region *r = weft_shm_ptr(s);
        bool ok = true;
        for (int i = 0; i < 1000; i++) ok &= r->data[i] == i * 3;
        for (long i = 0; i < n; i++) {
            if (weft_lock_acquire(weft_shm_lock(s), 30)) CHILD_FAIL("lock");
            long v = r->counter;
            __asm__ volatile("" ::: "memory");
            r->counter = v + 1;
            if (weft_lock_release(weft_shm_lock(s))) CHILD_FAIL("unlock");
        }
        if (ok) __atomic_fetch_add(&r->seen_pattern, 1, __ATOMIC_SEQ_CST);
        weft_shm_destroy(s);
        return 0;
    }
    if (!strcmp(role, "shm_fd")) { /* receives the memfd over a unix socket */
        int sock = atoi(argv[4]);
        char b;
        struct iovec io = {&b, 1};
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(sizeof(int))];
        } u;
        struct msghdr mh = {0};
        mh.msg_iov = &io;
        mh.msg_iovlen = 1;
        mh.msg_control = u.buf;
        mh.msg_controllen = sizeof u.buf;
        if (recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) != 1) CHILD_FAIL("recvmsg");
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        if (!c || c->cmsg_type != SCM_RIGHTS) CHILD_FAIL("no SCM_RIGHTS");
        int fd;
        memcpy(&fd, CMSG_DATA(c), sizeof fd);
        if (weft_ipc_token_local_fd(&tok, fd)) CHILD_FAIL("local_fd");
        weft_shm *s;
        if (weft_shm_attach(&tok, &s)) CHILD_FAIL("attach by local fd");
        close(fd);
        struct counter_region *r = weft_shm_ptr(s);
        r->counter = 4242;
        weft_ipc_token t2;
        weft_shm_token(s, &t2);
        if (t2.fd == tok.fd && t2.pid == tok.pid) CHILD_FAIL("the token should name the owner");
        weft_shm_destroy(s);
        close(sock);
        return 0;
    }
    if (!strcmp(role, "chan_echo")) { /* echoes every message until EOF */
        weft_channel *ch;
        if (weft_channel_attach(&tok, &ch)) CHILD_FAIL("attach");
        for (;;) {
            void *m;
            size_t n;
            int rc = weft_channel_recv_alloc(ch, 30, &m, &n);
            if (rc == WEFT_EOF) break;
            if (rc) CHILD_FAIL("recv %d", rc);
            rc = weft_channel_send(ch, m, n, 30);
            free(m);
            if (rc) CHILD_FAIL("send %d", rc);
        }
        weft_channel_destroy(ch);
        return 0;
    }
    if (!strcmp(role, "chan_send")) { /* sends argv[4] messages, then closes */
        long n = atol(argv[4]);
        weft_channel *ch;
        if (weft_channel_attach(&tok, &ch)) CHILD_FAIL("attach");
        unsigned char buf[3001];
        for (long k = 0; k < n; k++) {
            size_t len = msg_len((uint64_t)k);
            fill(buf, (uint64_t)k, len);
            if (weft_channel_send(ch, buf, len, 30)) CHILD_FAIL("send %ld", k);
        }
        weft_channel_destroy(ch);
        return 0;
    }
    if (!strcmp(role, "chan_crash")) { /* sends 3 messages and dies without closing */
        weft_channel *ch;
        if (weft_channel_attach(&tok, &ch)) CHILD_FAIL("attach");
        for (int k = 0; k < 3; k++)
            if (weft_channel_send(ch, &k, sizeof k, 30)) CHILD_FAIL("send");
        raise(SIGKILL);
        return 3;
    }
    if (!strcmp(role, "chan_owner")) { /* owns a channel, reports its token, dies */
        int to_parent = atoi(argv[4]), from_parent = atoi(argv[5]);
        weft_channel *ch;
        if (weft_channel_create(NULL, &ch)) CHILD_FAIL("create");
        weft_ipc_token t;
        char s[WEFT_IPC_TOKEN_STRLEN];
        weft_channel_token(ch, &t);
        weft_ipc_token_format(&t, s, sizeof s);
        int k = 7;
        if (weft_channel_send(ch, &k, sizeof k, 30)) CHILD_FAIL("send");
        if (write(to_parent, s, strlen(s) + 1) != (ssize_t)strlen(s) + 1) CHILD_FAIL("write");
        char b;
        if (read(from_parent, &b, 1) != 1) CHILD_FAIL("read"); /* the parent attached */
        raise(SIGKILL);
        return 3;
    }
    if (!strcmp(role, "q_produce")) { /* puts argv[5] messages tagged argv[4] */
        long id = atol(argv[4]), n = atol(argv[5]);
        weft_mpqueue *q;
        if (weft_mpqueue_attach(&tok, &q)) CHILD_FAIL("attach");
        for (long k = 0; k < n; k++) {
            long m[2] = {id, k};
            if (weft_mpqueue_put(q, m, sizeof m, 30)) CHILD_FAIL("put");
        }
        weft_mpqueue_destroy(q);
        return 0;
    }
    if (!strcmp(role, "q_consume")) { /* gets until EOF; sums into a region */
        weft_ipc_token rt;
        if (weft_ipc_token_parse(argv[4], &rt)) CHILD_FAIL("token 2");
        int slot = atoi(argv[5]);
        weft_mpqueue *q;
        weft_shm *s;
        if (weft_mpqueue_attach(&tok, &q)) CHILD_FAIL("attach");
        if (weft_shm_attach(&rt, &s)) CHILD_FAIL("attach shm");
        long *res = (long *)weft_shm_ptr(s) + 2 * slot;
        for (;;) {
            long m[2];
            size_t n;
            int rc = weft_mpqueue_get(q, 30, m, sizeof m, &n);
            if (rc == WEFT_EOF) break;
            if (rc || n != sizeof m) CHILD_FAIL("get %d", rc);
            res[0]++;
            res[1] += m[0] * 1000003 + m[1];
        }
        weft_mpqueue_destroy(q);
        weft_shm_destroy(s);
        return 0;
    }
    if (!strcmp(role, "q_spam")) { /* puts big messages until killed */
        size_t size = (size_t)atol(argv[4]);
        weft_mpqueue *q;
        if (weft_mpqueue_attach(&tok, &q)) CHILD_FAIL("attach");
        unsigned char *b = malloc(size);
        if (!b) CHILD_FAIL("malloc");
        for (uint64_t k = 0;; k++) {
            memcpy(b, &k, 8);
            memset(b + 8, (int)(k & 0xff), size - 8);
            int rc = weft_mpqueue_put(q, b, size, 30);
            if (rc) CHILD_FAIL("put %d", rc);
        }
    }
    fprintf(stderr, "child: unknown role %s\n", role);
    return 2;
}

/* ------------------------------------------------------------------------
 * Tokens
 * ------------------------------------------------------------------------ */

TEST(token_text_round_trip)
{
    weft_ipc_token t = {
        WEFT_IPC_TOKEN_MAGIC, WEFT_IPC_CHANNEL, 1234, 17, 1u << 20, 0xfedcba9876543210ull, 0};
    char s[WEFT_IPC_TOKEN_STRLEN];
    CHECK_OK(weft_ipc_token_format(&t, s, sizeof s));
    CHECK_EQ_STR(s, "weft-ipc:2:1234:17:1048576:fedcba9876543210");
    weft_ipc_token u;
    CHECK_OK(weft_ipc_token_parse(s, &u));
    CHECK(memcmp(&t, &u, sizeof t) == 0);
    CHECK_ERR(weft_ipc_token_format(&t, s, 10), WEFT_EINVAL);
    CHECK_ERR(weft_ipc_token_parse("weft-ipc:2:1234:17:1048576", &u), WEFT_EINVAL);
    CHECK_ERR(weft_ipc_token_parse("weft-ipc:2:-1:17:4096:ff", &u), WEFT_EINVAL);
    CHECK_ERR(weft_ipc_token_parse("weft-ipc:2:1:17:4096:ffx", &u), WEFT_EINVAL);
    CHECK_ERR(weft_ipc_token_parse("hello", &u), WEFT_EINVAL);
    CHECK_ERR(weft_ipc_token_parse(NULL, &u), WEFT_EINVAL);
    CHECK_EQ_INT(sizeof(weft_ipc_token), 40);
}

/* ------------------------------------------------------------------------
 * weft_shm
 * ------------------------------------------------------------------------ */

TEST(shm_create_is_zeroed_aligned_private_and_sealed)
{
    LEAK_BEGIN();
    weft_shm *s;
    REQUIRE_OK(weft_shm_create(10000, &s));
    CHECK_EQ_U64(weft_shm_size(s), 10000);
    unsigned char *p = weft_shm_ptr(s);
    CHECK(((uintptr_t)p & 63) == 0);
    bool zero = true;
    for (int i = 0; i < 10000; i++) zero &= p[i] == 0;
    CHECK(zero);
    CHECK(!weft_lock_locked(weft_shm_lock(s)));
    weft_ipc_token t;
    CHECK_OK(weft_shm_token(s, &t));
    CHECK_EQ_INT(t.kind, WEFT_IPC_SHM);
    CHECK_EQ_INT(t.pid, getpid());
    CHECK(t.key != 0);
    /* the memfd: mode 0600, close-on-exec, sealed, not in /dev/shm */
    struct stat st;
    REQUIRE(fstat(t.fd, &st) == 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0600);
    CHECK(fcntl(t.fd, F_GETFD) & FD_CLOEXEC);
    int seals = fcntl(t.fd, F_GET_SEALS);
    CHECK(seals >= 0 && (seals & F_SEAL_SHRINK) && (seals & F_SEAL_GROW) && (seals & F_SEAL_SEAL));
    CHECK(ftruncate(t.fd, 10) != 0);
    char link[128] = "", path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", t.fd);
    CHECK(readlink(path, link, sizeof link - 1) > 0);
    CHECK_MSG(strncmp(link, "/memfd:weft-shm", 15) == 0, "%s", link);
    CHECK_EQ_INT(own_dev_shm_uses(), 0);
    CHECK_OK(weft_shm_destroy(s));
    CHECK_OK(weft_shm_destroy(NULL));
    LEAK_END();
}

TEST(shm_bad_arguments)
{
    weft_shm *s = (weft_shm *)1;
    CHECK_ERR(weft_shm_create(0, &s), WEFT_EINVAL);
    CHECK(s == NULL);
    CHECK_ERR(weft_shm_create(16, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_shm_create((size_t)1 << 62, &s), WEFT_EINVAL);
    CHECK_ERR(weft_shm_attach(NULL, &s), WEFT_EINVAL);
    weft_ipc_token t = {0};
    CHECK_ERR(weft_shm_attach(&t, &s), WEFT_EINVAL);
    CHECK(weft_shm_ptr(NULL) == NULL);
    CHECK_EQ_U64(weft_shm_size(NULL), 0);
    CHECK(weft_shm_lock(NULL) == NULL);
}

TEST(shm_two_handles_share_the_bytes)
{
    LEAK_BEGIN();
    weft_shm *a, *b;
    REQUIRE_OK(weft_shm_create(4096, &a));
    weft_ipc_token t;
    CHECK_OK(weft_shm_token(a, &t));
    REQUIRE_OK(weft_shm_attach(&t, &b));
    CHECK(weft_shm_ptr(a) != weft_shm_ptr(b)); /* two mappings ... */
    ((int *)weft_shm_ptr(a))[100] = 77;        /* ... of the same pages */
    CHECK_EQ_INT(((int *)weft_shm_ptr(b))[100], 77);
    CHECK_OK(weft_lock_acquire(weft_shm_lock(a), 0));
    CHECK(weft_lock_locked(weft_shm_lock(b)));
    CHECK_OK(weft_lock_release(weft_shm_lock(a)));
    weft_ipc_token u;
    CHECK_OK(weft_shm_token(b, &u));
    CHECK(memcmp(&t, &u, sizeof t) == 0);
    /* wrong kind */
    weft_channel *ch;
    CHECK_ERR(weft_channel_attach(&t, &ch), WEFT_EINVAL);
    /* the owner destroys: the attached handle keeps the memory */
    CHECK_OK(weft_shm_destroy(a));
    CHECK_EQ_INT(((int *)weft_shm_ptr(b))[100], 77);
    CHECK_OK(weft_shm_destroy(b));
    LEAK_END();
}

TEST(shm_stale_and_forged_tokens_fail_cleanly)
{
    LEAK_BEGIN();
    weft_shm *a, *b;
    REQUIRE_OK(weft_shm_create(100, &a));
    weft_ipc_token t;
    weft_shm_token(a, &t);
    weft_ipc_token forged = t;
    forged.key ^= 1;
    CHECK_ERR(weft_shm_attach(&forged, &b), WEFT_ENOENT);
    forged = t;
    forged.size += 4096;
    CHECK_ERR(weft_shm_attach(&forged, &b), WEFT_ENOENT);
    forged = t;
    forged.fd = 0; /* stdin: not a weft memfd */
    CHECK_ERR(weft_shm_attach(&forged, &b), WEFT_ENOENT);
    CHECK_OK(weft_shm_destroy(a));
    CHECK_ERR(weft_shm_attach(&t, &b), WEFT_ENOENT); /* destroyed */
    /* the fd number reused by another object: the key differs */
    weft_shm *c;
    REQUIRE_OK(weft_shm_create(100, &c));
    weft_ipc_token tc;
    weft_shm_token(c, &tc);
    if (tc.fd == t.fd) {
        CHECK_ERR(weft_shm_attach(&t, &b), WEFT_ENOENT);
    }
    weft_shm_destroy(c);
    /* an owner that has exited */
    weft_ipc_token dead = t;
    pid_t p = fork();
    if (p == 0) _exit(0);
    reap(p);
    dead.pid = p;
    CHECK_ERR(weft_shm_attach(&dead, &b), WEFT_ENOENT);
    LEAK_END();
}

TEST(shm_exec_children_attach_by_token_and_count_under_the_lock)
{
    LEAK_BEGIN();
    weft_shm *s;
    REQUIRE_OK(weft_shm_create(sizeof(struct counter_region), &s));
    struct counter_region *r = weft_shm_ptr(s);
    for (int i = 0; i < 1000; i++) r->data[i] = i * 3;
    weft_ipc_token t;
    weft_shm_token(s, &t);
    char ts[WEFT_IPC_TOKEN_STRLEN], ns[32];
    token_str(&t, ts);
    long per = (long)check_scaled(20000, 1000);
    snprintf(ns, sizeof ns, "%ld", per);
    enum {
        NPROC = 3
    };
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++) pids[i] = spawn("shm_add", ts, ns, NULL);
    for (long k = 0; k < per; k++) { /* the parent counts too */
        CHECK_OK(weft_lock_acquire(weft_shm_lock(s), 30));
        r->counter++;
        CHECK_OK(weft_lock_release(weft_shm_lock(s)));
    }
    for (int i = 0; i < NPROC; i++) reap(pids[i]);
    CHECK_EQ_INT(r->counter, (NPROC + 1) * per);
    CHECK_EQ_INT(r->seen_pattern, NPROC);
    weft_shm_destroy(s);
    LEAK_END();
}

TEST(shm_fd_passed_with_scm_rights)
{
    LEAK_BEGIN();
    weft_shm *s;
    REQUIRE_OK(weft_shm_create(sizeof(struct counter_region), &s));
    weft_ipc_token t;
    weft_shm_token(s, &t);
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0); /* sv[1] inherited by the child */
    fcntl(sv[0], F_SETFD, FD_CLOEXEC);
    char ts[WEFT_IPC_TOKEN_STRLEN], fs[16];
    weft_ipc_token fake = t;
    fake.pid = 1; /* a process whose fds we may not open: only the passed fd works */
    token_str(&fake, ts);
    snprintf(fs, sizeof fs, "%d", sv[1]);
    pid_t p = spawn("shm_fd", ts, fs, NULL);
    close(sv[1]);
    char b = 'x';
    struct iovec io = {&b, 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr mh = {0};
    mh.msg_iov = &io;
    mh.msg_iovlen = 1;
    mh.msg_control = u.buf;
    mh.msg_controllen = sizeof u.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &t.fd, sizeof(int));
    CHECK(sendmsg(sv[0], &mh, 0) == 1);
    reap(p);
    close(sv[0]);
    CHECK_EQ_INT(((struct counter_region *)weft_shm_ptr(s))->counter, 4242);
    weft_shm_destroy(s);
    LEAK_END();
}

/* ------------------------------------------------------------------------
 * weft_channel
 * ------------------------------------------------------------------------ */

TEST(channel_in_one_process)
{
    LEAK_BEGIN();
    weft_channel_options o = {.capacity = 1000}; /* rounded up to 4096 */
    weft_channel *a, *b;
    REQUIRE_OK(weft_channel_create(&o, &a));
    CHECK_EQ_U64(weft_channel_max_message(a), 4096 - 8);
    weft_ipc_token t;
    CHECK_OK(weft_channel_token(a, &t));
    CHECK_EQ_INT(t.kind, WEFT_IPC_CHANNEL);
    REQUIRE_OK(weft_channel_attach(&t, &b));
    weft_channel *c;
    CHECK_ERR(weft_channel_attach(&t, &c), WEFT_EBUSY); /* one peer */

    char buf[5000];
    size_t n = 99;
    CHECK_RC(weft_channel_recv(b, 0, buf, sizeof buf, &n), WEFT_ETIMEDOUT);
    CHECK_RC(weft_channel_recv(b, 0.01, buf, sizeof buf, &n), WEFT_ETIMEDOUT);
    CHECK_RC(weft_channel_poll(b, 0), WEFT_ETIMEDOUT);
    CHECK_OK(weft_channel_send(a, "hello", 5, 0));
    CHECK_OK(weft_channel_send(a, "", 0, 0));
    CHECK_OK(weft_channel_send(b, "back", 4, 0)); /* duplex */
    CHECK_OK(weft_channel_poll(b, 0));
    CHECK_OK(weft_channel_recv(b, 1, buf, sizeof buf, &n));
    CHECK(n == 5 && memcmp(buf, "hello", 5) == 0);
    CHECK_OK(weft_channel_recv(b, 1, NULL, 0, &n)); /* an empty message */
    CHECK_EQ_U64(n, 0);
    void *m;
    CHECK_OK(weft_channel_recv_alloc(a, 1, &m, &n));
    CHECK(n == 4 && memcmp(m, "back", 4) == 0);
    free(m);

    /* too big for the ring: refused; too big for the buffer: left in place */
    CHECK_ERR(weft_channel_send(a, buf, 4089, 0), WEFT_EOVERFLOW);
    memset(buf, 'z', 4088);
    CHECK_OK(weft_channel_send(a, buf, 4088, 0));              /* the largest fits an empty ring */
    CHECK_RC(weft_channel_send(a, "x", 1, 0), WEFT_ETIMEDOUT); /* full */
    CHECK_RC(weft_channel_send(a, "x", 1, 0.02), WEFT_ETIMEDOUT);
    CHECK_ERR(weft_channel_recv(b, 0, buf, 100, &n), WEFT_EOVERFLOW);
    CHECK_EQ_U64(n, 4088);
    memset(buf, 0, sizeof buf);
    CHECK_OK(weft_channel_recv(b, 0, buf, sizeof buf, &n));
    CHECK(n == 4088 && buf[0] == 'z' && buf[4087] == 'z');

    /* bad arguments */
    CHECK_ERR(weft_channel_send(a, NULL, 1, 0), WEFT_EINVAL);
    CHECK_ERR(weft_channel_send(a, "x", 1, -1), WEFT_EINVAL);
    CHECK_ERR(weft_channel_send(a, "x", 1, NAN), WEFT_EINVAL);
    CHECK_ERR(weft_channel_recv(b, -1, buf, sizeof buf, &n), WEFT_EINVAL);
    CHECK_ERR(weft_channel_recv(b, 0, buf, sizeof buf, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_channel_send(NULL, "x", 1, 0), WEFT_EINVAL);

    /* close: the other end drains, then EOF; sends to a closed end fail */
    CHECK_OK(weft_channel_send(a, "last", 4, 0));
    CHECK_OK(weft_channel_close(a));
    CHECK_OK(weft_channel_close(a)); /* idempotent */
    CHECK_ERR(weft_channel_send(a, "x", 1, 0), WEFT_ECLOSED);
    CHECK_ERR(weft_channel_recv(a, 0, buf, sizeof buf, &n), WEFT_ECLOSED);
    CHECK_OK(weft_channel_poll(b, 0));
    CHECK_OK(weft_channel_recv(b, 0, buf, sizeof buf, &n));
    CHECK(n == 4 && memcmp(buf, "last", 4) == 0);
    CHECK_RC(weft_channel_recv(b, WEFT_FOREVER, buf, sizeof buf, &n), WEFT_EOF);
    CHECK_OK(weft_channel_poll(b, WEFT_FOREVER)); /* EOF: a recv would not wait */
    CHECK_ERR(weft_channel_send(b, "x", 1, 0), WEFT_ECLOSED);
    CHECK_OK(weft_channel_destroy(b));
    CHECK_OK(weft_channel_destroy(a));
    CHECK_ERR(weft_channel_attach(&t, &c), WEFT_ENOENT);
    LEAK_END();
}

TEST(channel_one_way)
{
    LEAK_BEGIN();
    weft_channel_options o = {.direction = WEFT_CHANNEL_TO_OWNER};
    weft_channel *a, *b;
    REQUIRE_OK(weft_channel_create(&o, &a));
    weft_ipc_token t;
    weft_channel_token(a, &t);
    REQUIRE_OK(weft_channel_attach(&t, &b));
    char buf[8];
    size_t n;
    CHECK_ERR(weft_channel_send(a, "x", 1, 0), WEFT_EPERM);
    CHECK_ERR(weft_channel_recv(b, 0, buf, sizeof buf, &n), WEFT_EPERM);
    CHECK_OK(weft_channel_send(b, "up", 2, 0));
    CHECK_OK(weft_channel_recv(a, 0, buf, sizeof buf, &n));
    CHECK(n == 2 && !memcmp(buf, "up", 2));
    weft_channel_destroy(b);
    CHECK_RC(weft_channel_recv(a, 1, buf, sizeof buf, &n), WEFT_EOF);
    weft_channel_destroy(a);
    weft_channel_options bad = {.direction = (weft_channel_direction)7};
    CHECK_ERR(weft_channel_create(&bad, &a), WEFT_EINVAL);
    bad = (weft_channel_options){.capacity = (size_t)1 << 31};
    CHECK_ERR(weft_channel_create(&bad, &a), WEFT_EINVAL);
    LEAK_END();
}

TEST(channel_echo_with_an_exec_child)
{
    LEAK_BEGIN();
    weft_channel_options o = {.capacity = 8192}; /* small: the ring wraps often */
    weft_channel *ch;
    REQUIRE_OK(weft_channel_create(&o, &ch));
    weft_ipc_token t;
    weft_channel_token(ch, &t);
    char ts[WEFT_IPC_TOKEN_STRLEN];
    token_str(&t, ts);
    pid_t p = spawn("chan_echo", ts, NULL, NULL);
    long total = (long)check_scaled(2000, 200);
    unsigned char out[3001], in[3001];
    long sent = 0, got = 0, bad = 0;
    /* keep a few messages in flight both ways */
    while (got < total) {
        while (sent < total && sent - got < 3) {
            size_t len = msg_len((uint64_t)sent);
            fill(out, (uint64_t)sent, len);
            int rc = weft_channel_send(ch, out, len, 30);
            if (rc) {
                CHECK_OK(rc);
                goto done;
            }
            sent++;
        }
        size_t n;
        int rc = weft_channel_recv(ch, 30, in, sizeof in, &n);
        if (rc) {
            CHECK_OK(rc);
            break;
        }
        if (n != msg_len((uint64_t)got) || !check_fill(in, (uint64_t)got, n)) bad++;
        got++;
    }
done:
    CHECK_EQ_INT(got, total);
    CHECK_EQ_INT(bad, 0);
    CHECK_OK(weft_channel_close(ch)); /* the child sees EOF and exits 0 */
    reap(p);
    weft_channel_destroy(ch);
    LEAK_END();
}

TEST(channel_child_sends_then_closes)
{
    LEAK_BEGIN();
    weft_channel_options o = {.capacity = 4096, .direction = WEFT_CHANNEL_TO_OWNER};
    weft_channel *ch;
    REQUIRE_OK(weft_channel_create(&o, &ch));
    weft_ipc_token t;
    weft_channel_token(ch, &t);
    char ts[WEFT_IPC_TOKEN_STRLEN], ns[32];
    token_str(&t, ts);
    long total = (long)check_scaled(5000, 500);
    snprintf(ns, sizeof ns, "%ld", total);
    pid_t p = spawn("chan_send", ts, ns, NULL);
    unsigned char in[3001];
    long got = 0, bad = 0;
    int rc;
    size_t n;
    while ((rc = weft_channel_recv(ch, 30, in, sizeof in, &n)) == 0) {
        if (n != msg_len((uint64_t)got) || !check_fill(in, (uint64_t)got, n)) bad++;
        got++;
    }
    CHECK_RC(rc, WEFT_EOF);
    CHECK_EQ_INT(got, total);
    CHECK_EQ_INT(bad, 0);
    reap(p);
    weft_channel_destroy(ch);
    LEAK_END();
}

TEST(channel_dead_writer_is_detected)
{
    LEAK_BEGIN();
    weft_channel *ch;
    REQUIRE_OK(weft_channel_create(NULL, &ch));
    weft_ipc_token t;
    weft_channel_token(ch, &t);
    char ts[WEFT_IPC_TOKEN_STRLEN];
    token_str(&t, ts);
    pid_t p = spawn("chan_crash", ts, NULL, NULL);
    /* the child is not reaped while we wait: a zombie counts as dead */
    int k, rc;
    size_t n;
    for (int i = 0; i < 3; i++) {
        CHECK_OK(weft_channel_recv(ch, 30, &k, sizeof k, &n)); /* what it sent arrives */
        CHECK_EQ_INT(k, i);
    }
    double t0 = check_now();
    rc = weft_channel_recv(ch, WEFT_FOREVER, &k, sizeof k, &n);
    CHECK_ERR(rc, WEFT_EPEERDIED);
    CHECK_MSG(check_now() - t0 < 5, "noticed after %.2f s", check_now() - t0);
    CHECK_RC(weft_channel_poll(ch, WEFT_FOREVER), 0);
    CHECK_ERR(weft_channel_recv(ch, 0, &k, sizeof k, &n), WEFT_EPEERDIED);
    /* a send that would wait fails too */
    char big[4000] = {0};
    for (;;) {
        rc = weft_channel_send(ch, big, sizeof big, 5);
        if (rc) break;
    }
    CHECK_ERR(rc, WEFT_EPEERDIED);
    int st;
    CHECK(waitpid(p, &st, 0) == p && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    weft_channel_destroy(ch);
    LEAK_END();
}

TEST(channel_dead_owner_is_detected)
{
    LEAK_BEGIN();
    int up[2], down[2];
    REQUIRE(pipe(up) == 0 && pipe(down) == 0);
    fcntl(up[0], F_SETFD, FD_CLOEXEC);
    fcntl(down[1], F_SETFD, FD_CLOEXEC);
    char a1[16], a2[16];
    snprintf(a1, sizeof a1, "%d", up[1]);
    snprintf(a2, sizeof a2, "%d", down[0]);
    weft_ipc_token dummy = {WEFT_IPC_TOKEN_MAGIC, WEFT_IPC_CHANNEL, 1, 1, 4096, 1, 0};
    char ds[WEFT_IPC_TOKEN_STRLEN];
    token_str(&dummy, ds);
    pid_t p = spawn("chan_owner", ds, a1, a2);
    close(up[1]);
    close(down[0]);
    char ts[WEFT_IPC_TOKEN_STRLEN + 1] = "";
    size_t got = 0;
    while (got < sizeof ts - 1) {
        ssize_t r = read(up[0], ts + got, sizeof ts - 1 - got);
        if (r <= 0) break;
        got += (size_t)r;
        if (memchr(ts, '\0', got)) break;
    }
    weft_ipc_token t;
    REQUIRE_OK(weft_ipc_token_parse(ts, &t));
    weft_channel *ch;
    REQUIRE_OK(weft_channel_attach(&t, &ch));
    CHECK(write(down[1], "g", 1) == 1); /* the owner now dies */
    int k = 0;
    size_t n;
    CHECK_OK(weft_channel_recv(ch, 30, &k, sizeof k, &n));
    CHECK_EQ_INT(k, 7);
    CHECK_ERR(weft_channel_recv(ch, WEFT_FOREVER, &k, sizeof k, &n), WEFT_EPEERDIED);
    int st;
    CHECK(waitpid(p, &st, 0) == p && WIFSIGNALED(st));
    weft_channel *again;
    CHECK_ERR(weft_channel_attach(&t, &again), WEFT_ENOENT); /* its memfd went with it */
    weft_channel_destroy(ch);
    close(up[0]);
    close(down[1]);
    LEAK_END();
}

/* ------------------------------------------------------------------------
 * weft_mpqueue
 * ------------------------------------------------------------------------ */

TEST(mpqueue_in_one_process)
{
    LEAK_BEGIN();
    weft_mpqueue_options o = {.capacity = 4096, .maxsize = 3};
    weft_mpqueue *q, *q2;
    REQUIRE_OK(weft_mpqueue_create(&o, &q));
    weft_ipc_token t;
    CHECK_OK(weft_mpqueue_token(q, &t));
    CHECK_EQ_INT(t.kind, WEFT_IPC_MPQUEUE);
    REQUIRE_OK(weft_mpqueue_attach(&t, &q2)); /* any number of handles */
    CHECK_EQ_U64(weft_mpqueue_max_message(q), 4088);
    char buf[5000];
    size_t n;
    CHECK_RC(weft_mpqueue_get(q, 0, buf, sizeof buf, &n), WEFT_ETIMEDOUT);
    CHECK_RC(weft_mpqueue_get(q, 0.01, buf, sizeof buf, &n), WEFT_ETIMEDOUT);
    CHECK_OK(weft_mpqueue_put(q, "a", 1, 0));
    CHECK_OK(weft_mpqueue_put(q2, "bb", 2, 0));
    CHECK_OK(weft_mpqueue_put(q, "", 0, 0));
    CHECK_EQ_U64(weft_mpqueue_count(q2), 3);
    CHECK_RC(weft_mpqueue_put(q, "d", 1, 0), WEFT_ETIMEDOUT); /* maxsize */
    double t0 = check_now();
    CHECK_RC(weft_mpqueue_put(q, "d", 1, 0.02), WEFT_ETIMEDOUT);
    CHECK(check_now() - t0 >= 0.019);
    /* FIFO across handles; a short buffer leaves the message first */
    CHECK_OK(weft_mpqueue_get(q2, 0, buf, sizeof buf, &n));
    CHECK(n == 1 && buf[0] == 'a');
    CHECK_ERR(weft_mpqueue_get(q2, 0, buf, 1, &n), WEFT_EOVERFLOW);
    CHECK_EQ_U64(n, 2);
    void *m;
    CHECK_OK(weft_mpqueue_get_alloc(q, 0, &m, &n));
    CHECK(n == 2 && !memcmp(m, "bb", 2));
    free(m);
    CHECK_OK(weft_mpqueue_get(q, 0, NULL, 0, &n));
    CHECK_EQ_U64(n, 0);
    CHECK_EQ_U64(weft_mpqueue_count(q), 0);

    /* bytes bound: two 2000-byte messages do not fit 4096 with headers */
    weft_mpqueue_options o2 = {.capacity = 4096};
    weft_mpqueue *b;
    REQUIRE_OK(weft_mpqueue_create(&o2, &b));
    memset(buf, 'q', sizeof buf);
    CHECK_OK(weft_mpqueue_put(b, buf, 2040, 0));
    CHECK_OK(weft_mpqueue_put(b, buf, 2040, 0));
    CHECK_RC(weft_mpqueue_put(b, buf, 1, 0), WEFT_ETIMEDOUT);
    CHECK_ERR(weft_mpqueue_put(b, buf, 4089, 0), WEFT_EOVERFLOW);
    /* the ring wraps: take one, put one of another size, many times; the
     * lengths come out in the order they went in */
    bool ok = true;
    size_t expect[2] = {2040, 2040}, ahead = 0;
    for (int i = 0; i < 200; i++) {
        ok &= weft_mpqueue_get(b, 0, buf, sizeof buf, &n) == 0 && n == expect[ahead];
        size_t len = 2040 - (size_t)(i % 7) * 13;
        ok &= weft_mpqueue_put(b, buf, len, 0) == 0;
        expect[ahead] = len;
        ahead ^= 1;
    }
    CHECK(ok);
    weft_mpqueue_destroy(b);

    /* bad arguments */
    CHECK_ERR(weft_mpqueue_put(q, NULL, 1, 0), WEFT_EINVAL);
    CHECK_ERR(weft_mpqueue_put(q, "x", 1, -1), WEFT_EINVAL);
    CHECK_ERR(weft_mpqueue_get(q, 0, buf, sizeof buf, NULL), WEFT_EINVAL);
    CHECK_ERR(weft_mpqueue_get(NULL, 0, buf, sizeof buf, &n), WEFT_EINVAL);
    weft_mpqueue_options bad = {.capacity = (size_t)1 << 31};
    CHECK_ERR(weft_mpqueue_create(&bad, &b), WEFT_EINVAL);
    CHECK(b == NULL);

    /* close: for every handle; gets drain, then EOF */
    CHECK_OK(weft_mpqueue_put(q, "z", 1, 0));
    CHECK_OK(weft_mpqueue_close(q2));
    CHECK_OK(weft_mpqueue_close(q2));
    CHECK_ERR(weft_mpqueue_put(q, "y", 1, 0), WEFT_ECLOSED);
    CHECK_OK(weft_mpqueue_get(q, WEFT_FOREVER, buf, sizeof buf, &n));
    CHECK(n == 1 && buf[0] == 'z');
    CHECK_RC(weft_mpqueue_get(q, WEFT_FOREVER, buf, sizeof buf, &n), WEFT_EOF);
    CHECK_RC(weft_mpqueue_get(q2, 0, buf, sizeof buf, &n), WEFT_EOF);
    weft_mpqueue_destroy(q2);
    weft_mpqueue_destroy(q);
    CHECK_ERR(weft_mpqueue_attach(&t, &q), WEFT_ENOENT);
    LEAK_END();
}

TEST(mpqueue_exec_producers_and_consumers)
{
    LEAK_BEGIN();
    weft_mpqueue_options o = {.capacity = 4096}; /* small: producers block often */
    weft_mpqueue *q;
    weft_shm *res;
    REQUIRE_OK(weft_mpqueue_create(&o, &q));
    enum {
        NPROD = 3,
        NCONS = 2
    };
    REQUIRE_OK(weft_shm_create(sizeof(long) * 2 * NCONS, &res));
    weft_ipc_token tq, tr;
    weft_mpqueue_token(q, &tq);
    weft_shm_token(res, &tr);
    char qs[WEFT_IPC_TOKEN_STRLEN], rs[WEFT_IPC_TOKEN_STRLEN], a[32], b[32];
    token_str(&tq, qs);
    token_str(&tr, rs);
    long per = (long)check_scaled(5000, 500);
    pid_t pids[NPROD + NCONS];
    for (int i = 0; i < NCONS; i++) {
        snprintf(a, sizeof a, "%d", i);
        pids[i] = spawn("q_consume", qs, rs, a);
    }
    for (int i = 0; i < NPROD; i++) {
        snprintf(a, sizeof a, "%d", i + 1);
        snprintf(b, sizeof b, "%ld", per);
        pids[NCONS + i] = spawn("q_produce", qs, a, b);
    }
    for (int i = 0; i < NPROD; i++) reap(pids[NCONS + i]);
    CHECK_OK(weft_mpqueue_close(q)); /* consumers drain, then see EOF */
    for (int i = 0; i < NCONS; i++) reap(pids[i]);
    long *r = weft_shm_ptr(res), count = 0, sum = 0, want = 0;
    for (int i = 0; i < NCONS; i++) {
        count += r[2 * i];
        sum += r[2 * i + 1];
    }
    for (long id = 1; id <= NPROD; id++)
        for (long k = 0; k < per; k++) want += id * 1000003 + k;
    CHECK_EQ_INT(count, NPROD * per);
    CHECK_EQ_INT(sum, want);
    printf("    consumers got %ld and %ld messages\n", r[0], r[2]);
    weft_shm_destroy(res);
    weft_mpqueue_destroy(q);
    LEAK_END();
}

TEST(mpqueue_survives_putters_killed_mid_put)
{
    LEAK_BEGIN();
    enum {
        SIZE = 256 * 1024 /* a long copy under the lock: kills often land inside it */
    };
    weft_mpqueue_options o = {.capacity = 1024 * 1024};
    weft_mpqueue *q;
    REQUIRE_OK(weft_mpqueue_create(&o, &q));
    weft_ipc_token t;
    weft_mpqueue_token(q, &t);
    char ts[WEFT_IPC_TOKEN_STRLEN], ss[32];
    token_str(&t, ts);
    snprintf(ss, sizeof ss, "%d", (int)SIZE);
    unsigned char *buf = malloc(SIZE);
    REQUIRE(buf);
    int rounds = (int)check_scaled(8, 4);
    long got = 0, bad = 0;
    for (int round = 0; round < rounds; round++) {
        pid_t p = spawn("q_spam", ts, ss, NULL);
        /* the putter's first message (however long its start-up takes on a
         * busy machine or under a sanitizer), then a window of its puts in
         * which the kill lands */
        bool first = true;
        double end = 0;
        while (first || check_now() < end) { /* take some while it puts */
            size_t n;
            int rc = weft_mpqueue_get(q, first ? 60 : 0.01, buf, SIZE, &n);
            if (first) end = check_now() + 0.03 + 0.01 * round;
            first = false;
            if (rc == WEFT_ETIMEDOUT) continue;
            CHECK_OK(rc);
            uint64_t k;
            memcpy(&k, buf, 8);
            if (n != SIZE || buf[8] != (unsigned char)k || buf[SIZE - 1] != (unsigned char)k) bad++;
            got++;
        }
        kill(p, SIGKILL);
        int st;
        CHECK(waitpid(p, &st, 0) == p);
        /* whatever the putter was doing, the queue is consistent and usable */
        size_t n;
        int rc;
        while ((rc = weft_mpqueue_get(q, 0, buf, SIZE, &n)) == 0) {
            uint64_t k;
            memcpy(&k, buf, 8);
            if (n != SIZE || buf[8] != (unsigned char)k || buf[SIZE - 1] != (unsigned char)k) bad++;
        }
        CHECK_RC(rc, WEFT_ETIMEDOUT);
        CHECK_OK(weft_mpqueue_put(q, "ok", 2, 5));
        CHECK_OK(weft_mpqueue_get(q, 5, buf, SIZE, &n));
        CHECK(n == 2 && !memcmp(buf, "ok", 2));
        CHECK_EQ_U64(weft_mpqueue_count(q), 0);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(got > 0);
    printf("    %d putters killed, %ld messages of %d bytes checked\n", rounds, got, (int)SIZE);
    free(buf);
    weft_mpqueue_destroy(q);
    LEAK_END();
}

/* ------------------------------------------------------------------------
 * Threads (after every fork)
 * ------------------------------------------------------------------------ */

static struct {
    weft_mpqueue *q;
    long per;
    atomic_long count, sum;
} TQ;

static void *tq_producer(void *arg)
{
    long id = (long)(intptr_t)arg;
    for (long k = 0; k < TQ.per; k++) {
        long m[2] = {id, k};
        int rc = weft_mpqueue_put(TQ.q, m, sizeof m, 30);
        if (rc) {
            CHECK_OK(rc);
            break;
        }
    }
    return NULL;
}

static void *tq_consumer(void *arg)
{
    (void)arg;
    for (;;) {
        long m[2];
        size_t n;
        int rc = weft_mpqueue_get(TQ.q, 30, m, sizeof m, &n);
        if (rc == WEFT_EOF) break;
        if (rc) {
            CHECK_OK(rc);
            break;
        }
        atomic_fetch_add(&TQ.count, 1);
        atomic_fetch_add(&TQ.sum, m[0] * 1000003 + m[1]);
    }
    return NULL;
}

TEST(mpqueue_threads_of_one_process)
{
    LEAK_BEGIN();
    weft_mpqueue_options o = {.capacity = 4096, .maxsize = 16};
    REQUIRE_OK(weft_mpqueue_create(&o, &TQ.q));
    TQ.per = (long)check_scaled(20000, 1000);
    atomic_store(&TQ.count, 0);
    atomic_store(&TQ.sum, 0);
    pthread_t pr[3], co[3];
    for (long i = 0; i < 3; i++) pthread_create(&co[i], NULL, tq_consumer, NULL);
    for (long i = 0; i < 3; i++) pthread_create(&pr[i], NULL, tq_producer, (void *)(intptr_t)i);
    for (int i = 0; i < 3; i++) pthread_join(pr[i], NULL);
    CHECK_OK(weft_mpqueue_close(TQ.q));
    for (int i = 0; i < 3; i++) pthread_join(co[i], NULL);
    long want = 0;
    for (long id = 0; id < 3; id++)
        for (long k = 0; k < TQ.per; k++) want += id * 1000003 + k;
    CHECK_EQ_INT(atomic_load(&TQ.count), 3 * TQ.per);
    CHECK_EQ_INT(atomic_load(&TQ.sum), want);
    weft_mpqueue_destroy(TQ.q);
    LEAK_END();
}

static weft_channel *TC_a, *TC_b;
static long TC_n;

static void *tc_sender(void *arg)
{
    (void)arg;
    unsigned char out[3001];
    for (long k = 0; k < TC_n; k++) {
        size_t len = msg_len((uint64_t)k);
        fill(out, (uint64_t)k, len);
        int rc = weft_channel_send(TC_a, out, len, 30);
        if (rc) {
            CHECK_OK(rc);
            break;
        }
    }
    weft_channel_close(TC_a);
    return NULL;
}

TEST(channel_threads_block_and_wake)
{
    LEAK_BEGIN();
    weft_channel_options o = {.capacity = 4096};
    REQUIRE_OK(weft_channel_create(&o, &TC_a));
    weft_ipc_token t;
    weft_channel_token(TC_a, &t);
    REQUIRE_OK(weft_channel_attach(&t, &TC_b));
    TC_n = (long)check_scaled(20000, 1000);
    pthread_t th;
    pthread_create(&th, NULL, tc_sender, NULL);
    unsigned char in[3001];
    long got = 0, bad = 0;
    size_t n;
    int rc;
    while ((rc = weft_channel_recv(TC_b, 30, in, sizeof in, &n)) == 0) {
        if (n != msg_len((uint64_t)got) || !check_fill(in, (uint64_t)got, n)) bad++;
        got++;
        if (got % 1000 == 0) check_sleep(0.001); /* let the sender fill the ring and sleep */
    }
    pthread_join(th, NULL);
    CHECK_RC(rc, WEFT_EOF);
    CHECK_EQ_INT(got, TC_n);
    CHECK_EQ_INT(bad, 0);
    weft_channel_destroy(TC_b);
    weft_channel_destroy(TC_a);
    LEAK_END();
}

/* ------------------------------------------------------------------------
 * The end: nothing left behind
 * ------------------------------------------------------------------------ */

TEST(no_children_no_dev_shm_entries_left)
{
    CHECK_EQ_INT(own_dev_shm_uses(), 0);
    errno = 0;
    CHECK(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD);
    CHECK_EQ_INT(count_weft_mappings(), 0);
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "--child")) return child_main(argc, argv);
    return check_main(argc, argv);
}
