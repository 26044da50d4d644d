/* nabla — a deep-learning autodiff library in C11.
 *
 * Start here: tensor.h (tensors, errors, ownership), graph.h (context, backward, gradcheck),
 * ops.h (the differentiable ops), params.h (flat parameter buffers). Then: optim.h
 * (optimizers), regularize.h (penalties, dropout, early stopping), nn.h (layers), module.h
 * (models as trees of modules, their summary), data.h (data sets and batches), io.h
 * (safetensors, checkpoints, DOT and plots), search.h (hyperparameter search), functional.h
 * (vjp, jvp, hvp, Jacobians, Hessians, per-sample gradients). dist.h (MPI data-parallel
 * training) is separate, built only when MPI is found. */
#ifndef NABLA_H
#define NABLA_H

#include "tensor.h"
#include "graph.h"
#include "ops.h"
#include "params.h"
#include "optim.h"
#include "regularize.h"
#include "nn.h"
#include "module.h"
#include "data.h"
#include "io.h"
#include "fit.h"
#include "search.h"
#include "functional.h"

#endif
