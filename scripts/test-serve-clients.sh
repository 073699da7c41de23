#!/usr/bin/env bash
# Clients that are not Rust, against a real `emily serve` on a loopback port:
#
#   1. the official OpenAI Python client (`pip install openai` into a venv
#      under target/serve-clients/venv) transcribes the JFK clip through
#      client.audio.transcriptions.create, in json, text and srt, and streams
#      a chat completion from SmolLM2 (the `openai_python_client` test in
#      `cargo test` runs the same script);
#   2. the web page in headless Chromium (Debian's chromium, driven by
#      playwright-core from the npm registry) with a fake microphone that plays
#      samples/jfk.wav: the live mode shows the JFK sentence; a screenshot is
#      saved as target/serve-page.png.
#
# Installs what it needs (pip, apt-get, npm), so it runs on a bare CI machine.
# Run from `make test` after `cargo test --release` has built target/release/emily.
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
    apt-get install -y -qq chromium >/dev/null
fi
node_dir="$work/node"
mkdir -p "$node_dir"
if [ ! -d "$node_dir/node_modules/playwright-core" ]; then
    (cd "$node_dir" && npm install --silent --no-audit --no-fund playwright-core@1 >/dev/null)
fi
EMILY_URL="$url" EMILY_API_KEY=client-test-key JFK_WAV="$root/samples/jfk.wav" \
    SCREENSHOT="$root/target/serve-page.png" NODE_PATH="$node_dir/node_modules" \
    node crates/emily-serve/tests/clients/page.mjs

echo "serve-clients: 2 passed, 0 failed"
