#ifndef WARREN_MANAGER_EVENTS_H_
#define WARREN_MANAGER_EVENTS_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "store/store.h"
#include "warren/v1/objects.pb.h"

namespace warren {

// Builds event objects that are committed in the same transaction as the change they
// describe, so the event stream never shows a change that did not happen.
class EventLog {
 public:
  // Keeps at most this many events; Prune deletes the oldest beyond it.
  static constexpr size_t kMaxEvents = 10000;

  EventLog(Store& store, const Clock& clock);

  Mutation Make(std::string_view kind, std::string_view object_id, std::string_view object_name,
                std::string_view action, std::string_view message,
                std::string_view service_id = "");

  // The id of the newest event made so far (0: none).
  uint64_t LastId() const { return next_id_.load() - 1; }

  // Deletes the oldest events beyond kMaxEvents.
  void Prune();

 private:
  Store& store_;
  const Clock& clock_;
  std::atomic<uint64_t> next_id_;
};

}  // namespace warren

#endif  // WARREN_MANAGER_EVENTS_H_
