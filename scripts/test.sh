#!/usr/bin/env bash
# The one test command: what a newcomer runs, and what CI (.ci/run) runs.
# Installs what the tests need when it is missing, then checks formatting,
# lints, the test suites, the shipped rule tests and the shared scenarios.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "toolchain"
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy || true
cargo --version

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build"
cargo build --release --locked --bin epicenter

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast
fi

step "rule tests"
target/release/epicenter rules test rules

step "scenarios"
shared="../shared/scenarios"
if [ -f "$shared/check.py" ]; then
  python3 "$shared/check.py" "$shared" --cmd 'target/release/epicenter replay --rules rules'
else
  echo "no $shared beside the checkout: shared scenario check skipped"
fi
