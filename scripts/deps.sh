#!/usr/bin/env bash
# Install the Debian 12 packages nabla needs. Usage: scripts/deps.sh [--bench]
#   --bench also installs PyTorch (python3-torch) for the side-by-side benchmarks.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libblis-openmp-dev libcriterion-dev zlib1g-dev libcjson-dev
      libpng-dev dataset-fashion-mnist graphviz gnuplot-nox python3 libopenmpi-dev openmpi-bin)
[ "${1:-}" = "--bench" ] && pkgs+=(python3-torch time)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
