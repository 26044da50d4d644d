/* 1-D and 3-D convolution over the 2-D one. conv1d is a view: (N, C, L) is (N, C, 1, L) and the
 * kernel (O, C/g, k) is (O, C/g, 1, k). conv3d is a sum over the kernel's depth taps of 2-D
 * convolutions of depth slices. Both inherit conv2d's kernels, backward rules and checks. */
#include "../internal.h"

nb_tensor *nb_conv1d(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, const nb_conv_opts *opts) {
    if (nb__null(ctx, "conv1d", 2, x, w)) return NULL;
    char a[128], c[128];
    if (x->ndim != 3 || w->ndim != 3)
        return nb__fail(ctx, NB_ERR_SHAPE, "conv1d: input %s must be (N, C, L) and weight %s (O, C/groups, k)",
                        nb_shape_str(x, a, sizeof a), nb_shape_str(w, c, sizeof c));
    nb_conv_opts o = opts ? *opts : (nb_conv_opts){0};
    if (o.stride[1] || o.padding[1] || o.dilation[1] || o.output_padding[0] || o.output_padding[1])
        return nb__fail(ctx, NB_ERR_VALUE,
                        "conv1d: options take the first entry of stride, padding and dilation only (the second must be 0; "
                        "no output_padding)");
    o.stride[1] = o.stride[0], o.padding[1] = o.padding[0], o.dilation[1] = o.dilation[0];
    o.stride[0] = 1, o.padding[0] = 0, o.dilation[0] = 1;
    return nb_squeeze(ctx, nb_conv2d_ex(ctx, nb_unsqueeze(ctx, x, 2), nb_unsqueeze(ctx, w, 2), b, &o), 2);
}

nb_tensor *nb_conv3d(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, const nb_conv3d_opts *opts) {
    if (nb__null(ctx, "conv3d", 2, x, w)) return NULL;
    char a[128], c[128];
    if (x->ndim != 5 || w->ndim != 5)
        return nb__fail(ctx, NB_ERR_SHAPE, "conv3d: input %s must be (N, C, D, H, W) and weight %s (O, C/groups, kd, kh, kw)",
                        nb_shape_str(x, a, sizeof a), nb_shape_str(w, c, sizeof c));
    nb_conv3d_opts o = opts ? *opts : (nb_conv3d_opts){0};
    for (int d = 0; d < 3; d++) {
        if (!o.stride[d]) o.stride[d] = 1;
        if (!o.dilation[d]) o.dilation[d] = 1;
        if (o.stride[d] < 1 || o.dilation[d] < 1 || o.padding[d] < 0)
            return nb__fail(ctx, NB_ERR_VALUE, "conv3d: axis %d: stride %lld, padding %lld, dilation %lld invalid (need stride, dilation >= 1, padding >= 0)",
                            d, (long long)o.stride[d], (long long)o.padding[d], (long long)o.dilation[d]);
    }
    const int64_t N = x->shape[0], D = x->shape[2], kd = w->shape[2];
    const int64_t span = D + 2 * o.padding[0] - o.dilation[0] * (kd - 1) - 1, OD = span / o.stride[0] + 1;
    if (span < 0)
        return nb__fail(ctx, NB_ERR_SHAPE, "conv3d: kernel %s is deeper than the padded input %s (padding %lld)",
                        nb_shape_str(w, c, sizeof c), nb_shape_str(x, a, sizeof a), (long long)o.padding[0]);
    const nb_conv_opts o2 = {.stride = {o.stride[1], o.stride[2]}, .padding = {o.padding[1], o.padding[2]},
                             .dilation = {o.dilation[1], o.dilation[2]}, .groups = o.groups};
    nb_tensor *xp = nb_pad(ctx, x, 6, (const int64_t[]){0, 0, 0, 0, o.padding[0], o.padding[0]}, NB_PAD_CONSTANT, 0.0);
    nb_tensor *acc = NULL;
    for (int64_t i = 0; i < kd; i++) {
        /* the depth slices tap i reads, as a batch of N*OD images (N, OD, C, H, W) */
        const int64_t d0 = i * o.dilation[0];
        nb_tensor *xs = nb_permute(ctx, nb_slice(ctx, xp, 2, d0, d0 + (OD - 1) * o.stride[0] + 1, o.stride[0]),
                                   (const int[]){0, 2, 1, 3, 4});
        nb_tensor *x2 = nb_reshape(ctx, xs, NB_SHAPE(N * OD, x->shape[1], x->shape[3], x->shape[4]));
        nb_tensor *wi = nb_squeeze(ctx, nb_slice(ctx, w, 2, i, i + 1, 1), 2);
        nb_tensor *y = nb_conv2d_ex(ctx, x2, wi, i == 0 ? b : NULL, &o2);
        acc = i == 0 ? y : nb_add(ctx, acc, y);
    }
    if (!acc) return NULL;
    nb_tensor *y = nb_reshape(ctx, acc, NB_SHAPE(N, OD, acc->shape[1], acc->shape[2], acc->shape[3]));
    return nb_contiguous(ctx, nb_permute(ctx, y, (const int[]){0, 2, 1, 3, 4}));
}
