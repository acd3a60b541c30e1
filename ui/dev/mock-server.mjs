// Front-end development only: serves ui/dist and fixture answers that follow the console API contract
// (docs/ui.md), so the pages can be worked on without a cluster. The ctest test never uses it: it runs against the
// real controller of the demo cluster.
//   npm run build && node dev/mock-server.mjs [port]     tokens: "admin" (can write), "viewer" (read-only)
import { createServer } from "node:http";
import { readFileSync, existsSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const dist = join(dirname(fileURLToPath(import.meta.url)), "..", "dist");
const port = Number(process.argv[2] ?? 8099);
const now = () => Math.floor(Date.now() / 1000);
const state = { legacyEnrolled: false, legacyStrict: false, deny: false, agentDown: false };

const workloads = () => [
  { namespace: "shop", name: "frontend", node: "node1", ip: "10.1.1.2", service_account: "frontend", identity: "spiffe://cluster.local/ns/shop/sa/frontend", enrolled: true, mode: "STRICT", labels: { app: "frontend" } },
  { namespace: "shop", name: "backend-v1", node: "node2", ip: "10.1.2.2", service_account: "backend", identity: "spiffe://cluster.local/ns/shop/sa/backend", enrolled: true, mode: "STRICT", labels: { app: "backend", version: "v1" } },
  { namespace: "shop", name: "backend-v2", node: "node1", ip: "10.1.1.3", service_account: "backend", identity: "spiffe://cluster.local/ns/shop/sa/backend", enrolled: true, mode: "STRICT", labels: { app: "backend", version: "v2" } },
  { namespace: "legacy", name: "legacy-client", node: "node2", ip: "10.1.2.3", service_account: "legacy-client", identity: "spiffe://cluster.local/ns/legacy/sa/legacy-client", enrolled: state.legacyEnrolled, mode: state.legacyStrict ? "STRICT" : "PERMISSIVE", labels: { app: "legacy-client" } },
];

const agent = (node, connected) => ({
  node, version: "0.1.0", connected, health: connected ? "SERVING" : "unknown", config_version_applied: 7, config_version_latest: 7,
  synced: connected, nacked_version: 0, nack_error: "", last_report_unix: now() - 1, last_report_age_seconds: connected ? 1 : 14,
  fail_mode: "closed", errors: [], enrolled_pods: node === "node1" ? ["shop/frontend", "shop/backend-v2"] : ["shop/backend-v1"],
  attachments: [{ ifname: "eth0", ifindex: 2, attached: true, error: "", position: 0, repairs: 0, last_repair_unix: 0, last_repair: "", hook: "tcx" },
    { ifname: `veth-${node}-a`, ifindex: 5, attached: true, error: "", position: 0, repairs: 0, last_repair_unix: 0, last_repair: "", hook: "tcx" }],
  attachments_ok: 2, attachments_total: 2,
  certs: [{ spiffe_id: "spiffe://cluster.local/ns/shop/sa/backend", not_after_unix: now() + 80000, seconds_left: 80000 }],
  soonest_cert_expiry_unix: now() + 80000,
});

const overview = () => {
  const problems = state.agentDown ? [{ message: "agent on node node2 is disconnected from the controller (last report 14s ago)", hint: "check that mesh-agent runs on node2 (its log says why it stopped); it reconnects on its own", node: "node2" }] : [];
  return { healthy: problems.length === 0, problems, warnings: [],
    controller: { address: "10.0.0.1:15012", reachable: true, version: "0.1.0", epoch: "x", config_version: 7, trust_domain: "cluster.local", manifests_dir: "/run/zeromesh/zmdemo/manifests", manifest_errors: [], credentials: [] },
    mesh: { default_mode: "STRICT", fail_mode: "closed", trust_domain: "cluster.local" },
    agents: [agent("node1", true), agent("node2", !state.agentDown)],
    enrolled_pods_by_namespace: { shop: 3 }, soonest_cert_expiry: { spiffe_id: "spiffe://cluster.local/ns/shop/sa/backend", node: "node2", not_after_unix: now() + 80000, seconds_left: 80000 } };
};

const traffic = () => ({ updated_unix: now(), pairs: [
  { source: "shop/frontend", destination: "shop/backend-v1", mtls: true, connections_per_second: 0.9, bytes_per_second: 2300, errors_per_second: 0, connections_total: 91, denials_total: 0 },
  { source: "shop/frontend", destination: "shop/backend-v2", mtls: true, connections_per_second: 0.1, bytes_per_second: 260, errors_per_second: 0, connections_total: 10, denials_total: 0 },
  { source: state.legacyEnrolled ? "legacy/legacy-client" : "unknown", destination: "shop/backend-v1", mtls: state.legacyEnrolled, connections_per_second: 0.2, bytes_per_second: 500, errors_per_second: state.deny ? 0.2 : 0, connections_total: 12, denials_total: state.deny ? 5 : 0 },
] });

const manifest = (kind, ns) => `apiVersion: zeromesh.io/v1alpha1\nkind: ${kind}\nmetadata:\n  name: console-${ns}\n  namespace: ${ns}\n`;
const wizard = (path, body) => {
  const common = (kind) => ({ manifest: manifest(kind, body.namespace) + (kind === "TrafficPermission" && (body.deny ?? []).length ? "spec:\n  action: DENY\n" : ""),
    kubectl: `kubectl apply -f - <<'EOF'\n${manifest(kind, body.namespace)}EOF`, applied: !!body.apply, written: body.apply ? [`console-${kind.toLowerCase()}-${body.namespace}.yaml`] : [] });
  if (path === "enroll") {
    if (body.apply) state.legacyEnrolled = true;
    return { namespace: body.namespace, already_enrolled: false, workloads: [{ name: "legacy-client", node: "node2", ip: "10.1.2.3", enrolled_now: state.legacyEnrolled }], changes: ["label namespace legacy zeromesh.io/mesh=enabled", "legacy-client joins the mesh (identity spiffe://cluster.local/ns/legacy/sa/legacy-client)"], restarts: 0, ...common("Namespace") };
  }
  if (path === "mode") { if (body.apply) state.legacyStrict = true; return { breaking_clients: [{ source: "10.1.9.9", destination: "legacy/legacy-client", connections: 3 }], ...common("MeshConfig") }; }
  if (path === "policy") { if (body.apply) state.deny = true; return { observed_sources: [
    { identity: "spiffe://cluster.local/ns/shop/sa/frontend", workload: "shop/frontend", connections: 120, destinations: ["shop/backend-v1", "shop/backend-v2"] },
    { identity: "spiffe://cluster.local/ns/legacy/sa/legacy-client", workload: "legacy/legacy-client", connections: 12, destinations: ["shop/backend-v1"] }], ...common("TrafficPermission") }; }
  if (path === "canary") return { candidates: [{ name: "backend-v1", vip: "10.96.0.11", ports: [80] }, { name: "backend-v2", vip: "10.96.0.12", ports: [80] }], ...common("TCPRoute") };
  return null;
};

const routes = {
  "/api/session": (tok) => ({ user: `token:${tok.slice(0, 4)}…`, mode: "universal", can_write: tok === "admin", trust_domain: "cluster.local" }),
  "/api/overview": overview,
  "/api/workloads": () => ({ workloads: workloads() }),
  "/api/namespaces": () => ({ namespaces: [
    { name: "legacy", workloads: 1, enrolled: state.legacyEnrolled ? 1 : 0, mode: state.legacyEnrolled ? (state.legacyStrict ? "STRICT" : "PERMISSIVE") : "", namespace_enrolled: state.legacyEnrolled },
    { name: "shop", workloads: 3, enrolled: 3, mode: "STRICT", namespace_enrolled: true }] }),
  "/api/services": () => ({ services: [{ namespace: "shop", name: "backend", vip: "10.96.0.10", ports: [{ name: "http", port: 80, target_port: 8080 }],
    endpoints: [{ ip: "10.1.2.2", workload: "shop/backend-v1", node: "node2" }, { ip: "10.1.1.3", workload: "shop/backend-v2", node: "node1" }],
    routes: [{ name: "backend-split", namespace: "shop", port: 80, backends: [
      { name: "backend-v1", namespace: "shop", port: 80, weight: 90, percent: 90, measured_connections: 91, measured_percent: 90.1 },
      { name: "backend-v2", namespace: "shop", port: 80, weight: 10, percent: 10, measured_connections: 10, measured_percent: 9.9 }] }] },
    { namespace: "shop", name: "backend-v1", vip: "10.96.0.11", ports: [{ name: "http", port: 80, target_port: 8080 }], endpoints: [{ ip: "10.1.2.2", workload: "shop/backend-v1", node: "node2" }], routes: [] }] }),
  "/api/policies": () => ({ default_policy: "ALLOW", default_mode: "STRICT",
    permissions: state.deny ? [{ namespace: "shop", name: "console-deny", action: "DENY", sources: { identities: ["spiffe://cluster.local/ns/legacy/sa/legacy-client"] }, destination: {} }] : [],
    effective: workloads().map((w) => ({ workload: `${w.namespace}/${w.name}`, mode: w.mode, allowed: ["shop/frontend"].concat(state.deny ? [] : ["legacy/legacy-client"]),
      denied: state.deny ? [{ workload: "legacy/legacy-client", policy: "shop/console-deny", reason: "DENY rule matches the source identity" }] : [], plaintext: w.mode === "STRICT" ? "refused" : "allowed" })) }),
  "/api/policies/reach": (_t, q) => ({ allow: !(state.deny && q.get("from") === "legacy/legacy-client"), policy: state.deny ? "shop/console-deny" : "default ALLOW", reason: "fixture",
    source_identity: "spiffe://cluster.local/ns/" + (q.get("from") ?? "").replace("/", "/sa/"), mtls: true, explain: ["source identity resolved", "no DENY matched", "default policy ALLOW"] }),
  "/api/policies/who": (_t, q) => ({ to: q.get("to"), allowed: [{ workload: "shop/frontend", identity: "spiffe://cluster.local/ns/shop/sa/frontend", policy: "default ALLOW" }],
    denied: [{ workload: "legacy/legacy-client", identity: "", policy: "STRICT", reason: "plaintext refused by STRICT" }], plaintext: { allow: false, reason: "the workload is STRICT" } }),
  "/api/traffic": traffic,
};

function send(res, code, body, type = "application/json") {
  res.writeHead(code, { "Content-Type": type, "Cache-Control": "no-store" });
  res.end(typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body));
}

createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (!url.pathname.startsWith("/api/")) {
    const rel = url.pathname === "/" ? "index.html" : normalize(url.pathname).replace(/^\/+/, "");
    const file = join(dist, rel);
    if (!file.startsWith(dist) || !existsSync(file)) return send(res, 404, { error: "not found" });
    const type = file.endsWith(".js") ? "text/javascript" : file.endsWith(".css") ? "text/css" : "text/html";
    return send(res, 200, readFileSync(file), type);
  }
  const tok = (req.headers.authorization ?? "").replace(/^Bearer /, "");
  if (tok !== "admin" && tok !== "viewer") return send(res, 401, { error: "missing or unknown token" });
  if (url.pathname === "/dev/agent") { state.agentDown = url.searchParams.get("down") === "1"; return send(res, 200, {}); }
  if (url.pathname.startsWith("/api/wizard/")) {
    if (req.method !== "POST") return send(res, 405, { error: "POST only" });
    let data = "";
    req.on("data", (c) => (data += c));
    req.on("end", () => {
      let body;
      try { body = JSON.parse(data); } catch { return send(res, 400, { error: "the body is not JSON" }); }
      if (body.apply && tok !== "admin") return send(res, 403, { error: "this token may not write" });
      const out = wizard(url.pathname.slice("/api/wizard/".length), body);
      return out ? send(res, 200, out) : send(res, 404, { error: "no such step" });
    });
    return;
  }
  const f = routes[url.pathname];
  return f ? send(res, 200, f(tok, url.searchParams)) : send(res, 404, { error: "no such route" });
}).listen(port, "127.0.0.1", () => console.log(`mock console on http://127.0.0.1:${port} (tokens: admin, viewer)`));
