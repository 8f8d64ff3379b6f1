#ifndef WARREN_STORE_STORE_URL_H_
#define WARREN_STORE_STORE_URL_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace warren {

// The manager's --store: "" or "sqlite" is the embedded SQLite store in the data dir (the
// default); "etcd://HOST:PORT[,HOST:PORT...]" is an etcd cluster, returned as its endpoints.
// INVALID_ARGUMENT saying what is allowed; the caller names the flag.
absl::StatusOr<std::vector<std::string>> ParseStoreUrl(std::string_view url);

}  // namespace warren

#endif  // WARREN_STORE_STORE_URL_H_
