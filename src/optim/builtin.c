/* The built-in optimizers: one update function over a contiguous block each, formulas as in
 * torch.optim 1.13 (single-tensor path). Arithmetic is in float like PyTorch's F32 parameters;
 * per-step scalars (bias corrections, decayed lr) in double. Each has an f64 twin for F64
 * parameters, all in double and in torch's order of operations (as torch.optim on float64). */
#include "../internal.h"

static nb_status in_unit(const char *opt, const char *field, double v, bool include_one) {
    if (v >= 0.0 && (include_one ? v <= 1.0 : v < 1.0)) return NB_OK;
    return nb_set_error(NB_ERR_VALUE, "%s: %s = %g outside [0, 1%s", opt, field, v, include_one ? "]" : ")");
}
static nb_status positive(const char *opt, const char *field, double v) {
    if (v > 0.0 && isfinite(v)) return NB_OK;
    return nb_set_error(NB_ERR_VALUE, "%s: %s = %g must be finite and > 0", opt, field, v);
}
static nb_status nonneg(const char *opt, const char *field, double v) {
    if (v >= 0.0 && isfinite(v)) return NB_OK;
    return nb_set_error(NB_ERR_VALUE, "%s: %s = %g must be finite and >= 0", opt, field, v);
}
#define CHECK(e)                                                                                   \
    do {                                                                                           \
        nb_status s_ = (e);                                                                        \
        if (s_ != NB_OK) return s_;                                                                \
    } while (0)

/* ---- SGD (plain, momentum, Nesterov) --------------------------------------------------------- */
static void sgd_update(float *restrict w, const float *restrict g, float *const *state, int64_t n,
                       const nb_hparams *hp, int64_t step) {
    const float lr = (float)hp->lr, wd = (float)hp->weight_decay, mu = (float)hp->momentum,
                keep = (float)(1.0 - hp->dampening);
    if (hp->momentum == 0.0) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) w[i] -= lr * (g[i] + wd * w[i]);
        return;
    }
    float *restrict buf = state[0];
    const bool first = step == 1, nesterov = hp->nesterov;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float d = g[i] + wd * w[i];
        float b = first ? d : mu * buf[i] + keep * d;
        buf[i] = b;
        w[i] -= lr * (nesterov ? d + mu * b : b);
    }
}
static void sgd_update_f64(double *restrict w, const double *restrict g, double *const *state, int64_t n,
                           const nb_hparams *hp, int64_t step) {
    const double lr = hp->lr, wd = hp->weight_decay, mu = hp->momentum, keep = 1.0 - hp->dampening;
    if (hp->momentum == 0.0) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) w[i] -= lr * (g[i] + wd * w[i]);
        return;
    }
    double *restrict buf = state[0];
    const bool first = step == 1, nesterov = hp->nesterov;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        double d = g[i] + wd * w[i];
        double b = first ? d : mu * buf[i] + keep * d;
        buf[i] = b;
        w[i] -= lr * (nesterov ? d + mu * b : b);
    }
}
static int sgd_slots(const nb_hparams *hp) { return hp->momentum != 0.0; }
static nb_status sgd_validate(const nb_optim_def *def, const nb_hparams *hp) {
    const char *name = def->name;
    CHECK(nonneg(name, "momentum", hp->momentum));
    CHECK(in_unit(name, "dampening", hp->dampening, true));
    if (hp->nesterov && (hp->momentum <= 0.0 || hp->dampening != 0.0))
        return nb_set_error(NB_ERR_VALUE, "%s: nesterov needs momentum > 0 and dampening = 0 (got momentum %g, dampening %g)",
                            name, hp->momentum, hp->dampening);
    return NB_OK;
}

#define SGD_DEF(NAME, LR, MU, NEST)                                                                \
    {.name = NAME, .nslots = 1, .slots_for = sgd_slots,                                            \
     .defaults = {.lr = LR, .momentum = MU, .nesterov = NEST}, .validate = sgd_validate,          \
     .update = sgd_update, .update_f64 = sgd_update_f64}
const nb_optim_def nb_sgd = SGD_DEF("sgd", 1e-2, 0.0, false);
const nb_optim_def nb_gd = SGD_DEF("gd", 1e-2, 0.0, false);
const nb_optim_def nb_momentum = SGD_DEF("momentum", 1e-2, 0.9, false);
const nb_optim_def nb_nesterov = SGD_DEF("nesterov", 1e-2, 0.9, true);

/* ---- Adagrad ------------------------------------------------------------------------------- */
static void adagrad_update(float *restrict w, const float *restrict g, float *const *state, int64_t n,
                           const nb_hparams *hp, int64_t step) {
    const float clr = (float)(hp->lr / (1.0 + (double)(step - 1) * hp->lr_decay)), wd = (float)hp->weight_decay,
                eps = (float)hp->eps, init = (float)hp->initial_accumulator_value;
    const bool first = step == 1;
    float *restrict sum = state[0];
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float d = g[i] + wd * w[i];
        float s = (first ? init : sum[i]) + d * d;
        sum[i] = s;
        w[i] -= clr * d / (sqrtf(s) + eps);
    }
}
static void adagrad_update_f64(double *restrict w, const double *restrict g, double *const *state, int64_t n,
                               const nb_hparams *hp, int64_t step) {
    const double clr = hp->lr / (1.0 + (double)(step - 1) * hp->lr_decay), wd = hp->weight_decay, eps = hp->eps,
                 init = hp->initial_accumulator_value;
    const bool first = step == 1;
    double *restrict sum = state[0];
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        double d = g[i] + wd * w[i];
        double s = (first ? init : sum[i]) + d * d;
        sum[i] = s;
        w[i] -= clr * d / (sqrt(s) + eps);
    }
}
static nb_status adagrad_validate(const nb_optim_def *def, const nb_hparams *hp) {
    (void)def;
    CHECK(nonneg("adagrad", "lr_decay", hp->lr_decay));
    CHECK(nonneg("adagrad", "initial_accumulator_value", hp->initial_accumulator_value));
    return positive("adagrad", "eps", hp->eps);
}
const nb_optim_def nb_adagrad = {.name = "adagrad", .nslots = 1,
                                 .defaults = {.lr = 1e-2, .eps = 1e-10}, .validate = adagrad_validate,
                                 .update = adagrad_update, .update_f64 = adagrad_update_f64};

/* ---- RMSprop: slot 0 square average, 1 momentum buffer, 2 gradient average (centered) -------- */
static void rmsprop_update(float *restrict w, const float *restrict g, float *const *state, int64_t n,
                           const nb_hparams *hp, int64_t step) {
    (void)step;
    const float lr = (float)hp->lr, wd = (float)hp->weight_decay, a = (float)hp->alpha, a1 = (float)(1.0 - hp->alpha),
                eps = (float)hp->eps, mu = (float)hp->momentum;
    const bool centered = hp->centered, use_mu = hp->momentum > 0.0;
    float *restrict sq = state[0], *restrict buf = state[1], *restrict gavg = state[2];
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float d = g[i] + wd * w[i];
        float s = a * sq[i] + a1 * d * d;
        sq[i] = s;
        if (centered) {
            float m = a * gavg[i] + a1 * d;
            gavg[i] = m;
            s -= m * m;
        }
        float u = d / (sqrtf(s) + eps);
        if (use_mu) {
            u += mu * buf[i];
            buf[i] = u;
        }
        w[i] -= lr * u;
    }
}
static void rmsprop_update_f64(double *restrict w, const double *restrict g, double *const *state, int64_t n,
                               const nb_hparams *hp, int64_t step) {
    (void)step;
    const double lr = hp->lr, wd = hp->weight_decay, a = hp->alpha, a1 = 1.0 - hp->alpha, eps = hp->eps,
                 mu = hp->momentum;
    const bool centered = hp->centered, use_mu = hp->momentum > 0.0;
    double *restrict sq = state[0], *restrict buf = state[1], *restrict gavg = state[2];
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        double d = g[i] + wd * w[i];
        double s = a * sq[i] + a1 * d * d;
        sq[i] = s;
        if (centered) {
            double m = a * gavg[i] + a1 * d;
            gavg[i] = m;
            s -= m * m;
        }
        double u = d / (sqrt(s) + eps);
        if (use_mu) {
            u += mu * buf[i];
            buf[i] = u;
        }
        w[i] -= lr * u;
    }
}
static int rmsprop_slots(const nb_hparams *hp) { return hp->centered ? 3 : hp->momentum > 0.0 ? 2 : 1; }
static nb_status rmsprop_validate(const nb_optim_def *def, const nb_hparams *hp) {
    (void)def;
    CHECK(in_unit("rmsprop", "alpha", hp->alpha, false));
    CHECK(nonneg("rmsprop", "momentum", hp->momentum));
    return positive("rmsprop", "eps", hp->eps);
}
const nb_optim_def nb_rmsprop = {.name = "rmsprop", .nslots = 3, .slots_for = rmsprop_slots,
                                 .defaults = {.lr = 1e-2, .alpha = 0.99, .eps = 1e-8},
                                 .validate = rmsprop_validate, .update = rmsprop_update,
                                 .update_f64 = rmsprop_update_f64};

/* ---- Adam / AdamW: slot 0 first moment, 1 second moment, 2 running max (AMSGrad) ------------- */
/* torch's update w -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps), with bc_k = 1 - beta_k^step,
 * multiplied through by sqrt(bc2): w -= a m / (sqrt(v) + eps'), a = lr sqrt(bc2) / bc1 and
 * eps' = eps sqrt(bc2) (Kingma & Ba's "more efficient order"). The same value, one division
 * per element less; the bias corrections are folded in double once per step. */
/* One pass over the elements; decay and ams are constants at each call below, so the common
 * case (no weight decay, no AMSGrad) runs without the decay's multiply-adds (which are exact
 * no-ops there: w * 1 and g + 0 * w) or a branch, and vectorizes. */
static inline __attribute__((always_inline)) void adam_loop(float *restrict w, const float *restrict g,
                                                            float *const *state, int64_t n, const nb_hparams *hp,
                                                            int64_t step, bool decoupled, bool decay, bool ams) {
    const float b1 = (float)hp->beta1, b2 = (float)hp->beta2, c1 = (float)(1.0 - hp->beta1),
                c2 = (float)(1.0 - hp->beta2);
    const double bc2_sqrt = sqrt(1.0 - pow(hp->beta2, (double)step));
    const float step_size = (float)(hp->lr * bc2_sqrt / (1.0 - pow(hp->beta1, (double)step)));
    const float eps = (float)(hp->eps * bc2_sqrt);
    const float l2 = decoupled ? 0.0f : (float)hp->weight_decay;
    const float shrink = decoupled ? (float)(1.0 - hp->lr * hp->weight_decay) : 1.0f;
    float *restrict m = state[0], *restrict v = state[1], *restrict vmax = state[2];
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float wi = decay ? w[i] * shrink : w[i];
        float d = decay ? g[i] + l2 * wi : g[i];
        float mi = b1 * m[i] + c1 * d, vi = b2 * v[i] + c2 * d * d;
        m[i] = mi;
        v[i] = vi;
        if (ams) {
            vi = vmax[i] > vi ? vmax[i] : vi;
            vmax[i] = vi;
        }
        w[i] = wi - step_size * mi / (sqrtf(vi) + eps);
    }
}
static void adam_core(float *w, const float *g, float *const *state, int64_t n, const nb_hparams *hp, int64_t step,
                      bool decoupled) {
    if (hp->weight_decay == 0.0 && !hp->amsgrad)
        adam_loop(w, g, state, n, hp, step, decoupled, false, false);
    else
        adam_loop(w, g, state, n, hp, step, decoupled, true, hp->amsgrad);
}
static void adam_update(float *w, const float *g, float *const *s, int64_t n, const nb_hparams *hp, int64_t step) {
    adam_core(w, g, s, n, hp, step, false);
}
static void adamw_update(float *w, const float *g, float *const *s, int64_t n, const nb_hparams *hp, int64_t step) {
    adam_core(w, g, s, n, hp, step, true);
}
/* f64: torch's own order, w -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps) */
static void adam_core_f64(double *restrict w, const double *restrict g, double *const *state, int64_t n,
                          const nb_hparams *hp, int64_t step, bool decoupled) {
    const double b1 = hp->beta1, b2 = hp->beta2, c1 = 1.0 - hp->beta1, c2 = 1.0 - hp->beta2;
    const double bc2_sqrt = sqrt(1.0 - pow(hp->beta2, (double)step));
    const double step_size = hp->lr / (1.0 - pow(hp->beta1, (double)step)), eps = hp->eps;
    const double l2 = decoupled ? 0.0 : hp->weight_decay;
    const double shrink = decoupled ? 1.0 - hp->lr * hp->weight_decay : 1.0;
    const bool ams = hp->amsgrad;
    double *restrict m = state[0], *restrict v = state[1], *restrict vmax = state[2];
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        double wi = w[i] * shrink;
        double d = g[i] + l2 * wi;
        double mi = b1 * m[i] + c1 * d, vi = b2 * v[i] + c2 * d * d;
        m[i] = mi;
        v[i] = vi;
        if (ams) {
            vi = vmax[i] > vi ? vmax[i] : vi;
            vmax[i] = vi;
        }
        w[i] = wi - step_size * mi / (sqrt(vi) / bc2_sqrt + eps);
    }
}
static void adam_update_f64(double *w, const double *g, double *const *s, int64_t n, const nb_hparams *hp, int64_t step) {
    adam_core_f64(w, g, s, n, hp, step, false);
}
static void adamw_update_f64(double *w, const double *g, double *const *s, int64_t n, const nb_hparams *hp,
                             int64_t step) {
    adam_core_f64(w, g, s, n, hp, step, true);
}
static int adam_slots(const nb_hparams *hp) { return hp->amsgrad ? 3 : 2; }
static nb_status adam_validate(const nb_optim_def *def, const nb_hparams *hp) {
    const char *name = def->name;
    CHECK(in_unit(name, "beta1", hp->beta1, false));
    CHECK(in_unit(name, "beta2", hp->beta2, false));
    return positive(name, "eps", hp->eps);
}
const nb_optim_def nb_adam = {.name = "adam", .nslots = 3, .slots_for = adam_slots,
                              .defaults = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8},
                              .validate = adam_validate, .update = adam_update,
                              .update_f64 = adam_update_f64};
const nb_optim_def nb_adamw = {.name = "adamw", .nslots = 3, .slots_for = adam_slots,
                               .defaults = {.lr = 1e-3, .weight_decay = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8},
                               .validate = adam_validate, .update = adamw_update,
                               .update_f64 = adamw_update_f64};

/* ---- Adadelta: slot 0 square average of gradients, 1 of updates ----------------------------- */
static void adadelta_update(float *restrict w, const float *restrict g, float *const *state, int64_t n,
                            const nb_hparams *hp, int64_t step) {
    (void)step;
    const float lr = (float)hp->lr, wd = (float)hp->weight_decay, r = (float)hp->rho, r1 = (float)(1.0 - hp->rho),
                eps = (float)hp->eps;
    float *restrict sq = state[0], *restrict acc = state[1];
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float d = g[i] + wd * w[i];
        float s = r * sq[i] + r1 * d * d;
        sq[i] = s;
        float delta = sqrtf(acc[i] + eps) / sqrtf(s + eps) * d;
        acc[i] = r * acc[i] + r1 * delta * delta;
        w[i] -= lr * delta;
    }
}
static void adadelta_update_f64(double *restrict w, const double *restrict g, double *const *state, int64_t n,
                                const nb_hparams *hp, int64_t step) {
    (void)step;
    const double lr = hp->lr, wd = hp->weight_decay, r = hp->rho, r1 = 1.0 - hp->rho, eps = hp->eps;
    double *restrict sq = state[0], *restrict acc = state[1];
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        double d = g[i] + wd * w[i];
        double s = r * sq[i] + r1 * d * d;
        sq[i] = s;
        double delta = sqrt(acc[i] + eps) / sqrt(s + eps) * d;
        acc[i] = r * acc[i] + r1 * delta * delta;
        w[i] -= lr * delta;
    }
}
static nb_status adadelta_validate(const nb_optim_def *def, const nb_hparams *hp) {
    (void)def;
    CHECK(in_unit("adadelta", "rho", hp->rho, true));
    return positive("adadelta", "eps", hp->eps);
}
const nb_optim_def nb_adadelta = {.name = "adadelta", .nslots = 2, .defaults = {.lr = 1.0, .rho = 0.9, .eps = 1e-6},
                                  .validate = adadelta_validate, .update = adadelta_update,
                                  .update_f64 = adadelta_update_f64};
