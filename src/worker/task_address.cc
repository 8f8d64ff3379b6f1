#include "worker/task_address.h"

#include <arpa/inet.h>

#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "manager/scheduler.h"

namespace warren {
namespace {

uint32_t ParseAddress(const std::string& ip) {
  in_addr a{};
  return inet_pton(AF_INET, ip.c_str(), &a) == 1 ? ntohl(a.s_addr) : 0;
}

}  // namespace

absl::StatusOr<std::string> PickTaskAddress(const std::string& assigned,
                                            const std::vector<int>& ports, const std::string& range,
                                            const AddressesInUse& in_use, const BindProbe& probe,
                                            int max_tries) {
  uint32_t base = 0, size = 0;
  const uint32_t start = ParseAddress(assigned);
  if (!ParseTaskRange(range, &base, &size) || size < 3 || start <= base ||
      start >= base + size - 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("task address ", assigned, " is not a host address of ", range));
  }
  // Host offsets 1..size-2, as the scheduler hands them out, starting at the assigned one.
  const uint32_t span = size - 2;
  std::string first_error;
  int tried = 0;
  std::optional<std::set<std::string>> others;
  for (uint32_t i = 0; i < span && tried < max_tries; ++i) {
    const std::string ip = FormatIpv4(base + 1 + (start - base - 1 + i) % span);
    if (i > 0) {
      if (!others) others = in_use();
      if (others->contains(ip)) continue;
    }
    tried++;
    absl::Status taken;
    for (int port : ports) {
      taken = probe(absl::StrCat(ip, ":", port));
      if (!taken.ok()) break;
    }
    if (taken.ok()) return ip;
    if (first_error.empty()) first_error = std::string(taken.message());
  }
  return absl::FailedPreconditionError(
      absl::StrCat("port ", absl::StrJoin(ports, ","), " is taken on ", assigned, " (", first_error,
                   ") and on the next ", tried - 1, " addresses of ", range,
                   " tried: another program listens there (on 0.0.0.0?)"));
}

}  // namespace warren
