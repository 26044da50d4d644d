/* nabla — a deep-learning autodiff library in C11.
 *
 * Start here: tensor.h (tensors, errors, ownership), graph.h (context, backward, gradcheck),
 * ops.h (the differentiable ops), params.h (flat parameter buffers). */
#ifndef NABLA_H
#define NABLA_H

#include "tensor.h"
#include "graph.h"
#include "ops.h"
#include "params.h"

#endif
