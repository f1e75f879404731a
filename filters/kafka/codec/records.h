// Kafka record batches (magic 2, "DefaultRecordBatch"), decoded lazily:
//
//   BatchIterator   walks the batches of a records blob by their headers only
//                   (61 bytes each); counting records and bytes needs nothing more
//   verify_crc()    CRC-32C over attributes..end, as the broker checks it
//   batch_records() the records bytes of a batch, decompressed (gzip, snappy
//                   incl. the xerial framing of Java clients, lz4 frame, zstd)
//                   into a caller scratch with a size cap
//   RecordIterator  the varint-encoded records, HeaderIterator their headers
//
// Nothing is allocated from an unchecked length: every length is checked
// against the bytes remaining, decompression output against the cap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "filters/kafka/codec/wire.h"

namespace evmesh::kafka {

// CRC-32C (Castagnoli, reflected 0x82F63B78). `crc` chains calls. Uses the
// SSE4.2 crc32 instruction when the CPU has it, else slice-by-8 tables.
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);
uint32_t crc32c_portable(const void* data, size_t n, uint32_t crc = 0);  // slice-by-8 only

enum class Compression : uint8_t { kNone = 0, kGzip = 1, kSnappy = 2, kLz4 = 3, kZstd = 4 };
const char* compression_name(int codec);

constexpr size_t kBatchHeaderSize = 61;        // baseOffset .. recordsCount
constexpr size_t kBatchLengthOffset = 8;       // batchLength counts the bytes after it
constexpr size_t kBatchCrcOffset = 17;
constexpr size_t kBatchAttributesOffset = 21;  // CRC covers from here to the end

struct BatchHeader {
  int64_t base_offset = 0;
  int32_t batch_length = 0;  // bytes after this field
  int32_t partition_leader_epoch = 0;
  int8_t magic = 0;
  uint32_t crc = 0;
  int16_t attributes = 0;
  int32_t last_offset_delta = 0;
  int64_t base_timestamp = 0;
  int64_t max_timestamp = 0;
  int64_t producer_id = -1;
  int16_t producer_epoch = -1;
  int32_t base_sequence = -1;
  int32_t records_count = 0;

  int compression() const { return attributes & 0x7; }
  bool log_append_time() const { return attributes & 0x8; }
  bool transactional() const { return attributes & 0x10; }
  bool control() const { return attributes & 0x20; }
  size_t total_size() const { return 12 + static_cast<size_t>(batch_length); }
};

struct Batch {
  BatchHeader header;
  std::string_view bytes;    // the whole batch
  std::string_view records;  // after the 61-byte header (compressed or not)
  size_t offset = 0;         // of the batch in the frame (base + position in the blob)
};

// Walks the batches of a records blob (Produce partition records, Fetch
// partition records). Strict mode (Produce): every batch complete, magic 2,
// batch length sane. Fetch mode (allow_partial_tail): a trailing partial batch
// ends the walk without error (brokers cut fetch responses at max bytes) and
// is reported by partial_tail().
class BatchIterator {
 public:
  BatchIterator(std::string_view blob, bool allow_partial_tail, size_t base = 0)
      : blob_(blob), partial_ok_(allow_partial_tail), base_(base) {}
  // true with *b set; false at the end or on an error (check ok()).
  bool next(Batch* b);
  bool ok() const { return err_.reason == nullptr; }
  const Error& error() const { return err_; }
  bool partial_tail() const { return partial_; }
  size_t offset() const { return pos_; }

 private:
  bool fail(size_t at, const char* reason) {
    err_ = Error{base_ + at, reason};
    return false;
  }
  std::string_view blob_;
  bool partial_ok_;
  size_t base_;
  size_t pos_ = 0;
  bool partial_ = false;
  Error err_;
};

bool decode_batch_header(std::string_view data, BatchHeader* h, Error* err, size_t base = 0);
bool verify_crc(const Batch& b);

// Totals of a records blob from batch headers only (no decompression).
struct RecordCounts {
  uint64_t batches = 0;
  uint64_t records = 0;
  uint64_t bytes = 0;  // bytes of complete batches
  bool partial_tail = false;
  bool old_format = false;  // a magic 0/1 message set was seen (not counted)
};
bool count_records(std::string_view blob, bool allow_partial_tail, RecordCounts* out, Error* err, size_t base = 0);

// Decompresses `in` of the given codec, appending to *out; fails when the
// output would exceed max_out bytes or the input is corrupt. *why gets a
// short reason.
bool decompress(int codec, std::string_view in, size_t max_out, std::string* out, const char** why);

// The records bytes of a batch: a view into the batch when uncompressed,
// else decompressed into *scratch (cleared first) with the cap.
bool batch_records(const Batch& b, size_t max_decompressed, std::string* scratch, std::string_view* records,
                   Error* err);

struct RecordHeader {
  Str key;
  Str value;  // may be null
};

struct Record {
  int8_t attributes = 0;
  int64_t timestamp_delta = 0;
  int32_t offset_delta = 0;
  Str key;    // may be null
  Str value;  // may be null
  int32_t header_count = 0;
  std::string_view headers;  // raw headers, for HeaderIterator
  size_t size = 0;           // encoded size including its length varint
};

// Iterates `count` records (the batch's records_count) over uncompressed
// records bytes; every record must use exactly its declared length, and the
// bytes must end with the last record.
class RecordIterator {
 public:
  RecordIterator(std::string_view records, int32_t count, size_t base = 0) : r_(records, base), left_(count) {}
  bool next(Record* rec);
  bool ok() const { return r_.ok(); }
  const Error& error() const { return r_.error(); }
  bool done() const { return left_ == 0; }

 private:
  Reader r_;
  int32_t left_;
};

class HeaderIterator {
 public:
  HeaderIterator(const Record& rec) : r_(rec.headers), left_(rec.header_count) {}
  bool next(RecordHeader* h);
  bool ok() const { return r_.ok(); }

 private:
  Reader r_;
  int32_t left_;
};

}  // namespace evmesh::kafka
