#!/usr/bin/env bash
# Checks deploy/ offline, as the tools its users run would: renders every
# kustomization with Debian's kubectl (kustomize v2, the oldest the
# manifests promise to work with) and with any newer kubectl on PATH,
# validates what they render against the Kubernetes schemas
# (kubernetes-validate, strict: unknown fields fail), checks the
# Alertmanager example with amtool and the PrometheusRule's expressions with
# promtool. What the code must agree with (RBAC, metric names, the rule
# pack copy, the layouts' configs) is tested in tests/e2e/deploy.rs.
#
# Expects the tools scripts/test.sh installs: kubernetes-validate (PyPI),
# amtool (prometheus-alertmanager), promtool (prometheus), Debian's
# kubernetes-client (unpacked into target/tools when another kubectl owns
# /usr/bin/kubectl).
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

debian_kubectl="${DEBIAN_KUBECTL:-target/tools/kubernetes-client/usr/bin/kubectl}"
if dpkg -s kubernetes-client >/dev/null 2>&1; then debian_kubectl=/usr/bin/kubectl; fi
kubectls=("$debian_kubectl")
if command -v kubectl >/dev/null && [ "$(command -v kubectl)" != "$debian_kubectl" ]; then
  kubectls+=("$(command -v kubectl)")
fi

for k in "${kubectls[@]}"; do
  version="kubectl $("$k" version --client 2>/dev/null | grep -o 'v[0-9][0-9.]*' | head -1)"
  for dir in deploy/kustomize/base deploy/kustomize/overlays/*/; do
    dir=${dir%/}
    out="$tmp/$(echo "$dir" | tr / _).yaml"
    "$k" kustomize "$dir" >"$out" 2>"$tmp/err" || { cat "$tmp/err"; echo "FAIL $dir does not render ($version)"; exit 1; }
    python3 -m kubernetes_validate --strict --quiet "$out" || { echo "FAIL $dir: rendered manifests do not validate ($version)"; exit 1; }
    kinds=$(grep -c '^kind:' "$out")
    echo "ok   $dir renders ($kinds objects) and validates, $version"
  done
done

# The ServiceMonitor and PrometheusRule are CRDs kubernetes-validate has no
# schema for: it warns and passes; their content is checked here and below.
python3 -m kubernetes_validate --strict --quiet --no-warn deploy/examples/servicemonitor.yaml deploy/examples/prometheusrule.yaml

amtool check-config deploy/examples/alertmanager.yml

python3 - "$tmp/rules.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open("deploy/examples/prometheusrule.yaml")) if d]
groups = [g for d in docs if d.get("kind") == "PrometheusRule" for g in d["spec"]["groups"]]
if not groups:
    sys.exit("deploy/examples/prometheusrule.yaml: no PrometheusRule with groups")
yaml.safe_dump({"groups": groups}, open(sys.argv[1], "w"))
PY
promtool check rules "$tmp/rules.yaml"
echo "ok   deploy/examples: amtool and promtool"
