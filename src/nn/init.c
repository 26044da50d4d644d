/* Parameter initialisation with torch.nn.init's formulas, drawn from a caller's nb_rng. */
#include "../internal.h"

double nb_init_gain(nb_nonlinearity nl, double slope) {
    switch (nl) {
    case NB_NL_TANH: return 5.0 / 3.0;
    case NB_NL_RELU: return sqrt(2.0);
    case NB_NL_LEAKY_RELU: return sqrt(2.0 / (1.0 + slope * slope));
    default: return 1.0;
    }
}

nb_status nb_init_fans(const nb_tensor *t, int64_t *fan_in, int64_t *fan_out) {
    if (!t) return nb_set_error(NB_ERR_NULL, "init_fans: tensor is NULL");
    if (t->ndim < 2) {
        char b[128];
        return nb_set_error(NB_ERR_SHAPE, "init_fans: fan in and fan out need at least 2 dims, tensor is %s",
                            nb_shape_str(t, b, sizeof b));
    }
    int64_t rf = 1;
    for (int d = 2; d < t->ndim; d++) rf *= t->shape[d];
    if (fan_in) *fan_in = t->shape[1] * rf;
    if (fan_out) *fan_out = t->shape[0] * rf;
    return NB_OK;
}

static nb_status fans(const char *op, const nb_tensor *t, nb_rng *rng, int64_t *fi, int64_t *fo) {
    if (!rng) return nb_set_error(NB_ERR_NULL, "%s: rng is NULL", op);
    if (t && t->dtype == NB_I64) return nb_set_error(NB_ERR_DTYPE, "%s: tensor must be f32 or f64, got i64", op);
    nb_status s = nb_init_fans(t, fi, fo);
    if (s != NB_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", nb_last_error());
        return nb_set_error(s, "%s: %s", op, why);
    }
    if (*fi == 0 || *fo == 0) {
        char b[128];
        return nb_set_error(NB_ERR_SHAPE, "%s: tensor %s has no elements to take a fan from", op, nb_shape_str(t, b, sizeof b));
    }
    return s;
}

nb_status nb_init_xavier_uniform(nb_rng *rng, nb_tensor *t, double gain) {
    int64_t fi, fo;
    nb_status s = fans("init_xavier_uniform", t, rng, &fi, &fo);
    if (s != NB_OK) return s;
    double bound = gain * sqrt(6.0 / (double)(fi + fo));
    return nb_rng_uniform(rng, t, -bound, bound);
}

nb_status nb_init_xavier_normal(nb_rng *rng, nb_tensor *t, double gain) {
    int64_t fi, fo;
    nb_status s = fans("init_xavier_normal", t, rng, &fi, &fo);
    if (s != NB_OK) return s;
    return nb_rng_normal(rng, t, 0.0, gain * sqrt(2.0 / (double)(fi + fo)));
}

nb_status nb_init_kaiming_uniform(nb_rng *rng, nb_tensor *t, double gain, nb_fan_mode mode) {
    int64_t fi, fo;
    nb_status s = fans("init_kaiming_uniform", t, rng, &fi, &fo);
    if (s != NB_OK) return s;
    double bound = gain * sqrt(3.0 / (double)(mode == NB_FAN_OUT ? fo : fi));
    return nb_rng_uniform(rng, t, -bound, bound);
}

nb_status nb_init_kaiming_normal(nb_rng *rng, nb_tensor *t, double gain, nb_fan_mode mode) {
    int64_t fi, fo;
    nb_status s = fans("init_kaiming_normal", t, rng, &fi, &fo);
    if (s != NB_OK) return s;
    return nb_rng_normal(rng, t, 0.0, gain / sqrt((double)(mode == NB_FAN_OUT ? fo : fi)));
}
