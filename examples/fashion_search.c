/* fashion_search — hyperparameter search for the Fashion-MNIST MLP: random search (or a grid)
 * over learning rate, batch size, weight decay and dropout, scored on a validation split or by
 * k-fold cross-validation on a subset. Bad trials are pruned (successive halving: after 1, 3,
 * 9, ... epochs only the best third goes on; with --brackets, Hyperband's brackets that start
 * pruning later) and trials run in parallel worker processes with the same result as one after
 * another. Writes the leaderboard (CSV) and a picture (SVG). bench/search_bench.py compares
 * random search, ASHA and Hyperband with it.
 *
 *   fashion_search                         # 12 random trials, 9 epochs at most, pruned, 2 workers
 *   fashion_search --grid --folds 3 --eta 0  # the 16-point grid, 3-fold cross-validation
 */
// ci-args: --subset 1200 --trials 4 --epochs 3 --hidden 32 --workers 2 --out ci_search.csv
#include <errno.h>
#include <stdlib.h>

#include "example_util.h"

typedef struct {
    nb_tensor *x, *y;  /* the subset searched over */
    int epochs;
    int64_t hidden;
    uint64_t seed;
} search_data;

/* Train one configuration with nb_fit on the training rows and return the accuracy on the
 * held-out rows. The search's callback reports each epoch's validation accuracy and stops the
 * run when the trial is pruned. */
static nb_status train_and_score(const nb_hp_config *cfg, int fold, int k, void *user, double *score) {
    const search_data *sd = user;
    const int64_t n = sd->x->shape[0];
    int64_t *tr = malloc(2 * (size_t)n * sizeof *tr), *va = tr ? tr + n : NULL, ntr, nva;
    if (!tr) return NB_ERR_NOMEM;
    /* k folds, or with k = 1 a holdout of a fifth; the same rows in every trial (the search's seed) */
    nb_status st = nb_kfold_split(n, k, fold, sd->seed, tr, &ntr, va, &nva);
    if (st != NB_OK) return free(tr), st;
    nb_tensor *xtr = nb_take_rows(sd->x, tr, ntr), *ytr = nb_take_rows(sd->y, tr, ntr);
    nb_tensor *xva = nb_take_rows(sd->x, va, nva), *yva = nb_take_rows(sd->y, va, nva);
    free(tr);

    nb_model *model = nb_model_new(cfg->seed); /* initialisation, batch order, dropout: the trial's seed */
    nb_module *net = nb_sequential(model, "mlp", NB_MODULES(
        nb_linear_module(model, (nb_linear_opts){.in = 784, .out = sd->hidden}),
        nb_relu_module(model, NULL),
        nb_dropout_module(model, NULL, nb_hp_get(cfg, "dropout")),
        nb_linear_module(model, (nb_linear_opts){.in = sd->hidden, .out = 10})));
    nb_hparams hp = nb_adamw.defaults;
    hp.lr = nb_hp_get(cfg, "lr"), hp.weight_decay = nb_hp_get(cfg, "wd");
    nb_optim *opt = nb_optim_new(&nb_adamw, model->ps, &hp);
    nb_batcher *train = nb_batcher_new(xtr, ytr, &(nb_batch_opts){.batch_size = (int64_t)nb_hp_get(cfg, "batch"),
                                                                  .shuffle = true, .seed = cfg->seed});
    nb_batcher *val = nb_batcher_new(xva, yva, &(nb_batch_opts){.batch_size = 500});
    nb_ctx *ctx = nb_ctx_new();
    if (ctx) nb_ctx_seed(ctx, cfg->seed);
    nb_callback report = nb_search_callback(cfg);
    nb_history h = {0};
    if (!(net && opt && train && val && ctx && xtr && ytr && xva && yva))
        st = net || !model ? nb_last_status() : model->status; /* the first construction error */
    if (st == NB_OK)
        st = nb_fit(ctx, NULL, net, opt, train, &h, &(nb_fit_opts){.epochs = sd->epochs, .val = val,
                    .monitor = NB_MONITOR_VAL_ACCURACY, .n_callbacks = 1, .callbacks = &report});
    if (st == NB_OK) *score = h.epochs[h.n - 1].val_accuracy; /* of the last epoch run */
    nb_history_free(&h);
    nb_ctx_free(ctx), nb_batcher_free(train), nb_batcher_free(val), nb_optim_free(opt), nb_model_free(model);
    nb_tensor_free(xtr), nb_tensor_free(ytr), nb_tensor_free(xva), nb_tensor_free(yva);
    return st;
}

/* One line per finished trial. */
static void progress(const nb_search_progress *p, void *user) {
    (void)user;
    const nb_hp_config *c = &p->result->cfg;
    printf("trial %d/%d  lr %.2e  batch %3g  wd %.1e  dropout %.2f  accuracy %.4f after %lld epoch(s)%s  (best %.4f, %.0f s)\n",
           p->trial + 1, p->n_trials, c->values[0], c->values[1], c->values[2], c->values[3], p->result->score,
           (long long)p->result->n_epochs, p->result->pruned ? ", pruned" : "", p->best->score, p->elapsed);
    fflush(stdout);
}

int main(int argc, char **argv) {
    int64_t subset = 6000, trials = 12, folds = 0, epochs = 9, hidden = 128, seed = 1, threads = 0, eta = 3, brackets = 0,
            workers = 2;
    bool grid = false;
    const char *data = NULL, *out = "out/fashion_search.csv";
    const ex_opt opts[] = {
        {"--subset", EX_INT, &subset, 100, 60000, "training images searched over"},
        {"--trials", EX_INT, &trials, 1, 10000, "configurations tried (random search)"},
        {"--grid", EX_FLAG, &grid, 0, 0, "grid search instead of random"},
        {"--folds", EX_INT, &folds, 0, 20, "K-fold cross-validation when K > 1 (else a holdout)"},
        {"--epochs", EX_INT, &epochs, 1, 100000, "epochs of a trial that is not pruned"},
        {"--eta", EX_INT, &eta, 0, 100, "pruning: 1/eta of the trials go on at each rung (0: no pruning, else >= 2)"},
        {"--brackets", EX_INT, &brackets, 0, 16, "Hyperband: brackets of successive halving (0 or 1: one, ASHA)"},
        {"--workers", EX_INT, &workers, 1, 256, "trials run in parallel processes"},
        {"--hidden", EX_INT, &hidden, 1, 65536, "units of the hidden layer"},
        EX_SEED(&seed),
        EX_THREADS(&threads),
        EX_DATA(&data),
        {"--out", EX_STR, &out, 0, 0, "leaderboard CSV (the SVG next to it)"},
    };
    if (!ex_parse(argc, argv, "fashion_search", opts, (int)(sizeof opts / sizeof opts[0]))) return 2;
    if (eta == 1) return fprintf(stderr, "fashion_search: --eta: 1 keeps every trial (0: no pruning, else >= 2)\n"), 2;
    if (!ex_prepare_output("fashion_search", out)) return 2;
    if (threads) nb_set_num_threads((int)threads);

    nb_mnist d;
    nb_image_opts io = {.standardize = true};
    if (nb_fashion_mnist_load(data, &io, &d) != NB_OK) {
        fprintf(stderr, "fashion_search: %s\n", nb_last_error());
        return 1;
    }
    int64_t *first = malloc((size_t)subset * sizeof *first);
    for (long i = 0; first && i < subset; i++) first[i] = i;
    search_data sd = {nb_take_rows(d.train_x, first, subset), nb_take_rows(d.train_y, first, subset), (int)epochs, hidden,
                      (uint64_t)seed};
    free(first);
    nb_mnist_free(&d);

    static const double lr_grid[] = {1e-3, 3e-3}, batch_grid[] = {64, 128}, wd_grid[] = {1e-4, 1e-2},
                        dropout_grid[] = {0.1, 0.3}, batches[] = {32, 64, 128};
    nb_hp_space random_space[] = {{"lr", NB_HP_LOG_UNIFORM, 1e-4, 3e-3, 0, NULL},
                                  {"batch", NB_HP_CHOICE, 0, 0, 3, batches},
                                  {"wd", NB_HP_LOG_UNIFORM, 1e-5, 1e-1, 0, NULL},
                                  {"dropout", NB_HP_UNIFORM, 0.0, 0.5, 0, NULL}};
    nb_hp_space grid_space[] = {{"lr", NB_HP_CHOICE, 0, 0, 2, lr_grid},
                                {"batch", NB_HP_CHOICE, 0, 0, 2, batch_grid},
                                {"wd", NB_HP_CHOICE, 0, 0, 2, wd_grid},
                                {"dropout", NB_HP_CHOICE, 0, 0, 2, dropout_grid}};
    nb_search_opts so = {.space = grid ? grid_space : random_space, .n_hp = 4, .random = !grid, .n_trials = (int)trials,
                         .k_folds = (int)folds, .seed = (uint64_t)seed, .maximize = true, .progress = progress,
                         .prune_eta = folds > 1 ? 0 : (int)eta, .prune_brackets = eta ? (int)brackets : 0,
                         .workers = (int)workers};
    printf("fashion_search: %s search, %lld configurations, %s on %lld images, %lld epoch(s) at most, %s, %lld worker(s)\n",
           grid ? "grid" : "random", (long long)(grid ? nb_search_grid_size(&so) : trials),
           folds > 1 ? "k-fold cross-validation" : "a holdout of a fifth", (long long)subset, (long long)epochs,
           so.prune_eta ? "pruned" : "not pruned", (long long)workers);
    nb_search_result res;
    int rc = 1;
    if (!sd.x || !sd.y) {
        fprintf(stderr, "fashion_search: %s\n", nb_last_error());
    } else if (nb_search_run(&so, train_and_score, &sd, &res) != NB_OK) {
        fprintf(stderr, "fashion_search: %s\n", nb_last_error());
    } else {
        nb_search_print(&res, stdout);
        const nb_trial *b = &res.trials[res.best];
        int64_t run = 0;
        for (int t = 0; t < res.n_trials; t++) run += res.trials[t].n_epochs;
        printf("best: lr=%.3g batch=%g wd=%.3g dropout=%.3f  accuracy %.4f +- %.4f; %lld of %lld epochs run\n",
               b->cfg.values[0], b->cfg.values[1], b->cfg.values[2], b->cfg.values[3], b->score, b->score_std,
               (long long)run, (long long)(res.n_trials * epochs));
        char svg[1024];
        snprintf(svg, sizeof svg, "%.*s.svg", (int)(strlen(out) > 4 ? strlen(out) - 4 : strlen(out)), out);
        rc = 0;
        if (nb_search_write_csv(&res, out) == NB_OK && (folds > 1 || nb_search_svg(&res, svg) == NB_OK))
            printf("leaderboard written to %s%s%s\n", out, folds > 1 ? "" : ", the search's curves to ", folds > 1 ? "" : svg);
        else fprintf(stderr, "fashion_search: %s\n", nb_last_error()), rc = 1; /* a result not written is a failed run */
        nb_search_result_free(&res);
    }
    nb_tensor_free(sd.x), nb_tensor_free(sd.y);
    return rc;
}
