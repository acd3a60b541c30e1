// Pre-parse guard for yaml-cpp 0.7 defects that hang or exhaust memory instead of throwing: a document whose root
// node starts with ',' (e.g. ",a: b" or "--- ,") makes YAML::LoadAll allocate without bound. Such text is invalid
// YAML anyway (',' cannot start a plain scalar), so rejecting it up front loses nothing. So is a control character
// other than tab, LF and CR (YAML forbids them; yaml-cpp skips a NUL and then hangs on what follows). fuzz/manifest.cc
// looks for more.
#pragma once

#include <string>

namespace zm::manifest {

// 0 when the text is safe to hand to yaml-cpp, else the 1-based line of the offending document root.
int UnsafeYamlLine(const std::string& text);

}  // namespace zm::manifest
