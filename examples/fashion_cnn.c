/* A convolutional classifier for Fashion-MNIST: two blocks of 3x3 conv -> batch norm -> ReLU ->
 * 2x2 max pool (32 then 64 channels), dropout, a hidden linear layer and a linear classifier.
 * Adam with a linear-warmup + cosine learning-rate schedule; batch norm and dropout follow the
 * context's train/eval mode. Prints train loss and validation accuracy per epoch, then
 *     test_accuracy=0.XXXX samples_per_sec=N
 *
 *   build/fashion_cnn                      # full run: 55000 train / 5000 val, 12 epochs
 *   build/fashion_cnn --subset 2000 --epochs 1 --threads 2
 */
// ci-args: --subset 1500 --val 300 --test 1000 --epochs 1 --width 16 --threads 1 --min-accuracy 0.55
#include "example_util.h"

/* The model: every layer's parameters live in one nb_params. Convs feeding batch norm need no bias. */
typedef struct {
    nb_conv2d_layer conv1, conv2;
    nb_batch_norm_layer bn1, bn2;
    nb_linear_layer fc1, fc2;
    double dropout;
} cnn;

static nb_status cnn_init(cnn *m, nb_params *ps, int64_t c, int64_t hidden, double dropout, nb_rng *rng) {
    nb_status s = nb_conv2d_layer_init(&m->conv1, ps, "conv1", 1, c, 3, 1, 1, 1, 1, false, rng);
    if (!s) s = nb_batch_norm_layer_init(&m->bn1, ps, "bn1", c);
    if (!s) s = nb_conv2d_layer_init(&m->conv2, ps, "conv2", c, 2 * c, 3, 1, 1, 1, 1, false, rng);
    if (!s) s = nb_batch_norm_layer_init(&m->bn2, ps, "bn2", 2 * c);
    if (!s) s = nb_linear_layer_init(&m->fc1, ps, "fc1", 2 * c * 7 * 7, hidden, true, rng);
    if (!s) s = nb_linear_layer_init(&m->fc2, ps, "fc2", hidden, 10, true, rng);
    m->dropout = dropout;
    return s;
}

/* x (N, 1, 28, 28) -> logits (N, 10). Dropout and batch norm read the context's train flag. */
/* Under no-grad, nb_ctx_keep lets each block's temporaries go as soon as its output is kept,
 * so evaluation holds one block at a time; when training, the graph needs them all and
 * nb_ctx_keep changes nothing. */
static nb_tensor *cnn_forward(nb_ctx *ctx, const cnn *m, nb_tensor *x) {
    const nb_mark mk = nb_ctx_mark(ctx);
    nb_tensor *h = nb_relu(ctx, nb_batch_norm_layer_forward(ctx, &m->bn1, nb_conv2d_layer_forward(ctx, &m->conv1, x)));
    h = nb_ctx_keep(ctx, mk, nb_max_pool2d(ctx, h, 2, 2, 0));                          /* (N, C, 14, 14) */
    h = nb_relu(ctx, nb_batch_norm_layer_forward(ctx, &m->bn2, nb_conv2d_layer_forward(ctx, &m->conv2, h)));
    h = nb_dropout(ctx, nb_flatten(ctx, nb_max_pool2d(ctx, h, 2, 2, 0), 1), m->dropout); /* (N, 2C*7*7) */
    h = nb_ctx_keep(ctx, mk, h);
    h = nb_dropout(ctx, nb_relu(ctx, nb_linear_layer_forward(ctx, &m->fc1, h)), 2 * m->dropout);
    return nb_linear_layer_forward(ctx, &m->fc2, h);
}

static nb_tensor *cnn_forward_any(nb_ctx *ctx, const void *m, nb_tensor *x) { return cnn_forward(ctx, m, x); }

int main(int argc, char **argv) {
    int64_t subset = 0, val = -1, test = 0, epochs = 12, batch = 64, width = 32, hidden = 128, threads = 0, seed = 1;
    double lr = 2e-3, dropout = 0.25, min_accuracy = 0;
    const char *data = NULL;
    const ex_opt opts[] = {
        EX_SUBSET(&subset),
        {"--val", EX_INT, &val, -1, 59999, "validation images held out of them (-1: 5000, or a tenth of --subset)"},
        {"--test", EX_INT, &test, 0, 10000, "test images evaluated (0: all)"},
        EX_EPOCHS(&epochs),
        EX_BATCH(&batch),
        EX_LR(&lr, "Adam's peak learning rate (warmup, then cosine decay)"),
        {"--width", EX_INT, &width, 1, 1024, "channels of the first conv block (the second has twice as many)"},
        {"--hidden", EX_INT, &hidden, 1, 65536, "units of the hidden linear layer"},
        {"--dropout", EX_REAL, &dropout, 0, 0.45, "dropout after the convs (twice this after the hidden layer)"},
        EX_THREADS(&threads),
        EX_SEED(&seed),
        EX_DATA(&data),
        {"--min-accuracy", EX_REAL, &min_accuracy, 0, 1, "exit with status 1 if the test accuracy is below this"},
    };
    if (!ex_parse(argc, argv, "fashion_cnn", opts, (int)(sizeof opts / sizeof opts[0]))) return 2;
    if (val < 0) val = subset ? subset / 10 : 5000;
    if (threads) nb_set_num_threads((int)threads);

    /* data: (N, 1, 28, 28), standardized with the training set's mean/std */
    ex_data d;
    if (!ex_load("fashion_cnn", data, true, true, subset, val, test, seed, &d)) return 1;
    printf("train %lld, validation %lld, test %lld images; %d threads%s\n", (long long)d.x_train->shape[0],
           (long long)d.x_val->shape[0], (long long)d.x_test->shape[0], nb_get_num_threads(), nb_threads_auto() ? " (automatic)" : "");

    /* model and optimizer (allocated once) */
    nb_params *ps = nb_params_new();
    nb_rng rng = nb_rng_new(seed);
    cnn m;
    if (cnn_init(&m, ps, width, hidden, dropout, &rng) != NB_OK)
        return fprintf(stderr, "fashion_cnn: %s\n", nb_last_error()), 1;
    nb_hparams hp = nb_adam.defaults;
    hp.lr = lr;
    nb_optim *opt = nb_optim_new(&nb_adam, ps, &hp);
    nb_ctx *ctx = nb_ctx_new();
    nb_ctx_seed(ctx, seed); /* dropout masks */
    nb_batcher *it = nb_batcher_new(d.x_train, d.y_train, &(nb_batch_opts){.batch_size = batch, .shuffle = true, .seed = seed});
    nb_batcher *va = nb_batcher_new(d.x_val, d.y_val, &(nb_batch_opts){.batch_size = 500});
    nb_batcher *te = nb_batcher_new(d.x_test, d.y_test, &(nb_batch_opts){.batch_size = 500});
    if (!opt || !ctx || !it || !va || !te) return fprintf(stderr, "fashion_cnn: %s\n", nb_last_error()), 1;
    printf("model: %lld parameters, %lld steps of %lld\n", (long long)nb_params_numel(ps),
           (long long)(nb_batcher_num_batches(it) * epochs), (long long)batch);

    /* linear warmup over the first half epoch, cosine decay to lr/100 at the end */
    nb_history h;
    nb_scores sc = {0};
    if (nb_fit(ctx, cnn_forward_any, &m, opt, it, &h, &(nb_fit_opts){.epochs = epochs, .val = va, .progress = stdout,
                                                                     .schedule = NB_SCHEDULE_COSINE_WARMUP, .min_lr = lr / 100,
                                                                     .warmup = nb_batcher_num_batches(it) / 2}) != NB_OK ||
        nb_evaluate(ctx, cnn_forward_any, &m, te, NULL, &sc) != NB_OK)
        return fprintf(stderr, "fashion_cnn: %s\n", nb_last_error()), 1;
    const double test_acc = sc.accuracy;
    printf("test_accuracy=%.4f samples_per_sec=%.0f\n", test_acc, ex_samples_per_sec(&h, d.x_train->shape[0]));

    nb_history_free(&h);
    nb_batcher_free(it), nb_batcher_free(va), nb_batcher_free(te);
    nb_optim_free(opt);
    nb_batch_norm_layer_free(&m.bn1), nb_batch_norm_layer_free(&m.bn2);
    nb_params_free(ps), nb_ctx_free(ctx);
    ex_data_free(&d);
    if (test_acc < min_accuracy) {
        fprintf(stderr, "fashion_cnn: test accuracy %.4f is below --min-accuracy %.4f\n", test_acc, min_accuracy);
        return 1;
    }
    return 0;
}
