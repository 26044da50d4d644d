/* The README's first program: a tiny MLP, one backward, its gradients. */
// ci-args:
#include <nabla/nabla.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc > 1) { /* no options: say so rather than ignore them */
        const bool help = argc == 2 && !strcmp(argv[1], "--help");
        fprintf(help ? stdout : stderr, "usage: tiny_mlp (it takes no options)\n");
        return help ? 0 : 2;
    }
    nb_ctx *ctx = nb_ctx_new();                              /* arena + tape for one step */
    nb_params *ps = nb_params_new();                         /* long-lived parameters */
    nb_tensor *w1 = nb_params_add(ps, "w1", NB_SHAPE(16, 4)), *w2 = nb_params_add(ps, "w2", NB_SHAPE(3, 16));
    nb_rng rng = nb_rng_new(42);
    nb_rng_normal(&rng, w1, 0, 0.5), nb_rng_normal(&rng, w2, 0, 0.5);

    nb_tensor *x = nb_randn(ctx, NB_F32, NB_SHAPE(8, 4));   /* a batch of 8 inputs */
    nb_tensor *y = nb_from(ctx, NB_I64, NB_SHAPE(8), (int64_t[]){0, 1, 2, 0, 1, 2, 0, 1});
    nb_tensor *logits = nb_linear(ctx, nb_relu(ctx, nb_linear(ctx, x, w1, NULL)), w2, NULL);
    nb_tensor *loss = nb_cross_entropy(ctx, logits, y, NB_REDUCE_MEAN);
    if (!loss || nb_backward(ctx, loss, NULL) != NB_OK) { fprintf(stderr, "%s\n", nb_ctx_error(ctx)); return 1; }
    nb_print(stdout, loss);
    nb_print(stdout, w2->grad);                              /* d loss / d w2 */
    nb_ctx_reset(ctx);                                       /* free the step: no malloc next time */
    nb_params_free(ps), nb_ctx_free(ctx);
}
