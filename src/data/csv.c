/* CSV reader for numeric tables. */
#include "../internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

/* An i64 field: an integer literal read exactly (strtoll), or a number that is an integer exactly
 * representable in a double ("3.0", "1e3"); false for "2.5", for integers past the i64 range and
 * for floats past 2^53 (the double would already have rounded them). */
static bool parse_i64(const char *p, const char *end, int64_t *out) {
    char *stop;
    errno = 0;
    const long long v = strtoll(p, &stop, 10);
    const char *rest = stop;
    while (rest < end && (*rest == ' ' || *rest == '\t')) rest++;
    if (stop != p && rest == end) {
        *out = v;
        return errno != ERANGE;
    }
    const double d = strtod(p, &stop);
    if (!(fabs(d) <= 0x1p53) || d != floor(d)) return false;
    *out = (int64_t)d;
    return true;
}

nb_tensor *nb_csv_load(const char *path, const nb_csv_opts *opts) {
    static const char fn[] = "csv_load";
    const char delim = opts && opts->delimiter ? opts->delimiter : ',';
    const bool header = opts && opts->header;
    const nb_dtype dt = opts ? opts->dtype : NB_F32;
    if (!path) return nb_set_error(NB_ERR_NULL, "%s: path is NULL", fn), NULL;
    if ((unsigned)dt > NB_I64) return nb_set_error(NB_ERR_DTYPE, "%s: unknown dtype %d", fn, (int)dt), NULL;
    if (delim == '\n' || delim == '\r' || delim == '#' || delim == '.' || delim == '-' || isdigit((unsigned char)delim))
        return nb_set_error(NB_ERR_VALUE, "%s: '%c' cannot be a delimiter", fn, delim), NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return nb_set_error(NB_ERR_IO, "%s: cannot open '%s': %s", fn, path, strerror(errno)), NULL;

    char *line = NULL;
    size_t line_cap = 0;
    union cell {
        double d;
        int64_t i;
    } *vals = NULL; /* .i for an i64 table: read exactly, not through a double */
    int64_t nvals = 0, cap = 0, rows = 0, cols = -1, lineno = 0;
    bool skip_header = header, ok = false;
    ssize_t len;
    while ((len = getline(&line, &line_cap, f)) >= 0) {
        lineno++;
        if ((size_t)len != strlen(line)) {
            nb_set_error(NB_ERR_FORMAT, "%s: '%s' line %lld contains a NUL byte", fn, path, (long long)lineno);
            goto done;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        const char *s = line;
        while (*s == ' ' || *s == '\t') s++;
        if (!*s || *s == '#') continue;
        if (skip_header) {
            skip_header = false;
            continue;
        }
        int64_t col = 0;
        for (const char *p = line;; col++) {
            const char *end = strchr(p, delim);
            if (!end) end = line + len;
            char *stop;
            errno = 0;
            double v = strtod(p, &stop);
            const char *rest = stop;
            while (rest < end && (*rest == ' ' || *rest == '\t')) rest++;
            if (stop == p || rest != end) {
                int w = (int)(end - p) < 40 ? (int)(end - p) : 40;
                nb_set_error(NB_ERR_FORMAT, "%s: '%s' line %lld, column %lld: '%.*s' is not a number", fn, path,
                             (long long)lineno, (long long)col + 1, w, p);
                goto done;
            }
            int64_t iv = 0;
            if (dt == NB_I64 && !parse_i64(p, end, &iv)) {
                int w = (int)(end - p) < 40 ? (int)(end - p) : 40;
                nb_set_error(NB_ERR_FORMAT, "%s: '%s' line %lld, column %lld: '%.*s' is not an integer in the i64 range",
                             fn, path, (long long)lineno, (long long)col + 1, w, p);
                goto done;
            }
            if (nvals == cap) {
                /* the values buffer plus the tensor made from it count against the readers' cap */
                const uint64_t per = sizeof *vals + nb_dtype_size(dt), lim = nb_read_limit();
                if (!nb__read_budget(fn, path, (uint64_t)(nvals + 1) * per)) goto done;
                int64_t ncap = cap ? cap * 2 : 1024;
                if (lim && (uint64_t)ncap * per > lim) ncap = (int64_t)(lim / per); /* >= nvals + 1 */
                union cell *nv = realloc(vals, (size_t)ncap * sizeof *nv);
                if (!nv) {
                    nb_set_error(NB_ERR_NOMEM, "%s: out of memory after %lld values", fn, (long long)nvals);
                    goto done;
                }
                vals = nv, cap = ncap;
            }
            if (dt == NB_I64) vals[nvals++].i = iv;
            else vals[nvals++].d = v;
            if (!*end) break;
            p = end + 1;
        }
        col++;
        if (cols < 0) cols = col;
        else if (col != cols) {
            nb_set_error(NB_ERR_FORMAT, "%s: '%s' line %lld has %lld columns, expected %lld", fn, path,
                         (long long)lineno, (long long)col, (long long)cols);
            goto done;
        }
        rows++;
    }
    if (ferror(f)) {
        nb_set_error(NB_ERR_IO, "%s: read error on '%s'", fn, path);
        goto done;
    }
    if (rows == 0) {
        nb_set_error(NB_ERR_FORMAT, "%s: '%s' holds no data rows", fn, path);
        goto done;
    }
    ok = true;
done:
    free(line);
    fclose(f);
    nb_tensor *t = NULL;
    if (ok) { /* a union of 8-byte members: the cells are an f64 or an i64 array as they are */
        nb_tensor src = {.dtype = dt == NB_I64 ? NB_I64 : NB_F64, .ndim = 2, .shape = {rows, cols}, .stride = {cols, 1},
                         .numel = nvals, .data = vals};
        t = nb_tensor_new(dt, 2, src.shape);
        if (t && nb_copy_into(t, &src) != NB_OK) {
            nb_tensor_free(t);
            t = NULL;
        }
    }
    free(vals);
    return t;
}
