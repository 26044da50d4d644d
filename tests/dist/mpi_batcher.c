/* Under mpirun -np 2: each rank's nb_batcher (data.h) yields, batch by batch, exactly the
 * samples that nb_dist_permutation + nb_dist_shard assign to that rank, so a trainer can feed
 * its shard straight from the batcher. */
#include <string.h>

#include <nabla/dist.h>
#include <nabla/nabla.h>

#include "mpi_check.h"

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    enum { N = 103, B = 8 };
    nb_tensor *x = nb_tensor_new(NB_F32, NB_SHAPE(N, 2)), *y = nb_tensor_new(NB_I64, NB_SHAPE(N));
    for (int64_t i = 0; i < N; i++) ((float *)x->data)[2 * i] = (float)i, ((int64_t *)y->data)[i] = i;
    int64_t perm[N], idx[B];
    for (int drop = 0; drop <= 1; drop++) {
        nb_batcher *it = nb_batcher_new(x, y, &(nb_batch_opts){.batch_size = B, .shuffle = true, .seed = 5,
                                                               .drop_last = drop, .rank = rank, .world_size = world});
        CHECK(it != NULL, "%s", nb_last_error());
        CHECK(nb_batcher_num_batches(it) == nb_dist_steps(N, world, B, drop), "step counts differ");
        for (int64_t e = 0; e < 3; e++) {
            nb_dist_permutation(5, e, N, perm);
            nb_batcher_start(it, e);
            nb_batch b;
            int64_t s = 0, mismatches = 0;
            while (nb_batcher_next(it, &b)) {
                int64_t global = 0, n = nb_dist_shard(perm, N, s, rank, world, B, idx, &global);
                CHECK(n == b.n && global == b.global_n, "step %lld: %lld/%lld vs %lld/%lld", (long long)s,
                      (long long)b.n, (long long)b.global_n, (long long)n, (long long)global);
                for (int64_t i = 0; i < n && i < b.n; i++)
                    mismatches += idx[i] != b.idx[i] || ((int64_t *)b.y->data)[i] != idx[i] ||
                                  nb_get(b.x, 2 * i) != (double)idx[i];
                s++;
            }
            CHECK(mismatches == 0, "epoch %lld: %lld samples differ from nb_dist_shard", (long long)e, (long long)mismatches);
            CHECK(s == nb_dist_steps(N, world, B, drop), "epoch %lld: %lld steps", (long long)e, (long long)s);
        }
        nb_batcher_free(it);
    }
    nb_tensor_free(x), nb_tensor_free(y);
    int rc = mpi_check_done();
    MPI_Finalize();
    return rc;
}
