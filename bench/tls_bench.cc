// API create rate and latency under mutual TLS against plaintext, in the same run (issue 12:
// TLS within 10 % of plaintext). Each round starts one manager per mode, in turn, with its mode
// given explicitly (`--insecure-plaintext` / `--tls` with --tls-root in the bench's temp dir; the
// client presents the admin bundle the TLS manager wrote there), and creates services one at
// a time through the API:
//   - on one connection (the API's own cost: TLS costs only per message), and
//   - on a new connection each (as the CLI does: one TLS handshake per create).
// Rounds alternate the order of the modes, so a change of the machine's load hits both alike.
// Everything runs on loopback; every loop is bounded.
//
// usage: tls_bench WARREN_BINARY [CREATES_PER_ROUND (default 500)] [ROUNDS (default 3)]
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "bench_util.h"
#include "grpcpp/grpcpp.h"
#include "security/client_bundle.h"
#include "security/tls_credentials.h"
#include "warren/v1/api.grpc.pb.h"

namespace {

using warren::bench::FreePort;
using warren::bench::Percentile;
using warren::bench::Spawn;
using warren::bench::Terminate;
using warren::bench::WaitUntil;
using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Sample {
  double seconds = 0;  // wall time of the creates, summed over rounds
  int creates = 0;
  int failed = 0;
  std::vector<double> latency_ms;
  double rate() const { return seconds > 0 ? creates / seconds : 0; }
};

struct Mode {
  const char* name;
  bool tls;
  Sample one_connection;
  Sample new_connections;
};

std::shared_ptr<grpc::Channel> NewChannel(const std::string& addr,
                                          const std::shared_ptr<grpc::ChannelCredentials>& creds) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
  return grpc::CreateCustomChannel(addr, creds, args);
}

bool Create(warren::v1::Control::Stub& stub, const std::string& name, Sample* sample) {
  warren::v1::CreateServiceRequest req;
  req.mutable_spec()->set_name(name);
  req.mutable_spec()->set_replicas(1);
  req.mutable_spec()->mutable_template_()->set_command("/bin/true");
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  warren::v1::Service out;
  auto t0 = Clock::now();
  grpc::Status s = stub.CreateService(&ctx, req, &out);
  if (sample != nullptr) {
    sample->latency_ms.push_back(Ms(Clock::now() - t0));
    if (!s.ok()) {
      sample->failed++;
      std::fprintf(stderr, "create %s: %s\n", name.c_str(), s.error_message().c_str());
    }
  }
  return s.ok();
}

// One manager in `mode`: a warm-up, `n` creates on one connection, n / 5 on new connections.
bool RunRound(const std::string& warren, const std::filesystem::path& dir, int round, int n,
              Mode* mode) {
  const std::string tag = std::string(mode->tls ? "tls-" : "plain-") + std::to_string(round);
  const std::filesystem::path data = dir / tag;
  const std::filesystem::path tls_root = dir / (tag + "-home");
  const std::string api = "127.0.0.1:" + std::to_string(FreePort());
  std::vector<std::string> argv = {warren,           "manager", "--data-dir", data.string(),
                                   "--api-addr",     api,       "--dns-addr", "",
                                   "--metrics-addr", ""};
  if (mode->tls) {
    argv.insert(argv.end(), {"--tls", "--tls-root", tls_root.string()});
  } else {
    argv.push_back("--insecure-plaintext");
  }
  pid_t manager = Spawn(argv, (dir / (tag + ".log")).string());
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (mode->tls) {
    // The bundle appears once the manager is up.
    const std::string bundle = (tls_root / "current").string();
    if (!WaitUntil([&] { return warren::security::CredentialsDirectory(bundle).HasCredentials(); },
                   std::chrono::seconds(60), std::chrono::milliseconds(50))) {
      std::fprintf(stderr, "%s: no admin bundle in %s\n", tag.c_str(), bundle.c_str());
      Terminate(manager);
      return false;
    }
    auto c = warren::security::BundleChannelCredentials(bundle);
    if (!c.ok()) {
      std::fprintf(stderr, "%s: %s\n", tag.c_str(), std::string(c.status().message()).c_str());
      Terminate(manager);
      return false;
    }
    creds = *c;
  }
  auto stub = warren::v1::Control::NewStub(NewChannel(api, creds));
  int warm = 0;
  bool up = WaitUntil([&] { return Create(*stub, "warm-" + std::to_string(warm++), nullptr); },
                      std::chrono::seconds(60), std::chrono::milliseconds(50));
  for (int i = 0; up && i < 20; ++i) Create(*stub, "warm-" + std::to_string(warm++), nullptr);
  if (!up) {
    std::fprintf(stderr, "%s: the API did not answer (log %s)\n", tag.c_str(),
                 (dir / (tag + ".log")).c_str());
    Terminate(manager);
    return false;
  }

  auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) Create(*stub, "svc-" + std::to_string(i), &mode->one_connection);
  mode->one_connection.seconds += Ms(Clock::now() - t0) / 1000;
  mode->one_connection.creates += n;

  const int fresh = std::max(1, n / 5);
  t0 = Clock::now();
  for (int i = 0; i < fresh; ++i) {
    auto own = warren::v1::Control::NewStub(NewChannel(api, creds));
    Create(*own, "new-" + std::to_string(i), &mode->new_connections);
  }
  mode->new_connections.seconds += Ms(Clock::now() - t0) / 1000;
  mode->new_connections.creates += fresh;
  Terminate(manager);
  return true;
}

void Line(const std::string& what, const std::string& plain, const std::string& tls,
          const std::string& ratio) {
  std::printf("| %-46s | %-22s | %-22s | %-16s |\n", what.c_str(), plain.c_str(), tls.c_str(),
              ratio.c_str());
}

std::string Fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v);
  return buf;
}

void Rows(const std::string& what, const Sample& plain, const Sample& tls) {
  Line(what + ": creates/s", Fmt("%.0f", plain.rate()), Fmt("%.0f", tls.rate()),
       Fmt("%.2f", plain.rate() > 0 ? tls.rate() / plain.rate() : 0));
  Line(what + ": p50 ms", Fmt("%.2f", Percentile(plain.latency_ms, 50)),
       Fmt("%.2f", Percentile(tls.latency_ms, 50)),
       Fmt("%.2f", Percentile(tls.latency_ms, 50) / Percentile(plain.latency_ms, 50)));
  Line(what + ": p99 ms", Fmt("%.2f", Percentile(plain.latency_ms, 99)),
       Fmt("%.2f", Percentile(tls.latency_ms, 99)),
       Fmt("%.2f", Percentile(tls.latency_ms, 99) / Percentile(plain.latency_ms, 99)));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s WARREN_BINARY [CREATES_PER_ROUND] [ROUNDS]\n", argv[0]);
    return 2;
  }
  const std::string warren = argv[1];
  const int n = argc > 2 ? std::clamp(std::atoi(argv[2]), 10, 100000) : 500;
  const int rounds = argc > 3 ? std::clamp(std::atoi(argv[3]), 1, 20) : 3;
  signal(SIGPIPE, SIG_IGN);
  auto dir =
      std::filesystem::temp_directory_path() / ("warren-tls-bench-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);

  Mode plain{"plaintext", false, {}, {}};
  Mode tls{"mutual TLS", true, {}, {}};
  bool ok = true;
  for (int round = 0; ok && round < rounds; ++round) {
    Mode* first = round % 2 == 0 ? &plain : &tls;
    Mode* second = round % 2 == 0 ? &tls : &plain;
    ok = RunRound(warren, dir, round, n, first) && RunRound(warren, dir, round, n, second);
  }
  std::printf("| %-46s | %-22s | %-22s | %-16s |\n", "sequential creates", "plaintext",
              "mutual TLS", "TLS / plaintext");
  std::printf("|%s|%s|%s|%s|\n", std::string(48, '-').c_str(), std::string(24, '-').c_str(),
              std::string(24, '-').c_str(), std::string(18, '-').c_str());
  Rows("one connection", plain.one_connection, tls.one_connection);
  Rows("new connection each", plain.new_connections, tls.new_connections);
  const int failed = plain.one_connection.failed + plain.new_connections.failed +
                     tls.one_connection.failed + tls.new_connections.failed;
  std::printf("\n%d rounds x (%d creates on one connection + %d on new ones) per mode; %d failed\n",
              rounds, n, std::max(1, n / 5), failed);
  std::error_code ec;
  if (ok && failed == 0) std::filesystem::remove_all(dir, ec);
  return ok && failed == 0 ? 0 : 1;
}
