/* A user-defined optimizer: Lion (Chen et al., 2023), w -= lr * (sign(b1*m + (1-b1)*g) + wd*w).
 * You write the update of a contiguous block of elements; nabla loops over the parameters,
 * applies the per-parameter decay flags and spreads the blocks over the OpenMP threads, so the
 * optimizer is parallel (and thread-count independent) without any code of yours. */
// ci-args:
#include <nabla/nabla.h>

#include "example_util.h"

static void lion_update(float *w, const float *g, float *const *state, int64_t n, const nb_hparams *hp, int64_t step) {
    (void)step;
    float *m = state[0]; /* slot 0: the momentum, zero before the first step */
    const float lr = (float)hp->lr, wd = (float)hp->weight_decay, b1 = (float)hp->beta1, b2 = (float)hp->beta2;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float c = b1 * m[i] + (1 - b1) * g[i];
        w[i] -= lr * ((float)((c > 0) - (c < 0)) + wd * w[i]);
        m[i] = b2 * m[i] + (1 - b2) * g[i];
    }
}

static nb_status lion_validate(const nb_optim_def *def, const nb_hparams *hp) {
    if (!(hp->beta1 >= 0 && hp->beta1 < 1 && hp->beta2 >= 0 && hp->beta2 < 1))
        return nb_set_error(NB_ERR_VALUE, "%s: betas (%g, %g) outside [0, 1)", def->name, hp->beta1, hp->beta2);
    return NB_OK;
}

static const nb_optim_def lion = {.name = "lion", .nslots = 1, .defaults = {.lr = 1e-4, .beta1 = 0.9, .beta2 = 0.99},
                                  .validate = lion_validate, .update = lion_update};

int main(int argc, char **argv) {
    if (!ex_parse(argc, argv, "custom_optimizer", NULL, 0)) return 2; /* no options; --help says so */
    /* a small regression problem: y = 3 x0 - 2 x1 + 0.5 on 64 samples */
    nb_ctx *ctx = nb_ctx_new();
    nb_params *ps = nb_params_new();
    nb_tensor *w = nb_params_add(ps, "w", NB_SHAPE(1, 2)), *b = nb_params_add(ps, "b", NB_SHAPE(1));
    nb_tensor *X = nb_tensor_new(NB_F32, NB_SHAPE(64, 2)), *Y = nb_tensor_new(NB_F32, NB_SHAPE(64, 1));
    nb_rng rng = nb_rng_new(1);
    nb_rng_normal(&rng, X, 0, 1);
    for (int i = 0; i < 64; i++) nb_set(Y, i, 3 * nb_get(X, 2 * i) - 2 * nb_get(X, 2 * i + 1) + 0.5);

    nb_optim *opt = nb_optim_new(&lion, ps, NULL);
    double loss_v = 0;
    for (int step = 0; step < 300; step++) {
        opt->hp.lr = nb_lr_cosine_warmup(0.02, step, 10, 300, 0.0); /* Lion wants a decaying lr */
        nb_ctx_reset(ctx);
        nb_params_zero_grad(ps);
        nb_tensor *loss = nb_mse_loss(ctx, nb_linear(ctx, X, w, b), Y, NB_REDUCE_MEAN);
        if (!loss || nb_backward(ctx, loss, NULL) != NB_OK || nb_optim_step(opt) != NB_OK) {
            fprintf(stderr, "error: %s%s\n", nb_ctx_error(ctx), nb_last_error());
            return 1;
        }
        loss_v = nb_item(loss);
        if (step % 50 == 0) printf("step %3d  loss %.6f\n", step, loss_v);
    }
    printf("final loss %.6f; w = (%.3f, %.3f), b = %.3f (true: 3, -2, 0.5)\n", loss_v, nb_get(w, 0), nb_get(w, 1),
           nb_get(b, 0));
    nb_optim_free(opt);
    nb_tensor_free(X), nb_tensor_free(Y);
    nb_params_free(ps), nb_ctx_free(ctx);
    return loss_v < 1e-3 ? 0 : 1;
}
