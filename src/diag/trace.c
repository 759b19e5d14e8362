/* trace.c : the task-stream trace as Chrome trace-event JSON.
 *
 * Workers append events to their own buffer (a mutex each, uncontended but
 * for a concurrent writer); weft_trace_write() takes each buffer's mutex in
 * turn and writes complete events ("ph":"X") with the task's registered
 * name, the worker as the thread id, and the outcome. Perfetto and
 * chrome://tracing open the file as it is. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static const char *outcome(int err)
{
    if (err == 0) return "ok";
    if (err == WEFT_ECANCELLED) return "cancelled";
    return "error";
}

int weft__trace_write_file(const char *path, weft__trace_buf *bufs, int nbufs, uint64_t t0,
                           const char *backend)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        int e = errno;
        return weft__err(-e, "weft_trace_write: cannot open '%s': %s", path, strerror(e));
    }
    fprintf(f,
            "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"backend\":\"%s\",\"version\":\"%s\"},"
            "\"traceEvents\":[\n",
            backend, WEFT_VERSION_STRING);
    bool first = true;
    for (int w = 0; w < nbufs; w++) {
        fprintf(f,
                "%s{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":%d,\"args\":{\"name\":"
                "\"worker %d\"}}",
                first ? "" : ",\n", w, w);
        first = false;
    }
    for (int w = 0; w < nbufs; w++) {
        weft__trace_buf *b = &bufs[w];
        pthread_mutex_lock(&b->mu);
        for (size_t i = 0; i < b->n; i++) {
            const weft__trace_ev *ev = &b->ev[i];
            const char *name = weft_task_name(ev->fn);
            char anon[48];
            if (!name) {
                snprintf(anon, sizeof anon, "task@%p", (void *)(uintptr_t)ev->fn);
                name = anon;
            }
            double ts = (double)(ev->t0 - t0) / 1000.0;
            double dur = (double)(ev->t1 - ev->t0) / 1000.0;
            fputs(first ? "" : ",\n", f);
            first = false;
            fputs("{\"name\":", f);
            json_str(f, name);
            fprintf(f,
                    ",\"cat\":\"task\",\"ph\":\"X\",\"ts\":%.3f,\"dur\":%.3f,\"pid\":1,\"tid\":%d,"
                    "\"args\":{\"outcome\":\"%s\",\"items\":%llu",
                    ts, dur, ev->worker, outcome(ev->err), (unsigned long long)ev->items);
            if (ev->err) fprintf(f, ",\"error\":\"%s\"", weft_strerror(ev->err));
            fputs("}}", f);
        }
        pthread_mutex_unlock(&b->mu);
    }
    fputs("\n]}\n", f);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        int e = errno ? errno : EIO;
        return weft__err(-e, "weft_trace_write: error writing '%s': %s", path, strerror(e));
    }
    return 0;
}
