/* comm.c : what every part of the mpi backend shares: weft's communicator,
 * this process's rank, the lock that serializes MPI calls on rank 0, and
 * the send/receive of payloads larger than one MPI message. init.c,
 * worker.c and dispatch.c all call down to this file and never to each
 * other's globals (so no two files of the backend call each other). */
#ifdef WEFT_HAVE_MPI
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backends/mpi/wire.h"

MPI_Comm weft__mpi_comm = MPI_COMM_NULL;
int weft__mpi_rank = -1, weft__mpi_size = 0;
pthread_mutex_t weft__mpi_mu = PTHREAD_MUTEX_INITIALIZER;
bool *weft__mpi_same_host;
_Atomic int weft__mpi_live;
int (*weft__mpi_create_local)(const weft_options *o, weft_executor **out);
w_bell *weft__mpi_bells;

void weft__mpi_ring(int rank)
{
    w_bell *b = weft__mpi_bells;
    if (!b || rank < 0 || rank >= weft__mpi_size) return;
    __atomic_add_fetch(&b[rank].seq, 1, __ATOMIC_SEQ_CST);
    /* rank 0's bell: every dispatcher that sleeps there (one per executor) */
    if (__atomic_load_n(&b[rank].sleeping, __ATOMIC_SEQ_CST))
        weft__futex_wake_ex(&b[rank].seq, rank == 0 ? INT_MAX : 1, true);
}

void weft__mpi_bells_open(void)
{
    char name[64] = {0};
    size_t len = (size_t)weft__mpi_size * sizeof(w_bell);
    int fd = -1;
    if (weft__mpi_rank == 0) {
        snprintf(name, sizeof name, "/weft-mpi-bells-%d-%llx", (int)getpid(),
                 (unsigned long long)weft__now_ns());
        fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0 && ftruncate(fd, (off_t)len) != 0) {
            close(fd);
            shm_unlink(name);
            fd = -1;
        }
        if (fd < 0) name[0] = 0; /* no bells: every rank polls */
    }
    MPI_Bcast(name, (int)sizeof name, MPI_CHAR, 0, weft__mpi_comm);
    /* a rank on another host finds no such name there (or not rank 0's) */
    if (name[0] && weft__mpi_rank != 0) fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    void *p = fd >= 0 ? mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
    if (fd >= 0) close(fd);
    if (p != MAP_FAILED)
        __atomic_store_n(&((w_bell *)p)[weft__mpi_rank].mapped, 1, __ATOMIC_SEQ_CST);
    MPI_Barrier(weft__mpi_comm); /* every rank has mapped it, or given up */
    if (weft__mpi_rank == 0 && name[0]) shm_unlink(name);
    weft__mpi_bells = p == MAP_FAILED ? NULL : p;
}

bool weft__mpi_built(void)
{
    return true;
}

int weft__mpi_env_rank(void)
{
    static const char *vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) {
            char *end;
            long r = strtol(v, &end, 10);
            if (!*end && r >= 0 && r < INT_MAX) return (int)r;
        }
    }
    return -1;
}

int weft__mpi_send_big(const void *p, size_t len, int dest, int tag)
{
    const char *c = p;
    do {
        size_t k = len > PIECE ? PIECE : len;
        if (MPI_Send(c, (int)k, MPI_BYTE, dest, tag, weft__mpi_comm) != MPI_SUCCESS) return -1;
        c += k;
        len -= k;
    } while (len);
    return 0;
}

int weft__mpi_send_msg(const void *p, size_t len, int dest, int tag)
{
    /* the first piece (the header) is posted, then dest's bell rung, then
     * waited for: a receiver asleep on its bell wakes to a message it can
     * see, and a send that waits for the receiver (rendezvous) does not
     * wait for a sleeper; the other pieces follow as dest receives them */
    size_t k = len > PIECE ? PIECE : len;
    MPI_Request rq;
    if (MPI_Isend(p, (int)k, MPI_BYTE, dest, tag, weft__mpi_comm, &rq) != MPI_SUCCESS) return -1;
    weft__mpi_ring(dest);
    if (MPI_Wait(&rq, MPI_STATUS_IGNORE) != MPI_SUCCESS) return -1;
    return len > k ? weft__mpi_send_big((const char *)p + k, len - k, dest, tag) : 0;
}

/* ---- receiving, and what a receiver without memory does ---- */

static unsigned char *scratch; /* PIECE bytes: messages nobody can hold */

int weft__mpi_scratch_alloc(void)
{
    if (!scratch) scratch = malloc(PIECE);
    return scratch ? 0 : -1;
}

void weft__mpi_scratch_free(void)
{
    free(scratch);
    scratch = NULL;
}

void weft__mpi_drain(int src, int tag, uint32_t k)
{
    for (uint32_t i = 0; i < k; i++)
        MPI_Recv(scratch, (int)PIECE, MPI_BYTE, src, tag, weft__mpi_comm, MPI_STATUS_IGNORE);
}

int weft__mpi_recv_big(void *p, size_t len, int src, int tag)
{
    if (!p) {
        weft__mpi_drain(src, tag, pieces(len));
        return 0;
    }
    char *c = p;
    do {
        size_t k = len > PIECE ? PIECE : len;
        if (MPI_Recv(c, (int)k, MPI_BYTE, src, tag, weft__mpi_comm, MPI_STATUS_IGNORE) !=
            MPI_SUCCESS)
            return -1;
        c += k;
        len -= k;
    } while (len);
    return 0;
}

int weft__mpi_recv_msg(MPI_Message *m, int count, int src, int tag, unsigned char **buf,
                       size_t *cap, w_hdr *h, int site)
{
    size_t first = (size_t)count;
    if ((site >= 0 && weft__mpi_fault((weft__mpi_fault_site)site)) ||
        weft__grow_bytes(buf, cap, first + 8, 65536)) {
        /* not even the first piece: the scratch takes it, the header tells
         * how many messages follow */
        MPI_Mrecv(scratch, count, MPI_BYTE, m, MPI_STATUS_IGNORE);
        memset(h, 0, sizeof *h);
        memcpy(h, scratch, first < sizeof *h ? first : sizeof *h);
        weft__mpi_drain(src, tag, h->follow);
        return -1;
    }
    MPI_Mrecv(*buf, count, MPI_BYTE, m, MPI_STATUS_IGNORE);
    memset(h, 0, sizeof *h);
    memcpy(h, *buf, first < sizeof *h ? first : sizeof *h);
    if (h->total <= first) return 0;
    /* the rest of its pieces */
    if (weft__grow_bytes(buf, cap, h->total + 8, 65536)) {
        weft__mpi_drain(src, tag, h->follow);
        return -1;
    }
    weft__mpi_recv_big(*buf + first, h->total - first, src, tag);
    return 0;
}

#endif
