/* einsum as a composite (PyTorch 1.13's torch.einsum). The spec is parsed into labels per axis;
 * each operand's repeated labels become diagonals (a product with an identity mask, summed over
 * one axis) and the labels nothing else needs are summed out; operands are then contracted left
 * to right, each pair as one batched matmul (batch labels, labels of one side, contracted
 * labels), and a last permute orders the output. Every step is an op, so gradients of any order
 * come from their rules. */
#include "../internal.h"

/* Labels: 'A'..'Z' are 0..25 and 'a'..'z' 26..51 (ASCII order, which the implicit output
 * follows); the dims an ellipsis stands for are 52.., aligned from the right across operands. */
#define ELL0 52

typedef struct {
    int n;                 /* letters */
    int lab[NB_MAX_DIMS];
    int ell;               /* the ellipsis comes before letter `ell` (-1: none) */
    const char *text;      /* for messages */
    int len;
} term;

/* A tensor whose axes carry labels. */
typedef struct {
    nb_tensor *t;
    int n;
    int lab[NB_MAX_DIMS];
} labeled;

static int letter(char ch) {
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return 26 + ch - 'a';
    return -1;
}
static char label_char(int l) { return l < 26 ? (char)('A' + l) : l < ELL0 ? (char)('a' + l - 26) : '.'; }

/* The term starting at p (up to ',', '-' or the end); NULL + error on a bad character. */
static const char *parse_term(nb_ctx *ctx, const char *spec, const char *p, term *t) {
    *t = (term){.ell = -1, .text = p};
    for (;; p++) {
        const char ch = *p;
        if (ch == '\0' || ch == ',' || ch == '-') break;
        if (ch == ' ') continue;
        if (ch == '.') {
            if (p[1] != '.' || p[2] != '.' || t->ell >= 0)
                return nb__fail(ctx, NB_ERR_VALUE, "einsum: bad ellipsis at position %d of \"%s\"", (int)(p - spec), spec);
            t->ell = t->n;
            p += 2;
            continue;
        }
        const int l = letter(ch);
        if (l < 0)
            return nb__fail(ctx, NB_ERR_VALUE, "einsum: invalid character '%c' at position %d of \"%s\"", ch, (int)(p - spec), spec);
        if (t->n == NB_MAX_DIMS)
            return nb__fail(ctx, NB_ERR_SHAPE, "einsum: a term of \"%s\" names more than %d dims", spec, NB_MAX_DIMS);
        t->lab[t->n++] = l;
    }
    t->len = (int)(p - t->text);
    return p;
}

/* The labels of a term with e dims for its ellipsis, out of E in all. */
static void expand_term(const term *t, int e, int E, labeled *o) {
    const int at = t->ell < 0 ? t->n : t->ell;
    o->n = 0;
    for (int k = 0; k < at; k++) o->lab[o->n++] = t->lab[k];
    for (int k = 0; k < e; k++) o->lab[o->n++] = ELL0 + E - e + k;
    for (int k = at; k < t->n; k++) o->lab[o->n++] = t->lab[k];
}

static uint64_t label_set(const labeled *o) {
    uint64_t s = 0;
    for (int d = 0; d < o->n; d++) s |= 1ull << o->lab[d];
    return s;
}

static int position(const labeled *o, int l) {
    for (int d = 0; d < o->n; d++)
        if (o->lab[d] == l) return d;
    return -1;
}

static void drop_axis(labeled *o, int d) {
    for (int k = d; k + 1 < o->n; k++) o->lab[k] = o->lab[k + 1];
    o->n--;
}

static int64_t size_of(const int64_t *size, int n, const int *labels) {
    int64_t p = 1;
    for (int k = 0; k < n; k++) p *= size[labels[k]];
    return p;
}

/* An operand brought to its labels' sizes (size-1 axes broadcast), its repeated labels turned
 * into diagonals and the labels outside `keep` summed out. */
static bool prepare(nb_ctx *ctx, labeled *o, const int64_t *size, uint64_t keep) {
    int64_t shape[NB_MAX_DIMS];
    for (int d = 0; d < o->n; d++) shape[d] = size[o->lab[d]];
    o->t = nb_expand(ctx, o->t, o->n, shape);
    for (int a = 0; a < o->n && o->t; a++)
        for (int b = a + 1; b < o->n && o->t; b++) {
            if (o->lab[b] != o->lab[a]) continue;
            /* the diagonal over axes a and b: t where I (broadcast), else 0 (selected, not
             * multiplied: an inf or NaN off the diagonal stays out), summed over b */
            const int64_t s = size[o->lab[a]];
            nb_tensor *eye = nb__new(ctx, NB_I64, 2, (int64_t[]){s, s});
            if (!eye) return false;
            memset(eye->data, 0, (size_t)(s * s) * sizeof(int64_t));
            for (int64_t i = 0; i < s; i++) ((int64_t *)eye->data)[i * s + i] = 1;
            for (int d = 0; d < o->n; d++) shape[d] = d == a || d == b ? s : 1;
            o->t = nb_sum(ctx, nb_where(ctx, nb_reshape(ctx, eye, o->n, shape), o->t, nb_scalar(ctx, o->t->dtype, 0.0)), 1,
                          &b, false);
            drop_axis(o, b--);
        }
    int axes[NB_MAX_DIMS], na = 0;
    for (int d = o->n - 1; d >= 0; d--)
        if (!(keep >> o->lab[d] & 1)) axes[na++] = d;
    if (na && o->t) o->t = nb_sum(ctx, o->t, na, axes, false);
    for (int k = 0; k < na; k++) drop_axis(o, axes[k]); /* axes run high to low */
    return o->t != NULL;
}

/* a <- a contracted with b: labels of both that `later` needs are batch axes, those it does not
 * need are summed by the product, the others stay: (batch, a's, K) x (batch, K, b's). */
static bool contract(nb_ctx *ctx, labeled *a, const labeled *b, const int64_t *size, uint64_t later) {
    int bt[NB_MAX_DIMS], ak[NB_MAX_DIMS], ct[NB_MAX_DIMS], bk[NB_MAX_DIMS], nbt = 0, nak = 0, nct = 0, nbk = 0;
    for (int d = 0; d < a->n; d++) {
        const int l = a->lab[d];
        if (position(b, l) < 0) ak[nak++] = l;
        else if (later >> l & 1) bt[nbt++] = l;
        else ct[nct++] = l;
    }
    for (int d = 0; d < b->n; d++)
        if (position(a, b->lab[d]) < 0) bk[nbk++] = b->lab[d];
    if (nbt + nak + nbk > NB_MAX_DIMS)
        return nb__fail(ctx, NB_ERR_SHAPE, "einsum: an intermediate product would have %d dims (at most %d)", nbt + nak + nbk,
                        NB_MAX_DIMS),
               false;
    int pa[NB_MAX_DIMS], pb[NB_MAX_DIMS], na = 0, nb = 0;
    for (int k = 0; k < nbt; k++) pa[na++] = position(a, bt[k]), pb[nb++] = position(b, bt[k]);
    for (int k = 0; k < nak; k++) pa[na++] = position(a, ak[k]);
    for (int k = 0; k < nct; k++) pa[na++] = position(a, ct[k]), pb[nb++] = position(b, ct[k]);
    for (int k = 0; k < nbk; k++) pb[nb++] = position(b, bk[k]);
    const int64_t B = size_of(size, nbt, bt), M = size_of(size, nak, ak), K = size_of(size, nct, ct), N = size_of(size, nbk, bk);
    nb_tensor *x = nb_reshape(ctx, nb_permute(ctx, a->t, pa), NB_SHAPE(B, M, K));
    nb_tensor *y = nb_reshape(ctx, nb_permute(ctx, b->t, pb), NB_SHAPE(B, K, N));
    nb_tensor *p = K == 1 ? nb_mul(ctx, x, y) : nb_matmul(ctx, x, y); /* nothing to sum: a broadcast product */
    labeled r = {.n = 0};
    int64_t shape[NB_MAX_DIMS];
    for (int k = 0; k < nbt; k++) r.lab[r.n++] = bt[k];
    for (int k = 0; k < nak; k++) r.lab[r.n++] = ak[k];
    for (int k = 0; k < nbk; k++) r.lab[r.n++] = bk[k];
    for (int d = 0; d < r.n; d++) shape[d] = size[r.lab[d]];
    r.t = nb_reshape(ctx, p, r.n, shape);
    *a = r;
    return r.t != NULL;
}

/* The operands' labels, the output's and every label's size; false + error on a bad spec. */
static bool plan(nb_ctx *ctx, const char *spec, int n, nb_tensor *const *xs, labeled *ops, labeled *out, int64_t *size) {
    int count = 1;
    for (const char *q = spec; *q && *q != '-'; q++) count += *q == ',';
    if (count != n) return nb__fail(ctx, NB_ERR_VALUE, "einsum: \"%s\" names %d operands, %d given", spec, count, n), false;
    term *terms = nb_ctx_alloc(ctx, (size_t)n * sizeof *terms), ot;
    if (!terms) return false;
    const char *p = spec;
    for (int i = 0; i < n; i++)
        if (!(p = parse_term(ctx, spec, p + (i > 0), &terms[i]))) return false;
    const bool arrow = *p == '-';
    if (arrow && (p[1] != '>' || !(p = parse_term(ctx, spec, p + 2, &ot)) || *p != '\0'))
        return ctx->status ? false
                           : (nb__fail(ctx, NB_ERR_VALUE, "einsum: unexpected '%c' at position %d of \"%s\"", *p ? *p : '-',
                                       (int)(p - spec), spec),
                              false);
    int E = 0;
    for (int i = 0; i < n; i++) {
        const term *t = &terms[i];
        const int e = xs[i]->ndim - t->n;
        if (t->ell < 0 ? e != 0 : e < 0) {
            char s[128];
            return nb__fail(ctx, NB_ERR_SHAPE, "einsum: operand %d %s has %d dims, but its subscripts \"%.*s\" in \"%s\" name %d", i,
                            nb_shape_str(xs[i], s, sizeof s), xs[i]->ndim, t->len, t->text, spec, t->n),
                   false;
        }
        if (e > E) E = e;
    }
    int uses[ELL0 + NB_MAX_DIMS] = {0};
    uint64_t seen = 0;
    for (int l = 0; l < ELL0 + NB_MAX_DIMS; l++) size[l] = -1;
    for (int i = 0; i < n; i++) {
        expand_term(&terms[i], xs[i]->ndim - terms[i].n, E, &ops[i]);
        ops[i].t = xs[i];
        for (int d = 0; d < ops[i].n; d++) {
            const int l = ops[i].lab[d];
            const int64_t s = xs[i]->shape[d];
            uses[l]++;
            seen |= 1ull << l;
            if (size[l] == -1 || size[l] == 1) size[l] = s;
            else if (s != size[l] && s != 1)
                return nb__fail(ctx, NB_ERR_SHAPE, "einsum: label '%c' of \"%s\" has sizes %lld and %lld (operand %d), which do not broadcast",
                                label_char(l), spec, (long long)size[l], (long long)s, i),
                       false;
        }
    }
    if (arrow) {
        if (ot.n + (ot.ell >= 0 ? E : 0) > NB_MAX_DIMS)
            return nb__fail(ctx, NB_ERR_SHAPE, "einsum: the output of \"%s\" has more than %d dims", spec, NB_MAX_DIMS), false;
        expand_term(&ot, ot.ell >= 0 ? E : 0, E, out);
        for (int d = 0; d < out->n; d++) {
            const int l = out->lab[d];
            if (!(seen >> l & 1) || position(out, l) != d)
                return nb__fail(ctx, NB_ERR_VALUE, "einsum: output label '%c' of \"%s\" %s", label_char(l), spec,
                                seen >> l & 1 ? "appears twice" : "is in no operand"),
                       false;
        }
    } else { /* implicit: the ellipsis, then the labels used once, in ASCII order */
        out->n = 0;
        for (int k = 0; k < ELL0 + NB_MAX_DIMS; k++) {
            const int l = (k + ELL0) % (ELL0 + NB_MAX_DIMS); /* the ellipsis labels come first */
            if (l >= ELL0 ? uses[l] == 0 : uses[l] != 1) continue;
            if (out->n == NB_MAX_DIMS)
                return nb__fail(ctx, NB_ERR_SHAPE, "einsum: the output of \"%s\" has more than %d dims", spec, NB_MAX_DIMS), false;
            out->lab[out->n++] = l;
        }
    }
    return true;
}

nb_tensor *nb_einsum(nb_ctx *ctx, const char *spec, int n, nb_tensor *const *inputs) {
    nb__op_name = "einsum";
    if (!ctx) return nb_set_error(NB_ERR_NULL, "einsum: context is NULL"), NULL;
    if (!spec || n < 1 || !inputs) return nb__fail(ctx, NB_ERR_NULL, "einsum: NULL spec or no operands");
    for (int i = 0; i < n; i++) {
        if (!inputs[i]) return ctx->status ? NULL : nb__fail(ctx, NB_ERR_NULL, "einsum: operand %d is NULL", i);
        if (nb__stale(ctx, "einsum", inputs[i])) return NULL;
        if (inputs[i]->dtype == NB_I64 || inputs[i]->dtype != inputs[0]->dtype)
            return nb__fail(ctx, NB_ERR_DTYPE, "einsum: operand %d is %s; operands must all be f32 or all f64", i,
                            nb_dtype_name(inputs[i]->dtype));
    }
    labeled *ops = nb_ctx_alloc(ctx, (size_t)n * sizeof *ops), out;
    int64_t size[ELL0 + NB_MAX_DIMS];
    if (!ops || !plan(ctx, spec, n, inputs, ops, &out, size)) return NULL;
    const uint64_t want = label_set(&out);
    /* later[i]: what the output and the operands after i need */
    uint64_t *later = nb_ctx_alloc(ctx, (size_t)n * sizeof *later);
    if (!later) return NULL;
    later[n - 1] = want;
    for (int i = n - 1; i > 0; i--) later[i - 1] = later[i] | label_set(&ops[i]);
    labeled acc = ops[0];
    if (!prepare(ctx, &acc, size, later[0])) return NULL;
    for (int i = 1; i < n; i++) {
        /* operand i keeps what the output, later operands or the result so far need */
        if (!prepare(ctx, &ops[i], size, later[i] | label_set(&acc)) || !contract(ctx, &acc, &ops[i], size, later[i]))
            return NULL;
    }
    int perm[NB_MAX_DIMS];
    bool identity = true;
    for (int d = 0; d < out.n; d++) identity &= (perm[d] = position(&acc, out.lab[d])) == d;
    return identity ? acc.t : nb_permute(ctx, acc.t, perm);
}
