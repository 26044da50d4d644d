/* Convolution. unfold (im2col) and fold (col2im) are public ops, each the other's backward
 * rule. conv2d and conv_transpose2d are three primitives over the same im2col/col2im kernels
 * and BLIS (see "convolution as three primitives" below), so no column matrix is kept. */
#include "../internal.h"

#include <omp.h>

bool nb__window_out(nb_ctx *ctx, const char *op, const nb_tensor *x, int64_t H, int64_t W, nb_window2d w,
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
/* nb__tap_range (internal.h): the row loops below need no bounds test inside, and with
 * stride 1 on a contiguous row they are plain copies and adds that vectorise. */
#define DEFINE_IM2COL(T, SUF)                                                                                 \
    static void unfold_##SUF(const nb_tensor *x, nb_tensor *out, nb_window2d w, int64_t OH, int64_t OW,       \
                             double padv) {                                                                   \
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
                    const int64_t off = j * w.dw - w.pw;                                                      \
                    int64_t q0, q1;                                                                           \
                    nb__tap_range(off, w.sw, W, OW, &q0, &q1);                                                    \
                    for (int64_t r = 0; r < OH; r++) {                                                        \
                        const int64_t ih = r * w.sh - w.ph + i * w.dh;                                        \
                        T *restrict orow = o + r * OW;                                                        \
                        if (ih < 0 || ih >= H) {                                                              \
                            for (int64_t q = 0; q < OW; q++) orow[q] = pad;                                   \
                            continue;                                                                         \
                        }                                                                                     \
                        const T *restrict xrow = xp + ih * xs2;                                               \
                        for (int64_t q = 0; q < q0; q++) orow[q] = pad;                                       \
                        if (w.sw == 1 && xs3 == 1)                                                            \
                            for (int64_t q = q0; q < q1; q++) orow[q] = xrow[q + off];                        \
                        else                                                                                  \
                            for (int64_t q = q0; q < q1; q++) orow[q] = xrow[(q * w.sw + off) * xs3];         \
                        for (int64_t q = q1; q < OW; q++) orow[q] = pad;                                      \
                    }                                                                                         \
                }                                                                                             \
        }                                                                                                     \
    }                                                                                                         \
    /* cols contiguous (N, C*kh*kw, OH*OW); out contiguous (N, C, H, W), zeroed here */                      \
    static void fold_##SUF(const nb_tensor *cols, nb_tensor *out, nb_window2d w, int64_t OH, int64_t OW) {   \
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
                    const int64_t off = j * w.dw - w.pw;                                                      \
                    int64_t q0, q1;                                                                           \
                    nb__tap_range(off, w.sw, W, OW, &q0, &q1);                                                    \
                    for (int64_t r = 0; r < OH; r++) {                                                        \
                        const int64_t ih = r * w.sh - w.ph + i * w.dh;                                        \
                        if (ih < 0 || ih >= H) continue;                                                      \
                        T *restrict orow = op + ih * W;                                                       \
                        const T *restrict crow = cp + r * OW;                                                 \
                        if (w.sw == 1)                                                                        \
                            for (int64_t q = q0; q < q1; q++) orow[q + off] += crow[q];                       \
                        else                                                                                  \
                            for (int64_t q = q0; q < q1; q++) orow[q * w.sw + off] += crow[q];                \
                    }                                                                                         \
                }                                                                                             \
        }                                                                                                     \
    }
/* Row of the column matrix (N, C*kh*kw, L) for plane p = n*C + c and kernel tap ij */
#define COLS_ROW(p, ij) ((p) * w.kh * w.kw + (ij))
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
    if (!nb__window_out(ctx, "unfold", x, x->shape[2], x->shape[3], win, &OH, &OW)) return NULL;
    int64_t shape[3] = {x->shape[0], x->shape[1] * win.kh * win.kw, OH * OW};
    nb_tensor *out = nb__new(ctx, x->dtype, 3, shape);
    if (!out) return NULL;
    if (x->dtype == NB_F32) unfold_f32(x, out, win, OH, OW, pad_value);
    else unfold_f64(x, out, win, OH, OW, pad_value);
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
    if (!nb__window_out(ctx, "fold", cols, H, W, win, &OH, &OW)) return NULL;
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
    if (c->dtype == NB_F32) fold_f32(c, out, win, OH, OW);
    else fold_f64(c, out, win, OH, OW);
    nb_node *n;
    out = nb__finish(ctx, &OP_FOLD, out, 1, &c, &n);
    if (n) save_window(n, win);
    return out;
}

/* ---- convolution as three primitives ----------------------------------------------------
 * conv(x, w), the forward; conv_bx(g, w), its adjoint in x (the input gradient, and the
 * transposed convolution); conv_bw(x, g), its adjoint in w (the weight gradient). Each is the
 * others' backward rule, so gradients of every order stay inside these three ops:
 *   y  = conv(x, w):     dx = conv_bx(gy, w),   dw = conv_bw(x, gy)
 *   z  = conv_bx(g, w):  dg = conv(gz, w),      dw = conv_bw(gz, g)
 *   gw = conv_bw(x, g):  dx = conv_bx(g, ggw),  dg = conv(x, ggw)
 * Each primitive picks its kernel in this order: Winograd F(2x2, 3x3) (conv_wino.c: f32, one
 * group, 3x3 stride 1, enough channels: use_wino), the direct kernels (conv_direct.c: f32, one
 * group, windows larger than 1x1; no columns at all), the implicit GEMM on BLIS's micro-kernel
 * (conv_gemm.c), then im2col/col2im + BLIS GEMMs, described here.
 * The kernels go one sample at a time. A sample's column matrix (C*kh*kw, OH*OW) is scratch:
 * one per thread, in the arena, released before the op returns, never on the tape. The GEMMs
 * read and write each sample's own (channels, positions) matrices, so nothing is permuted or
 * copied, and a 1x1 window with stride 1 and no padding reads the image itself as columns.
 * Samples are split over threads; the weight gradient sums the samples in a fixed number of
 * chunks (a function of the shapes only) added in a fixed order, so the bits do not depend on
 * the thread count. */
typedef struct {
    nb_window2d win;
    int64_t G, H, W, OH, OW; /* groups; the image side (H, W) and the window side (OH, OW) */
} conv_geom;

static conv_geom node_geom(const nb_node *n) {
    return (conv_geom){node_window(n), n->iattr[8], n->iattr[9], n->iattr[10], n->iattr[11], n->iattr[12]};
}
static void save_geom(nb_node *n, const conv_geom *q) {
    if (!n) return;
    save_window(n, q->win);
    n->iattr[8] = q->G, n->iattr[9] = q->H, n->iattr[10] = q->W, n->iattr[11] = q->OH, n->iattr[12] = q->OW;
}

/* One call of a kernel: the tensors, the sizes, and the per-thread scratch. */
typedef struct {
    conv_geom q;
    nb_dtype dt;
    int64_t es, N, C, O, Cg, Og, K, L, HW; /* K = C/G*kh*kw, L = OH*OW, HW = H*W */
    const nb_tensor *x, *w, *b, *gy;         /* the inputs that this kernel reads */
    nb_tensor *out;
    char *scratch;   /* per thread: cols_bytes each */
    size_t cols_bytes;
    char *partial;   /* conv_bw: chunks 1.. of the weight gradient */
    int64_t chunks;
} conv_job;

static conv_job make_job(const conv_geom *q, nb_dtype dt, int64_t N, int64_t C, int64_t O) {
    conv_job j = {.q = *q, .dt = dt, .es = (int64_t)nb_dtype_size(dt), .N = N, .C = C, .O = O};
    j.Cg = C / q->G, j.Og = O / q->G;
    j.K = j.Cg * q->win.kh * q->win.kw;
    j.L = q->OH * q->OW, j.HW = q->H * q->W;
    return j;
}

/* the image is its own column matrix: 1x1 window, stride 1, no padding, planes contiguous */
static bool direct_cols(const conv_job *j, const nb_tensor *x) {
    const nb_window2d w = j->q.win;
    return w.kh == 1 && w.kw == 1 && w.sh == 1 && w.sw == 1 && w.ph == 0 && w.pw == 0 && j->L == j->HW &&
           x->stride[3] == 1 && (x->stride[2] == j->q.W || j->q.H == 1);
}

/* Sample n's column matrix (C*kh*kw, L), row stride *rs: x's planes, or unfolded into buf. */
static const char *sample_cols(const conv_job *j, const nb_tensor *x, int64_t n, char *buf, int64_t *rs) {
    const char *xn = (const char *)x->data + n * x->stride[0] * j->es;
    if (direct_cols(j, x)) {
        *rs = x->stride[1];
        return xn;
    }
    nb_tensor xs = *x, cs = {.dtype = j->dt, .ndim = 3, .shape = {1, j->C * j->q.win.kh * j->q.win.kw, j->L}, .data = buf};
    xs.shape[0] = 1, xs.numel = j->C * j->HW, xs.data = (void *)xn;
    nb__contig_strides(3, cs.shape, cs.stride);
    cs.numel = cs.shape[1] * j->L;
    if (j->dt == NB_F32) unfold_f32(&xs, &cs, j->q.win, j->q.OH, j->q.OW, 0.0);
    else unfold_f64(&xs, &cs, j->q.win, j->q.OH, j->q.OW, 0.0);
    *rs = j->L;
    return buf;
}

/* rows (n_rows, len) of a sample set to the per-row value b[r] (bias), or left for beta 0 */
static void fill_rows(nb_dtype dt, char *dst, const nb_tensor *b, int64_t rows, int64_t len) {
    for (int64_t r = 0; r < rows; r++) {
        const double v = nb_get(b, r);
        if (dt == NB_F32)
            for (int64_t i = 0; i < len; i++) ((float *)dst)[r * len + i] = (float)v;
        else
            for (int64_t i = 0; i < len; i++) ((double *)dst)[r * len + i] = v;
    }
}

#define AT(p, off) ((const char *)(p) + (off) * j->es)
#define AT_MUT(p, off) ((char *)(p) + (off) * j->es)

/* y_n = W cols_n (+ b), one GEMM per group */
static void conv_fwd_sample(const conv_job *j, int64_t n, char *scratch) {
    int64_t rs;
    const char *cols = sample_cols(j, j->x, n, scratch, &rs);
    char *yn = AT_MUT(j->out->data, n * j->O * j->L);
    if (j->b) fill_rows(j->dt, yn, j->b, j->O, j->L);
    for (int64_t g = 0; g < j->q.G; g++)
        nb__gemm(j->dt, j->Og, j->L, j->K, AT(j->w->data, g * j->Og * j->K), j->K, 1, cols + g * j->K * rs * j->es, rs, 1,
                 j->b ? 1.0 : 0.0, AT_MUT(yn, g * j->Og * j->L), j->L, 1);
}

/* z_n = fold(W^T gy_n) (+ b); with direct columns W^T gy_n is z_n itself */
static void conv_bx_sample(const conv_job *j, int64_t n, char *scratch) {
    char *zn = AT_MUT(j->out->data, n * j->C * j->HW);
    const char *gn = AT(j->gy->data, n * j->O * j->L);
    const bool direct = direct_cols(j, j->out);
    char *cols = direct ? zn : scratch;
    for (int64_t g = 0; g < j->q.G; g++)
        nb__gemm(j->dt, j->K, j->L, j->Og, AT(j->w->data, g * j->Og * j->K), 1, j->K, AT(gn, g * j->Og * j->L), j->L, 1,
                 0.0, AT_MUT(cols, g * j->K * j->L), j->L, 1);
    if (!direct) {
        nb_tensor cs = {.dtype = j->dt, .ndim = 3, .shape = {1, j->C * j->q.win.kh * j->q.win.kw, j->L}, .data = cols};
        nb_tensor zs = {.dtype = j->dt, .ndim = 4, .shape = {1, j->C, j->q.H, j->q.W}, .data = zn};
        nb__contig_strides(3, cs.shape, cs.stride);
        nb__contig_strides(4, zs.shape, zs.stride);
        cs.numel = cs.shape[1] * j->L, zs.numel = j->C * j->HW;
        if (j->dt == NB_F32) fold_f32(&cs, &zs, j->q.win, j->q.OH, j->q.OW);
        else fold_f64(&cs, &zs, j->q.win, j->q.OH, j->q.OW);
    }
    if (j->b) /* bias after the fold: the sample is still in cache */
        for (int64_t c = 0; c < j->C; c++) {
            const double v = nb_get(j->b, c);
            for (int64_t i = 0; i < j->HW; i++)
                if (j->dt == NB_F32) ((float *)zn)[c * j->HW + i] += (float)v;
                else ((double *)zn)[c * j->HW + i] += v;
        }
}

/* chunk c of the weight gradient: sum over its samples of gy_n cols_n^T, per group */
static void conv_bw_chunk(const conv_job *j, int64_t c, char *scratch) {
    const int64_t lo = j->N * c / j->chunks, hi = j->N * (c + 1) / j->chunks;
    char *acc = c == 0 ? (char *)j->out->data : j->partial + (c - 1) * j->O * j->K * j->es;
    for (int64_t n = lo; n < hi; n++) {
        int64_t rs;
        const char *cols = sample_cols(j, j->x, n, scratch, &rs);
        const char *gn = AT(j->gy->data, n * j->O * j->L);
        for (int64_t g = 0; g < j->q.G; g++)
            nb__gemm(j->dt, j->Og, j->K, j->L, AT(gn, g * j->Og * j->L), j->L, 1, cols + g * j->K * rs * j->es, 1, rs,
                     n == lo ? 0.0 : 1.0, AT_MUT(acc, g * j->Og * j->K), j->K, 1);
    }
}
#undef AT
#undef AT_MUT

typedef void (*conv_item_fn)(const conv_job *j, int64_t item, char *scratch);

/* Threads over items when there are enough of them and the work pays for the threads; else
 * one item after another, each GEMM threaded by BLIS (outside any OpenMP region of ours). */
static int conv_threads(int64_t items, int64_t flops) {
    const int T = omp_get_max_threads();
    return T > 1 && items >= T && flops >= ((int64_t)1 << 20) && !omp_in_parallel() ? T : 1;
}
static void run_items(const conv_job *j, int64_t items, int threads, conv_item_fn f) {
    if (threads > 1) {
#pragma omp parallel num_threads(threads)
        {
            char *s = j->scratch + (size_t)omp_get_thread_num() * j->cols_bytes;
#pragma omp for schedule(static)
            for (int64_t i = 0; i < items; i++) f(j, i, s);
        }
    } else {
        for (int64_t i = 0; i < items; i++) f(j, i, j->scratch);
    }
}

/* The scratch of one call, in the arena above the output; released by finish_prim. */
static bool job_scratch(nb_ctx *ctx, conv_job *j, int threads, bool cols, size_t partial_bytes) {
    j->cols_bytes = cols ? (size_t)(j->C * j->q.win.kh * j->q.win.kw * j->L * j->es) : 0;
    const size_t total = (size_t)threads * j->cols_bytes + partial_bytes;
    char *p = total ? nb_ctx_alloc(ctx, total) : NULL;
    if (total && !p) return false;
    j->scratch = p;
    j->partial = p ? p + (size_t)threads * j->cols_bytes : NULL;
    return true;
}

/* Threads, scratch above the output (released by finish_prim at mark *m) and the items. */
static bool run_job(nb_ctx *ctx, conv_job *j, int64_t items, conv_item_fn f, const nb_tensor *cols_of,
                    size_t partial_bytes, nb_mark *m) {
    const int T = conv_threads(items, j->N * j->O * j->K * j->L);
    *m = nb_ctx_mark(ctx);
    if (!job_scratch(ctx, j, T, !direct_cols(j, cols_of), partial_bytes)) return false;
    run_items(j, items, T, f);
    return true;
}

/* ---- the implicit-GEMM forward and weight gradient (conv_gemm.c) ----------------------------
 * Used whenever BLIS's micro-kernel is available, except for a 1x1 window that reads the image
 * as its own columns (conv_fwd_sample's direct GEMM already packs nothing twice). Measured at
 * batch 64, 1 thread (AMD EPYC Zen5, skx kernels): forward 5.84 -> 4.77 ms for 32->64 at 14x14,
 * 4.71 -> 2.56 ms for 64->64 at 7x7, 0.86 -> 0.42 ms for 1->32 at 28x28. The weight gradient uses
 * the same packing (nb__conv_gemm_bw, conv_bw_prim), and so does the input gradient
 * (nb__conv_gemm_bx, conv_bx_prim: tiles of W^T gy added into dx while in cache, no column
 * matrix), where it packs gy's Og rows per position against the 2K per position that the
 * columns cost GEMM + fold (written, then read back): it is used when Og <= 2K. Below that
 * (the 1-channel stem, K = 9 against Og = 32) BLIS's small-matrix path reads gy unpacked and
 * GEMM + fold won (haswell kernels, thread CPU time: 0.95 against 1.23 ms). The flipped-kernel
 * forward (the input gradient of a stride-1 conv is a conv of gy) lost where C is small (1->32:
 * 1.1 -> 6.3 ms) and on 32->64 at 14x14 (6.4 -> 8.5 ms): its panels pack O*taps rows for C
 * outputs. */
static bool implicit_gemm(const conv_job *j, const nb_tensor *cols_of) {
    return !direct_cols(j, cols_of) && nb__conv_gemm_ok(j->dt);
}

/* The direct kernels (conv_direct.c) for windows larger than 1x1: against the implicit GEMM,
 * fwd + input grad + weight grad at batch 64, 1 thread, skx, thread CPU time: 16->16 at 28x28
 * 13.6 -> 4.9 ms, 32->32 at 14x14 10.4 -> 5.2, 32->64 at 14x14 14.8 -> 10.0, 1->32 at 28x28 3.7
 * -> 2.0, 16->32 3x3 stride 2 5.5-6.0 -> 4.2 (and 26.8 -> 10.4 ms for 16->16 built for AVX2 on
 * the haswell kernels). The input gradient computes
 * C output planes in blocks of 8 (AVX-512; 4 with AVX2): with fewer than 8 it lost to GEMM +
 * fold (1->16 at 28x28, batch 64, skx: 0.85 against 0.33 ms). A 1x1 window's forward and input
 * gradient stay on the GEMMs: one tap a channel leaves the direct loops short (16->32 stride 2:
 * forward 0.34 against 0.31 ms). Its weight gradient with a stride is direct (register blocks of
 * channels instead of taps; the phase copy is the strided gather the GEMM would pack): 16->32 at
 * 28x28 stride 2 0.50-0.61 -> 0.35-0.36 ms, 32->64 at 14x14 0.82 -> 0.39; equal from 64 channels
 * (64->128 at 32x32, 128->256 at 16x16, batch 32) and at stride 1, where the image is already
 * the GEMM's columns. */
static bool use_direct(const conv_job *j, nb_conv_part part) {
    const nb_window2d w = j->q.win;
    const bool input_grad = part == NB_CONV_BX;
    if (w.kh * w.kw == 1) return part == NB_CONV_BW && (w.sh > 1 || w.sw > 1) && nb__conv_direct_ok(j->dt, j->q.G, w, false);
    return nb__conv_direct_ok(j->dt, j->q.G, w, input_grad) && (!input_grad || j->C >= 8);
}

/* Winograd F(2x2, 3x3) (conv_wino.c) for all three parts of a 3x3 window with stride 1 (the
 * input gradient: its stride-1 correlation), where the correlation has 8 or more channels on
 * both sides (16 for the weight gradient). Against the direct kernel, batch 64, 1 thread,
 * thread CPU time, Zen 4 (skx build / AVX2 build), forward and input gradient: 16->16 at 28x28
 * 0.72 / 0.89 and 0.84 / 0.78; 32->32 at 14x14 0.61 / 0.68 and 0.58 / 0.56; 32->64 at 14x14
 * 0.55 / 0.64 and 0.67 / 0.65; ResNet-18 widths (batch 32, 64->64 at 32x32 to 512->512 at 4x4)
 * 0.52-0.64; 8->8 at 28x28 0.87-0.96; 16->8 at 28x28 1.00-1.06 / 0.92-0.98. Weight gradient:
 * 16->16 0.91 / 0.86, 32->32 0.66 / 0.77, 32->64 0.78 / 0.71, 16->32 at 28x28 0.86 / 0.78,
 * 64->64 at 32x32 0.48, 128->128 at 16x16 0.62, 256->256 at 8x8 0.35, 512->512 at 4x4 0.16
 * (batch 32); with 8 channels on a side 0.97-1.14 (its two transforms are paid per
 * tile for C + O channels against 16 C O multiply-adds). The f32 results differ from the direct
 * kernel's in the last bits (within the tests' f64 tolerances); they do not depend on the
 * thread count. */
static bool use_wino(const conv_job *j, nb_conv_part part) {
    const int64_t in = part == NB_CONV_BX ? j->O : j->C, out = part == NB_CONV_BX ? j->C : j->O;
    const int64_t least = part == NB_CONV_BW ? 16 : 8;
    return nb__conv_wino_ok(j->dt, j->q.G, j->q.win) && in >= least && out >= least;
}

/* out = the direct (or Winograd) kernel's part, its scratch above out (released by finish_prim
 * at *m) */
static bool run_direct(nb_ctx *ctx, const conv_job *j, nb_conv_part part, const nb_tensor *a, const nb_tensor *b,
                       nb_mark *m) {
    const int T = conv_threads(j->N, j->N * j->O * j->K * j->L);
    const bool wino = use_wino(j, part);
    *m = nb_ctx_mark(ctx);
    char *s = nb_ctx_alloc(ctx, wino ? nb__conv_wino_scratch(part, a, b, j->q.win, j->out, T)
                                     : nb__conv_direct_scratch(part, a, b, j->q.win, j->out, T));
    if (!s) return false;
    if (wino && nb__conv_wino(part, a, b, j->b, j->q.win, j->out, T, s)) return true;
    if (wino) { /* a NaN came out of the transforms (an inf or a huge value went in): the direct sum */
        nb_ctx_release(ctx, *m);
        if (!(s = nb_ctx_alloc(ctx, nb__conv_direct_scratch(part, a, b, j->q.win, j->out, T)))) return false;
    }
    nb__conv_direct(part, a, b, j->b, j->q.win, j->out, T, s);
    return true;
}

/* y (whose bias rows, if any, are filled here) = conv(x, w), scratch above y released by finish */
static bool run_igemm(nb_ctx *ctx, conv_job *j, const nb_tensor *x, const nb_tensor *w, const conv_geom *q,
                      nb_mark *m) {
    const int64_t taps = q->win.kh * q->win.kw;
    const int T = conv_threads(j->N * j->L / 32, j->N * j->O * j->K * j->L);
    *m = nb_ctx_mark(ctx);
    const size_t bytes = nb__conv_gemm_scratch(j->dt, j->O, j->C / q->G, q->G, taps, T);
    char *s = bytes ? nb_ctx_alloc(ctx, bytes) : NULL;
    if (!s) return false;
    if (j->b)
        for (int64_t n = 0; n < j->N; n++) fill_rows(j->dt, (char *)j->out->data + n * j->O * j->L * j->es, j->b, j->O, j->L);
    nb__conv_gemm(j->dt, x, w, q->G, q->win, q->OH, q->OW, j->b ? 1.0 : 0.0, j->out, T, s);
    return true;
}

static const nb_op OP_CONV, OP_CONV_BX, OP_CONV_BW;
static nb_tensor *conv_prim(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, const conv_geom *q);
static nb_tensor *conv_bx_prim(nb_ctx *ctx, nb_tensor *gy, nb_tensor *w, nb_tensor *b, const conv_geom *q);
static nb_tensor *conv_bw_prim(nb_ctx *ctx, nb_tensor *x, nb_tensor *gy, const conv_geom *q);

static nb_tensor *channel_sum(nb_ctx *ctx, nb_tensor *g) { return nb_sum(ctx, g, 3, (int[]){0, 2, 3}, false); }

static nb_status conv_rule(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    const conv_geom q = node_geom(n);
    if (n->in[0]->requires_grad) gin[0] = conv_bx_prim(ctx, g, n->in[1], NULL, &q);
    if (n->in[1]->requires_grad) gin[1] = conv_bw_prim(ctx, n->in[0], g, &q);
    if (n->n_in > 2 && n->in[2]->requires_grad) gin[2] = channel_sum(ctx, g);
    return NB_OK;
}
static nb_status conv_bx_rule(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    const conv_geom q = node_geom(n);
    if (n->in[0]->requires_grad) gin[0] = conv_prim(ctx, g, n->in[1], NULL, &q);
    if (n->in[1]->requires_grad) gin[1] = conv_bw_prim(ctx, g, n->in[0], &q);
    if (n->n_in > 2 && n->in[2]->requires_grad) gin[2] = channel_sum(ctx, g);
    return NB_OK;
}
static nb_status conv_bw_rule(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    const conv_geom q = node_geom(n);
    if (n->in[0]->requires_grad) gin[0] = conv_bx_prim(ctx, n->in[1], g, NULL, &q);
    if (n->in[1]->requires_grad) gin[1] = conv_prim(ctx, n->in[0], g, NULL, &q);
    return NB_OK;
}
static const nb_op OP_CONV = {"conv2d", conv_rule, NB_DIFFERENTIABLE},
                   OP_CONV_BX = {"conv2d_input_grad", conv_bx_rule, NB_DIFFERENTIABLE},
                   OP_CONV_BW = {"conv2d_weight_grad", conv_bw_rule, NB_DIFFERENTIABLE};

/* release the scratch, record the node */
static nb_tensor *finish_prim(nb_ctx *ctx, nb_mark m, const nb_op *op, nb_tensor *out, int n_in, nb_tensor **in,
                              const conv_geom *q) {
    nb_ctx_release(ctx, m);
    nb_node *n;
    out = nb__finish(ctx, op, out, n_in, in, &n);
    save_geom(n, q);
    return out;
}

/* A sum over nothing (no input channel, no output position, no sample): out is the bias, or
 * zeros; the kernels below assume something to sum. */
static void fill_empty(const conv_job *j, nb_tensor *out, const nb_tensor *b) {
    const int64_t N = out->shape[0], rows = out->shape[1], len = out->numel / (N * rows > 0 ? N * rows : 1);
    if (!b) nb__fill_kernel(out, 0.0);
    else
        for (int64_t n = 0; n < N; n++) fill_rows(j->dt, (char *)out->data + n * rows * len * j->es, b, rows, len);
}

/* x (N, C, H, W) any strides, w (O, C/G, kh, kw), b (O) or NULL -> (N, O, OH, OW) */
static nb_tensor *conv_prim(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, const conv_geom *q) {
    if (!x || !(w = nb_contiguous(ctx, w))) return NULL;
    conv_job j = make_job(q, x->dtype, x->shape[0], x->shape[1], w->shape[0]);
    nb_tensor *y = nb__new(ctx, x->dtype, NB_SHAPE(j.N, j.O, q->OH, q->OW));
    if (!y) return NULL;
    j.x = x, j.w = w, j.b = b, j.out = y;
    nb_mark m = nb_ctx_mark(ctx);
    if (j.K == 0 || j.L == 0 || j.N == 0 || j.O == 0) {
        fill_empty(&j, y, b);
    } else if (use_direct(&j, NB_CONV_FWD) || use_wino(&j, NB_CONV_FWD)) {
        if (!run_direct(ctx, &j, NB_CONV_FWD, x, w, &m)) return NULL;
    } else if (implicit_gemm(&j, x)) {
        if (!run_igemm(ctx, &j, x, w, q, &m)) return NULL;
    } else if (!run_job(ctx, &j, j.N, conv_fwd_sample, x, 0, &m)) {
        return NULL;
    }
    nb_tensor *in[3] = {x, w, b};
    return finish_prim(ctx, m, &OP_CONV, y, b ? 3 : 2, in, q);
}

/* gy (N, O, OH, OW), w (O, C/G, kh, kw), b (C) or NULL -> (N, C, H, W) */
static nb_tensor *conv_bx_prim(nb_ctx *ctx, nb_tensor *gy, nb_tensor *w, nb_tensor *b, const conv_geom *q) {
    if (!(gy = nb_contiguous(ctx, gy)) || !(w = nb_contiguous(ctx, w))) return NULL;
    conv_job j = make_job(q, gy->dtype, gy->shape[0], w->shape[1] * q->G, gy->shape[1]);
    nb_tensor *z = nb__new(ctx, gy->dtype, NB_SHAPE(j.N, j.C, q->H, q->W));
    if (!z) return NULL;
    j.gy = gy, j.w = w, j.b = b, j.out = z;
    nb_mark m = nb_ctx_mark(ctx);
    if (j.Og == 0 || j.L == 0 || j.N == 0 || j.C == 0 || j.HW == 0) {
        fill_empty(&j, z, b);
    } else if (use_direct(&j, NB_CONV_BX) || use_wino(&j, NB_CONV_BX)) {
        if (!run_direct(ctx, &j, NB_CONV_BX, gy, w, &m)) return NULL;
    } else if (implicit_gemm(&j, z) && j.Og <= 2 * j.K) {
        const int T = conv_threads(j.N * j.L / 32, j.N * j.O * j.K * j.L);
        m = nb_ctx_mark(ctx);
        const size_t bytes = nb__conv_gemm_bx_scratch(j.dt, j.O, j.Cg, q->G, q->win.kh * q->win.kw, T);
        char *s = bytes ? nb_ctx_alloc(ctx, bytes) : NULL;
        if (!s) return NULL;
        if (!b) nb__fill_kernel(z, 0.0); /* threaded: 3.2 MB for a 16-channel 28x28 batch of 64 */
        for (int64_t n = 0; b && n < j.N; n++) fill_rows(j.dt, (char *)z->data + n * j.C * j.HW * j.es, b, j.C, j.HW);
        nb__conv_gemm_bx(j.dt, gy, w, q->G, q->win, z, T, s);
    } else if (!run_job(ctx, &j, j.N, conv_bx_sample, z, 0, &m)) {
        return NULL;
    }
    nb_tensor *in[3] = {gy, w, b};
    return finish_prim(ctx, m, &OP_CONV_BX, z, b ? 3 : 2, in, q);
}

/* Chunks of the weight gradient's sum over samples: up to 8, fewer when the partial sums of a
 * large weight would pass 8 MiB (then each chunk's GEMMs are large enough to thread alone). */
static int64_t bw_chunks(const conv_job *j) {
    int64_t c = j->N < 8 ? j->N : 8;
    const int64_t wbytes = j->O * j->K * j->es;
    while (c > 1 && (c - 1) * wbytes > ((int64_t)8 << 20)) c--;
    return c > 0 ? c : 1;
}

/* x (N, C, H, W) any strides, gy (N, O, OH, OW) -> (O, C/G, kh, kw) */
static nb_tensor *conv_bw_prim(nb_ctx *ctx, nb_tensor *x, nb_tensor *gy, const conv_geom *q) {
    if (!x || !(gy = nb_contiguous(ctx, gy))) return NULL;
    conv_job j = make_job(q, x->dtype, x->shape[0], x->shape[1], gy->shape[1]);
    nb_tensor *gw = nb__new(ctx, x->dtype, NB_SHAPE(j.O, j.Cg, q->win.kh, q->win.kw));
    if (!gw) return NULL;
    j.x = x, j.gy = gy, j.out = gw;
    nb_mark m = nb_ctx_mark(ctx);
    if (j.N == 0 || j.L == 0 || j.O == 0 || j.K == 0) {
        fill_empty(&j, gw, NULL);
        nb_tensor *in[2] = {x, gy};
        return finish_prim(ctx, m, &OP_CONV_BW, gw, 2, in, q);
    }
    if (use_direct(&j, NB_CONV_BW) || use_wino(&j, NB_CONV_BW)) {
        if (!run_direct(ctx, &j, NB_CONV_BW, x, gy, &m)) return NULL;
        nb_tensor *in[2] = {x, gy};
        return finish_prim(ctx, m, &OP_CONV_BW, gw, 2, in, q);
    }
    if (implicit_gemm(&j, x)) {
        const int T = conv_threads(j.N * j.L / 32, j.N * j.O * j.K * j.L);
        m = nb_ctx_mark(ctx);
        const size_t bytes = nb__conv_gemm_bw_scratch(j.dt, j.O, j.Cg, q->G, q->win.kh * q->win.kw, T);
        char *s = bytes ? nb_ctx_alloc(ctx, bytes) : NULL;
        if (!s) return NULL;
        nb__conv_gemm_bw(j.dt, x, gy, q->G, q->win, gw, T, s);
        nb_tensor *in[2] = {x, gy};
        return finish_prim(ctx, m, &OP_CONV_BW, gw, 2, in, q);
    }
    j.chunks = bw_chunks(&j);
    if (j.N == 0) nb_fill(gw, 0.0);
    if (!run_job(ctx, &j, j.chunks, conv_bw_chunk, x, (size_t)((j.chunks - 1) * j.O * j.K * j.es), &m)) return NULL;
    const int64_t len = j.O * j.K; /* chunk 0 is gw itself; add the others in order */
    for (int64_t c = 1; c < j.chunks; c++) {
        if (j.dt == NB_F32) {
            float *d = gw->data;
            const float *s = (const float *)j.partial + (c - 1) * len;
            for (int64_t i = 0; i < len; i++) d[i] += s[i];
        } else {
            double *d = gw->data;
            const double *s = (const double *)j.partial + (c - 1) * len;
            for (int64_t i = 0; i < len; i++) d[i] += s[i];
        }
    }
    nb_tensor *in[2] = {x, gy};
    return finish_prim(ctx, m, &OP_CONV_BW, gw, 2, in, q);
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
    int64_t OH, OW;
    if (!nb__window_out(ctx, "conv2d", x, x->shape[2], x->shape[3], win, &OH, &OW)) return NULL;
    const conv_geom q = {win, G, x->shape[2], x->shape[3], OH, OW};
    return conv_prim(ctx, x, w, b, &q);
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
    const int64_t H = x->shape[2], W = x->shape[3], kh = w->shape[2], kw = w->shape[3];
    if (win.sh < 1 || win.sw < 1 || win.dh < 1 || win.dw < 1 || win.ph < 0 || win.pw < 0) {
        int64_t dummy;
        nb__window_out(ctx, "conv_transpose2d", x, H, W, win, &dummy, &dummy);
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
    /* the output must fit before its sizes are multiplied (an empty batch or channel list
     * leaves the plane itself to check) */
    int64_t numel;
    const int64_t C_out = w->shape[1] * G;
    if (!nb__size_ok(ctx, "conv_transpose2d", NB_SHAPE(x->shape[0], C_out, OH, OW), nb_dtype_size(x->dtype), &numel) ||
        !nb__size_ok(ctx, "conv_transpose2d", NB_SHAPE(OH, OW), nb_dtype_size(x->dtype), &numel))
        return NULL;
    /* the adjoint in x of a convolution over the (OH, OW) output, whose windows are x's pixels */
    const conv_geom q = {win, G, OH, OW, H, W};
    return conv_bx_prim(ctx, x, w, b, &q);
}
