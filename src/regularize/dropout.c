/* Inverted dropout: x * mask with a constant mask drawn from the context's Philox generator, so
 * backward (gout * mask) and double backward come from nb_mul's rule. The mask generator is
 * shared with the fused nb_linear_act (src/ops/dense.c). */
#include "../internal.h"

#include <omp.h>

#define DROP_BLOCK 4096 /* elements per work item */

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

/* Words k0..k1-1 of the block at counter blk, into m[0 ..) */
static void keep_words(nb_dtype dt, void *m, uint64_t key, uint64_t blk, int k0, int k1, uint32_t t, double scale) {
    uint32_t r[4];
    nb__philox(key, blk, r);
    for (int k = k0; k < k1; k++) {
        const double v = r[k] >= t ? scale : 0.0;
        if (dt == NB_F32) ((float *)m)[k - k0] = (float)v;
        else ((double *)m)[k - k0] = v;
    }
}

void nb__keep_mask(nb_dtype dt, void *m, int64_t s, int64_t e, uint64_t key, uint64_t base, uint32_t t, double scale) {
    const size_t es = nb_dtype_size(dt);
    int64_t i = s;
    if (i % 4 && i < e) { /* the rest of the block holding element s */
        const int k0 = (int)(i % 4), k1 = e - i < 4 - k0 ? k0 + (int)(e - i) : 4;
        keep_words(dt, m, key, base + (uint64_t)(i / 4), k0, k1, t, scale);
        i += k1 - k0;
    }
    const int64_t full = (e - i) / 4;
    char *at = (char *)m + (i - s) * (int64_t)es;
    if (dt == NB_F32) keep_blocks_f32((float *)at, full, key, base + (uint64_t)(i / 4), t, (float)scale);
    else keep_blocks_f64((double *)at, full, key, base + (uint64_t)(i / 4), t, scale);
    i += 4 * full;
    if (i < e) keep_words(dt, (char *)m + (i - s) * (int64_t)es, key, base + (uint64_t)(i / 4), 0, (int)(e - i), t, scale);
}

nb_tensor *nb__dropout_mask(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape, double p, uint64_t key,
                            uint64_t base) {
    nb_tensor *mask = nb__new(ctx, dt, ndim, shape);
    if (!mask) return NULL;
    const int64_t n = mask->numel;
    const uint32_t t = nb__keep_threshold(p);
    const double scale = 1.0 / (1.0 - p);
    const int64_t nitems = (n + DROP_BLOCK - 1) / DROP_BLOCK;
#pragma omp parallel for if (n >= NB_PAR_THRESHOLD_HEAVY && !omp_in_parallel()) schedule(static)
    for (int64_t b = 0; b < nitems; b++) {
        const int64_t s = b * DROP_BLOCK, e = n - s < DROP_BLOCK ? n : s + DROP_BLOCK;
        nb__keep_mask(dt, (char *)mask->data + s * (int64_t)nb_dtype_size(dt), s, e, key, base, t, scale);
    }
    return mask;
}

nb_tensor *nb_dropout(nb_ctx *ctx, nb_tensor *x, double p) {
    if (nb__null(ctx, "dropout", 1, x)) return NULL;
    if (!(p >= 0.0 && p < 1.0)) return nb__fail(ctx, NB_ERR_VALUE, "dropout: p = %g outside [0, 1)", p);
    if (x->dtype == NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "dropout: expected an f32 or f64 input, got i64");
    if (!nb_ctx_is_train(ctx) || p == 0.0) return x;
    nb_tensor *mask = nb__dropout_mask(ctx, x->dtype, x->ndim, x->shape, p, ctx->rng.seed, ctx->rng.offset);
    ctx->rng.offset += nb__mask_blocks(x->numel);
    return nb_mul(ctx, x, mask);
}
