#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "filters/amqp/codec/field_table.h"
#include "filters/amqp/test/amqp_wire.h"

namespace evmesh::amqp {
namespace {

using testing::W;

std::string field(std::string_view name, char type, std::string_view value) {
  W w;
  w.ss(name).u8(static_cast<uint8_t>(type)).raw(value);
  return w.b;
}

TEST(AmqpFieldTable, EveryRabbitMqType) {
  float f = 1.5f;
  double d = -2.25;
  uint32_t fb;
  uint64_t db;
  std::memcpy(&fb, &f, 4);
  std::memcpy(&db, &d, 8);
  const std::string nested = field("k", 'S', W().ls("v").b);
  const std::string array_content = W().u8('I').u32(7).u8('S').ls("x").u8('V').b;
  const std::string t = field("t", 't', W().u8(1).b) + field("b", 'b', W().u8(0xff).b) +
                        field("B", 'B', W().u8(0xff).b) + field("s", 's', W().u16(0xfffe).b) +
                        field("u", 'u', W().u16(0xfffe).b) + field("I", 'I', W().u32(0xfffffffd).b) +
                        field("i", 'i', W().u32(0xfffffffd).b) + field("L", 'L', W().u64(~0ull).b) +
                        field("l", 'l', W().u64(~0ull - 1).b) + field("f", 'f', W().u32(fb).b) +
                        field("d", 'd', W().u64(db).b) + field("D", 'D', W().u8(2).u32(12345).b) +
                        field("S", 'S', W().ls("long string").b) + field("x", 'x', W().ls(std::string("\0\1", 2)).b) +
                        field("A", 'A', W().ls(array_content).b) + field("T", 'T', W().u64(1700000000).b) +
                        field("F", 'F', W().ls(nested).b) + field("V", 'V', "");
  FieldError err;
  ASSERT_TRUE(validate_table(t, 1, &err)) << err.reason << " at " << err.at;
  std::vector<std::string> seen;
  ASSERT_TRUE(for_each_field(t, [&](std::string_view name, const FieldValue& v) {
    std::string s(name);
    s += "=";
    switch (v.type) {
      case 't': s += v.boolean ? "true" : "false"; break;
      case 'b': case 's': case 'I': case 'l': s += std::to_string(v.i); break;
      case 'B': case 'u': case 'i': case 'L': case 'T': s += std::to_string(v.u); break;
      case 'f': s += std::to_string(v.f); break;
      case 'd': s += std::to_string(v.d); break;
      case 'D': s += std::to_string(v.scale) + ":" + std::to_string(v.decimal); break;
      case 'S': case 'x': s += std::to_string(v.bytes.size()) + ":" + std::string(v.bytes); break;
      case 'A': {
        int n = 0;
        EXPECT_TRUE(for_each_array_item(v.bytes, [&](const FieldValue&) { ++n; }));
        s += "[" + std::to_string(n) + "]";
        break;
      }
      case 'F': {
        EXPECT_TRUE(for_each_field(v.bytes, [&](std::string_view k, const FieldValue& x) {
          s += "{" + std::string(k) + ":" + std::string(x.bytes) + "}";
        }));
        break;
      }
      case 'V': s += "void"; break;
    }
    seen.push_back(s);
  }));
  const std::vector<std::string> want = {
      "t=true", "b=-1", "B=255", "s=-2", "u=65534", "I=-3", "i=4294967293", "L=18446744073709551615",
      "l=-2", "f=1.500000", "d=-2.250000", "D=2:12345", "S=11:long string", std::string("x=2:\0\1", 6),
      "A=[3]", "T=1700000000", "F={k:v}", "V=void"};
  EXPECT_EQ(seen, want);
}

TEST(AmqpFieldTable, MalformedTablesReportOffsets) {
  FieldError err;
  // Unknown type octet 'Z' at offset 2 (after name "a").
  EXPECT_FALSE(validate_table(field("a", 'Z', ""), 1, &err));
  EXPECT_EQ(err.at, 2u);
  EXPECT_STREQ(err.reason, "unknown field value type");
  // The spec errata's short-string 's' is RabbitMQ's int16: a 1-byte value is truncated.
  EXPECT_FALSE(validate_table(field("a", 's', W().u8(1).b), 1, &err));
  EXPECT_STREQ(err.reason, "truncated field value");
  // A long string declaring 4 GiB.
  EXPECT_FALSE(validate_table(field("a", 'S', W().u32(0xffffffff).raw("abc").b), 1, &err));
  EXPECT_EQ(err.at, 3u);
  // Truncated name.
  EXPECT_FALSE(validate_table(W().u8(10).raw("abc").b, 1, &err));
  EXPECT_EQ(err.at, 0u);
  // Truncated decimal.
  EXPECT_FALSE(validate_table(field("a", 'D', W().u8(1).u16(2).b), 1, &err));
  // Every fixed-size type truncated by one byte.
  for (char t : std::string("tbBsuIiLlfdDT")) {
    EXPECT_FALSE(validate_table(field("a", t, ""), 1, &err)) << t;
  }
}

TEST(AmqpFieldTable, NestingIsBounded) {
  std::string inner = field("v", 'V', "");
  for (int i = 0; i < kMaxTableDepth - 1; ++i) inner = field("n", 'F', W().ls(inner).b);
  FieldError err;
  EXPECT_TRUE(validate_table(inner, 1, &err)) << err.reason;
  const std::string too_deep = field("n", 'F', W().ls(inner).b);
  EXPECT_FALSE(validate_table(too_deep, 1, &err));
  EXPECT_STREQ(err.reason, "field tables nested too deep");
  // Arrays count as nesting too.
  std::string arr = W().u8('V').b;
  for (int i = 0; i < kMaxTableDepth + 2; ++i) arr = W().u8('A').ls(arr).b;
  EXPECT_FALSE(validate_array(arr, 1, &err));
}

TEST(AmqpFieldTable, NestedErrorOffsetIsAbsolute) {
  // "F" table whose inner field has a bad type: offset points at the inner type octet.
  const std::string inner = field("k", '?', "");
  const std::string t = field("o", 'F', W().ls(inner).b);
  FieldError err;
  EXPECT_FALSE(validate_table(t, 1, &err));
  // o: [len=1]['o']['F'][u32 len] then inner [1]['k']['?'] -> '?' at 3+4+2 = 9
  EXPECT_EQ(err.at, 9u);
}

}  // namespace
}  // namespace evmesh::amqp
