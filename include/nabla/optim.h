/* nabla/optim.h — optimizers, learning-rate schedules, gradient clipping.
 *
 * An optimizer is a small table (nb_optim_def): a name, how many state slots it keeps per
 * parameter element, default hyperparameters, a validate function and ONE update function over
 * a contiguous range of elements (plus, optionally, the same in double for F64 parameters).
 * The library owns the loop: it walks the parameters of an nb_params in fixed blocks of
 * NB_OPTIM_BLOCK elements, spreads the blocks over OpenMP threads and applies the
 * per-parameter decay flags, so a user's optimizer is parallel by construction
 * and gives bit-identical results for any thread count (each block always runs the same code on
 * the same elements).
 *
 *     nb_hparams hp = nb_adam.defaults;  hp.lr = 3e-4;
 *     nb_optim *opt = nb_optim_new(&nb_adam, ps, &hp);    // after every nb_params_add
 *     for (...) { nb_params_zero_grad(ps); ...; nb_backward(ctx, loss, NULL); nb_optim_step(opt); }
 *     nb_optim_free(opt);
 *
 * Formulas follow torch.optim (1.13) exactly, with one deliberate difference: weight_decay only
 * applies to parameters whose ps->decay[i] flag is set (default: ndim >= 2, so biases and norm
 * gains are not decayed). Set every flag to true to reproduce PyTorch's default param group.
 *
 * A frozen parameter (nb_requires_grad(p, false): no gradient, as torch's grad None) is skipped:
 * no weight decay, no momentum or moment update, its value unchanged. The step count is the
 * optimizer's, not per parameter: a parameter unfrozen later continues at the current step
 * (torch counts its steps from the unfreezing).
 *
 * F64 parameters (nb_params_new_dtype(NB_F64)) keep F64 state and run the definition's
 * update_f64, computed entirely in double (as torch.optim on float64 parameters). Every built-in
 * has one; a user definition without update_f64 refuses F64 parameters with NB_ERR_DTYPE.
 */
#ifndef NABLA_OPTIM_H
#define NABLA_OPTIM_H

#include "graph.h"
#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NB_OPTIM_MAX_SLOTS 4
#define NB_OPTIM_NAME_MAX 255 /* bytes of nb_optim_def.name (checkpoints store it) */
#define NB_OPTIM_BLOCK 8192 /* elements per work item; fixed so results never depend on threads */

/* Hyperparameters of every built-in optimizer (each reads the fields it needs). */
typedef struct nb_hparams {
    double lr;            /* learning rate, >= 0 */
    double weight_decay;  /* >= 0. Coupled (L2 added to the gradient: g += wd*w) in every
                             optimizer except AdamW, where it is decoupled (w -= lr*wd*w) */
    double momentum;      /* SGD / RMSprop momentum, >= 0 */
    double dampening;     /* SGD, in [0, 1] */
    bool nesterov;        /* SGD: needs momentum > 0 and dampening = 0 */
    double beta1, beta2;  /* Adam/AdamW moment decays, in [0, 1) */
    double eps;           /* > 0: added to denominators */
    bool amsgrad;         /* Adam/AdamW: keep the running max of the second moment */
    double alpha;         /* RMSprop smoothing constant, in [0, 1) */
    bool centered;        /* RMSprop: divide by the estimated variance instead of the raw second moment */
    double rho;           /* Adadelta running-average coefficient, in [0, 1] */
    double lr_decay;      /* Adagrad: lr_t = lr / (1 + (t-1)*lr_decay), >= 0 */
    double initial_accumulator_value; /* Adagrad, >= 0 */
    double user[4];       /* free for user-defined optimizers */
} nb_hparams;

/* Update n contiguous elements in place: w (values), g (gradients, read-only), state[k] the
 * k-th state slot of the same elements (zero before the first step), step = 1 on the first
 * call (the count of steps including this one). hp is the optimizer's hyperparameters, with
 * weight_decay already set to 0 for parameters that opt out. It must treat every element
 * independently (it is called on arbitrary blocks, from several threads at once). */
typedef void (*nb_update_fn)(float *w, const float *g, float *const *state, int64_t n, const nb_hparams *hp,
                             int64_t step);
/* The same for F64 parameters and state. */
typedef void (*nb_update_f64_fn)(double *w, const double *g, double *const *state, int64_t n, const nb_hparams *hp,
                                 int64_t step);

typedef struct nb_optim_def {
    const char *name;                             /* required, 1..NB_OPTIM_NAME_MAX bytes */
    int nslots;                                   /* state slots per element, <= NB_OPTIM_MAX_SLOTS */
    int (*slots_for)(const nb_hparams *hp);       /* optional: slots actually used with these options */
    nb_hparams defaults;
    /* Optional: check the optimizer-specific hyperparameters; on a bad one return
     * nb_set_error(NB_ERR_VALUE, "%s: ...", def->name, ...). lr and weight_decay are checked by
     * the library. */
    nb_status (*validate)(const struct nb_optim_def *def, const nb_hparams *hp);
    nb_update_fn update;         /* F32 parameters */
    nb_update_f64_fn update_f64; /* optional: F64 parameters (NULL: this optimizer is F32 only) */
} nb_optim_def;

/* Built-ins, with PyTorch's defaults:
 *   nb_sgd, nb_gd  lr 1e-2*, momentum 0, dampening 0, nesterov off, weight_decay 0.
 *                  (*torch.optim.SGD has no default lr; 0.01 is Keras's.) Full-batch gradient descent is SGD
 *                  whose one batch is the whole data set; nb_gd is the same table under that name.
 *                  Update (torch): d = g + wd*w; with momentum b = d on step 1, then
 *                  b = momentum*b + (1-dampening)*d; d = nesterov ? d + momentum*b : b; w -= lr*d.
 *   nb_momentum    SGD with momentum 0.9 (classical / heavy-ball), lr 1e-2.
 *   nb_nesterov    SGD with momentum 0.9 and nesterov on, lr 1e-2.
 *   nb_adagrad     lr 1e-2, lr_decay 0, weight_decay 0, initial_accumulator_value 0, eps 1e-10.
 *   nb_rmsprop     lr 1e-2, alpha 0.99, eps 1e-8, weight_decay 0, momentum 0, centered off.
 *   nb_adam        lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0, amsgrad off; bias-corrected.
 *   nb_adamw       as Adam but weight_decay 1e-2, decoupled: w *= 1 - lr*wd before the Adam step.
 *   nb_adadelta    lr 1.0, rho 0.9, eps 1e-6, weight_decay 0.
 *
 * Why AdamW differs from an L2 term under Adam: an L2 penalty (nb_l2_penalty, or Adam's own
 * weight_decay) adds wd*w to the gradient, which then goes through Adam's per-element scaling
 * m/sqrt(v): weights with large historical gradients are barely decayed, weights with small ones
 * strongly, and the decay also pollutes the moment estimates. AdamW shrinks every weight by the
 * same factor (1 - lr*wd) outside the adaptive update, which is true weight decay
 * (Loshchilov & Hutter, 2019); with plain SGD the two coincide (up to the lr scaling of wd). */
extern const nb_optim_def nb_sgd, nb_gd, nb_momentum, nb_nesterov, nb_adagrad, nb_rmsprop, nb_adam, nb_adamw,
    nb_adadelta;

/* An optimizer bound to one nb_params. Fields are public so a checkpoint can save and restore
 * everything bit for bit: def (by name), hp, step and the state slots. */
typedef struct nb_optim {
    const nb_optim_def *def;
    nb_params *ps;
    nb_hparams hp;      /* may be changed between steps (e.g. hp.lr from a schedule); checked each step */
    int64_t step;       /* steps taken so far (the update sees step + 1) */
    int nslots;         /* state slots in use */
    union {
        float *state[NB_OPTIM_MAX_SLOTS];      /* slot k: ps->total elements of ps->dtype laid out
                                                  like ps->flat, zero at start, 64-byte aligned;
                                                  NULL for k >= nslots */
        double *state_f64[NB_OPTIM_MAX_SLOTS]; /* the same pointers when ps->dtype is F64 */
    };
    /* private: the block table, built once */
    int64_t nblocks_, total_;
    int nparams_;
    int *block_param_;
    int64_t *block_start_;
    int64_t *block_len_;
    int *param_block0_;  /* param i's blocks: param_block0_[i] .. param_block0_[i + 1] - 1 */
    /* private: a step armed by nb_optim_step_on_ready */
    nb_ctx *armed_;
    bool *done_;         /* done_[i]: param i updated in the armed step */
    int last_done_;
    nb_status armed_error_;
} nb_optim;

/* Make an optimizer over every parameter of ps (add all parameters first). hp NULL = def's
 * defaults. State (of ps->dtype) is allocated once here. Returns NULL with NB_ERR_VALUE for bad
 * hyperparameters, NB_ERR_DTYPE for F64 parameters and a definition without update_f64,
 * NB_ERR_NULL / NB_ERR_NOMEM otherwise (nb_last_error says why). Free with nb_optim_free. */
nb_optim *nb_optim_new(const nb_optim_def *def, nb_params *ps, const nb_hparams *hp);
void nb_optim_free(nb_optim *opt);
/* Check hp for def (what nb_optim_new and every step do): NB_OK or NB_ERR_VALUE with a message
 * naming the optimizer and the field, e.g. "adam: beta2 = 1 outside [0, 1)". */
nb_status nb_optim_validate(const nb_optim_def *def, const nb_hparams *hp);
/* One update of every parameter from ps->grad_flat. Does not zero gradients. Errors (nothing is
 * changed): NB_ERR_VALUE (bad hp), NB_ERR_STATE (parameters were added after nb_optim_new).
 * After nb_optim_step_on_ready: finishes the armed step (see there). */
nb_status nb_optim_step(nb_optim *opt);
/* Step where the gradient is hot: arm the next step so that, during the next nb_backward on
 * ctx, each parameter of ps is updated as soon as its gradient is final (ctx's grad-ready
 * report), while that gradient is still in cache. nb_optim_step then finishes the step: it
 * updates the parameters the backward did not reach and disarms. Each parameter gets the same
 * update, on the same blocks, with the same step number and hyperparameters as in a separate
 * nb_optim_step, so the results are bit-identical to
 *     nb_backward(ctx, loss, NULL); nb_optim_step(opt);
 * Use:  nb_params_zero_grad(ps); forward...; nb_optim_step_on_ready(opt, ctx);
 *       nb_backward(ctx, loss, NULL); nb_optim_step(opt);
 * Set opt->hp (a schedule's lr) before arming: the armed step checks and uses it as it is then.
 * It holds only when the gradient that backward finalizes is the one the step would read:
 * one nb_backward per step (a second backward reaching an updated parameter makes
 * nb_optim_step fail with NB_ERR_STATE), no clipping or other change of .grad between
 * backward and step, and no op in the graph that reads a parameter's value behind the engine's
 * back (a detached alias of a parameter). The armed step owns ctx's grad-ready report until
 * nb_optim_step (or nb_optim_disarm): it fails with NB_ERR_STATE when ctx already has a
 * grad-ready callback (data-parallel training reduces gradients there, before any update).
 * Errors: those of nb_optim_step, NB_ERR_NULL, NB_ERR_STATE (already armed). */
nb_status nb_optim_step_on_ready(nb_optim *opt, nb_ctx *ctx);
/* Cancel an armed step without finishing it: parameters already updated stay updated, the
 * step counter stays advanced. For error paths (a failed backward). */
void nb_optim_disarm(nb_optim *opt);
/* The hyperparameters parameter i of ps is updated with: hp, with weight_decay 0 where
 * ps->decay[i] is off and lr times ps->lr_scale[i] (for loops that update parameters
 * themselves, as sharded data-parallel training does). */
nb_hparams nb_optim_param_hparams(const nb_params *ps, int i, const nb_hparams *hp);
/* Zero the state and the step counter (hyperparameters stay). */
void nb_optim_reset(nb_optim *opt);
/* State as one flat buffer of nb_optim_state_numel elements of opt->ps->dtype (slot 0, then
 * slot 1, ...), for checkpoints; opt->step and opt->hp are saved separately by the caller. */
int64_t nb_optim_state_numel(const nb_optim *opt);
void nb_optim_state_save(const nb_optim *opt, void *dst);
void nb_optim_state_load(nb_optim *opt, const void *src);

/* ---- learning-rate schedules: pure functions of the step / epoch -------------------------- */
/* On a bad argument they return NAN and set NB_ERR_VALUE; nb_optim_step then refuses the NaN lr,
 * so a bad schedule never reaches the weights. */
/* torch StepLR: base_lr * gamma^floor(epoch / step_size). step_size >= 1, gamma > 0. */
double nb_lr_step(double base_lr, int64_t epoch, int64_t step_size, double gamma);
/* torch ExponentialLR: base_lr * gamma^epoch. */
double nb_lr_exponential(double base_lr, int64_t epoch, double gamma);
/* Linear warmup then cosine decay (HuggingFace's get_cosine_schedule_with_warmup plus a floor):
 * step < warmup: base_lr * step / warmup; then min_lr + (base_lr - min_lr) * (1 + cos(pi * t)) / 2
 * with t = (step - warmup) / (total - warmup), and min_lr once step >= total.
 * 0 <= warmup <= total, total >= 1, 0 <= min_lr <= base_lr. */
double nb_lr_cosine_warmup(double base_lr, int64_t step, int64_t warmup, int64_t total, double min_lr);

typedef enum { NB_MODE_MIN = 0, NB_MODE_MAX = 1 } nb_mode;

/* torch ReduceLROnPlateau with threshold_mode 'rel': a metric is better when it beats best by
 * the relative threshold (min: m < best*(1-threshold)); after more than `patience` epochs
 * without improvement lr becomes max(lr*factor, min_lr), then `cooldown` epochs are ignored.
 * All fields public (checkpoint them by copying the struct). */
typedef struct nb_plateau {
    nb_mode mode;
    double factor;      /* in (0, 1); torch default 0.1 */
    int patience;       /* default 10 */
    double threshold;   /* default 1e-4 */
    int cooldown;       /* default 0 */
    double min_lr;      /* default 0 */
    /* state */
    double lr;          /* current learning rate */
    double best;        /* best metric so far (+inf / -inf at start) */
    int num_bad_epochs;
    int cooldown_counter;
    int64_t epoch;
} nb_plateau;
/* Fill *s with PyTorch's defaults and the starting lr. NB_ERR_VALUE for lr < 0. */
nb_status nb_plateau_init(nb_plateau *s, nb_mode mode, double lr);
/* Feed one epoch's metric; returns the learning rate to use next (NAN + NB_ERR_VALUE on bad
 * fields or a NaN metric). */
double nb_plateau_step(nb_plateau *s, double metric);

/* ---- gradient clipping over ps->grad_flat ------------------------------------------------ */
/* torch clip_grad_norm_: total L2 norm of all gradients; if it exceeds max_norm, scale them all
 * by max_norm / (norm + 1e-6); a NaN gradient makes the norm NaN and every gradient NaN, as in
 * torch. Returns the norm before clipping (thread-count independent), or
 * -1 with NB_ERR_VALUE / NB_ERR_NULL for max_norm <= 0 / NaN / NULL ps. */
double nb_clip_grad_norm(nb_params *ps, double max_norm);
/* The same with torch's norm_type: the p-norm of all gradients, (sum |g|^p)^(1/p) for p > 0, or
 * for norm_type = INFINITY the largest |g|. nb_clip_grad_norm is norm_type 2 (the same bits).
 * It reads the whole gradient: sharded training clips by the 2-norm only
 * (nb_dist_optim_clip_grad_norm).
 * -1 with NB_ERR_VALUE for norm_type <= 0 or NaN, besides nb_clip_grad_norm's errors. */
double nb_clip_grad_norm_p(nb_params *ps, double max_norm, double norm_type);
/* The pieces of nb_clip_grad_norm's norm, for code that holds only some of the gradient
 * (sharded training: nb_dist_optim_clip_grad_norm). Block b is grad_flat[b*NB_OPTIM_BLOCK,
 * min(total, (b+1)*NB_OPTIM_BLOCK)); out[b - b0] <- its sum of squares, in double, added in
 * element order, for b in [b0, b1). nb_clip_grad_norm's norm is the square root of these sums
 * over all blocks added in block order, so a caller that adds them the same way gets the same
 * bits. NB_ERR_VALUE for blocks outside [0, ceil(total / NB_OPTIM_BLOCK)). */
nb_status nb_grad_block_sq(const nb_params *ps, int64_t b0, int64_t b1, double *out);
/* Clamp every gradient element to [-clip, clip]. NB_ERR_VALUE for clip <= 0 or NaN. */
nb_status nb_clip_grad_value(nb_params *ps, double clip);

#ifdef __cplusplus
}
#endif
#endif
