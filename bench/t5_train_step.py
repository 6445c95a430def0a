#!/usr/bin/env python3
"""One training step of transformers' T5 at the t5-small shape with random
weights (batch 8, source 256, target 128 tokens, f32, dropout 0.1 in train
mode): forward with labels, backward, clip_grad_norm_(1.0), torch.optim.AdamW
step and zero_grad -- what `cargo bench -p text2sql-train --bench train_step`
measures for this project. PyTorch is needed for this benchmark only.

    python bench/t5_train_step.py [--steps N] [--warmup N] [--threads N]
"""

import argparse
import statistics
import time

import torch
from transformers import T5Config, T5ForConditionalGeneration

BATCH, SOURCE_LEN, TARGET_LEN = 8, 256, 128


def peak_rss_mib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
        torch.set_num_interop_threads(1)

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8,
        feed_forward_proj="relu", tie_word_embeddings=True, decoder_start_token_id=0,
        dropout_rate=0.1,
    )
    model = T5ForConditionalGeneration(config).train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01
    )
    vocab = config.vocab_size

    def token(i, b, salt):
        return 2 + (i * 7919 + b * 104729 + salt) % (vocab - 2)

    input_ids = torch.tensor([[token(i, b, 0) for i in range(SOURCE_LEN)] for b in range(BATCH)])
    attention_mask = torch.ones_like(input_ids)
    labels = torch.tensor([[token(i, b, 13) for i in range(TARGET_LEN)] for b in range(BATCH)])

    times, cpu = [], []
    loss = None
    for step in range(args.warmup + args.steps):
        cpu_before = time.process_time()
        start = time.perf_counter()
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - start
        if step >= args.warmup:
            times.append(elapsed)
            cpu.append(time.process_time() - cpu_before)
    median = statistics.median(times)
    tokens = BATCH * (SOURCE_LEN + TARGET_LEN)
    print(
        f"transformers train step: median {median:.3f} s over {args.steps} steps (batch {BATCH}, "
        f"source {SOURCE_LEN}, target {TARGET_LEN}, f32, {torch.get_num_threads()} threads) = "
        f"{tokens / median:.0f} tokens/s; torch {torch.__version__}; last loss {loss.item():.4f}; "
        f"all steps {[round(t, 3) for t in times]}"
    )
    print(
        f"RESULT side=torch median_s={median:.4f} tokens_per_s={tokens / median:.1f} "
        f"cpu_s={statistics.median(cpu):.3f} peak_rss_mib={peak_rss_mib():.0f}"
    )


if __name__ == "__main__":
    main()
