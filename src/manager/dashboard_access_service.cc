#include "manager/dashboard_access_service.h"

#include "absl/strings/str_cat.h"
#include "common/time_util.h"
#include "manager/api_shared.h"
#include "spdlog/spdlog.h"

namespace warren {

DashboardAccessService::DashboardAccessService(
    std::shared_ptr<const ui::DashboardKeys> keys, std::function<std::string()> url,
    const Clock& clock, std::shared_ptr<const security::Authorizer> authorizer)
    : keys_(std::move(keys)),
      url_(std::move(url)),
      clock_(clock),
      authorizer_(std::move(authorizer)) {}

grpc::Status DashboardAccessService::CreateDashboardToken(
    grpc::ServerContext* ctx, const v1::CreateDashboardTokenRequest* req,
    v1::DashboardToken* resp) {
  auto who = authorizer_->AuthorizeCall(ctx, "/warren.v1.DashboardAccess/CreateDashboardToken");
  if (!who.ok()) return ToGrpc(who.status());
  if (!keys_) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "the dashboard has no login without TLS (the manager runs with "
                        "--insecure-plaintext): open it on its loopback address");
  }
  auto role = ui::ParseDashboardRole(req->role().empty() ? "admin" : req->role(), "role");
  if (!role.ok()) return ToGrpc(role.status());
  const absl::Duration ttl =
      req->ttl_seconds() == 0 ? ui::kDefaultTokenTtl : absl::Seconds(req->ttl_seconds());
  if (absl::Status s = ui::CheckTokenTtl(ttl, "ttl"); !s.ok()) return ToGrpc(s);
  const absl::Time expires = clock_.Now() + ttl;
  auto token = keys_->IssueToken(*role, expires);
  if (!token.ok()) return ToGrpc(token.status());
  resp->set_token(*token);
  resp->set_role(std::string(ui::DashboardRoleName(*role)));
  *resp->mutable_expires_at() = ToProtoTime(expires);
  resp->set_url(url_());
  spdlog::info("dashboard: a {} login token until {} for {}", ui::DashboardRoleName(*role),
               absl::FormatTime(expires),
               who->has_value() ? (*who)->node_id : std::string("a local caller"));
  return grpc::Status::OK;
}

}  // namespace warren
