"""Reference numbers for tests/optim and tests/regularize, from torch 1.13 (CPU).

Run: /usr/bin/python3 tests/ref/optim_ref.py  and paste the printed C tables into the tests.
Every optimizer starts from W0 and is fed the gradients G[0], G[1], G[2] (fixed, independent of
the weights), one step each; we print the weights after each step.
"""
import math
import torch

torch.set_printoptions(precision=10)
W0 = [[0.5, -1.0, 2.0]]
G = [[[0.1, -0.2, 0.3]], [[-0.05, 0.4, 0.25]], [[0.3, 0.01, -0.2]]]

CASES = [
    ("sgd", torch.optim.SGD, dict(lr=0.1)),
    ("sgd_wd", torch.optim.SGD, dict(lr=0.1, weight_decay=0.1)),
    ("momentum", torch.optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.05)),
    ("nesterov", torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("adagrad", torch.optim.Adagrad, dict(lr=0.1, lr_decay=0.1, weight_decay=0.1, initial_accumulator_value=0.2)),
    ("rmsprop", torch.optim.RMSprop, dict(lr=0.01)),
    ("rmsprop_cm", torch.optim.RMSprop, dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.1)),
    ("adam", torch.optim.Adam, dict(lr=0.1)),
    ("adam_ams", torch.optim.Adam, dict(lr=0.1, betas=(0.8, 0.5), weight_decay=0.1, amsgrad=True)),
    ("adamw", torch.optim.AdamW, dict(lr=0.1, weight_decay=0.1)),
    ("adadelta", torch.optim.Adadelta, dict(lr=1.0, rho=0.8, weight_decay=0.1)),
]


def c_array(name, rows):
    flat = [v for r in rows for v in r]
    return "static const double %s[%d] = {%s};" % (name, len(flat), ", ".join("%.10g" % v for v in flat))


print("/* optimizer trajectories: weights after steps 1, 2, 3 */")
for name, cls, kw in CASES:
    w = torch.tensor(W0, dtype=torch.float32, requires_grad=True)
    opt = cls([w], **kw)
    rows = []
    for g in G:
        w.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
        rows.append(w.detach().flatten().tolist())
    print(c_array("REF_" + name.upper(), rows))

print("/* the same trajectories with float64 parameters and gradients (tests/optim/test_optim_f64.c) */")
for name, cls, kw in CASES:
    w = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
    opt = cls([w], **kw)
    rows = []
    for g in G:
        w.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        rows.append(w.detach().flatten().tolist())
    flat = [v for r in rows for v in r]
    print("static const double REF64_%s[%d] = {%s};" % (name.upper(), len(flat), ", ".join("%.17g" % v for v in flat)))

print("/* ReduceLROnPlateau(mode=min, factor=0.5, patience=2, cooldown=1), lr 1.0 */")
w = torch.zeros(1, requires_grad=True)
opt = torch.optim.SGD([w], lr=1.0)
sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2, cooldown=1)
metrics = [1.0, 0.9, 0.95, 0.91, 0.92, 0.93, 0.85, 0.86, 0.87, 0.88, 0.89, 0.9]
lrs = []
for m in metrics:
    sched.step(m)
    lrs.append(opt.param_groups[0]["lr"])
print(c_array("PLATEAU_METRICS", [metrics]))
print(c_array("PLATEAU_LR", [lrs]))

print("/* label smoothing: F.cross_entropy(logits, labels, label_smoothing=0.2) */")
logits = torch.tensor([[1.0, -0.5, 2.0, 0.3], [0.2, 0.1, -1.0, 1.5], [-2.0, 0.7, 0.0, 0.4]], dtype=torch.float64,
                      requires_grad=True)
labels = torch.tensor([2, 0, 3])
for red in ["mean", "sum", "none"]:
    out = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.2, reduction=red)
    print(c_array("LS_" + red.upper(), [out.detach().flatten().tolist()]))
out = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.2)
out.backward()
print(c_array("LS_GRAD_MEAN", logits.grad.tolist()))
