/* init.c : weft_init and weft_finalize. Each backend gets its say through
 * the interface (core/backend.h): first every `prepare` looks at the
 * process (was it started by a launcher such as mpirun, as a remote
 * worker?), then every `init` starts what it needs while the program is
 * still single-threaded: the processes backend its fork server, the mpi
 * backend MPI (a worker rank never returns from it). */
#include "core/backend.h"
#include "internal.h"

int weft_init(int *argc, char ***argv)
{
    if (weft__worker_process) return 0;
    weft__init_ctx c = {argc, argv, false, false, weft_executor_create};
    for (size_t i = 0; i < weft__nbackends; i++)
        if (weft__backends[i]->prepare) weft__backends[i]->prepare(&c);
    int rc = 0;
    for (size_t i = 0; i < weft__nbackends; i++) {
        if (!weft__backends[i]->init) continue;
        int r = weft__backends[i]->init(&c);
        if (r && !rc) rc = r;
    }
    return rc;
}

int weft_finalize(void)
{
    int rc = 0;
    for (size_t i = weft__nbackends; i-- > 0;) {
        if (!weft__backends[i]->finalize) continue;
        int r = weft__backends[i]->finalize();
        if (r && !rc) rc = r;
    }
    return rc;
}
