/* nabla/tensor.h — dtypes, errors, tensors and the counter-based RNG.
 *
 * Ownership in three sentences:
 *   1. A tensor made with an nb_ctx (every op output, nb_zeros(ctx, ...), ...) lives in that
 *      context's arena and dies at nb_ctx_reset / nb_ctx_free: never free it yourself.
 *   2. A tensor made without a context (nb_tensor_new, nb_tensor_from, nb_params_add) is
 *      long-lived, survives every reset, and is yours to release with nb_tensor_free
 *      (or nb_params_free for parameters).
 *   3. A step tensor may point into a long-lived one (views, op inputs), never the other way
 *      round, so long-lived tensors must outlive the steps that use them.
 *
 * Errors: functions that make tensors return NULL on failure; functions that do not return an
 * nb_status. The message (naming the function and the shapes) is kept per context
 * (nb_ctx_error) and, for every failure, in a thread-local slot (nb_last_error). An op given a
 * NULL input returns NULL and keeps the first error, so a whole expression is checked once.
 */
#ifndef NABLA_TENSOR_H
#define NABLA_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NB_MAX_DIMS 8

typedef enum { NB_F32 = 0, NB_F64 = 1, NB_I64 = 2 } nb_dtype;

typedef enum {
    NB_OK = 0,
    NB_ERR_NULL,        /* a required argument was NULL (or an input op already failed) */
    NB_ERR_SHAPE,       /* shapes incompatible, bad reshape, too many dims */
    NB_ERR_DTYPE,       /* wrong or mixed dtypes */
    NB_ERR_AXIS,        /* axis out of range */
    NB_ERR_INDEX,       /* index / class label out of range */
    NB_ERR_VALUE,       /* bad scalar argument (negative lr, p outside [0,1), ...) */
    NB_ERR_NOMEM,       /* malloc failed or the arena limit was reached */
    NB_ERR_IO,          /* a file could not be opened / read / written */
    NB_ERR_FORMAT,      /* a file is malformed, truncated or hostile */
    NB_ERR_NUMERIC,     /* anomaly mode found NaN/Inf; gradcheck failed */
    NB_ERR_STATE,       /* call not valid in the current state (e.g. backward twice on a freed graph) */
    NB_ERR_UNSUPPORTED, /* feature not available for this input (e.g. second derivative of a once-differentiable op) */
} nb_status;

typedef struct nb_ctx nb_ctx;
typedef struct nb_node nb_node;
typedef struct nb_hook nb_hook;

/* A strided view of elements. Fields are public for reading; change them only through the API.
 * data points at element (0,...,0); strides are in elements and may be 0 (broadcast). */
typedef struct nb_tensor {
    nb_dtype dtype;
    int ndim;                      /* 0 for a scalar */
    int64_t shape[NB_MAX_DIMS];
    int64_t stride[NB_MAX_DIMS];
    int64_t numel;
    void *data;
    bool requires_grad;            /* set with nb_requires_grad */
    bool persistent;               /* long-lived (nb_tensor_new) rather than arena-owned */
    struct nb_tensor *grad;        /* leaves: gradient accumulated by nb_backward */
    nb_node *node;                 /* the op that produced it, NULL for leaves / detached */
    nb_hook *hooks;
    const char *name;              /* optional, shown in errors and DOT export */
    /* engine-private: a walk's scratch (gradients under accumulation, marks) lives in the
     * context, so contexts on different threads may walk through the same parameters */
    void *alloc_;                  /* malloc'd block of a persistent tensor (NULL for views) */
    uint64_t gen_;                 /* step tensors: the context generation that made it (0 otherwise) */
    struct nb_block *block_;       /* data in the backward pool (src/graph/pool.c), NULL otherwise */
    bool grad_zero_;               /* leaves: .grad holds zeros from zero_grad, nothing added since, so
                                      the first gradient may be written into it instead of added */
    uint32_t vown_;                /* in-place writes to this tensor's elements (nb_set, nb_fill, an
                                      optimizer step, a load, ...): a node notes it, backward checks it */
    uint32_t *version_;            /* views: the counter of the tensor they view (NULL: vown_) */
} nb_tensor;

/* ---- errors -------------------------------------------------------------------------- */
nb_status nb_last_status(void);        /* this thread's most recent failure (NB_OK if none) */
const char *nb_last_error(void);       /* its message, "" if none; valid until the next failure */
void nb_clear_last_error(void);
const char *nb_status_name(nb_status s);
/* Set the thread-local error (used by nabla's own modules and by custom ops). Returns s. */
nb_status nb_set_error(nb_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- dtypes and shapes --------------------------------------------------------------- */
size_t nb_dtype_size(nb_dtype dt); /* 4 or 8; 0 for a value that is no nb_dtype */
const char *nb_dtype_name(nb_dtype dt);
/* Writes "(3,4)" into buf (always NUL-terminated) and returns buf. */
char *nb_shape_str(const nb_tensor *t, char *buf, size_t len);
bool nb_is_contiguous(const nb_tensor *t);
bool nb_same_shape(const nb_tensor *a, const nb_tensor *b);

/* Shape literal helper: nb_zeros(ctx, NB_F32, NB_SHAPE(3, 4)). */
#define NB_SHAPE(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__}

/* ---- long-lived tensors (caller owns; release with nb_tensor_free) ------------------- */
nb_tensor *nb_tensor_new(nb_dtype dt, int ndim, const int64_t *shape);            /* zeros */
nb_tensor *nb_tensor_from(nb_dtype dt, int ndim, const int64_t *shape, const void *data); /* copies */
nb_tensor *nb_tensor_clone(const nb_tensor *src);  /* contiguous long-lived copy of any tensor */
void nb_tensor_free(nb_tensor *t);                 /* NULL is fine; frees its .grad too */

/* ---- element access (logical row-major order, any strides) ------------------------------ */
double nb_get(const nb_tensor *t, int64_t flat_index);          /* NAN if out of range */
nb_status nb_set(nb_tensor *t, int64_t flat_index, double v);
double nb_item(const nb_tensor *t);                              /* the one element of a 1-element tensor */
/* Copy all elements, converted to dst_dtype, contiguous row-major, into dst. */
nb_status nb_copy_out(const nb_tensor *t, nb_dtype dst_dtype, void *dst);
/* Copy values of src (broadcast to dst's shape, any dtype) into dst's memory. Not recorded. */
nb_status nb_copy_into(nb_tensor *dst, const nb_tensor *src);
/* Fill every element of t with v. Not recorded. */
nb_status nb_fill(nb_tensor *t, double v);
void nb_print(FILE *f, const nb_tensor *t);                      /* human-readable dump */

/* ---- counter-based random numbers (Philox-4x32-10) ------------------------------------ */
/* Element i of a draw uses counter (offset + i) only, so values never depend on thread count;
 * a generator is two integers and can be checkpointed by copying it. */
typedef struct { uint64_t seed; uint64_t offset; } nb_rng;
nb_rng nb_rng_new(uint64_t seed);
/* An independent generator for stream k of a seed (e.g. one per epoch): its key mixes seed and
 * k (splitmix64), so streams of nearby seeds and indices do not overlap. */
nb_rng nb_rng_stream(uint64_t seed, uint64_t k);
/* Fill t (any float dtype, any strides) and advance rng->offset by t->numel. */
nb_status nb_rng_uniform(nb_rng *rng, nb_tensor *t, double lo, double hi);
nb_status nb_rng_normal(nb_rng *rng, nb_tensor *t, double mean, double std);
/* A uniformly random permutation of 0..n-1 into out (Fisher-Yates); advances rng->offset by n. */
nb_status nb_rng_permutation(nb_rng *rng, int64_t n, int64_t *out);
/* Raw access: 4 uniform 32-bit words for (key, counter). */
void nb_philox(uint64_t key, uint64_t counter, uint32_t out[4]);
/* Uniform double in [0,1) for (key, index). */
double nb_philox_uniform(uint64_t key, uint64_t index);

/* ---- threads ------------------------------------------------------------------------ */
/* Threads of nabla's kernels and BLIS. Results are bit-identical for any count.
 * Default (automatic): all cores OpenMP may use, but the team size is tuned by measurement
 * at every nb_ctx_reset of the first context that resets (one training step): now and then a
 * few steps run with the other size (1 thread, or all cores) and the faster one is kept. On a
 * machine shared with other jobs one thread can be 10x faster than two (each fork/join waits
 * for a descheduled thread); on a quiet one the trials cost well under 1%.
 * nb_set_num_threads(n > 0) or OMP_NUM_THREADS fixes the count; n <= 0 returns to automatic.
 * The count is the whole process's: every thread calling nabla takes it up at its next op. */
void nb_set_num_threads(int n);
int nb_get_num_threads(void); /* the count in use now */
bool nb_threads_auto(void);   /* true while the count is automatic */
/* Name of the BLIS kernel set in use ("skx", "haswell", "zen3", "generic", ...): BLIS_ARCH_TYPE's
 * if set, else BLIS's own choice where Debian's BLIS 0.9 knows the CPU (zen3 on a Zen 4), else
 * nabla's (skx with AVX-512, haswell with AVX2) instead of BLIS's generic reference kernels. */
const char *nb_blis_kernels(void);

#ifdef __cplusplus
}
#endif
#endif
