// Counters per named drop reason (dp/esp/drop.h).
#pragma once

#include <array>
#include <cstdint>

#include "dp/esp/drop.h"

namespace cygnet::dp {

struct DropCounters {
  std::array<std::uint64_t, kDropReasonCount> by_reason{};

  void add(DropReason r) noexcept { ++by_reason[static_cast<std::size_t>(r)]; }
  std::uint64_t operator[](DropReason r) const noexcept { return by_reason[static_cast<std::size_t>(r)]; }
  std::uint64_t total() const noexcept {
    std::uint64_t t = 0;
    for (std::size_t i = 1; i < by_reason.size(); ++i) t += by_reason[i];
    return t;
  }
};

}  // namespace cygnet::dp
