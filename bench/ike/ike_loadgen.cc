// ike_loadgen: opens IKE SAs (IKE_SA_INIT + IKE_AUTH with PSK and the first
// Child SA) against a responder over UDP, N outstanding at a time, and counts
// the IKE_AUTH responses that carry a verified AUTH and a Child SA. After
// each set-up it sends a Delete of the IKE SA (the responder's memory stays
// flat); --no-delete abandons them instead. The initiator side is
// bench/ike/initiator.h: real key exchange, keys and AUTH.
// docs/benchmarks.md "IKE set-ups"; bench/ike/compare.sh runs it against
// cygnet-ike and strongSwan's charon.
//
// Output: one line per second on stderr (unless --quiet), then one line on
// stdout:
//   RESULT setups=N window_s=S rate=R resp_cpu=C per_core=P gen_cpu=G ...
// rate: set-ups per second over the window (after --warmup); resp_cpu: the
// responder's CPU time in the window (from /proc/PID/stat, all threads) per
// second of the window, i.e. the cores it used; per_core = setups / its CPU
// seconds. gen_cpu: ours, the same way. cpu_busy: the busy share of
// --responder-cpu (everyone's) from /proc/stat.
//
// Exit: 0 done; 1 --count not reached, or any set-up failed or timed out in
// --count mode; 2 usage or set-up error; 3 no set-up completed at all.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <openssl/rand.h>

#include "bench/ike/initiator.h"
#include "cp/ike/config/config.h"

namespace {

using namespace cygnet;
using namespace cygnet::ike;
using loadgen::Datagram;
using loadgen::InitiatorConfig;
using loadgen::InitiatorSa;
using loadgen::SetupState;

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

struct Options {
  InitiatorConfig ini;
  unsigned outstanding = 64;
  double duration_s = 10, warmup_s = 2;
  std::uint64_t count = 0;  // stop after this many set-ups (0: run --duration)
  unsigned timeout_ms = 3000;
  unsigned ke_reuse = 1;
  bool del = true;
  bool quiet = false;
  int responder_pid = 0;
  int responder_cpu = -1;
};

int usage(std::ostream& o, int rc) {
  o << "usage: ike_loadgen --local ADDR --remote ADDR (--psk-file FILE | --psk TEXT) [options]\n"
       "  --port P            UDP port of IKE_SA_INIT, ours and the responder's (500)\n"
       "  --natt-port P       NAT-T port, both ends, used if the responder sees a NAT (4500)\n"
       "  --id ID             our identity (fqdn:NAME, user@host, an address; default our address)\n"
       "  --remote-id ID      the responder's identity, sent as IDr and required (default: any)\n"
       "  --ike PROPOSAL      one IKE suite (aes256gcm16-prfsha256-x25519)\n"
       "  --esp PROPOSAL      one ESP suite (aes256gcm16)\n"
       "  --tsi PREFIX        our traffic selector (default our address)\n"
       "  --tsr PREFIX        the responder's (default its address)\n"
       "  -n, --outstanding N set-ups in flight at a time (64)\n"
       "  --duration S        measured seconds after the warm-up (10)\n"
       "  --warmup S          seconds before the window starts (2)\n"
       "  --count K           stop after K set-ups (then --duration is the time limit)\n"
       "  --timeout-ms T      a set-up unanswered for T ms counts as a timeout (3000)\n"
       "  --ke-reuse N        set-ups per key pair of ours (1: a fresh one each; RFC 7296 2.12)\n"
       "  --no-delete         abandon the IKE SAs instead of deleting them\n"
       "  --responder-pid P   account the CPU time of process P in the window\n"
       "  --responder-cpu C   report how busy CPU C was in the window\n"
       "  --quiet             no per-second lines\n"
       "--psk puts the key on the command line: for throwaway benchmark keys only.\n";
  return rc;
}

struct Sock {
  int fd = -1;
  ~Sock() {
    if (fd >= 0) ::close(fd);
  }
};

sockaddr_storage sockaddr_of(const IpAddress& a, std::uint16_t port, socklen_t& len) {
  sockaddr_storage ss{};
  if (a.family == Family::ipv6) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    std::memcpy(&s6->sin6_addr, a.bytes.data(), 16);
    len = sizeof *s6;
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    std::memcpy(&s4->sin_addr, a.bytes.data(), 4);
    len = sizeof *s4;
  }
  return ss;
}

Result<int> open_udp(const IpAddress& a, std::uint16_t port) {
  const int fd = ::socket(a.family == Family::ipv6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(std::string("socket: ") + std::strerror(errno));
  const int buf = 8 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  socklen_t len = 0;
  const sockaddr_storage ss = sockaddr_of(a, port, len);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0) {
    const int e = errno;
    ::close(fd);
    return make_error("bind " + a.to_string() + " port " + std::to_string(port) + ": " + std::strerror(e));
  }
  return fd;
}

// CPU seconds (user + system, all threads) of a process, from /proc/PID/stat.
std::optional<double> proc_cpu_s(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  if (!std::getline(f, s)) return std::nullopt;
  const auto p = s.rfind(')');
  if (p == std::string::npos) return std::nullopt;
  std::istringstream in(s.substr(p + 2));
  std::string field;
  unsigned long long ut = 0, st = 0;
  // Fields after the command: 3 state ... 14 utime, 15 stime.
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) ut = std::stoull(field);
    if (i == 15) st = std::stoull(field);
  }
  return static_cast<double>(ut + st) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// Busy and total jiffies of one CPU from /proc/stat ({0, 0} if unknown).
struct Jiffies {
  double busy = 0, total = 0;
};
Jiffies cpu_jiffies(int cpu) {
  std::ifstream f("/proc/stat");
  const std::string want = "cpu" + std::to_string(cpu);
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string name;
    in >> name;
    if (name != want) continue;
    double v[10] = {};
    for (double& x : v) in >> x;
    double total = 0;
    for (int i = 0; i < 8; ++i) total += v[i];  // guest time is counted in user already
    const double idle = v[3] + v[4];
    return Jiffies{total - idle, total};
  }
  return Jiffies{};
}

double self_cpu_s() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

struct Snapshot {
  std::uint64_t t_ns = 0;
  std::uint64_t setups = 0;
  double gen_cpu = 0;
  double resp_cpu = -1;  // -1: not known
  Jiffies cpu;
};

class LoadGen {
 public:
  LoadGen(Options o, int fd, int fd_natt) : opt_(std::move(o)), fd_(fd), fd_natt_(fd_natt) {
    slots_.resize(opt_.outstanding);
    to_ = sockaddr_of(opt_.ini.remote, opt_.ini.remote_port, to_len_);
    to_natt_ = sockaddr_of(opt_.ini.remote, opt_.ini.remote_natt_port, to_natt_len_);
  }

  int run();

 private:
  struct Slot {
    std::unique_ptr<InitiatorSa> sa;
    std::uint64_t started_ns = 0, sent_ns = 0;
    std::uint16_t gen = 0;
  };
  struct Deleting {
    std::unique_ptr<InitiatorSa> sa;
    std::uint64_t sent_ns = 0;
  };

  void start(std::size_t i, std::uint64_t now);
  void send(const Datagram& d);
  void on_datagram(std::span<const std::uint8_t> data, bool natt, std::uint64_t now);
  void failed(std::size_t i, const std::string& why, std::uint64_t now);
  void drain(int fd, bool natt);
  void check_timeouts(std::uint64_t now);
  Snapshot snapshot(std::uint64_t now) const;
  void report(const Snapshot& a, const Snapshot& b) const;

  Options opt_;
  int fd_, fd_natt_;
  sockaddr_storage to_{}, to_natt_{};
  socklen_t to_len_ = 0, to_natt_len_ = 0;
  std::vector<Slot> slots_;
  std::unordered_map<std::uint64_t, Deleting> deleting_;
  std::shared_ptr<const KeyExchange> ke_;
  unsigned ke_uses_ = 0;
  bool accepting_ = true;  // false once --count set-ups are under way

  std::uint64_t started_ = 0, setups_ = 0, failures_ = 0, timeouts_ = 0, strays_ = 0;
  std::uint64_t deletes_acked_ = 0, delete_timeouts_ = 0, send_errors_ = 0, cookies_ = 0;
  std::map<std::string, std::uint64_t> why_;
  bool in_window_ = false;
  std::vector<float> latency_ms_;  // of the set-ups completed in the window
};

void LoadGen::send(const Datagram& d) {
  const int fd = d.natt ? fd_natt_ : fd_;
  const auto* to = reinterpret_cast<const sockaddr*>(d.natt ? &to_natt_ : &to_);
  if (::sendto(fd, d.data.data(), d.data.size(), 0, to, d.natt ? to_natt_len_ : to_len_) < 0) ++send_errors_;
}

void LoadGen::start(std::size_t i, std::uint64_t now) {
  Slot& s = slots_[i];
  s.sa.reset();
  if (!accepting_) return;
  if (!ke_ || ke_uses_ >= opt_.ke_reuse) {
    auto k = KeyExchange::create(opt_.ini.ike.group);
    if (!k) {
      std::cerr << "ike_loadgen: key exchange: " << k.error().message << "\n";
      g_stop.store(true);
      return;
    }
    ke_ = std::make_shared<const KeyExchange>(std::move(*k));
    ke_uses_ = 0;
  }
  ++ke_uses_;
  // SPIi: random, the slot number and a generation in the low 32 bits, so
  // an answer finds its slot without a table.
  std::uint32_t r = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&r), sizeof r) != 1) std::abort();
  ++s.gen;
  const std::uint64_t spi = static_cast<std::uint64_t>(r | 1u) << 32 | static_cast<std::uint64_t>(s.gen) << 16 | i;
  s.sa = std::make_unique<InitiatorSa>();
  auto d = s.sa->start(opt_.ini, spi, ke_);
  if (!d) {
    std::cerr << "ike_loadgen: " << d.error().message << "\n";
    g_stop.store(true);
    return;
  }
  s.started_ns = s.sent_ns = now;
  ++started_;
  if (opt_.count != 0 && started_ >= opt_.count) accepting_ = false;
  send(*d);
}

void LoadGen::failed(std::size_t i, const std::string& why, std::uint64_t now) {
  ++failures_;
  if (why_.size() < 16 || why_.count(why)) ++why_[why];
  start(i, now);
}

void LoadGen::on_datagram(std::span<const std::uint8_t> data, bool natt, std::uint64_t now) {
  if (natt) {
    const Udp4500 u = classify_udp4500(data);
    if (u.kind != Udp4500Kind::ike) {
      ++strays_;
      return;
    }
    data = u.data;
  }
  auto h = decode_header(data);
  if (!h) {
    ++strays_;
    return;
  }
  const std::size_t i = h->spi_i & 0xffff;
  if (i < slots_.size() && slots_[i].sa && slots_[i].sa->spi_i() == h->spi_i) {
    Slot& s = slots_[i];
    InitiatorSa& sa = *s.sa;
    if (sa.state() == SetupState::init_sent) {
      auto out = sa.on_init_response(data);
      if (!out) return sa.state() == SetupState::failed ? failed(i, out.error().message, now) : void(++strays_);
      if (sa.state() == SetupState::init_sent) ++cookies_;
      s.sent_ns = now;
      send(*out);
      return;
    }
    if (sa.state() == SetupState::auth_sent) {
      auto r = sa.on_auth_response(data);
      if (!r) return sa.state() == SetupState::failed ? failed(i, r.error().message, now) : void(++strays_);
      ++setups_;
      if (in_window_) latency_ms_.push_back(static_cast<float>(static_cast<double>(now - s.started_ns) / 1e6));
      if (opt_.del) {
        auto d = sa.delete_request();
        if (d) {
          send(*d);
          deleting_.emplace(sa.spi_i(), Deleting{std::move(s.sa), now});
        }
      }
      start(i, now);
      return;
    }
    ++strays_;
    return;
  }
  auto it = deleting_.find(h->spi_i);
  if (it != deleting_.end()) {
    if (it->second.sa->on_delete_response(data)) {
      ++deletes_acked_;
      deleting_.erase(it);
    } else {
      ++strays_;
    }
    return;
  }
  ++strays_;
}

void LoadGen::drain(int fd, bool natt) {
  constexpr unsigned kBatch = 32;
  static std::uint8_t bufs[kBatch][2048];
  mmsghdr msgs[kBatch];
  iovec iov[kBatch];
  for (int round = 0; round < 8; ++round) {
    for (unsigned k = 0; k < kBatch; ++k) {
      iov[k] = iovec{bufs[k], sizeof bufs[k]};
      msgs[k] = mmsghdr{};
      msgs[k].msg_hdr.msg_iov = &iov[k];
      msgs[k].msg_hdr.msg_iovlen = 1;
    }
    const int n = ::recvmmsg(fd, msgs, kBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) return;
    const std::uint64_t now = now_ns();
    for (int k = 0; k < n; ++k) {
      if (msgs[k].msg_hdr.msg_flags & MSG_TRUNC) {
        ++strays_;
        continue;
      }
      on_datagram(std::span<const std::uint8_t>(bufs[k], msgs[k].msg_len), natt, now);
    }
    if (static_cast<unsigned>(n) < kBatch) return;
  }
}

void LoadGen::check_timeouts(std::uint64_t now) {
  const std::uint64_t limit = static_cast<std::uint64_t>(opt_.timeout_ms) * 1000000ull;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    if (s.sa && now - s.sent_ns > limit) {
      ++timeouts_;
      start(i, now);  // abandoned: the responder drops it after its half-open timeout
    } else if (!s.sa && accepting_) {
      start(i, now);
    }
  }
  for (auto it = deleting_.begin(); it != deleting_.end();) {
    if (now - it->second.sent_ns > limit) {
      ++delete_timeouts_;
      it = deleting_.erase(it);
    } else {
      ++it;
    }
  }
}

Snapshot LoadGen::snapshot(std::uint64_t now) const {
  Snapshot s;
  s.t_ns = now;
  s.setups = setups_;
  s.gen_cpu = self_cpu_s();
  if (opt_.responder_pid > 0) s.resp_cpu = proc_cpu_s(opt_.responder_pid).value_or(-1);
  if (opt_.responder_cpu >= 0) s.cpu = cpu_jiffies(opt_.responder_cpu);
  return s;
}

void LoadGen::report(const Snapshot& a, const Snapshot& b) const {
  const double secs = static_cast<double>(b.t_ns - a.t_ns) / 1e9;
  const auto n = b.setups - a.setups;
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(1);
  o << "RESULT setups=" << n << " window_s=" << secs << " rate=" << static_cast<double>(n) / secs;
  o.precision(3);
  if (a.resp_cpu >= 0 && b.resp_cpu >= 0) {
    const double c = b.resp_cpu - a.resp_cpu;
    o << " resp_cpu=" << c / secs;
    o.precision(1);
    o << " per_core=" << (c > 0 ? static_cast<double>(n) / c : 0.0);
    o.precision(3);
  }
  o << " gen_cpu=" << (b.gen_cpu - a.gen_cpu) / secs;
  if (b.cpu.total > a.cpu.total) {
    o << " cpu_busy=" << (b.cpu.busy - a.cpu.busy) / (b.cpu.total - a.cpu.total);
  }
  std::vector<float> l = latency_ms_;
  if (!l.empty()) {
    std::sort(l.begin(), l.end());
    o << " lat_p50_ms=" << l[l.size() / 2] << " lat_p99_ms=" << l[std::min(l.size() - 1, l.size() * 99 / 100)];
  }
  o << " total=" << setups_ << " failures=" << failures_ << " timeouts=" << timeouts_ << " strays=" << strays_
    << " cookies=" << cookies_ << " deletes_acked=" << deletes_acked_ << " delete_timeouts=" << delete_timeouts_
    << " send_errors=" << send_errors_ << " outstanding=" << opt_.outstanding << " ke_reuse=" << opt_.ke_reuse;
  std::cout << o.str() << std::endl;
  for (const auto& [why, k] : why_) std::cerr << "ike_loadgen: " << k << " x " << why << "\n";
}

int LoadGen::run() {
  const std::uint64_t t0 = now_ns();
  for (std::size_t i = 0; i < slots_.size(); ++i) start(i, t0);
  const double warmup = opt_.count != 0 ? 0.0 : opt_.warmup_s;  // --count: the window is the whole run
  const std::uint64_t warm_end = t0 + static_cast<std::uint64_t>(warmup * 1e9);
  const std::uint64_t end = warm_end + static_cast<std::uint64_t>(opt_.duration_s * 1e9);
  Snapshot first = snapshot(t0);
  in_window_ = warmup <= 0;
  std::uint64_t last_check = t0, last_line = t0, last_line_setups = 0;
  pollfd fds[2] = {{fd_, POLLIN, 0}, {fd_natt_, POLLIN, 0}};
  while (!g_stop.load()) {
    fds[0].revents = fds[1].revents = 0;
    const int n = ::poll(fds, 2, 10);
    if (n < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) drain(fd_, false);
    if (fds[1].revents & POLLIN) drain(fd_natt_, true);
    const std::uint64_t now = now_ns();
    if (now - last_check >= 20000000ull) {
      check_timeouts(now);
      last_check = now;
    }
    if (!in_window_ && now >= warm_end) {
      first = snapshot(now);
      in_window_ = true;
    }
    if (!opt_.quiet && now - last_line >= 1000000000ull) {
      std::fprintf(stderr, "ike_loadgen: %6.1f s  %8.0f set-ups/s  (total %llu, failures %llu, timeouts %llu)\n",
                   static_cast<double>(now - t0) / 1e9,
                   static_cast<double>(setups_ - last_line_setups) * 1e9 / static_cast<double>(now - last_line),
                   static_cast<unsigned long long>(setups_), static_cast<unsigned long long>(failures_),
                   static_cast<unsigned long long>(timeouts_));
      last_line = now;
      last_line_setups = setups_;
    }
    if (opt_.count != 0) {
      bool busy = false;
      for (const Slot& s : slots_) busy |= s.sa != nullptr;
      if ((!accepting_ && !busy && (deleting_.empty() || !opt_.del)) || now >= end) break;
    } else if (now >= end) {
      break;
    }
  }
  const std::uint64_t now = now_ns();
  // --count: wait briefly for the last Delete answers.
  for (std::uint64_t until = now + 500000000ull; opt_.count != 0 && !deleting_.empty() && now_ns() < until;) {
    pollfd p[2] = {{fd_, POLLIN, 0}, {fd_natt_, POLLIN, 0}};
    if (::poll(p, 2, 10) > 0) {
      drain(fd_, false);
      drain(fd_natt_, true);
    }
  }
  report(first, snapshot(now));
  if (opt_.count != 0) {
    const bool ok = setups_ >= opt_.count && failures_ == 0 && timeouts_ == 0 && (!opt_.del || deletes_acked_ == setups_);
    return ok ? 0 : 1;
  }
  return setups_ == 0 ? 3 : 0;
}

Result<SecretBytes> read_psk_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) return make_error("cannot read " + path);
  std::string line;
  std::getline(f, line);
  if (line.empty()) return make_error(path + ": empty");
  return SecretBytes::copy_of(std::span(reinterpret_cast<const std::uint8_t*>(line.data()), line.size()));
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string local, remote, ike = "aes256gcm16-prfsha256-x25519", esp = "aes256gcm16", tsi, tsr, id, rid;
  std::string psk, psk_file;
  unsigned port = 500, natt_port = 4500;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "ike_loadgen: " << a << " needs a value\n";
        std::exit(usage(std::cerr, 2));
      }
      return argv[++i];
    };
    auto num = [&](double lo, double hi) {
      const std::string v = val();
      char* e = nullptr;
      const double d = std::strtod(v.c_str(), &e);
      if (e == v.c_str() || *e != 0 || d < lo || d > hi) {
        std::cerr << "ike_loadgen: " << a << " " << v << ": expected a number in [" << lo << ", " << hi << "]\n";
        std::exit(2);
      }
      return d;
    };
    if (a == "--local") local = val();
    else if (a == "--remote") remote = val();
    else if (a == "--port") port = static_cast<unsigned>(num(1, 65535));
    else if (a == "--natt-port") natt_port = static_cast<unsigned>(num(1, 65535));
    else if (a == "--psk") psk = val();
    else if (a == "--psk-file") psk_file = val();
    else if (a == "--id") id = val();
    else if (a == "--remote-id") rid = val();
    else if (a == "--ike") ike = val();
    else if (a == "--esp") esp = val();
    else if (a == "--tsi") tsi = val();
    else if (a == "--tsr") tsr = val();
    else if (a == "-n" || a == "--outstanding") o.outstanding = static_cast<unsigned>(num(1, 65535));
    else if (a == "--duration") o.duration_s = num(0.1, 86400);
    else if (a == "--warmup") o.warmup_s = num(0, 3600);
    else if (a == "--count") o.count = static_cast<std::uint64_t>(num(1, 1e12));
    else if (a == "--timeout-ms") o.timeout_ms = static_cast<unsigned>(num(10, 600000));
    else if (a == "--ke-reuse") o.ke_reuse = static_cast<unsigned>(num(1, 1e9));
    else if (a == "--no-delete") o.del = false;
    else if (a == "--responder-pid") o.responder_pid = static_cast<int>(num(1, 1e9));
    else if (a == "--responder-cpu") o.responder_cpu = static_cast<int>(num(0, 4095));
    else if (a == "--quiet") o.quiet = true;
    else if (a == "-h" || a == "--help") return usage(std::cout, 0);
    else {
      std::cerr << "ike_loadgen: unknown argument '" << a << "'\n";
      return usage(std::cerr, 2);
    }
  }
  auto fail = [](const std::string& what, const std::string& why) {
    std::cerr << "ike_loadgen: " << what << ": " << why << "\n";
    return 2;
  };
  auto la = IpAddress::parse(local);
  auto ra = IpAddress::parse(remote);
  if (!la) return fail("--local '" + local + "'", la.error().message);
  if (!ra) return fail("--remote '" + remote + "'", ra.error().message);
  if (la->family != ra->family) return fail("--local/--remote", "not of the same address family");
  o.ini.local = *la;
  o.ini.remote = *ra;
  o.ini.local_port = o.ini.remote_port = static_cast<std::uint16_t>(port);
  o.ini.local_natt_port = o.ini.remote_natt_port = static_cast<std::uint16_t>(natt_port);
  if (port == natt_port) return fail("--natt-port", "must differ from --port");
  auto is = cfg::parse_ike_proposal(ike);
  if (!is || is->size() != 1) return fail("--ike '" + ike + "'", is ? "expected exactly one suite" : is.error().message);
  auto es = cfg::parse_esp_proposal(esp);
  if (!es || es->size() != 1) return fail("--esp '" + esp + "'", es ? "expected exactly one suite" : es.error().message);
  o.ini.ike = is->front();
  o.ini.esp = es->front();
  for (auto [text, out] : {std::pair{&id, &o.ini.local_id}, std::pair{&rid, &o.ini.remote_id}}) {
    if (text->empty()) continue;
    auto v = Identity::parse(*text);
    if (!v) return fail("identity '" + *text + "'", v.error().message);
    *out = *v;
  }
  for (auto [text, out] : {std::pair{&tsi, &o.ini.tsi}, std::pair{&tsr, &o.ini.tsr}}) {
    if (text->empty()) continue;
    auto t = cfg::parse_ts(*text);
    if (!t) return fail("traffic selector '" + *text + "'", t.error().message);
    out->push_back(ts_from_config(*t));
  }
  if (psk.empty() == psk_file.empty()) return fail("PSK", "give exactly one of --psk and --psk-file");
  if (!psk_file.empty()) {
    auto p = read_psk_file(psk_file);
    if (!p) return fail("--psk-file", p.error().message);
    o.ini.psk = std::move(*p);
  } else {
    o.ini.psk = SecretBytes::copy_of(std::span(reinterpret_cast<const std::uint8_t*>(psk.data()), psk.size()));
  }
  if (o.outstanding > 65535) return fail("--outstanding", "at most 65535");

  Sock s500, s4500;
  auto f1 = open_udp(o.ini.local, o.ini.local_port);
  if (!f1) return fail("socket", f1.error().message);
  s500.fd = *f1;
  auto f2 = open_udp(o.ini.local, o.ini.local_natt_port);
  if (!f2) return fail("socket", f2.error().message);
  s4500.fd = *f2;

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  LoadGen g(std::move(o), s500.fd, s4500.fd);
  return g.run();
}
