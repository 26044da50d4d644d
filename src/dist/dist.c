/* Data-parallel training over MPI: bucketed gradient averaging overlapped with backward,
 * broadcasts, metric reductions, status agreement and waits with a deadline. */
#include "internal.h"

#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* An MPI return code other than MPI_SUCCESS as NB_ERR_IO naming the rank and the operation. */
nb_status nb__dist_mpi_check(const nb_dist *d, int rc, const char *what) {
    if (rc == MPI_SUCCESS) return NB_OK;
    char s[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "MPI error %d", rc);
    return nb_set_error(NB_ERR_IO, "dist: rank %d: %s: %s", d ? d->rank : -1, what, s);
}

/* ---- setup ----------------------------------------------------------------------------- */

static nb_status check_opts(const nb_dist_opts *o) {
    if (o->bucket_bytes < sizeof(float))
        return nb_set_error(NB_ERR_VALUE, "dist: bucket_bytes %zu is smaller than one float", o->bucket_bytes);
    if (!(o->timeout_s >= 0)) return nb_set_error(NB_ERR_VALUE, "dist: timeout_s %g must be >= 0", o->timeout_s);
    if (!(o->idle_sleep_us >= 0 && o->idle_sleep_us <= 1e6))
        return nb_set_error(NB_ERR_VALUE, "dist: idle_sleep_us %g must be in [0, 1e6]", o->idle_sleep_us);
    return NB_OK;
}

/* Buckets in reverse parameter order: walk back from the last parameter, closing a bucket when
 * the next parameter would push it past bucket_bytes (a parameter bigger than that is alone). */
static nb_status plan_buckets(nb_dist *d) {
    nb_params *ps = d->ps;
    int n = ps->n;
    d->bucket = calloc((size_t)n + 1, sizeof *d->bucket);
    d->seen = calloc((size_t)n + 1, sizeof *d->seen);
    d->lo = calloc((size_t)n + 1, sizeof *d->lo);
    d->len = calloc((size_t)n + 1, sizeof *d->len);
    d->nparams = calloc((size_t)n + 1, sizeof *d->nparams);
    d->pending = calloc((size_t)n + 1, sizeof *d->pending);
    d->req = calloc((size_t)n + 1, sizeof *d->req);
    if (!d->bucket || !d->seen || !d->lo || !d->len || !d->nparams || !d->pending || !d->req)
        return nb_set_error(NB_ERR_NOMEM, "dist: out of memory for the bucket plan of %d parameters", n);
    const int64_t cap = (int64_t)(d->opts.bucket_bytes / sizeof(float));
    int k = -1;
    int64_t end = 0;
    for (int i = n - 1; i >= 0; i--) {
        int64_t off = ps->offset[i], numel = ps->p[i]->numel;
        if (numel > INT_MAX)
            return nb_set_error(NB_ERR_VALUE, "dist: parameter '%s' has %lld elements, more than one MPI message holds",
                                ps->names[i], (long long)numel);
        if (k < 0 || end - off > cap || end - off > INT_MAX) {
            k++;
            end = off + numel;
        }
        d->lo[k] = off;
        d->len[k] = end - off;
        d->nparams[k]++;
        d->bucket[i] = k;
    }
    d->nbuckets = k + 1;
    for (k = 0; k < d->nbuckets; k++) d->req[k] = MPI_REQUEST_NULL;
    return NB_OK;
}

nb_status nb__dist_plan_shard_buckets(nb_dist *d) {
    free(d->rs_counts);
    d->rs_counts = calloc((size_t)(d->nbuckets ? d->nbuckets : 1) * (size_t)d->size, sizeof *d->rs_counts);
    if (!d->rs_counts) return nb_set_error(NB_ERR_NOMEM, "dist: rank %d: out of memory for the sharded bucket plan", d->rank);
    for (int k = 0; k < d->nbuckets; k++)
        for (int r = 0; r < d->size; r++) {
            const int64_t blo = d->lo[k], bhi = blo + d->len[k], slo = d->shard_lo[r], shi = slo + d->shard_n[r];
            const int64_t a = blo > slo ? blo : slo, e = bhi < shi ? bhi : shi;
            d->rs_counts[(size_t)k * d->size + r] = e > a ? (int)(e - a) : 0;
        }
    return NB_OK;
}

static void free_plan(nb_dist *d) {
    free(d->rs_counts), d->rs_counts = NULL;
    free(d->bucket), free(d->seen), free(d->lo), free(d->len), free(d->nparams), free(d->pending), free(d->req);
    d->bucket = NULL, d->seen = NULL, d->lo = NULL, d->len = NULL, d->nparams = NULL, d->pending = NULL, d->req = NULL;
    d->nbuckets = 0;
}

/* Every rank must hold the same model: the same number of parameter tensors, shapes, dtype and
 * total (the averaging pairs element i of every rank's grad_flat). One allreduce of the layout's
 * fingerprint (FNV-1a over those) as its minimum and maximum: a rank with another model fails
 * here, on every rank, instead of averaging unrelated numbers (shared memory) or truncating a
 * message (MPI). */
static nb_status check_same_model(nb_dist *d, const nb_params *ps) {
    uint64_t h = 0xcbf29ce484222325ULL;
#define MIX(v) (h = (h ^ (uint64_t)(v)) * 0x100000001b3ULL)
    MIX(ps != NULL);
    if (ps) {
        MIX(ps->dtype), MIX(ps->n), MIX(ps->total);
        for (int i = 0; i < ps->n; i++) {
            MIX(ps->p[i]->ndim);
            for (int k = 0; k < ps->p[i]->ndim; k++) MIX(ps->p[i]->shape[k]);
        }
    }
#undef MIX
    int64_t v[4] = {(int64_t)(h >> 1), -(int64_t)(h >> 1), ps ? ps->total : -1, ps ? -ps->total : 1}; /* min, -max */
    nb_status st = mpi_check(d, MPI_Allreduce(MPI_IN_PLACE, v, 4, MPI_INT64_T, MPI_MIN, d->comm), "model check");
    if (st != NB_OK) return st;
    if (v[0] != -v[1])
        return nb_set_error(NB_ERR_VALUE,
                            "dist_init: rank %d's model (%d parameter tensors, %lld floats) differs from another rank's "
                            "(totals %lld to %lld over the ranks): every rank must build the same parameters in the same order",
                            d->rank, ps ? ps->n : 0, (long long)(ps ? ps->total : 0), (long long)v[2], (long long)-v[3]);
    return NB_OK;
}

nb_dist *nb_dist_init(MPI_Comm comm, nb_params *ps, const nb_dist_opts *opts) {
    nb_dist_opts o = opts ? *opts : NB_DIST_DEFAULTS;
    if (check_opts(&o) != NB_OK) return NULL;
    if (comm == MPI_COMM_NULL) return nb_set_error(NB_ERR_VALUE, "dist_init: communicator is MPI_COMM_NULL"), NULL;
    nb_dist *d = calloc(1, sizeof *d);
    if (!d) return nb_set_error(NB_ERR_NOMEM, "dist_init: out of memory"), NULL;
    d->opts = o;
    d->rank = -1;
    d->comm = d->node = d->cross = MPI_COMM_NULL;
    d->win = MPI_WIN_NULL;
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (finalized) {
        free(d);
        return nb_set_error(NB_ERR_STATE, "dist_init: MPI was already finalized"), NULL;
    }
    if (!inited) {
        int provided = 0;
        if (mpi_check(d, MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread") != NB_OK) {
            free(d);
            return NULL;
        }
        d->finalize = true;
    }
    nb_status st = mpi_check(d, MPI_Comm_dup(comm, &d->comm), "MPI_Comm_dup");
    if (st == NB_OK) st = mpi_check(d, MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    if (st == NB_OK) st = mpi_check(d, MPI_Comm_rank(d->comm, &d->rank), "MPI_Comm_rank");
    if (st == NB_OK) st = mpi_check(d, MPI_Comm_size(d->comm, &d->size), "MPI_Comm_size");
    if (st == NB_OK) st = check_same_model(d, ps);
    if (st == NB_OK && ps && ps->dtype != NB_F32)
        st = nb_set_error(NB_ERR_DTYPE, "dist_init: data-parallel training averages f32 gradients; the parameters are %s",
                          nb_dtype_name(ps->dtype));
    if (st == NB_OK && ps) {
        d->ps = ps;
        d->grad_flat = ps->grad_flat;
        d->total = ps->total;
        st = plan_buckets(d);
        if (st == NB_OK && o.shm) st = nb__dist_shm_init(d);
    }
    if (st != NB_OK) {
        /* keep the message: freeing may make MPI calls that overwrite nothing of ours */
        char msg[NB_DIST_MSG];
        snprintf(msg, sizeof msg, "%s", nb_last_error());
        nb_dist_free(d);
        nb_set_error(st, "%s", msg);
        return NULL;
    }
    return d;
}

void nb_dist_free(nb_dist *d) {
    if (!d) return;
    if (d->in_step && d->ctx) nb_ctx_on_grad_ready(d->ctx, NULL, NULL);
    if (d->zopt) { /* freed before its sharded optimizer: detach it (its calls then fail with NB_ERR_STATE) */
        d->zopt->dist = NULL;
        free(d->shard_lo), free(d->shard_n), free(d->shard_grad);
    }
    free_plan(d);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) {
        nb__dist_shm_free(d);
        if (d->comm != MPI_COMM_NULL) MPI_Comm_free(&d->comm);
        if (d->finalize) MPI_Finalize();
    }
    free(d);
}

int nb_dist_rank(const nb_dist *d) { return d ? d->rank : -1; }
int nb_dist_size(const nb_dist *d) { return d ? d->size : 0; }
bool nb_dist_is_root(const nb_dist *d) { return d && d->rank == 0; }
MPI_Comm nb_dist_comm(const nb_dist *d) { return d ? d->comm : MPI_COMM_NULL; }
int nb_dist_num_buckets(const nb_dist *d) { return d ? d->nbuckets : 0; }
bool nb_dist_uses_shm(const nb_dist *d) { return d && nb__dist_shm_active(d); }

nb_status nb_dist_set_opts(nb_dist *d, const nb_dist_opts *opts) {
    if (!d || !opts) return nb_set_error(NB_ERR_NULL, "dist_set_opts: NULL argument");
    if (d->in_step) return nb_set_error(NB_ERR_STATE, "dist_set_opts: rank %d: a step is in progress", d->rank);
    nb_status st = check_opts(opts);
    if (st != NB_OK) return st;
    bool replan = d->ps && opts->bucket_bytes != d->opts.bucket_bytes;
    d->opts = *opts;
    if (replan) {
        free_plan(d);
        st = plan_buckets(d);
        return st == NB_OK && d->sharded ? nb__dist_plan_shard_buckets(d) : st;
    }
    return NB_OK;
}

nb_dist_stats nb_dist_get_stats(const nb_dist *d) { return d ? d->stats : (nb_dist_stats){0}; }
void nb_dist_reset_stats(nb_dist *d) {
    if (d) d->stats = (nb_dist_stats){0};
}

/* ---- waiting ------------------------------------------------------------------------------ */

nb_status nb_dist_wait(nb_dist *d, MPI_Request *req, const char *what) {
    if (!d || !req) return nb_set_error(NB_ERR_NULL, "dist_wait: NULL argument");
    const bool sleepy = d->opts.idle_sleep_us > 0;
    if (d->opts.timeout_s <= 0 && !sleepy) return mpi_check(d, MPI_Wait(req, MPI_STATUS_IGNORE), what);
    const double deadline = d->opts.timeout_s > 0 ? MPI_Wtime() + d->opts.timeout_s : INFINITY;
    const long ns = (long)(d->opts.idle_sleep_us * 1e3);
    for (;;) {
        int done = 0;
        nb_status st = mpi_check(d, MPI_Test(req, &done, MPI_STATUS_IGNORE), what);
        if (st != NB_OK || done) return st;
        if (MPI_Wtime() > deadline)
            return nb_set_error(NB_ERR_IO, "dist: rank %d: %s timed out after %g s (another rank failed or hangs; "
                                "MPI cannot cancel it: wait again or nb_dist_abort)",
                                d->rank, what, d->opts.timeout_s);
        if (sleepy) {
            /* the core goes to other work; MPI_Test on waking drives the progress again */
            nanosleep(&(struct timespec){ns / 1000000000L, ns % 1000000000L}, NULL);
            d->stats.idle_sleeps++;
        } else {
            sched_yield();
        }
    }
}

void nb_dist_abort(const nb_dist *d, const char *why) {
    fprintf(stderr, "nabla dist: rank %d aborting: %s\n", d ? d->rank : -1, why ? why : "");
    fflush(stderr);
    MPI_Abort(d && d->comm != MPI_COMM_NULL ? d->comm : MPI_COMM_WORLD, 1);
    _Exit(EXIT_FAILURE); /* MPI_Abort does not return; if an implementation does, do not go on */
}

/* ---- broadcasts and reductions (non-blocking + nb_dist_wait, so the timeout applies) ------- */

nb_status nb_dist_bcast_bytes(nb_dist *d, void *buf, size_t n) {
    if (!d || (!buf && n)) return nb_set_error(NB_ERR_NULL, "dist_bcast_bytes: NULL argument");
    for (size_t at = 0; at < n; at += (size_t)NB_DIST_CHUNK) {
        int cnt = (int)(n - at < (size_t)NB_DIST_CHUNK ? n - at : (size_t)NB_DIST_CHUNK);
        MPI_Request r;
        nb_status st = mpi_check(d, MPI_Ibcast((char *)buf + at, cnt, MPI_BYTE, 0, d->comm, &r), "Ibcast");
        if (st == NB_OK) st = nb_dist_wait(d, &r, "broadcast");
        if (st != NB_OK) return st;
    }
    return NB_OK;
}

nb_status nb_dist_bcast_floats(nb_dist *d, float *buf, int64_t n) {
    if (!d || (!buf && n > 0)) return nb_set_error(NB_ERR_NULL, "dist_bcast_floats: NULL argument");
    if (n < 0) return nb_set_error(NB_ERR_VALUE, "dist_bcast_floats: n = %lld is negative", (long long)n);
    for (int64_t at = 0; at < n; at += NB_DIST_CHUNK) {
        int cnt = (int)(n - at < NB_DIST_CHUNK ? n - at : NB_DIST_CHUNK);
        MPI_Request r;
        nb_status st = mpi_check(d, MPI_Ibcast(buf + at, cnt, MPI_FLOAT, 0, d->comm, &r), "Ibcast");
        if (st == NB_OK) st = nb_dist_wait(d, &r, "broadcast of floats");
        if (st != NB_OK) return st;
    }
    return NB_OK;
}

nb_status nb_dist_bcast_params(nb_dist *d, nb_params *ps) {
    if (!d || !ps) return nb_set_error(NB_ERR_NULL, "dist_bcast_params: NULL argument");
    dist_params_written(ps); /* rank 0's values replace these */
    return nb_dist_bcast_floats(d, ps->flat, ps->total);
}

bool nb__dist_blocking(const nb_dist *d) { return d->opts.timeout_s <= 0 && d->opts.idle_sleep_us <= 0; }

/* Blocking when waits may block (Open MPI's non-blocking collectives take several progress
 * rounds: tens of microseconds for a few bytes), else non-blocking + nb_dist_wait. */
static nb_status allreduce(nb_dist *d, void *v, int n, MPI_Datatype t, MPI_Op op, const char *what) {
    if (nb__dist_blocking(d)) return mpi_check(d, MPI_Allreduce(MPI_IN_PLACE, v, n, t, op, d->comm), what);
    MPI_Request r;
    nb_status st = mpi_check(d, MPI_Iallreduce(MPI_IN_PLACE, v, n, t, op, d->comm, &r), what);
    return st == NB_OK ? nb_dist_wait(d, &r, what) : st;
}

nb_status nb_dist_sum(nb_dist *d, double *v, int n) {
    if (!d || (!v && n)) return nb_set_error(NB_ERR_NULL, "dist_sum: NULL argument");
    if (n < 0) return nb_set_error(NB_ERR_VALUE, "dist_sum: n = %d is negative", n);
    return allreduce(d, v, n, MPI_DOUBLE, MPI_SUM, "metric sum");
}

nb_status nb_dist_mean(nb_dist *d, double *v, int n) {
    nb_status st = nb_dist_sum(d, v, n);
    for (int i = 0; st == NB_OK && i < n; i++) v[i] /= d->size;
    return st;
}

nb_status nb_dist_any(nb_dist *d, bool *flag) {
    if (!d || !flag) return nb_set_error(NB_ERR_NULL, "dist_any: NULL argument");
    int v = *flag ? 1 : 0;
    nb_status st = allreduce(d, &v, 1, MPI_INT, MPI_LOR, "any");
    if (st == NB_OK) *flag = v != 0;
    return st;
}

int nb_dist_printf(const nb_dist *d, FILE *f, const char *fmt, ...) {
    if (!d || d->rank != 0 || !f || !fmt) return 0;
    va_list ap;
    va_start(ap, fmt);
    int r = vfprintf(f, fmt, ap);
    va_end(ap);
    return r;
}

/* ---- gradient buckets --------------------------------------------------------------------- */

/* Start bucket k's reduction: an allreduce, or while sharded a reduce-scatter in which each
 * rank receives the sum of the part of the bucket in its slice (the bucket is contiguous and
 * the slices are in rank order, so the parts follow each other), into shard_grad. */
static nb_status start_bucket(nb_dist *d, int k) {
    char what[64];
    if (d->sharded) {
        snprintf(what, sizeof what, "Ireduce_scatter of gradient bucket %d", k);
        const int64_t me_lo = d->shard_lo[d->rank], at = d->lo[k] > me_lo ? d->lo[k] - me_lo : 0;
        const int *counts = d->rs_counts + (size_t)k * d->size;
        return mpi_check(d, MPI_Ireduce_scatter(d->grad_flat + d->lo[k], d->shard_grad + (counts[d->rank] ? at : 0), counts,
                                                MPI_FLOAT, MPI_SUM, d->comm, &d->req[k]),
                         what);
    }
    snprintf(what, sizeof what, "Iallreduce of gradient bucket %d", k);
    return mpi_check(d, MPI_Iallreduce(MPI_IN_PLACE, d->grad_flat + d->lo[k], (int)d->len[k], MPI_FLOAT, MPI_SUM, d->comm,
                                       &d->req[k]),
                     what);
}

static void cb_fail(nb_dist *d, nb_status st) {
    if (d->cb_status != NB_OK) return;
    d->cb_status = st;
    snprintf(d->cb_msg, sizeof d->cb_msg, "%s", nb_last_error());
}

/* Parameter whose gradient starts at element off of grad_flat, or -1. */
static int param_at(const nb_dist *d, int64_t off) {
    int lo = 0, hi = d->ps->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (d->ps->offset[mid] == off) return mid;
        if (d->ps->offset[mid] < off) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* nb_ctx_on_grad_ready callback: count the parameter; start every bucket that is full and
 * whose predecessors have started (the same order on every rank); drive MPI progress. */
static void on_grad_ready(nb_tensor *leaf, void *user) {
    nb_dist *d = user;
    if (!leaf->grad || leaf->grad->dtype != NB_F32) return;
    const float *g = leaf->grad->data;
    if (g < d->grad_flat || g >= d->grad_flat + d->total) return; /* not one of ps */
    int i = param_at(d, g - d->grad_flat);
    if (i < 0 || d->ps->p[i] != leaf) return;
    const double t0 = MPI_Wtime();
    if (d->seen[i]) {
        cb_fail(d, nb_set_error(NB_ERR_STATE, "dist: rank %d: gradient of '%s' reported twice in one step "
                                              "(one nb_backward between step_begin and step_finish)",
                                d->rank, d->ps->names[i]));
        return;
    }
    d->seen[i] = true;
    d->pending[d->bucket[i]]--;
    while (d->cb_status == NB_OK && d->started < d->nbuckets && d->pending[d->started] == 0) {
        nb_status st = start_bucket(d, d->started);
        if (st != NB_OK) cb_fail(d, st);
        else d->started++, d->stats.buckets_early++;
    }
    /* Open MPI moves non-blocking collectives forward mostly inside MPI calls: poke it. */
    int done = 0;
    if (d->started > 0) {
        nb_status st = mpi_check(d, MPI_Testall(d->started, d->req, &done, MPI_STATUSES_IGNORE), "MPI_Testall");
        if (st != NB_OK) cb_fail(d, st);
    }
    d->stats.comm_in_backward_s += MPI_Wtime() - t0;
}

nb_status nb_dist_step_begin(nb_dist *d, nb_ctx *ctx) {
    if (!d || !ctx) return nb_set_error(NB_ERR_NULL, "dist_step_begin: NULL argument");
    if (!d->ps) return nb_set_error(NB_ERR_STATE, "dist_step_begin: rank %d: nb_dist_init was given no parameters", d->rank);
    if (d->in_step) return nb_set_error(NB_ERR_STATE, "dist_step_begin: rank %d: the previous step was not finished", d->rank);
    if (d->ps->grad_flat != d->grad_flat || d->ps->total != d->total)
        return nb_set_error(NB_ERR_STATE, "dist_step_begin: rank %d: parameters were added after nb_dist_init", d->rank);
    for (int k = 0; k < d->nbuckets; k++) d->pending[k] = d->nparams[k], d->req[k] = MPI_REQUEST_NULL;
    memset(d->seen, 0, (size_t)d->ps->n * sizeof *d->seen);
    d->started = 0;
    d->cb_status = NB_OK;
    d->cb_msg[0] = 0;
    d->in_step = true;
    d->ctx = ctx;
    nb_ctx_on_grad_ready(ctx, d->opts.overlap && !nb__dist_shm_active(d) ? on_grad_ready : NULL, d);
    return NB_OK;
}

nb_status nb__dist_agree(nb_dist *d, nb_status local, const char *msg) {
    int pair[2] = {local != NB_OK, d->rank};
    nb_status st = allreduce(d, pair, 1, MPI_2INT, MPI_MAXLOC, "status agreement");
    if (st != NB_OK || !pair[0]) return st;
    char buf[NB_DIST_MSG] = "";
    if (d->rank == pair[1]) snprintf(buf, sizeof buf, "%s (%s)", msg && *msg ? msg : "no message", nb_status_name(local));
    MPI_Request r;
    st = mpi_check(d, MPI_Ibcast(buf, (int)sizeof buf, MPI_CHAR, pair[1], d->comm, &r), "Ibcast of the error message");
    if (st == NB_OK) st = nb_dist_wait(d, &r, "broadcast of the error message");
    if (st != NB_OK) return st;
    buf[sizeof buf - 1] = 0;
    return nb_set_error(NB_ERR_STATE, "dist: rank %d failed: %s", pair[1], buf);
}

nb_status nb_dist_step_finish(nb_dist *d, nb_status local) {
    if (!d) return nb_set_error(NB_ERR_NULL, "dist_step_finish: NULL argument");
    if (!d->in_step) return nb_set_error(NB_ERR_STATE, "dist_step_finish: rank %d: no step was begun", d->rank);
    nb_ctx_on_grad_ready(d->ctx, NULL, NULL);
    d->in_step = false;
    char msg[NB_DIST_MSG] = "";
    if (local != NB_OK) snprintf(msg, sizeof msg, "%s", d->ctx && nb_ctx_status(d->ctx) ? nb_ctx_error(d->ctx) : nb_last_error());
    else if (d->cb_status != NB_OK) local = d->cb_status, snprintf(msg, sizeof msg, "%s", d->cb_msg);
    const double t0 = MPI_Wtime();
    nb_status st = NB_OK;
    const bool shm = nb__dist_shm_active(d);
    if (shm) {
        st = nb__dist_shm_reduce(d);
    } else if (d->sharded && !d->opts.overlap) {
        /* ZeRO-1: this rank receives the sum of its own slice only */
        MPI_Request r;
        st = mpi_check(d, MPI_Ireduce_scatter(d->grad_flat, d->shard_grad, d->shard_n, MPI_FLOAT, MPI_SUM, d->comm, &r),
                       "Ireduce_scatter of gradients");
        if (st == NB_OK) st = nb_dist_wait(d, &r, "reduce-scatter of gradients");
    } else if (d->opts.overlap) {
        /* every rank starts every bucket in the same order, failed or not, so none waits forever */
        while (st == NB_OK && d->started < d->nbuckets) {
            st = start_bucket(d, d->started);
            if (st == NB_OK) d->started++;
        }
        for (int k = 0; st == NB_OK && k < d->started; k++) {
            char what[64];
            snprintf(what, sizeof what, "%s of gradient bucket %d", d->sharded ? "reduce-scatter" : "allreduce", k);
            st = nb_dist_wait(d, &d->req[k], what);
        }
    } else if (d->total > 0) {
        for (int64_t at = 0; st == NB_OK && at < d->total; at += NB_DIST_CHUNK) {
            int cnt = (int)(d->total - at < NB_DIST_CHUNK ? d->total - at : NB_DIST_CHUNK);
            st = allreduce(d, d->grad_flat + at, cnt, MPI_FLOAT, MPI_SUM, "allreduce of gradients");
        }
    }
    if (st == NB_OK && d->sharded && !shm) /* padding between buckets was never received: it stays 0 (calloc) */
        memcpy(d->grad_flat + d->shard_lo[d->rank], d->shard_grad, (size_t)d->shard_n[d->rank] * sizeof(float));
    if (st == NB_OK) st = nb__dist_agree(d, local, msg);
    if (st == NB_OK && shm && !d->sharded) nb__dist_shm_gather(d);
    d->stats.wait_s += MPI_Wtime() - t0;
    d->stats.steps++;
    if (st != NB_OK || shm) return st; /* shared memory averages as it adds up */
    const float inv = 1.0f / (float)d->size;
    float *g = d->sharded ? d->grad_flat + d->shard_lo[d->rank] : d->grad_flat;
    const int64_t n = d->sharded ? d->shard_n[d->rank] : d->total;
#pragma omp parallel for simd if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; i++) g[i] *= inv;
    return NB_OK;
}

nb_status nb_dist_backward(nb_dist *d, nb_ctx *ctx, nb_tensor *loss) {
    nb_status st = nb_dist_step_begin(d, ctx);
    if (st != NB_OK) return st;
    return nb_dist_step_finish(d, nb_backward(ctx, loss, NULL));
}
