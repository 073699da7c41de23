#!/usr/bin/env bash
# Creates bench/peers/.venv (git-ignored) with PyTorch for the GEMM peer
# (`emily bench core` runs bench/peers/torch_gemm.py with it when present).
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet torch
.venv/bin/python -c "import torch; print('torch', torch.__version__, 'installed in bench/peers/.venv')"
