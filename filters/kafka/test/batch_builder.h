// Builds record batches (magic 2) for tests and fuzz seeds, compressed with
// the system libraries the way Kafka clients do.
#pragma once

#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include <deque>
#include <string>
#include <vector>

#include "filters/kafka/codec/records.h"
#include "filters/kafka/codec/wire.h"

namespace evmesh::kafka::testing {

struct TestRecord {
  Str key = Str::none();
  Str value = Str::none();
  std::vector<std::pair<std::string, Str>> headers;
};

inline std::string encode_records(const std::vector<TestRecord>& recs) {
  std::string out;
  Writer w(&out);
  int32_t i = 0;
  for (const TestRecord& r : recs) {
    std::string body;
    Writer b(&body);
    b.i8(0);
    b.varlong(i * 3);  // timestamp delta
    b.varint(i);       // offset delta
    b.varint(r.key.null ? -1 : static_cast<int32_t>(r.key.v.size()));
    b.raw(r.key.v);
    b.varint(r.value.null ? -1 : static_cast<int32_t>(r.value.v.size()));
    b.raw(r.value.v);
    b.varint(static_cast<int32_t>(r.headers.size()));
    for (const auto& [k, v] : r.headers) {
      b.varint(static_cast<int32_t>(k.size()));
      b.raw(k);
      b.varint(v.null ? -1 : static_cast<int32_t>(v.v.size()));
      b.raw(v.v);
    }
    w.varint(static_cast<int32_t>(body.size()));
    w.raw(body);
    ++i;
  }
  return out;
}

inline std::string gzip(std::string_view in) {
  z_stream zs{};
  deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, in.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

inline std::string snappy_raw(std::string_view in) {
  size_t n = snappy_max_compressed_length(in.size());
  std::string out(n, '\0');
  snappy_compress(in.data(), in.size(), out.data(), &n);
  out.resize(n);
  return out;
}

// The xerial framing of Java clients, split in blocks of `block` input bytes.
inline std::string snappy_xerial(std::string_view in, size_t block = 32 * 1024) {
  std::string out("\x82SNAPPY\0", 8);
  Writer w(&out);
  w.i32(1);
  w.i32(1);
  for (size_t pos = 0; pos < in.size(); pos += block) {
    const std::string c = snappy_raw(in.substr(pos, block));
    w.i32(static_cast<int32_t>(c.size()));
    w.raw(c);
  }
  return out;
}

inline std::string lz4_frame(std::string_view in) {
  std::string out(LZ4F_compressFrameBound(in.size(), nullptr), '\0');
  out.resize(LZ4F_compressFrame(out.data(), out.size(), in.data(), in.size(), nullptr));
  return out;
}

inline std::string zstd(std::string_view in) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3));
  return out;
}

inline std::string compress(int codec, std::string_view in, bool xerial = true) {
  switch (codec) {
    case 1:
      return gzip(in);
    case 2:
      return xerial ? snappy_xerial(in) : snappy_raw(in);
    case 3:
      return lz4_frame(in);
    case 4:
      return zstd(in);
    default:
      return std::string(in);
  }
}

inline std::string make_batch(const std::vector<TestRecord>& recs, int codec, int64_t base_offset = 0,
                              int16_t extra_attributes = 0, bool xerial = true) {
  const std::string records = compress(codec, encode_records(recs), xerial);
  std::string out;
  Writer w(&out);
  w.i64(base_offset);
  w.i32(static_cast<int32_t>(kBatchHeaderSize - 12 + records.size()));
  w.i32(0);  // partition leader epoch
  w.i8(2);
  w.u32(0);  // crc, below
  w.i16(static_cast<int16_t>(codec | extra_attributes));
  w.i32(recs.empty() ? 0 : static_cast<int32_t>(recs.size()) - 1);
  w.i64(1700000000000);
  w.i64(1700000000000 + 3 * static_cast<int64_t>(recs.size()));
  w.i64(-1);
  w.i16(-1);
  w.i32(-1);
  w.i32(static_cast<int32_t>(recs.size()));
  w.raw(records);
  const uint32_t crc = crc32c(out.data() + kBatchAttributesOffset, out.size() - kBatchAttributesOffset);
  store_be32(out.data() + kBatchCrcOffset, crc);
  return out;
}

inline std::vector<TestRecord> sample_records(int n) {
  static std::deque<std::string> keep;  // stable storage for views (push_back keeps references)
  std::vector<TestRecord> out;
  for (int i = 0; i < n; ++i) {
    keep.push_back("key-" + std::to_string(i));
    const std::string& k = keep.back();
    keep.push_back(std::string(40 + i, static_cast<char>('a' + i % 26)));
    const std::string& v = keep.back();
    TestRecord r;
    r.key = i % 3 == 2 ? Str::none() : Str::of(k);
    r.value = Str::of(v);
    if (i % 2 == 0) r.headers = {{"trace", Str::of("abc")}, {"empty", Str::none()}};
    out.push_back(r);
  }
  return out;
}

}  // namespace evmesh::kafka::testing
