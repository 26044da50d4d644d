/* The plumbing shared by the Fashion-MNIST examples, so each example shows only its model and
 * training loop: command-line options from a table, the data set cut into train / validation /
 * test subsets, and a wall clock. Header-only (static functions), not part of the library. */
#ifndef NABLA_EXAMPLE_UTIL_H
#define NABLA_EXAMPLE_UTIL_H

#include <math.h>
#include <nabla/nabla.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ex_output.h"

/* ---- options ------------------------------------------------------------------------------ */
typedef enum { EX_INT, EX_REAL, EX_STR } ex_kind;
typedef struct {
    const char *name; /* "--epochs" */
    ex_kind kind;
    void *dst;        /* int64_t *, double * or const char ** */
    double lo, hi;    /* accepted range (numbers) */
    const char *help;
} ex_opt;

static void ex_usage(FILE *f, const char *prog, const ex_opt *opts, int n) {
    fprintf(f, "usage: %s [options]\n", prog);
    for (int i = 0; i < n; i++) {
        char def[64] = "";
        if (opts[i].kind == EX_INT) snprintf(def, sizeof def, " (default %lld)", (long long)*(int64_t *)opts[i].dst);
        if (opts[i].kind == EX_REAL) snprintf(def, sizeof def, " (default %g)", *(double *)opts[i].dst);
        fprintf(f, "  %-16s %s%s\n", opts[i].name, opts[i].help, def);
    }
}

/* Parse "--name value" pairs into the table's destinations (which hold the defaults). --help
 * prints the usage and exits 0; an unknown option, a missing value, a value that is not a
 * number (or not an integer) or is out of range prints why and returns false. */
static bool ex_parse(int argc, char **argv, const char *prog, const ex_opt *opts, int n) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            ex_usage(stdout, prog, opts, n);
            exit(0);
        }
        int k = 0;
        while (k < n && strcmp(a, opts[k].name)) k++;
        if (k == n) {
            fprintf(stderr, "%s: unknown option '%s'\n", prog, a);
            ex_usage(stderr, prog, opts, n);
            return false;
        }
        if (i + 1 >= argc) return fprintf(stderr, "%s: %s needs a value\n", prog, a), false;
        const char *v = argv[++i];
        if (opts[k].kind == EX_STR) {
            *(const char **)opts[k].dst = v;
            continue;
        }
        char *end;
        double d = strtod(v, &end);
        bool integer = opts[k].kind == EX_INT;
        if (end == v || *end || !(d >= opts[k].lo && d <= opts[k].hi) || (integer && d != floor(d))) {
            fprintf(stderr, "%s: %s must be %s in [%g, %g], got '%s'\n", prog, a, integer ? "an integer" : "a number",
                    opts[k].lo, opts[k].hi, v);
            return false;
        }
        if (integer) *(int64_t *)opts[k].dst = (int64_t)d;
        else *(double *)opts[k].dst = d;
    }
    return true;
}

/* ---- data ------------------------------------------------------------------------------------ */
typedef struct {
    nb_tensor *x_train, *y_train, *x_val, *y_val, *x_test, *y_test; /* long-lived, owned */
} ex_data;

/* Load Fashion-MNIST from dir (NULL: the default location), keep the first `subset` training
 * images (0: all 60000) and the first `test` test images (0: all 10000), and hold out `val` of
 * the kept training images (a seeded random choice) for validation. Images are (N, 784) or,
 * with nchw, (N, 1, 28, 28); standardized with the training set's mean and std, or in [0, 1].
 * Returns false after printing the library's message. */
static bool ex_load(const char *prog, const char *dir, bool nchw, bool standardize, int64_t subset, int64_t val,
                    int64_t test, uint64_t seed, ex_data *out) {
    nb_image_opts io = {.nchw = nchw, .standardize = standardize};
    nb_mnist d;
    *out = (ex_data){0};
    if (nb_fashion_mnist_load(dir, &io, &d) != NB_OK) return fprintf(stderr, "%s: %s\n", prog, nb_last_error()), false;
    int64_t n = subset ? subset : d.train_x->shape[0], nt = test ? test : d.test_x->shape[0];
    if (n > d.train_x->shape[0] || nt > d.test_x->shape[0] || val >= n) {
        fprintf(stderr, "%s: cannot take %lld training images (%lld of them for validation) and %lld test images "
                        "from a set of %lld and %lld\n",
                prog, (long long)n, (long long)val, (long long)nt, (long long)d.train_x->shape[0],
                (long long)d.test_x->shape[0]);
        nb_mnist_free(&d);
        return false;
    }
    int64_t m = n > nt ? n : nt, *idx = malloc(sizeof *idx * (size_t)m);
    for (int64_t i = 0; idx && i < m; i++) idx[i] = i;
    nb_tensor *x = idx ? nb_take_rows(d.train_x, idx, n) : NULL, *y = idx ? nb_take_rows(d.train_y, idx, n) : NULL;
    if (idx) out->x_test = nb_take_rows(d.test_x, idx, nt), out->y_test = nb_take_rows(d.test_y, idx, nt);
    free(idx);
    nb_status s = x && y && out->x_test && out->y_test
                      ? nb_split(x, y, val, seed, &out->x_train, &out->y_train, &out->x_val, &out->y_val)
                      : NB_ERR_NOMEM;
    nb_tensor_free(x), nb_tensor_free(y);
    nb_mnist_free(&d);
    if (s != NB_OK) {
        fprintf(stderr, "%s: %s\n", prog, nb_last_error());
        return false;
    }
    return true;
}

static void ex_data_free(ex_data *d) {
    nb_tensor *t[] = {d->x_train, d->y_train, d->x_val, d->y_val, d->x_test, d->y_test};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) nb_tensor_free(t[i]);
    *d = (ex_data){0};
}

/* ---- time ----------------------------------------------------------------------------------- */
static double ex_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A classifier's forward pass: x (N, ...) -> logits (N, classes). */
typedef nb_tensor *(*ex_forward_fn)(nb_ctx *ctx, const void *model, nb_tensor *x);

/* Accuracy over (x, y) in eval mode, without a graph, 500 rows at a time (one arena reset each). */
static inline double ex_accuracy(nb_ctx *ctx, ex_forward_fn forward, const void *model, const nb_tensor *x,
                                 const nb_tensor *y) {
    nb_batcher *it = nb_batcher_new(x, y, &(nb_batch_opts){.batch_size = 500});
    int64_t correct = 0;
    nb_batch b;
    nb_ctx_set_train(ctx, false);
    NB_NO_GRAD(ctx) {
        while (it && nb_batcher_next(it, &b)) {
            nb_tensor *pred = nb_argmax(ctx, forward(ctx, model, b.x), 1, false);
            for (int64_t i = 0; pred && i < b.n; i++) correct += nb_get(pred, i) == nb_get(b.y, i);
            nb_ctx_reset(ctx);
        }
    }
    nb_ctx_set_train(ctx, true);
    nb_batcher_free(it);
    return (double)correct / (double)x->shape[0];
}

#endif
