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

// Inline: called per packet on the hot path.
inline std::uint64_t ReplayWindow::infer(std::uint32_t seq_lo) const noexcept {
  if (!esn_) return seq_lo;
  // RFC 4303 A2.2. W is the window (a disabled window still needs a guess:
  // use 2^31, so anything within half the space ahead or behind is taken).
  const std::uint64_t w = size_ ? size_ : (1ull << 31);
  const auto tl = static_cast<std::uint32_t>(top_);
  const auto th = static_cast<std::uint32_t>(top_ >> 32);
  const std::uint32_t bottom = static_cast<std::uint32_t>(tl - w + 1);  // mod 2^32
  std::uint32_t sh;
  if (tl >= w - 1) {
    // Case A: window within one epoch of 2^32.
    sh = seq_lo >= bottom ? th : th + 1;
  } else {
    // Case B: window spans the boundary below Tl.
    if (seq_lo >= bottom) {
      if (th == 0) return 0;  // before sequence 1: check() calls 0 too old
      sh = th - 1;
    } else {
      sh = th;
    }
  }
  return (std::uint64_t{sh} << 32) | seq_lo;
}

inline ReplayWindow::Verdict ReplayWindow::check(std::uint64_t seq) const noexcept {
  if (seq == 0) return Verdict::too_old;  // RFC 4303 3.3.3: the first packet is 1
  if (size_ == 0 || seq > top_) return Verdict::ok;
  if (top_ - seq >= size_) return Verdict::too_old;
  return bit(seq) ? Verdict::duplicate : Verdict::ok;
}

inline bool ReplayWindow::commit(std::uint64_t seq) noexcept {
  if (check(seq) != Verdict::ok) return false;
  if (size_ == 0) {
    if (seq > top_) top_ = seq;
    return true;
  }
  if (seq > top_) {
    // Clear the blocks the window slides over (at most all of them).
    const std::uint64_t old_block = top_ >> 6;
    const std::uint64_t new_block = seq >> 6;
    std::uint64_t diff = new_block - old_block;
    if (diff > mask_ + 1ull) diff = mask_ + 1ull;
    for (std::uint64_t i = 1; i <= diff; ++i) bits_[(old_block + i) & mask_] = 0;
    top_ = seq;
  }
  bits_[(seq >> 6) & mask_] |= 1ull << (seq & 63);
  return true;
}

}  // namespace cygnet::dp::esp
