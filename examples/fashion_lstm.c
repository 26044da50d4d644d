/* A recurrent classifier for Fashion-MNIST: each image is read as a sequence of its 28 rows
 * (28 pixels each) by an LSTM (hidden 128); a linear head classifies the last hidden state.
 * Adam with warmup + cosine decay and gradient-norm clipping (as usual for RNNs). Prints train
 * loss and validation accuracy per epoch, then
 *     test_accuracy=0.XXXX samples_per_sec=N
 *
 *   build/fashion_lstm                     # full run: 55000 train / 5000 val, 10 epochs
 *   build/fashion_lstm --subset 3000 --epochs 2 --threads 2
 */
// ci-args: --subset 2000 --test 1000 --epochs 1 --hidden 64 --lr 5e-3 --threads 1 --min-accuracy 0.4
#include "example_util.h"

/* (N, 784) -> (N, 28, 28): the rows of an image become its time steps */
static nb_tensor *rows(nb_ctx *ctx, nb_tensor *x) { return nb_reshape(ctx, x, NB_SHAPE(x->shape[0], 28, 28)); }

/* x (N, 784) -> logits (N, 10) */
static nb_module *rnn_classifier(nb_model *m, int64_t hidden) {
    return nb_sequential(m, "rnn_classifier", NB_MODULES(
        nb_unary_module(m, "Rows", rows, NULL),
        nb_rnn_module(m, (nb_rnn_opts){.kind = NB_LSTM, .in = 28, .hidden = hidden, .batch_first = true, .last = true,
                                       .name = "lstm"}),
        nb_linear_module(m, (nb_linear_opts){.in = hidden, .out = 10, .name = "head"})));
}

int main(int argc, char **argv) {
    int64_t subset = 0, val = -1, test = 0, epochs = 10, batch = 64, hidden = 128, threads = 0, seed = 1;
    double lr = 2e-3, clip = 1.0, min_accuracy = 0;
    const char *data = NULL;
    const ex_opt opts[] = {
        EX_SUBSET(&subset),
        {"--val", EX_INT, &val, -1, 59999, "validation images held out of them (-1: 5000, or a tenth of --subset)"},
        {"--test", EX_INT, &test, 0, 10000, "test images evaluated (0: all)"},
        EX_EPOCHS(&epochs),
        EX_BATCH(&batch),
        EX_LR(&lr, "Adam's peak learning rate (warmup, then cosine decay)"),
        {"--hidden", EX_INT, &hidden, 1, 4096, "LSTM hidden units"},
        {"--clip", EX_REAL, &clip, 1e-6, 1e6, "maximum global gradient norm"},
        EX_THREADS(&threads),
        EX_SEED(&seed),
        EX_DATA(&data),
        {"--min-accuracy", EX_REAL, &min_accuracy, 0, 1, "exit with status 1 if the test accuracy is below this"},
    };
    if (!ex_parse(argc, argv, "fashion_lstm", opts, (int)(sizeof opts / sizeof opts[0]))) return 2;
    if (val < 0) val = subset ? subset / 10 : 5000;
    if (threads) nb_set_num_threads((int)threads);

    ex_data d; /* (N, 784), standardized */
    if (!ex_load("fashion_lstm", data, false, true, subset, val, test, (uint64_t)seed, &d)) return 1;
    printf("train %lld, validation %lld, test %lld images; %d threads\n", (long long)d.x_train->shape[0],
           (long long)d.x_val->shape[0], (long long)d.x_test->shape[0], nb_get_num_threads());

    nb_model *model = nb_model_new((uint64_t)seed);
    nb_module *net = model ? rnn_classifier(model, hidden) : NULL;
    nb_hparams hp = nb_adam.defaults;
    hp.lr = lr;
    nb_optim *opt = net ? nb_optim_new(&nb_adam, model->ps, &hp) : NULL;
    nb_ctx *ctx = nb_ctx_new();
    nb_batcher *it = nb_batcher_new(d.x_train, d.y_train,
                                    &(nb_batch_opts){.batch_size = batch, .shuffle = true, .seed = (uint64_t)seed});
    nb_batcher *va = nb_batcher_new(d.x_val, d.y_val, &(nb_batch_opts){.batch_size = 500});
    nb_batcher *te = nb_batcher_new(d.x_test, d.y_test, &(nb_batch_opts){.batch_size = 500});
    if (!opt || !ctx || !it || !va || !te) return fprintf(stderr, "fashion_lstm: %s\n", nb_last_error()), 1;
    printf("model: %lld parameters, %lld steps of %lld\n", (long long)nb_params_numel(model->ps),
           (long long)(nb_batcher_num_batches(it) * epochs), (long long)batch);

    /* linear warmup over the first half epoch, cosine decay to lr/100 at the end */
    nb_history h;
    nb_scores sc = {0};
    if (nb_fit(ctx, NULL, net, opt, it, &h, &(nb_fit_opts){.epochs = epochs, .val = va, .clip_norm = clip, .progress = stdout,
                                                           .schedule = NB_SCHEDULE_COSINE_WARMUP, .min_lr = lr / 100,
                                                           .warmup = nb_batcher_num_batches(it) / 2}) != NB_OK ||
        nb_evaluate(ctx, NULL, net, te, NULL, &sc) != NB_OK)
        return fprintf(stderr, "fashion_lstm: %s\n", nb_last_error()), 1;
    const double test_acc = sc.accuracy;
    printf("test_accuracy=%.4f samples_per_sec=%.0f\n", test_acc, ex_samples_per_sec(&h, d.x_train->shape[0]));

    nb_history_free(&h);
    nb_batcher_free(it), nb_batcher_free(va), nb_batcher_free(te);
    nb_optim_free(opt);
    nb_model_free(model), nb_ctx_free(ctx);
    ex_data_free(&d);
    if (test_acc < min_accuracy) {
        fprintf(stderr, "fashion_lstm: test accuracy %.4f is below --min-accuracy %.4f\n", test_acc, min_accuracy);
        return 1;
    }
    return 0;
}
