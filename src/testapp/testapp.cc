// warren-testapp: a small HTTP service whose behaviour (version, errors, latency, health,
// crashes, startup delay) is set through its environment, so deployment strategies can be
// exercised end to end. Documented in docs/testapp.md.

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>  // before Boost.Asio 1.74, whose awaitable.hpp uses std::exchange unincluded

#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "http/http_server.h"
#include "http/metrics.h"

namespace warren {
namespace {

constexpr int kExitUsage = 2;
// How long SIGTERM waits for in-flight requests before closing them anyway.
constexpr absl::Duration kDrainTimeout = absl::Seconds(30);
constexpr int64_t kMaxDelayMs = 600'000;

struct Config {
  std::string version = "v1";
  std::string task_id = "local";
  std::string service;
  std::string revision = "0";
  std::string ip = "127.0.0.1";
  int port = 8080;
  double error_rate = 0;
  int64_t latency_ms = 0;
  bool fail_health = false;
  absl::Duration crash_after = absl::ZeroDuration();  // zero: never
  absl::Duration startup_delay = absl::ZeroDuration();
  uint64_t seed = 0;
};

std::optional<std::string> Env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

absl::Status Invalid(const char* name, const std::string& value, const std::string& expected) {
  return absl::InvalidArgumentError(absl::StrCat(name, ": ", expected, ", got \"", value, "\""));
}

// "500ms", "3s", "2m", "1h", "1m30s", "0". Local until warren::ParseDuration (common/spec.h)
// has an implementation in this tree.
absl::StatusOr<absl::Duration> ParseDurationText(const std::string& text) {
  absl::Duration d;
  if (text == "0") return absl::ZeroDuration();
  bool has_unit = text.find_first_of("hms") != std::string::npos;
  if (!has_unit || !absl::ParseDuration(text, &d) || d < absl::ZeroDuration() ||
      d == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError("not a duration");
  }
  return d;
}

absl::StatusOr<absl::Duration> DurationEnv(const char* name) {
  std::optional<std::string> v = Env(name);
  if (!v) return absl::ZeroDuration();
  auto d = ParseDurationText(*v);
  if (!d.ok()) return Invalid(name, *v, "must be a duration like \"500ms\", \"3s\", \"2m\", \"0\"");
  return *d;
}

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

absl::StatusOr<int> ParsePort(const char* name, const std::string& v) {
  int port = 0;
  if (!absl::SimpleAtoi(v, &port) || port < 0 || port > 65535) {
    return Invalid(name, v, "must be a port number 0..65535");
  }
  return port;
}

absl::StatusOr<Config> ConfigFromEnv() {
  Config c;
  if (auto v = Env("VERSION")) c.version = *v;
  if (auto v = Env("WARREN_TASK_ID")) c.task_id = *v;
  if (auto v = Env("WARREN_SERVICE")) c.service = *v;
  if (auto v = Env("WARREN_REVISION")) c.revision = *v;
  if (auto v = Env("WARREN_TASK_IP")) c.ip = *v;
  if (auto v = Env("WARREN_TASK_PORT")) {
    auto port = ParsePort("WARREN_TASK_PORT", *v);
    if (!port.ok()) return port.status();
    c.port = *port;
  }
  if (auto v = Env("ERROR_RATE")) {
    if (!absl::SimpleAtod(*v, &c.error_rate) || !(c.error_rate >= 0 && c.error_rate <= 1)) {
      return Invalid("ERROR_RATE", *v, "must be a fraction between 0 and 1");
    }
  }
  if (auto v = Env("LATENCY_MS")) {
    if (!absl::SimpleAtoi(*v, &c.latency_ms) || c.latency_ms < 0 || c.latency_ms > kMaxDelayMs) {
      return Invalid("LATENCY_MS", *v,
                     absl::StrCat("must be an integer number of milliseconds 0..", kMaxDelayMs));
    }
  }
  if (auto v = Env("FAIL_HEALTH")) {
    if (*v == "1" || *v == "true") {
      c.fail_health = true;
    } else if (*v != "0" && *v != "false") {
      return Invalid("FAIL_HEALTH", *v, "must be 1, 0, true or false");
    }
  }
  auto crash = DurationEnv("CRASH_AFTER");
  if (!crash.ok()) return crash.status();
  c.crash_after = *crash;
  auto delay = DurationEnv("STARTUP_DELAY");
  if (!delay.ok()) return delay.status();
  c.startup_delay = *delay;
  c.seed = Fnv1a(c.task_id);
  if (auto v = Env("SEED")) {
    if (!absl::SimpleAtoi(*v, &c.seed)) {
      return Invalid("SEED", *v, "must be an unsigned 64-bit integer");
    }
  }
  return c;
}

// Runs callbacks after a delay on one thread, so a slow response never holds an HTTP thread.
class Timers {
 public:
  Timers() : work_(boost::asio::make_work_guard(ioc_)), thread_([this] { ioc_.run(); }) {}
  ~Timers() {
    work_.reset();
    ioc_.stop();
    thread_.join();
  }

  void After(absl::Duration delay, std::function<void()> fn) {
    if (delay <= absl::ZeroDuration()) {
      fn();
      return;
    }
    auto timer = std::make_shared<boost::asio::steady_timer>(ioc_);
    timer->expires_after(absl::ToChronoNanoseconds(delay));
    timer->async_wait([timer, fn = std::move(fn)](const boost::system::error_code& ec) {
      if (!ec) fn();
    });
  }

 private:
  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::thread thread_;
};

class TestApp {
 public:
  explicit TestApp(const Config& config)
      : config_(config),
        rng_state_(config.seed),
        requests_(metrics_.AddCounter("testapp_requests_total",
                                      "Requests answered, by path and status code.",
                                      {"path", "code"})),
        inflight_(metrics_
                      .AddGauge("testapp_inflight_requests",
                                "Requests received and not yet answered (not /metrics).")
                      .WithLabels({})) {}

  Timers& timers() { return timers_; }

  void Handle(const HttpRequest& req, HttpServer::Responder respond) {
    if (req.path == "/metrics") {
      HttpResponse r;
      r.content_type = kPrometheusContentType;
      r.body = metrics_.Render();
      respond(std::move(r));
      return;
    }
    inflight_.Inc();
    std::string path = KnownPath(req.path);
    // Count and release the in-flight slot when the answer goes out, whichever thread sends it.
    HttpServer::Responder done = [this, path, respond = std::move(respond)](HttpResponse r) {
      requests_.WithLabels({path, absl::StrCat(r.status)}).Inc();
      inflight_.Dec();
      respond(std::move(r));
    };

    if (req.path == "/") {
      Root(req, std::move(done));
    } else if (req.path == "/healthz") {
      done(config_.fail_health ? HttpResponse::Text(500, "unhealthy (FAIL_HEALTH)\n")
                               : HttpResponse::Text(200, "ok"));
    } else if (req.path == "/echo") {
      HttpResponse r;
      r.content_type = req.Header("Content-Type").value_or("application/octet-stream");
      r.body = req.body;
      AddIdentity(r);
      done(std::move(r));
    } else if (req.path == "/slow") {
      std::optional<std::string> ms_text = req.QueryParam("ms");
      int64_t ms = 0;
      if (!ms_text || !absl::SimpleAtoi(*ms_text, &ms) || ms < 0 || ms > kMaxDelayMs) {
        done(HttpResponse::Text(400, absl::StrCat("slow: query parameter ms must be an integer 0..",
                                                  kMaxDelayMs, "\n")));
        return;
      }
      timers_.After(absl::Milliseconds(ms), [this, ms, done = std::move(done)] {
        HttpResponse r = HttpResponse::Text(200, absl::StrCat("slept ", ms, "ms\n"));
        AddIdentity(r);
        done(std::move(r));
      });
    } else if (req.path == "/lookup") {
      std::optional<std::string> name = req.QueryParam("name");
      if (!name || name->empty() || name->size() > 253) {
        done(HttpResponse::Text(400, "lookup: query parameter name (a host name) is required\n"));
        return;
      }
      // The resolver blocks (up to its own timeouts): not on the server's thread.
      std::thread([name = *name, done = std::move(done)] { done(Lookup(name)); }).detach();
    } else {
      // Who answered, and for which path: the ingress e2e test checks where a path went.
      done(HttpResponse::Text(404, absl::StrCat("not found: ", req.path, " version=",
                                                config_.version, " task=", config_.task_id, "\n")));
    }
  }

  // The IPv4 addresses the system resolver gives for `name`, one per line (sorted).
  static HttpResponse Lookup(const std::string& name) {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(name.c_str(), nullptr, &hints, &res);
    if (rc != 0) {
      return HttpResponse::Text(502, absl::StrCat("lookup ", name, ": ", gai_strerror(rc), "\n"));
    }
    std::set<std::string> ips;
    for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
      char buf[INET_ADDRSTRLEN] = {0};
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr, buf, sizeof(buf));
      ips.insert(buf);
    }
    freeaddrinfo(res);
    std::string body;
    for (const auto& ip : ips) absl::StrAppend(&body, ip, "\n");
    return HttpResponse::Text(200, body);
  }

 private:
  static std::string KnownPath(const std::string& path) {
    if (path == "/" || path == "/healthz" || path == "/echo" || path == "/slow" ||
        path == "/lookup") {
      return path;
    }
    return "other";
  }

  void AddIdentity(HttpResponse& r) const {
    r.headers.emplace_back("X-Version", config_.version);
    r.headers.emplace_back("X-Task-Id", config_.task_id);
    r.headers.emplace_back("X-Revision", config_.revision);
  }

  // Decided in arrival order from one seeded generator, so a run is reproducible.
  bool InjectError() {
    if (config_.error_rate <= 0) return false;
    absl::MutexLock lock(&rng_mu_);
    // splitmix64: tiny, and the same on every platform (std distributions are not).
    uint64_t z = (rng_state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    double u = static_cast<double>(z >> 11) * 0x1.0p-53;
    return u < config_.error_rate;
  }

  void Root(const HttpRequest& req, HttpServer::Responder done) {
    bool fail = InjectError();
    bool json = req.QueryParam("format").value_or("") == "json";
    HttpResponse r;
    if (fail) {
      r = HttpResponse::Text(500, absl::StrCat("injected error (ERROR_RATE) version=",
                                               config_.version, " task=", config_.task_id, "\n"));
    } else if (json) {
      nlohmann::json body = {{"version", config_.version},
                             {"task", config_.task_id},
                             {"revision", config_.revision},
                             {"service", config_.service}};
      r.content_type = "application/json";
      r.body = body.dump() + "\n";
    } else {
      r.body = absl::StrCat("version=", config_.version, " task=", config_.task_id,
                            " revision=", config_.revision, "\n");
    }
    AddIdentity(r);
    timers_.After(absl::Milliseconds(config_.latency_ms),
                  [r = std::move(r), done = std::move(done)]() mutable { done(std::move(r)); });
  }

  const Config config_;
  absl::Mutex rng_mu_;
  uint64_t rng_state_ ABSL_GUARDED_BY(rng_mu_);
  Registry metrics_;
  Family<Counter>& requests_;
  Gauge& inflight_;
  // Last member: its thread stops before the rest of the app goes away.
  Timers timers_;
};

// Waits up to `timeout` (forever when infinite) for one of the blocked signals.
int WaitForSignal(const sigset_t& set, absl::Duration timeout) {
  for (;;) {
    int sig;
    if (timeout == absl::InfiniteDuration()) {
      if (sigwait(&set, &sig) == 0) return sig;
      continue;
    }
    timespec ts = absl::ToTimespec(timeout);
    absl::Time start = absl::Now();
    sig = sigtimedwait(&set, nullptr, &ts);
    if (sig > 0) return sig;
    if (errno == EAGAIN) return 0;
    timeout -= absl::Now() - start;  // EINTR: wait for the rest
    if (timeout <= absl::ZeroDuration()) return 0;
  }
}

int Main(int argc, char** argv) {
  // Blocked before any thread starts, so every thread inherits the mask and the signals are
  // only ever taken by sigwait below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<Config> config = ConfigFromEnv();
  if (!config.ok()) {
    std::fprintf(stderr, "warren-testapp: %s\n", std::string(config.status().message()).c_str());
    return kExitUsage;
  }

  CLI::App app("warren-testapp: HTTP test service configured by environment variables");
  std::string addr_flag;
  int port_flag = -1;
  app.add_option("--addr", addr_flag, "Listen IP (or IP:PORT); overrides WARREN_TASK_IP");
  app.add_option("--port", port_flag, "Listen port; overrides WARREN_TASK_PORT")
      ->check(CLI::Range(0, 65535));
  std::string require_file;
  app.add_option("--require-file", require_file,
                 "Read this file before listening and exit 2 when it cannot be read (prints "
                 "its size, never its bytes): checks that a secret reached the task");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }
  if (!addr_flag.empty()) {
    if (addr_flag.find(':') != std::string::npos) {
      auto host_port = SplitHostPort(addr_flag);
      if (!host_port.ok()) {
        std::fprintf(stderr, "warren-testapp: --addr %s\n",
                     std::string(host_port.status().message()).c_str());
        return kExitUsage;
      }
      config->ip = host_port->first;
      config->port = host_port->second;
    } else {
      config->ip = addr_flag;
    }
  }
  if (port_flag >= 0) config->port = port_flag;
  if (!require_file.empty()) {
    std::ifstream in(require_file, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      std::fprintf(stderr, "warren-testapp: --require-file %s: cannot be read: %s\n",
                   require_file.c_str(), std::strerror(errno));
      return kExitUsage;
    }
    std::printf("warren-testapp: read %zu bytes from %s\n", bytes.size(), require_file.c_str());
    std::fflush(stdout);
  }

  auto app_state = std::make_unique<TestApp>(*config);

  if (config->crash_after > absl::ZeroDuration()) {
    std::string text = absl::FormatDuration(config->crash_after);
    app_state->timers().After(config->crash_after, [text] {
      std::printf("warren-testapp: crashing as asked (CRASH_AFTER=%s)\n", text.c_str());
      std::fflush(stdout);
      _exit(1);
    });
  }

  if (config->startup_delay > absl::ZeroDuration()) {
    std::printf("warren-testapp: waiting STARTUP_DELAY=%s before listening\n",
                absl::FormatDuration(config->startup_delay).c_str());
    std::fflush(stdout);
    if (WaitForSignal(signals, config->startup_delay) != 0) return 0;  // stopped before listening
  }

  std::string listen = config->ip.find(':') != std::string::npos
                           ? absl::StrCat("[", config->ip, "]:", config->port)
                           : absl::StrCat(config->ip, ":", config->port);
  TestApp* handler_app = app_state.get();
  HttpServerOptions options;
  options.threads = 2;
  auto server = HttpServer::StartAsync(
      listen,
      [handler_app](const HttpRequest& req, HttpServer::Responder respond) {
        handler_app->Handle(req, std::move(respond));
      },
      options);
  if (!server.ok()) {
    std::fprintf(stderr, "warren-testapp: listen %s\n",
                 std::string(server.status().message()).c_str());
    return 1;
  }
  std::string bound = config->ip.find(':') != std::string::npos
                          ? absl::StrCat("[", config->ip, "]:", (*server)->port())
                          : absl::StrCat(config->ip, ":", (*server)->port());
  std::printf("warren-testapp version=%s task=%s revision=%s listening on %s\n",
              config->version.c_str(), config->task_id.c_str(), config->revision.c_str(),
              bound.c_str());
  std::fflush(stdout);

  int sig = WaitForSignal(signals, absl::InfiniteDuration());
  std::printf("warren-testapp: signal %d, draining\n", sig);
  std::fflush(stdout);
  bool drained = (*server)->Shutdown(kDrainTimeout);
  std::printf("warren-testapp: stopped%s\n", drained ? "" : " (drain timed out)");
  std::fflush(stdout);
  // Timers first: a request abandoned by a timed-out drain must not answer into a server that
  // is being destroyed.
  app_state.reset();
  server->reset();
  return 0;
}

}  // namespace
}  // namespace warren

int main(int argc, char** argv) { return warren::Main(argc, argv); }
