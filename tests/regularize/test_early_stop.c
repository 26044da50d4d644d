/* Early stopping on scripted validation curves: the stopping epoch and the restored weights. */
#include "common.h"

#include <string.h>

/* epoch e's "weights": every element equal to e */
static void set_epoch_weights(nb_params *ps, int e) {
    for (int64_t i = 0; i < ps->total; i++) ps->flat[i] = (float)e;
}

Test(early_stop, min_mode_stops_after_patience_and_restores_best) {
    nb_params *ps = nb_params_new();
    nb_params_add(ps, "W", NB_SHAPE(3, 2));
    nb_params_add(ps, "b", NB_SHAPE(2));
    nb_early_stop es;
    cr_assert_eq(nb_early_stop_init(&es, ps, NB_MODE_MIN, 3, 0.01, true), NB_OK);
    /* best at epoch 2 (0.70); 0.695 (epoch 4) improves by less than min_delta; stop at epoch 5 */
    const double val[] = {1.0, 0.8, 0.70, 0.72, 0.695, 0.71, 0.5, 0.4};
    int stop_at = -1;
    for (int e = 0; e < 8; e++) {
        set_epoch_weights(ps, e);
        if (nb_early_stop_update(&es, val[e])) {
            stop_at = e;
            break;
        }
    }
    cr_assert_eq(stop_at, 5);
    cr_assert_eq(es.stopped_epoch, 5);
    cr_assert_eq(es.best_epoch, 2);
    assert_close(es.best, 0.70, 0, 0);
    for (int64_t i = 0; i < ps->total; i++) cr_assert_eq(ps->flat[i], 2.0f, "element %lld not restored", (long long)i);
    cr_assert(nb_early_stop_update(&es, 0.1), "stays stopped");
    nb_early_stop_free(&es);
    nb_params_free(ps);
}

Test(early_stop, max_mode_nan_and_explicit_restore) {
    nb_params *ps = nb_params_new();
    nb_params_add(ps, "W", NB_SHAPE(2, 2));
    nb_early_stop es;
    cr_assert_eq(nb_early_stop_init(&es, ps, NB_MODE_MAX, 2, 0.0, true), NB_OK);
    cr_assert_eq(nb_early_stop_restore(&es), NB_ERR_STATE); /* nothing recorded yet */
    const double acc[] = {0.5, 0.6, NAN, 0.65, 0.64};       /* NaN counts as no improvement */
    for (int e = 0; e < 5; e++) {
        set_epoch_weights(ps, e);
        cr_assert(!nb_early_stop_update(&es, acc[e]), "epoch %d stopped", e);
    }
    cr_assert_eq(es.best_epoch, 3);
    cr_assert_eq(es.wait, 1);
    /* the loop ended without stopping: restore by hand */
    cr_assert_eq(nb_early_stop_restore(&es), NB_OK);
    cr_assert_eq(ps->flat[0], 3.0f);
    nb_early_stop_free(&es);
    nb_params_free(ps);
}

/* The snapshot holds the buffers too (batch norm's running statistics), also ones registered
 * after init and of another dtype; restoring puts the best epoch's back. */
Test(early_stop, restores_buffers_with_the_weights) {
    nb_params *ps = nb_params_new();
    nb_params_add(ps, "W", NB_SHAPE(4));
    nb_tensor *mean = nb_tensor_new(NB_F32, NB_SHAPE(3)), *count = nb_tensor_new(NB_F64, NB_SHAPE(2));
    cr_assert_eq(nb_params_add_buffer(ps, "bn.running_mean", mean), NB_OK);
    nb_early_stop es;
    cr_assert_eq(nb_early_stop_init(&es, ps, NB_MODE_MIN, 2, 0.0, true), NB_OK);
    cr_assert_eq(es.best_buffers_bytes, 3 * sizeof(float));
    cr_assert_eq(nb_params_add_buffer(ps, "count", count), NB_OK);
    const double val[] = {1.0, 0.5, 0.7, 0.8};
    bool stopped = false;
    for (int e = 0; e < 4 && !stopped; e++) {
        set_epoch_weights(ps, e);
        nb_fill(mean, 10.0 + e), nb_fill(count, 100.0 + e);
        stopped = nb_early_stop_update(&es, val[e]);
    }
    cr_assert(stopped);
    cr_assert_eq(es.best_epoch, 1);
    cr_assert_eq(es.best_buffers_bytes, 3 * sizeof(float) + 2 * sizeof(double));
    cr_assert_eq(ps->flat[0], 1.0f);
    for (int i = 0; i < 3; i++) cr_assert_eq(nb_get(mean, i), 11.0, "running mean %d not restored", i);
    for (int i = 0; i < 2; i++) cr_assert_eq(nb_get(count, i), 101.0, "f64 buffer %d not restored", i);
    nb_early_stop_free(&es);
    nb_params_free(ps);
    nb_tensor_free(mean), nb_tensor_free(count);
}

Test(early_stop, without_snapshot_and_bad_arguments) {
    nb_early_stop es;
    cr_assert_eq(nb_early_stop_init(&es, NULL, NB_MODE_MIN, 0, 0.0, false), NB_OK);
    cr_assert(nb_early_stop_update(&es, 1.0) == false);
    cr_assert(nb_early_stop_update(&es, 2.0), "patience 0 stops at the first non-improvement");
    cr_assert_eq(nb_early_stop_restore(&es), NB_ERR_STATE);
    nb_early_stop_free(&es);
    cr_assert_eq(nb_early_stop_init(&es, NULL, NB_MODE_MIN, -1, 0.0, false), NB_ERR_VALUE);
    cr_assert(strstr(nb_last_error(), "patience -1"));
    cr_assert_eq(nb_early_stop_init(&es, NULL, NB_MODE_MIN, 1, -0.5, false), NB_ERR_VALUE);
    cr_assert_eq(nb_early_stop_init(&es, NULL, NB_MODE_MIN, 1, 0.0, true), NB_ERR_NULL);
}

/* As Keras: the first epoch never stops training, even with patience 1 and a NaN metric (it
 * stopped at epoch 0); the next epoch without improvement does. */
Test(early_stop, the_first_epoch_never_stops) {
    nb_params *ps = nb_params_new();
    nb_params_add(ps, "W", NB_SHAPE(2));
    nb_early_stop es;
    cr_assert_eq(nb_early_stop_init(&es, ps, NB_MODE_MIN, 1, 0.0, false), NB_OK);
    cr_assert_not(nb_early_stop_update(&es, NAN));
    cr_assert(nb_early_stop_update(&es, NAN));
    cr_assert_eq(es.stopped_epoch, 1);
    nb_early_stop_free(&es);
    nb_params_free(ps);
}
