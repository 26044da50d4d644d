/* Losses as torch.nn.functional in PyTorch 1.13, composed from ops: their gradients, to any
 * order, come from the ops' rules. Each loss checks all its arguments first (shapes, dtypes,
 * labels, options), so that an error names the loss the user called, not an op inside it.
 * Where PyTorch masks a term (an ignored label, xlogy at 0, Stirling's term at y <= 1), the
 * masked element is computed from a harmless stand-in, so that no Inf or NaN is made and
 * the gradient there is an exact 0, not 0 * Inf. */
#include "../internal.h"

#include <float.h>
#include <omp.h>

/* ---- checks and reductions shared by the losses --------------------------------------------- */
static bool is_float(const nb_tensor *t) { return t->dtype == NB_F32 || t->dtype == NB_F64; }

static bool reduction_ok(nb_ctx *ctx, const char *op, nb_reduction red, bool batchmean) {
    if (red == NB_REDUCE_MEAN || red == NB_REDUCE_SUM || red == NB_REDUCE_NONE || (batchmean && red == NB_REDUCE_BATCHMEAN))
        return true;
    return nb__fail(ctx, NB_ERR_VALUE, "%s: reduction %d is not %s", op, (int)red,
                    batchmean ? "mean, sum, none or batchmean" : "mean, sum or none (batchmean is kl_div's)"),
           false;
}

static nb_tensor *reduce(nb_ctx *ctx, nb_tensor *per, nb_reduction red) {
    switch (red) {
    case NB_REDUCE_MEAN: return nb_mean_all(ctx, per);
    case NB_REDUCE_SUM: return nb_sum_all(ctx, per);
    case NB_REDUCE_BATCHMEAN: /* PyTorch: the sum divided by input.size(0); the sum for a 0-d input */
        if (per && per->ndim) return nb_div(ctx, nb_sum_all(ctx, per), nb_scalar(ctx, per->dtype, (double)per->shape[0]));
        return nb_sum_all(ctx, per);
    case NB_REDUCE_NONE: break;
    }
    return per;
}

/* a and b of one float dtype and one shape */
static bool pair_ok(nb_ctx *ctx, const char *op, const char *an, const nb_tensor *a, const char *bn, const nb_tensor *b) {
    char sa[128], sb[128];
    if (!is_float(a) || b->dtype != a->dtype)
        return nb__fail(ctx, NB_ERR_DTYPE, "%s: %s (%s) and %s (%s) must be both f32 or both f64", op, an,
                        nb_dtype_name(a->dtype), bn, nb_dtype_name(b->dtype)),
               false;
    if (!nb_same_shape(a, b))
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: %s %s and %s %s differ in shape", op, an, nb_shape_str(a, sa, sizeof sa), bn,
                        nb_shape_str(b, sb, sizeof sb)),
               false;
    return true;
}

/* An optional tensor option (NULL: not given) of x's dtype that broadcasts to x's shape. */
static bool fits(nb_ctx *ctx, const char *op, const char *name, nb_tensor *t, const nb_tensor *x) {
    if (!t) return true;
    if (nb__null(ctx, op, 1, t)) return false;
    char st[128], sx[128];
    int nd;
    int64_t s[NB_MAX_DIMS];
    if (t->dtype != x->dtype)
        return nb__fail(ctx, NB_ERR_DTYPE, "%s: %s is %s, the input %s", op, name, nb_dtype_name(t->dtype), nb_dtype_name(x->dtype)),
               false;
    if (!nb__broadcast_shape(t->ndim, t->shape, x->ndim, x->shape, &nd, s) || nd != x->ndim ||
        memcmp(s, x->shape, (size_t)nd * sizeof *s) != 0)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: %s %s does not broadcast to the input's shape %s", op, name,
                        nb_shape_str(t, st, sizeof st), nb_shape_str(x, sx, sizeof sx)),
               false;
    return true;
}

/* A scalar option: finite and >= 0; zero takes PyTorch's default. */
static bool scalar_option(nb_ctx *ctx, const char *op, const char *name, double v, double def, double *out) {
    if (!(v >= 0 && isfinite(v))) return nb__fail(ctx, NB_ERR_VALUE, "%s: %s %g must be finite and >= 0", op, name, v), false;
    *out = v == 0 ? def : v;
    return true;
}

/* An option of another loss of the family, given to this one: a mistake, not something to ignore. */
static bool not_given(nb_ctx *ctx, const char *op, const char *name, bool given) {
    if (given) nb__fail(ctx, NB_ERR_VALUE, "%s: %s is not one of its options", op, name);
    return !given;
}

/* ---- cross_entropy, nll_loss ------------------------------------------------------------------ */
/* Class-index targets of scores x (N, C, d1..dk), checked: the gather index (N, 1, d1..dk) with
 * ignored labels replaced by class 0, keep (N, d1..dk) 1 or 0 where ignored, and each target's
 * class weight (NULL without class weights). */
typedef struct {
    nb_tensor *idx, *keep, *w;
} class_targets;

static bool class_targets_of(nb_ctx *ctx, const char *op, nb_tensor *x, nb_tensor *y, nb_tensor *weight, int64_t ignore,
                             class_targets *t) {
    const int64_t C = x->shape[1];
    int64_t ishape[NB_MAX_DIMS];
    memcpy(ishape, x->shape, (size_t)x->ndim * sizeof *ishape);
    ishape[1] = 1;
    t->idx = nb__new(ctx, NB_I64, x->ndim, ishape);
    t->keep = nb__new(ctx, x->dtype, y->ndim, y->shape);
    if (!t->idx || !t->keep) return false;
    int64_t *idx = t->idx->data;
    const int64_t *lab = y->data;
    for (int64_t i = 0; i < y->numel; i++) {  /* idx and y list the targets in the same order */
        const int64_t v = lab[nb__offset(y, i)];
        const bool ignored = v == ignore;
        if (!ignored && (v < 0 || v >= C))
            return nb__fail(ctx, NB_ERR_INDEX, "%s: label %lld of sample %lld is out of range [0, %lld) (ignore_index %lld)", op,
                            (long long)v, (long long)i, (long long)C, (long long)ignore),
                   false;
        idx[i] = ignored ? 0 : v;
        nb_set(t->keep, i, ignored ? 0.0 : 1.0);
    }
    t->w = NULL;
    if (weight) t->w = nb_reshape(ctx, nb_index_select(ctx, weight, 0, nb_reshape(ctx, t->idx, NB_SHAPE(-1))), y->ndim, y->shape);
    return !weight || t->w;
}

/* weight (C) as (1, C, 1, ..., 1), to multiply scores of ndim axes */
static nb_tensor *along_classes(nb_ctx *ctx, nb_tensor *weight, int ndim) {
    int64_t s[NB_MAX_DIMS];
    for (int d = 0; d < ndim; d++) s[d] = d == 1 ? weight->shape[0] : 1;
    return nb_reshape(ctx, weight, ndim, s);
}

static nb_tensor *label_loss(nb_ctx *ctx, const char *op, nb_tensor *logp, nb_tensor *y, nb_tensor *weight, int64_t ignore,
                             double ls, nb_reduction red) {
    class_targets t;
    if (!class_targets_of(ctx, op, logp, y, weight, ignore, &t)) return NULL;
    nb_tensor *zero = nb_scalar(ctx, logp->dtype, 0.0);
    int ax = 1;
    nb_tensor *picked = nb_squeeze(ctx, nb_gather(ctx, logp, 1, t.idx), 1);
    nb_tensor *per = nb_where(ctx, t.keep, nb_neg(ctx, t.w ? nb_mul(ctx, picked, t.w) : picked), zero);
    if (ls > 0) { /* PyTorch: (1 - ls) nll + ls / C sum_c w_c (-logp_c), 0 for ignored targets */
        nb_tensor *wl = weight ? nb_mul(ctx, logp, along_classes(ctx, weight, logp->ndim)) : logp;
        nb_tensor *uniform = nb_where(ctx, t.keep, nb_neg(ctx, nb_sum(ctx, wl, 1, &ax, false)), zero);
        per = nb_add(ctx, nb_mul_scalar(ctx, per, 1.0 - ls), nb_mul_scalar(ctx, uniform, ls / (double)logp->shape[1]));
    }
    if (red != NB_REDUCE_MEAN) return reduce(ctx, per, red);
    /* the mean divides by the targets' total weight: their count without class weights */
    return nb_div(ctx, nb_sum_all(ctx, per), nb_sum_all(ctx, t.w ? nb_where(ctx, t.keep, t.w, zero) : t.keep));
}

/* probability targets p of the logits' shape: -sum_c w_c p_c logp_c; the mean is over samples */
static nb_tensor *prob_loss(nb_ctx *ctx, nb_tensor *logp, nb_tensor *p, nb_tensor *weight, double ls, nb_reduction red) {
    int ax = 1;
    nb_tensor *t = ls > 0 ? nb_affine(ctx, p, 1.0 - ls, ls / (double)logp->shape[1]) : p;
    nb_tensor *prod = nb_mul(ctx, logp, t);
    if (weight) prod = nb_mul(ctx, prod, along_classes(ctx, weight, logp->ndim));
    return reduce(ctx, nb_neg(ctx, nb_sum(ctx, prod, 1, &ax, false)), red);
}

/* ---- cross-entropy of logits and labels in one pass each way ---------------------------------- */
/* For scores x (N, C) and labels without class weights (the common classifier's loss), the
 * composition above (log_softmax, gather, where, sums) is one primitive: the forward reads each
 * row once for its log-sum-exp and writes the softmax the backward needs; the backward is one
 * pass, (softmax - target) * g, with target = (1 - ls) onehot(y) + ls / C and ignored rows 0.
 * With create_graph the same formula is built from nb_softmax, so second derivatives work.
 * Node: iattr[0] reduction, fattr[0] ls, fattr[1] the mean's divisor (1 otherwise), saved[0]
 * the softmax, saved[1] the checked labels (class_targets' idx, N x 1) and keep (N). */
typedef struct {
    const nb_tensor *x, *idx, *keep;
    nb_tensor *p, *per; /* softmax (N, C) or NULL; per-row losses (N) */
    double ls;
} fused_ce_args;

#define FUSED_CE_ROW(T, SUF)                                                                           \
    static void fused_ce_rows_##SUF(const fused_ce_args *a) {                                          \
        const int64_t N = a->x->shape[0], C = a->x->shape[1], rs = a->x->stride[0], cs = a->x->stride[1]; \
        const int64_t *idx = a->idx->data;                                                             \
        const T *keep = a->keep->data;                                                                 \
        _Pragma("omp parallel for if (N * C >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)") \
        for (int64_t i = 0; i < N; i++) {                                                              \
            const T *x = (const T *)a->x->data + i * rs;                                               \
            T m = -INFINITY;                                                                           \
            for (int64_t c = 0; c < C; c++)                                                            \
                if (x[c * cs] > m) m = x[c * cs];                                                      \
            if (m == -INFINITY) m = 0;                                                                 \
            double s = 0, sx = 0;                                                                      \
            for (int64_t c = 0; c < C; c++) s += exp((double)(x[c * cs] - m)), sx += (double)x[c * cs];  \
            const double lse = log(s) + (double)m;                                                     \
            if (a->p) {                                                                                \
                T *p = (T *)a->p->data + i * C, inv = (T)(1.0 / s);                                    \
                for (int64_t c = 0; c < C; c++) p[c] = (T)exp((double)(x[c * cs] - m)) * inv;          \
            }                                                                                          \
            const double nll = lse - (double)x[idx[i] * cs];                                           \
            const double l = a->ls > 0 ? (1 - a->ls) * nll + a->ls * (lse - sx / (double)C) : nll;    \
            ((T *)a->per->data)[i] = keep[i] != 0 ? (T)l : (T)0;                                       \
        }                                                                                              \
    }
FUSED_CE_ROW(float, f32)
FUSED_CE_ROW(double, f64)
#undef FUSED_CE_ROW

/* the target (1 - ls) onehot(y) + ls / C of kept rows, 0 on ignored ones */
static nb_tensor *smoothed_target(nb_ctx *ctx, const nb_tensor *like, const nb_tensor *idx, const nb_tensor *keep, double ls) {
    nb_tensor *t = nb__new(ctx, like->dtype, 2, like->shape);
    if (!t) return NULL;
    const int64_t N = like->shape[0], C = like->shape[1];
    for (int64_t i = 0; i < N; i++) {
        const bool kept = nb_get(keep, i) != 0;
        for (int64_t c = 0; c < C; c++)
            nb_set(t, i * C + c, kept ? (c == ((const int64_t *)idx->data)[i] ? 1 - ls : 0) + ls / (double)C : 0.0);
    }
    return t;
}

#define FUSED_CE_GRAD(T, SUF)                                                                          \
    static void fused_ce_grad_##SUF(T *gx, const T *p, const int64_t *idx, const T *keep, const T *g, int64_t gs, \
                                    double scale, double ls, int64_t N, int64_t C) {                   \
        const T on = (T)(1 - ls + ls / (double)C), off = (T)(ls / (double)C);                          \
        _Pragma("omp parallel for if (N * C >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)") \
        for (int64_t i = 0; i < N; i++) {                                                              \
            const T gi = keep[i] != 0 ? (T)((double)g[i * gs] * scale) : (T)0;                         \
            for (int64_t c = 0; c < C; c++) gx[i * C + c] = gi * (p[i * C + c] - (c == idx[i] ? on : off)); \
        }                                                                                              \
    }
FUSED_CE_GRAD(float, f32)
FUSED_CE_GRAD(double, f64)
#undef FUSED_CE_GRAD

static nb_status fused_ce_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    nb_tensor *x = n->in[0], *p = n->saved[0], *idx = n->saved[1], *keep = (nb_tensor *)n->user;
    const double ls = n->fattr[0], scale = n->fattr[1];
    const int64_t N = x->shape[0], C = x->shape[1];
    if (nb_ctx_grad_enabled(ctx)) { /* create_graph: differentiable in x and in g */
        /* a mean over no kept row (all ignored, or N = 0) has an infinite scale and a zero gradient */
        nb_tensor *gr = n->iattr[0] == NB_REDUCE_NONE ? nb_reshape(ctx, g, NB_SHAPE(N, 1))
                                                      : nb_mul_scalar(ctx, g, isfinite(scale) ? scale : 0.0);
        nb_tensor *kept = nb_mul(ctx, nb_softmax(ctx, x, 1), nb_reshape(ctx, keep, NB_SHAPE(N, 1)));
        gin[0] = nb_mul(ctx, nb_sub(ctx, kept, smoothed_target(ctx, x, idx, keep, ls)), gr);
        return NB_OK;
    }
    nb_tensor *gx = nb__new(ctx, x->dtype, 2, x->shape);
    if (!gx) return ctx->status;
    const int64_t gs = n->iattr[0] == NB_REDUCE_NONE ? g->stride[0] : 0; /* a scalar g for mean and sum */
    if (x->dtype == NB_F32)
        fused_ce_grad_f32(gx->data, p->data, idx->data, keep->data, g->data, gs, scale, ls, N, C);
    else
        fused_ce_grad_f64(gx->data, p->data, idx->data, keep->data, g->data, gs, scale, ls, N, C);
    gin[0] = gx;
    return NB_OK;
}
static const nb_op OP_FUSED_CE = {"cross_entropy", fused_ce_bw, NB_DIFFERENTIABLE};

/* the loss of checked scores x (N, C) and labels y (N), no class weights */
static nb_tensor *fused_cross_entropy(nb_ctx *ctx, const char *op, nb_tensor *x, nb_tensor *y, int64_t ignore, double ls,
                                      nb_reduction red) {
    class_targets t;
    if (!class_targets_of(ctx, op, x, y, NULL, ignore, &t)) return NULL;
    const bool record = nb_ctx_grad_enabled(ctx) && x->requires_grad;
    const int64_t N = x->shape[0];
    fused_ce_args a = {x, t.idx, t.keep, record ? nb__new(ctx, x->dtype, 2, x->shape) : NULL, nb__new(ctx, x->dtype, 1, &N), ls};
    if ((record && !a.p) || !a.per) return NULL;
    if (x->dtype == NB_F32)
        fused_ce_rows_f32(&a);
    else
        fused_ce_rows_f64(&a);
    double sum = 0, kept = 0; /* in row order: the same bits for any thread count */
    for (int64_t i = 0; i < N; i++) sum += nb_get(a.per, i), kept += nb_get(t.keep, i);
    nb_tensor *out = red == NB_REDUCE_NONE ? a.per : nb__new(ctx, x->dtype, 0, NULL);
    if (!out) return NULL;
    const double divisor = red == NB_REDUCE_MEAN ? kept : 1.0;
    if (red != NB_REDUCE_NONE) nb_set(out, 0, red == NB_REDUCE_MEAN ? sum / kept : sum);
    nb_node *n;
    if (!nb__finish(ctx, &OP_FUSED_CE, out, 1, &x, &n)) return NULL;
    if (n) {
        n->iattr[0] = red;
        n->fattr[0] = ls;
        n->fattr[1] = 1.0 / divisor;
        n->saved[0] = a.p;
        n->saved[1] = t.idx;
        n->user = t.keep;
    }
    return out;
}

/* The checks of cross_entropy and nll_loss; *probs: the target is class probabilities. */
static bool class_args(nb_ctx *ctx, const char *op, nb_tensor *x, nb_tensor *y, const nb_class_loss_opts *o, bool logits,
                       bool *probs) {
    const double ls = o->label_smoothing;
    if (nb__null(ctx, op, 2, x, y) || !reduction_ok(ctx, op, o->reduction, false) ||
        (!logits && !not_given(ctx, op, "label_smoothing", ls != 0)) || (o->weight && nb__null(ctx, op, 1, o->weight)))
        return false;
    if (!(ls >= 0 && ls <= 1)) return nb__fail(ctx, NB_ERR_VALUE, "%s: label_smoothing %g outside [0, 1]", op, ls), false;
    char sx[128], sy[128], sw[128];
    if (!is_float(x))
        return nb__fail(ctx, NB_ERR_DTYPE, "%s: scores must be f32 or f64, got %s", op, nb_dtype_name(x->dtype)), false;
    const int cax = x->ndim > 1; /* the class axis: 1, or 0 for unbatched (C) scores */
    if (x->ndim < 1 || x->shape[cax] < 1)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: expected (N, C, d1, ..., dk) or (C) scores with C >= 1, got %s", op,
                        nb_shape_str(x, sx, sizeof sx)),
               false;
    *probs = logits && y->dtype == x->dtype && nb_same_shape(x, y);
    int nl = 0;
    int64_t lshape[NB_MAX_DIMS]; /* the labels' shape: x's without the class axis */
    for (int d = 0; d < x->ndim; d++)
        if (d != cax) lshape[nl++] = x->shape[d];
    if (!*probs && y->dtype != NB_I64)
        return nb__fail(ctx, NB_ERR_DTYPE, "%s: labels must be i64%s, got %s %s", op,
                        logits ? " (or class probabilities of the logits' shape and dtype)" : "", nb_dtype_name(y->dtype),
                        nb_shape_str(y, sy, sizeof sy)),
               false;
    if (!*probs && (y->ndim != nl || memcmp(y->shape, lshape, (size_t)nl * sizeof *lshape) != 0))
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: labels %s do not match scores %s (need %s)", op, nb_shape_str(y, sy, sizeof sy),
                        nb_shape_str(x, sx, sizeof sx), nb__dims_str(nl, lshape, sw, sizeof sw)),
               false;
    if (*probs && o->has_ignore_index)
        return nb__fail(ctx, NB_ERR_VALUE, "%s: ignore_index is not supported for probability targets", op), false;
    const nb_tensor *w = o->weight;
    if (w && w->dtype != x->dtype)
        return nb__fail(ctx, NB_ERR_DTYPE, "%s: weight is %s, the scores %s", op, nb_dtype_name(w->dtype), nb_dtype_name(x->dtype)),
               false;
    if (w && (w->ndim != 1 || w->shape[0] != x->shape[cax]))
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: weight %s must be (C) = (%lld)", op, nb_shape_str(w, sw, sizeof sw),
                        (long long)x->shape[cax]),
               false;
    return true;
}

static nb_tensor *class_loss(nb_ctx *ctx, const char *op, nb_tensor *x, nb_tensor *y, const nb_class_loss_opts *opts,
                             bool logits) {
    const nb_class_loss_opts o = opts ? *opts : (nb_class_loss_opts){0};
    bool probs;
    if (!class_args(ctx, op, x, y, &o, logits, &probs)) return NULL;
    const bool unbatched = x->ndim == 1; /* a batch of one, and a 0-d result for reduction none */
    if (unbatched) {
        x = nb_unsqueeze(ctx, x, 0);
        y = nb_unsqueeze(ctx, y, 0);
    }
    const int64_t ignore = o.has_ignore_index ? o.ignore_index : -100;
    if (logits && !probs && !o.weight && x->ndim == 2 && o.reduction != NB_REDUCE_BATCHMEAN) {
        nb_tensor *loss = fused_cross_entropy(ctx, op, x, y, ignore, o.label_smoothing, o.reduction);
        return unbatched && o.reduction == NB_REDUCE_NONE ? nb_squeeze(ctx, loss, 0) : loss;
    }
    nb_tensor *logp = logits ? nb_log_softmax(ctx, x, 1) : x;
    if (!logp || !y) return NULL;
    const double ls = o.label_smoothing;
    nb_tensor *loss = probs ? prob_loss(ctx, logp, y, o.weight, ls, o.reduction)
                            : label_loss(ctx, op, logp, y, o.weight, ignore, ls, o.reduction);
    return unbatched && o.reduction == NB_REDUCE_NONE ? nb_squeeze(ctx, loss, 0) : loss;
}

nb_tensor *nb_cross_entropy_ex(nb_ctx *ctx, nb_tensor *logits, nb_tensor *target, const nb_class_loss_opts *opts) {
    return class_loss(ctx, "cross_entropy_ex", logits, target, opts, true);
}
nb_tensor *nb_nll_loss_ex(nb_ctx *ctx, nb_tensor *logp, nb_tensor *labels, const nb_class_loss_opts *opts) {
    return class_loss(ctx, "nll_loss_ex", logp, labels, opts, false);
}
nb_tensor *nb_cross_entropy(nb_ctx *ctx, nb_tensor *logits, nb_tensor *labels, nb_reduction red) {
    return class_loss(ctx, "cross_entropy", logits, labels, &(nb_class_loss_opts){.reduction = red}, true);
}
nb_tensor *nb_cross_entropy_smooth(nb_ctx *ctx, nb_tensor *logits, nb_tensor *labels, double eps, nb_reduction red) {
    return class_loss(ctx, "cross_entropy_smooth", logits, labels,
                      &(nb_class_loss_opts){.reduction = red, .label_smoothing = eps}, true);
}
nb_tensor *nb_nll_loss(nb_ctx *ctx, nb_tensor *logp, nb_tensor *labels, nb_reduction red) {
    return class_loss(ctx, "nll_loss", logp, labels, &(nb_class_loss_opts){.reduction = red}, false);
}

/* ---- binary cross-entropy --------------------------------------------------------------------- */
static bool bce_args(nb_ctx *ctx, const char *op, nb_tensor *x, nb_tensor *y, const nb_bce_loss_opts *o) {
    return !nb__null(ctx, op, 2, x, y) && reduction_ok(ctx, op, o->reduction, false) &&
           pair_ok(ctx, op, "input", x, "target", y) && fits(ctx, op, "weight", o->weight, x) &&
           fits(ctx, op, "pos_weight", o->pos_weight, x);
}

static nb_tensor *weighted(nb_ctx *ctx, nb_tensor *per, const nb_bce_loss_opts *o) {
    return reduce(ctx, o->weight ? nb_mul(ctx, per, o->weight) : per, o->reduction);
}

static nb_tensor *bce_logits(nb_ctx *ctx, const char *op, nb_tensor *x, nb_tensor *y, const nb_bce_loss_opts *opts) {
    const nb_bce_loss_opts o = opts ? *opts : (nb_bce_loss_opts){0};
    if (!bce_args(ctx, op, x, y, &o)) return NULL;
    /* PyTorch: (1 - y) x + w softplus(-x), w = 1 + (pw - 1) y, softplus(u) = -logsigmoid(-u) exact
     * for any u. Its gradient (1 - y) - w sigmoid(-x) cancels for x << 0 (1 - 0.99999...: 5e-4
     * off at x = -10 in f32, 0 from x = -17 where sigmoid(x) is 4e-8), so below 0 the same loss
     * is taken as w softplus(x) + (1 - y - w) x, whose gradient w sigmoid(x) + 1 - y - w is exact
     * there; each branch's value is exact on its side. */
    nb_tensor *w = o.pos_weight ? nb_add_scalar(ctx, nb_mul(ctx, nb_add_scalar(ctx, o.pos_weight, -1.0), y), 1.0) : NULL;
    nb_tensor *sp_neg = nb_neg(ctx, nb_logsigmoid(ctx, x)), *sp_pos = nb_neg(ctx, nb_logsigmoid(ctx, nb_neg(ctx, x)));
    nb_tensor *one_y = nb_affine(ctx, y, -1.0, 1.0); /* 1 - y */
    nb_tensor *above = nb_add(ctx, nb_mul(ctx, one_y, x), w ? nb_mul(ctx, w, sp_neg) : sp_neg);
    nb_tensor *below = w ? nb_add(ctx, nb_mul(ctx, w, sp_pos), nb_mul(ctx, nb_sub(ctx, one_y, w), x))
                         : nb_sub(ctx, sp_pos, nb_mul(ctx, y, x));
    nb_tensor *neg = x ? nb_lt(ctx, x, nb_scalar(ctx, x->dtype, 0.0)) : NULL;
    return weighted(ctx, nb_where(ctx, neg, below, above), &o);
}
nb_tensor *nb_bce_with_logits_ex(nb_ctx *ctx, nb_tensor *x, nb_tensor *y, const nb_bce_loss_opts *opts) {
    return bce_logits(ctx, "bce_with_logits_ex", x, y, opts);
}
nb_tensor *nb_bce_with_logits(nb_ctx *ctx, nb_tensor *x, nb_tensor *y, nb_reduction red) {
    return bce_logits(ctx, "bce_with_logits", x, y, &(nb_bce_loss_opts){.reduction = red});
}

/* max(log v, -100) for v in [0, 1] (PyTorch's clamp), finite with a finite gradient at v = 0: the
 * log is taken of v floored at the dtype's smallest positive number, whose log is below -100 */
static nb_tensor *clamped_log(nb_ctx *ctx, nb_tensor *v) {
    if (!v) return NULL;
    const double tiny = v->dtype == NB_F32 ? FLT_TRUE_MIN : DBL_TRUE_MIN;
    return nb_clamp(ctx, nb_log(ctx, nb_clamp(ctx, v, tiny, INFINITY)), -100.0, INFINITY);
}

nb_tensor *nb_binary_cross_entropy(nb_ctx *ctx, nb_tensor *p, nb_tensor *y, const nb_bce_loss_opts *opts) {
    const char *op = "binary_cross_entropy";
    const nb_bce_loss_opts o = opts ? *opts : (nb_bce_loss_opts){0};
    if (!not_given(ctx, op, "pos_weight", o.pos_weight) || !bce_args(ctx, op, p, y, &o)) return NULL;
    for (int64_t i = 0; i < p->numel; i++) {
        const double v = nb_get(p, i);
        if (!(v >= 0 && v <= 1))
            return nb__fail(ctx, NB_ERR_VALUE, "%s: input %g at %lld is not a probability in [0, 1]", op, v, (long long)i);
    }
    /* PyTorch: (y - 1) max(log(1 - p), -100) - y max(log p, -100) */
    nb_tensor *neg_part = nb_mul(ctx, nb_add_scalar(ctx, y, -1.0), clamped_log(ctx, nb_affine(ctx, p, -1.0, 1.0)));
    return weighted(ctx, nb_sub(ctx, neg_part, nb_mul(ctx, y, clamped_log(ctx, p))), &o);
}

/* ---- regression --------------------------------------------------------------------------------- */
static bool regression_args(nb_ctx *ctx, const char *op, nb_tensor *x, nb_tensor *y, nb_reduction red) {
    return !nb__null(ctx, op, 2, x, y) && reduction_ok(ctx, op, red, false) && pair_ok(ctx, op, "input", x, "target", y);
}

nb_tensor *nb_mse_loss(nb_ctx *ctx, nb_tensor *pred, nb_tensor *target, nb_reduction red) {
    if (!regression_args(ctx, "mse_loss", pred, target, red)) return NULL;
    return reduce(ctx, nb_square(ctx, nb_sub(ctx, pred, target)), red);
}

nb_tensor *nb_l1_loss(nb_ctx *ctx, nb_tensor *pred, nb_tensor *target, nb_reduction red) {
    if (!regression_args(ctx, "l1_loss", pred, target, red)) return NULL;
    return reduce(ctx, nb_abs(ctx, nb_sub(ctx, pred, target)), red);
}

/* q d^2 where |d| < t, else s (|d| - t/2). The quadratic side squares d itself (not |d|), so its
 * second derivative is 2q at d = 0 too, as PyTorch's. */
static nb_tensor *quadratic_then_linear(nb_ctx *ctx, nb_tensor *d, double t, double q, double s) {
    if (!d) return NULL;
    nb_tensor *a = nb_abs(ctx, d);
    return nb_where(ctx, nb_lt(ctx, a, nb_scalar(ctx, d->dtype, t)), nb_mul_scalar(ctx, nb_square(ctx, d), q),
                    nb_mul_scalar(ctx, nb_add_scalar(ctx, a, -0.5 * t), s));
}

nb_tensor *nb_smooth_l1_loss(nb_ctx *ctx, nb_tensor *x, nb_tensor *y, const nb_regression_loss_opts *opts) {
    const char *op = "smooth_l1_loss";
    const nb_regression_loss_opts o = opts ? *opts : (nb_regression_loss_opts){0};
    double beta;
    if (!regression_args(ctx, op, x, y, o.reduction) || !not_given(ctx, op, "delta", o.delta != 0) ||
        !scalar_option(ctx, op, "beta", o.beta, 1.0, &beta))
        return NULL;
    return reduce(ctx, quadratic_then_linear(ctx, nb_sub(ctx, x, y), beta, 0.5 / beta, 1.0), o.reduction);
}

nb_tensor *nb_huber_loss(nb_ctx *ctx, nb_tensor *x, nb_tensor *y, const nb_regression_loss_opts *opts) {
    const char *op = "huber_loss";
    const nb_regression_loss_opts o = opts ? *opts : (nb_regression_loss_opts){0};
    double delta;
    if (!regression_args(ctx, op, x, y, o.reduction) || !not_given(ctx, op, "beta", o.beta != 0) ||
        !scalar_option(ctx, op, "delta", o.delta, 1.0, &delta))
        return NULL;
    return reduce(ctx, quadratic_then_linear(ctx, nb_sub(ctx, x, y), delta, 0.5, delta), o.reduction);
}

/* ---- losses on distributions ------------------------------------------------------------------- */
/* t log t, 0 where t = 0 (torch.xlogy(t, t)); the log is of 1 there */
static nb_tensor *xlogx(nb_ctx *ctx, nb_tensor *t) {
    nb_tensor *one = nb_scalar(ctx, t->dtype, 1.0);
    return nb_mul(ctx, t, nb_log(ctx, nb_where(ctx, nb_eq(ctx, t, nb_scalar(ctx, t->dtype, 0.0)), one, t)));
}

nb_tensor *nb_kl_div(nb_ctx *ctx, nb_tensor *input, nb_tensor *target, const nb_prob_loss_opts *opts) {
    const char *op = "kl_div";
    const nb_prob_loss_opts o = opts ? *opts : (nb_prob_loss_opts){0};
    if (nb__null(ctx, op, 2, input, target) || !reduction_ok(ctx, op, o.reduction, true) ||
        !pair_ok(ctx, op, "input", input, "target", target) || !not_given(ctx, op, "rate_input", o.rate_input) ||
        !not_given(ctx, op, "full", o.full) || !not_given(ctx, op, "eps", o.eps != 0))
        return NULL;
    nb_tensor *per = o.log_target ? nb_mul(ctx, nb_exp(ctx, target), nb_sub(ctx, target, input))
                                  : nb_sub(ctx, xlogx(ctx, target), nb_mul(ctx, target, input));
    return reduce(ctx, per, o.reduction);
}

/* PyTorch's Stirling term y log y - y + log(2 pi y) / 2 where y > 1, else 0 */
static nb_tensor *stirling(nb_ctx *ctx, nb_tensor *y) {
    nb_tensor *one = nb_scalar(ctx, y->dtype, 1.0), *big = nb_gt(ctx, y, one);
    nb_tensor *s = nb_where(ctx, big, y, one);
    nb_tensor *term = nb_add(ctx, nb_sub(ctx, nb_mul(ctx, s, nb_log(ctx, s)), s),
                             nb_mul_scalar(ctx, nb_log(ctx, nb_mul_scalar(ctx, s, 2 * M_PI)), 0.5));
    return nb_where(ctx, big, term, nb_scalar(ctx, y->dtype, 0.0));
}

nb_tensor *nb_poisson_nll_loss(nb_ctx *ctx, nb_tensor *x, nb_tensor *y, const nb_prob_loss_opts *opts) {
    const char *op = "poisson_nll_loss";
    const nb_prob_loss_opts o = opts ? *opts : (nb_prob_loss_opts){0};
    double eps;
    if (!regression_args(ctx, op, x, y, o.reduction) || !not_given(ctx, op, "log_target", o.log_target) ||
        !scalar_option(ctx, op, "eps", o.eps, 1e-8, &eps))
        return NULL;
    nb_tensor *per = o.rate_input ? nb_sub(ctx, x, nb_mul(ctx, y, nb_log(ctx, nb_add_scalar(ctx, x, eps))))
                                  : nb_sub(ctx, nb_exp(ctx, x), nb_mul(ctx, y, x));
    return reduce(ctx, o.full ? nb_add(ctx, per, stirling(ctx, y)) : per, o.reduction);
}

nb_tensor *nb_gaussian_nll_loss(nb_ctx *ctx, nb_tensor *x, nb_tensor *y, nb_tensor *var, const nb_prob_loss_opts *opts) {
    const char *op = "gaussian_nll_loss";
    const nb_prob_loss_opts o = opts ? *opts : (nb_prob_loss_opts){0};
    double eps;
    if (nb__null(ctx, op, 1, var) || !regression_args(ctx, op, x, y, o.reduction) ||
        !not_given(ctx, op, "log_target", o.log_target) || !not_given(ctx, op, "rate_input", o.rate_input) ||
        !scalar_option(ctx, op, "eps", o.eps, 1e-6, &eps))
        return NULL;
    char sv[128], sx[128];
    if (var->dtype != x->dtype)
        return nb__fail(ctx, NB_ERR_DTYPE, "%s: var is %s, the input %s", op, nb_dtype_name(var->dtype), nb_dtype_name(x->dtype));
    /* PyTorch 1.13: var of x's shape, or of x's shape without its last axis, or with it 1 */
    const int n = x->ndim;
    const bool lead = n >= 1 && memcmp(var->shape, x->shape, (size_t)(n - 1) * sizeof *x->shape) == 0;
    const bool dropped = lead && var->ndim == n - 1, last1 = lead && var->ndim == n && var->shape[n - 1] == 1;
    if (!nb_same_shape(var, x) && !dropped && !last1)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: var %s must have the input's shape %s, or that shape with the last axis 1 or dropped",
                        op, nb_shape_str(var, sv, sizeof sv), nb_shape_str(x, sx, sizeof sx));
    for (int64_t i = 0; i < var->numel; i++)
        if (nb_get(var, i) < 0) return nb__fail(ctx, NB_ERR_VALUE, "%s: var has a negative entry %g at %lld", op, nb_get(var, i), (long long)i);
    if (dropped) var = nb_unsqueeze(ctx, var, -1);
    /* v = max(var, eps) with var's gradient as if unfloored: PyTorch clamps var in place under no_grad */
    nb_tensor *lift = NULL;
    NB_NO_GRAD(ctx) lift = nb_sub(ctx, nb_clamp(ctx, var, eps, INFINITY), var);
    nb_tensor *v = nb_add(ctx, var, lift);
    nb_tensor *per = nb_mul_scalar(ctx, nb_add(ctx, nb_log(ctx, v), nb_div(ctx, nb_square(ctx, nb_sub(ctx, x, y)), v)), 0.5);
    return reduce(ctx, o.full ? nb_add_scalar(ctx, per, 0.5 * log(2 * M_PI)) : per, o.reduction);
}

/* ---- margin losses ----------------------------------------------------------------------------- */
/* The margin: PyTorch's default `def` unless given (non-zero, or has_margin); finite. */
static bool margin_of(nb_ctx *ctx, const char *op, const nb_margin_loss_opts *o, double def, double *m) {
    if (!isfinite(o->margin)) return nb__fail(ctx, NB_ERR_VALUE, "%s: margin %g must be finite", op, o->margin), false;
    *m = o->has_margin || o->margin != 0 ? o->margin : def;
    return true;
}
static bool no_triplet_options(nb_ctx *ctx, const char *op, const nb_margin_loss_opts *o) {
    return not_given(ctx, op, "p", o->p != 0) && not_given(ctx, op, "eps", o->eps != 0) && not_given(ctx, op, "swap", o->swap);
}

/* +-1 targets y (f32, f64 or i64) of the given shape, checked, as constants of dtype dt */
static nb_tensor *sign_targets(nb_ctx *ctx, const char *op, nb_tensor *y, nb_dtype dt, int ndim, const int64_t *shape) {
    char sy[128], ss[128];
    if (y->dtype != NB_I64 && y->dtype != dt)
        return nb__fail(ctx, NB_ERR_DTYPE, "%s: target is %s, expected %s or i64", op, nb_dtype_name(y->dtype), nb_dtype_name(dt));
    if (y->ndim != ndim || memcmp(y->shape, shape, (size_t)ndim * sizeof *shape) != 0)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: target %s must have shape %s", op, nb_shape_str(y, sy, sizeof sy),
                        nb__dims_str(ndim, shape, ss, sizeof ss));
    for (int64_t i = 0; i < y->numel; i++) {
        const double v = nb_get(y, i);
        if (v != 1 && v != -1) return nb__fail(ctx, NB_ERR_VALUE, "%s: target %g at %lld is not 1 or -1", op, v, (long long)i);
    }
    return y->dtype == dt ? nb_detach(ctx, y) : nb_cast(ctx, y, dt);
}

static nb_tensor *is_one(nb_ctx *ctx, nb_tensor *y) { return y ? nb_eq(ctx, y, nb_scalar(ctx, y->dtype, 1.0)) : NULL; }
static nb_tensor *relu_of(nb_ctx *ctx, nb_tensor *t) { return nb_clamp(ctx, t, 0.0, INFINITY); } /* PyTorch's clamp_min(0) */

nb_tensor *nb_cosine_embedding_loss(nb_ctx *ctx, nb_tensor *x1, nb_tensor *x2, nb_tensor *y, const nb_margin_loss_opts *opts) {
    const char *op = "cosine_embedding_loss";
    const nb_margin_loss_opts o = opts ? *opts : (nb_margin_loss_opts){0};
    double margin;
    if (nb__null(ctx, op, 3, x1, x2, y) || !reduction_ok(ctx, op, o.reduction, false) || !pair_ok(ctx, op, "x1", x1, "x2", x2) ||
        !margin_of(ctx, op, &o, 0.0, &margin) || !no_triplet_options(ctx, op, &o))
        return NULL;
    char s[128];
    if (x1->ndim != 1 && x1->ndim != 2)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: inputs %s must be (N, D) or (D)", op, nb_shape_str(x1, s, sizeof s));
    int ax = x1->ndim - 1;
    nb_tensor *sign = sign_targets(ctx, op, y, x1->dtype, ax, x1->shape);
    if (!sign) return NULL;
    /* PyTorch: x1.x2 / sqrt((|x1|^2 + 1e-12)(|x2|^2 + 1e-12)) */
    nb_tensor *dot = nb_sum(ctx, nb_mul(ctx, x1, x2), 1, &ax, false);
    nb_tensor *m1 = nb_add_scalar(ctx, nb_sum(ctx, nb_square(ctx, x1), 1, &ax, false), 1e-12);
    nb_tensor *m2 = nb_add_scalar(ctx, nb_sum(ctx, nb_square(ctx, x2), 1, &ax, false), 1e-12);
    nb_tensor *cos = nb_div(ctx, dot, nb_sqrt(ctx, nb_mul(ctx, m1, m2)));
    nb_tensor *per = nb_where(ctx, is_one(ctx, sign), nb_affine(ctx, cos, -1.0, 1.0), relu_of(ctx, nb_add_scalar(ctx, cos, -margin)));
    return reduce(ctx, per, o.reduction);
}

nb_tensor *nb_margin_ranking_loss(nb_ctx *ctx, nb_tensor *x1, nb_tensor *x2, nb_tensor *y, const nb_margin_loss_opts *opts) {
    const char *op = "margin_ranking_loss";
    const nb_margin_loss_opts o = opts ? *opts : (nb_margin_loss_opts){0};
    double margin;
    if (nb__null(ctx, op, 3, x1, x2, y) || !reduction_ok(ctx, op, o.reduction, false) || !margin_of(ctx, op, &o, 0.0, &margin) ||
        !no_triplet_options(ctx, op, &o))
        return NULL;
    char a[128], b[128], c[128];
    int nd, nd2;
    int64_t s[NB_MAX_DIMS], s2[NB_MAX_DIMS];
    if (!is_float(x1) || x2->dtype != x1->dtype || y->dtype != x1->dtype)
        return nb__fail(ctx, NB_ERR_DTYPE, "%s: x1 (%s), x2 (%s) and y (%s) must all be f32 or all f64", op,
                        nb_dtype_name(x1->dtype), nb_dtype_name(x2->dtype), nb_dtype_name(y->dtype));
    if (x1->ndim != x2->ndim || x1->ndim != y->ndim || !nb__broadcast_shape(x1->ndim, x1->shape, x2->ndim, x2->shape, &nd, s) ||
        !nb__broadcast_shape(nd, s, y->ndim, y->shape, &nd2, s2))
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: x1 %s, x2 %s and y %s must have one ndim and broadcast together", op,
                        nb_shape_str(x1, a, sizeof a), nb_shape_str(x2, b, sizeof b), nb_shape_str(y, c, sizeof c));
    /* PyTorch: (-y (x1 - x2) + margin).clamp_min(0) */
    return reduce(ctx, relu_of(ctx, nb_add_scalar(ctx, nb_mul(ctx, nb_neg(ctx, y), nb_sub(ctx, x1, x2)), margin)), o.reduction);
}

nb_tensor *nb_hinge_embedding_loss(nb_ctx *ctx, nb_tensor *x, nb_tensor *y, const nb_margin_loss_opts *opts) {
    const char *op = "hinge_embedding_loss";
    const nb_margin_loss_opts o = opts ? *opts : (nb_margin_loss_opts){0};
    double margin;
    if (nb__null(ctx, op, 2, x, y) || !reduction_ok(ctx, op, o.reduction, false) || !margin_of(ctx, op, &o, 1.0, &margin) ||
        !no_triplet_options(ctx, op, &o))
        return NULL;
    if (!is_float(x)) return nb__fail(ctx, NB_ERR_DTYPE, "%s: input must be f32 or f64, got %s", op, nb_dtype_name(x->dtype));
    nb_tensor *sign = sign_targets(ctx, op, y, x->dtype, x->ndim, x->shape);
    return reduce(ctx, nb_where(ctx, is_one(ctx, sign), x, relu_of(ctx, nb_affine(ctx, x, -1.0, margin))), o.reduction);
}

nb_tensor *nb_soft_margin_loss(nb_ctx *ctx, nb_tensor *x, nb_tensor *y, nb_reduction red) {
    const char *op = "soft_margin_loss";
    if (nb__null(ctx, op, 2, x, y) || !reduction_ok(ctx, op, red, false)) return NULL;
    if (!is_float(x)) return nb__fail(ctx, NB_ERR_DTYPE, "%s: input must be f32 or f64, got %s", op, nb_dtype_name(x->dtype));
    nb_tensor *sign = sign_targets(ctx, op, y, x->dtype, x->ndim, x->shape);
    return reduce(ctx, nb_neg(ctx, nb_logsigmoid(ctx, nb_mul(ctx, sign, x))), red); /* log(1 + exp(-y x)) */
}

/* ||u - v + eps||_p over the last axis (torch.pairwise_distance) */
static nb_tensor *pairwise_distance(nb_ctx *ctx, nb_tensor *u, nb_tensor *v, double p, double eps) {
    int ax = -1;
    nb_tensor *d = nb_add_scalar(ctx, nb_sub(ctx, u, v), eps);
    if (p == 2) return nb_sqrt(ctx, nb_sum(ctx, nb_square(ctx, d), 1, &ax, false)); /* the default, as PyTorch computes it */
    return nb_pow_scalar(ctx, nb_sum(ctx, nb_pow_scalar(ctx, nb_abs(ctx, d), p), 1, &ax, false), 1.0 / p);
}

nb_tensor *nb_triplet_margin_loss(nb_ctx *ctx, nb_tensor *anchor, nb_tensor *positive, nb_tensor *negative,
                                  const nb_margin_loss_opts *opts) {
    const char *op = "triplet_margin_loss";
    const nb_margin_loss_opts o = opts ? *opts : (nb_margin_loss_opts){0};
    double margin, p, eps;
    if (nb__null(ctx, op, 3, anchor, positive, negative) || !reduction_ok(ctx, op, o.reduction, false) ||
        !pair_ok(ctx, op, "anchor", anchor, "positive", positive) || !pair_ok(ctx, op, "anchor", anchor, "negative", negative) ||
        !margin_of(ctx, op, &o, 1.0, &margin) || !scalar_option(ctx, op, "p", o.p, 2.0, &p) ||
        !scalar_option(ctx, op, "eps", o.eps, 1e-6, &eps))
        return NULL;
    if (anchor->ndim < 1) return nb__fail(ctx, NB_ERR_SHAPE, "%s: inputs must be (..., D), got a 0-d anchor", op);
    nb_tensor *dpos = pairwise_distance(ctx, anchor, positive, p, eps), *dneg = pairwise_distance(ctx, anchor, negative, p, eps);
    if (o.swap) dneg = nb_minimum(ctx, dneg, pairwise_distance(ctx, positive, negative, p, eps));
    return reduce(ctx, relu_of(ctx, nb_sub(ctx, nb_add_scalar(ctx, dpos, margin), dneg)), o.reduction);
}
