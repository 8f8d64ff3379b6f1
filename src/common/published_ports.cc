#include "common/published_ports.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/spec.h"

namespace warren {
namespace {

// A port the tasks of a service listen on, with the field it comes from.
struct ListenPort {
  std::string field;
  int port = 0;
};

bool RunsAsProcess(const v1::TaskTemplate& tmpl) { return tmpl.image().empty(); }

// The ports tasks of the process runtime listen on, on their own loopback address: the
// targets of their ports, and the task port (WARREN_TASK_PORT) when no port is declared.
std::vector<ListenPort> ListenPorts(const v1::TaskTemplate& tmpl) {
  std::vector<ListenPort> out;
  if (!RunsAsProcess(tmpl)) return out;
  for (int i = 0; i < tmpl.ports_size(); ++i) {
    out.push_back({absl::StrCat("template.ports[", i, "].target"), tmpl.ports(i).target()});
  }
  if (out.empty()) {
    const v1::HealthCheck& h = tmpl.health_check();
    std::string field = "template.ports";
    if (h.has_http() && h.http().port() > 0) field = "template.healthCheck.http.port";
    if (h.has_tcp() && h.tcp().port() > 0) field = "template.healthCheck.tcp.port";
    out.push_back({field, TaskPort(tmpl)});
  }
  return out;
}

std::string Where(const PublishedPort& p) {
  return IsWildcardAddress(p.host_ip) ? "every address" : p.host_ip;
}

}  // namespace

std::vector<PublishedPort> PublishedPorts(const v1::ServiceSpec& spec) {
  std::vector<PublishedPort> out;
  const v1::TaskTemplate& tmpl = spec.template_();
  for (int i = 0; i < tmpl.ports_size(); ++i) {
    const v1::Port& p = tmpl.ports(i);
    if (p.published() <= 0) continue;
    out.push_back({absl::StrCat("template.ports[", i, "].published"), p.host_ip(), p.published()});
  }
  if (int preview = spec.update_config().preview_published_port(); preview > 0) {
    out.push_back({"updateConfig.previewPublishedPort", "", preview});
  }
  return out;
}

std::vector<int> ListenPortNumbers(const v1::TaskTemplate& tmpl) {
  std::vector<int> out;
  for (const ListenPort& l : ListenPorts(tmpl)) out.push_back(l.port);
  return out;
}

bool IsWildcardAddress(std::string_view host_ip) {
  return host_ip.empty() || host_ip == "0.0.0.0" || host_ip == "::" || host_ip == "[::]";
}

bool HostAddressesOverlap(std::string_view a, std::string_view b) {
  return IsWildcardAddress(a) || IsWildcardAddress(b) || a == b;
}

absl::Status CheckOwnPorts(const v1::ServiceSpec& spec) {
  const std::vector<ListenPort> listen = ListenPorts(spec.template_());
  for (const PublishedPort& p : PublishedPorts(spec)) {
    if (!IsWildcardAddress(p.host_ip)) continue;
    for (const ListenPort& l : listen) {
      if (l.port != p.port) continue;
      const int other = p.port + 10000 <= 65535 ? p.port + 10000 : p.port - 10000;
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: port %d is also the port the service's tasks listen on (%s): process tasks "
          "listen on loopback addresses of the node, which a port published on every address "
          "covers, so the task could not bind it. Publish another port, e.g. --publish %d:%d "
          "(--publish %d alone publishes the same number; Warren picks no random port)",
          p.field, p.port, l.field, other, l.port, l.port));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckPortConflicts(const v1::ServiceSpec& spec,
                                const std::vector<v1::Service>& others) {
  if (absl::Status s = CheckOwnPorts(spec); !s.ok()) return s;
  const std::vector<PublishedPort> mine = PublishedPorts(spec);
  const std::vector<ListenPort> my_listen = ListenPorts(spec.template_());
  for (const v1::Service& other : others) {
    if (other.spec().name() == spec.name()) continue;
    const std::string& name = other.spec().name();
    const std::vector<PublishedPort> theirs = PublishedPorts(other.spec());
    for (const PublishedPort& p : mine) {
      for (const PublishedPort& q : theirs) {
        if (p.port != q.port || !HostAddressesOverlap(p.host_ip, q.host_ip)) continue;
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: port %d on %s is already published by service \"%s\" (%s on %s); choose "
            "another published port",
            p.field, p.port, Where(p), name, q.field, Where(q)));
      }
      if (!IsWildcardAddress(p.host_ip)) continue;
      for (const ListenPort& l : ListenPorts(other.spec().template_())) {
        if (l.port != p.port) continue;
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: port %d is the port the tasks of service \"%s\" listen on (%s); process tasks "
            "listen on loopback addresses of the node, which a port published on every address "
            "covers: choose another published port, or publish on an address of its own "
            "(HOST:PUBLISHED:TARGET)",
            p.field, p.port, name, l.field));
      }
    }
    for (const ListenPort& l : my_listen) {
      for (const PublishedPort& q : theirs) {
        if (q.port != l.port || !IsWildcardAddress(q.host_ip)) continue;
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: the tasks would listen on port %d, which service \"%s\" publishes on every "
            "address (%s), covering the loopback addresses process tasks listen on: choose "
            "another target port%s",
            l.field, l.port, name, q.field,
            l.field == "template.ports" ? " (8080 is the default; declare the port)" : ""));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace warren
