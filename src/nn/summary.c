/* Looking at a model: the parameter count, the summary table (Keras's model.summary(),
 * torchinfo) and the module tree as Graphviz DOT. */
#include "../internal.h"

#include <stdlib.h>

/* The tree in pre-order: one row per place a module appears (a shared module appears twice). */
typedef struct {
    const nb_module *m;
    int depth;
} tree_row;
typedef struct {
    tree_row *rows;
    int n, cap;
    bool nomem;
} tree;

static void tree_walk(tree *t, const nb_module *m, int depth) {
    if (t->n == t->cap) {
        tree_row *r = realloc(t->rows, (size_t)(t->cap ? 2 * t->cap : 32) * sizeof *r);
        if (!r) {
            t->nomem = true;
            return;
        }
        t->rows = r, t->cap = t->cap ? 2 * t->cap : 32;
    }
    t->rows[t->n++] = (tree_row){m, depth};
    for (int i = 0; i < m->n_children; i++) tree_walk(t, m->children[i], depth + 1);
}

/* row i is the first place its module appears (count it once) */
static bool first_place(const tree *t, int i) {
    for (int j = 0; j < i; j++)
        if (t->rows[j].m == t->rows[i].m) return false;
    return true;
}

static int64_t count(nb_tensor *const *ts, int n, int64_t *bytes) {
    int64_t c = 0;
    for (int i = 0; i < n; i++) c += ts[i]->numel, *bytes += ts[i]->numel * (int64_t)nb_dtype_size(ts[i]->dtype);
    return c;
}

int64_t nb_module_num_params(const nb_module *m) {
    if (!m) return nb_set_error(NB_ERR_NULL, "module_num_params: module is NULL"), -1;
    tree t = {0};
    tree_walk(&t, m, 0);
    int64_t n = 0, bytes = 0;
    for (int i = 0; i < t.n; i++)
        if (first_place(&t, i)) n += count(t.rows[i].m->params, t.rows[i].m->n_params, &bytes);
    free(t.rows);
    return t.nomem ? (nb_set_error(NB_ERR_NOMEM, "module_num_params: out of memory"), -1) : n;
}

/* 1234567 -> "1,234,567" */
static char *grouped(int64_t v, char *buf) {
    char digits[32];
    const int n = snprintf(digits, sizeof digits, "%lld", (long long)v);
    int k = 0;
    for (int i = 0; i < n; i++) {
        buf[k++] = digits[i];
        if (digits[i] != '-' && (n - 1 - i) % 3 == 0 && i < n - 1) buf[k++] = ',';
    }
    buf[k] = 0;
    return buf;
}

/* bytes in Keras's units: "640 B", "48.2 KB", "1.5 MB" (1 KB = 1024 B) */
static char *human(int64_t bytes, char *buf, size_t len) {
    static const char *unit[] = {"B", "KB", "MB", "GB", "TB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) v /= 1024, u++;
    if (u == 0) snprintf(buf, len, "%lld B", (long long)bytes);
    else snprintf(buf, len, "%.1f %s", v, unit[u]);
    return buf;
}

static char *out_shape(const nb_module *m, char *buf, size_t len) {
    if (m->out_ndim_ < 0) return snprintf(buf, len, "-"), buf;
    return nb__dims_str(m->out_ndim_, m->out_shape_, buf, len);
}

static void print_table(const nb_module *root, const tree *t, int ndim, const int64_t *shape, FILE *f) {
    char b1[128], b2[64], b3[64];
    int wname = (int)strlen("Layer (type)"), wshape = (int)strlen("Output shape");
    for (int i = 0; i < t->n; i++) {
        const nb_module *m = t->rows[i].m;
        const int w = 2 * t->rows[i].depth + (int)(strlen(m->name) + strlen(m->kind)) + 3;
        const int ws = (int)strlen(out_shape(m, b1, sizeof b1));
        if (w > wname) wname = w;
        if (ws > wshape) wshape = ws;
    }
    const int width = wname + 2 + wshape + 2 * 13;
    fprintf(f, "Model \"%s\" (%s), input %s %s\n", root->name, root->kind, nb__dims_str(ndim, shape, b1, sizeof b1),
            nb_dtype_name(root->in_dtype));
    fprintf(f, "%-*s  %-*s %12s %12s\n", wname, "Layer (type)", wshape, "Output shape", "Param #", "Bytes");
    for (int i = 0; i < width; i++) fputc('=', f);
    fputc('\n', f);
    int64_t params = 0, param_bytes = 0, buffers = 0, buffer_bytes = 0, outputs = 0, output_bytes = 0;
    for (int i = 0; i < t->n; i++) {
        const nb_module *m = t->rows[i].m;
        int64_t pb = 0, bb = 0;
        const int64_t np = count(m->params, m->n_params, &pb), nbuf = count(m->buffers, m->n_buffers, &bb);
        if (first_place(t, i)) params += np, param_bytes += pb, buffers += nbuf, buffer_bytes += bb;
        if (m->n_children == 0 && m->out_ndim_ >= 0) {
            const int64_t n = nb__numel(m->out_ndim_, m->out_shape_);
            outputs += n, output_bytes += n * (int64_t)nb_dtype_size(m->out_dtype_);
        }
        char label[300];
        snprintf(label, sizeof label, "%*s%s (%s)", 2 * t->rows[i].depth, "", m->name, m->kind);
        const bool dashes = m->n_children > 0 && np == 0 && nbuf == 0;
        fprintf(f, "%-*s  %-*s %12s %12s\n", wname, label, wshape, out_shape(m, b1, sizeof b1),
                dashes ? "--" : grouped(np, b2), dashes ? "--" : grouped(pb + bb, b3));
    }
    for (int i = 0; i < width; i++) fputc('=', f);
    fputc('\n', f);
    fprintf(f, "Parameters: %s (%s)\n", grouped(params, b2), human(param_bytes, b1, sizeof b1));
    fprintf(f, "Buffers, not trained: %s (%s)\n", grouped(buffers, b2), human(buffer_bytes, b1, sizeof b1));
    fprintf(f, "Layer outputs of one forward pass: %s values (%s)\n", grouped(outputs, b2),
            human(output_bytes, b1, sizeof b1));
}

nb_status nb_module_summary(const nb_module *m, nb_ctx *ctx, int ndim, const int64_t *shape, FILE *f) {
    if (!m || !ctx || !f) return nb_set_error(NB_ERR_NULL, "module_summary: NULL argument");
    tree t = {0};
    tree_walk(&t, m, 0);
    if (t.nomem) return free(t.rows), nb_set_error(NB_ERR_NOMEM, "module_summary: out of memory");
    for (int i = 0; i < t.n; i++) ((nb_module *)t.rows[i].m)->out_ndim_ = -1; /* the model's own modules */
    /* one traced forward on zeros, in eval mode without a graph; the arena is given back */
    const bool train = nb_ctx_is_train(ctx);
    const nb_mark mark = nb_ctx_mark(ctx);
    nb_tensor *y = NULL;
    nb_ctx_set_train(ctx, false);
    m->model->tracing_ = true;
    NB_NO_GRAD(ctx) { y = nb_module_forward(ctx, m, nb_zeros(ctx, m->in_dtype, ndim, shape)); }
    m->model->tracing_ = false;
    nb_ctx_set_train(ctx, train);
    nb_status st = NB_OK;
    nb_ctx_release(ctx, mark);
    if (!y) {
        st = ctx->status ? ctx->status : NB_ERR_STATE;
        nb_set_error(st, "module_summary: %s", ctx->msg);
    } else {
        print_table(m, &t, ndim, shape, f);
        if (fflush(f) != 0 || ferror(f)) st = nb_set_error(NB_ERR_IO, "module_summary: write failed");
    }
    free(t.rows);
    return st;
}

nb_status nb_module_dot(const nb_module *m, FILE *f) {
    if (!m || !f) return nb_set_error(NB_ERR_NULL, "module_dot: NULL argument");
    tree t = {0};
    tree_walk(&t, m, 0);
    if (t.nomem) return free(t.rows), nb_set_error(NB_ERR_NOMEM, "module_dot: out of memory");
    /* node ids: the index of a module's first place in the pre-order, so they follow the tree */
    fprintf(f, "digraph model {\n  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fillcolor=white, fontname=\"Helvetica\", "
               "fontsize=10];\n");
    char b1[128], b2[64];
    for (int i = 0; i < t.n; i++) {
        const nb_module *c = t.rows[i].m;
        if (!first_place(&t, i)) continue;
        int64_t bytes = 0;
        const int64_t np = count(c->params, c->n_params, &bytes);
        fprintf(f, "  m%d [label=\"", i);
        nb__dot_escaped(f, c->name);
        fputs("\\n", f);
        nb__dot_escaped(f, c->kind);
        if (c->info[0]) fputs(" ", f), nb__dot_escaped(f, c->info);
        if (np) fprintf(f, "\\n%s parameters", grouped(np, b2));
        if (c->out_ndim_ >= 0) fprintf(f, "\\nout %s", out_shape(c, b1, sizeof b1));
        fprintf(f, "\"%s];\n", c->n_children ? ", fillcolor=gray95" : np ? ", fillcolor=lightblue" : "");
    }
    for (int i = 0; i < t.n; i++) {
        if (!first_place(&t, i)) continue;
        for (int k = 0; k < t.rows[i].m->n_children; k++)
            for (int j = 0; j < t.n; j++) /* the child's first place */
                if (t.rows[j].m == t.rows[i].m->children[k]) {
                    fprintf(f, "  m%d -> m%d;\n", i, j);
                    break;
                }
    }
    fprintf(f, "}\n");
    free(t.rows);
    return fflush(f) != 0 || ferror(f) ? nb_set_error(NB_ERR_IO, "module_dot: write failed") : NB_OK;
}
