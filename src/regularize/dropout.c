/* Inverted dropout: x * mask with a constant mask drawn from the context's Philox generator, so
 * backward (gout * mask) and double backward come from nb_mul's rule. */
#include "../internal.h"

#include <omp.h>

#define DROP_BLOCK 4096

static void mask_f32(float *m, int64_t n, uint64_t key, uint64_t base, double p, float scale) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) m[i] = nb__philox_uniform(key, base + (uint64_t)i) >= p ? scale : 0.0f;
}
static void mask_f64(double *m, int64_t n, uint64_t key, uint64_t base, double p, double scale) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) m[i] = nb__philox_uniform(key, base + (uint64_t)i) >= p ? scale : 0.0;
}

nb_tensor *nb_dropout(nb_ctx *ctx, nb_tensor *x, double p) {
    if (nb__null(ctx, "dropout", 1, x)) return NULL;
    if (!(p >= 0.0 && p < 1.0)) return nb__fail(ctx, NB_ERR_VALUE, "dropout: p = %g outside [0, 1)", p);
    if (x->dtype == NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "dropout: expected an f32 or f64 input, got i64");
    if (!nb_ctx_is_train(ctx) || p == 0.0) return x;
    nb_tensor *mask = nb__new(ctx, x->dtype, x->ndim, x->shape);
    if (!mask) return NULL;
    nb_rng *rng = nb_ctx_rng(ctx);
    const uint64_t key = rng->seed, base = rng->offset;
    const int64_t n = mask->numel;
    const double scale = 1.0 / (1.0 - p);
    /* element i keeps when its uniform draw (counter base + i) is >= p: probability 1 - p */
    /* fixed blocks over threads, each a branch-free simd loop over the inline Philox */
    const int64_t nblk = (n + DROP_BLOCK - 1) / DROP_BLOCK;
#pragma omp parallel for if (n >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)
    for (int64_t b = 0; b < nblk; b++) {
        const int64_t s = b * DROP_BLOCK, len = n - s < DROP_BLOCK ? n - s : DROP_BLOCK;
        if (x->dtype == NB_F32) mask_f32((float *)mask->data + s, len, key, base + (uint64_t)s, p, (float)scale);
        else mask_f64((double *)mask->data + s, len, key, base + (uint64_t)s, p, scale);
    }
    rng->offset += (uint64_t)n;
    return nb_mul(ctx, x, mask);
}
