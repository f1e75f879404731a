// Zero-copy access to Envoy's buffer as a list of chunk views. Parsers are fed
// the pieces in order and must handle a frame split at any byte.
#pragma once

#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "filters/common/abi/envoy_abi.h"

namespace evmesh::codec {

class ChunkList {
 public:
  std::vector<envoy_buffer>& views() { return views_; }
  const std::vector<envoy_buffer>& views() const { return views_; }

  size_t total() const {
    size_t t = 0;
    for (const auto& v : views_) t += v.length;
    return t;
  }

  // Calls fn(std::string_view piece) for the bytes from `offset` on, in order.
  // Stops early and returns false when fn returns false.
  template <class Fn>
  bool for_each_from(size_t offset, Fn&& fn) const {
    for (const auto& v : views_) {
      if (offset >= v.length) {
        offset -= v.length;
        continue;
      }
      if (!fn(std::string_view(v.ptr + offset, v.length - offset))) return false;
      offset = 0;
    }
    return true;
  }

  // Appends bytes [from, to) to *out.
  void copy_range(size_t from, size_t to, std::string* out) const {
    size_t pos = 0;
    for (const auto& v : views_) {
      const size_t a = pos, b = pos + v.length;
      pos = b;
      if (b <= from) continue;
      if (a >= to) break;
      const size_t s = from > a ? from - a : 0;
      const size_t e = (to < b ? to : b) - a;
      out->append(v.ptr + s, e - s);
    }
  }

 private:
  std::vector<envoy_buffer> views_;
};

// Keeps the ranges of a buffer that survive a rewrite: the bytes outside
// `drops` (sorted, non-overlapping [begin, end) positions) are collected.
struct Range {
  size_t begin;
  size_t end;
};

inline std::string collect_kept(const ChunkList& chunks, size_t total, const std::vector<Range>& drops) {
  std::string out;
  out.reserve(total);
  size_t pos = 0;
  for (const Range& d : drops) {
    if (d.begin > pos) chunks.copy_range(pos, d.begin, &out);
    if (d.end > pos) pos = d.end;
  }
  if (pos < total) chunks.copy_range(pos, total, &out);
  return out;
}

}  // namespace evmesh::codec
