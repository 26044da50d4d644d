/* Padding and repetition: pad (constant, reflect, replicate, circular), repeat/tile and
 * repeat_interleave. Negative pads crop by slicing (a view). Constant padding is one primitive
 * (fill, then copy x into a window) whose backward is a window of slices; every other mode and
 * the repeats are index_select along one axis with an index map, so their gradients are
 * index_add and both orders come from the parts. The index modes cost one pass per padded axis
 * (PyTorch's kernels one pass in all). */
#include "../internal.h"

/* ---- constant padding: out = value, out[lo + i] = x[i] --------------------------------------- */
static nb_status pad_window_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    const nb_tensor *x = n->in[0];
    for (int d = 0; d < x->ndim && g; d++)
        if (x->shape[d] != n->out->shape[d]) g = nb_slice(ctx, g, d, n->iattr[d], n->iattr[d] + x->shape[d], 1);
    gin[0] = g;
    return NB_OK;
}
static const nb_op OP_PAD = {"pad", pad_window_bw, NB_DIFFERENTIABLE};

static nb_tensor *pad_window(nb_ctx *ctx, nb_tensor *x, const int64_t *lo, const int64_t *shape, double value) {
    nb_tensor *out = nb__new(ctx, x->dtype, x->ndim, shape);
    if (!out) return NULL;
    nb__fill_kernel(out, value);
    nb_tensor win = *out;
    int64_t off = 0;
    for (int d = 0; d < x->ndim; d++) {
        win.shape[d] = x->shape[d];
        off += lo[d] * out->stride[d];
    }
    win.numel = x->numel;
    win.data = (char *)out->data + off * (int64_t)nb_dtype_size(out->dtype);
    nb__copy_kernel(&win, x);
    nb_node *n;
    out = nb__finish(ctx, &OP_PAD, out, 1, &x, &n);
    for (int d = 0; n && d < x->ndim; d++) n->iattr[d] = lo[d];
    return out;
}

/* ---- index maps along one axis ----------------------------------------------------------------- */
typedef enum { MAP_REFLECT = NB_PAD_REFLECT, MAP_REPLICATE = NB_PAD_REPLICATE, MAP_CIRCULAR = NB_PAD_CIRCULAR, MAP_INTERLEAVE } map_kind;

/* x along axis, element j of the result taken from x[source(j - shift)] (n = x's length) */
static nb_tensor *take_mapped(nb_ctx *ctx, nb_tensor *x, int axis, int64_t n_out, int64_t shift, map_kind kind, int64_t r) {
    nb_tensor *idx = nb__new(ctx, NB_I64, 1, &n_out);
    if (!idx) return NULL;
    const int64_t n = x->shape[axis];
    int64_t *v = idx->data;
    for (int64_t j = 0; j < n_out; j++) {
        int64_t i = j - shift;
        switch (kind) {
        case MAP_REFLECT: i = i < 0 ? -i : (i >= n ? 2 * (n - 1) - i : i); break;   /* callers keep pads < n */
        case MAP_REPLICATE: i = i < 0 ? 0 : (i >= n ? n - 1 : i); break;
        case MAP_CIRCULAR: i = ((i % n) + n) % n; break;
        case MAP_INTERLEAVE: i = j / r; break;
        }
        v[j] = i;
    }
    return nb_index_select(ctx, x, axis, idx);
}

/* ---- pad ---------------------------------------------------------------------------------------- */
static const char *const MODE_NAME[] = {"constant", "reflect", "replicate", "circular"};
#define PAD_MAX ((int64_t)1 << 60) /* n + l + r cannot overflow; nb__size_ok refuses what is too big */

/* the size rule of each mode for one axis of length n padded by (l, r); c is the length left
 * after the negative pads crop */
static bool pad_axis_ok(nb_pad_mode mode, int64_t n, int64_t l, int64_t r) {
    const int64_t m = n + l + r, c = n - (l < 0 ? -l : 0) - (r < 0 ? -r : 0);
    switch (mode) {
    case NB_PAD_CONSTANT: return m >= 0;
    case NB_PAD_REFLECT: return l < n && r < n && m >= 1;
    case NB_PAD_REPLICATE: return n >= 1 && m >= 1;
    case NB_PAD_CIRCULAR: return c >= 0 && l <= c && r <= c; /* wraps the cropped axis at most once */
    }
    return false;
}

/* x cropped by the negative pads (a view) */
static nb_tensor *crop(nb_ctx *ctx, nb_tensor *x, int npad, const int64_t *pad) {
    for (int k = 0; k < npad / 2 && x; k++) {
        const int d = x->ndim - 1 - k;
        const int64_t n = x->shape[d], l = pad[2 * k], r = pad[2 * k + 1];
        const int64_t start = l < 0 ? -l : 0, stop = r < 0 ? n + r : n;
        if (start > 0 || stop < n) x = nb_slice(ctx, x, d, start, stop > start ? stop : start, 1);
    }
    return x;
}

nb_tensor *nb_pad(nb_ctx *ctx, nb_tensor *x, int npad, const int64_t *pad, nb_pad_mode mode, double value) {
    if (nb__null(ctx, "pad", 1, x)) return NULL;
    char s[128];
    if (x->dtype == NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "pad: expected f32 or f64, got i64");
    if ((unsigned)mode > NB_PAD_CIRCULAR) return nb__fail(ctx, NB_ERR_VALUE, "pad: unknown mode %d", (int)mode);
    if (npad < 0 || npad % 2 || npad / 2 > x->ndim || (npad > 0 && !pad))
        return nb__fail(ctx, NB_ERR_SHAPE, "pad: %d pad values for %s (an even number, at most 2 per axis)", npad,
                        nb_shape_str(x, s, sizeof s));
    int64_t shape[NB_MAX_DIMS], lo[NB_MAX_DIMS] = {0};
    memcpy(shape, x->shape, sizeof shape);
    bool grows = false;
    for (int k = 0; k < npad / 2; k++) {
        const int d = x->ndim - 1 - k;
        const int64_t n = x->shape[d], l = pad[2 * k], r = pad[2 * k + 1];
        if (l < -PAD_MAX || l > PAD_MAX || r < -PAD_MAX || r > PAD_MAX || !pad_axis_ok(mode, n, l, r))
            return nb__fail(ctx, NB_ERR_SHAPE, "pad: padding (%lld, %lld) of axis %d of %s is invalid in %s mode", (long long)l,
                            (long long)r, d, nb_shape_str(x, s, sizeof s), MODE_NAME[mode]);
        shape[d] = n + l + r;
        lo[d] = l > 0 ? l : 0;
        grows |= l > 0 || r > 0;
    }
    if (!nb__size_ok(ctx, "pad", x->ndim, shape, nb_dtype_size(x->dtype), NULL)) return NULL;
    if (mode == NB_PAD_REFLECT || mode == NB_PAD_REPLICATE) { /* about the edges of x: out[j] = x[map(j - l)] */
        for (int k = 0; k < npad / 2 && x; k++) {
            const int d = x->ndim - 1 - k;
            if (pad[2 * k] != 0 || pad[2 * k + 1] != 0) x = take_mapped(ctx, x, d, shape[d], pad[2 * k], (map_kind)mode, 1);
        }
        return x;
    }
    /* constant and circular (as PyTorch's) crop first: constant fills around the rest, circular
     * wraps it */
    x = crop(ctx, x, npad, pad);
    if (!x || !grows) return x;
    if (mode == NB_PAD_CONSTANT) return pad_window(ctx, x, lo, shape, value);
    for (int k = 0; k < npad / 2 && x; k++) {
        const int d = x->ndim - 1 - k;
        if (shape[d] != x->shape[d]) x = take_mapped(ctx, x, d, shape[d], lo[d], MAP_CIRCULAR, 1);
    }
    return x;
}

/* ---- repeat / repeat_interleave ------------------------------------------------------------------ */
nb_tensor *nb_repeat(nb_ctx *ctx, nb_tensor *x, int n, const int64_t *repeats) {
    if (nb__null(ctx, "repeat", 1, x)) return NULL;
    char s[128];
    if (n < 0 || n > NB_MAX_DIMS || (n > 0 && !repeats))
        return nb__fail(ctx, NB_ERR_SHAPE, "repeat: %d repeats for %s (at most %d)", n, nb_shape_str(x, s, sizeof s), NB_MAX_DIMS);
    const int nd = n > x->ndim ? n : x->ndim, lead = nd - n;  /* fewer repeats than axes: torch.tile's leading 1s */
    int64_t shape[NB_MAX_DIMS];
    for (int d = 0; d < nd; d++) {
        const int64_t len = d < nd - x->ndim ? 1 : x->shape[d - (nd - x->ndim)], r = d < lead ? 1 : repeats[d - lead];
        if (r < 0 || (len > 0 && r > INT64_MAX / len))
            return nb__fail(ctx, NB_ERR_VALUE, "repeat: repeat %lld of axis %d of %s is invalid", (long long)r, d,
                            nb_shape_str(x, s, sizeof s));
        shape[d] = len * r;
    }
    if (!nb__size_ok(ctx, "repeat", nd, shape, nb_dtype_size(x->dtype), NULL)) return NULL;
    int64_t xs[NB_MAX_DIMS];
    for (int d = 0; d < nd; d++) xs[d] = d < nd - x->ndim ? 1 : x->shape[d - (nd - x->ndim)];
    nb_tensor *y = nd == x->ndim ? x : nb_reshape(ctx, x, nd, xs);
    for (int d = 0; d < nd && y; d++)
        if (shape[d] != xs[d]) y = take_mapped(ctx, y, d, shape[d], 0, MAP_CIRCULAR, 1);
    return y;
}

nb_tensor *nb_repeat_interleave(nb_ctx *ctx, nb_tensor *x, int64_t repeats, int axis) {
    if (nb__null(ctx, "repeat_interleave", 1, x)) return NULL;
    char s[128];
    const int a = nb__axis(axis, x->ndim);
    if (a < 0) return nb__fail(ctx, NB_ERR_AXIS, "repeat_interleave: axis %d out of range for %s", axis, nb_shape_str(x, s, sizeof s));
    const int64_t len = x->shape[a];
    if (repeats < 0 || (len > 0 && repeats > INT64_MAX / len))
        return nb__fail(ctx, NB_ERR_VALUE, "repeat_interleave: repeats %lld invalid for %s", (long long)repeats,
                        nb_shape_str(x, s, sizeof s));
    if (repeats == 1) return x;
    int64_t shape[NB_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[a] = len * repeats;
    if (!nb__size_ok(ctx, "repeat_interleave", x->ndim, shape, nb_dtype_size(x->dtype), NULL)) return NULL;
    return take_mapped(ctx, x, a, shape[a], 0, MAP_INTERLEAVE, repeats);
}
