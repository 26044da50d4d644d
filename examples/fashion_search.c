/* fashion_search — hyperparameter search for the Fashion-MNIST MLP: random search (or a grid)
 * over learning rate, batch size, L2 penalty and dropout, scored on a validation split or by
 * k-fold cross-validation on a subset, printed as a leaderboard and written as CSV.
 *
 *   fashion_search                         # 8 random trials, 6000 images, 3 epochs each
 *   fashion_search --grid --folds 3        # the 16-point grid, 3-fold cross-validation
 */
// ci-args: --subset 1200 --trials 3 --epochs 1 --folds 2 --hidden 32 --out ci_search.csv
#include <errno.h>
#include <stdlib.h>

#include "example_util.h"
#include "mlp_common.h"

typedef struct {
    nb_tensor *x, *y;  /* the subset searched over */
    int epochs;
    int64_t hidden;
    uint64_t seed;
    nb_ctx *ctx;
} search_data;

/* Train one configuration on the training rows and return the accuracy on the held-out rows. */
static nb_status train_and_score(const nb_hp_config *cfg, int fold, int k, void *user, double *score) {
    search_data *sd = user;
    const int64_t n = sd->x->shape[0];
    int64_t *tr = malloc((size_t)n * sizeof *tr), *va = malloc((size_t)n * sizeof *va), ntr, nva;
    nb_params *ps = nb_params_new();
    nb_tensor *xtr = NULL, *ytr = NULL, *xva = NULL, *yva = NULL;
    nb_optim *opt = NULL;
    nb_batcher *it = NULL;
    nb_status st = NB_ERR_NOMEM;
    if (!tr || !va || !ps) goto out;
    /* k folds, or with k = 1 a holdout of a fifth; the same rows in every trial (the search's seed) */
    if ((st = nb_kfold_split(n, k, fold, sd->seed, tr, &ntr, va, &nva)) != NB_OK) goto out;
    xtr = nb_take_rows(sd->x, tr, ntr), ytr = nb_take_rows(sd->y, tr, ntr);
    xva = nb_take_rows(sd->x, va, nva), yva = nb_take_rows(sd->y, va, nva);
    if (!xtr || !ytr || !xva || !yva) goto fail;

    mlp m; /* initialisation, batch order and dropout from the trial's own seed */
    nb_rng init = nb_rng_new(cfg->seed);
    const int64_t hidden[1] = {sd->hidden};
    if ((st = mlp_init(&m, ps, xtr->shape[1], hidden, 1, 10, "relu", nb_hp_get(cfg, "dropout"), &init)) != NB_OK) goto out;
    nb_hparams hp = nb_adam.defaults;
    hp.lr = nb_hp_get(cfg, "lr");
    const double l2 = nb_hp_get(cfg, "l2");
    if (!(opt = nb_optim_new(&nb_adam, ps, &hp))) goto fail;
    if (!(it = nb_batcher_new(xtr, ytr, &(nb_batch_opts){.batch_size = (int64_t)nb_hp_get(cfg, "batch"), .shuffle = true,
                                                          .seed = cfg->seed})))
        goto fail;
    nb_ctx *ctx = sd->ctx;
    nb_ctx_set_train(ctx, true);
    nb_ctx_seed(ctx, cfg->seed);
    for (int e = 0; e < sd->epochs; e++) {
        nb_batch b;
        nb_batcher_start(it, e);
        while (nb_batcher_next(it, &b)) {
            nb_ctx_reset(ctx);
            nb_params_zero_grad(ps);
            nb_tensor *loss = nb_add(ctx, nb_cross_entropy(ctx, forward(ctx, &m, b.x), b.y, NB_REDUCE_MEAN),
                                     nb_l2_penalty_params(ctx, ps, NULL, l2));
            if (!loss || nb_backward(ctx, loss, NULL) != NB_OK || nb_optim_step(opt) != NB_OK) goto fail;
        }
    }
    double loss;
    st = evaluate(ctx, &m, xva, yva, &loss, score);
    goto out;
fail:
    st = nb_ctx_status(sd->ctx) ? nb_ctx_status(sd->ctx) : nb_last_status();
    if (nb_ctx_status(sd->ctx)) nb_set_error(st, "%s", nb_ctx_error(sd->ctx));
out:
    nb_ctx_reset(sd->ctx);
    nb_batcher_free(it);
    nb_optim_free(opt);
    nb_tensor_free(xtr), nb_tensor_free(ytr), nb_tensor_free(xva), nb_tensor_free(yva);
    nb_params_free(ps);
    free(tr), free(va);
    return st;
}

/* One line per finished trial. */
static void progress(const nb_search_progress *p, void *user) {
    (void)user;
    const nb_hp_config *c = &p->result->cfg;
    printf("trial %d/%d  lr %.2e  batch %3g  l2 %.1e  dropout %.2f  accuracy %.4f  (best %.4f, %.0f s)\n", p->trial + 1,
           p->n_trials, c->values[0], c->values[1], c->values[2], c->values[3], p->result->score, p->best->score, p->elapsed);
    fflush(stdout);
}

int main(int argc, char **argv) {
    int64_t subset = 6000, trials = 8, folds = 0, epochs = 3, hidden = 128, seed = 1, threads = 0;
    bool grid = false;
    const char *data = NULL, *out = "out/fashion_search.csv";
    const ex_opt opts[] = {
        {"--subset", EX_INT, &subset, 100, 60000, "training images searched over"},
        {"--trials", EX_INT, &trials, 1, 10000, "configurations tried (random search)"},
        {"--grid", EX_FLAG, &grid, 0, 0, "grid search instead of random"},
        {"--folds", EX_INT, &folds, 0, 20, "K-fold cross-validation when K > 1 (else a holdout)"},
        EX_EPOCHS(&epochs),
        {"--hidden", EX_INT, &hidden, 1, 65536, "units of the hidden layer"},
        EX_SEED(&seed),
        EX_THREADS(&threads),
        EX_DATA(&data),
        {"--out", EX_STR, &out, 0, 0, "leaderboard CSV"},
    };
    if (!ex_parse(argc, argv, "fashion_search", opts, (int)(sizeof opts / sizeof opts[0]))) return 2;
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
                      (uint64_t)seed, nb_ctx_new()};
    free(first);
    nb_mnist_free(&d);

    static const double lr_grid[] = {1e-3, 3e-3}, batch_grid[] = {64, 128}, l2_grid[] = {1e-5, 1e-4},
                        dropout_grid[] = {0.1, 0.3}, batches[] = {32, 64, 128};
    nb_hp_space random_space[] = {{"lr", NB_HP_LOG_UNIFORM, 1e-4, 3e-3, 0, NULL},
                                  {"batch", NB_HP_CHOICE, 0, 0, 3, batches},
                                  {"l2", NB_HP_LOG_UNIFORM, 1e-6, 1e-3, 0, NULL},
                                  {"dropout", NB_HP_UNIFORM, 0.0, 0.5, 0, NULL}};
    nb_hp_space grid_space[] = {{"lr", NB_HP_CHOICE, 0, 0, 2, lr_grid},
                                {"batch", NB_HP_CHOICE, 0, 0, 2, batch_grid},
                                {"l2", NB_HP_CHOICE, 0, 0, 2, l2_grid},
                                {"dropout", NB_HP_CHOICE, 0, 0, 2, dropout_grid}};
    nb_search_opts so = {.space = grid ? grid_space : random_space, .n_hp = 4, .random = !grid, .n_trials = (int)trials,
                         .k_folds = (int)folds, .seed = (uint64_t)seed, .maximize = true, .progress = progress};
    printf("fashion_search: %s search, %lld configurations, %s on %lld images, %lld epoch(s) each\n", grid ? "grid" : "random",
           (long long)(grid ? nb_search_grid_size(&so) : trials), folds > 1 ? "k-fold cross-validation" : "a holdout of a fifth",
           (long long)subset, (long long)epochs);
    nb_search_result res;
    int rc = 1;
    if (!sd.x || !sd.y || !sd.ctx) {
        fprintf(stderr, "fashion_search: %s\n", nb_last_error());
    } else if (nb_search_run(&so, train_and_score, &sd, &res) != NB_OK) {
        fprintf(stderr, "fashion_search: %s\n", nb_last_error());
    } else {
        nb_search_print(&res, stdout);
        const nb_trial *b = &res.trials[res.best];
        printf("best: lr=%.3g batch=%g l2=%.3g dropout=%.3f  accuracy %.4f +- %.4f\n", b->cfg.values[0], b->cfg.values[1],
               b->cfg.values[2], b->cfg.values[3], b->score, b->score_std);
        if (nb_search_write_csv(&res, out) == NB_OK) printf("leaderboard written to %s\n", out);
        else fprintf(stderr, "fashion_search: %s\n", nb_last_error());
        nb_search_result_free(&res);
        rc = 0;
    }
    nb_tensor_free(sd.x), nb_tensor_free(sd.y);
    nb_ctx_free(sd.ctx);
    return rc;
}
