// Why the pipeline dropped (or consumed) a packet, per port: one table with
// the enum value, the name an operator reads and a line of help, like the
// ESP engine's per-SA reasons (dp/esp/drop.h). A packet an SA refused is
// counted here as `esp` and, with its exact reason, in the SA's counters.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace cygnet::dp::app {

#define CYGNET_PIPE_DROPS(X)                                                                          \
  X(none, "ok", "not dropped")                                                                        \
  X(bad_frame, "bad_frame", "Ethernet frame too short, multi-segment, or of an unsupported type")    \
  X(malformed, "malformed", "IP header or lengths inconsistent")                                      \
  X(no_policy, "no_policy", "no policy matched; the default action is discard (RFC 4301 5)")          \
  X(discard_policy, "discard_policy", "a discard policy matched")                                     \
  X(no_sa, "no_sa", "protect policy whose SA set is empty; an ACQUIRE was raised (rate-limited)")     \
  X(trap, "trap", "trap policy: no SA yet; an ACQUIRE was raised (rate-limited)")                     \
  X(unknown_spi, "unknown_spi", "ESP for an SPI and destination no inbound SA has")                   \
  X(cleartext, "cleartext", "cleartext packet where the inbound policy requires ESP (RFC 4301 5.2)")  \
  X(inner_policy, "inner_policy", "decrypted packet not allowed by an inbound protect policy of its SA") \
  X(esp, "esp", "refused by its SA: the SA's counters give the reason")                               \
  X(no_route, "no_route", "no route to the destination")                                              \
  X(no_neighbour, "no_neighbour", "no static neighbour (MAC) for the next hop")                       \
  X(ttl, "ttl", "TTL or hop limit exhausted")                                                         \
  X(mtu, "mtu", "larger than the path MTU and not fragmentable; ICMP too-big sent back")              \
  X(frag, "frag", "fragmentation before encryption failed (no mbufs)")                               \
  X(handoff_full, "handoff_full", "the ring to the SA's owner core was full")                         \
  X(tx_full, "tx_full", "the port's transmit queue was full")                                         \
  X(local, "local", "addressed to the gateway itself and no exception port is configured")          \
  X(keepalive, "keepalive", "NAT keepalive (RFC 3948 2.3): consumed")                                 \
  X(arp, "arp", "ARP not answered (not a request for one of our addresses)")                          \
  X(loop, "loop", "would leave through the port it arrived on towards the same side")

enum class PipeDrop : std::uint8_t {
#define CYGNET_PIPE_DROP_ENUM(e, name, help) e,
  CYGNET_PIPE_DROPS(CYGNET_PIPE_DROP_ENUM)
#undef CYGNET_PIPE_DROP_ENUM
};

struct PipeDropInfo {
  std::string_view name;
  std::string_view help;
};

inline constexpr std::array kPipeDropInfo{
#define CYGNET_PIPE_DROP_INFO(e, name, help) PipeDropInfo{name, help},
    CYGNET_PIPE_DROPS(CYGNET_PIPE_DROP_INFO)
#undef CYGNET_PIPE_DROP_INFO
};
inline constexpr std::size_t kPipeDropCount = kPipeDropInfo.size();

constexpr std::string_view pipe_drop_name(PipeDrop d) noexcept {
  return kPipeDropInfo[static_cast<std::size_t>(d)].name;
}

}  // namespace cygnet::dp::app
