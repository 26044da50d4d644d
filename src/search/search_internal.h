/* Shared by src/search: the option check, and the leaderboard's order. */
#ifndef NABLA_SEARCH_INTERNAL_H
#define NABLA_SEARCH_INTERNAL_H

#include "nabla/search.h"

nb_status nb__search_check_opts(const nb_search_opts *o);

/* true when trial a is strictly ahead of trial b in the leaderboard: completed before pruned,
 * then the better score (NaN last) */
static inline bool nb__search_ahead(const nb_search_result *res, int a, int b) {
    const nb_trial *x = &res->trials[a], *y = &res->trials[b];
    if (x->pruned != y->pruned) return y->pruned;
    if (isnan(x->score)) return false;
    if (isnan(y->score)) return true;
    return res->maximize ? x->score > y->score : x->score < y->score;
}

#endif
