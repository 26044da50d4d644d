/* Writes small valid inputs for each harness: make_seeds DIR -> DIR/{idx,csv,safetensors,checkpoint}/ */
#include <nabla/nabla.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char dir[4096];

static const char *at(const char *sub, const char *name) {
    static char p[8192];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/%s/%s", dir, sub, name);
    return p;
}

static void check(nb_status s) {
    if (s != NB_OK) {
        fprintf(stderr, "make_seeds: %s\n", nb_last_error());
        exit(1);
    }
}

static void text(const char *sub, const char *name, const char *s) {
    FILE *f = fopen(at(sub, name), "wb");
    if (!f) exit(1);
    fputs(s, f);
    fclose(f);
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    snprintf(dir, sizeof dir, "%s", argv[1]);
    mkdir(dir, 0755);
    uint8_t px[2 * 3 * 4], lab[5] = {0, 1, 9, 3, 2};
    for (int i = 0; i < (int)sizeof px; i++) px[i] = (uint8_t)(i * 11);
    check(nb_idx_save_u8(at("idx", "images"), false, NB_SHAPE(2, 3, 4), px));
    check(nb_idx_save_u8(at("idx", "images.gz"), true, NB_SHAPE(2, 3, 4), px));
    check(nb_idx_save_u8(at("idx", "labels"), false, NB_SHAPE(5), lab));
    check(nb_idx_save_u8(at("idx", "labels.gz"), true, NB_SHAPE(5), lab));

    text("csv", "plain.csv", "1,2,3\n4,5,6\n");
    text("csv", "header.csv", "a,b\n# comment\n1.5e3, -2\r\n\n7 ,8\n");
    text("csv", "semicolon.csv", "1;2\n3;4\n");
    text("csv", "tabs.csv", "x\ty\n9223372036854775807\t-9223372036854775808\n");
    text("csv", "special.csv", "nan,inf\n-0,0x1p-3\n");

    nb_tensor *a = nb_tensor_from(NB_F32, NB_SHAPE(2, 2), (float[]){1, 2, 3, 4});
    nb_tensor *b = nb_tensor_from(NB_F64, NB_SHAPE(3), (double[]){0.5, -1, 1e300});
    nb_tensor *c = nb_tensor_from(NB_I64, 0, NULL, (int64_t[]){-7});
    check(nb_safetensors_save(at("safetensors", "three.safetensors"), 3, (const char *[]){"a", "b", "c"},
                              (const nb_tensor *[]){a, b, c}, (const char *[]){"k", "v", NULL}));
    check(nb_safetensors_save(at("safetensors", "empty.safetensors"), 0, NULL, NULL, NULL));
    { /* as another writer makes it: no checksums */
        const char json[] = "{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        FILE *f = fopen(at("safetensors", "foreign.safetensors"), "wb");
        if (!f) exit(1);
        uint64_t n = sizeof json - 1;
        fwrite(&n, 8, 1, f);
        fwrite(json, 1, n, f);
        fwrite((float[]){1, 2}, 4, 2, f);
        fclose(f);
    }

    nb_params *ps = nb_params_new();
    nb_rng g = nb_rng_new(1);
    nb_rng_normal(&g, nb_params_add(ps, "w1", NB_SHAPE(4, 3)), 0, 1);
    nb_params_add(ps, "b1", NB_SHAPE(4));
    nb_rng_normal(&g, nb_params_add(ps, "w2", NB_SHAPE(2, 4)), 0, 1);
    nb_optim *opt = nb_optim_new(&nb_adam, ps, NULL);
    nb_early_stop es;
    check(nb_early_stop_init(&es, ps, NB_MODE_MIN, 3, 0.0, true));
    static nb_train_state st = {.epoch = 2, .n_values = 2, .values = {0.5, 0.25}};
    check(nb_checkpoint_save(at("checkpoint", "fresh.ckpt"), ps, opt, &es, &st));
    opt->step = 12;
    nb_early_stop_update(&es, 0.7);
    nb_early_stop_update(&es, 0.9);
    check(nb_checkpoint_save(at("checkpoint", "trained.ckpt"), ps, opt, &es, &st));
    check(nb_checkpoint_save(at("checkpoint", "no_optim.ckpt"), ps, NULL, NULL, &st));
    nb_early_stop_free(&es);
    nb_optim_free(opt);
    nb_params_free(ps);
    nb_tensor_free(a), nb_tensor_free(b), nb_tensor_free(c);
    return 0;
}
