/* nabla/nn.h — building blocks for custom architectures: convolution, pooling, normalisation,
 * embeddings, recurrent cells (all ops, differentiable twice), initialisation, and layers.
 *
 * Images are (N, C, H, W). Convolution is three primitive ops (the forward, its input gradient,
 * which is also the transposed convolution, and its weight gradient), each the others' backward
 * rule, so it has gradients of any order; a sample's im2col columns are scratch that no tensor
 * keeps. unfold and fold (col2im) are public ops too, each the other's backward rule. Ops follow ops.h: the context first, a step tensor back, NULL on error
 * with a message naming the op and the shapes (nb_ctx_error / nb_last_error).
 *
 * Layers are plain structs holding pointers to their parameters, which live in a caller-given
 * nb_params under names like "fc1.weight"; there is no hidden registry. Initialisation follows
 * PyTorch's formulas and defaults and draws from a caller-given nb_rng, so a seed fixes a model.
 * Mode-dependent ops (batch norm) follow the context's train flag (nb_ctx_set_train).
 */
#ifndef NABLA_NN_H
#define NABLA_NN_H

#include "graph.h"
#include "ops.h"
#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- unfold / fold ------------------------------------------------------------------- */
/* A sliding window over (H, W): kernel, stride, zero-or-value padding on both sides, dilation. */
typedef struct {
    int64_t kh, kw, sh, sw, ph, pw, dh, dw;
} nb_window2d;
/* Square window with the same value on both axes. */
#define NB_WINDOW2D(k, s, p, d) ((nb_window2d){(k), (k), (s), (s), (p), (p), (d), (d)})

/* im2col: x (N, C, H, W) -> (N, C*kh*kw, L), L = OH*OW output positions; row (c*kh + i)*kw + j
 * holds kernel tap (i, j) of channel c (PyTorch's F.unfold). Out-of-image taps read pad_value.
 * Errors: not 4-D, bad window (kernel/stride/dilation < 1, padding < 0), kernel larger than the
 * padded input. */
nb_tensor *nb_unfold(nb_ctx *ctx, nb_tensor *x, nb_window2d win, double pad_value);
/* col2im, the adjoint of unfold: cols (N, C*kh*kw, L) -> (N, C, H, W), overlapping taps summed,
 * taps in the padding dropped. L must equal the number of windows of an (H, W) image. */
nb_tensor *nb_fold(nb_ctx *ctx, nb_tensor *cols, int64_t H, int64_t W, nb_window2d win);

/* ---- convolution ------------------------------------------------------------------------ */
/* PyTorch's conv2d: x (N, C, H, W), w (O, C/groups, kh, kw), b (O) or NULL -> (N, O, OH, OW),
 * OH = (H + 2*padding - dilation*(kh-1) - 1)/stride + 1. stride/padding/dilation apply to both
 * axes. Errors (NB_ERR_SHAPE / NB_ERR_VALUE): channel mismatch, groups not dividing C or O,
 * kernel larger than the padded input, bias of the wrong size. */
/* Options of the conv family, per axis (h, w) like PyTorch's tuples; zero fields take the
 * defaults (stride 1, dilation 1, groups 1; padding and output_padding 0), so a designated
 * initializer names only what differs: &(nb_conv_opts){.stride = {2, 1}, .padding = {1, 0}}.
 * same: PyTorch's padding="same" (conv2d, stride 1; nabla pads symmetrically, so the dilated
 * kernel must be odd on each axis, where PyTorch would pad one more on the right). */
typedef struct {
    int64_t stride[2], padding[2], dilation[2], output_padding[2];
    int64_t groups;
    bool same;
} nb_conv_opts;
/* conv2d / conv_transpose2d with per-axis options (opts NULL: all defaults). output_padding
 * (transposed only) must be below max(stride, dilation) on each axis, as in PyTorch. */
nb_tensor *nb_conv2d_ex(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, const nb_conv_opts *opts);
nb_tensor *nb_conv_transpose2d_ex(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, const nb_conv_opts *opts);
/* The same with one value for both axes, in PyTorch's positional orders. */
nb_tensor *nb_conv2d(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, int stride, int padding, int dilation,
                     int groups);
/* PyTorch's conv_transpose2d: x (N, C, H, W), w (C, O/groups, kh, kw), b (O) or NULL ->
 * (N, O, OH, OW), OH = (H-1)*stride - 2*padding + dilation*(kh-1) + output_padding + 1.
 * output_padding must be smaller than stride. The adjoint of conv2d in x. */
nb_tensor *nb_conv_transpose2d(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, int stride, int padding,
                               int output_padding, int groups, int dilation);

/* F.conv1d(x, w, b, stride, padding, dilation, groups) of x (N, C, L), w (O, C/groups, k), b (O)
 * or NULL -> (N, O, OL): the first entry of opts' stride, padding and dilation (the second must
 * be 0; no output_padding); same as for conv2d. A view over conv2d of (N, C, 1, L). */
nb_tensor *nb_conv1d(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, const nb_conv_opts *opts);
/* Options of conv3d per axis (d, h, w); zero fields take the defaults (stride 1, padding 0,
 * dilation 1, groups 1). No padding="same". */
typedef struct {
    int64_t stride[3], padding[3], dilation[3];
    int64_t groups;
} nb_conv3d_opts;
/* F.conv3d(x, w, b, stride, padding, dilation, groups) of x (N, C, D, H, W), w (O, C/groups,
 * kd, kh, kw), b (O) or NULL -> (N, O, OD, OH, OW): a sum over the kd depth taps of conv2d over
 * depth slices (errors in H, W and channels are conv2d's, on (N*OD, C, H, W) images). */
nb_tensor *nb_conv3d(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, const nb_conv3d_opts *opts);

/* ---- pooling ------------------------------------------------------------------------------ */
/* Options of max/avg pooling, per axis (h, w) like PyTorch's tuples; zero fields take PyTorch's
 * defaults (stride = kernel, padding 0, dilation 1, floor mode, count_include_pad=True, no
 * divisor override), so a designated initializer names only what differs:
 * &(nb_pool_opts){.kernel = {3, 2}, .stride = {2, 1}, .ceil_mode = true}. kernel is required.
 * padding <= kernel/2 on each axis (padding never wins a max). ceil_mode: PyTorch's rule, the
 * output size rounds up, but a last window that would start inside the right padding is
 * dropped. dilation: max pooling only. exclude_pad (avg only): count_include_pad=False, the
 * divisor counts the window's elements inside the input; otherwise the divisor counts the
 * window clipped to the padded input (so ceil-mode windows past the padding count less).
 * divisor_override (avg only, > 0): the divisor of every window. Max pooling with a dilated
 * window made only of padding is NB_ERR_VALUE (PyTorch returns -inf there). */
typedef struct {
    int64_t kernel[2], stride[2], padding[2], dilation[2];
    bool ceil_mode, exclude_pad;
    int64_t divisor_override;
} nb_pool_opts;
/* F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode) of x (N, C, H, W). The gradient
 * goes to the arg-max of each window, as in PyTorch: the first maximum in row-major order among
 * exact ties; a NaN in a window is its maximum. Differentiable to any order (the backward is a
 * scatter-add at the arg-max positions, whose backward is the gather again). */
nb_tensor *nb_max_pool2d_ex(nb_ctx *ctx, nb_tensor *x, const nb_pool_opts *opts);
/* F.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad = !exclude_pad,
 * divisor_override) of x (N, C, H, W). */
nb_tensor *nb_avg_pool2d_ex(nb_ctx *ctx, nb_tensor *x, const nb_pool_opts *opts);
/* F.max_pool1d / F.avg_pool1d of x (N, C, L): the first entry of each pair of opts (the second
 * must be 0); 2-D pooling of (N, C, 1, L). */
nb_tensor *nb_max_pool1d(nb_ctx *ctx, nb_tensor *x, const nb_pool_opts *opts);
nb_tensor *nb_avg_pool1d(nb_ctx *ctx, nb_tensor *x, const nb_pool_opts *opts);
/* Square windows, in PyTorch's positional order; stride 0 means stride = kernel. */
nb_tensor *nb_max_pool2d(nb_ctx *ctx, nb_tensor *x, int kernel, int stride, int padding);
/* Mean over windows, zero padding counted (PyTorch's count_include_pad=True). stride 0 = kernel. */
nb_tensor *nb_avg_pool2d(nb_ctx *ctx, nb_tensor *x, int kernel, int stride, int padding);
/* Adaptive average pooling of (N, C, H, W) to (N, C, oh, ow), PyTorch's windows: output (i, j)
 * is the mean over rows [floor(i H/oh), ceil((i+1) H/oh)) and the same for columns (any H, W
 * >= 1, oh and ow >= 1, also larger than H and W). oh = ow = 1 is the mean over (H, W); exact
 * multiples are average pooling; other sizes two products with the averaging matrices. */
nb_tensor *nb_adaptive_avg_pool2d(nb_ctx *ctx, nb_tensor *x, int64_t oh, int64_t ow);

/* ---- resampling ------------------------------------------------------------------------- */
typedef enum { NB_INTERP_NEAREST = 0, NB_INTERP_BILINEAR = 1 } nb_interp_mode;
/* F.interpolate's options: exactly one of size (OH, OW) and scale_factor (per axis, > 0; the
 * output is floor(H * scale)); align_corners for bilinear only (false, PyTorch's default:
 * half-pixel centres clamped at 0). Without recompute_scale_factor the sampling uses
 * 1/scale_factor, as PyTorch does, else H/OH. Nearest is PyTorch's legacy "nearest"
 * (floor(dst * scale) in float arithmetic, as PyTorch 1.13's CPU kernel). */
typedef struct {
    int64_t size[2];
    double scale_factor[2];
    nb_interp_mode mode;
    bool align_corners, recompute_scale_factor;
} nb_interp_opts;
/* F.interpolate(x, size | scale_factor, mode, align_corners, recompute_scale_factor) of
 * x (N, C, H, W). Linear in x: index_selects (and constant blend weights), any-order gradients. */
nb_tensor *nb_interpolate(nb_ctx *ctx, nb_tensor *x, const nb_interp_opts *opts);
/* F.pixel_shuffle(x, r): (..., C*r*r, H, W) -> (..., C, H*r, W*r). */
nb_tensor *nb_pixel_shuffle(nb_ctx *ctx, nb_tensor *x, int64_t r);
/* F.pixel_unshuffle(x, r): (..., C, H*r, W*r) -> (..., C*r*r, H, W), the inverse. */
nb_tensor *nb_pixel_unshuffle(nb_ctx *ctx, nb_tensor *x, int64_t r);

/* ---- normalisation ---------------------------------------------------------------------- */
/* Primitives with fused kernels: two passes over the data forward (statistics, then normalise
 * with the affine part), two backward; the node keeps only x, the parameters and the per-channel
 * (per-group) mean and 1/std. Differentiable twice (a recorded backward is built from ops).
 * Results do not depend on the thread count. */
/* Batch norm of x (N, C, H, W) per channel over (N, H, W), or of x (N, C) over N
 * (F.batch_norm). Training (nb_ctx_is_train): batch mean and biased variance normalise;
 * running_mean/running_var (C, long-lived, may be NULL) are updated in place, not recorded:
 *   running = (1 - momentum) * running + momentum * batch_stat, with the unbiased variance.
 * Eval: the running statistics normalise (batch statistics if they are NULL).
 * weight (gamma) and bias (beta), both (C), may be NULL. PyTorch defaults: momentum 0.1, eps 1e-5. */
nb_tensor *nb_batch_norm(nb_ctx *ctx, nb_tensor *x, nb_tensor *weight, nb_tensor *bias, nb_tensor *running_mean,
                         nb_tensor *running_var, double momentum, double eps);
/* relu(batch_norm(...)) in the same passes (F.relu(F.batch_norm(...))): the usual conv-BN-ReLU
 * block without a pass and a tensor for the ReLU. */
nb_tensor *nb_batch_norm_relu(nb_ctx *ctx, nb_tensor *x, nb_tensor *weight, nb_tensor *bias, nb_tensor *running_mean,
                              nb_tensor *running_var, double momentum, double eps);
/* Layer norm over the last `ndims` axes of x; weight/bias (NULL or those axes' shape)
 * (F.layer_norm(x, x.shape[-ndims:], weight, bias, eps)). */
nb_tensor *nb_layer_norm(nb_ctx *ctx, nb_tensor *x, int ndims, nb_tensor *weight, nb_tensor *bias, double eps);
/* Group norm of x (N, C, ...): channels split into `groups`, each normalised over its channels
 * and all spatial positions; weight/bias (C) or NULL (F.group_norm). groups == C is instance norm. */
nb_tensor *nb_group_norm(nb_ctx *ctx, nb_tensor *x, int groups, nb_tensor *weight, nb_tensor *bias, double eps);

/* ---- embedding ------------------------------------------------------------------------------ */
/* Rows of weight (V, D) picked by idx (any shape, NB_I64) -> (idx..., D). The gradient is
 * scattered (added) into the rows used. An index outside [0, V) is NB_ERR_INDEX. */
nb_tensor *nb_embedding(nb_ctx *ctx, nb_tensor *weight, nb_tensor *idx);
/* F.embedding(idx, weight, padding_idx): the same rows, but those picked by padding_idx (in
 * [-V, V), negative counts from the end) get no gradient. */
nb_tensor *nb_embedding_padded(nb_ctx *ctx, nb_tensor *weight, nb_tensor *idx, int64_t padding_idx);

/* ---- attention (composites: differentiable to any order) ------------------------------------ */
/* PyTorch 2.x F.scaled_dot_product_attention: softmax(q k^T * scale + mask) v for q (..., L, E),
 * k (..., S, E), v (..., S, Ev) -> (..., L, Ev), batch axes broadcast. scale 0 means 1/sqrt(E).
 * nabla has no bool dtype, so the mask's dtype says what it is (broadcast to (..., L, S)):
 *   - NB_I64: a boolean mask, nonzero = attend (PyTorch's True); pass nb_cast(ctx, m, NB_I64)
 *     for a 0/1 float mask from a comparison;
 *   - q's float dtype: added to the scores (PyTorch's float mask; -inf blocks).
 * is_causal keeps key j <= query i (torch.ones(L, S).tril(), top-left aligned); it and a mask
 * cannot both be given (NB_ERR_VALUE, as PyTorch). A row with every key blocked is NaN, as in
 * PyTorch. dropout_p (in [0, 1)) drops attention weights through nb_dropout, so only in train
 * mode (nb_ctx_is_train), where F.scaled_dot_product_attention drops in both modes. */
nb_tensor *nb_scaled_dot_product_attention(nb_ctx *ctx, nb_tensor *q, nb_tensor *k, nb_tensor *v, nb_tensor *mask,
                                           bool is_causal, double dropout_p, double scale);
/* nn.MultiheadAttention(E, num_heads, batch_first=True)'s forward with need_weights=False:
 * query (N, L, E), key and value (N, S, E) (or unbatched (L, E), (S, E)) -> (N, L, E).
 * q, k, v = the three row blocks of in_proj_weight (3E, E) / in_proj_bias (3E) applied to query,
 * key, value; split into num_heads heads of E/num_heads; scaled_dot_product_attention per head
 * (mask broadcast to (N, num_heads, L, S), is_causal, dropout_p as there); heads concatenated and
 * projected by out_proj_weight (E, E), out_proj_bias (E). Biases may be NULL. The mask follows
 * scaled_dot_product_attention's convention (i64 nonzero = attend), the opposite of
 * nn.MultiheadAttention's bool attn_mask (True = blocked); a float mask is additive in both. A
 * key_padding_mask is a mask of shape (N, 1, 1, S); PyTorch's (N*num_heads, L, S) masks are
 * passed as (N, num_heads, L, S). */
nb_tensor *nb_multi_head_attention(nb_ctx *ctx, nb_tensor *query, nb_tensor *key, nb_tensor *value,
                                   nb_tensor *in_proj_weight, nb_tensor *in_proj_bias, nb_tensor *out_proj_weight,
                                   nb_tensor *out_proj_bias, int64_t num_heads, nb_tensor *mask, bool is_causal,
                                   double dropout_p);
/* The same forward with need_weights=True: returns the output and sets *attn_weights (a step
 * tensor, differentiable like the output) to the attention weights softmax(q k^T / sqrt(E/H) +
 * mask) — after dropout, as PyTorch —: averaged over the heads, (N, L, S), when
 * average_attn_weights (PyTorch's default), else per head, (N, num_heads, L, S); unbatched
 * inputs drop the N axis. On error returns NULL and *attn_weights is NULL (NB_ERR_NULL when
 * attn_weights itself is NULL). */
nb_tensor *nb_multi_head_attention_need_weights(nb_ctx *ctx, nb_tensor *query, nb_tensor *key, nb_tensor *value,
                                                nb_tensor *in_proj_weight, nb_tensor *in_proj_bias,
                                                nb_tensor *out_proj_weight, nb_tensor *out_proj_bias, int64_t num_heads,
                                                nb_tensor *mask, bool is_causal, double dropout_p,
                                                bool average_attn_weights, nb_tensor **attn_weights);

/* ---- recurrent cells (PyTorch's equations and gate order) ------------------------------------ */
/* Elman: h' = tanh(x w_ih^T + b_ih + h w_hh^T + b_hh). x (N, F), h (N, H), w_ih (H, F),
 * w_hh (H, H), biases (H) or NULL. Returns h' (N, H). */
nb_tensor *nb_rnn_cell(nb_ctx *ctx, nb_tensor *x, nb_tensor *h, nb_tensor *w_ih, nb_tensor *w_hh, nb_tensor *b_ih,
                       nb_tensor *b_hh);
/* LSTM, gates i, f, g, o stacked in w_ih (4H, F), w_hh (4H, H), biases (4H):
 * c' = sigmoid(f)*c + sigmoid(i)*tanh(g), h' = sigmoid(o)*tanh(c'). Returns h'; *c_out = c'. */
nb_tensor *nb_lstm_cell(nb_ctx *ctx, nb_tensor *x, nb_tensor *h, nb_tensor *c, nb_tensor *w_ih, nb_tensor *w_hh,
                        nb_tensor *b_ih, nb_tensor *b_hh, nb_tensor **c_out);
/* GRU, gates r, z, n stacked in w_ih (3H, F), w_hh (3H, H), biases (3H):
 * n = tanh(x_n + r*(h w_hn^T + b_hn)), h' = (1 - z)*n + z*h. Returns h'. */
nb_tensor *nb_gru_cell(nb_ctx *ctx, nb_tensor *x, nb_tensor *h, nb_tensor *w_ih, nb_tensor *w_hh, nb_tensor *b_ih,
                       nb_tensor *b_hh);

typedef enum { NB_RNN_TANH = 0, NB_LSTM = 1, NB_GRU = 2 } nb_rnn_kind;
/* Unroll a cell over x (T, N, F) from h0 (N, H) (and c0 for LSTM; NULL = zeros). Returns all
 * hidden states (T, N, H); *h_last (and *c_last for LSTM) receive the final state (either
 * pointer may be NULL). The input projection of all T steps is one matrix product. */
nb_tensor *nb_rnn_unroll(nb_ctx *ctx, nb_rnn_kind kind, nb_tensor *x, nb_tensor *h0, nb_tensor *c0, nb_tensor *w_ih,
                         nb_tensor *w_hh, nb_tensor *b_ih, nb_tensor *b_hh, nb_tensor **h_last, nb_tensor **c_last);

/* ---- initialisation (PyTorch's torch.nn.init) ------------------------------------------------ */
/* Fill t (any float tensor) from rng, advancing it. fan_in = shape[1] * receptive field,
 * fan_out = shape[0] * receptive field (receptive field = product of shape[2:]); tensors with
 * fewer than 2 dims are NB_ERR_SHAPE for the fan-based initialisers. */
typedef enum { NB_NL_LINEAR, NB_NL_SIGMOID, NB_NL_TANH, NB_NL_RELU, NB_NL_LEAKY_RELU } nb_nonlinearity;
typedef enum { NB_FAN_IN, NB_FAN_OUT } nb_fan_mode;
/* Recommended gain: 1, 1, 5/3, sqrt(2), sqrt(2/(1+slope^2)) (slope used for leaky ReLU only). */
double nb_init_gain(nb_nonlinearity nl, double slope);
nb_status nb_init_fans(const nb_tensor *t, int64_t *fan_in, int64_t *fan_out);
/* U(-b, b), b = gain*sqrt(6/(fan_in+fan_out)) */
nb_status nb_init_xavier_uniform(nb_rng *rng, nb_tensor *t, double gain);
/* N(0, s^2), s = gain*sqrt(2/(fan_in+fan_out)) */
nb_status nb_init_xavier_normal(nb_rng *rng, nb_tensor *t, double gain);
/* U(-b, b), b = gain*sqrt(3/fan). PyTorch's default kaiming_uniform_ is
 * gain = nb_init_gain(NB_NL_LEAKY_RELU, 0) = sqrt(2), mode NB_FAN_IN. */
nb_status nb_init_kaiming_uniform(nb_rng *rng, nb_tensor *t, double gain, nb_fan_mode mode);
/* N(0, s^2), s = gain/sqrt(fan) (He normal with gain sqrt(2)). */
nb_status nb_init_kaiming_normal(nb_rng *rng, nb_tensor *t, double gain, nb_fan_mode mode);

/* ---- layers ------------------------------------------------------------------------------- */
/* Every layer: *_init(layer, params, name, ..., rng) adds its parameters to params as
 * "<name>.weight", "<name>.bias", ... (F32, owned by params), initialises them like PyTorch, and
 * returns NB_OK or the error (duplicate name, bad size). *_forward(ctx, layer, x) applies it.
 * Add all layers before training starts (see params.h). */

/* y = x W^T + b; W (out, in), b (out): both U(-1/sqrt(in), 1/sqrt(in)) (PyTorch's Linear).
 * Set act and dropout after init to fuse an activation and dropout into the layer: forward is
 * then nb_linear_act (dropout in train mode only). */
typedef struct {
    nb_tensor *weight, *bias; /* bias NULL when created without */
    int64_t in, out;
    nb_act act;               /* NB_ACT_NONE after init */
    double dropout;           /* in [0, 1); 0 after init */
} nb_linear_layer;
nb_status nb_linear_layer_init(nb_linear_layer *l, nb_params *ps, const char *name, int64_t in, int64_t out, bool bias,
                               nb_rng *rng);
nb_tensor *nb_linear_layer_forward(nb_ctx *ctx, const nb_linear_layer *l, nb_tensor *x);

/* Conv2d: weight (out, in/groups, k, k), bias (out), both U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
typedef struct {
    nb_tensor *weight, *bias;
    int stride, padding, dilation, groups;
} nb_conv2d_layer;
nb_status nb_conv2d_layer_init(nb_conv2d_layer *l, nb_params *ps, const char *name, int64_t in, int64_t out, int kernel,
                               int stride, int padding, int dilation, int groups, bool bias, nb_rng *rng);
nb_tensor *nb_conv2d_layer_forward(nb_ctx *ctx, const nb_conv2d_layer *l, nb_tensor *x);

/* ConvTranspose2d: weight (in, out/groups, k, k), bias (out); fan_in = (out/groups)*k*k as in PyTorch. */
typedef struct {
    nb_tensor *weight, *bias;
    int stride, padding, output_padding, groups, dilation;
} nb_conv_transpose2d_layer;
nb_status nb_conv_transpose2d_layer_init(nb_conv_transpose2d_layer *l, nb_params *ps, const char *name, int64_t in,
                                         int64_t out, int kernel, int stride, int padding, int output_padding,
                                         int groups, bool bias, nb_rng *rng);
nb_tensor *nb_conv_transpose2d_layer_forward(nb_ctx *ctx, const nb_conv_transpose2d_layer *l, nb_tensor *x);

/* BatchNorm: weight 1, bias 0 (parameters); running_mean 0 / running_var 1 are long-lived
 * tensors owned by the layer (not parameters): release them with nb_batch_norm_layer_free.
 * Set relu after init to apply a ReLU in the same passes (nb_batch_norm_relu). */
typedef struct {
    nb_tensor *weight, *bias;
    nb_tensor *running_mean, *running_var;
    double momentum, eps; /* 0.1, 1e-5 */
    bool relu;            /* false */
} nb_batch_norm_layer;
nb_status nb_batch_norm_layer_init(nb_batch_norm_layer *l, nb_params *ps, const char *name, int64_t channels);
nb_tensor *nb_batch_norm_layer_forward(nb_ctx *ctx, const nb_batch_norm_layer *l, nb_tensor *x);
void nb_batch_norm_layer_free(nb_batch_norm_layer *l);

/* LayerNorm over the last axis of size `features`: weight 1, bias 0, eps 1e-5. */
typedef struct {
    nb_tensor *weight, *bias;
    double eps;
} nb_layer_norm_layer;
nb_status nb_layer_norm_layer_init(nb_layer_norm_layer *l, nb_params *ps, const char *name, int64_t features);
nb_tensor *nb_layer_norm_layer_forward(nb_ctx *ctx, const nb_layer_norm_layer *l, nb_tensor *x);

/* Embedding (torch.nn.Embedding): weight (num, dim) ~ N(0, 1). */
typedef struct {
    nb_tensor *weight;
    bool has_padding_idx; /* padding_idx given: */
    int64_t padding_idx;  /* that row (in [0, num)) starts at zero and gets no gradient */
} nb_embedding_layer;
nb_status nb_embedding_layer_init(nb_embedding_layer *l, nb_params *ps, const char *name, int64_t num, int64_t dim,
                                  nb_rng *rng);
/* nn.Embedding(num, dim, padding_idx): the same, with row padding_idx (in [-num, num), negative
 * counts from the end; else NB_ERR_INDEX) set to zero at init; the forward uses
 * nb_embedding_padded, so that row's gradient stays zero and an optimizer step without weight
 * decay leaves it unchanged (as PyTorch). */
nb_status nb_embedding_layer_init_padded(nb_embedding_layer *l, nb_params *ps, const char *name, int64_t num,
                                         int64_t dim, int64_t padding_idx, nb_rng *rng);
nb_tensor *nb_embedding_layer_forward(nb_ctx *ctx, const nb_embedding_layer *l, nb_tensor *idx);

/* One recurrent layer (Elman/LSTM/GRU): "<name>.weight_ih", "<name>.weight_hh", "<name>.bias_ih",
 * "<name>.bias_hh", all U(-1/sqrt(hidden), 1/sqrt(hidden)). Forward = nb_rnn_unroll. */
typedef struct {
    nb_rnn_kind kind;
    int64_t input_size, hidden_size;
    nb_tensor *w_ih, *w_hh, *b_ih, *b_hh;
} nb_rnn_layer;
nb_status nb_rnn_layer_init(nb_rnn_layer *l, nb_params *ps, const char *name, nb_rnn_kind kind, int64_t input_size,
                            int64_t hidden_size, bool bias, nb_rng *rng);
nb_tensor *nb_rnn_layer_forward(nb_ctx *ctx, const nb_rnn_layer *l, nb_tensor *x, nb_tensor *h0, nb_tensor *c0,
                                nb_tensor **h_last, nb_tensor **c_last);

/* nn.MultiheadAttention(embed_dim, num_heads, dropout, bias, batch_first=True):
 * "<name>.in_proj_weight" (3E, E) xavier_uniform, "<name>.in_proj_bias" (3E) 0,
 * "<name>.out_proj.weight" (E, E) Linear's U(-1/sqrt(E), 1/sqrt(E)), "<name>.out_proj.bias" (E) 0
 * (PyTorch's names and initialisation). Forward = nb_multi_head_attention with the layer's dropout. */
typedef struct {
    nb_tensor *in_proj_weight, *in_proj_bias, *out_proj_weight, *out_proj_bias; /* biases NULL without */
    int64_t embed_dim, num_heads;
    double dropout;
} nb_multi_head_attention_layer;
nb_status nb_multi_head_attention_layer_init(nb_multi_head_attention_layer *l, nb_params *ps, const char *name,
                                             int64_t embed_dim, int64_t num_heads, double dropout, bool bias,
                                             nb_rng *rng);
nb_tensor *nb_multi_head_attention_layer_forward(nb_ctx *ctx, const nb_multi_head_attention_layer *l, nb_tensor *query,
                                                 nb_tensor *key, nb_tensor *value, nb_tensor *mask, bool is_causal);
/* The layer's forward with need_weights=True (see nb_multi_head_attention_need_weights). */
nb_tensor *nb_multi_head_attention_layer_forward_need_weights(nb_ctx *ctx, const nb_multi_head_attention_layer *l,
                                                              nb_tensor *query, nb_tensor *key, nb_tensor *value,
                                                              nb_tensor *mask, bool is_causal,
                                                              bool average_attn_weights, nb_tensor **attn_weights);

#ifdef __cplusplus
}
#endif
/* call-site capture for anomaly reports (see NB__AT in graph.h) */
#if !defined(NB_NO_SITE) && !defined(NB_INTERNAL)
#define nb_unfold(...) NB__AT(nb_unfold, __VA_ARGS__)
#define nb_fold(...) NB__AT(nb_fold, __VA_ARGS__)
#define nb_conv2d(...) NB__AT(nb_conv2d, __VA_ARGS__)
#define nb_conv2d_ex(...) NB__AT(nb_conv2d_ex, __VA_ARGS__)
#define nb_conv_transpose2d_ex(...) NB__AT(nb_conv_transpose2d_ex, __VA_ARGS__)
#define nb_conv_transpose2d(...) NB__AT(nb_conv_transpose2d, __VA_ARGS__)
#define nb_max_pool2d(...) NB__AT(nb_max_pool2d, __VA_ARGS__)
#define nb_max_pool2d_ex(...) NB__AT(nb_max_pool2d_ex, __VA_ARGS__)
#define nb_avg_pool2d_ex(...) NB__AT(nb_avg_pool2d_ex, __VA_ARGS__)
#define nb_max_pool1d(...) NB__AT(nb_max_pool1d, __VA_ARGS__)
#define nb_avg_pool1d(...) NB__AT(nb_avg_pool1d, __VA_ARGS__)
#define nb_avg_pool2d(...) NB__AT(nb_avg_pool2d, __VA_ARGS__)
#define nb_adaptive_avg_pool2d(...) NB__AT(nb_adaptive_avg_pool2d, __VA_ARGS__)
#define nb_batch_norm(...) NB__AT(nb_batch_norm, __VA_ARGS__)
#define nb_batch_norm_relu(...) NB__AT(nb_batch_norm_relu, __VA_ARGS__)
#define nb_layer_norm(...) NB__AT(nb_layer_norm, __VA_ARGS__)
#define nb_group_norm(...) NB__AT(nb_group_norm, __VA_ARGS__)
#define nb_embedding(...) NB__AT(nb_embedding, __VA_ARGS__)
#define nb_embedding_padded(...) NB__AT(nb_embedding_padded, __VA_ARGS__)
#define nb_conv1d(...) NB__AT(nb_conv1d, __VA_ARGS__)
#define nb_conv3d(...) NB__AT(nb_conv3d, __VA_ARGS__)
#define nb_interpolate(...) NB__AT(nb_interpolate, __VA_ARGS__)
#define nb_pixel_shuffle(...) NB__AT(nb_pixel_shuffle, __VA_ARGS__)
#define nb_pixel_unshuffle(...) NB__AT(nb_pixel_unshuffle, __VA_ARGS__)
#define nb_scaled_dot_product_attention(...) NB__AT(nb_scaled_dot_product_attention, __VA_ARGS__)
#define nb_multi_head_attention(...) NB__AT(nb_multi_head_attention, __VA_ARGS__)
#define nb_multi_head_attention_need_weights(...) NB__AT(nb_multi_head_attention_need_weights, __VA_ARGS__)
#define nb_rnn_cell(...) NB__AT(nb_rnn_cell, __VA_ARGS__)
#define nb_lstm_cell(...) NB__AT(nb_lstm_cell, __VA_ARGS__)
#define nb_gru_cell(...) NB__AT(nb_gru_cell, __VA_ARGS__)
#define nb_rnn_unroll(...) NB__AT(nb_rnn_unroll, __VA_ARGS__)
#define nb_linear_layer_forward(...) NB__AT(nb_linear_layer_forward, __VA_ARGS__)
#define nb_conv2d_layer_forward(...) NB__AT(nb_conv2d_layer_forward, __VA_ARGS__)
#define nb_conv_transpose2d_layer_forward(...) NB__AT(nb_conv_transpose2d_layer_forward, __VA_ARGS__)
#define nb_batch_norm_layer_forward(...) NB__AT(nb_batch_norm_layer_forward, __VA_ARGS__)
#define nb_layer_norm_layer_forward(...) NB__AT(nb_layer_norm_layer_forward, __VA_ARGS__)
#define nb_embedding_layer_forward(...) NB__AT(nb_embedding_layer_forward, __VA_ARGS__)
#define nb_rnn_layer_forward(...) NB__AT(nb_rnn_layer_forward, __VA_ARGS__)
#define nb_multi_head_attention_layer_forward(...) NB__AT(nb_multi_head_attention_layer_forward, __VA_ARGS__)
#define nb_multi_head_attention_layer_forward_need_weights(...) NB__AT(nb_multi_head_attention_layer_forward_need_weights, __VA_ARGS__)
#endif

#endif
