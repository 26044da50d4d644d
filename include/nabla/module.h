/* nabla/module.h — models as trees of modules: layers with their parameters, Sequential and
 * residual containers, a summary table and a DOT picture of the tree.
 *
 * A model (nb_model) owns everything built in it: an nb_params holding every parameter (hand it
 * to an optimizer or a checkpoint as model->ps), the modules, their settings and their buffers
 * (batch-norm running statistics, "<name>.running_mean" and "<name>.running_var", registered in
 * model->ps so that a checkpoint restores them and evaluation after a reload is bit-identical). nb_model_free releases it all. A module (nb_module) is a
 * forward function with a name, its parameters ("<name>.weight", ... in model->ps, initialised
 * like PyTorch's) and its children. Layer options are structs read through designated
 * initializers: fields left out (zero) take PyTorch's defaults.
 *
 * Names: given, or the kind in lower case numbered in the order modules are built ("conv2d",
 * "conv2d_1", ...). Initial values come from a stream of the model's seed keyed by the module's
 * name, so adding a layer leaves the others' values alone. C does not fix the order in which a
 * call's arguments are evaluated (nb_residual(model, NULL, body, shortcut) may build the shortcut
 * first), so name the modules whose names must not depend on the compiler (checkpoints).
 *
 * Building is checked once, like ops: a constructor that fails returns NULL and marks the model
 * failed (model->status, model->error); from then on every constructor returns NULL, so a whole
 * model definition is checked at its end. Forward never allocates outside the context's arena;
 * train/eval mode (dropout, batch norm) is the context's (nb_ctx_set_train). A module may be used
 * in several places of a tree (its parameters are then shared).
 *
 * Example (a complete program, compiled by tests/test_headers.c):
 *
 *   int main(void) {
 *       nb_model *model = nb_model_new(42);  // parameters drawn from seed 42
 *       nb_module *net = nb_sequential(model, "net", NB_MODULES(
 *           nb_conv2d_module(model, (nb_conv2d_opts){.in = 1, .out = 16, .kernel = 3, .padding = 1}),
 *           nb_batch_norm_module(model, (nb_batch_norm_opts){.channels = 16}),
 *           nb_relu_module(model, NULL),
 *           nb_max_pool2d_module(model, (nb_pool2d_opts){.kernel = 2}),
 *           nb_flatten_module(model, NULL),
 *           nb_linear_module(model, (nb_linear_opts){.in = 16 * 14 * 14, .out = 10})));
 *       if (!net) return fprintf(stderr, "%s\n", model->error), 1;  // the first construction error
 *       nb_ctx *ctx = nb_ctx_new();
 *       nb_module_summary(net, ctx, NB_SHAPE(64, 1, 28, 28), stdout);  // layers, shapes, counts
 *       nb_tensor *y = nb_module_forward(ctx, net, nb_randn(ctx, NB_F32, NB_SHAPE(64, 1, 28, 28)));
 *       const int failed = !y;  // else y holds (64, 10) logits; nb_backward(ctx, loss, NULL) trains
 *       if (failed) fprintf(stderr, "%s\n", nb_ctx_error(ctx));  // names the layer that failed
 *       nb_ctx_free(ctx), nb_model_free(model);  // every parameter, buffer and module
 *       return failed;
 *   }
 */
#ifndef NABLA_MODULE_H
#define NABLA_MODULE_H

#include "graph.h"
#include "nn.h"
#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nb_module nb_module;
typedef struct nb_model nb_model;

/* y = forward(ctx, self, x): ops on ctx, NULL on error (as every op). */
typedef nb_tensor *(*nb_module_fn)(nb_ctx *ctx, const nb_module *self, nb_tensor *x);

struct nb_module {
    const char *kind;         /* what it is, PyTorch's class name: "Conv2d", "Sequential", ... */
    const char *name;         /* unique in its model; its parameters are "<name>.weight", ... */
    nb_module_fn forward;     /* call it through nb_module_forward */
    nb_model *model;          /* the owner */
    int n_children;
    nb_module **children;     /* Sequential: in order; Residual: the body, then the shortcut (if any) */
    int n_params;
    nb_tensor **params;       /* its own parameters (children's not included), views into model->ps */
    int n_buffers;
    nb_tensor **buffers;      /* long-lived state that is not trained (running statistics), owned */
    void *state;              /* the kind's settings (zeroed, size given to nb_module_new, owned) */
    char info[64];            /* the settings in a few words ("1->16, 3x3, padding 1"), for DOT */
    nb_dtype in_dtype;        /* what the input is made of: F32, I64 for an embedding (for the summary) */
    nb_rng rng;               /* its initialisers draw from this stream of the model's seed, keyed by
                                 its name: values do not depend on the order modules are built in */
    /* private: the output shape of the last traced forward (nb_module_summary) */
    int out_ndim_;            /* -1: not traced */
    nb_dtype out_dtype_;
    int64_t out_shape_[NB_MAX_DIMS];
};

struct nb_model {
    nb_params *ps;            /* every parameter of every module (owned) */
    uint64_t seed;            /* of the initial values (see nb_module.rng) */
    nb_status status;         /* NB_OK, or the first construction error */
    char error[512];          /* its message ("" while NB_OK) */
    /* private */
    int n_modules_, cap_modules_;
    nb_module **modules_;     /* every module built, in order (freed with the model) */
    bool tracing_;            /* a summary is recording output shapes */
};

/* A new empty model whose initialisers draw from seed, with F32 parameters. NULL on out of memory. */
nb_model *nb_model_new(uint64_t seed);
/* The same with parameters (and buffers such as batch norm's running statistics) of dtype
 * NB_F32 or NB_F64 (else NULL with NB_ERR_DTYPE): an F64 model, like PyTorch's model.double(),
 * takes F64 inputs, trains with every built-in optimizer and can be gradchecked end to end. */
nb_model *nb_model_new_dtype(uint64_t seed, nb_dtype dtype);
/* Free the model and everything it owns: modules, parameters, buffers. NULL is fine. */
void nb_model_free(nb_model *model);
/* The module of that name (torch's get_submodule), NULL if there is none. */
nb_module *nb_model_find(const nb_model *model, const char *name);

/* ---- running a module ------------------------------------------------------------------- */
/* y = m(x). A failure inside a layer is reported naming it: "conv2d_1 (Conv2d): conv2d: ...". */
nb_tensor *nb_module_forward(nb_ctx *ctx, const nb_module *m, nb_tensor *x);
/* Parameters (elements) of m and everything below it; a shared module counts once. */
int64_t nb_module_num_params(const nb_module *m);

/* ---- containers ---------------------------------------------------------------------------- */
/* Children list literal: nb_sequential(model, "net", NB_MODULES(a, b, c)). */
#define NB_MODULES(...) \
    (int)(sizeof((nb_module *[]){__VA_ARGS__}) / sizeof(nb_module *)), (nb_module *[]) { __VA_ARGS__ }
/* torch.nn.Sequential: the children applied in order. n >= 1. name NULL: automatic ("sequential",
 * "sequential_1", ...), as for every constructor below. Without a graph (no-grad), a batch norm
 * or built-in activation child writes its output over its input when that input is the
 * container's own intermediate (as PyTorch's inplace=True), so it holds one value, not two. */
nb_module *nb_sequential(nb_model *model, const char *name, int n, nb_module *const *children);
/* y = body(x) + shortcut(x); shortcut NULL is the identity (a ResNet block; add an activation
 * after it with nb_sequential, or use nb_residual_relu). The sum is written over the body's
 * output when nothing else reads it (no-grad, or the body ends with a normalization), so a
 * block holds one full-size value fewer. */
nb_module *nb_residual(nb_model *model, const char *name, nb_module *body, nb_module *shortcut);
/* y = relu(body(x) + shortcut(x)) with nb_add_relu (torchvision's BasicBlock ending): the same
 * values as nb_residual followed by a ReLU module, one full-size value fewer per block. */
nb_module *nb_residual_relu(nb_model *model, const char *name, nb_module *body, nb_module *shortcut);

/* ---- layers --------------------------------------------------------------------------------- */
/* Each adds its parameters as "<name>.<param>" to model->ps, initialised as PyTorch's module of
 * the same kind, and returns the module (NULL on error: a size < 1, a bad option, a taken name). */

/* torch.nn.Linear: y = x W^T + b, W (out, in), b (out); both U(-1/sqrt(in), 1/sqrt(in)). */
typedef struct {
    int64_t in, out;
    bool no_bias;             /* PyTorch's bias=False */
    const char *name;         /* NULL: automatic */
} nb_linear_opts;
nb_module *nb_linear_module(nb_model *model, nb_linear_opts o);

/* torch.nn.Conv2d with a square kernel: weight (out, in/groups, kernel, kernel), bias (out).
 * stride, dilation, groups 0 mean 1; padding 0 is none; same: PyTorch's padding="same" (see
 * nb_conv_opts). Runs nb_conv2d_ex. */
typedef struct {
    int64_t in, out, kernel;
    int64_t stride, padding, dilation, groups;
    bool same;
    bool no_bias;             /* e.g. before batch norm */
    const char *name;
} nb_conv2d_opts;
nb_module *nb_conv2d_module(nb_model *model, nb_conv2d_opts o);

/* torch.nn.ConvTranspose2d with a square kernel: weight (in, out/groups, kernel, kernel), bias
 * (out). stride, groups 0 mean 1; padding and output_padding 0 are none. Runs nb_conv_transpose2d. */
typedef struct {
    int64_t in, out, kernel;
    int64_t stride, padding, output_padding, groups;
    bool no_bias;
    const char *name;
} nb_conv_transpose2d_opts;
nb_module *nb_conv_transpose2d_module(nb_model *model, nb_conv_transpose2d_opts o);

/* Batch norm over channel axis 1 of (N, C, H, W) or (N, C) (torch.nn.BatchNorm2d / 1d): weight 1,
 * bias 0 (parameters), running mean 0 and variance 1 (buffers of the module). momentum 0 means
 * 0.1, eps 0 means 1e-5. */
typedef struct {
    int64_t channels;
    double momentum, eps;
    const char *name;
} nb_batch_norm_opts;
nb_module *nb_batch_norm_module(nb_model *model, nb_batch_norm_opts o);

/* torch.nn.LayerNorm over the last axis (size features): weight 1, bias 0; eps 0 means 1e-5. */
typedef struct {
    int64_t features;
    double eps;
    const char *name;
} nb_layer_norm_opts;
nb_module *nb_layer_norm_module(nb_model *model, nb_layer_norm_opts o);

/* torch.nn.Embedding: weight (num, dim) ~ N(0, 1); input indices (any shape, I64).
 * has_padding_idx: torch's padding_idx (in [-num, num)): that row starts at zero and gets no
 * gradient (nb_embedding_layer_init_padded). */
typedef struct {
    int64_t num, dim;
    bool has_padding_idx;
    int64_t padding_idx;
    const char *name;
} nb_embedding_opts;
nb_module *nb_embedding_module(nb_model *model, nb_embedding_opts o);

/* torch.nn.RNN / LSTM / GRU (kind, one layer, nb_rnn_layer): input (T, N, in), or (N, T, in)
 * with batch_first; output every step's hidden state (T, N, hidden) / (N, T, hidden), or with
 * last the final hidden state (N, hidden) (PyTorch's h_n[-1]). The initial state is zero. */
typedef struct {
    nb_rnn_kind kind;
    int64_t in, hidden;
    bool batch_first, last, no_bias;
    const char *name;
} nb_rnn_opts;
nb_module *nb_rnn_module(nb_model *model, nb_rnn_opts o);

/* torch.nn.MaxPool2d / AvgPool2d (count_include_pad): stride 0 means kernel. */
typedef struct {
    int64_t kernel, stride, padding;
    const char *name;
} nb_pool2d_opts;
nb_module *nb_max_pool2d_module(nb_model *model, nb_pool2d_opts o);
nb_module *nb_avg_pool2d_module(nb_model *model, nb_pool2d_opts o);
/* torch.nn.AdaptiveAvgPool2d((out_h, out_w)); 0 means 1, so (nb_adaptive_pool2d_opts){0} is
 * global average pooling: (N, C, H, W) -> (N, C, 1, 1). */
typedef struct {
    int64_t out_h, out_w;
    const char *name;
} nb_adaptive_pool2d_opts;
nb_module *nb_adaptive_avg_pool2d_module(nb_model *model, nb_adaptive_pool2d_opts o);

/* Modules without options: torch.nn.ReLU, GELU (exact), Tanh, Sigmoid, Flatten (from axis 1). */
nb_module *nb_relu_module(nb_model *model, const char *name);
nb_module *nb_gelu_module(nb_model *model, const char *name);
nb_module *nb_tanh_module(nb_model *model, const char *name);
nb_module *nb_sigmoid_module(nb_model *model, const char *name);
nb_module *nb_flatten_module(nb_model *model, const char *name);
/* torch.nn.LeakyReLU(slope): slope 0 means PyTorch's 0.01. */
nb_module *nb_leaky_relu_module(nb_model *model, const char *name, double slope);
/* Any one-input op as a module of the given kind: nb_unary_module(model, "SiLU", nb_silu, NULL). */
typedef nb_tensor *(*nb_unary_op)(nb_ctx *ctx, nb_tensor *x);
nb_module *nb_unary_module(nb_model *model, const char *kind, nb_unary_op op, const char *name);
/* torch.nn.Dropout(p): nb_dropout in train mode, the identity in eval mode. p in [0, 1). */
nb_module *nb_dropout_module(nb_model *model, const char *name, double p);

/* ---- modules of your own ------------------------------------------------------------------- */
/* A module of the given kind with state_size zeroed bytes at ->state (settings, layer structs);
 * name NULL: the kind in lower case, numbered ("myblock", "myblock_1", ...). Fill in the state,
 * then add parameters, buffers and children with the functions below. */
nb_module *nb_module_new(nb_model *model, const char *kind, const char *name, nb_module_fn forward,
                         size_t state_size);
/* Add parameter "<m->name>.<param>" (zeros; initialise it from &m->rng, see nn.h). */
nb_tensor *nb_module_param(nb_module *m, const char *param, int ndim, const int64_t *shape);
/* Hand a long-lived tensor (nb_tensor_new) to m as buffer "<m->name>.<buffer>" (torch's
 * register_buffer): freed with the model (or at once if this fails), counted by the summary, and
 * registered in model->ps (nb_params_add_buffer) so checkpoints save and restore it. A step
 * tensor is refused (NB_ERR_VALUE) and stays the context's; a taken name fails the model. */
nb_status nb_module_add_buffer(nb_module *m, const char *buffer, nb_tensor *t);
/* Append a child (of the same model). A NULL child fails the model. */
nb_status nb_module_add_child(nb_module *parent, nb_module *child);

/* ---- looking at a model ---------------------------------------------------------------------- */
/* Run m once on zeros of the given input shape (dtype m->in_dtype) in eval mode without a graph
 * (running statistics untouched; the context's modes and arena use are restored) and print
 * Keras's / torchinfo's table to f: per module, indented by depth, its name and kind, output
 * shape, own parameter count and the bytes it holds (parameters and buffers, "--" for containers),
 * then the totals: parameters, buffers (not trained), and the layer outputs of one forward pass.
 * Errors: NB_ERR_NULL, the forward's error (named as in nb_module_forward), NB_ERR_IO. */
nb_status nb_module_summary(const nb_module *m, nb_ctx *ctx, int ndim, const int64_t *shape, FILE *f);
/* Write the module tree as Graphviz DOT: one box per module (name, kind, settings, parameter
 * count, and the output shape once a summary has traced it), an edge from each container to
 * each child, in order. Node ids follow the tree (m0, m1, ... in pre-order), so the same model
 * gives the same file. Render: dot -Tsvg model.dot > model.svg. Errors: NB_ERR_NULL, NB_ERR_IO. */
nb_status nb_module_dot(const nb_module *m, FILE *f);

#ifdef __cplusplus
}
#endif
/* call-site capture for anomaly reports (see NB__AT in graph.h) */
#if !defined(NB_NO_SITE) && !defined(NB_INTERNAL)
#define nb_module_forward(...) NB__AT(nb_module_forward, __VA_ARGS__)
#endif

#endif
