#include "cli/rollout_follow.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cli/output.h"
#include "common/enum_names.h"
#include "common/spec.h"

namespace warren {
namespace {

volatile std::sig_atomic_t g_interrupted = 0;

void OnSigint(int) { g_interrupted = 1; }

// Catches Ctrl-C for the life of a follow, then puts the previous handler back.
class SigintGuard {
 public:
  explicit SigintGuard(bool active) : active_(active) {
    if (!active_) return;
    g_interrupted = 0;
    struct sigaction sa {};
    sa.sa_handler = OnSigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &previous_);
  }
  ~SigintGuard() {
    if (active_) sigaction(SIGINT, &previous_, nullptr);
  }

 private:
  bool active_;
  struct sigaction previous_ {};
};

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

absl::Duration ToDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// The service's events, read on a thread of their own (the stream blocks) and handed to the
// follow loop, which prints them between progress lines.
class EventTail {
 public:
  EventTail(v1::Control::Stub& stub, const std::string& service, absl::Time since) : since_(since) {
    v1::WatchEventsRequest req;
    req.set_service(service);
    reader_ = stub.WatchEvents(&call_, req);
    thread_ = std::thread([this] { Run(); });
  }
  ~EventTail() { Stop(absl::ZeroDuration()); }

  std::vector<v1::Event> Take() {
    absl::MutexLock lock(&mu_);
    return std::exchange(queue_, {});
  }

  // Waits until the stream ends or has been quiet for `grace`, then closes it.
  void Stop(absl::Duration grace) {
    if (!thread_.joinable()) return;
    {
      absl::MutexLock lock(&mu_);
      while (!done_) {
        uint64_t seen = received_;
        auto changed = [this, seen] { return done_ || received_ != seen; };
        if (!mu_.AwaitWithTimeout(absl::Condition(&changed), grace)) break;
      }
    }
    call_.TryCancel();
    thread_.join();
  }

  // The stream's error, if it failed for a reason other than being closed by Stop.
  std::string Error() {
    absl::MutexLock lock(&mu_);
    return error_;
  }

 private:
  void Run() {
    v1::Event e;
    while (reader_->Read(&e)) {
      absl::MutexLock lock(&mu_);
      ++received_;
      if (e.has_time() && ToTime(e.time()) < since_) continue;
      queue_.push_back(e);
    }
    grpc::Status s = reader_->Finish();
    absl::MutexLock lock(&mu_);
    if (!s.ok() && s.error_code() != grpc::StatusCode::CANCELLED) error_ = s.error_message();
    done_ = true;
  }

  const absl::Time since_;
  grpc::ClientContext call_;
  std::unique_ptr<grpc::ClientReader<v1::Event>> reader_;
  std::thread thread_;
  absl::Mutex mu_;
  std::vector<v1::Event> queue_;
  uint64_t received_ = 0;
  bool done_ = false;
  std::string error_;
};

// Keeps event lines and the progress line apart: on a terminal the progress line is redrawn
// in place under the events; elsewhere it is printed only when it changes.
class Printer {
 public:
  Printer(std::ostream& out, bool tty) : out_(out), tty_(tty) {}

  void Line(const std::string& line) {
    if (tty_ && drawn_) out_ << "\r\033[K";
    out_ << line;
    if (line.empty() || line.back() != '\n') out_ << "\n";
    if (tty_ && drawn_) out_ << progress_;
    out_.flush();
  }

  void Progress(const std::string& line) {
    if (line == progress_ && drawn_) return;
    progress_ = line;
    if (tty_) {
      out_ << "\r\033[K" << line;
    } else {
      out_ << line << "\n";
    }
    drawn_ = true;
    out_.flush();
  }

  // Ends the progress line so what follows starts on a line of its own.
  void Close() {
    if (tty_ && drawn_) out_ << "\n";
    drawn_ = false;
    out_.flush();
  }

 private:
  std::ostream& out_;
  bool tty_;
  bool drawn_ = false;
  std::string progress_;
};

bool Transient(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE ||
         s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

}  // namespace

absl::Duration RolloutQuietLimit(const std::string& strategy, const v1::UpdateConfig& config) {
  absl::Duration limit =
      config.has_progress_deadline() ? ToDuration(config.progress_deadline()) : absl::Minutes(10);
  if (strategy == "canary") {
    limit = std::max(limit, ToDuration(config.canary_window()));
  } else if (strategy == "blue-green") {
    // After the switch, blue is kept (and the new revision watched) with nothing to show.
    limit = std::max(
        limit, std::max(ToDuration(config.scale_down_delay()), ToDuration(config.canary_window())));
  }
  return limit;
}

FollowEnv FollowEnv::Real() {
  FollowEnv env;
  env.now = [] { return absl::Now(); };
  env.sleep = [](absl::Duration d) { absl::SleepFor(d); };
  env.interrupted = [] { return g_interrupted != 0; };
  env.catch_sigint = true;
  env.tty = isatty(STDOUT_FILENO) == 1;
  return env;
}

int FollowRollout(v1::Control::Stub& stub, const FollowRequest& req, const FollowEnv& env,
                  std::ostream& out, std::ostream& err) {
  SigintGuard sigint(env.catch_sigint);
  EventTail events(stub, req.service, req.events_since);
  Printer printer(out, env.tty);
  auto print_events = [&] {
    for (const v1::Event& e : events.Take()) printer.Line(RenderEvent(e, OutputFormat::kTable));
  };
  const std::string status_hint =
      absl::StrCat("`warren service rollout status ", req.service, " --watch`");

  absl::Duration bound = req.progress_deadline + env.deadline_margin;
  absl::Time last_change = env.now();
  std::string last_state;
  bool said_waiting = false;
  bool said_unreachable = false;
  while (true) {
    print_events();
    if (env.interrupted && env.interrupted()) {
      printer.Close();
      out << "stopped following; the rollout goes on (follow it again with " << status_hint
          << ")\n";
      return 130;
    }
    grpc::ClientContext call;
    call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    v1::RolloutRequest rreq;
    rreq.set_name_or_id(req.service);
    v1::Deployment d;
    grpc::Status s = stub.GetRollout(&call, rreq, &d);
    const bool flipped_back = req.rollback && (d.phase() == v1::DEPLOYMENT_PHASE_ROLLING_BACK ||
                                               d.phase() == v1::DEPLOYMENT_PHASE_ROLLED_BACK);
    bool ours = s.ok() && (req.previous_deployment_id.empty() ||
                           d.id() != req.previous_deployment_id || flipped_back);
    if (ours) {
      said_unreachable = false;
      if (d.config().has_progress_deadline()) {
        bound = RolloutQuietLimit(DisplayName(d.strategy()), d.config()) + env.deadline_margin;
      }
      std::string state =
          absl::StrCat(d.id(), "/", d.phase(), "/", d.updated(), "/", d.available(), "/", d.total(),
                       "/", d.batch(), "/", d.step(), "/", d.weight(), "/", d.switched());
      if (state != last_state) {
        last_state = state;
        last_change = env.now();
      }
      printer.Progress(RenderProgress(d));
      RolloutOutcome outcome = OutcomeOf(d, env.now(), req.until_end);
      if (outcome.done) {
        events.Stop(env.event_grace);
        print_events();
        printer.Close();
        if (std::string e = events.Error(); !e.empty()) {
          err << "warning: the event stream failed: " << e << "\n";
        }
        out << outcome.message << "\n";
        return outcome.exit_code;
      }
    } else if (s.ok() || s.error_code() == grpc::StatusCode::NOT_FOUND) {
      // The controller has not started the new deployment yet.
      if (!said_waiting) {
        printer.Line("waiting for the rollout to start");
        said_waiting = true;
      }
    } else if (Transient(s)) {
      if (!said_unreachable) {
        printer.Close();
        err << "warning: cannot reach the manager (" << s.error_message() << "); retrying\n";
        said_unreachable = true;
      }
    } else {
      printer.Close();
      err << "error: " << s.error_message() << "\n";
      return 1;
    }
    if (env.now() - last_change > bound) {
      printer.Close();
      err << "error: no progress for "
          << warren::FormatDuration(absl::Trunc(bound, absl::Seconds(1)))
          << " (progress deadline plus margin); stopped following. The rollout goes on: see "
          << status_hint << "\n";
      return 1;
    }
    env.sleep(env.poll_interval);
  }
}

}  // namespace warren
