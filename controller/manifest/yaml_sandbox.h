// yaml-cpp 0.7 hangs, allocating without bound, on some invalid inputs (a ',' where a token starts, in several
// forms; yaml_guard.h refuses those we know, fuzz/manifest.cc keeps finding new ones). Before the controller parses a
// manifest it lets a forked child parse it first, under a time limit: a child that does not finish means the input
// is refused, and the controller itself never runs into the defect. The children are forked by a helper process
// forked once, while the controller is small (forking the controller itself copied the page tables of its whole mesh
// for every changed file).
#pragma once

#include <string>

namespace zm::manifest {

// True when yaml-cpp finishes on |text| within |seconds| in a child process (parse errors count as finishing: the
// real parse reports them). False with |why| otherwise, or when no child could be started.
bool YamlParsesInTime(const std::string& text, unsigned seconds, std::string* why);

}  // namespace zm::manifest
