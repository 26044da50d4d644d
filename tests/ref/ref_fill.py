"""What the nn reference scripts (nn_ref.py, layers_ref.py) share: the input formula of
nn_ref.h's ref_fill (element i of a tensor with seed s is sin(0.37 * i + s)) and the emitter of
C arrays, collecting into `out`."""
import math

import torch

torch.set_default_dtype(torch.float64)

out = []


def fill(shape, seed):
    n = math.prod(shape)
    return torch.tensor([math.sin(0.37 * i + seed) for i in range(n)]).reshape(shape)


def emit(name, t):
    vals = t.detach().reshape(-1).tolist()
    body = ",\n    ".join(", ".join("%.17g" % v for v in vals[i:i + 4]) for i in range(0, len(vals), 4))
    shape = ", ".join(str(s) for s in t.shape)
    out.append("/* shape (%s) */\nstatic const double %s[%d] = {\n    %s};\n" % (shape, name, len(vals), body))
