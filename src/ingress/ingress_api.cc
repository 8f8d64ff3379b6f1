#include "ingress/ingress_api.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/time_util.h"
#include "ingress/ingress_spec.h"
#include "manager/commit_retry.h"
#include "security/secrets.h"
#include "store/typed_store.h"

namespace warren {

v1::Ingress RedactIngress(v1::Ingress ingress) {
  ingress.mutable_spec()->mutable_tls()->clear_key_pem();
  ingress.mutable_spec()->mutable_tls()->clear_sealed_key();
  return ingress;
}

namespace {

// The name an ingress's sealed key is bound to (next to its id), apart from secrets' names.
std::string SealName(const v1::Ingress& ingress) {
  return absl::StrCat("ingress/", ingress.spec().name());
}

}  // namespace

absl::Status SealIngressKey(const ClusterKeyFn& cluster_key, v1::Ingress* ingress) {
  absl::StatusOr<security::SecretBytes> key =
      cluster_key ? cluster_key() : absl::FailedPreconditionError("no cluster key");
  if (!key.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("tls.key: cannot be stored: the key is kept only sealed under the cluster "
                     "key, which this manager does not have (",
                     key.status().message(), ")"));
  }
  v1::IngressTls* tls = ingress->mutable_spec()->mutable_tls();
  // The request's copy is the caller's; this one is wiped once sealed.
  const security::SecretBytes plain(tls->key_pem());
  auto envelope = security::EncryptSecret(*key, ingress->id(), SealName(*ingress), plain);
  if (!envelope.ok()) return envelope.status();
  *tls->mutable_sealed_key() = std::move(*envelope);
  tls->clear_key_pem();
  return absl::OkStatus();
}

absl::StatusOr<security::SecretBytes> OpenIngressKey(const security::SecretBytes& cluster_key,
                                                     const v1::Ingress& ingress) {
  return security::DecryptSecret(cluster_key, ingress.id(), SealName(ingress),
                                 ingress.spec().tls().sealed_key());
}

absl::StatusOr<v1::Ingress> IngressApi::Find(const std::string& name_or_id) const {
  if (name_or_id.empty()) return absl::InvalidArgumentError("ingress: name or id required");
  if (auto i = GetObjectByName<v1::Ingress>(shared_.store, name_or_id)) return *i;
  if (auto i = GetObject<v1::Ingress>(shared_.store, name_or_id)) return *i;
  if (auto corrupt = FindCorrupt(shared_.store, Kind::kIngress, name_or_id)) {
    return CorruptObjectError(*corrupt);
  }
  return absl::NotFoundError(absl::StrCat("ingress \"", name_or_id, "\" not found"));
}

grpc::Status IngressApi::CreateIngress(grpc::ServerContext* ctx,
                                       const v1::CreateIngressRequest* req, v1::Ingress* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Ingresses/CreateIngress");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  v1::IngressSpec spec = req->spec();
  ApplyIngressDefaults(&spec);
  if (auto s = ValidateIngressSpec(spec); !s.ok()) return ToGrpc(s);
  if (spec.tls().has_sealed_key()) {
    return ToGrpc(absl::InvalidArgumentError(
        "tls.sealed_key: set by the manager only; give the key as tls.key_pem"));
  }
  const bool acme = spec.tls().mode() == v1::INGRESS_TLS_MODE_ACME;
  if (acme && !shared_.acme_enabled) {
    return ToGrpc(absl::FailedPreconditionError(
        "tls: acme needs an ACME directory: start the managers with --acme-directory URL"));
  }
  v1::Ingress ingress;
  if (spec.tls().mode() == v1::INGRESS_TLS_MODE_FILES) {
    auto cert =
        CheckIngressCertificate(spec.host(), spec.tls().certificate_pem(), spec.tls().key_pem());
    if (!cert.ok()) return ToGrpc(cert.status());
    *ingress.mutable_certificate() = std::move(*cert);
  }
  auto service = GetObjectByName<v1::Service>(shared_.store, spec.service());
  if (!service) {
    return ToGrpc(absl::NotFoundError(
        absl::StrCat("service: no service named \"", spec.service(), "\"; create it first")));
  }
  absl::MutexLock lock(&create_mu_);
  auto existing = GetObjectByName<v1::Ingress>(shared_.store, spec.name());
  if (existing && !req->replace()) {
    return ToGrpc(
        absl::AlreadyExistsError(absl::StrCat("ingress \"", spec.name(), "\" already exists")));
  }
  if (auto s = CheckIngressConflicts(spec, ListObjects<v1::Ingress>(shared_.store)); !s.ok()) {
    return ToGrpc(s);
  }
  if (existing) {
    ingress.set_id(existing->id());
    *ingress.mutable_created_at() = existing->created_at();
  } else {
    ingress.set_id(NewId());
    *ingress.mutable_created_at() = ToProtoTime(shared_.clock.Now());
  }
  *ingress.mutable_spec() = spec;
  ingress.set_service_id(service->id());
  if (spec.tls().mode() == v1::INGRESS_TLS_MODE_FILES) {
    if (auto s = SealIngressKey(shared_.secret_key, &ingress); !s.ok()) return ToGrpc(s);
  }
  if (acme) {
    if (existing && existing->spec().tls().mode() == v1::INGRESS_TLS_MODE_ACME &&
        existing->spec().host() == spec.host()) {
      // Replaced with the same name: the certificate ordered for it stays, and so does where
      // ordering stands.
      *ingress.mutable_spec()->mutable_tls() = existing->spec().tls();
      *ingress.mutable_certificate() = existing->certificate();
      *ingress.mutable_acme() = existing->acme();
    } else {
      // The controller leader orders it (AcmeController); HTTPS waits for the certificate.
      ingress.mutable_acme()->set_state(v1::ACME_STATE_PENDING);
    }
  }
  std::vector<Mutation> m = {
      PutMutation(ingress, existing ? existing->version() : Mutation::kMustNotExist),
      shared_.events.Make("ingress", ingress.id(), spec.name(), existing ? "updated" : "created",
                          absl::StrCat(spec.host(), spec.path(), " -> service ", spec.service()),
                          service->id())};
  auto v = shared_.store.Commit(m);
  if (!v.ok()) return ToGrpc(v.status());
  ingress.set_version(*v);
  *resp = RedactIngress(std::move(ingress));
  return grpc::Status::OK;
}

grpc::Status IngressApi::RenewIngress(grpc::ServerContext* ctx, const v1::RenewIngressRequest* req,
                                      v1::Ingress* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Ingresses/RenewIngress");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  v1::Ingress renewed;
  absl::StatusOr<uint64_t> v =
      CommitWithRetry(shared_.store, [&]() -> absl::StatusOr<std::vector<Mutation>> {
        auto i = Find(req->ingress());
        if (!i.ok()) return i.status();
        if (i->spec().tls().mode() != v1::INGRESS_TLS_MODE_ACME) {
          return absl::FailedPreconditionError(absl::StrCat(
              "ingress \"", i->spec().name(),
              "\": only an ingress with tls acme renews its certificate (this one has ",
              i->spec().tls().mode() == v1::INGRESS_TLS_MODE_FILES ? "files: replace them"
                                                                   : "no TLS",
              ")"));
        }
        renewed = *i;
        v1::IngressAcmeStatus* acme = renewed.mutable_acme();
        acme->set_renew_requested(std::max(acme->renew_requested(), acme->renewed()) + 1);
        // Now, not after a failure's backoff.
        acme->clear_next_attempt_at();
        if (acme->state() != v1::ACME_STATE_ORDERING) acme->set_state(v1::ACME_STATE_PENDING);
        renewed.clear_version();
        return std::vector<Mutation>{
            PutMutation(renewed, i->version()),
            shared_.events.Make("ingress", renewed.id(), renewed.spec().name(), "renew",
                                "certificate renewal requested", renewed.service_id())};
      });
  if (!v.ok()) return ToGrpc(v.status());
  renewed.set_version(*v);
  *resp = RedactIngress(std::move(renewed));
  return grpc::Status::OK;
}

grpc::Status IngressApi::GetIngress(grpc::ServerContext* ctx, const v1::GetIngressRequest* req,
                                    v1::Ingress* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Ingresses/GetIngress");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  auto i = Find(req->ingress());
  if (!i.ok()) return ToGrpc(i.status());
  *resp = RedactIngress(std::move(*i));
  return grpc::Status::OK;
}

grpc::Status IngressApi::ListIngresses(grpc::ServerContext* ctx, const v1::ListIngressesRequest*,
                                       v1::ListIngressesResponse* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Ingresses/ListIngresses");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  if (auto s = CorruptKindError(shared_.store, Kind::kIngress); !s.ok()) return ToGrpc(s);
  std::vector<v1::Ingress> all = ListObjects<v1::Ingress>(shared_.store);
  std::sort(all.begin(), all.end(), [](const v1::Ingress& a, const v1::Ingress& b) {
    return a.spec().name() < b.spec().name();
  });
  for (v1::Ingress& i : all) *resp->add_ingresses() = RedactIngress(std::move(i));
  return grpc::Status::OK;
}

grpc::Status IngressApi::DeleteIngress(grpc::ServerContext* ctx,
                                       const v1::DeleteIngressRequest* req,
                                       v1::DeleteIngressResponse* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Ingresses/DeleteIngress");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  std::string id;
  absl::StatusOr<uint64_t> v = CommitWithRetry(
      shared_.store,
      [&]() -> absl::StatusOr<std::vector<Mutation>> {
        auto i = Find(req->ingress());
        if (!i.ok()) {
          auto corrupt = FindCorrupt(shared_.store, Kind::kIngress, req->ingress());
          if (!corrupt) return i.status();
          // Removal is the way out of a corrupt ingress.
          i = v1::Ingress();
          i->set_id(corrupt->id);
          i->mutable_spec()->set_name(corrupt->name);
          i->set_version(corrupt->version);
        }
        id = i->id();
        return std::vector<Mutation>{DeleteMutation(*i, i->version()),
                                     shared_.events.Make("ingress", i->id(), i->spec().name(),
                                                         "deleted", "removed", i->service_id())};
      },
      {absl::StatusCode::kNotFound});
  if (!v.ok()) return ToGrpc(v.status());
  resp->set_id(id);
  return grpc::Status::OK;
}

}  // namespace warren
