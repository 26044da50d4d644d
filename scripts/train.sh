#!/usr/bin/env bash
# Install dependencies, build, and train the main example (an MLP on Fashion-MNIST with
# L2, dropout, Adam and early stopping). Extra arguments go to the example (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target fashion_mlp
exec ./build/fashion_mlp "$@"
