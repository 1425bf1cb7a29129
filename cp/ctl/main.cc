// cygnetctl entry point: see cp/ctl/ctl.h and docs/cli.md.
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "cp/ctl/ctl.h"
#include "shared/secret.h"

int main(int argc, char** argv) {
  std::vector<std::string> args;
  args.reserve(static_cast<std::size_t>(argc > 0 ? argc : 0));
  for (int i = 1; i < argc; ++i) {
    args.emplace_back(argv[i]);
    // Keys given on the command line: blank them in argv (what ps(1) shows)
    // as soon as they are copied. This only narrows the window in which
    // other users can read them; --enc-key-file closes it (docs/cli.md).
    const std::string_view a(argv[i]);
    if ((a == "--enc-key" || a == "--integ-key") && i + 1 < argc) {
      args.emplace_back(argv[i + 1]);
      cygnet::secure_zero(argv[i + 1], std::strlen(argv[i + 1]));
      ++i;
    } else if (a.starts_with("--enc-key=") || a.starts_with("--integ-key=")) {
      const auto eq = a.find('=');
      cygnet::secure_zero(argv[i] + eq + 1, a.size() - eq - 1);
    }
  }
  const int rc = cygnet::ctl::run(args, std::cout, std::cerr);
  for (auto& s : args) cygnet::secure_zero(s.data(), s.size());
  return rc;
}
