#!/usr/bin/python3
"""Random search against ASHA and Hyperband pruning on the same trials (issue 13).

    /usr/bin/python3 bench/search_bench.py [--seeds 1,2,3] [--trials 27] [--epochs 9]
                                           [--subset 6000] [--workers 1] [--build build]

For each seed, build/fashion_search runs the same random configurations (the same seed gives
the same draws, initial values and batch order per trial) three ways:
  random     every trial trains all --epochs epochs (--eta 0)
  asha       successive halving with eta 3: rungs after 1, 3, 9 epochs (--eta 3)
  hyperband  the same in 3 brackets whose first rungs are after 1, 3 and 9 epochs (--brackets 3)
and the table gives, per method and seed, the validation accuracy of the best completed trial
and the epochs all trials ran together, then the means over seeds and each method's epochs as a
fraction of random search's. Epochs, not seconds, are the measure of cost (the machine's load
does not change them); wall time is printed for information only.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = [("random", ["--eta", "0"]), ("asha", ["--eta", "3"]), ("hyperband", ["--eta", "3", "--brackets", "3"])]
BEST = re.compile(r"^best: .*accuracy ([0-9.]+) \+- [0-9.]+; (\d+) of (\d+) epochs run$", re.M)


def run(exe, method_args, seed, a):
    cmd = [exe, "--seed", str(seed), "--trials", str(a.trials), "--epochs", str(a.epochs), "--subset", str(a.subset),
           "--workers", str(a.workers), "--threads", "1", "--out", f"/tmp/search_bench_{os.getpid()}.csv"] + method_args
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1", BLIS_NUM_THREADS="1"))
    m = BEST.search(p.stdout)
    if p.returncode != 0 or not m:
        sys.exit(f"search_bench: {' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr}")
    return float(m.group(1)), int(m.group(2)), time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--trials", type=int, default=27)
    ap.add_argument("--epochs", type=int, default=9)
    ap.add_argument("--subset", type=int, default=6000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    a = ap.parse_args()
    exe = os.path.join(a.build, "fashion_search")
    seeds = [int(s) for s in a.seeds.split(",")]
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    res = {}  # method -> [(accuracy, epochs, seconds)]
    print(f"{'method':10}  {'seed':>4}  {'best val acc':>12}  {'epochs run':>10}  {'wall s':>7}")
    for seed in seeds:
        for name, args in METHODS:
            acc, epochs, secs = run(exe, args, seed, a)
            res.setdefault(name, []).append((acc, epochs, secs))
            print(f"{name:10}  {seed:>4}  {acc:>12.4f}  {epochs:>10}  {secs:>7.1f}", flush=True)
    full = statistics.mean(e for _, e, _ in res["random"])
    print(f"\nmeans over seeds {a.seeds}: {a.trials} trials of at most {a.epochs} epochs on {a.subset} images")
    for name, _ in METHODS:
        acc = statistics.mean(r[0] for r in res[name])
        ep = statistics.mean(r[1] for r in res[name])
        print(f"{name:10}  best val acc {acc:.4f}  epochs {ep:.1f} ({ep / full:.2f} of random search's)")
    print(f"load average before: {' '.join(load)}")


if __name__ == "__main__":
    main()
