#include "store/store.h"

#include "absl/strings/str_cat.h"

namespace warren {

std::string_view KindName(Kind kind) {
  switch (kind) {
    case Kind::kService:
      return "service";
    case Kind::kTask:
      return "task";
    case Kind::kNode:
      return "node";
    case Kind::kRevision:
      return "revision";
    case Kind::kEvent:
      return "event";
    case Kind::kDeployment:
      return "deployment";
    case Kind::kClusterSecurity:
      return "cluster security";
    case Kind::kSecret:
      return "secret";
    case Kind::kIngress:
      return "ingress";
    case Kind::kClusterNetwork:
      return "cluster network";
    case Kind::kSubnetClaim:
      return "subnet claim";
  }
  return "unknown";
}

std::string DescribeCorrupt(const CorruptObject& c) {
  std::string kind(KindName(c.kind));
  if (kind == "unknown") kind = absl::StrCat("object of unknown kind ", static_cast<int>(c.kind));
  std::string version = c.version > 0 ? absl::StrCat("version ", c.version) : "version unreadable";
  if (!c.name.empty())
    return absl::StrCat(kind, " \"", c.name, "\" (id ", c.id, ", ", version, ")");
  return absl::StrCat(kind, " ", c.id, " (", version, ")");
}

absl::Status CorruptObjectError(const CorruptObject& c) {
  std::string way_out = "delete its row with sqlite3 while the manager is stopped";
  if (c.kind == Kind::kService && !c.name.empty()) {
    way_out = absl::StrCat("remove it with `warren service rm ", c.name, "`");
  }
  return absl::DataLossError(
      absl::StrCat(DescribeCorrupt(c), " is corrupt in the store: ", c.reason,
                   ". It is left out of every listing and cannot be changed: ", way_out,
                   ", or restore the data dir from a backup (see \"The data directory\" in "
                   "docs/operations.md)"));
}

std::optional<CorruptObject> FindCorrupt(const Store& store, Kind kind,
                                         std::string_view name_or_id) {
  if (name_or_id.empty()) return std::nullopt;
  for (CorruptObject& c : store.Corruption()) {
    if (c.kind == kind && (c.id == name_or_id || c.name == name_or_id)) return std::move(c);
  }
  return std::nullopt;
}

absl::Status CorruptKindError(const Store& store, Kind kind) {
  constexpr int kMaxNamed = 5;
  int count = 0;
  std::string named;
  for (const CorruptObject& c : store.Corruption()) {
    if (c.kind != kind) continue;
    if (++count <= kMaxNamed) absl::StrAppend(&named, "; ", DescribeCorrupt(c), ": ", c.reason);
  }
  if (count == 0) return absl::OkStatus();
  if (count > kMaxNamed) absl::StrAppend(&named, "; and ", count - kMaxNamed, " more");
  return absl::DataLossError(absl::StrCat(
      count, " ", std::string(KindName(kind)), count == 1 ? " is" : "s are",
      " corrupt in the store and would be missing from this listing", named,
      ". Remove them or restore the data dir from a backup (see \"The data directory\" in "
      "docs/operations.md)"));
}

}  // namespace warren
