/* Running a search: the trials one after another in this process, or handed out in index order
 * to forked workers; their per-epoch reports, and successive-halving (ASHA) pruning at rungs.
 *
 * Every decision is made by the process that owns the result (the caller's), from the reports
 * recorded in it: decide() compares a trial with the trials of lower index that reached the
 * rung. Sequentially those have all finished when a trial reports; a worker's report at a rung
 * waits until each earlier trial has reported that epoch or finished. The decisions, and so the
 * whole result, are the same either way. */
#define _GNU_SOURCE /* MSG_NOSIGNAL */
#include "../internal.h"
#include "search_internal.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const nb_search_opts *o;
    nb_search_result *res;
    int64_t n;          /* trials in the search */
    int64_t first_rung; /* epochs */
    void *user;         /* the search's user pointer (for the progress callback) */
    int sock;           /* in a worker: its end of the socket to the caller; -1 in the caller */
    bool pruned;        /* in a worker: the current trial was told to stop */
    int fold;           /* of the current trial: only fold 0's reports make its curve */
    nb_status report_status; /* the first failed report of the current trial (in the caller), */
    char report_error[512];  /* and its message */
} search_run;

/* ---- reports and decisions (in the caller's process) ------------------------------------------ */
/* Hyperband's bracket of trial t: round robin over the brackets */
static int bracket_of(const nb_search_opts *o, int64_t t) { return o->prune_brackets > 1 ? (int)(t % o->prune_brackets) : 0; }

/* epoch (0-based) ends a rung of trial t: epoch + 1 = first_rung * eta^(bracket + r), r >= 0 */
static bool is_rung(const search_run *run, int64_t t, int64_t epoch) {
    if (run->o->prune_eta < 2) return false;
    int64_t r = epoch + 1, first = run->first_rung;
    for (int b = bracket_of(run->o, t); b > 0; b--) first *= run->o->prune_eta;
    if (r % first) return false;
    for (r /= first; r % run->o->prune_eta == 0; r /= run->o->prune_eta) {}
    return r == 1;
}

static bool better(bool maximize, double a, double b) {
    if (isnan(a)) return false;
    return isnan(b) || (maximize ? a > b : a < b);
}

/* append trial t's value for epoch (which must be the next one) */
static nb_status record(search_run *run, int64_t t, int64_t epoch, double value) {
    nb_trial *tr = &run->res->trials[t];
    if (epoch != tr->n_epochs)
        return nb_set_error(NB_ERR_VALUE, "search_report: trial %lld reported epoch %lld after %lld epochs (report each epoch, from 0)",
                            (long long)t, (long long)epoch, (long long)tr->n_epochs);
    if ((tr->n_epochs & (tr->n_epochs - 1)) == 0) { /* capacity: powers of two */
        double *c = realloc(tr->curve, (size_t)(tr->n_epochs ? 2 * tr->n_epochs : 1) * sizeof *c);
        if (!c) return nb_set_error(NB_ERR_NOMEM, "search_report: out of memory");
        tr->curve = c;
    }
    tr->curve[tr->n_epochs++] = value;
    if (tr->best_epoch < 0 || better(run->o->maximize, value, tr->best)) tr->best = value, tr->best_epoch = epoch;
    return NB_OK;
}

/* Trial t reached the rung ending at epoch, and every earlier trial of its bracket has reported it
 * or finished: t goes on when fewer than max(1, n / eta) of the n trials <= t of its bracket at
 * the rung are strictly better. */
static bool decide(const search_run *run, int64_t t, int64_t epoch) {
    const nb_trial *tr = run->res->trials;
    const double v = tr[t].curve[epoch];
    if (isnan(v)) return false;
    int64_t n = 0, ahead = 0;
    for (int64_t j = 0; j <= t; j++) {
        if (tr[j].n_epochs <= epoch || bracket_of(run->o, j) != bracket_of(run->o, t)) continue;
        n++;
        ahead += better(run->o->maximize, tr[j].curve[epoch], v);
    }
    const int64_t keep = n / run->o->prune_eta > 1 ? n / run->o->prune_eta : 1;
    return ahead < keep;
}

/* the caller's answer to a report: record it, and decide at a rung */
static bool report_here(search_run *run, int64_t t, int64_t epoch, double value) {
    nb_trial *tr = &run->res->trials[t];
    if (tr->pruned || run->report_status != NB_OK) return false;
    if ((run->report_status = record(run, t, epoch, value)) != NB_OK) {
        snprintf(run->report_error, sizeof run->report_error, "%s", nb_last_error());
        return false;
    }
    if (!is_rung(run, t, epoch) || decide(run, t, epoch)) return true;
    tr->pruned = true;
    return false;
}

/* ---- messages between the caller and a worker ------------------------------------------------- */
enum { MSG_RUN, MSG_QUIT, MSG_ANSWER, MSG_REPORT, MSG_DONE };
typedef struct {
    int kind;
    int64_t trial, epoch;
    double value, score, score_std;  /* REPORT: value; DONE: the scores */
    bool go_on, pruned;              /* ANSWER: go_on; DONE: pruned */
    nb_status status;                /* DONE */
    char error[512];
} message;

static bool send_msg(int fd, const message *m) {
    for (size_t off = 0; off < sizeof *m;) {
        ssize_t w = send(fd, (const char *)m + off, sizeof *m - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        off += (size_t)w;
    }
    return true;
}

static bool recv_msg(int fd, message *m) {
    for (size_t off = 0; off < sizeof *m;) {
        ssize_t r = read(fd, (char *)m + off, sizeof *m - off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        off += (size_t)r;
    }
    return true;
}

bool nb_search_report(const nb_hp_config *cfg, int64_t epoch, double value) {
    search_run *run = cfg ? cfg->run_ : NULL;
    if (!run || run->fold > 0) return true; /* with k folds the curve is fold 0's (no pruning then) */
    if (run->sock < 0) return report_here(run, cfg->trial, epoch, value);
    if (run->pruned) return false;
    message m = {.kind = MSG_REPORT, .trial = cfg->trial, .epoch = epoch, .value = value};
    if (!send_msg(run->sock, &m) || !recv_msg(run->sock, &m)) _exit(3); /* the caller is gone */
    run->pruned = !m.go_on;
    return m.go_on;
}

static nb_status report_epoch(nb_fit_state *s, void *user) {
    const nb_epoch_log *e = &s->history->epochs[s->history->n - 1];
    if (!nb_search_report(user, e->epoch, nb_epoch_value(e, s->opts->monitor))) s->stop = true;
    return NB_OK;
}

nb_callback nb_search_callback(const nb_hp_config *cfg) {
    return (nb_callback){.on_epoch_end = report_epoch, .user = (void *)cfg};
}

/* ---- one trial: its folds --------------------------------------------------------------------- */
static nb_status run_folds(search_run *run, const nb_hp_config *cfg, nb_trial_fn fn, void *user, double *score,
                           double *score_std) {
    const int k = run->o->k_folds > 1 ? run->o->k_folds : 1;
    double sum = 0, sum2 = 0;
    for (int f = 0; f < k; f++) {
        double s = NAN;
        run->fold = f;
        nb_status st = fn(cfg, f, k, user, &s);
        if (st != NB_OK) return st;
        sum += s;
        sum2 += s * s;
    }
    *score = sum / k;
    *score_std = k > 1 ? sqrt(fmax(0.0, (sum2 - sum * sum / k) / (k - 1))) : 0.0;
    return NB_OK;
}

/* ---- the caller's bookkeeping --------------------------------------------------------------------- */
typedef struct {
    struct timespec t0;
    int64_t next_progress; /* trials before it were shown */
    int best;              /* of the trials shown */
} progress_state;

/* show the finished trials in index order, with the best so far */
static void show_progress(const search_run *run, progress_state *p, const bool *done) {
    nb_search_result *res = run->res;
    for (; p->next_progress < run->n && done[p->next_progress]; p->next_progress++) {
        const int t = (int)p->next_progress;
        if (t == 0 || nb__search_ahead(res, t, p->best)) p->best = t;
        if (!run->o->progress) continue;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        const double elapsed = (double)(now.tv_sec - p->t0.tv_sec) + 1e-9 * (double)(now.tv_nsec - p->t0.tv_nsec);
        run->o->progress(&(nb_search_progress){t, (int)run->n, &res->trials[t], &res->trials[p->best], elapsed},
                         run->user);
    }
}

static nb_status run_here(search_run *run, nb_trial_fn fn, void *user, bool *done, progress_state *p) {
    for (int64_t t = 0; t < run->n; t++) {
        nb_trial *tr = &run->res->trials[t];
        nb_status st = nb_search_config(run->o, t, &tr->cfg);
        if (st != NB_OK) return st;
        tr->cfg.run_ = run;
        run->report_status = NB_OK;
        st = run_folds(run, &tr->cfg, fn, user, &tr->score, &tr->score_std);
        tr->cfg.run_ = NULL;
        if (st == NB_OK && run->report_status != NB_OK) /* the trial went on after a failed report */
            st = nb_set_error(run->report_status, "%s", run->report_error);
        if (st != NB_OK) return st;
        done[t] = true;
        run->res->n_trials = (int)t + 1;
        show_progress(run, p, done);
    }
    return NB_OK;
}

/* ---- workers ------------------------------------------------------------------------------------ */
static _Noreturn void worker_main(search_run *run, nb_trial_fn fn, void *user) {
    nb_set_num_threads(1); /* a worker is one of several processes; results do not depend on it */
    message m;
    while (recv_msg(run->sock, &m) && m.kind == MSG_RUN) {
        nb_hp_config cfg;
        message done = {.kind = MSG_DONE, .trial = m.trial};
        run->pruned = false;
        done.status = nb_search_config(run->o, m.trial, &cfg);
        cfg.run_ = run;
        if (done.status == NB_OK) done.status = run_folds(run, &cfg, fn, user, &done.score, &done.score_std);
        if (done.status != NB_OK) snprintf(done.error, sizeof done.error, "%s", nb_last_error());
        done.pruned = run->pruned;
        if (!send_msg(run->sock, &done)) break;
    }
    _exit(0);
}

typedef struct {
    pid_t pid;
    int sock;
    int64_t trial;   /* running, -1: none */
    int64_t waiting; /* the epoch of a rung report waiting for earlier trials, -1: none */
} worker;

/* every trial of t's bracket before t has reported epoch or finished */
static bool can_decide(const search_run *run, const bool *done, int64_t t, int64_t epoch) {
    for (int64_t j = 0; j < t; j++)
        if (!done[j] && run->res->trials[j].n_epochs <= epoch && bracket_of(run->o, j) == bracket_of(run->o, t)) return false;
    return true;
}

static bool answer(worker *w, bool go_on) {
    message a = {.kind = MSG_ANSWER, .go_on = go_on};
    w->waiting = -1;
    return send_msg(w->sock, &a);
}

/* the error of the lowest trial index wins, as sequentially */
typedef struct {
    int64_t trial;
    nb_status status;
    char msg[512];
} first_error;

static void fail(first_error *e, int64_t trial, nb_status s, const char *msg) {
    if (e->status != NB_OK && e->trial <= trial) return;
    e->trial = trial, e->status = s;
    snprintf(e->msg, sizeof e->msg, "%s", msg);
}

static bool start_next(const search_run *run, worker *w, int64_t *next, const first_error *err) {
    message m = {.kind = MSG_QUIT};
    if (*next < run->n && err->status == NB_OK) m = (message){.kind = MSG_RUN, .trial = (*next)++};
    w->trial = m.kind == MSG_RUN ? m.trial : -1;
    w->waiting = -1;
    return send_msg(w->sock, &m) || m.kind == MSG_QUIT;
}

/* a message from the worker running trial w->trial */
static void handle(search_run *run, worker *w, const message *m, bool *done, int64_t *next, first_error *err) {
    nb_trial *tr = &run->res->trials[w->trial];
    if (m->kind == MSG_REPORT) {
        const nb_status st = tr->pruned ? NB_OK : record(run, w->trial, m->epoch, m->value);
        if (st != NB_OK) fail(err, w->trial, st, nb_last_error());
        if (st != NB_OK || tr->pruned || !is_rung(run, w->trial, m->epoch)) answer(w, st == NB_OK && !tr->pruned);
        else w->waiting = m->epoch;
        return;
    }
    /* MSG_DONE */
    if (m->status != NB_OK) fail(err, w->trial, m->status, m->error);
    tr->score = m->score, tr->score_std = m->score_std;
    done[w->trial] = true;
    start_next(run, w, next, err);
}

static nb_status run_workers(search_run *run, nb_trial_fn fn, void *user, bool *done, progress_state *p) {
    const int nw = run->o->workers < run->n ? run->o->workers : (int)run->n;
    worker *ws = calloc((size_t)nw, sizeof *ws);
    struct pollfd *pf = calloc((size_t)nw, sizeof *pf);
    if (!ws || !pf) return free(ws), free(pf), nb_set_error(NB_ERR_NOMEM, "search_run: out of memory");
    for (int64_t t = 0; t < run->n; t++) { /* the configurations, made here as sequentially */
        nb_status st = nb_search_config(run->o, t, &run->res->trials[t].cfg);
        if (st != NB_OK) return free(ws), free(pf), st;
    }
    first_error err = {.status = NB_OK};
    int started = 0;
    fflush(NULL); /* no stdio buffer is written twice */
    for (; started < nw; started++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) break;
        const pid_t pid = fork();
        if (pid == 0) {
            close(sv[0]);
            for (int i = 0; i < started; i++) close(ws[i].sock);
            run->sock = sv[1];
            worker_main(run, fn, user);
        }
        close(sv[1]);
        if (pid < 0) {
            close(sv[0]);
            break;
        }
        ws[started] = (worker){.pid = pid, .sock = sv[0], .trial = -1, .waiting = -1};
    }
    if (started < nw) fail(&err, -1, NB_ERR_IO, "search_run: cannot start a worker process");
    int64_t next = 0;
    for (int i = 0; i < started; i++) start_next(run, &ws[i], &next, &err);
    for (;;) {
        int busy = 0;
        for (int i = 0; i < started; i++) {
            pf[i] = (struct pollfd){.fd = ws[i].trial >= 0 ? ws[i].sock : -1, .events = POLLIN};
            busy += ws[i].trial >= 0;
        }
        if (!busy) break;
        if (poll(pf, (nfds_t)started, -1) < 0) {
            if (errno == EINTR) continue;
            fail(&err, -1, NB_ERR_IO, "search_run: poll failed");
            break;
        }
        for (int i = 0; i < started; i++) {
            if (ws[i].trial < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            message m;
            if (!recv_msg(ws[i].sock, &m)) {
                char why[128];
                snprintf(why, sizeof why, "search_run: the worker running trial %lld died", (long long)ws[i].trial);
                fail(&err, ws[i].trial, NB_ERR_STATE, why);
                done[ws[i].trial] = true; /* later trials do not wait for it */
                ws[i].trial = -1;
                continue;
            }
            handle(run, &ws[i], &m, done, &next, &err);
        }
        /* answer the rung reports whose earlier trials are all there; the lowest running trial
         * always can be answered, so this never deadlocks */
        for (int i = 0; i < started; i++) {
            worker *w = &ws[i];
            if (w->trial < 0 || w->waiting < 0 || !can_decide(run, done, w->trial, w->waiting)) continue;
            const bool go_on = decide(run, w->trial, w->waiting);
            run->res->trials[w->trial].pruned = !go_on;
            answer(w, go_on);
        }
        if (err.status == NB_OK) show_progress(run, p, done);
    }
    for (int i = 0; i < started; i++) {
        close(ws[i].sock);
        while (waitpid(ws[i].pid, NULL, 0) < 0 && errno == EINTR) {}
    }
    free(ws), free(pf);
    if (err.status != NB_OK) return nb_set_error(err.status, "%s", err.msg);
    run->res->n_trials = (int)run->n;
    return NB_OK;
}

/* ---- the entry point ------------------------------------------------------------------------------ */
nb_status nb_search_run(const nb_search_opts *o, nb_trial_fn fn, void *user, nb_search_result *res) {
    if (!fn || !res) return nb_set_error(NB_ERR_NULL, "search_run: NULL trial function or result");
    memset(res, 0, sizeof *res);
    nb_status st = nb__search_check_opts(o);
    if (st != NB_OK) return st;
    int64_t n = o->random ? o->n_trials : nb_search_grid_size(o);
    if (n < 0) return nb_last_status();
    if (n > 1000000) return nb_set_error(NB_ERR_VALUE, "search_run: %lld configurations is too many", (long long)n);
    res->trials = calloc((size_t)(n ? n : 1), sizeof *res->trials);
    bool *done = calloc((size_t)(n ? n : 1), sizeof *done);
    if (!res->trials || !done) {
        free(done), free(res->trials), res->trials = NULL;
        return nb_set_error(NB_ERR_NOMEM, "search_run: out of memory");
    }
    for (int64_t t = 0; t < n; t++)
        res->trials[t].best = NAN, res->trials[t].best_epoch = -1, res->trials[t].bracket = bracket_of(o, t);
    res->maximize = o->maximize;
    res->prune_eta = o->prune_eta;
    res->prune_brackets = o->prune_brackets > 1 ? o->prune_brackets : 1;
    res->prune_min_epochs = o->prune_min_epochs > 0 ? o->prune_min_epochs : 1;
    search_run run = {.o = o, .res = res, .n = n, .first_rung = res->prune_min_epochs, .user = user, .sock = -1};
    progress_state p = {.best = 0};
    clock_gettime(CLOCK_MONOTONIC, &p.t0);
    st = o->workers > 1 && n > 1 ? run_workers(&run, fn, user, done, &p) : run_here(&run, fn, user, done, &p);
    free(done);
    if (st != NB_OK) {
        res->n_trials = (int)n; /* every curve is freed */
        nb_search_result_free(res);
        return st;
    }
    for (int t = 1; t < res->n_trials; t++)
        if (nb__search_ahead(res, t, res->best)) res->best = t;
    return NB_OK;
}
