// Helpers shared by the Kafka codec tests.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "filters/kafka/codec/wire.h"

namespace evmesh::kafka::testing {

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string hex(std::string_view s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

constexpr std::string_view kGarbage = "\x7f\xff\x00garbage\x01";

// A decoder of a whole body: true on success, *consumed = bytes used.
using BodyDecoder = std::function<bool(std::string_view body, size_t* consumed, Error* err)>;

// The body decoder contract: whole → ok, consumes all; with garbage appended
// → ok, consumes exactly the body; every strict prefix → an error whose
// offset (base + position) lies within the prefix, never a crash or an out-of-range read.
inline void check_body_decoder(const std::string& body, const BodyDecoder& dec, const std::string& what,
                               size_t base = 0) {
  size_t consumed = 0;
  Error err;
  ASSERT_TRUE(dec(body, &consumed, &err)) << what << ": " << err.describe();
  EXPECT_EQ(consumed, body.size()) << what << ": whole";
  const std::string with_garbage = body + std::string(kGarbage);
  consumed = 0;
  ASSERT_TRUE(dec(with_garbage, &consumed, &err)) << what << " + garbage: " << err.describe();
  EXPECT_EQ(consumed, body.size()) << what << ": garbage appended";
  for (size_t cut = 0; cut < body.size(); ++cut) {
    // Copy so that a read past the prefix is caught by ASan.
    const std::string prefix = body.substr(0, cut);
    Error e;
    size_t c = 0;
    EXPECT_FALSE(dec(prefix, &c, &e)) << what << ": prefix of " << cut << " bytes accepted";
    EXPECT_NE(e.reason, nullptr) << what << ": cut " << cut;
    EXPECT_LE(e.offset, base + cut) << what << ": cut " << cut << " " << e.describe();
  }
}

}  // namespace evmesh::kafka::testing
