/* 1-D convolution as a view over the 2-D one: (N, C, L) is (N, C, 1, L) and the kernel (O, C/g, k)
 * is (O, C/g, 1, k), so conv1d inherits conv2d's kernels, backward rules and checks. */
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
