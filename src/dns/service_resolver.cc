#include "dns/service_resolver.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace warren::dns {

ServiceTable ToServiceTable(const v1::RoutingTable& table, std::vector<std::string>* skipped) {
  ServiceTable out;
  out.version = table.version();
  for (const auto& s : table.services()) {
    if (s.name().empty()) {
      skipped->push_back(absl::StrCat("services[service_id=", s.service_id(), "].name is empty"));
      continue;
    }
    ServiceRecords svc;
    svc.name = s.name();
    for (const auto& p : s.ports()) {
      if (p.target() < 1 || p.target() > 65535) {
        skipped->push_back(absl::StrCat("service ", s.name(), ": ports.target ", p.target(),
                                        " is not in 1..65535"));
        continue;
      }
      std::string name = p.name().empty() ? absl::StrCat("p", p.target()) : p.name();
      svc.ports.push_back(PortRecord{name, static_cast<uint16_t>(p.target())});
    }
    for (const auto& r : s.revisions()) {
      RevisionRecords rev;
      rev.revision = r.revision();
      rev.weight = std::clamp(r.weight(), 0, 100);
      rev.preview = r.preview();
      for (const auto& e : r.endpoints()) {
        auto addr = ParseIpv4(e.address());
        if (!addr.ok()) {
          skipped->push_back(absl::StrCat("service ", s.name(), " revision ", r.revision(),
                                          " task ", e.task_id(),
                                          ": endpoints.address: ", addr.status().message()));
          continue;
        }
        if (e.port() < 0 || e.port() > 65535) {
          skipped->push_back(absl::StrCat("service ", s.name(), " task ", e.task_id(),
                                          ": endpoints.port ", e.port(), " is not in 0..65535"));
          continue;
        }
        rev.endpoints.push_back(EndpointRecord{*addr, static_cast<uint16_t>(e.port()), e.slot()});
      }
      svc.revisions.push_back(std::move(rev));
    }
    out.services.push_back(std::move(svc));
  }
  return out;
}

absl::Status ServiceResolver::Update(const v1::RoutingTable& table) {
  std::vector<std::string> skipped;
  ResolverCore::Update(ToServiceTable(table, &skipped));
  if (!skipped.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("routing table entries skipped: ", absl::StrJoin(skipped, "; ")));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ReadResolvConfNameservers(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view l = absl::StripAsciiWhitespace(line);
    if (l.empty() || l[0] == '#' || l[0] == ';') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(l, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() >= 2 && fields[0] == "nameserver") out.emplace_back(fields[1]);
  }
  return out;
}

}  // namespace warren::dns
