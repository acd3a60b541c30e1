"""The Helm chart offline: helm lint is clean, values.schema.json refuses bad values, the chart's CRDs are the ones in
api/crds, and the rendered manifests carry what the design needs (the API server test checks the installed objects).
"""

import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from apiserver import bin_dir  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "zeromesh"
# A join-token entry as `meshctl join-token create` prints it: the SHA-256 of the token, never the token.
TOKEN_HASH = "ab" * 32
NODE_A = [f"joinTokens.nodes.node-a.sha256={TOKEN_HASH}", "joinTokens.nodes.node-a.expires=2027-01-01T00:00:00Z"]


class ChartTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.helm = str(bin_dir() / "helm")

    def run_helm(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([self.helm, *args], capture_output=True, text=True, timeout=120)

    def template(self, *sets: str) -> subprocess.CompletedProcess:
        args = ["template", "zeromesh", str(CHART), "--namespace", "zeromesh-system"]
        for s in sets:
            args += ["--set", s]
        return self.run_helm(*args)

    def test_lint_clean(self):
        for extra in ([], ["--set", NODE_A[0], "--set", NODE_A[1]], ["--set", "agent.privileged=true"]):
            r = self.run_helm("lint", "--strict", str(CHART), *extra)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("0 chart(s) failed", r.stdout)
            self.assertNotIn("[WARNING]", r.stdout)
            self.assertNotIn("[ERROR]", r.stdout)

    def test_schema_refuses_bad_values(self):
        for bad in ("controller.replicas=0", "agent.bogus=1", "controller.logLevel=loud", "agent.metricsPort=70000",
                    "joinTokens.nodes.node-a.sha256=short", "joinTokens.nodes.node-a=plaintext-token-0123456789",
                    "controller.maxCertTTL=1d", "agent.auth.mode=magic", "agent.auth.expirationSeconds=60",
                    "agent.auth.joinTokenHostPath=relative"):
            r = self.template(bad)
            self.assertNotEqual(r.returncode, 0, f"{bad} was accepted")
            self.assertIn("schema", (r.stderr + r.stdout).lower(), bad)

    def test_crds_match_api(self):
        api = sorted(p.name for p in (ROOT / "api" / "crds").glob("*.yaml"))
        chart = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
        self.assertEqual(api, chart)
        self.assertEqual(api, ["meshconfigs.zeromesh.io.yaml", "servicepolicies.zeromesh.io.yaml",
                               "trafficpermissions.zeromesh.io.yaml"])
        for name in api:
            self.assertEqual((ROOT / "api" / "crds" / name).read_text(), (CHART / "crds" / name).read_text(),
                             f"charts/zeromesh/crds/{name} differs from api/crds/{name}: copy it over")

    def test_render(self):
        r = self.template(*NODE_A)
        self.assertEqual(r.returncode, 0, r.stderr)
        docs = [d for d in r.stdout.split("\n---\n") if "kind:" in d]
        kinds = sorted(line.split(":", 1)[1].strip() for d in docs for line in d.splitlines()
                       if line.startswith("kind:"))
        # No CA Secret: the controller creates and keeps it (a Helm-rendered one would change on every re-render).
        self.assertEqual(kinds, sorted(["ServiceAccount", "ServiceAccount", "Secret", "ClusterRole",
                                        "ClusterRoleBinding", "Role", "RoleBinding", "Role", "RoleBinding",
                                        "Role", "RoleBinding", "ConfigMap", "Service", "DaemonSet", "Deployment", "PodDisruptionBudget"]))
        for d in docs:
            for label in ("app.kubernetes.io/name: zeromesh", "app.kubernetes.io/instance: zeromesh",
                          "app.kubernetes.io/component:", "app.kubernetes.io/version:",
                          "app.kubernetes.io/managed-by: Helm"):
                self.assertIn(label, d, f"a rendered object lacks {label}:\n{d[:400]}")
        self.assertNotIn("secrets", next(d for d in docs if "kind: ClusterRole\n" in d + "\n"))
        self.assertNotIn('"*"', r.stdout)
        # No join tokens configured: the chart says so instead of failing.
        r = self.template()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("join-tokens\n  namespace", r.stdout)

    def test_agent_auth_modes(self):
        # Default: every agent presents its pod's projected token (audience zeromesh); one shared bootstrap, no secret.
        r = self.template()
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout
        self.assertIn("serviceAccountToken:\n                  audience: zeromesh", out)
        self.assertIn("--bootstrap=/etc/zeromesh/bootstrap/bootstrap.json", out)
        self.assertIn('\\"tokenFile\\":\\"/var/run/secrets/zeromesh/token\\"', out)
        self.assertIn('\\"controller\\":\\"dns:///zeromesh-controller.zeromesh-system.svc:15012\\"', out)
        self.assertIn("--agent-service-account=zeromesh-system/zeromesh-agent", out)
        self.assertNotIn("--join-tokens", out)
        self.assertIn("resources: [tokenreviews]", out)
        self.assertIn("clusterIP: None", out)
        # Join tokens instead: each node's own token from the node (hostPath), hashes for the controller, no TokenReview.
        r = self.template("agent.auth.mode=joinToken", *NODE_A)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("--bootstrap=/etc/zeromesh/bootstrap/bootstrap.json", r.stdout)
        self.assertIn('\\"tokenFile\\":\\"/etc/zeromesh/join-token/token\\"', r.stdout)
        self.assertIn("hostPath: {path: /etc/zeromesh/join-token, type: Directory}", r.stdout)
        self.assertIn("--join-tokens=/etc/zeromesh/join-tokens/tokens.yaml", r.stdout)
        self.assertIn("--agent-service-account=none", r.stdout)
        # The one API token left: the uninstall check's, allowed to read the agent's own DaemonSet and nothing else.
        self.assertNotIn("audience: zeromesh", r.stdout)
        self.assertEqual(r.stdout.count("serviceAccountToken:"), 1)
        self.assertIn("- serviceAccountToken: {path: token, expirationSeconds: 3600}", r.stdout)
        agent_role = next(d for d in yaml.safe_load_all(r.stdout)
                          if d and d["kind"] == "Role" and d["metadata"]["name"] == "zeromesh-agent")
        self.assertEqual(agent_role["rules"], [{"apiGroups": ["apps"], "resources": ["daemonsets"],
                                                "resourceNames": ["zeromesh-agent"], "verbs": ["get"]}])
        secret = next(d for d in yaml.safe_load_all(r.stdout) if d and d["kind"] == "Secret")
        tokens = yaml.safe_load(secret["stringData"]["tokens.yaml"])
        self.assertEqual(tokens, {"node-a": {"sha256": TOKEN_HASH, "expires": "2027-01-01T00:00:00Z"}})
        self.assertEqual(list(secret["stringData"]), ["tokens.yaml"], "no per-node token may be rendered")

    def test_agent_metrics_address(self):
        def agent_container(*sets):
            r = self.template(*sets)
            self.assertEqual(r.returncode, 0, r.stderr)
            ds = next(d for d in yaml.safe_load_all(r.stdout) if d and d["kind"] == "DaemonSet")
            return ds["spec"]["template"]["spec"]["containers"][0]

        want = {"all": "--metrics-addr=[::]:15020", "node": "--metrics-addr=$(NODE_IP):15020",
                "loopback": "--metrics-addr=127.0.0.1:15020", "off": "--metrics-addr=off"}
        for value, arg in want.items():
            with self.subTest(metricsAddress=value):
                c = agent_container(f"agent.metricsAddress={value}")
                self.assertIn(arg, c["args"])
                self.assertIn("--health-addr=[::]:15021", c["args"])  # the kubelet's probes, whatever this says
                env = {e["name"]: e.get("valueFrom") for e in c["env"]}
                self.assertEqual("NODE_IP" in env, value == "node")
                if value == "node":
                    self.assertEqual(env["NODE_IP"], {"fieldRef": {"fieldPath": "status.hostIP"}})
                ports = [p["name"] for p in c["ports"]]
                self.assertEqual("metrics" in ports, value != "off")
        self.assertIn("--metrics-addr=[::]:15020", agent_container()["args"])  # the default: all
        self.assertNotEqual(self.template("agent.metricsAddress=everywhere").returncode, 0)

    def test_agent_attach_mode(self):
        """agent.bpf: auto by default (tcx where the kernel has it, else tc); tc and a tc priority can be forced;
        anything else is refused by the schema."""
        def args(*sets):
            r = self.template(*sets)
            self.assertEqual(r.returncode, 0, r.stderr)
            ds = next(d for d in yaml.safe_load_all(r.stdout) if d and d["kind"] == "DaemonSet")
            return ds["spec"]["template"]["spec"]["containers"][0]["args"]

        self.assertIn("--attach-mode=auto", args())
        self.assertFalse([a for a in args() if a.startswith("--uplink")], "uplinks are found, not named, by default")
        self.assertIn("--uplink=ens5", args("agent.uplink=ens5"))
        self.assertNotEqual(self.template("agent.uplink=a/b").returncode, 0)
        self.assertIn("--tc-priority=1", args())
        forced = args("agent.bpf.attachMode=tc", "agent.bpf.tcPriority=7")
        self.assertIn("--attach-mode=tc", forced)
        self.assertIn("--tc-priority=7", forced)
        for bad in ("agent.bpf.attachMode=xdp", "agent.bpf.tcPriority=0", "agent.bpf.tcPriority=70000"):
            self.assertNotEqual(self.template(bad).returncode, 0, bad)

    def test_agent_sockmap(self):
        """agent.sockmap: off by default (under `both` splice(2) and FIONREAD miss redirected bytes, docs/design.md
        "sockmap"); a mode passes --sockmap and the cgroup (auto by default) as --sockops-cgroup; the schema refuses
        other modes, a relative cgroup and a bare YAML `off` (a boolean)."""
        def args(*sets):
            r = self.template(*sets)
            self.assertEqual(r.returncode, 0, r.stderr)
            ds = next(d for d in yaml.safe_load_all(r.stdout) if d and d["kind"] == "DaemonSet")
            return [a for a in ds["spec"]["template"]["spec"]["containers"][0]["args"] if a.startswith("--sock")]

        self.assertEqual(args(), ["--sockmap=off"])
        self.assertEqual(args("agent.sockmap.mode=off"), ["--sockmap=off"])
        self.assertEqual(args("agent.sockmap.mode=both"), ["--sockmap=both", "--sockops-cgroup=auto"])
        self.assertEqual(args("agent.sockmap.mode=from-pod", "agent.sockmap.cgroup=/sys/fs/cgroup/kubepods.slice"),
                         ["--sockmap=from-pod", "--sockops-cgroup=/sys/fs/cgroup/kubepods.slice"])
        for bad in ("agent.sockmap.mode=on", "agent.sockmap.mode=true", "agent.sockmap.cgroup=kubepods",
                    "agent.sockmap.cgroup=", "agent.sockmap.extra=1"):
            r = self.template(bad)
            self.assertNotEqual(r.returncode, 0, f"{bad} was accepted")
            self.assertIn("schema", (r.stderr + r.stdout).lower(), bad)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write("agent:\n  sockmap:\n    mode: off\n")  # YAML 1.1: false, not "off"
            f.flush()
            r = self.run_helm("template", "zeromesh", str(CHART), "-f", f.name)
            self.assertNotEqual(r.returncode, 0, "a bare `off` was accepted")

    def test_agent_tracing(self):
        """tracing.otlp: no endpoint, no flags; TLS by default (a CA bundle from a ConfigMap or a node file, a server
        name); plaintext only with insecure: true, which takes no TLS setting."""
        def pod(*sets):
            r = self.template(*sets)
            self.assertEqual(r.returncode, 0, r.stderr)
            ds = next(d for d in yaml.safe_load_all(r.stdout) if d and d["kind"] == "DaemonSet")
            return ds["spec"]["template"]["spec"]

        def otlp(p):
            return [a for a in p["containers"][0]["args"] if a.startswith("--otlp")]

        ep = "tracing.otlp.endpoint=otel.obs:4317"
        self.assertEqual(otlp(pod()), [])
        self.assertEqual(otlp(pod(ep)), ["--otlp-endpoint=otel.obs:4317"])  # TLS, the system roots
        self.assertEqual(otlp(pod(ep, "tracing.otlp.insecure=true")),
                         ["--otlp-endpoint=otel.obs:4317", "--otlp-insecure=true"])
        p = pod(ep, "tracing.otlp.tls.caConfigMap=otel-ca", "tracing.otlp.tls.serverName=otel.obs")
        self.assertEqual(otlp(p), ["--otlp-endpoint=otel.obs:4317", "--otlp-ca-file=/etc/zeromesh/otlp-ca/ca.crt",
                                   "--otlp-server-name=otel.obs"])
        vol = next(v for v in p["volumes"] if v["name"] == "otlp-ca")
        self.assertEqual(vol["configMap"], {"name": "otel-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]})
        self.assertIn({"name": "otlp-ca", "mountPath": "/etc/zeromesh/otlp-ca", "readOnly": True},
                      p["containers"][0]["volumeMounts"])
        p = pod(ep, "tracing.otlp.tls.caHostPath=/etc/ssl/otel/bundle.pem")
        self.assertEqual(otlp(p)[1:], ["--otlp-ca-file=/etc/zeromesh/otlp-ca-host/bundle.pem"])
        vol = next(v for v in p["volumes"] if v["name"] == "otlp-ca-host")
        self.assertEqual(vol["hostPath"], {"path": "/etc/ssl/otel", "type": "Directory"})
        for bad in ([ep, "tracing.otlp.insecure=true", "tracing.otlp.tls.caConfigMap=otel-ca"],
                    [ep, "tracing.otlp.tls.caConfigMap=otel-ca", "tracing.otlp.tls.caHostPath=/etc/ca.pem"],
                    [ep, "tracing.otlp.tls.caHostPath=relative/ca.pem"], [ep, "tracing.otlp.tls.serverName=a b"],
                    [ep, "tracing.otlp.insecure=maybe"]):
            self.assertNotEqual(self.template(*bad).returncode, 0, bad)

    def test_no_agent_volume_reaches_a_private_key(self):
        """A kubelet may read every Secret its pods mount: no agent volume may name a Secret (the CA Secret holds the
        root's private key, the join-token Secret every node's credential). Agents trust the mesh through the
        trust-bundle ConfigMap the controller publishes."""
        for sets in ([], ["agent.auth.mode=joinToken", *NODE_A], ["ca.existingSecret=my-ca"],
                     ["agent.auth.mode=joinToken", "joinTokens.existingSecret=my-tokens"], ["agent.privileged=true"]):
            r = self.template(*sets)
            self.assertEqual(r.returncode, 0, r.stderr)
            docs = [d for d in yaml.safe_load_all(r.stdout) if d]
            ds = next(d for d in docs if d["kind"] == "DaemonSet")
            pod = ds["spec"]["template"]["spec"]
            for v in pod["volumes"]:
                self.assertNotIn("secret", v, f"{sets}: agent volume {v['name']} mounts a Secret")
                for src in v.get("projected", {}).get("sources", []):
                    self.assertNotIn("secret", src, f"{sets}: agent volume {v['name']} projects a Secret")
            trust = next(v for v in pod["volumes"] if v["name"] == "trust-bundle")
            self.assertEqual(trust["configMap"]["name"], "zeromesh-ca-root-cert")
            ctrl = next(d for d in docs if d["kind"] == "Deployment")
            args = ctrl["spec"]["template"]["spec"]["containers"][0]["args"]
            self.assertIn("--trust-bundle-configmap=zeromesh-system/zeromesh-ca-root-cert", args)
            ca = "my-ca" if "ca.existingSecret=my-ca" in sets else "zeromesh-ca"
            self.assertIn(f"--ca-secret=zeromesh-system/{ca}", args)
            # Only the controller's Role names the CA Secret, and the ConfigMap by name for updates.
            role = next(d for d in docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("-ca"))
            self.assertIn({"apiGroups": [""], "resources": ["secrets"], "resourceNames": [ca], "verbs": ["get"]},
                          role["rules"])
            self.assertIn({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["zeromesh-ca-root-cert"],
                           "verbs": ["get", "update"]}, role["rules"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
