/* Elman/LSTM/GRU: unrolled outputs against torch.nn.RNN/LSTM/GRU, gradients through time,
 * second derivatives of the LSTM, the cell functions against the unroll, errors. */
#include "nn_test_util.h"

static nb_ctx *ctx;
static void setup(void) { ctx = nb_ctx_new(); nb_ctx_seed(ctx, 17); }
static void teardown(void) { nb_ctx_free(ctx); }
TestSuite(rnn, .init = setup, .fini = teardown, .timeout = 60);

enum { T = 3, N = 2, F = 4, H = 3 };
static const int GATES[3] = {1, 4, 3};

/* inputs in nn_ref.py's order: x, h0, c0, w_ih, w_hh, b_ih, b_hh */
static void ref_inputs(nb_rnn_kind kind, nb_tensor **in, bool grad) {
    int64_t G = GATES[kind] * H;
    in[0] = ref_tensor(ctx, NB_SHAPE(T, N, F), 2.3, grad);
    in[1] = ref_tensor(ctx, NB_SHAPE(N, H), 2.8, grad);
    in[2] = ref_tensor(ctx, NB_SHAPE(N, H), 2.9, grad && kind == NB_LSTM); /* c0, LSTM only */
    in[3] = ref_tensor(ctx, NB_SHAPE(G, F), 2.4, grad);
    in[4] = ref_tensor(ctx, NB_SHAPE(G, H), 2.5, grad);
    in[5] = ref_tensor(ctx, NB_SHAPE(G), 2.6, grad);
    in[6] = ref_tensor(ctx, NB_SHAPE(G), 2.7, grad);
}

Test(rnn, unroll_matches_pytorch) {
    const double *refs[3] = {REF_RNN_Y, REF_LSTM_Y, REF_GRU_Y};
    for (int k = 0; k < 3; k++) {
        nb_tensor *in[7], *hn = NULL, *cn = NULL;
        ref_inputs((nb_rnn_kind)k, in, false);
        nb_tensor *y = nb_rnn_unroll(ctx, (nb_rnn_kind)k, in[0], in[1], k == NB_LSTM ? in[2] : NULL, in[3], in[4], in[5], in[6], &hn, &cn);
        assert_values(y, refs[k], T * N * H, 1e-10);
        cr_assert(y->shape[0] == T && y->shape[1] == N && y->shape[2] == H);
        /* the last state is the last output */
        assert_values(hn, refs[k] + (T - 1) * N * H, N * H, 1e-10);
        if (k == NB_LSTM) assert_values(cn, REF_LSTM_C, N * H, 1e-10);
        else cr_assert_null(cn);
    }
}

Test(rnn, cells_equal_one_unrolled_step) {
    for (int k = 0; k < 3; k++) {
        nb_tensor *in[7], *c1 = NULL, *h1;
        ref_inputs((nb_rnn_kind)k, in, false);
        nb_tensor *x0 = nb_squeeze(ctx, nb_slice(ctx, in[0], 0, 0, 1, 1), 0);
        if (k == NB_RNN_TANH) h1 = nb_rnn_cell(ctx, x0, in[1], in[3], in[4], in[5], in[6]);
        else if (k == NB_LSTM) h1 = nb_lstm_cell(ctx, x0, in[1], in[2], in[3], in[4], in[5], in[6], &c1);
        else h1 = nb_gru_cell(ctx, x0, in[1], in[3], in[4], in[5], in[6]);
        const double *refs[3] = {REF_RNN_Y, REF_LSTM_Y, REF_GRU_Y};
        assert_values(h1, refs[k], N * H, 1e-10);
        if (k == NB_LSTM) cr_assert_not_null(c1);
    }
}

static nb_tensor *f_unroll(nb_ctx *c, nb_tensor *const *in, void *u) {
    nb_rnn_kind kind = *(nb_rnn_kind *)u;
    nb_tensor *hn, *cn;
    nb_tensor *c0 = kind == NB_LSTM ? in[2] : NULL;
    nb_tensor *y = nb_rnn_unroll(c, kind, in[0], in[1], c0, in[3], in[4], in[5], in[6], &hn, &cn);
    if (kind != NB_LSTM) return y;
    /* all outputs, plus the final cell state, so every path through time is checked */
    nb_tensor *sq = nb_sum_all(c, nb_mul(c, y, y));
    return nb_add(c, sq, nb_sum_all(c, cn));
}

static nb_tensor *f_unroll_nobias(nb_ctx *c, nb_tensor *const *in, void *u) {
    return nb_rnn_unroll(c, *(nb_rnn_kind *)u, in[0], NULL, NULL, in[1], in[2], NULL, NULL, NULL, NULL);
}

Test(rnn, gradients_through_time) {
    for (int k = 0; k < 3; k++) {
        nb_rnn_kind kind = (nb_rnn_kind)k;
        nb_tensor *in[7];
        ref_inputs(kind, in, true);
        check_grads(ctx, f_unroll, 7, in, &kind, kind == NB_LSTM);
    }
    /* without biases and initial state */
    nb_rnn_kind kind = NB_GRU;
    nb_tensor *in[3] = {rand_leaf(ctx, NB_SHAPE(2, 1, 2)), rand_leaf(ctx, NB_SHAPE(6, 2)), rand_leaf(ctx, NB_SHAPE(6, 2))};
    check_grads(ctx, f_unroll_nobias, 3, in, &kind, false);
}

Test(rnn, errors) {
    nb_tensor *x = nb_zeros(ctx, NB_F64, NB_SHAPE(T, N, F)), *w_ih = nb_zeros(ctx, NB_F64, NB_SHAPE(4 * H, F));
    nb_tensor *w_hh = nb_zeros(ctx, NB_F64, NB_SHAPE(3 * H, H)); /* GRU-sized, used as LSTM */
    ASSERT_ERROR(ctx, nb_rnn_unroll(ctx, NB_LSTM, x, NULL, NULL, w_ih, w_hh, NULL, NULL, NULL, NULL), NB_ERR_SHAPE, "rnn_unroll",
                 "(12,4)", "(9,3)", "4*H");
    ASSERT_ERROR(ctx, nb_rnn_unroll(ctx, NB_GRU, nb_zeros(ctx, NB_F64, NB_SHAPE(N, F)), NULL, NULL, w_ih, w_hh, NULL, NULL, NULL, NULL),
                 NB_ERR_SHAPE, "(2,4)", "(T, N, F)");
    ASSERT_ERROR(ctx, nb_lstm_cell(ctx, nb_zeros(ctx, NB_F64, NB_SHAPE(N, F)), nb_zeros(ctx, NB_F64, NB_SHAPE(N, 5)),
                                   nb_zeros(ctx, NB_F64, NB_SHAPE(N, H)), w_ih, nb_zeros(ctx, NB_F64, NB_SHAPE(4 * H, H)), NULL, NULL, NULL),
                 NB_ERR_SHAPE, "lstm_cell", "hidden (2,5)");
}
