// Temporary until the spec work lands: minimal versions of the update-config helpers.
#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/spec.h"

namespace warren {

v1::UpdateConfig EffectiveRollbackConfig(const v1::ServiceSpec& spec) {
  v1::UpdateConfig out = spec.update_config();
  const v1::UpdateConfig& rb = spec.rollback_config();
  if (rb.has_parallelism()) out.set_parallelism(rb.parallelism());
  if (!rb.max_surge().empty()) out.set_max_surge(rb.max_surge());
  if (!rb.max_unavailable().empty()) out.set_max_unavailable(rb.max_unavailable());
  if (!rb.order().empty()) out.set_order(rb.order());
  if (rb.has_delay()) *out.mutable_delay() = rb.delay();
  if (rb.has_min_ready()) *out.mutable_min_ready() = rb.min_ready();
  if (rb.has_healthy_deadline()) *out.mutable_healthy_deadline() = rb.healthy_deadline();
  if (rb.has_progress_deadline()) *out.mutable_progress_deadline() = rb.progress_deadline();
  return out;
}

absl::StatusOr<int> ResolveBudget(std::string_view value, int replicas, bool round_up) {
  std::string v(value);
  int n = 0;
  if (absl::EndsWith(v, "%")) {
    if (!absl::SimpleAtoi(v.substr(0, v.size() - 1), &n) || n < 0 || n > 100) {
      return absl::InvalidArgumentError(absl::StrCat("invalid budget \"", v, "\""));
    }
    double exact = replicas * n / 100.0;
    return static_cast<int>(round_up ? std::ceil(exact) : std::floor(exact));
  }
  if (!absl::SimpleAtoi(v, &n) || n < 0) {
    return absl::InvalidArgumentError(absl::StrCat("invalid budget \"", v, "\""));
  }
  return n;
}

}  // namespace warren
