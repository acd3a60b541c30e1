// Percent-encoding (RFC 3986 2.1) with the caller's choice of the bytes that stay as they are: a URL query value
// keeps the unreserved characters, a gRPC grpc-message keeps all printable ASCII.
#pragma once

#include <string>
#include <string_view>

namespace zm {

// Whether byte |c| may stand for itself in the output.
using KeepByte = bool (*)(unsigned char c);

// The RFC 3986 2.3 unreserved characters: ASCII letters, digits, '-', '.', '_', '~' (independent of the locale).
bool UrlUnreserved(unsigned char c);

// Every byte of |in| that |keep| refuses becomes "%XX" (upper-case hex). '%' itself is always encoded, whatever
// |keep| says: otherwise the output could not be told apart from an escape.
std::string PercentEncode(std::string_view in, KeepByte keep);

}  // namespace zm
