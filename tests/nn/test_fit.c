/* nb_fit / nb_evaluate / nb_predict on a small separable problem, the callbacks, the metrics. */
#include "../common.h"
#include "../tmpdir.h"

#include "nabla/fit.h"

#include <string.h>
#include <unistd.h>

TestSuite(fit, .init = tmpdir_setup, .fini = tmpdir_teardown);

/* ---- the problem: three Gaussian-ish clusters in 2-D, 240 training and 60 validation points ---- */
typedef struct {
    nb_tensor *xtr, *ytr, *xva, *yva;
    nb_model *model;
    nb_module *net;
    nb_ctx *ctx;
    nb_optim *opt;
    nb_batcher *tr, *va;
} problem;

static void make_points(int64_t n, uint64_t seed, nb_tensor **x, nb_tensor **y) {
    static const double centers[3][2] = {{2, 0}, {-1, 1.7}, {-1, -1.7}};
    *x = nb_tensor_new(NB_F32, NB_SHAPE(n, 2));
    *y = nb_tensor_new(NB_I64, NB_SHAPE(n));
    nb_tensor *noise = nb_tensor_new(NB_F32, NB_SHAPE(n, 2));
    nb_rng rng = nb_rng_new(seed);
    nb_rng_normal(&rng, noise, 0, 1);
    for (int64_t i = 0; i < n; i++) {
        ((int64_t *)(*y)->data)[i] = i % 3;
        for (int d = 0; d < 2; d++)
            ((float *)(*x)->data)[2 * i + d] = (float)(centers[i % 3][d] + 0.5 * ((float *)noise->data)[2 * i + d]);
    }
    nb_tensor_free(noise);
}

static problem setup(double lr) {
    problem p = {0};
    make_points(240, 1, &p.xtr, &p.ytr);
    make_points(60, 2, &p.xva, &p.yva);
    p.model = nb_model_new(7);
    p.net = nb_sequential(p.model, "net", NB_MODULES(nb_linear_module(p.model, (nb_linear_opts){.in = 2, .out = 16}),
                                                     nb_relu_module(p.model, NULL),
                                                     nb_linear_module(p.model, (nb_linear_opts){.in = 16, .out = 3})));
    cr_assert_not_null(p.net, "%s", p.model->error);
    p.ctx = nb_ctx_new();
    nb_hparams hp = nb_adam.defaults;
    hp.lr = lr;
    p.opt = nb_optim_new(&nb_adam, p.model->ps, &hp);
    p.tr = nb_batcher_new(p.xtr, p.ytr, &(nb_batch_opts){.batch_size = 32, .shuffle = true, .seed = 3});
    p.va = nb_batcher_new(p.xva, p.yva, &(nb_batch_opts){.batch_size = 25});
    cr_assert(p.ctx && p.opt && p.tr && p.va);
    return p;
}

static void teardown(problem *p) {
    nb_batcher_free(p->tr), nb_batcher_free(p->va), nb_optim_free(p->opt), nb_ctx_free(p->ctx);
    nb_model_free(p->model);
    nb_tensor_free(p->xtr), nb_tensor_free(p->ytr), nb_tensor_free(p->xva), nb_tensor_free(p->yva);
}

static nb_status fit(problem *p, nb_history *h, nb_fit_opts o) {
    o.val = p->va;
    return nb_fit(p->ctx, NULL, p->net, p->opt, p->tr, h, &o);
}

Test(fit, separable_problem_reaches_high_accuracy_deterministically) {
    double last[2];
    for (int run = 0; run < 2; run++) {
        problem p = setup(0.02);
        nb_history h;
        cr_assert_eq(fit(&p, &h, (nb_fit_opts){.epochs = 15, .topk = 2}), NB_OK, "%s", nb_last_error());
        cr_assert_eq(h.n, 15);
        cr_assert_not(h.stopped);
        cr_assert_gt(h.epochs[14].val_accuracy, 0.95, "val accuracy %g", h.epochs[14].val_accuracy);
        cr_assert_gt(h.epochs[14].accuracy, 0.95);
        cr_assert_lt(h.epochs[14].loss, 0.5 * h.epochs[0].loss);
        cr_assert_geq(h.epochs[14].val_topk_accuracy, h.epochs[14].val_accuracy);
        nb_scores sc = {0};
        cr_assert_eq(nb_evaluate(p.ctx, NULL, p.net, p.va, &(nb_fit_opts){.topk = 2}, &sc), NB_OK);
        cr_assert_eq(sc.n, 60);
        cr_assert_eq(sc.loss, h.epochs[14].val_loss, "evaluate equals the last validation phase");
        cr_assert_eq(sc.accuracy, h.epochs[14].val_accuracy);
        last[run] = h.epochs[14].val_loss;
        nb_history_free(&h);
        teardown(&p);
    }
    cr_assert_eq(last[0], last[1], "two runs differ: %.17g vs %.17g", last[0], last[1]);
}

/* records ps->flat after every epoch, and the context's malloc count */
typedef struct {
    float snap[32][128];
    uint64_t mallocs[32];
    int64_t stop_at;
} recorder;
static nb_status record(nb_fit_state *s, void *user) {
    recorder *r = user;
    cr_assert_leq(s->ps->total, 128);
    memcpy(r->snap[s->epoch], s->ps->flat, (size_t)s->ps->total * sizeof(float));
    r->mallocs[s->epoch] = nb_ctx_mallocs(s->ctx);
    if (s->epoch == r->stop_at) s->stop = true;
    return NB_OK;
}

Test(fit, early_stopping_stops_and_restores_the_best_epoch) {
    problem p = setup(0.05);
    nb_early_stop es;
    cr_assert_eq(nb_early_stop_init(&es, p.model->ps, NB_MODE_MIN, 2, 0.02, true), NB_OK);
    static recorder r;
    r.stop_at = -1;
    nb_history h;
    cr_assert_eq(fit(&p, &h, (nb_fit_opts){.epochs = 30, .early_stop = &es,
                                           .n_callbacks = 1, .callbacks = &(nb_callback){.on_epoch_end = record, .user = &r}}),
                 NB_OK, "%s", nb_last_error());
    cr_assert(h.stopped, "ran all %lld epochs", (long long)h.n);
    cr_assert_eq(h.n, es.stopped_epoch + 1);
    cr_assert_eq(h.best_epoch, es.best_epoch);
    cr_assert_lt(h.best_epoch, h.n - 1);
    /* the best epoch is the last one improving the best by more than min_delta */
    double best = INFINITY;
    int64_t want = -1;
    for (int64_t e = 0; e < h.n; e++)
        if (h.epochs[e].val_loss < best - 0.02) best = h.epochs[e].val_loss, want = e;
    cr_assert_eq(h.best_epoch, want);
    cr_assert_eq(memcmp(p.model->ps->flat, r.snap[want], (size_t)p.model->ps->total * sizeof(float)), 0,
                 "parameters are not those of epoch %lld", (long long)want);
    cr_assert_neq(memcmp(r.snap[h.n - 2], r.snap[want], (size_t)p.model->ps->total * sizeof(float)), 0);
    nb_early_stop_free(&es);
    nb_history_free(&h);
    teardown(&p);
}

Test(fit, a_user_callback_stops_the_run_and_steady_steps_do_not_malloc) {
    problem p = setup(0.02);
    static recorder r;
    r.stop_at = 4;
    nb_history h;
    cr_assert_eq(fit(&p, &h, (nb_fit_opts){.epochs = 10, .n_callbacks = 1,
                                           .callbacks = &(nb_callback){.on_epoch_end = record, .user = &r}}), NB_OK);
    cr_assert_eq(h.n, 5);
    cr_assert(h.stopped);
    cr_assert_eq(h.best_epoch, -1);
    cr_assert_gt(r.mallocs[1], 0);
    cr_assert_eq(r.mallocs[4], r.mallocs[1], "epochs 2-5 allocated %llu times",
                 (unsigned long long)(r.mallocs[4] - r.mallocs[1]));
    nb_history_free(&h);
    teardown(&p);
}

Test(fit, checkpoint_and_resume_equal_an_uninterrupted_run) {
    problem a = setup(0.02);
    nb_history ha;
    cr_assert_eq(fit(&a, &ha, (nb_fit_opts){.epochs = 5, .schedule = NB_SCHEDULE_STEP, .step_size = 2, .gamma = 0.5}), NB_OK);
    for (int k = 0; k < 2; k++) {  /* 2 epochs, then the rest from the checkpoint */
        problem b = setup(0.02);
        nb_history hb;
        cr_assert_eq(fit(&b, &hb, (nb_fit_opts){.epochs = k ? 5 : 2, .schedule = NB_SCHEDULE_STEP, .step_size = 2,
                                                .gamma = 0.5, .checkpoint = tmp("ck.safetensors"), .resume = true}),
                     NB_OK, "%s", nb_last_error());
        cr_assert_eq(hb.n, k ? 5 : 2);
        if (k) {
            cr_assert_eq(memcmp(a.model->ps->flat, b.model->ps->flat, (size_t)a.model->ps->total * sizeof(float)), 0);
            for (int e = 0; e < 5; e++) {
                cr_assert_eq(hb.epochs[e].val_loss, ha.epochs[e].val_loss, "epoch %d", e);
                cr_assert_eq(hb.epochs[e].lr, 0.02 * pow(0.5, e / 2), "epoch %d lr %g", e, hb.epochs[e].lr);
            }
        }
        nb_history_free(&hb);
        teardown(&b);
    }
    nb_history_free(&ha);
    teardown(&a);
}

/* a conv + batch-norm net whose running statistics must come back with the checkpoint */
static nb_module *conv_bn_net(nb_model *m) {
    return nb_sequential(m, "net", NB_MODULES(
        nb_conv2d_module(m, (nb_conv2d_opts){.in = 1, .out = 4, .kernel = 3, .padding = 1, .no_bias = true, .name = "conv"}),
        nb_batch_norm_module(m, (nb_batch_norm_opts){.channels = 4, .name = "bn"}),
        nb_relu_module(m, "relu"), nb_flatten_module(m, "flat"),
        nb_linear_module(m, (nb_linear_opts){.in = 4 * 6 * 6, .out = 3, .name = "fc"})));
}

Test(fit, checkpoint_restores_batch_norm_running_statistics) {
    nb_tensor *x = nb_tensor_new(NB_F32, NB_SHAPE(48, 1, 6, 6)), *y = nb_tensor_new(NB_I64, NB_SHAPE(48));
    nb_rng rng = nb_rng_new(5);
    nb_rng_normal(&rng, x, 0.5, 2); /* mean and variance far from the initial 0 and 1 */
    for (int i = 0; i < 48; i++) ((int64_t *)y->data)[i] = i % 3;
    nb_model *a = nb_model_new(1), *b = nb_model_new(2); /* b: other weights, fresh statistics */
    nb_module *na = conv_bn_net(a), *nb = conv_bn_net(b);
    cr_assert(na && nb, "%s", a->error);
    cr_assert_eq(a->ps->n_buffers, 2);
    cr_assert_str_eq(a->ps->buffer_names[0], "bn.running_mean");
    cr_assert_str_eq(a->ps->buffer_names[1], "bn.running_var");
    nb_ctx *c0 = nb_ctx_new();
    nb_optim *opt = nb_optim_new(&nb_sgd, a->ps, &(nb_hparams){.lr = 0.05});
    nb_batcher *tr = nb_batcher_new(x, y, &(nb_batch_opts){.batch_size = 16, .shuffle = true, .seed = 3});
    nb_history h;
    cr_assert_eq(nb_fit(c0, NULL, na, opt, tr, &h, &(nb_fit_opts){.epochs = 2, .checkpoint = tmp("bn.safetensors")}), NB_OK,
                 "%s", nb_last_error());
    const float *mean = a->ps->buffers[0]->data;
    cr_assert_gt(fabsf(mean[0]), 0.01f, "training moved the running mean (%g)", mean[0]);

    nb_tensor *ya = nb_predict(c0, NULL, na, x, 16), *before = nb_predict(c0, NULL, nb, x, 16);
    nb_train_state *st = calloc(1, sizeof *st);
    cr_assert_eq(nb_checkpoint_load(tmp("bn.safetensors"), b->ps, NULL, NULL, st), NB_OK, "%s", nb_last_error());
    nb_tensor *yb = nb_predict(c0, NULL, nb, x, 16);
    cr_assert(ya && yb && before);
    cr_assert_neq(memcmp(ya->data, before->data, (size_t)ya->numel * sizeof(float)), 0);
    cr_assert_eq(memcmp(ya->data, yb->data, (size_t)ya->numel * sizeof(float)), 0, "eval after reload is bit-identical");
    for (int i = 0; i < 2; i++)
        cr_assert_eq(memcmp(a->ps->buffers[i]->data, b->ps->buffers[i]->data, 4 * sizeof(float)), 0);

    /* a model without those buffers refuses the file, naming the count */
    nb_model *c = nb_model_new(1);
    cr_assert_not_null(nb_sequential(c, "net", NB_MODULES(
        nb_conv2d_module(c, (nb_conv2d_opts){.in = 1, .out = 4, .kernel = 3, .padding = 1, .no_bias = true, .name = "conv"}),
        nb_layer_norm_module(c, (nb_layer_norm_opts){.features = 4, .name = "bn"}), /* the same parameters */
        nb_linear_module(c, (nb_linear_opts){.in = 4 * 6 * 6, .out = 3, .name = "fc"}))));
    cr_assert_eq(nb_checkpoint_load(tmp("bn.safetensors"), c->ps, NULL, NULL, st), NB_ERR_FORMAT);
    cr_assert_not_null(strstr(nb_last_error(), "holds 2 buffers, the model has 0"), "%s", nb_last_error());
    nb_model_free(c);
    free(st);
    nb_tensor_free(ya), nb_tensor_free(yb), nb_tensor_free(before);
    nb_history_free(&h), nb_batcher_free(tr), nb_optim_free(opt), nb_ctx_free(c0);
    nb_model_free(a), nb_model_free(b), nb_tensor_free(x), nb_tensor_free(y);
}

Test(fit, history_svg_marks_the_best_epoch_and_lr_changes) {
    nb_history h = {.n = 6, .best_epoch = 3};
    nb_epoch_log e[6];
    for (int i = 0; i < 6; i++)
        e[i] = (nb_epoch_log){.epoch = i, .loss = 1.0 / (i + 1), .accuracy = 0.5 + 0.05 * i, .val_loss = 1.2 / (i + 1),
                              .val_accuracy = 0.5 + 0.04 * i, .lr = i < 2 ? 0.1 : i < 4 ? 0.05 : 0.025};
    h.epochs = e;
    cr_assert_eq(nb_history_svg(&h, tmp("h.svg")), NB_OK, "%s", nb_last_error());
    for (int f = 0; f < 2; f++) {
        const char *path = tmp(f ? "h_accuracy.svg" : "h.svg");
        cr_assert_eq(svg_count(path, "polyline", "series"), 2, "%s: train and validation", path);
        cr_assert_eq(svg_count(path, "line", "mark"), 3, "%s: best epoch, lr changes at epochs 3 and 5", path);
        char *svg = slurp(path, NULL);
        cr_assert(strstr(svg, ">best epoch 4</text>") && strstr(svg, ">lr 0.05</text>") && strstr(svg, ">lr 0.025</text>"));
        free(svg);
    }
    h.best_epoch = -1;
    for (int i = 0; i < 6; i++) e[i].lr = 0.1;
    cr_assert_eq(nb_history_svg(&h, tmp("h.svg")), NB_OK);
    cr_assert_eq(svg_count(tmp("h.svg"), "line", "mark"), 0, "nothing to mark");
    /* nothing finite to draw (no accuracy, as a regression model's; then no epoch at all): the
     * files are still written, saying so (it returned NB_OK and wrote nothing) */
    for (int i = 0; i < 6; i++) e[i].accuracy = e[i].val_accuracy = NAN;
    for (int n = 6; n >= 0; n -= 6) {
        h.n = n;
        unlink(tmp("e.svg")), unlink(tmp("e_accuracy.svg"));
        cr_assert_eq(nb_history_svg(&h, tmp("e.svg")), NB_OK, "%s", nb_last_error());
        char *acc = slurp(tmp("e_accuracy.svg"), NULL), *loss = slurp(tmp("e.svg"), NULL);
        cr_assert(acc && strstr(acc, "no finite value to plot"), "%d epochs: accuracy plot missing", n);
        cr_assert(loss && strstr(loss, n ? "polyline" : "no finite value to plot"), "%d epochs: loss plot", n);
        free(acc), free(loss);
    }
}

Test(fit, reduce_on_plateau_sets_the_next_epochs_lr) {
    problem p = setup(0.02);
    nb_plateau pl, ref;
    cr_assert_eq(nb_plateau_init(&pl, NB_MODE_MIN, 0.02), NB_OK);
    pl.patience = 0, pl.factor = 0.5, pl.threshold = 0.99; /* no epoch after the first counts as better */
    ref = pl;
    nb_history h;
    cr_assert_eq(fit(&p, &h, (nb_fit_opts){.epochs = 5, .plateau = &pl}), NB_OK, "%s", nb_last_error());
    double lr = 0.02;
    for (int e = 0; e < 5; e++) {
        cr_assert_eq(h.epochs[e].lr, lr, "epoch %d: lr %g, want %g", e, h.epochs[e].lr, lr);
        lr = nb_plateau_step(&ref, h.epochs[e].val_loss);
    }
    cr_assert_eq(p.opt->hp.lr, lr);
    cr_assert_eq(lr, 0.02 / 16, "the lr was halved after epochs 2 to 5");
    nb_history_free(&h);
    teardown(&p);
}

/* with SGD at lr 1, a clipped gradient bounds how far the parameters move */
Test(fit, gradient_clipping_bounds_each_step) {
    for (int by_norm = 0; by_norm < 3; by_norm++) { /* by value, 2-norm, inf-norm */
        problem p = setup(0.02);
        nb_optim_free(p.opt);
        nb_hparams hp = nb_sgd.defaults;
        hp.lr = 1;
        p.opt = nb_optim_new(&nb_sgd, p.model->ps, &hp);
        const int64_t n = p.model->ps->total;
        float *w0 = malloc((size_t)n * sizeof *w0);
        memcpy(w0, p.model->ps->flat, (size_t)n * sizeof *w0);
        nb_history h;
        const nb_fit_opts o = by_norm == 0   ? (nb_fit_opts){.epochs = 1, .clip_value = 1e-4}
                              : by_norm == 1 ? (nb_fit_opts){.epochs = 1, .clip_norm = 1e-3}
                                             : (nb_fit_opts){.epochs = 1, .clip_norm = 1e-4, .clip_norm_type = INFINITY};
        cr_assert_eq(fit(&p, &h, o), NB_OK, "%s", nb_last_error());
        double sq = 0, maxabs = 0;  /* 8 steps; float rounding of the weights adds ~1e-7 per step */
        for (int64_t i = 0; i < n; i++) {
            const double d = (double)p.model->ps->flat[i] - w0[i];
            sq += d * d, maxabs = fmax(maxabs, fabs(d));
        }
        cr_assert_gt(maxabs, 0);
        if (by_norm == 1) cr_assert_leq(sqrt(sq), 8e-3 + 1e-5, "moved %g", sqrt(sq));
        else cr_assert_leq(maxabs, 8e-4 + 2e-6, "moved %g", maxabs);
        if (by_norm == 2) cr_assert_gt(sqrt(sq), 8e-4 * 1.5, "an inf-norm clip moved no more than one element would");
        free(w0);
        nb_history_free(&h);
        teardown(&p);
    }
}

Test(fit, history_csv_and_svg) {
    problem p = setup(0.02);
    nb_history h;
    const char *svg = strdup(tmp("curves.svg"));
    cr_assert_eq(fit(&p, &h, (nb_fit_opts){.epochs = 3, .csv = tmp("h.csv"), .svg = svg}), NB_OK, "%s", nb_last_error());
    FILE *f = fopen(tmp("h.csv"), "r");
    cr_assert_not_null(f);
    char line[512];
    cr_assert_not_null(fgets(line, sizeof line, f));
    cr_assert_str_eq(line, "epoch,loss,accuracy,topk_accuracy,val_loss,val_accuracy,val_topk_accuracy,lr\n");
    for (int e = 0; e < 3; e++) {
        cr_assert_not_null(fgets(line, sizeof line, f));
        int ep;
        double v[7];
        cr_assert_eq(sscanf(line, "%d,%lf,%lf,%lf,%lf,%lf,%lf,%lf", &ep, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]), 8);
        cr_assert_eq(ep, e + 1);
        const nb_epoch_log *l = &h.epochs[e];
        const double want[7] = {l->loss, l->accuracy, l->topk_accuracy, l->val_loss, l->val_accuracy, l->val_topk_accuracy, l->lr};
        for (int c = 0; c < 7; c++) assert_close(v[c], want[c], 0, 1e-5, "epoch %d column %d", e, c);
        cr_assert_eq(v[2], 1.0, "top-5 of 3 classes is always right");
    }
    cr_assert_null(fgets(line, sizeof line, f));
    fclose(f);
    FILE *g = fopen(svg, "r"), *acc = fopen(tmp("curves_accuracy.svg"), "r");
    cr_assert(g && acc);
    fclose(g), fclose(acc);
    free((void *)svg);
    nb_history_free(&h);
    teardown(&p);
}

Test(fit, predict_matches_forward_and_evaluate_confusion) {
    problem p = setup(0.02);
    nb_tensor *out = nb_predict(p.ctx, NULL, p.net, p.xva, 7);
    cr_assert_not_null(out, "%s", nb_last_error());
    cr_assert_eq(out->shape[0], 60);
    cr_assert_eq(out->shape[1], 3);
    nb_ctx_set_train(p.ctx, false);
    nb_tensor *ref = nb_module_forward(p.ctx, p.net, p.xva);
    for (int64_t i = 0; i < 180; i++) assert_close(nb_get(out, i), nb_get(ref, i), 1e-6, 1e-5);
    int64_t cm[9];
    nb_scores sc = {.confusion = cm, .num_classes = 3};
    cr_assert_eq(nb_evaluate(p.ctx, NULL, p.net, p.va, NULL, &sc), NB_OK);
    int64_t want[9] = {0};
    cr_assert_eq(nb_metrics_confusion(out, p.yva, want), NB_OK);
    cr_assert_eq(memcmp(cm, want, sizeof cm), 0);
    cr_assert_eq(sc.accuracy, (double)(cm[0] + cm[4] + cm[8]) / 60.0);
    assert_close(sc.accuracy, nb_metrics_accuracy(out, p.yva), 0, 0);
    sc.num_classes = 4; /* refused before the 9-entry matrix is written (ASan would see a 16-entry write) */
    cr_assert_eq(nb_evaluate(p.ctx, NULL, p.net, p.va, NULL, &sc), NB_ERR_SHAPE);
    cr_assert_eq(memcmp(cm, want, sizeof cm), 0, "the matrix was written");
    nb_tensor_free(out);
    teardown(&p);
}

Test(fit, bad_arguments) {
    problem p = setup(0.02);
    nb_history h;
    cr_assert_eq(fit(&p, &h, (nb_fit_opts){.epochs = 0}), NB_ERR_VALUE);
    cr_assert_eq(fit(&p, &h, (nb_fit_opts){.epochs = 1000, .checkpoint = tmp("x")}), NB_ERR_VALUE);
    cr_assert_eq(nb_fit(p.ctx, NULL, p.net, p.opt, NULL, &h, &(nb_fit_opts){.epochs = 1}), NB_ERR_NULL);
    /* a batcher without labels and the default loss: said so before any step, not as the loss's
     * NULL input */
    nb_batcher *nolab = nb_batcher_new(p.xva, NULL, &(nb_batch_opts){.batch_size = 8});
    const int64_t step = p.opt->step;
    cr_assert_eq(nb_fit(p.ctx, NULL, p.net, p.opt, nolab, &h, &(nb_fit_opts){.epochs = 1}), NB_ERR_NULL);
    cr_assert(strstr(nb_last_error(), "fit: the training batcher has no labels"), "%s", nb_last_error());
    cr_assert_eq(p.opt->step, step);
    nb_history_free(&h);
    nb_scores sc = {0};
    cr_assert_eq(nb_evaluate(p.ctx, NULL, p.net, nolab, NULL, &sc), NB_ERR_NULL);
    cr_assert(strstr(nb_last_error(), "no labels"), "%s", nb_last_error());
    nb_batcher_free(nolab);
    /* a batcher that yields no batch (fewer samples than batch_size, drop_last): no step ran
     * and the history was NaN, reported as success */
    nb_batcher *none = nb_batcher_new(p.xva, p.yva, &(nb_batch_opts){.batch_size = p.xva->shape[0] + 1, .drop_last = true});
    cr_assert_eq(nb_batcher_num_batches(none), 0);
    cr_assert_eq(nb_fit(p.ctx, NULL, p.net, p.opt, none, &h, &(nb_fit_opts){.epochs = 1}), NB_ERR_VALUE);
    cr_assert(strstr(nb_last_error(), "fit: the training batcher yields no batch"), "%s", nb_last_error());
    nb_history_free(&h);
    nb_batcher *tr = nb_batcher_new(p.xva, p.yva, &(nb_batch_opts){.batch_size = 8});
    cr_assert_eq(nb_fit(p.ctx, NULL, p.net, p.opt, tr, &h, &(nb_fit_opts){.epochs = 1, .val = none}), NB_ERR_VALUE);
    cr_assert(strstr(nb_last_error(), "validation batcher yields no batch"), "%s", nb_last_error());
    cr_assert_eq(p.opt->step, step);
    nb_history_free(&h);
    cr_assert_eq(nb_evaluate(p.ctx, NULL, p.net, none, NULL, &sc), NB_ERR_VALUE);
    cr_assert(strstr(nb_last_error(), "evaluate: the batcher yields no batch"), "%s", nb_last_error());
    nb_batcher_free(none), nb_batcher_free(tr);
    /* a schedule and a plateau would both set the lr (the plateau was silently ignored); an
     * early stop or plateau whose mode does not suit the metric (MIN on an accuracy restored
     * the worst weights) */
    nb_plateau pl;
    cr_assert_eq(nb_plateau_init(&pl, NB_MODE_MIN, 0.1), NB_OK);
    cr_assert_eq(fit(&p, &h, (nb_fit_opts){.epochs = 1, .plateau = &pl, .schedule = NB_SCHEDULE_STEP, .step_size = 1,
                                           .gamma = 0.5}),
                 NB_ERR_VALUE);
    cr_assert(strstr(nb_last_error(), "a schedule and a plateau"), "%s", nb_last_error());
    nb_early_stop es;
    cr_assert_eq(nb_early_stop_init(&es, p.opt->ps, NB_MODE_MIN, 2, 0.0, true), NB_OK);
    cr_assert_eq(fit(&p, &h, (nb_fit_opts){.epochs = 1, .early_stop = &es, .monitor = NB_MONITOR_VAL_ACCURACY}),
                 NB_ERR_VALUE);
    cr_assert(strstr(nb_last_error(), "early stop watches an accuracy, whose mode is NB_MODE_MAX"), "%s", nb_last_error());
    cr_assert_eq(fit(&p, &h, (nb_fit_opts){.epochs = 1, .plateau = &pl, .monitor = NB_MONITOR_ACCURACY}), NB_ERR_VALUE);
    cr_assert(strstr(nb_last_error(), "plateau watches an accuracy"), "%s", nb_last_error());
    cr_assert_eq(p.opt->step, step);
    nb_early_stop_free(&es);
    nb_history_free(&h);
    /* predict names itself for a batch size below 1 */
    cr_assert_null(nb_predict(p.ctx, NULL, p.net, p.xva, 0));
    cr_assert_eq(nb_last_status(), NB_ERR_VALUE);
    cr_assert(strstr(nb_last_error(), "predict: batch_size 0"), "%s", nb_last_error());
    teardown(&p);
}

/* ---- metrics against hand-computed values ----------------------------------------------------- */
Test(fit, metrics_by_hand) {
    /* 5 rows, 3 classes; row 3 ties classes 0 and 2 (argmax: 0) */
    const float l[15] = {3, 1, 0,   0, 2, 1,   0.5f, 1, 0,   2, 0, 2,   1, 0, 3};
    const int64_t y[5] = {0, 2, 2, 2, 1};
    nb_tensor *logits = nb_tensor_from(NB_F32, NB_SHAPE(5, 3), l), *labels = nb_tensor_from(NB_I64, NB_SHAPE(5), y);
    /* predictions 0, 1, 1, 0, 2; label ranks 0, 1, 2, 1, 2 */
    cr_assert_eq(nb_metrics_topk_correct(logits, labels, 1), 1);
    cr_assert_eq(nb_metrics_topk_correct(logits, labels, 2), 3);
    cr_assert_eq(nb_metrics_topk_correct(logits, labels, 3), 5);
    cr_assert_eq(nb_metrics_accuracy(logits, labels), 0.2);
    cr_assert_eq(nb_metrics_topk_accuracy(logits, labels, 2), 0.6);
    int64_t cm[9] = {0};
    cr_assert_eq(nb_metrics_confusion(logits, labels, cm), NB_OK);
    const int64_t want[9] = {1, 0, 0,   0, 0, 1,   1, 2, 0};  /* rows: true class */
    for (int i = 0; i < 9; i++) cr_assert_eq(cm[i], want[i], "cm[%d] = %lld", i, (long long)cm[i]);
    cr_assert_eq(nb_metrics_confusion(logits, labels, cm), NB_OK);
    cr_assert_eq(cm[7], 4, "counts accumulate");
    double acc[4];
    const int64_t cm4[16] = {2, 0, 0, 0,   1, 1, 0, 0,   0, 0, 0, 0,   0, 0, 3, 1};
    cr_assert_eq(nb_metrics_per_class_accuracy(cm4, 4, acc), NB_OK);
    cr_assert_eq(acc[0], 1.0);
    cr_assert_eq(acc[1], 0.5);
    cr_assert(isnan(acc[2]));
    cr_assert_eq(acc[3], 0.25);
    /* bad input */
    const int64_t bad[5] = {0, 3, 0, 0, 0};
    nb_tensor *bad_labels = nb_tensor_from(NB_I64, NB_SHAPE(5), bad);
    cr_assert_eq(nb_metrics_topk_correct(logits, bad_labels, 1), -1);
    cr_assert_eq(nb_last_status(), NB_ERR_INDEX);
    cr_assert_eq(nb_metrics_topk_correct(logits, labels, 0), -1);
    cr_assert_eq(nb_last_status(), NB_ERR_VALUE);
    cr_assert_eq(nb_metrics_topk_correct(labels, labels, 1), -1);
    cr_assert_eq(nb_last_status(), NB_ERR_DTYPE);
    cr_assert(isnan(nb_metrics_accuracy(logits, NULL)));
    cr_assert_eq(nb_last_status(), NB_ERR_NULL);
    nb_tensor_free(logits), nb_tensor_free(labels), nb_tensor_free(bad_labels);
}

/* A NaN logit ranks above every number, as in nb_argmax and torch.argmax: a diverged model (all
 * logits NaN) scored accuracy 1 (no logit was "larger" than the label's NaN), while its own
 * confusion matrix predicted class 0 everywhere. */
Test(fit, metrics_rank_nan_like_argmax) {
    const float N_ = NAN;
    /* rows: all NaN (argmax 0); a NaN at 2 beats 9 at 0; two NaNs (first wins); no NaN */
    const float l[16] = {N_, N_, N_, N_,   9, 0, N_, 1,   0, N_, 5, N_,   1, 4, 2, 3};
    const int64_t y[4] = {1, 0, 3, 1};
    nb_tensor *logits = nb_tensor_from(NB_F32, NB_SHAPE(4, 4), l), *labels = nb_tensor_from(NB_I64, NB_SHAPE(4), y);
    nb_ctx *c = nb_ctx_new();
    nb_tensor *am = nb_argmax(c, logits, 1, false);
    for (int i = 0; i < 4; i++) { /* the confusion matrix predicts what nb_argmax does */
        int64_t cm[16] = {0}, pred = -1;
        nb_tensor *row = nb_tensor_from(NB_F32, NB_SHAPE(1, 4), l + 4 * i), *lab = nb_tensor_from(NB_I64, NB_SHAPE(1), y + i);
        cr_assert_eq(nb_metrics_confusion(row, lab, cm), NB_OK);
        for (int j = 0; j < 4; j++) pred = cm[y[i] * 4 + j] ? j : pred;
        cr_assert_eq(pred, (int64_t)nb_get(am, i), "row %d", i);
        nb_tensor_free(row), nb_tensor_free(lab);
    }
    /* predictions 0, 2, 1, 1: only the last row is right; label ranks 1 (the first NaN above),
     * 1 (the NaN above 9), 1 (the earlier NaN above the label's NaN, 5 below it), 0 */
    cr_assert_eq(nb_metrics_topk_correct(logits, labels, 1), 1);
    cr_assert_eq(nb_metrics_accuracy(logits, labels), 0.25);
    cr_assert_eq(nb_metrics_topk_correct(logits, labels, 2), 4);
    nb_ctx_free(c);
    nb_tensor_free(logits), nb_tensor_free(labels);
}

/* Labels -100 (PyTorch's ignore_index, which nb_cross_entropy skips): the metrics skip those
 * rows too, so a padded labelling task trains through nb_fit (it stopped with NB_ERR_INDEX). */
static nb_tensor *ce_ignoring(nb_ctx *c, nb_tensor *out, nb_tensor *y) { return nb_cross_entropy_ex(c, out, y, NULL); }
Test(fit, metrics_and_fit_skip_ignored_labels) {
    const float l[12] = {3, 1, 0,   0, 2, 1,   0.5f, 1, 0,   2, 0, 2};
    const int64_t y[4] = {0, NB_METRICS_IGNORE, 2, NB_METRICS_IGNORE};
    nb_tensor *logits = nb_tensor_from(NB_F32, NB_SHAPE(4, 3), l), *labels = nb_tensor_from(NB_I64, NB_SHAPE(4), y);
    cr_assert_eq(nb_metrics_labelled(labels), 2);
    cr_assert_eq(nb_metrics_topk_correct(logits, labels, 1), 1);
    cr_assert_eq(nb_metrics_accuracy(logits, labels), 0.5);
    cr_assert_eq(nb_metrics_topk_accuracy(logits, labels, 2), 0.5);
    int64_t cm[9] = {0};
    cr_assert_eq(nb_metrics_confusion(logits, labels, cm), NB_OK);
    int64_t total = 0;
    for (int i = 0; i < 9; i++) total += cm[i];
    cr_assert_eq(total, 2);
    /* every row ignored: no accuracy, and an error saying why; other negative labels stay errors */
    const int64_t none[2] = {NB_METRICS_IGNORE, NB_METRICS_IGNORE}, neg[2] = {0, -1};
    nb_tensor *l2 = nb_tensor_from(NB_F32, NB_SHAPE(2, 3), l), *yn = nb_tensor_from(NB_I64, NB_SHAPE(2), none),
              *yneg = nb_tensor_from(NB_I64, NB_SHAPE(2), neg);
    cr_assert(isnan(nb_metrics_accuracy(l2, yn)));
    cr_assert(strstr(nb_last_error(), "ignored"), "%s", nb_last_error());
    cr_assert_eq(nb_metrics_topk_correct(l2, yneg, 1), -1);
    cr_assert_eq(nb_last_status(), NB_ERR_INDEX);
    /* nb_fit and nb_evaluate with a loss that ignores them: accuracy over the labelled rows */
    problem p = setup(0.05);
    for (int64_t i = 0; i < 240; i += 4) nb_set(p.ytr, i, NB_METRICS_IGNORE);
    for (int64_t i = 0; i < 60; i += 3) nb_set(p.yva, i, NB_METRICS_IGNORE);
    nb_history h;
    cr_assert_eq(fit(&p, &h, (nb_fit_opts){.epochs = 3, .loss = ce_ignoring}), NB_OK, "%s", nb_last_error());
    nb_scores sc = {0};
    cr_assert_eq(nb_evaluate(p.ctx, NULL, p.net, p.va, &(nb_fit_opts){.loss = ce_ignoring}, &sc), NB_OK, "%s",
                 nb_last_error());
    nb_tensor *out = nb_predict(p.ctx, NULL, p.net, p.xva, 60);
    cr_assert_not_null(out, "%s", nb_last_error());
    assert_close(sc.accuracy, nb_metrics_accuracy(out, p.yva), 1e-12, 0);
    cr_assert_gt(sc.accuracy, 0.8);
    nb_tensor_free(out);
    nb_history_free(&h);
    teardown(&p);
    nb_tensor_free(logits), nb_tensor_free(labels), nb_tensor_free(l2), nb_tensor_free(yn), nb_tensor_free(yneg);
}

/* No rows: nb_predict gives the model's (0, out) output, as torch's model(x[:0]); a forward that
 * returns NULL without an error stops nb_fit and nb_evaluate with NB_ERR_STATE (they returned
 * NB_OK with no step taken and a NaN loss). */
static nb_tensor *fwd_null(nb_ctx *c, const void *m, nb_tensor *x) {
    (void)c, (void)m, (void)x;
    return NULL;
}
Test(fit, empty_input_and_a_silent_forward) {
    nb_model *m = nb_model_new(1);
    nb_module *lin = nb_linear_module(m, (nb_linear_opts){.in = 4, .out = 3});
    nb_ctx *c = nb_ctx_new();
    nb_tensor *x0 = nb_tensor_new(NB_F32, NB_SHAPE(0, 4));
    nb_tensor *p = nb_predict(c, NULL, lin, x0, 2);
    cr_assert(p && p->ndim == 2 && p->shape[0] == 0 && p->shape[1] == 3, "%s", nb_last_error());
    nb_tensor *x = nb_tensor_new(NB_F32, NB_SHAPE(4, 4)), *y = nb_tensor_new(NB_I64, NB_SHAPE(4));
    memset(y->data, 0, 4 * sizeof(int64_t));
    nb_batcher *b = nb_batcher_new(x, y, &(nb_batch_opts){.batch_size = 2});
    nb_optim *o = nb_optim_new(&nb_sgd, m->ps, NULL);
    nb_history h = {0};
    nb_clear_last_error();
    cr_assert_eq(nb_fit(c, fwd_null, lin, o, b, &h, &(nb_fit_opts){.epochs = 2}), NB_ERR_STATE);
    cr_assert(strstr(nb_last_error(), "returned NULL"), "%s", nb_last_error());
    cr_assert_eq(o->step, 0);
    nb_scores sc = {0};
    nb_clear_last_error();
    cr_assert_eq(nb_evaluate(c, fwd_null, lin, b, NULL, &sc), NB_ERR_STATE);
    nb_history_free(&h), nb_optim_free(o), nb_batcher_free(b);
    nb_tensor_free(x), nb_tensor_free(y), nb_tensor_free(x0), nb_tensor_free(p);
    nb_ctx_free(c), nb_model_free(m);
}
