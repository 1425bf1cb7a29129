#include "dp/crypto/imb_mgr.h"

namespace cygnet::dp {

const char* imb_arch_name(IMB_ARCH a) noexcept {
  switch (a) {
    case IMB_ARCH_NOAESNI: return "no-aesni";
    case IMB_ARCH_SSE: return "sse";
    case IMB_ARCH_AVX: return "avx";
    case IMB_ARCH_AVX2: return "avx2";
    case IMB_ARCH_AVX512: return "avx512";
    default: return "none";
  }
}

Result<ImbManager> ImbManager::create() {
  ImbManager m;
  m.mgr_.reset(alloc_mb_mgr(0));
  if (!m.mgr_) return make_error("IPsec-MB: cannot allocate a manager (out of memory)");
  init_mb_mgr_auto(m.mgr_.get(), &m.arch_);
  if (int e = imb_get_errno(m.mgr_.get()); e != 0) {
    return make_error(std::string("IPsec-MB: manager initialisation failed: ") + imb_get_strerror(e));
  }
  if (m.arch_ == IMB_ARCH_NOAESNI || m.arch_ == IMB_ARCH_NONE) {
    return make_error("IPsec-MB: this CPU has no AES-NI; the dataplane refuses the slow emulated path");
  }
  if ((m.mgr_->features & IMB_FEATURE_SELF_TEST) && !(m.mgr_->features & IMB_FEATURE_SELF_TEST_PASS)) {
    return make_error("IPsec-MB: the library's self-test failed");
  }
  return m;
}

std::string ImbManager::arch_description() const {
  std::string s = imb_arch_name(arch_);
  const auto f = mgr_->features;
  // IPsec-MB's AVX2 "type 2" path needs VAES + VPCLMULQDQ + GFNI.
  if (arch_ == IMB_ARCH_AVX2) {
    const bool t2 = (f & IMB_FEATURE_VAES) && (f & IMB_FEATURE_VPCLMULQDQ) && (f & IMB_FEATURE_GFNI);
    s += t2 ? " (type 2: VAES)" : " (type 1: AES-NI)";
  }
  if (arch_ == IMB_ARCH_AVX512 && (f & IMB_FEATURE_VAES) && (f & IMB_FEATURE_VPCLMULQDQ)) s += " (VAES)";
  if (f & IMB_FEATURE_SHANI) s += " +SHA-NI";
  return s;
}

}  // namespace cygnet::dp
