/* nabla/nn.h — building blocks for custom architectures: convolution, pooling, normalisation,
 * embeddings, recurrent cells (all ops, differentiable twice), initialisation, and layers.
 *
 * Images are (N, C, H, W). Convolution is unfold (im2col) + nb_matmul + reshape; unfold and fold
 * (col2im) are two primitive ops whose backward rules are each other, so every op here has
 * gradients of any order. Ops follow ops.h: the context first, a step tensor back, NULL on error
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

/* ---- pooling ------------------------------------------------------------------------------ */
/* Max over kernel x kernel windows of x (N, C, H, W); stride 0 means stride = kernel (PyTorch's
 * default); padding at most kernel/2 (padding never wins). The gradient goes to the arg-max of
 * each window, as in PyTorch: the first maximum in row-major order among exact ties; a NaN in a
 * window is its maximum. Differentiable to any order (the backward is a scatter-add at the
 * arg-max positions, whose backward is the gather again). */
nb_tensor *nb_max_pool2d(nb_ctx *ctx, nb_tensor *x, int kernel, int stride, int padding);
/* Mean over windows, zero padding counted (PyTorch's count_include_pad=True). stride 0 = kernel. */
nb_tensor *nb_avg_pool2d(nb_ctx *ctx, nb_tensor *x, int kernel, int stride, int padding);
/* Adaptive average pooling of (N, C, H, W) to (N, C, oh, ow). oh = ow = 1 is the mean over
 * (H, W); otherwise H and W must be multiples of oh and ow (else NB_ERR_UNSUPPORTED). */
nb_tensor *nb_adaptive_avg_pool2d(nb_ctx *ctx, nb_tensor *x, int64_t oh, int64_t ow);

/* ---- normalisation ---------------------------------------------------------------------- */
/* Batch norm of x (N, C, H, W) per channel over (N, H, W), or of x (N, C) over N.
 * Training (nb_ctx_is_train): batch mean and biased variance normalise; running_mean/running_var
 * (C, long-lived, may be NULL) are updated in place, not recorded:
 *   running = (1 - momentum) * running + momentum * batch_stat, with the unbiased variance.
 * Eval: the running statistics normalise (batch statistics if they are NULL).
 * weight (gamma) and bias (beta), both (C), may be NULL. PyTorch defaults: momentum 0.1, eps 1e-5. */
nb_tensor *nb_batch_norm(nb_ctx *ctx, nb_tensor *x, nb_tensor *weight, nb_tensor *bias, nb_tensor *running_mean,
                         nb_tensor *running_var, double momentum, double eps);
/* Layer norm over the last `ndims` axes of x; weight/bias (NULL or those axes' shape). */
nb_tensor *nb_layer_norm(nb_ctx *ctx, nb_tensor *x, int ndims, nb_tensor *weight, nb_tensor *bias, double eps);
/* Group norm of x (N, C, ...): channels split into `groups`, each normalised over its channels
 * and all spatial positions; weight/bias (C) or NULL. groups == C is instance norm. */
nb_tensor *nb_group_norm(nb_ctx *ctx, nb_tensor *x, int groups, nb_tensor *weight, nb_tensor *bias, double eps);

/* ---- embedding ------------------------------------------------------------------------------ */
/* Rows of weight (V, D) picked by idx (any shape, NB_I64) -> (idx..., D). The gradient is
 * scattered (added) into the rows used. An index outside [0, V) is NB_ERR_INDEX. */
nb_tensor *nb_embedding(nb_ctx *ctx, nb_tensor *weight, nb_tensor *idx);

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
 * tensors owned by the layer (not parameters): release them with nb_batch_norm_layer_free. */
typedef struct {
    nb_tensor *weight, *bias;
    nb_tensor *running_mean, *running_var;
    double momentum, eps; /* 0.1, 1e-5 */
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

/* Embedding: weight (num, dim) ~ N(0, 1). */
typedef struct {
    nb_tensor *weight;
} nb_embedding_layer;
nb_status nb_embedding_layer_init(nb_embedding_layer *l, nb_params *ps, const char *name, int64_t num, int64_t dim,
                                  nb_rng *rng);
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
#define nb_avg_pool2d(...) NB__AT(nb_avg_pool2d, __VA_ARGS__)
#define nb_adaptive_avg_pool2d(...) NB__AT(nb_adaptive_avg_pool2d, __VA_ARGS__)
#define nb_batch_norm(...) NB__AT(nb_batch_norm, __VA_ARGS__)
#define nb_layer_norm(...) NB__AT(nb_layer_norm, __VA_ARGS__)
#define nb_group_norm(...) NB__AT(nb_group_norm, __VA_ARGS__)
#define nb_embedding(...) NB__AT(nb_embedding, __VA_ARGS__)
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
#endif

#endif
