/* Steps applied to the parameters after the optimizer: proximal L1 and max-norm (not recorded). */
#include "../internal.h"

#include <omp.h>

nb_status nb_prox_l1(nb_params *ps, const bool *include, double t) {
    if (!ps) return nb_set_error(NB_ERR_NULL, "prox_l1: parameters are NULL");
    if (!(t >= 0.0) || !isfinite(t)) return nb_set_error(NB_ERR_VALUE, "prox_l1: threshold %g must be finite and >= 0", t);
    const bool *sel = include ? include : ps->decay;
    const float th = (float)t;
    for (int k = 0; k < ps->n; k++) {
        if (!sel[k]) continue;
        nb__bump(ps->p[k]); /* written in place */
        const int64_t n = ps->p[k]->numel;
        if (ps->dtype == NB_F64) {
            double *w = ps->flat_f64 + ps->offset[k];
#pragma omp parallel for simd if (n >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)
            for (int64_t i = 0; i < n; i++) {
                double a = fabs(w[i]) - t;
                w[i] = a > 0.0 ? copysign(a, w[i]) : 0.0;
            }
            continue;
        }
        float *w = ps->flat + ps->offset[k];
#pragma omp parallel for simd if (n >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)
        for (int64_t i = 0; i < n; i++) {
            float a = fabsf(w[i]) - th;
            w[i] = a > 0.0f ? copysignf(a, w[i]) : 0.0f;
        }
    }
    return NB_OK;
}

nb_status nb_max_norm(nb_params *ps, const bool *include, double max_norm) {
    if (!ps) return nb_set_error(NB_ERR_NULL, "max_norm: parameters are NULL");
    if (!(max_norm > 0.0) || !isfinite(max_norm))
        return nb_set_error(NB_ERR_VALUE, "max_norm: max_norm %g must be finite and > 0", max_norm);
    const bool *sel = include ? include : ps->decay;
    for (int k = 0; k < ps->n; k++) {
        const nb_tensor *p = ps->p[k];
        if (!sel[k] || p->ndim < 2) continue;
        nb__bump(ps->p[k]); /* written in place */
        const int64_t rows = p->shape[0], len = rows ? p->numel / rows : 0;
        if (ps->dtype == NB_F64) {
            double *w = ps->flat_f64 + ps->offset[k];
#pragma omp parallel for if (p->numel >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)
            for (int64_t r = 0; r < rows; r++) {
                double *row = w + r * len, s = 0.0;
                for (int64_t i = 0; i < len; i++) s += row[i] * row[i];
                const double norm = sqrt(s);
                if (norm > max_norm)
                    for (int64_t i = 0; i < len; i++) row[i] *= max_norm / norm;
            }
            continue;
        }
        float *w = ps->flat + ps->offset[k];
#pragma omp parallel for if (p->numel >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            float *row = w + r * len;
            double s = 0.0;
            for (int64_t i = 0; i < len; i++) s += (double)row[i] * row[i];
            double norm = sqrt(s);
            if (norm > max_norm) {
                const float c = (float)(max_norm / norm);
                for (int64_t i = 0; i < len; i++) row[i] *= c;
            }
        }
    }
    return NB_OK;
}
