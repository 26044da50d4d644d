#!/usr/bin/python3
"""Throughput on a quiet and on a busy machine: fixed thread counts against nabla's automatic
team size (issue 14). One command builds and prints the table:

    /usr/bin/python3 bench/busy.py [--quick] [--markdown FILE]

For each condition (quiet; busy = one CPU-bound competing process per core, started here and
stopped after) it runs build/bench_nabla's 'steady' row (MLP and CNN training steps at batch 64
for a fixed wall time from the first step) with 1 thread, with all cores, and automatic
(no OMP_NUM_THREADS). 'auto/best' is the automatic setting's samples/s over the better fixed
one's; the target is >= 0.8 on the busy machine and about 1.0 on the quiet one.
"""
import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
NABLA = os.path.join(BUILD, "bench_nabla")


def run(args, env):
    p = subprocess.run([NABLA] + args, env=env, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"busy.py: bench_nabla {' '.join(args)} failed:\n{p.stderr}")
    out = {}
    for line in p.stdout.splitlines():
        f = line.split("\t")
        if f[0] == "R" and len(f) == 6:
            out[(f[2].rsplit(" T=", 1)[0], f[3])] = float(f[4])
        elif f[0] == "I" and len(f) == 3:
            out[("info", f[1])] = f[2]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--markdown")
    a = ap.parse_args()
    subprocess.run(["cmake", "-S", ROOT, "-B", BUILD, "-DCMAKE_BUILD_TYPE=Release"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", BUILD, "-j2", "--target", "bench_nabla"], check=True, stdout=subprocess.DEVNULL)
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "BLIS_NUM_THREADS")}
    cores = os.cpu_count() or 1
    info = run(["info"], base)
    quick = ["--quick"] if a.quick else []
    rows = []
    for cond in ("quiet", "busy"):
        hogs = []
        if cond == "busy":
            hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
            time.sleep(1)
        try:
            with open("/proc/loadavg") as f:
                load = f.read().split()[0]
            res = {}
            for team in ("1", str(cores), "0"):
                env = dict(base)
                if team != "0":
                    env.update(OMP_NUM_THREADS=team, BLIS_NUM_THREADS=team)
                res[team] = run(["--threads", team] + quick + ["steady"], env)
        finally:
            for h in hogs:
                h.kill()
                h.wait()
        for model in ("mlp B=64", "cnn B=64"):
            v1, vn, va = (res[t][(model, "samples/s")] for t in ("1", str(cores), "0"))
            end = int(res["0"][(model, "threads_at_end")])
            rows.append([cond, model, f"{v1:.0f}", f"{vn:.0f}", f"{va:.0f}", str(end), f"{va / max(v1, vn):.2f}",
                         load])
    head = ["machine", "step", "1 thread", f"{cores} threads", "automatic", "auto: threads at end", "auto/best",
            "load before"]
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    tail = f"samples/s; cpu: {info.get(('info', 'cpu'))}; blis: {info.get(('info', 'blis'))}"
    print(tail)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write("| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n")
            for r in rows:
                f.write("| " + " | ".join(r) + " |\n")
            f.write("\n" + tail + "\n")


if __name__ == "__main__":
    main()
