/* nabla/search.h — hyperparameter search: grid and random search, validation split or k-fold
 * cross-validation, results as a table.
 *
 * The library only proposes configurations and keeps score; training is the caller's
 * nb_trial_fn, so any model and any loop can be searched:
 *
 *   nb_hp_space space[] = {
 *       {"lr", NB_HP_LOG_UNIFORM, 1e-4, 1e-2},
 *       {"batch", NB_HP_CHOICE, .n_choices = 3, .choices = (double[]){32, 64, 128}},
 *   };
 *   nb_search_opts o = {.space = space, .n_hp = 2, .random = true, .n_trials = 8, .k_folds = 3, .seed = 1, .maximize = true};
 *   nb_search_result r;
 *   nb_search_run(&o, train_and_score, &data, &r);   // calls train_and_score(cfg, fold, k, ...) per trial and fold
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
} nb_hp_config;

/* Value of the named hyperparameter in cfg (NAN if absent). */
double nb_hp_get(const nb_hp_config *cfg, const char *name);

/* Train with cfg and return the validation score through *score. With k-fold
 * cross-validation (k > 1) it is called once per fold (0..k-1) and should train on the other
 * folds (see nb_kfold_split); with k <= 1, fold is 0 and the caller's own validation split is
 * used. A non-OK status stops the search and is returned by nb_search_run. */
typedef nb_status (*nb_trial_fn)(const nb_hp_config *cfg, int fold, int k_folds, void *user, double *score);

typedef struct {
    const nb_hp_space *space;
    int n_hp;
    bool random;      /* false: grid over all NB_HP_CHOICE values (every kind must be CHOICE) */
    int n_trials;     /* random search: number of configurations */
    int k_folds;      /* <= 1: one validation split; k > 1: k-fold cross-validation */
    uint64_t seed;    /* random search draws (Philox): same seed, same configurations */
    bool maximize;    /* true for accuracy, false for loss */
} nb_search_opts;

typedef struct {
    nb_hp_config cfg;
    double score;      /* mean over folds */
    double score_std;  /* standard deviation over folds (0 with one split) */
} nb_trial;

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
 * and train (the rest). Arrays must hold n entries. Folds differ in size by at most one. */
nb_status nb_kfold_split(int64_t n, int k, int fold, uint64_t seed, int64_t *train, int64_t *n_train, int64_t *val,
                         int64_t *n_val);

#ifdef __cplusplus
}
#endif
#endif
