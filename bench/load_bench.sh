#!/usr/bin/env bash
# Load on `serve` with a real trained model: 32 clients on loopback for 30 s
# mixing /api/ask (the model, constrained decoding, 4 beams) and /api/execute
# (the sample's gold SQL) over the sample's databases, a /healthz prober
# throughout; then the same with 8 of the 32 clients sending the published
# hostile suite (crates/sql/data/hostile_sql.json) to /api/execute.
# The server is `text2sql serve` in its own process; the clients are one test
# process on the same machine, so on 2 cores they share the CPU with it.
# Prints p50/p90/p99 per endpoint, the server's RSS, and the CPU.
#
#   MODEL=runs/quickstart/best SAMPLE=quickstart/sample bench/load_bench.sh
#
# Defaults are what scripts/quickstart.sh leaves behind. CLIENTS, SECONDS_EACH
# and HOSTILE change the mix.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/cpu.sh
MODEL="${MODEL:-runs/quickstart/best}"
SAMPLE="${SAMPLE:-quickstart/sample}"
for needed in "$MODEL/model.safetensors" "$SAMPLE/data.json"; do
    if [ ! -f "$needed" ]; then
        echo "missing $needed: run scripts/quickstart.sh first, or set MODEL and SAMPLE" >&2
        exit 1
    fi
done
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/text2sql/target}"
# The server is the release binary's `serve`, in its own process.
cargo build --release --quiet --bin text2sql
LOAD_BINARY="$CARGO_TARGET_DIR/release/text2sql" LOAD_MODEL="$(realpath "$MODEL")" LOAD_SAMPLE="$(realpath "$SAMPLE")" \
LOAD_CLIENTS="${CLIENTS:-32}" LOAD_SECONDS="${SECONDS_EACH:-30}" LOAD_HOSTILE="${HOSTILE:-8}" \
    cargo test --release -p text2sql-serve --test load -- --ignored --nocapture --exact \
        thirty_two_clients_for_thirty_seconds 2>&1 | grep -E -A2 '^load|panicked|test result|assert'
