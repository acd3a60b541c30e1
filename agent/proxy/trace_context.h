// W3C Trace Context on HBONE CONNECT requests (ztunnel forwards `traceparent` and `baggage`): what a peer sends is
// checked before it reaches telemetry, since it is the peer's claim and ends up in our access log.
#pragma once

#include <string>
#include <string_view>

namespace zm::proxy {

constexpr size_t kMaxBaggageBytes = 8192;  // W3C Baggage: a platform must propagate at least this much

// True for a version-00 traceparent "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>" with non-zero ids
// (lowercase hex, as the spec requires). Future versions (not "ff") are accepted when their first 55 characters
// follow the same layout and any rest starts with '-'.
bool ValidTraceparent(std::string_view v);

// Appends one `baggage` header line to |into| (several lines form one list). Lines with control characters are
// dropped, and so is what would take |into| past kMaxBaggageBytes. Returns false when something was dropped.
bool AppendBaggage(std::string* into, std::string_view line);

}  // namespace zm::proxy
