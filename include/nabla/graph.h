/* nabla/graph.h — the context (arena + tape + modes + sticky error), reverse-mode autodiff,
 * custom ops, gradient hooks and gradcheck.
 *
 * A context is used by one thread at a time; independent contexts on different threads run
 * concurrently. Ops run eagerly: each call checks its arguments, computes its output into the
 * context's arena, and, when grad mode is on and an input requires grad, records a node on the
 * tape. nb_backward walks the tape in reverse calling each op's backward rule, which is itself
 * written with nabla ops, so gradients of gradients work (create_graph).
 */
#ifndef NABLA_GRAPH_H
#define NABLA_GRAPH_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- context ------------------------------------------------------------------------ */
nb_ctx *nb_ctx_new(void);                 /* NULL on out of memory (see nb_last_error) */
void nb_ctx_free(nb_ctx *ctx);            /* frees every step tensor and the graph */
/* Release every step tensor and the graph at once. Memory is kept: after the first few steps
 * a training loop makes no malloc at all. Errors are cleared too. A step tensor made before
 * the reset must not be used afterwards: ops, nb_backward and nb_grad given one fail with
 * NB_ERR_STATE (each reset starts a new generation, stamped into the step tensors it makes) —
 * a check, not a guarantee: a tensor header lives in the arena, so once a later step has made
 * a tensor at the same place, the old pointer names that tensor. Copy what must outlive a step
 * out of the arena first (nb_tensor_from, nb_copy_out). Step tensors belong to their context:
 * another context's ops refuse them the same way. */
void nb_ctx_reset(nb_ctx *ctx);
/* Cap on the step memory in bytes, the arena and the backward pool together (0 = unlimited, the
 * default): it bounds the memory the context holds (arena chunks and pool blocks, what
 * nb_ctx_bytes_used is drawn from); an op that would need the context to hold more fails with
 * NB_ERR_NOMEM. Memory already held stays usable: a cap set below what a context holds lets its
 * steps use that memory, and nb_ctx_bytes_used may then pass the cap. */
void nb_ctx_set_limit(nb_ctx *ctx, size_t max_bytes);
/* Bytes of step data in use now (the arena, plus the backward pool's live blocks), and the
 * most in use at once since creation or nb_ctx_reset_peak. A backward pass without
 * create_graph keeps its gradients and its rules' temporaries in a pool of its own and frees
 * each the moment it is dead, so a step's peak is about its saved activations plus a few
 * gradients, not everything the backward ever made. */
size_t nb_ctx_bytes_used(const nb_ctx *ctx);
size_t nb_ctx_bytes_peak(const nb_ctx *ctx);
void nb_ctx_reset_peak(nb_ctx *ctx);
/* Number of malloc calls the context has made since creation (for no-malloc-per-step checks). */
uint64_t nb_ctx_mallocs(const nb_ctx *ctx);
/* Number of nodes currently on the tape. */
int64_t nb_ctx_nodes(const nb_ctx *ctx);

/* Scoped temporary work: everything made after a mark is released by nb_ctx_release, also what
 * older step tensors were given after it: a step leaf's .grad made by a backward after the
 * mark (the leaf's .grad is NULL again; a .grad made before the mark is kept and accumulates)
 * and hooks added after it. A mark that is not one of this context's current step (taken
 * before a reset, already released past, or made up) changes nothing and sets NB_ERR_STATE on
 * the context. */
typedef struct { size_t arena_used; int64_t tape_len; int chunk; uint64_t gen; } nb_mark;
nb_mark nb_ctx_mark(nb_ctx *ctx);
void nb_ctx_release(nb_ctx *ctx, nb_mark m);
/* Bounded-memory inference: release everything made since the mark except t, whose values come
 * back in a step tensor made at the mark (t itself if long-lived). Without it, a forward pass
 * keeps every intermediate until the reset, even under no-grad. Keep each block's output of a
 * network to one mark, so the peak is one block's work, not the whole network's:
 *     NB_NO_GRAD(ctx) {
 *         nb_mark m = nb_ctx_mark(ctx);
 *         for (int b = 0; b < nblocks; b++)  // the previous h goes too: only the new one stays
 *             h = nb_ctx_keep(ctx, m, block_forward(ctx, &blocks[b], h));
 *     }
 * When ops since the mark recorded a graph (grad mode, inputs requiring grad), it releases
 * nothing and returns t: a backward pass needs all of it. A NULL t (an op failed) releases and
 * returns NULL with the error kept. No malloc once its staging buffer has grown. */
nb_tensor *nb_ctx_keep(nb_ctx *ctx, nb_mark m, nb_tensor *t);

/* Sticky error of the context: the first failure since the last reset/clear. */
nb_status nb_ctx_status(const nb_ctx *ctx);
const char *nb_ctx_error(const nb_ctx *ctx);   /* "" when none */
void nb_ctx_clear_error(nb_ctx *ctx);

/* ---- modes ---------------------------------------------------------------------------- */
/* Every function below accepts a NULL context: setters do nothing and set the thread-local
 * error (NB_ERR_NULL), getters return false / NULL. */
/* Grad mode (default on). Returns the previous value. */
bool nb_ctx_set_grad_enabled(nb_ctx *ctx, bool on);
bool nb_ctx_grad_enabled(const nb_ctx *ctx);
/* A no-grad scope: NB_NO_GRAD(ctx) { ... }  (do not leave it with break/return/goto). */
#define NB_NO_GRAD(ctx)                                                                        \
    for (bool nb__prev_ = nb_ctx_set_grad_enabled((ctx), false), nb__once_ = true; nb__once_;  \
         nb_ctx_set_grad_enabled((ctx), nb__prev_), nb__once_ = false)
/* Train/eval mode (default train), followed by dropout, batch norm and every mode-dependent op. */
void nb_ctx_set_train(nb_ctx *ctx, bool train);
bool nb_ctx_is_train(const nb_ctx *ctx);
/* Anomaly mode: every op output and every gradient is checked for NaN/Inf; the first one found
 * fails with NB_ERR_NUMERIC naming the op and the file:line where the user called it (the
 * outermost public op: "mul produced NaN ... inside nb_batch_norm (called at f.c:13)"). */
void nb_ctx_set_anomaly(nb_ctx *ctx, bool on);
/* The same under their names before 0.1 (kept so that existing programs build). */
bool nb_set_grad_enabled(nb_ctx *ctx, bool on);
bool nb_grad_enabled(const nb_ctx *ctx);
void nb_set_train(nb_ctx *ctx, bool train);
bool nb_is_train(const nb_ctx *ctx);
void nb_set_anomaly(nb_ctx *ctx, bool on);
/* The context's random generator (dropout, nb_randn/nb_rand). Seed 0 by default. */
nb_rng *nb_ctx_rng(nb_ctx *ctx);
void nb_ctx_seed(nb_ctx *ctx, uint64_t seed);

/* ---- autodiff ----------------------------------------------------------------------- */
/* Mark a leaf as needing a gradient (or not). Fails for a non-leaf. */
nb_status nb_requires_grad(nb_tensor *t, bool on);
/* A view of t sharing its data, cut from the graph (a leaf that does not require grad). */
nb_tensor *nb_detach(nb_ctx *ctx, nb_tensor *t);

/* Accumulate d(out)/d(leaf) into leaf->grad for every leaf that requires grad and that out
 * depends on. grad_out may be NULL when out has one element (then 1 is used). A persistent
 * leaf's .grad is long-lived (allocated on first use); a step leaf's .grad is in the arena.
 * The graph is kept, so backward may be called again (gradients add up). An op's input whose
 * values its backward may read (a product's, a nonlinearity's, any input of a user's op; not
 * the inputs of built-in sums, views and gathers), changed in place since the op (nb_set,
 * nb_fill, nb_copy_into, nb_rng_*, an optimizer step on it, a load, a constraint, the batcher
 * refilling its buffers; through it or any view of it), makes backward fail with NB_ERR_STATE
 * naming the op and input (torch's "modified by an inplace operation"): compute the forward
 * again. Writes through ->data are not seen. */
nb_status nb_backward(nb_ctx *ctx, nb_tensor *out, nb_tensor *grad_out);
/* Several outputs at once (torch.autograd.backward(tensors, grad_tensors)): the gradient of
 * sum_k <outs[k], grad_outs[k]> in one walk, so shared parts of the graph are walked once.
 * grad_outs may be NULL, or hold NULL for 1-element outputs. */
nb_status nb_backward_many(nb_ctx *ctx, int n_out, nb_tensor *const *outs, nb_tensor *const *grad_outs);

/* Function-style gradients: grads[i] = d(sum_k <outs[k], grad_outs[k]>)/d(inputs[i]), returned
 * as new step tensors without touching .grad. grad_outs may be NULL (all outputs 1-element).
 * An input the outputs do not depend on gets zeros. With create_graph the computation is
 * recorded, so the results can be differentiated again (Hessian-vector products, gradient
 * penalties). */
nb_status nb_grad(nb_ctx *ctx, int n_out, nb_tensor *const *outs, nb_tensor *const *grad_outs,
                  int n_in, nb_tensor *const *inputs, nb_tensor **grads, bool create_graph);

/* Called by nb_backward for each leaf as soon as its .grad is final (no node left on the walk can
 * add to it), in reverse order of use — last layer first. Data-parallel training starts the
 * reduction of a gradient bucket here while backward continues. NULL turns it off. */
typedef void (*nb_grad_ready_fn)(nb_tensor *leaf, void *user);
void nb_ctx_on_grad_ready(nb_ctx *ctx, nb_grad_ready_fn fn, void *user);

/* Set .grad of t to zero (NULL .grad stays NULL) and remember that it is: the next nb_backward
 * may then write t's first gradient straight into .grad (a linear layer's weight-gradient GEMM
 * does, with beta 0) instead of making it elsewhere and adding it: the same bits as the sum. So
 * write into .grad by hand only before zero_grad or after the backward, not in between. */
nb_status nb_zero_grad(nb_tensor *t);

/* Gradient hooks: called with t's complete gradient during a backward walk, before it flows
 * on (or into .grad for a leaf). Return the gradient to use: the one given, or a replacement of
 * the same shape made with ops in ctx. Returning NULL aborts the backward with the hook's error. */
typedef nb_tensor *(*nb_hook_fn)(nb_ctx *ctx, nb_tensor *grad, void *user);
nb_status nb_add_hook(nb_ctx *ctx, nb_tensor *t, nb_hook_fn fn, void *user);
void nb_clear_hooks(nb_tensor *t);

/* ---- custom ops (like torch.autograd.Function) ----------------------------------------- */
#define NB_NODE_IATTR 24
#define NB_NODE_FATTR 4

/* A node of the tape. Backward rules read it; only nb_record creates it. */
struct nb_node {
    const struct nb_op *op;
    nb_tensor *out;
    int n_in;
    nb_tensor **in;
    int64_t iattr[NB_NODE_IATTR];   /* integer attributes (axes, slice bounds, ...) */
    double fattr[NB_NODE_FATTR];    /* float attributes (slope, p, ...) */
    nb_tensor *saved[2];            /* extra tensors the backward needs */
    void *user;                     /* custom-op state (arena memory or the user's) */
    const char *file;               /* where the user called the op (for anomaly reports) */
    int line;
    const char *site_op;            /* the public op the user called (it may be made of this one) */
    int64_t seq;                    /* position on the tape */
    uint32_t *versions_;            /* engine-private: in[i]'s write counter when recorded */
    bool user_;                     /* engine-private: recorded by nb_record (a user's op) */
};

/* An op's backward rule: set gin[i] to d(loss)/d(node->in[i]) given gout = d(loss)/d(out),
 * using nabla ops on ctx, for each input with in[i]->requires_grad (others may be left NULL).
 * gin[i] may have out's broadcast shape: the engine sums it back to the input's shape.
 * Return NB_OK, or fail with nb_ctx_fail (its status) to stop the backward with your message. */
typedef nb_status (*nb_backward_fn)(nb_ctx *ctx, const nb_node *node, nb_tensor *gout, nb_tensor **gin);

/* How an op's gradient behaves (PyTorch: a plain Function, once_differentiable, or an op
 * without a derivative formula). */
typedef enum {
    NB_DIFFERENTIABLE = 0,      /* backward is made of ops: create_graph differentiates it again */
    NB_ONCE_DIFFERENTIABLE = 1, /* backward is a fused kernel, not itself differentiable: a
                                   second-order request through it fails with NB_ERR_UNSUPPORTED */
    NB_NOT_DIFFERENTIABLE = 2   /* no gradient at all: backward may be NULL; a backward walk that
                                   needs a gradient through the node fails with NB_ERR_UNSUPPORTED */
} nb_differentiability;

/* An op's descriptor (static, one per op): {"name", backward, NB_DIFFERENTIABLE}. */
typedef struct nb_op {
    const char *name;
    nb_backward_fn backward;
    nb_differentiability diff;
} nb_op;

/* Record out as produced by op from in[0..n_in). Returns the node, or NULL when nothing needs
 * recording (grad mode off or no input requires grad) — then out is simply a constant — or on
 * error (the context's status says which): a NULL argument or op name (NB_ERR_NULL), n_in < 0
 * or an invalid diff (NB_ERR_VALUE), a NULL backward on an op not marked NB_NOT_DIFFERENTIABLE,
 * and, when a node is recorded, an output that is long-lived (nb_tensor_new, a parameter: make
 * outputs in the step), already the output of an op, one of the inputs, or an output or input
 * of another context or an earlier step (NB_ERR_STATE), an i64 output of a differentiable op
 * (NB_ERR_DTYPE). A backward
 * rule's gradients, and a hook's result, must likewise be tensors of this step (NB_ERR_STATE). */
nb_node *nb_record(nb_ctx *ctx, const nb_op *op, nb_tensor *out, int n_in, nb_tensor *const *in);

/* Fail the context as a built-in op does: the first error since the last reset/clear is kept
 * (nb_ctx_error), the thread-local error is set too (nb_last_error). Returns NULL, so a custom
 * op can `return nb_ctx_fail(ctx, NB_ERR_SHAPE, "softsign: x %s ...", ...);`. ctx may be NULL. */
void *nb_ctx_fail(nb_ctx *ctx, nb_status status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Allocate n bytes of step memory (64-byte aligned) in the arena; NULL + NB_ERR_NOMEM on failure
 * (NB_ERR_NULL for a NULL context). */
void *nb_ctx_alloc(nb_ctx *ctx, size_t n);

/* Call-site capture for anomaly reports: every public op of ops.h, nn.h and regularize.h is
 * wrapped by a macro (NB__AT, end of ops.h) that pushes the op's name and the caller's
 * file:line on a per-thread stack for the duration of the call. Reports name the outermost
 * op the user called and where; outside any call the stack is empty, so a site is never stale.
 * Not for direct use. */
void nb__site_push(const char *op, const char *file, int line);
nb_tensor *nb__site_pop(nb_tensor *result);
/* The user's op being run on this thread (NULL outside any): its name, file and line. */
const char *nb__site_op(const char **file, int *line);
/* Every public op returning a tensor is also a macro that records the call site: the header
 * that declares it ends with `#define nb_op(...) NB__AT(nb_op, __VA_ARGS__)` for each
 * (tests/test_headers.c checks that none is missing). Defining NB_NO_SITE before including
 * nabla turns this off; taking an op's address works either way. */
#if !defined(NB_NO_SITE) && !defined(NB_INTERNAL)
#define NB__AT(f, ...) (nb__site_push(#f, __FILE__, __LINE__), nb__site_pop(f(__VA_ARGS__)))
#endif

/* ---- gradcheck ----------------------------------------------------------------------- */
/* A function under test: builds its output from inputs with ops on ctx. */
typedef nb_tensor *(*nb_fn)(nb_ctx *ctx, nb_tensor *const *inputs, void *user);

typedef struct {
    double eps;    /* finite-difference step, default 1e-6 */
    double atol;   /* default 1e-5 */
    double rtol;   /* default 1e-3 */
    int n_proj;    /* random output projections checked, default 2 (0 = full Jacobian) */
    uint64_t seed; /* for the projections, default 0 */
} nb_gradcheck_opts;
#define NB_GRADCHECK_DEFAULTS ((nb_gradcheck_opts){1e-6, 1e-5, 1e-3, 2, 0})

typedef struct {
    bool ok;
    int worst_input;          /* input holding the worst element (-1 if none failed) */
    int64_t worst_index;      /* its flat index */
    double analytic, numeric; /* the two values there */
    double max_abs_err[8];    /* per input (first 8) */
    double max_rel_err[8];
    char message[512];        /* names input, element, both values */
} nb_gradcheck_report;

/* Compare analytic gradients of f with central finite differences, in float64 (inputs must be
 * F64 and the inputs checked must require grad; an input checked may be any view but an
 * expanded one, stride 0: NB_ERR_VALUE). An element passes when
 * |analytic - numeric| <= atol + rtol * |numeric|. Without n_proj = 0 each check compares the
 * gradient of <v, f(x)> for a random v — PyTorch's fast mode —, which finds any wrong Jacobian
 * entry with probability one. Returns NB_OK, or NB_ERR_NUMERIC with report->message (and the
 * thread-local error) naming the input and element. report may be NULL. */
nb_status nb_gradcheck(nb_ctx *ctx, nb_fn f, int n_in, nb_tensor *const *inputs, void *user,
                       const nb_gradcheck_opts *opts, nb_gradcheck_report *report);
/* Check second derivatives: gradcheck of x -> d<v, f(x)>/dx (built with create_graph). */
nb_status nb_gradgradcheck(nb_ctx *ctx, nb_fn f, int n_in, nb_tensor *const *inputs, void *user,
                           const nb_gradcheck_opts *opts, nb_gradcheck_report *report);

/* ---- opcheck: every property nabla checks of its own ops, for yours ------------------------ */
#define NB_OPCHECK_MAX_INPUTS 8
#define NB_OPCHECK_MAX_CASES 256
typedef struct {
    const char *name;  /* the op's name: its errors must contain it */
    nb_fn f;           /* builds the op's output from the inputs (as for nb_gradcheck) */
    int n_in;          /* 1..NB_OPCHECK_MAX_INPUTS */
    /* The input shapes of case k (k = 0, 1, ... until it returns false, at most
     * NB_OPCHECK_MAX_CASES cases): ndim[i] and shape[i]. Case -1 is a shape the op must refuse
     * (return false if there is none). */
    bool (*shapes)(int k, int n_in, int *ndim, int64_t shape[][NB_MAX_DIMS], void *user);
    double lo, hi;     /* input values uniform in [lo, hi] (keep them away from kinks and poles) */
    bool smooth;       /* twice differentiable there: gradgradcheck too */
    bool check_nan;    /* a NaN in any input must reach the output */
    void *user;        /* passed to f and shapes */
} nb_opcheck_def;

typedef struct {
    bool ok;
    char property[16];  /* the first that failed: gradcheck, gradgradcheck, f32, threads, nan, bad_shape, arena, shapes */
    char message[768];  /* what failed, with the case, layout, element and values */
    int checks;         /* properties x cases that passed */
} nb_opcheck_report;

/* Check a user's op as nabla checks its own (like torch.library.opcheck), for every case:
 * - gradcheck (and gradgradcheck when smooth) in f64 on contiguous inputs, transposed and
 *   sliced views, and broadcast (stride-0) views of the same values;
 * - f32 inputs give f32 outputs within 1e-4 + 1e-3|y| of the f64 ones;
 * - output and input gradients bit-identical with 1 and 2 threads;
 * - a NaN in an input reaches the output (if check_nan);
 * - case -1 fails with an error naming the op, and the context works after clearing it;
 * - repeated forward+backward calls do not grow the arena or malloc.
 * Returns NB_OK, or NB_ERR_NUMERIC with report->property and ->message naming the first
 * failure (also in nb_last_error). The context's error is cleared; its grad mode restored.
 * Bad options (NULL, an empty name, n_in out of range, a range [lo, hi] that is empty or not
 * finite) return NB_ERR_NULL / NB_ERR_VALUE in nb_last_error without touching the context; a
 * context that already holds an error is refused with NB_ERR_STATE (clear it first). */
nb_status nb_opcheck(nb_ctx *ctx, const nb_opcheck_def *op, nb_opcheck_report *report);

/* ---- inspection ---------------------------------------------------------------------- */
/* Write the graph that produced `out` as Graphviz DOT (ops, shapes, which leaves require grad):
 * ops are boxes "name\n<dtype> <shape>", leaves and constants ellipses with their name (if
 * set), dtype, shape and "requires_grad"; edges run input -> op. Only what `out` depends on
 * is written; a tensor not made by a recorded op is written as a single leaf. The file stays
 * the caller's. Errors: NB_ERR_NULL, NB_ERR_IO when writing fails. Render: dot -Tsvg g.dot */
nb_status nb_graph_dot(nb_ctx *ctx, const nb_tensor *out, FILE *f);

#ifdef __cplusplus
}
#endif
/* call-site capture for anomaly reports (see NB__AT in graph.h) */
#if !defined(NB_NO_SITE) && !defined(NB_INTERNAL)
#define nb_detach(...) NB__AT(nb_detach, __VA_ARGS__)
#define nb_ctx_keep(...) NB__AT(nb_ctx_keep, __VA_ARGS__)
#endif

#endif
