/* Training checkpoints: resuming equals never stopping, bit for bit; bad files change nothing. */
#include "common.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A small classifier with dropout trained by Adam with early stopping: everything a checkpoint
 * must carry (weights, Adam moments and step, the dropout generator, early-stopping state with
 * its snapshot of the weights and of the buffers). */
typedef struct {
    nb_params *ps;
    nb_tensor *w1, *b1, *w2;
    nb_optim *opt;
    nb_early_stop es;
    nb_ctx *ctx;
    nb_tensor *x, *y;  /* long-lived data */
    nb_tensor *stat;   /* a buffer (as batch norm's running mean): the last epoch's loss, in f64 */
} run;

static void run_init(run *r) {
    memset(r, 0, sizeof *r);
    r->ps = nb_params_new();
    r->w1 = nb_params_add(r->ps, "w1", NB_SHAPE(16, 6));
    r->b1 = nb_params_add(r->ps, "b1", NB_SHAPE(16));
    r->w2 = nb_params_add(r->ps, "w2", NB_SHAPE(3, 16));
    nb_rng g = nb_rng_new(5);
    nb_rng_normal(&g, r->w1, 0, 0.4);
    nb_rng_normal(&g, r->w2, 0, 0.4);
    r->stat = nb_tensor_new(NB_F64, NB_SHAPE(2));
    cr_assert_eq(nb_params_add_buffer(r->ps, "stat", r->stat), NB_OK);
    r->opt = nb_optim_new(&nb_adam, r->ps, NULL);
    cr_assert_not_null(r->opt, "%s", nb_last_error());
    cr_assert_eq(nb_early_stop_init(&r->es, r->ps, NB_MODE_MIN, 50, 0.0, true), NB_OK);
    r->ctx = nb_ctx_new();
    nb_ctx_seed(r->ctx, 77);
    r->x = nb_tensor_new(NB_F32, NB_SHAPE(40, 6));
    r->y = nb_tensor_new(NB_I64, NB_SHAPE(40));
    nb_rng d = nb_rng_new(9);
    nb_rng_normal(&d, r->x, 0, 1);
    for (int i = 0; i < 40; i++) nb_set(r->y, i, (nb_get(r->x, 6 * i) > 0) + (nb_get(r->x, 6 * i + 1) > 0.5));
}

static void run_free(run *r) {
    nb_early_stop_free(&r->es);
    nb_optim_free(r->opt);
    nb_params_free(r->ps);
    nb_ctx_free(r->ctx);
    nb_tensor_free(r->x);
    nb_tensor_free(r->y);
    nb_tensor_free(r->stat);
}

static void train_epoch(run *r) {
    double total = 0;
    for (int s = 0; s < 40; s += 10) {
        nb_ctx *c = r->ctx;
        nb_ctx_reset(c);
        nb_params_zero_grad(r->ps);
        nb_tensor *h = nb_dropout(c, nb_relu(c, nb_linear(c, nb_slice(c, r->x, 0, s, s + 10, 1), r->w1, r->b1)), 0.3);
        nb_tensor *loss = nb_cross_entropy(c, nb_linear(c, h, r->w2, NULL), nb_slice(c, r->y, 0, s, s + 10, 1),
                                           NB_REDUCE_MEAN);
        cr_assert_eq(nb_backward(c, loss, NULL), NB_OK, "%s", nb_ctx_error(c));
        cr_assert_eq(nb_optim_step(r->opt), NB_OK);
        total += nb_item(loss);
    }
    nb_set(r->stat, 0, total), nb_set(r->stat, 1, (double)r->es.epoch);
    nb_early_stop_update(&r->es, total);
}

static char *tmp_path(void) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/nabla_ckpt_%d.safetensors", (int)getpid());
    return path;
}

Test(checkpoint, resume_equals_uninterrupted_bit_for_bit) {
    run a, b;
    run_init(&a);
    for (int e = 0; e < 6; e++) train_epoch(&a);

    run_init(&b);
    for (int e = 0; e < 3; e++) train_epoch(&b);
    static nb_train_state st;
    st.epoch = 3;
    st.rng = *nb_ctx_rng(b.ctx);
    st.n_values = 2;
    st.values[0] = 0.1, st.values[1] = -2.5;
    cr_assert_eq(nb_checkpoint_save(tmp_path(), b.ps, b.opt, &b.es, &st), NB_OK, "%s", nb_last_error());
    run_free(&b);

    run c;  /* a fresh process, in effect: new objects, same configuration */
    run_init(&c);
    static nb_train_state got;
    cr_assert_eq(nb_checkpoint_load(tmp_path(), c.ps, c.opt, &c.es, &got), NB_OK, "%s", nb_last_error());
    cr_assert_eq(got.epoch, 3);
    cr_assert_eq(got.n_values, 2);
    cr_assert_eq(got.values[1], -2.5);
    *nb_ctx_rng(c.ctx) = got.rng;
    for (int e = 3; e < 6; e++) train_epoch(&c);

    cr_assert_eq(c.opt->step, a.opt->step);
    cr_assert(memcmp(c.ps->flat, a.ps->flat, (size_t)a.ps->total * sizeof(float)) == 0, "weights differ after resume");
    cr_assert(memcmp(c.opt->state[1], a.opt->state[1], (size_t)a.ps->total * sizeof(float)) == 0, "Adam moments differ");
    cr_assert_eq(c.es.best, a.es.best);
    cr_assert_eq(c.es.best_epoch, a.es.best_epoch);
    cr_assert(memcmp(c.es.best_weights, a.es.best_weights, (size_t)a.ps->total * sizeof(float)) == 0);
    cr_assert_eq(c.es.best_buffers_bytes, 2 * sizeof(double));
    cr_assert(memcmp(c.es.best_buffers, a.es.best_buffers, c.es.best_buffers_bytes) == 0, "buffers' snapshot differs");
    cr_assert_eq(((double *)c.es.best_buffers)[1], (double)c.es.best_epoch, "the snapshot is the best epoch's buffer");
    run_free(&a);
    run_free(&c);
    remove(tmp_path());
}

Test(checkpoint, mismatches_are_rejected_and_change_nothing) {
    run a;
    run_init(&a);
    train_epoch(&a);
    static nb_train_state st;
    cr_assert_eq(nb_checkpoint_save(tmp_path(), a.ps, a.opt, &a.es, &st), NB_OK, "%s", nb_last_error());

    /* another optimizer */
    nb_optim *sgd = nb_optim_new(&nb_sgd, a.ps, NULL);
    float before = a.ps->flat[0];
    a.ps->flat[0] = 123.0f;
    cr_assert_eq(nb_checkpoint_load(tmp_path(), a.ps, sgd, NULL, &st), NB_ERR_FORMAT);
    cr_assert(strstr(nb_last_error(), "optimizer 'adam'"), "%s", nb_last_error());
    cr_assert_eq(a.ps->flat[0], 123.0f, "a failed load must not touch the weights");
    a.ps->flat[0] = before;
    nb_optim_free(sgd);

    /* another model shape */
    nb_params *other = nb_params_new();
    nb_params_add(other, "w1", NB_SHAPE(16, 7));
    nb_params_add(other, "b1", NB_SHAPE(16));
    nb_params_add(other, "w2", NB_SHAPE(3, 16));
    cr_assert_eq(nb_checkpoint_load(tmp_path(), other, NULL, NULL, &st), NB_ERR_FORMAT);
    cr_assert(strstr(nb_last_error(), "param/w1"), "%s", nb_last_error());
    nb_params_free(other);

    /* a truncated file */
    FILE *f = fopen(tmp_path(), "r+b");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    cr_assert_eq(truncate(tmp_path(), size / 2), 0);
    cr_assert_neq(nb_checkpoint_load(tmp_path(), a.ps, a.opt, &a.es, &st), NB_OK);

    /* a plain parameter file is not a checkpoint */
    cr_assert_eq(nb_safetensors_save_params(a.ps, tmp_path(), NULL), NB_OK);
    cr_assert_eq(nb_checkpoint_load(tmp_path(), a.ps, a.opt, &a.es, &st), NB_ERR_FORMAT);
    cr_assert(strstr(nb_last_error(), "not a nabla checkpoint"), "%s", nb_last_error());
    run_free(&a);
    remove(tmp_path());
}

Test(checkpoint, failed_save_keeps_the_previous_file) {
    run a;
    run_init(&a);
    static nb_train_state st;
    st.epoch = 1;
    cr_assert_eq(nb_checkpoint_save(tmp_path(), a.ps, a.opt, &a.es, &st), NB_OK);
    st.n_values = NB_CHECKPOINT_MAX_VALUES + 1;  /* invalid: the save must fail before touching the file */
    cr_assert_eq(nb_checkpoint_save(tmp_path(), a.ps, a.opt, &a.es, &st), NB_ERR_VALUE);
    static nb_train_state got;
    cr_assert_eq(nb_checkpoint_load(tmp_path(), a.ps, a.opt, &a.es, &got), NB_OK, "%s", nb_last_error());
    cr_assert_eq(got.epoch, 1);
    cr_assert_eq(nb_checkpoint_save("/nonexistent-dir/x.ckpt", a.ps, a.opt, &a.es, &got), NB_ERR_IO);
    run_free(&a);
    remove(tmp_path());
}
