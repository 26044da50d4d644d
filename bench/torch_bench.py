"""PyTorch's side of the benchmark: the same work as bench/nabla.c, row for row.

    /usr/bin/python3 bench/torch_bench.py [--threads T] [--quick] [ROW ...]

Prints the same tab-separated result lines as bench_nabla (R row config metric value unit).
Run it with /usr/bin/python3 (the interpreter that has torch). Threads are set explicitly with
torch.set_num_threads; bench/run.py also sets OMP_NUM_THREADS / BLIS_NUM_THREADS.
"""
import statistics
import sys
import time

import torch

BUDGET = 1.0
BATCHES = 7


def bench_time(fn):
    """Median seconds per call of fn(): warm-up, then BATCHES calibrated batches (as bench.h)."""
    t0 = time.perf_counter()
    warm = 0
    while warm < 2 or time.perf_counter() - t0 < 0.15 * BUDGET:
        fn()
        warm += 1
    per = (time.perf_counter() - t0) / warm
    n = max(1, int(0.85 * BUDGET / BATCHES / max(per, 1e-9)))
    ts = []
    for _ in range(BATCHES):
        s = time.perf_counter()
        for _ in range(n):
            fn()
        ts.append((time.perf_counter() - s) / n)
    return statistics.median(ts)


def report(row, config, metric, value, unit):
    print(f"R\t{row}\t{config}\t{metric}\t{value:.6g}\t{unit}", flush=True)


def row_info():
    print(f"I\ttorch\t{torch.__version__}, blas: {'MKL' if torch.backends.mkl.is_available() else 'BLAS (libblas.so.3)'}",
          flush=True)


def chain_case(row, n, add_only, threads):
    x = torch.full((n,), 0.5, requires_grad=True)
    w = torch.full((n,), 0.0 if add_only else 0.9, requires_grad=True)
    n_ops = 1000

    def step():
        y = x
        if add_only:
            for _ in range(n_ops):
                y = y + w
        else:
            for _ in range(n_ops // 2):
                y = torch.tanh(y * w)
        y.sum().backward()

    t = bench_time(step)
    cfg = f"n={n} T={threads}"
    if add_only:
        report(row, cfg, "time/node", t / (n_ops + 1) * 1e6, "us")
    else:
        report(row, cfg, "time/op", t / n_ops * 1e6, "us")


def mm_case(name, dims, threads):
    g = torch.Generator().manual_seed(7)
    M = dims[0]
    layers = []
    for l in range((len(dims) - 1) // 2):
        K, N = dims[1 + 2 * l], dims[2 + 2 * l]
        a = torch.randn(M, K, generator=g).requires_grad_()
        w = (0.05 * torch.randn(N, K, generator=g)).requires_grad_()
        gy = torch.randn(M, N, generator=g)
        layers.append((a, w, gy))

    def step():
        for a, w, gy in layers:
            y = a @ w.t()
            torch.autograd.grad(y, (a, w), gy)

    t = bench_time(step)
    report("matmul", f"{name} T={threads}", "time", t * 1e3, "ms")


# ---- rows 1 and 5: the MLP of the brief, trained on Fashion-MNIST held in memory -------------
DATA = "/usr/share/datasets/fashion-mnist"
MLP_STEPS_MEMORY = 300  # steps of the memory run (row 5)


def load_data():
    """Training images as float32 (N, 784) in [0, 1] and labels int64 (N): as bench/nabla.c."""
    import gzip
    import os
    try:
        with gzip.open(os.path.join(DATA, "train-images-idx3-ubyte.gz")) as f:
            img = f.read()
        with gzip.open(os.path.join(DATA, "train-labels-idx1-ubyte.gz")) as f:
            lab = f.read()
        x = torch.frombuffer(bytearray(img[16:]), dtype=torch.uint8).view(-1, 784).float().div_(255.0)
        y = torch.frombuffer(bytearray(lab[8:]), dtype=torch.uint8).long()
        return x, y
    except OSError:  # same fallback as nabla's side: a fixed synthetic set of the same size
        g = torch.Generator().manual_seed(1)
        return torch.rand(60000, 784, generator=g), torch.randint(0, 10, (60000,), generator=g)


def make_mlp():
    import torch.nn as nn
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 128), nn.ReLU(),
                          nn.Dropout(0.2), nn.Linear(128, 10))
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    # L2 1e-4 on the weights (not biases): PyTorch's idiom, Adam's coupled weight decay,
    # which is the gradient of (1e-4 / 2) * sum(w^2), the penalty nabla adds to its loss
    opt = torch.optim.Adam([{"params": decay, "weight_decay": 1e-4}, {"params": rest, "weight_decay": 0.0}],
                           lr=1e-3)
    return model, opt


class MlpRun:
    def __init__(self, x, y, batch):
        self.x, self.y, self.batch, self.pos = x, y, batch, 0
        self.model, self.opt = make_mlp()
        self.model.train()
        self.loss = None

    def step(self):
        b = self.batch
        if self.pos + b > self.x.shape[0]:
            self.pos = 0
        xb, yb = self.x[self.pos:self.pos + b], self.y[self.pos:self.pos + b]
        self.pos += b
        loss = torch.nn.functional.cross_entropy(self.model(xb), yb)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.loss = loss


def row_mlp(threads, data):
    for batch in (64, 256):
        r = MlpRun(data[0], data[1], batch)
        t = bench_time(r.step)
        report("mlp", f"B={batch} T={threads}", "samples/s", batch / t, "samples/s")


def row_memory():
    """Row 5: a whole training process (data, model, optimizer, 300 steps at batch 64). The data
    set stays in its file's bytes (47 MB, uint8) and each batch is converted to float32, as on
    nabla's side: what is compared is the framework's own memory."""
    import gzip
    import os
    import resource
    try:
        with gzip.open(os.path.join(DATA, "train-images-idx3-ubyte.gz")) as f:
            f.read(16)
            x8 = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8).view(-1, 784)
        with gzip.open(os.path.join(DATA, "train-labels-idx1-ubyte.gz")) as f:
            f.read(8)
            y = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8).long()
    except OSError:
        g = torch.Generator().manual_seed(1)
        x8 = torch.randint(0, 256, (60000, 784), generator=g, dtype=torch.uint8)
        y = torch.randint(0, 10, (60000,), generator=g)
    r = MlpRun(None, y, 64)
    pos = 0
    for _ in range(MLP_STEPS_MEMORY):
        if pos + 64 > x8.shape[0]:
            pos = 0
        r.x, r.pos = x8[pos:pos + 64].float().div_(255.0), 0
        r.y = y[pos:pos + 64]
        pos += 64
        r.step()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    report("memory", "mlp B=64 T=1", "peak_rss", rss, "MiB")
    report("memory", "mlp B=64 T=1", "final_loss", float(r.loss), "")


# ---- rows 7 and 8: conv2d forward + backward, the CNN training step ---------------------------
def conv_case(B, C, O, HW, threads, k=3, s=1):
    """conv2d k x k, stride s, padding k // 2, no bias, forward + gradients of x and w for a given
    output gradient (as bench/nabla.c's conv_case, whose config names these are)."""
    g = torch.Generator().manual_seed(11)
    x = torch.randn(B, C, HW, HW, generator=g).requires_grad_()
    w = (0.1 * torch.randn(O, C, k, k, generator=g)).requires_grad_()
    ohw = (HW + 2 * (k // 2) - k) // s + 1
    gy = torch.randn(B, O, ohw, ohw, generator=g)

    def step():
        y = torch.nn.functional.conv2d(x, w, None, s, k // 2)
        torch.autograd.grad(y, (x, w), gy)

    t = bench_time(step)
    kind = "" if (k, s) == (3, 1) else f" k{k} s{s}"
    report("conv", f"B={B} {C}->{O} {HW}x{HW}{kind} T={threads}", "time", t * 1e3, "ms")


# every conv layer shape of fashion_cnn (the first two) and of the small residual network
CONV_SHAPES = [(64, 1, 32, 28, 3, 1), (64, 32, 64, 14, 3, 1), (64, 1, 16, 28, 3, 1), (64, 16, 16, 28, 3, 1),
               (64, 16, 32, 28, 3, 2), (64, 32, 32, 14, 3, 1), (64, 16, 32, 28, 1, 2)]


def norm_case(row, shape, threads):
    """Batch norm (row bn, training mode) or layer norm over the last axis (row ln), affine:
    forward + gradients of x, weight and bias."""
    g = torch.Generator().manual_seed(13)
    C = shape[-1] if row == "ln" else shape[1]
    x = (0.5 + 2 * torch.randn(*shape, generator=g)).requires_grad_()
    w = (1 + 0.1 * torch.randn(C, generator=g)).requires_grad_()
    b = (0.1 * torch.randn(C, generator=g)).requires_grad_()
    rm, rv = torch.zeros(C), torch.ones(C)
    gy = torch.randn(*shape, generator=g)

    def step():
        if row == "ln":
            y = torch.nn.functional.layer_norm(x, (C,), w, b, 1e-5)
        else:
            y = torch.nn.functional.batch_norm(x, rm, rv, w, b, True, 0.1, 1e-5)
        torch.autograd.grad(y, (x, w, b), gy)

    t = bench_time(step)
    report(row, f"({','.join(str(d) for d in shape)}) T={threads}", "time", t * 1e3, "ms")


# fashion_cnn's two batch norms, then the residual network's
BN_SHAPES = [(64, 32, 28, 28), (64, 64, 14, 14), (64, 16, 28, 28), (64, 32, 14, 14)]
# a transformer's tokens: 196 per image (ViT-S/16-like) of a batch of 64, width 256
LN_SHAPE = (64 * 196, 256)


def make_cnn():
    """examples/fashion_cnn.c's network (width 32, hidden 128) and Adam (lr 1e-3)."""
    import torch.nn as nn
    model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Dropout(0.25), nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.5),
                          nn.Linear(128, 10))
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def train_step_row(row, model, opt, threads, data, b=64):
    """samples/s of one training step (forward, cross-entropy, backward, optimizer) over
    consecutive batches of b Fashion-MNIST images, wrapping at the end of the set."""
    x, y = data[0].view(-1, 1, 28, 28), data[1]
    model.train()
    state = {"pos": 0}

    def step():
        pos = state["pos"] if state["pos"] + b <= x.shape[0] else 0
        xb, yb = x[pos:pos + b], y[pos:pos + b]
        state["pos"] = pos + b
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()

    t = bench_time(step)
    report(row, f"B={b} T={threads}", "samples/s", b / t, "samples/s")


def row_cnn(threads, data):
    train_step_row("cnn", *make_cnn(), threads, data)


def row_resnet(threads, data):
    """One training step of the small residual network (make_resnet(False)), batch 64, Adam."""
    model = make_resnet(False)
    train_step_row("resnet", model, torch.optim.Adam(model.parameters(), lr=1e-3), threads, data)


# ---- rows cnn-memory, resnet-memory, wide-memory (issue 15): memory of one step --------------
def rss_reset_mib():
    """Reset the kernel's high-water mark (ru_maxrss follows it) and return VmRSS now, in MiB."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    with open("/proc/self/status") as f:
        return next(float(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024.0


def mem_case(row, cfg, step):
    """As bench/nabla.c's mem_case: RSS after setup, 3 steps, growth of the peak over it."""
    import resource
    base = rss_reset_mib()
    for _ in range(3):
        step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    report(row, cfg, "rss_growth", peak - base, "MiB")
    report(row, cfg, "peak_rss", peak, "MiB")


def conv_bn(cin, cout, k, stride, relu):
    import torch.nn as nn
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class Block(torch.nn.Module):
    """torchvision's BasicBlock: relu(conv-bn-relu-conv-bn (x) + shortcut(x)), in-place ReLUs."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = torch.nn.Sequential(conv_bn(cin, cout, 3, stride, True), conv_bn(cout, cout, 3, 1, False))
        self.proj = conv_bn(cin, cout, 1, stride, False) if cin != cout or stride != 1 else None

    def forward(self, x):
        y = self.body(x)
        y += self.proj(x) if self.proj is not None else x
        return torch.relu_(y)


def make_resnet(wide):
    """bench/nabla.c's res_net: issue 15's small residual network, or ResNet-18's body (wide)."""
    import torch.nn as nn
    if wide:
        mods, cin = [conv_bn(3, 64, 3, 1, True)], 64
        for s, w in enumerate((64, 128, 256, 512)):
            for b in range(2):
                mods.append(Block(cin, w, 2 if b == 0 and s > 0 else 1))
                cin = w
    else:
        mods = [conv_bn(1, 16, 3, 1, True), Block(16, 16, 1), Block(16, 32, 2)]
    return nn.Sequential(*mods, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512 if wide else 32, 10))


def row_net_memory(row, case):
    """One case per process: ROW/train (forward, backward, Adam) or ROW/eval (eval mode, no grad)."""
    train = case == "train"
    if row == "wide-memory":
        batch = 32 if train else 128
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(batch, 3, 64, 64, generator=g), torch.randint(0, 10, (batch,), generator=g)
        model = make_resnet(True)
    else:
        batch = 64 if train else 500
        x, y = load_data()
        x = x.view(-1, 1, 28, 28)
        model = make_cnn()[0] if row == "cnn-memory" else make_resnet(False)
    cfg = f"{case} B={batch} T=1"
    if train:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.train()
        state = {"pos": 0}

        def step():
            pos = state["pos"] if state["pos"] + batch <= x.shape[0] else 0
            xb, yb = x[pos:pos + batch], y[pos:pos + batch]
            state["pos"] = pos + batch
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    else:
        model.eval()

        def step():
            with torch.no_grad():
                model(x[:batch])
    mem_case(row, cfg, step)


# ---- row 2: one optimizer step on a single 10M-element parameter ------------------------------
OPT_N = 10_000_000


def row_optim(threads):
    g = torch.Generator().manual_seed(3)
    for name in ("adam", "sgd_momentum"):
        p = torch.nn.Parameter(torch.randn(OPT_N, generator=g))
        p.grad = torch.randn(OPT_N, generator=g)
        if name == "adam":
            opt = torch.optim.Adam([p], lr=1e-3)
            bytes_moved = 7 * 4 * OPT_N  # read p, g, m, v; write p, m, v
        else:
            opt = torch.optim.SGD([p], lr=1e-3, momentum=0.9)
            bytes_moved = 5 * 4 * OPT_N  # read p, g, buf; write p, buf
        t = bench_time(opt.step)
        cfg = f"{name} n=10M T={threads}"
        report("optim", cfg, "time", t * 1e3, "ms")
        report("optim", cfg, "bandwidth", bytes_moved / t * 1e-9, "GB/s")


def main():
    global BUDGET, BATCHES
    threads, rows, args = 1, [], sys.argv[1:]
    i = 0
    while i < len(args):
        if args[i] == "--threads":
            threads = int(args[i + 1])
            i += 1
        elif args[i] == "--quick":
            BUDGET, BATCHES = 0.1, 3
        else:
            rows.append(args[i])
        i += 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rows = rows or ["info", "mlp", "cnn", "resnet", "conv", "bn", "ln", "optim", "chain", "engine", "matmul"]
    data = load_data() if any(r in rows for r in ("mlp", "cnn", "resnet")) else None
    for row in rows:
        if row == "info":
            row_info()
        elif row == "chain":
            chain_case("chain", 1, False, threads)
            chain_case("chain", 16, False, threads)
        elif row == "engine":
            chain_case("engine", 0, True, threads)
            chain_case("engine", 1, True, threads)
        elif row == "matmul":
            mm_case("1024x1024x1024", [1024, 1024, 1024], threads)
            mm_case("mlp B=64", [64, 784, 256, 256, 128, 128, 10], threads)
            mm_case("mlp B=256", [256, 784, 256, 256, 128, 128, 10], threads)
        elif row == "mlp":
            row_mlp(threads, data)
        elif row == "cnn":
            row_cnn(threads, data)
        elif row == "conv":
            for shape in CONV_SHAPES:
                conv_case(*shape[:4], threads, *shape[4:])
        elif row == "bn":
            for shape in BN_SHAPES:
                norm_case("bn", shape, threads)
        elif row == "ln":
            norm_case("ln", LN_SHAPE, threads)
        elif row == "resnet":
            row_resnet(threads, data)
        elif row == "optim":
            row_optim(threads)
        elif row == "memory":
            row_memory()
        elif row.split("/")[0] in ("cnn-memory", "resnet-memory", "wide-memory") and row[row.find("/") + 1:] in (
                "train", "eval"):
            row_net_memory(*row.split("/"))
        elif row == "triad":
            pass  # the bandwidth bound is measured on nabla's side only
        else:
            sys.exit(f"torch_bench: unknown row '{row}'")


if __name__ == "__main__":
    main()
