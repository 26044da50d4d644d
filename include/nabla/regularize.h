/* nabla/regularize.h — penalties, dropout, constraints, early stopping. */
#ifndef NABLA_REGULARIZE_H
#define NABLA_REGULARIZE_H

#include "graph.h"
#include "params.h"

#endif
