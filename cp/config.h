// Loader for the parts of a Cygnet config file shared by cygnet-dp,
// cygnet-ike and cygnetctl: static (manually keyed) SAs and policies.
//
// Every error names the file, the line, the field and what was expected.
#pragma once

#include <string>
#include <vector>

#include "shared/policy.h"
#include "shared/result.h"
#include "shared/sa.h"

namespace libconfig {
class Setting;
}

namespace cygnet::cfg {

struct StaticConfig {
  std::vector<SaConfig> sas;
  std::vector<Policy> policies;
  std::vector<std::string> warnings;  // e.g. keys in a file others can read
};

Result<StaticConfig> load_static_file(const std::string& path);
Result<StaticConfig> load_static_string(const std::string& text, const std::string& name = "<string>");

// Parse one SA or policy group (used by the file loader and by tests).
Result<SaConfig> parse_sa(const libconfig::Setting& s);
Result<Policy> parse_policy(const libconfig::Setting& s);

}  // namespace cygnet::cfg
