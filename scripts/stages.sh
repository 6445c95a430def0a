# Sourced by the staged recipes (scripts/quickstart.sh, bench/spider_bench.sh):
# builds the binary once, timed apart from the run, and gives `t2s` (the
# built text2sql) and `took` (prints a stage's wall-clock time), so every
# recipe times its stages the same way for docs/benchmarks.md.
target="${CARGO_TARGET_DIR:-target}"
t2s() { "$target/release/text2sql" "$@"; }
stage_start=$SECONDS
took() { echo "   ($(( SECONDS - stage_start )) s)"; stage_start=$SECONDS; }

echo "== build (one-time)"
cargo build --release --quiet --bin text2sql
took
run_start=$SECONDS
