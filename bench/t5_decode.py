#!/usr/bin/env python3
"""Greedy decoding speed of transformers' T5 at the t5-small shape with random
weights: a 256-token source and exactly 64 new tokens (min_new_tokens=64), the
setting `cargo bench -p text2sql-model --bench decode` measures for this
project. PyTorch is needed for this benchmark only.

    python bench/t5_decode.py [--runs N] [--batch B] [--new-tokens N] [--threads N]

CPU time (all threads, `time.process_time`) is printed beside wall-clock time:
on a shared machine it moves far less.
"""

import argparse
import statistics
import time

import torch
from transformers import T5Config, T5ForConditionalGeneration

SOURCE_LEN = 256


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    args = parser.parse_args()
    new_tokens = args.new_tokens
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8,
        feed_forward_proj="relu", tie_word_embeddings=True, decoder_start_token_id=0,
    )
    model = T5ForConditionalGeneration(config).eval()
    vocab = config.vocab_size
    input_ids = torch.tensor(
        [[2 + (i * 7919 + b * 104729) % (vocab - 2) for i in range(SOURCE_LEN)] for b in range(args.batch)]
    )
    kwargs = dict(do_sample=False, num_beams=1, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    with torch.inference_mode():
        model.generate(input_ids, **kwargs)  # warm-up
        times = []
        cpu_times = []
        for _ in range(args.runs):
            cpu_start = time.process_time()
            start = time.perf_counter()
            out = model.generate(input_ids, **kwargs)
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
            assert out.shape[1] == new_tokens + 1
    median = statistics.median(times)
    cpu_median = statistics.median(cpu_times)
    threads = torch.get_num_threads()
    print(
        f"transformers greedy: median {median:.3f} s over {args.runs} runs (batch {args.batch}, "
        f"source {SOURCE_LEN}, {new_tokens} new tokens) = {median * 1000 / new_tokens:.2f} ms per "
        f"generated token; CPU time {cpu_median:.3f} s; torch {torch.__version__}, {threads} "
        f"thread(s); all runs {[round(t, 3) for t in times]}"
    )
    print(f"RESULT torch_median_s={median:.4f}")
    print(f"RESULT torch_cpu_s={cpu_median:.4f}")
    print(f"RESULT torch_threads={threads}")


if __name__ == "__main__":
    main()
