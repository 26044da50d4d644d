/* Batched products of every size give the same numbers with 1 and 2 threads (small batches run
 * on one thread, large ones split over the batch or inside BLIS) and match a plain loop. */
#include "common.h"

#include <string.h>

TestSuite(matmul_threads, .init = ctx_setup, .fini = ctx_teardown, .timeout = 30);

Test(matmul_threads, same_result_for_any_thread_count) {
    const int64_t sizes[3][4] = {{4, 3, 5, 2}, {64, 16, 16, 16}, {2, 128, 96, 80}}; /* batch, M, K, N */
    for (int s = 0; s < 3; s++) {
        const int64_t B = sizes[s][0], M = sizes[s][1], K = sizes[s][2], N = sizes[s][3];
        nb_tensor *a = nb_randn(ctx, NB_F64, NB_SHAPE(B, M, K)), *b = nb_randn(ctx, NB_F64, NB_SHAPE(B, K, N));
        int prev = nb_get_num_threads();
        nb_set_num_threads(1);
        nb_tensor *c1 = nb_matmul(ctx, a, b);
        nb_set_num_threads(2);
        nb_tensor *c2 = nb_matmul(ctx, a, b);
        nb_set_num_threads(prev);
        cr_assert(c1 && c2, "%s", nb_ctx_error(ctx));
        for (int64_t i = 0; i < B * M * N; i += 7) {
            int64_t bb = i / (M * N), m = i / N % M, n = i % N;
            double want = 0;
            for (int64_t k = 0; k < K; k++) want += nb_get(a, (bb * M + m) * K + k) * nb_get(b, (bb * K + k) * N + n);
            assert_close(nb_get(c1, i), want, 1e-10, 1e-10);
            assert_close(nb_get(c2, i), nb_get(c1, i), 1e-12, 1e-12);
        }
    }
}

/* A mid-size product (2^18 to 2^27 multiply-adds, one matrix) at 2 or 5 threads tries each way to use
 * the team on its first calls (our own column or row split, BLIS's threads, one thread) and then
 * keeps the fastest: every call must give the bits of one thread. Shapes: split by columns
 * (N >= M), by rows, and a transposed operand (as nb_linear's weight), in f32 and f64. */
Test(matmul_threads, measured_team_use_keeps_the_bits) {
    const int64_t shapes[3][4] = {{64, 784, 256, 0}, {256, 64, 96, 0}, {300, 200, 100, 1}}; /* M, K, N, b transposed */
    const nb_dtype dts[2] = {NB_F32, NB_F64};
    const int prev = nb_get_num_threads();
    for (int d = 0; d < 2; d++)
        for (int s = 0; s < 3; s++) {
            const int64_t M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
            nb_tensor *a = nb_randn(ctx, dts[d], NB_SHAPE(M, K));
            nb_tensor *b = shapes[s][3] ? nb_transpose(ctx, nb_randn(ctx, dts[d], NB_SHAPE(N, K)), 0, 1)
                                        : nb_randn(ctx, dts[d], NB_SHAPE(K, N));
            nb_set_num_threads(1);
            nb_tensor *ref = nb_matmul(ctx, a, b);
            cr_assert_not_null(ref, "%s", nb_ctx_error(ctx));
            for (int T = 2; T <= 5; T += 3) { /* 5 threads: one thread is not tried for the larger shapes */
                nb_set_num_threads(T);
                for (int call = 0; call < 12; call++) { /* 9 (or 6) trials of 3 (or 2) ways, then the kept way */
                    nb_tensor *c = nb_matmul(ctx, a, b);
                    cr_assert_not_null(c, "%s", nb_ctx_error(ctx));
                    cr_assert_eq(memcmp(c->data, ref->data, (size_t)(M * N) * nb_dtype_size(dts[d])), 0,
                                 "%s (%lld, %lld) x (%lld, %lld): call %d at %d threads differs from 1 thread",
                                 nb_dtype_name(dts[d]), (long long)M, (long long)K, (long long)K, (long long)N, call, T);
                }
            }
            nb_ctx_reset(ctx);
        }
    nb_set_num_threads(prev);
}
