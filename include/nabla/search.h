/* nabla/search.h — hyperparameter search: grid and random search, a holdout or k-fold
 * cross-validation, pruning of bad trials (ASHA), trials in parallel processes, results as a
 * leaderboard (printed, CSV) and a picture (SVG).
 *
 * The library only proposes configurations and keeps score; training is the caller's
 * nb_trial_fn, so any model and any loop can be searched. Each trial is told its index and a
 * seed of its own (cfg->trial, cfg->seed) and splits the data with nb_kfold_split, which gives
 * a holdout when there is one fold, so the same trial function serves both.
 *
 * Pruning (successive halving, ASHA-style): a trial reports its validation metric after each
 * epoch (nb_search_report, or nb_search_callback inside nb_fit). Rungs are at min_epochs,
 * min_epochs*eta, min_epochs*eta^2, ... epochs. At a rung, a trial goes on only when its value is
 * among the best max(1, n/eta) of the n trials that reached that rung, counting itself and the
 * trials started before it (lower index); ties go on, NaN is pruned. Comparing with earlier
 * trials only (ASHA run in trial order) makes every decision a pure function of the reports, so
 * the search is deterministic, and parallel workers (which wait at a rung for the earlier trials
 * to get there or finish) decide exactly as the sequential run does.
 *
 * Hyperband (prune_brackets = s >= 2) hedges against pruning too early: trial t runs in bracket
 * b = t mod s, whose first rung is at min_epochs*eta^b epochs (bracket 0 prunes most eagerly,
 * bracket s-1 waits longest), and is compared only with the trials of its own bracket; within a
 * bracket the rule above applies unchanged (asynchronous Hyperband, as Li et al. 2020).
 *
 * With pruning, the trial function of the example below becomes (train with nb_fit and return
 * the validation accuracy of the last epoch it ran):
 *
 *   nb_callback cb = nb_search_callback(cfg);  // reports the monitored value, stops when pruned
 *   nb_fit(ctx, NULL, net, opt, train, &h, &(nb_fit_opts){.epochs = 27, .val = val,
 *          .monitor = NB_MONITOR_VAL_ACCURACY, .n_callbacks = 1, .callbacks = &cb});
 *   *score = h.epochs[h.n - 1].val_accuracy;
 *
 * and the options gain .prune_eta = 3 (rungs after 1, 3, 9 epochs) and .workers = 4.
 *
 * Example (a complete program, compiled by tests/test_headers.c):
 *
 *   typedef struct { int64_t n; } data;  // your data set, and your training (with a seed):
 *   double fit(const data *d, const int64_t *tr, int64_t ntr, const int64_t *va, int64_t nva, double lr, uint64_t seed);
 *
 *   static nb_status train_and_score(const nb_hp_config *cfg, int fold, int k, void *user, double *score) {
 *       const data *d = user;
 *       int64_t *tr = malloc(2 * sizeof *tr * (size_t)d->n), *va = tr + d->n, ntr, nva;
 *       if (!tr) return NB_ERR_NOMEM;
 *       nb_status s = nb_kfold_split(d->n, k, fold, 7, tr, &ntr, va, &nva);  // the same rows every trial
 *       if (s == NB_OK) *score = fit(d, tr, ntr, va, nva, nb_hp_get(cfg, "lr"), cfg->seed);
 *       free(tr);
 *       return s;
 *   }
 *   static void progress(const nb_search_progress *p, void *user) {
 *       (void)user;
 *       printf("trial %d/%d: %.3f (best %.3f)\n", p->trial + 1, p->n_trials, p->result->score, p->best->score);
 *   }
 *   int main(void) {
 *       static const double batches[] = {32, 64, 128};
 *       nb_hp_space space[] = {
 *           {.name = "lr", .kind = NB_HP_LOG_UNIFORM, .lo = 1e-4, .hi = 1e-2},
 *           {.name = "batch", .kind = NB_HP_CHOICE, .n_choices = 3, .choices = batches},
 *       };
 *       nb_search_opts o = {.space = space, .n_hp = 2, .random = true, .n_trials = 8, .k_folds = 3,
 *                           .seed = 1, .maximize = true, .progress = progress};
 *       data d = {1000};
 *       nb_search_result r;
 *       if (nb_search_run(&o, train_and_score, &d, &r) != NB_OK) return fprintf(stderr, "%s\n", nb_last_error()), 1;
 *       nb_search_print(&r, stdout);  // the leaderboard
 *       nb_search_result_free(&r);
 *       return 0;
 *   }
 */
#ifndef NABLA_SEARCH_H
#define NABLA_SEARCH_H

#include "fit.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NB_SEARCH_MAX_HP 16

typedef enum {
    NB_HP_CHOICE,       /* one of choices[0..n_choices) (the only kind grid search enumerates) */
    NB_HP_UNIFORM,      /* uniform in [lo, hi] */
    NB_HP_LOG_UNIFORM,  /* exp(uniform in [log lo, log hi]), lo > 0: learning rates, penalties */
} nb_hp_kind;

typedef struct {
    const char *name;   /* required and unique (nb_hp_get finds values by it; a CSV column): no comma,
                           quote or line break */
    nb_hp_kind kind;
    double lo, hi;      /* finite */
    int n_choices;
    const double *choices;
} nb_hp_space;

/* One configuration handed to the trial function: values[i] belongs to space[i]. */
typedef struct {
    int n_hp;
    const nb_hp_space *space;
    double values[NB_SEARCH_MAX_HP];
    int trial;           /* its index in the search: 0, 1, ... */
    uint64_t seed;       /* a seed of the trial's own (initialisation, batch order, dropout), a pure
                            function of the search's seed and the index */
    void *run_;          /* private: the search running this trial (NULL outside nb_search_run) */
} nb_hp_config;

/* Value of the named hyperparameter in cfg (NAN if absent). */
double nb_hp_get(const nb_hp_config *cfg, const char *name);

/* Train with cfg and return the validation score through *score. It is called once per fold
 * (0..k_folds-1) with k_folds >= 1, and trains on the rows nb_kfold_split(n, k_folds, fold, ...)
 * gives it: k > 1 folds of cross-validation, or with k_folds = 1 a holdout (see there). Use the
 * same split seed in every trial so that all are scored on the same rows. A non-OK status stops
 * the search and is returned by nb_search_run. With workers >= 2 it runs in a child process:
 * what it writes to memory through user is not seen by the caller (return results by score,
 * reports and files). */
typedef nb_status (*nb_trial_fn)(const nb_hp_config *cfg, int fold, int k_folds, void *user, double *score);

typedef struct nb_trial nb_trial;
/* What a progress callback sees after each trial (all its folds). */
typedef struct {
    int trial;               /* the trial just finished (0-based) */
    int n_trials;            /* trials in the search */
    const nb_trial *result;  /* its configuration and score */
    const nb_trial *best;    /* the best so far (maybe the same) */
    double elapsed;          /* seconds since the search started */
} nb_search_progress;
/* Called with the user pointer given to nb_search_run. */
typedef void (*nb_search_progress_fn)(const nb_search_progress *p, void *user);

typedef struct {
    const nb_hp_space *space;
    int n_hp;
    bool random;      /* false: grid over all NB_HP_CHOICE values (every kind must be CHOICE) */
    int n_trials;     /* random search: number of configurations */
    int k_folds;      /* <= 1: one holdout split (the trial gets k_folds = 1); k > 1: k-fold cross-validation */
    uint64_t seed;    /* random search draws and the trials' seeds (Philox): same seed, same search */
    bool maximize;    /* true for accuracy, false for loss (scores and reported values alike) */
    nb_search_progress_fn progress; /* NULL: silent; called in trial order, in the calling process */
    int prune_eta;    /* 0: no pruning; >= 2: successive halving with this reduction factor (the
                         header's comment); needs k_folds <= 1 */
    int64_t prune_min_epochs; /* epochs before the first rung (0 means 1) */
    int prune_brackets; /* Hyperband's brackets (see above): 0 or 1 one bracket (ASHA), 2..16 */
    int workers;      /* <= 1: trials run here, one after another; n >= 2: in n forked processes,
                         each with one thread (nb_set_num_threads(1)), trials handed out in index
                         order; the result equals the sequential run's (POSIX only) */
} nb_search_opts;

struct nb_trial {
    nb_hp_config cfg;
    double score;      /* mean over folds */
    double score_std;  /* standard deviation over folds (0 with one split) */
    int64_t n_epochs;  /* epochs it reported (nb_search_report) */
    double *curve;     /* curve[e]: the value reported after epoch e (NULL without reports; owned) */
    double best;       /* best reported value (NAN without reports) */
    int64_t best_epoch;/* epoch of best, 0-based (-1 without reports) */
    bool pruned;       /* stopped at a rung (after n_epochs epochs) */
    int bracket;       /* Hyperband's bracket (0 without brackets) */
};

typedef struct {
    int n_trials;
    nb_trial *trials;  /* in trial order; malloc'd, release with nb_search_result_free */
    int best;          /* index of the best trial: the best score among the completed (not pruned)
                          trials, ties to the lower index */
    bool maximize;     /* copied from the options: how ranks are ordered */
    int prune_eta;     /* copied from the options (0: no pruning), */
    int64_t prune_min_epochs; /* and the first rung (for the SVG: bracket 0's rungs) */
    int prune_brackets;       /* 1 without Hyperband */
} nb_search_result;

/* Number of configurations grid search would run (product of the choice counts), or -1 with
 * an error when a kind is not NB_HP_CHOICE. */
int64_t nb_search_grid_size(const nb_search_opts *o);
/* The i-th configuration of the grid (last hyperparameter varies fastest), or of random search
 * (a pure function of seed and i). */
nb_status nb_search_config(const nb_search_opts *o, int64_t i, nb_hp_config *cfg);
/* Run every trial; on success *res holds the table. Errors: NB_ERR_NULL, NB_ERR_VALUE (bad
 * options: a space, prune_eta 1 or < 0, pruning with folds), the trial function's first error (by
 * trial index), NB_ERR_VALUE for reports out of order, NB_ERR_IO / NB_ERR_STATE when a worker
 * process cannot be started or dies. */
nb_status nb_search_run(const nb_search_opts *o, nb_trial_fn fn, void *user, nb_search_result *res);
void nb_search_result_free(nb_search_result *res);

/* Report the value of the search's metric after epoch `epoch` (0-based; epochs in order, from 0)
 * of the trial cfg. Returns true to go on, false when the trial is pruned (or a report failed:
 * nb_search_run then returns that error): stop training and return a score. Outside a search
 * (cfg->run_ NULL) it only returns true. With workers it may wait at a rung for earlier trials.
 * With k-fold cross-validation (no pruning) the trial's curve is fold 0's: the other folds'
 * reports only return true. */
bool nb_search_report(const nb_hp_config *cfg, int64_t epoch, double value);
/* An nb_fit callback that reports each epoch's monitored value (nb_fit_opts.monitor, by default
 * the validation loss: set maximize to false then; without a validation batcher monitor a
 * training value, a NAN report is pruned) and stops the run (nb_fit_state.stop) when the trial is
 * pruned. cfg must outlive the fit. */
nb_callback nb_search_callback(const nb_hp_config *cfg);

/* The leaderboard as CSV, one row per trial in trial order: "trial,<hyperparameters>,score,
 * score_std,best,best_epoch,epochs,status,rank,bracket": best and best_epoch (1-based, 0
 * without reports) of the reported values, epochs reported, status "completed" or "pruned", rank
 * 1 for the best (completed trials rank before pruned ones), Hyperband's bracket (0 without). */
nb_status nb_search_write_csv(const nb_search_result *res, const char *path);
/* The table sorted best first (a leaderboard) written to f. */
void nb_search_print(const nb_search_result *res, FILE *f);
/* SVG of the search: one polyline per trial that reported (its value per epoch, at epochs
 * 1, 2, ...), a cross at the end of each pruned trial's line (class "end-mark") and, with
 * pruning, a dashed vertical line at each rung up to the longest curve (class "mark").
 * Errors: NB_ERR_NULL, NB_ERR_VALUE (no trial reported a finite value), NB_ERR_IO. */
nb_status nb_search_svg(const nb_search_result *res, const char *path);

/* k-fold split of n samples, shuffled by seed: fills val (the fold's samples, n_val of them)
 * and train (the rest). Arrays must hold n entries. Folds differ in size by at most one.
 * k = 1 is a holdout: the validation rows of fold 0 of a 5-fold split (a fifth; n >= 5).
 * NB_ERR_VALUE for k < 1, fold outside [0, k), fewer samples than folds. */
nb_status nb_kfold_split(int64_t n, int k, int fold, uint64_t seed, int64_t *train, int64_t *n_train, int64_t *val,
                         int64_t *n_val);

#ifdef __cplusplus
}
#endif
#endif
