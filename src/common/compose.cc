#include "common/compose.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/spec.h"
#include "google/protobuf/util/time_util.h"
#include "yaml-cpp/yaml.h"

namespace warren {
namespace {

using google::protobuf::util::TimeUtil;

// Service keys Warren cannot honour: ignoring them would run something else than the file
// describes. The reason tells what to do instead.
const std::map<std::string, std::string>& UnsupportedServiceKeys() {
  static const auto* keys = new std::map<std::string, std::string>{
      {"build", "Warren does not build images: build and push the image, then name it in `image`"},
      {"volumes", "Warren has no volumes yet: a task's files live in its own directory"},
      {"volumes_from", "Warren has no volumes yet"},
      {"secrets", "not supported yet"},
      {"configs", "not supported yet"},
      {"tmpfs", "Warren has no volumes yet"},
      {"working_dir", "tasks start in their own directory"},
      {"user", "tasks run as Warren's user"},
      {"cap_add", "tasks get no extra capabilities"},
      {"cap_drop", "not supported"},
      {"privileged", "tasks are never privileged"},
      {"devices", "not supported"},
      {"device_cgroup_rules", "not supported"},
      {"gpus", "not supported"},
      {"network_mode", "tasks are on the cluster network"},
      {"networks_mode", "tasks are on the cluster network"},
      {"pid", "not supported"},
      {"ipc", "not supported"},
      {"userns_mode", "not supported"},
      {"isolation", "not supported"},
      {"extra_hosts", "not supported: service names resolve through the cluster DNS"},
      {"dns", "tasks use the cluster DNS"},
      {"dns_search", "tasks use the cluster DNS"},
      {"dns_opt", "tasks use the cluster DNS"},
      {"links", "services reach each other by name on the cluster network"},
      {"external_links", "not supported"},
      {"sysctls", "not supported"},
      {"ulimits", "not supported"},
      {"read_only", "not supported"},
      {"security_opt", "not supported"},
      {"cgroup_parent", "not supported"},
      {"shm_size", "not supported"},
      {"platform", "not supported"},
      {"group_add", "not supported"},
      {"mac_address", "not supported"},
      {"runtime", "the node's runtime runs the task"},
      {"storage_opt", "not supported"},
      {"credential_spec", "not supported"},
      {"oom_score_adj", "not supported"},
      {"oom_kill_disable", "not supported"},
      {"extends", "not supported: write the service out in full"},
      {"scale", "use deploy.replicas"},
      {"cpus", "use deploy.resources.limits.cpus"},
      {"cpu_count", "use deploy.resources.limits.cpus"},
      {"cpu_percent", "use deploy.resources.limits.cpus"},
      {"cpu_shares", "use deploy.resources.limits.cpus"},
      {"cpu_quota", "use deploy.resources.limits.cpus"},
      {"cpu_period", "use deploy.resources.limits.cpus"},
      {"cpu_rt_runtime", "not supported"},
      {"cpu_rt_period", "not supported"},
      {"cpuset", "not supported"},
      {"mem_limit", "use deploy.resources.limits.memory"},
      {"mem_reservation", "use deploy.resources.reservations.memory"},
      {"memswap_limit", "not supported"},
      {"mem_swappiness", "not supported"},
      {"pids_limit", "not supported"},
      {"blkio_config", "not supported"},
      {"develop", "not supported"},
  };
  return *keys;
}

// Service keys that change nothing here; they are named in a warning and skipped.
const std::map<std::string, std::string>& IgnoredServiceKeys() {
  static const auto* keys = new std::map<std::string, std::string>{
      {"networks", "every service reaches every other on the cluster network, by its Warren name"},
      {"depends_on",
       "services start together; a service that needs another must retry (Swarm "
       "ignores it too)"},
      {"restart", "use deploy.restart_policy (Swarm ignores `restart` too)"},
      {"container_name", "Warren names the tasks"},
      {"hostname", "tasks are reached by their service's name"},
      {"domainname", "tasks are reached by their service's name"},
      {"logging", "task output is kept by the worker: `warren service logs`"},
      {"expose", "every task port is reachable on the cluster network"},
      {"tty", "tasks have no terminal"},
      {"stdin_open", "tasks have no standard input"},
      {"init", "not needed"},
      {"stop_signal", "tasks get SIGTERM, then SIGKILL after stop_grace_period"},
      {"profiles", "every service of the file is deployed"},
      {"annotations", "not used"},
      {"attach", "not used"},
      {"label_file", "not used"},
  };
  return *keys;
}

class Converter {
 public:
  explicit Converter(const ComposeInput& in) : in_(in) {}

  absl::StatusOr<ComposeResult> Run() {
    YAML::Node root;
    try {
      root = YAML::Load(in_.yaml);
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("invalid YAML at line ", e.mark.line + 1,
                                                     ", column ", e.mark.column + 1, ": ", e.msg));
    }
    if (!root.IsMap()) return absl::InvalidArgumentError("a compose file is a map with `services`");
    if (absl::Status s = CheckStackName(); !s.ok()) return s;
    YAML::Node services;
    for (const auto& kv : root) {
      const std::string key = kv.first.as<std::string>();
      if (IsExtension(key) || key == "version" || key == "name") continue;
      if (key == "services") {
        services = kv.second;
      } else if (key == "networks" || key == "volumes" || key == "secrets" || key == "configs") {
        if (!kv.second.IsNull() && kv.second.size() > 0) {
          Warn(key, "ignored: top-level definitions are not used (see the service keys)");
        }
      } else {
        Error(key,
              "unknown top-level key (allowed: services, version, name, networks, volumes, "
              "secrets, configs, x-*)");
      }
    }
    if (!services.IsDefined() || !services.IsMap() || services.size() == 0) {
      Error("services", "no services: a compose file needs at least one under `services`");
    } else {
      std::map<std::string, std::string> seen;  // Warren name -> compose name
      for (const auto& kv : services) {
        const std::string name = kv.first.as<std::string>();
        if (IsExtension(name)) continue;
        std::optional<v1::ServiceSpec> spec = Service(name, kv.second);
        if (!spec) continue;
        auto [it, inserted] = seen.emplace(spec->name(), name);
        if (!inserted) {
          Error(absl::StrCat("services.", name),
                absl::StrCat("its Warren name \"", spec->name(), "\" is also that of services.",
                             it->second));
          continue;
        }
        result_.services.push_back(std::move(*spec));
      }
    }
    if (!errors_.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          errors_.size() == 1 ? "1 problem" : absl::StrCat(errors_.size(), " problems"), ":\n  ",
          absl::StrJoin(errors_, "\n  ")));
    }
    std::sort(
        result_.services.begin(), result_.services.end(),
        [](const v1::ServiceSpec& a, const v1::ServiceSpec& b) { return a.name() < b.name(); });
    return std::move(result_);
  }

 private:
  static bool IsExtension(const std::string& key) { return absl::StartsWith(key, "x-"); }

  void Error(const std::string& path, const std::string& msg) {
    errors_.push_back(absl::StrCat(path, ": ", msg));
  }
  void Warn(const std::string& path, const std::string& msg) {
    result_.warnings.push_back(absl::StrCat(path, ": ", msg));
  }

  absl::Status CheckStackName() {
    const std::string& s = in_.stack;
    bool ok = !s.empty() && s.size() <= 40 && std::isalnum(static_cast<unsigned char>(s.front())) &&
              std::isalnum(static_cast<unsigned char>(s.back()));
    for (char c : s) {
      ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
    }
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "stack name \"", s,
          "\": use 1..40 lower-case letters, digits and '-', starting and ending with a letter "
          "or digit (it prefixes every service name)"));
    }
    return absl::OkStatus();
  }

  // ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $VAR and $$, as
  // Compose interpolates values.
  std::string Interpolate(const std::string& s, const std::string& path) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] != '$' || i + 1 >= s.size()) {
        out += s[i];
        continue;
      }
      if (s[i + 1] == '$') {
        out += '$';
        ++i;
        continue;
      }
      std::string name, op, arg;
      size_t end;
      if (s[i + 1] == '{') {
        end = s.find('}', i + 2);
        if (end == std::string::npos) {
          Error(path, absl::StrCat("unterminated ${ in \"", s, "\""));
          return s;
        }
        std::string inner = s.substr(i + 2, end - i - 2);
        size_t n = 0;
        while (n < inner.size() &&
               (std::isalnum(static_cast<unsigned char>(inner[n])) || inner[n] == '_')) {
          ++n;
        }
        name = inner.substr(0, n);
        std::string rest = inner.substr(n);
        for (const char* o : {":-", ":?", "-", "?"}) {
          if (absl::StartsWith(rest, o)) {
            op = o;
            arg = rest.substr(op.size());
            break;
          }
        }
        if (name.empty() || (op.empty() && !rest.empty())) {
          Error(path, absl::StrCat("invalid interpolation \"${", inner, "}\""));
          return s;
        }
      } else {
        size_t n = i + 1;
        while (n < s.size() && (std::isalnum(static_cast<unsigned char>(s[n])) || s[n] == '_')) {
          ++n;
        }
        if (n == i + 1) {
          out += '$';
          continue;
        }
        name = s.substr(i + 1, n - i - 1);
        end = n - 1;
      }
      std::optional<std::string> value = in_.getenv ? in_.getenv(name) : std::nullopt;
      const bool empty_is_unset = op == ":-" || op == ":?";
      const bool unset = !value || (empty_is_unset && value->empty());
      if (unset && (op == ":-" || op == "-")) {
        value = Interpolate(arg, path);
      } else if (unset && (op == ":?" || op == "?")) {
        Error(path, absl::StrCat("variable ", name, " is not set",
                                 arg.empty() ? "" : absl::StrCat(": ", arg)));
        value = "";
      } else if (!value) {
        Warn(path, absl::StrCat("variable ", name, " is not set; an empty string is used"));
        value = "";
      }
      out += *value;
      i = end;
    }
    return out;
  }

  std::optional<std::string> Str(const YAML::Node& n, const std::string& path) {
    if (!n.IsScalar()) {
      Error(path, "expected a single value");
      return std::nullopt;
    }
    return Interpolate(n.Scalar(), path);
  }

  // A string is split like a shell would (quotes and backslashes), a list is taken as is.
  std::optional<std::vector<std::string>> Words(const YAML::Node& n, const std::string& path) {
    std::vector<std::string> out;
    if (n.IsSequence()) {
      for (size_t i = 0; i < n.size(); ++i) {
        auto s = Str(n[i], absl::StrCat(path, "[", i, "]"));
        if (!s) return std::nullopt;
        out.push_back(*s);
      }
      return out;
    }
    auto text = Str(n, path);
    if (!text) return std::nullopt;
    std::string word;
    bool in_word = false;
    char quote = 0;
    for (size_t i = 0; i < text->size(); ++i) {
      char c = (*text)[i];
      if (quote == '\'') {
        if (c == '\'') {
          quote = 0;
        } else {
          word += c;
        }
      } else if (quote == '"') {
        if (c == '"') {
          quote = 0;
        } else if (c == '\\' && i + 1 < text->size() &&
                   std::string_view("\"\\$`").find((*text)[i + 1]) != std::string_view::npos) {
          word += (*text)[++i];
        } else {
          word += c;
        }
      } else if (c == '\'' || c == '"') {
        quote = c;
        in_word = true;
      } else if (c == '\\' && i + 1 < text->size()) {
        word += (*text)[++i];
        in_word = true;
      } else if (std::isspace(static_cast<unsigned char>(c))) {
        if (in_word) out.push_back(word);
        word.clear();
        in_word = false;
      } else {
        word += c;
        in_word = true;
      }
    }
    if (quote != 0) {
      Error(path, absl::StrCat("unterminated ", std::string(1, quote), " quote"));
      return std::nullopt;
    }
    if (in_word) out.push_back(word);
    return out;
  }

  bool Duration(const YAML::Node& n, const std::string& path, google::protobuf::Duration* out) {
    auto s = Str(n, path);
    if (!s) return false;
    absl::StatusOr<absl::Duration> d = ParseDuration(*s);
    if (!d.ok()) {
      Error(path, std::string(d.status().message()));
      return false;
    }
    *out = TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(*d));
    return true;
  }

  std::optional<int64_t> Int(const YAML::Node& n, const std::string& path, int64_t min,
                             int64_t max) {
    auto s = Str(n, path);
    int64_t v;
    if (!s) return std::nullopt;
    if (!absl::SimpleAtoi(*s, &v) || v < min || v > max) {
      Error(path,
            absl::StrCat("expected a whole number from ", min, " to ", max, ", got \"", *s, "\""));
      return std::nullopt;
    }
    return v;
  }

  std::optional<double> Number(const YAML::Node& n, const std::string& path, double min,
                               double max) {
    auto s = Str(n, path);
    double v;
    if (!s) return std::nullopt;
    if (!absl::SimpleAtod(*s, &v) || v < min || v > max) {
      Error(path, absl::StrCat("expected a number from ", min, " to ", max, ", got \"", *s, "\""));
      return std::nullopt;
    }
    return v;
  }

  std::optional<std::string> OneOf(const YAML::Node& n, const std::string& path,
                                   const std::map<std::string, std::string>& allowed) {
    auto s = Str(n, path);
    if (!s) return std::nullopt;
    auto it = allowed.find(*s);
    if (it == allowed.end()) {
      std::vector<std::string> names;
      for (const auto& [k, v] : allowed) names.push_back(k);
      Error(path, absl::StrCat("\"", *s, "\" is not allowed (allowed: ", absl::StrJoin(names, ", "),
                               ")"));
      return std::nullopt;
    }
    return it->second;
  }

  // YAML merge keys ("<<: *anchor", common with x- templates), which yaml-cpp leaves as a
  // plain key: the map's own keys win over the merged ones.
  static YAML::Node Merged(const YAML::Node& n) {
    if (!n.IsMap() || !n["<<"]) return n;
    YAML::Node out(YAML::NodeType::Map);
    std::vector<YAML::Node> sources;
    for (const auto& kv : n) {
      const std::string key = kv.first.as<std::string>();
      if (key == "<<") {
        if (kv.second.IsSequence()) {
          for (const auto& s : kv.second) sources.push_back(Merged(s));
        } else {
          sources.push_back(Merged(kv.second));
        }
      } else {
        out[key] = kv.second;
      }
    }
    for (const YAML::Node& src : sources) {
      if (!src.IsMap()) continue;
      for (const auto& kv : src) {
        const std::string key = kv.first.as<std::string>();
        const YAML::Node& existing = out;
        if (!existing[key]) out[key] = kv.second;
      }
    }
    return out;
  }

  // Walks a map's keys: `handle` returns false for a key it does not know.
  template <typename F>
  void Keys(const YAML::Node& node, const std::string& path, F&& handle) {
    if (node.IsNull()) return;
    const YAML::Node n = Merged(node);
    if (!n.IsMap()) {
      Error(path, "expected a map");
      return;
    }
    for (const auto& kv : n) {
      const std::string key = kv.first.as<std::string>();
      if (IsExtension(key)) continue;
      const std::string sub = absl::StrCat(path, ".", key);
      if (!handle(key, kv.second, sub)) Error(sub, "unknown key");
    }
  }

  // KEY=VALUE list or map; `from_env` entries (no value) take the deploying user's value.
  void KeyValues(const YAML::Node& n, const std::string& path, bool from_env,
                 google::protobuf::Map<std::string, std::string>* out) {
    auto put = [&](const std::string& key, std::optional<std::string> value,
                   const std::string& at) {
      if (key.empty()) {
        Error(at, "empty key");
        return;
      }
      if (!value && from_env) {
        value = in_.getenv ? in_.getenv(key) : std::nullopt;
        if (!value) {
          Warn(at, absl::StrCat(key, " has no value and is not set here; it is left out"));
          return;
        }
      }
      (*out)[key] = value.value_or("");
    };
    if (n.IsSequence()) {
      for (size_t i = 0; i < n.size(); ++i) {
        const std::string at = absl::StrCat(path, "[", i, "]");
        auto item = Str(n[i], at);
        if (!item) continue;
        size_t eq = item->find('=');
        put(item->substr(0, eq),
            eq == std::string::npos ? std::nullopt : std::optional(item->substr(eq + 1)), at);
      }
    } else if (n.IsMap()) {
      for (const auto& kv : n) {
        const std::string key = kv.first.as<std::string>();
        const std::string at = absl::StrCat(path, ".", key);
        if (kv.second.IsNull()) {
          put(key, std::nullopt, at);
        } else if (auto v = Str(kv.second, at)) {
          put(key, *v, at);
        }
      }
    } else if (!n.IsNull()) {
      Error(path, "expected a list of KEY=VALUE or a map");
    }
  }

  void EnvFiles(const YAML::Node& n, const std::string& path,
                google::protobuf::Map<std::string, std::string>* env) {
    std::vector<std::pair<std::string, bool>> files;  // path, required
    auto add = [&](const YAML::Node& item, const std::string& at) {
      if (item.IsMap()) {
        bool required = true;
        std::string file;
        Keys(item, at, [&](const std::string& key, const YAML::Node& v, const std::string& sub) {
          if (key == "path") {
            file = Str(v, sub).value_or("");
          } else if (key == "required") {
            required = Str(v, sub).value_or("true") != "false";
          } else {
            return false;
          }
          return true;
        });
        if (!file.empty()) files.emplace_back(file, required);
      } else if (auto f = Str(item, at)) {
        files.emplace_back(*f, true);
      }
    };
    if (n.IsSequence()) {
      for (size_t i = 0; i < n.size(); ++i) add(n[i], absl::StrCat(path, "[", i, "]"));
    } else {
      add(n, path);
    }
    for (const auto& [file, required] : files) {
      absl::StatusOr<std::string> text =
          in_.read_file ? in_.read_file(file) : absl::NotFoundError("no files can be read");
      if (!text.ok()) {
        if (required) Error(path, std::string(text.status().message()));
        continue;
      }
      int line_no = 0;
      for (absl::string_view line : absl::StrSplit(*text, '\n')) {
        ++line_no;
        line = absl::StripAsciiWhitespace(line);
        if (line.empty() || line[0] == '#') continue;
        absl::ConsumePrefix(&line, "export ");
        size_t eq = line.find('=');
        const std::string at = absl::StrCat(path, " (", file, " line ", line_no, ")");
        if (eq == 0 || eq == absl::string_view::npos) {
          Error(at, "expected KEY=VALUE");
          continue;
        }
        std::string value(absl::StripAsciiWhitespace(line.substr(eq + 1)));
        if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
            value.back() == value.front()) {
          value = value.substr(1, value.size() - 2);
        }
        (*env)[std::string(absl::StripAsciiWhitespace(line.substr(0, eq)))] = value;
      }
    }
  }

  // "8080", "9000:8080", "127.0.0.1:9000:8080", "9000-9001:8000-8001/tcp".
  void ShortPort(const std::string& text, const std::string& path, v1::TaskTemplate* t) {
    std::string spec = text;
    std::string protocol = "tcp";
    if (size_t slash = spec.rfind('/'); slash != std::string::npos) {
      protocol = spec.substr(slash + 1);
      spec = spec.substr(0, slash);
    }
    if (protocol != "tcp") {
      Error(path, absl::StrCat("protocol \"", protocol, "\" is not supported (allowed: tcp)"));
      return;
    }
    std::string host_ip;
    if (!spec.empty() && spec[0] == '[') {
      size_t close = spec.find("]:");
      if (close == std::string::npos) {
        Error(path, absl::StrCat("invalid port \"", text, "\""));
        return;
      }
      host_ip = spec.substr(1, close - 1);
      spec = spec.substr(close + 2);
    }
    std::vector<std::string> parts = absl::StrSplit(spec, ':');
    if (parts.size() == 3 && host_ip.empty()) {
      host_ip = parts[0];
      parts.erase(parts.begin());
    }
    if (parts.empty() || parts.size() > 2) {
      Error(path, absl::StrCat("invalid port \"", text,
                               "\" (allowed: TARGET, PUBLISHED:TARGET, IP:PUBLISHED:TARGET, with "
                               "an optional /tcp)"));
      return;
    }
    auto range = [&](const std::string& r, std::pair<int, int>* out) {
      std::vector<std::string> ends = absl::StrSplit(r, '-');
      int a, b;
      if (ends.size() > 2 || !absl::SimpleAtoi(ends[0], &a) || !absl::SimpleAtoi(ends.back(), &b) ||
          a < 1 || b > 65535 || a > b) {
        Error(path, absl::StrCat("invalid port \"", text, "\": ports are 1..65535"));
        return false;
      }
      *out = {a, b};
      return true;
    };
    std::pair<int, int> target, published{0, -1};
    if (!range(parts.back(), &target)) return;
    if (parts.size() == 2 && !parts[0].empty() && !range(parts[0], &published)) return;
    const int count = target.second - target.first + 1;
    if (published.second >= 0 && published.second - published.first + 1 != count) {
      Error(path, absl::StrCat("invalid port \"", text,
                               "\": the published and target ranges differ in length"));
      return;
    }
    if (published.second < 0) {
      Warn(path, absl::StrCat("\"", text,
                              "\" publishes no port (Warren does not pick a random host port); "
                              "write PUBLISHED:TARGET to publish it"));
    }
    for (int i = 0; i < count; ++i) {
      v1::Port* p = t->add_ports();
      p->set_target(target.first + i);
      if (published.second >= 0) p->set_published(published.first + i);
      p->set_host_ip(host_ip);
      p->set_protocol("tcp");
    }
  }

  void Ports(const YAML::Node& n, const std::string& path, v1::TaskTemplate* t) {
    if (!n.IsSequence()) {
      Error(path, "expected a list");
      return;
    }
    for (size_t i = 0; i < n.size(); ++i) {
      const std::string at = absl::StrCat(path, "[", i, "]");
      if (!n[i].IsMap()) {
        if (auto s = Str(n[i], at)) ShortPort(*s, at, t);
        continue;
      }
      v1::Port port;
      port.set_protocol("tcp");
      Keys(n[i], at, [&](const std::string& key, const YAML::Node& v, const std::string& sub) {
        if (key == "target") {
          port.set_target(static_cast<int32_t>(Int(v, sub, 1, 65535).value_or(0)));
        } else if (key == "published") {
          port.set_published(static_cast<int32_t>(Int(v, sub, 1, 65535).value_or(0)));
        } else if (key == "host_ip") {
          port.set_host_ip(Str(v, sub).value_or(""));
        } else if (key == "protocol") {
          OneOf(v, sub, {{"tcp", "tcp"}});
        } else if (key == "name") {
          port.set_name(Str(v, sub).value_or(""));
        } else if (key == "mode") {
          if (OneOf(v, sub, {{"ingress", "ingress"}, {"host", "host"}}) == "host") {
            Warn(sub, "ignored: a published port is served by the proxy of every worker");
          }
        } else if (key == "app_protocol") {
          Warn(sub, "ignored: the proxy detects HTTP by itself");
        } else {
          return false;
        }
        return true;
      });
      if (port.target() == 0) {
        Error(at, "target is required");
        continue;
      }
      *t->add_ports() = port;
    }
  }

  void Healthcheck(const YAML::Node& n, const std::string& path, v1::TaskTemplate* t) {
    v1::HealthCheck hc;
    bool disabled = false;
    bool has_test = false;
    Keys(n, path, [&](const std::string& key, const YAML::Node& v, const std::string& sub) {
      if (key == "test") {
        has_test = true;
        if (v.IsScalar()) {
          // A string is CMD-SHELL.
          if (auto s = Str(v, sub)) hc.mutable_exec()->add_command(*s);
          return true;
        }
        auto words = Words(v, sub);
        if (!words || words->empty()) {
          Error(sub, "expected [\"CMD\", ...], [\"CMD-SHELL\", \"...\"], [\"NONE\"] or a string");
          return true;
        }
        const std::string kind = (*words)[0];
        if (kind == "NONE") {
          disabled = true;
        } else if (kind == "CMD" && words->size() > 1) {
          for (size_t i = 1; i < words->size(); ++i) hc.mutable_exec()->add_command((*words)[i]);
        } else if (kind == "CMD-SHELL" && words->size() == 2) {
          // One element: ExecProbe runs it through /bin/sh -c.
          hc.mutable_exec()->add_command((*words)[1]);
        } else {
          Error(sub, absl::StrCat("expected [\"CMD\", ARG...], [\"CMD-SHELL\", \"COMMAND\"] or "
                                  "[\"NONE\"], got \"",
                                  kind, "\" with ", words->size() - 1, " argument(s)"));
        }
      } else if (key == "disable") {
        disabled = Str(v, sub).value_or("false") == "true";
      } else if (key == "interval") {
        Duration(v, sub, hc.mutable_interval());
      } else if (key == "timeout") {
        Duration(v, sub, hc.mutable_timeout());
      } else if (key == "start_period") {
        Duration(v, sub, hc.mutable_start_period());
      } else if (key == "retries") {
        hc.set_retries(static_cast<int32_t>(Int(v, sub, 1, 1000).value_or(0)));
      } else if (key == "start_interval") {
        Warn(sub, "ignored: a new task is probed at a quarter of the interval until it is healthy");
      } else {
        return false;
      }
      return true;
    });
    if (disabled) return;
    if (!has_test) {
      Error(path, "test is required (Warren has no image health checks to inherit)");
      return;
    }
    if (hc.has_exec()) *t->mutable_health_check() = hc;
  }

  void Resources(const YAML::Node& n, const std::string& path, v1::TaskTemplate* t) {
    std::optional<double> cpus[2];
    std::optional<int64_t> memory[2];
    auto read = [&](const YAML::Node& v, const std::string& at, int i) {
      Keys(v, at, [&](const std::string& key, const YAML::Node& x, const std::string& sub) {
        if (key == "cpus") {
          cpus[i] = Number(x, sub, 0, 1024);
        } else if (key == "memory") {
          if (auto s = Str(x, sub)) {
            std::string upper = absl::AsciiStrToUpper(*s);
            // Compose writes "512m", "1gb", "2048b".
            if (upper.size() > 1 && upper.back() == 'B' &&
                std::isdigit(static_cast<unsigned char>(upper[upper.size() - 2]))) {
              upper.pop_back();
            }
            absl::StatusOr<int64_t> bytes = ParseByteSize(upper);
            if (bytes.ok()) {
              memory[i] = *bytes;
            } else {
              Error(sub, std::string(bytes.status().message()));
            }
          }
        } else if (key == "pids") {
          Warn(sub, "ignored: not supported");
        } else if (key == "devices" || key == "generic_resources") {
          Error(sub, "not supported");
        } else {
          return false;
        }
        return true;
      });
    };
    Keys(n, path, [&](const std::string& key, const YAML::Node& v, const std::string& sub) {
      if (key == "limits") {
        read(v, sub, 0);
      } else if (key == "reservations") {
        read(v, sub, 1);
      } else {
        return false;
      }
      return true;
    });
    // Warren reserves what a task may use (and the cri runtime limits it to that): one value.
    auto pick = [&](auto& both, const char* what, auto set) {
      if (both[0] && both[1] && *both[0] != *both[1]) {
        Warn(absl::StrCat(path, ".reservations.", what),
             absl::StrCat("ignored: Warren reserves and limits one amount, the limit"));
      }
      if (both[0]) {
        set(*both[0]);
      } else if (both[1]) {
        set(*both[1]);
      }
    };
    pick(cpus, "cpus", [&](double v) { t->mutable_resources()->set_cpus(v); });
    pick(memory, "memory", [&](int64_t v) { t->mutable_resources()->set_memory_bytes(v); });
  }

  void RolloutConfig(const YAML::Node& n, const std::string& path, v1::UpdateConfig* c) {
    Keys(n, path, [&](const std::string& key, const YAML::Node& v, const std::string& sub) {
      if (key == "parallelism") {
        if (auto p = Int(v, sub, 0, 100000)) c->set_parallelism(static_cast<int32_t>(*p));
      } else if (key == "delay") {
        Duration(v, sub, c->mutable_delay());
      } else if (key == "failure_action") {
        if (auto a = OneOf(
                v, sub, {{"rollback", "rollback"}, {"pause", "pause"}, {"continue", "continue"}})) {
          c->set_failure_action(*a);
        }
      } else if (key == "monitor") {
        // Swarm watches each new task this long for failure; Warren counts a task available
        // only after it has been healthy this long.
        Duration(v, sub, c->mutable_min_ready());
      } else if (key == "max_failure_ratio") {
        if (auto r = Number(v, sub, 0, 1)) c->set_max_failure_ratio(*r);
      } else if (key == "order") {
        if (auto o =
                OneOf(v, sub, {{"start-first", "start-first"}, {"stop-first", "stop-first"}})) {
          c->set_order(*o);
        }
      } else {
        return false;
      }
      return true;
    });
  }

  void Placement(const YAML::Node& n, const std::string& path, v1::TaskTemplate* t) {
    Keys(n, path, [&](const std::string& key, const YAML::Node& v, const std::string& sub) {
      if (key == "constraints") {
        if (!v.IsSequence()) {
          Error(sub, "expected a list");
          return true;
        }
        for (size_t i = 0; i < v.size(); ++i) {
          const std::string at = absl::StrCat(sub, "[", i, "]");
          auto c = Str(v[i], at);
          if (!c) continue;
          std::string op = c->find("!=") != std::string::npos ? "!=" : "==";
          std::vector<std::string> sides = absl::StrSplit(*c, op);
          if (sides.size() != 2) {
            Error(at,
                  absl::StrCat("invalid constraint \"", *c, "\" (write ATTRIBUTE==VALUE or !=)"));
            continue;
          }
          std::string attr(absl::StripAsciiWhitespace(sides[0]));
          std::string value(absl::StripAsciiWhitespace(sides[1]));
          if (attr == "node.hostname") attr = "node.name";
          if (attr != "node.name" && attr != "node.role" &&
              !absl::StartsWith(attr, "node.labels.")) {
            Error(at, absl::StrCat("\"", attr,
                                   "\" is not supported (allowed: node.labels.KEY, node.hostname, "
                                   "node.role)"));
            continue;
          }
          t->add_constraints(absl::StrCat(attr, op, value));
        }
      } else if (key == "preferences") {
        Warn(sub, "ignored: Warren spreads the tasks of a service over the nodes by itself");
      } else if (key == "max_replicas_per_node") {
        Error(sub, "not supported");
      } else {
        return false;
      }
      return true;
    });
  }

  void Deploy(const YAML::Node& n, const std::string& path, v1::ServiceSpec* spec) {
    Keys(n, path, [&](const std::string& key, const YAML::Node& v, const std::string& sub) {
      if (key == "mode") {
        if (auto m = OneOf(v, sub, {{"replicated", "replicated"}, {"global", "global"}})) {
          spec->set_mode(*m);
        }
      } else if (key == "replicas") {
        if (auto r = Int(v, sub, 0, 100000)) spec->set_replicas(static_cast<int32_t>(*r));
      } else if (key == "update_config") {
        RolloutConfig(v, sub, spec->mutable_update_config());
      } else if (key == "rollback_config") {
        RolloutConfig(v, sub, spec->mutable_rollback_config());
      } else if (key == "restart_policy") {
        v1::RestartPolicy* r = spec->mutable_template_()->mutable_restart_policy();
        Keys(v, sub, [&](const std::string& k, const YAML::Node& x, const std::string& s) {
          if (k == "condition") {
            if (auto c = OneOf(
                    x, s, {{"any", "always"}, {"on-failure", "on-failure"}, {"none", "never"}})) {
              r->set_condition(*c);
            }
          } else if (k == "delay") {
            Duration(x, s, r->mutable_delay());
          } else if (k == "max_attempts") {
            if (auto m = Int(x, s, 0, 1000000)) r->set_max_attempts(static_cast<int32_t>(*m));
          } else if (k == "window") {
            Warn(s, "ignored: a task that exits counts as a failed attempt whenever it exits");
          } else {
            return false;
          }
          return true;
        });
      } else if (key == "resources") {
        Resources(v, sub, spec->mutable_template_());
      } else if (key == "placement") {
        Placement(v, sub, spec->mutable_template_());
      } else if (key == "labels") {
        KeyValues(v, sub, false, spec->mutable_labels());
      } else if (key == "endpoint_mode") {
        Warn(sub,
             "ignored: the service name resolves to its healthy tasks, and published ports "
             "go through the proxy");
      } else {
        return false;
      }
      return true;
    });
  }

  std::optional<v1::ServiceSpec> Service(const std::string& name, const YAML::Node& node) {
    const YAML::Node n = Merged(node);
    const std::string path = absl::StrCat("services.", name);
    v1::ServiceSpec spec;
    spec.set_name(StackServiceName(in_.stack, name));
    bool name_ok = !name.empty() && spec.name().size() <= 63;
    for (char c : name)
      name_ok = name_ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
    if (!name_ok || name.back() == '-') {
      Error(path, absl::StrCat("the Warren service name \"", spec.name(),
                               "\" must be a DNS label: lower-case letters, digits and '-', at "
                               "most 63 characters; rename the service"));
      return std::nullopt;
    }
    if (!n.IsMap()) {
      Error(path, "expected a map");
      return std::nullopt;
    }
    (*spec.mutable_labels())[kStackLabel] = in_.stack;
    spec.set_replicas(1);
    v1::TaskTemplate* t = spec.mutable_template_();
    std::optional<std::vector<std::string>> entrypoint, command;
    google::protobuf::Map<std::string, std::string> env_file_env, env;
    const size_t errors_before = errors_.size();
    for (const auto& kv : n) {
      const std::string key = kv.first.as<std::string>();
      const YAML::Node& v = kv.second;
      const std::string sub = absl::StrCat(path, ".", key);
      if (IsExtension(key)) continue;
      if (auto it = UnsupportedServiceKeys().find(key); it != UnsupportedServiceKeys().end()) {
        Error(sub, absl::StrCat("not supported: ", it->second));
      } else if (auto it = IgnoredServiceKeys().find(key); it != IgnoredServiceKeys().end()) {
        Warn(sub, absl::StrCat("ignored: ", it->second));
      } else if (key == "image") {
        t->set_image(Str(v, sub).value_or(""));
      } else if (key == "command") {
        command = Words(v, sub);
      } else if (key == "entrypoint") {
        entrypoint = Words(v, sub);
      } else if (key == "environment") {
        KeyValues(v, sub, true, &env);
      } else if (key == "env_file") {
        EnvFiles(v, sub, &env_file_env);
      } else if (key == "ports") {
        Ports(v, sub, t);
      } else if (key == "healthcheck") {
        Healthcheck(v, sub, t);
      } else if (key == "labels") {
        KeyValues(v, sub, false, t->mutable_labels());
      } else if (key == "deploy") {
        Deploy(v, sub, &spec);
      } else if (key == "stop_grace_period") {
        Duration(v, sub, t->mutable_stop_timeout());
      } else if (key == "pull_policy") {
        if (auto p = OneOf(v, sub,
                           {{"always", "always"},
                            {"missing", "missing"},
                            {"if_not_present", "missing"},
                            {"never", "never"}})) {
          t->set_image_pull_policy(*p);
        }
      } else {
        Error(sub, "unknown key");
      }
    }
    // `environment` wins over env_file, as in Compose.
    for (const auto& [k, v] : env_file_env) (*t->mutable_env())[k] = v;
    for (const auto& [k, v] : env) (*t->mutable_env())[k] = v;
    if (spec.mode() == "global") spec.set_replicas(0);
    // With an image, entrypoint and command override the image's; without one, they are the
    // host program the process runtime runs.
    std::vector<std::string> words;
    if (entrypoint) words = *entrypoint;
    if (!t->image().empty()) {
      if (!words.empty()) {
        t->set_command(words[0]);
        words.erase(words.begin());
      }
      if (command) words.insert(words.end(), command->begin(), command->end());
      for (auto& w : words) t->add_args(w);
    } else {
      if (command) words.insert(words.end(), command->begin(), command->end());
      if (words.empty()) {
        if (errors_.size() == errors_before) {
          Error(path,
                "needs an `image` (container runtime) or a `command` (a host program for the "
                "process runtime)");
        }
        return std::nullopt;
      }
      t->set_command(words[0]);
      for (size_t i = 1; i < words.size(); ++i) t->add_args(words[i]);
    }
    if (errors_.size() != errors_before) return std::nullopt;
    return spec;
  }

  const ComposeInput& in_;
  ComposeResult result_;
  std::vector<std::string> errors_;
};

}  // namespace

std::string StackServiceName(const std::string& stack, const std::string& service) {
  return absl::StrCat(stack, "-", service);
}

absl::StatusOr<ComposeResult> ConvertCompose(const ComposeInput& input) {
  return Converter(input).Run();
}

}  // namespace warren
