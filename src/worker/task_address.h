#ifndef WARREN_WORKER_TASK_ADDRESS_H_
#define WARREN_WORKER_TASK_ADDRESS_H_

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace warren {

// Whether `host:port` can be bound for listening just now (see ProbeBind).
using BindProbe = std::function<absl::Status(const std::string& host_port)>;
// The addresses of the node's other live tasks. Listing them costs a pass over every task of
// the node, so it is asked for only when the assigned address is taken (issue 18: a node with
// 30,000 tasks spent most of its time building this set once per task start).
using AddressesInUse = std::function<std::set<std::string>()>;

// The address a task of the process runtime listens on. The scheduler assigns one from the
// node's range, but another program (another cluster on the same machine, a stray server) may
// hold it: then the next addresses of the range are tried (skipping `in_use()`, the node's own
// tasks, called at most once), up to `max_tries` in all. FAILED_PRECONDITION, naming the address
// and port, when all of them are taken; INVALID_ARGUMENT for an address outside `range`.
absl::StatusOr<std::string> PickTaskAddress(const std::string& assigned,
                                            const std::vector<int>& ports, const std::string& range,
                                            const AddressesInUse& in_use, const BindProbe& probe,
                                            int max_tries = 32);

}  // namespace warren

#endif  // WARREN_WORKER_TASK_ADDRESS_H_
