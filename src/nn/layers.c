/* Layers: plain structs pointing at parameters that live in a caller's nb_params, initialised
 * like PyTorch's modules; and the embedding op. */
#include "../internal.h"

#include <stdio.h>

/* "<name>.<suffix>" added to ps; NULL (error set) on failure */
static nb_tensor *param(nb_params *ps, const char *name, const char *suffix, int ndim, const int64_t *shape) {
    char full[256];
    if (snprintf(full, sizeof full, "%s.%s", name, suffix) >= (int)sizeof full)
        return nb_set_error(NB_ERR_VALUE, "layer: name '%s' is too long", name), NULL;
    return nb_params_add(ps, full, ndim, shape);
}

static nb_status check_sizes(const char *op, nb_params *ps, const char *name, int n, const int64_t *sizes) {
    if (!ps || !name) return nb_set_error(NB_ERR_NULL, "%s: params or name is NULL", op);
    for (int i = 0; i < n; i++)
        if (sizes[i] < 1) return nb_set_error(NB_ERR_VALUE, "%s '%s': size %lld must be positive", op, name, (long long)sizes[i]);
    return NB_OK;
}

/* PyTorch's default for Linear/Conv: weight kaiming_uniform(a=sqrt(5)), i.e. U(-1/sqrt(fan_in),
 * 1/sqrt(fan_in)), and the bias from the same bound */
static nb_status torch_default_init(nb_rng *rng, nb_tensor *w, nb_tensor *b) {
    int64_t fan_in;
    nb_status s = nb_init_fans(w, &fan_in, NULL);
    if (s == NB_OK) s = nb_init_kaiming_uniform(rng, w, nb_init_gain(NB_NL_LEAKY_RELU, sqrt(5.0)), NB_FAN_IN);
    if (s == NB_OK && b) s = nb_rng_uniform(rng, b, -1.0 / sqrt((double)fan_in), 1.0 / sqrt((double)fan_in));
    return s;
}

#define TRY_PARAM(dst, ...)                        \
    do {                                           \
        if (!((dst) = param(__VA_ARGS__)))         \
            return nb_last_status();               \
    } while (0)

/* ---- linear ------------------------------------------------------------------------------------ */
nb_status nb_linear_layer_init(nb_linear_layer *l, nb_params *ps, const char *name, int64_t in, int64_t out, bool bias,
                               nb_rng *rng) {
    if (!l || !rng) return nb_set_error(NB_ERR_NULL, "linear_layer_init: layer or rng is NULL");
    nb_status s = check_sizes("linear_layer_init", ps, name, 2, (int64_t[]){in, out});
    if (s != NB_OK) return s;
    *l = (nb_linear_layer){.in = in, .out = out};
    TRY_PARAM(l->weight, ps, name, "weight", NB_SHAPE(out, in));
    if (bias) TRY_PARAM(l->bias, ps, name, "bias", NB_SHAPE(out));
    return torch_default_init(rng, l->weight, l->bias);
}

nb_tensor *nb_linear_layer_forward(nb_ctx *ctx, const nb_linear_layer *l, nb_tensor *x) {
    if (!l) return nb__fail(ctx, NB_ERR_NULL, "linear_layer_forward: layer is NULL");
    return nb_linear_act(ctx, x, l->weight, l->bias, l->act, l->dropout);
}

/* ---- conv2d / conv_transpose2d ------------------------------------------------------------------- */
nb_status nb_conv2d_layer_init(nb_conv2d_layer *l, nb_params *ps, const char *name, int64_t in, int64_t out, int kernel,
                               int stride, int padding, int dilation, int groups, bool bias, nb_rng *rng) {
    if (!l || !rng) return nb_set_error(NB_ERR_NULL, "conv2d_layer_init: layer or rng is NULL");
    nb_status s = check_sizes("conv2d_layer_init", ps, name, 5, (int64_t[]){in, out, kernel, stride, dilation});
    if (s != NB_OK) return s;
    if (groups < 1 || in % groups || out % groups)
        return nb_set_error(NB_ERR_VALUE, "conv2d_layer_init '%s': groups %d must divide in %lld and out %lld", name, groups,
                            (long long)in, (long long)out);
    *l = (nb_conv2d_layer){.stride = stride, .padding = padding, .dilation = dilation, .groups = groups};
    TRY_PARAM(l->weight, ps, name, "weight", NB_SHAPE(out, in / groups, kernel, kernel));
    if (bias) TRY_PARAM(l->bias, ps, name, "bias", NB_SHAPE(out));
    return torch_default_init(rng, l->weight, l->bias);
}

nb_tensor *nb_conv2d_layer_forward(nb_ctx *ctx, const nb_conv2d_layer *l, nb_tensor *x) {
    if (!l) return nb__fail(ctx, NB_ERR_NULL, "conv2d_layer_forward: layer is NULL");
    return nb_conv2d(ctx, x, l->weight, l->bias, l->stride, l->padding, l->dilation, l->groups);
}

nb_status nb_conv_transpose2d_layer_init(nb_conv_transpose2d_layer *l, nb_params *ps, const char *name, int64_t in,
                                         int64_t out, int kernel, int stride, int padding, int output_padding,
                                         int groups, bool bias, nb_rng *rng) {
    if (!l || !rng) return nb_set_error(NB_ERR_NULL, "conv_transpose2d_layer_init: layer or rng is NULL");
    nb_status s = check_sizes("conv_transpose2d_layer_init", ps, name, 4, (int64_t[]){in, out, kernel, stride});
    if (s != NB_OK) return s;
    if (groups < 1 || in % groups || out % groups)
        return nb_set_error(NB_ERR_VALUE, "conv_transpose2d_layer_init '%s': groups %d must divide in %lld and out %lld", name,
                            groups, (long long)in, (long long)out);
    *l = (nb_conv_transpose2d_layer){.stride = stride, .padding = padding, .output_padding = output_padding,
                                     .groups = groups, .dilation = 1};
    TRY_PARAM(l->weight, ps, name, "weight", NB_SHAPE(in, out / groups, kernel, kernel));
    if (bias) TRY_PARAM(l->bias, ps, name, "bias", NB_SHAPE(out));
    return torch_default_init(rng, l->weight, l->bias);
}

nb_tensor *nb_conv_transpose2d_layer_forward(nb_ctx *ctx, const nb_conv_transpose2d_layer *l, nb_tensor *x) {
    if (!l) return nb__fail(ctx, NB_ERR_NULL, "conv_transpose2d_layer_forward: layer is NULL");
    return nb_conv_transpose2d(ctx, x, l->weight, l->bias, l->stride, l->padding, l->output_padding, l->groups,
                               l->dilation);
}

/* ---- normalisation ------------------------------------------------------------------------------ */
nb_status nb_batch_norm_layer_init(nb_batch_norm_layer *l, nb_params *ps, const char *name, int64_t channels) {
    if (!l) return nb_set_error(NB_ERR_NULL, "batch_norm_layer_init: layer is NULL");
    nb_status s = check_sizes("batch_norm_layer_init", ps, name, 1, &channels);
    if (s != NB_OK) return s;
    *l = (nb_batch_norm_layer){.momentum = 0.1, .eps = 1e-5};
    TRY_PARAM(l->weight, ps, name, "weight", NB_SHAPE(channels));
    TRY_PARAM(l->bias, ps, name, "bias", NB_SHAPE(channels));
    l->running_mean = nb_tensor_new(ps->dtype, NB_SHAPE(channels)); /* buffers follow the parameters' dtype */
    l->running_var = nb_tensor_new(ps->dtype, NB_SHAPE(channels));
    if (!l->running_mean || !l->running_var) {
        nb_batch_norm_layer_free(l);
        return nb_last_status();
    }
    nb_fill(l->weight, 1.0);
    nb_fill(l->running_var, 1.0);
    return NB_OK;
}

nb_tensor *nb_batch_norm_layer_forward(nb_ctx *ctx, const nb_batch_norm_layer *l, nb_tensor *x) {
    if (!l) return nb__fail(ctx, NB_ERR_NULL, "batch_norm_layer_forward: layer is NULL");
    return (l->relu ? nb_batch_norm_relu : nb_batch_norm)(ctx, x, l->weight, l->bias, l->running_mean, l->running_var,
                                                          l->momentum, l->eps);
}

void nb_batch_norm_layer_free(nb_batch_norm_layer *l) {
    if (!l) return;
    nb_tensor_free(l->running_mean);
    nb_tensor_free(l->running_var);
    l->running_mean = l->running_var = NULL;
}

nb_status nb_layer_norm_layer_init(nb_layer_norm_layer *l, nb_params *ps, const char *name, int64_t features) {
    if (!l) return nb_set_error(NB_ERR_NULL, "layer_norm_layer_init: layer is NULL");
    nb_status s = check_sizes("layer_norm_layer_init", ps, name, 1, &features);
    if (s != NB_OK) return s;
    *l = (nb_layer_norm_layer){.eps = 1e-5};
    TRY_PARAM(l->weight, ps, name, "weight", NB_SHAPE(features));
    TRY_PARAM(l->bias, ps, name, "bias", NB_SHAPE(features));
    return nb_fill(l->weight, 1.0);
}

nb_tensor *nb_layer_norm_layer_forward(nb_ctx *ctx, const nb_layer_norm_layer *l, nb_tensor *x) {
    if (!l) return nb__fail(ctx, NB_ERR_NULL, "layer_norm_layer_forward: layer is NULL");
    return nb_layer_norm(ctx, x, 1, l->weight, l->bias, l->eps);
}

/* ---- embedding ------------------------------------------------------------------------------------ */
nb_tensor *nb_embedding(nb_ctx *ctx, nb_tensor *weight, nb_tensor *idx) {
    if (nb__null(ctx, "embedding", 2, weight, idx)) return NULL;
    char a[128], b[128];
    if (idx->dtype != NB_I64)
        return nb__fail(ctx, NB_ERR_DTYPE, "embedding: indices must be i64, got %s", nb_dtype_name(idx->dtype));
    for (int64_t i = 0; weight->ndim == 2 && i < idx->numel; i++) {
        const int64_t k = (int64_t)nb_get(idx, i);
        if (k < 0 || k >= weight->shape[0])
            return nb__fail(ctx, NB_ERR_INDEX, "embedding: index %lld at position %lld is outside [0, %lld)", (long long)k,
                            (long long)i, (long long)weight->shape[0]);
    }
    if (weight->ndim != 2 || idx->ndim + 1 > NB_MAX_DIMS)
        return nb__fail(ctx, NB_ERR_SHAPE, "embedding: weight %s must be (V, D) and indices %s %s i64", nb_shape_str(weight, a, sizeof a),
                        nb_dtype_name(idx->dtype), nb_shape_str(idx, b, sizeof b));
    nb_tensor *rows = nb_index_select(ctx, weight, 0, nb_reshape(ctx, idx, NB_SHAPE(-1)));
    int64_t shape[NB_MAX_DIMS];
    memcpy(shape, idx->shape, (size_t)idx->ndim * sizeof *shape);
    shape[idx->ndim] = weight->shape[1];
    return nb_reshape(ctx, rows, idx->ndim + 1, shape);
}

/* The rows at padding_idx are detached: the same values, no gradient (PyTorch's padding_idx). */
nb_tensor *nb_embedding_padded(nb_ctx *ctx, nb_tensor *weight, nb_tensor *idx, int64_t padding_idx) {
    if (nb__null(ctx, "embedding", 2, weight, idx)) return NULL;
    const int64_t V = weight->ndim == 2 ? weight->shape[0] : 0;
    if (padding_idx < -V || padding_idx >= V)
        return nb__fail(ctx, NB_ERR_INDEX, "embedding: padding_idx %lld is outside [-%lld, %lld)", (long long)padding_idx,
                        (long long)V, (long long)V);
    if (padding_idx < 0) padding_idx += V;
    nb_tensor *rows = nb_embedding(ctx, weight, idx);
    if (!rows) return NULL;
    int64_t shape[NB_MAX_DIMS];
    memcpy(shape, rows->shape, (size_t)rows->ndim * sizeof *shape);
    shape[rows->ndim - 1] = 1;
    nb_tensor *pad = nb__new(ctx, weight->dtype, rows->ndim, shape); /* 1 where idx is padding_idx */
    if (!pad) return NULL;
    for (int64_t i = 0; i < idx->numel; i++) nb_set(pad, i, (int64_t)nb_get(idx, i) == padding_idx);
    return nb_where(ctx, pad, nb_detach(ctx, rows), rows);
}

static nb_status embedding_init(const char *op, nb_embedding_layer *l, nb_params *ps, const char *name, int64_t num,
                                int64_t dim, bool padded, int64_t padding_idx, nb_rng *rng) {
    if (!l || !rng) return nb_set_error(NB_ERR_NULL, "%s: layer or rng is NULL", op);
    nb_status s = check_sizes(op, ps, name, 2, (int64_t[]){num, dim});
    if (s != NB_OK) return s;
    if (padded && (padding_idx < -num || padding_idx >= num))
        return nb_set_error(NB_ERR_INDEX, "%s '%s': padding_idx %lld is outside [-%lld, %lld)", op, name,
                            (long long)padding_idx, (long long)num, (long long)num);
    *l = (nb_embedding_layer){.has_padding_idx = padded, .padding_idx = padding_idx < 0 ? padding_idx + num : padding_idx};
    TRY_PARAM(l->weight, ps, name, "weight", NB_SHAPE(num, dim));
    s = nb_rng_normal(rng, l->weight, 0.0, 1.0);
    for (int64_t j = 0; s == NB_OK && padded && j < dim; j++) nb_set(l->weight, l->padding_idx * dim + j, 0.0);
    return s;
}

nb_status nb_embedding_layer_init(nb_embedding_layer *l, nb_params *ps, const char *name, int64_t num, int64_t dim,
                                  nb_rng *rng) {
    return embedding_init("embedding_layer_init", l, ps, name, num, dim, false, 0, rng);
}

nb_status nb_embedding_layer_init_padded(nb_embedding_layer *l, nb_params *ps, const char *name, int64_t num,
                                         int64_t dim, int64_t padding_idx, nb_rng *rng) {
    return embedding_init("embedding_layer_init", l, ps, name, num, dim, true, padding_idx, rng);
}

nb_tensor *nb_embedding_layer_forward(nb_ctx *ctx, const nb_embedding_layer *l, nb_tensor *idx) {
    if (!l) return nb__fail(ctx, NB_ERR_NULL, "embedding_layer_forward: layer is NULL");
    return l->has_padding_idx ? nb_embedding_padded(ctx, l->weight, idx, l->padding_idx) : nb_embedding(ctx, l->weight, idx);
}

/* ---- recurrent --------------------------------------------------------------------------------- */
nb_status nb_rnn_layer_init(nb_rnn_layer *l, nb_params *ps, const char *name, nb_rnn_kind kind, int64_t input_size,
                            int64_t hidden_size, bool bias, nb_rng *rng) {
    if (!l || !rng) return nb_set_error(NB_ERR_NULL, "rnn_layer_init: layer or rng is NULL");
    if ((unsigned)kind > NB_GRU) return nb_set_error(NB_ERR_VALUE, "rnn_layer_init: unknown cell kind %d", (int)kind);
    nb_status s = check_sizes("rnn_layer_init", ps, name, 2, (int64_t[]){input_size, hidden_size});
    if (s != NB_OK) return s;
    const int64_t G = kind == NB_LSTM ? 4 : kind == NB_GRU ? 3 : 1;
    *l = (nb_rnn_layer){.kind = kind, .input_size = input_size, .hidden_size = hidden_size};
    TRY_PARAM(l->w_ih, ps, name, "weight_ih", NB_SHAPE(G * hidden_size, input_size));
    TRY_PARAM(l->w_hh, ps, name, "weight_hh", NB_SHAPE(G * hidden_size, hidden_size));
    if (bias) {
        TRY_PARAM(l->b_ih, ps, name, "bias_ih", NB_SHAPE(G * hidden_size));
        TRY_PARAM(l->b_hh, ps, name, "bias_hh", NB_SHAPE(G * hidden_size));
    }
    /* PyTorch: every weight and bias U(-1/sqrt(hidden), 1/sqrt(hidden)) */
    const double k = 1.0 / sqrt((double)hidden_size);
    nb_tensor *all[4] = {l->w_ih, l->w_hh, l->b_ih, l->b_hh};
    for (int i = 0; i < 4 && s == NB_OK; i++)
        if (all[i]) s = nb_rng_uniform(rng, all[i], -k, k);
    return s;
}

nb_tensor *nb_rnn_layer_forward(nb_ctx *ctx, const nb_rnn_layer *l, nb_tensor *x, nb_tensor *h0, nb_tensor *c0,
                                nb_tensor **h_last, nb_tensor **c_last) {
    if (!l) return nb__fail(ctx, NB_ERR_NULL, "rnn_layer_forward: layer is NULL");
    return nb_rnn_unroll(ctx, l->kind, x, h0, c0, l->w_ih, l->w_hh, l->b_ih, l->b_hh, h_last, c_last);
}

/* ---- multi-head attention ------------------------------------------------------------------------ */
nb_status nb_multi_head_attention_layer_init(nb_multi_head_attention_layer *l, nb_params *ps, const char *name,
                                             int64_t embed_dim, int64_t num_heads, double dropout, bool bias,
                                             nb_rng *rng) {
    if (!l || !rng) return nb_set_error(NB_ERR_NULL, "multi_head_attention_layer_init: layer or rng is NULL");
    nb_status s = check_sizes("multi_head_attention_layer_init", ps, name, 2, (int64_t[]){embed_dim, num_heads});
    if (s != NB_OK) return s;
    if (embed_dim % num_heads != 0 || !(dropout >= 0.0 && dropout < 1.0))
        return nb_set_error(NB_ERR_VALUE, "multi_head_attention_layer_init '%s': num_heads %lld must divide embed_dim %lld "
                            "and dropout %g be in [0, 1)", name, (long long)num_heads, (long long)embed_dim, dropout);
    *l = (nb_multi_head_attention_layer){.embed_dim = embed_dim, .num_heads = num_heads, .dropout = dropout};
    const int64_t E = embed_dim;
    TRY_PARAM(l->in_proj_weight, ps, name, "in_proj_weight", NB_SHAPE(3 * E, E));
    TRY_PARAM(l->out_proj_weight, ps, name, "out_proj.weight", NB_SHAPE(E, E));
    if (bias) { /* zero, as PyTorch's _reset_parameters leaves them */
        TRY_PARAM(l->in_proj_bias, ps, name, "in_proj_bias", NB_SHAPE(3 * E));
        TRY_PARAM(l->out_proj_bias, ps, name, "out_proj.bias", NB_SHAPE(E));
    }
    s = nb_init_xavier_uniform(rng, l->in_proj_weight, 1.0);
    return s == NB_OK ? torch_default_init(rng, l->out_proj_weight, NULL) : s;
}

nb_tensor *nb_multi_head_attention_layer_forward(nb_ctx *ctx, const nb_multi_head_attention_layer *l, nb_tensor *query,
                                                 nb_tensor *key, nb_tensor *value, nb_tensor *mask, bool is_causal) {
    if (!l) return nb__fail(ctx, NB_ERR_NULL, "multi_head_attention_layer_forward: layer is NULL");
    return nb_multi_head_attention(ctx, query, key, value, l->in_proj_weight, l->in_proj_bias, l->out_proj_weight,
                                   l->out_proj_bias, l->num_heads, mask, is_causal, l->dropout);
}

nb_tensor *nb_multi_head_attention_layer_forward_need_weights(nb_ctx *ctx, const nb_multi_head_attention_layer *l,
                                                              nb_tensor *query, nb_tensor *key, nb_tensor *value,
                                                              nb_tensor *mask, bool is_causal,
                                                              bool average_attn_weights, nb_tensor **attn_weights) {
    if (!l) return nb__fail(ctx, NB_ERR_NULL, "multi_head_attention_layer_forward: layer is NULL");
    return nb_multi_head_attention_need_weights(ctx, query, key, value, l->in_proj_weight, l->in_proj_bias,
                                                l->out_proj_weight, l->out_proj_bias, l->num_heads, mask, is_causal,
                                                l->dropout, average_attn_weights, attn_weights);
}
