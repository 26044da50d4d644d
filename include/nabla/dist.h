/* nabla/dist.h — data-parallel training across processes with MPI (library nabla_dist).
 *
 * Not included by nabla.h: only programs that link nabla_dist (built when CMake finds MPI)
 * include it. Every rank holds a full copy of the model; each computes the gradient of its own
 * shard of the global batch; the gradients are averaged across ranks (allreduce) so that every
 * rank applies the same update. N ranks with per-rank batch B then train like one process with
 * batch N*B (exactly, up to float rounding, when the loss is a mean over the batch).
 *
 * By default the ranks of one node average through a shared-memory window (opts.shm; across
 * nodes hierarchically: each rank allreduces only its node-summed slice). Otherwise, or with
 * opts.shm = false, gradients are averaged in buckets: contiguous ranges of ps->grad_flat, filled in reverse
 * parameter order (the order backward finishes them). The engine reports each parameter as soon
 * as its gradient is final (nb_ctx_on_grad_ready); when all parameters of a bucket are reported,
 * its non-blocking MPI_Iallreduce starts while backward goes on with earlier layers (like
 * PyTorch DDP). Buckets start in the same order on every rank, whatever order they fill in.
 *
 * Usage — the init / step / finish trio:
 *
 *     nb_dist *d = nb_dist_init(MPI_COMM_WORLD, ps, NULL);  // calls MPI_Init if needed
 *     if (!d) { fprintf(stderr, "%s\n", nb_last_error()); return 1; }
 *     nb_dist_bcast_params(d, ps);                          // every rank starts from rank 0's weights
 *     for (step...) {
 *         nb_ctx_reset(ctx);
 *         nb_params_zero_grad(ps);
 *         nb_dist_step_begin(d, ctx);                       // hooks the bucket reduction into backward
 *         nb_tensor *loss = ...forward on this rank's shard (nb_dist_shard)...;
 *         nb_status st = nb_backward(ctx, loss, NULL);
 *         st = nb_dist_step_finish(d, st);                  // wait, average; agree on errors
 *         if (st != NB_OK) break;                           // every rank breaks at the same step
 *         ...optimizer step on ps (identical on every rank)...
 *         double l = nb_item(loss); nb_dist_mean(d, &l, 1); // metrics: reduce before printing
 *         nb_dist_printf(d, stdout, "step %d loss %.4f\n", step, l);  // rank 0 only
 *     }
 *     nb_dist_free(d);                                      // MPI_Finalize if init called MPI_Init
 *
 * or, without overlap control, nb_dist_backward(d, ctx, loss) for the three middle lines.
 *
 * Errors. The library's communicator (a duplicate of the one given) uses MPI_ERRORS_RETURN;
 * every MPI return code is checked and becomes NB_ERR_IO with a message naming the rank
 * ("dist: rank 1: Iallreduce of bucket 2: MPI_ERR_TRUNCATE ..."). nb_dist_step_finish takes
 * this rank's status of the step and agrees on it with all ranks: if any rank failed, every
 * rank returns NB_ERR_STATE with "dist: rank R failed: <its message> (<status>)", so all stop
 * at the same step instead of hanging in the next collective. A rank that never reaches a collective (it
 * crashed in user code, hangs, or left the loop) cannot be detected that way: set
 * opts.timeout_s, then every wait polls MPI_Test up to that deadline and returns NB_ERR_IO
 * ("timed out"). MPI cannot cancel a started collective, so after a timeout the communicator
 * is unusable: the only safe way out is nb_dist_abort, which kills all ranks (MPI_Abort).
 *
 * Threads: nabla's kernels may use OpenMP; MPI is called only from the thread that runs
 * nb_backward and the nb_dist_* functions (MPI_THREAD_FUNNELED).
 */
#ifndef NABLA_DIST_H
#define NABLA_DIST_H

#include <mpi.h>

#include "graph.h"
#include "io.h"
#include "optim.h"
#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nb_dist nb_dist;

typedef struct {
    size_t bucket_bytes; /* gradient bucket size cap, default 1 MiB (a larger parameter gets its own bucket) */
    bool overlap;        /* default true; false: one blocking allreduce of grad_flat after backward */
    double timeout_s;    /* 0 (default): waits block; > 0: waits give up with NB_ERR_IO after this long */
    /* 0 (default): a wait spins inside MPI (MPI_Wait; the lowest latency when every rank has a
     * core of its own). > 0: a wait polls MPI_Test and sleeps this many microseconds between
     * polls, leaving the core to whatever else is runnable (another rank on an oversubscribed
     * machine, a competing process) at the cost of up to that much latency per wait. The
     * results are the same bits either way. */
    double idle_sleep_us;
    /* default true: the ranks of one node (MPI_COMM_TYPE_SHARED) average through a shared
     * window (a memory copy, a sum of this rank's slice over the node's copies in rank order,
     * two barriers; across nodes an allreduce of the slice only) instead of MPI messages; then
     * bucket_bytes and overlap do not apply. Takes effect only if on at nb_dist_init, with
     * parameters, >= 2 ranks per node and the same count on every node (nb_dist_uses_shm). */
    bool shm;
} nb_dist_opts;
#define NB_DIST_DEFAULTS ((nb_dist_opts){(size_t)1 << 20, true, 0.0, 0.0, true})

/* ---- setup ------------------------------------------------------------------------------ */
/* Set up data-parallel training of ps over comm (MPI_COMM_WORLD or any communicator; it is
 * duplicated, so the library's messages never mix with yours). Calls MPI_Init_thread
 * (FUNNELED) if MPI is not initialized yet; nb_dist_free then finalizes it. ps may be NULL
 * (metrics and broadcasts only); otherwise add every parameter before this call (the bucket
 * plan is made here). opts may be NULL (NB_DIST_DEFAULTS). Collective: every rank of comm
 * calls it. Returns NULL with nb_last_error() on failure (NB_ERR_IO for MPI errors, NB_ERR_DTYPE
 * for F64 parameters: data-parallel training averages F32 gradients only). */
nb_dist *nb_dist_init(MPI_Comm comm, nb_params *ps, const nb_dist_opts *opts);
/* Release the state (waits for nothing: call after the last finish). Finalizes MPI if
 * nb_dist_init initialized it. NULL is fine. */
void nb_dist_free(nb_dist *d);

int nb_dist_rank(const nb_dist *d);           /* this process's rank in [0, size) */
int nb_dist_size(const nb_dist *d);           /* number of ranks (world size) */
bool nb_dist_is_root(const nb_dist *d);       /* rank 0: the one that prints and writes files */
MPI_Comm nb_dist_comm(const nb_dist *d);      /* the library's duplicated communicator */
int nb_dist_num_buckets(const nb_dist *d);    /* gradient buckets of the plan */
bool nb_dist_uses_shm(const nb_dist *d);      /* steps average through shared memory (opts.shm) */
/* Change options between steps (e.g. overlap on/off for a comparison, or the timeout). */
nb_status nb_dist_set_opts(nb_dist *d, const nb_dist_opts *opts);

/* ---- broadcasts from rank 0 (collective) -------------------------------------------------- */
/* Copy rank 0's parameter values (ps->flat) to every rank. */
nb_status nb_dist_bcast_params(nb_dist *d, nb_params *ps);
/* Copy rank 0's n floats (optimizer state, a snapshot ...) to every rank. */
nb_status nb_dist_bcast_floats(nb_dist *d, float *buf, int64_t n);
/* Copy rank 0's n bytes to every rank (a decision, a seed, a struct of plain data). */
nb_status nb_dist_bcast_bytes(nb_dist *d, void *buf, size_t n);

/* ---- a training step ---------------------------------------------------------------------- */
/* Start a step: route ctx's grad-ready reports (nb_ctx_on_grad_ready) to the bucket
 * reduction. Call before nb_backward, with .grad already zeroed or holding what this step adds
 * to. Replaces any grad-ready callback ctx had. */
nb_status nb_dist_step_begin(nb_dist *d, nb_ctx *ctx);
/* End a step after nb_backward returned `local` (this rank's status): start any bucket not
 * started yet (a parameter unused this step leaves its bucket waiting), wait for every
 * bucket, divide grad_flat by the world size, and agree on the status with all ranks.
 * Collective. Returns NB_OK when all ranks succeeded — then ps->grad_flat is the average of
 * all ranks' gradients, identical on every rank; otherwise NB_ERR_STATE naming the first
 * failing rank (on every rank), or NB_ERR_IO for an MPI error or timeout here. Unhooks ctx. */
nb_status nb_dist_step_finish(nb_dist *d, nb_status local);
/* begin + nb_backward(ctx, loss, NULL) + finish. */
nb_status nb_dist_backward(nb_dist *d, nb_ctx *ctx, nb_tensor *loss);

/* Timing of the steps so far (for benchmarks): seconds spent inside MPI during backward
 * (starting buckets, driving progress) and seconds spent waiting in finish. */
typedef struct {
    int64_t steps;
    double comm_in_backward_s; /* in the grad-ready callback: Iallreduce starts + MPI_Testall */
    double wait_s;             /* in step_finish: waiting for reductions + agreeing on status */
    int64_t buckets_early;     /* buckets started during backward (the rest start in finish) */
    int64_t idle_sleeps;       /* sleeps in waits (opts.idle_sleep_us > 0): how often this rank waited */
} nb_dist_stats;
nb_dist_stats nb_dist_get_stats(const nb_dist *d);
void nb_dist_reset_stats(nb_dist *d);

/* ---- metrics and decisions (collective) ---------------------------------------------------- */
/* v[0..n) <- sum over ranks of v (in place, every rank gets the result). */
nb_status nb_dist_sum(nb_dist *d, double *v, int n);
/* v[0..n) <- mean over ranks. For accuracy over unequal shards, sum (correct, count) instead. */
nb_status nb_dist_mean(nb_dist *d, double *v, int n);
/* *flag <- true on every rank if it is true on any rank (e.g. "stop now", "NaN seen"). */
nb_status nb_dist_any(nb_dist *d, bool *flag);
/* Early stopping: feed every rank's stopper the same value — nb_dist_mean the validation
 * metric first (or decide on rank 0 and nb_dist_bcast_bytes the decision) — so all ranks stop
 * at the same epoch; a rank leaving the loop alone makes the others wait forever. */

/* fprintf on rank 0 only (other ranks print nothing and return 0). */
int nb_dist_printf(const nb_dist *d, FILE *f, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- waiting with a deadline, last resort -------------------------------------------------- */
/* Wait for req, polling MPI_Test until d's timeout (none: block), sleeping between polls when
 * opts.idle_sleep_us > 0. what names the operation in
 * the message. NB_OK, or NB_ERR_IO "dist: rank R: <what> timed out after T s (another rank
 * failed or hangs)" — the request is then still pending: you may wait again, or give up with
 * nb_dist_abort (MPI cannot cancel a collective). */
nb_status nb_dist_wait(nb_dist *d, MPI_Request *req, const char *what);
/* Kill every rank of the job: writes "nabla dist: rank R aborting: <why>" to stderr, then
 * MPI_Abort(comm, 1). Does not return. The only nabla function that ends the process; use it
 * after a timeout, when clean agreement is impossible. */
void nb_dist_abort(const nb_dist *d, const char *why);

/* ---- sharded optimizer state (ZeRO stage 1) ------------------------------------------------- */
/* Instead of every rank keeping the whole optimizer state (Adam: 2 floats per parameter
 * element) and applying the same update, rank r owns a contiguous slice of ps->flat (elements
 * [lo, lo+n), n = total/N give or take one) and keeps state for that slice only, so optimizer
 * memory per rank is ~1/N of nb_optim's. A step:
 *   nb_dist_step_finish  reduce-scatters the gradients: ps->grad_flat[lo, lo+n) holds the
 *                        average over ranks; the rest of grad_flat holds this rank's own
 *                        gradient (undefined for the update: clip with
 *                        nb_dist_optim_clip_grad_norm, not nb_clip_grad_norm);
 *   nb_dist_optim_step   applies def->update (the same nb_optim_def function, decay flags and
 *                        block size as nb_optim_step) to this rank's slice, then all-gathers
 *                        ps->flat, so every rank has all updated parameters.
 * The parameters equal plain data parallelism + nb_optim_step to float rounding. With
 * opts.overlap (the default) the reduce-scatter goes bucket by bucket during backward, like the
 * allreduce of plain data parallelism (each rank receives the part of a bucket in its slice);
 * without, one reduce-scatter of the whole buffer after backward. Both give the same bits. Fields are public like nb_optim's: change
 * hp between steps (schedules); step counts the steps taken. */
typedef struct nb_dist_optim {
    const nb_optim_def *def;
    nb_dist *dist;
    nb_params *ps;
    nb_hparams hp;
    int64_t step;
    int nslots;
    int64_t lo, n;                      /* this rank's slice of ps->flat */
    float *state[NB_OPTIM_MAX_SLOTS];   /* slot k: n floats for elements lo.., NULL for k >= nslots */
    /* private: the block table of the slice */
    int64_t nblocks_;
    int *block_param_;
    int64_t *block_start_, *block_len_;
    /* private: global-norm clipping (blocks of NB_OPTIM_BLOCK; this rank owns those starting in its slice) */
    int *norm_cnt_, *norm_displ_;           /* blocks owned per rank, first block per rank */
    int *tail_scnt_, *tail_sdispl_, *tail_rcnt_, *tail_rdispl_; /* the exchange of cut blocks' tails */
    double *block_sq_;                      /* every block's sum of squares */
    float *tail_;                           /* receives the rest of my last block */
    int64_t tail_n_;
} nb_dist_optim;
/* Attach a sharded optimizer to d (made with the parameters, nb_dist_init(comm, ps, ...));
 * hp NULL = def's defaults. Collective. NULL with nb_last_error on bad hp, a second attached
 * optimizer, more than INT_MAX elements, no memory. Free it before d (freed after d, it was
 * detached by nb_dist_free: its calls fail with NB_ERR_STATE, and it must still be freed). */
nb_dist_optim *nb_dist_optim_new(nb_dist *d, const nb_optim_def *def, const nb_hparams *hp);
/* Update this rank's slice from the averaged gradient, then all-gather the parameters.
 * Collective; call after nb_dist_step_finish returned NB_OK on every rank. */
nb_status nb_dist_optim_step(nb_dist_optim *o);
/* Global-norm gradient clipping of sharded training (torch clip_grad_norm_ over the whole
 * model): the norm of the averaged gradient of all ranks' slices; if it exceeds max_norm, this
 * rank's slice of ps->grad_flat is scaled by max_norm / (norm + 1e-6). Call between
 * nb_dist_step_finish and nb_dist_optim_step, with the same max_norm on every rank. Returns the
 * norm before clipping, the same on every rank and bit for bit the value nb_clip_grad_norm
 * returns for the same averaged gradient in one process (any rank count, any thread count):
 * each rank adds up the squares of the NB_OPTIM_BLOCK-element blocks that start in its slice
 * (nb_grad_block_sq; the rest of a block cut by the slice's end comes from the next ranks, at
 * most NB_OPTIM_BLOCK - 1 floats), the block sums are all-gathered and added in block order.
 * Outside the slice, grad_flat is left unspecified (partly overwritten by those tails).
 * Collective. -1 with nb_last_error: NB_ERR_VALUE for max_norm <= 0 or NaN, NB_ERR_IO for MPI. */
double nb_dist_optim_clip_grad_norm(nb_dist_optim *o, double max_norm);
/* Detach from the nb_dist (which reduces gradients by allreduce again) and free. NULL is fine. */
void nb_dist_optim_free(nb_dist_optim *o);
/* Floats of optimizer state this rank holds (nslots * n); nb_optim_state_numel is the whole. */
int64_t nb_dist_optim_state_numel(const nb_dist_optim *o);
/* Rank 0's full (an nb_optim over the same ps and def) <- every rank's slices, step and hp.
 * Collective; full is ignored (may be NULL) on other ranks. */
nb_status nb_dist_optim_gather(nb_dist_optim *o, nb_optim *full);
/* The inverse: every rank's slice, step and hp <- rank 0's full. Collective. */
nb_status nb_dist_optim_scatter(nb_dist_optim *o, const nb_optim *full);

/* ---- checkpoints (collective) --------------------------------------------------------------- */
/* Rank 0 writes one nb_checkpoint_save file (atomic: a crash leaves the previous checkpoint);
 * every rank returns the same status. Pass the optimizer as opt (plain data parallelism) or as
 * zopt (sharded: its state is gathered to rank 0 first), the other NULL; es may be NULL.
 * The file is the same as a one-process checkpoint, so it restores with any number of ranks,
 * sharded or not, or in a program without MPI. Only rank 0's es and st are written: they must
 * be the same on every rank (feed every rank the same metrics). */
nb_status nb_dist_checkpoint_save(nb_dist *d, const char *path, nb_params *ps, const nb_optim *opt,
                                  nb_dist_optim *zopt, const nb_early_stop *es, const nb_train_state *st);
/* Rank 0 reads the file (nb_checkpoint_load: all or nothing), then broadcasts parameters,
 * optimizer state (scattered for zopt), early-stopping state and st to every rank: other ranks
 * need no access to the file. Every rank returns the same status; on failure nothing changed. */
nb_status nb_dist_checkpoint_load(nb_dist *d, const char *path, nb_params *ps, nb_optim *opt, nb_dist_optim *zopt,
                                  nb_early_stop *es, nb_train_state *st);

/* ---- sharding a data set across ranks ------------------------------------------------------ */
/* perm[0..n) <- a random permutation of 0..n-1 for epoch `epoch` (Philox, keyed by seed and
 * epoch). The same (seed, epoch) gives the same permutation on every rank — that is what makes
 * the shards disjoint — and another epoch gives another order. */
void nb_dist_permutation(uint64_t seed, int64_t epoch, int64_t n, int64_t *perm);
/* Steps per epoch for n samples, world ranks with per-rank batch B: global batch world*B;
 * drop_last drops a last partial global batch. */
int64_t nb_dist_steps(int64_t n, int world, int64_t B, bool drop_last);
/* This rank's sample indices for global step `step` of an epoch whose permutation is perm:
 * global batch s is perm[s*world*B, min(n, (s+1)*world*B)); rank r takes the r-th of world
 * contiguous pieces of it (B each; a last partial batch of m samples is split m/world, the
 * first m%world ranks one more). Writes at most B indices to idx and returns how many
 * (0 possible at the end; -1 with nb_last_error on bad arguments). *global (may be NULL)
 * receives the size of the global batch: to match one process exactly on a partial batch,
 * scale this rank's mean loss by count * world / *global. Over all steps and ranks of an
 * epoch, each sample appears exactly once. */
int64_t nb_dist_shard(const int64_t *perm, int64_t n, int64_t step, int rank, int world, int64_t B,
                      int64_t *idx, int64_t *global);

#ifdef __cplusplus
}
#endif
#endif
