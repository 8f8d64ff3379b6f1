#include "worker/cri_driver.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace warren {
namespace {

// Where a container finds its secrets (files named by their target).
constexpr char kContainerSecretsDir[] = "/run/secrets";

namespace cri = runtime::v1;

constexpr char kLogFile[] = "container.log";
// A one-string exec command with any of these needs a shell to mean what it says.
constexpr char kShellChars[] = "|&;<>()$`\\\"'*?[]#~=%{}\n\t";

absl::Status FromGrpc(const grpc::Status& s, std::string_view what) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(std::string(what), ": ", s.error_message()));
}

absl::Time FromNanos(int64_t ns) { return ns > 0 ? absl::FromUnixNanos(ns) : absl::InfinitePast(); }

// Seconds for CRI's integer timeouts: rounded up, so a 500ms stop timeout is not "kill now".
int64_t CeilSeconds(absl::Duration d) {
  if (d <= absl::ZeroDuration()) return 0;
  return static_cast<int64_t>(std::ceil(absl::ToDoubleSeconds(d)));
}

bool NotFound(const grpc::Status& s) { return s.error_code() == grpc::StatusCode::NOT_FOUND; }

// Sandbox names must be unique per namespace and DNS-label-like.
std::string PodName(const TaskRunSpec& spec) {
  std::string name = absl::StrCat(spec.service_name, "-", spec.task_id.substr(0, 12));
  if (name.size() > 63) name.resize(63);
  return name;
}

}  // namespace

std::string DescribePullError(const std::string& image, const grpc::Status& status) {
  const std::string& m = status.error_message();
  const std::string lower = absl::AsciiStrToLower(m);
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::StrCat("image ", image, ": pull did not finish in time (", m, ")");
  }
  if (absl::StrContains(m, "connection refused") || absl::StrContains(m, "no such host") ||
      absl::StrContains(m, "i/o timeout") || absl::StrContains(m, "network is unreachable") ||
      absl::StrContains(m, "dial tcp")) {
    return absl::StrCat("image ", image, ": registry unreachable (", m, ")");
  }
  if (absl::StrContains(m, "not found") || absl::StrContains(m, "manifest unknown")) {
    return absl::StrCat("image ", image, ": not found in its registry (", m, ")");
  }
  if (absl::StrContains(lower, "unauthorized") || absl::StrContains(lower, "forbidden") ||
      absl::StrContains(lower, "authorization")) {
    return absl::StrCat("image ", image, ": the registry refused access (", m, ")");
  }
  return absl::StrCat("image ", image, ": pull failed (", m, ")");
}

absl::StatusOr<std::unique_ptr<CriDriver>> CriDriver::Connect(Options options, Clock& clock) {
  std::string target = options.socket;
  if (!absl::StartsWith(target, "unix:")) target = absl::StrCat("unix://", target);
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  std::unique_ptr<CriDriver> d(new CriDriver(std::move(options), clock, channel));
  cri::VersionRequest req;
  req.set_version("v1");
  cri::VersionResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = d->runtime_->Version(d->Prepare(&ctx, absl::Seconds(5)), req, &resp);
  if (!s.ok()) {
    if (s.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cri-socket ", d->options_.socket,
          ": the runtime does not serve the CRI v1 API (containerd needs its cri plugin "
          "enabled): ",
          s.error_message()));
    }
    return absl::UnavailableError(absl::StrCat("cri-socket ", d->options_.socket,
                                               ": cannot reach the CRI runtime (is containerd "
                                               "running?): ",
                                               s.error_message()));
  }
  if (resp.runtime_api_version() != "v1") {
    return absl::FailedPreconditionError(
        absl::StrCat("cri-socket ", d->options_.socket, ": the runtime speaks CRI ",
                     resp.runtime_api_version(), "; Warren needs v1"));
  }
  d->runtime_version_ = absl::StrCat(resp.runtime_name(), " ", resp.runtime_version(), " (CRI ",
                                     resp.runtime_api_version(), ")");
  d->monitor_ = std::thread([p = d.get()] { p->MonitorLoop(); });
  return d;
}

CriDriver::CriDriver(Options options, Clock& clock, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      clock_(clock),
      channel_(std::move(channel)),
      runtime_(cri::RuntimeService::NewStub(channel_)),
      images_(cri::ImageService::NewStub(channel_)) {
  absl::MutexLock lock(&mu_);
  network_ready_ = !options_.pod_network;
  if (!options_.pod_network) dns_server_ = options_.dns_server;
}

std::string CriDriver::TaskDnsServer() const {
  absl::MutexLock lock(&mu_);
  return dns_server_;
}

absl::Status CriDriver::UseNodeSubnet(const std::string& subnet) {
  if (!options_.pod_network) return absl::OkStatus();
  {
    absl::MutexLock lock(&mu_);
    if (network_ready_ && pod_subnet_ == subnet) return absl::OkStatus();
  }
  absl::StatusOr<std::string> gateway = options_.pod_network(subnet);
  if (!gateway.ok()) return gateway.status();
  // The runtime reloads the config a moment after it changed; pods started before would join
  // no network (or the one of another subnet).
  if (absl::Status s = WaitUntilReady(absl::Seconds(30)); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  pod_subnet_ = subnet;
  network_ready_ = true;
  dns_server_ = options_.dns_on_gateway ? *gateway : "";
  return absl::OkStatus();
}

CriDriver::~CriDriver() {
  stop_ = true;
  if (monitor_.joinable()) monitor_.join();
}

grpc::ClientContext* CriDriver::Prepare(grpc::ClientContext* ctx, absl::Duration timeout) const {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(absl::ToInt64Milliseconds(timeout)));
  return ctx;
}

absl::Status CriDriver::WaitUntilReady(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string why;
  nlohmann::json config;
  while (true) {
    cri::StatusRequest req;
    req.set_verbose(true);
    cri::StatusResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = runtime_->Status(Prepare(&ctx, absl::Seconds(5)), req, &resp);
    if (!s.ok()) return FromGrpc(s, "CRI runtime status");
    bool runtime_ready = false, network_ready = false;
    for (const auto& c : resp.status().conditions()) {
      if (c.type() == "RuntimeReady") runtime_ready = c.status();
      if (c.type() == "NetworkReady") {
        network_ready = c.status();
        if (!c.status()) why = absl::StrCat(c.reason(), ": ", c.message());
      }
    }
    if (!runtime_ready) why = "the runtime reports itself not ready";
    if (runtime_ready && network_ready && !options_.cni_network.empty()) {
      // The runtime reloads CNI configs a moment after they change: wait until it uses ours,
      // or pods would come up on another network.
      std::vector<std::string> names;
      std::string conf_dir = "?";
      auto it = resp.info().find("cniconfig");
      if (it != resp.info().end()) {
        auto j = nlohmann::json::parse(it->second, nullptr, false);
        if (j.is_object()) {
          conf_dir = j.value("PluginConfDir", "?");
          for (const auto& n : j.value("Networks", nlohmann::json::array())) {
            if (n.contains("Config") && n["Config"].is_object()) {
              names.push_back(n["Config"].value("Name", ""));
            }
          }
        }
      }
      if (std::find(names.begin(), names.end(), options_.cni_network) == names.end()) {
        network_ready = false;
        why = absl::StrCat("it loaded CNI networks [", absl::StrJoin(names, ", "), "] from ",
                           conf_dir, ", not ", options_.cni_network,
                           " (does another config sort first there?)");
      }
    }
    if (runtime_ready && network_ready) {
      auto it = resp.info().find("config");
      if (it != resp.info().end()) config = nlohmann::json::parse(it->second, nullptr, false);
      break;
    }
    if (absl::Now() >= deadline) {
      return absl::FailedPreconditionError(
          absl::StrCat("the CRI runtime is not ready (", why,
                       "); it must load CNI configs from the directory given as --cni-conf-dir"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  // The runtime pulls its sandbox image on the first RunPodSandbox; doing it now turns a
  // missing image into an error at start rather than a slow first task.
  if (config.is_object() && config.contains("sandboxImage") && config["sandboxImage"].is_string()) {
    const std::string image = config["sandboxImage"];
    if (absl::Status s = EnsureImage("", image); !s.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("sandbox image (the runtime's sandbox_image): ", s.message()));
    }
  }
  return absl::OkStatus();
}

void CriDriver::SetListener(Listener listener) {
  absl::MutexLock lock(&mu_);
  listener_ = std::move(listener);
}

void CriDriver::Notify(const std::string& task_id, const TaskRuntimeState& state) {
  Listener l;
  {
    absl::MutexLock lock(&mu_);
    l = listener_;
  }
  if (l) l(task_id, state);
}

std::string ResolvePullPolicy(const std::string& image, const std::string& policy) {
  if (!policy.empty()) return policy;
  if (image.find('@') != std::string::npos) return "missing";  // a digest never changes
  // The tag is after the last ':' that follows the last '/' (a registry port is not a tag).
  const size_t slash = image.rfind('/');
  const size_t colon = image.rfind(':');
  const bool tagged = colon != std::string::npos && (slash == std::string::npos || colon > slash);
  if (!tagged || image.substr(colon + 1) == "latest") return "always";
  return "missing";
}

absl::Status CriDriver::EnsureImage(const std::string& task_id, const std::string& image,
                                    const std::string& policy) {
  std::shared_ptr<absl::Mutex> m;
  {
    absl::MutexLock lock(&pull_mu_);
    auto& slot = pulls_[image];
    if (!slot) slot = std::make_shared<absl::Mutex>();
    m = slot;
  }
  absl::MutexLock pull_lock(m.get());
  cri::ImageStatusRequest sreq;
  sreq.mutable_image()->set_image(image);
  cri::ImageStatusResponse sresp;
  grpc::ClientContext sctx;
  grpc::Status s = images_->ImageStatus(Prepare(&sctx, options_.call_timeout), sreq, &sresp);
  if (!s.ok()) return FromGrpc(s, absl::StrCat("image ", image, ": status"));
  if (sresp.has_image() && policy != "always") return absl::OkStatus();
  if (sresp.has_image()) {
    absl::MutexLock lock(&pull_mu_);
    auto it = pulled_at_.find(image);
    if (it != pulled_at_.end() && clock_.Now() - it->second < absl::Seconds(10)) {
      return absl::OkStatus();
    }
  }
  if (!sresp.has_image() && policy == "never") {
    return absl::FailedPreconditionError(absl::StrCat(
        "image ", image, ": not on this node, and its pull policy is never (pull it first)"));
  }

  const absl::Time started = clock_.Now();
  if (!task_id.empty()) {
    TaskRuntimeState st;
    {
      absl::MutexLock lock(&mu_);
      auto it = tasks_.find(task_id);
      if (it != tasks_.end()) {
        it->second.pull_started = started;
        it->second.last_progress = started;
        it->second.state.message = absl::StrCat("pulling image ", image);
        st = it->second.state;
      }
    }
    Notify(task_id, st);
  }
  spdlog::info("pulling image {}", image);
  cri::PullImageRequest preq;
  preq.mutable_image()->set_image(image);
  if (auto creds = options_.auth.For(image)) {
    auto* auth = preq.mutable_auth();
    auth->set_username(creds->username);
    auth->set_password(creds->password);
    auth->set_identity_token(creds->identity_token);
    // containerd parses this as a URL and matches its host against the registry's.
    auth->set_server_address("https://" + RegistryAuth::RegistryOf(image));
  }
  cri::PullImageResponse presp;
  grpc::ClientContext pctx;
  s = images_->PullImage(Prepare(&pctx, options_.pull_timeout), preq, &presp);
  {
    absl::MutexLock lock(&mu_);
    auto it = tasks_.find(task_id);
    if (it != tasks_.end()) it->second.pull_started = absl::InfinitePast();
  }
  if (!s.ok()) {
    std::string msg = DescribePullError(image, s);
    spdlog::warn("{}", msg);
    return absl::Status(s.error_code() == grpc::StatusCode::NOT_FOUND
                            ? absl::StatusCode::kNotFound
                            : absl::StatusCode::kFailedPrecondition,
                        msg);
  }
  {
    absl::MutexLock lock(&pull_mu_);
    pulled_at_[image] = clock_.Now();
  }
  spdlog::info("pulled image {} ({}) in {}", image, presp.image_ref(),
               absl::FormatDuration(clock_.Now() - started));
  return absl::OkStatus();
}

absl::Status CriDriver::Start(const TaskRunSpec& spec) {
  const v1::TaskTemplate& t = spec.spec;
  if (spec.task_id.empty()) return absl::InvalidArgumentError("task id: must not be empty");
  if (t.image().empty()) {
    return absl::InvalidArgumentError(
        "template.image: required on the cri runtime (it runs container images)");
  }
  {
    absl::MutexLock lock(&mu_);
    if (!network_ready_) {
      return absl::FailedPreconditionError(
          "the pods' network is not set up yet (it is written once the node registered and got "
          "its subnet)");
    }
    if (tasks_.count(spec.task_id)) {
      return absl::AlreadyExistsError(absl::StrCat("task ", spec.task_id, " already exists"));
    }
    Task& task = tasks_[spec.task_id];
    task.id = spec.task_id;
    task.image = t.image();
    task.state.phase = TaskRuntimeState::Phase::kStarting;
  }
  auto fail = [&](absl::Status s, const std::string& sandbox_id = "",
                  const std::string& container_id = "") {
    if (!sandbox_id.empty()) RemovePod(sandbox_id, container_id);
    absl::MutexLock lock(&mu_);
    auto it = tasks_.find(spec.task_id);
    if (it != tasks_.end()) {
      it->second.sandbox_id.clear();
      it->second.container_id.clear();
      it->second.state.phase = TaskRuntimeState::Phase::kExited;
      it->second.state.error = std::string(s.message());
      it->second.state.message.clear();
      it->second.state.finished_at = clock_.Now();
    }
    return s;
  };

  if (absl::Status s =
          EnsureImage(spec.task_id, t.image(), ResolvePullPolicy(t.image(), t.image_pull_policy()));
      !s.ok()) {
    return fail(s);
  }

  const std::string log_dir = (std::filesystem::path(options_.state_dir) / spec.task_id).string();
  std::error_code ec;
  std::filesystem::create_directories(options_.state_dir, ec);
  // Only the worker (and the runtime, as root) reads a task's logs.
  if (mkdir(log_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return fail(absl::FailedPreconditionError(
        absl::StrCat("cannot create log directory ", log_dir, ": ", strerror(errno))));
  }

  std::map<std::string, std::string> labels(t.labels().begin(), t.labels().end());
  labels[kCriWorkerLabel] = options_.identity;
  labels[kCriTaskLabel] = spec.task_id;
  labels[kCriServiceLabel] = spec.service_name;
  labels[kCriRevisionLabel] = std::to_string(spec.revision);

  cri::PodSandboxConfig sandbox;
  auto* meta = sandbox.mutable_metadata();
  meta->set_name(PodName(spec));
  meta->set_uid(spec.task_id);
  meta->set_namespace_(options_.pod_namespace);
  meta->set_attempt(0);
  sandbox.set_hostname(PodName(spec));
  sandbox.set_log_directory(log_dir);
  if (const std::string dns_server = TaskDnsServer(); !dns_server.empty()) {
    auto* dns = sandbox.mutable_dns_config();
    dns->add_servers(dns_server);
    for (const auto& d : options_.dns_searches) dns->add_searches(d);
  }
  for (const auto& p : t.ports()) {
    auto* pm = sandbox.add_port_mappings();
    pm->set_protocol(cri::TCP);
    pm->set_container_port(p.target());
  }
  for (const auto& [k, v] : labels) (*sandbox.mutable_labels())[k] = v;
  auto* ns = sandbox.mutable_linux()->mutable_security_context()->mutable_namespace_options();
  ns->set_network(cri::POD);
  ns->set_pid(cri::CONTAINER);
  ns->set_ipc(cri::POD);

  cri::RunPodSandboxRequest rreq;
  *rreq.mutable_config() = sandbox;
  cri::RunPodSandboxResponse rresp;
  grpc::ClientContext rctx;
  grpc::Status s = runtime_->RunPodSandbox(Prepare(&rctx, options_.call_timeout), rreq, &rresp);
  if (!s.ok()) return fail(FromGrpc(s, "creating the pod sandbox"));
  const std::string sandbox_id = rresp.pod_sandbox_id();
  {
    absl::MutexLock lock(&mu_);
    auto it = tasks_.find(spec.task_id);
    if (it != tasks_.end()) it->second.sandbox_id = sandbox_id;
  }

  cri::PodSandboxStatusRequest psreq;
  psreq.set_pod_sandbox_id(sandbox_id);
  cri::PodSandboxStatusResponse psresp;
  grpc::ClientContext psctx;
  s = runtime_->PodSandboxStatus(Prepare(&psctx, options_.call_timeout), psreq, &psresp);
  if (!s.ok()) return fail(FromGrpc(s, "pod sandbox status"), sandbox_id);
  const std::string ip = psresp.status().network().ip();
  if (ip.empty()) {
    return fail(absl::FailedPreconditionError(
                    "the pod sandbox has no IP address (is the CNI network configured?)"),
                sandbox_id);
  }

  cri::ContainerConfig c;
  c.mutable_metadata()->set_name(spec.service_name.empty() ? "task" : spec.service_name);
  c.mutable_metadata()->set_attempt(0);
  c.mutable_image()->set_image(t.image());
  if (!t.command().empty()) c.add_command(t.command());
  for (const auto& a : t.args()) c.add_args(a);
  std::map<std::string, std::string> env = spec.env;
  env["WARREN_TASK_IP"] = ip;
  if (!spec.secrets_dir.empty()) {
    // The host's tmpfs directory, read-only: the container sees the files, never a disk.
    cri::Mount* m = c.add_mounts();
    m->set_container_path(kContainerSecretsDir);
    m->set_host_path(spec.secrets_dir);
    m->set_readonly(true);
    env["WARREN_SECRETS_DIR"] = kContainerSecretsDir;
  }
  for (const auto& [k, v] : env) {
    auto* kv = c.add_envs();
    kv->set_key(k);
    kv->set_value(v);
  }
  for (const auto& [k, v] : labels) (*c.mutable_labels())[k] = v;
  c.set_log_path(kLogFile);
  auto* res = c.mutable_linux()->mutable_resources();
  constexpr int64_t kCpuPeriod = 100000;  // microseconds, the kernel's default CFS period
  if (t.resources().cpus() > 0) {
    res->set_cpu_period(kCpuPeriod);
    res->set_cpu_quota(std::max<int64_t>(1000, std::llround(t.resources().cpus() * kCpuPeriod)));
    res->set_cpu_shares(std::max<int64_t>(2, std::llround(t.resources().cpus() * 1024)));
  }
  if (t.resources().memory_bytes() > 0) {
    res->set_memory_limit_in_bytes(t.resources().memory_bytes());
  }

  cri::CreateContainerRequest creq;
  creq.set_pod_sandbox_id(sandbox_id);
  *creq.mutable_config() = c;
  *creq.mutable_sandbox_config() = sandbox;
  cri::CreateContainerResponse cresp;
  grpc::ClientContext cctx;
  s = runtime_->CreateContainer(Prepare(&cctx, options_.call_timeout), creq, &cresp);
  if (!s.ok()) return fail(FromGrpc(s, "creating the container"), sandbox_id);
  const std::string container_id = cresp.container_id();
  {
    absl::MutexLock lock(&mu_);
    auto it = tasks_.find(spec.task_id);
    if (it != tasks_.end()) it->second.container_id = container_id;
  }

  cri::StartContainerRequest sreq;
  sreq.set_container_id(container_id);
  cri::StartContainerResponse sresp;
  grpc::ClientContext sctx;
  s = runtime_->StartContainer(Prepare(&sctx, options_.call_timeout), sreq, &sresp);
  if (!s.ok()) return fail(FromGrpc(s, "starting the container"), sandbox_id, container_id);

  // The pid is only in the verbose status (runtime-specific JSON); it is informational.
  int pid = 0;
  cri::ContainerStatusRequest stq;
  stq.set_container_id(container_id);
  stq.set_verbose(true);
  cri::ContainerStatusResponse sts;
  grpc::ClientContext stctx;
  if (runtime_->ContainerStatus(Prepare(&stctx, options_.call_timeout), stq, &sts).ok()) {
    auto it = sts.info().find("info");
    if (it != sts.info().end()) {
      auto j = nlohmann::json::parse(it->second, nullptr, false);
      if (j.is_object() && j.contains("pid") && j["pid"].is_number_integer()) pid = j["pid"];
    }
  }
  {
    absl::MutexLock lock(&mu_);
    auto it = tasks_.find(spec.task_id);
    if (it == tasks_.end()) return absl::OkStatus();
    Task& task = it->second;
    if (task.state.phase == TaskRuntimeState::Phase::kStarting) {
      task.state.phase = TaskRuntimeState::Phase::kRunning;
    }
    task.state.pid = pid;
    task.state.address = ip;
    task.state.message.clear();
    task.state.started_at =
        sts.status().started_at() > 0 ? FromNanos(sts.status().started_at()) : clock_.Now();
  }
  return absl::OkStatus();
}

grpc::Status CriDriver::StopSandbox(const std::string& sandbox_id) {
  cri::StopPodSandboxRequest req;
  req.set_pod_sandbox_id(sandbox_id);
  cri::StopPodSandboxResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = runtime_->StopPodSandbox(Prepare(&ctx, options_.call_timeout), req, &resp);
  return NotFound(s) ? grpc::Status::OK : s;
}

void CriDriver::RemovePod(const std::string& sandbox_id, const std::string& container_id) {
  auto warn = [](const char* what, const std::string& id, const grpc::Status& s) {
    if (!s.ok() && !NotFound(s)) spdlog::warn("{} {}: {}", what, id, s.error_message());
  };
  if (!container_id.empty()) {
    cri::RemoveContainerRequest req;
    req.set_container_id(container_id);
    cri::RemoveContainerResponse resp;
    grpc::ClientContext ctx;
    warn("removing container", container_id,
         runtime_->RemoveContainer(Prepare(&ctx, options_.call_timeout), req, &resp));
  }
  if (sandbox_id.empty()) return;
  // Stopping first tears the network down and releases the address.
  warn("stopping pod sandbox", sandbox_id, StopSandbox(sandbox_id));
  cri::RemovePodSandboxRequest req;
  req.set_pod_sandbox_id(sandbox_id);
  cri::RemovePodSandboxResponse resp;
  grpc::ClientContext ctx;
  warn("removing pod sandbox", sandbox_id,
       runtime_->RemovePodSandbox(Prepare(&ctx, options_.call_timeout), req, &resp));
}

std::optional<TaskRuntimeState> CriDriver::ExitedState(const std::string& container_id) {
  cri::ContainerStatusRequest req;
  req.set_container_id(container_id);
  cri::ContainerStatusResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = runtime_->ContainerStatus(Prepare(&ctx, options_.call_timeout), req, &resp);
  TaskRuntimeState st;
  st.phase = TaskRuntimeState::Phase::kExited;
  if (NotFound(s)) {
    st.error = "the container disappeared from the runtime";
    st.finished_at = clock_.Now();
    return st;
  }
  if (!s.ok()) return std::nullopt;
  const cri::ContainerStatus& cs = resp.status();
  if (cs.state() != cri::CONTAINER_EXITED) return std::nullopt;
  st.has_exit_code = true;
  st.exit_code = cs.exit_code();
  st.started_at = FromNanos(cs.started_at());
  st.finished_at = cs.finished_at() > 0 ? FromNanos(cs.finished_at()) : clock_.Now();
  if (cs.reason() == "OOMKilled") {
    st.error = "killed: out of memory (the memory limit was reached)";
  } else if (cs.exit_code() != 0) {
    st.error = cs.message().empty() ? absl::StrCat(cs.reason()) : cs.message();
    if (st.error == "Error") st.error.clear();
  }
  return st;
}

bool RotateContainerLog(const std::string& path, const LogLimits& limits,
                        const std::function<absl::Status()>& reopen) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) (void)reopen();
    return false;
  }
  if (limits.max_size <= 0 || st.st_size < limits.max_size) return false;
  if (int err = RotateLogFiles(path, limits.max_files); err != 0) {
    spdlog::warn("rotating {}: {}", path, strerror(err));
    return false;
  }
  if (absl::Status s = reopen(); !s.ok()) {
    spdlog::warn("rotating {}: {} (tried again shortly)", path, std::string(s.message()));
  }
  return true;
}

void CriDriver::RotateLogs(const std::map<std::string, std::string>& running) {
  for (const auto& [container_id, task_id] : running) {
    RotateContainerLog(LogPath(task_id), options_.log_limits, [&, cid = container_id] {
      cri::ReopenContainerLogRequest req;
      req.set_container_id(cid);
      cri::ReopenContainerLogResponse resp;
      grpc::ClientContext ctx;
      return FromGrpc(
          runtime_->ReopenContainerLog(Prepare(&ctx, options_.call_timeout), req, &resp),
          "reopening the container log");
    });
  }
}

void CriDriver::MonitorLoop() {
  while (!stop_) {
    std::this_thread::sleep_for(
        std::chrono::milliseconds(absl::ToInt64Milliseconds(options_.poll_interval)));
    if (stop_) break;
    // Progress of image pulls in flight.
    std::vector<std::pair<std::string, TaskRuntimeState>> progress;
    std::map<std::string, std::string> running;  // container id -> task id
    {
      absl::MutexLock lock(&mu_);
      const absl::Time now = clock_.Now();
      for (auto& [id, t] : tasks_) {
        if (t.pull_started != absl::InfinitePast() &&
            now - t.last_progress >= options_.pull_progress_interval) {
          t.last_progress = now;
          t.state.message = absl::StrCat(
              "pulling image ", t.image, " (",
              absl::FormatDuration(absl::Trunc(now - t.pull_started, absl::Seconds(1))), ")");
          progress.emplace_back(id, t.state);
        }
        if (t.state.phase == TaskRuntimeState::Phase::kRunning && !t.container_id.empty()) {
          running[t.container_id] = id;
        }
      }
    }
    for (const auto& [id, st] : progress) Notify(id, st);
    if (running.empty()) continue;
    RotateLogs(running);

    cri::ListContainersRequest req;
    (*req.mutable_filter()->mutable_label_selector())[kCriWorkerLabel] = options_.identity;
    cri::ListContainersResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = runtime_->ListContainers(Prepare(&ctx, options_.call_timeout), req, &resp);
    if (!s.ok()) {
      spdlog::warn("listing containers: {}", s.error_message());
      continue;
    }
    std::set<std::string> alive;
    for (const auto& c : resp.containers()) {
      if (c.state() != cri::CONTAINER_EXITED) alive.insert(c.id());
    }
    for (const auto& [cid, task_id] : running) {
      if (alive.count(cid)) continue;
      std::optional<TaskRuntimeState> st = ExitedState(cid);
      if (!st) continue;
      {
        absl::MutexLock lock(&mu_);
        auto it = tasks_.find(task_id);
        if (it == tasks_.end() || it->second.state.phase == TaskRuntimeState::Phase::kExited) {
          continue;
        }
        st->address = it->second.state.address;
        st->pid = it->second.state.pid;
        if (st->started_at == absl::InfinitePast()) st->started_at = it->second.state.started_at;
        it->second.state = *st;
      }
      Notify(task_id, *st);
    }
  }
}

absl::Status CriDriver::Stop(std::string_view task_id, absl::Duration timeout) {
  std::string container_id, sandbox_id;
  {
    absl::MutexLock lock(&mu_);
    auto it = tasks_.find(task_id);
    if (it == tasks_.end()) return absl::OkStatus();
    container_id = it->second.container_id;
    sandbox_id = it->second.sandbox_id;
  }
  if (!container_id.empty()) {
    cri::StopContainerRequest req;
    req.set_container_id(container_id);
    req.set_timeout(CeilSeconds(timeout));
    cri::StopContainerResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s =
        runtime_->StopContainer(Prepare(&ctx, timeout + options_.call_timeout), req, &resp);
    if (!s.ok() && !NotFound(s)) return FromGrpc(s, "stopping the container");
  }
  std::optional<TaskRuntimeState> st;
  if (!container_id.empty()) st = ExitedState(container_id);
  if (!sandbox_id.empty()) {
    if (grpc::Status s = StopSandbox(sandbox_id); !s.ok()) {
      return FromGrpc(s, "stopping the pod sandbox");
    }
  }
  bool notify = false;
  TaskRuntimeState now_state;
  {
    absl::MutexLock lock(&mu_);
    auto it = tasks_.find(task_id);
    if (it == tasks_.end()) return absl::OkStatus();
    TaskRuntimeState& cur = it->second.state;
    if (cur.phase != TaskRuntimeState::Phase::kExited) {
      notify = true;
      cur.phase = TaskRuntimeState::Phase::kExited;
      if (st) {
        cur.has_exit_code = st->has_exit_code;
        cur.exit_code = st->exit_code;
        cur.finished_at = st->finished_at;
      } else {
        cur.finished_at = clock_.Now();
      }
    }
    now_state = cur;
  }
  if (notify) Notify(std::string(task_id), now_state);
  return absl::OkStatus();
}

void CriDriver::Remove(std::string_view task_id) {
  std::string container_id, sandbox_id;
  {
    absl::MutexLock lock(&mu_);
    auto it = tasks_.find(task_id);
    if (it == tasks_.end()) return;
    container_id = it->second.container_id;
    sandbox_id = it->second.sandbox_id;
    tasks_.erase(it);
  }
  RemovePod(sandbox_id, container_id);
}

std::optional<TaskRuntimeState> CriDriver::Inspect(std::string_view task_id) const {
  absl::MutexLock lock(&mu_);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return std::nullopt;
  return it->second.state;
}

std::vector<std::string> CriDriver::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> ids;
  for (const auto& [id, t] : tasks_) ids.push_back(id);
  return ids;
}

absl::StatusOr<ExecResult> CriDriver::Exec(std::string_view task_id,
                                           const std::vector<std::string>& argv,
                                           absl::Duration timeout) {
  std::string container_id;
  {
    absl::MutexLock lock(&mu_);
    auto it = tasks_.find(task_id);
    if (it == tasks_.end())
      return absl::NotFoundError(absl::StrCat("task ", std::string(task_id), " unknown"));
    if (it->second.state.phase != TaskRuntimeState::Phase::kRunning) {
      return absl::FailedPreconditionError(
          absl::StrCat("task ", std::string(task_id), " is not running"));
    }
    container_id = it->second.container_id;
  }
  if (argv.empty()) return absl::InvalidArgumentError("exec: empty command");
  cri::ExecSyncRequest req;
  req.set_container_id(container_id);
  if (argv.size() == 1 && argv[0].find_first_of(kShellChars) != std::string::npos) {
    req.add_cmd("/bin/sh");
    req.add_cmd("-c");
    req.add_cmd(argv[0]);
  } else if (argv.size() == 1) {
    // Plain words need no shell, which many images do not have.
    for (absl::string_view word : absl::StrSplit(argv[0], ' ', absl::SkipEmpty())) {
      req.add_cmd(std::string(word));
    }
  } else {
    for (const auto& a : argv) req.add_cmd(a);
  }
  req.set_timeout(std::max<int64_t>(1, CeilSeconds(timeout)));
  cri::ExecSyncResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = runtime_->ExecSync(Prepare(&ctx, timeout + absl::Seconds(2)), req, &resp);
  ExecResult r;
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    r.timed_out = true;
    return r;
  }
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
    // The runtime is not answering: nothing is known about the container.
    return FromGrpc(s, "exec in the container");
  }
  if (!s.ok()) {
    // The command could not run at all (e.g. not in the image): a failing check, not an
    // infrastructure error.
    r.exit_code = 127;
    r.output = s.error_message().substr(0, options_.exec_output_limit);
    return r;
  }
  r.exit_code = resp.exit_code();
  r.output = resp.stdout() + resp.stderr();
  if (r.output.size() > options_.exec_output_limit) r.output.resize(options_.exec_output_limit);
  return r;
}

std::string CriDriver::LogPath(std::string_view task_id) const {
  {
    absl::MutexLock lock(&mu_);
    auto it = tasks_.find(task_id);
    if (it != tasks_.end() && !it->second.log_path.empty()) return it->second.log_path;
  }
  return (std::filesystem::path(options_.state_dir) / std::string(task_id) / kLogFile).string();
}

absl::StatusOr<std::vector<std::string>> CriDriver::Recover() {
  // A runtime that does not answer is no evidence about any pod: the call fails, nothing
  // is decided, and the worker asks again.
  auto unavailable = [](const grpc::Status& s, std::string_view what) {
    return absl::UnavailableError(
        absl::StrCat("recovering pods: ", std::string(what), ": ", s.error_message()));
  };
  cri::ListPodSandboxRequest preq;
  (*preq.mutable_filter()->mutable_label_selector())[kCriWorkerLabel] = options_.identity;
  cri::ListPodSandboxResponse presp;
  grpc::ClientContext pctx;
  grpc::Status s = runtime_->ListPodSandbox(Prepare(&pctx, options_.call_timeout), preq, &presp);
  if (!s.ok()) return unavailable(s, "listing sandboxes");
  cri::ListContainersRequest creq;
  (*creq.mutable_filter()->mutable_label_selector())[kCriWorkerLabel] = options_.identity;
  cri::ListContainersResponse cresp;
  grpc::ClientContext cctx;
  s = runtime_->ListContainers(Prepare(&cctx, options_.call_timeout), creq, &cresp);
  if (!s.ok()) return unavailable(s, "listing containers");
  // The newest container of each sandbox is the task's; any other is left over.
  std::map<std::string, const cri::Container*> by_sandbox;
  std::vector<std::string> stray_containers;
  std::set<std::string> sandboxes;
  for (const auto& p : presp.items()) sandboxes.insert(p.id());
  for (const auto& c : cresp.containers()) {
    if (!sandboxes.count(c.pod_sandbox_id())) {
      stray_containers.push_back(c.id());
      continue;
    }
    auto& slot = by_sandbox[c.pod_sandbox_id()];
    if (slot == nullptr || c.created_at() > slot->created_at()) {
      if (slot) stray_containers.push_back(slot->id());
      slot = &c;
    } else {
      stray_containers.push_back(c.id());
    }
  }
  for (const auto& id : stray_containers) {
    spdlog::info("removing container {} (left without its pod by an earlier worker)", id);
    RemovePod("", id);
  }
  std::vector<std::string> adopted;
  std::vector<Task> found;
  for (const auto& p : presp.items()) {
    auto task_label = p.labels().find(kCriTaskLabel);
    auto cit = by_sandbox.find(p.id());
    const bool known_task = task_label != p.labels().end() && !task_label->second.empty();
    bool duplicate = false;
    if (known_task) {
      absl::MutexLock lock(&mu_);
      duplicate = tasks_.count(task_label->second) > 0;
    }
    if (cit == by_sandbox.end() || !known_task || duplicate) {
      // A worker that died between RunPodSandbox and CreateContainer, or a second pod for
      // the same task: nothing runs the task there.
      spdlog::info("removing pod sandbox {} (orphaned by an earlier worker)", p.id());
      RemovePod(p.id(), cit == by_sandbox.end() ? "" : cit->second->id());
      continue;
    }
    const cri::Container& c = *cit->second;
    Task t;
    t.id = task_label->second;
    t.sandbox_id = p.id();
    t.container_id = c.id();
    t.image = c.image().image();
    cri::PodSandboxStatusRequest sreq;
    sreq.set_pod_sandbox_id(p.id());
    cri::PodSandboxStatusResponse sresp;
    grpc::ClientContext sctx;
    s = runtime_->PodSandboxStatus(Prepare(&sctx, options_.call_timeout), sreq, &sresp);
    if (!s.ok() && !NotFound(s)) return unavailable(s, "pod sandbox status");
    t.state.address = sresp.status().network().ip();
    {
      cri::ContainerStatusRequest q;
      q.set_container_id(c.id());
      cri::ContainerStatusResponse r;
      grpc::ClientContext qctx;
      s = runtime_->ContainerStatus(Prepare(&qctx, options_.call_timeout), q, &r);
      if (!s.ok() && !NotFound(s)) return unavailable(s, "container status");
      t.state.started_at = FromNanos(r.status().started_at());
      t.log_path = r.status().log_path();
    }
    std::optional<TaskRuntimeState> exited;
    if (c.state() == cri::CONTAINER_EXITED) {
      exited = ExitedState(c.id());
      if (!exited) {
        return absl::UnavailableError(
            absl::StrCat("recovering pods: the exit of container ", c.id(), " could not be read"));
      }
    }
    if (c.state() == cri::CONTAINER_RUNNING || c.state() == cri::CONTAINER_UNKNOWN) {
      // UNKNOWN: the runtime is not sure yet; the monitor asks again like for a running one.
      t.state.phase = TaskRuntimeState::Phase::kRunning;
    } else if (auto st = exited; st) {
      const absl::Time started = t.state.started_at;
      t.state = *st;
      if (t.state.started_at == absl::InfinitePast()) t.state.started_at = started;
      t.state.address = sresp.status().network().ip();
      if (t.state.error.empty()) {
        t.state.error =
            absl::StrCat("exited with code ", st->exit_code, " while the worker was down");
      }
    } else {
      // Created but never started: the start did not finish.
      t.state.phase = TaskRuntimeState::Phase::kExited;
      t.state.error = "the container was never started (the worker stopped during its start)";
    }
    found.push_back(std::move(t));
  }
  absl::MutexLock lock(&mu_);
  for (Task& t : found) {
    adopted.push_back(t.id);
    spdlog::info("adopted pod {} of task {} ({})", t.sandbox_id, t.id,
                 t.state.phase == TaskRuntimeState::Phase::kRunning ? "running" : "exited");
    tasks_[t.id] = std::move(t);
  }
  return adopted;
}

}  // namespace warren
