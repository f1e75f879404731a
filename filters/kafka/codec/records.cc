#include "filters/kafka/codec/records.h"

#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include <array>
#include <cstring>
#include <memory>

namespace evmesh::kafka {

// ---- CRC-32C -------------------------------------------------------------------

namespace {

using CrcTables = std::array<std::array<uint32_t, 256>, 8>;

constexpr CrcTables make_crc_tables() {
  CrcTables t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ ((c & 1) ? 0x82F63B78u : 0u);
    t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; ++i) {
    for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
  return t;
}

constexpr CrcTables kCrc = make_crc_tables();

}  // namespace

uint32_t crc32c_portable(const void* data, size_t n, uint32_t crc) {
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  while (n >= 8) {
    const uint32_t lo = (static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
                         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24) ^
                        crc;
    crc = kCrc[7][lo & 0xff] ^ kCrc[6][(lo >> 8) & 0xff] ^ kCrc[5][(lo >> 16) & 0xff] ^ kCrc[4][lo >> 24] ^
          kCrc[3][p[4]] ^ kCrc[2][p[5]] ^ kCrc[1][p[6]] ^ kCrc[0][p[7]];
    p += 8;
    n -= 8;
  }
  while (n--) crc = (crc >> 8) ^ kCrc[0][(crc ^ *p++) & 0xff];
  return ~crc;
}

#if defined(__x86_64__)
namespace {

// The SSE4.2 crc32 instruction computes exactly CRC-32C (same polynomial,
// reflected): 8 bytes per instruction.
// Three independent crc32 chains hide the instruction's 3-cycle latency:
// blocks A, B, C of kLane bytes are summed at once, then combined with
// crc(A||B||C) = shift(crc(A), 2L) ^ shift(crc(B), L) ^ crc(C) (raw states;
// the CRC is linear). shift(s, n) = the state after n zero bytes, from four
// byte tables built once from the 32 basis states.
constexpr size_t kLane = 512;

struct Shift {
  uint32_t t[4][256];
  uint32_t operator()(uint32_t s) const {
    return t[0][s & 0xff] ^ t[1][(s >> 8) & 0xff] ^ t[2][(s >> 16) & 0xff] ^ t[3][s >> 24];
  }
};

__attribute__((target("sse4.2"))) uint32_t raw_zeros(uint32_t s, size_t n) {
  uint64_t c = s;
  for (size_t i = 0; i < n / 8; ++i) c = __builtin_ia32_crc32di(c, 0);
  return static_cast<uint32_t>(c);
}

Shift make_shift(size_t n) {
  uint32_t basis[32];
  for (int i = 0; i < 32; ++i) basis[i] = raw_zeros(1u << i, n);
  Shift sh{};
  for (int k = 0; k < 4; ++k) {
    for (uint32_t b = 0; b < 256; ++b) {
      uint32_t v = 0;
      for (int bit = 0; bit < 8; ++bit) {
        if (b & (1u << bit)) v ^= basis[8 * k + bit];
      }
      sh.t[k][b] = v;
    }
  }
  return sh;
}

__attribute__((target("sse4.2"))) uint32_t crc32c_sse42(const void* data, size_t n, uint32_t crc) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint64_t c = ~crc;
  if (n >= 3 * kLane) {
    static const Shift shift1 = make_shift(kLane), shift2 = make_shift(2 * kLane);
    while (n >= 3 * kLane) {
      uint64_t a = c, b = 0, d = 0;
      for (size_t i = 0; i < kLane; i += 8) {
        uint64_t va, vb, vd;
        std::memcpy(&va, p + i, 8);
        std::memcpy(&vb, p + kLane + i, 8);
        std::memcpy(&vd, p + 2 * kLane + i, 8);
        a = __builtin_ia32_crc32di(a, va);
        b = __builtin_ia32_crc32di(b, vb);
        d = __builtin_ia32_crc32di(d, vd);
      }
      c = shift2(static_cast<uint32_t>(a)) ^ shift1(static_cast<uint32_t>(b)) ^ static_cast<uint32_t>(d);
      p += 3 * kLane;
      n -= 3 * kLane;
    }
  }
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return ~c32;
}

bool have_sse42() {
  __builtin_cpu_init();  // static initialisers may run before libgcc's
  return __builtin_cpu_supports("sse4.2");
}

const bool kHaveSse42 = have_sse42();

}  // namespace
#endif

uint32_t crc32c(const void* data, size_t n, uint32_t crc) {
#if defined(__x86_64__)
  if (kHaveSse42) return crc32c_sse42(data, n, crc);
#endif
  return crc32c_portable(data, n, crc);
}

const char* compression_name(int codec) {
  switch (codec) {
    case 0:
      return "none";
    case 1:
      return "gzip";
    case 2:
      return "snappy";
    case 3:
      return "lz4";
    case 4:
      return "zstd";
    default:
      return "unknown";
  }
}

// ---- batches -------------------------------------------------------------------

bool decode_batch_header(std::string_view data, BatchHeader* h, Error* err, size_t base) {
  *h = BatchHeader{};
  Reader r(data, base);
  r.i64(&h->base_offset);
  r.i32(&h->batch_length);
  r.i32(&h->partition_leader_epoch);
  r.i8(&h->magic);
  if (r.ok() && h->magic != 2) {
    *err = Error{base + 16, "record batch magic is not 2"};
    return false;
  }
  r.u32(&h->crc);
  r.i16(&h->attributes);
  r.i32(&h->last_offset_delta);
  r.i64(&h->base_timestamp);
  r.i64(&h->max_timestamp);
  r.i64(&h->producer_id);
  r.i16(&h->producer_epoch);
  r.i32(&h->base_sequence);
  r.i32(&h->records_count);
  if (!r.ok()) {
    *err = r.error();
    return false;
  }
  if (h->batch_length < static_cast<int32_t>(kBatchHeaderSize - 12)) {
    *err = Error{base + kBatchLengthOffset, "record batch length shorter than its header"};
    return false;
  }
  if (h->records_count < 0) {
    *err = Error{base + 57, "negative record count"};
    return false;
  }
  return true;
}

bool BatchIterator::next(Batch* b) {
  if (!ok() || pos_ >= blob_.size()) return false;
  const std::string_view rest = blob_.substr(pos_);
  if (rest.size() < 17) {  // not even baseOffset + length + epoch + magic
    if (partial_ok_) {
      partial_ = true;
      pos_ = blob_.size();
      return false;
    }
    return fail(pos_, "truncated record batch");
  }
  const int32_t len = static_cast<int32_t>(load_be32(rest.data() + kBatchLengthOffset));
  const int8_t magic = static_cast<int8_t>(rest[16]);
  if (len < 0) return fail(pos_ + kBatchLengthOffset, "negative record batch length");
  const size_t total = 12 + static_cast<size_t>(len);
  if (magic != 2) {
    // Old message sets (magic 0/1) share offset + size framing; not decoded.
    if (magic < 0 || magic > 1) return fail(pos_ + 16, "unknown record batch magic");
  }
  if (total > rest.size()) {
    if (partial_ok_) {
      partial_ = true;
      pos_ = blob_.size();
      return false;
    }
    return fail(pos_ + kBatchLengthOffset, "record batch length exceeds records");
  }
  Batch out;
  out.offset = base_ + pos_;
  out.bytes = rest.substr(0, total);
  if (magic == 2) {
    if (!decode_batch_header(out.bytes, &out.header, &err_, base_ + pos_)) return false;
    out.records = out.bytes.substr(kBatchHeaderSize);
  } else {
    out.header.magic = magic;
    out.header.batch_length = len;
  }
  pos_ += total;
  *b = out;
  return true;
}

bool verify_crc(const Batch& b) {
  if (b.header.magic != 2 || b.bytes.size() < kBatchHeaderSize) return false;
  return crc32c(b.bytes.data() + kBatchAttributesOffset, b.bytes.size() - kBatchAttributesOffset) == b.header.crc;
}

bool count_records(std::string_view blob, bool allow_partial_tail, RecordCounts* out, Error* err, size_t base) {
  *out = RecordCounts{};
  BatchIterator it(blob, allow_partial_tail, base);
  Batch b;
  while (it.next(&b)) {
    if (b.header.magic != 2) {
      out->old_format = true;
      continue;
    }
    ++out->batches;
    out->records += static_cast<uint64_t>(b.header.records_count);
    out->bytes += b.bytes.size();
  }
  if (!it.ok()) {
    *err = it.error();
    return false;
  }
  out->partial_tail = it.partial_tail();
  return true;
}

// ---- decompression ---------------------------------------------------------------

namespace {

constexpr size_t kChunk = 64 * 1024;

// Appends up to `n` bytes of room (bounded by the cap) and returns its start.
char* grow(std::string* out, size_t start, size_t max_out, size_t* room) {
  const size_t used = out->size() - start;
  const size_t n = std::min(kChunk, max_out - used);
  const size_t old = out->size();
  out->resize(old + n);
  *room = n;
  return out->data() + old;
}

bool gunzip(std::string_view in, size_t max_out, std::string* out, const char** why) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 32) != Z_OK) {
    *why = "gzip: init failed";
    return false;
  }
  const size_t start = out->size();
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (out->size() - start >= max_out) {
      *why = "decompressed size exceeds the cap";
      break;
    }
    size_t room = 0;
    char* p = grow(out, start, max_out, &room);
    zs.next_out = reinterpret_cast<Bytef*>(p);
    zs.avail_out = static_cast<uInt>(room);
    rc = inflate(&zs, Z_NO_FLUSH);
    out->resize(out->size() - zs.avail_out);
    if (rc == Z_STREAM_END) break;
    if (rc != Z_OK) {
      *why = rc == Z_BUF_ERROR ? "gzip: truncated input" : "gzip: corrupt input";
      break;
    }
  }
  inflateEnd(&zs);
  return rc == Z_STREAM_END;
}

bool snappy_raw(std::string_view in, size_t max_out, size_t start, std::string* out, const char** why) {
  size_t n = 0;
  if (snappy_uncompressed_length(in.data(), in.size(), &n) != SNAPPY_OK) {
    *why = "snappy: corrupt input";
    return false;
  }
  // n comes from the wire: check it against the cap before sizing anything.
  if (n > max_out - (out->size() - start)) {
    *why = "decompressed size exceeds the cap";
    return false;
  }
  const size_t old = out->size();
  out->resize(old + n);
  size_t got = n;
  if (snappy_uncompress(in.data(), in.size(), out->data() + old, &got) != SNAPPY_OK || got != n) {
    out->resize(old);
    *why = "snappy: corrupt input";
    return false;
  }
  return true;
}

// Java clients wrap snappy in the xerial stream format: a 16-byte header
// (magic, version, compatible version) then blocks of int32 length + raw
// snappy. librdkafka reads both and writes raw snappy.
constexpr char kXerialMagic[8] = {'\x82', 'S', 'N', 'A', 'P', 'P', 'Y', '\0'};

bool unsnappy(std::string_view in, size_t max_out, std::string* out, const char** why) {
  const size_t start = out->size();
  if (in.size() < 16 || std::memcmp(in.data(), kXerialMagic, 8) != 0) return snappy_raw(in, max_out, start, out, why);
  Reader r(in.substr(16));
  while (r.remaining() > 0) {
    int32_t n = 0;
    std::string_view block;
    if (!r.i32(&n) || n < 0 || !r.view(static_cast<size_t>(n), &block)) {
      *why = "snappy: bad xerial block length";
      return false;
    }
    if (!snappy_raw(block, max_out, start, out, why)) return false;
  }
  return true;
}

bool unlz4(std::string_view in, size_t max_out, std::string* out, const char** why) {
  LZ4F_dctx* ctx = nullptr;
  if (LZ4F_isError(LZ4F_createDecompressionContext(&ctx, LZ4F_VERSION))) {
    *why = "lz4: init failed";
    return false;
  }
  std::unique_ptr<LZ4F_dctx, decltype(&LZ4F_freeDecompressionContext)> guard(ctx, LZ4F_freeDecompressionContext);
  const size_t start = out->size();
  const char* src = in.data();
  size_t left = in.size();
  while (true) {
    if (out->size() - start >= max_out) {
      *why = "decompressed size exceeds the cap";
      return false;
    }
    size_t room = 0;
    char* p = grow(out, start, max_out, &room);
    size_t dst_n = room;
    size_t src_n = left;
    const size_t hint = LZ4F_decompress(ctx, p, &dst_n, src, &src_n, nullptr);
    out->resize(out->size() - (room - dst_n));
    if (LZ4F_isError(hint)) {
      *why = "lz4: corrupt input";
      return false;
    }
    src += src_n;
    left -= src_n;
    if (hint == 0) return true;  // the frame is complete
    if (src_n == 0 && dst_n == 0) {
      *why = "lz4: truncated frame";
      return false;
    }
  }
}

bool unzstd(std::string_view in, size_t max_out, std::string* out, const char** why) {
  std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> ctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!ctx) {
    *why = "zstd: init failed";
    return false;
  }
  const size_t start = out->size();
  ZSTD_inBuffer ib{in.data(), in.size(), 0};
  size_t rc = 1;
  while (true) {
    if (out->size() - start >= max_out) {
      *why = "decompressed size exceeds the cap";
      return false;
    }
    size_t room = 0;
    char* p = grow(out, start, max_out, &room);
    ZSTD_outBuffer ob{p, room, 0};
    rc = ZSTD_decompressStream(ctx.get(), &ob, &ib);
    out->resize(out->size() - (room - ob.pos));
    if (ZSTD_isError(rc)) {
      *why = "zstd: corrupt input";
      return false;
    }
    if (rc == 0 && ib.pos == ib.size) return true;  // frame(s) complete
    if (ib.pos == ib.size && ob.pos < room) {
      *why = "zstd: truncated frame";
      return false;
    }
  }
}

}  // namespace

bool decompress(int codec, std::string_view in, size_t max_out, std::string* out, const char** why) {
  *why = "";
  switch (codec) {
    case 0:
      if (in.size() > max_out) {
        *why = "decompressed size exceeds the cap";
        return false;
      }
      out->append(in.data(), in.size());
      return true;
    case 1:
      return gunzip(in, max_out, out, why);
    case 2:
      return unsnappy(in, max_out, out, why);
    case 3:
      return unlz4(in, max_out, out, why);
    case 4:
      return unzstd(in, max_out, out, why);
    default:
      *why = "unknown compression codec";
      return false;
  }
}

bool batch_records(const Batch& b, size_t max_decompressed, std::string* scratch, std::string_view* records,
                   Error* err) {
  *records = {};
  if (b.header.magic != 2) {
    *err = Error{b.offset + 16, "not a magic 2 record batch"};
    return false;
  }
  if (b.header.compression() == 0) {
    *records = b.records;
    return true;
  }
  scratch->clear();
  const char* why = "";
  if (!decompress(b.header.compression(), b.records, max_decompressed, scratch, &why)) {
    *err = Error{b.offset + kBatchHeaderSize, why};
    return false;
  }
  *records = *scratch;
  return true;
}

// ---- records ---------------------------------------------------------------------

namespace {

// Record keys, values and header keys/values: varint length, -1 null.
bool varbytes(Reader& r, bool nullable, Str* out) {
  *out = Str{};
  int32_t n = 0;
  const size_t at = r.pos();
  if (!r.varint(&n)) return false;
  if (n < 0) {
    if (n == -1 && nullable) {
      out->null = true;
      return true;
    }
    return r.fail_at(at, "negative record field length");
  }
  std::string_view v;
  if (!r.view(static_cast<size_t>(n), &v, "record field exceeds record")) return false;
  out->v = v;
  return true;
}

}  // namespace

bool RecordIterator::next(Record* rec) {
  *rec = Record{};
  if (!r_.ok()) return false;
  if (left_ == 0) {
    if (r_.remaining() != 0) r_.fail("bytes after the last record");
    return false;
  }
  const size_t at = r_.pos();
  int32_t len = 0;
  if (!r_.varint(&len)) return false;
  if (len < 0) return r_.fail_at(at, "negative record length");
  std::string_view body;
  if (!r_.view(static_cast<size_t>(len), &body, "record length exceeds batch")) return false;
  const size_t body_at = r_.pos() - body.size();
  Reader r(body, 0);
  r.i8(&rec->attributes);
  r.varlong(&rec->timestamp_delta);
  r.varint(&rec->offset_delta);
  varbytes(r, true, &rec->key);
  varbytes(r, true, &rec->value);
  r.varint(&rec->header_count);
  if (r.ok() && (rec->header_count < 0 || static_cast<size_t>(rec->header_count) > r.remaining() / 2)) {
    return r_.fail_at(body_at + r.pos(), "record header count exceeds record");
  }
  const size_t headers_at = r.pos();
  for (int32_t i = 0; i < rec->header_count && r.ok(); ++i) {
    Str k, v;
    varbytes(r, false, &k);
    varbytes(r, true, &v);
  }
  if (!r.ok()) return r_.fail_at(body_at + r.error().offset, r.error().reason);
  if (r.remaining() != 0) return r_.fail_at(body_at + r.pos(), "record longer than its fields");
  rec->headers = body.substr(headers_at);
  rec->size = r_.pos() - at;
  --left_;
  return true;
}

bool HeaderIterator::next(RecordHeader* h) {
  *h = RecordHeader{};
  if (left_ <= 0 || !r_.ok()) return false;
  varbytes(r_, false, &h->key);
  varbytes(r_, true, &h->value);
  if (!r_.ok()) return false;
  --left_;
  return true;
}

}  // namespace evmesh::kafka
