/* F64 parameters (src/graph/params.c) and optimizers (src/optim): trajectories against
 * torch.optim on float64 to 1e-14, Adam against its formula written out here, a whole f64 model
 * gradchecked end to end, f64 checkpoints, and the dtype errors. */
#include "common.h"
#include "tmpdir.h"

#include <string.h>

static void f64_setup(void) {
    ctx_setup();
    tmpdir_setup();
}
static void f64_teardown(void) {
    tmpdir_teardown();
    ctx_teardown();
}
TestSuite(optim_f64, .init = f64_setup, .fini = f64_teardown);

/* tests/ref/optim_ref.py: W0 fed G[0], G[1], G[2] (one step each), torch.float64 */
static const double W0[3] = {0.5, -1.0, 2.0};
static const double G[3][3] = {{0.1, -0.2, 0.3}, {-0.05, 0.4, 0.25}, {0.3, 0.01, -0.2}};
static const double REF64_SGD[9] = {0.48999999999999999, -0.97999999999999998, 1.97, 0.495, -1.02, 1.9450000000000001, 0.46499999999999997, -1.0209999999999999, 1.9650000000000001};
static const double REF64_SGD_WD[9] = {0.48499999999999999, -0.96999999999999997, 1.95, 0.48514999999999997, -1.0003, 1.9055, 0.45029849999999999, -0.99129699999999998, 1.9064449999999999};
static const double REF64_MOMENTUM[9] = {0.48749999999999999, -0.97499999999999998, 1.96, 0.47855624999999996, -0.98411249999999995, 1.8926799999999999, 0.44135337187499996, -0.98878524374999999, 1.8415749399999999};
static const double REF64_NESTEROV[9] = {0.48099999999999998, -0.96199999999999997, 1.9430000000000001, 0.4824, -1.0218, 1.8712, 0.42215999999999998, -1.04152, 1.8670800000000001};
static const double REF64_ADAGRAD[9] = {0.46820006360655075, -0.94429139855722921, 1.9254644007611181, 0.46881291995544583, -0.9891564508132652, 1.8754032043229212, 0.41944373566056925, -0.97731095164701109, 1.8766950436336747};
static const double REF64_RMSPROP[9] = {0.40000009999990005, -0.90000004999997507, 1.9000000333333222, 0.44490138518404931, -0.98953232616706843, 1.8357918627068939, 0.35109460021698802, -0.99178134024650166, 1.8816648597308359};
static const double REF64_RMSPROP_CM[9] = {0.46666667407407242, -0.96666667037036991, 1.9666666688888887, 0.45077441965746429, -0.97306867827705701, 1.9259212014437745, 0.41076419228577549, -0.9694313667174328, 1.9059637633734712};
static const double REF64_ADAM[9] = {0.40000000999999902, -0.90000000499999977, 1.9000000033333333, 0.37336630940339088, -0.93661035654603686, 1.8008827194642782, 0.30631625651245925, -0.96633211402918451, 1.7618375616130308};
static const double REF64_ADAM_AMS[9] = {0.40000000666666619, -0.90000000333333319, 1.9000000020000001, 0.35010299715941723, -0.91267966430795655, 1.7987419623269976, 0.28331314047321832, -0.90903266255563997, 1.7361281579061694};
static const double REF64_ADAMW[9] = {0.39500000999999901, -0.89000000499999976, 1.8800000033333333, 0.36441630930339086, -0.91771035649603672, 1.762082719430945, 0.29372209331942534, -0.93825501041422399, 1.7054167343853881};
static const double REF64_ADADELTA[9] = {0.49776418043309673, -0.99776399413291161, 1.9977639543828445, 0.49776944927859174, -1.0001217279396812, 1.9955215320106854, 0.49493198985501924, -0.99919657231927872, 1.9955244887315882};

typedef struct {
    const char *name;
    const nb_optim_def *def;
    nb_hparams hp;
    const double *ref;
} traj_case;

static void run_traj(const traj_case *c) {
    nb_params *ps = nb_params_new_dtype(NB_F64);
    cr_assert_not_null(ps);
    nb_tensor *w = nb_params_add(ps, "w", NB_SHAPE(1, 3)); /* ndim 2: decayed, like torch's default group */
    cr_assert_eq(w->dtype, NB_F64);
    cr_assert_eq(w->grad->dtype, NB_F64);
    for (int i = 0; i < 3; i++) nb_set(w, i, W0[i]);
    nb_optim *opt = nb_optim_new(c->def, ps, &c->hp);
    cr_assert_not_null(opt, "%s: %s", c->name, nb_last_error());
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < 3; i++) ps->grad_flat_f64[ps->offset[0] + i] = G[s][i];
        cr_assert_eq(nb_optim_step(opt), NB_OK, "%s: %s", c->name, nb_last_error());
        for (int i = 0; i < 3; i++)
            cr_assert(fabs(nb_get(w, i) - c->ref[3 * s + i]) <= 1e-14 * (1 + fabs(c->ref[3 * s + i])),
                      "%s: step %d element %d = %.17g, torch %.17g", c->name, s + 1, i, nb_get(w, i), c->ref[3 * s + i]);
    }
    nb_optim_free(opt);
    nb_params_free(ps);
}

static nb_hparams with(const nb_optim_def *def, void (*edit)(nb_hparams *)) {
    nb_hparams hp = def->defaults;
    edit(&hp);
    return hp;
}
static void e_sgd(nb_hparams *h) { h->lr = 0.1; }
static void e_sgd_wd(nb_hparams *h) { h->lr = 0.1, h->weight_decay = 0.1; }
static void e_momentum(nb_hparams *h) { h->lr = 0.1, h->momentum = 0.9, h->dampening = 0.1, h->weight_decay = 0.05; }
static void e_nesterov(nb_hparams *h) { h->lr = 0.1; }
static void e_adagrad(nb_hparams *h) { h->lr = 0.1, h->lr_decay = 0.1, h->weight_decay = 0.1, h->initial_accumulator_value = 0.2; }
static void e_rmsprop(nb_hparams *h) { h->lr = 0.01; }
static void e_rmsprop_cm(nb_hparams *h) { h->lr = 0.01, h->alpha = 0.9, h->momentum = 0.5, h->centered = true, h->weight_decay = 0.1; }
static void e_adam(nb_hparams *h) { h->lr = 0.1; }
static void e_adam_ams(nb_hparams *h) { h->lr = 0.1, h->beta1 = 0.8, h->beta2 = 0.5, h->weight_decay = 0.1, h->amsgrad = true; }
static void e_adamw(nb_hparams *h) { h->lr = 0.1, h->weight_decay = 0.1; }
static void e_adadelta(nb_hparams *h) { h->lr = 1.0, h->rho = 0.8, h->weight_decay = 0.1; }

Test(optim_f64, trajectories_match_torch_float64) {
    const traj_case cases[] = {
        {"sgd", &nb_sgd, with(&nb_sgd, e_sgd), REF64_SGD},
        {"gd", &nb_gd, with(&nb_gd, e_sgd), REF64_SGD},
        {"sgd_wd", &nb_sgd, with(&nb_sgd, e_sgd_wd), REF64_SGD_WD},
        {"momentum", &nb_momentum, with(&nb_momentum, e_momentum), REF64_MOMENTUM},
        {"nesterov", &nb_nesterov, with(&nb_nesterov, e_nesterov), REF64_NESTEROV},
        {"adagrad", &nb_adagrad, with(&nb_adagrad, e_adagrad), REF64_ADAGRAD},
        {"rmsprop", &nb_rmsprop, with(&nb_rmsprop, e_rmsprop), REF64_RMSPROP},
        {"rmsprop_centered_momentum", &nb_rmsprop, with(&nb_rmsprop, e_rmsprop_cm), REF64_RMSPROP_CM},
        {"adam", &nb_adam, with(&nb_adam, e_adam), REF64_ADAM},
        {"adam_amsgrad_wd", &nb_adam, with(&nb_adam, e_adam_ams), REF64_ADAM_AMS},
        {"adamw", &nb_adamw, with(&nb_adamw, e_adamw), REF64_ADAMW},
        {"adadelta", &nb_adadelta, with(&nb_adadelta, e_adadelta), REF64_ADADELTA},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_traj(&cases[i]);
}

/* AdamW and Adam over several parameters (one bigger than a block, one not decayed), against the
 * algorithm of Loshchilov & Hutter / Kingma & Ba written out here in double. */
static void adam_by_formula(const nb_optim_def *def, bool decoupled) {
    nb_params *ps = nb_params_new_dtype(NB_F64);
    nb_tensor *a = nb_params_add(ps, "a", NB_SHAPE(3, NB_OPTIM_BLOCK / 2 + 7)); /* spans two blocks */
    nb_tensor *b = nb_params_add(ps, "b", NB_SHAPE(5));                        /* ndim 1: not decayed */
    cr_assert(a && b && ps->decay[0] && !ps->decay[1]);
    nb_rng rng = nb_rng_new(3);
    nb_rng_normal(&rng, a, 0, 1), nb_rng_normal(&rng, b, 0, 1);
    const int64_t n = ps->total;
    double *w = calloc((size_t)n, sizeof *w), *m = calloc((size_t)n, sizeof *m), *v = calloc((size_t)n, sizeof *v);
    memcpy(w, ps->flat_f64, (size_t)n * sizeof *w);
    nb_hparams hp = def->defaults;
    hp.lr = 0.05, hp.weight_decay = 0.1, hp.beta1 = 0.8, hp.beta2 = 0.9;
    nb_optim *opt = nb_optim_new(def, ps, &hp);
    cr_assert_not_null(opt, "%s", nb_last_error());
    for (int t = 1; t <= 4; t++) {
        nb_tensor *ga = nb_tensor_new(NB_F64, NB_SHAPE(n));
        nb_rng_normal(&rng, ga, 0, 1);
        for (int64_t i = 0; i < n; i++) ps->grad_flat_f64[i] = nb_get(ga, i);
        nb_tensor_free(ga);
        cr_assert_eq(nb_optim_step(opt), NB_OK, "%s", nb_last_error());
        for (int k = 0; k < ps->n; k++)
            for (int64_t e = 0; e < ps->p[k]->numel; e++) {
                const int64_t i = ps->offset[k] + e;
                const double wd = ps->decay[k] ? hp.weight_decay : 0.0;
                double g = ps->grad_flat_f64[i];
                if (decoupled) w[i] *= 1 - hp.lr * wd;
                else g += wd * w[i];
                m[i] = hp.beta1 * m[i] + (1 - hp.beta1) * g;
                v[i] = hp.beta2 * v[i] + (1 - hp.beta2) * g * g;
                const double mhat = m[i] / (1 - pow(hp.beta1, t)), vhat = v[i] / (1 - pow(hp.beta2, t));
                w[i] -= hp.lr * mhat / (sqrt(vhat) + hp.eps);
                cr_assert(fabs(ps->flat_f64[i] - w[i]) <= 1e-14 * (1 + fabs(w[i])), "%s step %d [%lld]: %.17g vs %.17g",
                          def->name, t, (long long)i, ps->flat_f64[i], w[i]);
            }
    }
    /* state is f64 and round-trips through a buffer of doubles */
    cr_assert_eq(nb_optim_state_numel(opt), 2 * n);
    double *st = malloc((size_t)(2 * n) * sizeof *st);
    nb_optim_state_save(opt, st);
    cr_assert(memcmp(st, opt->state_f64[0], (size_t)n * sizeof(double)) == 0);
    free(st);
    free(w), free(m), free(v);
    nb_optim_free(opt);
    nb_params_free(ps);
}

Test(optim_f64, adam_and_adamw_match_the_formula) {
    adam_by_formula(&nb_adam, false);
    adam_by_formula(&nb_adamw, true);
}

/* A user optimizer (sign descent) with and without an f64 kernel. */
static void sign_f32(float *w, const float *g, float *const *s, int64_t n, const nb_hparams *hp, int64_t step) {
    (void)s, (void)step;
    for (int64_t i = 0; i < n; i++) w[i] -= (float)hp->lr * (float)((g[i] > 0) - (g[i] < 0));
}
static void sign_f64(double *w, const double *g, double *const *s, int64_t n, const nb_hparams *hp, int64_t step) {
    (void)s, (void)step;
    for (int64_t i = 0; i < n; i++) w[i] -= hp->lr * ((g[i] > 0) - (g[i] < 0));
}
static const nb_optim_def sign_only_f32 = {.name = "signsgd", .defaults = {.lr = 0.25}, .update = sign_f32};
static const nb_optim_def sign_both = {.name = "signsgd", .defaults = {.lr = 0.25}, .update = sign_f32,
                                       .update_f64 = sign_f64};

Test(optim_f64, user_optimizer_without_f64_kernel_is_refused) {
    nb_params *ps = nb_params_new_dtype(NB_F64);
    nb_tensor *w = nb_params_add(ps, "w", NB_SHAPE(2));
    cr_assert_null(nb_optim_new(&sign_only_f32, ps, NULL));
    cr_assert_eq(nb_last_status(), NB_ERR_DTYPE);
    cr_assert(strstr(nb_last_error(), "signsgd") && strstr(nb_last_error(), "update_f64"), "%s", nb_last_error());
    nb_optim *opt = nb_optim_new(&sign_both, ps, NULL);
    cr_assert_not_null(opt, "%s", nb_last_error());
    ps->grad_flat_f64[0] = 3.0, ps->grad_flat_f64[1] = -1e-300;
    cr_assert_eq(nb_optim_step(opt), NB_OK);
    cr_assert_eq(nb_get(w, 0), -0.25);
    cr_assert_eq(nb_get(w, 1), 0.25);
    /* the same definition on f32 parameters still runs its f32 kernel */
    nb_params *p32 = nb_params_new();
    nb_params_add(p32, "w", NB_SHAPE(1));
    nb_optim *o32 = nb_optim_new(&sign_only_f32, p32, NULL);
    cr_assert_not_null(o32);
    p32->grad_flat[0] = 1;
    cr_assert_eq(nb_optim_step(o32), NB_OK);
    cr_assert_eq(p32->flat[0], -0.25f);
    nb_optim_free(o32), nb_params_free(p32);
    nb_optim_free(opt), nb_params_free(ps);
}

Test(optim_f64, one_dtype_per_params) {
    cr_assert_null(nb_params_new_dtype(NB_I64));
    cr_assert_eq(nb_last_status(), NB_ERR_DTYPE);
    nb_params *ps = nb_params_new_dtype(NB_F64);
    cr_assert_eq(nb_params_elem_size(ps), sizeof(double));
    cr_assert_not_null(nb_params_add_dtype(ps, "a", NB_F64, NB_SHAPE(2, 2)));
    cr_assert_null(nb_params_add_dtype(ps, "b", NB_F32, NB_SHAPE(2)));
    cr_assert_eq(nb_last_status(), NB_ERR_DTYPE);
    cr_assert(strstr(nb_last_error(), "params_add") && strstr(nb_last_error(), "'b'") && strstr(nb_last_error(), "f64"),
              "%s", nb_last_error());
    cr_assert_eq(ps->n, 1);
    /* slices stay 64-byte aligned in an f64 buffer too */
    nb_tensor *c = nb_params_add(ps, "c", NB_SHAPE(3));
    cr_assert_eq((uintptr_t)c->data % 64, 0);
    cr_assert_eq((uintptr_t)c->grad->data % 64, 0);
    nb_fill(c, 1.0 / 3.0);
    double snap[16];
    cr_assert(ps->total <= 16);
    nb_params_save_to(ps, snap);
    nb_fill(c, 0.0);
    nb_params_load_from(ps, snap);
    cr_assert_eq(nb_get(c, 2), 1.0 / 3.0); /* exactly: not through a float */
    /* an f64 parameter in an f32 op: the op names itself and both dtypes */
    nb_tensor *x = nb_ones(ctx, NB_F32, NB_SHAPE(2, 2));
    cr_assert_null(nb_matmul(ctx, x, nb_params_find(ps, "a")));
    cr_assert(strstr(nb_ctx_error(ctx), "matmul"), "%s", nb_ctx_error(ctx));
    nb_params_free(ps);
}

Test(optim_f64, clipping_and_constraints_in_f64) {
    nb_params *ps = nb_params_new_dtype(NB_F64);
    nb_tensor *w = nb_params_add(ps, "w", NB_SHAPE(2, 2));
    for (int i = 0; i < 4; i++) nb_set(w->grad, i, (double[]){3, -4, 0, 12}[i]);
    const double norm = nb_clip_grad_norm(ps, 6.5);
    cr_assert_eq(norm, 13.0);
    assert_values(w->grad, (double[]){3 * 6.5 / (13 + 1e-6), -4 * 6.5 / (13 + 1e-6), 0, 12 * 6.5 / (13 + 1e-6)}, 4, 1e-15);
    cr_assert_eq(nb_clip_grad_value(ps, 1.0), NB_OK);
    assert_values(w->grad, (double[]){1, -1, 0, 1}, 4, 0);
    for (int i = 0; i < 4; i++) nb_set(w, i, (double[]){0.3, -0.1, 3, 4}[i]);
    cr_assert_eq(nb_prox_l1(ps, NULL, 0.2), NB_OK);
    assert_values(w, (double[]){0.3 - 0.2, 0, 2.8, 3.8}, 4, 1e-16);
    cr_assert_eq(nb_max_norm(ps, NULL, 1.0), NB_OK); /* rows (0.1, 0) and (2.8, 3.8) */
    const double r = sqrt(2.8 * 2.8 + 3.8 * 3.8);
    assert_values(w, (double[]){0.1, 0, 2.8 / r, 3.8 / r}, 4, 1e-15);
    nb_params_free(ps);
}

/* ---- a whole f64 model ---------------------------------------------------------------------- */
typedef struct {
    nb_module *net;
    nb_tensor *x, *y;
} model_fn_data;

static nb_tensor *model_loss(nb_ctx *c, nb_tensor *const *in, void *u) {
    (void)in; /* the inputs are the model's own parameters, changed in place by gradcheck */
    const model_fn_data *d = u;
    return nb_cross_entropy(c, nb_module_forward(c, d->net, d->x), d->y, NB_REDUCE_MEAN);
}

static nb_module *small_cnn(nb_model *model) {
    return nb_sequential(model, "net", NB_MODULES(
        nb_conv2d_module(model, (nb_conv2d_opts){.in = 1, .out = 2, .kernel = 3, .padding = 1}),
        nb_batch_norm_module(model, (nb_batch_norm_opts){.channels = 2}),
        nb_tanh_module(model, NULL),
        nb_flatten_module(model, NULL),
        nb_linear_module(model, (nb_linear_opts){.in = 2 * 4 * 4, .out = 5}),
        nb_layer_norm_module(model, (nb_layer_norm_opts){.features = 5}),
        nb_tanh_module(model, NULL),
        nb_linear_module(model, (nb_linear_opts){.in = 5, .out = 3})));
}

Test(optim_f64, whole_f64_model_gradchecked_and_trained) {
    nb_model *model = nb_model_new_dtype(11, NB_F64);
    cr_assert_not_null(model);
    nb_module *net = small_cnn(model);
    cr_assert_not_null(net, "%s", nb_last_error());
    nb_params *ps = model->ps;
    for (int i = 0; i < ps->n; i++) cr_assert_eq(ps->p[i]->dtype, NB_F64, "%s", ps->names[i]);
    /* initialisers drew real values (not zero, within PyTorch's bounds) */
    nb_tensor *w0 = nb_params_find(ps, "net.0.weight") ? nb_params_find(ps, "net.0.weight") : ps->p[0];
    double mx = 0;
    for (int64_t i = 0; i < w0->numel; i++) mx = fmax(mx, fabs(nb_get(w0, i)));
    cr_assert(mx > 0 && mx <= 1.0 / 3.0, "conv weight max %g (bound 1/sqrt(9))", mx);

    model_fn_data d = {.net = net, .x = nb_randn(ctx, NB_F64, NB_SHAPE(4, 1, 4, 4)),
                       .y = nb_from(ctx, NB_I64, NB_SHAPE(4), (int64_t[]){0, 2, 1, 2})};
    nb_gradcheck_report r;
    nb_gradcheck_opts o = NB_GRADCHECK_DEFAULTS;
    o.n_proj = 0; /* the scalar loss: its full gradient */
    cr_assert_eq(nb_gradcheck(ctx, model_loss, ps->n, ps->p, &d, &o, &r), NB_OK, "%s", r.message);

    /* nb_backward accumulates f64 gradients into grad_flat_f64, and Adam steps in f64 */
    nb_hparams hp = nb_adam.defaults;
    hp.lr = 0.02;
    nb_optim *opt = nb_optim_new(&nb_adam, ps, &hp);
    cr_assert_not_null(opt, "%s", nb_last_error());
    double first = 0, last = 0;
    for (int s = 0; s < 30; s++) {
        nb_mark m = nb_ctx_mark(ctx);
        nb_params_zero_grad(ps);
        nb_tensor *loss = model_loss(ctx, NULL, &d);
        cr_assert_not_null(loss, "%s", nb_ctx_error(ctx));
        cr_assert_eq(loss->dtype, NB_F64);
        if (s == 0) first = nb_item(loss);
        last = nb_item(loss);
        cr_assert_eq(nb_backward(ctx, loss, NULL), NB_OK, "%s", nb_ctx_error(ctx));
        cr_assert_eq(nb_optim_step(opt), NB_OK, "%s", nb_last_error());
        nb_ctx_release(ctx, m);
    }
    cr_assert(last < 0.5 * first, "loss %g -> %g", first, last);
    /* an f32 input into the f64 model is an error naming the layer */
    cr_assert_null(nb_module_forward(ctx, net, nb_randn(ctx, NB_F32, NB_SHAPE(4, 1, 4, 4))));
    cr_assert(strstr(nb_ctx_error(ctx), "f32") || strstr(nb_ctx_error(ctx), "dtype"), "%s", nb_ctx_error(ctx));
    nb_ctx_clear_error(ctx);
    nb_optim_free(opt);
    nb_model_free(model);
}

Test(optim_f64, f64_checkpoint_round_trip) {
    nb_model *model = nb_model_new_dtype(5, NB_F64);
    nb_module *net = small_cnn(model);
    cr_assert_not_null(net);
    nb_params *ps = model->ps;
    nb_optim *opt = nb_optim_new(&nb_adamw, ps, NULL);
    nb_early_stop es;
    cr_assert_eq(nb_early_stop_init(&es, ps, NB_MODE_MIN, 3, 0.0, true), NB_OK);
    model_fn_data d = {.net = net, .x = nb_randn(ctx, NB_F64, NB_SHAPE(4, 1, 4, 4)),
                       .y = nb_from(ctx, NB_I64, NB_SHAPE(4), (int64_t[]){0, 2, 1, 2})};
    for (int s = 0; s < 3; s++) {
        nb_mark m = nb_ctx_mark(ctx);
        nb_params_zero_grad(ps);
        nb_tensor *loss = model_loss(ctx, NULL, &d);
        nb_early_stop_update(&es, nb_item(loss));
        nb_backward(ctx, loss, NULL);
        nb_optim_step(opt);
        nb_ctx_release(ctx, m);
    }
    /* parameters only, as safetensors F64 */
    cr_assert_eq(nb_safetensors_save_params(ps, tmp("p.safetensors"), NULL), NB_OK, "%s", nb_last_error());
    nb_tensor_list *l = nb_safetensors_load(tmp("p.safetensors"));
    cr_assert_not_null(l, "%s", nb_last_error());
    for (int i = 0; i < l->n; i++) cr_assert_eq(l->tensors[i]->dtype, NB_F64, "%s", l->names[i]);
    nb_tensor_list_free(l);
    /* full checkpoint */
    nb_train_state st = {.epoch = 3, .rng = *nb_ctx_rng(ctx), .n_values = 1, .values = {0.25}};
    cr_assert_eq(nb_checkpoint_save(tmp("c.ckpt"), ps, opt, &es, &st), NB_OK, "%s", nb_last_error());
    l = nb_safetensors_load(tmp("c.ckpt"));
    cr_assert_not_null(l);
    cr_assert_eq(nb_tensor_list_find(l, "optim/state")->dtype, NB_F64);
    cr_assert_eq(nb_tensor_list_find(l, "early_stop/best")->dtype, NB_F64);
    nb_tensor_list_free(l);

    nb_model *m2 = nb_model_new_dtype(99, NB_F64);
    small_cnn(m2);
    nb_optim *opt2 = nb_optim_new(&nb_adamw, m2->ps, NULL);
    nb_early_stop es2;
    nb_early_stop_init(&es2, m2->ps, NB_MODE_MIN, 3, 0.0, true);
    nb_train_state got;
    cr_assert_eq(nb_safetensors_load_params(m2->ps, tmp("p.safetensors")), NB_OK, "%s", nb_last_error());
    cr_assert(memcmp(m2->ps->flat_f64, ps->flat_f64, (size_t)ps->total * sizeof(double)) == 0);
    nb_params_zero_grad(m2->ps);
    cr_assert_eq(nb_checkpoint_load(tmp("c.ckpt"), m2->ps, opt2, &es2, &got), NB_OK, "%s", nb_last_error());
    cr_assert(memcmp(m2->ps->flat_f64, ps->flat_f64, (size_t)ps->total * sizeof(double)) == 0);
    cr_assert_eq(opt2->step, 3);
    for (int k = 0; k < opt->nslots; k++)
        cr_assert(memcmp(opt2->state_f64[k], opt->state_f64[k], (size_t)ps->total * sizeof(double)) == 0);
    cr_assert(memcmp(es2.best_weights_f64, es.best_weights_f64, (size_t)ps->total * sizeof(double)) == 0);

    /* an f64 file does not load into f32 parameters (and nothing changes) */
    nb_model *m32 = nb_model_new(5);
    small_cnn(m32);
    const float before = m32->ps->flat[0];
    cr_assert_eq(nb_safetensors_load_params(m32->ps, tmp("p.safetensors")), NB_ERR_FORMAT);
    cr_assert(strstr(nb_last_error(), "F64") && strstr(nb_last_error(), "F32"), "%s", nb_last_error());
    cr_assert_eq(m32->ps->flat[0], before);
    nb_optim *o32 = nb_optim_new(&nb_adamw, m32->ps, NULL);
    nb_train_state g32;
    cr_assert_eq(nb_checkpoint_load(tmp("c.ckpt"), m32->ps, o32, NULL, &g32), NB_ERR_FORMAT);
    nb_optim_free(o32), nb_model_free(m32);

    nb_early_stop_free(&es2), nb_optim_free(opt2), nb_model_free(m2);
    nb_early_stop_free(&es), nb_optim_free(opt), nb_model_free(model);
}

/* Large f64 parameters: clip + AdamW + RMSprop with 1 and 2 threads give the same bits. */
static void run_large64(const nb_optim_def *def, int threads, double *w_out, double *s_out, double *norm) {
    nb_set_num_threads(threads);
    nb_params *ps = nb_params_new_dtype(NB_F64);
    nb_params_add(ps, "a", NB_SHAPE(300, 333));
    nb_params_add(ps, "b", NB_SHAPE(50, 1001));
    nb_rng rng = nb_rng_new(8);
    for (int i = 0; i < ps->n; i++) nb_rng_normal(&rng, ps->p[i], 0, 1);
    nb_hparams hp = def->defaults;
    hp.weight_decay = 0.01, hp.centered = true, hp.momentum = 0.9;
    nb_optim *opt = nb_optim_new(def, ps, &hp);
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < ps->n; i++) nb_rng_normal(&rng, ps->p[i]->grad, 0, 1);
        *norm = nb_clip_grad_norm(ps, 10.0);
        cr_assert_eq(nb_optim_step(opt), NB_OK);
    }
    memcpy(w_out, ps->flat_f64, (size_t)ps->total * sizeof(double));
    nb_optim_state_save(opt, s_out);
    nb_optim_free(opt);
    nb_params_free(ps);
}

Test(optim_f64, one_and_two_threads_bit_identical, .timeout = 60) {
    const int64_t total = 300 * 333 + 50 * 1001 + 64;
    double *w1 = calloc(total, 8), *w2 = calloc(total, 8), *s1 = calloc(3 * total, 8), *s2 = calloc(3 * total, 8);
    const nb_optim_def *defs[] = {&nb_adamw, &nb_rmsprop};
    for (int d = 0; d < 2; d++) {
        double n1, n2;
        run_large64(defs[d], 1, w1, s1, &n1);
        run_large64(defs[d], 2, w2, s2, &n2);
        cr_assert(memcmp(&n1, &n2, sizeof n1) == 0 && n1 > 100.0, "%s: norm %.17g vs %.17g", defs[d]->name, n1, n2);
        cr_assert(memcmp(w1, w2, 8 * (size_t)total) == 0, "%s: weights differ", defs[d]->name);
        cr_assert(memcmp(s1, s2, 8 * (size_t)(3 * total)) == 0, "%s: state differs", defs[d]->name);
    }
    nb_set_num_threads(2);
    free(w1), free(w2), free(s1), free(s2);
}
