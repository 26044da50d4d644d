/* Sharded optimizer state (ZeRO stage 1) and checkpoints of distributed training: rank 0
 * writes and reads the one-process checkpoint format; state is gathered to it and scattered
 * from it, parameters and the rest broadcast. */
#include "internal.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int slots_for(const nb_optim_def *def, const nb_hparams *hp) {
    return def->slots_for ? def->slots_for(hp) : def->nslots;
}

/* The blocks of nb_optim_step (per parameter, NB_OPTIM_BLOCK elements) cut to [lo, lo+n). */
static int64_t plan_blocks(nb_dist_optim *o, bool fill) {
    const nb_params *ps = o->ps;
    int64_t b = 0, hi = o->lo + o->n;
    for (int i = 0; i < ps->n; i++) {
        int64_t a = ps->offset[i], e = a + ps->p[i]->numel;
        if (a < o->lo) a = o->lo;
        if (e > hi) e = hi;
        for (int64_t s = a; s < e; s += NB_OPTIM_BLOCK, b++)
            if (fill) {
                o->block_param_[b] = i;
                o->block_start_[b] = s;
                o->block_len_[b] = e - s < NB_OPTIM_BLOCK ? e - s : NB_OPTIM_BLOCK;
            }
    }
    return b;
}

static int64_t ceil_blk(int64_t e) { return (e + NB_OPTIM_BLOCK - 1) / NB_OPTIM_BLOCK; }

/* The plan of global-norm clipping: rank r owns the blocks that start in its slice,
 * [ceil(lo/K), ceil(hi/K)), and needs the rest of its last block, [hi, min(ceil(hi/K)*K, total)),
 * from the ranks after it (each sends what of that range lies in its own slice). */
static bool plan_norm(nb_dist_optim *o) {
    const nb_dist *d = o->dist;
    const int N = d->size, me = d->rank;
    const size_t nblk = (size_t)ceil_blk(d->total);
    o->norm_cnt_ = calloc((size_t)N, sizeof(int)), o->norm_displ_ = calloc((size_t)N, sizeof(int));
    o->tail_scnt_ = calloc((size_t)N, sizeof(int)), o->tail_sdispl_ = calloc((size_t)N, sizeof(int));
    o->tail_rcnt_ = calloc((size_t)N, sizeof(int)), o->tail_rdispl_ = calloc((size_t)N, sizeof(int));
    o->block_sq_ = calloc(nblk ? nblk : 1, sizeof(double));
    o->tail_ = malloc(NB_OPTIM_BLOCK * sizeof(float));
    if (!o->norm_cnt_ || !o->norm_displ_ || !o->tail_scnt_ || !o->tail_sdispl_ || !o->tail_rcnt_ || !o->tail_rdispl_ ||
        !o->block_sq_ || !o->tail_)
        return false;
    int64_t *tail_lo = malloc(2 * (size_t)N * sizeof(int64_t)), *tail_hi = tail_lo + N;
    if (!tail_lo) return false;
    for (int r = 0; r < N; r++) {
        const int64_t lo = d->shard_lo[r], hi = lo + d->shard_n[r];
        o->norm_displ_[r] = (int)ceil_blk(lo);
        o->norm_cnt_[r] = (int)(ceil_blk(hi) - ceil_blk(lo));
        tail_lo[r] = hi;
        tail_hi[r] = o->norm_cnt_[r] > 0 ? ceil_blk(hi) * NB_OPTIM_BLOCK : hi;
        if (tail_hi[r] > d->total) tail_hi[r] = d->total;
        if (r == me) o->tail_n_ = tail_hi[r] - tail_lo[r];
    }
    const int64_t mlo = d->shard_lo[me], mhi = mlo + d->shard_n[me];
    for (int r = 0; r < N; r++) {
        /* I send to r: my slice within r's tail (relative to my slice's start) */
        int64_t a = tail_lo[r] > mlo ? tail_lo[r] : mlo, e = tail_hi[r] < mhi ? tail_hi[r] : mhi;
        if (e > a) o->tail_scnt_[r] = (int)(e - a), o->tail_sdispl_[r] = (int)(a - mlo);
        /* I receive from r: r's slice within my tail (relative to the tail's start) */
        const int64_t rlo = d->shard_lo[r], rhi = rlo + d->shard_n[r];
        a = tail_lo[me] > rlo ? tail_lo[me] : rlo, e = tail_hi[me] < rhi ? tail_hi[me] : rhi;
        if (e > a) o->tail_rcnt_[r] = (int)(e - a), o->tail_rdispl_[r] = (int)(a - tail_lo[me]);
    }
    free(tail_lo);
    return true;
}

nb_dist_optim *nb_dist_optim_new(nb_dist *d, const nb_optim_def *def, const nb_hparams *hp) {
    if (!d || !def) return nb_set_error(NB_ERR_NULL, "dist_optim_new: NULL argument"), NULL;
    if (!d->ps) return nb_set_error(NB_ERR_STATE, "dist_optim_new: rank %d: nb_dist_init was given no parameters", d->rank), NULL;
    if (d->sharded) return nb_set_error(NB_ERR_STATE, "dist_optim_new: rank %d: a sharded optimizer is already attached", d->rank), NULL;
    if (d->in_step) return nb_set_error(NB_ERR_STATE, "dist_optim_new: rank %d: a step is in progress", d->rank), NULL;
    if (d->total > INT_MAX)
        return nb_set_error(NB_ERR_VALUE, "dist_optim_new: %lld elements, more than one MPI message holds",
                            (long long)d->total), NULL;
    if (!hp) hp = &def->defaults;
    if (nb_optim_validate(def, hp) != NB_OK) return NULL;
    int ns = slots_for(def, hp);
    if (ns < 0 || ns > NB_OPTIM_MAX_SLOTS || ns > def->nslots)
        return nb_set_error(NB_ERR_VALUE, "%s: %d state slots (at most %d)", def->name, ns, NB_OPTIM_MAX_SLOTS), NULL;
    nb_dist_optim *o = calloc(1, sizeof *o);
    d->shard_lo = calloc((size_t)d->size, sizeof *d->shard_lo);
    d->shard_n = calloc((size_t)d->size, sizeof *d->shard_n);
    if (!o || !d->shard_lo || !d->shard_n) goto nomem;
    for (int r = 0; r < d->size; r++) {
        d->shard_lo[r] = (int)(d->total * r / d->size);
        d->shard_n[r] = (int)(d->total * (r + 1) / d->size) - d->shard_lo[r];
    }
    o->def = def, o->dist = d, o->ps = d->ps, o->hp = *hp, o->nslots = ns;
    o->lo = d->shard_lo[d->rank], o->n = d->shard_n[d->rank];
    const size_t bytes = (size_t)(o->n > 0 ? o->n : 1) * sizeof(float);
    d->shard_grad = calloc(1, bytes); /* padding between gradient buckets is never received: 0 */
    if (!d->shard_grad) goto nomem;
    for (int k = 0; k < ns; k++)
        if (!(o->state[k] = calloc(1, bytes))) goto nomem;
    o->nblocks_ = plan_blocks(o, false);
    const size_t nb = (size_t)(o->nblocks_ ? o->nblocks_ : 1);
    o->block_param_ = malloc(nb * sizeof(int));
    o->block_start_ = malloc(nb * sizeof(int64_t));
    o->block_len_ = malloc(nb * sizeof(int64_t));
    if (!o->block_param_ || !o->block_start_ || !o->block_len_) goto nomem;
    plan_blocks(o, true);
    if (!plan_norm(o)) goto nomem;
    d->sharded = true;
    d->zopt = o;
    if (nb__dist_plan_shard_buckets(d) != NB_OK) {
        nb_dist_optim_free(o); /* detaches: sharded off, tables freed */
        return nb_set_error(NB_ERR_NOMEM, "%s: rank %d: cannot allocate sharded state", def->name, d->rank), NULL;
    }
    return o;
nomem:
    if (o) o->dist = d;
    nb_dist_optim_free(o);
    free(d->shard_lo), free(d->shard_n), free(d->shard_grad);
    d->shard_lo = d->shard_n = NULL, d->shard_grad = NULL;
    return nb_set_error(NB_ERR_NOMEM, "%s: rank %d: cannot allocate sharded state", def->name, d->rank), NULL;
}

/* o's nb_dist, or NULL with an error when it was freed first (nb_dist_free detached o) */
static nb_dist *live(const nb_dist_optim *o, const char *fn) {
    if (!o->dist) nb_set_error(NB_ERR_STATE, "%s: its nb_dist was freed (free the optimizer first)", fn);
    return o->dist;
}

void nb_dist_optim_free(nb_dist_optim *o) {
    if (!o) return;
    nb_dist *d = o->dist;
    if (d && d->zopt == o) d->zopt = NULL;
    if (d && d->sharded) {
        free(d->shard_lo), free(d->shard_n), free(d->shard_grad), free(d->rs_counts);
        d->shard_lo = d->shard_n = NULL, d->shard_grad = NULL, d->rs_counts = NULL;
        d->sharded = false;
    }
    for (int k = 0; k < NB_OPTIM_MAX_SLOTS; k++) free(o->state[k]);
    free(o->block_param_), free(o->block_start_), free(o->block_len_);
    free(o->norm_cnt_), free(o->norm_displ_), free(o->block_sq_), free(o->tail_);
    free(o->tail_scnt_), free(o->tail_sdispl_), free(o->tail_rcnt_), free(o->tail_rdispl_);
    free(o);
}

int64_t nb_dist_optim_state_numel(const nb_dist_optim *o) { return o ? o->nslots * o->n : 0; }

nb_status nb_dist_optim_step(nb_dist_optim *o) {
    if (!o) return nb_set_error(NB_ERR_NULL, "dist_optim_step: optimizer is NULL");
    nb_dist *d = live(o, "dist_optim_step");
    if (!d) return NB_ERR_STATE;
    nb_params *ps = o->ps;
    const nb_optim_def *def = o->def;
    if (ps->total != d->total || ps->flat == NULL)
        return nb_set_error(NB_ERR_STATE, "%s: rank %d: parameters were added after nb_dist_init", def->name, d->rank);
    /* every rank has the same hp and step, so every rank takes the same branch: no collective is skipped */
    nb_status st = nb_optim_validate(def, &o->hp);
    if (st != NB_OK) return st;
    for (int i = 0; i < ps->n; i++) /* as nb_optim_step checks them */
        if (!(ps->lr_scale[i] >= 0.0 && isfinite(ps->lr_scale[i])))
            return nb_set_error(NB_ERR_VALUE, "%s: lr_scale %g of parameter '%s' must be finite and >= 0", def->name,
                                ps->lr_scale[i], ps->names[i]);
    if (slots_for(def, &o->hp) > o->nslots)
        return nb_set_error(NB_ERR_STATE, "%s: these options need %d state slots, the optimizer was made with %d",
                            def->name, slots_for(def, &o->hp), o->nslots);
    const int64_t step = ++o->step;
    const nb_update_fn update = def->update;
#pragma omp parallel for if (o->n >= 65536) schedule(static)
    for (int64_t b = 0; b < o->nblocks_; b++) {
        if (!ps->p[o->block_param_[b]]->requires_grad) continue; /* frozen: untouched, as nb_optim_step */
        const int64_t s = o->block_start_[b];
        float *st_ptrs[NB_OPTIM_MAX_SLOTS] = {0};
        for (int k = 0; k < o->nslots; k++) st_ptrs[k] = o->state[k] + (s - o->lo);
        const nb_hparams hp = nb_optim_param_hparams(ps, o->block_param_[b], &o->hp);
        update(ps->flat + s, ps->grad_flat + s, st_ptrs, o->block_len_[b], &hp, step);
    }
    MPI_Request r;
    st = mpi_check(d, MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, ps->flat, d->shard_n, d->shard_lo, MPI_FLOAT,
                                      d->comm, &r),
                   "Iallgatherv of parameters");
    dist_params_written(ps);
    return st == NB_OK ? nb_dist_wait(d, &r, "all-gather of parameters") : st;
}

double nb_dist_optim_clip_grad_norm(nb_dist_optim *o, double max_norm) {
    if (!o) return nb_set_error(NB_ERR_NULL, "dist_optim_clip_grad_norm: optimizer is NULL"), -1.0;
    if (!(max_norm > 0.0))
        return nb_set_error(NB_ERR_VALUE, "dist_optim_clip_grad_norm: max_norm %g must be > 0", max_norm), -1.0;
    nb_dist *d = live(o, "dist_optim_clip_grad_norm");
    if (!d) return -1.0;
    nb_params *ps = o->ps;
    if (ps->total != d->total || ps->grad_flat != d->grad_flat)
        return nb_set_error(NB_ERR_STATE, "dist_optim_clip_grad_norm: rank %d: parameters were added after nb_dist_init",
                            d->rank), -1.0;
    const int me = d->rank;
    /* the averaged rest of my last block, from the ranks that hold it. (Into a buffer of its
     * own: Open MPI's libnbc takes a receive buffer equal to the send buffer for MPI_IN_PLACE.) */
    MPI_Request r;
    nb_status st = mpi_check(d, MPI_Ialltoallv(ps->grad_flat + o->lo, o->tail_scnt_, o->tail_sdispl_, MPI_FLOAT, o->tail_,
                                               o->tail_rcnt_, o->tail_rdispl_, MPI_FLOAT, d->comm, &r),
                             "Ialltoallv of cut gradient blocks");
    if (st == NB_OK) st = nb_dist_wait(d, &r, "exchange of cut gradient blocks");
    if (st == NB_OK && o->tail_n_ > 0) memcpy(ps->grad_flat + o->lo + o->n, o->tail_, (size_t)o->tail_n_ * sizeof(float));
    const int64_t b0 = o->norm_displ_[me];
    if (st == NB_OK) st = nb_grad_block_sq(ps, b0, b0 + o->norm_cnt_[me], o->block_sq_ + b0);
    if (st == NB_OK)
        st = mpi_check(d, MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, o->block_sq_, o->norm_cnt_, o->norm_displ_,
                                          MPI_DOUBLE, d->comm, &r),
                       "Iallgatherv of gradient block norms");
    if (st == NB_OK) st = nb_dist_wait(d, &r, "all-gather of gradient block norms");
    if (st != NB_OK) return -1.0;
    /* the additions of nb_clip_grad_norm, in its order */
    double total = 0.0;
    const int64_t nblk = ceil_blk(d->total);
    for (int64_t b = 0; b < nblk; b++) total += o->block_sq_[b];
    const double norm = sqrt(total);
    const double coef = max_norm / (norm + 1e-6);
    if (!(coef >= 1.0)) { /* NaN too: NaN gradients everywhere, as nb_clip_grad_norm */
        const float c = (float)coef;
        float *g = ps->grad_flat + o->lo;
        const int64_t n = o->n;
#pragma omp parallel for simd if (n >= 65536) schedule(static)
        for (int64_t i = 0; i < n; i++) g[i] *= c;
    }
    return norm;
}

/* Rank 0's full state <-> the slices: gather (to_root) or scatter, slot by slot. */
static nb_status move_state(nb_dist_optim *o, nb_optim *full, bool to_root) {
    nb_dist *d = live(o, to_root ? "dist_optim_gather" : "dist_optim_scatter");
    if (!d) return NB_ERR_STATE;
    nb_status st = NB_OK;
    if (d->rank == 0 && (!full || full->def != o->def || full->ps != o->ps || full->nslots != o->nslots))
        st = nb_set_error(NB_ERR_VALUE, "dist_optim: rank 0's full optimizer is not a %s over the same parameters "
                          "with %d state slots", o->def->name, o->nslots);
    st = nb__dist_agree(d, st, nb_last_error());
    for (int k = 0; st == NB_OK && k < o->nslots; k++) {
        float *all = d->rank == 0 ? full->state[k] : NULL;
        MPI_Request r;
        st = mpi_check(d, to_root ? MPI_Igatherv(o->state[k], (int)o->n, MPI_FLOAT, all, d->shard_n, d->shard_lo, MPI_FLOAT,
                                                 0, d->comm, &r)
                                  : MPI_Iscatterv(all, d->shard_n, d->shard_lo, MPI_FLOAT, o->state[k], (int)o->n, MPI_FLOAT,
                                                  0, d->comm, &r),
                       to_root ? "Igatherv of optimizer state" : "Iscatterv of optimizer state");
        if (st == NB_OK) st = nb_dist_wait(d, &r, to_root ? "gather of optimizer state" : "scatter of optimizer state");
    }
    if (st != NB_OK) return st;
    if (to_root) {
        if (d->rank == 0) full->step = o->step, full->hp = o->hp;
        return NB_OK;
    }
    if (d->rank == 0) o->step = full->step, o->hp = full->hp;
    st = nb_dist_bcast_bytes(d, &o->step, sizeof o->step);
    return st == NB_OK ? nb_dist_bcast_bytes(d, &o->hp, sizeof o->hp) : st;
}

nb_status nb_dist_optim_gather(nb_dist_optim *o, nb_optim *full) {
    if (!o) return nb_set_error(NB_ERR_NULL, "dist_optim_gather: optimizer is NULL");
    return move_state(o, full, true);
}

nb_status nb_dist_optim_scatter(nb_dist_optim *o, const nb_optim *full) {
    if (!o) return nb_set_error(NB_ERR_NULL, "dist_optim_scatter: optimizer is NULL");
    return move_state(o, (nb_optim *)full, false);
}

/* ---- checkpoints ------------------------------------------------------------------------------ */

/* On rank 0, the nb_optim that the file is written from / read into: opt itself, or a
 * temporary full one for a sharded optimizer (NULL when there is none, or out of memory). */
static nb_optim *root_optim(nb_dist *d, nb_params *ps, nb_optim *opt, nb_dist_optim *zopt, nb_status *st) {
    if (d->rank != 0 || !zopt) return opt;
    nb_optim *full = nb_optim_new(zopt->def, ps, &zopt->hp);
    if (!full) *st = nb_last_status() != NB_OK ? nb_last_status() : NB_ERR_NOMEM;
    return full;
}

static nb_status check_args(nb_dist *d, const char *path, nb_params *ps, const void *opt, const void *zopt,
                            const void *st, const char *who) {
    if (!d || !path || !ps || !st) return nb_set_error(NB_ERR_NULL, "%s: NULL argument", who);
    if (opt && zopt) return nb_set_error(NB_ERR_VALUE, "%s: pass opt or zopt, not both", who);
    return NB_OK;
}

nb_status nb_dist_checkpoint_save(nb_dist *d, const char *path, nb_params *ps, const nb_optim *opt,
                                  nb_dist_optim *zopt, const nb_early_stop *es, const nb_train_state *st) {
    nb_status s = check_args(d, path, ps, opt, zopt, st, "dist_checkpoint_save");
    if (s != NB_OK) return s;
    nb_optim *full = root_optim(d, ps, (nb_optim *)opt, zopt, &s);
    if (zopt) {
        s = nb__dist_agree(d, s, nb_last_error());
        if (s == NB_OK) s = nb_dist_optim_gather(zopt, full);
    }
    if (s == NB_OK) {
        nb_status local = d->rank == 0 ? nb_checkpoint_save(path, ps, full, es, st) : NB_OK;
        s = nb__dist_agree(d, local, nb_last_error());
    }
    if (zopt && full) nb_optim_free(full);
    return s;
}

/* The early-stopping state (its pointers excepted) as plain data for a broadcast. */
typedef struct {
    double best;
    int64_t best_epoch, epoch, stopped_epoch;
    int wait;
    bool stopped;
} es_state;

static nb_status bcast_early_stop(nb_dist *d, nb_early_stop *es) {
    es_state v = {es->best, es->best_epoch, es->epoch, es->stopped_epoch, es->wait, es->stopped};
    nb_status s = nb_dist_bcast_bytes(d, &v, sizeof v);
    if (s != NB_OK) return s;
    es->best = v.best, es->best_epoch = v.best_epoch, es->epoch = v.epoch, es->stopped_epoch = v.stopped_epoch;
    es->wait = v.wait, es->stopped = v.stopped;
    return es->best_weights && es->ps ? nb_dist_bcast_floats(d, es->best_weights, es->ps->total) : NB_OK;
}

nb_status nb_dist_checkpoint_load(nb_dist *d, const char *path, nb_params *ps, nb_optim *opt, nb_dist_optim *zopt,
                                  nb_early_stop *es, nb_train_state *st) {
    nb_status s = check_args(d, path, ps, opt, zopt, st, "dist_checkpoint_load");
    if (s != NB_OK) return s;
    nb_optim *full = root_optim(d, ps, opt, zopt, &s);
    if (s == NB_OK && d->rank == 0) s = nb_checkpoint_load(path, ps, full, es, st);
    s = nb__dist_agree(d, s, nb_last_error());
    if (s == NB_OK) s = nb_dist_bcast_params(d, ps);
    if (s == NB_OK && zopt) s = nb_dist_optim_scatter(zopt, full);
    if (s == NB_OK && opt) {
        s = nb_dist_bcast_bytes(d, &opt->step, sizeof opt->step);
        if (s == NB_OK) s = nb_dist_bcast_bytes(d, &opt->hp, sizeof opt->hp);
        for (int k = 0; s == NB_OK && k < opt->nslots; k++) s = nb_dist_bcast_floats(d, opt->state[k], ps->total);
    }
    if (s == NB_OK && es) s = bcast_early_stop(d, es);
    if (s == NB_OK) s = nb_dist_bcast_bytes(d, st, sizeof *st);
    if (zopt && full) nb_optim_free(full);
    return s;
}
