/* nabla/search.h — hyperparameter search: grid and random search, a holdout or k-fold
 * cross-validation, results as a table.
 *
 * The library only proposes configurations and keeps score; training is the caller's
 * nb_trial_fn, so any model and any loop can be searched. Each trial is told its index and a
 * seed of its own (cfg->trial, cfg->seed) and splits the data with nb_kfold_split, which gives
 * a holdout when there is one fold, so the same trial function serves both.
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
    const char *name;
    nb_hp_kind kind;
    double lo, hi;
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
} nb_hp_config;

/* Value of the named hyperparameter in cfg (NAN if absent). */
double nb_hp_get(const nb_hp_config *cfg, const char *name);

/* Train with cfg and return the validation score through *score. It is called once per fold
 * (0..k_folds-1) with k_folds >= 1, and trains on the rows nb_kfold_split(n, k_folds, fold, ...)
 * gives it: k > 1 folds of cross-validation, or with k_folds = 1 a holdout (see there). Use the
 * same split seed in every trial so that all are scored on the same rows. A non-OK status stops
 * the search and is returned by nb_search_run. */
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
    bool maximize;    /* true for accuracy, false for loss */
    nb_search_progress_fn progress; /* NULL: silent */
} nb_search_opts;

struct nb_trial {
    nb_hp_config cfg;
    double score;      /* mean over folds */
    double score_std;  /* standard deviation over folds (0 with one split) */
};

typedef struct {
    int n_trials;
    nb_trial *trials;  /* in the order run; malloc'd, release with nb_search_result_free */
    int best;          /* index of the best trial */
    bool maximize;     /* copied from the options: how ranks are ordered */
} nb_search_result;

/* Number of configurations grid search would run (product of the choice counts), or -1 with
 * an error when a kind is not NB_HP_CHOICE. */
int64_t nb_search_grid_size(const nb_search_opts *o);
/* The i-th configuration of the grid (last hyperparameter varies fastest), or of random search
 * (a pure function of seed and i). */
nb_status nb_search_config(const nb_search_opts *o, int64_t i, nb_hp_config *cfg);
/* Run every trial; on success *res holds the table. */
nb_status nb_search_run(const nb_search_opts *o, nb_trial_fn fn, void *user, nb_search_result *res);
void nb_search_result_free(nb_search_result *res);
/* The table as CSV (one row per trial: hyperparameters, score, score_std, rank). */
nb_status nb_search_write_csv(const nb_search_result *res, const char *path);
/* The table sorted best first (a leaderboard) written to f. */
void nb_search_print(const nb_search_result *res, FILE *f);

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
