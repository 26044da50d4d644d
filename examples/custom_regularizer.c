/* Writing a new regularizer: any scalar built from ops is a penalty; autodiff gives its gradient
 * and gradcheck verifies it. Two recipes — a soft orthogonality penalty on a weight matrix and an
 * input-gradient penalty (the gradient of the model w.r.t. its input, built with create_graph: the
 * term of WGAN-GP and of double backpropagation) — are gradchecked in f64, then a small
 * classifier is trained with both. */
// ci-args:
#include <math.h>
#include <nabla/nabla.h>

#include "example_util.h"

/* lambda * ||W^T W - I||_F^2 for W (out, in), out >= in: pushes the columns towards an orthonormal set */
static nb_tensor *ortho_penalty(nb_ctx *ctx, nb_tensor *W, double lambda) {
    int64_t n = W->shape[1];
    nb_tensor *eye = nb_zeros(ctx, W->dtype, NB_SHAPE(n, n));
    for (int64_t i = 0; i < n; i++) nb_set(eye, i * n + i, 1.0);
    nb_tensor *d = nb_sub(ctx, nb_matmul(ctx, nb_transpose(ctx, W, 0, 1), W), eye);
    return nb_mul_scalar(ctx, nb_sum_all(ctx, nb_mul(ctx, d, d)), lambda);
}

/* lambda * mean_i ||d sum(out) / d x_i||^2, x (N, F): create_graph makes the gradient itself a
 * graph, so the penalty can be differentiated w.r.t. the weights (nb_gradient_penalty packages this) */
static nb_tensor *input_grad_penalty(nb_ctx *ctx, nb_tensor *out, nb_tensor *x, double lambda) {
    nb_tensor *g, *ones = nb_ones_like(ctx, out);
    if (nb_grad(ctx, 1, &out, &ones, 1, &x, &g, true) != NB_OK) return NULL;
    int ax = 1;
    return nb_mul_scalar(ctx, nb_mean_all(ctx, nb_sum(ctx, nb_mul(ctx, g, g), 1, &ax, false)), lambda);
}

/* the model: logits = tanh(x W1^T + b1) W2^T, x (N, 2) -> (N, 2) */
static nb_tensor *mlp(nb_ctx *ctx, nb_tensor *x, nb_tensor *W1, nb_tensor *b1, nb_tensor *W2) {
    return nb_linear(ctx, nb_tanh(ctx, nb_linear(ctx, x, W1, b1)), W2, NULL);
}

static nb_tensor *ortho_fn(nb_ctx *ctx, nb_tensor *const *in, void *u) {
    return ortho_penalty(ctx, in[0], 0.5);
}
static nb_tensor *gp_fn(nb_ctx *ctx, nb_tensor *const *in, void *u) {
    return input_grad_penalty(ctx, mlp(ctx, in[0], in[1], in[2], in[3]), in[0], 0.5);
}

int main(int argc, char **argv) {
    if (!ex_parse(argc, argv, "custom_regularizer", NULL, 0)) return 2; /* no options; --help says so */
    nb_ctx *ctx = nb_ctx_new();
    /* 1. check both penalties on random f64 tensors */
    nb_tensor *t[4] = {nb_randn(ctx, NB_F64, NB_SHAPE(5, 2)), nb_randn(ctx, NB_F64, NB_SHAPE(6, 2)),
                       nb_randn(ctx, NB_F64, NB_SHAPE(6)), nb_randn(ctx, NB_F64, NB_SHAPE(2, 6))};
    for (int i = 0; i < 4; i++) nb_requires_grad(t[i], true);
    nb_gradcheck_report r1, r2;
    nb_status s1 = nb_gradcheck(ctx, ortho_fn, 1, t + 1, NULL, NULL, &r1);
    nb_status s2 = nb_gradcheck(ctx, gp_fn, 4, t, NULL, NULL, &r2);
    double mine = nb_item(gp_fn(ctx, t, NULL));
    double builtin = nb_item(nb_gradient_penalty(ctx, mlp(ctx, t[0], t[1], t[2], t[3]), t[0], 0.0, 0.5));
    printf("orthogonality penalty: %s\ninput-gradient penalty: %s (%.12f, built-in %.12f)\n", r1.message, r2.message,
           mine, builtin);
    if (s1 != NB_OK || s2 != NB_OK || fabs(mine - builtin) > 1e-12) return 1;

    /* 2. train on XOR-like quadrants with cross-entropy + both penalties */
    nb_params *ps = nb_params_new();
    nb_tensor *W1 = nb_params_add(ps, "W1", NB_SHAPE(16, 2)), *b1 = nb_params_add(ps, "b1", NB_SHAPE(16));
    nb_tensor *W2 = nb_params_add(ps, "W2", NB_SHAPE(2, 16));
    nb_rng rng = nb_rng_new(3);
    nb_rng_normal(&rng, W1, 0, 1), nb_rng_normal(&rng, W2, 0, 0.5);
    nb_tensor *X = nb_tensor_new(NB_F32, NB_SHAPE(64, 2)), *Y = nb_tensor_new(NB_I64, NB_SHAPE(64));
    nb_rng_uniform(&rng, X, -1, 1);
    for (int i = 0; i < 64; i++) nb_set(Y, i, nb_get(X, 2 * i) * nb_get(X, 2 * i + 1) > 0);
    nb_hparams hp = nb_adam.defaults;
    hp.lr = 0.05;
    nb_optim *opt = nb_optim_new(&nb_adam, ps, &hp);
    double acc = 0;
    for (int step = 0; step <= 200; step++) {
        nb_ctx_reset(ctx);
        nb_params_zero_grad(ps);
        nb_tensor *x = nb_detach(ctx, X); /* a step view of the data that may require grad */
        nb_requires_grad(x, true);
        nb_tensor *logits = mlp(ctx, x, W1, b1, W2);
        nb_tensor *ce = nb_cross_entropy(ctx, logits, Y, NB_REDUCE_MEAN);
        nb_tensor *loss = nb_add(ctx, ce, ortho_penalty(ctx, W1, 1e-3));
        loss = nb_add(ctx, loss, input_grad_penalty(ctx, logits, x, 1e-2));
        if (!loss || nb_backward(ctx, loss, NULL) != NB_OK || nb_optim_step(opt) != NB_OK) {
            fprintf(stderr, "error: %s%s\n", nb_ctx_error(ctx), nb_last_error());
            return 1;
        }
        nb_tensor *pred = nb_argmax(ctx, logits, 1, false);
        acc = 0;
        for (int i = 0; i < 64; i++) acc += nb_get(pred, i) == nb_get(Y, i);
        acc /= 64;
        if (step % 50 == 0) printf("step %3d  loss %.4f  (cross-entropy %.4f)  accuracy %.3f\n", step, nb_item(loss), nb_item(ce), acc);
    }
    nb_optim_free(opt);
    nb_tensor_free(X), nb_tensor_free(Y);
    nb_params_free(ps), nb_ctx_free(ctx);
    return acc >= 0.9 ? 0 : 1;
}
