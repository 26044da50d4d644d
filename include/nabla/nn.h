/* nabla/nn.h — layers: convolution, pooling, normalisation, embeddings, recurrent cells, initialisation. */
#ifndef NABLA_NN_H
#define NABLA_NN_H

#include "graph.h"
#include "params.h"

#endif
