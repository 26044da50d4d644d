/* Convolution as an implicit GEMM on BLIS's own micro-kernel.
 *
 * y(o, p) = sum_k w(o, k) cols(k, p), with k = (c, i, j) a kernel tap and p = (n, oh, ow) an
 * output position of the whole batch. The im2col path (conv.c) writes each sample's column
 * matrix and BLIS then packs it again; here the columns are packed once, straight from the
 * image into the micro-panel layout BLIS's micro-kernel reads, and the weight is packed once
 * per call instead of once per sample. The micro-kernel is the one BLIS's own GEMM runs on
 * this CPU (skx, zen, haswell, ... as nabla chose it), queried from BLIS's context.
 *
 * The positions take the side along which the micro-kernel vectorises (M when it prefers
 * column-stored C, as skx's 32x12; N when it prefers rows, as haswell's 6x16), so each packed
 * row of a panel is a run of consecutive output positions: with stride 1 a plain copy of an
 * image row. C is y itself: (channels, positions) with row stride L, or a small tile when a
 * panel of positions crosses from one sample into the next.
 *
 * Work is split over panels of positions; every element of y is computed by one call chain
 * with the k blocks in a fixed order (KC from BLIS), so the bits do not depend on the thread
 * count. A micro-kernel computes alpha*AB + beta*C with alpha = 1, so a tile computed with
 * beta 0 and then added to y gives the same bits as the kernel adding it itself. */
#include "../internal.h"

/* GCC would turn the short copy and zero loops of the packing into memmove/memset calls, which
 * cost more than the runs of a dozen elements they copy */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif

#include <blis.h>
#include <omp.h>
#include <string.h>

enum { MAX_R = 64 }; /* the widest micro-panel handled (skx 32, haswell 16, generic <= 16) */

typedef struct {
    void_fp ukr;
    int64_t R, PR;   /* positions per panel, and the panel's packed row length */
    int64_t R2, PR2; /* output channels per weight panel, and its packed row length */
    int64_t kc;      /* k block */
    bool pos_m;      /* positions are the micro-kernel's M side */
    cntx_t *cntx;
} ukr_info;

static bool query(nb_dtype dt, ukr_info *u) {
    nb__blis_init();
    cntx_t *cx = bli_gks_query_cntx();
    const num_t t = dt == NB_F32 ? BLIS_FLOAT : BLIS_DOUBLE;
    if (!cx) return false;
    const int64_t mr = bli_cntx_get_blksz_def_dt(t, BLIS_MR, cx), nr = bli_cntx_get_blksz_def_dt(t, BLIS_NR, cx);
    const int64_t pmr = bli_cntx_get_blksz_max_dt(t, BLIS_MR, cx), pnr = bli_cntx_get_blksz_max_dt(t, BLIS_NR, cx);
    u->ukr = bli_cntx_get_l3_nat_ukr_dt(t, BLIS_GEMM_UKR, cx);
    u->pos_m = bli_cntx_l3_nat_ukr_prefers_cols_dt(t, BLIS_GEMM_UKR, cx);
    u->R = u->pos_m ? mr : nr, u->PR = u->pos_m ? pmr : pnr;
    u->R2 = u->pos_m ? nr : mr, u->PR2 = u->pos_m ? pnr : pmr;
    u->kc = bli_cntx_get_blksz_def_dt(t, BLIS_KC, cx);
    u->cntx = cx;
    return u->ukr && u->R > 0 && u->R <= MAX_R && u->PR >= u->R && u->R2 > 0 && u->R2 <= MAX_R &&
           u->PR2 >= u->R2 && u->kc > 0;
}

/* one packed weight panel: K rows of PR2, rounded up to 64 bytes so every panel is aligned */
static size_t al64(size_t n) { return (n + 63) / 64 * 64; }
static size_t wpanel_bytes(const ukr_info *u, int64_t K, int64_t es) { return al64((size_t)(K * u->PR2 * es)); }
/* the forward's per-thread scratch: a positions panel (kc x PR, plus 64 bytes of slack for the
 * chunk copies), then a tile (R x R2) for panels that cross samples */
static size_t fwd_panel_bytes(const ukr_info *u, int64_t es) { return al64((size_t)(u->kc * u->PR * es)) + 64; }
static size_t fwd_per_thread(const ukr_info *u, int64_t es) {
    return fwd_panel_bytes(u, es) + al64((size_t)(u->R * u->R2 * es));
}

bool nb__conv_gemm_ok(nb_dtype dt) {
    ukr_info u;
    return (dt == NB_F32 || dt == NB_F64) && query(dt, &u);
}

/* Row k of the column matrix: tap (i, j) of channel c: coff = c*xs1, the tap's row and column
 * offsets, and the output columns [q0, q1) whose tap reads inside the image row. */
typedef struct {
    int64_t coff, ioff, joff, q0, q1;
} ktab;

typedef struct {
    ukr_info u;
    nb_dtype dt;
    int64_t es;
    const nb_tensor *x;
    const char *x_end; /* one past the last byte of x's elements */
    nb_window2d w;
    int64_t N, C, H, W, OH, OW, L, G, Cg, Og, O, K, taps;
    int64_t wpanels;  /* weight panels per group: ceil(Og / R2) */
    const ktab *tab;  /* K rows */
    char *wpack;      /* per group, per panel: K rows of PR2, wstride bytes apart */
    size_t wstride;
    char *y;
    double beta;      /* 1: y already holds the bias */
    char *scratch;    /* per thread: a positions panel (kc x PR) and a tile (R x R2) */
    size_t per_thread;
} igemm;

/* One run of positions within one output row: sample n, row oh, columns [ow, ow + len),
 * stored from panel row offset r; base = n*xs0 + (oh*sh)*xs2 + (ow*sw)*xs3, ih0 = oh*sh. */
typedef struct {
    int64_t base, ih0, ow, len, r, n, oh;
} run;

static int runs_of(const igemm *j, int64_t P0, int64_t np, run *rs) {
    int nr = 0;
    const int64_t *st = j->x->stride;
    for (int64_t r = 0; r < np;) {
        const int64_t P = P0 + r, n = P / j->L, p = P % j->L, oh = p / j->OW, ow = p % j->OW;
        int64_t len = j->OW - ow;
        if (len > np - r) len = np - r;
        rs[nr++] = (run){n * st[0] + oh * j->w.sh * st[2] + ow * j->w.sw * st[3], oh * j->w.sh, ow, len, r, n, oh};
        r += len;
    }
    return nr;
}

static void ktab_fill(const igemm *j, ktab *t) {
    const nb_window2d w = j->w;
    for (int64_t k = 0; k < j->K; k++) {
        const int64_t c = k / j->taps, tap = k % j->taps, i = tap / w.kw, jj = tap % w.kw;
        t[k].coff = c * j->x->stride[1], t[k].ioff = i * w.dh - w.ph, t[k].joff = jj * w.dw - w.pw;
        nb__tap_range(t[k].joff, w.sw, j->W, j->OW, &t[k].q0, &t[k].q1);
    }
}

/* 64 bytes, any alignment */
typedef char chunk __attribute__((vector_size(64), aligned(1), may_alias));

/* d[q] = s[2q]: f32 by nb__gather_even_f32 (internal.h), f64 element by element */
static inline void gather2_f32(float *restrict d, const float *restrict s, int64_t n) { nb__gather_even_f32(d, s, n); }
static inline void gather2_f64(double *restrict d, const double *restrict s, int64_t n) {
    for (int64_t q = 0; q < n; q++) d[q] = s[2 * q];
}

#define DEFINE_PACK(T, SUF)                                                                                   \
    /* positions panel: rows k0..k0+kn-1 of group g, dst[kk*PR + r] for the runs. With stride 1 on */        \
    /* contiguous rows the copies go in 64-byte chunks that may run past a run's end: the zeros and */        \
    /* runs written after them overwrite that, the panel has 64 bytes of slack, and reads stay below */       \
    /* x_end. */                                                                                              \
    static void pack_pos_##SUF(const igemm *j, int64_t g, const run *rs, int nruns, int64_t np, int64_t k0,   \
                               int64_t kn, T *restrict dst) {                                                 \
        const int64_t xs2 = j->x->stride[2], xs3 = j->x->stride[3], sw = j->w.sw, PR = j->u.PR, R = j->u.R,   \
                      H = j->H, CH = 64 / (int64_t)sizeof(T);                                                 \
        const T *xd = (const T *)j->x->data + g * j->Cg * j->x->stride[1];                                    \
        const char *x_end = j->x_end;                                                                         \
        const bool unit = sw == 1 && xs3 == 1;                                                                \
        for (int64_t kk = 0; kk < kn; kk++) {                                                                 \
            const ktab t = j->tab[k0 + kk];                                                                   \
            T *d = dst + kk * PR;                                                                             \
            for (int s = 0; s < nruns; s++) {                                                                 \
                const run ru = rs[s];                                                                         \
                T *restrict o = d + ru.r;                                                                     \
                const int64_t ih = ru.ih0 + t.ioff;                                                           \
                if ((uint64_t)ih >= (uint64_t)H) {                                                            \
                    for (int64_t q = 0; q < ru.len; q++) o[q] = 0;                                            \
                    continue;                                                                                 \
                }                                                                                             \
                int64_t a = t.q0 - ru.ow, b = t.q1 - ru.ow; /* valid run offsets [a, b) */                    \
                a = a < 0 ? 0 : a > ru.len ? ru.len : a;                                                      \
                b = b > ru.len ? ru.len : b < a ? a : b;                                                      \
                const T *xs = xd + ru.base + t.coff + ih * xs2 - ru.ih0 * xs2 + t.joff * xs3;                 \
                if (unit && (const char *)(xs + b + CH) <= x_end)                                             \
                    for (int64_t q = a; q < b; q += CH) *(chunk *)(o + q) = *(const chunk *)(xs + q);          \
                else if (sw == 2 && xs3 == 1 && b - a >= 9)                                                   \
                    gather2_##SUF(o + a, xs + 2 * a, b - a);                                                  \
                else                                                                                          \
                    for (int64_t q = a; q < b; q++) o[q] = xs[q * sw * xs3];                                  \
                for (int64_t q = 0; q < a; q++) o[q] = 0;                                                     \
                for (int64_t q = b; q < ru.len; q++) o[q] = 0;                                                \
            }                                                                                                 \
            for (int64_t r = np; r < R; r++) d[r] = 0;                                                        \
        }                                                                                                     \
    }                                                                                                         \
    /* weight panel pp of group g: dst[k*PR2 + t] = w(g*Og + pp*R2 + t, k), zero past Og */                   \
    static void pack_w_##SUF(const igemm *j, const T *wd, int64_t g, int64_t pp, T *restrict dst) {           \
        const int64_t R2 = j->u.R2, PR2 = j->u.PR2, o0 = pp * R2, no = j->Og - o0 < R2 ? j->Og - o0 : R2;     \
        for (int64_t k = 0; k < j->K; k++) {                                                                  \
            T *d = dst + k * PR2;                                                                             \
            for (int64_t t = 0; t < no; t++) d[t] = wd[(g * j->Og + o0 + t) * j->K + k];                      \
            for (int64_t t = no; t < PR2; t++) d[t] = 0;                                                      \
        }                                                                                                     \
    }                                                                                                         \
    /* y (positions of the runs, channels ch0..ch0+no-1) = tile + beta*y; tile(r, t) at r*rt + t*ct */        \
    static void scatter_##SUF(const igemm *j, const run *rs, int nruns, int64_t ch0, int64_t no,              \
                              const T *tile, int64_t rt, int64_t ct, double beta) {                           \
        T *yd = (T *)j->y;                                                                                    \
        for (int s = 0; s < nruns; s++) {                                                                     \
            const run ru = rs[s];                                                                             \
            for (int64_t t = 0; t < no; t++) {                                                                \
                T *restrict yr = yd + ((ru.n * j->O + ch0 + t) * j->L + ru.oh * j->OW + ru.ow);               \
                const T *restrict tr = tile + ru.r * rt + t * ct;                                             \
                if (beta == 0)                                                                                \
                    for (int64_t q = 0; q < ru.len; q++) yr[q] = tr[q * rt];                                  \
                else                                                                                          \
                    for (int64_t q = 0; q < ru.len; q++) yr[q] = tr[q * rt] + yr[q];                          \
            }                                                                                                 \
        }                                                                                                     \
    }
DEFINE_PACK(float, f32)
DEFINE_PACK(double, f64)

/* One micro-kernel call: c = vp wp + beta c, vp the panel of the vectorised side (nv of R
 * wide), wp the other (nw of R2), k deep; sv and sw: c's strides along the two sides. */
static void ukr_call(const ukr_info *u, nb_dtype dt, int64_t nv, int64_t nw, int64_t k, void *vp, void *wp, double beta,
                 void *c, int64_t sv, int64_t sw) {
    auxinfo_t aux;
    memset(&aux, 0, sizeof aux);
    void *a = u->pos_m ? vp : wp, *b = u->pos_m ? wp : vp;
    const int64_t m = u->pos_m ? nv : nw, n = u->pos_m ? nw : nv, rsc = u->pos_m ? sv : sw, csc = u->pos_m ? sw : sv;
    bli_auxinfo_set_next_a(a, &aux);
    bli_auxinfo_set_next_b(b, &aux);
    if (dt == NB_F32) {
        float one = 1.0f, fb = (float)beta;
        ((sgemm_ukr_ft)u->ukr)(m, n, k, &one, a, b, &fb, c, rsc, csc, &aux, u->cntx);
    } else {
        double one = 1.0, db = beta;
        ((dgemm_ukr_ft)u->ukr)(m, n, k, &one, a, b, &db, c, rsc, csc, &aux, u->cntx);
    }
}

/* All of one panel of positions [P0, P0 + np): every group, k block and weight panel. */
static void panel(const igemm *j, int64_t P0, int64_t np, char *scratch) {
    const ukr_info *u = &j->u;
    run rs[MAX_R + 1];
    const int nruns = runs_of(j, P0, np, rs);
    const bool one_sample = rs[0].n == rs[nruns - 1].n;
    char *pp_buf = scratch, *tile = scratch + fwd_panel_bytes(u, j->es);
    for (int64_t g = 0; g < j->G; g++)
        for (int64_t k0 = 0; k0 < j->K; k0 += u->kc) {
            const int64_t kn = j->K - k0 < u->kc ? j->K - k0 : u->kc;
            if (j->dt == NB_F32) pack_pos_f32(j, g, rs, nruns, np, k0, kn, (float *)pp_buf);
            else pack_pos_f64(j, g, rs, nruns, np, k0, kn, (double *)pp_buf);
            const double beta = k0 == 0 ? j->beta : 1.0;
            for (int64_t wp = 0; wp < j->wpanels; wp++) {
                const int64_t ch0 = g * j->Og + wp * u->R2, no = j->Og - wp * u->R2 < u->R2 ? j->Og - wp * u->R2 : u->R2;
                char *wpanel = j->wpack + (size_t)(g * j->wpanels + wp) * j->wstride + (size_t)(k0 * u->PR2 * j->es);
                /* C: y itself (rows = channels, stride L) or the tile (positions x channels, col-major) */
                char *c;
                int64_t rs_pos, rs_ch; /* strides of C along positions and channels */
                double kb = beta;
                if (one_sample) {
                    c = j->y + (size_t)(((rs[0].n * j->O + ch0) * j->L + rs[0].oh * j->OW + rs[0].ow) * j->es);
                    rs_pos = 1, rs_ch = j->L;
                } else {
                    c = tile, rs_pos = 1, rs_ch = u->R, kb = 0.0;
                }
                ukr_call(u, j->dt, np, no, kn, pp_buf, wpanel, kb, c, rs_pos, rs_ch);
                if (!one_sample) {
                    if (j->dt == NB_F32) scatter_f32(j, rs, nruns, ch0, no, (const float *)tile, 1, u->R, beta);
                    else scatter_f64(j, rs, nruns, ch0, no, (const double *)tile, 1, u->R, beta);
                }
            }
        }
}

size_t nb__conv_gemm_scratch(nb_dtype dt, int64_t O, int64_t Cg, int64_t G, int64_t taps, int threads) {
    ukr_info u;
    if (!query(dt, &u)) return 0;
    const int64_t es = (int64_t)nb_dtype_size(dt), Og = O / G, K = Cg * taps;
    const size_t wbytes = (size_t)(G * ((Og + u.R2 - 1) / u.R2)) * wpanel_bytes(&u, K, es);
    return al64(wbytes) + al64((size_t)K * sizeof(ktab)) + (size_t)threads * fwd_per_thread(&u, es);
}

/* y (N, O, OH, OW) contiguous = conv(x, w) (+ y when beta is 1: the bias already in y).
 * x (N, C, H, W) any strides; w (O, C/G, kh, kw) contiguous; scratch of nb__conv_gemm_scratch
 * bytes, 64-byte aligned; threads > 1 splits the panels of positions over an OpenMP team. */
void nb__conv_gemm(nb_dtype dt, const nb_tensor *x, const nb_tensor *w, int64_t G, nb_window2d win, int64_t OH,
                   int64_t OW, double beta, nb_tensor *y, int threads, char *scratch) {
    igemm j = {.dt = dt, .es = (int64_t)nb_dtype_size(dt), .x = x, .w = win, .N = x->shape[0], .C = x->shape[1],
               .H = x->shape[2], .W = x->shape[3], .OH = OH, .OW = OW, .L = OH * OW, .G = G, .O = w->shape[0],
               .y = y->data, .beta = beta};
    if (!query(dt, &j.u)) return;
    j.Cg = j.C / G, j.Og = j.O / G, j.taps = win.kh * win.kw, j.K = j.Cg * j.taps;
    int64_t last = 0; /* x's last element; strides are >= 0 here (conv's inputs) */
    for (int d = 0; d < 4; d++) last += (x->shape[d] - 1) * x->stride[d];
    j.x_end = (const char *)x->data + (last + 1) * j.es;
    j.wpanels = (j.Og + j.u.R2 - 1) / j.u.R2;
    j.wstride = wpanel_bytes(&j.u, j.K, j.es);
    const size_t wbytes = (size_t)(G * j.wpanels) * j.wstride;
    j.wpack = scratch;
    ktab *tab = (ktab *)(scratch + al64(wbytes));
    j.scratch = (char *)tab + al64((size_t)j.K * sizeof(ktab));
    ktab_fill(&j, tab);
    j.tab = tab;
    j.per_thread = fwd_per_thread(&j.u, j.es);
    const int64_t npanels = G * j.wpanels, blocks = (j.N * j.L + j.u.R - 1) / j.u.R;
    /* one thread: a team of one (omp_get_thread_num() is 0), so there is one code path */
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
#pragma omp for schedule(static)
        for (int64_t i = 0; i < npanels; i++) {
            const int64_t g = i / j.wpanels, pp = i % j.wpanels;
            char *d = j.wpack + (size_t)i * j.wstride;
            if (dt == NB_F32) pack_w_f32(&j, w->data, g, pp, (float *)d);
            else pack_w_f64(&j, w->data, g, pp, (double *)d);
        }
        char *s = j.scratch + (size_t)omp_get_thread_num() * j.per_thread;
#pragma omp for schedule(static)
        for (int64_t b = 0; b < blocks; b++) {
            const int64_t P0 = b * j.u.R, np = j.N * j.L - P0 < j.u.R ? j.N * j.L - P0 : j.u.R;
            panel(&j, P0, np, s);
        }
    }
}

/* ---- the weight gradient: gw(o, k) = sum over positions p of gy(o, p) cols(k, p) ------------
 * The positions of the whole batch are the micro-kernel's k (the sum), in blocks of KC; the taps
 * take the side along which it vectorises (M when it prefers column-stored C, as skx), the
 * output channels the other, and C is gw itself. Work is split over panels of taps; every
 * thread runs over all positions in the same blocks, so each element of gw sums its positions
 * in one fixed order whatever the thread count. gy's panels of a block are packed once per
 * thread and used by all its panels of taps. */
/* Eight taps k..k+7 of the transposed columns panel at once, for float rows read with stride 1:
 * per run, the positions every one of the eight reads inside the image are loaded as eight
 * vectors of eight positions and transposed in registers (eight stores of eight taps instead of
 * 64 scalar stores 128 bytes apart); the edges go element by element. The same values land in
 * the same places as pack_cols_t's loop, so the bits do not change. false: not this case. */
#if defined(__AVX2__)
#include <immintrin.h>
static bool tile8_f32(const igemm *j, const float *xd, const run *rs, int nruns, int64_t k, int64_t kk, float *dst) {
    if (j->w.sw != 1 || j->x->stride[3] != 1) return false;
    const int64_t xs2 = j->x->stride[2], PR = j->u.PR, H = j->H;
    for (int s = 0; s < nruns; s++) {
        const run ru = rs[s];
        const float *src[8];
        int64_t a[8], b[8], A = 0, B = ru.len;
        for (int t = 0; t < 8; t++) {
            const ktab tt = j->tab[k + t];
            const int64_t ih = ru.ih0 + tt.ioff;
            a[t] = tt.q0 - ru.ow, b[t] = tt.q1 - ru.ow;
            a[t] = a[t] < 0 ? 0 : a[t] > ru.len ? ru.len : a[t];
            b[t] = b[t] > ru.len ? ru.len : b[t] < a[t] ? a[t] : b[t];
            if ((uint64_t)ih >= (uint64_t)H) a[t] = b[t] = ru.len;
            src[t] = xd + ru.base + tt.coff + (ih - ru.ih0) * xs2 + tt.joff;
            A = a[t] > A ? a[t] : A, B = b[t] < B ? b[t] : B;
        }
        if (B < A) B = A;
        float *restrict o = dst + ru.r * PR + kk;
        for (int t = 0; t < 8; t++) {
            for (int64_t q = 0; q < A; q++) o[q * PR + t] = q >= a[t] && q < b[t] ? src[t][q] : 0;
            for (int64_t q = B; q < ru.len; q++) o[q * PR + t] = q >= a[t] && q < b[t] ? src[t][q] : 0;
        }
        int64_t q = A;
        for (; q + 8 <= B; q += 8) {
            __m256 r0 = _mm256_loadu_ps(src[0] + q), r1 = _mm256_loadu_ps(src[1] + q), r2 = _mm256_loadu_ps(src[2] + q),
                   r3 = _mm256_loadu_ps(src[3] + q), r4 = _mm256_loadu_ps(src[4] + q), r5 = _mm256_loadu_ps(src[5] + q),
                   r6 = _mm256_loadu_ps(src[6] + q), r7 = _mm256_loadu_ps(src[7] + q);
            const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
                         t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
                         t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
                         u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
                         u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
                         u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            r0 = _mm256_permute2f128_ps(u0, u4, 0x20), r1 = _mm256_permute2f128_ps(u1, u5, 0x20);
            r2 = _mm256_permute2f128_ps(u2, u6, 0x20), r3 = _mm256_permute2f128_ps(u3, u7, 0x20);
            r4 = _mm256_permute2f128_ps(u0, u4, 0x31), r5 = _mm256_permute2f128_ps(u1, u5, 0x31);
            r6 = _mm256_permute2f128_ps(u2, u6, 0x31), r7 = _mm256_permute2f128_ps(u3, u7, 0x31);
            _mm256_storeu_ps(o + (q + 0) * PR, r0), _mm256_storeu_ps(o + (q + 1) * PR, r1);
            _mm256_storeu_ps(o + (q + 2) * PR, r2), _mm256_storeu_ps(o + (q + 3) * PR, r3);
            _mm256_storeu_ps(o + (q + 4) * PR, r4), _mm256_storeu_ps(o + (q + 5) * PR, r5);
            _mm256_storeu_ps(o + (q + 6) * PR, r6), _mm256_storeu_ps(o + (q + 7) * PR, r7);
        }
        for (; q < B; q++)
            for (int t = 0; t < 8; t++) o[q * PR + t] = src[t][q];
    }
    return true;
}
#else
static bool tile8_f32(const igemm *j, const float *xd, const run *rs, int nruns, int64_t k, int64_t kk, float *dst) {
    (void)j, (void)xd, (void)rs, (void)nruns, (void)k, (void)kk, (void)dst;
    return false;
}
#endif
static bool tile8_f64(const igemm *j, const double *xd, const run *rs, int nruns, int64_t k, int64_t kk, double *dst) {
    (void)j, (void)xd, (void)rs, (void)nruns, (void)k, (void)kk, (void)dst;
    return false;
}

#define DEFINE_PACK_BW(T, SUF)                                                                                \
    /* columns panel, transposed: dst[p*PR + kk] = cols(k0 + kk, P0 + p), zero past nk */                     \
    static void pack_cols_t_##SUF(const igemm *j, int64_t g, const run *rs, int nruns, int64_t np, int64_t k0, \
                                  int64_t nk, T *restrict dst) {                                              \
        const int64_t xs2 = j->x->stride[2], xs3 = j->x->stride[3], sw = j->w.sw, PR = j->u.PR, R = j->u.R,   \
                      H = j->H;                                                                               \
        const T *xd = (const T *)j->x->data + g * j->Cg * j->x->stride[1];                                    \
        for (int64_t kk = 0; kk < nk; kk++) {                                                                 \
            if (kk + 8 <= nk && tile8_##SUF(j, xd, rs, nruns, k0 + kk, kk, dst)) {                            \
                kk += 7;                                                                                      \
                continue;                                                                                     \
            }                                                                                                 \
            const ktab t = j->tab[k0 + kk];                                                                   \
            for (int s = 0; s < nruns; s++) {                                                                 \
                const run ru = rs[s];                                                                         \
                T *restrict o = dst + ru.r * PR + kk;                                                         \
                const int64_t ih = ru.ih0 + t.ioff;                                                           \
                int64_t a = t.q0 - ru.ow, b = t.q1 - ru.ow;                                                   \
                a = a < 0 ? 0 : a > ru.len ? ru.len : a;                                                      \
                b = b > ru.len ? ru.len : b < a ? a : b;                                                      \
                if ((uint64_t)ih >= (uint64_t)H) a = b = ru.len;                                              \
                const T *xs = xd + ru.base + t.coff + (ih - ru.ih0) * xs2 + t.joff * xs3;                     \
                for (int64_t q = 0; q < a; q++) o[q * PR] = 0;                                                \
                for (int64_t q = a; q < b; q++) o[q * PR] = xs[q * sw * xs3];                                 \
                for (int64_t q = b; q < ru.len; q++) o[q * PR] = 0;                                           \
            }                                                                                                 \
        }                                                                                                     \
        for (int64_t p = 0; p < np; p++)                                                                      \
            for (int64_t kk = nk; kk < R; kk++) dst[p * PR + kk] = 0;                                         \
    }                                                                                                         \
    /* gy's panels of group g for the block: panel wp at dst + wp*kc*PR2, (p, t) at p*PR2 + t */              \
    static void pack_gy_##SUF(const igemm *j, const nb_tensor *gy, int64_t g, const run *rs, int nruns,       \
                              T *restrict dst) {                                                              \
        const int64_t R2 = j->u.R2, PR2 = j->u.PR2, kc = j->u.kc;                                             \
        const T *gd = (const T *)gy->data;                                                                    \
        for (int64_t wp = 0; wp < j->wpanels; wp++) {                                                         \
            T *pd = dst + wp * kc * PR2;                                                                      \
            const int64_t o0 = g * j->Og + wp * R2, no = j->Og - wp * R2 < R2 ? j->Og - wp * R2 : R2;         \
            for (int s = 0; s < nruns; s++) {                                                                 \
                const run ru = rs[s];                                                                         \
                for (int64_t t = 0; t < no; t++) {                                                            \
                    const T *restrict src = gd + (ru.n * j->O + o0 + t) * j->L + ru.oh * j->OW + ru.ow;       \
                    T *restrict o = pd + ru.r * PR2 + t;                                                      \
                    for (int64_t q = 0; q < ru.len; q++) o[q * PR2] = src[q];                                 \
                }                                                                                             \
                for (int64_t t = no; t < R2; t++)                                                             \
                    for (int64_t q = 0; q < ru.len; q++) pd[(ru.r + q) * PR2 + t] = 0;                        \
            }                                                                                                 \
        }                                                                                                     \
    }
DEFINE_PACK_BW(float, f32)
DEFINE_PACK_BW(double, f64)

static size_t bw_per_thread(const ukr_info *u, int64_t es, int64_t wpanels) {
    return al64((size_t)(u->kc + 1) * sizeof(run)) + al64((size_t)(u->kc * u->PR * es)) +
           al64((size_t)(wpanels * u->kc * u->PR2 * es));
}

/* With fewer than 8 items (group, panel of taps), as when C*taps is small, the positions are cut
 * too, into at most 8 chunks of whole k blocks (a function of the shapes only): each chunk's
 * gradient is summed apart and the chunks are added in order, so the threads have work and the
 * bits stay the same for any thread count. */
enum { BW_PCHUNKS = 8 };
static int64_t bw_pchunks(const ukr_info *u, int64_t items, int64_t NL) {
    if (items >= BW_PCHUNKS) return 1;
    const int64_t blocks = (NL + u->kc - 1) / u->kc;
    return blocks < BW_PCHUNKS ? (blocks > 0 ? blocks : 1) : BW_PCHUNKS;
}

size_t nb__conv_gemm_bw_scratch(nb_dtype dt, int64_t O, int64_t Cg, int64_t G, int64_t taps, int threads) {
    ukr_info u;
    if (!query(dt, &u)) return 0;
    const int64_t es = (int64_t)nb_dtype_size(dt), Og = O / G, K = Cg * taps;
    const int64_t items = G * ((K + u.R - 1) / u.R);
    const size_t partials = items < BW_PCHUNKS ? (size_t)((BW_PCHUNKS - 1) * O * K * es) : 0;
    return al64((size_t)K * sizeof(ktab)) + al64(partials) + (size_t)threads * bw_per_thread(&u, es, (Og + u.R2 - 1) / u.R2);
}

/* items [i0, i1) of (group, panel of taps), in order, over positions [pa, pb) */
static void bw_range(const igemm *j, const nb_tensor *gy, char *gw, int64_t i0, int64_t i1, int64_t pa, int64_t pb,
                     char *scratch) {
    const ukr_info *u = &j->u;
    const int64_t kpan = (j->K + u->R - 1) / u->R;
    run *rs = (run *)scratch;
    char *cp = scratch + al64((size_t)(u->kc + 1) * sizeof(run));
    char *gp = cp + al64((size_t)(u->kc * u->PR * j->es));
    for (int64_t i = i0; i < i1;) {
        const int64_t g = i / kpan, iend = (g + 1) * kpan < i1 ? (g + 1) * kpan : i1;
        for (int64_t P0 = pa; P0 < pb; P0 += u->kc) {
            const int64_t np = pb - P0 < u->kc ? pb - P0 : u->kc;
            const int nruns = runs_of(j, P0, np, rs);
            if (j->dt == NB_F32) pack_gy_f32(j, gy, g, rs, nruns, (float *)gp);
            else pack_gy_f64(j, gy, g, rs, nruns, (double *)gp);
            const double beta = P0 == pa ? 0.0 : 1.0;
            for (int64_t ii = i; ii < iend; ii++) {
                const int64_t k0 = (ii % kpan) * u->R, nk = j->K - k0 < u->R ? j->K - k0 : u->R;
                if (j->dt == NB_F32) pack_cols_t_f32(j, g, rs, nruns, np, k0, nk, (float *)cp);
                else pack_cols_t_f64(j, g, rs, nruns, np, k0, nk, (double *)cp);
                for (int64_t wp = 0; wp < j->wpanels; wp++) {
                    const int64_t o0 = g * j->Og + wp * u->R2, no = j->Og - wp * u->R2 < u->R2 ? j->Og - wp * u->R2 : u->R2;
                    char *gpw = gp + (size_t)(wp * u->kc * u->PR2 * j->es);
                    char *c = gw + (size_t)((o0 * j->K + k0) * j->es);
                    ukr_call(u, j->dt, nk, no, np, cp, gpw, beta, c, 1, j->K);
                }
            }
        }
        i = iend;
    }
}

/* The job of a gradient: the image side (N, C, H, W) from img (x, or dx), the window side from
 * gy (N, O, OH, OW); false when there is no micro-kernel. */
static bool grad_job(nb_dtype dt, const nb_tensor *img, const nb_tensor *gy, int64_t G, nb_window2d win, igemm *j) {
    *j = (igemm){.dt = dt, .es = (int64_t)nb_dtype_size(dt), .x = img, .w = win, .N = img->shape[0],
                 .C = img->shape[1], .H = img->shape[2], .W = img->shape[3], .OH = gy->shape[2], .OW = gy->shape[3],
                 .G = G, .O = gy->shape[1]};
    j->L = j->OH * j->OW, j->Cg = j->C / G, j->Og = j->O / G, j->taps = win.kh * win.kw, j->K = j->Cg * j->taps;
    return query(dt, &j->u);
}

/* gw (O, C/G, kh, kw) contiguous = conv's weight gradient: x (N, C, H, W) any strides, gy
 * (N, O, OH, OW) contiguous; scratch of nb__conv_gemm_bw_scratch bytes, 64-byte aligned. */
void nb__conv_gemm_bw(nb_dtype dt, const nb_tensor *x, const nb_tensor *gy, int64_t G, nb_window2d win, nb_tensor *gw,
                      int threads, char *scratch) {
    igemm j;
    if (!grad_job(dt, x, gy, G, win, &j)) return;
    j.wpanels = (j.Og + j.u.R2 - 1) / j.u.R2;
    ktab *tab = (ktab *)scratch;
    ktab_fill(&j, tab);
    j.tab = tab;
    const int64_t items = G * ((j.K + j.u.R - 1) / j.u.R), NL = j.N * j.L, wlen = j.O * j.K;
    char *partials = scratch + al64((size_t)j.K * sizeof(ktab));
    char *per = partials + al64(items < BW_PCHUNKS ? (size_t)((BW_PCHUNKS - 1) * wlen * j.es) : 0);
    const size_t pt = bw_per_thread(&j.u, j.es, j.wpanels);
    if (NL == 0) {
        memset(gw->data, 0, (size_t)(gw->numel * j.es));
        return;
    }
    /* units (position chunk, item); chunk c > 0 sums into partial c - 1; chunks of whole k blocks */
    const int64_t pc = bw_pchunks(&j.u, items, NL), blocks = (NL + j.u.kc - 1) / j.u.kc, units = pc * items;
#define BW_UNIT(u, s)                                                                                              \
    do {                                                                                                           \
        const int64_t c = (u) / items, it = (u) % items;                                                          \
        const int64_t pa = blocks * c / pc * j.u.kc, pe = blocks * (c + 1) / pc * j.u.kc;                         \
        char *dst = c == 0 ? (char *)gw->data : partials + (size_t)((c - 1) * wlen * j.es);                       \
        bw_range(&j, gy, dst, it, it + 1, pa, pe < NL ? pe : NL, (s));                                             \
    } while (0)
    if (threads > 1 && units > 1) {
#pragma omp parallel num_threads(threads)
        {
            const int t = omp_get_thread_num(), T = omp_get_num_threads();
            for (int64_t u = units * t / T; u < units * (t + 1) / T; u++) BW_UNIT(u, per + (size_t)t * pt);
        }
    } else {
        for (int64_t u = 0; u < units; u++) BW_UNIT(u, per);
    }
#undef BW_UNIT
    for (int64_t c = 1; c < pc; c++) /* in chunk order: the same sums for any thread count */
        if (dt == NB_F32) {
            float *d = gw->data;
            const float *p = (const float *)partials + (c - 1) * wlen;
            for (int64_t i = 0; i < wlen; i++) d[i] += p[i];
        } else {
            double *d = gw->data;
            const double *p = (const double *)partials + (c - 1) * wlen;
            for (int64_t i = 0; i < wlen; i++) d[i] += p[i];
        }
}

/* ---- the input gradient: dx(n, c, h, w) = sum over (o, tap) of w(o, c, tap) gy(n, o, p) -------
 * Per panel of R positions (as the forward's, crossing samples), the tile of the column matrix
 * cols(k, p) = sum_o w(o, k) gy(o, p), R positions x R2 taps, is computed by the micro-kernel
 * with the output channels as its k, and added into dx (col2im) while it is in cache. gy's
 * panel is a copy of runs of its rows (positions are contiguous in gy); the weight, transposed,
 * is packed once per call. The taps of dx's channels are cut into blocks of cb whole channels
 * whose cb*taps rows fill micro-panels of R2 exactly where they can (cb = R2/gcd(taps, R2)):
 * work is split over these blocks, so each element of dx is added to by one thread, positions
 * in order and taps in order, whatever the thread count. dx is zeroed first (or holds the
 * bias). */

typedef struct {
    int64_t cb, blocks, mp_block, mp_group; /* channels per block, blocks per group, micro-panels */
    size_t wstride;                         /* bytes of one packed micro-panel of w^T: Og x PR2 */
    int64_t nsub, PB;                       /* panels of R positions per tile, PB = nsub*R positions */
} bx_plan;

static bx_plan bx_plan_of(const ukr_info *u, int64_t Og, int64_t Cg, int64_t taps, int64_t es) {
    bx_plan b;
    b.cb = u->R2 / nb__gcd(taps, u->R2);
    if (b.cb > Cg) b.cb = Cg > 0 ? Cg : 1;
    b.blocks = (Cg + b.cb - 1) / b.cb;
    b.mp_block = (b.cb * taps + u->R2 - 1) / u->R2;
    b.mp_group = b.blocks * b.mp_block;
    b.wstride = al64((size_t)(Og * u->PR2 * es));
    /* a tile of about 256 positions (whole rows of the image for the adds), gy's part <= 64 KiB */
    b.nsub = 256 / u->R;
    while (b.nsub > 1 && b.nsub * u->PR * Og * es > 65536) b.nsub--;
    if (b.nsub < 1) b.nsub = 1;
    b.PB = b.nsub * u->R;
    return b;
}
/* per thread: gy's nsub panels (Og x PR each), the tile (PB x R2), the runs of PB positions */
static size_t bx_gy_bytes(const ukr_info *u, const bx_plan *b, int64_t Og, int64_t es) {
    return al64((size_t)(b->nsub * Og * u->PR * es));
}
/* rows [*r0, *r1) of w^T (taps of a group's channels) in block blk */
static void block_rows(const igemm *j, const bx_plan *b, int64_t blk, int64_t *r0, int64_t *r1) {
    *r0 = blk * b->cb * j->taps;
    *r1 = (blk + 1) * b->cb < j->Cg ? (blk + 1) * b->cb * j->taps : j->K;
}
static size_t bx_per_thread(const ukr_info *u, const bx_plan *b, int64_t Og, int64_t es) {
    return bx_gy_bytes(u, b, Og, es) + al64((size_t)(b->PB * u->R2 * es)) + al64((size_t)(b->PB + 1) * sizeof(run));
}

size_t nb__conv_gemm_bx_scratch(nb_dtype dt, int64_t O, int64_t Cg, int64_t G, int64_t taps, int threads) {
    ukr_info u;
    if (!query(dt, &u)) return 0;
    const int64_t es = (int64_t)nb_dtype_size(dt), Og = O / G;
    const bx_plan b = bx_plan_of(&u, Og, Cg, taps, es);
    return (size_t)(G * b.mp_group) * b.wstride + al64((size_t)(Cg * taps) * sizeof(ktab)) +
           (size_t)threads * bx_per_thread(&u, &b, Og, es);
}

#define DEFINE_PACK_BX(T, SUF)                                                                                \
    /* w^T rows k0..k0+nk-1 of group g: dst[o*PR2 + t] = w(g*Og + o, k0 + t), zero past nk */                 \
    static void pack_wt_##SUF(const igemm *j, const T *wd, int64_t g, int64_t k0, int64_t nk, T *restrict dst) { \
        const int64_t PR2 = j->u.PR2;                                                                         \
        for (int64_t o = 0; o < j->Og; o++) {                                                                 \
            const T *src = wd + (g * j->Og + o) * j->K + k0;                                                  \
            for (int64_t t = 0; t < nk; t++) dst[o * PR2 + t] = src[t];                                       \
            for (int64_t t = nk; t < PR2; t++) dst[o * PR2 + t] = 0;                                          \
        }                                                                                                     \
    }                                                                                                         \
    /* gy's panel of group g: dst[o*PR + r] = gy(P0 + r, g*Og + o), zero for r in [np, R); a sample's */    \
    /* positions are contiguous in gy, so a panel is one run per sample it touches */                        \
    static void pack_gyp_##SUF(const igemm *j, const T *gd, int64_t g, int64_t P0, int64_t np, T *restrict dst) { \
        const int64_t PR = j->u.PR, R = j->u.R;                                                               \
        for (int64_t r = 0; r < np;) {                                                                        \
            const int64_t n = (P0 + r) / j->L, p = (P0 + r) % j->L, len = j->L - p < np - r ? j->L - p : np - r; \
            const T *src = gd + (n * j->O + g * j->Og) * j->L + p;                                            \
            for (int64_t o = 0; o < j->Og; o++) {                                                             \
                const T *restrict s = src + o * j->L;                                                         \
                T *restrict d = dst + o * PR + r;                                                             \
                for (int64_t q = 0; q < len; q++) d[q] = s[q];                                                \
            }                                                                                                 \
            r += len;                                                                                         \
        }                                                                                                     \
        for (int64_t o = 0; o < j->Og; o++)                                                                   \
            for (int64_t r = np; r < R; r++) dst[o * PR + r] = 0;                                             \
    }                                                                                                         \
    /* dx += the tile's rows k0..k0+nk-1 (tap t at tile[r + t*R]) at the runs' positions */                   \
    static void add_tile_##SUF(const igemm *j, int64_t g, const run *rs, int nruns, int64_t k0, int64_t nk,   \
                               const T *tile, int64_t R) {                                                    \
        const int64_t xs2 = j->x->stride[2], sw = j->w.sw, H = j->H;                                          \
        T *xd = (T *)j->x->data + g * j->Cg * j->x->stride[1];                                                \
        for (int64_t t = 0; t < nk; t++) {                                                                    \
            const ktab kt = j->tab[k0 + t];                                                                   \
            const T *tt = tile + t * R;                                                                       \
            for (int s = 0; s < nruns; s++) {                                                                 \
                const run ru = rs[s];                                                                         \
                const int64_t ih = ru.ih0 + kt.ioff;                                                          \
                if ((uint64_t)ih >= (uint64_t)H) continue;                                                    \
                int64_t a = kt.q0 - ru.ow, b = kt.q1 - ru.ow;                                                 \
                a = a < 0 ? 0 : a;                                                                            \
                b = b > ru.len ? ru.len : b;                                                                  \
                T *restrict d = xd + ru.base + kt.coff + kt.ioff * xs2 + kt.joff;                             \
                const T *restrict src = tt + ru.r;                                                            \
                if (sw == 1)                                                                                  \
                    for (int64_t q = a; q < b; q++) d[q] += src[q];                                           \
                else                                                                                          \
                    for (int64_t q = a; q < b; q++) d[q * sw] += src[q];                                      \
            }                                                                                                 \
        }                                                                                                     \
    }
DEFINE_PACK_BX(float, f32)
DEFINE_PACK_BX(double, f64)

/* blocks [i0, i1) (over groups) of dx's channels, the tiles of PB positions in [p0, p1) (p0 a
 * multiple of PB, so the tiles are the same however the positions are split) */
static void bx_range(const igemm *j, const bx_plan *b, const nb_tensor *gy, int64_t i0, int64_t i1, int64_t p0,
                     int64_t p1, char *scratch) {
    const ukr_info *u = &j->u;
    const int64_t es = j->es, PB = b->PB;
    const size_t gsub = (size_t)(j->Og * u->PR * es); /* one of gy's panels */
    char *gp = scratch, *tile = scratch + bx_gy_bytes(u, b, j->Og, es);
    run *rs = (run *)(tile + al64((size_t)(PB * u->R2 * es)));
    for (int64_t P0 = p0; P0 < p1; P0 += PB) {
        const int64_t npb = p1 - P0 < PB ? p1 - P0 : PB, nsub = (npb + u->R - 1) / u->R;
        const int nruns = runs_of(j, P0, npb, rs);
        for (int64_t i = i0; i < i1;) {
            const int64_t g = i / b->blocks, iend = (g + 1) * b->blocks < i1 ? (g + 1) * b->blocks : i1;
            for (int64_t sp = 0; sp < nsub; sp++) {
                const int64_t np = npb - sp * u->R < u->R ? npb - sp * u->R : u->R;
                if (j->dt == NB_F32) pack_gyp_f32(j, gy->data, g, P0 + sp * u->R, np, (float *)(gp + sp * gsub));
                else pack_gyp_f64(j, gy->data, g, P0 + sp * u->R, np, (double *)(gp + sp * gsub));
            }
            for (; i < iend; i++) {
                const int64_t blk = i % b->blocks;
                int64_t r0, r1;
                block_rows(j, b, blk, &r0, &r1);
                for (int64_t m = 0; r0 + m * u->R2 < r1; m++) {
                    const int64_t k0 = r0 + m * u->R2, nk = r1 - k0 < u->R2 ? r1 - k0 : u->R2;
                    const char *wp = j->wpack + (size_t)(g * b->mp_group + blk * b->mp_block + m) * b->wstride;
                    /* all R2 taps of the micro-panel (zero weights past nk): no edge case in the kernel */
                    for (int64_t sp = 0; sp < nsub; sp++) {
                        const int64_t np = npb - sp * u->R < u->R ? npb - sp * u->R : u->R;
                        for (int64_t o0 = 0; o0 < j->Og; o0 += u->kc) {
                            const int64_t on = j->Og - o0 < u->kc ? j->Og - o0 : u->kc;
                            ukr_call(u, j->dt, np, u->R2, on, gp + sp * gsub + (size_t)(o0 * u->PR * es),
                                     (char *)wp + (size_t)(o0 * u->PR2 * es), o0 == 0 ? 0.0 : 1.0,
                                     tile + (size_t)(sp * u->R * es), 1, PB);
                        }
                    }
                    if (j->dt == NB_F32) add_tile_f32(j, g, rs, nruns, k0, nk, (const float *)tile, PB);
                    else add_tile_f64(j, g, rs, nruns, k0, nk, (const double *)tile, PB);
                }
            }
        }
    }
}

/* dx (N, C, H, W) contiguous += conv's input gradient from gy (N, O, OH, OW) contiguous and w
 * (O, C/G, kh, kw) contiguous; dx holds zeros or the bias. Scratch: nb__conv_gemm_bx_scratch. */
void nb__conv_gemm_bx(nb_dtype dt, const nb_tensor *gy, const nb_tensor *w, int64_t G, nb_window2d win, nb_tensor *dx,
                      int threads, char *scratch) {
    igemm j;
    if (!grad_job(dt, dx, gy, G, win, &j)) return;
    const bx_plan b = bx_plan_of(&j.u, j.Og, j.Cg, j.taps, j.es);
    j.wpack = scratch;
    ktab *tab = (ktab *)(scratch + (size_t)(G * b.mp_group) * b.wstride);
    ktab_fill(&j, tab);
    j.tab = tab;
    char *per = (char *)tab + al64((size_t)j.K * sizeof(ktab));
    const size_t pt = bx_per_thread(&j.u, &b, j.Og, j.es);
    const int64_t items = G * b.blocks, NL = j.N * j.L, tiles = (NL + b.PB - 1) / b.PB;
    /* Windows that do not overlap (a span shorter than the stride: 1x1 with any stride) add each
     * element of dx from one position and tap only: the threads take tiles of positions, all
     * blocks each. Otherwise blocks of channels, all positions each (one block, as for 16
     * channels of a 1x1 window, ran on one thread). */
    const bool disjoint = (win.kh - 1) * win.dh < win.sh && (win.kw - 1) * win.dw < win.sw;
    if (items == 0 || NL == 0) return;
    if (threads > (disjoint ? tiles : items)) threads = (int)(disjoint ? tiles : items);
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
#pragma omp for schedule(static)
        for (int64_t i = 0; i < items; i++) {
            const int64_t g = i / b.blocks, blk = i % b.blocks;
            int64_t r0, r1;
            block_rows(&j, &b, blk, &r0, &r1);
            for (int64_t m = 0; r0 + m * j.u.R2 < r1; m++) {
                const int64_t k0 = r0 + m * j.u.R2, nk = r1 - k0 < j.u.R2 ? r1 - k0 : j.u.R2;
                char *d = j.wpack + (size_t)(g * b.mp_group + blk * b.mp_block + m) * b.wstride;
                if (dt == NB_F32) pack_wt_f32(&j, w->data, g, k0, nk, (float *)d);
                else pack_wt_f64(&j, w->data, g, k0, nk, (double *)d);
            }
        }
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        if (disjoint) {
#pragma omp for schedule(dynamic)
            for (int64_t k = 0; k < tiles; k++)
                bx_range(&j, &b, gy, 0, items, k * b.PB, (k + 1) * b.PB < NL ? (k + 1) * b.PB : NL, per + (size_t)t * pt);
        } else {
            bx_range(&j, &b, gy, items * t / T, items * (t + 1) / T, 0, NL, per + (size_t)t * pt);
        }
    }
}
