/* Engine-private declarations shared by src/graph and src/ops. Not installed. */
#ifndef NABLA_INTERNAL_H
#define NABLA_INTERNAL_H

#define NB_INTERNAL 1
#include "nabla/nabla.h"

#include <math.h>
#include <string.h>

#ifdef NDEBUG
#define NB_ASSERT(c) ((void)0)
#else
#include <assert.h>
#define NB_ASSERT(c) assert(c)
#endif

/* Element-wise work smaller than this runs on one thread (thread start-up costs ~µs). */
#define NB_PAR_THRESHOLD 32768

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
    nb_tensor **touched;        /* tensors whose acc_ was set during a backward walk */
    int64_t ntouched, touched_cap;
    int64_t walk_id;
    bool grad_enabled, train, anomaly, in_backward;
    nb_rng rng;
    nb_grad_ready_fn on_ready;
    void *on_ready_user;
    nb_status status;
    char msg[512];
    uint64_t gen;               /* generation of the current step: stamped into step tensors, new at every reset */
};

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
/* Broadcast shape of a and b into out; false if incompatible. */
bool nb__broadcast_shape(int na, const int64_t *sa, int nb, const int64_t *sb, int *nout, int64_t *out);

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
void nb__iter_run_serial(const nb_iter *it, nb_row_fn fn, const void *arg);

/* ---- element-wise kernels --------------------------------------------------------------- */
typedef enum {
    NB_U_NEG, NB_U_EXP, NB_U_LOG, NB_U_SQRT, NB_U_ABS, NB_U_SIGN, NB_U_ERF, NB_U_RELU,
    NB_U_LEAKY, NB_U_ELU, NB_U_SIGMOID, NB_U_TANH, NB_U_GELU, NB_U_SOFTPLUS, NB_U_AFFINE,
    NB_U_POW, NB_U_CLAMP, NB_U_INRANGE, NB_U_COPY, NB_U_FILL, NB_U_GTZ
} nb_unary_kind;
typedef enum {
    NB_B_ADD, NB_B_SUB, NB_B_MUL, NB_B_DIV, NB_B_POW, NB_B_MAX, NB_B_MIN,
    NB_B_EQ, NB_B_NE, NB_B_LT, NB_B_LE, NB_B_GT, NB_B_GE,
    NB_B_TANH_GRAD,    /* g * (1 - y^2): tanh backward from its output y, one pass */
    NB_B_SIGMOID_GRAD  /* g * y * (1 - y) */
} nb_binary_kind;
/* out (contiguous or not, same dtype as x) = f(x) elementwise, x broadcast to out. */
void nb__unary_kernel(nb_unary_kind k, nb_tensor *out, const nb_tensor *x, double p0, double p1);
void nb__binary_kernel(nb_binary_kind k, nb_tensor *out, const nb_tensor *a, const nb_tensor *b);
/* Copy with dtype conversion, src broadcast to dst's shape. */
void nb__copy_kernel(nb_tensor *dst, const nb_tensor *src);
/* dst += src (same shape), not recorded. */
void nb__accumulate_kernel(nb_tensor *dst, const nb_tensor *src);

/* Call before the first BLIS call (picks BLIS's kernels on CPUs it does not know). */
void nb__blis_init(void);

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
