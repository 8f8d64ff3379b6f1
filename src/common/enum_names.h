#ifndef WARREN_COMMON_ENUM_NAMES_H_
#define WARREN_COMMON_ENUM_NAMES_H_

#include <optional>
#include <string>
#include <string_view>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/generated_enum_reflection.h"
#include "nlohmann/json.hpp"

namespace warren {

// Enums that replaced string fields keep the strings as display names (the
// `(warren.v1.display_name)` option of each value): what JSON/YAML output, the CLI and the
// metric labels show. Values without the option show their name ("DEPLOYMENT_PHASE_PAUSED").
std::string EnumDisplayName(const google::protobuf::EnumValueDescriptor* value);

// "-" for an unset (0) value, else the display name.
template <typename E>
std::string DisplayName(E value) {
  if (static_cast<int>(value) == 0) return "-";
  const auto* v = google::protobuf::GetEnumDescriptor<E>()->FindValueByNumber(value);
  return v == nullptr ? std::to_string(static_cast<int>(value)) : EnumDisplayName(v);
}

// The value whose display name is `name`, if any.
template <typename E>
std::optional<E> ParseDisplayName(std::string_view name) {
  const auto* d = google::protobuf::GetEnumDescriptor<E>();
  for (int i = 0; i < d->value_count(); ++i) {
    if (d->value(i)->number() != 0 && EnumDisplayName(d->value(i)) == name) {
      return static_cast<E>(d->value(i)->number());
    }
  }
  return std::nullopt;
}

// Rewrites the enum values in the JSON form of a `message` (protobuf's JSON mapping, nested
// messages and repeated fields included) to their display names, where they have one.
void ApplyEnumDisplayNames(nlohmann::ordered_json& json,
                           const google::protobuf::Descriptor* message);

}  // namespace warren

#endif  // WARREN_COMMON_ENUM_NAMES_H_
