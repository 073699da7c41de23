#!/usr/bin/env bash
# The CUDA backend's GPU suite in two halves (GPU time is rationed, so the
# build happens here and one call runs everything there):
#
#   scripts/gpu-check.sh build   # here: release test binaries + bench into .gpu/
#   scripts/gpu-check.sh run     # on the GPU machine, from the repository root
#
# `run` runs, with every fresh device buffer poisoned (EMILY_CUDA_POISON=1,
# 0xff bytes = NaN, so an unwritten element fails its comparison):
#   1. every kernel compiled by NVRTC for the device, bad-input errors;
#   2. every op family on the GPU against the reference backend (random
#      inputs, odd shapes, every dtype), fused kernels against their
#      decompositions on the GPU at model sizes (tests/backend_parity/cuda.rs);
#   3. the benchmark: fused vs composed, % of copy bandwidth (examples/cuda_bench.rs);
#   4. PyTorch on the same shapes (bench/peers/torch_gpu.py).
# Logs go to $OUT when it is set (the device tool's output folder), else .gpu/logs.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${GPU_DIR:-.gpu}

build() {
    mkdir -p "$DIR"
    # Portable code: no -C target-cpu=native (the GPU machine's CPU differs).
    local json
    json=$(cargo test --release -p emily --features cuda --no-run --lib --test backend_parity \
        --message-format=json 2>/dev/null)
    python3 -c '
import json, shutil, sys
out = sys.argv[1]
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        name = "emily-lib" if m["target"]["kind"] == ["lib"] else m["target"]["name"]
        shutil.copy(m["executable"], out + "/" + name)
        print(out + "/" + name)
' "$DIR" <<<"$json"
    cargo build --release -p emily --features cuda --example cuda_bench
    cp target/release/examples/cuda_bench "$DIR/cuda_bench"
    strip "$DIR"/emily-lib "$DIR"/backend_parity "$DIR"/cuda_bench 2>/dev/null || true
    du -sh "$DIR"
}

run() {
    local logs=${OUT:-$DIR/logs}
    mkdir -p "$logs"
    # libnvrtc / libcublas from the CUDA toolkit or NVIDIA's pip wheels.
    local libs
    libs=$(find /usr/local/cuda*/ /opt /usr/lib /usr/local/lib -name 'libnvrtc.so.1*' -o -name 'libcublas.so.1*' 2>/dev/null \
        | xargs -r -n1 dirname | sort -u | paste -sd: -)
    export LD_LIBRARY_PATH=${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv | tee "$logs/gpu.txt"
    local rc=0
    EMILY_CUDA_POISON=1 "$DIR/emily-lib" backend::cuda --test-threads 1 --nocapture 2>&1 | tee "$logs/nvrtc.log" || rc=1
    EMILY_CUDA_POISON=1 "$DIR/backend_parity" cuda --test-threads 1 --nocapture 2>&1 | tee "$logs/parity.log" || rc=1
    "$DIR/cuda_bench" 2>&1 | tee "$logs/bench.log" || rc=1
    python3 bench/peers/torch_gpu.py 2>&1 | tee "$logs/torch.log" || rc=1
    grep -h "test result\|FAILED\|panicked" "$logs/nvrtc.log" "$logs/parity.log" || true
    return $rc
}

case "${1:-}" in
build) build ;;
run) run ;;
*) echo "usage: $0 build|run" >&2; exit 2 ;;
esac
