#!/usr/bin/env bash
# CPU-only CI check of the CUDA backend: builds emily with feature `cuda`
# and compiles every kernel through NVRTC for sm_90 (no GPU needed). NVRTC
# comes from NVIDIA's pip wheel, installed once under .cuda/ (git-ignored);
# without it the test reports that it skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
lib=$(find .cuda -name 'libnvrtc.so.13' 2>/dev/null | head -n1 || true)
if [ -z "$lib" ]; then
    python3 -m pip install --quiet --disable-pip-version-check --target .cuda/nvrtc \
        "nvidia-cuda-nvrtc>=13.0,<13.1" || echo "nvidia-cuda-nvrtc could not be installed"
    lib=$(find .cuda -name 'libnvrtc.so.13' 2>/dev/null | head -n1 || true)
fi
if [ -n "$lib" ]; then
    LD_LIBRARY_PATH="$(cd "$(dirname "$lib")" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export LD_LIBRARY_PATH
fi
# The kernels are compiled fresh (the on-disk cubin cache is for real runs).
# The GPU tests of backend_parity run too: without a driver they say so and pass.
EMILY_CUDA_CACHE=off cargo test --release -p emily --features cuda --lib --test backend_parity -- cuda --nocapture
