/* nabla/params.h — a model's parameters as one flat buffer (and their gradients as another).
 *
 * Each parameter is a long-lived tensor that views a slice of one contiguous buffer; its .grad
 * views the same slice of a second buffer. Zeroing gradients, clipping, an optimizer step, a
 * checkpoint or an early-stopping snapshot is then one loop or one memcpy. Add every parameter
 * before the first training step (adding may move the buffers).
 *
 * All parameters of one nb_params share one dtype, F32 (nb_params_new) or F64
 * (nb_params_new_dtype(NB_F64)): the flat buffers are then float or double (flat / flat_f64
 * name the same pointer). An F64 model (PyTorch's model.double()) trains with the same
 * optimizers and can be gradchecked end to end.
 *
 * Buffers are the other half of a model's state (PyTorch's register_buffer): long-lived tensors
 * that are not trained, such as batch norm's running statistics. ps only names them (it does not
 * own them), so that a checkpoint saves and restores them with the parameters and an evaluation
 * after a reload gives the same bits. nb_model registers its modules' buffers itself; with the
 * low-level layers, register them by hand:
 *   nb_params_add_buffer(ps, "bn1.running_mean", bn1.running_mean);
 */
#ifndef NABLA_PARAMS_H
#define NABLA_PARAMS_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nb_params {
    nb_dtype dtype;       /* NB_F32 or NB_F64, fixed at nb_params_new_dtype */
    int n;                /* number of parameters */
    nb_tensor **p;        /* p[i]: the parameter (requires grad), .grad views grad_flat */
    char **names;         /* names[i]: unique name ("fc1.weight") */
    bool *decay;          /* decay[i]: penalties and weight decay apply (default: ndim >= 2,
                             so biases and norm gains are excluded) */
    double *lr_scale;     /* lr_scale[i]: p[i] steps with the optimizer's lr times this (default
                             1; finite and >= 0, else the step fails with NB_ERR_VALUE). torch's
                             param groups with their own lr: lr_scale[i] = group lr / hp.lr (a
                             schedule that sets hp.lr then scales every group alike, as torch's
                             schedulers do); AdamW's decoupled decay uses the scaled lr too */
    int64_t *offset;      /* offset[i]: first element of p[i] in flat */
    int64_t total;        /* elements of flat and grad_flat: every parameter's, plus the padding
                             that starts each on a 64-byte boundary (the parameter count is
                             nb_params_numel) */
    union {
        float *flat;      /* all parameter values, 64-byte aligned (F32) */
        double *flat_f64; /* the same buffer when dtype is F64 */
    };
    union {
        float *grad_flat;      /* all gradients (F32) */
        double *grad_flat_f64; /* the same buffer when dtype is F64 */
    };
    int n_buffers;        /* number of buffers */
    nb_tensor **buffers;  /* buffers[i]: a long-lived tensor (any dtype), not owned */
    char **buffer_names;  /* buffer_names[i]: unique among parameters and buffers */
    int cap_;
    int64_t cap_elems_;
    int cap_buffers_;
} nb_params;

/* Empty F32 parameters. NULL (NB_ERR_NOMEM) on failure. */
nb_params *nb_params_new(void);
/* Empty parameters of dtype NB_F32 or NB_F64 (else NULL with NB_ERR_DTYPE). */
nb_params *nb_params_new_dtype(nb_dtype dtype);
void nb_params_free(nb_params *ps);
/* Add a zero-initialised parameter of ps->dtype (torch.nn.Parameter). name must be unique.
 * NULL on error. */
nb_tensor *nb_params_add(nb_params *ps, const char *name, int ndim, const int64_t *shape);
/* The same, asking for a dtype: NB_ERR_DTYPE naming the parameter if it is not ps->dtype (one
 * nb_params never mixes dtypes, so its buffers stay one array of one type). */
nb_tensor *nb_params_add_dtype(nb_params *ps, const char *name, nb_dtype dtype, int ndim, const int64_t *shape);
nb_tensor *nb_params_find(const nb_params *ps, const char *name);  /* NULL if absent */
/* Register a long-lived, contiguous tensor t as the buffer `name` (copied). ps refers to t
 * without owning it: t must outlive ps's use in checkpoints. Errors: NB_ERR_NULL, NB_ERR_VALUE
 * (a step tensor, a non-contiguous one, a name already taken by a parameter or buffer),
 * NB_ERR_NOMEM. */
nb_status nb_params_add_buffer(nb_params *ps, const char *name, nb_tensor *t);
nb_tensor *nb_params_find_buffer(const nb_params *ps, const char *name);  /* NULL if absent */
int nb_params_index(const nb_params *ps, const nb_tensor *p);      /* -1 if absent */
/* Zero every gradient (one memset), marked as zero as nb_zero_grad does (see there). */
void nb_params_zero_grad(nb_params *ps);
/* Bytes of one element of ps (4 for F32, 8 for F64). */
size_t nb_params_elem_size(const nb_params *ps);
/* The number of parameters' elements (torch: sum(p.numel() for p in parameters())), without the
 * alignment padding that ps->total counts; 0 for NULL. */
int64_t nb_params_numel(const nb_params *ps);
/* Copy all values to/from a buffer of ps->total elements of ps->dtype (snapshots,
 * restore-best-weights): floats for F32, doubles for F64. */
void nb_params_save_to(const nb_params *ps, void *dst);
void nb_params_load_from(nb_params *ps, const void *src);
/* The same for the buffers (running statistics): their bytes back to back, in registration order. */
size_t nb_params_buffer_bytes(const nb_params *ps);
void nb_params_buffers_save_to(const nb_params *ps, void *dst);
void nb_params_buffers_load_from(nb_params *ps, const void *src);

#ifdef __cplusplus
}
#endif
#endif
