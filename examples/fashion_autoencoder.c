/* A convolutional autoencoder for Fashion-MNIST: two stride-2 convolutions squeeze a 28x28 image
 * to a (2C, 7, 7) code, two stride-2 transposed convolutions bring it back, a sigmoid gives
 * pixels in [0, 1]. Trained with Adam on the mean squared error; writes a PNG whose odd rows are
 * test images and even rows their reconstructions, and prints
 *     test_mse=0.XXXXXX samples_per_sec=N
 *
 *   build/fashion_autoencoder                       # full run: 5 epochs, writes out/fashion_autoencoder.png
 *   build/fashion_autoencoder --subset 5000 --epochs 2 --out ae.png
 */
// ci-args: --subset 3000 --test 1000 --epochs 3 --threads 1 --max-mse 0.03
#include "example_util.h"

/* 28 -> 14 -> 7 and back: kernel 3, stride 2, padding 1 (output_padding 1 restores even sizes).
 * x (N, 1, 28, 28) in [0, 1] -> reconstruction (N, 1, 28, 28) in (0, 1); the code is (N, 2C, 7, 7). */
static nb_module *autoencoder(nb_model *m, int64_t c) {
    return nb_sequential(m, "autoencoder", NB_MODULES(
        nb_conv2d_module(m, (nb_conv2d_opts){.in = 1, .out = c, .kernel = 3, .stride = 2, .padding = 1, .name = "enc1"}),
        nb_relu_module(m, NULL),
        nb_conv2d_module(m, (nb_conv2d_opts){.in = c, .out = 2 * c, .kernel = 3, .stride = 2, .padding = 1, .name = "enc2"}),
        nb_relu_module(m, NULL),
        nb_conv_transpose2d_module(m, (nb_conv_transpose2d_opts){.in = 2 * c, .out = c, .kernel = 3, .stride = 2,
                                                                 .padding = 1, .output_padding = 1, .name = "dec1"}),
        nb_relu_module(m, NULL),
        nb_conv_transpose2d_module(m, (nb_conv_transpose2d_opts){.in = c, .out = 1, .kernel = 3, .stride = 2,
                                                                 .padding = 1, .output_padding = 1, .name = "dec2"}),
        nb_sigmoid_module(m, NULL)));
}

/* the loss: a reconstruction's mean squared error against its input (the batch's target) */
static nb_tensor *mse(nb_ctx *ctx, nb_tensor *out, nb_tensor *x) { return nb_mse_loss(ctx, out, x, NB_REDUCE_MEAN); }

/* Write `n` test images (row 1, 3, ...) above their reconstructions (row 2, 4, ...), 8 per row. */
static nb_status save_pairs(nb_ctx *ctx, const nb_module *net, const nb_tensor *x, int64_t n, const char *path) {
    nb_status s = NB_OK;
    nb_ctx_set_train(ctx, false);
    NB_NO_GRAD(ctx) {
        nb_tensor *in = nb_slice(ctx, (nb_tensor *)x, 0, 0, n, 1), *rows[16];
        nb_tensor *out = nb_module_forward(ctx, net, in);
        int k = 0;
        for (int64_t r = 0; r < n / 8 && k + 1 < 16; r++) {
            rows[k++] = nb_slice(ctx, in, 0, 8 * r, 8 * r + 8, 1);
            rows[k++] = nb_slice(ctx, out, 0, 8 * r, 8 * r + 8, 1);
        }
        nb_tensor *grid = nb_concat(ctx, k, rows, 0);
        s = grid ? nb_png_grid(path, grid, 8, 2) : nb_ctx_status(ctx);
    }
    nb_ctx_set_train(ctx, true);
    return s;
}

int main(int argc, char **argv) {
    int64_t subset = 0, val = -1, test = 0, epochs = 5, batch = 64, width = 16, threads = 0, seed = 1;
    double lr = 5e-3, max_mse = INFINITY;
    const char *data = NULL, *out = "out/fashion_autoencoder.png";
    const ex_opt opts[] = {
        EX_SUBSET(&subset),
        {"--val", EX_INT, &val, -1, 59999, "validation images held out of them (-1: 5000, or a tenth of --subset)"},
        {"--test", EX_INT, &test, 0, 10000, "test images evaluated, at least 8 (0: all)"},
        EX_EPOCHS(&epochs),
        EX_BATCH(&batch),
        EX_LR(&lr, "Adam's peak learning rate (warmup, then cosine decay)"),
        {"--width", EX_INT, &width, 1, 1024, "channels after the first conv (the code has twice as many)"},
        EX_THREADS(&threads),
        EX_SEED(&seed),
        EX_DATA(&data),
        {"--out", EX_STR, &out, 0, 0, "PNG of test images and their reconstructions"},
        {"--max-mse", EX_REAL, &max_mse, 0, INFINITY, "exit with status 1 if the test MSE is above this"},
    };
    if (!ex_parse(argc, argv, "fashion_autoencoder", opts, (int)(sizeof opts / sizeof opts[0]))) return 2;
    if (!ex_prepare_output("fashion_autoencoder", out)) return 2;
    if (val < 0) val = subset ? subset / 10 : 5000;
    if (test > 0 && test < 8) return fprintf(stderr, "fashion_autoencoder: --test %lld: the picture needs at least 8\n", (long long)test), 2;
    if (threads) nb_set_num_threads((int)threads);

    ex_data d; /* (N, 1, 28, 28) in [0, 1]: the sigmoid output can match them */
    if (!ex_load("fashion_autoencoder", data, true, false, subset, val, test, (uint64_t)seed, &d)) return 1;
    printf("train %lld, validation %lld, test %lld images; %d threads\n", (long long)d.x_train->shape[0],
           (long long)d.x_val->shape[0], (long long)d.x_test->shape[0], nb_get_num_threads());

    /* the batches' targets are their images */
    nb_model *model = nb_model_new((uint64_t)seed);
    nb_module *net = model ? autoencoder(model, width) : NULL;
    nb_hparams hp = nb_adam.defaults;
    hp.lr = lr;
    nb_optim *opt = net ? nb_optim_new(&nb_adam, model->ps, &hp) : NULL;
    nb_ctx *ctx = nb_ctx_new();
    nb_batch_opts bo = {.batch_size = batch, .shuffle = true, .seed = (uint64_t)seed};
    nb_batcher *it = nb_batcher_new(d.x_train, d.x_train, &bo), *va = nb_batcher_new(d.x_val, d.x_val, &(nb_batch_opts){.batch_size = 500});
    nb_batcher *te = nb_batcher_new(d.x_test, d.x_test, &(nb_batch_opts){.batch_size = 500});
    if (!opt || !ctx || !it || !va || !te) return fprintf(stderr, "fashion_autoencoder: %s\n", nb_last_error()), 1;
    printf("model: %lld parameters, %lld steps of %lld\n", (long long)nb_params_numel(model->ps),
           (long long)(nb_batcher_num_batches(it) * epochs), (long long)batch);

    /* linear warmup over the first quarter epoch, cosine decay to lr/100 at the end; loss = MSE */
    nb_history h;
    nb_scores sc = {0};
    const nb_fit_opts fo = {.epochs = epochs, .val = va, .loss = mse, .progress = stdout, .schedule = NB_SCHEDULE_COSINE_WARMUP,
                            .warmup = nb_batcher_num_batches(it) / 4, .min_lr = lr / 100};
    nb_status s = nb_fit(ctx, NULL, net, opt, it, &h, &fo);
    if (s == NB_OK) s = nb_evaluate(ctx, NULL, net, te, &fo, &sc);
    if (s == NB_OK) s = save_pairs(ctx, net, d.x_test, d.x_test->shape[0] < 64 ? d.x_test->shape[0] / 8 * 8 : 64, out);
    if (s != NB_OK) return fprintf(stderr, "fashion_autoencoder: %s\n", nb_last_error()), 1;
    const double test_mse = sc.loss;
    printf("wrote %s (test images above their reconstructions)\n", out);
    printf("test_mse=%.6f samples_per_sec=%.0f\n", test_mse, ex_samples_per_sec(&h, d.x_train->shape[0]));

    nb_history_free(&h);
    nb_batcher_free(it), nb_batcher_free(va), nb_batcher_free(te);
    nb_optim_free(opt);
    nb_model_free(model), nb_ctx_free(ctx);
    ex_data_free(&d);
    if (!(test_mse <= max_mse)) {
        fprintf(stderr, "fashion_autoencoder: test MSE %.6f is above --max-mse %g\n", test_mse, max_mse);
        return 1;
    }
    return 0;
}
