/* The bad-input catalogue: every op family and every public constructor, reader and writer,
 * given wrong shapes, dtypes, axes, NULLs, overflowing sizes, NaN options, tensors released by a
 * reset, an arena limit, or hostile files. Each case must fail (NULL or a non-OK status) with the
 * expected status and a message naming the function the user called; then the context must work
 * again after nb_ctx_clear_error (an op and a backward succeed). No case may crash or trip a
 * sanitizer: the suite also runs under ASan/UBSan. */
#include "common.h"
#include "tmpdir.h"

#include <stdlib.h>
#include <string.h>

/* Small valid inputs; every case starts from a fresh step (reset + this fixture). */
typedef struct {
    nb_tensor *a;      /* f64 (2,3), requires grad */
    nb_tensor *b;      /* f64 (3,2) */
    nb_tensor *v;      /* f64 (3) */
    nb_tensor *f;      /* f32 (2,3) */
    nb_tensor *one;    /* f64 (1,1) */
    nb_tensor *img;    /* f64 (1,2,4,4) */
    nb_tensor *kern;   /* f64 (2,2,3,3): conv weight O=2, C=2 */
    nb_tensor *lab;    /* i64 (2): {0, 2} */
    nb_tensor *badlab; /* i64 (2): {0, 5} */
    nb_tensor *idx;    /* i64 (2): {0, 1} */
    nb_tensor *seq;    /* f64 (2,2,3): T, N, F */
    nb_tensor *h;      /* f64 (2,4) */
    nb_tensor *wih;    /* f64 (4,3) */
    nb_tensor *whh;    /* f64 (4,4) */
    nb_tensor *nan1;   /* f64 (1) holding NaN */
} fixture;

static nb_tensor *persist;  /* f32 (2,3) long-lived */
static nb_params *ps;       /* one parameter "w" (2,3) */

static void make_fixture(nb_ctx *c, fixture *f) {
    f->a = nb_randn(c, NB_F64, NB_SHAPE(2, 3));
    nb_requires_grad(f->a, true);
    f->b = nb_randn(c, NB_F64, NB_SHAPE(3, 2));
    f->v = nb_randn(c, NB_F64, NB_SHAPE(3));
    f->f = nb_randn(c, NB_F32, NB_SHAPE(2, 3));
    f->one = nb_ones(c, NB_F64, NB_SHAPE(1, 1));
    f->img = nb_randn(c, NB_F64, NB_SHAPE(1, 2, 4, 4));
    f->kern = nb_randn(c, NB_F64, NB_SHAPE(2, 2, 3, 3));
    f->lab = nb_from(c, NB_I64, NB_SHAPE(2), (int64_t[]){0, 2});
    f->badlab = nb_from(c, NB_I64, NB_SHAPE(2), (int64_t[]){0, 5});
    f->idx = nb_from(c, NB_I64, NB_SHAPE(2), (int64_t[]){0, 1});
    f->seq = nb_randn(c, NB_F64, NB_SHAPE(2, 2, 3));
    f->h = nb_zeros(c, NB_F64, NB_SHAPE(2, 4));
    f->wih = nb_randn(c, NB_F64, NB_SHAPE(4, 3));
    f->whh = nb_randn(c, NB_F64, NB_SHAPE(4, 4));
    f->nan1 = nb_full(c, NB_F64, NB_SHAPE(1), NAN);
    cr_assert_eq(nb_ctx_status(c), NB_OK, "fixture: %s", nb_ctx_error(c));
}

#define BIG ((int64_t)1 << 62)
#define HUGE_DIM ((int64_t)1 << 40)

/* ---- files for the readers -------------------------------------------------------------------- */
static char files[16][300];
enum { F_MISSING, F_EMPTY, F_IDX_MAGIC, F_IDX_TRUNC, F_IDX_HUGE, F_IDX_ZERO_OVERFLOW, F_IDX_LABEL_RANGE, F_CSV_TEXT,
       F_CSV_RAGGED, F_CSV_I64, F_CSV_NUL, F_ST_NUL, F_ST_JSON, F_ST_CRC, F_CKPT_PARAMS, F_DIR };

static void write_bytes(int which, const char *name, const void *p, size_t n) {
    snprintf(files[which], sizeof files[which], "%s", tmp(name));
    FILE *fp = fopen(files[which], "wb");
    cr_assert_not_null(fp);
    if (n) fwrite(p, 1, n, fp);
    fclose(fp);
}

static void write_st(int which, const char *name, const char *json, size_t ndata) {
    char buf[512];
    uint64_t n = strlen(json);
    for (int k = 0; k < 8; k++) buf[k] = (char)(n >> (8 * k));
    memcpy(buf + 8, json, n);
    memset(buf + 8 + n, 0, ndata);
    write_bytes(which, name, buf, 8 + n + ndata);
}

static void make_files(void) {
    snprintf(files[F_MISSING], sizeof files[0], "%s", tmp("missing"));
    write_bytes(F_EMPTY, "empty", "", 0);
    write_bytes(F_IDX_MAGIC, "magic", (uint8_t[]){0, 0, 9, 3, 0, 0, 0, 1}, 8);
    write_bytes(F_IDX_TRUNC, "trunc", (uint8_t[]){0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1}, 17);
    write_bytes(F_IDX_HUGE, "huge", (uint8_t[]){0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2}, 16);
    write_bytes(F_IDX_ZERO_OVERFLOW, "zero", (uint8_t[]){0, 0, 8, 3, 0, 0, 0, 0, 0x80, 0, 0, 0, 0x80, 0, 0, 0}, 16);
    write_bytes(F_IDX_LABEL_RANGE, "labels", (uint8_t[]){0, 0, 8, 1, 0, 0, 0, 2, 1, 200}, 10);
    write_bytes(F_CSV_TEXT, "text.csv", "1,2\n3,abc\n", 10);
    write_bytes(F_CSV_RAGGED, "ragged.csv", "1,2\n3\n", 6);
    write_bytes(F_CSV_I64, "big.csv", "1,2\n3,1e300\n", 12);
    write_bytes(F_CSV_NUL, "nul.csv", "1,2\n3,\0\n", 8);
    write_st(F_ST_NUL, "nul.safetensors", "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    write_st(F_ST_JSON, "json.safetensors", "{\"a\":", 0);
    write_st(F_ST_CRC, "crc.safetensors", "{\"__metadata__\":{\"nabla.crc32\":\"12345678\"}}", 0);
    snprintf(files[F_CKPT_PARAMS], sizeof files[0], "%s", tmp("params.safetensors"));
    cr_assert_eq(nb_safetensors_save_params(ps, files[F_CKPT_PARAMS], NULL), NB_OK, "%s", nb_last_error());
    snprintf(files[F_DIR], sizeof files[0], "%s", dir);
}

/* Cap the arena where it stands and use up the room left in it, so the next op cannot allocate. */
static void arena_full(void) {
    nb_ctx_set_limit(ctx, 1);
    for (size_t n = (size_t)1 << 24; n >= 64; n /= 2)
        while (nb_ctx_alloc(ctx, n)) {}
    nb_ctx_clear_error(ctx);
}

/* ---- cases: tensor-returning calls (NULL expected) ---------------------------------------------- */
#define F (*f)
#define TENSOR_CASES(X)                                                                                                  \
    /* constructors of step tensors */                                                                                  \
    X(zeros_negative, "zeros", NB_ERR_SHAPE, nb_zeros(ctx, NB_F32, NB_SHAPE(2, -1)))                                    \
    X(zeros_overflow_2p62, "zeros", NB_ERR_SHAPE, nb_zeros(ctx, NB_F32, NB_SHAPE(BIG)))                                 \
    X(zeros_overflow_product, "zeros", NB_ERR_SHAPE, nb_zeros(ctx, NB_F32, NB_SHAPE(HUGE_DIM, HUGE_DIM)))               \
    X(zeros_overflow_zero_dim, "zeros", NB_ERR_SHAPE, nb_zeros(ctx, NB_F32, NB_SHAPE(0, HUGE_DIM, HUGE_DIM)))           \
    X(zeros_rank9, "zeros", NB_ERR_SHAPE, nb_zeros(ctx, NB_F32, NB_SHAPE(1, 1, 1, 1, 1, 1, 1, 1, 1)))                    \
    X(zeros_null_shape, "zeros", NB_ERR_NULL, nb_zeros(ctx, NB_F32, 2, NULL))                                           \
    X(zeros_bad_dtype, "zeros", NB_ERR_DTYPE, nb_zeros(ctx, (nb_dtype)7, NB_SHAPE(2)))                                   \
    X(zeros_null_ctx, "zeros", NB_ERR_NULL, nb_zeros(NULL, NB_F32, NB_SHAPE(2)))                                         \
    X(ones_overflow, "ones", NB_ERR_SHAPE, nb_ones(ctx, NB_F64, NB_SHAPE(BIG, 2)))                                      \
    X(empty_f64_2p61, "empty", NB_ERR_SHAPE, nb_empty(ctx, NB_F64, NB_SHAPE((int64_t)1 << 61, 1)))                      \
    X(empty_negative, "empty", NB_ERR_SHAPE, nb_empty(ctx, NB_F64, NB_SHAPE(-5)))                                       \
    X(full_i64_nan, "full", NB_ERR_VALUE, nb_full(ctx, NB_I64, NB_SHAPE(2), NAN))                                       \
    X(full_i64_inf, "full", NB_ERR_VALUE, nb_full(ctx, NB_I64, NB_SHAPE(2), INFINITY))                                  \
    X(full_i64_2p63, "full", NB_ERR_VALUE, nb_full(ctx, NB_I64, NB_SHAPE(2), 9223372036854775808.0))                     \
    X(full_overflow, "full", NB_ERR_SHAPE, nb_full(ctx, NB_F32, NB_SHAPE(HUGE_DIM, HUGE_DIM), 1))                        \
    X(scalar_i64_nan, "scalar", NB_ERR_VALUE, nb_scalar(ctx, NB_I64, NAN))                                               \
    X(scalar_bad_dtype, "scalar", NB_ERR_DTYPE, nb_scalar(ctx, (nb_dtype)-1, 0))                                        \
    X(from_null_data, "from", NB_ERR_NULL, nb_from(ctx, NB_F32, NB_SHAPE(2), NULL))                                      \
    X(from_overflow, "from", NB_ERR_SHAPE, nb_from(ctx, NB_F32, NB_SHAPE(BIG, 4), (float[]){1}))                         \
    X(arange_zero_step, "arange", NB_ERR_VALUE, nb_arange(ctx, NB_F64, 0, 10, 0))                                        \
    X(arange_nan, "arange", NB_ERR_VALUE, nb_arange(ctx, NB_F64, 0, NAN, 1))                                             \
    X(arange_huge_count, "arange", NB_ERR_VALUE, nb_arange(ctx, NB_I64, 0, 1e300, 1e-300))                              \
    X(arange_count_overflows_memory, "arange", NB_ERR_SHAPE, nb_arange(ctx, NB_F64, 0, 4e18, 1))                        \
    X(arange_i64_values, "arange", NB_ERR_VALUE, nb_arange(ctx, NB_I64, 1e19, 2e19, 1e18))                               \
    X(zeros_like_null, "zeros_like", NB_ERR_NULL, nb_zeros_like(ctx, NULL))                                              \
    X(ones_like_null, "ones_like", NB_ERR_NULL, nb_ones_like(ctx, NULL))                                                 \
    X(rand_i64, "rand", NB_ERR_DTYPE, nb_rand(ctx, NB_I64, NB_SHAPE(2)))                                                 \
    X(randn_overflow, "randn", NB_ERR_SHAPE, nb_randn(ctx, NB_F32, NB_SHAPE(BIG, BIG)))                                  \
    X(randn_null_ctx, "randn", NB_ERR_NULL, nb_randn(NULL, NB_F32, NB_SHAPE(2)))                                         \
    /* element-wise */                                                                                                   \
    X(add_shapes, "add", NB_ERR_SHAPE, nb_add(ctx, F.a, F.b))                                                            \
    X(add_dtypes, "add", NB_ERR_DTYPE, nb_add(ctx, F.a, F.f))                                                            \
    X(add_null, "add", NB_ERR_NULL, nb_add(ctx, F.a, NULL))                                                              \
    X(add_null_ctx, "add", NB_ERR_NULL, nb_add(NULL, F.a, F.a))                                                          \
    X(add_broadcast_overflow, "add", NB_ERR_SHAPE,                                                                       \
      nb_add(ctx, nb_expand(ctx, F.one, NB_SHAPE((int64_t)1 << 31, 1)), nb_expand(ctx, F.one, NB_SHAPE(1, (int64_t)1 << 31)))) \
    X(sub_shapes, "sub", NB_ERR_SHAPE, nb_sub(ctx, F.a, F.b))                                          \
    X(mul_i64, "mul", NB_ERR_DTYPE, nb_mul(ctx, F.lab, F.lab))                                                           \
    X(div_dtypes, "div", NB_ERR_DTYPE, nb_div(ctx, F.f, F.a))                                                            \
    X(pow_shapes, "pow", NB_ERR_SHAPE, nb_pow(ctx, F.a, F.b))                                                            \
    X(maximum_null, "maximum", NB_ERR_NULL, nb_maximum(ctx, NULL, F.a))                                                  \
    X(minimum_shapes, "minimum", NB_ERR_SHAPE, nb_minimum(ctx, F.a, F.b))                                                \
    X(eq_dtypes, "eq", NB_ERR_DTYPE, nb_eq(ctx, F.a, F.f))                                                               \
    X(lt_shapes, "lt", NB_ERR_SHAPE, nb_lt(ctx, F.a, F.b))                                                               \
    X(ge_null, "ge", NB_ERR_NULL, nb_ge(ctx, F.a, NULL))                                                                 \
    X(where_shapes, "where", NB_ERR_SHAPE, nb_where(ctx, F.a, F.a, F.b))                                                 \
    X(where_null, "where", NB_ERR_NULL, nb_where(ctx, NULL, F.a, F.a))                                                   \
    X(affine_nan, "affine", NB_ERR_VALUE, nb_affine(ctx, F.a, NAN, 0))                                                   \
    X(add_scalar_nan, "add_scalar", NB_ERR_VALUE, nb_add_scalar(ctx, F.a, NAN))                                              \
    X(mul_scalar_nan, "mul_scalar", NB_ERR_VALUE, nb_mul_scalar(ctx, F.a, NAN))                                              \
    X(pow_scalar_nan, "pow_scalar", NB_ERR_VALUE, nb_pow_scalar(ctx, F.a, NAN))                                          \
    X(neg_i64, "neg", NB_ERR_DTYPE, nb_neg(ctx, F.lab))                                                                  \
    X(exp_null, "exp", NB_ERR_NULL, nb_exp(ctx, NULL))                                                                   \
    X(log_i64, "log", NB_ERR_DTYPE, nb_log(ctx, F.idx))                                                                  \
    X(sqrt_null_ctx, "sqrt", NB_ERR_NULL, nb_sqrt(NULL, F.a))                                                            \
    X(abs_i64, "abs", NB_ERR_DTYPE, nb_abs(ctx, F.lab))                                                                  \
    X(sign_null, "sign", NB_ERR_NULL, nb_sign(ctx, NULL))                                                                \
    X(erf_i64, "erf", NB_ERR_DTYPE, nb_erf(ctx, F.lab))                                                                  \
    X(clamp_nan, "clamp", NB_ERR_VALUE, nb_clamp(ctx, F.a, NAN, 1))                                                      \
    X(clamp_reversed, "clamp", NB_ERR_VALUE, nb_clamp(ctx, F.a, 2, 1))                                                   \
    /* activations */                                                                                                    \
    X(relu_i64, "relu", NB_ERR_DTYPE, nb_relu(ctx, F.lab))                                                               \
    X(leaky_relu_nan_slope, "leaky_relu", NB_ERR_VALUE, nb_leaky_relu(ctx, F.a, NAN))                                    \
    X(leaky_relu_inf_slope, "leaky_relu", NB_ERR_VALUE, nb_leaky_relu(ctx, F.a, -INFINITY))                              \
    X(elu_nan_alpha, "elu", NB_ERR_VALUE, nb_elu(ctx, F.a, NAN))                                                         \
    X(sigmoid_null, "sigmoid", NB_ERR_NULL, nb_sigmoid(ctx, NULL))                                                       \
    X(tanh_i64, "tanh", NB_ERR_DTYPE, nb_tanh(ctx, F.lab))                                                               \
    X(gelu_i64, "gelu", NB_ERR_DTYPE, nb_gelu(ctx, F.lab))                                                               \
    X(softplus_null, "softplus", NB_ERR_NULL, nb_softplus(ctx, NULL))                                                    \
    X(softmax_axis, "softmax", NB_ERR_AXIS, nb_softmax(ctx, F.a, 2))                                                     \
    X(softmax_i64, "softmax", NB_ERR_DTYPE, nb_softmax(ctx, F.lab, 0))                                                   \
    X(log_softmax_axis, "log_softmax", NB_ERR_AXIS, nb_log_softmax(ctx, F.a, -3))                                        \
    /* reductions */                                                                                                     \
    X(sum_axis, "sum", NB_ERR_AXIS, nb_sum(ctx, F.a, 1, (int[]){2}, false))                                              \
    X(sum_axis_twice, "sum", NB_ERR_AXIS, nb_sum(ctx, F.a, 2, (int[]){1, -1}, false))                                    \
    X(sum_i64, "sum", NB_ERR_DTYPE, nb_sum(ctx, F.lab, 0, NULL, false))                                                  \
    X(sum_negative_naxes, "sum", NB_ERR_VALUE, nb_sum(ctx, F.a, -1, (int[]){0}, false))                                  \
    X(mean_axis, "mean", NB_ERR_AXIS, nb_mean(ctx, F.a, 1, (int[]){-3}, false))                                          \
    X(max_axis, "max", NB_ERR_AXIS, nb_max(ctx, F.a, 1, (int[]){5}, true))                                               \
    X(max_empty_axis, "max", NB_ERR_SHAPE, nb_max(ctx, nb_zeros(ctx, NB_F64, NB_SHAPE(0, 3)), 1, (int[]){0}, false))    \
    X(min_null, "min", NB_ERR_NULL, nb_min(ctx, NULL, 0, NULL, false))                                                   \
    X(var_axis, "var", NB_ERR_AXIS, nb_var(ctx, F.a, 1, (int[]){4}, 1, false))                                           \
    X(logsumexp_axis, "logsumexp", NB_ERR_AXIS, nb_logsumexp(ctx, F.a, 1, (int[]){9}, false))                            \
    X(sum_all_null, "sum_all", NB_ERR_NULL, nb_sum_all(ctx, NULL))                                                       \
    X(mean_all_i64, "mean_all", NB_ERR_DTYPE, nb_mean_all(ctx, F.lab))                                                   \
    X(argmax_axis, "argmax", NB_ERR_AXIS, nb_argmax(ctx, F.a, 3, false))                                                 \
    X(sum_to_shape, "sum_to", NB_ERR_SHAPE, nb_sum_to(ctx, F.a, NB_SHAPE(4)))                                            \
    /* shapes and views */                                                                                               \
    X(reshape_count, "reshape", NB_ERR_SHAPE, nb_reshape(ctx, F.a, NB_SHAPE(4, 2)))                                      \
    X(reshape_overflow_wraps_to_4, "reshape", NB_ERR_SHAPE,                                                              \
      nb_reshape(ctx, nb_zeros(ctx, NB_F32, NB_SHAPE(4)), NB_SHAPE(((int64_t)1 << 62) + 1, 4)))                          \
    X(reshape_two_infer, "reshape", NB_ERR_SHAPE, nb_reshape(ctx, F.a, NB_SHAPE(-1, -1)))                                \
    X(reshape_rank, "reshape", NB_ERR_SHAPE, nb_reshape(ctx, F.a, 9, (int64_t[9]){6, 1, 1, 1, 1, 1, 1, 1, 1}))          \
    X(reshape_null_shape, "reshape", NB_ERR_SHAPE, nb_reshape(ctx, F.a, 2, NULL))                                        \
    X(permute_repeat, "permute", NB_ERR_AXIS, nb_permute(ctx, F.a, (int[]){0, 0}))                                       \
    X(permute_null, "permute", NB_ERR_NULL, nb_permute(ctx, F.a, NULL))                                                  \
    X(transpose_axis, "transpose", NB_ERR_AXIS, nb_transpose(ctx, F.a, 0, 2))                                            \
    X(slice_axis, "slice", NB_ERR_AXIS, nb_slice(ctx, F.a, 2, 0, 1, 1))                                                  \
    X(slice_step_zero, "slice", NB_ERR_VALUE, nb_slice(ctx, F.a, 0, 0, 1, 0))                                            \
    X(slice_step_negative, "slice", NB_ERR_VALUE, nb_slice(ctx, F.a, 0, 0, 1, INT64_MIN))                                \
    X(expand_2p40_squared, "expand", NB_ERR_SHAPE, nb_expand(ctx, F.one, NB_SHAPE(HUGE_DIM, HUGE_DIM)))                  \
    X(expand_incompatible, "expand", NB_ERR_SHAPE, nb_expand(ctx, F.a, NB_SHAPE(4, 3)))                                  \
    X(expand_rank, "expand", NB_ERR_SHAPE, nb_expand(ctx, F.a, NB_SHAPE(3)))                                             \
    X(expand_negative, "expand", NB_ERR_SHAPE, nb_expand(ctx, F.one, NB_SHAPE(-2, 1)))                                   \
    X(contiguous_null, "contiguous", NB_ERR_NULL, nb_contiguous(ctx, NULL))                                              \
    X(squeeze_axis, "squeeze", NB_ERR_AXIS, nb_squeeze(ctx, F.a, 2))                                                     \
    X(unsqueeze_axis, "unsqueeze", NB_ERR_AXIS, nb_unsqueeze(ctx, F.a, 4))                                               \
    X(flatten_axis, "flatten", NB_ERR_AXIS, nb_flatten(ctx, F.a, 3))                                                     \
    X(concat_shapes, "concat", NB_ERR_SHAPE, nb_concat(ctx, 2, (nb_tensor *[]){F.a, F.b}, 0))                            \
    X(concat_axis, "concat", NB_ERR_AXIS, nb_concat(ctx, 2, (nb_tensor *[]){F.a, F.a}, 5))                               \
    X(concat_none, "concat", NB_ERR_NULL, nb_concat(ctx, 0, NULL, 0))                                                    \
    X(stack_shapes, "stack", NB_ERR_SHAPE, nb_stack(ctx, 2, (nb_tensor *[]){F.a, F.b}, 0))                               \
    X(stack_null_member, "stack", NB_ERR_NULL, nb_stack(ctx, 2, (nb_tensor *[]){F.a, NULL}, 0))                          \
    X(index_select_float_idx, "index_select", NB_ERR_DTYPE, nb_index_select(ctx, F.a, 0, F.v))                           \
    X(index_select_range, "index_select", NB_ERR_INDEX, nb_index_select(ctx, F.a, 0, F.badlab))                          \
    X(index_select_axis, "index_select", NB_ERR_AXIS, nb_index_select(ctx, F.a, 4, F.idx))                               \
    X(index_add_range, "index_add", NB_ERR_INDEX, nb_index_add(ctx, F.a, 1, F.badlab, nb_zeros(ctx, NB_F64, NB_SHAPE(2, 2)))) \
    X(gather_rank, "gather", NB_ERR_SHAPE, nb_gather(ctx, F.a, 1, F.idx))                                                \
    X(gather_range, "gather", NB_ERR_INDEX, nb_gather(ctx, F.a, 1, nb_full(ctx, NB_I64, NB_SHAPE(2, 1), 7)))             \
    X(take_along_dim_range, "take_along_dim", NB_ERR_INDEX, nb_take_along_dim(ctx, F.a, nb_full(ctx, NB_I64, NB_SHAPE(2, 1), 3), 1)) \
    X(scatter_add_range, "scatter_add", NB_ERR_INDEX,                                                                    \
      nb_scatter_add(ctx, F.a, 1, nb_full(ctx, NB_I64, NB_SHAPE(2, 1), -1), nb_zeros(ctx, NB_F64, NB_SHAPE(2, 1))))      \
    X(cast_nan_to_i64, "cast", NB_ERR_VALUE, nb_cast(ctx, F.nan1, NB_I64))                                               \
    X(cast_huge_to_i64, "cast", NB_ERR_VALUE, nb_cast(ctx, nb_full(ctx, NB_F64, NB_SHAPE(2), 1e19), NB_I64))             \
    X(cast_bad_dtype, "cast", NB_ERR_DTYPE, nb_cast(ctx, F.a, (nb_dtype)9))                                              \
    X(detach_null, "detach", NB_ERR_NULL, nb_detach(ctx, NULL))                                                          \
    /* linear algebra */                                                                                                 \
    X(matmul_shapes, "matmul", NB_ERR_SHAPE, nb_matmul(ctx, F.a, F.a))                                                   \
    X(matmul_dtypes, "matmul", NB_ERR_DTYPE, nb_matmul(ctx, F.a, nb_cast(ctx, F.b, NB_F32)))                             \
    X(matmul_scalar, "matmul", NB_ERR_SHAPE, nb_matmul(ctx, nb_scalar(ctx, NB_F64, 1), F.a))                             \
    X(matmul_output_overflow, "matmul", NB_ERR_SHAPE,                                                                    \
      nb_matmul(ctx, nb_zeros(ctx, NB_F64, NB_SHAPE(HUGE_DIM, 0)), nb_zeros(ctx, NB_F64, NB_SHAPE(0, HUGE_DIM))))        \
    X(linear_shapes, "linear", NB_ERR_SHAPE, nb_linear(ctx, F.a, F.b, NULL))                                             \
    X(linear_bias, "linear", NB_ERR_SHAPE, nb_linear(ctx, F.a, F.a, F.b))                                                \
    /* losses */                                                                                                         \
    X(cross_entropy_label_range, "cross_entropy", NB_ERR_INDEX, nb_cross_entropy(ctx, F.a, F.badlab, NB_REDUCE_MEAN))   \
    X(cross_entropy_label_dtype, "cross_entropy", NB_ERR_DTYPE, nb_cross_entropy(ctx, F.a, F.v, NB_REDUCE_MEAN))         \
    X(cross_entropy_count, "cross_entropy", NB_ERR_SHAPE,                                                                \
      nb_cross_entropy(ctx, F.a, nb_zeros(ctx, NB_I64, NB_SHAPE(3)), NB_REDUCE_MEAN))                                    \
    X(cross_entropy_reduction, "cross_entropy", NB_ERR_VALUE, nb_cross_entropy(ctx, F.a, F.lab, (nb_reduction)9))        \
    X(cross_entropy_smooth_eps, "cross_entropy_smooth", NB_ERR_VALUE,                                                    \
      nb_cross_entropy_smooth(ctx, F.a, F.lab, NAN, NB_REDUCE_MEAN))                                                     \
    X(cross_entropy_smooth_eps_big, "cross_entropy_smooth", NB_ERR_VALUE,                                                \
      nb_cross_entropy_smooth(ctx, F.a, F.lab, 1.5, NB_REDUCE_MEAN))                                                     \
    X(nll_loss_range, "nll_loss", NB_ERR_INDEX, nb_nll_loss(ctx, F.a, F.badlab, NB_REDUCE_SUM))                          \
    X(mse_loss_shapes, "mse_loss", NB_ERR_SHAPE, nb_mse_loss(ctx, F.a, F.b, NB_REDUCE_MEAN))                             \
    X(bce_shapes, "bce_with_logits", NB_ERR_SHAPE, nb_bce_with_logits(ctx, F.a, F.b, NB_REDUCE_MEAN))                    \
    /* convolution, pooling, norms, embeddings, recurrent cells */                                                      \
    X(unfold_rank, "unfold", NB_ERR_SHAPE, nb_unfold(ctx, F.a, NB_WINDOW2D(2, 1, 0, 1), 0))                              \
    X(unfold_kernel_zero, "unfold", NB_ERR_VALUE, nb_unfold(ctx, F.img, NB_WINDOW2D(0, 1, 0, 1), 0))                      \
    X(unfold_huge_window, "unfold", NB_ERR_VALUE, nb_unfold(ctx, F.img, NB_WINDOW2D(INT64_MAX, 1, 0, 1), 0))             \
    X(unfold_huge_padding, "unfold", NB_ERR_VALUE, nb_unfold(ctx, F.img, NB_WINDOW2D(1, 1, INT64_MAX / 2, 1), 0))        \
    X(fold_shape, "fold", NB_ERR_SHAPE, nb_fold(ctx, F.img, 4, 4, NB_WINDOW2D(2, 1, 0, 1)))                               \
    X(conv2d_channels, "conv2d", NB_ERR_SHAPE, nb_conv2d(ctx, F.img, nb_zeros(ctx, NB_F64, NB_SHAPE(2, 3, 3, 3)), NULL, 1, 0, 1, 1)) \
    X(conv2d_stride_zero, "conv2d", NB_ERR_VALUE, nb_conv2d(ctx, F.img, F.kern, NULL, 0, 0, 1, 1))                       \
    X(conv2d_groups, "conv2d", NB_ERR_VALUE, nb_conv2d(ctx, F.img, F.kern, NULL, 1, 0, 1, 3))                            \
    X(conv2d_kernel_too_big, "conv2d", NB_ERR_SHAPE, nb_conv2d(ctx, F.img, nb_zeros(ctx, NB_F64, NB_SHAPE(2, 2, 9, 9)), NULL, 1, 0, 1, 1)) \
    X(conv2d_bias, "conv2d", NB_ERR_SHAPE, nb_conv2d(ctx, F.img, F.kern, F.v, 1, 0, 1, 1))                               \
    X(conv_transpose2d_output_padding, "conv_transpose2d", NB_ERR_VALUE,                                                 \
      nb_conv_transpose2d(ctx, F.img, F.kern, NULL, 1, 0, 1, 1, 1))                                                      \
    X(max_pool2d_kernel, "max_pool2d", NB_ERR_VALUE, nb_max_pool2d(ctx, F.img, 0, 0, 0))                                 \
    X(max_pool2d_rank, "max_pool2d", NB_ERR_SHAPE, nb_max_pool2d(ctx, F.a, 2, 2, 0))                                     \
    X(max_pool2d_padding, "max_pool2d", NB_ERR_VALUE, nb_max_pool2d(ctx, F.img, 2, 2, 3))                                \
    X(avg_pool2d_kernel, "avg_pool2d", NB_ERR_VALUE, nb_avg_pool2d(ctx, F.img, -1, 1, 0))                                \
    X(adaptive_avg_pool2d_size, "adaptive_avg_pool2d", NB_ERR_VALUE, nb_adaptive_avg_pool2d(ctx, F.img, 0, 2))           \
    X(adaptive_avg_pool2d_huge, "adaptive_avg_pool2d", NB_ERR_SHAPE, nb_adaptive_avg_pool2d(ctx, F.img, HUGE_DIM, HUGE_DIM)) \
    X(interpolate_huge_scale, "interpolate", NB_ERR_SHAPE,                                                               \
      nb_interpolate(ctx, F.img, &(nb_interp_opts){.scale_factor = {1e30, 1e30}}))                                      \
    X(pixel_shuffle_huge_r, "pixel_shuffle", NB_ERR_SHAPE, nb_pixel_shuffle(ctx, F.img, (int64_t)1 << 32))               \
    X(conv_transpose2d_huge_stride, "conv_transpose2d", NB_ERR_SHAPE,                                                    \
      nb_conv_transpose2d(ctx, F.img, F.kern, NULL, 1 << 30, 0, 0, 1, 1))                                                \
    X(batch_norm_eps, "batch_norm", NB_ERR_VALUE, nb_batch_norm(ctx, F.img, NULL, NULL, NULL, NULL, 0.1, -1))             \
    X(batch_norm_momentum, "batch_norm", NB_ERR_VALUE, nb_batch_norm(ctx, F.img, NULL, NULL, NULL, NULL, NAN, 1e-5))      \
    X(layer_norm_negative_eps, "layer_norm", NB_ERR_VALUE, nb_layer_norm(ctx, F.a, 1, NULL, NULL, -1e-5))                \
    X(layer_norm_nan_eps, "layer_norm", NB_ERR_VALUE, nb_layer_norm(ctx, F.a, 1, NULL, NULL, NAN))                        \
    X(layer_norm_ndims, "layer_norm", NB_ERR_AXIS, nb_layer_norm(ctx, F.a, 3, NULL, NULL, 1e-5))                         \
    X(layer_norm_weight, "layer_norm", NB_ERR_SHAPE, nb_layer_norm(ctx, F.a, 1, F.b, NULL, 1e-5))                        \
    X(group_norm_negative_eps, "group_norm", NB_ERR_VALUE, nb_group_norm(ctx, F.img, 1, NULL, NULL, -1))                 \
    X(group_norm_groups, "group_norm", NB_ERR_VALUE, nb_group_norm(ctx, F.img, 3, NULL, NULL, 1e-5))                     \
    X(embedding_range, "embedding", NB_ERR_INDEX, nb_embedding(ctx, F.a, F.badlab))                                      \
    X(embedding_float_idx, "embedding", NB_ERR_DTYPE, nb_embedding(ctx, F.a, F.v))                                       \
    X(rnn_cell_shapes, "rnn_cell", NB_ERR_SHAPE, nb_rnn_cell(ctx, F.a, F.h, F.whh, F.whh, NULL, NULL))                   \
    X(rnn_cell_null, "rnn_cell", NB_ERR_NULL, nb_rnn_cell(ctx, F.a, NULL, F.wih, F.whh, NULL, NULL))                     \
    X(lstm_cell_shapes, "lstm_cell", NB_ERR_SHAPE, nb_lstm_cell(ctx, F.a, F.h, F.h, F.wih, F.whh, NULL, NULL, NULL))     \
    X(gru_cell_shapes, "gru_cell", NB_ERR_SHAPE, nb_gru_cell(ctx, F.a, F.h, F.wih, F.whh, NULL, NULL))                   \
    X(rnn_cell_dtypes, "rnn_cell", NB_ERR_DTYPE, nb_rnn_cell(ctx, F.a, nb_cast(ctx, F.h, NB_F32), F.wih, F.whh, NULL, NULL)) \
    X(rnn_unroll_rank, "rnn_unroll", NB_ERR_SHAPE, nb_rnn_unroll(ctx, NB_RNN_TANH, F.a, F.h, NULL, F.wih, F.whh, NULL, NULL, NULL, NULL)) \
    X(rnn_unroll_kind, "rnn_unroll", NB_ERR_VALUE, nb_rnn_unroll(ctx, (nb_rnn_kind)7, F.seq, F.h, NULL, F.wih, F.whh, NULL, NULL, NULL, NULL)) \
    /* regularizers */                                                                                                   \
    X(dropout_p_one, "dropout", NB_ERR_VALUE, nb_dropout(ctx, F.a, 1.0))                                                 \
    X(dropout_p_nan, "dropout", NB_ERR_VALUE, nb_dropout(ctx, F.a, NAN))                                                 \
    X(l2_penalty_lambda, "l2_penalty", NB_ERR_VALUE, nb_l2_penalty(ctx, 1, &F.a, NAN))                                   \
    X(l1_penalty_negative, "l1_penalty", NB_ERR_VALUE, nb_l1_penalty(ctx, 1, &F.a, -1))                                  \
    X(l2_penalty_null, "l2_penalty", NB_ERR_NULL, nb_l2_penalty(ctx, 1, NULL, 0.1))                                      \
    X(elastic_net_nan, "elastic_net_penalty", NB_ERR_VALUE, nb_elastic_net_penalty(ctx, 1, &F.a, NAN, 0.1))              \
    X(group_lasso_axis, "group_lasso_penalty", NB_ERR_AXIS, nb_group_lasso_penalty(ctx, 1, &F.a, 0.1, -2))                \
    X(l2_penalty_params_null, "l2_penalty_params", NB_ERR_NULL, nb_l2_penalty_params(ctx, NULL, NULL, 0.1))               \
    X(gradient_penalty_null, "gradient_penalty", NB_ERR_NULL, nb_gradient_penalty(ctx, NULL, F.a, 1, 10))                \
    /* layers */                                                                                                         \
    X(linear_layer_forward_null, "linear_layer_forward", NB_ERR_NULL, nb_linear_layer_forward(ctx, NULL, F.a))            \
    /* modules (a fresh model each) */                                                                                    \
    X(module_forward_null, "module_forward", NB_ERR_NULL, nb_module_forward(ctx, NULL, F.a))                              \
    X(module_forward_shape, "module_forward", NB_ERR_SHAPE, ({                                                            \
          nb_model *m_ = nb_model_new(1);                                                                                \
          nb_tensor *r_ = nb_module_forward(ctx, nb_linear_module(m_, (nb_linear_opts){.in = 2, .out = 2}), F.a);        \
          nb_model_free(m_);                                                                                             \
          r_;                                                                                                            \
      }))                                                                                                                \
    /* long-lived tensors and readers (no context: the thread-local error) */                                           \
    X(tensor_new_overflow, "tensor_new", NB_ERR_SHAPE, nb_tensor_new(NB_F64, NB_SHAPE(BIG, BIG)))                        \
    X(tensor_new_negative, "tensor_new", NB_ERR_SHAPE, nb_tensor_new(NB_F64, NB_SHAPE(3, -3)))                           \
    X(tensor_new_dtype, "tensor_new", NB_ERR_DTYPE, nb_tensor_new((nb_dtype)5, NB_SHAPE(3)))                             \
    X(tensor_from_null, "tensor_from", NB_ERR_NULL, nb_tensor_from(NB_F64, NB_SHAPE(3), NULL))                           \
    X(tensor_clone_null, "tensor_clone", NB_ERR_NULL, nb_tensor_clone(NULL))                                             \
    X(params_add_overflow, "params_add", NB_ERR_SHAPE, nb_params_add(ps, "big", NB_SHAPE(BIG, 8)))                       \
    X(params_add_duplicate, "params_add", NB_ERR_VALUE, nb_params_add(ps, "w", NB_SHAPE(2)))                             \
    X(params_add_null_name, "params_add", NB_ERR_NULL, nb_params_add(ps, NULL, NB_SHAPE(2)))                             \
    X(take_rows_range, "take_rows", NB_ERR_INDEX, nb_take_rows(persist, (int64_t[]){0, 9}, 2))                           \
    X(idx_images_missing, "idx_load_images", NB_ERR_IO, nb_idx_load_images(files[F_MISSING], NULL))                      \
    X(idx_images_empty, "idx_load_images", NB_ERR_FORMAT, nb_idx_load_images(files[F_EMPTY], NULL))                      \
    X(idx_images_magic, "idx_load_images", NB_ERR_FORMAT, nb_idx_load_images(files[F_IDX_MAGIC], NULL))                  \
    X(idx_images_truncated, "idx_load_images", NB_ERR_FORMAT, nb_idx_load_images(files[F_IDX_TRUNC], NULL))              \
    X(idx_images_huge_dims, "idx_load_images", NB_ERR_FORMAT, nb_idx_load_images(files[F_IDX_HUGE], NULL))               \
    X(idx_images_zero_images_overflow, "idx_load_images", NB_ERR_FORMAT, nb_idx_load_images(files[F_IDX_ZERO_OVERFLOW], NULL)) \
    X(idx_images_directory, "idx_load_images", NB_ERR_FORMAT, nb_idx_load_images(files[F_DIR], NULL))                    \
    X(idx_images_null, "idx_load_images", NB_ERR_NULL, nb_idx_load_images(NULL, NULL))                                   \
    X(idx_labels_range, "idx_load_labels", NB_ERR_FORMAT, nb_idx_load_labels(files[F_IDX_LABEL_RANGE], 10))              \
    X(idx_labels_images_file, "idx_load_labels", NB_ERR_FORMAT, nb_idx_load_labels(files[F_IDX_TRUNC], 10))              \
    X(csv_missing, "csv_load", NB_ERR_IO, nb_csv_load(files[F_MISSING], NULL))                                           \
    X(csv_empty, "csv_load", NB_ERR_FORMAT, nb_csv_load(files[F_EMPTY], NULL))                                           \
    X(csv_text, "csv_load", NB_ERR_FORMAT, nb_csv_load(files[F_CSV_TEXT], NULL))                                         \
    X(csv_ragged, "csv_load", NB_ERR_FORMAT, nb_csv_load(files[F_CSV_RAGGED], NULL))                                     \
    X(csv_i64_out_of_range, "csv_load", NB_ERR_FORMAT, nb_csv_load(files[F_CSV_I64], &(nb_csv_opts){.dtype = NB_I64}))   \
    X(csv_nul, "csv_load", NB_ERR_FORMAT, nb_csv_load(files[F_CSV_NUL], NULL))                                           \
    X(csv_delimiter, "csv_load", NB_ERR_VALUE, nb_csv_load(files[F_CSV_TEXT], &(nb_csv_opts){.delimiter = '.'}))         \
    X(csv_dtype, "csv_load", NB_ERR_DTYPE, nb_csv_load(files[F_CSV_TEXT], &(nb_csv_opts){.dtype = (nb_dtype)4}))         \
    X(csv_null, "csv_load", NB_ERR_NULL, nb_csv_load(NULL, NULL))                                                        \
    X(csv_over_cap, "csv_load", NB_ERR_FORMAT, ({                                                                        \
          nb_set_read_limit(16);                                                                                         \
          nb_tensor *t_ = nb_csv_load(files[F_CSV_RAGGED], NULL);                                                        \
          nb_set_read_limit(NB_READ_LIMIT_DEFAULT);                                                                      \
          t_;                                                                                                            \
      }))                                                                                                                \
    X(idx_over_cap, "idx_load_labels", NB_ERR_FORMAT, ({                                                                 \
          nb_set_read_limit(8);                                                                                          \
          nb_tensor *t_ = nb_idx_load_labels(files[F_IDX_LABEL_RANGE], 0);                                               \
          nb_set_read_limit(NB_READ_LIMIT_DEFAULT);                                                                      \
          t_;                                                                                                            \
      }))                                                                                                                \
    /* the arena limit: ops fail cleanly when the step memory is capped */                                              \
    X(arena_limit_zeros, "zeros", NB_ERR_NOMEM, (arena_full(), nb_zeros(ctx, NB_F64, NB_SHAPE(1000, 1000))))              \
    X(arena_limit_from, "from", NB_ERR_NOMEM, (arena_full(), nb_from(ctx, NB_F64, NB_SHAPE(2), (double[]){1, 2})))        \
    X(arena_limit_add, "add", NB_ERR_NOMEM, (arena_full(), nb_add(ctx, F.a, F.a)))                                         \
    X(arena_limit_view, "permute", NB_ERR_NOMEM, (arena_full(), nb_permute(ctx, F.a, (int[]){1, 0})))                           \
    X(arena_limit_unfold, "unfold", NB_ERR_NOMEM, (arena_full(), nb_unfold(ctx, F.img, NB_WINDOW2D(2, 1, 0, 1), 0)))         \
    X(arena_limit_softmax, "softmax", NB_ERR_NOMEM, (arena_full(), nb_softmax(ctx, F.a, 1)))                                                                                                                \
    X(arena_limit_exp, "exp", NB_ERR_NOMEM, ({                                                                           \
          nb_tensor *x_ = nb_zeros(ctx, NB_F64, NB_SHAPE(400, 400));                                                     \
          arena_full();                                                                                                  \
          nb_exp(ctx, x_);                                                                                               \
      }))                                                                                                                \
    X(arena_limit_matmul, "matmul", NB_ERR_NOMEM, ({                                                                     \
          nb_tensor *x_ = nb_zeros(ctx, NB_F64, NB_SHAPE(400, 400));                                                     \
          arena_full();                                                                                                  \
          nb_matmul(ctx, x_, x_);                                                                                        \
      }))                                                                                                                \
    X(arena_limit_contiguous, "contiguous", NB_ERR_NOMEM, ({                                                              \
          nb_tensor *x_ = nb_transpose(ctx, nb_zeros(ctx, NB_F64, NB_SHAPE(400, 400)), 0, 1);                            \
          arena_full();                                                                                                  \
          nb_contiguous(ctx, x_);                                                                             \
      }))

/* ---- cases: calls returning a status (non-OK expected) ----------------------------------------- */
static nb_optim *adam;
#define STATUS_CASES(X)                                                                                                  \
    /* autograd misuse */                                                                                                \
    X(op_after_reset, "exp", NB_ERR_STATE, ({                                                                            \
          nb_tensor *x_ = F.a;                                                                                           \
          nb_ctx_reset(ctx);                                                                                             \
          nb_exp(ctx, x_) ? NB_OK : nb_ctx_status(ctx);                                                                  \
      }))                                                                                                                \
    X(op_on_tensor_of_other_context, "matmul", NB_ERR_STATE, ({                                                          \
          nb_ctx *o_ = nb_ctx_new();                                                                                     \
          nb_tensor *y_ = nb_ones(o_, NB_F64, NB_SHAPE(3, 2));                                                           \
          nb_status s_ = nb_matmul(ctx, F.a, y_) ? NB_OK : nb_ctx_status(ctx);                                           \
          nb_ctx_free(o_);                                                                                               \
          s_;                                                                                                            \
      }))                                                                                                                \
    X(op_after_release, "sum", NB_ERR_STATE, ({                                                                          \
          nb_mark m_ = nb_ctx_mark(ctx);                                                                                 \
          nb_tensor *y_ = nb_mul(ctx, F.a, F.a);                                                                         \
          nb_ctx_release(ctx, m_);                                                                                       \
          nb_sum(ctx, y_, 0, NULL, false) ? NB_OK : nb_ctx_status(ctx);                                                  \
      }))                                                                                                                \
    X(backward_after_reset, "backward", NB_ERR_STATE, ({                                                                 \
          nb_tensor *l_ = nb_sum_all(ctx, nb_mul(ctx, F.a, F.a));                                                        \
          nb_ctx_reset(ctx);                                                                                             \
          nb_backward(ctx, l_, NULL);                                                                                    \
      }))                                                                                                                \
    X(backward_after_reset_and_reuse, "backward", NB_ERR_STATE, ({                                                       \
          nb_tensor *l_ = nb_sum_all(ctx, nb_mul(ctx, F.a, F.a));                                                        \
          nb_ctx_reset(ctx);                                                                                             \
          nb_tensor *x_ = nb_ones(ctx, NB_F64, NB_SHAPE(3));                                                             \
          nb_requires_grad(x_, true);                                                                                    \
          nb_sum_all(ctx, nb_exp(ctx, x_));                                                                              \
          nb_backward(ctx, l_, NULL);                                                                                    \
      }))                                                                                                                \
    X(backward_after_release, "backward", NB_ERR_STATE, ({                                                               \
          nb_mark m_ = nb_ctx_mark(ctx);                                                                                 \
          nb_tensor *l_ = nb_sum_all(ctx, nb_mul(ctx, F.a, F.a));                                                        \
          nb_ctx_release(ctx, m_);                                                                                       \
          nb_backward(ctx, l_, NULL);                                                                                    \
      }))                                                                                                                \
    X(grad_after_reset, "grad", NB_ERR_STATE, ({                                                                         \
          nb_tensor *l_ = nb_sum_all(ctx, nb_mul(ctx, F.a, F.a)), *g_;                                                   \
          nb_tensor *a_ = F.a;                                                                                           \
          nb_ctx_reset(ctx);                                                                                             \
          nb_grad(ctx, 1, &l_, NULL, 1, &a_, &g_, false);                                                                \
      }))                                                                                                                \
    X(backward_tensor_of_other_context, "backward", NB_ERR_STATE, ({                                                     \
          nb_ctx *o_ = nb_ctx_new();                                                                                     \
          nb_tensor *x_ = nb_ones(o_, NB_F64, NB_SHAPE(2));                                                              \
          nb_requires_grad(x_, true);                                                                                    \
          nb_tensor *l_ = nb_sum_all(o_, x_);                                                                            \
          nb_status s_ = nb_backward(ctx, l_, NULL);                                                                     \
          nb_ctx_free(o_);                                                                                               \
          s_;                                                                                                            \
      }))                                                                                                                \
    X(backward_no_grad, "backward", NB_ERR_STATE, nb_backward(ctx, nb_sum_all(ctx, F.b), NULL))                          \
    X(backward_non_scalar, "backward", NB_ERR_SHAPE, nb_backward(ctx, nb_exp(ctx, F.a), NULL))                           \
    X(backward_grad_shape, "backward", NB_ERR_SHAPE, nb_backward(ctx, nb_exp(ctx, F.a), F.b))                            \
    X(backward_grad_dtype, "backward", NB_ERR_DTYPE, nb_backward(ctx, nb_exp(ctx, F.a), F.f))                            \
    X(backward_null, "backward", NB_ERR_NULL, nb_backward(ctx, NULL, NULL))                                              \
    X(backward_null_ctx, "backward", NB_ERR_NULL, nb_backward(NULL, F.a, NULL))                                          \
    X(grad_no_inputs, "grad", NB_ERR_NULL, nb_grad(ctx, 1, (nb_tensor *[]){nb_sum_all(ctx, F.a)}, NULL, 0, NULL, NULL, false)) \
    X(grad_input_no_grad, "grad", NB_ERR_STATE, ({                                                                       \
          nb_tensor *g_;                                                                                                 \
          nb_grad(ctx, 1, (nb_tensor *[]){nb_sum_all(ctx, F.a)}, NULL, 1, &F.b, &g_, false);                             \
      }))                                                                                                                \
    X(requires_grad_non_leaf, "requires_grad", NB_ERR_STATE, nb_requires_grad(nb_exp(ctx, F.a), false))                  \
    X(release_forged_mark, "ctx_release", NB_ERR_STATE, ({                                                               \
          nb_ctx_release(ctx, (nb_mark){(size_t)1 << 40, 5, 3, 0});                                                      \
          nb_ctx_status(ctx);                                                                                            \
      }))                                                                                                                \
    X(release_mark_of_old_step, "ctx_release", NB_ERR_STATE, ({                                                          \
          nb_mark m_ = nb_ctx_mark(ctx);                                                                                 \
          nb_ctx_reset(ctx);                                                                                             \
          nb_ctx_release(ctx, m_);                                                                                       \
          nb_ctx_status(ctx);                                                                                            \
      }))                                                                                                                \
    X(release_forward_mark, "ctx_release", NB_ERR_STATE, ({                                                              \
          nb_mark m_ = nb_ctx_mark(ctx);                                                                                 \
          m_.arena_used += 4096;                                                                                         \
          m_.tape_len += 10;                                                                                             \
          nb_ctx_release(ctx, m_);                                                                                       \
          nb_ctx_status(ctx);                                                                                            \
      }))                                                                                                                \
    X(set_grad_enabled_null_ctx, "set_grad_enabled", NB_ERR_NULL, (nb_ctx_set_grad_enabled(NULL, false), nb_last_status()))  \
    X(ctx_seed_null_ctx, "ctx_seed", NB_ERR_NULL, (nb_ctx_seed(NULL, 3), nb_last_status()))                              \
    X(ctx_alloc_null_ctx, "ctx_alloc", NB_ERR_NULL, (nb_ctx_alloc(NULL, 16), nb_last_status()))                          \
    X(ctx_alloc_huge, "ctx_alloc", NB_ERR_NOMEM, (nb_ctx_alloc(ctx, SIZE_MAX - 8), nb_ctx_status(ctx)))                  \
    X(set_train_null_ctx, "set_train", NB_ERR_NULL, (nb_ctx_set_train(NULL, false), nb_last_status()))                       \
    X(set_anomaly_null_ctx, "set_anomaly", NB_ERR_NULL, (nb_ctx_set_anomaly(NULL, true), nb_last_status()))                  \
    X(ctx_rng_null_ctx, "ctx_rng", NB_ERR_NULL, (nb_ctx_rng(NULL), nb_last_status()))                                    \
    X(on_grad_ready_null_ctx, "ctx_on_grad_ready", NB_ERR_NULL, (nb_ctx_on_grad_ready(NULL, NULL, NULL), nb_last_status())) \
    X(add_hook_null, "add_hook", NB_ERR_NULL, nb_add_hook(ctx, F.a, NULL, NULL))                                         \
    X(graph_dot_null, "graph_dot", NB_ERR_NULL, nb_graph_dot(ctx, NULL, stdout))                                         \
    X(gradcheck_negative_projections, "gradcheck", NB_ERR_VALUE, ({                                                      \
          nb_gradcheck_opts o_ = NB_GRADCHECK_DEFAULTS;                                                                  \
          o_.n_proj = -1;                                                                                                \
          nb_gradcheck(ctx, sum_fn, 1, &F.a, NULL, &o_, NULL);                                                           \
      }))                                                                                                                \
    X(gradcheck_zero_eps, "gradcheck", NB_ERR_VALUE, ({                                                                  \
          nb_gradcheck_opts o_ = NB_GRADCHECK_DEFAULTS;                                                                  \
          o_.eps = 0;                                                                                                    \
          nb_gradcheck(ctx, sum_fn, 1, &F.a, NULL, &o_, NULL);                                                           \
      }))                                                                                                                \
    X(gradcheck_f32, "gradcheck", NB_ERR_DTYPE, ({                                                                        \
          nb_tensor *x_ = nb_cast(ctx, F.a, NB_F32);                                                                     \
          nb_gradcheck(ctx, sum_fn, 1, &x_, NULL, NULL, NULL);                                                           \
      }))                                                                                                                \
    /* element access of tensors */                                                                                      \
    X(set_i64_nan, "set", NB_ERR_VALUE, nb_set(F.lab, 0, NAN))                                                           \
    X(set_i64_huge, "set", NB_ERR_VALUE, nb_set(F.lab, 0, -1e30))                                                        \
    X(set_index, "set", NB_ERR_INDEX, nb_set(F.a, 6, 1))                                                                 \
    X(fill_i64_inf, "fill", NB_ERR_VALUE, nb_fill(F.lab, INFINITY))                                                      \
    X(copy_into_i64_nan, "copy_into", NB_ERR_VALUE, nb_copy_into(nb_zeros(ctx, NB_I64, NB_SHAPE(1)), F.nan1))           \
    X(copy_into_shapes, "copy_into", NB_ERR_SHAPE, nb_copy_into(F.a, F.b))                                               \
    X(copy_out_i64_nan, "copy_out", NB_ERR_VALUE, nb_copy_out(F.nan1, NB_I64, (int64_t[1]){0}))                          \
    X(copy_out_dtype, "copy_out", NB_ERR_DTYPE, nb_copy_out(F.a, (nb_dtype)8, (double[6]){0}))                           \
    X(rng_uniform_i64, "rng", NB_ERR_DTYPE, nb_rng_uniform(nb_ctx_rng(ctx), F.lab, 0, 1))                                \
    X(rng_permutation_null, "rng_permutation", NB_ERR_NULL, nb_rng_permutation(NULL, 3, (int64_t[3]){0}))               \
    X(rng_permutation_negative, "rng_permutation", NB_ERR_VALUE, nb_rng_permutation(nb_ctx_rng(ctx), -5, NULL))          \
    /* optimizers, schedules, clipping, constraints, early stopping */                                                  \
    X(optim_new_negative_lr, "adam", NB_ERR_VALUE, (nb_optim_new(&nb_adam, ps, &(nb_hparams){.lr = -1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8}), nb_last_status())) \
    X(optim_new_beta1_7, "adam", NB_ERR_VALUE, (nb_optim_new(&nb_adam, ps, &(nb_hparams){.lr = 1e-3, .beta1 = 7, .beta2 = 0.999, .eps = 1e-8}), nb_last_status())) \
    X(optim_new_nan_lr, "sgd", NB_ERR_VALUE, (nb_optim_new(&nb_sgd, ps, &(nb_hparams){.lr = NAN}), nb_last_status()))   \
    X(optim_new_null, "optim_new", NB_ERR_NULL, (nb_optim_new(NULL, ps, NULL), nb_last_status()))                        \
    X(optim_step_nan_lr, "adam", NB_ERR_VALUE, ({                                                                        \
          adam->hp.lr = NAN;                                                                                             \
          nb_optim_step(adam);                                                                                           \
      }))                                                                                                                \
    X(optim_step_counter_at_max, "adam", NB_ERR_STATE, ({                                                                \
          adam->step = INT64_MAX;                                                                                        \
          nb_optim_step(adam);                                                                                           \
      }))                                                                                                                \
    X(optim_step_null, "optim_step", NB_ERR_NULL, nb_optim_step(NULL))                                                   \
    X(plateau_init_lr, "plateau", NB_ERR_VALUE, nb_plateau_init(&(nb_plateau){0}, NB_MODE_MIN, NAN))                      \
    X(clip_grad_value_negative, "clip_grad_value", NB_ERR_VALUE, nb_clip_grad_value(ps, -1))                             \
    X(clip_grad_norm_nan, "clip_grad_norm", NB_ERR_VALUE, (nb_clip_grad_norm(ps, NAN), nb_last_status()))                 \
    X(prox_l1_negative, "prox_l1", NB_ERR_VALUE, nb_prox_l1(ps, NULL, -1))                                               \
    X(max_norm_zero, "max_norm", NB_ERR_VALUE, nb_max_norm(ps, NULL, 0))                                                 \
    X(early_stop_patience, "early_stop_init", NB_ERR_VALUE, nb_early_stop_init(&(nb_early_stop){0}, ps, NB_MODE_MIN, -1, 0, false)) \
    X(early_stop_min_delta, "early_stop_init", NB_ERR_VALUE, nb_early_stop_init(&(nb_early_stop){0}, ps, NB_MODE_MIN, 1, NAN, false)) \
    X(early_stop_restore_null, "early_stop_restore", NB_ERR_NULL, nb_early_stop_restore(NULL))                           \
    X(init_xavier_i64, "xavier", NB_ERR_DTYPE, nb_init_xavier_uniform(nb_ctx_rng(ctx), nb_zeros(ctx, NB_I64, NB_SHAPE(2, 2)), 1))                        \
    X(init_kaiming_rank, "kaiming", NB_ERR_SHAPE, nb_init_kaiming_normal(nb_ctx_rng(ctx), nb_scalar(ctx, NB_F64, 0), 1, NB_FAN_IN)) \
    X(linear_layer_init_size, "linear_layer_init", NB_ERR_VALUE, nb_linear_layer_init(&(nb_linear_layer){0}, ps, "fc", -1, 3, true, &(nb_rng){0})) \
    X(conv2d_layer_init_kernel, "conv2d_layer_init", NB_ERR_VALUE, nb_conv2d_layer_init(&(nb_conv2d_layer){0}, ps, "c", 1, 2, 0, 1, 0, 1, 1, true, &(nb_rng){0})) \
    X(conv2d_module_kernel, "conv2d_module", NB_ERR_VALUE, ({                                                             \
          nb_model *m_ = nb_model_new(1);                                                                                \
          nb_module *r_ = nb_conv2d_module(m_, (nb_conv2d_opts){.in = 1, .out = 2, .kernel = 0});                        \
          nb_model_free(m_);                                                                                             \
          r_ ? NB_OK : nb_last_status();                                                                                 \
      }))                                                                                                                \
    X(sequential_null_child, "sequential", NB_ERR_NULL, ({                                                               \
          nb_model *m_ = nb_model_new(1);                                                                                \
          nb_module *r_ = nb_sequential(m_, NULL, NB_MODULES(nb_relu_module(m_, NULL), NULL));                           \
          nb_model_free(m_);                                                                                             \
          r_ ? NB_OK : nb_last_status();                                                                                 \
      }))                                                                                                                \
    X(module_summary_null, "module_summary", NB_ERR_NULL, nb_module_summary(NULL, ctx, NB_SHAPE(2), stdout))              \
    X(module_dot_null, "module_dot", NB_ERR_NULL, nb_module_dot(NULL, stdout))                                            \
    /* data utilities */                                                                                                 \
    X(split_n_val, "split", NB_ERR_VALUE, ({                                                                             \
          nb_tensor *a_, *b_, *c_, *d_;                                                                                  \
          nb_split(persist, NULL, 5, 0, &a_, &b_, &c_, &d_);                                                             \
      }))                                                                                                                \
    X(standardize_std, "standardize", NB_ERR_VALUE, nb_standardize(persist, 0, -1))                                      \
    X(mean_std_null, "mean_std", NB_ERR_NULL, nb_mean_std(NULL, NULL, NULL))                                             \
    X(batcher_new_batch, "batcher_new", NB_ERR_VALUE, (nb_batcher_new(persist, NULL, &(nb_batch_opts){.batch_size = 0}), nb_last_status())) \
    X(kfold_k, "kfold_split", NB_ERR_VALUE, nb_kfold_split(10, 0, 0, 0, (int64_t[10]){0}, (int64_t[1]){0}, (int64_t[10]){0}, (int64_t[1]){0})) \
    /* writers and file readers returning a status */                                                                   \
    X(idx_save_dims, "idx_save_u8", NB_ERR_SHAPE, nb_idx_save_u8(tmp("x.idx"), false, NB_SHAPE(-1), (uint8_t[1]){0}))    \
    X(idx_save_rank, "idx_save_u8", NB_ERR_SHAPE, nb_idx_save_u8(tmp("x.idx"), false, 0, NULL, NULL))                    \
    X(safetensors_save_null, "safetensors_save", NB_ERR_NULL, nb_safetensors_save(NULL, 1, (const char *[]){"a"}, (const nb_tensor *[]){F.a}, NULL)) \
    X(safetensors_save_duplicate, "safetensors_save", NB_ERR_VALUE,                                                      \
      nb_safetensors_save(tmp("d.st"), 2, (const char *[]){"a", "a"}, (const nb_tensor *[]){F.a, F.a}, NULL))           \
    X(safetensors_save_reserved_name, "safetensors_save", NB_ERR_VALUE,                                                  \
      nb_safetensors_save(tmp("d.st"), 1, (const char *[]){"__metadata__"}, (const nb_tensor *[]){F.a}, NULL))           \
    X(safetensors_save_checksum_key, "safetensors_save", NB_ERR_VALUE,                                                   \
      nb_safetensors_save(tmp("d.st"), 1, (const char *[]){"a"}, (const nb_tensor *[]){F.a}, (const char *[]){"nabla.crc32", "0", NULL})) \
    X(safetensors_save_no_dir, "safetensors_save", NB_ERR_IO,                                                            \
      nb_safetensors_save("/nonexistent-dir/x", 1, (const char *[]){"a"}, (const nb_tensor *[]){F.a}, NULL))             \
    X(safetensors_nul_name, "safetensors_load", NB_ERR_FORMAT, (nb_safetensors_load(files[F_ST_NUL]), nb_last_status()))  \
    X(safetensors_bad_json, "safetensors_load", NB_ERR_FORMAT, (nb_safetensors_load(files[F_ST_JSON]), nb_last_status())) \
    X(safetensors_bad_checksum, "safetensors_load", NB_ERR_FORMAT, (nb_safetensors_load(files[F_ST_CRC]), nb_last_status())) \
    X(safetensors_empty, "safetensors_load", NB_ERR_FORMAT, (nb_safetensors_load(files[F_EMPTY]), nb_last_status()))      \
    X(safetensors_missing, "safetensors_load", NB_ERR_IO, (nb_safetensors_load(files[F_MISSING]), nb_last_status()))      \
    X(safetensors_load_params_missing_name, "safetensors_load_params", NB_ERR_FORMAT, ({                                 \
          nb_params *q_ = nb_params_new();                                                                               \
          nb_params_add(q_, "other", NB_SHAPE(2, 3));                                                                    \
          nb_status s_ = nb_safetensors_load_params(q_, files[F_CKPT_PARAMS]);                                           \
          nb_params_free(q_);                                                                                            \
          s_;                                                                                                            \
      }))                                                                                                                \
    X(checkpoint_load_not_checkpoint, "checkpoint_load", NB_ERR_FORMAT,                                                  \
      nb_checkpoint_load(files[F_CKPT_PARAMS], ps, NULL, NULL, &(nb_train_state){0}))                                    \
    X(checkpoint_load_missing, "checkpoint_load", NB_ERR_IO, nb_checkpoint_load(files[F_MISSING], ps, NULL, NULL, &(nb_train_state){0})) \
    X(checkpoint_load_null, "checkpoint_load", NB_ERR_NULL, nb_checkpoint_load(NULL, ps, NULL, NULL, NULL))               \
    X(checkpoint_save_values, "checkpoint_save", NB_ERR_VALUE,                                                           \
      nb_checkpoint_save(tmp("c.ckpt"), ps, NULL, NULL, &(nb_train_state){.n_values = -1}))                              \
    X(checkpoint_save_epoch, "checkpoint_save", NB_ERR_VALUE,                                                            \
      nb_checkpoint_save(tmp("c.ckpt"), ps, NULL, NULL, &(nb_train_state){.epoch = -5}))                                 \
    X(checkpoint_save_step, "checkpoint_save", NB_ERR_VALUE, ({                                                          \
          adam->step = -2;                                                                                               \
          nb_checkpoint_save(tmp("c.ckpt"), ps, adam, NULL, &(nb_train_state){0});                                       \
      }))                                                                                                                \
    X(plot_svg_null, "plot_svg", NB_ERR_NULL, nb_plot_svg(tmp("p.svg"), NULL, NULL, NULL, 0, NULL))                       \
    X(plot_svg_mark_color, "plot_svg", NB_ERR_VALUE, ({                                                                  \
          const double v_[2] = {1, 2};                                                                                   \
          const nb_series s_ = {.name = "s", .x = v_, .y = v_, .n = 2};                                                  \
          const nb_plot_mark k_ = {.x = 1, .label = "m", .color = "red\"/><script>"};                                   \
          nb_plot_svg_marked(tmp("p.svg"), NULL, NULL, NULL, 1, &s_, 1, &k_);                                            \
      }))                                                                                                                \
    X(png_grid_i64, "png_grid", NB_ERR_DTYPE, nb_png_grid(tmp("g.png"), F.lab, 0, 0))

static nb_tensor *sum_fn(nb_ctx *c, nb_tensor *const *in, void *user) {
    (void)user;
    return nb_sum_all(c, in[0]);
}

typedef nb_tensor *(*tensor_fn)(fixture *f); /* cases use the suite's ctx */
typedef nb_status (*status_fn)(fixture *f);
typedef struct {
    const char *id, *op;
    nb_status want;
    tensor_fn tensor; /* one of the two is set */
    status_fn status;
} bad_case;

#define DEF_T(id, op, st, expr)                                                                                          \
    static nb_tensor *t_##id(fixture *f) {                                                                  \
        (void)f;                                                                                                         \
        return (expr);                                                                                                   \
    }
#define DEF_S(id, op, st, expr)                                                                                          \
    static nb_status s_##id(fixture *f) {                                                                   \
        (void)f;                                                                                                         \
        return (expr);                                                                                                   \
    }
TENSOR_CASES(DEF_T)
STATUS_CASES(DEF_S)
#define ROW_T(id, op, st, expr) {#id, op, st, t_##id, NULL},
#define ROW_S(id, op, st, expr) {#id, op, st, NULL, s_##id},
static const bad_case cases[] = {TENSOR_CASES(ROW_T) STATUS_CASES(ROW_S)};
#define N_CASES ((int)(sizeof cases / sizeof *cases))

static void setup(void) {
    ctx_setup();
    tmpdir_setup();
    persist = nb_tensor_new(NB_F32, NB_SHAPE(2, 3));
    ps = nb_params_new();
    cr_assert_not_null(nb_params_add(ps, "w", NB_SHAPE(2, 3)));
    adam = nb_optim_new(&nb_adam, ps, NULL);
    make_files();
}

static void teardown(void) {
    nb_optim_free(adam);
    nb_params_free(ps);
    nb_tensor_free(persist);
    tmpdir_teardown();
    ctx_teardown();
}

TestSuite(bad_input, .init = setup, .fini = teardown);

/* the context is usable again: an op, a backward and a gradient */
static void assert_context_works(const char *id) {
    nb_tensor *x = nb_full(ctx, NB_F64, NB_SHAPE(2, 2), 3.0);
    cr_assert_eq(nb_requires_grad(x, true), NB_OK, "%s: %s", id, nb_last_error());
    nb_tensor *loss = nb_sum_all(ctx, nb_mul(ctx, x, x));
    cr_assert_not_null(loss, "%s: the context does not work after clearing: %s", id, nb_ctx_error(ctx));
    cr_assert_eq(nb_backward(ctx, loss, NULL), NB_OK, "%s: backward after clearing: %s", id, nb_ctx_error(ctx));
    cr_assert_eq(nb_item(loss), 36.0, "%s", id);
    cr_assert_eq(nb_get(x->grad, 0), 6.0, "%s", id);
}

static void run_case(const bad_case *c) {
    fixture f;
    nb_ctx_reset(ctx);
    nb_clear_last_error();
    make_fixture(ctx, &f);
    adam->hp = nb_adam.defaults, adam->step = 0;
    bool failed;
    nb_status got;
    if (c->tensor) {
        nb_tensor *r = c->tensor(&f);
        failed = r == NULL;
        got = nb_ctx_status(ctx) != NB_OK ? nb_ctx_status(ctx) : nb_last_status();
    } else {
        got = c->status(&f);
        failed = got != NB_OK;
    }
    /* ops report on the context, context-free functions in the thread-local slot */
    const char *msg = nb_ctx_status(ctx) != NB_OK ? nb_ctx_error(ctx) : nb_last_error();
    /* expectations, not assertions: one run lists every case that misbehaves */
    cr_expect(failed, "%s: %s was accepted", c->id, c->op);
    cr_expect_eq(got, c->want, "%s: status %s, expected %s (%s)", c->id, nb_status_name(got), nb_status_name(c->want), msg);
    cr_expect(strstr(msg, c->op), "%s: message \"%s\" does not name %s", c->id, msg, c->op);
    nb_ctx_set_limit(ctx, 0);
    nb_ctx_clear_error(ctx);
    nb_clear_last_error();
    cr_assert_eq(nb_ctx_status(ctx), NB_OK);
    assert_context_works(c->id);
}

Test(bad_input, catalogue) {
    cr_assert_geq(N_CASES, 150, "the catalogue holds %d cases", N_CASES);
    for (int i = 0; i < N_CASES; i++) run_case(&cases[i]);
    cr_log_info("%d bad-input cases refused with a message naming the function", N_CASES);
}

/* The defects this catalogue was written for, checked for their consequence, not only the error. */
Test(bad_input, sizes_that_used_to_overflow) {
    /* reshape (4) -> (2^62+1, 4) used to pass and the next sum segfaulted */
    nb_tensor *x = nb_zeros(ctx, NB_F32, NB_SHAPE(4));
    cr_assert_null(nb_reshape(ctx, x, NB_SHAPE(((int64_t)1 << 62) + 1, 4)));
    cr_assert_null(nb_sum_all(ctx, NULL), "a failed reshape propagates NULL");
    nb_ctx_clear_error(ctx);
    /* a slice with step INT64_MAX takes one element */
    nb_tensor *s = nb_slice(ctx, nb_arange(ctx, NB_F64, 0, 5, 1), 0, 1, 5, INT64_MAX);
    cr_assert_not_null(s, "%s", nb_ctx_error(ctx));
    cr_assert_eq(s->numel, 1);
    cr_assert_eq(nb_get(s, 0), 1.0);
    nb_requires_grad(x, true);
    nb_tensor *t = nb_slice(ctx, x, 0, 0, 4, INT64_MAX);
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, t), NULL), NB_OK, "%s", nb_ctx_error(ctx));
    cr_assert_eq(nb_get(x->grad, 0), 1.0);
    cr_assert_eq(nb_get(x->grad, 1), 0.0);
    /* a value that is no nb_dtype has no size (it said 8) */
    cr_assert_eq(nb_dtype_size((nb_dtype)9), 0);
    cr_assert_eq(nb_dtype_size(NB_F32) + nb_dtype_size(NB_F64) + nb_dtype_size(NB_I64), 20);
    /* i64 conversions in range still work, to the last representable values */
    nb_tensor *i = nb_full(ctx, NB_I64, NB_SHAPE(1), -9223372036854775808.0);
    cr_assert_not_null(i);
    cr_assert_eq(((int64_t *)i->data)[0], INT64_MIN);
    nb_tensor *r = nb_arange(ctx, NB_I64, 0, 5, 2);
    cr_assert_not_null(r, "%s", nb_ctx_error(ctx));
    cr_assert_eq(r->numel, 3);
    cr_assert_eq(((int64_t *)r->data)[2], 4);
}
