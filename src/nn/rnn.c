/* Recurrent cells (Elman, LSTM, GRU) with PyTorch's equations and gate order, composed from
 * ops, and the unroll over a sequence. Each step's work is split into the input projection
 * (x w_ih^T + b_ih, done for all time steps in one matrix product by the unroll) and the
 * recurrent part below. */
#include "../internal.h"

static const int GATES[3] = {1, 4, 3}; /* per nb_rnn_kind: tanh, LSTM (i f g o), GRU (r z n) */
static const char *const CELL_NAME[3] = {"rnn_cell", "lstm_cell", "gru_cell"};

static nb_tensor *gate(nb_ctx *ctx, nb_tensor *t, int k, int64_t H) { return nb_slice(ctx, t, -1, k * H, (k + 1) * H, 1); }

/* One step from the input projection xp (N, G*H). Returns h'; *c_out = c' for LSTM. */
static nb_tensor *step(nb_ctx *ctx, nb_rnn_kind kind, nb_tensor *xp, nb_tensor *h, nb_tensor *c, nb_tensor *w_hh,
                       nb_tensor *b_hh, nb_tensor **c_out) {
    const int64_t H = w_hh->shape[1];
    nb_tensor *hp = nb_linear(ctx, h, w_hh, b_hh);
    switch (kind) {
    case NB_RNN_TANH: return nb_tanh(ctx, nb_add(ctx, xp, hp));
    case NB_LSTM: {
        nb_tensor *g = nb_add(ctx, xp, hp);
        nb_tensor *i = nb_sigmoid(ctx, gate(ctx, g, 0, H)), *f = nb_sigmoid(ctx, gate(ctx, g, 1, H));
        nb_tensor *cand = nb_tanh(ctx, gate(ctx, g, 2, H)), *o = nb_sigmoid(ctx, gate(ctx, g, 3, H));
        nb_tensor *c2 = nb_add(ctx, nb_mul(ctx, f, c), nb_mul(ctx, i, cand));
        if (c_out) *c_out = c2;
        return nb_mul(ctx, o, nb_tanh(ctx, c2));
    }
    case NB_GRU: {
        nb_tensor *r = nb_sigmoid(ctx, nb_add(ctx, gate(ctx, xp, 0, H), gate(ctx, hp, 0, H)));
        nb_tensor *z = nb_sigmoid(ctx, nb_add(ctx, gate(ctx, xp, 1, H), gate(ctx, hp, 1, H)));
        nb_tensor *n = nb_tanh(ctx, nb_add(ctx, gate(ctx, xp, 2, H), nb_mul(ctx, r, gate(ctx, hp, 2, H))));
        return nb_add(ctx, n, nb_mul(ctx, z, nb_sub(ctx, h, n))); /* (1-z)*n + z*h */
    }
    }
    return NULL;
}

/* Shapes: x (..., F), h (N, H), c (N, H) for LSTM, w_ih (G*H, F), w_hh (G*H, H), biases (G*H). */
static bool check_cell(nb_ctx *ctx, nb_rnn_kind kind, const char *op, const nb_tensor *x, const nb_tensor *h,
                       const nb_tensor *c, const nb_tensor *w_ih, const nb_tensor *w_hh, const nb_tensor *b_ih,
                       const nb_tensor *b_hh) {
    char s[6][96];
    const int64_t G = GATES[kind];
    bool ok = w_hh->ndim == 2 && w_ih->ndim == 2 && w_hh->shape[0] == G * w_hh->shape[1] &&
              w_ih->shape[0] == w_hh->shape[0] && x->ndim >= 1 && x->shape[x->ndim - 1] == w_ih->shape[1];
    const int64_t H = w_hh->ndim == 2 ? w_hh->shape[1] : -1;
    const nb_tensor *st[2] = {h, c};
    for (int i = 0; i < 2 && ok; i++)
        ok = !st[i] || (st[i]->ndim == 2 && st[i]->shape[1] == H && st[i]->shape[0] == x->shape[x->ndim > 1 ? x->ndim - 2 : 0]);
    const nb_tensor *bs[2] = {b_ih, b_hh};
    for (int i = 0; i < 2 && ok; i++) ok = !bs[i] || (bs[i]->ndim == 1 && bs[i]->shape[0] == G * H);
    if (!ok)
        return nb__fail(ctx, NB_ERR_SHAPE,
                        "%s: shapes do not fit: input %s, hidden %s, w_ih %s, w_hh %s, b_ih %s, b_hh %s "
                        "(expected (N, F), (N, H), (%lld*H, F), (%lld*H, H), (%lld*H))",
                        op, nb_shape_str(x, s[0], 96), h ? nb_shape_str(h, s[1], 96) : "NULL", nb_shape_str(w_ih, s[2], 96),
                        nb_shape_str(w_hh, s[3], 96), b_ih ? nb_shape_str(b_ih, s[4], 96) : "NULL",
                        b_hh ? nb_shape_str(b_hh, s[5], 96) : "NULL", (long long)G, (long long)G, (long long)G),
               false;
    const nb_tensor *all[7] = {x, h, c, w_ih, w_hh, b_ih, b_hh};
    for (int i = 0; i < 7; i++)
        if (all[i] && (all[i]->dtype != x->dtype || x->dtype == NB_I64))
            return nb__fail(ctx, NB_ERR_DTYPE, "%s: input, states, weights and biases must share one float dtype, got %s and %s",
                            op, nb_dtype_name(x->dtype), nb_dtype_name(all[i]->dtype)),
                   false;
    return true;
}

static nb_tensor *cell(nb_ctx *ctx, nb_rnn_kind kind, nb_tensor *x, nb_tensor *h, nb_tensor *c, nb_tensor *w_ih,
                       nb_tensor *w_hh, nb_tensor *b_ih, nb_tensor *b_hh, nb_tensor **c_out) {
    const char *op = CELL_NAME[kind];
    if (nb__null(ctx, op, 4, x, h, w_ih, w_hh) || (kind == NB_LSTM && nb__null(ctx, op, 1, c))) return NULL;
    if (x->ndim != 2) {
        char b[128];
        return nb__fail(ctx, NB_ERR_SHAPE, "%s: input %s must be (N, F)", op, nb_shape_str(x, b, sizeof b));
    }
    if (!check_cell(ctx, kind, op, x, h, c, w_ih, w_hh, b_ih, b_hh)) return NULL;
    return step(ctx, kind, nb_linear(ctx, x, w_ih, b_ih), h, c, w_hh, b_hh, c_out);
}

nb_tensor *nb_rnn_cell(nb_ctx *ctx, nb_tensor *x, nb_tensor *h, nb_tensor *w_ih, nb_tensor *w_hh, nb_tensor *b_ih,
                       nb_tensor *b_hh) {
    return cell(ctx, NB_RNN_TANH, x, h, NULL, w_ih, w_hh, b_ih, b_hh, NULL);
}
nb_tensor *nb_lstm_cell(nb_ctx *ctx, nb_tensor *x, nb_tensor *h, nb_tensor *c, nb_tensor *w_ih, nb_tensor *w_hh,
                        nb_tensor *b_ih, nb_tensor *b_hh, nb_tensor **c_out) {
    return cell(ctx, NB_LSTM, x, h, c, w_ih, w_hh, b_ih, b_hh, c_out);
}
nb_tensor *nb_gru_cell(nb_ctx *ctx, nb_tensor *x, nb_tensor *h, nb_tensor *w_ih, nb_tensor *w_hh, nb_tensor *b_ih,
                       nb_tensor *b_hh) {
    return cell(ctx, NB_GRU, x, h, NULL, w_ih, w_hh, b_ih, b_hh, NULL);
}

nb_tensor *nb_rnn_unroll(nb_ctx *ctx, nb_rnn_kind kind, nb_tensor *x, nb_tensor *h0, nb_tensor *c0, nb_tensor *w_ih,
                         nb_tensor *w_hh, nb_tensor *b_ih, nb_tensor *b_hh, nb_tensor **h_last, nb_tensor **c_last) {
    if ((unsigned)kind > NB_GRU) return nb__fail(ctx, NB_ERR_VALUE, "rnn_unroll: unknown cell kind %d", (int)kind);
    if (nb__null(ctx, "rnn_unroll", 3, x, w_ih, w_hh)) return NULL;
    char b[128];
    if (x->ndim != 3 || x->shape[0] < 1)
        return nb__fail(ctx, NB_ERR_SHAPE, "rnn_unroll: input %s must be (T, N, F) with T >= 1", nb_shape_str(x, b, sizeof b));
    if (!check_cell(ctx, kind, "rnn_unroll", x, h0, kind == NB_LSTM ? c0 : NULL, w_ih, w_hh, b_ih, b_hh)) return NULL;
    const int64_t T = x->shape[0], N = x->shape[1], H = w_hh->shape[1];
    nb_tensor *h = h0 ? h0 : nb_zeros(ctx, x->dtype, NB_SHAPE(N, H));
    nb_tensor *c = kind != NB_LSTM ? NULL : c0 ? c0 : nb_zeros(ctx, x->dtype, NB_SHAPE(N, H));
    nb_tensor *xp = nb_linear(ctx, x, w_ih, b_ih); /* (T, N, G*H): all input projections at once */
    nb_tensor **hs = nb_ctx_alloc(ctx, (size_t)T * sizeof *hs);
    if (!h || !xp || !hs || (kind == NB_LSTM && !c)) return NULL;
    for (int64_t t = 0; t < T; t++) {
        nb_tensor *xt = nb_squeeze(ctx, nb_slice(ctx, xp, 0, t, t + 1, 1), 0);
        h = step(ctx, kind, xt, h, c, w_hh, b_hh, &c);
        if (!h) return NULL;
        hs[t] = h;
    }
    if (h_last) *h_last = h;
    if (c_last) *c_last = c;
    return nb_stack(ctx, (int)T, hs, 0);
}
