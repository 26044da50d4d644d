/* Reverse-mode autodiff: walk the tape backwards from the outputs, calling each node's
 * backward rule (made of ops), summing gradients where a tensor is used several times and
 * summing broadcast gradients back to each input's shape in this one place. */
#include "../internal.h"

#include <pthread.h>
#include <stdlib.h>

/* ---- the walk's per-tensor state, in the context ------------------------------------------ */
static uint64_t slot_hash(const nb_tensor *t) {
    uint64_t h = (uint64_t)(uintptr_t)t;
    h ^= h >> 33, h *= 0xff51afd7ed558ccdULL, h ^= h >> 33;
    return h;
}

bool nb__walk_begin(nb_ctx *ctx, int64_t start, int64_t extra) {
    int64_t tensors = extra;
    for (int64_t s = 0; s <= start; s++) tensors += 1 + ctx->tape[s]->n_in;
    ctx->walk_id++;
    int64_t want = 64;
    while (want < 2 * tensors) want *= 2;
    if (want <= ctx->nslots) return true;
    nb_walk_slot *s = calloc((size_t)want, sizeof *s); /* walk 0 never matches a live walk id */
    if (!s) {
        nb__fail(ctx, NB_ERR_NOMEM, "backward: out of memory for %lld tensors", (long long)tensors);
        return false;
    }
    ctx->mallocs++;
    free(ctx->slots);
    ctx->slots = s;
    ctx->last_slot = NULL;
    ctx->nslots = want;
    return true;
}

nb_walk_slot *nb__walk_slot(nb_ctx *ctx, const nb_tensor *t) {
    /* the last slot found: a walk asks for the same tensor (a parameter used by every node of
     * a chain, a node's output just accumulated into) several times in a row */
    nb_walk_slot *last = ctx->last_slot;
    if (last && last->t == t && last->walk == ctx->walk_id) return last;
    const uint64_t mask = (uint64_t)ctx->nslots - 1;
    for (uint64_t i = slot_hash(t) & mask;; i = (i + 1) & mask) {
        nb_walk_slot *s = &ctx->slots[i];
        if (s->walk != ctx->walk_id) { /* free (stale): t is not in this walk yet */
            *s = (nb_walk_slot){.t = t, .walk = ctx->walk_id};
            return ctx->last_slot = s;
        }
        if (s->t == t) return ctx->last_slot = s;
    }
}


nb_status nb_requires_grad(nb_tensor *t, bool on) {
    if (!t) return nb_set_error(NB_ERR_NULL, "requires_grad: tensor is NULL");
    if (t->node) /* name the op the user called (nb_mul_scalar), not the one it is made of (affine) */
        return nb_set_error(NB_ERR_STATE, "requires_grad: only a leaf can be changed (this tensor was made by %s)",
                            t->node->site_op ? t->node->site_op : t->node->op->name);
    if (on && t->dtype == NB_I64) return nb_set_error(NB_ERR_DTYPE, "requires_grad: an i64 tensor cannot have gradients");
    t->requires_grad = on;
    return NB_OK;
}

nb_status nb_zero_grad(nb_tensor *t) {
    if (!t) return nb_set_error(NB_ERR_NULL, "zero_grad: tensor is NULL");
    if (t->grad) nb_fill(t->grad, 0.0), t->grad_zero_ = true;
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

/* A slot holds its gradient's pool block (if any) until the walk lets go of it. A sum goes
 * into the held gradient itself when that is a whole block no other slot holds (the same
 * additions in the same order as a new tensor, so the same bits). */
static nb_status accumulate(nb_ctx *ctx, nb_tensor *t, nb_tensor *g) {
    nb_walk_slot *sl = nb__walk_slot(ctx, t);
    if (!sl->acc) {
        if (!sl->nterms && !touch(ctx, t)) { /* a leaf with kept-back terms is listed already */
            nb__fail(ctx, NB_ERR_NOMEM, "backward: out of memory");
            return NB_ERR_NOMEM;
        }
        sl->acc = g;
        nb__pool_ref(g);
        return NB_OK;
    }
    if (nb__pool_exclusive(sl->acc) && nb_same_shape(sl->acc, g) && sl->acc->dtype == g->dtype) {
        nb__accumulate_kernel(sl->acc, g);
        return NB_OK;
    }
    nb_tensor *s = nb_add(ctx, sl->acc, g);
    if (!s) return ctx->status ? ctx->status : NB_ERR_NOMEM;
    nb__pool_ref(s);
    nb__pool_unref(ctx, sl->acc);
    sl->acc = s;
    return NB_OK;
}

/* hooks and long-lived results take their memory from the arena, never from the pool */
static bool pool_pause(nb_ctx *ctx) {
    bool was = ctx->pool_on;
    ctx->pool_on = false;
    return was;
}

static nb_tensor *run_hooks(nb_ctx *ctx, nb_tensor *t, nb_tensor *g) {
    nb__pool_retain(g); /* a hook may keep the gradient it sees: it stays until the reset */
    for (nb_hook *h = t->hooks; h && g; h = h->next) {
        const bool was = pool_pause(ctx); /* what a hook makes or keeps outlives the walk */
        nb_tensor *r = h->fn(ctx, g, h->user);
        ctx->pool_on = was;
        if (!r) {
            if (ctx->status == NB_OK) nb__fail(ctx, NB_ERR_STATE, "backward: a gradient hook returned NULL");
            return NULL;
        }
        if (nb__stale(ctx, "backward: a gradient hook's result", r)) return NULL;
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
    if (!nb__sums_to(g, in->ndim, in->shape)) { /* before sum_to would: the error names the op */
        char a[128], b[128];
        return nb__fail(ctx, NB_ERR_SHAPE, "backward of %s: gradient %s does not reduce to input %d's shape %s", n->op->name,
                        nb_shape_str(g, a, sizeof a), j, nb_shape_str(in, b, sizeof b));
    }
    return nb_sum_to(ctx, g, in->ndim, in->shape);
}

/* Input j of a built-in op whose backward never reads its values (sums, views, a gather's
 * source): changed in place after the op, it is harmless, as in torch (which checks only saved
 * tensors). Asked only when a counter differs. A user's op may read every input. */
static bool unread_input(const nb_node *n, int j) {
    static const struct {
        const char *name;
        uint32_t inputs; /* bit j: input j is not read */
    } ops[] = {{"add", 3},     {"sub", 3},    {"neg", 1},           {"affine", 1},    {"cast", 1},
               {"reshape", 1}, {"permute", 1}, {"slice", 1},        {"slice_backward", 1}, {"expand", 1},
               {"contiguous", 1}, {"concat", UINT32_MAX}, {"sum", 1}, {"index_select", 1}};
    if (n->user_ || j >= 32) return false;
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
        if (!strcmp(n->op->name, ops[i].name)) return ops[i].inputs >> j & 1;
    return false;
}

/* .grad of a long-lived leaf may be shared by contexts on several threads (the same
 * parameters): its allocation and each addition into it take this lock. Two contexts adding
 * into a zeroed .grad give the exact sum in either order; nb_grad touches no .grad at all. */
static pthread_mutex_t grad_lock = PTHREAD_MUTEX_INITIALIZER;

/* nb_backward: a leaf's gradient is complete; run its hooks, add it into .grad, tell the
 * ready callback (data-parallel training starts reducing it while backward goes on). */
static nb_status finalize_leaf(nb_ctx *ctx, nb_tensor *t, nb_walk_slot *sl) {
    sl->visit = -1;
    nb_tensor *g = t->hooks ? run_hooks(ctx, t, sl->acc) : sl->acc; /* NULL: kept-back terms only */
    if (!g && ctx->status != NB_OK) return ctx->status;
    if (t->persistent) pthread_mutex_lock(&grad_lock);
    if (!t->grad) {
        const bool was = pool_pause(ctx);
        const nb_mark at = nb_ctx_mark(ctx);
        t->grad = t->persistent ? nb_tensor_new(t->dtype, t->ndim, t->shape) : nb_zeros_like(ctx, t);
        ctx->pool_on = was;
        if (t->grad && t->persistent) ctx->mallocs++;
        /* a step leaf's .grad is arena memory: a release past `at` frees it and unsets .grad */
        if (t->grad && !t->persistent && !nb__undo_log(ctx, (void **)&t->grad, NULL, at)) t->grad = NULL;
    }
    if (t->grad && g && g != t->grad) nb__accumulate_kernel(t->grad, g); /* else the rule wrote it there */
    if (t->grad && sl->nterms) nb__leaf_terms_add(t->grad, t, sl->nterms, sl->term, g == t->grad);
    t->grad_zero_ = false;
    if (t->persistent) pthread_mutex_unlock(&grad_lock);
    nb__pool_unref(ctx, sl->acc); /* in .grad now */
    if (!t->grad) {
        nb__fail(ctx, NB_ERR_NOMEM, "backward: cannot allocate .grad");
        return NB_ERR_NOMEM;
    }
    if (ctx->on_ready) ctx->on_ready(t, ctx->on_ready_user);
    return NB_OK;
}

static bool is_leaf(const nb_tensor *t) { return !t->node && t->requires_grad; }

nb_tensor *nb__grad_dest_begin(nb_ctx *ctx, const nb_node *n, int j) {
    nb_tensor *t = n->in[j], *d = t->grad;
    if (!ctx->grad_dest_on || !is_leaf(t) || t->hooks || !d || !t->grad_zero_ || d->dtype != t->dtype ||
        !nb_same_shape(d, t) || !nb_is_contiguous(d))
        return NULL;
    for (int k = 0; k < n->n_in; k++)
        if (k != j && n->in[k] == t) return NULL; /* two gradients from this node */
    const nb_walk_slot *sl = nb__walk_slot(ctx, t);
    if (sl->visit != 1 || sl->acc) return NULL; /* other uses left, or a gradient summed already */
    if (t->persistent) pthread_mutex_lock(&grad_lock);
    if (!t->grad_zero_) { /* another context wrote it meanwhile: add as usual */
        if (t->persistent) pthread_mutex_unlock(&grad_lock);
        return NULL;
    }
    t->grad_zero_ = false;
    return d;
}

void nb__grad_dest_end(nb_ctx *ctx, const nb_node *n, int j) {
    (void)ctx;
    if (n->in[j]->persistent) pthread_mutex_unlock(&grad_lock);
}

bool nb__defer_leaf_term(nb_ctx *ctx, nb_tensor *x, bool square, double c) {
    nb_tensor *d = x->grad;
    if (!ctx->grad_dest_on || ctx->anomaly || !is_leaf(x) || x->hooks || !nb_is_contiguous(x) ||
        (d && (d->dtype != x->dtype || !nb_same_shape(d, x) || !nb_is_contiguous(d))))
        return false;
    nb_walk_slot *sl = nb__walk_slot(ctx, x);
    if (sl->nterms == NB_MAX_LEAF_TERMS || sl->visit <= 0) return false;
    if (!sl->acc && !sl->nterms && !touch(ctx, x)) return false; /* as in accumulate */
    sl->term[sl->nterms++] = (nb_leaf_term){square, c};
    return true;
}

/* node n is done: its leaf inputs have one use less; finalize those with none left */
static nb_status release_leaves(nb_ctx *ctx, const nb_node *n) {
    for (int j = 0; j < n->n_in; j++) {
        nb_tensor *in = n->in[j];
        if (!is_leaf(in)) continue;
        nb_walk_slot *sl = nb__walk_slot(ctx, in);
        if (sl->visit > 0 && --sl->visit == 0 && (sl->acc || sl->nterms)) {
            nb_status st = finalize_leaf(ctx, in, sl);
            if (st != NB_OK) return st;
        }
    }
    return NB_OK;
}

static bool is_target(const nb_tensor *t, int n_in, nb_tensor *const *targets) {
    for (int i = 0; i < n_in; i++)
        if (targets[i] == t) return true;
    return false;
}

/* The walk. With targets (n_in > 0) only nodes on a path to a target run (visit 1 marks
 * them); otherwise every tensor that requires grad receives its gradient in its slot's acc,
 * and a leaf's visit counts its uses left (finalized at 0). */
static nb_status walk(nb_ctx *ctx, int n_out, nb_tensor *const *outs, nb_tensor *const *gouts, int n_in,
                      nb_tensor *const *targets, bool create_graph) {
    int64_t start = -1;
    for (int k = 0; k < n_out; k++)
        if (outs[k]->node && outs[k]->node->seq > start) start = outs[k]->node->seq;
    if (!nb__walk_begin(ctx, start, n_out + n_in)) return ctx->status;
    ctx->pool_on = !create_graph;

    if (n_in > 0) {  /* mark what leads to a target */
        for (int i = 0; i < n_in; i++) nb__walk_slot(ctx, targets[i])->visit = 1;
        for (int64_t s = 0; s <= start; s++) {
            nb_node *n = ctx->tape[s];
            for (int j = 0; j < n->n_in; j++)
                if (nb__walk_slot(ctx, n->in[j])->visit == 1) {
                    nb__walk_slot(ctx, n->out)->visit = 1;
                    break;
                }
        }
    }
    const bool leaves = n_in == 0;  /* nb_backward: count each leaf's uses to finalize it early */
    if (leaves)
        for (int64_t s = 0; s <= start; s++)
            for (int j = 0; j < ctx->tape[s]->n_in; j++)
                if (is_leaf(ctx->tape[s]->in[j])) nb__walk_slot(ctx, ctx->tape[s]->in[j])->visit++;
    nb_status st = NB_OK;
    for (int k = 0; k < n_out && st == NB_OK; k++) {
        nb_tensor *g = gouts && gouts[k] ? gouts[k] : nb_ones_like(ctx, outs[k]);
        if (!g) return ctx->status;
        st = accumulate(ctx, outs[k], g);
    }
    for (int64_t s = start; s >= 0 && st == NB_OK; s--) {
        nb_node *n = ctx->tape[s];
        nb_tensor *out = n->out;
        nb_walk_slot *osl = nb__walk_slot(ctx, out);
        if (!osl->acc || (n_in > 0 && osl->visit != 1)) {
            if (leaves && (st = release_leaves(ctx, n)) != NB_OK) return st;
            continue;
        }
        nb_tensor *held = osl->acc; /* the output's gradient: dead after this node, unless a target */
        nb_tensor *g = out->hooks ? run_hooks(ctx, out, osl->acc) : osl->acc;
        if (!g) return ctx->status;
        osl = nb__walk_slot(ctx, out); /* the hooks' ops do not move slots, but be exact */
        osl->acc = g;  /* what nb_grad returns for an intermediate input is the hooked gradient too */
        /* with create_graph the input gradients must depend on the inputs differentiably; a
         * fused backward gives constants, even when g itself is constant (e.g. ones) */
        if (n->op->diff == NB_NOT_DIFFERENTIABLE || !n->op->backward) {
            int j = 0;
            while (j < n->n_in && !n->in[j]->requires_grad) j++;
            nb__fail(ctx, NB_ERR_UNSUPPORTED, "backward of %s: this op is not differentiable (input %d requires grad)",
                     n->op->name, j);
            return NB_ERR_UNSUPPORTED;
        }
        if (create_graph && n->op->diff == NB_ONCE_DIFFERENTIABLE) {
            nb__fail(ctx, NB_ERR_UNSUPPORTED, "backward of %s: this op is once-differentiable; create_graph cannot differentiate it twice",
                     n->op->name);
            return NB_ERR_UNSUPPORTED;
        }
        for (int j = 0; j < n->n_in; j++) { /* the values the rule may read are the forward's */
            nb_tensor *t = n->in[j];
            if (*nb__version(t) == n->versions_[j] || unread_input(n, j)) continue;
            nb__fail(ctx, NB_ERR_STATE, "backward of %s: input %d%s%s was modified in place after the op used it (an "
                     "optimizer step, nb_set, nb_fill, a load ...); compute the forward again after changing it",
                     n->op->name, j, t->name ? " " : "", t->name ? t->name : "");
            return NB_ERR_STATE;
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
            if (st < NB_OK || st > NB_ERR_UNSUPPORTED)
                nb__fail(ctx, NB_ERR_STATE, "backward of %s returned %d, which is not an nb_status", n->op->name, (int)st);
            else if (ctx->status == NB_OK)
                nb__fail(ctx, st, "backward of %s failed", n->op->name);
            return ctx->status;
        }
        if (ctx->status != NB_OK) return ctx->status;
        for (int j = 0; j < n->n_in; j++) {
            nb_tensor *in = n->in[j];
            if (!gp[j] || !in->requires_grad || (n_in > 0 && nb__walk_slot(ctx, in)->visit != 1)) continue;
            if (nb__stale(ctx, n->op->name, gp[j])) return NB_ERR_STATE; /* a rule's result from another step */
            nb_tensor *gj = fit(ctx, n, j, gp[j]);
            if (!gj) return ctx->status;
            if (ctx->anomaly && nb__has_nonfinite(gj)) {
                char where[160] = "";
                if (n->site_op && strcmp(n->site_op, n->op->name) != 0)
                    snprintf(where, sizeof where, " inside %s (called at %s:%d)", n->site_op, n->file, n->line);
                else if (n->site_op)
                    snprintf(where, sizeof where, " (called at %s:%d)", n->file, n->line);
                nb__fail(ctx, NB_ERR_NUMERIC, "anomaly: backward of %s%s produced NaN/Inf in the gradient of input %d",
                         n->op->name, where, j);
                return NB_ERR_NUMERIC;
            }
            st = accumulate(ctx, in, gj);
            if (st != NB_OK) return st;
        }
        if (leaves) st = release_leaves(ctx, n);
        if (!is_target(out, n_in, targets)) nb__pool_unref(ctx, held);
        nb__pool_node_done(ctx);
    }
    return st;
}

static void clear_walk(nb_ctx *ctx) {
    ctx->ntouched = 0;
    ctx->walk_id++; /* every slot of this walk is stale now */
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
        if (g && (!nb_same_shape(g, outs[k]) || g->dtype != outs[k]->dtype)) {
            const nb_status st = g->dtype != outs[k]->dtype ? NB_ERR_DTYPE : NB_ERR_SHAPE;
            return nb__fail(ctx, st, "%s: gradient %s %s does not match output %s %s", fn, nb_dtype_name(g->dtype),
                            nb_shape_str(g, a, sizeof a), nb_dtype_name(outs[k]->dtype), nb_shape_str(outs[k], b, sizeof b)),
                   st;
        }
    }
    return NB_OK;
}

nb_status nb_backward(nb_ctx *ctx, nb_tensor *out, nb_tensor *grad_out) {
    nb_tensor *outs[1] = {out}, *gouts[1] = {grad_out};
    return nb_backward_many(ctx, 1, outs, gouts);
}

nb_status nb_backward_many(nb_ctx *ctx, int n_out, nb_tensor *const *outs, nb_tensor *const *grad_outs) {
    nb_status st = check_outputs(ctx, "backward", n_out, outs, grad_outs);
    if (st != NB_OK) return st;
    bool prev = nb_ctx_set_grad_enabled(ctx, false);
    ctx->grad_dest_on = true;
    st = walk(ctx, n_out, outs, grad_outs, 0, NULL, false);
    ctx->grad_dest_on = false;
    nb__pool_walk_end(ctx);
    /* leaves not finalized during the walk (the output itself, or used beyond it) */
    for (int64_t i = 0; st == NB_OK && i < ctx->ntouched; i++) {
        nb_tensor *t = ctx->touched[i];
        nb_walk_slot *sl = nb__walk_slot(ctx, t);
        if (is_leaf(t) && sl->visit != -1) st = finalize_leaf(ctx, t, sl);
    }
    clear_walk(ctx);
    nb_ctx_set_grad_enabled(ctx, prev);
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
    bool prev = nb_ctx_set_grad_enabled(ctx, create_graph);
    st = walk(ctx, n_out, outs, grad_outs, n_in, inputs, create_graph);
    nb__pool_walk_end(ctx);
    for (int i = 0; i < n_in && st == NB_OK; i++) {
        nb_tensor *t = inputs[i];
        nb_tensor *g = nb__walk_slot(ctx, t)->acc;
        if (g && !t->node && t->hooks) g = run_hooks(ctx, t, g);
        else if (!g) g = nb_zeros_like(ctx, t);
        if (!g) st = ctx->status ? ctx->status : NB_ERR_NOMEM;
        grads[i] = g;
    }
    clear_walk(ctx);
    nb_ctx_set_grad_enabled(ctx, prev);
    return st;
}
