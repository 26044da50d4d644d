/* Normalisation's segment kernels (norm.h): batch, group and layer norm's arithmetic over one
 * segment of x, each way. The passes that call them, the layout and the reasons are in norm.c.
 * Two families: kernels in double for every dtype and kind (below), and f32 kernels for the
 * planes of f32 data ("f32 planes"); the five functions at the end pick one per call. */
#include "norm.h"

#define LANES 8 /* values at a time; a sum keeps LANES interleaved partial sums */

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
void nb__norm_moments(bool f32, int64_t at, int64_t n, const void *x, double k, double *s, double *q) {
    if (f32) f32_moments((const float *)x + at, n, (float)k, s, q);
    else run_sum_moments(x, false, at, n, k, s, q);
}
void nb__norm_add_moments(bool f32, int64_t at, int64_t n, const void *x, const double *k, double *s, double *q) {
    if (f32) run_add_moments(x, true, at, n, k, s, q);
    else run_add_moments(x, false, at, n, k, s, q);
}
void nb__norm_apply(seg_kind k, bool f32, bool relu, segment s, const void *x, void *y, coefs c) {
    if (k == SEG_PLANE && f32) f32_apply(relu, (const float *)x + s.at, (float *)y + s.at, s.n, f32_coefs(c));
    else if (k == SEG_PLANE) run_apply(SEG_PLANE, false, relu, s, x, y, c);
    else if (k == SEG_GROUP && f32) run_apply(SEG_GROUP, true, relu, s, x, y, c);
    else if (k == SEG_GROUP) run_apply(SEG_GROUP, false, relu, s, x, y, c);
    else if (f32) run_apply(SEG_ROW, true, relu, s, x, y, c);
    else run_apply(SEG_ROW, false, relu, s, x, y, c);
}
void nb__norm_dots(seg_kind k, bool f32, bool relu, segment s, const void *g, const void *x, coefs c, double *pg,
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
void nb__norm_grad_x(seg_kind k, bool f32, bool relu, segment s, const void *g, const void *x, void *gx, coefs c,
                     const double *be, const double *de) {
    if (k == SEG_PLANE && f32)
        f32_gx(relu, (const float *)g + s.at, (const float *)x + s.at, (float *)gx + s.at, s.n, f32_coefs(c), c.inv[0] * c.w[0], be[0], de[0]);
    else if (k == SEG_PLANE) run_gx(SEG_PLANE, false, relu, s, g, x, gx, c, be, de);
    else if (k == SEG_GROUP && f32) run_gx(SEG_GROUP, true, relu, s, g, x, gx, c, be, de);
    else if (k == SEG_GROUP) run_gx(SEG_GROUP, false, relu, s, g, x, gx, c, be, de);
    else if (f32) run_gx(SEG_ROW, true, relu, s, g, x, gx, c, be, de);
    else run_gx(SEG_ROW, false, relu, s, g, x, gx, c, be, de);
}
