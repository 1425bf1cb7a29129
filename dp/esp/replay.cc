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

}  // namespace cygnet::dp::esp
