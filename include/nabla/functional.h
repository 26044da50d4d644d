/* nabla/functional.h — functional autodiff (PyTorch 1.13's torch.autograd.functional: vjp, jvp,
 * hvp, jacobian, hessian) and per-sample gradients of linear and conv2d layers (the building
 * block of DP-SGD).
 *
 * The functional forms take a function f (nb_fn, as for nb_gradcheck: it builds one output
 * tensor from n_in float inputs with ops on ctx) and differentiate it at `inputs`. f is called
 * once, with grad mode on, on stand-ins of the inputs that require grad; the inputs themselves,
 * their .grad and their requires_grad flag are left alone. Results are new step tensors.
 *
 * create_graph (torch's create_graph): false gives constants (the stand-ins are detached copies).
 * true records the computation, so the results depend differentiably on the inputs that require
 * grad (and on v): a second derivative, or a penalty on a Jacobian, is then one more nb_grad or
 * nb_backward away. An output that does not depend on an input gives zeros for it (torch's
 * strict=False). `out`, when not NULL, receives f's value (detached unless create_graph).
 *
 * Forward mode: nabla's ops have backward rules only, so nb_jvp computes J v by the double-vjp
 * identity, as torch.autograd.functional.jvp does: g(u) = J^T u is recorded (a backward with
 * create_graph, linear in a dummy u) and J v = d<g(u), v>/du is a backward through that
 * backward. It costs a forward, a recorded backward and a backward of the backward: 1.3x an
 * nb_vjp measured on a 4-layer tanh MLP (64x256, f32, one thread), where a true tangent pass
 * would cost about 1x but need a forward rule for every op. Every op on the path must be
 * differentiable twice (nabla's are).
 *
 * Errors (status returned, message in nb_ctx_error naming the function and the shapes): a NULL
 * ctx, f, input or result array (NB_ERR_NULL), an i64 input (NB_ERR_DTYPE), a v whose shape or
 * dtype does not match (NB_ERR_SHAPE / NB_ERR_DTYPE), a non-scalar f for nb_hvp / nb_hessian
 * (NB_ERR_SHAPE), f's own failure (its status). A context that has already failed returns its
 * status untouched. Grad mode is restored on return.
 */
#ifndef NABLA_FUNCTIONAL_H
#define NABLA_FUNCTIONAL_H

#include "graph.h"
#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- derivatives of a function ----------------------------------------------------------- */
/* torch.autograd.functional.vjp: vjps[i] = J_i^T v = d<v, f(x)>/dx_i, shaped like inputs[i].
 * v has f's shape and dtype; NULL when f returns one element (then 1). */
nb_status nb_vjp(nb_ctx *ctx, nb_fn f, int n_in, nb_tensor *const *inputs, void *user, nb_tensor *v, nb_tensor **out,
                 nb_tensor **vjps, bool create_graph);
/* torch.autograd.functional.jvp: *jvp = sum_i J_i v[i], shaped like f's output. v[i] has
 * inputs[i]'s shape and dtype; v may be NULL when every input has one element (then all 1). */
nb_status nb_jvp(nb_ctx *ctx, nb_fn f, int n_in, nb_tensor *const *inputs, void *user, nb_tensor *const *v,
                 nb_tensor **out, nb_tensor **jvp, bool create_graph);
/* torch.autograd.functional.hvp, for f returning one element: hvps[i] = sum_j H_ij v[j], with
 * H_ij = d^2 f / dx_i dx_j, shaped like inputs[i] (v as for nb_jvp). Computed as the gradient of
 * <grad f, v>, which is also torch's vhp (the same for a twice continuously differentiable f). */
nb_status nb_hvp(nb_ctx *ctx, nb_fn f, int n_in, nb_tensor *const *inputs, void *user, nb_tensor *const *v,
                 nb_tensor **out, nb_tensor **hvps, bool create_graph);
/* torch.autograd.functional.jacobian: jac[i] = d f / d inputs[i], dense, of shape
 * (f's shape..., inputs[i]'s shape...), one backward per element of f (for small functions:
 * the result has numel(f) * numel(x) elements). More than NB_MAX_DIMS dims is NB_ERR_SHAPE. */
nb_status nb_jacobian(nb_ctx *ctx, nb_fn f, int n_in, nb_tensor *const *inputs, void *user, nb_tensor **jac,
                      bool create_graph);
/* torch.autograd.functional.hessian, for f returning one element: hess[i * n_in + j] =
 * d^2 f / d inputs[i] d inputs[j], of shape (inputs[i]'s shape..., inputs[j]'s shape...), dense. */
nb_status nb_hessian(nb_ctx *ctx, nb_fn f, int n_in, nb_tensor *const *inputs, void *user, nb_tensor **hess,
                     bool create_graph);

/* ---- per-sample gradients (DP-SGD) ---------------------------------------------------------- */
/* The gradient of each sample's own loss with respect to a layer's weight and bias, from one
 * backward instead of N (Goodfellow's trick, as Opacus does it): when sample n's loss depends on
 * the layer only through row n of its output y, its weight gradient is gy_n^T x_n, with gy =
 * d loss / d y of the summed loss. Clip each sample's gradient, sum, add noise: DP-SGD.
 * Both are made of ops (differentiable again when gy or x require grad). The batch is axis 0.
 *
 * Linear layer y = nb_linear(x, w, b), x (N, ..., in), gy (N, ..., out) (y's shape):
 * gw (N, out, in) = sum over the middle axes of gy_n^T x_n, gb (N, out). */
nb_status nb_linear_per_sample_grads(nb_ctx *ctx, nb_tensor *x, nb_tensor *gy, nb_tensor **gw, nb_tensor **gb);
/* Conv2d y = nb_conv2d_ex(x, w, b, opts), x (N, C, H, W), w (O, C/groups, kh, kw), gy (N, O, OH, OW):
 * gw (N, O, C/groups, kh, kw) = gy_n (O, OH*OW) times unfold(x_n)^T per group, gb (N, O).
 * opts as given to the convolution (NULL: defaults). */
nb_status nb_conv2d_per_sample_grads(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, const nb_conv_opts *opts,
                                     nb_tensor *gy, nb_tensor **gw, nb_tensor **gb);

/* One layer of a model for nb_per_sample_grads: what its forward used, and where the results go. */
typedef enum { NB_PER_SAMPLE_LINEAR = 0, NB_PER_SAMPLE_CONV2D = 1 } nb_per_sample_kind;
typedef struct {
    nb_per_sample_kind kind;
    nb_tensor *x, *y;           /* the layer's input and output in this step's forward */
    nb_tensor *w;               /* its weight (conv2d: for the kernel size and groups) */
    nb_conv_opts conv;          /* conv2d's options (zero fields: the defaults) */
    nb_tensor *grad_w, *grad_b; /* out: per-sample gradients, (N, w's shape...) and (N, out); grad_b
                                   is what a bias would get (ignore it for a layer without one) */
} nb_per_sample_layer;
/* Per-sample gradients of every listed layer from one backward of loss (one element) to the
 * layers' outputs. loss must be the SUM of the samples' losses (NB_REDUCE_SUM); with a mean every
 * result is 1/N of the sample's gradient. Nothing may mix samples between a layer and the loss
 * (batch norm in train mode would). The backward does not touch .grad. */
nb_status nb_per_sample_grads(nb_ctx *ctx, nb_tensor *loss, int n_layers, nb_per_sample_layer *layers);

#ifdef __cplusplus
}
#endif
#endif
