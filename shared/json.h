// A small, strict JSON (RFC 8259) reader: test data such as the Wycheproof
// vectors, and cygnetctl's replies from DPDK telemetry. Malformed input is an error value, never a crash:
// no trailing commas, no comments, no leading zeros, no control characters
// or invalid UTF-8 in strings, no lone surrogates, no duplicate object keys,
// nothing after the top-level value, nesting at most kMaxDepth deep.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "shared/result.h"

namespace cygnet::json {

class JsonValue {
 public:
  enum class Kind : std::uint8_t { null, boolean, number, string, array, object };

  using Array = std::vector<JsonValue>;
  using Member = std::pair<std::string, JsonValue>;
  using Object = std::vector<Member>;  // in document order

  // A number keeps its text so integers are exact whatever their size.
  struct Number {
    double value = 0;
    std::string text;
  };

  JsonValue() = default;  // null
  static JsonValue make_bool(bool b);
  static JsonValue make_number(Number n);
  static JsonValue make_string(std::string s);
  static JsonValue make_array(Array a);
  static JsonValue make_object(Object o);

  Kind kind() const noexcept { return static_cast<Kind>(v_.index()); }
  bool is_null() const noexcept { return kind() == Kind::null; }
  bool is_bool() const noexcept { return kind() == Kind::boolean; }
  bool is_number() const noexcept { return kind() == Kind::number; }
  bool is_string() const noexcept { return kind() == Kind::string; }
  bool is_array() const noexcept { return kind() == Kind::array; }
  bool is_object() const noexcept { return kind() == Kind::object; }

  // Typed access: nullptr / nullopt when the value is of another kind.
  std::optional<bool> as_bool() const noexcept;
  std::optional<double> as_double() const noexcept;
  // Only for numbers written as integers ("12", "-3"; not "1.0" or "1e2")
  // that fit in 64 bits.
  std::optional<std::int64_t> as_int() const noexcept;
  const std::string* as_string() const noexcept;
  const Array* as_array() const noexcept;
  const Object* as_object() const noexcept;

  // Object member by key; nullptr if this is not an object or has no such key.
  const JsonValue* find(std::string_view key) const noexcept;
  // Shorthands for find(key) followed by the typed accessor.
  const std::string* find_string(std::string_view key) const noexcept;
  const Array* find_array(std::string_view key) const noexcept;
  const Object* find_object(std::string_view key) const noexcept;
  std::optional<std::int64_t> find_int(std::string_view key) const noexcept;

 private:
  // Index order must match Kind.
  std::variant<std::monostate, bool, Number, std::string, Array, Object> v_;
};

const char* json_kind_name(JsonValue::Kind k) noexcept;

inline constexpr std::size_t kMaxJsonDepth = 256;

// Parses one JSON text (surrounding whitespace allowed). Errors say what was
// wrong and where ("line L, column C").
Result<JsonValue> parse_json(std::string_view text);

// Reads and parses a file.
Result<JsonValue> parse_json_file(const std::string& path);

}  // namespace cygnet::json
