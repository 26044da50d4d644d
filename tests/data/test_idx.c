/* IDX reader: good files (plain and gzip), hostile ones, and the real Fashion-MNIST. */
#include "common.h"
#include "tmpdir.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

TestSuite(idx, .init = tmpdir_setup, .fini = tmpdir_teardown);

/* write raw bytes, gzip'd or plain */
static void write_raw(const char *path, bool gz, const void *data, size_t n) {
    gzFile f = gzopen(path, gz ? "wb" : "wbT");
    cr_assert_not_null(f);
    cr_assert_eq(gzwrite(f, data, (unsigned)n), (int)n);
    cr_assert_eq(gzclose(f), Z_OK);
}

static void assert_error(nb_status want, const char *needle) {
    cr_assert_eq(nb_last_status(), want, "status %s, expected %s (%s)", nb_status_name(nb_last_status()),
                 nb_status_name(want), nb_last_error());
    cr_assert(strstr(nb_last_error(), needle), "message '%s' lacks '%s'", nb_last_error(), needle);
}

static const uint8_t pix[18] = {0, 255, 51, 102, 3, 9, 200, 1, 2, 4, 8, 16, 32, 64, 128, 255, 254, 253};

Test(idx, images_plain_and_gzip) {
    for (int gz = 0; gz < 2; gz++) {
        const char *p = tmp(gz ? "img.gz" : "img");
        cr_assert_eq(nb_idx_save_u8(p, gz, NB_SHAPE(3, 2, 3), pix), NB_OK, "%s", nb_last_error());
        nb_tensor *t = nb_idx_load_images(p, NULL);
        cr_assert_not_null(t, "%s", nb_last_error());
        cr_assert_eq(t->dtype, NB_F32);
        cr_assert_eq(t->ndim, 2);
        cr_assert_eq(t->shape[0], 3);
        cr_assert_eq(t->shape[1], 6);
        for (int i = 0; i < 18; i++) cr_assert_eq(((float *)t->data)[i], pix[i] * (1.0f / 255.0f));
        cr_assert(t->persistent);
        nb_tensor_free(t);
        t = nb_idx_load_images(p, &(nb_image_opts){.nchw = true});
        cr_assert_not_null(t);
        cr_assert_eq(t->ndim, 4);
        int64_t want[4] = {3, 1, 2, 3};
        for (int d = 0; d < 4; d++) cr_assert_eq(t->shape[d], want[d]);
        assert_close(nb_get(t, 7), 1 / 255.0, 1e-7, 0);
        nb_tensor_free(t);
    }
    /* the writer emits a real gzip stream and the exact big-endian header */
    FILE *f = fopen(tmp("img.gz"), "rb");
    uint8_t head[2];
    cr_assert_eq(fread(head, 1, 2, f), 2);
    fclose(f);
    cr_assert(head[0] == 0x1f && head[1] == 0x8b);
    f = fopen(tmp("img"), "rb");
    uint8_t h[16], want[16] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 3};
    cr_assert_eq(fread(h, 1, 16, f), 16);
    fclose(f);
    cr_assert_arr_eq(h, want, 16);
}

Test(idx, labels_and_range_check) {
    const uint8_t lab[5] = {0, 3, 9, 1, 3};
    cr_assert_eq(nb_idx_save_u8(tmp("lab.gz"), true, NB_SHAPE(5), lab), NB_OK);
    nb_tensor *t = nb_idx_load_labels(tmp("lab.gz"), 10);
    cr_assert_not_null(t, "%s", nb_last_error());
    cr_assert_eq(t->dtype, NB_I64);
    cr_assert_eq(t->ndim, 1);
    for (int i = 0; i < 5; i++) cr_assert_eq(((int64_t *)t->data)[i], lab[i]);
    nb_tensor_free(t);
    cr_assert_null(nb_idx_load_labels(tmp("lab.gz"), 4));
    assert_error(NB_ERR_FORMAT, "label 9 at index 2 is outside [0, 4)");
    t = nb_idx_load_labels(tmp("lab.gz"), 0); /* no check */
    cr_assert_not_null(t);
    nb_tensor_free(t);
}

Test(idx, standardize) {
    cr_assert_eq(nb_idx_save_u8(tmp("img"), false, NB_SHAPE(3, 2, 3), pix), NB_OK);
    double s = 0, ss = 0;
    for (int i = 0; i < 18; i++) s += pix[i] / 255.0;
    for (int i = 0; i < 18; i++) ss += (pix[i] / 255.0 - s / 18) * (pix[i] / 255.0 - s / 18);
    nb_image_opts o = {.standardize = true};
    nb_tensor *t = nb_idx_load_images(tmp("img"), &o);
    cr_assert_not_null(t);
    assert_close(o.mean, s / 18, 1e-7, 0);
    assert_close(o.std, sqrt(ss / 18), 1e-7, 0);
    double m, sd;
    cr_assert_eq(nb_mean_std(t, &m, &sd), NB_OK);
    assert_close(m, 0, 1e-6, 0);
    assert_close(sd, 1, 1e-6, 0);
    nb_tensor_free(t);
    /* given statistics are applied, not recomputed */
    o = (nb_image_opts){.standardize = true, .mean = 0.5, .std = 0.25};
    t = nb_idx_load_images(tmp("img"), &o);
    assert_close(nb_get(t, 1), (1.0 - 0.5) / 0.25, 1e-6, 0);
    assert_close(o.mean, 0.5, 0, 0);
    nb_tensor_free(t);
    /* no image: no statistics to compute (the error names the loader, not its helper); given
     * statistics still load the empty set */
    cr_assert_eq(nb_idx_save_u8(tmp("none"), false, NB_SHAPE(0, 2, 3), pix), NB_OK);
    o = (nb_image_opts){.standardize = true};
    cr_assert_null(nb_idx_load_images(tmp("none"), &o));
    cr_assert_eq(nb_last_status(), NB_ERR_SHAPE);
    cr_assert(strstr(nb_last_error(), "idx_load_images") && strstr(nb_last_error(), "no image"), "%s", nb_last_error());
    o = (nb_image_opts){.standardize = true, .mean = 0.5, .std = 0.25};
    t = nb_idx_load_images(tmp("none"), &o);
    cr_assert(t && t->shape[0] == 0, "%s", nb_last_error());
    nb_tensor_free(t);
    /* one value everywhere: std 0 is written back as 1, the images are centred */
    const uint8_t same[6] = {51, 51, 51, 51, 51, 51};
    cr_assert_eq(nb_idx_save_u8(tmp("same"), false, NB_SHAPE(1, 2, 3), same), NB_OK);
    o = (nb_image_opts){.standardize = true};
    t = nb_idx_load_images(tmp("same"), &o);
    cr_assert_not_null(t, "%s", nb_last_error());
    cr_assert_eq(o.std, 1.0);
    assert_close(o.mean, 0.2, 1e-7, 0);
    assert_close(nb_get(t, 4), 0.0, 1e-7, 0);
    nb_tensor_free(t);
}

Test(idx, truncated_files) {
    for (int gz = 0; gz < 2; gz++) {
        uint8_t buf[16 + 12] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 3}; /* claims 18 bytes, has 12 */
        const char *p = tmp(gz ? "t.gz" : "t");
        write_raw(p, gz, buf, sizeof buf);
        cr_assert_null(nb_idx_load_images(p, NULL));
        assert_error(NB_ERR_FORMAT, "truncated: header dims (3,2,3) need 18 data bytes, file has 12");
        write_raw(p, gz, buf, 10); /* inside the dims */
        cr_assert_null(nb_idx_load_images(p, NULL));
        assert_error(NB_ERR_FORMAT, "truncated inside its header");
        write_raw(p, gz, buf, 3);
        cr_assert_null(nb_idx_load_images(p, NULL));
        assert_error(NB_ERR_FORMAT, "too short");
    }
    /* a gzip stream cut in the middle */
    static uint8_t big[16 + 4000];
    memcpy(big, (uint8_t[16]){0, 0, 8, 3, 0, 0, 0, 10, 0, 0, 0, 20, 0, 0, 0, 20}, 16);
    for (int i = 16; i < (int)sizeof big; i++) big[i] = (uint8_t)(i * 7919 % 251);
    write_raw(tmp("cut.gz"), true, big, sizeof big);
    FILE *f = fopen(tmp("cut.gz"), "r+b");
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fclose(f);
    cr_assert_eq(truncate(tmp("cut.gz"), len / 2), 0);
    cr_assert_null(nb_idx_load_images(tmp("cut.gz"), NULL));
    cr_assert_eq(nb_last_status(), NB_ERR_FORMAT, "%s", nb_last_error());
}

/* All the data but not the gzip trailer (CRC-32 and length, 8 bytes): zlib says so only through
 * gzerror, and without the trailer nothing checks the data, so a damaged byte would load. */
Test(idx, gzip_trailer_cut) {
    write_raw(tmp("tr.gz"), true, (uint8_t[16 + 18]){0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 3}, 16 + 18);
    FILE *f = fopen(tmp("tr.gz"), "rb");
    uint8_t b[256];
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    for (size_t cut = 1; cut <= 8; cut++) {
        f = fopen(tmp("tr.gz"), "wb");
        fwrite(b, 1, n - cut, f);
        fclose(f);
        nb_clear_last_error();
        cr_assert_null(nb_idx_load_images(tmp("tr.gz"), NULL), "a gzip file without its last %zu bytes loaded", cut);
        assert_error(NB_ERR_FORMAT, "unexpected end of file");
    }
}

Test(idx, trailing_bytes) {
    uint8_t buf[16 + 19] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 3};
    write_raw(tmp("t"), false, buf, sizeof buf);
    cr_assert_null(nb_idx_load_images(tmp("t"), NULL));
    assert_error(NB_ERR_FORMAT, "trailing bytes");
}

Test(idx, wrong_magic) {
    cr_assert_eq(nb_idx_save_u8(tmp("lab"), false, NB_SHAPE(4), pix), NB_OK);
    cr_assert_null(nb_idx_load_images(tmp("lab"), NULL));
    assert_error(NB_ERR_FORMAT, "magic 0x00000801, expected 0x00000803: wrong number of dimensions");
    cr_assert_eq(nb_idx_save_u8(tmp("img"), false, NB_SHAPE(3, 2, 3), pix), NB_OK);
    cr_assert_null(nb_idx_load_labels(tmp("img"), 10));
    assert_error(NB_ERR_FORMAT, "expected 0x00000801");
    uint8_t f32[16 + 8] = {0, 0, 0x0d, 1, 0, 0, 0, 2}; /* IDX of floats */
    write_raw(tmp("f"), false, f32, 16);
    cr_assert_null(nb_idx_load_labels(tmp("f"), 0));
    assert_error(NB_ERR_FORMAT, "data type is not 0x08");
    write_raw(tmp("txt"), false, "hello, world\n", 13);
    cr_assert_null(nb_idx_load_images(tmp("txt"), NULL));
    assert_error(NB_ERR_FORMAT, "not an IDX file");
}

Test(idx, oversized_dims) {
    /* dims far beyond the limit: refused from the header alone */
    uint8_t h[16] = {0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    write_raw(tmp("huge"), false, h, 16);
    cr_assert_null(nb_idx_load_images(tmp("huge"), NULL));
    assert_error(NB_ERR_FORMAT, "over the 4294967296-byte limit");
    /* every dim is read before the message prints them (the last one used to be uninitialised) */
    assert_error(NB_ERR_FORMAT, "dims (4294967295,4294967295,4294967295)");
    /* claims 2^31 bytes (within the format's limit) but holds 5: the readers' cap refuses the
     * 10 GiB of buffer and floats up front; without the cap, no 2 GiB allocation, just an error */
    uint8_t h2[21] = {0, 0, 8, 3, 0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 2, 3, 4, 5};
    write_raw(tmp("liar.gz"), true, h2, sizeof h2);
    cr_assert_null(nb_idx_load_images(tmp("liar.gz"), NULL));
    assert_error(NB_ERR_FORMAT, "over the readers' cap");
    size_t was = nb_set_read_limit(0);
    cr_assert_eq(was, NB_READ_LIMIT_DEFAULT);
    cr_assert_null(nb_idx_load_images(tmp("liar.gz"), NULL));
    assert_error(NB_ERR_FORMAT, "need 2147483648 data bytes, file has 5");
    nb_set_read_limit(was);
    /* zero images of 2^31 x 2^31 pixels: rows*cols would overflow the (N, rows*cols) shape */
    uint8_t h3[16] = {0, 0, 8, 3, 0, 0, 0, 0, 0x80, 0, 0, 0, 0x80, 0, 0, 0};
    write_raw(tmp("zero"), false, h3, 16);
    cr_assert_null(nb_idx_load_images(tmp("zero"), NULL));
    assert_error(NB_ERR_FORMAT, "(0,2147483648,2147483648)");
}

Test(idx, missing_file_and_null) {
    cr_assert_null(nb_idx_load_images(tmp("nope"), NULL));
    assert_error(NB_ERR_IO, "cannot open");
    cr_assert_null(nb_idx_load_labels(NULL, 10));
    cr_assert_eq(nb_last_status(), NB_ERR_NULL);
}

Test(idx, fashion_mnist_missing_dir) {
    nb_mnist m;
    cr_assert_eq(nb_fashion_mnist_load(dir, NULL, &m), NB_ERR_IO);
    assert_error(NB_ERR_IO, "dataset-fashion-mnist");
    cr_assert_null(m.train_x);
}

/* A directory with the four files (small, plain and gzip mixed) loads like the real one. */
Test(idx, fashion_mnist_layout) {
    uint8_t lab[3] = {1, 2, 9};
    cr_assert_eq(nb_idx_save_u8(tmp("train-images-idx3-ubyte.gz"), true, NB_SHAPE(3, 2, 3), pix), NB_OK);
    cr_assert_eq(nb_idx_save_u8(tmp("train-labels-idx1-ubyte"), false, NB_SHAPE(3), lab), NB_OK);
    cr_assert_eq(nb_idx_save_u8(tmp("t10k-images-idx3-ubyte"), false, NB_SHAPE(2, 2, 3), pix), NB_OK);
    cr_assert_eq(nb_idx_save_u8(tmp("t10k-labels-idx1-ubyte.gz"), true, NB_SHAPE(2), lab), NB_OK);
    nb_image_opts o = {.standardize = true};
    nb_mnist m;
    cr_assert_eq(nb_fashion_mnist_load(dir, &o, &m), NB_OK, "%s", nb_last_error());
    cr_assert_eq(m.train_x->shape[0], 3);
    cr_assert_eq(m.test_x->shape[0], 2);
    cr_assert(o.std > 0);
    /* the test set uses the training statistics */
    assert_close(nb_get(m.test_x, 1), (1.0 - o.mean) / o.std, 1e-5, 0);
    nb_mnist_free(&m);
    cr_assert_null(m.test_y);
    /* a label 9 count mismatch: 3 labels for 2 test images */
    cr_assert_eq(nb_idx_save_u8(tmp("t10k-labels-idx1-ubyte.gz"), true, NB_SHAPE(3), lab), NB_OK);
    cr_assert_eq(nb_fashion_mnist_load(dir, NULL, &m), NB_ERR_FORMAT);
    cr_assert_null(m.train_x);
}

Test(idx, real_fashion_mnist, .timeout = 60) {
    if (access(NB_FASHION_MNIST_DIR "/train-images-idx3-ubyte.gz", R_OK) != 0) {
        cr_skip_test("Fashion-MNIST not installed (Debian package dataset-fashion-mnist)");
    }
    nb_image_opts o = {.standardize = true};
    nb_mnist m;
    cr_assert_eq(nb_fashion_mnist_load(NULL, &o, &m), NB_OK, "%s", nb_last_error());
    cr_assert_eq(m.train_x->shape[0], 60000);
    cr_assert_eq(m.train_x->shape[1], 784);
    cr_assert_eq(m.train_y->shape[0], 60000);
    cr_assert_eq(m.test_x->shape[0], 10000);
    cr_assert_eq(m.test_y->shape[0], 10000);
    /* values read from the files with Python (gzip + numpy) */
    cr_assert_eq(((int64_t *)m.train_y->data)[0], 9); /* ankle boot */
    cr_assert_eq(((int64_t *)m.train_y->data)[1], 0);
    cr_assert_eq(((int64_t *)m.test_y->data)[0], 9);
    cr_assert_eq(((int64_t *)m.test_y->data)[1], 2);
    assert_close(o.mean, 0.2860405969887955, 1e-7, 0); /* pixels are f32 */
    assert_close(o.std, 0.35302424451492237, 1e-7, 0);
    int64_t count[10] = {0};
    for (int64_t i = 0; i < 60000; i++) {
        int64_t y = ((int64_t *)m.train_y->data)[i];
        cr_assert(y >= 0 && y <= 9);
        count[y]++;
    }
    for (int c = 0; c < 10; c++) cr_assert_eq(count[c], 6000); /* Fashion-MNIST is balanced */
    double s = 0;
    for (int j = 0; j < 784; j++) s += nb_get(m.train_x, j) * o.std + o.mean;
    assert_close(s, 76247 / 255.0, 1e-3, 0); /* first training image */
    nb_mnist_free(&m);
}
