#!/usr/bin/env bash
# Install the Debian 12 packages nabla needs. Usage: scripts/deps.sh [--bench]
#   --bench also installs PyTorch (python3-torch) for the side-by-side benchmarks.
set -euo pipefail
# graphviz: test_dot runs `dot -Tsvg`; python3: the tests' reference readers (tests/ref)
pkgs=(build-essential cmake pkg-config libblis-openmp-dev libcriterion-dev zlib1g-dev libcjson-dev
      libpng-dev dataset-fashion-mnist graphviz python3 libopenmpi-dev openmpi-bin)
[ "${1:-}" = "--bench" ] && pkgs+=(python3-torch time)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing: ${missing[*]}"
# apt's progress goes to a log, shown only if something fails
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
         "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
