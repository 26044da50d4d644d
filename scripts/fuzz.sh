#!/usr/bin/env bash
# Build the libFuzzer harnesses (fuzz/) with clang + ASan + UBSan and run each for SECONDS
# (default 30) from the seeds fuzz/make_seeds.c writes. Usage: scripts/fuzz.sh [SECONDS] [NAME...]
#   NAME: idx csv safetensors checkpoint (default all). Corpora grow in build-fuzz/corpus/NAME;
#   a crash is saved as build-fuzz/crash-NAME-* and makes the script fail (after all have run).
#   Reproduce one: build-fuzz/fuzz_NAME build-fuzz/crash-NAME-... ; once fixed, keep it in
#   fuzz/regressions/NAME/ (run first, as seeds, every time) and add a test of the defect.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
shift || true
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(idx csv safetensors checkpoint)

scripts/deps.sh
missing=()
for p in clang libclang-rt-14-dev libomp-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

jobs=$(nproc); [ "$jobs" -gt 2 ] && jobs=2
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNABLA_TESTS=OFF \
      -DNABLA_FUZZ=ON >/dev/null
targets=(fuzz_make_seeds)
for n in "${names[@]}"; do targets+=("fuzz_$n"); done
cmake --build build-fuzz -j"$jobs" --target "${targets[@]}"

seeds=build-fuzz/seeds
rm -rf "$seeds"
ASAN_OPTIONS=detect_leaks=1 build-fuzz/fuzz_make_seeds "$seeds"
export OMP_NUM_THREADS=1 BLIS_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
status=0
for n in "${names[@]}"; do
  mkdir -p "build-fuzz/corpus/$n"
  echo "== fuzz_$n: ${secs}s"
  log="build-fuzz/fuzz_$n.log"
  regress=(); [ -d "fuzz/regressions/$n" ] && regress=("fuzz/regressions/$n")
  if ! build-fuzz/"fuzz_$n" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
       -artifact_prefix="build-fuzz/crash-$n-" "build-fuzz/corpus/$n" "$seeds/$n" "${regress[@]}" >"$log" 2>&1; then
    echo "fuzz_$n FAILED, see $log:"; grep -E "ERROR|runtime error|SUMMARY" "$log" | head -5
    status=1
  fi
  # executions and coverage (edges of the instrumented library) at the end of the run
  done_line=$(grep -E "DONE +cov:" "$log" | tail -1 || true)
  echo "$done_line"
  # a handful of edges means the library itself was not instrumented (or the harness returns
  # before parsing): the run would look green while fuzzing nothing
  cov=$(echo "$done_line" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
  if [ -n "$cov" ] && [ "$cov" -lt 50 ]; then
    echo "fuzz_$n FAILED: coverage $cov edges; is the library built with -fsanitize=fuzzer-no-link?"
    status=1
  fi
done
exit $status
