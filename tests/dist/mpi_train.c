/* Data-parallel training under mpirun -np 2 (and 3): after every SGD step the parameters equal,
 * to float tolerance, a single-process run with the world-size-times batch and the same seed;
 * broadcast makes differently initialised ranks equal; overlap on and off give the same
 * parameters, through MPI and through shared memory; at 2 ranks both give the same bits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nabla/dist.h>
#include <nabla/nabla.h>

#include "mpi_check.h"

enum { D = 20, H1 = 16, H2 = 12, C = 4, N = 96, B = 8, EPOCHS = 2 };
static float X[N * D];
static int64_t Y[N];

/* An unused parameter first (its bucket can only start in finish), then a 3-layer MLP. */
static nb_params *make_mlp(uint64_t seed) {
    nb_params *ps = nb_params_new();
    nb_params_add(ps, "unused", NB_SHAPE(5));
    nb_tensor *w[3] = {nb_params_add(ps, "fc1.w", NB_SHAPE(H1, D)), NULL, NULL};
    nb_params_add(ps, "fc1.b", NB_SHAPE(H1));
    w[1] = nb_params_add(ps, "fc2.w", NB_SHAPE(H2, H1));
    nb_params_add(ps, "fc2.b", NB_SHAPE(H2));
    w[2] = nb_params_add(ps, "fc3.w", NB_SHAPE(C, H2));
    nb_params_add(ps, "fc3.b", NB_SHAPE(C));
    nb_rng rng = nb_rng_new(seed);
    for (int i = 0; i < 3; i++) nb_rng_normal(&rng, w[i], 0, 0.4);
    nb_rng_uniform(&rng, nb_params_find(ps, "fc1.b"), -0.1, 0.1);
    nb_rng_uniform(&rng, nb_params_find(ps, "fc3.b"), -0.1, 0.1);
    return ps;
}

/* mean cross-entropy of the MLP on the samples idx[0..b) */
static nb_tensor *loss_on(nb_ctx *ctx, nb_params *ps, const int64_t *idx, int64_t b) {
    static float xb[N * D];
    static int64_t yb[N];
    for (int64_t i = 0; i < b; i++) {
        memcpy(xb + i * D, X + idx[i] * D, D * sizeof(float));
        yb[i] = Y[idx[i]];
    }
    nb_tensor *x = nb_from(ctx, NB_F32, NB_SHAPE(b, D), xb), *y = nb_from(ctx, NB_I64, NB_SHAPE(b), yb);
#define P(name) nb_params_find(ps, name)
    nb_tensor *h = nb_relu(ctx, nb_linear(ctx, x, P("fc1.w"), P("fc1.b")));
    h = nb_relu(ctx, nb_linear(ctx, h, P("fc2.w"), P("fc2.b")));
    return nb_cross_entropy(ctx, nb_linear(ctx, h, P("fc3.w"), P("fc3.b")), y, NB_REDUCE_MEAN);
#undef P
}

static void sgd(nb_params *ps, float lr) {
    for (int64_t i = 0; i < ps->total; i++) ps->flat[i] -= lr * ps->grad_flat[i];
}

static double max_rel_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]) / (1 + fabs((double)b[i])));
    return m;
}

/* Train with opts; check every step against the one-process reference. Returns the final
 * parameters (malloc'd) for the overlap on/off comparison. */
static float *train(const nb_dist_opts *opts, bool use_backward_helper) {
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    nb_params *ref = make_mlp(1), *ps = make_mlp(1 + 100 * (uint64_t)rank);
    nb_dist *d = nb_dist_init(MPI_COMM_WORLD, ps, opts);
    CHECK(d != NULL, "dist_init: %s", nb_last_error());
    MPI_Comm node;
    int local = 0;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &local);
    MPI_Comm_free(&node);
    CHECK(nb_dist_uses_shm(d) == (opts->shm && local > 1), "shared memory %s with %d of %d ranks on this node",
          nb_dist_uses_shm(d) ? "used" : "not used", local, world);
    nb_dist_printf(d, stdout, "%d of %d ranks on rank 0's node, shared memory %s\n", local, world,
                   nb_dist_uses_shm(d) ? "used" : "not used");
    CHECK(nb_dist_rank(d) == rank && nb_dist_size(d) == world, "rank %d size %d", nb_dist_rank(d), nb_dist_size(d));
    if (rank > 0) CHECK(memcmp(ps->flat, ref->flat, ref->total * sizeof(float)) != 0, "ranks start different");
    CHECK(nb_dist_bcast_params(d, ps) == NB_OK, "%s", nb_last_error());
    CHECK(memcmp(ps->flat, ref->flat, ref->total * sizeof(float)) == 0, "after broadcast every rank has rank 0's init");

    nb_ctx *ctx = nb_ctx_new(), *rctx = nb_ctx_new();
    int64_t perm[N], idx[N], gidx[N], global = 0;
    double worst = 0, spread = 0;
    int bad_steps = 0;
    float *root = malloc(ps->total * sizeof(float));
    for (int e = 0; e < EPOCHS; e++) {
        nb_dist_permutation(42, e, N, perm);
        for (int64_t s = 0; s < nb_dist_steps(N, world, B, false); s++) {
            /* one process, batch world*B */
            nb_ctx_reset(rctx);
            nb_params_zero_grad(ref);
            int64_t gb = nb_dist_shard(perm, N, s, 0, 1, (int64_t)world * B, gidx, NULL);
            if (nb_backward(rctx, loss_on(rctx, ref, gidx, gb), NULL) != NB_OK) bad_steps++;
            sgd(ref, 0.5f);
            /* this rank's shard, gradients averaged */
            nb_ctx_reset(ctx);
            nb_params_zero_grad(ps);
            int64_t b = nb_dist_shard(perm, N, s, rank, world, B, idx, &global);
            nb_status st;
            if (use_backward_helper) st = nb_dist_backward(d, ctx, loss_on(ctx, ps, idx, b));
            else {
                st = nb_dist_step_begin(d, ctx);
                if (st == NB_OK) st = nb_dist_step_finish(d, nb_backward(ctx, loss_on(ctx, ps, idx, b), NULL));
            }
            if (st != NB_OK) bad_steps++, fprintf(stderr, "rank %d step %lld: %s\n", rank, (long long)s, nb_last_error());
            sgd(ps, 0.5f);
            worst = fmax(worst, max_rel_diff(ps->flat, ref->flat, ps->total));
            memcpy(root, ps->flat, ps->total * sizeof(float));
            nb_dist_bcast_floats(d, root, ps->total);
            spread = fmax(spread, max_rel_diff(ps->flat, root, ps->total));
        }
    }
    CHECK(bad_steps == 0, "%d steps failed", bad_steps);
    CHECK(worst < 2e-5, "max relative difference to the one-process run %g", worst);
    CHECK(spread == 0, "ranks differ by %g", spread);
    CHECK(max_rel_diff(ps->flat, make_mlp(1)->flat, ps->total) > 1e-2, "training moved the parameters");
    nb_dist_stats stats = nb_dist_get_stats(d);
    CHECK(stats.steps == EPOCHS * nb_dist_steps(N, world, B, false), "steps %lld", (long long)stats.steps);
    if (opts->overlap && !nb_dist_uses_shm(d)) {
        CHECK(nb_dist_num_buckets(d) > 2, "%d buckets", nb_dist_num_buckets(d));
        /* buckets after the unused parameter's one start during backward */
        CHECK(stats.buckets_early == stats.steps * (nb_dist_num_buckets(d) - 1), "%lld buckets started early",
              (long long)stats.buckets_early);
    } else {
        CHECK(stats.buckets_early == 0, "%lld buckets started early without overlap or with shared memory",
              (long long)stats.buckets_early);
    }
    float *out = malloc(ps->total * sizeof(float));
    memcpy(out, ps->flat, ps->total * sizeof(float));
    free(root);
    nb_dist_free(d);
    nb_ctx_free(ctx);
    nb_ctx_free(rctx);
    nb_params_free(ps);
    nb_params_free(ref);
    return out;
}

/* A rank that arrives late at a collective: with idle_sleep_us the early rank sleeps while it
 * waits (counted), without it no sleep is counted (it spins in MPI_Wait). */
static void idle_sleeps_happen(void) {
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    nb_dist_opts o = NB_DIST_DEFAULTS;
    o.idle_sleep_us = 100;
    nb_dist *d = nb_dist_init(MPI_COMM_WORLD, NULL, &o);
    CHECK(d != NULL, "dist_init: %s", nb_last_error());
    const double ranks = nb_dist_size(d) * (nb_dist_size(d) - 1) / 2.0; /* 0 + 1 + ... */
    double v = rank;
    if (rank == 1) nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL); /* 50 ms late */
    CHECK(nb_dist_sum(d, &v, 1) == NB_OK && v == ranks, "sum %g", v);
    nb_dist_stats st = nb_dist_get_stats(d);
    if (rank == 0) CHECK(st.idle_sleeps >= 5, "rank 0 slept %lld times waiting 50 ms for rank 1", (long long)st.idle_sleeps);
    o.idle_sleep_us = 0;
    CHECK(nb_dist_set_opts(d, &o) == NB_OK, "%s", nb_last_error());
    nb_dist_reset_stats(d);
    if (rank == 1) nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    CHECK(nb_dist_sum(d, &v, 1) == NB_OK && v == ranks * nb_dist_size(d), "sum %g", v);
    CHECK(nb_dist_get_stats(d).idle_sleeps == 0, "no sleeps without idle_sleep_us");
    o.idle_sleep_us = -1;
    CHECK(nb_dist_set_opts(d, &o) == NB_ERR_VALUE, "negative idle_sleep_us refused");
    nb_dist_free(d);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    nb_set_num_threads(1);
    nb_rng rng = nb_rng_new(7);
    nb_tensor *x = nb_tensor_new(NB_F32, NB_SHAPE(N, D));
    nb_rng_normal(&rng, x, 0, 1);
    memcpy(X, x->data, sizeof X);
    for (int i = 0; i < N; i++) Y[i] = (int64_t)(nb_philox_uniform(99, i) * C); /* same on every rank */
    nb_tensor_free(x);

    nb_dist_opts on = NB_DIST_DEFAULTS, off = NB_DIST_DEFAULTS;
    on.bucket_bytes = 256; /* several buckets for a small model */
    on.shm = off.shm = false;
    off.overlap = false;
    float *a = train(&on, false), *b = train(&off, true);
    nb_params *shape = make_mlp(1);
    CHECK(memcmp(a, b, shape->total * sizeof(float)) == 0, "overlap on and off give the same parameters (max diff %g)",
          max_rel_diff(a, b, shape->total));
    /* shared memory: the same bits with overlap on and off; at 2 ranks the same as MPI's (a + b
     * commutes); at 3, within train's tolerance of the one-process run (its own order of sums) */
    nb_dist_opts shm_on = on, shm_off = off;
    shm_on.shm = shm_off.shm = true;
    float *f = train(&shm_on, true), *g = train(&shm_off, false);
    CHECK(memcmp(f, g, shape->total * sizeof(float)) == 0, "shared memory: overlap on and off differ by %g",
          max_rel_diff(f, g, shape->total));
    int world;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (world == 2)
        CHECK(memcmp(a, f, shape->total * sizeof(float)) == 0, "shared memory and MPI differ by %g at 2 ranks",
              max_rel_diff(a, f, shape->total));
    /* waits that sleep between polls (opts.idle_sleep_us) give the same bits */
    nb_dist_opts on_sleepy = on, off_sleepy = off;
    on_sleepy.idle_sleep_us = off_sleepy.idle_sleep_us = 20;
    float *c = train(&on_sleepy, true), *e = train(&off_sleepy, false);
    CHECK(memcmp(a, c, shape->total * sizeof(float)) == 0 && memcmp(a, e, shape->total * sizeof(float)) == 0,
          "sleeping waits give the same parameters (max diff %g, %g)", max_rel_diff(a, c, shape->total),
          max_rel_diff(a, e, shape->total));
    idle_sleeps_happen();
    nb_params_free(shape);
    free(a), free(b), free(c), free(e), free(f), free(g);
    int rc = mpi_check_done();
    MPI_Finalize();
    return rc;
}
