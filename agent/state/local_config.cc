#include "agent/state/local_config.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "common/log.h"
#include "common/net/ip_addr.h"
#include "common/tls/pem.h"

namespace zm::agent {
namespace {

using nlohmann::json;

// Thrown inside the parser only; converted to the error string at the boundary.
struct ConfigError {
  std::string field;
  std::string reason;
};

void AllowOnly(const json& obj, const std::string& where, std::initializer_list<const char*> keys) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    bool known = false;
    for (const char* k : keys) known = known || it.key() == k;
    if (!known) throw ConfigError{where.empty() ? it.key() : where + "." + it.key(), "unknown field"};
  }
}

std::string Field(const std::string& where, const char* key) {
  return where.empty() ? key : where + "." + key;
}

const json& Require(const json& obj, const std::string& where, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end()) throw ConfigError{Field(where, key), "missing"};
  return *it;
}

std::string RequireString(const json& obj, const std::string& where, const char* key) {
  const json& v = Require(obj, where, key);
  if (!v.is_string()) throw ConfigError{Field(where, key), "must be a string"};
  std::string s = v.get<std::string>();
  if (s.empty()) throw ConfigError{Field(where, key), "must not be empty"};
  return s;
}

MeshMode ParseMode(const std::string& s, const std::string& field) {
  if (s == "STRICT") return MeshMode::kStrict;
  if (s == "PERMISSIVE") return MeshMode::kPermissive;
  throw ConfigError{field, "must be \"STRICT\" or \"PERMISSIVE\", got \"" + s + "\""};
}

std::string Resolve(const std::string& config_path, const std::string& p) {
  if (p.empty() || p[0] == '/') return p;
  size_t slash = config_path.rfind('/');
  return slash == std::string::npos ? p : config_path.substr(0, slash + 1) + p;
}

std::string ReadOrThrow(const std::string& path, const std::string& field) {
  std::string content, err;
  if (!tls::ReadFile(path, &content, &err)) throw ConfigError{field, err};
  return content;
}

net::IpAddr ParseIp(const json& obj, const std::string& where, const char* key) {
  std::string ip = RequireString(obj, where, key);
  std::optional<net::IpAddr> addr = net::IpAddr::Parse(ip);
  if (!addr) throw ConfigError{Field(where, key), "not an IPv4 or IPv6 address: \"" + ip + "\""};
  return *addr;
}

// |key| (the primary address, required) and the optional list |list_key| of every address, as the controller's
// Workload ip/ips and Service vip/vips: the list may repeat the primary; the result has it first, without duplicates.
std::vector<net::IpAddr> ParseIps(const json& obj, const std::string& where, const char* key, const char* list_key) {
  std::vector<net::IpAddr> out = {ParseIp(obj, where, key)};
  if (!obj.contains(list_key)) return out;
  const json& arr = obj[list_key];
  if (!arr.is_array()) throw ConfigError{Field(where, list_key), "must be an array of IP addresses"};
  for (size_t i = 0; i < arr.size(); ++i) {
    std::string at = Field(where, list_key) + "[" + std::to_string(i) + "]";
    std::optional<net::IpAddr> ip = arr[i].is_string() ? net::IpAddr::Parse(arr[i].get<std::string>()) : std::nullopt;
    if (!ip) throw ConfigError{at, "not an IPv4 or IPv6 address: " + arr[i].dump()};
    if (std::find(out.begin(), out.end(), *ip) == out.end()) out.push_back(*ip);
  }
  return out;
}

Workload ParseWorkload(const json& w, const std::string& where, MeshMode default_mode) {
  if (!w.is_object()) throw ConfigError{where, "must be an object"};
  AllowOnly(w, where, {"name", "namespace", "serviceAccount", "ip", "ips", "node", "enrolled", "mode", "probePorts"});
  Workload out;
  out.name = RequireString(w, where, "name");
  out.ns = RequireString(w, where, "namespace");
  out.service_account = RequireString(w, where, "serviceAccount");
  out.node = RequireString(w, where, "node");
  std::string why;
  if (!tls::ValidNamespace(out.ns, &why)) throw ConfigError{Field(where, "namespace"), why};
  if (!tls::ValidServiceAccount(out.service_account, &why)) throw ConfigError{Field(where, "serviceAccount"), why};
  out.ips = ParseIps(w, where, "ip", "ips");
  const json& enrolled = Require(w, where, "enrolled");
  if (!enrolled.is_boolean()) throw ConfigError{Field(where, "enrolled"), "must be true or false"};
  out.enrolled = enrolled.get<bool>();
  out.mode = default_mode;
  if (w.contains("mode")) out.mode = ParseMode(RequireString(w, where, "mode"), Field(where, "mode"));
  if (w.contains("probePorts")) {
    const json& ports = w["probePorts"];
    if (!ports.is_array()) throw ConfigError{Field(where, "probePorts"), "must be a list of port numbers"};
    for (size_t i = 0; i < ports.size(); ++i) {
      const json& p = ports[i];
      if (!p.is_number_integer() || p.get<int64_t>() < 1 || p.get<int64_t>() > 65535) {
        throw ConfigError{Field(where, "probePorts") + "[" + std::to_string(i) + "]",
                          "must be a port number (1-65535)"};
      }
      out.probe_ports.push_back(static_cast<uint16_t>(p.get<int64_t>()));
    }
  }
  return out;
}

uint16_t ParsePort(const json& obj, const std::string& where, const char* key, bool required) {
  if (!obj.contains(key)) {
    if (required) throw ConfigError{Field(where, key), "missing"};
    return 0;
  }
  const json& v = obj[key];
  if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 65535) {
    throw ConfigError{Field(where, key), "must be a port number (1-65535)"};
  }
  return static_cast<uint16_t>(v.get<int64_t>());
}

// Same shape as the controller's Service (ports with targetPort, endpoints that may name a workload), plus an
// optional "loadBalancer" {"algorithm", "localityPreference"} as in a ServicePolicy.
Service ParseService(const json& j, const std::string& where, const std::vector<Workload>& workloads) {
  if (!j.is_object()) throw ConfigError{where, "must be an object"};
  AllowOnly(j, where, {"name", "namespace", "vip", "vips", "ports", "endpoints", "loadBalancer"});
  Service s;
  s.name = RequireString(j, where, "name");
  s.ns = RequireString(j, where, "namespace");
  s.vips = ParseIps(j, where, "vip", "vips");
  const json& ports = Require(j, where, "ports");
  if (!ports.is_array() || ports.empty()) throw ConfigError{Field(where, "ports"), "must be a non-empty array"};
  for (size_t i = 0; i < ports.size(); ++i) {
    std::string pw = where + ".ports[" + std::to_string(i) + "]";
    if (!ports[i].is_object()) throw ConfigError{pw, "must be an object"};
    AllowOnly(ports[i], pw, {"port", "targetPort"});
    ServicePortMap pm;
    pm.port = ParsePort(ports[i], pw, "port", true);
    pm.target_port = ParsePort(ports[i], pw, "targetPort", false);
    if (pm.target_port == 0) pm.target_port = pm.port;
    if (s.FindPort(pm.port) != nullptr) throw ConfigError{pw + ".port", "duplicate port"};
    s.ports.push_back(pm);
  }
  if (j.contains("endpoints")) {
    const json& eps = j["endpoints"];
    if (!eps.is_array()) throw ConfigError{Field(where, "endpoints"), "must be an array"};
    for (size_t i = 0; i < eps.size(); ++i) {
      std::string ew = where + ".endpoints[" + std::to_string(i) + "]";
      if (!eps[i].is_object()) throw ConfigError{ew, "must be an object"};
      AllowOnly(eps[i], ew, {"ip", "workload", "node"});
      ServiceEndpoint ep;
      ep.ip = ParseIp(eps[i], ew, "ip");
      if (eps[i].contains("node")) ep.node = RequireString(eps[i], ew, "node");
      if (eps[i].contains("workload")) ep.workload = RequireString(eps[i], ew, "workload");
      for (const auto& w : workloads) {
        if (std::find(w.ips.begin(), w.ips.end(), ep.ip) == w.ips.end()) continue;
        if (ep.node.empty()) ep.node = w.node;
        if (ep.workload.empty()) ep.workload = w.ns + "/" + w.name;
      }
      s.endpoints.push_back(std::move(ep));
    }
  }
  if (j.contains("loadBalancer")) {
    const json& lb = j["loadBalancer"];
    std::string lw = Field(where, "loadBalancer");
    if (!lb.is_object()) throw ConfigError{lw, "must be an object"};
    AllowOnly(lb, lw, {"algorithm", "localityPreference"});
    if (lb.contains("algorithm")) {
      std::string a = RequireString(lb, lw, "algorithm");
      if (!ParseLbAlgorithm(a, &s.policy.algorithm)) {
        throw ConfigError{
            lw + ".algorithm",
            "must be RoundRobin, LeastConnections, PowerOfTwoChoices, LeastRequest or EWMA, got \"" + a + "\""};
      }
    }
    if (lb.contains("localityPreference")) {
      if (!lb["localityPreference"].is_boolean())
        throw ConfigError{lw + ".localityPreference", "must be true or false"};
      s.policy.locality_preference = lb["localityPreference"].get<bool>();
    }
  }
  return s;
}

void Parse(const std::string& text, const std::string& path, LocalConfig* out) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    throw ConfigError{"(document)", std::string("invalid JSON: ") + e.what()};
  }
  if (!doc.is_object()) throw ConfigError{"(document)", "must be a JSON object"};
  AllowOnly(doc, "",
            {"node", "trustDomain", "mode", "rootCert", "workloads", "identities", "services", "excludeCidrs",
             "strictUdp", "tracing"});
  std::string node = RequireString(doc, "", "node");
  std::string td = RequireString(doc, "", "trustDomain");
  std::string why;
  if (!tls::ValidTrustDomain(td, &why)) throw ConfigError{"trustDomain", why};
  MeshMode mode = ParseMode(RequireString(doc, "", "mode"), "mode");

  std::string root_path = Resolve(path, RequireString(doc, "", "rootCert"));
  if (!tls::ParsePemCerts(ReadOrThrow(root_path, "rootCert"), &out->roots, &why)) {
    throw ConfigError{"rootCert", root_path + ": " + why};
  }

  std::vector<Workload> workloads;
  std::set<net::IpAddr> ips;
  if (doc.contains("workloads")) {
    const json& arr = doc["workloads"];
    if (!arr.is_array()) throw ConfigError{"workloads", "must be an array"};
    for (size_t i = 0; i < arr.size(); ++i) {
      std::string where = "workloads[" + std::to_string(i) + "]";
      Workload w = ParseWorkload(arr[i], where, mode);
      for (size_t k = 0; k < w.ips.size(); ++k) {
        if (!ips.insert(w.ips[k]).second) {
          throw ConfigError{where + (k == 0 ? ".ip" : ".ips"), "duplicate workload IP " + w.ips[k].ToString()};
        }
      }
      workloads.push_back(std::move(w));
    }
  }

  if (doc.contains("identities")) {
    const json& arr = doc["identities"];
    if (!arr.is_array()) throw ConfigError{"identities", "must be an array"};
    std::set<std::string> seen;
    for (size_t i = 0; i < arr.size(); ++i) {
      std::string where = "identities[" + std::to_string(i) + "]";
      const json& e = arr[i];
      if (!e.is_object()) throw ConfigError{where, "must be an object"};
      AllowOnly(e, where, {"spiffeId", "certChain", "key"});
      IdentityMaterial m;
      std::string id = RequireString(e, where, "spiffeId");
      if (!tls::ParseSpiffeId(id, &m.id, &why)) throw ConfigError{where + ".spiffeId", why};
      if (m.id.trust_domain != td) throw ConfigError{where + ".spiffeId", "not in trust domain " + td};
      if (!seen.insert(id).second) throw ConfigError{where + ".spiffeId", "duplicate identity"};
      std::string chain_path = Resolve(path, RequireString(e, where, "certChain"));
      if (!tls::ParsePemCerts(ReadOrThrow(chain_path, where + ".certChain"), &m.creds.chain, &why)) {
        throw ConfigError{where + ".certChain", chain_path + ": " + why};
      }
      std::string key_path = Resolve(path, RequireString(e, where, "key"));
      if (!tls::ParsePemPrivateKey(ReadOrThrow(key_path, where + ".key"), &m.creds.key, &why)) {
        throw ConfigError{where + ".key", key_path + ": " + why};
      }
      out->identities.push_back(std::move(m));
    }
  }
  std::vector<Service> services;
  if (doc.contains("services")) {
    const json& arr = doc["services"];
    if (!arr.is_array()) throw ConfigError{"services", "must be an array"};
    std::set<net::IpAddr> vips;
    std::set<std::string> keys;
    for (size_t i = 0; i < arr.size(); ++i) {
      std::string where = "services[" + std::to_string(i) + "]";
      Service s = ParseService(arr[i], where, workloads);
      for (size_t k = 0; k < s.vips.size(); ++k) {
        std::string field = where + (k == 0 ? ".vip" : ".vips");
        if (!vips.insert(s.vips[k]).second) throw ConfigError{field, "duplicate service VIP " + s.vips[k].ToString()};
        if (ips.count(s.vips[k])) throw ConfigError{field, "is a workload IP"};
      }
      if (!keys.insert(s.Key()).second) throw ConfigError{where + ".name", "duplicate service " + s.Key()};
      services.push_back(std::move(s));
    }
  }
  auto snapshot = std::make_shared<MeshSnapshot>(td, node, mode, std::move(workloads), std::move(services));
  // As MeshConfig's: destinations never captured, and whether STRICT pods may send UDP other than DNS.
  if (doc.contains("excludeCidrs")) {
    const json& arr = doc["excludeCidrs"];
    if (!arr.is_array()) throw ConfigError{"excludeCidrs", "must be an array of CIDRs"};
    std::vector<std::string> cidrs;
    for (size_t i = 0; i < arr.size(); ++i) {
      std::string where = "excludeCidrs[" + std::to_string(i) + "]";
      if (!arr[i].is_string() || !net::Cidr::Parse(arr[i].get<std::string>())) {
        throw ConfigError{where, "not a CIDR (\"10.0.0.0/8\", \"fd00::/8\")"};
      }
      cidrs.push_back(arr[i].get<std::string>());
    }
    snapshot->set_exclude_cidrs(std::move(cidrs));
  }
  if (doc.contains("strictUdp")) {
    std::string udp = RequireString(doc, "", "strictUdp");
    if (udp != "DNSOnly" && udp != "Allow") throw ConfigError{"strictUdp", "must be \"DNSOnly\" or \"Allow\""};
    snapshot->set_strict_udp_allowed(udp == "Allow");
  }
  // As MeshConfig's spec.tracing: how many new traces the proxies sample (where spans go is the --otlp-endpoint flag).
  if (doc.contains("tracing")) {
    const json& t = doc["tracing"];
    if (!t.is_object()) throw ConfigError{"tracing", "must be an object ({\"samplingPercentage\": 0..100})"};
    AllowOnly(t, "tracing", {"samplingPercentage"});
    const json& pct = Require(t, "tracing", "samplingPercentage");
    if (!pct.is_number() || !(pct.get<double>() >= 0 && pct.get<double>() <= 100)) {
      throw ConfigError{"tracing.samplingPercentage", "must be a number from 0 to 100, got " + pct.dump()};
    }
    snapshot->set_tracing_sampling_ppm(static_cast<uint32_t>(std::lround(pct.get<double>() * 10000)));
  }
  out->snapshot = std::move(snapshot);
}

}  // namespace

bool ParseLocalConfig(const std::string& json_text, const std::string& path, LocalConfig* out, std::string* error) {
  LocalConfig cfg;
  try {
    Parse(json_text, path, &cfg);
  } catch (const ConfigError& e) {
    *error = path + ": " + e.field + ": " + e.reason;
    return false;
  } catch (const nlohmann::json::exception& e) {
    *error = path + ": " + e.what();
    return false;
  }
  *out = std::move(cfg);
  return true;
}

bool LoadLocalConfig(const std::string& path, LocalConfig* out, std::string* error) {
  std::string text;
  if (!tls::ReadFile(path, &text, error)) return false;
  return ParseLocalConfig(text, path, out, error);
}

LocalConfigSource::LocalConfigSource(std::string path, SnapshotHolder* snapshots, InMemoryCertStore* certs)
    : path_(std::move(path)), snapshots_(snapshots), certs_(certs) {}

bool LocalConfigSource::Reload(std::string* error) {
  std::lock_guard<std::mutex> l(mu_);
  LocalConfig cfg;
  if (!LoadLocalConfig(path_, &cfg, error)) {
    log::Error("config rejected, keeping the last good one", {{"path", path_}, {"error", *error}});
    return false;
  }
  std::string why;
  if (!certs_->Replace(cfg.snapshot->trust_domain(), std::move(cfg.roots), std::move(cfg.identities), &why)) {
    *error = path_ + ": identities: " + why;
    log::Error("config rejected, keeping the last good one", {{"path", path_}, {"error", *error}});
    return false;
  }
  log::Info("config loaded", {{"path", path_},
                              {"node", cfg.snapshot->node()},
                              {"workloads", cfg.snapshot->size()},
                              {"mode", MeshModeName(cfg.snapshot->default_mode())}});
  snapshots_->Set(std::move(cfg.snapshot));
  return true;
}

}  // namespace zm::agent
