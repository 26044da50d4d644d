/* Normalisation as fused primitives: batch norm (train and eval, optionally fused with a ReLU),
 * group norm and layer norm are one op each, over one layout and one pair of kernels each way.
 *
 * Layout. x is read as a contiguous (A, C, S) array: A samples, C channels, S positions. The
 * affine parameters w, b are per channel; the statistics are per group:
 *   batch norm (G = 0): group c is channel c over every sample and position (A*S values);
 *   group norm (G > 0): group (a, g) is the contiguous run of channels [g*C/G, (g+1)*C/G) of a;
 *   layer norm: group norm with G = 1 on (A = leading axes, C = normalised axes, S = 1).
 *
 * Forward, two steps: (1) the statistics, as sums of x - K in double, K being the group's
 * first value (so a mean large against the spread costs no accuracy, in f32 either), (2) y =
 * (x - mean) * invstd * w + b, with an optional ReLU. Batch norm makes them two sweeps over x;
 * group and layer norm one, a group at a time (see "Memory traffic"). The node keeps x, w, b
 * and the per-group mean and invstd (f64): nothing of x's size besides x itself and y.
 * Backward, two steps (two sweeps for batch norm, one a sample at a time for group and layer
 * norm): (1) per-channel sums of g and g*x̂ (gb and gw) and, for group and layer norm,
 * per-group sums of w*g and w*g*x̂, (2) gx = invstd * (w*g - mean(w*g) - x̂ * mean(w*g*x̂))
 * over each group. With the ReLU, g is first zeroed where y <= 0, inside both passes, y > 0 being
 * found again from x (the forward's expression on the same values), so y is not read. Scratch
 * (per-channel partial sums) is small and comes from the arena.
 *
 * For f32 inputs the sums over contiguous runs (planes, groups, rows of layer norm) and the
 * kernels of planes (S > 1: batch and group norm of (N, C, ...)) compute in f32, with every
 * correction in per-plane coefficients and sums moved to f64 in short blocks (see "f32 planes");
 * the rest computes in double. The f32 vector width is the target's (its bits may differ between
 * a -march=native build and a generic one, never between thread counts).
 *
 * Threads. Sums over the samples are taken per fixed chunk of samples (make_plan: set by the
 * shape alone) and the chunks are added in order; each run of values is summed in LANES lanes in
 * a fixed order. So every result has the same bits for any thread count.
 *
 * Double backward. The fused backward makes constants. When the engine records the backward
 * itself (create_graph: it runs backward rules with grad mode on) and an input of the rule
 * requires grad, the rule builds the same formula from ops instead, statistics recomputed from
 * x with mean/sub/rsqrt, so second derivatives come from those ops' rules. That keeps one kernel
 * pair and no adjoint op with a second-order formula of its own; a recorded backward is rare
 * (gradient penalties, Hessian-vector products) and the composite is exact. */
#include "../internal.h"

#include <omp.h>

/* ---- the layout ----------------------------------------------------------------------------- */
#define NORM_CHUNKS 64 /* sums over samples: at most this many chunks, fixed by the shape */
#define LANES 8        /* values at a time; a sum keeps LANES interleaved partial sums */

typedef struct {
    int64_t A, C, S;
    int64_t G;       /* groups per sample; 0: one group per channel across samples (batch norm) */
    int64_t cg;      /* channels per group (1 for batch norm) */
    int64_t ngroups; /* A*G, or C */
    int64_t count;   /* values per group */
    int64_t nchunks;
} norm_plan;

/* Chunks: at most NORM_CHUNKS, at most A, and about 16 or more positions per channel in each, so
 * that the partial sums (2 doubles per chunk and channel) stay below the data's size. */
static norm_plan make_plan(int64_t A, int64_t C, int64_t S, int64_t G) {
    int64_t chunks = A * S / 16;
    chunks = chunks > NORM_CHUNKS ? NORM_CHUNKS : chunks;
    chunks = chunks > A ? A : chunks < 1 && A > 0 ? 1 : chunks;
    return (norm_plan){A, C, S, G, G ? C / G : 1, G ? A * G : C, G ? C / G * S : A * S, chunks};
}
static int64_t chunk_start(const norm_plan *p, int64_t k) {
    const int64_t q = p->A / p->nchunks, r = p->A % p->nchunks;
    return q * k + (k < r ? k : r);
}
static bool parallel(const norm_plan *p) { return p->A * p->C * p->S >= NB_PAR_THRESHOLD && !omp_in_parallel(); }

/* The kernels walk segments, runs of contiguous values with one pattern of coefficients:
 *   PLANE (S > 1): the S positions of one channel of one sample: one channel, one group;
 *   GROUP (S = 1, group and layer norm): the channels of one group of one sample: a channel
 *     per value, one group;
 *   ROW (S = 1, batch norm): all channels of one sample: a channel and a group per value. */
typedef enum { SEG_PLANE, SEG_GROUP, SEG_ROW } seg_kind;
typedef struct {
    int64_t at, n;  /* values [at, at + n) of x */
    int64_t c, grp; /* channel and group of the first value */
} segment;

static seg_kind kind_of(const norm_plan *p) { return p->S > 1 ? SEG_PLANE : p->G ? SEG_GROUP : SEG_ROW; }
static int64_t segments_per_sample(const norm_plan *p) { return p->S > 1 ? p->C : p->G ? p->G : 1; }
static segment segment_at(const norm_plan *p, int64_t a, int64_t j) {
    if (p->S > 1) return (segment){(a * p->C + j) * p->S, p->S, j, p->G ? a * p->G + j / p->cg : j};
    if (p->G) return (segment){a * p->C + j * p->cg, p->cg, j * p->cg, a * p->G + j};
    return (segment){a * p->C, p->C, 0, 0};
}

/* ---- segment kernels: in double, specialised for dtype and kind by inlining ------------------ */
/* LANES values at a time as GCC/Clang vectors (the vectoriser leaves lane arrays of double sums
 * of float loads scalar); the tail one value at a time. */
typedef double vdouble __attribute__((vector_size(LANES * sizeof(double))));
typedef float vfloat __attribute__((vector_size(LANES * sizeof(float))));
typedef int64_t vmask __attribute__((vector_size(LANES * sizeof(int64_t))));
#define INLINE static inline __attribute__((always_inline))
/* Vector-typed values pass only between these always-inlined functions, never across a real
 * call, so GCC's note that an AVX-512-sized return changes the ABI (builds without
 * -march=native) does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"

INLINE double ld(const void *p, bool f32, int64_t i) { return f32 ? (double)((const float *)p)[i] : ((const double *)p)[i]; }
INLINE void st(void *p, bool f32, int64_t i, double v) {
    if (f32) ((float *)p)[i] = (float)v;
    else ((double *)p)[i] = v;
}
INLINE vdouble vld(const void *p, bool f32, int64_t i) {
    if (f32) {
        vfloat v;
        memcpy(&v, (const float *)p + i, sizeof v);
        return __builtin_convertvector(v, vdouble);
    }
    vdouble v;
    memcpy(&v, (const double *)p + i, sizeof v);
    return v;
}
INLINE void vst(void *p, bool f32, int64_t i, vdouble v) {
    if (f32) {
        const vfloat w = __builtin_convertvector(v, vfloat);
        memcpy((float *)p + i, &w, sizeof w);
    } else {
        memcpy((double *)p + i, &v, sizeof v);
    }
}
/* coefficient i of a segment (a points at the segment's first): a[i] where it varies, else a[0]
 * (given as `fixed`, loaded before the loop: stores through y may alias a for all the compiler knows) */
INLINE double coef(const double *a, bool varies, int64_t i) { return varies ? a[i] : a[0]; }
INLINE vdouble vcoef(const double *a, bool varies, int64_t i, vdouble fixed) { return varies ? vld(a, false, i) : fixed; }
INLINE vdouble bcast(const double *a) {
    const vdouble zero = {0};
    return zero + a[0];
}
/* A segment's coefficients: mean and inv point at its group, w and b at its channel. */
typedef struct {
    const double *mean, *inv, *w, *b;
} coefs;

/* the normalised value before the ReLU; the backward recomputes it to find where y > 0 (the same
 * expression on the same path, so the same bits), instead of reading y */
INLINE double normed(double x, double m, double iv, double w, double b) { return (x - m) * (iv * w) + b; }
INLINE vdouble vnormed(vdouble x, vdouble m, vdouble iv, vdouble w, vdouble b) { return (x - m) * (iv * w) + b; }
/* behind a fused ReLU the gradient passes where y > 0 and is 0 elsewhere (threshold_backward) */
INLINE double relu_grad(double g, double v) { return v > 0 ? g : 0.0; }
INLINE vdouble vrelu_grad(vdouble g, vdouble v) {
    const vdouble zero = {0};
    return (vdouble)((vmask)g & (v > zero));
}

/* *s += sum(x - k), *q += sum((x - k)^2) over n values */
INLINE void run_sum_moments(const void *x, bool f32, int64_t at, int64_t n, double k, double *s, double *q) {
    vdouble ls = {0}, lq = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        const vdouble d = vld(x, f32, at + i) - k;
        ls += d;
        lq += d * d;
    }
    for (int j = 0; i < n; i++, j++) {
        const double d = ld(x, f32, at + i) - k;
        ls[j] += d;
        lq[j] += d * d;
    }
    for (int j = 0; j < LANES; j++) *s += ls[j], *q += lq[j];
}
/* s[i] += x[i] - k[i], q[i] += (x[i] - k[i])^2: a row of channels */
INLINE void run_add_moments(const void *x, bool f32, int64_t at, int64_t n, const double *k, double *s, double *q) {
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        const vdouble d = vld(x, f32, at + i) - vld(k, false, i);
        vst(s, false, i, vld(s, false, i) + d);
        vst(q, false, i, vld(q, false, i) + d * d);
    }
    for (; i < n; i++) {
        const double d = ld(x, f32, at + i) - k[i];
        s[i] += d, q[i] += d * d;
    }
}

/* y = (x - mean) * (invstd * w) + b, then max(y, 0) (NaN kept) with the ReLU */
INLINE void run_apply(seg_kind K, bool f32, bool relu, segment s, const void *x, void *y, coefs k) {
    const bool cv = K != SEG_PLANE, gv = K == SEG_ROW; /* channels, groups vary along the segment */
    const vdouble zero = {0}, m0 = bcast(k.mean), i0 = bcast(k.inv), w0 = bcast(k.w), b0 = bcast(k.b);
    int64_t i = 0;
    for (; i + LANES <= s.n; i += LANES) {
        const vdouble v = vnormed(vld(x, f32, s.at + i), vcoef(k.mean, gv, i, m0), vcoef(k.inv, gv, i, i0),
                                  vcoef(k.w, cv, i, w0), vcoef(k.b, cv, i, b0));
        vst(y, f32, s.at + i, relu ? (vdouble)((vmask)v & ~(v <= zero)) : v);
    }
    for (; i < s.n; i++) {
        const double v = normed(ld(x, f32, s.at + i), coef(k.mean, gv, i), coef(k.inv, gv, i), coef(k.w, cv, i), coef(k.b, cv, i));
        st(y, f32, s.at + i, relu && v <= 0 ? 0.0 : v);
    }
}

/* Per channel pg += sum g', px += sum g' x̂; over the segment *wg += sum w g', *wgx += sum w g' x̂
 * (wg NULL: not wanted). pg and px point at the segment's channel. */
INLINE void run_dots(seg_kind K, bool f32, bool relu, segment s, const void *g, const void *x, coefs k, double *pg,
                     double *px, double *wg, double *wgx) {
    const bool cv = K != SEG_PLANE, gv = K == SEG_ROW;
    const vdouble m0 = bcast(k.mean), i0 = bcast(k.inv), w0 = bcast(k.w), b0 = bcast(k.b);
    vdouble lg = {0}, lx = {0};
    int64_t i = 0;
    for (; i + LANES <= s.n; i += LANES) {
        const vdouble xv = vld(x, f32, s.at + i), m = vcoef(k.mean, gv, i, m0), iv = vcoef(k.inv, gv, i, i0);
        const vdouble w = vcoef(k.w, cv, i, w0);
        vdouble gr = vld(g, f32, s.at + i);
        if (relu) gr = vrelu_grad(gr, vnormed(xv, m, iv, w, vcoef(k.b, cv, i, b0)));
        if (K == SEG_PLANE) { /* one channel: sums of g' and g' (x - mean), times inv after */
            lg += gr;
            lx += gr * (xv - m);
        } else { /* a channel per value: into pg, px; and the sums of w g', w g' x̂ */
            const vdouble gx = gr * ((xv - m) * iv);
            vst(pg, false, i, vld(pg, false, i) + gr);
            vst(px, false, i, vld(px, false, i) + gx);
            lg += w * gr;
            lx += w * gx;
        }
    }
    for (int j = 0; i < s.n; i++, j++) {
        const double xv = ld(x, f32, s.at + i), m = coef(k.mean, gv, i), iv = coef(k.inv, gv, i), w = coef(k.w, cv, i);
        double gr = ld(g, f32, s.at + i);
        if (relu) gr = relu_grad(gr, normed(xv, m, iv, w, coef(k.b, cv, i)));
        if (K == SEG_PLANE) {
            lg[j] += gr;
            lx[j] += gr * (xv - m);
        } else {
            const double gx = gr * ((xv - m) * iv);
            pg[i] += gr, px[i] += gx;
            lg[j] += w * gr;
            lx[j] += w * gx;
        }
    }
    double sg = 0, sx = 0;
    for (int j = 0; j < LANES; j++) sg += lg[j], sx += lx[j];
    if (K == SEG_PLANE) {
        sx *= k.inv[0];
        pg[0] += sg, px[0] += sx;
        sg *= k.w[0], sx *= k.w[0];
    }
    if (wg) *wg += sg, *wgx += sx;
}

/* gx = (invstd w) g' + be (x - mean) + de; be and de point at the segment's group */
INLINE void run_gx(seg_kind K, bool f32, bool relu, segment s, const void *g, const void *x, void *gx, coefs k,
                   const double *be, const double *de) {
    const bool cv = K != SEG_PLANE, gv = K == SEG_ROW;
    const vdouble m0 = bcast(k.mean), i0 = bcast(k.inv), w0 = bcast(k.w), b0 = bcast(k.b), be0 = bcast(be), de0 = bcast(de);
    int64_t i = 0;
    for (; i + LANES <= s.n; i += LANES) {
        const vdouble xv = vld(x, f32, s.at + i), m = vcoef(k.mean, gv, i, m0), iv = vcoef(k.inv, gv, i, i0);
        const vdouble w = vcoef(k.w, cv, i, w0);
        vdouble gr = vld(g, f32, s.at + i);
        if (relu) gr = vrelu_grad(gr, vnormed(xv, m, iv, w, vcoef(k.b, cv, i, b0)));
        vst(gx, f32, s.at + i, iv * w * gr + vcoef(be, gv, i, be0) * (xv - m) + vcoef(de, gv, i, de0));
    }
    for (; i < s.n; i++) {
        const double xv = ld(x, f32, s.at + i), m = coef(k.mean, gv, i), iv = coef(k.inv, gv, i), w = coef(k.w, cv, i);
        double gr = ld(g, f32, s.at + i);
        if (relu) gr = relu_grad(gr, normed(xv, m, iv, w, coef(k.b, cv, i)));
        st(gx, f32, s.at + i, iv * w * gr + coef(be, gv, i) * (xv - m) + coef(de, gv, i));
    }
}

/* ---- f32 planes: arithmetic in f32, sums in f64 ---------------------------------------------- */
/* The planes of f32 data (batch and group norm of (N, C, ...) inputs, the CNN case) are read
 * and written as floats: FLANES at a time, f32 arithmetic, no conversion per value. Accuracy is
 * kept by centring in f32 and moving every correction into the per-segment coefficients, which
 * are made in double:
 *   - centring: d = x - mf, mf the f32 rounding of the centre (exact when x is within a factor 2
 *     of mf, Sterbenz; else within half an f32 ulp of d); the difference mf - centre goes into the
 *     constant term of each formula, in double;
 *   - sums: FBLOCK vectors are added in f32 lanes (each lane at most FBLOCK values), then the
 *     lanes move into f64 accumulators; so no f32 sum grows long.
 * Every element of a segment goes through the same path (vector body or tail) in the forward
 * and in both backward passes, so the ReLU's y > 0 found again from x has the forward's bits. */
#if defined(__AVX512F__)
#define FLANES 16 /* one register of floats */
#elif defined(__AVX__)
#define FLANES 8
#else
#define FLANES 4
#endif
#define FBLOCK 8
typedef float vflt __attribute__((vector_size(FLANES * sizeof(float))));
typedef int32_t vfmask __attribute__((vector_size(FLANES * sizeof(int32_t))));
typedef double vdbl __attribute__((vector_size(FLANES * sizeof(double))));

INLINE vflt fload(const float *p) {
    vflt v;
    memcpy(&v, p, sizeof v);
    return v;
}
INLINE void fstore(float *p, vflt v) { memcpy(p, &v, sizeof v); }
INLINE vflt fsplat(float a) {
    const vflt zero = {0};
    return zero + a;
}
INLINE vdbl widen(vflt v) { return __builtin_convertvector(v, vdbl); }
INLINE double fold(vdbl v) {
    double s = 0;
    for (int j = 0; j < FLANES; j++) s += v[j];
    return s;
}
/* Tails. A plane of n >= FLANES values whose length is not a multiple of FLANES ends with one
 * more vector, the last FLANES values (overlapping the one before): the output kernels write
 * those values again (the same bits), the sums keep only the lanes not yet counted. So every
 * value of such a plane goes through the vector code, in the forward and in the backward alike;
 * planes shorter than FLANES go through the scalar code throughout. */
INLINE vfmask fresh_lanes(int64_t rem) { /* of the last vector, the rem lanes not yet counted */
    vfmask idx;
    for (int j = 0; j < FLANES; j++) idx[j] = j;
    return idx >= (int32_t)(FLANES - rem);
}
INLINE vflt fkeep(vflt v, vfmask keep) { return (vflt)((vfmask)v & keep); }
/* the value before the ReLU, d being x - mf: the one expression of forward and backward */
INLINE vflt fnormed(vflt d, vflt s, vflt b) { return d * s + b; }
INLINE float fnormed1(float d, float s, float b) { return d * s + b; }

/* *s += sum(x - k), *q += sum((x - k)^2) over x[0, n), k being an f32 value */
static void f32_moments(const float *x, int64_t n, float k, double *s, double *q) {
    const vflt kv = fsplat(k), zero = {0};
    vdbl S = {0}, Q = {0};
    int64_t i = 0;
    for (; i + FBLOCK * FLANES <= n; i += FBLOCK * FLANES) { /* two chains of FBLOCK/2 vectors */
        vflt s0 = zero, s1 = zero, q0 = zero, q1 = zero;
        for (int b = 0; b < FBLOCK; b += 2) {
            const vflt d0 = fload(x + i + b * FLANES) - kv, d1 = fload(x + i + (b + 1) * FLANES) - kv;
            s0 += d0, q0 += d0 * d0;
            s1 += d1, q1 += d1 * d1;
        }
        S += widen(s0 + s1), Q += widen(q0 + q1);
    }
    vflt s0 = zero, q0 = zero; /* fewer than FBLOCK vectors left */
    for (; i + FLANES <= n; i += FLANES) {
        const vflt d = fload(x + i) - kv;
        s0 += d, q0 += d * d;
    }
    if (i < n && n >= FLANES) {
        const vflt d = fkeep(fload(x + n - FLANES) - kv, fresh_lanes(n - i));
        s0 += d, q0 += d * d;
        i = n;
    }
    S += widen(s0), Q += widen(q0);
    double ts = fold(S), tq = fold(Q);
    for (; i < n; i++) {
        const double d = (double)x[i] - k;
        ts += d, tq += d * d;
    }
    *s += ts, *q += tq;
}

/* f32 coefficients of one plane: y = (x - mf) * scale + shift is (x - mean) * inv * w + b */
typedef struct {
    float mf, scale, shift;
    double off; /* mf - mean */
} fcoefs;
static fcoefs f32_coefs(coefs k) {
    const double scale = k.inv[0] * k.w[0];
    const float mf = (float)k.mean[0];
    const double off = (double)mf - k.mean[0];
    return (fcoefs){mf, (float)scale, (float)(k.b[0] + off * scale), off};
}

static void f32_apply(bool relu, const float *x, float *y, int64_t n, fcoefs c) {
    const vflt m = fsplat(c.mf), s = fsplat(c.scale), b = fsplat(c.shift), zero = {0};
    int64_t i = 0;
    for (; i + FLANES <= n; i += FLANES) {
        const vflt v = fnormed(fload(x + i) - m, s, b);
        fstore(y + i, relu ? (vflt)((vfmask)v & ~(v <= zero)) : v);
    }
    if (i < n && n >= FLANES) {
        const vflt v = fnormed(fload(x + n - FLANES) - m, s, b);
        fstore(y + n - FLANES, relu ? (vflt)((vfmask)v & ~(v <= zero)) : v);
        i = n;
    }
    for (; i < n; i++) {
        const float v = fnormed1(x[i] - c.mf, c.scale, c.shift);
        y[i] = relu && v <= 0 ? 0.0f : v;
    }
}

/* *sg = sum g', *sx = sum g' (x - mean), g' the gradient behind the ReLU */
static void f32_dots(bool relu, const float *g, const float *x, int64_t n, fcoefs c, double *sg, double *sx) {
    const vflt m = fsplat(c.mf), s = fsplat(c.scale), b = fsplat(c.shift), zero = {0};
    vdbl G = {0}, D = {0};
    int64_t i = 0;
    for (; i + FBLOCK * FLANES <= n; i += FBLOCK * FLANES) { /* two chains of FBLOCK/2 vectors */
        vflt g0 = zero, g1 = zero, d0 = zero, d1 = zero;
        for (int k = 0; k < FBLOCK; k += 2) {
            const vflt xa = fload(x + i + k * FLANES) - m, xb = fload(x + i + (k + 1) * FLANES) - m;
            vflt ga = fload(g + i + k * FLANES), gb = fload(g + i + (k + 1) * FLANES);
            if (relu) {
                ga = (vflt)((vfmask)ga & (fnormed(xa, s, b) > zero));
                gb = (vflt)((vfmask)gb & (fnormed(xb, s, b) > zero));
            }
            g0 += ga, d0 += ga * xa;
            g1 += gb, d1 += gb * xb;
        }
        G += widen(g0 + g1), D += widen(d0 + d1);
    }
    vflt g0 = zero, d0 = zero; /* fewer than FBLOCK vectors left */
    for (; i + FLANES <= n; i += FLANES) {
        const vflt xa = fload(x + i) - m;
        vflt ga = fload(g + i);
        if (relu) ga = (vflt)((vfmask)ga & (fnormed(xa, s, b) > zero));
        g0 += ga, d0 += ga * xa;
    }
    if (i < n && n >= FLANES) {
        const vfmask keep = fresh_lanes(n - i);
        const vflt xa = fload(x + n - FLANES) - m;
        vflt ga = fload(g + n - FLANES);
        if (relu) ga = (vflt)((vfmask)ga & (fnormed(xa, s, b) > zero));
        ga = fkeep(ga, keep);
        g0 += ga, d0 += ga * fkeep(xa, keep);
        i = n;
    }
    G += widen(g0), D += widen(d0);
    double tg = fold(G), td = fold(D);
    for (; i < n; i++) {
        const float d = x[i] - c.mf;
        const float gr = relu && !(fnormed1(d, c.scale, c.shift) > 0) ? 0.0f : g[i];
        tg += gr, td += (double)gr * d;
    }
    *sg = tg, *sx = td + c.off * tg;
}

/* gx = (inv w) g' + be (x - mean) + de */
static void f32_gx(bool relu, const float *g, const float *x, float *gx, int64_t n, fcoefs c, double a, double be,
                   double de) {
    const float af = (float)a, bef = (float)be, def = (float)(de + be * c.off);
    const vflt m = fsplat(c.mf), s = fsplat(c.scale), b = fsplat(c.shift), zero = {0};
    const vflt av = fsplat(af), bev = fsplat(bef), dev = fsplat(def);
    int64_t i = 0;
    for (; i + FLANES <= n; i += FLANES) {
        const vflt d = fload(x + i) - m;
        vflt gr = fload(g + i);
        if (relu) gr = (vflt)((vfmask)gr & (fnormed(d, s, b) > zero));
        fstore(gx + i, av * gr + bev * d + dev);
    }
    if (i < n && n >= FLANES) {
        const vflt d = fload(x + n - FLANES) - m;
        vflt gr = fload(g + n - FLANES);
        if (relu) gr = (vflt)((vfmask)gr & (fnormed(d, s, b) > zero));
        fstore(gx + n - FLANES, av * gr + bev * d + dev);
        i = n;
    }
    for (; i < n; i++) {
        const float d = x[i] - c.mf;
        const float gr = relu && !(fnormed1(d, c.scale, c.shift) > 0) ? 0.0f : g[i];
        gx[i] = af * gr + bef * d + def;
    }
}

/* the kernels specialised: one instance per dtype and kind (the ReLU test is loop-invariant) */
static void sum_moments(bool f32, int64_t at, int64_t n, const void *x, double k, double *s, double *q) {
    if (f32) f32_moments((const float *)x + at, n, (float)k, s, q);
    else run_sum_moments(x, false, at, n, k, s, q);
}
static void add_moments(bool f32, int64_t at, int64_t n, const void *x, const double *k, double *s, double *q) {
    if (f32) run_add_moments(x, true, at, n, k, s, q);
    else run_add_moments(x, false, at, n, k, s, q);
}
static void apply(seg_kind k, bool f32, bool relu, segment s, const void *x, void *y, coefs c) {
    if (k == SEG_PLANE && f32) f32_apply(relu, (const float *)x + s.at, (float *)y + s.at, s.n, f32_coefs(c));
    else if (k == SEG_PLANE) run_apply(SEG_PLANE, false, relu, s, x, y, c);
    else if (k == SEG_GROUP && f32) run_apply(SEG_GROUP, true, relu, s, x, y, c);
    else if (k == SEG_GROUP) run_apply(SEG_GROUP, false, relu, s, x, y, c);
    else if (f32) run_apply(SEG_ROW, true, relu, s, x, y, c);
    else run_apply(SEG_ROW, false, relu, s, x, y, c);
}
static void dots(seg_kind k, bool f32, bool relu, segment s, const void *g, const void *x, coefs c, double *pg,
                 double *px, double *wg, double *wgx) {
    if (k == SEG_PLANE && f32) { /* the same epilogue as run_dots' for a plane */
        double sg, sx;
        f32_dots(relu, (const float *)g + s.at, (const float *)x + s.at, s.n, f32_coefs(c), &sg, &sx);
        sx *= c.inv[0];
        pg[0] += sg, px[0] += sx;
        if (wg) *wg += sg * c.w[0], *wgx += sx * c.w[0];
    }
    else if (k == SEG_PLANE) run_dots(SEG_PLANE, false, relu, s, g, x, c, pg, px, wg, wgx);
    else if (k == SEG_GROUP && f32) run_dots(SEG_GROUP, true, relu, s, g, x, c, pg, px, wg, wgx);
    else if (k == SEG_GROUP) run_dots(SEG_GROUP, false, relu, s, g, x, c, pg, px, wg, wgx);
    else if (f32) run_dots(SEG_ROW, true, relu, s, g, x, c, pg, px, wg, wgx);
    else run_dots(SEG_ROW, false, relu, s, g, x, c, pg, px, wg, wgx);
}
static void grad_x(seg_kind k, bool f32, bool relu, segment s, const void *g, const void *x, void *gx, coefs c,
                   const double *be, const double *de) {
    if (k == SEG_PLANE && f32)
        f32_gx(relu, (const float *)g + s.at, (const float *)x + s.at, (float *)gx + s.at, s.n, f32_coefs(c), c.inv[0] * c.w[0], be[0], de[0]);
    else if (k == SEG_PLANE) run_gx(SEG_PLANE, false, relu, s, g, x, gx, c, be, de);
    else if (k == SEG_GROUP && f32) run_gx(SEG_GROUP, true, relu, s, g, x, gx, c, be, de);
    else if (k == SEG_GROUP) run_gx(SEG_GROUP, false, relu, s, g, x, gx, c, be, de);
    else if (f32) run_gx(SEG_ROW, true, relu, s, g, x, gx, c, be, de);
    else run_gx(SEG_ROW, false, relu, s, g, x, gx, c, be, de);
}
#undef INLINE

/* ---- the passes ----------------------------------------------------------------------------- */
/* Memory traffic. Batch norm's statistics span every sample, so each direction makes two sweeps
 * over x (the second reads it from memory again when x is larger than the cache). Group and
 * layer norm's statistics are per sample: each group (forward) or sample (backward) is finished
 * while it is in cache, one sweep each way. (Batch norm's second sweep run from the end of x, to
 * start on what is still in cache, was slower on Zen 5: 0.44-0.48 ms against 0.41 forward.) */
static double biased_var(double s, double q, int64_t n) {
    const double v = q / n - (s / n) * (s / n);
    return v < 0 ? 0 : v; /* rounding; NaN stays */
}

/* Batch norm's forward pass 1: mean and biased variance of every channel, as sums around its
 * first value per chunk of samples, the chunks added in order. part: (2*nchunks + 1)*C doubles. */
static void stats_pass(const norm_plan *p, const void *x, bool f32, double *mean, double *var, double *part) {
    const int64_t C = p->C, n = p->count;
    if (n == 0) {
        for (int64_t c = 0; c < C; c++) mean[c] = 0, var[c] = 0;
        return;
    }
    double *shift = part + 2 * p->nchunks * C;
    for (int64_t c = 0; c < C; c++) shift[c] = ld(x, f32, c * p->S);
#pragma omp parallel for if (parallel(p)) schedule(static)
    for (int64_t ch = 0; ch < p->nchunks; ch++) {
        double *s = part + 2 * ch * C, *q = s + C;
        for (int64_t c = 0; c < C; c++) s[c] = q[c] = 0;
        for (int64_t a = chunk_start(p, ch); a < chunk_start(p, ch + 1); a++)
            for (int64_t j = 0; j < segments_per_sample(p); j++) {
                const segment sg = segment_at(p, a, j);
                if (kind_of(p) == SEG_PLANE) sum_moments(f32, sg.at, sg.n, x, shift[sg.c], &s[sg.c], &q[sg.c]);
                else add_moments(f32, sg.at, sg.n, x, shift, s, q);
            }
    }
    for (int64_t c = 0; c < C; c++) {
        double s = 0, q = 0;
        for (int64_t ch = 0; ch < p->nchunks; ch++) s += part[2 * ch * C + c], q += part[2 * ch * C + C + c];
        mean[c] = shift[c] + s / n;
        var[c] = biased_var(s, q, n);
    }
}

/* Batch norm's forward pass 2: y = (x - mean) * invstd * w + b (+ ReLU). */
static void apply_pass(const norm_plan *p, const void *x, void *y, bool f32, bool relu, const double *mean,
                       const double *inv, const double *w, const double *b) {
    const seg_kind k = kind_of(p);
#pragma omp parallel for collapse(2) if (parallel(p)) schedule(static)
    for (int64_t a = 0; a < p->A; a++)
        for (int64_t j = 0; j < segments_per_sample(p); j++) {
            const segment s = segment_at(p, a, j);
            apply(k, f32, relu, s, x, y, (coefs){mean + s.grp, inv + s.grp, w + s.c, b + s.c});
        }
}

/* Group and layer norm's forward, one sweep: each group's mean and invstd (its statistics as
 * sums around its first value), then its y while it is in cache. */
static void group_forward(const norm_plan *p, const void *x, void *y, bool f32, double eps, double *mean, double *inv,
                          const double *w, const double *b) {
    const seg_kind k = kind_of(p);
    const int64_t n = p->count, segs = p->S > 1 ? p->cg : 1; /* segments per group */
#pragma omp parallel for if (parallel(p)) schedule(static)
    for (int64_t grp = 0; grp < p->ngroups; grp++) {
        const double k0 = n ? ld(x, f32, grp * n) : 0;
        double s = 0, q = 0;
        if (n) sum_moments(f32, grp * n, n, x, k0, &s, &q);
        mean[grp] = n ? k0 + s / n : 0;
        inv[grp] = 1.0 / sqrt((n ? biased_var(s, q, n) : 0) + eps);
        for (int64_t j = 0; j < segs; j++) {
            const segment sg = segment_at(p, grp / p->G, grp % p->G * segs + j);
            apply(k, f32, false, sg, x, y, (coefs){mean + sg.grp, inv + sg.grp, w + sg.c, b + sg.c});
        }
    }
}

/* gx's coefficients of groups [lo, hi) from their sums, in place: sum_wgx becomes be = -invstd^2
 * mean(w g' x̂), sum_wg de = -invstd mean(w g') (both 0 for constant statistics) */
static void gx_coefs(const norm_plan *p, bool fixed, const double *inv, double *sum_wg, double *sum_wgx, int64_t lo,
                     int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
        const double be = fixed ? 0 : -inv[i] * inv[i] * sum_wgx[i] / p->count, de = fixed ? 0 : -inv[i] * sum_wg[i] / p->count;
        sum_wgx[i] = be, sum_wg[i] = de;
    }
}

/* Backward pass 1: gb[c] = sum g', gw[c] = sum g' x̂ over channel c; for group and layer norm
 * also sum_wg[grp] = sum w g', sum_wgx[grp] = sum w g' x̂ over each group (for batch norm these
 * are w gb and w gw). part: 2*nchunks*C doubles of scratch. Group and layer norm given gx: also
 * each sample's gx, right after its sums (pass 2 without a second sweep; sum_wg and sum_wgx then
 * hold gx's coefficients). */
static void sums_pass(const norm_plan *p, const void *g, const void *x, void *gx, bool f32, bool relu, const double *mean,
                      const double *inv, const double *w, const double *b, double *gb, double *gw, double *sum_wg,
                      double *sum_wgx, double *part) {
    const int64_t C = p->C;
    const seg_kind k = kind_of(p);
#pragma omp parallel for if (parallel(p)) schedule(static)
    for (int64_t ch = 0; ch < p->nchunks; ch++) {
        double *pg = part + 2 * ch * C, *px = pg + C;
        for (int64_t c = 0; c < C; c++) pg[c] = px[c] = 0;
        for (int64_t a = chunk_start(p, ch); a < chunk_start(p, ch + 1); a++) {
            for (int64_t r = 0; r < p->G; r++) sum_wg[a * p->G + r] = sum_wgx[a * p->G + r] = 0; /* a sample's groups are in one chunk */
            for (int64_t j = 0; j < segments_per_sample(p); j++) {
                const segment s = segment_at(p, a, j);
                dots(k, f32, relu, s, g, x, (coefs){mean + s.grp, inv + s.grp, w + s.c, b + s.c}, pg + s.c, px + s.c,
                     p->G ? sum_wg + s.grp : NULL, p->G ? sum_wgx + s.grp : NULL);
            }
            if (p->G && gx) {
                gx_coefs(p, false, inv, sum_wg, sum_wgx, a * p->G, (a + 1) * p->G);
                for (int64_t j = 0; j < segments_per_sample(p); j++) {
                    const segment s = segment_at(p, a, j);
                    grad_x(k, f32, relu, s, g, x, gx, (coefs){mean + s.grp, inv + s.grp, w + s.c, b + s.c}, sum_wgx + s.grp,
                           sum_wg + s.grp);
                }
            }
        }
    }
    for (int64_t c = 0; c < C; c++) {
        double sg = 0, sx = 0;
        for (int64_t ch = 0; ch < p->nchunks; ch++) sg += part[2 * ch * C + c], sx += part[2 * ch * C + C + c];
        gb[c] = sg, gw[c] = sx;
        if (!p->G) sum_wg[c] = w[c] * sg, sum_wgx[c] = w[c] * sx;
    }
}

/* Batch norm's backward pass 2: gx = invstd w g' + be (x - mean) + de, be and
 * de per channel (gx_coefs). */
static void gx_pass(const norm_plan *p, const void *g, const void *x, void *gx, bool f32, bool relu, const double *mean,
                    const double *inv, const double *w, const double *b, const double *be, const double *de) {
    const seg_kind k = kind_of(p);
#pragma omp parallel for collapse(2) if (parallel(p)) schedule(static)
    for (int64_t a = 0; a < p->A; a++)
        for (int64_t j = 0; j < segments_per_sample(p); j++) {
            const segment s = segment_at(p, a, j);
            grad_x(k, f32, relu, s, g, x, gx, (coefs){mean + s.grp, inv + s.grp, w + s.c, b + s.c}, be + s.grp, de + s.grp);
        }
}

/* ---- the ops -------------------------------------------------------------------------------- */
/* node: in = {x, w?, b?}; iattr: A, C, S, G, has w, has b, constant statistics, ReLU;
 * fattr[0] eps; saved: mean and invstd per group (f64) */
enum { AT_A, AT_C, AT_S, AT_G, AT_W, AT_B, AT_CONST, AT_RELU };
#define NODE_W(n) ((n)->iattr[AT_W] ? (n)->in[1] : NULL)
#define NODE_B(n) ((n)->iattr[AT_B] ? (n)->in[1 + (n)->iattr[AT_W]] : NULL)

/* n doubles of step memory */
static double *scratch(nb_ctx *ctx, int64_t n) { return nb_ctx_alloc(ctx, (size_t)(n > 0 ? n : 1) * sizeof(double)); }

/* the values of a per-channel tensor (any layout) as doubles; `none` where t is NULL */
static double *channel_values(nb_ctx *ctx, const nb_tensor *t, int64_t C, double none) {
    double *v = scratch(ctx, C);
    if (v)
        for (int64_t c = 0; c < C; c++) v[c] = t ? nb_get(t, c) : none;
    return v;
}

/* a step tensor of the given shape holding v (C values, flat order) */
static nb_tensor *from_values(nb_ctx *ctx, nb_dtype dt, const nb_tensor *like, const double *v) {
    nb_tensor *t = nb__new(ctx, dt, like->ndim, like->shape);
    if (t)
        for (int64_t i = 0; i < t->numel; i++) st(t->data, dt == NB_F32, i, v[i]);
    return t;
}

/* The backward of the fused kernels: constants (nothing is recorded). */
static nb_status norm_bw_fused(nb_ctx *ctx, const nb_node *n, const norm_plan *p, nb_tensor *g, nb_tensor **gin) {
    nb_tensor *x = n->in[0], *w = NODE_W(n), *b = NODE_B(n);
    const bool f32 = x->dtype == NB_F32, relu = n->iattr[AT_RELU], fixed = n->iattr[AT_CONST];
    const bool want_w = w && w->requires_grad, want_b = b && b->requires_grad;
    const double *mean = n->saved[0]->data, *inv = n->saved[1]->data;
    nb_tensor *gc = nb_contiguous(ctx, g);
    double *wv = channel_values(ctx, w, p->C, 1.0), *bv = channel_values(ctx, b, p->C, 0.0);
    double *gb = scratch(ctx, p->C), *gw = scratch(ctx, p->C), *sum_wg = scratch(ctx, p->ngroups), *sum_wgx = scratch(ctx, p->ngroups);
    nb_tensor *gx = x->requires_grad ? nb__new(ctx, x->dtype, x->ndim, x->shape) : NULL;
    if (!gc || !wv || !bv || !gb || !gw || !sum_wg || !sum_wgx || (x->requires_grad && !gx)) return ctx->status;
    if (want_w || want_b || (x->requires_grad && !fixed)) {
        double *part = scratch(ctx, 2 * p->nchunks * p->C);
        if (!part) return ctx->status;
        sums_pass(p, gc->data, x->data, p->G && gx ? gx->data : NULL, f32, relu, mean, inv, wv, bv, gb, gw, sum_wg, sum_wgx, part);
    }
    if (gx && !p->G) { /* batch norm: gx in a second pass, once every channel's sums are complete */
        gx_coefs(p, fixed, inv, sum_wg, sum_wgx, 0, p->ngroups);
        gx_pass(p, gc->data, x->data, gx->data, f32, relu, mean, inv, wv, bv, sum_wgx, sum_wg);
    }
    if (gx) gin[0] = gx;
    if (want_w) gin[1] = from_values(ctx, x->dtype, w, gw);
    if (want_b) gin[1 + (w != NULL)] = from_values(ctx, x->dtype, b, gb);
    return ctx->status;
}

/* The same backward made of ops, so that it can be differentiated again. */
static nb_status norm_bw_ops(nb_ctx *ctx, const nb_node *n, const norm_plan *p, nb_tensor *g, nb_tensor **gin) {
    nb_tensor *x = n->in[0], *w = NODE_W(n), *b = NODE_B(n);
    const int64_t acs[3] = {p->A, p->C, p->S}, chan[3] = {1, p->C, 1};
    const int over_channels[2] = {0, 2};
    nb_tensor *g3 = nb_reshape(ctx, g, 3, acs), *x3 = nb_reshape(ctx, x, 3, acs);
    if (n->iattr[AT_RELU]) { /* the ReLU's mask is piecewise constant */
        nb_tensor *zero = nb_scalar(ctx, x->dtype, 0.0);
        g3 = nb_where(ctx, nb_gt(ctx, nb_reshape(ctx, n->out, 3, acs), zero), g3, zero);
    }
    nb_tensor *w3 = w ? nb_reshape(ctx, w, 3, chan) : NULL, *xhat, *gx;
    if (n->iattr[AT_CONST]) { /* statistics are constants (batch norm in eval) */
        nb_tensor *mean = nb_reshape(ctx, nb_cast(ctx, n->saved[0], x->dtype), 3, chan);
        nb_tensor *inv = nb_reshape(ctx, nb_cast(ctx, n->saved[1], x->dtype), 3, chan);
        xhat = nb_mul(ctx, nb_sub(ctx, x3, mean), inv);
        gx = nb_mul(ctx, g3, w3 ? nb_mul(ctx, w3, inv) : inv);
    } else { /* the statistics again, now as functions of x */
        const int64_t view[3] = {p->A, p->G ? p->G : p->C, p->G ? p->cg * p->S : p->S};
        const int nax = p->G ? 1 : 2, *axes = p->G ? &over_channels[1] : over_channels;
        nb_tensor *xs = nb_reshape(ctx, x3, 3, view);
        nb_tensor *d = nb_sub(ctx, xs, nb_mean(ctx, xs, nax, axes, true));
        nb_tensor *inv = nb_rsqrt(ctx, nb_add_scalar(ctx, nb_mean(ctx, nb_mul(ctx, d, d), nax, axes, true), n->fattr[0]));
        nb_tensor *xh = nb_mul(ctx, d, inv);
        nb_tensor *gy = nb_reshape(ctx, w3 ? nb_mul(ctx, g3, w3) : g3, 3, view);
        nb_tensor *centred = nb_sub(ctx, gy, nb_mean(ctx, gy, nax, axes, true));
        nb_tensor *along = nb_mul(ctx, xh, nb_mean(ctx, nb_mul(ctx, gy, xh), nax, axes, true));
        gx = nb_reshape(ctx, nb_mul(ctx, inv, nb_sub(ctx, centred, along)), 3, acs);
        xhat = nb_reshape(ctx, xh, 3, acs);
    }
    if (x->requires_grad) gin[0] = nb_reshape(ctx, gx, x->ndim, x->shape);
    if (w && w->requires_grad)
        gin[1] = nb_reshape(ctx, nb_sum(ctx, nb_mul(ctx, g3, xhat), 2, over_channels, false), w->ndim, w->shape);
    if (b && b->requires_grad) gin[1 + (w != NULL)] = nb_reshape(ctx, nb_sum(ctx, g3, 2, over_channels, false), b->ndim, b->shape);
    return ctx->status;
}

static nb_status norm_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    const norm_plan p = make_plan(n->iattr[AT_A], n->iattr[AT_C], n->iattr[AT_S], n->iattr[AT_G]);
    const nb_tensor *w = NODE_W(n);
    const bool recorded = nb_ctx_grad_enabled(ctx) && (g->requires_grad || n->in[0]->requires_grad || (w && w->requires_grad));
    if (n->in[0]->numel == 0) { /* nothing was normalised: every gradient is 0 (sums of nothing) */
        nb_tensor *b = NODE_B(n);
        if (n->in[0]->requires_grad) gin[0] = nb_zeros_like(ctx, n->in[0]);
        if (w && w->requires_grad) gin[1] = nb_zeros_like(ctx, (nb_tensor *)w);
        if (b && b->requires_grad) gin[1 + (w != NULL)] = nb_zeros_like(ctx, b);
        return ctx->status;
    }
    return recorded ? norm_bw_ops(ctx, n, &p, g, gin) : norm_bw_fused(ctx, n, &p, g, gin);
}

static const nb_op OP_BATCH_NORM = {"batch_norm", norm_bw, NB_DIFFERENTIABLE},
                   OP_BATCH_NORM_RELU = {"batch_norm_relu", norm_bw, NB_DIFFERENTIABLE},
                   OP_LAYER_NORM = {"layer_norm", norm_bw, NB_DIFFERENTIABLE},
                   OP_GROUP_NORM = {"group_norm", norm_bw, NB_DIFFERENTIABLE};

bool nb__output_unread(const nb_node *n) {
    return n->op == &OP_BATCH_NORM || n->op == &OP_LAYER_NORM || n->op == &OP_GROUP_NORM;
}

/* Statistics given (running, eval) or computed; running statistics updated when given. */
typedef struct {
    const nb_tensor *mean, *var; /* constant statistics (C each), or NULL: the batch's */
    nb_tensor *run_mean, *run_var; /* running statistics to update, or NULL */
    double momentum;
} norm_stats;

/* Batch norm's mean and invstd per channel, given (eval) or from x; the running statistics
 * updated when given. */
static bool batch_stats(nb_ctx *ctx, const norm_plan *p, const nb_tensor *x, const norm_stats *st, double eps,
                        double *mean, double *inv) {
    double *var = scratch(ctx, p->C);
    if (!var) return false;
    if (st->mean) {
        for (int64_t c = 0; c < p->C; c++) mean[c] = nb_get(st->mean, c), var[c] = nb_get(st->var, c);
    } else {
        double *part = scratch(ctx, (2 * p->nchunks + 1) * p->C);
        if (!part) return false;
        stats_pass(p, x->data, x->dtype == NB_F32, mean, var, part);
    }
    for (int64_t c = 0; c < p->C; c++) inv[c] = 1.0 / sqrt(var[c] + eps);
    if (st->run_mean) { /* state, outside the graph; PyTorch's unbiased running variance */
        const double m = st->momentum, unbias = (double)p->count / (double)(p->count - 1);
        for (int64_t c = 0; c < p->C; c++) {
            nb_set(st->run_mean, c, (1 - m) * nb_get(st->run_mean, c) + m * mean[c]);
            nb_set(st->run_var, c, (1 - m) * nb_get(st->run_var, c) + m * var[c] * unbias);
        }
    }
    return true;
}

/* Checked arguments in; y = norm(x) * w + b (+ ReLU) out, and its node. st: batch norm's
 * statistics (NULL for group and layer norm). */
static nb_tensor *norm_forward(nb_ctx *ctx, const nb_op *op, nb_tensor *x, norm_plan p, nb_tensor *w, nb_tensor *b,
                               const norm_stats *st, double eps, bool relu) {
    nb_tensor *xc = nb_contiguous(ctx, x);
    if (!xc) return NULL;
    const bool f32 = x->dtype == NB_F32;
    nb_tensor *y = xc == x ? nb__out_like(ctx, x, true) : nb__new(ctx, x->dtype, x->ndim, x->shape);
    nb_tensor *mean_t = nb__new(ctx, NB_F64, 1, &p.ngroups), *inv_t = nb__new(ctx, NB_F64, 1, &p.ngroups);
    double *wv = channel_values(ctx, w, p.C, 1.0), *bv = channel_values(ctx, b, p.C, 0.0);
    if (!y || !mean_t || !inv_t || !wv || !bv) return NULL;
    double *mean = mean_t->data, *inv = inv_t->data;
    if (p.G) {
        group_forward(&p, xc->data, y->data, f32, eps, mean, inv, wv, bv);
    } else {
        if (!batch_stats(ctx, &p, xc, st, eps, mean, inv)) return NULL;
        apply_pass(&p, xc->data, y->data, f32, relu, mean, inv, wv, bv);
    }
    nb_tensor *in[3] = {xc};
    int n_in = 1;
    if (w) in[n_in++] = w;
    if (b) in[n_in++] = b;
    nb_node *n;
    y = nb__finish(ctx, op, y, n_in, in, &n);
    if (n) {
        const int64_t attrs[] = {[AT_A] = p.A, [AT_C] = p.C,          [AT_S] = p.S,
                                 [AT_G] = p.G, [AT_W] = w != NULL,    [AT_B] = b != NULL,
                                 [AT_CONST] = st && st->mean != NULL, [AT_RELU] = relu};
        memcpy(n->iattr, attrs, sizeof attrs);
        n->fattr[0] = eps;
        n->saved[0] = mean_t;
        n->saved[1] = inv_t;
    }
    return y;
}

/* ---- argument checks and the public functions ---------------------------------------------- */
/* a per-channel vector t must be float, 1-D of length C; NULL passes */
static bool channel_vec(nb_ctx *ctx, const char *op, const char *what, const nb_tensor *t, const nb_tensor *x,
                        int64_t C, bool same_dtype) {
    if (!t) return true;
    char a[128], b[128];
    if (t->ndim != 1 || t->shape[0] != C)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: %s %s must be (%lld) for input %s", op, what, nb_shape_str(t, a, sizeof a),
                        (long long)C, nb_shape_str(x, b, sizeof b)),
               false;
    if (t->dtype == NB_I64 || (same_dtype && t->dtype != x->dtype))
        return nb__fail(ctx, NB_ERR_DTYPE, "%s: %s is %s, input is %s", op, what, nb_dtype_name(t->dtype), nb_dtype_name(x->dtype)),
               false;
    return true;
}

static bool float_x(nb_ctx *ctx, const char *op, const nb_tensor *x, int min_ndim) {
    char b[128];
    if (x->dtype == NB_I64) return nb__fail(ctx, NB_ERR_DTYPE, "%s: expected f32 or f64 input, got i64", op), false;
    if (x->ndim < min_ndim)
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: input %s needs at least %d dims", op, nb_shape_str(x, b, sizeof b), min_ndim),
               false;
    return true;
}

/* (N, C, ...) -> A = N, C, S = the rest */
static norm_plan channel_plan(const nb_tensor *x, int64_t G) {
    int64_t S = 1;
    for (int d = 2; d < x->ndim; d++) S *= x->shape[d];
    return make_plan(x->shape[0], x->shape[1], S, G);
}

static nb_tensor *batch_norm(nb_ctx *ctx, const nb_op *op, nb_tensor *x, nb_tensor *weight, nb_tensor *bias,
                             nb_tensor *running_mean, nb_tensor *running_var, double momentum, double eps, bool relu) {
    const char *name = op->name;
    if (nb__null(ctx, name, 1, x) || !float_x(ctx, name, x, 2)) return NULL;
    const int64_t C = x->shape[1];
    if (!channel_vec(ctx, name, "weight", weight, x, C, true) || !channel_vec(ctx, name, "bias", bias, x, C, true) ||
        !channel_vec(ctx, name, "running_mean", running_mean, x, C, false) ||
        !channel_vec(ctx, name, "running_var", running_var, x, C, false))
        return NULL;
    if ((running_mean == NULL) != (running_var == NULL))
        return nb__fail(ctx, NB_ERR_NULL, "%s: give both running_mean and running_var, or neither", name);
    if (!(eps >= 0) || !isfinite(eps) || !(momentum >= 0 && momentum <= 1))
        return nb__fail(ctx, NB_ERR_VALUE, "%s: momentum %g must be in [0, 1] and eps %g >= 0", name, momentum, eps);
    const norm_plan p = channel_plan(x, 0);
    const bool train = nb_ctx_is_train(ctx);
    if ((train || !running_mean) && p.count < 2) {
        char b[128];
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: input %s has %lld value per channel; training needs more than 1", name,
                        nb_shape_str(x, b, sizeof b), (long long)p.count);
    }
    norm_stats st = {NULL, NULL, NULL, NULL, momentum};
    if (running_mean && train) st.run_mean = running_mean, st.run_var = running_var;
    if (running_mean && !train) st.mean = running_mean, st.var = running_var;
    return norm_forward(ctx, op, x, p, weight, bias, &st, eps, relu);
}

nb_tensor *nb_batch_norm(nb_ctx *ctx, nb_tensor *x, nb_tensor *weight, nb_tensor *bias, nb_tensor *running_mean,
                         nb_tensor *running_var, double momentum, double eps) {
    return batch_norm(ctx, &OP_BATCH_NORM, x, weight, bias, running_mean, running_var, momentum, eps, false);
}

nb_tensor *nb_batch_norm_relu(nb_ctx *ctx, nb_tensor *x, nb_tensor *weight, nb_tensor *bias, nb_tensor *running_mean,
                              nb_tensor *running_var, double momentum, double eps) {
    return batch_norm(ctx, &OP_BATCH_NORM_RELU, x, weight, bias, running_mean, running_var, momentum, eps, true);
}

nb_tensor *nb_layer_norm(nb_ctx *ctx, nb_tensor *x, int ndims, nb_tensor *weight, nb_tensor *bias, double eps) {
    if (nb__null(ctx, "layer_norm", 1, x) || !float_x(ctx, "layer_norm", x, 1)) return NULL;
    if (!(eps >= 0) || !isfinite(eps)) return nb__fail(ctx, NB_ERR_VALUE, "layer_norm: eps %g must be finite and >= 0", eps);
    char a[128], b[128], c[128];
    if (ndims < 1 || ndims > x->ndim)
        return nb__fail(ctx, NB_ERR_AXIS, "layer_norm: cannot normalise the last %d axes of %s", ndims, nb_shape_str(x, a, sizeof a));
    const int64_t *nshape = x->shape + (x->ndim - ndims);
    nb_tensor *ps[2] = {weight, bias};
    for (int i = 0; i < 2; i++)
        if (ps[i] && (ps[i]->ndim != ndims || memcmp(ps[i]->shape, nshape, (size_t)ndims * sizeof *nshape) != 0 ||
                      ps[i]->dtype != x->dtype))
            return nb__fail(ctx, NB_ERR_SHAPE, "layer_norm: %s %s %s must be %s %s for input %s", i ? "bias" : "weight",
                            nb_dtype_name(ps[i]->dtype), nb_shape_str(ps[i], a, sizeof a), nb_dtype_name(x->dtype),
                            nb__dims_str(ndims, nshape, b, sizeof b), nb_shape_str(x, c, sizeof c));
    const int64_t K = nb__numel(ndims, nshape), A = nb__numel(x->ndim - ndims, x->shape);
    return norm_forward(ctx, &OP_LAYER_NORM, x, make_plan(A, K, 1, 1), weight, bias, NULL, eps, false);
}

nb_tensor *nb_group_norm(nb_ctx *ctx, nb_tensor *x, int groups, nb_tensor *weight, nb_tensor *bias, double eps) {
    if (nb__null(ctx, "group_norm", 1, x) || !float_x(ctx, "group_norm", x, 2)) return NULL;
    if (!(eps >= 0) || !isfinite(eps)) return nb__fail(ctx, NB_ERR_VALUE, "group_norm: eps %g must be finite and >= 0", eps);
    const int64_t C = x->shape[1];
    if (groups < 1 || C % groups != 0) {
        char b[128];
        return nb__fail(ctx, NB_ERR_VALUE, "group_norm: groups %d must divide the %lld channels of %s", groups, (long long)C,
                        nb_shape_str(x, b, sizeof b));
    }
    if (!channel_vec(ctx, "group_norm", "weight", weight, x, C, true) || !channel_vec(ctx, "group_norm", "bias", bias, x, C, true))
        return NULL;
    return norm_forward(ctx, &OP_GROUP_NORM, x, channel_plan(x, groups), weight, bias, NULL, eps, false);
}
