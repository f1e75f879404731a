// One test group per wire type: whole, with garbage appended (consumes
// exactly its bytes), every truncation (an error with its offset, never a
// read past the end), limits and overflows.
#include "filters/kafka/codec/wire.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>

#include "filters/kafka/test/test_util.h"

namespace evmesh::kafka {
namespace {

using testing::kGarbage;

// Encodes with `write`, then checks `read` against whole, garbage-appended
// and every truncated input. `read` returns the decoded value as text.
template <class W, class R>
void check_type(W write, R read, const std::string& want) {
  std::string wire;
  Writer w(&wire);
  write(w);
  for (const std::string& in : {wire, wire + std::string(kGarbage)}) {
    Reader r(in);
    std::string got;
    ASSERT_TRUE(read(r, &got)) << r.error().describe();
    EXPECT_EQ(got, want);
    EXPECT_EQ(r.pos(), wire.size());
  }
  for (size_t cut = 0; cut < wire.size(); ++cut) {
    const std::string prefix = wire.substr(0, cut);
    Reader r(prefix, 100);
    std::string got;
    EXPECT_FALSE(read(r, &got)) << "cut " << cut;
    EXPECT_FALSE(r.ok());
    EXPECT_GE(r.error().offset, 100u);
    EXPECT_LE(r.error().offset, 100u + cut);
    // Sticky: later reads fail as well and yield zero.
    int32_t x = 7;
    EXPECT_FALSE(r.i32(&x));
    EXPECT_EQ(x, 0);
  }
}

TEST(KafkaWire, FixedIntsBigEndian) {
  check_type([](Writer& w) { w.i8(-2); }, [](Reader& r, std::string* s) { int8_t v; bool ok = r.i8(&v); *s = std::to_string(v); return ok; }, "-2");
  check_type([](Writer& w) { w.i16(-12345); }, [](Reader& r, std::string* s) { int16_t v; bool ok = r.i16(&v); *s = std::to_string(v); return ok; }, "-12345");
  check_type([](Writer& w) { w.i32(0x12345678); }, [](Reader& r, std::string* s) { int32_t v; bool ok = r.i32(&v); *s = std::to_string(v); return ok; }, "305419896");
  check_type([](Writer& w) { w.i64(std::numeric_limits<int64_t>::min()); }, [](Reader& r, std::string* s) { int64_t v; bool ok = r.i64(&v); *s = std::to_string(v); return ok; }, "-9223372036854775808");
  check_type([](Writer& w) { w.u32(0xE3069283u); }, [](Reader& r, std::string* s) { uint32_t v; bool ok = r.u32(&v); *s = std::to_string(v); return ok; }, "3808858755");
  check_type([](Writer& w) { w.boolean(true); }, [](Reader& r, std::string* s) { bool v; bool ok = r.boolean(&v); *s = v ? "t" : "f"; return ok; }, "t");
  std::string wire;
  Writer(&wire).i32(0x01020304);
  EXPECT_EQ(wire, std::string("\x01\x02\x03\x04", 4));
}

TEST(KafkaWire, UnsignedVarint) {
  for (uint32_t v : {0u, 1u, 127u, 128u, 300u, 16383u, 16384u, 0x0fffffffu, 0xffffffffu}) {
    check_type([v](Writer& w) { w.uvarint(v); },
               [](Reader& r, std::string* s) { uint32_t x; bool ok = r.uvarint(&x); *s = std::to_string(x); return ok; },
               std::to_string(v));
  }
  std::string wire;
  Writer(&wire).uvarint(300);
  EXPECT_EQ(wire, std::string("\xac\x02", 2));
}

TEST(KafkaWire, UnsignedVarintOverflowIsAnError) {
  // Six bytes, and a fifth byte with bits above 32.
  for (std::string in : {std::string("\xff\xff\xff\xff\xff\x01", 6), std::string("\xff\xff\xff\xff\x10", 5),
                         std::string("\x80\x80\x80\x80\x80\x00", 6)}) {
    Reader r(in, 10);
    uint32_t v = 9;
    EXPECT_FALSE(r.uvarint(&v)) << testing::hex(in);
    EXPECT_EQ(v, 0u);
    EXPECT_EQ(r.error().offset, 10u);
    EXPECT_STREQ(r.error().reason, "unsigned varint overflows 32 bits");
  }
  std::string ok("\xff\xff\xff\xff\x0f", 5);
  Reader r(ok);
  uint32_t v = 0;
  EXPECT_TRUE(r.uvarint(&v));
  EXPECT_EQ(v, 0xffffffffu);
}

TEST(KafkaWire, ZigzagVarintAndVarlong) {
  for (int32_t v : {0, -1, 1, -64, 63, 64, -65, std::numeric_limits<int32_t>::max(), std::numeric_limits<int32_t>::min()}) {
    check_type([v](Writer& w) { w.varint(v); },
               [](Reader& r, std::string* s) { int32_t x; bool ok = r.varint(&x); *s = std::to_string(x); return ok; },
               std::to_string(v));
  }
  for (int64_t v : {int64_t{0}, int64_t{-1}, int64_t{1} << 40, std::numeric_limits<int64_t>::max(),
                    std::numeric_limits<int64_t>::min()}) {
    check_type([v](Writer& w) { w.varlong(v); },
               [](Reader& r, std::string* s) { int64_t x; bool ok = r.varlong(&x); *s = std::to_string(x); return ok; },
               std::to_string(v));
  }
  std::string wire;
  Writer(&wire).varint(-1);
  EXPECT_EQ(wire, std::string("\x01", 1));
  // 11-byte varlong and a 10th byte above 1 overflow.
  std::string over(10, '\xff');
  over += '\x01';
  Reader r(over);
  int64_t x = 0;
  EXPECT_FALSE(r.varlong(&x));
  std::string over2(9, '\xff');
  over2 += '\x02';
  Reader r2(over2);
  EXPECT_FALSE(r2.varlong(&x));
  EXPECT_STREQ(r2.error().reason, "unsigned varlong overflows 64 bits");
}

TEST(KafkaWire, RandomVarintsRoundTrip) {
  std::mt19937_64 rng(7);
  std::string wire;
  Writer w(&wire);
  std::vector<int64_t> vals;
  for (int i = 0; i < 2000; ++i) {
    const int64_t v = static_cast<int64_t>(rng()) >> (rng() % 64);
    vals.push_back(v);
    w.varlong(v);
    w.varint(static_cast<int32_t>(v));
  }
  Reader r(wire);
  for (int64_t v : vals) {
    int64_t a = 0;
    int32_t b = 0;
    ASSERT_TRUE(r.varlong(&a));
    ASSERT_TRUE(r.varint(&b));
    EXPECT_EQ(a, v);
    EXPECT_EQ(b, static_cast<int32_t>(v));
  }
  EXPECT_EQ(r.remaining(), 0u);
}

std::string show(const Str& s) { return s.null ? "<null>" : "'" + std::string(s.v) + "'"; }

TEST(KafkaWire, StringsAllFourEncodings) {
  for (bool compact : {false, true}) {
    for (const Str& s : {Str::of(""), Str::of("client-1"), Str::of(std::string_view("a\0b", 3))}) {
      check_type([&](Writer& w) { w.string(compact, s); },
                 [&](Reader& r, std::string* out) { Str x; bool ok = r.string(compact, false, &x); *out = show(x); return ok; },
                 show(s));
    }
    check_type([&](Writer& w) { w.string(compact, Str::none()); },
               [&](Reader& r, std::string* out) { Str x; bool ok = r.string(compact, true, &x); *out = show(x); return ok; },
               "<null>");
    // Null where not nullable is an error.
    std::string wire;
    Writer(&wire).string(compact, Str::none());
    Reader r(wire);
    Str x;
    EXPECT_FALSE(r.string(compact, false, &x));
    EXPECT_STREQ(r.error().reason, "null where not nullable");
  }
  EXPECT_EQ([] { std::string s; Writer(&s).string(true, Str::of("ab")); return s; }(), std::string("\x03" "ab"));
  EXPECT_EQ([] { std::string s; Writer(&s).string(false, Str::none()); return s; }(), std::string("\xff\xff", 2));
}

TEST(KafkaWire, StringLengthBeyondFrameIsRefusedBeforeUse) {
  std::string in("\x7f\xffshort", 7);  // declares 32767 bytes
  Reader r(in, 4);
  Str s;
  EXPECT_FALSE(r.string(false, false, &s));
  EXPECT_STREQ(r.error().reason, "string length exceeds frame");
  EXPECT_EQ(r.error().offset, 4u + 2);
  std::string neg("\xff\xfe", 2);  // -2
  Reader r2(neg);
  EXPECT_FALSE(r2.string(false, true, &s));
  EXPECT_STREQ(r2.error().reason, "negative string length");
  std::string huge("\xff\xff\xff\xff\x0f", 5);  // compact length 2^32-2
  Reader r3(huge);
  EXPECT_FALSE(r3.string(true, true, &s));
}

TEST(KafkaWire, BytesAllFourEncodings) {
  for (bool compact : {false, true}) {
    check_type([&](Writer& w) { w.bytes(compact, Str::of(std::string_view("\x00\x01\x02", 3))); },
               [&](Reader& r, std::string* out) { Str x; bool ok = r.bytes(compact, false, &x); *out = testing::hex(x.v); return ok; },
               "000102");
    check_type([&](Writer& w) { w.bytes(compact, Str::none()); },
               [&](Reader& r, std::string* out) { Str x; bool ok = r.bytes(compact, true, &x); *out = show(x); return ok; },
               "<null>");
  }
  std::string in("\x7f\xff\xff\xff", 4);
  Reader r(in);
  Str s;
  EXPECT_FALSE(r.bytes(false, true, &s));
  EXPECT_STREQ(r.error().reason, "bytes length exceeds frame");
}

TEST(KafkaWire, ArrayCountsCheckedAgainstRemainingBytes) {
  for (bool compact : {false, true}) {
    check_type(
        [&](Writer& w) {
          w.array(compact, 3);
          w.i32(1);
          w.i32(2);
          w.i32(3);
        },
        [&](Reader& r, std::string* out) {
          int32_t n = 0;
          if (!r.array(compact, false, 4, &n)) return false;
          *out = std::to_string(n) + ":";
          for (int32_t i = 0; i < n; ++i) {
            int32_t v = 0;
            if (!r.i32(&v)) return false;
            *out += std::to_string(v);
          }
          return true;
        },
        "3:123");
    check_type([&](Writer& w) { w.array(compact, -1); },
               [&](Reader& r, std::string* out) { int32_t n = 0; bool ok = r.array(compact, true, 4, &n); *out = std::to_string(n); return ok; },
               "-1");
  }
  // A million elements of 4 bytes declared in a 10-byte frame.
  std::string in;
  Writer w(&in);
  w.i32(1000000);
  w.i32(0);
  w.i16(0);
  Reader r(in, 4);
  int32_t n = 0;
  EXPECT_FALSE(r.array(false, false, 4, &n));
  EXPECT_EQ(n, 0);
  EXPECT_STREQ(r.error().reason, "array count exceeds frame");
  EXPECT_EQ(r.error().offset, 4u);
  std::string neg("\xff\xff\xff\xfe", 4);
  Reader r2(neg);
  EXPECT_FALSE(r2.array(false, true, 1, &n));
  EXPECT_STREQ(r2.error().reason, "negative array count");
  std::string null("\x00", 1);  // compact null where not nullable
  Reader r3(null);
  EXPECT_FALSE(r3.array(true, false, 1, &n));
}

TEST(KafkaWire, TaggedFieldsSkippedBySize) {
  auto write = [](Writer& w) {
    w.uvarint(2);
    w.uvarint(0);  // tag 0, 3 bytes
    w.uvarint(3);
    w.raw("abc");
    w.uvarint(300);  // tag 300, empty
    w.uvarint(0);
  };
  check_type(write,
             [](Reader& r, std::string* out) {
               return r.tagged_fields([&](uint32_t tag, std::string_view v) {
                 *out += std::to_string(tag) + "=" + std::string(v) + ";";
               });
             },
             "0=abc;300=;");
  check_type([](Writer& w) { w.no_tagged_fields(); },
             [](Reader& r, std::string* out) { return r.tagged_fields(); }, "");
  // A field size beyond the frame, and a count that cannot fit.
  std::string in("\x01\x05\x7f" "ab", 5);
  Reader r(in);
  EXPECT_FALSE(r.tagged_fields());
  EXPECT_STREQ(r.error().reason, "tagged field exceeds frame");
  std::string many("\x7f\x00\x00", 3);
  Reader r2(many);
  EXPECT_FALSE(r2.tagged_fields());
  EXPECT_STREQ(r2.error().reason, "tagged field count exceeds frame");
}

TEST(KafkaWire, Uuid) {
  Uuid u;
  for (int i = 0; i < 16; ++i) u.b[i] = static_cast<uint8_t>(i * 17);
  check_type([&](Writer& w) { w.uuid(u); },
             [&](Reader& r, std::string* out) {
               Uuid x;
               bool ok = r.uuid(&x);
               *out = testing::hex(std::string_view(reinterpret_cast<const char*>(x.b), 16));
               return ok;
             },
             testing::hex(std::string_view(reinterpret_cast<const char*>(u.b), 16)));
  EXPECT_TRUE(Uuid{}.is_zero());
  EXPECT_FALSE(u.is_zero());
}

}  // namespace
}  // namespace evmesh::kafka
