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
#include <cpuid.h>
#include <dirent.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* ---- BLIS kernels ------------------------------------------------------------------------ */
/* Debian's BLIS 0.9 places Intel CPUs by their features and AMD CPUs by family (0x17 zen or
 * zen2, 0x19 zen3, Zen 4 included); an AMD CPU of a later family (0x1A, Zen 5) gets its generic
 * reference kernels, about 5x slower. Only there, and only when the user has not chosen
 * (BLIS_ARCH_TYPE unset), nabla picks before BLIS starts: the Skylake-X kernels on a CPU with
 * the AVX-512 subsets they use, else haswell's with AVX2 and FMA. Where BLIS knows the CPU its
 * own choice stands: on a Zen 4 (family 0x19, AVX-512) forcing skx made the MLP step 12% and
 * the CNN step 11% slower than BLIS's zen3 kernels (skx's 32-row sgemm panels have no packing
 * kernel in BLIS 0.9 and are copied one element at a time). */
static bool blis_knows_cpu(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return true;
    const bool amd = b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163; /* "AuthenticAMD" */
    if (!amd || !__get_cpuid(1, &a, &b, &c, &d)) return true;
    unsigned family = (a >> 8) & 0xf;
    if (family == 0xf) family += (a >> 20) & 0xff;
    return family <= 0x19;
}

static void choose_blis_kernels(void) {
    if (getenv("BLIS_ARCH_TYPE") || blis_knows_cpu()) return;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        setenv("BLIS_ARCH_TYPE", "0", 0); /* BLIS_ARCH_SKX */
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        setenv("BLIS_ARCH_TYPE", "3", 0); /* BLIS_ARCH_HASWELL */
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
/* OpenMP's team size is a per-thread setting (omp_set_num_threads reaches only its caller's
 * later regions), so the size nabla chose is kept here for the whole process and every thread
 * takes it up at its next op, reset or step (nb__team_sync). */
static _Atomic int fixed_threads; /* > 0: set by the user (nb_set_num_threads or OMP_NUM_THREADS) */
_Atomic int nb__team;             /* > 0: the team size chosen (nb_set_num_threads or the tuner) */
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
    atomic_store(&nb__team, n);
    omp_set_num_threads(n);
    nb__blis_init();
    bli_thread_set_num_threads(n);
}

void nb__team_sync(void) {
    const int n = atomic_load_explicit(&nb__team, memory_order_relaxed);
    if (!omp_in_parallel() && n != omp_get_max_threads()) omp_set_num_threads(n);
}

void nb_set_num_threads(int n) {
    threads_once();
    if (n <= 0) { /* back to automatic */
        atomic_store(&fixed_threads, 0);
        #pragma omp critical(nb_thread_tuner)
        {
            driver = NULL; /* the next context to reset starts a fresh tuner */
            atomic_store(&nb__tune_deadline_ns, 0);
        }
        apply(max_threads);
        return;
    }
    atomic_store(&fixed_threads, n);
    apply(n);
}
int nb_get_num_threads(void) {
    const int n = atomic_load(&nb__team);
    return n > 0 ? n : omp_get_max_threads();
}
bool nb_threads_auto(void) {
    threads_once();
    return atomic_load(&fixed_threads) == 0;
}

/* ---- the tuner: a pure state machine over step times (unit-tested with made-up clocks) ---- */
#define TUNE_FIRST 0.5       /* seconds before the first trial */
#define TUNE_MAX_WAIT 16.0   /* longest wait between trials while the current size wins */
#define TUNE_GAIN 0.9        /* switch when the other size's median step is below 0.9x */
#define TUNE_BUDGET 0.02     /* trials may cost at most this share of the time */

void nb__tuner_init(nb_thread_tuner *t, int max, int start) {
    if (max < 1) max = 1;
    *t = (nb_thread_tuner){.cur = start == 1 ? 1 : max, .max = max, .wait = TUNE_FIRST, .next = -1};
}

static double median(const double *v, int n) {
    double s[NB_TUNE_WINDOW > NB_TUNE_TRIES ? NB_TUNE_WINDOW : NB_TUNE_TRIES];
    for (int i = 0; i < n; i++) {
        int j = i;
        for (; j > 0 && s[j - 1] > v[i]; j--) s[j] = s[j - 1];
        s[j] = v[i];
    }
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static double window_median(const nb_thread_tuner *t) {
    return median(t->window, t->nwindow < NB_TUNE_WINDOW ? t->nwindow : NB_TUNE_WINDOW);
}

int nb__tuner_step(nb_thread_tuner *t, double now, double dt) {
    if (t->max <= 1) return 1;
    if (t->next < 0) t->next = now + t->wait;
    if (t->exploring) {
        const double base = t->base;
        t->tries[t->ntries++] = dt;
        t->cost += dt - base;
        /* a step far slower than the current size (or cut short by nb__threads_check, which
         * went back to the current size mid-step) ends the trial at once */
        const bool hopeless = t->aborted || dt > 2 * base;
        if (t->ntries < NB_TUNE_TRIES && !hopeless) {
            t->deadline = t->alt > t->cur ? 2 * base : 0;
            return t->alt;
        }
        t->explorations++;
        t->last_trial_end = now, t->last_cost = t->cost;
        const bool better = !hopeless && median(t->tries, t->ntries) < TUNE_GAIN * base;
        t->exploring = t->aborted = false;
        t->deadline = 0;
        if (better) {
            t->cur = t->alt, t->switches++;
            t->nwindow = 0, t->wait = TUNE_FIRST, t->best = 0;
        } else {
            t->wait = t->wait * 2 > TUNE_MAX_WAIT ? TUNE_MAX_WAIT : t->wait * 2;
        }
        /* trials cost at most TUNE_BUDGET of the time: a costly trial (a slow step on a busy
         * machine) waits long enough to pay for itself */
        double wait = t->wait;
        if (t->cost / TUNE_BUDGET > wait) wait = t->cost / TUNE_BUDGET;
        t->next = now + wait;
        t->skip = 1; /* the first step after a change pays for waking or parking threads */
        return t->cur;
    }
    if (t->skip) {
        t->skip--;
        return t->cur;
    }
    t->window[t->nwindow++ % NB_TUNE_WINDOW] = dt; /* a ring: the last NB_TUNE_WINDOW steps at cur */
    const double m = window_median(t);
    if (t->nwindow >= NB_TUNE_WINDOW) {
        /* the machine got much slower (another job started?): look again soon, within budget */
        if (t->best > 0 && m > 2 * t->best && t->wait > TUNE_FIRST) {
            t->wait = TUNE_FIRST;
            const double soon = t->last_trial_end + t->last_cost / TUNE_BUDGET;
            if (t->next > soon) t->next = soon > now ? soon : now;
        }
        if (t->best <= 0 || m < t->best) t->best = m;
    }
    if (now < t->next) return t->cur;
    t->alt = t->cur == 1 ? t->max : 1;
    t->exploring = true, t->ntries = 0, t->cost = 0, t->base = m;
    t->deadline = t->alt > t->cur ? 2 * m : 0;
    return t->alt;
}

/* ---- the tuner's clock: steps of the driving context ----------------------------------- */
static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Our own threads that are running now (OpenMP workers may still spin after a region). */
static int own_running(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return 1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[64], buf[256];
        snprintf(path, sizeof path, "/proc/self/task/%.20s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        const size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        const char *close = strrchr(buf, ')'); /* "tid (name) S ..." */
        n += close && close[1] == ' ' && close[2] == 'R';
    }
    closedir(d);
    return n > 0 ? n : 1;
}

/* Other runnable tasks right now (the 4th field of /proc/loadavg counts all, ours included):
 * when another job already holds a core, start with one thread; the first trial corrects a
 * wrong guess within a second. */
static int start_size(void) {
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return max_threads;
    double l1, l5, l15;
    int running = 0, total = 0;
    const int got = fscanf(f, "%lf %lf %lf %d/%d", &l1, &l5, &l15, &running, &total);
    fclose(f);
    return got == 5 && running - own_running() >= 1 ? 1 : max_threads;
}

_Atomic int64_t nb__tune_deadline_ns;
static pthread_t driver_thread;

void nb__threads_step(const nb_ctx *ctx, double *last) {
    threads_once();
    nb__threads_check();
    if (atomic_load(&fixed_threads) || omp_in_parallel()) return;
    #pragma omp critical(nb_thread_tuner)
    {
        if (!driver) {
            driver = ctx;
            driver_thread = pthread_self();
            nb__tuner_init(&tuner, max_threads, start_size());
            *last = 0;
        }
        if (driver == ctx) {
            double now = seconds();
            int n = tuner.cur;
            if (*last > 0) n = nb__tuner_step(&tuner, now, now - *last);
            if (n != omp_get_max_threads()) apply(n);
            *last = now = seconds();
            atomic_store(&nb__tune_deadline_ns, tuner.deadline > 0 ? (int64_t)(1e9 * (now + tuner.deadline)) : 0);
        }
    }
}

void nb__threads_deadline(void) {
    if (!pthread_equal(pthread_self(), driver_thread) || 1e9 * seconds() < (double)atomic_load(&nb__tune_deadline_ns))
        return;
    /* a trial of more threads is already twice as slow as a whole step at the current size:
     * finish this step at the current size (the bits do not depend on it) */
    #pragma omp critical(nb_thread_tuner)
    {
        atomic_store(&nb__tune_deadline_ns, 0);
        tuner.aborted = true;
        apply(tuner.cur);
    }
}

void nb__threads_forget(const nb_ctx *ctx) {
    #pragma omp critical(nb_thread_tuner)
    if (driver == ctx) {
        driver = NULL;
        atomic_store(&nb__tune_deadline_ns, 0);
    }
}
