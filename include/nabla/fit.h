/* nabla/fit.h — a training loop with callbacks (Keras's fit/evaluate/predict), and metrics.
 *
 * nb_fit runs epochs of: a train phase (train mode, one optimizer step per batch, nb_ctx_reset
 * after each), then, with a validation batcher, a validation phase (eval mode, no grad). Each
 * epoch's loss, accuracy and top-k accuracy (for (N, C) outputs and I64 labels) go to an
 * nb_history. The built-ins are switched on by fields of nb_fit_opts and run as callbacks of the
 * same kind as the user's (nb_callback), in this order: LR schedule, gradient clipping, early
 * stopping (restore-best), reduce-on-plateau, the user's callbacks (which may stop the run:
 * s->stop = true), then checkpoint, progress line, CSV history, SVG curves.
 * Deterministic: the batch order is the batcher's (seed, epoch), dropout draws from the context's
 * generator (seed it with nb_ctx_seed), and a checkpoint saves both, so a resumed run equals an
 * uninterrupted one with the same options (a schedule that depends on epochs, such as
 * cosine-with-warmup's length, follows the options of the resumed call: resuming with more
 * epochs changes its later learning rates). No malloc per step once the first steps have warmed
 * the context's arena.
 *
 * Example (a complete program, compiled by tests/test_headers.c):
 *
 *   static nb_status enough(nb_fit_state *s, void *user) {  // a callback of one's own
 *       if (s->history->epochs[s->history->n - 1].val_accuracy >= *(double *)user) s->stop = true;
 *       return NB_OK;
 *   }
 *   int main(void) {
 *       nb_tensor *x = nb_tensor_new(NB_F32, NB_SHAPE(200, 2)), *y = nb_tensor_new(NB_I64, NB_SHAPE(200));
 *       for (int i = 0; i < 200; i++) {  // two classes: the sign of x0 + x1
 *           float *xi = (float *)x->data + 2 * i;
 *           xi[0] = (float)(i % 7) - 3, xi[1] = (float)(i % 5) - 2.5f;
 *           ((int64_t *)y->data)[i] = xi[0] + xi[1] > 0;
 *       }
 *       nb_model *model = nb_model_new(1);
 *       nb_module *net = nb_linear_module(model, (nb_linear_opts){.in = 2, .out = 2});
 *       nb_ctx *ctx = nb_ctx_new();
 *       nb_hparams hp = nb_adam.defaults;
 *       hp.lr = 0.1;
 *       nb_optim *opt = nb_optim_new(&nb_adam, model->ps, &hp);
 *       nb_batcher *tr = nb_batcher_new(x, y, &(nb_batch_opts){.batch_size = 20, .shuffle = true, .seed = 1});
 *       nb_early_stop es;  // stop when the validation loss stalls for 3 epochs, keep the best weights
 *       nb_early_stop_init(&es, model->ps, NB_MODE_MIN, 3, 0, true);
 *       nb_history h;
 *       double target = 0.99;
 *       nb_status s = nb_fit(ctx, NULL, net, opt, tr, &h, &(nb_fit_opts){  // validation: here the training set
 *           .epochs = 20, .val = tr, .early_stop = &es, .schedule = NB_SCHEDULE_COSINE_WARMUP, .clip_norm = 1,
 *           .progress = stdout, .csv = "history.csv", .n_callbacks = 1,
 *           .callbacks = &(nb_callback){.on_epoch_end = enough, .user = &target}});
 *       nb_scores sc = {0};
 *       if (s == NB_OK) s = nb_evaluate(ctx, NULL, net, tr, NULL, &sc);  // sc.loss, sc.accuracy
 *       if (s != NB_OK) fprintf(stderr, "%s\n", nb_last_error());
 *       nb_history_free(&h), nb_early_stop_free(&es), nb_batcher_free(tr), nb_optim_free(opt);
 *       nb_ctx_free(ctx), nb_model_free(model), nb_tensor_free(x), nb_tensor_free(y);
 *       return s != NB_OK;
 *   }
 */
#ifndef NABLA_FIT_H
#define NABLA_FIT_H

#include "data.h"
#include "module.h"
#include "optim.h"
#include "regularize.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- metrics (no context, no allocation; logits (N, C) F32/F64 any strides, labels (N) I64) -- *
 * A row's prediction is its first largest logit (nb_argmax, where a NaN is larger than any
 * number: a diverged model is not scored as right); a label ranks r when r logits are larger or
 * equal and earlier (a stable descending sort), and is in the top k when r < k. Rows labelled
 * NB_METRICS_IGNORE (-100, PyTorch's ignore_index, which nb_cross_entropy skips by default) are
 * not counted anywhere (padding in sequence labelling). */
#define NB_METRICS_IGNORE (-100)
/* Rows whose label is in the top k (k = 1: correct predictions); -1 + error on bad input
 * (NB_ERR_NULL, NB_ERR_DTYPE, NB_ERR_SHAPE, NB_ERR_INDEX for a label outside [0, C) other than
 * NB_METRICS_IGNORE, NB_ERR_VALUE for k < 1). */
int64_t nb_metrics_topk_correct(const nb_tensor *logits, const nb_tensor *labels, int64_t k);
/* Rows with a label (not NB_METRICS_IGNORE): the denominator of the accuracies; -1 + error for
 * labels that are not (N) I64. */
int64_t nb_metrics_labelled(const nb_tensor *labels);
/* Fraction of labelled rows correct / with the label in the top k (torchmetrics
 * Accuracy(top_k=k)); NAN + error on bad input or no labelled rows. */
double nb_metrics_accuracy(const nb_tensor *logits, const nb_tensor *labels);
double nb_metrics_topk_accuracy(const nb_tensor *logits, const nb_tensor *labels, int64_t k);
/* Add the batch to a confusion matrix cm[true * C + predicted] (C = logits->shape[1] classes,
 * as sklearn's confusion_matrix): counts accumulate over calls; zero cm first. */
nb_status nb_metrics_confusion(const nb_tensor *logits, const nb_tensor *labels, int64_t *cm);
/* Per-class accuracy (recall) from a confusion matrix: acc[c] = cm[c][c] / sum_j cm[c][j], NAN
 * for a class without samples. */
nb_status nb_metrics_per_class_accuracy(const int64_t *cm, int64_t num_classes, double *acc);

/* ---- model, loss, scores ------------------------------------------------------------------ */
/* out = forward(ctx, model, x). Passing forward NULL to the functions below means model is an
 * nb_module run by nb_module_forward. */
typedef nb_tensor *(*nb_forward_fn)(nb_ctx *ctx, const void *model, nb_tensor *x);
/* Scalar loss of a batch's outputs against its targets (NULL: nb_cross_entropy, mean). */
typedef nb_tensor *(*nb_loss_fn)(nb_ctx *ctx, nb_tensor *out, nb_tensor *y);

typedef struct {
    int64_t n;                       /* samples seen */
    double loss;                     /* mean loss per sample (batch means weighted by batch size) */
    double accuracy, topk_accuracy;  /* NAN when outputs are not (N, C) with I64 labels */
    /* in (nb_evaluate): a num_classes^2 confusion matrix to fill (NULL: none), C must match */
    int64_t *confusion;
    int64_t num_classes;
} nb_scores;

/* One epoch of nb_fit. Validation fields are NAN without a validation batcher. */
typedef struct {
    int64_t epoch;                   /* 0-based */
    double loss, accuracy, topk_accuracy;
    double val_loss, val_accuracy, val_topk_accuracy;
    double lr;                       /* the learning rate of the epoch's last step */
    double seconds, train_seconds;   /* wall time of the epoch, of its train phase (not checkpointed) */
} nb_epoch_log;

/* What the early stopping, plateau and best-epoch marks watch. */
typedef enum { NB_MONITOR_VAL_LOSS = 0, NB_MONITOR_VAL_ACCURACY, NB_MONITOR_LOSS, NB_MONITOR_ACCURACY } nb_monitor;
double nb_epoch_value(const nb_epoch_log *e, nb_monitor m);

typedef struct {
    int64_t n;                       /* epochs run (including those before a resume) */
    nb_epoch_log *epochs;            /* owned; capacity opts->epochs */
    int64_t best_epoch;              /* epoch restored by early stopping, else -1 */
    bool stopped;                    /* ended before opts->epochs (early stopping or a callback) */
} nb_history;
void nb_history_free(nb_history *h);
/* CSV: header "epoch,loss,accuracy,topk_accuracy,val_loss,val_accuracy,val_topk_accuracy,lr",
 * one row per epoch (epochs from 1, %.6g, nan as "nan"). */
nb_status nb_history_csv(const nb_history *h, const char *path);
/* SVG: loss curves (train, validation) and accuracy curves in two files: path and path with
 * "_accuracy" inserted before ".svg". Both mark (nb_plot_mark) the restored best epoch
 * ("best epoch N", green) and each epoch whose learning rate differs from the previous one's
 * ("lr 0.05", grey). A plot with no finite value (no epoch yet, a regression model's accuracy, a
 * diverged loss) is written too, saying so: after NB_OK both files exist. */
nb_status nb_history_svg(const nb_history *h, const char *path);

/* ---- callbacks ------------------------------------------------------------------------------ */
typedef struct nb_fit_state {
    nb_ctx *ctx;
    nb_optim *opt;
    nb_params *ps;
    const struct nb_fit_opts *opts;
    int64_t epoch;                   /* 0-based, current */
    int64_t batch, num_batches;      /* in the epoch */
    int64_t step;                    /* optimizer steps so far, over all epochs */
    nb_tensor *loss;                 /* the batch's loss (on_backward) */
    nb_history *history;             /* epochs so far; at on_epoch_end the last is this one's */
    double base_lr;                  /* opt->hp.lr when the run started */
    bool stop;                       /* set to end the run after this epoch */
} nb_fit_state;

/* Any hook may be NULL; one that returns an error ends nb_fit with it. */
typedef struct nb_callback {
    nb_status (*on_batch_begin)(nb_fit_state *s, void *user);  /* before the forward pass */
    nb_status (*on_backward)(nb_fit_state *s, void *user);     /* gradients ready, before the step */
    nb_status (*on_epoch_end)(nb_fit_state *s, void *user);    /* after validation, history updated */
    void *user;
} nb_callback;

typedef enum { NB_SCHEDULE_NONE = 0, NB_SCHEDULE_STEP, NB_SCHEDULE_EXPONENTIAL, NB_SCHEDULE_COSINE_WARMUP } nb_schedule;

typedef struct nb_fit_opts {
    int64_t epochs;                  /* >= 1 */
    nb_batcher *val;                 /* validation batches, NULL: none */
    nb_loss_fn loss;                 /* NULL: cross entropy */
    int64_t topk;                    /* k of the top-k accuracy, 0: 5 */
    nb_monitor monitor;              /* for early stopping and plateau (default val_loss, NAN without
                                        val: use NB_MONITOR_LOSS then) */
    nb_early_stop *early_stop;       /* initialised by the caller, its mode suiting monitor (MAX for
                                        an accuracy, MIN for a loss; else NB_ERR_VALUE); the best
                                        weights come back only when it stops the run */
    nb_plateau *plateau;             /* reduce-on-plateau: lr = nb_plateau_step(monitor) per epoch
                                        (mode as early_stop's; not with a schedule: NB_ERR_VALUE) */
    /* LR schedule from the optimizer's lr at start (base): per epoch nb_lr_step(step_size, gamma)
     * or nb_lr_exponential(gamma); per step nb_lr_cosine_warmup(warmup steps, total = every step
     * of the run, min_lr) */
    nb_schedule schedule;
    int64_t step_size, warmup;
    double gamma, min_lr;
    double clip_norm, clip_value;    /* > 0: nb_clip_grad_norm / nb_clip_grad_value each step */
    double clip_norm_type;           /* clip_norm's p (nb_clip_grad_norm_p): 0 means 2; INFINITY: max |g| */
    const char *checkpoint;          /* nb_checkpoint_save every checkpoint_every epochs (0: 1) and at the end */
    int64_t checkpoint_every;
    bool resume;                     /* continue from checkpoint if the file exists */
    FILE *progress;                  /* one line per epoch */
    const char *csv, *svg;           /* rewritten every epoch: nb_history_csv / nb_history_svg */
    int n_callbacks;
    const nb_callback *callbacks;
} nb_fit_opts;

/* Train model (forward NULL: an nb_module) with opt over the batches of train, which must give
 * labels. *history is filled (free with nb_history_free; on error it holds the epochs done).
 * Errors: NB_ERR_NULL, NB_ERR_VALUE (epochs < 1, history longer than a checkpoint holds, a
 * training or validation batcher that yields no batch), the forward's or loss's error, the
 * callbacks', NB_ERR_IO / NB_ERR_FORMAT from files. */
nb_status nb_fit(nb_ctx *ctx, nb_forward_fn forward, const void *model, nb_optim *opt, nb_batcher *train,
                 nb_history *history, const nb_fit_opts *opts);
/* Loss and metrics over every batch of data in eval mode without grad (mode restored after);
 * opts supplies loss and topk (NULL: defaults). NB_ERR_VALUE when data yields no batch. */
nb_status nb_evaluate(nb_ctx *ctx, nb_forward_fn forward, const void *model, nb_batcher *data,
                      const nb_fit_opts *opts, nb_scores *out);
/* The outputs for every row of x (eval mode, no grad), in batches of batch_size, as a new
 * long-lived tensor (N, ...) (nb_tensor_free it): F64 when the outputs are F64, else F32. NULL
 * on error. */
nb_tensor *nb_predict(nb_ctx *ctx, nb_forward_fn forward, const void *model, const nb_tensor *x, int64_t batch_size);

#ifdef __cplusplus
}
#endif
#endif
