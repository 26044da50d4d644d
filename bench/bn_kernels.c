/* Batch norm (+ fused ReLU) kernels against the memory-bandwidth bound, on one shape.
 *
 *   bench_bn_kernels [N C H W [threads]]      default 64 16 28 28, 1 thread
 *
 * Prints the time of one forward and of one backward (nb_grad for x, weight and bias), each
 * over the time of a memcpy of x measured in the same process: a read+write pass over the data
 * (also as bench/run.py's "R" lines).
 * The floor is 1.5 passes forward (read x for the statistics, read x + write y) and 2.5 backward
 * (read g and x for the sums, read g and x + write gx). Timings on a busy machine are only
 * indicative.
 *
 * Under callgrind (valgrind --tool=callgrind --collect-atstart=no bench_bn_kernels) one steady
 * forward and one steady backward are collected and dumped separately ("forward", "backward"):
 * their instruction counts over N*C*H*W are the instructions per element. The program also
 * checks that a steady step makes no malloc (nb_ctx_mallocs). */
#include "bench.h"


#include <nabla/nabla.h>

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define HAVE_CALLGRIND 1
#endif
#endif
#ifndef HAVE_CALLGRIND
#define RUNNING_ON_VALGRIND 0
#define CALLGRIND_TOGGLE_COLLECT
#define CALLGRIND_DUMP_STATS_AT(s)
#define CALLGRIND_ZERO_STATS
#endif

typedef struct {
    nb_ctx *ctx;
    nb_tensor *x, *w, *b, *rm, *rv, *gout, *copy;
} bn_case;

static nb_tensor *forward(bn_case *c) { return nb_batch_norm_relu(c->ctx, c->x, c->w, c->b, c->rm, c->rv, 0.1, 1e-5); }

static int backward(bn_case *c, nb_tensor *y) {
    nb_tensor *in[3] = {c->x, c->w, c->b}, *g[3];
    return nb_grad(c->ctx, 1, &y, &c->gout, 3, in, g, false) != NB_OK;
}

static void run_memcpy(void *arg) {
    bn_case *c = arg;
    memcpy(c->copy->data, c->x->data, (size_t)c->x->numel * sizeof(float));
}
static void run_forward(void *arg) {
    bn_case *c = arg;
    forward(c);
    nb_ctx_reset(c->ctx);
}
static void run_step(void *arg) {
    bn_case *c = arg;
    backward(c, forward(c));
    nb_ctx_reset(c->ctx);
}

int main(int argc, char **argv) {
    int64_t shape[4] = {64, 16, 28, 28};
    for (int i = 0; i < 4 && i + 1 < argc; i++) shape[i] = atoll(argv[i + 1]);
    nb_set_num_threads(argc > 5 ? atoi(argv[5]) : 1);
    bn_case c = {.ctx = nb_ctx_new()};
    nb_rng rng = nb_rng_new(7);
    const int64_t C = shape[1];
    c.w = nb_tensor_new(NB_F32, 1, &C), c.b = nb_tensor_new(NB_F32, 1, &C);
    c.rm = nb_tensor_new(NB_F32, 1, &C), c.rv = nb_tensor_new(NB_F32, 1, &C);
    c.x = nb_tensor_new(NB_F32, 4, shape), c.gout = nb_tensor_new(NB_F32, 4, shape), c.copy = nb_tensor_new(NB_F32, 4, shape);
    nb_rng_normal(&rng, c.x, 0.5, 2.0);
    nb_rng_normal(&rng, c.gout, 0, 1);
    nb_rng_normal(&rng, c.w, 1, 0.2);
    nb_rng_normal(&rng, c.b, 0, 0.2);
    nb_fill(c.rv, 1.0);
    nb_requires_grad(c.x, true), nb_requires_grad(c.w, true), nb_requires_grad(c.b, true);
    const double n = (double)c.x->numel;

    for (int i = 0; i < 3; i++) run_step(&c); /* the arena grows to its working size */
    const uint64_t mallocs = nb_ctx_mallocs(c.ctx);

    CALLGRIND_ZERO_STATS;
    CALLGRIND_TOGGLE_COLLECT;
    nb_tensor *y = forward(&c);
    CALLGRIND_TOGGLE_COLLECT;
    CALLGRIND_DUMP_STATS_AT("forward");
    CALLGRIND_TOGGLE_COLLECT;
    const int bad = !y || backward(&c, y);
    CALLGRIND_TOGGLE_COLLECT;
    CALLGRIND_DUMP_STATS_AT("backward");
    if (bad) return fprintf(stderr, "bn_kernels: %s\n", nb_ctx_error(c.ctx)), 1;
    nb_ctx_reset(c.ctx);
    printf("shape (%lld, %lld, %lld, %lld), %d thread(s); mallocs in a steady step: %llu\n", (long long)shape[0],
           (long long)shape[1], (long long)shape[2], (long long)shape[3], nb_get_num_threads(),
           (unsigned long long)(nb_ctx_mallocs(c.ctx) - mallocs));

    if (!RUNNING_ON_VALGRIND) {
        bench_budget = 2.0;
        const double copy = bench_time(run_memcpy, &c), fw = bench_time(run_forward, &c), step = bench_time(run_step, &c);
        printf("memcpy of x  %8.3f ms  %.2f GB/s (read+write)\n", 1e3 * copy, 2 * n * sizeof(float) / copy * 1e-9);
        printf("forward      %8.3f ms  %.2fx memcpy (floor 1.5x)\n", 1e3 * fw, fw / copy);
        printf("backward     %8.3f ms  %.2fx memcpy (floor 2.5x)\n", 1e3 * (step - fw), (step - fw) / copy);
        printf("fwd+bwd      %8.3f ms  %.2fx memcpy (floor 4x)\n", 1e3 * step, step / copy);
        char cfg[64];
        snprintf(cfg, sizeof cfg, "%lldx%lldx%lldx%lld/%dt", (long long)shape[0], (long long)shape[1], (long long)shape[2],
                 (long long)shape[3], nb_get_num_threads());
        bench_report("bn_relu", cfg, "forward/memcpy", fw / copy, "x");
        bench_report("bn_relu", cfg, "backward/memcpy", (step - fw) / copy, "x");
    }
    nb_tensor_free(c.x), nb_tensor_free(c.gout), nb_tensor_free(c.copy);
    nb_tensor_free(c.w), nb_tensor_free(c.b), nb_tensor_free(c.rm), nb_tensor_free(c.rv);
    nb_ctx_free(c.ctx);
    return 0;
}
