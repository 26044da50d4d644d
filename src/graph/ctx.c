/* The context: a bump arena for step tensors, the tape, modes and the sticky error. */
#include "../internal.h"

#include <stdatomic.h>
#include <stdlib.h>

/* ---- call sites: a per-thread stack of the public ops being run (see graph.h) ---------- */
#define NB_SITE_DEPTH 32
typedef struct {
    const char *op, *file;
    int line;
} nb_site;
static _Thread_local nb_site site_stack[NB_SITE_DEPTH];
static _Thread_local int site_depth;

void nb__site_push(const char *op, const char *file, int line) {
    if (site_depth < NB_SITE_DEPTH) site_stack[site_depth] = (nb_site){op, file, line};
    site_depth++;
}
nb_tensor *nb__site_pop(nb_tensor *result) {
    if (site_depth > 0) site_depth--;
    return result;
}
/* the outermost public op: a library op made of other public ops calls them as functions,
 * not through the macros, so inner entries come only from the user's nested calls */
const char *nb__site_op(const char **file, int *line) {
    const int top = site_depth > NB_SITE_DEPTH ? NB_SITE_DEPTH - 1 : site_depth - 1;
    if (top < 0) {
        if (file) *file = NULL;
        if (line) *line = 0;
        return NULL;
    }
    if (file) *file = site_stack[top].file;
    if (line) *line = site_stack[top].line;
    return site_stack[top].op;
}

#define NB_FIRST_CHUNK (1u << 20)

uint64_t nb__next_gen(void) {
    static _Atomic uint64_t next = 1;
    return atomic_fetch_add(&next, 1);
}

bool nb__stale(nb_ctx *ctx, const char *fn, const nb_tensor *t) {
    if (!t || t->persistent || t->gen_ == 0) return false;
    bool stale = t->gen_ != ctx->gen;
    /* a node of this step that a nb_ctx_release dropped from the tape */
    if (!stale && t->node) stale = t->node->seq >= ctx->tape_len || ctx->tape[t->node->seq] != t->node;
    if (stale)
        nb__fail(ctx, NB_ERR_STATE, "%s: tensor was released by nb_ctx_reset or nb_ctx_release (or belongs to another "
                 "context); compute it again in this step", fn);
    return stale;
}

nb_ctx *nb_ctx_new(void) {
    nb_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        nb_set_error(NB_ERR_NOMEM, "ctx_new: out of memory");
        return NULL;
    }
    ctx->grad_enabled = true;
    ctx->train = true;
    ctx->mallocs = 1;
    ctx->gen = nb__next_gen();
    nb__threads_check(); /* this thread takes up the process's team size */
    return ctx;
}

void nb_ctx_free(nb_ctx *ctx) {
    if (!ctx) return;
    nb__threads_forget(ctx);
    for (int i = 0; i < ctx->nchunks; i++) free(ctx->chunks[i].base);
    nb__pool_destroy(ctx);
    free(ctx->keep_buf);
    free(ctx->tape);
    free(ctx->touched);
    free(ctx->slots);
    free(ctx->undo);
    free(ctx);
}

size_t nb__arena_capacity(const nb_ctx *ctx) {
    size_t s = 0;
    for (int i = 0; i < ctx->nchunks; i++) s += ctx->chunks[i].size;
    return s;
}

size_t nb_ctx_bytes_used(const nb_ctx *ctx) {
    size_t s = ctx ? ctx->pool_live : 0;
    for (int i = 0; ctx && i <= ctx->cur && i < ctx->nchunks; i++) s += ctx->chunks[i].used;
    return s;
}
void nb__note_peak(nb_ctx *ctx) {
    const size_t now = ctx->used_before_cur + (ctx->cur < ctx->nchunks ? ctx->chunks[ctx->cur].used : 0) + ctx->pool_live;
    if (now > ctx->peak) ctx->peak = now;
}
void nb_ctx_reset_peak(nb_ctx *ctx) {
    if (!ctx) return;
    ctx->peak = 0;
    nb__note_peak(ctx);
}
size_t nb_ctx_bytes_peak(const nb_ctx *ctx) { return ctx ? ctx->peak : 0; }
uint64_t nb_ctx_mallocs(const nb_ctx *ctx) { return ctx ? ctx->mallocs : 0; }
int64_t nb_ctx_nodes(const nb_ctx *ctx) { return ctx ? ctx->tape_len : 0; }
void nb_ctx_set_limit(nb_ctx *ctx, size_t max_bytes) {
    if (ctx) ctx->limit = max_bytes;
}

void *nb_ctx_alloc(nb_ctx *ctx, size_t n) {
    if (!ctx) return nb_set_error(NB_ERR_NULL, "ctx_alloc: context is NULL"), NULL;
    const char *op = nb__op_name ? nb__op_name : "ctx_alloc";
    if (n > SIZE_MAX / 2) return nb__fail(ctx, NB_ERR_NOMEM, "%s: ctx_alloc cannot allocate %zu bytes", op, n);
    n = (n + 63) & ~(size_t)63;
    for (;;) {
        if (ctx->cur < ctx->nchunks) {
            nb_chunk *c = &ctx->chunks[ctx->cur];
            if (c->size - c->used >= n) {
                void *p = c->base + c->used;
                c->used += n;
                nb__note_peak(ctx);
                return p;
            }
            if (ctx->cur + 1 < ctx->nchunks) {  /* a later chunk (kept from before) may fit */
                ctx->used_before_cur += c->used;
                ctx->cur++;
                ctx->chunks[ctx->cur].used = 0;
                continue;
            }
        }
        /* grow: a new chunk at least as big as everything so far, so chunks stay few */
        size_t cap = nb__arena_capacity(ctx);
        size_t size = cap > NB_FIRST_CHUNK ? cap : NB_FIRST_CHUNK;
        if (size < n) size = n;
        const size_t held = cap + ctx->pool_bytes; /* the limit covers the backward pool too */
        if (ctx->limit && held + size > ctx->limit) size = ctx->limit > held ? ctx->limit - held : 0;
        if (size < n || ctx->nchunks == NB_MAX_CHUNKS)
            return nb__fail(ctx, NB_ERR_NOMEM, "%s: ctx_alloc cannot allocate %zu bytes (arena holds %zu, backward pool %zu, "
                            "limit %zu)", op, n, cap, ctx->pool_bytes, ctx->limit);
        void *base = NULL;
        if (posix_memalign(&base, 64, size) != 0)
            return nb__fail(ctx, NB_ERR_NOMEM, "%s: ctx_alloc out of memory allocating %zu bytes", op, size);
        ctx->mallocs++;
        if (ctx->cur < ctx->nchunks) ctx->used_before_cur += ctx->chunks[ctx->cur].used;
        ctx->chunks[ctx->nchunks] = (nb_chunk){base, size, 0};
        ctx->cur = ctx->nchunks++;
    }
}

void nb_ctx_reset(nb_ctx *ctx) {
    if (!ctx) return;
    /* Several chunks mean the step outgrew the arena: merge them into one of the total size,
     * so the next identical step fits without any malloc. */
    if (ctx->nchunks > 1) {
        size_t total = nb__arena_capacity(ctx);
        for (int i = 0; i < ctx->nchunks; i++) free(ctx->chunks[i].base);
        ctx->nchunks = 0;
        void *base = NULL;
        if ((!ctx->limit || total <= ctx->limit) && posix_memalign(&base, 64, total) == 0) {
            ctx->chunks[0] = (nb_chunk){base, total, 0};
            ctx->nchunks = 1;
            ctx->mallocs++;
        }
    }
    if (ctx->nchunks) ctx->chunks[0].used = 0;
    nb__pool_reset(ctx);
    ctx->cur = 0;
    ctx->used_before_cur = 0;
    ctx->tape_len = 0;
    ctx->nundo = 0;
    ctx->status = NB_OK;
    ctx->msg[0] = 0;
    ctx->gen = nb__next_gen();
    nb__threads_step(ctx, &ctx->step_end);
}

nb_mark nb_ctx_mark(nb_ctx *ctx) {
    nb_mark m = {0, 0, 0, 0};
    if (!ctx) return m;
    m.chunk = ctx->cur;
    m.arena_used = ctx->cur < ctx->nchunks ? ctx->chunks[ctx->cur].used : 0;
    m.tape_len = ctx->tape_len;
    m.gen = ctx->gen;
    return m;
}

/* only a position at or before the current one, in this step, can be released to */
static bool mark_ok(nb_ctx *ctx, const char *fn, nb_mark m) {
    const bool here = ctx->cur < ctx->nchunks ? m.chunk == ctx->cur && m.arena_used <= ctx->chunks[ctx->cur].used
                                              : m.chunk == ctx->cur && m.arena_used == 0;
    const bool before = m.chunk >= 0 && m.chunk < ctx->cur && m.chunk < ctx->nchunks &&
                        m.arena_used <= ctx->chunks[m.chunk].used;
    if (m.gen != ctx->gen || !(here || before) || m.tape_len < 0 || m.tape_len > ctx->tape_len) {
        nb__fail(ctx, NB_ERR_STATE, "%s: the mark is not a position of this context's current step "
                 "(taken before a reset, already released, or not made by nb_ctx_mark)", fn);
        return false;
    }
    return true;
}

struct nb_undo {
    void **slot, *old;
    nb_mark at;
};

bool nb__undo_log(nb_ctx *ctx, void **slot, void *old, nb_mark at) {
    if (ctx->nundo == ctx->undo_cap) {
        const int64_t cap = ctx->undo_cap ? 2 * ctx->undo_cap : 16;
        struct nb_undo *u = realloc(ctx->undo, (size_t)cap * sizeof *u);
        if (!u) return false;
        ctx->mallocs++;
        ctx->undo = u, ctx->undo_cap = cap;
    }
    ctx->undo[ctx->nundo++] = (struct nb_undo){slot, old, at};
    return true;
}

/* a position at or after mark m: released by release(ctx, m) */
static bool at_or_after(nb_mark p, nb_mark m) {
    return p.chunk > m.chunk || (p.chunk == m.chunk && p.arena_used >= m.arena_used);
}

static void release(nb_ctx *ctx, nb_mark m) {
    /* newest first: a .grad or hook made after the mark no longer hangs off older tensors */
    while (ctx->nundo > 0 && at_or_after(ctx->undo[ctx->nundo - 1].at, m)) {
        const struct nb_undo *u = &ctx->undo[--ctx->nundo];
        *u->slot = u->old;
    }
    ctx->cur = m.chunk;
    if (m.chunk < ctx->nchunks) ctx->chunks[m.chunk].used = m.arena_used;
    for (int i = m.chunk + 1; i < ctx->nchunks; i++) ctx->chunks[i].used = 0;
    ctx->used_before_cur = 0;
    for (int i = 0; i < m.chunk && i < ctx->nchunks; i++) ctx->used_before_cur += ctx->chunks[i].used;
    if (m.tape_len < ctx->tape_len) ctx->tape_len = m.tape_len;
    nb__pool_release(ctx, m);
}

void nb_ctx_release(nb_ctx *ctx, nb_mark m) {
    if (!ctx) {
        nb_set_error(NB_ERR_NULL, "ctx_release: context is NULL");
        return;
    }
    if (mark_ok(ctx, "ctx_release", m)) release(ctx, m);
}

/* Where nb_ctx_alloc(n) would put its block after release(ctx, m): the arena's rule (the
 * mark's chunk, else the first later chunk with room, else a new chunk: LANDS_NEW). */
static const char LANDS_NEW_[1];
#define LANDS_NEW (&LANDS_NEW_[0])
static const char *landing(const nb_ctx *ctx, nb_mark m, size_t n) {
    for (int c = m.chunk; c < ctx->nchunks; c++) {
        const size_t used = c == m.chunk ? m.arena_used : 0;
        if (ctx->chunks[c].size - used >= n) return ctx->chunks[c].base + used;
    }
    return LANDS_NEW;
}

/* the bytes t's elements span: [*lo, *hi) */
static void extent(const nb_tensor *t, const char **lo, const char **hi) {
    const int64_t esz = (int64_t)nb_dtype_size(t->dtype);
    *lo = *hi = t->data;
    if (t->numel == 0) return;
    for (int i = 0; i < t->ndim; i++) {
        const int64_t span = (t->shape[i] - 1) * t->stride[i] * esz;
        if (span < 0) *lo += span;
        else *hi += span;
    }
    *hi += esz;
}

nb_tensor *nb_ctx_keep(nb_ctx *ctx, nb_mark m, nb_tensor *t) {
    if (!ctx) return nb_set_error(NB_ERR_NULL, "ctx_keep: context is NULL"), NULL;
    if (!mark_ok(ctx, "ctx_keep", m)) return NULL;
    if (ctx->tape_len > m.tape_len) return t; /* the graph since the mark needs all of it */
    if (!t || ctx->status != NB_OK || nb__stale(ctx, "ctx_keep", t)) {
        release(ctx, m);
        return NULL;
    }
    if (t->persistent) {
        release(ctx, m);
        return t;
    }
    const size_t bytes = (size_t)t->numel * nb_dtype_size(t->dtype);
    const size_t hdr = (sizeof(nb_tensor) + 63) & ~(size_t)63, need = (hdr + bytes + 63) & ~(size_t)63;
    /* Where the kept tensor will land once everything since the mark is gone. When that place
     * does not overlap t's values (often another chunk of a growing arena, or a new one), they
     * are copied straight across; when it lies below them, they move down in place (memmove);
     * only otherwise do they wait in the staging buffer (a malloc as large as t). */
    const char *at = ctx->pool_on || t->block_ ? NULL : landing(ctx, m, need);
    const char *t0, *t1;
    extent(t, &t0, &t1);
    const bool apart = at && (at == LANDS_NEW || at + need <= t0 || at >= t1);
    const bool below = at && at != LANDS_NEW && nb_is_contiguous(t) && at + hdr <= (const char *)t->data;
    if (apart || below) {
        const nb_tensor was = *t;
        release(ctx, m);
        nb_tensor *k = nb__new(ctx, was.dtype, was.ndim, was.shape);
        if (!k) return NULL;
        if (apart) nb__copy_kernel(k, &was);
        else memmove(k->data, was.data, bytes);
        return k;
    }
    /* otherwise t's values wait in the context's staging buffer while everything since the mark goes */
    if (bytes > ctx->keep_cap) {
        void *p = realloc(ctx->keep_buf, bytes);
        if (!p) return nb__fail(ctx, NB_ERR_NOMEM, "ctx_keep: out of memory staging %zu bytes", bytes);
        ctx->mallocs++;
        ctx->keep_buf = p, ctx->keep_cap = bytes;
    }
    nb_tensor stage = {.dtype = t->dtype, .ndim = t->ndim, .numel = t->numel, .data = ctx->keep_buf};
    memcpy(stage.shape, t->shape, sizeof t->shape);
    nb__contig_strides(t->ndim, t->shape, stage.stride);
    nb__copy_kernel(&stage, t);
    release(ctx, m);
    nb_tensor *k = nb__new(ctx, stage.dtype, stage.ndim, stage.shape);
    if (k) memcpy(k->data, ctx->keep_buf, bytes);
    return k;
}

nb_status nb_ctx_status(const nb_ctx *ctx) { return ctx ? ctx->status : NB_ERR_NULL; }
const char *nb_ctx_error(const nb_ctx *ctx) { return ctx ? ctx->msg : "context is NULL"; }
void nb_ctx_clear_error(nb_ctx *ctx) {
    if (!ctx) return;
    ctx->status = NB_OK;
    ctx->msg[0] = 0;
}

/* setters given a NULL context record the error and do nothing; getters say false / NULL */
static bool null_ctx(const nb_ctx *ctx, const char *fn) {
    if (ctx) return false;
    nb_set_error(NB_ERR_NULL, "%s: context is NULL", fn);
    return true;
}

bool nb_ctx_set_grad_enabled(nb_ctx *ctx, bool on) {
    if (null_ctx(ctx, "ctx_set_grad_enabled")) return false;
    bool prev = ctx->grad_enabled;
    ctx->grad_enabled = on;
    return prev;
}
bool nb_ctx_grad_enabled(const nb_ctx *ctx) { return ctx && ctx->grad_enabled; }
void nb_ctx_set_train(nb_ctx *ctx, bool train) {
    if (!null_ctx(ctx, "ctx_set_train")) ctx->train = train;
}
bool nb_ctx_is_train(const nb_ctx *ctx) { return ctx && ctx->train; }
void nb_ctx_set_anomaly(nb_ctx *ctx, bool on) {
    if (!null_ctx(ctx, "ctx_set_anomaly")) ctx->anomaly = on;
}
/* the names before 0.1 */
bool nb_set_grad_enabled(nb_ctx *ctx, bool on) { return nb_ctx_set_grad_enabled(ctx, on); }
bool nb_grad_enabled(const nb_ctx *ctx) { return nb_ctx_grad_enabled(ctx); }
void nb_set_train(nb_ctx *ctx, bool train) { nb_ctx_set_train(ctx, train); }
bool nb_is_train(const nb_ctx *ctx) { return nb_ctx_is_train(ctx); }
void nb_set_anomaly(nb_ctx *ctx, bool on) { nb_ctx_set_anomaly(ctx, on); }
nb_rng *nb_ctx_rng(nb_ctx *ctx) { return null_ctx(ctx, "ctx_rng") ? NULL : &ctx->rng; }
void nb_ctx_seed(nb_ctx *ctx, uint64_t seed) {
    if (!null_ctx(ctx, "ctx_seed")) ctx->rng = nb_rng_new(seed);
}
void nb_ctx_on_grad_ready(nb_ctx *ctx, nb_grad_ready_fn fn, void *user) {
    if (null_ctx(ctx, "ctx_on_grad_ready")) return;
    ctx->on_ready = fn;
    ctx->on_ready_user = user;
}

/* ---- step tensors ---------------------------------------------------------------------- */
nb_tensor *nb__new(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape) {
    int64_t n;
    if (!nb__size_ok(ctx, nb__op_name ? nb__op_name : "new", ndim, shape, nb_dtype_size(dt), &n)) return NULL;
    size_t hdr = (sizeof(nb_tensor) + 63) & ~(size_t)63, bytes = (size_t)n * nb_dtype_size(dt);
    nb_block *block;
    void *data = nb__pool_alloc(ctx, bytes, &block);
    char *p = nb_ctx_alloc(ctx, data ? sizeof(nb_tensor) : hdr + bytes);
    if (!p) return NULL;
    nb_tensor *t = (nb_tensor *)p;
    memset(t, 0, sizeof *t);
    t->block_ = block;
    t->gen_ = ctx->gen;
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    nb__contig_strides(ndim, shape, t->stride);
    t->numel = n;
    t->data = data ? data : p + hdr;
    return t;
}

void nb__donate(nb_ctx *ctx, nb_tensor *t) {
    if (ctx) ctx->donated = t;
}

nb_tensor *nb__out_like(nb_ctx *ctx, nb_tensor *x, bool reads_x) {
    const bool donated = x && x == ctx->donated;
    ctx->donated = NULL;
    bool ok = donated && !x->persistent && x->gen_ == ctx->gen && !x->block_ && !x->hooks && nb_is_contiguous(x) &&
              !nb__stale(ctx, "out_like", x);
    if (ok && ctx->grad_enabled) ok = !reads_x && (!x->node || nb__output_unread(x->node));
    if (ok) return nb__view(ctx, x, x->ndim, x->shape, x->stride, x->data);
    return nb__new(ctx, x->dtype, x->ndim, x->shape);
}

nb_tensor *nb__view(nb_ctx *ctx, const nb_tensor *base, int ndim, const int64_t *shape,
                    const int64_t *stride, void *data) {
    int64_t n;
    if (!nb__size_ok(ctx, nb__op_name ? nb__op_name : "view", ndim, shape, nb_dtype_size(base->dtype), &n)) return NULL;
    nb_tensor *t = nb_ctx_alloc(ctx, sizeof *t);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->gen_ = ctx->gen;
    t->dtype = base->dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i], t->stride[i] = stride[i];
    t->numel = n;
    t->data = data;
    t->block_ = base->block_;
    t->version_ = nb__version((nb_tensor *)base); /* a write through either is a write to both */
    return t;
}

nb_tensor *nb_detach(nb_ctx *ctx, nb_tensor *t) {
    if (nb__null(ctx, "detach", 1, t)) return NULL;
    return nb__view(ctx, t, t->ndim, t->shape, t->stride, t->data);
}

/* ---- recording ------------------------------------------------------------------------- */
static bool tape_push(nb_ctx *ctx, nb_node *n) {
    if (ctx->tape_len == ctx->tape_cap) {
        int64_t cap = ctx->tape_cap ? ctx->tape_cap * 2 : 1024;
        nb_node **t = realloc(ctx->tape, (size_t)cap * sizeof *t);
        if (!t) return false;
        ctx->mallocs++;
        ctx->tape = t;
        ctx->tape_cap = cap;
    }
    n->seq = ctx->tape_len;
    ctx->tape[ctx->tape_len++] = n;
    return true;
}

/* The tape entry of a built-in op (its arguments are the op's own, already checked). */
static nb_node *record(nb_ctx *ctx, const nb_op *op, nb_tensor *out, int n_in, nb_tensor *const *in, bool user) {
    nb_node *n = nb_ctx_alloc(ctx, sizeof *n + (size_t)n_in * (sizeof(nb_tensor *) + sizeof(uint32_t)));
    if (!n) return NULL;
    memset(n, 0, sizeof *n);
    n->op = op;
    n->out = out;
    n->n_in = n_in;
    n->in = (nb_tensor **)(n + 1);
    n->versions_ = (uint32_t *)(n->in + n_in);
    n->user_ = user;
    for (int i = 0; i < n_in; i++) n->in[i] = in[i], n->versions_[i] = *nb__version(in[i]);
    n->site_op = nb__site_op(&n->file, &n->line);
    if (!tape_push(ctx, n)) {
        nb__fail(ctx, NB_ERR_NOMEM, "%s: cannot grow the tape", op->name);
        return NULL;
    }
    out->node = n;
    out->requires_grad = true;
    return n;
}

/* A user's op: everything the engine will rely on is checked here, so that a wrong call fails
 * now, naming the op, instead of corrupting the walk later. */
nb_node *nb_record(nb_ctx *ctx, const nb_op *op, nb_tensor *out, int n_in, nb_tensor *const *in) {
    if (!ctx || !op || !out || (n_in > 0 && !in)) {
        nb__fail(ctx, NB_ERR_NULL, "record: NULL argument");
        return NULL;
    }
    if (!op->name) return nb__fail(ctx, NB_ERR_NULL, "record: the op descriptor has no name");
    const char *name = op->name;
    if (n_in < 0) return nb__fail(ctx, NB_ERR_VALUE, "record: %s: n_in = %d inputs", name, n_in);
    if (op->diff != NB_DIFFERENTIABLE && op->diff != NB_ONCE_DIFFERENTIABLE && op->diff != NB_NOT_DIFFERENTIABLE)
        return nb__fail(ctx, NB_ERR_VALUE, "record: %s: differentiability %d is not an nb_differentiability", name,
                        (int)op->diff);
    if (!op->backward && op->diff != NB_NOT_DIFFERENTIABLE)
        return nb__fail(ctx, NB_ERR_STATE, "record: op '%s' has no backward rule (give it one, or mark it NB_NOT_DIFFERENTIABLE)",
                        name);
    for (int i = 0; i < n_in; i++)
        if (!in[i]) return nb__fail(ctx, NB_ERR_NULL, "%s: input %d is NULL", name, i);
    if (!ctx->grad_enabled) return NULL;
    bool need = false;
    for (int i = 0; i < n_in; i++) need |= in[i]->requires_grad;
    if (!need) return NULL; /* out is a constant: any tensor will do */
    /* the output: step memory of this context (a node is step memory: a long-lived output would
     * point at it after the reset), not produced by another op, not one of its own inputs */
    if (out->persistent)
        return nb__fail(ctx, NB_ERR_STATE, "record: %s: the output is a long-lived tensor (nb_tensor_new, a parameter); an "
                        "op's output must be made in the step (nb_empty, nb_zeros, ... on ctx)", name);
    char fn[96];
    snprintf(fn, sizeof fn, "record: %s", name);
    if (nb__stale(ctx, fn, out)) return NULL;
    if (out->node)
        return nb__fail(ctx, NB_ERR_STATE, "record: %s: the output was already recorded as the output of %s; make a new "
                        "tensor for each op", name, out->node->op->name);
    for (int i = 0; i < n_in; i++) {
        if (in[i] == out) return nb__fail(ctx, NB_ERR_STATE, "record: %s: the output is also input %d", name, i);
        if (nb__stale(ctx, fn, in[i])) return NULL;
    }
    if (op->diff != NB_NOT_DIFFERENTIABLE && out->dtype == NB_I64)
        return nb__fail(ctx, NB_ERR_DTYPE, "record: %s: an i64 output has no gradient; mark the op NB_NOT_DIFFERENTIABLE",
                        name);
    return record(ctx, op, out, n_in, in, true);
}

bool nb__has_nonfinite(const nb_tensor *t) {
    if (t->dtype == NB_I64) return false;
    for (int64_t i = 0; i < t->numel; i++) {
        double v = nb_get(t, i);
        if (!isfinite(v)) return true;
    }
    return false;
}

nb_tensor *nb__finish(nb_ctx *ctx, const nb_op *op, nb_tensor *out, int n_in, nb_tensor *const *in,
                      nb_node **node_out) {
    if (node_out) *node_out = NULL;
    if (!out) return NULL;
    nb__threads_check();
    if (ctx->anomaly && !ctx->in_backward && nb__has_nonfinite(out)) {
        char b[128], where[160] = "";
        const char *file;
        int line;
        const char *user_op = nb__site_op(&file, &line);
        if (user_op && strcmp(user_op, op->name) != 0)
            snprintf(where, sizeof where, " inside %s (called at %s:%d)", user_op, file, line);
        else if (user_op)
            snprintf(where, sizeof where, " (called at %s:%d)", file, line);
        return nb__fail(ctx, NB_ERR_NUMERIC, "anomaly: %s produced NaN/Inf in its output %s%s", op->name,
                        nb_shape_str(out, b, sizeof b), where);
    }
    nb_node *n = NULL;
    if (ctx->grad_enabled) {
        bool need = false;
        for (int i = 0; i < n_in; i++) need |= in[i]->requires_grad;
        if (need && !(n = record(ctx, op, out, n_in, in, false))) return NULL;
    }
    if (node_out) *node_out = n;
    return out;
}

/* ---- hooks ----------------------------------------------------------------------------- */
nb_status nb_add_hook(nb_ctx *ctx, nb_tensor *t, nb_hook_fn fn, void *user) {
    if (!t || !fn) return nb_set_error(NB_ERR_NULL, "add_hook: NULL argument");
    nb_hook **p = &t->hooks, *h;
    while (*p) p = &(*p)->next;
    if (t->persistent) {
        h = malloc(sizeof *h);
    } else {
        if (!ctx) return nb_set_error(NB_ERR_NULL, "add_hook: a step tensor needs its context");
        const nb_mark at = nb_ctx_mark(ctx);
        h = nb_ctx_alloc(ctx, sizeof *h);
        if (h && !nb__undo_log(ctx, (void **)p, NULL, at)) h = NULL; /* a release past `at` unhooks it */
    }
    if (!h) return nb_set_error(NB_ERR_NOMEM, "add_hook: out of memory");
    h->fn = fn;
    h->user = user;
    h->next = NULL;
    *p = h;
    return NB_OK;
}

void nb_clear_hooks(nb_tensor *t) {
    if (!t) return;
    if (t->persistent) {
        for (nb_hook *h = t->hooks, *nx; h; h = nx) {
            nx = h->next;
            free(h);
        }
    }
    t->hooks = NULL;
}
