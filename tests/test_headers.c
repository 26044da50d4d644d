/* The public headers are the manual and the op list: every op declared there returning a
 * tensor from a context has its call-site macro (anomaly reports name the user's call), and
 * anomaly reports name the outermost op the user called, never a stale site. */
#include "common.h"
#include "tmpdir.h" /* slurp() */

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
