#include "agent/traffic/smooth_weighted.h"

namespace zm::traffic {

void SmoothWeighted::SetWeights(const std::vector<uint32_t>& weights) {
  if (weights == weights_) return;
  weights_ = weights;
  current_.assign(weights_.size(), 0);
}

int SmoothWeighted::Pick(const std::vector<bool>& available) {
  int64_t total = 0;
  int best = -1;
  for (size_t i = 0; i < weights_.size(); ++i) {
    if (weights_[i] == 0 || i >= available.size() || !available[i]) continue;
    current_[i] += weights_[i];
    total += weights_[i];
    if (best < 0 || current_[i] > current_[static_cast<size_t>(best)]) best = static_cast<int>(i);
  }
  if (best >= 0) current_[static_cast<size_t>(best)] -= total;
  return best;
}

}  // namespace zm::traffic
