#include "filters/common/config/json_config.h"

#include <gtest/gtest.h>

namespace evmesh::config {
namespace {

TEST(JsonConfig, RejectsInvalidJsonAndNonObjects) {
  Json j;
  std::string err;
  EXPECT_FALSE(parse_json("{", &j, &err));
  EXPECT_EQ(err, "(config): not valid JSON");
  err.clear();
  EXPECT_FALSE(parse_json("[1]", &j, &err));
  EXPECT_EQ(err, "(config): must be a JSON object");
}

TEST(JsonConfig, ReportsFieldPaths) {
  Json j;
  std::string err;
  ASSERT_TRUE(parse_json(R"({"a": {"b": [1, "x"]}, "n": 3.5, "m": -1, "k": 7})", &j, &err));
  ObjectReader r(j, "", &err);
  EXPECT_FALSE(r.only_keys({"a", "n", "m"}));
  EXPECT_EQ(err, "k: unknown field (expected one of: a, n, m)");

  err.clear();
  ObjectReader r2(j, "", &err);
  const Json* a = r2.object("a", true);
  ASSERT_NE(a, nullptr);
  ObjectReader ra(*a, "a", &err);
  std::vector<std::string> list;
  EXPECT_FALSE(ra.string_list("b", true, &list));
  EXPECT_EQ(err, "a.b[0]: must be a string, got a number");

  err.clear();
  uint64_t n = 0;
  ObjectReader r3(j, "", &err);
  EXPECT_FALSE(r3.uint("n", true, 0, 10, &n));
  EXPECT_EQ(err, "n: must be a whole number");
  err.clear();
  EXPECT_FALSE(r3.uint("m", true, 0, 10, &n));
  EXPECT_EQ(err, "m: must not be negative");
  err.clear();
  EXPECT_FALSE(r3.uint("k", true, 8, 10, &n));
  EXPECT_EQ(err, "k: must be between 8 and 10, got 7");
  err.clear();
  EXPECT_FALSE(r3.uint("zz", true, 0, 1, &n));
  EXPECT_EQ(err, "zz: required");
}

TEST(JsonConfig, AcceptsIntegralDoublesFromStruct) {
  Json j;
  std::string err;
  ASSERT_TRUE(parse_json(R"({"n": 1048576.0})", &j, &err));
  ObjectReader r(j, "", &err);
  uint64_t n = 0;
  EXPECT_TRUE(r.uint("n", true, 0, 1 << 30, &n));
  EXPECT_EQ(n, 1048576u);
}

TEST(JsonConfig, AcceptsDigitStringsFromEnvoysYamlLoader) {
  Json j;
  std::string err;
  ASSERT_TRUE(parse_json(R"({"n": "2147483648", "bad": "12a", "neg": "-1", "empty": ""})", &j, &err));
  ObjectReader r(j, "", &err);
  uint64_t n = 0;
  EXPECT_TRUE(r.uint("n", true, 0, 1ull << 40, &n));
  EXPECT_EQ(n, 2147483648u);
  EXPECT_FALSE(r.uint("bad", true, 0, 10, &n));
  EXPECT_EQ(err, "bad: must be a number, got a string");
  for (const char* k : {"neg", "empty"}) {
    err.clear();
    EXPECT_FALSE(r.uint(k, true, 0, 10, &n)) << k;
  }
}

}  // namespace
}  // namespace evmesh::config
