#include "cli/output.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/enum_names.h"
#include "common/spec.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace warren {
namespace {

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string FormatBytes(int64_t bytes) {
  if (bytes <= 0) return "-";
  const char* units[] = {"", "K", "M", "G", "T"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  if (v == static_cast<int64_t>(v)) return absl::StrCat(static_cast<int64_t>(v), units[u]);
  return absl::StrFormat("%.1f%s", v, units[u]);
}

std::string FormatPorts(const v1::TaskTemplate& t) {
  std::vector<std::string> out;
  for (const v1::Port& p : t.ports()) {
    std::string proto = p.protocol().empty() ? "tcp" : p.protocol();
    if (p.published() == 0) {
      out.push_back(absl::StrCat(p.target(), "/", proto));
    } else {
      out.push_back(absl::StrCat(p.host_ip().empty() ? "" : p.host_ip() + ":", p.published(), "->",
                                 p.target(), "/", proto));
    }
  }
  return out.empty() ? "-" : absl::StrJoin(out, ",");
}

std::string OrDash(std::string s) { return s.empty() ? "-" : s; }

// "MANAGERS" and their table; '*' marks the manager that answered.
std::string RenderManagers(const google::protobuf::RepeatedPtrField<v1::ManagerInfo>& managers) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::ManagerInfo& m : managers) {
    rows.push_back({m.answered() ? m.id() + " *" : m.id(), OrDash(m.name()), OrDash(m.api_addr()),
                    m.leader() ? "leader" : "follower"});
  }
  return "MANAGERS\n" + RenderTable({"ID", "NAME", "API ADDRESS", "STATUS"}, rows);
}

}  // namespace

absl::StatusOr<OutputFormat> ParseOutputFormat(std::string_view text) {
  if (text == "table") return OutputFormat::kTable;
  if (text == "json") return OutputFormat::kJson;
  if (text == "yaml") return OutputFormat::kYaml;
  return absl::InvalidArgumentError(
      absl::StrFormat("--output: must be table, json or yaml, got \"%s\"", AV(text)));
}

std::string RenderTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(header.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  };
  measure(header);
  for (const auto& row : rows) measure(row);
  std::string out;
  auto emit = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < widths.size(); ++i) {
      const std::string cell = i < row.size() ? row[i] : "";
      line += cell;
      if (i + 1 < widths.size()) line += std::string(widths[i] - cell.size() + 3, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  };
  emit(header);
  for (const auto& row : rows) emit(row);
  return out;
}

std::string FormatAge(const google::protobuf::Timestamp& since, absl::Time now) {
  if (since.seconds() == 0 && since.nanos() == 0) return "-";
  absl::Time t = absl::FromUnixSeconds(since.seconds()) + absl::Nanoseconds(since.nanos());
  int64_t s = std::max<int64_t>(0, absl::ToInt64Seconds(now - t));
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrCat(s / 60, "m");
  if (s < 86400) return absl::StrCat(s / 3600, "h");
  return absl::StrCat(s / 86400, "d");
}

std::string RenderMessage(const google::protobuf::Message& msg, OutputFormat format) {
  return format == OutputFormat::kJson ? ToJson(msg) : ToYaml(msg);
}

std::map<std::string, int> CountRunning(const std::vector<v1::Task>& tasks) {
  std::map<std::string, int> running;
  for (const v1::Task& t : tasks) {
    if (t.desired_state() == v1::TASK_STATE_RUNNING &&
        t.status().state() == v1::TASK_STATE_RUNNING) {
      ++running[t.service_id()];
    }
  }
  return running;
}

std::string RenderServices(const v1::ListServicesResponse& services,
                           const std::map<std::string, int>& running, OutputFormat format,
                           absl::Time now) {
  if (format != OutputFormat::kTable) return RenderMessage(services, format);
  std::vector<std::vector<std::string>> rows;
  for (const v1::Service& s : services.services()) {
    auto it = running.find(s.id());
    int up = it == running.end() ? 0 : it->second;
    const v1::ServiceSpec& spec = s.spec();
    std::string replicas = spec.mode() == "global" ? absl::StrCat(up, " (global)")
                                                   : absl::StrCat(up, "/", spec.replicas());
    std::string what =
        !spec.template_().image().empty() ? spec.template_().image() : spec.template_().command();
    rows.push_back({s.id(), spec.name(), OrDash(spec.mode()), replicas, OrDash(what),
                    FormatPorts(spec.template_()), absl::StrCat(s.revision()),
                    FormatAge(s.created_at(), now)});
  }
  return RenderTable(
      {"ID", "NAME", "MODE", "REPLICAS", "COMMAND/IMAGE", "PORTS", "REVISION", "AGE"}, rows);
}

namespace {

// Slot order, newest attempt first within a slot: the current task leads its history.
std::vector<const v1::Task*> SortedTasks(const v1::ListTasksResponse& tasks) {
  std::vector<const v1::Task*> sorted;
  for (const v1::Task& t : tasks.tasks()) sorted.push_back(&t);
  std::stable_sort(sorted.begin(), sorted.end(), [](const v1::Task* a, const v1::Task* b) {
    if (a->slot() != b->slot()) return a->slot() < b->slot();
    if (a->node_id() != b->node_id()) return a->node_id() < b->node_id();
    return google::protobuf::util::TimeUtil::TimestampToNanoseconds(a->created_at()) >
           google::protobuf::util::TimeUtil::TimestampToNanoseconds(b->created_at());
  });
  return sorted;
}

}  // namespace

std::string ShortenCell(std::string_view text, size_t max_chars) {
  std::string line(text);
  for (char& c : line) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  if (line.size() <= max_chars) return line;
  // Cut at a character boundary: never inside a UTF-8 sequence.
  size_t cut = max_chars - 3;
  while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
  return line.substr(0, cut) + "...";
}

std::string RenderTasks(const v1::ListTasksResponse& tasks,
                        const std::map<std::string, std::string>& node_names, OutputFormat format,
                        absl::Time now, bool no_trunc) {
  if (format != OutputFormat::kTable) return RenderMessage(tasks, format);
  std::vector<std::vector<std::string>> rows;
  for (const v1::Task* t : SortedTasks(tasks)) {
    auto node = node_names.find(t->node_id());
    std::string node_name = node != node_names.end() ? node->second : OrDash(t->node_id());
    std::string address =
        t->address().empty()
            ? "-"
            : (t->port() > 0 ? absl::StrCat(t->address(), ":", t->port()) : t->address());
    std::string state = TaskStateName(t->status().state());
    if (t->desired_state() == v1::TASK_STATE_SHUTDOWN &&
        (t->status().state() == v1::TASK_STATE_RUNNING ||
         t->status().state() == v1::TASK_STATE_STARTING)) {
      state += " (stopping)";
    }
    std::string exit = t->status().has_exit_code() ? absl::StrCat(t->status().exit_code()) : "-";
    const std::string& error = t->status().error();
    rows.push_back(
        {t->id(), t->slot() > 0 ? absl::StrCat(t->slot()) : "-", node_name, address, state,
         IsTerminal(t->status().state()) ? "-" : HealthStateName(t->status().health().state()),
         exit, FormatAge(t->created_at(), now),
         error.empty() ? "" : (no_trunc ? ShortenCell(error, error.size()) : ShortenCell(error))});
  }
  return RenderTable({"TASK", "SLOT", "NODE", "ADDRESS", "STATE", "HEALTH", "EXIT", "AGE", "ERROR"},
                     rows);
}

std::string RenderTaskIds(const v1::ListTasksResponse& tasks) {
  std::string out;
  for (const v1::Task* t : SortedTasks(tasks)) absl::StrAppend(&out, t->id(), "\n");
  return out;
}

std::string RenderNodes(const v1::ListNodesResponse& nodes, OutputFormat format, absl::Time now) {
  if (format != OutputFormat::kTable) return RenderMessage(nodes, format);
  std::vector<std::vector<std::string>> rows;
  for (const v1::Node& n : nodes.nodes()) {
    std::vector<std::string> labels;
    for (const auto& [k, v] : n.labels()) labels.push_back(absl::StrCat(k, "=", v));
    std::sort(labels.begin(), labels.end());
    rows.push_back({n.id(), n.name(), OrDash(n.role()), NodeStateName(n.state()),
                    NodeAvailabilityName(n.availability()), OrDash(n.runtime()),
                    n.capacity().cpus() > 0 ? absl::StrCat(n.capacity().cpus()) : "-",
                    FormatBytes(n.capacity().memory_bytes()), OrDash(n.advertise_addr()),
                    OrDash(n.subnet()), OrDash(n.address_range()),
                    labels.empty() ? "-" : absl::StrJoin(labels, ","),
                    FormatAge(n.last_heartbeat(), now)});
  }
  std::string out =
      RenderTable({"ID", "NAME", "ROLE", "STATE", "AVAILABILITY", "RUNTIME", "CPUS", "MEMORY",
                   "ADVERTISE", "SUBNET", "ADDRESSES", "LABELS", "HEARTBEAT"},
                  rows);
  if (nodes.managers_size() > 0) absl::StrAppend(&out, "\n", RenderManagers(nodes.managers()));
  return out;
}

std::string RenderClusterStatus(const v1::ClusterStatus& status, OutputFormat format) {
  if (format != OutputFormat::kTable) return RenderMessage(status, format);
  std::string out;
  if (status.store() == "etcd") {
    absl::StrAppend(&out, "STORE: etcd, prefix ", status.etcd_prefix(), "\n");
    std::vector<std::vector<std::string>> rows;
    for (const v1::EtcdMemberStatus& m : status.etcd_members()) {
      const bool answered = m.member_id() != 0;
      rows.push_back(
          {m.endpoint(), answered ? absl::StrFormat("%x", m.member_id()) : "-", OrDash(m.version()),
           answered ? FormatBytes(m.db_size_bytes()) : "-",
           answered ? (m.is_leader() ? "yes" : "no") : "-",
           answered ? absl::StrCat(m.raft_term()) : "-",
           answered ? absl::StrCat(m.raft_index()) : "-",
           m.healthy() ? "healthy" : absl::StrCat("unhealthy: ", ShortenCell(m.error(), 100))});
    }
    absl::StrAppend(&out, RenderTable({"ENDPOINT", "MEMBER", "VERSION", "DB SIZE", "LEADER",
                                       "RAFT TERM", "RAFT INDEX", "HEALTH"},
                                      rows));
  } else {
    absl::StrAppend(&out, "STORE: sqlite, ", status.sqlite().path(), " (",
                    FormatBytes(status.sqlite().size_bytes()), ")\n");
  }
  absl::StrAppend(&out, "\n");
  if (!status.managers_error().empty()) {
    absl::StrAppend(&out, "MANAGERS: cannot be listed: ", status.managers_error(), "\n");
  } else {
    absl::StrAppend(&out, RenderManagers(status.managers()));
  }
  return out;
}

std::string RenderEvent(const v1::Event& e, OutputFormat format) {
  if (format == OutputFormat::kJson) {
    std::string out;
    google::protobuf::util::JsonPrintOptions options;
    (void)google::protobuf::util::MessageToJsonString(e, &out, options);
    return out + "\n";
  }
  if (format == OutputFormat::kYaml) return "---\n" + ToYaml(e);
  std::string when = e.has_time() ? google::protobuf::util::TimeUtil::ToString(e.time()) : "-";
  std::string line =
      absl::StrCat(when, "  #", e.id(), "  ", e.kind(), " ",
                   e.object_name().empty() ? e.object_id() : e.object_name(), " ", e.action());
  if (!e.message().empty()) absl::StrAppend(&line, ": ", e.message());
  return line + "\n";
}

std::string RenderProgress(const v1::Deployment& d) {
  constexpr int kWidth = 10;
  const int total = std::max(d.total(), 0);
  auto cells = [&](int n) {
    if (total == 0) return 0;
    return std::clamp(n, 0, total) * kWidth / total;
  };
  int available = cells(d.available());
  int updated = std::max(cells(d.updated()), available);
  std::string bar = std::string(available, '#') + std::string(updated - available, '+') +
                    std::string(kWidth - updated, '.');
  std::string line = absl::StrFormat("[%s] updated %d/%d, available %d/%d, batch %d", bar,
                                     d.updated(), total, d.available(), total, d.batch());
  if (std::string step = CanaryStepText(d); !step.empty()) absl::StrAppend(&line, ", ", step);
  if (d.strategy() == v1::DEPLOYMENT_STRATEGY_BLUE_GREEN && d.switched()) {
    absl::StrAppend(&line, ", switched");
  }
  if (d.phase() == v1::DEPLOYMENT_PHASE_ROLLING_BACK) absl::StrAppend(&line, ", rolling back");
  if (d.phase() == v1::DEPLOYMENT_PHASE_PAUSED) absl::StrAppend(&line, ", paused");
  return line;
}

std::string PhaseName(v1::DeploymentPhase phase) {
  if (phase == v1::DEPLOYMENT_PHASE_UNSPECIFIED) return "-";
  absl::string_view full = v1::DeploymentPhase_Name(phase);
  absl::ConsumePrefix(&full, "DEPLOYMENT_PHASE_");
  std::string name = absl::AsciiStrToLower(full);
  absl::StrReplaceAll({{"_", "-"}}, &name);
  return name;
}

namespace {

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

bool IsSet(const google::protobuf::Timestamp& t) { return t.seconds() != 0 || t.nanos() != 0; }

// "850ms" under a second, else whole seconds: "12s", "1m30s".
std::string ShortDuration(absl::Duration d) {
  if (d < absl::Seconds(1)) return warren::FormatDuration(absl::Trunc(d, absl::Milliseconds(1)));
  return warren::FormatDuration(absl::Trunc(d, absl::Seconds(1)));
}

std::string WithReason(std::string head, const std::string& reason) {
  return reason.empty() ? head : absl::StrCat(head, ": ", reason);
}

// Blue/green with manual promotion, green complete, not switched yet.
bool AwaitsPromotion(const v1::Deployment& d) {
  return d.strategy() == v1::DEPLOYMENT_STRATEGY_BLUE_GREEN && !d.rollback() &&
         d.config().has_auto_promote() && !d.config().auto_promote() && !d.switched() &&
         d.total() > 0 && d.available() >= d.total();
}

}  // namespace

namespace {

// Blue/green switched or canary at 100 %: the new revision has all production traffic.
bool AllTrafficOnNew(const v1::Deployment& d) {
  if (d.rollback() || d.reopened()) return false;
  if (d.strategy() == v1::DEPLOYMENT_STRATEGY_BLUE_GREEN) return d.switched();
  return d.strategy() == v1::DEPLOYMENT_STRATEGY_CANARY && d.weight() >= 100;
}

// "; revision 1 stays warm for 28s: roll back at once with `warren service rollback web`",
// or "" when the previous revision is no longer kept.
std::string WarmNote(const v1::Deployment& d, absl::Time now) {
  if (!IsSet(d.warm_until()) || now == absl::InfinitePast()) return "";
  const absl::Duration left = ToTime(d.warm_until()) - now;
  if (left <= absl::ZeroDuration()) return "";
  return absl::StrFormat(
      "; revision %d stays warm for %s: roll back at once with `warren service rollback %s`",
      d.from_revision(), ShortDuration(left), d.service_name());
}

}  // namespace

RolloutOutcome OutcomeOf(const v1::Deployment& d, absl::Time now, bool until_end) {
  RolloutOutcome o;
  const char* what = d.rollback() ? "rollback" : "rollout";
  switch (d.phase()) {
    case v1::DEPLOYMENT_PHASE_SUCCEEDED: {
      o.done = true;
      o.message = absl::StrFormat("%s to revision %d succeeded", what, d.to_revision());
      if (IsSet(d.created_at()) && IsSet(d.finished_at())) {
        absl::StrAppend(&o.message, " in ",
                        ShortDuration(ToTime(d.finished_at()) - ToTime(d.created_at())));
      }
      if (AllTrafficOnNew(d)) absl::StrAppend(&o.message, WarmNote(d, now));
      return o;
    }
    case v1::DEPLOYMENT_PHASE_ROLLED_BACK:
      o.done = true;
      // Rolled back by hand (`service rollback` / `abort`) is what was asked for.
      o.exit_code = d.rollback_reason() == v1::ROLLBACK_REASON_MANUAL ? 0 : 1;
      o.message =
          WithReason(absl::StrFormat("rolled back to revision %d", d.from_revision()), d.reason());
      return o;
    case v1::DEPLOYMENT_PHASE_FAILED:
      o.done = true;
      o.exit_code = 1;
      o.message = WithReason("failed", d.reason());
      return o;
    case v1::DEPLOYMENT_PHASE_SUPERSEDED:
      o.done = true;
      o.exit_code = 1;
      o.message = WithReason(
          absl::StrFormat("%s to revision %d was superseded by a newer one", what, d.to_revision()),
          d.reason());
      return o;
    case v1::DEPLOYMENT_PHASE_PAUSED:
      // A pause waits for a person: following it any longer shows nothing new.
      o.done = true;
      if (d.paused_by_user()) {
        o.message = absl::StrFormat(
            "paused by request at %d/%d updated; resume with `warren "
            "service resume %s`",
            d.updated(), d.total(), d.service_name());
      } else {
        o.exit_code = 1;
        o.message = absl::StrCat(
            WithReason("paused", d.reason()),
            absl::StrFormat(" (resume with `warren service resume %s` or roll back with `warren "
                            "service rollback %s`)",
                            d.service_name(), d.service_name()));
      }
      return o;
    case v1::DEPLOYMENT_PHASE_PROGRESSING:
      // The question of `service update` is answered once users are on the new revision; the
      // rest (analysis, the warm previous revision) goes on without a follower.
      if (AllTrafficOnNew(d) && !until_end) {
        o.done = true;
        o.message = absl::StrFormat("all traffic on revision %d", d.to_revision());
        if (IsSet(d.created_at()) && IsSet(d.full_traffic_at())) {
          absl::StrAppend(&o.message, " after ",
                          ShortDuration(ToTime(d.full_traffic_at()) - ToTime(d.created_at())));
        }
        absl::StrAppend(&o.message, WarmNote(d, now),
                        absl::StrFormat("\nthe analysis goes on until the rollout ends (`warren "
                                        "service rollout status %s --watch`)",
                                        d.service_name()));
        return o;
      }
      if (AwaitsPromotion(d)) {
        o.done = true;
        o.message = absl::StrFormat(
            "green (revision %d) is ready and gets no production traffic yet; switch with "
            "`warren service promote %s`",
            d.to_revision(), d.service_name());
      }
      return o;
    default:
      return o;
  }
}

std::string RenderRolloutStatus(const v1::Deployment& d, OutputFormat format, absl::Time now) {
  if (format != OutputFormat::kTable) return RenderMessage(d, format);
  std::vector<std::vector<std::string>> rows = {
      {"Service:", d.service_name()},
      {"Deployment:", absl::StrCat(d.id(), d.rollback() ? " (rollback)" : "")},
      {"Revision:", absl::StrFormat("%d -> %d", d.from_revision(), d.to_revision())},
      {"Strategy:", DisplayName(d.strategy())},
      {"Phase:", PhaseName(d.phase())},
      {"Progress:", RenderProgress(d)},
  };
  if (!d.reason().empty()) rows.push_back({"Reason:", d.reason()});
  if (d.rollback_reason() != v1::ROLLBACK_REASON_UNSPECIFIED) {
    rows.push_back({"Rollback reason:", DisplayName(d.rollback_reason())});
  }
  if (d.failed_task_ids_size() > 0) {
    rows.push_back({"Failed tasks:", absl::StrJoin(d.failed_task_ids(), ", ")});
  }
  rows.push_back(
      {"Started:", IsSet(d.created_at()) ? FormatAge(d.created_at(), now) + " ago" : "-"});
  if (IsSet(d.finished_at())) {
    rows.push_back(
        {"Finished:",
         absl::StrCat(FormatAge(d.finished_at(), now), " ago (took ",
                      ShortDuration(ToTime(d.finished_at()) - ToTime(d.created_at())), ")")});
  }
  if (!d.change_cause().empty()) rows.push_back({"Change cause:", d.change_cause()});
  // RenderTable without a header: the first row doubles as one.
  std::vector<std::string> first = rows.front();
  rows.erase(rows.begin());
  return RenderTable(first, rows);
}

std::string RenderEndpoints(const v1::ServiceEndpoints& e, OutputFormat format) {
  if (format != OutputFormat::kTable) return RenderMessage(e, format);
  std::vector<std::vector<std::string>> revs;
  std::vector<std::vector<std::string>> eps;
  for (const auto& r : e.revisions()) {
    int routed = 0;
    for (const auto& ep : r.endpoints()) routed += ep.routed() ? 1 : 0;
    const auto& recent = r.recent();
    revs.push_back({absl::StrCat(r.revision(), r.preview() ? " (preview)" : ""),
                    absl::StrCat(r.weight(), "%"), absl::StrCat(routed, "/", r.endpoints_size()),
                    absl::StrCat(recent.requests()),
                    absl::StrCat(recent.responses_5xx() + recent.connect_errors()),
                    absl::StrFormat("%.2f%%", r.recent_error_rate()),
                    r.total().latency_p99_seconds() > 0
                        ? absl::StrFormat("%.1fms", r.total().latency_p99_seconds() * 1000)
                        : "-",
                    absl::StrCat(r.total().requests())});
    for (const auto& ep : r.endpoints()) {
      eps.push_back({ep.task_id(), absl::StrCat(r.revision()), absl::StrCat(ep.slot()),
                     absl::StrCat(ep.address(), ":", ep.port()), ep.state(), ep.health(),
                     ep.routed() ? "yes" : "no"});
    }
  }
  std::string out = RenderTable({"REVISION", "WEIGHT", "ROUTED", "REQUESTS(1M)", "ERRORS(1M)",
                                 "ERROR-RATE", "P99", "REQUESTS"},
                                revs);
  out += "\n";
  out += RenderTable({"TASK", "REVISION", "SLOT", "ADDRESS", "STATE", "HEALTH", "ROUTED"}, eps);
  return out;
}

std::string RenderHistory(const v1::ListRevisionsResponse& revisions, int64_t current,
                          OutputFormat format, absl::Time now) {
  if (format != OutputFormat::kTable) return RenderMessage(revisions, format);
  std::vector<std::vector<std::string>> rows;
  for (const v1::Revision& r : revisions.revisions()) {
    rows.push_back({absl::StrCat(r.number(), r.number() == current ? "*" : ""),
                    FormatAge(r.created_at(), now), OrDash(r.change_cause()),
                    DisplayName(r.strategy()), DisplayName(r.outcome())});
  }
  return RenderTable({"REVISION", "CREATED", "CHANGE-CAUSE", "STRATEGY", "OUTCOME"}, rows);
}

std::string TaskLabel(std::string_view service, int slot, std::string_view task_id) {
  if (slot > 0) return absl::StrCat(AV(service), ".", slot, ".", AV(task_id));
  return absl::StrCat(AV(service), ".", AV(task_id));
}

std::string UnifiedDiff(std::string_view from_name, std::string_view from, std::string_view to_name,
                        std::string_view to) {
  std::vector<std::string> a = absl::StrSplit(AV(from), '\n', absl::SkipEmpty());
  std::vector<std::string> b = absl::StrSplit(AV(to), '\n', absl::SkipEmpty());
  if (a == b) return "";
  // Longest common subsequence table; specs are tens of lines, so O(n*m) is fine.
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<int>> lcs(n + 1, std::vector<int>(m + 1, 0));
  for (size_t i = n; i-- > 0;) {
    for (size_t j = m; j-- > 0;) {
      lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  struct Line {
    char op;  // ' ', '-', '+'
    std::string text;
    size_t a_line, b_line;  // 1-based line numbers after this line
  };
  std::vector<Line> script;
  size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] == b[j]) {
      script.push_back({' ', a[i], ++i, ++j});
    } else if (i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1])) {
      script.push_back({'-', a[i], ++i, j});
    } else {
      script.push_back({'+', b[j], i, ++j});
    }
  }
  constexpr size_t kContext = 3;
  std::string out = absl::StrCat("--- ", AV(from_name), "\n+++ ", AV(to_name), "\n");
  size_t k = 0;
  while (k < script.size()) {
    if (script[k].op == ' ') {
      ++k;
      continue;
    }
    size_t start = k >= kContext ? k - kContext : 0;
    size_t end = k;
    // Extend the hunk while the next change is within two contexts of the last one.
    while (end < script.size()) {
      size_t next = end;
      while (next < script.size() && script[next].op != ' ') ++next;
      size_t gap = next;
      while (gap < script.size() && script[gap].op == ' ') ++gap;
      if (gap < script.size() && gap - next <= 2 * kContext) {
        end = gap;
      } else {
        end = std::min(script.size(), next + kContext);
        break;
      }
    }
    size_t a_start = start == 0 ? 0 : script[start - 1].a_line;
    size_t b_start = start == 0 ? 0 : script[start - 1].b_line;
    size_t a_count = 0, b_count = 0;
    for (size_t x = start; x < end; ++x) {
      if (script[x].op != '+') ++a_count;
      if (script[x].op != '-') ++b_count;
    }
    absl::StrAppend(&out, "@@ -", a_count ? a_start + 1 : a_start, ",", a_count, " +",
                    b_count ? b_start + 1 : b_start, ",", b_count, " @@\n");
    for (size_t x = start; x < end; ++x) {
      absl::StrAppend(&out, std::string(1, script[x].op), script[x].text, "\n");
    }
    k = end;
  }
  return out;
}

std::string CanaryStepText(const v1::Deployment& d) {
  if (d.strategy() != v1::DEPLOYMENT_STRATEGY_CANARY) return "";
  const int steps = d.config().canary_steps_size();
  if (steps == 0) return absl::StrCat("weight ", d.weight(), "%");
  return absl::StrFormat("step %d/%d, weight %d%%", std::clamp(d.step() + 1, 1, steps), steps,
                         d.weight());
}

std::optional<absl::Duration> WindowLeft(const v1::Deployment& d, absl::Time now) {
  if (!d.config().has_canary_window()) return std::nullopt;
  if (d.phase() != v1::DEPLOYMENT_PHASE_PROGRESSING && d.phase() != v1::DEPLOYMENT_PHASE_PAUSED) {
    return std::nullopt;
  }
  google::protobuf::Timestamp start = d.step_started_at();
  if (!IsSet(start) && d.strategy() == v1::DEPLOYMENT_STRATEGY_BLUE_GREEN && d.switched()) {
    start = d.switched_at();
  }
  if (!IsSet(start)) return std::nullopt;
  const google::protobuf::Duration& w = d.config().canary_window();
  absl::Duration left =
      ToTime(start) + absl::Seconds(w.seconds()) + absl::Nanoseconds(w.nanos()) - now;
  return std::max(left, absl::ZeroDuration());
}

std::string FormatCheckValue(const std::string& check, double value) {
  if (check == "error_rate" || check == "error_rate_increase") {
    return absl::StrFormat("%.2f%%", value);
  }
  if (check == "latency_p99") return absl::StrFormat("%.1fms", value * 1000);
  if (check == "requests" || check == "health") return absl::StrFormat("%.0f", value);
  return absl::StrFormat("%g", value);
}

std::map<int64_t, RevisionReplicas> CountReplicasByRevision(const std::vector<v1::Task>& tasks) {
  std::map<int64_t, RevisionReplicas> out;
  for (const v1::Task& t : tasks) {
    if (t.desired_state() != v1::TASK_STATE_RUNNING || IsTerminal(t.status().state())) continue;
    RevisionReplicas& r = out[t.revision()];
    ++r.live;
    if (IsServing(t)) ++r.serving;
  }
  return out;
}

namespace {

void EmitYaml(YAML::Emitter& e, const nlohmann::ordered_json& j) {
  if (j.is_object()) {
    e << YAML::BeginMap;
    for (const auto& [k, v] : j.items()) {
      e << YAML::Key << k << YAML::Value;
      EmitYaml(e, v);
    }
    e << YAML::EndMap;
  } else if (j.is_array()) {
    if (j.empty()) {
      e << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
      return;
    }
    e << YAML::BeginSeq;
    for (const auto& v : j) EmitYaml(e, v);
    e << YAML::EndSeq;
  } else if (j.is_string()) {
    e << YAML::DoubleQuoted << j.get<std::string>();
  } else if (j.is_null()) {
    e << YAML::Null;
  } else {
    e << j.dump();
  }
}

}  // namespace

std::string CheckResult(const v1::Deployment& d, const v1::AnalysisResult& a) {
  if (a.passed()) return "pass";
  // Too few requests yet is no failure while the window still collects them.
  const bool observing =
      d.phase() == v1::DEPLOYMENT_PHASE_PROGRESSING || d.phase() == v1::DEPLOYMENT_PHASE_PAUSED;
  // WAITING: a check not judged yet (too few requests, a query whose answer has not come).
  if ((a.state() == v1::ANALYSIS_STATE_WAITING || a.check() == "requests") && observing) {
    return "waiting";
  }
  return "FAIL";
}

std::string DescribePromotion(const v1::Deployment& d, const std::string& name) {
  const std::string svc = d.service_name().empty() ? name : d.service_name();
  for (const v1::DeploymentIntent& i : d.intents()) {
    if (i.sequence() != d.intent_sequence() || i.action() != v1::DEPLOYMENT_ACTION_PROMOTE) {
      continue;
    }
    if (!i.applied()) {
      return absl::StrFormat(
          "%s: promotion requested; the manager applies it shortly (`warren service canary "
          "status %s`)\n",
          svc, svc);
    }
    if (!i.result().empty()) return absl::StrFormat("%s: %s\n", svc, i.result());
  }
  if (d.strategy() == v1::DEPLOYMENT_STRATEGY_CANARY) {
    // The step's weight: the one the canary moves to (the proxies follow once its tasks are
    // ready), not the one it had.
    const int steps = d.config().canary_steps_size();
    const int step = std::clamp(d.step(), 0, std::max(steps - 1, 0));
    return absl::StrFormat("%s: canary of revision %d promoted (step %d/%d, weight %d%%)\n", svc,
                           d.to_revision(), step + 1, steps,
                           steps == 0 ? d.weight() : d.config().canary_steps(step));
  }
  if (d.strategy() == v1::DEPLOYMENT_STRATEGY_BLUE_GREEN) {
    return absl::StrFormat("%s: revision %d promoted: %s\n", svc, d.to_revision(),
                           d.switched() ? "production traffic switched to it"
                                        : "traffic switches as soon as every green task is ready");
  }
  return absl::StrFormat("%s: rollout to revision %d promoted (%s)\n", svc, d.to_revision(),
                         PhaseName(d.phase()));
}

std::string RenderCanaryStatus(const v1::Deployment& d, const v1::ServiceEndpoints* endpoints,
                               const std::map<int64_t, RevisionReplicas>& replicas,
                               OutputFormat format, absl::Time now) {
  const bool blue_green = d.strategy() == v1::DEPLOYMENT_STRATEGY_BLUE_GREEN;
  const bool canary = d.strategy() == v1::DEPLOYMENT_STRATEGY_CANARY;
  struct Row {
    int64_t revision;
    std::string role;
    int weight;
    RevisionReplicas replicas;
  };
  // Weights the proxies use when the endpoints say so; else what the deployment implies.
  auto weight_of = [&](int64_t revision, int implied) {
    if (endpoints != nullptr) {
      for (const auto& r : endpoints->revisions()) {
        if (r.revision() == revision) return r.weight();
      }
      return 0;
    }
    return implied;
  };
  int new_weight = canary ? d.weight() : (blue_green ? (d.switched() ? 100 : 0) : 0);
  std::vector<Row> rows;
  auto replicas_of = [&](int64_t revision) {
    auto it = replicas.find(revision);
    return it == replicas.end() ? RevisionReplicas{} : it->second;
  };
  if (d.from_revision() != 0 && d.from_revision() != d.to_revision()) {
    rows.push_back({d.from_revision(), blue_green ? "blue" : (canary ? "stable" : "old"),
                    weight_of(d.from_revision(), 100 - new_weight),
                    replicas_of(d.from_revision())});
  }
  rows.push_back({d.to_revision(), blue_green ? "green" : (canary ? "canary" : "new"),
                  weight_of(d.to_revision(), new_weight), replicas_of(d.to_revision())});
  std::optional<absl::Duration> left = WindowLeft(d, now);
  const int steps = d.config().canary_steps_size();

  if (format != OutputFormat::kTable) {
    using Json = nlohmann::ordered_json;
    Json j;
    j["service"] = d.service_name();
    j["deployment"] = d.id();
    j["strategy"] = DisplayName(d.strategy());
    j["phase"] = PhaseName(d.phase());
    j["fromRevision"] = d.from_revision();
    j["toRevision"] = d.to_revision();
    if (canary) {
      j["step"] = steps == 0 ? 0 : std::clamp(d.step() + 1, 1, steps);
      j["steps"] = steps;
      j["weight"] = d.weight();
    }
    if (blue_green) j["switched"] = d.switched();
    j["windowLeft"] =
        left ? Json(warren::FormatDuration(absl::Trunc(*left, absl::Seconds(1)))) : Json(nullptr);
    if (!d.reason().empty()) j["reason"] = d.reason();
    Json revs = Json::array();
    for (const Row& r : rows) {
      revs.push_back({{"revision", r.revision},
                      {"role", r.role},
                      {"weight", r.weight},
                      {"replicas", r.replicas.live},
                      {"serving", r.replicas.serving}});
    }
    j["revisions"] = revs;
    Json checks = Json::array();
    for (const v1::AnalysisResult& a : d.analysis()) {
      checks.push_back({{"check", a.check()},
                        {"value", a.value()},
                        {"threshold", a.threshold()},
                        {"passed", a.passed()},
                        {"result", CheckResult(d, a)},
                        {"detail", a.detail()}});
    }
    j["analysis"] = checks;
    if (format == OutputFormat::kJson) return j.dump(2) + "\n";
    YAML::Emitter e;
    e.SetIndent(2);
    EmitYaml(e, j);
    return std::string(e.c_str()) + "\n";
  }

  std::vector<std::vector<std::string>> head = {
      {"Service:", d.service_name()},
      {"Deployment:", absl::StrCat(d.id(), d.rollback() ? " (rollback)" : "")},
      {"Strategy:", DisplayName(d.strategy())},
      {"Phase:", PhaseName(d.phase())},
      {"Revision:", absl::StrFormat("%d -> %d", d.from_revision(), d.to_revision())},
  };
  if (canary) head.push_back({"Step:", CanaryStepText(d)});
  if (blue_green) {
    head.push_back(
        {"Switched:", d.switched() && IsSet(d.switched_at())
                          ? absl::StrCat("yes, ", FormatAge(d.switched_at(), now), " ago")
                          : (d.switched() ? "yes" : "no")});
  }
  // Blue/green observes after the switch (post-switch analysis); a canary observes each step.
  head.push_back({blue_green ? "Analysis left:" : "Window left:",
                  left ? warren::FormatDuration(absl::Trunc(*left, absl::Seconds(1))) : "-"});
  if (!d.reason().empty()) head.push_back({"Reason:", d.reason()});
  std::vector<std::string> first = head.front();
  head.erase(head.begin());
  std::string out = RenderTable(first, head);

  std::vector<std::vector<std::string>> revs;
  for (const Row& r : rows) {
    revs.push_back({absl::StrCat(r.revision), r.role, absl::StrCat(r.weight, "%"),
                    absl::StrCat(r.replicas.live), absl::StrCat(r.replicas.serving)});
  }
  out += "\n" + RenderTable({"REVISION", "ROLE", "WEIGHT", "REPLICAS", "SERVING"}, revs);

  out += "\n";
  if (d.analysis_size() == 0) {
    out += "No analysis results yet.\n";
  } else {
    std::vector<std::vector<std::string>> checks;
    for (const v1::AnalysisResult& a : d.analysis()) {
      checks.push_back({a.check(), FormatCheckValue(a.check(), a.value()),
                        FormatCheckValue(a.check(), a.threshold()), CheckResult(d, a),
                        OrDash(a.detail())});
    }
    out += RenderTable({"CHECK", "VALUE", "THRESHOLD", "RESULT", "DETAIL"}, checks);
  }
  return out;
}

}  // namespace warren
