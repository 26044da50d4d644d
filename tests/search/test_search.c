/* Hyperparameter search: grid enumeration, random-search distributions, k-fold, results. */
#include "common.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const double lrs[] = {0.1, 0.01}, batches[] = {16, 32, 64};

Test(search, grid_enumerates_the_product_exactly_once) {
    nb_hp_space sp[] = {{"lr", NB_HP_CHOICE, 0, 0, 2, lrs}, {"batch", NB_HP_CHOICE, 0, 0, 3, batches}};
    nb_search_opts o = {.space = sp, .n_hp = 2};
    cr_assert_eq(nb_search_grid_size(&o), 6);
    int seen[2][3] = {{0}};
    for (int i = 0; i < 6; i++) {
        nb_hp_config c;
        cr_assert_eq(nb_search_config(&o, i, &c), NB_OK);
        int a = c.values[0] == 0.1 ? 0 : 1, b = c.values[1] == 16 ? 0 : c.values[1] == 32 ? 1 : 2;
        seen[a][b]++;
        /* last hyperparameter varies fastest */
        cr_assert_eq(c.values[1], batches[i % 3]);
        cr_assert_eq(nb_hp_get(&c, "lr"), lrs[i / 3]);
    }
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 3; b++) cr_assert_eq(seen[a][b], 1);
    nb_hp_config c;
    cr_assert_eq(nb_search_config(&o, 6, &c), NB_ERR_INDEX);
}

Test(search, grid_rejects_ranges) {
    nb_hp_space sp[] = {{"lr", NB_HP_LOG_UNIFORM, 1e-4, 1e-1, 0, NULL}};
    nb_search_opts o = {.space = sp, .n_hp = 1};
    cr_assert_eq(nb_search_grid_size(&o), -1);
    cr_assert(strstr(nb_last_error(), "'lr'"), "%s", nb_last_error());
    nb_hp_space bad[] = {{"wd", NB_HP_LOG_UNIFORM, 0.0, 1.0, 0, NULL}};
    nb_search_opts ob = {.space = bad, .n_hp = 1, .random = true, .n_trials = 3};
    nb_hp_config c;
    cr_assert_eq(nb_search_config(&ob, 0, &c), NB_ERR_VALUE);
    cr_assert(strstr(nb_last_error(), "log-uniform 'wd'"), "%s", nb_last_error());
}

Test(search, random_search_respects_distributions_and_seed) {
    nb_hp_space sp[] = {{"lr", NB_HP_LOG_UNIFORM, 1e-4, 1e-2, 0, NULL},
                        {"drop", NB_HP_UNIFORM, 0.1, 0.5, 0, NULL},
                        {"batch", NB_HP_CHOICE, 0, 0, 3, batches}};
    nb_search_opts o = {.space = sp, .n_hp = 3, .random = true, .n_trials = 4000, .seed = 42};
    const int n = 4000;
    double sum_log = 0, sum_u = 0, sum_u2 = 0;
    int counts[3] = {0};
    for (int i = 0; i < n; i++) {
        nb_hp_config c;
        cr_assert_eq(nb_search_config(&o, i, &c), NB_OK);
        cr_assert(c.values[0] >= 1e-4 && c.values[0] <= 1e-2);
        cr_assert(c.values[1] >= 0.1 && c.values[1] <= 0.5);
        sum_log += log10(c.values[0]);
        sum_u += c.values[1];
        sum_u2 += c.values[1] * c.values[1];
        counts[c.values[2] == 16 ? 0 : c.values[2] == 32 ? 1 : 2]++;
    }
    /* log10(lr) ~ U(-4,-2): mean -3, sd 0.577 -> 4 standard errors = 0.037 */
    assert_close(sum_log / n, -3.0, 0.037, 0);
    /* U(0.1,0.5): mean 0.3, variance 0.4^2/12 */
    double mean = sum_u / n, var = sum_u2 / n - mean * mean;
    assert_close(mean, 0.3, 4 * 0.1155 / sqrt(n), 0);
    assert_close(var, 0.16 / 12, 0.0015, 0);
    for (int k = 0; k < 3; k++) assert_close(counts[k], n / 3.0, 4 * sqrt(n * (1 / 3.0) * (2 / 3.0)), 0);
    /* reproducible for a seed, different for another */
    nb_hp_config a, b, c;
    nb_search_config(&o, 7, &a);
    nb_search_config(&o, 7, &b);
    o.seed = 43;
    nb_search_config(&o, 7, &c);
    cr_assert(memcmp(a.values, b.values, 3 * sizeof *a.values) == 0);
    cr_assert_neq(a.values[0], c.values[0]);
}

/* score peaks at lr = 0.01; with folds, fold f adds f so the mean over k folds is shifted */
static nb_status trial(const nb_hp_config *cfg, int fold, int k, void *user, double *score) {
    int *calls = user;
    calls[fold]++;
    double lr = nb_hp_get(cfg, "lr");
    *score = -fabs(log10(lr) + 2.0) + fold;
    return k < 100 ? NB_OK : NB_ERR_VALUE;
}

Test(search, run_finds_the_best_and_averages_folds) {
    static const double grid[] = {1e-1, 1e-2, 1e-3, 1e-4};
    nb_hp_space sp[] = {{"lr", NB_HP_CHOICE, 0, 0, 4, grid}};
    nb_search_opts o = {.space = sp, .n_hp = 1, .k_folds = 3, .maximize = true};
    int calls[3] = {0};
    nb_search_result r;
    cr_assert_eq(nb_search_run(&o, trial, calls, &r), NB_OK, "%s", nb_last_error());
    cr_assert_eq(r.n_trials, 4);
    for (int f = 0; f < 3; f++) cr_assert_eq(calls[f], 4, "fold %d called %d times", f, calls[f]);
    cr_assert_eq(r.best, 1);
    assert_close(r.trials[1].score, 1.0, 1e-12, 0);      /* mean of 0,1,2 */
    assert_close(r.trials[1].score_std, 1.0, 1e-12, 0);  /* sample sd of 0,1,2 */
    assert_close(r.trials[3].score, -2.0 + 1.0, 1e-12, 0);

    char path[] = "/tmp/nabla_search_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert_eq(nb_search_write_csv(&r, path), NB_OK);
    FILE *f = fopen(path, "r");
    char line[256];
    cr_assert(fgets(line, sizeof line, f));
    cr_assert_str_eq(line, "trial,lr,score,score_std,rank\n");
    cr_assert(fgets(line, sizeof line, f));
    cr_assert_str_eq(line, "0,0.1,0.000000,1.000000,2\n");
    cr_assert(fgets(line, sizeof line, f));
    cr_assert_str_eq(line, "1,0.01,1.000000,1.000000,1\n");
    fclose(f);
    remove(path);
    nb_search_result_free(&r);
    cr_assert_null(r.trials);
}

Test(search, kfold_partitions_the_samples) {
    const int64_t n = 103;
    const int k = 4;
    int64_t train[103], val[103], nt, nv;
    int hits[103] = {0};
    for (int f = 0; f < k; f++) {
        cr_assert_eq(nb_kfold_split(n, k, f, 9, train, &nt, val, &nv), NB_OK);
        cr_assert_eq(nt + nv, n);
        cr_assert(nv == n / k || nv == n / k + 1, "fold size %lld", (long long)nv);
        char in_val[103] = {0};
        for (int64_t i = 0; i < nv; i++) hits[val[i]]++, in_val[val[i]] = 1;
        for (int64_t i = 0; i < nt; i++) cr_assert_eq(in_val[train[i]], 0, "sample in both train and val");
    }
    for (int64_t i = 0; i < n; i++) cr_assert_eq(hits[i], 1, "sample %lld validated %d times", (long long)i, hits[i]);
    /* k = 1: a holdout, the validation rows of fold 0 of 5 (103/5 = 20 of them) */
    int64_t t5[103], v5[103], nt5, nv5;
    cr_assert_eq(nb_kfold_split(n, 1, 0, 9, train, &nt, val, &nv), NB_OK, "%s", nb_last_error());
    cr_assert_eq(nb_kfold_split(n, 5, 0, 9, t5, &nt5, v5, &nv5), NB_OK);
    cr_assert_eq(nv, 20);
    cr_assert_eq(nt, 83);
    cr_assert(nv == nv5 && memcmp(val, v5, sizeof *val * (size_t)nv) == 0 && memcmp(train, t5, sizeof *train * (size_t)nt) == 0);
    /* refused: no fold, a fold outside [0, k), fewer samples than folds (5 for a holdout) */
    cr_assert_eq(nb_kfold_split(n, 0, 0, 9, train, &nt, val, &nv), NB_ERR_VALUE);
    cr_assert_eq(nb_kfold_split(n, 1, 1, 9, train, &nt, val, &nv), NB_ERR_VALUE);
    cr_assert_eq(nb_kfold_split(4, 1, 0, 9, train, &nt, val, &nv), NB_ERR_VALUE);
    cr_assert_eq(nb_kfold_split(3, 4, 0, 9, train, &nt, val, &nv), NB_ERR_VALUE);
}

/* A trial that splits with nb_kfold_split whatever k is, and records what it was told. */
typedef struct {
    int calls, ks[16], trials[16];
    uint64_t seeds[16];
    int64_t n_val[16];
    int progress_calls, progress_trials[8], progress_best[8];
    double progress_scores[8];
} spy;

static nb_status split_trial(const nb_hp_config *cfg, int fold, int k, void *user, double *score) {
    spy *s = user;
    int64_t train[50], val[50], nt, nv;
    nb_status st = nb_kfold_split(50, k, fold, 3, train, &nt, val, &nv);
    s->ks[s->calls] = k, s->trials[s->calls] = cfg->trial, s->seeds[s->calls] = cfg->seed, s->n_val[s->calls] = nv;
    s->calls++;
    *score = (double)(cfg->trial % 3); /* trials 2 and 5 score best; 2 comes first */
    return st;
}

static void record_progress(const nb_search_progress *p, void *user) {
    spy *s = user;
    cr_assert_eq(p->n_trials, 6);
    cr_assert_eq(p->result->cfg.trial, p->trial);
    cr_assert(p->elapsed >= 0);
    s->progress_trials[s->progress_calls] = p->trial;
    s->progress_best[s->progress_calls] = p->best->cfg.trial;
    s->progress_scores[s->progress_calls] = p->result->score;
    s->progress_calls++;
}

Test(search, trials_get_index_seed_and_a_holdout_without_special_case) {
    nb_hp_space sp[] = {{.name = "lr", .kind = NB_HP_UNIFORM, .lo = 0, .hi = 1}};
    for (int kf = -1; kf <= 1; kf++) { /* every k_folds <= 1 is one holdout */
        nb_search_opts o = {.space = sp, .n_hp = 1, .random = true, .n_trials = 6, .k_folds = kf, .seed = 99,
                            .maximize = true, .progress = record_progress};
        spy s = {0};
        nb_search_result r;
        cr_assert_eq(nb_search_run(&o, split_trial, &s, &r), NB_OK, "%s", nb_last_error());
        cr_assert_eq(s.calls, 6);
        for (int t = 0; t < 6; t++) {
            cr_assert_eq(s.ks[t], 1);
            cr_assert_eq(s.n_val[t], 10, "holdout of a fifth of 50");
            cr_assert_eq(s.trials[t], t);
            cr_assert_eq(s.seeds[t], nb_rng_stream(99, (uint64_t)t).seed);
            cr_assert_eq(r.trials[t].cfg.seed, s.seeds[t]);
            for (int u = 0; u < t; u++) cr_assert_neq(s.seeds[t], s.seeds[u]);
            /* progress after every trial, with the best so far */
            cr_assert_eq(s.progress_trials[t], t);
            cr_assert_eq(s.progress_best[t], t < 2 ? t : 2, "after trial %d", t);
            cr_assert_eq(s.progress_scores[t], (double)(t % 3));
        }
        cr_assert_eq(s.progress_calls, 6);
        cr_assert_eq(r.best, 2);
        nb_search_result_free(&r);
    }
    /* with folds: each trial's seed is the same for all of its folds */
    nb_search_opts o = {.space = sp, .n_hp = 1, .random = true, .n_trials = 2, .k_folds = 5, .seed = 99};
    spy s = {0};
    nb_search_result r;
    cr_assert_eq(nb_search_run(&o, split_trial, &s, &r), NB_OK, "%s", nb_last_error());
    cr_assert_eq(s.calls, 10);
    for (int c = 0; c < 10; c++) {
        cr_assert_eq(s.ks[c], 5);
        cr_assert_eq(s.n_val[c], 10);
        cr_assert_eq(s.trials[c], c / 5);
        cr_assert_eq(s.seeds[c], s.seeds[c / 5 * 5]);
    }
    nb_search_result_free(&r);
}
