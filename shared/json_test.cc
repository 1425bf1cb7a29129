#include "shared/json.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <string_view>

namespace cygnet::json {
namespace {

JsonValue parse_ok(std::string_view text) {
  auto r = parse_json(text);
  EXPECT_TRUE(r.ok()) << "input: " << text << "\nerror: " << (r.ok() ? "" : r.error().message);
  return r.ok() ? std::move(r.value()) : JsonValue();
}

TEST(Json, Literals) {
  EXPECT_TRUE(parse_ok("null").is_null());
  EXPECT_EQ(parse_ok("true").as_bool(), true);
  EXPECT_EQ(parse_ok("false").as_bool(), false);
  EXPECT_EQ(parse_ok(" \t\r\n true \n").as_bool(), true);
  EXPECT_EQ(parse_ok("null").kind(), JsonValue::Kind::null);
  EXPECT_STREQ(json_kind_name(parse_ok("false").kind()), "boolean");
}

TEST(Json, Numbers) {
  EXPECT_EQ(parse_ok("0").as_int(), 0);
  EXPECT_EQ(parse_ok("-0").as_int(), 0);
  EXPECT_EQ(parse_ok("12").as_int(), 12);
  EXPECT_EQ(parse_ok("-3").as_int(), -3);
  EXPECT_EQ(parse_ok("9223372036854775807").as_int(), INT64_MAX);
  EXPECT_EQ(parse_ok("-9223372036854775808").as_int(), INT64_MIN);
  // Too big for int64: still a number, just not an integer.
  JsonValue big = parse_ok("9223372036854775808");
  EXPECT_TRUE(big.is_number());
  EXPECT_FALSE(big.as_int().has_value());
  EXPECT_DOUBLE_EQ(*big.as_double(), 9223372036854775808.0);

  EXPECT_DOUBLE_EQ(*parse_ok("1.5").as_double(), 1.5);
  EXPECT_DOUBLE_EQ(*parse_ok("-0.25").as_double(), -0.25);
  EXPECT_DOUBLE_EQ(*parse_ok("1e2").as_double(), 100.0);
  EXPECT_DOUBLE_EQ(*parse_ok("1E-2").as_double(), 0.01);
  EXPECT_DOUBLE_EQ(*parse_ok("2.5e+3").as_double(), 2500.0);
  EXPECT_FALSE(parse_ok("1.0").as_int().has_value());
  EXPECT_FALSE(parse_ok("1e2").as_int().has_value());
  EXPECT_FALSE(parse_ok("\"12\"").as_int().has_value());
  EXPECT_FALSE(parse_ok("true").as_double().has_value());
}

TEST(Json, Strings) {
  EXPECT_EQ(*parse_ok(R"("")").as_string(), "");
  EXPECT_EQ(*parse_ok(R"("abc")").as_string(), "abc");
  EXPECT_EQ(*parse_ok(R"("q\"b\\s\/n\nt\tr\rb\bf\f")").as_string(), "q\"b\\s/n\nt\tr\rb\bf\f");
  EXPECT_EQ(*parse_ok(R"("\u0041\u00e9\u20AC")").as_string(), "A\xc3\xa9\xe2\x82\xac");
  EXPECT_EQ(*parse_ok(R"("\ud83d\ude00")").as_string(), "\xf0\x9f\x98\x80");  // U+1F600
  const std::string nul = *parse_ok(R"("a\u0000b")").as_string();
  ASSERT_EQ(nul.size(), 3u);
  EXPECT_EQ(nul[1], '\0');
  // Raw UTF-8 is passed through unchanged.
  EXPECT_EQ(*parse_ok("\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"").as_string(), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
  EXPECT_EQ(parse_ok("\"x\"").as_array(), nullptr);
}

TEST(Json, ArraysAndObjects) {
  JsonValue v = parse_ok(R"( { "b" : [1, "two", [], {}, null, true] , "a": {"x": -1}, "s": "str" } )");
  ASSERT_TRUE(v.is_object());
  const auto* o = v.as_object();
  ASSERT_NE(o, nullptr);
  ASSERT_EQ(o->size(), 3u);
  EXPECT_EQ((*o)[0].first, "b");  // document order is kept
  EXPECT_EQ((*o)[1].first, "a");
  EXPECT_EQ((*o)[2].first, "s");

  const auto* b = v.find_array("b");
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(b->size(), 6u);
  EXPECT_EQ((*b)[0].as_int(), 1);
  EXPECT_EQ(*(*b)[1].as_string(), "two");
  EXPECT_TRUE((*b)[2].as_array()->empty());
  EXPECT_TRUE((*b)[3].as_object()->empty());
  EXPECT_TRUE((*b)[4].is_null());
  EXPECT_EQ((*b)[5].as_bool(), true);

  EXPECT_EQ(v.find("a")->find_int("x"), -1);
  EXPECT_NE(v.find_object("a"), nullptr);
  EXPECT_EQ(*v.find_string("s"), "str");

  // Missing keys and wrong kinds give nullptr / nullopt, not a crash.
  EXPECT_EQ(v.find("missing"), nullptr);
  EXPECT_EQ(v.find_string("b"), nullptr);
  EXPECT_EQ(v.find_array("s"), nullptr);
  EXPECT_EQ(v.find_object("b"), nullptr);
  EXPECT_FALSE(v.find_int("s").has_value());
  EXPECT_FALSE(v.find_int("missing").has_value());
  EXPECT_EQ((*b)[0].find("x"), nullptr);  // find on a non-object
  EXPECT_EQ(v.as_string(), nullptr);
  EXPECT_FALSE(v.as_bool().has_value());

  EXPECT_TRUE(parse_ok("[]").as_array()->empty());
  EXPECT_TRUE(parse_ok("{}").as_object()->empty());
  EXPECT_EQ(parse_ok("[[[[1]]]]").as_array()->at(0).as_array()->at(0).as_array()->at(0).as_array()->at(0).as_int(),
            1);
}

struct BadCase {
  const char* name;
  std::string text;
};

TEST(Json, RejectsMalformedInput) {
  const BadCase cases[] = {
      {"empty", ""},
      {"only whitespace", " \n\t"},
      {"trailing comma in array", "[1,]"},
      {"trailing comma in object", R"({"a":1,})"},
      {"leading comma", "[,1]"},
      {"missing comma", "[1 2]"},
      {"missing colon", R"({"a" 1})"},
      {"unquoted key", "{a:1}"},
      {"number key", "{1:1}"},
      {"missing value", R"({"a":})"},
      {"unclosed array", "[1, 2"},
      {"unclosed object", R"({"a": 1)"},
      {"mismatched bracket", "[1}"},
      {"leading zero", "01"},
      {"negative leading zero", "-01"},
      {"lone minus", "-"},
      {"no fraction digits", "1."},
      {"no integer part", ".5"},
      {"no exponent digits", "1e"},
      {"exponent sign only", "1e+"},
      {"plus sign", "+1"},
      {"hex number", "0x10"},
      {"NaN", "NaN"},
      {"Infinity", "Infinity"},
      {"out of range", "1e999"},
      {"truncated true", "tru"},
      {"misspelled null", "nul"},
      {"capital True", "True"},
      {"unterminated string", "\"abc"},
      {"invalid escape", R"("a\x")"},
      {"short unicode escape", R"("\u12")"},
      {"bad hex in escape", R"("\u12g4")"},
      {"lone high surrogate", R"("\ud800")"},
      {"lone low surrogate", R"("\udc00")"},
      {"high surrogate then non-surrogate", R"("\ud800\u0041")"},
      {"raw tab in string", "\"a\tb\""},
      {"raw newline in string", "\"a\nb\""},
      {"invalid UTF-8 byte", "\"\xff\""},
      {"overlong UTF-8", "\"\xc0\x80\""},
      {"UTF-8 surrogate", "\"\xed\xa0\x80\""},
      {"UTF-8 above U+10FFFF", "\"\xf4\x90\x80\x80\""},
      {"truncated UTF-8", "\"\xe2\x82\""},
      {"stray continuation byte", "\"\x80\""},
      {"single quotes", "'a'"},
      {"comment", "// c\n1"},
      {"two values", "1 2"},
      {"garbage after value", "[] x"},
      {"NUL after value", std::string("[1]\0", 4)},
      {"duplicate key", R"({"a":1,"a":2})"},
      {"too deep", std::string(kMaxJsonDepth + 1, '[') + std::string(kMaxJsonDepth + 1, ']')},
      {"very deep, unclosed", std::string(100000, '[')},
  };
  for (const auto& c : cases) {
    auto r = parse_json(c.text);
    EXPECT_FALSE(r.ok()) << c.name;
    if (!r.ok()) {
      EXPECT_NE(r.error().message.find("line "), std::string::npos) << c.name << ": " << r.error().message;
    }
  }
}

TEST(Json, DepthLimitIsInclusive) {
  const std::string deep = std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']');
  EXPECT_TRUE(parse_json(deep).ok());
}

TEST(Json, ErrorNamesLineAndColumn) {
  auto r = parse_json("{\n  \"a\": ?}");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("line 2, column 8"), std::string::npos) << r.error().message;

  auto dup = parse_json("{\"k\": 1,\n \"k\": 2}");
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.error().message.find("duplicate object key \"k\""), std::string::npos) << dup.error().message;
  EXPECT_NE(dup.error().message.find("line 2, column 2"), std::string::npos) << dup.error().message;
}

// Every proper prefix of a document, and every single-byte corruption of it,
// is handled without crashing; prefixes are always errors.
TEST(Json, TruncatedAndCorruptedInput) {
  const std::string doc =
      R"({"algorithm": "X", "n": [1, -2.5e3, true, false, null], "s": "a\"\u00e9\ud83d\ude00", "o": {"k": []}})";
  ASSERT_TRUE(parse_json(doc).ok());
  for (std::size_t n = 0; n < doc.size(); ++n) {
    EXPECT_FALSE(parse_json(std::string_view(doc).substr(0, n)).ok()) << "prefix of length " << n;
  }
  const char replacements[] = {'\0', '"', '\\', '{', '}', '[', ']', ',', ':', 'x', '\x80', '\xff'};
  std::size_t accepted = 0;
  for (std::size_t i = 0; i < doc.size(); ++i) {
    for (char c : replacements) {
      std::string bad = doc;
      bad[i] = c;
      if (parse_json(bad).ok()) ++accepted;  // some corruptions stay valid JSON ("x" in a string)
    }
  }
  EXPECT_LT(accepted, doc.size() * sizeof replacements);
}

TEST(Json, Files) {
  auto missing = parse_json_file("/nonexistent/cygnet/json_test.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("cannot open"), std::string::npos);

  const std::string path = ::testing::TempDir() + "cygnet_json_test.json";
  {
    std::ofstream out(path, std::ios::binary);
    out << "{\"testGroups\": [{\"keySize\": 128}]}\n";
  }
  auto ok = parse_json_file(path);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  const auto* groups = ok->find_array("testGroups");
  ASSERT_NE(groups, nullptr);
  ASSERT_EQ(groups->size(), 1u);
  EXPECT_EQ((*groups)[0].find_int("keySize"), 128);

  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << "{\"a\": [1,}";
  }
  auto bad = parse_json_file(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find(path), std::string::npos) << bad.error().message;
  std::remove(path.c_str());
}

}  // namespace
}  // namespace cygnet::json
