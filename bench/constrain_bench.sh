#!/usr/bin/env bash
# Constrained decoding against plain decoding: SQL error rate, execution
# accuracy and decoding time per question, greedy and with 4 beams.
#   bench/constrain_bench.sh MODEL DATA DB_DIR [LIMIT] [OUT_DIR]
# MODEL: a checkpoint folder (runs/NAME/best); DATA: a folder made by
# `text2sql prepare` (the quickstart's quickstart/processed, or Spider dev
# prepared with --format spider); DB_DIR: its <db_id>/<db_id>.sqlite
# folder. Runs `text2sql eval --model` on LIMIT validation questions
# (default 200) four times, interleaved per setting so that load changes
# hit both sides alike, and prints one row per run. The time is the whole
# command's wall time divided by the questions (model load and scoring
# included, the same on both sides); each run's report.json is kept in
# OUT_DIR (default /tmp/constrain-bench).
#
# Example (the quickstart model on its validation databases):
#   bench/constrain_bench.sh runs/quickstart/best quickstart/processed \
#       quickstart/sample/databases 200
set -euo pipefail
MODEL=${1:?model folder}
DATA=${2:?prepared data folder}
DB_DIR=${3:?database folder}
LIMIT=${4:-200}
OUT=${5:-/tmp/constrain-bench}
BIN=${TEXT2SQL:-target/release/text2sql}
mkdir -p "$OUT"
printf '%-6s %-12s %9s %9s %12s\n' beams decoding accuracy errors 's/question'
for beams in 1 4; do
  for mode in constrained free; do
    flag=()
    [ "$mode" = free ] && flag=(--no-constrain)
    report="$OUT/report-$beams-$mode.json"
    start=$(date +%s.%N)
    "$BIN" -q eval --model "$MODEL" --data "$DATA" --split val --limit "$LIMIT" \
      --db-dir "$DB_DIR" --beams "$beams" "${flag[@]}" --report "$report" >/dev/null
    end=$(date +%s.%N)
    python3 - "$report" "$start" "$end" "$beams" "$mode" <<'PY'
import json, sys
report, start, end, beams, mode = sys.argv[1:]
s = json.load(open(report))
s = s.get("summary", s)
n = max(s["total"], 1)
print(f"{beams:<6} {mode:<12} {100 * s['accuracy']:8.1f}% {100 * s['error_rate']:8.1f}% "
      f"{(float(end) - float(start)) / n:12.3f}")
PY
  done
done
