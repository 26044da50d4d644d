/* Learning-rate schedules: closed forms of the step, and ReduceLROnPlateau's small state machine. */
#include "../internal.h"

static double bad(const char *fmt_fn, const char *what, double v) {
    nb_set_error(NB_ERR_VALUE, "%s: %s = %g is invalid", fmt_fn, what, v);
    return NAN;
}

double nb_lr_step(double base_lr, int64_t epoch, int64_t step_size, double gamma) {
    if (step_size < 1) return bad("lr_step", "step_size", (double)step_size);
    if (!(gamma > 0.0) || !isfinite(gamma)) return bad("lr_step", "gamma", gamma);
    if (epoch < 0) return bad("lr_step", "epoch", (double)epoch);
    return base_lr * pow(gamma, (double)(epoch / step_size));
}

double nb_lr_exponential(double base_lr, int64_t epoch, double gamma) {
    if (!(gamma > 0.0) || !isfinite(gamma)) return bad("lr_exponential", "gamma", gamma);
    if (epoch < 0) return bad("lr_exponential", "epoch", (double)epoch);
    return base_lr * pow(gamma, (double)epoch);
}

double nb_lr_cosine_warmup(double base_lr, int64_t step, int64_t warmup, int64_t total, double min_lr) {
    if (total < 1) return bad("lr_cosine_warmup", "total", (double)total);
    if (warmup < 0 || warmup > total) return bad("lr_cosine_warmup", "warmup", (double)warmup);
    if (!(min_lr >= 0.0 && min_lr <= base_lr)) return bad("lr_cosine_warmup", "min_lr", min_lr);
    if (step < 0) return bad("lr_cosine_warmup", "step", (double)step);
    if (step < warmup) return base_lr * (double)step / (double)warmup;
    if (step >= total) return min_lr;
    double t = (double)(step - warmup) / (double)(total - warmup);
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + cos(M_PI * t));
}

nb_status nb_plateau_init(nb_plateau *s, nb_mode mode, double lr) {
    if (!s) return nb_set_error(NB_ERR_NULL, "plateau_init: state is NULL");
    if (!(lr >= 0.0) || !isfinite(lr)) return nb_set_error(NB_ERR_VALUE, "plateau_init: lr %g must be finite and >= 0", lr);
    if (mode != NB_MODE_MIN && mode != NB_MODE_MAX) return nb_set_error(NB_ERR_VALUE, "plateau_init: unknown mode %d", (int)mode);
    *s = (nb_plateau){.mode = mode, .factor = 0.1, .patience = 10, .threshold = 1e-4, .cooldown = 0, .min_lr = 0.0,
                      .lr = lr, .best = mode == NB_MODE_MIN ? INFINITY : -INFINITY};
    return NB_OK;
}

double nb_plateau_step(nb_plateau *s, double metric) {
    if (!s) return nb_set_error(NB_ERR_NULL, "plateau_step: state is NULL"), NAN;
    if (!(s->factor > 0.0 && s->factor < 1.0)) return bad("plateau_step", "factor", s->factor);
    if (s->patience < 0) return bad("plateau_step", "patience", s->patience);
    if (s->cooldown < 0) return bad("plateau_step", "cooldown", s->cooldown);
    if (!(s->threshold >= 0.0)) return bad("plateau_step", "threshold", s->threshold);
    if (!(s->min_lr >= 0.0)) return bad("plateau_step", "min_lr", s->min_lr);
    if (isnan(metric)) return bad("plateau_step", "metric", metric);
    s->epoch++;
    bool better = s->mode == NB_MODE_MIN ? metric < s->best * (1.0 - s->threshold)
                                         : metric > s->best * (1.0 + s->threshold);
    if (better) {
        s->best = metric;
        s->num_bad_epochs = 0;
    } else {
        s->num_bad_epochs++;
    }
    if (s->cooldown_counter > 0) {
        s->cooldown_counter--;
        s->num_bad_epochs = 0;
    }
    if (s->num_bad_epochs > s->patience) {
        double lr = s->lr * s->factor;
        if (lr < s->min_lr) lr = s->min_lr;
        if (s->lr - lr > 1e-8) s->lr = lr; /* torch's eps: skip negligible changes */
        s->cooldown_counter = s->cooldown;
        s->num_bad_epochs = 0;
    }
    return s->lr;
}
