/* Private to libnabla_dist: the state of nb_dist, shared by dist.c (steps, collectives) and
 * zero.c (sharded optimizer state, checkpoints). */
#ifndef NABLA_DIST_INTERNAL_H
#define NABLA_DIST_INTERNAL_H

#include "nabla/dist.h"

#define NB_DIST_MSG 384
#define NB_DIST_CHUNK ((int64_t)1 << 30) /* elements per MPI call (counts are int) */

struct nb_dist {
    MPI_Comm comm;
    int rank, size;
    bool finalize; /* nb_dist_init called MPI_Init */
    nb_dist_opts opts;
    nb_params *ps;
    float *grad_flat; /* as seen at init: parameters added later would move it */
    int64_t total;
    /* bucket plan: bucket k holds parameters in reverse order, elements [lo[k], lo[k]+len[k]) */
    int nbuckets;
    int64_t *lo, *len;
    int *nparams;  /* parameters per bucket */
    int *bucket;   /* bucket of parameter i */
    /* one step */
    int *pending;  /* parameters of bucket k not reported yet */
    bool *seen;    /* parameter i reported */
    MPI_Request *req;
    int started;   /* buckets 0..started-1 have their Iallreduce started */
    bool in_step;
    nb_ctx *ctx;
    nb_status cb_status; /* first failure inside the grad-ready callback */
    char cb_msg[NB_DIST_MSG];
    nb_dist_stats stats;
    /* ZeRO stage 1 (an nb_dist_optim is attached): rank r owns elements
     * [shard_lo[r], shard_lo[r] + shard_n[r]) of the flat buffers; finish reduce-scatters */
    bool sharded;
    nb_dist_optim *zopt; /* the attached sharded optimizer: detached (zopt->dist = NULL) if d is freed first */
    int *shard_lo, *shard_n;
    float *shard_grad; /* shard_n[rank] floats: the reduce-scatter's receive buffer */
    int *rs_counts;    /* nbuckets x size: how many of bucket k's elements lie in rank r's slice */
    /* shared-memory averaging (shm.c): win is MPI_WIN_NULL when unused (one rank per node,
     * unequal nodes, no parameters or opts.shm off at init) */
    MPI_Comm node, cross;   /* this node's ranks; the ranks of the same local rank on every node */
    int lrank, lsize;       /* rank in node, ranks per node */
    MPI_Win win;            /* segment r: local rank r's copy of grad_flat, then its result slice */
    bool shm_locked;        /* MPI_Win_lock_all taken */
    float **seg;            /* lsize segment addresses */
    int64_t *shm_lo;        /* lsize + 1: local rank r reduces [shm_lo[r], shm_lo[r+1]) */
};

/* An MPI return code other than MPI_SUCCESS as NB_ERR_IO naming the rank and the operation. */
nb_status nb__dist_mpi_check(const nb_dist *d, int rc, const char *what);
#define mpi_check nb__dist_mpi_check
/* While sharded: the per-bucket reduce-scatter counts (d->rs_counts) for the current bucket
 * plan and shard table. NB_ERR_NOMEM. */
nb_status nb__dist_plan_shard_buckets(nb_dist *d);
/* All ranks learn whether any failed (local != NB_OK) and, if so, the message of the lowest
 * failing rank: NB_OK, or NB_ERR_STATE "dist: rank R failed: <msg>" on every rank. Collective. */
nb_status nb__dist_agree(nb_dist *d, nb_status local, const char *msg);
/* No timeout and no sleeping waits: collectives may block inside MPI. */
bool nb__dist_blocking(const nb_dist *d);

/* Shared-memory averaging (shm.c). init: plan and allocate the window if opts.shm and it can
 * serve (collective; NB_OK without a window when it cannot); free: release it; active: this
 * step uses it; reduce: this rank's slice of the average (sharded: its shard, into grad_flat);
 * gather, after a status agreement on every rank: grad_flat <- every slice of the average. */
nb_status nb__dist_shm_init(nb_dist *d);
void nb__dist_shm_free(nb_dist *d);
bool nb__dist_shm_active(const nb_dist *d);
nb_status nb__dist_shm_reduce(nb_dist *d);
void nb__dist_shm_gather(nb_dist *d);

#endif

/* The parameters' values were written in place (a broadcast, an all-gather): their write
 * counters move (nb__bump of the core library, which this library cannot link), so a graph
 * recorded before refuses to differentiate old values. */
static inline void dist_params_written(nb_params *ps) {
    for (int i = 0; i < ps->n; i++) {
        nb_tensor *t = ps->p[i];
        ++*(t->version_ ? t->version_ : &t->vown_);
    }
}
