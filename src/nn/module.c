/* Modules: a model owns its parameters (one nb_params), its modules and their buffers; a module
 * is a forward function, a name, its parameters and its children. Built-in layers wrap the
 * layer structs of nn.h (same initialisation, same forward). */
#include "../internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>

/* ---- the model -------------------------------------------------------------------------------- */
nb_model *nb_model_new(uint64_t seed) { return nb_model_new_dtype(seed, NB_F32); }

nb_model *nb_model_new_dtype(uint64_t seed, nb_dtype dtype) {
    if (dtype != NB_F32 && dtype != NB_F64)
        return nb_set_error(NB_ERR_DTYPE, "model_new: parameters must be f32 or f64, got %s", nb_dtype_name(dtype)), NULL;
    nb_model *model = calloc(1, sizeof *model);
    if (model) model->ps = nb_params_new_dtype(dtype);
    if (!model || !model->ps) {
        free(model);
        return nb_set_error(NB_ERR_NOMEM, "model_new: out of memory"), NULL;
    }
    model->seed = seed;
    return model;
}

void nb_model_free(nb_model *model) {
    if (!model) return;
    for (int i = 0; i < model->n_modules_; i++) {
        nb_module *m = model->modules_[i];
        for (int b = 0; b < m->n_buffers; b++) nb_tensor_free(m->buffers[b]);
        free(m->buffers), free(m->params), free(m->children), free(m->state);
        free((char *)m->name), free((char *)m->kind);
        free(m);
    }
    free(model->modules_);
    nb_params_free(model->ps);
    free(model);
}

/* Fail the model: the first error is kept (model->error) and stays the thread's last error. */
static void *model_fail(nb_model *model, nb_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void *model_fail(nb_model *model, nb_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char msg[sizeof model->error];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (model->status == NB_OK) {
        model->status = s;
        memcpy(model->error, msg, sizeof msg);
    }
    nb_set_error(model->status, "%s", model->error);
    return NULL;
}

/* true when the model can take another module; a failed model repeats its first error */
static bool model_ok(nb_model *model, const char *fn) {
    if (!model) return nb_set_error(NB_ERR_NULL, "%s: model is NULL", fn), false;
    if (model->status != NB_OK) return nb_set_error(model->status, "%s", model->error), false;
    return true;
}

nb_module *nb_model_find(const nb_model *model, const char *name) {
    for (int i = 0; model && name && i < model->n_modules_; i++) /* a module that failed may have no name */
        if (model->modules_[i]->name && !strcmp(model->modules_[i]->name, name)) return model->modules_[i];
    return NULL;
}

static char *copy_str(const char *s) {
    char *c = malloc(strlen(s) + 1);
    return c ? strcpy(c, s) : NULL;
}

/* the given name, or the kind in lower case numbered Keras's way: "conv2d", "conv2d_1", ... */
static char *module_name(nb_model *model, const char *fn, const char *kind, const char *name) {
    if (name && *name) {
        if (nb_model_find(model, name)) return model_fail(model, NB_ERR_VALUE, "%s: the name '%s' is taken", fn, name);
        return copy_str(name);
    }
    char base[48], auto_name[64];
    size_t k = 0;
    for (; kind[k] && k < sizeof base - 1; k++) base[k] = (char)tolower((unsigned char)kind[k]);
    base[k] = 0;
    for (int i = 0;; i++) {
        if (i) snprintf(auto_name, sizeof auto_name, "%s_%d", base, i);
        else snprintf(auto_name, sizeof auto_name, "%s", base);
        if (!nb_model_find(model, auto_name)) return copy_str(auto_name);
    }
}

/* nb_module_new for the constructor fn ("nb_linear_module"), whose name the errors carry */
static nb_module *make(nb_model *model, const char *fn, const char *kind, const char *name, nb_module_fn forward,
                       size_t state_size) {
    fn += 3; /* without "nb_" */
    if (!model_ok(model, fn)) return NULL;
    if (!kind || !*kind || !forward) return model_fail(model, NB_ERR_NULL, "%s: kind or forward is missing", fn);
    nb_module **all = realloc(model->modules_, ((size_t)model->n_modules_ + 1) * sizeof *all);
    if (!all) return model_fail(model, NB_ERR_NOMEM, "%s: out of memory", fn);
    model->modules_ = all;
    nb_module *m = calloc(1, sizeof *m);
    if (!m) return model_fail(model, NB_ERR_NOMEM, "%s: out of memory", fn);
    m->kind = copy_str(kind);
    m->name = m->kind ? module_name(model, fn, kind, name) : NULL;
    m->state = state_size ? calloc(1, state_size) : NULL;
    m->forward = forward;
    m->model = model;
    m->out_ndim_ = -1;
    if (m->name) { /* FNV-1a of the name picks the module's stream of the model's seed */
        uint64_t h = 0xcbf29ce484222325ULL;
        for (const char *c = m->name; *c; c++) h = (h ^ (unsigned char)*c) * 0x100000001b3ULL;
        m->rng = nb_rng_stream(model->seed, h);
    }
    m->in_dtype = model->ps->dtype;
    all[model->n_modules_++] = m; /* owned from here on, whatever fails next */
    if (!m->kind || !m->name || (state_size && !m->state))
        return model->status ? NULL : model_fail(model, NB_ERR_NOMEM, "%s: out of memory", fn);
    return m;
}

nb_module *nb_module_new(nb_model *model, const char *kind, const char *name, nb_module_fn forward,
                         size_t state_size) {
    return make(model, __func__, kind, name, forward, state_size);
}

nb_status nb_module_add_buffer(nb_module *m, const char *buffer, nb_tensor *t) {
    if (!t || !t->persistent) /* a step tensor dies at the next reset: it cannot be a buffer */
        return nb_set_error(t ? NB_ERR_VALUE : NB_ERR_NULL, "module_add_buffer: the buffer must be a long-lived tensor");
    if (!m || !buffer || !model_ok(m->model, "module_add_buffer")) {
        nb_tensor_free(t);
        return m && buffer ? nb_last_status() : nb_set_error(NB_ERR_NULL, "module_add_buffer: module or name is NULL");
    }
    nb_tensor **b = realloc(m->buffers, ((size_t)m->n_buffers + 1) * sizeof *b);
    if (!b) {
        nb_tensor_free(t);
        return model_fail(m->model, NB_ERR_NOMEM, "module_add_buffer: out of memory"), NB_ERR_NOMEM;
    }
    m->buffers = b;
    b[m->n_buffers++] = t; /* owned from here on, whatever fails next */
    char full[512];
    if (snprintf(full, sizeof full, "%s.%s", m->name, buffer) >= (int)sizeof full)
        return model_fail(m->model, NB_ERR_VALUE, "module_add_buffer: name '%s.%s' is too long", m->name, buffer), NB_ERR_VALUE;
    if (nb_params_add_buffer(m->model->ps, full, t) != NB_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", nb_last_error());
        return model_fail(m->model, nb_last_status(), "module_add_buffer: %s", why), m->model->status;
    }
    return NB_OK;
}

/* parameters ps->p[first ..] (just added by a layer's init) become m's own */
static nb_status adopt_params(nb_module *m, int first) {
    const nb_params *ps = m->model->ps;
    nb_tensor **p = realloc(m->params, ((size_t)m->n_params + (size_t)(ps->n - first) + 1) * sizeof *p);
    if (!p) return model_fail(m->model, NB_ERR_NOMEM, "module '%s': out of memory", m->name), NB_ERR_NOMEM;
    m->params = p;
    for (int i = first; i < ps->n; i++) p[m->n_params++] = ps->p[i];
    return NB_OK;
}

nb_tensor *nb_module_param(nb_module *m, const char *param, int ndim, const int64_t *shape) {
    if (!m || !param) return nb_set_error(NB_ERR_NULL, "module_param: module or name is NULL"), NULL;
    if (!model_ok(m->model, "module_param")) return NULL;
    char full[256];
    if (snprintf(full, sizeof full, "%s.%s", m->name, param) >= (int)sizeof full)
        return model_fail(m->model, NB_ERR_VALUE, "module_param: name '%s.%s' is too long", m->name, param);
    const int first = m->model->ps->n;
    nb_tensor *t = nb_params_add(m->model->ps, full, ndim, shape);
    if (!t) return model_fail(m->model, nb_last_status(), "module_param: %s", nb_last_error());
    return adopt_params(m, first) == NB_OK ? t : NULL;
}

static bool contains(const nb_module *root, const nb_module *m) {
    if (root == m) return true;
    for (int i = 0; i < root->n_children; i++)
        if (contains(root->children[i], m)) return true;
    return false;
}

nb_status nb_module_add_child(nb_module *parent, nb_module *child) {
    if (!parent) return nb_set_error(NB_ERR_NULL, "module_add_child: parent is NULL");
    nb_model *model = parent->model;
    if (!model_ok(model, "module_add_child")) return nb_last_status();
    if (!child) return model_fail(model, NB_ERR_NULL, "module_add_child '%s': child is NULL", parent->name), NB_ERR_NULL;
    if (child->model != model)
        return model_fail(model, NB_ERR_VALUE, "module_add_child '%s': '%s' belongs to another model", parent->name,
                          child->name),
               NB_ERR_VALUE;
    if (contains(child, parent))
        return model_fail(model, NB_ERR_VALUE, "module_add_child: '%s' inside '%s' would make a cycle", parent->name,
                          child->name),
               NB_ERR_VALUE;
    nb_module **c = realloc(parent->children, ((size_t)parent->n_children + 1) * sizeof *c);
    if (!c) return model_fail(model, NB_ERR_NOMEM, "module_add_child: out of memory"), NB_ERR_NOMEM;
    parent->children = c;
    c[parent->n_children++] = child;
    return NB_OK;
}

/* ---- forward ---------------------------------------------------------------------------------- */
/* Set when the innermost module around a failure has put its name in the message, so that the
 * modules around it leave the message alone. Reset by every forward that starts error-free. */
static _Thread_local bool failure_named;

/* "module_forward: conv2d: ..." -> "module_forward: conv2d_1 (Conv2d): conv2d: ..." */
static void name_failure(nb_ctx *ctx, const nb_module *m) {
    static const char site[] = "module_forward: ";
    const int k = strncmp(ctx->msg, site, sizeof site - 1) ? 0 : (int)sizeof site - 1;
    char msg[sizeof ctx->msg];
    snprintf(msg, sizeof msg, "%.*s%s (%s): %s", k, ctx->msg, m->name, m->kind, ctx->msg + k);
    memcpy(ctx->msg, msg, sizeof msg);
    nb_set_error(ctx->status, "%s", msg);
    failure_named = true;
}

nb_tensor *nb_module_forward(nb_ctx *ctx, const nb_module *m, nb_tensor *x) {
    if (nb__null(ctx, "module_forward", 1, x)) return NULL;
    if (!m || !m->forward) return nb__fail(ctx, NB_ERR_NULL, "module_forward: module is NULL");
    const bool was_ok = ctx->status == NB_OK;
    if (was_ok) failure_named = false;
    nb_tensor *y = m->forward(ctx, m, x);
    if (!y && was_ok && ctx->status != NB_OK && !failure_named) name_failure(ctx, m);
    if (y && m->model->tracing_) { /* nb_module_summary: m is one of the model's, not const */
        nb_module *rec = (nb_module *)m;
        rec->out_ndim_ = y->ndim;
        rec->out_dtype_ = y->dtype;
        memcpy(rec->out_shape_, y->shape, sizeof y->shape);
    }
    return y;
}

/* append to m->info (the settings shown in DOT) */
static void info_add(nb_module *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void info_add(nb_module *m, const char *fmt, ...) {
    const size_t len = strlen(m->info);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->info + len, sizeof m->info - len, fmt, ap);
    va_end(ap);
}

/* ---- containers ------------------------------------------------------------------------------- */
/* Containers keep only each child's output (nb_ctx_keep): without a graph (no-grad, eval),
 * a child's temporaries go as soon as it returns, so a network's peak is one layer's work;
 * with a graph, nb_ctx_keep changes nothing. */
/* Containers also let a child that is one element-wise op (batch norm, a built-in activation)
 * write its output over its input when that input is the container's own intermediate
 * (nb__donate, src/internal.h): with eval-mode batch norm after a convolution, one value less
 * at a time. */
static bool one_op(const nb_module *m);

static nb_tensor *sequential_forward(nb_ctx *ctx, const nb_module *m, nb_tensor *x) {
    const nb_mark mk = nb_ctx_mark(ctx);
    nb_tensor *const in = x;
    for (int i = 0; i < m->n_children && x; i++) {
        const nb_module *c = m->children[i];
        nb__donate(ctx, x != in && one_op(c) ? x : NULL);
        nb_tensor *y = nb_module_forward(ctx, c, x);
        nb__donate(ctx, NULL);
        x = nb_ctx_keep(ctx, mk, y);
    }
    return x;
}

/* body(x) + shortcut(x): the sum may take the place of the body's output (read by nothing
 * else; with a graph, when the body's last op does not read its output: a batch norm) */
static nb_tensor *residual_sum(nb_ctx *ctx, const nb_module *m, nb_tensor *x, bool relu) {
    const nb_mark mk = nb_ctx_mark(ctx);
    nb_tensor *y = nb_module_forward(ctx, m->children[0], x);
    nb_tensor *shortcut = m->n_children > 1 ? nb_module_forward(ctx, m->children[1], x) : x;
    nb__donate(ctx, y != x && y != shortcut ? y : NULL);
    nb_tensor *sum = relu ? nb_add_relu(ctx, y, shortcut) : nb_add(ctx, y, shortcut);
    nb__donate(ctx, NULL);
    return nb_ctx_keep(ctx, mk, sum);
}
static nb_tensor *residual_forward(nb_ctx *ctx, const nb_module *m, nb_tensor *x) { return residual_sum(ctx, m, x, false); }
static nb_tensor *residual_relu_forward(nb_ctx *ctx, const nb_module *m, nb_tensor *x) {
    return residual_sum(ctx, m, x, true);
}

/* a container of the children (which must all be there), taking the first one's input dtype */
static nb_module *container(nb_model *model, const char *fn, const char *kind, const char *name, nb_module_fn forward,
                            int n, nb_module *const *children) {
    if (!model_ok(model, fn + 3)) return NULL;
    if (n < 1 || !children) return model_fail(model, NB_ERR_VALUE, "%s: %d children (at least 1 needed)", fn + 3, n);
    for (int i = 0; i < n; i++)
        if (!children[i]) return model_fail(model, NB_ERR_NULL, "%s: child %d is NULL", fn + 3, i);
    nb_module *m = make(model, fn, kind, name, forward, 0);
    for (int i = 0; m && i < n; i++)
        if (nb_module_add_child(m, children[i]) != NB_OK) return NULL;
    if (m) m->in_dtype = children[0]->in_dtype;
    return m;
}

nb_module *nb_sequential(nb_model *model, const char *name, int n, nb_module *const *children) {
    return container(model, __func__, "Sequential", name, sequential_forward, n, children);
}

static nb_module *residual(nb_model *model, const char *fn, nb_module_fn forward, nb_module *body, nb_module *shortcut,
                           const char *name) {
    nb_module *m = container(model, fn, "Residual", name, forward, 1, &body);
    if (m && shortcut && nb_module_add_child(m, shortcut) != NB_OK) return NULL;
    if (m) info_add(m, "%s%s", shortcut ? "+ shortcut" : "+ identity", forward == residual_relu_forward ? ", relu" : "");
    return m;
}
nb_module *nb_residual(nb_model *model, const char *name, nb_module *body, nb_module *shortcut) {
    return residual(model, __func__, residual_forward, body, shortcut, name);
}
nb_module *nb_residual_relu(nb_model *model, const char *name, nb_module *body, nb_module *shortcut) {
    return residual(model, __func__, residual_relu_forward, body, shortcut, name);
}

/* ---- layers ------------------------------------------------------------------------------------- */
/* The end of constructor fn: its layer's init status, then the parameters it added become m's. */
static nb_module *finish(nb_module *m, const char *fn, int first, nb_status init) {
    if (init != NB_OK) return model_fail(m->model, init, "%s: %s", fn + 3, nb_last_error());
    return adopt_params(m, first) == NB_OK ? m : NULL;
}

static nb_tensor *linear_forward(nb_ctx *ctx, const nb_module *m, nb_tensor *x) {
    return nb_linear_layer_forward(ctx, m->state, x);
}

nb_module *nb_linear_module(nb_model *model, nb_linear_opts o) {
    nb_module *m = make(model, __func__, "Linear", o.name, linear_forward, sizeof(nb_linear_layer));
    if (!m) return NULL;
    info_add(m, "%lld->%lld%s", (long long)o.in, (long long)o.out, o.no_bias ? ", no bias" : "");
    const int first = model->ps->n;
    return finish(m, __func__, first, nb_linear_layer_init(m->state, model->ps, m->name, o.in, o.out, !o.no_bias, &m->rng));
}

typedef struct {
    nb_conv2d_layer layer; /* the parameters */
    nb_conv_opts opts;     /* how nb_conv2d_ex runs them */
} conv2d_state;

static nb_tensor *conv2d_forward(nb_ctx *ctx, const nb_module *m, nb_tensor *x) {
    const conv2d_state *s = m->state;
    return nb_conv2d_ex(ctx, x, s->layer.weight, s->layer.bias, &s->opts);
}

nb_module *nb_conv2d_module(nb_model *model, nb_conv2d_opts o) {
    nb_module *m = make(model, __func__, "Conv2d", o.name, conv2d_forward, sizeof(conv2d_state));
    if (!m) return NULL;
    const int64_t stride = o.stride ? o.stride : 1, dil = o.dilation ? o.dilation : 1, groups = o.groups ? o.groups : 1;
    if (stride < 1 || dil < 1 || o.padding < 0 || stride > INT32_MAX || dil > INT32_MAX || o.padding > INT32_MAX ||
        o.kernel > INT32_MAX || groups > INT32_MAX)
        return model_fail(model, NB_ERR_VALUE, "%s '%s': stride %lld, padding %lld, dilation %lld, groups %lld out of range",
                          __func__ + 3, m->name, (long long)o.stride, (long long)o.padding, (long long)o.dilation, (long long)o.groups);
    conv2d_state *s = m->state;
    s->opts = (nb_conv_opts){.stride = {stride, stride}, .padding = {o.padding, o.padding}, .dilation = {dil, dil},
                             .groups = groups, .same = o.same};
    info_add(m, "%lld->%lld, %lldx%lld", (long long)o.in, (long long)o.out, (long long)o.kernel, (long long)o.kernel);
    if (stride > 1) info_add(m, ", stride %lld", (long long)stride);
    if (o.padding) info_add(m, ", padding %lld", (long long)o.padding);
    if (o.same) info_add(m, ", same");
    if (dil > 1) info_add(m, ", dilation %lld", (long long)dil);
    if (groups > 1) info_add(m, ", groups %lld", (long long)groups);
    const int first = model->ps->n;
    return finish(m, __func__, first, nb_conv2d_layer_init(&s->layer, model->ps, m->name, o.in, o.out, (int)o.kernel, (int)stride,
                                                 (int)o.padding, (int)dil, (int)groups, !o.no_bias, &m->rng));
}

static nb_tensor *conv_transpose2d_forward(nb_ctx *ctx, const nb_module *m, nb_tensor *x) {
    return nb_conv_transpose2d_layer_forward(ctx, m->state, x);
}

nb_module *nb_conv_transpose2d_module(nb_model *model, nb_conv_transpose2d_opts o) {
    nb_module *m = make(model, __func__, "ConvTranspose2d", o.name, conv_transpose2d_forward, sizeof(nb_conv_transpose2d_layer));
    if (!m) return NULL;
    const int64_t stride = o.stride ? o.stride : 1, groups = o.groups ? o.groups : 1;
    if (stride < 1 || stride > INT32_MAX || o.padding < 0 || o.padding > INT32_MAX || o.output_padding < 0 ||
        o.output_padding >= stride || o.kernel > INT32_MAX || groups > INT32_MAX)
        return model_fail(model, NB_ERR_VALUE, "%s '%s': stride %lld, padding %lld, output_padding %lld (below the stride), "
                          "groups %lld out of range", __func__ + 3, m->name, (long long)o.stride, (long long)o.padding,
                          (long long)o.output_padding, (long long)o.groups);
    info_add(m, "%lld->%lld, %lldx%lld", (long long)o.in, (long long)o.out, (long long)o.kernel, (long long)o.kernel);
    if (stride > 1) info_add(m, ", stride %lld", (long long)stride);
    if (o.padding) info_add(m, ", padding %lld", (long long)o.padding);
    if (o.output_padding) info_add(m, ", output_padding %lld", (long long)o.output_padding);
    if (groups > 1) info_add(m, ", groups %lld", (long long)groups);
    const int first = model->ps->n;
    return finish(m, __func__, first, nb_conv_transpose2d_layer_init(m->state, model->ps, m->name, o.in, o.out, (int)o.kernel,
                                                                     (int)stride, (int)o.padding, (int)o.output_padding,
                                                                     (int)groups, !o.no_bias, &m->rng));
}

static nb_tensor *batch_norm_forward(nb_ctx *ctx, const nb_module *m, nb_tensor *x) {
    return nb_batch_norm_layer_forward(ctx, m->state, x);
}

nb_module *nb_batch_norm_module(nb_model *model, nb_batch_norm_opts o) {
    nb_module *m = make(model, __func__, "BatchNorm", o.name, batch_norm_forward, sizeof(nb_batch_norm_layer));
    if (!m) return NULL;
    nb_batch_norm_layer *l = m->state;
    if (!(o.momentum >= 0 && o.momentum <= 1) || !(o.eps >= 0) || !isfinite(o.eps)) /* as nb_batch_norm checks */
        return model_fail(model, NB_ERR_VALUE, "%s '%s': momentum %g must be in [0, 1] and eps %g finite and >= 0",
                          __func__ + 3, m->name, o.momentum, o.eps);
    const int first = model->ps->n;
    if (!finish(m, __func__, first, nb_batch_norm_layer_init(l, model->ps, m->name, o.channels))) return NULL;
    if (o.momentum) l->momentum = o.momentum;
    if (o.eps) l->eps = o.eps;
    info_add(m, "%lld", (long long)o.channels);
    /* the running statistics are the module's from here on, even when handing one over fails */
    const nb_status a = nb_module_add_buffer(m, "running_mean", l->running_mean),
                    b = nb_module_add_buffer(m, "running_var", l->running_var);
    return a == NB_OK && b == NB_OK ? m : NULL;
}

static nb_tensor *layer_norm_forward(nb_ctx *ctx, const nb_module *m, nb_tensor *x) {
    return nb_layer_norm_layer_forward(ctx, m->state, x);
}

nb_module *nb_layer_norm_module(nb_model *model, nb_layer_norm_opts o) {
    nb_module *m = make(model, __func__, "LayerNorm", o.name, layer_norm_forward, sizeof(nb_layer_norm_layer));
    if (!m) return NULL;
    nb_layer_norm_layer *l = m->state;
    if (!(o.eps >= 0) || !isfinite(o.eps))
        return model_fail(model, NB_ERR_VALUE, "%s '%s': eps %g must be finite and >= 0", __func__ + 3, m->name, o.eps);
    const int first = model->ps->n;
    if (!finish(m, __func__, first, nb_layer_norm_layer_init(l, model->ps, m->name, o.features))) return NULL;
    if (o.eps) l->eps = o.eps;
    info_add(m, "%lld", (long long)o.features);
    return m;
}

static nb_tensor *embedding_forward(nb_ctx *ctx, const nb_module *m, nb_tensor *x) {
    return nb_embedding_layer_forward(ctx, m->state, x);
}

nb_module *nb_embedding_module(nb_model *model, nb_embedding_opts o) {
    nb_module *m = make(model, __func__, "Embedding", o.name, embedding_forward, sizeof(nb_embedding_layer));
    if (!m) return NULL;
    m->in_dtype = NB_I64;
    info_add(m, "%lld x %lld", (long long)o.num, (long long)o.dim);
    const int first = model->ps->n;
    return finish(m, __func__, first,
                  o.has_padding_idx
                      ? nb_embedding_layer_init_padded(m->state, model->ps, m->name, o.num, o.dim, o.padding_idx, &m->rng)
                      : nb_embedding_layer_init(m->state, model->ps, m->name, o.num, o.dim, &m->rng));
}

typedef struct {
    nb_rnn_layer layer;
    bool batch_first, last;
} rnn_state;

static nb_tensor *rnn_forward(nb_ctx *ctx, const nb_module *m, nb_tensor *x) {
    const rnn_state *s = m->state;
    if (s->batch_first) x = nb_contiguous(ctx, nb_transpose(ctx, x, 0, 1)); /* (N, T, F) -> (T, N, F) */
    nb_tensor *h_last = NULL, *y = nb_rnn_layer_forward(ctx, &s->layer, x, NULL, NULL, &h_last, NULL);
    if (s->last) return y ? h_last : NULL;
    return s->batch_first ? nb_transpose(ctx, y, 0, 1) : y;
}

nb_module *nb_rnn_module(nb_model *model, nb_rnn_opts o) {
    static const char *const kinds[] = {"RNN", "LSTM", "GRU"};
    if (!model_ok(model, __func__ + 3)) return NULL;
    if ((unsigned)o.kind > NB_GRU) return model_fail(model, NB_ERR_VALUE, "%s: unknown kind %d", __func__ + 3, (int)o.kind);
    nb_module *m = make(model, __func__, kinds[o.kind], o.name, rnn_forward, sizeof(rnn_state));
    if (!m) return NULL;
    rnn_state *s = m->state;
    s->batch_first = o.batch_first, s->last = o.last;
    info_add(m, "%lld->%lld%s%s", (long long)o.in, (long long)o.hidden, o.batch_first ? ", batch first" : "",
             o.last ? ", last state" : "");
    const int first = model->ps->n;
    return finish(m, __func__, first,
                  nb_rnn_layer_init(&s->layer, model->ps, m->name, o.kind, o.in, o.hidden, !o.no_bias, &m->rng));
}

/* ---- layers without parameters ------------------------------------------------------------------ */
typedef struct {
    int kernel, stride, padding;
} pool_state;

static nb_tensor *max_pool_forward(nb_ctx *ctx, const nb_module *m, nb_tensor *x) {
    const pool_state *s = m->state;
    return nb_max_pool2d(ctx, x, s->kernel, s->stride, s->padding);
}

static nb_tensor *avg_pool_forward(nb_ctx *ctx, const nb_module *m, nb_tensor *x) {
    const pool_state *s = m->state;
    return nb_avg_pool2d(ctx, x, s->kernel, s->stride, s->padding);
}

static nb_module *pool(nb_model *model, const char *fn, const char *kind, nb_module_fn forward, nb_pool2d_opts o) {
    nb_module *m = make(model, fn, kind, o.name, forward, sizeof(pool_state));
    if (!m) return NULL;
    const int64_t stride = o.stride ? o.stride : o.kernel;
    if (o.kernel < 1 || o.kernel > INT32_MAX || stride < 1 || stride > INT32_MAX || o.padding < 0 || o.padding > o.kernel / 2)
        return model_fail(model, NB_ERR_VALUE, "%s '%s': kernel %lld, stride %lld, padding %lld (kernel >= 1, stride >= 0, "
                          "padding in [0, kernel/2])", fn + 3, m->name, (long long)o.kernel, (long long)o.stride, (long long)o.padding);
    *(pool_state *)m->state = (pool_state){(int)o.kernel, (int)stride, (int)o.padding};
    info_add(m, "%lldx%lld, stride %lld%s", (long long)o.kernel, (long long)o.kernel,
             (long long)stride, o.padding ? ", padded" : "");
    return m;
}

nb_module *nb_max_pool2d_module(nb_model *model, nb_pool2d_opts o) { return pool(model, __func__, "MaxPool2d", max_pool_forward, o); }
nb_module *nb_avg_pool2d_module(nb_model *model, nb_pool2d_opts o) { return pool(model, __func__, "AvgPool2d", avg_pool_forward, o); }

static nb_tensor *adaptive_pool_forward(nb_ctx *ctx, const nb_module *m, nb_tensor *x) {
    const int64_t *out = m->state;
    return nb_adaptive_avg_pool2d(ctx, x, out[0], out[1]);
}

nb_module *nb_adaptive_avg_pool2d_module(nb_model *model, nb_adaptive_pool2d_opts o) {
    nb_module *m = make(model, __func__, "AdaptiveAvgPool2d", o.name, adaptive_pool_forward, 2 * sizeof(int64_t));
    if (!m) return NULL;
    int64_t *out = m->state;
    out[0] = o.out_h ? o.out_h : 1, out[1] = o.out_w ? o.out_w : 1;
    if (out[0] < 1 || out[1] < 1)
        return model_fail(model, NB_ERR_VALUE, "%s '%s': output %lldx%lld", __func__ + 3, m->name,
                          (long long)out[0], (long long)out[1]);
    info_add(m, "to %lldx%lld", (long long)out[0], (long long)out[1]);
    return m;
}

static nb_tensor *unary_forward(nb_ctx *ctx, const nb_module *m, nb_tensor *x) {
    return (*(const nb_unary_op *)m->state)(ctx, x);
}

static nb_module *unary(nb_model *model, const char *fn, const char *kind, nb_unary_op op, const char *name) {
    if (!model_ok(model, fn + 3)) return NULL;
    if (!op) return model_fail(model, NB_ERR_NULL, "%s: op is NULL", fn + 3);
    nb_module *m = make(model, fn, kind, name, unary_forward, sizeof op);
    if (m) *(nb_unary_op *)m->state = op;
    return m;
}

/* modules whose forward is one element-wise op on their input (the built-in activations, not
 * a user's function, which may read its input twice) */
static bool one_op(const nb_module *m) {
    if (m->forward == batch_norm_forward) return true;
    if (m->forward != unary_forward) return false;
    const nb_unary_op op = *(const nb_unary_op *)m->state;
    return op == nb_relu || op == nb_gelu || op == nb_tanh || op == nb_sigmoid;
}

nb_module *nb_unary_module(nb_model *model, const char *kind, nb_unary_op op, const char *name) {
    return unary(model, __func__, kind, op, name);
}

static nb_tensor *flatten1(nb_ctx *ctx, nb_tensor *x) { return nb_flatten(ctx, x, 1); }

nb_module *nb_relu_module(nb_model *model, const char *name) { return unary(model, __func__, "ReLU", nb_relu, name); }
nb_module *nb_gelu_module(nb_model *model, const char *name) { return unary(model, __func__, "GELU", nb_gelu, name); }
nb_module *nb_tanh_module(nb_model *model, const char *name) { return unary(model, __func__, "Tanh", nb_tanh, name); }
nb_module *nb_sigmoid_module(nb_model *model, const char *name) { return unary(model, __func__, "Sigmoid", nb_sigmoid, name); }
nb_module *nb_flatten_module(nb_model *model, const char *name) { return unary(model, __func__, "Flatten", flatten1, name); }

static nb_tensor *leaky_relu_forward(nb_ctx *ctx, const nb_module *m, nb_tensor *x) {
    return nb_leaky_relu(ctx, x, *(const double *)m->state);
}

nb_module *nb_leaky_relu_module(nb_model *model, const char *name, double slope) {
    nb_module *m = make(model, __func__, "LeakyReLU", name, leaky_relu_forward, sizeof slope);
    if (!m) return NULL;
    *(double *)m->state = slope ? slope : 0.01;
    info_add(m, "slope %g", *(double *)m->state);
    return m;
}

static nb_tensor *dropout_forward(nb_ctx *ctx, const nb_module *m, nb_tensor *x) {
    return nb_dropout(ctx, x, *(const double *)m->state);
}

nb_module *nb_dropout_module(nb_model *model, const char *name, double p) {
    nb_module *m = make(model, __func__, "Dropout", name, dropout_forward, sizeof p);
    if (!m) return NULL;
    if (!(p >= 0.0 && p < 1.0)) return model_fail(model, NB_ERR_VALUE, "%s '%s': p = %g outside [0, 1)", __func__ + 3, m->name, p);
    *(double *)m->state = p;
    info_add(m, "p = %g", p);
    return m;
}
