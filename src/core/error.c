/* error.c : error names, the per-thread last-error message, timeouts. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static __thread char last_error[512];
__thread unsigned weft__err_gen __attribute__((tls_model("initial-exec")));

const char *weft_version(void)
{
    return WEFT_VERSION_STRING;
}

const char *weft_strerror(int code)
{
    switch (code) {
    case WEFT_OK:
        return "WEFT_OK: success";
    case WEFT_EPERM:
        return "WEFT_EPERM: operation not permitted";
    case WEFT_ENOENT:
        return "WEFT_ENOENT: no such name, file or program";
    case WEFT_ENOMEM:
        return "WEFT_ENOMEM: out of memory";
    case WEFT_EBUSY:
        return "WEFT_EBUSY: busy (already running or finished)";
    case WEFT_EEXIST:
        return "WEFT_EEXIST: already registered";
    case WEFT_EINVAL:
        return "WEFT_EINVAL: invalid argument";
    case WEFT_EDEADLK:
        return "WEFT_EDEADLK: the call would deadlock";
    case WEFT_ENOTSUP:
        return "WEFT_ENOTSUP: not available in this build";
    case WEFT_ETIMEDOUT:
        return "WEFT_ETIMEDOUT: timed out";
    case WEFT_EAGAIN:
        return "WEFT_EAGAIN: resource temporarily unavailable";
    case WEFT_EOVERFLOW:
        return "WEFT_EOVERFLOW: a count would exceed its bound";
    case WEFT_ETASK:
        return "WEFT_ETASK: the task failed";
    case WEFT_ECANCELLED:
        return "WEFT_ECANCELLED: the task was cancelled";
    case WEFT_ECLOSED:
        return "WEFT_ECLOSED: shut down or closed (executor, queue, scheduler, channel)";
    case WEFT_ECRASHED:
        return "WEFT_ECRASHED: the worker running the task died";
    case WEFT_EOF:
        return "WEFT_EOF: end of iteration";
    case WEFT_ENOTREG:
        return "WEFT_ENOTREG: the task function is not registered";
    case WEFT_EDEPEND:
        return "WEFT_EDEPEND: a task this one depends on failed";
    case WEFT_EBROKEN:
        return "WEFT_EBROKEN: the barrier is broken";
    case WEFT_EMEMLIMIT:
        return "WEFT_EMEMLIMIT: over the worker memory limit";
    case WEFT_EPEERDIED:
        return "WEFT_EPEERDIED: the process at the other end died without closing";
    case WEFT_ENOTDIR:
        return "WEFT_ENOTDIR: the working directory cannot be entered";
    case WEFT_EPIPE:
        return "WEFT_EPIPE: the other end of the pipe is closed";
    case WEFT_ENOSPC:
        return "WEFT_ENOSPC: no space left on the device";
    case WEFT_EEXIT:
        return "WEFT_EEXIT: the child process exited with a non-zero status or a signal";
    default:
        return "unknown error";
    }
}

const char *weft_last_error(void)
{
    return last_error;
}

int weft__err(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    if (code < 0) weft__err_gen++;
    return code;
}

int weft__err_safe(int code, const char *a, const char *b)
{
    size_t n = 0;
    for (const char *s = a; s && *s && n + 1 < sizeof last_error; s++) last_error[n++] = *s;
    for (const char *s = b; s && *s && n + 1 < sizeof last_error; s++) last_error[n++] = *s;
    last_error[n] = '\0';
    if (code < 0) weft__err_gen++;
    return code;
}

char *weft__vasprintf(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) return NULL;
    return s;
}

char *weft__asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = weft__vasprintf(fmt, ap);
    va_end(ap);
    return s;
}

int weft__timeout_ns(double timeout, int64_t *ns, const char *fn)
{
    if (timeout != timeout) return weft__err(WEFT_EINVAL, "%s: timeout is NaN", fn);
    if (timeout < 0) return weft__err(WEFT_EINVAL, "%s: timeout %g is negative", fn, timeout);
    if (timeout >= 9.2e9) {
        *ns = -1;
    } else {
        *ns = (int64_t)(timeout * 1e9);
    }
    return 0;
}

double weft_now(void)
{
    return (double)weft__now_ns() * 1e-9;
}
