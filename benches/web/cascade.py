#!/usr/bin/env python3
"""The shipped example (examples/nfs-csi-cascade.ndjson) with N more pods
caught in its cascade: after the example's last record, N pods in 20
namespaces on the example's 4 nodes each report, as kubelet does, that the
CSI driver is not registered (a core/v1 FailedMount event, the example's own
text with the pod's name, namespace, node and volume). One incident, with a
blast radius of N + 18 pods. Writes the stream to stdout.

    benches/web/cascade.py [N] > stream.ndjson
"""
import json
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
NAMESPACES = 20
NODES = ["k8s-node1", "k8s-node2", "k8s-node3", "k8s-node4"]
example = Path(__file__).resolve().parents[2] / "examples" / "nfs-csi-cascade.ndjson"
lines = example.read_text().splitlines()
template = next(
    json.loads(l)
    for l in lines
    if '"reason":"FailedMount"' in l and '"involvedObject"' in l and "not found in the list" in l
)
start = datetime(2026, 3, 16, 8, 22, 46, tzinfo=timezone.utc)
out = sys.stdout
for l in lines:
    out.write(l + "\n")
for i in range(N):
    ns = f"team-{i % NAMESPACES:02d}"
    pod = f"app-{i:04d}-7d9f8c6b5-{uuid.UUID(int=i).hex[-5:]}"
    at = (start + timedelta(milliseconds=200 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")
    e = json.loads(json.dumps(template))
    o = e["object"]
    o["metadata"].update(
        name=f"{pod}.{i:016x}", namespace=ns, uid=str(uuid.UUID(int=10**6 + i)),
        creationTimestamp=at,
    )
    o["involvedObject"].update(namespace=ns, name=pod, uid=str(uuid.UUID(int=2 * 10**6 + i)))
    o["message"] = (
        f'MountVolume.SetUp failed for volume "pvc-{uuid.UUID(int=3 * 10**6 + i)}" : '
        "kubernetes.io/csi: mounter.SetUpAt failed to get CSI client: driver name "
        "nfs.csi.k8s.io not found in the list of registered CSI drivers"
    )
    for k in ("firstTimestamp", "lastTimestamp"):
        if k in o:
            o[k] = at
    o.setdefault("source", {})["host"] = NODES[i % len(NODES)]
    o["reportingInstance"] = NODES[i % len(NODES)]
    out.write(json.dumps(e, separators=(",", ":")) + "\n")
