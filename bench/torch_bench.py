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


def bench_time(fn):
    """Median seconds per call of fn(): warm-up, then 7 calibrated batches (as bench.h)."""
    t0 = time.perf_counter()
    warm = 0
    while warm < 2 or time.perf_counter() - t0 < 0.15 * BUDGET:
        fn()
        warm += 1
    per = (time.perf_counter() - t0) / warm
    n = max(1, int(0.85 * BUDGET / 7 / max(per, 1e-9)))
    ts = []
    for _ in range(7):
        s = time.perf_counter()
        for _ in range(n):
            fn()
        ts.append((time.perf_counter() - s) / n)
    return statistics.median(ts)


def report(row, config, metric, value, unit):
    print(f"R\t{row}\t{config}\t{metric}\t{value:.6g}\t{unit}", flush=True)


def row_info():
    print(f"I\ttorch\t{torch.__version__}, {torch.get_num_threads()} threads, "
          f"blas: {'BLAS' if torch.backends.mkl.is_available() is False else 'MKL'}", flush=True)


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


def main():
    global BUDGET
    threads, rows, args = 1, [], sys.argv[1:]
    i = 0
    while i < len(args):
        if args[i] == "--threads":
            threads = int(args[i + 1])
            i += 1
        elif args[i] == "--quick":
            BUDGET = 0.3
        else:
            rows.append(args[i])
        i += 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rows = rows or ["info", "chain", "engine", "matmul"]
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
        elif row == "triad":
            pass  # the bandwidth bound is measured on nabla's side only
        else:
            sys.exit(f"torch_bench: unknown row '{row}'")


if __name__ == "__main__":
    main()
