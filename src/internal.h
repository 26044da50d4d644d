/* Engine-private declarations shared by src/graph and src/ops. Not installed. */
#ifndef NABLA_INTERNAL_H
#define NABLA_INTERNAL_H

#define NB_INTERNAL 1
#include "nabla/nabla.h"

#include <math.h>
#include <stdatomic.h>
#include <omp.h>
#include <string.h>

#ifdef NDEBUG
#define NB_ASSERT(c) ((void)0)
#else
#include <assert.h>
#define NB_ASSERT(c) assert(c)
#endif

/* Element-wise work smaller than this runs on one thread (thread start-up costs ~µs). */
#define NB_PAR_THRESHOLD 32768
/* The same for kernels that cost tens of cycles per element (a Philox draw, tanh, erf): a
 * waiting thread pays for itself sooner (the MLP's 64x256 dropout layers ran on one thread). */
#define NB_PAR_THRESHOLD_HEAVY 4096

#define NB_MAX_CHUNKS 48

typedef struct {
    char *base;
    size_t size, used;
} nb_chunk;

struct nb_hook {
    nb_hook_fn fn;
    void *user;
    struct nb_hook *next;
};

struct nb_ctx {
    nb_chunk chunks[NB_MAX_CHUNKS];
    int nchunks, cur;
    size_t limit, peak;
    size_t used_before_cur;     /* bytes used in chunks[0 .. cur), so an allocation knows the total */
    uint64_t mallocs;
    nb_node **tape;
    int64_t tape_len, tape_cap;
    nb_tensor **touched;        /* tensors that received a gradient during a backward walk */
    int64_t ntouched, touched_cap;
    struct nb_walk_slot *slots; /* a walk's per-tensor state: open addressing by tensor address */
    int64_t nslots;             /* a power of two (0 before the first walk) */
    struct nb_walk_slot *last_slot; /* the slot found last (a one-entry cache) */
    int64_t walk_id;            /* slots of other walks are stale: no clearing between walks */
    bool grad_enabled, train, anomaly, in_backward;
    bool grad_dest_on;          /* nb_backward without create_graph: rules may write into .grad */
    nb_rng rng;
    nb_grad_ready_fn on_ready;
    void *on_ready_user;
    nb_status status;
    char msg[512];
    double step_end;            /* when the last step ended (the thread tuner's clock) */
    uint64_t gen;               /* generation of the current step: stamped into step tensors, new at every reset */
    /* the backward pool (src/graph/pool.c) */
    struct nb_block *pool_free, *pool_used, *pool_born;
    size_t pool_bytes, pool_live; /* held from the system; in use now */
    bool pool_on;                 /* a backward walk without create_graph is running */
    uint64_t pool_step;           /* steps (resets) so far: a block notes the last one using it */
    size_t pool_peak, pool_peaks[16]; /* the most in use during this step, and the last 16 steps' */
    void *keep_buf;               /* nb_ctx_keep's staging buffer */
    size_t keep_cap;
    nb_tensor *donated;           /* a container's intermediate the next op may overwrite (nb__donate) */
    /* links from step data older than a mark to arena memory made after it (a step leaf's .grad
     * made by a backward, a hook added to a step tensor): nb_ctx_release undoes those it frees */
    struct nb_undo *undo;
    int64_t nundo, undo_cap;
};
/* Record that *slot (in step memory, possibly older than a mark) now points at arena memory
 * allocated at position `at` (nb_ctx_mark taken just before the allocation); a release to a
 * mark at or before `at` sets *slot back to old. false: out of memory (nothing recorded). */
bool nb__undo_log(nb_ctx *ctx, void **slot, void *old, nb_mark at);

/* ---- donation: an intermediate only its consumer reads ------------------------------------
 * A container (src/nn/module.c) hands the op that consumes one of its intermediates the right
 * to overwrite it: nb__donate(ctx, t), the op call, nb__donate(ctx, NULL). Only single-op
 * consumers get it (a module that reads its input twice must not), so t is read by that op
 * only. Element-wise ops (same index in, same index out) then write their output over t when
 * no backward rule will read t: under no-grad always; with a graph when the consumer's
 * backward does not read t (reads_x false) and t's own node does not read its output
 * (nb__output_unread). Either way the results are the same bits. */
void nb__donate(nb_ctx *ctx, nb_tensor *t);
/* A new step tensor of x's dtype and shape for an element-wise op's output: over x's data when x
 * is donated and may be overwritten (see above), else fresh. Ends the donation. */
nb_tensor *nb__out_like(nb_ctx *ctx, nb_tensor *x, bool reads_x);
/* True for nodes whose backward never reads their output (batch/layer/group norm without ReLU). */
bool nb__output_unread(const nb_node *n);

/* ---- the backward pool (src/graph/pool.c) ------------------------------------------------ */
typedef struct nb_block nb_block;
/* Data for a new tensor from the pool when a walk has it on and bytes is large enough; else
 * NULL (the arena takes it). *block is the tensor's block. */
void *nb__pool_alloc(nb_ctx *ctx, size_t bytes, nb_block **block);
void nb__pool_ref(nb_tensor *t);                  /* a slot holds t */
void nb__pool_unref(nb_ctx *ctx, nb_tensor *t);   /* a slot let go of t: free its block if dead */
void nb__pool_retain(nb_tensor *t);               /* t's block stays until the reset */
bool nb__pool_exclusive(const nb_tensor *t);      /* t is its block's whole data, held by one slot */
void nb__pool_node_done(nb_ctx *ctx);             /* free what the node made that no slot holds */
void nb__pool_walk_end(nb_ctx *ctx);              /* pool off; what is held stays until the reset */
void nb__pool_reset(nb_ctx *ctx);                 /* every block free again (nb_ctx_reset) */
void nb__pool_release(nb_ctx *ctx, nb_mark m);    /* free the blocks of tensors made after m */
void nb__pool_destroy(nb_ctx *ctx);               /* blocks back to the system (nb_ctx_free) */
void nb__note_peak(nb_ctx *ctx);                  /* peak = max(peak, arena in use + pool in use) */
size_t nb__arena_capacity(const nb_ctx *ctx);     /* bytes the arena holds from the system */

/* ---- a walk's per-tensor state (backward, DOT export), owned by the context ---------------- */
/* A leaf's gradient term in closed form, kept back by nb_backward (nb__defer_leaf_term): c *
 * d/dx sum(x^2) or c * d/dx sum(|x|), evaluated from the leaf's values when .grad is written. */
typedef struct {
    bool square;
    double c;
} nb_leaf_term;
#define NB_MAX_LEAF_TERMS 2
typedef struct nb_walk_slot {
    const nb_tensor *t;
    int64_t walk;     /* the walk this slot belongs to (ctx->walk_id when live) */
    nb_tensor *acc;   /* gradient under accumulation */
    int64_t visit;    /* marks and use counts */
    int nterms;       /* leaves: terms kept back, added after acc (in the order they came) */
    nb_leaf_term term[NB_MAX_LEAF_TERMS];
} nb_walk_slot;
/* Start a new walk over the nodes tape[0..start] and `extra` more tensors (outputs, targets);
 * false + error on no memory. Only tensors of those nodes may be given slots. */
bool nb__walk_begin(nb_ctx *ctx, int64_t start, int64_t extra);
/* t's slot in the current walk, created (acc NULL, visit 0) when absent. */
nb_walk_slot *nb__walk_slot(nb_ctx *ctx, const nb_tensor *t);

/* A fresh generation number, unique in the process (so a step tensor of another context or of
 * an earlier step never matches). */
uint64_t nb__next_gen(void);
/* True (after failing with NB_ERR_STATE naming fn) if t is a step tensor released by
 * nb_ctx_reset / nb_ctx_release, or one of another context. */
bool nb__stale(nb_ctx *ctx, const char *fn, const nb_tensor *t);

/* The op the user called (set by nb__null at the start of every op), so that failures deep
 * inside an op (allocation, size overflow) name it. Nested ops overwrite it with their own. */
extern _Thread_local const char *nb__op_name;

/* ---- errors: set ctx (first error kept) and thread-local (latest); return NULL ---------- */
void *nb__fail(nb_ctx *ctx, nb_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* True (after recording NB_ERR_NULL) if ctx or any of the n tensors is NULL, or (NB_ERR_STATE)
 * if one is a step tensor released by a reset / release or made by another context. */
bool nb__null(nb_ctx *ctx, const char *op, int n, ...);

/* ---- tensors -------------------------------------------------------------------------- */
/* New contiguous step tensor (uninitialised data). */
nb_tensor *nb__new(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape);
/* A step-tensor header sharing base's data, with the given shape/strides (elements) and data. */
nb_tensor *nb__view(nb_ctx *ctx, const nb_tensor *base, int ndim, const int64_t *shape,
                    const int64_t *stride, void *data);
void nb__contig_strides(int ndim, const int64_t *shape, int64_t *stride);
int64_t nb__numel(int ndim, const int64_t *shape);  /* for shapes already checked by nb__size */
/* The one overflow check for sizes. True when every dim is >= 0 and the element count, the
 * byte size (count * esz) and every contiguous stride in bytes fit in int64, so no offset
 * computed from the shape can overflow; then *numel and *bytes (either may be NULL) are set.
 * Every constructor, view, reshape/expand and file reader goes through it. */
bool nb__size(int ndim, const int64_t *shape, size_t esz, int64_t *numel, size_t *bytes);
/* As nb__size, failing on ctx (NB_ERR_SHAPE, naming op and the shape) when it does not fit. */
bool nb__size_ok(nb_ctx *ctx, const char *op, int ndim, const int64_t *shape, size_t esz, int64_t *numel);

/* True when a reader may allocate `bytes` for the tensors of one file (nb_read_limit);
 * otherwise false with NB_ERR_FORMAT naming fn, path and the cap. */
bool nb__read_budget(const char *fn, const char *path, uint64_t bytes);

/* ---- float -> int64: the one conversion used wherever a float value becomes an I64 ------- */
/* v truncated toward zero into *out when v is finite and inside [-2^63, 2^63); otherwise false
 * and *out = 0 (never undefined behaviour). */
static inline bool nb__f2i(double v, int64_t *out) {
    if (v >= -9223372036854775808.0 && v < 9223372036854775808.0) {
        *out = (int64_t)v;
        return true;
    }
    *out = 0;
    return false;
}
/* True when every element of a float tensor converts with nb__f2i (always for I64); else false
 * with the first offending flat index and value. */
bool nb__i64_convertible(const nb_tensor *t, int64_t *bad_index, double *bad_value);
/* Offset (elements) of logical flat index i in t. */
int64_t nb__offset(const nb_tensor *t, int64_t i);
/* Normalise an axis; -1 when out of range. */
int nb__axis(int axis, int ndim);
char *nb__dims_str(int ndim, const int64_t *shape, char *buf, size_t len);
/* Greatest common divisor (a, b >= 0): how many channels fill whole register blocks of taps
 * (src/ops/conv_gemm.c, conv_direct.c). */
static inline int64_t nb__gcd(int64_t a, int64_t b) {
    while (b) {
        const int64_t t = a % b;
        a = b, b = t;
    }
    return a;
}
/* Broadcast shape of a and b into out; false if incompatible. */
bool nb__broadcast_shape(int na, const int64_t *sa, int nb, const int64_t *sb, int *nout, int64_t *out);
/* x's shape is shape (ndim) broadcast: nb_sum_to(x, ndim, shape) can undo the broadcast */
bool nb__sums_to(const nb_tensor *x, int ndim, const int64_t *shape);
/* Output positions of a window over (H, W), after checking the window; false + error if bad.
 * `op` and `x` name the caller and its input in the message (src/ops/conv.c). */
bool nb__window_out(nb_ctx *ctx, const char *op, const nb_tensor *x, int64_t H, int64_t W, nb_window2d w, int64_t *oh,
                    int64_t *ow);

/* ---- Philox-4x32-10, inline so that loops drawing one number per element vectorize ------ */
static inline void nb__philox(uint64_t key, uint64_t counter, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}
/* uniform double in [0, 1) from the first 53 bits of the block at `index` */
static inline double nb__philox_uniform(uint64_t key, uint64_t index) {
    uint32_t r[4];
    nb__philox(key, index, r);
    return (double)((((uint64_t)r[0] << 32) | r[1]) >> 11) * 0x1.0p-53;
}

/* ---- dropout keep masks (src/regularize/dropout.c) -------------------------------------- */
/* Element i of a mask drawn at counter `base` keeps when 32-bit word i % 4 of the Philox block
 * at counter base + i / 4 is >= t (integers compared, no float conversion): every word of a
 * block is used and each element's bits depend on (key, base, i) only, whatever the threads. */
/* t = round(p 2^32) (at most 2^32 - 1): the keep probability 1 - t / 2^32 is within 2^-32 of 1 - p. */
uint32_t nb__keep_threshold(double p);
/* Elements [s, e) of a mask into m (m[0] is element s): scale where kept, 0 where dropped. */
void nb__keep_mask(nb_dtype dt, void *m, int64_t s, int64_t e, uint64_t key, uint64_t base, uint32_t t, double scale);
/* A step tensor of the given shape holding the mask drawn at (key, base) for drop probability
 * p in (0, 1), scale 1 / (1 - p). The caller advances its generator by nb__mask_blocks(numel). */
nb_tensor *nb__dropout_mask(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape, double p, uint64_t key,
                            uint64_t base);
static inline uint64_t nb__mask_blocks(int64_t numel) { return (uint64_t)(numel + 3) / 4; }

/* ---- strided iteration ---------------------------------------------------------------- */
#define NB_ITER_MAX 4
typedef struct {
    int nops, ndim;
    int64_t shape[NB_MAX_DIMS];
    int64_t st[NB_ITER_MAX][NB_MAX_DIMS];  /* element strides */
    char *ptr[NB_ITER_MAX];
    size_t esz[NB_ITER_MAX];
    int64_t total;
} nb_iter;
/* Row kernel: n elements; p[k] points at the row start of operand k; s[k] its element stride. */
typedef void (*nb_row_fn)(int64_t n, char **p, const int64_t *s, const void *arg);
/* Set up iteration over `ndim/shape` with operands ts[0..nops), each broadcast to that shape
 * (right-aligned, stride 0 where size 1). Adjacent dims are merged where all operands allow. */
void nb__iter_init(nb_iter *it, int ndim, const int64_t *shape, int nops, const nb_tensor *const *ts);
/* Run fn over all rows; splits the flat range over OpenMP threads when large. */
void nb__iter_run(const nb_iter *it, nb_row_fn fn, const void *arg);
/* The same with min_par elements as the threshold for threads (NB_PAR_THRESHOLD_HEAVY, say). */
void nb__iter_run_min(const nb_iter *it, nb_row_fn fn, const void *arg, int64_t min_par);
void nb__iter_run_serial(const nb_iter *it, nb_row_fn fn, const void *arg);

/* ---- element-wise ops: one table entry each (src/ops/unary.c, src/ops/elementwise.c) ------ */
/* An element-wise op is its descriptor (nb_op: name, backward rule made of ops,
 * differentiability) plus one row kernel per dtype. The row kernels come from one scalar
 * expression through NB_UNARY_KERNEL / NB_BINARY_KERNEL below, so the expression is written
 * once for f32 and f64. The descriptor is initialised positionally: a missing part is a build
 * error (-Werror=missing-field-initializers in src/ops, and the kernel names must exist).
 * backward NULL means the op is piecewise constant (sign, floor, comparisons): its output is
 * a constant with zero gradient, as in PyTorch, and is never recorded. */
typedef struct nb_unary_def {
    nb_op op;
    nb_row_fn f32, f64; /* p[0] out, p[1] x; arg: const nb_uparams * */
} nb_unary_def;
typedef struct nb_binary_def {
    nb_op op;
    nb_row_fn f32, f64; /* p[0] out, p[1] a, p[2] b; arg unused */
} nb_binary_def;
typedef struct {
    double p0, p1; /* the op's scalar parameters (slope, alpha, bounds, ...) */
} nb_uparams;

/* out = f(x) (x broadcast to out's shape) / out = f(a, b) (both broadcast to out's shape). */
void nb__unary_map(const nb_unary_def *d, nb_tensor *out, const nb_tensor *x, double p0, double p1);
void nb__binary_map(const nb_binary_def *d, nb_tensor *out, const nb_tensor *a, const nb_tensor *b);
/* The front end of every unary / binary op: checks (NULL, float dtypes, broadcasting), output,
 * kernel, and the node (p0, p1 go to node->fattr[0..1]) unless the op is piecewise constant. */
nb_tensor *nb__unary(nb_ctx *ctx, const nb_unary_def *d, nb_tensor *x, double p0, double p1);
nb_tensor *nb__binary(nb_ctx *ctx, const nb_binary_def *d, nb_tensor *a, nb_tensor *b);
/* 1 where x > 0, else 0 (NaN gives 0): a constant, never recorded (relu's backward mask). */
nb_tensor *nb__mask_gtz(nb_ctx *ctx, nb_tensor *x);

/* Scalar math in the expression's own type: NB_M(exp, v) is expf for float, exp for double. */
#define NB_M(fn, v) _Generic((v), float: fn##f, default: fn)(v)
#define NB_M2(fn, v, w) _Generic((v), float: fn##f, default: fn)(v, w)

/* Row loops around a scalar function; always inlined into each op's row kernel, where the
 * function is a constant, so the loop vectorises as if written out by hand. */
static inline __attribute__((always_inline)) void nb__unary_rows_f32(int64_t n, char **p, const int64_t *s,
                                                                   const void *arg, float (*f)(float, float, float)) {
    const nb_uparams *a = arg;
    const float p0 = (float)a->p0, p1 = (float)a->p1;
    float *o = (float *)p[0];
    const float *x = (const float *)p[1];
    if (s[0] == 1 && s[1] == 1)
        for (int64_t i = 0; i < n; i++) o[i] = f(x[i], p0, p1);
    else
        for (int64_t i = 0; i < n; i++) o[i * s[0]] = f(x[i * s[1]], p0, p1);
}
static inline __attribute__((always_inline)) void nb__unary_rows_f64(int64_t n, char **p, const int64_t *s,
                                                                   const void *arg, double (*f)(double, double, double)) {
    const nb_uparams *a = arg;
    double *o = (double *)p[0];
    const double *x = (const double *)p[1];
    if (s[0] == 1 && s[1] == 1)
        for (int64_t i = 0; i < n; i++) o[i] = f(x[i], a->p0, a->p1);
    else
        for (int64_t i = 0; i < n; i++) o[i * s[0]] = f(x[i * s[1]], a->p0, a->p1);
}
#define NB_BINARY_ROWS(T, SUF)                                                                          \
    static inline __attribute__((always_inline)) void nb__binary_rows_##SUF(int64_t n, char **p,      \
                                                                            const int64_t *s,          \
                                                                            T (*f)(T, T)) {            \
        T *o = (T *)p[0];                                                                                \
        const T *a = (const T *)p[1], *b = (const T *)p[2];                                              \
        const int64_t so = s[0], sa = s[1], sb = s[2];                                                   \
        if (so == 1 && sa == 1 && sb == 1)                                                               \
            for (int64_t i = 0; i < n; i++) o[i] = f(a[i], b[i]);                                        \
        else if (so == 1 && sa == 1 && sb == 0)                                                          \
            for (int64_t i = 0; i < n; i++) o[i] = f(a[i], b[0]);                                        \
        else if (so == 1 && sa == 0 && sb == 1)                                                          \
            for (int64_t i = 0; i < n; i++) o[i] = f(a[0], b[i]);                                        \
        else                                                                                             \
            for (int64_t i = 0; i < n; i++) o[i * so] = f(a[i * sa], b[i * sb]);                         \
    }
NB_BINARY_ROWS(float, f32)
NB_BINARY_ROWS(double, f64)
#undef NB_BINARY_ROWS

/* NB_UNARY_KERNEL(name, expr): the row kernels name_f32 and name_f64 of `out = expr`, where
 * expr reads the element v, the op's parameters p0 and p1, and the element type T (write
 * constants as (T)0.5 and math as NB_M(exp, v)). */
#define NB_UNARY_KERNEL(NAME, EXPR)                                                                  \
    static inline float NAME##_scalar_f32(float v, float p0, float p1) {                             \
        typedef float T __attribute__((unused));                                                     \
        (void)p0, (void)p1;                                                                          \
        return (EXPR);                                                                               \
    }                                                                                                \
    static inline double NAME##_scalar_f64(double v, double p0, double p1) {                         \
        typedef double T __attribute__((unused));                                                    \
        (void)p0, (void)p1;                                                                          \
        return (EXPR);                                                                               \
    }                                                                                                \
    static void NAME##_f32(int64_t n, char **p, const int64_t *s, const void *a) {                   \
        nb__unary_rows_f32(n, p, s, a, NAME##_scalar_f32);                                           \
    }                                                                                                \
    static void NAME##_f64(int64_t n, char **p, const int64_t *s, const void *a) {                   \
        nb__unary_rows_f64(n, p, s, a, NAME##_scalar_f64);                                           \
    }
/* NB_BINARY_KERNEL(name, expr): the same for `out = expr(u, v)`, u from a and v from b. */
#define NB_BINARY_KERNEL(NAME, EXPR)                                                                 \
    static inline float NAME##_scalar_f32(float u, float v) {                                        \
        typedef float T __attribute__((unused));                                                     \
        return (EXPR);                                                                               \
    }                                                                                                \
    static inline double NAME##_scalar_f64(double u, double v) {                                     \
        typedef double T __attribute__((unused));                                                    \
        return (EXPR);                                                                               \
    }                                                                                                \
    static void NAME##_f32(int64_t n, char **p, const int64_t *s, const void *a) {                   \
        (void)a;                                                                                     \
        nb__binary_rows_f32(n, p, s, NAME##_scalar_f32);                                             \
    }                                                                                                \
    static void NAME##_f64(int64_t n, char **p, const int64_t *s, const void *a) {                   \
        (void)a;                                                                                     \
        nb__binary_rows_f64(n, p, s, NAME##_scalar_f64);                                             \
    }

/* Activations shared by their unary ops (src/ops/unary.c) and nb_linear_act (src/ops/dense.c):
 * one expression, so both give the same bits. NB_M(nb__relu, v) picks the f32 or f64 one. */
#define NB_ACTIVATION(NAME, EXPR)                                                                     \
    static inline float nb__##NAME##f(float v) {                                                     \
        typedef float T __attribute__((unused));                                                     \
        return (EXPR);                                                                               \
    }                                                                                                \
    static inline double nb__##NAME(double v) {                                                      \
        typedef double T __attribute__((unused));                                                    \
        return (EXPR);                                                                               \
    }
NB_ACTIVATION(relu, !(v <= 0) ? v : (T)0) /* NaN stays NaN */
NB_ACTIVATION(sigmoid, v >= 0 ? (T)1 / ((T)1 + NB_M(exp, -v)) : NB_M(exp, v) / ((T)1 + NB_M(exp, v)))
NB_ACTIVATION(gelu, (T)0.5 * v * ((T)1 + NB_M(erf, v * (T)0.70710678118654752440))) /* exact: x Phi(x) */
#undef NB_ACTIVATION

/* The fused backward of tanh / sigmoid from the output y: g (1 - y^2), g y (1 - y). */
nb_tensor *nb__tanh_backward(nb_ctx *ctx, nb_tensor *g, nb_tensor *y);
nb_tensor *nb__sigmoid_backward(nb_ctx *ctx, nb_tensor *g, nb_tensor *y);

/* sum(x^2) and sum(|x|) over all of x as 0-d tensors (src/ops/reduce.c): the bits of
 * nb_sum_all(nb_mul(x, x)) and nb_sum_all(nb_abs(x)) and of their gradients, one pass each way. */
nb_tensor *nb__sum_sq(nb_ctx *ctx, nb_tensor *x);
nb_tensor *nb__sum_abs(nb_ctx *ctx, nb_tensor *x);

/* Kernels the engine uses outside any op (not recorded). */
void nb__fill_kernel(nb_tensor *t, double v);                         /* every element = v */
void nb__affine_kernel(nb_tensor *out, const nb_tensor *x, double scale, double shift);
void nb__accumulate_kernel(nb_tensor *dst, const nb_tensor *src);   /* dst += src (same shape) */
/* A rule about to compute the whole gradient of its input j asks for a destination: the
 * input's .grad when the rule may write it there (beta 0) instead of returning a new tensor
 * for the engine to add. That holds in nb_backward without create_graph, for a leaf without
 * hooks whose .grad is all zeros from zero_grad (grad_zero_) and whose only use left is this
 * node, with nothing summed for it yet: the sum the engine would do is 0 + g. NULL otherwise.
 * After writing, the rule sets gin[j] to the destination and calls nb__grad_dest_end (a
 * .grad shared by contexts stays locked in between). */
nb_tensor *nb__grad_dest_begin(nb_ctx *ctx, const nb_node *n, int j);
void nb__grad_dest_end(nb_ctx *ctx, const nb_node *n, int j);
/* A rule whose gradient for the leaf x is a closed-form term (a penalty's c * 2x or c *
 * sign(x)) asks to keep it back: in nb_backward without create_graph and anomaly checks, for
 * a contiguous leaf without hooks, the engine adds it into .grad when the leaf is final, after
 * the other gradients (so a GEMM can still write .grad first, with beta 0): one pass, no
 * tensor. The same bits as the term returned as a gradient when the leaf receives one other
 * gradient (the sums commute); with more, the same value up to the order of the additions.
 * true: kept back (the rule leaves gin NULL); false: the rule returns the term as usual. */
bool nb__defer_leaf_term(nb_ctx *ctx, nb_tensor *x, bool square, double c);
/* dst (contiguous, x's shape) += the terms at x (src/ops/reduce.c), in the order the engine
 * would have added them as tensors: grouped, dst + (t0 + t1 + ...), where a rule wrote dst in
 * place (the terms would have met in the accumulator first); else one by one, (dst + t0) + t1 */
void nb__leaf_terms_add(nb_tensor *dst, const nb_tensor *x, int nterms, const nb_leaf_term *term, bool grouped);
/* out (M, N), contiguous, = a (M, K) b (K, N) for 2-D operands with positive strides: the
 * product nb_matmul computes (same path, same bits), into memory the caller chose, no node. */
void nb__matmul_into(const nb_tensor *a, const nb_tensor *b, nb_tensor *out);
/* x (N, in) w^T for w (out, in), checked by the caller: one node on (x, w) whose rule writes
 * the weight's gradient straight into w's .grad when it may (nb__grad_dest_begin); the same
 * bits as nb_matmul(x, nb_transpose(w, 0, 1)) each way. Other ranks of x go to nb_matmul. */
nb_tensor *nb__linear_product(nb_ctx *ctx, nb_tensor *x, nb_tensor *w);
/* dst (contiguous) = nb_sum_to(x, dst's shape), the same kernel and bits, into dst's memory
 * (a rule writing a broadcast input's gradient straight into .grad). */
void nb__sum_to_into(nb_tensor *dst, const nb_tensor *x);
/* Copy with dtype conversion, src broadcast to dst's shape. */
void nb__copy_kernel(nb_tensor *dst, const nb_tensor *src);

/* Call before the first BLIS call (picks BLIS's kernels on CPUs it does not know). */
void nb__blis_init(void);
/* Convolution as an implicit GEMM on BLIS's micro-kernel (src/ops/conv_gemm.c): y (N, O, OH, OW)
 * contiguous = conv(x, w) + beta*y (beta 0, or 1 with the bias already in y); x (N, C, H, W)
 * any strides, w (O, C/G, kh, kw) contiguous; scratch: nb__conv_gemm_scratch bytes, 64-byte
 * aligned (0: no usable micro-kernel); threads > 1: an OpenMP team. Bits independent of threads. */
bool nb__conv_gemm_ok(nb_dtype dt);
size_t nb__conv_gemm_scratch(nb_dtype dt, int64_t O, int64_t Cg, int64_t G, int64_t taps, int threads);
void nb__conv_gemm(nb_dtype dt, const nb_tensor *x, const nb_tensor *w, int64_t G, nb_window2d win, int64_t OH,
                   int64_t OW, double beta, nb_tensor *y, int threads, char *scratch);
/* The weight gradient the same way: gw (O, C/G, kh, kw) contiguous from x (any strides) and gy
 * (N, O, OH, OW) contiguous; scratch: nb__conv_gemm_bw_scratch bytes. Bits independent of threads. */
size_t nb__conv_gemm_bw_scratch(nb_dtype dt, int64_t O, int64_t Cg, int64_t G, int64_t taps, int threads);
void nb__conv_gemm_bw(nb_dtype dt, const nb_tensor *x, const nb_tensor *gy, int64_t G, nb_window2d win, nb_tensor *gw,
                      int threads, char *scratch);
/* The input gradient the same way: dx (N, C, H, W) contiguous, holding zeros or the bias, += the
 * gradient from gy (N, O, OH, OW) and w (O, C/G, kh, kw), both contiguous; scratch:
 * nb__conv_gemm_bx_scratch bytes. Bits independent of threads. */
size_t nb__conv_gemm_bx_scratch(nb_dtype dt, int64_t O, int64_t Cg, int64_t G, int64_t taps, int threads);
void nb__conv_gemm_bx(nb_dtype dt, const nb_tensor *gy, const nb_tensor *w, int64_t G, nb_window2d win, nb_tensor *dx,
                      int threads, char *scratch);
/* Direct convolution (src/ops/conv_direct.c): f32, one group; the input gradient with stride 1
 * and padding at most the dilated kernel's extent less one; false where the library was built
 * without AVX2+FMA. Each
 * part writes its whole output (bias included), from x / gy of any strides, w contiguous;
 * scratch: the matching _scratch bytes, 64-byte aligned; threads > 1: an OpenMP team. Bits
 * independent of threads. */
bool nb__conv_direct_ok(nb_dtype dt, int64_t G, nb_window2d win, bool input_grad);
/* The part, its inputs a, b and output: FWD y = conv(a = x, b = w) + bias; BX dx =
 * conv_bx(a = gy, b = w) + bias; BW gw = conv_bw(a = x, b = gy), bias NULL. */
typedef enum { NB_CONV_FWD, NB_CONV_BX, NB_CONV_BW } nb_conv_part;
size_t nb__conv_direct_scratch(nb_conv_part part, const nb_tensor *a, const nb_tensor *b, nb_window2d win,
                               const nb_tensor *out, int threads);
void nb__conv_direct(nb_conv_part part, const nb_tensor *a, const nb_tensor *b, const nb_tensor *bias, nb_window2d win,
                     nb_tensor *out, int threads, char *scratch);
/* Rows of the convolutions' padded planes and packed panels, as vectors of any alignment: 8
 * floats, and the widest the target has (16 with AVX-512, else 8). */
typedef float nb__v8f __attribute__((vector_size(32), aligned(4), may_alias));
#if defined(__AVX512F__)
enum { NB__VW = 16 };
#else
enum { NB__VW = 8 };
#endif
typedef float nb__vw __attribute__((vector_size(NB__VW * 4), aligned(4), may_alias));
/* d[0, n) = s[0, n) (a row): whole vectors, the last one overlapping the ones before, 8-15
 * floats on AVX-512 as two overlapping halves, fewer element by element: a row of 14-30 floats
 * costs two or three stores and no scalar tail. Nothing outside d[0, n) is written, nothing
 * outside s[0, n) read. nb__zero_floats: the same with zeros. */
static inline void nb__copy_floats(float *restrict d, const float *restrict s, int64_t n) {
    if (n < 8) {
        for (int64_t q = 0; q < n; q++) d[q] = s[q];
    } else if (n < NB__VW) {
        const nb__v8f lo = *(const nb__v8f *)s, hi = *(const nb__v8f *)(s + n - 8);
        *(nb__v8f *)d = lo, *(nb__v8f *)(d + n - 8) = hi;
    } else {
        int64_t q = 0;
        for (; q + NB__VW <= n; q += NB__VW) *(nb__vw *)(d + q) = *(const nb__vw *)(s + q);
        if (q < n) *(nb__vw *)(d + n - NB__VW) = *(const nb__vw *)(s + n - NB__VW);
    }
}
static inline void nb__zero_floats(float *d, int64_t n) {
    if (n < 8) {
        for (int64_t q = 0; q < n; q++) d[q] = 0.0f;
    } else if (n < NB__VW) {
        *(nb__v8f *)d = (nb__v8f){0}, *(nb__v8f *)(d + n - 8) = (nb__v8f){0};
    } else {
        for (int64_t q = 0; q + NB__VW <= n; q += NB__VW) *(nb__vw *)(d + q) = (nb__vw){0};
        *(nb__vw *)(d + n - NB__VW) = (nb__vw){0};
    }
}
/* d[q] = s[2q] for q in [0, n), n >= 9 (a stride-2 run of a row): 8 at a time from two half
 * vectors; nothing past s[2(n - 1)] is read: the full steps stop one short, and the last 8
 * (overlapping) are the odd elements of the 16 that start one element earlier.
 * __builtin_shufflevector: GCC >= 12 and clang. */
static inline void nb__gather_even_f32(float *restrict d, const float *restrict s, int64_t n) {
    int64_t q = 0;
    for (; q + 8 < n; q += 8) {
        const nb__v8f lo = *(const nb__v8f *)(s + 2 * q), hi = *(const nb__v8f *)(s + 2 * q + 8);
        *(nb__v8f *)(d + q) = __builtin_shufflevector(lo, hi, 0, 2, 4, 6, 8, 10, 12, 14);
    }
    q = n - 8;
    const nb__v8f lo = *(const nb__v8f *)(s + 2 * q - 1), hi = *(const nb__v8f *)(s + 2 * q + 7);
    *(nb__v8f *)(d + q) = __builtin_shufflevector(lo, hi, 1, 3, 5, 7, 9, 11, 13, 15);
}
/* Winograd F(2x2, 3x3) (src/ops/conv_wino.c): the three parts of a conv with a 3x3 window,
 * stride 1, no dilation, padding 0-2, f32, one group; false where the library was built without
 * AVX2+FMA. Same contract as nb__conv_direct (BW: a = x, w = gy; gw written whole). */
bool nb__conv_wino_ok(nb_dtype dt, int64_t G, nb_window2d win);
size_t nb__conv_wino_scratch(nb_conv_part part, const nb_tensor *a, const nb_tensor *w, nb_window2d win,
                             const nb_tensor *out, int threads);
/* Returns false when an output of any part came out NaN (the transforms
 * make inf - inf of an inf or near-FLT_MAX input): the caller computes that part directly. */
bool nb__conv_wino(nb_conv_part part, const nb_tensor *a, const nb_tensor *w, const nb_tensor *bias, nb_window2d win,
                   nb_tensor *out, int threads, char *scratch);
/* Output columns q whose tap reads inside the image row: iw = q*sw + off in [0, W), with
 * off = j*dw - pw; [*q0, *q1) within [0, OW). Loops over [q0, q1) need no bounds test. */
static inline void nb__tap_range(int64_t off, int64_t sw, int64_t W, int64_t OW, int64_t *q0, int64_t *q1) {
    int64_t lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
    int64_t hi = W - 1 - off >= 0 ? (W - 1 - off) / sw + 1 : 0;
    if (hi > OW) hi = OW;
    if (lo > hi) lo = hi;
    *q0 = lo, *q1 = hi;
}
/* C = A B + beta C through BLIS (strides in elements), with matmul's rule for BLIS's paths and
 * threads, so the bits do not depend on the thread count; m or n 0: nothing. */
void nb__gemm(nb_dtype dt, int64_t m, int64_t n, int64_t k, const void *a, int64_t rsa, int64_t csa, const void *b,
              int64_t rsb, int64_t csb, double beta, void *c, int64_t rsc, int64_t csc);

/* The length (1 to 4) of the well-formed UTF-8 sequence at s, or 0 if the bytes there are not one
 * (a stray continuation byte, an overlong form, a surrogate, past U+10FFFF, cut short). Writers
 * of text formats (SVG, DOT) put U+FFFD in place of such bytes, so their files stay valid. */
static inline int nb__utf8_len(const unsigned char *s) {
    const unsigned char c = s[0];
#define NB__CONT(b) ((b) >= 0x80 && (b) <= 0xBF)
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return NB__CONT(s[1]) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        const unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        return s[1] >= lo && s[1] <= hi && NB__CONT(s[2]) ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        const unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        return s[1] >= lo && s[1] <= hi && NB__CONT(s[2]) && NB__CONT(s[3]) ? 4 : 0;
    }
    return 0;
#undef NB__CONT
}
#define NB__REPLACEMENT_CHAR "\xEF\xBF\xBD" /* U+FFFD */
/* Write s as DOT label text: quotes and backslashes escaped, newlines as \n, other control bytes
 * dropped, ill-formed UTF-8 as U+FFFD (src/graph/dot.c). */
void nb__dot_escaped(FILE *f, const char *s);

/* ---- automatic team size (src/graph/threads.c) ------------------------------------------ */
/* The tuner's state: step times at the current team size, and a trial of the other size
 * (1 or max) now and then. Pure: nb__tuner_step gets the clock and the step time. */
#define NB_TUNE_WINDOW 5          /* steps at the current size a trial is compared against */
#define NB_TUNE_TRIES 3           /* steps at the other size per trial */
typedef struct {
    int cur, alt, max;            /* team sizes: in use, on trial, all cores */
    double window[NB_TUNE_WINDOW]; /* the last step times at cur (a ring) */
    int nwindow;                  /* steps recorded at cur (the ring holds the last NB_TUNE_WINDOW) */
    double tries[NB_TUNE_TRIES];  /* step times of the current trial */
    int ntries, skip;
    bool exploring, aborted;      /* aborted: the trial step was cut short (nb__threads_deadline) */
    double base;                  /* median step at cur when the trial began */
    double cost, last_cost;       /* seconds the trial lost against base; the last trial's */
    double last_trial_end;
    double deadline;              /* > 0: the next step may last this long at alt, then back to cur */
    double best;                  /* best median step at cur since the last switch */
    double wait, next;            /* seconds between trials (doubling while cur wins); next trial */
    int64_t explorations, switches;
} nb_thread_tuner;
/* start: the size to begin with (1, or anything else for max). */
void nb__tuner_init(nb_thread_tuner *t, int max, int start);
/* Record one step of dt seconds ending at `now`; returns the team size for the next step. */
int nb__tuner_step(nb_thread_tuner *t, double now, double dt);
/* Called by nb_ctx_reset: one step of ctx ended (*last: when its previous step ended). */
void nb__threads_step(const nb_ctx *ctx, double *last);
/* Called by nb_ctx_free. */
void nb__threads_forget(const nb_ctx *ctx);
/* Every op checks (nb__finish): a trial of more threads past its deadline ends mid-step. */
extern _Atomic int64_t nb__tune_deadline_ns;
void nb__threads_deadline(void);
/* ... and takes up the process-wide team size if another thread changed it (> 0: chosen) */
extern _Atomic int nb__team;
void nb__team_sync(void);
static inline void nb__threads_check(void) {
    if (__builtin_expect(atomic_load_explicit(&nb__tune_deadline_ns, memory_order_relaxed) != 0, 0))
        nb__threads_deadline();
    const int team = atomic_load_explicit(&nb__team, memory_order_relaxed);
    if (__builtin_expect(team > 0 && team != omp_get_max_threads(), 0)) nb__team_sync();
}

/* ---- in-place writes --------------------------------------------------------------------- */
/* The write counter of t's elements, shared by a tensor and its views (torch's version counter):
 * every API that changes elements in place bumps it; a node notes its inputs' counters, and
 * backward refuses a node whose rule may read an input changed since (the gradient would mix
 * old and new values; src/graph/autograd.c). */
static inline uint32_t *nb__version(nb_tensor *t) { return t->version_ ? t->version_ : &t->vown_; }
static inline void nb__bump(nb_tensor *t) {
    if (t) ++*nb__version(t);
}

/* ---- recording ------------------------------------------------------------------------ */
/* Finish an op: anomaly check of out, then record a node when needed. Returns out (or NULL
 * after an anomaly). *node_out (may be NULL) receives the node or NULL. */
nb_tensor *nb__finish(nb_ctx *ctx, const nb_op *op, nb_tensor *out, int n_in, nb_tensor *const *in,
                      nb_node **node_out);
/* True if any element is NaN/Inf. */
bool nb__has_nonfinite(const nb_tensor *t);

/* ---- reductions ------------------------------------------------------------------------- */
typedef enum { NB_R_SUM, NB_R_MAX, NB_R_MIN } nb_reduce_kind;
/* Parse axes into a mask (bit per axis); naxes 0 = all. False (error set) on bad axis. */
bool nb__axes_mask(nb_ctx *ctx, const char *op, const nb_tensor *x, int naxes, const int *axes, unsigned *mask);
/* Shape after reducing the masked axes. */
void nb__reduced_shape(const nb_tensor *x, unsigned mask, bool keepdim, int *ndim, int64_t *shape);

/* Apply a function along one axis: for each line of x along axis, fn(len, xline, xstride,
 * outline, outstride, arg), out has x's shape. Parallel over lines when large. */
typedef void (*nb_line_fn)(int64_t len, const char *x, int64_t xs, char *o, int64_t os, const void *arg);
void nb__lines(const nb_tensor *x, nb_tensor *out, int axis, nb_line_fn fn, const void *arg);

#endif
