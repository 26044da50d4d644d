/* fashion_mlp — nabla's main example: an MLP trained on Fashion-MNIST with an L2 penalty (a
 * graph term), dropout, Adam and early stopping on a validation split, then evaluated on the
 * 10,000 test images.
 *
 *   fashion_mlp                                  # 784-256-128-10, the defaults below
 *   fashion_mlp --hidden 512,256 --dropout 0.3 --optimizer adamw --lr 2e-3 --epochs 40
 *   fashion_mlp --help
 *
 * Prints one line per epoch (and a progress bar on a terminal), writes the history as CSV and
 * the curves as SVG, and ends with the machine-readable line
 *   test_accuracy=0.XXXX samples_per_sec=N
 */
// ci-args: --subset 3000 --epochs 3 --hidden 64 --batch 32 --log ci_mlp_history.csv --plot ci_mlp_curves.svg --dot ci_mlp_graph.dot --save ci_mlp.safetensors --checkpoint ci_mlp.ckpt --min-accuracy 0.70
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "example_util.h"
#include "mlp_common.h"
#ifdef NB_HAVE_DIST
#include <nabla/dist.h>
#endif

typedef struct {
    int64_t hidden[MAX_LAYERS], nhidden;
    const char *activation, *optimizer, *schedule, *data, *save, *log, *plot, *dot, *checkpoint, *resume;
    double dropout, l2, l1, lr, lr_factor, min_accuracy;
    int64_t batch, subset, val, epochs, patience, threads, seed;
    bool distributed;
} options;

static const char *const ACTIVATIONS[] = {"relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "softplus", NULL};
static const char *const SCHEDULES[] = {"plateau", "cosine", "none", NULL};
static const char *const OPTIMIZERS[] = {"adam", "adamw", "sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adadelta", NULL};

/* The options through the examples' one parser (examples/example_util.h): the same flags,
 * ranges and messages as every other example. false: a bad argument (the parser said why). */
static bool parse_args(int argc, char **argv, options *o) {
    *o = (options){.hidden = {256, 128}, .nhidden = 2, .activation = "relu", .optimizer = "adam", .schedule = "plateau",
                   .lr_factor = 0.5, .dropout = 0.2, .l2 = 1e-4, .lr = 1e-3, .batch = 64, .epochs = 30, .patience = 3,
                   .seed = 1, .val = -1, .log = "out/fashion_mlp_history.csv", .plot = "out/fashion_mlp_curves.svg"};
    ex_enum act = {&o->activation, ACTIVATIONS}, opt = {&o->optimizer, OPTIMIZERS}, sch = {&o->schedule, SCHEDULES};
    ex_ints hid = {o->hidden, &o->nhidden, MAX_LAYERS};
    const ex_opt opts[] = {
        {"--hidden", EX_INTS, &hid, 1, 65536, "hidden layer sizes, e.g. 512,256 (default 256,128)"},
        {"--activation", EX_ENUM, &act, 0, 0, "activation of the hidden layers"},
        {"--dropout", EX_REAL, &o->dropout, 0, 0.999, "dropout probability after each hidden layer"},
        {"--l2", EX_REAL, &o->l2, 0, 1e3, "L2 penalty lambda*sum(w^2) on weights (not biases)"},
        {"--l1", EX_REAL, &o->l1, 0, 1e3, "L1 penalty lambda*sum|w| on weights"},
        {"--optimizer", EX_ENUM, &opt, 0, 0, "optimizer"},
        EX_LR(&o->lr, "learning rate"),
        {"--schedule", EX_ENUM, &sch, 0, 0,
         "learning-rate schedule (plateau: times --lr-factor when the validation loss stops improving; "
         "cosine: decay over --epochs)"},
        {"--lr-factor", EX_REAL, &o->lr_factor, 1e-3, 0.999, "factor of the plateau schedule"},
        EX_BATCH(&o->batch),
        EX_EPOCHS(&o->epochs),
        {"--patience", EX_INT, &o->patience, 0, 100000, "early stopping: epochs without validation-loss improvement"},
        EX_THREADS(&o->threads),
        EX_SEED(&o->seed),
        EX_DATA(&o->data),
        {"--val", EX_INT, &o->val, -1, 59999, "validation images held out of the training images (-1: 5000, or a tenth of --subset)"},
        EX_SUBSET(&o->subset),
        {"--save", EX_STR, &o->save, 0, 0, "write the final parameters as safetensors"},
        {"--log", EX_STR, &o->log, 0, 0, "training history CSV"},
        {"--plot", EX_STR, &o->plot, 0, 0, "loss/accuracy curves SVG"},
        {"--dot", EX_STR, &o->dot, 0, 0, "Graphviz DOT of one training step's graph"},
        {"--checkpoint", EX_STR, &o->checkpoint, 0, 0, "write a resumable checkpoint after every epoch"},
        {"--resume", EX_STR, &o->resume, 0, 0, "continue a run from its checkpoint (same options)"},
        {"--min-accuracy", EX_REAL, &o->min_accuracy, 0, 1, "exit with status 1 if the test accuracy is below this"},
        {"--distributed", EX_FLAG, &o->distributed, 0, 0, "data-parallel over MPI (run under mpirun)"},
    };
    if (!ex_parse(argc, argv, "fashion_mlp", opts, (int)(sizeof opts / sizeof opts[0]))) return false;
    if (o->subset && o->subset < 100) return fprintf(stderr, "fashion_mlp: --subset: '%lld' is below 100\n", (long long)o->subset), false;
    if (o->val == 0) return fprintf(stderr, "fashion_mlp: --val: 0 leaves early stopping no validation image\n"), false;
    return true;
}

static const nb_optim_def *optimizer_by_name(const char *s) {
    static const struct { const char *name; const nb_optim_def *def; } table[] = {
        {"adam", &nb_adam},         {"adamw", &nb_adamw},     {"sgd", &nb_sgd},         {"momentum", &nb_momentum},
        {"nesterov", &nb_nesterov}, {"rmsprop", &nb_rmsprop}, {"adagrad", &nb_adagrad}, {"adadelta", &nb_adadelta}};
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (!strcmp(s, table[i].name)) return table[i].def;
    return NULL;
}

/* one line, under 80 columns: epoch, batches done, loss, rate, time left in the epoch */
static void progress(int64_t epoch, int64_t epochs, int64_t done, int64_t total, double loss, double rate,
                     double elapsed) {
    const int width = 20;
    const int fill = (int)(width * done / (total ? total : 1));
    const double eta = done > 0 ? elapsed * (double)(total - done) / (double)done : 0;
    fprintf(stderr, "\r%3lld/%-3lld [%.*s%s%*s] %5lld/%-5lld loss %.4f %6.0f/s ETA %3.0fs", (long long)epoch,
            (long long)epochs, fill, "====================", fill < width ? ">" : "", fill < width ? width - fill - 1 : 0, "",
            (long long)done, (long long)total, loss, rate, eta);
    fflush(stderr);
}

/* false when an output could not be written (the run then exits non-zero) */
static bool write_history(const options *o, int n, const double *tl, const double *vl, const double *va, const double *lr) {
    bool ok = true;
    if (o->log) {
        FILE *f = fopen(o->log, "w");
        if (!f) {
            fprintf(stderr, "fashion_mlp: cannot write %s\n", o->log);
            ok = false;
        } else {
            fprintf(f, "epoch,train_loss,val_loss,val_accuracy,lr\n");
            for (int i = 0; i < n; i++) fprintf(f, "%d,%.6f,%.6f,%.6f,%.6g\n", i + 1, tl[i], vl[i], va[i], lr[i]);
            if (fclose(f) != 0) fprintf(stderr, "fashion_mlp: cannot write %s\n", o->log), ok = false;
        }
    }
    if (o->plot && n > 0) {
        nb_series s[3] = {{"train loss", NULL, tl, n}, {"validation loss", NULL, vl, n}, {"validation accuracy", NULL, va, n}};
        if (nb_plot_svg(o->plot, "fashion_mlp", "epoch", "loss / accuracy", 3, s) != NB_OK)
            fprintf(stderr, "fashion_mlp: %s\n", nb_last_error()), ok = false;
    }
    return ok;
}

#define CHECK(cond)                                                                                    \
    do {                                                                                               \
        if (!(cond)) {                                                                                 \
            fprintf(stderr, "fashion_mlp: %s\n", nb_ctx_status(ctx) ? nb_ctx_error(ctx) : nb_last_error()); \
            goto done;                                                                                 \
        }                                                                                              \
    } while (0)

int main(int argc, char **argv) {
    options o;
    if (!parse_args(argc, argv, &o)) return 2;
    const char *outputs[] = {o.log, o.plot, o.dot, o.save, o.checkpoint};
    for (size_t i = 0; i < sizeof outputs / sizeof *outputs; i++)
        if (!ex_prepare_output("fashion_mlp", outputs[i])) return 2;
    if (o.threads) nb_set_num_threads(o.threads);

    int rank = 0, world = 1;
#ifdef NB_HAVE_DIST
    nb_dist *dist = NULL;
#else
    if (o.distributed) {
        fprintf(stderr, "fashion_mlp: built without MPI; install libopenmpi-dev and rebuild for --distributed\n");
        return 2;
    }
#endif
    int rc = 1;
    bool outputs_failed = false; /* a file written during training (graph, checkpoint) could not be */
    nb_ctx *ctx = nb_ctx_new();
    nb_params *ps = nb_params_new();
    nb_optim *opt = NULL;
    nb_batcher *it = NULL;
    nb_early_stop es = {0};
    nb_mnist d = {0};
    nb_tensor *xtr = NULL, *ytr = NULL, *xva = NULL, *yva = NULL;
    double *hist = NULL;
    CHECK(ctx && ps);

    /* data: standardized with the training set's mean/std; a validation split held out */
    nb_image_opts io = {.standardize = true};
    CHECK(nb_fashion_mnist_load(o.data, &io, &d) == NB_OK);
    nb_tensor *train_x = d.train_x, *train_y = d.train_y;
    if (o.subset) {
        int64_t *first = malloc((size_t)o.subset * sizeof *first);
        CHECK(first);
        for (int64_t i = 0; i < o.subset; i++) first[i] = i;
        train_x = nb_take_rows(d.train_x, first, o.subset);
        train_y = nb_take_rows(d.train_y, first, o.subset);
        free(first);
        CHECK(train_x && train_y);
    }
    /* the default holds out 5000, or a tenth of a subset; a --val given is taken as it is */
    const int64_t n_train = train_x->shape[0];
    if (o.val < 0) o.val = o.subset ? o.subset / 10 : 5000;
    if (o.val >= n_train) {
        fprintf(stderr, "fashion_mlp: --val %lld leaves no training image of %lld\n", (long long)o.val, (long long)n_train);
        goto done;
    }
    CHECK(nb_split(train_x, train_y, o.val, o.seed, &xtr, &ytr, &xva, &yva) == NB_OK);
    /* the split made copies: the loaded training set is not needed any more (179 MiB as f32) */
    if (train_x != d.train_x) nb_tensor_free(train_x), nb_tensor_free(train_y);
    nb_tensor_free(d.train_x), nb_tensor_free(d.train_y);
    d.train_x = d.train_y = NULL;

    /* model: 784 -> hidden... -> 10, PyTorch's Linear initialisation from the seed */
    mlp m;
    nb_rng init = nb_rng_new(o.seed);
    CHECK(mlp_init(&m, ps, xtr->shape[1], o.hidden, o.nhidden, 10, o.activation, o.dropout, &init) == NB_OK);
#ifdef NB_HAVE_DIST
    if (o.distributed) {
        /* after the last nb_params_add: the gradient buckets are planned over all parameters */
        CHECK(dist = nb_dist_init(MPI_COMM_WORLD, ps, NULL));
        rank = nb_dist_rank(dist), world = nb_dist_size(dist);
        if (o.batch % world) {
            if (rank == 0) fprintf(stderr, "fashion_mlp: --batch %lld is not divisible by %d ranks\n", (long long)o.batch, world);
            goto done;
        }
    }
    if (dist) CHECK(nb_dist_bcast_params(dist, ps) == NB_OK);
#endif
    nb_hparams hp = optimizer_by_name(o.optimizer)->defaults;
    hp.lr = o.lr;
    CHECK(opt = nb_optim_new(optimizer_by_name(o.optimizer), ps, &hp));
    CHECK(nb_early_stop_init(&es, ps, NB_MODE_MIN, o.patience, 0.0, true) == NB_OK);
    /* plateau: halve the lr as soon as an epoch does not improve the validation loss; early
     * stopping (patience epochs) then ends training once even smaller steps stop helping */
    nb_plateau plateau;
    CHECK(nb_plateau_init(&plateau, NB_MODE_MIN, o.lr) == NB_OK);
    plateau.factor = o.lr_factor;
    plateau.patience = 0;
    CHECK(it = nb_batcher_new(xtr, ytr, &(nb_batch_opts){.batch_size = o.batch / world, .shuffle = true, .seed = o.seed,
                                                         .rank = rank, .world_size = world}));
    nb_ctx_seed(ctx, (o.seed + (uint64_t)rank * 0x9e3779b97f4a7c15ull) ^ 0xd1b54a32d192ed03ull); /* own dropout masks per rank */

    hist = calloc((size_t)o.epochs * 4, sizeof *hist);
    CHECK(hist);
    double *h_tl = hist, *h_vl = hist + o.epochs, *h_va = hist + 2 * o.epochs, *h_lr = hist + 3 * o.epochs;
    static nb_train_state ts;  /* large: not on the stack */
    if (o.resume) {
#ifdef NB_HAVE_DIST
        if (dist) CHECK(nb_dist_checkpoint_load(dist, o.resume, ps, opt, NULL, &es, &ts) == NB_OK); /* rank 0 reads */
        else
#endif
            CHECK(nb_checkpoint_load(o.resume, ps, opt, &es, &ts) == NB_OK);
        *nb_ctx_rng(ctx) = ts.rng;
        /* values: the plateau schedule's state, then 4 history values per epoch */
        if (ts.n_values >= 5) {
            plateau.lr = ts.values[0], plateau.best = ts.values[1], plateau.num_bad_epochs = (int)ts.values[2];
            plateau.cooldown_counter = (int)ts.values[3], plateau.epoch = (int64_t)ts.values[4];
        }
        for (int64_t i = 0; i < ts.epoch && i < o.epochs && 5 + 4 * i + 3 < ts.n_values; i++) {
            const double *row = ts.values + 5 + 4 * i;
            h_tl[i] = row[0], h_vl[i] = row[1], h_va[i] = row[2], h_lr[i] = row[3];
        }
        if (rank == 0) printf("resumed from %s after epoch %lld\n", o.resume, (long long)ts.epoch);
    }
    if (rank == 0)
        printf("fashion_mlp: %lld train / %lld validation / %lld test images, %lld parameters, %s lr %g, batch %lld, %d thread(s)%s\n",
               (long long)xtr->shape[0], (long long)xva->shape[0], (long long)d.test_x->shape[0], (long long)nb_params_numel(ps),
               o.optimizer, o.lr, (long long)o.batch, nb_get_num_threads(), world > 1 ? " per rank" : "");

    const bool bar = rank == 0 && isatty(STDERR_FILENO);
    double train_time = 0;
    int64_t trained = 0, nbatches = nb_batcher_num_batches(it);
    int epoch = (int)ts.epoch;
    for (; epoch < o.epochs && !es.stopped; epoch++) {
        double t0 = ex_now(), lsum = 0;
        int64_t seen = 0;
        nb_batch b;
        nb_ctx_set_train(ctx, true);
        nb_batcher_start(it, epoch);
        /* distributed: each rank's dropout masks from (seed, rank, epoch), so a resumed run
         * draws what the uninterrupted one did without saving every rank's generator */
        if (world > 1)
            nb_ctx_seed(ctx, (o.seed + (uint64_t)rank * 0x9e3779b97f4a7c15ull + (uint64_t)epoch * 0xbf58476d1ce4e5b9ull) ^
                                 0xd1b54a32d192ed03ull);
        while (nb_batcher_next(it, &b)) {
            nb_ctx_reset(ctx);
            nb_params_zero_grad(ps);
            nb_tensor *loss = nb_cross_entropy(ctx, forward(ctx, &m, b.x), b.y, NB_REDUCE_MEAN);
            if (o.l2 > 0) loss = nb_add(ctx, loss, nb_l2_penalty_params(ctx, ps, NULL, o.l2));
            if (o.l1 > 0) loss = nb_add(ctx, loss, nb_l1_penalty_params(ctx, ps, NULL, o.l1));
            CHECK(loss);
#ifdef NB_HAVE_DIST
            if (dist) CHECK(nb_dist_backward(dist, ctx, loss) == NB_OK);
            else
#endif
            { /* each parameter is updated as soon as its gradient is final, while it is in cache;
                 nb_optim_step below finishes the step (same bits as stepping after backward) */
                CHECK(nb_optim_step_on_ready(opt, ctx) == NB_OK);
                CHECK(nb_backward(ctx, loss, NULL) == NB_OK);
            }
            if (o.dot && epoch == ts.epoch && seen == 0 && rank == 0) {
                FILE *f = fopen(o.dot, "w");
                const bool ok = f && nb_graph_dot(ctx, loss, f) == NB_OK;
                if ((f && fclose(f) != 0) || !ok) {
                    fprintf(stderr, "fashion_mlp: cannot write %s: %s\n", o.dot, f ? nb_last_error() : strerror(errno));
                    outputs_failed = true;
                }
            }
            CHECK(nb_optim_step(opt) == NB_OK);
            lsum += nb_item(loss) * (double)b.n;
            seen += b.n;
            if (bar && (b.index % 20 == 0 || b.index + 1 == nbatches))
                progress(epoch + 1, o.epochs, b.index + 1, nbatches, lsum / (double)seen,
                         (double)seen * world / (ex_now() - t0), ex_now() - t0);
        }
        double dt = ex_now() - t0;
        train_time += dt;
        trained += seen;
        double train_loss = lsum / (double)seen, val_loss, val_acc;
#ifdef NB_HAVE_DIST
        if (dist) {
            double s[2] = {lsum, (double)seen};
            CHECK(nb_dist_sum(dist, s, 2) == NB_OK);
            train_loss = s[0] / s[1];
        }
#endif
        CHECK(evaluate(ctx, &m, xva, yva, &val_loss, &val_acc) == NB_OK);
        h_tl[epoch] = train_loss, h_vl[epoch] = val_loss, h_va[epoch] = val_acc, h_lr[epoch] = opt->hp.lr;
        bool stop = nb_early_stop_update(&es, val_loss);
        if (!strcmp(o.schedule, "plateau")) opt->hp.lr = nb_plateau_step(&plateau, val_loss);
        else if (!strcmp(o.schedule, "cosine")) opt->hp.lr = nb_lr_cosine_warmup(o.lr, epoch + 1, 0, o.epochs, 0.0);
        if (bar) fprintf(stderr, "\r%*s\r", 80, "");
        if (rank == 0)
            printf("epoch %3d/%d  train_loss %.4f  val_loss %.4f  val_acc %.4f  lr %.2e  %7.0f samples/s  %5.1f s%s\n",
                   epoch + 1, (int)o.epochs, train_loss, val_loss, val_acc, h_lr[epoch], (double)seen * world / dt, dt,
                   es.best_epoch == epoch ? "  *" : "");
        fflush(stdout);
        if (o.checkpoint) { /* distributed: every rank takes part, rank 0 writes */
            ts.epoch = epoch + 1;
            ts.rng = *nb_ctx_rng(ctx);
            const double sched[5] = {plateau.lr, plateau.best, plateau.num_bad_epochs, plateau.cooldown_counter,
                                     (double)plateau.epoch};
            ts.n_values = 0;
            for (int k = 0; k < 5; k++) ts.values[ts.n_values++] = sched[k];
            for (int i = 0; i <= epoch && ts.n_values + 4 <= NB_CHECKPOINT_MAX_VALUES; i++) {
                const double row[4] = {h_tl[i], h_vl[i], h_va[i], h_lr[i]};
                for (int k = 0; k < 4; k++) ts.values[ts.n_values++] = row[k];
            }
            nb_status saved;
#ifdef NB_HAVE_DIST
            if (dist) saved = nb_dist_checkpoint_save(dist, o.checkpoint, ps, opt, NULL, &es, &ts);
            else
#endif
                saved = nb_checkpoint_save(o.checkpoint, ps, opt, &es, &ts);
            if (saved != NB_OK && rank == 0) fprintf(stderr, "fashion_mlp: %s\n", nb_last_error());
            outputs_failed |= saved != NB_OK;
        }
        if (stop && rank == 0)
            printf("early stopping: no improvement for %d epochs; restoring epoch %lld (val_loss %.4f)\n", (int)o.patience,
                   (long long)es.best_epoch + 1, es.best);
    }
    if (!es.stopped) CHECK(nb_early_stop_restore(&es) == NB_OK);

    double test_loss, test_acc;
    CHECK(evaluate(ctx, &m, d.test_x, d.test_y, &test_loss, &test_acc) == NB_OK);
    bool outputs_ok = true;
    if (rank == 0) {
        outputs_ok = write_history(&o, epoch, h_tl, h_vl, h_va, h_lr);
        if (o.save) {
            /* what a user of the file needs to run it, e.g. from PyTorch: the layers
             * (fc1..fcN, PyTorch Linear layout), the activation between them, and the input
             * scaling x = (pixel/255 - mean) / std on flattened 28x28 images */
            char layers[256] = "784", mean[32], std[32];
            for (int l = 0; l < o.nhidden; l++)
                snprintf(layers + strlen(layers), sizeof layers - strlen(layers), ",%lld", (long long)o.hidden[l]);
            snprintf(layers + strlen(layers), sizeof layers - strlen(layers), ",10");
            snprintf(mean, sizeof mean, "%.9g", io.mean);
            snprintf(std, sizeof std, "%.9g", io.std);
            const char *meta[] = {"model", "mlp", "layers", layers, "activation", o.activation, "input",
                                  "flattened 28x28 image, pixel/255", "input_mean", mean, "input_std", std,
                                  "output", "logits of the 10 Fashion-MNIST classes", NULL};
            if (nb_safetensors_save_params(ps, o.save, meta) != NB_OK)
                fprintf(stderr, "fashion_mlp: %s\n", nb_last_error()), outputs_ok = false;
        }
        printf("test_loss=%.4f\n", test_loss);
        printf("test_accuracy=%.4f samples_per_sec=%.0f\n", test_acc,
               train_time > 0 ? (double)trained * world / train_time : 0.0);
    }
    rc = test_acc >= o.min_accuracy && outputs_ok && !outputs_failed ? 0 : 1;
    if (test_acc < o.min_accuracy && rank == 0)
        fprintf(stderr, "fashion_mlp: test accuracy %.4f is below --min-accuracy %.4f\n", test_acc, o.min_accuracy);

done:
    free(hist);
    nb_early_stop_free(&es);
    nb_batcher_free(it);
    nb_optim_free(opt);
    nb_tensor_free(xtr), nb_tensor_free(ytr), nb_tensor_free(xva), nb_tensor_free(yva);
    nb_mnist_free(&d);
#ifdef NB_HAVE_DIST
    nb_dist_free(dist);
#endif
    nb_params_free(ps);
    nb_ctx_free(ctx);
    return rc;
}
