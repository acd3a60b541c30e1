"""zeromesh on a real Kubernetes API server (etcd + kube-apiserver, no kubelet): the chart installs with helm, its
CRDs become Established and its workloads are accepted; mesh-controller runs with nothing but the chart's
ServiceAccount token (RBAC least privilege), turns Pods/Namespaces/Services/EndpointSlices into mesh resources, follows
changes through its watches, and writes Accepted/Invalid status on TrafficPermissions and MeshConfigs.
"""

import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from apiserver import ApiError, ApiServer, free_port, stop_process  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))
import needs  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "zeromesh"
BUILD = Path(os.environ.get("ZM_BUILD_DIR", ROOT / "build" / "default"))
CONTROLLER_BIN = BUILD / "controller" / "mesh-controller"
MESHCTL_BIN = BUILD / "tools" / "meshctl" / "meshctl"
NS = "zeromesh-system"
TOKEN = "0123456789abcdef0123456789"
TRUST_BUNDLE = "zeromesh-ca-root-cert"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
TP = "/apis/zeromesh.io/v1alpha1/namespaces/{ns}/trafficpermissions"
MC = "/apis/zeromesh.io/v1alpha1/meshconfigs"
SP = "/apis/zeromesh.io/v1alpha1/namespaces/{ns}/servicepolicies"
ROUTES = "/apis/gateway.networking.k8s.io/v1alpha2/namespaces/{ns}/tcproutes"
# A stand-in for Gateway API's TCPRoute CRD (its real schema is not available offline): the group, version and
# names are Gateway API's; the spec is left to mesh-controller's validation.
TCPROUTE_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "tcproutes.gateway.networking.k8s.io",  # *.k8s.io groups need this, as Gateway API has
                 "annotations": {"api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/3328"}},
    "spec": {"group": "gateway.networking.k8s.io", "scope": "Namespaced",
             "names": {"kind": "TCPRoute", "listKind": "TCPRouteList", "plural": "tcproutes", "singular": "tcproute"},
             "versions": [{"name": "v1alpha2", "served": True, "storage": True, "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                               "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}]}}

GRANTS = "/apis/gateway.networking.k8s.io/v1beta1/namespaces/{ns}/referencegrants"
# The same kind of stand-in for Gateway API's ReferenceGrant CRD (v1beta1; it has no status).
REFERENCEGRANT_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "referencegrants.gateway.networking.k8s.io",
                 "annotations": {"api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/3328"}},
    "spec": {"group": "gateway.networking.k8s.io", "scope": "Namespaced",
             "names": {"kind": "ReferenceGrant", "listKind": "ReferenceGrantList", "plural": "referencegrants",
                       "singular": "referencegrant"},
             "versions": [{"name": "v1beta1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}]}}


def pod(ns, name, sa, node, labels=None):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": {"serviceAccountName": sa, "nodeName": node,
                     "containers": [{"name": "app", "image": "registry.invalid/app:1"}]}}


class K8sControllerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not CONTROLLER_BIN.exists():
            needs.missing(f"{CONTROLLER_BIN} is not built")
        cls.tmp = tempfile.TemporaryDirectory(prefix="zm-k8s-test-")
        cls.work = Path(cls.tmp.name)
        cls.api = ApiServer()
        cls.controller = None
        try:
            cls.api.start()
            cls.helm_install()
            cls.populate()
            cls.start_controller()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.controller is not None:
            stop_process(cls.controller)
        if getattr(cls, "log_file", None):
            cls.log_file.close()
        cls.api.stop()
        cls.tmp.cleanup()

    # ---- setup -----------------------------------------------------------------------------------------------------
    @classmethod
    def helm(cls, *args, check=True):
        return cls.api.helm(*args, home=cls.work, check=check)

    @classmethod
    def helm_install(cls):
        cls.install = cls.helm("install", "zeromesh", str(CHART), "--namespace", NS, "--create-namespace",
                               "--set", f"joinTokens.nodes.node-a.sha256={sha256(TOKEN)}",
                               "--set", f"joinTokens.nodes.node-b.sha256={sha256(TOKEN + 'x')}",
                               "--set", "controller.console.enabled=true",
                               "--timeout", "120s")

    @classmethod
    def populate(cls):
        a = cls.api
        a.create("/api/v1/namespaces", {"metadata": {"name": "shop", "labels": {"zeromesh.io/mesh": "enabled"}}})
        a.create("/api/v1/namespaces", {"metadata": {"name": "plain"}})
        for ns, sa in (("shop", "frontend"), ("shop", "backend"), ("shop", "default"), ("plain", "default")):
            a.create(f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": sa}})
        cls.pods = {
            ("shop", "frontend-1"): ("frontend", "node-a", {"app": "frontend"}, "10.244.1.11"),
            ("shop", "backend-1"): ("backend", "node-b", {"app": "backend"}, "10.244.2.11"),
            ("shop", "optout"): ("default", "node-a", {"zeromesh.io/mesh": "disabled"}, "10.244.1.12"),
            ("plain", "solo"): ("default", "node-a", {}, "10.244.1.13"),
            ("plain", "opted-in"): ("default", "node-b", {"zeromesh.io/mesh": "enabled"}, "10.244.2.12"),
            ("shop", "pending"): ("default", "node-b", {}, None),
            # Dual-stack (podIPs: one per family, podIP first) and IPv6-only pods.
            ("plain", "dual"): ("default", "node-b", {"app": "dual"}, ("10.244.2.21", "fd00:10:244:2::d")),
            ("plain", "six"): ("default", "node-a", {}, ("fd00:10:244:1::e",)),
        }
        for (ns, name), (sa, node, labels, ip) in cls.pods.items():
            cls.make_pod(ns, name, sa, node, labels, ip)
        svc = a.create("/api/v1/namespaces/shop/services", {
            "metadata": {"name": "backend"},
            "spec": {"selector": {"app": "backend"},
                     "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                               {"name": "dns", "port": 53, "protocol": "UDP"}]}})
        cls.backend_vip = svc["spec"]["clusterIP"]
        a.create("/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices", {
            "metadata": {"name": "backend-abc", "labels": {"kubernetes.io/service-name": "backend"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.2.11"], "conditions": {"ready": True}, "nodeName": "node-b"},
                          {"addresses": ["10.244.2.99"], "conditions": {"ready": False}, "nodeName": "node-b"}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})
        # A Service of the dual-stack pod with a slice per family, as the EndpointSlice controller writes them.
        a.create("/api/v1/namespaces/plain/services", {
            "metadata": {"name": "dual"}, "spec": {"selector": {"app": "dual"}, "ports": [{"port": 80}]}})
        for family, addr in (("IPv4", "10.244.2.21"), ("IPv6", "fd00:10:244:2::d")):
            a.create("/apis/discovery.k8s.io/v1/namespaces/plain/endpointslices", {
                "metadata": {"name": f"dual-{family.lower()}", "labels": {"kubernetes.io/service-name": "dual"}},
                "addressType": family,
                "endpoints": [{"addresses": [addr], "conditions": {"ready": True}, "nodeName": "node-b"}],
                "ports": [{"port": 80, "protocol": "TCP"}]})
        a.create(MC, {"apiVersion": "zeromesh.io/v1alpha1", "kind": "MeshConfig", "metadata": {"name": "mesh"},
                      "spec": {"trustDomain": "k8s.test", "defaultMode": "STRICT", "defaultPolicy": "DENY",
                               "certTTL": "12h"}})
        a.create(TP.format(ns="shop"), {
            "apiVersion": "zeromesh.io/v1alpha1", "kind": "TrafficPermission", "metadata": {"name": "allow-frontend"},
            "spec": {"action": "ALLOW", "sources": {"identities": ["spiffe://k8s.test/ns/shop/sa/frontend"]},
                     "destination": {"selector": {"matchLabels": {"app": "backend"}}, "ports": [8080]}}})
        # Per-request rules (issue 17), and one the schema admits but the controller refuses ('*' inside a path).
        a.create(TP.format(ns="shop"), {
            "apiVersion": "zeromesh.io/v1alpha1", "kind": "TrafficPermission", "metadata": {"name": "http-get"},
            "spec": {"action": "ALLOW", "sources": {"namespaces": ["shop"]},
                     "destination": {"selector": {"matchLabels": {"app": "api"}}},
                     "http": [{"methods": ["GET"], "paths": ["/api/*"], "headers": [{"name": "x-a", "present": True}]}]}})
        a.create(TP.format(ns="shop"), {
            "apiVersion": "zeromesh.io/v1alpha1", "kind": "TrafficPermission", "metadata": {"name": "bad-http"},
            "spec": {"action": "DENY", "sources": {"namespaces": ["shop"]}, "http": [{"paths": ["/a*b"]}]}})
        # Passes the schema (a CIDR-looking string) but not the controller's validation.
        a.create(TP.format(ns="shop"), {
            "apiVersion": "zeromesh.io/v1alpha1", "kind": "TrafficPermission", "metadata": {"name": "bad-cidr"},
            "spec": {"action": "ALLOW", "sources": {"ipBlocks": ["300.0.0.0/8"]}}})

    @classmethod
    def make_pod(cls, ns, name, sa, node, labels, ip):
        a = cls.api
        a.create(f"/api/v1/namespaces/{ns}/pods", pod(ns, name, sa, node, labels))
        if ip:  # what the kubelet would report
            ips = ip if isinstance(ip, tuple) else (ip,)
            a.patch_status(f"/api/v1/namespaces/{ns}/pods/{name}",
                           {"phase": "Running", "podIP": ips[0], "podIPs": [{"ip": x} for x in ips]})

    @classmethod
    def start_controller(cls):
        a = cls.api
        # The chart's ServiceAccount, its token and nothing else.
        kubeconfig = a.token_kubeconfig(NS, "zeromesh-controller", cls.work / "controller.kubeconfig")
        # The join tokens, as the Deployment would mount them; the CA comes from its Secret through the API.
        join = a.request("GET", f"/api/v1/namespaces/{NS}/secrets/zeromesh-join-tokens")["data"]
        files = {"tokens.yaml": join["tokens.yaml"]}
        for name, data in files.items():
            (cls.work / name).write_bytes(base64.b64decode(data))
            (cls.work / name).chmod(0o600)
        cls.admin_port = free_port()
        cls.grpc_port = free_port()
        cls.console_port = free_port()
        cls.log_path = cls.work / "controller.log"
        cls.log_file = open(cls.log_path, "wb")
        cls.controller = subprocess.Popen(
            [str(CONTROLLER_BIN), "--kubeconfig", str(kubeconfig), "--listen", f"127.0.0.1:{cls.grpc_port}",
             "--ca-secret", f"{NS}/zeromesh-ca", "--join-tokens", str(cls.work / "tokens.yaml"),
             "--trust-bundle-configmap", f"{NS}/{TRUST_BUNDLE}",
             "--admin-addr", f"127.0.0.1:{cls.admin_port}", "--metrics-addr", "off", "--log-level", "debug",
             "--console-addr", f"127.0.0.1:{cls.console_port}"],
            stdout=cls.log_file, stderr=subprocess.STDOUT)
        a.secret_data(NS, "zeromesh-ca", "ca.crt")  # created by the controller at startup

    # ---- helpers ---------------------------------------------------------------------------------------------------
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def dump(self) -> dict:
        if self.controller.poll() is not None:
            self.fail(f"mesh-controller exited with {self.controller.returncode}:\n{self.log()[-4000:]}")
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/debug/config_dump", timeout=5) as r:
            return json.loads(r.read())

    def resources(self, kind: str) -> dict:
        out = {}
        for r in self.dump()["resources"]:
            res = r["resource"]
            if kind in res:
                out[r["key"].split("/", 1)[1]] = res[kind]
        return out

    def wait(self, what, fn, timeout=30):
        try:
            return self.api.wait_for(what, fn, timeout=timeout)
        except (TimeoutError, OSError) as e:
            self.fail(f"{e}\ncontroller log:\n{self.log()[-6000:]}")

    def condition(self, path):
        obj = self.api.request("GET", path)
        for c in obj.get("status", {}).get("conditions") or []:
            if c["type"] == "Accepted":
                return obj, c
        return obj, None

    # ---- tests -----------------------------------------------------------------------------------------------------
    def test_01_chart_objects_accepted(self):
        a = self.api
        for crd in ("trafficpermissions.zeromesh.io", "meshconfigs.zeromesh.io", "servicepolicies.zeromesh.io"):
            obj = a.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}")
            conds = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
            self.assertEqual(conds.get("Established"), "True", crd)
            self.assertEqual(conds.get("NamesAccepted"), "True", crd)
        ds = a.request("GET", f"/apis/apps/v1/namespaces/{NS}/daemonsets/zeromesh-agent")
        spec = ds["spec"]["template"]["spec"]
        self.assertTrue(spec["hostNetwork"])
        self.assertEqual(spec["priorityClassName"], "system-node-critical")
        self.assertEqual(ds["spec"]["updateStrategy"]["type"], "RollingUpdate")
        self.assertIn({"operator": "Exists"}, spec["tolerations"])
        caps = spec["containers"][0]["securityContext"]["capabilities"]["add"]
        for cap in ("BPF", "NET_ADMIN", "SYS_ADMIN"):
            self.assertIn(cap, caps)
        paths = {v["name"]: v.get("hostPath", {}).get("path") for v in spec["volumes"]}
        self.assertEqual(paths["bpffs"], "/sys/fs/bpf")
        self.assertEqual(paths["cgroup"], "/sys/fs/cgroup")
        dep = a.request("GET", f"/apis/apps/v1/namespaces/{NS}/deployments/zeromesh-controller")
        self.assertEqual(dep["spec"]["replicas"], 2)
        self.assertEqual(dep["spec"]["template"]["spec"]["serviceAccountName"], "zeromesh-controller")
        pdb = a.request("GET", f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/zeromesh-controller")
        self.assertEqual(pdb["spec"]["minAvailable"], 1)
        for obj in (ds, dep, pdb):
            labels = obj["metadata"]["labels"]
            self.assertEqual(labels["app.kubernetes.io/name"], "zeromesh")
            self.assertEqual(labels["app.kubernetes.io/managed-by"], "Helm")
        self.assertEqual(self.helm("status", "zeromesh", "-n", NS, "-o", "json").returncode, 0)

    def test_02_controller_has_least_privilege(self):
        token = self.api.token(NS, "zeromesh-controller")
        self.api.request("GET", "/api/v1/pods", token=token)  # granted
        self.api.request("GET", f"/api/v1/namespaces/{NS}/secrets/zeromesh-ca", token=token)  # its own CA, only
        for method, path, body in (("GET", "/api/v1/secrets", None),
                                   ("GET", f"/api/v1/namespaces/{NS}/secrets", None),
                                   ("GET", f"/api/v1/namespaces/{NS}/secrets/zeromesh-join-tokens", None),
                                   ("PUT", f"/api/v1/namespaces/{NS}/secrets/zeromesh-ca", {}),
                                   ("POST", "/api/v1/namespaces/shop/pods", pod("shop", "x", "default", "node-a")),
                                   ("DELETE", f"{TP.format(ns='shop')}/allow-frontend", None),
                                   ("GET", "/api/v1/nodes", None)):
            with self.assertRaises(ApiError, msg=f"{method} {path}") as ctx:
                self.api.request(method, path, body, token=token)
            self.assertEqual(ctx.exception.status, 403, f"{method} {path}")

    def trust_bundle(self) -> str:
        cm = self.api.request("GET", f"/api/v1/namespaces/{NS}/configmaps/{TRUST_BUNDLE}")
        return cm["data"]["root-cert.pem"]

    def meshctl_status(self) -> dict:
        ca = self.work / "trust-bundle.pem"
        ca.write_text(self.trust_bundle())
        r = subprocess.run([str(MESHCTL_BIN), "status", "--controller", f"127.0.0.1:{self.grpc_port}", "--token", TOKEN,
                            "--ca-cert", str(ca), "-o", "json"], capture_output=True, text=True, timeout=60)
        self.assertIn(r.returncode, (0, 1), r.stderr)
        return json.loads(r.stdout)

    def test_02b_trust_bundle_published_for_agents(self):
        a = self.api
        ca_crt = a.secret_data(NS, "zeromesh-ca", "ca.crt").decode()
        # The roots, never the key, in the ConfigMap the agents mount; the installed DaemonSet mounts no Secret.
        self.wait("the trust-bundle ConfigMap", lambda: self.trust_bundle() == ca_crt)
        self.assertNotIn("PRIVATE KEY", self.trust_bundle())
        ds = a.request("GET", f"/apis/apps/v1/namespaces/{NS}/daemonsets/zeromesh-agent")
        volumes = ds["spec"]["template"]["spec"]["volumes"]
        self.assertEqual([v for v in volumes if "secret" in v], [])
        self.assertIn({"name": "trust-bundle", "configMap": {"name": TRUST_BUNDLE, "defaultMode": 420,
                                                            "items": [{"key": "root-cert.pem",
                                                                       "path": "root-cert.pem"}]}}, volumes)
        # The controller may update that ConfigMap and no other.
        token = a.token(NS, "zeromesh-controller")
        a.create(f"/api/v1/namespaces/{NS}/configmaps", {"metadata": {"name": "unrelated"}, "data": {"a": "b"}})
        with self.assertRaises(ApiError) as ctx:
            a.request("PUT", f"/api/v1/namespaces/{NS}/configmaps/unrelated",
                      {"metadata": {"name": "unrelated"}, "data": {"a": "c"}}, token=token)
        self.assertEqual(ctx.exception.status, 403)
        # Bring-your-own rotation, step 1: a second root joins ca.crt; the controller re-reads the Secret (every
        # 10 s) and publishes both roots; meshctl status lists both. Then back to one root.
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", str(self.work / "root2.key"), "-out", str(self.work / "root2.crt"), "-days", "30",
                        "-subj", "/O=zeromesh/CN=zeromesh root CA 2"], check=True, capture_output=True)
        both = ca_crt + (self.work / "root2.crt").read_text()
        secret = a.request("GET", f"/api/v1/namespaces/{NS}/secrets/zeromesh-ca")
        secret["data"]["ca.crt"] = base64.b64encode(both.encode()).decode()
        a.request("PUT", f"/api/v1/namespaces/{NS}/secrets/zeromesh-ca", secret)
        self.wait("both roots in the trust-bundle ConfigMap", lambda: self.trust_bundle() == both, timeout=40)
        creds = self.meshctl_status()["controller"]["credentials"]
        self.assertEqual(sorted(c["name"] for c in creds if c["kind"] == "trust-root"),
                         ["CN=zeromesh root CA 2,O=zeromesh", "CN=zeromesh root CA,O=zeromesh"])
        secret = a.request("GET", f"/api/v1/namespaces/{NS}/secrets/zeromesh-ca")
        secret["data"]["ca.crt"] = base64.b64encode(ca_crt.encode()).decode()
        a.request("PUT", f"/api/v1/namespaces/{NS}/secrets/zeromesh-ca", secret)
        self.wait("one root again", lambda: self.trust_bundle() == ca_crt, timeout=40)

    def test_02c_ca_secret_mounted_by_a_pod_is_reported(self):
        bad = pod(NS, "leaky", "zeromesh-agent", "node-a")  # as the chart's agents did before
        bad["spec"]["volumes"] = [{"name": "ca", "secret": {"secretName": "zeromesh-ca"}}]
        self.api.create(f"/api/v1/namespaces/{NS}/pods", bad)
        try:
            def reported():
                problems = self.meshctl_status()["problems"]
                return [p for p in problems if "mounts the CA Secret" in p["message"]]
            found = self.wait("the CA exposure in meshctl status", reported)
            self.assertIn(f"pod {NS}/leaky", found[0]["message"])
            self.assertIn("node 'node-a'", found[0]["message"])
        finally:
            self.api.request("DELETE", f"/api/v1/namespaces/{NS}/pods/leaky")

    def test_03_pods_become_workloads(self):
        def ready():
            w = self.resources("workload")
            return w if {"shop/frontend-1", "shop/backend-1", "shop/optout", "plain/opted-in", "plain/solo"} <= set(w) \
                else None
        w = self.wait("workloads from pods", ready)
        self.assertFalse(w["plain/solo"].get("enrolled", False))  # namespace not enrolled, no pod label: goes direct
        self.assertNotIn("shop/pending", w)     # not running, no IP
        fe = w["shop/frontend-1"]
        self.assertEqual((fe["serviceAccount"], fe["node"], fe["ip"]), ("frontend", "node-a", "10.244.1.11"))
        self.assertTrue(fe.get("enrolled"))
        self.assertEqual(fe["labels"]["app"], "frontend")
        self.assertFalse(w["shop/optout"].get("enrolled", False))  # pod label overrides the namespace
        self.assertTrue(w["plain/opted-in"].get("enrolled"))        # ... both ways
        self.assertEqual(self.dump()["trust_domain"], "k8s.test")
        self.assertIn("kubernetes configuration applied", self.log())

    def test_04_services_from_endpointslices(self):
        def svc():
            return self.resources("service").get("shop/backend")
        s = self.wait("Service shop/backend", svc)
        self.assertEqual(s["vip"], self.backend_vip)
        self.assertEqual([(p["port"], p["targetPort"]) for p in s["ports"]], [(80, 8080)])  # UDP port left out
        self.assertEqual([(e["ip"], e.get("workload"), e.get("node")) for e in s["endpoints"]],
                         [("10.244.2.11", "shop/backend-1", "node-b")])  # the not-ready address is left out

    def test_04b_dual_stack_and_ipv6_only_pods(self):
        def ready():
            w, s = self.resources("workload"), self.resources("service")
            return (w, s) if {"plain/dual", "plain/six"} <= set(w) and "plain/dual" in s else None
        w, s = self.wait("dual-stack workloads and Service", ready)
        self.assertEqual((w["plain/dual"]["ip"], w["plain/dual"]["ips"]),
                         ("10.244.2.21", ["10.244.2.21", "fd00:10:244:2::d"]))
        self.assertEqual((w["plain/six"]["ip"], w["plain/six"].get("ips", [])), ("fd00:10:244:1::e", []))
        # One endpoint per family, both tied to the pod.
        self.assertEqual(sorted((e["ip"], e.get("workload"), e.get("node")) for e in s["plain/dual"]["endpoints"]),
                         [("10.244.2.21", "plain/dual", "node-b"), ("fd00:10:244:2::d", "plain/dual", "node-b")])

    def test_05_crd_status(self):
        path = TP.format(ns="shop") + "/allow-frontend"
        self.wait("allow-frontend status", lambda: self.condition(path)[1])
        obj, c = self.condition(path)
        self.assertEqual((c["status"], c["reason"]), ("True", "Accepted"))
        self.assertEqual(c["observedGeneration"], obj["metadata"]["generation"])
        self.assertIn("shop/allow-frontend", self.resources("trafficPermission"))

        c = self.wait("bad-cidr Invalid", lambda: self.condition(TP.format(ns="shop") + "/bad-cidr")[1])
        self.assertEqual((c["status"], c["reason"]), ("False", "Invalid"))
        self.assertIn("300.0.0.0/8", c["message"])
        self.assertNotIn("shop/bad-cidr", self.resources("trafficPermission"))

        c = self.wait("http-get status", lambda: self.condition(TP.format(ns="shop") + "/http-get")[1])
        self.assertEqual((c["status"], c["reason"]), ("True", "Accepted"))
        self.assertIn("shop/http-get", self.resources("trafficPermission"))
        c = self.wait("bad-http Invalid", lambda: self.condition(TP.format(ns="shop") + "/bad-http")[1])
        self.assertEqual((c["status"], c["reason"]), ("False", "Invalid"))
        self.assertIn("'*' may only stand at the start", c["message"])
        self.assertNotIn("shop/bad-http", self.resources("trafficPermission"))

        c = self.wait("MeshConfig Accepted", lambda: self.condition(MC + "/mesh")[1])
        self.assertEqual(c["status"], "True")

        # Fixing the object (a new generation) flips it to Accepted.
        self.api.request("PATCH", TP.format(ns="shop") + "/bad-cidr", {"spec": {"sources": {"ipBlocks": ["10.0.0.0/8"]}}},
                         content_type="application/merge-patch+json")
        self.wait("bad-cidr Accepted after the fix",
                  lambda: (self.condition(TP.format(ns="shop") + "/bad-cidr")[1] or {}).get("status") == "True")
        self.wait("bad-cidr in the config", lambda: "shop/bad-cidr" in self.resources("trafficPermission"))

    def test_06_schema_refuses_invalid(self):
        for spec in ({"action": "MAYBE", "sources": {"namespaces": ["shop"]}},
                     {"action": "ALLOW"},
                     {"action": "ALLOW", "sources": {"namespaces": ["shop"]}, "destination": {"ports": [70000]}},
                     {"action": "ALLOW", "sources": {"identities": ["not-a-spiffe-id"]}},
                     {"action": "ALLOW", "sources": {"namespaces": ["shop"]}, "http": []},
                     {"action": "ALLOW", "sources": {"namespaces": ["shop"]}, "http": [{}]},
                     {"action": "ALLOW", "sources": {"namespaces": ["shop"]}, "http": [{"methods": ["get"]}]},
                     {"action": "ALLOW", "sources": {"namespaces": ["shop"]}, "http": [{"paths": [""]}]},
                     {"action": "ALLOW", "sources": {"namespaces": ["shop"]},
                      "http": [{"headers": [{"name": "x-a", "present": False}]}]}):
            with self.assertRaises(ApiError, msg=json.dumps(spec)) as ctx:
                self.api.create(TP.format(ns="shop"), {"apiVersion": "zeromesh.io/v1alpha1",
                                                       "kind": "TrafficPermission",
                                                       "metadata": {"name": "refused"}, "spec": spec})
            self.assertEqual(ctx.exception.status, 422, ctx.exception.body)
        with self.assertRaises(ApiError) as ctx:
            self.api.create(MC, {"apiVersion": "zeromesh.io/v1alpha1", "kind": "MeshConfig",
                                 "metadata": {"name": "refused"}, "spec": {"defaultMode": "LOOSE"}})
        self.assertEqual(ctx.exception.status, 422)

    def test_07_watch_follows_changes(self):
        self.wait("initial workloads", lambda: "shop/frontend-1" in self.resources("workload"))
        # Enrolling a namespace enrolls its running pods.
        self.api.request("PATCH", "/api/v1/namespaces/plain", {"metadata": {"labels": {"zeromesh.io/mesh": "enabled"}}},
                         content_type="application/merge-patch+json")
        self.wait("plain/solo enrolled", lambda: self.resources("workload").get("plain/solo", {}).get("enrolled"))
        # A pod that starts running joins; a deleted pod leaves.
        self.api.patch_status("/api/v1/namespaces/shop/pods/pending",
                              {"phase": "Running", "podIP": "10.244.2.13", "podIPs": [{"ip": "10.244.2.13"}]})
        self.wait("shop/pending joined", lambda: "shop/pending" in self.resources("workload"))
        self.api.request("DELETE", "/api/v1/namespaces/shop/pods/frontend-1?gracePeriodSeconds=0")
        self.wait("shop/frontend-1 left", lambda: "shop/frontend-1" not in self.resources("workload"))
        # A second MeshConfig is refused: one applies.
        self.api.create(MC, {"apiVersion": "zeromesh.io/v1alpha1", "kind": "MeshConfig",
                             "metadata": {"name": "second"}, "spec": {"trustDomain": "other.test"}})
        c = self.wait("second MeshConfig Invalid", lambda: self.condition(MC + "/second")[1])
        self.assertEqual(c["reason"], "Invalid")
        self.assertIn("'mesh' is in effect", c["message"])
        self.assertEqual(self.dump()["trust_domain"], "k8s.test")

    def console(self, path: str, token: str | None, body: dict | None = None, origin: str | None = None):
        """(status, JSON) of a console API call with a user's bearer token."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.console_port}{path}",
                                     data=None if body is None else json.dumps(body).encode(),
                                     method="GET" if body is None else "POST")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        if body is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw or b"{}")
        except ValueError:
            return status, raw.decode(errors="replace")  # the page itself

    def test_07d_console_users_are_kubernetes_users(self):
        a = self.api
        # Three users: one who may read mesh policy, one who may also write it, one with no rights at all.
        a.create("/apis/rbac.authorization.k8s.io/v1/clusterroles", {
            "metadata": {"name": "mesh-viewer"},
            "rules": [{"apiGroups": ["zeromesh.io"], "resources": ["trafficpermissions"], "verbs": ["get", "list"]}]})
        a.create("/apis/rbac.authorization.k8s.io/v1/clusterroles", {
            "metadata": {"name": "mesh-editor"},
            "rules": [{"apiGroups": ["zeromesh.io"], "resources": ["trafficpermissions"],
                       "verbs": ["get", "list", "create", "patch"]},
                      {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "patch"]}]})
        for user, role in (("viewer", "mesh-viewer"), ("editor", "mesh-editor"), ("nobody", None)):
            a.create("/api/v1/namespaces/shop/serviceaccounts", {"metadata": {"name": user}})
            if role:
                a.create("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
                    "metadata": {"name": f"console-{user}"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                    "subjects": [{"kind": "ServiceAccount", "name": user, "namespace": "shop"}]})
        viewer, editor, nobody = (a.token("shop", u) for u in ("viewer", "editor", "nobody"))
        status, page = self.console("/", None)  # the page itself is public; it holds no data
        self.assertEqual(status, 200)
        self.assertIn("<html", page.lower())
        for path in ("/api/session", "/api/workloads", "/api/overview", "/api/traffic"):
            self.assertEqual(self.console(path, None)[0], 401, path)
            self.assertEqual(self.console(path, "not-a-token")[0], 401, path)
            self.assertEqual(self.console(path, nobody)[0], 403, path)
        status, s = self.wait("the console accepts the viewer", lambda: (lambda r: r if r[0] == 200 else None)(
            self.console("/api/session", viewer)))
        self.assertEqual(s["user"], "system:serviceaccount:shop:viewer")
        self.assertEqual(s["mode"], "kubernetes")
        self.assertFalse(s["may_write"])
        status, s = self.console("/api/session", editor)
        self.assertEqual(status, 200, s)
        self.assertTrue(s["may_write"])
        status, w = self.console("/api/workloads", viewer)
        self.assertEqual(status, 200, w)
        self.assertIn("shop/backend-1", {f"{x['namespace']}/{x['name']}" for x in w["workloads"]})
        # The wizard previews for a reader and refuses a reader's apply; a writer's apply is a server-side apply made
        # with the writer's own token, so the API server's RBAC decides and the controller then sees the change.
        status, p = self.console("/api/wizard/enroll", viewer, {"namespace": "plain"})
        self.assertEqual(status, 200, p)
        self.assertIn("kubectl label namespace plain zeromesh.io/mesh=enabled", p["kubectl"])
        self.assertEqual(self.console("/api/wizard/enroll", viewer, {"namespace": "plain", "apply": True})[0], 403)
        self.assertTrue(self.console("/api/session", editor)[1]["can_write"])
        status, p = self.console("/api/wizard/enroll", editor, {"namespace": "plain", "apply": True})
        self.assertEqual(status, 200, p)
        self.assertTrue(p["applied"])
        labels = a.request("GET", "/api/v1/namespaces/plain")["metadata"]["labels"]
        self.assertEqual(labels.get("zeromesh.io/mesh"), "enabled")
        self.assertEqual(labels.get("zeromesh.io/mode"), "PERMISSIVE")

        def solo_enrolled():
            st, w = self.console("/api/workloads", editor)
            return any(x["name"] == "solo" and x["enrolled"] for x in w.get("workloads", []))
        self.wait("plain/solo enrolled through the console", solo_enrolled)
        frontend = "spiffe://k8s.test/ns/shop/sa/frontend"
        status, p = self.console("/api/wizard/policy", editor, {"namespace": "plain", "allow": [frontend],
                                                                "apply": True})
        self.assertEqual(status, 200, p)
        tp = a.request("GET", TP.format(ns="plain") + "/console-allow-observed")
        self.assertEqual(tp["spec"]["sources"]["identities"], [frontend])
        self.assertEqual(tp["metadata"]["managedFields"][0]["manager"], "zeromesh-console")
        # A writer of policies who may not touch Namespaces: the API server's refusal comes back as is.
        a.create("/apis/rbac.authorization.k8s.io/v1/clusterroles", {
            "metadata": {"name": "mesh-policy-only"},
            "rules": [{"apiGroups": ["zeromesh.io"], "resources": ["trafficpermissions"],
                       "verbs": ["get", "list", "create", "patch"]}]})
        a.create("/api/v1/namespaces/shop/serviceaccounts", {"metadata": {"name": "policy-only"}})
        a.create("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
            "metadata": {"name": "console-policy-only"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "mesh-policy-only"},
            "subjects": [{"kind": "ServiceAccount", "name": "policy-only", "namespace": "shop"}]})
        policy_only = a.token("shop", "policy-only")
        status, p = self.wait("the policy-only user is known", lambda: (lambda r: r if r[0] != 403 or
                              "may not list" not in r[1].get("error", "") else None)(
            self.console("/api/wizard/mode", policy_only, {"namespace": "plain", "mode": "STRICT", "apply": True})))
        self.assertEqual(status, 403, p)
        self.assertIn("forbidden", p["error"])
        self.assertEqual(a.request("GET", "/api/v1/namespaces/plain")["metadata"]["labels"]["zeromesh.io/mode"],
                         "PERMISSIVE")

    def test_08_upgrade_and_uninstall_keep_the_ca(self):
        secret = f"/api/v1/namespaces/{NS}/secrets/zeromesh-ca"
        before = self.api.request("GET", secret)["data"]
        # The controller generated it (Helm does not render it, so no re-render can replace it).
        obj = self.api.request("GET", secret)
        self.assertEqual(obj["type"], "kubernetes.io/tls")
        self.assertEqual(obj["metadata"]["labels"]["app.kubernetes.io/managed-by"], "mesh-controller")
        self.assertIn("generated the mesh root CA and stored it", self.log())
        self.assertEqual(before["ca.crt"], before["tls.crt"])
        self.helm("upgrade", "zeromesh", str(CHART), "--namespace", NS, "--reuse-values",
                  "--set", "controller.replicas=3")
        dep = self.api.request("GET", f"/apis/apps/v1/namespaces/{NS}/deployments/zeromesh-controller")
        self.assertEqual(dep["spec"]["replicas"], 3)
        self.assertEqual(self.api.request("GET", secret)["data"], before)  # the mesh root survives upgrades ...
        self.helm("uninstall", "zeromesh", "--namespace", NS)
        self.assertEqual(self.api.request("GET", secret)["data"], before)  # ... and uninstalls
        with self.assertRaises(ApiError) as ctx:
            self.api.request("GET", f"/apis/apps/v1/namespaces/{NS}/daemonsets/zeromesh-agent")
        self.assertEqual(ctx.exception.status, 404)

    def test_09_client_certificate_kubeconfig(self):
        # The admin kubeconfig authenticates with a client certificate (files) instead of a token.
        log = self.work / "controller-cert.log"
        with open(log, "wb") as out:
            p = subprocess.Popen(
                [str(CONTROLLER_BIN), "--kubeconfig", str(self.api.kubeconfig), "--listen", f"127.0.0.1:{free_port()}",
                 "--ca-dir", str(self.work / "ca2"), "--join-tokens", str(self.work / "tokens.yaml"),
                 "--admin-addr", "off", "--metrics-addr", "off"], stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 30
            while "kubernetes configuration applied" not in log.read_text() and time.time() < deadline:
                self.assertIsNone(p.poll(), log.read_text())
                time.sleep(0.2)
            self.assertIn("kubernetes configuration applied", log.read_text())
            self.assertIn("auth: client certificate", log.read_text())
        finally:
            p.terminate()
            p.wait(timeout=15)

    def test_07b_service_policies_and_tcp_routes(self):
        # ServicePolicy: our CRD, validated twice (schema, then the controller), with status.
        with self.assertRaises(ApiError) as ctx:
            self.api.create(SP.format(ns="shop"), {
                "apiVersion": "zeromesh.io/v1alpha1", "kind": "ServicePolicy", "metadata": {"name": "refused"},
                "spec": {"targetRef": {"kind": "Service", "name": "backend"}, "retries": {"attempts": 99}}})
        self.assertEqual(ctx.exception.status, 422)
        self.api.create(SP.format(ns="shop"), {
            "apiVersion": "zeromesh.io/v1alpha1", "kind": "ServicePolicy", "metadata": {"name": "backend"},
            "spec": {"targetRef": {"kind": "Service", "name": "backend"},
                     "loadBalancer": {"algorithm": "LeastConnections"}, "connectTimeout": "300ms",
                     "retries": {"attempts": 2}, "rateLimit": {"connectionsPerSecond": 50, "burst": 10}}})
        sp = self.wait("ServicePolicy in the config",
                       lambda: self.resources("servicePolicy").get("shop/backend"))
        self.assertEqual((sp["targetService"], sp["algorithm"], sp["connectTimeoutMs"], sp["retryAttempts"]),
                         ("backend", "LEAST_CONNECTIONS", 300, 2))
        c = self.wait("ServicePolicy Accepted", lambda: self.condition(SP.format(ns="shop") + "/backend")[1])
        self.assertEqual((c["status"], c["reason"]), ("True", "Accepted"))
        # A ServicePolicy on an HTTPRoute rule (policy attachment): the structural schema keeps spec.http (it would
        # prune unknown fields) and refuses a percentage over 100; the controller accepts it, warning in its status
        # while the route does not exist.
        route_target = {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "web", "sectionName": "api"}
        with self.assertRaises(ApiError) as ctx:
            self.api.create(SP.format(ns="shop"), {
                "apiVersion": "zeromesh.io/v1alpha1", "kind": "ServicePolicy", "metadata": {"name": "refused"},
                "spec": {"targetRef": route_target,
                         "http": {"faultInjection": {"abort": {"httpStatus": 503, "percentage": 150}}}}})
        self.assertEqual(ctx.exception.status, 422)
        self.api.create(SP.format(ns="shop"), {
            "apiVersion": "zeromesh.io/v1alpha1", "kind": "ServicePolicy", "metadata": {"name": "web-api"},
            "spec": {"targetRef": route_target,
                     "http": {"rateLimit": {"requests": 20, "interval": "1s"},
                              "faultInjection": {"delay": {"fixedDelay": "200ms", "percentage": 12.5}}}}})
        sp = self.wait("route ServicePolicy in the config", lambda: self.resources("servicePolicy").get("shop/web-api"))
        self.assertEqual(sp["targetRoute"], {"kind": "HTTPRoute", "name": "web", "sectionName": "api"})
        self.assertEqual((sp["httpRateLimit"]["requests"], sp["httpRateLimit"]["intervalMs"]), (20, 1000))
        self.assertEqual((sp["httpFault"]["delayMs"], sp["httpFault"]["delayPercentage"]), (200, 12.5))
        c = self.wait("route ServicePolicy Accepted", lambda: self.condition(SP.format(ns="shop") + "/web-api")[1])
        self.assertEqual(c["status"], "True")
        self.assertIn("there is no HTTPRoute shop/web", c["message"])

        # TCPRoute: Gateway API is not installed: the controller works without it ...
        self.assertIn("kubernetes API not installed; treated as empty", self.log())
        # ... and picks its routes up once it is.
        self.api.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", TCPROUTE_CRD)
        self.wait("TCPRoute CRD established", lambda: any(
            c["type"] == "Established" and c["status"] == "True" for c in self.api.request(
                "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/tcproutes.gateway.networking.k8s.io"
            ).get("status", {}).get("conditions") or []))
        route = {"apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TCPRoute",
                 "metadata": {"name": "backend-split"},
                 "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "backend", "port": 80}],
                          "rules": [{"backendRefs": [{"name": "backend", "port": 80, "weight": 90},
                                                     {"name": "backend-canary", "port": 80, "weight": 10}]}]}}
        self.wait("the route API is served", lambda: self.api.request("GET", ROUTES.format(ns="shop")))
        self.api.create(ROUTES.format(ns="shop"), route)
        r = self.wait("TCPRoute in the config", lambda: self.resources("tcpRoute").get("shop/backend-split"), timeout=40)
        self.assertEqual([(b["name"], b["weight"]) for b in r["rules"][0]["backendRefs"]],
                         [("backend", 90), ("backend-canary", 10)])
        bad = dict(route, metadata={"name": "to-a-gateway"})
        bad["spec"] = dict(route["spec"], parentRefs=[{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                                       "name": "gw"}])
        self.api.create(ROUTES.format(ns="shop"), bad)
        # Gateway API status: one entry per Service parent, under our controllerName.
        def ours(name):
            obj = self.api.request("GET", ROUTES.format(ns="shop") + "/" + name)
            return [p for p in obj.get("status", {}).get("parents", [])
                    if p.get("controllerName") == "zeromesh.io/mesh-controller"]
        entry = self.wait("route status", lambda: ours("backend-split"))[0]
        self.assertEqual(entry["parentRef"]["name"], "backend")
        self.assertEqual([(c["type"], c["status"], c["reason"]) for c in entry["conditions"]],
                         [("Accepted", "True", "Accepted"), ("ResolvedRefs", "True", "ResolvedRefs")])
        self.wait("the invalid route reported", lambda: "TCPRoute/shop/to-a-gateway" in self.log())
        self.assertNotIn("shop/to-a-gateway", self.resources("tcpRoute"))
        self.assertEqual(ours("to-a-gateway"), [])  # a Gateway parent: not ours to answer for
        time.sleep(2)  # our own status write comes back as a watch event: it must not cause another write
        writes = [line for line in self.log().splitlines()
                  if '"msg":"status written"' in line and '"resource":"tcproutes"' in line]
        self.assertEqual(len(writes), 1, writes)


    def route_conditions(self, name):
        obj = self.api.request("GET", ROUTES.format(ns="shop") + "/" + name)
        for p in obj.get("status", {}).get("parents", []):
            if p.get("controllerName") == "zeromesh.io/mesh-controller":
                return {c["type"]: c for c in p["conditions"]}
        return {}

    def route_backends(self, name):
        r = self.resources("tcpRoute").get(f"shop/{name}")
        return None if r is None else [(b["namespace"], b["name"]) for b in r["rules"][0]["backendRefs"]]

    def test_07c_reference_grant_for_cross_namespace_backends(self):
        a = self.api
        a.create("/api/v1/namespaces", {"metadata": {"name": "data"}})
        a.create("/api/v1/namespaces/data/services", {"metadata": {"name": "db"},
                                                       "spec": {"ports": [{"name": "tcp", "port": 80}]}})
        a.create("/api/v1/namespaces/shop/services", {"metadata": {"name": "front"},
                                                       "spec": {"ports": [{"name": "tcp", "port": 80}]}})
        # Needs the TCPRoute CRD of test_07b; ReferenceGrant is optional too and picked up once installed.
        self.wait("TCPRoute API served", lambda: a.request("GET", ROUTES.format(ns="shop")))
        a.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", REFERENCEGRANT_CRD)
        self.wait("the ReferenceGrant API is served", lambda: a.request("GET", GRANTS.format(ns="data")))
        a.create(ROUTES.format(ns="shop"), {
            "apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TCPRoute", "metadata": {"name": "cross"},
            "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "front", "port": 80}],
                     "rules": [{"backendRefs": [{"name": "backend", "port": 80, "weight": 1},
                                                {"name": "db", "namespace": "data", "port": 80, "weight": 1}]}]}})
        # No grant: the route applies without the other namespace's backend, and says why.
        resolved = self.wait("ResolvedRefs False", lambda: (
            self.route_conditions("cross").get("ResolvedRefs", {}).get("status") == "False"
            and self.route_conditions("cross")["ResolvedRefs"]), timeout=40)
        self.assertEqual(resolved["reason"], "RefNotPermitted")
        self.assertIn("data/db:80", resolved["message"])
        self.assertEqual(self.route_conditions("cross")["Accepted"]["status"], "True")
        self.assertEqual(self.route_backends("cross"), [("shop", "backend")])

        # The grant in the backend's namespace (the ReferenceGrant watch may still be waiting for its 10 s recheck
        # of the newly installed API).
        a.create(GRANTS.format(ns="data"), {
            "apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
            "metadata": {"name": "shop-routes"},
            "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "TCPRoute", "namespace": "shop"}],
                     "to": [{"group": "", "kind": "Service", "name": "db"}]}})
        self.wait("the granted backend in the split",
                  lambda: self.route_backends("cross") == [("shop", "backend"), ("data", "db")], timeout=40)
        resolved = self.wait("ResolvedRefs True", lambda: (
            self.route_conditions("cross").get("ResolvedRefs", {}).get("status") == "True"
            and self.route_conditions("cross")["ResolvedRefs"]))
        self.assertEqual(resolved["reason"], "ResolvedRefs")

        # Deleting the grant revokes at once.
        a.request("DELETE", GRANTS.format(ns="data") + "/shop-routes")
        self.wait("the backend revoked", lambda: self.route_backends("cross") == [("shop", "backend")])
        self.wait("RefNotPermitted again", lambda: (
            self.route_conditions("cross").get("ResolvedRefs", {}).get("reason") == "RefNotPermitted"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
