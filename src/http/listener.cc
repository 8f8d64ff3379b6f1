#include "http/listener.h"

#include <stdexcept>

#include "spdlog/spdlog.h"

namespace warren {

void LogEscapedException::operator()(std::exception_ptr e) const {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::error("{}: unexpected exception, connection dropped: {}", where, ex.what());
  } catch (...) {
    spdlog::error("{}: unexpected exception, connection dropped", where);
  }
}

}  // namespace warren
