/* nabla/data.h — IDX/CSV readers, splits, batch iterators. */
#ifndef NABLA_DATA_H
#define NABLA_DATA_H

#include "graph.h"
#include "params.h"

#endif
