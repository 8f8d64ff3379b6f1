#ifndef WARREN_WORKER_CRI_DRIVER_H_
#define WARREN_WORKER_CRI_DRIVER_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "cri/v1/api.grpc.pb.h"
#include "worker/log_files.h"
#include "worker/registry_auth.h"
#include "worker/runtime_driver.h"

namespace warren {

// Labels Warren puts on every pod sandbox and container it creates.
inline constexpr char kCriWorkerLabel[] = "io.warren.worker";
inline constexpr char kCriTaskLabel[] = "io.warren.task-id";
inline constexpr char kCriServiceLabel[] = "io.warren.service";
inline constexpr char kCriRevisionLabel[] = "io.warren.revision";

// Runs each task as one container in a pod sandbox of its own, through the Kubernetes CRI v1
// API of a container runtime (containerd). The sandbox's CNI address is the task's address.
// Sandboxes and containers carry the worker's identity as a label, which is how a restarted
// worker finds (adopts) them again.
// Rotates a container's log once it reached limits.max_size: the files shift (log_files.h)
// and `reopen` has the runtime open a new file (CRI ReopenContainerLog); until it does, the
// runtime writes on into the renamed file. A log file that is missing (a reopen that failed)
// is reopened again. Returns true when it rotated.
bool RotateContainerLog(const std::string& path, const LogLimits& limits,
                        const std::function<absl::Status()>& reopen);

class CriDriver : public RuntimeDriver {
 public:
  struct Options {
    // "unix:///run/containerd/containerd.sock" or a bare path.
    std::string socket = "/run/containerd/containerd.sock";
    // The label value that marks this worker's pods (the node name).
    std::string identity;
    // Pod log directories: <state_dir>/<task id>/container.log.
    std::string state_dir;
    // The CNI network the pods must join; WaitUntilReady waits until the runtime loaded it.
    std::string cni_network;
    // resolv.conf of the pods: this server and search domains; empty: the runtime's default
    // (the host's resolv.conf).
    std::string dns_server;
    // A routed node network: writes the pods' CNI network on the node's subnet and returns
    // the pods' gateway (UseNodeSubnet); no pod starts before. Unset: the network was written
    // before Connect (network local).
    std::function<absl::StatusOr<std::string>(const std::string& subnet)> pod_network;
    // With pod_network: serve the pods DNS on their gateway (dns_server is then ignored).
    bool dns_on_gateway = false;
    std::vector<std::string> dns_searches;
    // Credentials sent with PullImage for the registries they name.
    RegistryAuth auth;
    // CRI pod namespace (metadata only; not a Linux namespace).
    std::string pod_namespace = "warren";
    absl::Duration call_timeout = absl::Seconds(30);
    absl::Duration pull_timeout = absl::Minutes(10);
    // How often the monitor lists containers to notice exits.
    absl::Duration poll_interval = absl::Milliseconds(250);
    // How often a running image pull refreshes its progress message.
    absl::Duration pull_progress_interval = absl::Seconds(2);
    size_t exec_output_limit = 4096;
    // The runtime writes container.log and never rotates it (containerd 1.6): the monitor
    // rotates it past this size and has the runtime reopen it.
    LogLimits log_limits;
  };

  // Dials the runtime and checks it speaks CRI v1. FAILED_PRECONDITION / UNAVAILABLE with the
  // socket in the message when it cannot be reached.
  static absl::StatusOr<std::unique_ptr<CriDriver>> Connect(Options options,
                                                            Clock& clock = RealClock::Get());
  ~CriDriver() override;

  CriDriver(const CriDriver&) = delete;
  CriDriver& operator=(const CriDriver&) = delete;

  // "containerd 1.6.20~ds1 (CRI v1)".
  std::string RuntimeVersion() const { return runtime_version_; }

  // Waits (up to `timeout`) until the runtime reports its network ready (a CNI config loaded),
  // then makes sure the runtime's sandbox image is present, pulling it if needed.
  absl::Status WaitUntilReady(absl::Duration timeout);

  std::string Name() const override { return "cri"; }
  void SetListener(Listener listener) override;
  // Adopts this worker's sandboxes and containers; removes sandboxes without a container and
  // containers without a sandbox (left by a worker that died half-way through a start).
  absl::StatusOr<std::vector<std::string>> Recover() override;
  // Pulls the image if it is missing, runs the sandbox, creates and starts the container.
  // Anything created is removed again when a later step fails.
  absl::Status Start(const TaskRunSpec& spec) override;
  // StopContainer with the timeout (seconds, rounded up), then StopPodSandbox, which releases
  // the address.
  absl::Status Stop(std::string_view task_id, absl::Duration timeout) override;
  void Remove(std::string_view task_id) override;
  std::optional<TaskRuntimeState> Inspect(std::string_view task_id) const override;
  std::vector<std::string> List() const override;
  // CRI ExecSync. A single argv element with shell syntax (pipes, quotes, variables...) runs
  // through /bin/sh -c in the container; plain words are split and run directly, so images
  // without a shell can have exec health checks.
  absl::StatusOr<ExecResult> Exec(std::string_view task_id, const std::vector<std::string>& argv,
                                  absl::Duration timeout) override;
  std::string LogPath(std::string_view task_id) const override;
  bool AssignsAddresses() const override { return true; }
  std::string TaskDnsServer() const override;
  // With Options::pod_network: writes the network for `subnet` and waits until the runtime
  // loaded it (WaitUntilReady). Again with the same subnet: nothing to do.
  absl::Status UseNodeSubnet(const std::string& subnet) override;
  bool CriLogFormat() const override { return true; }

 private:
  struct Task {
    std::string id;
    std::string sandbox_id;
    std::string container_id;
    std::string image;
    // The container's log file as the runtime has it (adopted pods may predate the state dir).
    std::string log_path;
    absl::Time pull_started = absl::InfinitePast();
    absl::Time last_progress = absl::InfinitePast();
    TaskRuntimeState state;
  };

  CriDriver(Options options, Clock& clock, std::shared_ptr<grpc::Channel> channel);

  grpc::ClientContext* Prepare(grpc::ClientContext* ctx, absl::Duration timeout) const;
  // `policy`: "always", "missing" or "never" (ResolvePullPolicy).
  absl::Status EnsureImage(const std::string& task_id, const std::string& image,
                           const std::string& policy = "missing");
  void RemovePod(const std::string& sandbox_id, const std::string& container_id);
  // StopPodSandbox; a sandbox already gone is OK.
  grpc::Status StopSandbox(const std::string& sandbox_id);
  std::optional<TaskRuntimeState> ExitedState(const std::string& container_id);
  // Rotates the logs of running containers (container id -> task id) that reached the cap.
  void RotateLogs(const std::map<std::string, std::string>& running);
  void MonitorLoop();
  void Notify(const std::string& task_id, const TaskRuntimeState& state);

  const Options options_;
  Clock& clock_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<runtime::v1::RuntimeService::Stub> runtime_;
  std::unique_ptr<runtime::v1::ImageService::Stub> images_;
  std::string runtime_version_;

  mutable absl::Mutex mu_;
  std::map<std::string, Task, std::less<>> tasks_ ABSL_GUARDED_BY(mu_);
  // The pods' network is ready (always, without Options::pod_network) and their DNS server.
  bool network_ready_ ABSL_GUARDED_BY(mu_) = false;
  std::string pod_subnet_ ABSL_GUARDED_BY(mu_);
  std::string dns_server_ ABSL_GUARDED_BY(mu_);
  Listener listener_ ABSL_GUARDED_BY(mu_);
  // One pull per image at a time; later starts wait for it and find the image present.
  absl::Mutex pull_mu_;
  std::map<std::string, std::shared_ptr<absl::Mutex>> pulls_ ABSL_GUARDED_BY(pull_mu_);
  // Last successful pull per image: tasks started together under "always" share one pull.
  std::map<std::string, absl::Time> pulled_at_ ABSL_GUARDED_BY(pull_mu_);

  std::atomic<bool> stop_{false};
  absl::Mutex stop_mu_;
  std::thread monitor_;
};

// The pull policy in force: the template's, else "always" for an untagged or ":latest"
// reference and "missing" for any other tag or a digest.
std::string ResolvePullPolicy(const std::string& image, const std::string& policy);

// A CRI PullImage error turned into what a user can act on: the image is missing from its
// registry, the registry cannot be reached, or the runtime's own message.
std::string DescribePullError(const std::string& image, const grpc::Status& status);

}  // namespace warren

#endif  // WARREN_WORKER_CRI_DRIVER_H_
