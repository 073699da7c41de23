#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for $1 seconds (default 60), starting from
# the seeds in fuzz/seeds/<target>/, and prints executions per target.
# Needs nightly Rust and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail
seconds=${1:-60}
cd "$(dirname "$0")/../fuzz"
cargo +nightly fuzz build -O
status=0
for target in $(cargo +nightly fuzz list); do
    mkdir -p "corpus/$target" "seeds/$target"
    log="$(mktemp)"
    max_len=65536
    [ "$target" = gguf ] && max_len=131072   # its seeds are whole tiny models (~85 KB)
    if cargo +nightly fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len="$max_len" -print_final_stats=1 >"$log" 2>&1; then
        result=clean
    else
        result="CRASH (see fuzz/artifacts/$target/)"
        status=1
        tail -40 "$log"
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    echo "fuzz $target: ${runs:-?} executions in ${seconds} s: $result"
    rm -f "$log"
done
exit $status
