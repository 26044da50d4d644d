/* nb_opcheck: everything nabla checks of its own ops, for a user's op (in the spirit of
 * torch.library.opcheck). Each property is one function below; the first that fails stops the
 * check and is named in the report with its numbers. */
#include "../internal.h"

#include <stdarg.h>
#include <stdio.h>

static bool fail(nb_opcheck_report *r, const char *property, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(nb_opcheck_report *r, const char *property, const char *fmt, ...) {
    r->ok = false;
    snprintf(r->property, sizeof r->property, "%s", property);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
    return false;
}

/* The inputs of case k in layout `lay` (0 contiguous, 1 transposed, 2 sliced, 3 broadcast):
 * f64 leaves requiring grad with values uniform in [lo, hi] from a generator seeded by k, so
 * every layout of a case holds the same values. False when the case does not exist. */
enum { LAY_CONTIG, LAY_TRANSPOSED, LAY_SLICED, LAY_BROADCAST, LAY_COUNT };
static const char *LAY_NAME[LAY_COUNT] = {"contiguous", "transposed view", "sliced view", "broadcast view"};

static bool make_inputs(nb_ctx *ctx, const nb_opcheck_def *d, int k, int lay, nb_tensor **in) {
    int ndim[NB_OPCHECK_MAX_INPUTS];
    int64_t shape[NB_OPCHECK_MAX_INPUTS][NB_MAX_DIMS];
    if (!d->shapes(k, d->n_in, ndim, shape, d->user)) return false;
    nb_rng rng = nb_rng_new(0x5eed0000u + (uint64_t)k);
    for (int i = 0; i < d->n_in; i++) {
        const int nd = ndim[i];
        int64_t *s = shape[i], base[NB_MAX_DIMS];
        memcpy(base, s, sizeof base);
        int l = lay;
        if (l == LAY_TRANSPOSED && nd < 2) l = LAY_SLICED;
        if (l == LAY_SLICED && nd < 1) l = LAY_CONTIG;
        if (l == LAY_TRANSPOSED) base[nd - 2] = s[nd - 1], base[nd - 1] = s[nd - 2];
        if (l == LAY_SLICED) base[nd - 1] = 2 * s[nd - 1] + 1;
        /* broadcast: the leading axis of a size-1 leaf expanded; other values drawn as usual */
        if (l == LAY_BROADCAST && (nd < 1 || s[0] < 2)) l = LAY_CONTIG;
        if (l == LAY_BROADCAST) base[0] = 1;
        nb_tensor *t = nb_empty(ctx, NB_F64, nd, base);
        if (!t) return false;
        /* the same element values in every layout: draw the logical contiguous values */
        int64_t numel = 1;
        for (int j = 0; j < nd; j++) numel *= s[j];
        nb_tensor *vals = nb_empty(ctx, NB_F64, nd, s);
        if (!vals || nb_rng_uniform(&rng, vals, d->lo, d->hi) != NB_OK) return false;
        nb_tensor *leaf = t;
        if (l == LAY_TRANSPOSED) t = nb_transpose(ctx, t, -1, -2);
        if (l == LAY_SLICED) t = nb_slice(ctx, t, -1, 1, base[nd - 1], 2);
        if (!t) return false;
        if (l == LAY_BROADCAST) { /* the leaf itself: a gradcheck cannot perturb aliased elements */
            for (int64_t j = 0; j < leaf->numel; j++) nb_set(leaf, j, nb_get(vals, j));
            nb_requires_grad(leaf, true);
            in[i] = leaf;
            continue;
        }
        for (int64_t j = 0; j < numel; j++) nb_set(t, j, nb_get(vals, j));
        nb_requires_grad(t, true);
        in[i] = t;
    }
    return true;
}

/* the op on broadcast views: each leaf of size 1 on the leading axis expanded to the case's
 * shape inside the function, so gradcheck perturbs real elements and the expand's backward
 * sums the op's gradient over the broadcast axis */
typedef struct {
    const nb_opcheck_def *d;
    int k;
} bcast_arg;
static nb_tensor *on_broadcast(nb_ctx *ctx, nb_tensor *const *leaves, void *user) {
    const bcast_arg *a = user;
    int ndim[NB_OPCHECK_MAX_INPUTS];
    int64_t shape[NB_OPCHECK_MAX_INPUTS][NB_MAX_DIMS];
    nb_tensor *in[NB_OPCHECK_MAX_INPUTS];
    if (!a->d->shapes(a->k, a->d->n_in, ndim, shape, a->d->user)) return NULL;
    for (int i = 0; i < a->d->n_in; i++)
        if (!(in[i] = nb_expand(ctx, leaves[i], ndim[i], shape[i]))) return NULL;
    return a->d->f(ctx, in, a->d->user);
}

static bool prop_gradients(nb_ctx *ctx, const nb_opcheck_def *d, nb_opcheck_report *r) {
    nb_tensor *in[NB_OPCHECK_MAX_INPUTS];
    for (int k = 0;; k++) {
        if (k == NB_OPCHECK_MAX_CASES)
            return fail(r, "shapes", "%s: the shape generator gave more than %d cases (it must return false after its "
                        "last)", d->name, NB_OPCHECK_MAX_CASES);
        for (int lay = 0; lay < LAY_COUNT; lay++) {
            nb_mark m = nb_ctx_mark(ctx);
            if (!make_inputs(ctx, d, k, lay, in)) {
                nb_ctx_release(ctx, m);
                if (lay == 0 && k > 0) return true;
                if (lay == 0) return fail(r, "shapes", "%s: the shape generator gave no case (or inputs could not be made: %s)",
                                          d->name, nb_ctx_error(ctx));
                break;
            }
            nb_gradcheck_report g;
            bcast_arg ba = {d, k};
            const nb_fn f = lay == LAY_BROADCAST ? on_broadcast : d->f;
            void *user = lay == LAY_BROADCAST ? (void *)&ba : d->user;
            nb_status st = nb_gradcheck(ctx, f, d->n_in, in, user, NULL, &g);
            const bool second = st == NB_OK && d->smooth;
            if (second) st = nb_gradgradcheck(ctx, f, d->n_in, in, user, NULL, &g);
            nb_ctx_release(ctx, m);
            if (st != NB_OK)
                return fail(r, second ? "gradgradcheck" : "gradcheck", "%s, case %d (%s): %s", d->name, k, LAY_NAME[lay],
                            g.message[0] ? g.message : nb_ctx_error(ctx));
            r->checks++;
        }
    }
}

/* out as f64 values (any dtype, any layout) */
static double value(const nb_tensor *t, int64_t i) { return nb_get(t, i); }

static bool prop_f32_agrees(nb_ctx *ctx, const nb_opcheck_def *d, nb_opcheck_report *r) {
    nb_tensor *in[NB_OPCHECK_MAX_INPUTS], *in32[NB_OPCHECK_MAX_INPUTS];
    for (int k = 0;; k++) {
        nb_mark m = nb_ctx_mark(ctx);
        if (!make_inputs(ctx, d, k, LAY_CONTIG, in)) {
            nb_ctx_release(ctx, m);
            return true;
        }
        for (int i = 0; i < d->n_in; i++) in32[i] = nb_cast(ctx, in[i], NB_F32);
        nb_tensor *y = d->f(ctx, in, d->user), *y32 = d->f(ctx, in32, d->user);
        if (!y || !y32) {
            nb_ctx_release(ctx, m);
            return fail(r, "f32", "%s, case %d: the op failed on %s inputs: %s", d->name, k, y ? "f32" : "f64",
                        nb_ctx_error(ctx));
        }
        if (y32->dtype != NB_F32 || !nb_same_shape(y, y32)) {
            nb_ctx_release(ctx, m);
            return fail(r, "f32", "%s, case %d: f32 inputs gave a %s output of another shape or dtype", d->name, k,
                        nb_dtype_name(y32->dtype));
        }
        for (int64_t i = 0; i < y->numel; i++) {
            const double a = value(y, i), b = value(y32, i);
            if (!(fabs(a - b) <= 1e-4 + 1e-3 * fabs(a)) && !(isnan(a) && isnan(b))) {
                nb_ctx_release(ctx, m);
                return fail(r, "f32", "%s, case %d: element %lld is %.9g in f32 and %.17g in f64", d->name, k, (long long)i, b, a);
            }
        }
        nb_ctx_release(ctx, m);
        r->checks++;
    }
}

/* output and input gradients, computed with `threads` threads, into fresh step tensors */
static bool run_with(nb_ctx *ctx, const nb_opcheck_def *d, int k, int threads, nb_tensor **out, nb_tensor **grads) {
    nb_tensor *in[NB_OPCHECK_MAX_INPUTS];
    const int prev = nb_get_num_threads();
    const bool was_auto = nb_threads_auto();
    nb_set_num_threads(threads);
    bool ok = make_inputs(ctx, d, k, LAY_CONTIG, in);
    nb_tensor *y = ok ? d->f(ctx, in, d->user) : NULL;
    nb_tensor *s = y ? nb_sum_all(ctx, nb_mul(ctx, y, nb_full(ctx, y->dtype, y->ndim, y->shape, 0.5))) : NULL;
    ok = s && nb_grad(ctx, 1, &s, NULL, d->n_in, in, grads, false) == NB_OK;
    nb_set_num_threads(was_auto ? 0 : prev);
    *out = y;
    return ok;
}

static bool same_bits(const nb_tensor *a, const nb_tensor *b, int64_t *where) {
    for (int64_t i = 0; i < a->numel; i++) {
        const double x = nb_get(a, i), y = nb_get(b, i);
        if (memcmp(&x, &y, sizeof x) != 0) {
            *where = i;
            return false;
        }
    }
    return true;
}

static bool prop_threads(nb_ctx *ctx, const nb_opcheck_def *d, nb_opcheck_report *r) {
    for (int k = 0;; k++) {
        nb_mark m = nb_ctx_mark(ctx);
        nb_tensor *y1, *y2, *g1[NB_OPCHECK_MAX_INPUTS], *g2[NB_OPCHECK_MAX_INPUTS];
        if (!run_with(ctx, d, k, 1, &y1, g1)) {
            nb_ctx_release(ctx, m);
            if (k > 0) return true;
            return fail(r, "threads", "%s: the op or its backward failed: %s", d->name, nb_ctx_error(ctx));
        }
        if (!run_with(ctx, d, k, 2, &y2, g2)) {
            nb_ctx_release(ctx, m);
            return fail(r, "threads", "%s, case %d: failed with 2 threads: %s", d->name, k, nb_ctx_error(ctx));
        }
        int64_t at;
        if (!same_bits(y1, y2, &at)) {
            nb_ctx_release(ctx, m);
            return fail(r, "threads", "%s, case %d: output element %lld differs between 1 and 2 threads (%.17g, %.17g)",
                        d->name, k, (long long)at, nb_get(y1, at), nb_get(y2, at));
        }
        for (int i = 0; i < d->n_in; i++)
            if (!same_bits(g1[i], g2[i], &at)) {
                nb_ctx_release(ctx, m);
                return fail(r, "threads", "%s, case %d: gradient of input %d, element %lld, differs between 1 and 2 threads",
                            d->name, k, i, (long long)at);
            }
        nb_ctx_release(ctx, m);
        r->checks++;
    }
}

static bool prop_nan(nb_ctx *ctx, const nb_opcheck_def *d, nb_opcheck_report *r) {
    nb_tensor *in[NB_OPCHECK_MAX_INPUTS];
    nb_mark m = nb_ctx_mark(ctx);
    if (!make_inputs(ctx, d, 0, LAY_CONTIG, in)) {
        nb_ctx_release(ctx, m);
        return true;
    }
    bool ok = true;
    for (int i = 0; i < d->n_in && ok; i++) {
        if (in[i]->numel == 0) continue;
        const double keep = nb_get(in[i], 0);
        nb_set(in[i], 0, NAN);
        nb_tensor *y = d->f(ctx, in, d->user);
        bool seen = false; /* read before restoring: the output may be a view of the input */
        for (int64_t j = 0; y && j < y->numel && !seen; j++) seen = isnan(nb_get(y, j));
        nb_set(in[i], 0, keep);
        if (!y) {
            ok = fail(r, "nan", "%s: a NaN in input %d made the op fail: %s", d->name, i, nb_ctx_error(ctx));
            break;
        }
        if (!seen && y->numel > 0) ok = fail(r, "nan", "%s: input %d element 0 is NaN, the output (%lld elements) has none",
                                             d->name, i, (long long)y->numel);
    }
    nb_ctx_release(ctx, m);
    if (ok) r->checks++;
    return ok;
}

static bool prop_bad_shape(nb_ctx *ctx, const nb_opcheck_def *d, nb_opcheck_report *r) {
    nb_tensor *in[NB_OPCHECK_MAX_INPUTS];
    nb_mark m = nb_ctx_mark(ctx);
    if (!make_inputs(ctx, d, -1, LAY_CONTIG, in)) { /* case -1: a shape the op must refuse, if given */
        nb_ctx_release(ctx, m);
        nb_ctx_clear_error(ctx);
        return true;
    }
    nb_tensor *y = d->f(ctx, in, d->user);
    const nb_status st = nb_ctx_status(ctx);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", nb_ctx_error(ctx));
    nb_ctx_release(ctx, m);
    nb_ctx_clear_error(ctx);
    if (y || st == NB_OK) return fail(r, "bad_shape", "%s: the bad-shape case (-1) was accepted", d->name);
    if (!strstr(msg, d->name))
        return fail(r, "bad_shape", "%s: the error for a bad shape does not name the op: \"%s\"", d->name, msg);
    /* and the context works again */
    if (!make_inputs(ctx, d, 0, LAY_CONTIG, in) || !d->f(ctx, in, d->user))
        return fail(r, "bad_shape", "%s: after a cleared error the op fails: %s", d->name, nb_ctx_error(ctx));
    r->checks++;
    return true;
}

static bool prop_arena(nb_ctx *ctx, const nb_opcheck_def *d, nb_opcheck_report *r) {
    nb_tensor *in[NB_OPCHECK_MAX_INPUTS], *g[NB_OPCHECK_MAX_INPUTS];
    size_t used_after_first = 0;
    uint64_t mallocs_after_first = 0;
    for (int rep = 0; rep < 4; rep++) {
        nb_mark m = nb_ctx_mark(ctx);
        bool ok = make_inputs(ctx, d, 0, LAY_CONTIG, in);
        nb_tensor *y = ok ? d->f(ctx, in, d->user) : NULL;
        nb_tensor *s = y ? nb_sum_all(ctx, y) : NULL;
        ok = s && nb_grad(ctx, 1, &s, NULL, d->n_in, in, g, false) == NB_OK;
        const size_t used = nb_ctx_bytes_used(ctx);
        nb_ctx_release(ctx, m);
        if (!ok) return fail(r, "arena", "%s: forward and backward failed: %s", d->name, nb_ctx_error(ctx));
        if (rep == 1) used_after_first = used, mallocs_after_first = nb_ctx_mallocs(ctx);
        if (rep > 1 && (used > used_after_first || nb_ctx_mallocs(ctx) > mallocs_after_first))
            return fail(r, "arena", "%s: repeated calls grow: %zu bytes and %llu mallocs, then %zu and %llu", d->name,
                        used_after_first, (unsigned long long)mallocs_after_first, used,
                        (unsigned long long)nb_ctx_mallocs(ctx));
    }
    r->checks++;
    return true;
}

nb_status nb_opcheck(nb_ctx *ctx, const nb_opcheck_def *d, nb_opcheck_report *r) {
    nb_opcheck_report local;
    if (!r) r = &local;
    memset(r, 0, sizeof *r);
    r->ok = true;
    if (!ctx || !d || !d->f || !d->shapes || !d->name) return nb_set_error(NB_ERR_NULL, "opcheck: NULL argument");
    /* bad options are the caller's: reported here, not left in the context */
    if (!d->name[0]) return nb_set_error(NB_ERR_VALUE, "opcheck: the op's name is empty (its errors must contain it)");
    if (d->n_in < 1 || d->n_in > NB_OPCHECK_MAX_INPUTS)
        return nb_set_error(NB_ERR_VALUE, "opcheck %s: %d inputs (1 to %d)", d->name, d->n_in, NB_OPCHECK_MAX_INPUTS);
    if (!(d->lo < d->hi) || !isfinite(d->lo) || !isfinite(d->hi))
        return nb_set_error(NB_ERR_VALUE, "opcheck %s: value range [%g, %g] must be finite and not empty", d->name, d->lo, d->hi);
    /* an earlier failure left in the context would be blamed on this op, then cleared */
    if (nb_ctx_status(ctx) != NB_OK)
        return nb_set_error(NB_ERR_STATE, "opcheck %s: the context holds an earlier error (%s); clear it first (nb_ctx_clear_error)",
                            d->name, nb_ctx_error(ctx));
    const bool grad_was = nb_ctx_set_grad_enabled(ctx, true);
    bool ok = prop_gradients(ctx, d, r) && prop_f32_agrees(ctx, d, r) && prop_threads(ctx, d, r) &&
              (!d->check_nan || prop_nan(ctx, d, r)) && prop_bad_shape(ctx, d, r) && prop_arena(ctx, d, r);
    nb_ctx_set_grad_enabled(ctx, grad_was);
    if (ok) {
        snprintf(r->message, sizeof r->message, "%s: ok (%d checks)", d->name, r->checks);
        return NB_OK;
    }
    nb_ctx_clear_error(ctx);
    nb_set_error(NB_ERR_NUMERIC, "opcheck %s: %s", r->property, r->message);
    return NB_ERR_NUMERIC;
}
