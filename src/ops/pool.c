/* Pooling. Average pooling is a composition: zero-pad, unfold the windows, sum over the kernel
 * axis, divide by PyTorch's per-window divisors. Max pooling is a primitive that keeps the
 * arg-max of each window: its output is a gather from each (H, W) plane at those positions, whose
 * backward is the matching scatter-add, whose backward is the gather again, so gradients of every
 * order come from this pair. Options follow PyTorch 1.13 (pool_geometry). */
#include "../internal.h"

#include <omp.h>

/* ---- max pooling: arg-max gather / scatter over (H, W) planes ------------------------------- */
/* idx (N, C, OH, OW) i64 holds the flat position ih*W + iw of each window's maximum in its
 * plane; one thread owns a plane and walks it in a fixed order, so results do not depend on
 * the thread count (overlapping windows add up in the same order every time). g is the window
 * (kernel, stride, padding, dilation per axis). */
#define DEFINE_POOL(T, SUF)                                                                                    \
    /* One window, taps outside the image skipped, PyTorch's rule: the first maximum in row-major order \
     * wins and NaN propagates (the last NaN wins). pool_geometry() ensures a tap inside the image. */     \
    static inline void maxpool_window_##SUF(const T *xp, int64_t H, int64_t W, int64_t h0, int64_t w0,        \
                                            const nb_window2d *g, T *o, int64_t *ix) {                         \
        int64_t bi = -1;                                                                                       \
        T best = (T)-INFINITY;                                                                                 \
        for (int64_t i = h0; i < h0 + g->kh * g->dh; i += g->dh)                                               \
            for (int64_t j = w0; j < w0 + g->kw * g->dw; j += g->dw) {                                         \
                if (i < 0 || i >= H || j < 0 || j >= W) continue;                                              \
                const T v = xp[i * W + j];                                                                     \
                if (bi < 0 || v > best || v != v) best = v, bi = i * W + j;                                    \
            }                                                                                                  \
        *o = best;                                                                                             \
        *ix = bi;                                                                                              \
    }                                                                                                          \
    /* One (H, W) plane. Undilated k x k windows inside the image take an unrolled branch-free path (k \
     * is a constant there) that ignores NaN; it reports whether it saw one, and then the plane is redone \
     * exactly. k = 0: every window takes the general path. */                                                \
    static inline __attribute__((always_inline)) bool maxpool_plane_##SUF(const T *xp, T *o, int64_t *ix,      \
                                                                         int64_t H, int64_t W, int64_t OH,     \
                                                                         int64_t OW, const int k,              \
                                                                         const nb_window2d *g) {               \
        bool nan = false;                                                                                      \
        for (int64_t r = 0; r < OH; r++) {                                                                     \
            const int64_t h0 = r * g->sh - g->ph;                                                              \
            for (int64_t q = 0; q < OW; q++) {                                                                 \
                const int64_t w0 = q * g->sw - g->pw;                                                          \
                if (k && h0 >= 0 && w0 >= 0 && h0 + k <= H && w0 + k <= W) {                                   \
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
                    maxpool_window_##SUF(xp, H, W, h0, w0, g, o + r * OW + q, ix + r * OW + q);                \
                }                                                                                              \
            }                                                                                                  \
        }                                                                                                      \
        return nan;                                                                                            \
    }                                                                                                          \
    /* out of line, so that the loop bounds are locals rather than OpenMP's shared variables (which   \
     * every int64 index store could alias) */                                                                \
    static __attribute__((noinline)) void maxpool_planes_##SUF(const T *xp, T *o, int64_t *ix, int64_t H,     \
                                                              int64_t W, int64_t OH, int64_t OW,               \
                                                              const nb_window2d *g) {                          \
        const bool square = g->kh == g->kw && g->dh == 1 && g->dw == 1;                                        \
        bool nan;                                                                                              \
        if (square && g->kh == 2) nan = maxpool_plane_##SUF(xp, o, ix, H, W, OH, OW, 2, g);                    \
        else if (square && g->kh == 3) nan = maxpool_plane_##SUF(xp, o, ix, H, W, OH, OW, 3, g);               \
        else nan = maxpool_plane_##SUF(xp, o, ix, H, W, OH, OW, square ? (int)g->kh : 0, g);                   \
        if (nan)                                                                                               \
            for (int64_t r = 0; r < OH; r++)                                                                   \
                for (int64_t q = 0; q < OW; q++)                                                               \
                    maxpool_window_##SUF(xp, H, W, r * g->sh - g->ph, q * g->sw - g->pw, g, o + r * OW + q,    \
                                         ix + r * OW + q);                                                     \
    }                                                                                                          \
    /* idx: every plane's indices, or with per_thread one plane's per thread (no graph keeps them) */     \
    static void maxpool_##SUF(const nb_tensor *x, nb_tensor *out, int64_t *idx, bool per_thread,              \
                              const nb_window2d *g) {                                                          \
        const int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];                      \
        const int64_t OH = out->shape[2], OW = out->shape[3], L = OH * OW;                                     \
        const T *xd = (const T *)x->data;                                                                      \
        T *od = (T *)out->data;                                                                                \
        _Pragma("omp parallel for if (x->numel >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)")  \
        for (int64_t p = 0; p < N * C; p++) {                                                                  \
            int64_t *ix = per_thread ? idx + omp_get_thread_num() * L : idx + p * L;                           \
            maxpool_planes_##SUF(xd + p * H * W, od + p * L, ix, H, W, OH, OW, g);                             \
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

/* ---- geometry: PyTorch's option defaults, checks and output size ------------------------------ */
/* PyTorch's pooling_output_shape: floor or ceil, and in ceil mode a last window that would start
 * inside the right padding is dropped. */
static int64_t pooled_size(int64_t n, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
    const int64_t span = n + 2 * p - d * (k - 1) - 1;
    if (span < 0) return 0;
    int64_t o = (span + (ceil_mode ? s - 1 : 0)) / s + 1;
    if (ceil_mode && (o - 1) * s >= n + p) o--;
    return o;
}

/* does every window along one axis hold a tap inside [0, n)? (only dilation can break this) */
static bool taps_reach(int64_t n, int64_t o, int64_t k, int64_t s, int64_t p, int64_t d) {
    for (int64_t r = 0; r < o; r++) {
        bool hit = false;
        for (int64_t i = 0; i < k && !hit; i++) hit = r * s - p + i * d >= 0 && r * s - p + i * d < n;
        if (!hit) return false;
    }
    return true;
}

/* The window of opts on x (N, C, H, W), with zero fields at PyTorch's defaults; *oh, *ow the pooled
 * size. false + the context's error if an argument is bad. */
static bool pool_geometry(nb_ctx *ctx, const char *op, const nb_tensor *x, const nb_pool_opts *o, bool is_max,
                          nb_window2d *g, int64_t *oh, int64_t *ow) {
    char b[128];
    if (x->dtype == NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "%s: expected f32 or f64 input, got i64", op), false;
    if (x->ndim != 4)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: input %s must be 4-D (N, C, H, W)", op, nb_shape_str(x, b, sizeof b)), false;
    if (!o) return nb__fail(ctx, NB_ERR_NULL, "%s: options are NULL (the kernel size is required)", op), false;
    *g = (nb_window2d){o->kernel[0], o->kernel[1], o->stride[0] ? o->stride[0] : o->kernel[0],
                       o->stride[1] ? o->stride[1] : o->kernel[1], o->padding[0], o->padding[1],
                       o->dilation[0] ? o->dilation[0] : 1, o->dilation[1] ? o->dilation[1] : 1};
    if (g->kh < 1 || g->kw < 1 || g->sh < 1 || g->sw < 1 || g->dh < 1 || g->dw < 1 || g->ph < 0 || g->pw < 0 ||
        g->ph > g->kh / 2 || g->pw > g->kw / 2 || o->divisor_override < 0)
        return nb__fail(ctx, NB_ERR_VALUE,
                        "%s: kernel %lldx%lld, stride %lldx%lld, padding %lldx%lld, dilation %lldx%lld, divisor %lld "
                        "invalid for input %s (need kernel, stride, dilation >= 1, 0 <= padding <= kernel/2, divisor >= 0)",
                        op, (long long)g->kh, (long long)g->kw, (long long)g->sh, (long long)g->sw, (long long)g->ph,
                        (long long)g->pw, (long long)g->dh, (long long)g->dw, (long long)o->divisor_override,
                        nb_shape_str(x, b, sizeof b)),
               false;
    if (!is_max && (g->dh != 1 || g->dw != 1))
        return nb__fail(ctx, NB_ERR_VALUE, "%s: dilation %lldx%lld is not an option of average pooling", op,
                            (long long)g->dh, (long long)g->dw),
                   false;
    if (is_max && (o->divisor_override || o->exclude_pad))
        return nb__fail(ctx, NB_ERR_VALUE, "%s: divisor_override and exclude_pad are options of average pooling", op),
               false;
    const int64_t H = x->shape[2], W = x->shape[3];
    *oh = pooled_size(H, g->kh, g->sh, g->ph, g->dh, o->ceil_mode);
    *ow = pooled_size(W, g->kw, g->sw, g->pw, g->dw, o->ceil_mode);
    if (*oh < 1 || *ow < 1)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: kernel %lldx%lld (dilation %lldx%lld) is larger than the padded input %lldx%lld of %s",
                        op, (long long)g->kh, (long long)g->kw, (long long)g->dh, (long long)g->dw,
                        (long long)(H + 2 * g->ph), (long long)(W + 2 * g->pw), nb_shape_str(x, b, sizeof b)),
               false;
    if (!taps_reach(H, *oh, g->kh, g->sh, g->ph, g->dh) || !taps_reach(W, *ow, g->kw, g->sw, g->pw, g->dw))
        return nb__fail(ctx, NB_ERR_VALUE, "%s: a dilated window of input %s holds only padding (PyTorch would return -inf there)",
                        op, nb_shape_str(x, b, sizeof b)),
               false;
    return true;
}

/* ---- the public ops --------------------------------------------------------------------------- */
nb_tensor *nb_max_pool2d_ex(nb_ctx *ctx, nb_tensor *x, const nb_pool_opts *opts) {
    if (nb__null(ctx, "max_pool2d", 1, x)) return NULL;
    nb_window2d g;
    int64_t oh, ow;
    if (!pool_geometry(ctx, "max_pool2d", x, opts, true, &g, &oh, &ow)) return NULL;
    nb_tensor *xc = nb_contiguous(ctx, x);
    if (!xc) return NULL;
    const int64_t shape[4] = {x->shape[0], x->shape[1], oh, ow};
    /* the indices are kept only for a backward: without one (no-grad evaluation), one plane's
     * per thread, not an i64 tensor twice the size of an f32 output */
    const bool graph = nb_ctx_grad_enabled(ctx) && xc->requires_grad;
    nb_tensor *out = nb__new(ctx, x->dtype, 4, shape);
    nb_tensor *idx = graph ? nb__new(ctx, NB_I64, 4, shape) : nb__new(ctx, NB_I64, NB_SHAPE(omp_get_max_threads(), oh * ow));
    if (!out || !idx) return NULL;
    if (x->dtype == NB_F32) maxpool_f32(xc, out, idx->data, !graph, &g);
    else maxpool_f64(xc, out, idx->data, !graph, &g);
    return record_pool(ctx, &OP_MAX_POOL, out, xc, idx, x->shape[2], x->shape[3]);
}

/* PyTorch's divisor of output position r along one axis: the window clipped to the padded input
 * (count_include_pad) or to the input itself */
static int64_t avg_count(int64_t r, int64_t n, int64_t k, int64_t s, int64_t p, bool exclude_pad) {
    int64_t start = r * s - p, end = start + k < n + p ? start + k : n + p;
    if (!exclude_pad) return end - start;
    start = start > 0 ? start : 0;
    end = end < n ? end : n;
    return end - start;
}

/* Average pooling is a composition: zero-pad (with the extra right/bottom rows ceil mode needs),
 * unfold the windows, sum over the kernel axis, divide by a constant (OH, OW) of PyTorch's
 * divisors. */
nb_tensor *nb_avg_pool2d_ex(nb_ctx *ctx, nb_tensor *x, const nb_pool_opts *opts) {
    if (nb__null(ctx, "avg_pool2d", 1, x)) return NULL;
    nb_window2d g;
    int64_t oh, ow;
    if (!pool_geometry(ctx, "avg_pool2d", x, opts, false, &g, &oh, &ow)) return NULL;
    const int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    const int64_t eh = (oh - 1) * g.sh + g.kh - (H + 2 * g.ph), ew = (ow - 1) * g.sw + g.kw - (W + 2 * g.pw);
    const int64_t pad[4] = {g.pw, g.pw + (ew > 0 ? ew : 0), g.ph, g.ph + (eh > 0 ? eh : 0)};
    nb_tensor *xp = nb_pad(ctx, x, 4, pad, NB_PAD_CONSTANT, 0.0);
    nb_tensor *cols = nb_unfold(ctx, xp, (nb_window2d){g.kh, g.kw, g.sh, g.sw, 0, 0, 1, 1}, 0.0);
    int axis = 2;
    nb_tensor *sum = nb_sum(ctx, nb_reshape(ctx, cols, NB_SHAPE(N, C, g.kh * g.kw, oh * ow)), 1, &axis, false);
    nb_tensor *div = nb__new(ctx, x->dtype, NB_SHAPE(oh, ow));
    if (!sum || !div) return NULL;
    for (int64_t r = 0; r < oh; r++)
        for (int64_t q = 0; q < ow; q++)
            nb_set(div, r * ow + q,
                   opts->divisor_override ? (double)opts->divisor_override
                                          : (double)(avg_count(r, H, g.kh, g.sh, g.ph, opts->exclude_pad) *
                                                     avg_count(q, W, g.kw, g.sw, g.pw, opts->exclude_pad)));
    return nb_div(ctx, nb_reshape(ctx, sum, NB_SHAPE(N, C, oh, ow)), div);
}

nb_tensor *nb_max_pool2d(nb_ctx *ctx, nb_tensor *x, int kernel, int stride, int padding) {
    return nb_max_pool2d_ex(ctx, x, &(nb_pool_opts){.kernel = {kernel, kernel}, .stride = {stride, stride}, .padding = {padding, padding}});
}

nb_tensor *nb_avg_pool2d(nb_ctx *ctx, nb_tensor *x, int kernel, int stride, int padding) {
    return nb_avg_pool2d_ex(ctx, x, &(nb_pool_opts){.kernel = {kernel, kernel}, .stride = {stride, stride}, .padding = {padding, padding}});
}

/* 1-D pooling over x (N, C, L) is 2-D pooling of (N, C, 1, L) with the first entry of each pair
 * moved to the W axis. */
static nb_tensor *pool1d(nb_ctx *ctx, const char *op, nb_tensor *x, const nb_pool_opts *o,
                         nb_tensor *(*pool2d)(nb_ctx *, nb_tensor *, const nb_pool_opts *)) {
    char b[128];
    if (nb__null(ctx, op, 1, x)) return NULL;
    if (!o) return nb__fail(ctx, NB_ERR_NULL, "%s: options are NULL (the kernel size is required)", op);
    if (x->ndim != 3) return nb__fail(ctx, NB_ERR_SHAPE, "%s: input %s must be 3-D (N, C, L)", op, nb_shape_str(x, b, sizeof b));
    if (o->kernel[1] || o->stride[1] || o->padding[1] || o->dilation[1])
        return nb__fail(ctx, NB_ERR_VALUE, "%s: options take the first entry of each pair only; the second must be 0", op);
    nb_pool_opts o2 = *o;
    o2.kernel[1] = o->kernel[0], o2.stride[1] = o->stride[0], o2.padding[1] = o->padding[0], o2.dilation[1] = o->dilation[0];
    o2.kernel[0] = 1, o2.stride[0] = 1, o2.padding[0] = 0, o2.dilation[0] = 1;
    return nb_squeeze(ctx, pool2d(ctx, nb_unsqueeze(ctx, x, 2), &o2), 2);
}
nb_tensor *nb_max_pool1d(nb_ctx *ctx, nb_tensor *x, const nb_pool_opts *opts) {
    return pool1d(ctx, "max_pool1d", x, opts, nb_max_pool2d_ex);
}
nb_tensor *nb_avg_pool1d(nb_ctx *ctx, nb_tensor *x, const nb_pool_opts *opts) {
    return pool1d(ctx, "avg_pool1d", x, opts, nb_avg_pool2d_ex);
}

/* The means of PyTorch's o windows along one axis (window i: [i n / o, ceil((i + 1) n / o))),
 * each over its own elements: an inf or NaN stays in the windows that hold it (averaging
 * matrices spread it: 0 * NaN). */
static nb_tensor *adaptive_axis(nb_ctx *ctx, nb_tensor *x, int axis, int64_t o) {
    const int64_t n = x ? x->shape[axis] : 0;
    nb_tensor **parts = x ? nb_ctx_alloc(ctx, (size_t)o * sizeof *parts) : NULL;
    if (!parts) return NULL;
    for (int64_t i = 0; i < o; i++) {
        const int64_t a = i * n / o, e = ((i + 1) * n + o - 1) / o;
        if (!(parts[i] = nb_mean(ctx, nb_slice(ctx, x, axis, a, e, 1), 1, &axis, true))) return NULL;
    }
    return nb_concat(ctx, (int)o, parts, axis);
}

nb_tensor *nb_adaptive_avg_pool2d(nb_ctx *ctx, nb_tensor *x, int64_t oh, int64_t ow) {
    if (nb__null(ctx, "adaptive_avg_pool2d", 1, x)) return NULL;
    char b[128];
    if (x->ndim != 4)
        return nb__fail(ctx, NB_ERR_SHAPE, "adaptive_avg_pool2d: input %s must be 4-D (N, C, H, W)", nb_shape_str(x, b, sizeof b));
    const int64_t H = x->shape[2], W = x->shape[3];
    if (oh < 1 || ow < 1) return nb__fail(ctx, NB_ERR_VALUE, "adaptive_avg_pool2d: output size %lldx%lld must be positive", (long long)oh, (long long)ow);
    if (H < 1 || W < 1)
        return nb__fail(ctx, NB_ERR_SHAPE, "adaptive_avg_pool2d: input %s has no element to average",
                        nb_shape_str(x, b, sizeof b));
    if (x->dtype != NB_F32 && x->dtype != NB_F64)
        return nb__fail(ctx, NB_ERR_DTYPE, "adaptive_avg_pool2d: input %s must be f32 or f64", nb_shape_str(x, b, sizeof b));
    int64_t numel;
    if (!nb__size_ok(ctx, "adaptive_avg_pool2d", NB_SHAPE(x->shape[0], x->shape[1], oh, ow), nb_dtype_size(x->dtype), &numel))
        return NULL;
    if (oh == 1 && ow == 1) {
        int axes[2] = {2, 3};
        return nb_mean(ctx, x, 2, axes, true);
    }
    if (H % oh == 0 && W % ow == 0) /* equal windows side by side: average pooling */
        return nb_avg_pool2d_ex(ctx, x, &(nb_pool_opts){.kernel = {H / oh, W / ow}});
    /* windows of unequal or overlapping extent: the mean over a window is separable, columns
     * then rows */
    if (oh > INT32_MAX || ow > INT32_MAX)
        return nb__fail(ctx, NB_ERR_VALUE, "adaptive_avg_pool2d: output size %lldx%lld is too large", (long long)oh,
                        (long long)ow);
    return adaptive_axis(ctx, adaptive_axis(ctx, x, 3, ow), 2, oh);
}
