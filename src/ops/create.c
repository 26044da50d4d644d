/* Step tensors made from nothing: constants, ranges, random draws (never recorded). */
#include "../internal.h"

#include <stdlib.h>

static bool check_new(nb_ctx *ctx, const char *op, nb_dtype dt, int ndim, const int64_t *shape) {
    nb__op_name = op;
    if (!ctx) {
        nb_set_error(NB_ERR_NULL, "%s: context is NULL", op);
        return false;
    }
    if ((unsigned)dt > NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "%s: unknown dtype %d", op, (int)dt), false;
    if (ndim < 0 || ndim > NB_MAX_DIMS)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: %d dimensions (at most %d)", op, ndim, NB_MAX_DIMS), false;
    if (ndim > 0 && !shape) return nb__fail(ctx, NB_ERR_NULL, "%s: shape is NULL", op), false;
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0) {
            char b[128];
            return nb__fail(ctx, NB_ERR_SHAPE, "%s: negative size in shape %s", op, nb__dims_str(ndim, shape, b, sizeof b)),
                   false;
        }
    return nb__size_ok(ctx, op, ndim, shape, nb_dtype_size(dt), NULL);
}

nb_tensor *nb_empty(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape) {
    if (!check_new(ctx, "empty", dt, ndim, shape)) return NULL;
    return nb__new(ctx, dt, ndim, shape);
}

/* nb_full and the constructors built on it, each failing under its own name */
static nb_tensor *full(nb_ctx *ctx, const char *op, nb_dtype dt, int ndim, const int64_t *shape, double v) {
    if (!check_new(ctx, op, dt, ndim, shape)) return NULL;
    int64_t iv;
    if (dt == NB_I64 && !nb__f2i(v, &iv)) return nb__fail(ctx, NB_ERR_VALUE, "%s: %g is not representable as an i64", op, v);
    nb_tensor *t = nb__new(ctx, dt, ndim, shape);
    if (t) nb_fill(t, v);
    return t;
}

nb_tensor *nb_full(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape, double v) {
    return full(ctx, "full", dt, ndim, shape, v);
}
nb_tensor *nb_zeros(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape) { return full(ctx, "zeros", dt, ndim, shape, 0.0); }
nb_tensor *nb_ones(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape) { return full(ctx, "ones", dt, ndim, shape, 1.0); }
nb_tensor *nb_scalar(nb_ctx *ctx, nb_dtype dt, double v) { return full(ctx, "scalar", dt, 0, NULL, v); }

nb_tensor *nb_zeros_like(nb_ctx *ctx, const nb_tensor *t) {
    if (nb__null(ctx, "zeros_like", 1, t)) return NULL;
    return full(ctx, "zeros_like", t->dtype, t->ndim, t->shape, 0.0);
}
nb_tensor *nb_ones_like(nb_ctx *ctx, const nb_tensor *t) {
    if (nb__null(ctx, "ones_like", 1, t)) return NULL;
    return full(ctx, "ones_like", t->dtype, t->ndim, t->shape, 1.0);
}

nb_tensor *nb_from(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape, const void *data) {
    if (!check_new(ctx, "from", dt, ndim, shape)) return NULL;
    if (!data) return nb__fail(ctx, NB_ERR_NULL, "from: data is NULL");
    nb_tensor *t = nb__new(ctx, dt, ndim, shape);
    if (t) memcpy(t->data, data, (size_t)t->numel * nb_dtype_size(dt));
    return t;
}

nb_tensor *nb_arange(nb_ctx *ctx, nb_dtype dt, double start, double stop, double step) {
    nb__op_name = "arange";
    if (!ctx) return nb_set_error(NB_ERR_NULL, "arange: context is NULL"), NULL;
    if (step == 0 || !isfinite(start) || !isfinite(stop) || !isfinite(step))
        return nb__fail(ctx, NB_ERR_VALUE, "arange: invalid range start=%g stop=%g step=%g", start, stop, step);
    double cnt = ceil((stop - start) / step);
    int64_t n = 0, last;
    if (cnt > 0 && !nb__f2i(cnt, &n))
        return nb__fail(ctx, NB_ERR_VALUE, "arange: start=%g stop=%g step=%g gives %g elements", start, stop, step, cnt);
    /* an i64 range must hold its end points (the values in between lie between them) */
    if (dt == NB_I64 && n > 0 && (!nb__f2i(start, &last) || !nb__f2i(start + (double)(n - 1) * step, &last)))
        return nb__fail(ctx, NB_ERR_VALUE, "arange: values from %g with step %g are not representable as i64", start, step);
    if (!check_new(ctx, "arange", dt, 1, &n)) return NULL;
    nb_tensor *t = nb__new(ctx, dt, 1, &n);
    for (int64_t i = 0; t && i < n; i++) nb_set(t, i, start + (double)i * step);
    return t;
}

static nb_tensor *random_tensor(nb_ctx *ctx, const char *op, nb_dtype dt, int ndim, const int64_t *shape, bool normal) {
    if (!check_new(ctx, op, dt, ndim, shape)) return NULL;
    if (dt == NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "%s: dtype must be f32 or f64", op);
    nb_tensor *t = nb__new(ctx, dt, ndim, shape);
    if (!t) return NULL;
    if (normal) nb_rng_normal(&ctx->rng, t, 0.0, 1.0);
    else nb_rng_uniform(&ctx->rng, t, 0.0, 1.0);
    return t;
}

nb_tensor *nb_rand(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape) {
    return random_tensor(ctx, "rand", dt, ndim, shape, false);
}
nb_tensor *nb_randn(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape) {
    return random_tensor(ctx, "randn", dt, ndim, shape, true);
}

/* ---- random draws of integers and events (no grad) ------------------------------------------ */
/* Draw i of a call uses the generator's counter offset + i alone (as nb_rand does), so values
 * never depend on the thread count; each call advances the offset by the draws it used. */
static uint64_t draw_u64(uint64_t key, uint64_t counter) {
    uint32_t r[4];
    nb__philox(key, counter, r);
    return (uint64_t)r[0] << 32 | r[1];
}

nb_tensor *nb_randint(nb_ctx *ctx, int64_t low, int64_t high, int ndim, const int64_t *shape) {
    if (!check_new(ctx, "randint", NB_I64, ndim, shape)) return NULL;
    if (low >= high) return nb__fail(ctx, NB_ERR_VALUE, "randint: low %lld must be below high %lld", (long long)low, (long long)high);
    nb_tensor *t = nb__new(ctx, NB_I64, ndim, shape);
    if (!t) return NULL;
    int64_t *v = t->data;
    const uint64_t key = ctx->rng.seed, base = ctx->rng.offset, range = (uint64_t)high - (uint64_t)low;
    const int64_t n = t->numel;
    /* the top 64 bits of draw * range: bias below range / 2^64, no rejection loop */
#pragma omp parallel for if (n >= NB_PAR_THRESHOLD) schedule(static)
    for (int64_t i = 0; i < n; i++)
        v[i] = (int64_t)((uint64_t)low + (uint64_t)(((unsigned __int128)draw_u64(key, base + (uint64_t)i) * range) >> 64));
    ctx->rng.offset += (uint64_t)n;
    return t;
}

nb_tensor *nb_randperm(nb_ctx *ctx, int64_t n) {
    if (!check_new(ctx, "randperm", NB_I64, 1, &n)) return NULL;
    nb_tensor *t = nb__new(ctx, NB_I64, 1, &n);
    if (t) nb_rng_permutation(&ctx->rng, n, t->data);
    return t;
}

nb_tensor *nb_bernoulli(nb_ctx *ctx, nb_tensor *p) {
    if (nb__null(ctx, "bernoulli", 1, p)) return NULL;
    if (p->dtype == NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "bernoulli: p must be f32 or f64, got i64");
    for (int64_t i = 0; i < p->numel; i++) {
        const double pi = nb_get(p, i);
        if (!(pi >= 0 && pi <= 1)) return nb__fail(ctx, NB_ERR_VALUE, "bernoulli: p[%lld] = %g is outside [0, 1]", (long long)i, pi);
    }
    nb_tensor *out = nb__new(ctx, p->dtype, p->ndim, p->shape);
    if (!out) return NULL;
    const uint64_t key = ctx->rng.seed, base = ctx->rng.offset;
    const int64_t n = out->numel;
#pragma omp parallel for if (n >= NB_PAR_THRESHOLD) schedule(static)
    for (int64_t i = 0; i < n; i++) { /* 1 when the draw falls below p: probability p */
        const bool one = nb__philox_uniform(key, base + (uint64_t)i) < nb_get(p, i);
        if (out->dtype == NB_F32) ((float *)out->data)[i] = one;
        else ((double *)out->data)[i] = one;
    }
    ctx->rng.offset += (uint64_t)n;
    return out;
}

/* multinomial without replacement: the exponential race (torch's method). Category c gets the
 * key w_c / E_c, E_c ~ Exp(1); the k largest keys, largest first, are distributed as k
 * successive draws each removing the category drawn. */
typedef struct {
    double key;
    int64_t c;
} race_entry;
static int by_key_desc(const void *a, const void *b) {
    const race_entry *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? 1 : -1;
    return x->c < y->c ? -1 : x->c > y->c; /* ties: the lower index first (deterministic) */
}

static void draw_row(const double *w, int64_t C, int64_t k, bool replacement, uint64_t key, uint64_t base, double *scratch,
                     int64_t *out) {
    if (replacement) { /* inverse CDF: the first category whose cumulative weight exceeds u * total */
        double total = 0;
        for (int64_t c = 0; c < C; c++) scratch[c] = total += w[c];
        for (int64_t s = 0; s < k; s++) {
            const double t = nb__philox_uniform(key, base + (uint64_t)s) * total;
            int64_t lo = 0, hi = C - 1; /* scratch[hi] = total > t, except by rounding: then the last positive weight */
            while (lo < hi) {
                const int64_t mid = lo + (hi - lo) / 2;
                if (scratch[mid] > t) hi = mid;
                else lo = mid + 1;
            }
            while (w[lo] == 0 && lo > 0) lo--;
            out[s] = lo;
        }
        return;
    }
    race_entry *e = (race_entry *)scratch;
    for (int64_t c = 0; c < C; c++)
        e[c] = (race_entry){w[c] > 0 ? w[c] / -log1p(-nb__philox_uniform(key, base + (uint64_t)c)) : -1.0, c};
    qsort(e, (size_t)C, sizeof *e, by_key_desc);
    for (int64_t s = 0; s < k; s++) out[s] = e[s].c;
}

nb_tensor *nb_multinomial(nb_ctx *ctx, nb_tensor *probs, int64_t num_samples, bool replacement) {
    if (nb__null(ctx, "multinomial", 1, probs)) return NULL;
    char s[128];
    nb_shape_str(probs, s, sizeof s);
    if (probs->dtype == NB_I64 || probs->ndim < 1 || probs->ndim > 2 || probs->shape[probs->ndim - 1] < 1)
        return nb__fail(ctx, NB_ERR_SHAPE, "multinomial: probs %s %s must be f32 or f64 of shape (C) or (N, C) with C >= 1",
                        nb_dtype_name(probs->dtype), s);
    const int64_t C = probs->shape[probs->ndim - 1], N = probs->ndim == 2 ? probs->shape[0] : 1;
    if (num_samples < 1 || (!replacement && num_samples > C))
        return nb__fail(ctx, NB_ERR_VALUE, "multinomial: %lld samples %s from probs %s", (long long)num_samples,
                        replacement ? "with replacement (at least 1)" : "without replacement (1 to C)", s);
    const int64_t shape[2] = {probs->ndim == 2 ? N : num_samples, num_samples};
    nb_tensor *out = check_new(ctx, "multinomial", NB_I64, probs->ndim, shape) ? nb__new(ctx, NB_I64, probs->ndim, shape) : NULL;
    if (!out) return NULL;
    nb_mark m = nb_ctx_mark(ctx); /* the weights and a row's scratch, released before returning */
    double *w = nb_ctx_alloc(ctx, (size_t)(N * C) * sizeof *w);
    void *scratch = nb_ctx_alloc(ctx, (size_t)C * sizeof(race_entry));
    if (!w || !scratch) return NULL;
    nb_copy_out(probs, NB_F64, w);
    for (int64_t r = 0; r < N; r++) {
        double sum = 0;
        int64_t positive = 0;
        for (int64_t c = 0; c < C; c++) {
            const double v = w[r * C + c];
            if (!(v >= 0 && v < INFINITY)) {
                nb_ctx_release(ctx, m);
                return nb__fail(ctx, NB_ERR_VALUE, "multinomial: probs[%lld, %lld] = %g is not a finite weight >= 0", (long long)r,
                                (long long)c, v);
            }
            sum += v;
            positive += v > 0;
        }
        if (!(sum > 0) || (!replacement && positive < num_samples)) {
            nb_ctx_release(ctx, m);
            return nb__fail(ctx, NB_ERR_VALUE, "multinomial: row %lld of probs %s has %lld positive weights (sum %g); %lld %s", (long long)r,
                            s, (long long)positive, sum, (long long)num_samples,
                            replacement ? "samples need one" : "samples without replacement need as many");
        }
    }
    const uint64_t key = ctx->rng.seed, per_row = (uint64_t)(replacement ? num_samples : C);
    for (int64_t r = 0; r < N; r++)
        draw_row(w + r * C, C, num_samples, replacement, key, ctx->rng.offset + (uint64_t)r * per_row, scratch,
                 (int64_t *)out->data + r * num_samples);
    ctx->rng.offset += (uint64_t)N * per_row;
    nb_ctx_release(ctx, m);
    return out;
}
