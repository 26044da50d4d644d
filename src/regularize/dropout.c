/* Inverted dropout: x * mask with a constant mask drawn from the context's Philox generator, so
 * backward (gout * mask) and double backward come from nb_mul's rule. The mask generator is
 * shared with the fused nb_linear_act (src/ops/dense.c). */
#include "../internal.h"

#include <omp.h>

#define DROP_BLOCK 4096 /* elements per work item: a multiple of 4, so items start on a Philox block */

uint32_t nb__keep_threshold(double p) {
    const double t = nearbyint(p * 0x1p32);
    return t >= 0x1p32 - 1 ? UINT32_MAX : (uint32_t)t;
}

/* Whole Philox blocks, four elements each: a branch-free loop over the inline generator with
 * an integer compare per word, which GCC vectorizes (-O3, AVX2) */
static void keep_blocks_f32(float *restrict m, int64_t nblk, uint64_t key, uint64_t base, uint32_t t, float scale) {
    for (int64_t j = 0; j < nblk; j++) {
        uint32_t r[4];
        nb__philox(key, base + (uint64_t)j, r);
        for (int k = 0; k < 4; k++) m[4 * j + k] = r[k] >= t ? scale : 0.0f;
    }
}
static void keep_blocks_f64(double *restrict m, int64_t nblk, uint64_t key, uint64_t base, uint32_t t, double scale) {
    for (int64_t j = 0; j < nblk; j++) {
        uint32_t r[4];
        nb__philox(key, base + (uint64_t)j, r);
        for (int k = 0; k < 4; k++) m[4 * j + k] = r[k] >= t ? scale : 0.0;
    }
}

void nb__keep_mask(nb_dtype dt, void *m, int64_t s, int64_t e, uint64_t key, uint64_t base, uint32_t t, double scale) {
    NB_ASSERT(s % 4 == 0 && s <= e);
    const int64_t full = (e - s) / 4, rest = (e - s) % 4;
    const uint64_t blk = base + (uint64_t)(s / 4);
    if (dt == NB_F32) keep_blocks_f32(m, full, key, blk, t, (float)scale);
    else keep_blocks_f64(m, full, key, blk, t, scale);
    if (rest) { /* the draw's last block, partly used */
        uint32_t r[4];
        nb__philox(key, blk + (uint64_t)full, r);
        for (int k = 0; k < rest; k++) {
            const double v = r[k] >= t ? scale : 0.0;
            if (dt == NB_F32) ((float *)m)[4 * full + k] = (float)v;
            else ((double *)m)[4 * full + k] = v;
        }
    }
}

nb_tensor *nb__dropout_mask(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape, double p) {
    nb_tensor *mask = nb__new(ctx, dt, ndim, shape);
    if (!mask) return NULL;
    const int64_t n = mask->numel;
    const uint64_t key = ctx->rng.seed, base = ctx->rng.offset;
    const uint32_t t = nb__keep_threshold(p);
    const double scale = 1.0 / (1.0 - p);
    const int64_t nitems = (n + DROP_BLOCK - 1) / DROP_BLOCK;
#pragma omp parallel for if (n >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)
    for (int64_t b = 0; b < nitems; b++) {
        const int64_t s = b * DROP_BLOCK, e = n - s < DROP_BLOCK ? n : s + DROP_BLOCK;
        nb__keep_mask(dt, (char *)mask->data + s * (int64_t)nb_dtype_size(dt), s, e, key, base, t, scale);
    }
    ctx->rng.offset += (uint64_t)(n + 3) / 4;
    return mask;
}

nb_tensor *nb_dropout(nb_ctx *ctx, nb_tensor *x, double p) {
    if (nb__null(ctx, "dropout", 1, x)) return NULL;
    if (!(p >= 0.0 && p < 1.0)) return nb__fail(ctx, NB_ERR_VALUE, "dropout: p = %g outside [0, 1)", p);
    if (x->dtype == NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "dropout: expected an f32 or f64 input, got i64");
    if (!nb_ctx_is_train(ctx) || p == 0.0) return x;
    return nb_mul(ctx, x, nb__dropout_mask(ctx, x->dtype, x->ndim, x->shape, p));
}
