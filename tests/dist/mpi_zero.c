/* Sharded optimizer state (ZeRO stage 1) under mpirun -np 2: after every AdamW step the
 * parameters equal plain data parallelism with a full nb_optim per rank; each rank holds its
 * slice of the state only; a sharded checkpoint holds the whole state (a one-process
 * nb_optim and a one-rank sharded optimizer restore it) and resumes the run exactly. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <nabla/dist.h>
#include <nabla/nabla.h>

#include "mpi_check.h"

enum { D = 20, H = 16, C = 4, N = 64, B = 8, STEPS = 12, SAVE_AT = 5 };
static float X[N * D];
static int64_t Y[N];
static nb_train_state ts; /* large: not on the stack */

static nb_params *make_mlp(void) {
    nb_params *ps = nb_params_new();
    nb_tensor *w1 = nb_params_add(ps, "fc1.w", NB_SHAPE(H, D));
    nb_params_add(ps, "fc1.b", NB_SHAPE(H));
    nb_tensor *w2 = nb_params_add(ps, "fc2.w", NB_SHAPE(C, H));
    nb_params_add(ps, "fc2.b", NB_SHAPE(C)); /* 420 + 68 elements: the shard boundary cuts fc1.w */
    ps->lr_scale[0] = 0.5; /* fc1.w at half the lr: a parameter group, cut by the shards */
    nb_rng rng = nb_rng_new(3);
    nb_rng_normal(&rng, w1, 0, 0.4);
    nb_rng_normal(&rng, w2, 0, 0.4);
    nb_rng_uniform(&rng, nb_params_find(ps, "fc1.b"), -0.1, 0.1);
    return ps;
}

static nb_tensor *loss_on(nb_ctx *ctx, nb_params *ps, const int64_t *idx, int64_t b) {
    float xb[N * D];
    int64_t yb[N];
    for (int64_t i = 0; i < b; i++) memcpy(xb + i * D, X + idx[i] * D, D * sizeof(float)), yb[i] = Y[idx[i]];
    nb_tensor *x = nb_from(ctx, NB_F32, NB_SHAPE(b, D), xb), *y = nb_from(ctx, NB_I64, NB_SHAPE(b), yb);
#define P(name) nb_params_find(ps, name)
    nb_tensor *h = nb_tanh(ctx, nb_linear(ctx, x, P("fc1.w"), P("fc1.b")));
    return nb_cross_entropy(ctx, nb_linear(ctx, h, P("fc2.w"), P("fc2.b")), y, NB_REDUCE_MEAN);
#undef P
}

static double max_rel_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]) / (1 + fabs((double)b[i])));
    return m;
}

/* One data-parallel step at global step s: gradients through d, then opt or zopt. */
static nb_status step(nb_dist *d, nb_ctx *ctx, nb_params *ps, nb_optim *opt, nb_dist_optim *zopt, int64_t s) {
    int rank = nb_dist_rank(d), world = nb_dist_size(d);
    int64_t perm[N], idx[N], per_epoch = nb_dist_steps(N, world, B, true);
    nb_dist_permutation(42, s / per_epoch, N, perm);
    int64_t b = nb_dist_shard(perm, N, s % per_epoch, rank, world, B, idx, NULL);
    nb_ctx_reset(ctx);
    nb_params_zero_grad(ps);
    nb_status st = nb_dist_backward(d, ctx, loss_on(ctx, ps, idx, b));
    if (st == NB_OK) st = opt ? nb_optim_step(opt) : nb_dist_optim_step(zopt);
    return st;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    nb_set_num_threads(1);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    nb_rng rng = nb_rng_new(7);
    nb_tensor *x = nb_tensor_new(NB_F32, NB_SHAPE(N, D));
    nb_rng_normal(&rng, x, 0, 1);
    memcpy(X, x->data, sizeof X);
    nb_tensor_free(x);
    for (int i = 0; i < N; i++) Y[i] = (int64_t)(nb_philox_uniform(99, i) * C);

    nb_hparams hp = nb_adamw.defaults;
    hp.lr = 0.05, hp.weight_decay = 0.1; /* decoupled decay on the weights only: the decay flags matter */
    nb_params *ref = make_mlp(), *ps = make_mlp();
    nb_dist_opts mpi = NB_DIST_DEFAULTS; /* the reference averages through MPI, ZeRO through shared memory */
    mpi.shm = false;
    nb_dist *dref = nb_dist_init(MPI_COMM_WORLD, ref, &mpi), *d = nb_dist_init(MPI_COMM_WORLD, ps, NULL);
    CHECK(dref && d, "dist_init: %s", nb_last_error());
    nb_optim *opt = nb_optim_new(&nb_adamw, ref, &hp);
    nb_dist_optim *zopt = nb_dist_optim_new(d, &nb_adamw, &hp);
    CHECK(opt && zopt, "optimizers: %s", nb_last_error());

    /* memory: this rank's slice only; the slices tile the whole */
    int64_t mine = nb_dist_optim_state_numel(zopt), sum = mine;
    MPI_Allreduce(MPI_IN_PLACE, &sum, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    CHECK(sum == nb_optim_state_numel(opt) && nb_optim_state_numel(opt) == 2 * ps->total, "state %lld of %lld",
          (long long)sum, (long long)nb_optim_state_numel(opt));
    CHECK(mine == 2 * zopt->n, "rank %d holds %lld state floats for %lld elements", rank, (long long)mine, (long long)zopt->n);
    CHECK(llabs(zopt->n - ps->total / world) <= 1, "slice of %lld elements for %lld total", (long long)zopt->n,
          (long long)ps->total);

    nb_ctx *ctx = nb_ctx_new(), *rctx = nb_ctx_new();
    const char *path = NB_BINARY_DIR "/mpi_zero.ckpt";
    double worst = 0;
    int failed = 0;
    float *at_save = malloc(ps->total * sizeof(float));
    for (int64_t s = 0; s < STEPS; s++) {
        failed += step(dref, rctx, ref, opt, NULL, s) != NB_OK;
        failed += step(d, ctx, ps, NULL, zopt, s) != NB_OK;
        worst = fmax(worst, max_rel_diff(ps->flat, ref->flat, ps->total));
        if (s + 1 == SAVE_AT) {
            CHECK(nb_dist_checkpoint_save(d, path, ps, NULL, zopt, NULL, &ts) == NB_OK, "%s", nb_last_error());
            memcpy(at_save, ps->flat, ps->total * sizeof(float));
            /* the file holds the whole state: a one-process optimizer loads it and equals the reference */
            nb_params *one = make_mlp();
            nb_optim *full = nb_optim_new(&nb_adamw, one, &hp);
            CHECK(nb_checkpoint_load(path, one, full, NULL, &ts) == NB_OK, "%s", nb_last_error());
            CHECK(full->step == SAVE_AT, "step %lld", (long long)full->step);
            for (int k = 0; k < 2; k++)
                CHECK(max_rel_diff(full->state[k], opt->state[k], ps->total) < 1e-6, "slot %d differs by %g", k,
                      max_rel_diff(full->state[k], opt->state[k], ps->total));
            nb_optim_free(full);
            /* a one-rank sharded run restores it too (any rank count: 2 -> 1) */
            MPI_Comm self;
            MPI_Comm_split(MPI_COMM_WORLD, rank, 0, &self);
            nb_dist *d1 = nb_dist_init(self, one, NULL);
            nb_dist_optim *z1 = d1 ? nb_dist_optim_new(d1, &nb_adamw, &hp) : NULL;
            CHECK(z1 && nb_dist_checkpoint_load(d1, path, one, NULL, z1, NULL, &ts) == NB_OK, "%s", nb_last_error());
            CHECK(z1 && z1->n == ps->total && z1->step == SAVE_AT && max_rel_diff(z1->state[1], opt->state[1], ps->total) < 1e-6,
                  "one-rank restore");
            nb_dist_optim_free(z1);
            nb_dist_free(d1);
            MPI_Comm_free(&self);
            nb_params_free(one);
        }
    }
    CHECK(failed == 0, "%d steps failed: %s", failed, nb_last_error());
    CHECK(worst < 1e-6, "sharded vs plain data parallel: max relative difference %g", worst);
    printf("rank %d: sharded vs plain, worst relative difference over %d steps: %g\n", rank, STEPS, worst);

    /* resume: reset everything, load the checkpoint, run the same steps again: same end point */
    float *end = malloc(ps->total * sizeof(float));
    memcpy(end, ps->flat, ps->total * sizeof(float));
    hp.lr = 123; /* restored from the file */
    nb_dist_optim_free(zopt);
    zopt = nb_dist_optim_new(d, &nb_adamw, &hp);
    nb_params_zero_grad(ps);
    memset(ps->flat, 0, ps->total * sizeof(float));
    CHECK(zopt && nb_dist_checkpoint_load(d, path, ps, NULL, zopt, NULL, &ts) == NB_OK, "%s", nb_last_error());
    CHECK(zopt->step == SAVE_AT && zopt->hp.lr == 0.05, "step %lld lr %g", (long long)zopt->step, zopt->hp.lr);
    CHECK(memcmp(ps->flat, at_save, ps->total * sizeof(float)) == 0, "parameters restored on every rank");
    for (int64_t s = SAVE_AT; s < STEPS; s++) failed += step(d, ctx, ps, NULL, zopt, s) != NB_OK;
    CHECK(memcmp(ps->flat, end, ps->total * sizeof(float)) == 0, "resumed run ends where the uninterrupted one did (%g)",
          max_rel_diff(ps->flat, end, ps->total));
    /* a damaged path fails on every rank, and nothing is changed */
    CHECK(nb_dist_checkpoint_load(d, NB_BINARY_DIR "/no/such.ckpt", ps, NULL, zopt, NULL, &ts) == NB_ERR_STATE,
          "missing file: %s", nb_last_error());
    CHECK(zopt->step == STEPS && memcmp(ps->flat, end, ps->total * sizeof(float)) == 0, "failed load changed nothing");

    free(end), free(at_save);
    /* freed in the wrong order (d before its sharded optimizer): the optimizer is detached, its
     * calls fail with a message instead of reading freed memory (ASan saw a use after free) */
    nb_dist_free(d);
    CHECK(nb_dist_optim_step(zopt) == NB_ERR_STATE && strstr(nb_last_error(), "nb_dist was freed"), "step after free: %s",
          nb_last_error());
    CHECK(nb_dist_optim_clip_grad_norm(zopt, 1.0) == -1.0 && nb_last_status() == NB_ERR_STATE, "clip after free");
    nb_dist_optim_free(zopt);
    nb_optim_free(opt);
    nb_dist_free(dref);
    nb_params_free(ps), nb_params_free(ref);
    nb_ctx_free(ctx), nb_ctx_free(rctx);
    int rc = mpi_check_done();
    MPI_Finalize();
    return rc;
}
