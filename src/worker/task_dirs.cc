#include "worker/task_dirs.h"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "spdlog/spdlog.h"

namespace warren {

namespace fs = std::filesystem;

TaskDirJanitor::TaskDirJanitor(std::string root, TaskDirRetention retention, const Clock& clock)
    : root_(std::move(root)), retention_(retention), clock_(clock) {}

std::vector<std::string> TaskDirJanitor::ListDirs() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(root_, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    std::error_code type_ec;
    if (it->is_directory(type_ec)) out.push_back(it->path().filename().string());
  }
  return out;
}

std::vector<std::string> TaskDirJanitor::Decide(const std::vector<std::string>& dirs,
                                                const std::set<std::string>& live) {
  const absl::Time now = clock_.Now();
  std::map<std::string, absl::Time> gone;
  for (const std::string& id : dirs) {
    if (live.contains(id)) continue;
    auto it = gone_since_.find(id);
    gone[id] = it == gone_since_.end() ? now : it->second;
  }
  gone_since_ = gone;  // forgets directories that went away or came back to life

  std::vector<std::pair<absl::Time, std::string>> by_age;
  for (const auto& [id, since] : gone) by_age.emplace_back(since, id);
  std::sort(by_age.begin(), by_age.end());
  const size_t over = by_age.size() > static_cast<size_t>(std::max(0, retention_.max_kept))
                          ? by_age.size() - static_cast<size_t>(std::max(0, retention_.max_kept))
                          : 0;
  std::vector<std::string> removed;
  for (size_t i = 0; i < by_age.size(); ++i) {
    const auto& [since, id] = by_age[i];
    if (i >= over && now - since < retention_.keep_for) continue;
    std::error_code ec;
    fs::remove_all(fs::path(root_) / id, ec);
    if (ec) {
      spdlog::warn("removing the directory of gone task {}: {}", id, ec.message());
      continue;
    }
    gone_since_.erase(id);
    removed.push_back(id);
  }
  return removed;
}

}  // namespace warren
