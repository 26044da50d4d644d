/* The public headers are the manual and the op list: every op declared there returning a
 * tensor from a context has its call-site macro (anomaly reports name the user's call), the
 * example programs in their comments compile without a warning under -Wall -Wextra, and
 * anomaly reports name the outermost op the user called, never a stale site. */
#include "common.h"
#include "tmpdir.h" /* slurp() */

#include <dirent.h>

TestSuite(headers, .init = ctx_setup, .fini = ctx_teardown);

static char *slurp_header(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/include/nabla/%s", NB_SOURCE_DIR, name);
    return slurp(path, NULL);
}

Test(headers, every_public_op_records_its_call_site) {
    static const char *headers[] = {"graph.h", "ops.h", "nn.h", "regularize.h", "module.h"};
    int ops = 0;
    for (size_t h = 0; h < sizeof headers / sizeof *headers; h++) {
        char *s = slurp_header(headers[h]);
        for (char *p = s; (p = strstr(p, "\nnb_tensor *nb_")); p++) {
            char name[96];
            if (sscanf(p + 12, "%95[a-z0-9_](nb_ctx *ctx", name) != 1 || !strstr(p, "(nb_ctx *ctx")) continue;
            char *paren = strchr(p + 12, '(');
            if (!paren || strncmp(paren, "(nb_ctx *ctx", 12) != 0) continue;
            char want[256];
            snprintf(want, sizeof want, "#define %s(...) NB__AT(%s, __VA_ARGS__)", name, name);
            cr_assert_not_null(strstr(s, want), "%s: %s has no call-site macro (add: %s)", headers[h], name, want);
            ops++;
        }
        free(s);
    }
    cr_assert_gt(ops, 100, "found only %d ops in the headers", ops);
}

Test(headers, anomaly_names_the_outermost_op_and_the_users_line) {
    nb_ctx_set_anomaly(ctx, true);
    /* a NaN made inside batch norm (a composite: its inner ops are not the user's call) */
    nb_tensor *x = nb_full(ctx, NB_F64, NB_SHAPE(2, 3, 2, 2), 1.0);
    nb_tensor *w = nb_full(ctx, NB_F64, NB_SHAPE(3), NAN);
    nb_requires_grad(w, true);
    nb_tensor *ok = nb_exp(ctx, x); /* an earlier call on another line must not be reported */
    cr_assert_not_null(ok);
    const int line = __LINE__ + 1;
    nb_tensor *y = nb_batch_norm(ctx, x, w, NULL, NULL, NULL, 0.1, 1e-5);
    cr_assert_null(y);
    char site[64];
    snprintf(site, sizeof site, "test_headers.c:%d", line);
    cr_assert(strstr(nb_ctx_error(ctx), "inside batch_norm") || strstr(nb_ctx_error(ctx), "nb_batch_norm"),
              "%s", nb_ctx_error(ctx));
    cr_assert(strstr(nb_ctx_error(ctx), site), "%s (want %s)", nb_ctx_error(ctx), site);
    /* outside any call the site stack is empty: nothing stale for the next report */
    const char *file;
    int l;
    cr_assert_null(nb__site_op(&file, &l));
}

/* A header's example program: the comment lines after EXAMPLE_MARK, indented by " *   ". */
#define EXAMPLE_MARK " * Example (a complete program, compiled by tests/test_headers.c):\n"

static bool write_example(const char *header, FILE *out) {
    const char *p = strstr(header, EXAMPLE_MARK);
    if (!p) return false;
    fputs("#include <nabla/nabla.h>\n#include <math.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n", out);
    for (p += strlen(EXAMPLE_MARK); !strncmp(p, " *   ", 5) || !strncmp(p, " *\n", 3);) {
        const char *eol = strchr(p, '\n');
        if (p[2] != '\n') fwrite(p + 5, 1, (size_t)(eol - p - 4), out);
        else fputc('\n', out);
        p = eol + 1;
    }
    return true;
}

Test(headers, examples_compile_without_warnings) {
    char incdir[512];
    snprintf(incdir, sizeof incdir, "%s/include/nabla", NB_SOURCE_DIR);
    DIR *d = opendir(incdir);
    cr_assert_not_null(d);
    tmpdir_setup();
    int compiled = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strstr(e->d_name, ".h")) continue;
        char *text = slurp_header(e->d_name);
        FILE *f = fopen(tmp("example.c"), "w");
        const bool has = write_example(text, f);
        fclose(f);
        free(text);
        if (!has) continue;
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "%s -std=c11 -Wall -Wextra -Werror -I%s/include -c %s/example.c -o %s/example.o 2> %s/cc.log",
                 NB_C_COMPILER, NB_SOURCE_DIR, dir, dir, dir);
        if (system(cmd) != 0) {
            char *log = slurp(tmp("cc.log"), NULL), *src = slurp(tmp("example.c"), NULL);
            cr_assert_fail("the example of %s does not compile cleanly:\n%s\n%s", e->d_name, log, src);
        }
        compiled++;
    }
    closedir(d);
    tmpdir_teardown();
    cr_assert_geq(compiled, 2, "found %d examples (module.h, search.h at least)", compiled);
}
