#!/usr/bin/env bash
# Clients that are not Rust, against a real `emily serve` binary on a loopback
# port (by hand, e.g. after changing the server or the page):
#
#   1. the official OpenAI Python client (`pip install openai` into a venv
#      under target/serve-clients/venv) transcribes the JFK clip through
#      client.audio.transcriptions.create, in json, text and srt, and streams
#      a chat completion from SmolLM2;
#   2. the web page in headless Chromium (Debian's chromium, installed with
#      apt-get when missing; driven by puppeteer-core from the npm registry)
#      with a fake microphone that plays samples/jfk.wav: the live mode shows
#      the JFK sentence, a file upload shows its segments, the chat box
#      streams a reply; a screenshot is saved as target/serve-page.png.
#
# `make test` (and so CI) does not run this script: `cargo test` runs the same
# two client scripts against an in-process server, in the `openai_python_client`
# and `browser_page` tests of emily-serve, which install what they need the
# same way (and fail, saying why, when they cannot).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
work="$root/target/serve-clients"
mkdir -p "$work"
emily="$root/target/release/emily"
[ -x "$emily" ] || cargo build --release -p emily-cli --bin emily

log="$work/server.log"
llm="$root/models/llm/SmolLM2-135M-Instruct.Q4_1.gguf"
"$emily" serve --port 0 --api-key client-test-key --llm "$llm" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
url=""
for _ in $(seq 1 600); do
    url="$(sed -n 's/^emily serve: listening on \(http:[^ ]*\)$/\1/p' "$log")"
    if [ -n "$url" ] && curl -fsS "$url/health" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$server" 2>/dev/null; then cat "$log" >&2; exit 1; fi
    sleep 0.1
done
curl -fsS "$url/health" >/dev/null || { cat "$log" >&2; echo "server never became ready" >&2; exit 1; }
echo "serve-clients: server ready at $url"

# 1. The OpenAI Python client.
venv="$work/venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check openai
EMILY_URL="$url" EMILY_LLM_ID="$(basename "$llm" .gguf)" "$venv/bin/python" crates/emily-serve/tests/clients/openai_client.py

# 2. The web page in headless Chromium.
if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
node_dir="$work/node"
mkdir -p "$node_dir"
if [ ! -f "$node_dir/node_modules/puppeteer-core/package.json" ]; then
    (cd "$node_dir" && PUPPETEER_SKIP_DOWNLOAD=1 npm install --silent --no-audit --no-fund --no-save puppeteer-core@25 >/dev/null)
fi
EMILY_URL="$url" EMILY_API_KEY=client-test-key JFK_WAV="$root/samples/jfk.wav" QUESTION="Hello" \
    SCREENSHOT="$root/target/serve-page.png" NODE_PATH="$node_dir/node_modules" \
    node crates/emily-serve/tests/clients/page.mjs

echo "serve-clients: 2 passed, 0 failed"
