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

/* ---- options: one parser for every example ---------------------------------------------- */
/* The same flags mean the same in every example (EX_THREADS, EX_SEED, EX_DATA, ... below):
 * one spelling, one range, one message style ("prog: --flag: why"). Unknown flags and
 * enumerated values get a "did you mean"; --help lists the options in 80 columns. */
typedef enum { EX_INT, EX_REAL, EX_STR, EX_FLAG, EX_ENUM, EX_INTS } ex_kind;
typedef struct {
    const char *name; /* "--epochs" */
    ex_kind kind;
    void *dst;        /* int64_t *, double *, const char **, bool *, ex_enum *, ex_ints * */
    double lo, hi;    /* accepted range (numbers; each element of EX_INTS) */
    const char *help;
} ex_opt;
typedef struct {
    const char **value;         /* the chosen name, one of choices */
    const char *const *choices; /* NULL-terminated */
} ex_enum;
typedef struct {
    int64_t *v, *n; /* "256,128" -> v = {256, 128}, *n = 2 */
    int max;
} ex_ints;

#define EX_THREADS(dst) {"--threads", EX_INT, dst, 0, 1024, "threads (0: automatic, 1 or all cores by measurement)"}
#define EX_SEED(dst) {"--seed", EX_INT, dst, 0, 1e15, "seed of initialisation, split, batch order and dropout"}
#define EX_DATA(dst) {"--data", EX_STR, dst, 0, 0, "Fashion-MNIST directory (default: the Debian package's)"}
#define EX_EPOCHS(dst) {"--epochs", EX_INT, dst, 1, 100000, "passes over the training images"}
#define EX_BATCH(dst) {"--batch", EX_INT, dst, 2, 60000, "examples per step"}
#define EX_LR(dst, what) {"--lr", EX_REAL, dst, 1e-9, 10, what}
#define EX_SUBSET(dst) {"--subset", EX_INT, dst, 0, 60000, "training images used, validation included (0: all)"}

/* edit distance, for "did you mean" */
static inline int ex_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b), d[64];
    if (la > 62 || lb > 62) return 99;
    for (int j = 0; j <= lb; j++) d[j] = j;
    for (int i = 1; i <= la; i++) {
        int prev = d[0];
        d[0] = i;
        for (int j = 1; j <= lb; j++) {
            const int cur = d[j];
            int best = prev + (a[i - 1] != b[j - 1]);        /* substitute */
            if (d[j] + 1 < best) best = d[j] + 1;            /* delete */
            if (d[j - 1] + 1 < best) best = d[j - 1] + 1;    /* insert */
            d[j] = best;
            prev = cur;
        }
    }
    return d[lb];
}
/* the closest of n names to s when it is close enough (a typo), else NULL */
static inline const char *ex_closest(const char *s, const char *const *names, int n, size_t stride) {
    const char *best = NULL;
    int bd = 3;
    for (int i = 0; i < n; i++) {
        const char *c = *(const char *const *)((const char *)names + (size_t)i * stride);
        const int d = ex_distance(s, c);
        if (d < bd) bd = d, best = c;
    }
    return best;
}

static inline void ex_usage(FILE *f, const char *prog, const ex_opt *opts, int n) {
    fprintf(f, "usage: %s [options]\n", prog);
    for (int i = 0; i < n; i++) {
        char def[96] = "";
        const ex_opt *o = &opts[i];
        if (o->kind == EX_INT) snprintf(def, sizeof def, " (default %lld)", (long long)*(int64_t *)o->dst);
        if (o->kind == EX_REAL) snprintf(def, sizeof def, " (default %g)", *(double *)o->dst);
        if (o->kind == EX_STR && *(const char **)o->dst) snprintf(def, sizeof def, " (default %s)", *(const char **)o->dst);
        if (o->kind == EX_ENUM) snprintf(def, sizeof def, " (default %s)", *((ex_enum *)o->dst)->value);
        char text[512];
        snprintf(text, sizeof text, "%s%s", o->help, def);
        if (o->kind == EX_ENUM) { /* list the choices */
            const ex_enum *e = o->dst;
            size_t len = strlen(text);
            snprintf(text + len, sizeof text - len, ": ");
            for (int c = 0; e->choices[c]; c++) {
                len = strlen(text);
                snprintf(text + len, sizeof text - len, "%s%s", c ? " | " : "", e->choices[c]);
            }
        }
        /* the name in 20 columns, the text wrapped at 80 */
        fprintf(f, "  %-18s", o->name);
        int col = 20;
        for (char *w = strtok(text, " "); w; w = strtok(NULL, " ")) {
            const int len = (int)strlen(w);
            if (col + 1 + len > 80 && col > 20) fprintf(f, "\n%20s", ""), col = 20;
            fprintf(f, "%s%s", col > 20 ? " " : "", w);
            col += (col > 20 ? 1 : 0) + len;
        }
        fprintf(f, "\n");
    }
}

static inline bool ex_number(const char *prog, const ex_opt *o, const char *v, bool integer, double *out) {
    char *end;
    const double d = strtod(v, &end);
    if (end == v || *end || !(d >= o->lo && d <= o->hi) || (integer && d != floor(d))) {
        fprintf(stderr, "%s: %s: '%s' is not %s in [%g, %g]\n", prog, o->name, v, integer ? "an integer" : "a number",
                o->lo, o->hi);
        return false;
    }
    *out = d;
    return true;
}

/* Parse the options into the table's destinations (which hold the defaults). --help prints
 * the usage and exits 0. An unknown option, a missing value, a value that is not a number (or
 * not an integer), out of range, not one of the choices, or an empty list element prints why
 * (with "did you mean" where a name is close) and returns false. */
static inline bool ex_parse(int argc, char **argv, const char *prog, const ex_opt *opts, int n) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            ex_usage(stdout, prog, opts, n);
            exit(0);
        }
        int k = 0;
        while (k < n && strcmp(a, opts[k].name)) k++;
        if (k == n) {
            const char *near = n ? ex_closest(a, &opts[0].name, n, sizeof *opts) : NULL;
            fprintf(stderr, "%s: unknown option '%s'%s%s%s (see --help)\n", prog, a, near ? "; did you mean " : "",
                    near ? near : "", near ? "?" : "");
            return false;
        }
        const ex_opt *o = &opts[k];
        if (o->kind == EX_FLAG) {
            *(bool *)o->dst = true;
            continue;
        }
        if (i + 1 >= argc) return fprintf(stderr, "%s: %s: missing value (see --help)\n", prog, a), false;
        const char *v = argv[++i];
        double d;
        switch (o->kind) {
        case EX_STR:
            if (!*v) return fprintf(stderr, "%s: %s: empty value\n", prog, a), false;
            *(const char **)o->dst = v;
            break;
        case EX_INT:
            if (!ex_number(prog, o, v, true, &d)) return false;
            *(int64_t *)o->dst = (int64_t)d;
            break;
        case EX_REAL:
            if (!ex_number(prog, o, v, false, &d)) return false;
            *(double *)o->dst = d;
            break;
        case EX_ENUM: {
            const ex_enum *e = o->dst;
            int c = 0, nc = 0;
            while (e->choices[nc]) nc++;
            while (c < nc && strcmp(v, e->choices[c])) c++;
            if (c == nc) {
                const char *near = ex_closest(v, e->choices, nc, sizeof *e->choices);
                fprintf(stderr, "%s: %s: unknown value '%s'%s%s%s (see --help)\n", prog, a, v,
                        near ? "; did you mean " : "", near ? near : "", near ? "?" : "");
                return false;
            }
            *e->value = e->choices[c];
            break;
        }
        case EX_INTS: {
            const ex_ints *l = o->dst;
            int64_t count = 0;
            for (const char *p = v;; count++) {
                const char *comma = strchr(p, ',');
                char item[64];
                const size_t len = comma ? (size_t)(comma - p) : strlen(p);
                if (len == 0 || len >= sizeof item)
                    return fprintf(stderr, "%s: %s: '%s' has an empty or overlong element\n", prog, a, v), false;
                if (count == l->max) return fprintf(stderr, "%s: %s: at most %d values\n", prog, a, l->max), false;
                memcpy(item, p, len);
                item[len] = 0;
                if (!ex_number(prog, o, item, true, &d)) return false;
                l->v[count] = (int64_t)d;
                if (!comma) break;
                p = comma + 1;
            }
            *l->n = count + 1;
            break;
        }
        case EX_FLAG: break;
        }
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
static inline bool ex_load(const char *prog, const char *dir, bool nchw, bool standardize, int64_t subset, int64_t val,
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

static inline void ex_data_free(ex_data *d) {
    nb_tensor *t[] = {d->x_train, d->y_train, d->x_val, d->y_val, d->x_test, d->y_test};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) nb_tensor_free(t[i]);
    *d = (ex_data){0};
}

/* ---- time ----------------------------------------------------------------------------------- */
static inline double ex_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Training samples per second of an nb_fit run over n training samples per epoch (train phases only). */
static inline double ex_samples_per_sec(const nb_history *h, int64_t n) {
    double seconds = 0;
    for (int64_t e = 0; e < h->n; e++) seconds += h->epochs[e].train_seconds;
    return (double)(h->n * n) / seconds;
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
