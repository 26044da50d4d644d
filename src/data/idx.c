/* IDX files (the MNIST format): big-endian header, unsigned-byte payload, gzip or plain. */
#include "../internal.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#ifdef NB_HAVE_ZLIB
#include <zlib.h>
#endif

/* A payload larger than this is refused: no real IDX file comes close, a hostile header might. */
#define IDX_MAX_BYTES ((uint64_t)1 << 32)
#define IDX_IMAGES 0x0803u
#define IDX_LABELS 0x0801u

/* ---- reading through zlib (which reads plain files transparently) or stdio ------------------ */
#ifdef NB_HAVE_ZLIB
typedef gzFile rfile;
static rfile r_open(const char *path) { return gzopen(path, "rb"); }
/* zlib reports a stream cut short (a missing gzip trailer, whose CRC-32 then goes unchecked)
 * only through gzerror, with gzread returning what it had: that is an error here. */
static int64_t r_read(rfile f, void *buf, size_t n, const char **why) {
    int r = gzread(f, buf, (unsigned)n), code;
    const char *msg = gzerror(f, &code);
    if (r < 0 || code != Z_OK) {
        const char *sep = strrchr(msg, ':'); /* zlib writes "path: what" */
        *why = sep && sep[1] == ' ' ? sep + 2 : msg;
        return -1;
    }
    return r;
}
static void r_close(rfile f) { gzclose(f); }
#else
typedef FILE *rfile;
static rfile r_open(const char *path) { return fopen(path, "rb"); }
static int64_t r_read(rfile f, void *buf, size_t n, const char **why) {
    size_t r = fread(buf, 1, n, f);
    if (r < n && ferror(f)) {
        *why = "read error";
        return -1;
    }
    return (int64_t)r;
}
static void r_close(rfile f) { fclose(f); }
#endif

/* Read up to n bytes; returns the count (< n only at end of data) or -1 with an error set. */
static int64_t read_full(const char *fn, const char *path, rfile f, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        const char *why = "";
        size_t want = n - got > (1u << 30) ? (1u << 30) : n - got;
        int64_t r = r_read(f, (char *)buf + got, want, &why);
        if (r < 0) return nb_set_error(NB_ERR_FORMAT, "%s: '%s': corrupt data (%s)", fn, path, why), -1;
        if (r == 0) break;
        got += (size_t)r;
    }
    return (int64_t)got;
}

/* Open an IDX file, check its magic (0x0000 0x08=ubyte, ndim) and read its dims and payload.
 * The payload buffer grows with the data actually read, so a header that lies about its size
 * costs at most twice the real file. out_esz: bytes per element of the tensor the caller will
 * make, counted with the payload against the readers' cap before anything is read. */
static uint8_t *idx_read(const char *fn, const char *path, unsigned magic, size_t out_esz, int64_t *dims) {
    const int ndim = (int)(magic & 0xff);
    if (!path) return nb_set_error(NB_ERR_NULL, "%s: path is NULL", fn), NULL;
    errno = 0;
    rfile f = r_open(path);
    if (!f) return nb_set_error(NB_ERR_IO, "%s: cannot open '%s': %s", fn, path, errno ? strerror(errno) : "?"), NULL;
    uint8_t head[4 + 4 * 3], *buf = NULL;
    int64_t r = read_full(fn, path, f, head, 4);
    if (r < 0) goto fail;
    if (r < 4) {
        nb_set_error(NB_ERR_FORMAT, "%s: '%s' is too short for an IDX header (%lld bytes)", fn, path, (long long)r);
        goto fail;
    }
    const unsigned got = (unsigned)head[0] << 24 | (unsigned)head[1] << 16 | (unsigned)head[2] << 8 | head[3];
#ifndef NB_HAVE_ZLIB
    if (head[0] == 0x1f && head[1] == 0x8b) {
        nb_set_error(NB_ERR_UNSUPPORTED, "%s: '%s' is gzip-compressed and nabla was built without zlib", fn, path);
        goto fail;
    }
#endif
    if (got != magic) {
        const char *why = head[0] || head[1]   ? "not an IDX file"
                          : head[2] != 0x08    ? "data type is not 0x08 (unsigned byte)"
                                               : "wrong number of dimensions";
        nb_set_error(NB_ERR_FORMAT, "%s: '%s' has magic 0x%08x, expected 0x%08x: %s", fn, path, got, magic, why);
        goto fail;
    }
    r = read_full(fn, path, f, head + 4, 4 * (size_t)ndim);
    if (r < 0) goto fail;
    if (r < 4 * ndim) {
        nb_set_error(NB_ERR_FORMAT, "%s: '%s' is truncated inside its header", fn, path);
        goto fail;
    }
    for (int i = 0; i < ndim; i++) {
        const uint8_t *p = head + 4 + 4 * i;
        dims[i] = (int64_t)((uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3]);
    }
    /* all dims are read before any message prints them; the product of max(dim, 1) is bounded
     * too, so zero images of 2^32 x 2^32 pixels cannot overflow the (N, rows*cols) shape */
    uint64_t span = 1, count = 1;
    for (int i = 0; i < ndim && span <= IDX_MAX_BYTES; i++) { /* factors < 2^32, span <= 2^32: no overflow */
        span *= dims[i] ? (uint64_t)dims[i] : 1;
        count *= (uint64_t)dims[i];
    }
    if (span > IDX_MAX_BYTES) {
        char b[96];
        nb_set_error(NB_ERR_FORMAT, "%s: '%s' header claims dims %s, over the %llu-byte limit", fn, path,
                     nb__dims_str(ndim, dims, b, sizeof b), (unsigned long long)IDX_MAX_BYTES);
        goto fail;
    }
    const uint64_t bytes = count;
    if (!nb__read_budget(fn, path, bytes * (1 + out_esz))) goto fail;
    size_t cap = bytes < (1u << 20) ? (size_t)bytes : (1u << 20), have = 0;
    buf = malloc(cap ? cap : 1);
    if (!buf) {
        nb_set_error(NB_ERR_NOMEM, "%s: out of memory", fn);
        goto fail;
    }
    while (have < bytes) {
        if (have == cap) {
            size_t ncap = cap * 2 < bytes ? cap * 2 : (size_t)bytes;
            uint8_t *nbuf = realloc(buf, ncap);
            if (!nbuf) {
                nb_set_error(NB_ERR_NOMEM, "%s: out of memory reading '%s'", fn, path);
                goto fail;
            }
            buf = nbuf, cap = ncap;
        }
        r = read_full(fn, path, f, buf + have, cap - have);
        if (r < 0) goto fail;
        have += (size_t)r;
        if (have < cap) break; /* end of data */
    }
    if (have < bytes) {
        char b[96];
        nb_set_error(NB_ERR_FORMAT, "%s: '%s' is truncated: header dims %s need %llu data bytes, file has %zu", fn,
                     path, nb__dims_str(ndim, dims, b, sizeof b), (unsigned long long)bytes, have);
        goto fail;
    }
    uint8_t extra[64];
    r = read_full(fn, path, f, extra, sizeof extra);
    if (r < 0) goto fail;
    if (r > 0) {
        nb_set_error(NB_ERR_FORMAT, "%s: '%s' has trailing bytes after its %llu data bytes", fn, path,
                     (unsigned long long)bytes);
        goto fail;
    }
    r_close(f);
    return buf;
fail:
    free(buf);
    r_close(f);
    return NULL;
}

nb_tensor *nb_idx_load_images(const char *path, nb_image_opts *opts) {
    static const char fn[] = "idx_load_images";
    int64_t d[3];
    uint8_t *raw = idx_read(fn, path, IDX_IMAGES, sizeof(float), d);
    if (!raw) return NULL;
    if (d[1] == 0 || d[2] == 0) {
        free(raw);
        return nb_set_error(NB_ERR_FORMAT, "%s: '%s' has images of size %lldx%lld", fn, path, (long long)d[1],
                            (long long)d[2]),
               NULL;
    }
    nb_tensor *t = opts && opts->nchw ? nb_tensor_new(NB_F32, NB_SHAPE(d[0], 1, d[1], d[2]))
                                      : nb_tensor_new(NB_F32, NB_SHAPE(d[0], d[1] * d[2]));
    if (t) {
        float *x = t->data;
        const int64_t n = t->numel;
#pragma omp parallel for if (n >= NB_PAR_THRESHOLD) schedule(static)
        for (int64_t i = 0; i < n; i++) x[i] = raw[i] * (1.0f / 255.0f);
    }
    free(raw);
    if (t && opts && opts->standardize) {
        if (!(opts->std > 0) && t->numel == 0) {
            nb_set_error(NB_ERR_SHAPE, "%s: '%s' holds no image to standardize with (give opts->mean and opts->std)", fn, path);
            goto fail;
        }
        if (!(opts->std > 0) && nb_mean_std(t, &opts->mean, &opts->std) != NB_OK) goto fail;
        if (opts->std == 0) opts->std = 1; /* constant images: centre only */
        if (nb_standardize(t, opts->mean, opts->std) != NB_OK) goto fail;
    }
    return t;
fail:
    nb_tensor_free(t);
    return NULL;
}

nb_tensor *nb_idx_load_labels(const char *path, int64_t num_classes) {
    static const char fn[] = "idx_load_labels";
    int64_t n;
    uint8_t *raw = idx_read(fn, path, IDX_LABELS, sizeof(int64_t), &n);
    if (!raw) return NULL;
    for (int64_t i = 0; num_classes > 0 && i < n; i++) {
        if (raw[i] >= num_classes) {
            nb_set_error(NB_ERR_FORMAT, "%s: '%s': label %d at index %lld is outside [0, %lld)", fn, path, raw[i],
                         (long long)i, (long long)num_classes);
            free(raw);
            return NULL;
        }
    }
    nb_tensor *t = nb_tensor_new(NB_I64, 1, &n);
    for (int64_t i = 0; t && i < n; i++) ((int64_t *)t->data)[i] = raw[i];
    free(raw);
    return t;
}

nb_status nb_idx_save_u8(const char *path, bool gzip, int ndim, const int64_t *dims, const uint8_t *data) {
    static const char fn[] = "idx_save_u8";
    if (!path || (ndim > 0 && !dims)) return nb_set_error(NB_ERR_NULL, "%s: NULL argument", fn);
    if (ndim < 1 || ndim > NB_MAX_DIMS) return nb_set_error(NB_ERR_SHAPE, "%s: %d dimensions", fn, ndim);
    uint8_t head[4 + 4 * NB_MAX_DIMS] = {0, 0, 0x08, (uint8_t)ndim};
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0 || dims[i] > 0xffffffffLL) return nb_set_error(NB_ERR_SHAPE, "%s: dim %d is %lld", fn, i, (long long)dims[i]);
        for (int k = 0; k < 4; k++) head[4 + 4 * i + k] = (uint8_t)(dims[i] >> (24 - 8 * k));
        n *= (uint64_t)dims[i];
    }
    if (n > 0 && !data) return nb_set_error(NB_ERR_NULL, "%s: data is NULL", fn);
    size_t hl = 4 + 4 * (size_t)ndim;
#ifdef NB_HAVE_ZLIB
    gzFile f = gzopen(path, gzip ? "wb" : "wbT");
    if (!f) return nb_set_error(NB_ERR_IO, "%s: cannot create '%s': %s", fn, path, strerror(errno));
    bool ok = gzwrite(f, head, (unsigned)hl) == (int)hl;
    for (uint64_t at = 0; ok && at < n;) {
        unsigned chunk = n - at > (1u << 30) ? (1u << 30) : (unsigned)(n - at);
        ok = gzwrite(f, data + at, chunk) == (int)chunk;
        at += chunk;
    }
    ok = gzclose(f) == Z_OK && ok;
#else
    if (gzip) return nb_set_error(NB_ERR_UNSUPPORTED, "%s: nabla was built without zlib", fn);
    FILE *f = fopen(path, "wb");
    if (!f) return nb_set_error(NB_ERR_IO, "%s: cannot create '%s': %s", fn, path, strerror(errno));
    bool ok = fwrite(head, 1, hl, f) == hl && fwrite(data, 1, n, f) == n;
    ok = fclose(f) == 0 && ok;
#endif
    return ok ? NB_OK : nb_set_error(NB_ERR_IO, "%s: write to '%s' failed", fn, path);
}

/* ---- Fashion-MNIST ------------------------------------------------------------------------- */
/* dir/name.gz, else dir/name; false (error set) when neither is readable. */
static bool find_file(const char *dir, const char *name, char *out, size_t len) {
    snprintf(out, len, "%s/%s.gz", dir, name);
    if (access(out, R_OK) == 0) return true;
    snprintf(out, len, "%s/%s", dir, name);
    if (access(out, R_OK) == 0) return true;
    nb_set_error(NB_ERR_IO,
                 "fashion_mnist_load: %s/%s.gz not found (install the Debian package dataset-fashion-mnist, "
                 "or pass the directory holding the files)",
                 dir, name);
    return false;
}

void nb_mnist_free(nb_mnist *m) {
    if (!m) return;
    nb_tensor_free(m->train_x), nb_tensor_free(m->train_y), nb_tensor_free(m->test_x), nb_tensor_free(m->test_y);
    *m = (nb_mnist){0};
}

nb_status nb_fashion_mnist_load(const char *dir, nb_image_opts *opts, nb_mnist *out) {
    if (!out) return nb_set_error(NB_ERR_NULL, "fashion_mnist_load: out is NULL");
    *out = (nb_mnist){0};
    if (!dir) dir = getenv("NABLA_FASHION_MNIST_DIR");
    if (!dir || !*dir) dir = NB_FASHION_MNIST_DIR;
    char p[4][4096];
    static const char *names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                                   "t10k-labels-idx1-ubyte"};
    for (int i = 0; i < 4; i++)
        if (!find_file(dir, names[i], p[i], sizeof p[i])) return nb_last_status();
    nb_image_opts o = opts ? *opts : (nb_image_opts){0};
    out->train_x = nb_idx_load_images(p[0], &o); /* computes mean/std when asked */
    out->train_y = out->train_x ? nb_idx_load_labels(p[1], 10) : NULL;
    out->test_x = out->train_y ? nb_idx_load_images(p[2], &o) : NULL;
    out->test_y = out->test_x ? nb_idx_load_labels(p[3], 10) : NULL;
    if (!out->test_y) {
        nb_status s = nb_last_status();
        nb_mnist_free(out);
        return s;
    }
    if (out->train_x->shape[0] != out->train_y->shape[0] || out->test_x->shape[0] != out->test_y->shape[0]) {
        nb_set_error(NB_ERR_FORMAT, "fashion_mnist_load: %lld/%lld train and %lld/%lld test images/labels",
                     (long long)out->train_x->shape[0], (long long)out->train_y->shape[0],
                     (long long)out->test_x->shape[0], (long long)out->test_y->shape[0]);
        nb_mnist_free(out);
        return NB_ERR_FORMAT;
    }
    if (opts) *opts = o;
    return NB_OK;
}
