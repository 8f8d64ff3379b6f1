#include "common/manager_list.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace warren {
namespace {

constexpr absl::string_view kLeaderIs = "the leader is at ";

absl::Status CheckHostPort(absl::string_view flag, absl::string_view entry) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": \"", entry, "\" ", why,
                     "; expected HOST:PORT[,HOST:PORT...], e.g. 10.0.0.1:8080,10.0.0.2:8080"));
  };
  if (entry.empty()) return bad("is empty");
  const size_t colon = entry.rfind(':');
  if (colon == absl::string_view::npos) return bad("has no port");
  absl::string_view host = entry.substr(0, colon);
  absl::string_view port = entry.substr(colon + 1);
  if (host.empty()) return bad("has no host");
  if (host.front() == '[') {
    if (host.back() != ']' || host.size() < 3) return bad("has an unclosed IPv6 bracket");
  } else if (host.find(':') != absl::string_view::npos) {
    return bad("has an IPv6 address without brackets ([::1]:8080)");
  }
  for (char c : host) {
    if (std::isspace(static_cast<unsigned char>(c))) return bad("contains a space");
  }
  int p = 0;
  if (!absl::SimpleAtoi(port, &p) || p < 1 || p > 65535) return bad("has no port in 1..65535");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ParseManagerList(absl::string_view flag,
                                                          absl::string_view list) {
  std::vector<std::string> out;
  for (absl::string_view entry : absl::StrSplit(list, ',')) {
    entry = absl::StripAsciiWhitespace(entry);
    if (absl::Status s = CheckHostPort(flag, entry); !s.ok()) return s;
    if (std::find(out.begin(), out.end(), entry) != out.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": \"", entry, "\" is listed twice; list each manager once"));
    }
    out.emplace_back(entry);
  }
  return out;
}

std::string FormatNotLeader(absl::string_view self, absl::string_view leader) {
  if (leader.empty()) {
    return absl::StrCat("manager ", self,
                        " does not lead the cluster and no manager leads at the moment (an "
                        "election is under way); try again shortly");
  }
  return absl::StrCat("manager ", self, " does not lead the cluster; ", kLeaderIs, leader);
}

std::optional<std::string> ParseLeaderHint(absl::string_view message) {
  const size_t at = message.find(kLeaderIs);
  if (at == absl::string_view::npos) return std::nullopt;
  absl::string_view rest = message.substr(at + kLeaderIs.size());
  const size_t end = rest.find_first_of(" ;,\n");
  rest = rest.substr(0, end);
  if (rest.empty()) return std::nullopt;
  return std::string(rest);
}

size_t NextManager(const std::vector<std::string>& managers, size_t current,
                   const absl::Status& status) {
  if (managers.empty()) return 0;
  if (status.code() != absl::StatusCode::kUnavailable &&
      status.code() != absl::StatusCode::kDeadlineExceeded) {
    return current;
  }
  if (auto hint = ParseLeaderHint(status.message())) {
    auto it = std::find(managers.begin(), managers.end(), *hint);
    if (it != managers.end()) return static_cast<size_t>(it - managers.begin());
  }
  return (current + 1) % managers.size();
}

}  // namespace warren
