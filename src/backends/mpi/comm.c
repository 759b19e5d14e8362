/* comm.c : what every part of the mpi backend shares: weft's communicator,
 * this process's rank, the lock that serializes MPI calls on rank 0, and
 * the send/receive of payloads larger than one MPI message. init.c,
 * worker.c and dispatch.c all call down to this file and never to each
 * other's globals (so no two files of the backend call each other). */
#ifdef WEFT_HAVE_MPI
#include <limits.h>
#include <stdlib.h>

#include "backends/mpi/wire.h"

MPI_Comm weft__mpi_comm = MPI_COMM_NULL;
int weft__mpi_rank = -1, weft__mpi_size = 0;
pthread_mutex_t weft__mpi_mu = PTHREAD_MUTEX_INITIALIZER;
bool *weft__mpi_same_host;
_Atomic int weft__mpi_live;
int (*weft__mpi_create_local)(const weft_options *o, weft_executor **out);

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

int weft__mpi_recv_big(void *p, size_t len, int src, int tag)
{
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

#endif
