/* Dense layers fused after their GEMM: nb_linear_act = dropout(act(x w^T + b), p). The GEMM is
 * nb_matmul's; the epilogue (bias, activation, dropout) is one primitive that reads the GEMM's
 * output once and writes the result and D = mask * act'(u), u = z + b. Its backward is
 * g * D: one pass, made of nb_mul. With create_graph, D is rebuilt as a graph term of z and b
 * (the activation op's own backward rule applied to the mask), so second derivatives work. */
#include "../internal.h"

/* ---- the epilogue kernel --------------------------------------------------------------------- */
/* Per activation: its value h of u, and D = m act'(u) from m (mask value, 1 without dropout),
 * u and h, written as the activation op's backward rule computes g act'(u) with g = m (the
 * same bits for none, relu, tanh and sigmoid; gelu's rule is a chain of ops, here one
 * expression). */
#define EPILOGUE_ACT(NAME, VALUE, DERIV)                                                              \
    static inline float NAME##_h_f32(float u) {                                                      \
        typedef float T __attribute__((unused));                                                     \
        return (VALUE);                                                                              \
    }                                                                                                \
    static inline double NAME##_h_f64(double u) {                                                    \
        typedef double T __attribute__((unused));                                                    \
        return (VALUE);                                                                              \
    }                                                                                                \
    static inline float NAME##_d_f32(float m, float u, float h) {                                    \
        typedef float T __attribute__((unused));                                                     \
        (void)u, (void)h;                                                                            \
        return (DERIV);                                                                              \
    }                                                                                                \
    static inline double NAME##_d_f64(double m, double u, double h) {                                \
        typedef double T __attribute__((unused));                                                    \
        (void)u, (void)h;                                                                            \
        return (DERIV);                                                                              \
    }
EPILOGUE_ACT(none, u, m)
EPILOGUE_ACT(relu, NB_M(nb__relu, u), u > 0 ? m : (T)0) /* = m * (u > 0), m finite >= 0; no multiply to guard */
EPILOGUE_ACT(tanh, NB_M(tanh, u), m * ((T)1 - h * h))
EPILOGUE_ACT(sigmoid, NB_M(nb__sigmoid, u), m * (h * ((T)1 - h)))
EPILOGUE_ACT(gelu, NB_M(nb__gelu, u), /* Phi(u) + u phi(u) */
             m * ((T)0.5 * NB_M(erf, u * (T)0.70710678118654752440) + (T)0.5 +
                  u * ((T)0.39894228040143267794 * NB_M(exp, (T)-0.5 * u * u))))
#undef EPILOGUE_ACT

typedef struct {
    const char *y0;     /* the output's data: a row's flat index is its offset from here */
    bool bias, deriv;   /* operand 2 is the bias (else unused); operand 1 receives D (else unused) */
    bool drop;          /* mask at (key, base): element i keeps by nb__keep_mask's rule */
    uint64_t key, base;
    uint32_t t;
    double scale;
} epilogue_args;

#define EPI_CHUNK 512 /* mask values drawn at a time, on the stack */

/* One chunk of a row: y, d, z with strides sy, sd, sz, b with stride sb; with_b, with_m (the
 * chunk's mask) and with_d (write D) say which are used. Inlined with constant flags below, so
 * that the loops have no branches and, with unit strides, vectorize. */
#define EPILOGUE_CHUNK(T, SUF)                                                                         \
    static inline __attribute__((always_inline)) void epilogue_chunk_##SUF(                           \
        int64_t n, T *restrict y, T *restrict d, const T *restrict b, const T *restrict z, const T *restrict m, \
        int64_t sy, int64_t sd, int64_t sb, int64_t sz, bool with_b, bool with_m, bool with_d, T (*act)(T), \
        T (*deriv)(T, T, T)) {                                                                         \
        for (int64_t k = 0; k < n; k++) {                                                              \
            const T u = with_b ? z[k * sz] + b[k * sb] : z[k * sz], h = act(u), mv = with_m ? m[k] : (T)1; \
            y[k * sy] = with_m ? h * mv : h;                                                           \
            if (with_d) d[k * sd] = deriv(mv, u, h);                                                   \
        }                                                                                              \
    }
EPILOGUE_CHUNK(float, f32)
EPILOGUE_CHUNK(double, f64)
#undef EPILOGUE_CHUNK

/* Operands: p[0] y, p[1] D, p[2] b (broadcast along rows), p[3] z. */
#define EPILOGUE_ROWS(T, SUF, DT)                                                                      \
    static inline __attribute__((always_inline)) void epilogue_rows_##SUF(                            \
        int64_t n, char **p, const int64_t *s, const void *arg, T (*act)(T), T (*deriv)(T, T, T)) {   \
        const epilogue_args *a = arg;                                                                  \
        const int64_t i0 = (p[0] - a->y0) / (int64_t)sizeof(T);                                        \
        const bool unit = s[0] == 1 && s[1] == 1 && s[3] == 1 && (s[2] == 1 || !a->bias);              \
        T m[EPI_CHUNK];                                                                                \
        for (int64_t c = 0; c < n; c += EPI_CHUNK) {                                                   \
            const int64_t len = n - c < EPI_CHUNK ? n - c : EPI_CHUNK;                                 \
            if (a->drop) nb__keep_mask(DT, m, i0 + c, i0 + c + len, a->key, a->base, a->t, a->scale);   \
            T *y = (T *)p[0] + c * s[0], *d = (T *)p[1] + c * s[1];                                    \
            const T *b = (const T *)p[2] + c * s[2], *z = (const T *)p[3] + c * s[3];                  \
            if (unit && a->bias && a->drop && a->deriv) /* training */                                 \
                epilogue_chunk_##SUF(len, y, d, b, z, m, 1, 1, 1, 1, true, true, true, act, deriv);    \
            else if (unit && a->bias && !a->drop && a->deriv)                                          \
                epilogue_chunk_##SUF(len, y, d, b, z, m, 1, 1, 1, 1, true, false, true, act, deriv);   \
            else if (unit && a->bias && !a->drop && !a->deriv) /* inference */                         \
                epilogue_chunk_##SUF(len, y, d, b, z, m, 1, 1, 1, 1, true, false, false, act, deriv);  \
            else                                                                                       \
                epilogue_chunk_##SUF(len, y, d, b, z, m, s[0], s[1], s[2], s[3], a->bias, a->drop, a->deriv, act, \
                                     deriv);                                                           \
        }                                                                                              \
    }
EPILOGUE_ROWS(float, f32, NB_F32)
EPILOGUE_ROWS(double, f64, NB_F64)
#undef EPILOGUE_ROWS

#define EPILOGUE_KERNEL(NAME)                                                                          \
    static void NAME##_f32(int64_t n, char **p, const int64_t *s, const void *a) {                     \
        epilogue_rows_f32(n, p, s, a, NAME##_h_f32, NAME##_d_f32);                                     \
    }                                                                                                  \
    static void NAME##_f64(int64_t n, char **p, const int64_t *s, const void *a) {                     \
        epilogue_rows_f64(n, p, s, a, NAME##_h_f64, NAME##_d_f64);                                     \
    }
EPILOGUE_KERNEL(none)
EPILOGUE_KERNEL(relu)
EPILOGUE_KERNEL(tanh)
EPILOGUE_KERNEL(sigmoid)
EPILOGUE_KERNEL(gelu)
#undef EPILOGUE_KERNEL

/* Indexed by nb_act; the public op of each activation rebuilds D for create_graph. */
static const struct {
    nb_row_fn f32, f64;
    nb_tensor *(*op)(nb_ctx *, nb_tensor *);
} ACTS[] = {
    [NB_ACT_NONE] = {none_f32, none_f64, NULL},
    [NB_ACT_RELU] = {relu_f32, relu_f64, nb_relu},
    [NB_ACT_GELU] = {gelu_f32, gelu_f64, nb_gelu},
    [NB_ACT_TANH] = {tanh_f32, tanh_f64, nb_tanh},
    [NB_ACT_SIGMOID] = {sigmoid_f32, sigmoid_f64, nb_sigmoid},
};
_Static_assert(sizeof ACTS / sizeof *ACTS == NB_ACT_SIGMOID + 1, "one entry per nb_act");

/* ---- the epilogue op: node iattr[0] act, iattr[1..2] the mask's key and base, fattr[0] p (0:
 * no dropout), saved[0] D --------------------------------------------------------------------- */
/* D = mask * act'(z + b) as a graph term: the activation's backward rule applied to the mask */
static nb_tensor *derivative_graph(nb_ctx *ctx, const nb_node *n) {
    nb_tensor *z = n->in[0], *b = n->n_in > 1 ? n->in[1] : NULL;
    const double p = n->fattr[0];
    nb_tensor *m = p > 0 ? nb__dropout_mask(ctx, z->dtype, z->ndim, z->shape, p, (uint64_t)n->iattr[1], (uint64_t)n->iattr[2])
                         : nb_ones_like(ctx, z);
    if (!m || n->iattr[0] == NB_ACT_NONE) return m;
    nb_tensor *h = ACTS[n->iattr[0]].op(ctx, b ? nb_add(ctx, z, b) : z), *d = NULL;
    if (!h || !h->node) return h ? n->saved[0] : NULL; /* nothing requires grad: D is a constant */
    return h->node->op->backward(ctx, h->node, m, &d) == NB_OK ? d : NULL;
}

static nb_status epilogue_bw(nb_ctx *ctx, const nb_node *n, nb_tensor *g, nb_tensor **gin) {
    nb_tensor *d = nb_ctx_grad_enabled(ctx) ? derivative_graph(ctx, n) : n->saved[0];
    gin[0] = nb_mul(ctx, g, d);
    if (n->n_in == 1 || !gin[0]) return NB_OK;
    nb_tensor *dst = nb__grad_dest_begin(ctx, n, 1);
    if (!dst) {
        gin[1] = gin[0]; /* the engine sums it over the rows into b's shape */
        return NB_OK;
    }
    nb__sum_to_into(dst, gin[0]); /* the bias's .grad, written first */
    nb__grad_dest_end(ctx, n, 1);
    gin[1] = dst;
    return NB_OK;
}
static const nb_op OP_EPILOGUE = {"linear_act", epilogue_bw, NB_DIFFERENTIABLE};

/* y = dropout(act(z + b)) over z (..., out), b (out) or NULL, in one pass */
static nb_tensor *epilogue(nb_ctx *ctx, nb_tensor *z, nb_tensor *b, nb_act act, double p) {
    const bool drop = p > 0 && nb_ctx_is_train(ctx);
    if (act == NB_ACT_NONE && !drop) return b ? nb_add(ctx, z, b) : z; /* a plain linear layer */
    const bool record = nb_ctx_grad_enabled(ctx) && (z->requires_grad || (b && b->requires_grad));
    nb_tensor *y = nb__new(ctx, z->dtype, z->ndim, z->shape), *d = record ? nb__new(ctx, z->dtype, z->ndim, z->shape) : y;
    if (!y || !d) return NULL;
    epilogue_args a = {.y0 = y->data, .bias = b != NULL, .deriv = record, .drop = drop};
    if (drop) {
        a.key = ctx->rng.seed, a.base = ctx->rng.offset, a.t = nb__keep_threshold(p), a.scale = 1.0 / (1.0 - p);
        ctx->rng.offset += nb__mask_blocks(z->numel);
    }
    nb_iter it;
    const nb_tensor *ts[4] = {y, d, b ? b : z, z};
    nb__iter_init(&it, y->ndim, y->shape, 4, ts);
    /* a mask draw or a transcendental costs tens of cycles an element: threads pay earlier */
    const bool heavy = drop || (act != NB_ACT_NONE && act != NB_ACT_RELU);
    nb__iter_run_min(&it, y->dtype == NB_F32 ? ACTS[act].f32 : ACTS[act].f64, &a,
                     heavy ? NB_PAR_THRESHOLD_HEAVY : NB_PAR_THRESHOLD);
    nb_node *n;
    nb_tensor *in[2] = {z, b};
    if (!nb__finish(ctx, &OP_EPILOGUE, y, b ? 2 : 1, in, &n)) return NULL;
    if (n) {
        n->iattr[0] = act, n->iattr[1] = (int64_t)a.key, n->iattr[2] = (int64_t)a.base;
        n->fattr[0] = drop ? p : 0.0;
        n->saved[0] = d;
    }
    return y;
}

nb_tensor *nb_linear_act(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, nb_act act, double dropout_p) {
    if (nb__null(ctx, "linear_act", 2, x, w) || (b && nb__null(ctx, "linear_act", 1, b))) return NULL;
    char sx[128], sw[128], sb[128];
    if ((unsigned)act > NB_ACT_SIGMOID) return nb__fail(ctx, NB_ERR_VALUE, "linear_act: unknown activation %d", (int)act);
    if (!(dropout_p >= 0.0 && dropout_p < 1.0))
        return nb__fail(ctx, NB_ERR_VALUE, "linear_act: dropout_p = %g outside [0, 1)", dropout_p);
    if (w->ndim != 2 || x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[1] || (b && (b->ndim != 1 || b->shape[0] != w->shape[0])))
        return nb__fail(ctx, NB_ERR_SHAPE, "linear_act: input %s, weight %s and bias %s do not fit (expected (..., in), (out, in), (out))",
                        nb_shape_str(x, sx, sizeof sx), nb_shape_str(w, sw, sizeof sw), b ? nb_shape_str(b, sb, sizeof sb) : "NULL");
    if (x->dtype != w->dtype || w->dtype == NB_I64 || (b && b->dtype != w->dtype))
        return nb__fail(ctx, NB_ERR_DTYPE, "linear_act: input %s, weight %s, bias %s (need all f32 or all f64)",
                        nb_dtype_name(x->dtype), nb_dtype_name(w->dtype), b ? nb_dtype_name(b->dtype) : "NULL");
    nb_tensor *z = nb__linear_product(ctx, x, w); /* writes the weight's gradient into .grad when it may */
    return z ? epilogue(ctx, z, b, act, dropout_p) : NULL;
}
