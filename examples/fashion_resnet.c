/* A small residual network for Fashion-MNIST, written with modules (nabla/module.h): a 3x3 conv
 * stem, a residual block at `width` channels, a downsampling block to 2*width (stride 2, with a
 * 1x1 projection on the shortcut), batch norm after every conv, global average pooling and a
 * linear classifier. Prints the model summary, trains with Adam and a cosine schedule, writes
 * the module tree as DOT, then
 *     test_accuracy=0.XXXX samples_per_sec=N
 *
 *   build/fashion_resnet                              # 10000 images, 3 epochs
 *   build/fashion_resnet --subset 0 --epochs 10       # all 60000
 *   dot -Tsvg out/fashion_resnet.dot > resnet.svg     # the picture of the model
 */
// ci-args: --subset 2000 --val 200 --test 500 --epochs 2 --width 8 --lr 0.01 --threads 1 --min-accuracy 0.25 --dot ci_resnet.dot
#include "example_util.h"

/* ---- the model ---------------------------------------------------------------------------------- */
/* conv (no bias: batch norm follows) + batch norm, as "<name>.conv" and "<name>.bn" */
static nb_module *conv_bn(nb_model *m, const char *name, int64_t in, int64_t out, int64_t kernel, int64_t stride) {
    char conv[64], bn[64];
    snprintf(conv, sizeof conv, "%s.conv", name), snprintf(bn, sizeof bn, "%s.bn", name);
    return nb_sequential(m, name, NB_MODULES(
        nb_conv2d_module(m, (nb_conv2d_opts){.in = in, .out = out, .kernel = kernel, .stride = stride,
                                             .padding = kernel / 2, .no_bias = true, .name = conv}),
        nb_batch_norm_module(m, (nb_batch_norm_opts){.channels = out, .name = bn})));
}

/* relu(body(x) + shortcut(x)): body is conv-bn-relu-conv-bn, the shortcut the identity or, where
 * the shape changes, a 1x1 conv-bn projection */
static nb_module *block(nb_model *m, const char *name, int64_t in, int64_t out, int64_t stride) {
    char c1[64], c2[64], proj[64];
    snprintf(c1, sizeof c1, "%s.c1", name), snprintf(c2, sizeof c2, "%s.c2", name), snprintf(proj, sizeof proj, "%s.proj", name);
    nb_module *body = nb_sequential(m, NULL, NB_MODULES(conv_bn(m, c1, in, out, 3, stride), nb_relu_module(m, NULL),
                                                       conv_bn(m, c2, out, out, 3, 1)));
    nb_module *shortcut = in == out && stride == 1 ? NULL : conv_bn(m, proj, in, out, 1, stride);
    return nb_sequential(m, name, NB_MODULES(nb_residual(m, NULL, body, shortcut), nb_relu_module(m, NULL)));
}

/* (N, 1, 28, 28) -> logits (N, 10) */
static nb_module *resnet(nb_model *m, int64_t width) {
    return nb_sequential(m, "resnet", NB_MODULES(
        conv_bn(m, "stem", 1, width, 3, 1), nb_relu_module(m, NULL),
        block(m, "block1", width, width, 1),
        block(m, "block2", width, 2 * width, 2),
        nb_adaptive_avg_pool2d_module(m, (nb_adaptive_pool2d_opts){0}), nb_flatten_module(m, NULL),
        nb_linear_module(m, (nb_linear_opts){.in = 2 * width, .out = 10, .name = "fc"})));
}

/* ---- training (nb_fit: nabla/fit.h) ------------------------------------------------------------------------------------- */
int main(int argc, char **argv) {
    int64_t subset = 10000, val = -1, test = 0, epochs = 3, batch = 64, width = 16, threads = 0, seed = 1;
    double lr = 3e-3, min_accuracy = 0;
    const char *data = NULL, *dot = "out/fashion_resnet.dot";
    const ex_opt opts[] = {
        EX_SUBSET(&subset),
        {"--val", EX_INT, &val, -1, 59999, "validation images held out of them (-1: a tenth)"},
        {"--test", EX_INT, &test, 0, 10000, "test images evaluated (0: all)"},
        EX_EPOCHS(&epochs),
        EX_BATCH(&batch),
        EX_LR(&lr, "Adam's peak learning rate (warmup, then cosine decay)"),
        {"--width", EX_INT, &width, 1, 512, "channels of the stem and first block (the second has twice as many)"},
        EX_THREADS(&threads),
        EX_SEED(&seed),
        EX_DATA(&data),
        {"--dot", EX_STR, &dot, 0, 0, "the module tree as Graphviz DOT"},
        {"--min-accuracy", EX_REAL, &min_accuracy, 0, 1, "exit with status 1 if the test accuracy is below this"},
    };
    if (!ex_parse(argc, argv, "fashion_resnet", opts, (int)(sizeof opts / sizeof opts[0]))) return 2;
    if (!ex_prepare_output("fashion_resnet", dot)) return 2;
    if (val < 0) val = (subset ? subset : 60000) / 10;
    if (threads) nb_set_num_threads((int)threads);

    ex_data d;
    if (!ex_load("fashion_resnet", data, true, true, subset, val, test, seed, &d)) return 1;
    nb_model *model = nb_model_new(seed);
    nb_module *net = model ? resnet(model, width) : NULL;
    nb_ctx *ctx = nb_ctx_new();
    if (!net || !ctx) return fprintf(stderr, "fashion_resnet: %s\n", model ? model->error : nb_last_error()), 1;
    nb_ctx_seed(ctx, seed);
    if (nb_module_summary(net, ctx, NB_SHAPE(batch, 1, 28, 28), stdout) != NB_OK)
        return fprintf(stderr, "fashion_resnet: %s\n", nb_last_error()), 1;
    FILE *f = fopen(dot, "w");
    if (!f || nb_module_dot(net, f) != NB_OK) return fprintf(stderr, "fashion_resnet: cannot write %s\n", dot), 1;
    fclose(f);

    nb_hparams hp = nb_adam.defaults;
    hp.lr = lr;
    nb_optim *opt = nb_optim_new(&nb_adam, model->ps, &hp);
    nb_batcher *it = nb_batcher_new(d.x_train, d.y_train, &(nb_batch_opts){.batch_size = batch, .shuffle = true, .seed = seed});
    nb_batcher *va = nb_batcher_new(d.x_val, d.y_val, &(nb_batch_opts){.batch_size = 500});
    nb_batcher *te = nb_batcher_new(d.x_test, d.y_test, &(nb_batch_opts){.batch_size = 500});
    if (!opt || !it || !va || !te) return fprintf(stderr, "fashion_resnet: %s\n", nb_last_error()), 1;
    printf("train %lld, validation %lld, test %lld images; %d threads%s\n", (long long)d.x_train->shape[0],
           (long long)d.x_val->shape[0], (long long)d.x_test->shape[0], nb_get_num_threads(), nb_threads_auto() ? " (automatic)" : "");
    nb_history h;
    nb_scores sc = {0};
    if (nb_fit(ctx, NULL, net, opt, it, &h, &(nb_fit_opts){.epochs = epochs, .val = va, .progress = stdout,
                                                           .schedule = NB_SCHEDULE_COSINE_WARMUP, .min_lr = lr / 100,
                                                           .warmup = nb_batcher_num_batches(it) / 2}) != NB_OK ||
        nb_evaluate(ctx, NULL, net, te, NULL, &sc) != NB_OK)
        return fprintf(stderr, "fashion_resnet: %s\n", nb_last_error()), 1;
    const double test_acc = sc.accuracy;
    printf("test_accuracy=%.4f samples_per_sec=%.0f\n", test_acc, ex_samples_per_sec(&h, d.x_train->shape[0]));
    printf("module tree written to %s\n", dot);

    nb_history_free(&h);
    nb_batcher_free(it), nb_batcher_free(va), nb_batcher_free(te);
    nb_optim_free(opt);
    nb_model_free(model); /* every parameter, running statistic and module */
    nb_ctx_free(ctx);
    ex_data_free(&d);
    if (test_acc < min_accuracy) {
        fprintf(stderr, "fashion_resnet: test accuracy %.4f is below --min-accuracy %.4f\n", test_acc, min_accuracy);
        return 1;
    }
    return 0;
}
