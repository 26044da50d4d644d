/* safetensors: bit-exact round trips, an independent Python reader/writer, byte-level header
 * checks, parameter checkpoints, and hostile files. */
#include "common.h"
#include "tmpdir.h"

#include <dirent.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(safetensors, .init = tmpdir_setup, .fini = tmpdir_teardown);

static void assert_error(nb_status want, const char *needle) {
    cr_assert_eq(nb_last_status(), want, "status %s, expected %s (%s)", nb_status_name(nb_last_status()),
                 nb_status_name(want), nb_last_error());
    cr_assert(strstr(nb_last_error(), needle), "message '%s' lacks '%s'", nb_last_error(), needle);
}

/* Three tensors with awkward values: -0, inf, NaN with a payload, subnormals, big integers. */
static void make_tensors(nb_tensor *t[4]) {
    const uint32_t wbits[6] = {0x3f800000u, 0x80000000u, 0x7f800000u, 0x7fc12345u, 0x00000001u, 0xc2f6e979u};
    t[0] = nb_tensor_from(NB_F32, NB_SHAPE(2, 3), wbits);
    const double b[3] = {0.1, -1e-310, 1e300};
    t[1] = nb_tensor_from(NB_F64, NB_SHAPE(3), b);
    const int64_t s = -(((int64_t)1 << 40) + 3);
    t[2] = nb_tensor_from(NB_I64, 0, NULL, &s); /* a scalar: shape [] */
    t[3] = nb_tensor_new(NB_F32, NB_SHAPE(0, 4)); /* empty */
}

static const char *names4[4] = {"layer.weight", "layer.bias", "step", "empty"};

Test(safetensors, round_trip_bit_exact) {
    nb_tensor *t[4];
    make_tensors(t);
    const char *meta[] = {"epoch", "12", "note", "quote \" and \\ slash", NULL};
    cr_assert_eq(nb_safetensors_save(tmp("a.safetensors"), 4, names4, (const nb_tensor *const *)t, meta), NB_OK, "%s",
                 nb_last_error());
    nb_tensor_list *l = nb_safetensors_load(tmp("a.safetensors"));
    cr_assert_not_null(l, "%s", nb_last_error());
    cr_assert_eq(l->n, 4);
    for (int i = 0; i < 4; i++) {
        nb_tensor *u = nb_tensor_list_find(l, names4[i]);
        cr_assert_not_null(u, "%s missing", names4[i]);
        cr_assert_str_eq(l->names[i], names4[i], "tensors come back in file order");
        cr_assert_eq(u->dtype, t[i]->dtype);
        cr_assert(nb_same_shape(u, t[i]));
        cr_assert(u->persistent);
        cr_assert_eq(memcmp(u->data, t[i]->data, (size_t)t[i]->numel * nb_dtype_size(t[i]->dtype)), 0, "%s bits", names4[i]);
    }
    cr_assert_eq(l->nmeta, 2, "the checksum is not user metadata");
    cr_assert(l->checksummed);
    cr_assert_str_eq(nb_tensor_list_meta(l, "epoch"), "12");
    cr_assert_str_eq(nb_tensor_list_meta(l, "note"), "quote \" and \\ slash");
    cr_assert_null(nb_tensor_list_meta(l, "nope"));
    cr_assert_null(nb_tensor_list_find(l, "nope"));
    nb_tensor_list_free(l);
    for (int i = 0; i < 4; i++) nb_tensor_free(t[i]);
}

Test(safetensors, header_bytes) {
    const float v[2] = {1.5f, -2};
    nb_tensor *a = nb_tensor_from(NB_F32, NB_SHAPE(2), v);
    const char *name = "a";
    cr_assert_eq(nb_safetensors_save(tmp("h.safetensors"), 1, &name, (const nb_tensor *const *)&a,
                                     (const char *[]){"k", "v", NULL}),
                 NB_OK);
    size_t len;
    char *s = slurp(tmp("h.safetensors"), &len);
    /* the checksums come first: CRC-32 of the header with its digits zeroed, then of a's bytes */
    const char json[] = "{\"__metadata__\":{\"nabla.crc32\":\"################\",\"k\":\"v\"},"
                        "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    const size_t jl = strlen(json), hl = (jl + 7) / 8 * 8; /* padded with spaces to 8 bytes */
    uint64_t n = 0;
    for (int k = 0; k < 8; k++) n |= (uint64_t)(uint8_t)s[k] << (8 * k);
    cr_assert_eq(n, hl, "header length %llu, expected %zu", (unsigned long long)n, hl);
    cr_assert_eq(len, 8 + hl + 8);
    for (size_t k = 0; k < jl; k++)
        if (json[k] == '#') cr_assert(strchr("0123456789abcdef", s[8 + k]), "checksum digit %zu: %.*s", k, (int)hl, s + 8);
        else cr_assert_eq(s[8 + k], json[k], "header byte %zu: %.*s", k, (int)hl, s + 8);
    cr_assert_eq(memcmp(s + 8 + 32 + 8, "ccdf2c3a", 8), 0, "CRC-32 of a's bytes (Python: zlib.crc32)");
    for (size_t k = jl; k < hl; k++) cr_assert_eq(s[8 + k], ' ');
    const uint8_t data[8] = {0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0}; /* little-endian 1.5f, -2.0f */
    cr_assert_eq(memcmp(s + 8 + hl, data, 8), 0);
    free(s);
    nb_tensor_free(a);
}

/* Run the Python reader/writer when /usr/bin/python3 exists; returns false (test skipped) if not. */
static bool python(const char *mode, const char *file, const char *out) {
    if (access("/usr/bin/python3", X_OK) != 0) return false;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/ref/read_safetensors.py %s '%s' > '%s'", NB_SOURCE_DIR, mode,
             file, out);
    cr_assert_eq(system(cmd), 0, "python failed: %s", cmd);
    return true;
}

Test(safetensors, python_reader_agrees) {
    nb_tensor *t[4];
    make_tensors(t);
    cr_assert_eq(nb_safetensors_save(tmp("p.safetensors"), 4, names4, (const nb_tensor *const *)t,
                                     (const char *[]){"format", "pt", "epoch", "3", NULL}),
                 NB_OK);
    char file[256], out[256];
    snprintf(file, sizeof file, "%s", tmp("p.safetensors"));
    snprintf(out, sizeof out, "%s", tmp("p.txt"));
    if (!python("read", file, out)) cr_skip_test("no /usr/bin/python3");
    /* what the reader must print: values formatted with %.17g (same digits in C and Python) */
    char want[2048];
    int k = snprintf(want, sizeof want, "checksum ok\nmeta epoch 3\nmeta format pt\ntensor layer.weight F32 (2,3)");
    for (int i = 0; i < 6; i++) k += snprintf(want + k, sizeof want - k, " %.17g", nb_get(t[0], i));
    k += snprintf(want + k, sizeof want - k, "\ntensor layer.bias F64 (3)");
    for (int i = 0; i < 3; i++) k += snprintf(want + k, sizeof want - k, " %.17g", nb_get(t[1], i));
    k += snprintf(want + k, sizeof want - k, "\ntensor step I64 () %lld\ntensor empty F32 (0,4)\n",
                  (long long)((int64_t *)t[2]->data)[0]);
    char *got = slurp(out, NULL);
    cr_assert_str_eq(got, want);
    free(got);
    for (int i = 0; i < 4; i++) nb_tensor_free(t[i]);
}

Test(safetensors, reads_python_written_file) {
    char file[256], out[256];
    snprintf(file, sizeof file, "%s", tmp("py.safetensors"));
    snprintf(out, sizeof out, "%s", tmp("py.txt"));
    if (!python("write", file, out)) cr_skip_test("no /usr/bin/python3");
    nb_tensor_list *l = nb_safetensors_load(file);
    cr_assert_not_null(l, "%s", nb_last_error());
    cr_assert_eq(l->n, 3);
    cr_assert_str_eq(nb_tensor_list_meta(l, "source"), "python");
    const double w[6] = {0.5, -1.25, 3.0, (float)1e-3, 0x1p-20, -7.0};
    assert_values(nb_tensor_list_find(l, "w"), w, 6, 0);
    nb_tensor *b = nb_tensor_list_find(l, "b");
    cr_assert_eq(b->dtype, NB_F64);
    cr_assert_eq(((double *)b->data)[0], 0.1);
    cr_assert_eq(((double *)b->data)[2], 1e300);
    nb_tensor *s = nb_tensor_list_find(l, "steps");
    cr_assert_eq(s->ndim, 0);
    cr_assert_eq(((int64_t *)s->data)[0], -((int64_t)1 << 40) - 3);
    nb_tensor_list_free(l);
}

static nb_params *make_params(int64_t hidden) {
    nb_params *ps = nb_params_new();
    nb_tensor *w = nb_params_add(ps, "fc1.weight", NB_SHAPE(hidden, 5));
    nb_tensor *b = nb_params_add(ps, "fc1.bias", NB_SHAPE(hidden));
    for (int64_t i = 0; i < w->numel; i++) ((float *)w->data)[i] = (float)i / 7;
    for (int64_t i = 0; i < b->numel; i++) ((float *)b->data)[i] = -(float)i;
    return ps;
}

Test(safetensors, params_checkpoint) {
    nb_params *ps = make_params(4);
    cr_assert_eq(nb_safetensors_save_params(ps, tmp("m.safetensors"), (const char *[]){"epoch", "7", NULL}), NB_OK);
    nb_params *q = nb_params_new();
    nb_params_add(q, "fc1.bias", NB_SHAPE(4)); /* a different order is fine: by name */
    nb_params_add(q, "fc1.weight", NB_SHAPE(4, 5));
    cr_assert_eq(nb_safetensors_load_params(q, tmp("m.safetensors")), NB_OK, "%s", nb_last_error());
    for (int i = 0; i < 2; i++) {
        nb_tensor *a = ps->p[i], *b = nb_params_find(q, ps->names[i]);
        cr_assert_eq(memcmp(a->data, b->data, (size_t)a->numel * 4), 0);
    }
    /* shape mismatch: all or nothing */
    nb_params *r = make_params(3);
    float before[3 * 5 + 3 + 16];
    nb_params_save_to(r, before);
    cr_assert_eq(nb_safetensors_load_params(r, tmp("m.safetensors")), NB_ERR_FORMAT);
    assert_error(NB_ERR_FORMAT, "'fc1.weight': file has F32 (4,5), model has F32 (3,5)");
    cr_assert(strstr(nb_last_error(), "m.safetensors': 'fc1.weight"), "the message does not name the file: %s", nb_last_error());
    float after[3 * 5 + 3 + 16];
    nb_params_save_to(r, after);
    cr_assert_eq(memcmp(before, after, (size_t)r->total * 4), 0, "a failed load leaves the model alone");
    /* missing and unexpected names */
    nb_params *s = make_params(4);
    nb_params_add(s, "fc2.weight", NB_SHAPE(2, 2));
    cr_assert_eq(nb_safetensors_load_params(s, tmp("m.safetensors")), NB_ERR_FORMAT);
    assert_error(NB_ERR_FORMAT, "has no tensor 'fc2.weight'");
    nb_params *u = nb_params_new();
    nb_params_add(u, "fc1.weight", NB_SHAPE(4, 5));
    cr_assert_eq(nb_safetensors_load_params(u, tmp("m.safetensors")), NB_ERR_FORMAT);
    assert_error(NB_ERR_FORMAT, "has tensor 'fc1.bias' that the model does not have");
    /* dtype mismatch */
    nb_tensor *d[2] = {nb_tensor_new(NB_F64, NB_SHAPE(4, 5)), nb_tensor_new(NB_F32, NB_SHAPE(4))};
    cr_assert_eq(nb_safetensors_save(tmp("d.safetensors"), 2, (const char *[]){"fc1.weight", "fc1.bias"},
                                     (const nb_tensor *const *)d, NULL),
                 NB_OK);
    cr_assert_eq(nb_safetensors_load_params(q, tmp("d.safetensors")), NB_ERR_FORMAT);
    assert_error(NB_ERR_FORMAT, "file has F64 (4,5), model has F32 (4,5)");
    nb_tensor_free(d[0]), nb_tensor_free(d[1]);
    nb_params_free(ps), nb_params_free(q), nb_params_free(r), nb_params_free(s), nb_params_free(u);
}

Test(safetensors, atomic_write_and_save_errors) {
    nb_tensor *t[4];
    make_tensors(t);
    /* overwrite an existing file: the new content wins, no temporary file is left */
    cr_assert_eq(nb_safetensors_save(tmp("x.safetensors"), 4, names4, (const nb_tensor *const *)t, NULL), NB_OK);
    cr_assert_eq(nb_safetensors_save(tmp("x.safetensors"), 1, names4 + 1, (const nb_tensor *const *)t + 1, NULL), NB_OK);
    nb_tensor_list *l = nb_safetensors_load(tmp("x.safetensors"));
    cr_assert_eq(l->n, 1);
    nb_tensor_list_free(l);
    DIR *dd = opendir(dir);
    int files = 0;
    for (struct dirent *e; (e = readdir(dd));) files += e->d_name[0] != '.';
    closedir(dd);
    cr_assert_eq(files, 1, "only the checkpoint remains");
    /* a non-contiguous step tensor is written by value */
    nb_tensor *m = nb_tensor_from(NB_F32, NB_SHAPE(2, 2), (float[]){1, 2, 3, 4});
    nb_ctx *c = nb_ctx_new();
    nb_tensor *mt = nb_transpose(c, m, 0, 1);
    const char *nm = "mt";
    cr_assert_eq(nb_safetensors_save(tmp("t.safetensors"), 1, &nm, (const nb_tensor *const *)&mt, NULL), NB_OK);
    l = nb_safetensors_load(tmp("t.safetensors"));
    const double want[4] = {1, 3, 2, 4};
    assert_values(l->tensors[0], want, 4, 0);
    nb_tensor_list_free(l);
    nb_ctx_free(c), nb_tensor_free(m);
    /* errors */
    cr_assert_eq(nb_safetensors_save("/nonexistent-dir/x.safetensors", 1, names4, (const nb_tensor *const *)t, NULL), NB_ERR_IO);
    assert_error(NB_ERR_IO, "cannot create the temporary file");
    const char *dup[2] = {"w", "w"};
    cr_assert_eq(nb_safetensors_save(tmp("y"), 2, dup, (const nb_tensor *const *)t, NULL), NB_ERR_VALUE);
    assert_error(NB_ERR_VALUE, "two tensors are named 'w'");
    const char *res = "__metadata__";
    cr_assert_eq(nb_safetensors_save(tmp("y"), 1, &res, (const nb_tensor *const *)t, NULL), NB_ERR_VALUE);
    cr_assert_eq(nb_safetensors_save(tmp("y"), 1, names4, (const nb_tensor *const *)t, (const char *[]){"a", "1", "a", "2", NULL}),
                 NB_ERR_VALUE);
    assert_error(NB_ERR_VALUE, "metadata key 'a' given twice");
    cr_assert_neq(access(tmp("y"), F_OK), 0, "nothing written on error");
    for (int i = 0; i < 4; i++) nb_tensor_free(t[i]);
}

/* Saving through a symbolic link replaces the file it points to (the link was replaced by a
 * regular file, the target left stale), a file keeps its permissions, and a name of 252-255
 * bytes is saved (its temporary name was over NAME_MAX). */
Test(safetensors, save_keeps_links_modes_and_long_names) {
    nb_tensor *t[4];
    make_tensors(t);
    const nb_tensor *const *tt = (const nb_tensor *const *)t;
    cr_assert_eq(nb_safetensors_save(tmp("run42.st"), 4, names4, tt, NULL), NB_OK);
    cr_assert_eq(symlink("run42.st", tmp("latest.st")), 0);
    cr_assert_eq(chmod(tmp("run42.st"), 0600), 0);
    cr_assert_eq(nb_safetensors_save(tmp("latest.st"), 1, names4, tt, NULL), NB_OK, "%s", nb_last_error());
    struct stat st;
    cr_assert_eq(lstat(tmp("latest.st"), &st), 0);
    cr_assert(S_ISLNK(st.st_mode), "the link was replaced by a file");
    cr_assert_eq(stat(tmp("run42.st"), &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0600, "mode %o", st.st_mode & 07777);
    nb_tensor_list *l = nb_safetensors_load(tmp("run42.st"));
    cr_assert(l && l->n == 1, "the target was not rewritten");
    nb_tensor_list_free(l);
    for (int len = 250; len <= 255; len++) {
        char name[256], p[sizeof dir + 260];
        memset(name, 'a', (size_t)len);
        name[len] = 0;
        snprintf(p, sizeof p, "%s/%s", dir, name); /* tmp() holds shorter paths */
        cr_assert_eq(nb_safetensors_save(p, 1, names4, tt, NULL), NB_OK, "%d bytes: %s", len, nb_last_error());
        l = nb_safetensors_load(p);
        cr_assert_not_null(l, "%s", nb_last_error());
        nb_tensor_list_free(l);
        remove(p);
    }
    for (int i = 0; i < 4; i++) nb_tensor_free(t[i]);
}

/* One damaged byte in the checksum entry's key made a nabla file read as a foreign file without
 * checksums (so damage elsewhere loaded silently): every flip of the entry is caught. */
Test(safetensors, a_damaged_checksum_key_is_damage) {
    nb_tensor *t[4];
    make_tensors(t);
    cr_assert_eq(nb_safetensors_save(tmp("k.st"), 4, names4, (const nb_tensor *const *)t, NULL), NB_OK);
    size_t n;
    char *orig = slurp(tmp("k.st"), &n);
    const size_t key = 8 + strlen("{\"__metadata__\":{\""), keylen = strlen("nabla.crc32");
    cr_assert_eq(memcmp(orig + key, "nabla.crc32", keylen), 0);
    for (size_t byte = 8; byte < key + keylen + 3; byte++)
        for (int bit = 0; bit < 8; bit++) {
            orig[byte] ^= (char)(1 << bit);
            FILE *f = fopen(tmp("k2.st"), "wb");
            cr_assert_eq(fwrite(orig, 1, n, f), n);
            fclose(f);
            orig[byte] ^= (char)(1 << bit);
            nb_tensor_list *l = nb_safetensors_load(tmp("k2.st"));
            cr_assert_null(l, "byte %zu bit %d: loaded (as a file without checksums?)", byte, bit);
            cr_assert_eq(nb_last_status(), NB_ERR_FORMAT, "byte %zu bit %d: %s", byte, bit, nb_last_error());
        }
    free(orig);
    for (int i = 0; i < 4; i++) nb_tensor_free(t[i]);
}

/* ---- hostile files ----------------------------------------------------------------------------- */
/* Write 8-byte length (hlen_override, or the JSON's length) + json + ndata bytes of data. */
static const char *write_hostile(const char *json, uint64_t hlen_override, size_t ndata) {
    const char *p = tmp("bad.safetensors");
    FILE *f = fopen(p, "wb");
    uint64_t n = hlen_override ? hlen_override : strlen(json);
    for (int k = 0; k < 8; k++) fputc((int)(n >> (8 * k)) & 0xff, f);
    fputs(json, f);
    for (size_t i = 0; i < ndata; i++) fputc((int)i, f);
    fclose(f);
    return p;
}

typedef struct {
    const char *json;
    size_t ndata;
    const char *message;
} hostile_case;

static const hostile_case cases[] = {
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]", 8, "not valid JSON"},
    {"[1,2,3]", 0, "not a JSON object"},
    {"{} x", 0, "unexpected bytes after the JSON header"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
     8, "key 'a' twice"},
    {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "has key 'dtype' twice"},
    {"{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "unsupported dtype 'BF16'"},
    {"{\"a\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "no dtype string"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16, "= 8 bytes but its data_offsets span 16"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 8, "beyond the 8 data bytes"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
     12, "overlapping tensors"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
     12, "gap between tensors"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12, "tensors cover 8 of the 12 data bytes"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "end before begin"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
     "shape of 'a' overflows"},
    /* empty, but its strides would overflow (it was reported as out of memory) */
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[0,4503599627370496,4503599627370496],\"data_offsets\":[0,0]}}", 0,
     "shape of 'a' overflows"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,8]}}", 8, "not an integer in [0, 2^53)"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "not an integer in [0, 2^53)"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, "not an integer in [0, 2^53)"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, "not an integer in [0, 2^53)"},
    /* numbers that parse to integers but are not written as integers, and a header that does
     * not begin with '{' (the reference implementation refuses each) */
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, "not written as a plain integer"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8E0]}}", 8, "not written as a plain integer"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-0,8]}}", 8, "not written as a plain integer"},
    {" {\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "does not begin with '{'"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,18446744073709551616]}}", 8, "needs data_offsets"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "needs data_offsets"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "9 dimensions"},
    {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "no shape array"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":1}}", 4, "unknown key 'extra'"},
    {"{\"a\":[1]}", 0, "entry 'a' is not an object"},
    {"{\"__metadata__\":{\"k\":1}}", 0, "value of 'k' is not a string"},
    {"{\"__metadata__\":[\"k\"]}", 0, "__metadata__ is not an object"},
    {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "has key 'k' twice"},
    /* libcjson decodes \u0000 to a NUL that would cut the name short: "a" instead of "a\0b" */
    {"{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "\\u0000 escape"},
    {"{\"__metadata__\":{\"k\":\"x\\u0000y\"}}", 0, "\\u0000 escape"},
    /* nabla's checksum: anywhere but first, malformed, or not matching */
    {"{\"__metadata__\":{\"k\":\"v\",\"nabla.crc32\":\"00000000\"}}", 0, "checksum is not at the start"},
    {"{\"__metadata__\":{\"nabla.crc32\":\"0000\"}}", 0, "does not have 8 digits for 0 tensors"},
    {"{\"__metadata__\":{\"nabla.crc32\":\"0000000g\"}}", 0, "checksum holds 'g'"},
    {"{\"__metadata__\":{\"nabla.crc32\":\"12345678\"}}", 0, "the header (names, shapes, metadata) does not match"},
};

Test(safetensors, hostile_headers) {
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nb_clear_last_error();
        nb_tensor_list *l = nb_safetensors_load(write_hostile(cases[i].json, 0, cases[i].ndata));
        cr_assert_null(l, "case %zu (%s) was accepted", i, cases[i].json);
        cr_assert_eq(nb_last_status(), NB_ERR_FORMAT, "case %zu: %s", i, nb_last_error());
        cr_assert(strstr(nb_last_error(), cases[i].message), "case %zu: message '%s' lacks '%s'", i, nb_last_error(),
                  cases[i].message);
    }
    /* the same entries, well-formed, are accepted (so the cases fail for the stated reason) */
    nb_tensor_list *l = nb_safetensors_load(
        write_hostile("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}  ", 0, 8));
    cr_assert_not_null(l, "%s", nb_last_error());
    nb_tensor_list_free(l);
    l = nb_safetensors_load(write_hostile("{\"a\\\\u0000\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 4));
    cr_assert_not_null(l, "an escaped backslash before u0000 is not a NUL: %s", nb_last_error());
    cr_assert_str_eq(l->names[0], "a\\u0000");
    nb_tensor_list_free(l);
    l = nb_safetensors_load(write_hostile("{}", 0, 0)); /* no tensors at all */
    cr_assert_not_null(l, "%s", nb_last_error());
    cr_assert_eq(l->n, 0);
    nb_tensor_list_free(l);
}

Test(safetensors, hostile_lengths) {
    /* shorter than the length field */
    FILE *f = fopen(tmp("short"), "wb");
    fputs("abc", f);
    fclose(f);
    cr_assert_null(nb_safetensors_load(tmp("short")));
    assert_error(NB_ERR_FORMAT, "too short (3 bytes)");
    /* header length beyond the file, including one that would wrap around */
    cr_assert_null(nb_safetensors_load(write_hostile("{}", 1000, 0)));
    assert_error(NB_ERR_FORMAT, "header length 1000 exceeds the file size 10");
    cr_assert_null(nb_safetensors_load(write_hostile("{}", UINT64_MAX, 0)));
    assert_error(NB_ERR_FORMAT, "exceeds the file size");
    /* over the 100 MB cap inside a (sparse) file that is large enough: refused before reading */
    const char *p = write_hostile("{}", (100u << 20) + 1, 0);
    cr_assert_eq(truncate(p, (200 << 20)), 0);
    cr_assert_null(nb_safetensors_load(p));
    assert_error(NB_ERR_FORMAT, "over the 104857600-byte limit");
    cr_assert_null(nb_safetensors_load(tmp("missing")));
    assert_error(NB_ERR_IO, "cannot open");
    cr_assert_null(nb_safetensors_load(dir));
    assert_error(NB_ERR_IO, "not a regular file");
}

/* A model's file is its state dict: parameters and buffers (batch norm's running statistics),
 * so a reloaded model evaluates as the saved one; a file without the buffers does not load. */
Test(safetensors, params_file_holds_the_buffers) {
    nb_model *a = nb_model_new(1), *b = nb_model_new(2);
    nb_module *na = nb_batch_norm_module(a, (nb_batch_norm_opts){.channels = 3, .name = "bn"});
    nb_module *nb = nb_batch_norm_module(b, (nb_batch_norm_opts){.channels = 3, .name = "bn"});
    cr_assert(na && nb);
    nb_fill(na->buffers[0], 0.25), nb_fill(na->buffers[1], 4.0), nb_fill(na->params[0], 2.0);
    cr_assert_eq(nb_safetensors_save_params(a->ps, tmp("bn.safetensors"), NULL), NB_OK, "%s", nb_last_error());
    nb_tensor_list *l = nb_safetensors_load(tmp("bn.safetensors"));
    cr_assert(l && l->n == 4, "weight, bias, running_mean, running_var");
    cr_assert_not_null(nb_tensor_list_find(l, "bn.running_var"));
    nb_tensor_list_free(l);
    cr_assert_eq(nb_safetensors_load_params(b->ps, tmp("bn.safetensors")), NB_OK, "%s", nb_last_error());
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(nb_get(nb->buffers[0], i), 0.25);
        cr_assert_eq(nb_get(nb->buffers[1], i), 4.0);
        cr_assert_eq(nb_get(nb->params[0], i), 2.0);
    }
    /* parameters alone (an older file) are refused, naming the missing buffer */
    cr_assert_eq(nb_safetensors_save(tmp("w.safetensors"), a->ps->n, (const char *const *)a->ps->names,
                                     (const nb_tensor *const *)a->ps->p, NULL), NB_OK);
    cr_assert_eq(nb_safetensors_load_params(b->ps, tmp("w.safetensors")), NB_ERR_FORMAT);
    assert_error(NB_ERR_FORMAT, "has no tensor 'bn.running_mean'");
    nb_model_free(a), nb_model_free(b);
}
