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

case "${1:-}" in
build)
    mkdir -p "$build"
    cd "$build"
    if [ ! -d src ]; then
        # Source of this one package only: `--no-binary :all:` would also
        # build its build backends (cmake among them) from source.
        python3 -m pip download --no-deps --no-binary llama-cpp-python -q llama-cpp-python -d sdist
        tar -xzf sdist/llama_cpp_python-*.tar.gz
        mv llama_cpp_python-*/vendor/llama.cpp src
        rm -rf sdist llama_cpp_python-*
    fi
    if ! command -v cmake >/dev/null; then
        # No system cmake: the cmake package's wheel, in a venv of its own.
        [ -x venv/bin/cmake ] || { python3 -m venv venv && venv/bin/pip install -q cmake; }
        PATH="$build/venv/bin:$PATH"
    fi
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
