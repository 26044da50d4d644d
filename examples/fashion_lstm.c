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

typedef struct {
    nb_rnn_layer lstm;
    nb_linear_layer head;
} rnn_classifier;

/* x (N, 784) -> logits (N, 10): rows become time steps, (N, 784) -> (28, N, 28) = (T, N, F) */
static nb_tensor *forward(nb_ctx *ctx, const rnn_classifier *m, nb_tensor *x) {
    nb_tensor *seq = nb_reshape(ctx, x, NB_SHAPE(x->shape[0], 28, 28));
    seq = nb_contiguous(ctx, nb_transpose(ctx, seq, 0, 1));
    nb_tensor *h_last = NULL;
    nb_rnn_layer_forward(ctx, &m->lstm, seq, NULL, NULL, &h_last, NULL); /* zero initial state */
    return nb_linear_layer_forward(ctx, &m->head, h_last);
}

static nb_tensor *forward_any(nb_ctx *ctx, const void *m, nb_tensor *x) { return forward(ctx, m, x); }

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

    nb_params *ps = nb_params_new();
    nb_rng rng = nb_rng_new((uint64_t)seed);
    rnn_classifier m;
    if (nb_rnn_layer_init(&m.lstm, ps, "lstm", NB_LSTM, 28, hidden, true, &rng) != NB_OK ||
        nb_linear_layer_init(&m.head, ps, "head", hidden, 10, true, &rng) != NB_OK)
        return fprintf(stderr, "fashion_lstm: %s\n", nb_last_error()), 1;
    nb_optim *opt = nb_optim_new(&nb_adam, ps, NULL);
    nb_ctx *ctx = nb_ctx_new();
    nb_batcher *it = nb_batcher_new(d.x_train, d.y_train,
                                    &(nb_batch_opts){.batch_size = batch, .shuffle = true, .seed = (uint64_t)seed});
    if (!opt || !ctx || !it) return fprintf(stderr, "fashion_lstm: %s\n", nb_last_error()), 1;
    const int64_t steps_per_epoch = nb_batcher_num_batches(it), total = steps_per_epoch * epochs;
    printf("model: %lld parameters, %lld steps of %lld\n", (long long)ps->total, (long long)total, (long long)batch);

    double train_time = 0;
    int64_t step = 0, seen = 0;
    for (int64_t epoch = 0; epoch < epochs; epoch++) {
        double t0 = ex_now(), loss_sum = 0;
        nb_batch b;
        nb_batcher_start(it, epoch);
        while (nb_batcher_next(it, &b)) {
            opt->hp.lr = nb_lr_cosine_warmup(lr, step++, steps_per_epoch / 2, total, lr / 100);
            nb_params_zero_grad(ps);
            nb_tensor *loss = nb_cross_entropy(ctx, forward(ctx, &m, b.x), b.y, NB_REDUCE_MEAN);
            if (!loss || nb_backward(ctx, loss, NULL) != NB_OK || nb_clip_grad_norm(ps, clip) < 0 ||
                nb_optim_step(opt) != NB_OK)
                return fprintf(stderr, "fashion_lstm: %s%s\n", nb_ctx_error(ctx), nb_last_error()), 1;
            loss_sum += nb_item(loss) * (double)b.n;
            seen += b.n;
            nb_ctx_reset(ctx); /* the step's tensors and graph go; the memory stays */
        }
        train_time += ex_now() - t0;
        double val_acc = ex_accuracy(ctx, forward_any, &m, d.x_val, d.y_val);
        printf("epoch %2lld  train_loss %.4f  val_accuracy %.4f  lr %.2e  (%.1f s)\n", (long long)epoch + 1,
               loss_sum / (double)d.x_train->shape[0], val_acc, opt->hp.lr, ex_now() - t0);
        fflush(stdout);
    }
    double test_acc = ex_accuracy(ctx, forward_any, &m, d.x_test, d.y_test);
    printf("test_accuracy=%.4f samples_per_sec=%.0f\n", test_acc, (double)seen / train_time);

    nb_batcher_free(it);
    nb_optim_free(opt);
    nb_params_free(ps), nb_ctx_free(ctx);
    ex_data_free(&d);
    if (test_acc < min_accuracy) {
        fprintf(stderr, "fashion_lstm: test accuracy %.4f is below --min-accuracy %.4f\n", test_acc, min_accuracy);
        return 1;
    }
    return 0;
}
