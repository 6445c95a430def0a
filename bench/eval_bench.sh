#!/usr/bin/env bash
# What scoring costs: `text2sql eval` of Spider's gold SQL against itself
# (dev: 1,034 queries, train: 8,659), every query executed twice in the
# sandbox's worker processes. With BASELINE=<another text2sql binary> both
# run in turn, ROUNDS times each, and the medians and their ratio are
# printed (e.g. a build of the commit before a sandbox change).
#
#   BASELINE=/tmp/text2sql-before ROUNDS=5 bench/eval_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SPIDER="${SPIDER:-../shared/data/spider}"
ROUNDS="${ROUNDS:-5}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/text2sql/target}"
cargo build --release --quiet --bin text2sql
CURRENT="$CARGO_TARGET_DIR/release/text2sql"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
source bench/cpu.sh

median() { python3 -c "import statistics, sys; print(statistics.median(float(x) for x in sys.stdin))"; }

for split in dev train; do
    gold="$SPIDER/${split}_gold.sql"
    cut -f1 "$gold" > "$work/$split.sql"
    for name in current baseline; do
        bin="$CURRENT"
        if [ "$name" = baseline ]; then
            [ -n "${BASELINE:-}" ] || continue
            bin="$BASELINE"
        fi
        for _ in $(seq "$ROUNDS"); do
            start=$(date +%s.%N)
            "$bin" -q eval --predictions "$work/$split.sql" --gold "$gold" \
                --db-dir "$SPIDER/database" > /dev/null
            python3 -c "import sys; print(round($(date +%s.%N) - $start, 3))"
        done | median > "$work/$split.$name"
        echo "$split $name: median $(cat "$work/$split.$name") s over $ROUNDS runs"
    done
    if [ -n "${BASELINE:-}" ]; then
        echo "$split: current / baseline = $(python3 -c "print(round($(cat "$work/$split.current") / $(cat "$work/$split.baseline"), 2))")"
    fi
done
