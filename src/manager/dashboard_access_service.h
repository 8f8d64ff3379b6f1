#ifndef WARREN_MANAGER_DASHBOARD_ACCESS_SERVICE_H_
#define WARREN_MANAGER_DASHBOARD_ACCESS_SERVICE_H_

#include <functional>
#include <memory>
#include <string>

#include "common/clock.h"
#include "security/authz.h"
#include "ui/login.h"
#include "warren/v1/dashboard.grpc.pb.h"

namespace warren {

// warren.v1.DashboardAccess: `warren dashboard token` (admin only). Tokens are MACed with the
// dashboard's key (derived from the cluster key): nothing is stored.
class DashboardAccessService final : public v1::DashboardAccess::Service {
 public:
  // `keys` null: the manager serves no dashboard login (plaintext mode); calls then fail with
  // FAILED_PRECONDITION. `url` gives the dashboard's address for the CLI to print ("" when
  // none).
  DashboardAccessService(std::shared_ptr<const ui::DashboardKeys> keys,
                         std::function<std::string()> url, const Clock& clock,
                         std::shared_ptr<const security::Authorizer> authorizer);

  grpc::Status CreateDashboardToken(grpc::ServerContext* ctx,
                                    const v1::CreateDashboardTokenRequest* req,
                                    v1::DashboardToken* resp) override;

 private:
  const std::shared_ptr<const ui::DashboardKeys> keys_;
  const std::function<std::string()> url_;
  const Clock& clock_;
  const std::shared_ptr<const security::Authorizer> authorizer_;
};

}  // namespace warren

#endif  // WARREN_MANAGER_DASHBOARD_ACCESS_SERVICE_H_
