#!/usr/bin/env bash
# What value retrieval adds to the model input, measured without training.
#   bench/value_retrieval.sh [WORK_DIR] [SPIDER_DIR]
# Prepares Spider dev, and Spider train split by database with 15% of its
# databases held out (their questions are the "train split" measured), both
# with --databases so that `values.parquet` is written (timed); trains a
# 4000-piece tokenizer on the prepared train split to count tokens; then runs
# the `value_retrieval` example on both: the share of gold-SQL string
# literals the input shows (example values matching the question only vs
# with retrieved values, and the default all-examples form), input tokens
# (mean, p95) within the default 512-token budget, and retrieval time per
# question.
set -euo pipefail
WORK=${1:-/tmp/value-retrieval-bench}
SPIDER=${2:-../shared/data/spider}
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${TEXT2SQL:-$TARGET/release/text2sql}
cargo build --release -q --bin text2sql --example value_retrieval
EXAMPLE=$TARGET/release/examples/value_retrieval
mkdir -p "$WORK"
timed() { /usr/bin/time -f "  $1: %e s wall, %U s user, %S s sys, %M KiB peak" "${@:2}"; }
timed "prepare dev" "$BIN" -q prepare --format spider --data "$SPIDER/dev.json" \
  --tables "$SPIDER/tables.json" --databases "$SPIDER/database" --out "$WORK/dev" --skip-invalid
timed "prepare train" "$BIN" -q prepare --format spider --data "$SPIDER/train_spider.json" \
  --tables "$SPIDER/tables.json" --databases "$SPIDER/database" --out "$WORK/train" \
  --split-by database --val-ratio 0.15 --skip-invalid
[ -f "$WORK/tok/tokenizer.json" ] || "$BIN" -q tokenizer train --data "$WORK/train" \
  --vocab-size 4000 --out "$WORK/tok"
echo "== Spider dev"
"$EXAMPLE" "$WORK/dev" val "$WORK/tok"
echo "== Spider train, held-out databases"
"$EXAMPLE" "$WORK/train" val "$WORK/tok"
