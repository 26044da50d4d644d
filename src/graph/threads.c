/* Threads and BLIS kernels: how many threads nabla's kernels and BLIS use, and which BLIS
 * kernel set runs.
 *
 * Every kernel gives the same bits for any thread count, so the team size is free to change
 * between two steps. By default (no OMP_NUM_THREADS, no nb_set_num_threads) the team size is
 * chosen by measurement: on a machine shared with other work, every fork/join waits for a
 * thread the OS has descheduled, and two threads ran 12x slower than one. The tuner times the
 * steps of one context (the time between two nb_ctx_reset calls), now and then runs a few
 * steps with the other team size (1 or all cores), and keeps whichever was faster. */
#include "../internal.h"

#include <blis.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

/* ---- BLIS kernels ------------------------------------------------------------------------ */
/* Debian's BLIS 0.9 does not recognise newer CPUs (e.g. AMD family 0x1A) and falls back to its
 * generic reference kernels, about 5x slower than its AVX-512 ones. Before BLIS starts, and
 * only when the user has not chosen (BLIS_ARCH_TYPE unset), ask for the Skylake-X kernels on a
 * CPU with the AVX-512 subsets they use; any CPU BLIS knows picks the same or better itself. */
static void choose_blis_kernels(void) {
    if (getenv("BLIS_ARCH_TYPE")) return;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        setenv("BLIS_ARCH_TYPE", "0", 0); /* BLIS_ARCH_SKX */
}

void nb__blis_init(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, choose_blis_kernels);
}

const char *nb_blis_kernels(void) {
    nb__blis_init();
    bli_init(); /* the kernel set is chosen when BLIS initialises */
    return bli_arch_string(bli_arch_query_id());
}

/* ---- team size ------------------------------------------------------------------------------ */
static int fixed_threads;  /* > 0: set by the user (nb_set_num_threads or OMP_NUM_THREADS) */
static int max_threads;    /* the team size OpenMP would use: the cores we may run on */
static const nb_ctx *driver; /* the context whose steps drive the tuner (the first to reset) */
static nb_thread_tuner tuner;

static void threads_init(void) {
    max_threads = omp_get_max_threads();
    const char *env = getenv("OMP_NUM_THREADS");
    if (env && *env) fixed_threads = max_threads;
}
static void threads_once(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, threads_init);
}

static void apply(int n) {
    omp_set_num_threads(n);
    nb__blis_init();
    bli_thread_set_num_threads(n);
}

void nb_set_num_threads(int n) {
    threads_once();
    if (n <= 0) { /* back to automatic */
        fixed_threads = 0;
        nb__tuner_init(&tuner, max_threads);
        apply(max_threads);
        return;
    }
    fixed_threads = n;
    apply(n);
}
int nb_get_num_threads(void) { return omp_get_max_threads(); }
bool nb_threads_auto(void) {
    threads_once();
    return fixed_threads == 0;
}

/* ---- the tuner: a pure state machine over step times (unit-tested with made-up clocks) ---- */
#define TUNE_WINDOW 5        /* steps at the current size compared against */
#define TUNE_TRIES 3         /* steps at the other size per exploration */
#define TUNE_FIRST 0.5       /* seconds before the first exploration */
#define TUNE_MAX_WAIT 16.0   /* longest wait between explorations */
#define TUNE_GAIN 0.9        /* switch when the other size's median step is below 0.9x */

void nb__tuner_init(nb_thread_tuner *t, int max) {
    *t = (nb_thread_tuner){.cur = max, .max = max < 1 ? 1 : max, .wait = TUNE_FIRST, .next = -1};
}

static double median(const double *v, int n) {
    double s[TUNE_WINDOW > TUNE_TRIES ? TUNE_WINDOW : TUNE_TRIES];
    for (int i = 0; i < n; i++) {
        int j = i;
        for (; j > 0 && s[j - 1] > v[i]; j--) s[j] = s[j - 1];
        s[j] = v[i];
    }
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

int nb__tuner_step(nb_thread_tuner *t, double now, double dt) {
    if (t->max <= 1) return 1;
    if (t->next < 0) t->next = now + t->wait;
    if (t->exploring) {
        t->tries[t->ntries++] = dt;
        const double base = median(t->window, TUNE_WINDOW);
        /* one step far slower than the current size's median ends the trial at once */
        const bool hopeless = dt > 2 * base;
        if (t->ntries < TUNE_TRIES && !hopeless) return t->alt;
        t->explorations++;
        const bool better = !hopeless && median(t->tries, t->ntries) < TUNE_GAIN * base;
        t->exploring = false;
        if (better) {
            t->cur = t->alt, t->switches++;
            t->nwindow = 0, t->wait = TUNE_FIRST;
        } else {
            t->wait = t->wait * 2 > TUNE_MAX_WAIT ? TUNE_MAX_WAIT : t->wait * 2;
        }
        t->next = now + t->wait;
        t->skip = 1; /* the first step after a change pays for waking or parking threads */
        return t->cur;
    }
    if (t->skip) {
        t->skip--;
        return t->cur;
    }
    /* a ring of the last TUNE_WINDOW steps at the current size */
    t->window[t->nwindow++ % TUNE_WINDOW] = dt;
    if (t->nwindow < TUNE_WINDOW) return t->cur;
    /* the machine got slower (another job started?): look again soon */
    const double m = median(t->window, TUNE_WINDOW);
    if (t->best > 0 && m > 1.5 * t->best && t->wait > TUNE_FIRST) {
        t->wait = TUNE_FIRST;
        if (t->next > now + TUNE_FIRST) t->next = now + TUNE_FIRST;
    }
    if (t->best <= 0 || m < t->best) t->best = m;
    if (now < t->next) return t->cur;
    t->alt = t->cur == 1 ? t->max : 1;
    t->exploring = true, t->ntries = 0, t->best = 0;
    return t->alt;
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void nb__threads_step(const nb_ctx *ctx, double *last) {
    threads_once();
    if (fixed_threads || omp_in_parallel()) return;
    #pragma omp critical(nb_thread_tuner)
    {
        if (!driver) {
            driver = ctx;
            nb__tuner_init(&tuner, max_threads);
        }
        if (driver == ctx) {
            const double now = seconds();
            if (*last > 0) {
                const int n = nb__tuner_step(&tuner, now, now - *last);
                if (n != omp_get_max_threads()) apply(n);
            }
            *last = seconds();
        }
    }
}

void nb__threads_forget(const nb_ctx *ctx) {
    #pragma omp critical(nb_thread_tuner)
    if (driver == ctx) driver = NULL;
}
