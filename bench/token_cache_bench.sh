#!/usr/bin/env bash
# Time to the first training step with a cold and a warm token cache.
#   bench/token_cache_bench.sh [WORK_DIR] [RECORDS]
# Makes a sample corpus of RECORDS records (default 100000), prepares it
# (split by example), trains an 8000-piece tokenizer on it, then runs
# `text2sql train` for one step twice: with --rebuild-token-cache (cold)
# and again (warm). Each stderr line is stamped with the seconds since the
# command started; the "token cache:" line ends the cache's share.
set -euo pipefail
WORK=${1:-/tmp/token-cache-bench}
RECORDS=${2:-100000}
BIN=${TEXT2SQL:-target/release/text2sql}
mkdir -p "$WORK"
cd "$WORK"
[ -f sample/data.json ] || "$BIN" -q sample --out sample --records "$RECORDS"
[ -f processed/manifest.json ] || "$BIN" -q prepare --data sample/data.json \
  --tables sample/tables.json --databases sample/databases --out processed --split-by example
[ -f tok/tokenizer.json ] || "$BIN" -q tokenizer train --data processed --vocab-size 8000 \
  --max-mb 20 --out tok
cat > bench.yaml <<'YAML'
run: {dir: runs, name: bench}
model:
  tokenizer: tok
  architecture: {vocab_size: 8000, d_model: 192, d_kv: 32, d_ff: 768, num_layers: 3, num_decoder_layers: 3, num_heads: 6, dropout_rate: 0.1, feed_forward_proj: relu, tie_word_embeddings: true}
data: {processed_dir: processed, max_source_tokens: 384, max_target_tokens: 128}
curriculum:
  phases:
    - {name: all, steps: 1000, tiers: {Simple: 1, Moderate: 1, Complex: 1, Highly Complex: 1}}
optimizer: {kind: adamw, lr: 1.0e-3, weight_decay: 0.01, clip_norm: 1.0}
schedule: {kind: linear, warmup_steps: 10}
batch: {max_tokens: 4096, grad_accum: 1}
training: {max_steps: 1, seed: 3, log_every_steps: 1}
eval: {every_steps: 1000, val_sample_size: 64}
checkpoint: {every_steps: 1000, keep_last: 1}
YAML
stamp() { python3 -c '
import sys, time
t0 = float(sys.argv[1])
for line in sys.stdin:
    print(f"{time.time() - t0:8.2f}s  {line}", end="", flush=True)' "$1"; }
for run in cold warm; do
  rm -rf "runs/$run"
  flag=$([ "$run" = cold ] && echo --rebuild-token-cache || true)
  echo "== $run"
  t0=$(date +%s.%N)
  /usr/bin/time -f "total %e s wall, %U s user, %S s sys" \
    "$BIN" train --config bench.yaml --set run.name="$run" $flag 2>&1 >/dev/null | stamp "$t0"
done
