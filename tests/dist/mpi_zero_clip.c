/* Global-norm clipping under ZeRO-1 (nb_dist_optim_clip_grad_norm) under mpirun -np 2: the norm
 * is the one nb_clip_grad_norm computes in one process on the same averaged gradient, bit for
 * bit, on every rank; the clipped slice and the parameters after every AdamW step equal plain
 * data parallelism + nb_clip_grad_norm bit for bit. Two models: one smaller than a norm block
 * (the slice boundary cuts block 0, rank 0 gets the rest of it from rank 1) and one of three
 * blocks (the boundary cuts block 1). And on a one-rank communicator the same against the
 * same gradient. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <nabla/dist.h>
#include <nabla/nabla.h>

#include "mpi_check.h"

enum { DMAX = 100, N = 64, B = 8, STEPS = 6 };
static float X[N * DMAX];
static int64_t Y[N];

typedef struct {
    int64_t d, h, c;
} dims;

static nb_params *make_mlp(dims m) {
    nb_params *ps = nb_params_new();
    nb_tensor *w1 = nb_params_add(ps, "fc1.w", NB_SHAPE(m.h, m.d));
    nb_params_add(ps, "fc1.b", NB_SHAPE(m.h));
    nb_tensor *w2 = nb_params_add(ps, "fc2.w", NB_SHAPE(m.c, m.h));
    nb_params_add(ps, "fc2.b", NB_SHAPE(m.c));
    nb_rng rng = nb_rng_new(5);
    nb_rng_normal(&rng, w1, 0, 0.5);
    nb_rng_normal(&rng, w2, 0, 0.5);
    return ps;
}

static nb_tensor *loss_on(nb_ctx *ctx, nb_params *ps, dims m, const int64_t *idx, int64_t b) {
    float *xb = nb_ctx_alloc(ctx, (size_t)b * m.d * sizeof(float));
    int64_t *yb = nb_ctx_alloc(ctx, (size_t)b * sizeof(int64_t));
    for (int64_t i = 0; i < b; i++) memcpy(xb + i * m.d, X + idx[i] * DMAX, m.d * sizeof(float)), yb[i] = Y[idx[i]] % m.c;
    nb_tensor *x = nb_from(ctx, NB_F32, NB_SHAPE(b, m.d), xb), *y = nb_from(ctx, NB_I64, NB_SHAPE(b), yb);
    nb_tensor *h = nb_tanh(ctx, nb_linear(ctx, x, ps->p[0], ps->p[1]));
    return nb_cross_entropy(ctx, nb_linear(ctx, h, ps->p[2], ps->p[3]), y, NB_REDUCE_MEAN);
}

/* backward of global step s on this rank's shard, gradients averaged through d */
static nb_status grads(nb_dist *d, nb_ctx *ctx, nb_params *ps, dims m, int64_t s) {
    int rank = nb_dist_rank(d), world = nb_dist_size(d);
    int64_t perm[N], idx[N], per_epoch = nb_dist_steps(N, world, B, true);
    nb_dist_permutation(9, s / per_epoch, N, perm);
    int64_t b = nb_dist_shard(perm, N, s % per_epoch, rank, world, B, idx, NULL);
    nb_ctx_reset(ctx);
    nb_params_zero_grad(ps);
    return nb_dist_backward(d, ctx, loss_on(ctx, ps, m, idx, b));
}

static bool same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

/* plain data parallelism + nb_clip_grad_norm vs ZeRO-1 + nb_dist_optim_clip_grad_norm over comm,
 * both with gradient-averaging options opts */
static void compare(MPI_Comm comm, dims m, double max_norm, const nb_dist_opts *opts, const char *what) {
    nb_hparams hp = nb_adamw.defaults;
    hp.lr = 0.02, hp.weight_decay = 0.1;
    nb_params *ref = make_mlp(m), *ps = make_mlp(m);
    nb_dist *dref = nb_dist_init(comm, ref, opts), *d = nb_dist_init(comm, ps, opts);
    CHECK(dref && d, "%s: dist_init: %s", what, nb_last_error());
    nb_optim *opt = nb_optim_new(&nb_adamw, ref, &hp);
    nb_dist_optim *z = nb_dist_optim_new(d, &nb_adamw, &hp);
    CHECK(opt && z, "%s: optimizers: %s", what, nb_last_error());
    nb_ctx *ctx = nb_ctx_new(), *rctx = nb_ctx_new();
    int clipped = 0, norm_diff = 0, grad_diff = 0, param_diff = 0, rank_diff = 0, failed = 0;
    for (int64_t s = 0; s < STEPS; s++) {
        failed += grads(dref, rctx, ref, m, s) != NB_OK;
        failed += grads(d, ctx, ps, m, s) != NB_OK;
        const double nref = nb_clip_grad_norm(ref, max_norm);
        const double nz = nb_dist_optim_clip_grad_norm(z, max_norm);
        failed += nref < 0 || nz < 0;
        clipped += nref > max_norm;
        norm_diff += !same_bits(nref, nz);
        double lo_hi[2] = {nz, -nz};
        MPI_Allreduce(MPI_IN_PLACE, lo_hi, 2, MPI_DOUBLE, MPI_MIN, comm);
        rank_diff += !same_bits(lo_hi[0], -lo_hi[1]);
        grad_diff += memcmp(ps->grad_flat + z->lo, ref->grad_flat + z->lo, (size_t)z->n * sizeof(float)) != 0;
        failed += nb_optim_step(opt) != NB_OK;
        failed += nb_dist_optim_step(z) != NB_OK;
        param_diff += memcmp(ps->flat, ref->flat, (size_t)ps->total * sizeof(float)) != 0;
    }
    CHECK(failed == 0, "%s: %d failures: %s", what, failed, nb_last_error());
    const nb_dist_stats st = nb_dist_get_stats(d);
    if (opts->overlap && !nb_dist_uses_shm(d) && nb_dist_num_buckets(d) > 1) /* the sharded reduction started during backward */
        CHECK(st.buckets_early > STEPS, "%s: %lld buckets started during backward", what, (long long)st.buckets_early);
    CHECK(clipped >= STEPS / 2, "%s: only %d of %d steps were clipped: the test does not test clipping", what, clipped,
          STEPS);
    CHECK(norm_diff == 0, "%s: the sharded norm differs from nb_clip_grad_norm's at %d steps", what, norm_diff);
    CHECK(rank_diff == 0, "%s: ranks disagree on the norm at %d steps", what, rank_diff);
    CHECK(grad_diff == 0, "%s: the clipped slice differs at %d steps", what, grad_diff);
    CHECK(param_diff == 0, "%s: parameters differ from the unsharded run at %d steps", what, param_diff);
    int size = 1;
    MPI_Comm_size(comm, &size);
    nb_dist_printf(d, stdout, "%s: %lld elements, %d rank(s), slice of rank 0 [%lld, %lld): %d/%d steps clipped, norms equal\n",
                   what, (long long)ps->total, size, (long long)z->lo, (long long)(z->lo + z->n), clipped, STEPS);
    CHECK(nb_dist_optim_clip_grad_norm(z, 0.0) == -1.0 && nb_last_status() == NB_ERR_VALUE, "max_norm 0 refused");
    CHECK(nb_dist_optim_clip_grad_norm(z, NAN) == -1.0 && nb_last_status() == NB_ERR_VALUE, "max_norm NaN refused");
    nb_ctx_free(ctx), nb_ctx_free(rctx);
    nb_dist_optim_free(z);
    nb_optim_free(opt);
    nb_dist_free(d), nb_dist_free(dref);
    nb_params_free(ps), nb_params_free(ref);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    nb_set_num_threads(1);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    for (int64_t i = 0; i < N * DMAX; i++) X[i] = (float)(2 * nb_philox_uniform(21, (uint64_t)i) - 1);
    for (int i = 0; i < N; i++) Y[i] = (int64_t)(nb_philox_uniform(22, (uint64_t)i) * 10);

    const dims small = {20, 16, 4}, large = {DMAX, 200, 10}; /* 336 + 68 elements; 20,200 + 2,010 */
    nb_dist_opts blocking = NB_DIST_DEFAULTS, fine = NB_DIST_DEFAULTS;
    blocking.overlap = false;
    blocking.shm = fine.shm = false; /* through MPI; the defaults through shared memory */
    fine.bucket_bytes = 64; /* 16 floats: many buckets, one of them cut by the slice boundary */
    compare(MPI_COMM_WORLD, small, 0.05, &blocking, "small model (one block), one reduce-scatter");
    compare(MPI_COMM_WORLD, small, 0.05, &fine, "small model (one block), overlapped 64-byte buckets");
    compare(MPI_COMM_WORLD, large, 0.05, &blocking, "three-block model, one reduce-scatter");
    compare(MPI_COMM_WORLD, large, 0.05, &NB_DIST_DEFAULTS, "three-block model, shared memory (or 1 MiB buckets)");
    /* one rank: the same function, no neighbour, against nb_clip_grad_norm on the same gradient */
    MPI_Comm self;
    MPI_Comm_split(MPI_COMM_WORLD, rank, 0, &self);
    if (rank == 0) compare(self, large, 0.05, &fine, "three-block model on one rank");
    MPI_Comm_free(&self);
    int rc = mpi_check_done();
    MPI_Finalize();
    return rc;
}
