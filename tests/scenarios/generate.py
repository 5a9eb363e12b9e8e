#!/usr/bin/env python3
"""Generate replay scenarios for epicenter (tests/scenarios/<name>/input.ndjson + expected.json).

    python3 tests/scenarios/generate.py            # all scenarios
    python3 tests/scenarios/generate.py NAME ...   # only these

Standard library only, deterministic: every scenario has its own seed (crc32 of its name plus a
fixed salt), all names (namespaces, workloads, nodes, webhook/driver/CNI/provisioner names,
hosts, quotas, ...) are drawn from pools with that seed, as are counts, timings and orderings.

Record shapes follow ../shared/contract/replay.md and ../shared/scenarios (watch events with
observedAt, bare objects, v1 and events.k8s.io/v1 Events, Alertmanager v4 bodies, Vector
`kubernetes_logs` and Fluent Bit kubernetes-filter log records).

Where the decisive texts come from (exact formats; names substituted):
- Admission webhook FailedCreate: kube-controller-manager replicaset/job controller
  (`Error creating: ` + apiserver admission error) - k8s.io/apiserver/pkg/admission/plugin/webhook/errors
  ("failed calling webhook %q: %v") and webhookutil ("failed to call webhook: %v"); the
  "no endpoints available for service" form is the apiserver service resolver (seen in
  kyverno/kyverno, open-policy-agent/gatekeeper and cert-manager issues).
- DNS client failures: Go net (`dial tcp: lookup H on IP:53: read udp A->B: i/o timeout`,
  `server misbehaving`), glibc EAI_AGAIN via Python/psycopg2 (`[Errno -3] Temporary failure in
  name resolution`, `could not translate host name ... Temporary failure in name resolution`),
  musl (`Name does not resolve`), Java (`java.net.UnknownHostException: H: Temporary failure in
  name resolution`), Node.js (`getaddrinfo EAI_AGAIN H`), .NET (`HttpRequestException: Resource
  temporarily unavailable (H:443)`); CoreDNS loop plugin fatal (`[FATAL] plugin/loop: Loop ...`).
- Node pressure: kubelet eviction manager (pkg/kubelet/eviction/helpers.go: "The node was low on
  resource: %v. Threshold quantity: %v, available: %v. Container %s was using %s, request is %s,
  has larger consumption of %v. ", EvictionThresholdMet "Attempting to reclaim %s"),
  node conditions KubeletHasDiskPressure / KubeletHasInsufficientMemory.
- CNI sandbox failures: kubelet FailedCreatePodSandBox with containerd CRI error texts of the
  calico, flannel and cilium-cni plugins (calico/flannel/cilium GitHub issues).
- Provisioning: kube-controller-manager persistentvolume controller ExternalProvisioning text
  (pkg/controller/volume/persistentvolume/pv_controller.go), kube-scheduler
  "pod has unbound immediate PersistentVolumeClaims" (volumebinding plugin).
- cert-manager: certificates issuing controller ("The certificate request has failed to complete
  and will be retried: %s", cert-manager/cert-manager#7181), trigger controller ("Renewing
  certificate as renewal was scheduled at %s"), requestmanager ("Created new CertificateRequest
  resource %q"), CA issuer ("Error getting keypair for CA issuer: ..."); Go crypto/x509
  ("x509: certificate has expired or is not yet valid: current time %s is after %s").
- etcd: server/etcdserver util.go ("apply request took too long"), wal.go ("slow fdatasync"),
  raft ("leader failed to send out heartbeat on time; took too long, leader is overloaded likely
  from slow disk"); apiserver "etcdserver: request timed out"; client-go leaderelection
  ("failed to renew lease %v: timed out waiting for the condition", "leaderelection lost").
- Quota: apiserver ResourceQuota admission ("exceeded quota: %s, requested: %s, used: %s,
  limited: %s").
- Rollouts: deployment controller ("Scaled up replica set %s to %d",
  ProgressDeadlineExceeded "Deployment %q has timed out progressing."), kubelet BackOff
  ("Back-off restarting failed container %s in pod %s"), image pull errors.
- Drains (see tests/scenarios/texts/drains.md): kured wraps kubectl output in logfmt (kubereboot/kured#82), kubectl drain ("error when evicting pods/%q -n %q (will retry after 5s): Cannot evict
  pod as it would violate the pod's disruption budget."; longhorn/longhorn#1286,
  k3d-io/k3d#1414, openshift/origin#31161).
Cross-checked against tests/scenarios/texts/*.md (real texts with sources: quota.md confirms the
generated-pod-name form and the "(combined from similar events): " aggregation, certificates.md the
cert-manager Failed/ErrGetKeyPair texts, drains.md the kubectl/kured eviction lines).
"""
import datetime
import json
import math
import os
import random
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SALT = 20260
UTC = datetime.timezone.utc
ALNUM = "bcdfghjklmnpqrstvwxz2456789"
HEX = "0123456789abcdef"


# --------------------------------------------------------------------------- time helpers

def iso(t, digits=0):
    sec = int(math.floor(t))
    base = datetime.datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if digits == 0:
        return base + "Z"
    frac = int((t - sec) * 10 ** digits)
    frac = min(frac, 10 ** digits - 1)
    return "%s.%0*dZ" % (base, digits, frac)


def klog_ts(t, letter="I"):
    d = datetime.datetime.fromtimestamp(int(t), UTC)
    return "%s%s %s.%06d" % (letter, d.strftime("%m%d"), d.strftime("%H:%M:%S"), int((t % 1) * 1e6))


# --------------------------------------------------------------------------- pools

NS_POOL = ["shop", "payments", "platform", "data", "web", "backoffice", "integrations", "media",
           "identity", "ops", "analytics", "customer", "partner-api", "internal-tools", "billing",
           "logistics", "search", "catalog", "crm", "growth", "notifications", "checkout", "tenant-a",
           "tenant-b", "staging-apps", "ml", "reporting", "support", "hr-tools", "marketing"]

# name, language/log style, image repo, port
APP_POOL = [
    ("orders-api", "go", "ghcr.io/acme/orders-api", 8080), ("checkout", "java", "registry.acme.io/checkout", 8080),
    ("payments-gateway", "go", "ghcr.io/acme/payments-gateway", 8443), ("cart", "node", "ghcr.io/acme/cart", 3000),
    ("catalog-api", "python", "registry.acme.io/catalog-api", 8000), ("search-indexer", "java", "registry.acme.io/search-indexer", 8080),
    ("notifier", "node", "ghcr.io/acme/notifier", 3000), ("billing-svc", "dotnet", "acmecr.azurecr.io/billing-svc", 8080),
    ("invoices", "python", "ghcr.io/acme/invoices", 8000), ("auth-service", "go", "ghcr.io/acme/auth-service", 9000),
    ("user-profile", "node", "ghcr.io/acme/user-profile", 3000), ("inventory", "java", "registry.acme.io/inventory", 8080),
    ("shipping-rates", "go", "ghcr.io/acme/shipping-rates", 8080), ("recommender", "python", "registry.acme.io/recommender", 5000),
    ("reviews", "ruby", "ghcr.io/acme/reviews", 3000), ("storefront", "nginx", "docker.io/library/nginx", 80),
    ("admin-ui", "nginx", "docker.io/nginxinc/nginx-unprivileged", 8080), ("report-builder", "python", "ghcr.io/acme/report-builder", 8000),
    ("ledger", "dotnet", "acmecr.azurecr.io/ledger", 8080), ("fraud-scorer", "python", "registry.acme.io/fraud-scorer", 8000),
    ("mailer", "go", "ghcr.io/acme/mailer", 8080), ("media-transcoder", "python", "ghcr.io/acme/media-transcoder", 8000),
    ("thumbnailer", "go", "ghcr.io/acme/thumbnailer", 8080), ("webhook-relay", "node", "ghcr.io/acme/webhook-relay", 3000),
    ("quotes", "dotnet", "acmecr.azurecr.io/quotes", 8080), ("pricing-engine", "java", "registry.acme.io/pricing-engine", 8080),
    ("events-ingest", "go", "ghcr.io/acme/events-ingest", 8080), ("timesheets", "ruby", "ghcr.io/acme/timesheets", 3000),
    ("crm-sync", "java", "registry.acme.io/crm-sync", 8080), ("docs-portal", "node", "ghcr.io/acme/docs-portal", 3000),
    ("loyalty", "python", "ghcr.io/acme/loyalty", 8000), ("geo-lookup", "go", "ghcr.io/acme/geo-lookup", 8080),
    ("returns", "ruby", "ghcr.io/acme/returns", 3000), ("tax-calc", "dotnet", "acmecr.azurecr.io/tax-calc", 8080),
    ("feature-flags", "go", "ghcr.io/acme/feature-flags", 8080), ("ticketing", "python", "ghcr.io/acme/ticketing", 8000),
    ("chat-backend", "node", "ghcr.io/acme/chat-backend", 3000), ("ml-serving", "python", "registry.acme.io/ml-serving", 8501),
    ("warehouse-sync", "java", "registry.acme.io/warehouse-sync", 8080), ("status-page", "nginx", "docker.io/library/nginx", 80),
]
STATEFUL_POOL = [("postgres", "postgres", "docker.io/library/postgres:16.2", 5432),
                 ("redis", "redis", "docker.io/library/redis:7.2.4", 6379),
                 ("rabbitmq", "rabbitmq", "docker.io/library/rabbitmq:3.13-management", 5672),
                 ("mysql", "mysql", "docker.io/library/mysql:8.0.36", 3306)]
CRON_POOL = ["session-cleanup", "catalog-sync", "metrics-rollup", "cert-check", "queue-reaper", "index-refresh",
             "db-vacuum", "report-mailer", "sitemap-gen", "stale-cart-purge", "invoice-batch", "token-rotate"]
EXT_HOSTS = ["api.stripe.com", "hooks.slack.com", "api.github.com", "sqs.eu-west-1.amazonaws.com", "api.sendgrid.com",
             "oauth2.googleapis.com", "login.microsoftonline.com", "api.twilio.com", "s3.us-east-1.amazonaws.com",
             "sentry.io", "api.mailgun.net", "pypi.org"]

WEBHOOKS = [
    dict(ns="kyverno", deploy="kyverno-admission-controller", container="kyverno", svc="kyverno-svc",
         image="ghcr.io/kyverno/kyverno:v1.11.4", hook="mutate.kyverno.svc-fail", path="mutate/fail",
         cfg="kyverno-resource-mutating-webhook-cfg", regex=r"^kyverno"),
    dict(ns="gatekeeper-system", deploy="gatekeeper-controller-manager", container="manager", svc="gatekeeper-webhook-service",
         image="openpolicyagent/gatekeeper:v3.15.1", hook="validation.gatekeeper.sh", path="v1/admit",
         cfg="gatekeeper-validating-webhook-configuration", regex=r"^gatekeeper"),
    dict(ns="istio-system", deploy="istiod", container="discovery", svc="istiod",
         image="docker.io/istio/pilot:1.21.2", hook="namespace.sidecar-injector.istio.io", path="inject",
         cfg="istio-sidecar-injector", regex=r"^istiod"),
    dict(ns="linkerd", deploy="linkerd-proxy-injector", container="proxy-injector", svc="linkerd-proxy-injector",
         image="cr.l5d.io/linkerd/controller:stable-2.14.10", hook="linkerd-proxy-injector.linkerd.io", path="",
         cfg="linkerd-proxy-injector-webhook-config", regex=r"^linkerd-proxy-injector"),
    dict(ns="vault", deploy="vault-agent-injector", container="sidecar-injector", svc="vault-agent-injector-svc",
         image="hashicorp/vault-k8s:1.4.1", hook="vault.hashicorp.com", path="mutate",
         cfg="vault-agent-injector-cfg", regex=r"^vault-agent-injector"),
    dict(ns="policy", deploy="policy-webhook", container="webhook", svc="policy-webhook",
         image="ghcr.io/acme/policy-webhook:2.3.0", hook="pods.policy.acme.io", path="validate-pods",
         cfg="policy-webhook", regex=r"^policy-webhook"),
]

PROVISIONERS = [
    dict(ns="local-path-storage", deploy="local-path-provisioner", container="local-path-provisioner",
         image="rancher/local-path-provisioner:v0.0.26", prov="rancher.io/local-path", sc="local-path",
         regex=r"local-path", crash="Error", fatal='time="{ts}" level=fatal msg="Error starting daemon: invalid empty flag helper-pod-file and it also does not exist at ConfigMap local-path-storage/local-path-config with err: configmaps \\"local-path-config\\" not found"'),
    dict(ns="kube-system", deploy="ebs-csi-controller", container="csi-provisioner",
         image="public.ecr.aws/eks-distro/kubernetes-csi/external-provisioner:v4.0.0-eks-1-29-7", prov="ebs.csi.aws.com", sc="gp3",
         regex=r"(ebs-csi-controller|ebs\.csi\.aws\.com|^gp3$)", crash="Error",
         fatal="{klogE} 1 connection.go:193] Still connecting to unix:///var/lib/csi/sockets/pluginproxy/csi.sock"),
    dict(ns="openebs", deploy="openebs-localpv-provisioner", container="openebs-provisioner-hostpath",
         image="openebs/provisioner-localpv:3.5.0", prov="openebs.io/local", sc="openebs-hostpath",
         regex=r"(openebs-localpv-provisioner|openebs\.io/local|openebs-hostpath)", crash="OOMKilled", fatal=None),
    dict(ns="kube-system", deploy="csi-cinder-controllerplugin", container="csi-provisioner",
         image="registry.k8s.io/sig-storage/csi-provisioner:v3.6.2", prov="cinder.csi.openstack.org", sc="csi-cinder-sc-delete",
         regex=r"(csi-cinder|cinder\.csi\.openstack\.org)", crash="Error",
         fatal="{klogF} 1 connection.go:88] Lost connection to CSI driver, exiting"),
]

CNIS = {
    "calico": dict(ds="calico-node", container="calico-node", image="docker.io/calico/node:v3.27.3", plugin="calico"),
    "cilium": dict(ds="cilium", ns="kube-system", container="cilium-agent", image="quay.io/cilium/cilium:v1.15.5", plugin="cilium-cni"),
    "flannel": dict(ds="kube-flannel-ds", ns="kube-flannel", container="kube-flannel", image="docker.io/flannel/flannel:v0.25.1", plugin="flannel"),
    "aws-node": dict(ds="aws-node", ns="kube-system", container="aws-node", image="602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon-k8s-cni:v1.18.1", plugin="aws-cni"),
}

FLAVORS = {
    "kubeadm": dict(dns_ip="10.96.0.10", pod_net="10.244", node_net="10.0.{a}.{b}", ver="v1.29.4", cp=True),
    "homelab": dict(dns_ip="10.96.0.10", pod_net="10.10", node_net="192.168.1.{b}", ver="v1.28.9", cp=True),
    "k3s": dict(dns_ip="10.43.0.10", pod_net="10.42", node_net="10.20.0.{b}", ver="v1.29.5+k3s1", cp=True),
    "eks": dict(dns_ip="172.20.0.10", pod_net="10.31", node_net="10.31.{a}.{b}", ver="v1.29.3-eks-ae9a62a", cp=False),
    "aks": dict(dns_ip="10.0.0.10", pod_net="10.244", node_net="10.224.0.{b}", ver="v1.29.2", cp=False),
    "gke": dict(dns_ip="10.12.0.10", pod_net="10.8", node_net="10.128.0.{b}", ver="v1.29.4-gke.1043002", cp=False),
}


def node_names(rng, flavor, n):
    if flavor == "kubeadm":
        style = rng.choice(["worker-%02d", "k8s-w%d", "node%d"])
        return ["cp-%02d" % 1 if "%02d" in style else "k8s-cp1"], [style % (i + 1) for i in range(n)]
    if flavor == "homelab":
        pre = rng.choice(["k8s-node", "pve-k8s-", "kube"])
        return [rng.choice(["k8s-master", "pve-k8s-cp", "kube0"])], ["%s%d" % (pre, i + 1) for i in range(n)]
    if flavor == "k3s":
        pre = rng.choice(["k3s-agent-", "rpi", "edge-"])
        return [rng.choice(["k3s-server-1", "rpi0", "edge-server"])], ["%s%d" % (pre, i + 1) for i in range(n)]
    if flavor == "eks":
        reg = rng.choice(["eu-west-1", "us-east-2", "ap-southeast-1"])
        return [], ["ip-10-31-%d-%d.%s.compute.internal" % (rng.randint(0, 60), rng.randint(2, 250), reg) for _ in range(n)]
    if flavor == "aks":
        pool = rng.choice(["nodepool1", "agentpool", "userpool"])
        num = rng.randint(10000000, 99999999)
        return [], ["aks-%s-%d-vmss%06d" % (pool, num, i) for i in range(n)]
    cl = rng.choice(["prod", "main", "eu1"])
    pool = rng.choice(["default-pool", "pool-1", "apps"])
    h = "".join(rng.choice(HEX) for _ in range(8))
    return [], ["gke-%s-%s-%s-%s" % (cl, pool, h, "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(4))) for _ in range(n)]


# --------------------------------------------------------------------------- model

class Node:
    def __init__(self, sim, name, ip, cidr, role):
        self.name, self.ip, self.cidr, self.role = name, ip, cidr, role
        self.uid = sim.uid()
        self.created = sim.t0 - sim.rng.randint(20, 500) * 86400
        lt = sim.t0 - sim.rng.randint(2, 30) * 86400
        self.conds = {
            "MemoryPressure": ["False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available", lt],
            "DiskPressure": ["False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure", lt],
            "PIDPressure": ["False", "KubeletHasSufficientPID", "kubelet has sufficient PID available", lt],
            "Ready": ["True", "KubeletReady", "kubelet is posting ready status", lt],
        }
        self.unschedulable = False
        self.taints = []
        self.boot = sim.uid()
        self.shipper = sim.rng.choice(["vector", "vector", "fluent-time", "fluent-at"])
        self.ver = sim.flavor["ver"]
        self.heartbeat_frozen = False


class Pod:
    def __init__(self, sim, ns, name, node, owner, containers, labels, created, app=None):
        self.sim = sim
        self.ns, self.name, self.node = ns, name, node
        self.uid = sim.uid()
        self.owner = owner  # (kind, name) or None
        self.containers = containers  # list of (name, image)
        self.labels = labels
        self.created = created
        self.app = app
        self.phase = "Running"
        self.ip = sim.pod_ip(node) if node else None
        self.cs = {}
        started = created + sim.rng.uniform(3, 20)
        self.started = started
        for c, img in containers:
            self.cs[c] = dict(state={"running": {"startedAt": iso(started)}}, lastState={}, restartCount=0,
                              ready=True, started=True, cid=sim.hexid(64))
        self.ready = True
        self.ready_t = started + 2
        self.sched_t = created + 0.5
        self.unsched = None  # (reason, message)
        self.reason = None
        self.message = None
        self.deleting = None
        self.claims = []
        self.alive = [created, float("inf")]
        self.quiet = []  # intervals without normal logs
        self.sandbox = True  # PodReadyToStartContainers
        self.host_network = False

    def key(self):
        return "%s/%s" % (self.ns, self.name)

    def set_running(self, t, ready=True):
        for c, _ in self.containers:
            st = self.cs[c]
            st["state"] = {"running": {"startedAt": iso(t)}}
            st["ready"] = ready
            st["started"] = True
        self.phase = "Running"
        self.sandbox = True
        if ready and not self.ready:
            self.ready_t = t
        if not ready and self.ready:
            self.ready_t = t
        self.ready = ready


def rand_hash(rng, n):
    return "".join(rng.choice(ALNUM) for _ in range(n))


class App:
    def __init__(self, name, lang, image, port, ns, kind="Deployment", replicas=2):
        self.name, self.lang, self.image, self.port, self.ns = name, lang, image, port, ns
        self.kind = kind
        self.replicas = replicas
        self.rs = None
        self.pods = []
        self.container = name if lang not in ("nginx",) else "nginx"
        self.reserved = False
        self.version = None


class Series:
    """One Event object (stable uid/name) that may be re-emitted with a rising count."""

    def __init__(self, sim, inv, reason, etype="Normal", component="kubelet", host=None, api="legacy",
                 action=None, ns=None):
        self.inv = inv
        self.reason, self.type, self.component, self.host = reason, etype, component, host
        self.api = api
        self.action = action
        self.uid = sim.uid()
        self.ns = ns or inv.get("namespace") or "default"
        self.name = "%s.%s" % (inv["name"], sim.hexid(16))
        self.count = 0
        self.first = None
        self.view = "events" if sim.rng.random() < 0.3 else "v1"


class Sim:
    def __init__(self, name, flavor=None, minutes=None, n_workers=None):
        self.name = name
        self.seed = (zlib.crc32(name.encode()) ^ SALT) & 0xFFFFFFFF
        self.rng = r = random.Random(self.seed)
        self.flavor_name = flavor or r.choice(list(FLAVORS))
        self.flavor = FLAVORS[self.flavor_name]
        day = datetime.datetime(2026, r.randint(1, 5), r.randint(1, 28), r.randint(0, 22), r.choice([0, 10, 20, 30, 40, 50]),
                                tzinfo=UTC)
        self.t0 = day.timestamp()
        self.minutes = minutes or r.randint(35, 55)
        self.t_end = self.t0 + self.minutes * 60
        self.recs = []
        self.seq = 0
        self.nodes = {}
        self.pods = {}
        self.apps = []
        self.statefuls = []
        self.crons = []
        self.block_create = []  # (t1, t2, ns or None)
        self.avoid_node = []  # (t1, t2, node)
        self.inv_uids = {}
        self.used_ns = set()
        self.initial_done = False
        self.ip_counter = {}
        self.dns_ip = self.flavor["dns_ip"]
        self.cni_name = None
        self.node_count = n_workers or r.randint(4, 7)
        self.all_pods = []
        self.noise_hb = []
        self.node_events = []
        self.tags = {}
        self.tag = None
        self.tag_ns = 0
        self.alert_receiver = r.choice(["slack-critical", "pagerduty", "team-ops", "default-receiver"])
        self.am_url = r.choice(["https://alertmanager.example.internal", "http://alertmanager-operated.monitoring.svc:9093",
                                "https://am.ops.acme.io"])

    # ---- ids
    def uid(self):
        r = self.rng
        return "%08x-%04x-4%03x-%04x-%012x" % (r.getrandbits(32), r.getrandbits(16), r.getrandbits(12),
                                               0x8000 | r.getrandbits(14), r.getrandbits(48))

    def hexid(self, n):
        return "".join(self.rng.choice(HEX) for _ in range(n))

    def pod_ip(self, node):
        n = self.nodes[node]
        base = n.cidr
        c = self.ip_counter.get(node, self.rng.randint(2, 40)) + self.rng.randint(1, 4)
        self.ip_counter[node] = c
        return "%s.%d" % (base, c % 250 + 2)

    def inv_uid(self, kind, ns, name):
        k = (kind, ns, name)
        if k not in self.inv_uids:
            self.inv_uids[k] = self.uid()
        return self.inv_uids[k]

    # ---- records
    def add(self, t, rec, key, sig=False, initial=False):
        if not initial and (t < self.t0 or t > self.t_end):
            return
        self.seq += 1
        self.recs.append([t, rec, key, sig, initial, self.seq])
        if self.tag is not None and not initial:
            key = self.tag if isinstance(self.tag, tuple) else (self.tag_ns, self.tag)
            self.tags[key] = min(self.tags.get(key, t), t)

    # ---- cluster
    def ns_pick(self, k=1):
        cand = [n for n in NS_POOL if n not in self.used_ns]
        out = self.rng.sample(cand, k)
        self.used_ns.update(out)
        return out

    def build_cluster(self, cni=None, with_cp=None, n_apps=None, n_cp=None):
        r = self.rng
        cps, workers = node_names(r, self.flavor_name, self.node_count)
        if n_cp and n_cp > 1:
            stem = (cps[0] if cps else "cp-1").rstrip("0123456789")
            cps = ["%s%d" % (stem, i + 1) for i in range(n_cp)]
        if with_cp is False:
            cps = []
        if with_cp and not cps:
            cps = ["cp-1"]
        net = self.flavor["pod_net"]
        a = r.randint(0, 40)
        for i, nm in enumerate(cps + workers):
            ip = self.flavor["node_net"].format(a=a, b=10 + i * r.randint(1, 3) + (i == 0) * 0)
            if "{" in ip:
                ip = ip.format(a=a, b=10 + i)
            cidr = "%s.%d" % (net, i + r.randint(0, 3) * 10 + 1)
            self.nodes[nm] = Node(self, nm, ip, cidr, "control-plane" if nm in cps else "worker")
        self.cps = cps
        self.workers = workers
        # fix ip uniqueness
        seen = set()
        for n in self.nodes.values():
            while n.ip in seen:
                parts = n.ip.split(".")
                parts[-1] = str(int(parts[-1]) + 1)
                n.ip = ".".join(parts)
            seen.add(n.ip)
        # system daemonsets
        if cni is None:
            cni = {"eks": "aws-node"}.get(self.flavor_name) or r.choice(["calico", "cilium", "flannel"])
        self.cni_name = cni
        c = dict(CNIS[cni])
        if cni == "calico":
            c["ns"] = r.choice(["kube-system", "calico-system"])
        self.cni = c
        self.cni_pods = {}
        for nm in self.nodes:
            p = self.mk_pod(c["ns"], "%s-%s" % (c["ds"], rand_hash(r, 5)), nm, ("DaemonSet", c["ds"]),
                            [(c["container"], c["image"])], {"k8s-app": c["ds"]}, self.t0 - r.randint(3, 40) * 86400)
            p.host_network = True
            p.ip = self.nodes[nm].ip
            p.role = "cni"
            self.cni_pods[nm] = p
            kp = self.mk_pod("kube-system", "kube-proxy-%s" % rand_hash(r, 5), nm, ("DaemonSet", "kube-proxy"),
                             [("kube-proxy", "registry.k8s.io/kube-proxy:%s" % self.flavor["ver"].split("+")[0].split("-")[0])],
                             {"k8s-app": "kube-proxy"}, self.t0 - r.randint(3, 40) * 86400)
            kp.host_network = True
            kp.ip = self.nodes[nm].ip
            kp.role = "kube-proxy"
        # control plane static pods
        self.cp_pods = {}
        for nm in cps:
            for comp, img in (("etcd", "registry.k8s.io/etcd:3.5.12-0"), ("kube-apiserver", None),
                              ("kube-controller-manager", None), ("kube-scheduler", None)):
                img = img or "registry.k8s.io/%s:%s" % (comp, self.flavor["ver"].split("+")[0])
                p = self.mk_pod("kube-system", "%s-%s" % (comp, nm), nm, ("Node", nm), [(comp, img)],
                                {"component": comp, "tier": "control-plane"}, self.t0 - r.randint(3, 40) * 86400)
                p.host_network = True
                p.ip = self.nodes[nm].ip
                p.role = comp
                self.cp_pods[(comp, nm)] = p
        # coredns
        dns_name = "kube-dns" if self.flavor_name == "gke" else "coredns"
        self.dns_app = App(dns_name, "coredns", "registry.k8s.io/coredns/coredns:v1.11.1", 53, "kube-system", replicas=2)
        self.dns_app.container = "coredns" if dns_name == "coredns" else "kubedns"
        self.deploy(self.dns_app, self.t0 - r.randint(3, 60) * 86400, role="coredns")
        # ingress
        if r.random() < 0.5:
            self.ingress = App("traefik", "traefik", "docker.io/traefik:v2.11.2", 443, r.choice(["traefik", "kube-system"]), replicas=r.randint(1, 2))
        else:
            self.ingress = App("ingress-nginx-controller", "ingress-nginx", "registry.k8s.io/ingress-nginx/controller:v1.10.1", 443,
                               "ingress-nginx", replicas=r.randint(1, 2))
            self.ingress.container = "controller"
        self.deploy(self.ingress, self.t0 - r.randint(3, 60) * 86400, role="ingress")
        mon = App("grafana", "grafana", "docker.io/grafana/grafana:10.4.2", 3000, "monitoring", replicas=1)
        self.deploy(mon, self.t0 - r.randint(3, 60) * 86400, role="grafana")
        prom = App("prometheus", "prometheus", "quay.io/prometheus/prometheus:v2.51.2", 9090, "monitoring", kind="StatefulSet", replicas=1)
        prom.sts_name = r.choice(["prometheus-k8s", "prometheus-kube-prometheus-stack-prometheus", "prometheus-server"])
        prom.container = "prometheus"
        self.deploy(prom, self.t0 - r.randint(3, 60) * 86400, role="prometheus")
        self.used_ns.update(["kube-system", "monitoring", "default"])
        # apps
        n_apps = n_apps or r.randint(10, 14)
        names = r.sample(APP_POOL, n_apps)
        nss = self.ns_pick(r.randint(5, 8))
        for i, (nm, lang, img, port) in enumerate(names):
            ns = nss[i % len(nss)] if i < len(nss) else r.choice(nss)
            app = App(nm, lang, "%s:%s" % (img, r.choice(["1.4.2", "2.0.1", "v3.2.0", "2024.11.3", "0.9.17", "5.1.0"])), port, ns,
                      replicas=r.choice([1, 2, 2, 3]))
            self.apps.append(app)
            self.deploy(app, self.t0 - r.randint(1, 40) * 86400)
        for nm, lang, img, port in r.sample(STATEFUL_POOL, 2):
            app = App(nm, lang, img, port, r.choice(nss), kind="StatefulSet", replicas=r.choice([1, 3]))
            app.sts_name = nm
            self.statefuls.append(app)
            self.deploy(app, self.t0 - r.randint(5, 60) * 86400)
        for nm in r.sample(CRON_POOL, 2):
            ns = r.choice(nss)
            img = "%s:%s" % (r.choice(["ghcr.io/acme/jobs", "registry.acme.io/batch", "docker.io/library/python"]), r.choice(["3.12-slim", "1.8.0", "2.2.1"]))
            self.crons.append(dict(name=nm, ns=ns, every=r.choice([5, 10, 15]), image=img, container=r.choice(["job", "main", nm]),
                                   history=[], reserved=False))

    def mk_pod(self, ns, name, node, owner, containers, labels, created, app=None):
        p = Pod(self, ns, name, node, owner, containers, labels, created, app)
        p.role = None
        self.pods[p.key()] = p
        self.all_pods.append(p)
        return p

    def sched_nodes(self, t, exclude=()):
        out = []
        for n in self.workers:
            nd = self.nodes[n]
            if n in exclude:
                continue
            if any(a <= t <= b and n == x for a, b, x in self.avoid_node):
                continue
            out.append(n)
        return out or list(self.workers)

    def deploy(self, app, created, role=None):
        r = self.rng
        if app.kind == "Deployment":
            app.rs = "%s-%s" % (app.name, rand_hash(r, r.choice([9, 10])))
        for i in range(app.replicas):
            node = r.choice(self.workers)
            if app.kind == "StatefulSet":
                name = "%s-%d" % (app.sts_name, i)
                owner = ("StatefulSet", app.sts_name)
            else:
                name = "%s-%s" % (app.rs, rand_hash(r, 5))
                owner = ("ReplicaSet", app.rs)
            labels = {"app.kubernetes.io/name": app.name, "app.kubernetes.io/instance": app.name}
            if app.kind == "Deployment":
                labels["pod-template-hash"] = app.rs.rsplit("-", 1)[1]
            else:
                labels["controller-revision-hash"] = "%s-%s" % (app.sts_name, rand_hash(r, 10))
            if role == "coredns":
                labels = {"k8s-app": "kube-dns", "pod-template-hash": app.rs.rsplit("-", 1)[1]}
            p = self.mk_pod(app.ns, name, node, owner, [(app.container, app.image)], labels, created + r.randint(0, 3000), app)
            p.role = role
            app.pods.append(p)
        return app

    # ---- object renderers
    def node_obj(self, n, t):
        conds = []
        for ty in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready"):
            st, rs, msg, lt = n.conds[ty]
            conds.append({"type": ty, "status": st, "lastHeartbeatTime": iso(n.hb if n.heartbeat_frozen else t),
                          "lastTransitionTime": iso(lt), "reason": rs, "message": msg})
        labels = {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                  "kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux"}
        if n.role == "control-plane":
            labels["node-role.kubernetes.io/control-plane"] = ""
        spec = {"podCIDR": n.cidr + ".0/24", "podCIDRs": [n.cidr + ".0/24"]}
        if self.flavor_name == "eks":
            spec = {"providerID": "aws:///eu-west-1a/i-0%s" % n.uid.replace("-", "")[:16]}
        if n.unschedulable:
            spec["unschedulable"] = True
        if n.taints:
            spec["taints"] = [dict(x) for x in n.taints]
        return {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": n.name, "uid": n.uid, "resourceVersion": "0", "creationTimestamp": iso(n.created),
                             "labels": labels, "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                                               "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
                "spec": spec,
                "status": {"addresses": [{"type": "InternalIP", "address": n.ip}, {"type": "Hostname", "address": n.name}],
                           "allocatable": {"cpu": "8", "ephemeral-storage": "95491281146", "memory": "32725260Ki", "pods": "110"},
                           "capacity": {"cpu": "8", "ephemeral-storage": "103612624Ki", "memory": "32827660Ki", "pods": "110"},
                           "conditions": conds, "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                           "nodeInfo": {"architecture": "amd64", "bootID": n.boot, "containerRuntimeVersion": "containerd://1.7.13",
                                        "kernelVersion": "5.15.0-105-generic", "kubeProxyVersion": n.ver, "kubeletVersion": n.ver,
                                        "operatingSystem": "linux", "osImage": "Ubuntu 22.04.4 LTS"}}}

    def pod_obj(self, p, t):
        md = {"name": p.name, "namespace": p.ns, "uid": p.uid, "resourceVersion": "0", "creationTimestamp": iso(p.created),
              "labels": dict(p.labels)}
        if p.owner and p.owner[0] in ("ReplicaSet", "DaemonSet", "Job"):
            md["generateName"] = p.name[: len(p.name) - 5]
        if p.owner:
            api = {"ReplicaSet": "apps/v1", "DaemonSet": "apps/v1", "StatefulSet": "apps/v1", "Job": "batch/v1", "Node": "v1"}[p.owner[0]]
            md["ownerReferences"] = [{"apiVersion": api, "kind": p.owner[0], "name": p.owner[1],
                                      "uid": self.inv_uid(p.owner[0], p.ns, p.owner[1]), "controller": True,
                                      "blockOwnerDeletion": True}]
        if p.deleting:
            md["deletionTimestamp"] = iso(p.deleting)
            md["deletionGracePeriodSeconds"] = 30
        vols = [{"name": "kube-api-access-%s" % p.uid[:5], "projected": {"defaultMode": 420}}]
        for cl in p.claims:
            vols.insert(0, {"name": "data", "persistentVolumeClaim": {"claimName": cl}})
        spec = {"containers": [{"name": c, "image": img, "imagePullPolicy": "IfNotPresent"} for c, img in p.containers],
                "restartPolicy": "Never" if p.owner and p.owner[0] == "Job" else "Always",
                "schedulerName": "default-scheduler", "serviceAccountName": p.app.name if p.app else "default",
                "terminationGracePeriodSeconds": 30, "volumes": vols}
        if p.node and not p.unsched:
            spec["nodeName"] = p.node
        if p.host_network:
            spec["hostNetwork"] = True
        st = {"phase": p.phase}
        ct = iso(p.sched_t)
        if p.unsched:
            st["conditions"] = [{"type": "PodScheduled", "status": "False", "lastProbeTime": None, "lastTransitionTime": ct,
                                 "reason": p.unsched[0], "message": p.unsched[1]}]
            st["qosClass"] = "Burstable"
            return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec, "status": st}
        rt = iso(p.ready_t)
        conds = [{"type": "PodReadyToStartContainers", "status": "True" if p.sandbox else "False", "lastProbeTime": None, "lastTransitionTime": ct},
                 {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": ct}]
        notready = [c for c, _ in p.containers if not p.cs[c]["ready"]]
        if p.ready:
            conds += [{"type": "Ready", "status": "True", "lastProbeTime": None, "lastTransitionTime": rt},
                      {"type": "ContainersReady", "status": "True", "lastProbeTime": None, "lastTransitionTime": rt}]
        else:
            reason = "PodCompleted" if p.phase in ("Succeeded", "Failed") and p.reason is None else "ContainersNotReady"
            msg = "containers with unready status: [%s]" % " ".join(notready or [p.containers[0][0]])
            conds += [{"type": "Ready", "status": "False", "lastProbeTime": None, "lastTransitionTime": rt, "reason": reason, "message": msg},
                      {"type": "ContainersReady", "status": "False", "lastProbeTime": None, "lastTransitionTime": rt, "reason": reason, "message": msg}]
        conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": ct})
        if p.reason == "Evicted":
            conds.insert(0, {"type": "DisruptionTarget", "status": "True", "lastProbeTime": None, "lastTransitionTime": iso(t),
                             "reason": "TerminationByKubelet", "message": p.message.split(" Container")[0]})
        st["conditions"] = conds
        if p.reason:
            st["reason"] = p.reason
            st["message"] = p.message
        hip = self.nodes[p.node].ip
        st["hostIP"] = hip
        st["hostIPs"] = [{"ip": hip}]
        if p.ip and p.sandbox:
            st["podIP"] = p.ip
            st["podIPs"] = [{"ip": p.ip}]
        st["startTime"] = iso(p.sched_t + 0.3)
        css = []
        for c, img in p.containers:
            s = p.cs[c]
            d = {"name": c, "image": img, "state": s["state"], "lastState": s["lastState"], "ready": s["ready"],
                 "restartCount": s["restartCount"], "started": s["started"]}
            if "running" in s["state"] or s["restartCount"] or "terminated" in s["state"]:
                d["imageID"] = "%s@sha256:%s" % (img.split(":")[0], zlib.crc32(img.encode()).to_bytes(4, "big").hex() * 8)
                d["containerID"] = "containerd://" + s["cid"]
            else:
                d["imageID"] = ""
            css.append(d)
        st["containerStatuses"] = css
        st["qosClass"] = "Burstable"
        return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec, "status": st}

    def pod_rec(self, t, p, typ="MODIFIED", sig=False):
        self.add(t, {"type": typ, "object": self.pod_obj(p, t), "observedAt": iso(t + self.rng.uniform(0.01, 0.4), 6)},
                 "pod/" + p.key(), sig)

    def node_rec(self, t, n, typ="MODIFIED", sig=False):
        self.add(t, {"type": typ, "object": self.node_obj(n, t), "observedAt": iso(t + self.rng.uniform(0.01, 0.4), 6)},
                 "node/" + n.name, sig)

    # ---- events
    def inv_pod(self, p, field=None):
        d = {"kind": "Pod", "namespace": p.ns, "name": p.name, "uid": p.uid, "apiVersion": "v1"}
        if field:
            d["fieldPath"] = field
        return d

    def inv(self, kind, ns, name, api):
        d = {"kind": kind, "name": name, "uid": self.inv_uid(kind, ns, name), "apiVersion": api}
        if ns:
            d = {"kind": kind, "namespace": ns, "name": name, "uid": self.inv_uid(kind, ns, name), "apiVersion": api}
        return d

    def ev(self, t, s, msg, sig=False, count=None, wrap=None):
        r = self.rng
        if count is None:
            s.count += 1
        else:
            s.count = count
        if s.first is None:
            s.first = t
        first = s.first
        inv = dict(s.inv)
        inv["resourceVersion"] = str(r.randint(40000000, 49999999))
        md = {"name": s.name, "namespace": s.ns, "uid": s.uid, "resourceVersion": "0", "creationTimestamp": iso(first)}
        if s.view == "v1":
            o = {"apiVersion": "v1", "kind": "Event", "metadata": md, "involvedObject": inv, "reason": s.reason, "message": msg}
            if s.api == "legacy":
                src = {"component": s.component}
                if s.host:
                    src["host"] = s.host
                o.update({"source": src, "firstTimestamp": iso(first), "lastTimestamp": iso(t), "count": s.count, "type": s.type,
                          "eventTime": None, "reportingComponent": s.component, "reportingInstance": s.host or ""})
            else:
                o.update({"source": {}, "firstTimestamp": None, "lastTimestamp": None, "type": s.type, "eventTime": iso(first, 6)})
                if s.count > 1:
                    o["series"] = {"count": s.count, "lastObservedTime": iso(t, 6)}
                o.update({"action": s.action or "Scheduling", "reportingComponent": s.component, "reportingInstance": s.host or s.component})
        else:
            o = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": md}
            if s.api == "legacy":
                src = {"component": s.component}
                if s.host:
                    src["host"] = s.host
                o.update({"eventTime": None, "reportingController": s.component, "reportingInstance": s.host or "",
                          "reason": s.reason, "regarding": inv, "note": msg, "type": s.type, "deprecatedSource": src,
                          "deprecatedFirstTimestamp": iso(first), "deprecatedLastTimestamp": iso(t), "deprecatedCount": s.count})
            else:
                o.update({"eventTime": iso(first, 6), "reportingController": s.component, "reportingInstance": s.host or s.component,
                          "action": s.action or "Scheduling", "reason": s.reason, "regarding": inv, "note": msg, "type": s.type})
                if s.count > 1:
                    o["series"] = {"count": s.count, "lastObservedTime": iso(t, 6)}
        w = wrap or r.choice(["obs", "obs", "watch", "watch", "bare"])
        typ = "ADDED" if s.count == 1 or (count is not None and t == first) else "MODIFIED"
        if w == "bare":
            rec = o
        elif w == "watch":
            rec = {"type": typ, "object": o}
        else:
            rec = {"type": typ, "object": o, "observedAt": iso(t + r.uniform(0.05, 0.6), 6)}
        self.add(t, rec, "ev/" + s.uid, sig)
        return s

    def ev1(self, t, inv, reason, msg, etype="Normal", component="kubelet", host=None, api="legacy", sig=False, action=None, ns=None):
        s = Series(self, inv, reason, etype, component, host, api, action, ns)
        self.ev(t, s, msg, sig)
        return s

    def repeat(self, s, t1, t2, msg, period, sig=True, jitter=0.2, skip=0.2, growth=1.0, max_period=300):
        """Re-emit series s from t1 to t2 every `period` (growing), sometimes skipping (count jumps)."""
        t = t1
        p = period
        n = 0
        while t <= t2 and t <= self.t_end:
            if n == 0 or self.rng.random() > skip:
                m = msg(t) if callable(msg) else msg
                self.ev(t, s, m, sig)
            else:
                s.count += 1
            n += 1
            p = min(p * growth, max_period)
            t += p * self.rng.uniform(1 - jitter, 1 + jitter)
        return s

    # ---- logs
    def log(self, t, p, msg, container=None, stream="stdout", sig=False):
        if p.node is None:
            return
        r = self.rng
        c = container or p.containers[0][0]
        img = dict(p.containers).get(c, p.containers[0][1])
        n = self.nodes[p.node]
        owner = "%s/%s" % p.owner if p.owner else ""
        if n.shipper == "vector":
            rec = {"file": "/var/log/pods/%s_%s_%s/%s/0.log" % (p.ns, p.name, p.uid, c),
                   "kubernetes": {"container_id": "containerd://" + p.cs[c]["cid"], "container_image": img, "container_name": c,
                                  "pod_ip": p.ip or n.ip, "pod_labels": p.labels, "pod_name": p.name, "pod_namespace": p.ns,
                                  "pod_node_name": p.node, "pod_owner": owner, "pod_uid": p.uid},
                   "message": msg, "source_type": "kubernetes_logs", "stream": stream, "timestamp": iso(t, 9)}
        else:
            tk = "time" if n.shipper == "fluent-time" else "@timestamp"
            rec = {"log": msg + ("\n" if r.random() < 0.5 else ""), "stream": stream, tk: iso(t, 9),
                   "kubernetes": {"pod_name": p.name, "namespace_name": p.ns, "pod_id": p.uid, "labels": p.labels, "host": p.node,
                                  "pod_ip": p.ip or n.ip, "container_name": c, "docker_id": p.cs[c]["cid"], "container_image": img}}
        self.add(t, rec, "log/%s/%s" % (p.key(), c), sig)

    # ---- alerts
    def alert(self, t, name, labels, summary, description, starts, sig=True, severity="warning", status="firing"):
        lab = {"alertname": name, "severity": severity}
        lab.update(labels)
        a = {"status": status, "labels": lab, "annotations": {"description": description, "summary": summary,
                                                              "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/%s" % name.lower()},
             "startsAt": iso(starts, 3), "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else iso(t, 3),
             "generatorURL": "http://prometheus.monitoring.svc:9090/graph?g0.expr=%s&g0.tab=1" % name,
             "fingerprint": "%016x" % (zlib.crc32(json.dumps(lab, sort_keys=True).encode()) * 2654435761 % (1 << 64))}
        grp = {"alertname": name}
        if "namespace" in lab:
            grp["namespace"] = lab["namespace"]
        body = {"receiver": self.alert_receiver if name != "Watchdog" else "null", "status": status, "alerts": [a],
                "groupLabels": grp, "commonLabels": lab, "commonAnnotations": a["annotations"], "externalURL": self.am_url,
                "version": "4", "groupKey": "{}:{alertname=\"%s\"}" % name, "truncatedAlerts": 0}
        self.add(t, body, "alert/" + name + json.dumps(labels, sort_keys=True), sig)

    def alert_repeat(self, name, labels, summary, description, starts, until=None, sig=True, severity="warning"):
        t = starts + self.rng.uniform(5, 40)
        until = until or self.t_end
        while t < until:
            self.alert(t, name, labels, summary, description, starts, sig, severity)
            t += self.rng.choice([240, 300, 300, 600]) + self.rng.uniform(-5, 5)


# --------------------------------------------------------------------------- log lines

PATHS = ["/api/v1/items", "/api/v1/orders", "/healthz", "/api/v2/search?q=shoes", "/metrics", "/api/v1/users/me",
         "/graphql", "/api/v1/cart/items", "/static/app.js", "/api/v1/invoices?page=2", "/readyz", "/login"]
UAS = ["kube-probe/1.29", "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", "Go-http-client/1.1",
       "curl/8.4.0", "Prometheus/2.51.2", "okhttp/4.12.0", "python-requests/2.31.0"]


def client_ip(sim):
    return "%s.%d.%d" % (sim.flavor["pod_net"], sim.rng.randint(0, 40), sim.rng.randint(2, 250))


def noise_line(sim, p, t):
    """A normal (or benign warning) log line for pod p at time t."""
    r = sim.rng
    app = p.app
    lang = app.lang if app else p.role
    path = r.choice(PATHS)
    st = r.choice([200, 200, 200, 200, 201, 204, 304, 404])
    ms = round(r.uniform(0.4, 180), 1)
    d = datetime.datetime.fromtimestamp(int(t), UTC)
    if lang == "go":
        if r.random() < 0.7:
            return json.dumps({"level": "info", "ts": iso(t, 3), "caller": r.choice(["server/http.go:142", "api/handler.go:88", "middleware/log.go:51"]),
                               "msg": "request served", "method": r.choice(["GET", "GET", "POST"]), "path": path, "status": st,
                               "duration_ms": ms}, separators=(",", ":"))
        return json.dumps({"level": r.choice(["info", "debug"]), "ts": iso(t, 3), "caller": "worker/loop.go:77",
                           "msg": r.choice(["flushed batch", "cache refreshed", "lease renewed", "tick"]),
                           "items": r.randint(0, 400)}, separators=(",", ":"))
    if lang == "java":
        thr = r.choice(["http-nio-8080-exec-%d" % r.randint(1, 10), "scheduling-1", "main", "kafka-consumer-1"])
        cls = r.choice(["c.a.%s.web.ApiController" % app.name.split("-")[0], "o.s.web.servlet.DispatcherServlet",
                        "c.a.%s.service.SyncService" % app.name.split("-")[0], "com.zaxxer.hikari.pool.HikariPool"])
        msg = r.choice(["Completed %s %s in %d ms" % ("GET", path, int(ms)), "Processed %d records" % r.randint(1, 500),
                        "HikariPool-1 - Pool stats (total=10, active=%d, idle=%d, waiting=0)" % (r.randint(0, 4), r.randint(5, 10))])
        return "%s.%03d  INFO 1 --- [%s] %-40s : %s" % (d.strftime("%Y-%m-%d %H:%M:%S"), int((t % 1) * 1000), thr, cls, msg)
    if lang == "python":
        if r.random() < 0.6:
            return '%s - - [%s] "%s %s HTTP/1.1" %d %d "-" "%s"' % (client_ip(sim), d.strftime("%d/%b/%Y:%H:%M:%S +0000"), "GET", path, st,
                                                                   r.randint(80, 9000), r.choice(UAS))
        return "%s,%03d INFO [%s] %s" % (d.strftime("%Y-%m-%d %H:%M:%S"), int((t % 1) * 1000), r.choice(["app.views", "app.tasks", "celery.worker"]),
                                         r.choice(["cache warm complete", "processed batch of %d" % r.randint(1, 90), "heartbeat ok"]))
    if lang == "node":
        return json.dumps({"level": 30, "time": int(t * 1000), "pid": 1, "hostname": p.name,
                           "req": {"method": "GET", "url": path}, "res": {"statusCode": st}, "responseTime": int(ms),
                           "msg": "request completed"}, separators=(",", ":"))
    if lang == "dotnet":
        return r.choice(["info: Microsoft.AspNetCore.Hosting.Diagnostics[2] Request finished HTTP/1.1 GET http://%s:8080%s - %d - application/json %.4fms" % (p.ip, path, st, ms),
                         "info: %s.Worker[0] Cycle complete in %d ms" % (app.name.title().replace("-", ""), int(ms))])
    if lang == "ruby":
        return "I, [%s #1]  INFO -- : [%s] Completed %d OK in %dms (Views: %.1fms | ActiveRecord: %.1fms)" % (
            iso(t, 6)[:-1], sim.hexid(8), st if st < 300 else 200, int(ms), ms / 3, ms / 4)
    if lang in ("nginx", "traefik", "ingress-nginx"):
        if lang == "traefik" and r.random() < 0.08:
            return "%s http: TLS handshake error from %s:%d: EOF" % (d.strftime("%Y/%m/%d %H:%M:%S"), "10.%d.%d.%d" % (r.randint(0, 5), r.randint(0, 255), r.randint(1, 254)), r.randint(30000, 65000))
        if lang == "ingress-nginx" and r.random() < 0.06:
            return '%s [error] 39#39: *%d SSL_do_handshake() failed (SSL: error:0A00006C:SSL routines::bad key share) while SSL handshaking, client: %s, server: 0.0.0.0:443' % (
                d.strftime("%Y/%m/%d %H:%M:%S"), r.randint(10000, 999999), "10.%d.%d.%d" % (r.randint(0, 5), r.randint(0, 255), r.randint(1, 254)))
        return '%s - - [%s] "GET %s HTTP/1.1" %d %d "-" "%s"' % (client_ip(sim), d.strftime("%d/%b/%Y:%H:%M:%S +0000"), path, st,
                                                                r.randint(100, 40000), r.choice(UAS))
    if lang in ("coredns",):
        if r.random() < 0.08:
            return "[ERROR] plugin/errors: 2 %s. AAAA: read udp %s:%d->%s:53: i/o timeout" % (r.choice(EXT_HOSTS), p.ip, r.randint(30000, 60000),
                                                                                              r.choice(["1.1.1.1", "8.8.8.8", "9.9.9.9"]))
        q = r.choice(["kubernetes.default.svc.cluster.local.", r.choice(EXT_HOSTS) + ".", "%s.%s.svc.cluster.local." % (
            r.choice(sim.apps).name, r.choice(sim.apps).ns)])
        return '[INFO] %s:%d - %d "%s IN %s udp %d false 512" NOERROR qr,aa,rd %d %.6fs' % (client_ip(sim), r.randint(30000, 60000), r.randint(1, 65000),
                                                                                         r.choice(["A", "A", "AAAA"]), q, r.randint(40, 90), r.randint(90, 300), r.uniform(0.00005, 0.003))
    if lang == "postgres":
        return r.choice(["%s UTC [%d] LOG:  checkpoint complete: wrote %d buffers (0.%d%%); 0 WAL file(s) added, 0 removed, 1 recycled" % (
            d.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], r.randint(30, 90), r.randint(3, 300), r.randint(1, 9)),
            "%s UTC [%d] LOG:  checkpoint starting: time" % (d.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], r.randint(30, 90))])
    if lang == "redis":
        return r.choice(["1:M %s * %d changes in 300 seconds. Saving..." % (d.strftime("%d %b %Y %H:%M:%S.000"), r.randint(10, 200)),
                         "1:M %s * Background saving started by pid %d" % (d.strftime("%d %b %Y %H:%M:%S.000"), r.randint(100, 9999)),
                         "1:M %s * Background saving terminated with success" % d.strftime("%d %b %Y %H:%M:%S.000")])
    if lang == "mysql":
        if r.random() < 0.3:
            return "%s %d [Warning] [MY-010055] [Server] IP address '%s' could not be resolved: Name or service not known" % (iso(t, 6), r.randint(10, 900), client_ip(sim))
        return "%s %d [Note] [MY-010914] [Server] Aborted connection %d to db: 'app' user: 'app' host: '%s' (Got an error reading communication packets)." % (
            iso(t, 6), r.randint(10, 900), r.randint(1000, 99999), client_ip(sim))
    if lang == "rabbitmq":
        return "%s [info] <0.%d.0> accepting AMQP connection <0.%d.0> (%s:%d -> %s:5672)" % (
            d.strftime("%Y-%m-%d %H:%M:%S.%f"), r.randint(100, 9999), r.randint(100, 9999), client_ip(sim), r.randint(30000, 60000), p.ip)
    if lang == "grafana":
        return r.choice(['logger=context userId=0 orgId=0 uname= t=%s level=error msg="Failed to look up user based on cookie" error="user token not found"' % iso(t, 9),
                         'logger=ngalert.scheduler t=%s level=info msg="Alert rule evaluation completed" duration=%.2fms' % (iso(t, 9), ms)])
    if lang == "prometheus":
        return 'ts=%s caller=compact.go:%d level=info component=tsdb msg="%s" duration=%.3fs' % (
            iso(t, 3), r.randint(500, 700), r.choice(["Deleting obsolete block", "write block", "Head GC completed"]), r.uniform(0.01, 2))
    role = p.role
    if role == "cni":
        if sim.cni_name == "calico":
            return "%s [INFO][%d] felix/int_dataplane.go %d: Received *proto.WorkloadEndpointUpdate update from calculation graph msg=id:<orchestrator_id:\"k8s\" workload_id:\"%s/%s\" endpoint_id:\"eth0\" >" % (
                d.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], r.randint(50, 90), r.randint(1800, 1900), r.choice(sim.apps).ns, r.choice(sim.apps).name)
        if sim.cni_name == "cilium":
            return 'level=info msg="Rewrote endpoint BPF program" containerID=%s datapathPolicyRevision=%d desiredPolicyRevision=%d endpointID=%d identity=%d ipv4=%s subsys=endpoint' % (
                sim.hexid(10), r.randint(1, 40), r.randint(1, 40), r.randint(100, 4000), r.randint(1000, 60000), client_ip(sim))
        if sim.cni_name == "flannel":
            return "%s       1 iptables.go:%d] bootstrap done" % (klog_ts(t), r.choice([283, 421]))
        return '{"level":"info","ts":"%s","caller":"ipamd/ipamd.go:%d","msg":"IP pool is in good state"}' % (iso(t, 3), r.randint(600, 700))
    if role == "kube-proxy":
        return '%s       1 proxier.go:%d] "SyncProxyRules complete" elapsed="%.1fms"' % (klog_ts(t), r.randint(790, 830), r.uniform(10, 90))
    if role == "etcd":
        return json.dumps({"level": "info", "ts": iso(t, 6), "caller": r.choice(["mvcc/index.go:214", "mvcc/kvstore_compaction.go:66"]),
                           "msg": r.choice(["compact tree index", "finished scheduled compaction"]), "compact-revision": r.randint(10 ** 7, 9 * 10 ** 7),
                           "took": "%.6fms" % r.uniform(5, 80)}, separators=(",", ":"))
    if role == "kube-apiserver":
        return "%s       1 controller.go:624] quota admission added evaluator for: %s" % (klog_ts(t), r.choice(["leases.coordination.k8s.io", "endpoints", "events.events.k8s.io", "jobs.batch"]))
    if role == "kube-controller-manager":
        return '%s       1 event.go:376] "Event occurred" object="%s/%s" fieldPath="" kind="Job" apiVersion="batch/v1" type="Normal" reason="Completed" message="Job completed"' % (
            klog_ts(t), r.choice(sim.apps).ns, r.choice(CRON_POOL))
    if role == "kube-scheduler":
        return '%s       1 schedule_one.go:%d] "Successfully bound pod to node" pod="%s/%s" node="%s" evaluatedNodes=%d feasibleNodes=%d' % (
            klog_ts(t), r.randint(280, 300), r.choice(sim.apps).ns, r.choice(sim.apps).name, r.choice(sim.workers), len(sim.nodes), len(sim.workers))
    if role == "job":
        return r.choice(["starting job", "processed %d rows" % r.randint(0, 5000), "done in %.1fs" % r.uniform(0.5, 20)])
    return json.dumps({"level": "info", "ts": iso(t, 3), "msg": "ok"})


def dns_fail_line(sim, p, t, host, kind="timeout"):
    """A client DNS failure in the pod's own language."""
    r = sim.rng
    lang = p.app.lang if p.app else "go"
    d = datetime.datetime.fromtimestamp(int(t), UTC)
    dns = sim.dns_ip
    if lang == "go":
        if kind == "misbehaving":
            err = "dial tcp: lookup %s on %s:53: server misbehaving" % (host, dns)
        else:
            err = "dial tcp: lookup %s on %s:53: read udp %s:%d->%s:53: i/o timeout" % (host, dns, p.ip, r.randint(30000, 60999), dns)
        if r.random() < 0.5:
            return json.dumps({"level": "error", "ts": iso(t, 3), "caller": "client/upstream.go:%d" % r.randint(60, 200), "msg": "upstream request failed",
                               "error": 'Get "http://%s:8080/v1/status": %s' % (host, err)}, separators=(",", ":"))
        return "%s failed to connect: %s" % (d.strftime("%Y/%m/%d %H:%M:%S"), err)
    if lang == "python":
        if r.random() < 0.5:
            return '%s,%03d ERROR [app.db] connection failed: could not translate host name "%s" to address: Temporary failure in name resolution' % (
                d.strftime("%Y-%m-%d %H:%M:%S"), int((t % 1) * 1000), host)
        return ("%s,%03d ERROR [app.client] requests.exceptions.ConnectionError: HTTPSConnectionPool(host='%s', port=443): Max retries exceeded with url: /v1/ping "
                "(Caused by NameResolutionError(\"<urllib3.connection.HTTPSConnection object at 0x7f%s>: Failed to resolve '%s' ([Errno -3] Temporary failure in name resolution)\"))") % (
            d.strftime("%Y-%m-%d %H:%M:%S"), int((t % 1) * 1000), host, sim.hexid(9), host)
    if lang == "ruby":
        return "E, [%s #1] ERROR -- : SocketError: Failed to open TCP connection to %s:443 (getaddrinfo: Name does not resolve)" % (iso(t, 6)[:-1], host)
    if lang == "java":
        return "%s.%03d ERROR 1 --- [scheduling-1] c.a.%s.service.SyncService       : Sync failed: java.net.UnknownHostException: %s: Temporary failure in name resolution" % (
            d.strftime("%Y-%m-%d %H:%M:%S"), int((t % 1) * 1000), p.app.name.split("-")[0], host)
    if lang == "node":
        return json.dumps({"level": 50, "time": int(t * 1000), "pid": 1, "hostname": p.name, "msg": "upstream request failed",
                           "err": {"type": "Error", "message": "getaddrinfo EAI_AGAIN %s" % host,
                                   "stack": "Error: getaddrinfo EAI_AGAIN %s\n    at GetAddrInfoReqWrap.onlookup [as oncomplete] (node:dns:107:26)" % host,
                                   "errno": -3001, "code": "EAI_AGAIN", "syscall": "getaddrinfo", "hostname": host}}, separators=(",", ":"))
    if lang == "dotnet":
        return "fail: %s.Worker[0] Refresh failed System.Net.Http.HttpRequestException: Resource temporarily unavailable (%s:443)" % (
            p.app.name.title().replace("-", ""), host)
    return "error: lookup %s: Name does not resolve" % host


def dns_target(sim, p):
    r = sim.rng
    if r.random() < 0.6:
        o = r.choice(sim.apps + sim.statefuls)
        return "%s.%s.svc.cluster.local" % (o.sts_name if o.kind == "StatefulSet" else o.name, o.ns)
    return r.choice(EXT_HOSTS)


# --------------------------------------------------------------------------- lifecycle helpers

def dur_str(s):
    s = int(s)
    if s < 60:
        return "%ds" % s
    return "%dm%ds" % (s // 60, s % 60)


def set_waiting(p, reason, message=None):
    for c, _ in p.containers:
        w = {"reason": reason}
        if message:
            w["message"] = message
        p.cs[c]["state"] = {"waiting": w}
        p.cs[c]["ready"] = False
        p.cs[c]["started"] = False
    p.ready = False


def new_pod(sim, app_or_ns, name, node, owner, containers, labels, t, role=None, app=None):
    ns = app_or_ns
    p = sim.mk_pod(ns, name, node, owner, containers, labels, t, app)
    p.role = role
    p.sched_t = t + sim.rng.uniform(0.02, 0.4)
    p.phase = "Pending"
    p.alive = [float("inf"), float("inf")]
    set_waiting(p, "ContainerCreating")
    p.ready_t = p.sched_t
    return p


def start_pod(sim, p, t, pull=None, sig=False, probe_fail=0, port=8080, ready_delay=None, become_ready=True, first="ADDED"):
    """ADDED -> Scheduled -> Pulled/Created/Started -> Running/Ready. Returns time it became ready."""
    r = sim.rng
    sim.pod_rec(t, p, first, sig)
    ts = p.sched_t
    sim.ev1(ts, sim.inv_pod(p), "Scheduled", "Successfully assigned %s/%s to %s" % (p.ns, p.name, p.node),
            component="default-scheduler", host="default-scheduler", api="series", action="Binding", sig=sig)
    t1 = ts + r.uniform(0.5, 2.5)
    c, img = p.containers[0]
    host = p.node
    inv = sim.inv_pod(p, "spec.containers{%s}" % c)
    if pull is None:
        pull = r.random() < 0.35
    if pull:
        sim.ev1(t1, inv, "Pulling", 'Pulling image "%s"' % img, host=host, sig=sig)
        dt = r.uniform(1.5, 9)
        t1 += dt
        sim.ev1(t1, inv, "Pulled", 'Successfully pulled image "%s" in %.3fs (%.3fs including waiting). Image size: %d bytes.' % (img, dt, dt, r.randint(20_000_000, 400_000_000)), host=host, sig=sig)
    else:
        sim.ev1(t1, inv, "Pulled", 'Container image "%s" already present on machine' % img, host=host, sig=sig)
    sim.ev1(t1 + 0.1, inv, "Created", "Created container %s" % c, host=host, sig=sig)
    sim.ev1(t1 + 0.4, inv, "Started", "Started container %s" % c, host=host, sig=sig)
    p.started = t1 + 0.4
    p.set_running(t1 + 0.4, ready=False)
    p.alive[0] = t1 + 0.5
    sim.pod_rec(t1 + 0.6, p, sig=sig)
    tr = t1 + (ready_delay if ready_delay is not None else r.uniform(2, 12))
    if probe_fail:
        s = Series(sim, inv, "Unhealthy", "Warning", "kubelet", host)
        for k in range(probe_fail):
            tt = t1 + 3 + k * 10 + r.uniform(0, 2)
            sim.ev(tt, s, 'Readiness probe failed: Get "http://%s:%d/ready": dial tcp %s:%d: connect: connection refused' % (p.ip, port, p.ip, port), sig)
        tr = max(tr, t1 + 5 + probe_fail * 10)
    if not become_ready:
        return t1 + 0.4
    p.set_running(tr, ready=True)
    p.ready_t = tr
    sim.pod_rec(tr, p, sig=sig)
    return tr


def stop_pod(sim, p, t, sig=False, reason_ev=True, grace=None):
    r = sim.rng
    c = p.containers[0][0]
    if reason_ev:
        sim.ev1(t, sim.inv_pod(p, "spec.containers{%s}" % c), "Killing", "Stopping container %s" % c, host=p.node, sig=sig)
    p.deleting = t + 30
    p.alive[1] = min(p.alive[1], t)
    sim.pod_rec(t + r.uniform(0.05, 0.5), p, sig=sig)
    g = grace if grace is not None else r.uniform(0.5, 6)
    for cc, _ in p.containers:
        p.cs[cc]["state"] = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": iso(p.started),
                                            "finishedAt": iso(t + g), "containerID": "containerd://" + p.cs[cc]["cid"]}}
        p.cs[cc]["ready"] = False
        p.cs[cc]["started"] = False
    p.ready = False
    p.ready_t = t + g
    sim.pod_rec(t + g, p, sig=sig)
    sim.pod_rec(t + g + r.uniform(0.3, 2), p, "DELETED", sig=sig)
    sim.pods.pop(p.key(), None)


def crashloop(sim, p, t_start, t_stop, reason="Error", exit_code=1, start_logs=(), fatal=(), run_for=(2, 8), sig=True,
              waiting="CrashLoopBackOff"):
    """Container of p dies at t_start and then crash-loops with kubelet back-off until t_stop."""
    r = sim.rng
    c, img = p.containers[0]
    inv = sim.inv_pod(p, "spec.containers{%s}" % c)
    host = p.node
    bo = Series(sim, inv, "BackOff", "Warning", "kubelet", host)
    pulled = Series(sim, inv, "Pulled", "Normal", "kubelet", host)
    created = Series(sim, inv, "Created", "Normal", "kubelet", host)
    started = Series(sim, inv, "Started", "Normal", "kubelet", host)
    for s in (pulled, created, started):
        s.count = 1 + p.cs[c]["restartCount"]
        s.first = p.started
    p.quiet.append((t_start, t_stop))
    t = t_start
    last_start = p.started
    k = p.cs[c]["restartCount"]
    while t < t_stop and t < sim.t_end:
        for i, line in enumerate(fatal):
            sim.log(t - 0.05 + i * 0.001, p, line(t) if callable(line) else line, stream="stderr", sig=sig)
        k += 1
        backoff = min(10 * 2 ** (k - 1 - p.cs[c].get("base", 0)), 300)
        st = p.cs[c]
        st["restartCount"] = k
        st["lastState"] = {"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": iso(last_start), "finishedAt": iso(t),
                                          "containerID": "containerd://" + st["cid"]}}
        st["cid"] = sim.hexid(64)
        st["state"] = {"waiting": {"reason": waiting, "message": "back-off %s restarting failed container=%s pod=%s_%s(%s)" % (
            dur_str(backoff), c, p.name, p.ns, p.uid)}}
        st["ready"] = False
        st["started"] = False
        if p.ready:
            p.ready_t = t
        p.ready = False
        sim.pod_rec(t + r.uniform(0.3, 1.5), p, sig=sig)
        tb = t + r.uniform(1, 3)
        while tb < t + backoff:
            if r.random() < 0.8 or bo.count == 0:
                sim.ev(tb, bo, "Back-off restarting failed container %s in pod %s_%s(%s)" % (c, p.name, p.ns, p.uid), sig)
            else:
                bo.count += 1
            tb += r.uniform(8, 25) if backoff < 60 else r.uniform(25, 70)
        tr = t + backoff + r.uniform(0.5, 3)
        if tr >= t_stop or tr >= sim.t_end:
            break
        sim.ev(tr, pulled, 'Container image "%s" already present on machine' % img, sig)
        sim.ev(tr + 0.1, created, "Created container %s" % c, sig)
        sim.ev(tr + 0.3, started, "Started container %s" % c, sig)
        st["state"] = {"running": {"startedAt": iso(tr + 0.3)}}
        st["started"] = True
        last_start = tr + 0.3
        sim.pod_rec(tr + 0.5, p, sig=sig)
        for i, line in enumerate(start_logs):
            sim.log(tr + 0.4 + i * r.uniform(0.01, 0.3), p, line(tr) if callable(line) else line, sig=sig)
        t = tr + r.uniform(*run_for)
    return k


def recover_pod(sim, p, t, sig=True):
    c = p.containers[0][0]
    p.set_running(t, ready=False)
    sim.pod_rec(t, p, sig=sig)
    p.set_running(t + 5, ready=True)
    sim.pod_rec(t + 5, p, sig=sig)


# --------------------------------------------------------------------------- noise

def blocked(sim, t, ns):
    return any(a - 60 <= t <= b + 30 and (x is None or x == ns) for a, b, x in sim.block_create)


def rollout(sim, app, t, sig=False, probe_fail=0, bad=None):
    """Rolling update of a Deployment, one pod at a time (maxSurge 1, maxUnavailable 0)."""
    r = sim.rng
    old_rs = app.rs
    new_hash = rand_hash(r, len(old_rs.rsplit("-", 1)[1]))
    new_rs = "%s-%s" % (app.name, new_hash)
    dinv = sim.inv("Deployment", app.ns, app.name, "apps/v1")
    new_inv = sim.inv("ReplicaSet", app.ns, new_rs, "apps/v1")
    old_inv = sim.inv("ReplicaSet", app.ns, old_rs, "apps/v1")
    olds = list(app.pods)
    n = len(olds)
    img = app.image.rsplit(":", 1)[0] + ":" + r.choice(["1.4.3", "2.0.2", "v3.2.1", "2024.12.0", "0.9.18", "5.1.1", "5.2.0"])
    app.image = img
    app.rs = new_rs
    news = []
    for i in range(n):
        sim.ev1(t, dinv, "ScalingReplicaSet", "Scaled up replica set %s to %d" % (new_rs, i + 1) if i else
                "Scaled up replica set %s to 1" % new_rs, component="deployment-controller", sig=sig)
        name = "%s-%s" % (new_rs, rand_hash(r, 5))
        node = r.choice(sim.sched_nodes(t))
        labels = dict(olds[0].labels) if olds else {"app.kubernetes.io/name": app.name}
        labels["pod-template-hash"] = new_hash
        p = new_pod(sim, app.ns, name, node, ("ReplicaSet", new_rs), [(app.container, img)], labels, t + 0.2, app=app)
        sim.ev1(t + 0.1, new_inv, "SuccessfulCreate", "Created pod: %s" % name, component="replicaset-controller", sig=sig)
        tr = start_pod(sim, p, t + 0.2, pull=(i == 0), sig=sig, probe_fail=probe_fail, port=app.port)
        news.append(p)
        td = tr + r.uniform(0.2, 2)
        o = olds[i]
        sim.ev1(td, dinv, "ScalingReplicaSet", "Scaled down replica set %s to %d from %d" % (old_rs, n - i - 1, n - i),
                component="deployment-controller", sig=sig)
        sim.ev1(td + 0.05, old_inv, "SuccessfulDelete", "Deleted pod: %s" % o.name, component="replicaset-controller", sig=sig)
        stop_pod(sim, o, td + 0.1, sig=sig)
        t = td + r.uniform(1, 5)
    app.pods = news
    return t


def cron_run(sim, cj, t, sig=False, node=None):
    r = sim.rng
    job = "%s-%d" % (cj["name"], int(t // 60))
    cinv = sim.inv("CronJob", cj["ns"], cj["name"], "batch/v1")
    jinv = sim.inv("Job", cj["ns"], job, "batch/v1")
    sim.ev1(t, cinv, "SuccessfulCreate", "Created job %s" % job, component="cronjob-controller", sig=sig)
    pname = "%s-%s" % (job, rand_hash(r, 5))
    node = node or r.choice(sim.sched_nodes(t))
    p = new_pod(sim, cj["ns"], pname, node, ("Job", job), [(cj["container"], cj["image"])],
                {"batch.kubernetes.io/job-name": job, "job-name": job, "batch.kubernetes.io/controller-uid": sim.uid()}, t + 0.3, role="job")
    sim.ev1(t + 0.2, jinv, "SuccessfulCreate", "Created pod: %s" % pname, component="job-controller", sig=sig)
    tr = start_pod(sim, p, t + 0.3, pull=False, sig=sig, ready_delay=0.5)
    for i in range(r.randint(1, 3)):
        sim.log(tr + 0.5 + i, p, noise_line(sim, p, tr + 0.5 + i), sig=sig)
    te = tr + r.uniform(4, 40)
    c = p.containers[0][0]
    p.cs[c]["state"] = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": iso(p.started), "finishedAt": iso(te),
                                       "containerID": "containerd://" + p.cs[c]["cid"]}}
    p.cs[c]["ready"] = False
    p.cs[c]["started"] = False
    p.phase = "Succeeded"
    p.ready = False
    p.ready_t = te
    p.alive[1] = te
    sim.pod_rec(te + 0.3, p, sig=sig)
    sim.ev1(te + 1.5, jinv, "Completed", "Job completed", component="job-controller", sig=sig)
    sim.ev1(te + 2, cinv, "SawCompletedJob", "Saw completed job: %s, condition: Complete" % job, component="cronjob-controller", sig=sig)
    cj["history"].append((job, p))
    if len(cj["history"]) > 3:
        oj, op = cj["history"].pop(0)
        sim.ev1(te + 2.1, cinv, "SuccessfulDelete", "Deleted job %s" % oj, component="cronjob-controller", sig=sig)
        if op is not None:
            sim.pod_rec(te + 2.5, op, "DELETED", sig=sig)
            sim.pods.pop(op.key(), None)
    return p


def probe_blip(sim, p, t, sig=False):
    r = sim.rng
    c = p.containers[0][0]
    port = p.app.port if p.app else 8080
    msg = r.choice(['Readiness probe failed: Get "http://%s:%d/ready": context deadline exceeded (Client.Timeout exceeded while awaiting headers)' % (p.ip, port),
                    "Readiness probe failed: HTTP probe failed with statuscode: 503"])
    sim.ev1(t, sim.inv_pod(p, "spec.containers{%s}" % c), "Unhealthy", msg, "Warning", host=p.node, sig=sig)
    p.set_running(p.started, ready=False)
    p.cs[c]["state"] = {"running": {"startedAt": iso(p.started)}}
    p.ready_t = t + 0.2
    sim.pod_rec(t + 0.3, p, sig=sig)
    t2 = t + r.uniform(10, 30)
    p.set_running(p.started, ready=True)
    p.cs[c]["state"] = {"running": {"startedAt": iso(p.started)}}
    p.ready_t = t2
    sim.pod_rec(t2, p, sig=sig)


def emit_initial(sim):
    r = sim.rng
    objs = [("node", n) for n in sim.nodes.values() if getattr(n, "born", 0) <= sim.t0] + \
        [("pod", p) for p in sim.pods.values() if p.created <= sim.t0]
    # nodes first-ish but interleaved, as a LIST of both kinds would write them
    r.shuffle(objs)
    objs.sort(key=lambda x: 0 if x[0] == "node" and r.random() < 0.5 else 1)
    for i, (k, o) in enumerate(objs):
        t = sim.t0 + 0.01 + i * 0.013
        if k == "node":
            sim.add(t, {"type": "ADDED", "object": sim.node_obj(o, sim.t0), "observedAt": iso(t, 6)}, "node/" + o.name, initial=True)
        else:
            sim.add(t, {"type": "ADDED", "object": sim.pod_obj(o, sim.t0), "observedAt": iso(t, 6)}, "pod/" + o.key(), initial=True)
    sim.initial_done = True


def noise(sim, rollouts=None, crons=True, blips=None):
    r = sim.rng
    # heartbeats
    hb = r.choice([60, 120, 180, 300])
    for n in sim.nodes.values():
        t = sim.t0 + r.uniform(5, hb)
        while t < sim.t_end:
            sim.noise_hb.append((t, n))
            t += hb + r.uniform(-3, 3)
    # watchdog
    start = sim.t0 - r.randint(2, 20) * 86400 - r.uniform(0, 86400)
    t = sim.t0 + r.uniform(1, 200)
    while t < sim.t_end:
        sim.alert(t, "Watchdog", {"prometheus": "monitoring/prometheus"}, "An alert that should always be firing to certify that Alertmanager is working as expected.",
                  "This is an alert meant to ensure that the entire alerting pipeline is functional.\nThis alert is always firing, therefore it should always be firing in Alertmanager\nand always fire against a receiver. There are integrations with various notification\nmechanisms that send a notification when this alert is not firing.",
                  start, sig=False, severity="none")
        t += 300 + r.uniform(-2, 2)
    # rollouts
    cands = [a for a in sim.apps if not a.reserved]
    nroll = rollouts if rollouts is not None else r.randint(2, 4)
    for _ in range(nroll):
        if not cands:
            break
        a = r.choice(cands)
        cands.remove(a)
        for _try in range(20):
            t = r.uniform(sim.t0 + 60, sim.t_end - 300)
            if not blocked(sim, t, a.ns) and not blocked(sim, t + 200, a.ns):
                rollout(sim, a, t)
                break
    # cron runs
    if crons:
        for cj in sim.crons:
            if cj["reserved"]:
                continue
            every = cj["every"] * 60
            t = math.ceil(sim.t0 / every) * every + r.uniform(0.5, 3)
            while t < sim.t_end - 60:
                if not blocked(sim, t, cj["ns"]):
                    cron_run(sim, cj, t)
                t += every
    # readiness blips
    nb = blips if blips is not None else r.randint(1, 3)
    pool = [p for a in sim.apps if not a.reserved for p in a.pods]
    for _ in range(nb):
        if pool:
            p = r.choice(pool)
            t = r.uniform(sim.t0 + 60, sim.t_end - 60)
            if p.alive[0] < t < p.alive[1] - 60 and p.key() in sim.pods:
                probe_blip(sim, p, t)


# --------------------------------------------------------------------------- finalize

def node_change(sim, t, n, fn, sig=True, tag=None):
    sim.node_events.append((t, 1, n, fn, sig, (sim.tag_ns, tag) if tag else None))


def render_nodes(sim):
    evs = [(t, 0, n, None, False, None) for t, n in sim.noise_hb] + sim.node_events
    evs.sort(key=lambda x: (x[0], x[1]))
    for t, kind, n, fn, sig, tag in evs:
        sim.tag = tag
        if fn is None:
            if n.heartbeat_frozen or getattr(n, "gone", False) or t < getattr(n, "born", 0):
                continue
            sim.node_rec(t, n, sig=False)
        else:
            out = fn(n)
            if out is not False:
                sim.node_rec(t, n, typ=out if isinstance(out, str) else "MODIFIED", sig=sig)
    sim.tag = None


def fill_logs(sim, target):
    r = sim.rng
    S = sum(1 for x in sim.recs if x[3])
    N = len(sim.recs) - S
    need = max(target - S - N, int(math.ceil(5.4 * S)) - N, 0)
    pods = [p for p in sim.all_pods if p.node and p.alive[0] < sim.t_end and p.alive[1] > sim.t0 and p.role != "job"]
    weights = []
    for p in pods:
        w = 1.0
        if p.role in ("cni", "kube-proxy"):
            w = 0.35
        elif p.role in ("coredns", "ingress"):
            w = 2.2
        elif p.role in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            w = 0.5
        elif p.app is not None:
            w = {"nginx": 1.3, "go": 1.4, "node": 1.2}.get(p.app.lang, 1.0) * getattr(p.app, "log_weight", 1.0)
        weights.append(w)
    done = 0
    guard = 0
    while done < need and guard < need * 20:
        guard += 1
        p = r.choices(pods, weights)[0]
        a = max(p.alive[0], sim.t0 + 1)
        b = min(p.alive[1], sim.t_end)
        if b <= a:
            continue
        t = r.uniform(a, b)
        if any(x <= t <= y for x, y in p.quiet):
            continue
        sim.log(t, p, noise_line(sim, p, t), stream="stderr" if p.role in ("cni", "kube-proxy") or (p.app and p.app.lang == "ruby") else "stdout")
        done += 1


def finalize(sim, target=None):
    r = sim.rng
    render_nodes(sim)
    fill_logs(sim, target or r.randint(1700, 3100))
    # arrival order: per-object order kept, bounded lateness
    by_key = {}
    for rec in sim.recs:
        by_key.setdefault(rec[2], []).append(rec)
    lag = {}
    for n in sim.nodes.values():
        lag[n.name] = (r.uniform(0.2, 2.5), r.random() < 0.6)
    arrivals = []
    for key, lst in by_key.items():
        lst.sort(key=lambda x: (x[0], x[5]))
        last = -1e18
        for rec in lst:
            t, o, k, sig, initial, seq = rec
            if initial:
                a = sim.t0 - 10 + seq * 0.001
            else:
                if k.startswith(("pod/", "node/")):
                    d = r.uniform(0.02, 0.8)
                elif k.startswith("alert/"):
                    d = r.uniform(0.0, 0.5)
                elif k.startswith("ev/"):
                    x = r.random()
                    d = r.uniform(0.1, 3) if x < 0.8 else (r.uniform(3, 20) if x < 0.96 else r.uniform(20, 50))
                else:
                    nd = (o.get("kubernetes") or {}).get("pod_node_name") or (o.get("kubernetes") or {}).get("host")
                    base, bursty = lag.get(nd, (1.0, False))
                    x = r.random()
                    d = r.uniform(0.05, base)
                    if bursty and x < 0.04:
                        d = r.uniform(15, 55)
                a = max(t + d, last + 0.0005)
            last = a
            arrivals.append((a, seq, rec))
    arrivals.sort(key=lambda x: (x[0], x[1]))
    rv = r.randint(30_000_000, 80_000_000)
    lines = []
    S = 0
    for a, seq, (t, o, k, sig, initial, _) in arrivals:
        obj = o.get("object", o) if isinstance(o, dict) else o
        if isinstance(obj, dict) and "metadata" in obj and obj.get("kind") in ("Pod", "Node", "Event"):
            rv += r.randint(1, 40)
            obj["metadata"]["resourceVersion"] = str(rv)
        lines.append(json.dumps(o, separators=(",", ":")))
        S += 1 if sig else 0
    return lines, S


def write_scenario(sim, description, incidents, max_incidents, forbidden=None, target=None):
    lines, S = finalize(sim, target)
    d = os.path.join(HERE, sim.name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "input.ndjson"), "w") as f:
        f.write("\n".join(lines) + "\n")
    for inc in incidents:
        tag = inc.pop("_tag", None)
        if tag is not None:
            inc["detect_from"] = iso(sim.tags[tag], 6)
        elif isinstance(inc.get("detect_from"), float):
            inc["detect_from"] = iso(inc["detect_from"], 6)
        for k in ("affected_must", "affected_may"):
            if k in inc:
                inc[k] = sorted(set(inc[k]))
        if "affected_may" in inc:
            inc["affected_may"] = [x for x in inc["affected_may"] if x not in inc.get("affected_must", [])]
    exp = {"scenario": sim.name, "description": description, "max_incidents": max_incidents, "incidents": incidents}
    if forbidden:
        exp["forbidden"] = forbidden
    N = len(lines) - S
    exp["stats"] = {"records": len(lines), "signal_records": S, "noise_records": N,
                    "noise_per_signal": round(N / S, 2) if S else None, "start": iso(sim.t0), "end": iso(sim.t_end),
                    "seed": sim.seed, "flavor": sim.flavor_name}
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(exp, f, indent=2)
        f.write("\n")
    return len(lines), S


# --------------------------------------------------------------------------- shared scenario helpers

def k(p):
    return "%s/%s" % (p.ns, p.name)


def pods_on(sim, node, apps_only=True):
    return [p for p in sim.pods.values() if p.node == node and (p.app is not None or not apps_only) and p.role is None]


def crash_alert(sim, p, t_start, cname=None):
    if t_start + 900 < sim.t_end:
        sim.alert_repeat("KubePodCrashLooping", {"namespace": p.ns, "pod": p.name, "container": cname or p.containers[0][0],
                                                 "job": "kube-state-metrics"},
                         "Pod is crash looping.", "Pod %s/%s (%s) is in waiting state (reason: \"CrashLoopBackOff\")." % (p.ns, p.name, cname or p.containers[0][0]),
                         t_start + 900 + sim.rng.uniform(0, 60))


def aggregated(sim, inv, reason, times, msgfn, component, host=None, etype="Warning", sig=True):
    """Events with differing messages: the first 10 are separate Events, then one aggregate series
    "(combined from similar events): ..." with a rising count (client-go EventCorrelator)."""
    agg = None
    for i, t in enumerate(times):
        m = msgfn(t)
        if i < 10:
            sim.ev1(t, inv, reason, m, etype, component, host, sig=sig)
        else:
            if agg is None:
                agg = Series(sim, inv, reason, etype, component, host)
                agg.count = 10
            if sim.rng.random() < 0.8:
                sim.ev(t, agg, "(combined from similar events): " + m, sig)
            else:
                agg.count += 1


def backoff_times(sim, t1, t2, first=1.0, growth=2.0, cap=300, jitter=0.15):
    out = []
    t, p = t1, first
    while t < min(t2, sim.t_end):
        out.append(t)
        t += p * sim.rng.uniform(1 - jitter, 1 + jitter)
        p = min(p * growth, cap)
    return out


def app_keys(app, extra=()):
    out = ["%s/%s" % (app.ns, app.name)]
    if app.rs:
        out.append("%s/%s" % (app.ns, app.rs))
    out += [k(p) for p in app.pods]
    return out + list(extra)


def reserve_apps(sim, n, exclude_ns=(), langs=None, distinct_ns=True):
    r = sim.rng
    cands = [a for a in sim.apps if not a.reserved and a.ns not in exclude_ns and (langs is None or a.lang in langs)]
    r.shuffle(cands)
    out, seen = [], set()
    for a in cands:
        if distinct_ns and a.ns in seen:
            continue
        out.append(a)
        seen.add(a.ns)
        a.reserved = True
        if len(out) >= n:
            break
    return out


def add_app(sim, ns, lang=None, replicas=None, name=None):
    r = sim.rng
    used = {a.name for a in sim.apps}
    pool = [x for x in APP_POOL if x[0] not in used and (lang is None or x[1] == lang)]
    nm, lg, img, port = r.choice(pool)
    app = App(name or nm, lg, "%s:%s" % (img, r.choice(["1.2.0", "3.0.4", "v2.7.1"])), port, ns, replicas=replicas or r.choice([1, 2]))
    sim.apps.append(app)
    sim.deploy(app, sim.t0 - r.randint(1, 30) * 86400)
    return app


def blocked_rollout_start(sim, app, t, sig=True):
    """Deployment controller scales up a new ReplicaSet; returns (new_rs, inv of RS, inv of Deployment)."""
    r = sim.rng
    new_hash = rand_hash(r, len(app.rs.rsplit("-", 1)[1]))
    new_rs = "%s-%s" % (app.name, new_hash)
    dinv = sim.inv("Deployment", app.ns, app.name, "apps/v1")
    sim.ev1(t, dinv, "ScalingReplicaSet", "Scaled up replica set %s to 1" % new_rs, component="deployment-controller", sig=sig)
    return new_rs, new_hash, sim.inv("ReplicaSet", app.ns, new_rs, "apps/v1")


def finish_blocked_rollout(sim, app, new_rs, new_hash, t, sig=True):
    r = sim.rng
    rinv = sim.inv("ReplicaSet", app.ns, new_rs, "apps/v1")
    name = "%s-%s" % (new_rs, rand_hash(r, 5))
    labels = dict(app.pods[0].labels) if app.pods else {"app.kubernetes.io/name": app.name}
    labels["pod-template-hash"] = new_hash
    p = new_pod(sim, app.ns, name, r.choice(sim.sched_nodes(t)), ("ReplicaSet", new_rs), [(app.container, app.image)], labels, t + 0.1, app=app)
    sim.ev1(t, rinv, "SuccessfulCreate", "Created pod: %s" % name, component="replicaset-controller", sig=sig)
    start_pod(sim, p, t + 0.1, sig=sig)
    return p


def cj_by_ns(sim, ns):
    for cj in sim.crons:
        if cj["ns"] == ns and not cj["reserved"]:
            return cj
    r = sim.rng
    used = {c["name"] for c in sim.crons}
    nm = r.choice([c for c in CRON_POOL if c not in used])
    cj = dict(name=nm, ns=ns, every=5, image="ghcr.io/acme/jobs:%s" % r.choice(["1.8.0", "2.2.1"]), container="job", history=[], reserved=False)
    sim.crons.append(cj)
    return cj


def run_cron_with_block(sim, cj, t_block1, t_block2, block_fn, sig=True):
    """Runs a reserved CronJob normally outside [t_block1, t_block2]; inside, block_fn(job_inv, job, t) is called."""
    r = sim.rng
    every = cj["every"] * 60
    t = math.ceil(sim.t0 / every) * every + r.uniform(0.5, 3)
    jobs = []
    while t < sim.t_end - 30:
        if t_block1 <= t <= t_block2:
            job = "%s-%d" % (cj["name"], int(t // 60))
            cinv = sim.inv("CronJob", cj["ns"], cj["name"], "batch/v1")
            jinv = sim.inv("Job", cj["ns"], job, "batch/v1")
            sim.ev1(t, cinv, "SuccessfulCreate", "Created job %s" % job, component="cronjob-controller", sig=sig)
            block_fn(jinv, job, t + 0.2)
            jobs.append(job)
        else:
            cron_run(sim, cj, t, sig=False)
        t += every
    return jobs


# --------------------------------------------------------------------------- failure classes (generators: setup, yield, run)

def f_webhook(sim, err="refused", crash="OOMKilled", n_rs=None, start=None, recover=None):
    r = sim.rng
    wh = dict(r.choice([w for w in WEBHOOKS if w["ns"] not in sim.used_ns]))
    sim.used_ns.add(wh["ns"])
    app = App(wh["deploy"], "webhook", wh["image"], 443, wh["ns"], replicas=r.choice([2, 3]))
    app.container = wh["container"]
    app.reserved = True
    sim.deploy(app, sim.t0 - r.randint(2, 50) * 86400, role="webhook")
    for p in app.pods:
        p.role = "webhook"
        p.app = app
    T0 = start or sim.t0 + r.uniform(7, 13) * 60
    dur = r.uniform(14, 22) * 60
    T1 = T0 + dur if (recover if recover is not None else r.random() < 0.6) else sim.t_end + 10
    sim.block_create.append((T0, T1, None))
    n_rs = n_rs or r.randint(3, 4)
    victims = reserve_apps(sim, n_rs, exclude_ns=("kube-system",))
    cjs = []
    victim_ns = {a.ns for a in victims}
    cj = cj_by_ns(sim, r.choice(sorted(victim_ns)))
    cj["reserved"] = True
    cj["every"] = 5
    cjs.append(cj)
    yield
    svc_ip = "%s.%d.%d" % (".".join(sim.dns_ip.split(".")[:2]), r.randint(0, 255), r.randint(2, 250))
    url = "https://%s.%s.svc:443/%s?timeout=10s" % (wh["svc"], wh["ns"], wh["path"])
    tail = {"refused": "dial tcp %s:443: connect: connection refused" % svc_ip,
            "noendpoints": 'no endpoints available for service "%s"' % wh["svc"],
            "deadline": "context deadline exceeded"}[err]
    msg = 'Error creating: Internal error occurred: failed calling webhook "%s": failed to call webhook: Post "%s": %s' % (wh["hook"], url, tail)
    exit_code = 137 if crash == "OOMKilled" else 1
    fatal = []
    if crash != "OOMKilled":
        fatal = [lambda t: '%s       1 main.go:%d] "failed to start webhook server" err="open /tmp/k8s-webhook-server/serving-certs/tls.crt: no such file or directory"' % (klog_ts(t, "E"), r.randint(90, 400))]
    start_logs = [lambda t: '%s       1 main.go:%d] "starting" version="%s"' % (klog_ts(t), r.randint(60, 200), wh["image"].rsplit(":", 1)[1]),
                  lambda t: '%s       1 server.go:%d] "Starting webhook server" port=9443' % (klog_ts(t), r.randint(100, 300))]
    for i, p in enumerate(app.pods):
        ts = T0 + (0 if i == 0 else r.uniform(2, 40))
        if i == 0:
            sim.tag = "root"
        crashloop(sim, p, ts, T1, reason=crash, exit_code=exit_code, fatal=fatal, start_logs=start_logs,
                  run_for=(5, 30) if crash == "OOMKilled" else (1, 4))
        sim.tag = None
        crash_alert(sim, p, ts)
        if T1 < sim.t_end:
            recover_pod(sim, p, T1 + r.uniform(5, 30))
    must, may = [], app_keys(app, ["%s/%s" % (wh["ns"], wh["svc"]), wh["cfg"]])
    for i, a in enumerate(victims):
        t = T0 + (r.uniform(12, 45) if i == 0 else r.uniform(30, min(dur, 600)))
        new_rs, new_hash, rinv = blocked_rollout_start(sim, a, t)
        s = Series(sim, rinv, "FailedCreate", "Warning", "replicaset-controller")
        sim.repeat(s, t + 0.05, T1, msg, period=1.0, growth=2.0, max_period=r.choice([120, 300]), skip=0.3)
        must.append("%s/%s" % (a.ns, new_rs))
        may += app_keys(a)
        if T1 < sim.t_end:
            p = finish_blocked_rollout(sim, a, new_rs, new_hash, T1 + r.uniform(10, 40))
            may.append(k(p))

    def jblock(jinv, job, t):
        s = Series(sim, jinv, "FailedCreate", "Warning", "job-controller")
        sim.repeat(s, t, min(T1, t + 600), msg, period=1.0, growth=2.0, max_period=360, skip=0.3)
        must.append("%s/%s" % (jinv["namespace"], job))
    for c in cjs:
        jobs = run_cron_with_block(sim, c, T0, T1, jblock)
        may += ["%s/%s" % (c["ns"], c["name"])]
    may += sim.workers + sim.cps
    return [{"what": "admission webhook %s down (%s pods %s): pod creation fails in %d namespaces" % (wh["hook"], wh["deploy"], crash, len(victim_ns)),
             "root": {"kinds": ["Pod", "Deployment", "ReplicaSet", "Service", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"],
                      "namespace": [wh["ns"], None], "name_regex": wh["regex"]},
             "title_any": [wh["hook"], wh["svc"]], "affected_must": must, "affected_may": may,
             "max_false_affected": 3, "_tag": "root", "max_detect_seconds": 120}]


def f_dns(sim, crash="OOMKilled", start=None, n_clients=None):
    r = sim.rng
    app = sim.dns_app
    app.reserved = True
    T0 = start or sim.t0 + r.uniform(7, 14) * 60
    T1 = T0 + r.uniform(12, 20) * 60 if r.random() < 0.5 else sim.t_end + 10
    clients = reserve_apps(sim, n_clients or r.randint(6, 8), langs=("go", "python", "java", "node", "dotnet", "ruby"), distinct_ns=False)
    yield
    fatal = []
    if crash == "loop":
        fatal = [lambda t: '[FATAL] plugin/loop: Loop (127.0.0.1:%d -> :53) detected for zone ".", see https://coredns.io/plugins/loop#troubleshooting. Query: "HINFO %d.%d."' % (
            r.randint(30000, 60000), r.randint(10 ** 18, 9 * 10 ** 18), r.randint(10 ** 18, 9 * 10 ** 18))]
    start_logs = [".:53", "[INFO] plugin/reload: Running configuration SHA512 = %s" % sim.hexid(128), "CoreDNS-1.11.1", "linux/amd64, go1.20.7, ae2bbc2"]
    for i, p in enumerate(app.pods):
        ts = T0 + (0 if i == 0 else r.uniform(0.5, 8))
        if i == 0:
            sim.tag = "root"
        crashloop(sim, p, ts, T1, reason="OOMKilled" if crash == "OOMKilled" else "Error", exit_code=137 if crash == "OOMKilled" else 1,
                  fatal=fatal, start_logs=start_logs, run_for=(3, 20) if crash == "OOMKilled" else (0.5, 2))
        sim.tag = None
        crash_alert(sim, p, ts)
        if T1 < sim.t_end:
            recover_pod(sim, p, T1 + r.uniform(3, 10))
    if T0 + 900 < sim.t_end:
        sim.alert_repeat("CoreDNSDown", {"namespace": "kube-system"}, "CoreDNS has disappeared from Prometheus target discovery.",
                         "CoreDNS has disappeared from Prometheus target discovery.", T0 + 900 + r.uniform(0, 30), severity="critical")
    must, may = [], app_keys(app, ["kube-system/kube-dns"])
    first = True
    for a in clients:
        for p in a.pods:
            if r.random() < 0.25 and not first:
                continue
            host = dns_target(sim, p)
            t = T0 + (r.uniform(3, 25) if first else r.uniform(5, 120))
            first = False
            n = 0
            period = r.uniform(15, 60)
            while t < min(T1, sim.t_end):
                if r.random() < 0.15:
                    host = dns_target(sim, p)
                sim.log(t, p, dns_fail_line(sim, p, t, host, "misbehaving" if r.random() < 0.25 else "timeout"), stream=r.choice(["stdout", "stderr"]), sig=True)
                n += 1
                t += period * r.uniform(0.6, 1.5)
            if n:
                must.append(k(p))
            may += ["%s/%s" % (a.ns, a.name), "%s/%s" % (a.ns, a.rs)]
    may += list(sim.nodes)
    return [{"what": "cluster DNS down (%s %s): lookups fail in %d pods" % (app.name, crash, len(must)),
             "root": {"kinds": ["Pod", "Deployment", "Service"], "namespace": "kube-system", "name_regex": "^(coredns|kube-dns)"},
             "title_any": ["DNS", "name resolution", "lookup"], "affected_must": must, "affected_may": may,
             "max_false_affected": 3, "_tag": "root", "max_detect_seconds": 120}]


def f_pressure(sim, res="disk", start=None, node=None):
    r = sim.rng
    N = node or r.choice(sim.workers)
    n = sim.nodes[N]
    T0 = start or sim.t0 + r.uniform(8, 14) * 60
    want = r.randint(8, 14)
    # put pods of Deployments on N (move existing ones, add replicas)
    cands = [a for a in sim.apps if not a.reserved and a.kind == "Deployment"]
    r.shuffle(cands)
    victims = []
    for a in cands:
        if len(victims) >= want:
            break
        a.reserved = True
        for p in a.pods:
            if len(victims) >= want:
                break
            p.node = N
            p.ip = sim.pod_ip(N)
            victims.append(p)
    while len(victims) < want:
        a = add_app(sim, r.choice([x.ns for x in sim.apps]), replicas=2)
        a.reserved = True
        for p in a.pods:
            if len(victims) < want:
                p.node = N
                p.ip = sim.pod_ip(N)
                victims.append(p)
    T1 = T0 + r.uniform(5, 9) * 60
    sim.avoid_node.append((T0 - 30, sim.t_end, N))
    yield
    cond = "DiskPressure" if res == "disk" else "MemoryPressure"
    resname = "ephemeral-storage" if res == "disk" else "memory"
    taint = "node.kubernetes.io/disk-pressure" if res == "disk" else "node.kubernetes.io/memory-pressure"

    def on(nd):
        if res == "disk":
            nd.conds["DiskPressure"] = ["True", "KubeletHasDiskPressure", "kubelet has disk pressure", T0]
        else:
            nd.conds["MemoryPressure"] = ["True", "KubeletHasInsufficientMemory", "kubelet has insufficient memory available", T0]
        nd.taints = [{"key": taint, "effect": "NoSchedule", "timeAdded": iso(T0)}]

    def off(nd):
        if res == "disk":
            nd.conds["DiskPressure"] = ["False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure", T1]
        else:
            nd.conds["MemoryPressure"] = ["False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available", T1]
        nd.taints = []
    node_change(sim, T0, n, on, sig=True, tag="root")
    ninv = {"kind": "Node", "name": N, "uid": n.uid, "apiVersion": "v1"}
    sim.ev1(T0 + 0.5, ninv, "NodeHas" + ("DiskPressure" if res == "disk" else "InsufficientMemory"),
            "Node %s status is now: NodeHas%s" % (N, "DiskPressure" if res == "disk" else "InsufficientMemory"), host=N, sig=True)
    thr = sim.rng.choice(["pct", "bytes"])
    em = Series(sim, ninv, "EvictionThresholdMet", "Warning", "kubelet", N)
    sim.repeat(em, T0 + r.uniform(1, 4), T1 - 20, "Attempting to reclaim %s" % resname, period=r.uniform(10, 25), skip=0.3)
    if res == "disk":
        gc = Series(sim, ninv, "FreeDiskSpaceFailed", "Warning", "kubelet", N)
        sim.repeat(gc, T0 + r.uniform(5, 30), T1, lambda t: "Failed to garbage collect required amount of images. Attempted to free %d bytes, but only found 0 bytes eligible to free." % r.randint(2 * 10 ** 9, 9 * 10 ** 9), period=300, skip=0)
    t = T0 + r.uniform(5, 20)
    must, may = [], [N]
    for p in victims:
        c = p.containers[0][0]
        if res == "disk":
            used = r.choice(["2Gi", "1536Mi", "3Gi", "%dKi" % r.randint(900000, 4000000)])
            if thr == "pct":
                q = "Threshold quantity: 10%, available: 4%."
            else:
                q = "Threshold quantity: %d, available: %dKi." % (r.choice([10146840066, 9549128114]), r.randint(3000000, 9000000))
            msg = "The node was low on resource: ephemeral-storage. %s Container %s was using %s, request is 0, has larger consumption of ephemeral-storage. " % (q, c, used)
        else:
            msg = "The node was low on resource: memory. Threshold quantity: 100Mi, available: %dKi. Container %s was using %dKi, request is %s, has larger consumption of memory. " % (
                r.randint(60000, 99000), c, r.randint(900000, 3900000), r.choice(["256Mi", "512Mi", "128Mi", "0"]))
        if r.random() < 0.5:
            msg = msg.rstrip()
        sim.ev1(t, sim.inv_pod(p), "Evicted", msg, "Warning", host=N, sig=True)
        sim.ev1(t + 0.1, sim.inv_pod(p, "spec.containers{%s}" % c), "Killing", "Stopping container %s" % c, host=N, sig=True)
        p.phase = "Failed"
        p.reason = "Evicted"
        p.message = msg.rstrip()
        p.cs[c]["state"] = {"terminated": {"exitCode": 137, "reason": "Error", "startedAt": iso(p.started), "finishedAt": iso(t + 2),
                                           "containerID": "containerd://" + p.cs[c]["cid"]}}
        p.cs[c]["ready"] = False
        p.cs[c]["started"] = False
        p.ready = False
        p.ready_t = t
        p.alive[1] = t
        sim.pod_rec(t + r.uniform(0.2, 1.0), p, sig=True)
        sim.pod_rec(t + r.uniform(2.1, 4.0), p, sig=True)
        must.append(k(p))
        a = p.app
        may += ["%s/%s" % (a.ns, a.name), "%s/%s" % (a.ns, a.rs)]
        # replacement on another node
        name = "%s-%s" % (a.rs, rand_hash(r, 5))
        np_ = new_pod(sim, a.ns, name, r.choice([w for w in sim.workers if w != N]), ("ReplicaSet", a.rs), [(a.container, a.image)], dict(p.labels), t + 0.4, app=a)
        sim.ev1(t + 0.3, sim.inv("ReplicaSet", a.ns, a.rs, "apps/v1"), "SuccessfulCreate", "Created pod: %s" % name, component="replicaset-controller", sig=True)
        start_pod(sim, np_, t + 0.4, sig=True)
        may.append(k(np_))
        t += r.uniform(4, 25)
    node_change(sim, T1, n, off, sig=True)
    sim.ev1(T1 + 0.4, ninv, "NodeHasNoDiskPressure" if res == "disk" else "NodeHasSufficientMemory",
            "Node %s status is now: %s" % (N, "NodeHasNoDiskPressure" if res == "disk" else "NodeHasSufficientMemory"), host=N, sig=True)
    title = ["DiskPressure", "ephemeral-storage"] if res == "disk" else ["MemoryPressure", "memory"]
    return [{"what": "%s on %s: %d pods evicted" % (cond, N, len(must)), "root": {"kinds": ["Node"], "name_regex": "^%s$" % N.replace(".", r"\.")},
             "title_any": title, "affected_must": must, "affected_may": may, "max_false_affected": 3, "_tag": "root", "max_detect_seconds": 120}]


def f_cni(sim, start=None, node=None):
    r = sim.rng
    c = sim.cni
    N = node or r.choice(sim.workers)
    cp = sim.cni_pods[N]
    T0 = start or sim.t0 + r.uniform(7, 13) * 60
    T1 = sim.t_end + 10 if r.random() < 0.6 else T0 + r.uniform(14, 20) * 60
    sim.avoid_node.append((T0 - 30, sim.t_end, N))
    nv = r.randint(4, 7)
    victims_apps = reserve_apps(sim, nv - 1, distinct_ns=False)
    cj = r.choice(sim.crons)
    cj["reserved"] = True
    yield
    plug = c["plugin"]
    if sim.cni_name == "calico":
        fatal = [lambda t: '%s [ERROR][9] startup/startup.go 158: failed to query kubeadm\'s config map error=Get "https://%s.0.1:443/api/v1/namespaces/kube-system/configmaps/kubeadm-config?timeout=2s": dial tcp %s.0.1:443: i/o timeout' % (
            datetime.datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%d %H:%M:%S.000"), ".".join(sim.dns_ip.split(".")[:2]), ".".join(sim.dns_ip.split(".")[:2])),
            lambda t: "%s [WARNING][9] startup/utils.go 48: Terminating" % datetime.datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%d %H:%M:%S.001")]
        sand = 'plugin type="calico" failed (add): stat /var/lib/calico/nodename: no such file or directory: check that the calico/node container is running and has mounted /var/lib/calico/'
    elif sim.cni_name == "cilium":
        fatal = [lambda t: 'level=fatal msg="failed to start: daemon creation failed: error while initializing daemon: failed while reinitializing datapath: failed to setup vxlan tunnel device: setting up vxlan device: creating vxlan device: address already in use" subsys=daemon']
        sand = 'plugin type="cilium-cni" name="cilium" failed (add): unable to connect to Cilium daemon: failed to create cilium agent client after 30.000000 seconds timeout: Get "http:///var/run/cilium/cilium.sock/v1/config": dial unix /var/run/cilium/cilium.sock: connect: no such file or directory\nIs the agent running?'
    else:
        fatal = [lambda t: '%s       1 main.go:335] Error registering network: failed to acquire lease: node "%s" pod cidr not assigned' % (klog_ts(t, "E"), N),
                 lambda t: "%s       1 main.go:523] Stopping shutdownHandler..." % klog_ts(t)]
        sand = "plugin type=\"flannel\" failed (add): failed to load flannel 'subnet.env' file: open /run/flannel/subnet.env: no such file or directory. Check the flannel pod log for this node."
    sim.tag = "root"
    crashloop(sim, cp, T0, T1, reason="Error", exit_code=1, fatal=fatal, run_for=(3, 15))
    sim.tag = None
    crash_alert(sim, cp, T0)
    if sim.cni_name == "calico":
        us = Series(sim, sim.inv_pod(cp, "spec.containers{calico-node}"), "Unhealthy", "Warning", "kubelet", N)
        sim.repeat(us, T0 + r.uniform(5, 15), T1, "Readiness probe failed: calico/node is not ready: BIRD is not ready: Error querying BIRD: unable to connect to BIRDv4 socket: dial unix /var/run/calico/bird.ctl: connect: connection refused", period=30, skip=0.4)
    if T1 < sim.t_end:
        recover_pod(sim, cp, T1)
    must, may = [], [N, "%s/%s" % (c["ns"], c["ds"])]

    def victim(p, t):
        p.sandbox = False
        sim.pod_rec(t, p, "ADDED", sig=True)
        sim.ev1(p.sched_t, sim.inv_pod(p), "Scheduled", "Successfully assigned %s/%s to %s" % (p.ns, p.name, N),
                component="default-scheduler", host="default-scheduler", api="series", action="Binding", sig=True)
        sim.pod_rec(p.sched_t + 0.3, p, sig=True)
        times = backoff_times(sim, p.sched_t + r.uniform(1, 4), T1, first=r.uniform(8, 15), growth=1.25, cap=r.choice([60, 120]), jitter=0.3)
        aggregated(sim, sim.inv_pod(p), "FailedCreatePodSandBox", times,
                   lambda t: 'Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox "%s": %s' % (sim.hexid(64), sand),
                   "kubelet", N)
        must.append(k(p))
        if T1 < sim.t_end:
            p.sandbox = True
            tr = T1 + r.uniform(10, 40)
            p.set_running(tr, ready=True)
            p.alive[0] = tr
            sim.pod_rec(tr, p, sig=True)
    ts = [T0 + r.uniform(15, 50)] + sorted(T0 + r.uniform(60, 700) for _ in victims_apps[1:])
    for a, t in zip(victims_apps, ts):
        new_rs, new_hash, rinv = blocked_rollout_start(sim, a, t)
        name = "%s-%s" % (new_rs, rand_hash(r, 5))
        labels = dict(a.pods[0].labels)
        labels["pod-template-hash"] = new_hash
        p = new_pod(sim, a.ns, name, N, ("ReplicaSet", new_rs), [(a.container, a.image)], labels, t + 0.2, app=a)
        sim.ev1(t + 0.1, rinv, "SuccessfulCreate", "Created pod: %s" % name, component="replicaset-controller", sig=True)
        victim(p, t + 0.2)
        may += ["%s/%s" % (a.ns, a.name), "%s/%s" % (a.ns, new_rs)]

    def cblock(jinv, job, t):
        pname = "%s-%s" % (job, rand_hash(r, 5))
        p = new_pod(sim, cj["ns"], pname, N, ("Job", job), [(cj["container"], cj["image"])], {"job-name": job}, t, role="job")
        sim.ev1(t, jinv, "SuccessfulCreate", "Created pod: %s" % pname, component="job-controller", sig=True)
        victim(p, t)
        may.extend(["%s/%s" % (cj["ns"], job), "%s/%s" % (cj["ns"], cj["name"])])
    run_cron_with_block(sim, cj, T0 + 5, min(T0 + 600, T1), cblock)
    return [{"what": "%s agent on %s crash-looping: pod sandboxes fail there" % (c["ds"], N),
             "root": {"kinds": ["Pod", "DaemonSet"], "namespace": c["ns"], "name_regex": "^%s" % c["ds"], "node": N},
             "title_any": [plug, c["ds"], N], "affected_must": must, "affected_may": may, "max_false_affected": 3,
             "_tag": "root", "max_detect_seconds": 120}]


STS_POOL = ["elasticsearch", "minio", "clickhouse", "nats", "zookeeper", "loki", "kafka", "etcd-backup", "qdrant", "meilisearch"]


def f_provisioner(sim, which=None, start=None):
    r = sim.rng
    pv = dict(PROVISIONERS[which] if which is not None else r.choice(PROVISIONERS))
    app = App(pv["deploy"], "provisioner", pv["image"], 0, pv["ns"], replicas=1)
    app.container = pv["container"]
    app.reserved = True
    sim.deploy(app, sim.t0 - r.randint(2, 90) * 86400, role="provisioner")
    sim.used_ns.add(pv["ns"])
    T0 = start or sim.t0 + r.uniform(7, 13) * 60
    T1 = sim.t_end + 10 if r.random() < 0.6 else T0 + r.uniform(14, 20) * 60
    nss = sorted({a.ns for a in sim.apps})
    yield
    p0 = app.pods[0]
    fatal = []
    if pv["fatal"]:
        fatal = [lambda t: pv["fatal"].format(ts=iso(t), klogE=klog_ts(t, "E"), klogF=klog_ts(t, "F"))]
    sim.tag = "root"
    crashloop(sim, p0, T0, T1, reason=pv["crash"], exit_code=137 if pv["crash"] == "OOMKilled" else 1 if pv["crash"] == "Error" else 255,
              fatal=fatal, run_for=(2, 20))
    sim.tag = None
    crash_alert(sim, p0, T0)
    if T1 < sim.t_end:
        recover_pod(sim, p0, T1)
    must, may = [], app_keys(app, [pv["sc"], pv["prov"]])
    nn = len(sim.nodes)
    fs_msg = "0/%d nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/%d nodes are available: %d Preemption is not helpful for scheduling." % (nn, nn, nn)
    ep_msg = "Waiting for a volume to be created either by the external provisioner '%s' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered." % pv["prov"]
    if pv["prov"] == "rancher.io/local-path" and r.random() < 0.5:
        ep_msg = "waiting for a volume to be created, either by external provisioner \"%s\" or manually created by system administrator" % pv["prov"]

    def pending_pod(ns, name, owner, img, cont, pvc, t, app_=None):
        p = new_pod(sim, ns, name, None, owner, [(cont, img)], {"app.kubernetes.io/name": owner[1]}, t, app=app_)
        p.unsched = ("Unschedulable", fs_msg)
        p.claims = [pvc]
        sim.pod_rec(t, p, "ADDED", sig=True)
        s = Series(sim, sim.inv_pod(p), "FailedScheduling", "Warning", "default-scheduler", "default-scheduler", api="series", action="Scheduling")
        sim.repeat(s, t + r.uniform(0.05, 0.5), T1, fs_msg, period=r.uniform(5, 12), growth=2.0, max_period=300, skip=0.2)
        sim.pod_rec(t + r.uniform(0.6, 1.2), p, sig=True)
        must.append(k(p))
        return p

    def pvc(ns, name, t):
        inv = sim.inv("PersistentVolumeClaim", ns, name, "v1")
        s = Series(sim, inv, "ExternalProvisioning", "Normal", "persistentvolume-controller")
        sim.repeat(s, t + r.uniform(0.1, 1), T1, ep_msg, period=15, jitter=0.05, skip=0.8, growth=1.0)
        must.append("%s/%s" % (ns, name))
    t = T0 + r.uniform(20, 50)
    used = set()
    for i in range(r.randint(2, 3)):
        nm = r.choice([x for x in STS_POOL if x not in used])
        used.add(nm)
        ns = r.choice(nss)
        sinv = sim.inv("StatefulSet", ns, nm, "apps/v1")
        img = "docker.io/bitnami/%s:%s" % (nm, r.choice(["8.13.4", "2024.5.1", "3.7.0"]))
        for j in range(r.randint(1, 2)):
            claim = "data-%s-%d" % (nm, j)
            sim.ev1(t, sinv, "SuccessfulCreate", "create Claim %s Pod %s-%d in StatefulSet %s success" % (claim, nm, j, nm), component="statefulset-controller", sig=True)
            pvc(ns, claim, t + 0.05)
            sim.ev1(t + 0.1, sinv, "SuccessfulCreate", "create Pod %s-%d in StatefulSet %s successful" % (nm, j, nm), component="statefulset-controller", sig=True)
            pending_pod(ns, "%s-%d" % (nm, j), ("StatefulSet", nm), img, nm, claim, t + 0.15)
            may.append("%s/%s" % (ns, nm))
            t += r.uniform(2, 10)
        t += r.uniform(60, 300)
    return [{"what": "dynamic provisioner %s (%s) down: PVCs stay Pending, pods unschedulable" % (pv["prov"], pv["deploy"]),
             "root": {"kinds": ["Pod", "Deployment", "StatefulSet", "StorageClass", "Provisioner"], "name_regex": pv["regex"]},
             "title_any": [pv["prov"], pv["deploy"], pv["sc"]], "affected_must": must, "affected_may": may, "max_false_affected": 3,
             "_tag": "root", "max_detect_seconds": 120}]


def x509_line(sim, p, t, url, not_after):
    r = sim.rng
    lang = p.app.lang
    d = datetime.datetime.fromtimestamp(int(t), UTC)
    cur = iso(t)
    na = iso(not_after)
    if lang == "go" or (lang in ("node", "ruby") and r.random() < 0.3):
        err = 'Post "%s": tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time %s is after %s' % (url, cur, na)
        return json.dumps({"level": "error", "ts": iso(t, 3), "caller": "client/upstream.go:%d" % r.randint(60, 200), "msg": "upstream request failed", "error": err}, separators=(",", ":"))
    if lang == "java":
        return "%s.%03d ERROR 1 --- [http-nio-8080-exec-%d] c.a.client.UpstreamClient : call failed: javax.net.ssl.SSLHandshakeException: PKIX path validation failed: java.security.cert.CertPathValidatorException: validity check failed" % (
            d.strftime("%Y-%m-%d %H:%M:%S"), int((t % 1) * 1000), r.randint(1, 9))
    if lang == "python":
        return "%s,%03d ERROR [app.client] ssl.SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired (_ssl.c:1006)" % (
            d.strftime("%Y-%m-%d %H:%M:%S"), int((t % 1) * 1000))
    if lang == "node":
        return json.dumps({"level": 50, "time": int(t * 1000), "pid": 1, "hostname": p.name, "msg": "upstream request failed",
                           "err": {"type": "Error", "message": "certificate has expired", "code": "CERT_HAS_EXPIRED"}}, separators=(",", ":"))
    if lang == "dotnet":
        return "fail: %s.UpstreamClient[0] System.Net.Http.HttpRequestException: The SSL connection could not be established, see inner exception. ---> System.Security.Authentication.AuthenticationException: The remote certificate is invalid because of errors in the certificate chain: NotTimeValid" % p.app.name.title().replace("-", "")
    return "E, [%s #1] ERROR -- : OpenSSL::SSL::SSLError: SSL_connect returned=1 errno=0 peeraddr=%s:443 state=error: certificate verify failed (certificate has expired)" % (iso(t, 6)[:-1], client_ip(sim))


def f_cert(sim, issuer="acme", start=None):
    r = sim.rng
    cm = App("cert-manager", "certmgr", "quay.io/jetstack/cert-manager-controller:v1.14.5", 9402, "cert-manager", replicas=1)
    cm.container = "cert-manager-controller"
    cm.reserved = True
    sim.deploy(cm, sim.t0 - r.randint(10, 90) * 86400, role="certmgr")
    sim.used_ns.add("cert-manager")
    server = reserve_apps(sim, 1, langs=("go", "java", "node", "dotnet", "python"))[0]
    server.log_weight = 1.5
    clients = reserve_apps(sim, r.randint(5, 7), langs=("go", "go", "python", "java", "node", "dotnet", "ruby"), distinct_ns=False)
    clients = [c for c in clients if c is not server]
    T0 = start or sim.t0 + r.uniform(7, 13) * 60
    not_after = math.floor(T0 + r.uniform(40, 80))
    cert = "%s-tls" % server.name
    secret = r.choice([cert, "%s-cert" % server.name])
    iname = {"acme": r.choice(["letsencrypt-prod", "letsencrypt"]), "ca": r.choice(["internal-ca", "acme-root-ca"]),
             "vault": r.choice(["vault-issuer", "vault-pki"])}[issuer]
    ikind = "Issuer" if issuer == "ca" else "ClusterIssuer"
    domain = "%s.%s" % (server.name, r.choice(["acme.io", "example.net", "corp.internal"]))
    yield
    ns = server.ns
    cinv = sim.inv("Certificate", ns, cert, "cert-manager.io/v1")
    rev = r.randint(3, 30)
    cr = "%s-%d" % (cert, rev)
    crinv = sim.inv("CertificateRequest", ns, cr, "cert-manager.io/v1")
    sched = datetime.datetime.fromtimestamp(int(not_after - 30 * 86400 / 3), UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")
    if issuer == "acme":
        why = 'Failed to wait for order resource "%s-%d" to become ready: order is in "errored" state: Failed to create Order: 429 urn:ietf:params:acme:error:rateLimited: Error creating new order :: too many certificates already issued for exact set of domains: %s: see https://letsencrypt.org/docs/rate-limits/' % (cr, r.randint(10 ** 9, 4 * 10 ** 9), domain)
    elif issuer == "ca":
        why = 'Error getting keypair for CA issuer: secrets "%s-key-pair" not found' % iname
    else:
        why = "Vault failed to sign certificate: failed to sign certificate by vault: Error making API request.\n\nURL: PUT https://vault.vault.svc:8200/v1/pki_int/sign/%s\nCode: 403. Errors:\n\n* permission denied" % domain.split(".")[1]
    sim.tag = "root"
    iss = Series(sim, cinv, "Issuing", "Normal", "cert-manager-certificates-trigger")
    iss.first = T0 - r.randint(3, 10) * 86400
    iss.count = r.randint(4, 12)
    sim.ev(T0, iss, "Renewing certificate as renewal was scheduled at %s" % sched, sig=True)
    sim.tag = None
    sim.ev1(T0 + 0.1, cinv, "Reused", 'Reusing private key stored in existing Secret resource "%s"' % secret, component="cert-manager-certificates-key-manager", sig=True)
    sim.ev1(T0 + 0.3, cinv, "Requested", 'Created new CertificateRequest resource "%s"' % cr, component="cert-manager-certificates-request-manager", sig=True)
    for rs in ("cert-manager-certificaterequests-approver",):
        sim.ev1(T0 + 0.4, crinv, "cert-manager.io", "Certificate request has been approved by cert-manager.io", component=rs, sig=True)
    if issuer == "ca":
        iinv = sim.inv("Issuer", ns, iname, "cert-manager.io/v1")
        s = Series(sim, iinv, "ErrGetKeyPair", "Warning", "cert-manager-issuers")
        sim.repeat(s, T0 + 0.5, sim.t_end, why, period=60, growth=1.5, max_period=300)
    fl = Series(sim, cinv, "Failed", "Warning", "cert-manager-certificates-issuing")
    sim.repeat(fl, T0 + r.uniform(2, 8), sim.t_end, "The certificate request has failed to complete and will be retried: %s" % why, period=60, growth=2, max_period=600, skip=0.1)
    cmp = cm.pods[0]
    t = T0 + 1
    while t < sim.t_end:
        sim.log(t, cmp, '%s       1 controller.go:167] "re-queuing item due to error processing" err="%s" logger="cert-manager.certificaterequests-issuer-%s" key="%s/%s"' % (
            klog_ts(t, "E"), why.split("\n")[0].replace('"', '\\"'), issuer, ns, cr), stream="stderr", sig=True)
        t += r.uniform(60, 240)
    url_in = "https://%s.%s.svc:%d/v1/%s" % (server.name, ns, server.port, r.choice(["charge", "quote", "sync", "events"]))
    must, may = [], app_keys(server, ["%s/%s" % (ns, cert), "%s/%s" % (ns, secret), "%s/%s" % (ns, cr), iname, "%s/%s" % (ns, iname)]) + app_keys(cm)
    first = True
    for a in clients:
        for p in a.pods[:1 if r.random() < 0.7 else 2]:
            t = not_after + (r.uniform(1, 15) if first else r.uniform(5, 180))
            first = False
            url = url_in if r.random() < 0.6 else "https://%s/api/v2/%s" % (domain, r.choice(["orders", "status"]))
            while t < sim.t_end:
                sim.log(t, p, x509_line(sim, p, t, url, not_after), stream="stderr", sig=True)
                t += r.uniform(30, 120)
            must.append(k(p))
            may += ["%s/%s" % (a.ns, a.name), "%s/%s" % (a.ns, a.rs)]
    t = not_after + r.uniform(1, 5)
    sp = server.pods[0]
    while t < sim.t_end:
        sim.log(t, sp, "%s http: TLS handshake error from %s:%d: remote error: tls: bad certificate" % (
            datetime.datetime.fromtimestamp(int(t), UTC).strftime("%Y/%m/%d %H:%M:%S"), client_ip(sim), r.randint(30000, 60000)), stream="stderr", sig=True)
        t += r.uniform(30, 90)
    return [{"what": "certificate %s/%s (issuer %s %s) not renewed and expired; TLS clients fail with x509 expired" % (ns, cert, ikind, iname),
             "root": [{"kinds": ["Certificate", "Secret", "Pod", "Deployment", "CertificateRequest"], "namespace": ns, "name_regex": "^%s" % server.name},
                      {"kinds": ["Issuer", "ClusterIssuer"], "namespace": [ns, None], "name_regex": "^%s$" % iname}],
             "title_any": [cert, "expired", "x509"], "affected_must": must, "affected_may": may, "max_false_affected": 3,
             "_tag": "root", "max_detect_seconds": 120}]


def f_etcd(sim, start=None):
    r = sim.rng
    T0 = start or sim.t0 + r.uniform(8, 14) * 60
    T1 = T0 + r.uniform(8, 14) * 60
    yield
    cps = sim.cps
    ids = {n: sim.hexid(16) for n in cps}
    slow = cps[0]
    leader = slow
    ep = sim.cp_pods[("etcd", slow)]
    peers = [c for c in cps if c != slow]

    def j(t, **kw):
        d = {"level": kw.pop("level", "warn"), "ts": iso(t, 6).replace("Z", "Z"), "caller": kw.pop("caller")}
        d.update(kw)
        return json.dumps(d, separators=(",", ":"))
    keys = ["/registry/leases/kube-node-lease/%s" % w for w in sim.workers] + ["/registry/leases/kube-system/kube-controller-manager",
                                                                             "/registry/pods/%s/" % sim.apps[0].ns, "/registry/events/"]
    t = T0
    sim.tag = "root"
    sim.log(t, ep, j(t, caller="wal/wal.go:805", msg="slow fdatasync", took="%.9fs" % r.uniform(1.1, 3.5), **{"expected-duration": "1s"}), stream="stderr", sig=True)
    sim.tag = None
    must, may = [], [k(p) for p in sim.cp_pods.values()] + cps
    term = r.randint(3, 9)
    while t < T1:
        x = r.random()
        if x < 0.45:
            sim.log(t, ep, j(t, caller="etcdserver/util.go:170", msg="apply request took too long", took="%.9fs" % r.uniform(0.2, 4.5),
                              **{"expected-duration": "100ms", "prefix": r.choice(["read-only range ", ""]),
                                 "request": 'key:"%s" ' % r.choice(keys), "response": "", "error": "context deadline exceeded"}), stream="stderr", sig=True)
        elif x < 0.7:
            sim.log(t, ep, j(t, caller="wal/wal.go:805", msg="slow fdatasync", took="%.9fs" % r.uniform(1.1, 6), **{"expected-duration": "1s"}), stream="stderr", sig=True)
        elif x < 0.85 and leader == slow:
            sim.log(t, ep, j(t, caller="etcdserver/raft.go:416", msg="leader failed to send out heartbeat on time; took too long, leader is overloaded likely from slow disk",
                              **{"to": ids[r.choice(peers)], "heartbeat-interval": "100ms", "expected-duration": "200ms", "exceeded-duration": "%.6fms" % r.uniform(100, 2000)}), stream="stderr", sig=True)
        else:
            term += 1
            new = r.choice(cps)
            for c in cps:
                sim.log(t + r.uniform(0, 0.3), sim.cp_pods[("etcd", c)], json.dumps({"level": "info", "ts": iso(t, 6), "logger": "raft", "caller": "etcdserver/zap_raft.go:77",
                                                                                     "msg": "raft.node: %s changed leader from %s to %s at term %d" % (ids[c], ids[leader], ids[new], term)}, separators=(",", ":")), stream="stderr", sig=True)
            leader = new
        t += r.uniform(2, 12)
    # apiservers
    for c in cps:
        ap = sim.cp_pods[("kube-apiserver", c)]
        t = T0 + r.uniform(2, 20)
        n = 0
        while t < T1 + 20:
            m = r.choice(['%s       1 status.go:71] apiserver received an error that is not an metav1.Status: &errors.errorString{s:"etcdserver: request timed out"}: etcdserver: request timed out' % klog_ts(t, "E"),
                          '%s       1 status.go:71] apiserver received an error that is not an metav1.Status: rpctypes.EtcdError{code:0xe, desc:"etcdserver: request timed out"}: etcdserver: request timed out' % klog_ts(t, "E"),
                          '%s       1 writers.go:122] apiserver was unable to write a JSON response: http: Handler timeout' % klog_ts(t, "E")])
            sim.log(t, ap, m, stream="stderr", sig=True)
            n += 1
            t += r.uniform(4, 25)
        if n:
            must.append(k(ap))
    # controllers lose their lease
    for comp in ("kube-controller-manager", "kube-scheduler"):
        c = r.choice(cps)
        p = sim.cp_pods[(comp, c)]
        t = T0 + r.uniform(30, 120)
        sim.log(t, p, "%s       1 leaderelection.go:332] error retrieving resource lock kube-system/%s: the server was unable to return a response in the time allotted, but may still be processing the request (get leases.coordination.k8s.io %s)" % (
            klog_ts(t, "E"), comp, comp), stream="stderr", sig=True)
        t += r.uniform(5, 10)
        sim.log(t, p, "%s       1 leaderelection.go:285] failed to renew lease kube-system/%s: timed out waiting for the condition" % (klog_ts(t), comp), stream="stderr", sig=True)
        sim.log(t + 0.01, p, '%s       1 %s.go:%d] "leaderelection lost"' % (klog_ts(t + 0.01, "E"), "controllermanager" if comp.endswith("manager") else "server", r.randint(200, 300)), stream="stderr", sig=True)
        crashloop(sim, p, t + 0.2, t + 30, reason="Error", exit_code=1, run_for=(40, 60))
        recover_pod(sim, p, t + r.uniform(12, 25))
        other = r.choice([x for x in cps if x != c] or cps)
        sim.ev1(t + r.uniform(15, 40), sim.inv("Lease", "kube-system", comp, "coordination.k8s.io/v1"), "LeaderElection",
                "%s_%s became leader" % (other, sim.uid()), component=comp, sig=True)
    if T0 + 300 < sim.t_end:
        sim.alert_repeat("etcdHighFsyncDurations", {"job": "etcd", "instance": "%s:2379" % sim.nodes[slow].ip},
                         "etcd cluster 99th percentile fsync durations are too high.",
                         'etcd cluster "etcd": 99th percentile fsync durations are %.2fs on etcd instance %s:2379.' % (r.uniform(1.1, 3), sim.nodes[slow].ip),
                         T0 + 600, until=T1 + 300)
    return [{"what": "etcd member on %s has a slow disk: slow fdatasync, leader changes, apiserver request timeouts" % slow,
             "root": {"kinds": ["Pod", "Component", "StatefulSet"], "namespace": ["kube-system", None], "name_regex": "^etcd"},
             "title_any": ["fdatasync", "took too long", "slow disk", "etcdserver", "leader"], "affected_must": must, "affected_may": may,
             "max_false_affected": 3, "_tag": "root", "max_detect_seconds": 120}]


QUOTA_POOL = ["compute-resources", "team-quota", "mem-cpu-quota", "default-quota", "resource-limits", "ns-quota"]


def f_quota(sim, res="memory", start=None, ns=None):
    r = sim.rng
    taken = {a.ns for a in sim.apps if a.reserved}
    nss = sorted({a.ns for a in sim.apps if not a.reserved} - taken)
    if not ns and not nss:
        ns = sim.ns_pick(1)[0]
    ns = ns or r.choice(nss)
    apps = [a for a in sim.apps if a.ns == ns and not a.reserved]
    while len(apps) < 2:
        apps.append(add_app(sim, ns))
    for a in apps:
        a.reserved = True
    quota = r.choice(QUOTA_POOL)
    if quota == "ns-quota":
        quota = "%s-quota" % ns
    T0 = start or sim.t0 + r.uniform(7, 13) * 60
    T1 = sim.t_end + 10 if r.random() < 0.6 else T0 + r.uniform(15, 22) * 60
    sim.block_create.append((T0, T1, ns))
    cj = cj_by_ns(sim, ns)
    cj["reserved"] = True
    cj["every"] = r.choice([5, 10])
    yield
    if res == "memory":
        tail = lambda: "requested: limits.memory=%s, used: limits.memory=%s, limited: limits.memory=%s" % (
            r.choice(["512Mi", "1Gi", "768Mi"]), r.choice(["3840Mi", "3584Mi", "15872Mi"]), r.choice(["4Gi", "16Gi"]))
    elif res == "cpu":
        tail = lambda: "requested: requests.cpu=500m, used: requests.cpu=%s, limited: requests.cpu=%s" % (r.choice(["7800m", "3900m"]), r.choice(["8", "4"]))
    else:
        tail = lambda: "requested: pods=1, used: pods=%d, limited: pods=%d" % ((20,) * 2 if r.random() < 0.5 else (30,) * 2)
    tl = tail()
    must, may = [], [ns]

    def msg_for(podprefix):
        return lambda t: 'Error creating: pods "%s-%s" is forbidden: exceeded quota: %s, %s' % (podprefix, rand_hash(r, 5), quota, tl)
    sim.tag = "root"
    first = True
    for i, a in enumerate(apps[:r.randint(2, 3)]):
        t = T0 + (0 if first else r.uniform(30, 600))
        if first or r.random() < 0.5:
            new_rs, new_hash, rinv = blocked_rollout_start(sim, a, t)
            # the first FailedCreate is the first record of the condition
            times = backoff_times(sim, t + 0.05, T1, first=1.0, growth=2.0, cap=r.choice([300, 600]))
            aggregated(sim, rinv, "FailedCreate", times, msg_for(new_rs), "replicaset-controller")
            must.append("%s/%s" % (ns, new_rs))
        else:
            # an HPA scale-up on the current ReplicaSet
            hinv = sim.inv("HorizontalPodAutoscaler", ns, a.name, "autoscaling/v2")
            sim.ev1(t, hinv, "SuccessfulRescale", "New size: %d; reason: cpu resource utilization (percentage of request) above target" % (a.replicas + 2),
                    component="horizontal-pod-autoscaler", sig=True)
            sim.ev1(t + 0.1, sim.inv("Deployment", ns, a.name, "apps/v1"), "ScalingReplicaSet", "Scaled up replica set %s to %d from %d" % (a.rs, a.replicas + 2, a.replicas),
                    component="deployment-controller", sig=True)
            rinv = sim.inv("ReplicaSet", ns, a.rs, "apps/v1")
            times = backoff_times(sim, t + 0.2, T1, first=1.0, growth=2.0, cap=600)
            aggregated(sim, rinv, "FailedCreate", times, msg_for(a.rs), "replicaset-controller")
            must.append("%s/%s" % (ns, a.rs))
        if first:
            sim.tag = None
        first = False
        may += app_keys(a)

    def jblock(jinv, job, t):
        times = backoff_times(sim, t, min(T1, t + 900), first=1.0, growth=2.0, cap=360)
        aggregated(sim, jinv, "FailedCreate", times, msg_for(job), "job-controller")
        must.append("%s/%s" % (ns, job))
    run_cron_with_block(sim, cj, T0 + 20, T1, jblock)
    may.append("%s/%s" % (ns, cj["name"]))
    return [{"what": "ResourceQuota %s/%s exhausted: pod creation forbidden in %s" % (ns, quota, ns),
             "root": [{"kinds": ["ResourceQuota"], "namespace": ns, "name_regex": "^%s$" % quota},
                      {"kinds": ["Namespace"], "namespace": [ns, None], "name_regex": "^%s$" % ns}],
             "title_any": [quota, "exceeded quota"], "affected_must": must, "affected_may": may, "max_false_affected": 3,
             "_tag": "root", "max_detect_seconds": 120}]


def f_rollout(sim, mode="crash", start=None):
    r = sim.rng
    app = reserve_apps(sim, 1, langs=("go", "java", "python", "node", "dotnet", "ruby"))[0]
    app.replicas = r.choice([3, 4])
    # grow to the new replica count before the stream starts
    while len(app.pods) < app.replicas:
        p0 = app.pods[0]
        p = sim.mk_pod(app.ns, "%s-%s" % (app.rs, rand_hash(r, 5)), r.choice(sim.workers), p0.owner, p0.containers, dict(p0.labels), p0.created, app)
        app.pods.append(p)
    T0 = start or sim.t0 + r.uniform(8, 14) * 60
    yield
    new_rs, new_hash, rinv = None, None, None
    new_hash = rand_hash(r, len(app.rs.rsplit("-", 1)[1]))
    new_rs = "%s-%s" % (app.name, new_hash)
    dinv = sim.inv("Deployment", app.ns, app.name, "apps/v1")
    rinv = sim.inv("ReplicaSet", app.ns, new_rs, "apps/v1")
    tag = app.image.rsplit(":", 1)[1]
    bad_tag = r.choice(["v%d.%d.%d" % (r.randint(1, 4), r.randint(0, 20), r.randint(0, 9)), "2026.%02d.%d" % (r.randint(1, 12), r.randint(1, 9)), "sha-%s" % sim.hexid(7)])
    img = app.image.rsplit(":", 1)[0] + ":" + bad_tag
    sim.tag = "root"
    sim.ev1(T0, dinv, "ScalingReplicaSet", "Scaled up replica set %s to 1" % new_rs, component="deployment-controller", sig=True)
    sim.tag = None
    news = [1]
    if app.replicas == 4:
        sim.ev1(T0 + 0.05, dinv, "ScalingReplicaSet", "Scaled down replica set %s to 3 from 4" % app.rs, component="deployment-controller", sig=True)
        sim.ev1(T0 + 0.1, dinv, "ScalingReplicaSet", "Scaled up replica set %s to 2 from 1" % new_rs, component="deployment-controller", sig=True)
        o = app.pods[-1]
        sim.ev1(T0 + 0.12, sim.inv("ReplicaSet", app.ns, app.rs, "apps/v1"), "SuccessfulDelete", "Deleted pod: %s" % o.name, component="replicaset-controller", sig=True)
        stop_pod(sim, o, T0 + 0.2, sig=True)
        news.append(2)
    must, may = [], app_keys(app, ["%s/%s" % (app.ns, new_rs)])
    labels = dict(app.pods[0].labels)
    labels["pod-template-hash"] = new_hash
    for i, _ in enumerate(news):
        t = T0 + 0.2 + i * 0.1
        name = "%s-%s" % (new_rs, rand_hash(r, 5))
        p = new_pod(sim, app.ns, name, r.choice(sim.sched_nodes(t)), ("ReplicaSet", new_rs), [(app.container, img)], labels, t, app=app)
        sim.ev1(t - 0.05, rinv, "SuccessfulCreate", "Created pod: %s" % name, component="replicaset-controller", sig=True)
        must.append(k(p))
        if mode == "crash":
            start_pod(sim, p, t, pull=True, sig=True, become_ready=False)
            # it never becomes ready: first crash a few seconds after start
            lang = app.lang
            fatal = {"go": ['{"level":"fatal","ts":"%s","caller":"cmd/main.go:61","msg":"invalid configuration","error":"required key UPSTREAM_URL missing value"}' % iso(t, 3)],
                     "java": ["Exception in thread \"main\" org.springframework.beans.factory.BeanCreationException: Error creating bean with name 'dataSource': Failed to bind properties under 'spring.datasource.url'",
                              "Caused by: java.lang.IllegalStateException: Failed to load property source from location 'classpath:/application-prod.yml'"],
                     "python": ["Traceback (most recent call last):", '  File "/app/main.py", line 12, in <module>', "    DATABASE_URL = os.environ[\"DATABASE_URL\"]", "KeyError: 'DATABASE_URL'"],
                     "node": ["Error: Cannot find module '/app/dist/server.js'", "    at Module._resolveFilename (node:internal/modules/cjs/loader:1145:15)", "  code: 'MODULE_NOT_FOUND',"],
                     "dotnet": ["Unhandled exception. System.InvalidOperationException: Section 'ConnectionStrings' not found in configuration.", "   at Program.<Main>$(String[] args) in /src/Program.cs:line 23"],
                     "ruby": ["/usr/local/bundle/gems/bootsnap-1.18.3/lib/bootsnap/load_path_cache/core_ext/kernel_require.rb:30:in `require': cannot load such file -- sidekiq/web (LoadError)"]}[lang]
            p.cs[app.container]["base"] = 0
            crashloop(sim, p, p.started + r.uniform(0.5, 3), sim.t_end + 10, reason="Error", exit_code=1, fatal=fatal, start_logs=[], run_for=(0.5, 3))
            crash_alert(sim, p, T0)
        else:
            sim.pod_rec(t, p, "ADDED", sig=True)
            sim.ev1(p.sched_t, sim.inv_pod(p), "Scheduled", "Successfully assigned %s/%s to %s" % (p.ns, p.name, p.node),
                    component="default-scheduler", host="default-scheduler", api="series", action="Binding", sig=True)
            inv = sim.inv_pod(p, "spec.containers{%s}" % app.container)
            pulling = Series(sim, inv, "Pulling", "Normal", "kubelet", p.node)
            failed1 = Series(sim, inv, "Failed", "Warning", "kubelet", p.node)
            failed2 = Series(sim, inv, "Failed", "Warning", "kubelet", p.node)
            bo = Series(sim, inv, "BackOff", "Normal", "kubelet", p.node)
            failed3 = Series(sim, inv, "Failed", "Warning", "kubelet", p.node)
            repo = img.rsplit(":", 1)[0]
            if "/" in repo and "." not in repo.split("/")[0]:
                repo = "docker.io/" + repo
            pull_err = 'Failed to pull image "%s": rpc error: code = NotFound desc = failed to pull and unpack image "%s:%s": failed to resolve reference "%s:%s": %s:%s: not found' % (
                img, repo, bad_tag, repo, bad_tag, repo, bad_tag)
            tt = p.sched_t + 1
            tpull = backoff_times(sim, tt, sim.t_end, first=10, growth=2, cap=300)
            for j, tp in enumerate(tpull):
                sim.ev(tp, pulling, 'Pulling image "%s"' % img, sig=True)
                sim.ev(tp + 0.8, failed1, pull_err, sig=True)
                sim.ev(tp + 0.81, failed2, "Error: ErrImagePull", sig=True)
                set_waiting(p, "ErrImagePull", pull_err)
                if j < 4 or r.random() < 0.3:
                    sim.pod_rec(tp + 1, p, sig=True)
                nxt = tpull[j + 1] if j + 1 < len(tpull) else sim.t_end
                tb = tp + 2
                while tb < nxt - 2:
                    sim.ev(tb, bo, 'Back-off pulling image "%s"' % img, sig=True)
                    sim.ev(tb + 0.01, failed3, "Error: ImagePullBackOff", sig=True)
                    tb += r.uniform(15, 60)
                set_waiting(p, "ImagePullBackOff", 'Back-off pulling image "%s"' % img)
                sim.pod_rec(tp + 2.5, p, sig=True)
    # the Deployment's Progressing condition (an optional extension record: a Deployment watch event)
    pd = T0 + r.choice([120, 300, 600])
    if False and pd < sim.t_end and mode != "crash":  # Deployment records are an optional extension this build reports as skipped
        sim.add(pd, {"type": "MODIFIED", "observedAt": iso(pd, 6), "object": {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": app.name, "namespace": app.ns, "uid": dinv["uid"], "resourceVersion": str(r.randint(10 ** 7, 9 * 10 ** 7)), "generation": 14},
                "spec": {"replicas": app.replicas, "progressDeadlineSeconds": int(pd - T0)},
                "status": {"observedGeneration": 14, "replicas": app.replicas + 1, "updatedReplicas": len(news), "readyReplicas": app.replicas - len(news) + 1,
                           "availableReplicas": app.replicas - len(news) + 1, "unavailableReplicas": len(news),
                           "conditions": [{"type": "Available", "status": "True", "lastUpdateTime": iso(T0 - 86400), "lastTransitionTime": iso(T0 - 86400),
                                           "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."},
                                          {"type": "Progressing", "status": "False", "lastUpdateTime": iso(pd), "lastTransitionTime": iso(pd),
                                           "reason": "ProgressDeadlineExceeded", "message": 'ReplicaSet "%s" has timed out progressing.' % new_rs}]}}},
                "deploy/" + app.key if hasattr(app, "key") else "deploy/x", True)
    if T0 + 900 < sim.t_end:
        sim.alert_repeat("KubeDeploymentRolloutStuck", {"namespace": app.ns, "deployment": app.name, "condition": "Progressing", "job": "kube-state-metrics"},
                         "Deployment rollout is not progressing.", "Rollout of deployment %s/%s is not progressing for longer than 15 minutes." % (app.ns, app.name),
                         T0 + 900 + r.uniform(0, 60))
    return [{"what": "bad rollout of %s/%s (%s): new ReplicaSet %s %s; old one keeps serving" % (app.ns, app.name, bad_tag, new_rs, "crash-loops" if mode == "crash" else "cannot pull its image"),
             "root": {"kinds": ["Deployment", "ReplicaSet", "Pod"], "namespace": app.ns, "name_regex": "^%s" % app.name},
             "title_any": ([bad_tag, "CrashLoopBackOff", "crash"] if mode == "crash" else [bad_tag, "ImagePullBackOff", "ErrImagePull", "not found"]),
             "affected_must": must, "affected_may": may, "max_false_affected": 2, "_tag": "root", "max_detect_seconds": 120}]


def f_pdb(sim, tool="kured", start=None):
    r = sim.rng
    N = r.choice(sim.workers)
    n = sim.nodes[N]
    app = reserve_apps(sim, 1)[0]
    for p in app.pods:
        p.node = N
        p.ip = sim.pod_ip(N)
    blocked_pod = app.pods[0]
    pdb = r.choice(["%s-pdb" % app.name, app.name, "%s-budget" % app.name])
    others = [p for p in sim.pods.values() if p.node == N and p.app is not None and p.app is not app and not p.app.reserved][:4]
    for p in others:
        p.app.reserved = True
    if tool == "kured":
        ds_ns = r.choice(["kube-system", "kured"])
        drainer = sim.mk_pod(ds_ns, "kured-%s" % rand_hash(r, 5), N, ("DaemonSet", "kured"), [("kured", "ghcr.io/kubereboot/kured:1.15.1")],
                             {"name": "kured"}, sim.t0 - r.randint(5, 60) * 86400)
        drainer.role = "kured"
    T0 = start or sim.t0 + r.uniform(8, 14) * 60
    T1 = T0 + r.uniform(5, 9) * 60
    sim.avoid_node.append((T0 - 5, sim.t_end, N))
    yield
    ninv = {"kind": "Node", "name": N, "uid": n.uid, "apiVersion": "v1"}

    def cordon(nd):
        nd.unschedulable = True
        nd.taints = [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule", "timeAdded": iso(T0)}]
    node_change(sim, T0, n, cordon, sig=True)
    sim.ev1(T0 + 0.3, ninv, "NodeNotSchedulable", "Node %s status is now: NodeNotSchedulable" % N, host=N, sig=True)
    if tool == "kured":
        dp = drainer

        def say(t, msg, level="info"):
            kub = msg.startswith(("evicting", "error when"))
            lvl = "warning" if level == "error" else level
            sim.log(t, dp, 'time="%s" level=%s msg="%s"%s' % (iso(t), lvl, msg.replace('"', '\\"'),
                                                               (" cmd=/usr/bin/kubectl std=%s" % ("err" if level == "error" else "out")) if kub else ""),
                    stream="stderr", sig=True)
        say(T0 - 1, "Reboot required")
        say(T0 - 0.5, "Acquired reboot lock")
        say(T0 + 0.5, "Draining node %s" % N)
    else:
        jname = "apply-os-upgrade-on-%s-with-%s" % (N.split(".")[0][:30], sim.hexid(10))
        dp = new_pod(sim, "system-upgrade", "%s-%s" % (jname, rand_hash(r, 5)), N, ("Job", jname), [("drain", "rancher/kubectl:v1.29.4")],
                     {"upgrade.cattle.io/plan": "os-upgrade"}, T0 - 3, role="job")
        dp.alive = [T0 - 2, sim.t_end]
        start_pod(sim, dp, T0 - 3, pull=False, sig=True)

        def say(t, msg, level="info"):
            sim.log(t, dp, msg, stream="stderr" if "error" in msg else "stdout", sig=True)
        say(T0 + 0.2, "node/%s cordoned" % N)
        say(T0 + 0.4, "Warning: ignoring DaemonSet-managed Pods: %s/%s, kube-system/%s" % (sim.cni["ns"], sim.cni_pods[N].name,
                                                                                        [p for p in sim.pods.values() if p.node == N and p.role == "kube-proxy"][0].name))
    t = T0 + 1
    for p in others + app.pods[1:]:
        say(t, "evicting pod %s/%s" % (p.ns, p.name))
        stop_pod(sim, p, t + r.uniform(0.2, 1), sig=True)
        a = p.app
        if a.kind == "Deployment":
            np_ = new_pod(sim, a.ns, "%s-%s" % (a.rs, rand_hash(r, 5)), r.choice([w for w in sim.workers if w != N]), ("ReplicaSet", a.rs), [(a.container, a.image)],
                          dict(p.labels), t + 1, app=a)
            sim.ev1(t + 0.9, sim.inv("ReplicaSet", a.ns, a.rs, "apps/v1"), "SuccessfulCreate", "Created pod: %s" % np_.name, component="replicaset-controller", sig=True)
            start_pod(sim, np_, t + 1, sig=True)
        t += r.uniform(0.3, 2)
    bp = blocked_pod
    t = T0 + r.uniform(1, 3)
    first = True
    while t < min(T1, sim.t_end):
        if first:
            sim.tag = "root"
        say(t, "evicting pod %s/%s" % (bp.ns, bp.name))
        say(t + 0.05, 'error when evicting pods/"%s" -n "%s" (will retry after 5s): Cannot evict pod as it would violate the pod\'s disruption budget.' % (bp.name, bp.ns), "error")
        if first:
            sim.tag = None
            first = False
        t += 5 + r.uniform(0.02, 0.3)
    if T1 < sim.t_end:
        say(T1, "evicting pod %s/%s" % (bp.ns, bp.name))
        stop_pod(sim, bp, T1 + 0.5, sig=True)
    return [{"what": "drain of %s blocked: PodDisruptionBudget %s/%s refuses eviction of %s" % (N, app.ns, pdb, bp.name),
             "root": [{"kinds": ["PodDisruptionBudget", "Deployment", "StatefulSet", "Pod", "ReplicaSet"], "namespace": app.ns, "name_regex": "^%s" % app.name},
                      {"kinds": ["Node"], "name_regex": "^%s$" % N.replace(".", r"\.")}],
             "title_any": ["disruption budget", bp.name, app.name, pdb],
             "affected_must": [], "affected_may": app_keys(app, [N, k(dp), "%s/%s" % (app.ns, pdb)]),
             "max_false_affected": 3, "_tag": "root", "max_detect_seconds": 120}]


# --------------------------------------------------------------------------- near misses (normal life)

def nm_node_join(sim):
    r = sim.rng
    T = sim.t0 + r.uniform(8, 20) * 60
    _, more = node_names(r, sim.flavor_name, sim.node_count + 1)
    name = more[-1]
    if name in sim.nodes:
        name = name + "b"
    last = sim.nodes[sim.workers[-1]]
    n = Node(sim, name, ".".join(last.ip.split(".")[:-1] + [str(int(last.ip.split(".")[-1]) + 7)]), "%s.%d" % (sim.flavor["pod_net"], 90 + r.randint(0, 9)), "worker")
    n.created = T - r.uniform(2, 8)
    n.born = T
    sim.nodes[name] = n
    yield
    tr = T + r.uniform(40, 70)
    msg = "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"

    def add(nd):
        for c in ("MemoryPressure", "DiskPressure", "PIDPressure"):
            nd.conds[c][3] = T - 1
        nd.conds["Ready"] = ["False", "KubeletNotReady", msg, T - 1]
        nd.taints = [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]
        return "ADDED"

    def ready(nd):
        nd.conds["Ready"] = ["True", "KubeletReady", "kubelet is posting ready status", tr]
        nd.taints = []
    node_change(sim, T, n, add, sig=True)
    node_change(sim, T + r.uniform(8, 15), n, lambda nd: None, sig=True)
    node_change(sim, tr, n, ready, sig=True)
    ninv = {"kind": "Node", "name": name, "uid": n.uid, "apiVersion": "v1"}
    sim.ev1(T - 1.5, ninv, "Starting", "Starting kubelet.", host=name, sig=True)
    for rs, m in (("NodeHasSufficientMemory", "Node %s status is now: NodeHasSufficientMemory"), ("NodeHasNoDiskPressure", "Node %s status is now: NodeHasNoDiskPressure"),
                  ("NodeHasSufficientPID", "Node %s status is now: NodeHasSufficientPID")):
        sim.ev1(T - 1.2, ninv, rs, m % name, host=name, sig=True)
    sim.ev1(T - 1.0, ninv, "NodeAllocatableEnforced", "Updated Node Allocatable limit across pods", host=name, sig=True)
    sim.ev1(T + r.uniform(1, 5), ninv, "RegisteredNode", "Node %s event: Registered Node %s in Controller" % (name, name), component="node-controller", sig=True)
    sim.ev1(tr + 0.3, ninv, "NodeReady", "Node %s status is now: NodeReady" % name, host=name, sig=True)
    c = sim.cni
    for ds, cont, img, role in ((c["ds"], c["container"], c["image"], "cni"),
                                ("kube-proxy", "kube-proxy", "registry.k8s.io/kube-proxy:%s" % sim.flavor["ver"].split("+")[0].split("-")[0], "kube-proxy")):
        ns = c["ns"] if role == "cni" else "kube-system"
        t = T + r.uniform(2, 6)
        p = new_pod(sim, ns, "%s-%s" % (ds, rand_hash(r, 5)), name, ("DaemonSet", ds), [(cont, img)], {"k8s-app": ds}, t, role=role)
        p.host_network = True
        p.ip = n.ip
        sim.ev1(t - 0.1, sim.inv("DaemonSet", ns, ds, "apps/v1"), "SuccessfulCreate", "Created pod: %s" % p.name, component="daemonset-controller", sig=True)
        start_pod(sim, p, t, pull=True, sig=True, ready_delay=tr - t - r.uniform(3, 10) if role == "cni" else None)
    sim.workers.append(name)
    return []


def nm_reboot(sim):
    r = sim.rng
    N = r.choice(sim.workers)
    n = sim.nodes[N]
    T = sim.t0 + r.uniform(8, 15) * 60
    ds_ns = r.choice(["kube-system", "kured"])
    kp = sim.mk_pod(ds_ns, "kured-%s" % rand_hash(r, 5), N, ("DaemonSet", "kured"), [("kured", "ghcr.io/kubereboot/kured:1.15.1")], {"name": "kured"},
                    sim.t0 - r.randint(5, 60) * 86400)
    kp.role = "kured"
    vict = [p for p in sim.pods.values() if p.node == N and p.app is not None and p.role is None]
    for p in vict:
        p.app.reserved = True
    sim.avoid_node.append((T - 5, T + 600, N))
    yield
    ninv = {"kind": "Node", "name": N, "uid": n.uid, "apiVersion": "v1"}

    def say(t, msg):
        sim.log(t, kp, 'time="%s" level=info msg="%s"' % (iso(t), msg), stream="stderr", sig=True)
    say(T - 2, "Reboot required")
    say(T - 1, "Acquired reboot lock")
    node_change(sim, T, n, lambda nd: (setattr(nd, "unschedulable", True), setattr(nd, "taints", [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule", "timeAdded": iso(T)}])) and None)
    sim.ev1(T + 0.3, ninv, "NodeNotSchedulable", "Node %s status is now: NodeNotSchedulable" % N, host=N, sig=True)
    say(T + 0.5, "Draining node %s" % N)
    t = T + 1
    for p in vict:
        say(t, "evicting pod %s/%s" % (p.ns, p.name))
        stop_pod(sim, p, t + 0.3, sig=True)
        a = p.app
        if a.kind == "Deployment":
            np_ = new_pod(sim, a.ns, "%s-%s" % (a.rs, rand_hash(r, 5)), r.choice([w for w in sim.workers if w != N]), ("ReplicaSet", a.rs), [(a.container, a.image)], dict(p.labels), t + 1, app=a)
            sim.ev1(t + 0.9, sim.inv("ReplicaSet", a.ns, a.rs, "apps/v1"), "SuccessfulCreate", "Created pod: %s" % np_.name, component="replicaset-controller", sig=True)
            start_pod(sim, np_, t + 1, sig=True)
        else:
            np_ = new_pod(sim, a.ns, p.name, r.choice([w for w in sim.workers if w != N]), p.owner, p.containers, dict(p.labels), t + 8, app=a)
            start_pod(sim, np_, t + 8, sig=True)
        t += r.uniform(0.5, 3)
    tb = t + r.uniform(10, 30)
    say(tb, "Commanding reboot for node: %s" % N)
    tu = tb + r.uniform(41, 50)
    up = tb + r.uniform(120, 240)
    ds_pods = [p for p in sim.pods.values() if p.node == N and p.role in ("cni", "kube-proxy", "kured")]
    for p in ds_pods:
        p.quiet.append((tb, up + 20))

    def unknown(nd):
        nd.hb = tb
        nd.heartbeat_frozen = True
        for c in nd.conds:
            nd.conds[c] = ["Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.", tu]
        nd.taints = nd.taints + [{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule", "timeAdded": iso(tu)}]
    node_change(sim, tu, n, unknown, sig=True)
    sim.ev1(tu + 0.2, ninv, "NodeNotReady", "Node %s status is now: NodeNotReady" % N, component="node-controller", sig=True)
    for p in ds_pods:
        sim.ev1(tu + r.uniform(0.2, 1), sim.inv_pod(p), "NodeNotReady", "Node is not ready", "Warning", component="node-controller", sig=True)
        p.ready = False
        p.ready_t = tu
        sim.pod_rec(tu + r.uniform(0.5, 1.5), p, sig=True)
    newboot = sim.uid()

    def back(nd):
        nd.heartbeat_frozen = False
        nd.boot = newboot
        nd.conds = {"MemoryPressure": ["False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available", up],
                    "DiskPressure": ["False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure", up],
                    "PIDPressure": ["False", "KubeletHasSufficientPID", "kubelet has sufficient PID available", up],
                    "Ready": ["True", "KubeletReady", "kubelet is posting ready status", up + 8]}
        nd.taints = [x for x in nd.taints if x["key"] == "node.kubernetes.io/unschedulable"]
    sim.ev1(up - 5, ninv, "Starting", "Starting kubelet.", host=N, sig=True)
    sim.ev1(up - 4, ninv, "Rebooted", "Node %s has been rebooted, boot id: %s" % (N, newboot), "Warning", host=N, sig=True)
    node_change(sim, up, n, back, sig=True)
    sim.ev1(up + 8.3, ninv, "NodeReady", "Node %s status is now: NodeReady" % N, host=N, sig=True)
    for p in ds_pods:
        tt = up + r.uniform(2, 10)
        sim.ev1(tt, sim.inv_pod(p), "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.", host=N, sig=True)
        c = p.containers[0][0]
        inv = sim.inv_pod(p, "spec.containers{%s}" % c)
        sim.ev1(tt + 1, inv, "Pulled", 'Container image "%s" already present on machine' % p.containers[0][1], host=N, sig=True)
        sim.ev1(tt + 1.2, inv, "Created", "Created container %s" % c, host=N, sig=True)
        sim.ev1(tt + 1.5, inv, "Started", "Started container %s" % c, host=N, sig=True)
        st = p.cs[c]
        st["lastState"] = {"terminated": {"exitCode": 255, "reason": "Unknown", "startedAt": iso(p.started), "finishedAt": iso(tb + 5), "containerID": "containerd://" + st["cid"]}}
        st["restartCount"] += 1
        st["cid"] = sim.hexid(64)
        p.started = tt + 1.5
        p.set_running(tt + 1.5, ready=True)
        p.ready_t = tt + 4
        sim.pod_rec(tt + 4, p, sig=True)
    tun = up + r.uniform(20, 40)
    say(up + 15, "Node %s rebooted, uncordoning" % N) if False else say(up + 15, "Uncordoning node %s" % N)
    node_change(sim, tun, n, lambda nd: (setattr(nd, "unschedulable", False), setattr(nd, "taints", [])) and None)
    sim.ev1(tun + 0.3, ninv, "NodeSchedulable", "Node %s status is now: NodeSchedulable" % N, host=N, sig=True)
    say(tun + 1, "Releasing lock")
    return []


def nm_blip(sim):
    r = sim.rng
    N = r.choice(sim.workers)
    n = sim.nodes[N]
    T = sim.t0 + r.uniform(10, 25) * 60
    yield
    d = r.uniform(20, 40)
    ninv = {"kind": "Node", "name": N, "uid": n.uid, "apiVersion": "v1"}

    def unknown(nd):
        nd.hb = T - 41
        nd.heartbeat_frozen = True
        nd.saved = {c: list(v) for c, v in nd.conds.items()}
        for c in nd.conds:
            nd.conds[c] = ["Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.", T]
        nd.taints = [{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule", "timeAdded": iso(T)}]

    def back(nd):
        nd.heartbeat_frozen = False
        nd.conds = nd.saved
        nd.conds["Ready"] = ["True", "KubeletReady", "kubelet is posting ready status", T + d]
        nd.taints = []
    node_change(sim, T, n, unknown, sig=True)
    sim.ev1(T + 0.3, ninv, "NodeNotReady", "Node %s status is now: NodeNotReady" % N, component="node-controller", sig=True)
    pods = [p for p in sim.pods.values() if p.node == N and p.alive[0] < T < p.alive[1]]
    for p in pods:
        if r.random() < 0.7:
            sim.ev1(T + r.uniform(0.3, 2), sim.inv_pod(p), "NodeNotReady", "Node is not ready", "Warning", component="node-controller", sig=True)
    node_change(sim, T + d, n, back, sig=True)
    sim.ev1(T + d + 0.2, ninv, "NodeReady", "Node %s status is now: NodeReady" % N, host=N, sig=True)
    return []


def nm_probes(sim):
    r = sim.rng
    apps = reserve_apps(sim, r.randint(2, 3))
    yield
    t = sim.t0 + r.uniform(6, 10) * 60
    for a in apps:
        rollout(sim, a, t, sig=True, probe_fail=r.randint(1, 3))
        t += r.uniform(5, 12) * 60
    return []


def nm_hpa(sim):
    r = sim.rng
    a = reserve_apps(sim, 1, langs=("go", "node", "java", "python"))[0]
    a.replicas = 3
    while len(a.pods) < 3:
        p0 = a.pods[0]
        a.pods.append(sim.mk_pod(a.ns, "%s-%s" % (a.rs, rand_hash(r, 5)), r.choice(sim.workers), p0.owner, p0.containers, dict(p0.labels), p0.created, a))
    yield
    T = sim.t0 + r.uniform(8, 15) * 60
    hinv = sim.inv("HorizontalPodAutoscaler", a.ns, a.name, "autoscaling/v2")
    dinv = sim.inv("Deployment", a.ns, a.name, "apps/v1")
    rinv = sim.inv("ReplicaSet", a.ns, a.rs, "apps/v1")
    new = r.choice([5, 6])
    sim.ev1(T, hinv, "SuccessfulRescale", "New size: %d; reason: cpu resource utilization (percentage of request) above target" % new, component="horizontal-pod-autoscaler", sig=True)
    sim.ev1(T + 0.1, dinv, "ScalingReplicaSet", "Scaled up replica set %s to %d from 3" % (a.rs, new), component="deployment-controller", sig=True)
    added = []
    for i in range(new - 3):
        p = new_pod(sim, a.ns, "%s-%s" % (a.rs, rand_hash(r, 5)), r.choice(sim.workers), ("ReplicaSet", a.rs), [(a.container, a.image)], dict(a.pods[0].labels), T + 0.3, app=a)
        sim.ev1(T + 0.2, rinv, "SuccessfulCreate", "Created pod: %s" % p.name, component="replicaset-controller", sig=True)
        start_pod(sim, p, T + 0.3 + i * 0.05, sig=True)
        added.append(p)
    T2 = T + r.uniform(10, 18) * 60
    if T2 < sim.t_end - 60:
        sim.ev1(T2, hinv, "SuccessfulRescale", "New size: 3; reason: All metrics below target", component="horizontal-pod-autoscaler", sig=True)
        sim.ev1(T2 + 0.1, dinv, "ScalingReplicaSet", "Scaled down replica set %s to 3 from %d" % (a.rs, new), component="deployment-controller", sig=True)
        for p in added:
            sim.ev1(T2 + 0.2, rinv, "SuccessfulDelete", "Deleted pod: %s" % p.name, component="replicaset-controller", sig=True)
            stop_pod(sim, p, T2 + 0.3, sig=True)
    return []


def nm_oom_once(sim):
    r = sim.rng
    a = reserve_apps(sim, 1, langs=("java", "python", "node", "go"))[0]
    yield
    p = a.pods[0]
    T = sim.t0 + r.uniform(8, 25) * 60
    c, img = p.containers[0]
    st = p.cs[c]
    st["lastState"] = {"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": iso(p.started), "finishedAt": iso(T), "containerID": "containerd://" + st["cid"]}}
    st["restartCount"] = 1
    st["cid"] = sim.hexid(64)
    p.quiet.append((T - 1, T + 15))
    st["state"] = {"running": {"startedAt": iso(T + 1.2)}}
    st["ready"] = False
    p.ready = False
    p.ready_t = T
    sim.pod_rec(T + 0.4, p, sig=True)
    inv = sim.inv_pod(p, "spec.containers{%s}" % c)
    for s_reason, m, dt in (("Pulled", 'Container image "%s" already present on machine' % img, 0.5), ("Created", "Created container %s" % c, 0.8), ("Started", "Started container %s" % c, 1.2)):
        s = Series(sim, inv, s_reason, "Normal", "kubelet", p.node)
        s.first = p.started
        s.count = 1
        sim.ev(T + dt, s, m, sig=True)
    p.started = T + 1.2
    p.ready = True
    st["ready"] = True
    p.ready_t = T + r.uniform(8, 15)
    sim.pod_rec(p.ready_t, p, sig=True)
    return []


def nm_pvc_quick(sim):
    r = sim.rng
    pv = dict(r.choice(PROVISIONERS))
    app = App(pv["deploy"], "provisioner", pv["image"], 0, pv["ns"], replicas=1)
    app.container = pv["container"]
    app.reserved = True
    sim.deploy(app, sim.t0 - r.randint(2, 90) * 86400, role="provisioner")
    ns = r.choice(sorted({a.ns for a in sim.apps}))
    yield
    T = sim.t0 + r.uniform(8, 20) * 60
    nm = r.choice(STS_POOL)
    sinv = sim.inv("StatefulSet", ns, nm, "apps/v1")
    claim = "data-%s-0" % nm
    pinv = sim.inv("PersistentVolumeClaim", ns, claim, "v1")
    nn = len(sim.nodes)
    sim.ev1(T, sinv, "SuccessfulCreate", "create Claim %s Pod %s-0 in StatefulSet %s success" % (claim, nm, nm), component="statefulset-controller", sig=True)
    sim.ev1(T + 0.1, pinv, "ExternalProvisioning", "Waiting for a volume to be created either by the external provisioner '%s' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered." % pv["prov"],
            component="persistentvolume-controller", sig=True)
    sim.ev1(T + 0.2, sinv, "SuccessfulCreate", "create Pod %s-0 in StatefulSet %s successful" % (nm, nm), component="statefulset-controller", sig=True)
    pp = app.pods[0]
    sim.ev1(T + 0.4, pinv, "Provisioning", 'External provisioner is provisioning volume for claim "%s/%s"' % (ns, claim), component="%s_%s_%s" % (pv["prov"], pp.name, sim.uid()), sig=True)
    p = new_pod(sim, ns, "%s-0" % nm, r.choice(sim.workers), ("StatefulSet", nm), [(nm, "docker.io/bitnami/%s:latest" % nm)], {"app.kubernetes.io/name": nm}, T + 0.25)
    p.claims = [claim]
    fs = "0/%d nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/%d nodes are available: %d Preemption is not helpful for scheduling." % (nn, nn, nn)
    p.unsched = ("Unschedulable", fs)
    sim.pod_rec(T + 0.25, p, "ADDED", sig=True)
    sim.ev1(T + 0.3, sim.inv_pod(p), "FailedScheduling", fs, "Warning", "default-scheduler", "default-scheduler", api="series", sig=True)
    sim.ev1(T + 3.1, pinv, "ProvisioningSucceeded", "Successfully provisioned volume pvc-%s" % sim.uid(), component="%s_%s_%s" % (pv["prov"], pp.name, sim.uid()), sig=True)
    p.unsched = None
    p.sched_t = T + r.uniform(4, 6)
    sim.all_pods.remove(p)
    sim.pods.pop(p.key())
    p2 = new_pod(sim, ns, p.name, p.node, p.owner, p.containers, p.labels, T + 0.25)
    p2.uid = p.uid
    p2.claims = [claim]
    p2.sched_t = p.sched_t
    start_pod(sim, p2, p.sched_t - 0.01, sig=True, first="MODIFIED")
    return []


def nm_dns_once(sim):
    r = sim.rng
    a = reserve_apps(sim, 1, langs=("go", "python", "node", "java"))[0]
    yield
    p = a.pods[0]
    T = sim.t0 + r.uniform(8, 30) * 60
    sim.log(T, p, dns_fail_line(sim, p, T, dns_target(sim, p)), stream="stderr", sig=True)
    return []


# --------------------------------------------------------------------------- scenario table

NOISE_NOTE = ("Healthy background noise throughout: node status heartbeats, routine rollouts, CronJob runs, an occasional "
              "readiness-probe failure that recovers, the always-firing Watchdog alert, and logs from every workload (Vector and "
              "Fluent Bit shapes) including benign TLS handshake EOFs, upstream DNS i/o timeouts in CoreDNS and unresolvable client IPs.")

SCENARIOS = [
    # name, failures, options
    ("webhook-oom-connection-refused", [(f_webhook, dict(err="refused", crash="OOMKilled"))], {}),
    ("webhook-crashloop-no-endpoints", [(f_webhook, dict(err="noendpoints", crash="Error"))], {}),
    ("webhook-oom-deadline-exceeded", [(f_webhook, dict(err="deadline", crash="OOMKilled"))], {}),
    ("dns-coredns-oomkilled", [(f_dns, dict(crash="OOMKilled"))], {}),
    ("dns-coredns-loop-crash", [(f_dns, dict(crash="loop"))], dict(flavor="homelab")),
    ("node-diskpressure-evictions", [(f_pressure, dict(res="disk"))], {}),
    ("node-memorypressure-evictions", [(f_pressure, dict(res="memory"))], {}),
    ("cni-calico-node-down", [(f_cni, {})], dict(cni="calico", flavor="kubeadm")),
    ("cni-cilium-agent-down", [(f_cni, {})], dict(cni="cilium", flavor="aks")),
    ("cni-flannel-down", [(f_cni, {})], dict(cni="flannel", flavor="k3s")),
    ("provisioner-local-path-down", [(f_provisioner, dict(which=0))], dict(flavor="k3s")),
    ("provisioner-ebs-csi-down", [(f_provisioner, dict(which=1))], dict(flavor="eks")),
    ("provisioner-openebs-oom", [(f_provisioner, dict(which=2))], dict(flavor="homelab")),
    ("cert-expired-acme-ratelimit", [(f_cert, dict(issuer="acme"))], {}),
    ("cert-expired-ca-keypair-missing", [(f_cert, dict(issuer="ca"))], {}),
    ("cert-expired-vault-denied", [(f_cert, dict(issuer="vault"))], {}),
    ("etcd-slow-disk", [(f_etcd, {})], dict(flavor="kubeadm", n_cp=3, max_incidents=2)),
    ("quota-memory-exhausted", [(f_quota, dict(res="memory"))], {}),
    ("quota-pods-exhausted", [(f_quota, dict(res="pods"))], {}),
    ("quota-cpu-exhausted", [(f_quota, dict(res="cpu"))], {}),
    ("rollout-crashloop", [(f_rollout, dict(mode="crash"))], {}),
    ("rollout-image-not-found", [(f_rollout, dict(mode="image"))], {}),
    ("pdb-blocks-kured-drain", [(f_pdb, dict(tool="kured"))], {}),
    ("pdb-blocks-upgrade-drain", [(f_pdb, dict(tool="kubectl"))], {}),
    # two independent failures overlapping in time
    ("combo-dns-and-diskpressure", [(f_dns, {}), (f_pressure, dict(res="disk"))], dict(stagger=True)),
    ("combo-webhook-and-quota", [(f_webhook, dict(err="noendpoints", crash="OOMKilled")), (f_quota, dict(res="memory"))], dict(stagger=True)),
    ("combo-cni-and-provisioner", [(f_cni, {}), (f_provisioner, dict(which=0))], dict(stagger=True, cni="calico", flavor="homelab")),
    ("combo-cert-and-bad-rollout", [(f_cert, dict(issuer="acme")), (f_rollout, dict(mode="image"))], dict(stagger=True)),
    # near misses: normal life, no incident
    ("nm-node-join", [(nm_node_join, {})], {}),
    ("nm-planned-reboot", [(nm_reboot, {})], {}),
    ("nm-notready-blip", [(nm_blip, {})], {}),
    ("nm-rolling-update-probes", [(nm_probes, {})], {}),
    ("nm-hpa-scale", [(nm_hpa, {})], {}),
    ("nm-oom-restart-once", [(nm_oom_once, {})], {}),
    ("nm-pvc-bound-quickly", [(nm_pvc_quick, {})], {}),
    ("nm-dns-failure-once", [(nm_dns_once, {})], {}),
]

NM_DESC = {
    "nm-node-join": "A new node joins: ADDED NotReady with 'cni plugin not initialized' seconds after its creation, its CNI and kube-proxy pods start, Ready 40-70 s later.",
    "nm-planned-reboot": "kured reboots a node: cordoned first (spec.unschedulable), pods evicted and recreated elsewhere, NotReady (NodeStatusUnknown) for 2-4 minutes, Rebooted/NodeReady, DaemonSet pods restart (SandboxChanged), uncordoned.",
    "nm-notready-blip": "A node with pods is NotReady (Unknown) for 20-40 s and comes back; NodeNotReady events on the node and its pods.",
    "nm-rolling-update-probes": "Rolling updates whose new pods fail their readiness probe 1-3 times (connection refused) while starting, then become ready.",
    "nm-hpa-scale": "An HPA scales a Deployment up (SuccessfulRescale 'New size: N; reason: cpu resource utilization (percentage of request) above target') and later back down.",
    "nm-oom-restart-once": "One pod is OOMKilled once and restarts cleanly (restartCount 1, no back-off).",
    "nm-pvc-bound-quickly": "A new StatefulSet pod's PVC: one ExternalProvisioning event, one FailedScheduling 'unbound immediate PersistentVolumeClaims', volume provisioned 3 s later, pod scheduled and running.",
    "nm-dns-failure-once": "One client logs a single DNS lookup failure and then works normally.",
}


def build(name, failures, opts):
    sim = Sim(name, opts.get("flavor"), opts.get("minutes"))
    sim.build_cluster(cni=opts.get("cni"), n_cp=opts.get("n_cp"))
    r = sim.rng
    gens = []
    start = sim.t0 + r.uniform(8, 12) * 60
    for i, (fn, kw) in enumerate(failures):
        kw = dict(kw)
        if opts.get("stagger"):
            kw["start"] = start + i * r.uniform(90, 360)
        gens.append(fn(sim, **kw))
    for g in gens:
        next(g)
    emit_initial(sim)
    noise(sim)
    incs = []
    for i, g in enumerate(gens):
        sim.tag_ns = i
        try:
            next(g)
        except StopIteration as e:
            for inc in e.value or []:
                if "_tag" in inc:
                    inc["_tag"] = (i, inc["_tag"])
                incs.append(inc)
    if name.startswith("nm-"):
        desc = NM_DESC[name] + " Nothing is wrong: a good engine prints no incident. " + NOISE_NOTE
        maxi = 0
    else:
        whats = [i["what"] for i in incs]
        if len(incs) > 1:
            desc = "Two independent failures overlap in time and must stay two incidents: (1) %s; (2) %s. " % (whats[0], whats[1])
        else:
            desc = "%s. " % whats[0]
        desc += "Each incident is rooted at the component that broke, with its victims as affected. " + NOISE_NOTE
        maxi = opts.get("max_incidents", len(incs))
    n, s = write_scenario(sim, desc, incs, maxi)
    return n, s


def main(argv):
    want = set(argv[1:])
    for name, failures, opts in SCENARIOS:
        if want and name not in want:
            continue
        n, s = build(name, failures, opts)
        print("%-36s %5d records  %4d signal  (%.1f noise/signal)" % (name, n, s, (n - s) / s if s else float("inf")))


if __name__ == "__main__":
    main(sys.argv)
