#include "common/spec.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/enum_names.h"
#include "common/limits.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/yaml.h"

namespace warren {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using Json = nlohmann::ordered_json;

constexpr char kDurationHelp[] = "use a number with a unit: 500ms, 10s, 5m, 1h";
constexpr char kDurationType[] = "google.protobuf.Duration";
constexpr char kTimestampType[] = "google.protobuf.Timestamp";
constexpr char kMemoryBytesField[] = "warren.v1.Resources.memory_bytes";

// Debian's Abseil has its own string_view type, distinct from std::string_view.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status Invalid(absl::string_view path, absl::string_view msg) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", msg));
}

std::string Join(const std::string& path, absl::string_view key) {
  return path.empty() ? std::string(key) : absl::StrCat(path, ".", key);
}

// A value as an error message shows it: escaped and cut to 64 bytes.
std::string Shown(absl::string_view value) {
  if (value.size() <= 64) return absl::CHexEscape(value);
  return absl::StrCat(absl::CHexEscape(value.substr(0, 64)), "...");
}

bool IsDnsLabel(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(s.front()) || !alnum(s.back())) return false;
  for (char c : s) {
    if (!alnum(c) && c != '-') return false;
  }
  return true;
}

bool IsIdentifier(std::string_view s) {
  if (s.empty() || absl::ascii_isdigit(s[0])) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && c != '_') return false;
  }
  return true;
}

absl::Duration ToAbsl(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// A parsed placement constraint.
struct Constraint {
  enum class Subject { kName, kRole, kLabel };
  Subject subject;
  std::string label_key;
  bool equal;
  std::string value;
};

constexpr char kConstraintHelp[] =
    "use node.labels.KEY==VALUE, node.labels.KEY!=VALUE, node.name==NAME, node.name!=NAME, "
    "node.role==ROLE or node.role!=ROLE";

absl::StatusOr<Constraint> ParseConstraint(absl::string_view expr) {
  Constraint c;
  size_t op = expr.find("==");
  size_t ne = expr.find("!=");
  if (op == absl::string_view::npos || (ne != absl::string_view::npos && ne < op)) {
    op = ne;
    c.equal = false;
  } else {
    c.equal = true;
  }
  auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid constraint \"%s\": %s", expr, kConstraintHelp));
  };
  if (op == absl::string_view::npos) return bad();
  absl::string_view lhs = absl::StripAsciiWhitespace(expr.substr(0, op));
  absl::string_view rhs = absl::StripAsciiWhitespace(expr.substr(op + 2));
  if (rhs.empty() || absl::StrContains(rhs, "==") || absl::StrContains(rhs, "!=")) return bad();
  c.value = std::string(rhs);
  if (lhs == "node.name") {
    c.subject = Constraint::Subject::kName;
  } else if (lhs == "node.role") {
    c.subject = Constraint::Subject::kRole;
  } else if (absl::ConsumePrefix(&lhs, "node.labels.") && !lhs.empty() &&
             lhs.find_first_of(" \t") == absl::string_view::npos) {
    c.subject = Constraint::Subject::kLabel;
    c.label_key = std::string(lhs);
  } else {
    return bad();
  }
  return c;
}

absl::Status ValidateDuration(const std::string& path, const google::protobuf::Duration& d,
                              bool positive) {
  absl::Duration v = ToAbsl(d);
  const std::string max = warren::FormatDuration(limits::kMaxSpecDuration);
  if (positive && (v <= absl::ZeroDuration() || v > limits::kMaxSpecDuration)) {
    return Invalid(path, absl::StrCat("must be greater than 0 and at most ", max, ", got ",
                                      warren::FormatDuration(v)));
  }
  if (v < absl::ZeroDuration() || v > limits::kMaxSpecDuration) {
    return Invalid(path, absl::StrCat("must be 0..", max, ", got ", warren::FormatDuration(v)));
  }
  return absl::OkStatus();
}

absl::Status TooLong(const std::string& path, size_t max, size_t got) {
  return Invalid(path, absl::StrFormat("must be at most %d bytes, got %d", max, got));
}

absl::Status CheckLength(const std::string& path, const std::string& value, size_t max) {
  return value.size() <= max ? absl::OkStatus() : TooLong(path, max, value.size());
}

absl::Status CheckCount(const std::string& path, int count, int max) {
  if (count <= max) return absl::OkStatus();
  return Invalid(path, absl::StrFormat("must have at most %d entries, got %d", max, count));
}

// Keys and values of a string map: at most `max` entries, keys and values within their sizes.
absl::Status CheckStringMap(const std::string& path,
                            const google::protobuf::Map<std::string, std::string>& m, int max,
                            size_t max_key, size_t max_value) {
  if (auto s = CheckCount(path, static_cast<int>(m.size()), max); !s.ok()) return s;
  for (const auto& [k, v] : m) {
    if (k.size() > max_key) {
      return Invalid(path, absl::StrFormat("key \"%s...\" must be at most %d bytes, got %d",
                                           absl::CHexEscape(k.substr(0, 32)), max_key, k.size()));
    }
    if (auto s = CheckLength(absl::StrCat(path, ".", k), v, max_value); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// A list of strings: at most `max` entries of at most `max_bytes` each.
absl::Status CheckStringList(const std::string& path,
                             const google::protobuf::RepeatedPtrField<std::string>& list, int max,
                             size_t max_bytes) {
  if (auto s = CheckCount(path, list.size(), max); !s.ok()) return s;
  for (int i = 0; i < list.size(); ++i) {
    if (auto s = CheckLength(absl::StrCat(path, "[", i, "]"), list[i], max_bytes); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

// No string anywhere in `msg` may hold a NUL byte: execve, environment blocks, DNS names and
// container labels would cut it silently.
absl::Status CheckNoNul(const google::protobuf::Message& msg, const std::string& path) {
  using FD = FieldDescriptor;
  const google::protobuf::Reflection* r = msg.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(msg, &fields);
  auto nul = [](const std::string& s) { return s.find('\0') != std::string::npos; };
  auto fail = [](const std::string& where) {
    return Invalid(where, "must not contain a NUL byte");
  };
  for (const FieldDescriptor* f : fields) {
    const std::string fpath = Join(path, f->json_name());
    if (f->is_map()) {
      const Descriptor* entry = f->message_type();
      if (entry->map_key()->cpp_type() != FD::CPPTYPE_STRING ||
          entry->map_value()->cpp_type() != FD::CPPTYPE_STRING) {
        continue;
      }
      for (int i = 0; i < r->FieldSize(msg, f); ++i) {
        const google::protobuf::Message& e = r->GetRepeatedMessage(msg, f, i);
        const std::string key = e.GetReflection()->GetString(e, entry->map_key());
        if (nul(key)) return fail(absl::StrCat(fpath, " key \"", absl::CHexEscape(key), "\""));
        if (nul(e.GetReflection()->GetString(e, entry->map_value()))) {
          return fail(Join(fpath, key));
        }
      }
    } else if (f->cpp_type() == FD::CPPTYPE_STRING) {
      if (f->is_repeated()) {
        for (int i = 0; i < r->FieldSize(msg, f); ++i) {
          if (nul(r->GetRepeatedString(msg, f, i))) return fail(absl::StrCat(fpath, "[", i, "]"));
        }
      } else if (nul(r->GetString(msg, f))) {
        return fail(fpath);
      }
    } else if (f->cpp_type() == FD::CPPTYPE_MESSAGE) {
      if (f->is_repeated()) {
        for (int i = 0; i < r->FieldSize(msg, f); ++i) {
          if (auto s =
                  CheckNoNul(r->GetRepeatedMessage(msg, f, i), absl::StrCat(fpath, "[", i, "]"));
              !s.ok()) {
            return s;
          }
        }
      } else if (auto s = CheckNoNul(r->GetMessage(msg, f), fpath); !s.ok()) {
        return s;
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidatePortNumber(const std::string& path, int port, bool zero_ok) {
  if ((zero_ok && port == 0) || (port >= 1 && port <= 65535)) return absl::OkStatus();
  return Invalid(path, absl::StrCat(zero_ok ? "must be 0 (the task's port) or 1..65535, got "
                                            : "must be 1..65535, got ",
                                    port));
}

absl::Status ValidateHealth(const v1::HealthCheck& hc) {
  const std::string p = "template.healthCheck";
  switch (hc.probe_case()) {
    case v1::HealthCheck::kHttp: {
      const v1::HttpProbe& h = hc.http();
      if (auto s = CheckLength(p + ".http.path", h.path(), limits::kMaxHealthPathBytes); !s.ok()) {
        return s;
      }
      if (auto s = CheckStringMap(p + ".http.headers", h.headers(), limits::kMaxHealthHeaders,
                                  limits::kMaxHeaderNameBytes, limits::kMaxHeaderValueBytes);
          !s.ok()) {
        return s;
      }
      if (!absl::StartsWith(h.path(), "/")) {
        return Invalid(p + ".http.path",
                       absl::StrFormat("must start with '/', got \"%s\"", h.path()));
      }
      if (auto s = ValidatePortNumber(p + ".http.port", h.port(), true); !s.ok()) return s;
      for (const auto& [path, v] : {std::pair{p + ".http.statusMin", h.status_min()},
                                    {p + ".http.statusMax", h.status_max()}}) {
        if (v < 100 || v > 599) return Invalid(path, absl::StrCat("must be 100..599, got ", v));
      }
      if (h.status_min() > h.status_max()) {
        return Invalid(p + ".http.statusMin",
                       absl::StrFormat("must not be greater than statusMax (%d > %d)",
                                       h.status_min(), h.status_max()));
      }
      for (const auto& [k, v] : h.headers()) {
        if (k.empty()) return Invalid(p + ".http.headers", "header names must not be empty");
      }
      break;
    }
    case v1::HealthCheck::kTcp:
      if (auto s = ValidatePortNumber(p + ".tcp.port", hc.tcp().port(), true); !s.ok()) return s;
      break;
    case v1::HealthCheck::kExec:
      if (auto s = CheckStringList(p + ".exec.command", hc.exec().command(), limits::kMaxArgs,
                                   limits::kMaxArgBytes);
          !s.ok()) {
        return s;
      }
      if (hc.exec().command().empty() || hc.exec().command(0).empty()) {
        return Invalid(p + ".exec.command", "required (the command to run as the probe)");
      }
      break;
    case v1::HealthCheck::PROBE_NOT_SET:
      return Invalid(p, "set exactly one probe: http, tcp or exec");
  }
  if (auto s = ValidateDuration(p + ".interval", hc.interval(), true); !s.ok()) return s;
  if (auto s = ValidateDuration(p + ".timeout", hc.timeout(), true); !s.ok()) return s;
  if (auto s = ValidateDuration(p + ".startPeriod", hc.start_period(), false); !s.ok()) return s;
  for (const auto& [path, v] : {std::pair{p + ".retries", hc.retries()},
                                {p + ".successThreshold", hc.success_threshold()}}) {
    if (v < 1 || v > limits::kMaxHealthRetries) {
      return Invalid(path, absl::StrCat("must be 1..", limits::kMaxHealthRetries, ", got ", v));
    }
  }
  return absl::OkStatus();
}

// Sizes and counts first: the checks after them may quote a value in their message.
absl::Status ValidateTemplateSizes(const v1::TaskTemplate& t) {
  const std::string p = "template";
  if (auto s = CheckLength(p + ".command", t.command(), limits::kMaxCommandBytes); !s.ok()) {
    return s;
  }
  if (auto s = CheckLength(p + ".image", t.image(), limits::kMaxImageBytes); !s.ok()) return s;
  if (auto s = CheckStringList(p + ".args", t.args(), limits::kMaxArgs, limits::kMaxArgBytes);
      !s.ok()) {
    return s;
  }
  if (auto s = CheckStringMap(p + ".env", t.env(), limits::kMaxEnv, limits::kMaxEnvNameBytes,
                              limits::kMaxEnvValueBytes);
      !s.ok()) {
    return s;
  }
  if (auto s = CheckStringMap(p + ".labels", t.labels(), limits::kMaxLabels,
                              limits::kMaxLabelKeyBytes, limits::kMaxLabelValueBytes);
      !s.ok()) {
    return s;
  }
  if (auto s = CheckStringList(p + ".constraints", t.constraints(), limits::kMaxConstraints,
                               limits::kMaxConstraintBytes);
      !s.ok()) {
    return s;
  }
  if (auto s = CheckCount(p + ".ports", t.ports_size(), limits::kMaxPorts); !s.ok()) return s;
  for (int i = 0; i < t.ports_size(); ++i) {
    const std::string pp = absl::StrCat(p, ".ports[", i, "]");
    if (auto s = CheckLength(pp + ".name", t.ports(i).name(), limits::kMaxPortNameBytes); !s.ok()) {
      return s;
    }
    // An IPv6 address with a zone is the longest form a host address takes.
    if (auto s = CheckLength(pp + ".hostIp", t.ports(i).host_ip(), 64); !s.ok()) return s;
    if (auto s = CheckLength(pp + ".protocol", t.ports(i).protocol(), 16); !s.ok()) return s;
  }
  if (auto s = CheckLength(p + ".imagePullPolicy", t.image_pull_policy(), 16); !s.ok()) return s;
  if (t.restart_policy().condition().size() > 16) {
    return TooLong(p + ".restartPolicy.condition", 16, t.restart_policy().condition().size());
  }
  return absl::OkStatus();
}

absl::Status ValidateTemplate(const v1::TaskTemplate& t) {
  if (auto s = ValidateTemplateSizes(t); !s.ok()) return s;
  if (t.image().empty() && t.command().empty()) {
    return Invalid("template.command", "required (the process runtime runs a command)");
  }
  std::map<std::pair<std::string, int>, int> published;  // (host ip, port) -> index
  std::map<std::string, int> names;
  for (int i = 0; i < t.ports_size(); ++i) {
    const v1::Port& port = t.ports(i);
    const std::string p = absl::StrCat("template.ports[", i, "]");
    if (auto s = ValidatePortNumber(p + ".target", port.target(), false); !s.ok()) return s;
    if (port.published() != 0) {
      if (auto s = ValidatePortNumber(p + ".published", port.published(), false); !s.ok()) {
        return s;
      }
      // The same port on two host addresses could coexist, but 0.0.0.0 overlaps everything, so
      // published ports are simply unique per service.
      auto [it, inserted] = published.emplace(std::pair{std::string(), port.published()}, i);
      if (!inserted) {
        return Invalid(p + ".published",
                       absl::StrFormat("port %d is already published by ports[%d]",
                                       port.published(), it->second));
      }
    }
    if (!port.host_ip().empty()) {
      unsigned char buf[16];
      if (inet_pton(AF_INET, port.host_ip().c_str(), buf) != 1 &&
          inet_pton(AF_INET6, port.host_ip().c_str(), buf) != 1) {
        return Invalid(p + ".hostIp", absl::StrFormat("must be an IPv4 or IPv6 address, got \"%s\"",
                                                      port.host_ip()));
      }
    }
    if (port.protocol() != "tcp") {
      return Invalid(
          p + ".protocol",
          absl::StrFormat("must be \"tcp\" (the only protocol), got \"%s\"", port.protocol()));
    }
    if (port.name() == kPreviewPortName) {
      return Invalid(p + ".name", "\"preview\" is reserved for the blue/green preview port");
    }
    if (!port.name().empty()) {
      auto [it, inserted] = names.emplace(port.name(), i);
      if (!inserted) {
        return Invalid(p + ".name", absl::StrFormat("\"%s\" is already used by ports[%d]",
                                                    port.name(), it->second));
      }
    }
  }
  if (t.has_health_check()) {
    if (auto s = ValidateHealth(t.health_check()); !s.ok()) return s;
  }
  if (t.has_restart_policy()) {
    const v1::RestartPolicy& r = t.restart_policy();
    const std::string p = "template.restartPolicy";
    if (r.condition() != "always" && r.condition() != "on-failure" && r.condition() != "never") {
      return Invalid(
          p + ".condition",
          absl::StrFormat("must be always, on-failure or never, got \"%s\"", r.condition()));
    }
    if (r.max_attempts() < 0 || r.max_attempts() > limits::kMaxRestartAttempts) {
      return Invalid(p + ".maxAttempts",
                     absl::StrCat("must be 0 (unlimited)..", limits::kMaxRestartAttempts, ", got ",
                                  r.max_attempts()));
    }
    if (auto s = ValidateDuration(p + ".delay", r.delay(), false); !s.ok()) return s;
    if (auto s = ValidateDuration(p + ".maxDelay", r.max_delay(), false); !s.ok()) return s;
  }
  if (t.has_resources()) {
    double cpus = t.resources().cpus();
    if (!std::isfinite(cpus) || cpus < 0 || cpus > limits::kMaxCpus) {
      return Invalid("template.resources.cpus",
                     absl::StrCat("must be 0..", limits::kMaxCpus, ", got ", cpus));
    }
    if (t.resources().memory_bytes() < 0 ||
        t.resources().memory_bytes() > limits::kMaxMemoryBytes) {
      return Invalid("template.resources.memoryBytes",
                     absl::StrCat("must be 0..", limits::kMaxMemoryBytes, " (1 PiB), got ",
                                  t.resources().memory_bytes()));
    }
  }
  for (int i = 0; i < t.constraints_size(); ++i) {
    if (auto c = ParseConstraint(t.constraints(i)); !c.ok()) {
      return Invalid(absl::StrCat("template.constraints[", i, "]"), c.status().message());
    }
  }
  if (t.secrets_size() > limits::kMaxSecretsPerTask) {
    return Invalid("template.secrets", absl::StrCat("at most ", limits::kMaxSecretsPerTask,
                                                    " secrets, got ", t.secrets_size()));
  }
  for (int i = 0; i < t.secrets_size(); ++i) {
    const v1::SecretReference& ref = t.secrets(i);
    const std::string p = absl::StrCat("template.secrets[", i, "]");
    if (auto s = ValidateSecretName(ref.name()); !s.ok()) {
      return Invalid(p + ".name", s.message());
    }
    const std::string& target = ref.target();
    if (target.empty() || target.size() > 255 || target == "." || target == ".." ||
        target.find('/') != std::string::npos) {
      return Invalid(p + ".target",
                     absl::StrFormat("\"%s\" is not a file name (1..255 bytes, no '/', not "
                                     "\".\" or \"..\")",
                                     Shown(target)));
    }
    if ((ref.mode() & ~0444u) != 0 || (ref.mode() & 0400u) == 0) {
      return Invalid(p + ".mode", absl::StrFormat("must be read-only bits with the owner's read "
                                                  "bit (0400..0444), got 0%o",
                                                  ref.mode()));
    }
    if (ref.uid() == UINT32_MAX || ref.gid() == UINT32_MAX) {
      return Invalid(p + (ref.uid() == UINT32_MAX ? ".uid" : ".gid"),
                     "4294967295 is not a user or group id (0..4294967294)");
    }
    for (int j = 0; j < i; ++j) {
      if (t.secrets(j).target() == target) {
        return Invalid(p + ".target",
                       absl::StrFormat("\"%s\" is already used by secrets[%d]", Shown(target), j));
      }
    }
  }
  for (const auto& [k, v] : t.env()) {
    if (!IsIdentifier(k)) {
      return Invalid("template.env",
                     absl::StrFormat("\"%s\" is not a valid variable name (letters, digits and "
                                     "'_', not starting with a digit)",
                                     k));
    }
  }
  for (const auto& [k, v] : t.labels()) {
    if (k.empty() || absl::StartsWith(k, "io.warren.")) {
      return Invalid("template.labels",
                     absl::StrFormat("\"%s\": keys must be non-empty and not start with "
                                     "\"io.warren.\" (Warren's own labels)",
                                     k));
    }
  }
  if (const std::string& p = t.image_pull_policy();
      !p.empty() && p != "always" && p != "missing" && p != "never") {
    return Invalid("template.imagePullPolicy",
                   absl::StrFormat("must be always, missing or never, got \"%s\"", p));
  }
  if (!t.image().empty() &&
      (t.image().find_first_of(" \t\n") != std::string::npos || t.image().front() == '-')) {
    return Invalid("template.image", absl::StrFormat("\"%s\" is not an image reference (e.g. "
                                                     "127.0.0.1:5000/shop/web:2)",
                                                     t.image()));
  }
  if (auto s = ValidateDuration("template.drainTimeout", t.drain_timeout(), false); !s.ok()) {
    return s;
  }
  if (auto s = ValidateDuration("template.stopTimeout", t.stop_timeout(), false); !s.ok()) {
    return s;
  }
  return absl::OkStatus();
}

// ---- update config ------------------------------------------------------------------------

// Rollout strategies the deployment controller runs.
constexpr absl::string_view kStrategies[] = {"rolling", "blue-green", "canary"};
constexpr absl::string_view kThinTraffic[] = {"extend", "pass", "fail"};
constexpr absl::string_view kOrders[] = {"start-first", "stop-first"};
constexpr absl::string_view kFailureActions[] = {"pause", "rollback", "continue"};

template <size_t N>
absl::Status ValidateOneOf(const std::string& path, const std::string& value,
                           const absl::string_view (&allowed)[N]) {
  for (absl::string_view a : allowed) {
    if (value == a) return absl::OkStatus();
  }
  std::string list;
  for (size_t i = 0; i < N; ++i) {
    if (i > 0) absl::StrAppend(&list, i + 1 == N ? " or " : ", ");
    absl::StrAppend(&list, allowed[i]);
  }
  return Invalid(path, absl::StrFormat("must be %s, got \"%s\"", list, Shown(value)));
}

// "12" or "25%": the count or percent, and whether it was a percent.
absl::StatusOr<std::pair<int, bool>> ParseBudget(absl::string_view text) {
  auto bad = [original = text] {
    return absl::InvalidArgumentError(
        absl::StrFormat("must be a whole number (0 or more) or a whole percent 0%%..100%%, got "
                        "\"%s\"",
                        Shown(original)));
  };
  bool percent = absl::ConsumeSuffix(&text, "%");
  if (text.empty() || text.size() > 9) return bad();
  for (char c : text) {
    if (!absl::ascii_isdigit(c)) return bad();
  }
  int n;
  if (!absl::SimpleAtoi(text, &n) || (percent && n > 100)) return bad();
  return std::pair{n, percent};
}

void SetDurationSeconds(google::protobuf::Duration* d, int64_t seconds) {
  d->set_seconds(seconds);
  d->set_nanos(0);
}

absl::Status ValidateCanarySteps(const v1::UpdateConfig& u, const std::string& p) {
  const auto& steps = u.canary_steps();
  if (auto s = CheckCount(p + ".canarySteps", steps.size(), limits::kMaxCanarySteps); !s.ok()) {
    return s;
  }
  for (int i = 0; i < steps.size(); ++i) {
    const std::string path = absl::StrCat(p, ".canarySteps[", i, "]");
    if (steps[i] < 1 || steps[i] > 100) {
      return Invalid(path, absl::StrCat("must be 1..100 (percent), got ", steps[i]));
    }
    if (i > 0 && steps[i] <= steps[i - 1]) {
      return Invalid(path, absl::StrFormat("must be greater than the step before (%d), got %d",
                                           steps[i - 1], steps[i]));
    }
  }
  if (!steps.empty() && steps[steps.size() - 1] != 100) {
    return Invalid(absl::StrCat(p, ".canarySteps[", steps.size() - 1, "]"),
                   absl::StrCat("the last step must be 100, got ", steps[steps.size() - 1]));
  }
  return absl::OkStatus();
}

absl::Status ValidateUpdateConfig(const v1::UpdateConfig& u, const std::string& p) {
  if (auto s = ValidateOneOf(p + ".strategy", u.strategy(), kStrategies); !s.ok()) return s;
  if (u.parallelism() < 0 || u.parallelism() > limits::kMaxReplicas) {
    return Invalid(
        p + ".parallelism",
        absl::StrCat("must be 0 (all at once)..", limits::kMaxReplicas, ", got ", u.parallelism()));
  }
  bool surge_zero = false, unavailable_zero = false;
  for (const auto& [field, value, zero] :
       {std::tuple{".maxSurge", &u.max_surge(), &surge_zero},
        std::tuple{".maxUnavailable", &u.max_unavailable(), &unavailable_zero}}) {
    absl::StatusOr<std::pair<int, bool>> b = ParseBudget(*value);
    if (!b.ok()) return Invalid(p + field, b.status().message());
    if (!b->second && b->first > limits::kMaxReplicas) {
      return Invalid(p + field, absl::StrFormat("must be a whole number 0..%d or a whole percent "
                                                "0%%..100%%, got \"%s\"",
                                                limits::kMaxReplicas, *value));
    }
    *zero = b->first == 0;
  }
  if (surge_zero && unavailable_zero) {
    return Invalid(p, "maxSurge and maxUnavailable cannot both be 0");
  }
  if (auto s = ValidateOneOf(p + ".order", u.order(), kOrders); !s.ok()) return s;
  for (const auto& [field, d] :
       {std::pair{".delay", &u.delay()}, std::pair{".minReady", &u.min_ready()},
        std::pair{".healthyDeadline", &u.healthy_deadline()},
        std::pair{".progressDeadline", &u.progress_deadline()}}) {
    if (auto s = ValidateDuration(p + field, *d, false); !s.ok()) return s;
  }
  if (auto s = ValidateOneOf(p + ".failureAction", u.failure_action(), kFailureActions); !s.ok()) {
    return s;
  }
  double r = u.max_failure_ratio();
  if (!std::isfinite(r) || r < 0 || r > 1) {
    return Invalid(p + ".maxFailureRatio", absl::StrCat("must be 0..1, got ", r));
  }
  // Options of the other strategies are accepted and ignored (documented), so switching
  // strategy back and forth keeps a service's tuned settings.
  if (auto s = ValidateCanarySteps(u, p); !s.ok()) return s;
  for (const auto& [field, d] : {std::pair{".scaleDownDelay", &u.scale_down_delay()},
                                 std::pair{".placementGrace", &u.placement_grace()},
                                 std::pair{".canaryWindow", &u.canary_window()},
                                 std::pair{".maxLatency", &u.max_latency()}}) {
    if (auto s = ValidateDuration(p + field, *d, false); !s.ok()) return s;
  }
  // Zero would judge no traffic at all: `rollingAnalysis: false` is how to turn it off.
  if (u.has_rolling_window()) {
    if (auto s = ValidateDuration(p + ".rollingWindow", u.rolling_window(), true); !s.ok()) {
      return s;
    }
  }
  if (int port = u.preview_published_port(); port < 0 || port > 65535) {
    return Invalid(p + ".previewPublishedPort",
                   absl::StrCat("must be 0 (no preview port) or 1..65535, got ", port));
  }
  for (const auto& [field, has, v] :
       {std::tuple{".failureThreshold", u.has_failure_threshold(), u.failure_threshold()},
        std::tuple{".maxErrorRateIncrease", u.has_max_error_rate_increase(),
                   u.max_error_rate_increase()}}) {
    if (has && (!std::isfinite(v) || v < 0 || v > 100)) {
      return Invalid(p + field, absl::StrCat("must be 0..100 (percent), got ", v));
    }
  }
  if (u.min_requests() < 0 || u.min_requests() > limits::kMaxMinRequests) {
    return Invalid(p + ".minRequests", absl::StrCat("must be 0..", limits::kMaxMinRequests,
                                                    ", got ", u.min_requests()));
  }
  if (auto s =
          CheckLength(p + ".analysisQuery", u.analysis_query(), limits::kMaxAnalysisQueryBytes);
      !s.ok()) {
    return s;
  }
  if (!u.thin_traffic().empty()) {
    if (auto s = ValidateOneOf(p + ".thinTraffic", u.thin_traffic(), kThinTraffic); !s.ok()) {
      return s;
    }
  }
  if (!u.analysis_query().empty() && !u.has_analysis_threshold()) {
    return Invalid(p + ".analysisThreshold", "required when analysisQuery is set");
  }
  if (u.has_analysis_threshold()) {
    if (u.analysis_query().empty()) {
      return Invalid(p + ".analysisQuery", "required when analysisThreshold is set");
    }
    if (!std::isfinite(u.analysis_threshold())) {
      return Invalid(p + ".analysisThreshold",
                     absl::StrCat("must be a finite number, got ", u.analysis_threshold()));
    }
  }
  return absl::OkStatus();
}

// The preview port must not collide with a production port: they would share a listener.
absl::Status ValidatePreviewPort(const v1::ServiceSpec& spec) {
  int preview = spec.update_config().preview_published_port();
  if (preview == 0) return absl::OkStatus();
  for (int i = 0; i < spec.template_().ports_size(); ++i) {
    if (spec.template_().ports(i).published() == preview) {
      return Invalid(
          "updateConfig.previewPublishedPort",
          absl::StrFormat("port %d is already published by template.ports[%d]", preview, i));
    }
  }
  return absl::OkStatus();
}

// ---- YAML -> JSON, guided by the message descriptor ----------------------------------------

const FieldDescriptor* FindField(const Descriptor* desc, std::string_view key) {
  for (int i = 0; i < desc->field_count(); ++i) {
    const FieldDescriptor* f = desc->field(i);
    if (f->json_name() == key || f->name() == key) return f;
  }
  return nullptr;
}

std::string KindName(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return absl::StrFormat("\"%s\"", n.Scalar());
    default:
      return "nothing";
  }
}

std::string ProtoDurationString(absl::Duration d) {
  int64_t ns = absl::ToInt64Nanoseconds(d);
  bool neg = ns < 0;
  uint64_t abs_ns = neg ? -static_cast<uint64_t>(ns) : static_cast<uint64_t>(ns);
  uint64_t secs = abs_ns / 1'000'000'000;
  uint64_t frac = abs_ns % 1'000'000'000;
  std::string out = absl::StrCat(neg ? "-" : "", secs);
  if (frac != 0) absl::StrAppend(&out, absl::StrFormat(".%09d", frac));
  return out + "s";
}

// Bytes a document may still produce: aliases repeat what they name, so a small document can
// expand to gigabytes (every node costs its scalar's size plus a little).
struct ExpansionBudget {
  size_t left = limits::kMaxExpandedDocumentBytes;

  absl::Status Take(const YAML::Node& node) {
    size_t cost = 16 + (node.IsScalar() ? node.Scalar().size() : 0);
    if (cost > left) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "larger than %d bytes once aliases are expanded; a service spec is at most %d bytes",
          limits::kMaxExpandedDocumentBytes, limits::kMaxSpecBytes));
    }
    left -= cost;
    return absl::OkStatus();
  }
};

absl::Status YamlMessageToJson(const YAML::Node& node, const Descriptor* desc,
                               const std::string& path, ExpansionBudget& budget, Json* out);

// One value of `field` (an element when the field is repeated, the value when it is a map).
absl::Status YamlValueToJson(const YAML::Node& node, const FieldDescriptor* field,
                             const std::string& path, ExpansionBudget& budget, Json* out) {
  using FD = FieldDescriptor;
  if (auto s = budget.Take(node); !s.ok()) return s;
  if (field->cpp_type() == FD::CPPTYPE_MESSAGE) {
    const std::string& type = field->message_type()->full_name();
    if (type == kDurationType) {
      if (!node.IsScalar())
        return Invalid(path, absl::StrCat("expected a duration, got ", KindName(node)));
      absl::StatusOr<absl::Duration> d = ParseDuration(node.Scalar());
      if (!d.ok()) return Invalid(path, d.status().message());
      *out = ProtoDurationString(*d);
      return absl::OkStatus();
    }
    if (type == kTimestampType) {
      if (!node.IsScalar())
        return Invalid(path, absl::StrCat("expected a timestamp, got ", KindName(node)));
      *out = node.Scalar();
      return absl::OkStatus();
    }
    return YamlMessageToJson(node, field->message_type(), path, budget, out);
  }
  if (!node.IsScalar()) {
    return Invalid(path, absl::StrCat("expected a single value, got ", KindName(node)));
  }
  const std::string& text = node.Scalar();
  switch (field->cpp_type()) {
    case FD::CPPTYPE_STRING:
      *out = text;
      return absl::OkStatus();
    case FD::CPPTYPE_ENUM:
      *out = text;
      return absl::OkStatus();
    case FD::CPPTYPE_BOOL: {
      bool b;
      if (!YAML::convert<bool>::decode(node, b)) {
        return Invalid(path, absl::StrFormat("expected true or false, got \"%s\"", text));
      }
      *out = b;
      return absl::OkStatus();
    }
    case FD::CPPTYPE_FLOAT:
    case FD::CPPTYPE_DOUBLE: {
      double d;
      if (!absl::SimpleAtod(text, &d) || !std::isfinite(d)) {
        return Invalid(path, absl::StrFormat("expected a number, got \"%s\"", text));
      }
      *out = d;
      return absl::OkStatus();
    }
    case FD::CPPTYPE_INT32:
    case FD::CPPTYPE_INT64: {
      if (field->full_name() == kMemoryBytesField) {
        absl::StatusOr<int64_t> n = ParseByteSize(text);
        if (!n.ok()) return Invalid(path, n.status().message());
        *out = *n;
        return absl::OkStatus();
      }
      int64_t n;
      if (!absl::SimpleAtoi(text, &n) ||
          (field->cpp_type() == FD::CPPTYPE_INT32 &&
           (n < std::numeric_limits<int32_t>::min() || n > std::numeric_limits<int32_t>::max()))) {
        return Invalid(path, absl::StrFormat("expected a whole number, got \"%s\"", text));
      }
      *out = n;
      return absl::OkStatus();
    }
    case FD::CPPTYPE_UINT32:
    case FD::CPPTYPE_UINT64: {
      uint64_t n;
      if (!absl::SimpleAtoi(text, &n) ||
          (field->cpp_type() == FD::CPPTYPE_UINT32 && n > std::numeric_limits<uint32_t>::max())) {
        return Invalid(path, absl::StrFormat("expected a whole number, got \"%s\"", text));
      }
      *out = n;
      return absl::OkStatus();
    }
    default:
      return Invalid(path, "unsupported field type");
  }
}

absl::Status YamlMessageToJson(const YAML::Node& node, const Descriptor* desc,
                               const std::string& path, ExpansionBudget& budget, Json* out) {
  if (auto s = budget.Take(node); !s.ok()) return s;
  if (!node.IsMap()) {
    return Invalid(path.empty() ? "document" : path,
                   absl::StrCat("expected a mapping, got ", KindName(node)));
  }
  *out = Json::object();
  std::set<int> seen;
  for (const auto& kv : node) {
    if (!kv.first.IsScalar())
      return Invalid(path.empty() ? "document" : path, "keys must be names");
    if (auto s = budget.Take(kv.first); !s.ok()) return s;
    const std::string key = kv.first.Scalar();
    const std::string fpath = Join(path, Shown(key));
    const FieldDescriptor* field = FindField(desc, key);
    if (field == nullptr) {
      return absl::InvalidArgumentError(absl::StrFormat("unknown field \"%s\"", fpath));
    }
    if (!seen.insert(field->number()).second) {
      return absl::InvalidArgumentError(absl::StrFormat("field \"%s\" is given twice", fpath));
    }
    const YAML::Node& value = kv.second;
    if (value.IsNull()) continue;  // `key:` with nothing means unset.
    Json& slot = (*out)[key];
    if (field->is_map()) {
      if (!value.IsMap())
        return Invalid(fpath, absl::StrCat("expected a mapping, got ", KindName(value)));
      const FieldDescriptor* value_field = field->message_type()->map_value();
      slot = Json::object();
      for (const auto& entry : value) {
        if (!entry.first.IsScalar()) return Invalid(fpath, "keys must be single values");
        if (auto s = budget.Take(entry.first); !s.ok()) return s;
        const std::string k = entry.first.Scalar();
        Json v;
        if (auto s = YamlValueToJson(entry.second, value_field, Join(fpath, Shown(k)), budget, &v);
            !s.ok()) {
          return s;
        }
        slot[k] = std::move(v);
      }
    } else if (field->is_repeated()) {
      if (!value.IsSequence())
        return Invalid(fpath, absl::StrCat("expected a list, got ", KindName(value)));
      slot = Json::array();
      for (size_t i = 0; i < value.size(); ++i) {
        Json v;
        if (auto s = YamlValueToJson(value[i], field, absl::StrCat(fpath, "[", i, "]"), budget, &v);
            !s.ok()) {
          return s;
        }
        slot.push_back(std::move(v));
      }
    } else {
      if (auto s = YamlValueToJson(value, field, fpath, budget, &slot); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

// Nesting of '[' and '{' outside quotes and comments, checked before yaml-cpp (which recurses
// per level) sees the input. A ServiceSpec nests a few levels; brackets inside a block scalar
// count too, which only matters past kMaxYamlDepth.
absl::Status CheckFlowDepth(std::string_view yaml) {
  int depth = 0;
  int line = 1;
  char quote = 0;
  bool comment = false;
  for (size_t i = 0; i < yaml.size(); ++i) {
    const char c = yaml[i];
    if (c == '\n') {
      ++line;
      comment = false;
      continue;
    }
    if (comment) continue;
    if (quote == '"') {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        quote = 0;
      }
      continue;
    }
    if (quote == '\'') {
      if (c == '\'') quote = 0;  // '' inside single quotes reopens at once: same effect
      continue;
    }
    if (c == '#' && (i == 0 || yaml[i - 1] == ' ' || yaml[i - 1] == '\t' || yaml[i - 1] == '\n')) {
      comment = true;
    } else if ((c == '"' || c == '\'') &&
               (i == 0 ||
                std::string_view(" \t\n[{,:-").find(yaml[i - 1]) != std::string_view::npos)) {
      quote = c;
    } else if (c == '[' || c == '{') {
      if (++depth > limits::kMaxYamlDepth) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "invalid YAML at line %d: nested deeper than %d levels", line, limits::kMaxYamlDepth));
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return absl::OkStatus();
}

// proto3 JSON leaves out a replica count of 0, and a spec file without `replicas` means 1:
// every replicated ServiceSpec in `j` gets its 0 back, so printed specs apply as they are.
void WriteZeroReplicas(Json& j, const Descriptor* desc) {
  if (!j.is_object() || desc == nullptr) return;
  if (desc == v1::ServiceSpec::descriptor() && !j.contains("replicas") &&
      !(j.contains("mode") && j["mode"] == "global")) {
    j["replicas"] = 0;
  }
  for (auto& [key, value] : j.items()) {
    const FieldDescriptor* f = FindField(desc, key);
    if (f == nullptr || f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || f->is_map()) continue;
    if (value.is_array()) {
      for (auto& v : value) WriteZeroReplicas(v, f->message_type());
    } else {
      WriteZeroReplicas(value, f->message_type());
    }
  }
}

// Counts documents without building nodes. yaml-cpp 0.7 loops forever, one empty document
// after another, on a ',' where a document's node should start (found by the spec fuzzer):
// LoadAll would never return. A document that starts where the one before it did is that loop.
class DocumentCounter : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    repeated = documents > 0 && mark.pos == last.pos;
    last = mark;
    ++documents;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  YAML::Mark last;
  size_t documents = 0;
  bool repeated = false;
};

// Throws YAML::Exception for what yaml-cpp rejects; an error for what it would loop on.
absl::Status CheckDocumentsEnd(const std::string& yaml) {
  std::istringstream in(yaml);
  YAML::Parser parser(in);
  DocumentCounter counter;
  // Documents are separated by "---" or ended by "...": more than those allow is the loop.
  size_t limit = 1;
  for (size_t at = 0; (at = yaml.find_first_of("-.", at)) != std::string::npos; ++at) ++limit;
  while (parser.HandleNextDocument(counter)) {
    if (counter.repeated || counter.documents > limit) {
      return absl::InvalidArgumentError(
          absl::StrFormat("invalid YAML at line %d, column %d: a document cannot start with "
                          "',' (quote the value)",
                          counter.last.line + 1, counter.last.column + 1));
    }
  }
  return absl::OkStatus();
}

// ---- JSON -> YAML, guided by the message descriptor ----------------------------------------

// Strings a YAML reader would take for a number, a boolean or null get quotes.
bool NeedsQuotes(const std::string& s) {
  if (s.empty()) return true;
  // CheckFlowDepth counts brackets in a plain scalar as nesting, across lines: a spec whose
  // strings hold many of them would not read back from its own YAML. Quoted, they do not count.
  if (s.find_first_of("[{") != std::string::npos) return true;
  std::string lower = absl::AsciiStrToLower(s);
  static const std::set<std::string> kWords = {"null", "~", "true", "false", "yes",  "no",   "on",
                                               "off",  "y", "n",    ".nan",  ".inf", "-.inf"};
  if (kWords.count(lower)) return true;
  double d;
  if (absl::SimpleAtod(s, &d)) return true;
  // A plain scalar loses surrounding white space, and a line break (\r too, at the end of the
  // document) cannot be in one: quoted, the emitter escapes them.
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  if (blank(s.front()) || blank(s.back())) return true;
  return absl::c_any_of(s,
                        [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

void EmitJsonValue(YAML::Emitter& e, const Json& j, const FieldDescriptor* field);

void EmitJsonMessage(YAML::Emitter& e, const Json& j, const Descriptor* desc) {
  if (j.empty()) {
    e << YAML::Flow << YAML::BeginMap << YAML::EndMap;
    return;
  }
  e << YAML::BeginMap;
  for (const auto& [key, value] : j.items()) {
    e << YAML::Key << key << YAML::Value;
    const FieldDescriptor* field = desc ? FindField(desc, key) : nullptr;
    if (field && field->is_map()) {
      const FieldDescriptor* vf = field->message_type()->map_value();
      if (value.empty()) {
        e << YAML::Flow << YAML::BeginMap << YAML::EndMap;
        continue;
      }
      e << YAML::BeginMap;
      for (const auto& [k, v] : value.items()) {
        e << YAML::Key;
        if (NeedsQuotes(k)) e << YAML::DoubleQuoted;
        e << k << YAML::Value;
        EmitJsonValue(e, v, vf);
      }
      e << YAML::EndMap;
    } else if (value.is_array()) {
      if (value.empty()) {
        e << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
        continue;
      }
      e << YAML::BeginSeq;
      for (const auto& v : value) EmitJsonValue(e, v, field);
      e << YAML::EndSeq;
    } else {
      EmitJsonValue(e, value, field);
    }
  }
  e << YAML::EndMap;
}

void EmitJsonValue(YAML::Emitter& e, const Json& j, const FieldDescriptor* field) {
  using FD = FieldDescriptor;
  if (field && field->cpp_type() == FD::CPPTYPE_MESSAGE) {
    const std::string& type = field->message_type()->full_name();
    if (type == kDurationType && j.is_string()) {
      absl::Duration d;
      if (absl::ParseDuration(j.get<std::string>(), &d)) {
        e << warren::FormatDuration(d);
        return;
      }
    }
    if (j.is_object()) {
      EmitJsonMessage(e, j, field->message_type());
      return;
    }
  }
  if (j.is_object()) {
    EmitJsonMessage(e, j, nullptr);
  } else if (j.is_array()) {
    e << YAML::BeginSeq;
    for (const auto& v : j) EmitJsonValue(e, v, nullptr);
    e << YAML::EndSeq;
  } else if (j.is_string()) {
    const std::string s = j.get<std::string>();
    // protobuf's JSON writes 64-bit integers as strings; YAML can hold them as numbers.
    bool numeric_field = field && (field->cpp_type() == FD::CPPTYPE_INT64 ||
                                   field->cpp_type() == FD::CPPTYPE_UINT64);
    if (!numeric_field && NeedsQuotes(s)) e << YAML::DoubleQuoted;
    e << s;
  } else if (j.is_boolean()) {
    e << (j.get<bool>() ? "true" : "false");
  } else if (j.is_number_integer()) {
    e << j.dump();
  } else if (j.is_number_float()) {
    e << j.dump();
  } else {
    e << YAML::Null;
  }
}

}  // namespace

absl::StatusOr<absl::Duration> ParseDuration(std::string_view text_in) {
  absl::string_view text = AV(text_in);
  absl::string_view t = absl::StripAsciiWhitespace(text);
  absl::Duration d;
  // absl also reads "inf"; an infinite timeout is never what a user means here.
  if (t.empty() || absl::StrContains(t, "inf") || !absl::ParseDuration(t, &d)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid duration \"%s\": %s", text, kDurationHelp));
  }
  return d;
}

std::string FormatDuration(absl::Duration d) { return absl::FormatDuration(d); }

absl::StatusOr<int64_t> ParseByteSize(std::string_view text_in) {
  absl::string_view text = AV(text_in);
  absl::string_view t = absl::StripAsciiWhitespace(text);
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrFormat(
        "invalid size \"%s\": use a number of bytes, optionally with a unit: 512, 256K, 256M, 1G",
        text));
  };
  size_t digits = 0;
  while (digits < t.size() && (absl::ascii_isdigit(t[digits]) || t[digits] == '.')) ++digits;
  if (digits == 0) return bad();
  double number;
  if (!absl::SimpleAtod(t.substr(0, digits), &number)) return bad();
  std::string unit = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(t.substr(digits)));
  if (absl::EndsWith(unit, "IB")) {
    unit = unit.substr(0, unit.size() - 2);
  } else if (unit.size() == 2 && unit[1] == 'B') {
    unit = unit.substr(0, 1);
  } else if (absl::EndsWith(unit, "I")) {
    unit.pop_back();
  }
  double scale;
  if (unit.empty() || unit == "B") {
    scale = 1;
  } else if (unit == "K") {
    scale = 1024.0;
  } else if (unit == "M") {
    scale = 1024.0 * 1024;
  } else if (unit == "G") {
    scale = 1024.0 * 1024 * 1024;
  } else if (unit == "T") {
    scale = 1024.0 * 1024 * 1024 * 1024;
  } else {
    return bad();
  }
  double bytes = number * scale;
  if (bytes >= 9.2e18) return bad();
  return static_cast<int64_t>(std::llround(bytes));
}

void ApplySpecDefaults(v1::ServiceSpec* spec) {
  if (spec->mode().empty()) spec->set_mode("replicated");
  v1::TaskTemplate* t = spec->mutable_template_();
  v1::RestartPolicy* r = t->mutable_restart_policy();
  if (r->condition().empty()) r->set_condition("always");
  if (!r->has_delay()) r->mutable_delay()->set_nanos(100'000'000);
  if (!r->has_max_delay()) r->mutable_max_delay()->set_seconds(30);
  for (v1::SecretReference& ref : *t->mutable_secrets()) {
    if (ref.target().empty()) ref.set_target(ref.name());
    if (ref.mode() == 0) ref.set_mode(0400);
  }
  if (t->has_health_check() && t->health_check().probe_case() != v1::HealthCheck::PROBE_NOT_SET) {
    v1::HealthCheck* h = t->mutable_health_check();
    if (!h->has_interval()) h->mutable_interval()->set_seconds(5);
    if (!h->has_timeout()) h->mutable_timeout()->set_seconds(2);
    if (h->retries() == 0) h->set_retries(3);
    if (h->success_threshold() == 0) h->set_success_threshold(1);
    if (h->has_http()) {
      if (h->http().status_min() == 0) h->mutable_http()->set_status_min(200);
      if (h->http().status_max() == 0) h->mutable_http()->set_status_max(399);
    }
  }
  if (!t->has_stop_timeout()) t->mutable_stop_timeout()->set_seconds(10);
  if (!t->has_drain_timeout()) t->mutable_drain_timeout()->set_seconds(5);
  for (v1::Port& port : *t->mutable_ports()) {
    if (port.protocol().empty()) port.set_protocol("tcp");
    if (port.name().empty()) port.set_name(absl::StrCat("p", port.target()));
  }
  ApplyUpdateConfigDefaults(spec->mutable_update_config());
  if (spec->history_limit() == 0) spec->set_history_limit(kDefaultHistoryLimit);
}

void ApplyUpdateConfigDefaults(v1::UpdateConfig* u) {
  if (u->strategy().empty()) u->set_strategy("rolling");
  if (!u->has_parallelism()) u->set_parallelism(1);
  if (u->max_surge().empty()) u->set_max_surge("1");
  if (u->max_unavailable().empty()) u->set_max_unavailable("0");
  if (u->order().empty()) u->set_order("start-first");
  if (!u->has_delay()) SetDurationSeconds(u->mutable_delay(), 0);
  if (!u->has_min_ready()) SetDurationSeconds(u->mutable_min_ready(), 0);
  if (!u->has_healthy_deadline()) SetDurationSeconds(u->mutable_healthy_deadline(), 5 * 60);
  if (!u->has_progress_deadline()) SetDurationSeconds(u->mutable_progress_deadline(), 10 * 60);
  if (u->failure_action().empty()) u->set_failure_action("rollback");
  if (!u->has_max_failure_ratio()) u->set_max_failure_ratio(0);
  if (!u->has_auto_promote()) u->set_auto_promote(true);
  if (!u->has_scale_down_delay()) SetDurationSeconds(u->mutable_scale_down_delay(), 30);
  if (u->strategy() == "canary" && u->canary_steps().empty()) {
    for (int w : kDefaultCanarySteps) u->add_canary_steps(w);
  }
  if (!u->has_canary_window()) SetDurationSeconds(u->mutable_canary_window(), 5 * 60);
  // A rolling update judges every request of the new revision from its first batch on, so
  // it is held to a stricter rate than a canary's share of the traffic.
  if (!u->has_failure_threshold()) u->set_failure_threshold(u->strategy() == "rolling" ? 5 : 10);
  if (!u->has_rolling_window()) SetDurationSeconds(u->mutable_rolling_window(), 10);
  if (u->min_requests() == 0) u->set_min_requests(kDefaultMinRequests);
  if (u->thin_traffic().empty()) u->set_thin_traffic("extend");
  if (!u->has_placement_grace()) SetDurationSeconds(u->mutable_placement_grace(), 5);
}

v1::UpdateConfig EffectiveRollbackConfig(const v1::ServiceSpec& spec) {
  v1::UpdateConfig out = spec.update_config();
  ApplyUpdateConfigDefaults(&out);
  // Field by field: protobuf's MergeFrom would skip an explicit 0s duration.
  const v1::UpdateConfig& r = spec.rollback_config();
  if (!r.strategy().empty()) out.set_strategy(r.strategy());
  if (r.has_parallelism()) out.set_parallelism(r.parallelism());
  if (!r.max_surge().empty()) out.set_max_surge(r.max_surge());
  if (!r.max_unavailable().empty()) out.set_max_unavailable(r.max_unavailable());
  if (!r.order().empty()) out.set_order(r.order());
  if (r.has_delay()) *out.mutable_delay() = r.delay();
  if (r.has_min_ready()) *out.mutable_min_ready() = r.min_ready();
  if (r.has_healthy_deadline()) *out.mutable_healthy_deadline() = r.healthy_deadline();
  if (r.has_progress_deadline()) *out.mutable_progress_deadline() = r.progress_deadline();
  if (!r.failure_action().empty()) out.set_failure_action(r.failure_action());
  if (r.has_max_failure_ratio()) out.set_max_failure_ratio(r.max_failure_ratio());
  if (r.has_auto_promote()) out.set_auto_promote(r.auto_promote());
  if (r.has_scale_down_delay()) *out.mutable_scale_down_delay() = r.scale_down_delay();
  if (r.has_placement_grace()) *out.mutable_placement_grace() = r.placement_grace();
  if (r.preview_published_port() != 0) out.set_preview_published_port(r.preview_published_port());
  if (!r.canary_steps().empty()) *out.mutable_canary_steps() = r.canary_steps();
  if (r.has_canary_window()) *out.mutable_canary_window() = r.canary_window();
  if (r.has_rolling_analysis()) out.set_rolling_analysis(r.rolling_analysis());
  if (r.has_rolling_window()) *out.mutable_rolling_window() = r.rolling_window();
  if (r.canary_keep_stable()) out.set_canary_keep_stable(true);
  if (r.has_failure_threshold()) out.set_failure_threshold(r.failure_threshold());
  if (r.has_max_error_rate_increase()) {
    out.set_max_error_rate_increase(r.max_error_rate_increase());
  }
  if (r.has_max_latency()) *out.mutable_max_latency() = r.max_latency();
  if (r.min_requests() != 0) out.set_min_requests(r.min_requests());
  if (!r.thin_traffic().empty()) out.set_thin_traffic(r.thin_traffic());
  if (!r.analysis_query().empty()) out.set_analysis_query(r.analysis_query());
  if (r.has_analysis_threshold()) out.set_analysis_threshold(r.analysis_threshold());
  // A rollback config that names canary without steps gets the default steps.
  if (out.strategy() == "canary" && out.canary_steps().empty()) {
    for (int w : kDefaultCanarySteps) out.add_canary_steps(w);
  }
  return out;
}

absl::StatusOr<int> ResolveBudget(std::string_view value, int replicas, bool round_up) {
  absl::StatusOr<std::pair<int, bool>> b = ParseBudget(AV(value));
  if (!b.ok()) return b.status();
  auto [n, percent] = *b;
  if (!percent) return n;
  int64_t scaled = static_cast<int64_t>(n) * std::max(replicas, 0);
  return static_cast<int>(round_up ? (scaled + 99) / 100 : scaled / 100);
}

absl::StatusOr<RollingBudget> ResolveRollingBudget(const v1::UpdateConfig& config, int replicas) {
  RollingBudget out;
  absl::StatusOr<int> surge = ResolveBudget(config.max_surge(), replicas, true);
  if (!surge.ok()) return Invalid("maxSurge", surge.status().message());
  absl::StatusOr<int> unavailable = ResolveBudget(config.max_unavailable(), replicas, false);
  if (!unavailable.ok()) return Invalid("maxUnavailable", unavailable.status().message());
  out.max_surge = *surge;
  out.max_unavailable = *unavailable;
  if (out.max_surge == 0 && out.max_unavailable == 0) out.max_unavailable = 1;
  return out;
}

absl::Status ValidateLabels(std::string_view path_in,
                            const google::protobuf::Map<std::string, std::string>& labels) {
  const std::string path(path_in);
  if (auto s = CheckStringMap(path, labels, limits::kMaxLabels, limits::kMaxLabelKeyBytes,
                              limits::kMaxLabelValueBytes);
      !s.ok()) {
    return s;
  }
  for (const auto& [k, v] : labels) {
    if (k.empty()) return Invalid(path, "keys must not be empty");
    if (k.find('\0') != std::string::npos || v.find('\0') != std::string::npos) {
      return Invalid(Join(path, Shown(k)), "must not contain a NUL byte");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateReplicas(int64_t replicas) {
  if (replicas >= 0 && replicas <= limits::kMaxReplicas) return absl::OkStatus();
  return Invalid("replicas", absl::StrCat("must be 0..", limits::kMaxReplicas, ", got ", replicas));
}

absl::Status ValidateSecretName(std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("required");
  if (!IsDnsLabel(name)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("\"%s\" is not a DNS label (lower-case letters, digits and '-', 1..63 "
                        "characters, starting and ending with a letter or digit)",
                        Shown(AV(name))));
  }
  return absl::OkStatus();
}

absl::Status ValidateServiceSpec(const v1::ServiceSpec& spec) {
  if (spec.name().empty()) return Invalid("name", "required");
  if (!IsDnsLabel(spec.name())) {
    return Invalid("name", absl::StrFormat("\"%s\" is not a DNS label (lower-case letters, digits "
                                           "and '-', 1..63 characters, starting and ending with a "
                                           "letter or digit)",
                                           Shown(spec.name())));
  }
  if (auto s = CheckNoNul(spec, ""); !s.ok()) return s;
  if (auto s = ValidateLabels("labels", spec.labels()); !s.ok()) return s;
  if (spec.mode() == "replicated") {
    if (auto s = ValidateReplicas(spec.replicas()); !s.ok()) return s;
  } else if (spec.mode() == "global") {
    if (spec.replicas() != 0) {
      return Invalid(
          "replicas",
          absl::StrCat("must be unset in global mode (one task per node), got ", spec.replicas()));
    }
  } else {
    return Invalid("mode",
                   absl::StrFormat("must be replicated or global, got \"%s\"", Shown(spec.mode())));
  }
  if (auto s = ValidateTemplate(spec.template_()); !s.ok()) return s;
  if (auto s = ValidateUpdateConfig(spec.update_config(), "updateConfig"); !s.ok()) return s;
  if (auto s = ValidatePreviewPort(spec); !s.ok()) return s;
  if (auto s = ValidateUpdateConfig(EffectiveRollbackConfig(spec), "rollbackConfig"); !s.ok()) {
    return s;
  }
  if (spec.history_limit() != 0 &&
      (spec.history_limit() < 2 || spec.history_limit() > limits::kMaxHistoryLimit)) {
    return Invalid("historyLimit",
                   absl::StrCat("must be 2..", limits::kMaxHistoryLimit, " (0 means the default, ",
                                kDefaultHistoryLimit, "), got ", spec.history_limit()));
  }
  // Last: every field within its own limit can still add up (e.g. 1024 env values of 32 KiB).
  if (size_t bytes = spec.ByteSizeLong(); bytes > limits::kMaxSpecBytes) {
    return Invalid("spec", absl::StrFormat("must be at most %d bytes (1 MiB) encoded, got %d",
                                           limits::kMaxSpecBytes, bytes));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> MatchConstraint(std::string_view expr, const v1::Node& node) {
  absl::StatusOr<Constraint> c = ParseConstraint(AV(expr));
  if (!c.ok()) return c.status();
  bool equal = false;
  switch (c->subject) {
    case Constraint::Subject::kName:
      equal = node.name() == c->value;
      break;
    case Constraint::Subject::kRole:
      equal = node.role() == c->value;
      break;
    case Constraint::Subject::kLabel: {
      auto it = node.labels().find(c->label_key);
      equal = it != node.labels().end() && it->second == c->value;
      break;
    }
  }
  return c->equal ? equal : !equal;
}

int TaskPort(const v1::TaskTemplate& tmpl) {
  if (tmpl.ports_size() > 0 && tmpl.ports(0).target() > 0) return tmpl.ports(0).target();
  if (tmpl.has_health_check()) {
    const v1::HealthCheck& h = tmpl.health_check();
    if (h.has_http() && h.http().port() > 0) return h.http().port();
    if (h.has_tcp() && h.tcp().port() > 0) return h.tcp().port();
  }
  return 8080;
}

absl::StatusOr<std::vector<v1::ServiceSpec>> ParseServicesYaml(std::string_view yaml) {
  if (yaml.size() > limits::kMaxYamlBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the input is %d bytes; at most %d (4 MiB) are read", yaml.size(), limits::kMaxYamlBytes));
  }
  if (auto s = CheckFlowDepth(yaml); !s.ok()) return s;
  std::vector<YAML::Node> docs;
  try {
    const std::string text(yaml);
    if (auto s = CheckDocumentsEnd(text); !s.ok()) return s;
    docs = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrFormat("invalid YAML at line %d, column %d: %s",
                                                      e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  std::vector<v1::ServiceSpec> specs;
  std::map<std::string, int> names;
  for (size_t i = 0; i < docs.size(); ++i) {
    const int doc_no = static_cast<int>(i) + 1;
    auto doc_error = [doc_no](absl::string_view msg) {
      return absl::InvalidArgumentError(absl::StrFormat("document %d: %s", doc_no, msg));
    };
    const YAML::Node& doc = docs[i];
    if (!doc.IsDefined() || doc.IsNull()) continue;
    // `kind: Ingress` documents are read by the ingress parser (src/ingress); services may say
    // `kind: Service`.
    if (doc.IsMap() && doc["kind"].IsDefined() && doc["kind"].IsScalar()) {
      if (doc["kind"].Scalar() == "Ingress") continue;
      if (doc["kind"].Scalar() == "Service") docs[i].remove("kind");
    }
    // A whole Service, as `service inspect -o yaml` prints it: its spec is what applies; the
    // rest (id, version, revision, times) is the manager's and is only checked for typos.
    const bool whole_service = doc.IsMap() && doc["spec"].IsDefined();
    Json json;
    try {
      ExpansionBudget budget;
      if (auto s = YamlMessageToJson(
              doc, whole_service ? v1::Service::descriptor() : v1::ServiceSpec::descriptor(), "",
              budget, &json);
          !s.ok()) {
        return doc_error(s.message());
      }
    } catch (const YAML::Exception& e) {
      return doc_error(e.what());
    }
    if (whole_service) {
      Json spec = json.contains("spec") ? json["spec"] : Json::object();
      json = std::move(spec);
    }
    if (!json.contains("replicas") &&
        !(json.contains("mode") && json["mode"].is_string() && json["mode"] == "global")) {
      json["replicas"] = 1;
    }
    v1::ServiceSpec spec;
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    std::string text;
    try {
      text = json.dump();
    } catch (const Json::exception&) {
      return doc_error("strings must be valid UTF-8");
    }
    auto status = google::protobuf::util::JsonStringToMessage(text, &spec, options);
    if (!status.ok()) return doc_error(std::string(status.message()));
    if (!spec.name().empty()) {
      auto [it, inserted] = names.emplace(spec.name(), doc_no);
      if (!inserted) {
        return doc_error(absl::StrFormat("service \"%s\" is already defined in document %d",
                                         spec.name(), it->second));
      }
    }
    specs.push_back(std::move(spec));
  }
  return specs;
}

std::string ToJson(const google::protobuf::Message& msg) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = false;
  std::string out;
  auto status = google::protobuf::util::MessageToJsonString(msg, &out, options);
  if (!status.ok()) {
    // Only reachable with an invalid message (e.g. an out-of-range Duration); say so in the output.
    return Json{{"error", std::string(status.message())}}.dump(2) + "\n";
  }
  Json json = Json::parse(out);
  ApplyEnumDisplayNames(json, msg.GetDescriptor());
  WriteZeroReplicas(json, msg.GetDescriptor());
  // protobuf indents by one space; two reads better.
  return json.dump(2) + "\n";
}

std::string ToYaml(const google::protobuf::Message& msg) {
  Json json = Json::parse(ToJson(msg));
  YAML::Emitter e;
  e.SetIndent(2);
  e << YAML::Block;
  EmitJsonMessage(e, json,
                  json.contains("error") && json.size() == 1 ? nullptr : msg.GetDescriptor());
  std::string out = e.c_str();
  if (!out.empty() && out.back() != '\n') out.push_back('\n');
  return out;
}

}  // namespace warren
