#!/usr/bin/python3
"""nabla vs PyTorch on this machine: one command builds, runs both sides, prints the table.

    /usr/bin/python3 bench/run.py [--quick] [--rounds N] [--threads 1,2] [--rows chain,matmul]
                                  [--blis-arch auto|default|NAME] [--isa native|avx2]
                                  [--markdown FILE]
    /usr/bin/python3 bench/run.py --rows cnn-memory,resnet-memory,wide-memory --rounds 1

Rows (BENCHMARKS.md describes each): mlp, cnn, resnet, conv, bn, ln, optim, chain, matmul, engine
(the default set), memory, triad, and issue 15's opt-in memory rows. Issue 15's speed rows:
  resnet  samples/s of one training step (forward, backward, Adam) of the small residual network
          of the resnet-memory row (stem 1->16, block 16, block 16->32 stride 2; batch 64,
          Fashion-MNIST); target nabla/PyTorch >= 1.5, as for cnn (fashion_cnn's step).
  conv    conv2d forward + gradients of input and weight, batch 64, at every conv layer shape of
          fashion_cnn (the two "B=64 C->O HxW" configs, 3x3 stride 1) and of that residual network
          (configs "... k1 s2" / "k3 s2" for the other kernels and strides); target time
          nabla/PyTorch <= 1.0. nabla's side also times the GEMMs that src/ops/conv.c calls for the
          same work (per sample: forward (O x K)(K x OH*OW), input gradient (K x O)(O x OH*OW),
          weight gradient (O x OH*OW)(OH*OW x K), K = C*kh*kw) called directly on BLIS:
          blis_gemm_time, and frac_of_blis_gemm = blis_gemm_time / nabla's conv time, the share of
          nabla's conv time that the bare GEMMs would take (informative, no target; the rest is
          unfold/fold, threading and the engine).
  bn      batch norm forward + backward (training mode, affine: gradients of x, weight, bias) on
          the batch-norm shapes of fashion_cnn ((64,32,28,28), (64,64,14,14)) and of the residual
          network ((64,16,28,28), (64,32,14,14)). copy_time is one read+write pass over the same
          number of floats (a memcpy split over the T threads, in the same process);
          frac_of_copy_bound = copy_time / nabla's bn time, target >= 1/1.5 = 0.667: batch norm
          forward + backward within 1.5x the time of a single copy of its input.
  ln      layer norm of (64*196, 256) over the last axis (a transformer's tokens), forward +
          backward as bn; copy_time and frac_of_copy_bound as bn's, no target.

  fit     (opt-in, nabla only) the same module MLP (784-256-128-10) and Adam trained over a
          6400-image epoch slice by nb_fit and by the hand-written loop it replaces, alternating,
          the minimum over rounds of each: samples/s (wall), nb_fit/hand speed ratio by wall and
          (at 1 thread) by thread CPU time, target >= 0.98; mallocs/step of the context over a
          warmed nb_fit epoch, target 0.

The memory rows of issue 15 (opt-in) run each case (train, eval) of each network in its own
process per side, at 1 thread: rss_growth is the peak RSS of 3 steps minus the RSS after setup.

Each round runs, for every thread count, nabla's program (build/bench_nabla) and PyTorch's
script (bench/torch_bench.py) one after the other, swapping which goes first every round. Both
get the same environment: OMP_NUM_THREADS, BLIS_NUM_THREADS (and the programs set their own
thread counts explicitly), and the same BLIS sub-configuration (PyTorch's BLAS is the same
BLIS library through libblas.so.3), and for the speed rows glibc's malloc thresholds pinned
(MALLOC_PINNED below). Every figure is the median over rounds of per-process
medians; warm-up is never timed. Ratios are nabla / PyTorch of the same metric.

--quick: 2 rounds with short measurements (two to three minutes for the default rows on a quiet
machine); the default is 5 rounds.
--blis-arch: Debian's BLIS 0.9 does not know AMD CPUs newer than family 0x19 and falls back to
its slow reference kernels there; nabla then picks skx (AVX-512) or haswell (AVX2) itself.
'auto' (default) gives both sides the kernel set nabla runs on; 'default' leaves BLIS's own
choice; a name (skx, haswell, zen3, ...) forces that set on both sides.
--isa avx2: nabla built for AVX2 + FMA only (build-avx2/, -DNABLA_NATIVE=OFF -mavx2 -mfma), so
its own kernels (the direct convolution, element-wise loops) run as on an AVX2-only CPU, and
PyTorch's oneDNN and ATen kernels held to AVX2 (DNNL_MAX_CPU_ISA, ATEN_CPU_CAPABILITY); with
--blis-arch haswell this is the AVX2-only EPYC's configuration on an AVX-512 machine. 'native'
(default): build/, -march=native.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
NABLA = os.path.join(BUILD, "bench_nabla")
TORCH = [sys.executable if "torch" in sys.modules else "/usr/bin/python3", os.path.join(ROOT, "bench", "torch_bench.py")]
# glibc's malloc raises its mmap threshold as large blocks are freed, so whether PyTorch's tensors
# come from fresh (page-faulting) mmaps or from the heap depends on the history of the process:
# the same row measured 2x apart between runs. The speed rows pin both thresholds so every
# large block is reused from the heap: PyTorch's allocator at its best (nabla's arena does not
# call malloc per step). The memory rows keep glibc's defaults, as a user's process has them.
MALLOC_PINNED = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 31)}
ALL_ROWS = ["mlp", "cnn", "resnet", "conv", "bn", "ln", "optim", "chain", "matmul", "engine"]
# issue 15's memory rows, opt-in (--rows cnn-memory,resnet-memory,wide-memory): each case
# (train, eval) runs in its own process per side, at 1 thread
NET_MEMORY_ROWS = ["cnn-memory", "resnet-memory", "wide-memory"]
# rows that compare nabla with itself: PyTorch's side does not run them
NABLA_ONLY_ROWS = ["fit"]

# (row, metric) -> (which value the target applies to, comparison, bound) ; per-config bounds
# as a function of the config string.
def target(row, cfg, metric):
    if row == "mlp" and metric == "samples/s":
        return ("ratio", ">=", 2.0 if "B=64 " in cfg + " " else 1.5)
    if row in ("cnn", "resnet") and metric == "samples/s":
        return ("ratio", ">=", 1.5)
    if row == "conv" and metric == "time":
        return ("ratio", "<=", 1.0)
    if row == "bn" and metric == "frac_of_copy_bound":
        return ("nabla", ">=", 1 / 1.5)
    if row == "optim" and metric == "time":
        return ("ratio", "<=", 0.25)
    if row == "optim" and metric == "frac_of_bound":
        return ("nabla", ">=", 0.75)
    if row == "chain" and metric == "time/op":
        return ("ratio", "<=", 0.05)
    if row == "matmul" and metric == "frac_of_blis":
        return ("nabla", ">=", 0.95)
    if row == "memory" and metric == "peak_rss":
        return ("ratio", "<=", 1 / 3)
    if row in NET_MEMORY_ROWS and metric == "rss_growth":
        return ("ratio", "<=", 1.0)
    if row == "fit" and metric.startswith("nb_fit/hand"):
        return ("nabla", ">=", 0.98)
    if row == "fit" and metric == "mallocs/step":
        return ("nabla", "<=", 0)
    return None


ISA_FLAGS = {"native": [], "avx2": ["-DNABLA_NATIVE=OFF", "-DCMAKE_C_FLAGS=-mavx2 -mfma -mf16c"]}
# PyTorch picks its kernels at run time: oneDNN's convolutions and ATen's vectorised loops are
# held to AVX2 the same way (oneDNN 2.6 and ATen 1.13 read these)
ISA_ENV = {"native": {}, "avx2": {"DNNL_MAX_CPU_ISA": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}}


def use_isa(isa):
    global BUILD, NABLA
    if isa != "native":
        BUILD = os.path.join(ROOT, "build-" + isa)
        NABLA = os.path.join(BUILD, "bench_nabla")


def build(isa):
    if not os.path.exists(os.path.join(BUILD, "CMakeCache.txt")):
        subprocess.run(["cmake", "-S", ROOT, "-B", BUILD, "-DCMAKE_BUILD_TYPE=Release"] + ISA_FLAGS[isa], check=True,
                       stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", BUILD, "-j2", "--target", "bench_nabla"], check=True,
                   stdout=subprocess.DEVNULL)


def run(cmd, env):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"run.py: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")
    res, info = [], {}
    for line in p.stdout.splitlines():
        f = line.split("\t")
        if f[0] == "R" and len(f) == 6:
            res.append((f[1], f[2], f[3], float(f[4]), f[5]))
        elif f[0] == "I" and len(f) == 3:
            info[f[1]] = f[2]
    return res, info


def blis_env(choice, base_env):
    """The BLIS_ARCH_TYPE both sides get (None: BLIS's own choice)."""
    if choice == "default":
        return None
    _, info = run([NABLA, "info"], base_env)
    ids = dict(kv.split("=") for kv in info.get("blis_archs", "").split())
    if choice != "auto":
        if choice not in ids:
            sys.exit(f"run.py: BLIS has no sub-configuration '{choice}' (known: {' '.join(ids)})")
        return ids[choice]
    # the kernel set nabla runs on (BLIS's own choice, or nabla's where BLIS would fall back to
    # generic: src/graph/threads.c), given to PyTorch (the same BLIS) too
    m = re.search(r"\barch (\w+)", info.get("blis", ""))
    return ids.get(m.group(1)) if m else None


def fmt(v):
    if v is None:
        return "-"
    if v == 0:
        return "0"
    a = abs(v)
    return f"{v:.3g}" if a < 1000 else f"{v:.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rows", default=",".join(ALL_ROWS))
    ap.add_argument("--blis-arch", default="auto")
    ap.add_argument("--isa", choices=sorted(ISA_FLAGS), default="native")
    ap.add_argument("--markdown")
    ap.add_argument("--no-build", action="store_true")
    a = ap.parse_args()
    use_isa(a.isa)
    rounds = a.rounds or (2 if a.quick else 5)
    threads = [int(t) for t in a.threads.split(",")]
    rows = [r for r in a.rows.split(",") if r]
    t_start = time.time()
    if not a.no_build:
        build(a.isa)

    base = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "BLIS_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BLIS_ARCH_TYPE"):
        base.pop(k, None)
    base.update(ISA_ENV[a.isa])
    arch = blis_env(a.blis_arch, base)
    if arch is not None:
        base["BLIS_ARCH_TYPE"] = arch
    _, info = run([NABLA, "info"], base)
    _, tinfo = run(TORCH + ["info"], base)
    info.update(tinfo)
    with open("/proc/loadavg") as f:
        load_before = f.read().split()[:3]

    quick = ["--quick"] if a.quick else []
    samples = {}  # (row, cfg, metric, side) -> [values]
    units = {}
    order = []
    mem_rows = [r for r in rows if r == "mlp"]
    net_mem_rows = [r for r in rows if r in NET_MEMORY_ROWS]
    bench_rows = [r for r in rows if r != "memory" and r not in NET_MEMORY_ROWS]
    for r in range(rounds):
        for t in threads if bench_rows else []:  # no row named: the programs would run all
            env = dict(base, OMP_NUM_THREADS=str(t), BLIS_NUM_THREADS=str(t), **MALLOC_PINNED)
            sides = [("nabla", [NABLA]), ("torch", TORCH)]
            if r % 2:
                sides.reverse()
            for side, cmd in sides:
                side_rows = [r for r in bench_rows if side == "nabla" or r not in NABLA_ONLY_ROWS]
                if not side_rows:
                    continue
                res, _ = run(cmd + ["--threads", str(t)] + quick + side_rows, env)
                for row, cfg, metric, v, unit in res:
                    key = (row, cfg, metric)
                    if key not in units:
                        units[key] = unit
                        order.append(key)
                    samples.setdefault(key + (side,), []).append(v)
        # row 5: a whole MLP training run per side, its own process, peak RSS from getrusage;
        # issue 15's rows: one process per side and case (memory figures, 1 thread)
        cases = (["memory"] if mem_rows and (r == 0 or not a.quick) else []) + \
            [f"{row}/{case}" for row in net_mem_rows for case in ("train", "eval")]
        env = dict(base, OMP_NUM_THREADS="1", BLIS_NUM_THREADS="1")
        for case in cases:
            for side, cmd in (("nabla", [NABLA]), ("torch", TORCH)):
                res, _ = run(cmd + ["--threads", "1"] + quick + [case], env)
                for row, cfg, metric, v, unit in res:
                    key = (row, cfg, metric)
                    if key not in units:
                        units[key] = unit
                        order.append(key)
                    samples.setdefault(key + (side,), []).append(v)

    with open("/proc/loadavg") as f:
        load_after = f.read().split()[:3]
    rank = {r: i for i, r in enumerate(ALL_ROWS + ["memory"] + NET_MEMORY_ROWS + ["triad"] + NABLA_ONLY_ROWS)}
    first = {k: i for i, k in enumerate(order)}
    order.sort(key=lambda k: (rank.get(k[0], 99), first[k]))

    head = ["row", "config", "metric", "unit", "nabla", "PyTorch", "nabla/PyTorch", "target", "met"]
    table, missed = [], []
    for key in order:
        n = samples.get(key + ("nabla",))
        p = samples.get(key + ("torch",))
        nv = statistics.median(n) if n else None
        pv = statistics.median(p) if p else None
        ratio = nv / pv if nv is not None and pv else None
        tg = target(*key)
        tstr, met = "", ""
        if tg:
            which, op, bound = tg
            v = ratio if which == "ratio" else nv
            tstr = f"{'ratio' if which == 'ratio' else 'value'} {op} {bound:.3g}"
            if v is not None:
                ok = v >= bound if op == ">=" else v <= bound
                met = "yes" if ok else "NO"
                if not ok:
                    missed.append(key)
        table.append([key[0], key[1], key[2], units[key], fmt(nv), fmt(pv), fmt(ratio), tstr, met])

    widths = [max(len(str(r[i])) for r in table + [head]) for i in range(len(head))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths))
    print(line(head))
    print("  ".join("-" * w for w in widths))
    for r in table:
        print(line(r))
    elapsed = time.time() - t_start
    print(f"\n{rounds} rounds, threads {threads}, {elapsed:.0f} s; load average before {' '.join(load_before)}, "
          f"after {' '.join(load_after)}")
    print(f"cpu: {info.get('cpu')} ({info.get('cores')} cores); nabla built for: {a.isa}; blis: {info.get('blis')}"
          f"{' (BLIS_ARCH_TYPE=' + arch + ' for both sides)' if arch is not None else ''}; torch: {info.get('torch')}")
    print(f"targets missed: {len(missed)}" + "".join(f"\n  {k[0]} {k[1]} {k[2]}" for k in missed))
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write("| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n")
            for r in table:
                f.write("| " + " | ".join(str(c) for c in r) + " |\n")
            f.write(f"\n{rounds} rounds, threads {threads}, {elapsed:.0f} s; load average before "
                    f"{' '.join(load_before)}, after {' '.join(load_after)}.\n")
            f.write(f"cpu: {info.get('cpu')} ({info.get('cores')} cores); nabla built for: {a.isa}; blis: {info.get('blis')}"
                    f"{' (BLIS_ARCH_TYPE=' + arch + ' for both sides)' if arch is not None else ''}; "
                    f"torch: {info.get('torch')}\n")


if __name__ == "__main__":
    main()
