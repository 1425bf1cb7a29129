// libFuzzer target for the IKEv2 codec (scripts/fuzz.sh builds it with
// clang -fsanitize=fuzzer; fuzz_main.cc runs it without libFuzzer).
//
// For every input: decode; if that succeeds, the message must encode, the
// encoding must decode to the same message and encode to the same bytes
// (the codec is stable after one round). Then open_sk with a NullCipher
// (open always succeeds), and the same round trip through seal_sk for what
// it accepts. Any mismatch aborts.
#include <cstdio>
#include <cstdlib>

#include "cp/ike/msg/msg.h"
#include "cp/ike/msg/test_cipher.h"

namespace {

using namespace cygnet::ike;  // NOLINT: fuzz target

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "ikemsg fuzz: %s\n", what);
  std::abort();
}

// The header fields decode keeps as read but encode computes.
Message normalized(Message m) {
  m.header.length = 0;
  m.header.next_payload = PayloadType::none;
  return m;
}

void check_plain(const Message& m) {
  if (m.sk) return;
  auto e1 = encode(m);
  if (!e1) fail("a decoded message does not encode");
  auto d2 = decode(e1.value());
  if (!d2) fail("an encoded message does not decode");
  if (normalized(d2.value()) != normalized(m)) fail("decode(encode(m)) != m");
  auto e2 = encode(d2.value());
  if (!e2 || e2.value() != e1.value()) fail("encode is not stable");
}

void check_sk(std::span<const std::uint8_t> data) {
  testing::NullCipher nc;
  auto o = open_sk(data, nc);
  if (!o) {
    if (o.error().notify == NotifyType::none && decode(data).ok()) fail("NullCipher open reported an ICV failure");
    return;
  }
  const Message& m = o.value();
  if (!m.sk || !m.sk->first_inner) fail("open_sk without SkInfo");
  std::size_t first = *m.sk->first_inner;
  if (first != 0) return;  // seal_sk builds no outer payloads
  auto sealed = seal_sk(m.header, m.payloads, nc);
  if (!sealed) fail("opened inner payloads do not seal");
  auto o2 = open_sk(sealed.value(), nc);
  if (!o2) fail("a sealed message does not open");
  if (o2->payloads != m.payloads) fail("open_sk(seal_sk(p)) != p");
  if (o2->header.spi_i != m.header.spi_i || o2->header.message_id != m.header.message_id) fail("header changed");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::uint8_t> in(data, size);
  auto d = decode(in);
  if (d) check_plain(d.value());
  check_sk(in);
  (void)classify_udp4500(in);
  (void)decode_header(in);
  return 0;
}
