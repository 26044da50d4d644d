/* The optimizer engine: state allocation, the block table, the parallel step, checkpoints of
 * state, and gradient clipping. The maths of each optimizer lives in builtin.c. */
#include "../internal.h"

#include <string.h>

#include <omp.h>
#include <stdlib.h>

static void *alloc_zeroed(int64_t n, size_t es) {
    void *p = NULL;
    size_t bytes = (size_t)(n > 0 ? n : 1) * es;
    if (posix_memalign(&p, 64, bytes) != 0) return NULL;
    memset(p, 0, bytes);
    return p;
}

nb_status nb_optim_validate(const nb_optim_def *def, const nb_hparams *hp) {
    if (!def || !hp) return nb_set_error(NB_ERR_NULL, "optim: definition or hyperparameters are NULL");
    if (!def->name || !def->name[0]) return nb_set_error(NB_ERR_NULL, "optim: the definition has no name");
    if (strlen(def->name) > NB_OPTIM_NAME_MAX) /* checkpoints store it, and check it on load */
        return nb_set_error(NB_ERR_VALUE, "optim: the name '%.40s...' is longer than %d bytes", def->name,
                            NB_OPTIM_NAME_MAX);
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
    if (ps->dtype == NB_F64 && !def->update_f64)
        return nb_set_error(NB_ERR_DTYPE, "%s: the parameters are f64 but the definition has no update_f64 (f32 only)",
                            def->name),
               NULL;
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
    for (int k = 0; k < ns; k++) ok &= (opt->state[k] = alloc_zeroed(ps->total, nb_dtype_size(ps->dtype))) != NULL;
    int64_t nb = 0;
    for (int i = 0; i < ps->n; i++) nb += (ps->p[i]->numel + NB_OPTIM_BLOCK - 1) / NB_OPTIM_BLOCK;
    opt->nblocks_ = nb;
    opt->block_param_ = malloc((size_t)(nb ? nb : 1) * sizeof(int));
    opt->block_start_ = malloc((size_t)(nb ? nb : 1) * sizeof(int64_t));
    opt->block_len_ = malloc((size_t)(nb ? nb : 1) * sizeof(int64_t));
    opt->param_block0_ = malloc((size_t)(ps->n + 1) * sizeof(int));
    opt->done_ = calloc((size_t)(ps->n ? ps->n : 1), sizeof(bool));
    if (!ok || !opt->block_param_ || !opt->block_start_ || !opt->block_len_ || !opt->param_block0_ || !opt->done_) {
        nb_optim_free(opt);
        return nb_set_error(NB_ERR_NOMEM, "%s: cannot allocate state for %lld elements", def->name, (long long)ps->total),
               NULL;
    }
    int64_t b = 0;
    for (int i = 0; i < ps->n; i++) {
        opt->param_block0_[i] = (int)b;
        for (int64_t s = 0; s < ps->p[i]->numel; s += NB_OPTIM_BLOCK, b++) {
            int64_t len = ps->p[i]->numel - s;
            opt->block_param_[b] = i;
            opt->block_start_[b] = ps->offset[i] + s;
            opt->block_len_[b] = len < NB_OPTIM_BLOCK ? len : NB_OPTIM_BLOCK;
        }
    }
    opt->param_block0_[ps->n] = (int)b;
    return opt;
}

void nb_optim_free(nb_optim *opt) {
    if (!opt) return;
    nb_optim_disarm(opt);
    free(opt->param_block0_);
    free(opt->done_);
    for (int k = 0; k < NB_OPTIM_MAX_SLOTS; k++) free(opt->state[k]);
    free(opt->block_param_);
    free(opt->block_start_);
    free(opt->block_len_);
    free(opt);
}

/* What every step checks before it changes anything. */
static nb_status step_check(nb_optim *opt) {
    nb_params *ps = opt->ps;
    const nb_optim_def *def = opt->def;
    if (ps->dtype == NB_F64 && !def->update_f64) /* the definition's table was changed after nb_optim_new */
        return nb_set_error(NB_ERR_DTYPE, "%s: the parameters are f64 but the definition has no update_f64 (f32 only)",
                            def->name);
    if (ps->total != opt->total_ || ps->n != opt->nparams_)
        return nb_set_error(NB_ERR_STATE, "%s: parameters changed (%d params, %lld elements) since the optimizer was made "
                            "(%d, %lld); make the optimizer after the last nb_params_add",
                            def->name, ps->n, (long long)ps->total, opt->nparams_, (long long)opt->total_);
    nb_status st = nb_optim_validate(def, &opt->hp);
    if (st != NB_OK) return st;
    for (int i = 0; i < ps->n; i++)
        if (!(ps->lr_scale[i] >= 0.0 && isfinite(ps->lr_scale[i])))
            return nb_set_error(NB_ERR_VALUE, "%s: lr_scale %g of parameter '%s' must be finite and >= 0", def->name,
                                ps->lr_scale[i], ps->names[i]);
    if (slots_for(def, &opt->hp) > opt->nslots)
        return nb_set_error(NB_ERR_STATE, "%s: these options need %d state slots, the optimizer was made with %d",
                            def->name, slots_for(def, &opt->hp), opt->nslots);
    if (opt->step < 0 || opt->step == INT64_MAX)
        return nb_set_error(NB_ERR_STATE, "%s: step counter %lld cannot advance", def->name, (long long)opt->step);
    return NB_OK;
}

nb_hparams nb_optim_param_hparams(const nb_params *ps, int i, const nb_hparams *hp) {
    nb_hparams h = *hp;
    if (!ps->decay[i]) h.weight_decay = 0.0;
    h.lr *= ps->lr_scale[i];
    return h;
}

/* Update blocks [b0, b1) at step opt->step. A block always runs the same update on the same
 * elements, whichever call (whole step or one parameter) and thread takes it: same bits. A
 * frozen parameter's blocks (requires_grad off: torch's grad None) are skipped. */
static void run_blocks(nb_optim *opt, int64_t b0, int64_t b1, int64_t elems) {
    nb_params *ps = opt->ps;
    for (int64_t b = b0; b < b1; b++) /* the parameters written (once each: their blocks are adjacent) */
        if ((b == b0 || opt->block_param_[b] != opt->block_param_[b - 1]) && ps->p[opt->block_param_[b]]->requires_grad)
            nb__bump(ps->p[opt->block_param_[b]]);
    const int64_t step = opt->step;
    if (ps->dtype == NB_F64) {
        const nb_update_f64_fn update = opt->def->update_f64;
#pragma omp parallel for if (elems >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)
        for (int64_t b = b0; b < b1; b++) {
            if (!ps->p[opt->block_param_[b]]->requires_grad) continue; /* frozen: untouched */
            const int64_t s = opt->block_start_[b];
            double *st_ptrs[NB_OPTIM_MAX_SLOTS] = {0};
            for (int k = 0; k < opt->nslots; k++) st_ptrs[k] = opt->state_f64[k] + s;
            const nb_hparams hp = nb_optim_param_hparams(ps, opt->block_param_[b], &opt->hp);
            update(ps->flat_f64 + s, ps->grad_flat_f64 + s, st_ptrs, opt->block_len_[b], &hp, step);
        }
        return;
    }
    const nb_update_fn update = opt->def->update;
#pragma omp parallel for if (elems >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)
    for (int64_t b = b0; b < b1; b++) {
        if (!ps->p[opt->block_param_[b]]->requires_grad) continue; /* frozen: untouched */
        const int64_t s = opt->block_start_[b];
        float *st_ptrs[NB_OPTIM_MAX_SLOTS] = {0};
        for (int k = 0; k < opt->nslots; k++) st_ptrs[k] = opt->state[k] + s;
        const nb_hparams hp = nb_optim_param_hparams(ps, opt->block_param_[b], &opt->hp);
        update(ps->flat + s, ps->grad_flat + s, st_ptrs, opt->block_len_[b], &hp, step);
    }
}

static void update_param(nb_optim *opt, int i) {
    run_blocks(opt, opt->param_block0_[i], opt->param_block0_[i + 1], opt->ps->p[i]->numel);
    opt->done_[i] = true;
}

/* ctx's grad-ready report while armed: the leaf's gradient is final, update it now */
static void on_ready(nb_tensor *leaf, void *user) {
    nb_optim *opt = user;
    const int n = opt->ps->n;
    int i = -1; /* leaves finish in roughly reverse order of use: search on from the last one */
    for (int k = 0; k < n; k++) {
        const int c = ((opt->last_done_ - k) % n + n) % n;
        if (opt->ps->p[c] == leaf) {
            i = c;
            break;
        }
    }
    if (i < 0) return; /* not one of ours (an input that requires grad) */
    opt->last_done_ = i;
    if (opt->done_[i]) { /* a second backward: this gradient was not the one the step used */
        if (opt->armed_error_ == NB_OK) opt->armed_error_ = NB_ERR_STATE;
        return;
    }
    update_param(opt, i);
}

nb_status nb_optim_step_on_ready(nb_optim *opt, nb_ctx *ctx) {
    if (!opt || !opt->ps || !ctx) return nb_set_error(NB_ERR_NULL, "optim_step_on_ready: optimizer or context is NULL");
    if (opt->armed_) return nb_set_error(NB_ERR_STATE, "%s: a step is already armed (finish it with nb_optim_step)", opt->def->name);
    if (ctx->on_ready)
        return nb_set_error(NB_ERR_STATE, "%s: the context already reports ready gradients elsewhere (data-parallel "
                            "reduction?); a step on ready would update before that", opt->def->name);
    nb_status st = step_check(opt);
    if (st != NB_OK) return st;
    opt->step++;
    memset(opt->done_, 0, (size_t)opt->ps->n * sizeof *opt->done_);
    opt->last_done_ = opt->ps->n - 1;
    opt->armed_error_ = NB_OK;
    opt->armed_ = ctx;
    nb_ctx_on_grad_ready(ctx, on_ready, opt);
    return NB_OK;
}

void nb_optim_disarm(nb_optim *opt) {
    if (!opt || !opt->armed_) return;
    if (opt->armed_->on_ready == on_ready && opt->armed_->on_ready_user == opt) nb_ctx_on_grad_ready(opt->armed_, NULL, NULL);
    opt->armed_ = NULL;
}

nb_status nb_optim_step(nb_optim *opt) {
    if (!opt || !opt->ps) return nb_set_error(NB_ERR_NULL, "optim_step: optimizer is NULL");
    nb__threads_check();
    if (opt->armed_) { /* finish the armed step: the parameters backward did not reach */
        nb_optim_disarm(opt);
        if (opt->armed_error_ != NB_OK)
            return nb_set_error(NB_ERR_STATE, "%s: a parameter's gradient was reported ready twice in one armed step "
                                "(two backwards?); it was updated with the first", opt->def->name);
        for (int i = 0; i < opt->ps->n; i++)
            if (!opt->done_[i]) update_param(opt, i);
        return NB_OK;
    }
    nb_status st = step_check(opt);
    if (st != NB_OK) return st;
    opt->step++;
    run_blocks(opt, 0, opt->nblocks_, opt->ps->total);
    return NB_OK;
}

void nb_optim_reset(nb_optim *opt) {
    if (!opt) return;
    opt->step = 0;
    const size_t es = nb_dtype_size(opt->ps->dtype);
    for (int k = 0; k < opt->nslots; k++) memset(opt->state[k], 0, (size_t)opt->total_ * es);
}

int64_t nb_optim_state_numel(const nb_optim *opt) { return opt ? opt->nslots * opt->total_ : 0; }

void nb_optim_state_save(const nb_optim *opt, void *dst) {
    const size_t bytes = opt ? (size_t)opt->total_ * nb_dtype_size(opt->ps->dtype) : 0;
    for (int k = 0; opt && dst && k < opt->nslots; k++) memcpy((char *)dst + k * bytes, opt->state[k], bytes);
}

void nb_optim_state_load(nb_optim *opt, const void *src) {
    const size_t bytes = opt ? (size_t)opt->total_ * nb_dtype_size(opt->ps->dtype) : 0;
    for (int k = 0; opt && src && k < opt->nslots; k++) memcpy(opt->state[k], (const char *)src + k * bytes, bytes);
}

/* ---- clipping ------------------------------------------------------------------------------ */
/* Sum of squares of block b of g[0, n), in double and in element order: the one definition of
 * a block's share of the gradient norm (nb_clip_grad_norm and nb_grad_block_sq agree bit for bit). */
static double block_sq(const nb_params *ps, int64_t n, int64_t b) {
    const int64_t e = (b + 1) * NB_OPTIM_BLOCK < n ? (b + 1) * NB_OPTIM_BLOCK : n;
    double s = 0.0;
    if (ps->dtype == NB_F64)
        for (int64_t i = b * NB_OPTIM_BLOCK; i < e; i++) s += ps->grad_flat_f64[i] * ps->grad_flat_f64[i];
    else
        for (int64_t i = b * NB_OPTIM_BLOCK; i < e; i++) s += (double)ps->grad_flat[i] * ps->grad_flat[i];
    return s;
}

nb_status nb_grad_block_sq(const nb_params *ps, int64_t b0, int64_t b1, double *out) {
    if (!ps || (!out && b1 > b0)) return nb_set_error(NB_ERR_NULL, "grad_block_sq: NULL argument");
    const int64_t n = ps->total, nblk = (n + NB_OPTIM_BLOCK - 1) / NB_OPTIM_BLOCK;
    if (b0 < 0 || b1 < b0 || b1 > nblk)
        return nb_set_error(NB_ERR_VALUE, "grad_block_sq: blocks [%lld, %lld) outside [0, %lld)", (long long)b0,
                            (long long)b1, (long long)nblk);
#pragma omp parallel for if ((b1 - b0) * NB_OPTIM_BLOCK >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)
    for (int64_t b = b0; b < b1; b++) out[b - b0] = block_sq(ps, n, b);
    return NB_OK;
}

/* Block b's share of a p-norm other than 2: the sum of |g|^p (p = 1: of |g|), or for p = inf
 * the largest |g|; NaN if any element is NaN, as torch's norms. Double, element order. */
static double block_pnorm(const nb_params *ps, int64_t n, int64_t b, double p) {
    const int64_t e = (b + 1) * NB_OPTIM_BLOCK < n ? (b + 1) * NB_OPTIM_BLOCK : n;
    double s = 0.0;
    for (int64_t i = b * NB_OPTIM_BLOCK; i < e; i++) {
        const double a = fabs(ps->dtype == NB_F64 ? ps->grad_flat_f64[i] : (double)ps->grad_flat[i]);
        if (isinf(p))
            s = a > s || isnan(a) ? a : s;
        else
            s += p == 1.0 ? a : pow(a, p);
        if (isnan(s)) return s;
    }
    return s;
}

double nb_clip_grad_norm_p(nb_params *ps, double max_norm, double norm_type) {
    if (!ps) return nb_set_error(NB_ERR_NULL, "clip_grad_norm: parameters are NULL"), -1.0;
    if (!(max_norm > 0.0)) return nb_set_error(NB_ERR_VALUE, "clip_grad_norm: max_norm %g must be > 0", max_norm), -1.0;
    if (!(norm_type > 0.0))
        return nb_set_error(NB_ERR_VALUE, "clip_grad_norm: norm_type %g must be > 0 (or INFINITY)", norm_type), -1.0;
    /* Per block (padding between parameters holds zeros), then the blocks in order: the same
     * operations whatever the thread count. */
    const int64_t n = ps->total, nblk = (n + NB_OPTIM_BLOCK - 1) / NB_OPTIM_BLOCK;
    const bool f64 = ps->dtype == NB_F64, two = norm_type == 2.0, inf = isinf(norm_type);
    double total = 0.0;
#pragma omp parallel for if (n >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static) ordered
    for (int64_t b = 0; b < nblk; b++) {
        const double s = two ? block_sq(ps, n, b) : block_pnorm(ps, n, b, norm_type);
#pragma omp ordered
        if (!inf)
            total += s;
        else if (!isnan(total) && (isnan(s) || s > total))
            total = s;
    }
    const double norm = two ? sqrt(total) : inf || norm_type == 1.0 ? total : pow(total, 1.0 / norm_type);
    const double coef = max_norm / (norm + 1e-6);
    if (coef >= 1.0) return norm;
    /* scaled by coef < 1, or by NaN when the norm is NaN (a NaN gradient): every gradient becomes
     * NaN, as in torch, rather than a step of unclipped size. Parameters only: the padding
     * between them stays 0. */
    for (int k = 0; k < ps->n; k++) {
        const int64_t off = ps->offset[k], len = ps->p[k]->numel;
        if (f64) {
            double *gw = ps->grad_flat_f64 + off;
#pragma omp parallel for simd if (len >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)
            for (int64_t i = 0; i < len; i++) gw[i] *= coef;
        } else {
            const float c = (float)coef;
            float *gw = ps->grad_flat + off;
#pragma omp parallel for simd if (len >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)
            for (int64_t i = 0; i < len; i++) gw[i] *= c;
        }
    }
    return norm;
}

double nb_clip_grad_norm(nb_params *ps, double max_norm) { return nb_clip_grad_norm_p(ps, max_norm, 2.0); }

nb_status nb_clip_grad_value(nb_params *ps, double clip) {
    if (!ps) return nb_set_error(NB_ERR_NULL, "clip_grad_value: parameters are NULL");
    if (!(clip > 0.0)) return nb_set_error(NB_ERR_VALUE, "clip_grad_value: clip %g must be > 0", clip);
    const int64_t n = ps->total;
    if (ps->dtype == NB_F64) {
        double *g = ps->grad_flat_f64;
#pragma omp parallel for simd if (n >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)
        for (int64_t i = 0; i < n; i++) g[i] = g[i] > clip ? clip : (g[i] < -clip ? -clip : g[i]);
        return NB_OK;
    }
    const float c = (float)clip;
    float *g = ps->grad_flat;
#pragma omp parallel for simd if (n >= NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)
    for (int64_t i = 0; i < n; i++) g[i] = g[i] > c ? c : (g[i] < -c ? -c : g[i]);
    return NB_OK;
}
