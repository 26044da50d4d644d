/* Data-parallel throughput at a fixed global batch, per gradient-averaging mode: the input of
 * the scaling efficiency samples/s(N ranks) / (N * samples/s(1 rank)). One command runs it at
 * 1 and 2 ranks for both models and prints the efficiencies: scripts/dist-bench.sh.
 *
 *   mpirun --allow-run-as-root --oversubscribe -np 2 build/bench_dist_scaling --model mlp
 *
 * Models: mlp (784-256-128-10, global batch 256) and cnn (examples/fashion_cnn.c's network:
 * conv32-bn-relu-pool, conv64-bn-relu-pool, dropout, 3136-128-10; global batch 128), on
 * synthetic data (throughput does not depend on the values), SGD. Each process uses one thread.
 * Modes: blocking (one MPI_Allreduce after backward), overlap (buckets of 1 MiB),
 * overlap128k (128 KiB buckets), sleep (overlap, waits sleep 50 us between polls instead of
 * spinning: nb_dist_opts.idle_sleep_us, for a machine with other work), zero (ZeRO-1: bucketed
 * reduce-scatter during backward, sharded update, all-gather), shm (the default: averaging through a
 * shared window, nb_dist_opts.shm), zeroshm (ZeRO-1 with the shared window).
 * Last, the reduction alone: bare MPI_Allreduce, the allreduce step and the shared-memory step.
 * Prints a readable line per mode and a tab-separated line for scripts:
 *     RESULT <model> <ranks> <mode> <samples/s> <ms/step> <MPI in backward %> <waiting %>
 * Options: --model mlp|cnn, --steps S (timed steps per mode, default 60 mlp / 15 cnn), --batch G
 * (global batch), --modes a,b,... (default all). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <nabla/dist.h>
#include <nabla/nabla.h>

enum { NDATA = 2048 };

typedef struct {
    bool cnn;
    int64_t in; /* features per sample */
    nb_params *ps;
    nb_linear_layer fc[3];
    nb_conv2d_layer conv1, conv2;
    nb_batch_norm_layer bn1, bn2;
} model;

static nb_status model_init(model *m, bool cnn) {
    memset(m, 0, sizeof *m);
    m->cnn = cnn;
    m->in = 784;
    m->ps = nb_params_new();
    nb_rng r = nb_rng_new(5);
    nb_status s;
    if (!cnn) {
        s = nb_linear_layer_init(&m->fc[0], m->ps, "fc1", 784, 256, true, &r);
        if (!s) s = nb_linear_layer_init(&m->fc[1], m->ps, "fc2", 256, 128, true, &r);
        if (!s) s = nb_linear_layer_init(&m->fc[2], m->ps, "fc3", 128, 10, true, &r);
        return s;
    }
    s = nb_conv2d_layer_init(&m->conv1, m->ps, "conv1", 1, 32, 3, 1, 1, 1, 1, false, &r);
    if (!s) s = nb_batch_norm_layer_init(&m->bn1, m->ps, "bn1", 32);
    if (!s) s = nb_conv2d_layer_init(&m->conv2, m->ps, "conv2", 32, 64, 3, 1, 1, 1, 1, false, &r);
    if (!s) s = nb_batch_norm_layer_init(&m->bn2, m->ps, "bn2", 64);
    if (!s) s = nb_linear_layer_init(&m->fc[0], m->ps, "fc1", 64 * 7 * 7, 128, true, &r);
    if (!s) s = nb_linear_layer_init(&m->fc[1], m->ps, "fc2", 128, 10, true, &r);
    m->bn1.relu = m->bn2.relu = true; /* conv-BN-ReLU fused, as fashion_cnn trains */
    return s;
}

static void model_free(model *m) {
    if (m->cnn) nb_batch_norm_layer_free(&m->bn1), nb_batch_norm_layer_free(&m->bn2);
    nb_params_free(m->ps);
}

/* mean cross-entropy on samples idx[0..b) */
static nb_tensor *loss_on(nb_ctx *ctx, const model *m, const float *X, const int64_t *Y, const int64_t *idx, int64_t b) {
    float *xb = nb_ctx_alloc(ctx, (size_t)b * m->in * sizeof(float));
    int64_t *yb = nb_ctx_alloc(ctx, (size_t)b * sizeof(int64_t));
    if (!xb || !yb) return NULL;
    for (int64_t i = 0; i < b; i++) {
        memcpy(xb + i * m->in, X + idx[i] * m->in, m->in * sizeof(float));
        yb[i] = Y[idx[i]];
    }
    nb_tensor *y = nb_from(ctx, NB_I64, NB_SHAPE(b), yb), *h;
    if (!m->cnn) {
        h = nb_relu(ctx, nb_linear_layer_forward(ctx, &m->fc[0], nb_from(ctx, NB_F32, NB_SHAPE(b, 784), xb)));
        h = nb_relu(ctx, nb_linear_layer_forward(ctx, &m->fc[1], h));
        return nb_cross_entropy(ctx, nb_linear_layer_forward(ctx, &m->fc[2], h), y, NB_REDUCE_MEAN);
    }
    nb_tensor *x = nb_from(ctx, NB_F32, NB_SHAPE(b, 1, 28, 28), xb);
    h = nb_batch_norm_layer_forward(ctx, &m->bn1, nb_conv2d_layer_forward(ctx, &m->conv1, x));
    h = nb_max_pool2d(ctx, h, 2, 2, 0);
    h = nb_batch_norm_layer_forward(ctx, &m->bn2, nb_conv2d_layer_forward(ctx, &m->conv2, h));
    h = nb_dropout(ctx, nb_flatten(ctx, nb_max_pool2d(ctx, h, 2, 2, 0), 1), 0.25);
    h = nb_dropout(ctx, nb_relu(ctx, nb_linear_layer_forward(ctx, &m->fc[0], h)), 0.5);
    return nb_cross_entropy(ctx, nb_linear_layer_forward(ctx, &m->fc[1], h), y, NB_REDUCE_MEAN);
}

typedef struct {
    const char *name, *what;
    bool overlap, zero;
    size_t bucket;
    double idle_sleep_us;
    bool shm;
} mode;

static const mode MODES[] = {
    {"blocking", "no overlap (one blocking allreduce)", false, false, (size_t)1 << 20, 0, false},
    {"overlap", "overlap, 1 MiB buckets", true, false, (size_t)1 << 20, 0, false},
    {"overlap128k", "overlap, 128 KiB buckets", true, false, (size_t)128 << 10, 0, false},
    {"sleep", "overlap, 1 MiB, waits sleep 50 us", true, false, (size_t)1 << 20, 50, false},
    {"zero", "ZeRO-1, overlapped reduce-scatter", true, true, (size_t)1 << 20, 0, false},
    {"shm", "shared memory (default)", true, false, (size_t)1 << 20, 0, true},
    {"zeroshm", "ZeRO-1, shared memory", true, true, (size_t)1 << 20, 0, true},
};

static void fail(nb_dist *d, const char *where) {
    fprintf(stderr, "bench_dist_scaling: %s: %s\n", where, nb_last_error());
    nb_dist_abort(d, where);
}

/* Seconds of one gradient averaging without backward (begin + finish), or of a bare
 * MPI_Allreduce of the buffer when d is NULL. */
static double time_reduce(nb_dist *d, nb_ctx *ctx, nb_params *ps) {
    MPI_Barrier(MPI_COMM_WORLD);
    const double t = MPI_Wtime();
    if (!d) MPI_Allreduce(MPI_IN_PLACE, ps->grad_flat, (int)ps->total, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    else if (nb_dist_step_begin(d, ctx) != NB_OK || nb_dist_step_finish(d, NB_OK) != NB_OK) fail(d, "reduce");
    return MPI_Wtime() - t;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *model_name = "mlp", *modes = "blocking,overlap,overlap128k,sleep,zero,shm,zeroshm";
    int steps = 0, G = 0;
    for (int i = 1; i + 1 < argc; i++) {
        if (!strcmp(argv[i], "--model")) model_name = argv[++i];
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch")) G = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--modes")) modes = argv[++i];
    }
    const bool cnn = !strcmp(model_name, "cnn");
    if (!cnn && strcmp(model_name, "mlp")) {
        fprintf(stderr, "bench_dist_scaling: --model mlp or cnn, not '%s'\n", model_name);
        return 2;
    }
    if (steps <= 0) steps = cnn ? 15 : 60;
    if (G <= 0) G = cnn ? 128 : 256;
    MPI_Init(&argc, &argv);
    nb_set_num_threads(1);
    model m;
    if (model_init(&m, cnn) != NB_OK) fail(NULL, "model");
    nb_params *ps = m.ps;
    nb_dist *d = nb_dist_init(MPI_COMM_WORLD, ps, NULL);
    if (!d) fail(NULL, "dist_init");
    const int world = nb_dist_size(d), rank = nb_dist_rank(d);
    if (G % world) G -= G % world;
    const int64_t B = G / world;
    float *X = malloc((size_t)NDATA * m.in * sizeof(float));
    int64_t *Y = malloc(NDATA * sizeof(int64_t)), *perm = malloc(NDATA * sizeof(int64_t)), *idx = malloc(B * sizeof(int64_t));
    float *start = malloc((size_t)ps->total * sizeof(float));
    if (!X || !Y || !perm || !idx || !start) fail(d, "out of memory");
    for (int64_t i = 0; i < (int64_t)NDATA * m.in; i++) X[i] = (float)nb_philox_uniform(3, (uint64_t)i);
    for (int64_t i = 0; i < NDATA; i++) Y[i] = (int64_t)(nb_philox_uniform(4, (uint64_t)i) * 10);
    if (nb_dist_bcast_params(d, ps) != NB_OK) fail(d, "bcast");
    memcpy(start, ps->flat, (size_t)ps->total * sizeof(float));
    nb_dist_printf(d, stdout, "%s, %lld parameters (%.2f MB of gradients per step), global batch %d = %d rank(s) x %lld, 1 thread each\n",
                   cnn ? "fashion_cnn (width 32, hidden 128)" : "MLP 784-256-128-10", (long long)ps->total,
                   ps->total * 4e-6, G, world, (long long)B);
    nb_ctx *ctx = nb_ctx_new();
    nb_ctx_seed(ctx, 42 + (uint64_t)rank);
    nb_hparams hp = nb_sgd.defaults;
    hp.lr = 0.01;
    for (size_t k = 0; k < sizeof MODES / sizeof *MODES; k++) {
        const mode *md = &MODES[k];
        const char *at = strstr(modes, md->name);
        const size_t len = strlen(md->name);
        if (!at || (at != modes && at[-1] != ',') || (at[len] && at[len] != ',')) continue;
        nb_dist_opts o = NB_DIST_DEFAULTS;
        o.overlap = md->overlap;
        o.bucket_bytes = md->bucket;
        o.idle_sleep_us = md->idle_sleep_us;
        o.shm = md->shm;
        if (nb_dist_set_opts(d, &o) != NB_OK) fail(d, "set_opts");
        memcpy(ps->flat, start, (size_t)ps->total * sizeof(float)); /* every mode trains the same steps */
        nb_optim *opt = md->zero ? NULL : nb_optim_new(&nb_sgd, ps, &hp);
        nb_dist_optim *zopt = md->zero ? nb_dist_optim_new(d, &nb_sgd, &hp) : NULL;
        if (!opt && !zopt) fail(d, "optimizer");
        double t0 = 0;
        for (int s = -3; s < steps; s++) { /* 3 warm-up steps */
            if (s == 0) {
                MPI_Barrier(MPI_COMM_WORLD);
                nb_dist_reset_stats(d);
                t0 = MPI_Wtime();
            }
            const int64_t per_epoch = nb_dist_steps(NDATA, world, B, true), step = (s + 3) % per_epoch;
            if (step == 0) nb_dist_permutation(7, (s + 3) / per_epoch, NDATA, perm);
            nb_ctx_reset(ctx);
            nb_params_zero_grad(ps);
            const int64_t b = nb_dist_shard(perm, NDATA, step, rank, world, B, idx, NULL);
            if (nb_dist_backward(d, ctx, loss_on(ctx, &m, X, Y, idx, b)) != NB_OK) fail(d, "step");
            if ((zopt ? nb_dist_optim_step(zopt) : nb_optim_step(opt)) != NB_OK) fail(d, "optimizer step");
        }
        const double el = MPI_Wtime() - t0;
        const nb_dist_stats stt = nb_dist_get_stats(d);
        double v[3] = {el, stt.comm_in_backward_s, stt.wait_s};
        nb_dist_mean(d, v, 3);
        const double sps = steps * (double)G / v[0];
        nb_dist_printf(d, stdout,
                       "  %-38s %2d bucket(s): %8.0f samples/s  %7.2f ms/step  MPI in backward %5.1f%%  "
                       "waiting after backward %5.1f%%\n",
                       md->what, nb_dist_num_buckets(d), sps, 1e3 * v[0] / steps, 100 * v[1] / v[0],
                       100 * v[2] / v[0]);
        nb_dist_printf(d, stdout, "RESULT\t%s\t%d\t%s\t%.1f\t%.3f\t%.1f\t%.1f\n", model_name, world, md->name, sps,
                       1e3 * v[0] / steps, 100 * v[1] / v[0], 100 * v[2] / v[0]);
        nb_dist_optim_free(zopt);
        nb_optim_free(opt);
    }
    /* the communication alone, for reading the figures above: a bare allreduce of the gradients,
     * nb_dist's blocking allreduce step and its shared-memory step, interleaved (the same load
     * for the three), median and minimum of 40 each */
    enum { REPS = 40 };
    double t[3][REPS];
    nb_dist_opts shm = NB_DIST_DEFAULTS, mpi = NB_DIST_DEFAULTS;
    mpi.overlap = mpi.shm = false;
    for (int r = 0; r < REPS; r++) {
        t[0][r] = time_reduce(NULL, ctx, ps);
        if (nb_dist_set_opts(d, &mpi) != NB_OK) fail(d, "set_opts");
        t[1][r] = time_reduce(d, ctx, ps);
        if (nb_dist_set_opts(d, &shm) != NB_OK) fail(d, "set_opts");
        t[2][r] = time_reduce(d, ctx, ps);
    }
    static const char *what[3] = {"bare MPI_Allreduce", "nb_dist step, allreduce", "nb_dist step, shared memory"};
    for (int k = 0; k < 3; k++) {
        qsort(t[k], REPS, sizeof(double), cmp_double);
        double v[2] = {t[k][REPS / 2], t[k][0]};
        nb_dist_mean(d, v, 2);
        nb_dist_printf(d, stdout, "  %-28s of the %.2f MB gradient buffer: median %.3f ms, min %.3f ms%s\n", what[k],
                       ps->total * 4e-6, 1e3 * v[0], 1e3 * v[1],
                       k == 2 && !nb_dist_uses_shm(d) ? " (shared memory unavailable: the allreduce path)" : "");
    }
    nb_ctx_free(ctx);
    nb_dist_free(d);
    model_free(&m);
    free(X), free(Y), free(perm), free(idx), free(start);
    MPI_Finalize();
    return 0;
}
