/* Shape ops: views (reshape, permute, slice, expand), copies (contiguous, concat) and
 * indexing (index_select/index_add, gather/scatter_add/scatter). Views share their input's data;
 * their backward rules are again shape ops. */
#include "../internal.h"

static nb_tensor *view_of(nb_ctx *ctx, const nb_op *op, nb_tensor *x, int ndim, const int64_t *shape,
                          const int64_t *stride, void *data, nb_node **node) {
    nb_tensor *v = nb__view(ctx, x, ndim, shape, stride, data);
    return nb__finish(ctx, op, v, 1, &x, node);
}

/* ---- reshape --------------------------------------------------------------------------- */
/* Strides that let `shape` view x's memory, or false (PyTorch's rule: every run of merged or
 * split dims must be contiguous within itself). */
static bool view_strides(const nb_tensor *x, int ndim, const int64_t *shape, int64_t *stride) {
    if (x->numel == 0 || x->ndim == 0) {
        nb__contig_strides(ndim, shape, stride);
        return true;
    }
    int vd = ndim - 1;
    int64_t base = x->stride[x->ndim - 1], tn = 1, vn = 1;
    for (int td = x->ndim - 1; td >= 0; td--) {
        tn *= x->shape[td];
        if (td == 0 || (x->shape[td - 1] != 1 && x->stride[td - 1] != tn * base)) {
            while (vd >= 0 && (vn < tn || shape[vd] == 1)) {
                stride[vd] = vn * base;
                vn *= shape[vd];
                vd--;
            }
            if (vn != tn) return false;
            if (td > 0) {
                base = x->stride[td - 1];
                tn = vn = 1;
            }
        }
    }
    return vd == -1;
}

static nb_status reshape_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = nb_reshape(ctx, g, n->in[0]->ndim, n->in[0]->shape);
    return NB_OK;
}
static const nb_op OP_RESHAPE = {"reshape", reshape_bw, NB_DIFFERENTIABLE};

nb_tensor *nb_reshape(nb_ctx *ctx, nb_tensor *x, int ndim, const int64_t *shape) {
    if (nb__null(ctx, "reshape", 1, x)) return NULL;
    char a[128], b[128];
    if (ndim < 0 || ndim > NB_MAX_DIMS || (ndim > 0 && !shape))
        return nb__fail(ctx, NB_ERR_SHAPE, "reshape: invalid target rank %d", ndim);
    int64_t s[NB_MAX_DIMS], known = 1;
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (s[i] == -1 && infer < 0) infer = i;
        else if (s[i] < 0 || __builtin_mul_overflow(known, s[i], &known))
            return nb__fail(ctx, NB_ERR_SHAPE, "reshape: invalid target shape %s", nb__dims_str(ndim, shape, b, sizeof b));
    }
    if (infer >= 0 && known == 0) /* any size would do: torch refuses it too */
        return nb__fail(ctx, NB_ERR_SHAPE, "reshape: the -1 in %s is ambiguous for %s (a 0 among the other sizes)",
                        nb__dims_str(ndim, shape, b, sizeof b), nb_shape_str(x, a, sizeof a));
    if (infer >= 0) s[infer] = x->numel / known;
    int64_t n;
    if (!nb__size(ndim, s, nb_dtype_size(x->dtype), &n, NULL) || n != x->numel)
        return nb__fail(ctx, NB_ERR_SHAPE, "reshape: cannot reshape %s (%lld elements) to %s", nb_shape_str(x, a, sizeof a),
                        (long long)x->numel, nb__dims_str(ndim, shape, b, sizeof b));
    int64_t st[NB_MAX_DIMS];
    if (!view_strides(x, ndim, s, st)) {
        x = nb_contiguous(ctx, x);
        if (!x) return NULL;
        nb__contig_strides(ndim, s, st);
    }
    return view_of(ctx, &OP_RESHAPE, x, ndim, s, st, x->data, NULL);
}

nb_tensor *nb_flatten(nb_ctx *ctx, nb_tensor *x, int start_axis) {
    if (nb__null(ctx, "flatten", 1, x)) return NULL;
    int a = x->ndim == 0 ? 0 : nb__axis(start_axis, x->ndim);
    if (a < 0) return nb__fail(ctx, NB_ERR_AXIS, "flatten: axis %d out of range for %d dims", start_axis, x->ndim);
    int64_t s[NB_MAX_DIMS];
    for (int i = 0; i < a; i++) s[i] = x->shape[i];
    s[a] = 1; /* the product of the rest (a -1 would be ambiguous when a leading size is 0) */
    for (int i = a; i < x->ndim; i++) s[a] *= x->shape[i];
    return nb_reshape(ctx, x, a + 1, s);
}

nb_tensor *nb_squeeze(nb_ctx *ctx, nb_tensor *x, int axis) {
    if (nb__null(ctx, "squeeze", 1, x)) return NULL;
    int a = nb__axis(axis, x->ndim);
    if (a < 0) return nb__fail(ctx, NB_ERR_AXIS, "squeeze: axis %d out of range for %d dims", axis, x->ndim);
    if (x->shape[a] != 1) return x;  /* like PyTorch: squeezing a non-1 axis changes nothing */
    int64_t s[NB_MAX_DIMS];
    for (int i = 0, k = 0; i < x->ndim; i++)
        if (i != a) s[k++] = x->shape[i];
    return nb_reshape(ctx, x, x->ndim - 1, s);
}

nb_tensor *nb_unsqueeze(nb_ctx *ctx, nb_tensor *x, int axis) {
    if (nb__null(ctx, "unsqueeze", 1, x)) return NULL;
    int a = nb__axis(axis, x->ndim + 1);
    if (a < 0 || x->ndim == NB_MAX_DIMS)
        return nb__fail(ctx, NB_ERR_AXIS, "unsqueeze: axis %d out of range for %d dims", axis, x->ndim);
    int64_t s[NB_MAX_DIMS];
    for (int i = 0, k = 0; i <= x->ndim; i++) s[i] = i == a ? 1 : x->shape[k++];
    return nb_reshape(ctx, x, x->ndim + 1, s);
}

/* ---- permute / transpose ----------------------------------------------------------------- */
static nb_status permute_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    int inv[NB_MAX_DIMS];
    for (int i = 0; i < n->out->ndim; i++) inv[n->iattr[i]] = i;
    gin[0] = nb_permute(ctx, g, inv);
    return NB_OK;
}
static const nb_op OP_PERMUTE = {"permute", permute_bw, NB_DIFFERENTIABLE};

nb_tensor *nb_permute(nb_ctx *ctx, nb_tensor *x, const int *perm) {
    if (nb__null(ctx, "permute", 1, x)) return NULL;
    if (x->ndim > 0 && !perm) return nb__fail(ctx, NB_ERR_NULL, "permute: perm is NULL");
    int64_t s[NB_MAX_DIMS], st[NB_MAX_DIMS];
    unsigned seen = 0;
    for (int i = 0; i < x->ndim; i++) {
        int p = nb__axis(perm[i], x->ndim);
        if (p < 0 || (seen >> p & 1)) {
            char b[128];
            return nb__fail(ctx, NB_ERR_AXIS, "permute: not a permutation of the %d axes of %s", x->ndim,
                            nb_shape_str(x, b, sizeof b));
        }
        seen |= 1u << p;
        s[i] = x->shape[p];
        st[i] = x->stride[p];
    }
    nb_node *n;
    nb_tensor *v = view_of(ctx, &OP_PERMUTE, x, x->ndim, s, st, x->data, &n);
    for (int i = 0; n && i < x->ndim; i++) n->iattr[i] = nb__axis(perm[i], x->ndim);
    return v;
}

nb_tensor *nb_transpose(nb_ctx *ctx, nb_tensor *x, int a0, int a1) {
    if (nb__null(ctx, "transpose", 1, x)) return NULL;
    int p0 = nb__axis(a0, x->ndim), p1 = nb__axis(a1, x->ndim);
    if (p0 < 0 || p1 < 0) {
        char b[128];
        return nb__fail(ctx, NB_ERR_AXIS, "transpose: axes %d, %d out of range for %s", a0, a1, nb_shape_str(x, b, sizeof b));
    }
    int perm[NB_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) perm[i] = i;
    perm[p0] = p1;
    perm[p1] = p0;
    return nb_permute(ctx, x, perm);
}

/* ---- slice and its adjoint ------------------------------------------------------------------ */
static nb_tensor *slice_backward(nb_ctx *ctx, nb_tensor *g, const nb_tensor *like, const int64_t *at);

static nb_status slice_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = slice_backward(ctx, g, n->in[0], n->iattr);
    return NB_OK;
}
static nb_status slice_backward_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = nb_slice(ctx, g, (int)n->iattr[0], n->iattr[1], n->iattr[2], n->iattr[3]);
    return NB_OK;
}
static const nb_op OP_SLICE = {"slice", slice_bw, NB_DIFFERENTIABLE}, OP_SLICE_BACKWARD = {"slice_backward", slice_backward_bw, NB_DIFFERENTIABLE};

/* zeros shaped like `like`, with g written into like[slice at] */
static nb_tensor *slice_backward(nb_ctx *ctx, nb_tensor *g, const nb_tensor *like, const int64_t *at) {
    if (!g) return NULL;
    nb_tensor *out = nb__new(ctx, g->dtype, like->ndim, like->shape);
    if (!out) return NULL;
    nb_fill(out, 0.0);
    int ax = (int)at[0];
    nb_tensor win = *out;
    win.shape[ax] = g->shape[ax];
    win.stride[ax] = g->shape[ax] > 1 ? out->stride[ax] * at[3] : out->stride[ax];
    win.data = (char *)out->data + at[1] * out->stride[ax] * (int64_t)nb_dtype_size(out->dtype);
    win.numel = g->numel;
    nb__copy_kernel(&win, g);
    nb_node *n;
    out = nb__finish(ctx, &OP_SLICE_BACKWARD, out, 1, &g, &n);
    if (n) memcpy(n->iattr, at, 4 * sizeof *at);
    return out;
}

nb_tensor *nb_slice(nb_ctx *ctx, nb_tensor *x, int axis, int64_t start, int64_t stop, int64_t step) {
    if (nb__null(ctx, "slice", 1, x)) return NULL;
    int a = nb__axis(axis, x->ndim);
    char b[128];
    if (a < 0) return nb__fail(ctx, NB_ERR_AXIS, "slice: axis %d out of range for %s", axis, nb_shape_str(x, b, sizeof b));
    if (step <= 0) return nb__fail(ctx, NB_ERR_VALUE, "slice: step must be positive, got %lld", (long long)step);
    int64_t len = x->shape[a];
    if (start < 0) start += len;
    if (stop < 0) stop += len;
    start = start < 0 ? 0 : (start > len ? len : start);
    stop = stop < start ? start : (stop > len ? len : stop);
    int64_t s[NB_MAX_DIMS], st[NB_MAX_DIMS];
    memcpy(s, x->shape, sizeof s);
    memcpy(st, x->stride, sizeof st);
    s[a] = stop > start ? (stop - start - 1) / step + 1 : 0;  /* no overflow for any step */
    st[a] = s[a] > 1 ? x->stride[a] * step : x->stride[a];   /* step < len here: in range */
    void *data = (char *)x->data + start * x->stride[a] * (int64_t)nb_dtype_size(x->dtype);
    nb_node *n;
    nb_tensor *v = view_of(ctx, &OP_SLICE, x, x->ndim, s, st, data, &n);
    if (n) n->iattr[0] = a, n->iattr[1] = start, n->iattr[2] = stop, n->iattr[3] = step;
    return v;
}

/* ---- expand / contiguous --------------------------------------------------------------- */
static nb_status expand_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = nb_sum_to(ctx, g, n->in[0]->ndim, n->in[0]->shape);
    return NB_OK;
}
static const nb_op OP_EXPAND = {"expand", expand_bw, NB_DIFFERENTIABLE};

nb_tensor *nb_expand(nb_ctx *ctx, nb_tensor *x, int ndim, const int64_t *shape) {
    if (nb__null(ctx, "expand", 1, x)) return NULL;
    char a[128], b[128];
    if (ndim < x->ndim || ndim > NB_MAX_DIMS || (ndim > 0 && !shape))
        return nb__fail(ctx, NB_ERR_SHAPE, "expand: cannot expand %s to rank %d", nb_shape_str(x, a, sizeof a), ndim);
    if (!nb__size_ok(ctx, "expand", ndim, shape, nb_dtype_size(x->dtype), NULL)) return NULL;
    int64_t st[NB_MAX_DIMS];
    bool same = ndim == x->ndim;
    for (int i = 0; i < ndim; i++) {
        int j = i - (ndim - x->ndim);
        if (j < 0) {
            st[i] = 0;
            continue;
        }
        if (x->shape[j] == shape[i]) st[i] = x->stride[j];
        else if (x->shape[j] == 1 && shape[i] >= 0) st[i] = 0, same = false;
        else
            return nb__fail(ctx, NB_ERR_SHAPE, "expand: cannot expand %s to %s", nb_shape_str(x, a, sizeof a),
                            nb__dims_str(ndim, shape, b, sizeof b));
    }
    if (same) return x;
    return view_of(ctx, &OP_EXPAND, x, ndim, shape, st, x->data, NULL);
}

static nb_status identity_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    (void)ctx, (void)n;
    gin[0] = g;
    return NB_OK;
}
static const nb_op OP_CONTIGUOUS = {"contiguous", identity_bw, NB_DIFFERENTIABLE};

nb_tensor *nb_contiguous(nb_ctx *ctx, nb_tensor *x) {
    if (nb__null(ctx, "contiguous", 1, x)) return NULL;
    if (nb_is_contiguous(x)) return x;
    nb_tensor *out = nb__new(ctx, x->dtype, x->ndim, x->shape);
    if (!out) return NULL;
    nb__copy_kernel(out, x);
    return nb__finish(ctx, &OP_CONTIGUOUS, out, 1, &x, NULL);
}

/* ---- concat / stack ---------------------------------------------------------------------- */
static nb_status concat_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    int ax = (int)n->iattr[0];
    int64_t off = 0;
    for (int i = 0; i < n->n_in; i++) {
        int64_t len = n->in[i]->shape[ax];
        if (n->in[i]->requires_grad) gin[i] = nb_slice(ctx, g, ax, off, off + len, 1);
        off += len;
    }
    return NB_OK;
}
static const nb_op OP_CONCAT = {"concat", concat_bw, NB_DIFFERENTIABLE};

nb_tensor *nb_concat(nb_ctx *ctx, int n, nb_tensor *const *xs, int axis) {
    if (!ctx) return nb_set_error(NB_ERR_NULL, "concat: context is NULL"), NULL;
    if (n < 1 || !xs) return nb__fail(ctx, NB_ERR_NULL, "concat: no inputs");
    for (int i = 0; i < n; i++)
        if (!xs[i]) return ctx->status ? NULL : nb__fail(ctx, NB_ERR_NULL, "concat: input %d is NULL", i);
    const nb_tensor *x0 = xs[0];
    int a = nb__axis(axis, x0->ndim);
    char s0[128], si[128];
    if (a < 0) return nb__fail(ctx, NB_ERR_AXIS, "concat: axis %d out of range for %s", axis, nb_shape_str(x0, s0, sizeof s0));
    int64_t shape[NB_MAX_DIMS];
    memcpy(shape, x0->shape, sizeof shape);
    shape[a] = 0;
    for (int i = 0; i < n; i++) {
        const nb_tensor *x = xs[i];
        if (x->dtype != x0->dtype)
            return nb__fail(ctx, NB_ERR_DTYPE, "concat: input %d is %s, input 0 is %s", i, nb_dtype_name(x->dtype),
                            nb_dtype_name(x0->dtype));
        bool ok = x->ndim == x0->ndim;
        for (int d = 0; ok && d < x->ndim; d++) ok = d == a || x->shape[d] == x0->shape[d];
        if (!ok)
            return nb__fail(ctx, NB_ERR_SHAPE, "concat: input %d has shape %s, incompatible with %s along axis %d", i,
                            nb_shape_str(x, si, sizeof si), nb_shape_str(x0, s0, sizeof s0), a);
        shape[a] += x->shape[a];
    }
    nb_tensor *out = nb__new(ctx, x0->dtype, x0->ndim, shape);
    if (!out) return NULL;
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        nb_tensor win = *out;
        win.shape[a] = xs[i]->shape[a];
        win.numel = xs[i]->numel;
        win.data = (char *)out->data + off * out->stride[a] * (int64_t)nb_dtype_size(out->dtype);
        nb__copy_kernel(&win, xs[i]);
        off += xs[i]->shape[a];
    }
    nb_node *node;
    out = nb__finish(ctx, &OP_CONCAT, out, n, xs, &node);
    if (node) node->iattr[0] = a;
    return out;
}

nb_tensor *nb_stack(nb_ctx *ctx, int n, nb_tensor *const *xs, int axis) {
    if (!ctx) return nb_set_error(NB_ERR_NULL, "stack: context is NULL"), NULL;
    if (n < 1 || !xs) return nb__fail(ctx, NB_ERR_NULL, "stack: no inputs");
    nb_tensor **u = nb_ctx_alloc(ctx, (size_t)n * sizeof *u);
    if (!u) return NULL;
    for (int i = 0; i < n; i++) {
        if (xs[i] && (xs[i]->ndim != xs[0]->ndim || !nb_same_shape(xs[i], xs[0]))) {
            char a[128], b[128];
            return nb__fail(ctx, NB_ERR_SHAPE, "stack: input %d has shape %s, input 0 has %s", i,
                            nb_shape_str(xs[i], a, sizeof a), nb_shape_str(xs[0], b, sizeof b));
        }
        u[i] = xs[i] ? nb_unsqueeze(ctx, xs[i], axis) : NULL;
        if (!u[i]) return ctx->status ? NULL : nb__fail(ctx, NB_ERR_NULL, "stack: input %d is NULL", i);
    }
    return nb_concat(ctx, n, u, axis);
}

/* ---- index_select / index_add -------------------------------------------------------------- */
static bool check_index(nb_ctx *ctx, const char *op, const nb_tensor *idx, int64_t limit) {
    if (idx->dtype != NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "%s: indices must be i64, got %s", op, nb_dtype_name(idx->dtype)), false;
    for (int64_t i = 0; i < idx->numel; i++) {
        int64_t v = ((const int64_t *)idx->data)[nb__offset(idx, i)];
        if (v < 0 || v >= limit)
            return nb__fail(ctx, NB_ERR_INDEX, "%s: index %lld at position %lld is out of range [0, %lld)", op, (long long)v,
                            (long long)i, (long long)limit),
                   false;
    }
    return true;
}

static int64_t index_at(const nb_tensor *idx, int64_t i) { return ((const int64_t *)idx->data)[nb__offset(idx, i)]; }

/* the sub-tensor of t at position k along axis a */
static nb_tensor plane(const nb_tensor *t, int a, int64_t k) {
    nb_tensor p = *t;
    p.shape[a] = 1;
    p.numel = t->shape[a] ? t->numel / t->shape[a] : 0;
    p.data = (char *)t->data + k * t->stride[a] * (int64_t)nb_dtype_size(t->dtype);
    return p;
}

static nb_status index_select_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = nb_index_add(ctx, nb_zeros_like(ctx, n->in[0]), (int)n->iattr[0], n->in[1], g);
    return NB_OK;
}
static nb_status index_add_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    if (n->in[0]->requires_grad) gin[0] = g;
    if (n->in[2]->requires_grad) gin[2] = nb_index_select(ctx, g, (int)n->iattr[0], n->in[1]);
    return NB_OK;
}
static const nb_op OP_INDEX_SELECT = {"index_select", index_select_bw, NB_DIFFERENTIABLE}, OP_INDEX_ADD = {"index_add", index_add_bw, NB_DIFFERENTIABLE};

nb_tensor *nb_index_select(nb_ctx *ctx, nb_tensor *x, int axis, nb_tensor *idx) {
    if (nb__null(ctx, "index_select", 2, x, idx)) return NULL;
    int a = nb__axis(axis, x->ndim);
    char b[128];
    if (a < 0) return nb__fail(ctx, NB_ERR_AXIS, "index_select: axis %d out of range for %s", axis, nb_shape_str(x, b, sizeof b));
    if (idx->ndim != 1) return nb__fail(ctx, NB_ERR_SHAPE, "index_select: indices must be 1-D, got %s", nb_shape_str(idx, b, sizeof b));
    if (!check_index(ctx, "index_select", idx, x->shape[a])) return NULL;
    int64_t s[NB_MAX_DIMS];
    memcpy(s, x->shape, sizeof s);
    s[a] = idx->numel;
    nb_tensor *out = nb__new(ctx, x->dtype, x->ndim, s);
    if (!out) return NULL;
    for (int64_t i = 0; i < idx->numel; i++) {
        nb_tensor dst = plane(out, a, i), src = plane(x, a, index_at(idx, i));
        nb__copy_kernel(&dst, &src);
    }
    nb_tensor *in[2] = {x, idx};
    nb_node *n;
    out = nb__finish(ctx, &OP_INDEX_SELECT, out, 2, in, &n);
    if (n) n->iattr[0] = a;
    return out;
}

nb_tensor *nb_index_add(nb_ctx *ctx, nb_tensor *x, int axis, nb_tensor *idx, nb_tensor *src) {
    if (nb__null(ctx, "index_add", 3, x, idx, src)) return NULL;
    int a = nb__axis(axis, x->ndim);
    char b[128], c[128];
    if (a < 0) return nb__fail(ctx, NB_ERR_AXIS, "index_add: axis %d out of range for %s", axis, nb_shape_str(x, b, sizeof b));
    if (idx->ndim != 1) return nb__fail(ctx, NB_ERR_SHAPE, "index_add: indices must be 1-D, got %s", nb_shape_str(idx, b, sizeof b));
    if (src->dtype != x->dtype) return nb__fail(ctx, NB_ERR_DTYPE, "index_add: source is %s, target is %s", nb_dtype_name(src->dtype), nb_dtype_name(x->dtype));
    bool ok = src->ndim == x->ndim;
    for (int d = 0; ok && d < x->ndim; d++) ok = src->shape[d] == (d == a ? idx->numel : x->shape[d]);
    if (!ok)
        return nb__fail(ctx, NB_ERR_SHAPE, "index_add: source %s does not match target %s with %lld indices on axis %d",
                        nb_shape_str(src, b, sizeof b), nb_shape_str(x, c, sizeof c), (long long)idx->numel, a);
    if (!check_index(ctx, "index_add", idx, x->shape[a])) return NULL;
    nb_tensor *out = nb__new(ctx, x->dtype, x->ndim, x->shape);
    if (!out) return NULL;
    nb__copy_kernel(out, x);
    for (int64_t i = 0; i < idx->numel; i++) {
        nb_tensor dst = plane(out, a, index_at(idx, i)), s = plane(src, a, i);
        nb__accumulate_kernel(&dst, &s);
    }
    nb_tensor *in[3] = {x, idx, src};
    nb_node *n;
    out = nb__finish(ctx, &OP_INDEX_ADD, out, 3, in, &n);
    if (n) n->iattr[0] = a;
    return out;
}

/* ---- gather / scatter_add --------------------------------------------------------------------- */
static nb_status gather_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = nb_scatter_add(ctx, nb_zeros_like(ctx, n->in[0]), (int)n->iattr[0], n->in[1], g);
    return NB_OK;
}
static nb_status scatter_add_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    if (n->in[0]->requires_grad) gin[0] = g;
    if (n->in[2]->requires_grad) gin[2] = nb_gather(ctx, g, (int)n->iattr[0], n->in[1]);
    return NB_OK;
}
static const nb_op OP_GATHER = {"gather", gather_bw, NB_DIFFERENTIABLE}, OP_SCATTER_ADD = {"scatter_add", scatter_add_bw, NB_DIFFERENTIABLE};
static nb_status scatter_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin);
static const nb_op OP_SCATTER = {"scatter", scatter_bw, NB_DIFFERENTIABLE};

static bool check_gather(nb_ctx *ctx, const char *op, const nb_tensor *x, int axis, const nb_tensor *idx, int *a) {
    char b[128], c[128];
    *a = nb__axis(axis, x->ndim);
    if (*a < 0) return nb__fail(ctx, NB_ERR_AXIS, "%s: axis %d out of range for %s", op, axis, nb_shape_str(x, b, sizeof b)), false;
    bool ok = idx->ndim == x->ndim;
    for (int d = 0; ok && d < x->ndim; d++) ok = d == *a || idx->shape[d] <= x->shape[d];
    if (!ok)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: index shape %s does not fit input %s", op, nb_shape_str(idx, b, sizeof b),
                        nb_shape_str(x, c, sizeof c)),
               false;
    return check_index(ctx, op, idx, x->shape[*a]);
}

/* offset in t of idx's element i, with the axis coordinate replaced by idx's value */
static int64_t gather_offset(const nb_tensor *t, const nb_tensor *idx, int a, int64_t i) {
    int64_t rem = i, off = 0;
    for (int d = idx->ndim - 1; d >= 0; d--) {
        int64_t c = rem % idx->shape[d];
        rem /= idx->shape[d];
        off += (d == a ? index_at(idx, i) : c) * t->stride[d];
    }
    return off;
}

nb_tensor *nb_gather(nb_ctx *ctx, nb_tensor *x, int axis, nb_tensor *idx) {
    int a;
    if (nb__null(ctx, "gather", 2, x, idx) || !check_gather(ctx, "gather", x, axis, idx, &a)) return NULL;
    nb_tensor *out = nb__new(ctx, x->dtype, idx->ndim, idx->shape);
    if (!out) return NULL;
    for (int64_t i = 0; i < idx->numel; i++) {
        int64_t off = gather_offset(x, idx, a, i);
        if (x->dtype == NB_F32) ((float *)out->data)[i] = ((const float *)x->data)[off];
        else ((double *)out->data)[i] = ((const double *)x->data)[off];
    }
    nb_tensor *in[2] = {x, idx};
    nb_node *n;
    out = nb__finish(ctx, &OP_GATHER, out, 2, in, &n);
    if (n) n->iattr[0] = a;
    return out;
}

nb_tensor *nb_scatter_add(nb_ctx *ctx, nb_tensor *x, int axis, nb_tensor *idx, nb_tensor *src) {
    int a;
    if (nb__null(ctx, "scatter_add", 3, x, idx, src) || !check_gather(ctx, "scatter_add", x, axis, idx, &a)) return NULL;
    char b[128], c[128];
    if (src->dtype != x->dtype) return nb__fail(ctx, NB_ERR_DTYPE, "scatter_add: source is %s, target is %s", nb_dtype_name(src->dtype), nb_dtype_name(x->dtype));
    if (!nb_same_shape(src, idx))
        return nb__fail(ctx, NB_ERR_SHAPE, "scatter_add: source %s must have the index shape %s", nb_shape_str(src, b, sizeof b),
                        nb_shape_str(idx, c, sizeof c));
    nb_tensor *out = nb__new(ctx, x->dtype, x->ndim, x->shape);
    if (!out) return NULL;
    nb__copy_kernel(out, x);
    for (int64_t i = 0; i < idx->numel; i++) {
        int64_t off = gather_offset(out, idx, a, i), so = nb__offset(src, i);
        if (x->dtype == NB_F32) ((float *)out->data)[off] += ((const float *)src->data)[so];
        else ((double *)out->data)[off] += ((const double *)src->data)[so];
    }
    nb_tensor *in[3] = {x, idx, src};
    nb_node *n;
    out = nb__finish(ctx, &OP_SCATTER_ADD, out, 3, in, &n);
    if (n) n->iattr[0] = a;
    return out;
}

/* ---- scatter: the last write wins -------------------------------------------------------------- */
/* 1 where element i of idx is the last (in row-major order) to write its target, else 0;
 * *dup tells whether any target is written twice */
static nb_tensor *last_writers(nb_ctx *ctx, const nb_tensor *x, const nb_tensor *idx, int a, nb_dtype dt, bool *dup) {
    nb_tensor *writer = nb__new(ctx, NB_I64, x->ndim, x->shape), *win = nb__new(ctx, dt, idx->ndim, idx->shape);
    if (!writer || !win) return NULL;
    int64_t *w = writer->data;
    for (int64_t i = 0; i < idx->numel; i++) w[gather_offset(writer, idx, a, i)] = i;
    *dup = false;
    for (int64_t i = 0; i < idx->numel; i++) {
        const bool last = w[gather_offset(writer, idx, a, i)] == i;
        *dup |= !last;
        nb_set(win, i, last ? 1.0 : 0.0);
    }
    return win;
}

static nb_status scatter_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    const int a = (int)n->iattr[0];
    nb_tensor *idx = n->in[1], *src = n->in[2];
    if (n->in[0]->requires_grad) gin[0] = nb_scatter(ctx, g, a, idx, nb_zeros_like(ctx, src)); /* overwritten: no gradient */
    if (src->requires_grad) {
        bool dup;
        nb_tensor *last = last_writers(ctx, n->out, idx, a, g->dtype, &dup), *gs = nb_gather(ctx, g, a, idx);
        gin[2] = last && dup ? nb_mul(ctx, gs, last) : (last ? gs : NULL);
    }
    return NB_OK;
}

nb_tensor *nb_scatter(nb_ctx *ctx, nb_tensor *x, int axis, nb_tensor *idx, nb_tensor *src) {
    int a;
    if (nb__null(ctx, "scatter", 3, x, idx, src) || !check_gather(ctx, "scatter", x, axis, idx, &a)) return NULL;
    char b[128], c[128];
    if (src->dtype != x->dtype) return nb__fail(ctx, NB_ERR_DTYPE, "scatter: source is %s, target is %s", nb_dtype_name(src->dtype), nb_dtype_name(x->dtype));
    bool ok = src->ndim == idx->ndim;
    for (int d = 0; ok && d < idx->ndim; d++) ok = src->shape[d] >= idx->shape[d];
    if (!ok)
        return nb__fail(ctx, NB_ERR_SHAPE, "scatter: source %s is smaller than the index %s", nb_shape_str(src, b, sizeof b),
                        nb_shape_str(idx, c, sizeof c));
    for (int d = 0; d < idx->ndim && src; d++) /* like PyTorch, only src's leading idx-shaped block is used */
        if (src->shape[d] != idx->shape[d]) src = nb_slice(ctx, src, d, 0, idx->shape[d], 1);
    nb_tensor *out = src ? nb__new(ctx, x->dtype, x->ndim, x->shape) : NULL;
    if (!out) return NULL;
    nb__copy_kernel(out, x);
    for (int64_t i = 0; i < idx->numel; i++) {
        int64_t off = gather_offset(out, idx, a, i), so = nb__offset(src, i);
        if (x->dtype == NB_F32) ((float *)out->data)[off] = ((const float *)src->data)[so];
        else ((double *)out->data)[off] = ((const double *)src->data)[so];
    }
    nb_tensor *in[3] = {x, idx, src};
    nb_node *n;
    out = nb__finish(ctx, &OP_SCATTER, out, 3, in, &n);
    if (n) n->iattr[0] = a;
    return out;
}
