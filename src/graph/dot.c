/* Graphviz DOT export of the recorded graph that produced a tensor. The tape is already in
 * topological order, so one reverse pass from out's node finds everything out depends on. */
#include "../internal.h"

/* s inside a quoted DOT string: quotes and backslashes escaped, a newline as \n; other control
 * bytes dropped and bytes that are not UTF-8 written as U+FFFD, since Graphviz copies them into
 * the SVG it renders, which XML parsers then refuse */
void nb__dot_escaped(FILE *f, const char *s) {
    while (*s) {
        const int n = nb__utf8_len((const unsigned char *)s);
        if (n != 1) {
            if (n == 0) fputs(NB__REPLACEMENT_CHAR, f), s++;
            else fwrite(s, 1, (size_t)n, f), s += n;
            continue;
        }
        if (*s == '"' || *s == '\\') fputc('\\', f), fputc(*s, f);
        else if (*s == '\n') fputs("\\n", f);
        else if ((unsigned char)*s >= 0x20) fputc(*s, f);
        s++;
    }
}

/* Leaves are numbered in the order the walk meets them (not by address), so two runs of the same
 * program write the same file. */
static void put_leaf(FILE *f, const nb_tensor *t, int64_t id) {
    char b[128];
    fprintf(f, "  \"t%lld\" [shape=ellipse, label=\"", (long long)id);
    nb__dot_escaped(f, t->name ? t->name : (t->requires_grad ? "leaf" : "const"));
    fprintf(f, "\\n%s %s%s\"%s];\n", nb_dtype_name(t->dtype), nb_shape_str(t, b, sizeof b),
            t->requires_grad ? "\\nrequires_grad" : "", t->requires_grad ? ", style=filled, fillcolor=lightblue" : "");
}

/* true when t's node is a live entry of ctx's tape (not released, not another context's) */
static bool on_tape(const nb_ctx *ctx, const nb_tensor *t) {
    return t->node && t->node->seq >= 0 && t->node->seq < ctx->tape_len && ctx->tape[t->node->seq] == t->node;
}

nb_status nb_graph_dot(nb_ctx *ctx, const nb_tensor *out, FILE *f) {
    if (!ctx || !out || !f) return nb_set_error(NB_ERR_NULL, "graph_dot: NULL argument");
    /* slot marks: 1 = reachable; a leaf already written: -2 - its number */
    if (on_tape(ctx, out) && !nb__walk_begin(ctx, out->node->seq, 1)) return ctx->status;
    fprintf(f, "digraph nabla {\n  rankdir=BT;\n  node [fontname=\"Helvetica\", fontsize=10];\n");
    int64_t leaves = 0;
    if (!on_tape(ctx, out)) {
        put_leaf(f, out, 0);
    } else {
        nb__walk_slot(ctx, out)->visit = 1;
        char b[128];
        for (int64_t s = out->node->seq; s >= 0; s--) {
            const nb_node *n = ctx->tape[s];
            if (nb__walk_slot(ctx, n->out)->visit != 1) continue;
            fprintf(f, "  \"n%lld\" [shape=box%s, label=\"", (long long)n->seq,
                    n->out == out ? ", style=\"filled,bold\", fillcolor=gold" : ""); /* the output (the loss) */
            nb__dot_escaped(f, n->op->name);
            fprintf(f, "\\n%s %s\"];\n", nb_dtype_name(n->out->dtype), nb_shape_str(n->out, b, sizeof b));
            for (int j = 0; j < n->n_in; j++) {
                nb_tensor *in = n->in[j];
                if (on_tape(ctx, in)) {
                    nb__walk_slot(ctx, in)->visit = 1;
                    fprintf(f, "  \"n%lld\" -> \"n%lld\";\n", (long long)in->node->seq, (long long)n->seq);
                } else {
                    nb_walk_slot *sl = nb__walk_slot(ctx, in);
                    if (sl->visit > -2) {
                        sl->visit = -2 - leaves;
                        put_leaf(f, in, leaves++);
                    }
                    fprintf(f, "  \"t%lld\" -> \"n%lld\";\n", (long long)(-2 - sl->visit), (long long)n->seq);
                }
            }
        }
    }
    fprintf(f, "}\n");
    if (fflush(f) != 0 || ferror(f)) return nb__fail(ctx, NB_ERR_IO, "graph_dot: write failed"), NB_ERR_IO;
    return NB_OK;
}
