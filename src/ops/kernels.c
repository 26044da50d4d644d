/* Strided, broadcasting iteration and the element-wise kernels every op family uses.
 * Results never depend on the thread count: each output element is computed by exactly one
 * thread from the same inputs in the same order. */
#include "../internal.h"

#include <omp.h>

void nb__iter_init(nb_iter *it, int ndim, const int64_t *shape, int nops, const nb_tensor *const *ts) {
    int64_t st[NB_ITER_MAX][NB_MAX_DIMS];
    it->nops = nops;
    it->total = nb__numel(ndim, shape);
    for (int k = 0; k < nops; k++) {
        const nb_tensor *t = ts[k];
        it->ptr[k] = t->data;
        it->esz[k] = nb_dtype_size(t->dtype);
        for (int i = 0; i < ndim; i++) {
            int j = i - (ndim - t->ndim);
            st[k][i] = (j < 0 || (t->shape[j] == 1 && shape[i] != 1)) ? 0 : t->stride[j];
        }
    }
    /* drop size-1 dims, merge an outer dim into the inner one where every operand is linear */
    int nd = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 1) continue;
        bool merge = nd > 0;
        for (int k = 0; merge && k < nops; k++)
            if (it->st[k][nd - 1] != st[k][i] * shape[i]) merge = false;
        if (merge) {
            it->shape[nd - 1] *= shape[i];
            for (int k = 0; k < nops; k++) it->st[k][nd - 1] = st[k][i];
        } else {
            it->shape[nd] = shape[i];
            for (int k = 0; k < nops; k++) it->st[k][nd] = st[k][i];
            nd++;
        }
    }
    if (nd == 0) {
        it->shape[0] = 1;
        for (int k = 0; k < nops; k++) it->st[k][0] = 0;
        nd = 1;
    }
    it->ndim = nd;
}

static void run_range(const nb_iter *it, int64_t b, int64_t e, nb_row_fn fn, const void *arg) {
    const int nd = it->ndim, nops = it->nops;
    const int64_t inner = it->shape[nd - 1];
    int64_t idx[NB_MAX_DIMS], r = b, s[NB_ITER_MAX];
    char *p[NB_ITER_MAX];
    for (int d = nd - 1; d >= 0; d--) {
        idx[d] = r % it->shape[d];
        r /= it->shape[d];
    }
    for (int k = 0; k < nops; k++) s[k] = it->st[k][nd - 1];
    int64_t pos = b;
    while (pos < e) {
        for (int k = 0; k < nops; k++) {
            int64_t off = 0;
            for (int d = 0; d < nd; d++) off += idx[d] * it->st[k][d];
            p[k] = it->ptr[k] + off * (int64_t)it->esz[k];
        }
        int64_t n = inner - idx[nd - 1];
        if (n > e - pos) n = e - pos;
        fn(n, p, s, arg);
        pos += n;
        idx[nd - 1] = 0;
        for (int d = nd - 2; d >= 0; d--) {
            if (++idx[d] < it->shape[d]) break;
            idx[d] = 0;
        }
    }
}

void nb__iter_run_serial(const nb_iter *it, nb_row_fn fn, const void *arg) {
    if (it->total) run_range(it, 0, it->total, fn, arg);
}

void nb__iter_run(const nb_iter *it, nb_row_fn fn, const void *arg) { nb__iter_run_min(it, fn, arg, NB_PAR_THRESHOLD); }

void nb__iter_run_min(const nb_iter *it, nb_row_fn fn, const void *arg, int64_t min_par) {
    const int64_t total = it->total;
    if (total == 0) return;
    if (total < min_par || omp_get_max_threads() == 1 || omp_in_parallel()) {
        run_range(it, 0, total, fn, arg);
        return;
    }
#pragma omp parallel
    {
        int64_t T = omp_get_num_threads(), t = omp_get_thread_num();
        run_range(it, total * t / T, total * (t + 1) / T, fn, arg);
    }
}

/* Fast path without an iterator: every operand either contiguous with out's shape (stride 1)
 * or a single element (stride 0). Tiny ops are dominated by iterator set-up otherwise. Splits
 * the flat range over threads exactly as nb__iter_run does. */
static bool run_flat(nb_row_fn fn, const void *arg, int nops, const nb_tensor *const *ts) {
    const nb_tensor *out = ts[0];
    const int64_t total = out->numel;
    int64_t s[NB_ITER_MAX];
    char *p[NB_ITER_MAX];
    size_t esz[NB_ITER_MAX];
    for (int k = 0; k < nops; k++) {
        const nb_tensor *t = ts[k];
        if (t->numel == 1 && total != 1) s[k] = 0;
        else if (t->numel == total && (t == out || nb_same_shape(t, out)) && nb_is_contiguous(t)) s[k] = 1;
        else return false;
        if (k == 0 && s[0] != 1 && total != 1) return false;
        p[k] = t->data;
        esz[k] = nb_dtype_size(t->dtype);
    }
    if (total == 0) return true;
    if (total < NB_PAR_THRESHOLD || omp_in_parallel() || omp_get_max_threads() == 1) {
        fn(total, p, s, arg);
        return true;
    }
#pragma omp parallel
    {
        const int64_t T = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t b = total * t / T, e = total * (t + 1) / T;
        char *q[NB_ITER_MAX];
        for (int k = 0; k < nops; k++) q[k] = p[k] + b * s[k] * (int64_t)esz[k];
        if (e > b) fn(e - b, q, s, arg);
    }
    return true;
}

/* ---- element-wise maps: the row kernels come from each op's table entry ------------------- */
void nb__unary_map(const nb_unary_def *d, nb_tensor *out, const nb_tensor *x, double p0, double p1) {
    nb_iter it;
    const nb_tensor *ts[2] = {out, x};
    const nb_uparams a = {p0, p1};
    const nb_row_fn fn = out->dtype == NB_F32 ? d->f32 : d->f64;
    if (run_flat(fn, &a, 2, ts)) return;
    nb__iter_init(&it, out->ndim, out->shape, 2, ts);
    nb__iter_run(&it, fn, &a);
}

void nb__binary_map(const nb_binary_def *d, nb_tensor *out, const nb_tensor *a, const nb_tensor *b) {
    nb_iter it;
    const nb_tensor *ts[3] = {out, a, b};
    const nb_row_fn fn = out->dtype == NB_F32 ? d->f32 : d->f64;
    if (run_flat(fn, NULL, 3, ts)) return;
    nb__iter_init(&it, out->ndim, out->shape, 3, ts);
    nb__iter_run(&it, fn, NULL);
}

/* ---- copies with conversion ---------------------------------------------------------------- */
typedef struct {
    nb_dtype dst, src;
} cp_arg;

static void copy_row(int64_t n, char **p, const int64_t *s, const void *argp) {
    const cp_arg *A = argp;
    if (A->dst == A->src) {
        if (A->dst == NB_F32) {
            float *o = (float *)p[0];
            const float *x = (const float *)p[1];
            if (s[0] == 1 && s[1] == 1) memcpy(o, x, (size_t)n * 4);
            else
                for (int64_t i = 0; i < n; i++) o[i * s[0]] = x[i * s[1]];
        } else {
            int64_t *o = (int64_t *)p[0];
            const int64_t *x = (const int64_t *)p[1];
            if (s[0] == 1 && s[1] == 1) memcpy(o, x, (size_t)n * 8);
            else
                for (int64_t i = 0; i < n; i++) o[i * s[0]] = x[i * s[1]];
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        double v;
        const char *src = p[1] + i * s[1] * (int64_t)nb_dtype_size(A->src);
        switch (A->src) {
        case NB_F32: v = *(const float *)src; break;
        case NB_F64: v = *(const double *)src; break;
        default: v = (double)*(const int64_t *)src; break;
        }
        char *dst = p[0] + i * s[0] * (int64_t)nb_dtype_size(A->dst);
        switch (A->dst) {
        case NB_F32: *(float *)dst = (float)v; break;
        case NB_F64: *(double *)dst = v; break;
        default: nb__f2i(v, (int64_t *)dst); break; /* callers refuse values out of range */
        }
    }
}

void nb__copy_kernel(nb_tensor *dst, const nb_tensor *src) {
    nb_iter it;
    const nb_tensor *ts[2] = {dst, src};
    cp_arg a = {dst->dtype, src->dtype};
    if (run_flat(copy_row, &a, 2, ts)) return;
    nb__iter_init(&it, dst->ndim, dst->shape, 2, ts);
    nb__iter_run(&it, copy_row, &a);
}

/* ---- lines along an axis ----------------------------------------------------------------- */
void nb__lines(const nb_tensor *x, nb_tensor *out, int axis, nb_line_fn fn, const void *arg) {
    const int64_t len = x->shape[axis];
    if (len == 0 || x->numel == 0) return;
    const int64_t nlines = x->numel / len;
    const size_t xe = nb_dtype_size(x->dtype), oe = nb_dtype_size(out->dtype);
#pragma omp parallel for if (x->numel >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)
    for (int64_t r = 0; r < nlines; r++) {
        int64_t rem = r, xo = 0, oo = 0;
        for (int d = x->ndim - 1; d >= 0; d--) {
            if (d == axis) continue;
            int64_t i = rem % x->shape[d];
            rem /= x->shape[d];
            xo += i * x->stride[d];
            oo += i * out->stride[d];
        }
        fn(len, (const char *)x->data + xo * (int64_t)xe, x->stride[axis], (char *)out->data + oo * (int64_t)oe,
           out->stride[axis], arg);
    }
}
