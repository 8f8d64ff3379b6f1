#include "cli/apply.h"

#include "cli/output.h"
#include "common/spec.h"
#include "google/protobuf/util/message_differencer.h"

namespace warren {

int ApplyServices(v1::Control::Stub& stub, const ApplyRequest& request, const CommandEnv& env) {
  std::vector<v1::ServiceSpec> specs = request.specs;
  // Nothing is applied unless every service is valid.
  bool invalid = false;
  for (size_t i = 0; i < specs.size(); ++i) {
    v1::ServiceSpec& spec = specs[i];
    ApplySpecDefaults(&spec);
    if (absl::Status s = ValidateServiceSpec(spec); !s.ok()) {
      *env.err << "error: " << request.describe(i, spec) << ": " << s.message() << "\n";
      invalid = true;
    }
  }
  if (invalid) return 1;

  // Plan: read each service, then let the manager check each change (dry run) before any is made.
  struct Step {
    const v1::ServiceSpec* spec;
    bool exists = false;
    v1::Service current;
    bool changed = true;
  };
  std::vector<Step> steps;
  for (const v1::ServiceSpec& spec : specs) {
    Step step;
    step.spec = &spec;
    grpc::ClientContext call;
    CommandEnv::Prepare(&call);
    v1::GetServiceRequest req;
    req.set_name_or_id(spec.name());
    grpc::Status s = stub.GetService(&call, req, &step.current);
    if (s.ok()) {
      step.exists = true;
      v1::ServiceSpec current = step.current.spec();
      ApplySpecDefaults(&current);
      *step.current.mutable_spec() = current;
      step.changed = !google::protobuf::util::MessageDifferencer::Equals(current, spec);
    } else if (s.error_code() != grpc::StatusCode::NOT_FOUND) {
      return env.Fail(s);
    }
    steps.push_back(std::move(step));
  }
  auto send = [&](const Step& step, bool server_dry_run, v1::Service* result) {
    grpc::ClientContext call;
    CommandEnv::Prepare(&call);
    if (!step.exists) {
      v1::CreateServiceRequest req;
      *req.mutable_spec() = *step.spec;
      req.set_dry_run(server_dry_run);
      return stub.CreateService(&call, req, result);
    }
    v1::UpdateServiceRequest req;
    *req.mutable_spec() = *step.spec;
    req.set_expected_version(step.current.version());
    req.set_change_cause(request.change_cause);
    req.set_dry_run(server_dry_run);
    return stub.UpdateService(&call, req, result);
  };
  for (const Step& step : steps) {
    if (!step.changed) continue;
    v1::Service ignored;
    if (grpc::Status s = send(step, true, &ignored); !s.ok()) {
      *env.err << "error: " << step.spec->name() << ": " << s.error_message() << "\n";
      return 1;
    }
  }
  for (const Step& step : steps) {
    const std::string& name = step.spec->name();
    if (!step.changed) {
      *env.out << name << ": unchanged\n";
      continue;
    }
    if (request.dry_run) {
      if (!step.exists) {
        *env.out << name << ": create\n";
      } else {
        *env.out << name << ": update\n"
                 << UnifiedDiff(name + " (current)", ToYaml(step.current.spec()),
                                name + " (" + request.source + ")", ToYaml(*step.spec));
      }
      continue;
    }
    v1::Service result;
    if (grpc::Status s = send(step, false, &result); !s.ok()) {
      *env.err << "error: " << name << ": " << s.error_message() << "\n";
      return 1;
    }
    if (!step.exists) {
      *env.out << name << ": created (" << result.id() << ")\n";
    } else {
      *env.out << name << ": updated (revision " << result.revision() << ")\n";
    }
  }
  return 0;
}

}  // namespace warren
