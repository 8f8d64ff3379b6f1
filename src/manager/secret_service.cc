#include "manager/secret_service.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/ids.h"
#include "common/spec.h"
#include "common/time_util.h"
#include "grpcpp/grpcpp.h"
#include "manager/commit_retry.h"
#include "security/secrets.h"
#include "spdlog/spdlog.h"
#include "store/typed_store.h"

namespace warren {
namespace {

// What the API shows of a secret: everything but the envelope.
v1::Secret Metadata(v1::Secret secret) {
  secret.clear_envelope();
  return secret;
}

absl::Status CheckValueSize(const std::string& value) {
  if (value.empty()) return absl::InvalidArgumentError("value: must not be empty");
  if (value.size() > security::kMaxSecretSize) {
    return absl::InvalidArgumentError(absl::StrCat("value: at most ", security::kMaxSecretSize,
                                                   " bytes (500 KiB), got ", value.size()));
  }
  return absl::OkStatus();
}

// The envelope for `value`, sealed under the cluster key for this secret's id and name.
absl::Status Seal(const ClusterKeyFn& cluster_key, const std::string& value, v1::Secret* secret) {
  auto key = cluster_key();
  if (!key.ok()) return key.status();
  // The request's copy of the value is the caller's; this one is wiped when sealed.
  const security::SecretBytes plain(value);
  auto envelope = security::EncryptSecret(*key, secret->id(), secret->name(), plain);
  if (!envelope.ok()) return envelope.status();
  *secret->mutable_envelope() = std::move(*envelope);
  secret->set_size(plain.size());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::Secret> FindSecret(const Store& store, const std::string& name_or_id) {
  if (name_or_id.empty()) return absl::InvalidArgumentError("secret: a name or id is required");
  if (auto s = GetObjectByName<v1::Secret>(store, name_or_id)) return *s;
  if (auto s = GetObject<v1::Secret>(store, name_or_id)) return *s;
  if (auto c = FindCorrupt(store, Kind::kSecret, name_or_id)) return CorruptObjectError(*c);
  return absl::NotFoundError(absl::StrCat("secret \"", name_or_id, "\" not found"));
}

std::vector<std::string> ServicesUsingSecret(const Store& store, const std::string& name) {
  std::vector<std::string> out;
  for (const v1::Service& svc : ListObjects<v1::Service>(store)) {
    for (const v1::SecretReference& ref : svc.spec().template_().secrets()) {
      if (ref.name() == name) {
        out.push_back(svc.spec().name());
        break;
      }
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::Status ResolveSecretReferences(const Store& store, v1::ServiceSpec* spec) {
  auto* refs = spec->mutable_template_()->mutable_secrets();
  for (int i = 0; i < refs->size(); ++i) {
    v1::SecretReference& ref = (*refs)[i];
    auto secret = GetObjectByName<v1::Secret>(store, ref.name());
    if (!secret) {
      return absl::InvalidArgumentError(
          absl::StrCat("template.secrets[", i, "].name: no secret \"", ref.name(),
                       "\" (create it first with `warren secret create`)"));
    }
    ref.set_secret_version(secret->secret_version());
  }
  return absl::OkStatus();
}

absl::StatusOr<security::SecretBytes> OpenSecret(const security::SecretBytes& cluster_key,
                                                 const v1::Secret& secret) {
  return security::DecryptSecret(cluster_key, secret.id(), secret.name(), secret.envelope());
}

void AddSecretValues(const Store& store, const ClusterKeyFn& cluster_key, v1::Assignments* a) {
  std::set<std::string> names;
  for (const v1::Task& t : a->tasks()) {
    for (const v1::SecretReference& ref : t.spec().secrets()) names.insert(ref.name());
  }
  if (names.empty()) return;
  absl::StatusOr<security::SecretBytes> key =
      cluster_key ? cluster_key() : absl::FailedPreconditionError("no cluster key");
  for (const std::string& name : names) {
    auto secret = GetObjectByName<v1::Secret>(store, name);
    if (!secret) continue;
    absl::StatusOr<security::SecretBytes> value =
        key.ok() ? OpenSecret(*key, *secret) : absl::StatusOr<security::SecretBytes>(key.status());
    if (!value.ok()) {
      spdlog::error("secret {}: cannot be opened for the workers: {}", name,
                    value.status().ToString());
      continue;
    }
    v1::SecretValue* out = a->add_secrets();
    out->set_name(name);
    out->set_secret_version(secret->secret_version());
    out->set_value(std::string(value->reveal()));
  }
}

SecretService::SecretService(Store& store, const Clock& clock, EventLog& events,
                             ClusterKeyFn cluster_key, RollServiceFn roll_service)
    : store_(store),
      clock_(clock),
      events_(events),
      cluster_key_(std::move(cluster_key)),
      roll_service_(std::move(roll_service)) {}

absl::Status SecretService::Authorize(grpc::ServerContext* ctx, absl::string_view method) const {
  return authorizer_->AuthorizeCall(ctx, method).status();
}

grpc::Status SecretService::CreateSecret(grpc::ServerContext* ctx,
                                         const v1::CreateSecretRequest* req, v1::Secret* resp) {
  if (auto s = Authorize(ctx, "/warren.v1.Secrets/CreateSecret"); !s.ok()) return ToGrpc(s);
  if (auto s = ValidateSecretName(req->name()); !s.ok()) {
    return ToGrpc(absl::InvalidArgumentError(absl::StrCat("name: ", s.message())));
  }
  if (auto s = ValidateLabels("labels", req->labels()); !s.ok()) return ToGrpc(s);
  if (auto s = CheckValueSize(req->value()); !s.ok()) return ToGrpc(s);
  if (GetObjectByName<v1::Secret>(store_, req->name())) {
    return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                        absl::StrCat("secret \"", req->name(), "\" already exists"));
  }
  const absl::Time now = clock_.Now();
  v1::Secret secret;
  secret.set_id(NewId());
  secret.set_name(req->name());
  *secret.mutable_labels() = req->labels();
  *secret.mutable_created_at() = ToProtoTime(now);
  *secret.mutable_updated_at() = ToProtoTime(now);
  secret.set_secret_version(1);
  if (auto s = Seal(cluster_key_, req->value(), &secret); !s.ok()) return ToGrpc(s);
  auto v = store_.Commit({PutMutation(secret, Mutation::kMustNotExist),
                          events_.Make("secret", secret.id(), secret.name(), "created",
                                       absl::StrCat("created (", secret.size(), " bytes)"))});
  if (!v.ok()) {
    if (v.status().code() == absl::StatusCode::kAlreadyExists) {
      return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                          absl::StrCat("secret \"", req->name(), "\" already exists"));
    }
    return ToGrpc(v.status());
  }
  secret.set_version(*v);
  spdlog::info("secret {} created (id {}, {} bytes)", secret.name(), secret.id(), secret.size());
  *resp = Metadata(std::move(secret));
  return grpc::Status::OK;
}

grpc::Status SecretService::ListSecrets(grpc::ServerContext* ctx, const v1::ListSecretsRequest*,
                                        v1::ListSecretsResponse* resp) {
  if (auto s = Authorize(ctx, "/warren.v1.Secrets/ListSecrets"); !s.ok()) return ToGrpc(s);
  if (auto s = CorruptKindError(store_, Kind::kSecret); !s.ok()) return ToGrpc(s);
  std::vector<v1::Secret> all = ListObjects<v1::Secret>(store_);
  std::sort(all.begin(), all.end(),
            [](const v1::Secret& a, const v1::Secret& b) { return a.name() < b.name(); });
  for (v1::Secret& s : all) *resp->add_secrets() = Metadata(std::move(s));
  return grpc::Status::OK;
}

grpc::Status SecretService::InspectSecret(grpc::ServerContext* ctx,
                                          const v1::InspectSecretRequest* req, v1::Secret* resp) {
  if (auto s = Authorize(ctx, "/warren.v1.Secrets/InspectSecret"); !s.ok()) return ToGrpc(s);
  auto secret = FindSecret(store_, req->secret());
  if (!secret.ok()) return ToGrpc(secret.status());
  *resp = Metadata(std::move(*secret));
  return grpc::Status::OK;
}

grpc::Status SecretService::UpdateSecret(grpc::ServerContext* ctx,
                                         const v1::UpdateSecretRequest* req, v1::Secret* resp) {
  if (auto s = Authorize(ctx, "/warren.v1.Secrets/UpdateSecret"); !s.ok()) return ToGrpc(s);
  if (auto s = CheckValueSize(req->value()); !s.ok()) return ToGrpc(s);
  v1::Secret next;
  absl::StatusOr<uint64_t> v =
      CommitWithRetry(store_, [&]() -> absl::StatusOr<std::vector<Mutation>> {
        auto current = FindSecret(store_, req->secret());
        if (!current.ok()) return current.status();
        next = *current;
        next.set_secret_version(current->secret_version() + 1);
        *next.mutable_updated_at() = ToProtoTime(clock_.Now());
        // A fresh data key and nonce for every version.
        if (auto s = Seal(cluster_key_, req->value(), &next); !s.ok()) return s;
        return std::vector<Mutation>{
            PutMutation(next, current->version()),
            events_.Make("secret", next.id(), next.name(), "updated",
                         absl::StrCat("updated to version ", next.secret_version(), " (",
                                      next.size(), " bytes)"))};
      });
  if (!v.ok()) return ToGrpc(v.status());
  next.set_version(*v);
  spdlog::info("secret {} updated to version {}", next.name(), next.secret_version());
  // The new version is stored: the services that use it roll onto it, each on its own (one
  // that cannot roll, e.g. it is being removed, does not hold the others back).
  std::vector<std::string> failed;
  const std::string cause =
      absl::StrCat("secret ", next.name(), " updated to version ", next.secret_version());
  for (const std::string& service : ServicesUsingSecret(store_, next.name())) {
    if (auto s = roll_service_(service, cause); !s.ok()) {
      spdlog::warn("secret {}: service {} did not roll onto version {}: {}", next.name(), service,
                   next.secret_version(), std::string(s.message()));
      failed.push_back(absl::StrCat(service, " (", s.message(), ")"));
    }
  }
  if (!failed.empty()) {
    return grpc::Status(
        grpc::StatusCode::ABORTED,
        absl::StrCat("secret \"", next.name(), "\" is now at version ", next.secret_version(),
                     ", but these services did not roll onto it: ", absl::StrJoin(failed, ", "),
                     "; run `warren service update --force` on them"));
  }
  *resp = Metadata(std::move(next));
  return grpc::Status::OK;
}

grpc::Status SecretService::RemoveSecret(grpc::ServerContext* ctx,
                                         const v1::RemoveSecretRequest* req,
                                         v1::RemoveSecretResponse*) {
  if (auto s = Authorize(ctx, "/warren.v1.Secrets/RemoveSecret"); !s.ok()) return ToGrpc(s);
  absl::StatusOr<uint64_t> v =
      CommitWithRetry(store_, [&]() -> absl::StatusOr<std::vector<Mutation>> {
        auto current = FindSecret(store_, req->secret());
        if (!current.ok()) return current.status();
        if (auto s = CorruptKindError(store_, Kind::kService); !s.ok()) return s;
        const std::vector<std::string> users = ServicesUsingSecret(store_, current->name());
        if (!users.empty()) {
          return absl::FailedPreconditionError(
              absl::StrCat("secret \"", current->name(), "\" is used by service",
                           users.size() == 1 ? " " : "s ", absl::StrJoin(users, ", "),
                           "; remove it from them first (`warren service update --secret-rm ",
                           current->name(), "`)"));
        }
        return std::vector<Mutation>{
            DeleteMutation(*current, current->version()),
            events_.Make("secret", current->id(), current->name(), "removed", "removed")};
      });
  if (!v.ok()) return ToGrpc(v.status());
  return grpc::Status::OK;
}

}  // namespace warren
