/* Pooling. Average pooling is a composition: unfold the windows, mean over the kernel axis,
 * reshape. Max pooling is a primitive that keeps the arg-max of each window: its output is a
 * gather from each (H, W) plane at those positions, whose backward is the matching scatter-add,
 * whose backward is the gather again, so gradients of every order come from this pair. */
#include "../internal.h"

#include <float.h>
#include <omp.h>

/* ---- max pooling: arg-max gather / scatter over (H, W) planes ------------------------------- */
/* idx (N, C, OH, OW) i64 holds the flat position ih*W + iw of each window's maximum in its
 * plane; one thread owns a plane and walks it in a fixed order, so results do not depend on
 * the thread count (overlapping windows add up in the same order every time). */
#define DEFINE_POOL(T, SUF)                                                                                    \
    /* One window clipped to the image, PyTorch's rule: the first maximum in row-major order wins and  \
     * NaN propagates (the last NaN wins). */                                                                  \
    static inline void maxpool_window_##SUF(const T *xp, int64_t H, int64_t W, int64_t h0, int64_t w0, int k,  \
                                            T *o, int64_t *ix) {                                               \
        const int64_t hs = h0 > 0 ? h0 : 0, he = h0 + k < H ? h0 + k : H;                                      \
        const int64_t ws = w0 > 0 ? w0 : 0, we = w0 + k < W ? w0 + k : W;                                      \
        int64_t bi = hs * W + ws;                                                                              \
        T best = (T)-INFINITY;                                                                                 \
        for (int64_t i = hs; i < he; i++)                                                                      \
            for (int64_t j = ws; j < we; j++) {                                                                \
                const T v = xp[i * W + j];                                                                     \
                if (v > best || v != v) best = v, bi = i * W + j;                                              \
            }                                                                                                  \
        *o = best;                                                                                             \
        *ix = bi;                                                                                              \
    }                                                                                                          \
    /* One (H, W) plane. Windows inside the image take an unrolled branch-free path (k is a constant   \
     * there) that ignores NaN; it reports whether it saw one, and then the plane is redone exactly. */        \
    static inline __attribute__((always_inline)) bool maxpool_plane_##SUF(const T *xp, T *o, int64_t *ix,      \
                                                                         int64_t H, int64_t W, int64_t OH,     \
                                                                         int64_t OW, const int k, int s,       \
                                                                         int pad) {                            \
        bool nan = false;                                                                                      \
        for (int64_t r = 0; r < OH; r++) {                                                                     \
            const int64_t h0 = r * s - pad;                                                                    \
            for (int64_t q = 0; q < OW; q++) {                                                                 \
                const int64_t w0 = q * s - pad;                                                                \
                if (h0 >= 0 && w0 >= 0 && h0 + k <= H && w0 + k <= W) {                                       \
                    int64_t bi = h0 * W + w0;                                                                  \
                    T best = xp[bi];                                                                           \
                    for (int i = 0; i < k; i++)                                                                \
                        for (int j = 0; j < k; j++) {                                                          \
                            const int64_t e = (h0 + i) * W + w0 + j;                                           \
                            const T v = xp[e];                                                                 \
                            /* masks, not ?: (which GCC turns into mispredicted branches here) */              \
                            const int64_t m = -(int64_t)(v > best);                                            \
                            nan |= v != v;                                                                     \
                            best = v > best ? v : best; /* maxss */                                            \
                            bi ^= (bi ^ e) & m;                                                                \
                        }                                                                                      \
                    o[r * OW + q] = best;                                                                      \
                    ix[r * OW + q] = bi;                                                                       \
                } else {                                                                                       \
                    maxpool_window_##SUF(xp, H, W, h0, w0, k, o + r * OW + q, ix + r * OW + q);                \
                }                                                                                              \
            }                                                                                                  \
        }                                                                                                      \
        return nan;                                                                                            \
    }                                                                                                          \
    /* out of line, so that the loop bounds are locals rather than OpenMP's shared variables (which   \
     * every int64 index store could alias) */                                                                \
    static __attribute__((noinline)) void maxpool_planes_##SUF(const T *xp, T *o, int64_t *ix, int64_t H,     \
                                                              int64_t W, int64_t OH, int64_t OW, int k, int s, \
                                                              int pad) {                                       \
        bool nan;                                                                                              \
        if (k == 2) nan = maxpool_plane_##SUF(xp, o, ix, H, W, OH, OW, 2, s, pad);                             \
        else if (k == 3) nan = maxpool_plane_##SUF(xp, o, ix, H, W, OH, OW, 3, s, pad);                        \
        else nan = maxpool_plane_##SUF(xp, o, ix, H, W, OH, OW, k, s, pad);                                    \
        if (nan)                                                                                               \
            for (int64_t r = 0; r < OH; r++)                                                                   \
                for (int64_t q = 0; q < OW; q++)                                                               \
                    maxpool_window_##SUF(xp, H, W, r * s - pad, q * s - pad, k, o + r * OW + q, ix + r * OW + q); \
    }                                                                                                          \
    static void maxpool_##SUF(const nb_tensor *x, nb_tensor *out, int64_t *idx, int k, int s, int pad) {       \
        const int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];                      \
        const int64_t OH = out->shape[2], OW = out->shape[3], L = OH * OW;                                     \
        const T *xd = (const T *)x->data;                                                                      \
        T *od = (T *)out->data;                                                                                \
        _Pragma("omp parallel for if (x->numel >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)")  \
        for (int64_t p = 0; p < N * C; p++) {                                                                  \
            maxpool_planes_##SUF(xd + p * H * W, od + p * L, idx + p * L, H, W, OH, OW, k, s, pad);            \
        }                                                                                                      \
    }                                                                                                          \
    /* out[p][o] = x[p][idx[p][o]]; x (P, HW), out (P, L) contiguous */                                        \
    static void pgather_##SUF(const nb_tensor *x, nb_tensor *out, const int64_t *idx, int64_t P, int64_t HW,   \
                              int64_t L) {                                                                     \
        const T *xd = (const T *)x->data;                                                                      \
        T *od = (T *)out->data;                                                                                \
        _Pragma("omp parallel for if (x->numel >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)")  \
        for (int64_t p = 0; p < P; p++)                                                                        \
            for (int64_t o = 0; o < L; o++) od[p * L + o] = xd[p * HW + idx[p * L + o]];                       \
    }                                                                                                          \
    /* out[p] = 0, then out[p][idx[p][o]] += g[p][o]; g (P, L), out (P, HW) contiguous */                       \
    static void pscatter_##SUF(const nb_tensor *g, nb_tensor *out, const int64_t *idx, int64_t P, int64_t HW,  \
                               int64_t L) {                                                                    \
        const T *gd = (const T *)g->data;                                                                      \
        T *od = (T *)out->data;                                                                                \
        _Pragma("omp parallel for if (out->numel >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)") \
        for (int64_t p = 0; p < P; p++) {                                                                      \
            T *op = od + p * HW;                                                                               \
            for (int64_t e = 0; e < HW; e++) op[e] = 0;                                                        \
            for (int64_t o = 0; o < L; o++) op[idx[p * L + o]] += gd[p * L + o];                               \
        }                                                                                                      \
    }
DEFINE_POOL(float, f32)
DEFINE_POOL(double, f64)

static nb_tensor *pool_gather(nb_ctx *ctx, nb_tensor *x, nb_tensor *idx);
static nb_tensor *pool_scatter(nb_ctx *ctx, nb_tensor *g, nb_tensor *idx, int64_t H, int64_t W);

/* saved[0]: the arg-max indices (N, C, OH, OW); iattr: H, W of the pooled input */
static nb_status pool_gather_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = pool_scatter(ctx, g, n->saved[0], n->iattr[0], n->iattr[1]);
    return NB_OK;
}
static nb_status pool_scatter_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = pool_gather(ctx, g, n->saved[0]);
    return NB_OK;
}
static const nb_op OP_MAX_POOL = {"max_pool2d", pool_gather_bw, NB_DIFFERENTIABLE},
                   OP_MAX_POOL_BW = {"max_pool2d_backward", pool_scatter_bw, NB_DIFFERENTIABLE};

static nb_tensor *record_pool(nb_ctx *ctx, const nb_op *op, nb_tensor *out, nb_tensor *in, nb_tensor *idx, int64_t H,
                              int64_t W) {
    nb_node *n;
    out = nb__finish(ctx, op, out, 1, &in, &n);
    if (n) {
        n->saved[0] = idx;
        n->iattr[0] = H;
        n->iattr[1] = W;
    }
    return out;
}

/* x (N, C, H, W) at idx (N, C, OH, OW) -> (N, C, OH, OW) */
static nb_tensor *pool_gather(nb_ctx *ctx, nb_tensor *x, nb_tensor *idx) {
    if (nb__null(ctx, "max_pool2d", 2, x, idx)) return NULL;
    nb_tensor *xc = nb_contiguous(ctx, x);
    nb_tensor *out = xc ? nb__new(ctx, x->dtype, 4, idx->shape) : NULL;
    if (!out) return NULL;
    const int64_t P = x->shape[0] * x->shape[1], HW = x->shape[2] * x->shape[3], L = idx->shape[2] * idx->shape[3];
    if (x->dtype == NB_F32) pgather_f32(xc, out, idx->data, P, HW, L);
    else pgather_f64(xc, out, idx->data, P, HW, L);
    return record_pool(ctx, &OP_MAX_POOL, out, xc, idx, x->shape[2], x->shape[3]);
}

/* g (N, C, OH, OW) added into zeros (N, C, H, W) at idx */
static nb_tensor *pool_scatter(nb_ctx *ctx, nb_tensor *g, nb_tensor *idx, int64_t H, int64_t W) {
    if (nb__null(ctx, "max_pool2d_backward", 2, g, idx)) return NULL;
    nb_tensor *gc = nb_contiguous(ctx, g);
    nb_tensor *out = gc ? nb__new(ctx, g->dtype, NB_SHAPE(g->shape[0], g->shape[1], H, W)) : NULL;
    if (!out) return NULL;
    const int64_t P = g->shape[0] * g->shape[1], L = g->shape[2] * g->shape[3];
    if (g->dtype == NB_F32) pscatter_f32(gc, out, idx->data, P, H * W, L);
    else pscatter_f64(gc, out, idx->data, P, H * W, L);
    return record_pool(ctx, &OP_MAX_POOL_BW, out, gc, idx, H, W);
}

/* x (N, C, H, W) -> windows (N, C, k*k, L), with OH/OW of the pooled output */
static nb_tensor *windows(nb_ctx *ctx, const char *op, nb_tensor *x, int kernel, int *stride, int padding,
                          double padv, int64_t *oh, int64_t *ow) {
    char b[128];
    if (x->dtype == NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "%s: expected f32 or f64 input, got i64", op);
    if (x->ndim != 4) return nb__fail(ctx, NB_ERR_SHAPE, "%s: input %s must be 4-D (N, C, H, W)", op, nb_shape_str(x, b, sizeof b));
    if (*stride == 0) *stride = kernel;
    if (kernel < 1 || *stride < 1 || padding < 0 || padding > kernel / 2)
        return nb__fail(ctx, NB_ERR_VALUE, "%s: kernel %d, stride %d, padding %d invalid for input %s (need kernel, stride >= 1, 0 <= padding <= kernel/2)",
                        op, kernel, *stride, padding, nb_shape_str(x, b, sizeof b));
    const int64_t H = x->shape[2], W = x->shape[3];
    if (kernel > H + 2 * padding || kernel > W + 2 * padding)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: kernel %dx%d is larger than the padded input %lldx%lld of %s (padding %d)", op,
                        kernel, kernel, (long long)(H + 2 * padding), (long long)(W + 2 * padding),
                        nb_shape_str(x, b, sizeof b), padding);
    *oh = (H + 2 * padding - kernel) / *stride + 1;
    *ow = (W + 2 * padding - kernel) / *stride + 1;
    nb_tensor *cols = nb_unfold(ctx, x, NB_WINDOW2D(kernel, *stride, padding, 1), padv);
    return nb_reshape(ctx, cols, NB_SHAPE(x->shape[0], x->shape[1], (int64_t)kernel * kernel, *oh * *ow));
}

static nb_tensor *pool(nb_ctx *ctx, const char *op, nb_tensor *x, int kernel, int stride, int padding, bool is_max) {
    if (nb__null(ctx, op, 1, x)) return NULL;
    int64_t oh = 0, ow = 0;
    /* every window holds a real element (padding <= kernel/2), so the lowest finite value acts
     * as -inf for max without tripping anomaly mode */
    double padv = is_max ? (x->dtype == NB_F32 ? -FLT_MAX : -DBL_MAX) : 0.0;
    nb_tensor *win = windows(ctx, op, x, kernel, &stride, padding, padv, &oh, &ow);
    if (!win) return NULL;
    int axis = 2;
    nb_tensor *r = is_max ? nb_max(ctx, win, 1, &axis, false) : nb_mean(ctx, win, 1, &axis, false);
    return nb_reshape(ctx, r, NB_SHAPE(x->shape[0], x->shape[1], oh, ow));
}

/* The checks of pooling arguments shared with windows(); false + error if bad. */
static bool pool_args(nb_ctx *ctx, const char *op, const nb_tensor *x, int kernel, int *stride, int padding, int64_t *oh,
                      int64_t *ow) {
    char b[128];
    if (x->dtype == NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "%s: expected f32 or f64 input, got i64", op), false;
    if (x->ndim != 4)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: input %s must be 4-D (N, C, H, W)", op, nb_shape_str(x, b, sizeof b)), false;
    if (*stride == 0) *stride = kernel;
    if (kernel < 1 || *stride < 1 || padding < 0 || padding > kernel / 2)
        return nb__fail(ctx, NB_ERR_VALUE,
                        "%s: kernel %d, stride %d, padding %d invalid for input %s (need kernel, stride >= 1, 0 <= "
                        "padding <= kernel/2)",
                        op, kernel, *stride, padding, nb_shape_str(x, b, sizeof b)),
               false;
    const int64_t H = x->shape[2], W = x->shape[3];
    if (kernel > H + 2 * padding || kernel > W + 2 * padding)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: kernel %dx%d is larger than the padded input %lldx%lld of %s (padding %d)",
                        op, kernel, kernel, (long long)(H + 2 * padding), (long long)(W + 2 * padding),
                        nb_shape_str(x, b, sizeof b), padding),
               false;
    *oh = (H + 2 * padding - kernel) / *stride + 1;
    *ow = (W + 2 * padding - kernel) / *stride + 1;
    return true;
}

nb_tensor *nb_max_pool2d(nb_ctx *ctx, nb_tensor *x, int kernel, int stride, int padding) {
    if (nb__null(ctx, "max_pool2d", 1, x)) return NULL;
    int64_t oh, ow;
    if (!pool_args(ctx, "max_pool2d", x, kernel, &stride, padding, &oh, &ow)) return NULL;
    nb_tensor *xc = nb_contiguous(ctx, x);
    if (!xc) return NULL;
    const int64_t shape[4] = {x->shape[0], x->shape[1], oh, ow};
    nb_tensor *out = nb__new(ctx, x->dtype, 4, shape), *idx = nb__new(ctx, NB_I64, 4, shape);
    if (!out || !idx) return NULL;
    if (x->dtype == NB_F32) maxpool_f32(xc, out, idx->data, kernel, stride, padding);
    else maxpool_f64(xc, out, idx->data, kernel, stride, padding);
    return record_pool(ctx, &OP_MAX_POOL, out, xc, idx, x->shape[2], x->shape[3]);
}

nb_tensor *nb_avg_pool2d(nb_ctx *ctx, nb_tensor *x, int kernel, int stride, int padding) {
    return pool(ctx, "avg_pool2d", x, kernel, stride, padding, false);
}

nb_tensor *nb_adaptive_avg_pool2d(nb_ctx *ctx, nb_tensor *x, int64_t oh, int64_t ow) {
    if (nb__null(ctx, "adaptive_avg_pool2d", 1, x)) return NULL;
    char b[128];
    if (x->ndim != 4)
        return nb__fail(ctx, NB_ERR_SHAPE, "adaptive_avg_pool2d: input %s must be 4-D (N, C, H, W)", nb_shape_str(x, b, sizeof b));
    const int64_t H = x->shape[2], W = x->shape[3];
    if (oh < 1 || ow < 1) return nb__fail(ctx, NB_ERR_VALUE, "adaptive_avg_pool2d: output size %lldx%lld must be positive", (long long)oh, (long long)ow);
    if (oh == 1 && ow == 1) {
        int axes[2] = {2, 3};
        return nb_mean(ctx, x, 2, axes, true);
    }
    if (H % oh != 0 || W % ow != 0 || H / oh != W / ow)
        return nb__fail(ctx, NB_ERR_UNSUPPORTED,
                        "adaptive_avg_pool2d: input %s to %lldx%lld needs equal square windows (H/oh == W/ow, exact)",
                        nb_shape_str(x, b, sizeof b), (long long)oh, (long long)ow);
    int k = (int)(H / oh);
    return nb_avg_pool2d(ctx, x, k, k, 0);
}
