/* Sorting and selection by index: argsort (the one kernel), sort and topk (the values are a
 * gather of x at the sorted indices, so the gradient goes back to the selected positions and
 * every order of derivative comes from gather / scatter_add), take_along_dim. */
#include "../internal.h"

#include <omp.h>
#include <stdlib.h>

typedef struct {
    double v;
    int64_t i;
} keyed;

/* NaN is the largest value; equal keys keep their input order (a stable sort, as
 * torch.sort(stable=True), also when descending) */
static int cmp_up(const void *pa, const void *pb) {
    const keyed *a = pa, *b = pb;
    const bool na = a->v != a->v, nb = b->v != b->v;
    if (na != nb) return na ? 1 : -1;
    if (!na && a->v != b->v) return a->v < b->v ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}
static int cmp_down(const void *pa, const void *pb) {
    const keyed *a = pa, *b = pb;
    const bool na = a->v != a->v, nb = b->v != b->v;
    if (na != nb) return na ? -1 : 1;
    if (!na && a->v != b->v) return a->v > b->v ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

typedef struct {
    keyed *scratch; /* one line per thread of nb__lines' team */
    bool per_thread; /* false inside a caller's parallel region, where nb__lines runs serially */
    bool f32, descending;
} sort_arg;

static void argsort_line(int64_t len, const char *xp, int64_t xs, char *op, int64_t os, const void *argp) {
    const sort_arg *A = argp;
    keyed *k = A->scratch + (A->per_thread ? (int64_t)omp_get_thread_num() * len : 0);
    for (int64_t i = 0; i < len; i++) k[i] = (keyed){A->f32 ? ((const float *)xp)[i * xs] : ((const double *)xp)[i * xs], i};
    qsort(k, (size_t)len, sizeof *k, A->descending ? cmp_down : cmp_up);
    for (int64_t i = 0; i < len; i++) ((int64_t *)op)[i * os] = k[i].i;
}

static nb_tensor *argsort(nb_ctx *ctx, const char *op, nb_tensor *x, int axis, bool descending) {
    if (nb__null(ctx, op, 1, x)) return NULL;
    char s[128];
    if (x->dtype == NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "%s: expected f32 or f64, got i64", op);
    const int a = nb__axis(axis, x->ndim);
    if (a < 0) return nb__fail(ctx, NB_ERR_AXIS, "%s: axis %d out of range for %s", op, axis, nb_shape_str(x, s, sizeof s));
    nb_tensor *idx = nb__new(ctx, NB_I64, x->ndim, x->shape);
    if (!idx) return NULL;
    const int64_t len = x->shape[a];
    const nb_mark m = nb_ctx_mark(ctx); /* the scratch is gone when the op returns */
    const bool per_thread = !omp_in_parallel();
    const size_t slots = per_thread ? (size_t)omp_get_max_threads() : 1;
    keyed *scratch = len ? nb_ctx_alloc(ctx, slots * (size_t)len * sizeof(keyed)) : NULL;
    if (len && !scratch) return NULL;
    const sort_arg arg = {scratch, per_thread, x->dtype == NB_F32, descending};
    nb__lines(x, idx, a, argsort_line, &arg);
    nb_ctx_release(ctx, m);
    return idx;
}

nb_tensor *nb_argsort(nb_ctx *ctx, nb_tensor *x, int axis, bool descending) {
    return argsort(ctx, "argsort", x, axis, descending);
}

nb_tensor *nb_sort(nb_ctx *ctx, nb_tensor *x, int axis, bool descending, nb_tensor **indices) {
    nb_tensor *idx = argsort(ctx, "sort", x, axis, descending);
    nb_tensor *v = idx ? nb_gather(ctx, x, axis, idx) : NULL;
    if (indices) *indices = v ? idx : NULL;
    return v;
}

/* A full sort, then the first k: O(n log n) per line where a selection would be O(n log k). */
nb_tensor *nb_topk(nb_ctx *ctx, nb_tensor *x, int64_t k, int axis, bool largest, bool sorted, nb_tensor **indices) {
    (void)sorted; /* the result is always sorted, which PyTorch's sorted=False allows */
    if (indices) *indices = NULL;
    if (nb__null(ctx, "topk", 1, x)) return NULL;
    const int a = nb__axis(axis, x->ndim);
    if (a >= 0 && (k < 0 || k > x->shape[a])) {
        char s[128];
        return nb__fail(ctx, NB_ERR_VALUE, "topk: k = %lld is out of range for axis %d of %s", (long long)k, a,
                        nb_shape_str(x, s, sizeof s));
    }
    nb_tensor *idx = nb_slice(ctx, argsort(ctx, "topk", x, axis, largest), a, 0, k, 1);
    nb_tensor *v = nb_gather(ctx, x, a, idx);
    if (indices) *indices = v ? idx : NULL;
    return v;
}

nb_tensor *nb_take_along_dim(nb_ctx *ctx, nb_tensor *x, nb_tensor *idx, int axis) {
    if (nb__null(ctx, "take_along_dim", 2, x, idx)) return NULL;
    char sx[128], si[128];
    const int a = nb__axis(axis, x->ndim);
    if (a < 0) return nb__fail(ctx, NB_ERR_AXIS, "take_along_dim: axis %d out of range for %s", axis, nb_shape_str(x, sx, sizeof sx));
    if (idx->dtype != NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "take_along_dim: indices must be i64, got %s", nb_dtype_name(idx->dtype));
    int64_t xs[NB_MAX_DIMS], is[NB_MAX_DIMS];
    bool ok = idx->ndim == x->ndim;
    for (int d = 0; ok && d < x->ndim; d++) {
        const int64_t m = x->shape[d], n = idx->shape[d];
        ok = d == a || m == n || m == 1 || n == 1;
        xs[d] = d == a ? m : (m == 1 ? n : m);
        is[d] = d == a ? n : xs[d];
    }
    if (!ok)
        return nb__fail(ctx, NB_ERR_SHAPE, "take_along_dim: indices %s do not broadcast with x %s outside axis %d",
                        nb_shape_str(idx, si, sizeof si), nb_shape_str(x, sx, sizeof sx), a);
    for (int64_t i = 0; i < idx->numel; i++) { /* named here, not by gather below */
        const int64_t v = (int64_t)nb_get(idx, i);
        if (v < 0 || v >= x->shape[a])
            return nb__fail(ctx, NB_ERR_INDEX, "take_along_dim: index %lld out of range [0, %lld) along axis %d of x %s",
                            (long long)v, (long long)x->shape[a], a, nb_shape_str(x, sx, sizeof sx));
    }
    return nb_gather(ctx, nb_expand(ctx, x, x->ndim, xs), a, nb_expand(ctx, idx, idx->ndim, is));
}
