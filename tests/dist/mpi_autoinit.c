/* nb_dist_init initializes MPI when the program did not, and nb_dist_free finalizes it: the
 * whole MPI life of a program like examples/fashion_mlp --distributed is the init/free pair. */
#include <stdio.h>

#include <nabla/dist.h>

int main(void) {
    int inited = 1, finalized = 0;
    MPI_Initialized(&inited);
    nb_dist *d = nb_dist_init(MPI_COMM_WORLD, NULL, NULL);
    if (!d) {
        fprintf(stderr, "dist_init: %s\n", nb_last_error());
        return 1;
    }
    int failed = inited != 0; /* MPI was not initialized before */
    MPI_Initialized(&inited);
    failed += inited != 1;
    double one = 1;
    failed += nb_dist_sum(d, &one, 1) != NB_OK || one != nb_dist_size(d) || nb_dist_size(d) < 1;
    double f = failed;
    nb_dist_sum(d, &f, 1);
    if (nb_dist_is_root(d)) printf("%d passed, %d failed\n", f == 0 ? 1 : 0, (int)f);
    nb_dist_free(d);
    MPI_Finalized(&finalized);
    if (!finalized) fprintf(stderr, "nb_dist_free did not finalize MPI\n");
    return f != 0 || !finalized;
}
