/* Tensors: errors, shapes, long-lived tensors, element access, the Philox RNG, threads. */
#include "../internal.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>

/* ---- errors ---------------------------------------------------------------------------- */
static _Thread_local nb_status tl_status;
static _Thread_local char tl_msg[512];

nb_status nb_last_status(void) { return tl_status; }
const char *nb_last_error(void) { return tl_msg; }
void nb_clear_last_error(void) { tl_status = NB_OK; tl_msg[0] = 0; }

const char *nb_status_name(nb_status s) {
    static const char *names[] = {"ok", "null argument", "shape error", "dtype error", "axis error",
                                  "index error", "value error", "out of memory", "i/o error",
                                  "format error", "numeric error", "state error", "unsupported"};
    return (unsigned)s < sizeof names / sizeof *names ? names[s] : "unknown";
}

static void set_tl(nb_status s, const char *fmt, va_list ap) {
    tl_status = s;
    vsnprintf(tl_msg, sizeof tl_msg, fmt, ap);
}

nb_status nb_set_error(nb_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_tl(s, fmt, ap);
    va_end(ap);
    return s;
}

/* Name the op the user called when the failure happened inside another one it is made of
 * ("linear_layer_forward: linear: input (3,4) does not fit weight (2,3)"). */
static void name_user_op(void) {
    const char *op = nb__site_op(NULL, NULL);
    if (!op) return;
    if (!strncmp(op, "nb_", 3)) op += 3;
    const size_t n = strlen(op);
    if (!strncmp(tl_msg, op, n) && (tl_msg[n] == ':' || tl_msg[n] == ' ')) return;
    char msg[sizeof tl_msg + 64];
    snprintf(msg, sizeof msg, "%s: %s", op, tl_msg);
    memcpy(tl_msg, msg, sizeof tl_msg - 1);
    tl_msg[sizeof tl_msg - 1] = 0;
}

static void *fail_ctx(nb_ctx *ctx, nb_status s, const char *fmt, va_list ap) {
    set_tl(s, fmt, ap);
    name_user_op();
    if (ctx && ctx->status == NB_OK) {
        ctx->status = s;
        memcpy(ctx->msg, tl_msg, sizeof ctx->msg);
    }
    return NULL;
}

void *nb__fail(nb_ctx *ctx, nb_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fail_ctx(ctx, s, fmt, ap);
    va_end(ap);
    return NULL;
}

void *nb_ctx_fail(nb_ctx *ctx, nb_status status, const char *fmt, ...) {
    if (status == NB_OK) status = NB_ERR_STATE; /* failing with "ok" would be no failure at all */
    va_list ap;
    va_start(ap, fmt);
    fail_ctx(ctx, status, fmt ? fmt : "custom op failed", ap);
    va_end(ap);
    return NULL;
}

_Thread_local const char *nb__op_name;

bool nb__null(nb_ctx *ctx, const char *op, int n, ...) {
    nb__op_name = op;
    if (!ctx) {
        nb_set_error(NB_ERR_NULL, "%s: context is NULL", op);
        return true;
    }
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        const nb_tensor *t = va_arg(ap, const nb_tensor *);
        if (!t) {
            va_end(ap);
            /* keep the first error: a NULL input usually means an earlier op failed */
            if (ctx->status == NB_OK) nb__fail(ctx, NB_ERR_NULL, "%s: input %d is NULL", op, i);
            return true;
        }
        if (nb__stale(ctx, op, t)) { /* computing on a released tensor would read reused memory */
            va_end(ap);
            return true;
        }
    }
    va_end(ap);
    return false;
}

/* ---- dtypes and shapes ------------------------------------------------------------------ */
size_t nb_dtype_size(nb_dtype dt) { return dt == NB_F32 ? 4 : dt == NB_F64 || dt == NB_I64 ? 8 : 0; }
const char *nb_dtype_name(nb_dtype dt) {
    switch (dt) {
    case NB_F32: return "f32";
    case NB_F64: return "f64";
    case NB_I64: return "i64";
    }
    return "?";
}

char *nb__dims_str(int ndim, const int64_t *shape, char *buf, size_t len) {
    size_t k = 0;
    if (len == 0) return buf;
    k += (size_t)snprintf(buf + k, len - k, "(");
    for (int i = 0; i < ndim && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (k < len) snprintf(buf + k, len - k, ")");
    return buf;
}

char *nb_shape_str(const nb_tensor *t, char *buf, size_t len) {
    if (!t) {
        snprintf(buf, len, "NULL");
        return buf;
    }
    return nb__dims_str(t->ndim, t->shape, buf, len);
}

int64_t nb__numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

bool nb__size(int ndim, const int64_t *shape, size_t esz, int64_t *numel, size_t *bytes) {
    if (ndim < 0 || ndim > NB_MAX_DIMS || (ndim > 0 && !shape)) return false;
    /* the product of max(dim, 1) bounds both the count and every contiguous stride */
    int64_t n = 1, span = esz ? (int64_t)esz : 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return false;
        if (__builtin_mul_overflow(span, shape[i] > 0 ? shape[i] : 1, &span)) return false;
        n *= shape[i];  /* |n| <= span / esz: cannot overflow */
    }
    if (numel) *numel = n;
    if (bytes) *bytes = (size_t)n * (esz ? esz : 1);
    return true;
}

bool nb__size_ok(nb_ctx *ctx, const char *op, int ndim, const int64_t *shape, size_t esz, int64_t *numel) {
    if (nb__size(ndim, shape, esz, numel, NULL)) return true;
    char b[200];
    nb__fail(ctx, NB_ERR_SHAPE, "%s: shape %s is invalid or too large (its size in bytes must fit in 63 bits)", op,
             ndim >= 0 && ndim <= NB_MAX_DIMS && shape ? nb__dims_str(ndim, shape, b, sizeof b) : "?");
    return false;
}

bool nb__i64_convertible(const nb_tensor *t, int64_t *bad_index, double *bad_value) {
    if (t->dtype == NB_I64) return true;
    for (int64_t i = 0; i < t->numel; i++) {
        int64_t r;
        double v = nb_get(t, i);
        if (!nb__f2i(v, &r)) {
            if (bad_index) *bad_index = i;
            if (bad_value) *bad_value = v;
            return false;
        }
    }
    return true;
}

void nb__contig_strides(int ndim, const int64_t *shape, int64_t *stride) {
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        stride[i] = s;
        s *= shape[i] > 0 ? shape[i] : 1;
    }
}

bool nb_is_contiguous(const nb_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

bool nb_same_shape(const nb_tensor *a, const nb_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

int nb__axis(int axis, int ndim) {
    if (axis < 0) axis += ndim;
    return axis >= 0 && axis < ndim ? axis : -1;
}

int64_t nb__offset(const nb_tensor *t, int64_t i) {
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        int64_t n = t->shape[d];
        off += (i % n) * t->stride[d];
        i /= n;
    }
    return off;
}

bool nb__broadcast_shape(int na, const int64_t *sa, int nbd, const int64_t *sb, int *nout, int64_t *out) {
    int n = na > nbd ? na : nbd;
    for (int i = 0; i < n; i++) {
        int64_t da = i < n - na ? 1 : sa[i - (n - na)];
        int64_t db = i < n - nbd ? 1 : sb[i - (n - nbd)];
        if (da != db && da != 1 && db != 1) return false;
        out[i] = da == 1 ? db : da;
    }
    *nout = n;
    return true;
}

/* ---- the readers' size cap ----------------------------------------------------------------- */
static _Atomic size_t read_limit = NB_READ_LIMIT_DEFAULT;
size_t nb_set_read_limit(size_t max_bytes) { return atomic_exchange(&read_limit, max_bytes); }
size_t nb_read_limit(void) { return atomic_load(&read_limit); }

bool nb__read_budget(const char *fn, const char *path, uint64_t bytes) {
    const size_t cap = nb_read_limit();
    if (cap == 0 || bytes <= cap) return true;
    nb_set_error(NB_ERR_FORMAT, "%s: '%s' needs %llu bytes of memory, over the readers' cap of %zu bytes "
                 "(raise it with nb_set_read_limit, see data.h)", fn, path ? path : "?", (unsigned long long)bytes, cap);
    return false;
}

/* ---- long-lived tensors ------------------------------------------------------------------- */
static bool shape_ok(const char *fn, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > NB_MAX_DIMS) {
        nb_set_error(NB_ERR_SHAPE, "%s: %d dimensions (at most %d)", fn, ndim, NB_MAX_DIMS);
        return false;
    }
    if (ndim > 0 && !shape) {
        nb_set_error(NB_ERR_NULL, "%s: shape is NULL", fn);
        return false;
    }
    if (!nb__size(ndim, shape, 8, NULL, NULL)) {
        char b[200];
        nb_set_error(NB_ERR_SHAPE, "%s: invalid shape %s (negative, or its size in bytes does not fit in 63 bits)", fn,
                     nb__dims_str(ndim, shape, b, sizeof b));
        return false;
    }
    return true;
}

nb_tensor *nb_tensor_new(nb_dtype dt, int ndim, const int64_t *shape) {
    if ((unsigned)dt > NB_I64) {
        nb_set_error(NB_ERR_DTYPE, "tensor_new: unknown dtype %d", (int)dt);
        return NULL;
    }
    if (!shape_ok("tensor_new", ndim, shape)) return NULL;
    int64_t n = nb__numel(ndim, shape);
    size_t bytes = (size_t)n * nb_dtype_size(dt);
    nb_tensor *t = calloc(1, sizeof *t);
    void *data = NULL;
    if (t && posix_memalign(&data, 64, bytes ? bytes : 64) != 0) data = NULL;
    if (!t || !data) {
        free(t);
        nb_set_error(NB_ERR_NOMEM, "tensor_new: cannot allocate %zu bytes", bytes);
        return NULL;
    }
    memset(data, 0, bytes);
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    nb__contig_strides(ndim, shape, t->stride);
    t->numel = n;
    t->data = data;
    t->alloc_ = data;
    t->persistent = true;
    return t;
}

nb_tensor *nb_tensor_from(nb_dtype dt, int ndim, const int64_t *shape, const void *data) {
    if (!data) {
        nb_set_error(NB_ERR_NULL, "tensor_from: data is NULL");
        return NULL;
    }
    nb_tensor *t = nb_tensor_new(dt, ndim, shape);
    if (t) memcpy(t->data, data, (size_t)t->numel * nb_dtype_size(dt));
    return t;
}

nb_tensor *nb_tensor_clone(const nb_tensor *src) {
    if (!src) {
        nb_set_error(NB_ERR_NULL, "tensor_clone: source is NULL");
        return NULL;
    }
    nb_tensor *t = nb_tensor_new(src->dtype, src->ndim, src->shape);
    if (t) nb__copy_kernel(t, src);
    return t;
}

void nb_tensor_free(nb_tensor *t) {
    if (!t || !t->persistent) return;
    if (t->grad && t->grad->persistent) nb_tensor_free(t->grad);
    nb_clear_hooks(t);
    free(t->alloc_);
    free(t);
}

/* ---- element access ------------------------------------------------------------------------ */
static double load(const nb_tensor *t, int64_t off) {
    switch (t->dtype) {
    case NB_F32: return ((const float *)t->data)[off];
    case NB_F64: return ((const double *)t->data)[off];
    case NB_I64: return (double)((const int64_t *)t->data)[off];
    }
    return NAN;
}

double nb_get(const nb_tensor *t, int64_t i) {
    if (!t || i < 0 || i >= t->numel) return NAN;
    return load(t, nb__offset(t, i));
}

nb_status nb_set(nb_tensor *t, int64_t i, double v) {
    if (!t) return nb_set_error(NB_ERR_NULL, "set: tensor is NULL");
    if (i < 0 || i >= t->numel)
        return nb_set_error(NB_ERR_INDEX, "set: index %lld out of range for %lld elements", (long long)i,
                            (long long)t->numel);
    int64_t off = nb__offset(t, i), iv = 0;
    if (t->dtype == NB_I64 && !nb__f2i(v, &iv))
        return nb_set_error(NB_ERR_VALUE, "set: %g is not representable as an i64", v);
    switch (t->dtype) {
    case NB_F32: ((float *)t->data)[off] = (float)v; break;
    case NB_F64: ((double *)t->data)[off] = v; break;
    case NB_I64: ((int64_t *)t->data)[off] = iv; break;
    }
    nb__bump(t);
    return NB_OK;
}

double nb_item(const nb_tensor *t) {
    if (!t || t->numel != 1) {
        char b[64];
        nb_set_error(NB_ERR_SHAPE, "item: tensor of shape %s does not have exactly one element",
                     nb_shape_str(t, b, sizeof b));
        return NAN;
    }
    return load(t, 0);
}

/* Refuse a float -> i64 copy of a value that has no i64 (NaN, Inf, |v| >= 2^63). */
static nb_status i64_check(const char *fn, nb_dtype dst, const nb_tensor *src) {
    int64_t bad;
    double v;
    if (dst != NB_I64 || nb__i64_convertible(src, &bad, &v)) return NB_OK;
    return nb_set_error(NB_ERR_VALUE, "%s: element %lld (%g) is not representable as an i64", fn, (long long)bad, v);
}

nb_status nb_copy_out(const nb_tensor *t, nb_dtype dt, void *dst) {
    if (!t || !dst) return nb_set_error(NB_ERR_NULL, "copy_out: NULL argument");
    if ((unsigned)dt > NB_I64) return nb_set_error(NB_ERR_DTYPE, "copy_out: unknown dtype %d", (int)dt);
    if (i64_check("copy_out", dt, t) != NB_OK) return NB_ERR_VALUE;
    nb_tensor d = *t;
    d.dtype = dt;
    d.data = dst;
    d.persistent = false;
    nb__contig_strides(t->ndim, t->shape, d.stride);
    nb__copy_kernel(&d, t);
    return NB_OK;
}

nb_status nb_copy_into(nb_tensor *dst, const nb_tensor *src) {
    if (!dst || !src) return nb_set_error(NB_ERR_NULL, "copy_into: NULL argument");
    int n;
    int64_t shp[NB_MAX_DIMS];
    if (!nb__broadcast_shape(dst->ndim, dst->shape, src->ndim, src->shape, &n, shp) || n != dst->ndim ||
        !(nb__numel(n, shp) == dst->numel)) {
        char a[128], b[128];
        return nb_set_error(NB_ERR_SHAPE, "copy_into: source %s does not broadcast to destination %s",
                            nb_shape_str(src, a, sizeof a), nb_shape_str(dst, b, sizeof b));
    }
    if (i64_check("copy_into", dst->dtype, src) != NB_OK) return NB_ERR_VALUE;
    nb__copy_kernel(dst, src);
    nb__bump(dst);
    return NB_OK;
}

nb_status nb_fill(nb_tensor *t, double v) {
    if (!t) return nb_set_error(NB_ERR_NULL, "fill: tensor is NULL");
    if (t->dtype == NB_I64) {
        int64_t iv;
        if (!nb__f2i(v, &iv)) return nb_set_error(NB_ERR_VALUE, "fill: %g is not representable as an i64", v);
        for (int64_t i = 0; i < t->numel; i++) ((int64_t *)t->data)[nb__offset(t, i)] = iv;
        nb__bump(t);
        return NB_OK;
    }
    nb__fill_kernel(t, v);
    nb__bump(t);
    return NB_OK;
}

void nb_print(FILE *f, const nb_tensor *t) {
    char b[128];
    if (!t) {
        fprintf(f, "tensor(NULL)\n");
        return;
    }
    fprintf(f, "tensor %s %s%s [", nb_dtype_name(t->dtype), nb_shape_str(t, b, sizeof b),
            t->requires_grad ? " requires_grad" : "");
    int64_t show = t->numel < 64 ? t->numel : 64;
    for (int64_t i = 0; i < show; i++) fprintf(f, i ? ", %.6g" : "%.6g", nb_get(t, i));
    fprintf(f, "%s]\n", show < t->numel ? ", ..." : "");
}

/* ---- Philox-4x32-10 ------------------------------------------------------------------------ */
void nb_philox(uint64_t key, uint64_t counter, uint32_t out[4]) { nb__philox(key, counter, out); }

/* 53 random bits -> [0, 1) */
static double words_to_unit(uint32_t hi, uint32_t lo) {
    return (double)((((uint64_t)hi << 32) | lo) >> 11) * 0x1.0p-53;
}

double nb_philox_uniform(uint64_t key, uint64_t index) { return nb__philox_uniform(key, index); }

nb_rng nb_rng_new(uint64_t seed) { return (nb_rng){seed, 0}; }

static uint64_t mix64(uint64_t x) { /* splitmix64 finalizer */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

nb_rng nb_rng_stream(uint64_t seed, uint64_t k) { return nb_rng_new(mix64(seed ^ mix64(k + 0x9e3779b97f4a7c15ULL))); }

nb_status nb_rng_permutation(nb_rng *rng, int64_t n, int64_t *out) {
    if (!rng || (n > 0 && !out)) return nb_set_error(NB_ERR_NULL, "rng_permutation: NULL argument");
    if (n < 0) return nb_set_error(NB_ERR_VALUE, "rng_permutation: n = %lld is negative", (long long)n);
    for (int64_t i = 0; i < n; i++) out[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(nb_philox_uniform(rng->seed, rng->offset + (uint64_t)i) * (double)(i + 1));
        if (j > i) j = i;
        int64_t t = out[i];
        out[i] = out[j];
        out[j] = t;
    }
    rng->offset += (uint64_t)(n > 0 ? n : 0);
    return NB_OK;
}

static nb_status rng_fill(nb_rng *rng, nb_tensor *t, int normal, double a, double b) {
    if (!rng || !t) return nb_set_error(NB_ERR_NULL, "rng: NULL argument");
    if (t->dtype == NB_I64) return nb_set_error(NB_ERR_DTYPE, "rng: tensor must be f32 or f64, got i64");
    const uint64_t key = rng->seed, base = rng->offset;
    const int64_t n = t->numel;
    const bool contig = nb_is_contiguous(t);
#pragma omp parallel for if (n >= NB_PAR_THRESHOLD) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        uint32_t r[4];
        nb__philox(key, base + (uint64_t)i, r);
        double u1 = words_to_unit(r[0], r[1]), v;
        if (normal) {
            double u2 = words_to_unit(r[2], r[3]);
            v = a + b * sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
        } else {
            v = a + (b - a) * u1;
        }
        int64_t off = contig ? i : nb__offset(t, i);
        if (t->dtype == NB_F32) ((float *)t->data)[off] = (float)v;
        else ((double *)t->data)[off] = v;
    }
    rng->offset += (uint64_t)n;
    nb__bump(t);
    return NB_OK;
}

nb_status nb_rng_uniform(nb_rng *rng, nb_tensor *t, double lo, double hi) { return rng_fill(rng, t, 0, lo, hi); }
nb_status nb_rng_normal(nb_rng *rng, nb_tensor *t, double mean, double std) {
    return rng_fill(rng, t, 1, mean, std);
}


