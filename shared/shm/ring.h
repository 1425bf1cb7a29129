// A single-producer/single-consumer ring of fixed-size slots in shared
// memory (docs/shm.md). The producer and the consumer each keep their own
// index privately and only publish it; the other side's index is read with
// acquire and treated as hostile: a peer (buggy or malicious) can write any
// value, so every read index is checked against the private one and the
// capacity before any slot is touched. A broken index is reported as
// `corrupt`, never followed.
//
// Slots are copied whole into private memory before they are parsed (no
// double fetch), and wiped by the consumer right after the copy: a slot may
// have carried keys.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>

#include "shared/shm/layout.h"
#include "shared/shm/messages.h"

namespace cygnet::shm {

enum class RingResult : std::uint8_t { ok, full, empty, corrupt };

// Indices are 64-bit and only grow; (index & (capacity - 1)) is the slot.
class RingProducer {
 public:
  RingProducer() = default;
  RingProducer(std::uint8_t* slots, std::uint32_t capacity, std::uint64_t* prod_word, std::uint64_t* cons_word,
               std::uint64_t start) noexcept
      : slots_(slots), cap_(capacity), prod_word_(prod_word), cons_word_(cons_word), prod_(start) {}

  // Copies msg (at most kSlotSize bytes) into the next slot and publishes it.
  RingResult push(std::span<const std::uint8_t> msg) noexcept;
  // Free slots as far as the consumer's published index tells; corrupt if
  // that index is impossible.
  RingResult free_slots(std::uint32_t& n) const noexcept;
  std::uint64_t index() const noexcept { return prod_; }
  std::uint32_t capacity() const noexcept { return cap_; }

 private:
  std::uint8_t* slots_ = nullptr;
  std::uint32_t cap_ = 0;
  std::uint64_t* prod_word_ = nullptr;
  std::uint64_t* cons_word_ = nullptr;
  std::uint64_t prod_ = 0;  // private copy: the truth
};

class RingConsumer {
 public:
  RingConsumer() = default;
  RingConsumer(std::uint8_t* slots, std::uint32_t capacity, std::uint64_t* prod_word, std::uint64_t* cons_word,
               std::uint64_t start) noexcept
      : slots_(slots), cap_(capacity), prod_word_(prod_word), cons_word_(cons_word), cons_(start) {}

  // Copies the next slot whole into `out` (out.size() == kSlotSize), wipes
  // the slot and publishes the consumption.
  RingResult pop(MsgBuf& out) noexcept;
  // Messages waiting, as far as the producer's published index tells.
  RingResult pending(std::uint32_t& n) const noexcept;
  std::uint64_t index() const noexcept { return cons_; }
  std::uint32_t capacity() const noexcept { return cap_; }

 private:
  std::uint8_t* slots_ = nullptr;
  std::uint32_t cap_ = 0;
  std::uint64_t* prod_word_ = nullptr;
  std::uint64_t* cons_word_ = nullptr;
  std::uint64_t cons_ = 0;  // private copy: the truth
};

}  // namespace cygnet::shm
