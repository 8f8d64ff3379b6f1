#include "manager/prometheus.h"

#include <utility>

#include <boost/asio.hpp>
#include <boost/beast.hpp>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "http/safe_read.h"
#include "nlohmann/json.hpp"

namespace warren {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

std::string UrlEncode(const std::string& s) {
  std::string out;
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<double> ParsePrometheusResponse(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_object()) return absl::InvalidArgumentError("prometheus: response is not JSON");
  if (j.value("status", "") != "success") {
    return absl::FailedPreconditionError(
        absl::StrCat("prometheus: ", j.value("error", std::string("query failed"))));
  }
  const auto& data = j["data"];
  nlohmann::json value;
  if (data.value("resultType", "") == "scalar") {
    value = data["result"];
  } else if (data.contains("result") && data["result"].is_array() && !data["result"].empty()) {
    value = data["result"][0]["value"];
  } else {
    return absl::NotFoundError("prometheus: the query returned no sample");
  }
  if (!value.is_array() || value.size() != 2 || !value[1].is_string()) {
    return absl::InvalidArgumentError("prometheus: unexpected sample shape");
  }
  double v = 0;
  if (!absl::SimpleAtod(value[1].get<std::string>(), &v)) {
    return absl::InvalidArgumentError("prometheus: sample value is not a number");
  }
  return v;
}

absl::StatusOr<double> QueryPrometheus(const std::string& base_url, const std::string& query,
                                       absl::Duration timeout) {
  std::string rest = base_url;
  if (!absl::StartsWith(rest, "http://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("prometheus-url: \"", base_url, "\" must start with http://"));
  }
  rest = rest.substr(7);
  std::string prefix;
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    prefix = rest.substr(slash);
    rest = rest.substr(0, slash);
  }
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  std::string host = rest, port = "80";
  if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  net::ip::tcp::resolver resolver(ioc);
  http::request<http::empty_body> req{
      http::verb::get, absl::StrCat(prefix, "/api/v1/query?query=", UrlEncode(query)), 11};
  req.set(http::field::host, rest);
  req.set(http::field::connection, "close");
  // Bounds a header block, a chunk header and a trailer section (each buffered whole).
  beast::flat_buffer buffer(64 << 10);
  http::response_parser<http::string_body> parser;
  parser.header_limit(64 << 10);
  beast::error_code result = net::error::timed_out;
  stream.expires_after(absl::ToChronoMilliseconds(timeout));
  resolver.async_resolve(host, port, [&](beast::error_code ec, auto endpoints) {
    if (ec) {
      result = ec;
      return;
    }
    stream.async_connect(endpoints, [&](beast::error_code ec, auto) {
      if (ec) {
        result = ec;
        return;
      }
      http::async_write(stream, req, [&](beast::error_code ec, std::size_t) {
        if (ec) {
          result = ec;
          return;
        }
        // Beast's own read lets basic_fields' length_error (a 64 KiB field) escape run_for().
        SafeAsyncRead(stream, buffer, parser, ReadUntil::kMessage,
                      [&](beast::error_code ec, std::size_t) { result = ec; });
      });
    });
  });
  ioc.run_for(absl::ToChronoMilliseconds(timeout + absl::Milliseconds(100)));
  // end_of_stream: closed before any answer (a response ended by the close is complete).
  if (result || !parser.is_done()) {
    return absl::UnavailableError(absl::StrCat("prometheus at ", base_url, ": ",
                                               result ? result.message() : "incomplete answer"));
  }
  const http::response<http::string_body>& resp = parser.get();
  if (resp.result_int() != 200) {
    return absl::UnavailableError(
        absl::StrCat("prometheus at ", base_url, ": HTTP ", resp.result_int()));
  }
  return ParsePrometheusResponse(resp.body());
}

}  // namespace warren
