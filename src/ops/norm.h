/* Normalisation's segment kernels (src/ops/norm_kernels.c), as the passes of src/ops/norm.c call
 * them. Each works on one segment of x: the layout and the accuracy scheme are in norm.c's
 * opening comment, the f32 arithmetic in norm_kernels.c's. */
#ifndef NABLA_OPS_NORM_H
#define NABLA_OPS_NORM_H

#include "../internal.h"

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

/* A segment's coefficients: mean and inv point at its group, w and b at its channel. */
typedef struct {
    const double *mean, *inv, *w, *b;
} coefs;

/* value i of an f32 (f32 true) or f64 array, as a double; and back */
static inline __attribute__((always_inline)) double ld(const void *p, bool f32, int64_t i) {
    return f32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}
static inline __attribute__((always_inline)) void st(void *p, bool f32, int64_t i, double v) {
    if (f32) ((float *)p)[i] = (float)v;
    else ((double *)p)[i] = v;
}

/* *s += sum(x - k), *q += sum((x - k)^2) over x[at, at + n) */
void nb__norm_moments(bool f32, int64_t at, int64_t n, const void *x, double k, double *s, double *q);
/* s[i] += x[at + i] - k[i], q[i] += (x[at + i] - k[i])^2 for i < n: a row of channels */
void nb__norm_add_moments(bool f32, int64_t at, int64_t n, const void *x, const double *k, double *s, double *q);
/* y = (x - mean) * (invstd * w) + b over segment s of kind k, then max(y, 0) (NaN kept) with the ReLU */
void nb__norm_apply(seg_kind k, bool f32, bool relu, segment s, const void *x, void *y, coefs c);
/* Per channel pg += sum g', px += sum g' x̂; over the segment *wg += sum w g', *wgx += sum w g' x̂
 * (wg NULL: not wanted). g' is g behind the ReLU; pg and px point at the segment's channel. */
void nb__norm_dots(seg_kind k, bool f32, bool relu, segment s, const void *g, const void *x, coefs c, double *pg,
                   double *px, double *wg, double *wgx);
/* gx = (invstd w) g' + be (x - mean) + de over segment s; be and de point at its group */
void nb__norm_grad_x(seg_kind k, bool f32, bool relu, segment s, const void *g, const void *x, void *gx, coefs c,
                     const double *be, const double *de);

#endif
