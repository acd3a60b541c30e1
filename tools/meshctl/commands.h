// Runs one parsed meshctl command: fetches what it needs from the controller, prints, returns the exit code.
#pragma once

#include <string>

#include "tools/meshctl/cli.h"

namespace zm::meshctl {

int Run(const Invocation& inv, std::string* out, std::string* err);

}  // namespace zm::meshctl
