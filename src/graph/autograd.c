/* Reverse-mode autodiff: walk the tape backwards from the outputs, calling each node's
 * backward rule (made of ops), summing gradients where a tensor is used several times and
 * summing broadcast gradients back to each input's shape in this one place. */
#include "../internal.h"

#include <stdlib.h>

nb_status nb_requires_grad(nb_tensor *t, bool on) {
    if (!t) return nb_set_error(NB_ERR_NULL, "requires_grad: tensor is NULL");
    if (t->node) return nb_set_error(NB_ERR_STATE, "requires_grad: only a leaf can be changed (this tensor was made by %s)",
                                     t->node->op->name);
    if (on && t->dtype == NB_I64) return nb_set_error(NB_ERR_DTYPE, "requires_grad: an i64 tensor cannot have gradients");
    t->requires_grad = on;
    return NB_OK;
}

nb_status nb_zero_grad(nb_tensor *t) {
    if (!t) return nb_set_error(NB_ERR_NULL, "zero_grad: tensor is NULL");
    if (t->grad) nb_fill(t->grad, 0.0);
    return NB_OK;
}

static bool touch(nb_ctx *ctx, nb_tensor *t) {
    if (ctx->ntouched == ctx->touched_cap) {
        int64_t cap = ctx->touched_cap ? ctx->touched_cap * 2 : 256;
        nb_tensor **p = realloc(ctx->touched, (size_t)cap * sizeof *p);
        if (!p) return false;
        ctx->mallocs++;
        ctx->touched = p;
        ctx->touched_cap = cap;
    }
    ctx->touched[ctx->ntouched++] = t;
    return true;
}

static nb_status accumulate(nb_ctx *ctx, nb_tensor *t, nb_tensor *g) {
    if (!t->acc_) {
        if (!touch(ctx, t)) {
            nb__fail(ctx, NB_ERR_NOMEM, "backward: out of memory");
            return NB_ERR_NOMEM;
        }
        t->acc_ = g;
        return NB_OK;
    }
    nb_tensor *s = nb_add(ctx, t->acc_, g);
    if (!s) return ctx->status ? ctx->status : NB_ERR_NOMEM;
    t->acc_ = s;
    return NB_OK;
}

static nb_tensor *run_hooks(nb_ctx *ctx, nb_tensor *t, nb_tensor *g) {
    for (nb_hook *h = t->hooks; h && g; h = h->next) {
        nb_tensor *r = h->fn(ctx, g, h->user);
        if (!r) {
            if (ctx->status == NB_OK) nb__fail(ctx, NB_ERR_STATE, "backward: a gradient hook returned NULL");
            return NULL;
        }
        if (!nb_same_shape(r, g) || r->dtype != g->dtype) {
            char a[128], b[128];
            return nb__fail(ctx, NB_ERR_SHAPE, "backward: a gradient hook returned %s %s for a gradient %s %s",
                            nb_dtype_name(r->dtype), nb_shape_str(r, a, sizeof a), nb_dtype_name(g->dtype),
                            nb_shape_str(g, b, sizeof b));
        }
        g = r;
    }
    return g;
}

/* Bring a rule's gradient to the input's shape and dtype (undo broadcasting). */
static nb_tensor *fit(nb_ctx *ctx, const nb_node *n, int j, nb_tensor *g) {
    const nb_tensor *in = n->in[j];
    if (g->dtype != in->dtype)
        return nb__fail(ctx, NB_ERR_DTYPE, "backward of %s: gradient for input %d is %s, input is %s", n->op->name, j,
                        nb_dtype_name(g->dtype), nb_dtype_name(in->dtype));
    if (nb_same_shape(g, in)) return g;
    nb_tensor *r = nb_sum_to(ctx, g, in->ndim, in->shape);
    if (!r) {
        char a[128], b[128];
        nb__fail(ctx, NB_ERR_SHAPE, "backward of %s: gradient %s does not reduce to input %d's shape %s", n->op->name,
                 nb_shape_str(g, a, sizeof a), j, nb_shape_str(in, b, sizeof b));
    }
    return r;
}

/* nb_backward: a leaf's gradient is complete; run its hooks, add it into .grad, tell the
 * ready callback (data-parallel training starts reducing it while backward goes on). */
static nb_status finalize_leaf(nb_ctx *ctx, nb_tensor *t) {
    t->visit_ = -1;
    nb_tensor *g = t->hooks ? run_hooks(ctx, t, t->acc_) : t->acc_;
    if (!g) return ctx->status;
    if (!t->grad) {
        t->grad = t->persistent ? nb_tensor_new(t->dtype, t->ndim, t->shape) : nb_zeros_like(ctx, t);
        if (!t->grad) {
            nb__fail(ctx, NB_ERR_NOMEM, "backward: cannot allocate .grad");
            return NB_ERR_NOMEM;
        }
        if (t->persistent) ctx->mallocs++;
    }
    nb__accumulate_kernel(t->grad, g);
    if (ctx->on_ready) ctx->on_ready(t, ctx->on_ready_user);
    return NB_OK;
}

static bool is_leaf(const nb_tensor *t) { return !t->node && t->requires_grad; }

/* node n is done: its leaf inputs have one use less; finalize those with none left */
static nb_status release_leaves(nb_ctx *ctx, const nb_node *n) {
    for (int j = 0; j < n->n_in; j++) {
        nb_tensor *in = n->in[j];
        if (is_leaf(in) && in->visit_ > 0 && --in->visit_ == 0 && in->acc_) {
            nb_status st = finalize_leaf(ctx, in);
            if (st != NB_OK) return st;
        }
    }
    return NB_OK;
}

/* The walk. With targets (n_in > 0) only nodes on a path to a target run; otherwise every
 * tensor that requires grad receives its gradient in acc_. */
static nb_status walk(nb_ctx *ctx, int n_out, nb_tensor *const *outs, nb_tensor *const *gouts, int n_in,
                      nb_tensor *const *targets, bool create_graph) {
    const int64_t id = ++ctx->walk_id;
    int64_t start = -1;
    for (int k = 0; k < n_out; k++)
        if (outs[k]->node && outs[k]->node->seq > start) start = outs[k]->node->seq;

    if (n_in > 0) {  /* mark what leads to a target */
        for (int i = 0; i < n_in; i++) targets[i]->visit_ = id;
        for (int64_t s = 0; s <= start; s++) {
            nb_node *n = ctx->tape[s];
            for (int j = 0; j < n->n_in; j++)
                if (n->in[j]->visit_ == id) {
                    n->out->visit_ = id;
                    break;
                }
        }
    }
    const bool leaves = n_in == 0;  /* nb_backward: count each leaf's uses to finalize it early */
    if (leaves) {
        for (int64_t s = 0; s <= start; s++)
            for (int j = 0; j < ctx->tape[s]->n_in; j++)
                if (is_leaf(ctx->tape[s]->in[j])) ctx->tape[s]->in[j]->visit_ = 0;
        for (int64_t s = 0; s <= start; s++)
            for (int j = 0; j < ctx->tape[s]->n_in; j++)
                if (is_leaf(ctx->tape[s]->in[j])) ctx->tape[s]->in[j]->visit_++;
    }
    nb_status st = NB_OK;
    for (int k = 0; k < n_out && st == NB_OK; k++) {
        nb_tensor *g = gouts && gouts[k] ? gouts[k] : nb_ones_like(ctx, outs[k]);
        if (!g) return ctx->status;
        st = accumulate(ctx, outs[k], g);
    }
    for (int64_t s = start; s >= 0 && st == NB_OK; s--) {
        nb_node *n = ctx->tape[s];
        nb_tensor *out = n->out;
        if (!out->acc_ || (n_in > 0 && out->visit_ != id)) {
            if (leaves && (st = release_leaves(ctx, n)) != NB_OK) return st;
            continue;
        }
        nb_tensor *g = out->hooks ? run_hooks(ctx, out, out->acc_) : out->acc_;
        if (!g) return ctx->status;
        out->acc_ = g;  /* what nb_grad returns for an intermediate input is the hooked gradient too */
        /* with create_graph the input gradients must depend on the inputs differentiably; a
         * fused backward gives constants, even when g itself is constant (e.g. ones) */
        if (create_graph && n->op->once_differentiable) {
            nb__fail(ctx, NB_ERR_UNSUPPORTED, "backward of %s: this op is once-differentiable; create_graph cannot differentiate it twice",
                     n->op->name);
            return NB_ERR_UNSUPPORTED;
        }
        nb_tensor *gin[64] = {0};
        nb_tensor **gp = n->n_in <= 64 ? gin : nb_ctx_alloc(ctx, (size_t)n->n_in * sizeof *gp);
        if (!gp) return ctx->status;
        if (gp != gin) memset(gp, 0, (size_t)n->n_in * sizeof *gp);
        /* anomaly checks of the rule's inner ops are skipped: the result is checked below,
         * naming this node's op and where the user called it */
        const bool was = ctx->in_backward;
        ctx->in_backward = true;
        st = n->op->backward(ctx, n, g, gp);
        ctx->in_backward = was;
        if (st != NB_OK) {
            if (ctx->status == NB_OK) nb__fail(ctx, st, "backward of %s failed", n->op->name);
            return ctx->status;
        }
        if (ctx->status != NB_OK) return ctx->status;
        for (int j = 0; j < n->n_in; j++) {
            nb_tensor *in = n->in[j];
            if (!gp[j] || !in->requires_grad || (n_in > 0 && in->visit_ != id)) continue;
            nb_tensor *gj = fit(ctx, n, j, gp[j]);
            if (!gj) return ctx->status;
            if (ctx->anomaly && nb__has_nonfinite(gj)) {
                nb__fail(ctx, NB_ERR_NUMERIC, "anomaly: backward of %s (called at %s:%d) produced NaN/Inf in the gradient of input %d",
                         n->op->name, n->file ? n->file : "?", n->line, j);
                return NB_ERR_NUMERIC;
            }
            st = accumulate(ctx, in, gj);
            if (st != NB_OK) return st;
        }
        if (leaves) st = release_leaves(ctx, n);
    }
    return st;
}

static void clear_walk(nb_ctx *ctx) {
    for (int64_t i = 0; i < ctx->ntouched; i++) ctx->touched[i]->acc_ = NULL;
    ctx->ntouched = 0;
}

static nb_status check_outputs(nb_ctx *ctx, const char *fn, int n_out, nb_tensor *const *outs,
                               nb_tensor *const *gouts) {
    if (!ctx) return nb_set_error(NB_ERR_NULL, "%s: context is NULL", fn);
    if (ctx->status != NB_OK) return ctx->status; /* an op already failed: keep its error */
    if (n_out < 1 || !outs) return nb__fail(ctx, NB_ERR_NULL, "%s: no outputs", fn), NB_ERR_NULL;
    for (int k = 0; k < n_out; k++) {
        char a[128], b[128];
        if (!outs[k]) return nb__fail(ctx, NB_ERR_NULL, "%s: output %d is NULL", fn, k), NB_ERR_NULL;
        if (nb__stale(ctx, fn, outs[k]) || (gouts && nb__stale(ctx, fn, gouts[k]))) return NB_ERR_STATE;
        if (!outs[k]->requires_grad)
            return nb__fail(ctx, NB_ERR_STATE, "%s: output %d does not require grad (no input requires grad, or grad mode was off)", fn, k),
                   NB_ERR_STATE;
        nb_tensor *g = gouts ? gouts[k] : NULL;
        if (!g && outs[k]->numel != 1)
            return nb__fail(ctx, NB_ERR_SHAPE, "%s: output %d has shape %s; pass a gradient for a non-scalar output", fn, k,
                            nb_shape_str(outs[k], a, sizeof a)),
                   NB_ERR_SHAPE;
        if (g && (!nb_same_shape(g, outs[k]) || g->dtype != outs[k]->dtype))
            return nb__fail(ctx, NB_ERR_SHAPE, "%s: gradient %s %s does not match output %s %s", fn, nb_dtype_name(g->dtype),
                            nb_shape_str(g, a, sizeof a), nb_dtype_name(outs[k]->dtype), nb_shape_str(outs[k], b, sizeof b)),
                   NB_ERR_SHAPE;
    }
    return NB_OK;
}

nb_status nb_backward(nb_ctx *ctx, nb_tensor *out, nb_tensor *grad_out) {
    nb_tensor *outs[1] = {out}, *gouts[1] = {grad_out};
    nb_status st = check_outputs(ctx, "backward", 1, outs, gouts);
    if (st != NB_OK) return st;
    bool prev = nb_set_grad_enabled(ctx, false);
    st = walk(ctx, 1, outs, gouts, 0, NULL, false);
    /* leaves not finalized during the walk (the output itself, or used beyond it) */
    for (int64_t i = 0; st == NB_OK && i < ctx->ntouched; i++) {
        nb_tensor *t = ctx->touched[i];
        if (is_leaf(t) && t->visit_ != -1) st = finalize_leaf(ctx, t);
    }
    clear_walk(ctx);
    nb_set_grad_enabled(ctx, prev);
    return st;
}

nb_status nb_grad(nb_ctx *ctx, int n_out, nb_tensor *const *outs, nb_tensor *const *grad_outs, int n_in,
                  nb_tensor *const *inputs, nb_tensor **grads, bool create_graph) {
    nb_status st = check_outputs(ctx, "grad", n_out, outs, grad_outs);
    if (st != NB_OK) return st;
    if (n_in < 1 || !inputs || !grads) return nb__fail(ctx, NB_ERR_NULL, "grad: no inputs"), NB_ERR_NULL;
    for (int i = 0; i < n_in; i++) {
        if (!inputs[i]) return nb__fail(ctx, NB_ERR_NULL, "grad: input %d is NULL", i), NB_ERR_NULL;
        if (nb__stale(ctx, "grad", inputs[i])) return NB_ERR_STATE;
        if (!inputs[i]->requires_grad)
            return nb__fail(ctx, NB_ERR_STATE, "grad: input %d does not require grad", i), NB_ERR_STATE;
    }
    bool prev = nb_set_grad_enabled(ctx, create_graph);
    st = walk(ctx, n_out, outs, grad_outs, n_in, inputs, create_graph);
    for (int i = 0; i < n_in && st == NB_OK; i++) {
        nb_tensor *t = inputs[i];
        nb_tensor *g = t->acc_;
        if (g && !t->node && t->hooks) g = run_hooks(ctx, t, g);
        else if (!g) g = nb_zeros_like(ctx, t);
        if (!g) st = ctx->status ? ctx->status : NB_ERR_NOMEM;
        grads[i] = g;
    }
    clear_walk(ctx);
    nb_set_grad_enabled(ctx, prev);
    return st;
}
