// Runs one ServiceProxy with a static route, for bench/proxy_bench.sh:
//   proxy_server_bench --listen 127.0.0.1:8080 --threads 2 --backend 127.0.0.101:9000 ...
// With --tls-cert FILE --tls-key FILE (PEM) it runs the HTTPS ingress listener instead, the way
// a worker's --ingress-https does (IngressProxy with IngressTlsContexts): one TLS rule for the
// listen address as host, path "/", to the same service; SNI picks the certificate.
// Prints "listening on HOST:PORT" and serves until SIGINT or SIGTERM.

#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/heap.h"
#include "http/http_server.h"
#include "http/metrics.h"
#include "ingress/ingress_tls.h"
#include "proxy/proxy.h"

namespace {

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return static_cast<bool>(in);
}

}  // namespace

int main(int argc, char** argv) {
  warren::ApplyProcessDefaults();  // as the warren binary that runs the proxy in production
  std::string listen = "127.0.0.1:0";
  int threads = 2;
  std::vector<std::string> backends;
  std::string tls_cert, tls_key;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    std::string value = argv[i + 1];
    if (flag == "--listen") {
      listen = value;
    } else if (flag == "--threads") {
      if (!absl::SimpleAtoi(value, &threads) || threads < 1) {
        std::fprintf(stderr, "--threads: must be a positive integer, got \"%s\"\n", value.c_str());
        return 2;
      }
    } else if (flag == "--backend") {
      backends.push_back(value);
    } else if (flag == "--tls-cert") {
      tls_cert = value;
    } else if (flag == "--tls-key") {
      tls_key = value;
    } else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (backends.empty()) {
    std::fprintf(stderr, "--backend: at least one is required\n");
    return 2;
  }
  if (tls_cert.empty() != tls_key.empty()) {
    std::fprintf(stderr, "--tls-cert, --tls-key: give both or neither\n");
    return 2;
  }
  auto hp = warren::SplitHostPort(listen);
  if (!hp.ok()) {
    std::fprintf(stderr, "--listen: %s\n", std::string(hp.status().message()).c_str());
    return 2;
  }
  warren::v1::ServiceRoute route;
  route.set_service_id("bench");
  route.set_name("bench");
  auto* rev = route.add_revisions();
  rev->set_revision(1);
  rev->set_weight(100);
  for (size_t i = 0; i < backends.size(); ++i) {
    auto b = warren::SplitHostPort(backends[i]);
    if (!b.ok()) {
      std::fprintf(stderr, "--backend: %s\n", std::string(b.status().message()).c_str());
      return 2;
    }
    auto* e = rev->add_endpoints();
    e->set_task_id(absl::StrCat("b", i));
    e->set_address(b->first);
    e->set_port(b->second);
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // io threads inherit the mask

  warren::Registry registry;
  warren::ServiceProxyOptions o;
  o.host_ip = hp->first;
  o.port = hp->second;
  o.threads = threads;
  o.registry = &registry;
  if (!tls_cert.empty()) {
    std::vector<warren::v1::IngressKeyPair> pairs(1);
    pairs[0].set_name("bench");
    pairs[0].set_host(hp->first);
    if (!ReadFile(tls_cert, pairs[0].mutable_certificate_pem()) ||
        !ReadFile(tls_key, pairs[0].mutable_key_pem())) {
      std::fprintf(stderr, "--tls-cert, --tls-key: cannot read %s or %s\n", tls_cert.c_str(),
                   tls_key.c_str());
      return 2;
    }
    pairs[0].set_certificate_sha256(warren::CertificateSha256(pairs[0].certificate_pem()));
    auto contexts = std::make_shared<warren::IngressTlsContexts>();
    if (absl::Status s = contexts->Update(pairs); !s.ok()) {
      std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
      return 2;
    }
    warren::v1::RoutingTable table;
    *table.add_services() = route;
    warren::v1::IngressRoute* rule = table.add_ingresses();
    rule->set_name("bench");
    rule->set_host(hp->first);
    rule->set_path("/");
    rule->set_service_id(route.service_id());
    rule->set_tls(true);
    rule->set_certificate_sha256(pairs[0].certificate_sha256());
    auto ingress = warren::IngressProxy::Start(o, contexts);
    if (!ingress.ok()) {
      std::fprintf(stderr, "%s\n", std::string(ingress.status().message()).c_str());
      return 1;
    }
    (*ingress)->Update(table);
    std::printf("listening on %s:%d\n", hp->first.c_str(), (*ingress)->port());
    std::fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    (*ingress)->Stop(absl::Seconds(2));
    return 0;
  }
  auto proxy = warren::ServiceProxy::Start(route, o);
  if (!proxy.ok()) {
    std::fprintf(stderr, "%s\n", std::string(proxy.status().message()).c_str());
    return 1;
  }
  std::printf("listening on %s:%d\n", hp->first.c_str(), (*proxy)->port());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  (*proxy)->Stop(absl::Seconds(2));
  return 0;
}
