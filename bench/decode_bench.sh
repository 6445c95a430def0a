#!/usr/bin/env bash
# Greedy decoding, t5-small shape, source 256, exactly 64 new tokens: this
# project's candle T5 against transformers' generate, on this machine in one
# run. Both sides run twice: pinned to one thread, and with their default
# thread counts (candle: one per physical core; torch: its own default).
# Prints medians of wall-clock and CPU time and the speed-ups at equal
# settings, plus against torch's faster setting, so that the ratio never
# flatters this project.
#
# With BASELINE=DIR (a checkout of an earlier commit) that commit's decoding
# runs too, alternated with the others, and its figures print beside them
# (built in DIR/target unless BASELINE_TARGET_DIR says otherwise).
#
#   bench/decode_bench.sh [--runs N] [--batch B] [--new-tokens N]
#   PYTHON=/path/to/python bench/decode_bench.sh
#   BASELINE=/path/to/old/checkout bench/decode_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/cpu.sh
# A Python with torch and transformers (pip install torch transformers).
PYTHON="${PYTHON:-python3}"

cargo bench -q -p text2sql-model --bench decode --no-run
result() { sed -n "s/^RESULT $1=//p" <<<"$2"; }
BASELINE="${BASELINE:-}"
baseline_decode() {
  (cd "$BASELINE" && CARGO_TARGET_DIR="${BASELINE_TARGET_DIR:-$BASELINE/target}" \
    cargo bench -q -p text2sql-model --bench decode "$@")
}
[[ -n $BASELINE ]] && baseline_decode --no-run
before_single="" before_default=""

# Interleaved (ours, theirs, ours, theirs) so that a change in the machine's
# load hits both sides of a comparison alike.
[[ -n $BASELINE ]] && before_single=$(baseline_decode -- --threads 1 "$@" | tee /dev/stderr)
rust_single=$(cargo bench -q -p text2sql-model --bench decode -- --threads 1 "$@" | tee /dev/stderr)
py_single=$("$PYTHON" bench/t5_decode.py --threads 1 "$@" | tee /dev/stderr)
[[ -n $BASELINE ]] && before_default=$(baseline_decode -- "$@" | tee /dev/stderr)
rust_default=$(cargo bench -q -p text2sql-model --bench decode -- "$@" | tee /dev/stderr)
# PyTorch's OpenMP pool spin-waits: on a busy machine its default thread
# count can be several times slower than one thread.
py_default=$("$PYTHON" bench/t5_decode.py "$@" | tee /dev/stderr)

report() { # label, candle output, torch output
  awk -v label="$1" \
    -v cw="$(result candle_median_s "$2")" -v cc="$(result candle_cpu_s "$2")" \
    -v ct="$(result candle_threads "$2")" \
    -v tw="$(result torch_median_s "$3")" -v tc="$(result torch_cpu_s "$3")" \
    -v tt="$(result torch_threads "$3")" 'BEGIN {
    printf "%-28s candle %.3f s (CPU %.3f s, %d thread(s))  transformers %.3f s (CPU %.3f s, %d thread(s))  speed-up %.2fx wall, %.2fx CPU\n", \
      label, cw, cc, ct, tw, tc, tt, tw / cw, tc / cc
  }'
}
echo
echo "median per sequence (64 generated tokens):"
report "one thread each:" "$rust_single" "$py_single"
report "default threads each:" "$rust_default" "$py_default"
# Against transformers' faster setting, whichever it is on this machine.
best_torch=$(awk -v a="$(result torch_median_s "$py_single")" -v b="$(result torch_median_s "$py_default")" \
  'BEGIN { print (a < b) ? "single" : "default" }')
if [[ $best_torch == single ]]; then
  report "default vs torch's best:" "$rust_default" "$py_single"
else
  report "default vs torch's best:" "$rust_default" "$py_default"
fi
if [[ -n $BASELINE ]]; then
  report "baseline, one thread each:" "$before_single" "$py_single"
  report "baseline, default threads:" "$before_default" "$py_default"
fi
