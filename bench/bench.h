/* Shared helpers of the nabla benchmarks: timing, medians, result lines.
 *
 * Every result is printed as one tab-separated line that bench/run.py parses:
 *   R <row> <config> <metric> <value> <unit>
 * Each measurement warms up first (not timed), then times several batches of calls and keeps
 * the median time per call, so one slow batch (another process on the core) does not count.
 */
#ifndef NABLA_BENCH_H
#define NABLA_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bench_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double bench_median_of(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Total time budget of one measurement in seconds, and batches timed (fewer with --quick). */
static double bench_budget = 1.0;
static int bench_batches = 7;

typedef void (*bench_fn)(void *arg);

/* Median seconds per call of fn(arg): warm-up of ~15% of the budget (at least 2 calls),
 * then bench_batches batches whose call count is calibrated to fill the rest of the budget. */
static double bench_time(bench_fn fn, void *arg) {
    enum { MAX_BATCHES = 16 };
    const int BATCHES = bench_batches < MAX_BATCHES ? bench_batches : MAX_BATCHES;
    double t0 = bench_now();
    long warm = 0;
    do {
        fn(arg);
        warm++;
    } while (warm < 2 || bench_now() - t0 < 0.15 * bench_budget);
    double per = (bench_now() - t0) / (double)warm;
    long n = (long)(0.85 * bench_budget / BATCHES / (per > 1e-9 ? per : 1e-9));
    if (n < 1) n = 1;
    double t[MAX_BATCHES];
    for (int b = 0; b < BATCHES; b++) {
        double s = bench_now();
        for (long i = 0; i < n; i++) fn(arg);
        t[b] = (bench_now() - s) / (double)n;
    }
    return bench_median_of(t, BATCHES);
}

/* k functions timed in alternation, for ratios between them that the machine's drift does not
 * bias: after a warm-up of each, every batch times n_j calls of fn[j] for j = 0 .. k-1 in turn
 * (n_j calibrated so each takes an equal share of the budget); t[j][b] is seconds per call of
 * fn[j] in batch b. Returns the number of batches. */
enum { BENCH_MAX_BATCHES = 16, BENCH_MAX_FNS = 4 };
__attribute__((unused)) static int bench_time_alternating(int k, const bench_fn *fn, void *const *arg, double t[][BENCH_MAX_BATCHES]) {
    const int BATCHES = bench_batches < BENCH_MAX_BATCHES ? bench_batches : BENCH_MAX_BATCHES;
    long n[BENCH_MAX_FNS];
    for (int j = 0; j < k; j++) {
        double t0 = bench_now();
        long warm = 0;
        do {
            fn[j](arg[j]);
            warm++;
        } while (warm < 2 || bench_now() - t0 < 0.15 * bench_budget / k);
        const double per = (bench_now() - t0) / (double)warm;
        n[j] = (long)(0.85 * bench_budget / BATCHES / k / (per > 1e-9 ? per : 1e-9));
        if (n[j] < 1) n[j] = 1;
    }
    for (int b = 0; b < BATCHES; b++)
        for (int j = 0; j < k; j++) {
            const double s = bench_now();
            for (long i = 0; i < n[j]; i++) fn[j](arg[j]);
            t[j][b] = (bench_now() - s) / (double)n[j];
        }
    return BATCHES;
}

static void bench_report(const char *row, const char *config, const char *metric, double value, const char *unit) {
    printf("R\t%s\t%s\t%s\t%.6g\t%s\n", row, config, metric, value, unit);
    fflush(stdout);
}

#endif
