#!/usr/bin/python3
"""Scaling efficiency of data-parallel training at 2 ranks (issue 18), one command:

    /usr/bin/python3 bench/dist/scaling.py [--models mlp,cnn] [--steps S] [--netns] [--competing]

For each model (MLP 784-256-128-10 at global batch 256; fashion_cnn's network at global batch
128) it runs build/bench_dist_scaling under mpirun with 1 and with 2 ranks (one thread each, the
same global batch) and prints, per gradient-averaging mode (blocking allreduce, overlap with 1 MiB
and 128 KiB buckets, overlap with sleeping waits, ZeRO-1), samples/s and the scaling efficiency

    E = samples/s(2 ranks) / (2 x samples/s(1 rank))      (target on a quiet 2-core machine: >= 0.92)

--netns   also runs the 2 ranks as two "hosts" (network namespaces joined by a veth pair, Open
          MPI over TCP only: scripts/netns-mpi.sh; needs root, reported as skipped otherwise).
--competing  also runs 1 and 2 ranks with one CPU-bound competing process on the machine
          (started and stopped here) and prints 2 ranks / 1 rank (target: >= 1, never slower).
Environment: MPIRUN (default mpirun), MPIRUN_FLAGS (extra flags, e.g. "--bind-to core").
The figures mean something only on an otherwise idle machine with a core per rank.
"""
import argparse
import os
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def mpirun_cmd(n):
    cmd = [os.environ.get("MPIRUN", "mpirun")]
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    cmd += ["--oversubscribe", "-np", str(n), "-x", "OMP_NUM_THREADS=1"]
    return cmd + shlex.split(os.environ.get("MPIRUN_FLAGS", ""))


def run(cmd):
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if "netns-mpi: SKIP" in p.stdout:
        return None, p.stdout.strip().splitlines()[-1]
    if p.returncode:
        sys.exit(f"scaling.py: {' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    res = {}
    for line in p.stdout.splitlines():
        f = line.split("\t")
        if f[0] == "RESULT":  # RESULT model ranks mode samples/s ms/step in-backward% waiting%
            res[f[3]] = (float(f[4]), float(f[7]))
        else:
            print("    " + line)
    return res, None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--steps", type=int, default=0, help="timed steps per mode (0: the benchmark's default)")
    ap.add_argument("--modes", default="blocking,overlap,overlap128k,sleep,zero,shm,zeroshm")
    ap.add_argument("--netns", action="store_true")
    ap.add_argument("--competing", action="store_true")
    a = ap.parse_args()
    exe = os.path.join(a.build, "bench_dist_scaling")
    if not os.access(exe, os.X_OK):
        sys.exit(f"scaling.py: {exe} not found: build with MPI and NABLA_BENCH on")
    rows = []
    for model in a.models.split(","):
        args = [exe, "--model", model, "--modes", a.modes] + (["--steps", str(a.steps)] if a.steps else [])
        runs = {}
        for label, cmd in [("1 rank", mpirun_cmd(1) + args), ("2 ranks", mpirun_cmd(2) + args)] + (
                [("2 hosts (veth)", [os.path.join(ROOT, "scripts", "netns-mpi.sh")] + args)] if a.netns else []):
            print(f"{model}, {label}:")
            runs[label], skipped = run(cmd)
            if skipped:
                print("    " + skipped)
        if a.competing:
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            try:
                for label, n in [("1 rank + competitor", 1), ("2 ranks + competitor", 2)]:
                    print(f"{model}, {label}:")
                    runs[label], _ = run(mpirun_cmd(n) + args)
            finally:
                busy.kill()
                busy.wait()
        rows.append((model, runs))

    print("\nscaling efficiency E = samples/s(2) / (2 x samples/s(1)), same global batch, 1 thread per rank")
    head = "| model | mode | 1 rank samples/s | 2 ranks samples/s | waiting % | E |"
    extra = []
    if a.netns:
        extra.append("2 hosts (veth)")
    if a.competing:
        extra.append("competing")
    for e in extra:
        head += " 2 hosts samples/s | E (veth) |" if e.startswith("2 hosts") else " 1 rank + competitor | 2 ranks + competitor | 2/1 |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for model, runs in rows:
        one, two = runs.get("1 rank") or {}, runs.get("2 ranks") or {}
        for mode in a.modes.split(","):
            if mode not in one or mode not in two:
                continue
            line = f"| {model} | {mode} | {one[mode][0]:.0f} | {two[mode][0]:.0f} | {two[mode][1]:.1f} | {two[mode][0] / (2 * one[mode][0]):.2f} |"
            if a.netns:
                v = (runs.get("2 hosts (veth)") or {}).get(mode)
                line += f" {v[0]:.0f} | {v[0] / (2 * one[mode][0]):.2f} |" if v else " skipped | |"
            if a.competing:
                c1, c2 = runs["1 rank + competitor"][mode][0], runs["2 ranks + competitor"][mode][0]
                line += f" {c1:.0f} | {c2:.0f} | {c2 / c1:.2f} |"
            print(line)


if __name__ == "__main__":
    main()
