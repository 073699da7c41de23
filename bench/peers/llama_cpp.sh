#!/usr/bin/env bash
# llama.cpp as the LLM benchmark peer, built from the vendored source in the
# llama-cpp-python sdist (pip download, never installed) with cmake, under
# bench/peers/build/ (git-ignored). On this CPU llama.cpp's AMX path crashes,
# so AMX code generation is switched off (-mno-amx-*).
#
#   bash bench/peers/llama_cpp.sh build          # once
#   bash bench/peers/llama_cpp.sh run MODEL.gguf # llama-bench -p 128 -n 128 -t 1,2
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$here/build/llama.cpp"
bin="$build/out/bin/llama-bench"
. "$here/vendored.sh"

case "${1:-}" in
build)
    mkdir -p "$build"
    cd "$build"
    vendored_source llama-cpp-python vendor/llama.cpp
    cmake_on_path
    flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    cmake -S src -B out -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
        -DLLAMA_CURL=OFF -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" >/dev/null
    cmake --build out --target llama-bench -j "$(nproc)" >/dev/null
    echo "built $bin"
    ;;
run)
    [ -x "$bin" ] || exit 1
    "$bin" -m "$2" -p 128 -n 128 -t 1,2 -o md
    ;;
*)
    echo "usage: $0 build | run MODEL.gguf" >&2
    exit 2
    ;;
esac
