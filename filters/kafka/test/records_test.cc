#include "filters/kafka/codec/records.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "filters/kafka/test/batch_builder.h"
#include "filters/kafka/test/test_util.h"

namespace evmesh::kafka {
namespace {

using testing::make_batch;
using testing::sample_records;

TEST(KafkaCrc32c, KnownVectorsAndChaining) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
  const std::string zeros(32, '\0');
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);  // RFC 3720 B.4
  const std::string ff(32, '\xff');
  EXPECT_EQ(crc32c(ff.data(), ff.size()), 0x62A8AB43u);
  std::string inc;
  for (int i = 0; i < 32; ++i) inc.push_back(static_cast<char>(i));
  EXPECT_EQ(crc32c(inc.data(), inc.size()), 0x46DD794Eu);
  // Any split chains to the same value (slice-by-8 and byte tail agree).
  std::string long_text;
  for (int i = 0; i < 1000; ++i) long_text.push_back(static_cast<char>(i * 31 + 7));
  const uint32_t whole = crc32c(long_text.data(), long_text.size());
  for (size_t cut = 0; cut <= long_text.size(); cut += 13) {
    EXPECT_EQ(crc32c(long_text.data() + cut, long_text.size() - cut, crc32c(long_text.data(), cut)), whole);
    EXPECT_EQ(crc32c_portable(long_text.data() + cut, long_text.size() - cut, crc32c_portable(long_text.data(), cut)),
              whole);
  }
  // The hardware and table paths agree on every length and alignment.
  for (size_t off = 0; off < 8; ++off) {
    for (size_t n = 0; n + off <= 80; ++n) {
      EXPECT_EQ(crc32c(long_text.data() + off, n, 0x1234), crc32c_portable(long_text.data() + off, n, 0x1234));
    }
  }
  // Long inputs take the three-lane path (3 x 512-byte blocks): it agrees with
  // the table path on every length around the block edges and when chained.
  std::string big;
  for (int i = 0; i < 12000; ++i) big.push_back(static_cast<char>((i * 131) ^ (i >> 5)));
  for (size_t n : {1535, 1536, 1537, 3071, 3072, 4608, 5000, 11999}) {
    for (size_t off : {0, 3}) {
      EXPECT_EQ(crc32c(big.data() + off, n, 0x5a5a), crc32c_portable(big.data() + off, n, 0x5a5a)) << n << "+" << off;
    }
  }
  EXPECT_EQ(crc32c(big.data() + 4000, 8000, crc32c(big.data(), 4000)), crc32c_portable(big.data(), 12000));
  EXPECT_EQ(crc32c_portable("123456789", 9), 0xE3069283u);
}

// Decodes every record of every batch of a blob; returns "key=value[h]" lines.
std::vector<std::string> read_all(std::string_view blob, size_t cap = 1 << 20) {
  std::vector<std::string> out;
  BatchIterator it(blob, false);
  Batch b;
  std::string scratch;
  while (it.next(&b)) {
    EXPECT_TRUE(verify_crc(b));
    std::string_view recs;
    Error err;
    if (!batch_records(b, cap, &scratch, &recs, &err)) {
      out.push_back(std::string("error: ") + err.reason);
      continue;
    }
    RecordIterator ri(recs, b.header.records_count);
    Record r;
    while (ri.next(&r)) {
      std::string s = (r.key.null ? "<null>" : std::string(r.key.v)) + "=" + std::string(r.value.v.substr(0, 3));
      HeaderIterator hi(r);
      RecordHeader h;
      while (hi.next(&h)) s += "[" + std::string(h.key.v) + ":" + (h.value.null ? "<null>" : std::string(h.value.v)) + "]";
      out.push_back(s);
    }
    EXPECT_TRUE(ri.ok()) << ri.error().describe();
    EXPECT_TRUE(ri.done());
  }
  EXPECT_TRUE(it.ok()) << it.error().describe();
  return out;
}

TEST(KafkaRecordBatch, EveryCodecDecodesTheSameRecords) {
  const auto recs = sample_records(7);
  const std::vector<std::string> want = read_all(make_batch(recs, 0));
  ASSERT_EQ(want.size(), 7u);
  EXPECT_EQ(want[0], "key-0=aaa[trace:abc][empty:<null>]");
  EXPECT_EQ(want[2], "<null>=ccc[trace:abc][empty:<null>]");
  for (int codec = 1; codec <= 4; ++codec) {
    SCOPED_TRACE(compression_name(codec));
    const std::string batch = make_batch(recs, codec);
    EXPECT_EQ(read_all(batch), want);
    BatchHeader h;
    Error err;
    ASSERT_TRUE(decode_batch_header(batch, &h, &err));
    EXPECT_EQ(h.compression(), codec);
    EXPECT_EQ(h.records_count, 7);
  }
  // librdkafka writes raw snappy (no xerial framing).
  EXPECT_EQ(read_all(make_batch(recs, 2, 0, 0, false)), want);
}

TEST(KafkaRecordBatch, HeaderFields) {
  const std::string batch = make_batch(sample_records(3), 3, 42, 0x10 | 0x20);
  // Whole, with garbage appended, and every truncation of the header.
  testing::check_body_decoder(batch.substr(0, kBatchHeaderSize), [](std::string_view in, size_t* c, Error* e) {
    BatchHeader h;
    *c = kBatchHeaderSize;
    return decode_batch_header(in, &h, e);
  }, "batch header");
  BatchHeader h;
  Error err;
  ASSERT_TRUE(decode_batch_header(batch, &h, &err));
  EXPECT_EQ(h.base_offset, 42);
  EXPECT_EQ(h.magic, 2);
  EXPECT_TRUE(h.transactional());
  EXPECT_TRUE(h.control());
  EXPECT_EQ(h.compression(), 3);
  EXPECT_EQ(h.last_offset_delta, 2);
  EXPECT_EQ(h.total_size(), batch.size());
}

TEST(KafkaRecordBatch, CountWithoutDecompressingAndPartialTail) {
  std::string blob = make_batch(sample_records(3), 4) + make_batch(sample_records(5), 1, 3) + make_batch({}, 0, 8);
  RecordCounts c;
  Error err;
  ASSERT_TRUE(count_records(blob, false, &c, &err)) << err.describe();
  EXPECT_EQ(c.batches, 3u);
  EXPECT_EQ(c.records, 8u);
  EXPECT_EQ(c.bytes, blob.size());
  EXPECT_FALSE(c.partial_tail);
  // Fetch responses may end in a partial batch: counted up to it.
  const std::string third = make_batch(sample_records(2), 0, 9);
  for (size_t cut = 0; cut < third.size(); ++cut) {
    const std::string b = blob + third.substr(0, cut);
    RecordCounts p;
    ASSERT_TRUE(count_records(b, true, &p, &err)) << cut;
    EXPECT_EQ(p.records, 8u);
    EXPECT_EQ(p.partial_tail, cut > 0);
    // A produce request must not: error with the offset of the partial batch.
    if (cut > 0) {
      EXPECT_FALSE(count_records(b, false, &p, &err, 100));
      EXPECT_GE(err.offset, 100 + blob.size());
    }
  }
}

TEST(KafkaRecordBatch, BadCrcIsDetected) {
  std::string batch = make_batch(sample_records(4), 0);
  for (size_t pos : {kBatchAttributesOffset, kBatchHeaderSize + 3, batch.size() - 1}) {
    std::string bad = batch;
    bad[pos] ^= 0x01;
    BatchIterator it(bad, false);
    Batch b;
    ASSERT_TRUE(it.next(&b));
    EXPECT_FALSE(verify_crc(b)) << pos;
  }
  BatchIterator it(batch, false);
  Batch b;
  ASSERT_TRUE(it.next(&b));
  EXPECT_TRUE(verify_crc(b));
}

TEST(KafkaRecordBatch, MalformedBatches) {
  const std::string batch = make_batch(sample_records(2), 0);
  auto first_error = [](const std::string& blob) {
    BatchIterator it(blob, false, 10);
    Batch b;
    while (it.next(&b)) {
    }
    return it.error();
  };
  std::string bad_magic = batch;
  bad_magic[16] = 7;
  EXPECT_STREQ(first_error(bad_magic).reason, "unknown record batch magic");
  EXPECT_EQ(first_error(bad_magic).offset, 10u + 16);
  std::string neg = batch;
  store_be32(neg.data() + 8, 0xfffffff0u);
  EXPECT_STREQ(first_error(neg).reason, "negative record batch length");
  std::string huge = batch;
  store_be32(huge.data() + 8, 0x7ffffff0u);
  EXPECT_STREQ(first_error(huge).reason, "record batch length exceeds records");
  std::string tiny = batch;
  store_be32(tiny.data() + 8, 20);
  EXPECT_STREQ(first_error(tiny.substr(0, 32)).reason, "truncated");
  std::string negcount = batch;
  store_be32(negcount.data() + 57, 0xffffffffu);
  EXPECT_STREQ(first_error(negcount).reason, "negative record count");
  // Records that do not add up to the declared count or length.
  std::string more = batch;
  store_be32(more.data() + 57, 3);
  BatchIterator it(more, false);
  Batch b;
  ASSERT_TRUE(it.next(&b));
  RecordIterator ri(b.records, b.header.records_count);
  Record r;
  int n = 0;
  while (ri.next(&r)) ++n;
  EXPECT_EQ(n, 2);
  EXPECT_FALSE(ri.ok());
  std::string fewer = batch;
  store_be32(fewer.data() + 57, 1);
  BatchIterator it2(fewer, false);
  ASSERT_TRUE(it2.next(&b));
  RecordIterator ri2(b.records, b.header.records_count);
  EXPECT_TRUE(ri2.next(&r));
  EXPECT_FALSE(ri2.next(&r));
  EXPECT_STREQ(ri2.error().reason, "bytes after the last record");
}

TEST(KafkaRecords, EveryTruncationOfARecordIsAnError) {
  const std::string recs = testing::encode_records(sample_records(3));
  for (size_t cut = 0; cut < recs.size(); ++cut) {
    const std::string prefix = recs.substr(0, cut);
    RecordIterator it(prefix, 3, 61);
    Record r;
    while (it.next(&r)) {
    }
    EXPECT_FALSE(it.ok()) << cut;
    EXPECT_LE(it.error().offset, 61 + cut);
  }
  // Garbage after the last record is refused.
  const std::string with_garbage = recs + "zz";
  RecordIterator it(with_garbage, 3);
  Record r;
  while (it.next(&r)) {
  }
  EXPECT_FALSE(it.ok());
}

TEST(KafkaRecords, FieldLengthsBeyondTheRecord) {
  std::string body;
  Writer b(&body);
  b.i8(0);
  b.varlong(0);
  b.varint(0);
  b.varint(1000);  // key length beyond the record
  b.raw("k");
  std::string rec;
  Writer w(&rec);
  w.varint(static_cast<int32_t>(body.size()));
  w.raw(body);
  RecordIterator it(rec, 1);
  Record r;
  EXPECT_FALSE(it.next(&r));
  EXPECT_STREQ(it.error().reason, "record field exceeds record");
  std::string big;
  Writer(&big).varint(1 << 30);  // record length beyond the batch
  RecordIterator it2(big, 1);
  EXPECT_FALSE(it2.next(&r));
  EXPECT_STREQ(it2.error().reason, "record length exceeds batch");
}

TEST(KafkaDecompress, CapAndCorruptInput) {
  const std::string plain(200000, 'x');  // compresses to almost nothing
  for (int codec = 0; codec <= 4; ++codec) {
    SCOPED_TRACE(compression_name(codec));
    const std::string c = testing::compress(codec, plain);
    std::string out;
    const char* why = "";
    ASSERT_TRUE(decompress(codec, c, plain.size(), &out, &why)) << why;
    EXPECT_EQ(out, plain);
    out.clear();
    EXPECT_FALSE(decompress(codec, c, plain.size() - 1, &out, &why));
    EXPECT_STREQ(why, "decompressed size exceeds the cap");
    EXPECT_LE(out.size(), plain.size());
    if (codec == 0) continue;
    // Truncated and corrupted input: an error, never a crash.
    for (size_t cut : {size_t{0}, size_t{1}, c.size() / 2, c.size() - 1}) {
      out.clear();
      EXPECT_FALSE(decompress(codec, std::string_view(c).substr(0, cut), 1 << 20, &out, &why)) << cut;
    }
    std::string bad = c;
    for (size_t i = 4; i < bad.size(); i += 3) bad[i] ^= 0x5a;
    out.clear();
    decompress(codec, bad, 1 << 20, &out, &why);  // may or may not fail; must not crash
    EXPECT_LE(out.size(), size_t{1} << 20);
  }
  std::string out;
  const char* why = "";
  EXPECT_FALSE(decompress(5, "x", 10, &out, &why));
  EXPECT_STREQ(why, "unknown compression codec");
  // A snappy block declaring a huge uncompressed length is refused up front.
  std::string liar;
  Writer(&liar).uvarint(0xfffffff0u);
  liar += "\x00\x00";
  EXPECT_FALSE(decompress(2, liar, 1 << 20, &out, &why));
}

TEST(KafkaDecompress, BatchOverTheCapIsAnErrorWithOffset) {
  const std::string batch = make_batch(sample_records(50), 4);
  BatchIterator it(batch, false, 1000);
  Batch b;
  ASSERT_TRUE(it.next(&b));
  std::string scratch;
  std::string_view recs;
  Error err;
  EXPECT_FALSE(batch_records(b, 100, &scratch, &recs, &err));
  EXPECT_STREQ(err.reason, "decompressed size exceeds the cap");
}

}  // namespace
}  // namespace evmesh::kafka
