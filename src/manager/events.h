#ifndef WARREN_MANAGER_EVENTS_H_
#define WARREN_MANAGER_EVENTS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
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
  // Prune deletes at most this many events per commit.
  static constexpr size_t kPruneBatch = 256;

  EventLog(Store& store, const Clock& clock);

  Mutation Make(std::string_view kind, std::string_view object_id, std::string_view object_name,
                std::string_view action, std::string_view message,
                std::string_view service_id = "");

  // The id of the newest event made so far (0: none).
  uint64_t LastId() const { return next_id_.load() - 1; }

  // Deletes the oldest events beyond kMaxEvents, at most kPruneBatch (and the store's
  // MaxMutationsPerCommit) per commit; stops between commits once `keep_going` (when given)
  // returns false.
  void Prune(const std::function<bool()>& keep_going = nullptr);

 private:
  Store& store_;
  const Clock& clock_;
  std::atomic<uint64_t> next_id_;
};

// The event stream of one watcher: the kept events after `since_id`, then new ones as they are
// committed, in commit order, each once. The store's watch feed is bounded (rows and bytes, so
// a few changes of large tasks can compact it past a watcher that was briefly descheduled or
// blocked on a slow client); the reader then catches up from the stored events themselves,
// which are kept longer, instead of ending the stream.
class EventReader {
 public:
  EventReader(const Store& store, uint64_t since_id, std::function<bool(const v1::Event&)> matches);

  // The backlog on the first call; afterwards what was committed since the last call, waiting
  // up to `wait` for a commit when there is none yet.
  std::vector<v1::Event> Next(absl::Duration wait);

 private:
  // Every stored event committed after version_ (the feed is of no use past a compaction).
  void CatchUp(std::vector<v1::Event>* out);
  void Keep(v1::Event e, std::vector<v1::Event>* out) const;

  const Store& store_;
  const uint64_t since_id_;
  const std::function<bool(const v1::Event&)> matches_;
  bool started_ = false;
  // Every commit up to this version has been read.
  uint64_t version_ = 0;
};

}  // namespace warren

#endif  // WARREN_MANAGER_EVENTS_H_
