#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz, libFuzzer) of every target in fuzz/,
# SECONDS each, one after the other; prints each target's executions.
#   scripts/fuzz.sh [SECONDS] [TARGET...]      (default: 60 s, every target)
# The instrumented build of everything (DataFusion included) takes about
# half an hour cold on 2 cores: by hand, not in CI (CI replays the corpus:
# tests/e2e/fuzz_corpus.rs). See fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(decode webhook rules config sql checkpoint journal outbox)
fi
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo fuzz build --sanitizer none
mkdir -p ../target/fuzz-logs
for t in "${targets[@]}"; do
  log="../target/fuzz-logs/$t.log"
  # The corpus grows with what the run finds; new inputs stay out of git
  # until someone adds the interesting ones (fuzz/README.md).
  work="../target/fuzz-corpus/$t"
  mkdir -p "$work"
  cargo fuzz run --sanitizer none "$t" "$work" "corpus/$t" -- \
    -max_total_time="$secs" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1 \
    || { echo "$t: FAILED (see $log and fuzz/artifacts/$t/)"; tail -30 "$log"; exit 1; }
  runs=$(grep -m1 '^stat::number_of_executed_units' "$log" | awk '{print $2}')
  echo "$t: ${runs:-?} executions in ${secs}s, no crash"
done
