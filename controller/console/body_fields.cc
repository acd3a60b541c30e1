#include "controller/console/body_fields.h"

namespace zm::ctrl::console {

namespace {

// The field, or nullptr when the body has none (a non-object body has no fields).
const nlohmann::json* Field(const nlohmann::json& body, const char* key) {
  if (!body.is_object()) return nullptr;
  auto it = body.find(key);
  return it == body.end() ? nullptr : &*it;
}

bool Wrong(const char* key, const char* want, const nlohmann::json& got, std::string* error) {
  *error = std::string("\"") + key + "\" must be " + want + ", not " + got.type_name();
  return false;
}

}  // namespace

bool OptionalString(const nlohmann::json& body, const char* key, std::string* out, std::string* error) {
  const nlohmann::json* v = Field(body, key);
  if (v == nullptr) return true;
  if (!v->is_string()) return Wrong(key, "a string", *v, error);
  *out = v->get<std::string>();
  return true;
}

bool OptionalBool(const nlohmann::json& body, const char* key, bool* out, std::string* error) {
  const nlohmann::json* v = Field(body, key);
  if (v == nullptr) return true;
  if (!v->is_boolean()) return Wrong(key, "true or false", *v, error);
  *out = v->get<bool>();
  return true;
}

bool OptionalPort(const nlohmann::json& body, const char* key, uint32_t* out, std::string* error) {
  const nlohmann::json* v = Field(body, key);
  if (v == nullptr) return true;
  if (!v->is_number_integer() || v->get<int64_t>() < 1 || v->get<int64_t>() > 65535) {
    return Wrong(key, "a port number (1..65535)", *v, error);
  }
  *out = static_cast<uint32_t>(v->get<int64_t>());
  return true;
}

}  // namespace zm::ctrl::console
