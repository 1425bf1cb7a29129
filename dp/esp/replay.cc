#include "dp/esp/replay.h"

namespace cygnet::dp::esp {

ReplayWindow::ReplayWindow(std::uint32_t size, bool esn) noexcept : size_(size), esn_(esn) {
  // Enough blocks for the window plus the partly filled block at the top.
  std::uint32_t need = size / 64 + 2;
  std::uint32_t blocks = 2;
  while (blocks < need) blocks <<= 1;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  mask_ = blocks - 1;
}

std::uint64_t ReplayWindow::infer(std::uint32_t seq_lo) const noexcept {
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

ReplayWindow::Verdict ReplayWindow::check(std::uint64_t seq) const noexcept {
  if (seq == 0) return Verdict::too_old;  // RFC 4303 3.3.3: the first packet is 1
  if (size_ == 0 || seq > top_) return Verdict::ok;
  if (top_ - seq >= size_) return Verdict::too_old;
  return bit(seq) ? Verdict::duplicate : Verdict::ok;
}

bool ReplayWindow::commit(std::uint64_t seq) noexcept {
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
