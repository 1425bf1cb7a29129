// NAT detection (RFC 7296 section 2.23): the data of NAT_DETECTION_SOURCE_IP
// and NAT_DETECTION_DESTINATION_IP notifications,
//   SHA-1(SPIi | SPIr | IP address | port)
// with the address in network order (4 or 16 octets) and the port in network
// order (2 octets). In the IKE_SA_INIT request SPIr is zero.
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "shared/ip.h"
#include "shared/result.h"

namespace cygnet::ike {

using NatHash = std::array<std::uint8_t, 20>;

Result<NatHash> nat_detection_hash(std::span<const std::uint8_t, 8> spi_i, std::span<const std::uint8_t, 8> spi_r,
                                   const IpAddress& addr, std::uint16_t port);

}  // namespace cygnet::ike
