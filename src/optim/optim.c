/* The optimizer engine: state allocation, the block table, the parallel step, checkpoints of
 * state, and gradient clipping. The maths of each optimizer lives in builtin.c. */
#include "../internal.h"

#include <omp.h>
#include <stdlib.h>

static float *alloc_floats(int64_t n) {
    void *p = NULL;
    size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(float);
    if (posix_memalign(&p, 64, bytes) != 0) return NULL;
    memset(p, 0, bytes);
    return p;
}

nb_status nb_optim_validate(const nb_optim_def *def, const nb_hparams *hp) {
    if (!def || !hp) return nb_set_error(NB_ERR_NULL, "optim: definition or hyperparameters are NULL");
    if (!def->update) return nb_set_error(NB_ERR_NULL, "%s: the definition has no update function", def->name);
    if (!(hp->lr >= 0.0) || !isfinite(hp->lr))
        return nb_set_error(NB_ERR_VALUE, "%s: learning rate %g must be finite and >= 0", def->name, hp->lr);
    if (!(hp->weight_decay >= 0.0) || !isfinite(hp->weight_decay))
        return nb_set_error(NB_ERR_VALUE, "%s: weight_decay %g must be finite and >= 0", def->name, hp->weight_decay);
    return def->validate ? def->validate(def, hp) : NB_OK;
}

static int slots_for(const nb_optim_def *def, const nb_hparams *hp) {
    return def->slots_for ? def->slots_for(hp) : def->nslots;
}

nb_optim *nb_optim_new(const nb_optim_def *def, nb_params *ps, const nb_hparams *hp) {
    if (!def || !ps) return nb_set_error(NB_ERR_NULL, "optim_new: definition or parameters are NULL"), NULL;
    if (!hp) hp = &def->defaults;
    if (nb_optim_validate(def, hp) != NB_OK) return NULL;
    int ns = slots_for(def, hp);
    if (ns < 0 || ns > NB_OPTIM_MAX_SLOTS || ns > def->nslots)
        return nb_set_error(NB_ERR_VALUE, "%s: %d state slots (at most %d)", def->name, ns, NB_OPTIM_MAX_SLOTS), NULL;
    nb_optim *opt = calloc(1, sizeof *opt);
    if (!opt) return nb_set_error(NB_ERR_NOMEM, "optim_new: out of memory"), NULL;
    opt->def = def;
    opt->ps = ps;
    opt->hp = *hp;
    opt->nslots = ns;
    opt->total_ = ps->total;
    opt->nparams_ = ps->n;
    bool ok = true;
    for (int k = 0; k < ns; k++) ok &= (opt->state[k] = alloc_floats(ps->total)) != NULL;
    int64_t nb = 0;
    for (int i = 0; i < ps->n; i++) nb += (ps->p[i]->numel + NB_OPTIM_BLOCK - 1) / NB_OPTIM_BLOCK;
    opt->nblocks_ = nb;
    opt->block_param_ = malloc((size_t)(nb ? nb : 1) * sizeof(int));
    opt->block_start_ = malloc((size_t)(nb ? nb : 1) * sizeof(int64_t));
    opt->block_len_ = malloc((size_t)(nb ? nb : 1) * sizeof(int64_t));
    if (!ok || !opt->block_param_ || !opt->block_start_ || !opt->block_len_) {
        nb_optim_free(opt);
        return nb_set_error(NB_ERR_NOMEM, "%s: cannot allocate state for %lld elements", def->name, (long long)ps->total),
               NULL;
    }
    int64_t b = 0;
    for (int i = 0; i < ps->n; i++)
        for (int64_t s = 0; s < ps->p[i]->numel; s += NB_OPTIM_BLOCK, b++) {
            int64_t len = ps->p[i]->numel - s;
            opt->block_param_[b] = i;
            opt->block_start_[b] = ps->offset[i] + s;
            opt->block_len_[b] = len < NB_OPTIM_BLOCK ? len : NB_OPTIM_BLOCK;
        }
    return opt;
}

void nb_optim_free(nb_optim *opt) {
    if (!opt) return;
    for (int k = 0; k < NB_OPTIM_MAX_SLOTS; k++) free(opt->state[k]);
    free(opt->block_param_);
    free(opt->block_start_);
    free(opt->block_len_);
    free(opt);
}

nb_status nb_optim_step(nb_optim *opt) {
    if (!opt || !opt->ps) return nb_set_error(NB_ERR_NULL, "optim_step: optimizer is NULL");
    nb_params *ps = opt->ps;
    const nb_optim_def *def = opt->def;
    if (ps->total != opt->total_ || ps->n != opt->nparams_)
        return nb_set_error(NB_ERR_STATE, "%s: parameters changed (%d params, %lld elements) since the optimizer was made "
                            "(%d, %lld); make the optimizer after the last nb_params_add",
                            def->name, ps->n, (long long)ps->total, opt->nparams_, (long long)opt->total_);
    nb_status st = nb_optim_validate(def, &opt->hp);
    if (st != NB_OK) return st;
    if (slots_for(def, &opt->hp) > opt->nslots)
        return nb_set_error(NB_ERR_STATE, "%s: these options need %d state slots, the optimizer was made with %d",
                            def->name, slots_for(def, &opt->hp), opt->nslots);
    if (opt->step < 0 || opt->step == INT64_MAX)
        return nb_set_error(NB_ERR_STATE, "%s: step counter %lld cannot advance", def->name, (long long)opt->step);
    const int64_t step = ++opt->step;
    nb_hparams hp_decay = opt->hp, hp_plain = opt->hp;
    hp_plain.weight_decay = 0.0;
    const int64_t nb = opt->nblocks_;
    const nb_update_fn update = def->update;
#pragma omp parallel for if (ps->total >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)
    for (int64_t b = 0; b < nb; b++) {
        const int64_t s = opt->block_start_[b];
        float *st_ptrs[NB_OPTIM_MAX_SLOTS] = {0};
        for (int k = 0; k < opt->nslots; k++) st_ptrs[k] = opt->state[k] + s;
        update(ps->flat + s, ps->grad_flat + s, st_ptrs, opt->block_len_[b],
               ps->decay[opt->block_param_[b]] ? &hp_decay : &hp_plain, step);
    }
    return NB_OK;
}

void nb_optim_reset(nb_optim *opt) {
    if (!opt) return;
    opt->step = 0;
    for (int k = 0; k < opt->nslots; k++) memset(opt->state[k], 0, (size_t)opt->total_ * sizeof(float));
}

int64_t nb_optim_state_numel(const nb_optim *opt) { return opt ? opt->nslots * opt->total_ : 0; }

void nb_optim_state_save(const nb_optim *opt, float *dst) {
    for (int k = 0; opt && dst && k < opt->nslots; k++)
        memcpy(dst + k * opt->total_, opt->state[k], (size_t)opt->total_ * sizeof(float));
}

void nb_optim_state_load(nb_optim *opt, const float *src) {
    for (int k = 0; opt && src && k < opt->nslots; k++)
        memcpy(opt->state[k], src + k * opt->total_, (size_t)opt->total_ * sizeof(float));
}

/* ---- clipping ------------------------------------------------------------------------------ */
/* Sum of squares of block b of g[0, n), in double and in element order: the one definition of
 * a block's share of the gradient norm (nb_clip_grad_norm and nb_grad_block_sq agree bit for bit). */
static double block_sq(const float *g, int64_t n, int64_t b) {
    const int64_t e = (b + 1) * NB_OPTIM_BLOCK < n ? (b + 1) * NB_OPTIM_BLOCK : n;
    double s = 0.0;
    for (int64_t i = b * NB_OPTIM_BLOCK; i < e; i++) s += (double)g[i] * g[i];
    return s;
}

nb_status nb_grad_block_sq(const nb_params *ps, int64_t b0, int64_t b1, double *out) {
    if (!ps || (!out && b1 > b0)) return nb_set_error(NB_ERR_NULL, "grad_block_sq: NULL argument");
    const int64_t n = ps->total, nblk = (n + NB_OPTIM_BLOCK - 1) / NB_OPTIM_BLOCK;
    if (b0 < 0 || b1 < b0 || b1 > nblk)
        return nb_set_error(NB_ERR_VALUE, "grad_block_sq: blocks [%lld, %lld) outside [0, %lld)", (long long)b0,
                            (long long)b1, (long long)nblk);
#pragma omp parallel for if ((b1 - b0) * NB_OPTIM_BLOCK >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)
    for (int64_t b = b0; b < b1; b++) out[b - b0] = block_sq(ps->grad_flat, n, b);
    return NB_OK;
}

double nb_clip_grad_norm(nb_params *ps, double max_norm) {
    if (!ps) return nb_set_error(NB_ERR_NULL, "clip_grad_norm: parameters are NULL"), -1.0;
    if (!(max_norm > 0.0)) return nb_set_error(NB_ERR_VALUE, "clip_grad_norm: max_norm %g must be > 0", max_norm), -1.0;
    /* Sum of squares in fixed blocks (padding between parameters holds zeros), then the block
     * sums in order: the same additions whatever the thread count. */
    const int64_t n = ps->total, nblk = (n + NB_OPTIM_BLOCK - 1) / NB_OPTIM_BLOCK;
    double total = 0.0;
#pragma omp parallel for if (n >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static) ordered
    for (int64_t b = 0; b < nblk; b++) {
        const double s = block_sq(ps->grad_flat, n, b);
#pragma omp ordered
        total += s;
    }
    const double norm = sqrt(total);
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        const float c = (float)coef;
        float *gw = ps->grad_flat;
#pragma omp parallel for simd if (n >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)
        for (int64_t i = 0; i < n; i++) gw[i] *= c;
    }
    return norm;
}

nb_status nb_clip_grad_value(nb_params *ps, double clip) {
    if (!ps) return nb_set_error(NB_ERR_NULL, "clip_grad_value: parameters are NULL");
    if (!(clip > 0.0)) return nb_set_error(NB_ERR_VALUE, "clip_grad_value: clip %g must be > 0", clip);
    const float c = (float)clip;
    float *g = ps->grad_flat;
    const int64_t n = ps->total;
#pragma omp parallel for simd if (n >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)
    for (int64_t i = 0; i < n; i++) g[i] = g[i] > c ? c : (g[i] < -c ? -c : g[i]);
    return NB_OK;
}
