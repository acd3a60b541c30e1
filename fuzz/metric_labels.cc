// The strings that end up in the agent's metric labels, access log lines and log lines: workload names and namespaces
// (from the config: the controller's, or the local file), identities (a peer's certificate, or derived from the
// config), policy names (CRD names), errors, and what an HBONE peer sends in its CONNECT (:authority, traceparent,
// baggage), which the proxy logs when it refuses the stream.
// Checked promises (access_log.h, conn_labels.h, common/log.h): an access log line is one line of valid JSON, plain
// ASCII, whose fields give back exactly the strings that went in (bytes >= 0x80 as \u00XX); the label key is unique
// per label set; /metrics stays well-formed Prometheus text (escaped label values, one sample per line) with the
// cardinality cap applied; a log line carrying arbitrary bytes is one line of valid JSON (and so valid UTF-8).
// Input (FuzzedDataProvider): up to four connections, each with its strings and flags.
#include <arpa/inet.h>
#include <fuzzer/FuzzedDataProvider.h>
#include <stdio.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agent/metrics/access_log.h"
#include "agent/metrics/conn_labels.h"
#include "agent/metrics/connection_metrics.h"
#include "common/log.h"
#include "common/metrics/metrics_hub.h"
#include "common/net/ip_addr.h"

namespace {

using nlohmann::json;
namespace proxy = zm::proxy;
namespace net = zm::net;

// Either family: the access log writes both ("10.0.0.1:80", "[fd00::1]:80").
net::SockAddr FuzzAddr(FuzzedDataProvider& in) {
  net::SockAddr a;
  if (in.ConsumeBool()) {
    in6_addr v6{};
    for (auto& b : v6.s6_addr) b = in.ConsumeIntegral<uint8_t>();
    a.ip = net::IpAddr::V6(v6);
  } else {
    a.ip = net::IpAddr::V4(in.ConsumeIntegral<uint32_t>());
  }
  a.port = in.ConsumeIntegral<uint16_t>();
  return a;
}

// What a JSON decoder gives back for a string escaped byte by byte (\u00XX is U+00XX, two bytes in UTF-8).
std::string Latin1ToUtf8(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back(static_cast<char>(0xc0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
    }
  }
  return out;
}

void ExpectField(const json& j, const char* key, const std::string& value, bool present) {
  auto it = j.find(key);
  if (present != (it != j.end())) std::abort();
  if (present && (!it->is_string() || it->get<std::string>() != Latin1ToUtf8(value))) std::abort();
}

void CheckAccessLog(const proxy::ConnRecord& r, std::chrono::nanoseconds duration) {
  auto end = std::chrono::system_clock::time_point(std::chrono::seconds(1790000000));
  std::string line = zm::metrics::FormatAccessLogLine(r, end, duration);
  if (line.empty() || line.back() != '\n') std::abort();
  for (size_t i = 0; i + 1 < line.size(); i++) {
    auto c = static_cast<unsigned char>(line[i]);
    if (c < 0x20 || c >= 0x80) std::abort();
  }
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) std::abort();
  ExpectField(j, "src.workload", r.source.workload, !r.source.workload.empty());
  ExpectField(j, "src.namespace", r.source.ns, !r.source.ns.empty());
  ExpectField(j, "src.identity", r.source.principal, !r.source.principal.empty());
  ExpectField(j, "dst.workload", r.destination.workload, !r.destination.workload.empty());
  ExpectField(j, "dst.namespace", r.destination.ns, !r.destination.ns.empty());
  ExpectField(j, "dst.identity", r.destination.principal, !r.destination.principal.empty());
  ExpectField(j, "policy", r.policy, r.decision == proxy::Decision::kDeny);
  ExpectField(j, "error", r.error, !r.error.empty());
  ExpectField(j, "traceparent", r.traceparent, !r.traceparent.empty());
  ExpectField(j, "baggage", r.baggage, !r.baggage.empty());
  if (j.value("bytes_sent", uint64_t{0}) != r.sent || j.value("bytes_received", uint64_t{0}) != r.received) {
    std::abort();
  }
}

// Without \x1f in any value, the key splits back into exactly the seven labels.
void CheckKey(const zm::metrics::ConnLabels& l) {
  std::vector<std::string> want = {l.reporter,
                                   l.source_workload,
                                   l.source_namespace,
                                   l.source_principal,
                                   l.destination_workload,
                                   l.destination_namespace,
                                   l.destination_principal};
  for (const auto& v : want) {
    if (v.find('\x1f') != std::string::npos) return;
  }
  std::string key = l.Key(), joined;
  for (const auto& v : want) joined += v + '\x1f';
  if (key != joined) std::abort();
}

// Prometheus text format 0.0.4: each line a comment, or `name{label="value",...} number` with \\, \" and \n the
// only escapes and no raw newline or quote inside a value.
void CheckExposition(const std::string& text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) std::abort();  // every line ends with a newline
    std::string_view line(text.data() + pos, nl - pos);
    pos = nl + 1;
    if (line.empty() || line[0] == '#') continue;
    size_t i = 0;
    while (i < line.size() && (isalnum(static_cast<unsigned char>(line[i])) || line[i] == '_' || line[i] == ':')) i++;
    if (i == 0) std::abort();
    if (i < line.size() && line[i] == '{') {
      i++;
      while (i < line.size() && line[i] != '}') {
        size_t eq = line.find("=\"", i);
        if (eq == std::string_view::npos) std::abort();
        i = eq + 2;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\') {
            if (i + 1 >= line.size() || (line[i + 1] != '\\' && line[i + 1] != '"' && line[i + 1] != 'n')) std::abort();
            i++;
          }
          i++;
        }
        if (i >= line.size()) std::abort();
        i++;  // closing quote
        if (i < line.size() && line[i] == ',') i++;
      }
      if (i >= line.size()) std::abort();
      i++;  // closing brace
    }
    if (i >= line.size() || line[i] != ' ') std::abort();
    std::string value(line.substr(i + 1));
    char* end = nullptr;
    strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0') std::abort();
  }
}

// What HboneServer::Respond logs for a refused CONNECT, captured instead of written to stderr.
void CheckLogLine(const std::string& authority, const std::string& reason) {
  char* buf = nullptr;
  size_t len = 0;
  FILE* mem = open_memstream(&buf, &len);
  if (mem == nullptr) std::abort();
  FILE* saved = stderr;
  stderr = mem;
  zm::log::Info("hbone: CONNECT rejected", {{"peer", "10.0.0.1:40000"},
                                            {"client", "spiffe://cluster.local/ns/shop/sa/web"},
                                            {"authority", authority},
                                            {"status", 400},
                                            {"reason", reason}});
  stderr = saved;
  fclose(mem);
  std::string out(buf, len);
  free(buf);
  if (out.empty() || out.back() != '\n' || out.find('\n') != out.size() - 1) std::abort();
  json j = json::parse(out, nullptr, /*allow_exceptions=*/false);  // strict: also rejects invalid UTF-8
  if (!j.is_object() || !j["authority"].is_string() || !j["reason"].is_string()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  zm::metrics::MetricsHub hub;
  zm::metrics::ConnectionMetrics metrics(hub.registry(), /*max_series=*/1 + in.ConsumeIntegralInRange<size_t>(0, 2));
  int conns = in.ConsumeIntegralInRange<int>(1, 4);
  for (int n = 0; n < conns && in.remaining_bytes() > 0; n++) {
    proxy::ConnRecord r;
    uint8_t flags = in.ConsumeIntegral<uint8_t>();
    r.reporter = (flags & 1) ? proxy::Reporter::kDestination : proxy::Reporter::kSource;
    r.decision = (flags & 2) ? proxy::Decision::kDeny : proxy::Decision::kAllow;
    r.same_node = flags & 4;
    r.flow = (flags & 8) ? "hbone-inbound" : "hbone-outbound";
    r.source.addr = FuzzAddr(in);
    r.destination.addr = FuzzAddr(in);
    r.source.workload = in.ConsumeRandomLengthString(256);
    r.source.ns = in.ConsumeRandomLengthString(256);
    r.source.principal = in.ConsumeRandomLengthString(512);
    r.destination.workload = in.ConsumeRandomLengthString(256);
    r.destination.ns = in.ConsumeRandomLengthString(256);
    r.destination.principal = in.ConsumeRandomLengthString(512);
    r.policy = in.ConsumeRandomLengthString(256);
    r.error = in.ConsumeRandomLengthString(512);
    r.traceparent = in.ConsumeRandomLengthString(128);
    r.baggage = in.ConsumeRandomLengthString(512);
    std::string authority = in.ConsumeRandomLengthString(512);
    r.start = std::chrono::steady_clock::now();
    r.sent = in.ConsumeIntegral<uint32_t>();
    r.received = in.ConsumeIntegral<uint32_t>();

    CheckAccessLog(r, std::chrono::nanoseconds(in.ConsumeIntegral<int64_t>()));
    CheckKey(zm::metrics::ConnLabels::From(r, r.reporter));
    CheckKey(zm::metrics::ConnLabels::Overflow(r.reporter));
    if (flags & 16) {
      r.opened = true;
      metrics.Open(r);
      metrics.Progress(r);
    }
    metrics.Close(r);
    metrics.TlsFailure(static_cast<proxy::TlsFailure>(flags >> 5));
    CheckLogLine(authority, r.error);
  }
  if (metrics.series() > 3) std::abort();
  CheckExposition(hub.Render());
  return 0;
}
