// ikemsg_tool: the codec from the command line, for the interop tests.
//
//   ikemsg_tool list                 names of the canned messages
//   ikemsg_tool encode NAME          the canned message NAME as hex
//   ikemsg_tool decode               hex on stdin -> text form (msg.h to_text)
//   ikemsg_tool corpus DIR           writes the fuzzer's seed corpus to DIR
//
// "sealed_auth" is the IKE_AUTH inner payloads sealed with the NullCipher of
// test_cipher.h (IV 8 x 0x11, ICV 16 x 0x22, block 16: no secrecy). decode
// opens an SK payload with that same NullCipher.
// Exit status: 0 ok, 1 decode error (printed as "error ..."), 2 usage.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "cp/ike/msg/msg.h"
#include "cp/ike/msg/samples.h"
#include "cp/ike/msg/test_cipher.h"

using namespace cygnet::ike;  // NOLINT: a tool's main file

namespace {

std::vector<std::pair<std::string, Bytes>> canned() {
  std::vector<std::pair<std::string, Bytes>> out;
  for (auto& [name, m] : samples::plain_samples()) out.emplace_back(name, encode(m).value());
  testing::NullCipher nc;
  auto inner = samples::auth_request_inner();
  out.emplace_back("sealed_auth", seal_sk(samples::auth_request_header(), inner, nc).value());
  return out;
}

std::string to_hex(const Bytes& b) {
  std::string s;
  char buf[3];
  for (auto c : b) {
    std::snprintf(buf, sizeof buf, "%02x", c);
    s += buf;
  }
  return s;
}

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "list") {
    for (auto& [name, b] : canned()) std::cout << name << "\n";
    return 0;
  }
  if (cmd == "encode" && argc == 3) {
    for (auto& [name, b] : canned())
      if (name == argv[2]) {
        std::cout << to_hex(b) << "\n";
        return 0;
      }
    std::cerr << "no canned message " << argv[2] << "\n";
    return 2;
  }
  if (cmd == "corpus" && argc == 3) {
    for (auto& [name, b] : canned()) {
      std::ofstream f(std::string(argv[2]) + "/" + name + ".bin", std::ios::binary);
      f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
      if (!f) {
        std::cerr << "cannot write " << argv[2] << "/" << name << ".bin\n";
        return 1;
      }
    }
    return 0;
  }
  if (cmd == "decode" && argc == 2) {
    std::string in;
    char chunk[4096];
    std::size_t got;
    while ((got = std::fread(chunk, 1, sizeof chunk, stdin)) > 0) in.append(chunk, got);
    Bytes b;
    int hi = -1;
    for (char c : in) {
      int v = hexval(c);
      if (v < 0) {
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
        std::cerr << "not hex: '" << c << "'\n";
        return 2;
      }
      if (hi < 0) {
        hi = v;
      } else {
        b.push_back(static_cast<std::uint8_t>(hi * 16 + v));
        hi = -1;
      }
    }
    if (hi >= 0) {
      std::cerr << "odd number of hex digits\n";
      return 2;
    }
    auto m = decode(b);
    if (m && m->sk) {
      testing::NullCipher nc;
      m = open_sk(b, nc);
    }
    if (!m) {
      const auto& e = m.error();
      std::cout << "error notify=" << notify_name(e.notify) << " offset=" << e.offset << " " << e.message << "\n";
      return 1;
    }
    std::cout << to_text(m.value());
    return 0;
  }
  std::cerr << "usage: ikemsg_tool list | encode NAME | decode < HEX | corpus DIR\n";
  return 2;
}
