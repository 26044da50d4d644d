/* Attention as composites of matmul, where, softmax and dropout: autodiff derives the backward
 * (to any order) from the parts, as PyTorch's math reference of scaled_dot_product_attention. */
#include "../internal.h"

/* The scores (..., L, S) with the mask applied: an i64 mask keeps its nonzero positions (the
 * others become -inf), a float mask is added; causal keeps j <= i. */
static nb_tensor *masked_scores(nb_ctx *ctx, nb_tensor *s, nb_tensor *mask, bool is_causal) {
    if (!s) return NULL;
    const int64_t L = s->shape[s->ndim - 2], S = s->shape[s->ndim - 1];
    if (is_causal && !(mask = nb_cast(ctx, nb_tril(ctx, nb_ones(ctx, s->dtype, 2, (int64_t[]){L, S}), 0), NB_I64)))
        return NULL;
    if (!mask) return s;
    if (mask->dtype != NB_I64) return nb_add(ctx, s, mask);
    return nb_where(ctx, mask, s, nb_scalar(ctx, s->dtype, -INFINITY));
}

/* softmax(q k^T scale + mask) (after dropout) goes to *attn when attn is not NULL */
static nb_tensor *attention(nb_ctx *ctx, nb_tensor *q, nb_tensor *k, nb_tensor *v, nb_tensor *mask, bool is_causal,
                            double dropout_p, double scale, nb_tensor **attn_out) {
    static const char op[] = "scaled_dot_product_attention";
    if (nb__null(ctx, op, 3, q, k, v) || (mask && nb__null(ctx, op, 1, mask))) return NULL;
    char sq[128], sk[128], sv[128], sm[128];
    if (q->dtype == NB_I64 || k->dtype != q->dtype || v->dtype != q->dtype ||
        (mask && mask->dtype != NB_I64 && mask->dtype != q->dtype))
        return nb__fail(ctx, NB_ERR_DTYPE, "%s: q, k, v (%s, %s, %s) must be one float dtype and the mask i64 or that dtype",
                        op, nb_dtype_name(q->dtype), nb_dtype_name(k->dtype), nb_dtype_name(v->dtype));
    nb_shape_str(q, sq, sizeof sq), nb_shape_str(k, sk, sizeof sk), nb_shape_str(v, sv, sizeof sv);
    if (q->ndim < 2 || k->ndim < 2 || v->ndim < 2 || q->shape[q->ndim - 1] != k->shape[k->ndim - 1] ||
        k->shape[k->ndim - 2] != v->shape[v->ndim - 2])
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: q %s, k %s, v %s are not (..., L, E), (..., S, E), (..., S, Ev)", op, sq,
                        sk, sv);
    if (mask && is_causal)
        return nb__fail(ctx, NB_ERR_VALUE, "%s: a mask %s and is_causal cannot both be given", op,
                        nb_shape_str(mask, sm, sizeof sm));
    if (!isfinite(scale) || !(dropout_p >= 0.0 && dropout_p < 1.0))
        return nb__fail(ctx, NB_ERR_VALUE, "%s: scale %g must be finite and dropout_p %g in [0, 1)", op, scale, dropout_p);
    nb_tensor *s = nb_matmul(ctx, q, nb_transpose(ctx, k, -1, -2));
    if (!s) return NULL;
    int nd;
    int64_t shape[NB_MAX_DIMS];
    if (mask && (!nb__broadcast_shape(mask->ndim, mask->shape, s->ndim, s->shape, &nd, shape) || nd != s->ndim ||
                 nb__numel(nd, shape) != s->numel))
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: mask %s does not broadcast to the scores %s of q %s and k %s", op,
                        nb_shape_str(mask, sm, sizeof sm), nb_shape_str(s, sv, sizeof sv), sq, sk);
    const double sc = scale != 0.0 ? scale : 1.0 / sqrt((double)q->shape[q->ndim - 1]);
    nb_tensor *attn = nb_dropout(ctx, nb_softmax(ctx, masked_scores(ctx, nb_mul_scalar(ctx, s, sc), mask, is_causal), -1),
                                 dropout_p);
    if (attn_out) *attn_out = attn;
    return nb_matmul(ctx, attn, v);
}

nb_tensor *nb_scaled_dot_product_attention(nb_ctx *ctx, nb_tensor *q, nb_tensor *k, nb_tensor *v, nb_tensor *mask,
                                           bool is_causal, double dropout_p, double scale) {
    return attention(ctx, q, k, v, mask, is_causal, dropout_p, scale, NULL);
}

/* (N, T, E) -> (N, H, T, E/H) */
static nb_tensor *split_heads(nb_ctx *ctx, nb_tensor *x, int64_t heads) {
    const int64_t N = x->shape[0], T = x->shape[1], E = x->shape[2];
    return nb_transpose(ctx, nb_reshape(ctx, x, 4, (int64_t[]){N, T, heads, E / heads}), 1, 2);
}

/* rows [i*E, (i+1)*E) of the packed in-projection weight (3E, E) or bias (3E) */
static nb_tensor *third(nb_ctx *ctx, nb_tensor *t, int i, int64_t E) {
    return t ? nb_slice(ctx, t, 0, i * E, (i + 1) * E, 1) : NULL;
}

static nb_tensor *mha(nb_ctx *ctx, nb_tensor *query, nb_tensor *key, nb_tensor *value, nb_tensor *in_proj_weight,
                      nb_tensor *in_proj_bias, nb_tensor *out_proj_weight, nb_tensor *out_proj_bias, int64_t num_heads,
                      nb_tensor *mask, bool is_causal, double dropout_p, bool average, nb_tensor **weights) {
    const char *op = weights ? "multi_head_attention_need_weights" : "multi_head_attention";
    if (nb__null(ctx, op, 5, query, key, value, in_proj_weight, out_proj_weight) ||
        (in_proj_bias && nb__null(ctx, op, 1, in_proj_bias)) || (out_proj_bias && nb__null(ctx, op, 1, out_proj_bias)))
        return NULL;
    const bool batched = query->ndim == 3;
    const int64_t E = query->shape[query->ndim - 1];
    char sq[128], sk[128], sv[128], sw[128], so[128];
    nb_shape_str(query, sq, sizeof sq), nb_shape_str(key, sk, sizeof sk), nb_shape_str(value, sv, sizeof sv);
    nb_shape_str(in_proj_weight, sw, sizeof sw), nb_shape_str(out_proj_weight, so, sizeof so);
    if ((query->ndim != 2 && !batched) || key->ndim != query->ndim || value->ndim != query->ndim ||
        key->shape[key->ndim - 1] != E || value->shape[value->ndim - 1] != E ||
        key->shape[key->ndim - 2] != value->shape[value->ndim - 2] || (batched && (key->shape[0] != query->shape[0] ||
                                                                                   value->shape[0] != query->shape[0])))
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: query %s, key %s, value %s are not (N, L, E), (N, S, E), (N, S, E) or unbatched",
                        op, sq, sk, sv);
    if (in_proj_weight->ndim != 2 || in_proj_weight->shape[0] != 3 * E || in_proj_weight->shape[1] != E ||
        out_proj_weight->ndim != 2 || out_proj_weight->shape[0] != E || out_proj_weight->shape[1] != E ||
        (in_proj_bias && (in_proj_bias->ndim != 1 || in_proj_bias->shape[0] != 3 * E)) ||
        (out_proj_bias && (out_proj_bias->ndim != 1 || out_proj_bias->shape[0] != E)))
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: in_proj_weight %s, out_proj_weight %s (and biases) are not (3E, E), (E, E) "
                        "((3E), (E)) for E = %lld", op, sw, so, (long long)E);
    if (num_heads < 1 || E % num_heads != 0)
        return nb__fail(ctx, NB_ERR_VALUE, "%s: num_heads %lld must divide embed_dim %lld", op, (long long)num_heads,
                        (long long)E);
    if (!batched) query = nb_unsqueeze(ctx, query, 0), key = nb_unsqueeze(ctx, key, 0), value = nb_unsqueeze(ctx, value, 0);
    nb_tensor *q = nb_linear(ctx, query, third(ctx, in_proj_weight, 0, E), third(ctx, in_proj_bias, 0, E));
    nb_tensor *k = nb_linear(ctx, key, third(ctx, in_proj_weight, 1, E), third(ctx, in_proj_bias, 1, E));
    nb_tensor *v = nb_linear(ctx, value, third(ctx, in_proj_weight, 2, E), third(ctx, in_proj_bias, 2, E));
    if (!q || !k || !v) return NULL;
    nb_tensor *attn = NULL;
    nb_tensor *o = attention(ctx, split_heads(ctx, q, num_heads), split_heads(ctx, k, num_heads),
                             split_heads(ctx, v, num_heads), mask, is_causal, dropout_p, 0.0, &attn);
    if (!o) return NULL;
    const int64_t N = query->shape[0], L = query->shape[1];
    o = nb_reshape(ctx, nb_transpose(ctx, o, 1, 2), 3, (int64_t[]){N, L, E});
    o = nb_linear(ctx, o, out_proj_weight, out_proj_bias);
    if (weights) { /* (N, H, L, S), or its mean over the heads (N, L, S) */
        nb_tensor *w = average ? nb_div(ctx, nb_sum(ctx, attn, 1, (int[]){1}, false), nb_scalar(ctx, attn->dtype, (double)num_heads))
                                : attn;
        if (!batched) w = nb_squeeze(ctx, w, 0);
        if (!w) return NULL;
        *weights = w;
    }
    return batched || !o ? o : nb_squeeze(ctx, o, 0);
}

nb_tensor *nb_multi_head_attention(nb_ctx *ctx, nb_tensor *query, nb_tensor *key, nb_tensor *value,
                                   nb_tensor *in_proj_weight, nb_tensor *in_proj_bias, nb_tensor *out_proj_weight,
                                   nb_tensor *out_proj_bias, int64_t num_heads, nb_tensor *mask, bool is_causal,
                                   double dropout_p) {
    return mha(ctx, query, key, value, in_proj_weight, in_proj_bias, out_proj_weight, out_proj_bias, num_heads, mask,
               is_causal, dropout_p, false, NULL);
}

nb_tensor *nb_multi_head_attention_need_weights(nb_ctx *ctx, nb_tensor *query, nb_tensor *key, nb_tensor *value,
                                                nb_tensor *in_proj_weight, nb_tensor *in_proj_bias,
                                                nb_tensor *out_proj_weight, nb_tensor *out_proj_bias, int64_t num_heads,
                                                nb_tensor *mask, bool is_causal, double dropout_p,
                                                bool average_attn_weights, nb_tensor **attn_weights) {
    if (!attn_weights) return nb__fail(ctx, NB_ERR_NULL, "multi_head_attention_need_weights: attn_weights is NULL");
    *attn_weights = NULL;
    return mha(ctx, query, key, value, in_proj_weight, in_proj_bias, out_proj_weight, out_proj_bias, num_heads, mask,
               is_causal, dropout_p, average_attn_weights, attn_weights);
}
