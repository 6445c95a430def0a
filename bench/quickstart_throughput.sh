#!/usr/bin/env bash
# Training throughput of the quickstart recipe: STEPS steps (default 400) of
# configs/quickstart.yaml with its curriculum and warmup shortened as
# `QUICKSTART_STEPS` shortens them, on the quickstart's own sample, prepared
# data and tokenizer. Prints, per run, the median of the logged tokens/s
# and how many cores were busy (user + system CPU over wall time).
#
# With BASELINE=DIR (a checkout of an earlier commit, e.g. a `git worktree`)
# that commit's binary runs the same steps with its own config, sample,
# prepared data and tokenizer, alternated with this checkout's, so a
# change's before and after come from one run (built in DIR/target unless
# BASELINE_TARGET_DIR says otherwise). With VARIANT="KEY=VALUE ..." a third
# side runs this checkout's binary with those config overrides (e.g.
# VARIANT="training.mixed_precision=bf16").
#
#   bench/quickstart_throughput.sh
#   ROUNDS=3 STEPS=400 BASELINE=/path/to/old/checkout bench/quickstart_throughput.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/cpu.sh
STEPS="${STEPS:-400}"
ROUNDS="${ROUNDS:-2}"
BASELINE="${BASELINE:-}"
VARIANT="${VARIANT:-}"
WORK="${WORK:-${TMPDIR:-/tmp}/text2sql-quickstart-throughput}"
mkdir -p "$WORK"

target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet --bin text2sql
now_bin="$(realpath "$target/release/text2sql")"
if [[ -n $BASELINE ]]; then
  BASELINE="$(realpath "$BASELINE")"
  baseline_target="${BASELINE_TARGET_DIR:-$BASELINE/target}"
  (cd "$BASELINE" && CARGO_TARGET_DIR="$baseline_target" cargo build --release --quiet --bin text2sql)
  baseline_bin="$(realpath "$baseline_target/release/text2sql")"
fi

# The quickstart's first three stages, by one side's binary, into WORK/SIDE.
prepare_side() { # side, binary
  local dir="$WORK/$1"
  rm -rf "$dir" && mkdir -p "$dir"
  "$2" sample --out "$dir/sample" --records 50000 --seed 42 --force --quiet
  "$2" prepare --data "$dir/sample/data.json" --tables "$dir/sample/tables.json" \
    --databases "$dir/sample/databases" --out "$dir/processed" \
    --split-by database --val-ratio 0.05 --overwrite --quiet
  "$2" tokenizer train --data "$dir/processed" --vocab-size 3072 --schema-symbols 64 \
    --out "$dir/tokenizer" --force --quiet
}

# One training run; prints "tokens/s cores wall_s".
train_side() { # side, checkout, binary, extra KEY=VALUE overrides...
  local side=$1 checkout=$2 bin=$3 dir="$WORK/$1"
  shift 3
  local sets=(--set "run.dir=$dir/runs" --set "model.tokenizer=$dir/tokenizer"
    --set "data.processed_dir=$dir/processed" --set "data.databases=$dir/sample/databases"
    --set "training.max_steps=$STEPS"
    --set "curriculum.phases.0.steps=$(( STEPS / 4 ))"
    --set "curriculum.phases.1.steps=$(( STEPS - STEPS / 4 ))"
    --set "schedule.warmup_steps=$(( STEPS / 10 ))"
    --set "eval.every_steps=$STEPS" --set "checkpoint.every_steps=$STEPS")
  for kv in "$@"; do sets+=(--set "$kv"); done
  rm -rf "$dir/runs"
  (cd "$checkout" && /usr/bin/time -f "%U %S %e" -o "$dir/time" \
    "$bin" train --config configs/quickstart.yaml "${sets[@]}" >"$dir/train.log" 2>&1)
  local metrics
  metrics=$(find "$dir/runs" -name metrics.jsonl | head -1)
  local tps
  tps=$(grep -o '"tokens_per_s":[0-9.]*' "$metrics" | cut -d: -f2 | sort -g |
    awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
  awk -v tps="$tps" '{ printf "%.0f %.2f %.1f\n", tps, ($1 + $2) / $3, $3 }' "$dir/time"
}

echo "preparing the quickstart data for each side" >&2
[[ -n $BASELINE ]] && prepare_side before "$baseline_bin"
prepare_side now "$now_bin"
# The variant shares this checkout's data.
[[ -n $VARIANT ]] && { rm -rf "$WORK/variant"; mkdir -p "$WORK/variant"; for d in sample processed tokenizer; do ln -s "$WORK/now/$d" "$WORK/variant/$d"; done; }

printf "%-6s %-8s %10s %8s %8s\n" round side tokens/s cores wall_s
for round in $(seq "$ROUNDS"); do
  if [[ -n $BASELINE ]]; then
    printf "%-6s %-8s %10s %8s %8s\n" "$round" before $(train_side before "$BASELINE" "$baseline_bin")
  fi
  printf "%-6s %-8s %10s %8s %8s\n" "$round" now $(train_side now . "$now_bin")
  if [[ -n $VARIANT ]]; then
    read -r -a variant_sets <<<"$VARIANT"
    printf "%-6s %-8s %10s %8s %8s\n" "$round" variant $(train_side variant . "$now_bin" "${variant_sets[@]}")
  fi
done
echo "(medians of the logged tokens/s of each run; the first run of each side also builds its token cache)"
