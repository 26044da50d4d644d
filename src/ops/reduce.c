/* Reductions (sum, max/amax, min/amin as primitives; mean, var, logsumexp and p-norms composed),
 * softmax and log-softmax along an axis, argmax/argmin and max/min along an axis with their
 * indices, and sum_to (the inverse of broadcasting). prod is in scan.c. */
#include "../internal.h"

#include <omp.h>

bool nb__axes_mask(nb_ctx *ctx, const char *op, const nb_tensor *x, int naxes, const int *axes, unsigned *mask) {
    if (naxes == 0) {
        *mask = x->ndim ? (1u << x->ndim) - 1 : 0;
        return true;
    }
    if (naxes < 0) return nb__fail(ctx, NB_ERR_VALUE, "%s: naxes = %d is negative (0 means every axis)", op, naxes), false;
    if (!axes) return nb__fail(ctx, NB_ERR_NULL, "%s: axes list is NULL for naxes = %d", op, naxes), false;
    unsigned m = 0;
    for (int i = 0; i < naxes; i++) {
        if (x->ndim == 0 && (axes[i] == 0 || axes[i] == -1)) continue; /* a scalar's own axis, as torch: nothing to reduce */
        int a = nb__axis(axes[i], x->ndim);
        if (a < 0) {
            char b[128];
            return nb__fail(ctx, NB_ERR_AXIS, "%s: axis %d out of range for shape %s", op, axes[i], nb_shape_str(x, b, sizeof b)),
                   false;
        }
        if (m >> a & 1) return nb__fail(ctx, NB_ERR_AXIS, "%s: axis %d appears twice in the axes list", op, axes[i]), false;
        m |= 1u << a;
    }
    *mask = m;
    return true;
}

void nb__reduced_shape(const nb_tensor *x, unsigned mask, bool keepdim, int *ndim, int64_t *shape) {
    int n = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (mask >> d & 1) {
            if (keepdim) shape[n++] = 1;
        } else {
            shape[n++] = x->shape[d];
        }
    }
    *ndim = n;
}

/* ---- the reduction kernel ---------------------------------------------------------------- */
typedef struct {
    int kind;
    nb_dtype dt;
} red_arg;

/* acc (operand 0, stride 0 along reduced axes) op= x (operand 1), serially */
static void red_row(int64_t n, char **p, const int64_t *s, const void *argp) {
    const red_arg *A = argp;
#define RED_ROW(T)                                                                                   \
    {                                                                                                \
        T *o = (T *)p[0];                                                                            \
        const T *x = (const T *)p[1];                                                                \
        for (int64_t i = 0; i < n; i++) {                                                            \
            T v = x[i * s[1]], *a = &o[i * s[0]];                                                    \
            if (A->kind == NB_R_SUM) *a += v;                                                        \
            else if (A->kind == NB_R_MAX) *a = (v > *a || v != v) ? v : *a;                          \
            else *a = (v < *a || v != v) ? v : *a;                                                   \
        }                                                                                            \
    }
    if (A->dt == NB_F32) RED_ROW(float) else RED_ROW(double)
#undef RED_ROW
}

/* Sums of f(v[i]) in double. A chunk of at most SUM_CHUNK elements goes into 32 independent
 * accumulators (four vectors: one chain would cost an add latency per element, one vector of
 * eight still one per eight; under 256 elements, 8), combined pairwise in a fixed order; a
 * longer sum adds its chunks' sums in order, the chunks computed on threads when no team is
 * running. Same additions for any thread count. */
#define SUM_CHUNK 8192
#define SUM_ACC 32
static inline __attribute__((always_inline)) double sum_f32_chunk(const float *v, int64_t n, float (*f)(float)) {
    if (n < 8 * SUM_ACC) { /* a short row (a softmax's, a loss's): 8 accumulators, less set-up */
        double s[8] = {0};
        int64_t i = 0;
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) s[k] += f(v[i + k]);
        for (int k = 0; i < n; i++, k++) s[k] += f(v[i]);
        return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    }
    double s[SUM_ACC] = {0};
    int64_t i = 0;
    for (; i + SUM_ACC <= n; i += SUM_ACC)
        for (int k = 0; k < SUM_ACC; k++) s[k] += f(v[i + k]);
    for (int k = 0; i < n; i++, k++) s[k] += f(v[i]);
    for (int w = SUM_ACC / 2; w >= 1; w /= 2)
        for (int k = 0; k < w; k++) s[k] += s[k + w];
    return s[0];
}
static inline float ident_f32(float v) { return v; }
static inline float square_f32(float v) { return v * v; }
static inline float abs_f32(float v) { return fabsf(v); }
typedef enum { MAP_IDENT, MAP_SQUARE, MAP_ABS } sum_map_kind;
/* the map is a constant in each case, so that every chunk loop vectorizes (a function pointer
 * would not survive OpenMP's outlining of the parallel loop below) */
static double sum_f32_chunk_of(const float *v, int64_t n, sum_map_kind kind) {
    switch (kind) {
    case MAP_SQUARE: return sum_f32_chunk(v, n, square_f32);
    case MAP_ABS: return sum_f32_chunk(v, n, abs_f32);
    default: return sum_f32_chunk(v, n, ident_f32);
    }
}
static double sum_f32_map(const float *v, int64_t n, sum_map_kind kind) {
    if (n <= SUM_CHUNK) return sum_f32_chunk_of(v, n, kind);
    enum { GROUP = 64 }; /* chunk sums kept at a time */
    const int64_t nc = (n + SUM_CHUNK - 1) / SUM_CHUNK;
    double total = 0.0, part[GROUP];
    for (int64_t c0 = 0; c0 < nc; c0 += GROUP) {
        const int64_t c1 = nc - c0 < GROUP ? nc : c0 + GROUP;
#pragma omp parallel for if (n >= 4 * NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)
        for (int64_t c = c0; c < c1; c++) {
            const int64_t s = c * SUM_CHUNK, len = n - s < SUM_CHUNK ? n - s : SUM_CHUNK;
            part[c - c0] = sum_f32_chunk_of(v + s, len, kind);
        }
        for (int64_t c = c0; c < c1; c++) total += part[c - c0];
    }
    return total;
}
static double sum_f32_unit(const float *v, int64_t n) { return sum_f32_map(v, n, MAP_IDENT); }
static double sum_f32_strided(const float *v, int64_t n, int64_t is) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += v[i * is];
    return s;
}

/* One output of a reduction whose innermost axis is reduced: the reduced axes as rows of `inner`
 * elements with stride `is`, outer reduced axes rshape/rstride[0 .. nr-1), kept axes kd[0 .. nk) */
typedef struct {
    const nb_tensor *x, *out;
    nb_reduce_kind kind;
    double ident;
    int nk, nr;
    int64_t inner, is, nrows;
    int kd[NB_MAX_DIMS];
    int64_t rshape[NB_MAX_DIMS], rstride[NB_MAX_DIMS];
} reduce_plan;

static void reduce_out(const reduce_plan *pl, int64_t o) {
    const nb_tensor *x = pl->x;
    const nb_reduce_kind kind = pl->kind;
    const int64_t inner = pl->inner, is = pl->is;
    const size_t es = nb_dtype_size(x->dtype);
    int64_t rem = o, base = 0;
    for (int k = pl->nk - 1; k >= 0; k--) {
        base += (rem % x->shape[pl->kd[k]]) * x->stride[pl->kd[k]];
        rem /= x->shape[pl->kd[k]];
    }
    double acc = pl->ident;
    for (int64_t r = 0; r < pl->nrows; r++) {
        int64_t rr = r, off = base;
        for (int k = pl->nr - 2; k >= 0; k--) {
            off += (rr % pl->rshape[k]) * pl->rstride[k];
            rr /= pl->rshape[k];
        }
        const char *p = (const char *)x->data + off * (int64_t)es;
        if (x->dtype == NB_F32) {
            const float *v = (const float *)p;
            if (kind == NB_R_SUM) {
                acc += is == 1 ? sum_f32_unit(v, inner) : sum_f32_strided(v, inner, is);
            } else {
                for (int64_t i = 0; i < inner; i++) {
                    double u = v[i * is];
                    if (kind == NB_R_MAX ? (u > acc || u != u) : (u < acc || u != u)) acc = u;
                }
            }
        } else {
            const double *v = (const double *)p;
            if (kind == NB_R_SUM) {
                double s = 0;
                for (int64_t i = 0; i < inner; i++) s += v[i * is];
                acc += s;
            } else {
                for (int64_t i = 0; i < inner; i++) {
                    double u = v[i * is];
                    if (kind == NB_R_MAX ? (u > acc || u != u) : (u < acc || u != u)) acc = u;
                }
            }
        }
    }
    if (pl->out->dtype == NB_F32) ((float *)pl->out->data)[o] = (float)acc;
    else ((double *)pl->out->data)[o] = acc;
}

static void reduce_kernel(nb_reduce_kind kind, const nb_tensor *x, unsigned mask, nb_tensor *out) {
    const double ident = kind == NB_R_SUM ? 0.0 : (kind == NB_R_MAX ? -INFINITY : INFINITY);
    const int nd = x->ndim;
    if (nd > 0 && !(mask >> (nd - 1) & 1)) {
        /* innermost axis kept: stream over x in memory order, accumulating rows into out */
        nb_fill(out, ident);
        nb_tensor ov = *out;
        ov.ndim = nd;
        int64_t os[NB_MAX_DIMS];
        nb__contig_strides(out->ndim, out->shape, os);
        for (int d = 0; d < nd; d++) {  /* out is keepdim-shaped: same rank as x */
            ov.shape[d] = x->shape[d];
            ov.stride[d] = (mask >> d & 1) ? 0 : os[d];
        }
        nb_iter it;
        const nb_tensor *ts[2] = {&ov, x};
        nb__iter_init(&it, nd, x->shape, 2, ts);
        red_arg a = {kind, x->dtype};
        /* serial: rows of different threads would add into the same outputs */
        nb__iter_run_serial(&it, red_row, &a);
        return;
    }
    /* innermost axis reduced: each output is one independent loop over the reduced axes */
    int nr = 0, kd[NB_MAX_DIMS], nk = 0;
    int64_t rshape[NB_MAX_DIMS], rstride[NB_MAX_DIMS];
    for (int d = 0; d < nd; d++) {
        if (mask >> d & 1) {
            if (nr > 0 && rstride[nr - 1] == x->stride[d] * x->shape[d]) {  /* merge with the outer one */
                rshape[nr - 1] *= x->shape[d];
                rstride[nr - 1] = x->stride[d];
            } else {
                rshape[nr] = x->shape[d];
                rstride[nr] = x->stride[d];
                nr++;
            }
        } else {
            kd[nk++] = d;
        }
    }
    reduce_plan pl = {.x = x, .out = out, .kind = kind, .ident = ident, .nk = nk, .nr = nr,
                      .inner = nr ? rshape[nr - 1] : 1, .is = nr ? rstride[nr - 1] : 0,
                      .nrows = nr ? nb__numel(nr - 1, rshape) : 1};
    memcpy(pl.kd, kd, sizeof kd), memcpy(pl.rshape, rshape, sizeof rshape), memcpy(pl.rstride, rstride, sizeof rstride);
    const int64_t nout = out->numel;
    if (nout == 1) { /* no region around it: a long sum may use the threads itself */
        reduce_out(&pl, 0);
        return;
    }
#pragma omp parallel for if (x->numel >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)
    for (int64_t o = 0; o < nout; o++) reduce_out(&pl, o);
}

/* gradient of a reduced tensor, stretched back over x's shape */
static nb_tensor *stretch(nb_ctx *ctx, nb_tensor *g, const nb_node *n) {
    nb_tensor *x = n->in[0];
    int kn;
    int64_t ks[NB_MAX_DIMS];
    nb__reduced_shape(x, (unsigned)n->iattr[0], true, &kn, ks);
    return nb_expand(ctx, nb_reshape(ctx, g, kn, ks), x->ndim, x->shape);
}

static nb_status sum_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = stretch(ctx, g, n);
    return NB_OK;
}
static nb_status extremum_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    nb_tensor *x = n->in[0];
    nb_tensor *hit;  /* 1 where x equals its reduction's value: a constant */
    NB_NO_GRAD(ctx) { hit = nb_eq(ctx, x, stretch(ctx, n->out, n)); }
    int axes[NB_MAX_DIMS], na = 0;
    for (int d = 0; d < x->ndim; d++)
        if (n->iattr[0] >> d & 1) axes[na++] = d;
    nb_tensor *share = nb_div(ctx, hit, nb_sum(ctx, hit, na, axes, true));
    gin[0] = nb_mul(ctx, stretch(ctx, g, n), share);
    return NB_OK;
}
static const nb_op OP_SUM = {"sum", sum_bw, NB_DIFFERENTIABLE}, OP_MAX = {"max", extremum_bw, NB_DIFFERENTIABLE},
                   OP_MIN = {"min", extremum_bw, NB_DIFFERENTIABLE}, OP_AMAX = {"amax", extremum_bw, NB_DIFFERENTIABLE},
                   OP_AMIN = {"amin", extremum_bw, NB_DIFFERENTIABLE};

static nb_tensor *reduce(nb_ctx *ctx, const nb_op *op, nb_reduce_kind kind, nb_tensor *x, int naxes, const int *axes,
                         bool keepdim) {
    if (nb__null(ctx, op->name, 1, x)) return NULL;
    if (x->dtype == NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "%s: expected f32 or f64, got i64", op->name);
    unsigned mask;
    if (!nb__axes_mask(ctx, op->name, x, naxes, axes, &mask)) return NULL;
    if (kind != NB_R_SUM)
        for (int d = 0; d < x->ndim; d++)
            if ((mask >> d & 1) && x->shape[d] == 0) {
                char b[128];
                return nb__fail(ctx, NB_ERR_SHAPE, "%s: cannot reduce over an empty axis %d of %s", op->name, d,
                                nb_shape_str(x, b, sizeof b));
            }
    int kn, on;
    int64_t ks[NB_MAX_DIMS], os[NB_MAX_DIMS];
    nb__reduced_shape(x, mask, true, &kn, ks);
    nb__reduced_shape(x, mask, keepdim, &on, os);
    nb_tensor *out = nb__new(ctx, x->dtype, on, os);
    if (!out) return NULL;
    nb_tensor kv = *out;  /* keepdim-shaped alias for the kernel */
    kv.ndim = kn;
    for (int d = 0; d < kn; d++) kv.shape[d] = ks[d];
    nb__contig_strides(kn, ks, kv.stride);
    reduce_kernel(kind, x, mask, &kv);
    nb_node *n;
    out = nb__finish(ctx, op, out, 1, &x, &n);
    if (n) n->iattr[0] = mask, n->iattr[1] = keepdim;
    return out;
}

nb_tensor *nb_sum(nb_ctx *ctx, nb_tensor *x, int naxes, const int *axes, bool keepdim) {
    return reduce(ctx, &OP_SUM, NB_R_SUM, x, naxes, axes, keepdim);
}
nb_tensor *nb_max(nb_ctx *ctx, nb_tensor *x, int naxes, const int *axes, bool keepdim) {
    return reduce(ctx, &OP_MAX, NB_R_MAX, x, naxes, axes, keepdim);
}
nb_tensor *nb_min(nb_ctx *ctx, nb_tensor *x, int naxes, const int *axes, bool keepdim) {
    return reduce(ctx, &OP_MIN, NB_R_MIN, x, naxes, axes, keepdim);
}
nb_tensor *nb_amax(nb_ctx *ctx, nb_tensor *x, int naxes, const int *axes, bool keepdim) {
    return reduce(ctx, &OP_AMAX, NB_R_MAX, x, naxes, axes, keepdim);
}
nb_tensor *nb_amin(nb_ctx *ctx, nb_tensor *x, int naxes, const int *axes, bool keepdim) {
    return reduce(ctx, &OP_AMIN, NB_R_MIN, x, naxes, axes, keepdim);
}
/* checks under the name the user called, before the general op does the work */
static bool all_ok(nb_ctx *ctx, const char *op, const nb_tensor *x) {
    if (nb__null(ctx, op, 1, x)) return false;
    if (x->dtype == NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "%s: expected f32 or f64, got i64", op), false;
    return true;
}

nb_tensor *nb_sum_all(nb_ctx *ctx, nb_tensor *x) { return all_ok(ctx, "sum_all", x) ? nb_sum(ctx, x, 0, NULL, false) : NULL; }

/* ---- sum(x^2) and sum(|x|) over all of x in one pass each way (the penalties' terms) -------- */
/* The forward adds exactly what nb_sum_all(nb_mul(x, x)) / nb_sum_all(nb_abs(x)) add, in the
 * same order, and the backward gives the bits of those compositions' rules, g * (2 x + 0) and
 * g * sign(x): one pass instead of two each way and no x^2 / |x| tensor. */
static double sum_map_kernel(const nb_tensor *x, bool square) { /* x contiguous */
    const int64_t n = x->numel;
    if (x->dtype == NB_F32) return 0.0 + sum_f32_map(x->data, n, square ? MAP_SQUARE : MAP_ABS);
    const double *v = x->data;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += square ? v[i] * v[i] : fabs(v[i]);
    return 0.0 + s;
}
/* the backward with g (0-d) a constant, folded into the one pass */
NB_UNARY_KERNEL(square_grad, p0 * ((T)2 * v + (T)0)) /* as mul's rule for x * x: g * mul_scalar(x, 2) */
NB_UNARY_KERNEL(abs_grad, p0 * (v > 0 ? (T)1 : (v < 0 ? (T)-1 : v))) /* as abs's: g * sign(x) */
static const nb_unary_def SQUARE_GRAD = {{"sum_sq_backward", NULL, NB_NOT_DIFFERENTIABLE}, square_grad_f32, square_grad_f64},
                          ABS_GRAD = {{"sum_abs_backward", NULL, NB_NOT_DIFFERENTIABLE}, abs_grad_f32, abs_grad_f64};

static nb_status sum_map_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    nb_tensor *x = n->in[0];
    const bool square = n->iattr[0];
    const double gv = nb_item(g);
    if (nb_ctx_grad_enabled(ctx) || !isfinite(gv)) /* create_graph: a graph term */
        gin[0] = nb_mul(ctx, g, square ? nb_mul_scalar(ctx, x, 2.0) : nb_sign(ctx, x));
    else if (!nb__defer_leaf_term(ctx, x, square, gv)) /* a parameter's penalty: into .grad at the end */
        gin[0] = nb__unary(ctx, square ? &SQUARE_GRAD : &ABS_GRAD, x, gv, 0);
    return NB_OK;
}

/* The kept-back terms of a leaf (nb__defer_leaf_term), each with the bits of the kernels above,
 * summed in the order the walk gave them (as the engine would have summed the tensors). Each
 * term is rounded before it is added, as a tensor would be: no multiply-add contraction; the
 * additions grouped as the engine's (nb__leaf_terms_add in internal.h). */
#if defined(__clang__)
#define NO_CONTRACT
#define NO_CONTRACT_BODY _Pragma("clang fp contract(off)")
#else
#define NO_CONTRACT __attribute__((optimize("fp-contract=off")))
#define NO_CONTRACT_BODY
#endif
typedef struct {
    int n;
    const nb_leaf_term *term;
    bool grouped;
} leaf_terms_args;
#define LEAF_TERMS_ROWS(T, SUF)                                                                        \
    static inline NO_CONTRACT T leaf_term_##SUF(const nb_leaf_term *t, T v) {                          \
        return t->square ? square_grad_scalar_##SUF(v, (T)t->c, 0) : abs_grad_scalar_##SUF(v, (T)t->c, 0); \
    }                                                                                                  \
    static NO_CONTRACT void leaf_terms_##SUF(int64_t n, char **p, const int64_t *s, const void *arg) { \
        NO_CONTRACT_BODY                                                                               \
        const leaf_terms_args *a = arg;                                                                \
        T *restrict d = (T *)p[0];                                                                     \
        const T *restrict x = (const T *)p[1];                                                         \
        if (a->n == 1 && a->term[0].square && s[0] == 1 && s[1] == 1) { /* an L2 penalty: vectorizes */ \
            const T c = (T)a->term[0].c;                                                               \
            for (int64_t i = 0; i < n; i++) d[i] += square_grad_scalar_##SUF(x[i], c, 0);              \
            return;                                                                                    \
        }                                                                                              \
        for (int64_t i = 0; i < n; i++) {                                                              \
            const T v = x[i * s[1]];                                                                   \
            if (a->grouped) { /* g + (t0 + t1 + ...) */                                                \
                T sum = leaf_term_##SUF(&a->term[0], v);                                               \
                for (int k = 1; k < a->n; k++) sum += leaf_term_##SUF(&a->term[k], v);                 \
                d[i * s[0]] += sum;                                                                    \
            } else { /* ((g + t0) + t1) + ... */                                                       \
                T sum = d[i * s[0]];                                                                   \
                for (int k = 0; k < a->n; k++) sum += leaf_term_##SUF(&a->term[k], v);                 \
                d[i * s[0]] = sum;                                                                     \
            }                                                                                          \
        }                                                                                              \
    }
LEAF_TERMS_ROWS(float, f32)
LEAF_TERMS_ROWS(double, f64)
#undef LEAF_TERMS_ROWS
#undef NO_CONTRACT
#undef NO_CONTRACT_BODY

void nb__leaf_terms_add(nb_tensor *dst, const nb_tensor *x, int nterms, const nb_leaf_term *term, bool grouped) {
    const leaf_terms_args a = {nterms, term, grouped};
    nb_iter it;
    const nb_tensor *ts[2] = {dst, x};
    nb__iter_init(&it, dst->ndim, dst->shape, 2, ts);
    nb__iter_run(&it, dst->dtype == NB_F32 ? leaf_terms_f32 : leaf_terms_f64, &a);
}
static const nb_op OP_SUM_SQ = {"sum_sq", sum_map_bw, NB_DIFFERENTIABLE}, OP_SUM_ABS = {"sum_abs", sum_map_bw, NB_DIFFERENTIABLE};

static nb_tensor *sum_map(nb_ctx *ctx, nb_tensor *x, bool square) {
    const nb_op *op = square ? &OP_SUM_SQ : &OP_SUM_ABS;
    if (!all_ok(ctx, op->name, x)) return NULL;
    if (!nb_is_contiguous(x) && !(x = nb_contiguous(ctx, x))) return NULL;
    nb_tensor *out = nb__new(ctx, x->dtype, 0, NULL);
    if (!out) return NULL;
    nb_set(out, 0, sum_map_kernel(x, square));
    nb_node *n;
    out = nb__finish(ctx, op, out, 1, &x, &n);
    if (n) n->iattr[0] = square;
    return out;
}
nb_tensor *nb__sum_sq(nb_ctx *ctx, nb_tensor *x) { return sum_map(ctx, x, true); }
nb_tensor *nb__sum_abs(nb_ctx *ctx, nb_tensor *x) { return sum_map(ctx, x, false); }

static int64_t reduced_count(const nb_tensor *x, unsigned mask) {
    int64_t c = 1;
    for (int d = 0; d < x->ndim; d++)
        if (mask >> d & 1) c *= x->shape[d];
    return c;
}

nb_tensor *nb_mean(nb_ctx *ctx, nb_tensor *x, int naxes, const int *axes, bool keepdim) {
    unsigned mask;
    if (nb__null(ctx, "mean", 1, x) || !nb__axes_mask(ctx, "mean", x, naxes, axes, &mask)) return NULL;
    int64_t c = reduced_count(x, mask);
    if (c == 0) /* like PyTorch: the mean of nothing is NaN (0/0), not an error */
        return nb_div(ctx, nb_sum(ctx, x, naxes, axes, keepdim), nb_scalar(ctx, x->dtype, 0.0));
    return nb_mul_scalar(ctx, nb_sum(ctx, x, naxes, axes, keepdim), 1.0 / (double)c);
}
nb_tensor *nb_mean_all(nb_ctx *ctx, nb_tensor *x) { return all_ok(ctx, "mean_all", x) ? nb_mean(ctx, x, 0, NULL, false) : NULL; }

nb_tensor *nb_var(nb_ctx *ctx, nb_tensor *x, int naxes, const int *axes, int correction, bool keepdim) {
    unsigned mask;
    if (nb__null(ctx, "var", 1, x) || !nb__axes_mask(ctx, "var", x, naxes, axes, &mask)) return NULL;
    int64_t c = reduced_count(x, mask);
    nb_tensor *d = nb_sub(ctx, x, nb_mean(ctx, x, naxes, axes, true));
    nb_tensor *ss = nb_sum(ctx, nb_mul(ctx, d, d), naxes, axes, keepdim);
    if (c - correction <= 0) /* no degrees of freedom: divided by 0 (inf, or NaN for 0/0), as torch */
        return nb_div(ctx, ss, nb_scalar(ctx, x->dtype, 0.0));
    return nb_mul_scalar(ctx, ss, 1.0 / (double)(c - correction)); /* a negative correction divides by more */
}

nb_tensor *nb_logsumexp(nb_ctx *ctx, nb_tensor *x, int naxes, const int *axes, bool keepdim) {
    unsigned mask;
    if (nb__null(ctx, "logsumexp", 1, x) || !nb__axes_mask(ctx, "logsumexp", x, naxes, axes, &mask)) return NULL;
    if (reduced_count(x, mask) == 0) /* log of an empty sum: -inf, as torch's */
        return nb_log(ctx, nb_sum(ctx, nb_exp(ctx, x), naxes, axes, keepdim));
    nb_tensor *m;  /* the shift is a constant: the gradient of the result does not depend on it */
    NB_NO_GRAD(ctx) {
        m = nb_max(ctx, x, naxes, axes, true);
        for (int64_t i = 0; m && i < m->numel; i++)  /* all -inf (or +inf) rows: shift by 0 */
            if (!isfinite(nb_get(m, i))) nb_set(m, i, 0.0);
    }
    nb_tensor *r = nb_add(ctx, nb_log(ctx, nb_sum(ctx, nb_exp(ctx, nb_sub(ctx, x, m)), naxes, axes, true)), m);
    if (!r || keepdim) return r;
    int on;
    int64_t os[NB_MAX_DIMS];
    nb__reduced_shape(x, mask, false, &on, os);
    return nb_reshape(ctx, r, on, os);
}

void nb__sum_to_into(nb_tensor *dst, const nb_tensor *x) {
    const int lead = x->ndim - dst->ndim;
    unsigned mask = 0;
    for (int d = 0; d < x->ndim; d++)
        if (d < lead || (dst->shape[d - lead] == 1 && x->shape[d] != 1)) mask |= 1u << d;
    nb_tensor kv = *dst; /* keepdim-shaped alias of dst, as nb_sum's */
    nb__reduced_shape(x, mask, true, &kv.ndim, kv.shape);
    nb__contig_strides(kv.ndim, kv.shape, kv.stride);
    reduce_kernel(NB_R_SUM, x, mask, &kv);
}

bool nb__sums_to(const nb_tensor *x, int ndim, const int64_t *shape) {
    int nd;
    int64_t bs[NB_MAX_DIMS];
    return ndim <= x->ndim && (ndim == 0 || shape) && nb__broadcast_shape(x->ndim, x->shape, ndim, shape, &nd, bs) &&
           nd == x->ndim && nb__numel(nd, bs) == x->numel;
}

nb_tensor *nb_sum_to(nb_ctx *ctx, nb_tensor *x, int ndim, const int64_t *shape) {
    if (nb__null(ctx, "sum_to", 1, x)) return NULL;
    if (!nb__sums_to(x, ndim, shape)) {
        char a[128], b[128];
        return nb__fail(ctx, NB_ERR_SHAPE, "sum_to: %s cannot be summed to %s", nb_shape_str(x, a, sizeof a),
                        nb__dims_str(ndim, shape, b, sizeof b));
    }
    int axes[NB_MAX_DIMS], na = 0, lead = x->ndim - ndim;
    for (int d = 0; d < x->ndim; d++)
        if (d < lead || (shape[d - lead] == 1 && x->shape[d] != 1)) axes[na++] = d;
    if (na == 0) return ndim == x->ndim ? x : nb_reshape(ctx, x, ndim, shape);
    return nb_reshape(ctx, nb_sum(ctx, x, na, axes, true), ndim, shape);
}

/* ---- softmax family ------------------------------------------------------------------------ */
#define DEFINE_SOFTMAX_LINE(T, SUF)                                                                    \
    static void softmax_line_##SUF(int64_t len, const char *xp, int64_t xs, char *op, int64_t os,      \
                                   const void *arg) {                                                  \
        const bool logp = *(const bool *)arg;                                                          \
        const T *x = (const T *)xp;                                                                    \
        T *o = (T *)op;                                                                                \
        T m = -INFINITY;                                                                               \
        for (int64_t i = 0; i < len; i++)                                                              \
            if (x[i * xs] > m) m = x[i * xs];                                                          \
        if (m == -INFINITY) m = 0; /* all -inf: no shift; a +inf makes the row NaN, as torch's */      \
        double s = 0;                                                                                  \
        for (int64_t i = 0; i < len; i++) s += exp((double)(x[i * xs] - m));                           \
        if (logp) { /* (x - m) - log s: x - (m + log s) lost the f32 bits of m (logits ~1e4) */       \
            const double ls = log(s);                                                                  \
            for (int64_t i = 0; i < len; i++) o[i * os] = (T)(((double)x[i * xs] - (double)m) - ls);   \
        } else {                                                                                       \
            T inv = (T)(1.0 / s);                                                                      \
            for (int64_t i = 0; i < len; i++) o[i * os] = (T)exp((double)(x[i * xs] - m)) * inv;       \
        }                                                                                              \
    }
DEFINE_SOFTMAX_LINE(float, f32)
DEFINE_SOFTMAX_LINE(double, f64)

static nb_status log_softmax_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    int axis = (int)n->iattr[0];
    gin[0] = nb_sub(ctx, g, nb_mul(ctx, nb_exp(ctx, n->out), nb_sum(ctx, g, 1, &axis, true)));
    return NB_OK;
}
static nb_status softmax_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    int axis = (int)n->iattr[0];
    nb_tensor *y = n->out;
    gin[0] = nb_mul(ctx, y, nb_sub(ctx, g, nb_sum(ctx, nb_mul(ctx, g, y), 1, &axis, true)));
    return NB_OK;
}
static const nb_op OP_LOG_SOFTMAX = {"log_softmax", log_softmax_bw, NB_DIFFERENTIABLE}, OP_SOFTMAX = {"softmax", softmax_bw, NB_DIFFERENTIABLE};

static nb_tensor *softmax_op(nb_ctx *ctx, const nb_op *op, nb_tensor *x, int axis, bool logp) {
    if (nb__null(ctx, op->name, 1, x)) return NULL;
    if (x->dtype == NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "%s: expected f32 or f64, got i64", op->name);
    int a = nb__axis(axis, x->ndim);
    if (a < 0) {
        char b[128];
        return nb__fail(ctx, NB_ERR_AXIS, "%s: axis %d out of range for shape %s", op->name, axis, nb_shape_str(x, b, sizeof b));
    }
    nb_tensor *out = nb__new(ctx, x->dtype, x->ndim, x->shape);
    if (!out) return NULL;
    nb__lines(x, out, a, x->dtype == NB_F32 ? softmax_line_f32 : softmax_line_f64, &logp);
    nb_node *n;
    out = nb__finish(ctx, op, out, 1, &x, &n);
    if (n) n->iattr[0] = a;
    return out;
}
nb_tensor *nb_log_softmax(nb_ctx *ctx, nb_tensor *x, int axis) { return softmax_op(ctx, &OP_LOG_SOFTMAX, x, axis, true); }
nb_tensor *nb_softmax(nb_ctx *ctx, nb_tensor *x, int axis) { return softmax_op(ctx, &OP_SOFTMAX, x, axis, false); }

/* ---- argmax / argmin and max / min along an axis with their indices ------------------------------ */
/* the first index of the extremum; a NaN counts as the extremum (the first NaN wins), as in PyTorch */
static void argext_line(int64_t len, const char *xp, int64_t xs, char *op, int64_t os, const void *arg) {
    (void)os;
    const bool f32 = ((const bool *)arg)[0], min = ((const bool *)arg)[1];
    int64_t best = 0;
    double bv = min ? INFINITY : -INFINITY;
    for (int64_t i = 0; i < len; i++) {
        double v = f32 ? ((const float *)xp)[i * xs] : ((const double *)xp)[i * xs];
        if ((min ? v < bv : v > bv) || (v != v && bv == bv)) bv = v, best = i;
    }
    *(int64_t *)op = best;
}

static nb_tensor *argext(nb_ctx *ctx, const char *op, nb_tensor *x, int axis, bool keepdim, bool min) {
    if (nb__null(ctx, op, 1, x)) return NULL;
    if (x->dtype == NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "%s: expected f32 or f64, got i64", op);
    int a = nb__axis(axis, x->ndim);
    if (a < 0 || x->shape[a] == 0) {
        char b[128];
        return nb__fail(ctx, a < 0 ? NB_ERR_AXIS : NB_ERR_SHAPE, "%s: axis %d invalid for shape %s", op, axis,
                        nb_shape_str(x, b, sizeof b));
    }
    int kn, on;
    int64_t ks[NB_MAX_DIMS], os[NB_MAX_DIMS];
    nb__reduced_shape(x, 1u << a, true, &kn, ks);
    nb__reduced_shape(x, 1u << a, keepdim, &on, os);
    nb_tensor *out = nb__new(ctx, NB_I64, kn, ks);
    if (!out) return NULL;
    const bool arg[2] = {x->dtype == NB_F32, min};
    nb__lines(x, out, a, argext_line, arg);
    out->ndim = on;
    for (int d = 0; d < on; d++) out->shape[d] = os[d];
    nb__contig_strides(on, os, out->stride);
    return out;
}
nb_tensor *nb_argmax(nb_ctx *ctx, nb_tensor *x, int axis, bool keepdim) { return argext(ctx, "argmax", x, axis, keepdim, false); }
nb_tensor *nb_argmin(nb_ctx *ctx, nb_tensor *x, int axis, bool keepdim) { return argext(ctx, "argmin", x, axis, keepdim, true); }

/* torch.max(x, dim): the values are gathered at the index, so the gradient goes to it alone */
static nb_tensor *ext_dim(nb_ctx *ctx, const char *op, nb_tensor *x, int axis, bool keepdim, nb_tensor **indices, bool min) {
    if (indices) *indices = NULL;
    nb_tensor *idx = argext(ctx, op, x, axis, true, min);
    if (!idx) return NULL;
    nb_tensor *v = nb_gather(ctx, x, axis, idx);
    if (!keepdim) {
        v = nb_squeeze(ctx, v, axis);
        idx = nb_squeeze(ctx, idx, axis);
    }
    if (indices) *indices = v ? idx : NULL;
    return v;
}
nb_tensor *nb_max_dim(nb_ctx *ctx, nb_tensor *x, int axis, bool keepdim, nb_tensor **indices) {
    return ext_dim(ctx, "max_dim", x, axis, keepdim, indices, false);
}
nb_tensor *nb_min_dim(nb_ctx *ctx, nb_tensor *x, int axis, bool keepdim, nb_tensor **indices) {
    return ext_dim(ctx, "min_dim", x, axis, keepdim, indices, true);
}

/* ---- p-norms ------------------------------------------------------------------------------- */
/* t^e where t != 0, `at_zero` where t == 0, with a zero gradient there (PyTorch's subgradient):
 * the power is taken of a masked copy, so no inf * 0 reaches the gradient */
static nb_tensor *pow_off_zero(nb_ctx *ctx, nb_tensor *t, double e, double at_zero) {
    if (!t) return NULL;
    nb_tensor *zero = nb_eq(ctx, t, nb_scalar(ctx, t->dtype, 0.0));
    nb_tensor *safe = nb_where(ctx, zero, nb_scalar(ctx, t->dtype, 1.0), t);
    return nb_where(ctx, zero, nb_scalar(ctx, t->dtype, at_zero), nb_pow_scalar(ctx, safe, e));
}

nb_tensor *nb_norm(nb_ctx *ctx, nb_tensor *x, double p, int naxes, const int *axes, bool keepdim) {
    unsigned mask;
    if (nb__null(ctx, "norm", 1, x)) return NULL;
    if (x->dtype == NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "norm: expected f32 or f64, got i64");
    if (isnan(p)) return nb__fail(ctx, NB_ERR_VALUE, "norm: p is NaN");
    if (!nb__axes_mask(ctx, "norm", x, naxes, axes, &mask)) return NULL;
    if (isinf(p) && reduced_count(x, mask) == 0) {
        char b[128];
        return nb__fail(ctx, NB_ERR_SHAPE, "norm: the %s norm of the empty reduction of %s is undefined", p > 0 ? "inf" : "-inf",
                        nb_shape_str(x, b, sizeof b));
    }
    if (p == 0) return nb_sum(ctx, nb_ne(ctx, x, nb_scalar(ctx, x->dtype, 0.0)), naxes, axes, keepdim); /* a count: no grad */
    if (p == 1) return nb_sum(ctx, nb_abs(ctx, x), naxes, axes, keepdim);
    if (isinf(p)) return (p > 0 ? nb_amax : nb_amin)(ctx, nb_abs(ctx, x), naxes, axes, keepdim);
    nb_tensor *t = p == 2 ? nb_square(ctx, x) : nb_abs(ctx, x);
    if (p != 2) t = p < 1 ? pow_off_zero(ctx, t, p, p < 0 ? INFINITY : 0.0) : nb_pow_scalar(ctx, t, p);
    nb_tensor *s = nb_sum(ctx, t, naxes, axes, keepdim);
    return p > 0 ? pow_off_zero(ctx, s, 1.0 / p, 0.0) : nb_pow_scalar(ctx, s, 1.0 / p);
}
