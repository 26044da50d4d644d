/* The MPI part from outside nabla's tree (scripts/consumer-test.sh): nb_dist_init starts MPI
 * itself, a sum over the ranks must give the number of ranks, nb_dist_free finalizes MPI. Runs
 * without mpirun as a single rank. Exits non-zero on failure. */
#include <nabla/dist.h>

#include <stdlib.h>

int main(void) {
    nb_dist *d = nb_dist_init(MPI_COMM_WORLD, NULL, NULL);
    if (!d) {
        fprintf(stderr, "consumer_dist: %s\n", nb_last_error());
        return 1;
    }
    double one = 1;
    int bad = nb_dist_sum(d, &one, 1) != NB_OK || one != nb_dist_size(d);
    if (nb_dist_is_root(d))
        printf("consumer_dist: %d rank(s), sum of ones %.0f: %s\n", nb_dist_size(d), one, bad ? "FAIL" : "ok");
    nb_dist_free(d);
    return bad ? EXIT_FAILURE : EXIT_SUCCESS;
}
