// Loader for cygnet-ike's config file and its secrets file
// (docs/ike-config.md). Fills the types of cp/ike/engine/conn.h.
//
// Every error names the file, the line, the setting path and what was
// expected; the first error stops loading and nothing of a bad file is used.
// Secrets never appear in an error or a warning.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "cp/ike/engine/conn.h"
#include "shared/result.h"

namespace cygnet::ike::cfg {

struct IkeLoadOptions {
  // Read the PSKs from this file instead of the config's ike.secrets
  // (cygnet-ike --secrets, tests). Relative: to the current directory.
  std::string secrets_path;
  // Where warnings go (IkeConfig has no field for them); may be null.
  std::vector<std::string>* warnings = nullptr;
};

// Limits the loader enforces (docs/ike-config.md).
inline constexpr std::size_t kMinPskLen = 16;           // bytes; shorter PSKs are refused
inline constexpr std::size_t kMaxSuites = 32;           // per ike / esp list, after expansion
inline constexpr std::size_t kMaxNameLen = 64;          // connection and PSK names
inline constexpr std::size_t kMaxSecretsFileSize = 1 << 20;

Result<IkeConfig> load_ike_file(const std::string& path);
Result<IkeConfig> load_ike_file(const std::string& path, const IkeLoadOptions& opts);
// `name` stands for the file in messages. A relative ike.secrets is taken
// relative to the current directory.
Result<IkeConfig> load_ike_string(const std::string& text, const std::string& name = "<string>");
Result<IkeConfig> load_ike_string(const std::string& text, const std::string& name, const IkeLoadOptions& opts);

// Reads a secrets file on its own (after the ownership and mode checks).
Result<PskMap> load_secrets_file(const std::string& path);

// One proposal string in strongSwan's syntax, expanded into suites
// ("aes128-aes256-sha256-prfsha256-modp2048" gives two). Errors carry no
// file or line.
Result<std::vector<IkeSuite>> parse_ike_proposal(std::string_view text);
Result<std::vector<EspSuite>> parse_esp_proposal(std::string_view text);
// A traffic selector string "prefix[,proto[,ports]]".
Result<TsConfig> parse_ts(std::string_view text);

// The proposal names of a suite, e.g. "aes128gcm16-prfsha256-x25519".
std::string to_string(const IkeSuite& s);
std::string to_string(const EspSuite& s);

// The defaults used when a connection has no ike / esp list.
std::vector<IkeSuite> default_ike_suites();
std::vector<EspSuite> default_esp_suites();

}  // namespace cygnet::ike::cfg
