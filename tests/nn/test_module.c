/* Modules: names and parameters, containers, train/eval, errors that name the module, no malloc
 * per step, the summary table against hand-computed counts, the DOT tree, and a residual CNN
 * built with modules equal to the same network written with nn.h's layers and ops. */
#include "nn_test_util.h"
#include "tmpdir.h"

#include <stdlib.h>
#include <unistd.h>

static nb_ctx *ctx;
static nb_model *model;
static void setup(void) {
    ctx = nb_ctx_new();
    nb_ctx_seed(ctx, 7);
    model = nb_model_new(42);
}
static void teardown(void) {
    nb_model_free(model);
    nb_ctx_free(ctx);
}
TestSuite(module, .init = setup, .fini = teardown, .timeout = 120);

static nb_tensor *randn(int ndim, const int64_t *shape) {
    nb_tensor *t = nb_randn(ctx, NB_F32, ndim, shape);
    cr_assert_not_null(t);
    return t;
}

static void assert_same(const nb_tensor *a, const nb_tensor *b, const char *what) {
    cr_assert(a && b, "%s: NULL (%s)", what, nb_ctx_error(ctx));
    cr_assert(nb_same_shape(a, b), "%s: shapes differ", what);
    for (int64_t i = 0; i < a->numel; i++)
        cr_assert_eq(nb_get(a, i), nb_get(b, i), "%s: element %lld %.9g vs %.9g", what, (long long)i, nb_get(a, i),
                     nb_get(b, i));
}

Test(module, names_parameters_and_initial_values) {
    nb_module *a = nb_linear_module(model, (nb_linear_opts){.in = 4, .out = 3});
    nb_module *b = nb_linear_module(model, (nb_linear_opts){.in = 3, .out = 2, .no_bias = true});
    nb_module *c = nb_conv2d_module(model, (nb_conv2d_opts){.in = 2, .out = 4, .kernel = 3, .name = "stem.conv"});
    cr_assert(a && b && c, "%s", model->error);
    cr_assert_str_eq(a->name, "linear");
    cr_assert_str_eq(b->name, "linear_1");
    cr_assert_str_eq(a->kind, "Linear");
    cr_assert_eq(a->n_params, 2);
    cr_assert_eq(b->n_params, 1);
    cr_assert_eq(a->params[0], nb_params_find(model->ps, "linear.weight"));
    cr_assert_eq(a->params[1], nb_params_find(model->ps, "linear.bias"));
    cr_assert_eq(b->params[0], nb_params_find(model->ps, "linear_1.weight"));
    cr_assert_eq(c->params[0], nb_params_find(model->ps, "stem.conv.weight"));
    cr_assert(c->params[0]->shape[0] == 4 && c->params[0]->shape[1] == 2 && c->params[0]->shape[3] == 3);
    cr_assert_str_eq(c->info, "2->4, 3x3");
    /* PyTorch's bound 1/sqrt(fan_in) = 1/sqrt(18) for the conv */
    double mx = 0;
    for (int64_t i = 0; i < c->params[0]->numel; i++) mx = fmax(mx, fabs(nb_get(c->params[0], i)));
    cr_assert(mx > 0 && mx <= 1 / sqrt(18.0), "max |w| %g", mx);
    /* values depend on seed and name, not on the order of construction */
    nb_model *other = nb_model_new(42);
    nb_module *c2 = nb_conv2d_module(other, (nb_conv2d_opts){.in = 2, .out = 4, .kernel = 3, .name = "stem.conv"});
    nb_module *a2 = nb_linear_module(other, (nb_linear_opts){.in = 4, .out = 3, .name = "linear"});
    cr_assert(c2 && a2);
    assert_same(c->params[0], c2->params[0], "conv weight");
    assert_same(a->params[0], a2->params[0], "linear weight");
    nb_model_free(other);
    /* 3*4 + 3 + 2*3 + 4*2*9 + 4 parameters */
    nb_module *all = nb_sequential(model, NULL, NB_MODULES(a, b));
    cr_assert_str_eq(all->name, "sequential");
    cr_assert_eq(nb_module_num_params(all), 12 + 3 + 6);
    cr_assert_eq(nb_module_num_params(c), 72 + 4);
    cr_assert_eq(nb_model_find(model, "linear_1"), b);
    cr_assert_null(nb_model_find(model, "linear_2"));
}

Test(module, sequential_equals_the_ops_and_shared_modules_count_once) {
    nb_module *fc = nb_linear_module(model, (nb_linear_opts){.in = 5, .out = 5});
    nb_module *net = nb_sequential(model, "net", NB_MODULES(fc, nb_tanh_module(model, NULL), fc, nb_gelu_module(model, NULL),
                                                            nb_sigmoid_module(model, NULL), nb_relu_module(model, NULL)));
    cr_assert_not_null(net, "%s", model->error);
    cr_assert_eq(nb_module_num_params(net), 30);
    nb_tensor *x = randn(NB_SHAPE(3, 5)), *w = fc->params[0], *b = fc->params[1];
    nb_tensor *want = nb_relu(ctx, nb_sigmoid(ctx, nb_gelu(ctx, nb_linear(ctx, nb_tanh(ctx, nb_linear(ctx, x, w, b)), w, b))));
    assert_same(nb_module_forward(ctx, net, x), want, "sequential");
    /* the summary lists the shared layer twice and counts it once */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_eq(nb_module_summary(net, ctx, NB_SHAPE(3, 5), f), NB_OK, "%s", nb_last_error());
    fclose(f);
    cr_assert_not_null(strstr(text, "Parameters: 30 (120 B)"), "%s", text);
    const char *first = strstr(text, "  linear (Linear)");
    cr_assert(first && strstr(first + 1, "  linear (Linear)"), "%s", text);
    free(text);
}

Test(module, residual_identity_and_projection) {
    nb_module *body = nb_linear_module(model, (nb_linear_opts){.in = 4, .out = 4});
    nb_module *proj = nb_linear_module(model, (nb_linear_opts){.in = 4, .out = 4, .no_bias = true});
    nb_module *id = nb_residual(model, "id", body, NULL), *pr = nb_residual(model, "pr", body, proj);
    cr_assert(id && pr, "%s", model->error);
    cr_assert_eq(pr->n_children, 2);
    nb_tensor *x = randn(NB_SHAPE(2, 4)), *fx = nb_linear(ctx, x, body->params[0], body->params[1]);
    assert_same(nb_module_forward(ctx, id, x), nb_add(ctx, fx, x), "identity shortcut");
    assert_same(nb_module_forward(ctx, pr, x), nb_add(ctx, fx, nb_linear(ctx, x, proj->params[0], NULL)), "projection");
    /* a shared body: the parameters count once */
    cr_assert_eq(nb_module_num_params(nb_sequential(model, NULL, NB_MODULES(id, pr))), 20 + 16);
}

Test(module, train_and_eval_follow_the_context) {
    nb_module *bn = nb_batch_norm_module(model, (nb_batch_norm_opts){.channels = 3, .momentum = 0.5});
    nb_module *drop = nb_dropout_module(model, NULL, 0.5);
    cr_assert(bn && drop, "%s", model->error);
    cr_assert_eq(bn->n_buffers, 2);
    nb_tensor *mean = bn->buffers[0], *var = bn->buffers[1];
    nb_tensor *x = nb_affine(ctx, randn(NB_SHAPE(4, 3, 2, 2)), 1.0, 2.0);
    /* eval: running statistics normalise and stay; dropout is the identity */
    nb_ctx_set_train(ctx, false);
    nb_tensor *y = nb_module_forward(ctx, bn, x);
    nb_tensor *want = nb_affine(ctx, x, 1 / sqrt(1 + 1e-5), 0); /* the fused kernel rounds once, from double */
    for (int64_t i = 0; i < x->numel; i++) assert_close(nb_get(y, i), nb_get(want, i), 1e-6, 1e-6, "eval batch norm %lld", (long long)i);
    cr_assert_eq(nb_get(mean, 0), 0.0);
    cr_assert_eq(nb_module_forward(ctx, drop, x), x);
    /* train: batch statistics, running mean moves halfway (momentum 0.5) to the batch mean */
    nb_ctx_set_train(ctx, true);
    nb_tensor *bm = nb_mean(ctx, x, 3, (int[]){0, 2, 3}, false);
    cr_assert_not_null(nb_module_forward(ctx, bn, x));
    for (int c = 0; c < 3; c++) assert_close(nb_get(mean, c), 0.5 * nb_get(bm, c), 1e-6, 1e-6);
    cr_assert_neq(nb_get(var, 0), 1.0);
    nb_tensor *d = nb_module_forward(ctx, drop, x);
    int zeros = 0;
    for (int64_t i = 0; i < d->numel; i++) {
        cr_assert(nb_get(d, i) == 0 || fabs(nb_get(d, i) - 2 * nb_get(x, i)) < 1e-6);
        zeros += nb_get(d, i) == 0;
    }
    cr_assert(zeros > 0 && zeros < d->numel, "%d of %lld dropped", zeros, (long long)d->numel);
    /* a summary runs in eval mode and leaves the statistics and the mode alone */
    const double m0 = nb_get(mean, 0);
    FILE *f = fopen("/dev/null", "w");
    cr_assert_eq(nb_module_summary(bn, ctx, NB_SHAPE(4, 3, 2, 2), f), NB_OK, "%s", nb_last_error());
    fclose(f);
    cr_assert_eq(nb_get(mean, 0), m0);
    cr_assert(nb_ctx_is_train(ctx));
}

Test(module, norms_pools_embedding) {
    nb_module *ln = nb_layer_norm_module(model, (nb_layer_norm_opts){.features = 6});
    nb_tensor *x = randn(NB_SHAPE(2, 6));
    assert_same(nb_module_forward(ctx, ln, x), nb_layer_norm(ctx, x, 1, NULL, NULL, 1e-5), "layer norm");
    nb_tensor *img = randn(NB_SHAPE(1, 2, 6, 6));
    nb_module *mp = nb_max_pool2d_module(model, (nb_pool2d_opts){.kernel = 3});
    nb_module *ap = nb_avg_pool2d_module(model, (nb_pool2d_opts){.kernel = 2, .stride = 1, .padding = 1});
    nb_module *gap = nb_adaptive_avg_pool2d_module(model, (nb_adaptive_pool2d_opts){0});
    nb_module *half = nb_adaptive_avg_pool2d_module(model, (nb_adaptive_pool2d_opts){.out_h = 3, .out_w = 2});
    cr_assert(mp && ap && gap && half, "%s", model->error);
    assert_same(nb_module_forward(ctx, mp, img), nb_max_pool2d(ctx, img, 3, 3, 0), "max pool");
    assert_same(nb_module_forward(ctx, ap, img), nb_avg_pool2d(ctx, img, 2, 1, 1), "avg pool");
    assert_same(nb_module_forward(ctx, gap, img), nb_mean(ctx, img, 2, (int[]){2, 3}, true), "global pool");
    nb_tensor *wide = randn(NB_SHAPE(1, 2, 6, 4));
    assert_same(nb_module_forward(ctx, half, wide), nb_adaptive_avg_pool2d(ctx, wide, 3, 2), "adaptive pool");
    /* an embedding takes indices: the summary feeds it i64 zeros */
    nb_module *emb = nb_sequential(model, "emb", NB_MODULES(nb_embedding_module(model, (nb_embedding_opts){.num = 7, .dim = 3}),
                                                           nb_flatten_module(model, NULL)));
    cr_assert_not_null(emb, "%s", model->error);
    cr_assert_eq(emb->in_dtype, NB_I64);
    nb_tensor *idx = nb_from(ctx, NB_I64, NB_SHAPE(2, 2), (int64_t[]){6, 0, 1, 6});
    nb_tensor *e = nb_module_forward(ctx, emb, idx);
    cr_assert(e && e->ndim == 2 && e->shape[1] == 6);
    cr_assert_eq(nb_get(e, 0), nb_get(emb->children[0]->params[0], 18));
    FILE *f = fopen("/dev/null", "w");
    cr_assert_eq(nb_module_summary(emb, ctx, NB_SHAPE(2, 2), f), NB_OK, "%s", nb_last_error());
    fclose(f);
    cr_assert_eq(emb->out_ndim_, 2);
    cr_assert_eq(emb->out_shape_[1], 6);
}

Test(module, transposed_conv_recurrent_and_leaky_relu_equal_their_ops) {
    nb_module *up = nb_conv_transpose2d_module(model, (nb_conv_transpose2d_opts){.in = 2, .out = 3, .kernel = 3, .stride = 2,
                                                                                 .padding = 1, .output_padding = 1});
    nb_module *lstm = nb_rnn_module(model, (nb_rnn_opts){.kind = NB_LSTM, .in = 4, .hidden = 5, .name = "lstm"});
    nb_module *gru = nb_rnn_module(model, (nb_rnn_opts){.kind = NB_GRU, .in = 4, .hidden = 5, .batch_first = true, .last = true});
    nb_module *leaky = nb_leaky_relu_module(model, NULL, 0), *leaky2 = nb_leaky_relu_module(model, NULL, 0.2);
    cr_assert(up && lstm && gru && leaky && leaky2, "%s", model->error);
    cr_assert_str_eq(up->kind, "ConvTranspose2d");
    cr_assert_str_eq(up->info, "2->3, 3x3, stride 2, padding 1, output_padding 1");
    cr_assert_str_eq(gru->name, "gru");
    cr_assert_eq(lstm->n_params, 4);
    cr_assert_eq(nb_params_find(model->ps, "lstm.weight_ih")->shape[0], 4 * 5); /* 4 gates */
    nb_tensor *img = randn(NB_SHAPE(2, 2, 7, 7));
    nb_tensor *y = nb_module_forward(ctx, up, img);
    assert_same(y, nb_conv_transpose2d(ctx, img, up->params[0], up->params[1], 2, 1, 1, 1, 1), "conv transpose");
    cr_assert(y->shape[2] == 14 && y->shape[3] == 14);
    /* (T, N, F) -> every state (T, N, H); batch first with last: (N, T, F) -> the final state (N, H) */
    nb_tensor *seq = randn(NB_SHAPE(6, 3, 4)), *h = NULL, *const *p = lstm->params;
    nb_tensor *all = nb_rnn_unroll(ctx, NB_LSTM, seq, NULL, NULL, p[0], p[1], p[2], p[3], &h, NULL);
    assert_same(nb_module_forward(ctx, lstm, seq), all, "lstm states");
    p = gru->params;
    nb_rnn_unroll(ctx, NB_GRU, seq, NULL, NULL, p[0], p[1], p[2], p[3], &h, NULL);
    assert_same(nb_module_forward(ctx, gru, nb_transpose(ctx, seq, 0, 1)), h, "gru last state, batch first");
    nb_tensor *x = randn(NB_SHAPE(3, 4));
    assert_same(nb_module_forward(ctx, leaky, x), nb_leaky_relu(ctx, x, 0.01), "leaky relu, default slope");
    assert_same(nb_module_forward(ctx, leaky2, x), nb_leaky_relu(ctx, x, 0.2), "leaky relu 0.2");
}

/* a module of one's own: y = x * scale, scale initialised from the module's stream */
static nb_tensor *scale_forward(nb_ctx *c, const nb_module *m, nb_tensor *x) { return nb_mul(c, x, m->params[0]); }

Test(module, custom_module) {
    nb_module *m = nb_module_new(model, "Scale", NULL, scale_forward, 0);
    cr_assert_not_null(m);
    cr_assert_str_eq(m->name, "scale");
    nb_tensor *s = nb_module_param(m, "weight", NB_SHAPE(3));
    cr_assert_eq(nb_rng_uniform(&m->rng, s, 1, 2), NB_OK);
    cr_assert_eq(nb_params_find(model->ps, "scale.weight"), s);
    nb_tensor *buf = nb_tensor_new(NB_F32, NB_SHAPE(5));
    cr_assert_eq(nb_module_add_buffer(m, "count", buf), NB_OK); /* freed with the model */
    cr_assert_eq(nb_params_find_buffer(model->ps, "scale.count"), buf);
    nb_tensor *x = randn(NB_SHAPE(2, 3));
    assert_same(nb_module_forward(ctx, m, x), nb_mul(ctx, x, s), "custom");
    cr_assert_eq(nb_module_num_params(m), 3);
}

Test(module, construction_errors_are_sticky_and_name_the_layer) {
    cr_assert_null(nb_conv2d_module(model, (nb_conv2d_opts){.in = 0, .out = 4, .kernel = 3}));
    cr_assert_eq(model->status, NB_ERR_VALUE);
    cr_assert_not_null(strstr(model->error, "conv2d_module: conv2d_layer_init 'conv2d': size 0"), "%s", model->error);
    char first[512];
    snprintf(first, sizeof first, "%s", model->error);
    /* everything after a failure fails with the first error */
    cr_assert_null(nb_relu_module(model, NULL));
    cr_assert_null(nb_sequential(model, NULL, NB_MODULES(NULL)));
    cr_assert_str_eq(model->error, first);
    cr_assert_str_eq(nb_last_error(), first);
}

static nb_module *taken_name(nb_model *m) {
    nb_relu_module(m, "act");
    return nb_tanh_module(m, "act");
}
static nb_module *bad_pool(nb_model *m) { return nb_max_pool2d_module(m, (nb_pool2d_opts){.kernel = 2, .padding = 2}); }
static nb_module *bad_dropout(nb_model *m) { return nb_dropout_module(m, NULL, 1.0); }
static nb_module *bad_stride(nb_model *m) {
    return nb_conv2d_module(m, (nb_conv2d_opts){.in = 1, .out = 1, .kernel = 1, .stride = -1});
}
static nb_module *bad_output_padding(nb_model *m) { /* PyTorch: output padding must be smaller than stride */
    return nb_conv_transpose2d_module(m, (nb_conv_transpose2d_opts){.in = 1, .out = 1, .kernel = 3, .stride = 2, .output_padding = 2});
}
/* refused when built, not at the first forward */
static nb_module *bad_bn_eps(nb_model *m) { return nb_batch_norm_module(m, (nb_batch_norm_opts){.channels = 2, .eps = -1e-5}); }
static nb_module *bad_bn_momentum(nb_model *m) {
    return nb_batch_norm_module(m, (nb_batch_norm_opts){.channels = 2, .momentum = 1.5});
}
static nb_module *bad_ln_eps(nb_model *m) { return nb_layer_norm_module(m, (nb_layer_norm_opts){.features = 2, .eps = NAN}); }
static nb_module *bad_rnn_kind(nb_model *m) { return nb_rnn_module(m, (nb_rnn_opts){.kind = 7, .in = 1, .hidden = 1}); }
static nb_module *no_children(nb_model *m) { return nb_sequential(m, NULL, 0, NULL); }
static nb_module *cycle(nb_model *m) {
    nb_module *s = nb_sequential(m, "outer", NB_MODULES(nb_relu_module(m, NULL)));
    return nb_module_add_child(s, s) == NB_OK ? s : NULL;
}
static nb_module *foreign_child(nb_model *m) {
    nb_model *other = nb_model_new(1);
    nb_module *r = nb_sequential(m, NULL, NB_MODULES(nb_relu_module(other, "foreign")));
    nb_model_free(other);
    return r;
}

Test(module, bad_options) {
    struct {
        nb_module *(*make)(nb_model *);
        nb_status status;
        const char *want;
    } cases[] = {
        {taken_name, NB_ERR_VALUE, "tanh_module: the name 'act' is taken"},
        {bad_pool, NB_ERR_VALUE, "max_pool2d_module 'maxpool2d': kernel 2, stride 0, padding 2"},
        {bad_dropout, NB_ERR_VALUE, "dropout_module 'dropout': p = 1 outside [0, 1)"},
        {bad_stride, NB_ERR_VALUE, "conv2d_module 'conv2d': stride -1"},
        {bad_output_padding, NB_ERR_VALUE, "conv_transpose2d_module 'convtranspose2d': stride 2, padding 0, output_padding 2"},
        {bad_rnn_kind, NB_ERR_VALUE, "rnn_module: unknown kind 7"},
        {bad_bn_eps, NB_ERR_VALUE, "batch_norm_module 'batchnorm': momentum 0 must be in [0, 1] and eps -1e-05"},
        {bad_bn_momentum, NB_ERR_VALUE, "batch_norm_module 'batchnorm': momentum 1.5 must be in [0, 1]"},
        {bad_ln_eps, NB_ERR_VALUE, "layer_norm_module 'layernorm': eps nan must be finite"},
        {no_children, NB_ERR_VALUE, "sequential: 0 children"},
        {cycle, NB_ERR_VALUE, "'outer' inside 'outer' would make a cycle"},
        {foreign_child, NB_ERR_VALUE, "'foreign' belongs to another model"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nb_model *m = nb_model_new(0);
        cr_assert_null(cases[i].make(m), "case %zu built", i);
        cr_assert_eq(m->status, cases[i].status, "case %zu: %s", i, m->error);
        cr_assert_not_null(strstr(m->error, cases[i].want), "case %zu: '%s' lacks '%s'", i, m->error, cases[i].want);
        nb_model_free(m);
    }
    cr_assert_null(nb_relu_module(NULL, NULL));
    cr_assert_eq(nb_last_status(), NB_ERR_NULL);
}

Test(module, forward_errors_name_the_innermost_module) {
    nb_module *net = nb_sequential(model, "net", NB_MODULES(
        nb_conv2d_module(model, (nb_conv2d_opts){.in = 3, .out = 4, .kernel = 3, .padding = 1}),
        nb_residual(model, NULL, nb_conv2d_module(model, (nb_conv2d_opts){.in = 4, .out = 8, .kernel = 1, .name = "widen"}),
                    NULL)));
    cr_assert_not_null(net, "%s", model->error);
    /* the conv is given 1 channel: its error names it; the containers around it add nothing */
    cr_assert_null(nb_module_forward(ctx, net, randn(NB_SHAPE(2, 1, 5, 5))));
    const char *msg = nb_ctx_error(ctx);
    cr_assert(strstr(msg, "module_forward: conv2d (Conv2d): conv2d") == msg, "%s", msg);
    cr_assert_eq(strstr(msg, "net (Sequential)"), NULL, "%s", msg);
    cr_assert_str_eq(nb_last_error(), msg);
    nb_ctx_clear_error(ctx);
    /* the residual's add fails (4 channels + 8): the residual is named */
    cr_assert_null(nb_module_forward(ctx, net, randn(NB_SHAPE(2, 3, 5, 5))));
    msg = nb_ctx_error(ctx);
    cr_assert(strstr(msg, "residual (Residual): ") && strstr(msg, "add"), "%s", msg);
    nb_ctx_clear_error(ctx);
    /* NULL input or module */
    cr_assert_null(nb_module_forward(ctx, net, NULL));
    cr_assert(strstr(nb_ctx_error(ctx), "module_forward: input 0 is NULL"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    cr_assert_null(nb_module_forward(ctx, NULL, randn(NB_SHAPE(1))));
    cr_assert(strstr(nb_ctx_error(ctx), "module is NULL"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    /* the summary reports the forward's error */
    FILE *f = fopen("/dev/null", "w");
    cr_assert_eq(nb_module_summary(net, ctx, NB_SHAPE(1, 2, 5, 5), f), NB_ERR_SHAPE);
    fclose(f);
    cr_assert(strstr(nb_last_error(), "module_summary: ") && strstr(nb_last_error(), "conv2d (Conv2d)"), "%s",
              nb_last_error());
}

/* ---- the small CNN of the summary and DOT tests ------------------------------------------ */
static nb_module *small_cnn(void) {
    nb_module *net = nb_sequential(model, "cnn", NB_MODULES(
        nb_conv2d_module(model, (nb_conv2d_opts){.in = 1, .out = 16, .kernel = 3, .padding = 1}),
        nb_batch_norm_module(model, (nb_batch_norm_opts){.channels = 16}),
        nb_relu_module(model, NULL),
        nb_max_pool2d_module(model, (nb_pool2d_opts){.kernel = 2}),
        nb_conv2d_module(model, (nb_conv2d_opts){.in = 16, .out = 32, .kernel = 3, .padding = 1, .no_bias = true}),
        nb_adaptive_avg_pool2d_module(model, (nb_adaptive_pool2d_opts){0}),
        nb_flatten_module(model, NULL),
        nb_dropout_module(model, NULL, 0.25),
        nb_linear_module(model, (nb_linear_opts){.in = 32, .out = 10})));
    cr_assert_not_null(net, "%s", model->error);
    return net;
}

Test(module, summary_of_a_small_cnn) {
    nb_module *net = small_cnn();
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_eq(nb_module_summary(net, ctx, NB_SHAPE(2, 1, 28, 28), f), NB_OK, "%s", nb_last_error());
    fclose(f);
    /* conv 1->16 3x3: 16*9 + 16 = 160 parameters (640 B); batch norm 16: weight and bias 32, with
     * the running mean and variance 64 floats (256 B); conv 16->32 3x3 without bias: 32*16*9 =
     * 4608 (18432 B); linear 32->10: 330 (1320 B). Total 5130 floats = 20520 B = 20.0 KB.
     * Outputs (2 images): 3 x 2*16*28*28 + 2*16*14*14 + 2*32*14*14 + 64 + 64 + 64 + 20 = 94292
     * floats = 377168 B = 368.3 KB. */
    const char *want =
        "Model \"cnn\" (Sequential), input (2,1,28,28) f32\n"
        "Layer (type)                             Output shape      Param #        Bytes\n"
        "===============================================================================\n"
        "cnn (Sequential)                         (2,10)                 --           --\n"
        "  conv2d (Conv2d)                        (2,16,28,28)          160          640\n"
        "  batchnorm (BatchNorm)                  (2,16,28,28)           32          256\n"
        "  relu (ReLU)                            (2,16,28,28)            0            0\n"
        "  maxpool2d (MaxPool2d)                  (2,16,14,14)            0            0\n"
        "  conv2d_1 (Conv2d)                      (2,32,14,14)        4,608       18,432\n"
        "  adaptiveavgpool2d (AdaptiveAvgPool2d)  (2,32,1,1)              0            0\n"
        "  flatten (Flatten)                      (2,32)                  0            0\n"
        "  dropout (Dropout)                      (2,32)                  0            0\n"
        "  linear (Linear)                        (2,10)                330        1,320\n"
        "===============================================================================\n"
        "Parameters: 5,130 (20.0 KB)\n"
        "Buffers, not trained: 32 (128 B)\n"
        "Layer outputs of one forward pass: 94,292 values (368.3 KB)\n";
    cr_assert_str_eq(text, want, "got:\n%s", text);
    free(text);
    cr_assert_eq(nb_module_num_params(net), 5130);
}

Test(module, dot_tree_is_stable_and_renders) {
    nb_module *net = small_cnn();
    FILE *f = fopen("/dev/null", "w");
    cr_assert_eq(nb_module_summary(net, ctx, NB_SHAPE(2, 1, 28, 28), f), NB_OK);
    fclose(f);
    char *texts[2];
    for (int k = 0; k < 2; k++) {
        size_t len;
        f = open_memstream(&texts[k], &len);
        cr_assert_eq(nb_module_dot(net, f), NB_OK);
        fclose(f);
    }
    cr_assert_str_eq(texts[0], texts[1]);
    const char *t = texts[0];
    cr_assert(strstr(t, "m0 [label=\"cnn\\nSequential\\nout (2,10)\", fillcolor=gray95];"), "%s", t);
    cr_assert(strstr(t, "m1 [label=\"conv2d\\nConv2d 1->16, 3x3, padding 1\\n160 parameters\\nout (2,16,28,28)\""), "%s", t);
    cr_assert(strstr(t, "m9 [label=\"linear\\nLinear 32->10\\n330 parameters"), "%s", t);
    for (int k = 1; k <= 9; k++) {
        char edge[32];
        snprintf(edge, sizeof edge, "  m0 -> m%d;\n", k);
        cr_assert(strstr(t, edge), "no edge %s", edge);
    }
    if (access("/usr/bin/dot", X_OK) == 0) { /* Graphviz parses and renders it */
        tmpdir_setup();
        f = fopen(tmp("m.dot"), "w");
        fputs(t, f);
        fclose(f);
        char cmd[512];
        snprintf(cmd, sizeof cmd, "/usr/bin/dot -Tsvg %s/m.dot -o %s/m.svg", dir, dir);
        cr_assert_eq(system(cmd), 0, "dot refused the file:\n%s", t);
        char *svg = slurp(tmp("m.svg"), NULL);
        cr_assert(strstr(svg, "<svg") && strstr(svg, "AdaptiveAvgPool2d"));
        free(svg);
        tmpdir_teardown();
    } else {
        cr_log_warn("Graphviz is not installed: the DOT file was not rendered");
    }
    free(texts[0]), free(texts[1]);
}

Test(module, training_steps_do_not_malloc) {
    nb_module *net = small_cnn();
    nb_hparams hp = nb_adam.defaults;
    nb_optim *opt = nb_optim_new(&nb_adam, model->ps, &hp);
    nb_tensor *x = nb_tensor_new(NB_F32, NB_SHAPE(4, 1, 12, 12)), *y = nb_tensor_new(NB_I64, NB_SHAPE(4));
    nb_rng r = nb_rng_new(3);
    nb_rng_normal(&r, x, 0, 1);
    for (int i = 0; i < 4; i++) nb_set(y, i, i);
    uint64_t after_warmup = 0;
    double first = 0, last = 0;
    for (int step = 0; step < 8; step++) {
        if (step == 3) after_warmup = nb_ctx_mallocs(ctx);
        nb_params_zero_grad(model->ps);
        nb_tensor *loss = nb_cross_entropy(ctx, nb_module_forward(ctx, net, x), y, NB_REDUCE_MEAN);
        cr_assert_not_null(loss, "%s", nb_ctx_error(ctx));
        cr_assert_eq(nb_backward(ctx, loss, NULL), NB_OK);
        cr_assert_eq(nb_optim_step(opt), NB_OK);
        if (step == 0) first = nb_item(loss);
        last = nb_item(loss);
        nb_ctx_reset(ctx);
    }
    cr_assert_eq(nb_ctx_mallocs(ctx), after_warmup, "%llu mallocs in 5 steady steps",
                 (unsigned long long)(nb_ctx_mallocs(ctx) - after_warmup));
    cr_assert_lt(last, first, "loss %g -> %g", first, last);
    nb_optim_free(opt);
    nb_tensor_free(x), nb_tensor_free(y);
}

/* ---- issue 15's residual CNN: modules against nn.h by hand -------------------------------------- */
static nb_module *conv_bn(nb_model *m, const char *name, int64_t in, int64_t out, int64_t k, int64_t stride) {
    char conv[64], bn[64];
    snprintf(conv, sizeof conv, "%s.conv", name), snprintf(bn, sizeof bn, "%s.bn", name);
    return nb_sequential(m, name, NB_MODULES(
        nb_conv2d_module(m, (nb_conv2d_opts){.in = in, .out = out, .kernel = k, .stride = stride, .padding = k / 2,
                                             .no_bias = true, .name = conv}),
        nb_batch_norm_module(m, (nb_batch_norm_opts){.channels = out, .name = bn})));
}

static nb_module *resnet_modules(nb_model *m) {
    return nb_sequential(m, "resnet", NB_MODULES(
        conv_bn(m, "stem", 1, 16, 3, 1), nb_relu_module(m, NULL),
        nb_residual(m, "block1", nb_sequential(m, NULL, NB_MODULES(conv_bn(m, "b1c1", 16, 16, 3, 1), nb_relu_module(m, NULL),
                                                                   conv_bn(m, "b1c2", 16, 16, 3, 1))), NULL),
        nb_relu_module(m, NULL),
        nb_residual(m, "block2", nb_sequential(m, NULL, NB_MODULES(conv_bn(m, "b2c1", 16, 32, 3, 2), nb_relu_module(m, NULL),
                                                                   conv_bn(m, "b2c2", 32, 32, 3, 1))),
                    conv_bn(m, "proj", 16, 32, 1, 2)),
        nb_relu_module(m, NULL),
        nb_adaptive_avg_pool2d_module(m, (nb_adaptive_pool2d_opts){0}), nb_flatten_module(m, NULL),
        nb_linear_module(m, (nb_linear_opts){.in = 32, .out = 10, .name = "fc"})));
}

typedef struct {
    nb_conv2d_layer conv[6];     /* stem, b1c1, b1c2, b2c1, b2c2, proj */
    nb_batch_norm_layer bn[6];
    nb_linear_layer fc;
} hand_resnet;
static const char *hand_names[6] = {"stem", "b1c1", "b1c2", "b2c1", "b2c2", "proj"};

static void hand_init(hand_resnet *h, nb_params *ps) {
    static const int in[6] = {1, 16, 16, 16, 32, 16}, out[6] = {16, 16, 16, 32, 32, 32}, k[6] = {3, 3, 3, 3, 3, 1},
                     stride[6] = {1, 1, 1, 2, 1, 2};
    nb_rng rng = nb_rng_new(5);
    for (int i = 0; i < 6; i++) {
        char conv[64], bn[64];
        snprintf(conv, sizeof conv, "%s.conv", hand_names[i]), snprintf(bn, sizeof bn, "%s.bn", hand_names[i]);
        cr_assert_eq(nb_conv2d_layer_init(&h->conv[i], ps, conv, in[i], out[i], k[i], stride[i], k[i] / 2, 1, 1, false, &rng),
                     NB_OK);
        cr_assert_eq(nb_batch_norm_layer_init(&h->bn[i], ps, bn, out[i]), NB_OK);
    }
    cr_assert_eq(nb_linear_layer_init(&h->fc, ps, "fc", 32, 10, true, &rng), NB_OK);
}

static nb_tensor *cbn(nb_ctx *c, const hand_resnet *h, int i, nb_tensor *x) {
    return nb_batch_norm_layer_forward(c, &h->bn[i], nb_conv2d_layer_forward(c, &h->conv[i], x));
}

static nb_tensor *hand_forward(nb_ctx *c, const hand_resnet *h, nb_tensor *x) {
    nb_tensor *a = nb_relu(c, cbn(c, h, 0, x));
    a = nb_relu(c, nb_add(c, cbn(c, h, 2, nb_relu(c, cbn(c, h, 1, a))), a));
    nb_tensor *body = cbn(c, h, 4, nb_relu(c, cbn(c, h, 3, a)));
    a = nb_relu(c, nb_add(c, body, cbn(c, h, 5, a)));
    return nb_linear_layer_forward(c, &h->fc, nb_flatten(c, nb_adaptive_avg_pool2d(c, a, 1, 1), 1));
}

Test(module, residual_cnn_equals_the_network_written_by_hand) {
    nb_module *net = resnet_modules(model);
    cr_assert_not_null(net, "%s", model->error);
    nb_params *ps = nb_params_new();
    hand_resnet h;
    hand_init(&h, ps);
    /* same parameters: every hand-made one has its namesake in the model */
    cr_assert_eq(ps->n, model->ps->n);
    for (int i = 0; i < ps->n; i++) {
        nb_tensor *p = nb_params_find(model->ps, ps->names[i]);
        cr_assert_not_null(p, "the model has no '%s'", ps->names[i]);
        cr_assert_eq(nb_copy_into(ps->p[i], p), NB_OK);
    }
    nb_tensor *x = nb_tensor_new(NB_F32, NB_SHAPE(3, 1, 10, 10)), *y = nb_tensor_from(NB_I64, NB_SHAPE(3), (int64_t[]){1, 7, 3});
    nb_rng r = nb_rng_new(11);
    nb_rng_normal(&r, x, 0, 1);
    /* two training steps' worth of forward + backward (running statistics move) and one in eval */
    for (int step = 0; step < 3; step++) {
        nb_ctx_set_train(ctx, step < 2);
        nb_params_zero_grad(ps), nb_params_zero_grad(model->ps);
        nb_tensor *lm = nb_cross_entropy(ctx, nb_module_forward(ctx, net, x), y, NB_REDUCE_MEAN);
        nb_tensor *lh = nb_cross_entropy(ctx, hand_forward(ctx, &h, x), y, NB_REDUCE_MEAN);
        cr_assert(lm && lh, "%s", nb_ctx_error(ctx));
        cr_assert_eq(nb_backward(ctx, lm, NULL), NB_OK);
        cr_assert_eq(nb_backward(ctx, lh, NULL), NB_OK);
        cr_assert_eq(nb_item(lm), nb_item(lh), "step %d: loss %.9g vs %.9g", step, nb_item(lm), nb_item(lh));
        for (int i = 0; i < ps->n; i++)
            assert_same(nb_params_find(model->ps, ps->names[i])->grad, ps->p[i]->grad, ps->names[i]);
        nb_ctx_reset(ctx);
    }
    /* the running statistics moved the same way */
    for (int i = 0; i < 6; i++) {
        char bn[64];
        snprintf(bn, sizeof bn, "%s.bn", hand_names[i]);
        const nb_module *m = nb_model_find(model, bn);
        cr_assert(m && !strcmp(m->kind, "BatchNorm"));
        assert_same(m->buffers[0], h.bn[i].running_mean, bn);
        assert_same(m->buffers[1], h.bn[i].running_var, bn);
        cr_assert_neq(nb_get(m->buffers[0], 0), 0.0);
        nb_batch_norm_layer_free(&h.bn[i]);
    }
    nb_params_free(ps);
    nb_tensor_free(x), nb_tensor_free(y);
}

/* Containers keep only each child's output: a no-grad forward through 24 layers peaks at about
 * one layer's tensors, and gives the same values as the same layers run by hand. */
Test(module, no_grad_forward_holds_one_layer_at_a_time) {
    nb_module *layers[24];
    for (int i = 0; i < 24; i++)
        layers[i] = i % 2 ? nb_tanh_module(model, NULL) : nb_linear_module(model, (nb_linear_opts){.in = 256, .out = 256});
    nb_module *net = nb_sequential(model, "net", 24, layers);
    cr_assert_not_null(net, "%s", model->error);
    nb_tensor *x = nb_tensor_new(NB_F32, NB_SHAPE(1024, 256)); /* 1 MiB */
    nb_rng r = nb_rng_new(9);
    nb_rng_normal(&r, x, 0, 1);
    const size_t one = (size_t)x->numel * sizeof(float);
    nb_tensor *y = NULL;
    nb_ctx_reset_peak(ctx);
    NB_NO_GRAD(ctx) { y = nb_module_forward(ctx, net, x); }
    cr_assert_not_null(y, "%s", nb_ctx_error(ctx));
    cr_assert_lt(nb_ctx_bytes_peak(ctx), 4 * one, "peak %zu for 24 layers of %zu", nb_ctx_bytes_peak(ctx), one);
    nb_tensor *h = x; /* by hand, without keep */
    NB_NO_GRAD(ctx) {
        for (int i = 0; i < 24; i++) h = nb_module_forward(ctx, layers[i], h);
    }
    cr_assert(memcmp(h->data, y->data, one) == 0, "values differ from the layers run one by one");
    nb_tensor_free(x);
}

/* nb_residual_relu is nb_residual then a ReLU module, in one op: same values and gradients */
Test(module, residual_relu_equals_residual_then_relu) {
    nb_module *body = nb_sequential(model, "body", NB_MODULES(
        nb_conv2d_module(model, (nb_conv2d_opts){.in = 4, .out = 4, .kernel = 3, .padding = 1, .name = "c"}),
        nb_batch_norm_module(model, (nb_batch_norm_opts){.channels = 4, .name = "bn"})));
    nb_module *fused = nb_residual_relu(model, "fused", body, NULL);
    nb_module *plain = nb_sequential(model, "plain", NB_MODULES(nb_residual(model, NULL, body, NULL), nb_relu_module(model, NULL)));
    cr_assert(fused && plain, "%s", model->error);
    nb_tensor *x = randn(NB_SHAPE(2, 4, 5, 5));
    nb_requires_grad(x, true);
    nb_tensor *g[2][3];
    for (int k = 0; k < 2; k++) {
        nb_params_zero_grad(model->ps);
        nb_tensor *y = nb_module_forward(ctx, k ? plain : fused, x);
        cr_assert_not_null(y, "%s", nb_ctx_error(ctx));
        cr_assert_eq(nb_grad(ctx, 1, &y, (nb_tensor *[]){nb_sin(ctx, nb_detach(ctx, y))}, 1, &x, g[k], false), NB_OK,
                     "%s", nb_ctx_error(ctx));
        g[k][1] = y;
    }
    assert_same(g[0][1], g[1][1], "output");
    assert_same(g[0][0], g[1][0], "input gradient");
}

/* No-grad containers let batch norm and built-in activations write over their input when it is
 * the container's own intermediate: conv -> bn -> relu holds two values at a time, not three,
 * with the same values; a user's activation (which reads its input twice) is left alone. */
static nb_tensor *swish(nb_ctx *c, nb_tensor *x) { return nb_mul(c, x, nb_sigmoid(c, x)); }

Test(module, no_grad_batch_norm_and_activations_overwrite_the_container_s_intermediate) {
    nb_module *conv = nb_conv2d_module(model, (nb_conv2d_opts){.in = 8, .out = 8, .kernel = 1, .name = "c"});
    nb_module *bn = nb_batch_norm_module(model, (nb_batch_norm_opts){.channels = 8, .name = "bn"});
    nb_module *act = nb_relu_module(model, NULL), *sw = nb_unary_module(model, "Swish", swish, NULL);
    nb_module *net = nb_sequential(model, "net", NB_MODULES(conv, bn, act, sw));
    cr_assert_not_null(net, "%s", model->error);
    nb_tensor *x = nb_tensor_new(NB_F32, NB_SHAPE(16, 8, 32, 32)); /* 512 KiB */
    nb_rng r = nb_rng_new(3);
    nb_rng_normal(&r, x, 0, 1);
    const size_t one = (size_t)x->numel * sizeof(float);
    nb_ctx_set_train(ctx, false);
    nb_tensor *y = NULL, *h = x;
    nb_ctx_reset_peak(ctx);
    NB_NO_GRAD(ctx) { y = nb_module_forward(ctx, nb_sequential(model, NULL, NB_MODULES(conv, bn, act)), x); }
    cr_assert_not_null(y, "%s", nb_ctx_error(ctx));
    cr_assert_lt(nb_ctx_bytes_peak(ctx), one + one / 2, "peak %zu for values of %zu", nb_ctx_bytes_peak(ctx), one);
    nb_ctx_reset(ctx);
    NB_NO_GRAD(ctx) { y = nb_module_forward(ctx, net, x); }
    cr_assert_not_null(y, "%s", nb_ctx_error(ctx));
    NB_NO_GRAD(ctx) { /* by hand, no container */
        h = nb_module_forward(ctx, sw, nb_relu(ctx, nb_module_forward(ctx, bn, nb_module_forward(ctx, conv, x))));
    }
    cr_assert(h && memcmp(h->data, y->data, one) == 0, "values differ from the layers run one by one");
    nb_tensor_free(x);
}
