// Traffic selectors (RFC 7296 sections 2.9 and 3.13): address ranges with a
// protocol and a port range, their narrowing, and the dataplane selectors
// (prefixes) they become.
#pragma once

#include <cstdint>
#include <vector>

#include "cp/ike/engine/conn.h"
#include "cp/ike/msg/msg.h"
#include "shared/policy.h"

namespace cygnet::ike {

struct TsRange {
  std::uint8_t proto = 0;  // 0: any
  std::uint16_t port_lo = 0, port_hi = 65535;  // ICMP: type << 8 | code (3.13.1)
  IpAddress lo, hi;  // same family, lo <= hi
  bool operator==(const TsRange&) const = default;
};

TsRange ts_from_config(const TsConfig& c);
TsRange ts_host(const IpAddress& a);
TrafficSelector ts_to_wire(const TsRange& r);
// Known types only (IPv4/IPv6 ranges); others are skipped by the caller.
std::optional<TsRange> ts_from_wire(const TrafficSelector& t);
std::vector<TsRange> ts_from_payload(const TsPayload& p);
TsPayload ts_payload(const std::vector<TsRange>& v, bool responder);

// The intersection of two selectors, if not empty.
std::optional<TsRange> intersect(const TsRange& a, const TsRange& b);
// Responder narrowing (2.9): every non-empty intersection of one of the
// peer's selectors with one of ours, without duplicates, in the peer's order.
std::vector<TsRange> narrow(const std::vector<TsRange>& peer, const std::vector<TsRange>& ours);
// Initiator: every selector the responder answered with lies within one we
// proposed.
bool within(const std::vector<TsRange>& got, const std::vector<TsRange>& proposed);

// The smallest set of prefixes that covers [lo, hi] exactly.
std::vector<IpPrefix> range_to_prefixes(const IpAddress& lo, const IpAddress& hi);
// The dataplane selectors for traffic from `src` to `dst` (each pair of
// selectors with compatible protocols; addresses as prefixes).
std::vector<Selector> to_selectors(const std::vector<TsRange>& src, const std::vector<TsRange>& dst);

std::string to_string(const TsRange& r);

}  // namespace cygnet::ike
