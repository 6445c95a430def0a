#!/usr/bin/env bash
# Greedy decoding, t5-small shape, source 256, exactly 64 new tokens: this
# project's candle T5 against transformers' generate, on this machine in one
# run. Prints both medians and the speed-up.
#
#   bench/decode_bench.sh [--runs N] [--batch B]
#   PYTHON=/path/to/python bench/decode_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# A Python with torch and transformers (pip install torch transformers).
PYTHON="${PYTHON:-python3}"

rust_out=$(cargo bench -q -p text2sql-model --bench decode -- "$@" | tee /dev/stderr)
# PyTorch's OpenMP pool spin-waits: on a busy machine its default thread
# count can be several times slower than one thread. Measure both and compare
# against the faster, so the ratio never flatters this project.
py_default=$("$PYTHON" bench/t5_decode.py "$@" | tee /dev/stderr)
py_single=$("$PYTHON" bench/t5_decode.py --threads 1 "$@" | tee /dev/stderr)

candle=$(sed -n 's/^RESULT candle_median_s=//p' <<<"$rust_out")
torch_default=$(sed -n 's/^RESULT torch_median_s=//p' <<<"$py_default")
torch_single=$(sed -n 's/^RESULT torch_median_s=//p' <<<"$py_single")
awk -v c="$candle" -v td="$torch_default" -v ts="$torch_single" 'BEGIN {
  t = (ts < td) ? ts : td
  printf "median per run: candle %.3f s, transformers %.3f s (default threads %.3f s, 1 thread %.3f s); candle is %.2fx faster per generated token\n", c, t, td, ts, t / c
}'
