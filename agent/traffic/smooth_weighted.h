// Smooth weighted round robin (nginx): over any window the picks follow the weights as closely as integers allow,
// and heavy backends are interleaved with light ones instead of picked in bursts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace zm::traffic {

class SmoothWeighted {
 public:
  // Resets the state when the weights differ from the last call's.
  void SetWeights(const std::vector<uint32_t>& weights);
  // The index of the next pick among entries with available[i] (and weight > 0); -1 when none is.
  int Pick(const std::vector<bool>& available);
  const std::vector<uint32_t>& weights() const { return weights_; }

 private:
  std::vector<uint32_t> weights_;
  std::vector<int64_t> current_;
};

}  // namespace zm::traffic
