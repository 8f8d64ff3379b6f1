#include "worker/health_prober.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/processes.h"
#include "spdlog/spdlog.h"

namespace warren {
namespace {

// Abseil here is built with its own string_view type.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr size_t kMaxOutput = 256;

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

void ToProto(absl::Duration d, google::protobuf::Duration* out) {
  int64_t nanos = absl::ToInt64Nanoseconds(d);
  out->set_seconds(nanos / 1'000'000'000);
  out->set_nanos(static_cast<int32_t>(nanos % 1'000'000'000));
}

void ToProto(absl::Time t, google::protobuf::Timestamp* out) {
  int64_t nanos = absl::ToUnixNanos(t);
  int64_t seconds = nanos / 1'000'000'000;
  int64_t rem = nanos % 1'000'000'000;
  if (rem < 0) {
    rem += 1'000'000'000;
    --seconds;
  }
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(rem));
}

std::string Shorten(std::string_view text) {
  std::string out(text.substr(0, kMaxOutput));
  if (text.size() > kMaxOutput) out += "...";
  return out;
}

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

int RemainingMs(absl::Time deadline) {
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(
      std::max<int64_t>(1, absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1)))));
}

// Errors that say the worker is short of something (descriptors, memory, ports), not that
// the task is unwell: a probe failing with one tells nothing about the task.
bool WorkerShortOf(int err) {
  return err == EMFILE || err == ENFILE || err == ENOMEM || err == ENOBUFS || err == EAGAIN ||
         err == EADDRNOTAVAIL;
}

// Connects with a deadline. Returns the connected non-blocking socket, or sets `error` (and
// `inconclusive` when the failure was the worker's own).
std::unique_ptr<Socket> Connect(std::string_view host, int port, absl::Time deadline,
                                absl::Duration timeout, std::string* error, bool* inconclusive) {
  std::string host_str = host.empty() ? "127.0.0.1" : std::string(host);
  std::string target = absl::StrCat(host_str.find(':') != std::string::npos ? "[" : "", host_str,
                                    host_str.find(':') != std::string::npos ? "]" : "", ":", port);
  if (port <= 0 || port > 65535) {
    *error = absl::StrCat("port: must be 1..65535, got ", port);
    return nullptr;
  }
  addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port_str = absl::StrCat(port);
  if (int rc = getaddrinfo(host_str.c_str(), port_str.c_str(), &hints, &res); rc != 0) {
    *error = absl::StrCat("resolve ", host_str, ": ", gai_strerror(rc));
    return nullptr;
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> res_owner(res, &freeaddrinfo);
  auto sock = std::make_unique<Socket>(
      socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, res->ai_protocol));
  if (sock->get() < 0) {
    *error = absl::StrCat("socket: ", ErrnoText(errno));
    if (inconclusive) *inconclusive = WorkerShortOf(errno);
    return nullptr;
  }
  if (connect(sock->get(), res->ai_addr, res->ai_addrlen) != 0) {
    if (errno != EINPROGRESS) {
      *error = absl::StrCat("connect ", target, ": ", ErrnoText(errno));
      if (inconclusive) *inconclusive = WorkerShortOf(errno);
      return nullptr;
    }
    pollfd pfd = {sock->get(), POLLOUT, 0};
    int r;
    do {
      r = poll(&pfd, 1, RemainingMs(deadline));
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
      *error =
          absl::StrCat("connect ", target, ": timed out after ", absl::FormatDuration(timeout));
      return nullptr;
    }
    int so_error = 0;
    socklen_t len = sizeof(so_error);
    getsockopt(sock->get(), SOL_SOCKET, SO_ERROR, &so_error, &len);
    if (r < 0 || so_error != 0) {
      *error = absl::StrCat("connect ", target, ": ", ErrnoText(r < 0 ? errno : so_error));
      return nullptr;
    }
  }
  return sock;
}

bool HasCrLf(const std::string& s) { return s.find_first_of("\r\n") != std::string::npos; }

}  // namespace

HealthCheckParams ResolveHealthCheck(const v1::HealthCheck& check) {
  HealthCheckParams p;
  if (check.has_interval() && FromProto(check.interval()) > absl::ZeroDuration()) {
    p.interval = FromProto(check.interval());
  }
  if (check.has_timeout() && FromProto(check.timeout()) > absl::ZeroDuration()) {
    p.timeout = FromProto(check.timeout());
  }
  if (check.retries() > 0) p.retries = check.retries();
  if (check.success_threshold() > 0) p.success_threshold = check.success_threshold();
  if (check.has_start_period()) {
    p.start_period = std::max(absl::ZeroDuration(), FromProto(check.start_period()));
  }
  return p;
}

HealthTracker::HealthTracker(const v1::HealthCheck& check, absl::Time started_at)
    : params_(ResolveHealthCheck(check)),
      started_at_(started_at),
      next_probe_at_(started_at + params_.interval / kStartupProbesPerInterval) {
  health_.set_state(v1::HEALTH_STATE_STARTING);
}

HealthTracker::HealthTracker(const v1::HealthCheck& check, absl::Time started_at,
                             const v1::TaskHealth& resume)
    : HealthTracker(check, started_at) {
  switch (resume.state()) {
    case v1::HEALTH_STATE_HEALTHY:
    case v1::HEALTH_STATE_UNHEALTHY:
    case v1::HEALTH_STATE_STARTING:
      health_.set_state(resume.state());
      break;
    default:
      return;  // nothing known: a new task's start
  }
  *health_.mutable_last_probe() = resume.last_probe();
  if (resume.state() == v1::HEALTH_STATE_HEALTHY) {
    *health_.mutable_healthy_since() = resume.healthy_since();
    ever_healthy_ = true;
  }
  // Failures were already counted against an UNHEALTHY task: its start period is over.
  if (resume.state() == v1::HEALTH_STATE_UNHEALTHY) ever_healthy_ = true;
  next_probe_at_ = absl::InfinitePast();
}

bool HealthTracker::InFirstInterval(absl::Time now) const {
  return !ever_healthy_ && now < started_at_ + params_.interval;
}

bool HealthTracker::Record(const v1::ProbeResult& result, absl::Time now) {
  const v1::HealthState before = health_.state();
  *health_.mutable_last_probe() = result;
  if (result.ok()) {
    health_.set_passing_streak(health_.passing_streak() + 1);
    health_.set_failing_streak(0);
    if (before != v1::HEALTH_STATE_HEALTHY &&
        health_.passing_streak() >= params_.success_threshold) {
      health_.set_state(v1::HEALTH_STATE_HEALTHY);
      ToProto(now, health_.mutable_healthy_since());
      ever_healthy_ = true;
    }
  } else {
    health_.set_passing_streak(0);
    bool in_start_period =
        InFirstInterval(now) || (!ever_healthy_ && now < started_at_ + params_.start_period);
    if (!in_start_period) {
      health_.set_failing_streak(health_.failing_streak() + 1);
      if (before != v1::HEALTH_STATE_UNHEALTHY && health_.failing_streak() >= params_.retries) {
        health_.set_state(v1::HEALTH_STATE_UNHEALTHY);
        health_.clear_healthy_since();
      }
    }
  }
  // A new task is probed a few times within its first interval so it turns healthy as soon as
  // it serves (each batch of a rollout waits for that); those early failures do not count.
  next_probe_at_ = InFirstInterval(now)
                       ? std::min(now + params_.interval / kStartupProbesPerInterval,
                                  started_at_ + params_.interval)
                       : now + params_.interval;
  return health_.state() != before;
}

namespace {

// A probe's result: ok, its output (shortened) and how long it took since `start`.
v1::ProbeResult ProbeOutcome(absl::Time start, bool ok, std::string_view output) {
  v1::ProbeResult result;
  result.set_ok(ok);
  result.set_output(Shorten(output));
  ToProto(absl::Now() - start, result.mutable_latency());
  return result;
}

}  // namespace

v1::ProbeResult ProbeTcp(std::string_view host, int port, absl::Duration timeout,
                         bool* inconclusive) {
  absl::Time start = absl::Now();
  std::string error;
  std::unique_ptr<Socket> sock =
      Connect(host, port, start + timeout, timeout, &error, inconclusive);
  return ProbeOutcome(start, sock != nullptr, sock ? "connected" : error);
}

v1::ProbeResult ProbeHttp(std::string_view host, int port, const v1::HttpProbe& probe,
                          absl::Duration timeout, bool* inconclusive) {
  absl::Time start = absl::Now();
  absl::Time deadline = start + timeout;
  auto finish = [&](bool ok, std::string_view output) { return ProbeOutcome(start, ok, output); };

  std::string path = probe.path().empty() ? "/" : probe.path();
  if (path[0] != '/') path = "/" + path;
  if (HasCrLf(path) || path.find(' ') != std::string::npos) {
    return finish(false, "http.path: must not contain spaces, CR or LF");
  }
  std::string host_str = host.empty() ? "127.0.0.1" : std::string(host);
  bool v6 = host_str.find(':') != std::string::npos;
  std::string host_header = absl::StrCat(v6 ? "[" : "", host_str, v6 ? "]" : "", ":", port);
  std::string extra_headers;
  for (const auto& [name, value] : probe.headers()) {
    if (name.empty() || HasCrLf(name) || name.find(':') != std::string::npos || HasCrLf(value)) {
      return finish(false, absl::StrCat("http.headers[\"", absl::CEscape(name),
                                        "\"]: name or value is malformed"));
    }
    if (absl::EqualsIgnoreCase(name, "host")) {
      host_header = value;
      continue;
    }
    absl::StrAppend(&extra_headers, name, ": ", value, "\r\n");
  }
  std::string request =
      absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: ", host_header,
                   "\r\nUser-Agent: warren-health/1\r\nAccept: */*\r\nConnection: close\r\n",
                   extra_headers, "\r\n");

  std::string error;
  std::unique_ptr<Socket> sock = Connect(host, port, deadline, timeout, &error, inconclusive);
  if (!sock) return finish(false, error);

  std::string timed_out = absl::StrCat("timed out after ", absl::FormatDuration(timeout));
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = send(sock->get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += n;
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      return finish(false, absl::StrCat("send: ", ErrnoText(errno)));
    }
    pollfd pfd = {sock->get(), POLLOUT, 0};
    if (poll(&pfd, 1, RemainingMs(deadline)) == 0) return finish(false, timed_out);
  }

  // Only the status line matters.
  std::string response;
  while (response.find("\r\n") == std::string::npos && response.size() < 8192) {
    pollfd pfd = {sock->get(), POLLIN, 0};
    int r = poll(&pfd, 1, RemainingMs(deadline));
    if (r == 0) return finish(false, timed_out);
    if (r < 0) {
      if (errno == EINTR) continue;
      return finish(false, absl::StrCat("poll: ", ErrnoText(errno)));
    }
    char buf[2048];
    ssize_t n = recv(sock->get(), buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return finish(false, absl::StrCat("recv: ", ErrnoText(errno)));
    }
    if (n == 0) break;
    response.append(buf, n);
  }
  std::string status_line = response.substr(0, response.find("\r\n"));
  // "HTTP/1.1 200 OK"
  absl::string_view rest(status_line);
  int status = 0;
  if (!absl::ConsumePrefix(&rest, "HTTP/") || rest.find(' ') == absl::string_view::npos ||
      !absl::SimpleAtoi(rest.substr(rest.find(' ') + 1, 3), &status)) {
    return finish(false, response.empty() ? std::string("connection closed without a response")
                                          : absl::StrCat("malformed response: ", status_line));
  }
  int min = probe.status_min() > 0 ? probe.status_min() : 200;
  int max = probe.status_max() > 0 ? probe.status_max() : std::max(399, min);
  return finish(status >= min && status <= max, status_line);
}

v1::ProbeResult ProbeExec(RuntimeDriver& driver, std::string_view task_id,
                          const v1::ExecProbe& probe, absl::Duration timeout, bool* inconclusive) {
  absl::Time start = absl::Now();
  auto finish = [&](bool ok, std::string_view output) { return ProbeOutcome(start, ok, output); };
  if (probe.command().empty()) return finish(false, "exec.command: must not be empty");
  std::vector<std::string> argv(probe.command().begin(), probe.command().end());
  absl::StatusOr<ExecResult> exec = driver.Exec(task_id, argv, timeout);
  if (!exec.ok()) {
    // The worker could not run the check (no descriptors, fork failed, runtime not answering).
    if (inconclusive) {
      *inconclusive = absl::IsInternal(exec.status()) || absl::IsUnavailable(exec.status()) ||
                      absl::IsResourceExhausted(exec.status());
    }
    return finish(false, exec.status().ToString());
  }
  if (exec->timed_out) {
    return finish(false, absl::StrCat("timed out after ", absl::FormatDuration(timeout)));
  }
  std::string output = absl::StrCat("exit code ", exec->exit_code);
  if (!exec->output.empty()) {
    absl::StrAppend(&output, ": ", absl::StripTrailingAsciiWhitespace(AV(exec->output)));
  }
  return finish(exec->exit_code == 0, output);
}

HealthProber::HealthProber(Clock& clock, RuntimeDriver& driver, Listener on_change)
    : HealthProber(clock, driver, std::move(on_change), Options()) {}

HealthProber::HealthProber(Clock& clock, RuntimeDriver& driver, Listener on_change, Options options)
    : clock_(clock), driver_(driver), on_change_(std::move(on_change)), options_(options) {
  int n = std::max(1, options_.threads);
  for (int i = 0; i < n; ++i) threads_.emplace_back([this] { Run(); });
}

HealthProber::~HealthProber() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    cv_.SignalAll();
  }
  for (std::thread& t : threads_) t.join();
}

void HealthProber::Watch(const std::string& task_id, const std::string& address, int port,
                         const v1::HealthCheck& check, absl::Time started_at) {
  Add(task_id, address, port, check, std::make_unique<HealthTracker>(check, started_at));
}

void HealthProber::Resume(const std::string& task_id, const std::string& address, int port,
                          const v1::HealthCheck& check, absl::Time started_at,
                          const v1::TaskHealth& resume) {
  Add(task_id, address, port, check, std::make_unique<HealthTracker>(check, started_at, resume),
      /*report_first=*/true);
}

void HealthProber::Add(const std::string& task_id, const std::string& address, int port,
                       const v1::HealthCheck& check, std::unique_ptr<HealthTracker> tracker,
                       bool report_first) {
  if (check.probe_case() == v1::HealthCheck::PROBE_NOT_SET) {
    Unwatch(task_id);
    return;
  }
  auto w = std::make_unique<Watched>();
  w->task_id = task_id;
  w->address = address;
  w->port = port;
  w->check = check;
  w->tracker = std::move(tracker);
  w->report_next = report_first;
  absl::MutexLock lock(&mu_);
  w->generation = next_generation_++;
  queue_.push(Due{w->tracker->NextProbeAt(), w->generation, task_id});
  watched_[task_id] = std::move(w);
  cv_.SignalAll();
}

void HealthProber::Unwatch(std::string_view task_id) {
  absl::MutexLock lock(&mu_);
  // Its queue entry goes stale (generation mismatch) and is dropped when it comes due.
  if (auto it = watched_.find(task_id); it != watched_.end()) watched_.erase(it);
}

std::optional<v1::TaskHealth> HealthProber::Get(std::string_view task_id) const {
  absl::MutexLock lock(&mu_);
  auto it = watched_.find(task_id);
  if (it == watched_.end()) return std::nullopt;
  return it->second->tracker->health();
}

uint64_t HealthProber::InconclusiveProbes() const {
  absl::MutexLock lock(&mu_);
  return inconclusive_probes_;
}

size_t HealthProber::WatchedCount() const {
  absl::MutexLock lock(&mu_);
  return watched_.size();
}

v1::ProbeResult HealthProber::RunProbe(const std::string& task_id, const std::string& address,
                                       int port, const v1::HealthCheck& check,
                                       absl::Duration timeout, bool* inconclusive) {
  switch (check.probe_case()) {
    case v1::HealthCheck::kHttp:
      return ProbeHttp(address, check.http().port() > 0 ? check.http().port() : port, check.http(),
                       timeout, inconclusive);
    case v1::HealthCheck::kTcp:
      return ProbeTcp(address, check.tcp().port() > 0 ? check.tcp().port() : port, timeout,
                      inconclusive);
    case v1::HealthCheck::kExec:
      return ProbeExec(driver_, task_id, check.exec(), timeout, inconclusive);
    case v1::HealthCheck::PROBE_NOT_SET:
      break;
  }
  v1::ProbeResult result;
  result.set_ok(false);
  result.set_output("health check has no probe");
  return result;
}

void HealthProber::Run() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    absl::Time now = clock_.Now();
    if (queue_.empty() || queue_.top().at > now) {
      absl::Duration wait = options_.max_wait;
      if (!queue_.empty()) wait = std::min(wait, queue_.top().at - now);
      cv_.WaitWithTimeout(&mu_, wait);
      continue;
    }
    Due due = queue_.top();
    queue_.pop();
    auto it = watched_.find(due.task_id);
    if (it == watched_.end() || it->second->generation != due.generation) continue;
    // Copies: the watch may be replaced or removed while the probe runs unlocked.
    std::string address = it->second->address;
    int port = it->second->port;
    v1::HealthCheck check = it->second->check;
    absl::Duration timeout = it->second->tracker->params().timeout;
    absl::Time probe_time = now;

    mu_.Unlock();
    bool inconclusive = false;
    v1::ProbeResult result = RunProbe(due.task_id, address, port, check, timeout, &inconclusive);
    ToProto(probe_time, result.mutable_time());
    mu_.Lock();

    it = watched_.find(due.task_id);
    if (it == watched_.end() || it->second->generation != due.generation) continue;
    HealthTracker& tracker = *it->second->tracker;
    if (inconclusive) {
      // Issue 17 D4: out of descriptors, every probe failed and healthy tasks went unhealthy.
      // The task keeps its state; the probe is tried again soon.
      inconclusive_probes_++;
      if (!std::exchange(it->second->warned_inconclusive, true)) {
        spdlog::warn("task {}: health probe could not run ({}); will retry", due.task_id,
                     result.output());
      }
      queue_.push(Due{clock_.Now() + std::min(tracker.params().interval, absl::Seconds(1)),
                      due.generation, due.task_id});
      cv_.SignalAll();
      continue;
    }
    it->second->warned_inconclusive = false;
    const bool report = std::exchange(it->second->report_next, false);
    if (tracker.Record(result, clock_.Now()) || report) {
      v1::TaskHealth health = tracker.health();
      // The next probe is queued only after the listener returns, so calls for one task never
      // overlap or reorder.
      mu_.Unlock();
      if (on_change_) on_change_(due.task_id, health);
      mu_.Lock();
      it = watched_.find(due.task_id);
      if (it == watched_.end() || it->second->generation != due.generation) continue;
    }
    queue_.push(Due{it->second->tracker->NextProbeAt(), due.generation, due.task_id});
    cv_.SignalAll();
  }
}

}  // namespace warren
