#include "shared/shm/ring.h"

#include <cstring>

#include "shared/secret.h"

namespace cygnet::shm {

namespace {

std::uint64_t load_acquire(std::uint64_t* w) noexcept { return std::atomic_ref<std::uint64_t>(*w).load(std::memory_order_acquire); }
void store_release(std::uint64_t* w, std::uint64_t v) noexcept {
  std::atomic_ref<std::uint64_t>(*w).store(v, std::memory_order_release);
}

}  // namespace

RingResult RingProducer::free_slots(std::uint32_t& n) const noexcept {
  n = 0;
  if (slots_ == nullptr) return RingResult::corrupt;
  const std::uint64_t cons = load_acquire(cons_word_);
  // The consumer can never be ahead of what we produced, nor further behind
  // than the capacity.
  if (cons > prod_ || prod_ - cons > cap_) return RingResult::corrupt;
  n = static_cast<std::uint32_t>(cap_ - (prod_ - cons));
  return n == 0 ? RingResult::full : RingResult::ok;
}

RingResult RingProducer::push(std::span<const std::uint8_t> msg) noexcept {
  if (msg.size() > kSlotSize || msg.empty()) return RingResult::corrupt;
  std::uint32_t room = 0;
  if (RingResult r = free_slots(room); r != RingResult::ok) return r;
  std::uint8_t* slot = slots_ + (prod_ & (cap_ - 1)) * std::uint64_t{kSlotSize};
  std::memcpy(slot, msg.data(), msg.size());
  if (msg.size() < kSlotSize) std::memset(slot + msg.size(), 0, kSlotSize - msg.size());
  ++prod_;
  store_release(prod_word_, prod_);
  return RingResult::ok;
}

RingResult RingConsumer::pending(std::uint32_t& n) const noexcept {
  n = 0;
  if (slots_ == nullptr) return RingResult::corrupt;
  const std::uint64_t prod = load_acquire(prod_word_);
  if (prod < cons_ || prod - cons_ > cap_) return RingResult::corrupt;
  n = static_cast<std::uint32_t>(prod - cons_);
  return n == 0 ? RingResult::empty : RingResult::ok;
}

RingResult RingConsumer::pop(MsgBuf& out) noexcept {
  out.wipe();
  std::uint32_t n = 0;
  if (RingResult r = pending(n); r != RingResult::ok) return r;
  std::uint8_t* slot = slots_ + (cons_ & (cap_ - 1)) * std::uint64_t{kSlotSize};
  std::memcpy(out.data(), slot, kSlotSize);
  out.set_size(kSlotSize);
  secure_zero(slot, kSlotSize);
  ++cons_;
  store_release(cons_word_, cons_);
  return RingResult::ok;
}

}  // namespace cygnet::shm
