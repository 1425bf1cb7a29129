// POSIX shared-memory plumbing for the cygnet-dp segment (docs/shm.md):
// names, RAII for descriptors and mappings, the server's instance lock and
// process liveness checks. Internal to shared/shm.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "shared/result.h"

namespace cygnet::shm {

inline constexpr std::size_t kMaxInstanceLen = 64;

// "/cygnet-dp.<instance>"; the instance is 1-64 of [A-Za-z0-9_-] (no '/',
// no '.', so the lock name below cannot collide with another segment).
Result<std::string> segment_name(std::string_view instance);
std::string lock_name(const std::string& segment);            // segment + ".lock"
std::string shm_path(const std::string& name);                // "/dev/shm" + name, for messages
// A POSIX shm name: '/' then 1-254 characters, none of them '/' or NUL.
Result<void> validate_shm_name(std::string_view name);

namespace detail {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.release();
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  int release() noexcept {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset() noexcept;

 private:
  int fd_ = -1;
};

// A shared mapping; `owned` false for a view of someone else's mapping.
class Mapping {
 public:
  Mapping() = default;
  Mapping(std::uint8_t* p, std::size_t n, bool owned) noexcept : p_(p), n_(n), owned_(owned) {}
  ~Mapping() { reset(); }
  Mapping(Mapping&& o) noexcept : p_(o.p_), n_(o.n_), owned_(o.owned_) { o.p_ = nullptr; o.n_ = 0; }
  Mapping& operator=(Mapping&& o) noexcept {
    if (this != &o) {
      reset();
      p_ = o.p_;
      n_ = o.n_;
      owned_ = o.owned_;
      o.p_ = nullptr;
      o.n_ = 0;
    }
    return *this;
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  std::uint8_t* data() const noexcept { return p_; }
  std::size_t size() const noexcept { return n_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  void reset() noexcept;

 private:
  std::uint8_t* p_ = nullptr;
  std::size_t n_ = 0;
  bool owned_ = false;
};

Result<Mapping> map_shared(int fd, std::size_t size, const std::string& name);

// Identity of an shm object, to notice that a name now refers to another one.
struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const FileId&) const = default;
};
Result<FileId> file_id(int fd);

// The server's exclusive lock on an instance (flock on "<segment>.lock",
// held for the server's life, so a dead server's lock vanishes with it).
class InstanceLock {
 public:
  static Result<InstanceLock> acquire(const std::string& lock);
  InstanceLock() = default;
  ~InstanceLock() { release(); }
  InstanceLock(InstanceLock&& o) noexcept : fd_(std::move(o.fd_)), name_(std::move(o.name_)) {}
  InstanceLock& operator=(InstanceLock&& o) noexcept {
    if (this != &o) {
      release();
      fd_ = std::move(o.fd_);
      name_ = std::move(o.name_);
    }
    return *this;
  }
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;
  // Unlinks the lock name while still holding it, then closes.
  void release() noexcept;

 private:
  Fd fd_;
  std::string name_;
};

// Liveness of a process whose id was read from shared memory (so possibly
// garbage): ids <= 0 or above pid_t's range are "dead", never passed to
// kill() (kill(0) and kill(-1) address process groups). A zombie is dead.
// If `starttime` is non-zero it must equal the process's start time
// (/proc/<pid>/stat field 22), which catches pid reuse.
enum class Liveness : std::uint8_t { alive, dead };
Liveness process_liveness(std::int64_t pid, std::uint64_t starttime, std::string& why);
// This process's start time in clock ticks since boot; 0 if unknown.
std::uint64_t self_starttime() noexcept;
// 64 random bits from the kernel, never 0.
std::uint64_t random_u64() noexcept;

}  // namespace detail
}  // namespace cygnet::shm
