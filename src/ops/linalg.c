/* Matrix products through BLIS's typed interface. BLIS takes a row and a column stride for
 * every operand, so transposed and sliced views go in as they are, without copies. */
#include "../internal.h"

#include <blis.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>

/* C = A B for one (M,K)x(K,N) pair; threads: BLIS's own threading when > 1.
 * sup: allow BLIS's small-matrix ("sup") path. On the haswell/zen kernel sets that path picks
 * its kernels and loop order from the whole product's shape, so a product computed in pieces
 * (by our threads or by BLIS's) can differ in the last bits from the same product computed
 * whole. The conventional path gives every element of C the same micro-kernel and k order
 * however C is cut, so every product that may be cut for threads runs there (see matmul_nd). */
static void gemm_beta(nb_dtype dt, int64_t m, int64_t n, int64_t k, const void *a, int64_t rsa, int64_t csa,
                      const void *b, int64_t rsb, int64_t csb, double beta, void *c, int64_t rsc, int64_t csc, int threads,
                      bool sup) {
    nb__blis_init();
    rntm_t rntm;
    bli_rntm_init(&rntm);
    bli_rntm_set_num_threads(threads, &rntm);
    if (sup)
        bli_rntm_enable_l3_sup(&rntm);
    else
        bli_rntm_disable_l3_sup(&rntm);
    /* BLIS wants unit-free strides >= 1 even for degenerate dims */
    if (rsa == 0) rsa = 1;
    if (csa == 0) csa = 1;
    if (rsb == 0) rsb = 1;
    if (csb == 0) csb = 1;
    if (dt == NB_F32) {
        float one = 1.0f, fb = (float)beta;
        bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &one, (float *)a, rsa, csa, (float *)b, rsb, csb, &fb,
                     (float *)c, rsc, csc, NULL, &rntm);
    } else {
        double one = 1.0;
        bli_dgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &one, (double *)a, rsa, csa, (double *)b, rsb, csb,
                     &beta, (double *)c, rsc, csc, NULL, &rntm);
    }
}
static void gemm(nb_dtype dt, int64_t m, int64_t n, int64_t k, const void *a, int64_t rsa, int64_t csa, const void *b,
                 int64_t rsb, int64_t csb, void *c, int64_t rsc, int64_t csc, int threads, bool sup) {
    gemm_beta(dt, m, n, k, a, rsa, csa, b, rsb, csb, 0.0, c, rsc, csc, threads, sup);
}

/* The same product rule as matmul's, for kernels that call GEMM themselves (convolution):
 * sup only below 2^18 flops, where a product is never cut; inside an OpenMP region (the
 * caller's threads own the work) BLIS runs on one thread, outside on all of ours. */
void nb__gemm(nb_dtype dt, int64_t m, int64_t n, int64_t k, const void *a, int64_t rsa, int64_t csa, const void *b,
              int64_t rsb, int64_t csb, double beta, void *c, int64_t rsc, int64_t csc) {
    if (m <= 0 || n <= 0) return;
    const int64_t flops = m * n * k, min_par = (int64_t)1 << 18;
    const int threads = omp_in_parallel() || flops < min_par ? 1 : omp_get_max_threads();
    gemm_beta(dt, m, n, k, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, threads, flops < min_par);
}

/* A matrix stored column by column (a transposed view, as the weight in nb_linear). */
static bool col_major(const nb_tensor *t) {
    const int d = t->ndim;
    return t->shape[d - 2] > 1 && t->shape[d - 1] > 1 && t->stride[d - 2] == 1 && t->stride[d - 1] >= t->shape[d - 2];
}

/* Each gradient is computed in its input's memory layout: for a column-major input the
 * transposed product is computed and transposed back (a view), so the gradient reaching a
 * transposed weight is contiguous in the weight's own order and accumulates without strides. */
static nb_status matmul_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    nb_tensor *a = n->in[0], *b = n->in[1];
    if (a->requires_grad)
        gin[0] = col_major(a) ? nb_transpose(ctx, nb_matmul(ctx, b, nb_transpose(ctx, g, -1, -2)), -1, -2)
                              : nb_matmul(ctx, g, nb_transpose(ctx, b, -1, -2));
    if (b->requires_grad)
        gin[1] = col_major(b) ? nb_transpose(ctx, nb_matmul(ctx, nb_transpose(ctx, g, -1, -2), a), -1, -2)
                              : nb_matmul(ctx, nb_transpose(ctx, a, -1, -2), g);
    return NB_OK;
}
static const nb_op OP_MATMUL = {"matmul", matmul_bw, NB_DIFFERENTIABLE};

/* BLIS needs positive strides inside each matrix; broadcast (stride-0) matrices are copied */
static bool blis_strides(const nb_tensor *t) {
    for (int d = t->ndim - 2; d < t->ndim; d++)
        if (t->stride[d] <= 0 && t->shape[d] > 1) return false;
    return true;
}

static void product(const nb_tensor *a, const nb_tensor *b, nb_tensor *out, int nbd, const int64_t *bshape, int64_t M,
                    int64_t N, int64_t K);

/* ---- how a mid-size product uses the team: measured per shape ------------------------------ */
/* A single product too small for BLIS's threads to pay on every machine and too large for one
 * thread has three ways to use T threads: our own team, each thread a block of C's columns or
 * rows with BLIS single-threaded inside (one barrier, robust on a shared machine); BLIS's own
 * threads (its loops partitioned, no duplicated packing, but barriers that spin); or one thread.
 * On the conventional path all three give every element of C the same micro-kernel and k order:
 * the same bits, so the choice is free. Which is fastest depends on the shape, the CPU, BLIS's
 * kernel set and the load, so it is measured: the first calls of a shape (M, N, K, operand
 * layout, T) try each way TUNE_TRIALS times, the fastest (minimum time) is kept, and every
 * TUNE_EVERY calls the shape is measured again. One thread is tried only where it could win
 * without costing much when it does not: up to 4 threads, or a product under 2^21 multiply-adds
 * (on 64 cores a trial on one thread would cost 64 calls' time). */
typedef enum { WAY_SPLIT, WAY_BLIS, WAY_ONE, NWAYS } par_way;
enum { TUNE_SLOTS = 64, TUNE_TRIALS = 3, TUNE_EVERY = 2048 };
typedef struct {
    int64_t m, n, k; /* m == 0: an empty slot */
    int layout, threads;
    int64_t calls;   /* since the last (re)start; the first nways * TUNE_TRIALS are trials */
    int nways;       /* the ways tried: WAY_SPLIT and WAY_BLIS, and WAY_ONE when 3 */
    int ended;       /* trials finished */
    double best[NWAYS];
    par_way way;
} tune_slot;
static tune_slot tune_table[TUNE_SLOTS];
static pthread_mutex_t tune_lock = PTHREAD_MUTEX_INITIALIZER;

static void tune_restart(tune_slot *s) {
    s->calls = 0, s->ended = 0, s->way = WAY_SPLIT;
    for (int w = 0; w < NWAYS; w++) s->best[w] = INFINITY;
}

/* The way to run this product; *trial: the slot to report its time to (tune_end), or -1. */
static par_way tune_begin(int64_t m, int64_t n, int64_t k, int layout, int threads, int *trial) {
    *trial = -1;
    uint64_t h = (uint64_t)m * 0x9E3779B97F4A7C15u ^ (uint64_t)n * 0xC2B2AE3D27D4EB4Fu ^ (uint64_t)k * 0x165667B19E3779F9u ^
                 (uint64_t)(layout * 8 + threads);
    pthread_mutex_lock(&tune_lock);
    par_way way = WAY_SPLIT; /* the table is full: our own split, as before the measurement */
    for (int probe = 0; probe < TUNE_SLOTS; probe++) {
        const int at = (int)((h + (uint64_t)probe) % TUNE_SLOTS);
        tune_slot *s = &tune_table[at];
        const bool mine = s->m == m && s->n == n && s->k == k && s->layout == layout && s->threads == threads;
        if (!mine && s->m != 0) continue;
        if (!mine) {
            *s = (tune_slot){.m = m, .n = n, .k = k, .layout = layout, .threads = threads};
            s->nways = threads <= 4 || m * n * k < ((int64_t)1 << 21) ? 3 : 2;
            tune_restart(s);
        }
        const int64_t c = s->calls++, trials = s->nways * TUNE_TRIALS;
        if (c < trials) {
            way = (par_way)(c % s->nways);
            *trial = at;
        } else {
            way = s->ended == trials ? s->way : WAY_SPLIT; /* trials still running elsewhere */
            if (s->calls >= TUNE_EVERY && s->ended == trials) tune_restart(s);
        }
        break;
    }
    pthread_mutex_unlock(&tune_lock);
    return way;
}

static void tune_end(int slot, par_way way, double seconds) {
    pthread_mutex_lock(&tune_lock);
    tune_slot *s = &tune_table[slot];
    if (seconds < s->best[way]) s->best[way] = seconds;
    if (++s->ended == s->nways * TUNE_TRIALS) {
        par_way w = WAY_SPLIT;
        for (int v = 0; v < s->nways; v++)
            if (s->best[v] < s->best[w]) w = (par_way)v;
        s->way = w;
    }
    pthread_mutex_unlock(&tune_lock);
}

/* both operands at least 2-D */
static nb_tensor *matmul_nd(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) {
    char sa[128], sb[128];
    if (!blis_strides(a) && !(a = nb_contiguous(ctx, a))) return NULL;
    if (!blis_strides(b) && !(b = nb_contiguous(ctx, b))) return NULL;
    const int64_t M = a->shape[a->ndim - 2], K = a->shape[a->ndim - 1], N = b->shape[b->ndim - 1];
    if (b->shape[b->ndim - 2] != K)
        return nb__fail(ctx, NB_ERR_SHAPE, "matmul: shapes %s and %s are not compatible", nb_shape_str(a, sa, sizeof sa),
                        nb_shape_str(b, sb, sizeof sb));
    int nbd;
    int64_t bshape[NB_MAX_DIMS];
    if (!nb__broadcast_shape(a->ndim - 2, a->shape, b->ndim - 2, b->shape, &nbd, bshape) || nbd + 2 > NB_MAX_DIMS)
        return nb__fail(ctx, NB_ERR_SHAPE, "matmul: batch dimensions of %s and %s cannot be broadcast",
                        nb_shape_str(a, sa, sizeof sa), nb_shape_str(b, sb, sizeof sb));
    int64_t oshape[NB_MAX_DIMS];
    memcpy(oshape, bshape, (size_t)nbd * sizeof *oshape);
    oshape[nbd] = M;
    oshape[nbd + 1] = N;
    nb_tensor *out = nb__new(ctx, a->dtype, nbd + 2, oshape);
    if (!out) return NULL;
    product(a, b, out, nbd, bshape, M, N, K);
    nb_tensor *in[2] = {a, b};
    return nb__finish(ctx, &OP_MATMUL, out, 2, in, NULL);
}

/* out (M, N) = a b on our team of T threads, each a block of C's columns (or rows) with BLIS
 * single-threaded inside: one OpenMP region, one barrier. The conventional path (no sup) gives
 * every element the same micro-kernel and k order as the whole product: same bits. */
static void split_product(const nb_tensor *a, const nb_tensor *b, nb_tensor *out, int64_t M, int64_t N, int64_t K, int T) {
    const size_t es = nb_dtype_size(a->dtype);
    const int64_t rsa = a->stride[a->ndim - 2], csa = a->stride[a->ndim - 1];
    const int64_t rsb = b->stride[b->ndim - 2], csb = b->stride[b->ndim - 1];
    const bool by_cols = N >= M;
    const int64_t len = by_cols ? N : M;
#pragma omp parallel num_threads(T)
    {
        const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t lo = len * t / nt, hi = len * (t + 1) / nt;
        if (hi > lo) {
            const char *ap = a->data, *bp = b->data;
            char *cp = out->data;
            if (by_cols)
                gemm(a->dtype, M, hi - lo, K, ap, rsa, csa, bp + lo * csb * (int64_t)es, rsb, csb, cp + lo * (int64_t)es, N, 1,
                     1, false);
            else
                gemm(a->dtype, hi - lo, N, K, ap + lo * rsa * (int64_t)es, rsa, csa, bp, rsb, csb, cp + lo * N * (int64_t)es, N,
                     1, 1, false);
        }
    }
}

/* out (bshape..., M, N), contiguous, = a b over the broadcast batch bshape (nbd axes); a and b
 * have BLIS strides (positive inside each matrix) */
static void product(const nb_tensor *a, const nb_tensor *b, nb_tensor *out, int nbd, const int64_t *bshape, int64_t M,
                    int64_t N, int64_t K) {
    const int64_t batch = nb__numel(nbd, bshape);
    if (K == 0) {
        nb_fill(out, 0.0);
    } else if (out->numel > 0) {
        /* batch strides of a and b broadcast to the batch shape */
        int64_t ast[NB_MAX_DIMS], bst[NB_MAX_DIMS];
        for (int d = 0; d < nbd; d++) {
            int ja = d - (nbd - (a->ndim - 2)), jb = d - (nbd - (b->ndim - 2));
            ast[d] = (ja < 0 || a->shape[ja] == 1) ? 0 : a->stride[ja];
            bst[d] = (jb < 0 || b->shape[jb] == 1) ? 0 : b->stride[jb];
        }
        const size_t es = nb_dtype_size(a->dtype);
        const int64_t rsa = a->stride[a->ndim - 2], csa = a->stride[a->ndim - 1];
        const int64_t rsb = b->stride[b->ndim - 2], csb = b->stride[b->ndim - 1];
        const int T = omp_get_max_threads();
        /* many products (small ones, or enough to share evenly): one thread each, one parallel
         * region in all; few large ones: BLIS threads each product (a parallel region and
         * several barriers per product, which a loaded machine makes very slow); tiny work stays
         * on one thread (waking threads costs more than it saves). Either way each product is
         * computed the same way, so results do not depend on the thread count. */
        const int64_t flops = M * N * K, min_par = (int64_t)1 << 18;
        const bool many = flops < (int64_t)1 << 21 || batch % T == 0 || batch >= 4 * (int64_t)T;
        const bool par_batch = batch >= T && T > 1 && many && batch * flops >= min_par && !omp_in_parallel();
        const int blis_threads = par_batch || omp_in_parallel() || flops < min_par ? 1 : T;
        /* The path is a function of the shape alone, never of T: a product small enough never
         * to be cut (below min_par) may take BLIS's sup path; any other product may be cut at
         * some thread count, so it always takes the conventional path, cut or not. */
        const bool sup = flops < min_par;
        /* BLIS's threads must not start inside an (even inactive) OpenMP region of ours: a
         * nested team gets fresh threads on every call, which costs more than the product */
#define NB_MATMUL_ONE(i)                                                                                         \
    do {                                                                                                         \
        int64_t rem = (i), ao = 0, bo = 0;                                                                       \
        for (int d = nbd - 1; d >= 0; d--) {                                                                     \
            int64_t c = rem % bshape[d];                                                                         \
            rem /= bshape[d];                                                                                    \
            ao += c * ast[d];                                                                                    \
            bo += c * bst[d];                                                                                    \
        }                                                                                                        \
        gemm(a->dtype, M, N, K, (const char *)a->data + ao * (int64_t)es, rsa, csa,                              \
             (const char *)b->data + bo * (int64_t)es, rsb, csb, (char *)out->data + (i) * M * N * (int64_t)es, N, 1, \
             blis_threads, sup);                                                                                 \
    } while (0)
        if (par_batch) {
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < batch; i++) NB_MATMUL_ONE(i);
        } else if (batch == 1 && blis_threads > 1 && flops < ((int64_t)1 << 27)) {
            /* mid-size product: the way to use the team is measured per shape (tune_begin) */
            const int layout = (rsa == 1) | (csa == 1) << 1 | (rsb == 1) << 2 | (csb == 1) << 3;
            int trial;
            const par_way way = tune_begin(M, N, K, layout, T, &trial);
            const double t0 = trial >= 0 ? omp_get_wtime() : 0.0;
            if (way == WAY_SPLIT) split_product(a, b, out, M, N, K, T);
            else /* the conventional path, as split_product's: the bits cannot depend on the way */
                gemm(a->dtype, M, N, K, a->data, rsa, csa, b->data, rsb, csb, out->data, N, 1, way == WAY_BLIS ? T : 1, false);
            if (trial >= 0) tune_end(trial, way, omp_get_wtime() - t0);
        } else {
            for (int64_t i = 0; i < batch; i++) NB_MATMUL_ONE(i);
        }
#undef NB_MATMUL_ONE
    }
}

void nb__matmul_into(const nb_tensor *a, const nb_tensor *b, nb_tensor *out) {
    const int64_t none[1] = {1};
    product(a, b, out, 0, none, a->shape[0], b->shape[1], a->shape[1]);
}

nb_tensor *nb_matmul(nb_ctx *ctx, nb_tensor *a, nb_tensor *b) {
    if (nb__null(ctx, "matmul", 2, a, b)) return NULL;
    char sa[128], sb[128];
    if (a->dtype != b->dtype || a->dtype == NB_I64)
        return nb__fail(ctx, NB_ERR_DTYPE, "matmul: dtypes %s and %s (need both f32 or both f64)", nb_dtype_name(a->dtype),
                        nb_dtype_name(b->dtype));
    if (a->ndim == 0 || b->ndim == 0)
        return nb__fail(ctx, NB_ERR_SHAPE, "matmul: shapes %s and %s: both operands need at least one dimension",
                        nb_shape_str(a, sa, sizeof sa), nb_shape_str(b, sb, sizeof sb));
    /* vectors become matrices through views, so their gradients come out right by themselves */
    bool va = a->ndim == 1, vb = b->ndim == 1;
    if (va && vb && a->shape[0] != b->shape[0])
        return nb__fail(ctx, NB_ERR_SHAPE, "matmul: shapes %s and %s are not compatible", nb_shape_str(a, sa, sizeof sa),
                        nb_shape_str(b, sb, sizeof sb));
    nb_tensor *a2 = va ? nb_unsqueeze(ctx, a, 0) : a, *b2 = vb ? nb_unsqueeze(ctx, b, 1) : b;
    if (!a2 || !b2) return NULL;
    nb_tensor *r = matmul_nd(ctx, a2, b2);
    if (r && vb) r = nb_squeeze(ctx, r, -1);
    if (r && va) r = nb_squeeze(ctx, r, vb ? -1 : -2);  /* vector . vector: the row axis is last now */
    return r;
}

/* ---- linear: x w^T as one node on (x, w) -------------------------------------------------------- */
/* matmul's rule for (x, w^T), with the weight's gradient g^T x (in w's own layout, as matmul
 * computes it for the transposed view) written straight into w's .grad when the engine allows */
static nb_status linear_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    nb_tensor *x = n->in[0], *w = n->in[1], *wt = nb_transpose(ctx, w, 0, 1);
    if (x->requires_grad)
        gin[0] = col_major(x) ? nb_transpose(ctx, nb_matmul(ctx, wt, nb_transpose(ctx, g, -1, -2)), -1, -2)
                              : nb_matmul(ctx, g, w);
    if (!w->requires_grad) return NB_OK;
    if (!col_major(wt)) { /* a weight with one row or column: matmul's other branch */
        gin[1] = nb_transpose(ctx, nb_matmul(ctx, nb_transpose(ctx, x, -1, -2), g), -1, -2);
        return NB_OK;
    }
    nb_tensor *gt = nb_transpose(ctx, g, -1, -2);
    nb_tensor *dst = gt && blis_strides(gt) && blis_strides(x) ? nb__grad_dest_begin(ctx, n, 1) : NULL;
    if (!dst) {
        gin[1] = nb_matmul(ctx, gt, x);
        return NB_OK;
    }
    nb__matmul_into(gt, x, dst);
    nb__grad_dest_end(ctx, n, 1);
    gin[1] = dst;
    return NB_OK;
}
static const nb_op OP_LINEAR = {"linear", linear_bw, NB_DIFFERENTIABLE};

nb_tensor *nb__linear_product(nb_ctx *ctx, nb_tensor *x, nb_tensor *w) {
    if (x->ndim != 2 || x->dtype != w->dtype || w->dtype == NB_I64 || !blis_strides(x) || !blis_strides(w))
        return nb_matmul(ctx, x, nb_transpose(ctx, w, 0, 1)); /* and its errors */
    nb_tensor wt = *w; /* the transposed view, for the kernel only */
    wt.shape[0] = w->shape[1], wt.shape[1] = w->shape[0], wt.stride[0] = w->stride[1], wt.stride[1] = w->stride[0];
    nb_tensor *out = nb__new(ctx, x->dtype, 2, (int64_t[]){x->shape[0], w->shape[0]});
    if (!out) return NULL;
    product(x, &wt, out, 0, (int64_t[]){1}, x->shape[0], w->shape[0], x->shape[1]);
    nb_tensor *in[2] = {x, w};
    return nb__finish(ctx, &OP_LINEAR, out, 2, in, NULL);
}

nb_tensor *nb_linear(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b) {
    if (nb__null(ctx, "linear", 2, x, w)) return NULL;
    char sx[128], sw[128];
    if (w->ndim != 2 || x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[1])
        return nb__fail(ctx, NB_ERR_SHAPE, "linear: input %s does not fit weight %s (expected (..., in) and (out, in))",
                        nb_shape_str(x, sx, sizeof sx), nb_shape_str(w, sw, sizeof sw));
    nb_tensor *y = nb__linear_product(ctx, x, w);
    if (!b) return y;
    if (b->ndim != 1 || b->shape[0] != w->shape[0])
        return nb__fail(ctx, NB_ERR_SHAPE, "linear: bias %s does not fit weight %s", nb_shape_str(b, sx, sizeof sx),
                        nb_shape_str(w, sw, sizeof sw));
    return nb_add(ctx, y, b);
}
