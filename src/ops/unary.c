/* Unary element-wise ops and activations. One section per op: its kernel (one expression for
 * f32 and f64), its backward rule made of ops (so gradients of gradients work), its table
 * entry and its public function. Semantics follow PyTorch 1.13, NaN propagation included
 * (relu(NaN) = NaN). How to add one: docs/ops.md. */
#include "../internal.h"

/* ---- the front end every unary op shares -------------------------------------------------- */
nb_tensor *nb__unary(nb_ctx *ctx, const nb_unary_def *d, nb_tensor *x, double p0, double p1) {
    if (nb__null(ctx, d->op.name, 1, x)) return NULL;
    if (x->dtype == NB_I64)
        return nb__fail(ctx, NB_ERR_DTYPE, "%s: expected an f32 or f64 input, got i64", d->op.name);
    nb_tensor *out = nb__out_like(ctx, x, true);
    if (!out) return NULL;
    nb__unary_map(d, out, x, p0, p1);
    if (!d->op.backward) return out; /* piecewise constant: a constant, zero gradient */
    nb_node *n;
    out = nb__finish(ctx, &d->op, out, 1, &x, &n);
    if (n) n->fattr[0] = p0, n->fattr[1] = p1;
    return out;
}

#define X(n) ((n)->in[0])
#define BACKWARD(name) static nb_status name##_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin)

/* A parameter an op needs finite (slopes, scales, bounds), refused with the op's name. */
static bool finite_param(nb_ctx *ctx, const char *op, const char *what, double v) {
    if (isfinite(v)) return true;
    nb__fail(ctx, NB_ERR_VALUE, "%s: %s = %g must be finite", op, what, v);
    return false;
}

/* A scalar operand: infinities are values (x + -inf is a mask, as in torch), NaN is refused. */
static bool scalar_param(nb_ctx *ctx, const char *op, const char *what, double v) {
    if (!isnan(v)) return true;
    nb__fail(ctx, NB_ERR_VALUE, "%s: %s is NaN", op, what);
    return false;
}

/* constants used by backward rules: 1 where x > 0 / where lo < x < hi (piecewise constant) */
NB_UNARY_KERNEL(gtz, v > 0 ? (T)1 : (T)0)
static const nb_unary_def GTZ = {{"gt_zero", NULL, NB_NOT_DIFFERENTIABLE}, gtz_f32, gtz_f64};
NB_UNARY_KERNEL(inside, v > p0 && v < p1 ? (T)1 : (T)0)
static const nb_unary_def INSIDE = {{"inside", NULL, NB_NOT_DIFFERENTIABLE}, inside_f32, inside_f64};
NB_UNARY_KERNEL(in_closed, v >= p0 && v <= p1 ? (T)1 : (T)0)
static const nb_unary_def IN_CLOSED = {{"in_range", NULL, NB_NOT_DIFFERENTIABLE}, in_closed_f32, in_closed_f64};
static nb_tensor *mask_gtz(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &GTZ, x, 0, 0); }
nb_tensor *nb__mask_gtz(nb_ctx *ctx, nb_tensor *x) { return mask_gtz(ctx, x); }
static nb_tensor *mask_inside(nb_ctx *ctx, nb_tensor *x, double lo, double hi) {
    return nb__unary(ctx, &INSIDE, x, lo, hi);
}

/* ---- engine kernels: fill (no op) -------------------------------------------------------- */
NB_UNARY_KERNEL(fill, ((void)v, p0))
static const nb_unary_def FILL = {{"fill", NULL, NB_NOT_DIFFERENTIABLE}, fill_f32, fill_f64};
void nb__fill_kernel(nb_tensor *t, double v) { nb__unary_map(&FILL, t, t, v, 0); }

/* ---- affine: scale*x + shift, and the scalar forms built on it --------------------------- */
NB_UNARY_KERNEL(affine, p0 * v + p1)
BACKWARD(affine) {
    gin[0] = nb_mul_scalar(ctx, g, n->fattr[0]);
    return NB_OK;
}
static const nb_unary_def AFFINE = {{"affine", affine_bw, NB_DIFFERENTIABLE}, affine_f32, affine_f64};
void nb__affine_kernel(nb_tensor *out, const nb_tensor *x, double scale, double shift) {
    nb__unary_map(&AFFINE, out, x, scale, shift);
}
nb_tensor *nb_affine(nb_ctx *ctx, nb_tensor *x, double scale, double shift) {
    if (!scalar_param(ctx, "affine", "scale", scale) || !scalar_param(ctx, "affine", "shift", shift)) return NULL;
    return nb__unary(ctx, &AFFINE, x, scale, shift);
}
nb_tensor *nb_add_scalar(nb_ctx *ctx, nb_tensor *x, double s) {
    if (!scalar_param(ctx, "add_scalar", "s", s)) return NULL;
    return nb__unary(ctx, &AFFINE, x, 1.0, s);
}
nb_tensor *nb_mul_scalar(nb_ctx *ctx, nb_tensor *x, double s) {
    if (!scalar_param(ctx, "mul_scalar", "s", s)) return NULL;
    return nb__unary(ctx, &AFFINE, x, s, 0.0);
}

/* ---- pow_scalar: x^p ------------------------------------------------------------------- */
NB_UNARY_KERNEL(pows, p0 == 2 ? v * v : NB_M2(pow, v, p0))
BACKWARD(pows) {
    const double p = n->fattr[0];
    if (p == 0.0) gin[0] = nb_zeros_like(ctx, g);
    else if (p == 1.0) gin[0] = g;
    else gin[0] = nb_mul(ctx, g, nb_mul_scalar(ctx, nb_pow_scalar(ctx, X(n), p - 1.0), p));
    return NB_OK;
}
static const nb_unary_def POWS = {{"pow_scalar", pows_bw, NB_DIFFERENTIABLE}, pows_f32, pows_f64};
nb_tensor *nb_pow_scalar(nb_ctx *ctx, nb_tensor *x, double p) {
    if (isnan(p)) return nb__fail(ctx, NB_ERR_VALUE, "pow_scalar: the exponent is NaN");
    return nb__unary(ctx, &POWS, x, p, 0);
}

/* ---- neg, exp, log, sqrt, abs, sign ----------------------------------------------------- */
NB_UNARY_KERNEL(neg, -v)
BACKWARD(neg) {
    (void)n;
    gin[0] = nb_neg(ctx, g);
    return NB_OK;
}
static const nb_unary_def NEG = {{"neg", neg_bw, NB_DIFFERENTIABLE}, neg_f32, neg_f64};
nb_tensor *nb_neg(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &NEG, x, 0, 0); }

NB_UNARY_KERNEL(exp, NB_M(exp, v))
BACKWARD(exp) {
    gin[0] = nb_mul(ctx, g, n->out);
    return NB_OK;
}
static const nb_unary_def EXP = {{"exp", exp_bw, NB_DIFFERENTIABLE}, exp_f32, exp_f64};
nb_tensor *nb_exp(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &EXP, x, 0, 0); }

NB_UNARY_KERNEL(log, NB_M(log, v))
BACKWARD(log) {
    gin[0] = nb_div(ctx, g, X(n));
    return NB_OK;
}
static const nb_unary_def LOG = {{"log", log_bw, NB_DIFFERENTIABLE}, log_f32, log_f64};
nb_tensor *nb_log(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &LOG, x, 0, 0); }

NB_UNARY_KERNEL(sqrt, NB_M(sqrt, v))
BACKWARD(sqrt) {
    gin[0] = nb_div(ctx, g, nb_mul_scalar(ctx, n->out, 2.0));
    return NB_OK;
}
static const nb_unary_def SQRT = {{"sqrt", sqrt_bw, NB_DIFFERENTIABLE}, sqrt_f32, sqrt_f64};
nb_tensor *nb_sqrt(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &SQRT, x, 0, 0); }

NB_UNARY_KERNEL(sign, v > 0 ? (T)1 : (v < 0 ? (T)-1 : v)) /* sign(NaN) = NaN, sign(-0) = -0 */
static const nb_unary_def SIGN = {{"sign", NULL, NB_NOT_DIFFERENTIABLE}, sign_f32, sign_f64};
nb_tensor *nb_sign(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &SIGN, x, 0, 0); }

NB_UNARY_KERNEL(abs, NB_M(fabs, v))
BACKWARD(abs) {
    gin[0] = nb_mul(ctx, g, nb_sign(ctx, X(n)));
    return NB_OK;
}
static const nb_unary_def ABS = {{"abs", abs_bw, NB_DIFFERENTIABLE}, abs_f32, abs_f64};
nb_tensor *nb_abs(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &ABS, x, 0, 0); }

/* ---- rounding (piecewise constant: zero gradient, as PyTorch) --------------------------- */
NB_UNARY_KERNEL(floor, NB_M(floor, v))
static const nb_unary_def FLOOR = {{"floor", NULL, NB_NOT_DIFFERENTIABLE}, floor_f32, floor_f64};
nb_tensor *nb_floor(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &FLOOR, x, 0, 0); }
NB_UNARY_KERNEL(ceil, NB_M(ceil, v))
static const nb_unary_def CEIL = {{"ceil", NULL, NB_NOT_DIFFERENTIABLE}, ceil_f32, ceil_f64};
nb_tensor *nb_ceil(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &CEIL, x, 0, 0); }
NB_UNARY_KERNEL(round, NB_M(nearbyint, v)) /* half to even, as torch.round */
static const nb_unary_def ROUND = {{"round", NULL, NB_NOT_DIFFERENTIABLE}, round_f32, round_f64};
nb_tensor *nb_round(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &ROUND, x, 0, 0); }

/* ---- powers and roots ---------------------------------------------------------------------- */
NB_UNARY_KERNEL(square, v * v)
BACKWARD(square) {
    gin[0] = nb_mul(ctx, g, nb_mul_scalar(ctx, X(n), 2.0));
    return NB_OK;
}
static const nb_unary_def SQUARE = {{"square", square_bw, NB_DIFFERENTIABLE}, square_f32, square_f64};
nb_tensor *nb_square(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &SQUARE, x, 0, 0); }

NB_UNARY_KERNEL(reciprocal, (T)1 / v)
BACKWARD(reciprocal) { /* -1/x^2 = -out^2 */
    gin[0] = nb_neg(ctx, nb_mul(ctx, g, nb_square(ctx, n->out)));
    return NB_OK;
}
static const nb_unary_def RECIPROCAL = {{"reciprocal", reciprocal_bw, NB_DIFFERENTIABLE}, reciprocal_f32,
                                        reciprocal_f64};
nb_tensor *nb_reciprocal(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &RECIPROCAL, x, 0, 0); }

NB_UNARY_KERNEL(rsqrt, (T)1 / NB_M(sqrt, v))
BACKWARD(rsqrt) { /* -x^(-3/2)/2 = -out^3/2 */
    gin[0] = nb_mul(ctx, g, nb_mul_scalar(ctx, nb_pow_scalar(ctx, n->out, 3.0), -0.5));
    return NB_OK;
}
static const nb_unary_def RSQRT = {{"rsqrt", rsqrt_bw, NB_DIFFERENTIABLE}, rsqrt_f32, rsqrt_f64};
nb_tensor *nb_rsqrt(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &RSQRT, x, 0, 0); }

/* ---- exponentials and logarithms ------------------------------------------------------ */
NB_UNARY_KERNEL(expm1, NB_M(expm1, v))
BACKWARD(expm1) {
    gin[0] = nb_mul(ctx, g, nb_add_scalar(ctx, n->out, 1.0));
    return NB_OK;
}
static const nb_unary_def EXPM1 = {{"expm1", expm1_bw, NB_DIFFERENTIABLE}, expm1_f32, expm1_f64};
nb_tensor *nb_expm1(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &EXPM1, x, 0, 0); }

NB_UNARY_KERNEL(log1p, NB_M(log1p, v))
BACKWARD(log1p) {
    gin[0] = nb_div(ctx, g, nb_add_scalar(ctx, X(n), 1.0));
    return NB_OK;
}
static const nb_unary_def LOG1P = {{"log1p", log1p_bw, NB_DIFFERENTIABLE}, log1p_f32, log1p_f64};
nb_tensor *nb_log1p(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &LOG1P, x, 0, 0); }

NB_UNARY_KERNEL(log2, NB_M(log2, v))
BACKWARD(log2) {
    gin[0] = nb_div(ctx, g, nb_mul_scalar(ctx, X(n), 0.69314718055994530942));
    return NB_OK;
}
static const nb_unary_def LOG2 = {{"log2", log2_bw, NB_DIFFERENTIABLE}, log2_f32, log2_f64};
nb_tensor *nb_log2(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &LOG2, x, 0, 0); }

NB_UNARY_KERNEL(log10, NB_M(log10, v))
BACKWARD(log10) {
    gin[0] = nb_div(ctx, g, nb_mul_scalar(ctx, X(n), 2.30258509299404568402));
    return NB_OK;
}
static const nb_unary_def LOG10 = {{"log10", log10_bw, NB_DIFFERENTIABLE}, log10_f32, log10_f64};
nb_tensor *nb_log10(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &LOG10, x, 0, 0); }

/* ---- error functions ---------------------------------------------------------------------- */
/* d/dx erf = 2/sqrt(pi) exp(-x^2) */
static nb_tensor *erf_slope(nb_ctx *ctx, nb_tensor *x, double sign) {
    return nb_mul_scalar(ctx, nb_exp(ctx, nb_neg(ctx, nb_square(ctx, x))), sign * 1.1283791670955126);
}
NB_UNARY_KERNEL(erf, NB_M(erf, v))
BACKWARD(erf) {
    gin[0] = nb_mul(ctx, g, erf_slope(ctx, X(n), 1.0));
    return NB_OK;
}
static const nb_unary_def ERF = {{"erf", erf_bw, NB_DIFFERENTIABLE}, erf_f32, erf_f64};
nb_tensor *nb_erf(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &ERF, x, 0, 0); }

NB_UNARY_KERNEL(erfc, NB_M(erfc, v))
BACKWARD(erfc) {
    gin[0] = nb_mul(ctx, g, erf_slope(ctx, X(n), -1.0));
    return NB_OK;
}
static const nb_unary_def ERFC = {{"erfc", erfc_bw, NB_DIFFERENTIABLE}, erfc_f32, erfc_f64};
nb_tensor *nb_erfc(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &ERFC, x, 0, 0); }

/* ---- trigonometric and hyperbolic ----------------------------------------------------- */
NB_UNARY_KERNEL(sin, NB_M(sin, v))
BACKWARD(sin) {
    gin[0] = nb_mul(ctx, g, nb_cos(ctx, X(n)));
    return NB_OK;
}
static const nb_unary_def SIN = {{"sin", sin_bw, NB_DIFFERENTIABLE}, sin_f32, sin_f64};
nb_tensor *nb_sin(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &SIN, x, 0, 0); }

NB_UNARY_KERNEL(cos, NB_M(cos, v))
BACKWARD(cos) {
    gin[0] = nb_neg(ctx, nb_mul(ctx, g, nb_sin(ctx, X(n))));
    return NB_OK;
}
static const nb_unary_def COS = {{"cos", cos_bw, NB_DIFFERENTIABLE}, cos_f32, cos_f64};
nb_tensor *nb_cos(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &COS, x, 0, 0); }

NB_UNARY_KERNEL(tan, NB_M(tan, v))
BACKWARD(tan) { /* 1 + tan^2 */
    gin[0] = nb_mul(ctx, g, nb_add_scalar(ctx, nb_square(ctx, n->out), 1.0));
    return NB_OK;
}
static const nb_unary_def TAN = {{"tan", tan_bw, NB_DIFFERENTIABLE}, tan_f32, tan_f64};
nb_tensor *nb_tan(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &TAN, x, 0, 0); }

/* d asin = 1/sqrt(1-x^2), d acos = -1/sqrt(1-x^2) */
static nb_tensor *inv_sqrt_one_minus_sq(nb_ctx *ctx, nb_tensor *x) {
    return nb_rsqrt(ctx, nb_affine(ctx, nb_square(ctx, x), -1.0, 1.0));
}
NB_UNARY_KERNEL(asin, NB_M(asin, v))
BACKWARD(asin) {
    gin[0] = nb_mul(ctx, g, inv_sqrt_one_minus_sq(ctx, X(n)));
    return NB_OK;
}
static const nb_unary_def ASIN = {{"asin", asin_bw, NB_DIFFERENTIABLE}, asin_f32, asin_f64};
nb_tensor *nb_asin(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &ASIN, x, 0, 0); }

NB_UNARY_KERNEL(acos, NB_M(acos, v))
BACKWARD(acos) {
    gin[0] = nb_neg(ctx, nb_mul(ctx, g, inv_sqrt_one_minus_sq(ctx, X(n))));
    return NB_OK;
}
static const nb_unary_def ACOS = {{"acos", acos_bw, NB_DIFFERENTIABLE}, acos_f32, acos_f64};
nb_tensor *nb_acos(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &ACOS, x, 0, 0); }

NB_UNARY_KERNEL(atan, NB_M(atan, v))
BACKWARD(atan) {
    gin[0] = nb_div(ctx, g, nb_add_scalar(ctx, nb_square(ctx, X(n)), 1.0));
    return NB_OK;
}
static const nb_unary_def ATAN = {{"atan", atan_bw, NB_DIFFERENTIABLE}, atan_f32, atan_f64};
nb_tensor *nb_atan(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &ATAN, x, 0, 0); }

NB_UNARY_KERNEL(sinh, NB_M(sinh, v))
BACKWARD(sinh) {
    gin[0] = nb_mul(ctx, g, nb_cosh(ctx, X(n)));
    return NB_OK;
}
static const nb_unary_def SINH = {{"sinh", sinh_bw, NB_DIFFERENTIABLE}, sinh_f32, sinh_f64};
nb_tensor *nb_sinh(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &SINH, x, 0, 0); }

NB_UNARY_KERNEL(cosh, NB_M(cosh, v))
BACKWARD(cosh) {
    gin[0] = nb_mul(ctx, g, nb_sinh(ctx, X(n)));
    return NB_OK;
}
static const nb_unary_def COSH = {{"cosh", cosh_bw, NB_DIFFERENTIABLE}, cosh_f32, cosh_f64};
nb_tensor *nb_cosh(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &COSH, x, 0, 0); }

/* ---- sigmoid and tanh: backward is one fused op each, (g, y) -> g f'(y) (src/ops/
 * elementwise.c), since the three-op composition dominated chains of small ops ------------ */
NB_UNARY_KERNEL(sigmoid, NB_M(nb__sigmoid, v))
BACKWARD(sigmoid) {
    gin[0] = nb__sigmoid_backward(ctx, g, n->out);
    return NB_OK;
}
static const nb_unary_def SIGMOID = {{"sigmoid", sigmoid_bw, NB_DIFFERENTIABLE}, sigmoid_f32, sigmoid_f64};
nb_tensor *nb_sigmoid(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &SIGMOID, x, 0, 0); }

NB_UNARY_KERNEL(tanh, NB_M(tanh, v))
BACKWARD(tanh) {
    gin[0] = nb__tanh_backward(ctx, g, n->out);
    return NB_OK;
}
static const nb_unary_def TANH = {{"tanh", tanh_bw, NB_DIFFERENTIABLE}, tanh_f32, tanh_f64};
nb_tensor *nb_tanh(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &TANH, x, 0, 0); }

/* ---- rectifiers ------------------------------------------------------------------------------ */
NB_UNARY_KERNEL(relu, NB_M(nb__relu, v)) /* NaN stays NaN */
BACKWARD(relu) {
    gin[0] = nb_mul(ctx, g, mask_gtz(ctx, X(n)));
    return NB_OK;
}
static const nb_unary_def RELU = {{"relu", relu_bw, NB_DIFFERENTIABLE}, relu_f32, relu_f64};
nb_tensor *nb_relu(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &RELU, x, 0, 0); }

NB_UNARY_KERNEL(leaky, v > 0 ? v : v * p0)
BACKWARD(leaky) {
    const double s = n->fattr[0];
    gin[0] = nb_mul(ctx, g, nb_affine(ctx, mask_gtz(ctx, X(n)), 1.0 - s, s));
    return NB_OK;
}
static const nb_unary_def LEAKY = {{"leaky_relu", leaky_bw, NB_DIFFERENTIABLE}, leaky_f32, leaky_f64};
nb_tensor *nb_leaky_relu(nb_ctx *ctx, nb_tensor *x, double slope) {
    if (!finite_param(ctx, "leaky_relu", "slope", slope)) return NULL;
    return nb__unary(ctx, &LEAKY, x, slope, 0);
}

/* clamp and hardtanh: min(max(x, lo), hi); NaN stays NaN; gradient 1 on [lo, hi] (clamp,
 * as torch.clamp) or on (lo, hi) (hardtanh, as torch.nn.functional.hardtanh) */
NB_UNARY_KERNEL(clamp, v < p0 ? p0 : (v > p1 ? p1 : v))
BACKWARD(clamp) {
    gin[0] = nb_mul(ctx, g, nb__unary(ctx, &IN_CLOSED, X(n), n->fattr[0], n->fattr[1]));
    return NB_OK;
}
static const nb_unary_def CLAMP = {{"clamp", clamp_bw, NB_DIFFERENTIABLE}, clamp_f32, clamp_f64};
nb_tensor *nb_clamp(nb_ctx *ctx, nb_tensor *x, double lo, double hi) {
    if (isnan(lo) || isnan(hi) || lo > hi) return nb__fail(ctx, NB_ERR_VALUE, "clamp: invalid range [%g, %g]", lo, hi);
    return nb__unary(ctx, &CLAMP, x, lo, hi);
}
BACKWARD(hardtanh) {
    gin[0] = nb_mul(ctx, g, mask_inside(ctx, X(n), n->fattr[0], n->fattr[1]));
    return NB_OK;
}
static const nb_unary_def HARDTANH = {{"hardtanh", hardtanh_bw, NB_DIFFERENTIABLE}, clamp_f32, clamp_f64};
nb_tensor *nb_hardtanh(nb_ctx *ctx, nb_tensor *x, double min_val, double max_val) {
    if (!finite_param(ctx, "hardtanh", "min_val", min_val) || !finite_param(ctx, "hardtanh", "max_val", max_val))
        return NULL;
    if (min_val > max_val)
        return nb__fail(ctx, NB_ERR_VALUE, "hardtanh: min_val %g is above max_val %g", min_val, max_val);
    return nb__unary(ctx, &HARDTANH, x, min_val, max_val);
}

/* ---- exponential units ------------------------------------------------------------------ */
NB_UNARY_KERNEL(elu, v > 0 ? v : p0 * NB_M(expm1, v))
/* exp(min(x, 0)): the exponential units' slope below 0, computed from x (out + alpha loses it to
 * rounding for x << 0: 44% off at x = -17 in f32, 0 below), finite above 0 where it is not used
 * (so a double backward through the unused side multiplies zeros by finite numbers) */
static nb_tensor *exp_nonpos(nb_ctx *ctx, nb_tensor *x) { return nb_exp(ctx, nb_clamp(ctx, x, -INFINITY, 0.0)); }

BACKWARD(elu) { /* 1 for x > 0, alpha exp(x) below */
    gin[0] = nb_where(ctx, mask_gtz(ctx, X(n)), g, nb_mul(ctx, g, nb_mul_scalar(ctx, exp_nonpos(ctx, X(n)), n->fattr[0])));
    return NB_OK;
}
static const nb_unary_def ELU = {{"elu", elu_bw, NB_DIFFERENTIABLE}, elu_f32, elu_f64};
nb_tensor *nb_elu(nb_ctx *ctx, nb_tensor *x, double alpha) {
    if (!finite_param(ctx, "elu", "alpha", alpha)) return NULL;
    return nb__unary(ctx, &ELU, x, alpha, 0);
}

/* selu = scale * elu(x, alpha) with PyTorch's constants */
#define SELU_ALPHA 1.6732632423543772848170429916717
#define SELU_SCALE 1.0507009873554804934193349852946
NB_UNARY_KERNEL(selu, (T)SELU_SCALE * (v > 0 ? v : (T)SELU_ALPHA * NB_M(expm1, v)))
BACKWARD(selu) { /* scale for x > 0, scale alpha exp(x) below */
    gin[0] = nb_mul(ctx, g, nb_where(ctx, mask_gtz(ctx, X(n)), nb_full(ctx, g->dtype, 0, NULL, SELU_SCALE),
                                     nb_mul_scalar(ctx, exp_nonpos(ctx, X(n)), SELU_SCALE * SELU_ALPHA)));
    return NB_OK;
}
static const nb_unary_def SELU = {{"selu", selu_bw, NB_DIFFERENTIABLE}, selu_f32, selu_f64};
nb_tensor *nb_selu(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &SELU, x, 0, 0); }

/* celu(x) = max(0, x) + min(0, alpha (exp(x/alpha) - 1)) */
NB_UNARY_KERNEL(celu, v > 0 ? v : p0 * NB_M(expm1, v / p0))
BACKWARD(celu) { /* 1 for x > 0, exp(x/alpha) below: from x when alpha > 0, else out/alpha + 1 (no cancellation there) */
    const double a = n->fattr[0];
    nb_tensor *slope = a > 0 ? exp_nonpos(ctx, nb_mul_scalar(ctx, X(n), 1.0 / a)) : nb_affine(ctx, n->out, 1.0 / a, 1.0);
    gin[0] = nb_where(ctx, mask_gtz(ctx, X(n)), g, nb_mul(ctx, g, slope));
    return NB_OK;
}
static const nb_unary_def CELU = {{"celu", celu_bw, NB_DIFFERENTIABLE}, celu_f32, celu_f64};
nb_tensor *nb_celu(nb_ctx *ctx, nb_tensor *x, double alpha) {
    if (!finite_param(ctx, "celu", "alpha", alpha)) return NULL;
    if (alpha == 0) return nb__fail(ctx, NB_ERR_VALUE, "celu: alpha must not be 0");
    return nb__unary(ctx, &CELU, x, alpha, 0);
}

/* ---- smooth gates ---------------------------------------------------------------------------- */
/* gelu, exact: x Phi(x); d = Phi(x) + x phi(x) */
NB_UNARY_KERNEL(gelu, NB_M(nb__gelu, v))
BACKWARD(gelu) {
    nb_tensor *x = X(n);
    nb_tensor *Phi = nb_affine(ctx, nb_erf(ctx, nb_mul_scalar(ctx, x, 0.70710678118654752440)), 0.5, 0.5);
    nb_tensor *phi = nb_mul_scalar(ctx, nb_exp(ctx, nb_mul_scalar(ctx, nb_square(ctx, x), -0.5)), 0.39894228040143267794);
    gin[0] = nb_mul(ctx, g, nb_add(ctx, Phi, nb_mul(ctx, x, phi)));
    return NB_OK;
}
static const nb_unary_def GELU = {{"gelu", gelu_bw, NB_DIFFERENTIABLE}, gelu_f32, gelu_f64};
nb_tensor *nb_gelu(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &GELU, x, 0, 0); }

/* gelu, tanh approximation (PyTorch's approximate="tanh"): x/2 (1 + tanh(u)),
 * u = sqrt(2/pi) (x + 0.044715 x^3); d = (1 + t)/2 + x/2 (1 - t^2) u', u' = sqrt(2/pi)(1 + 3*0.044715 x^2) */
#define GELU_K 0.79788456080286535588
NB_UNARY_KERNEL(gelu_tanh, (T)0.5 * v * ((T)1 + NB_M(tanh, (T)GELU_K * (v + (T)0.044715 * v * v * v))))
BACKWARD(gelu_tanh) {
    nb_tensor *x = X(n), *x2 = nb_square(ctx, x);
    nb_tensor *t = nb_tanh(ctx, nb_mul_scalar(ctx, nb_add(ctx, x, nb_mul_scalar(ctx, nb_mul(ctx, x2, x), 0.044715)), GELU_K));
    nb_tensor *du = nb_affine(ctx, x2, GELU_K * 3 * 0.044715, GELU_K);
    nb_tensor *d = nb_add(ctx, nb_affine(ctx, t, 0.5, 0.5),
                          nb_mul(ctx, nb_mul_scalar(ctx, x, 0.5), nb_mul(ctx, nb_affine(ctx, nb_square(ctx, t), -1, 1), du)));
    gin[0] = nb_mul(ctx, g, d);
    return NB_OK;
}
static const nb_unary_def GELU_TANH = {{"gelu_tanh", gelu_tanh_bw, NB_DIFFERENTIABLE}, gelu_tanh_f32, gelu_tanh_f64};
nb_tensor *nb_gelu_tanh(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &GELU_TANH, x, 0, 0); }

/* softplus(x; beta, threshold) = log(1 + exp(beta x))/beta, and exactly x where beta x >
 * threshold (PyTorch's rule); d = sigmoid(beta x) below the threshold, 1 above */
NB_UNARY_KERNEL(softplus, v * p0 > p1 ? v : NB_M(log1p, NB_M(exp, v * p0)) / p0)
BACKWARD(softplus) {
    const double beta = n->fattr[0], threshold = n->fattr[1];
    nb_tensor *bx = nb_mul_scalar(ctx, X(n), beta);
    nb_tensor *below = nb__unary(ctx, &IN_CLOSED, bx, -INFINITY, threshold);
    gin[0] = nb_mul(ctx, g, nb_where(ctx, below, nb_sigmoid(ctx, bx), nb_ones_like(ctx, bx)));
    return NB_OK;
}
static const nb_unary_def SOFTPLUS = {{"softplus", softplus_bw, NB_DIFFERENTIABLE}, softplus_f32, softplus_f64};
nb_tensor *nb_softplus_ex(nb_ctx *ctx, nb_tensor *x, double beta, double threshold) {
    if (!finite_param(ctx, "softplus", "beta", beta) || isnan(threshold))
        return nb__fail(ctx, NB_ERR_VALUE, "softplus: beta %g must be finite and threshold %g a number", beta, threshold);
    if (beta == 0) return nb__fail(ctx, NB_ERR_VALUE, "softplus: beta must not be 0");
    return nb__unary(ctx, &SOFTPLUS, x, beta, threshold);
}
nb_tensor *nb_softplus(nb_ctx *ctx, nb_tensor *x) { return nb_softplus_ex(ctx, x, 1.0, 20.0); }

/* logsigmoid(x) = -softplus(-x) = min(x, 0) - log1p(exp(-|x|)); d = sigmoid(-x) */
NB_UNARY_KERNEL(logsigmoid, (v < 0 ? v : (T)0) - NB_M(log1p, NB_M(exp, -NB_M(fabs, v))))
BACKWARD(logsigmoid) {
    gin[0] = nb_mul(ctx, g, nb_sigmoid(ctx, nb_neg(ctx, X(n))));
    return NB_OK;
}
static const nb_unary_def LOGSIGMOID = {{"logsigmoid", logsigmoid_bw, NB_DIFFERENTIABLE}, logsigmoid_f32,
                                        logsigmoid_f64};
nb_tensor *nb_logsigmoid(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &LOGSIGMOID, x, 0, 0); }

/* silu(x) = x sigmoid(x); d = s (1 + x (1 - s)) */
NB_UNARY_KERNEL(silu, v / ((T)1 + NB_M(exp, -v)))
BACKWARD(silu) {
    nb_tensor *x = X(n), *s = nb_sigmoid(ctx, x);
    gin[0] = nb_mul(ctx, g, nb_mul(ctx, s, nb_add_scalar(ctx, nb_mul(ctx, x, nb_affine(ctx, s, -1, 1)), 1.0)));
    return NB_OK;
}
static const nb_unary_def SILU = {{"silu", silu_bw, NB_DIFFERENTIABLE}, silu_f32, silu_f64};
nb_tensor *nb_silu(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &SILU, x, 0, 0); }

/* mish(x) = x tanh(softplus(x)); d = t + x sigmoid(x) (1 - t^2), t = tanh(softplus(x)) */
NB_UNARY_KERNEL(mish, v * NB_M(tanh, v > 20 ? v : NB_M(log1p, NB_M(exp, v))))
BACKWARD(mish) {
    nb_tensor *x = X(n), *t = nb_tanh(ctx, nb_softplus(ctx, x));
    nb_tensor *d = nb_add(ctx, t, nb_mul(ctx, nb_mul(ctx, x, nb_sigmoid(ctx, x)), nb_affine(ctx, nb_square(ctx, t), -1, 1)));
    gin[0] = nb_mul(ctx, g, d);
    return NB_OK;
}
static const nb_unary_def MISH = {{"mish", mish_bw, NB_DIFFERENTIABLE}, mish_f32, mish_f64};
nb_tensor *nb_mish(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &MISH, x, 0, 0); }

/* softsign(x) = x / (1 + |x|); d = 1 / (1 + |x|)^2 */
NB_UNARY_KERNEL(softsign, v / ((T)1 + NB_M(fabs, v)))
BACKWARD(softsign) {
    gin[0] = nb_div(ctx, g, nb_square(ctx, nb_add_scalar(ctx, nb_abs(ctx, X(n)), 1.0)));
    return NB_OK;
}
static const nb_unary_def SOFTSIGN = {{"softsign", softsign_bw, NB_DIFFERENTIABLE}, softsign_f32, softsign_f64};
nb_tensor *nb_softsign(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &SOFTSIGN, x, 0, 0); }

/* ---- hard gates ------------------------------------------------------------------------------ */
/* hardsigmoid(x) = clamp(x/6 + 1/2, 0, 1); d = 1/6 on (-3, 3) */
NB_UNARY_KERNEL(hardsigmoid, v <= -3 ? (T)0 : (v >= 3 ? (T)1 : v / (T)6 + (T)0.5))
BACKWARD(hardsigmoid) {
    gin[0] = nb_mul(ctx, g, nb_mul_scalar(ctx, mask_inside(ctx, X(n), -3, 3), 1.0 / 6.0));
    return NB_OK;
}
static const nb_unary_def HARDSIGMOID = {{"hardsigmoid", hardsigmoid_bw, NB_DIFFERENTIABLE}, hardsigmoid_f32,
                                         hardsigmoid_f64};
nb_tensor *nb_hardsigmoid(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &HARDSIGMOID, x, 0, 0); }

/* hardswish(x) = x hardsigmoid(x); d = 0 below -3, (2x + 3)/6 on [-3, 3], 1 above (PyTorch) */
NB_UNARY_KERNEL(hardswish, v <= -3 ? (T)0 : (v >= 3 ? v : v * (v + (T)3) / (T)6))
BACKWARD(hardswish) {
    nb_tensor *x = X(n);
    nb_tensor *mid = nb__unary(ctx, &IN_CLOSED, x, -3, 3), *above = nb__unary(ctx, &INSIDE, x, 3, INFINITY);
    gin[0] = nb_mul(ctx, g, nb_add(ctx, nb_mul(ctx, mid, nb_affine(ctx, x, 1.0 / 3.0, 0.5)), above));
    return NB_OK;
}
static const nb_unary_def HARDSWISH = {{"hardswish", hardswish_bw, NB_DIFFERENTIABLE}, hardswish_f32, hardswish_f64};
nb_tensor *nb_hardswish(nb_ctx *ctx, nb_tensor *x) { return nb__unary(ctx, &HARDSWISH, x, 0, 0); }

#undef X
#undef BACKWARD
