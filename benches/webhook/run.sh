#!/usr/bin/env bash
# Webhook load: `epicenter serve` (release) receiving distinct three-alert
# Alertmanager bodies from wrk on loopback; prints wrk's throughput and
# latency percentiles and what the pipeline counted.
# Usage: benches/webhook/run.sh [seconds] [connections]
# EPICENTER_BIN=path runs that binary instead of building this checkout's
# (how BENCHMARKS.md compares two versions in one run).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-15}
conns=${2:-32}
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)"; exit 1; }
bin=${EPICENTER_BIN:-target/release/epicenter}
if [ -z "${EPICENTER_BIN:-}" ]; then
  cargo build --release --locked --bin epicenter --quiet
fi
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$dir/epicenter.yaml" <<YAML
listen: 127.0.0.1:$port
state_dir: state
sinks: {stdout: {enabled: false}}
YAML
"$bin" serve --config "$dir/epicenter.yaml" 2>"$dir/stderr" &
pid=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
wrk -t1 -c"$conns" -d"${secs}s" --latency -s benches/webhook/alerts.lua "http://127.0.0.1:$port/api/v1/alertmanager"
sleep 1
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^epicenter_(records_total|source_rejected_total|decode_errors_total|engine_records_total|journal_appended_total|journal_syncs_total|signals_total\{signal="[a-z-]*pod[a-z-]*"\})' | grep -v ' 0$' || true
kill -TERM $pid; wait $pid
