/* The parts of one conv2d training step, timed apart, beside the same GEMMs on BLIS.
 *
 *   bench_conv_parts [reps [shape index]]      default 15 reps, every shape
 *   bench_conv_parts reps N C O HW k s          one shape of your own (padding k/2)
 *
 * For each conv shape of bench/nabla.c's conv row (batch 64, padding k/2, no bias, f32) and one
 * thread, prints the thread CPU time (CLOCK_THREAD_CPUTIME_ID, minimum of reps calls, so other
 * processes on the machine barely move it; with BENCH_THREADS=T > 1, T threads and wall time) of:
 *   fwd   y = conv2d(x, w)                      (no-grad)
 *   bx    the input gradient: conv_transpose2d(gy, w), the same primitive as conv2d's backward
 *   bw    the weight gradient: conv2d + nb_grad for w alone, minus fwd
 * and of each part's GEMM over the whole batch on BLIS (sgemm, row-major, the columns already
 * unfolded: K = C*kh*kw, P = B*OH*OW):
 *   fwd (O,K)(K,P)   bx (K,O)(O,P)   bw (O,P)(P,K)
 * with the ratio GEMM / part (the target: >= 0.8). The column matrices are filled
 * once, outside the timing: unfolding is not GEMM work. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <nabla/nabla.h>

#include <blis.h>
#include <omp.h>

static int threads = 1; /* BENCH_THREADS: > 1 times wall clock (every thread's work) */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(threads > 1 ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    nb_ctx *ctx;
    nb_tensor *x, *w, *gy;
    int stride, pad, out_pad;
    int64_t O, K, P;
    float *A, *Bm, *Cm; /* the GEMM operands, large enough for each part */
} parts;

typedef void (*part_fn)(parts *p);

static void check(const parts *p, const void *ok) {
    if (!ok) fprintf(stderr, "conv_parts: %s\n", nb_ctx_error(p->ctx)), exit(1);
}

static void fwd(parts *p) {
    nb_set_grad_enabled(p->ctx, false);
    check(p, nb_conv2d(p->ctx, p->x, p->w, NULL, p->stride, p->pad, 1, 1));
    nb_set_grad_enabled(p->ctx, true);
    nb_ctx_reset(p->ctx);
}
static void bx(parts *p) {
    nb_set_grad_enabled(p->ctx, false);
    check(p, nb_conv_transpose2d(p->ctx, p->gy, p->w, NULL, p->stride, p->pad, p->out_pad, 1, 1));
    nb_set_grad_enabled(p->ctx, true);
    nb_ctx_reset(p->ctx);
}
static void fwd_bw(parts *p) {
    nb_tensor *y = nb_conv2d(p->ctx, p->x, p->w, NULL, p->stride, p->pad, 1, 1), *gw;
    check(p, y);
    if (nb_grad(p->ctx, 1, &y, &p->gy, 1, &p->w, &gw, false) != NB_OK) check(p, NULL);
    nb_ctx_reset(p->ctx);
}
static void gemm(int64_t m, int64_t n, int64_t k, const float *a, const float *b, float *c) {
    float one = 1, zero = 0;
    bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &one, (float *)a, k, 1, (float *)b, n, 1, &zero, c, n, 1);
}
static void gemm_fwd(parts *p) { gemm(p->O, p->P, p->K, p->A, p->Bm, p->Cm); }
static void gemm_bx(parts *p) { gemm(p->K, p->P, p->O, p->A, p->Bm, p->Cm); }
static void gemm_bw(parts *p) { gemm(p->O, p->K, p->P, p->A, p->Bm, p->Cm); }

static int reps = 15;

/* minimum thread CPU seconds of one call, after one call of warm-up */
static double min_time(part_fn f, parts *p) {
    f(p);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        const double t0 = cpu_now();
        f(p);
        const double t = cpu_now() - t0;
        best = t < best ? t : best;
    }
    return best;
}

static void shape(int64_t B, int64_t C, int64_t O, int64_t HW, int64_t k, int64_t s) {
    const int64_t pad = k / 2, OHW = (HW + 2 * pad - k) / s + 1;
    parts p = {.ctx = nb_ctx_new(),
               .x = nb_tensor_new(NB_F32, 4, (int64_t[]){B, C, HW, HW}),
               .w = nb_tensor_new(NB_F32, 4, (int64_t[]){O, C, k, k}),
               .gy = nb_tensor_new(NB_F32, 4, (int64_t[]){B, O, OHW, OHW}),
               .stride = (int)s,
               .pad = (int)pad,
               .out_pad = (int)(HW - ((OHW - 1) * s - 2 * pad + k)), /* conv_transpose2d's output: x's size */
               .O = O,
               .K = C * k * k,
               .P = B * OHW * OHW};
    nb_rng r = nb_rng_new(11);
    nb_rng_normal(&r, p.x, 0, 1);
    nb_rng_normal(&r, p.w, 0, 0.1);
    nb_rng_normal(&r, p.gy, 0, 1);
    nb_requires_grad(p.w, true);
    const int64_t big = (p.K > p.O ? p.K : p.O) * p.P;
    p.A = malloc((size_t)big * 4), p.Bm = malloc((size_t)big * 4), p.Cm = malloc((size_t)big * 4);
    if (!p.A || !p.Bm || !p.Cm) fprintf(stderr, "conv_parts: out of memory\n"), exit(1);
    for (int64_t i = 0; i < big; i++) p.A[i] = p.Bm[i] = 0.1f * (float)((int)(i % 11) - 5), p.Cm[i] = 0;
    const double tf = min_time(fwd, &p), tx = min_time(bx, &p), tfw = min_time(fwd_bw, &p);
    const double gf = min_time(gemm_fwd, &p), gx = min_time(gemm_bx, &p), gw = min_time(gemm_bw, &p);
    const double tw = tfw - tf;
    char kind[32] = "";
    if (k != 3 || s != 1) snprintf(kind, sizeof kind, " k%lld s%lld", (long long)k, (long long)s);
    printf("B=%lld %lld->%lld %lldx%lld%-7s  fwd %6.2f (gemm %6.2f, %.2f)  bx %6.2f (gemm %6.2f, %.2f)  "
           "bw %6.2f (gemm %6.2f, %.2f)  sum %6.2f ms\n",
           (long long)B, (long long)C, (long long)O, (long long)HW, (long long)HW, kind, tf * 1e3, gf * 1e3, gf / tf,
           tx * 1e3, gx * 1e3, gx / tx, tw * 1e3, gw * 1e3, gw / tw, (tf + tx + tw) * 1e3);
    fflush(stdout);
    free(p.A), free(p.Bm), free(p.Cm);
    nb_tensor_free(p.x), nb_tensor_free(p.w), nb_tensor_free(p.gy);
    nb_ctx_free(p.ctx);
}

int main(int argc, char **argv) {
    if (argc > 1) reps = atoi(argv[1]) > 0 ? atoi(argv[1]) : reps;
    const int only = argc > 2 ? atoi(argv[2]) : -1;
    /* nabla first: it chooses BLIS's kernel set (skx on AVX-512 CPUs that BLIS 0.9 does not
     * know) at its first call; a BLIS call before it would fix BLIS on its generic kernels */
    const char *bt = getenv("BENCH_THREADS");
    threads = bt && atoi(bt) > 1 ? atoi(bt) : 1;
    nb_set_num_threads(threads);
    omp_set_num_threads(threads);
    bli_thread_set_num_threads(threads);
    /* bench/nabla.c's conv row: fashion_cnn's two shapes, then the residual network's five */
    const int64_t s[][6] = {{64, 1, 32, 28, 3, 1},  {64, 32, 64, 14, 3, 1}, {64, 1, 16, 28, 3, 1}, {64, 16, 16, 28, 3, 1},
                            {64, 16, 32, 28, 3, 2}, {64, 32, 32, 14, 3, 1}, {64, 16, 32, 28, 1, 2}};
    printf("%s ms, min of %d, %d thread(s), BLIS kernels %s; (gemm ms, gemm/part)\n", threads > 1 ? "wall" : "thread CPU",
           reps, threads, nb_blis_kernels());
    if (argc == 8) {
        int64_t v[6];
        for (int i = 0; i < 6; i++) v[i] = atoll(argv[2 + i]);
        if (v[0] < 1 || v[1] < 1 || v[2] < 1 || v[3] < 1 || v[4] < 1 || v[5] < 1) return fprintf(stderr, "bad shape\n"), 2;
        shape(v[0], v[1], v[2], v[3], v[4], v[5]);
        return 0;
    }
    for (int i = 0; i < (int)(sizeof s / sizeof s[0]); i++)
        if (only < 0 || only == i) shape(s[i][0], s[i][1], s[i][2], s[i][3], s[i][4], s[i][5]);
    return 0;
}
