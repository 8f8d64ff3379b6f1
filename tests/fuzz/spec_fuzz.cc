// libFuzzer target: any bytes through what `warren apply -f` runs on a file: the YAML/JSON
// decoder (ParseServicesYaml), defaults and ValidateServiceSpec. Every input gives specs or an
// error with a message; a valid spec is within the limits and reads back from its own YAML.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/limits.h"
#include "common/spec.h"
#include "google/protobuf/util/message_differencer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto specs = warren::ParseServicesYaml(text);
  if (!specs.ok()) {
    if (specs.status().message().empty()) std::abort();
    return 0;
  }
  for (warren::v1::ServiceSpec& spec : *specs) {
    warren::ApplySpecDefaults(&spec);
    absl::Status s = warren::ValidateServiceSpec(spec);
    if (!s.ok()) {
      if (s.message().empty()) std::abort();
      continue;
    }
    if (spec.ByteSizeLong() > warren::limits::kMaxSpecBytes) std::abort();
    if (spec.replicas() > warren::limits::kMaxReplicas) std::abort();
    // `inspect -o yaml` output applied again gives the same spec.
    auto again = warren::ParseServicesYaml(warren::ToYaml(spec));
    if (!again.ok() || again->size() != 1) std::abort();
    warren::v1::ServiceSpec back = (*again)[0];
    warren::ApplySpecDefaults(&back);
    if (!google::protobuf::util::MessageDifferencer::Equals(spec, back)) std::abort();
  }
  return 0;
}
