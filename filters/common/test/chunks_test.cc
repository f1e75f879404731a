#include "filters/common/codec/chunks.h"

#include <gtest/gtest.h>

namespace evmesh::codec {
namespace {

ChunkList make(const std::vector<std::string>& parts) {
  ChunkList c;
  for (const auto& p : parts) c.views().push_back({p.data(), p.size()});
  return c;
}

TEST(ChunkList, ForEachFromSkipsAcrossChunks) {
  std::vector<std::string> parts = {"abc", "", "defg", "h"};
  ChunkList c = make(parts);
  EXPECT_EQ(c.total(), 8u);
  for (size_t off = 0; off <= 8; ++off) {
    std::string got;
    c.for_each_from(off, [&](std::string_view p) {
      got.append(p);
      return true;
    });
    EXPECT_EQ(got, std::string("abcdefgh").substr(off)) << off;
  }
}

TEST(ChunkList, ForEachStopsEarly) {
  std::vector<std::string> parts = {"ab", "cd", "ef"};
  ChunkList c = make(parts);
  int calls = 0;
  EXPECT_FALSE(c.for_each_from(0, [&](std::string_view) { return ++calls < 2; }));
  EXPECT_EQ(calls, 2);
}

TEST(ChunkList, CopyRangeEverySpan) {
  std::vector<std::string> parts = {"ab", "cde", "f", "ghij"};
  ChunkList c = make(parts);
  const std::string all = "abcdefghij";
  for (size_t a = 0; a <= all.size(); ++a) {
    for (size_t b = a; b <= all.size(); ++b) {
      std::string out;
      c.copy_range(a, b, &out);
      EXPECT_EQ(out, all.substr(a, b - a)) << a << "," << b;
    }
  }
}

TEST(ChunkList, CollectKeptDropsRanges) {
  std::vector<std::string> parts = {"0123", "4567", "89"};
  ChunkList c = make(parts);
  EXPECT_EQ(collect_kept(c, 10, {{0, 2}, {5, 7}}), "234789");
  EXPECT_EQ(collect_kept(c, 10, {{8, 10}}), "01234567");
  EXPECT_EQ(collect_kept(c, 10, {}), "0123456789");
  EXPECT_EQ(collect_kept(c, 10, {{0, 10}}), "");
}

}  // namespace
}  // namespace evmesh::codec
