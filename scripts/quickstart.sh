#!/usr/bin/env bash
# The main job on the built-in sample, offline: sample corpus -> prepare ->
# tokenizer -> train a small T5 from scratch -> execution accuracy on the
# sample's validation split. Everything lands under quickstart/ and runs/.
#
#   scripts/quickstart.sh                 # QUICKSTART_STEPS=120 by default
#   QUICKSTART_STEPS=1200 scripts/quickstart.sh   # the full configs/quickstart.yaml run
set -euo pipefail
cd "$(dirname "$0")/.."

steps="${QUICKSTART_STEPS:-120}"
cargo build --release --quiet
target="${CARGO_TARGET_DIR:-target}"
t2s() { "$target/release/text2sql" "$@"; }

echo "== 1/5 sample corpus (SynSQL format, 10 databases)"
t2s sample --out quickstart/sample --records 5000 --seed 42 --force

# The sample has ten databases: a database split would leave val empty or
# unrepresentative, so split by example (val then has seen schemas).
echo "== 2/5 prepare"
t2s prepare --data quickstart/sample/data.json --tables quickstart/sample/tables.json \
    --databases quickstart/sample/databases --out quickstart/processed \
    --split-by example --val-ratio 0.05 --overwrite

echo "== 3/5 tokenizer"
t2s tokenizer train --data quickstart/processed --vocab-size 3072 --out quickstart/tokenizer --force

echo "== 4/5 train ($steps steps; see configs/quickstart.yaml)"
rm -rf runs/quickstart
every=$(( steps < 300 ? steps : 300 ))
t2s train --config configs/quickstart.yaml --set "training.max_steps=$steps" \
    --set "curriculum.phases.0.steps=$(( steps / 4 ))" --set "curriculum.phases.1.steps=$(( steps - steps / 4 ))" \
    --set "schedule.warmup_steps=$(( steps / 10 ))" \
    --set "eval.every_steps=$every" --set "checkpoint.every_steps=$every"

echo "== 5/5 execution accuracy on the validation split"
t2s eval --model runs/quickstart/best --data quickstart/processed --split val --limit 200 \
    --db-dir quickstart/sample/databases --report runs/quickstart/eval.json

echo
echo "Serve the model in the web demo:"
echo "  $target/release/text2sql serve --model runs/quickstart/best --databases quickstart/sample/databases"
