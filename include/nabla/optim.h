/* nabla/optim.h — optimizers, learning-rate schedules, gradient clipping. */
#ifndef NABLA_OPTIM_H
#define NABLA_OPTIM_H

#include "graph.h"
#include "params.h"

#endif
