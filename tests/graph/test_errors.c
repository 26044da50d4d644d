/* Error reporting: one test per category, each checking the status and what the message says. */
#include "common.h"

#include <pthread.h>
#include <string.h>

TestSuite(errors, .init = ctx_setup, .fini = ctx_teardown);

/* the context's message contains every fragment */
#define assert_error(status, ...)                                                                      \
    do {                                                                                               \
        cr_assert_eq(nb_ctx_status(ctx), (status), "status %s, message: %s",                          \
                     nb_status_name(nb_ctx_status(ctx)), nb_ctx_error(ctx));                           \
        const char *frag_[] = {__VA_ARGS__};                                                           \
        for (size_t i_ = 0; i_ < sizeof frag_ / sizeof *frag_; i_++)                                   \
            cr_assert(strstr(nb_ctx_error(ctx), frag_[i_]), "message \"%s\" lacks \"%s\"", nb_ctx_error(ctx), frag_[i_]); \
    } while (0)

Test(errors, shape_mismatch_in_matmul) {
    nb_tensor *y = nb_matmul(ctx, nb_zeros(ctx, NB_F32, NB_SHAPE(3, 4)), nb_zeros(ctx, NB_F32, NB_SHAPE(5, 6)));
    cr_assert_null(y);
    assert_error(NB_ERR_SHAPE, "matmul", "(3,4) and (5,6)");
    cr_assert_eq(nb_last_status(), NB_ERR_SHAPE);
    cr_assert(strstr(nb_last_error(), "(3,4) and (5,6)"));
    nb_ctx_reset(ctx);
    cr_assert_null(nb_linear(ctx, nb_zeros(ctx, NB_F32, NB_SHAPE(2, 3)), nb_zeros(ctx, NB_F32, NB_SHAPE(4, 5)), NULL));
    assert_error(NB_ERR_SHAPE, "linear", "(2,3)", "(4,5)");
}

Test(errors, incompatible_broadcast) {
    cr_assert_null(nb_add(ctx, nb_zeros(ctx, NB_F64, NB_SHAPE(3, 4)), nb_zeros(ctx, NB_F64, NB_SHAPE(2, 4))));
    assert_error(NB_ERR_SHAPE, "add", "(3,4)", "(2,4)", "broadcast");
    nb_ctx_reset(ctx);
    cr_assert_null(nb_expand(ctx, nb_zeros(ctx, NB_F64, NB_SHAPE(3)), NB_SHAPE(2, 4)));
    assert_error(NB_ERR_SHAPE, "expand", "(3)", "(2,4)");
}

Test(errors, dtype_mix) {
    cr_assert_null(nb_mul(ctx, nb_zeros(ctx, NB_F32, NB_SHAPE(2)), nb_zeros(ctx, NB_F64, NB_SHAPE(2))));
    assert_error(NB_ERR_DTYPE, "mul", "f32 and f64");
    nb_ctx_reset(ctx);
    cr_assert_null(nb_exp(ctx, nb_zeros(ctx, NB_I64, NB_SHAPE(2))));
    assert_error(NB_ERR_DTYPE, "exp", "i64");
}

Test(errors, axis_out_of_range) {
    nb_tensor *x = nb_zeros(ctx, NB_F64, NB_SHAPE(2, 3));
    cr_assert_null(nb_sum(ctx, x, 1, (int[]){3}, false));
    assert_error(NB_ERR_AXIS, "sum", "axis 3", "(2,3)");
    nb_ctx_reset(ctx);
    x = nb_zeros(ctx, NB_F64, NB_SHAPE(2, 3));
    cr_assert_null(nb_softmax(ctx, x, -3));
    assert_error(NB_ERR_AXIS, "softmax", "axis -3");
    nb_ctx_reset(ctx);
    x = nb_zeros(ctx, NB_F64, NB_SHAPE(2, 3));
    cr_assert_null(nb_permute(ctx, x, (int[]){0, 0}));
    assert_error(NB_ERR_AXIS, "permute");
}

Test(errors, null_arguments) {
    cr_assert_null(nb_exp(ctx, NULL));
    assert_error(NB_ERR_NULL, "exp", "NULL");
    cr_assert_null(nb_exp(NULL, nb_zeros(ctx, NB_F64, NB_SHAPE(1))));
    cr_assert_eq(nb_last_status(), NB_ERR_NULL);
    cr_assert(strstr(nb_last_error(), "context is NULL"), "%s", nb_last_error());
    cr_assert_eq(nb_backward(ctx, NULL, NULL), NB_ERR_NULL);  /* keeps the first error */
    cr_assert_eq(nb_requires_grad(NULL, true), NB_ERR_NULL);
    cr_assert_eq(nb_graph_dot(ctx, NULL, stdout), NB_ERR_NULL);
}

Test(errors, invalid_reshape) {
    nb_tensor *x = nb_zeros(ctx, NB_F64, NB_SHAPE(2, 3));
    cr_assert_null(nb_reshape(ctx, x, NB_SHAPE(4, 2)));
    assert_error(NB_ERR_SHAPE, "reshape", "(2,3)", "6 elements", "(4,2)");
    nb_ctx_reset(ctx);
    x = nb_zeros(ctx, NB_F64, NB_SHAPE(2, 3));
    cr_assert_null(nb_reshape(ctx, x, NB_SHAPE(-1, -1)));
    assert_error(NB_ERR_SHAPE, "reshape", "(-1,-1)");
}

Test(errors, class_label_out_of_range) {
    nb_tensor *logits = nb_zeros(ctx, NB_F32, NB_SHAPE(3, 5));
    nb_tensor *labels = nb_from(ctx, NB_I64, NB_SHAPE(3), (int64_t[]){0, 4, 5});
    cr_assert_null(nb_cross_entropy(ctx, logits, labels, NB_REDUCE_MEAN));
    assert_error(NB_ERR_INDEX, "cross_entropy", "label 5", "sample 2", "[0, 5)");
    nb_ctx_reset(ctx);
    logits = nb_zeros(ctx, NB_F32, NB_SHAPE(3, 5));
    labels = nb_from(ctx, NB_I64, NB_SHAPE(3), (int64_t[]){0, -1, 1});
    cr_assert_null(nb_nll_loss(ctx, logits, labels, NB_REDUCE_MEAN));
    assert_error(NB_ERR_INDEX, "nll_loss", "label -1", "sample 1");
}

Test(errors, arena_out_of_memory) {
    nb_ctx_set_limit(ctx, 4u << 20);
    cr_assert_null(nb_zeros(ctx, NB_F64, NB_SHAPE(1000, 1000)));  /* 8 MB > 4 MB */
    assert_error(NB_ERR_NOMEM, "arena", "8000");
    /* the context stays usable after a reset */
    nb_ctx_reset(ctx);
    cr_assert_eq(nb_ctx_status(ctx), NB_OK);
    nb_tensor *t = nb_ones(ctx, NB_F64, NB_SHAPE(1000, 100));
    cr_assert_not_null(t, "%s", nb_ctx_error(ctx));
    cr_assert_eq(nb_item(nb_sum_all(ctx, t)), 1e5);
    cr_assert(nb_ctx_bytes_peak(ctx) <= 4u << 20);
}

Test(errors, failed_expression_keeps_first_error) {
    nb_tensor *a = nb_ones(ctx, NB_F64, NB_SHAPE(3, 4)), *b = nb_ones(ctx, NB_F64, NB_SHAPE(5, 6));
    nb_tensor *m = nb_matmul(ctx, a, b);                  /* fails first */
    nb_tensor *r = nb_reshape(ctx, a, NB_SHAPE(7));       /* fails too, later */
    nb_tensor *y = nb_exp(ctx, nb_add(ctx, m, r));
    cr_assert_null(y);
    assert_error(NB_ERR_SHAPE, "matmul", "(3,4) and (5,6)");
    cr_assert_null(nb_sum_all(ctx, y));
    cr_assert_eq(nb_backward(ctx, y, NULL), NB_ERR_SHAPE);
    assert_error(NB_ERR_SHAPE, "matmul");
    /* the thread-local error holds the latest failure (the reshape) */
    cr_assert(strstr(nb_last_error(), "reshape"), "%s", nb_last_error());
    nb_ctx_clear_error(ctx);
    cr_assert_eq(nb_ctx_status(ctx), NB_OK);
    cr_assert_str_eq(nb_ctx_error(ctx), "");
}

static void *fail_in_thread(void *arg) {
    (void)arg;
    nb_tensor_new(NB_F32, NB_SHAPE(2, -3));
    static char msg[512];
    snprintf(msg, sizeof msg, "%d %s", (int)nb_last_status(), nb_last_error());
    return msg;
}

Test(errors, thread_local_last_error) {
    nb_clear_last_error();
    cr_assert_eq(nb_last_status(), NB_OK);
    cr_assert_str_eq(nb_last_error(), "");
    pthread_t th;
    void *res;
    pthread_create(&th, NULL, fail_in_thread, NULL);
    pthread_join(th, &res);
    cr_assert(strstr(res, "tensor_new") && strstr(res, "(2,-3)"), "%s", (char *)res);
    cr_assert_eq(nb_last_status(), NB_OK, "another thread's error leaked: %s", nb_last_error());
    nb_tensor *t = nb_tensor_new(NB_F32, NB_SHAPE(2, -3));
    cr_assert_null(t);
    cr_assert_eq(nb_last_status(), NB_ERR_SHAPE);
    cr_assert(strstr(nb_last_error(), "(2,-3)"));
    cr_assert_str_eq(nb_status_name(NB_ERR_SHAPE), "shape error");
}

Test(errors, backward_misuse) {
    nb_tensor *c = nb_ones(ctx, NB_F64, NB_SHAPE(2));
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, c), NULL), NB_ERR_STATE);
    assert_error(NB_ERR_STATE, "backward", "does not require grad");
    nb_ctx_reset(ctx);
    nb_tensor *x = rand_leaf(ctx, NB_SHAPE(2, 3));
    cr_assert_eq(nb_backward(ctx, nb_exp(ctx, x), NULL), NB_ERR_SHAPE);
    assert_error(NB_ERR_SHAPE, "backward", "(2,3)");
    nb_ctx_reset(ctx);
    x = rand_leaf(ctx, NB_SHAPE(2, 3));
    cr_assert_eq(nb_backward(ctx, nb_exp(ctx, x), nb_ones(ctx, NB_F64, NB_SHAPE(3, 2))), NB_ERR_SHAPE);
    assert_error(NB_ERR_SHAPE, "(3,2)", "(2,3)");
}

/* mul whose backward for input 1 is off at element 2 */
static nb_status wrong_bw(nb_ctx *c, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    gin[0] = nb_mul(c, g, n->in[1]);
    nb_tensor *bump = nb_zeros_like(c, n->in[1]);
    nb_set(bump, 2, 0.5);
    gin[1] = nb_add(c, nb_mul(c, g, n->in[0]), bump);
    return NB_OK;
}
static const nb_op OP_WRONG = {"wrong_mul", wrong_bw, NB_DIFFERENTIABLE};

static nb_tensor *wrong_mul(nb_ctx *c, nb_tensor *const *in, void *u) {
    nb_tensor *out;
    NB_NO_GRAD(c) { out = nb_mul(c, in[0], in[1]); }
    nb_record(c, &OP_WRONG, out, 2, in);
    return out;
}

Test(errors, gradcheck_reports_input_and_element) {
    nb_tensor *in[2] = {rand_leaf(ctx, NB_SHAPE(4)), rand_leaf(ctx, NB_SHAPE(4))};
    nb_gradcheck_report rep;
    nb_gradcheck_opts full = NB_GRADCHECK_DEFAULTS;
    full.n_proj = 0;  /* the whole Jacobian: the bad entry is found exactly */
    cr_assert_eq(nb_gradcheck(ctx, wrong_mul, 2, in, NULL, &full, &rep), NB_ERR_NUMERIC);
    cr_assert(!rep.ok);
    cr_assert_eq(rep.worst_input, 1);
    cr_assert_eq(rep.worst_index, 2);
    assert_close(rep.analytic - rep.numeric, 0.5, 1e-6, 0);
    cr_assert(strstr(rep.message, "input 1") && strstr(rep.message, "element 2"), "%s", rep.message);
    cr_assert_eq(nb_last_status(), NB_ERR_NUMERIC);
    cr_assert(strstr(nb_last_error(), "input 1"), "%s", nb_last_error());
    cr_assert(rep.max_abs_err[0] < 1e-8 && rep.max_abs_err[1] > 0.4);
    /* the fast (projected) mode finds it too */
    cr_assert_eq(nb_gradcheck(ctx, wrong_mul, 2, in, NULL, NULL, &rep), NB_ERR_NUMERIC);
    cr_assert_eq(rep.worst_input, 1);
    /* a failing function is reported, not hidden */
    nb_tensor *f32 = nb_ones(ctx, NB_F32, NB_SHAPE(2));
    nb_requires_grad(f32, true);
    cr_assert_eq(nb_gradcheck(ctx, wrong_mul, 1, &f32, NULL, NULL, &rep), NB_ERR_DTYPE);
    assert_error(NB_ERR_DTYPE, "gradcheck", "f32");
    nb_ctx_reset(ctx);
    nb_tensor *bad[2] = {rand_leaf(ctx, NB_SHAPE(4)), rand_leaf(ctx, NB_SHAPE(3))};
    cr_assert_eq(nb_gradcheck(ctx, wrong_mul, 2, bad, NULL, NULL, &rep), NB_ERR_SHAPE);
    cr_assert(strstr(rep.message, "(4) and (3)"), "%s", rep.message);
}

/* ---- nb_record: a user's op is checked when it is recorded ------------------------------- */
static nb_status pass_bw(nb_ctx *c, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    (void)c, (void)n;
    gin[0] = g;
    return NB_OK;
}
static const nb_op OP_PASS = {"pass", pass_bw, NB_DIFFERENTIABLE};

static void assert_record_refused(nb_node *n, nb_status want, const char *needle) {
    cr_assert_null(n, "nb_record accepted: %s", needle);
    assert_error(want, "record", needle);
    nb_ctx_reset(ctx);
}

Test(errors, record_refuses_what_would_corrupt_the_walk) {
    nb_tensor *x = rand_leaf(ctx, NB_SHAPE(3));
    static const nb_op noname = {NULL, pass_bw, NB_DIFFERENTIABLE};
    assert_record_refused(nb_record(ctx, &noname, nb_zeros_like(ctx, x), 1, &x), NB_ERR_NULL, "no name");
    x = rand_leaf(ctx, NB_SHAPE(3));
    assert_record_refused(nb_record(ctx, &OP_PASS, nb_zeros_like(ctx, x), -1, &x), NB_ERR_VALUE, "n_in = -1");
    x = rand_leaf(ctx, NB_SHAPE(3));
    static const nb_op baddiff = {"baddiff", pass_bw, (nb_differentiability)7};
    assert_record_refused(nb_record(ctx, &baddiff, nb_zeros_like(ctx, x), 1, &x), NB_ERR_VALUE, "differentiability 7");
    /* a long-lived output would keep pointing at its node after the reset */
    x = rand_leaf(ctx, NB_SHAPE(3));
    nb_tensor *keep = nb_tensor_new(NB_F64, NB_SHAPE(3));
    assert_record_refused(nb_record(ctx, &OP_PASS, keep, 1, &x), NB_ERR_STATE, "long-lived");
    cr_assert_null(keep->node);
    nb_tensor_free(keep);
    /* recording twice would send the gradient down two paths (2 instead of 1) */
    x = rand_leaf(ctx, NB_SHAPE(3));
    nb_tensor *y = nb_zeros_like(ctx, x);
    cr_assert_not_null(nb_record(ctx, &OP_PASS, y, 1, &x));
    assert_record_refused(nb_record(ctx, &OP_PASS, y, 1, &x), NB_ERR_STATE, "already recorded as the output of pass");
    x = rand_leaf(ctx, NB_SHAPE(3));
    assert_record_refused(nb_record(ctx, &OP_PASS, nb_mul_scalar(ctx, x, 2.0), 1, &x), NB_ERR_STATE,
                          "already recorded as the output of affine");
    /* a leaf recorded as its own output would be a cycle */
    x = rand_leaf(ctx, NB_SHAPE(3));
    assert_record_refused(nb_record(ctx, &OP_PASS, x, 1, &x), NB_ERR_STATE, "also input 0");
    /* an input or output of another context or of an earlier step */
    nb_ctx *other = nb_ctx_new();
    nb_tensor *xo = nb_zeros(other, NB_F64, NB_SHAPE(3));
    cr_assert_eq(nb_requires_grad(xo, true), NB_OK);
    x = rand_leaf(ctx, NB_SHAPE(3));
    assert_record_refused(nb_record(ctx, &OP_PASS, nb_zeros_like(ctx, x), 1, &xo), NB_ERR_STATE, "another context");
    x = rand_leaf(ctx, NB_SHAPE(3));
    assert_record_refused(nb_record(ctx, &OP_PASS, nb_zeros(other, NB_F64, NB_SHAPE(3)), 1, &x), NB_ERR_STATE,
                          "another context");
    nb_ctx_free(other);
    /* a differentiable op cannot give an i64 output */
    x = rand_leaf(ctx, NB_SHAPE(3));
    assert_record_refused(nb_record(ctx, &OP_PASS, nb_zeros(ctx, NB_I64, NB_SHAPE(3)), 1, &x), NB_ERR_DTYPE,
                          "i64 output");
    /* and a correct call still records */
    x = rand_leaf(ctx, NB_SHAPE(3));
    y = nb_zeros_like(ctx, x);
    cr_assert_not_null(nb_record(ctx, &OP_PASS, y, 1, &x), "%s", nb_ctx_error(ctx));
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, y), NULL), NB_OK);
    for (int i = 0; i < 3; i++) cr_assert_eq(nb_get(x->grad, i), 1.0);
}

/* A rule or a hook whose result comes from an earlier step or another context is refused as
 * ops refuse such tensors (its memory may be reused), and a rule's status must be a status. */
static nb_tensor *stale_g;
static nb_status stale_bw(nb_ctx *c, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    (void)c, (void)n, (void)g;
    gin[0] = stale_g;
    return NB_OK;
}
static nb_status odd_status_bw(nb_ctx *c, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    (void)c, (void)n, (void)g, (void)gin;
    return (nb_status)999;
}
static nb_tensor *stale_hook(nb_ctx *c, nb_tensor *g, void *u) {
    (void)c, (void)g, (void)u;
    return stale_g;
}

Test(errors, backward_refuses_stale_rule_and_hook_results) {
    static const nb_op stale_op = {"stale_op", stale_bw, NB_DIFFERENTIABLE};
    static const nb_op odd_op = {"odd_op", odd_status_bw, NB_DIFFERENTIABLE};
    nb_ctx *other = nb_ctx_new();
    stale_g = nb_ones(other, NB_F64, NB_SHAPE(3));
    nb_tensor *x = rand_leaf(ctx, NB_SHAPE(3));
    nb_tensor *y = nb_zeros_like(ctx, x);
    cr_assert_not_null(nb_record(ctx, &stale_op, y, 1, &x));
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, y), NULL), NB_ERR_STATE);
    assert_error(NB_ERR_STATE, "stale_op", "another context");
    cr_assert(x->grad == NULL || nb_get(x->grad, 0) == 0.0, "the stale gradient reached .grad");
    nb_ctx_reset(ctx);
    x = rand_leaf(ctx, NB_SHAPE(3));
    cr_assert_eq(nb_add_hook(ctx, x, stale_hook, NULL), NB_OK);
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, nb_exp(ctx, x)), NULL), NB_ERR_STATE);
    assert_error(NB_ERR_STATE, "hook", "another context");
    nb_ctx_reset(ctx);
    x = rand_leaf(ctx, NB_SHAPE(3));
    y = nb_zeros_like(ctx, x);
    cr_assert_not_null(nb_record(ctx, &odd_op, y, 1, &x));
    cr_assert_eq(nb_backward(ctx, nb_sum_all(ctx, y), NULL), NB_ERR_STATE);
    assert_error(NB_ERR_STATE, "odd_op", "returned 999");
    nb_ctx_free(other);
}
