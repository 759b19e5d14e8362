/* io.c : the bag's file readers and writer.
 *
 * Byte ranges. A partition [start, end) of an uncompressed file holds every
 * line whose first byte lies in [start, end): lines start at offset 0 and
 * after every "\n". A reader that starts at start > 0 looks at byte
 * start-1: if it is "\n" a line begins at start, else it skips to after the
 * next "\n". It then reads lines while their first byte is before `end`,
 * reading past `end` to finish the last one. So every line belongs to
 * exactly one range, whatever the split, and a line longer than a range
 * belongs to the range where it starts (the others see no line).
 *
 * Compressed files are read whole by one task, streaming through a 1 MiB
 * buffer: gzip with zlib's inflate (concatenated members too), zstd with
 * ZSTD_decompressStream; a stream that ends early is an error naming the
 * file and the compressed byte offset where it stopped. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "bag/bag_internal.h"

#define IO_CHUNK (1u << 20)

typedef struct splitter {
    unsigned char *carry;
    size_t clen, ccap;
    uint64_t pos;  /* stream offset of the next byte fed */
    uint64_t end;  /* lines starting at or after this are not ours */
    bool skipping; /* discarding the tail of a line that started before us */
    bool done;
    bag_line_fn fn;
    void *ctx;
} splitter;

static int emit_line(splitter *s, const unsigned char *p, size_t n)
{
    if (n && p[n - 1] == '\r') n--;
    return s->fn(s->ctx, p, n);
}

static int carry_add(splitter *s, const unsigned char *p, size_t n)
{
    if (s->clen + n > s->ccap) {
        size_t cap = s->ccap ? s->ccap : 4096;
        while (cap < s->clen + n) cap *= 2;
        unsigned char *c = realloc(s->carry, cap);
        if (!c) return WEFT_ENOMEM;
        s->carry = c;
        s->ccap = cap;
    }
    memcpy(s->carry + s->clen, p, n);
    s->clen += n;
    return 0;
}

/* Feeds the next n bytes of the stream. */
static int split_feed(splitter *s, const unsigned char *p, size_t n)
{
    const unsigned char *end = p + n;
    while (p < end && !s->done) {
        if (s->skipping) {
            const unsigned char *q = memchr(p, '\n', (size_t)(end - p));
            if (!q) {
                s->pos += (uint64_t)(end - p);
                return 0;
            }
            s->pos += (uint64_t)(q + 1 - p);
            p = q + 1;
            s->skipping = false;
            if (s->pos >= s->end) s->done = true;
            continue;
        }
        const unsigned char *q = memchr(p, '\n', (size_t)(end - p));
        if (!q) {
            s->pos += (uint64_t)(end - p);
            return carry_add(s, p, (size_t)(end - p));
        }
        int rc;
        if (s->clen) {
            rc = carry_add(s, p, (size_t)(q - p));
            if (!rc) rc = emit_line(s, s->carry, s->clen);
            s->clen = 0;
        } else {
            rc = emit_line(s, p, (size_t)(q - p));
        }
        if (rc) return rc;
        s->pos += (uint64_t)(q + 1 - p);
        p = q + 1;
        if (s->pos >= s->end) s->done = true;
    }
    return 0;
}

/* The stream ended: a last line without "\n" is still a line. */
static int split_finish(splitter *s)
{
    int rc = 0;
    if (!s->done && !s->skipping && s->clen) rc = s->fn(s->ctx, s->carry, s->clen);
    free(s->carry);
    s->carry = NULL;
    return rc;
}

static int open_file(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open '%s': %s", path, strerror(e));
        return -e;
    }
    return fd;
}

static ssize_t pread_full(int fd, unsigned char *buf, size_t n, uint64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

int weft__bag_read_range(const char *path, uint64_t start, uint64_t end, bag_line_fn fn, void *ctx,
                         char *err, size_t errlen)
{
    int fd = open_file(path, err, errlen);
    if (fd < 0) return fd;
    unsigned char *buf = malloc(IO_CHUNK);
    if (!buf) {
        close(fd);
        snprintf(err, errlen, "out of memory reading '%s'", path);
        return WEFT_ENOMEM;
    }
    splitter s = {.pos = start, .end = end, .fn = fn, .ctx = ctx};
    int rc = 0;
    uint64_t off = start;
    if (start > 0) {
        unsigned char c;
        ssize_t r = pread_full(fd, &c, 1, start - 1);
        if (r < 0) {
            rc = -errno;
            snprintf(err, errlen, "cannot read '%s' at byte %llu: %s", path,
                     (unsigned long long)(start - 1), strerror(errno));
            goto out;
        }
        if (r == 1 && c != '\n') s.skipping = true;
    }
    if (start >= end) s.done = true;
    while (!s.done) {
        ssize_t r = pread_full(fd, buf, IO_CHUNK, off);
        if (r < 0) {
            rc = -errno;
            snprintf(err, errlen, "cannot read '%s' at byte %llu: %s", path,
                     (unsigned long long)off, strerror(errno));
            goto out;
        }
        if (r == 0) break;
        rc = split_feed(&s, buf, (size_t)r);
        if (rc) goto out;
        off += (uint64_t)r;
        if ((size_t)r < IO_CHUNK) break;
    }
    rc = split_finish(&s);
out:
    free(s.carry);
    free(buf);
    close(fd);
    return rc;
}

int weft__bag_read_gz(const char *path, bag_line_fn fn, void *ctx, char *err, size_t errlen)
{
    int fd = open_file(path, err, errlen);
    if (fd < 0) return fd;
    unsigned char *in = malloc(IO_CHUNK), *out = malloc(IO_CHUNK);
    z_stream z;
    memset(&z, 0, sizeof z);
    splitter s = {.end = UINT64_MAX, .fn = fn, .ctx = ctx};
    int rc = 0;
    bool zinit = false;
    if (!in || !out) {
        snprintf(err, errlen, "out of memory reading '%s'", path);
        rc = WEFT_ENOMEM;
        goto out;
    }
    if (inflateInit2(&z, 15 + 32) != Z_OK) {
        snprintf(err, errlen, "'%s': zlib inflateInit failed", path);
        rc = WEFT_ENOMEM;
        goto out;
    }
    zinit = true;
    uint64_t off = 0;       /* compressed bytes read */
    bool in_stream = false; /* inside a member that has not ended */
    bool any = false;
    for (;;) {
        if (z.avail_in == 0) {
            ssize_t r = pread_full(fd, in, IO_CHUNK, off);
            if (r < 0) {
                rc = -errno;
                snprintf(err, errlen, "cannot read '%s' at byte %llu: %s", path,
                         (unsigned long long)off, strerror(errno));
                goto out;
            }
            if (r == 0) break;
            off += (uint64_t)r;
            z.next_in = in;
            z.avail_in = (uInt)r;
        }
        z.next_out = out;
        z.avail_out = IO_CHUNK;
        in_stream = true;
        any = true;
        int zr = inflate(&z, Z_NO_FLUSH);
        size_t got = IO_CHUNK - z.avail_out;
        if (got) {
            rc = split_feed(&s, out, got);
            if (rc) goto out;
        }
        if (zr == Z_STREAM_END) {
            in_stream = false;
            if (z.avail_in == 0) {
                /* another member may follow in the next read */
            }
            inflateReset(&z);
            continue;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            snprintf(err, errlen, "corrupt gzip data in '%s' near byte %llu: %s", path,
                     (unsigned long long)(off - z.avail_in), z.msg ? z.msg : "inflate failed");
            rc = WEFT_EINVAL;
            goto out;
        }
    }
    if (in_stream || !any) {
        if (!any) {
            /* a 0-byte .gz file: no lines (gzip itself calls it truncated;
             * an empty file is what an empty partition writes nothing as) */
        } else {
            snprintf(err, errlen, "truncated gzip file '%s': the stream ends at byte %llu", path,
                     (unsigned long long)off);
            rc = WEFT_EINVAL;
            goto out;
        }
    }
    rc = split_finish(&s);
out:
    if (zinit) inflateEnd(&z);
    free(s.carry);
    free(in);
    free(out);
    close(fd);
    return rc;
}

int weft__bag_read_zst(const char *path, bag_line_fn fn, void *ctx, char *err, size_t errlen)
{
    int fd = open_file(path, err, errlen);
    if (fd < 0) return fd;
    size_t insz = ZSTD_DStreamInSize(), outsz = ZSTD_DStreamOutSize();
    unsigned char *in = malloc(insz), *out = malloc(outsz);
    ZSTD_DCtx *dz = ZSTD_createDCtx();
    splitter s = {.end = UINT64_MAX, .fn = fn, .ctx = ctx};
    int rc = 0;
    if (!in || !out || !dz) {
        snprintf(err, errlen, "out of memory reading '%s'", path);
        rc = WEFT_ENOMEM;
        goto out;
    }
    uint64_t off = 0;
    size_t last = 0; /* ZSTD's hint: 0 when a frame is complete */
    for (;;) {
        ssize_t r = pread_full(fd, in, insz, off);
        if (r < 0) {
            rc = -errno;
            snprintf(err, errlen, "cannot read '%s' at byte %llu: %s", path,
                     (unsigned long long)off, strerror(errno));
            goto out;
        }
        if (r == 0) break;
        ZSTD_inBuffer ib = {in, (size_t)r, 0};
        while (ib.pos < ib.size) {
            ZSTD_outBuffer ob = {out, outsz, 0};
            last = ZSTD_decompressStream(dz, &ob, &ib);
            if (ZSTD_isError(last)) {
                snprintf(err, errlen, "corrupt zstd data in '%s' near byte %llu: %s", path,
                         (unsigned long long)(off + ib.pos), ZSTD_getErrorName(last));
                rc = WEFT_EINVAL;
                goto out;
            }
            if (ob.pos) {
                rc = split_feed(&s, out, ob.pos);
                if (rc) goto out;
            }
        }
        off += (uint64_t)r;
    }
    /* flush what the decoder still holds */
    for (;;) {
        ZSTD_inBuffer ib = {in, 0, 0};
        ZSTD_outBuffer ob = {out, outsz, 0};
        size_t z = ZSTD_decompressStream(dz, &ob, &ib);
        if (ZSTD_isError(z) || ob.pos == 0) break;
        last = z;
        rc = split_feed(&s, out, ob.pos);
        if (rc) goto out;
    }
    if (last != 0) {
        snprintf(err, errlen, "truncated zstd file '%s': the frame ends early at byte %llu", path,
                 (unsigned long long)off);
        rc = WEFT_EINVAL;
        goto out;
    }
    rc = split_finish(&s);
out:
    ZSTD_freeDCtx(dz);
    free(s.carry);
    free(in);
    free(out);
    close(fd);
    return rc;
}

int weft__bag_read_raw(const char *path, uint64_t first, uint64_t end, bag_line_fn fn, void *ctx,
                       char *err, size_t errlen)
{
    int fd = open_file(path, err, errlen);
    if (fd < 0) return fd;
    unsigned char *buf = malloc(IO_CHUNK);
    int rc = 0;
    if (!buf) {
        close(fd);
        return WEFT_ENOMEM;
    }
    uint64_t i = first;
    while (i < end) {
        uint64_t want = end - i;
        if (want > IO_CHUNK / 8) want = IO_CHUNK / 8;
        ssize_t r = pread_full(fd, buf, (size_t)want * 8, i * 8);
        if (r < 0 || (size_t)r < want * 8) {
            rc = r < 0 ? -errno : WEFT_EINVAL;
            snprintf(err, errlen, "cannot read '%s' at byte %llu: %s", path,
                     (unsigned long long)(i * 8 + (r > 0 ? (uint64_t)r : 0)),
                     r < 0 ? strerror(errno) : "the file is shorter than when it was listed");
            break;
        }
        for (uint64_t j = 0; j < want && !rc; j++) rc = fn(ctx, buf + j * 8, 8);
        if (rc) break;
        i += want;
    }
    free(buf);
    close(fd);
    return rc;
}

int weft__bag_write_file(const char *path, int compress, const void *data, size_t len, char *err,
                         size_t errlen)
{
    void *tmp = NULL;
    const void *w = data;
    size_t wl = len;
    if (compress == 1) {
        z_stream z;
        memset(&z, 0, sizeof z);
        if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return WEFT_ENOMEM;
        uLong bound = deflateBound(&z, (uLong)len);
        tmp = malloc(bound);
        if (!tmp) {
            deflateEnd(&z);
            return WEFT_ENOMEM;
        }
        z.next_in = (Bytef *)(uintptr_t)data;
        z.avail_in = (uInt)len;
        z.next_out = tmp;
        z.avail_out = (uInt)bound;
        int zr = deflate(&z, Z_FINISH);
        wl = bound - z.avail_out;
        deflateEnd(&z);
        if (zr != Z_STREAM_END) {
            free(tmp);
            snprintf(err, errlen, "gzip compression of '%s' failed", path);
            return WEFT_EINVAL;
        }
        w = tmp;
    } else if (compress == 2) {
        size_t bound = ZSTD_compressBound(len);
        tmp = malloc(bound ? bound : 1);
        if (!tmp) return WEFT_ENOMEM;
        size_t z = ZSTD_compress(tmp, bound, data, len, 3);
        if (ZSTD_isError(z)) {
            free(tmp);
            snprintf(err, errlen, "zstd compression of '%s' failed: %s", path,
                     ZSTD_getErrorName(z));
            return WEFT_EINVAL;
        }
        w = tmp;
        wl = z;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = 0;
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot create '%s': %s", path, strerror(errno));
    } else {
        size_t done = 0;
        while (done < wl) {
            ssize_t r = write(fd, (const unsigned char *)w + done, wl - done);
            if (r < 0) {
                if (errno == EINTR) continue;
                rc = -errno;
                snprintf(err, errlen, "cannot write '%s' at byte %zu: %s", path, done,
                         strerror(errno));
                break;
            }
            done += (size_t)r;
        }
        if (close(fd) && !rc) {
            rc = -errno;
            snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
        }
    }
    free(tmp);
    return rc;
}
