/* Direct convolution (f32, one group, any dilation), the three parts of a conv.
 *
 * Each image plane is copied once into a zero-padded plane with row pitch Wp (Wo + dw*(kw-1),
 * less the left padding that the next row lends as right padding: see pitch()). In that layout
 * every output position p = oh*Wp + ow reads tap (i, j) at p + i*dh*Wp + j*dw, so a run of VW
 * consecutive positions, even across rows, is one unaligned vector load per tap: no im2col, no
 * packed panels. The positions with ow >= Wo (Wp - Wo of each Wp) are computed and dropped. With a stride the padded plane is split into phase planes (see dgeom), where the same
 * holds. Output channels are blocked in registers, their weights broadcast:
 *
 *   forward      y[o, p]  += w[o, c, t] * x[c, p + off[t]]      (FOB channels x FPV vectors)
 *   input grad   (stride 1) the forward over gy padded by dilation*(k-1) - padding, with the
 *                weight transposed and flipped: dx[c, p] += w[o, c, k-1-t] * gy[o, p + off[t]]
 *   weight grad  gw[o, c, t] = sum_n sum_p gy[o, p] * x[c, p + off[t]] (gy in pitch Wp, zero in
 *                the dropped columns), lanes over positions, BOB channels x BTB taps in registers,
 *                summed across lanes once per chunk of samples
 *
 * The forward and input gradient split samples over threads; the weight gradient splits (channel
 * block, input channel) items, over chunks of samples whose size depends on the shapes only.
 * Every element is summed in one fixed order, so the bits do not depend on the thread count.
 * Built where the compiler targets AVX2+FMA (AVX-512: 16 lanes, else 8); nb__conv_direct_ok is
 * false elsewhere and conv.c keeps the implicit GEMM. */
#include "../internal.h"

/* GCC would turn the padding's short row loops into memset/memcpy calls, which cost more than
 * the rows of a dozen floats they copy */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif

#include <omp.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__)
#define NB_CONV_DIRECT 1
#if defined(__AVX512F__)
enum { VW = 16, FOB = 8, FPV = 3, BOB = 4, BTB = 3 };
#else
enum { VW = 8, FOB = 4, FPV = 3, BOB = 4, BTB = 2 };
#endif
typedef float vf __attribute__((vector_size(VW * 4)));
typedef float vfu __attribute__((vector_size(VW * 4), aligned(4), may_alias));
#endif

enum { MAX_TAPS = 64, MAX_PH = 16 }; /* taps of a window; phases of the input gradient's output */

#ifdef NB_CONV_DIRECT

/* One convolution done here: C input planes (Hi, Wi) at (pt, pl) of a zero padding; with a
 * stride, each padded plane is split into its phases (rows a + k*sh, columns b + k*sw), so that
 * every tap reads consecutive elements again: tap (i, j) reads phase (i*dh % sh, j*dw % sw) at
 * (i*dh / sh, j*dw / sw) from the output position. Only the phases some tap reads are made (one
 * for stride 1, one for a 1x1 window). A phase plane is (Hp, Wp), P positions computed (Ho*Wp
 * rounded up to a block), PSq floats; a channel's phase planes are PS floats. O output planes
 * (Ho, Wo); off[t]: where tap t reads, from the output position, in a channel's planes. */
typedef struct {
    int64_t C, O, Hi, Wi, pt, pl, Ho, Wo, sh, sw, Hp, Wp, P, PSq, PS;
    int64_t nph, pa[MAX_TAPS], pb[MAX_TAPS]; /* the phases read */
    int64_t taps, off[MAX_TAPS + 4];         /* past taps: the last tap again (weight-gradient blocks) */
    int64_t ktaps, tap[MAX_TAPS];            /* the window's taps, and which of them tap t is */
    int64_t oplane, orow, ocol, ooff;        /* where output (o, oh, ow) goes in a sample's output */
} dgeom;

static int64_t up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

/* The row pitch of a padded plane (stride 1 along rows): Wo + span columns are read from each
 * output row, but the columns past the row end may be the next row's leading zeros (its left
 * padding, pl columns): reading on into them reads the zeros the right padding would hold. So
 * rows need only max(the image columns that are read, Wo + span - pl): a 3x3 "same" conv over
 * 14 columns takes pitch 15, not 16; and never fewer than the Wo outputs a row holds (a left
 * padding wider than the span would give less). */
static int64_t pitch(int64_t Wo, int64_t span, int64_t pl, int64_t Wi) {
    const int64_t z = pl > 0 ? pl : 0, e = pl + Wi < Wo + span ? pl + Wi : Wo + span;
    int64_t p = e > Wo + span - z ? e : Wo + span - z;
    p = p > Wo ? p : Wo;
    return p > 1 ? p : 1;
}

static bool geom_of(dgeom *g, int64_t C, int64_t O, int64_t Hi, int64_t Wi, int64_t pt, int64_t pl, int64_t Ho,
                    int64_t Wo, nb_window2d w, int64_t block) {
    *g = (dgeom){.C = C, .O = O, .Hi = Hi, .Wi = Wi, .pt = pt, .pl = pl, .Ho = Ho, .Wo = Wo, .sh = w.sh, .sw = w.sw};
    if (w.kh * w.kw > MAX_TAPS || pt < 0 || pl < 0) return false;
    g->Hp = Ho + w.dh * (w.kh - 1) / w.sh;
    g->Wp = w.sw == 1 ? pitch(Wo, w.dw * (w.kw - 1), pl, Wi) : Wo + w.dw * (w.kw - 1) / w.sw;
    g->taps = w.kh * w.kw;
    int64_t phase[MAX_TAPS], inplane[MAX_TAPS];
    for (int64_t i = 0; i < w.kh; i++)
        for (int64_t j = 0; j < w.kw; j++) {
            const int64_t t = i * w.kw + j, a = i * w.dh % w.sh, b = j * w.dw % w.sw;
            int64_t k = 0;
            while (k < g->nph && (g->pa[k] != a || g->pb[k] != b)) k++;
            if (k == g->nph) g->pa[k] = a, g->pb[k] = b, g->nph++;
            phase[t] = k, inplane[t] = i * w.dh / w.sh * g->Wp + j * w.dw / w.sw;
        }
    g->ktaps = g->taps;
    for (int64_t t = 0; t < g->taps; t++) g->tap[t] = t;
    g->oplane = Ho * Wo, g->orow = Wo, g->ocol = 1, g->ooff = 0;
    g->P = up(Ho * g->Wp, block);
    g->PSq = up(g->P + inplane[g->taps - 1], 16);
    g->PS = g->nph * g->PSq;
    for (int64_t t = 0; t < MAX_TAPS + 4; t++) {
        const int64_t u = t < g->taps ? t : g->taps - 1;
        g->off[t] = phase[u] * g->PSq + inplane[u];
    }
    return true;
}

#endif

bool nb__conv_direct_ok(nb_dtype dt, int64_t G, nb_window2d w, bool input_grad) {
#ifdef NB_CONV_DIRECT
    if (input_grad && w.sh * w.sw > MAX_PH) return false;
    return dt == NB_F32 && G == 1 && w.kh * w.kw <= MAX_TAPS;
#else
    (void)dt, (void)G, (void)w, (void)input_grad;
    return false;
#endif
}

#ifdef NB_CONV_DIRECT
enum { PB = FPV * VW };

/* dst (PSq floats) = phase (a, b) of the zero-padded image plane src (row stride s_h, column
 * stride s_w): dst[r*Wp + q] = padded[r*sh + a][q*sw + b], zeros after its Hp rows. borders
 * false: only the image's elements are written (the zeros are there from the call before, with
 * the same geometry) */
static void pad_plane(float *restrict dst, const float *restrict src, int64_t s_h, int64_t s_w, const dgeom *g,
                      int64_t a, int64_t b, bool borders) {
    const int64_t Wp = g->Wp, sw = g->sw;
    const int64_t lo = g->pl - b, hi = g->Wi + g->pl - b; /* q*sw in [lo, hi): inside the image */
    int64_t q0 = lo > 0 ? (lo + sw - 1) / sw : 0, q1 = hi > 0 ? (hi + sw - 1) / sw : 0;
    q0 = q0 < Wp ? q0 : Wp, q1 = q1 < Wp ? q1 : Wp, q1 = q1 > q0 ? q1 : q0;
    for (int64_t r = 0; r < g->Hp; r++) {
        float *restrict d = dst + r * Wp;
        const int64_t ir = r * g->sh + a - g->pt;
        if (ir < 0 || ir >= g->Hi) {
            if (borders) nb__zero_floats(d, Wp);
            continue;
        }
        const float *restrict s = src + ir * s_h + (b - g->pl) * s_w;
        if (borders) nb__zero_floats(d, q0), nb__zero_floats(d + q1, Wp - q1);
        if (sw == 1 && s_w == 1) nb__copy_floats(d + q0, s + q0, q1 - q0);
        else if (sw == 2 && s_w == 1 && q1 - q0 >= 9) nb__gather_even_f32(d + q0, s + 2 * q0, q1 - q0);
        else
            for (int64_t q = q0; q < q1; q++) d[q] = s[q * sw * s_w];
    }
    if (borders) memset(dst + g->Hp * Wp, 0, (size_t)(g->PSq - g->Hp * Wp) * sizeof(float));
}

/* a channel's phase planes (PS floats) from its image plane */
static void pad_channel(float *dst, const float *src, int64_t s_h, int64_t s_w, const dgeom *g, bool borders) {
    for (int64_t k = 0; k < g->nph; k++) pad_plane(dst + k * g->PSq, src, s_h, s_w, g, g->pa[k], g->pb[k], borders);
}


/* ---- forward and input gradient: out (O, Ho, Wo) += the conv of padded planes xp ---------- */
/* One block of positions [p0, p0 + nv*VW) for FOB output channels into tile (rows of PB):
 * always inlined with a constant nv, so that its loops unroll and the accumulators stay in
 * registers. Full blocks take FPV vectors; the last block of a plane only the vectors it needs
 * (a 14x14 output, pitch 15: 210 positions, 224 computed instead of 240). */
static inline __attribute__((always_inline)) void fwd_block(const dgeom *g, const float *xp, const float *wb,
                                                            int64_t p0, float *tile, const int nv) {
    const int64_t C = g->C, taps = g->taps;
    vf acc[FOB][FPV];
#pragma GCC unroll 8
    for (int o = 0; o < FOB; o++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) acc[o][v] = (vf){0};
    const float *wc = wb;
    for (int64_t c = 0; c < C; c++) {
        const float *xc = xp + c * g->PS + p0;
        for (int64_t t = 0; t < taps; t++, wc += FOB) {
            vf xv[FPV];
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) xv[v] = *(const vfu *)(xc + g->off[t] + v * VW);
#pragma GCC unroll 8
            for (int o = 0; o < FOB; o++) {
                const float wv = wc[o];
#pragma GCC unroll 4
                for (int v = 0; v < nv; v++) acc[o][v] += wv * xv[v];
            }
        }
    }
#pragma GCC unroll 8
    for (int o = 0; o < FOB; o++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) *(vf *)(tile + o * PB + v * VW) = acc[o][v];
}
_Static_assert(FPV == 3, "fwd_planes dispatches blocks of 1 to 3 vectors");

/* wp: the weight packed as [O/FOB][C][taps][FOB], zero rows past O; bias (O) or NULL; tile:
 * FOB*PB floats, 64-byte aligned */
static void fwd_planes(const dgeom *g, const float *xp, const float *wp, const float *bias, float *out, float *tile) {
    const int64_t C = g->C, taps = g->taps, used = g->Ho * g->Wp;
    for (int64_t ob = 0; ob < g->O; ob += FOB) {
        const float *wb = wp + ob * C * taps;
        for (int64_t p0 = 0; p0 < used; p0 += PB) {
            const int64_t nv = used - p0 >= PB ? FPV : (used - p0 + VW - 1) / VW;
            if (nv == 3) fwd_block(g, xp, wb, p0, tile, 3);
            else if (nv == 2) fwd_block(g, xp, wb, p0, tile, 2);
            else fwd_block(g, xp, wb, p0, tile, 1);
            /* the block's positions that are outputs: runs of one output row each */
            const int64_t pe = p0 + PB < used ? p0 + PB : used;
            for (int64_t oh = p0 / g->Wp; oh * g->Wp < pe; oh++) {
                const int64_t a = oh * g->Wp > p0 ? oh * g->Wp : p0;
                const int64_t e = oh * g->Wp + g->Wo < pe ? oh * g->Wp + g->Wo : pe;
                if (a >= e) continue;
                const int64_t dst = g->ooff + oh * g->orow + (a - oh * g->Wp) * g->ocol;
                for (int64_t o = ob; o < ob + FOB && o < g->O; o++) {
                    const float *s = tile + (o - ob) * PB + (a - p0);
                    float *d = out + o * g->oplane + dst;
                    const float b = bias ? bias[o] : 0.0f;
                    if (g->ocol == 1)
                        for (int64_t q = 0; q < e - a; q++) d[q] = s[q] + b;
                    else
                        for (int64_t q = 0; q < e - a; q++) d[q * g->ocol] = s[q] + b;
                }
            }
        }
    }
}

/* The weight w, contiguous, packed as [O/FOB][C][taps][FOB] (g->O output, g->C input channels;
 * zero rows past O; tap t is the window's tap g->tap[t]): w is (O, C, kh, kw) for the forward;
 * for the input gradient (transposed) it is (C, O, kh, kw), read as (O, C) */
static void pack_weight(const dgeom *g, const float *w, bool transposed, float *wp) {
    const int64_t Ob = up(g->O, FOB), C = g->C, taps = g->taps, kt = g->ktaps;
    for (int64_t o = 0; o < Ob; o++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t t = 0; t < taps; t++) {
                float v = 0.0f;
                if (o < g->O) v = transposed ? w[(c * g->O + o) * kt + g->tap[t]] : w[(o * C + c) * kt + g->tap[t]];
                wp[((o / FOB * C + c) * taps + t) * FOB + o % FOB] = v;
            }
}

static size_t al64(size_t n) { return (n + 63) / 64 * 64; }
static size_t wpack_bytes(const dgeom *g) { return al64((size_t)(up(g->O, FOB) * g->C * g->taps) * sizeof(float)); }
static size_t planes_bytes(const dgeom *g) { return al64((size_t)(g->C * g->PS) * sizeof(float)); }

/* The forward is one geometry; the input gradient one per phase of its output, all reading the
 * same padded planes (one pad geometry: pt, pl, Hi, Wi, Hp, Wp, PS) */
typedef struct {
    int64_t n;
    dgeom g[MAX_PH];
} dplan;

/* shared: the bias and each phase's packed weight; per thread: the output tile and the padded
 * planes (its own, so their zeros are written once per call) */
static size_t plan_thread_bytes(const dplan *pl) {
    return al64((size_t)(FOB * PB) * sizeof(float)) + planes_bytes(&pl->g[0]);
}
static size_t plan_bytes(const dplan *pl, int threads) {
    size_t shared = al64((size_t)pl->g[0].O * sizeof(float));
    for (int64_t k = 0; k < pl->n; k++) shared += wpack_bytes(&pl->g[k]);
    return shared + (size_t)threads * plan_thread_bytes(pl);
}

/* a phase no tap reaches: its outputs are the bias */
static void fill_phase(const dgeom *g, const float *bias, float *out) {
    for (int64_t o = 0; o < g->O; o++)
        for (int64_t oh = 0; oh < g->Ho; oh++)
            for (int64_t ow = 0; ow < g->Wo; ow++)
                out[o * g->oplane + g->ooff + oh * g->orow + ow * g->ocol] = bias ? bias[o] : 0.0f;
}

/* out (N, O, ...) contiguous = the conv of src's (N, C, Hi, Wi) planes (any strides) + bias */
static void plan_run(const dplan *pl, const nb_tensor *src, const float *w, bool transposed, const nb_tensor *bias,
                     float *out, int threads, char *scratch) {
    const int64_t N = src->shape[0], O = pl->g[0].O, C = pl->g[0].C;
    float *bb = (float *)scratch;
    for (int64_t o = 0; bias && o < O; o++) bb[o] = (float)nb_get(bias, o);
    char *wp[MAX_PH], *p = scratch + al64((size_t)O * sizeof(float));
    for (int64_t k = 0; k < pl->n; k++) {
        wp[k] = p, p += wpack_bytes(&pl->g[k]);
        if (pl->g[k].taps) pack_weight(&pl->g[k], w, transposed, (float *)wp[k]);
    }
    const size_t per = plan_thread_bytes(pl);
    const float *xd = src->data;
    const int64_t sample = O * pl->g[0].oplane;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        float *tile = (float *)(p + (size_t)omp_get_thread_num() * per);
        bool borders = true; /* the thread's planes keep their zeros after its first sample */
#pragma omp for schedule(dynamic) /* to whichever thread is free: the same bits */
        for (int64_t n = 0; n < N; n++) {
            float *xp = (float *)((char *)tile + al64((size_t)(FOB * PB) * sizeof(float)));
            bool padded = false;
            for (int64_t k = 0; k < pl->n; k++) {
                const dgeom *g = &pl->g[k];
                if (g->Ho == 0 || g->Wo == 0) continue;
                if (g->taps == 0) {
                    fill_phase(g, bias ? bb : NULL, out + n * sample);
                    continue;
                }
                for (int64_t c = 0; c < C && !padded; c++)
                    pad_channel(xp + c * g->PS, xd + n * src->stride[0] + c * src->stride[1], src->stride[2],
                                src->stride[3], g, borders);
                padded = true;
                fwd_planes(g, xp, (const float *)wp[k], bias ? bb : NULL, out + n * sample, tile);
            }
            borders = false;
        }
    }
}

/* Phase (a, b) of the input gradient: dx[c, Y*sh + a, X*sw + b] is the sum over the taps (i, j)
 * with sh | a + ph - i*dh and sw | b + pw - j*dw of w[o, c, i, j] gy[o, Y + e_i, X + f_j],
 * e_i = (a + ph - i*dh) / sh, f_j likewise: a stride-1 conv of gy (stride 1: one phase, every
 * tap, flipped), written every sh-th row, sw-th column. Here: its taps (e, f) and outputs. */
static void bx_phase(dgeom *g, int64_t C, int64_t O, int64_t H, int64_t W, int64_t OH, int64_t OW, nb_window2d w,
                     int64_t a, int64_t b, int64_t *e, int64_t *f) {
    *g = (dgeom){.C = O, .O = C, .Hi = OH, .Wi = OW, .sh = 1, .sw = 1, .nph = 1, .ktaps = w.kh * w.kw};
    g->Ho = a < H ? (H - a + w.sh - 1) / w.sh : 0, g->Wo = b < W ? (W - b + w.sw - 1) / w.sw : 0;
    for (int64_t i = 0; i < w.kh; i++)
        for (int64_t j = 0; j < w.kw; j++) {
            const int64_t ni = a + w.ph - i * w.dh, nj = b + w.pw - j * w.dw;
            if (ni % w.sh || nj % w.sw) continue;
            const int64_t t = g->taps++;
            g->tap[t] = i * w.kw + j, e[t] = ni / w.sh, f[t] = nj / w.sw;
        }
    g->oplane = H * W, g->orow = w.sh * W, g->ocol = w.sw, g->ooff = a * W + b;
}

/* The phases that compute read one padded copy of gy: gy placed at (-min e, -min f) over all
 * of them, in a pitch and height that serve each (padding each phase's own copy cost a stride-2
 * layer's input gradient four copies of gy, 18% of its instructions) */
static void bx_share_planes(dplan *pl, int64_t OW, int64_t (*e)[MAX_TAPS], int64_t (*f)[MAX_TAPS]) {
    int64_t emin = INT64_MAX, fmin = INT64_MAX, Hp = 0, Wp = 1, PS = 0;
    const dgeom *g;
    for (int64_t k = 0; k < pl->n; k++)
        for (int64_t t = 0; t < (g = &pl->g[k])->taps && g->Ho && g->Wo; t++)
            emin = e[k][t] < emin ? e[k][t] : emin, fmin = f[k][t] < fmin ? f[k][t] : fmin;
    for (int64_t k = 0; k < pl->n; k++) {
        int64_t emax = INT64_MIN, fmax = INT64_MIN;
        for (int64_t t = 0; t < (g = &pl->g[k])->taps && g->Ho && g->Wo; t++)
            emax = e[k][t] > emax ? e[k][t] : emax, fmax = f[k][t] > fmax ? f[k][t] : fmax;
        if (emax == INT64_MIN) continue;
        const int64_t h = g->Ho + emax - emin, p = pitch(g->Wo, fmax - fmin, -fmin, OW);
        Hp = h > Hp ? h : Hp, Wp = p > Wp ? p : Wp;
    }
    for (int64_t k = 0; k < pl->n; k++) {
        dgeom *q = &pl->g[k];
        q->pt = -emin, q->pl = -fmin, q->Hp = Hp, q->Wp = Wp;
        if (!q->taps || !q->Ho || !q->Wo) continue;
        q->P = up(q->Ho * Wp, PB);
        int64_t last = 0;
        for (int64_t t = 0; t < q->taps; t++) {
            q->off[t] = (e[k][t] - emin) * Wp + (f[k][t] - fmin);
            last = q->off[t] > last ? q->off[t] : last;
        }
        for (int64_t t = q->taps; t < MAX_TAPS + 4; t++) q->off[t] = q->off[q->taps - 1];
        PS = up(q->P + last, 16) > PS ? up(q->P + last, 16) : PS;
    }
    for (int64_t k = 0; k < pl->n; k++) pl->g[k].PSq = pl->g[k].PS = PS;
}
#endif

#ifdef NB_CONV_DIRECT
/* ---- weight gradient ------------------------------------------------------------------------ */
/* Columns of the weight gradient: k = c*taps + t, read at c*PS + off[t] from a sample's planes.
 * An item is BOB output channels by a group of whole input channels whose columns fill whole
 * register blocks of BTB: lcm(taps, BTB) / taps channels (one for 3x3 on AVX-512, two with AVX2's
 * blocks of 2, BTB for a 1x1 window), so no block repeats a column except in a last, partial
 * group; the group's planes are reused from L1 across its blocks. */
static int64_t bw_group(const dgeom *g) { return BTB / nb__gcd(g->taps, BTB); }

/* gw[o, c, t] (o in [ob, ob+BOB), c in [c0, c0+cn)) (+)= sum over the chunk's nn samples of
 * gy[o, p] x[c, p + off[t]]; xs: nn samples of C padded planes, gs: nn samples of Ob planes of P
 * positions in pitch Wp */
static void bw_item(const dgeom *g, const float *xs, const float *gs, int64_t nn, int64_t ob, int64_t c0, int64_t cn,
                    float *gw, bool first, vf *accs) {
    const int64_t Ob = up(g->O, BOB), taps = g->taps, cols = cn * taps, nt = (cols + BTB - 1) / BTB;
    int64_t coff[MAX_TAPS * BTB + BTB]; /* column k's offset from the sample's first plane (past cols: the last again) */
    for (int64_t k = 0; k < nt * BTB; k++) {
        const int64_t u = k < cols ? k : cols - 1;
        coff[k] = (c0 + u / taps) * g->PS + g->off[u % taps];
    }
    /* the positions up to the last vector holding an output; past it gy's planes are zeros to
     * the block size P (a 14x14 output on AVX-512: 14 vectors, not 15) */
    const int64_t pend = up(g->Ho * g->Wp, VW);
    for (int64_t i = 0; i < nt * BOB * BTB; i++) accs[i] = (vf){0};
    /* sample by sample, so its planes stay in L1 across the column blocks; the partial sums wait
     * in accs (the same additions in the same order as if they stayed in registers) */
    for (int64_t n = 0; n < nn; n++) {
        const float *xn = xs + n * g->C * g->PS;
        const float *gb = gs + (n * Ob + ob) * g->P;
        for (int64_t tb = 0; tb < nt; tb++) {
            const int64_t *ko = coff + tb * BTB;
            vf acc[BOB][BTB];
            vf *a = accs + tb * BOB * BTB;
#pragma GCC unroll 8
            for (int o = 0; o < BOB; o++)
#pragma GCC unroll 4
                for (int k = 0; k < BTB; k++) acc[o][k] = a[o * BTB + k];
            for (int64_t p = 0; p < pend; p += VW) {
                vf gv[BOB];
#pragma GCC unroll 8
                for (int o = 0; o < BOB; o++) {
                    gv[o] = *(const vf *)(gb + o * g->P + p);
                    __asm__("" : "+v"(gv[o])); /* kept in a register: GCC would load it in each FMA */
                }
#pragma GCC unroll 4
                for (int k = 0; k < BTB; k++) {
                    vf xv = *(const vfu *)(xn + p + ko[k]);
                    __asm__("" : "+v"(xv));
#pragma GCC unroll 8
                    for (int o = 0; o < BOB; o++) acc[o][k] += gv[o] * xv;
                }
            }
#pragma GCC unroll 8
            for (int o = 0; o < BOB; o++)
#pragma GCC unroll 4
                for (int k = 0; k < BTB; k++) a[o * BTB + k] = acc[o][k];
        }
    }
    for (int64_t k = 0; k < cols; k++)
        for (int o = 0; o < BOB && ob + o < g->O; o++) {
            const vf v = accs[k / BTB * BOB * BTB + o * BTB + k % BTB];
            float s = 0.0f;
            for (int l = 0; l < VW; l++) s += v[l];
            float *d = gw + ((ob + o) * g->C + c0) * taps + k; /* (c0 + k/taps)*taps + k%taps = c0*taps + k */
            *d = first ? s : *d + s;
        }
}

/* samples per chunk: their padded planes in about 1 MiB, and at least 8 chunks where there are
 * 8 samples, so that the threads share them (a function of the shapes only) */
static int64_t bw_chunk(const dgeom *g, int64_t N) {
    const int64_t per = (g->C * g->PS + up(g->O, BOB) * g->P) * (int64_t)sizeof(float);
    int64_t c = ((int64_t)1 << 20) / (per > 0 ? per : 1);
    c = c < (N + 7) / 8 ? c : (N + 7) / 8;
    return c < 1 ? 1 : c;
}

/* one thread's part of the scratch: a chunk's padded planes (x, then gy), the partial sums of
 * one sample's tap blocks, and last the chunk's weight gradient */
static size_t bw_thread_bytes(const dgeom *g, int64_t chunk) {
    return al64((size_t)(chunk * g->C * g->PS) * sizeof(float)) + al64((size_t)(chunk * up(g->O, BOB) * g->P) * sizeof(float)) +
           al64((size_t)((g->taps * bw_group(g) + BTB - 1) / BTB * BOB * BTB) * sizeof(vf)) + al64((size_t)(g->O * g->C * g->taps) * sizeof(float));
}
static float *bw_part(char *scratch, size_t per, int t, int64_t wlen) {
    return (float *)(scratch + (size_t)t * per + per - al64((size_t)wlen * sizeof(float)));
}

/* A thread takes a whole chunk: pads its samples into its own planes (they stay in its cache)
 * and computes the chunk's weight gradient; the chunks' gradients are then added into gw in
 * chunk order, so every element is the same sum for any thread count. Chunks go in waves of
 * one per thread. */
static void bw_run(const dgeom *g, const nb_tensor *x, const float *gyd, float *gw, int threads, char *scratch) {
    const int64_t N = x->shape[0], C = g->C, O = g->O, Ob = up(O, BOB), chunk = bw_chunk(g, N);
    const int64_t cg = bw_group(g), groups = (C + cg - 1) / cg;
    const int64_t nchunks = (N + chunk - 1) / chunk, items = Ob / BOB * groups, wlen = O * C * g->taps;
    dgeom gg = *g; /* gy's planes: (Ho, Wo) at (0, 0) of (Ho, Wp), P floats apart */
    gg.Hi = g->Ho, gg.Wi = g->Wo, gg.pt = gg.pl = 0, gg.sh = gg.sw = 1, gg.Hp = g->Ho, gg.PSq = gg.PS = g->P;
    const size_t per = bw_thread_bytes(g, chunk);
    const float *xd = x->data;
    if (N == 0) memset(gw, 0, (size_t)wlen * sizeof(float));
    for (int64_t w0 = 0; w0 < nchunks; w0 += threads) {
        const int nw = (int)(nchunks - w0 < threads ? nchunks - w0 : threads);
#pragma omp parallel num_threads(nw) if (nw > 1)
        {
            const int t = omp_get_thread_num();
            char *base = scratch + (size_t)t * per;
            float *xs = (float *)base;
            float *gs = (float *)(base + al64((size_t)(chunk * C * g->PS) * sizeof(float)));
            vf *accs = (vf *)((char *)gs + al64((size_t)(chunk * Ob * g->P) * sizeof(float)));
            float *part = bw_part(scratch, per, t, wlen);
            const int64_t n0 = (w0 + t) * chunk, nn = chunk < N - n0 ? chunk : N - n0;
            const bool borders = w0 == 0; /* later waves reuse the planes: the zeros are there */
            for (int64_t n = 0; n < nn; n++) {
                for (int64_t k = 0; k < C; k++)
                    pad_channel(xs + (n * C + k) * g->PS, xd + (n0 + n) * x->stride[0] + k * x->stride[1], x->stride[2],
                                x->stride[3], g, borders);
                for (int64_t o = 0; o < O; o++)
                    pad_plane(gs + (n * Ob + o) * g->P, gyd + ((n0 + n) * O + o) * g->Ho * g->Wo, g->Wo, 1, &gg, 0, 0, borders);
                if (borders) memset(gs + (n * Ob + O) * g->P, 0, (size_t)((Ob - O) * g->P) * sizeof(float));
            }
            for (int64_t it = 0; it < items; it++) {
                const int64_t c0 = it % groups * cg;
                bw_item(g, xs, gs, nn, it / groups * BOB, c0, cg < C - c0 ? cg : C - c0, part, true, accs);
            }
        }
        /* gw = chunk 0's sum, then += each next chunk's, element by element */
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && wlen >= 4096)
        for (int64_t i = 0; i < wlen; i++) {
            float v = w0 == 0 ? 0.0f : gw[i];
            for (int t = 0; t < nw; t++) {
                const float pv = bw_part(scratch, per, t, wlen)[i];
                v = w0 + t == 0 ? pv : v + pv;
            }
            gw[i] = v;
        }
    }
}
#endif

/* ---- entry points (internal.h) -------------------------------------------------------------- */
#ifdef NB_CONV_DIRECT
static bool fwd_plan(dplan *pl, int64_t C, int64_t O, int64_t H, int64_t W, nb_window2d w, int64_t OH, int64_t OW) {
    pl->n = 1;
    return geom_of(&pl->g[0], C, O, H, W, w.ph, w.pw, OH, OW, w, PB);
}
static bool bx_plan(dplan *pl, int64_t C, int64_t O, int64_t H, int64_t W, nb_window2d w, int64_t OH, int64_t OW) {
    pl->n = 0, pl->g[0].O = C;
    if (w.sh * w.sw > MAX_PH || w.kh * w.kw > MAX_TAPS) return false;
    int64_t e[MAX_PH][MAX_TAPS], f[MAX_PH][MAX_TAPS];
    for (int64_t a = 0; a < w.sh; a++)
        for (int64_t b = 0; b < w.sw; b++, pl->n++) bx_phase(&pl->g[pl->n], C, O, H, W, OH, OW, w, a, b, e[pl->n], f[pl->n]);
    bx_share_planes(pl, OW, e, f);
    return true;
}

/* the plan of one part: FWD a = x, out = y; BX a = gy, out = dx; BW a = x, b = gy, out = gw */
static bool part_plan(nb_conv_part part, const nb_tensor *a, const nb_tensor *b, nb_window2d w, const nb_tensor *out,
                      dplan *pl) {
    if (part == NB_CONV_FWD)
        return fwd_plan(pl, a->shape[1], out->shape[1], a->shape[2], a->shape[3], w, out->shape[2], out->shape[3]);
    if (part == NB_CONV_BX)
        return bx_plan(pl, out->shape[1], a->shape[1], out->shape[2], out->shape[3], w, a->shape[2], a->shape[3]);
    pl->n = 1;
    return geom_of(&pl->g[0], a->shape[1], b->shape[1], a->shape[2], a->shape[3], w.ph, w.pw, b->shape[2], b->shape[3], w,
                   VW);
}
#endif

size_t nb__conv_direct_scratch(nb_conv_part part, const nb_tensor *a, const nb_tensor *b, nb_window2d win,
                               const nb_tensor *out, int threads) {
#ifdef NB_CONV_DIRECT
    dplan pl;
    if (!part_plan(part, a, b, win, out, &pl)) return 0;
    if (part != NB_CONV_BW) return plan_bytes(&pl, threads);
    const int64_t N = a->shape[0];
    return (size_t)threads * bw_thread_bytes(&pl.g[0], bw_chunk(&pl.g[0], N > 0 ? N : 1));
#else
    (void)part, (void)a, (void)b, (void)win, (void)out, (void)threads;
    return 0;
#endif
}

void nb__conv_direct(nb_conv_part part, const nb_tensor *a, const nb_tensor *b, const nb_tensor *bias, nb_window2d win,
                     nb_tensor *out, int threads, char *scratch) {
#ifdef NB_CONV_DIRECT
    dplan pl;
    if (!part_plan(part, a, b, win, out, &pl)) return;
    if (part == NB_CONV_BW) bw_run(&pl.g[0], a, b->data, out->data, threads, scratch);
    else plan_run(&pl, a, b->data, part == NB_CONV_BX, bias, out->data, threads, scratch);
#else
    (void)part, (void)a, (void)b, (void)bias, (void)win, (void)out, (void)threads, (void)scratch;
#endif
}
