#include "manager/publish_errors.h"

namespace warren {

std::vector<PublishErrorBoard::Change> PublishErrorBoard::Report(
    const std::string& node_id, const std::string& node_name,
    const std::vector<v1::PublishError>& errors) {
  std::map<Key, v1::PublishError> next;
  for (v1::PublishError e : errors) {
    e.set_node_id(node_id);
    e.set_node_name(node_name);
    next[{e.service_id(), e.port()}] = std::move(e);
  }
  absl::MutexLock lock(&mu_);
  std::map<Key, v1::PublishError>& current = by_node_[node_id];
  std::vector<Change> changes;
  for (const auto& [key, e] : next) {
    auto it = current.find(key);
    if (it == current.end() || it->second.error() != e.error()) changes.push_back({e, false});
  }
  for (const auto& [key, e] : current) {
    if (!next.contains(key)) changes.push_back({e, true});
  }
  if (next.empty()) {
    by_node_.erase(node_id);
  } else {
    current = std::move(next);
  }
  return changes;
}

void PublishErrorBoard::Forget(const std::string& node_id) {
  absl::MutexLock lock(&mu_);
  by_node_.erase(node_id);
}

std::vector<v1::PublishError> PublishErrorBoard::ForService(
    const std::string& service_id, const std::function<bool(const std::string&)>& live) const {
  std::vector<v1::PublishError> out;
  absl::MutexLock lock(&mu_);
  for (const auto& [node, errors] : by_node_) {
    if (!live(node)) continue;
    for (const auto& [key, e] : errors) {
      if (key.first == service_id) out.push_back(e);
    }
  }
  return out;
}

}  // namespace warren
