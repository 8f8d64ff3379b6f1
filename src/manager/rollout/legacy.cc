#include "manager/rollout/legacy.h"

#include <map>
#include <string>

#include "common/enum_names.h"
#include "google/protobuf/unknown_field_set.h"

namespace warren {
namespace {

// The length-delimited unknown fields of `msg` by number (removed from it).
std::map<int, std::string> TakeStrings(google::protobuf::Message* msg) {
  std::map<int, std::string> out;
  google::protobuf::UnknownFieldSet* unknown = msg->GetReflection()->MutableUnknownFields(msg);
  if (unknown->empty()) return out;
  google::protobuf::UnknownFieldSet kept;
  for (int i = 0; i < unknown->field_count(); ++i) {
    const google::protobuf::UnknownField& f = unknown->field(i);
    if (f.type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
      out[f.number()] = f.length_delimited();
    } else {
      kept.AddField(f);
    }
  }
  unknown->Clear();
  unknown->MergeFrom(kept);
  return out;
}

template <typename E>
E Parse(const std::string& s) {
  return ParseDisplayName<E>(s).value_or(static_cast<E>(0));
}

}  // namespace

bool UpgradeLegacyFields(v1::Deployment* d) {
  std::map<int, std::string> old = TakeStrings(d);
  if (old.empty()) return false;
  // Field 6: strategy; field 11: rollback reason.
  if (auto it = old.find(6); it != old.end() && d->strategy() == 0) {
    d->set_strategy(it->second.empty() ? v1::DEPLOYMENT_STRATEGY_ROLLING
                                       : Parse<v1::DeploymentStrategy>(it->second));
  }
  if (auto it = old.find(11); it != old.end() && d->rollback_reason() == 0) {
    d->set_rollback_reason(Parse<v1::RollbackReason>(it->second));
  }
  return true;
}

bool UpgradeLegacyFields(v1::Revision* r) {
  std::map<int, std::string> old = TakeStrings(r);
  if (old.empty()) return false;
  // Field 8: strategy; field 9: outcome.
  if (auto it = old.find(8); it != old.end() && r->strategy() == 0) {
    r->set_strategy(Parse<v1::DeploymentStrategy>(it->second));
  }
  if (auto it = old.find(9); it != old.end() && r->outcome() == 0) {
    r->set_outcome(Parse<v1::RevisionOutcome>(it->second));
  }
  return true;
}

}  // namespace warren
