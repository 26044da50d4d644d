/* Writing a new op, as torch.autograd.Function: a forward computed with plain C, a backward
 * rule made of nabla ops (so second derivatives work), an error of its own for bad input,
 * then nb_opcheck runs every check nabla runs on its own ops: gradcheck and gradgradcheck in
 * f64 on contiguous, transposed, sliced and broadcast inputs, f32 against f64, the same bits
 * at 1 and 2 threads, NaN propagation, the bad-shape error and no arena growth.
 *
 * The op: a row-wise "soft normalisation" y[i][j] = x[i][j] / sqrt(1 + sum_k x[i][k]^2) of a
 * (N, D) matrix. A wrong backward (a missing term) is then shown to be caught. */
// ci-args:
#include <math.h>
#include <nabla/nabla.h>

#include "example_util.h"
#include <stdio.h>

/* backward: with r = 1/sqrt(1 + |x|^2) per row, dy/dx = r I - r^3 x x^T, so
 * gx = r g - r^3 x (x . g) row by row; written with ops, so it has a backward too */
static nb_status softnorm_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    nb_tensor *x = n->in[0];
    int ax = 1;
    nb_tensor *r = nb_rsqrt(ctx, nb_add_scalar(ctx, nb_sum(ctx, nb_square(ctx, x), 1, &ax, true), 1.0));
    nb_tensor *xg = nb_sum(ctx, nb_mul(ctx, x, g), 1, &ax, true);
    gin[0] = nb_sub(ctx, nb_mul(ctx, r, g), nb_mul(ctx, nb_pow_scalar(ctx, r, 3.0), nb_mul(ctx, x, xg)));
    return NB_OK;
}
static const nb_op SOFTNORM = {"softnorm", softnorm_bw, NB_DIFFERENTIABLE};

/* the same op with a backward that forgets the r^3 term: opcheck must say so */
static nb_status softnorm_wrong_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    int ax = 1;
    gin[0] = nb_mul(ctx, g, nb_rsqrt(ctx, nb_add_scalar(ctx, nb_sum(ctx, nb_square(ctx, n->in[0]), 1, &ax, true), 1.0)));
    return NB_OK;
}
static const nb_op SOFTNORM_WRONG = {"softnorm", softnorm_wrong_bw, NB_DIFFERENTIABLE};

static nb_tensor *softnorm_with(nb_ctx *ctx, nb_tensor *x, const nb_op *op) {
    if (!x) return NULL;
    if (x->ndim != 2 || x->dtype == NB_I64) {
        char s[64];
        return nb_ctx_fail(ctx, NB_ERR_SHAPE, "softnorm: x %s %s must be a 2-D float matrix", nb_dtype_name(x->dtype),
                           nb_shape_str(x, s, sizeof s));
    }
    nb_tensor *y = nb_empty(ctx, x->dtype, 2, x->shape);
    if (!y) return NULL;
    for (int64_t i = 0; i < x->shape[0]; i++) { /* plain C: any layout through nb_get/nb_set */
        double ss = 1.0;
        for (int64_t j = 0; j < x->shape[1]; j++) ss += nb_get(x, i * x->shape[1] + j) * nb_get(x, i * x->shape[1] + j);
        const double r = 1.0 / sqrt(ss);
        for (int64_t j = 0; j < x->shape[1]; j++) nb_set(y, i * x->shape[1] + j, nb_get(x, i * x->shape[1] + j) * r);
    }
    if (!nb_record(ctx, op, y, 1, &x) && nb_ctx_status(ctx) != NB_OK) return NULL;
    return y;
}

static nb_tensor *softnorm_f(nb_ctx *ctx, nb_tensor *const *in, void *user) {
    return softnorm_with(ctx, in[0], user);
}

/* the cases: a few shapes (k = 0, 1, 2) and one the op must refuse (k = -1: a vector) */
static bool softnorm_shapes(int k, int n_in, int *ndim, int64_t shape[][NB_MAX_DIMS], void *user) {
    (void)n_in, (void)user;
    static const int64_t cases[3][2] = {{3, 4}, {1, 5}, {6, 2}};
    if (k == -1) {
        ndim[0] = 1, shape[0][0] = 4;
        return true;
    }
    if (k < 0 || k >= 3) return false;
    ndim[0] = 2, shape[0][0] = cases[k][0], shape[0][1] = cases[k][1];
    return true;
}

int main(int argc, char **argv) {
    if (!ex_parse(argc, argv, "custom_op", NULL, 0)) return 2; /* no options; --help says so */
    nb_ctx *ctx = nb_ctx_new();
    nb_opcheck_def def = {.name = "softnorm", .f = softnorm_f, .n_in = 1, .shapes = softnorm_shapes, .lo = -2, .hi = 2,
                          .smooth = true, .check_nan = true, .user = (void *)&SOFTNORM};
    nb_opcheck_report rep;
    nb_status st = nb_opcheck(ctx, &def, &rep);
    printf("opcheck of softnorm: %s\n", rep.message);
    if (st != NB_OK) return 1;

    def.user = (void *)&SOFTNORM_WRONG;
    st = nb_opcheck(ctx, &def, &rep);
    printf("opcheck of softnorm with a wrong backward: %s failed: %.140s...\n", rep.property, rep.message);
    if (st == NB_OK) return 1; /* the wrong rule must not pass */
    nb_ctx_free(ctx);
    return 0;
}
