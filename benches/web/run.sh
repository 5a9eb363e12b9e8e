#!/usr/bin/env bash
# The web page under load: `epicenter serve` (release) over
#  - a history of 1,000 incidents (the history bench's real lifecycles,
#    `target/release/history --incidents 1000`), listed with ?limit=1000;
#  - the shipped example with 1,000 more pods in its cascade
#    (benches/web/cascade.py), replayed into the history: one incident with
#    1,018 affected pods.
# Prints, per page: the server's time (curl: time to first byte and total,
# median of 21 requests) and Chromium's navigation timing (median of 7
# loads: first byte, HTML received, DOMContentLoaded, load event).
# Usage: benches/web/run.sh
# EPICENTER_BIN=path runs that binary instead of building this checkout's.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${EPICENTER_BIN:-target/release/epicenter}
if [ -z "${EPICENTER_BIN:-}" ]; then
  cargo build --release --locked --bin epicenter --quiet
fi
cargo build --release --locked -p epicenter-benches --bin history --quiet
[ -d tests/browser/node_modules/playwright-core ] \
  || (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$dir"' EXIT

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# serve over history DIR; sets $pid and $base.
start() {
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$dir/$1"
  cat > "$dir/$1/epicenter.yaml" <<YAML
listen: 127.0.0.1:$port
state_dir: state
sinks: {stdout: {enabled: false}}
YAML
  (cd "$dir/$1" && exec "$OLDPWD/$bin" serve --config epicenter.yaml 2>stderr) &
  pid=$!
  base="http://127.0.0.1:$port"
  for _ in $(seq 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done
}
stop() { kill -TERM "$pid"; wait "$pid" || true; pid=; }
measure() {
  local what=$1 url=$2
  curl -sf -o /dev/null "$url" # the history's engine opened, files listed
  local first total bytes
  first=$(for _ in $(seq 21); do curl -s -o /dev/null -w '%{time_starttransfer}\n' "$url"; done | median)
  total=$(for _ in $(seq 21); do curl -s -o /dev/null -w '%{time_total}\n' "$url"; done | median)
  bytes=$(curl -s "$url" | wc -c)
  printf '%s: server first byte %.1f ms, whole page %.1f ms, %s bytes of HTML\n' \
    "$what" "$(echo "$first * 1000" | bc -l)" "$(echo "$total * 1000" | bc -l)" "$bytes"
  NODE_PATH=tests/browser/node_modules node benches/web/load.js "$url" 7
}

# 1. The list of 1,000 incidents.
mkdir -p "$dir/list/state"
target/release/history --incidents 1000 --days 30 --runs 1 --dir "$dir/list/state/history" >/dev/null
start list
measure "list, 1,000 incidents" "$base/?limit=1000"
measure "list, default 200" "$base/"
stop

# 2. One incident with 1,018 affected pods.
mkdir -p "$dir/big/state"
benches/web/cascade.py 1000 > "$dir/cascade.ndjson"
"$bin" replay --rules rules --history "$dir/big/state/history" "$dir/cascade.ndjson" > "$dir/big/out.json"
id=$(python3 -c "
import json,sys
best=max((json.loads(l) for l in open(sys.argv[1])), key=lambda i: len(i['affected']))
print(best['id'], len(best['affected']), file=sys.stdout)" "$dir/big/out.json")
echo "incident ${id% *}: ${id#* } affected entities"
start big
measure "incident, ${id#* } affected" "$base/incidents/${id% *}"
stop
