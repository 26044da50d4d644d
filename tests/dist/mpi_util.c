/* Under mpirun -np 2: the sharded iterator covers each sample exactly once per epoch across
 * ranks; metric reductions; a failing rank is reported by name on every rank and nobody hangs;
 * waits with a deadline time out instead of blocking. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nabla/dist.h>
#include <nabla/nabla.h>

#include "mpi_check.h"

static int rank, world;

static void test_shard_coverage(nb_dist *d) {
    enum { N = 103, B = 8 };
    int64_t perm[N], first[N], idx[B];
    for (int drop = 0; drop <= 1; drop++) {
        for (int64_t e = 0; e < 3; e++) {
            nb_dist_permutation(5, e, N, perm);
            double count[N] = {0};
            int64_t seen = 0;
            bool is_perm = true;
            for (int64_t i = 0; i < N; i++) count[perm[i]] += 1;
            for (int64_t i = 0; i < N; i++) is_perm &= count[i] == 1;
            CHECK(is_perm, "epoch %lld: not a permutation", (long long)e);
            if (e == 0) memcpy(first, perm, sizeof perm);
            else CHECK(memcmp(first, perm, sizeof perm) != 0, "epoch %lld has epoch 0's order", (long long)e);
            memset(count, 0, sizeof count);
            int64_t steps = nb_dist_steps(N, world, B, drop), too_big = 0;
            for (int64_t s = 0; s < steps; s++) {
                int64_t global = 0, b = nb_dist_shard(perm, N, s, rank, world, B, idx, &global);
                too_big += b < 0 || b > B;
                for (int64_t i = 0; i < b; i++) count[idx[i]] += 1;
                seen += b;
            }
            CHECK(too_big == 0, "a shard had more than B samples");
            CHECK(nb_dist_sum(d, count, N) == NB_OK, "%s", nb_last_error());
            double s_all = (double)seen;
            nb_dist_sum(d, &s_all, 1);
            int64_t bad = 0;
            for (int64_t i = 0; i < N; i++) bad += drop ? count[i] > 1 : count[i] != 1;
            CHECK(bad == 0, "drop_last %d epoch %lld: %lld samples not covered exactly once", drop, (long long)e, (long long)bad);
            int64_t want = drop ? (N / (world * B)) * world * B : N;
            CHECK(s_all == (double)want, "drop_last %d: %g samples seen, want %lld", drop, s_all, (long long)want);
        }
    }
    /* the same permutation on every rank */
    nb_dist_permutation(5, 1, N, perm);
    memcpy(first, perm, sizeof perm);
    nb_dist_bcast_bytes(d, first, sizeof first);
    CHECK(memcmp(first, perm, sizeof perm) == 0, "permutations differ across ranks");
    /* partial last batch of m = 5 with B = 4, world 2: ranks get 3 and 2 */
    int64_t id[13], out[4], global;
    for (int i = 0; i < 13; i++) id[i] = i;
    CHECK(nb_dist_shard(id, 13, 1, 0, 2, 4, out, &global) == 3 && global == 5 && out[0] == 8, "partial batch rank 0");
    CHECK(nb_dist_shard(id, 13, 1, 1, 2, 4, out, &global) == 2 && out[0] == 11, "partial batch rank 1 starts at 11, got %lld",
          (long long)out[0]);
    CHECK(nb_dist_shard(id, 13, 2, 0, 2, 4, out, &global) == 0 && global == 0, "past the end");
    /* sizes whose products overflow int64: a global batch past every n, a step past the end */
    CHECK(nb_dist_steps(INT64_MAX, 2, INT64_MAX, false) == 1 && nb_dist_steps(INT64_MAX, 2, INT64_MAX, true) == 0 &&
              nb_dist_steps(INT64_MAX, 1, 1, false) == INT64_MAX && nb_dist_steps(INT64_MAX, 2, 2, false) == INT64_MAX / 4 + 1,
          "steps of huge sizes");
    int64_t all[13];
    CHECK(nb_dist_shard(id, 13, INT64_MAX / 2, 0, 2, 4, out, &global) == 0 && global == 0, "a step past the end");
    CHECK(nb_dist_shard(id, 13, 0, 1, 2, INT64_MAX / 2, all, &global) == 6 && global == 13 && all[0] == 7,
          "one batch of everything: rank 1 takes 6 from 7");
    CHECK(nb_dist_shard(id, 13, 1, 0, 2, INT64_MAX / 2, all, &global) == 0 && global == 0, "no second batch");
    CHECK(nb_dist_shard(id, 13, 0, 2, 2, 4, out, NULL) == -1 && nb_last_status() == NB_ERR_VALUE &&
              strstr(nb_last_error(), "rank=2 world=2"),
          "rank out of range: %s", nb_last_error());
}

static void test_metrics(nb_dist *d) {
    double v[2] = {rank + 1.0, 10.0 * rank};
    CHECK(nb_dist_sum(d, v, 2) == NB_OK, "%s", nb_last_error());
    CHECK(v[0] == world * (world + 1) / 2.0 && v[1] == 10.0 * world * (world - 1) / 2.0, "sum %g %g", v[0], v[1]);
    double m = rank == 0 ? 1.0 : 3.0;
    nb_dist_mean(d, &m, 1);
    CHECK(world != 2 || m == 2.0, "mean %g", m);
    bool f = rank == world - 1, g = false;
    CHECK(nb_dist_any(d, &f) == NB_OK && f, "any(true on the last rank)");
    CHECK(nb_dist_any(d, &g) == NB_OK && !g, "any(false everywhere)");
    /* early stopping decided on rank 0 reaches everyone */
    int decision = rank == 0 ? 7 : -1;
    nb_dist_bcast_bytes(d, &decision, sizeof decision);
    CHECK(decision == 7, "broadcast decision %d", decision);
    CHECK(nb_dist_is_root(d) == (rank == 0), "is_root");
    FILE *f0 = tmpfile();
    nb_dist_printf(d, f0, "hello %d", 5);
    CHECK(ftell(f0) == (rank == 0 ? 7 : 0), "printf wrote %ld bytes on rank %d", ftell(f0), rank);
    fclose(f0);
}

/* Rank 1 fails in its step; every rank gets NB_ERR_STATE naming rank 1 and its message, then the
 * next step works again (nobody hangs, nothing is left pending); through MPI buckets and through
 * shared memory (its barrier waits through nb_dist_wait here: timeout_s is set). */
static void test_failure_agreement(bool shm) {
    nb_params *ps = nb_params_new();
    nb_tensor *w = nb_params_add(ps, "w", NB_SHAPE(4)), *v = nb_params_add(ps, "v", NB_SHAPE(3));
    nb_dist_opts o = NB_DIST_DEFAULTS;
    o.bucket_bytes = 16;
    o.shm = shm;
    o.timeout_s = 10; /* a bug here must fail the test, not hang it */
    nb_dist *d = nb_dist_init(MPI_COMM_WORLD, ps, &o);
    nb_ctx *ctx = nb_ctx_new();
    for (int trial = 0; trial < 2; trial++) {
        nb_ctx_reset(ctx);
        nb_params_zero_grad(ps);
        nb_dist_step_begin(d, ctx);
        nb_status local = NB_OK;
        if (trial == 0 && rank == 1) local = nb_set_error(NB_ERR_IO, "cannot read shard file 'x.bin'");
        else local = nb_backward(ctx, nb_add(ctx, nb_sum_all(ctx, w), nb_sum_all(ctx, nb_mul_scalar(ctx, v, rank + 1))), NULL);
        nb_status st = nb_dist_step_finish(d, local);
        if (trial == 0) {
            CHECK(st == NB_ERR_STATE, "status %s", nb_status_name(st));
            CHECK(world < 2 || strstr(nb_last_error(), "dist: rank 1 failed: cannot read shard file 'x.bin' (i/o error)"),
                  "message: %s", nb_last_error());
        } else {
            CHECK(st == NB_OK, "after a failed step: %s", nb_last_error());
            /* d/dw = 1 on every rank; d/dv = rank+1, averaged: (world+1)/2 */
            CHECK(ps->p[0]->grad && nb_get(ps->p[0]->grad, 0) == 1.0f, "w grad %g", nb_get(ps->p[0]->grad, 0));
            CHECK(nb_get(ps->p[1]->grad, 2) == (world + 1) / 2.0f, "v grad %g", nb_get(ps->p[1]->grad, 2));
        }
    }
    /* two backward calls in one step would add to gradients already being reduced (the bucket
     * callback sees it; shared memory reduces after backward, so the sum is simply twice) */
    nb_ctx_reset(ctx);
    nb_dist_step_begin(d, ctx);
    nb_tensor *l = nb_sum_all(ctx, nb_mul(ctx, w, w));
    nb_backward(ctx, l, NULL);
    nb_status st = nb_dist_step_finish(d, nb_backward(ctx, l, NULL));
    if (!nb_dist_uses_shm(d))
        CHECK(st == NB_ERR_STATE && strstr(nb_last_error(), "failed: dist: rank 0: gradient of 'w' reported twice in one step"),
              "%s", nb_last_error());
    CHECK(nb_dist_step_finish(d, NB_OK) == NB_ERR_STATE && strstr(nb_last_error(), "no step was begun"), "finish twice: %s",
          nb_last_error());
    nb_dist_step_begin(d, ctx);
    CHECK(nb_dist_step_begin(d, ctx) == NB_ERR_STATE, "begin twice");
    nb_dist_step_finish(d, NB_OK);
    /* parameters added after init would move grad_flat under the buckets */
    nb_params_add(ps, "late", NB_SHAPE(100000));
    CHECK(nb_dist_step_begin(d, ctx) == NB_ERR_STATE && strstr(nb_last_error(), "added after nb_dist_init"), "%s",
          nb_last_error());
    nb_dist_free(d);
    nb_ctx_free(ctx);
    nb_params_free(ps);
}

/* Rank 1 joins a barrier 1.5 s late: rank 0's wait with a 0.3 s deadline gives NB_ERR_IO naming
 * rank 0 and "timed out"; waiting again without a deadline completes. */
static void test_timeout(void) {
    nb_dist_opts o = NB_DIST_DEFAULTS;
    o.timeout_s = 0.3;
    nb_dist *d = nb_dist_init(MPI_COMM_WORLD, NULL, &o);
    if (rank == 1) usleep(1500000);
    MPI_Request r;
    MPI_Ibarrier(nb_dist_comm(d), &r);
    nb_status st = nb_dist_wait(d, &r, "barrier");
    if (rank == 0 && world > 1) {
        CHECK(st == NB_ERR_IO && strstr(nb_last_error(), "dist: rank 0: barrier timed out after 0.3 s"), "%s: %s",
              nb_status_name(st), nb_last_error());
        o.timeout_s = 0;
        nb_dist_set_opts(d, &o);
        st = nb_dist_wait(d, &r, "barrier");
    }
    CHECK(st == NB_OK, "barrier: %s", nb_last_error());
    nb_dist_free(d);
    nb_dist_opts bad = NB_DIST_DEFAULTS;
    bad.bucket_bytes = 0;
    CHECK(nb_dist_init(MPI_COMM_WORLD, NULL, &bad) == NULL && nb_last_status() == NB_ERR_VALUE, "bucket_bytes 0");
    CHECK(nb_dist_init(MPI_COMM_NULL, NULL, NULL) == NULL && strstr(nb_last_error(), "MPI_COMM_NULL"), "null comm");
}

/* Ranks that built different models (an extra tensor on one rank; the same count in another
 * shape; parameters on one rank only): nb_dist_init fails on every rank, before any averaging
 * pairs unrelated elements (shared memory) or truncates a message (MPI); shm on and off. */
static void test_model_mismatch(void) {
    for (int shm = 0; shm <= 1; shm++)
        for (int kind = 0; kind < 3; kind++) {
            nb_params *ps = nb_params_new();
            if (kind == 0) {
                nb_params_add(ps, "w", NB_SHAPE(4, 3));
                if (rank == 1) nb_params_add(ps, "extra", NB_SHAPE(7));
            } else if (kind == 1) {
                if (rank == 1) nb_params_add(ps, "w", NB_SHAPE(3, 4));
                else nb_params_add(ps, "w", NB_SHAPE(4, 3));
            }
            nb_dist_opts o = NB_DIST_DEFAULTS;
            o.shm = shm;
            nb_dist *d = nb_dist_init(MPI_COMM_WORLD, kind == 2 && rank == 1 ? NULL : ps, &o);
            CHECK(d == NULL && nb_last_status() == NB_ERR_VALUE && strstr(nb_last_error(), "differs from another rank"),
                  "mismatch %d, shm %d: %s", kind, shm, d ? "accepted" : nb_last_error());
            nb_dist_free(d);
            nb_params_free(ps);
        }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    nb_dist *d = nb_dist_init(MPI_COMM_WORLD, NULL, NULL);
    CHECK(d != NULL, "%s", nb_last_error());
    test_shard_coverage(d);
    test_metrics(d);
    nb_dist_free(d);
    test_failure_agreement(false);
    test_failure_agreement(true);
    test_timeout();
    if (world > 1) test_model_mismatch();
    int rc = mpi_check_done();
    MPI_Finalize();
    return rc;
}
