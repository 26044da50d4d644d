/* Hyperparameter search: grid enumeration, random-search distributions, k-fold, results. */
#include "common.h"
#include "tmpdir.h"

#include "nabla/fit.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(search, .init = tmpdir_setup, .fini = tmpdir_teardown);

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

/* Spaces refused up front: names missing, repeated (nb_hp_get would find the first) or holding
 * CSV syntax (the header split over two lines); ranges that are not finite (every value was inf
 * or NaN). A range as wide as the doubles still draws inside it. */
Test(search, space_names_and_ranges_are_checked) {
    const struct {
        nb_hp_space sp[2];
        const char *want;
    } bad[] = {
        {{{NULL, NB_HP_UNIFORM, 0, 1, 0, NULL}, {"b", NB_HP_UNIFORM, 0, 1, 0, NULL}}, "hyperparameter 0 has no name"},
        {{{"a", NB_HP_UNIFORM, 0, 1, 0, NULL}, {"a", NB_HP_UNIFORM, 0, 1, 0, NULL}}, "both named 'a'"},
        {{{"a,b", NB_HP_UNIFORM, 0, 1, 0, NULL}, {"c", NB_HP_UNIFORM, 0, 1, 0, NULL}}, "comma, quote or line break"},
        {{{"a", NB_HP_UNIFORM, -INFINITY, 1, 0, NULL}, {"c", NB_HP_UNIFORM, 0, 1, 0, NULL}}, "uniform 'a' needs finite"},
        {{{"a", NB_HP_UNIFORM, 0, 1, 0, NULL}, {"lr", NB_HP_LOG_UNIFORM, 1e-3, INFINITY, 0, NULL}}, "log-uniform 'lr'"},
    };
    for (int i = 0; i < 5; i++) {
        nb_search_opts o = {.space = bad[i].sp, .n_hp = 2, .random = true, .n_trials = 3};
        nb_hp_config c;
        cr_assert_eq(nb_search_config(&o, 0, &c), NB_ERR_VALUE, "case %d accepted", i);
        cr_assert(strstr(nb_last_error(), bad[i].want), "case %d: %s", i, nb_last_error());
    }
    nb_hp_space wide[] = {{"w", NB_HP_UNIFORM, -1e308, 1e308, 0, NULL}};
    nb_search_opts o = {.space = wide, .n_hp = 1, .random = true, .n_trials = 50, .seed = 3};
    bool neg = false, pos = false;
    for (int t = 0; t < 50; t++) {
        nb_hp_config c;
        cr_assert_eq(nb_search_config(&o, t, &c), NB_OK, "%s", nb_last_error());
        cr_assert(isfinite(c.values[0]) && fabs(c.values[0]) <= 1e308, "trial %d: %g", t, c.values[0]);
        neg |= c.values[0] < 0, pos |= c.values[0] > 0;
    }
    cr_assert(neg && pos, "both signs drawn");
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
    cr_assert_str_eq(line, "trial,lr,score,score_std,best,best_epoch,epochs,status,rank,bracket\n");
    cr_assert(fgets(line, sizeof line, f));
    cr_assert_str_eq(line, "0,0.1,0.000000,1.000000,nan,0,0,completed,2,0\n");
    cr_assert(fgets(line, sizeof line, f));
    cr_assert_str_eq(line, "1,0.01,1.000000,1.000000,nan,0,0,completed,1,0\n");
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

/* ---- pruning: a synthetic objective whose decisions are worked out by hand ---------------------- *
 * Trial t reports base[t] + slope[t] * e after epoch e (8 epochs, maximised) and scores its last
 * report. eta 2, first rung 1: rungs after epochs 1, 2, 4, 8 (0-based 0, 1, 3, 7). A trial goes
 * on when fewer than max(1, n/2) of the n trials <= t at the rung are strictly better:
 *   t0 .50 flat            alone at every rung                               -> completes (8 epochs)
 *   t1 .40 +.05   e0: {.50 .40}, 1 better, keep 1                            -> pruned after 1 epoch
 *   t2 .60 -.02   e0 {.50 .40 .60} 0 better; e1 {.50 .58}; e3 {.50 .54}; e7 {.50 .46}: 1 better
 *                                                                            -> pruned after 8 epochs
 *   t3 .30 flat   e0: 4 trials, keep 2, 3 better                             -> pruned after 1 epoch
 *   t4 .55 +.01   e0: 5 trials, keep 2, 1 better (.60); e1 {.50 .58 .56}: 1 better, keep 1
 *                                                                            -> pruned after 2 epochs
 *   t5 .45 flat   e0: 6 trials, keep 3, 3 better (.50 .60 .55)               -> pruned after 1 epoch */
static const double base[] = {.50, .40, .60, .30, .55, .45}, slope[] = {0, .05, -.02, 0, .01, 0};
static const double ids[] = {0, 1, 2, 3, 4, 5};

static nb_status curve_trial(const nb_hp_config *cfg, int fold, int k, void *user, double *score) {
    (void)fold, (void)k, (void)user;
    const int t = (int)nb_hp_get(cfg, "id");
    for (int e = 0; e < 8; e++) {
        *score = base[t] + slope[t] * e;
        if (!nb_search_report(cfg, e, *score)) break;
    }
    return NB_OK;
}

static void assert_same_result(const nb_search_result *a, const nb_search_result *b) {
    cr_assert_eq(a->n_trials, b->n_trials);
    cr_assert_eq(a->best, b->best);
    for (int t = 0; t < a->n_trials; t++) {
        const nb_trial *x = &a->trials[t], *y = &b->trials[t];
        cr_assert(x->score == y->score || (isnan(x->score) && isnan(y->score)), "trial %d: %g vs %g", t, x->score, y->score);
        cr_assert_eq(x->score_std, y->score_std);
        cr_assert_eq(x->n_epochs, y->n_epochs, "trial %d", t);
        cr_assert_eq(x->pruned, y->pruned, "trial %d", t);
        cr_assert_eq(x->bracket, y->bracket, "trial %d", t);
        cr_assert_eq(x->best_epoch, y->best_epoch);
        cr_assert_eq(x->cfg.seed, y->cfg.seed);
        cr_assert_eq(memcmp(x->cfg.values, y->cfg.values, sizeof x->cfg.values), 0);
        if (x->n_epochs) cr_assert_eq(memcmp(x->curve, y->curve, (size_t)x->n_epochs * sizeof *x->curve), 0, "trial %d curve", t);
    }
}

/* the same search in 2 and 3 worker processes: the same decisions and results as seq */
static void assert_workers_equal_sequential(nb_search_opts o, const nb_search_result *seq) {
    for (int workers = 2; workers <= 3; workers++) {
        nb_search_result p;
        o.workers = workers;
        cr_assert_eq(nb_search_run(&o, curve_trial, NULL, &p), NB_OK, "%s", nb_last_error());
        assert_same_result(seq, &p);
        nb_search_result_free(&p);
    }
}

Test(search, asha_prunes_as_worked_out_by_hand) {
    nb_hp_space sp[] = {{.name = "id", .kind = NB_HP_CHOICE, .n_choices = 6, .choices = ids}};
    nb_search_opts o = {.space = sp, .n_hp = 1, .maximize = true, .prune_eta = 2};
    nb_search_result r;
    cr_assert_eq(nb_search_run(&o, curve_trial, NULL, &r), NB_OK, "%s", nb_last_error());
    static const int64_t epochs[] = {8, 1, 8, 1, 2, 1};
    static const bool pruned[] = {false, true, true, true, true, true};
    static const int64_t best_epoch[] = {0, 0, 0, 0, 1, 0};
    int64_t total = 0;
    for (int t = 0; t < 6; t++) {
        const nb_trial *tr = &r.trials[t];
        cr_assert_eq(tr->n_epochs, epochs[t], "trial %d ran %lld epochs", t, (long long)tr->n_epochs);
        cr_assert_eq(tr->pruned, pruned[t], "trial %d", t);
        cr_assert_eq(tr->best_epoch, best_epoch[t], "trial %d", t);
        cr_assert_eq(tr->score, base[t] + slope[t] * (double)(epochs[t] - 1));
        for (int e = 0; e < tr->n_epochs; e++) cr_assert_eq(tr->curve[e], base[t] + slope[t] * e);
        total += tr->n_epochs;
    }
    cr_assert_eq(total, 21, "21 of 48 epochs");
    cr_assert_eq(r.best, 0, "the only completed trial");

    /* the leaderboard: completed first, then the pruned by score (t4 .56, t2 .46, t5, t1, t3) */
    cr_assert_eq(nb_search_write_csv(&r, tmp("board.csv")), NB_OK);
    char *csv = slurp(tmp("board.csv"), NULL);
    cr_assert(strstr(csv, "trial,id,score,score_std,best,best_epoch,epochs,status,rank,bracket\n"), "%s", csv);
    cr_assert(strstr(csv, "\n0,0,0.500000,0.000000,0.500000,1,8,completed,1,0\n"), "%s", csv);
    cr_assert(strstr(csv, "\n4,4,0.560000,0.000000,0.560000,2,2,pruned,2,0\n"), "%s", csv);
    cr_assert(strstr(csv, "\n2,2,0.460000,0.000000,0.600000,1,8,pruned,3,0\n"), "%s", csv);
    cr_assert(strstr(csv, "\n3,3,0.300000,0.000000,0.300000,1,1,pruned,6,0\n"), "%s", csv);
    free(csv);

    /* the picture: a line per trial, a cross per pruned trial, the rungs after 1, 2, 4, 8 epochs */
    cr_assert_eq(nb_search_svg(&r, tmp("search.svg")), NB_OK, "%s", nb_last_error());
    cr_assert_eq(svg_count(tmp("search.svg"), "polyline", "series"), 6);
    cr_assert_eq(svg_count(tmp("search.svg"), "path", "end-mark"), 5);
    cr_assert_eq(svg_count(tmp("search.svg"), "line", "mark"), 4);
    char *svg = slurp(tmp("search.svg"), NULL);
    cr_assert(strstr(svg, ">trial 4 (pruned)</text>") && strstr(svg, ">rung 3</text>"));
    free(svg);

    assert_workers_equal_sequential(o, &r);
    nb_search_result_free(&r);
}

/* Hyperband with 2 brackets on the same curves: trials 0, 2, 4 in bracket 0 (rungs after 1, 2,
 * 4, 8 epochs), trials 1, 3, 5 in bracket 1 (rungs after 2, 4, 8), each compared only with its
 * own bracket (keep max(1, n/2) of the n trials <= t at the rung, ties go on):
 *   bracket 0: t0 alone -> completes; t2 as in plain ASHA (e7 {.50 .46}) -> pruned after 8;
 *              t4 e0 {.50 .60 .55}: keep 1, 1 better -> pruned after 1
 *   bracket 1: t1 .40 +.05 alone -> completes (.75); t3 e1 {.45 .30}: 1 better -> pruned after 2;
 *              t5 e1 {.45 .30 .45}: keep 1, none strictly better -> on; e3 {.55 .45} -> pruned after 4 */
Test(search, hyperband_brackets_prune_as_worked_out_by_hand) {
    nb_hp_space sp[] = {{.name = "id", .kind = NB_HP_CHOICE, .n_choices = 6, .choices = ids}};
    nb_search_opts o = {.space = sp, .n_hp = 1, .maximize = true, .prune_eta = 2, .prune_brackets = 2};
    nb_search_result r;
    cr_assert_eq(nb_search_run(&o, curve_trial, NULL, &r), NB_OK, "%s", nb_last_error());
    static const int64_t epochs[] = {8, 8, 8, 2, 1, 4};
    static const bool pruned[] = {false, false, true, true, true, true};
    int64_t total = 0;
    for (int t = 0; t < 6; t++) {
        const nb_trial *tr = &r.trials[t];
        cr_assert_eq(tr->bracket, t % 2, "trial %d", t);
        cr_assert_eq(tr->n_epochs, epochs[t], "trial %d ran %lld epochs", t, (long long)tr->n_epochs);
        cr_assert_eq(tr->pruned, pruned[t], "trial %d", t);
        total += tr->n_epochs;
    }
    cr_assert_eq(total, 31, "31 of 48 epochs");
    cr_assert_eq(r.best, 1, "bracket 1 kept the late bloomer (.75)");
    /* the leaderboard names each trial's bracket */
    cr_assert_eq(nb_search_write_csv(&r, tmp("brackets.csv")), NB_OK);
    char *csv = slurp(tmp("brackets.csv"), NULL);
    cr_assert(strstr(csv, ",status,rank,bracket\n"), "%s", csv);
    cr_assert(strstr(csv, "\n1,1,0.750000,0.000000,0.750000,8,8,completed,1,1\n"), "%s", csv);
    cr_assert(strstr(csv, "\n0,0,0.500000,0.000000,0.500000,1,8,completed,2,0\n"), "%s", csv);
    free(csv);
    assert_workers_equal_sequential(o, &r);
    nb_search_result_free(&r);
    o.prune_eta = 0, o.workers = 0; /* brackets need pruning */
    cr_assert_eq(nb_search_run(&o, curve_trial, NULL, &r), NB_ERR_VALUE);
    cr_assert(strstr(nb_last_error(), "prune_brackets 2"), "%s", nb_last_error());
}

static nb_status bad_report_trial(const nb_hp_config *cfg, int fold, int k, void *user, double *score) {
    (void)fold, (void)k, (void)user;
    nb_search_report(cfg, 0, 1.0);
    *score = nb_search_report(cfg, 2, 1.0) ? 1 : 0; /* epoch 1 skipped */
    return NB_OK;
}

static nb_status fails_at_3(const nb_hp_config *cfg, int fold, int k, void *user, double *score) {
    (void)fold, (void)k, (void)user;
    *score = cfg->trial;
    return cfg->trial >= 3 ? nb_set_error(NB_ERR_VALUE, "trial %d failed", cfg->trial) : NB_OK;
}

Test(search, pruning_and_worker_errors) {
    nb_hp_space sp[] = {{.name = "id", .kind = NB_HP_CHOICE, .n_choices = 6, .choices = ids}};
    nb_search_opts o = {.space = sp, .n_hp = 1, .prune_eta = 2, .k_folds = 3};
    nb_search_result r;
    cr_assert_eq(nb_search_run(&o, curve_trial, NULL, &r), NB_ERR_VALUE, "pruning needs a holdout");
    cr_assert(strstr(nb_last_error(), "holdout"), "%s", nb_last_error());
    o.k_folds = 0, o.prune_eta = 1;
    cr_assert_eq(nb_search_run(&o, curve_trial, NULL, &r), NB_ERR_VALUE);
    o.prune_eta = 3;
    for (int workers = 0; workers <= 2; workers += 2) {
        o.workers = workers;
        cr_assert_eq(nb_search_run(&o, bad_report_trial, NULL, &r), NB_ERR_VALUE);
        cr_assert(strstr(nb_last_error(), "trial 0 reported epoch 2 after 1 epochs"), "%s", nb_last_error());
        cr_assert_null(r.trials);
        cr_assert_eq(nb_search_run(&o, fails_at_3, NULL, &r), NB_ERR_VALUE);
        cr_assert_str_eq(nb_last_error(), "trial 3 failed", "the first failing trial's error");
    }
    /* with folds (no pruning) every fold reports; the curve is fold 0's */
    o.prune_eta = 0, o.k_folds = 3, o.maximize = true;
    for (int workers = 0; workers <= 2; workers += 2) {
        o.workers = workers;
        cr_assert_eq(nb_search_run(&o, curve_trial, NULL, &r), NB_OK, "%s", nb_last_error());
        for (int t = 0; t < 6; t++) {
            cr_assert_eq(r.trials[t].n_epochs, 8);
            cr_assert_not(r.trials[t].pruned);
        }
        cr_assert_eq(r.best, 1, "t1 ends highest (.75)");
        nb_search_result_free(&r);
    }
    /* outside a search a report only says go on */
    nb_hp_config c;
    cr_assert_eq(nb_search_config(&o, 0, &c), NB_OK);
    cr_assert(nb_search_report(&c, 5, NAN));
}

/* ---- pruning inside nb_fit, in parallel: a real training run per trial --------------------------- */
typedef struct {
    nb_tensor *x, *y;
} points;

static nb_status fit_trial(const nb_hp_config *cfg, int fold, int k, void *user, double *score) {
    const points *d = user;
    int64_t tr[120], va[120], ntr, nva;
    nb_status st = nb_kfold_split(120, k, fold, 5, tr, &ntr, va, &nva);
    if (st != NB_OK) return st;
    nb_tensor *xt = nb_tensor_new(NB_F32, NB_SHAPE(ntr, 2)), *yt = nb_tensor_new(NB_I64, NB_SHAPE(ntr));
    nb_tensor *xv = nb_tensor_new(NB_F32, NB_SHAPE(nva, 2)), *yv = nb_tensor_new(NB_I64, NB_SHAPE(nva));
    for (int64_t i = 0; i < ntr; i++) {
        memcpy((float *)xt->data + 2 * i, (float *)d->x->data + 2 * tr[i], 2 * sizeof(float));
        ((int64_t *)yt->data)[i] = ((int64_t *)d->y->data)[tr[i]];
    }
    for (int64_t i = 0; i < nva; i++) {
        memcpy((float *)xv->data + 2 * i, (float *)d->x->data + 2 * va[i], 2 * sizeof(float));
        ((int64_t *)yv->data)[i] = ((int64_t *)d->y->data)[va[i]];
    }
    nb_model *model = nb_model_new(cfg->seed);
    nb_module *net = nb_sequential(model, "net", NB_MODULES(nb_linear_module(model, (nb_linear_opts){.in = 2, .out = 16}),
                                                           nb_tanh_module(model, NULL),
                                                           nb_linear_module(model, (nb_linear_opts){.in = 16, .out = 2})));
    nb_ctx *c0 = nb_ctx_new();
    nb_optim *opt = nb_optim_new(&nb_sgd, model->ps, &(nb_hparams){.lr = nb_hp_get(cfg, "lr")});
    nb_batcher *btr = nb_batcher_new(xt, yt, &(nb_batch_opts){.batch_size = 16, .shuffle = true, .seed = cfg->seed});
    nb_batcher *bva = nb_batcher_new(xv, yv, &(nb_batch_opts){.batch_size = 24});
    nb_callback cb = nb_search_callback(cfg);
    nb_history h;
    st = net && c0 && opt && btr && bva ? nb_fit(c0, NULL, net, opt, btr, &h, &(nb_fit_opts){.epochs = 9, .val = bva,
                                                  .n_callbacks = 1, .callbacks = &cb})
                                         : NB_ERR_NOMEM;
    if (st == NB_OK) *score = h.epochs[h.n - 1].val_loss;
    nb_history_free(&h);
    nb_batcher_free(btr), nb_batcher_free(bva), nb_optim_free(opt), nb_ctx_free(c0), nb_model_free(model);
    nb_tensor_free(xt), nb_tensor_free(yt), nb_tensor_free(xv), nb_tensor_free(yv);
    return st;
}

Test(search, parallel_workers_equal_the_sequential_run_with_nb_fit) {
    points d = {nb_tensor_new(NB_F32, NB_SHAPE(120, 2)), nb_tensor_new(NB_I64, NB_SHAPE(120))};
    nb_rng rng = nb_rng_new(11);
    nb_rng_normal(&rng, d.x, 0, 1);
    for (int i = 0; i < 120; i++) {
        const float *xi = (float *)d.x->data + 2 * i;
        ((int64_t *)d.y->data)[i] = xi[0] * xi[1] > 0; /* xor-like: needs the hidden layer */
    }
    nb_hp_space sp[] = {{.name = "lr", .kind = NB_HP_LOG_UNIFORM, .lo = 1e-3, .hi = 1}};
    nb_search_opts o = {.space = sp, .n_hp = 1, .random = true, .n_trials = 6, .seed = 4, .prune_eta = 3};
    nb_search_result seq, par;
    cr_assert_eq(nb_search_run(&o, fit_trial, &d, &seq), NB_OK, "%s", nb_last_error());
    o.workers = 2;
    cr_assert_eq(nb_search_run(&o, fit_trial, &d, &par), NB_OK, "%s", nb_last_error());
    assert_same_result(&seq, &par);
    int npruned = 0;
    for (int t = 0; t < 6; t++) {
        npruned += seq.trials[t].pruned;
        cr_assert(seq.trials[t].n_epochs == 9 || seq.trials[t].pruned, "trial %d", t);
        /* nb_fit reports the validation loss (its default monitor): the score is the last report */
        cr_assert_eq(seq.trials[t].score, seq.trials[t].curve[seq.trials[t].n_epochs - 1]);
    }
    cr_assert_gt(npruned, 0, "some of 6 log-uniform learning rates are bad enough to prune");
    nb_search_result_free(&seq), nb_search_result_free(&par);
    nb_tensor_free(d.x), nb_tensor_free(d.y);
}
