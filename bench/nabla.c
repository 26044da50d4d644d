/* nabla's side of the benchmark (bench/run.py runs it against bench/torch_bench.py).
 *
 *   bench_nabla [--threads T] [--quick] [ROW ...]
 *       ROW: info mlp cnn resnet conv bn ln optim chain engine matmul memory triad steady fit,
 *            prof-mlp64/prof-mlp256/prof-cnn/prof-resnet,
 *            {cnn,resnet,wide}-memory/{train,eval} (one case per process)
 *   --threads 0: nabla's automatic team size (the tuner in src/graph/threads.c); bench/busy.py
 *   runs the steady row that way against 1 and 2 fixed threads, on a quiet and a busy machine.
 *
 * Prints tab-separated result lines (see bench.h). The thread count is set explicitly
 * (OpenMP and BLIS) from --threads; bench/run.py also sets OMP_NUM_THREADS/BLIS_NUM_THREADS.
 */
#include <nabla/nabla.h>

#include <blis.h>
#include <omp.h>
#include <stdbool.h>
#include <sys/resource.h>
#if __has_include(<zlib.h>)
#include <zlib.h>
#define BENCH_HAVE_ZLIB 1
#endif

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
    /* the kernel set nabla runs on (BLIS's choice, nabla's where BLIS knows no better than generic,
     * or BLIS_ARCH_TYPE's), and the ids BLIS_ARCH_TYPE accepts */
    const char *arch = nb_blis_kernels();
    printf("I\tblis\tversion %s, arch %s, sgemm ukernel %s, int %s-bit, openmp %d\n", bli_info_get_version_str(), arch,
           bli_info_get_gemm_ukr_impl_string(BLIS_NAT, BLIS_FLOAT), bli_info_get_int_type_size_str(),
           (int)bli_info_get_enable_openmp());
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
    const int reps = bench_batches < 7 ? 1 : 3;
    for (int r = 0; r < reps; r++) {
        tb[r] = bench_time(mm_blis, &m);
        tn[r] = bench_time(mm_nabla, &m);
    }
    double n = bench_median_of(tn, reps), b = bench_median_of(tb, reps);
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

/* Row 7: conv2d forward + backward (gradients of x and w for a given output gradient), no bias,
 * padding k/2, batch 64, at every conv layer shape of examples/fashion_cnn.c and of the small
 * residual network (res_net below). Beside nabla's time, the GEMMs that src/ops/conv.c calls for
 * the same work, called directly on BLIS (conv_gemms): frac_of_blis_gemm = that time / nabla's. */
typedef struct {
    nb_ctx *ctx;
    nb_tensor *x, *w, *g;
    int stride, pad;
} conv_arg;

static void conv_step(void *p) {
    conv_arg *a = p;
    nb_tensor *y = nb_conv2d(a->ctx, a->x, a->w, NULL, a->stride, a->pad, 1, 1);
    nb_tensor *ins[2] = {a->x, a->w}, *gr[2];
    if (nb_grad(a->ctx, 1, &y, &a->g, 2, ins, gr, false) != NB_OK) {
        fprintf(stderr, "conv: %s\n", nb_ctx_error(a->ctx));
        exit(1);
    }
    nb_ctx_reset(a->ctx);
}

/* The GEMMs of conv.c for one forward + backward, per sample n, K = C*kh*kw, L = OH*OW, every
 * matrix row-major as conv.c passes them:
 *   forward      y_n (O,L)   = W (O,K) cols_n (K,L)
 *   input grad   dcols (K,L) = W^T (K,O) gy_n (O,L)       (then folded into dx_n: not a GEMM)
 *   weight grad  dW (O,K)   += gy_n (O,L) cols_n^T (L,K)   (summed over the samples of a chunk)
 * Samples are split over the T threads as conv.c splits them (one BLIS thread per call inside the
 * team; at T = 1 a plain loop), each thread with its own column matrix (conv.c's per-thread
 * scratch, filled once here: the unfold is not GEMM work) and its own weight-gradient sum. BLIS
 * takes its own path choice (small-matrix or conventional) for each call. */
typedef struct {
    int64_t B, O, K, L;
    float *w, *y, *gy, *cols, *dcols, *gw; /* cols, dcols (T, K, L), gw (T, O, K) */
} conv_gemm_arg;

static void conv_gemms(void *p) {
    const conv_gemm_arg *a = p;
    const int64_t B = a->B, O = a->O, K = a->K, L = a->L;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        float one = 1, zero = 0;
        rntm_t rntm;
        bli_rntm_init(&rntm);
        bli_rntm_set_num_threads(nt > 1 ? 1 : threads, &rntm);
        float *cols = a->cols + (size_t)t * (size_t)(K * L), *dcols = a->dcols + (size_t)t * (size_t)(K * L);
        float *gw = a->gw + (size_t)t * (size_t)(O * K);
        const int64_t lo = B * t / nt, hi = B * (t + 1) / nt;
        for (int64_t n = lo; n < hi; n++)
            bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, O, L, K, &one, a->w, K, 1, cols, L, 1, &zero,
                         a->y + n * O * L, L, 1, NULL, &rntm);
        for (int64_t n = lo; n < hi; n++)
            bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, K, L, O, &one, a->w, 1, K, a->gy + n * O * L, L, 1, &zero,
                         dcols, L, 1, NULL, &rntm);
        for (int64_t n = lo; n < hi; n++)
            bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, O, K, L, &one, a->gy + n * O * L, L, 1, cols, 1, L,
                         n == lo ? &zero : &one, gw, K, 1, NULL, &rntm);
    }
}

static double conv_gemm_time(int64_t B, int64_t C, int64_t O, int64_t k, int64_t OHW) {
    const int T = threads > 1 ? threads : 1;
    conv_gemm_arg a = {.B = B, .O = O, .K = C * k * k, .L = OHW * OHW};
    const size_t KL = (size_t)(a.K * a.L), OL = (size_t)(B * O * a.L), OK = (size_t)(O * a.K);
    a.w = malloc(OK * 4), a.y = malloc(OL * 4), a.gy = malloc(OL * 4);
    a.cols = malloc(T * KL * 4), a.dcols = malloc(T * KL * 4), a.gw = malloc(T * OK * 4);
    if (!a.w || !a.y || !a.gy || !a.cols || !a.dcols || !a.gw) fprintf(stderr, "conv: out of memory\n"), exit(1);
    for (size_t i = 0; i < OK; i++) a.w[i] = 0.01f * (float)((int)(i % 17) - 8);
    for (size_t i = 0; i < OL; i++) a.gy[i] = 0.1f * (float)((int)(i % 13) - 6), a.y[i] = 0;
    for (size_t i = 0; i < T * KL; i++) a.cols[i] = 0.1f * (float)((int)(i % 11) - 5), a.dcols[i] = 0;
    for (size_t i = 0; i < T * OK; i++) a.gw[i] = 0;
    const double t = bench_time(conv_gemms, &a);
    free(a.w), free(a.y), free(a.gy), free(a.cols), free(a.dcols), free(a.gw);
    return t;
}

/* conv k x k, stride s, padding k/2 on x (B, C, HW, HW) -> O channels. The configs of the 3x3
 * stride-1 shapes keep the row's first names ("B=64 1->32 28x28 T=1"); others add "k1 s2". */
static void conv_case(int64_t B, int64_t C, int64_t O, int64_t HW, int64_t k, int64_t s) {
    const int64_t OHW = (HW + 2 * (k / 2) - k) / s + 1;
    conv_arg a = {nb_ctx_new(), nb_tensor_new(NB_F32, 4, (int64_t[]){B, C, HW, HW}),
                  nb_tensor_new(NB_F32, 4, (int64_t[]){O, C, k, k}), nb_tensor_new(NB_F32, 4, (int64_t[]){B, O, OHW, OHW}),
                  (int)s, (int)(k / 2)};
    nb_rng r = nb_rng_new(11);
    nb_rng_normal(&r, a.x, 0, 1);
    nb_rng_normal(&r, a.w, 0, 0.1);
    nb_rng_normal(&r, a.g, 0, 1);
    nb_requires_grad(a.x, true);
    nb_requires_grad(a.w, true);
    const double t = bench_time(conv_step, &a), tg = conv_gemm_time(B, C, O, k, OHW);
    char cfg[96], kind[32] = "";
    if (k != 3 || s != 1) snprintf(kind, sizeof kind, " k%lld s%lld", (long long)k, (long long)s);
    snprintf(cfg, sizeof cfg, "B=%lld %lld->%lld %lldx%lld%s T=%d", (long long)B, (long long)C, (long long)O, (long long)HW,
             (long long)HW, kind, threads);
    bench_report("conv", cfg, "time", t * 1e3, "ms");
    bench_report("conv", cfg, "blis_gemm_time", tg * 1e3, "ms");
    bench_report("conv", cfg, "frac_of_blis_gemm", tg / t, "x");
    nb_tensor_free(a.x), nb_tensor_free(a.w), nb_tensor_free(a.g);
    nb_ctx_free(a.ctx);
}

/* Every conv layer shape, batch 64: fashion_cnn's two, then res_net's five (stem; block1's two
 * convs share one shape; block2's first conv, stride 2; its second; its 1x1 stride-2 shortcut). */
static void row_conv(void) {
    conv_case(64, 1, 32, 28, 3, 1);
    conv_case(64, 32, 64, 14, 3, 1);
    conv_case(64, 1, 16, 28, 3, 1);
    conv_case(64, 16, 16, 28, 3, 1);
    conv_case(64, 16, 32, 28, 3, 2);
    conv_case(64, 32, 32, 14, 3, 1);
    conv_case(64, 16, 32, 28, 1, 2);
}

/* Rows bn and ln: batch norm forward + backward (training mode, affine: gradients of x, weight
 * and bias for a given output gradient) on the CNN's and the residual network's batch-norm
 * shapes, and layer norm of a transformer's activations ((64*196, 256): ViT-S/16-like tokens of
 * a batch of 64, normalised over the last axis), against one read+write pass over the same number
 * of floats (copy_pass, parallel memcpy over the T threads, measured in the same process):
 * frac_of_copy_bound = copy time / norm time. */
typedef struct {
    nb_ctx *ctx;
    nb_tensor *x, *w, *b, *rm, *rv, *g;
    bool layer; /* layer norm over the last axis, else batch norm */
} bn_arg;

static void bn_step(void *p) {
    bn_arg *a = p;
    nb_tensor *y = a->layer ? nb_layer_norm(a->ctx, a->x, 1, a->w, a->b, 1e-5)
                            : nb_batch_norm(a->ctx, a->x, a->w, a->b, a->rm, a->rv, 0.1, 1e-5);
    nb_tensor *ins[3] = {a->x, a->w, a->b}, *gr[3];
    if (nb_grad(a->ctx, 1, &y, &a->g, 3, ins, gr, false) != NB_OK) {
        fprintf(stderr, "%s: %s\n", a->layer ? "ln" : "bn", nb_ctx_error(a->ctx));
        exit(1);
    }
    nb_ctx_reset(a->ctx);
}

typedef struct {
    const float *src;
    float *dst;
    int64_t n;
} copy_arg;

static void copy_pass(void *p) {
    const copy_arg *c = p;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        const int64_t lo = c->n * t / nt / 16 * 16, hi = t + 1 == nt ? c->n : c->n * (t + 1) / nt / 16 * 16;
        memcpy(c->dst + lo, c->src + lo, (size_t)(hi - lo) * 4);
    }
}

/* row "bn" (shape (N, C, H, W)) or "ln" (shape (rows, C)) */
static void norm_case(const char *row, int ndim, const int64_t *shape) {
    const bool layer = !strcmp(row, "ln");
    int64_t C = shape[layer ? ndim - 1 : 1];
    bn_arg a = {nb_ctx_new(), nb_tensor_new(NB_F32, ndim, shape), nb_tensor_new(NB_F32, 1, &C), nb_tensor_new(NB_F32, 1, &C),
                nb_tensor_new(NB_F32, 1, &C), nb_tensor_new(NB_F32, 1, &C), nb_tensor_new(NB_F32, ndim, shape), layer};
    nb_rng r = nb_rng_new(13);
    nb_rng_normal(&r, a.x, 0.5, 2);
    nb_rng_normal(&r, a.w, 1, 0.1);
    nb_rng_normal(&r, a.b, 0, 0.1);
    nb_rng_normal(&r, a.g, 0, 1);
    nb_fill(a.rm, 0), nb_fill(a.rv, 1);
    nb_requires_grad(a.x, true), nb_requires_grad(a.w, true), nb_requires_grad(a.b, true);
    const double t = bench_time(bn_step, &a);
    copy_arg c = {a.x->data, NULL, a.x->numel};
    if (posix_memalign((void **)&c.dst, 64, (size_t)c.n * 4)) exit(1);
    memset(c.dst, 0, (size_t)c.n * 4);
    const double tc = bench_time(copy_pass, &c);
    char cfg[96] = "";
    for (int d = 0; d < ndim; d++) /* "(64,32,28,28) T=1", as torch_bench.py writes it */
        snprintf(cfg + strlen(cfg), sizeof cfg - strlen(cfg), "%c%lld", d ? ',' : '(', (long long)shape[d]);
    snprintf(cfg + strlen(cfg), sizeof cfg - strlen(cfg), ") T=%d", threads);
    bench_report(row, cfg, "time", t * 1e3, "ms");
    bench_report(row, cfg, "copy_time", tc * 1e3, "ms");
    bench_report(row, cfg, "frac_of_copy_bound", tc / t, "x");
    free(c.dst);
    nb_tensor_free(a.x), nb_tensor_free(a.w), nb_tensor_free(a.b), nb_tensor_free(a.rm), nb_tensor_free(a.rv);
    nb_tensor_free(a.g);
    nb_ctx_free(a.ctx);
}

/* fashion_cnn's two batch norms, then the residual network's (16 channels at 28x28: the stem and
 * block1; 32 at 14x14: block2 and its shortcut) */
static void row_bn(void) {
    norm_case("bn", 4, (int64_t[]){64, 32, 28, 28});
    norm_case("bn", 4, (int64_t[]){64, 64, 14, 14});
    norm_case("bn", 4, (int64_t[]){64, 16, 28, 28});
    norm_case("bn", 4, (int64_t[]){64, 32, 14, 14});
}

/* ---- rows 1, 2, 5: training with the optimizer API (on main once optim is merged) -------- */
#ifdef NB_OPTIM_BLOCK
#define BENCH_HAVE_OPTIM 1

/* Fashion-MNIST training images as f32 (N, 784) in [0, 1] and labels i64 (N), long-lived, as
 * torch_bench.py loads them; a fixed synthetic set of the same size if the files are missing. */
static const char *DATA_DIR = "/usr/share/datasets/fashion-mnist";
enum { DATA_N = 60000, DATA_D = 784 };

static bool read_gz(const char *name, size_t skip, unsigned char *dst, size_t n) {
#ifdef BENCH_HAVE_ZLIB
    char path[512];
    snprintf(path, sizeof path, "%s/%s", DATA_DIR, name);
    gzFile f = gzopen(path, "rb");
    if (!f) return false;
    unsigned char hdr[16];
    bool ok = gzread(f, hdr, (unsigned)skip) == (int)skip && gzread(f, dst, (unsigned)n) == (int)n;
    gzclose(f);
    return ok;
#else
    (void)name, (void)skip, (void)dst, (void)n;
    return false;
#endif
}

static void load_data(nb_tensor **x, nb_tensor **y) {
    *x = nb_tensor_new(NB_F32, 2, (int64_t[]){DATA_N, DATA_D});
    *y = nb_tensor_new(NB_I64, 1, (int64_t[]){DATA_N});
    unsigned char *img = malloc((size_t)DATA_N * DATA_D), *lab = malloc(DATA_N);
    float *xd = (*x)->data;
    int64_t *yd = (*y)->data;
    if (read_gz("train-images-idx3-ubyte.gz", 16, img, (size_t)DATA_N * DATA_D) &&
        read_gz("train-labels-idx1-ubyte.gz", 8, lab, DATA_N)) {
        for (int64_t i = 0; i < (int64_t)DATA_N * DATA_D; i++) xd[i] = (float)img[i] / 255.0f;
        for (int64_t i = 0; i < DATA_N; i++) yd[i] = lab[i];
    } else {
        nb_rng r = nb_rng_new(1);
        nb_rng_uniform(&r, *x, 0, 1);
        for (int64_t i = 0; i < DATA_N; i++) yd[i] = (int64_t)(nb_philox_uniform(2, (uint64_t)i) * 10);
    }
    free(img);
    free(lab);
}

/* The MLP of the brief: 784-256-128-10, ReLU, dropout 0.2 after each hidden layer, L2 1e-4 on
 * the weights as a loss term (lambda * sum w^2; PyTorch gets the same gradient from Adam's
 * weight_decay = 2e-4), Adam (lr 1e-3), cross-entropy. */
static const int64_t MLP_DIMS[4] = {784, 256, 128, 10};

typedef struct {
    nb_ctx *ctx;
    nb_params *ps;
    nb_optim *opt;
    nb_tensor *w[3], *b[3];
    nb_tensor *x, *y;
    int64_t batch, pos;
    double loss;
} mlp_run;

static void mlp_init(mlp_run *m, nb_tensor *x, nb_tensor *y, int64_t batch) {
    memset(m, 0, sizeof *m);
    m->ctx = nb_ctx_new();
    nb_ctx_seed(m->ctx, 42);
    m->ps = nb_params_new();
    nb_rng r = nb_rng_new(5);
    for (int l = 0; l < 3; l++) {
        char name[32];
        snprintf(name, sizeof name, "fc%d.weight", l + 1);
        m->w[l] = nb_params_add(m->ps, name, 2, (int64_t[]){MLP_DIMS[l + 1], MLP_DIMS[l]});
        snprintf(name, sizeof name, "fc%d.bias", l + 1);
        m->b[l] = nb_params_add(m->ps, name, 1, (int64_t[]){MLP_DIMS[l + 1]});
    }
    for (int l = 0; l < 3; l++) { /* PyTorch's Linear init: U(-1/sqrt(in), 1/sqrt(in)) */
        double k = 1.0 / sqrt((double)MLP_DIMS[l]);
        nb_rng_uniform(&r, m->w[l], -k, k);
        nb_rng_uniform(&r, m->b[l], -k, k);
    }
    nb_hparams hp = nb_adam.defaults;
    hp.lr = 1e-3;
    m->opt = nb_optim_new(&nb_adam, m->ps, &hp);
    if (!m->opt) {
        fprintf(stderr, "mlp: %s\n", nb_last_error());
        exit(1);
    }
    m->x = x;
    m->y = y;
    m->batch = batch;
}

/* One training step on a batch xb (B, 784) f32 with labels yb (B) i64; resets the context. */
static void mlp_train(mlp_run *m, nb_tensor *xb, nb_tensor *yb) {
    nb_ctx *ctx = m->ctx;
    nb_tensor *h = nb_linear_act(ctx, xb, m->w[0], m->b[0], NB_ACT_RELU, 0.2); /* dropout(relu(x W^T + b)) */
    h = nb_linear_act(ctx, h, m->w[1], m->b[1], NB_ACT_RELU, 0.2);
    nb_tensor *logits = nb_linear_act(ctx, h, m->w[2], m->b[2], NB_ACT_NONE, 0.0);
    nb_tensor *ce = nb_cross_entropy(ctx, logits, yb, NB_REDUCE_MEAN);
    nb_tensor *loss = nb_add(ctx, ce, nb_l2_penalty_params(ctx, m->ps, NULL, 1e-4));
    nb_params_zero_grad(m->ps);
    /* Adam updates each parameter as its gradient becomes final; nb_optim_step finishes */
    if (!loss || nb_optim_step_on_ready(m->opt, ctx) != NB_OK || nb_backward(ctx, loss, NULL) != NB_OK ||
        nb_optim_step(m->opt) != NB_OK) {
        fprintf(stderr, "mlp: %s / %s\n", nb_ctx_error(ctx), nb_last_error());
        exit(1);
    }
    m->loss = nb_item(ce);
    nb_ctx_reset(ctx);
}

/* The next batch of the in-memory data set (views, no copy). */
static void mlp_step(void *p) {
    mlp_run *m = p;
    if (m->pos + m->batch > m->x->shape[0]) m->pos = 0;
    nb_tensor *xb = nb_slice(m->ctx, m->x, 0, m->pos, m->pos + m->batch, 1);
    nb_tensor *yb = nb_slice(m->ctx, m->y, 0, m->pos, m->pos + m->batch, 1);
    m->pos += m->batch;
    mlp_train(m, xb, yb);
}

static void mlp_free(mlp_run *m) {
    nb_optim_free(m->opt);
    nb_params_free(m->ps);
    nb_ctx_free(m->ctx);
}

/* The GEMMs of one MLP step at batch B straight to BLIS (forward 3, weight gradients 3, input
 * gradients 2): the step's time if everything but matrix products were free. */
typedef struct {
    int64_t B;
    float *x[4], *w[3], *gx[4], *gw[3];
    rntm_t rntm; /* BLIS's small-matrix path on or off: the bound is the faster of the two */
} gemm_bound_arg;

static void mlp_gemms(void *p) {
    gemm_bound_arg *g = p;
    float one = 1, zero = 0;
    const int64_t B = g->B;
    for (int l = 0; l < 3; l++) { /* x[l+1] = x[l] W^T */
        int64_t K = MLP_DIMS[l], N = MLP_DIMS[l + 1];
        bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, B, N, K, &one, g->x[l], K, 1, g->w[l], 1, K, &zero,
                     g->x[l + 1], N, 1, NULL, &g->rntm);
    }
    for (int l = 2; l >= 0; l--) {
        int64_t K = MLP_DIMS[l], N = MLP_DIMS[l + 1];
        /* dW = gy^T x  (N,B)x(B,K) */
        bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, N, K, B, &one, g->gx[l + 1], 1, N, g->x[l], K, 1, &zero,
                     g->gw[l], K, 1, NULL, &g->rntm);
        if (l > 0) /* dx = gy W  (B,N)x(N,K) */
            bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, B, K, N, &one, g->gx[l + 1], N, 1, g->w[l], K, 1, &zero,
                         g->gx[l], K, 1, NULL, &g->rntm);
    }
}

static void gemm_bound_init(gemm_bound_arg *g, int64_t B, bool sup) {
    *g = (gemm_bound_arg){.B = B};
    for (int l = 0; l < 4; l++) {
        g->x[l] = calloc((size_t)(B * MLP_DIMS[l]), 4);
        g->gx[l] = calloc((size_t)(B * MLP_DIMS[l]), 4);
        for (int64_t i = 0; i < B * MLP_DIMS[l]; i++) g->x[l][i] = 0.5f, g->gx[l][i] = 0.25f;
    }
    for (int l = 0; l < 3; l++) {
        g->w[l] = calloc((size_t)(MLP_DIMS[l] * MLP_DIMS[l + 1]), 4);
        g->gw[l] = calloc((size_t)(MLP_DIMS[l] * MLP_DIMS[l + 1]), 4);
    }
    bli_rntm_init(&g->rntm);
    bli_rntm_set_num_threads(threads, &g->rntm);
    if (sup)
        bli_rntm_enable_l3_sup(&g->rntm);
    else
        bli_rntm_disable_l3_sup(&g->rntm);
}

static void gemm_bound_free(gemm_bound_arg *g) {
    for (int l = 0; l < 4; l++) free(g->x[l]), free(g->gx[l]);
    for (int l = 0; l < 3; l++) free(g->w[l]), free(g->gw[l]);
}

/* The step and its GEMMs (conventional and small-matrix paths) timed in alternation, batch by
 * batch: frac_of_gemm_bound is the median over batches of (the faster GEMM path's time / the
 * step's time), so a slow stretch of the machine hits both sides of each ratio. */
static void row_mlp(void) {
    nb_tensor *x, *y;
    load_data(&x, &y);
    for (int64_t batch = 64; batch <= 256; batch *= 4) {
        mlp_run m;
        mlp_init(&m, x, y, batch);
        gemm_bound_arg conv, sup;
        gemm_bound_init(&conv, batch, false);
        gemm_bound_init(&sup, batch, true);
        const bench_fn fns[3] = {mlp_step, mlp_gemms, mlp_gemms};
        void *const args[3] = {&m, &conv, &sup};
        double t[3][BENCH_MAX_BATCHES], tb[BENCH_MAX_BATCHES], ratio[BENCH_MAX_BATCHES];
        const int nb = bench_time_alternating(3, fns, args, t);
        for (int b = 0; b < nb; b++) tb[b] = fmin(t[1][b], t[2][b]), ratio[b] = tb[b] / t[0][b];
        const double ts = bench_median_of(t[0], nb), tg = bench_median_of(tb, nb), frac = bench_median_of(ratio, nb);
        char cfg[64];
        snprintf(cfg, sizeof cfg, "B=%lld T=%d", (long long)batch, threads);
        bench_report("mlp", cfg, "samples/s", (double)batch / ts, "samples/s");
        bench_report("mlp", cfg, "gemm_bound", (double)batch / tg, "samples/s");
        bench_report("mlp", cfg, "frac_of_gemm_bound", frac, "x");
        gemm_bound_free(&conv), gemm_bound_free(&sup);
        mlp_free(&m);
    }
    nb_tensor_free(x);
    nb_tensor_free(y);
}

/* For profilers: MLP steps at batch B for ~10 s after loading, nothing else; or exactly
 * $NB_PROF_STEPS steps (a fixed amount of work, for callgrind). */
static void prof_mlp(int64_t batch) {
    nb_tensor *x, *y;
    load_data(&x, &y);
    mlp_run m;
    mlp_init(&m, x, y, batch);
    const char *ns = getenv("NB_PROF_STEPS");
    if (ns)
        for (long i = atol(ns); i > 0; i--) mlp_step(&m);
    else
        for (double t0 = bench_now(); bench_now() - t0 < 10;) mlp_step(&m);
    mlp_free(&m);
}

/* Row 5: the whole training process, as torch_bench.py's row_memory. The data set stays in
 * its file's bytes (47 MB, read straight into one buffer) and each batch is converted to f32
 * in the step's arena, on both sides: what is compared is the framework's own memory. */
/* The next batch converted from bytes into the step's arena. */
static void mem_step(mlp_run *m, const unsigned char *img) {
    if (m->pos + m->batch > DATA_N) m->pos = 0;
    nb_tensor *xb = nb_empty(m->ctx, NB_F32, 2, (int64_t[]){m->batch, DATA_D});
    float *xd = xb->data;
    const unsigned char *src = img + m->pos * DATA_D;
    for (int64_t i = 0; i < m->batch * DATA_D; i++) xd[i] = (float)src[i] / 255.0f;
    nb_tensor *yb = nb_slice(m->ctx, m->y, 0, m->pos, m->pos + m->batch, 1);
    m->pos += m->batch;
    mlp_train(m, xb, yb);
}

static void row_memory(void) {
    unsigned char *img = malloc((size_t)DATA_N * DATA_D), lab[DATA_N];
    nb_tensor *y = nb_tensor_new(NB_I64, 1, (int64_t[]){DATA_N});
    if (!read_gz("train-images-idx3-ubyte.gz", 16, img, (size_t)DATA_N * DATA_D) ||
        !read_gz("train-labels-idx1-ubyte.gz", 8, lab, DATA_N)) {
        for (int64_t i = 0; i < (int64_t)DATA_N * DATA_D; i++) img[i] = (unsigned char)(nb_philox_uniform(1, (uint64_t)i) * 256);
        for (int64_t i = 0; i < DATA_N; i++) lab[i] = (unsigned char)(nb_philox_uniform(2, (uint64_t)i) * 10);
    }
    for (int64_t i = 0; i < DATA_N; i++) ((int64_t *)y->data)[i] = lab[i];
    mlp_run m;
    mlp_init(&m, NULL, y, 64);
    for (int i = 0; i < 300; i++) mem_step(&m, img);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    bench_report("memory", "mlp B=64 T=1", "peak_rss", (double)ru.ru_maxrss / 1024.0, "MiB");
    bench_report("memory", "mlp B=64 T=1", "final_loss", m.loss, "");
    mlp_free(&m);
    nb_tensor_free(y);
    free(img);
}

/* Row 8: one training step of examples/fashion_cnn.c's network (width 32, hidden 128):
 * conv32-bn-relu-maxpool2, conv64-bn-relu-maxpool2, dropout 0.25, linear 3136->128, relu,
 * dropout 0.5, linear 10, cross-entropy, Adam (lr 1e-3), batch 64, Fashion-MNIST in memory. */
typedef struct {
    nb_ctx *ctx;
    nb_params *ps;
    nb_optim *opt;
    nb_conv2d_layer conv1, conv2;
    nb_batch_norm_layer bn1, bn2;
    nb_linear_layer fc1, fc2;
    nb_tensor *x, *y; /* (N, 1, 28, 28), (N) */
    int64_t batch, pos;
} cnn_run;

static void cnn_init(cnn_run *m, nb_tensor *x, nb_tensor *y, int64_t batch) {
    memset(m, 0, sizeof *m);
    m->ctx = nb_ctx_new();
    nb_ctx_seed(m->ctx, 42);
    m->ps = nb_params_new();
    nb_rng r = nb_rng_new(5);
    nb_status s = nb_conv2d_layer_init(&m->conv1, m->ps, "conv1", 1, 32, 3, 1, 1, 1, 1, false, &r);
    if (!s) s = nb_batch_norm_layer_init(&m->bn1, m->ps, "bn1", 32);
    if (!s) s = nb_conv2d_layer_init(&m->conv2, m->ps, "conv2", 32, 64, 3, 1, 1, 1, 1, false, &r);
    if (!s) s = nb_batch_norm_layer_init(&m->bn2, m->ps, "bn2", 64);
    if (!s) s = nb_linear_layer_init(&m->fc1, m->ps, "fc1", 64 * 7 * 7, 128, true, &r);
    if (!s) s = nb_linear_layer_init(&m->fc2, m->ps, "fc2", 128, 10, true, &r);
    m->bn1.relu = m->bn2.relu = true; /* conv-BN-ReLU: batch norm with the ReLU fused in */
    nb_hparams hp = nb_adam.defaults;
    hp.lr = 1e-3;
    if (!s) m->opt = nb_optim_new(&nb_adam, m->ps, &hp);
    if (!m->opt) {
        fprintf(stderr, "cnn: %s\n", nb_last_error());
        exit(1);
    }
    m->x = x;
    m->y = y;
    m->batch = batch;
}

static void cnn_step(void *p) {
    cnn_run *m = p;
    nb_ctx *ctx = m->ctx;
    if (m->pos + m->batch > m->x->shape[0]) m->pos = 0;
    nb_tensor *xb = nb_reshape(ctx, nb_slice(ctx, m->x, 0, m->pos, m->pos + m->batch, 1), 4,
                               (int64_t[]){m->batch, 1, 28, 28});
    nb_tensor *yb = nb_slice(ctx, m->y, 0, m->pos, m->pos + m->batch, 1);
    m->pos += m->batch;
    nb_tensor *h = nb_batch_norm_layer_forward(ctx, &m->bn1, nb_conv2d_layer_forward(ctx, &m->conv1, xb));
    h = nb_max_pool2d(ctx, h, 2, 2, 0);
    h = nb_batch_norm_layer_forward(ctx, &m->bn2, nb_conv2d_layer_forward(ctx, &m->conv2, h));
    h = nb_dropout(ctx, nb_flatten(ctx, nb_max_pool2d(ctx, h, 2, 2, 0), 1), 0.25);
    h = nb_dropout(ctx, nb_relu(ctx, nb_linear_layer_forward(ctx, &m->fc1, h)), 0.5);
    nb_tensor *loss = nb_cross_entropy(ctx, nb_linear_layer_forward(ctx, &m->fc2, h), yb, NB_REDUCE_MEAN);
    nb_params_zero_grad(m->ps);
    /* Adam updates each parameter as its gradient becomes final; nb_optim_step finishes */
    if (!loss || nb_optim_step_on_ready(m->opt, ctx) != NB_OK || nb_backward(ctx, loss, NULL) != NB_OK ||
        nb_optim_step(m->opt) != NB_OK) {
        fprintf(stderr, "cnn: %s / %s\n", nb_ctx_error(ctx), nb_last_error());
        exit(1);
    }
    nb_ctx_reset(ctx);
}

static void cnn_free(cnn_run *m) {
    nb_optim_free(m->opt);
    nb_batch_norm_layer_free(&m->bn1), nb_batch_norm_layer_free(&m->bn2);
    nb_params_free(m->ps);
    nb_ctx_free(m->ctx);
}

static void row_cnn(void) {
    nb_tensor *x, *y;
    load_data(&x, &y);
    cnn_run m;
    cnn_init(&m, x, y, 64);
    double t = bench_time(cnn_step, &m);
    char cfg[64];
    snprintf(cfg, sizeof cfg, "B=64 T=%d", threads);
    bench_report("cnn", cfg, "samples/s", 64.0 / t, "samples/s");
    cnn_free(&m);
    nb_tensor_free(x), nb_tensor_free(y);
}

/* Sustained throughput: train for a fixed wall time from the first step, as a user's run
 * would (the automatic team size's trials and its first decision included). */
/* ---- rows cnn-memory, resnet-memory, wide-memory (issue 15): memory of one step ------------
 * Each case (train or eval) runs in its own process: `bench_nabla cnn-memory/train`. After setup
 * (data, model, optimizer; no step yet) the kernel's high-water mark is reset (/proc/self/clear_refs
 * "5", which getrusage's ru_maxrss follows), so rss_growth = ru_maxrss after 3 steps minus VmRSS
 * after setup: what the steps themselves add, as torch_bench.py measures it. step_peak is the
 * context's peak (arena and backward pool) over the 3 steps. Training: forward, backward, Adam;
 * evaluation: eval mode, no grad, each top-level block's temporaries released (nb_ctx_keep). */
static double rss_reset_mib(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) fputs("5", f), fclose(f);
    char line[256];
    double kb = 0;
    f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = atof(line + 6);
    if (f) fclose(f);
    return kb / 1024.0;
}

static void mem_case(const char *row, const char *cfg, bench_fn step, void *arg, nb_ctx *ctx) {
    const double base = rss_reset_mib();
    size_t peak = 0;
    for (int i = 0; i < 3; i++) {
        nb_ctx_reset_peak(ctx);
        step(arg);
        if (nb_ctx_bytes_peak(ctx) > peak) peak = nb_ctx_bytes_peak(ctx);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    bench_report(row, cfg, "rss_growth", (double)ru.ru_maxrss / 1024.0 - base, "MiB");
    bench_report(row, cfg, "step_peak", (double)peak / 1048576.0, "MiB");
    bench_report(row, cfg, "peak_rss", (double)ru.ru_maxrss / 1024.0, "MiB");
}

/* fashion_cnn's network (cnn_run): evaluation at batch 500, ReLU fused into batch norm as in training */
typedef struct {
    cnn_run *m;
    nb_ctx *ev;
    nb_tensor *x;
} cnn_eval_arg;

static void cnn_eval_step(void *p) {
    cnn_eval_arg *a = p;
    nb_ctx *ev = a->ev;
    cnn_run *m = a->m;
    NB_NO_GRAD(ev) {
        nb_tensor *xb = nb_reshape(ev, nb_slice(ev, a->x, 0, 0, 500, 1), 4, (int64_t[]){500, 1, 28, 28});
        const nb_mark mk = nb_ctx_mark(ev);
        nb_tensor *h = nb_batch_norm_layer_forward(ev, &m->bn1, nb_conv2d_layer_forward(ev, &m->conv1, xb));
        h = nb_ctx_keep(ev, mk, nb_max_pool2d(ev, h, 2, 2, 0));
        h = nb_batch_norm_layer_forward(ev, &m->bn2, nb_conv2d_layer_forward(ev, &m->conv2, h));
        h = nb_ctx_keep(ev, mk, nb_flatten(ev, nb_max_pool2d(ev, h, 2, 2, 0), 1));
        h = nb_linear_layer_forward(ev, &m->fc2, nb_relu(ev, nb_linear_layer_forward(ev, &m->fc1, h)));
        if (!h) fprintf(stderr, "cnn-memory: %s\n", nb_ctx_error(ev)), exit(1);
    }
    nb_ctx_reset(ev);
}

static void row_cnn_memory(bool train) {
    nb_tensor *x, *y;
    load_data(&x, &y);
    cnn_run m;
    cnn_init(&m, x, y, 64);
    if (train) {
        mem_case("cnn-memory", "train B=64 T=1", cnn_step, &m, m.ctx);
    } else {
        cnn_eval_arg a = {&m, nb_ctx_new(), x};
        nb_ctx_set_train(a.ev, false);
        mem_case("cnn-memory", "eval B=500 T=1", cnn_eval_step, &a, a.ev);
        nb_ctx_free(a.ev);
    }
    cnn_free(&m);
    nb_tensor_free(x), nb_tensor_free(y);
}

/* Residual networks with modules (examples/fashion_resnet.c): conv (no bias) + batch norm, with
 * the ReLU fused into the batch norm where one follows (the layer's relu flag). */
static nb_module *res_conv_bn(nb_model *md, const char *name, int64_t in, int64_t out, int64_t k, int64_t stride,
                              bool relu) {
    char conv[64], bn[64];
    snprintf(conv, sizeof conv, "%s.conv", name), snprintf(bn, sizeof bn, "%s.bn", name);
    nb_module *b = nb_batch_norm_module(md, (nb_batch_norm_opts){.channels = out, .name = bn});
    if (b) ((nb_batch_norm_layer *)b->state)->relu = relu;
    return nb_sequential(md, name, NB_MODULES(
        nb_conv2d_module(md, (nb_conv2d_opts){.in = in, .out = out, .kernel = k, .stride = stride, .padding = k / 2,
                                              .no_bias = true, .name = conv}), b));
}

/* relu(conv-bn-relu-conv-bn (x) + shortcut(x)) with the add and ReLU fused (torchvision's BasicBlock
 * adds and applies its ReLU in place), the shortcut a 1x1 conv-bn where the shape changes */
static nb_module *res_block(nb_model *md, const char *name, int64_t in, int64_t out, int64_t stride) {
    char c1[64], c2[64], proj[64];
    snprintf(c1, sizeof c1, "%s.c1", name), snprintf(c2, sizeof c2, "%s.c2", name);
    snprintf(proj, sizeof proj, "%s.proj", name);
    nb_module *c1m = res_conv_bn(md, c1, in, out, 3, stride, true), *c2m = res_conv_bn(md, c2, out, out, 3, 1, false);
    nb_module *body = nb_sequential(md, NULL, NB_MODULES(c1m, c2m));
    nb_module *shortcut = in == out && stride == 1 ? NULL : res_conv_bn(md, proj, in, out, 1, stride, false);
    return nb_residual_relu(md, name, body, shortcut);
}

/* small: stem 1->16, block 16, block 16->32 /2 (issue 15's network); wide: stem 3->64, two basic
 * blocks per stage at 64, 128, 256, 512 (stride 2 from the second stage): ResNet-18's body */
static nb_module *res_net(nb_model *md, bool wide) {
    static const int64_t W[4] = {64, 128, 256, 512};
    nb_module *mods[12];
    int n = 0;
    mods[n++] = res_conv_bn(md, "stem", wide ? 3 : 1, wide ? 64 : 16, 3, 1, true);
    if (wide) {
        for (int s = 0; s < 4; s++)
            for (int b = 0; b < 2; b++) {
                char name[32];
                snprintf(name, sizeof name, "s%db%d", s + 1, b + 1);
                const int64_t in = b ? W[s] : s ? W[s - 1] : 64;
                mods[n++] = res_block(md, name, in, W[s], !b && s ? 2 : 1);
            }
    } else {
        mods[n++] = res_block(md, "block1", 16, 16, 1);
        mods[n++] = res_block(md, "block2", 16, 32, 2);
    }
    mods[n++] = nb_adaptive_avg_pool2d_module(md, (nb_adaptive_pool2d_opts){0});
    mods[n++] = nb_flatten_module(md, NULL);
    mods[n++] = nb_linear_module(md, (nb_linear_opts){.in = wide ? 512 : 32, .out = 10, .name = "fc"});
    return nb_sequential(md, "net", n, mods);
}

typedef struct {
    nb_model *md;
    nb_module *net;
    nb_optim *opt;
    nb_ctx *ctx;
    nb_tensor *x, *y; /* images (N, C, H, W) or flat Fashion-MNIST (N, 784), labels (N) */
    int64_t batch, pos, c, hw;
} res_run;

static void res_train_step(void *p) {
    res_run *r = p;
    nb_ctx *ctx = r->ctx;
    if (r->pos + r->batch > r->x->shape[0]) r->pos = 0;
    nb_tensor *xb = nb_reshape(ctx, nb_slice(ctx, r->x, 0, r->pos, r->pos + r->batch, 1), 4,
                               (int64_t[]){r->batch, r->c, r->hw, r->hw});
    nb_tensor *yb = nb_slice(ctx, r->y, 0, r->pos, r->pos + r->batch, 1);
    r->pos += r->batch;
    nb_params_zero_grad(r->md->ps);
    nb_tensor *loss = nb_cross_entropy(ctx, nb_module_forward(ctx, r->net, xb), yb, NB_REDUCE_MEAN);
    if (!loss || nb_backward(ctx, loss, NULL) != NB_OK || nb_optim_step(r->opt) != NB_OK)
        fprintf(stderr, "res: %s / %s\n", nb_ctx_error(ctx), nb_last_error()), exit(1);
    nb_ctx_reset(ctx);
}

static void res_eval_step(void *p) {
    res_run *r = p;
    nb_ctx *ev = r->ctx;
    NB_NO_GRAD(ev) {
        nb_tensor *h = nb_reshape(ev, nb_slice(ev, r->x, 0, 0, r->batch, 1), 4, (int64_t[]){r->batch, r->c, r->hw, r->hw});
        const nb_mark mk = nb_ctx_mark(ev);
        for (int i = 0; i < r->net->n_children; i++) /* block by block, only the block's output kept */
            h = nb_ctx_keep(ev, mk, nb_module_forward(ev, r->net->children[i], h));
        if (!h) fprintf(stderr, "res eval: %s\n", nb_ctx_error(ev)), exit(1);
    }
    nb_ctx_reset(ev);
}

/* The network, its data and (train) Adam; the memory rows and the resnet speed row share it. */
static void res_init(res_run *r, bool wide, bool train) {
    *r = (res_run){.md = nb_model_new(5), .ctx = nb_ctx_new(), .c = wide ? 3 : 1, .hw = wide ? 64 : 28};
    r->net = res_net(r->md, wide);
    if (!r->net) fprintf(stderr, "res: %s\n", r->md->error), exit(1);
    nb_ctx_seed(r->ctx, 42);
    if (wide) { /* random 3x64x64 images and labels */
        r->batch = train ? 32 : 128;
        r->x = nb_tensor_new(NB_F32, 4, (int64_t[]){r->batch, 3, 64, 64});
        r->y = nb_tensor_new(NB_I64, 1, (int64_t[]){r->batch});
        nb_rng g = nb_rng_new(1);
        nb_rng_normal(&g, r->x, 0, 1);
        for (int64_t i = 0; i < r->batch; i++)
            ((int64_t *)r->y->data)[i] = (int64_t)(nb_philox_uniform(2, (uint64_t)i) * 10);
    } else {
        load_data(&r->x, &r->y);
        r->batch = train ? 64 : 500;
    }
    if (train) {
        nb_hparams hp = nb_adam.defaults;
        hp.lr = 1e-3;
        r->opt = nb_optim_new(&nb_adam, r->md->ps, &hp);
        if (!r->opt) fprintf(stderr, "res: %s\n", nb_last_error()), exit(1);
    } else {
        nb_ctx_set_train(r->ctx, false);
    }
}

static void res_free(res_run *r) {
    nb_optim_free(r->opt);
    nb_model_free(r->md);
    nb_ctx_free(r->ctx);
    nb_tensor_free(r->x), nb_tensor_free(r->y);
}

static void row_res_memory(bool wide, bool train) {
    res_run r;
    res_init(&r, wide, train);
    char cfg[64];
    snprintf(cfg, sizeof cfg, "%s B=%lld T=1", train ? "train" : "eval", (long long)r.batch);
    mem_case(wide ? "wide-memory" : "resnet-memory", cfg, train ? res_train_step : res_eval_step, &r, r.ctx);
    res_free(&r);
}

/* Row resnet: one training step (forward, backward, Adam) of the small residual network at batch
 * 64 on Fashion-MNIST in memory, as the cnn row does for fashion_cnn's network. */
static void row_resnet(void) {
    res_run r;
    res_init(&r, false, true);
    const double t = bench_time(res_train_step, &r);
    char cfg[64];
    snprintf(cfg, sizeof cfg, "B=%lld T=%d", (long long)r.batch, threads);
    bench_report("resnet", cfg, "samples/s", (double)r.batch / t, "samples/s");
    res_free(&r);
}

static void steady_case(const char *model, void (*step)(void *), void *arg, int64_t batch, double seconds) {
    step(arg); /* warm-up: the arena reaches its size */
    const double t0 = omp_get_wtime();
    int64_t steps = 0;
    while (omp_get_wtime() - t0 < seconds) step(arg), steps++;
    const double dt = omp_get_wtime() - t0;
    char cfg[64], team[16] = "auto";
    if (threads) snprintf(team, sizeof team, "%d", threads);
    snprintf(cfg, sizeof cfg, "%s B=%lld T=%s", model, (long long)batch, team);
    bench_report("steady", cfg, "samples/s", (double)(steps * batch) / dt, "samples/s");
    bench_report("steady", cfg, "threads_at_end", nb_get_num_threads(), "threads");
}

static void row_steady(void) {
    nb_tensor *x, *y;
    load_data(&x, &y);
    const double seconds = bench_batches < 7 ? 4 : 10;
    mlp_run m;
    mlp_init(&m, x, y, 64);
    steady_case("mlp", mlp_step, &m, 64, seconds);
    mlp_free(&m);
    cnn_run c;
    cnn_init(&c, x, y, 64);
    steady_case("cnn", cnn_step, &c, 64, seconds);
    cnn_free(&c);
    nb_tensor_free(x), nb_tensor_free(y);
}

/* ---- row fit: nb_fit against the hand-written loop it replaces ---------------------------------- */
/* The same module MLP (784-256-128-10, ReLU) and Adam trained over the same epoch slice (the
 * first FIT_N images in batches of 64, shuffled by the batcher), once by nb_fit (one epoch, no
 * validation, no callbacks) and once by the loop a user would write: zero_grad, forward, cross
 * entropy, backward, step, the loss summed with nb_item, reset. Both keep training the same
 * parameters; the cases alternate, and each keeps the minimum over rounds of its thread CPU
 * time (repeatable on a loaded machine) and of its wall time. mallocs/step: the context's
 * mallocs (nb_ctx_mallocs) over a warmed nb_fit epoch, per step; 0 is the target. */
enum { FIT_N = 6400, FIT_BATCH = 64 };

typedef struct {
    nb_ctx *ctx;
    nb_model *model;
    nb_module *net;
    nb_optim *opt;
    nb_batcher *it;
    int64_t epoch;
} fit_run;

static double thread_cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fit_by_nb_fit(fit_run *f) {
    nb_history h;
    if (nb_fit(f->ctx, NULL, f->net, f->opt, f->it, &h, &(nb_fit_opts){.epochs = 1}) != NB_OK) {
        fprintf(stderr, "fit: %s\n", nb_last_error());
        exit(1);
    }
    nb_history_free(&h);
}

static void fit_by_hand(fit_run *f) {
    double loss_sum = 0;
    nb_batch b;
    nb_batcher_start(f->it, 0); /* the epoch nb_fit runs (its first) */
    while (nb_batcher_next(f->it, &b)) {
        nb_params_zero_grad(f->model->ps);
        nb_tensor *loss = nb_cross_entropy(f->ctx, nb_module_forward(f->ctx, f->net, b.x), b.y, NB_REDUCE_MEAN);
        if (!loss || nb_backward(f->ctx, loss, NULL) != NB_OK || nb_optim_step(f->opt) != NB_OK) {
            fprintf(stderr, "fit: %s / %s\n", nb_ctx_error(f->ctx), nb_last_error());
            exit(1);
        }
        loss_sum += nb_item(loss) * (double)b.n;
        nb_ctx_reset(f->ctx);
    }
    if (!isfinite(loss_sum)) exit(1);
}

static void row_fit(void) {
    nb_tensor *x, *y;
    load_data(&x, &y);
    int64_t *idx = malloc(FIT_N * sizeof *idx);
    for (int64_t i = 0; i < FIT_N; i++) idx[i] = i;
    nb_tensor *xs = nb_take_rows(x, idx, FIT_N), *ys = nb_take_rows(y, idx, FIT_N);
    free(idx);
    fit_run f = {.ctx = nb_ctx_new(), .model = nb_model_new(5)};
    nb_model *m = f.model;
    f.net = nb_sequential(m, "mlp", NB_MODULES(nb_linear_module(m, (nb_linear_opts){.in = 784, .out = 256}), nb_relu_module(m, NULL),
                                                nb_linear_module(m, (nb_linear_opts){.in = 256, .out = 128}), nb_relu_module(m, NULL),
                                                nb_linear_module(m, (nb_linear_opts){.in = 128, .out = 10})));
    f.opt = f.net ? nb_optim_new(&nb_adam, m->ps, NULL) : NULL;
    f.it = nb_batcher_new(xs, ys, &(nb_batch_opts){.batch_size = FIT_BATCH, .shuffle = true, .seed = 1});
    if (!f.opt || !f.it) {
        fprintf(stderr, "fit: %s\n", nb_last_error());
        exit(1);
    }
    void (*cases[2])(fit_run *) = {fit_by_hand, fit_by_nb_fit};
    double cpu[2] = {INFINITY, INFINITY}, wall[2] = {INFINITY, INFINITY};
    for (int c = 0; c < 2; c++) cases[c](&f); /* warm-up: the arena reaches its size */
    const uint64_t mallocs0 = nb_ctx_mallocs(f.ctx);
    fit_by_nb_fit(&f);
    const uint64_t mallocs = nb_ctx_mallocs(f.ctx) - mallocs0;
    const int rounds = bench_batches < 7 ? 3 : 9;
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < 2; k++) {
            const int c = (r + k) % 2; /* alternate which case goes first */
            const double c0 = thread_cpu_now(), w0 = bench_now();
            cases[c](&f);
            const double dc = thread_cpu_now() - c0, dw = bench_now() - w0;
            cpu[c] = dc < cpu[c] ? dc : cpu[c], wall[c] = dw < wall[c] ? dw : wall[c];
        }
    char cfg[64];
    snprintf(cfg, sizeof cfg, "mlp B=%d n=%d T=%d", FIT_BATCH, FIT_N, threads);
    bench_report("fit", cfg, "hand samples/s (wall)", FIT_N / wall[0], "samples/s");
    bench_report("fit", cfg, "nb_fit samples/s (wall)", FIT_N / wall[1], "samples/s");
    bench_report("fit", cfg, "nb_fit/hand (wall)", wall[0] / wall[1], "x");
    if (threads == 1) bench_report("fit", cfg, "nb_fit/hand (thread cpu)", cpu[0] / cpu[1], "x");
    bench_report("fit", cfg, "mallocs/step", (double)mallocs / (double)(FIT_N / FIT_BATCH), "mallocs");
    nb_batcher_free(f.it), nb_optim_free(f.opt), nb_model_free(m), nb_ctx_free(f.ctx);
    nb_tensor_free(xs), nb_tensor_free(ys), nb_tensor_free(x), nb_tensor_free(y);
}

/* For profilers: 200 CNN steps at batch 64 after loading (a fixed amount of work, so that CPU
 * times of two builds compare on a busy machine), nothing else. */
static void prof_cnn(void) {
    nb_tensor *x, *y;
    load_data(&x, &y);
    cnn_run m;
    cnn_init(&m, x, y, 64);
    for (int i = 0; i < 200; i++) cnn_step(&m);
    cnn_free(&m);
    nb_tensor_free(x), nb_tensor_free(y);
}

/* For profilers: 200 steps of the resnet row's network (res_train_step), nothing else. */
static void prof_resnet(void) {
    res_run r;
    res_init(&r, false, true);
    for (int i = 0; i < 200; i++) res_train_step(&r);
    res_free(&r);
}

/* Row 2: one step of Adam and of SGD with momentum on a single 10M-element parameter, against
 * the bandwidth bound bytes / triad bandwidth measured just before in the same process. */
static void opt_step(void *p) { nb_optim_step(p); }

static void row_optim(void) {
    const int64_t n = 10000000;
    double bw = row_triad(n);
    for (int k = 0; k < 2; k++) {
        nb_params *ps = nb_params_new();
        nb_tensor *p = nb_params_add(ps, "w", 1, &n);
        nb_rng r = nb_rng_new(3);
        nb_rng_normal(&r, p, 0, 1);
        nb_rng_normal(&r, p->grad, 0, 1);
        nb_hparams hp = k == 0 ? nb_adam.defaults : nb_momentum.defaults;
        hp.lr = 1e-3;
        nb_optim *opt = nb_optim_new(k == 0 ? &nb_adam : &nb_momentum, ps, &hp);
        double bytes = (k == 0 ? 7.0 : 5.0) * 4.0 * (double)n; /* Adam: r w,g,m,v w w,m,v; SGD: r w,g,b w w,b */
        double t = bench_time(opt_step, opt);
        char cfg[64];
        snprintf(cfg, sizeof cfg, "%s n=10M T=%d", k == 0 ? "adam" : "sgd_momentum", threads);
        bench_report("optim", cfg, "time", t * 1e3, "ms");
        bench_report("optim", cfg, "bandwidth", bytes / t * 1e-9, "GB/s");
        bench_report("optim", cfg, "frac_of_bound", bytes / bw * 1e-9 / t, "x");
        nb_optim_free(opt);
        nb_params_free(ps);
    }
}
#endif

int main(int argc, char **argv) {
    const char *rows[32];
    int nrows = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) bench_budget = 0.1, bench_batches = 3;
        else if (nrows < 32) rows[nrows++] = argv[i];
    }
    if (threads < 0) threads = 1;
    nb_set_num_threads(threads); /* 0: automatic */
    static const char *all[] = {"info", "mlp", "cnn", "resnet", "conv", "bn", "ln", "optim", "chain", "engine", "matmul"};
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
        } else if (!strcmp(row, "conv")) {
            row_conv();
        } else if (!strcmp(row, "bn")) {
            row_bn();
        } else if (!strcmp(row, "ln")) {
            norm_case("ln", 2, (int64_t[]){64 * 196, 256});
#ifdef BENCH_HAVE_OPTIM
        } else if (!strcmp(row, "mlp")) {
            row_mlp();
        } else if (!strcmp(row, "optim")) {
            row_optim();
        } else if (!strcmp(row, "cnn")) {
            row_cnn();
        } else if (!strcmp(row, "resnet")) {
            row_resnet();
        } else if (!strncmp(row, "cnn-memory/", 11) || !strncmp(row, "resnet-memory/", 14) ||
                   !strncmp(row, "wide-memory/", 12)) {
            /* one case per process: ROW/train or ROW/eval */
            const bool train = !strcmp(strchr(row, '/') + 1, "train");
            if (!train && strcmp(strchr(row, '/') + 1, "eval")) {
                fprintf(stderr, "bench_nabla: %s: the case is train or eval\n", row);
                return 2;
            }
            if (row[0] == 'c') row_cnn_memory(train);
            else row_res_memory(row[0] == 'w', train);
        } else if (!strcmp(row, "steady")) {
            row_steady();
        } else if (!strcmp(row, "fit")) {
            row_fit();
        } else if (!strcmp(row, "prof-cnn")) {
            prof_cnn();
        } else if (!strcmp(row, "prof-resnet")) {
            prof_resnet();
        } else if (!strcmp(row, "memory")) {
            row_memory();
        } else if (!strcmp(row, "prof-mlp64") || !strcmp(row, "prof-mlp256")) {
            prof_mlp(row[8] == '6' ? 64 : 256);
#else
        } else if (!strcmp(row, "mlp") || !strcmp(row, "optim") || !strcmp(row, "memory") || !strcmp(row, "cnn") ||
                   !strcmp(row, "resnet") || !strcmp(row, "steady") || !strcmp(row, "fit")) {
            /* needs the optimizer API (nabla/optim.h) */
#endif
        } else if (!strcmp(row, "triad")) {
            row_triad(10000000);
        } else {
            fprintf(stderr, "bench_nabla: unknown row '%s'\n", row);
            return 2;
        }
    }
    return 0;
}
