/* crash.c : the crash handlers of a worker process or rank (processes and
 * mpi share them). A task that segfaults, aborts or divides by zero must
 * leave a trace of why before the process ends: the handler, on its own
 * stack (a stack overflow still gets one), calls the backend's note with the
 * signal and the errno of the moment, then re-raises it with the default
 * action (SA_RESETHAND), so the parent sees the real signal. The note runs
 * in a signal handler: async-signal-safe calls only. */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "backends/remote/remote.h"

static void (*crash_note)(int sig, int err);

static void crash_handler(int sig)
{
    int e = errno;
    if (crash_note) crash_note(sig, e);
    raise(sig); /* SA_RESETHAND: the default action now ends the process */
}

void weft__crash_handlers_install(void (*note)(int sig, int err))
{
    static char altstack[65536];
    crash_note = note;
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = crash_handler;
    sa.sa_flags = SA_ONSTACK | SA_RESETHAND | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
}
