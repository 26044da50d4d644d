/* safetensors reader and atomic writer, and parameter checkpoints on top of them. */
#include "../internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef NB_HAVE_CJSON
#include <cjson/cJSON.h>
#endif

#define ST_MAX_HEADER (100u << 20) /* the reference implementation's cap */
#define ST_META "__metadata__"
/* Checksums: the header starts with exactly ST_CRC_PREFIX, followed by 8 hex digits of the
 * CRC-32 of the file's first 8 + L bytes with those digits (all of them) written as '0', then 8
 * per tensor, in data order, of each tensor's bytes. The file stays plain safetensors (a string
 * in __metadata__), and a damaged file names the part that changed. */
#define ST_CRC_KEY "nabla.crc32"
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define ST_CRC_ENFORCED false /* fuzzers must get past the checksums to reach the parser behind them */
#else
#define ST_CRC_ENFORCED true
#endif
#define ST_CRC_PREFIX "{\"" ST_META "\":{\"" ST_CRC_KEY "\":\""

#ifdef NB_HAVE_ZLIB
#include <zlib.h>
static uint32_t crc32_update(uint32_t crc, const void *p, size_t n) {
    const Bytef *b = p;
    while (n > 0) { /* zlib counts in uInt */
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, b, k);
        b += k, n -= k;
    }
    return crc;
}
#else
/* zlib's CRC-32 (reflected 0xEDB88320), so files agree whichever way nabla was built */
static uint32_t crc32_update(uint32_t crc, const void *p, size_t n) {
    static uint32_t table[256];
    static _Atomic int ready;
    if (!ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    const uint8_t *b = p;
    crc = ~crc;
    while (n--) crc = table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
    return ~crc;
}
#endif

void nb_tensor_list_free(nb_tensor_list *l) {
    if (!l) return;
    for (int i = 0; i < l->n; i++) {
        free(l->names ? l->names[i] : NULL);
        nb_tensor_free(l->tensors ? l->tensors[i] : NULL);
    }
    for (int i = 0; i < l->nmeta; i++) {
        free(l->meta_keys[i]);
        free(l->meta_values[i]);
    }
    free(l->names), free(l->tensors), free(l->meta_keys), free(l->meta_values);
    free(l);
}

nb_tensor *nb_tensor_list_find(const nb_tensor_list *l, const char *name) {
    for (int i = 0; l && name && i < l->n; i++)
        if (strcmp(l->names[i], name) == 0) return l->tensors[i];
    return NULL;
}

const char *nb_tensor_list_meta(const nb_tensor_list *l, const char *key) {
    for (int i = 0; l && key && i < l->nmeta; i++)
        if (strcmp(l->meta_keys[i], key) == 0) return l->meta_values[i];
    return NULL;
}

static bool little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

static const char *st_dtype_name(nb_dtype dt) { return dt == NB_F32 ? "F32" : dt == NB_F64 ? "F64" : "I64"; }

#ifdef NB_HAVE_CJSON
/* ---- writing ----------------------------------------------------------------------------------- */
static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Index of a string that occurs twice in s[0..n), or -1. */
static int find_duplicate(const char **s, int n) {
    if (n < 2) return -1;
    const char **sorted = malloc((size_t)n * sizeof *sorted);
    if (!sorted) return -1;
    memcpy(sorted, s, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_str);
    int dup = -1;
    for (int i = 1; i < n && dup < 0; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0)
            for (int k = 0; k < n; k++)
                if (strcmp(s[k], sorted[i]) == 0) {
                    dup = k;
                    break;
                }
    free(sorted);
    return dup;
}

static char *make_header(int n, const char *const *names, const nb_tensor *const *ts, const char *const *meta,
                         size_t *len) {
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;
    /* the checksum placeholder comes first, so it sits right after ST_CRC_PREFIX */
    char *zeros = calloc(8 * ((size_t)n + 1) + 1, 1);
    if (zeros) memset(zeros, '0', 8 * ((size_t)n + 1));
    cJSON *m = ok && zeros ? cJSON_AddObjectToObject(root, ST_META) : NULL;
    ok = m && cJSON_AddStringToObject(m, ST_CRC_KEY, zeros);
    free(zeros);
    for (int i = 0; ok && meta && meta[i]; i += 2) ok = cJSON_AddStringToObject(m, meta[i], meta[i + 1]) != NULL;
    uint64_t off = 0;
    for (int i = 0; ok && i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(root, names[i]);
        cJSON *shape = e && cJSON_AddStringToObject(e, "dtype", st_dtype_name(ts[i]->dtype))
                           ? cJSON_AddArrayToObject(e, "shape") : NULL;
        cJSON *offs = shape ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
        ok = offs != NULL;
        for (int d = 0; ok && d < ts[i]->ndim; d++)
            ok = cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)ts[i]->shape[d]));
        uint64_t end = off + (uint64_t)ts[i]->numel * nb_dtype_size(ts[i]->dtype);
        ok = ok && cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off)) &&
             cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)end));
        off = end;
    }
    char *json = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!json) return NULL;
    /* pad with spaces so that the data starts 8-byte aligned, as the reference writer does */
    size_t l = strlen(json), padded = (l + 7) & ~(size_t)7;
    char *h = realloc(json, padded + 1);
    if (!h) {
        free(json);
        return NULL;
    }
    memset(h + l, ' ', padded - l);
    h[padded] = 0;
    *len = padded;
    return h;
}

/* write t's bytes and return their CRC in *crc */
static bool write_tensor(FILE *f, const nb_tensor *t, uint32_t *crc) {
    const size_t bytes = (size_t)t->numel * nb_dtype_size(t->dtype);
    *crc = 0;
    if (bytes == 0) return true;
    if (nb_is_contiguous(t)) return *crc = crc32_update(0, t->data, bytes), fwrite(t->data, 1, bytes, f) == bytes;
    nb_tensor *c = nb_tensor_clone(t);
    bool ok = c && fwrite(c->data, 1, bytes, f) == bytes;
    if (c) *crc = crc32_update(0, c->data, bytes);
    nb_tensor_free(c);
    return ok;
}

static void put_hex(char *dst, uint32_t v) {
    static const char hex[] = "0123456789abcdef";
    for (int k = 0; k < 8; k++) dst[k] = hex[(v >> (28 - 4 * k)) & 0xf];
}

/* The file a save replaces, malloc'd: path itself, or the file a symbolic link at path points
 * to (the link stays a link, as when a program rewrites a file through it); a dangling link is
 * replaced. */
static char *save_target(const char *path) {
    struct stat st;
    char *real = lstat(path, &st) == 0 && S_ISLNK(st.st_mode) ? realpath(path, NULL) : NULL;
    return real ? real : strdup(path);
}

/* Its temporary file: dest + ".tmp" in the same directory (so the rename is atomic), the file
 * name cut to keep within NAME_MAX. malloc'd. */
static char *tmp_name(const char *dest) {
    const size_t n = strlen(dest);
    const char *slash = strrchr(dest, '/');
    const size_t base = n - (size_t)(slash ? slash + 1 - dest : 0), keep = base > NAME_MAX - 4 ? NAME_MAX - 4 : base;
    char *t = malloc(n + 5);
    if (t) snprintf(t, n + 5, "%.*s.tmp", (int)(n - base + keep), dest);
    return t;
}

/* Open (creating) the temporary file of `path` and lock it. The name is fixed, path + ".tmp",
 * so the leftover of a save killed mid-way is reused, not accumulated; the lock serialises
 * concurrent saves to one path (a killed holder releases it). Returns the fd or -1 (errno). */
static int open_locked_tmp(const char *tmp) {
    for (int tries = 0; tries < 100; tries++) {
        int fd = open(tmp, O_WRONLY | O_CREAT | O_CLOEXEC, 0666); /* the umask applies, as to fopen */
        if (fd < 0) return -1;
        if (flock(fd, LOCK_EX) != 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        /* the previous holder may have renamed this very inode into place: use it only if
         * the name still refers to it */
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(tmp, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
            if (ftruncate(fd, 0) == 0) return fd;
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        close(fd);
    }
    errno = EAGAIN;
    return -1;
}

nb_status nb_safetensors_save(const char *path, int n, const char *const *names, const nb_tensor *const *tensors,
                              const char *const *meta) {
    static const char fn[] = "safetensors_save";
    if (!path || n < 0 || (n > 0 && (!names || !tensors))) return nb_set_error(NB_ERR_NULL, "%s: NULL argument", fn);
    if (!little_endian()) return nb_set_error(NB_ERR_UNSUPPORTED, "%s: big-endian hosts are not supported", fn);
    for (int i = 0; i < n; i++) {
        if (!names[i] || !tensors[i]) return nb_set_error(NB_ERR_NULL, "%s: name or tensor %d is NULL", fn, i);
        if (strcmp(names[i], ST_META) == 0) return nb_set_error(NB_ERR_VALUE, "%s: '%s' is a reserved name", fn, ST_META);
        if (!nb__size(tensors[i]->ndim, tensors[i]->shape, nb_dtype_size(tensors[i]->dtype), NULL, NULL))
            return nb_set_error(NB_ERR_SHAPE, "%s: '%s' has an invalid shape", fn, names[i]);
        if ((unsigned)tensors[i]->dtype > NB_I64) return nb_set_error(NB_ERR_DTYPE, "%s: '%s' has an unknown dtype", fn, names[i]);
    }
    int nm = 0;
    for (; meta && meta[nm]; nm += 2) {
        if (!meta[nm + 1]) return nb_set_error(NB_ERR_NULL, "%s: metadata key '%s' has no value", fn, meta[nm]);
        if (strcmp(meta[nm], ST_CRC_KEY) == 0)
            return nb_set_error(NB_ERR_VALUE, "%s: metadata key '%s' is reserved for the checksum", fn, ST_CRC_KEY);
    }
    int dup = find_duplicate((const char **)names, n);
    if (dup >= 0) return nb_set_error(NB_ERR_VALUE, "%s: two tensors are named '%s'", fn, names[dup]);
    const char **mk = malloc((size_t)(nm / 2 + 1) * sizeof *mk);
    if (!mk) return nb_set_error(NB_ERR_NOMEM, "%s: out of memory", fn);
    for (int i = 0; i < nm / 2; i++) mk[i] = meta[2 * i];
    dup = find_duplicate(mk, nm / 2);
    free(mk);
    if (dup >= 0) return nb_set_error(NB_ERR_VALUE, "%s: metadata key '%s' given twice", fn, meta[2 * dup]);

    size_t hlen;
    char *header = make_header(n, names, tensors, meta, &hlen);
    if (!header) return nb_set_error(NB_ERR_NOMEM, "%s: cannot build the JSON header", fn);
    const size_t pre = strlen(ST_CRC_PREFIX);
    if (hlen < pre + 8 || memcmp(header, ST_CRC_PREFIX, pre) != 0) {
        free(header);
        return nb_set_error(NB_ERR_UNSUPPORTED, "%s: libcjson did not write the checksum first", fn);
    }
    char *dest = save_target(path), *tmp = dest ? tmp_name(dest) : NULL;
    uint32_t *crcs = malloc(((size_t)n + 1) * sizeof *crcs);
    char *hex = malloc(8 * ((size_t)n + 1));
    if (!dest || !tmp || !crcs || !hex) {
        free(header), free(dest), free(tmp), free(crcs), free(hex);
        return nb_set_error(NB_ERR_NOMEM, "%s: out of memory", fn);
    }
    int fd = open_locked_tmp(tmp);
    if (fd < 0) {
        nb_set_error(NB_ERR_IO, "%s: cannot create the temporary file '%s': %s", fn, tmp, strerror(errno));
        free(header), free(dest), free(tmp), free(crcs), free(hex);
        return NB_ERR_IO;
    }
    struct stat old;
    if (stat(dest, &old) == 0 && S_ISREG(old.st_mode)) fchmod(fd, old.st_mode & 07777); /* the file keeps its mode */
    FILE *f = fdopen(fd, "wb");
    uint8_t len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (uint8_t)((uint64_t)hlen >> (8 * k));
    crcs[0] = crc32_update(crc32_update(0, len8, 8), header, hlen);
    bool ok = f && fwrite(len8, 1, 8, f) == 8 && fwrite(header, 1, hlen, f) == hlen;
    for (int i = 0; ok && i < n; i++) ok = write_tensor(f, tensors[i], &crcs[i + 1]);
    for (int i = 0; ok && i <= n; i++) put_hex(hex + 8 * i, crcs[i]); /* computed only when all was written */
    ok = ok && fseeko(f, (off_t)(8 + pre), SEEK_SET) == 0 && fwrite(hex, 1, 8 * ((size_t)n + 1), f) == 8 * ((size_t)n + 1);
    ok = ok && fflush(f) == 0 && fsync(fd) == 0;
    int err = errno;
    /* rename while still holding the lock, so no other save can touch the file meanwhile */
    if (ok && rename(tmp, dest) != 0) ok = false, err = errno;
    if (!ok) unlink(tmp);
    if (f) ok = fclose(f) == 0 && ok;
    else close(fd);
    if (ok) { /* make the rename itself durable */
        int dfd = open(dirname(tmp), O_RDONLY | O_DIRECTORY); /* tmp is not needed any more */
        if (dfd >= 0) fsync(dfd), close(dfd);
    } else {
        nb_set_error(NB_ERR_IO, "%s: writing '%s' failed: %s", fn, path, strerror(err));
    }
    free(header), free(dest), free(tmp), free(crcs), free(hex);
    return ok ? NB_OK : NB_ERR_IO;
}

/* ---- reading ---------------------------------------------------------------------------------- */
typedef struct {
    const char *name;
    nb_dtype dtype;
    int ndim;
    int64_t shape[NB_MAX_DIMS], numel;
    uint64_t begin, end;
} st_entry;

/* A JSON number that is an exact non-negative integer below 2^53 (cJSON keeps doubles and
 * saturates valueint, so the check is ours). */
static bool json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return false;
    double v = j->valuedouble;
    if (!(v >= 0) || v >= 9007199254740992.0 || v != floor(v)) return false;
    *out = (uint64_t)v;
    return true;
}

static int cmp_entry(const void *a, const void *b) {
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* Names of an object's members, for the duplicate check. NULL (error set) on failure. */
static const char *object_duplicate(const cJSON *obj, bool *nomem) {
    int n = cJSON_GetArraySize(obj), i = 0;
    *nomem = false;
    if (n < 2) return NULL;
    const char **k = malloc((size_t)n * sizeof *k);
    if (!k) return *nomem = true, NULL;
    for (const cJSON *c = obj->child; c; c = c->next) k[i++] = c->string;
    int d = find_duplicate(k, n);
    const char *name = d >= 0 ? k[d] : NULL;
    free(k);
    return name;
}

#define BAD(...) (nb_set_error(NB_ERR_FORMAT, __VA_ARGS__), false)

static bool parse_entry(const char *fn, const char *path, const cJSON *e, st_entry *out) {
    const char *name = e->string;
    bool nomem;
    if (!cJSON_IsObject(e)) return BAD("%s: '%s': entry '%s' is not an object", fn, path, name);
    const char *dup = object_duplicate(e, &nomem);
    if (dup) return BAD("%s: '%s': entry '%s' has key '%s' twice", fn, path, name, dup);
    const cJSON *dt = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *c = e->child; c; c = c->next) {
        if (strcmp(c->string, "dtype") == 0) dt = c;
        else if (strcmp(c->string, "shape") == 0) shape = c;
        else if (strcmp(c->string, "data_offsets") == 0) offs = c;
        else return BAD("%s: '%s': entry '%s' has unknown key '%s'", fn, path, name, c->string);
    }
    if (!cJSON_IsString(dt)) return BAD("%s: '%s': entry '%s' has no dtype string", fn, path, name);
    const char *d = dt->valuestring;
    if (strcmp(d, "F32") == 0) out->dtype = NB_F32;
    else if (strcmp(d, "F64") == 0) out->dtype = NB_F64;
    else if (strcmp(d, "I64") == 0) out->dtype = NB_I64;
    else return BAD("%s: '%s': '%s' has unsupported dtype '%.32s' (nabla reads F32, F64, I64)", fn, path, name, d);
    if (!cJSON_IsArray(shape)) return BAD("%s: '%s': '%s' has no shape array", fn, path, name);
    int nd = cJSON_GetArraySize(shape);
    if (nd > NB_MAX_DIMS) return BAD("%s: '%s': '%s' has %d dimensions (at most %d)", fn, path, name, nd, NB_MAX_DIMS);
    out->name = name;
    out->ndim = nd;
    out->numel = 1;
    uint64_t span = 1; /* the product of the nonzero sizes: a tensor's strides, even when it is empty */
    int i = 0;
    for (const cJSON *c = shape->child; c; c = c->next, i++) {
        uint64_t v;
        if (!json_uint(c, &v)) return BAD("%s: '%s': '%s' has a shape entry that is not an integer in [0, 2^53)", fn, path, name);
        out->shape[i] = (int64_t)v;
        if (v && span > (uint64_t)INT64_MAX / 8 / v) return BAD("%s: '%s': shape of '%s' overflows", fn, path, name);
        span *= v ? v : 1;
        out->numel *= (int64_t)v;
    }
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !json_uint(offs->child, &out->begin) ||
        !json_uint(offs->child->next, &out->end))
        return BAD("%s: '%s': '%s' needs data_offsets [begin, end] of integers", fn, path, name);
    if (out->end < out->begin) return BAD("%s: '%s': '%s' has data_offsets [%llu, %llu] (end before begin)", fn, path,
                                          name, (unsigned long long)out->begin, (unsigned long long)out->end);
    uint64_t need = (uint64_t)out->numel * nb_dtype_size(out->dtype);
    if (out->end - out->begin != need) {
        char b[128];
        return BAD("%s: '%s': '%s' is %s %s = %llu bytes but its data_offsets span %llu", fn, path, name, d,
                   nb__dims_str(nd, out->shape, b, sizeof b), (unsigned long long)need,
                   (unsigned long long)(out->end - out->begin));
    }
    return true;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Fill l from the parsed header; the tensors' data is read afterwards. */
static bool parse_header(const char *fn, const char *path, const cJSON *root, uint64_t data_size, nb_tensor_list *l,
                         st_entry **entries_out, int *n_out) {
    bool nomem;
    if (!cJSON_IsObject(root)) return BAD("%s: '%s': the header is not a JSON object", fn, path);
    const char *dup = object_duplicate(root, &nomem);
    if (dup) return BAD("%s: '%s': the header has key '%s' twice", fn, path, dup);
    if (nomem) return nb_set_error(NB_ERR_NOMEM, "%s: out of memory", fn), false;
    int total = cJSON_GetArraySize(root), n = 0;
    const cJSON *meta = NULL;
    for (const cJSON *c = root->child; c; c = c->next)
        if (strcmp(c->string, ST_META) == 0) meta = c;
    n = total - (meta != NULL);
    *n_out = n;
    st_entry *es = calloc((size_t)(n ? n : 1), sizeof *es);
    *entries_out = es;
    l->names = calloc((size_t)(n ? n : 1), sizeof *l->names);
    l->tensors = calloc((size_t)(n ? n : 1), sizeof *l->tensors);
    if (!es || !l->names || !l->tensors) return nb_set_error(NB_ERR_NOMEM, "%s: out of memory", fn), false;
    if (meta) {
        if (!cJSON_IsObject(meta)) return BAD("%s: '%s': %s is not an object", fn, path, ST_META);
        dup = object_duplicate(meta, &nomem);
        if (dup) return BAD("%s: '%s': %s has key '%s' twice", fn, path, ST_META, dup);
        int nm = cJSON_GetArraySize(meta);
        l->meta_keys = calloc((size_t)(nm ? nm : 1), sizeof *l->meta_keys);
        l->meta_values = calloc((size_t)(nm ? nm : 1), sizeof *l->meta_values);
        if (!l->meta_keys || !l->meta_values) return nb_set_error(NB_ERR_NOMEM, "%s: out of memory", fn), false;
        for (const cJSON *c = meta->child; c; c = c->next) {
            if (!cJSON_IsString(c)) return BAD("%s: '%s': %s value of '%s' is not a string", fn, path, ST_META, c->string);
            if (strcmp(c->string, ST_CRC_KEY) == 0) { /* verified by the caller, not user metadata */
                l->checksummed = true;
                continue;
            }
            int i = l->nmeta++;
            l->meta_keys[i] = dup_str(c->string);
            l->meta_values[i] = dup_str(c->valuestring);
            if (!l->meta_keys[i] || !l->meta_values[i]) return nb_set_error(NB_ERR_NOMEM, "%s: out of memory", fn), false;
        }
    }
    int i = 0;
    for (const cJSON *c = root->child; c; c = c->next)
        if (c != meta && !parse_entry(fn, path, c, &es[i++])) return false;
    /* the tensors must tile the data buffer exactly: no overlap, no gap, nothing outside */
    qsort(es, (size_t)n, sizeof *es, cmp_entry);
    uint64_t at = 0;
    for (i = 0; i < n; i++) {
        if (es[i].end > data_size)
            return BAD("%s: '%s': '%s' has data_offsets [%llu, %llu] beyond the %llu data bytes", fn, path, es[i].name,
                       (unsigned long long)es[i].begin, (unsigned long long)es[i].end, (unsigned long long)data_size);
        if (es[i].begin != at)
            return BAD("%s: '%s': '%s' starts at data offset %llu, expected %llu (%s)", fn, path, es[i].name,
                       (unsigned long long)es[i].begin, (unsigned long long)at,
                       es[i].begin < at ? "overlapping tensors" : "gap between tensors");
        at = es[i].end;
    }
    if (at != data_size)
        return BAD("%s: '%s': tensors cover %llu of the %llu data bytes", fn, path, (unsigned long long)at,
                   (unsigned long long)data_size);
    return true;
}

/* Offset of the first \u0000 escape inside a JSON string of h[0..n), or -1. libcjson decodes
 * it to a NUL byte, which would silently cut a name or value short. */
static long find_nul_escape(const char *h, size_t n) {
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        if (!in_str) {
            in_str = h[i] == '"';
        } else if (h[i] == '"') {
            in_str = false;
        } else if (h[i] == '\\' && i + 1 < n) {
            if (h[i + 1] == 'u' && i + 5 < n && memcmp(h + i + 2, "0000", 4) == 0) return (long)i;
            i++; /* skip the escaped character */
        }
    }
    return -1;
}

/* What the JSON parser accepts and the format does not (cJSON keeps numbers as doubles): a
 * header must begin with '{', and every number outside strings is written as a plain
 * non-negative integer (the only numbers of the format are shapes and offsets: [2.0], 2e0, 02
 * are refused, as the reference implementation does). Checked on a header whose values were
 * accepted, so a bad value is first named by its tensor. Byte position of the fault, or -1. */
static long header_form_fault(const char *h, size_t n, const char **what) {
    if (n == 0 || h[0] != '{') {
        *what = "does not begin with '{'";
        return 0;
    }
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        if (in_str) {
            if (h[i] == '"') in_str = false;
            else if (h[i] == '\\') i++; /* skip the escaped character */
        } else if (h[i] == '"') {
            in_str = true;
        } else if (h[i] == '-' || (h[i] >= '0' && h[i] <= '9')) {
            size_t j = i;
            bool plain = true;
            for (; j < n && strchr("-+.eE0123456789", h[j]); j++)
                if (h[j] < '0' || h[j] > '9') plain = false;
            if (!plain || (h[i] == '0' && j - i > 1)) {
                *what = "has a number that is not written as a plain integer (shapes and offsets are integers)";
                return (long)i;
            }
            i = j - 1;
        }
    }
    return -1;
}

/* The stored checksums (header, then one per tensor) when the header carries them: 1; none: 0;
 * malformed: -1 (error set). */
static int stored_crcs(const char *fn, const char *path, const char *header, size_t hlen, int n, uint32_t *crcs) {
    const size_t pre = strlen(ST_CRC_PREFIX), nd = 8 * ((size_t)n + 1);
    if (hlen < pre) return 0;
    int differ = 0;
    for (size_t i = 0; i < pre; i++) differ += header[i] != ST_CRC_PREFIX[i];
    if (differ > 0 && differ <= 2) { /* nabla's checksum entry with a damaged byte, not a foreign file */
        nb_set_error(NB_ERR_FORMAT, "%s: '%s' is damaged: its checksum entry is garbled (%d bytes of '%s' differ)", fn,
                     path, differ, ST_CRC_PREFIX);
        return -1;
    }
    if (differ) return 0;
    if (hlen < pre + nd + 1 || header[pre + nd] != '"') {
        nb_set_error(NB_ERR_FORMAT, "%s: '%s' is damaged: its checksum does not have %zu digits for %d tensors", fn, path,
                     nd, n);
        return -1;
    }
    for (int i = 0; i <= n; i++) {
        uint32_t v = 0;
        for (int k = 0; k < 8; k++) {
            char c = header[pre + 8 * (size_t)i + (size_t)k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0) {
                nb_set_error(NB_ERR_FORMAT, "%s: '%s' is damaged: its checksum holds '%c'", fn, path, c);
                return -1;
            }
            v = v << 4 | (uint32_t)d;
        }
        crcs[i] = v;
    }
    return 1;
}

nb_tensor_list *nb_safetensors_load(const char *path) {
    static const char fn[] = "safetensors_load";
    if (!path) return nb_set_error(NB_ERR_NULL, "%s: path is NULL", fn), NULL;
    if (!little_endian()) return nb_set_error(NB_ERR_UNSUPPORTED, "%s: big-endian hosts are not supported", fn), NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return nb_set_error(NB_ERR_IO, "%s: cannot open '%s': %s", fn, path, strerror(errno)), NULL;
    nb_tensor_list *l = calloc(1, sizeof *l);
    st_entry *es = NULL;
    uint32_t *crcs = NULL;
    char *header = NULL;
    cJSON *root = NULL;
    bool ok = false;
    struct stat st;
    uint8_t len8[8];
    if (!l) {
        nb_set_error(NB_ERR_NOMEM, "%s: out of memory", fn);
        goto done;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        nb_set_error(NB_ERR_IO, "%s: '%s' is not a regular file", fn, path);
        goto done;
    }
    const uint64_t size = (uint64_t)st.st_size;
    if (size < 8 || fread(len8, 1, 8, f) != 8) {
        nb_set_error(NB_ERR_FORMAT, "%s: '%s' is too short (%llu bytes) for a safetensors file", fn, path,
                     (unsigned long long)size);
        goto done;
    }
    uint64_t hlen = 0;
    for (int k = 0; k < 8; k++) hlen |= (uint64_t)len8[k] << (8 * k);
    if (hlen > size - 8) {
        nb_set_error(NB_ERR_FORMAT, "%s: '%s': header length %llu exceeds the file size %llu", fn, path,
                     (unsigned long long)hlen, (unsigned long long)size);
        goto done;
    }
    if (hlen > ST_MAX_HEADER) {
        nb_set_error(NB_ERR_FORMAT, "%s: '%s': header length %llu is over the %u-byte limit", fn, path,
                     (unsigned long long)hlen, ST_MAX_HEADER);
        goto done;
    }
    header = malloc(hlen + 1);
    if (!header) {
        nb_set_error(NB_ERR_NOMEM, "%s: out of memory", fn);
        goto done;
    }
    if (fread(header, 1, hlen, f) != hlen) {
        nb_set_error(NB_ERR_IO, "%s: cannot read the header of '%s'", fn, path);
        goto done;
    }
    header[hlen] = 0;
    long nul = find_nul_escape(header, hlen);
    if (nul >= 0) {
        nb_set_error(NB_ERR_FORMAT, "%s: '%s': the header holds a \\u0000 escape (byte %ld); names and values cannot "
                     "contain NUL", fn, path, nul);
        goto done;
    }
    const char *end = NULL;
    root = hlen ? cJSON_ParseWithLengthOpts(header, hlen, &end, false) : NULL;
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long pos = at && at >= header && at <= header + hlen ? (long)(at - header) : 0;
        nb_set_error(NB_ERR_FORMAT, "%s: '%s': the header is not valid JSON (near byte %ld)", fn, path, pos);
        goto done;
    }
    for (; end && end < header + hlen; end++)
        if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') {
            nb_set_error(NB_ERR_FORMAT, "%s: '%s': unexpected bytes after the JSON header (byte %ld)", fn, path,
                         (long)(end - header));
            goto done;
        }
    const uint64_t data_size = size - 8 - hlen;
    int n = 0;
    if (!parse_header(fn, path, root, data_size, l, &es, &n)) goto done;
    const char *bad = NULL;
    long at_byte = header_form_fault(header, hlen, &bad);
    if (at_byte >= 0) {
        nb_set_error(NB_ERR_FORMAT, "%s: '%s': the header %s (byte %ld)", fn, path, bad, at_byte);
        goto done;
    }
    if (!nb__read_budget(fn, path, data_size)) goto done;
    /* checksums: required when the metadata names one, verified before anything is returned */
    crcs = malloc(((size_t)n + 1) * sizeof *crcs);
    if (!crcs) {
        nb_set_error(NB_ERR_NOMEM, "%s: out of memory", fn);
        goto done;
    }
    int has_crc = stored_crcs(fn, path, header, hlen, n, crcs);
    if (has_crc < 0) goto done;
    if (!has_crc && l->checksummed) {
        nb_set_error(NB_ERR_FORMAT, "%s: '%s' is damaged: its checksum is not at the start of the header", fn, path);
        goto done;
    }
    if (has_crc) {
        const size_t pre = strlen(ST_CRC_PREFIX), nd = 8 * ((size_t)n + 1);
        char *digits = malloc(nd);
        if (!digits) {
            nb_set_error(NB_ERR_NOMEM, "%s: out of memory", fn);
            goto done;
        }
        memcpy(digits, header + pre, nd);
        memset(header + pre, '0', nd);
        uint32_t c = crc32_update(crc32_update(0, len8, 8), header, hlen);
        memcpy(header + pre, digits, nd);
        free(digits);
        l->checksummed = true;
        if (c != crcs[0] && ST_CRC_ENFORCED) {
            nb_set_error(NB_ERR_FORMAT, "%s: '%s' is damaged: the header (names, shapes, metadata) does not match its "
                         "checksum (stored %08x, computed %08x)", fn, path, (unsigned)crcs[0], (unsigned)c);
            goto done;
        }
    }
    for (int i = 0; i < n; i++) {
        l->names[i] = dup_str(es[i].name);
        l->tensors[i] = nb_tensor_new(es[i].dtype, es[i].ndim, es[i].shape);
        l->n = i + 1;
        if (!l->names[i] || !l->tensors[i]) {
            nb_set_error(NB_ERR_NOMEM, "%s: out of memory for '%s' of '%s'", fn, es[i].name, path);
            goto done;
        }
        size_t bytes = (size_t)(es[i].end - es[i].begin);
        if (bytes && (fseeko(f, (off_t)(8 + hlen + es[i].begin), SEEK_SET) != 0 ||
                      fread(l->tensors[i]->data, 1, bytes, f) != bytes)) {
            nb_set_error(NB_ERR_IO, "%s: cannot read the data of '%s' from '%s'", fn, es[i].name, path);
            goto done;
        }
        uint32_t c = bytes ? crc32_update(0, l->tensors[i]->data, bytes) : 0;
        if (has_crc && c != crcs[i + 1] && ST_CRC_ENFORCED) {
            nb_set_error(NB_ERR_FORMAT, "%s: '%s' is damaged: the data of tensor '%s' (bytes %llu..%llu of the data) "
                         "does not match its checksum (stored %08x, computed %08x)", fn, path, es[i].name,
                         (unsigned long long)es[i].begin, (unsigned long long)es[i].end, (unsigned)crcs[i + 1],
                         (unsigned)c);
            goto done;
        }
    }
    ok = true;
done:
    cJSON_Delete(root);
    free(header);
    free(es);
    free(crcs);
    fclose(f);
    if (!ok) {
        nb_tensor_list_free(l);
        return NULL;
    }
    return l;
}

#else /* without cJSON */
nb_status nb_safetensors_save(const char *path, int n, const char *const *names, const nb_tensor *const *tensors,
                              const char *const *meta) {
    return nb_set_error(NB_ERR_UNSUPPORTED, "safetensors_save: nabla was built without libcjson");
}
nb_tensor_list *nb_safetensors_load(const char *path) {
    return nb_set_error(NB_ERR_UNSUPPORTED, "safetensors_load: nabla was built without libcjson"), NULL;
}
#endif

/* ---- parameters --------------------------------------------------------------------------------- */
nb_status nb_safetensors_save_params(const nb_params *ps, const char *path, const char *const *meta) {
    if (!ps) return nb_set_error(NB_ERR_NULL, "safetensors_save_params: params is NULL");
    if (!ps->n_buffers) return nb_safetensors_save(path, ps->n, (const char *const *)ps->names, (const nb_tensor *const *)ps->p, meta);
    /* the state dict: parameters, then buffers */
    const int n = ps->n + ps->n_buffers;
    const char **names = malloc((size_t)n * sizeof *names);
    const nb_tensor **ts = malloc((size_t)n * sizeof *ts);
    nb_status s = names && ts ? NB_OK : nb_set_error(NB_ERR_NOMEM, "safetensors_save_params: out of memory");
    for (int i = 0; s == NB_OK && i < n; i++) {
        const bool param = i < ps->n;
        names[i] = param ? ps->names[i] : ps->buffer_names[i - ps->n];
        ts[i] = param ? ps->p[i] : ps->buffers[i - ps->n];
    }
    if (s == NB_OK) s = nb_safetensors_save(path, n, names, ts, meta);
    free(names), free(ts);
    return s;
}

/* tensor i of ps's state dict (parameters, then buffers): its name and tensor */
static const nb_tensor *state_entry(const nb_params *ps, int i, const char **name) {
    if (i < ps->n) return *name = ps->names[i], ps->p[i];
    return *name = ps->buffer_names[i - ps->n], ps->buffers[i - ps->n];
}

nb_status nb_safetensors_load_params(nb_params *ps, const char *path) {
    static const char fn[] = "safetensors_load_params";
    if (!ps) return nb_set_error(NB_ERR_NULL, "%s: params is NULL", fn);
    nb_tensor_list *l = nb_safetensors_load(path);
    if (!l) {
        char why[512];
        snprintf(why, sizeof why, "%s", nb_last_error());
        return nb_set_error(nb_last_status(), "%s: %s", fn, why);
    }
    nb_status s = NB_OK;
    char a[128], b[128];
    const int n = ps->n + ps->n_buffers;
    for (int i = 0; i < n && s == NB_OK; i++) {
        const char *name;
        const nb_tensor *m = state_entry(ps, i, &name), *t = nb_tensor_list_find(l, name);
        if (!t) s = nb_set_error(NB_ERR_FORMAT, "%s: '%s' has no tensor '%s'", fn, path, name);
        else if (t->dtype != m->dtype || !nb_same_shape(t, m))
            s = nb_set_error(NB_ERR_FORMAT, "%s: '%s': '%s': file has %s %s, model has %s %s", fn, path, name,
                             st_dtype_name(t->dtype), nb_shape_str(t, a, sizeof a), st_dtype_name(m->dtype),
                             nb_shape_str(m, b, sizeof b));
    }
    for (int i = 0; i < l->n && s == NB_OK; i++)
        if (!nb_params_find(ps, l->names[i]) && !nb_params_find_buffer(ps, l->names[i]))
            s = nb_set_error(NB_ERR_FORMAT, "%s: '%s' has tensor '%s' that the model does not have", fn, path, l->names[i]);
    for (int i = 0; i < n && s == NB_OK; i++) {
        const char *name;
        const nb_tensor *m = state_entry(ps, i, &name), *t = nb_tensor_list_find(l, name);
        memcpy(m->data, t->data, (size_t)t->numel * nb_dtype_size(t->dtype));
        nb__bump((nb_tensor *)m);
    }
    nb_tensor_list_free(l);
    return s;
}
