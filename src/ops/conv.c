/* Convolution: unfold (im2col) and fold (col2im) are the two primitives, each the other's
 * backward rule, so gradients of every order come free. conv2d and conv_transpose2d are
 * unfold/fold + nb_matmul (BLIS) + reshapes; their gradients come from those ops' rules. */
#include "../internal.h"

#include <omp.h>

/* Output positions of a window over (H, W), after checking the window; false + error if bad.
 * `op` and `x` name the caller and its input in the message. */
static bool window_out(nb_ctx *ctx, const char *op, const nb_tensor *x, int64_t H, int64_t W, nb_window2d w,
                       int64_t *oh, int64_t *ow) {
    char b[128];
    if (w.kh < 1 || w.kw < 1 || w.sh < 1 || w.sw < 1 || w.dh < 1 || w.dw < 1 || w.ph < 0 || w.pw < 0)
        return nb__fail(ctx, NB_ERR_VALUE,
                        "%s: invalid window for input %s: kernel %lldx%lld, stride %lldx%lld, padding %lldx%lld, "
                        "dilation %lldx%lld (kernel, stride, dilation >= 1, padding >= 0)",
                        op, nb_shape_str(x, b, sizeof b), (long long)w.kh, (long long)w.kw, (long long)w.sh,
                        (long long)w.sw, (long long)w.ph, (long long)w.pw, (long long)w.dh, (long long)w.dw),
               false;
    /* every size below 2^31, so the window and output arithmetic below cannot overflow */
    const int64_t big = INT32_MAX;
    if (w.kh > big || w.kw > big || w.sh > big || w.sw > big || w.dh > big || w.dw > big || w.ph > big || w.pw > big)
        return nb__fail(ctx, NB_ERR_VALUE, "%s: window sizes must be below 2^31 (input %s)", op, nb_shape_str(x, b, sizeof b)),
               false;
    if (H < 0 || W < 0 || H > big || W > big)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: image size %lldx%lld must be in [0, 2^31)", op, (long long)H, (long long)W),
               false;
    int64_t ekh = w.dh * (w.kh - 1) + 1, ekw = w.dw * (w.kw - 1) + 1;
    if (ekh > H + 2 * w.ph || ekw > W + 2 * w.pw)
        return nb__fail(ctx, NB_ERR_SHAPE,
                        "%s: kernel %lldx%lld (dilation %lldx%lld, effective %lldx%lld) is larger than the padded input "
                        "%lldx%lld of %s (padding %lldx%lld)",
                        op, (long long)w.kh, (long long)w.kw, (long long)w.dh, (long long)w.dw, (long long)ekh,
                        (long long)ekw, (long long)(H + 2 * w.ph), (long long)(W + 2 * w.pw),
                        nb_shape_str(x, b, sizeof b), (long long)w.ph, (long long)w.pw),
               false;
    *oh = (H + 2 * w.ph - ekh) / w.sh + 1;
    *ow = (W + 2 * w.pw - ekw) / w.sw + 1;
    return true;
}

/* Both kernels loop over (n, c) planes; a plane's output is written by one thread only, in a
 * fixed order, so results do not depend on the thread count. */
#define DEFINE_IM2COL(T, SUF)                                                                                 \
    static void unfold_##SUF(const nb_tensor *x, nb_tensor *out, nb_window2d w, int64_t OH, int64_t OW,       \
                             double padv, bool bl) {                                                          \
        const int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3], L = OH * OW;        \
        const int64_t xs0 = x->stride[0], xs1 = x->stride[1], xs2 = x->stride[2], xs3 = x->stride[3];         \
        const T pad = (T)padv;                                                                                \
        const T *xd = (const T *)x->data;                                                                     \
        T *od = (T *)out->data;                                                                               \
        _Pragma("omp parallel for if (out->numel >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)") \
        for (int64_t p = 0; p < N * C; p++) {                                                                 \
            const int64_t n = p / C, c = p % C;                                                               \
            const T *xp = xd + n * xs0 + c * xs1;                                                             \
            for (int64_t i = 0; i < w.kh; i++)                                                                \
                for (int64_t j = 0; j < w.kw; j++) {                                                          \
                    T *o = od + COLS_ROW(p, i * w.kw + j) * L;                                                \
                    for (int64_t r = 0; r < OH; r++) {                                                        \
                        const int64_t ih = r * w.sh - w.ph + i * w.dh;                                        \
                        T *orow = o + r * OW;                                                                 \
                        if (ih < 0 || ih >= H) {                                                              \
                            for (int64_t q = 0; q < OW; q++) orow[q] = pad;                                   \
                            continue;                                                                         \
                        }                                                                                     \
                        const T *xrow = xp + ih * xs2;                                                        \
                        for (int64_t q = 0; q < OW; q++) {                                                    \
                            const int64_t iw = q * w.sw - w.pw + j * w.dw;                                    \
                            orow[q] = (iw >= 0 && iw < W) ? xrow[iw * xs3] : pad;                             \
                        }                                                                                     \
                    }                                                                                         \
                }                                                                                             \
        }                                                                                                     \
    }                                                                                                         \
    /* cols contiguous (N, C*kh*kw, OH*OW), or (C*kh*kw, N, OH*OW) if bl; out contiguous (N, C, H, W),     \
     * zeroed here */                                                                                         \
    static void fold_##SUF(const nb_tensor *cols, nb_tensor *out, nb_window2d w, int64_t OH, int64_t OW,      \
                           bool bl) {                                                                         \
        const int64_t N = out->shape[0], C = out->shape[1], H = out->shape[2], W = out->shape[3], L = OH * OW; \
        const T *cd = (const T *)cols->data;                                                                  \
        T *od = (T *)out->data;                                                                               \
        _Pragma("omp parallel for if (cols->numel >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)") \
        for (int64_t p = 0; p < N * C; p++) {                                                                 \
            T *op = od + p * H * W;                                                                           \
            for (int64_t e = 0; e < H * W; e++) op[e] = 0;                                                    \
            for (int64_t i = 0; i < w.kh; i++)                                                                \
                for (int64_t j = 0; j < w.kw; j++) {                                                          \
                    const T *cp = cd + COLS_ROW(p, i * w.kw + j) * L;                                         \
                    for (int64_t r = 0; r < OH; r++) {                                                        \
                        const int64_t ih = r * w.sh - w.ph + i * w.dh;                                        \
                        if (ih < 0 || ih >= H) continue;                                                      \
                        T *orow = op + ih * W;                                                                \
                        const T *crow = cp + r * OW;                                                          \
                        for (int64_t q = 0; q < OW; q++) {                                                    \
                            const int64_t iw = q * w.sw - w.pw + j * w.dw;                                    \
                            if (iw >= 0 && iw < W) orow[iw] += crow[q];                                       \
                        }                                                                                     \
                    }                                                                                         \
                }                                                                                             \
        }                                                                                                     \
    }
/* Row of column matrix for plane p = n*C + c and kernel tap ij: (N, C*kk, L) layout, or the
 * batch-last (C*kk, N, L) one when bl (uses N, C, w of the kernel's scope). */
#define COLS_ROW(p, ij) \
    (bl ? (((p) % C * w.kh * w.kw + (ij)) * N + (p) / C) : ((p) * w.kh * w.kw + (ij)))
DEFINE_IM2COL(float, f32)
DEFINE_IM2COL(double, f64)

static nb_window2d node_window(const nb_node *n) {
    return (nb_window2d){n->iattr[0], n->iattr[1], n->iattr[2], n->iattr[3],
                         n->iattr[4], n->iattr[5], n->iattr[6], n->iattr[7]};
}
static void save_window(nb_node *n, nb_window2d w) {
    int64_t v[8] = {w.kh, w.kw, w.sh, w.sw, w.ph, w.pw, w.dh, w.dw};
    memcpy(n->iattr, v, sizeof v);
}

/* padding taps are constants, so the pad value plays no part in the gradient */
static nb_status unfold_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = nb_fold(ctx, g, n->in[0]->shape[2], n->in[0]->shape[3], node_window(n));
    return NB_OK;
}
static nb_status fold_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = nb_unfold(ctx, g, node_window(n), 0.0);
    return NB_OK;
}
static const nb_op OP_UNFOLD = {"unfold", unfold_bw, NB_DIFFERENTIABLE}, OP_FOLD = {"fold", fold_bw, NB_DIFFERENTIABLE};

static bool float_input(nb_ctx *ctx, const char *op, const nb_tensor *x, int ndim, const char *layout) {
    char b[128];
    if (x->dtype == NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "%s: expected f32 or f64 input, got i64", op), false;
    if (x->ndim != ndim)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: input %s must be %d-D %s", op, nb_shape_str(x, b, sizeof b), ndim, layout),
               false;
    return true;
}

nb_tensor *nb_unfold(nb_ctx *ctx, nb_tensor *x, nb_window2d win, double pad_value) {
    if (nb__null(ctx, "unfold", 1, x) || !float_input(ctx, "unfold", x, 4, "(N, C, H, W)")) return NULL;
    int64_t OH, OW;
    if (!window_out(ctx, "unfold", x, x->shape[2], x->shape[3], win, &OH, &OW)) return NULL;
    int64_t shape[3] = {x->shape[0], x->shape[1] * win.kh * win.kw, OH * OW};
    nb_tensor *out = nb__new(ctx, x->dtype, 3, shape);
    if (!out) return NULL;
    if (x->dtype == NB_F32) unfold_f32(x, out, win, OH, OW, pad_value, false);
    else unfold_f64(x, out, win, OH, OW, pad_value, false);
    nb_node *n;
    out = nb__finish(ctx, &OP_UNFOLD, out, 1, &x, &n);
    if (n) save_window(n, win);
    return out;
}

nb_tensor *nb_fold(nb_ctx *ctx, nb_tensor *cols, int64_t H, int64_t W, nb_window2d win) {
    if (nb__null(ctx, "fold", 1, cols) || !float_input(ctx, "fold", cols, 3, "(N, C*kh*kw, L)")) return NULL;
    char b[128];
    if (H < 1 || W < 1) return nb__fail(ctx, NB_ERR_VALUE, "fold: output size %lldx%lld must be positive", (long long)H, (long long)W);
    int64_t OH, OW;
    if (!window_out(ctx, "fold", cols, H, W, win, &OH, &OW)) return NULL;
    const int64_t kk = win.kh * win.kw;
    if (cols->shape[1] % kk != 0 || cols->shape[2] != OH * OW)
        return nb__fail(ctx, NB_ERR_SHAPE,
                        "fold: input %s does not fit a %lldx%lld kernel over a %lldx%lld output (expected (N, C*%lld, %lld))",
                        nb_shape_str(cols, b, sizeof b), (long long)win.kh, (long long)win.kw, (long long)H, (long long)W,
                        (long long)kk, (long long)(OH * OW));
    nb_tensor *c = nb_contiguous(ctx, cols);
    if (!c) return NULL;
    int64_t shape[4] = {cols->shape[0], cols->shape[1] / kk, H, W};
    nb_tensor *out = nb__new(ctx, cols->dtype, 4, shape);
    if (!out) return NULL;
    if (c->dtype == NB_F32) fold_f32(c, out, win, OH, OW, false);
    else fold_f64(c, out, win, OH, OW, false);
    nb_node *n;
    out = nb__finish(ctx, &OP_FOLD, out, 1, &c, &n);
    if (n) save_window(n, win);
    return out;
}

/* Batch-last unfold/fold for conv2d: columns (C*kh*kw, N, OH*OW), so that a group's rows are one
 * (K, N*L) matrix with no copy. Internal; the caller has checked x, the window and the shapes.
 * Each is the other's backward rule, as for nb_unfold / nb_fold. */
static nb_tensor *unfold_bl(nb_ctx *ctx, nb_tensor *x, nb_window2d win, int64_t OH, int64_t OW);
/* fold_bl: OH x OW windows (given, not derived from H x W: a transposed convolution's
 * output_padding may exceed its stride when dilation does, and adds no window) */
static nb_tensor *fold_bl(nb_ctx *ctx, nb_tensor *cols, int64_t H, int64_t W, nb_window2d win, int64_t OH, int64_t OW);
static nb_status unfold_bl_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = fold_bl(ctx, g, n->in[0]->shape[2], n->in[0]->shape[3], node_window(n), n->iattr[8], n->iattr[9]);
    return NB_OK;
}
static nb_status fold_bl_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = unfold_bl(ctx, g, node_window(n), n->iattr[8], n->iattr[9]);
    return NB_OK;
}
static const nb_op OP_UNFOLD_BL = {"unfold_batch_last", unfold_bl_bw, NB_DIFFERENTIABLE},
                   OP_FOLD_BL = {"fold_batch_last", fold_bl_bw, NB_DIFFERENTIABLE};

static nb_tensor *unfold_bl(nb_ctx *ctx, nb_tensor *x, nb_window2d win, int64_t OH, int64_t OW) {
    if (nb__null(ctx, "unfold", 1, x)) return NULL;
    const int64_t shape[3] = {x->shape[1] * win.kh * win.kw, x->shape[0], OH * OW};
    nb_tensor *out = nb__new(ctx, x->dtype, 3, shape);
    if (!out) return NULL;
    if (x->dtype == NB_F32) unfold_f32(x, out, win, OH, OW, 0.0, true);
    else unfold_f64(x, out, win, OH, OW, 0.0, true);
    nb_node *n;
    out = nb__finish(ctx, &OP_UNFOLD_BL, out, 1, &x, &n);
    if (n) {
        save_window(n, win);
        n->iattr[8] = OH, n->iattr[9] = OW;
    }
    return out;
}

/* cols (C*kh*kw, N, OH*OW) -> (N, C, H, W) */
static nb_tensor *fold_bl(nb_ctx *ctx, nb_tensor *cols, int64_t H, int64_t W, nb_window2d win, int64_t OH, int64_t OW) {
    if (nb__null(ctx, "fold", 1, cols)) return NULL;
    nb_tensor *c = nb_contiguous(ctx, cols);
    if (!c) return NULL;
    const int64_t shape[4] = {cols->shape[1], cols->shape[0] / (win.kh * win.kw), H, W};
    nb_tensor *out = nb__new(ctx, cols->dtype, 4, shape);
    if (!out) return NULL;
    if (c->dtype == NB_F32) fold_f32(c, out, win, OH, OW, true);
    else fold_f64(c, out, win, OH, OW, true);
    nb_node *n;
    out = nb__finish(ctx, &OP_FOLD_BL, out, 1, &c, &n);
    if (n) {
        save_window(n, win);
        n->iattr[8] = OH, n->iattr[9] = OW;
    }
    return out;
}

/* ---- conv2d / conv_transpose2d -------------------------------------------------------------- */
/* Shared checks of x (N, C, H, W), w (4-D), b (bias_len) and groups; false + error if bad. */
static bool conv_args(nb_ctx *ctx, const char *op, const nb_tensor *x, const nb_tensor *w, const nb_tensor *b,
                      int groups, int64_t in_ch, int64_t bias_len) {
    char sx[128], sw[128], sb[128];
    nb_shape_str(x, sx, sizeof sx);
    nb_shape_str(w, sw, sizeof sw);
    if (x->dtype != w->dtype || (b && b->dtype != x->dtype) || x->dtype == NB_I64)
        return nb__fail(ctx, NB_ERR_DTYPE, "%s: input %s, weight %s%s must share one float dtype", op,
                        nb_dtype_name(x->dtype), nb_dtype_name(w->dtype), b ? " and bias" : ""),
               false;
    if (x->ndim != 4 || w->ndim != 4)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: input %s and weight %s must both be 4-D", op, sx, sw), false;
    if (groups < 1 || x->shape[1] % groups != 0 || w->shape[0] % groups != 0)
        return nb__fail(ctx, NB_ERR_VALUE, "%s: groups %d must divide the input channels of %s and weight dim 0 of %s", op,
                        groups, sx, sw),
               false;
    if (x->shape[1] != in_ch)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: input %s has %lld channels, weight %s expects %lld (groups %d)", op, sx,
                        (long long)x->shape[1], sw, (long long)in_ch, groups),
               false;
    if (b && (b->ndim != 1 || b->shape[0] != bias_len))
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: bias %s must be (%lld) for weight %s", op, nb_shape_str(b, sb, sizeof sb),
                        (long long)bias_len, sw),
               false;
    return true;
}

static nb_tensor *add_channel_bias(nb_ctx *ctx, nb_tensor *y, nb_tensor *b) {
    if (!b || !y) return y;
    return nb_add(ctx, y, nb_reshape(ctx, b, NB_SHAPE(b->shape[0], 1, 1)));
}

/* The options with their defaults filled in (zero fields: stride 1, dilation 1, groups 1),
 * and "same" padding resolved for a kernel (kh, kw); false + error when "same" cannot hold. */
static bool conv_opts(nb_ctx *ctx, const char *op, const nb_conv_opts *in, bool defaults, int64_t kh, int64_t kw,
                      nb_window2d *win, int64_t op_pad[2], int64_t *groups) {
    const nb_conv_opts o = in ? *in : (nb_conv_opts){0};
#define DEFAULT1(v) ((v) || !defaults ? (v) : 1)
    const int64_t k[2] = {kh, kw};
    int64_t st[2], pd[2], dl[2];
    for (int a = 0; a < 2; a++) {
        st[a] = DEFAULT1(o.stride[a]);
        dl[a] = DEFAULT1(o.dilation[a]);
        pd[a] = o.padding[a];
        op_pad[a] = o.output_padding[a];
        if (o.same) {
            const int64_t span = dl[a] * (k[a] - 1); /* PyTorch pads span/2 left, the rest right */
            if (st[a] != 1 || span % 2 != 0)
                return nb__fail(ctx, NB_ERR_VALUE,
                                "%s: padding \"same\" needs stride 1 and an odd dilated kernel on each axis (axis %d: stride "
                                "%lld, kernel %lld, dilation %lld)",
                                op, a, (long long)st[a], (long long)k[a], (long long)dl[a]),
                       false;
            pd[a] = span / 2;
        }
    }
    *groups = DEFAULT1(o.groups);
#undef DEFAULT1
    if (*groups < 1 || *groups > INT32_MAX)
        return nb__fail(ctx, NB_ERR_VALUE, "%s: groups %lld must be >= 1", op, (long long)o.groups), false;
    *win = (nb_window2d){kh, kw, st[0], st[1], pd[0], pd[1], dl[0], dl[1]};
    return true;
}

static nb_tensor *conv2d(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, const nb_conv_opts *opts, bool defaults);
static nb_tensor *conv_transpose2d(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, const nb_conv_opts *opts,
                                   bool defaults);

/* The positional forms take no defaults: a 0 stride stays an error there. */
nb_tensor *nb_conv2d(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, int stride, int padding, int dilation,
                     int groups) {
    return conv2d(ctx, x, w, b,
                        &(nb_conv_opts){.stride = {stride, stride}, .padding = {padding, padding},
                                        .dilation = {dilation, dilation}, .groups = groups}, false);
}
nb_tensor *nb_conv2d_ex(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, const nb_conv_opts *opts) {
    return conv2d(ctx, x, w, b, opts, true);
}

static nb_tensor *conv2d(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, const nb_conv_opts *opts, bool defaults) {
    if (nb__null(ctx, "conv2d", 2, x, w)) return NULL;
    nb_window2d win;
    int64_t G, op_pad[2];
    if (!conv_opts(ctx, "conv2d", opts, defaults, w->ndim == 4 ? w->shape[2] : 1, w->ndim == 4 ? w->shape[3] : 1, &win, op_pad, &G))
        return NULL;
    if (!conv_args(ctx, "conv2d", x, w, b, (int)G, w->ndim == 4 ? w->shape[1] * G : -1, w->shape[0])) return NULL;
    const int64_t N = x->shape[0], O = w->shape[0];
    int64_t OH, OW;
    if (!window_out(ctx, "conv2d", x, x->shape[2], x->shape[3], win, &OH, &OW)) return NULL;
    const int64_t K = w->shape[1] * win.kh * win.kw, L = OH * OW;
    /* The batch goes into the GEMM's columns: (G, O/G, K) x (G, K, N*L) -> (G, O/G, N*L), one GEMM
     * per group. The weight gradient is then one GEMM per group too, with no sum over the batch
     * (a per-sample GEMM broadcasting w costs N small GEMMs plus a reduction). The columns are
     * unfolded batch-last, (C*kh*kw, N, L) = (G, K, N*L), so the one copy is the output's back
     * to (N, G, O/G, L). */
    nb_tensor *cols = nb_reshape(ctx, unfold_bl(ctx, x, win, OH, OW), NB_SHAPE(G, K, N * L));
    nb_tensor *y = nb_matmul(ctx, nb_reshape(ctx, w, NB_SHAPE(G, O / G, K)), cols);
    y = nb_permute(ctx, nb_reshape(ctx, y, NB_SHAPE(G, O / G, N, L)), (int[]){2, 0, 1, 3});
    return add_channel_bias(ctx, nb_reshape(ctx, y, NB_SHAPE(N, O, OH, OW)), b);
}

nb_tensor *nb_conv_transpose2d(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, int stride, int padding,
                               int output_padding, int groups, int dilation) {
    return conv_transpose2d(ctx, x, w, b,
                                  &(nb_conv_opts){.stride = {stride, stride},
                                                  .padding = {padding, padding},
                                                  .dilation = {dilation, dilation},
                                                  .output_padding = {output_padding, output_padding},
                                                  .groups = groups}, false);
}
nb_tensor *nb_conv_transpose2d_ex(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, const nb_conv_opts *opts) {
    return conv_transpose2d(ctx, x, w, b, opts, true);
}

static nb_tensor *conv_transpose2d(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, const nb_conv_opts *opts,
                                   bool defaults) {
    if (nb__null(ctx, "conv_transpose2d", 2, x, w)) return NULL;
    if (opts && opts->same)
        return nb__fail(ctx, NB_ERR_VALUE, "conv_transpose2d: padding \"same\" is not defined (as in PyTorch)");
    nb_window2d win;
    int64_t G, op_pad[2];
    if (!conv_opts(ctx, "conv_transpose2d", opts, defaults, w->ndim == 4 ? w->shape[2] : 1, w->ndim == 4 ? w->shape[3] : 1, &win,
                   op_pad, &G))
        return NULL;
    if (!conv_args(ctx, "conv_transpose2d", x, w, b, (int)G, w->ndim == 4 ? w->shape[0] : -1,
                   w->ndim == 4 ? w->shape[1] * G : -1))
        return NULL;
    const int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    const int64_t Og = w->shape[1], kh = w->shape[2], kw = w->shape[3];
    if (win.sh < 1 || win.sw < 1 || win.dh < 1 || win.dw < 1 || win.ph < 0 || win.pw < 0) {
        int64_t dummy;
        window_out(ctx, "conv_transpose2d", x, H, W, win, &dummy, &dummy);
        return NULL;
    }
    /* PyTorch's rule: output_padding < max(stride, dilation) on each axis */
    const int64_t lim[2] = {win.sh > win.dh ? win.sh : win.dh, win.sw > win.dw ? win.sw : win.dw};
    for (int a = 0; a < 2; a++)
        if (op_pad[a] < 0 || op_pad[a] >= lim[a])
            return nb__fail(ctx, NB_ERR_VALUE,
                            "conv_transpose2d: output_padding %lld on axis %d must be in [0, max(stride, dilation) = %lld)",
                            (long long)op_pad[a], a, (long long)lim[a]);
    if (H > INT32_MAX || W > INT32_MAX || kh > INT32_MAX || kw > INT32_MAX || win.sh > INT32_MAX || win.sw > INT32_MAX ||
        win.ph > INT32_MAX || win.pw > INT32_MAX || win.dh > INT32_MAX || win.dw > INT32_MAX) /* then the sizes below fit */
        return nb__fail(ctx, NB_ERR_SHAPE, "conv_transpose2d: input, kernel and window sizes must be below 2^31");
    const int64_t OH = (H - 1) * win.sh - 2 * win.ph + win.dh * (kh - 1) + op_pad[0] + 1;
    const int64_t OW = (W - 1) * win.sw - 2 * win.pw + win.dw * (kw - 1) + op_pad[1] + 1;
    if (OH < 1 || OW < 1) {
        char sx[128], sw[128];
        return nb__fail(ctx, NB_ERR_SHAPE,
                        "conv_transpose2d: input %s with weight %s, stride %lldx%lld, padding %lldx%lld gives an empty "
                        "%lldx%lld output",
                        nb_shape_str(x, sx, sizeof sx), nb_shape_str(w, sw, sizeof sw), (long long)win.sh,
                        (long long)win.sw, (long long)win.ph, (long long)win.pw, (long long)OH, (long long)OW);
    }
    /* (G, Og*k*k, C/G) x (G, C/G, N*H*W) -> (G, Og*k*k, N*H*W), one GEMM per group with the batch
     * in the columns (as in conv2d; the one copy is x's to (G, C/G, N, H*W)), which is the
     * batch-last column layout (G*Og*k*k, N, H*W) that col2im reads */
    const int64_t Kc = Og * kh * kw, L = H * W;
    nb_tensor *wt = nb_transpose(ctx, nb_reshape(ctx, w, NB_SHAPE(G, C / G, Kc)), 1, 2);
    nb_tensor *xg = nb_permute(ctx, nb_reshape(ctx, x, NB_SHAPE(N, G, C / G, L)), (int[]){1, 2, 0, 3});
    nb_tensor *cols = nb_matmul(ctx, wt, nb_reshape(ctx, xg, NB_SHAPE(G, C / G, N * L)));
    nb_tensor *y = fold_bl(ctx, nb_reshape(ctx, cols, NB_SHAPE(G * Kc, N, L)), OH, OW, win, H, W);
    return add_channel_bias(ctx, y, b);
}
