#!/usr/bin/env python3
"""Side-by-side benchmark of `text2sql prepare` against prepare_baseline.py.

Generates a SynSQL-format corpus of about --size-gb with `text2sql sample`
(once, cached under --work), then runs each pipeline --runs times on it and
prints wall time, throughput, CPU time (user+sys) and peak RSS (from wait4,
per child process) with medians and the ratio. Both run on the same machine in the same invocation,
because this machine is noisy and only same-run ratios mean anything.

    cargo build --release
    python3 bench/prepare_bench.py --size-gb 1
    python3 bench/prepare_bench.py --size-gb 1 --prepare-args=--compression=zstd
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def binary() -> str:
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release", "text2sql")


def run_measured(cmd):
    """Runs cmd, returns (wall seconds, CPU seconds, peak RSS in MiB) of that child alone."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stderr = proc.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{stderr}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


def ensure_corpus(work: str, size_gb: float, text2sql: str) -> str:
    corpus = os.path.join(work, f"corpus-{size_gb}gb")
    if os.path.exists(os.path.join(corpus, "data.json")):
        return corpus
    # Pilot run to learn the bytes per record of the sample generator.
    pilot = os.path.join(work, "pilot")
    shutil.rmtree(pilot, ignore_errors=True)
    subprocess.run([text2sql, "--quiet", "sample", "--out", pilot, "--records", "20000"], check=True)
    per_record = os.path.getsize(os.path.join(pilot, "data.json")) / 20000
    shutil.rmtree(pilot)
    records = int(size_gb * 1e9 / per_record)
    print(f"generating {records} records (~{size_gb} GB) into {corpus}", flush=True)
    subprocess.run([text2sql, "--quiet", "sample", "--out", corpus, "--records", str(records)], check=True)
    return corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gb", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", default=os.path.join(ROOT, "bench", "out"))
    parser.add_argument("--skip-python", action="store_true", help="measure text2sql only (e.g. for the full 9 GB corpus)")
    parser.add_argument("--prepare-args", default="", help="extra arguments for text2sql prepare, space-separated")
    args = parser.parse_args()

    text2sql = binary()
    if not os.path.exists(text2sql):
        sys.exit(f"{text2sql} not found: run `cargo build --release` first")
    os.makedirs(args.work, exist_ok=True)
    corpus = ensure_corpus(args.work, args.size_gb, text2sql)
    data = os.path.join(corpus, "data.json")
    tables = os.path.join(corpus, "tables.json")
    size_mb = os.path.getsize(data) / 1e6

    pipelines = {
        "text2sql prepare": lambda out: [text2sql, "--quiet", "prepare", "--data", data, "--tables", tables, "--out", out] + args.prepare_args.split(),
    }
    if not args.skip_python:
        pipelines["python baseline"] = lambda out: [sys.executable, os.path.join(ROOT, "bench", "prepare_baseline.py"), "--data", data, "--tables", tables, "--out", out]

    results = {}
    for name, make_cmd in pipelines.items():
        walls, cpus, rss = [], [], []
        for _ in range(args.runs):
            out = os.path.join(args.work, "out-" + name.split()[0])
            shutil.rmtree(out, ignore_errors=True)
            wall, cpu, peak = run_measured(make_cmd(out))
            shutil.rmtree(out, ignore_errors=True)
            walls.append(wall)
            cpus.append(cpu)
            rss.append(peak)
            print(f"  {name}: {wall:.2f} s, CPU {cpu:.2f} s, peak RSS {peak:.0f} MiB", flush=True)
        results[name] = {
            "median_s": statistics.median(walls),
            "runs_s": walls,
            "median_cpu_s": statistics.median(cpus),
            "runs_cpu_s": cpus,
            "peak_rss_mib": max(rss),
        }

    print(f"\ncorpus: {data} ({size_mb:.0f} MB), {os.cpu_count()} cores")
    print(f"{'pipeline':<18} {'median s':>9} {'MB/s':>8} {'CPU s':>7} {'peak RSS MiB':>13}")
    for name, r in results.items():
        print(
            f"{name:<18} {r['median_s']:>9.2f} {size_mb / r['median_s']:>8.1f} "
            f"{r['median_cpu_s']:>7.2f} {r['peak_rss_mib']:>13.0f}"
        )
    if "python baseline" in results:
        python, rust = results["python baseline"], results["text2sql prepare"]
        ratio = python["median_s"] / rust["median_s"]
        cpu_ratio = python["median_cpu_s"] / rust["median_cpu_s"]
        print(f"speed-up of text2sql prepare over the Python baseline: {ratio:.1f}x wall, {cpu_ratio:.1f}x CPU time")
        results["speedup"] = ratio
        results["cpu_speedup"] = cpu_ratio
    results["corpus_mb"] = size_mb
    with open(os.path.join(args.work, "prepare_bench.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
