/* nabla/io.h — safetensors, checkpoints, graph and plot output. */
#ifndef NABLA_IO_H
#define NABLA_IO_H

#include "graph.h"
#include "params.h"

#endif
