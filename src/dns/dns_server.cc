#include "dns/dns_server.h"

#include <sys/socket.h>

#include <cstring>

#include <array>
#include <boost/asio.hpp>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "http/listener.h"
#include "spdlog/spdlog.h"

namespace warren::dns {

namespace net = boost::asio;
using boost::system::error_code;
using net::ip::tcp;
using net::ip::udp;

namespace {

using ReusePort = net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
using FreeBind = net::detail::socket_option::boolean<IPPROTO_IP, IP_FREEBIND>;
using Reply = std::function<void(std::vector<uint8_t>)>;

uint16_t RandomId() {
  thread_local std::mt19937 rng{std::random_device{}()};
  return static_cast<uint16_t>(rng());
}

absl::Status BindError(const std::string& what, const error_code& ec) {
  return absl::UnavailableError(absl::StrCat("dns: ", what, ": ", ec.message()));
}

}  // namespace

absl::StatusOr<std::pair<std::string, uint16_t>> ParseUpstream(const std::string& text) {
  std::string host = text;
  uint32_t port = 53;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("upstream '", text, "': missing ']'"));
    }
    host = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':' || !absl::SimpleAtoi(text.substr(close + 2), &port)) {
        return absl::InvalidArgumentError(absl::StrCat("upstream '", text, "': bad port"));
      }
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    size_t colon = text.find(':');
    host = text.substr(0, colon);
    if (!absl::SimpleAtoi(text.substr(colon + 1), &port)) {
      return absl::InvalidArgumentError(absl::StrCat("upstream '", text, "': bad port"));
    }
  }
  if (port == 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("upstream '", text, "': port not in 1..65535"));
  }
  error_code ec;
  net::ip::make_address(host, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("upstream '", text, "': '", host, "' is not an IP address"));
  }
  return std::make_pair(host, static_cast<uint16_t>(port));
}

struct DnsServer::Impl {
  Impl(DnsServerOptions o, const ResolverCore& r)
      : options(std::move(o)),
        resolver(r),
        budget(options.budget ? *options.budget : DescriptorBudget::DataPlane()) {}

  DnsServerOptions options;
  const ResolverCore& resolver;
  DescriptorBudget& budget;
  // Before ioc: sessions destroyed with the io_context still count themselves out.
  std::atomic<size_t> tcp_connections{0};
  std::atomic<uint64_t> udp_queries{0}, tcp_queries{0}, forwarded{0}, forward_failures{0},
      dropped{0}, accept_errors{0};
  std::vector<udp::endpoint> upstreams;
  net::io_context ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::vector<std::unique_ptr<udp::socket>> udp_sockets;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<net::steady_timer> accept_pause;  // on the acceptor's strand
  AcceptBackoff backoff;
  std::vector<std::thread> threads;

  void ArmUdp(udp::socket* socket) {
    socket->async_wait(udp::socket::wait_read, [this, socket](const error_code& ec) {
      if (ec) return;
      DrainUdp(socket);
      ArmUdp(socket);
    });
  }

  // Reads every queued datagram before going back to the reactor: one wakeup serves a burst,
  // and a burst costs one recvmmsg and one sendmmsg instead of two syscalls a query.
  void DrainUdp(udp::socket* socket) {
    constexpr int kBatch = 32;
    // 1232 covers every EDNS0 query we accept; larger ones are truncated by the kernel and
    // then fail to parse (FORMERR), as any oversized query would.
    constexpr size_t kSlot = 4096;
    thread_local std::vector<uint8_t> in(kBatch * kSlot);
    thread_local std::vector<std::vector<uint8_t>> out(kBatch);
    const int fd = socket->native_handle();
    for (int round = 0; round < 8; ++round) {
      mmsghdr msgs[kBatch];
      iovec iovs[kBatch];
      sockaddr_storage addrs[kBatch];
      for (int i = 0; i < kBatch; ++i) {
        iovs[i] = {in.data() + i * kSlot, kSlot};
        msgs[i] = {};
        msgs[i].msg_hdr.msg_iov = &iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &addrs[i];
        msgs[i].msg_hdr.msg_namelen = sizeof(addrs[i]);
      }
      int got = ::recvmmsg(fd, msgs, kBatch, MSG_DONTWAIT, nullptr);
      if (got <= 0) return;  // EAGAIN, or the socket was closed
      mmsghdr replies[kBatch];
      iovec reply_iovs[kBatch];
      int n_replies = 0;
      for (int i = 0; i < got; ++i) {
        udp_queries.fetch_add(1, std::memory_order_relaxed);
        auto result = resolver.Answer(
            std::span<const uint8_t>(in.data() + i * kSlot, msgs[i].msg_len), Transport::kUdp);
        switch (result.action) {
          case ResolverCore::Result::Action::kRespond: {
            out[n_replies] = std::move(result.wire);
            reply_iovs[n_replies] = {out[n_replies].data(), out[n_replies].size()};
            replies[n_replies] = {};
            replies[n_replies].msg_hdr.msg_iov = &reply_iovs[n_replies];
            replies[n_replies].msg_hdr.msg_iovlen = 1;
            replies[n_replies].msg_hdr.msg_name = &addrs[i];
            replies[n_replies].msg_hdr.msg_namelen = msgs[i].msg_hdr.msg_namelen;
            n_replies++;
            break;
          }
          case ResolverCore::Result::Action::kForward: {
            udp::endpoint client;
            std::memcpy(client.data(), &addrs[i], msgs[i].msg_hdr.msg_namelen);
            Forward(std::move(result.wire), 0, [fd, client](std::vector<uint8_t> wire) {
              // A raw sendto: the reply can come from any thread, and the kernel call is safe
              // to make concurrently where the asio socket object is not.
              ::sendto(fd, wire.data(), wire.size(), MSG_DONTWAIT, client.data(), client.size());
            });
            break;
          }
          case ResolverCore::Result::Action::kDrop:
            dropped.fetch_add(1, std::memory_order_relaxed);
            break;
        }
      }
      for (int sent = 0; sent < n_replies;) {
        int r = ::sendmmsg(fd, replies + sent, n_replies - sent, MSG_DONTWAIT);
        if (r <= 0) break;  // a full socket buffer drops replies, as UDP may
        sent += r;
      }
      if (got < kBatch) return;
    }
  }

  static void SendUdp(udp::socket* socket, const udp::endpoint& to,
                      const std::vector<uint8_t>& wire) {
    ::sendto(socket->native_handle(), wire.data(), wire.size(), MSG_DONTWAIT, to.data(), to.size());
  }

  // Relays `query` to upstreams[attempt..] over UDP with a fresh id; the answer goes back with
  // the client's id. SERVFAIL when every upstream failed or timed out.
  void Forward(std::vector<uint8_t> query, size_t attempt, Reply reply) {
    if (attempt == 0) forwarded.fetch_add(1, std::memory_order_relaxed);
    // The query's own UDP socket is a descriptor: without one, fail now rather than later.
    DescriptorBudget::Lease fd;
    if (attempt < upstreams.size()) fd = budget.TryAcquire(1);
    if (!fd) {
      forward_failures.fetch_add(1, std::memory_order_relaxed);
      auto fail = resolver.ServerFailure(query);
      if (!fail.empty()) reply(std::move(fail));
      return;
    }
    auto op = std::make_shared<ForwardOp>(this, std::move(query), attempt, std::move(reply),
                                          std::move(fd));
    op->Start();
  }

  // One upstream attempt. Owned by its pending handlers; on failure it hands the query to the
  // next upstream.
  struct ForwardOp : std::enable_shared_from_this<ForwardOp> {
    ForwardOp(Impl* impl, std::vector<uint8_t> q, size_t attempt, Reply reply,
              DescriptorBudget::Lease fd)
        : fd(std::move(fd)),
          impl(impl),
          socket(impl->ioc),
          timer(impl->ioc),
          query(std::move(q)),
          attempt(attempt),
          reply(std::move(reply)),
          upstream(impl->upstreams[attempt]) {}

    DescriptorBudget::Lease fd;  // declared first: returned after the socket closed
    Impl* impl;
    udp::socket socket;
    net::steady_timer timer;
    std::vector<uint8_t> query;
    size_t attempt;
    Reply reply;
    udp::endpoint upstream;
    udp::endpoint from;
    std::array<uint8_t, kMaxMessageSize> buf;
    uint16_t client_id = 0;
    uint16_t upstream_id = 0;

    void Start() {
      client_id = static_cast<uint16_t>((query[0] << 8) | query[1]);
      upstream_id = RandomId();
      SetId(upstream_id);
      error_code ec;
      socket.open(upstream.protocol(), ec);
      if (!ec) socket.send_to(net::buffer(query), upstream, 0, ec);
      if (ec) return Next();
      timer.expires_after(impl->options.upstream_timeout);
      timer.async_wait([self = shared_from_this()](const error_code& ec) {
        if (!ec) {
          error_code ignored;
          self->socket.close(ignored);
        }
      });
      Receive();
    }

    void Receive() {
      socket.async_receive_from(
          net::buffer(buf), from, [self = shared_from_this()](error_code ec, size_t n) {
            if (ec) return self->Next();
            // Ignore stray datagrams: wrong source, wrong id, or not a response.
            if (self->from != self->upstream || n < kHeaderSize ||
                ((self->buf[0] << 8) | self->buf[1]) != self->upstream_id ||
                !(self->buf[2] & 0x80)) {
              return self->Receive();
            }
            self->timer.cancel();
            std::vector<uint8_t> answer(self->buf.begin(), self->buf.begin() + n);
            answer[0] = static_cast<uint8_t>(self->client_id >> 8);
            answer[1] = static_cast<uint8_t>(self->client_id);
            self->reply(std::move(answer));
          });
    }

    void SetId(uint16_t id) {
      query[0] = static_cast<uint8_t>(id >> 8);
      query[1] = static_cast<uint8_t>(id);
    }

    void Next() {
      timer.cancel();
      error_code ignored;
      socket.close(ignored);
      fd.Reset();
      SetId(client_id);
      impl->Forward(std::move(query), attempt + 1, std::move(reply));
    }
  };

  struct Session : std::enable_shared_from_this<Session> {
    Session(Impl* impl, tcp::socket s, DescriptorBudget::Lease l)
        : fd(std::move(l)), impl(impl), socket(std::move(s)), timer(socket.get_executor()) {}
    ~Session() { impl->tcp_connections.fetch_sub(1); }

    DescriptorBudget::Lease fd;  // declared first: returned after the socket closed
    Impl* impl;
    tcp::socket socket;
    net::steady_timer timer;
    std::array<uint8_t, 2> len_buf{};
    std::vector<uint8_t> body;
    std::vector<uint8_t> out;

    // Closes the connection unless the next read or write completes within the idle timeout.
    void ArmTimer() {
      timer.expires_after(impl->options.tcp_idle_timeout);
      timer.async_wait([self = shared_from_this()](const error_code& ec) {
        if (!ec) {
          error_code ignored;
          self->socket.close(ignored);
        }
      });
    }

    void ReadNext() {
      ArmTimer();
      net::async_read(
          socket, net::buffer(len_buf), [self = shared_from_this()](error_code ec, size_t) {
            if (ec) return self->Close();
            size_t len = (self->len_buf[0] << 8) | self->len_buf[1];
            if (len == 0) return self->Close();
            self->body.resize(len);
            net::async_read(self->socket, net::buffer(self->body), [self](error_code ec, size_t) {
              if (ec) return self->Close();
              self->timer.cancel();
              self->Handle();
            });
          });
    }

    void Handle() {
      impl->tcp_queries.fetch_add(1, std::memory_order_relaxed);
      auto result = impl->resolver.Answer(body, Transport::kTcp);
      switch (result.action) {
        case ResolverCore::Result::Action::kRespond:
          Write(std::move(result.wire));
          break;
        case ResolverCore::Result::Action::kForward:
          impl->Forward(
              std::move(result.wire), 0, [self = shared_from_this()](std::vector<uint8_t> wire) {
                net::post(self->socket.get_executor(), [self, wire = std::move(wire)]() mutable {
                  self->Write(std::move(wire));
                });
              });
          break;
        case ResolverCore::Result::Action::kDrop:
          impl->dropped.fetch_add(1, std::memory_order_relaxed);
          Close();
          break;
      }
    }

    void Write(std::vector<uint8_t> wire) {
      out.clear();
      out.push_back(static_cast<uint8_t>(wire.size() >> 8));
      out.push_back(static_cast<uint8_t>(wire.size()));
      out.insert(out.end(), wire.begin(), wire.end());
      // A client that does not read its answers must not hold the connection forever.
      ArmTimer();
      net::async_write(socket, net::buffer(out),
                       [self = shared_from_this()](error_code ec, size_t) {
                         if (ec) return self->Close();
                         self->ReadNext();
                       });
    }

    void Close() {
      error_code ignored;
      timer.cancel();
      socket.close(ignored);
    }
  };

  void Accept() {
    acceptor->async_accept(net::make_strand(ioc), [this](error_code ec, tcp::socket s) {
      if (ec == net::error::operation_aborted || !acceptor->is_open()) return;
      if (ec) {
        // Out of descriptors every accept fails at once: pause instead of spinning.
        if (auto pause = backoff.OnError(ec); pause.count() > 0) {
          accept_errors.fetch_add(1, std::memory_order_relaxed);
          accept_pause->expires_after(pause);
          accept_pause->async_wait([this](const error_code& wait_ec) {
            if (!wait_ec) Accept();
          });
          return;
        }
        return Accept();
      }
      backoff.OnSuccess();
      DescriptorBudget::Lease fd;
      if (tcp_connections.fetch_add(1) < options.max_tcp_connections) {
        fd = budget.TryAcquire(1);
      }
      if (!fd) {
        tcp_connections.fetch_sub(1);
        error_code ignored;
        s.close(ignored);
      } else {
        auto session = std::make_shared<Session>(this, std::move(s), std::move(fd));
        net::post(session->socket.get_executor(), [session] { session->ReadNext(); });
      }
      Accept();
    });
  }
};

DnsServer::DnsServer(DnsServerOptions options, const ResolverCore& resolver)
    : impl_(std::make_unique<Impl>(std::move(options), resolver)) {}

DnsServer::~DnsServer() { Stop(); }

absl::Status DnsServer::Start() {
  Impl& impl = *impl_;
  const auto& o = impl.options;
  error_code ec;
  auto address = net::ip::make_address(o.address, ec);
  if (ec)
    return absl::InvalidArgumentError(
        absl::StrCat("dns address '", o.address, "' is not an IP address"));
  int n = std::max(1, o.threads);
  uint16_t port = o.port;
  // UDP and TCP share one port number. With port 0 the kernel picks a free UDP port, which
  // may be taken for TCP: try again with another one then.
  const int attempts = o.port == 0 ? 20 : 1;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    port = o.port;
    impl.udp_sockets.clear();
    impl.acceptor.reset();
    ec.clear();
    for (int i = 0; i < n; ++i) {
      auto s = std::make_unique<udp::socket>(impl.ioc);
      udp::endpoint ep(address, port);
      s->open(ep.protocol(), ec);
      if (!ec) s->set_option(ReusePort(true), ec);
      if (!ec && o.freebind && address.is_v4()) s->set_option(FreeBind(true), ec);
      if (!ec) s->bind(ep, ec);
      if (!ec) s->non_blocking(true, ec);
      if (ec) return BindError(absl::StrCat("udp ", o.address, ":", port), ec);
      port = s->local_endpoint().port();
      impl.udp_sockets.push_back(std::move(s));
    }
    impl.acceptor = std::make_unique<tcp::acceptor>(impl.ioc);
    tcp::endpoint tep(address, port);
    impl.acceptor->open(tep.protocol(), ec);
    if (!ec) impl.acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec && o.freebind && address.is_v4()) impl.acceptor->set_option(FreeBind(true), ec);
    if (!ec) impl.acceptor->bind(tep, ec);
    if (!ec) impl.acceptor->listen(net::socket_base::max_listen_connections, ec);
    if (!ec) break;
    if (attempt + 1 == attempts) return BindError(absl::StrCat("tcp ", o.address, ":", port), ec);
  }
  port_ = port;

  for (const auto& u : o.upstreams) {
    auto parsed = ParseUpstream(u);
    if (!parsed.ok()) return parsed.status();
    udp::endpoint ep(net::ip::make_address(parsed->first), parsed->second);
    if (ep == udp::endpoint(address, port)) continue;
    impl.upstreams.push_back(ep);
  }

  impl.work.emplace(impl.ioc.get_executor());
  for (auto& s : impl.udp_sockets) impl.ArmUdp(s.get());
  impl.accept_pause = std::make_unique<net::steady_timer>(impl.acceptor->get_executor());
  impl.Accept();
  for (int i = 0; i < n; ++i) {
    impl.threads.emplace_back([&impl] {
      // The last line of defence: whatever a handler throws, DNS keeps answering.
      for (;;) {
        try {
          impl.ioc.run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("dns: unexpected exception in an io handler: {}", e.what());
        }
      }
    });
  }
  return absl::OkStatus();
}

void DnsServer::Stop() {
  if (!impl_) return;
  Impl& impl = *impl_;
  impl.work.reset();
  impl.ioc.stop();
  for (auto& t : impl.threads) t.join();
  impl.threads.clear();
}

DnsServer::Stats DnsServer::stats() const {
  return Stats{impl_->udp_queries.load(),  impl_->tcp_queries.load(),
               impl_->forwarded.load(),    impl_->forward_failures.load(),
               impl_->dropped.load(),      impl_->tcp_connections.load(),
               impl_->accept_errors.load()};
}

}  // namespace warren::dns
