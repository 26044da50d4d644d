/* Pooling as compositions: unfold the windows, reduce over the kernel axis (nb_max / nb_mean),
 * reshape. Gradients (of any order) come from unfold/fold and the reductions. */
#include "../internal.h"

#include <float.h>

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

nb_tensor *nb_max_pool2d(nb_ctx *ctx, nb_tensor *x, int kernel, int stride, int padding) {
    return pool(ctx, "max_pool2d", x, kernel, stride, padding, true);
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
