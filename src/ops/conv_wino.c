/* Winograd F(2x2, 3x3) convolution (f32, one group, 3x3 window, stride 1, no dilation): the
 * forward and the stride-1 input gradient, which is the same correlation of gy with the weight
 * transposed and flipped.
 *
 * A 2x2 output tile is computed from the 4x4 input tile d under it (Lavin and Gray, 2015):
 *   y = A^T [ sum over c of U(o, c) . V(c) ] A,   U = G g G^T,   V = B^T d B   (. elementwise)
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
 *   A^T = [1 1 1 0; 0 1 -1 -1]
 * so the products over channels become 16 matrix products (one per element xi of the 4x4 tile),
 * each (O x C)(C x tiles): 16*C*O multiply-adds per 4 outputs against the direct kernel's 36*C*O,
 * 2.25 times fewer. The transforms are additions only (U is made once per call, in double).
 *
 * Layout. A thread takes samples; their tile rows (TX tiles each) are gathered into a batch of
 * slots, tile by tile in row order, until the batch is full (its transformed input V, 16 x C x
 * slots floats, sized to stay in L2). Every stage after the first runs over all the batch's
 * slots as whole vectors, so a 7-tile row does not leave half of a 16-lane vector idle:
 *   input    each padded row is split into even and odd columns (vector shuffles): the row
 *            half of B^T d B as vectors over tx, stored as the even rows' and the odd rows'
 *            streams, in which tile t's four rows are t and t + 1 of each: the column half is
 *            then a vector operation over slots;
 *   products 16 of them, C deep, OB output channels x 3 vectors of slots in registers (the
 *            direct kernel's forward block);
 *   output   A^T M A over slots, the tiles' two columns interleaved into two rows per tile
 *            row, copied out row by row.
 *
 * Each output is sum over c in order, then the fixed transform: the bits do not depend on the
 * thread count, the batch boundaries or where a tile sits in a vector. Built where the compiler
 * targets AVX2+FMA; nb__conv_wino_ok is false elsewhere. Where it is used (conv.c: 8 or more
 * channels on both sides) is measured there. */
#include "../internal.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif

#include <omp.h>
#include <string.h>


#if defined(__AVX2__) && defined(__FMA__)
#define NB_WINO 1
#if defined(__AVX512F__)
enum { VW = 16, OB = 8, NV = 3 };
#define EVENS 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30
#define ODDS 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31
#define ZIP_LO 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23
#define ZIP_HI 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31
#else
enum { VW = 8, OB = 4, NV = 3 };
#define EVENS 0, 2, 4, 6, 8, 10, 12, 14
#define ODDS 1, 3, 5, 7, 9, 11, 13, 15
#define ZIP_LO 0, 8, 1, 9, 2, 10, 3, 11
#define ZIP_HI 4, 12, 5, 13, 6, 14, 7, 15
#endif
typedef float vf __attribute__((vector_size(VW * 4)));
typedef int vi __attribute__((vector_size(VW * 4)));
typedef float vfu __attribute__((vector_size(VW * 4), aligned(4), may_alias));
enum { PB = NV * VW, XI = 16 };
#endif

/* The correlation done here: out[n, o, h, w] = bias[o] + sum over c, r, s of
 * K(o, c, r, s) * src[n, c, h + r - pt, w + s - pl] (zero outside src), for h < Ho, w < Wo. */
typedef struct {
    int64_t N, C, O, Hi, Wi, pt, pl, Ho, Wo;
    int64_t TY, TX, TXv; /* tile rows and columns; columns rounded up to vectors */
    int64_t RB, Sp;      /* tile rows per batch; slots per batch (rounded up, plus a vector) */
    int64_t Ob;          /* O rounded up to OB */
    int64_t spc, chunks; /* weight gradient: samples per chunk, chunks */
} wgeom;

#ifdef NB_WINO
static int64_t up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }
static size_t al64(size_t n) { return (n + 63) / 64 * 64; }

static bool wgeom_of(wgeom *g, nb_conv_part part, const nb_tensor *a, const nb_tensor *w, nb_window2d win,
                     const nb_tensor *out) {
    if (part == NB_CONV_BW || win.kh != 3 || win.kw != 3 || win.sh != 1 || win.sw != 1 || win.dh != 1 || win.dw != 1)
        return false;
    const bool bx = part == NB_CONV_BX;
    *g = (wgeom){.N = a->shape[0], .C = a->shape[1], .O = out->shape[1], .Hi = a->shape[2], .Wi = a->shape[3],
                 .pt = bx ? 2 - win.ph : win.ph, .pl = bx ? 2 - win.pw : win.pw, .Ho = out->shape[2],
                 .Wo = out->shape[3]};
    if (g->pt < 0 || g->pl < 0 || g->pt > 2 || g->pl > 2 || w->shape[0] != (bx ? g->C : g->O) ||
        w->shape[1] != (bx ? g->O : g->C))
        return false;
    g->TY = (g->Ho + 1) / 2, g->TX = (g->Wo + 1) / 2, g->TXv = up(g->TX > 0 ? g->TX : 1, VW);
    /* V (16 x C x slots floats) in about 384 KiB, at least one tile row */
    const int64_t slots = ((int64_t)384 << 10) / (XI * 4 * (g->C > 0 ? g->C : 1));
    g->RB = slots / (g->TX > 0 ? g->TX : 1);
    g->RB = g->RB < 1 ? 1 : g->RB;
    if (g->RB > g->TY * g->N) g->RB = g->TY * g->N > 0 ? g->TY * g->N : 1;
    g->Sp = up(g->RB * g->TX, VW) + VW;
    g->Ob = up(g->O, OB);
    return true;
}

/* The weight gradient's geometry: x (N, C, H, W) and gy (N, O, Ho, Wo) as the forward's, one
 * sample per input_tiles call, and the samples in chunks (a function of the shapes only) whose
 * transformed x and gy (16 x (C + O) floats per tile) take about 1 MiB; at most 32 MiB of
 * per-chunk sums. */
static bool bgeom_of(wgeom *g, const nb_tensor *x, const nb_tensor *gy, nb_window2d win) {
    if (win.kh != 3 || win.kw != 3 || win.sh != 1 || win.sw != 1 || win.dh != 1 || win.dw != 1) return false;
    *g = (wgeom){.N = x->shape[0], .C = x->shape[1], .O = gy->shape[1], .Hi = x->shape[2], .Wi = x->shape[3],
                 .pt = win.ph, .pl = win.pw, .Ho = gy->shape[2], .Wo = gy->shape[3]};
    if (g->pt < 0 || g->pl < 0 || g->pt > 2 || g->pl > 2) return false;
    g->TY = (g->Ho + 1) / 2, g->TX = (g->Wo + 1) / 2, g->TXv = up(g->TX > 0 ? g->TX : 1, VW);
    g->RB = g->TY > 0 ? g->TY : 1;
    const int64_t tiles = g->TY * g->TX > 0 ? g->TY * g->TX : 1, per = XI * (g->C + g->O) * tiles * 4;
    g->spc = ((int64_t)1 << 20) / per;
    g->spc = g->spc < 1 ? 1 : g->spc;
    const int64_t N = g->N > 0 ? g->N : 1;
    if (g->spc > N) g->spc = N;
    g->chunks = (N + g->spc - 1) / g->spc;
    while (g->chunks > 1 && g->chunks * XI * g->O * g->C * 4 > ((int64_t)32 << 20))
        g->spc *= 2, g->chunks = (N + g->spc - 1) / g->spc;
    if (g->spc > N) g->spc = N;
    g->Sp = up(g->spc * tiles, VW) + VW;
    g->Ob = up(g->O, OB);
    return true;
}
#endif

bool nb__conv_wino_ok(nb_dtype dt, int64_t G, nb_window2d win) {
#ifdef NB_WINO
    return dt == NB_F32 && G == 1 && win.kh == 3 && win.kw == 3 && win.sh == 1 && win.sw == 1 && win.dh == 1 &&
           win.dw == 1 && win.ph >= 0 && win.ph <= 2 && win.pw >= 0 && win.pw <= 2;
#else
    (void)dt, (void)G, (void)win;
    return false;
#endif
}

#ifdef NB_WINO
/* Per thread: the padded rows of a batch's tile rows (rb), their row transforms (hs: for each k
 * of the row half, the even rows' and the odd rows' TX values each, row after row), V, the
 * products M, two interleaved output rows per tile row of the batch (z) and the batch's tile
 * rows (sample, row). */
static int64_t Sb(const wgeom *g) { return up(g->Sp, PB); } /* slots of M: whole blocks */
static int64_t hs_len(const wgeom *g) { return up((g->RB + 1) * g->TX + 2 * VW, VW); }
static size_t row_floats(const wgeom *g) { return (size_t)(2 * g->TXv + 2 * VW); }
static size_t rb_floats(const wgeom *g) { return (size_t)(2 * g->RB + 2) * row_floats(g); }
static size_t h_floats(const wgeom *g) { return (size_t)(8 * hs_len(g)); }
static size_t v_floats(const wgeom *g) { return (size_t)(XI * g->C * g->Sp); }
static size_t m_floats(const wgeom *g) { return (size_t)(XI * OB * Sb(g)); }
static size_t z_floats(const wgeom *g) { return (size_t)(4 * Sb(g)); }
static size_t thread_bytes(const wgeom *g) {
    return al64(rb_floats(g) * 4) + al64(h_floats(g) * 4) + al64(v_floats(g) * 4) + al64(m_floats(g) * 4) +
           al64(z_floats(g) * 4) + al64((size_t)g->RB * 2 * sizeof(int64_t));
}
static size_t u_bytes(const wgeom *g) { return al64((size_t)(XI * g->Ob * g->C) * 4); }

/* U[xi][o / OB][c][o % OB] = (G K(o, c) G^T)[xi] for o in [o0, o1), zero past O. K is w (O, C, 3, 3) itself, or
 * for the input gradient the conv's weight (C, O, 3, 3) here, transposed and flipped:
 * K(o, c, r, s) = w[c, o, 2 - r, 2 - s] */
static void pack_u(const wgeom *g, const float *w, bool bx, float *u, int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; o++)
        for (int64_t c = 0; c < g->C; c++) {
            double k[3][3] = {{0}}, t[4][3], uu[4][4];
            for (int r = 0; r < 3 && o < g->O; r++)
                for (int s = 0; s < 3; s++)
                    k[r][s] = bx ? w[((c * g->O + o) * 3 + 2 - r) * 3 + 2 - s] : w[((o * g->C + c) * 3 + r) * 3 + s];
            for (int s = 0; s < 3; s++) { /* G k, along r */
                t[0][s] = k[0][s];
                t[1][s] = 0.5 * (k[0][s] + k[1][s] + k[2][s]);
                t[2][s] = 0.5 * (k[0][s] - k[1][s] + k[2][s]);
                t[3][s] = k[2][s];
            }
            for (int r = 0; r < 4; r++) { /* (G k) G^T, along s */
                uu[r][0] = t[r][0];
                uu[r][1] = 0.5 * (t[r][0] + t[r][1] + t[r][2]);
                uu[r][2] = 0.5 * (t[r][0] - t[r][1] + t[r][2]);
                uu[r][3] = t[r][2];
            }
            for (int xi = 0; xi < XI; xi++)
                u[((xi * (g->Ob / OB) + o / OB) * g->C + c) * OB + o % OB] = (float)uu[xi / 4][xi % 4];
        }
}

/* d[0, n) = s[0, n), s with column stride s_w; nothing outside d[0, n) is written */
static inline void copy_row(float *restrict d, const float *restrict s, int64_t n, int64_t s_w) {
    if (s_w == 1) nb__copy_floats(d, s, n);
    else
        for (int64_t q = 0; q < n; q++) d[q] = s[q * s_w];
}

/* The row half of B^T d B for a padded row rb: h_k[tx] for k = 0..3 from d[s] = rb[2 tx + s]:
 * d0 - d2, d1 + d2, d2 - d1, d1 - d3, as vectors over tx (even and odd columns by shuffles),
 * stored at h + k * hs; whole vectors (lanes past TX land where the rows after go) */
static inline void row_transform(int64_t TX, const float *rb, float *h, int64_t hs) {
    for (int64_t v = 0; v < TX; v += VW) {
        const float *r0 = rb + 2 * v;
        const vf lo = *(const vfu *)r0, hi = *(const vfu *)(r0 + VW);
        const vf lo2 = *(const vfu *)(r0 + 2), hi2 = *(const vfu *)(r0 + 2 + VW);
        const vf E = __builtin_shufflevector(lo, hi, EVENS), O = __builtin_shufflevector(lo, hi, ODDS);
        const vf E2 = __builtin_shufflevector(lo2, hi2, EVENS), O2 = __builtin_shufflevector(lo2, hi2, ODDS);
        *(vfu *)(h + 0 * hs + v) = E - E2;
        *(vfu *)(h + 1 * hs + v) = O + E2;
        *(vfu *)(h + 2 * hs + v) = E2 - O;
        *(vfu *)(h + 3 * hs + v) = O - O2;
    }
}

/* Tile rows ty0 .. ty0 + nr - 1 of sample n into slots slot0.. of V, channel by channel: the
 * padded rows are copied into rb (row_floats apart; their zero borders are written once per
 * call; all rows before any is read, so the copies retire before the shifted loads), then
 * row-transformed into the streams hs (rows outside the image: zeros), where padded row r of
 * the chunk is at (r / 2) * TX of the even or odd stream. Tile t's four rows are then even and
 * odd at t and t + 1, so the column half runs over all the chunk's slots as whole vectors:
 *   V[xi = 4 i + k][c][slot0 + s] from E = even_k[s], O = odd_k[s], E2 = even_k[s + TX],
 *   O2 = odd_k[s + TX]: E - E2, O + E2, E2 - O, O - O2 for i = 0..3.
 * Lanes past the chunk land in the next chunk's slots (written after) or the slack. */
static __attribute__((noinline)) void input_tiles(const wgeom *g, const nb_tensor *src, int64_t n, int64_t ty0,
                                                  int64_t nr, int64_t slot0, float *rb, float *hs, float *V) {
    const int64_t TX = g->TX, rows = 2 * nr + 2, Sp = g->Sp, RW = (int64_t)row_floats(g), HS = hs_len(g);
    const int64_t s_h = src->stride[2], s_w = src->stride[3], S = nr * TX;
    const int64_t wi = g->Wi < RW - g->pl ? g->Wi : RW - g->pl; /* the image columns a tile reads */
    const float *xd = (const float *)src->data + n * src->stride[0];
    for (int64_t c = 0; c < g->C; c++) {
        const float *plane = xd + c * src->stride[1];
        for (int64_t r = 0; r < rows; r++) {
            const int64_t ir = 2 * ty0 + r - g->pt;
            if (ir >= 0 && ir < g->Hi) copy_row(rb + r * RW + g->pl, plane + ir * s_h, wi, s_w);
        }
        for (int64_t r = 0; r < rows; r++) {
            const int64_t ir = 2 * ty0 + r - g->pt;
            float *h = hs + (r & 1) * 4 * HS + (r >> 1) * TX;
            if (ir >= 0 && ir < g->Hi) {
                row_transform(TX, rb + r * RW, h, HS);
            } else {
                for (int k = 0; k < 4; k++)
                    for (int64_t v = 0; v < TX; v += VW) *(vfu *)(h + k * HS + v) = (vf){0};
            }
        }
        float *vc = V + c * Sp + slot0;
        const int64_t vs = g->C * Sp; /* V's xi stride */
        for (int k = 0; k < 4; k++) {
            const float *ek = hs + k * HS, *ok = hs + 4 * HS + k * HS;
            for (int64_t s = 0; s < S; s += VW) {
                const vf a0 = *(const vfu *)(ek + s), a1 = *(const vfu *)(ok + s);
                const vf a2 = *(const vfu *)(ek + s + TX), a3 = *(const vfu *)(ok + s + TX);
                *(vfu *)(vc + (0 * 4 + k) * vs + s) = a0 - a2;
                *(vfu *)(vc + (1 * 4 + k) * vs + s) = a1 + a2;
                *(vfu *)(vc + (2 * 4 + k) * vs + s) = a2 - a1;
                *(vfu *)(vc + (3 * 4 + k) * vs + s) = a1 - a3;
            }
        }
    }
}

/* M is kept in blocks of PB slots: M[blk][xi][o][PB], so that the output transform reads its 16
 * products at constant distances. Products of block blk for OB channels, nv vectors: always
 * inlined with a constant nv so the accumulators stay in registers. */
static inline __attribute__((always_inline)) void product_block(int64_t C, int64_t Sp, const float *Vx,
                                                                const float *ux, int64_t s0, float *Mx,
                                                                const int nv) {
    vf acc[OB][NV];
#pragma GCC unroll 8
    for (int o = 0; o < OB; o++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) acc[o][v] = (vf){0};
    for (int64_t c = 0; c < C; c++) {
        vf xv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) xv[v] = *(const vf *)(Vx + c * Sp + s0 + v * VW);
#pragma GCC unroll 8
        for (int o = 0; o < OB; o++) {
            const float wv = ux[c * OB + o];
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) acc[o][v] += wv * xv[v];
        }
    }
#pragma GCC unroll 8
    for (int o = 0; o < OB; o++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) *(vf *)(Mx + o * PB + v * VW) = acc[o][v];
}
_Static_assert(NV == 3, "products dispatch blocks of 1 to 3 vectors");

/* The batch's outputs for channels ob..: A^T M A for all its slots as whole vectors, the tiles'
 * two columns interleaved into z (row 0 of every tile row, then row 1, 2 slots per tile), then
 * each tile row's two output rows copied out. Returns whether an output is NaN: an inf (or a
 * value near FLT_MAX) entering the transforms gives inf - inf there, where the direct sum gives
 * inf (or a finite value); the caller then computes the part again with the direct kernel.
 * Lanes past the last slot are not outputs. */
static __attribute__((noinline)) bool output_tiles(const wgeom *g, const float *M, int64_t ob, const float *bias,
                                                   const int64_t *rows, int64_t nrows, float *z, float *out) {
    const int64_t Wo = g->Wo, plane = g->Ho * Wo, S = nrows * g->TX, zs = 2 * Sb(g);
    vi lane, nan = {0};
    for (int k = 0; k < VW; k++) lane[k] = k;
    for (int64_t o = ob; o < ob + OB && o < g->O; o++) {
        const float b = bias ? bias[o] : 0.0f;
        for (int64_t s0 = 0; s0 < S; s0 += VW) {
            const float *m = M + ((s0 / PB * XI) * OB + (o - ob)) * PB + s0 % PB;
            vf x[XI];
#pragma GCC unroll 16
            for (int xi = 0; xi < XI; xi++) x[xi] = *(const vf *)(m + xi * OB * PB);
            vf t0[4], t1[4];
#pragma GCC unroll 4
            for (int s = 0; s < 4; s++) t0[s] = x[s] + x[4 + s] + x[8 + s], t1[s] = x[4 + s] - x[8 + s] - x[12 + s];
            const vf y00 = t0[0] + t0[1] + t0[2] + b, y01 = t0[1] - t0[2] - t0[3] + b;
            const vf y10 = t1[0] + t1[1] + t1[2] + b, y11 = t1[1] - t1[2] - t1[3] + b;
            nan |= ((y00 != y00) | (y01 != y01) | (y10 != y10) | (y11 != y11)) & (lane < (int)(S - s0));
            *(vf *)(z + 2 * s0) = __builtin_shufflevector(y00, y01, ZIP_LO);
            *(vf *)(z + 2 * s0 + VW) = __builtin_shufflevector(y00, y01, ZIP_HI);
            *(vf *)(z + zs + 2 * s0) = __builtin_shufflevector(y10, y11, ZIP_LO);
            *(vf *)(z + zs + 2 * s0 + VW) = __builtin_shufflevector(y10, y11, ZIP_HI);
        }
        for (int64_t r = 0; r < nrows; r++) {
            const int64_t ty = rows[2 * r + 1];
            float *y0 = out + (rows[2 * r] * g->O + o) * plane + 2 * ty * Wo;
            copy_row(y0, z + 2 * r * g->TX, Wo, 1);
            if (2 * ty + 1 < g->Ho) copy_row(y0 + Wo, z + zs + 2 * r * g->TX, Wo, 1);
        }
    }
    int any = 0;
    for (int k = 0; k < VW; k++) any |= nan[k];
    return any != 0;
}

/* The batch's products and outputs: for each block of OB output channels, 16 products over
 * the slots, then the outputs. */
static bool flush(const wgeom *g, const float *V, const float *U, const float *bias, const int64_t *rows,
                  int64_t nrows, float *M, float *z, float *out) {
    const int64_t S = nrows * g->TX, C = g->C, Sp = g->Sp, nob = g->Ob / OB;
    bool nan = false;
    for (int64_t ob = 0; ob < g->Ob; ob += OB) {
        for (int xi = 0; xi < XI; xi++) {
            const float *Vx = V + xi * C * Sp, *ux = U + (xi * nob + ob / OB) * C * OB;
            for (int64_t s0 = 0; s0 < S; s0 += PB) {
                const int64_t nv = S - s0 >= PB ? NV : (S - s0 + VW - 1) / VW;
                float *Mx = M + ((s0 / PB * XI) + xi) * OB * PB;
                if (nv == 3) product_block(C, Sp, Vx, ux, s0, Mx, 3);
                else if (nv == 2) product_block(C, Sp, Vx, ux, s0, Mx, 2);
                else product_block(C, Sp, Vx, ux, s0, Mx, 1);
            }
        }
        nan |= output_tiles(g, M, ob, bias, rows, nrows, z, out);
    }
    return nan;
}

/* false when an output came out NaN (output_tiles) */
static bool wino_run(const wgeom *g, const nb_tensor *src, const float *w, bool bx, const nb_tensor *bias, float *out,
                     int threads, char *scratch) {
    float *U = (float *)scratch, *bb = (float *)(scratch + u_bytes(g));
    for (int64_t o = 0; bias && o < g->O; o++) bb[o] = (float)nb_get(bias, o);
    char *base = (char *)bb + al64((size_t)g->O * sizeof(float));
    const size_t per = thread_bytes(g);
    bool nan = false;
#pragma omp parallel num_threads(threads) if (threads > 1) reduction(|| : nan)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        pack_u(g, w, bx, U, g->Ob * t / nt, g->Ob * (t + 1) / nt);
        char *p = base + (size_t)t * per;
        float *rb = (float *)p;
        float *hs = (float *)(p += al64(rb_floats(g) * 4));
        float *V = (float *)(p += al64(h_floats(g) * 4));
        float *M = (float *)(p += al64(v_floats(g) * 4));
        float *z = (float *)(p += al64(m_floats(g) * 4));
        int64_t *rows = (int64_t *)(p += al64(z_floats(g) * 4));
        /* rb's borders are the padding. The lanes past a batch's last slot are computed from
         * whatever V holds there and dropped (no output is copied from them). */
        memset(rb, 0, rb_floats(g) * sizeof(float));
        int64_t nrows = 0;
#pragma omp barrier /* U is whole */
        /* samples go to whichever thread is free (measured: one thread of a pair can run the
         * memory-bound input transform 1.4x slower than the other); the bits do not depend on
         * which thread or batch takes a sample */
#pragma omp for schedule(dynamic)
        for (int64_t n = 0; n < g->N; n++) {
            for (int64_t ty = 0; ty < g->TY;) {
                const int64_t nr = g->TY - ty < g->RB - nrows ? g->TY - ty : g->RB - nrows;
                input_tiles(g, src, n, ty, nr, nrows * g->TX, rb, hs, V);
                for (int64_t r = 0; r < nr; r++) rows[2 * (nrows + r)] = n, rows[2 * (nrows + r) + 1] = ty + r;
                nrows += nr, ty += nr;
                if (nrows == g->RB) nan |= flush(g, V, U, bias ? bb : NULL, rows, nrows, M, z, out), nrows = 0;
            }
        }
        if (nrows) nan |= flush(g, V, U, bias ? bb : NULL, rows, nrows, M, z, out);
    }
    return !nan;
}

/* ---- the weight gradient ---------------------------------------------------------------------
 * With y_t = A^T [U . V_t] A for every tile t and U = G g G^T, the gradient of g is
 *   gw(o, c) = G^T [ sum over samples and tiles of Gy_t(o) . V_t(c) ] G,   Gy_t = A gy_t A^T,
 * gy_t the 2x2 tile of gy (zeros past the outputs), A = [1 0; 1 1; 1 -1; 0 -1]: exactly the
 * gradient of the convolution, in 16 products (O x slots)(slots x C), 2.25 times fewer
 * multiply-adds than the direct kernel's. A thread takes a chunk of samples: V and Gy of its
 * tiles, then the products with slots in vector lanes (BO x BC accumulators, summed across lanes
 * by a fixed tree) into the chunk's own sums; the chunks' sums are added in chunk order, so the
 * bits do not depend on the thread count. */
enum { BO = VW / 4, BC = 4 }; /* BO * BC == VW: the lane tree makes one vector of the sums */
static int64_t gs_len(const wgeom *g) { return up(g->TY * g->TX + 2 * VW, VW); }
static size_t gy_floats(const wgeom *g) { return (size_t)(XI * g->O * g->Sp); }
static size_t bw_thread_bytes(const wgeom *g) {
    return al64(rb_floats(g) * 4) + al64(h_floats(g) * 4) + al64(v_floats(g) * 4) + al64(gy_floats(g) * 4) +
           al64((size_t)(8 * gs_len(g)) * 4) + al64((size_t)(g->Ho > 0 ? g->Ho : 1) * row_floats(g) * 4);
}
static size_t p_bytes(const wgeom *g) { return al64((size_t)(g->chunks * XI * g->O * g->C) * 4); }

/* Gy[xi][o][slot0 + ty TX + tx] = (A g A^T)[xi] for the 2x2 tiles g of one sample's gy planes
 * (Ho, Wo) contiguous: each output row split into even and odd columns (h_b = g0, g0 + g1,
 * g0 - g1, -g1 along the row), even and odd rows in their own streams (gs), then along the
 * column h0, h0 + h1, h0 - h1, -h1 as vectors over the sample's slots. rbg: Ho zeroed rows of
 * row_floats, into which a plane's rows are copied before any is read. */
static __attribute__((noinline)) void gy_tiles(const wgeom *g, const float *gyd, int64_t slot0, float *rbg, float *gs,
                                               float *Gy) {
    const int64_t TX = g->TX, GL = gs_len(g), S = g->TY * TX, Wo = g->Wo, Sp = g->Sp, xs = g->O * Sp;
    const int64_t RW = (int64_t)row_floats(g);
    for (int64_t o = 0; o < g->O; o++) {
        const float *plane = gyd + o * g->Ho * Wo;
        for (int64_t r = 0; r < g->Ho; r++) copy_row(rbg + r * RW, plane + r * Wo, Wo, 1);
        for (int64_t r = 0; r < 2 * g->TY; r++) {
            float *h = gs + (r & 1) * 4 * GL + (r >> 1) * TX;
            if (r >= g->Ho) {
                for (int k = 0; k < 4; k++)
                    for (int64_t v = 0; v < TX; v += VW) *(vfu *)(h + k * GL + v) = (vf){0};
                continue;
            }
            const float *row = rbg + r * RW;
            for (int64_t v = 0; v < TX; v += VW) {
                const vf lo = *(const vf *)(row + 2 * v), hi = *(const vf *)(row + 2 * v + VW);
                const vf e = __builtin_shufflevector(lo, hi, EVENS), d = __builtin_shufflevector(lo, hi, ODDS);
                *(vfu *)(h + 0 * GL + v) = e;
                *(vfu *)(h + 1 * GL + v) = e + d;
                *(vfu *)(h + 2 * GL + v) = e - d;
                *(vfu *)(h + 3 * GL + v) = -d;
            }
        }
        float *go = Gy + o * Sp + slot0;
        for (int b = 0; b < 4; b++) {
            const float *e = gs + b * GL, *d = gs + 4 * GL + b * GL;
            for (int64_t s = 0; s < S; s += VW) {
                const vf E = *(const vfu *)(e + s), D = *(const vfu *)(d + s);
                *(vfu *)(go + (0 * 4 + b) * xs + s) = E;
                *(vfu *)(go + (1 * 4 + b) * xs + s) = E + D;
                *(vfu *)(go + (2 * 4 + b) * xs + s) = E - D;
                *(vfu *)(go + (3 * 4 + b) * xs + s) = -D;
            }
        }
    }
}

/* lane k of the result = the sum of a[k]'s lanes, by halving: each step adds the two halves of
 * every vector and packs two vectors' halves into one (the same tree for every call) */
static inline vf lane_sums(const vf *a) {
#if defined(__AVX512F__)
    vf l1[8], l2[4], l3[2];
    for (int k = 0; k < 8; k++)
        l1[k] = __builtin_shufflevector(a[2 * k], a[2 * k + 1], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
                __builtin_shufflevector(a[2 * k], a[2 * k + 1], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    for (int k = 0; k < 4; k++)
        l2[k] = __builtin_shufflevector(l1[2 * k], l1[2 * k + 1], 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
                __builtin_shufflevector(l1[2 * k], l1[2 * k + 1], 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    for (int k = 0; k < 2; k++)
        l3[k] = __builtin_shufflevector(l2[2 * k], l2[2 * k + 1], 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) +
                __builtin_shufflevector(l2[2 * k], l2[2 * k + 1], 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
    return __builtin_shufflevector(l3[0], l3[1], EVENS) + __builtin_shufflevector(l3[0], l3[1], ODDS);
#else
    vf l1[4], l2[2];
    for (int k = 0; k < 4; k++)
        l1[k] = __builtin_shufflevector(a[2 * k], a[2 * k + 1], 0, 1, 2, 3, 8, 9, 10, 11) +
                __builtin_shufflevector(a[2 * k], a[2 * k + 1], 4, 5, 6, 7, 12, 13, 14, 15);
    for (int k = 0; k < 2; k++)
        l2[k] = __builtin_shufflevector(l1[2 * k], l1[2 * k + 1], 0, 1, 4, 5, 8, 9, 12, 13) +
                __builtin_shufflevector(l1[2 * k], l1[2 * k + 1], 2, 3, 6, 7, 10, 11, 14, 15);
    return __builtin_shufflevector(l2[0], l2[1], EVENS) + __builtin_shufflevector(l2[0], l2[1], ODDS);
#endif
}

/* P[xi][o][c] = sum over slots [0, S) of Gy[xi][o][s] V[xi][c][s]; Gy is zero past S */
static __attribute__((noinline)) void bw_products(const wgeom *g, const float *Gy, const float *V, int64_t S,
                                                  float *P) {
    const int64_t Sv = up(S, VW), Sp = g->Sp, O = g->O, C = g->C;
    for (int xi = 0; xi < XI; xi++) {
        const float *gx = Gy + xi * O * Sp, *vx = V + xi * C * Sp;
        float *px = P + xi * O * C;
        for (int64_t ob = 0; ob < O; ob += BO)
            for (int64_t cb = 0; cb < C; cb += BC) {
                const float *gr[BO], *vr[BC];
                for (int i = 0; i < BO; i++) gr[i] = gx + (ob + i < O ? ob + i : O - 1) * Sp;
                for (int j = 0; j < BC; j++) vr[j] = vx + (cb + j < C ? cb + j : C - 1) * Sp;
                vf acc[BO * BC];
#pragma GCC unroll 16
                for (int k = 0; k < BO * BC; k++) acc[k] = (vf){0};
                for (int64_t s = 0; s < Sv; s += VW) {
                    vf a[BO], b[BC];
#pragma GCC unroll 4
                    for (int i = 0; i < BO; i++) {
                        a[i] = *(const vf *)(gr[i] + s);
                        __asm__("" : "+v"(a[i])); /* kept in a register: GCC would load it in each FMA */
                    }
#pragma GCC unroll 4
                    for (int j = 0; j < BC; j++) {
                        b[j] = *(const vf *)(vr[j] + s);
                        __asm__("" : "+v"(b[j]));
                    }
#pragma GCC unroll 4
                    for (int i = 0; i < BO; i++)
#pragma GCC unroll 4
                        for (int j = 0; j < BC; j++) acc[i * BC + j] += a[i] * b[j];
                }
                const vf r = lane_sums(acc);
                for (int i = 0; i < BO && ob + i < O; i++)
                    for (int j = 0; j < BC && cb + j < C; j++) px[(ob + i) * C + cb + j] = r[i * BC + j];
            }
    }
}

/* false when a weight gradient came out NaN (an inf or a huge value went into the transforms;
 * the caller computes it again directly, as for the other parts) */
static bool wino_bw_run(const wgeom *g, const nb_tensor *x, const float *gyd, float *gw, int threads, char *scratch) {
    float *P = (float *)scratch;
    char *base = scratch + p_bytes(g);
    const size_t per = bw_thread_bytes(g);
    const int64_t tiles = g->TY * g->TX, plane = g->O * g->Ho * g->Wo;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        char *p = base + (size_t)omp_get_thread_num() * per;
        float *rb = (float *)p;
        float *hs = (float *)(p += al64(rb_floats(g) * 4));
        float *V = (float *)(p += al64(h_floats(g) * 4));
        float *Gy = (float *)(p += al64(v_floats(g) * 4));
        float *gs = (float *)(p += al64(gy_floats(g) * 4));
        float *rbg = (float *)(p += al64((size_t)(8 * gs_len(g)) * 4));
        memset(rb, 0, rb_floats(g) * sizeof(float)); /* the padding */
        memset(rbg, 0, (size_t)(g->Ho > 0 ? g->Ho : 1) * row_floats(g) * sizeof(float));
#pragma omp for schedule(dynamic)
        for (int64_t ch = 0; ch < g->chunks; ch++) {
            const int64_t n0 = ch * g->spc, nn = g->N - n0 < g->spc ? g->N - n0 : g->spc, S = nn * tiles;
            for (int64_t k = 0; k < nn; k++) {
                input_tiles(g, x, n0 + k, 0, g->TY, k * tiles, rb, hs, V);
                gy_tiles(g, gyd + (n0 + k) * plane, k * tiles, rbg, gs, Gy);
            }
            /* the lanes past the chunk's tiles add nothing: zeros in both operands (whatever the
             * scratch held there, even Inf or NaN, never meets the other's zeros) */
            for (int64_t i = 0; i < XI * g->O; i++)
                for (int64_t s = S; s < up(S, VW); s++) Gy[i * g->Sp + s] = 0.0f;
            for (int64_t i = 0; i < XI * g->C; i++)
                for (int64_t s = S; s < up(S, VW); s++) V[i * g->Sp + s] = 0.0f;
            bw_products(g, Gy, V, S, P + ch * XI * g->O * g->C);
        }
        /* m = the chunks' sums added in chunk order (into chunk 0's), each thread a range */
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const int64_t len = XI * g->O * g->C, k0 = len * t / nt, k1 = len * (t + 1) / nt;
        for (int64_t ch = 1; ch < g->chunks; ch++) {
            const float *q = P + ch * len;
            for (int64_t k = k0; k < k1; k++) P[k] += q[k];
        }
    }
    /* gw(o, c) = G^T m G */
    const int64_t OC = g->O * g->C;
    bool nan = false;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && OC >= 256) reduction(|| : nan)
    for (int64_t i = 0; i < OC; i++) {
        float m[XI];
        for (int xi = 0; xi < XI; xi++) m[xi] = P[xi * OC + i];
        double q[3][4];
        for (int s = 0; s < 4; s++) { /* G^T m, along r */
            q[0][s] = (double)m[s] + 0.5 * ((double)m[4 + s] + (double)m[8 + s]);
            q[1][s] = 0.5 * ((double)m[4 + s] - (double)m[8 + s]);
            q[2][s] = 0.5 * ((double)m[4 + s] + (double)m[8 + s]) + (double)m[12 + s];
        }
        float *d = gw + i * 9;
        for (int r = 0; r < 3; r++) { /* (G^T m) G, along s */
            d[r * 3 + 0] = (float)(q[r][0] + 0.5 * (q[r][1] + q[r][2]));
            d[r * 3 + 1] = (float)(0.5 * (q[r][1] - q[r][2]));
            d[r * 3 + 2] = (float)(0.5 * (q[r][1] + q[r][2]) + q[r][3]);
        }
        for (int k = 0; k < 9; k++) nan = nan || d[k] != d[k];
    }
    return !nan;
}
#endif

size_t nb__conv_wino_scratch(nb_conv_part part, const nb_tensor *a, const nb_tensor *w, nb_window2d win,
                             const nb_tensor *out, int threads) {
#ifdef NB_WINO
    wgeom g;
    if (part == NB_CONV_BW) return bgeom_of(&g, a, w, win) ? p_bytes(&g) + (size_t)threads * bw_thread_bytes(&g) : 0;
    if (!wgeom_of(&g, part, a, w, win, out)) return 0;
    return u_bytes(&g) + al64((size_t)g.O * sizeof(float)) + (size_t)threads * thread_bytes(&g);
#else
    (void)part, (void)a, (void)w, (void)win, (void)out, (void)threads;
    return 0;
#endif
}

bool nb__conv_wino(nb_conv_part part, const nb_tensor *a, const nb_tensor *w, const nb_tensor *bias, nb_window2d win,
                   nb_tensor *out, int threads, char *scratch) {
#ifdef NB_WINO
    wgeom g;
    if (part == NB_CONV_BW) {
        if (!bgeom_of(&g, a, w, win)) return true;
        if (g.N == 0 || g.Ho <= 0 || g.Wo <= 0) {
            memset(out->data, 0, (size_t)(g.O * g.C * 9) * sizeof(float));
            return true;
        }
        return wino_bw_run(&g, a, w->data, out->data, threads, scratch);
    }
    if (!wgeom_of(&g, part, a, w, win, out) || g.Ho <= 0 || g.Wo <= 0) return true;
    return wino_run(&g, a, w->data, part == NB_CONV_BX, bias, out->data, threads, scratch);
#else
    (void)part, (void)a, (void)w, (void)bias, (void)win, (void)out, (void)threads, (void)scratch;
    return true;
#endif
}
