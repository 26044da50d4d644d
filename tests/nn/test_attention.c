/* Attention (src/nn/attention.c): values against closed forms, a loop reference and PyTorch
 * 1.13's nn.MultiheadAttention; causality through gradients; second derivatives; errors. */
#include "common.h"

#include <string.h>

TestSuite(attention, .init = ctx_setup, .fini = ctx_teardown);

static nb_tensor *f64(const double *v, int ndim, const int64_t *shape) { return nb_from(ctx, NB_F64, ndim, shape, v); }

Test(attention, sdpa_hand_computed_and_causal) {
    nb_tensor *q = f64((double[]){1, 0, 0, 1}, NB_SHAPE(2, 2)), *k = q;
    nb_tensor *v = f64((double[]){1, 2, 3, 4}, NB_SHAPE(2, 2));
    const double a = 1 / (1 + exp(-1 / sqrt(2.0))); /* softmax([1/sqrt2, 0])[0] */
    assert_values(nb_scaled_dot_product_attention(ctx, q, k, v, NULL, false, 0, 0),
                  (double[]){a + 3 * (1 - a), 2 * a + 4 * (1 - a), (1 - a) + 3 * a, 2 * (1 - a) + 4 * a}, 4, 1e-15);
    /* causal: row 0 sees key 0 only; scale 2 makes row 1's weights softmax([0, 2]) */
    const double b = 1 / (1 + exp(2.0));
    assert_values(nb_scaled_dot_product_attention(ctx, q, k, v, NULL, true, 0, 2.0),
                  (double[]){1, 2, b + 3 * (1 - b), 2 * b + 4 * (1 - b)}, 4, 1e-15);
    /* the same causal mask as an i64 keep-mask, and as an additive float mask */
    nb_tensor *keep = nb_from(ctx, NB_I64, NB_SHAPE(2, 2), (int64_t[]){1, 0, 1, 1});
    nb_tensor *add = f64((double[]){0, -INFINITY, 0, 0}, NB_SHAPE(2, 2));
    assert_values(nb_scaled_dot_product_attention(ctx, q, k, v, keep, false, 0, 2.0),
                  (double[]){1, 2, b + 3 * (1 - b), 2 * b + 4 * (1 - b)}, 4, 1e-15);
    assert_values(nb_scaled_dot_product_attention(ctx, q, k, v, add, false, 0, 2.0),
                  (double[]){1, 2, b + 3 * (1 - b), 2 * b + 4 * (1 - b)}, 4, 1e-15);
    /* a row with every key blocked is NaN, as PyTorch */
    nb_tensor *none = nb_from(ctx, NB_I64, NB_SHAPE(2, 2), (int64_t[]){0, 0, 1, 1});
    nb_tensor *o = nb_scaled_dot_product_attention(ctx, q, k, v, none, false, 0, 0);
    cr_assert(o && isnan(nb_get(o, 0)) && !isnan(nb_get(o, 2)));
}

/* softmax(q k^T s + mask) v with loops, for q (B, L, E), k (B, S, E), v (B, S, D), keep (L, S) */
static void loop_attention(const nb_tensor *q, const nb_tensor *k, const nb_tensor *v, const int64_t *keep, double s,
                           double *out) {
    const int64_t B = q->shape[0], L = q->shape[1], E = q->shape[2], S = k->shape[1], D = v->shape[2];
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < L; i++) {
            double w[16], mx = -INFINITY, z = 0;
            for (int64_t j = 0; j < S; j++) {
                w[j] = 0;
                for (int64_t e = 0; e < E; e++) w[j] += nb_get(q, (b * L + i) * E + e) * nb_get(k, (b * S + j) * E + e);
                w[j] = keep[i * S + j] ? w[j] * s : -INFINITY;
                if (w[j] > mx) mx = w[j];
            }
            for (int64_t j = 0; j < S; j++) z += w[j] = exp(w[j] - mx);
            for (int64_t d = 0; d < D; d++) {
                double acc = 0;
                for (int64_t j = 0; j < S; j++) acc += w[j] / z * nb_get(v, (b * S + j) * D + d);
                out[(b * L + i) * D + d] = acc;
            }
        }
}

Test(attention, sdpa_against_loops_with_a_keep_mask_and_f32) {
    nb_tensor *q = nb_randn(ctx, NB_F64, NB_SHAPE(2, 3, 4)), *k = nb_randn(ctx, NB_F64, NB_SHAPE(2, 5, 4)),
              *v = nb_randn(ctx, NB_F64, NB_SHAPE(2, 5, 3));
    int64_t keep[15] = {1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 1, 1, 1, 1, 0};
    double want[18];
    loop_attention(q, k, v, keep, 0.3, want);
    nb_tensor *m = nb_from(ctx, NB_I64, NB_SHAPE(3, 5), keep);
    assert_values(nb_scaled_dot_product_attention(ctx, q, k, v, m, false, 0, 0.3), want, 18, 1e-14);
    /* a 0/1 float mask from a comparison, cast to i64 */
    nb_tensor *mf = nb_gt(ctx, nb_cast(ctx, m, NB_F64), nb_scalar(ctx, NB_F64, 0.5));
    assert_values(nb_scaled_dot_product_attention(ctx, q, k, v, nb_cast(ctx, mf, NB_I64), false, 0, 0.3), want, 18, 1e-14);
    nb_tensor *o32 = nb_scaled_dot_product_attention(ctx, nb_cast(ctx, q, NB_F32), nb_cast(ctx, k, NB_F32),
                                                     nb_cast(ctx, v, NB_F32), m, false, 0, 0.3);
    cr_assert(o32 && o32->dtype == NB_F32);
    assert_values(o32, want, 18, 1e-5);
}

Test(attention, causal_output_row_ignores_later_positions) {
    nb_tensor *q = rand_leaf(ctx, NB_SHAPE(2, 4, 3)), *k = rand_leaf(ctx, NB_SHAPE(2, 4, 3)),
              *v = rand_leaf(ctx, NB_SHAPE(2, 4, 2));
    nb_tensor *o = nb_scaled_dot_product_attention(ctx, q, k, v, NULL, true, 0, 0);
    const int64_t i = 1; /* output row 1 depends on positions 0 and 1 only */
    nb_tensor *row = nb_sum(ctx, nb_slice(ctx, o, 1, i, i + 1, 1), 0, NULL, false);
    cr_assert_eq(nb_backward(ctx, row, NULL), NB_OK, "%s", nb_ctx_error(ctx));
    for (int64_t b = 0; b < 2; b++)
        for (int64_t j = 0; j < 4; j++) {
            double gk = 0, gv = 0, gq = 0;
            for (int64_t e = 0; e < 3; e++) gk += fabs(nb_get(k->grad, (b * 4 + j) * 3 + e)), gq += fabs(nb_get(q->grad, (b * 4 + j) * 3 + e));
            for (int64_t e = 0; e < 2; e++) gv += fabs(nb_get(v->grad, (b * 4 + j) * 2 + e));
            if (j > i) cr_assert(gk == 0 && gv == 0, "position %lld: k grad %g, v grad %g", (long long)j, gk, gv);
            else cr_assert(gk > 0 && gv > 0, "position %lld has no gradient", (long long)j);
            if (j != i) cr_assert(gq == 0);
        }
}

/* self-attention with 2 heads, causal or with an additive mask, for gradcheck */
static nb_tensor *mha_causal(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    return nb_multi_head_attention(c, in[0], in[0], in[0], in[1], in[2], in[3], in[4], 2, NULL, true, 0);
}
static nb_tensor *sdpa_masked(nb_ctx *c, nb_tensor *const *in, void *u) {
    nb_tensor *keep = u;
    return nb_scaled_dot_product_attention(c, in[0], in[1], in[2], keep, false, 0, 0);
}

Test(attention, gradcheck_and_gradgradcheck) {
    nb_tensor *in[5] = {rand_leaf(ctx, NB_SHAPE(2, 3, 4)), rand_leaf(ctx, NB_SHAPE(12, 4)), rand_leaf(ctx, NB_SHAPE(12)),
                        rand_leaf(ctx, NB_SHAPE(4, 4)), rand_leaf(ctx, NB_SHAPE(4))};
    nb_gradcheck_report r;
    cr_assert_eq(nb_gradcheck(ctx, mha_causal, 5, in, NULL, NULL, &r), NB_OK, "%s", r.message);
    cr_assert_eq(nb_gradgradcheck(ctx, mha_causal, 5, in, NULL, NULL, &r), NB_OK, "%s", r.message);
    nb_tensor *keep = nb_from(ctx, NB_I64, NB_SHAPE(2, 1, 3), (int64_t[]){1, 1, 0, 0, 1, 1}); /* key padding */
    nb_tensor *qkv[3] = {rand_leaf(ctx, NB_SHAPE(2, 2, 3)), rand_leaf(ctx, NB_SHAPE(2, 3, 3)), rand_leaf(ctx, NB_SHAPE(2, 3, 2))};
    cr_assert_eq(nb_gradcheck(ctx, sdpa_masked, 3, qkv, keep, NULL, &r), NB_OK, "%s", r.message);
    cr_assert_eq(nb_gradgradcheck(ctx, sdpa_masked, 3, qkv, keep, NULL, &r), NB_OK, "%s", r.message);
}

/* PyTorch 1.13: m = nn.MultiheadAttention(4, 2, batch_first=True) with the weights below, f64,
 * eval; m(x, x, x, need_weights=False)[0], with attn_mask=ones(3, 3).triu(1).bool() (True =
 * blocked) and with key_padding_mask=[[F, F, T], [F, T, T]] (made by tests/ref/mha_ref.py). */
static const double MHA_PLAIN[24] = {
    -0.13785677030825549, -0.096317724913935851, 0.10075218345041254, 0.29702254588672511, -0.12859575418176894,
    -0.097652210939656967, 0.090240709422590465, 0.28850743026849512, -0.12947154967720942, -0.1033699630739628,
    0.085758780523459782, 0.29002546558514963, 0.26327416140183685, 0.11179820829215023, -0.10536717971910539,
    -0.10423410316483367, 0.26221339078397038, 0.12111495431750609, -0.095576307430937479, -0.10437647540303052,
    0.13623872775151827, 0.037231466389097183, -0.048203269481052413, 0.023897128624711661};
static const double MHA_CAUSAL[24] = {
    -0.13100068731489189, -0.1671535199719964, 0.027520598638012428, 0.29923790424407165, -0.14328078018420448,
    -0.11923824008578425, 0.084698906380752975, 0.30490060518629447, -0.12947154967720942, -0.1033699630739628,
    0.085758780523459782, 0.29002546558514963, 0.32480009361183204, 0.19813349225521742, -0.085994072212802392,
    -0.17241613944470607, 0.30309761959109305, 0.14786922931794044, -0.11139088850554327, -0.14594954016963335,
    0.13623872775151827, 0.037231466389097183, -0.048203269481052413, 0.023897128624711661};
static const double MHA_KPM[24] = {
    -0.17601394058789058, -0.15216694974673739, 0.086576767903306512, 0.33958893370666721, -0.14328078018420448,
    -0.11923824008578425, 0.084698906380752975, 0.30490060518629447, -0.17395179286616835, -0.14643947466810309,
    0.08988145529917943, 0.33695806090483832, 0.32480009361183204, 0.19813349225521742, -0.085994072212802392,
    -0.17241613944470607, 0.32480009361183204, 0.19813349225521742, -0.085994072212802392, -0.17241613944470607,
    0.32480009361183204, 0.19813349225521742, -0.085994072212802392, -0.17241613944470607};

static nb_tensor *filled(int ndim, const int64_t *shape, double (*f)(int64_t)) {
    nb_tensor *t = nb_empty(ctx, NB_F64, ndim, shape);
    for (int64_t i = 0; i < t->numel; i++) nb_set(t, i, f(i));
    return t;
}
static double fx(int64_t i) { return sin(0.3 * (double)i + 0.1); }
static double fwin(int64_t i) { return 0.5 * cos(0.7 * (double)i); }
static double fbin(int64_t i) { return 0.1 * sin((double)i); }
static double fwout(int64_t i) { return 0.4 * sin(1.3 * (double)i + 0.2); }
static double fbout(int64_t i) { return 0.05 * (double)i; }

Test(attention, multi_head_attention_against_pytorch) {
    nb_tensor *x = filled(NB_SHAPE(2, 3, 4), fx), *win = filled(NB_SHAPE(12, 4), fwin), *bin = filled(NB_SHAPE(12), fbin),
              *wout = filled(NB_SHAPE(4, 4), fwout), *bout = filled(NB_SHAPE(4), fbout);
    assert_values(nb_multi_head_attention(ctx, x, x, x, win, bin, wout, bout, 2, NULL, false, 0), MHA_PLAIN, 24, 1e-13);
    assert_values(nb_multi_head_attention(ctx, x, x, x, win, bin, wout, bout, 2, NULL, true, 0), MHA_CAUSAL, 24, 1e-13);
    nb_tensor *kpm = nb_from(ctx, NB_I64, NB_SHAPE(2, 1, 1, 3), (int64_t[]){1, 1, 0, 1, 0, 0}); /* nonzero = attend */
    assert_values(nb_multi_head_attention(ctx, x, x, x, win, bin, wout, bout, 2, kpm, false, 0), MHA_KPM, 24, 1e-13);
    /* unbatched: the second sample alone */
    nb_tensor *x1 = nb_squeeze(ctx, nb_slice(ctx, x, 0, 1, 2, 1), 0);
    assert_values(nb_multi_head_attention(ctx, x1, x1, x1, win, bin, wout, bout, 2, NULL, false, 0), MHA_PLAIN + 12, 12,
                  1e-13);
    /* dropout is off in eval mode */
    nb_ctx_set_train(ctx, false);
    assert_values(nb_multi_head_attention(ctx, x, x, x, win, bin, wout, bout, 2, NULL, false, 0.5), MHA_PLAIN, 24, 1e-13);
}

/* need_weights=True (tests/ref/mha_ref.py): the weights averaged over the heads, per head with
 * the causal attn_mask, and unbatched (x[0]) with key_padding_mask [F, F, T]. */
static const double MHA_W_AVG[18] = {0.3899728658955694, 0.36790326882654723, 0.24212386527788332, 0.43311844591894599, 0.45298760707436714, 0.11389394700668685, 0.36860079222851461, 0.40116885692070292, 0.23023035085078258, 0.54254423294433562, 0.3404452664827165, 0.11701050057294794, 0.57764510250056034, 0.33857886990567165, 0.083776027593768024, 0.31395848501189466, 0.3348874866538088, 0.3511540283342966};
static const double MHA_W_CAUSAL_HEADS[36] = {1, 0, 0, 0.39951282547291317, 0.60048717452708678, 0, 0.34718103319217036, 0.43573216122363484, 0.21708680558419494, 1, 0, 0, 0.57409397642586246, 0.42590602357413748, 0, 0.39002055126485879, 0.36660555261777106, 0.24337389611737026, 1, 0, 0, 0.59292769891118069, 0.40707230108881942, 0, 0.37030163270542304, 0.35413313644921218, 0.27556523084536483, 1, 0, 0, 0.66952917931415767, 0.33047082068584233, 0, 0.25761533731836628, 0.31564183685840541, 0.42674282582322837};
static const double MHA_W_UNBATCHED_KPM[9] = {0.5127947958796808, 0.48720520412031931, 0, 0.48680340094938779, 0.5131965990506121, 0, 0.47946048361382509, 0.52053951638617491, 0};

Test(attention, multi_head_attention_need_weights_against_pytorch) {
    nb_tensor *x = filled(NB_SHAPE(2, 3, 4), fx), *win = filled(NB_SHAPE(12, 4), fwin), *bin = filled(NB_SHAPE(12), fbin),
              *wout = filled(NB_SHAPE(4, 4), fwout), *bout = filled(NB_SHAPE(4), fbout);
    nb_tensor *w = NULL;
    nb_tensor *o = nb_multi_head_attention_need_weights(ctx, x, x, x, win, bin, wout, bout, 2, NULL, false, 0, true, &w);
    assert_values(o, MHA_PLAIN, 24, 1e-13); /* the output is the need_weights=False one */
    cr_assert(w && w->ndim == 3 && w->shape[0] == 2 && w->shape[1] == 3 && w->shape[2] == 3);
    assert_values(w, MHA_W_AVG, 18, 1e-14);
    o = nb_multi_head_attention_need_weights(ctx, x, x, x, win, bin, wout, bout, 2, NULL, true, 0, false, &w);
    assert_values(o, MHA_CAUSAL, 24, 1e-13);
    cr_assert(w && w->ndim == 4 && w->shape[1] == 2);
    assert_values(w, MHA_W_CAUSAL_HEADS, 36, 1e-14);
    nb_tensor *x0 = nb_squeeze(ctx, nb_slice(ctx, x, 0, 0, 1, 1), 0);
    nb_tensor *kpm = nb_from(ctx, NB_I64, NB_SHAPE(1, 3), (int64_t[]){1, 1, 0}); /* nonzero = attend */
    o = nb_multi_head_attention_need_weights(ctx, x0, x0, x0, win, bin, wout, bout, 2, kpm, false, 0, true, &w);
    cr_assert(o && o->ndim == 2 && w && w->ndim == 2 && w->shape[0] == 3 && w->shape[1] == 3);
    assert_values(w, MHA_W_UNBATCHED_KPM, 9, 1e-14);
    /* the weights are differentiable: gradient of sum(w * c) through every projection */
    nb_tensor *xl = rand_leaf(ctx, NB_SHAPE(2, 3, 4));
    o = nb_multi_head_attention_need_weights(ctx, xl, xl, xl, win, bin, wout, bout, 2, NULL, false, 0, true, &w);
    cr_assert_not_null(w);
    cr_assert(w->requires_grad);
    /* errors: NULL out-pointer, and *attn_weights is cleared on failure */
    cr_assert_null(nb_multi_head_attention_need_weights(ctx, x, x, x, win, bin, wout, bout, 2, NULL, false, 0, true, NULL));
    nb_ctx_clear_error(ctx);
    w = x;
    cr_assert_null(nb_multi_head_attention_need_weights(ctx, x, x, x, win, bin, wout, bout, 3, NULL, false, 0, true, &w));
    cr_assert_null(w);
    nb_ctx_clear_error(ctx);
}

static nb_tensor *mha_weights_fn(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)u;
    nb_tensor *w = NULL;
    nb_multi_head_attention_need_weights(c, in[0], in[0], in[0], in[1], in[2], in[3], in[4], 2, NULL, true, 0, true, &w);
    return w;
}

Test(attention, multi_head_attention_weights_gradcheck) {
    nb_tensor *in[5] = {rand_leaf(ctx, NB_SHAPE(2, 3, 4)), rand_leaf(ctx, NB_SHAPE(12, 4)), rand_leaf(ctx, NB_SHAPE(12)),
                        rand_leaf(ctx, NB_SHAPE(4, 4)), rand_leaf(ctx, NB_SHAPE(4))};
    nb_gradcheck_report r;
    cr_assert_eq(nb_gradcheck(ctx, mha_weights_fn, 5, in, NULL, NULL, &r), NB_OK, "%s", r.message);
    cr_assert_eq(nb_gradgradcheck(ctx, mha_weights_fn, 5, in, NULL, NULL, &r), NB_OK, "%s", r.message);
}

Test(attention, layer_init_and_forward) {
    nb_params *ps = nb_params_new();
    nb_rng rng = nb_rng_new(7);
    nb_multi_head_attention_layer l;
    cr_assert_eq(nb_multi_head_attention_layer_init(&l, ps, "attn", 8, 2, 0.0, true, &rng), NB_OK, "%s", nb_last_error());
    cr_assert(nb_params_find(ps, "attn.in_proj_weight") == l.in_proj_weight && nb_params_find(ps, "attn.out_proj.bias"));
    cr_assert(l.in_proj_weight->shape[0] == 24 && l.in_proj_weight->shape[1] == 8);
    const double bound = sqrt(6.0 / (8 + 24)); /* xavier_uniform: fan_in 8, fan_out 24 */
    double mx = 0;
    for (int64_t i = 0; i < l.in_proj_weight->numel; i++) mx = fmax(mx, fabs(nb_get(l.in_proj_weight, i)));
    cr_assert(mx <= bound && mx > 0.8 * bound, "max |w| %g, bound %g", mx, bound);
    for (int64_t i = 0; i < 24; i++) cr_assert_eq(nb_get(l.in_proj_bias, i), 0.0);
    for (int64_t i = 0; i < 64; i++) cr_assert(fabs(nb_get(l.out_proj_weight, i)) <= 1 / sqrt(8.0));
    nb_tensor *x = nb_randn(ctx, NB_F32, NB_SHAPE(2, 3, 8));
    nb_tensor *a = nb_multi_head_attention_layer_forward(ctx, &l, x, x, x, NULL, true);
    nb_tensor *b = nb_multi_head_attention(ctx, x, x, x, l.in_proj_weight, l.in_proj_bias, l.out_proj_weight,
                                           l.out_proj_bias, 2, NULL, true, 0);
    cr_assert(a && b && a->shape[2] == 8);
    for (int64_t i = 0; i < a->numel; i++) cr_assert_eq(nb_get(a, i), nb_get(b, i));
    cr_assert_neq(nb_multi_head_attention_layer_init(&l, ps, "bad", 8, 3, 0.0, true, &rng), NB_OK);
    cr_assert(strstr(nb_last_error(), "num_heads"), "%s", nb_last_error());
    nb_params_free(ps);
}

static void expect_error(nb_tensor *t, const char *op, const char *what) {
    cr_assert_null(t);
    cr_assert(strstr(nb_ctx_error(ctx), op) && strstr(nb_ctx_error(ctx), what), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
}

Test(attention, errors_name_the_op_and_shapes) {
    nb_tensor *q = nb_randn(ctx, NB_F64, NB_SHAPE(2, 3, 4)), *k = nb_randn(ctx, NB_F64, NB_SHAPE(2, 5, 4)),
              *v = nb_randn(ctx, NB_F64, NB_SHAPE(2, 5, 3));
    const char *sdpa = "scaled_dot_product_attention";
    expect_error(nb_scaled_dot_product_attention(ctx, q, nb_randn(ctx, NB_F64, NB_SHAPE(2, 5, 3)), v, NULL, false, 0, 0),
                 sdpa, "(2,5,3)");
    expect_error(nb_scaled_dot_product_attention(ctx, q, k, nb_randn(ctx, NB_F64, NB_SHAPE(2, 4, 3)), NULL, false, 0, 0),
                 sdpa, "(2,4,3)");
    expect_error(nb_scaled_dot_product_attention(ctx, nb_randn(ctx, NB_F64, NB_SHAPE(4)), k, v, NULL, false, 0, 0), sdpa, "(4)");
    expect_error(nb_scaled_dot_product_attention(ctx, q, k, v, nb_ones(ctx, NB_I64, NB_SHAPE(3, 4)), false, 0, 0), sdpa,
                 "(3,4)");
    expect_error(nb_scaled_dot_product_attention(ctx, q, k, v, nb_ones(ctx, NB_I64, NB_SHAPE(3, 5)), true, 0, 0), sdpa,
                 "is_causal");
    expect_error(nb_scaled_dot_product_attention(ctx, q, k, v, nb_ones(ctx, NB_F32, NB_SHAPE(3, 5)), false, 0, 0), sdpa, "i64");
    expect_error(nb_scaled_dot_product_attention(ctx, q, k, v, NULL, false, 1.0, 0), sdpa, "dropout_p");
    expect_error(nb_scaled_dot_product_attention(ctx, q, k, v, NULL, false, 0, NAN), sdpa, "scale");
    nb_tensor *w = nb_randn(ctx, NB_F64, NB_SHAPE(12, 4)), *wo = nb_randn(ctx, NB_F64, NB_SHAPE(4, 4));
    const char *mha = "multi_head_attention";
    expect_error(nb_multi_head_attention(ctx, q, q, q, w, NULL, wo, NULL, 3, NULL, false, 0), mha, "num_heads 3");
    expect_error(nb_multi_head_attention(ctx, q, q, q, nb_randn(ctx, NB_F64, NB_SHAPE(8, 4)), NULL, wo, NULL, 2, NULL, false, 0),
                 mha, "(8,4)");
    expect_error(nb_multi_head_attention(ctx, q, k, v, w, NULL, wo, NULL, 2, NULL, false, 0), mha, "(2,5,3)");
    expect_error(nb_multi_head_attention(ctx, q, q, q, w, nb_randn(ctx, NB_F64, NB_SHAPE(4)), wo, NULL, 2, NULL, false, 0),
                 mha, "in_proj_weight");
}

/* An embedding of size 0: the default scale 1/sqrt(0) is inf and the scores 0 * inf are NaN,
 * as torch's reference formula gives (it crashed: a refused scale left a NULL the mask step
 * used). */
Test(attention, an_empty_embedding_gives_nan_not_a_crash) {
    nb_ctx *c = nb_ctx_new();
    nb_tensor *q = nb_zeros(c, NB_F64, NB_SHAPE(2, 2, 0)), *k = nb_zeros(c, NB_F64, NB_SHAPE(2, 3, 0));
    nb_tensor *v = nb_ones(c, NB_F64, NB_SHAPE(2, 3, 4));
    for (int causal = 0; causal < 2; causal++) {
        nb_tensor *o = nb_scaled_dot_product_attention(c, q, k, v, NULL, causal, 0.0, 0.0);
        cr_assert_not_null(o, "%s", nb_ctx_error(c));
        cr_assert(o->ndim == 3 && o->shape[0] == 2 && o->shape[1] == 2 && o->shape[2] == 4);
        for (int64_t i = 0; i < o->numel; i++) cr_assert(isnan(nb_get(o, i)), "element %lld = %g", (long long)i, nb_get(o, i));
    }
    nb_ctx_free(c);
}
