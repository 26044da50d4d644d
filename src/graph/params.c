/* Parameters as views into one flat value buffer and one flat gradient buffer. */
#include "../internal.h"

#include <omp.h>
#include <stdlib.h>

nb_params *nb_params_new_dtype(nb_dtype dtype) {
    if (dtype != NB_F32 && dtype != NB_F64)
        return nb_set_error(NB_ERR_DTYPE, "params_new: parameters must be f32 or f64, got %s", nb_dtype_name(dtype)), NULL;
    nb_params *ps = calloc(1, sizeof *ps);
    if (!ps) return nb_set_error(NB_ERR_NOMEM, "params_new: out of memory"), NULL;
    ps->dtype = dtype;
    return ps;
}

nb_params *nb_params_new(void) { return nb_params_new_dtype(NB_F32); }

size_t nb_params_elem_size(const nb_params *ps) { return ps ? nb_dtype_size(ps->dtype) : 0; }
int64_t nb_params_numel(const nb_params *ps) {
    int64_t n = 0;
    for (int i = 0; ps && i < ps->n; i++) n += ps->p[i]->numel;
    return n;
}

void nb_params_free(nb_params *ps) {
    if (!ps) return;
    for (int i = 0; i < ps->n; i++) {
        nb_clear_hooks(ps->p[i]);
        free(ps->p[i]->grad);
        free(ps->p[i]);
        free(ps->names[i]);
    }
    for (int i = 0; i < ps->n_buffers; i++) free(ps->buffer_names[i]);
    free(ps->buffers);
    free(ps->buffer_names);
    free(ps->p);
    free(ps->names);
    free(ps->decay);
    free(ps->lr_scale);
    free(ps->offset);
    free(ps->flat);
    free(ps->grad_flat);
    free(ps);
}

static void *grow_buffer(void *old, int64_t old_n, int64_t n, size_t es) {
    void *p = NULL;
    if (posix_memalign(&p, 64, (size_t)n * es) != 0) return NULL;
    if (old) memcpy(p, old, (size_t)old_n * es);
    memset((char *)p + (size_t)old_n * es, 0, (size_t)(n - old_n) * es);
    free(old);
    return p;
}

static void repoint(nb_params *ps) {
    const size_t es = nb_dtype_size(ps->dtype);
    for (int i = 0; i < ps->n; i++) {
        ps->p[i]->data = (char *)ps->flat + (size_t)ps->offset[i] * es;
        ps->p[i]->grad->data = (char *)ps->grad_flat + (size_t)ps->offset[i] * es;
    }
}

nb_tensor *nb_params_add(nb_params *ps, const char *name, int ndim, const int64_t *shape) {
    if (!ps) return nb_set_error(NB_ERR_NULL, "params_add: NULL argument"), NULL;
    return nb_params_add_dtype(ps, name, ps->dtype, ndim, shape);
}

nb_tensor *nb_params_add_dtype(nb_params *ps, const char *name, nb_dtype dtype, int ndim, const int64_t *shape) {
    if (!ps || !name) return nb_set_error(NB_ERR_NULL, "params_add: NULL argument"), NULL;
    if (dtype != ps->dtype)
        return nb_set_error(NB_ERR_DTYPE, "params_add: '%s' is %s but these parameters are %s (one dtype per nb_params)",
                            name, nb_dtype_name(dtype), nb_dtype_name(ps->dtype)),
               NULL;
    if (nb_params_find(ps, name) || nb_params_find_buffer(ps, name))
        return nb_set_error(NB_ERR_VALUE, "params_add: a parameter or buffer named '%s' exists", name), NULL;
    const size_t es = nb_dtype_size(ps->dtype);
    const int64_t align = (int64_t)(64 / es);   /* 64-byte aligned slices */
    int64_t n, start = (ps->total + align - 1) & ~(align - 1);
    if (!nb__size(ndim, shape, es, &n, NULL) || start + n > INT64_MAX / 8) {
        char b[200];
        return nb_set_error(NB_ERR_SHAPE, "params_add: '%s' has an invalid or too large shape %s", name,
                            ndim >= 0 && ndim <= NB_MAX_DIMS && shape ? nb__dims_str(ndim, shape, b, sizeof b) : "?"),
               NULL;
    }
    if (ps->n == ps->cap_) {
        int cap = ps->cap_ ? ps->cap_ * 2 : 16;
        nb_tensor **p = realloc(ps->p, (size_t)cap * sizeof *p);
        if (p) ps->p = p;
        char **nm = realloc(ps->names, (size_t)cap * sizeof *nm);
        if (nm) ps->names = nm;
        bool *d = realloc(ps->decay, (size_t)cap * sizeof *d);
        if (d) ps->decay = d;
        double *ls = realloc(ps->lr_scale, (size_t)cap * sizeof *ls);
        if (ls) ps->lr_scale = ls;
        int64_t *o = realloc(ps->offset, (size_t)cap * sizeof *o);
        if (o) ps->offset = o;
        if (!p || !nm || !d || !ls || !o) return nb_set_error(NB_ERR_NOMEM, "params_add: out of memory"), NULL;
        ps->cap_ = cap;
    }
    if (start + n > ps->cap_elems_) {
        int64_t cap = ps->cap_elems_ * 2 > start + n ? ps->cap_elems_ * 2 : start + n + 1024; /* < 2^62: no overflow */
        void *f = grow_buffer(ps->flat, ps->cap_elems_, cap, es);
        if (f) ps->flat = f;
        void *g = f ? grow_buffer(ps->grad_flat, ps->cap_elems_, cap, es) : NULL;
        if (g) ps->grad_flat = g;
        if (!f || !g)
            return nb_set_error(NB_ERR_NOMEM, "params_add: cannot allocate %lld %s elements", (long long)cap,
                                nb_dtype_name(ps->dtype)),
                   NULL;
        ps->cap_elems_ = cap;
    }
    nb_tensor *t = calloc(1, sizeof *t), *g = calloc(1, sizeof *g);
    char *nm = malloc(strlen(name) + 1);
    if (!t || !g || !nm) {
        free(t), free(g), free(nm);
        return nb_set_error(NB_ERR_NOMEM, "params_add: out of memory"), NULL;
    }
    strcpy(nm, name);
    t->dtype = ps->dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    nb__contig_strides(ndim, shape, t->stride);
    t->numel = n;
    t->persistent = true;
    t->requires_grad = true;
    t->name = nm;
    *g = *t;
    g->requires_grad = false;
    g->name = NULL;
    t->grad = g;
    t->grad_zero_ = true;
    int i = ps->n++;
    ps->p[i] = t;
    ps->names[i] = nm;
    ps->decay[i] = ndim >= 2;
    ps->lr_scale[i] = 1.0;
    ps->offset[i] = start;
    ps->total = start + n;
    repoint(ps);
    return t;
}

nb_tensor *nb_params_find(const nb_params *ps, const char *name) {
    for (int i = 0; ps && name && i < ps->n; i++)
        if (strcmp(ps->names[i], name) == 0) return ps->p[i];
    return NULL;
}

nb_status nb_params_add_buffer(nb_params *ps, const char *name, nb_tensor *t) {
    if (!ps || !name || !t) return nb_set_error(NB_ERR_NULL, "params_add_buffer: NULL argument");
    if (!t->persistent || !nb_is_contiguous(t))
        return nb_set_error(NB_ERR_VALUE, "params_add_buffer: '%s' must be a long-lived contiguous tensor", name);
    if (nb_params_find(ps, name) || nb_params_find_buffer(ps, name))
        return nb_set_error(NB_ERR_VALUE, "params_add_buffer: a parameter or buffer named '%s' exists", name);
    if (ps->n_buffers == ps->cap_buffers_) {
        const int cap = ps->cap_buffers_ ? 2 * ps->cap_buffers_ : 8;
        nb_tensor **b = realloc(ps->buffers, (size_t)cap * sizeof *b);
        if (b) ps->buffers = b;
        char **nm = realloc(ps->buffer_names, (size_t)cap * sizeof *nm);
        if (nm) ps->buffer_names = nm;
        if (!b || !nm) return nb_set_error(NB_ERR_NOMEM, "params_add_buffer: out of memory");
        ps->cap_buffers_ = cap;
    }
    char *nm = malloc(strlen(name) + 1);
    if (!nm) return nb_set_error(NB_ERR_NOMEM, "params_add_buffer: out of memory");
    strcpy(nm, name);
    ps->buffers[ps->n_buffers] = t;
    ps->buffer_names[ps->n_buffers++] = nm;
    return NB_OK;
}

nb_tensor *nb_params_find_buffer(const nb_params *ps, const char *name) {
    for (int i = 0; ps && name && i < ps->n_buffers; i++)
        if (strcmp(ps->buffer_names[i], name) == 0) return ps->buffers[i];
    return NULL;
}

int nb_params_index(const nb_params *ps, const nb_tensor *p) {
    for (int i = 0; ps && i < ps->n; i++)
        if (ps->p[i] == p) return i;
    return -1;
}

void nb_params_zero_grad(nb_params *ps) {
    if (!ps || !ps->grad_flat) return;
    /* in pieces over the threads: one thread alone left the other waiting ~3% of a 2-thread
     * MLP step */
    const size_t bytes = (size_t)ps->total * nb_dtype_size(ps->dtype), piece = 64 << 10;
    const int64_t npieces = (int64_t)((bytes + piece - 1) / piece);
    char *g = (char *)ps->grad_flat;
#pragma omp parallel for if (bytes >= 4 * NB_PAR_THRESHOLD && !omp_in_parallel()) schedule(static)
    for (int64_t k = 0; k < npieces; k++) {
        const size_t at = (size_t)k * piece;
        memset(g + at, 0, bytes - at < piece ? bytes - at : piece);
    }
    for (int i = 0; i < ps->n; i++) ps->p[i]->grad_zero_ = true;
}

void nb_params_save_to(const nb_params *ps, void *dst) {
    if (ps && dst && ps->total) memcpy(dst, ps->flat, (size_t)ps->total * nb_dtype_size(ps->dtype));
}

void nb_params_load_from(nb_params *ps, const void *src) {
    if (ps && src && ps->total) memcpy(ps->flat, src, (size_t)ps->total * nb_dtype_size(ps->dtype));
    for (int i = 0; ps && src && i < ps->n; i++) nb__bump(ps->p[i]); /* every parameter written */
}

static size_t buffer_size(const nb_tensor *t) { return (size_t)t->numel * nb_dtype_size(t->dtype); }

size_t nb_params_buffer_bytes(const nb_params *ps) {
    size_t bytes = 0;
    for (int i = 0; ps && i < ps->n_buffers; i++) bytes += buffer_size(ps->buffers[i]);
    return bytes;
}

void nb_params_buffers_save_to(const nb_params *ps, void *dst) {
    for (int i = 0; ps && dst && i < ps->n_buffers; i++) {
        memcpy(dst, ps->buffers[i]->data, buffer_size(ps->buffers[i]));
        dst = (char *)dst + buffer_size(ps->buffers[i]);
    }
}

void nb_params_buffers_load_from(nb_params *ps, const void *src) {
    for (int i = 0; ps && src && i < ps->n_buffers; i++) {
        memcpy(ps->buffers[i]->data, src, buffer_size(ps->buffers[i]));
        nb__bump(ps->buffers[i]);
        src = (const char *)src + buffer_size(ps->buffers[i]);
    }
}
