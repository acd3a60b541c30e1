// Command-line parsing for mesh-controller: "--flag value" or "--flag=value".
#pragma once

#include <string>

#include "controller/controller.h"

namespace zm::ctrl {

struct ParsedFlags {
  Options options;
  std::string log_level = "info";
  bool help = false;
};

// false with *error set on an unknown flag, a missing value or a malformed value.
bool ParseFlags(int argc, char** argv, ParsedFlags* out, std::string* error);
const char* Usage();

}  // namespace zm::ctrl
