#!/usr/bin/env bash
# The one test command: what a newcomer runs, and what CI (.ci/run) runs.
# Installs what the tests need when it is missing, then checks formatting,
# lints, the test suites, the shipped rule tests, the shared scenarios and
# the deploy manifests and examples.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "toolchain"
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy || true
cargo --version

step "test peers"
# Real peers the integration tests start: Debian's Alertmanager, and tansu,
# a Kafka-protocol broker (../shared/notes/kafka-broker.md).
# For deploy/ (scripts/check-deploy.sh): amtool (prometheus-alertmanager),
# promtool (prometheus), Debian's kubectl (kubernetes-client) and
# kubernetes-validate from PyPI.
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=
apt_update() { [ -n "$apt_updated" ] || { as_root apt-get update -qq; apt_updated=1; }; }
apt_install() {
  apt_update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
if ! command -v prometheus-alertmanager >/dev/null && ! command -v alertmanager >/dev/null; then
  apt_install prometheus-alertmanager
fi
command -v promtool >/dev/null || apt_install prometheus
if ! dpkg -s kubernetes-client >/dev/null 2>&1; then
  if ! command -v kubectl >/dev/null; then
    apt_install kubernetes-client
  elif [ ! -x target/tools/kubernetes-client/usr/bin/kubectl ]; then
    # Another kubectl owns /usr/bin/kubectl: unpack Debian's beside it.
    mkdir -p target/tools/kubernetes-client
    apt_update
    (cd target/tools && apt-get download -qq kubernetes-client \
      && dpkg -x kubernetes-client_*.deb kubernetes-client && rm kubernetes-client_*.deb)
  fi
fi
# The web page's browser test (tests/e2e/web.rs): Debian's chromium, driven
# by playwright-core from npm (tests/browser; it downloads no browser).
command -v chromium >/dev/null || apt_install chromium
{ command -v node >/dev/null && command -v npm >/dev/null; } || apt_install nodejs npm
if [ ! -f tests/browser/node_modules/.package-lock.json ] \
  || ! cmp -s tests/browser/package-lock.json tests/browser/node_modules/.installed-lock.json; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error \
    && cp package-lock.json node_modules/.installed-lock.json)
fi
python3 -c "import kubernetes_validate" 2>/dev/null || python3 -m pip install -q kubernetes-validate
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v tansu >/dev/null; then
  echo "installing tansu (a Kafka-protocol broker, about 7 minutes on 2 cores)"
  cargo install tansu --locked --no-default-features --features libsql --quiet
fi
command -v prometheus-alertmanager alertmanager amtool promtool kubectl tansu chromium node || true

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
# One build serves everything below: the binary the end-to-end tests ran is
# the one the rule tests and the scenarios run (a release build, or a plain
# `cargo build` with other features than the tests', would compile the
# dependencies again for inputs that take milliseconds).
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast
fi
bin="${CARGO_TARGET_DIR:-target}/debug/epicenter"
[ -x "$bin" ] || { echo "$bin was not built by the tests"; exit 1; }

step "rule tests"
"$bin" rules test rules

step "scenarios"
# Ours are generated: the generator must write exactly what is committed.
python3 tests/scenarios/generate.py >/dev/null
git diff --exit-code --stat -- tests/scenarios || {
  echo "tests/scenarios/generate.py writes other scenarios than the committed ones"
  exit 1
}
shared="../shared/scenarios"
if [ -f "$shared/check.py" ]; then
  python3 "$shared/check.py" "$shared" tests/scenarios --cmd "$bin replay --rules rules"
else
  echo "no $shared beside the checkout: scenario check skipped (it needs $shared/check.py)"
fi

step "deploy"
scripts/check-deploy.sh
