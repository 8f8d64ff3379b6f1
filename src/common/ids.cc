#include "common/ids.h"

#include <random>

#include "absl/synchronization/mutex.h"

namespace warren {

std::string NewId() {
  static absl::Mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  uint64_t v;
  {
    absl::MutexLock lock(&mu);
    v = rng();
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(12, '0');
  for (int i = 0; i < 12; ++i) id[i] = kHex[(v >> (i * 4)) & 0xf];
  return id;
}

}  // namespace warren
