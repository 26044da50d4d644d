/* Shared by the Fashion-MNIST MLP examples (fashion_mlp, fashion_search): the model, its
 * forward pass, evaluation and a clock. Header-only so each example stays one file to build. */
#ifndef NABLA_EXAMPLES_MLP_COMMON_H
#define NABLA_EXAMPLES_MLP_COMMON_H

#include <nabla/nabla.h>
#include <string.h>
#include <time.h>

#define MAX_LAYERS 8

/* ---- the model -------------------------------------------------------------------------- */
typedef struct {
    nb_linear_layer layer[MAX_LAYERS + 1];
    int nlayers;
    const char *activation;
    double dropout;
} mlp;

/* The activations nb_linear_act fuses into the layer (one pass each way with bias and
 * dropout); NB_ACT_NONE for the others, applied by activate() after the layer. */
static inline nb_act fused_act(const char *name) {
    if (!strcmp(name, "relu")) return NB_ACT_RELU;
    if (!strcmp(name, "tanh")) return NB_ACT_TANH;
    if (!strcmp(name, "sigmoid")) return NB_ACT_SIGMOID;
    if (!strcmp(name, "gelu")) return NB_ACT_GELU;
    return NB_ACT_NONE;
}

static inline nb_tensor *activate(nb_ctx *ctx, const char *name, nb_tensor *x) {
    if (!strcmp(name, "relu")) return nb_relu(ctx, x);
    if (!strcmp(name, "tanh")) return nb_tanh(ctx, x);
    if (!strcmp(name, "sigmoid")) return nb_sigmoid(ctx, x);
    if (!strcmp(name, "gelu")) return nb_gelu(ctx, x);
    if (!strcmp(name, "elu")) return nb_elu(ctx, x, 1.0);
    if (!strcmp(name, "leaky_relu")) return nb_leaky_relu(ctx, x, 0.01);
    return nb_softplus(ctx, x);
}

/* logits (N, 10) of x (N, 784); dropout follows the context's train/eval mode */
/* Under no-grad, nb_ctx_keep holds one layer's temporaries at a time; training keeps all. */
static inline nb_tensor *forward(nb_ctx *ctx, const mlp *m, nb_tensor *x) {
    const nb_mark mk = nb_ctx_mark(ctx);
    for (int i = 0; i < m->nlayers; i++) {
        x = nb_linear_layer_forward(ctx, &m->layer[i], x); /* hidden layers: fused act + dropout */
        if (i + 1 < m->nlayers && m->layer[i].act == NB_ACT_NONE) {
            x = activate(ctx, m->activation, x);
            if (m->dropout > 0) x = nb_dropout(ctx, x, m->dropout);
        }
        x = nb_ctx_keep(ctx, mk, x);
    }
    return x;
}

/* Add fc1..fc{n+1} to ps: in -> hidden[0] -> ... -> hidden[n-1] -> out, PyTorch's Linear init. */
static inline nb_status mlp_init(mlp *m, nb_params *ps, int64_t in, const int64_t *hidden, int nhidden, int64_t out,
                          const char *activation, double dropout, nb_rng *rng) {
    *m = (mlp){.nlayers = nhidden + 1, .activation = activation, .dropout = dropout};
    for (int i = 0; i < m->nlayers; i++) {
        char name[32];
        snprintf(name, sizeof name, "fc%d", i + 1);
        nb_status st = nb_linear_layer_init(&m->layer[i], ps, name, i ? hidden[i - 1] : in, i < nhidden ? hidden[i] : out,
                                            true, rng);
        if (st != NB_OK) return st;
        if (i < nhidden && fused_act(activation) != NB_ACT_NONE) {
            m->layer[i].act = fused_act(activation);
            m->layer[i].dropout = dropout;
        }
    }
    return NB_OK;
}

/* mean loss and accuracy over (x, y), in eval mode, 1000 rows at a time */
static inline nb_status evaluate(nb_ctx *ctx, const mlp *m, nb_tensor *x, nb_tensor *y, double *loss, double *acc) {
    const int64_t n = x->shape[0];
    double lsum = 0;
    int64_t correct = 0;
    bool was_train = nb_ctx_is_train(ctx);
    nb_ctx_set_train(ctx, false);
    NB_NO_GRAD(ctx) {
        for (int64_t s = 0; s < n; s += 1000) {
            int64_t e = s + 1000 < n ? s + 1000 : n;
            nb_tensor *yb = nb_slice(ctx, y, 0, s, e, 1);
            nb_tensor *logits = forward(ctx, m, nb_slice(ctx, x, 0, s, e, 1));
            nb_tensor *l = nb_cross_entropy(ctx, logits, yb, NB_REDUCE_SUM);
            nb_tensor *pred = nb_argmax(ctx, logits, 1, false);
            if (!l || !pred) break;
            lsum += nb_item(l);
            for (int64_t i = 0; i < e - s; i++) correct += nb_get(pred, i) == nb_get(yb, i);
            nb_ctx_reset(ctx);
        }
    }
    nb_ctx_set_train(ctx, was_train);
    if (nb_ctx_status(ctx) != NB_OK) return nb_ctx_status(ctx);
    *loss = lsum / (double)n;
    *acc = (double)correct / (double)n;
    return NB_OK;
}

#endif
