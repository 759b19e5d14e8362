/* cli_spawn_floor : the floor under the weft command's per-job cost -- a C
 * loop that starts a program and waits for it, N times over J threads (as
 * `weft -jJ` runs N jobs), with nothing else: no pipes, no output, no
 * bookkeeping. Run by bench/cli_bench.sh in the same run as cli_true_2000.
 *
 *   cli_spawn_floor MODE N J [PROGRAM]    (PROGRAM: /bin/true by default)
 *
 * MODE: posix_spawn (glibc's: clone(CLONE_VM|CLONE_VFORK)), vfork (vfork +
 * execv), fork (fork + execv). Prints the wall milliseconds per start
 * (elapsed / N) on stdout. Exit 1 if a child did not exit 0. */
#define _GNU_SOURCE
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *mode, *prog;
static long per_thread;
static int bad;
static pthread_mutex_t bad_mu = PTHREAD_MUTEX_INITIALIZER;

static pid_t start_one(void)
{
    char *argv[] = {(char *)prog, NULL};
    pid_t pid = -1;
    if (strcmp(mode, "posix_spawn") == 0) {
        if (posix_spawn(&pid, prog, NULL, NULL, argv, environ) != 0) return -1;
    } else if (strcmp(mode, "vfork") == 0) {
        pid = vfork();
        if (pid == 0) {
            execv(prog, argv);
            _exit(127);
        }
    } else {
        pid = fork();
        if (pid == 0) {
            execv(prog, argv);
            _exit(127);
        }
    }
    return pid;
}

static void *loop(void *arg)
{
    (void)arg;
    for (long i = 0; i < per_thread; i++) {
        pid_t pid = start_one();
        int st = 0;
        if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            pthread_mutex_lock(&bad_mu);
            bad++;
            pthread_mutex_unlock(&bad_mu);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: cli_spawn_floor posix_spawn|vfork|fork N J [PROGRAM]\n");
        return 2;
    }
    mode = argv[1];
    long n = strtol(argv[2], NULL, 10);
    int j = (int)strtol(argv[3], NULL, 10);
    prog = argc > 4 ? argv[4] : "/bin/true";
    if (n < 1 || j < 1 || j > 256 ||
        (strcmp(mode, "posix_spawn") && strcmp(mode, "vfork") && strcmp(mode, "fork"))) {
        fprintf(stderr, "cli_spawn_floor: bad arguments\n");
        return 2;
    }
    per_thread = (n + j - 1) / j;
    pthread_t t[256];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < j; i++) pthread_create(&t[i], NULL, loop, NULL);
    for (int i = 0; i < j; i++) pthread_join(t[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = ((double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6);
    printf("%.4f\n", ms / (double)(per_thread * j));
    if (bad) fprintf(stderr, "cli_spawn_floor: %d children failed\n", bad);
    return bad ? 1 : 0;
}
