#include "shared/json.h"

#include <charconv>
#include <cstdio>
#include <system_error>

namespace cygnet::json {

JsonValue JsonValue::make_bool(bool b) {
  JsonValue v;
  v.v_.emplace<static_cast<std::size_t>(Kind::boolean)>(b);
  return v;
}

JsonValue JsonValue::make_number(Number n) {
  JsonValue v;
  v.v_.emplace<static_cast<std::size_t>(Kind::number)>(std::move(n));
  return v;
}

JsonValue JsonValue::make_string(std::string s) {
  JsonValue v;
  v.v_.emplace<static_cast<std::size_t>(Kind::string)>(std::move(s));
  return v;
}

JsonValue JsonValue::make_array(Array a) {
  JsonValue v;
  v.v_.emplace<static_cast<std::size_t>(Kind::array)>(std::move(a));
  return v;
}

JsonValue JsonValue::make_object(Object o) {
  JsonValue v;
  v.v_.emplace<static_cast<std::size_t>(Kind::object)>(std::move(o));
  return v;
}

std::optional<bool> JsonValue::as_bool() const noexcept {
  if (const bool* b = std::get_if<bool>(&v_)) return *b;
  return std::nullopt;
}

std::optional<double> JsonValue::as_double() const noexcept {
  if (const Number* n = std::get_if<Number>(&v_)) return n->value;
  return std::nullopt;
}

std::optional<std::int64_t> JsonValue::as_int() const noexcept {
  const Number* n = std::get_if<Number>(&v_);
  if (n == nullptr) return std::nullopt;
  std::int64_t out = 0;
  const char* first = n->text.data();
  const char* last = first + n->text.size();
  auto [ptr, ec] = std::from_chars(first, last, out);
  if (ec != std::errc{} || ptr != last) return std::nullopt;  // fraction, exponent or too large
  return out;
}

const std::string* JsonValue::as_string() const noexcept { return std::get_if<std::string>(&v_); }
const JsonValue::Array* JsonValue::as_array() const noexcept { return std::get_if<Array>(&v_); }
const JsonValue::Object* JsonValue::as_object() const noexcept { return std::get_if<Object>(&v_); }

const JsonValue* JsonValue::find(std::string_view key) const noexcept {
  const Object* o = as_object();
  if (o == nullptr) return nullptr;
  for (const Member& m : *o) {
    if (m.first == key) return &m.second;
  }
  return nullptr;
}

const std::string* JsonValue::find_string(std::string_view key) const noexcept {
  const JsonValue* v = find(key);
  return v ? v->as_string() : nullptr;
}

const JsonValue::Array* JsonValue::find_array(std::string_view key) const noexcept {
  const JsonValue* v = find(key);
  return v ? v->as_array() : nullptr;
}

const JsonValue::Object* JsonValue::find_object(std::string_view key) const noexcept {
  const JsonValue* v = find(key);
  return v ? v->as_object() : nullptr;
}

std::optional<std::int64_t> JsonValue::find_int(std::string_view key) const noexcept {
  const JsonValue* v = find(key);
  return v ? v->as_int() : std::nullopt;
}

const char* json_kind_name(JsonValue::Kind k) noexcept {
  switch (k) {
    case JsonValue::Kind::null: return "null";
    case JsonValue::Kind::boolean: return "boolean";
    case JsonValue::Kind::number: return "number";
    case JsonValue::Kind::string: return "string";
    case JsonValue::Kind::array: return "array";
    case JsonValue::Kind::object: return "object";
  }
  return "?";
}

namespace {

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  Result<JsonValue> run() {
    JsonValue v;
    skip_ws();
    if (!parse_value(v, 0)) return make_error(error_);
    skip_ws();
    if (pos_ != s_.size()) {
      fail("unexpected data after the JSON value");
      return make_error(error_);
    }
    return v;
  }

 private:
  bool at_end() const noexcept { return pos_ >= s_.size(); }
  char peek() const noexcept { return at_end() ? '\0' : s_[pos_]; }

  bool fail(std::string_view what) {
    std::size_t line = 1;
    std::size_t col = 1;
    for (std::size_t i = 0; i < pos_ && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    error_ = "JSON: " + std::string(what) + " at line " + std::to_string(line) + ", column " + std::to_string(col);
    return false;
  }

  void skip_ws() noexcept {
    while (!at_end()) {
      char c = s_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }

  bool expect_literal(std::string_view lit) {
    if (s_.substr(pos_, lit.size()) != lit) return fail("invalid literal");
    pos_ += lit.size();
    return true;
  }

  bool parse_value(JsonValue& out, std::size_t depth) {
    if (at_end()) return fail("unexpected end of input, expected a value");
    switch (s_[pos_]) {
      case '{': return parse_object(out, depth + 1);
      case '[': return parse_array(out, depth + 1);
      case '"': {
        std::string str;
        if (!parse_string(str)) return false;
        out = JsonValue::make_string(std::move(str));
        return true;
      }
      case 't':
        if (!expect_literal("true")) return false;
        out = JsonValue::make_bool(true);
        return true;
      case 'f':
        if (!expect_literal("false")) return false;
        out = JsonValue::make_bool(false);
        return true;
      case 'n':
        if (!expect_literal("null")) return false;
        out = JsonValue();
        return true;
      default:
        if (s_[pos_] == '-' || is_digit(s_[pos_])) return parse_number(out);
        return fail("unexpected character, expected a value");
    }
  }

  bool parse_object(JsonValue& out, std::size_t depth) {
    if (depth > kMaxJsonDepth) return fail("nesting too deep");
    ++pos_;  // '{'
    JsonValue::Object members;
    skip_ws();
    if (peek() == '}') {
      ++pos_;
      out = JsonValue::make_object(std::move(members));
      return true;
    }
    for (;;) {
      skip_ws();
      if (peek() != '"') return fail("expected a string as object key");
      const std::size_t key_pos = pos_;
      std::string key;
      if (!parse_string(key)) return false;
      for (const auto& m : members) {
        if (m.first == key) {
          pos_ = key_pos;
          return fail("duplicate object key \"" + key + "\"");
        }
      }
      skip_ws();
      if (peek() != ':') return fail("expected ':' after object key");
      ++pos_;
      skip_ws();
      JsonValue v;
      if (!parse_value(v, depth)) return false;
      members.emplace_back(std::move(key), std::move(v));
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        out = JsonValue::make_object(std::move(members));
        return true;
      }
      return fail(at_end() ? "unexpected end of input in object" : "expected ',' or '}' in object");
    }
  }

  bool parse_array(JsonValue& out, std::size_t depth) {
    if (depth > kMaxJsonDepth) return fail("nesting too deep");
    ++pos_;  // '['
    JsonValue::Array items;
    skip_ws();
    if (peek() == ']') {
      ++pos_;
      out = JsonValue::make_array(std::move(items));
      return true;
    }
    for (;;) {
      skip_ws();
      JsonValue v;
      if (!parse_value(v, depth)) return false;
      items.push_back(std::move(v));
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        out = JsonValue::make_array(std::move(items));
        return true;
      }
      return fail(at_end() ? "unexpected end of input in array" : "expected ',' or ']' in array");
    }
  }

  // Four hex digits after "\u".
  bool parse_hex4(std::uint32_t& out) {
    if (s_.size() - pos_ < 4) return fail("truncated \\u escape");
    out = 0;
    for (int i = 0; i < 4; ++i) {
      int h = hex_value(s_[pos_]);
      if (h < 0) return fail("invalid hex digit in \\u escape");
      out = (out << 4) | static_cast<std::uint32_t>(h);
      ++pos_;
    }
    return true;
  }

  bool parse_escape(std::string& out) {
    ++pos_;  // '\\'
    if (at_end()) return fail("unterminated string");
    const char c = s_[pos_++];
    switch (c) {
      case '"': out.push_back('"'); return true;
      case '\\': out.push_back('\\'); return true;
      case '/': out.push_back('/'); return true;
      case 'b': out.push_back('\b'); return true;
      case 'f': out.push_back('\f'); return true;
      case 'n': out.push_back('\n'); return true;
      case 'r': out.push_back('\r'); return true;
      case 't': out.push_back('\t'); return true;
      case 'u': {
        std::uint32_t cp = 0;
        if (!parse_hex4(cp)) return false;
        if (cp >= 0xdc00 && cp <= 0xdfff) return fail("lone low surrogate in \\u escape");
        if (cp >= 0xd800 && cp <= 0xdbff) {
          if (s_.substr(pos_, 2) != "\\u") return fail("high surrogate not followed by a low surrogate");
          pos_ += 2;
          std::uint32_t lo = 0;
          if (!parse_hex4(lo)) return false;
          if (lo < 0xdc00 || lo > 0xdfff) return fail("high surrogate not followed by a low surrogate");
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        append_utf8(out, cp);
        return true;
      }
      default:
        --pos_;
        return fail("invalid escape sequence");
    }
  }

  // One UTF-8 encoded character starting with a byte >= 0x80; well-formed
  // per RFC 3629 (no overlongs, no surrogates, nothing above U+10FFFF).
  bool copy_utf8(std::string& out) {
    const auto b0 = static_cast<std::uint8_t>(s_[pos_]);
    std::size_t n = 0;
    std::uint8_t lo = 0x80;
    std::uint8_t hi = 0xbf;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
      n = 1;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
      n = 2;
      if (b0 == 0xe0) lo = 0xa0;
      if (b0 == 0xed) hi = 0x9f;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      n = 3;
      if (b0 == 0xf0) lo = 0x90;
      if (b0 == 0xf4) hi = 0x8f;
    } else {
      return fail("invalid UTF-8 in string");
    }
    if (s_.size() - pos_ < n + 1) return fail("truncated UTF-8 sequence in string");
    for (std::size_t i = 1; i <= n; ++i) {
      const auto b = static_cast<std::uint8_t>(s_[pos_ + i]);
      const std::uint8_t min = i == 1 ? lo : 0x80;
      const std::uint8_t max = i == 1 ? hi : 0xbf;
      if (b < min || b > max) {
        pos_ += i;
        return fail("invalid UTF-8 in string");
      }
    }
    out.append(s_.substr(pos_, n + 1));
    pos_ += n + 1;
    return true;
  }

  bool parse_string(std::string& out) {
    ++pos_;  // '"'
    for (;;) {
      if (at_end()) return fail("unterminated string");
      const char c = s_[pos_];
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c == '\\') {
        if (!parse_escape(out)) return false;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        return fail("unescaped control character in string");
      } else if (static_cast<unsigned char>(c) >= 0x80) {
        if (!copy_utf8(out)) return false;
      } else {
        out.push_back(c);
        ++pos_;
      }
    }
  }

  bool parse_number(JsonValue& out) {
    const std::size_t start = pos_;
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
      if (is_digit(peek())) return fail("leading zero in number");
    } else if (is_digit(peek())) {
      while (is_digit(peek())) ++pos_;
    } else {
      return fail("expected a digit in number");
    }
    if (peek() == '.') {
      ++pos_;
      if (!is_digit(peek())) return fail("expected a digit after '.' in number");
      while (is_digit(peek())) ++pos_;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (!is_digit(peek())) return fail("expected a digit in exponent");
      while (is_digit(peek())) ++pos_;
    }
    JsonValue::Number n;
    n.text = std::string(s_.substr(start, pos_ - start));
    const char* first = n.text.data();
    const char* last = first + n.text.size();
    auto [ptr, ec] = std::from_chars(first, last, n.value);
    if (ec == std::errc::result_out_of_range) {
      pos_ = start;
      return fail("number out of range");
    }
    if (ec != std::errc{} || ptr != last) {
      pos_ = start;
      return fail("invalid number");
    }
    out = JsonValue::make_number(std::move(n));
    return true;
  }

  std::string_view s_;
  std::size_t pos_ = 0;
  std::string error_;
};

}  // namespace

Result<JsonValue> parse_json(std::string_view text) { return Parser(text).run(); }

Result<JsonValue> parse_json_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return make_error("JSON: cannot open " + path);
  std::string data;
  char chunk[65536];
  std::size_t n = 0;
  while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0) data.append(chunk, n);
  const bool read_error = std::ferror(f) != 0;
  std::fclose(f);
  if (read_error) return make_error("JSON: cannot read " + path);
  auto r = parse_json(data);
  if (!r.ok()) return make_error(path + ": " + r.error().message);
  return r;
}

}  // namespace cygnet::json
