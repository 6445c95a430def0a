#!/usr/bin/env bash
# Greedy decoding, t5-small shape, source 256, exactly 64 new tokens: this
# project's candle T5 against transformers' generate, on this machine in one
# run. Prints both medians and the speed-up.
#
#   bench/decode_bench.sh [--runs N] [--batch B]
#   PYTHON=/path/to/python bench/decode_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-/work/pyenv/bin/python}"

rust_out=$(cargo bench -q -p text2sql-model --bench decode -- "$@" | tee /dev/stderr)
py_out=$("$PYTHON" bench/t5_decode.py "$@" | tee /dev/stderr)

candle=$(sed -n 's/^RESULT candle_median_s=//p' <<<"$rust_out")
torch=$(sed -n 's/^RESULT torch_median_s=//p' <<<"$py_out")
awk -v c="$candle" -v t="$torch" 'BEGIN {
  printf "median per run: candle %.3f s, transformers %.3f s; candle is %.2fx faster per generated token\n", c, t, t / c
}'
