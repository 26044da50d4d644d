/* Hyperparameter search: configurations from a grid or from seeded random draws, the results
 * as a leaderboard (text, CSV) and an SVG, k-fold splits. Running the trials (in this process or
 * in workers) and pruning them is src/search/run.c. */
#include "../internal.h"
#include "search_internal.h"

#include <stdlib.h>
#include <time.h>

double nb_hp_get(const nb_hp_config *cfg, const char *name) {
    for (int i = 0; cfg && name && i < cfg->n_hp; i++)
        if (cfg->space[i].name && strcmp(cfg->space[i].name, name) == 0) return cfg->values[i];
    return NAN;
}

nb_status nb__search_check_opts(const nb_search_opts *o) {
    if (!o || !o->space) return nb_set_error(NB_ERR_NULL, "search: options or space is NULL");
    if (o->n_hp < 1 || o->n_hp > NB_SEARCH_MAX_HP)
        return nb_set_error(NB_ERR_VALUE, "search: %d hyperparameters (1..%d allowed)", o->n_hp, NB_SEARCH_MAX_HP);
    for (int i = 0; i < o->n_hp; i++) {
        const nb_hp_space *s = &o->space[i];
        const char *nm = s->name;
        /* a name is how nb_hp_get finds the value and a column of the CSV: present, unique, plain */
        if (!nm || !nm[0]) return nb_set_error(NB_ERR_VALUE, "search: hyperparameter %d has no name", i);
        if (strpbrk(nm, ",\"\n\r"))
            return nb_set_error(NB_ERR_VALUE, "search: hyperparameter name '%s' holds a comma, quote or line break", nm);
        for (int j = 0; j < i; j++)
            if (!strcmp(nm, o->space[j].name))
                return nb_set_error(NB_ERR_VALUE, "search: hyperparameters %d and %d are both named '%s'", j, i, nm);
        switch (s->kind) {
        case NB_HP_CHOICE:
            if (s->n_choices < 1 || !s->choices)
                return nb_set_error(NB_ERR_VALUE, "search: '%s' needs at least one choice", nm);
            break;
        case NB_HP_UNIFORM:
            if (!(s->lo <= s->hi) || !isfinite(s->lo) || !isfinite(s->hi))
                return nb_set_error(NB_ERR_VALUE, "search: uniform '%s' needs finite lo <= hi, got [%g, %g]", nm, s->lo, s->hi);
            break;
        case NB_HP_LOG_UNIFORM:
            if (!(s->lo > 0 && s->lo <= s->hi) || !isfinite(s->hi))
                return nb_set_error(NB_ERR_VALUE, "search: log-uniform '%s' needs 0 < lo <= hi, got [%g, %g]", nm, s->lo, s->hi);
            break;
        default: return nb_set_error(NB_ERR_VALUE, "search: '%s' has unknown kind %d", nm, (int)s->kind);
        }
    }
    if (o->random && o->n_trials < 1) return nb_set_error(NB_ERR_VALUE, "search: random search needs n_trials >= 1");
    if (o->prune_eta < 0 || o->prune_eta == 1)
        return nb_set_error(NB_ERR_VALUE, "search: prune_eta %d must be 0 (off) or >= 2", o->prune_eta);
    if (o->prune_min_epochs < 0)
        return nb_set_error(NB_ERR_VALUE, "search: prune_min_epochs %lld must be >= 0", (long long)o->prune_min_epochs);
    if (o->prune_brackets < 0 || (o->prune_brackets > 1 && !o->prune_eta) || o->prune_brackets > 16)
        return nb_set_error(NB_ERR_VALUE, "search: prune_brackets %d (0 or 1: one bracket; 2..16 with prune_eta >= 2)",
                            o->prune_brackets);
    if (o->prune_eta && o->k_folds > 1)
        return nb_set_error(NB_ERR_VALUE, "search: pruning compares one curve per trial, so it needs a holdout (k_folds %d)",
                            o->k_folds);
    return NB_OK;
}

int64_t nb_search_grid_size(const nb_search_opts *o) {
    if (nb__search_check_opts(o) != NB_OK) return -1;
    int64_t n = 1;
    for (int i = 0; i < o->n_hp; i++) {
        if (o->space[i].kind != NB_HP_CHOICE) {
            nb_set_error(NB_ERR_VALUE, "search: grid search needs choices, but '%s' is a range (use random search)",
                         o->space[i].name ? o->space[i].name : "?");
            return -1;
        }
        n *= o->space[i].n_choices;
    }
    return n;
}

nb_status nb_search_config(const nb_search_opts *o, int64_t idx, nb_hp_config *cfg) {
    nb_status st = nb__search_check_opts(o);
    if (st != NB_OK) return st;
    if (!cfg || idx < 0 || idx > INT32_MAX) return nb_set_error(NB_ERR_VALUE, "search_config: bad index or NULL config");
    cfg->n_hp = o->n_hp;
    cfg->space = o->space;
    cfg->trial = (int)idx;
    cfg->seed = nb_rng_stream(o->seed, (uint64_t)idx).seed;
    cfg->run_ = NULL;
    if (!o->random) {
        int64_t total = nb_search_grid_size(o);
        if (total < 0) return nb_last_status();
        if (idx >= total) return nb_set_error(NB_ERR_INDEX, "search_config: index %lld >= grid size %lld", (long long)idx, (long long)total);
        for (int i = o->n_hp - 1; i >= 0; i--) {  /* last hyperparameter varies fastest */
            int64_t n = o->space[i].n_choices;
            cfg->values[i] = o->space[i].choices[idx % n];
            idx /= n;
        }
        return NB_OK;
    }
    for (int i = 0; i < o->n_hp; i++) {
        const nb_hp_space *s = &o->space[i];
        double u = nb_philox_uniform(o->seed, (uint64_t)idx * NB_SEARCH_MAX_HP + (uint64_t)i);
        switch (s->kind) {
        case NB_HP_CHOICE: {
            int k = (int)(u * s->n_choices);
            cfg->values[i] = s->choices[k < s->n_choices ? k : s->n_choices - 1];
            break;
        }
        case NB_HP_UNIFORM: { /* hi - lo may overflow (say [-1e308, 1e308]): then the weighted form */
            const double w = s->hi - s->lo;
            cfg->values[i] = isfinite(w) ? s->lo + u * w : (1.0 - u) * s->lo + u * s->hi;
            break;
        }
        case NB_HP_LOG_UNIFORM: cfg->values[i] = exp(log(s->lo) + u * (log(s->hi) - log(s->lo))); break;
        }
    }
    return NB_OK;
}

void nb_search_result_free(nb_search_result *res) {
    if (!res) return;
    for (int t = 0; res->trials && t < res->n_trials; t++) free(res->trials[t].curve);
    free(res->trials);
    memset(res, 0, sizeof *res);
}

/* ranks[i] = 1 + number of trials strictly before trial i in the leaderboard's order */
static int rank_of(const nb_search_result *res, int i) {
    int r = 1;
    for (int j = 0; j < res->n_trials; j++) r += nb__search_ahead(res, j, i);
    return r;
}

nb_status nb_search_write_csv(const nb_search_result *res, const char *path) {
    if (!res || !path) return nb_set_error(NB_ERR_NULL, "search_write_csv: NULL argument");
    if (res->n_trials == 0) return nb_set_error(NB_ERR_STATE, "search_write_csv: no trials");
    FILE *f = fopen(path, "w");
    if (!f) return nb_set_error(NB_ERR_IO, "search_write_csv: cannot open '%s' for writing", path);
    const nb_hp_config *c0 = &res->trials[0].cfg;
    fprintf(f, "trial");
    for (int i = 0; i < c0->n_hp; i++) fprintf(f, ",%s", c0->space[i].name ? c0->space[i].name : "?");
    fprintf(f, ",score,score_std,best,best_epoch,epochs,status,rank,bracket\n");
    for (int t = 0; t < res->n_trials; t++) {
        const nb_trial *tr = &res->trials[t];
        fprintf(f, "%d", t);
        for (int i = 0; i < tr->cfg.n_hp; i++) fprintf(f, ",%.6g", tr->cfg.values[i]);
        fprintf(f, ",%.6f,%.6f,%.6f,%lld,%lld,%s,%d,%d\n", tr->score, tr->score_std, tr->best, (long long)tr->best_epoch + 1,
                (long long)tr->n_epochs, tr->pruned ? "pruned" : "completed", rank_of(res, t), tr->bracket);
    }
    bool ok = !ferror(f);
    ok &= fclose(f) == 0;
    return ok ? NB_OK : nb_set_error(NB_ERR_IO, "search_write_csv: write to '%s' failed", path);
}

void nb_search_print(const nb_search_result *res, FILE *f) {
    if (!res || !f || res->n_trials == 0) return;
    const nb_hp_config *c0 = &res->trials[0].cfg;
    fprintf(f, "rank ");
    for (int i = 0; i < c0->n_hp; i++) fprintf(f, "%12s ", c0->space[i].name ? c0->space[i].name : "?");
    fprintf(f, "%10s %8s %7s\n", "score", "std", "epochs");
    for (int r = 1; r <= res->n_trials; r++)
        for (int t = 0; t < res->n_trials; t++) {
            if (rank_of(res, t) != r) continue;
            const nb_trial *tr = &res->trials[t];
            fprintf(f, "%4d ", r);
            for (int i = 0; i < tr->cfg.n_hp; i++) fprintf(f, "%12.4g ", tr->cfg.values[i]);
            fprintf(f, "%10.4f %8.4f %7lld%s%s\n", tr->score, tr->score_std, (long long)tr->n_epochs,
                    tr->pruned ? "  pruned" : "", t == res->best ? "  <- best" : "");
        }
}

nb_status nb_search_svg(const nb_search_result *res, const char *path) {
    if (!res || !path) return nb_set_error(NB_ERR_NULL, "search_svg: NULL argument");
    char(*names)[32] = calloc((size_t)res->n_trials + 1, sizeof *names);
    nb_series *s = calloc((size_t)res->n_trials + 1, sizeof *s);
    nb_plot_mark *marks = calloc(2 * (size_t)res->n_trials + 64, sizeof *marks);
    char(*labels)[24] = calloc(64, sizeof *labels);
    if (!names || !s || !marks || !labels) {
        free(names), free(s), free(marks), free(labels);
        return nb_set_error(NB_ERR_NOMEM, "search_svg: out of memory");
    }
    int ns = 0, nm = 0;
    int64_t longest = 0;
    for (int t = 0; t < res->n_trials; t++) {
        const nb_trial *tr = &res->trials[t];
        if (tr->n_epochs == 0) continue;
        snprintf(names[ns], sizeof names[0], "trial %d%s", t, tr->pruned ? " (pruned)" : "");
        s[ns] = (nb_series){.name = names[ns], .y = tr->curve, .n = tr->n_epochs};
        ns++;
        longest = tr->n_epochs > longest ? tr->n_epochs : longest;
        if (tr->pruned) /* the cross sits on the last value, at epoch n_epochs */
            marks[nm++] = (nb_plot_mark){.x = (double)tr->n_epochs, .cross = true, .y = tr->curve[tr->n_epochs - 1]};
    }
    const int64_t first = res->prune_min_epochs > 0 ? res->prune_min_epochs : 1;
    int rung = 0;
    for (int64_t r = first; res->prune_eta >= 2 && r <= longest && rung < 64; r *= res->prune_eta, rung++) {
        snprintf(labels[rung], sizeof labels[0], "rung %d", rung);
        marks[nm++] = (nb_plot_mark){.x = (double)r, .label = labels[rung]};
    }
    nb_status st = ns ? nb_plot_svg_marked(path, "search", "epoch", res->maximize ? "validation metric (higher is better)"
                                                                                   : "validation metric (lower is better)",
                                           ns, s, nm, marks)
                      : nb_set_error(NB_ERR_VALUE, "search_svg: no trial reported a value (nb_search_report)");
    free(names), free(s), free(marks), free(labels);
    return st;
}

nb_status nb_kfold_split(int64_t n, int k, int fold, uint64_t seed, int64_t *train, int64_t *n_train, int64_t *val,
                         int64_t *n_val) {
    if (!train || !n_train || !val || !n_val) return nb_set_error(NB_ERR_NULL, "kfold_split: NULL argument");
    if (k < 1 || n < (k == 1 ? 5 : k) || fold < 0 || fold >= k)
        return nb_set_error(NB_ERR_VALUE, "kfold_split: fold %d of k=%d is invalid for %lld samples", fold, k, (long long)n);
    const int parts = k == 1 ? 5 : k; /* a holdout is fold 0 of 5 */
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    if (!perm) return nb_set_error(NB_ERR_NOMEM, "kfold_split: out of memory");
    nb_rng rng = nb_rng_new(seed);
    nb_rng_permutation(&rng, n, perm);
    int64_t lo = n * fold / parts, hi = n * (fold + 1) / parts;
    *n_train = *n_val = 0;
    for (int64_t i = 0; i < n; i++) {
        if (i >= lo && i < hi) val[(*n_val)++] = perm[i];
        else train[(*n_train)++] = perm[i];
    }
    free(perm);
    return NB_OK;
}
