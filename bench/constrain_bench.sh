#!/usr/bin/env bash
# Constrained decoding against plain decoding: SQL error rate, execution
# accuracy and decoding time per question, greedy and with 4 beams.
#   bench/constrain_bench.sh MODEL DATA DB_DIR [LIMIT] [OUT_DIR]
# MODEL: a checkpoint folder (runs/NAME/best); DATA: a folder made by
# `text2sql prepare` (the quickstart's quickstart/processed, or Spider dev
# prepared with --format spider); DB_DIR: its <db_id>/<db_id>.sqlite
# folder. Runs `text2sql eval --model` on LIMIT validation questions
# (default 200) in four settings, ROUNDS times each (default 2), the
# settings interleaved within a round so that load changes hit both sides
# alike, and prints one row per setting: accuracy and SQL error rate (the
# same every round: decoding is deterministic) and the median of the
# rounds' generation time per question (the report's `generation`: decoding
# alone, without model load or scoring). Each run's report.json is kept in
# OUT_DIR (default /tmp/constrain-bench). The CPU is printed first.
# BEAMS="1" (default "1 4") runs only the settings with those beam counts.
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
ROUNDS=${ROUNDS:-2}
BEAMS=${BEAMS:-1 4}
BIN=${TEXT2SQL:-${CARGO_TARGET_DIR:-target}/release/text2sql}
mkdir -p "$OUT"
source "$(dirname "${BASH_SOURCE[0]}")/cpu.sh"
for round in $(seq 1 "$ROUNDS"); do
  for beams in $BEAMS; do
    for mode in constrained free; do
      flag=()
      [ "$mode" = free ] && flag=(--no-constrain)
      "$BIN" -q eval --model "$MODEL" --data "$DATA" --split val --limit "$LIMIT" \
        --db-dir "$DB_DIR" --beams "$beams" ${flag[@]+"${flag[@]}"} \
        --report "$OUT/report-$beams-$mode-$round.json" >/dev/null
    done
  done
done
python3 - "$OUT" "$ROUNDS" "$BEAMS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
print(f"{'beams':<6} {'decoding':<12} {'accuracy':>9} {'errors':>9} {'ms/question':>12}")
for beams in map(int, sys.argv[3].split()):
    for mode in ("constrained", "free"):
        runs = [json.load(open(f"{out}/report-{beams}-{mode}-{r}.json")) for r in range(1, rounds + 1)]
        s = runs[0]
        times = [r["generation"]["ms_per_question"] for r in runs]
        ms = statistics.median(times)
        print(f"{beams:<6} {mode:<12} {100 * s['accuracy']:8.1f}% {100 * s['error_rate']:8.1f}% {ms:12.1f}"
              f"   ({s['correct']}/{s['scored']} correct, {s['sql_errors']} SQL errors;"
              f" rounds {min(times):.1f}-{max(times):.1f} ms)")
PY
