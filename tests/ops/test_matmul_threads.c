/* Batched products of every size give the same numbers with 1 and 2 threads (small batches run
 * on one thread, large ones split over the batch or inside BLIS) and match a plain loop. */
#include "common.h"

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
