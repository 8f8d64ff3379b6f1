#ifndef WARREN_MANAGER_PORT_INDEX_H_
#define WARREN_MANAGER_PORT_INDEX_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "store/store.h"
#include "warren/v1/objects.pb.h"

namespace warren {

// The ports every service publishes or listens on, kept from the store's change feed, so a
// create or update checks its ports against the few services that use the same numbers instead
// of parsing every service of the cluster (issue 18). Also holds the specs of creates that passed
// the check and are not committed yet (reservations), so two concurrent creates cannot both
// claim a port while neither holds a lock across its commit. Not thread-safe: the caller
// serializes Check, Reserve and Release.
class PortIndex {
 public:
  explicit PortIndex(const Store& store) : store_(store) {}

  // CheckPortConflicts of `spec` against the stored services and the reservations; a conflict
  // that `current` (the stored spec of the service being changed) already had is no error.
  absl::Status Check(const v1::ServiceSpec& spec, const v1::ServiceSpec* current);

  // Holds `spec`'s ports until Release(token); later checks see them.
  uint64_t Reserve(const v1::ServiceSpec& spec);
  void Release(uint64_t token);

  // Services handed to CheckPortConflicts, summed over all checks (the index's work).
  uint64_t services_examined() const { return services_examined_; }
  // Stored services indexed.
  size_t size() const { return services_.size(); }

 private:
  struct Entry {
    // The fields of the spec the check reads (name, ports, image, health check, preview port).
    v1::Service service;
    std::set<int> published;  // every published port number
    std::set<int> listen;     // ports its process tasks listen on
  };

  void Sync();
  void Reload();
  void Put(const std::string& id, const v1::ServiceSpec& spec);
  void Erase(const std::string& id);
  // The stored services and reservations that publish or listen on a port `spec` uses in a way
  // that can collide, ordered by id (the order in which CheckPortConflicts reported before).
  std::vector<v1::Service> Candidates(const v1::ServiceSpec& spec) const;
  absl::Status CheckOne(const v1::ServiceSpec& spec);

  const Store& store_;
  bool loaded_ = false;
  uint64_t version_ = 0;
  std::map<std::string, Entry> services_;           // by service id
  std::map<int, std::set<std::string>> published_;  // port -> service ids
  std::map<int, std::set<std::string>> listen_;     // port -> service ids
  std::map<uint64_t, Entry> reserved_;              // by token
  uint64_t next_token_ = 1;
  uint64_t services_examined_ = 0;
};

}  // namespace warren

#endif  // WARREN_MANAGER_PORT_INDEX_H_
