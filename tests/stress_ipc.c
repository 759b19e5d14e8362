/* stress_ipc.c : many processes on weft_mpqueue, weft_channel and weft_shm
 * at once, every count and sum checked at the end.
 * Arguments: [processes] [scale]; WEFT_STRESS_SCALE scales the message
 * counts. Every other process is this binary exec'd again with a token on
 * its command line (no inheritance), as in test_ipc.c. Each test ends with
 * no child left, no fd and no weft mapping more than it began with. */
// weft-test-timeout: 300
#define CHECK_CUSTOM_MAIN
#include "check.h"

#include <sys/wait.h>

static int nproc_arg(void)
{
    return check_arg_threads(3);
}

static pid_t spawn(const char *role, const char *a1, const char *a2, const char *a3, const char *a4)
{
    fflush(stdout);
    fflush(stderr);
    pid_t p = fork();
    if (p == 0) {
        char *argv[] = {(char *)"stress_ipc", (char *)"--child", (char *)role, (char *)a1,
                        (char *)a2,           (char *)a3,        (char *)a4,   NULL};
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    return p;
}

static void reap(pid_t pid)
{
    int st = 0;
    pid_t r = waitpid(pid, &st, 0);
    CHECK_MSG(r == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d: %s %d", (int)pid,
              WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

static void tok_str(const weft_ipc_token *t, char *s)
{
    if (weft_ipc_token_format(t, s, WEFT_IPC_TOKEN_STRLEN)) s[0] = '\0';
}

/* A message: producer id, sequence number, then `len - 16` bytes derived
 * from both; its checksum is what consumers add up. */
static uint64_t mix(uint64_t x)
{
    return weft__splitmix64(&x);
}

static size_t msg_size(uint64_t id, uint64_t k)
{
    return 16 + (size_t)(mix(id * 7919 + k) % 1500);
}

static void make_msg(unsigned char *b, uint64_t id, uint64_t k, size_t n)
{
    memcpy(b, &id, 8);
    memcpy(b + 8, &k, 8);
    for (size_t i = 16; i < n; i++) b[i] = (unsigned char)(id * 31 + k * 17 + i);
}

/* 0 if the message is malformed, else its checksum (never 0). */
static uint64_t msg_sum(const unsigned char *b, size_t n)
{
    uint64_t id, k;
    if (n < 16) return 0;
    memcpy(&id, b, 8);
    memcpy(&k, b + 8, 8);
    if (n != msg_size(id, k)) return 0;
    for (size_t i = 16; i < n; i++)
        if (b[i] != (unsigned char)(id * 31 + k * 17 + i)) return 0;
    return mix(id * 1000003 + k) | 1;
}

/* Results of one child in a shared region. */
struct slot {
    uint64_t count, sum, bad, pad;
};

#define CHILD_FAIL(...)                                            \
    do {                                                           \
        fprintf(stderr, "child %s: ", role);                       \
        fprintf(stderr, __VA_ARGS__);                              \
        fprintf(stderr, " (last error: %s)\n", weft_last_error()); \
        return 10;                                                 \
    } while (0)

static int child_main(int argc, char **argv)
{
    const char *role = argv[2];
    weft_ipc_token t1, t2;
    if (argc < 6 || weft_ipc_token_parse(argv[3], &t1) || weft_ipc_token_parse(argv[4], &t2)) {
        fprintf(stderr, "child: bad arguments\n");
        return 2;
    }
    weft_shm *res;
    if (weft_shm_attach(&t2, &res)) CHILD_FAIL("attach results");
    int slot_i = atoi(argv[5]);
    struct slot *slot = (struct slot *)weft_shm_ptr(res) + slot_i;
    unsigned char buf[2048];

    if (!strcmp(role, "produce")) {
        uint64_t n = strtoull(argv[6], NULL, 10);
        weft_mpqueue *q;
        if (weft_mpqueue_attach(&t1, &q)) CHILD_FAIL("attach");
        for (uint64_t k = 0; k < n; k++) {
            size_t len = msg_size((uint64_t)slot_i, k);
            make_msg(buf, (uint64_t)slot_i, k, len);
            int rc;
            if (k % 3 == 0) { /* some with polling puts */
                while ((rc = weft_mpqueue_put(q, buf, len, 0)) == WEFT_ETIMEDOUT) sched_yield();
            } else {
                rc = weft_mpqueue_put(q, buf, len, 60);
            }
            if (rc) CHILD_FAIL("put %d", rc);
            slot->count++;
            slot->sum += msg_sum(buf, len);
        }
        weft_mpqueue_destroy(q);
    } else if (!strcmp(role, "consume")) {
        weft_mpqueue *q;
        if (weft_mpqueue_attach(&t1, &q)) CHILD_FAIL("attach");
        for (uint64_t i = 0;; i++) {
            size_t n;
            int rc = weft_mpqueue_get(q, i % 4 == 0 ? 0.001 : 60, buf, sizeof buf, &n);
            if (rc == WEFT_ETIMEDOUT && i % 4 == 0) continue;
            if (rc == WEFT_EOF) break;
            if (rc) CHILD_FAIL("get %d", rc);
            uint64_t s = msg_sum(buf, n);
            if (!s) slot->bad++;
            slot->count++;
            slot->sum += s;
        }
        weft_mpqueue_destroy(q);
    } else if (!strcmp(role, "echo")) {
        weft_channel *ch;
        if (weft_channel_attach(&t1, &ch)) CHILD_FAIL("attach");
        for (;;) {
            size_t n;
            int rc = weft_channel_recv(ch, 60, buf, sizeof buf, &n);
            if (rc == WEFT_EOF) break;
            if (rc) CHILD_FAIL("recv %d", rc);
            uint64_t s = msg_sum(buf, n);
            if (!s) slot->bad++;
            slot->count++;
            slot->sum += s;
            if ((rc = weft_channel_send(ch, buf, n, 60))) CHILD_FAIL("send %d", rc);
        }
        weft_channel_destroy(ch);
    } else if (!strcmp(role, "count")) {
        uint64_t n = strtoull(argv[6], NULL, 10);
        weft_shm *s;
        if (weft_shm_attach(&t1, &s)) CHILD_FAIL("attach");
        uint64_t *c = weft_shm_ptr(s);
        for (uint64_t k = 0; k < n; k++) {
            if (weft_lock_acquire(weft_shm_lock(s), 60)) CHILD_FAIL("lock");
            c[0] += 1;
            c[1] += k;
            if (weft_lock_release(weft_shm_lock(s))) CHILD_FAIL("unlock");
            __atomic_fetch_add(&c[8], 1, __ATOMIC_RELAXED); /* another line, no lock */
        }
        weft_shm_destroy(s);
    } else {
        CHILD_FAIL("unknown role");
    }
    weft_shm_destroy(res);
    return 0;
}

/* ------------------------------------------------------------------------ */

TEST(stress_mpqueue_producers_and_consumers)
{
    int fds0 = check_count_fds();
    int np = nproc_arg(), nc = nproc_arg();
    uint64_t per = check_scaled(20000, 500);
    weft_mpqueue_options o = {.capacity = 16384, .maxsize = 64};
    weft_mpqueue *q;
    weft_shm *res;
    REQUIRE_OK(weft_mpqueue_create(&o, &q));
    REQUIRE_OK(weft_shm_create(sizeof(struct slot) * (size_t)(np + nc), &res));
    weft_ipc_token tq, tr;
    weft_mpqueue_token(q, &tq);
    weft_shm_token(res, &tr);
    char qs[WEFT_IPC_TOKEN_STRLEN], rs[WEFT_IPC_TOKEN_STRLEN], a[16], b[32];
    tok_str(&tq, qs);
    tok_str(&tr, rs);
    snprintf(b, sizeof b, "%llu", (unsigned long long)per);
    pid_t *pids = calloc((size_t)(np + nc), sizeof *pids);
    REQUIRE(pids);
    double t0 = check_now();
    for (int i = 0; i < nc; i++) {
        snprintf(a, sizeof a, "%d", np + i);
        pids[np + i] = spawn("consume", qs, rs, a, NULL);
    }
    for (int i = 0; i < np; i++) {
        snprintf(a, sizeof a, "%d", i);
        pids[i] = spawn("produce", qs, rs, a, b);
    }
    for (int i = 0; i < np; i++) reap(pids[i]);
    CHECK_OK(weft_mpqueue_close(q));
    for (int i = 0; i < nc; i++) reap(pids[np + i]);
    double dt = check_now() - t0;
    struct slot *s = weft_shm_ptr(res);
    uint64_t pc = 0, ps = 0, cc = 0, cs = 0, bad = 0;
    for (int i = 0; i < np; i++) pc += s[i].count, ps += s[i].sum;
    for (int i = 0; i < nc; i++) cc += s[np + i].count, cs += s[np + i].sum, bad += s[np + i].bad;
    CHECK_EQ_U64(pc, (uint64_t)np * per);
    CHECK_EQ_U64(cc, pc);
    CHECK_EQ_U64(cs, ps);
    CHECK_EQ_U64(bad, 0);
    CHECK_EQ_U64(weft_mpqueue_count(q), 0);
    printf("    %d producers x %llu messages -> %d consumers: %.2f s (%.0f msg/s)\n", np,
           (unsigned long long)per, nc, dt, (double)cc / dt);
    free(pids);
    weft_shm_destroy(res);
    weft_mpqueue_destroy(q);
    CHECK_EQ_INT(check_count_fds(), fds0);
}

TEST(stress_channels_to_many_children)
{
    int fds0 = check_count_fds();
    int n = nproc_arg() + 1;
    uint64_t total = check_scaled(10000, 500);
    weft_channel **ch = calloc((size_t)n, sizeof *ch);
    pid_t *pids = calloc((size_t)n, sizeof *pids);
    uint64_t *sent = calloc((size_t)n, sizeof *sent), *got = calloc((size_t)n, sizeof *got);
    REQUIRE(ch && pids && sent && got);
    weft_shm *res;
    REQUIRE_OK(weft_shm_create(sizeof(struct slot) * (size_t)n, &res));
    weft_ipc_token tr;
    weft_shm_token(res, &tr);
    char rs[WEFT_IPC_TOKEN_STRLEN], cs[WEFT_IPC_TOKEN_STRLEN], a[16];
    tok_str(&tr, rs);
    for (int i = 0; i < n; i++) {
        weft_channel_options o = {.capacity = 4096u << (i % 3)};
        REQUIRE_OK(weft_channel_create(&o, &ch[i]));
        weft_ipc_token t;
        weft_channel_token(ch[i], &t);
        tok_str(&t, cs);
        snprintf(a, sizeof a, "%d", i);
        pids[i] = spawn("echo", cs, rs, a, NULL);
    }
    /* round robin, a few in flight per child, never blocking on one child */
    uint64_t sum_sent = 0, sum_got = 0, bad = 0, done = 0, k = 0;
    unsigned char buf[2048];
    double t0 = check_now(), limit = t0 + 200;
    while (done < total * (uint64_t)n && check_now() < limit) {
        bool progress = false;
        for (int i = 0; i < n; i++) {
            if (sent[i] < total && sent[i] - got[i] < 4) {
                size_t len = msg_size((uint64_t)i, sent[i]);
                make_msg(buf, (uint64_t)i, sent[i], len);
                int rc = weft_channel_send(ch[i], buf, len, 0);
                if (rc == 0) {
                    sum_sent += msg_sum(buf, len);
                    sent[i]++;
                    progress = true;
                } else if (rc != WEFT_ETIMEDOUT) {
                    CHECK_OK(rc);
                    limit = 0;
                }
            }
            size_t len;
            int rc = weft_channel_recv(ch[i], 0, buf, sizeof buf, &len);
            if (rc == 0) {
                uint64_t s = msg_sum(buf, len);
                uint64_t id, kk;
                memcpy(&id, buf, 8);
                memcpy(&kk, buf + 8, 8);
                if (!s || id != (uint64_t)i || kk != got[i]) bad++; /* in order, per child */
                sum_got += s;
                got[i]++;
                done++;
                progress = true;
            } else if (rc != WEFT_ETIMEDOUT) {
                CHECK_OK(rc);
                limit = 0;
            }
        }
        if (!progress) (void)weft_channel_poll(ch[k++ % (uint64_t)n], 0.0005);
    }
    double dt = check_now() - t0;
    CHECK_EQ_U64(done, total * (uint64_t)n);
    CHECK_EQ_U64(sum_got, sum_sent);
    CHECK_EQ_U64(bad, 0);
    for (int i = 0; i < n; i++) weft_channel_close(ch[i]);
    for (int i = 0; i < n; i++) reap(pids[i]);
    struct slot *s = weft_shm_ptr(res);
    uint64_t cc = 0, csum = 0, cbad = 0;
    for (int i = 0; i < n; i++) cc += s[i].count, csum += s[i].sum, cbad += s[i].bad;
    CHECK_EQ_U64(cc, total * (uint64_t)n);
    CHECK_EQ_U64(csum, sum_sent);
    CHECK_EQ_U64(cbad, 0);
    printf("    %d children x %llu round trips: %.2f s\n", n, (unsigned long long)total, dt);
    for (int i = 0; i < n; i++) weft_channel_destroy(ch[i]);
    weft_shm_destroy(res);
    free(ch);
    free(pids);
    free(sent);
    free(got);
    CHECK_EQ_INT(check_count_fds(), fds0);
}

TEST(stress_shm_lock_across_processes)
{
    int fds0 = check_count_fds();
    int n = nproc_arg() + 1;
    uint64_t per = check_scaled(50000, 1000);
    weft_shm *s, *res;
    REQUIRE_OK(weft_shm_create(128, &s));
    REQUIRE_OK(weft_shm_create(sizeof(struct slot), &res));
    weft_ipc_token t, tr;
    weft_shm_token(s, &t);
    weft_shm_token(res, &tr);
    char ts[WEFT_IPC_TOKEN_STRLEN], rs[WEFT_IPC_TOKEN_STRLEN], b[32];
    tok_str(&t, ts);
    tok_str(&tr, rs);
    snprintf(b, sizeof b, "%llu", (unsigned long long)per);
    pid_t *pids = calloc((size_t)n, sizeof *pids);
    REQUIRE(pids);
    for (int i = 0; i < n; i++) pids[i] = spawn("count", ts, rs, "0", b);
    for (int i = 0; i < n; i++) reap(pids[i]);
    uint64_t *c = weft_shm_ptr(s);
    CHECK_EQ_U64(c[0], (uint64_t)n * per);
    CHECK_EQ_U64(c[1], (uint64_t)n * (per * (per - 1) / 2));
    CHECK_EQ_U64(c[8], (uint64_t)n * per);
    CHECK(!weft_lock_locked(weft_shm_lock(s)));
    free(pids);
    weft_shm_destroy(s);
    weft_shm_destroy(res);
    CHECK_EQ_INT(check_count_fds(), fds0);
}

TEST(stress_nothing_left)
{
    errno = 0;
    CHECK(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD);
    FILE *f = fopen("/proc/self/maps", "r");
    REQUIRE(f);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) n += strstr(line, "/memfd:weft-") != NULL;
    fclose(f);
    CHECK_EQ_INT(n, 0);
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "--child")) return child_main(argc, argv);
    return check_main(argc, argv);
}
