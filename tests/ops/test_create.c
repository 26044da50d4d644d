/* Random draws of src/ops/create.c: value ranges, statistics (for the fixed seed the draws are
 * deterministic, so "within k sigma" is an exact, repeatable check), determinism for a seed and
 * across thread counts, and bad arguments. */
#include "common.h"

#include <string.h>

TestSuite(create, .init = ctx_setup, .fini = ctx_teardown);

/* |count - n p| within 5 binomial standard deviations */
static void assert_frequency(int64_t count, int64_t n, double p, const char *what) {
    const double sd = sqrt(n * p * (1 - p));
    cr_assert(fabs((double)count - n * p) <= 5 * sd + 1e-9, "%s: %lld of %lld, expected %.1f +- %.1f", what, (long long)count,
              (long long)n, n * p, 5 * sd);
}

static int64_t at(const nb_tensor *t, int64_t i) { return ((const int64_t *)t->data)[i]; }

Test(create, randint_range_and_uniformity) {
    const int64_t n = 200000;
    nb_tensor *t = nb_randint(ctx, -3, 7, NB_SHAPE(n / 4, 4));
    cr_assert(t && t->dtype == NB_I64 && t->ndim == 2 && t->shape[1] == 4, "%s", nb_ctx_error(ctx));
    int64_t count[10] = {0};
    for (int64_t i = 0; i < n; i++) {
        const int64_t v = at(t, i);
        cr_assert(v >= -3 && v < 7, "element %lld = %lld", (long long)i, (long long)v);
        count[v + 3]++;
    }
    for (int k = 0; k < 10; k++) assert_frequency(count[k], n, 0.1, "randint(-3, 7) value");
    /* one value, and the widest range without overflow */
    nb_tensor *one = nb_randint(ctx, 5, 6, NB_SHAPE(100));
    for (int64_t i = 0; i < 100; i++) cr_assert_eq(at(one, i), 5);
    nb_tensor *wide = nb_randint(ctx, INT64_MIN, INT64_MAX, NB_SHAPE(1000));
    int64_t neg = 0;
    for (int64_t i = 0; i < 1000; i++) {
        cr_assert_neq(at(wide, i), INT64_MAX);
        neg += at(wide, i) < 0;
    }
    assert_frequency(neg, 1000, 0.5, "randint over all of i64: negatives");
}

Test(create, bernoulli_means_follow_p) {
    const int64_t n = 50000;
    static const double ps[] = {0, 0.2, 0.7, 1};
    nb_tensor *p = nb_empty(ctx, NB_F32, NB_SHAPE(n, 4)); /* transposed: a strided p */
    for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) nb_set(p, i * 4 + k, ps[k]);
    nb_tensor *pt = nb_transpose(ctx, p, 0, 1), *b = nb_bernoulli(ctx, pt);
    cr_assert(b && b->dtype == NB_F32 && b->shape[0] == 4 && b->shape[1] == n, "%s", nb_ctx_error(ctx));
    for (int k = 0; k < 4; k++) {
        int64_t ones = 0;
        for (int64_t i = 0; i < n; i++) {
            const double v = nb_get(b, k * n + i);
            cr_assert(v == 0 || v == 1);
            ones += v == 1;
        }
        if (ps[k] == 0 || ps[k] == 1) cr_assert_eq(ones, (int64_t)(ps[k] * n), "p = %g", ps[k]);
        else assert_frequency(ones, n, ps[k], "bernoulli");
    }
}

Test(create, multinomial_with_replacement_frequencies) {
    const int64_t n = 100000;
    nb_tensor *w = test_from(ctx, (double[]){1, 0, 3, 6, 10, 0, 0, 10}, NB_SHAPE(2, 4)); /* weights, not normalised */
    nb_tensor *s = nb_multinomial(ctx, w, n, true);
    cr_assert(s && s->dtype == NB_I64 && s->ndim == 2 && s->shape[0] == 2 && s->shape[1] == n, "%s", nb_ctx_error(ctx));
    static const double p[2][4] = {{0.1, 0, 0.3, 0.6}, {0.5, 0, 0, 0.5}};
    for (int r = 0; r < 2; r++) {
        int64_t count[4] = {0};
        for (int64_t i = 0; i < n; i++) count[at(s, r * n + i)]++;
        for (int c = 0; c < 4; c++) {
            if (p[r][c] == 0) cr_assert_eq(count[c], 0, "a zero weight was drawn (row %d, category %d)", r, c);
            else assert_frequency(count[c], n, p[r][c], "multinomial with replacement");
        }
    }
    /* 1-D probs give a 1-D result */
    nb_tensor *one = nb_multinomial(ctx, test_from(ctx, (double[]){0, 2}, NB_SHAPE(2)), 5, true);
    cr_assert(one && one->ndim == 1 && one->shape[0] == 5);
    for (int i = 0; i < 5; i++) cr_assert_eq(at(one, i), 1);
    nb_tensor *none = nb_multinomial(ctx, nb_ones(ctx, NB_F64, NB_SHAPE(0, 3)), 2, true);
    cr_assert(none && none->ndim == 2 && none->shape[0] == 0 && none->shape[1] == 2, "%s", nb_ctx_error(ctx));
}

Test(create, multinomial_without_replacement_is_sequential_sampling) {
    /* first and second draws of (N, 4) rows against the closed forms of drawing twice, the
     * category drawn first being removed: P(second = j) = sum_{i != j} w_i/W * w_j/(W - w_i) */
    const int64_t n = 40000;
    static const double w[] = {1, 2, 3, 4};
    nb_tensor *probs = nb_expand(ctx, test_from(ctx, w, NB_SHAPE(1, 4)), NB_SHAPE(n, 4));
    nb_tensor *s = nb_multinomial(ctx, probs, 2, false);
    cr_assert(s && s->shape[0] == n && s->shape[1] == 2, "%s", nb_ctx_error(ctx));
    int64_t first[4] = {0}, second[4] = {0};
    for (int64_t r = 0; r < n; r++) {
        cr_assert_neq(at(s, 2 * r), at(s, 2 * r + 1), "row %lld repeats a category", (long long)r);
        first[at(s, 2 * r)]++;
        second[at(s, 2 * r + 1)]++;
    }
    for (int j = 0; j < 4; j++) {
        double p2 = 0;
        for (int i = 0; i < 4; i++)
            if (i != j) p2 += w[i] / 10 * w[j] / (10 - w[i]);
        assert_frequency(first[j], n, w[j] / 10, "first draw");
        assert_frequency(second[j], n, p2, "second draw");
    }
    /* all categories: a permutation of the positive ones */
    nb_tensor *all = nb_multinomial(ctx, test_from(ctx, (double[]){5, 0.1, 2}, NB_SHAPE(3)), 3, false);
    int seen = 0;
    for (int i = 0; i < 3; i++) seen |= 1 << at(all, i);
    cr_assert_eq(seen, 7);
}

Test(create, randperm_is_a_permutation) {
    nb_tensor *p = nb_randperm(ctx, 1000);
    cr_assert(p && p->dtype == NB_I64 && p->ndim == 1 && p->shape[0] == 1000, "%s", nb_ctx_error(ctx));
    static bool seen[1000];
    int64_t fixed = 0;
    for (int64_t i = 0; i < 1000; i++) {
        const int64_t v = at(p, i);
        cr_assert(v >= 0 && v < 1000 && !seen[v], "element %lld = %lld", (long long)i, (long long)v);
        seen[v] = true;
        fixed += v == i;
    }
    cr_assert_leq(fixed, 6, "%lld fixed points (a uniform permutation has 1 on average)", (long long)fixed);
    nb_tensor *empty = nb_randperm(ctx, 0);
    cr_assert(empty && empty->numel == 0);
}

/* each random op once, in order, from a fresh seed; the draws concatenated as doubles */
static void draw_all(nb_ctx *c, uint64_t seed, double *out, int64_t n) {
    nb_ctx_seed(c, seed);
    nb_tensor *p = nb_full(c, NB_F64, NB_SHAPE(n), 0.3);
    nb_tensor *t[4] = {nb_randint(c, 0, 1000, NB_SHAPE(n)), nb_bernoulli(c, p),
                       nb_multinomial(c, nb_full(c, NB_F64, NB_SHAPE(4, 8), 1.0), 8, false), nb_randperm(c, 50)};
    int64_t k = 0;
    for (int i = 0; i < 4; i++) {
        cr_assert_not_null(t[i], "%s", nb_ctx_error(c));
        for (int64_t e = 0; e < t[i]->numel; e++) out[k++] = nb_get(t[i], e);
    }
}

Test(create, deterministic_for_a_seed_and_any_thread_count, .timeout = 60) {
    const int64_t n = 100000; /* above the threshold where the loops run on several threads */
    const int64_t total = 2 * n + 32 + 50;
    double *a = malloc((size_t)total * sizeof *a), *b = malloc((size_t)total * sizeof *b);
    const bool automatic = nb_threads_auto();
    const int saved = nb_get_num_threads();
    nb_set_num_threads(1);
    draw_all(ctx, 42, a, n);
    nb_set_num_threads(2);
    draw_all(ctx, 42, b, n);
    nb_set_num_threads(automatic ? 0 : saved);
    cr_assert(memcmp(a, b, (size_t)total * sizeof *a) == 0, "the draws depend on the thread count");
    draw_all(ctx, 43, b, n);
    cr_assert(memcmp(a, b, (size_t)n * sizeof *a) != 0, "another seed gives other draws");
    /* consecutive calls continue the stream instead of repeating it */
    nb_ctx_seed(ctx, 42);
    nb_tensor *r1 = nb_randint(ctx, 0, 1000, NB_SHAPE(64)), *r2 = nb_randint(ctx, 0, 1000, NB_SHAPE(64));
    cr_assert(memcmp(r1->data, r2->data, 64 * sizeof(int64_t)) != 0);
    free(a);
    free(b);
}

/* the call just made returned NULL with status want and a message holding every word */
static void refused(const nb_tensor *got, nb_status want, const char *const *words) {
    cr_assert_null(got);
    cr_assert_eq(nb_ctx_status(ctx), want, "%s", nb_ctx_error(ctx));
    for (int i = 0; words[i]; i++) cr_assert(strstr(nb_ctx_error(ctx), words[i]), "'%s' lacks '%s'", nb_ctx_error(ctx), words[i]);
    nb_ctx_clear_error(ctx);
}
#define WORDS(...) ((const char *[]){__VA_ARGS__, NULL})

Test(create, random_ops_refuse_bad_arguments) {
    refused(nb_randint(ctx, 3, 3, NB_SHAPE(2)), NB_ERR_VALUE, WORDS("randint", "low 3", "high 3"));
    refused(nb_randint(ctx, 0, 3, NB_SHAPE(2, -1)), NB_ERR_SHAPE, WORDS("randint", "(2,-1)"));
    cr_assert_null(nb_randint(NULL, 0, 3, NB_SHAPE(2)));
    cr_assert_eq(nb_last_status(), NB_ERR_NULL);
    refused(nb_randperm(ctx, -1), NB_ERR_SHAPE, WORDS("randperm"));
    refused(nb_bernoulli(ctx, test_from(ctx, (double[]){0.5, 1.5}, NB_SHAPE(2))), NB_ERR_VALUE, WORDS("bernoulli", "p[1] = 1.5"));
    refused(nb_bernoulli(ctx, test_from(ctx, (double[]){NAN}, NB_SHAPE(1))), NB_ERR_VALUE, WORDS("bernoulli", "nan"));
    refused(nb_bernoulli(ctx, nb_arange(ctx, NB_I64, 0, 2, 1)), NB_ERR_DTYPE, WORDS("bernoulli", "i64"));
    refused(nb_bernoulli(ctx, NULL), NB_ERR_NULL, WORDS("bernoulli"));
    nb_tensor *w = test_from(ctx, (double[]){1, 0, 2}, NB_SHAPE(3));
    refused(nb_multinomial(ctx, w, 3, false), NB_ERR_VALUE, WORDS("multinomial", "2 positive weights", "without replacement"));
    refused(nb_multinomial(ctx, w, 4, false), NB_ERR_VALUE, WORDS("multinomial", "4 samples without replacement"));
    refused(nb_multinomial(ctx, w, 0, true), NB_ERR_VALUE, WORDS("multinomial", "0 samples"));
    refused(nb_multinomial(ctx, test_from(ctx, (double[]){1, -1}, NB_SHAPE(2)), 1, true), NB_ERR_VALUE,
            WORDS("multinomial", "probs[0, 1] = -1"));
    refused(nb_multinomial(ctx, test_from(ctx, (double[]){1, INFINITY}, NB_SHAPE(2)), 1, true), NB_ERR_VALUE, WORDS("inf"));
    refused(nb_multinomial(ctx, test_from(ctx, (double[]){0, 0}, NB_SHAPE(2)), 1, true), NB_ERR_VALUE, WORDS("sum 0"));
    refused(nb_multinomial(ctx, nb_ones(ctx, NB_F64, NB_SHAPE(2, 2, 2)), 1, true), NB_ERR_SHAPE, WORDS("multinomial", "(2,2,2)"));
    refused(nb_multinomial(ctx, nb_ones(ctx, NB_F64, NB_SHAPE(2, 0)), 1, true), NB_ERR_SHAPE, WORDS("multinomial", "(2,0)"));
    /* no draw was consumed by a refused call: the generator is where a fresh seed puts it */
    nb_ctx_seed(ctx, 7);
    nb_tensor *a = nb_randint(ctx, 0, 100, NB_SHAPE(8));
    nb_ctx_seed(ctx, 7);
    cr_assert_null(nb_multinomial(ctx, w, 3, false));
    nb_ctx_clear_error(ctx);
    nb_tensor *b = nb_randint(ctx, 0, 100, NB_SHAPE(8));
    cr_assert(memcmp(a->data, b->data, 8 * sizeof(int64_t)) == 0);
}
