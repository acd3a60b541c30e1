// Optional fields of a JSON request body, read with their type checked. nlohmann's value("k", default) throws when
// the field is there with another type ({"apply": "yes"}); a request body is untrusted, so each reader here answers
// false with a specific error instead.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace zm::ctrl::console {

// *out keeps its value when |key| is absent; false with *error when it is present with another type.
bool OptionalString(const nlohmann::json& body, const char* key, std::string* out, std::string* error);
bool OptionalBool(const nlohmann::json& body, const char* key, bool* out, std::string* error);
// A TCP port, 1..65535.
bool OptionalPort(const nlohmann::json& body, const char* key, uint32_t* out, std::string* error);

}  // namespace zm::ctrl::console
