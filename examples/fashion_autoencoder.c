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

typedef struct {
    nb_conv2d_layer enc1, enc2;
    nb_conv_transpose2d_layer dec1, dec2;
} autoencoder;

static nb_status ae_init(autoencoder *m, nb_params *ps, int64_t c, nb_rng *rng) {
    /* 28 -> 14 -> 7 and back: kernel 3, stride 2, padding 1 (output_padding 1 restores even sizes) */
    nb_status s = nb_conv2d_layer_init(&m->enc1, ps, "enc1", 1, c, 3, 2, 1, 1, 1, true, rng);
    if (!s) s = nb_conv2d_layer_init(&m->enc2, ps, "enc2", c, 2 * c, 3, 2, 1, 1, 1, true, rng);
    if (!s) s = nb_conv_transpose2d_layer_init(&m->dec1, ps, "dec1", 2 * c, c, 3, 2, 1, 1, 1, true, rng);
    if (!s) s = nb_conv_transpose2d_layer_init(&m->dec2, ps, "dec2", c, 1, 3, 2, 1, 1, 1, true, rng);
    return s;
}

/* x (N, 1, 28, 28) in [0, 1] -> reconstruction (N, 1, 28, 28) in (0, 1) */
/* nb_ctx_keep: under no-grad one layer's temporaries at a time (see fashion_cnn.c) */
static nb_tensor *ae_forward(nb_ctx *ctx, const autoencoder *m, nb_tensor *x) {
    const nb_mark mk = nb_ctx_mark(ctx);
    nb_tensor *h = nb_relu(ctx, nb_conv2d_layer_forward(ctx, &m->enc1, x));          /* (N, C, 14, 14) */
    h = nb_ctx_keep(ctx, mk, nb_relu(ctx, nb_conv2d_layer_forward(ctx, &m->enc2, h))); /* (N, 2C, 7, 7): the code */
    h = nb_ctx_keep(ctx, mk, nb_relu(ctx, nb_conv_transpose2d_layer_forward(ctx, &m->dec1, h))); /* (N, C, 14, 14) */
    return nb_sigmoid(ctx, nb_conv_transpose2d_layer_forward(ctx, &m->dec2, h)); /* (N, 1, 28, 28) */
}

/* Mean squared error over all pixels of x, in eval mode without a graph. */
static double evaluate(nb_ctx *ctx, const autoencoder *m, const nb_tensor *x) {
    nb_batcher *it = nb_batcher_new(x, NULL, &(nb_batch_opts){.batch_size = 500});
    double sse = 0;
    nb_batch b;
    nb_ctx_set_train(ctx, false);
    NB_NO_GRAD(ctx) {
        while (it && nb_batcher_next(it, &b)) {
            sse += nb_item(nb_mse_loss(ctx, ae_forward(ctx, m, b.x), b.x, NB_REDUCE_SUM));
            nb_ctx_reset(ctx);
        }
    }
    nb_ctx_set_train(ctx, true);
    nb_batcher_free(it);
    return sse / (double)x->numel;
}

/* Write `n` test images (row 1, 3, ...) above their reconstructions (row 2, 4, ...), 8 per row. */
static nb_status save_pairs(nb_ctx *ctx, const autoencoder *m, const nb_tensor *x, int64_t n, const char *path) {
    nb_status s = NB_OK;
    nb_ctx_set_train(ctx, false);
    NB_NO_GRAD(ctx) {
        nb_tensor *in = nb_slice(ctx, (nb_tensor *)x, 0, 0, n, 1), *rows[16];
        nb_tensor *out = ae_forward(ctx, m, in);
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

    nb_params *ps = nb_params_new();
    nb_rng rng = nb_rng_new((uint64_t)seed);
    autoencoder m;
    if (ae_init(&m, ps, width, &rng) != NB_OK) return fprintf(stderr, "fashion_autoencoder: %s\n", nb_last_error()), 1;
    nb_optim *opt = nb_optim_new(&nb_adam, ps, NULL);
    nb_ctx *ctx = nb_ctx_new();
    nb_batcher *it =
        nb_batcher_new(d.x_train, NULL, &(nb_batch_opts){.batch_size = batch, .shuffle = true, .seed = (uint64_t)seed});
    if (!opt || !ctx || !it) return fprintf(stderr, "fashion_autoencoder: %s\n", nb_last_error()), 1;
    const int64_t steps_per_epoch = nb_batcher_num_batches(it), total = steps_per_epoch * epochs;
    printf("model: %lld parameters, %lld steps of %lld\n", (long long)ps->total, (long long)total, (long long)batch);

    double train_time = 0;
    int64_t step = 0, seen = 0;
    for (int64_t epoch = 0; epoch < epochs; epoch++) {
        double t0 = ex_now(), loss_sum = 0;
        nb_batch b;
        nb_batcher_start(it, epoch);
        while (nb_batcher_next(it, &b)) {
            opt->hp.lr = nb_lr_cosine_warmup(lr, step++, steps_per_epoch / 4, total, lr / 100);
            nb_params_zero_grad(ps);
            nb_tensor *loss = nb_mse_loss(ctx, ae_forward(ctx, &m, b.x), b.x, NB_REDUCE_MEAN);
            if (!loss || nb_backward(ctx, loss, NULL) != NB_OK || nb_optim_step(opt) != NB_OK)
                return fprintf(stderr, "fashion_autoencoder: %s%s\n", nb_ctx_error(ctx), nb_last_error()), 1;
            loss_sum += nb_item(loss) * (double)b.n;
            seen += b.n;
            nb_ctx_reset(ctx);
        }
        train_time += ex_now() - t0;
        printf("epoch %2lld  train_mse %.6f  val_mse %.6f  (%.1f s)\n", (long long)epoch + 1,
               loss_sum / (double)d.x_train->shape[0], evaluate(ctx, &m, d.x_val), ex_now() - t0);
        fflush(stdout);
    }
    double test_mse = evaluate(ctx, &m, d.x_test);
    nb_status s = save_pairs(ctx, &m, d.x_test, d.x_test->shape[0] < 64 ? d.x_test->shape[0] / 8 * 8 : 64, out);
    if (s != NB_OK) fprintf(stderr, "fashion_autoencoder: %s\n", nb_last_error());
    else printf("wrote %s (test images above their reconstructions)\n", out);
    printf("test_mse=%.6f samples_per_sec=%.0f\n", test_mse, (double)seen / train_time);

    nb_batcher_free(it);
    nb_optim_free(opt);
    nb_params_free(ps), nb_ctx_free(ctx);
    ex_data_free(&d);
    if (s != NB_OK) return 1;
    if (!(test_mse <= max_mse)) {
        fprintf(stderr, "fashion_autoencoder: test MSE %.6f is above --max-mse %g\n", test_mse, max_mse);
        return 1;
    }
    return 0;
}
