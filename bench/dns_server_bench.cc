// Serves Warren's service DNS for a synthetic routing table until SIGINT/SIGTERM, for
// bench/dns_bench.sh. Usage: dns_server_bench PORT [SERVICES] [ENDPOINTS] [THREADS]
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "dns/dns_server.h"
#include "dns/service_resolver.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s PORT [SERVICES] [ENDPOINTS] [THREADS]\n", argv[0]);
    return 2;
  }
  int port = std::atoi(argv[1]);
  int services = argc > 2 ? std::atoi(argv[2]) : 50;
  int endpoints = argc > 3 ? std::atoi(argv[3]) : 3;
  int threads = argc > 4 ? std::atoi(argv[4]) : 2;
  if (port < 0 || port > 65535 || services < 1 || services > 250 || endpoints < 1 ||
      endpoints > 250 || threads < 1) {
    std::fprintf(stderr, "dns_server_bench: PORT 0..65535, SERVICES and ENDPOINTS 1..250\n");
    return 2;
  }
  // Block the signals before any thread starts so only sigwait sees them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  warren::v1::RoutingTable table;
  table.set_version(1);
  for (int s = 0; s < services; ++s) {
    auto* svc = table.add_services();
    svc->set_name("svc" + std::to_string(s));
    auto* rev = svc->add_revisions();
    rev->set_revision(1);
    rev->set_weight(100);
    for (int e = 0; e < endpoints; ++e) {
      auto* ep = rev->add_endpoints();
      ep->set_address("127.1." + std::to_string(s) + "." + std::to_string(e + 1));
      ep->set_port(8080);
      ep->set_slot(e + 1);
    }
  }
  warren::dns::ServiceResolver resolver({});
  if (auto st = resolver.Update(table); !st.ok()) {
    std::fprintf(stderr, "dns_server_bench: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  warren::dns::DnsServerOptions options;
  options.address = "127.0.0.1";
  options.port = static_cast<uint16_t>(port);
  options.threads = threads;
  warren::dns::DnsServer server(options, resolver);
  if (auto st = server.Start(); !st.ok()) {
    std::fprintf(stderr, "dns_server_bench: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  std::printf("listening on 127.0.0.1:%u\n", server.port());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  server.Stop();
  auto stats = server.stats();
  std::printf("served %llu udp, %llu tcp queries\n",
              static_cast<unsigned long long>(stats.udp_queries),
              static_cast<unsigned long long>(stats.tcp_queries));
  return 0;
}
