/* Permutations, splits and the (sharded) batch iterator. */
#include "common.h"

#include <stdlib.h>
#include <string.h>

TestSuite(dataset, .init = ctx_setup, .fini = ctx_teardown);

/* x (n, 3) with x[i][j] = 10 i + j, y (n) with y[i] = i: every row says where it came from */
static void make_data(int64_t n, nb_tensor **x, nb_tensor **y) {
    *x = nb_tensor_new(NB_F32, NB_SHAPE(n, 3));
    *y = nb_tensor_new(NB_I64, NB_SHAPE(n));
    for (int64_t i = 0; i < n; i++) {
        for (int j = 0; j < 3; j++) ((float *)(*x)->data)[i * 3 + j] = (float)(10 * i + j);
        ((int64_t *)(*y)->data)[i] = i;
    }
}

Test(dataset, split_is_a_seeded_partition) {
    nb_tensor *x, *y, *xt, *yt, *xv, *yv;
    make_data(50, &x, &y);
    cr_assert_eq(nb_split(x, y, 12, 99, &xt, &yt, &xv, &yv), NB_OK, "%s", nb_last_error());
    cr_assert_eq(xt->shape[0], 38);
    cr_assert_eq(xv->shape[0], 12);
    cr_assert_eq(xt->shape[1], 3);
    int count[50] = {0};
    bool in_order = true, last_block = true;
    for (int64_t i = 0; i < 50; i++) {
        const nb_tensor *xs = i < 38 ? xt : xv, *ys = i < 38 ? yt : yv;
        int64_t r = i < 38 ? i : i - 38, src = ((int64_t *)ys->data)[r];
        count[src]++;
        for (int j = 0; j < 3; j++) cr_assert_eq(nb_get(xs, r * 3 + j), 10.0 * src + j); /* x follows y */
        if (r > 0) in_order = in_order && src > ((int64_t *)ys->data)[r - 1];
        if (i >= 38) last_block = last_block && src >= 38;
    }
    for (int i = 0; i < 50; i++) cr_assert_eq(count[i], 1, "row %d appears %d times", i, count[i]);
    /* documented: validation = the last 12 entries of nb_rng_permutation(seed), sorted */
    int64_t perm[50], want_val[12];
    nb_rng rng = nb_rng_new(99);
    nb_rng_permutation(&rng, 50, perm);
    memcpy(want_val, perm + 38, sizeof want_val);
    for (int i = 0; i < 12; i++)
        for (int j = i + 1; j < 12; j++)
            if (want_val[j] < want_val[i]) {
                int64_t t = want_val[i];
                want_val[i] = want_val[j], want_val[j] = t;
            }
    cr_assert_arr_eq(yv->data, want_val, sizeof want_val);
    cr_assert(in_order, "each part keeps the original order");
    cr_assert(!last_block, "a random split is not the last rows");
    /* reproducible */
    nb_tensor *xt2, *yt2, *xv2, *yv2;
    nb_split(x, y, 12, 99, &xt2, &yt2, &xv2, &yv2);
    cr_assert_arr_eq(yv->data, yv2->data, 12 * sizeof(int64_t));
    nb_tensor_free(xt2), nb_tensor_free(yt2), nb_tensor_free(xv2), nb_tensor_free(yv2);
    nb_tensor_free(xt), nb_tensor_free(yt), nb_tensor_free(xv), nb_tensor_free(yv);
    /* seed 0: the last rows, without labels */
    cr_assert_eq(nb_split(x, NULL, 5, 0, &xt, NULL, &xv, NULL), NB_OK);
    cr_assert_eq(nb_get(xv, 0), 450.0);
    cr_assert_eq(nb_get(xt, 44 * 3), 440.0);
    nb_tensor_free(xt), nb_tensor_free(xv);
    /* errors */
    cr_assert_eq(nb_split(x, y, 51, 1, &xt, &yt, &xv, &yv), NB_ERR_VALUE);
    cr_assert_null(xt);
    nb_tensor *y2 = nb_tensor_new(NB_I64, NB_SHAPE(49));
    cr_assert_eq(nb_split(x, y2, 5, 1, &xt, &yt, &xv, &yv), NB_ERR_SHAPE);
    cr_assert(strstr(nb_last_error(), "(50,3)") && strstr(nb_last_error(), "(49)"), "%s", nb_last_error());
    nb_tensor_free(y2), nb_tensor_free(x), nb_tensor_free(y);
}

Test(dataset, take_rows_of_a_strided_view) {
    nb_tensor *x, *y;
    make_data(4, &x, &y);
    nb_tensor *xT = nb_transpose(ctx, x, 0, 1); /* (3,4) view with strides (1,3) */
    cr_assert_not_null(xT);
    nb_tensor *r = nb_take_rows(xT, (int64_t[]){2, 0}, 2);
    cr_assert_not_null(r, "%s", nb_last_error());
    const double want[8] = {2, 12, 22, 32, 0, 10, 20, 30};
    assert_values(r, want, 8, 0);
    nb_tensor_free(r);
    cr_assert_null(nb_take_rows(x, (int64_t[]){4}, 1));
    cr_assert_eq(nb_last_status(), NB_ERR_INDEX);
    nb_tensor_free(x), nb_tensor_free(y);
}

/* Run one epoch; count[i] += times sample i was seen; check each batch's rows match its indices. */
static int64_t run_epoch(nb_batcher *it, int64_t epoch, int *count, int64_t *sizes, int64_t *order) {
    nb_batch b;
    int64_t nb = 0, k = 0;
    nb_tensor *first_x = NULL;
    void *first_data = NULL;
    nb_batcher_start(it, epoch);
    while (nb_batcher_next(it, &b)) {
        cr_assert_eq(b.index, nb);
        if (!first_x) first_x = b.x, first_data = b.x->data;
        cr_assert_eq(b.x, first_x, "the same batch tensor every time");
        cr_assert_eq(b.x->data, first_data, "no reallocation");
        cr_assert_eq(b.x->shape[0], b.n);
        cr_assert_eq(b.y->shape[0], b.n);
        cr_assert_eq(b.x->numel, b.n * 3);
        for (int64_t r = 0; r < b.n; r++) {
            int64_t i = b.idx[r];
            cr_assert_eq(((int64_t *)b.y->data)[r], i);
            cr_assert_eq(nb_get(b.x, r * 3 + 2), 10.0 * i + 2);
            count[i]++;
            if (order) order[k++] = i;
        }
        if (sizes) sizes[nb] = b.n;
        nb++;
    }
    return nb;
}

Test(dataset, batches_cover_every_sample_once) {
    nb_tensor *x, *y;
    make_data(10, &x, &y);
    int64_t sizes[16];
    for (int drop = 0; drop < 2; drop++) {
        nb_batcher *it = nb_batcher_new(x, y, &(nb_batch_opts){.batch_size = 3, .shuffle = true, .seed = 5, .drop_last = drop});
        cr_assert_not_null(it, "%s", nb_last_error());
        cr_assert_eq(nb_batcher_num_batches(it), drop ? 3 : 4);
        int64_t o1[10], o2[10], o3[10];
        for (int e = 0; e < 3; e++) {
            int count[10] = {0};
            int64_t nbatch = run_epoch(it, e, count, sizes, e == 0 ? o1 : e == 1 ? o2 : o3);
            cr_assert_eq(nbatch, drop ? 3 : 4);
            for (int64_t k = 0; k < nbatch; k++) cr_assert_eq(sizes[k], k < 3 ? 3 : 1);
            int seen = 0;
            for (int i = 0; i < 10; i++) {
                cr_assert(count[i] <= 1);
                seen += count[i];
            }
            cr_assert_eq(seen, drop ? 9 : 10);
        }
        cr_assert(memcmp(o1, o2, 9 * sizeof(int64_t)) != 0, "a new order every epoch");
        int c[10] = {0};
        int64_t again[10];
        run_epoch(it, 1, c, NULL, again); /* an epoch's order depends only on (seed, epoch) */
        cr_assert_arr_eq(again, o2, (drop ? 9 : 10) * sizeof(int64_t));
        nb_batcher_free(it);
    }
    nb_tensor_free(x), nb_tensor_free(y);
}

/* "One batch holds everything" as batch_size INT64_MAX: one batch of all rows (num_batches
 * overflowed to 0 while next still gave the batch); none with drop_last. */
Test(dataset, largest_batch_size_is_one_batch) {
    nb_tensor *x, *y;
    make_data(10, &x, &y);
    for (int drop = 0; drop < 2; drop++) {
        nb_batcher *it = nb_batcher_new(x, y, &(nb_batch_opts){.batch_size = INT64_MAX, .drop_last = drop});
        cr_assert_not_null(it, "%s", nb_last_error());
        int count[10] = {0};
        int64_t sizes[2];
        cr_assert_eq(nb_batcher_num_batches(it), drop ? 0 : 1);
        cr_assert_eq(run_epoch(it, 0, count, sizes, NULL), drop ? 0 : 1);
        if (!drop) cr_assert_eq(sizes[0], 10);
        nb_batcher_free(it);
    }
    nb_tensor_free(x), nb_tensor_free(y);
}

Test(dataset, full_batch_sgd_and_no_shuffle) {
    nb_tensor *x, *y;
    make_data(7, &x, &y);
    int count[7] = {0};
    int64_t order[7], sizes[8];
    nb_batcher *it = nb_batcher_new(x, y, &(nb_batch_opts){.batch_size = 100}); /* full batch */
    cr_assert_eq(run_epoch(it, 0, count, sizes, order), 1);
    cr_assert_eq(sizes[0], 7);
    for (int i = 0; i < 7; i++) cr_assert_eq(order[i], i, "no shuffle: data order");
    nb_batcher_free(it);
    it = nb_batcher_new(x, NULL, &(nb_batch_opts){.batch_size = 1, .shuffle = true, .seed = 3}); /* SGD, no labels */
    nb_batch b;
    int64_t n = 0;
    while (nb_batcher_next(it, &b)) {
        cr_assert_null(b.y);
        cr_assert_eq(b.n, 1);
        n++;
    }
    cr_assert_eq(n, 7);
    nb_batcher_free(it);
    cr_assert_null(nb_batcher_new(x, y, &(nb_batch_opts){.batch_size = 0}));
    cr_assert_eq(nb_last_status(), NB_ERR_VALUE);
    cr_assert_null(nb_batcher_new(x, y, &(nb_batch_opts){.batch_size = 2, .rank = 2, .world_size = 2}));
    cr_assert_eq(nb_last_status(), NB_ERR_VALUE);
    nb_tensor_free(x), nb_tensor_free(y);
}

/* R = 2 ranks with batch B see, batch by batch, exactly the samples of one process with batch 2B. */
Test(dataset, shards_across_two_ranks) {
    nb_tensor *x, *y;
    make_data(11, &x, &y);
    for (int drop = 0; drop < 2; drop++) {
        nb_batcher *one = nb_batcher_new(x, y, &(nb_batch_opts){.batch_size = 4, .shuffle = true, .seed = 9, .drop_last = drop});
        nb_batcher *r0 = nb_batcher_new(x, y, &(nb_batch_opts){.batch_size = 2, .shuffle = true, .seed = 9, .drop_last = drop, .rank = 0, .world_size = 2});
        nb_batcher *r1 = nb_batcher_new(x, y, &(nb_batch_opts){.batch_size = 2, .shuffle = true, .seed = 9, .drop_last = drop, .rank = 1, .world_size = 2});
        cr_assert_eq(nb_batcher_num_batches(r0), nb_batcher_num_batches(one));
        for (int e = 0; e < 2; e++) {
            nb_batcher_start(one, e), nb_batcher_start(r0, e), nb_batcher_start(r1, e);
            nb_batch b, b0, b1;
            int count[11] = {0}, nbatch = 0;
            while (nb_batcher_next(one, &b)) {
                cr_assert(nb_batcher_next(r0, &b0) && nb_batcher_next(r1, &b1));
                cr_assert_eq(b0.global_n, b.n);
                cr_assert_eq(b1.global_n, b.n);
                cr_assert_eq(b0.n + b1.n, b.n);
                int in_one[11] = {0};
                for (int64_t r = 0; r < b.n; r++) in_one[b.idx[r]]++;
                for (int64_t r = 0; r < b0.n; r++) in_one[b0.idx[r]]--, count[b0.idx[r]]++;
                for (int64_t r = 0; r < b1.n; r++) {
                    in_one[b1.idx[r]]--, count[b1.idx[r]]++;
                    cr_assert_eq(((int64_t *)b1.y->data)[r], b1.idx[r]);
                }
                for (int i = 0; i < 11; i++) cr_assert_eq(in_one[i], 0, "batch %d: ranks differ from one process", nbatch);
                nbatch++;
            }
            cr_assert(!nb_batcher_next(r0, &b0) && !nb_batcher_next(r1, &b1));
            cr_assert_eq(nbatch, drop ? 2 : 3);
            for (int i = 0; i < 11; i++) cr_assert(count[i] == 1 || (drop && count[i] == 0));
            if (!drop) cr_assert(b0.n == 2 && b1.n == 1, "last global batch of 3: the first rank takes one more");
        }
        nb_batcher_free(one), nb_batcher_free(r0), nb_batcher_free(r1);
    }
    nb_tensor_free(x), nb_tensor_free(y);
}
