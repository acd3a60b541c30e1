// The console API's JSON shapes (docs/ui.md, "API routes"). Fields the backend may omit are optional so that the
// pages render what is there instead of failing on an older controller.

export interface Session {
  user: string;
  mode: "universal" | "kubernetes";
  can_write: boolean; // the console applies for this user (universal mode, a writer)
  may_write?: boolean; // the user's own rights (Kubernetes: create trafficpermissions)
  trust_domain: string;
}

export interface Problem {
  message: string;
  hint: string;
  node?: string;
  severity?: string;
}

export interface Attachment {
  ifname: string;
  ifindex?: number;
  attached: boolean;
  error?: string;
  position?: number;
  repairs?: number;
  last_repair?: string;
  hook?: string;
}

export interface AgentCert {
  spiffe_id: string;
  not_after_unix: number;
  seconds_left: number;
}

export interface Agent {
  node: string;
  version?: string;
  connected: boolean;
  health?: string;
  config_version_applied?: number;
  config_version_latest?: number;
  synced?: boolean;
  nacked_version?: number;
  nack_error?: string;
  last_report_age_seconds?: number;
  fail_mode?: string;
  errors?: string[];
  enrolled_pods?: string[];
  attachments?: Attachment[];
  attachments_ok?: number;
  attachments_total?: number;
  certs?: AgentCert[];
}

export interface Overview {
  healthy: boolean;
  problems: Problem[];
  warnings?: Problem[];
  controller: {
    address?: string;
    reachable?: boolean;
    version?: string;
    config_version?: number;
    trust_domain?: string;
    manifests_dir?: string;
    error?: string;
  };
  mesh?: { default_mode?: string; fail_mode?: string; trust_domain?: string };
  agents?: Agent[];
  enrolled_pods_by_namespace?: Record<string, number>;
  soonest_cert_expiry?: { spiffe_id: string; node: string; seconds_left: number } | null;
}

export type Mode = "STRICT" | "PERMISSIVE";

export interface Workload {
  namespace: string;
  name: string;
  node: string;
  ip: string;
  ips?: string[]; // every address of a dual-stack pod, ip first
  service_account: string;
  identity: string;
  enrolled: boolean;
  mode: Mode;
  labels?: Record<string, string>;
}

export interface Namespace {
  name: string;
  workloads: number;
  enrolled: number;
  mode: Mode | "mixed" | ""; // "" while no workload of it is enrolled
  namespace_enrolled: boolean;
}

export interface RouteBackend {
  name: string;
  namespace: string;
  port: number;
  weight: number;
  percent: number;
  measured_connections: number;
  measured_percent: number;
}

export interface Route {
  name: string;
  namespace: string;
  port: number;
  backends: RouteBackend[];
}

// An HTTPRoute or GRPCRoute, as `meshctl routes -o json` gives it: one entry per rule.
export interface L7Route {
  kind: "HTTPRoute" | "GRPCRoute";
  namespace: string;
  name: string;
  parents: { service: string; port: number }[];
  rules: {
    name?: string;
    matches: string[];
    filters?: { type: string }[];
    backends: { service: string; port: number; weight: number; share_percent: number }[];
  }[];
}

export interface Service {
  namespace: string;
  name: string;
  vip: string;
  vips?: string[]; // every cluster IP of a dual-stack Service, vip first
  ports: { name: string; port: number; target_port: number; protocol?: string }[];
  endpoints: { ip: string; workload: string; node: string }[];
  routes: Route[];
  l7_routes?: L7Route[];
}

export interface Permission {
  namespace: string;
  name: string;
  action: string;
  sources: unknown;
  destination: unknown;
}

export interface Denied {
  workload: string;
  policy: string;
  reason: string;
}

export interface Policies {
  default_policy: string;
  default_mode: string;
  permissions: Permission[];
  effective: { workload: string; mode: string; allowed: string[]; denied: Denied[]; plaintext: string }[];
}

export interface Reach {
  allow: boolean;
  policy: string;
  reason: string;
  source_identity: string;
  mtls: boolean;
  http_rules?: boolean; // TrafficPermission http rules decide each request: only some are allowed
  explain: string[];
}

export interface Who {
  to: string;
  allowed: { workload: string; identity: string; policy: string }[];
  denied: { workload: string; identity: string; policy: string; reason: string }[];
  plaintext: { allow: boolean; reason: string };
}

export interface TrafficPair {
  source: string;
  destination: string;
  mtls: boolean;
  connections_per_second: number;
  bytes_per_second: number;
  errors_per_second: number;
  connections_total: number;
  denials_total: number;
}

export interface Traffic {
  updated_unix: number;
  pairs: TrafficPair[];
}

// Every wizard step's answer carries these.
export interface WizardResult {
  manifest: string;
  kubectl: string;
  applied: boolean;
  written: string[];
}

export interface EnrollResult extends WizardResult {
  namespace: string;
  already_enrolled: boolean;
  workloads: { name: string; node: string; ip: string; enrolled_now: boolean }[];
  changes: string[];
  restarts: number;
}

export interface ModeResult extends WizardResult {
  breaking_clients: { source: string; destination: string; connections: number }[];
}

export interface PolicyResult extends WizardResult {
  observed_sources: { identity: string; workload: string; connections: number; destinations: string[] }[];
}

export interface CanaryResult extends WizardResult {
  candidates: { name: string; vip: string; ports: unknown }[];
}
