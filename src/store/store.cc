#include "store/store.h"

namespace warren {

std::string_view KindName(Kind kind) {
  switch (kind) {
    case Kind::kService:
      return "service";
    case Kind::kTask:
      return "task";
    case Kind::kNode:
      return "node";
    case Kind::kRevision:
      return "revision";
    case Kind::kEvent:
      return "event";
    case Kind::kDeployment:
      return "deployment";
  }
  return "unknown";
}

}  // namespace warren
