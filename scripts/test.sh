#!/usr/bin/env bash
# Install dependencies, build, and run the whole test suite twice: a Release build, then the
# same tests under AddressSanitizer + UndefinedBehaviorSanitizer (leak check on). Both halves
# always run; each prints its summary, and the script fails if either failed.
#   NABLA_SKIP_ASAN=1     only the Release half
#   NABLA_ASAN_EXCLUDE=RE CTest regex of tests left out of the sanitizer half
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh || exit 1
jobs=$(nproc)

# run_half NAME BUILD_DIR CMAKE_ARGS... -- CTEST_ARGS...: configure, build, test; never exits
run_half() {
  local name=$1 dir=$2; shift 2
  local cmake_args=() ctest_args=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do cmake_args+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  ctest_args=("$@")
  rm -f "$dir/ctest-summary.log"
  echo "== $name: configure and build ($dir)"
  if ! cmake -S . -B "$dir" "${cmake_args[@]}" >/dev/null || ! cmake --build "$dir" -j"$jobs"; then
    echo "== $name: BUILD FAILED"
    return 1
  fi
  echo "== $name: tests"
  ctest --test-dir "$dir" --output-on-failure -j"$jobs" "${ctest_args[@]}" | tee "$dir/ctest-summary.log"
  return "${PIPESTATUS[0]}"
}

status=0
release_rc=0
run_half release build -DCMAKE_BUILD_TYPE=Release -DNABLA_TESTS=ON || release_rc=$?
asan_rc=skipped
if [ "${NABLA_SKIP_ASAN:-0}" != 1 ]; then
  asan_rc=0
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  run_half sanitizers build-asan -DCMAKE_BUILD_TYPE=Debug -DNABLA_SANITIZE=ON -DNABLA_TESTS=ON \
    -- -E "${NABLA_ASAN_EXCLUDE:-^$}" || asan_rc=$?
fi

echo
echo "== summary"
for half in release:build asan:build-asan; do
  name=${half%%:*} dir=${half#*:}
  [ "$name" = asan ] && [ "$asan_rc" = skipped ] && { echo "sanitizers: skipped (NABLA_SKIP_ASAN=1)"; continue; }
  line=$(grep -E "tests passed|tests failed" "$dir/ctest-summary.log" 2>/dev/null | tail -1)
  echo "$name: ${line:-no test summary (build failed?)}"
done
[ "$release_rc" != 0 ] && status=1
[ "$asan_rc" != skipped ] && [ "$asan_rc" != 0 ] && status=1
exit $status
