#!/usr/bin/env python3
"""What a simple Python pipeline does with SynSQL: json.load both files,
attach each record's schema, shuffle with a seed, split 95/5, write JSON.

This is the baseline `text2sql prepare` is measured against (see
prepare_bench.py); it is deliberately the straightforward version people
write, not a strawman: one pass, standard library only.
"""
import argparse
import json
import os
import random


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--tables", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--val-ratio", type=float, default=0.05)
    args = parser.parse_args()

    with open(args.data, encoding="utf-8") as f:
        records = json.load(f)
    with open(args.tables, encoding="utf-8") as f:
        tables = json.load(f)
    schemas = {t["db_id"]: "\n\n".join(t.get("ddls", [])) for t in tables}

    examples = []
    for index, record in enumerate(records):
        example = dict(record)
        example["id"] = index
        example["schema"] = schemas[record["db_id"]]
        examples.append(example)

    random.Random(args.seed).shuffle(examples)
    n_val = int(len(examples) * args.val_ratio)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "val.json"), "w", encoding="utf-8") as f:
        json.dump(examples[:n_val], f)
    with open(os.path.join(args.out, "train.json"), "w", encoding="utf-8") as f:
        json.dump(examples[n_val:], f)
    print(f"{len(examples)} records: {len(examples) - n_val} train, {n_val} val")


if __name__ == "__main__":
    main()
