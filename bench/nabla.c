/* nabla's side of the benchmark (bench/run.py runs it against bench/torch_bench.py).
 *
 *   bench_nabla [--threads T] [--quick] [ROW ...]     ROW: info chain engine matmul triad
 *
 * Prints tab-separated result lines (see bench.h). The thread count is set explicitly
 * (OpenMP and BLIS) from --threads; bench/run.py also sets OMP_NUM_THREADS/BLIS_NUM_THREADS.
 */
#include <nabla/nabla.h>

#include <blis.h>
#include <omp.h>
#include <stdbool.h>

#include "bench.h"

static int threads = 1;

/* ---- info: the machine and the BLIS build --------------------------------------------- */
static void row_info(void) {
    char model[256] = "?", line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) snprintf(model, sizeof model, "%s", c + 2);
            model[strcspn(model, "\n")] = 0;
            break;
        }
    if (f) fclose(f);
    printf("I\tcpu\t%s\n", model);
    printf("I\tcores\t%d\n", omp_get_num_procs());
    printf("I\tblis\tversion %s, arch %s, sgemm ukernel %s, int %s-bit, openmp %d\n", bli_info_get_version_str(),
           bli_arch_string(bli_arch_query_id()), bli_info_get_gemm_ukr_impl_string(BLIS_NAT, BLIS_FLOAT),
           bli_info_get_int_type_size_str(), (int)bli_info_get_enable_openmp());
    /* what BLIS picks from cpuid alone, and the ids BLIS_ARCH_TYPE accepts */
    if (!getenv("BLIS_ARCH_TYPE")) printf("I\tblis_auto\t%s\n", bli_arch_string(bli_arch_query_id()));
    printf("I\tblis_archs\t");
    for (int id = 0; id < BLIS_NUM_ARCHS; id++) printf("%s%s=%d", id ? " " : "", bli_arch_string((arch_t)id), id);
    printf("\n");
}

/* ---- rows 3 and 6: chains of tiny ops, forward + backward -------------------------------- */
typedef struct {
    nb_ctx *ctx;
    nb_tensor *x, *w;
    int n_ops;
    bool add_only;   /* row 6: add (identity backward: the engine alone) */
    int64_t nodes;   /* nodes recorded by the last run */
} chain_arg;

static void chain_step(void *p) {
    chain_arg *a = p;
    nb_ctx *ctx = a->ctx;
    nb_tensor *y = a->x;
    if (a->add_only) {
        for (int i = 0; i < a->n_ops; i++) y = nb_add(ctx, y, a->w);
    } else {
        for (int i = 0; i < a->n_ops; i += 2) y = nb_tanh(ctx, nb_mul(ctx, y, a->w));
    }
    nb_tensor *loss = nb_sum_all(ctx, y);
    a->nodes = nb_ctx_nodes(ctx);
    if (nb_backward(ctx, loss, NULL) != NB_OK) {
        fprintf(stderr, "chain: %s\n", nb_ctx_error(ctx));
        exit(1);
    }
    nb_ctx_reset(ctx);
}

static void chain_case(const char *row, int64_t n, bool add_only) {
    chain_arg a = {nb_ctx_new(), nb_tensor_new(NB_F32, 1, &n), nb_tensor_new(NB_F32, 1, &n), 1000, add_only, 0};
    nb_fill(a.x, 0.5);
    nb_fill(a.w, add_only ? 0.0 : 0.9);
    nb_requires_grad(a.x, true);
    nb_requires_grad(a.w, true);
    double t = bench_time(chain_step, &a);
    char cfg[64];
    snprintf(cfg, sizeof cfg, "n=%lld T=%d", (long long)n, threads);
    if (add_only) bench_report(row, cfg, "time/node", t / (double)a.nodes * 1e6, "us");
    else bench_report(row, cfg, "time/op", t / (double)a.n_ops * 1e6, "us");
    nb_tensor_free(a.x);
    nb_tensor_free(a.w);
    nb_ctx_free(a.ctx);
}

/* ---- row 4: matmul forward + backward against three direct BLIS calls -------------------- */
typedef struct {
    nb_ctx *ctx;
    int nlayers;
    nb_tensor *a[3], *w[3], *g[3]; /* a (M,K), w (N,K) used transposed as in nb_linear, g (M,N) */
    float *c[3], *ga[3], *gw[3];   /* raw BLIS outputs */
} mm_arg;

static void mm_nabla(void *p) {
    mm_arg *m = p;
    nb_ctx *ctx = m->ctx;
    for (int l = 0; l < m->nlayers; l++) {
        nb_tensor *wt = nb_transpose(ctx, m->w[l], 0, 1);
        nb_tensor *y = nb_matmul(ctx, m->a[l], wt);
        nb_tensor *ins[2] = {m->a[l], m->w[l]}, *gr[2];
        if (nb_grad(ctx, 1, &y, &m->g[l], 2, ins, gr, false) != NB_OK) {
            fprintf(stderr, "matmul: %s\n", nb_ctx_error(ctx));
            exit(1);
        }
    }
    nb_ctx_reset(ctx);
}

/* The same three products, straight to BLIS with the same strides. */
static void mm_blis(void *p) {
    mm_arg *m = p;
    float one = 1, zero = 0;
    for (int l = 0; l < m->nlayers; l++) {
        const int64_t M = m->a[l]->shape[0], K = m->a[l]->shape[1], N = m->w[l]->shape[0];
        const float *A = m->a[l]->data, *W = m->w[l]->data, *G = m->g[l]->data;
        /* y = A W^T: W^T has row stride 1, column stride K */
        bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, M, N, K, &one, (float *)A, K, 1, (float *)W, 1, K, &zero, m->c[l],
                  N, 1);
        /* dA = G W  (M,N)x(N,K) */
        bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, M, K, N, &one, (float *)G, N, 1, (float *)W, K, 1, &zero, m->ga[l],
                  K, 1);
        /* dW = G^T A  (N,M)x(M,K) */
        bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, N, K, M, &one, (float *)G, 1, N, (float *)A, K, 1, &zero, m->gw[l],
                  K, 1);
    }
}

static void mm_case(const char *cfgname, int nlayers, const int64_t *dims /* M, then K,N per layer */) {
    mm_arg m = {.ctx = nb_ctx_new(), .nlayers = nlayers};
    nb_rng rng = nb_rng_new(7);
    double flops = 0;
    for (int l = 0; l < nlayers; l++) {
        int64_t M = dims[0], K = dims[1 + 2 * l], N = dims[2 + 2 * l];
        m.a[l] = nb_tensor_new(NB_F32, 2, (int64_t[]){M, K});
        m.w[l] = nb_tensor_new(NB_F32, 2, (int64_t[]){N, K});
        m.g[l] = nb_tensor_new(NB_F32, 2, (int64_t[]){M, N});
        nb_rng_normal(&rng, m.a[l], 0, 1);
        nb_rng_normal(&rng, m.w[l], 0, 0.05);
        nb_rng_normal(&rng, m.g[l], 0, 1);
        nb_requires_grad(m.a[l], true);
        nb_requires_grad(m.w[l], true);
        m.c[l] = malloc((size_t)(M * N) * 4);
        m.ga[l] = malloc((size_t)(M * K) * 4);
        m.gw[l] = malloc((size_t)(N * K) * 4);
        flops += 3 * 2.0 * (double)(M * N * K);
    }
    char cfg[96];
    snprintf(cfg, sizeof cfg, "%s T=%d", cfgname, threads);
    /* interleave the two sides, so drifting load hits both alike */
    double tn[3], tb[3];
    for (int r = 0; r < 3; r++) {
        tb[r] = bench_time(mm_blis, &m);
        tn[r] = bench_time(mm_nabla, &m);
    }
    double n = bench_median_of(tn, 3), b = bench_median_of(tb, 3);
    bench_report("matmul", cfg, "time", n * 1e3, "ms");
    bench_report("matmul", cfg, "blis_time", b * 1e3, "ms");
    bench_report("matmul", cfg, "blis_gflops", flops / b * 1e-9, "GFLOP/s");
    bench_report("matmul", cfg, "frac_of_blis", b / n, "x");
    for (int l = 0; l < nlayers; l++) {
        nb_tensor_free(m.a[l]);
        nb_tensor_free(m.w[l]);
        nb_tensor_free(m.g[l]);
        free(m.c[l]);
        free(m.ga[l]);
        free(m.gw[l]);
    }
    nb_ctx_free(m.ctx);
}

/* ---- STREAM-style triad: the memory bandwidth bound of the optimizer rows ---------------- */
typedef struct {
    float *a, *b, *c;
    int64_t n;
} triad_arg;

static void triad(void *p) {
    triad_arg *t = p;
    float *restrict a = t->a;
    const float *restrict b = t->b, *restrict c = t->c;
    const float s = 3.0f;
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < t->n; i++) a[i] = b[i] + s * c[i];
}

/* Returns GB/s counted as STREAM does (3 arrays moved, no write-allocate traffic). */
static double row_triad(int64_t n) {
    triad_arg t = {NULL, NULL, NULL, n};
    if (posix_memalign((void **)&t.a, 64, (size_t)n * 4) || posix_memalign((void **)&t.b, 64, (size_t)n * 4) ||
        posix_memalign((void **)&t.c, 64, (size_t)n * 4))
        exit(1);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) t.a[i] = 0, t.b[i] = 1, t.c[i] = 2;
    double s = bench_time(triad, &t);
    double gbs = 3.0 * 4.0 * (double)n / s * 1e-9;
    char cfg[64];
    snprintf(cfg, sizeof cfg, "n=%lldM T=%d", (long long)(n / 1000000), threads);
    bench_report("triad", cfg, "time", s * 1e3, "ms");
    bench_report("triad", cfg, "bandwidth", gbs, "GB/s");
    free(t.a);
    free(t.b);
    free(t.c);
    return gbs;
}

int main(int argc, char **argv) {
    const char *rows[32];
    int nrows = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) bench_budget = 0.3;
        else if (nrows < 32) rows[nrows++] = argv[i];
    }
    if (threads < 1) threads = 1;
    nb_set_num_threads(threads);
    static const char *all[] = {"info", "chain", "engine", "matmul", "triad"};
    if (!nrows) {
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) rows[nrows++] = all[i];
    }
    for (int r = 0; r < nrows; r++) {
        const char *row = rows[r];
        if (!strcmp(row, "info")) {
            row_info();
        } else if (!strcmp(row, "chain")) {
            chain_case("chain", 1, false);
            chain_case("chain", 16, false);
        } else if (!strcmp(row, "engine")) {
            chain_case("engine", 0, true);
            chain_case("engine", 1, true);
        } else if (!strcmp(row, "matmul")) {
            mm_case("1024x1024x1024", 1, (int64_t[]){1024, 1024, 1024});
            mm_case("mlp B=64", 3, (int64_t[]){64, 784, 256, 256, 128, 128, 10});
            mm_case("mlp B=256", 3, (int64_t[]){256, 784, 256, 256, 128, 128, 10});
        } else if (!strcmp(row, "triad")) {
            row_triad(10000000);
        } else {
            fprintf(stderr, "bench_nabla: unknown row '%s'\n", row);
            return 2;
        }
    }
    return 0;
}
