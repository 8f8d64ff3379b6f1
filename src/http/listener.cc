#include "http/listener.h"

#include <stdexcept>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "http/http_server.h"
#include "spdlog/spdlog.h"

namespace warren {

namespace {

namespace net = boost::asio;

absl::Status SocketError(const std::string& addr, const boost::system::error_code& ec) {
  std::string text = ec.message();
  if (!text.empty()) text[0] = absl::ascii_tolower(static_cast<unsigned char>(text[0]));
  std::string msg = absl::StrCat(addr, ": ", text);
  if (ec == net::error::address_in_use) return absl::UnavailableError(msg);
  if (ec == net::error::access_denied) return absl::PermissionDeniedError(msg);
  if (ec == net::error::address_family_not_supported ||
      ec == boost::system::errc::address_not_available) {
    return absl::InvalidArgumentError(msg);
  }
  return absl::InternalError(msg);
}

}  // namespace

absl::Status ListenOn(net::ip::tcp::acceptor& acceptor, const std::string& addr) {
  auto host_port = SplitHostPort(addr);
  if (!host_port.ok()) return host_port.status();
  boost::system::error_code ec;
  std::string host = host_port->first == "localhost" ? "127.0.0.1" : host_port->first;
  net::ip::address ip = net::ip::make_address(host, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat(addr, ": \"", host_port->first, "\" is not an IP address"));
  }
  net::ip::tcp::endpoint endpoint(ip, static_cast<uint16_t>(host_port->second));
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return SocketError(addr, ec);
  return absl::OkStatus();
}

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
