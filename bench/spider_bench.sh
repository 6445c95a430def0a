#!/usr/bin/env bash
# Spider from scratch: train a small T5 on Spider's training set (plus the
# synthetic many-database corpus, see configs/spider.yaml), then score
# Spider dev, whose 20 databases the model has never seen, with the
# test-suite rule, by hardness, greedy and with four execution-guided beams,
# each query held to the shape of the training questions most like it and
# filled with the columns, join keys and literals the question names.
#
#   bench/spider_bench.sh                       # the committed recipe
#   SPIDER_STEPS=200 bench/spider_bench.sh      # a smoke run of every stage
#
# The recipe was chosen on a split of Spider train by database (the
# validation databases below, 10% of train's); dev is scored once at the end.
# About 20 minutes on 2 Intel Xeon cores, 30 on an AVX2-only AMD EPYC (the
# build apart), most of it the 5,000 training steps.
# Everything lands under spider-bench/ and runs/spider/.
set -euo pipefail
cd "$(dirname "$0")/.."

spider="${SPIDER_DIR:-../shared/data/spider}"
config=configs/spider.yaml
source scripts/stages.sh
source bench/cpu.sh

echo "== 1/6 prepare Spider train (validation: 10% of its databases; and whole, for the shapes) and Spider dev"
t2s prepare --format spider --data "$spider/train_spider.json" --tables "$spider/tables.json" \
    --databases "$spider/database" --out spider-bench/train --split-by database --val-ratio 0.1 \
    --skip-invalid --overwrite --quiet
# The query shapes for dev come from all of Spider train: on the tuning
# databases a bank of 2,534 / 4,349 / 5,837 training questions gave 202 /
# 209 / 219 right answers (greedy).
t2s prepare --format spider --data "$spider/train_spider.json" --tables "$spider/tables.json" \
    --databases "$spider/database" --out spider-bench/train-all --val-ratio 0 \
    --skip-invalid --overwrite --quiet
t2s prepare --format spider --data "$spider/dev.json" --tables "$spider/tables.json" \
    --databases "$spider/database" --out spider-bench/dev --skip-invalid --overwrite --quiet
took

echo "== 2/6 synthetic corpus (many databases)"
t2s sample --out spider-bench/sample --records "${SPIDER_SAMPLE_RECORDS:-40000}" --seed 7 --force --quiet
t2s prepare --data spider-bench/sample/data.json --tables spider-bench/sample/tables.json \
    --databases spider-bench/sample/databases --out spider-bench/synthetic --overwrite --quiet
took

echo "== 3/6 tokenizer (Spider train and the synthetic corpus)"
t2s tokenizer train --data spider-bench/train --data spider-bench/synthetic --vocab-size 4096 \
    --schema-symbols 192 --out spider-bench/tokenizer --force --quiet
took

overrides=()
if [[ -n "${SPIDER_STEPS:-}" ]]; then
    steps=$SPIDER_STEPS
    overrides=(--set "training.max_steps=$steps" --set "schedule.warmup_steps=$(( steps / 10 ))"
        --set "eval.every_steps=$steps" --set "checkpoint.every_steps=$steps")
    echo "== 4/6 train ($steps steps, shortened by SPIDER_STEPS)"
else
    echo "== 4/6 train ($config)"
fi
rm -rf runs/spider
t2s train --config "$config" ${overrides[@]+"${overrides[@]}"}
took

# Decoding holds each dev question to the query shape of the Spider train
# questions phrased most like it (README, "Query shapes"; all 6,904 of
# them, none of dev's) and fills it with what the question names (README,
# "Filling a shape").
shapes=(--skeletons-from spider-bench/train-all --skeletons 1)

echo "== 5/6 Spider dev, greedy"
t2s eval --model runs/spider/best --data spider-bench/dev --split val "${shapes[@]}" \
    --db-dir "$spider/database" --report runs/spider/dev-greedy.json \
    --per-example runs/spider/dev-greedy.jsonl
took

echo "== 6/6 Spider dev, four beams, execution-guided"
t2s eval --model runs/spider/best --data spider-bench/dev --split val --beams 4 --execution-guided \
    "${shapes[@]}" --db-dir "$spider/database" --report runs/spider/dev-beams4.json
took

percent() { awk -v a="$(grep -m1 '"accuracy":' "$1" | sed 's/[^0-9.]//g')" 'BEGIN { printf "%.1f", 100 * a }'; }
echo
echo "Spider dev execution accuracy (test-suite rule, 972 questions, databases never trained on):"
echo "  greedy: $(percent runs/spider/dev-greedy.json)%   four execution-guided beams: $(percent runs/spider/dev-beams4.json)%"
field() { grep -m1 "\"$2\":" "$1" | sed 's/[^0-9]//g'; }
echo "  of the right answers, empty gold results matched by an empty prediction (one database cannot tell them apart):"
echo "  greedy $(field runs/spider/dev-greedy.json correct_with_no_rows), beams $(field runs/spider/dev-beams4.json correct_with_no_rows) (of $(field runs/spider/dev-greedy.json gold_with_no_rows) such questions)"
echo "  (by hardness: runs/spider/dev-greedy.json, runs/spider/dev-beams4.json)"
echo "$(( SECONDS - run_start )) s without the build."
