/* Graphviz export (src/graph/dot.c): content checks, and `dot -Tsvg` when graphviz is installed. */
#include "common.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

TestSuite(dot, .init = ctx_setup, .fini = ctx_teardown);

static char *dot_text(const nb_tensor *out, const char *path) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(nb_graph_dot(ctx, out, f), NB_OK, "%s", nb_last_error());
    fclose(f);
    f = fopen(path, "r");
    static char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

Test(dot, graph_content_and_graphviz_accepts_it) {
    nb_tensor *x = rand_leaf(ctx, NB_SHAPE(2, 3)), *w = rand_leaf(ctx, NB_SHAPE(3, 4));
    x->name = "input \"x\"";  /* quotes must be escaped */
    w->name = "W";
    nb_tensor *c = nb_full(ctx, NB_F64, NB_SHAPE(4), 2.0);
    nb_tensor *h = nb_tanh(ctx, nb_matmul(ctx, x, w));
    nb_tensor *y = nb_sum_all(ctx, nb_mul(ctx, nb_add(ctx, h, h), c));  /* h used twice */
    nb_tensor *unrelated = nb_exp(ctx, x);  /* on the tape, not part of y's graph */
    (void)unrelated;
    const char *path = NB_BINARY_DIR "/test_dot_graph.dot";
    char *s = dot_text(y, path);
    cr_assert(strncmp(s, "digraph", 7) == 0, "%s", s);
    cr_assert(strstr(s, "}\n"));
    cr_assert_eq(count(s, "shape=box"), 5, "%s", s);  /* matmul, tanh, add, mul, sum */
    cr_assert_eq(count(s, "shape=ellipse"), 3, "%s", s);  /* x, W, the constant */
    cr_assert(strstr(s, "\"matmul\\nf64 (2,4)\"") && strstr(s, "\"tanh\\nf64 (2,4)\"") && strstr(s, "\"sum\\nf64 ()\""), "%s", s);
    cr_assert(strstr(s, "input \\\"x\\\"\\nf64 (2,3)\\nrequires_grad"), "%s", s);
    cr_assert(strstr(s, "W\\nf64 (3,4)\\nrequires_grad"), "%s", s);
    cr_assert(strstr(s, "const\\nf64 (4)\""), "%s", s);
    cr_assert(!strstr(s, "exp"), "unrelated op exported: %s", s);
    cr_assert_eq(count(s, "->"), 8, "%s", s);  /* x,W->matmul, ->tanh, tanh->add twice, add,c->mul, ->sum */

    if (system("command -v dot > /dev/null 2>&1") != 0) {
        cr_log_warn("graphviz not installed: skipping dot -Tsvg");
        return;
    }
    char cmd[1024];
    const char *svg = NB_BINARY_DIR "/test_dot_graph.svg";
    snprintf(cmd, sizeof cmd, "dot -Tsvg '%s' -o '%s' 2>&1", path, svg);
    cr_assert_eq(system(cmd), 0, "dot rejected %s:\n%s", path, s);
    FILE *f = fopen(svg, "r");
    cr_assert_not_null(f);
    char head[256] = {0};
    cr_assert(fread(head, 1, sizeof head - 1, f) > 0);
    fclose(f);
    cr_assert(strstr(head, "<svg") || strstr(head, "<?xml"), "%s", head);
}



/* Names with control bytes and bytes that are not UTF-8 (Graphviz copied them into an SVG that
 * XML parsers refuse): dropped / U+FFFD; a newline still becomes \\n. */
Test(dot, names_are_written_as_clean_text) {
    nb_tensor *x = nb_ones(ctx, NB_F64, NB_SHAPE(2));
    nb_requires_grad(x, true);
    x->name = "x\x01\xff\nz";
    char *dot = dot_text(nb_sum_all(ctx, nb_exp(ctx, x)), "/tmp/nabla_test_dot_bytes.dot");
    cr_assert(clean_text(dot), "DOT text holds control bytes or bytes that are not UTF-8: %s", dot);
    cr_assert(strstr(dot, "x\xef\xbf\xbd\\nz"), "%s", dot);
}

Test(dot, leaf_only_and_errors) {
    nb_tensor *x = nb_ones(ctx, NB_F32, NB_SHAPE(5));
    char *s = dot_text(x, NB_BINARY_DIR "/test_dot_leaf.dot");
    cr_assert_eq(count(s, "shape=ellipse"), 1, "%s", s);
    cr_assert(strstr(s, "const\\nf32 (5)") && !strstr(s, "->"), "%s", s);
    cr_assert_eq(nb_graph_dot(NULL, x, stdout), NB_ERR_NULL);
    cr_assert_eq(nb_graph_dot(ctx, x, NULL), NB_ERR_NULL);
}

/* The same program gives the same file: ids come from the tape and the walk, not from addresses
 * (the second graph lives elsewhere in the arena, after the first); the output is highlighted. */
static nb_tensor *small_net(void) {
    nb_tensor *x = nb_randn(ctx, NB_F64, NB_SHAPE(2, 3)), *w = rand_leaf(ctx, NB_SHAPE(3, 2));
    x->name = "x";
    return nb_sum_all(ctx, nb_tanh(ctx, nb_matmul(ctx, x, w)));
}

Test(dot, same_program_same_file) {
    char first[16384];
    nb_tensor *junk = nb_zeros(ctx, NB_F64, NB_SHAPE(7, 11)); /* shifts every address of the second run */
    (void)junk;
    nb_tensor *y = small_net();
    strcpy(first, dot_text(y, NB_BINARY_DIR "/test_dot_stable.dot"));
    nb_ctx_reset(ctx);
    (void)nb_zeros(ctx, NB_F64, NB_SHAPE(13, 17));
    y = small_net();
    const char *second = dot_text(y, NB_BINARY_DIR "/test_dot_stable.dot");
    cr_assert_str_eq(first, second);
    cr_assert_eq(count(second, "fillcolor=gold"), 1, "the output is highlighted once: %s", second);
    cr_assert(strstr(second, "\"t0\"") && strstr(second, "\"t1\""), "%s", second);
}
