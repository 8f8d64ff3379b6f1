#include "common/enum_names.h"

#include "warren/v1/objects.pb.h"

namespace warren {

using google::protobuf::Descriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;

std::string EnumDisplayName(const EnumValueDescriptor* value) {
  const std::string& name = value->options().GetExtension(v1::display_name);
  return name.empty() ? value->name() : name;
}

namespace {

void RewriteValue(nlohmann::ordered_json& v, const FieldDescriptor* field) {
  if (field->type() == FieldDescriptor::TYPE_MESSAGE) {
    if (field->is_map()) {
      const FieldDescriptor* value_field = field->message_type()->map_value();
      if (v.is_object()) {
        for (auto& [k, item] : v.items()) RewriteValue(item, value_field);
      }
      return;
    }
    ApplyEnumDisplayNames(v, field->message_type());
    return;
  }
  if (field->type() != FieldDescriptor::TYPE_ENUM || !v.is_string()) return;
  const EnumValueDescriptor* e = field->enum_type()->FindValueByName(v.get<std::string>());
  if (e != nullptr) v = EnumDisplayName(e);
}

}  // namespace

void ApplyEnumDisplayNames(nlohmann::ordered_json& json, const Descriptor* message) {
  if (!json.is_object() || message == nullptr) return;
  for (auto& [key, value] : json.items()) {
    const FieldDescriptor* field = message->FindFieldByCamelcaseName(key);
    if (field == nullptr) field = message->FindFieldByName(key);
    if (field == nullptr) continue;
    if (field->is_repeated() && !field->is_map() && value.is_array()) {
      for (auto& item : value) RewriteValue(item, field);
    } else {
      RewriteValue(value, field);
    }
  }
}

}  // namespace warren
