/* The automatic team size (src/graph/threads.c): the tuner is a pure state machine over step
 * times, driven here by made-up clocks of a quiet and of a busy machine. */
#include "common.h"
#include "internal.h"

/* Run `seconds` of simulated training where a step takes step_time(team size) seconds; returns
 * the team size in use at the end, and how many steps ran at each size. */
typedef double (*step_time_fn)(int threads, double now);

static int simulate(nb_thread_tuner *t, step_time_fn f, double seconds, int64_t *at1, int64_t *atmax, int *final) {
    double now = 0;
    int threads = t->cur;
    *at1 = *atmax = 0;
    while (now < seconds) {
        const double dt = f(threads, now);
        now += dt;
        (threads == 1 ? (*at1)++ : (*atmax)++);
        threads = nb__tuner_step(t, now, dt);
        cr_assert(threads == 1 || threads == t->max, "team size %d", threads);
    }
    *final = threads;
    return threads;
}

/* quiet machine: 2 threads 1.6x faster than 1 (the MLP step) */
static double quiet(int threads, double now) {
    (void)now;
    return threads == 1 ? 4.8e-3 : 3.0e-3;
}
/* busy machine: every fork/join waits for a descheduled thread, 12x slower (issue 14) */
static double busy(int threads, double now) {
    (void)now;
    return threads == 1 ? 6.0e-3 : 72e-3;
}
/* quiet for 20 s, then another job takes the other core */
static double gets_busy(int threads, double now) { return now < 20 ? quiet(threads, now) : busy(threads, now); }
/* busy for 20 s, then quiet again */
static double gets_quiet(int threads, double now) { return now < 20 ? busy(threads, now) : quiet(threads, now); }

TestSuite(threads);

Test(threads, quiet_machine_keeps_all_cores_and_trials_cost_little) {
    nb_thread_tuner t;
    nb__tuner_init(&t, 2, 2);
    int64_t at1, at2;
    int final;
    simulate(&t, quiet, 120, &at1, &at2, &final);
    cr_assert_eq(final, 2);
    cr_assert_eq(t.switches, 0);
    /* trials at 1 thread: a few steps every 16 s at most once settled */
    const double share = (double)at1 / (double)(at1 + at2);
    cr_assert_lt(share, 0.002, "%.4f of the steps ran on one thread", share);
    cr_assert_gt(t.explorations, 3, "the tuner kept looking (%lld trials)", (long long)t.explorations);
}

Test(threads, busy_machine_drops_to_one_thread_quickly) {
    nb_thread_tuner t;
    nb__tuner_init(&t, 2, 2);
    int64_t at1, at2;
    int final;
    simulate(&t, busy, 60, &at1, &at2, &final);
    cr_assert_eq(final, 1);
    /* time spent at 2 threads: the first ~0.5 s and one step per trial after that */
    const double slow_time = (double)at2 * busy(2, 0);
    cr_assert_lt(slow_time, 0.05 * 60, "%.2f s of 60 at two threads", slow_time);
    /* throughput within 20% of the best fixed choice (one thread) */
    const double steps = (double)(at1 + at2), best = 60 / busy(1, 0);
    cr_assert_gt(steps, 0.8 * best, "%.0f steps against %.0f at one thread", steps, best);
}

Test(threads, follows_the_machine_when_load_changes) {
    nb_thread_tuner t;
    nb__tuner_init(&t, 2, 2);
    int64_t at1, at2;
    int final;
    simulate(&t, gets_busy, 60, &at1, &at2, &final);
    cr_assert_eq(final, 1, "busy after 20 s: one thread");
    nb__tuner_init(&t, 2, 2);
    simulate(&t, gets_quiet, 80, &at1, &at2, &final);
    cr_assert_eq(final, 2, "quiet after 20 s: all cores again");
}

Test(threads, one_core_never_explores) {
    nb_thread_tuner t;
    nb__tuner_init(&t, 1, 1);
    int64_t at1, at2;
    int final;
    simulate(&t, quiet, 10, &at1, &at2, &final);
    cr_assert_eq(final, 1);
    cr_assert_eq(at2, 0);
    cr_assert_eq(t.explorations, 0);
}

Test(threads, set_num_threads_fixes_and_zero_returns_to_automatic) {
    const int prev = nb_get_num_threads();
    nb_set_num_threads(1);
    cr_assert_eq(nb_get_num_threads(), 1);
    cr_assert(!nb_threads_auto());
    nb_set_num_threads(0);
    cr_assert(nb_threads_auto());
    cr_assert_geq(nb_get_num_threads(), 1);
    nb_set_num_threads(prev);
    cr_assert(!nb_threads_auto());
}

Test(threads, automatic_mode_switches_during_real_steps) {
    /* real steps through nb_ctx_reset: the tuner runs and changes nothing in the results
     * (the thread-independence tests cover the bits); here: it is driven by the first context
     * that resets and survives contexts coming and going */
    nb_set_num_threads(0);
    nb_ctx *a = nb_ctx_new(), *b = nb_ctx_new();
    for (int s = 0; s < 50; s++) {
        nb_tensor *x = nb_randn(a, NB_F32, NB_SHAPE(64, 64));
        cr_assert_not_null(nb_matmul(a, x, x));
        nb_ctx_reset(a);
        nb_ctx_reset(b);
    }
    nb_ctx_free(a);
    nb_ctx_reset(b); /* b may drive now */
    nb_ctx_free(b);
    const int n = nb_get_num_threads();
    cr_assert(n >= 1);
    nb_set_num_threads(2);
}

/* ---- contexts on two threads through the same parameters ------------------------------------ */
#include <pthread.h>
#include <string.h>

typedef struct {
    nb_params *ps;
    nb_tensor *w1, *w2;
    uint64_t seed;
    bool use_backward; /* nb_backward into the shared .grad, else nb_grad into own tensors */
    double grads[2][64 * 32];
    nb_status st;
} worker;

static void *work(void *p) {
    worker *w = p;
    nb_ctx *c = nb_ctx_new();
    nb_ctx_seed(c, w->seed);
    for (int rep = 0; rep < 20 && w->st == NB_OK; rep++) {
        nb_tensor *x = nb_randn(c, NB_F32, NB_SHAPE(128, 64));
        nb_tensor *loss = nb_sum_all(c, nb_tanh(c, nb_linear(c, nb_relu(c, nb_linear(c, x, w->w1, NULL)), w->w2, NULL)));
        if (w->use_backward) {
            w->st = nb_backward(c, loss, NULL);
        } else {
            nb_tensor *g[2], *in[2] = {w->w1, w->w2};
            w->st = nb_grad(c, 1, &loss, NULL, 2, in, g, false);
            for (int k = 0; k < 2 && w->st == NB_OK; k++)
                for (int64_t i = 0; i < g[k]->numel; i++) w->grads[k][i] += nb_get(g[k], i);
        }
        nb_ctx_reset(c);
    }
    nb_ctx_free(c);
    return NULL;
}

static void shared_params(nb_params **ps, nb_tensor **w1, nb_tensor **w2) {
    *ps = nb_params_new();
    *w1 = nb_params_add(*ps, "w1", NB_SHAPE(32, 64));
    *w2 = nb_params_add(*ps, "w2", NB_SHAPE(16, 32));
    nb_rng r = nb_rng_new(3);
    nb_rng_normal(&r, *w1, 0, 0.2), nb_rng_normal(&r, *w2, 0, 0.2);
}

Test(threads, two_contexts_walk_the_same_parameters_at_once) {
    nb_params *ps;
    nb_tensor *w1, *w2;
    shared_params(&ps, &w1, &w2);
    /* nb_grad: each context its own gradients, equal to a run alone */
    static worker seq[2], par[2];
    for (int k = 0; k < 2; k++) {
        seq[k] = (worker){ps, w1, w2, 10 + (uint64_t)k, false, {{0}}, NB_OK};
        work(&seq[k]);
        par[k] = (worker){ps, w1, w2, 10 + (uint64_t)k, false, {{0}}, NB_OK};
    }
    pthread_t th[2];
    for (int k = 0; k < 2; k++) pthread_create(&th[k], NULL, work, &par[k]);
    for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(par[k].st, NB_OK, "%s", nb_last_error());
        cr_assert_eq(memcmp(seq[k].grads, par[k].grads, sizeof seq[k].grads), 0, "context %d's gradients differ", k);
    }
    /* nb_backward: both add into the shared .grad; two contributions sum exactly in any order */
    nb_params_zero_grad(ps);
    worker b0 = {ps, w1, w2, 10, true, {{0}}, NB_OK}, b1 = {ps, w1, w2, 11, true, {{0}}, NB_OK};
    work(&b0);
    work(&b1);
    float *want = malloc((size_t)ps->total * sizeof(float));
    memcpy(want, ps->grad_flat, (size_t)ps->total * sizeof(float));
    int differ = 0;
    for (int rep = 0; rep < 3; rep++) {
        nb_params_zero_grad(ps);
        /* one step at a time per context so that the two always add into a zeroed .grad */
        worker c0 = b0, c1 = b1;
        c0.st = c1.st = NB_OK;
        pthread_create(&th[0], NULL, work, &c0);
        pthread_create(&th[1], NULL, work, &c1);
        pthread_join(th[0], NULL), pthread_join(th[1], NULL);
        cr_assert(c0.st == NB_OK && c1.st == NB_OK, "%s", nb_last_error());
        for (int64_t i = 0; i < ps->total; i++) differ += fabsf(ps->grad_flat[i] - want[i]) > 1e-4f * (1 + fabsf(want[i]));
    }
    cr_assert_eq(differ, 0, "%d gradient entries differ from the sequential sum", differ);
    free(want);
    nb_params_free(ps);
}

/* nb_set_num_threads holds for the whole process: OpenMP keeps the team size per thread, so a
 * worker thread started before or after the call used its own default (an application training
 * one model per thread with 1 thread each got threads x cores). 3 is any machine's "not the
 * default" here. */
static void *team_of_a_worker(void *arg) {
    int *out = arg;
    nb_ctx *c = nb_ctx_new(); /* a thread's first nabla call takes up the size */
    out[0] = omp_get_max_threads();
    out[1] = nb_get_num_threads();
    nb_ctx_free(c);
    return NULL;
}

Test(threads, set_num_threads_reaches_every_thread) {
    nb_set_num_threads(3);
    int seen[2] = {0, 0};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, team_of_a_worker, seen), 0);
    pthread_join(t, NULL);
    nb_set_num_threads(0);
    cr_assert_eq(seen[1], 3, "nb_get_num_threads in a worker: %d", seen[1]);
    cr_assert_eq(seen[0], 3, "a worker's OpenMP team: %d threads, not the 3 set", seen[0]);
}
