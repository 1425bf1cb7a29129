#include "cp/ike/daemon/daemon.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <sstream>

#include "cp/ike/config/config.h"
#include "cp/ike/engine/shm_backend.h"

namespace cygnet::ike {

namespace {

std::uint64_t now_ms() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

void say(const std::string& s) { std::cerr << "cygnet-ike: " << s << std::endl; }

std::string hex(std::span<const std::uint8_t> b) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (std::uint8_t x : b) {
    s += d[x >> 4];
    s += d[x & 15];
  }
  return s;
}

std::string hex32(std::uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", v);
  return b;
}

// Seconds from now to an engine time (0: never), for `ike list`.
long long secs_until(std::uint64_t at_ms, std::uint64_t now_ms) {
  if (at_ms == 0) return -1;
  return at_ms <= now_ms ? 0 : static_cast<long long>((at_ms - now_ms + 999) / 1000);
}

std::string hex64(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

// Installs nothing; says what it would install (keys only with --log-keys).
class LogBackend : public Backend {
 public:
  explicit LogBackend(bool keys) : keys_(keys) {}
  Result<void> install_child(const ChildSaSpec& c) override {
    std::ostringstream o;
    o << "child-sa install conn=" << c.connection << " reqid=" << c.reqid << " in=" << hex32(c.inbound.spi)
      << " out=" << hex32(c.outbound.spi) << " cipher=" << cipher_info(c.outbound.cipher).name
      << " integ=" << integ_info(c.outbound.integ).name << " encap=" << (c.outbound.encap.enabled ? "yes" : "no")
      << " mode=" << (c.outbound.mode == Mode::tunnel ? "tunnel" : "transport") << " policies=" << c.policies.size();
    for (const Policy& p : c.policies) o << " [" << (p.dir == PolicyDir::out ? "out " : "in ") << p.sel.to_string() << "]";
    if (keys_) {
      o << " key_in=" << hex(c.inbound.cipher_key.bytes()) << " key_out=" << hex(c.outbound.cipher_key.bytes())
        << " integ_in=" << hex(c.inbound.integ_key.bytes()) << " integ_out=" << hex(c.outbound.integ_key.bytes());
    }
    std::cout << o.str() << std::endl;
    return {};
  }
  Result<void> remove_child(const ChildSaSpec& c) override {
    std::cout << "child-sa remove conn=" << c.connection << " reqid=" << c.reqid << " in=" << hex32(c.inbound.spi)
              << " out=" << hex32(c.outbound.spi) << std::endl;
    return {};
  }
  Result<void> install_trap(const TrapSpec& t) override {
    std::ostringstream o;
    o << "trap install conn=" << t.connection << " reqid=" << t.reqid << " policies=" << t.policies.size();
    for (const Policy& p : t.policies) o << " [" << p.sel.to_string() << "]";
    std::cout << o.str() << std::endl;
    return {};
  }
  Result<void> remove_trap(const TrapSpec& t) override {
    std::cout << "trap remove conn=" << t.connection << " reqid=" << t.reqid << std::endl;
    return {};
  }

 private:
  bool keys_;
};

// Installs nothing and says nothing (benchmarks: bench/ike/compare.sh).
class NullBackend : public Backend {
 public:
  Result<void> install_child(const ChildSaSpec&) override { return {}; }
  Result<void> remove_child(const ChildSaSpec&) override { return {}; }
};

struct Sock {
  int fd = -1;
  Family family = Family::ipv4;
  std::uint16_t port = 0;
};

// The two address families' socket structures, each way.
socklen_t to_sockaddr(const Endpoint& e, sockaddr_storage& out) {
  if (e.addr.family == Family::ipv4) {
    auto* a = reinterpret_cast<sockaddr_in*>(&out);
    a->sin_family = AF_INET;
    a->sin_port = htons(e.port);
    std::memcpy(&a->sin_addr, e.addr.bytes.data(), 4);
    return sizeof *a;
  }
  auto* a = reinterpret_cast<sockaddr_in6*>(&out);
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(e.port);
  std::memcpy(&a->sin6_addr, e.addr.bytes.data(), 16);
  return sizeof *a;
}

std::optional<Endpoint> from_sockaddr(const sockaddr_storage& s) {
  if (s.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&s);
    return Endpoint{IpAddress::v4_bytes(reinterpret_cast<const std::uint8_t*>(&a->sin_addr)), ntohs(a->sin_port)};
  }
  if (s.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&s);
    return Endpoint{IpAddress::v6_bytes(reinterpret_cast<const std::uint8_t*>(&a->sin6_addr)), ntohs(a->sin6_port)};
  }
  return std::nullopt;
}

// The source address of a datagram we send (IP_PKTINFO / IPV6_PKTINFO).
void set_source(msghdr& m, char* ctl, const IpAddress& local) {
  const bool v4 = local.family == Family::ipv4;
  const std::size_t len = v4 ? sizeof(in_pktinfo) : sizeof(in6_pktinfo);
  m.msg_control = ctl;
  m.msg_controllen = CMSG_SPACE(len);
  cmsghdr* c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = v4 ? IPPROTO_IP : IPPROTO_IPV6;
  c->cmsg_type = v4 ? IP_PKTINFO : IPV6_PKTINFO;
  c->cmsg_len = CMSG_LEN(len);
  if (v4) {
    in_pktinfo pi{};
    std::memcpy(&pi.ipi_spec_dst, local.bytes.data(), 4);
    std::memcpy(CMSG_DATA(c), &pi, sizeof pi);
  } else {
    in6_pktinfo pi{};
    std::memcpy(&pi.ipi6_addr, local.bytes.data(), 16);
    std::memcpy(CMSG_DATA(c), &pi, sizeof pi);
  }
}

// The local address a datagram came to (none if the kernel did not say).
IpAddress destination_of(msghdr& m) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      in_pktinfo pi;
      std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
      return IpAddress::v4_bytes(reinterpret_cast<const std::uint8_t*>(&pi.ipi_addr));
    }
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      in6_pktinfo pi;
      std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
      return IpAddress::v6_bytes(reinterpret_cast<const std::uint8_t*>(&pi.ipi6_addr));
    }
  }
  return IpAddress{};
}

Result<Sock> open_udp(Family f, std::uint16_t port) {
  Sock s;
  s.family = f;
  s.port = port;
  s.fd = ::socket(f == Family::ipv4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s.fd < 0) return make_error(std::string("socket: ") + std::strerror(errno));
  // No SO_REUSEADDR: a second cygnet-ike on the same ports must fail to
  // start, not share (and split) the datagrams.
  const int one = 1;
  if (f == Family::ipv4) {
    ::setsockopt(s.fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
  } else {
    ::setsockopt(s.fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    ::setsockopt(s.fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
  }
  IpAddress any;
  any.family = f;  // all zero: the wildcard address
  sockaddr_storage a{};
  const socklen_t alen = to_sockaddr(Endpoint{any, port}, a);
  const int r = ::bind(s.fd, reinterpret_cast<sockaddr*>(&a), alen);
  if (r != 0) {
    const int e = errno;
    ::close(s.fd);
    return make_error("bind UDP " + std::string(f == Family::ipv4 ? "IPv4" : "IPv6") + " port " +
                      std::to_string(port) + ": " + std::strerror(e));
  }
  return s;
}

class UdpTransport : public Transport {
 public:
  explicit UdpTransport(std::vector<Sock> socks) : socks_(std::move(socks)) {}
  ~UdpTransport() override {
    for (Sock& s : socks_) ::close(s.fd);
  }
  const std::vector<Sock>& sockets() const { return socks_; }

  void send(const Endpoint& local, const Endpoint& remote, std::span<const std::uint8_t> payload) override {
    const Sock* s = nullptr;
    for (const Sock& x : socks_) {
      if (x.family == remote.addr.family && x.port == local.port) s = &x;
    }
    if (s == nullptr) {
      say("no socket for " + local.to_string() + " -> " + remote.to_string());
      return;
    }
    iovec iov{const_cast<std::uint8_t*>(payload.data()), payload.size()};
    sockaddr_storage to{};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_name = &to;
    m.msg_namelen = to_sockaddr(remote, to);
    alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(in6_pktinfo))] = {};
    if (!local.addr.is_unspecified()) set_source(m, ctl, local.addr);
    if (::sendmsg(s->fd, &m, 0) < 0) say("send to " + remote.to_string() + ": " + std::strerror(errno));
  }

  // Reads every datagram waiting on sock i into the engine.
  void drain(std::size_t i, Engine& e) {
    const Sock& s = socks_[i];
    std::uint8_t buf[65536];
    for (;;) {
      iovec iov{buf, sizeof buf};
      sockaddr_storage from{};
      alignas(cmsghdr) char ctl[256];
      msghdr m{};
      m.msg_name = &from;
      m.msg_namelen = sizeof from;
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      m.msg_control = ctl;
      m.msg_controllen = sizeof ctl;
      const ssize_t n = ::recvmsg(s.fd, &m, 0);
      if (n < 0) return;  // EAGAIN: drained
      const std::optional<Endpoint> remote = from_sockaddr(from);
      const Endpoint local{destination_of(m), s.port};
      if (!remote || local.addr.family == Family::none) continue;
      e.on_datagram(local, *remote, std::span<const std::uint8_t>(buf, static_cast<std::size_t>(n)), now_ms());
    }
  }

 private:
  std::vector<Sock> socks_;
};

Result<int> open_control(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) ::mkdir(path.substr(0, slash).c_str(), 0750);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) return make_error("control socket path too long: " + path);
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(std::string("socket: ") + std::strerror(errno));
  ::unlink(path.c_str());
  const mode_t old = ::umask(0077);  // root (or the owner) only: it starts and stops tunnels
  const int r = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::umask(old);
  if (r != 0 || ::listen(fd, 8) != 0) {
    const int e = errno;
    ::close(fd);
    return make_error("control socket " + path + ": " + std::strerror(e));
  }
  return fd;
}

void serve_control(int lfd, Control& e) {
  for (;;) {
    const int c = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    // One line, read with a short deadline: a stuck client cannot hold the daemon.
    std::string line;
    char buf[512];
    pollfd p{c, POLLIN, 0};
    while (line.find('\n') == std::string::npos && line.size() < 4096 && ::poll(&p, 1, 200) > 0) {
      const ssize_t n = ::read(c, buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, static_cast<std::size_t>(n));
    }
    if (auto nl = line.find('\n'); nl != std::string::npos) line.resize(nl);
    const std::string answer = control_answer(e, line, now_ms());
    for (std::size_t off = 0; off < answer.size();) {
      const ssize_t n = ::write(c, answer.data() + off, answer.size() - off);
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    ::close(c);
  }
}

std::string json_str(std::string_view s) {
  std::string o = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') o += '\\';
    if (static_cast<unsigned char>(ch) < 0x20) continue;
    o += ch;
  }
  return o + "\"";
}

// A byte or packet expiry from cygnet-dp, for the Child SA that has the SA
// (by our inbound SPI, or the peer's for an outbound SA).
void on_expiry(Engine& e, const ShmBackend::Expiry& x, std::uint64_t now) {
  for (const IkeSaInfo& s : e.ike_sas()) {
    for (const ChildSaInfo& c : s.children) {
      if ((x.dir == Direction::in ? c.spi_in : c.spi_out) != x.spi) continue;
      say(s.connection + ": cygnet-dp: " + (x.hard ? "hard" : "soft") + " byte/packet limit of SA " + hex32(x.spi) +
          " (" + direction_name(x.dir) + ")" + (x.hard ? ", deleting the Child SA" : ", rekeying the Child SA"));
      e.on_child_expire(c.spi_in, x.hard, now);
      return;
    }
  }
}

}  // namespace

static std::string usage_text(Backend* b, std::uint32_t spi, Direction dir, const IpAddress& dst, bool json) {
  const std::optional<SaUsage> u = b != nullptr ? b->usage(spi, dir, dst) : std::nullopt;
  if (json) {
    if (!u) return "null";
    return "{\"packets\":" + std::to_string(u->packets) + ",\"bytes\":" + std::to_string(u->bytes) + "}";
  }
  if (!u) return "-";
  return std::to_string(u->packets) + " packets, " + std::to_string(u->bytes) + " bytes";
}

std::string control_answer(Control& ctl, std::string_view line, std::uint64_t now) {
  Engine& e = ctl.engine;
  std::string cmd(line.substr(0, line.find(' ')));
  std::string arg = line.find(' ') == std::string_view::npos ? "" : std::string(line.substr(line.find(' ') + 1));
  auto result = [](const Result<void>& r, const std::string& ok) {
    return r ? "ok\n" + ok + "\n" : "error: " + r.error().message + "\n";
  };
  if (cmd == "initiate") return result(e.initiate(arg, now), "initiating " + arg);
  if (cmd == "terminate") return result(e.terminate(arg, now), "terminating " + arg);
  if (cmd == "liveness") return result(e.check_liveness(arg, now), "liveness check sent on " + arg);
  if (cmd == "rekey") return result(e.rekey(arg, false, now), "rekeying a Child SA of " + arg);
  if (cmd == "rekey-ike") return result(e.rekey(arg, true, now), "rekeying the IKE SA of " + arg);
  if (cmd == "child") return result(e.create_child(arg, now), "asking for one more Child SA on " + arg);
  if (cmd == "load") {
    if (!ctl.load) return "error: this daemon cannot reload its configuration\n";
    auto c = ctl.load();
    if (!c) return "error: " + c.error().message + " (the running configuration is unchanged)\n";
    auto r = e.reload(std::move(*c), now);
    if (!r) return "error: " + r.error().message + "\n";
    return "ok\nloaded: " + *r + "\n";
  }
  if (cmd == "stats") {
    const EngineStats& s = e.stats();
    std::ostringstream o;
    o << "ok\nrx " << s.rx << "\ntx " << s.tx << "\nretransmits " << s.retransmits << "\ndropped " << s.dropped
      << "\ndup_requests " << s.dup_requests << "\ncookies_sent " << s.cookies_sent << "\ninvalid_ke_sent "
      << s.invalid_ke_sent << "\nno_proposal_sent " << s.no_proposal_sent << "\nauth_failed " << s.auth_failed
      << "\nike_established " << s.ike_established << "\nchild_installed " << s.child_installed
      << "\nchild_removed " << s.child_removed << "\nchild_rekeyed " << s.child_rekeyed << "\nike_rekeyed "
      << s.ike_rekeyed << "\nrekey_collisions " << s.rekey_collisions << "\nexpired " << s.expired
      << "\nts_unacceptable " << s.ts_unacceptable << "\nmode_refused " << s.mode_refused
      << "\ntimeouts " << s.timeouts << "\nkeepalives_sent " << s.keepalives_sent << "\nhalf_open " << e.half_open()
      << "\n";
    return o.str();
  }
  if (cmd == "list") {
    const bool json = arg == "json";
    std::ostringstream o;
    o << "ok\n";
    if (json) o << "[";
    bool first = true;
    for (const IkeSaInfo& s : e.ike_sas()) {
      const std::string suite = s.suite ? cfg::to_string(*s.suite) : "-";
      if (json) {
        o << (first ? "" : ",") << "{\"connection\":" << json_str(s.connection) << ",\"state\":\""
          << state_name(s.state) << "\",\"initiator\":" << (s.initiator ? "true" : "false") << ",\"spi_i\":\""
          << hex64(s.spi_i) << "\",\"spi_r\":\"" << hex64(s.spi_r) << "\",\"local\":" << json_str(s.local.to_string())
          << ",\"remote\":" << json_str(s.remote.to_string()) << ",\"peer_id\":" << json_str(s.peer_id.to_string())
          << ",\"proposal\":" << json_str(suite) << ",\"nat_local\":" << (s.nat_local ? "true" : "false")
          << ",\"nat_remote\":" << (s.nat_remote ? "true" : "false") << ",\"rekey_in_s\":" << secs_until(s.rekey_at_ms, now)
          << ",\"expire_in_s\":" << secs_until(s.expire_at_ms, now) << ",\"rekeyed\":" << (s.rekeyed ? "true" : "false")
          << ",\"children\":[";
        bool cf = true;
        for (const ChildSaInfo& c : s.children) {
          o << (cf ? "" : ",") << "{\"reqid\":" << c.reqid << ",\"spi_in\":\"" << hex32(c.spi_in)
            << "\",\"spi_out\":\"" << hex32(c.spi_out) << "\",\"proposal\":" << json_str(cfg::to_string(c.suite))
            << ",\"mode\":\"" << (c.mode == Mode::tunnel ? "tunnel" : "transport")
            << "\",\"encap\":" << (c.encap ? "true" : "false") << ",\"rekey_in_s\":" << secs_until(c.rekey_at_ms, now)
            << ",\"expire_in_s\":" << secs_until(c.expire_at_ms, now) << ",\"rekeyed\":" << (c.rekeyed ? "true" : "false")
            << ",\"local_ts\":[";
          for (std::size_t i = 0; i < c.local_ts.size(); ++i) o << (i ? "," : "") << json_str(to_string(c.local_ts[i]));
          o << "],\"remote_ts\":[";
          for (std::size_t i = 0; i < c.remote_ts.size(); ++i) o << (i ? "," : "") << json_str(to_string(c.remote_ts[i]));
          o << "],\"in\":" << usage_text(ctl.backend, c.spi_in, Direction::in, s.local.addr, true)
            << ",\"out\":" << usage_text(ctl.backend, c.spi_out, Direction::out, s.remote.addr, true) << "}";
          cf = false;
        }
        o << "]}";
      } else {
        o << s.connection << ": " << state_name(s.state) << ", " << (s.initiator ? "initiator" : "responder") << ", "
          << s.local.to_string() << " <-> " << s.remote.to_string() << " (" << s.peer_id.to_string() << "), SPIs "
          << hex64(s.spi_i) << "_i " << hex64(s.spi_r) << "_r, " << suite
          << (s.nat_local || s.nat_remote ? ", NAT-T" : "") << ", rekey in " << secs_until(s.rekey_at_ms, now)
          << "s, expires in " << secs_until(s.expire_at_ms, now) << "s" << (s.rekeyed ? ", rekeyed" : "") << "\n";
        for (const ChildSaInfo& c : s.children) {
          o << "  child reqid " << c.reqid << ": " << hex32(c.spi_in) << "_i " << hex32(c.spi_out) << "_o, "
            << cfg::to_string(c.suite) << ", " << (c.mode == Mode::tunnel ? "tunnel" : "transport")
            << (c.encap ? ", UDP-encapsulated" : "") << ", rekey in " << secs_until(c.rekey_at_ms, now)
            << "s, expires in " << secs_until(c.expire_at_ms, now) << "s" << (c.rekeyed ? ", rekeyed" : "") << "\n    ";
          for (const TsRange& t : c.local_ts) o << to_string(t) << " ";
          o << "=== ";
          for (const TsRange& t : c.remote_ts) o << to_string(t) << " ";
          o << "\n    in: " << usage_text(ctl.backend, c.spi_in, Direction::in, s.local.addr, false)
            << "; out: " << usage_text(ctl.backend, c.spi_out, Direction::out, s.remote.addr, false) << "\n";
        }
      }
      first = false;
    }
    if (json) {
      o << "]\n";
    } else {
      for (const Engine::TrapInfo& t : e.traps()) {
        o << t.connection << ": trap, reqid " << t.reqid << ", " << t.policies << " policies\n";
      }
    }
    return o.str();
  }
  return "error: unknown command '" + cmd + "' (initiate, terminate, liveness, rekey, rekey-ike, child, list [json], stats, load)\n";
}

int run_daemon(const DaemonOptions& opt, std::atomic<bool>* stop) {
  cfg::IkeLoadOptions lo;
  std::vector<std::string> warnings;
  lo.secrets_path = opt.secrets_path;
  lo.warnings = &warnings;
  auto cfg = cfg::load_ike_file(opt.config_path, lo);
  if (!cfg) {
    say(cfg.error().message);
    return 2;
  }
  for (const auto& w : warnings) say("warning: " + w);
  std::unique_ptr<Backend> backend;
  ShmBackend* shm = nullptr;
  if (opt.backend == "log") {
    backend = std::make_unique<LogBackend>(opt.log_keys);
  } else if (opt.backend == "null") {
    backend = std::make_unique<NullBackend>();
  } else if (opt.backend == "shm") {
    ShmBackend::Options so;
    so.state_path = opt.state_path.empty() ? "/run/cygnet/ike-" + cfg->dataplane_instance + ".state" : opt.state_path;
    if (auto d = so.state_path.rfind('/'); d != std::string::npos && d > 0) {
      ::mkdir(so.state_path.substr(0, d).c_str(), 0750);  // as for the control socket
    }
    auto b = ShmBackend::attach(cfg->dataplane_instance, so);
    if (!b) {
      say(b.error().message);
      return 1;
    }
    shm = b->get();
    backend = std::move(*b);
    // What an earlier cygnet-ike left in this cygnet-dp has no keys behind it any more.
    auto left = shm->remove_leftovers();
    if (!left) {
      say("removing what an earlier cygnet-ike installed: " + left.error().message);
    } else if (*left > 0) {
      say("removed " + std::to_string(*left) + " SAs and policies an earlier cygnet-ike left in cygnet-dp");
    }
  } else {
    say("unknown backend '" + opt.backend + "' (shm, log, null)");
    return 2;
  }
  bool v6 = false;
  for (const Connection& c : cfg->connections) v6 |= c.local_addr.family == Family::ipv6;
  std::vector<Sock> socks;
  for (Family f : {Family::ipv4, Family::ipv6}) {
    if (f == Family::ipv6 && !v6) continue;
    for (std::uint16_t port : {std::uint16_t{500}, std::uint16_t{4500}}) {
      auto s = open_udp(f, port);
      if (!s) {
        say(s.error().message);
        for (Sock& x : socks) ::close(x.fd);
        return 1;
      }
      socks.push_back(*s);
    }
  }
  UdpTransport udp(std::move(socks));
  const std::string control =
      opt.control_path.empty() ? "/run/cygnet/ike-" + cfg->dataplane_instance + ".sock" : opt.control_path;
  auto lfd = open_control(control);
  if (!lfd) {
    say(lfd.error().message);
    return 1;
  }
  Engine::Log log;
  if (!opt.quiet) log = [](std::string_view s) { say(std::string(s)); };
  Engine engine(std::move(*cfg), *backend, udp, std::move(log));
  say("ready: " + std::to_string(engine.config().connections.size()) + " connections, control " + control +
      ", backend " + opt.backend);
  (void)engine.start(now_ms());  // each problem is logged
  Control ctl{engine, backend.get(), [&]() -> Result<IkeConfig> {
                std::vector<std::string> w;
                cfg::IkeLoadOptions again;
                again.secrets_path = opt.secrets_path;
                again.warnings = &w;
                auto c = cfg::load_ike_file(opt.config_path, again);
                for (const auto& x : w) say("warning: " + x);
                return c;
              }};
  std::vector<pollfd> fds;
  for (const Sock& s : udp.sockets()) fds.push_back(pollfd{s.fd, POLLIN, 0});
  fds.push_back(pollfd{*lfd, POLLIN, 0});
  std::uint64_t last_resync = 0, last_tick = 0;
  while (!stop->load()) {
    for (auto& p : fds) p.revents = 0;
    const int n = ::poll(fds.data(), fds.size(), 100);
    if (n < 0 && errno != EINTR) break;
    for (std::size_t i = 0; i + 1 < fds.size(); ++i) {
      if (fds[i].revents & POLLIN) udp.drain(i, engine);
    }
    if (fds.back().revents & POLLIN) serve_control(*lfd, ctl);
    const std::uint64_t now = now_ms();
    if (shm != nullptr) {
      for (std::uint32_t reqid : shm->take_acquires()) engine.on_acquire(reqid, now);
      for (const ShmBackend::Expiry& x : shm->take_expiries()) on_expiry(engine, x, now);
      for (const std::string& w : shm->take_warnings()) say("warning: " + w);
    }
    // tick() walks every IKE SA: every 50 ms, not after every datagram
    // (retransmissions are due in steps of retransmit_base_ms >= 50 ms).
    if (now - last_tick >= 50) {
      last_tick = now;
      engine.tick(now);
    }
    if (shm != nullptr && now - last_resync >= 1000) {
      last_resync = now;
      auto r = shm->resync();
      if (!r) say(r.error().message);
      else if (*r > 0) say("cygnet-dp restarted: pushed " + std::to_string(*r) + " Child SAs and traps again");
    }
  }
  // Leave cleanly: tell the peers.
  for (const IkeSaInfo& s : engine.ike_sas()) {
    if (s.state == IkeState::established) (void)engine.terminate(s.connection, now_ms());
  }
  ::close(*lfd);
  ::unlink(control.c_str());
  say("stopped");
  return 0;
}

}  // namespace cygnet::ike
