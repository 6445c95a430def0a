#!/usr/bin/env bash
# One training step, t5-small shape, batch 8, source 256, target 128, f32,
# random weights, dropout 0.1: this project's candle T5 (forward, loss,
# backward, AdamW with clipping) against PyTorch + transformers doing the
# same, each in its own process (so peak RSS is each side's own), at 1 and 2
# threads on both sides. Prints a side-by-side table and the ratio; for
# candle also the main thread's CPU time: at 2+ threads the step's serial
# part (the parallel kernels run on rayon's workers while it waits).
# On a CPU with AVX-512 BF16 a third side, candle with bf16 mixed precision
# (`--bf16`: bf16 products, f32 weights and sums), against PyTorch f32.
#
# With BASELINE=DIR (a checkout of an earlier commit, e.g. a `git worktree`)
# that commit's f32 step runs too, as side `before`, alternated with the
# others, so a change's before and after come from one run. It builds in
# DIR/target unless BASELINE_TARGET_DIR says otherwise.
#
#   bench/train_bench.sh [--steps N] [--warmup N]
#   THREADS="1 2 4" PYTHON=/path/to/python bench/train_bench.sh
#   BASELINE=/path/to/old/checkout bench/train_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/cpu.sh
# A Python with torch and transformers (pip install torch transformers).
PYTHON="${PYTHON:-python3}"
THREADS="${THREADS:-1 2}"

cargo bench -q -p text2sql-train --bench train_step --no-run 2>/dev/null
BASELINE="${BASELINE:-}"
baseline_step() {
  (cd "$BASELINE" && CARGO_TARGET_DIR="${BASELINE_TARGET_DIR:-$BASELINE/target}" \
    cargo bench -q -p text2sql-train --bench train_step "$@")
}
[[ -n $BASELINE ]] && baseline_step --no-run 2>/dev/null
rows=()
for threads in $THREADS; do
  if [[ -n $BASELINE ]]; then
    before=$(baseline_step -- --threads "$threads" "$@")
    echo "$before" >&2
    rows+=("$threads $(grep '^RESULT' <<<"$before" | sed 's/side=candle /side=before /')")
  fi
  # Alternate the sides so that a burst of load elsewhere hits both.
  rust=$(cargo bench -q -p text2sql-train --bench train_step -- --threads "$threads" "$@")
  echo "$rust" >&2
  torch=$(OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads" "$PYTHON" bench/t5_train_step.py --threads "$threads" "$@")
  echo "$torch" >&2
  rows+=("$threads $(grep '^RESULT' <<<"$rust")" "$threads $(grep '^RESULT' <<<"$torch")")
  # Mixed precision (bf16 products, f32 sums), where the CPU has it.
  if grep -qw avx512_bf16 /proc/cpuinfo; then
    mixed=$(cargo bench -q -p text2sql-train --bench train_step -- --threads "$threads" --bf16 "$@")
    echo "$mixed" >&2
    rows+=("$threads $(grep '^RESULT' <<<"$mixed")")
  fi
done

printf '%s\n' "${rows[@]}" | awk '
  function field(name,   i, kv) {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == name) return kv[2] }
    return ""
  }
  {
    t = $1; side = field("side")
    med[t, side] = field("median_s"); tps[t, side] = field("tokens_per_s")
    cpu[t, side] = field("cpu_s"); rss[t, side] = field("peak_rss_mib")
    main_cpu[t, side] = field("main_cpu_s")
    if (!(t in seen)) { seen[t] = 1; order[++n] = t }
  }
  END {
    printf "\n%-8s %-11s %12s %10s %12s %14s %14s\n", "threads", "side", "median s/step", "tokens/s", "CPU s/step", "main-thread CPU", "peak RSS MiB"
    for (i = 1; i <= n; i++) {
      t = order[i]
      split("before candle torch candle-bf16", sides, " ")
      for (j = 1; j <= 4; j++) {
        s = sides[j]
        if (med[t, s] == "") continue
        serial = main_cpu[t, s] == "" ? "-" : sprintf("%.2f", main_cpu[t, s])
        printf "%-8s %-11s %12.3f %10.0f %12.2f %14s %14.0f\n", t, s, med[t, s], tps[t, s], cpu[t, s], serial, rss[t, s]
      }
      printf "%-8s candle is %.2fx the speed of torch (torch s/step / candle s/step), peak RSS %.2fx\n", t, med[t, "torch"] / med[t, "candle"], rss[t, "candle"] / rss[t, "torch"]
      if (med[t, "before"] != "")
        printf "%-8s candle is %.2fx the speed of the baseline commit (before s/step / candle s/step); before was %.2fx torch\n", t, med[t, "before"] / med[t, "candle"], med[t, "torch"] / med[t, "before"]
      if (med[t, "candle-bf16"] != "")
        printf "%-8s candle bf16 mixed is %.2fx the speed of torch f32, %.2fx candle f32, peak RSS %.2fx torch\n", t, med[t, "torch"] / med[t, "candle-bf16"], med[t, "candle"] / med[t, "candle-bf16"], rss[t, "candle-bf16"] / rss[t, "torch"]
    }
  }'
