/* Training checkpoints: one safetensors file holding parameters ("param/<name>"), buffers
 * ("buffer/<name>": running statistics and other state that is not trained), optimizer
 * state ("optim/state"), the early-stopping snapshot ("early_stop/best") and the caller's
 * values ("train/values"); counters, hyperparameters and generator state live in the metadata,
 * doubles as C99 hex floats so they round-trip exactly. */
#include "../internal.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>

/* version 2 carries safetensors checksums (required); version 1 files have none and still load */
#define FORMAT "nabla-checkpoint-2"
#define FORMAT_V1 "nabla-checkpoint-1"
#define MAX_COUNT ((int64_t)1 << 53) /* counters beyond this are not plausible (and exact in doubles) */

typedef struct {
    char keys[64][40];
    char vals[64][NB_OPTIM_NAME_MAX + 1]; /* the longest value is an optimizer's name */
    int n;
} meta_buf;

static void put(meta_buf *m, const char *k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void put(meta_buf *m, const char *k, const char *fmt, ...) {
    if (m->n == 64) return;
    snprintf(m->keys[m->n], sizeof m->keys[0], "%s", k);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->vals[m->n], sizeof m->vals[0], fmt, ap);
    va_end(ap);
    m->n++;
}

/* hyperparameters in declaration order, so save and load cannot drift apart */
#define HP_FIELDS(X)                                                                              \
    X(lr) X(weight_decay) X(momentum) X(dampening) X(beta1) X(beta2) X(eps) X(alpha) X(rho) X(lr_decay) \
        X(initial_accumulator_value) X(user[0]) X(user[1]) X(user[2]) X(user[3])
#define HP_FLAGS(X) X(nesterov) X(amsgrad) X(centered)

/* Everything a checkpoint restores besides raw tensors, checked the same way when saving (so a
 * checkpoint that saves also loads) and when loading (before anything is changed): a step of
 * INT64_MAX would overflow on the next step and NaN every weight, lr -1 with beta1 7 would
 * diverge. fn is "checkpoint_save" / "checkpoint_load", bad the status to report. */
static bool valid_state(const char *fn, const char *path, nb_status bad, const nb_optim *opt, const nb_hparams *hp,
                        int64_t step, const nb_early_stop *e, const nb_train_state *s) {
    const nb_optim_def *def = opt ? opt->def : NULL;
    if (s->epoch < 0 || s->epoch > MAX_COUNT)
        return nb_set_error(bad, "%s: %s: epoch %lld is outside [0, 2^53]", fn, path, (long long)s->epoch), false;
    if (def) {
        if (step < 0 || step > MAX_COUNT)
            return nb_set_error(bad, "%s: %s: optimizer step %lld is outside [0, 2^53]", fn, path, (long long)step), false;
        if (nb_optim_validate(def, hp) != NB_OK) {
            char why[512];
            snprintf(why, sizeof why, "%s", nb_last_error());
            return nb_set_error(bad, "%s: %s: invalid optimizer hyperparameters: %s", fn, path, why), false;
        }
        /* e.g. amsgrad on for an Adam made without it: the next step would refuse to run */
        const int slots = def->slots_for ? def->slots_for(hp) : def->nslots;
        if (slots > opt->nslots)
            return nb_set_error(bad, "%s: %s: these %s hyperparameters need %d state slots, the optimizer has %d", fn, path,
                                def->name, slots, opt->nslots),
                   false;
    }
    if (e) {
        const bool ok = e->epoch >= 0 && e->epoch <= MAX_COUNT && e->best_epoch >= -1 && e->best_epoch < e->epoch + 1 &&
                        e->wait >= 0 && e->wait <= e->epoch && e->stopped_epoch >= -1 && e->stopped_epoch <= e->epoch &&
                        !isnan(e->best) && (e->best_epoch >= 0 || isinf(e->best));
        if (!ok)
            return nb_set_error(bad, "%s: %s: inconsistent early-stopping state (epoch %lld, best_epoch %lld, wait %d, "
                                "stopped_epoch %lld, best %g)", fn, path, (long long)e->epoch, (long long)e->best_epoch,
                                e->wait, (long long)e->stopped_epoch, e->best),
                   false;
    }
    return true;
}

nb_status nb_checkpoint_save(const char *path, const nb_params *ps, const nb_optim *opt, const nb_early_stop *es,
                             const nb_train_state *st) {
    if (!path || !ps || !st) return nb_set_error(NB_ERR_NULL, "checkpoint_save: NULL argument");
    if (st->n_values < 0 || st->n_values > NB_CHECKPOINT_MAX_VALUES)
        return nb_set_error(NB_ERR_VALUE, "checkpoint_save: %lld values (at most %d)", (long long)st->n_values,
                            NB_CHECKPOINT_MAX_VALUES);
    if (!valid_state("checkpoint_save", path, NB_ERR_VALUE, opt, opt ? &opt->hp : NULL,
                     opt ? opt->step : 0, es, st))
        return NB_ERR_VALUE;
    meta_buf m = {.n = 0};
    put(&m, "format", FORMAT);
    put(&m, "train.epoch", "%lld", (long long)st->epoch);
    put(&m, "train.rng_seed", "%llu", (unsigned long long)st->rng.seed);
    put(&m, "train.rng_offset", "%llu", (unsigned long long)st->rng.offset);
    if (opt) {
        put(&m, "optim.name", "%s", opt->def->name);
        put(&m, "optim.step", "%lld", (long long)opt->step);
#define SAVE_HP(f) put(&m, "optim." #f, "%a", opt->hp.f);
#define SAVE_FLAG(f) put(&m, "optim." #f, "%d", (int)opt->hp.f);
        HP_FIELDS(SAVE_HP) HP_FLAGS(SAVE_FLAG)
    }
    if (es) {
        put(&m, "early_stop.best", "%a", es->best);
        put(&m, "early_stop.best_epoch", "%lld", (long long)es->best_epoch);
        put(&m, "early_stop.epoch", "%lld", (long long)es->epoch);
        put(&m, "early_stop.wait", "%d", es->wait);
        put(&m, "early_stop.stopped", "%d", (int)es->stopped);
        put(&m, "early_stop.stopped_epoch", "%lld", (long long)es->stopped_epoch);
    }
    const char *meta[2 * 64 + 1];
    for (int i = 0; i < m.n; i++) meta[2 * i] = m.keys[i], meta[2 * i + 1] = m.vals[i];
    meta[2 * m.n] = NULL;

    /* the snapshot's buffers go in as "early_stop/best_buffer/<name>", each with its buffer's dtype and shape */
    const int best_buffers = es && es->best_weights && es->ps && es->best_buffers ? es->ps->n_buffers : 0;
    int cap = ps->n + ps->n_buffers + best_buffers + 3, n = 0;
    const char **names = calloc((size_t)cap, sizeof *names);
    const nb_tensor **ts = calloc((size_t)cap, sizeof *ts);
    const int n_owned = ps->n + ps->n_buffers + best_buffers;
    char **owned = calloc((size_t)n_owned + 1, sizeof *owned);
    nb_tensor **best_bufs = calloc((size_t)best_buffers + 1, sizeof *best_bufs);
    nb_tensor *state = NULL, *best = NULL, *values = NULL;
    nb_status rc = NB_ERR_NOMEM;
    if (!names || !ts || !owned || !best_bufs) goto out;
    for (int i = 0; i < ps->n; i++) {
        size_t len = strlen(ps->names[i]) + 7;
        if (!(owned[i] = malloc(len))) goto out;
        snprintf(owned[i], len, "param/%s", ps->names[i]);
        names[n] = owned[i], ts[n++] = ps->p[i];
    }
    for (int i = 0; i < ps->n_buffers; i++) {
        size_t len = strlen(ps->buffer_names[i]) + 8;
        if (!(owned[ps->n + i] = malloc(len))) goto out;
        snprintf(owned[ps->n + i], len, "buffer/%s", ps->buffer_names[i]);
        names[n] = owned[ps->n + i], ts[n++] = ps->buffers[i];
    }
    if (opt && nb_optim_state_numel(opt) > 0) {
        if (!(state = nb_tensor_new(opt->ps->dtype, 1, (int64_t[]){nb_optim_state_numel(opt)}))) goto out;
        nb_optim_state_save(opt, state->data);
        names[n] = "optim/state", ts[n++] = state;
    }
    if (es && es->best_weights && es->ps) {
        if (!(best = nb_tensor_from(es->ps->dtype, 1, (int64_t[]){es->ps->total}, es->best_weights))) goto out;
        names[n] = "early_stop/best", ts[n++] = best;
    }
    const char *snap = es ? es->best_buffers : NULL;
    for (int i = 0; i < best_buffers; i++) {
        const nb_tensor *b = es->ps->buffers[i];
        size_t len = strlen(es->ps->buffer_names[i]) + 24;
        char **nm = &owned[ps->n + ps->n_buffers + i];
        if (!(*nm = malloc(len)) || !(best_bufs[i] = nb_tensor_from(b->dtype, b->ndim, b->shape, snap))) goto out;
        snprintf(*nm, len, "early_stop/best_buffer/%s", es->ps->buffer_names[i]);
        names[n] = *nm, ts[n++] = best_bufs[i];
        snap += (size_t)b->numel * nb_dtype_size(b->dtype);
    }
    if (!(values = nb_tensor_from(NB_F64, 1, (int64_t[]){st->n_values}, st->values))) goto out;
    names[n] = "train/values", ts[n++] = values;
    rc = nb_safetensors_save(path, n, names, ts, meta);
out:
    if (rc == NB_ERR_NOMEM && nb_last_status() != NB_ERR_NOMEM) nb_set_error(NB_ERR_NOMEM, "checkpoint_save: out of memory");
    for (int i = 0; owned && i < n_owned; i++) free(owned[i]);
    free(owned), free(names), free(ts);
    for (int i = 0; best_bufs && i < best_buffers; i++) nb_tensor_free(best_bufs[i]);
    free(best_bufs);
    nb_tensor_free(state), nb_tensor_free(best), nb_tensor_free(values);
    return rc;
}

/* ---- loading: parse and check everything first, then change the objects ------------------ */
static bool meta_int(const nb_tensor_list *l, const char *path, const char *key, int64_t *out) {
    const char *s = nb_tensor_list_meta(l, key);
    char *end;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || errno || end == s || *end) {
        nb_set_error(NB_ERR_FORMAT, "checkpoint_load: %s: metadata '%s' is %s", path, key, s ? "not an integer" : "missing");
        return false;
    }
    *out = v;
    return true;
}

/* a 0/1 flag */
static bool meta_flag(const nb_tensor_list *l, const char *path, const char *key, int64_t *out) {
    if (!meta_int(l, path, key, out)) return false;
    if (*out == 0 || *out == 1) return true;
    nb_set_error(NB_ERR_FORMAT, "checkpoint_load: %s: metadata '%s' is %lld, not 0 or 1", path, key, (long long)*out);
    return false;
}

static bool meta_u64(const nb_tensor_list *l, const char *path, const char *key, uint64_t *out) {
    const char *s = nb_tensor_list_meta(l, key);
    char *end;
    errno = 0;
    unsigned long long v = s ? strtoull(s, &end, 10) : 0;
    if (!s || errno || end == s || *end || *s == '-') {
        nb_set_error(NB_ERR_FORMAT, "checkpoint_load: %s: metadata '%s' is %s", path, key, s ? "not an unsigned integer" : "missing");
        return false;
    }
    *out = v;
    return true;
}

static bool meta_double(const nb_tensor_list *l, const char *path, const char *key, double *out) {
    const char *s = nb_tensor_list_meta(l, key);
    char *end;
    double v = s ? strtod(s, &end) : 0;
    if (!s || end == s || *end) {
        nb_set_error(NB_ERR_FORMAT, "checkpoint_load: %s: metadata '%s' is %s", path, key, s ? "not a number" : "missing");
        return false;
    }
    *out = v;
    return true;
}

/* the tensor "<prefix><name>" (no copy of the name: names of any length work) */
static const nb_tensor *find_prefixed(const nb_tensor_list *l, const char *prefix, const char *name) {
    const size_t len = strlen(prefix);
    for (int i = 0; i < l->n; i++)
        if (strncmp(l->names[i], prefix, len) == 0 && strcmp(l->names[i] + len, name) == 0) return l->tensors[i];
    return NULL;
}
static const nb_tensor *find_param(const nb_tensor_list *l, const char *name) { return find_prefixed(l, "param/", name); }

/* every "buffer/<name>" of the file is one of ps's buffers with its dtype and shape, and back */
static bool buffers_match(const nb_tensor_list *l, const char *path, const nb_params *ps) {
    int in_file = 0;
    for (int i = 0; i < l->n; i++) in_file += strncmp(l->names[i], "buffer/", 7) == 0;
    if (in_file != ps->n_buffers)
        return nb_set_error(NB_ERR_FORMAT, "checkpoint_load: %s holds %d buffers, the model has %d", path, in_file,
                            ps->n_buffers),
               false;
    for (int i = 0; i < ps->n_buffers; i++) {
        const nb_tensor *t = find_prefixed(l, "buffer/", ps->buffer_names[i]), *b = ps->buffers[i];
        if (!t) return nb_set_error(NB_ERR_FORMAT, "checkpoint_load: %s has no tensor 'buffer/%s'", path, ps->buffer_names[i]), false;
        if (t->dtype != b->dtype || !nb_same_shape(t, b)) {
            char x[64], y[64];
            return nb_set_error(NB_ERR_FORMAT, "checkpoint_load: %s: 'buffer/%s' is %s %s, the model has %s %s", path,
                                ps->buffer_names[i], nb_dtype_name(t->dtype), nb_shape_str(t, x, sizeof x),
                                nb_dtype_name(b->dtype), nb_shape_str(b, y, sizeof y)),
                   false;
        }
    }
    return true;
}

/* the tensor `name`, required to be F32/F64 with n elements */
/* the early-stopping snapshot's buffers are in the file, one per buffer of es->ps, each with that buffer's dtype and size */
static bool best_buffers_match(const nb_tensor_list *l, const char *path, const nb_early_stop *es) {
    if (es->best_buffers_bytes != nb_params_buffer_bytes(es->ps))
        return nb_set_error(NB_ERR_STATE, "checkpoint_load: the early-stopping snapshot holds %zu bytes of buffers, the model %zu",
                            es->best_buffers_bytes, nb_params_buffer_bytes(es->ps)),
               false;
    for (int i = 0; es->best_buffers && i < es->ps->n_buffers; i++) {
        const nb_tensor *t = find_prefixed(l, "early_stop/best_buffer/", es->ps->buffer_names[i]), *b = es->ps->buffers[i];
        if (!t || t->dtype != b->dtype || t->numel != b->numel)
            return nb_set_error(NB_ERR_FORMAT, "checkpoint_load: %s: 'early_stop/best_buffer/%s' is %s, expected %s with %lld elements",
                                path, es->ps->buffer_names[i], t ? nb_dtype_name(t->dtype) : "missing", nb_dtype_name(b->dtype),
                                (long long)b->numel),
                   false;
    }
    return true;
}

static const nb_tensor *need(const nb_tensor_list *l, const char *path, const char *name, nb_dtype dt, int64_t n,
                             bool param) {
    const nb_tensor *t = param ? find_param(l, name) : nb_tensor_list_find(l, name);
    if (!t) {
        nb_set_error(NB_ERR_FORMAT, "checkpoint_load: %s has no tensor '%s%s'", path, param ? "param/" : "", name);
        return NULL;
    }
    if (t->dtype != dt || t->numel != n) {
        char b[64];
        nb_set_error(NB_ERR_FORMAT, "checkpoint_load: %s: '%s%s' is %s %s, expected %s with %lld elements", path,
                     param ? "param/" : "", name, nb_dtype_name(t->dtype), nb_shape_str(t, b, sizeof b), nb_dtype_name(dt), (long long)n);
        return NULL;
    }
    return t;
}

nb_status nb_checkpoint_load(const char *path, nb_params *ps, nb_optim *opt, nb_early_stop *es, nb_train_state *st) {
    if (!path || !ps || !st) return nb_set_error(NB_ERR_NULL, "checkpoint_load: NULL argument");
    nb_tensor_list *l = nb_safetensors_load(path);
    if (!l) {
        char why[512];
        snprintf(why, sizeof why, "%s", nb_last_error());
        return nb_set_error(nb_last_status(), "checkpoint_load: %s", why);
    }
    nb_status rc = NB_ERR_FORMAT;
    const char *fmt = nb_tensor_list_meta(l, "format");
    if (!fmt || (strcmp(fmt, FORMAT) != 0 && strcmp(fmt, FORMAT_V1) != 0)) {
        nb_set_error(NB_ERR_FORMAT, "checkpoint_load: %s is not a nabla checkpoint (format '%s')", path, fmt ? fmt : "none");
        goto out;
    }
    if (strcmp(fmt, FORMAT) == 0 && !l->checksummed) {
        nb_set_error(NB_ERR_FORMAT, "checkpoint_load: %s is damaged: its checksums are missing", path);
        goto out;
    }
    /* parameters: exactly the model's, by name and shape */
    int nparam_tensors = 0;
    for (int i = 0; i < l->n; i++) nparam_tensors += strncmp(l->names[i], "param/", 6) == 0;
    if (nparam_tensors != ps->n) {
        nb_set_error(NB_ERR_FORMAT, "checkpoint_load: %s holds %d parameters, the model has %d", path, nparam_tensors, ps->n);
        goto out;
    }
    for (int i = 0; i < ps->n; i++) {
        const nb_tensor *t = need(l, path, ps->names[i], ps->dtype, ps->p[i]->numel, true);
        if (!t) goto out;
        if (!nb_same_shape(t, ps->p[i])) {
            char a[64], b[64];
            nb_set_error(NB_ERR_FORMAT, "checkpoint_load: %s: '%s' has shape %s, the model has %s", path, ps->names[i],
                         nb_shape_str(t, a, sizeof a), nb_shape_str(ps->p[i], b, sizeof b));
            goto out;
        }
    }
    if (!buffers_match(l, path, ps)) goto out;
    nb_train_state s = {0};
    if (!meta_int(l, path, "train.epoch", &s.epoch) || !meta_u64(l, path, "train.rng_seed", &s.rng.seed) ||
        !meta_u64(l, path, "train.rng_offset", &s.rng.offset))
        goto out;
    const nb_tensor *vals = nb_tensor_list_find(l, "train/values");
    if (!vals || vals->dtype != NB_F64 || vals->ndim != 1 || vals->numel > NB_CHECKPOINT_MAX_VALUES) {
        nb_set_error(NB_ERR_FORMAT, "checkpoint_load: %s: 'train/values' missing or malformed", path);
        goto out;
    }
    s.n_values = vals->numel;
    memcpy(s.values, vals->data, (size_t)vals->numel * sizeof(double));

    nb_hparams hp = {0};
    int64_t step = 0, flag;
    const nb_tensor *state = NULL;
    if (opt) {
        const char *name = nb_tensor_list_meta(l, "optim.name");
        if (!name || strcmp(name, opt->def->name) != 0) {
            nb_set_error(NB_ERR_FORMAT, "checkpoint_load: %s was written by optimizer '%s', this run uses '%s'", path,
                         name ? name : "none", opt->def->name);
            goto out;
        }
        if (!meta_int(l, path, "optim.step", &step)) goto out;
#define LOAD_HP(f) if (!meta_double(l, path, "optim." #f, &hp.f)) goto out;
#define LOAD_FLAG(f) if (!meta_flag(l, path, "optim." #f, &flag)) goto out; hp.f = flag != 0;
        HP_FIELDS(LOAD_HP) HP_FLAGS(LOAD_FLAG)
        int64_t numel = nb_optim_state_numel(opt);
        if (numel > 0 && !(state = need(l, path, "optim/state", opt->ps->dtype, numel, false))) goto out;
    }
    nb_early_stop e = es ? *es : (nb_early_stop){0};
    const nb_tensor *best = NULL;
    if (es) {
        int64_t wait, stopped;
        if (!meta_double(l, path, "early_stop.best", &e.best) || !meta_int(l, path, "early_stop.best_epoch", &e.best_epoch) ||
            !meta_int(l, path, "early_stop.epoch", &e.epoch) || !meta_int(l, path, "early_stop.wait", &wait) ||
            !meta_flag(l, path, "early_stop.stopped", &stopped) ||
            !meta_int(l, path, "early_stop.stopped_epoch", &e.stopped_epoch))
            goto out;
        if (wait < 0 || wait > INT_MAX) {
            nb_set_error(NB_ERR_FORMAT, "checkpoint_load: %s: early_stop.wait %lld is out of range", path, (long long)wait);
            goto out;
        }
        e.wait = (int)wait;
        e.stopped = stopped != 0;
        if (es->best_weights && es->ps && !(best = need(l, path, "early_stop/best", es->ps->dtype, es->ps->total, false))) goto out;
        if (best && !best_buffers_match(l, path, es)) goto out;
    }

    if (!valid_state("checkpoint_load", path, NB_ERR_FORMAT, opt, &hp, step, es ? &e : NULL, &s))
        goto out;

    /* everything checked: apply */
    for (int i = 0; i < ps->n; i++) {
        memcpy(ps->p[i]->data, find_param(l, ps->names[i])->data, (size_t)ps->p[i]->numel * nb_dtype_size(ps->dtype));
        nb__bump(ps->p[i]);
    }
    for (int i = 0; i < ps->n_buffers; i++) {
        memcpy(ps->buffers[i]->data, find_prefixed(l, "buffer/", ps->buffer_names[i])->data,
               (size_t)ps->buffers[i]->numel * nb_dtype_size(ps->buffers[i]->dtype));
        nb__bump(ps->buffers[i]);
    }
    if (opt) {
        opt->hp = hp;
        opt->step = step;
        if (state) nb_optim_state_load(opt, state->data);
    }
    if (es) {
        if (best) memcpy(es->best_weights, best->data, (size_t)es->ps->total * nb_dtype_size(es->ps->dtype));
        char *snap = es->best_buffers;
        for (int i = 0; best && snap && i < es->ps->n_buffers; i++) {
            const nb_tensor *t = find_prefixed(l, "early_stop/best_buffer/", es->ps->buffer_names[i]);
            memcpy(snap, t->data, (size_t)t->numel * nb_dtype_size(t->dtype));
            snap += (size_t)t->numel * nb_dtype_size(t->dtype);
        }
        *es = e;
    }
    *st = s;
    rc = NB_OK;
out:
    nb_tensor_list_free(l);
    return rc;
}
