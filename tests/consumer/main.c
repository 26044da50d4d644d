/* A program outside nabla's tree, built against an installed (or sub-project) nabla by
 * scripts/consumer-test.sh: one forward and backward pass whose gradient is known in closed form,
 * then a safetensors round trip of that gradient (file I/O, so a static link needs every
 * dependency). Exits non-zero on any mismatch. Usage: consumer [FILE.safetensors] */
#include <nabla/nabla.h>

#include <math.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "consumer_grad.safetensors";
    const double wv[6] = {0.1, 0.2, 0.3, -0.4, 0.5, -0.6}, xv[3] = {1, 2, 3};
    nb_ctx *ctx = nb_ctx_new();
    nb_tensor *w = nb_tensor_from(NB_F64, NB_SHAPE(2, 3), wv);
    if (!ctx || !w || nb_requires_grad(w, true) != NB_OK) {
        fprintf(stderr, "consumer: %s\n", nb_last_error());
        return 1;
    }
    /* loss = sum((w x)^2), so d loss / d w[i][j] = 2 (w x)[i] x[j]; w x = (1.4, -1.2) */
    nb_tensor *x = nb_from(ctx, NB_F64, NB_SHAPE(3, 1), xv);
    nb_tensor *y = nb_matmul(ctx, w, x);
    nb_tensor *loss = nb_sum_all(ctx, nb_mul(ctx, y, y));
    if (!loss || nb_backward(ctx, loss, NULL) != NB_OK) {
        fprintf(stderr, "consumer: %s\n", nb_ctx_error(ctx));
        return 1;
    }
    const double wx[2] = {1.4, -1.2};
    int bad = fabs(nb_item(loss) - (1.4 * 1.4 + 1.2 * 1.2)) > 1e-12;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            bad |= fabs(nb_get(w->grad, i * 3 + j) - 2 * wx[i] * xv[j]) > 1e-12;

    nb_tensor_list *back = NULL;
    if (nb_safetensors_save(path, 1, (const char *[]){"dw"}, (const nb_tensor *[]){w->grad}, NULL) != NB_OK ||
        !(back = nb_safetensors_load(path)) || !nb_tensor_list_find(back, "dw")) {
        fprintf(stderr, "consumer: %s\n", nb_last_error());
        bad = 1;
    } else {
        bad |= nb_get(nb_tensor_list_find(back, "dw"), 5) != nb_get(w->grad, 5);
    }
    printf("consumer: loss %.4f, d loss/d w[1][2] = %.4f (expected -7.2000): %s\n", nb_item(loss),
           nb_get(w->grad, 5), bad ? "FAIL" : "ok");
    nb_tensor_list_free(back);
    nb_tensor_free(w);
    nb_ctx_free(ctx);
    remove(path);
    return bad ? EXIT_FAILURE : EXIT_SUCCESS;
}
