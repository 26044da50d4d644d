/* Minimal checks for the MPI test programs (Criterion forks per test, which MPI does not
 * survive). Each rank counts its checks; mpi_check_done sums the failures over all ranks,
 * prints "N passed, N failed" on rank 0 and gives the exit code. */
#ifndef NABLA_MPI_CHECK_H
#define NABLA_MPI_CHECK_H

#include <mpi.h>
#include <stdio.h>

static int mpi_check_passed, mpi_check_failed;

#define CHECK(cond, ...)                                                               \
    do {                                                                               \
        if (cond) {                                                                    \
            mpi_check_passed++;                                                        \
        } else {                                                                       \
            int r_ = -1;                                                               \
            MPI_Comm_rank(MPI_COMM_WORLD, &r_);                                        \
            mpi_check_failed++;                                                        \
            fprintf(stderr, "rank %d: %s:%d: check failed: %s: ", r_, __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                              \
            fputc('\n', stderr);                                                       \
        }                                                                              \
    } while (0)

/* Collective over MPI_COMM_WORLD. Returns the exit status (0 when every rank passed). */
static inline int mpi_check_done(void) {
    int counts[2] = {mpi_check_passed, mpi_check_failed}, rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Allreduce(MPI_IN_PLACE, counts, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) printf("%d passed, %d failed\n", counts[0], counts[1]);
    return counts[1] != 0 || counts[0] == 0;
}

#endif
