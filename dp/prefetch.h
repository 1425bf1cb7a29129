// Software prefetch that the compiler keeps.
//
// GCC drops __builtin_prefetch when it sits in a small function that it
// has found to have no side effects: a void member such as
// EspSa::prefetch() was marked const by GCC 12 at -O2 and every call to it
// was deleted as dead code before inlining (docs/benchmarks.md, "The SA
// prefetch was compiled away"). A volatile asm counts as a side effect, so
// these stay wherever they are called from (as DPDK's rte_prefetch0 does).
// No load: a prefetch of an unmapped address does not fault.
#pragma once

namespace cygnet::dp {

inline void prefetch_line(const void* p) noexcept {
#if defined(__x86_64__) || defined(__i386__)
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const volatile char*>(p)));
#else
  __builtin_prefetch(p);
#endif
}

}  // namespace cygnet::dp
