#include "shared/shm/segment.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

namespace cygnet::shm {

namespace {
std::string errno_text(int e) { return std::strerror(e); }
}  // namespace

Result<std::string> segment_name(std::string_view instance) {
  if (instance.empty() || instance.size() > kMaxInstanceLen) {
    return make_error("cygnet-dp instance name must be 1-" + std::to_string(kMaxInstanceLen) +
                      " characters, got " + std::to_string(instance.size()));
  }
  for (char c : instance) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-';
    if (!ok) {
      return make_error("cygnet-dp instance name '" + std::string(instance) +
                        "' may only contain letters, digits, '_' and '-'");
    }
  }
  std::string name = "/cygnet-dp." + std::string(instance);
  if (auto r = validate_shm_name(name); !r) return r.error();
  return name;
}

std::string lock_name(const std::string& segment) { return segment + ".lock"; }
std::string shm_path(const std::string& name) { return "/dev/shm" + name; }

Result<void> validate_shm_name(std::string_view name) {
  if (name.size() < 2 || name.size() > 255 || name.front() != '/') {
    return make_error("shared-memory name must be '/' followed by 1-254 characters");
  }
  if (name.substr(1).find_first_of(std::string_view("/\0", 2)) != std::string_view::npos) {
    return make_error("shared-memory name must not contain '/' after the first character, nor NUL");
  }
  return {};
}

namespace detail {

void Fd::reset() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Mapping::reset() noexcept {
  if (p_ != nullptr && owned_) ::munmap(p_, n_);
  p_ = nullptr;
  n_ = 0;
}

Result<Mapping> map_shared(int fd, std::size_t size, const std::string& name) {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    return make_error("cannot map " + shm_path(name) + " (" + std::to_string(size) + " bytes): " +
                      errno_text(errno));
  }
  return Mapping(static_cast<std::uint8_t*>(p), size, true);
}

Result<FileId> file_id(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return make_error(std::string("fstat: ") + errno_text(errno));
  return FileId{st.st_dev, st.st_ino};
}

Result<InstanceLock> InstanceLock::acquire(const std::string& lock) {
  // The lock file is unlinked by the holder on release; someone who opened
  // the old file and locked it after that holds a lock on nothing, so check
  // after locking that the name still refers to the file we locked.
  for (int attempt = 0; attempt < 16; ++attempt) {
    Fd fd(::shm_open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd.valid()) return make_error("cannot create lock " + shm_path(lock) + ": " + errno_text(errno));
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      const int e = errno;
      if (e == EWOULDBLOCK) {
        return make_error("another cygnet-dp holds " + shm_path(lock) + ": the instance is already running");
      }
      return make_error("cannot lock " + shm_path(lock) + ": " + errno_text(e));
    }
    Fd again(::shm_open(lock.c_str(), O_RDWR | O_CLOEXEC, 0600));
    if (!again.valid()) continue;  // unlinked under us: retry
    auto a = file_id(fd.get());
    auto b = file_id(again.get());
    if (!a || !b) return make_error("cannot stat " + shm_path(lock));
    if (*a == *b) {
      InstanceLock l;
      l.fd_ = std::move(fd);
      l.name_ = lock;
      return l;
    }
  }
  return make_error("cannot take " + shm_path(lock) + ": it keeps being replaced");
}

void InstanceLock::release() noexcept {
  if (!fd_.valid()) return;
  ::shm_unlink(name_.c_str());
  fd_.reset();
}

namespace {

// /proc/<pid>/stat: "pid (comm) S ppid ... starttime(22) ...". comm may
// hold spaces and ')', so parse from the last ')'.
bool read_proc_stat(long pid, char& state, std::uint64_t& starttime) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  if (!f) return false;
  std::string line;
  std::getline(f, line);
  const auto close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream is(line.substr(close + 1));
  std::string field;
  // Field 3 is the state; starttime is field 22, i.e. 19 fields after it.
  if (!(is >> field) || field.size() != 1) return false;
  state = field[0];
  for (int i = 4; i <= 22; ++i) {
    if (!(is >> field)) return false;
  }
  try {
    starttime = std::stoull(field);
  } catch (...) {
    return false;
  }
  return true;
}

}  // namespace

Liveness process_liveness(std::int64_t pid, std::uint64_t starttime, std::string& why) {
  if (pid <= 0 || pid > INT_MAX) {
    why = "owner pid " + std::to_string(pid) + " is not a process id";
    return Liveness::dead;
  }
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
    why = "process " + std::to_string(pid) + " is gone";
    return Liveness::dead;
  }
  char state = 0;
  std::uint64_t st = 0;
  if (read_proc_stat(static_cast<long>(pid), state, st)) {
    if (state == 'Z' || state == 'X') {
      why = "process " + std::to_string(pid) + " has exited (zombie)";
      return Liveness::dead;
    }
    if (starttime != 0 && st != starttime) {
      why = "process " + std::to_string(pid) + " is gone (its pid now belongs to another process)";
      return Liveness::dead;
    }
  }
  return Liveness::alive;
}

std::uint64_t self_starttime() noexcept {
  char state = 0;
  std::uint64_t st = 0;
  try {
    if (read_proc_stat(static_cast<long>(::getpid()), state, st)) return st;
  } catch (...) {
  }
  return 0;
}

std::uint64_t random_u64() noexcept {
  std::uint64_t v = 0;
  while (v == 0) {
    if (::getrandom(&v, sizeof v, 0) != static_cast<ssize_t>(sizeof v)) {
      try {
        std::random_device rd;
        v = (std::uint64_t{rd()} << 32) ^ rd();
      } catch (...) {
        // No kernel randomness at all: time and pid still differ per start,
        // which is all an epoch needs (it is not a secret).
        v = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
            (static_cast<std::uint64_t>(::getpid()) << 40);
      }
    }
  }
  return v;
}

}  // namespace detail
}  // namespace cygnet::shm
