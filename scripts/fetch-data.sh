#!/usr/bin/env bash
# Fetch the datasets the training examples and tests use, from registry
# packages (no dataset hub is needed):
#
#   digits  scikit-learn==1.9.1 (its wheel bundles sklearn/datasets/data/digits.csv.gz:
#           1797 8x8 handwritten digits, 64 features 0..16 and a label per row)
#           -> data/digits/digits.csv
#
# The wheel is downloaded with pip (never installed), the one file is read out
# of it with Python's zipfile and gzip modules and checked against the SHA-256
# recorded below; a mismatch removes it and fails.
#
# Usage: scripts/fetch-data.sh [digits|all]   (default: all)
# Idempotent: a dataset already in place is left alone, silently.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="$root/data"
py="${PYTHON:-python3}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

die() {
    echo "fetch-data: $*" >&2
    exit 1
}

fetch_digits() {
    local dest="$data/digits"
    local want=6ebb3d2fee246a4e99363262ddf8a00a3c41bee6014c373ed9d9216ba7f651b8
    [ -s "$dest/digits.csv" ] && return 0
    echo "fetch-data: fetching the digits dataset into $dest" >&2
    # One pinned wheel whatever the local Python (the CSV is the same in all).
    if ! "$py" -m pip download --no-deps --disable-pip-version-check -q \
        --only-binary=:all: --python-version 3.11 --implementation cp \
        --platform manylinux_2_28_x86_64 scikit-learn==1.9.1 -d "$work" >"$work/pip.log" 2>&1; then
        cat "$work/pip.log" >&2
        die "pip could not download scikit-learn==1.9.1 (see the pip output above)"
    fi
    mkdir -p "$dest"
    "$py" - "$work" "$dest/digits.csv.tmp" <<'PY' || die "could not read digits.csv.gz out of the wheel"
import glob, gzip, sys, zipfile
wheels = glob.glob(sys.argv[1] + "/scikit_learn-*.whl")
if len(wheels) != 1:
    sys.exit("expected one scikit-learn wheel, found %d" % len(wheels))
with zipfile.ZipFile(wheels[0]) as z:
    raw = z.read("sklearn/datasets/data/digits.csv.gz")
open(sys.argv[2], "wb").write(gzip.decompress(raw))
PY
    local got
    got="$(sha256sum "$dest/digits.csv.tmp" | cut -d' ' -f1)"
    if [ "$got" != "$want" ]; then
        rm -f "$dest/digits.csv.tmp"
        die "digits.csv: SHA-256 $got does not match the expected $want"
    fi
    mv "$dest/digits.csv.tmp" "$dest/digits.csv"
}

case "${1:-all}" in
digits | all) fetch_digits ;;
*) die "unknown dataset '${1}'; expected digits or all" ;;
esac
