// Runs fuzz_decode.cc's LLVMFuzzerTestOneInput without libFuzzer, so the GCC
// (and ASan/UBSan) build exercises it as a meson test:
//
//   ikemsg_fuzz CORPUS_DIR [MUTATIONS_PER_FILE]
//
// Every file of CORPUS_DIR as is, every prefix of it, then MUTATIONS_PER_FILE
// deterministic mutations (bit flips, byte sets, length-field tweaks,
// insertions, deletions, truncations, splices with another file). An
// abort in the target fails the test.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

struct Rng {
  std::uint64_t s;
  std::uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  std::size_t below(std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(next() % n); }
};

void run(const std::vector<std::uint8_t>& b) { LLVMFuzzerTestOneInput(b.data(), b.size()); }

std::vector<std::uint8_t> mutate(std::vector<std::uint8_t> b, const std::vector<std::uint8_t>& other, Rng& r) {
  int rounds = 1 + static_cast<int>(r.below(4));
  for (int k = 0; k < rounds; ++k) {
    switch (r.below(8)) {
      case 0:  // flip a bit
        if (!b.empty()) b[r.below(b.size())] ^= static_cast<std::uint8_t>(1u << r.below(8));
        break;
      case 1:  // set an interesting byte
        if (!b.empty()) {
          static const std::uint8_t vals[] = {0, 1, 2, 3, 4, 7, 8, 0x10, 0x20, 0x2e, 0x7f, 0x80, 0xff};
          b[r.below(b.size())] = vals[r.below(sizeof vals)];
        }
        break;
      case 2:  // tweak a 16-bit big-endian field (lengths, counts)
        if (b.size() >= 2) {
          std::size_t at = r.below(b.size() - 1);
          unsigned v = (unsigned{b[at]} << 8 | b[at + 1]);
          static const int deltas[] = {-8, -4, -1, 1, 4, 8, 16, 256};
          v = static_cast<unsigned>(static_cast<int>(v) + deltas[r.below(8)]) & 0xffff;
          b[at] = static_cast<std::uint8_t>(v >> 8);
          b[at + 1] = static_cast<std::uint8_t>(v);
        }
        break;
      case 3:  // insert bytes
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(r.below(b.size() + 1)), 1 + r.below(8),
                 static_cast<std::uint8_t>(r.next()));
        break;
      case 4:  // delete bytes
        if (!b.empty()) {
          std::size_t at = r.below(b.size());
          std::size_t n = std::min(b.size() - at, 1 + r.below(8));
          b.erase(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(at + n));
        }
        break;
      case 5:  // truncate
        b.resize(r.below(b.size() + 1));
        break;
      case 6:  // splice the tail of another input
        if (!other.empty()) {
          std::size_t at = r.below(b.size() + 1), from = r.below(other.size());
          b.resize(at);
          b.insert(b.end(), other.begin() + static_cast<std::ptrdiff_t>(from), other.end());
        }
        break;
      default:  // fix the header length to the size, so the payload checks are reached
        if (b.size() >= 28) {
          auto n = static_cast<std::uint32_t>(b.size());
          b[24] = static_cast<std::uint8_t>(n >> 24);
          b[25] = static_cast<std::uint8_t>(n >> 16);
          b[26] = static_cast<std::uint8_t>(n >> 8);
          b[27] = static_cast<std::uint8_t>(n);
        }
        break;
    }
  }
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR [MUTATIONS_PER_FILE]\n", argv[0]);
    return 2;
  }
  long per_file = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 3000;
  std::vector<std::vector<std::uint8_t>> corpus;
  std::vector<std::filesystem::path> paths;
  for (const auto& e : std::filesystem::directory_iterator(argv[1]))
    if (e.is_regular_file()) paths.push_back(e.path());
  std::sort(paths.begin(), paths.end());  // deterministic order
  for (const auto& p : paths) {
    std::vector<std::uint8_t> b;
    if (std::FILE* f = std::fopen(p.c_str(), "rb")) {
      std::uint8_t chunk[4096];
      std::size_t got;
      while ((got = std::fread(chunk, 1, sizeof chunk, f)) > 0) b.insert(b.end(), chunk, chunk + got);
      std::fclose(f);
    }
    corpus.push_back(std::move(b));
  }
  if (corpus.empty()) {
    std::fprintf(stderr, "no files in %s\n", argv[1]);
    return 1;
  }
  std::size_t runs = 0;
  Rng r{0x9e3779b97f4a7c15ull};
  for (std::size_t i = 0; i < corpus.size(); ++i) {
    const auto& b = corpus[i];
    for (std::size_t n = 0; n <= b.size(); ++n, ++runs) LLVMFuzzerTestOneInput(b.data(), n);
    for (long k = 0; k < per_file; ++k, ++runs) run(mutate(b, corpus[(i + 1 + r.below(corpus.size())) % corpus.size()], r));
  }
  std::printf("ikemsg_fuzz: %zu files, %zu inputs, no crash\n", corpus.size(), runs);
  return 0;
}
