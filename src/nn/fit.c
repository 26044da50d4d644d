/* The training loop (nb_fit, nb_evaluate, nb_predict), its built-in callbacks and the metrics.
 * One function runs a phase (train or validation/evaluation) over a batcher; every built-in is an
 * nb_callback run by the same hook loop as the user's. */
#include "../internal.h"

#include "nabla/fit.h"
#include "nabla/io.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- metrics --------------------------------------------------------------------------------- */
static nb_status check_logits(const char *fn, const nb_tensor *logits, const nb_tensor *labels) {
    if (!logits || !labels) return nb_set_error(NB_ERR_NULL, "%s: logits or labels is NULL", fn);
    if (logits->dtype == NB_I64 || labels->dtype != NB_I64)
        return nb_set_error(NB_ERR_DTYPE, "%s: needs float logits and I64 labels, got %s and %s", fn,
                            nb_dtype_name(logits->dtype), nb_dtype_name(labels->dtype));
    if (logits->ndim != 2 || labels->ndim != 1 || labels->shape[0] != logits->shape[0] || logits->shape[1] < 1) {
        char a[64], b[64];
        return nb_set_error(NB_ERR_SHAPE, "%s: logits %s and labels %s are not (N, C) and (N)", fn,
                            nb_shape_str(logits, a, sizeof a), nb_shape_str(labels, b, sizeof b));
    }
    const int64_t C = logits->shape[1];
    for (int64_t i = 0; i < labels->shape[0]; i++) {
        const double y = nb_get(labels, i);
        if (!(y >= 0 && y < (double)C) && y != NB_METRICS_IGNORE)
            return nb_set_error(NB_ERR_INDEX, "%s: label %g of row %lld is outside [0, %lld)", fn, y, (long long)i, (long long)C);
    }
    return NB_OK;
}

static bool ignored(const nb_tensor *labels, int64_t i) { return nb_get(labels, i) == NB_METRICS_IGNORE; }

/* the order of nb_argmax: larger first, a NaN above every number, ties by index */
static bool above(double a, int64_t i, double b, int64_t j) {
    if (isnan(a) || isnan(b)) return isnan(a) && (!isnan(b) || i < j);
    return a > b || (a == b && i < j);
}

/* rank of row i's label: the logits above it */
static int64_t label_rank(const nb_tensor *logits, const nb_tensor *labels, int64_t i) {
    const int64_t C = logits->shape[1], y = (int64_t)nb_get(labels, i);
    const double ly = nb_get(logits, i * C + y);
    int64_t r = 0;
    for (int64_t j = 0; j < C; j++) r += above(nb_get(logits, i * C + j), j, ly, y);
    return r;
}

int64_t nb_metrics_topk_correct(const nb_tensor *logits, const nb_tensor *labels, int64_t k) {
    if (check_logits("metrics_topk_correct", logits, labels) != NB_OK) return -1;
    if (k < 1) return nb_set_error(NB_ERR_VALUE, "metrics_topk_correct: k %lld must be >= 1", (long long)k), -1;
    int64_t correct = 0;
    for (int64_t i = 0; i < logits->shape[0]; i++) correct += !ignored(labels, i) && label_rank(logits, labels, i) < k;
    return correct;
}

int64_t nb_metrics_labelled(const nb_tensor *labels) {
    if (!labels) return nb_set_error(NB_ERR_NULL, "metrics_labelled: labels is NULL"), -1;
    if (labels->dtype != NB_I64 || labels->ndim != 1) {
        char a[64];
        return nb_set_error(NB_ERR_SHAPE, "metrics_labelled: labels %s %s are not (N) I64", nb_dtype_name(labels->dtype),
                            nb_shape_str(labels, a, sizeof a)), -1;
    }
    int64_t n = 0;
    for (int64_t i = 0; i < labels->shape[0]; i++) n += !ignored(labels, i);
    return n;
}

double nb_metrics_topk_accuracy(const nb_tensor *logits, const nb_tensor *labels, int64_t k) {
    const int64_t c = nb_metrics_topk_correct(logits, labels, k);
    if (c < 0) return NAN;
    const int64_t n = nb_metrics_labelled(labels);
    if (n == 0)
        return nb_set_error(NB_ERR_VALUE, "metrics_accuracy: no rows%s", logits->shape[0] ? " with a label (all ignored)" : ""),
               NAN;
    return (double)c / (double)n;
}

double nb_metrics_accuracy(const nb_tensor *logits, const nb_tensor *labels) {
    return nb_metrics_topk_accuracy(logits, labels, 1);
}

nb_status nb_metrics_confusion(const nb_tensor *logits, const nb_tensor *labels, int64_t *cm) {
    nb_status s = check_logits("metrics_confusion", logits, labels);
    if (s != NB_OK) return s;
    if (!cm) return nb_set_error(NB_ERR_NULL, "metrics_confusion: matrix is NULL");
    const int64_t C = logits->shape[1];
    for (int64_t i = 0; i < logits->shape[0]; i++) {
        if (ignored(labels, i)) continue;
        int64_t p = 0;
        for (int64_t j = 1; j < C; j++) p = above(nb_get(logits, i * C + j), j, nb_get(logits, i * C + p), p) ? j : p;
        cm[(int64_t)nb_get(labels, i) * C + p]++;
    }
    return NB_OK;
}

nb_status nb_metrics_per_class_accuracy(const int64_t *cm, int64_t num_classes, double *acc) {
    if (!cm || !acc) return nb_set_error(NB_ERR_NULL, "metrics_per_class_accuracy: matrix or output is NULL");
    if (num_classes < 1) return nb_set_error(NB_ERR_VALUE, "metrics_per_class_accuracy: %lld classes", (long long)num_classes);
    for (int64_t c = 0; c < num_classes; c++) {
        int64_t row = 0;
        for (int64_t j = 0; j < num_classes; j++) row += cm[c * num_classes + j];
        acc[c] = row ? (double)cm[c * num_classes + c] / (double)row : NAN;
    }
    return NB_OK;
}

/* ---- history --------------------------------------------------------------------------------- */
double nb_epoch_value(const nb_epoch_log *e, nb_monitor m) {
    const double v[] = {e->val_loss, e->val_accuracy, e->loss, e->accuracy};
    return (unsigned)m < 4 ? v[m] : NAN;
}

void nb_history_free(nb_history *h) {
    if (!h) return;
    free(h->epochs);
    memset(h, 0, sizeof *h);
}

/* the saved columns of an epoch, in CSV and checkpoint order */
#define LOG_FIELDS 7
static double *log_field(nb_epoch_log *e, int f) {
    double *p[LOG_FIELDS] = {&e->loss, &e->accuracy, &e->topk_accuracy, &e->val_loss, &e->val_accuracy,
                             &e->val_topk_accuracy, &e->lr};
    return p[f];
}

nb_status nb_history_csv(const nb_history *h, const char *path) {
    if (!h || !path) return nb_set_error(NB_ERR_NULL, "history_csv: history or path is NULL");
    FILE *f = fopen(path, "w");
    if (!f) return nb_set_error(NB_ERR_IO, "history_csv: cannot write %s", path);
    fputs("epoch,loss,accuracy,topk_accuracy,val_loss,val_accuracy,val_topk_accuracy,lr\n", f);
    for (int64_t i = 0; i < h->n; i++) {
        fprintf(f, "%lld", (long long)h->epochs[i].epoch + 1);
        for (int c = 0; c < LOG_FIELDS; c++) fprintf(f, ",%.6g", *log_field(&h->epochs[i], c));
        fputc('\n', f);
    }
    return fclose(f) == 0 ? NB_OK : nb_set_error(NB_ERR_IO, "history_csv: cannot write %s", path);
}

/* A plot with nothing to draw (no epoch yet, or no finite value: a regression model's accuracy,
 * a diverged loss) is still written, saying so, so that the file a caller asked for exists. */
static nb_status empty_plot(const char *path, const char *title) {
    FILE *f = fopen(path, "w");
    if (!f) return nb_set_error(NB_ERR_IO, "history_svg: cannot open '%s' for writing", path);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"400\" viewBox=\"0 0 640 400\">\n"
               "<rect width=\"640\" height=\"400\" fill=\"white\"/>\n"
               "<text x=\"320\" y=\"30\" font-family=\"sans-serif\" font-size=\"16\" text-anchor=\"middle\">%s</text>\n"
               "<text x=\"320\" y=\"200\" font-family=\"sans-serif\" font-size=\"14\" text-anchor=\"middle\" fill=\"#666\">"
               "no finite value to plot yet</text>\n</svg>\n", title);
    const bool ok = !ferror(f);
    return fclose(f) == 0 && ok ? NB_OK : nb_set_error(NB_ERR_IO, "history_svg: write to '%s' failed", path);
}

/* one SVG of the history's fields a (train) and b (validation), with the marks */
static nb_status plot_pair(const nb_history *h, const char *path, const char *title, int a, int b, int n_marks,
                           const nb_plot_mark *marks) {
    double *y = malloc((2 * (size_t)h->n + 1) * sizeof *y);
    if (!y) return nb_set_error(NB_ERR_NOMEM, "history_svg: out of memory");
    int ns = 0;
    nb_series s[2];
    const int fields[2] = {a, b};
    const char *names[2] = {"train", "validation"};
    for (int k = 0; k < 2; k++) {
        bool finite = false;
        for (int64_t i = 0; i < h->n; i++)
            finite |= isfinite(y[k * h->n + i] = *log_field(&h->epochs[i], fields[k]));
        if (finite) s[ns++] = (nb_series){.name = names[k], .y = y + k * h->n, .n = h->n};
    }
    nb_status st = ns ? nb_plot_svg_marked(path, title, "epoch", title, ns, s, n_marks, marks) : empty_plot(path, title);
    free(y);
    return st;
}

nb_status nb_history_svg(const nb_history *h, const char *path) {
    if (!h || !path) return nb_set_error(NB_ERR_NULL, "history_svg: history or path is NULL");
    char acc[1024];
    const size_t len = strlen(path), stem = len >= 4 && !strcmp(path + len - 4, ".svg") ? len - 4 : len;
    if (snprintf(acc, sizeof acc, "%.*s_accuracy.svg", (int)stem, path) >= (int)sizeof acc)
        return nb_set_error(NB_ERR_VALUE, "history_svg: path too long");
    /* marks: the restored best epoch, then every epoch whose learning rate differs from the last
     * one's (epochs are plotted at 1, 2, ...) */
    nb_plot_mark *marks = malloc((size_t)(h->n + 1) * sizeof *marks); /* + 1: never malloc(0) */
    char(*labels)[40] = malloc((size_t)(h->n + 1) * sizeof *labels);
    if (!marks || !labels) return free(marks), free(labels), nb_set_error(NB_ERR_NOMEM, "history_svg: out of memory");
    int nm = 0;
    if (h->best_epoch >= 0 && h->best_epoch < h->n) {
        snprintf(labels[nm], sizeof labels[0], "best epoch %lld", (long long)h->best_epoch + 1);
        marks[nm] = (nb_plot_mark){.x = (double)h->best_epoch + 1, .label = labels[nm], .color = "#2ca02c"}, nm++;
    }
    for (int64_t e = 1; e < h->n && nm < h->n; e++)
        if (h->epochs[e].lr != h->epochs[e - 1].lr) {
            snprintf(labels[nm], sizeof labels[0], "lr %.3g", h->epochs[e].lr);
            marks[nm] = (nb_plot_mark){.x = (double)e + 1, .label = labels[nm]}, nm++;
        }
    nb_status s = plot_pair(h, path, "loss", 0, 3, nm, marks);
    if (s == NB_OK) s = plot_pair(h, acc, "accuracy", 1, 4, nm, marks);
    free(marks), free(labels);
    return s;
}

/* ---- one phase over a batcher --------------------------------------------------------------- */
enum { HOOK_BATCH_BEGIN, HOOK_BACKWARD, HOOK_EPOCH_END };

/* why a forward, loss or backward gave nothing: the context's error, else the thread's, else
 * a forward that returned NULL without saying why (an error, not a silent skipped batch) */
static nb_status ctx_failure(nb_ctx *ctx) {
    const nb_status s = nb_ctx_status(ctx);
    if (s != NB_OK) return nb_set_error(s, "%s", nb_ctx_error(ctx));
    if (nb_last_status() != NB_OK) return nb_last_status();
    return nb_set_error(NB_ERR_STATE, "fit: the forward function returned NULL without setting an error (nb_fit, nb_evaluate, nb_predict)");
}

static nb_status run_hooks(nb_fit_state *s, int hook);

static nb_status phase(nb_fit_state *s, nb_forward_fn forward, const void *model, nb_batcher *it, bool train,
                       nb_scores *sc) {
    nb_ctx *ctx = s->ctx;
    const nb_fit_opts *o = s->opts;
    const int64_t k = o && o->topk > 0 ? o->topk : 5;
    const bool was_train = nb_ctx_is_train(ctx), was_grad = nb_ctx_set_grad_enabled(ctx, train);
    nb_ctx_set_train(ctx, train);
    /* the confusion matrix is zeroed once the first batch shows its class count is right, so a
     * wrong num_classes is refused before anything is written */
    bool cm_zeroed = false;
    double loss_sum = 0;
    int64_t n = 0, top1 = 0, topk = 0, labelled = 0;
    bool classes = true;
    nb_status st = NB_OK;
    nb_batch b;
    nb_batcher_start(it, s->epoch);
    s->num_batches = nb_batcher_num_batches(it);
    while (st == NB_OK && nb_batcher_next(it, &b)) {
        if (b.n == 0) continue;
        s->batch = b.index;
        if (train && (st = run_hooks(s, HOOK_BATCH_BEGIN)) != NB_OK) break;
        if (train) nb_params_zero_grad(s->ps);
        if (!b.y && !(o && o->loss)) {
            st = nb_set_error(NB_ERR_NULL, "%s has no labels (y), which the default loss (cross entropy) needs; "
                                           "give labels or opts->loss",
                              train ? "fit: the training batcher" : "fit/evaluate: the evaluated batcher");
            break;
        }
        nb_tensor *out = forward ? forward(ctx, model, b.x) : nb_module_forward(ctx, model, b.x);
        nb_tensor *loss = !out ? NULL : o && o->loss ? o->loss(ctx, out, b.y) : nb_cross_entropy(ctx, out, b.y, NB_REDUCE_MEAN);
        if (!loss || (train && nb_backward(ctx, loss, NULL) != NB_OK)) {
            st = ctx_failure(ctx);
        } else if (train && ((s->loss = loss), (st = run_hooks(s, HOOK_BACKWARD)) != NB_OK || (st = nb_optim_step(s->opt)) != NB_OK)) {
        } else {
            s->step += train;
            loss_sum += nb_item(loss) * (double)b.n;
            n += b.n;
            classes = classes && out->ndim == 2 && b.y && b.y->dtype == NB_I64 && b.y->ndim == 1;
            if (classes) {
                if (sc->confusion && out->shape[1] != sc->num_classes)
                    st = nb_set_error(NB_ERR_SHAPE, "evaluate: %lld classes, confusion matrix for %lld",
                                      (long long)out->shape[1], (long long)sc->num_classes);
                else if (sc->confusion && !cm_zeroed)
                    memset(sc->confusion, 0, (size_t)(sc->num_classes * sc->num_classes) * sizeof *sc->confusion),
                        cm_zeroed = true;
                const int64_t c1 = nb_metrics_topk_correct(out, b.y, 1), ck = nb_metrics_topk_correct(out, b.y, k);
                if (c1 < 0 || ck < 0 || (sc->confusion && st == NB_OK && nb_metrics_confusion(out, b.y, sc->confusion)))
                    st = nb_last_status();
                top1 += c1, topk += ck, labelled += nb_metrics_labelled(b.y);
            }
        }
        s->loss = NULL;
        nb_ctx_reset(ctx);
    }
    nb_ctx_set_train(ctx, was_train);
    nb_ctx_set_grad_enabled(ctx, was_grad);
    if (sc->confusion && !cm_zeroed && st == NB_OK && sc->num_classes > 0) /* no batch: an empty matrix */
        memset(sc->confusion, 0, (size_t)(sc->num_classes * sc->num_classes) * sizeof *sc->confusion);
    sc->n = n;
    sc->loss = n ? loss_sum / (double)n : NAN;
    sc->accuracy = classes && labelled ? (double)top1 / (double)labelled : NAN;
    sc->topk_accuracy = classes && labelled ? (double)topk / (double)labelled : NAN;
    return st;
}

nb_status nb_evaluate(nb_ctx *ctx, nb_forward_fn forward, const void *model, nb_batcher *data,
                      const nb_fit_opts *opts, nb_scores *out) {
    if (!ctx || !model || !data || !out) return nb_set_error(NB_ERR_NULL, "evaluate: ctx, model, data or out is NULL");
    if (out->confusion && out->num_classes < 1)
        return nb_set_error(NB_ERR_VALUE, "evaluate: confusion matrix needs num_classes >= 1");
    if (nb_batcher_num_batches(data) == 0)
        return nb_set_error(NB_ERR_VALUE, "evaluate: the batcher yields no batch (no samples, or fewer than batch_size "
                            "with drop_last)");
    nb_fit_state s = {.ctx = ctx, .opts = opts};
    return phase(&s, forward, model, data, false, out);
}

nb_tensor *nb_predict(nb_ctx *ctx, nb_forward_fn forward, const void *model, const nb_tensor *x, int64_t batch_size) {
    if (!ctx || !model || !x) return nb_set_error(NB_ERR_NULL, "predict: ctx, model or x is NULL"), NULL;
    if (batch_size < 1) return nb_set_error(NB_ERR_VALUE, "predict: batch_size %lld must be >= 1", (long long)batch_size), NULL;
    nb_batcher *it = nb_batcher_new(x, NULL, &(nb_batch_opts){.batch_size = batch_size});
    if (!it) return NULL;
    nb_tensor *res = NULL;
    int64_t row = 0;  /* elements written */
    const bool was_train = nb_ctx_is_train(ctx);
    nb_ctx_set_train(ctx, false);
    NB_NO_GRAD(ctx) {
        if (x->ndim >= 1 && x->shape[0] == 0) { /* no batch: the model's output of no rows, (0, ...) */
            /* nb_from wants a data pointer even for no element: x itself stands in, 0 bytes are read */
            nb_tensor *xe = nb_from(ctx, x->dtype, x->ndim, x->shape, x->data ? x->data : (void *)x);
            nb_tensor *out = !xe ? NULL : forward ? forward(ctx, model, xe) : nb_module_forward(ctx, model, xe);
            if (out) res = nb_tensor_new(out->dtype == NB_F64 ? NB_F64 : NB_F32, out->ndim, out->shape);
            else ctx_failure(ctx);
            nb_ctx_reset(ctx);
        }
        nb_batch b;
        while (nb_batcher_next(it, &b)) {
            nb_tensor *out = forward ? forward(ctx, model, b.x) : nb_module_forward(ctx, model, b.x);
            if (out && !res) {
                int64_t shape[NB_MAX_DIMS];
                memcpy(shape, out->shape, sizeof shape);
                shape[0] = x->shape[0];
                res = nb_tensor_new(out->dtype == NB_F64 ? NB_F64 : NB_F32, out->ndim, shape); /* f64 models keep f64 */
            }
            const bool fits = out && res && out->ndim == res->ndim && out->shape[0] == b.n &&
                              out->numel * x->shape[0] == res->numel * b.n;
            if (!out) ctx_failure(ctx);
            else if (res && !fits) nb_set_error(NB_ERR_SHAPE, "predict: batches give outputs of different shapes");
            if (!fits || nb_copy_out(out, res->dtype, (char *)res->data + (size_t)row * nb_dtype_size(res->dtype)) != NB_OK) {
                nb_tensor_free(res), res = NULL;
                nb_ctx_reset(ctx);
                break;
            }
            row += out->numel;
            nb_ctx_reset(ctx);
        }
    }
    nb_ctx_set_train(ctx, was_train);
    nb_batcher_free(it);
    return res;
}

/* ---- built-in callbacks ------------------------------------------------------------------------ */
static nb_status cb_schedule(nb_fit_state *s, void *user) {
    (void)user;
    const nb_fit_opts *o = s->opts;
    double lr;
    switch (o->schedule) {
    case NB_SCHEDULE_NONE: return NB_OK;
    case NB_SCHEDULE_STEP: lr = nb_lr_step(s->base_lr, s->epoch, o->step_size, o->gamma); break;
    case NB_SCHEDULE_EXPONENTIAL: lr = nb_lr_exponential(s->base_lr, s->epoch, o->gamma); break;
    case NB_SCHEDULE_COSINE_WARMUP:
        lr = nb_lr_cosine_warmup(s->base_lr, s->step, o->warmup, o->epochs * s->num_batches, o->min_lr);
        break;
    default: return nb_set_error(NB_ERR_VALUE, "fit: unknown schedule %d", (int)o->schedule);
    }
    if (isnan(lr)) return nb_last_status();
    s->opt->hp.lr = lr;
    return NB_OK;
}

static nb_status cb_clip(nb_fit_state *s, void *user) {
    (void)user;
    const double type = s->opts->clip_norm_type == 0.0 ? 2.0 : s->opts->clip_norm_type;
    if (s->opts->clip_norm > 0 && nb_clip_grad_norm_p(s->ps, s->opts->clip_norm, type) < 0) return nb_last_status();
    return s->opts->clip_value > 0 ? nb_clip_grad_value(s->ps, s->opts->clip_value) : NB_OK;
}

static double monitored(const nb_fit_state *s) {
    return nb_epoch_value(&s->history->epochs[s->history->n - 1], s->opts->monitor);
}

static nb_status cb_early_stop(nb_fit_state *s, void *user) {
    (void)user;
    nb_early_stop *es = s->opts->early_stop;
    if (!es) return NB_OK;
    if (nb_early_stop_update(es, monitored(s))) {
        s->stop = true;
        if (es->restore_best) s->history->best_epoch = es->best_epoch;
    }
    return NB_OK;
}

static nb_status cb_plateau(nb_fit_state *s, void *user) {
    (void)user;
    if (!s->opts->plateau) return NB_OK;
    const double lr = nb_plateau_step(s->opts->plateau, monitored(s));
    if (isnan(lr)) return nb_last_status();
    s->opt->hp.lr = lr;
    return NB_OK;
}

/* checkpoint values: the plateau's state, then LOG_FIELDS per epoch */
#define PLATEAU_VALUES 5
static int64_t checkpoint_values(int64_t epochs) { return PLATEAU_VALUES + LOG_FIELDS * epochs; }

static nb_status cb_checkpoint(nb_fit_state *s, void *user) {
    (void)user;
    const nb_fit_opts *o = s->opts;
    const int64_t every = o->checkpoint_every > 0 ? o->checkpoint_every : 1;
    if (!o->checkpoint || ((s->epoch + 1) % every && s->epoch + 1 < o->epochs && !s->stop)) return NB_OK;
    nb_train_state *st = calloc(1, sizeof *st);
    if (!st) return nb_set_error(NB_ERR_NOMEM, "fit: out of memory");
    st->epoch = s->epoch + 1;
    st->rng = *nb_ctx_rng(s->ctx);
    st->n_values = checkpoint_values(s->history->n);
    const nb_plateau *p = o->plateau;
    if (p) memcpy(st->values, (double[]){p->lr, p->best, p->num_bad_epochs, p->cooldown_counter, (double)p->epoch}, sizeof(double) * PLATEAU_VALUES);
    for (int64_t e = 0; e < s->history->n; e++)
        for (int c = 0; c < LOG_FIELDS; c++) st->values[PLATEAU_VALUES + e * LOG_FIELDS + c] = *log_field(&s->history->epochs[e], c);
    const nb_status r = nb_checkpoint_save(o->checkpoint, s->ps, s->opt, o->early_stop, st);
    free(st);
    return r;
}

static nb_status resume(nb_fit_state *s) {
    const nb_fit_opts *o = s->opts;
    if (!o->resume || !o->checkpoint || access(o->checkpoint, F_OK) != 0) return NB_OK;
    nb_train_state *st = calloc(1, sizeof *st);
    if (!st) return nb_set_error(NB_ERR_NOMEM, "fit: out of memory");
    nb_status r = nb_checkpoint_load(o->checkpoint, s->ps, s->opt, o->early_stop, st);
    if (r == NB_OK && (st->epoch > o->epochs || st->n_values != checkpoint_values(st->epoch)))
        r = nb_set_error(NB_ERR_FORMAT, "fit: checkpoint %s holds %lld epochs and %lld values, not a run of at most %lld epochs",
                         o->checkpoint, (long long)st->epoch, (long long)st->n_values, (long long)o->epochs);
    if (r == NB_OK) {
        *nb_ctx_rng(s->ctx) = st->rng;
        nb_plateau *p = o->plateau;
        if (p) p->lr = st->values[0], p->best = st->values[1], p->num_bad_epochs = (int)st->values[2],
               p->cooldown_counter = (int)st->values[3], p->epoch = (int64_t)st->values[4];
        s->history->n = s->epoch = st->epoch;
        for (int64_t e = 0; e < st->epoch; e++) {
            s->history->epochs[e] = (nb_epoch_log){.epoch = e, .seconds = NAN, .train_seconds = NAN};
            for (int c = 0; c < LOG_FIELDS; c++) *log_field(&s->history->epochs[e], c) = st->values[PLATEAU_VALUES + e * LOG_FIELDS + c];
        }
        if (o->early_stop && o->early_stop->stopped) s->stop = true;
    }
    free(st);
    return r;
}

static nb_status cb_progress(nb_fit_state *s, void *user) {
    (void)user;
    FILE *f = s->opts->progress;
    if (!f) return NB_OK;
    const nb_epoch_log *e = &s->history->epochs[s->history->n - 1];
    const int64_t k = s->opts->topk > 0 ? s->opts->topk : 5;
    fprintf(f, "epoch %lld/%lld  loss %.4f", (long long)e->epoch + 1, (long long)s->opts->epochs, e->loss);
    if (!isnan(e->accuracy)) fprintf(f, "  accuracy %.4f  top%lld %.4f", e->accuracy, (long long)k, e->topk_accuracy);
    if (!isnan(e->val_loss)) fprintf(f, "  val_loss %.4f", e->val_loss);
    if (!isnan(e->val_accuracy)) fprintf(f, "  val_accuracy %.4f", e->val_accuracy);
    fprintf(f, "  lr %.2e  (%.1f s)%s\n", e->lr, e->seconds, s->stop ? "  stopping" : "");
    if (s->stop && s->history->best_epoch >= 0) fprintf(f, "best epoch %lld restored\n", (long long)s->history->best_epoch + 1);
    fflush(f);
    return NB_OK;
}

static nb_status cb_files(nb_fit_state *s, void *user) {
    (void)user;
    nb_status r = s->opts->csv ? nb_history_csv(s->history, s->opts->csv) : NB_OK;
    return r == NB_OK && s->opts->svg ? nb_history_svg(s->history, s->opts->svg) : r;
}

/* run order: the built-ins before the user's callbacks, those that save or show after them */
static const nb_callback builtin_first[] = {
    {.on_batch_begin = cb_schedule, .on_backward = cb_clip, .on_epoch_end = cb_early_stop},
    {.on_epoch_end = cb_plateau},
};
static const nb_callback builtin_last[] = {
    {.on_epoch_end = cb_checkpoint}, {.on_epoch_end = cb_progress}, {.on_epoch_end = cb_files},
};

static nb_status run_list(nb_fit_state *s, int hook, int n, const nb_callback *cbs) {
    for (int i = 0; i < n; i++) {
        nb_status (*fn)(nb_fit_state *, void *) =
            hook == HOOK_BATCH_BEGIN ? cbs[i].on_batch_begin : hook == HOOK_BACKWARD ? cbs[i].on_backward : cbs[i].on_epoch_end;
        nb_status r = fn ? fn(s, cbs[i].user) : NB_OK;
        if (r != NB_OK) return r;
    }
    return NB_OK;
}

static nb_status run_hooks(nb_fit_state *s, int hook) {
    nb_status r = run_list(s, hook, 2, builtin_first);
    if (r == NB_OK) r = run_list(s, hook, s->opts->n_callbacks, s->opts->callbacks);
    return r == NB_OK ? run_list(s, hook, 3, builtin_last) : r;
}

/* ---- the loop ---------------------------------------------------------------------------------- */
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

nb_status nb_fit(nb_ctx *ctx, nb_forward_fn forward, const void *model, nb_optim *opt, nb_batcher *train,
                 nb_history *history, const nb_fit_opts *opts) {
    if (history) memset(history, 0, sizeof *history), history->best_epoch = -1;
    if (!ctx || !model || !opt || !train || !history || !opts)
        return nb_set_error(NB_ERR_NULL, "fit: ctx, model, opt, train, history or opts is NULL");
    if (opts->epochs < 1) return nb_set_error(NB_ERR_VALUE, "fit: epochs %lld must be >= 1", (long long)opts->epochs);
    if (opts->checkpoint && checkpoint_values(opts->epochs) > NB_CHECKPOINT_MAX_VALUES)
        return nb_set_error(NB_ERR_VALUE, "fit: a checkpoint holds the history of at most %d epochs, not %lld",
                            (NB_CHECKPOINT_MAX_VALUES - PLATEAU_VALUES) / LOG_FIELDS, (long long)opts->epochs);
    if (opts->n_callbacks < 0 || (opts->n_callbacks && !opts->callbacks))
        return nb_set_error(NB_ERR_NULL, "fit: %d callbacks but no array", opts->n_callbacks);
    if (opts->plateau && opts->schedule != NB_SCHEDULE_NONE)
        return nb_set_error(NB_ERR_VALUE, "fit: a schedule and a plateau both set the learning rate; use one (or chain "
                            "them in an on_epoch_end callback)");
    /* the mode of what watches the metric must suit it: restoring the "best" of a minimised
     * accuracy brought back the worst weights */
    const bool acc = opts->monitor == NB_MONITOR_VAL_ACCURACY || opts->monitor == NB_MONITOR_ACCURACY;
    const nb_mode want = acc ? NB_MODE_MAX : NB_MODE_MIN;
    if ((opts->early_stop && opts->early_stop->mode != want) || (opts->plateau && opts->plateau->mode != want))
        return nb_set_error(NB_ERR_VALUE, "fit: the %s watches %s, whose mode is %s", opts->early_stop &&
                            opts->early_stop->mode != want ? "early stop" : "plateau", acc ? "an accuracy" : "a loss",
                            acc ? "NB_MODE_MAX" : "NB_MODE_MIN");
    if (nb_batcher_num_batches(train) == 0 || (opts->val && nb_batcher_num_batches(opts->val) == 0))
        return nb_set_error(NB_ERR_VALUE, "fit: the %s batcher yields no batch (no samples, or fewer than batch_size "
                            "with drop_last)", nb_batcher_num_batches(train) == 0 ? "training" : "validation");
    history->epochs = calloc((size_t)opts->epochs, sizeof *history->epochs);
    if (!history->epochs) return nb_set_error(NB_ERR_NOMEM, "fit: out of memory");
    nb_fit_state s = {.ctx = ctx, .opt = opt, .ps = opt->ps, .opts = opts, .history = history, .base_lr = opt->hp.lr};
    nb_status r = resume(&s);
    s.step = s.epoch * nb_batcher_num_batches(train);
    for (; r == NB_OK && !s.stop && s.epoch < opts->epochs; s.epoch++) {
        const double t0 = now();
        nb_scores tr = {0}, va = {.loss = NAN, .accuracy = NAN, .topk_accuracy = NAN};
        r = phase(&s, forward, model, train, true, &tr);
        const double t1 = now();
        if (r == NB_OK && opts->val) r = phase(&s, forward, model, opts->val, false, &va);
        if (r != NB_OK) break;
        history->epochs[history->n++] = (nb_epoch_log){
            .epoch = s.epoch, .loss = tr.loss, .accuracy = tr.accuracy, .topk_accuracy = tr.topk_accuracy,
            .val_loss = va.loss, .val_accuracy = va.accuracy, .val_topk_accuracy = va.topk_accuracy,
            .lr = opt->hp.lr, .seconds = now() - t0, .train_seconds = t1 - t0};
        r = run_hooks(&s, HOOK_EPOCH_END);
    }
    history->stopped = s.stop && history->n < opts->epochs;
    return r;
}
