// Anti-replay window (RFC 4303 3.4.3) as an RFC 6479-style bitmap of 64-bit
// blocks, with ESN high-order inference (RFC 4303 appendix A2). Two steps,
// as DPDK's lib/ipsec does: check() before crypto, commit() after the ICV
// verifies. commit() re-checks, so two copies of one sequence number in the
// same burst are accepted once.
#pragma once

#include <array>
#include <cstdint>

namespace cygnet::dp::esp {

class ReplayWindow {
 public:
  enum class Verdict : std::uint8_t { ok, duplicate, too_old };

  // size: 32-4096 packets (0 = anti-replay disabled: check() only infers
  // the ESN high half and never refuses).
  explicit ReplayWindow(std::uint32_t size = 64, bool esn = false) noexcept;

  // 64-bit sequence number a received low half stands for (RFC 4303 A2.2).
  // Without ESN it is the low half itself.
  std::uint64_t infer(std::uint32_t seq_lo) const noexcept;

  Verdict check(std::uint64_t seq) const noexcept;
  // Marks seq as received and slides the window; returns false (and changes
  // nothing) if seq is no longer acceptable.
  bool commit(std::uint64_t seq) noexcept;

  std::uint64_t top() const noexcept { return top_; }
  std::uint32_t size() const noexcept { return size_; }
  bool enabled() const noexcept { return size_ != 0; }

 private:
  static constexpr std::uint32_t kMaxBlocks = 128;  // power of two > 4096/64 + 1

  bool bit(std::uint64_t seq) const noexcept {
    return (bits_[(seq >> 6) & mask_] >> (seq & 63)) & 1;
  }

  std::uint64_t top_ = 0;     // highest sequence number committed (0: none yet)
  std::uint32_t size_;        // window in packets
  std::uint32_t mask_;        // blocks - 1
  bool esn_;
  std::array<std::uint64_t, kMaxBlocks> bits_{};
};

}  // namespace cygnet::dp::esp
