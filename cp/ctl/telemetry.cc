#include "cp/ctl/telemetry.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace cygnet::ctl {

std::string telemetry_socket(std::string_view instance) {
  if (const char* s = std::getenv("CYGNET_TELEMETRY_SOCKET"); s != nullptr && *s != '\0') return s;
  std::string dir;
  if (geteuid() == 0) {
    dir = "/var/run/dpdk";
  } else if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x != nullptr && *x != '\0') {
    dir = std::string(x) + "/dpdk";
  } else {
    dir = "/tmp/dpdk";
  }
  return dir + "/cygnet-" + std::string(instance) + "/dpdk_telemetry.v2";
}

namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

Result<std::string> recv_msg(int fd, const std::string& path, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  const int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
  if (r == 0) return make_error(path + ": no answer within " + std::to_string(timeout.count()) + " ms");
  if (r < 0) return make_error(path + ": poll: " + std::strerror(errno));
  std::vector<char> buf(1 << 16);
  const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
  if (n <= 0) return make_error(path + ": connection closed by cygnet-dp");
  return std::string(buf.data(), static_cast<std::size_t>(n));
}

}  // namespace

Result<TelemetryReply> telemetry_query(const std::string& path, const std::string& command,
                                       std::chrono::milliseconds timeout) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.size() >= sizeof sun.sun_path) return make_error("telemetry socket path too long: " + path);
  std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
  Fd s;
  s.fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (s.fd < 0) return make_error(std::string("socket: ") + std::strerror(errno));
  if (::connect(s.fd, reinterpret_cast<const sockaddr*>(&sun), sizeof sun) != 0)
    return make_error("no cygnet-dp telemetry at " + path + " (" + std::strerror(errno) + "): is cygnet-dp running?");
  auto hello = recv_msg(s.fd, path, timeout);
  if (!hello) return hello.error();
  if (::send(s.fd, command.data(), command.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(command.size()))
    return make_error(path + ": send: " + std::strerror(errno));
  auto reply = recv_msg(s.fd, path, timeout);
  if (!reply) return reply.error();
  auto v = json::parse_json(*reply);
  if (!v) return make_error(path + ": reply is not JSON: " + v.error().message);
  const std::string key = command.substr(0, command.find(','));
  const json::JsonValue* inner = v->find(key);
  if (inner == nullptr) return make_error(path + ": reply has no '" + key + "' (an older cygnet-dp?)");
  if (inner->is_null()) return make_error(path + ": cygnet-dp refused '" + command + "'");
  return TelemetryReply{std::move(*reply), *inner};
}

}  // namespace cygnet::ctl
