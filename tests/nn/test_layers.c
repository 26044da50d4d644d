/* Initialisers (statistics and bounds), layers (parameter names, shapes, PyTorch's default
 * initialisation, forward = functional op), batch-norm running statistics through the layer and
 * train/eval mode, the embedding op. */
#include "nn_test_util.h"

static nb_ctx *ctx;
static nb_params *ps;
static void setup(void) { ctx = nb_ctx_new(); ps = nb_params_new(); }
static void teardown(void) { nb_params_free(ps); nb_ctx_free(ctx); }
TestSuite(layers, .init = setup, .fini = teardown, .timeout = 60);

static void stats(const nb_tensor *t, double *mean, double *std, double *maxabs) {
    double s = 0, s2 = 0, m = 0;
    for (int64_t i = 0; i < t->numel; i++) {
        double v = nb_get(t, i);
        s += v, s2 += v * v, m = fmax(m, fabs(v));
    }
    *mean = s / (double)t->numel;
    *std = sqrt(s2 / (double)t->numel - *mean * *mean);
    *maxabs = m;
}

Test(layers, init_statistics) {
    nb_rng rng = nb_rng_new(42);
    double mean, sd, mx;
    /* He normal (fan_in 256 * 3 * 3): std sqrt(2 / 2304) */
    nb_tensor *w = nb_tensor_new(NB_F32, NB_SHAPE(128, 256, 3, 3));
    cr_assert_eq(nb_init_kaiming_normal(&rng, w, nb_init_gain(NB_NL_RELU, 0), NB_FAN_IN), NB_OK);
    stats(w, &mean, &sd, &mx);
    assert_close(sd, sqrt(2.0 / 2304.0), 0, 0.01);
    assert_close(mean, 0.0, 3 * sd / sqrt((double)w->numel), 0);
    /* fan_out mode: 128 * 9 */
    cr_assert_eq(nb_init_kaiming_normal(&rng, w, sqrt(2.0), NB_FAN_OUT), NB_OK);
    stats(w, &mean, &sd, &mx);
    assert_close(sd, sqrt(2.0 / 1152.0), 0, 0.01);
    nb_tensor_free(w);
    /* Xavier uniform (300, 200): bound sqrt(6/500), std bound/sqrt(3) */
    w = nb_tensor_new(NB_F64, NB_SHAPE(300, 200));
    cr_assert_eq(nb_init_xavier_uniform(&rng, w, 1.0), NB_OK);
    stats(w, &mean, &sd, &mx);
    double bound = sqrt(6.0 / 500.0);
    cr_assert(mx <= bound && mx > 0.999 * bound, "max |w| %g, bound %g", mx, bound);
    assert_close(sd, bound / sqrt(3.0), 0, 0.01);
    cr_assert_eq(nb_init_xavier_normal(&rng, w, nb_init_gain(NB_NL_TANH, 0)), NB_OK);
    stats(w, &mean, &sd, &mx);
    assert_close(sd, 5.0 / 3.0 * sqrt(2.0 / 500.0), 0, 0.01);
    /* kaiming uniform with a = sqrt(5): PyTorch's Linear, bound 1/sqrt(fan_in) */
    cr_assert_eq(nb_init_kaiming_uniform(&rng, w, nb_init_gain(NB_NL_LEAKY_RELU, sqrt(5.0)), NB_FAN_IN), NB_OK);
    stats(w, &mean, &sd, &mx);
    cr_assert(mx <= 1 / sqrt(200.0) && mx > 0.999 / sqrt(200.0), "max |w| %g", mx);
    nb_tensor_free(w);
    int64_t fi, fo;
    nb_tensor *v = nb_tensor_new(NB_F32, NB_SHAPE(5));
    cr_assert_eq(nb_init_fans(v, &fi, &fo), NB_ERR_SHAPE);
    cr_assert_not_null(strstr(nb_last_error(), "(5)"));
    nb_tensor_free(v);
}

Test(layers, linear_and_conv_layers) {
    nb_rng rng = nb_rng_new(1);
    nb_linear_layer fc;
    cr_assert_eq(nb_linear_layer_init(&fc, ps, "fc1", 400, 30, true, &rng), NB_OK, "%s", nb_last_error());
    cr_assert_eq(nb_params_find(ps, "fc1.weight"), fc.weight);
    cr_assert_eq(nb_params_find(ps, "fc1.bias"), fc.bias);
    cr_assert(fc.weight->shape[0] == 30 && fc.weight->shape[1] == 400 && fc.bias->shape[0] == 30);
    double mean, sd, mx;
    stats(fc.weight, &mean, &sd, &mx);
    cr_assert(mx <= 0.05 && mx > 0.049, "linear weight max %g, bound 1/sqrt(400)", mx);
    stats(fc.bias, &mean, &sd, &mx);
    cr_assert(mx <= 0.05 && mx > 0.0, "bias max %g", mx);
    /* a second linear with the same name fails */
    nb_linear_layer dup;
    cr_assert_eq(nb_linear_layer_init(&dup, ps, "fc1", 3, 3, true, &rng), NB_ERR_VALUE);
    /* the same seed gives the same model */
    nb_params *ps2 = nb_params_new();
    nb_rng rng2 = nb_rng_new(1);
    nb_linear_layer fc2;
    nb_linear_layer_init(&fc2, ps2, "fc1", 400, 30, true, &rng2);
    cr_assert_eq(memcmp(fc.weight->data, fc2.weight->data, 400 * 30 * sizeof(float)), 0);
    nb_params_free(ps2);

    nb_tensor *x = nb_randn(ctx, NB_F32, NB_SHAPE(5, 400));
    nb_tensor *y = nb_linear_layer_forward(ctx, &fc, x), *y2 = nb_linear(ctx, x, fc.weight, fc.bias);
    for (int64_t i = 0; i < y->numel; i++) assert_close(nb_get(y, i), nb_get(y2, i), 0, 0);

    nb_conv2d_layer conv;
    cr_assert_eq(nb_conv2d_layer_init(&conv, ps, "conv1", 4, 6, 3, 1, 1, 1, 2, true, &rng), NB_OK, "%s", nb_last_error());
    cr_assert(conv.weight->shape[0] == 6 && conv.weight->shape[1] == 2 && conv.weight->shape[2] == 3);
    stats(conv.weight, &mean, &sd, &mx);
    cr_assert(mx <= 1 / sqrt(18.0), "conv weight max %g, bound 1/sqrt(2*3*3)", mx);
    nb_tensor *img = nb_randn(ctx, NB_F32, NB_SHAPE(2, 4, 5, 5));
    y = nb_conv2d_layer_forward(ctx, &conv, img);
    cr_assert(y && y->shape[1] == 6 && y->shape[2] == 5, "%s", nb_ctx_error(ctx));
    cr_assert_eq(nb_conv2d_layer_init(&conv, ps, "conv2", 4, 6, 3, 1, 1, 1, 4, true, &rng), NB_ERR_VALUE);
    cr_assert_not_null(strstr(nb_last_error(), "groups 4"));

    nb_conv_transpose2d_layer up;
    cr_assert_eq(nb_conv_transpose2d_layer_init(&up, ps, "up1", 6, 3, 4, 2, 1, 0, 1, true, &rng), NB_OK, "%s", nb_last_error());
    cr_assert(up.weight->shape[0] == 6 && up.weight->shape[1] == 3);
    stats(up.weight, &mean, &sd, &mx);
    cr_assert(mx <= 1 / sqrt(48.0), "conv_transpose weight max %g, bound 1/sqrt(3*4*4)", mx);
    y = nb_conv_transpose2d_layer_forward(ctx, &up, y); /* (2,6,5,5) -> (2,3,10,10) */
    cr_assert(y && y->shape[1] == 3 && y->shape[2] == 10 && y->shape[3] == 10, "%s", nb_ctx_error(ctx));
}

Test(layers, batch_norm_layer_running_stats_and_modes) {
    nb_batch_norm_layer bn;
    cr_assert_eq(nb_batch_norm_layer_init(&bn, ps, "bn1", 3), NB_OK);
    cr_assert_eq(nb_params_find(ps, "bn1.weight"), bn.weight);
    cr_assert_eq(nb_get(bn.weight, 2), 1.0);
    cr_assert_eq(nb_get(bn.running_var, 0), 1.0);
    cr_assert_eq(nb_get(bn.running_mean, 0), 0.0);
    /* two training steps in f32: running statistics equal PyTorch's */
    nb_tensor *x1 = nb_cast(ctx, nb_affine(ctx, ref_tensor(ctx, NB_SHAPE(4, 3, 5, 5), 1.4, false), 2.0, 0.5), NB_F32);
    nb_tensor *x2 = nb_cast(ctx, nb_affine(ctx, ref_tensor(ctx, NB_SHAPE(4, 3, 5, 5), 1.5, false), 3.0, -1.0), NB_F32);
    cr_assert_not_null(nb_batch_norm_layer_forward(ctx, &bn, x1));
    cr_assert_not_null(nb_batch_norm_layer_forward(ctx, &bn, x2));
    assert_values(bn.running_mean, REF_BN_RMEAN, 3, 1e-5);
    assert_values(bn.running_var, REF_BN_RVAR, 3, 1e-5);
    /* eval: y = (x - running_mean) / sqrt(running_var + eps) with weight 1, bias 0 */
    nb_ctx_set_train(ctx, false);
    nb_tensor *y = nb_batch_norm_layer_forward(ctx, &bn, x1);
    int64_t i = 1 * 75 + 2 * 25 + 7; /* sample 1, channel 2 */
    assert_close(nb_get(y, i), (nb_get(x1, i) - REF_BN_RMEAN[2]) / sqrt(REF_BN_RVAR[2] + 1e-5), 1e-5, 1e-5);
    nb_ctx_set_train(ctx, true);
    nb_batch_norm_layer_free(&bn);

    nb_layer_norm_layer ln;
    cr_assert_eq(nb_layer_norm_layer_init(&ln, ps, "ln", 8), NB_OK);
    y = nb_layer_norm_layer_forward(ctx, &ln, nb_randn(ctx, NB_F32, NB_SHAPE(4, 8)));
    nb_tensor *m = nb_mean(ctx, y, 1, (int[]){1}, false), *v = nb_var(ctx, y, 1, (int[]){1}, 0, false);
    for (int64_t r = 0; r < 4; r++) {
        assert_close(nb_get(m, r), 0.0, 1e-6, 0);
        assert_close(nb_get(v, r), 1.0, 1e-3, 0);
    }
}

static nb_tensor *f_embed(nb_ctx *c, nb_tensor *const *in, void *u) { return nb_embedding(c, in[0], (nb_tensor *)u); }

Test(layers, embedding) {
    int64_t ids[6] = {1, 4, 1, 0, 2, 1};
    nb_tensor *idx = nb_from(ctx, NB_I64, NB_SHAPE(2, 3), ids);
    nb_tensor *w = rand_leaf(ctx, NB_SHAPE(5, 3));
    nb_tensor *e = nb_embedding(ctx, w, idx);
    cr_assert(e && e->ndim == 3 && e->shape[0] == 2 && e->shape[1] == 3 && e->shape[2] == 3, "%s", nb_ctx_error(ctx));
    assert_close(nb_get(e, 1 * 9 + 0 * 3 + 2), nb_get(w, 0 * 3 + 2), 0, 0); /* idx[1][0] = 0 */
    check_grads(ctx, f_embed, 1, &w, idx, true);
    /* d(sum)/dw counts how often each row is used: 1, 3, 1, 0, 1 */
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, e), NULL), NB_OK);
    const double counts[5] = {1, 3, 1, 0, 1};
    for (int r = 0; r < 5; r++)
        for (int k = 0; k < 3; k++) assert_close(nb_get(w->grad, r * 3 + k), counts[r], 0, 0);

    nb_rng rng = nb_rng_new(3);
    nb_embedding_layer emb;
    cr_assert_eq(nb_embedding_layer_init(&emb, ps, "emb", 1000, 16, &rng), NB_OK);
    double mean, sd, mx;
    stats(emb.weight, &mean, &sd, &mx);
    assert_close(sd, 1.0, 0, 0.03);
    ids[1] = 1000;
    nb_tensor *bad = nb_from(ctx, NB_I64, NB_SHAPE(6), ids);
    ASSERT_ERROR(ctx, nb_embedding_layer_forward(ctx, &emb, bad), NB_ERR_INDEX, "1000");
}

Test(layers, rnn_layers) {
    nb_rng rng = nb_rng_new(5);
    const char *names[4] = {"lstm.weight_ih", "lstm.weight_hh", "lstm.bias_ih", "lstm.bias_hh"};
    nb_rnn_layer l;
    cr_assert_eq(nb_rnn_layer_init(&l, ps, "lstm", NB_LSTM, 28, 64, true, &rng), NB_OK);
    nb_tensor *ws[4] = {l.w_ih, l.w_hh, l.b_ih, l.b_hh};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(nb_params_find(ps, names[i]), ws[i], "%s", names[i]);
        double mean, sd, mx;
        stats(ws[i], &mean, &sd, &mx);
        cr_assert(mx <= 0.125 && mx > 0.1, "%s max %g, bound 1/sqrt(64)", names[i], mx);
    }
    cr_assert(l.w_ih->shape[0] == 256 && l.w_ih->shape[1] == 28 && l.w_hh->shape[1] == 64);
    nb_tensor *hn, *cn;
    nb_tensor *y = nb_rnn_layer_forward(ctx, &l, nb_randn(ctx, NB_F32, NB_SHAPE(7, 3, 28)), NULL, NULL, &hn, &cn);
    cr_assert(y && y->shape[0] == 7 && y->shape[2] == 64 && hn && cn, "%s", nb_ctx_error(ctx));
    nb_rnn_layer g;
    cr_assert_eq(nb_rnn_layer_init(&g, ps, "gru", NB_GRU, 4, 8, false, &rng), NB_OK);
    cr_assert(g.w_ih->shape[0] == 24 && g.b_ih == NULL && nb_params_find(ps, "gru.bias_ih") == NULL);
}

/* ---- embedding(padding_idx) ------------------------------------------------------------------ */
#include "ref/layers_ref.h"

static nb_tensor *f_embed_pad(nb_ctx *c, nb_tensor *const *in, void *u) {
    return nb_embedding_padded(c, in[0], (nb_tensor *)u, 3);
}

Test(layers, embedding_padding_idx) {
    nb_tensor *w = ref_tensor(ctx, NB_SHAPE(5, 3), 1.3, true);
    const double iv[6] = {1, 4, 1, 0, 4, 2};
    nb_tensor *idx = nb_cast(ctx, nb_from(ctx, NB_F64, NB_SHAPE(2, 3), iv), NB_I64);
    /* padding_idx -1 is row 4: its rows come out, its gradient is zero (PyTorch 1.13) */
    nb_tensor *y = nb_embedding_padded(ctx, w, idx, -1);
    cr_assert(y && y->ndim == 3 && y->shape[2] == 3, "%s", nb_ctx_error(ctx));
    assert_ref(y, REF_EMBED_PAD_Y);
    nb_tensor *g = ref_tensor(ctx, y->ndim, y->shape, 1.4, false);
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, nb_mul(ctx, y, g)), NULL), NB_OK, "%s", nb_ctx_error(ctx));
    assert_ref(w->grad, REF_EMBED_PAD_GRAD);
    for (int j = 0; j < 3; j++) cr_assert_eq(nb_get(w->grad, 4 * 3 + j), 0.0);
    /* first and second order through the rows that are not padding (row 3 is not picked: finite
     * differences would see the padding row's values change, which its zero gradient ignores) */
    nb_tensor *wl = rand_leaf(ctx, NB_SHAPE(5, 3));
    check_grads(ctx, f_embed_pad, 1, &wl, idx, true);
    ASSERT_ERROR(ctx, nb_embedding_padded(ctx, w, idx, 5), NB_ERR_INDEX, "embedding", "padding_idx 5", "[-5, 5)");
    ASSERT_ERROR(ctx, nb_embedding_padded(ctx, w, idx, -6), NB_ERR_INDEX, "padding_idx -6");
    ASSERT_ERROR(ctx, nb_embedding_padded(ctx, w, nb_from(ctx, NB_F64, NB_SHAPE(2, 3), iv), 0), NB_ERR_DTYPE, "embedding");
    ASSERT_ERROR(ctx, nb_embedding_padded(ctx, NULL, idx, 0), NB_ERR_NULL, "embedding");
}

/* The initialisers fill f64 tensors too, with the f32 draws' values (so an f64 model is
 * initialised like its f32 twin). */
Test(layers, initialisers_fill_f64_like_f32) {
    nb_status (*uni[2])(nb_rng *, nb_tensor *, double) = {nb_init_xavier_uniform, nb_init_xavier_normal};
    for (int k = 0; k < 4; k++) {
        nb_tensor *t[2] = {nb_zeros(ctx, NB_F32, NB_SHAPE(5, 3, 2)), nb_zeros(ctx, NB_F64, NB_SHAPE(5, 3, 2))};
        for (int d = 0; d < 2; d++) {
            nb_rng rng = nb_rng_new(11);
            nb_status s = k < 2 ? uni[k](&rng, t[d], 1.3) : k == 2 ? nb_init_kaiming_uniform(&rng, t[d], 1.3, NB_FAN_IN)
                                                                   : nb_init_kaiming_normal(&rng, t[d], 1.3, NB_FAN_OUT);
            cr_assert_eq(s, NB_OK, "%s", nb_last_error());
        }
        double mx = 0;
        for (int64_t i = 0; i < 30; i++) {
            assert_close(nb_get(t[0], i), nb_get(t[1], i), 0, 1e-6, "(initialiser %d, element %lld)", k, (long long)i);
            mx = fmax(mx, fabs(nb_get(t[1], i)));
        }
        cr_assert_gt(mx, 0.0);
    }
}

/* Every layer's init on F64 parameters: f64 tensors (buffers too) holding the values of the same
 * layers on F32 parameters from the same generator, to float rounding. */
static void all_layers(nb_params *p, nb_batch_norm_layer *bn) {
    nb_rng rng = nb_rng_new(21);
    nb_linear_layer lin;
    nb_conv2d_layer conv;
    nb_conv_transpose2d_layer convt;
    nb_layer_norm_layer ln;
    nb_embedding_layer emb;
    nb_rnn_layer rnn;
    nb_multi_head_attention_layer mha;
    cr_assert_eq(nb_linear_layer_init(&lin, p, "lin", 4, 3, true, &rng), NB_OK, "%s", nb_last_error());
    cr_assert_eq(nb_conv2d_layer_init(&conv, p, "conv", 2, 3, 3, 1, 1, 1, 1, true, &rng), NB_OK);
    cr_assert_eq(nb_conv_transpose2d_layer_init(&convt, p, "convt", 2, 3, 3, 1, 0, 0, 1, true, &rng), NB_OK, "%s",
                 nb_last_error());
    cr_assert_eq(nb_batch_norm_layer_init(bn, p, "bn", 3), NB_OK);
    cr_assert_eq(nb_layer_norm_layer_init(&ln, p, "ln", 5), NB_OK);
    cr_assert_eq(nb_embedding_layer_init_padded(&emb, p, "emb", 6, 2, 1, &rng), NB_OK);
    cr_assert_eq(nb_rnn_layer_init(&rnn, p, "lstm", NB_LSTM, 3, 4, true, &rng), NB_OK);
    cr_assert_eq(nb_multi_head_attention_layer_init(&mha, p, "mha", 4, 2, 0.0, true, &rng), NB_OK);
}

Test(layers, every_layer_initialises_f64_parameters) {
    nb_params *p64 = nb_params_new_dtype(NB_F64);
    nb_batch_norm_layer bn32, bn64;
    all_layers(ps, &bn32);
    all_layers(p64, &bn64);
    cr_assert_eq(p64->n, ps->n);
    cr_assert_eq(bn64.running_var->dtype, NB_F64);
    cr_assert_eq(nb_get(bn64.running_var, 2), 1.0);
    for (int i = 0; i < ps->n; i++) {
        cr_assert_eq(p64->p[i]->dtype, NB_F64, "%s", p64->names[i]);
        cr_assert_str_eq(p64->names[i], ps->names[i]);
        double mx = 0;
        for (int64_t e = 0; e < ps->p[i]->numel; e++) {
            assert_close(nb_get(p64->p[i], e), nb_get(ps->p[i], e), 1e-7, 1e-6, "(%s[%lld])", ps->names[i], (long long)e);
            mx = fmax(mx, fabs(nb_get(p64->p[i], e)));
        }
        const bool zero_init = strstr(ps->names[i], "bias") && (strstr(ps->names[i], "mha") || strstr(ps->names[i], "bn") ||
                                                                strstr(ps->names[i], "ln"));
        cr_assert(zero_init || mx > 0, "%s was not initialised", ps->names[i]);
    }
    nb_batch_norm_layer_free(&bn32), nb_batch_norm_layer_free(&bn64);
    nb_params_free(p64);
}

/* nn.Embedding(6, 2, padding_idx=-2): row 4 starts at zero, gets no gradient and stays zero
 * through an optimizer step; the module takes the same option. */
Test(layers, embedding_layer_padding_idx) {
    nb_rng rng = nb_rng_new(4);
    nb_embedding_layer emb;
    cr_assert_eq(nb_embedding_layer_init_padded(&emb, ps, "emb", 6, 2, -2, &rng), NB_OK, "%s", nb_last_error());
    cr_assert(emb.has_padding_idx && emb.padding_idx == 4);
    for (int64_t r = 0; r < 6; r++)
        for (int j = 0; j < 2; j++) cr_assert((nb_get(emb.weight, 2 * r + j) == 0.0) == (r == 4), "row %lld", (long long)r);
    nb_tensor *idx = nb_from(ctx, NB_I64, NB_SHAPE(5), (int64_t[]){4, 0, 4, 5, 1});
    nb_tensor *y = nb_embedding_layer_forward(ctx, &emb, idx);
    cr_assert(y && y->shape[0] == 5 && y->shape[1] == 2, "%s", nb_ctx_error(ctx));
    cr_assert_eq(nb_get(y, 0), 0.0);
    nb_params_zero_grad(ps);
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, nb_mul(ctx, y, y)), NULL), NB_OK);
    nb_backward(ctx, nb_sum_all(ctx, nb_embedding_layer_forward(ctx, &emb, idx)), NULL); /* a nonzero gradient elsewhere */
    for (int j = 0; j < 2; j++) cr_assert_eq(nb_get(emb.weight->grad, 2 * 4 + j), 0.0);
    cr_assert_eq(nb_get(emb.weight->grad, 2 * 0), 2 * nb_get(emb.weight, 0) + 1);
    nb_optim *opt = nb_optim_new(&nb_adam, ps, NULL);
    cr_assert_eq(nb_optim_step(opt), NB_OK);
    for (int j = 0; j < 2; j++) cr_assert_eq(nb_get(emb.weight, 2 * 4 + j), 0.0);
    nb_optim_free(opt);
    /* errors name the layer and the range */
    nb_embedding_layer bad;
    cr_assert_eq(nb_embedding_layer_init_padded(&bad, ps, "bad", 6, 2, 6, &rng), NB_ERR_INDEX);
    cr_assert(strstr(nb_last_error(), "padding_idx 6") && strstr(nb_last_error(), "[-6, 6)"), "%s", nb_last_error());
    /* the module */
    nb_model *model = nb_model_new(3);
    nb_module *m = nb_embedding_module(model, (nb_embedding_opts){.num = 4, .dim = 3, .has_padding_idx = true, .padding_idx = 0});
    cr_assert_not_null(m, "%s", nb_last_error());
    for (int j = 0; j < 3; j++) cr_assert_eq(nb_get(m->params[0], j), 0.0);
    cr_assert_neq(nb_get(m->params[0], 3), 0.0);
    cr_assert_null(nb_embedding_module(model, (nb_embedding_opts){.num = 4, .dim = 3, .has_padding_idx = true, .padding_idx = -5}));
    nb_model_free(model);
}
