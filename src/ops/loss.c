/* Losses, composed from ops (their gradients come from the ops' rules). */
#include "../internal.h"

static nb_tensor *reduce_loss(nb_ctx *ctx, const char *op, nb_tensor *per_elem, nb_reduction red) {
    switch (red) {
    case NB_REDUCE_MEAN: return nb_mean_all(ctx, per_elem);
    case NB_REDUCE_SUM: return nb_sum_all(ctx, per_elem);
    case NB_REDUCE_NONE: return per_elem;
    }
    return nb__fail(ctx, NB_ERR_VALUE, "%s: unknown reduction %d", op, (int)red);
}

static bool check_labels(nb_ctx *ctx, const char *op, const nb_tensor *x, const nb_tensor *labels) {
    char a[128], b[128];
    if (x->ndim != 2)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: expected (N, C) scores, got %s", op, nb_shape_str(x, a, sizeof a)), false;
    if (labels->dtype != NB_I64)
        return nb__fail(ctx, NB_ERR_DTYPE, "%s: labels must be i64, got %s", op, nb_dtype_name(labels->dtype)), false;
    if (labels->ndim != 1 || labels->shape[0] != x->shape[0])
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: labels %s do not match scores %s (need (N))", op,
                        nb_shape_str(labels, a, sizeof a), nb_shape_str(x, b, sizeof b)),
               false;
    for (int64_t i = 0; i < labels->numel; i++) {
        int64_t y = ((const int64_t *)labels->data)[nb__offset(labels, i)];
        if (y < 0 || y >= x->shape[1])
            return nb__fail(ctx, NB_ERR_INDEX, "%s: label %lld of sample %lld is out of range [0, %lld)", op, (long long)y,
                            (long long)i, (long long)x->shape[1]),
                   false;
    }
    return true;
}

/* -logp[i, y_i], shape (N) */
static nb_tensor *picked(nb_ctx *ctx, nb_tensor *logp, nb_tensor *labels) {
    nb_tensor *col = nb_reshape(ctx, labels, NB_SHAPE(-1, 1));
    return nb_neg(ctx, nb_reshape(ctx, nb_gather(ctx, logp, 1, col), NB_SHAPE(-1)));
}

nb_tensor *nb_nll_loss(nb_ctx *ctx, nb_tensor *logp, nb_tensor *labels, nb_reduction red) {
    if (nb__null(ctx, "nll_loss", 2, logp, labels) || !check_labels(ctx, "nll_loss", logp, labels)) return NULL;
    return reduce_loss(ctx, "nll_loss", picked(ctx, logp, labels), red);
}

nb_tensor *nb_cross_entropy(nb_ctx *ctx, nb_tensor *logits, nb_tensor *labels, nb_reduction red) {
    if (nb__null(ctx, "cross_entropy", 2, logits, labels) || !check_labels(ctx, "cross_entropy", logits, labels)) return NULL;
    return reduce_loss(ctx, "cross_entropy", picked(ctx, nb_log_softmax(ctx, logits, 1), labels), red);
}

nb_tensor *nb_cross_entropy_smooth(nb_ctx *ctx, nb_tensor *logits, nb_tensor *labels, double eps, nb_reduction red) {
    if (nb__null(ctx, "cross_entropy_smooth", 2, logits, labels) ||
        !check_labels(ctx, "cross_entropy_smooth", logits, labels))
        return NULL;
    if (!(eps >= 0.0 && eps <= 1.0))
        return nb__fail(ctx, NB_ERR_VALUE, "cross_entropy_smooth: smoothing %g outside [0, 1]", eps);
    nb_tensor *logp = nb_log_softmax(ctx, logits, 1);
    int ax = 1;
    /* (1-eps) * (-logp[y]) + eps * mean_c(-logp[c]) : PyTorch's label_smoothing */
    nb_tensor *uniform = nb_mul_scalar(ctx, nb_mean(ctx, logp, 1, &ax, false), -eps);
    nb_tensor *per = nb_add(ctx, nb_mul_scalar(ctx, picked(ctx, logp, labels), 1.0 - eps), uniform);
    return reduce_loss(ctx, "cross_entropy_smooth", per, red);
}

nb_tensor *nb_mse_loss(nb_ctx *ctx, nb_tensor *pred, nb_tensor *target, nb_reduction red) {
    if (nb__null(ctx, "mse_loss", 2, pred, target)) return NULL;
    if (!nb_same_shape(pred, target)) {
        char a[128], b[128];
        return nb__fail(ctx, NB_ERR_SHAPE, "mse_loss: prediction %s and target %s differ in shape", nb_shape_str(pred, a, sizeof a),
                        nb_shape_str(target, b, sizeof b));
    }
    nb_tensor *d = nb_sub(ctx, pred, target);
    return reduce_loss(ctx, "mse_loss", nb_mul(ctx, d, d), red);
}

nb_tensor *nb_bce_with_logits(nb_ctx *ctx, nb_tensor *x, nb_tensor *y, nb_reduction red) {
    if (nb__null(ctx, "bce_with_logits", 2, x, y)) return NULL;
    if (!nb_same_shape(x, y)) {
        char a[128], b[128];
        return nb__fail(ctx, NB_ERR_SHAPE, "bce_with_logits: logits %s and targets %s differ in shape", nb_shape_str(x, a, sizeof a),
                        nb_shape_str(y, b, sizeof b));
    }
    return reduce_loss(ctx, "bce_with_logits", nb_sub(ctx, nb_softplus(ctx, x), nb_mul(ctx, x, y)), red);
}
