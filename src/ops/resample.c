/* Resampling of (N, C, H, W) images, all composites: interpolation is an index_select per axis
 * (nearest) or two of them blended with constant weights (bilinear), so gradients of every order
 * come from index_select's own; pixel (un)shuffle is reshape + permute. */
#include "../internal.h"

#include <math.h>
#include <string.h>

/* One axis of PyTorch 1.13's CPU upsampling from n to m samples: source indices i0, i1 and weights
 * l0, l1 (bilinear) or i0 alone (nearest). scale: the user's scale factor, 0 if none. */
static void axis_taps(bool bilinear, bool align_corners, int64_t n, int64_t m, double scale, int64_t *i0, int64_t *i1,
                      nb_tensor *l0, nb_tensor *l1) {
    for (int64_t d = 0; d < m; d++) {
        if (!bilinear) {
            /* nearest_idx: float arithmetic, as PyTorch's, so that the same indices come out. No
             * m == 2n shortcut (d >> 1): with a scale factor such as 2.3 over 3 rows it would
             * sample by n/m, not 1/scale as documented (torch 1.13's own kernels disagree there:
             * its channels-last one takes the shortcut, the contiguous one does not) */
            const float r = scale > 0 ? (float)(1.0 / scale) : (float)n / (float)m;
            const int64_t s = (int64_t)floorf((float)d * r);
            i0[d] = s < n - 1 ? s : n - 1;
            continue;
        }
        const double r = align_corners ? (m > 1 ? (double)(n - 1) / (double)(m - 1) : 0.0)
                                       : (scale > 0 ? 1.0 / scale : (double)n / (double)m);
        double src = align_corners ? r * (double)d : r * ((double)d + 0.5) - 0.5;
        if (src < 0) src = 0;
        i0[d] = (int64_t)src;
        i1[d] = i0[d] + (i0[d] < n - 1 ? 1 : 0);
        const double w1 = fmin(fmax(src - (double)i0[d], 0.0), 1.0);
        nb_set(l0, d, 1.0 - w1);
        nb_set(l1, d, w1);
    }
}

/* x resampled along `axis` (2 or 3) from n to m samples */
static nb_tensor *resample_axis(nb_ctx *ctx, nb_tensor *x, int axis, int64_t m, double scale, const nb_interp_opts *o) {
    const int64_t n = x->shape[axis];
    if (m == n) return x; /* PyTorch's identity case on this axis */
    const bool bilinear = o->mode == NB_INTERP_BILINEAR;
    nb_tensor *i0 = nb__new(ctx, NB_I64, 1, &m), *i1 = nb__new(ctx, NB_I64, 1, &m);
    const int64_t wshape[2] = {m, 1};
    /* weights broadcast along the axis: (m) for W, (m, 1) for H */
    nb_tensor *l0 = nb__new(ctx, x->dtype, 4 - axis, wshape), *l1 = nb__new(ctx, x->dtype, 4 - axis, wshape);
    if (!i0 || !i1 || !l0 || !l1) return NULL;
    axis_taps(bilinear, o->align_corners, n, m, scale, i0->data, i1->data, l0, l1);
    if (!bilinear) return nb_index_select(ctx, x, axis, i0);
    return nb_add(ctx, nb_mul(ctx, nb_index_select(ctx, x, axis, i0), l0), nb_mul(ctx, nb_index_select(ctx, x, axis, i1), l1));
}

nb_tensor *nb_interpolate(nb_ctx *ctx, nb_tensor *x, const nb_interp_opts *opts) {
    if (nb__null(ctx, "interpolate", 1, x)) return NULL;
    char b[128];
    const nb_interp_opts *o = opts;
    if (!o) return nb__fail(ctx, NB_ERR_NULL, "interpolate: options are NULL (size or scale_factor is required)");
    if (x->dtype == NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "interpolate: expected f32 or f64 input, got i64");
    if (x->ndim != 4)
        return nb__fail(ctx, NB_ERR_SHAPE, "interpolate: input %s must be 4-D (N, C, H, W)", nb_shape_str(x, b, sizeof b));
    const bool has_size = o->size[0] || o->size[1], has_scale = o->scale_factor[0] != 0 || o->scale_factor[1] != 0;
    if (has_size == has_scale)
        return nb__fail(ctx, NB_ERR_VALUE, "interpolate: give exactly one of size and scale_factor (input %s)",
                        nb_shape_str(x, b, sizeof b));
    if (o->mode != NB_INTERP_NEAREST && o->mode != NB_INTERP_BILINEAR)
        return nb__fail(ctx, NB_ERR_VALUE, "interpolate: unknown mode %d", (int)o->mode);
    if (o->align_corners && o->mode == NB_INTERP_NEAREST)
        return nb__fail(ctx, NB_ERR_VALUE, "interpolate: align_corners is an option of bilinear mode only");
    int64_t out[2];
    double scale[2] = {0, 0};
    for (int a = 0; a < 2; a++) {
        const double s = o->scale_factor[a];
        if (has_scale && !(s > 0 && isfinite(s)))
            return nb__fail(ctx, NB_ERR_VALUE, "interpolate: scale_factor %g must be positive and finite", s);
        const double n = floor((double)x->shape[2 + a] * s); /* converted only once it fits */
        if (has_scale && !(n < 0x1p62))
            return nb__fail(ctx, NB_ERR_SHAPE, "interpolate: input %s times scale_factor %g is too large",
                            nb_shape_str(x, b, sizeof b), s);
        out[a] = has_size ? o->size[a] : (int64_t)n;
        if (has_scale && !o->recompute_scale_factor) scale[a] = s;
    }
    if (out[0] < 1 || out[1] < 1 || x->shape[2] < 1 || x->shape[3] < 1)
        return nb__fail(ctx, NB_ERR_SHAPE, "interpolate: input %s to %lldx%lld: sizes must be positive",
                        nb_shape_str(x, b, sizeof b), (long long)out[0], (long long)out[1]);
    int64_t numel;
    if (!nb__size_ok(ctx, "interpolate", NB_SHAPE(x->shape[0], x->shape[1], out[0], out[1]), nb_dtype_size(x->dtype), &numel))
        return NULL;
    /* W first, then H: the order of PyTorch's sums, so bilinear values match to the last bit */
    return resample_axis(ctx, resample_axis(ctx, x, 3, out[1], scale[1], o), 2, out[0], scale[0], o);
}

/* (..., C, H, W) of x with leading axes flattened to one: *lead the product, true if 3-D or more */
static bool image_dims(const nb_tensor *x, int64_t *lead, int64_t *C, int64_t *H, int64_t *W) {
    if (x->ndim < 3) return false;
    *lead = 1;
    for (int d = 0; d < x->ndim - 3; d++) *lead *= x->shape[d];
    *C = x->shape[x->ndim - 3], *H = x->shape[x->ndim - 2], *W = x->shape[x->ndim - 1];
    return true;
}

/* x with its last three axes replaced by (c, h, w) */
static nb_tensor *with_image(nb_ctx *ctx, nb_tensor *x, nb_tensor *y, int64_t c, int64_t h, int64_t w) {
    int64_t s[NB_MAX_DIMS];
    memcpy(s, x->shape, (size_t)x->ndim * sizeof *s);
    s[x->ndim - 3] = c, s[x->ndim - 2] = h, s[x->ndim - 1] = w;
    return nb_reshape(ctx, y, x->ndim, s);
}

nb_tensor *nb_pixel_shuffle(nb_ctx *ctx, nb_tensor *x, int64_t r) {
    if (nb__null(ctx, "pixel_shuffle", 1, x)) return NULL;
    char b[128];
    int64_t B, C, H, W;
    int64_t rr, Hr, Wr; /* r*r, H*r and W*r must not overflow */
    if (!image_dims(x, &B, &C, &H, &W) || r < 1 || __builtin_mul_overflow(r, r, &rr) || C % rr ||
        __builtin_mul_overflow(H, r, &Hr) || __builtin_mul_overflow(W, r, &Wr))
        return nb__fail(ctx, NB_ERR_SHAPE, "pixel_shuffle: input %s must be (..., C*r*r, H, W) for r = %lld >= 1",
                        nb_shape_str(x, b, sizeof b), (long long)r);
    nb_tensor *y = nb_reshape(ctx, x, NB_SHAPE(B, C / (r * r), r, r, H, W));
    y = nb_permute(ctx, y, (const int[]){0, 1, 4, 2, 5, 3});
    return with_image(ctx, x, nb_reshape(ctx, y, NB_SHAPE(B, C / (r * r), H * r, W * r)), C / (r * r), H * r, W * r);
}

nb_tensor *nb_pixel_unshuffle(nb_ctx *ctx, nb_tensor *x, int64_t r) {
    if (nb__null(ctx, "pixel_unshuffle", 1, x)) return NULL;
    char b[128];
    int64_t B, C, H, W;
    int64_t rr, Crr; /* C*r*r must not overflow */
    if (!image_dims(x, &B, &C, &H, &W) || r < 1 || H % r || W % r || __builtin_mul_overflow(r, r, &rr) ||
        __builtin_mul_overflow(C, rr, &Crr))
        return nb__fail(ctx, NB_ERR_SHAPE, "pixel_unshuffle: input %s must be (..., C, H*r, W*r) for r = %lld >= 1",
                        nb_shape_str(x, b, sizeof b), (long long)r);
    nb_tensor *y = nb_reshape(ctx, x, NB_SHAPE(B, C, H / r, r, W / r, r));
    y = nb_permute(ctx, y, (const int[]){0, 1, 3, 5, 2, 4});
    return with_image(ctx, x, nb_reshape(ctx, y, NB_SHAPE(B, C * r * r, H / r, W / r)), C * r * r, H / r, W / r);
}
