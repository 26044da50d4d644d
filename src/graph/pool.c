/* The backward pool: where a backward pass without create_graph keeps the data of the tensors
 * it makes, so that each is reclaimed the moment it is dead.
 *
 * The bump arena frees nothing until the step ends, which suits the forward pass (its outputs
 * are the saved activations) but not the backward: every temporary of every rule, and every
 * gradient, would stay until the reset. In a backward walk with create_graph off the engine
 * knows every lifetime: a gradient under accumulation lives while its tensor's slot holds it;
 * everything else a rule makes is dead when the rule, the broadcast fit and the accumulation
 * are done. So while such a walk runs, nb__new takes tensor data (4 KiB or more; headers and
 * small tensors stay in the arena) from this pool: blocks with a count of the slots holding
 * them (views share their base's block). After each node the engine frees the blocks born
 * during it that no slot holds, and drops the node's own output gradient. What a walk hands
 * back (nb_grad's results) stays allocated until the step is reset.
 *
 * Freed blocks are kept, best fit first, so a steady training loop allocates nothing after
 * its first steps; nb_ctx_free returns them to the system. A block no step used lately is
 * returned at a reset once the pool holds more than twice the most any of the last 16 steps
 * had in use: a run whose sizes grow (or change) does not keep every size it ever had.
 * nb_ctx_release frees the blocks of tensors made after its mark (nb_grad's results too). */
#include "../internal.h"

#include <stdlib.h>

#define POOL_MIN ((size_t)4096)
#define BLOCK_HDR ((sizeof(nb_block) + 63) & ~(size_t)63)

struct nb_block {
    size_t size;             /* usable bytes */
    nb_mark at;              /* the arena's position when its tensor was made (nb_ctx_release) */
    uint64_t step;           /* the last step (ctx->pool_step) that used it */
    size_t used;             /* bytes of the tensor living in it (0 when free) */
    int64_t refs;            /* slots of the current walk holding a tensor of this block */
    struct nb_block *next;   /* the free list, or the list of blocks in use */
    struct nb_block *born;   /* blocks made during the current node */
    bool in_born;
};

static void *block_data(nb_block *b) { return (char *)b + BLOCK_HDR; }

void *nb__pool_alloc(nb_ctx *ctx, size_t bytes, nb_block **out) {
    *out = NULL;
    if (!ctx->pool_on || bytes < POOL_MIN) return NULL;
    /* best fit among the free blocks, if it wastes at most half of itself */
    nb_block **best = NULL;
    for (nb_block **p = &ctx->pool_free; *p; p = &(*p)->next)
        if ((*p)->size >= bytes && (*p)->size <= 2 * bytes && (!best || (*p)->size < (*best)->size)) best = p;
    nb_block *b;
    if (best) {
        b = *best;
        *best = b->next;
    } else {
        /* a new block counts against the context's limit with the arena; past it the arena
         * takes the tensor and fails with NB_ERR_NOMEM as it always has */
        if (ctx->limit && nb__arena_capacity(ctx) + ctx->pool_bytes + bytes > ctx->limit) return NULL;
        void *mem = NULL;
        if (posix_memalign(&mem, 64, BLOCK_HDR + bytes) != 0) return NULL; /* the arena takes it */
        ctx->mallocs++;
        b = mem;
        b->size = bytes;
        ctx->pool_bytes += bytes;
    }
    b->used = bytes;
    b->refs = 0;
    b->at = nb_ctx_mark(ctx);
    b->step = ctx->pool_step;
    b->next = ctx->pool_used;
    ctx->pool_used = b;
    b->born = ctx->pool_born;
    b->in_born = true;
    ctx->pool_born = b;
    ctx->pool_live += bytes;
    if (ctx->pool_live > ctx->pool_peak) ctx->pool_peak = ctx->pool_live;
    nb__note_peak(ctx);
    *out = b;
    return block_data(b);
}

static void unlink_used(nb_ctx *ctx, nb_block *b) {
    for (nb_block **p = &ctx->pool_used; *p; p = &(*p)->next)
        if (*p == b) {
            *p = b->next;
            return;
        }
}

static void block_free(nb_ctx *ctx, nb_block *b) {
    unlink_used(ctx, b);
    ctx->pool_live -= b->used;
    b->used = 0;
    b->next = ctx->pool_free;
    ctx->pool_free = b;
}

void nb__pool_ref(nb_tensor *t) {
    if (t && t->block_) t->block_->refs++;
}

#define RETAINED ((int64_t)1 << 40)
void nb__pool_retain(nb_tensor *t) {
    if (t && t->block_) t->block_->refs += RETAINED;
}

void nb__pool_unref(nb_ctx *ctx, nb_tensor *t) {
    nb_block *b = t ? t->block_ : NULL;
    if (!b || --b->refs > 0 || b->in_born) return; /* born blocks are settled by nb__pool_node_done */
    block_free(ctx, b);
}

bool nb__pool_exclusive(const nb_tensor *t) {
    const nb_block *b = t->block_;
    return b && b->refs == 1 && t->data == block_data((nb_block *)b) && nb_is_contiguous(t);
}

void nb__pool_node_done(nb_ctx *ctx) {
    for (nb_block *b = ctx->pool_born, *nx; b; b = nx) {
        nx = b->born;
        b->born = NULL;
        b->in_born = false;
        if (b->refs <= 0) block_free(ctx, b);
    }
    ctx->pool_born = NULL;
}

void nb__pool_walk_end(nb_ctx *ctx) {
    nb__pool_node_done(ctx);
    ctx->pool_on = false;
    /* what is still in use is what the walk handed back: it stays until the reset */
    for (nb_block *b = ctx->pool_used; b; b = b->next) b->refs += RETAINED;
}

void nb__pool_reset(nb_ctx *ctx) {
    while (ctx->pool_used) {
        nb_block *b = ctx->pool_used;
        ctx->pool_used = b->next;
        b->used = 0;
        b->next = ctx->pool_free;
        ctx->pool_free = b;
    }
    ctx->pool_live = 0;
    ctx->pool_born = NULL;
    ctx->pool_on = false;
    /* trim: blocks this step did not use, while the pool holds more than twice the recent peak.
     * Only after a step that used the pool: steps without a backward (validation, inference)
     * say nothing about what the training steps need. */
    if (ctx->pool_peak == 0) return;
    ctx->pool_peaks[ctx->pool_step % 16] = ctx->pool_peak;
    size_t keep = 0;
    for (int i = 0; i < 16; i++) keep = ctx->pool_peaks[i] > keep ? ctx->pool_peaks[i] : keep;
    keep *= 2;
    for (nb_block **p = &ctx->pool_free; *p && ctx->pool_bytes > keep;) {
        nb_block *b = *p;
        if (b->step == ctx->pool_step) {
            p = &b->next;
            continue;
        }
        *p = b->next;
        ctx->pool_bytes -= b->size;
        free(b);
    }
    ctx->pool_step++;
    ctx->pool_peak = 0;
}

void nb__pool_release(nb_ctx *ctx, nb_mark m) {
    if (ctx->pool_on) return; /* a walk settles its own blocks */
    for (nb_block *b = ctx->pool_used, *nx; b; b = nx) {
        nx = b->next;
        if (b->at.chunk > m.chunk || (b->at.chunk == m.chunk && b->at.arena_used >= m.arena_used)) block_free(ctx, b);
    }
}

void nb__pool_destroy(nb_ctx *ctx) {
    nb__pool_reset(ctx);
    for (nb_block *b = ctx->pool_free, *nx; b; b = nx) {
        nx = b->next;
        free(b);
    }
    ctx->pool_free = NULL;
    ctx->pool_bytes = 0;
}
