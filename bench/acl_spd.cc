#include "bench/acl_spd.h"

#include <sched.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <rte_acl.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_memory.h>

namespace cygnet::bench {

namespace {

using cygnet::dp::spd::FlowTuple;

// ---- EAL ----

int first_allowed_cpu() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) return c;
  }
  return 0;
}

// ---- rte_acl layout ----
//
// rte_acl walks one byte per trie level. The first field must be one byte
// long; every later "input index" is read as one 4-byte load at the offset of
// its first field, so the fields sharing an input index must fill exactly 4
// consecutive bytes. Input buffers hold values in network order; rule values
// are given in host order.
//
// Fields (both families):
//   proto  BITMASK 1 byte: value proto, mask 0xff; mask 0 for "any".
//   src    MASK    4 bytes (IPv6: four 32-bit words, prefix length split
//                  over them, e.g. /40 -> 32, 8, 0, 0).
//   dst    MASK    same.
//   sport  RANGE   2 bytes \ one input index
//   dport  RANGE   2 bytes /
//   opaque BITMASK 4 bytes: the input is be32(tuple.opaque != 0). A rule
//                  that may not match opaque tuples has value 0, mask 1;
//                  any other rule has mask 0.
//
// Which rules may match opaque tuples (ports unknown)? Selector::matches
// ignores ports for proto "any", so those rules get full port ranges and
// accept opaque tuples. A rule with a specific protocol accepts them only
// when both its port ranges are the full 0-65535; then the (meaningless)
// ports in the tuple cannot affect the result either. Every other rule
// requires opaque == 0 and keeps its exact ranges. This is exact.
//
// If no rule of a context restricts the opaque field, rte_acl drops that
// 4-byte group from its tries (it deactivates always-wildcard groups), so
// it costs nothing in the common case.

struct alignas(8) Input4 {
  std::uint8_t proto;
  std::uint8_t pad[3];
  std::uint8_t src[4];
  std::uint8_t dst[4];
  std::uint8_t ports[4];   // sport, dport, each big-endian
  std::uint8_t opaque[4];  // big-endian 32-bit 0 or 1
};
static_assert(offsetof(Input4, src) == 4 && offsetof(Input4, dst) == 8 && offsetof(Input4, ports) == 12 &&
              offsetof(Input4, opaque) == 16 && sizeof(Input4) == 24);

struct alignas(8) Input6 {
  std::uint8_t proto;
  std::uint8_t pad[3];
  std::uint8_t src[16];
  std::uint8_t dst[16];
  std::uint8_t ports[4];
  std::uint8_t opaque[4];
};
static_assert(offsetof(Input6, src) == 4 && offsetof(Input6, dst) == 20 && offsetof(Input6, ports) == 36 &&
              offsetof(Input6, opaque) == 40 && sizeof(Input6) == 48);

constexpr std::uint32_t kFields4 = 6;   // proto, src, dst, sport, dport, opaque
constexpr std::uint32_t kFields6 = 12;  // proto, src x4, dst x4, sport, dport, opaque

RTE_ACL_RULE_DEF(AclRule4, kFields4);
RTE_ACL_RULE_DEF(AclRule6, kFields6);

struct FieldLayout {
  std::uint32_t num_fields;
  std::uint32_t addr_words;  // 1 or 4
  std::uint32_t src_offset;
  std::uint32_t dst_offset;
  std::uint32_t ports_offset;
  std::uint32_t opaque_offset;
};

constexpr FieldLayout kLayout4{kFields4, 1, offsetof(Input4, src), offsetof(Input4, dst), offsetof(Input4, ports),
                               offsetof(Input4, opaque)};
constexpr FieldLayout kLayout6{kFields6, 4, offsetof(Input6, src), offsetof(Input6, dst), offsetof(Input6, ports),
                               offsetof(Input6, opaque)};

// Field indexes: 0 proto, then src words, then dst words, then sport, dport, opaque.
rte_acl_config make_config(const FieldLayout& l, std::size_t max_size) {
  rte_acl_config cfg;
  std::memset(&cfg, 0, sizeof cfg);
  cfg.num_categories = 1;
  cfg.num_fields = l.num_fields;
  cfg.max_size = max_size;
  std::uint8_t f = 0;
  std::uint8_t input = 0;
  auto def = [&](std::uint8_t type, std::uint8_t size, std::uint32_t offset, bool new_input) {
    if (new_input && f != 0) ++input;
    cfg.defs[f] = rte_acl_field_def{type, size, f, input, offset};
    ++f;
  };
  def(RTE_ACL_FIELD_TYPE_BITMASK, 1, 0, true);
  for (std::uint32_t w = 0; w < l.addr_words; ++w) def(RTE_ACL_FIELD_TYPE_MASK, 4, l.src_offset + 4 * w, true);
  for (std::uint32_t w = 0; w < l.addr_words; ++w) def(RTE_ACL_FIELD_TYPE_MASK, 4, l.dst_offset + 4 * w, true);
  def(RTE_ACL_FIELD_TYPE_RANGE, 2, l.ports_offset, true);
  def(RTE_ACL_FIELD_TYPE_RANGE, 2, l.ports_offset + 2, false);
  def(RTE_ACL_FIELD_TYPE_BITMASK, 4, l.opaque_offset, true);
  return cfg;
}

std::uint32_t load_be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

void store_be16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}

// Prefix bits of an address word: value (host order, host bits cleared) and length.
void set_addr_word(rte_acl_field& fld, const IpPrefix& p, std::uint32_t word) {
  const unsigned start = 32 * word;
  const unsigned bits = p.len <= start ? 0 : (p.len - start >= 32 ? 32 : p.len - start);
  const std::uint32_t mask = bits == 0 ? 0 : ~std::uint32_t{0} << (32 - bits);
  fld.value.u32 = load_be32(p.addr.bytes.data() + 4 * word) & mask;
  fld.mask_range.u32 = bits;
}

template <class Rule>
void fill_rule(Rule& r, const Selector& s, std::uint32_t words, std::int32_t priority, std::uint32_t userdata) {
  std::memset(&r, 0, sizeof r);
  r.data.category_mask = 1;
  r.data.priority = priority;
  r.data.userdata = userdata;
  std::uint32_t f = 0;
  r.field[f].value.u8 = s.proto;
  r.field[f].mask_range.u8 = s.proto == kProtoAny ? 0 : 0xff;
  ++f;
  for (std::uint32_t w = 0; w < words; ++w) set_addr_word(r.field[f++], s.src, w);
  for (std::uint32_t w = 0; w < words; ++w) set_addr_word(r.field[f++], s.dst, w);
  const bool any_proto = s.proto == kProtoAny;
  const PortRange sp = any_proto ? PortRange{} : s.sport;
  const PortRange dp = any_proto ? PortRange{} : s.dport;
  r.field[f].value.u16 = sp.lo;
  r.field[f].mask_range.u16 = sp.hi;
  ++f;
  r.field[f].value.u16 = dp.lo;
  r.field[f].mask_range.u16 = dp.hi;
  ++f;
  const bool accepts_opaque = any_proto || (s.sport.is_any() && s.dport.is_any());
  r.field[f].value.u32 = 0;
  r.field[f].mask_range.u32 = accepts_opaque ? 0 : 1;
}

// Structural checks; everything else Selector::matches handles is reproduced.
bool check_rule(const Selector& s, std::size_t index, std::string* err) {
  auto fail = [&](const std::string& why) {
    if (err) *err = "rule " + std::to_string(index) + " (" + s.to_string() + "): " + why;
    return false;
  };
  const Family f = s.src.family();
  if (f != Family::ipv4 && f != Family::ipv6) return fail("source prefix has no address family");
  if (s.dst.family() != f) {
    return fail(std::string("source is ") + family_name(f) + " but destination is " + family_name(s.dst.family()));
  }
  if (s.src.len > s.src.addr.bit_width() || s.dst.len > s.dst.addr.bit_width()) {
    return fail("prefix length is longer than the address");
  }
  if (s.proto != kProtoAny && (s.sport.lo > s.sport.hi || s.dport.lo > s.dport.hi)) {
    return fail("port range has its low end above its high end");
  }
  return true;
}

std::size_t heap_bytes_in_use() {
  std::size_t total = 0;
  const unsigned sockets = rte_socket_count();
  for (unsigned i = 0; i < sockets; ++i) {
    rte_malloc_socket_stats st;
    if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(i), &st) == 0) total += st.heap_allocsz_bytes;
  }
  return total;
}

std::string errno_text(int e) { return std::string(rte_strerror(e)) + " (" + std::to_string(-e) + ")"; }

// One context for rules[indexes[first .. first + count)], all of one family.
template <class Rule>
rte_acl_ctx* build_context(const char* family, const FieldLayout& layout, const std::vector<cygnet::Policy>& all,
                           const std::vector<std::uint32_t>& indexes, std::size_t first, std::size_t count,
                           const AclSpd::Options& opt, std::string* err) {
  static std::atomic<unsigned> serial{0};
  // rte_acl_create() hands back an existing context when the name is taken,
  // so every context gets a fresh one.
  char name[RTE_ACL_NAMESIZE];
  std::snprintf(name, sizeof name, "cyg%s_%u", family, serial.fetch_add(1, std::memory_order_relaxed));
  const std::string what = std::to_string(count) + " " + family + " rules (from rule " +
                           std::to_string(indexes[first]) + ")";

  rte_acl_param param{};
  param.name = name;
  param.socket_id = SOCKET_ID_ANY;
  param.rule_size = static_cast<std::uint32_t>(RTE_ACL_RULE_SZ(layout.num_fields));
  param.max_rule_num = static_cast<std::uint32_t>(count);
  static_assert(sizeof(Rule) == RTE_ACL_RULE_SZ(sizeof(Rule::field) / sizeof(rte_acl_field)));

  rte_acl_ctx* ctx = rte_acl_create(&param);
  if (ctx == nullptr) {
    if (err) *err = "rte_acl_create for " + what + " failed: " + errno_text(rte_errno);
    return nullptr;
  }

  const auto n_all = static_cast<std::int32_t>(all.size());
  std::vector<Rule> rules(count);
  for (std::size_t k = 0; k < count; ++k) {
    const std::uint32_t i = indexes[first + k];
    // Higher priority wins in rte_acl: rule 0 gets N, the last rule 1.
    fill_rule(rules[k], all[i].sel, layout.addr_words, n_all - static_cast<std::int32_t>(i), i + 1);
  }
  int rc = rte_acl_add_rules(ctx, reinterpret_cast<const rte_acl_rule*>(rules.data()),
                             static_cast<std::uint32_t>(rules.size()));
  if (rc != 0) {
    if (err) *err = "rte_acl_add_rules for " + what + " failed: " + errno_text(-rc);
    rte_acl_free(ctx);
    return nullptr;
  }

  const rte_acl_config cfg = make_config(layout, opt.max_runtime_bytes);
  rc = rte_acl_build(ctx, &cfg);
  if (rc != 0) {
    if (err) {
      *err = "rte_acl_build for " + what + " failed: " + errno_text(-rc);
      if (rc == -ERANGE) {
        *err += "; the run-time tries do not fit in max_runtime_bytes (" +
                std::to_string(opt.max_runtime_bytes) + ") even split as far as rte_acl goes";
      } else if (rc == -ENOMEM) {
        *err += "; either the rules needed more than rte_acl's 8 tries (use a smaller "
                "Options::max_rules_per_context) or the DPDK heap (EAL -m) is exhausted";
      }
    }
    rte_acl_free(ctx);
    return nullptr;
  }
  return ctx;
}

template <class Rule>
bool build_family(const char* family, const FieldLayout& layout, const std::vector<cygnet::Policy>& all,
                  const std::vector<std::uint32_t>& indexes, const AclSpd::Options& opt,
                  std::vector<rte_acl_ctx*>& out, std::string* err) {
  const std::size_t chunk = opt.max_rules_per_context == 0 ? indexes.size() : opt.max_rules_per_context;
  for (std::size_t first = 0; first < indexes.size(); first += chunk) {
    const std::size_t count = indexes.size() - first < chunk ? indexes.size() - first : chunk;
    rte_acl_ctx* ctx = build_context<Rule>(family, layout, all, indexes, first, count, opt, err);
    if (ctx == nullptr) return false;
    out.push_back(ctx);
    if (opt.classify_alg != 0) {
      const int rc = rte_acl_set_ctx_classify(ctx, static_cast<enum rte_acl_classify_alg>(opt.classify_alg));
      if (rc != 0) {
        if (err) {
          *err = std::string("rte_acl classify method ") + std::to_string(opt.classify_alg) +
                 " is not available here: " + errno_text(-rc);
        }
        return false;
      }
    }
  }
  return true;
}

constexpr std::uint32_t kBatch = 64;

void run_classify(const rte_acl_ctx* ctx, const std::uint8_t** data, std::uint32_t* res, std::uint32_t n) {
  const int rc = rte_acl_classify(ctx, data, res, n, 1);
  if (rc != 0) {
    // Only bad arguments make rte_acl_classify fail; ours are fixed.
    std::fprintf(stderr, "cygnet: rte_acl_classify failed: %s\n", rte_strerror(-rc));
    std::abort();
  }
}

}  // namespace

bool eal_init_for_bench(std::string* err) {
  static std::mutex mu;
  static int state = 0;  // 0 not tried, 1 running, -1 failed
  static std::string failure;
  std::lock_guard lock(mu);
  if (state == 1) return true;
  if (state == -1) {
    if (err) *err = failure;
    return false;
  }
  const std::string lcore = std::to_string(first_allowed_cpu());
  // rte_eal_init may keep pointers into argv and reorders it: static storage.
  static std::vector<std::string> args;
  static std::vector<char*> argv;
  // --in-memory is refused with --no-huge in 22.11 ("--legacy-mem is not
  // compatible with --in-memory": --no-huge implies legacy memory);
  // --no-shconf alone keeps EAL from creating shared config files.
  args = {"cygnet-bench", "--no-huge",      "-m", "2048", "--no-pci", "--no-shconf",
          "--no-telemetry", "-l",          lcore, "--log-level=lib.eal:error", "--force-max-simd-bitwidth=512"};
  argv.clear();
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int rc = rte_eal_init(static_cast<int>(args.size()), argv.data());
  if (rc < 0) {
    failure = "rte_eal_init(";
    for (std::size_t i = 1; i < args.size(); ++i) failure += (i > 1 ? " " : "") + args[i];
    failure += ") failed: " + std::string(rte_strerror(rte_errno));
    state = -1;
    if (err) *err = failure;
    return false;
  }
  state = 1;
  return true;
}

std::unique_ptr<AclSpd> AclSpd::build(const std::vector<cygnet::Policy>& rules, std::string* err) {
  return build(rules, Options{}, err);
}

std::unique_ptr<AclSpd> AclSpd::build(const std::vector<cygnet::Policy>& rules, const Options& options,
                                      std::string* err) {
  if (rte_lcore_count() == 0) {
    if (err) *err = "DPDK EAL is not running: call eal_init_for_bench() first";
    return nullptr;
  }
  if (rules.size() >= static_cast<std::size_t>(RTE_ACL_MAX_PRIORITY)) {
    if (err) {
      *err = std::to_string(rules.size()) + " rules: rte_acl priorities stop at " +
             std::to_string(static_cast<std::uint32_t>(RTE_ACL_MAX_PRIORITY));
    }
    return nullptr;
  }
  std::vector<std::uint32_t> v4;
  std::vector<std::uint32_t> v6;
  for (std::size_t i = 0; i < rules.size(); ++i) {
    if (!check_rule(rules[i].sel, i, err)) return nullptr;
    (rules[i].sel.src.family() == Family::ipv4 ? v4 : v6).push_back(static_cast<std::uint32_t>(i));
  }

  std::unique_ptr<AclSpd> spd(new AclSpd());  // frees what was built if a later step fails
  spd->num_rules_ = rules.size();
  const std::size_t heap_before = heap_bytes_in_use();
  if (!build_family<AclRule4>("ipv4", kLayout4, rules, v4, options, spd->ctx4_, err)) return nullptr;
  if (!build_family<AclRule6>("ipv6", kLayout6, rules, v6, options, spd->ctx6_, err)) return nullptr;
  const std::size_t heap_after = heap_bytes_in_use();
  spd->memory_bytes_ = heap_after > heap_before ? heap_after - heap_before : 0;
  return spd;
}

AclSpd::~AclSpd() {
  for (rte_acl_ctx* c : ctx4_) rte_acl_free(c);
  for (rte_acl_ctx* c : ctx6_) rte_acl_free(c);
}

void AclSpd::classify(const FlowTuple* const* tuples, std::uint32_t n, std::int32_t* out) const {
  std::array<Input4, kBatch> in4;
  std::array<Input6, kBatch> in6;
  std::array<const std::uint8_t*, kBatch> p4;
  std::array<const std::uint8_t*, kBatch> p6;
  std::array<std::uint32_t, kBatch> at4;  // position in `out` of each packed input
  std::array<std::uint32_t, kBatch> at6;
  std::array<std::uint32_t, kBatch> best;  // userdata of the first match so far, 0 for none
  std::array<std::uint32_t, kBatch> res;

  // Contexts hold consecutive chunks of the rules in order, so the first
  // context that matches has the lowest index.
  auto lookup = [&](const std::vector<rte_acl_ctx*>& ctxs, const std::uint8_t** data, const std::uint32_t* at,
                    std::uint32_t cnt) {
    if (cnt == 0) return;
    std::fill_n(best.begin(), cnt, 0u);
    for (const rte_acl_ctx* ctx : ctxs) {
      run_classify(ctx, data, ctxs.size() == 1 ? best.data() : res.data(), cnt);
      if (ctxs.size() == 1) break;
      for (std::uint32_t k = 0; k < cnt; ++k) {
        if (best[k] == 0) best[k] = res[k];
      }
    }
    // userdata is index + 1; 0 means no match.
    for (std::uint32_t k = 0; k < cnt; ++k) out[at[k]] = static_cast<std::int32_t>(best[k]) - 1;
  };

  for (std::uint32_t base = 0; base < n; base += kBatch) {
    const std::uint32_t m = n - base < kBatch ? n - base : kBatch;
    std::uint32_t n4 = 0;
    std::uint32_t n6 = 0;
    for (std::uint32_t j = 0; j < m; ++j) {
      const FlowTuple& t = *tuples[base + j];
      out[base + j] = -1;
      if (t.family == 4 && !ctx4_.empty()) {
        Input4& b = in4[n4];
        b.proto = t.proto;
        b.pad[0] = b.pad[1] = b.pad[2] = 0;
        std::memcpy(b.src, t.src, 4);
        std::memcpy(b.dst, t.dst, 4);
        store_be16(b.ports, t.sport);
        store_be16(b.ports + 2, t.dport);
        b.opaque[0] = b.opaque[1] = b.opaque[2] = 0;
        b.opaque[3] = t.opaque != 0;
        p4[n4] = &b.proto;
        at4[n4++] = base + j;
      } else if (t.family == 6 && !ctx6_.empty()) {
        Input6& b = in6[n6];
        b.proto = t.proto;
        b.pad[0] = b.pad[1] = b.pad[2] = 0;
        std::memcpy(b.src, t.src, 16);
        std::memcpy(b.dst, t.dst, 16);
        store_be16(b.ports, t.sport);
        store_be16(b.ports + 2, t.dport);
        b.opaque[0] = b.opaque[1] = b.opaque[2] = 0;
        b.opaque[3] = t.opaque != 0;
        p6[n6] = &b.proto;
        at6[n6++] = base + j;
      }
    }
    lookup(ctx4_, p4.data(), at4.data(), n4);
    lookup(ctx6_, p6.data(), at6.data(), n6);
  }
}

std::int32_t AclSpd::classify_one(const FlowTuple& t) const {
  const FlowTuple* p = &t;
  std::int32_t r = -1;
  classify(&p, 1, &r);
  return r;
}

}  // namespace cygnet::bench
