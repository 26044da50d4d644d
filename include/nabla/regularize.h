/* nabla/regularize.h — penalties, dropout, constraints, early stopping.
 *
 * Penalties are scalar graph terms: add them to the loss and autodiff gives their gradients
 * (gradcheck-able, differentiable twice). L2, L1 and elastic net read each tensor once forward
 * and once backward (a sum of squares / of absolute values with a closed-form gradient; with
 * create_graph the gradient is a graph term), with the bits of lambda * sum(w * w) and
 * lambda * sum(|w|) written as compositions of ops. Each comes in two forms: over a list of tensors (any
 * float dtype, so f64 tensors can be gradchecked) and over an nb_params, where `include` (an
 * array of ps->n flags, or NULL for ps->decay) says which parameters are penalised — by default
 * biases and norm gains are not.
 *
 * Conventions (no hidden 1/2): L2 = lambda * sum w^2, which equals Keras's
 * regularizers.l2(lambda) (0.01 * sum(w^2) for l2(0.01)); its gradient is 2*lambda*w, so SGD
 * weight_decay wd corresponds to lambda = wd/2. L1 = lambda * sum |w| with subgradient 0 at 0.
 */
#ifndef NABLA_REGULARIZE_H
#define NABLA_REGULARIZE_H

#include "graph.h"
#include "optim.h"
#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- penalties (0-d tensors of the inputs' dtype; NULL + error on bad input) ------------- */
/* Graph terms: add them to the loss. Under nb_backward (no create_graph, no anomaly mode) the
 * L2 / L1 / elastic-net gradient of a contiguous parameter without hooks is not built as a
 * tensor: it is added into .grad in one pass when the parameter's gradient is final, after
 * the rest (so a linear layer's GEMM still writes .grad first). The same bits when the
 * parameter has one other use; with create_graph or nb_grad it stays a graph term. */
/* lambda * sum_k sum(ws[k]^2). NB_ERR_VALUE for lambda < 0 or not finite; n >= 1. */
nb_tensor *nb_l2_penalty(nb_ctx *ctx, int n, nb_tensor *const *ws, double lambda);
/* lambda * sum_k sum(|ws[k]|). */
nb_tensor *nb_l1_penalty(nb_ctx *ctx, int n, nb_tensor *const *ws, double lambda);
/* Elastic net: l1 * sum |w| + l2 * sum w^2. */
nb_tensor *nb_elastic_net_penalty(nb_ctx *ctx, int n, nb_tensor *const *ws, double l1, double l2);
/* Group lasso: lambda * sum_k sum_j ||ws[k] restricted to index j along `axis`||_2, i.e. each
 * slice along `axis` is one group. For a Linear weight (out, in): axis 0 groups the rows
 * (the incoming weights of one output unit — drops units), axis 1 the columns (the weights
 * leaving one input feature — feature selection); for a conv weight (O, C, kh, kw), axis 0
 * groups whole filters. A tensor whose ndim is <= axis is one group. An all-zero group has value
 * 0 and gradient 0 (not NaN). Multiply lambda by sqrt(group size) for Yuan & Lin's weighting. */
nb_tensor *nb_group_lasso_penalty(nb_ctx *ctx, int n, nb_tensor *const *ws, double lambda, int axis);

/* The same over the parameters of ps selected by include (NULL: ps->decay). A selection with no
 * parameter gives a 0-d zero. */
nb_tensor *nb_l2_penalty_params(nb_ctx *ctx, const nb_params *ps, const bool *include, double lambda);
nb_tensor *nb_l1_penalty_params(nb_ctx *ctx, const nb_params *ps, const bool *include, double lambda);
nb_tensor *nb_elastic_net_penalty_params(nb_ctx *ctx, const nb_params *ps, const bool *include, double l1,
                                         double l2);
nb_tensor *nb_group_lasso_penalty_params(nb_ctx *ctx, const nb_params *ps, const bool *include, double lambda,
                                         int axis);

/* Gradient penalty (WGAN-GP, input-gradient regularisation): with G = d(sum out)/dx built by
 * nb_grad(create_graph = true) and G_i its i-th sample (rows along axis 0 of x, shape (N, ...)),
 *     lambda * mean_i (||G_i||_2 - target)^2.
 * target 1 is WGAN-GP (x then being interpolates between real and fake samples); target 0 gives
 * lambda * mean_i ||G_i||^2 (Drucker & LeCun's double backpropagation). out must have been
 * computed from x, and x must require grad. The result can be added to a loss and differentiated
 * again w.r.t. the model's parameters. */
nb_tensor *nb_gradient_penalty(nb_ctx *ctx, nb_tensor *out, nb_tensor *x, double target, double lambda);

/* ---- dropout -------------------------------------------------------------------------------- */
/* Inverted dropout: in train mode (nb_ctx_is_train) each element is kept with probability 1-p and
 * scaled by 1/(1-p), so the expectation is unchanged; in eval mode, or with p = 0, x itself is
 * returned. The mask comes from the context's counter-based generator (nb_ctx_rng): element i
 * of x keeps when 32-bit word i % 4 of nb_philox(seed, offset + i/4) is >= round(p * 2^32)
 * (so the keep probability is 1 - p within 2^-32), and the offset advances by ceil(numel/4):
 * the same mask for any thread count, and reproducible from the seed. The op is x * mask with
 * mask a constant, so the gradient is gout * mask and double backward works. NB_ERR_VALUE for
 * p outside [0, 1). */
nb_tensor *nb_dropout(nb_ctx *ctx, nb_tensor *x, double p);

/* ---- constraints and proximal steps (run after nb_optim_step; not recorded) -------------- */
/* Proximal L1 (soft-thresholding): w = sign(w) * max(|w| - t, 0) for the selected parameters
 * (include NULL: ps->decay). With t = lr * lambda after an SGD step this is proximal gradient
 * descent (ISTA) on loss + lambda*sum|w|: weights become exactly zero, which the subgradient of
 * nb_l1_penalty almost never achieves. NB_ERR_VALUE for t < 0 or NaN. */
nb_status nb_prox_l1(nb_params *ps, const bool *include, double t);
/* Max-norm: rescale every row w[i, ...] (axis 0: the incoming weights of output unit i of a
 * Linear (out, in), one filter of a conv (O, C, kh, kw)) whose L2 norm exceeds max_norm to norm
 * max_norm; Keras's MaxNorm on its (in, out) kernels with axis=0. Only selected parameters with
 * ndim >= 2 (include NULL: ps->decay). NB_ERR_VALUE for max_norm <= 0. */
nb_status nb_max_norm(nb_params *ps, const bool *include, double max_norm);

/* ---- early stopping ---------------------------------------------------------------------- */
/* Keras's EarlyStopping as a state machine usable in any loop: an epoch improves when its metric
 * beats the best by more than min_delta (min: m < best - min_delta; max: m > best + min_delta);
 * training should stop after `patience` epochs in a row without improvement. With
 * restore_best the parameters and the buffers of ps (running statistics) are copied at each
 * improvement and copied back when stopping. Fields are public; the snapshot is owned (nb_early_stop_free). */
typedef struct nb_early_stop {
    nb_mode mode;
    int patience;
    double min_delta;      /* >= 0 */
    bool restore_best;
    nb_params *ps;         /* may be NULL when restore_best is false */
    /* state */
    double best;           /* best metric (+inf / -inf before the first epoch) */
    int64_t best_epoch;    /* 0-based epoch of best (-1 before the first epoch) */
    int64_t epoch;         /* epochs seen */
    int wait;              /* epochs since the last improvement */
    bool stopped;
    int64_t stopped_epoch; /* 0-based epoch where stopping was decided (-1 while running) */
    union {
        float *best_weights;       /* ps->total elements of ps->dtype (restore_best only) */
        double *best_weights_f64;  /* the same snapshot when ps->dtype is F64 */
    };
    /* ps's buffers (batch-norm running statistics) at the best epoch, back to back
     * (nb_params_buffers_save_to), restored with the weights; NULL when ps has none */
    void *best_buffers;
    size_t best_buffers_bytes;
} nb_early_stop;

/* Set up *es. NB_ERR_VALUE for patience < 0 or min_delta < 0, NB_ERR_NULL when restore_best
 * has no ps, NB_ERR_NOMEM. */
nb_status nb_early_stop_init(nb_early_stop *es, nb_params *ps, nb_mode mode, int patience, double min_delta,
                             bool restore_best);
/* Feed one epoch's metric (ps holding that epoch's weights). Returns true when training should
 * stop (then, with restore_best, ps holds the best weights again). A NaN metric counts as no
 * improvement; as in Keras, the first epoch never stops training. */
bool nb_early_stop_update(nb_early_stop *es, double metric);
/* Copy the best snapshot back into ps (e.g. at the end of a loop that did not stop early). */
nb_status nb_early_stop_restore(nb_early_stop *es);
void nb_early_stop_free(nb_early_stop *es); /* frees the snapshot; es itself is the caller's */

#ifdef __cplusplus
}
#endif
/* call-site capture for anomaly reports (see NB__AT in graph.h) */
#if !defined(NB_NO_SITE) && !defined(NB_INTERNAL)
#define nb_l2_penalty(...) NB__AT(nb_l2_penalty, __VA_ARGS__)
#define nb_l1_penalty(...) NB__AT(nb_l1_penalty, __VA_ARGS__)
#define nb_elastic_net_penalty(...) NB__AT(nb_elastic_net_penalty, __VA_ARGS__)
#define nb_group_lasso_penalty(...) NB__AT(nb_group_lasso_penalty, __VA_ARGS__)
#define nb_l2_penalty_params(...) NB__AT(nb_l2_penalty_params, __VA_ARGS__)
#define nb_l1_penalty_params(...) NB__AT(nb_l1_penalty_params, __VA_ARGS__)
#define nb_elastic_net_penalty_params(...) NB__AT(nb_elastic_net_penalty_params, __VA_ARGS__)
#define nb_group_lasso_penalty_params(...) NB__AT(nb_group_lasso_penalty_params, __VA_ARGS__)
#define nb_gradient_penalty(...) NB__AT(nb_gradient_penalty, __VA_ARGS__)
#define nb_dropout(...) NB__AT(nb_dropout, __VA_ARGS__)
#endif

#endif
