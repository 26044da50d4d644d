/* Gradient averaging through shared memory: the ranks of one node (MPI_COMM_TYPE_SHARED) each
 * own one segment of a shared window: a copy of grad_flat, then room for one reduced slice. A
 * step copies this rank's gradients into its segment; after a barrier each rank adds up its
 * slice over the node's copies in local-rank order (the same order on every run, so the same
 * bits) into its result slice, allreduces that with the ranks of the same local rank on the other
 * nodes (hierarchical: only 1/L of the buffer leaves a node of L ranks) and divides by the world
 * size. The status agreement of step_finish is the second synchronisation: after it every rank
 * copies all result slices into grad_flat. No MPI message inside a node carries gradients.
 * Reuse is safe without a third barrier: a rank writes its copy again only after the agreement
 * (every rank has finished summing), and its result slice only after the next step's barrier
 * (every rank has finished copying it out). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* A node needs >= 2 ranks to gain anything, and every node the same count (the cross-node
 * communicator pairs the slices by local rank). */
static nb_status shm_plan(nb_dist *d, bool *usable) {
    nb_status st = mpi_check(d, MPI_Comm_split_type(d->comm, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &d->node),
                             "MPI_Comm_split_type(SHARED)");
    if (st == NB_OK) st = mpi_check(d, MPI_Comm_set_errhandler(d->node, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    if (st == NB_OK) st = mpi_check(d, MPI_Comm_rank(d->node, &d->lrank), "MPI_Comm_rank(node)");
    if (st == NB_OK) st = mpi_check(d, MPI_Comm_size(d->node, &d->lsize), "MPI_Comm_size(node)");
    int minmax[2] = {-d->lsize, d->lsize};
    if (st == NB_OK)
        st = mpi_check(d, MPI_Allreduce(MPI_IN_PLACE, minmax, 2, MPI_INT, MPI_MAX, d->comm), "Allreduce of node sizes");
    *usable = st == NB_OK && d->lsize > 1 && -minmax[0] == minmax[1];
    if (!*usable) return st;
    if (st == NB_OK) st = mpi_check(d, MPI_Comm_split(d->comm, d->lrank, d->rank, &d->cross), "MPI_Comm_split(cross-node)");
    if (st == NB_OK) st = mpi_check(d, MPI_Comm_set_errhandler(d->cross, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    d->shm_lo = calloc((size_t)d->lsize + 1, sizeof *d->shm_lo);
    d->seg = calloc((size_t)d->lsize, sizeof *d->seg);
    if (st == NB_OK && (!d->shm_lo || !d->seg))
        st = nb_set_error(NB_ERR_NOMEM, "dist: rank %d: out of memory for the shared-memory plan", d->rank);
    for (int r = 0; st == NB_OK && r <= d->lsize; r++) d->shm_lo[r] = d->total * r / d->lsize;
    return st;
}

nb_status nb__dist_shm_init(nb_dist *d) {
    d->node = d->cross = MPI_COMM_NULL;
    d->win = MPI_WIN_NULL;
    bool usable = false;
    nb_status st = shm_plan(d, &usable);
    if (st != NB_OK || !usable) return st;
    /* noncontig: each segment starts on its own page (first touch by its owner) */
    MPI_Info info;
    MPI_Info_create(&info);
    MPI_Info_set(info, "alloc_shared_noncontig", "true");
    float *mine = NULL;
    const int64_t elems = d->total + d->total / d->lsize + 1; /* the copy, then the largest slice */
    st = mpi_check(d, MPI_Win_allocate_shared((MPI_Aint)elems * (MPI_Aint)sizeof(float),
                                              (int)sizeof(float), info, d->node, &mine, &d->win),
                   "MPI_Win_allocate_shared of the gradient window");
    MPI_Info_free(&info);
    for (int r = 0; st == NB_OK && r < d->lsize; r++) {
        MPI_Aint size;
        int unit;
        st = mpi_check(d, MPI_Win_shared_query(d->win, r, &size, &unit, &d->seg[r]), "MPI_Win_shared_query");
    }
    if (st == NB_OK) st = mpi_check(d, MPI_Win_lock_all(MPI_MODE_NOCHECK, d->win), "MPI_Win_lock_all");
    if (st == NB_OK) d->shm_locked = true;
    return st;
}

void nb__dist_shm_free(nb_dist *d) {
    if (d->shm_locked) MPI_Win_unlock_all(d->win);
    if (d->win != MPI_WIN_NULL) MPI_Win_free(&d->win);
    if (d->cross != MPI_COMM_NULL) MPI_Comm_free(&d->cross);
    if (d->node != MPI_COMM_NULL) MPI_Comm_free(&d->node);
    free(d->shm_lo), free(d->seg);
    d->shm_lo = NULL, d->seg = NULL, d->shm_locked = false;
}

bool nb__dist_shm_active(const nb_dist *d) {
    /* sharded training slices by rank of the whole communicator: one node only */
    return d->opts.shm && d->win != MPI_WIN_NULL && (!d->sharded || d->lsize == d->size);
}

/* Every rank's stores to its segment are visible to the node's ranks after this. */
static nb_status node_sync(nb_dist *d, const char *what) {
    MPI_Win_sync(d->win);
    nb_status st;
    if (nb__dist_blocking(d)) {
        st = mpi_check(d, MPI_Barrier(d->node), what);
    } else {
        MPI_Request r;
        st = mpi_check(d, MPI_Ibarrier(d->node, &r), what);
        if (st == NB_OK) st = nb_dist_wait(d, &r, what);
    }
    MPI_Win_sync(d->win);
    return st;
}

/* out[0, n) <- (seg[0] + seg[1] + ... + seg[L-1]) * scale over [lo, lo+n), added in that order. */
static void sum_slice(float *restrict out, float *const *seg, int nseg, int64_t lo, int64_t n, float scale) {
    const float *a = seg[0] + lo, *b = seg[1] + lo;
    if (nseg == 2) {
        for (int64_t i = 0; i < n; i++) out[i] = (a[i] + b[i]) * scale;
        return;
    }
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
    for (int r = 2; r < nseg - 1; r++) {
        const float *c = seg[r] + lo;
        for (int64_t i = 0; i < n; i++) out[i] += c[i];
    }
    const float *c = seg[nseg - 1] + lo;
    for (int64_t i = 0; i < n; i++) out[i] = (out[i] + c[i]) * scale;
}

nb_status nb__dist_shm_reduce(nb_dist *d) {
    const int me = d->lrank;
    /* sharded (one node): this rank needs its own shard's average only, in grad_flat */
    const int64_t lo = d->sharded ? d->shard_lo[me] : d->shm_lo[me];
    const int64_t n = d->sharded ? d->shard_n[me] : d->shm_lo[me + 1] - lo;
    float *out = d->sharded ? d->grad_flat + lo : d->seg[me] + d->total;
    memcpy(d->seg[me], d->grad_flat, (size_t)d->total * sizeof(float));
    nb_status st = node_sync(d, "barrier before the shared-memory reduction");
    if (st != NB_OK) return st;
    const bool one_node = d->lsize == d->size;
    sum_slice(out, d->seg, d->lsize, lo, n, one_node ? 1.0f / (float)d->size : 1.0f);
    for (int64_t at = 0; !one_node && st == NB_OK && at < n; at += NB_DIST_CHUNK) {
        MPI_Request r;
        const int cnt = (int)(n - at < NB_DIST_CHUNK ? n - at : NB_DIST_CHUNK);
        st = mpi_check(d, MPI_Iallreduce(MPI_IN_PLACE, out + at, cnt, MPI_FLOAT, MPI_SUM, d->cross, &r),
                       "Iallreduce of a node's slice across nodes");
        if (st == NB_OK) st = nb_dist_wait(d, &r, "allreduce of a node's slice across nodes");
    }
    const float inv = 1.0f / (float)d->size;
    for (int64_t i = 0; !one_node && st == NB_OK && i < n; i++) out[i] *= inv;
    MPI_Win_sync(d->win); /* the agreement that follows publishes the result slices */
    return st;
}

void nb__dist_shm_gather(nb_dist *d) {
    MPI_Win_sync(d->win);
    for (int r = 0; r < d->lsize; r++)
        memcpy(d->grad_flat + d->shm_lo[r], d->seg[r] + d->total, (size_t)(d->shm_lo[r + 1] - d->shm_lo[r]) * sizeof(float));
}
