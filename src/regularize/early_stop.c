/* Early stopping: Keras's EarlyStopping as a state machine with a flat snapshot of the weights. */
#include "../internal.h"

#include <stdlib.h>

/* Size the buffers' snapshot to what ps holds now (buffers may be registered after init): at
 * most one allocation per improving epoch, none in a steady run. */
static bool snapshot_buffers(nb_early_stop *es) {
    const size_t bytes = nb_params_buffer_bytes(es->ps);
    if (bytes != es->best_buffers_bytes) {
        void *p = bytes ? realloc(es->best_buffers, bytes) : NULL;
        if (bytes && !p)
            return nb_set_error(NB_ERR_NOMEM, "early_stop: cannot allocate a snapshot of %zu bytes of buffers", bytes), false;
        if (!bytes) free(es->best_buffers);
        es->best_buffers = p, es->best_buffers_bytes = bytes;
    }
    return true;
}

nb_status nb_early_stop_init(nb_early_stop *es, nb_params *ps, nb_mode mode, int patience, double min_delta,
                             bool restore_best) {
    if (!es) return nb_set_error(NB_ERR_NULL, "early_stop_init: state is NULL");
    memset(es, 0, sizeof *es);
    if (mode != NB_MODE_MIN && mode != NB_MODE_MAX) return nb_set_error(NB_ERR_VALUE, "early_stop_init: unknown mode %d", (int)mode);
    if (patience < 0) return nb_set_error(NB_ERR_VALUE, "early_stop_init: patience %d must be >= 0", patience);
    if (!(min_delta >= 0.0) || !isfinite(min_delta))
        return nb_set_error(NB_ERR_VALUE, "early_stop_init: min_delta %g must be finite and >= 0", min_delta);
    if (restore_best && !ps) return nb_set_error(NB_ERR_NULL, "early_stop_init: restore_best needs the parameters");
    *es = (nb_early_stop){.mode = mode, .patience = patience, .min_delta = min_delta, .restore_best = restore_best,
                          .ps = ps, .best = mode == NB_MODE_MIN ? INFINITY : -INFINITY, .best_epoch = -1,
                          .stopped_epoch = -1};
    if (restore_best) {
        void *p = NULL;
        if (posix_memalign(&p, 64, (size_t)(ps->total ? ps->total : 1) * nb_dtype_size(ps->dtype)) != 0)
            return nb_set_error(NB_ERR_NOMEM, "early_stop_init: cannot allocate a snapshot of %lld %s values",
                                (long long)ps->total, nb_dtype_name(ps->dtype));
        es->best_weights = p;
        if (!snapshot_buffers(es)) return nb_last_status();
    }
    return NB_OK;
}

bool nb_early_stop_update(nb_early_stop *es, double metric) {
    if (!es) return nb_set_error(NB_ERR_NULL, "early_stop_update: state is NULL"), false;
    if (es->stopped) return true;
    const int64_t epoch = es->epoch++;
    bool better = es->mode == NB_MODE_MIN ? metric < es->best - es->min_delta : metric > es->best + es->min_delta;
    if (better) { /* NaN compares false: no improvement */
        es->best = metric;
        es->best_epoch = epoch;
        es->wait = 0;
        if (es->restore_best) {
            nb_params_save_to(es->ps, es->best_weights);
            if (snapshot_buffers(es)) nb_params_buffers_save_to(es->ps, es->best_buffers);
        }
        return false;
    }
    if (++es->wait < es->patience || epoch == 0) return false; /* as Keras: never at the first epoch */
    es->stopped = true;
    es->stopped_epoch = epoch;
    if (es->restore_best) nb_early_stop_restore(es);
    return true;
}

nb_status nb_early_stop_restore(nb_early_stop *es) {
    if (!es) return nb_set_error(NB_ERR_NULL, "early_stop_restore: state is NULL");
    if (!es->restore_best || !es->best_weights)
        return nb_set_error(NB_ERR_STATE, "early_stop_restore: no snapshot (restore_best was off)");
    if (es->best_epoch < 0) return nb_set_error(NB_ERR_STATE, "early_stop_restore: no epoch has been recorded yet");
    nb_params_load_from(es->ps, es->best_weights);
    if (es->best_buffers_bytes != nb_params_buffer_bytes(es->ps))
        return nb_set_error(NB_ERR_STATE, "early_stop_restore: the snapshot holds %zu bytes of buffers, the parameters now %zu "
                            "(weights restored, buffers not)", es->best_buffers_bytes, nb_params_buffer_bytes(es->ps));
    nb_params_buffers_load_from(es->ps, es->best_buffers);
    return NB_OK;
}

void nb_early_stop_free(nb_early_stop *es) {
    if (!es) return;
    free(es->best_weights);
    free(es->best_buffers);
    es->best_weights = NULL, es->best_buffers = NULL, es->best_buffers_bytes = 0;
}
