// Loader for the parts of a Cygnet config file shared by cygnet-dp,
// cygnet-ike and cygnetctl: static (manually keyed) SAs and policies.
//
// Every error names the file, the line, the field and what was expected.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "shared/policy.h"
#include "shared/result.h"
#include "shared/sa.h"

namespace libconfig {
class Config;
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

// Parse the top-level `sas` and `policies` of an already-read file. Other
// top-level settings (e.g. cygnet-dp's `dataplane` group) are left to their
// own loaders (cp/dp_config.h) and ignored here.
Result<StaticConfig> parse_statics(const libconfig::Setting& root);
// Adds the warning load_static_file gives when `path` holds SA keys and is
// readable by group or others.
void warn_if_keys_readable(const std::string& path, StaticConfig& c);

namespace detail {  // shared by the config loaders; not API
// "file:line: path.field: msg"; field may be empty.
Error err_at(const libconfig::Setting& s, const std::string& field, const std::string& msg);
// Refuses a named child of `group` not in `known`, listing what is.
Result<void> check_known(const libconfig::Setting& group, std::initializer_list<std::string_view> known);
// Reads and parses `path` into `cfg`; a missing file or a syntax error is a
// "file:line: ..." error.
Result<void> read_file(libconfig::Config& cfg, const std::string& path);
}  // namespace detail

}  // namespace cygnet::cfg
