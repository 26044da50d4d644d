/* Results are bit-identical for any thread count, on every BLIS kernel set. CMake registers
 * this file once per kernel set the build machine can run (BLIS_ARCH_TYPE: the library's own
 * choice, haswell, zen3, generic, skx...), because BLIS picks different paths per kernel set:
 * on haswell/zen its small-matrix path cut a product differently from the whole (issue 14).
 * Each test computes the same thing at 1 and at 2 threads and compares every bit. */
#include "common.h"

#include <blis.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(determinism, .init = ctx_setup, .fini = ctx_teardown);

static void assert_same_bits(const nb_tensor *a, const nb_tensor *b, const char *what) {
    cr_assert(a && b, "%s: %s", what, nb_ctx_error(ctx));
    cr_assert_eq(a->numel, b->numel, "%s: sizes differ", what);
    cr_assert(nb_is_contiguous(a) && nb_is_contiguous(b), "%s: not contiguous", what);
    const size_t bytes = (size_t)a->numel * nb_dtype_size(a->dtype);
    cr_assert_eq(memcmp(a->data, b->data, bytes), 0, "%s differs between 1 and 2 threads", what);
}

/* One product at 1 and at 2 threads; a and b are made from ctx's generator. */
static void check_product(nb_dtype dt, int nbatch, int64_t M, int64_t K, int64_t N, bool transpose_b) {
    char what[96];
    snprintf(what, sizeof what, "%s (%d x) %lldx%lldx%lld%s", nb_dtype_name(dt), nbatch, (long long)M, (long long)K,
             (long long)N, transpose_b ? " b^T" : "");
    nb_tensor *a = nbatch > 1 ? nb_randn(ctx, dt, NB_SHAPE(nbatch, M, K)) : nb_randn(ctx, dt, NB_SHAPE(M, K));
    nb_tensor *bsrc = transpose_b ? nb_randn(ctx, dt, NB_SHAPE(N, K)) : nb_randn(ctx, dt, NB_SHAPE(K, N));
    nb_tensor *b = transpose_b ? nb_transpose(ctx, bsrc, 0, 1) : bsrc;
    const int prev = nb_get_num_threads();
    nb_set_num_threads(1);
    nb_tensor *c1 = nb_matmul(ctx, a, b);
    nb_set_num_threads(2);
    nb_tensor *c2 = nb_matmul(ctx, a, b);
    nb_set_num_threads(prev);
    assert_same_bits(c1, c2, what);
    /* and the product is right: a few entries against a plain double loop */
    const int64_t rows = (int64_t)nbatch * M;
    for (int64_t i = 0; i < rows * N; i += 977) {
        const int64_t r = i / N, col = i % N;
        double want = 0;
        for (int64_t k = 0; k < K; k++)
            want += nb_get(a, r * K + k) * (transpose_b ? nb_get(bsrc, col * K + k) : nb_get(bsrc, k * N + col));
        assert_close(nb_get(c1, i), want, dt == NB_F32 ? 1e-3 : 1e-10, dt == NB_F32 ? 1e-4 : 1e-12, "(%s)", what);
    }
}

Test(determinism, products_of_every_path) {
    /* below the threading threshold (BLIS's small-matrix path allowed), mid-size products cut
     * over our threads (odd sizes that once differed on haswell), large ones threaded by BLIS,
     * batches of small products (one per thread) and of few large ones (BLIS threads each) */
    const int64_t single[][3] = {{7, 13, 5},     {40, 50, 60},   {97, 300, 131}, {301, 200, 37},
                                 {64, 784, 256}, {256, 64, 784}, {784, 64, 256}, {520, 520, 520}};
    for (size_t s = 0; s < sizeof single / sizeof *single; s++)
        for (int t = 0; t < 2; t++) {
            check_product(NB_F32, 1, single[s][0], single[s][1], single[s][2], t);
            check_product(NB_F64, 1, single[s][0], single[s][1], single[s][2], t);
        }
    check_product(NB_F32, 8, 33, 70, 45, false);
    check_product(NB_F64, 6, 97, 100, 65, true);
    check_product(NB_F32, 3, 300, 310, 290, false);
}

static void big_ops(nb_ctx *c, nb_tensor *x, nb_tensor *b, nb_tensor **out) {
    out[0] = nb_sum(c, x, 1, (int[]){1}, false); /* innermost axis reduced (parallel over rows) */
    out[1] = nb_sum(c, x, 1, (int[]){0}, false); /* innermost kept */
    out[2] = nb_sum_all(c, x);
    out[3] = nb_exp(c, nb_add(c, x, b)); /* element-wise with broadcasting */
    out[4] = nb_softmax(c, x, 1);
    out[5] = nb_matmul(c, x, nb_transpose(c, x, 0, 1));
}

Test(determinism, large_elementwise_reductions_and_products) {
    const int64_t R = 300, C = 1000; /* 300k elements: above the parallel threshold */
    nb_tensor *x = nb_randn(ctx, NB_F64, NB_SHAPE(R, C)), *b = nb_randn(ctx, NB_F64, NB_SHAPE(C));
    nb_tensor *r1[6], *r2[6];
    const int prev = nb_get_num_threads();
    nb_set_num_threads(1);
    big_ops(ctx, x, b, r1);
    nb_set_num_threads(2);
    big_ops(ctx, x, b, r2);
    nb_set_num_threads(prev);
    static const char *names[6] = {"sum over rows", "sum over columns", "sum_all", "exp(x + b)", "softmax", "x x^T"};
    for (int k = 0; k < 6; k++) assert_same_bits(r1[k], r2[k], names[k]);
    double s = 0;
    for (int64_t j = 0; j < C; j++) s += nb_get(x, j);
    assert_close(nb_get(r1[0], 0), s, 1e-10, 1e-12);
}

/* ---- a short training run: every parameter after a few Adam steps ------------------------ */

typedef struct {
    nb_conv2d_layer conv;
    nb_batch_norm_layer bn;
    nb_linear_layer fc1, fc2;
} small_net;

static nb_tensor *net_forward(nb_ctx *c, const small_net *m, nb_tensor *x) {
    nb_tensor *h = nb_relu(c, nb_batch_norm_layer_forward(c, &m->bn, nb_conv2d_layer_forward(c, &m->conv, x)));
    h = nb_flatten(c, nb_max_pool2d(c, h, 2, 2, 0), 1); /* (N, 8*6*6) */
    h = nb_linear_layer_forward(c, &m->fc1, h); /* fused relu + dropout 0.3 (nb_linear_act) */
    return nb_linear_layer_forward(c, &m->fc2, h);
}

/* Train from seed 7 for `steps` steps at `threads` threads; the parameters and optimizer
 * state go to params_out/state_out (malloc'd, caller frees). */
static void train_run(int threads, int steps, float **params_out, float **state_out, int64_t *nparams, int64_t *nstate) {
    const int prev = nb_get_num_threads();
    nb_set_num_threads(threads);
    nb_ctx *c = nb_ctx_new();
    nb_ctx_seed(c, 7);
    nb_params *ps = nb_params_new();
    nb_rng rng = nb_rng_new(7);
    small_net m;
    cr_assert_eq(nb_conv2d_layer_init(&m.conv, ps, "conv", 1, 8, 3, 1, 0, 1, 1, false, &rng), NB_OK);
    cr_assert_eq(nb_batch_norm_layer_init(&m.bn, ps, "bn", 8), NB_OK);
    /* 96 x 360 hidden values: the fused epilogue runs above the parallel threshold */
    cr_assert_eq(nb_linear_layer_init(&m.fc1, ps, "fc1", 8 * 6 * 6, 360, true, &rng), NB_OK);
    cr_assert_eq(nb_linear_layer_init(&m.fc2, ps, "fc2", 360, 10, true, &rng), NB_OK);
    m.fc1.act = NB_ACT_RELU, m.fc1.dropout = 0.3;
    nb_optim *opt = nb_optim_new(&nb_adam, ps, NULL);
    cr_assert_not_null(opt, "%s", nb_last_error());
    nb_rng data = nb_rng_new(99);
    for (int s = 0; s < steps; s++) {
        nb_tensor *x = nb_empty(c, NB_F32, NB_SHAPE(96, 1, 14, 14));
        int64_t labels[96];
        cr_assert_eq(nb_rng_normal(&data, x, 0, 1), NB_OK);
        for (int i = 0; i < 96; i++) labels[i] = (i * 7 + s) % 10;
        nb_tensor *y = nb_from(c, NB_I64, NB_SHAPE(96), labels);
        nb_params_zero_grad(ps);
        nb_tensor *loss = nb_cross_entropy(c, net_forward(c, &m, x), y, NB_REDUCE_MEAN);
        loss = nb_add(c, loss, nb_l2_penalty_params(c, ps, NULL, 1e-4));
        cr_assert_eq(nb_backward(c, loss, NULL), NB_OK, "%s", nb_ctx_error(c));
        cr_assert_eq(nb_optim_step(opt), NB_OK, "%s", nb_last_error());
        nb_ctx_reset(c);
    }
    *nparams = ps->total;
    *nstate = nb_optim_state_numel(opt);
    *params_out = malloc((size_t)*nparams * sizeof(float));
    *state_out = malloc((size_t)*nstate * sizeof(float));
    nb_params_save_to(ps, *params_out);
    nb_optim_state_save(opt, *state_out);
    nb_optim_free(opt);
    nb_batch_norm_layer_free(&m.bn);
    nb_params_free(ps);
    nb_ctx_free(c);
    nb_set_num_threads(prev);
}

Test(determinism, training_run_is_bitwise_thread_independent) {
    float *p1, *p2, *s1, *s2;
    int64_t np1, np2, ns1, ns2;
    train_run(1, 4, &p1, &s1, &np1, &ns1);
    train_run(2, 4, &p2, &s2, &np2, &ns2);
    cr_assert(np1 == np2 && ns1 == ns2);
    cr_assert_eq(memcmp(p1, p2, (size_t)np1 * sizeof(float)), 0, "parameters differ between 1 and 2 threads");
    cr_assert_eq(memcmp(s1, s2, (size_t)ns1 * sizeof(float)), 0, "Adam state differs between 1 and 2 threads");
    /* and training moved the parameters: the run is not trivially equal */
    float *p0, *s0;
    int64_t np0, ns0;
    train_run(1, 0, &p0, &s0, &np0, &ns0);
    int64_t moved = 0;
    for (int64_t i = 0; i < np1; i++) moved += p0[i] != p1[i];
    cr_assert_gt(moved, np1 / 2, "only %lld of %lld parameters changed", (long long)moved, (long long)np1);
    free(p0), free(s0), free(p1), free(p2), free(s1), free(s2);
}

/* Where BLIS knows the CPU, its own kernel set stands (forcing skx on a Zen 4, which BLIS runs on
 * its zen3 set, made the MLP and CNN steps ~11% slower); where it knows no better than its
 * generic reference kernels, nabla picks a vector set on a CPU with AVX2. BLIS's own choice is
 * read in a child process that never calls nabla. */
Test(determinism, keeps_blis_kernel_choice_where_blis_knows_the_cpu) {
    if (getenv("BLIS_ARCH_TYPE")) cr_skip_test("BLIS_ARCH_TYPE is set");
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    const pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fd[0]);
        bli_init();
        const char *s = bli_arch_string(bli_arch_query_id());
        _exit(write(fd[1], s, strlen(s)) == (ssize_t)strlen(s) ? 0 : 1);
    }
    close(fd[1]);
    char own[64] = {0};
    const ssize_t got = read(fd[0], own, sizeof own - 1);
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    cr_assert(got > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child could not report BLIS's choice");
    const char *k = nb_blis_kernels();
    __builtin_cpu_init();
    if (strcmp(own, "generic") != 0)
        cr_assert_str_eq(k, own, "nabla runs %s where BLIS itself picks %s", k, own);
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        cr_assert_str_neq(k, "generic", "the reference kernels on a CPU with AVX2 and FMA");
}

Test(determinism, reports_the_blis_kernel_set) {
    /* the name of the kernel set in use; under BLIS_ARCH_TYPE it is the one asked for */
    const char *k = nb_blis_kernels();
    cr_assert(k && *k, "no kernel set name");
    const char *want = getenv("NB_TEST_EXPECT_KERNELS");
    if (want) cr_assert_str_eq(k, want);
}
