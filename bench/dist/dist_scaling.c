/* Data-parallel throughput of an MLP 784-256-128-10 at a fixed global batch.
 *
 *   mpirun --allow-run-as-root --oversubscribe -np 1 build/bench_dist_mlp
 *   mpirun --allow-run-as-root --oversubscribe -np 2 build/bench_dist_mlp
 *
 * Each process uses one thread. Prints, per gradient-averaging mode, the global samples/s and
 * the share of step time spent in MPI: inside backward (starting buckets, driving progress)
 * and waiting after it (step_finish). Scaling efficiency = samples/s(N) / (N * samples/s(1)).
 * Options: --steps S (default 60), --batch G (global batch, default 256). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <nabla/dist.h>
#include <nabla/nabla.h>

enum { D = 784, H1 = 256, H2 = 128, C = 10, NDATA = 4096 };

static nb_tensor *loss_on(nb_ctx *ctx, nb_params *ps, const float *X, const int64_t *Y, const int64_t *idx, int64_t b) {
    float *xb = nb_ctx_alloc(ctx, (size_t)b * D * sizeof(float));
    int64_t *yb = nb_ctx_alloc(ctx, (size_t)b * sizeof(int64_t));
    for (int64_t i = 0; i < b; i++) {
        memcpy(xb + i * D, X + idx[i] * D, D * sizeof(float));
        yb[i] = Y[idx[i]];
    }
    nb_tensor *x = nb_from(ctx, NB_F32, NB_SHAPE(b, D), xb), *y = nb_from(ctx, NB_I64, NB_SHAPE(b), yb);
    nb_tensor *h = nb_relu(ctx, nb_linear(ctx, x, ps->p[0], ps->p[1]));
    h = nb_relu(ctx, nb_linear(ctx, h, ps->p[2], ps->p[3]));
    return nb_cross_entropy(ctx, nb_linear(ctx, h, ps->p[4], ps->p[5]), y, NB_REDUCE_MEAN);
}

int main(int argc, char **argv) {
    int steps = 60, G = 256;
    for (int i = 1; i + 1 < argc; i++) {
        if (!strcmp(argv[i], "--steps")) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch")) G = atoi(argv[++i]);
    }
    MPI_Init(&argc, &argv);
    nb_set_num_threads(1);
    nb_params *ps = nb_params_new();
    const int64_t dims[4] = {D, H1, H2, C};
    nb_rng rng = nb_rng_new(1);
    for (int l = 0; l < 3; l++) {
        char name[32];
        snprintf(name, sizeof name, "fc%d.weight", l + 1);
        nb_tensor *w = nb_params_add(ps, name, NB_SHAPE(dims[l + 1], dims[l]));
        nb_rng_normal(&rng, w, 0, 1.0 / sqrt((double)dims[l]));
        snprintf(name, sizeof name, "fc%d.bias", l + 1);
        nb_params_add(ps, name, NB_SHAPE(dims[l + 1]));
    }
    nb_dist *d = nb_dist_init(MPI_COMM_WORLD, ps, NULL);
    if (!d) {
        fprintf(stderr, "%s\n", nb_last_error());
        return 1;
    }
    const int world = nb_dist_size(d), rank = nb_dist_rank(d);
    if (G % world) G -= G % world;
    const int64_t B = G / world;
    float *X = malloc((size_t)NDATA * D * sizeof(float));
    int64_t *Y = malloc(NDATA * sizeof(int64_t)), *perm = malloc(NDATA * sizeof(int64_t)), *idx = malloc(B * sizeof(int64_t));
    for (int64_t i = 0; i < (int64_t)NDATA * D; i++) X[i] = (float)nb_philox_uniform(3, (uint64_t)i);
    for (int64_t i = 0; i < NDATA; i++) Y[i] = (int64_t)(nb_philox_uniform(4, (uint64_t)i) * C);
    nb_dist_bcast_params(d, ps);
    nb_dist_printf(d, stdout, "MLP 784-256-128-10, %lld parameters (%.2f MB of gradients per step), global batch %d = %d ranks x %lld, 1 thread each\n",
                   (long long)ps->total, ps->total * 4e-6, G, world, (long long)B);

    struct { const char *name; bool overlap; size_t bucket; } modes[] = {
        {"no overlap (one blocking allreduce)", false, (size_t)1 << 20},
        {"overlap, 1 MiB buckets (default)", true, (size_t)1 << 20},
        {"overlap, 128 KiB buckets", true, (size_t)128 << 10},
    };
    nb_ctx *ctx = nb_ctx_new();
    for (size_t m = 0; m < sizeof modes / sizeof *modes; m++) {
        nb_dist_opts o = NB_DIST_DEFAULTS;
        o.overlap = modes[m].overlap;
        o.bucket_bytes = modes[m].bucket;
        nb_dist_set_opts(d, &o);
        double t0 = 0;
        for (int s = -5; s < steps; s++) { /* 5 warm-up steps */
            if (s == 0) {
                MPI_Barrier(MPI_COMM_WORLD);
                nb_dist_reset_stats(d);
                t0 = MPI_Wtime();
            }
            int64_t step = (s + 5) % nb_dist_steps(NDATA, world, B, true);
            if (step == 0) nb_dist_permutation(7, s + 5, NDATA, perm);
            nb_ctx_reset(ctx);
            nb_params_zero_grad(ps);
            int64_t b = nb_dist_shard(perm, NDATA, step, rank, world, B, idx, NULL);
            nb_status st = nb_dist_backward(d, ctx, loss_on(ctx, ps, X, Y, idx, b));
            if (st != NB_OK) {
                fprintf(stderr, "%s\n", nb_last_error());
                nb_dist_abort(d, "step failed");
            }
            for (int64_t i = 0; i < ps->total; i++) ps->flat[i] -= 0.01f * ps->grad_flat[i];
        }
        double el = MPI_Wtime() - t0;
        nb_dist_stats stt = nb_dist_get_stats(d);
        double v[3] = {el, stt.comm_in_backward_s, stt.wait_s};
        nb_dist_mean(d, v, 3);
        nb_dist_printf(d, stdout, "  %-36s %2d bucket(s): %8.0f samples/s  %6.2f ms/step  MPI in backward %5.1f%%  waiting after backward %5.1f%%\n",
                       modes[m].name, nb_dist_num_buckets(d), steps * (double)G / v[0], 1e3 * v[0] / steps,
                       100 * v[1] / v[0], 100 * v[2] / v[0]);
    }
    /* the communication alone, for reading the figures above: a bare allreduce of the gradients */
    MPI_Barrier(MPI_COMM_WORLD);
    double t1 = MPI_Wtime();
    for (int r = 0; r < 50; r++) MPI_Allreduce(MPI_IN_PLACE, ps->grad_flat, (int)ps->total, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    double ar = (MPI_Wtime() - t1) / 50;
    nb_dist_mean(d, &ar, 1);
    nb_dist_printf(d, stdout, "  bare MPI_Allreduce of the %.2f MB gradient buffer: %.3f ms\n", ps->total * 4e-6, 1e3 * ar);
    nb_ctx_free(ctx);
    nb_dist_free(d);
    nb_params_free(ps);
    free(X), free(Y), free(perm), free(idx);
    MPI_Finalize();
    return 0;
}
