// One Intel IPsec-MB manager per lcore (DESIGN.md "Dataplane"). RAII owner of
// an IMB_MGR initialised for the best code path this CPU supports.
#pragma once

#include <intel-ipsec-mb.h>

#include <memory>
#include <string>

#include "shared/result.h"

namespace cygnet::dp {

class ImbManager {
 public:
  // Allocates and initialises a manager; fails if the CPU lacks AES-NI or
  // the library's self-test fails.
  static Result<ImbManager> create();

  IMB_MGR* get() const noexcept { return mgr_.get(); }
  IMB_ARCH arch() const noexcept { return arch_; }
  // "avx2 (type 1)", "sse", ...: which IPsec-MB code path runs.
  std::string arch_description() const;

 private:
  struct Free {
    void operator()(IMB_MGR* m) const noexcept { free_mb_mgr(m); }
  };
  std::unique_ptr<IMB_MGR, Free> mgr_;
  IMB_ARCH arch_ = IMB_ARCH_NONE;
};

const char* imb_arch_name(IMB_ARCH a) noexcept;

}  // namespace cygnet::dp
