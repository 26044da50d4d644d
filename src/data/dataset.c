/* Preprocessing, seeded permutations and splits, and the batch iterator. */
#include "../internal.h"

#include <stdlib.h>

/* ---- preprocessing ------------------------------------------------------------------------ */
nb_status nb_mean_std(const nb_tensor *x, double *mean, double *std) {
    if (!x || !mean || !std) return nb_set_error(NB_ERR_NULL, "mean_std: NULL argument");
    if (x->dtype == NB_I64) return nb_set_error(NB_ERR_DTYPE, "mean_std: tensor must be f32 or f64, got i64");
    if (x->numel == 0) return nb_set_error(NB_ERR_SHAPE, "mean_std: tensor is empty");
    /* two passes in double, fixed order: the result does not depend on the thread count */
    double s = 0, ss = 0;
    const bool fast = x->dtype == NB_F32 && nb_is_contiguous(x);
    const float *xf = x->data;
    for (int64_t i = 0; i < x->numel; i++) s += fast ? xf[i] : nb_get(x, i);
    const double m = s / (double)x->numel;
    for (int64_t i = 0; i < x->numel; i++) {
        double d = (fast ? xf[i] : nb_get(x, i)) - m;
        ss += d * d;
    }
    *mean = m;
    *std = sqrt(ss / (double)x->numel);
    return NB_OK;
}

nb_status nb_standardize(nb_tensor *x, double mean, double std) {
    if (!x) return nb_set_error(NB_ERR_NULL, "standardize: tensor is NULL");
    if (x->dtype == NB_I64) return nb_set_error(NB_ERR_DTYPE, "standardize: tensor must be f32 or f64, got i64");
    if (!(std > 0) || !isfinite(std) || !isfinite(mean))
        return nb_set_error(NB_ERR_VALUE, "standardize: need finite mean and std > 0, got %g and %g", mean, std);
    nb__affine_kernel(x, x, 1.0 / std, -mean / std);
    return NB_OK;
}

/* ---- splits ------------------------------------------------------------------------------------ */
/* Copy rows idx[0..n) (valid) of src, any strides, into the contiguous memory of dst. */
static void copy_rows(nb_tensor *dst, const nb_tensor *src, const int64_t *idx, int64_t n) {
    const size_t esz = nb_dtype_size(src->dtype);
    const int64_t row = src->shape[0] ? src->numel / src->shape[0] : 0;
    const bool contig = nb_is_contiguous(src);
    nb_tensor s = *src, d = *src; /* one-row views for the strided copy kernel */
    s.shape[0] = d.shape[0] = 1;
    s.numel = d.numel = row;
    nb__contig_strides(d.ndim, d.shape, d.stride);
    for (int64_t i = 0; i < n; i++) {
        s.data = (char *)src->data + (size_t)(idx[i] * src->stride[0]) * esz;
        d.data = (char *)dst->data + (size_t)(i * row) * esz;
        if (contig) memcpy(d.data, s.data, (size_t)row * esz);
        else nb__copy_kernel(&d, &s);
    }
}

nb_tensor *nb_take_rows(const nb_tensor *x, const int64_t *idx, int64_t n) {
    if (!x || (n > 0 && !idx)) return nb_set_error(NB_ERR_NULL, "take_rows: NULL argument"), NULL;
    char b[128];
    if (x->ndim < 1)
        return nb_set_error(NB_ERR_SHAPE, "take_rows: tensor %s has no rows", nb_shape_str(x, b, sizeof b)), NULL;
    if (n < 0) return nb_set_error(NB_ERR_VALUE, "take_rows: n = %lld", (long long)n), NULL;
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= x->shape[0])
            return nb_set_error(NB_ERR_INDEX, "take_rows: index %lld (at %lld) out of range for %s", (long long)idx[i],
                                (long long)i, nb_shape_str(x, b, sizeof b)),
                   NULL;
    int64_t shape[NB_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[0] = n;
    nb_tensor *t = nb_tensor_new(x->dtype, x->ndim, shape);
    if (!t) return NULL;
    copy_rows(t, x, idx, n);
    return t;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

nb_status nb_split(const nb_tensor *x, const nb_tensor *y, int64_t n_val, uint64_t seed, nb_tensor **x_train,
                   nb_tensor **y_train, nb_tensor **x_val, nb_tensor **y_val) {
    if (!x || !x_train || !x_val || (y && (!y_train || !y_val))) return nb_set_error(NB_ERR_NULL, "split: NULL argument");
    *x_train = *x_val = NULL;
    if (y_train) *y_train = NULL;
    if (y_val) *y_val = NULL;
    char a[128], b[128];
    if (x->ndim < 1 || (y && (y->ndim < 1 || y->shape[0] != x->shape[0])))
        return nb_set_error(NB_ERR_SHAPE, "split: x %s and y %s need the same first dim", nb_shape_str(x, a, sizeof a),
                            nb_shape_str(y, b, sizeof b));
    const int64_t n = x->shape[0];
    if (n_val < 0 || n_val > n)
        return nb_set_error(NB_ERR_VALUE, "split: %lld validation rows out of %lld", (long long)n_val, (long long)n);
    int64_t *perm = malloc((size_t)(n ? n : 1) * sizeof *perm);
    if (!perm) return nb_set_error(NB_ERR_NOMEM, "split: out of memory");
    if (seed == 0) {
        for (int64_t i = 0; i < n; i++) perm[i] = i;
    } else {
        nb_rng rng = nb_rng_new(seed);
        nb_rng_permutation(&rng, n, perm);
        qsort(perm, (size_t)(n - n_val), sizeof *perm, cmp_i64);
        qsort(perm + n - n_val, (size_t)n_val, sizeof *perm, cmp_i64);
    }
    const int64_t nt = n - n_val;
    *x_train = nb_take_rows(x, perm, nt);
    *x_val = nb_take_rows(x, perm + nt, n_val);
    if (y) {
        *y_train = nb_take_rows(y, perm, nt);
        *y_val = nb_take_rows(y, perm + nt, n_val);
    }
    free(perm);
    if (!*x_train || !*x_val || (y && (!*y_train || !*y_val))) {
        nb_status s = nb_last_status();
        nb_tensor_free(*x_train), nb_tensor_free(*x_val);
        *x_train = *x_val = NULL;
        if (y) {
            nb_tensor_free(*y_train), nb_tensor_free(*y_val);
            *y_train = *y_val = NULL;
        }
        return s;
    }
    return NB_OK;
}

/* ---- batch iterator --------------------------------------------------------------------------- */
struct nb_batcher {
    const nb_tensor *x, *y;
    nb_tensor *xb, *yb;       /* (batch_size, ...) buffers; shape[0] shrinks for a short batch */
    int64_t n, global, next, index, epoch;
    int64_t *order;           /* the epoch's order of all n samples */
    nb_batch_opts o;
    bool started;
};

static nb_tensor *batch_buffer(const nb_tensor *t, int64_t rows) {
    int64_t shape[NB_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    shape[0] = rows;
    return nb_tensor_new(t->dtype, t->ndim, shape);
}

nb_batcher *nb_batcher_new(const nb_tensor *x, const nb_tensor *y, const nb_batch_opts *opts) {
    static const char fn[] = "batcher_new";
    if (!x || !opts) return nb_set_error(NB_ERR_NULL, "%s: NULL argument", fn), NULL;
    char a[128], b[128];
    if (x->ndim < 1 || (y && (y->ndim < 1 || y->shape[0] != x->shape[0])))
        return nb_set_error(NB_ERR_SHAPE, "%s: x %s and y %s need the same first dim", fn, nb_shape_str(x, a, sizeof a),
                            nb_shape_str(y, b, sizeof b)),
               NULL;
    nb_batch_opts o = *opts;
    if (o.world_size == 0) o.world_size = 1;
    if (o.batch_size < 1 || o.world_size < 1 || o.rank < 0 || o.rank >= o.world_size ||
        o.batch_size > INT64_MAX / o.world_size)
        return nb_set_error(NB_ERR_VALUE, "%s: batch_size %lld, rank %d, world_size %d", fn, (long long)o.batch_size,
                            o.rank, o.world_size),
               NULL;
    nb_batcher *it = calloc(1, sizeof *it);
    const int64_t n = x->shape[0];
    if (!it) return nb_set_error(NB_ERR_NOMEM, "%s: out of memory", fn), NULL;
    it->x = x, it->y = y, it->n = n, it->o = o;
    it->global = o.batch_size * o.world_size;
    const int64_t rows = o.batch_size < n ? o.batch_size : n; /* a shard never exceeds either */
    it->order = malloc((size_t)(n ? n : 1) * sizeof *it->order);
    it->xb = batch_buffer(x, rows);
    it->yb = y ? batch_buffer(y, rows) : NULL;
    if (!it->order || !it->xb || (y && !it->yb)) {
        nb_batcher_free(it);
        return nb_set_error(NB_ERR_NOMEM, "%s: cannot allocate batch buffers of %lld rows", fn, (long long)rows), NULL;
    }
    return it;
}

void nb_batcher_free(nb_batcher *it) {
    if (!it) return;
    nb_tensor_free(it->xb);
    nb_tensor_free(it->yb);
    free(it->order);
    free(it);
}

int64_t nb_batcher_num_batches(const nb_batcher *it) {
    if (!it) return 0;
    return it->n / it->global + (!it->o.drop_last && it->n % it->global); /* n + global - 1 may overflow */
}

void nb_batcher_start(nb_batcher *it, int64_t epoch) {
    if (!it) return;
    if (it->o.shuffle) {
        /* the order of nb_dist_permutation too, so a batcher can feed an MPI trainer */
        nb_rng rng = nb_rng_stream(it->o.seed, (uint64_t)epoch);
        nb_rng_permutation(&rng, it->n, it->order);
    } else {
        for (int64_t i = 0; i < it->n; i++) it->order[i] = i;
    }
    it->next = 0, it->index = 0, it->epoch = epoch, it->started = true;
}

/* Copy rows idx[0..n) of src into batch buffer dst and set its first dim to n. */
static void gather(nb_tensor *dst, const nb_tensor *src, const int64_t *idx, int64_t n) {
    copy_rows(dst, src, idx, n);
    dst->shape[0] = n;
    dst->numel = n * (src->shape[0] ? src->numel / src->shape[0] : 0);
}

bool nb_batcher_next(nb_batcher *it, nb_batch *out) {
    if (!it || !out) return false;
    if (!it->started) nb_batcher_start(it, 0);
    const int64_t left = it->n - it->next;
    if (left <= 0 || (it->o.drop_last && left < it->global)) return false;
    const int64_t g = left < it->global ? left : it->global, R = it->o.world_size, r = it->o.rank;
    /* rank r takes the r-th of R contiguous pieces: B each, or for a short last batch g/R with
     * the first g%R ranks one more (the rule of nb_dist_shard) */
    const int64_t q = g / R, rem = g % R, lo = r * q + (r < rem ? r : rem), cnt = q + (r < rem);
    const int64_t *idx = it->order + it->next + lo;
    gather(it->xb, it->x, idx, cnt);
    if (it->y) gather(it->yb, it->y, idx, cnt);
    nb__bump(it->xb), nb__bump(it->yb); /* the buffers are rewritten: a graph of the last batch is stale */
    *out = (nb_batch){.x = it->xb, .y = it->yb, .n = cnt, .global_n = g, .index = it->index, .idx = idx};
    it->next += g;
    it->index++;
    return true;
}
