/* mpi_fault.c : the fault-injection hook of the mpi backend (tests only).
 * A test makes the backend's allocations fail (mpi_internal.h lists the
 * sites) to check that a task whose input, output or batch cannot be held
 * fails with WEFT_ENOMEM and the executor goes on. Compiled in every build
 * (a build without MPI never asks it). One relaxed load per allocation
 * site while nothing is armed. */
#include "backends/mpi/mpi_internal.h"

static struct {
    _Atomic int skip, count;
} faults[WEFT__MPI_FAULT_SITES];

void weft__mpi_fault_arm(weft__mpi_fault_site site, int skip, int count)
{
    if ((unsigned)site >= WEFT__MPI_FAULT_SITES) return;
    atomic_store(&faults[site].skip, skip);
    atomic_store(&faults[site].count, count);
}

bool weft__mpi_fault(weft__mpi_fault_site site)
{
    if (WEFT__LIKELY(!atomic_load_explicit(&faults[site].count, memory_order_relaxed)))
        return false;
    if (atomic_load(&faults[site].skip) > 0) {
        atomic_fetch_sub(&faults[site].skip, 1);
        return false;
    }
    atomic_fetch_sub(&faults[site].count, 1);
    return true;
}
