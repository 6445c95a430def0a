#!/usr/bin/env bash
# The main job on the built-in sample, offline: sample corpus -> prepare ->
# tokenizer -> train a small T5 from scratch -> execution accuracy on the
# sample's validation databases, which the model never trained on. Everything lands under quickstart/ and runs/.
#
#   scripts/quickstart.sh                      # the full recipe, configs/quickstart.yaml
#   QUICKSTART_STEPS=40 scripts/quickstart.sh  # a smoke run: every stage, no useful model
#
# The one-time `cargo build` is timed separately; each stage prints its own
# wall-clock time so the run can be compared with docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

config=configs/quickstart.yaml
source scripts/stages.sh

echo "== 1/5 sample corpus (SynSQL format, 334 databases)"
t2s sample --out quickstart/sample --records 50000 --seed 42 --force --quiet
took

# Split by database (prepare's default): about 5% of the sample's databases
# go to validation with all their questions, so validation measures schemas
# the model has never seen, as Spider's dev set does.
echo "== 2/5 prepare"
t2s prepare --data quickstart/sample/data.json --tables quickstart/sample/tables.json \
    --databases quickstart/sample/databases --out quickstart/processed \
    --split-by database --val-ratio 0.05 --overwrite --quiet
took

echo "== 3/5 tokenizer"
t2s tokenizer train --data quickstart/processed --vocab-size 3072 --schema-symbols 64 \
    --out quickstart/tokenizer --force --quiet
took

# QUICKSTART_STEPS shortens the run: the curriculum's first phase keeps its
# share of the steps and the warmup stays within the run.
overrides=()
if [[ -n "${QUICKSTART_STEPS:-}" ]]; then
    steps=$QUICKSTART_STEPS
    overrides=(--set "training.max_steps=$steps"
        --set "curriculum.phases.0.steps=$(( steps / 4 ))"
        --set "curriculum.phases.1.steps=$(( steps - steps / 4 ))"
        --set "schedule.warmup_steps=$(( steps / 10 ))"
        --set "eval.every_steps=$steps" --set "checkpoint.every_steps=$steps")
    echo "== 4/5 train ($steps steps, shortened by QUICKSTART_STEPS)"
else
    echo "== 4/5 train ($config)"
fi
rm -rf runs/quickstart
t2s train --config "$config" ${overrides[@]+"${overrides[@]}"}
took

# Decoding holds each question to the query shape of the training
# questions phrased most like it, and fills it with the columns and values
# the question names (README, "Query shapes" and "Filling a shape").
echo "== 5/5 execution accuracy on the validation databases (never trained on)"
t2s eval --model runs/quickstart/best --data quickstart/processed --split val --limit 200 \
    --db-dir quickstart/sample/databases --skeletons-from quickstart/processed \
    --report runs/quickstart/eval.json
took

# The report's first "correct", "scored" and "accuracy" are the overall ones
# (the per-tier buckets follow them).
field() { grep -m1 "\"$1\":" runs/quickstart/eval.json | sed 's/[^0-9.]//g'; }
correct=$(field correct)
scored=$(field scored)
percent=$(awk -v a="$(field accuracy)" 'BEGIN { printf "%.1f", 100 * a }')
echo
echo "Execution accuracy: ${percent}% (${correct} of ${scored} validation questions," \
    "on databases never trained on, spider rule, greedy decoding held to query shapes) after $(( SECONDS - run_start )) s without the build."
echo "Report: runs/quickstart/eval.json; curves: runs/quickstart/loss.png"
echo
echo "Serve the model in the web demo:"
echo "  $target/release/text2sql serve --model runs/quickstart/best --databases quickstart/sample/databases \\"
echo "      --skeletons-from quickstart/processed"
