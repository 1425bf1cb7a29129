// esp_tool: runs one SA from a config file over packets given as hex lines.
// A test harness for cross-implementation checks (scapy, tshark): it is the
// ESP engine exactly as the dataplane uses it, fed from a file.
//
//   esp_tool --config FILE --spi SPI [--dir in|out] [--seq N] [--burst N]
//
// stdin: one IP packet per line, in hex (blank lines and '#' lines skipped).
// stdout: one line per packet, "ok HEX" (the processed packet) or
// "drop REASON". Lines are processed in bursts of --burst (default 1);
// the SA's state (sequence numbers, replay window) carries over.
// Exit status: 0 if it ran (whatever was dropped), 2 on bad usage or config.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "cp/config.h"
#include "dp/crypto/imb_mgr.h"
#include "dp/esp/esp.h"

using namespace cygnet;

namespace {

int usage(const char* msg) {
  std::fprintf(stderr, "esp_tool: %s\nusage: esp_tool --config FILE --spi SPI [--dir in|out] [--seq N] [--burst N]\n",
               msg);
  return 2;
}

bool parse_hex(const std::string& line, std::vector<std::uint8_t>& out) {
  out.clear();
  int hi = -1;
  for (char c : line) {
    int v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    else if (c == ' ' || c == '\t' || c == '\r') continue;
    else return false;
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<std::uint8_t>(hi << 4 | v));
      hi = -1;
    }
  }
  return hi < 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config;
  std::string dir_name;
  unsigned long long spi = 0;
  unsigned long long seq = 0;
  unsigned long burst = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) return usage(("missing value after " + a).c_str());
    std::string v = argv[++i];
    char* end = nullptr;
    if (a == "--config") {
      config = v;
    } else if (a == "--dir") {
      dir_name = v;
    } else if (a == "--spi") {
      spi = std::strtoull(v.c_str(), &end, 0);
      if (*end || spi > 0xffffffffull) return usage("--spi takes a 32-bit number");
    } else if (a == "--seq") {
      seq = std::strtoull(v.c_str(), &end, 0);
      if (*end || seq == 0) return usage("--seq takes a number >= 1");
    } else if (a == "--burst") {
      burst = std::strtoul(v.c_str(), &end, 0);
      if (*end || burst == 0 || burst > 256) return usage("--burst takes 1-256");
    } else {
      return usage(("unknown option " + a).c_str());
    }
  }
  if (config.empty() || spi == 0) return usage("--config and --spi are required");
  auto cfg = cfg::load_static_file(config);
  if (!cfg) return usage(cfg.error().message.c_str());
  const SaConfig* sa_cfg = nullptr;
  for (const auto& sa : cfg->sas) {
    if (sa.spi == spi && (dir_name.empty() || dir_name == direction_name(sa.dir))) sa_cfg = &sa;
  }
  if (!sa_cfg) return usage("no SA with that SPI (and direction) in the config");
  auto mgr = dp::ImbManager::create();
  if (!mgr) return usage(mgr.error().message.c_str());
  auto sa = dp::esp::EspSa::create(*sa_cfg, mgr->get());
  if (!sa) return usage(sa.error().message.c_str());
  if (seq) (*sa)->set_next_seq(seq);

  constexpr std::size_t kRoom = 128;
  std::vector<std::vector<std::uint8_t>> bufs;
  std::vector<dp::esp::Packet> pkts;
  std::vector<std::uint8_t> bytes;
  std::string line;
  auto flush = [&]() {
    std::vector<dp::esp::Packet*> ptrs;
    for (auto& p : pkts) ptrs.push_back(&p);
    (*sa)->process(mgr->get(), ptrs.data(), static_cast<std::uint16_t>(ptrs.size()));
    for (auto& p : pkts) {  // input order
      if (p.drop != dp::DropReason::none) {
        std::printf("drop %s\n", std::string(dp::drop_name(p.drop)).c_str());
        continue;
      }
      std::printf("ok ");
      for (std::uint16_t k = 0; k < p.len; ++k) std::printf("%02x", p.data()[k]);
      std::printf("\n");
    }
    pkts.clear();
    bufs.clear();
  };
  bufs.reserve(burst);
  while (std::getline(std::cin, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (!parse_hex(line, bytes) || bytes.size() > 65535 - 2 * kRoom) {
      return usage("input line is not hex of at most 65279 bytes");
    }
    bufs.emplace_back(bytes.size() + 2 * kRoom, 0);
    std::copy(bytes.begin(), bytes.end(), bufs.back().begin() + kRoom);
    dp::esp::Packet p;
    p.buf = bufs.back().data();
    p.cap = static_cast<std::uint16_t>(bufs.back().size());
    p.off = kRoom;
    p.len = static_cast<std::uint16_t>(bytes.size());
    pkts.push_back(p);
    if (pkts.size() == burst) flush();
  }
  if (!pkts.empty()) flush();
  std::fflush(stdout);
  return 0;
}
