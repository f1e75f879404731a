// The streaming walkers fed whole, one byte at a time and split in two at
// every position must report the same events as each other and as the
// contiguous decoders.
#include "filters/kafka/codec/stream.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "filters/kafka/codec/messages.h"
#include "filters/kafka/test/batch_builder.h"
#include "filters/kafka/test/test_util.h"

namespace evmesh::kafka {
namespace {

using Kind = RecordsBodyWalker::Kind;

struct Recorder : WalkSink {
  std::vector<std::string> ev;
  void topic(const TopicRef& t, uint64_t offset) override {
    ev.push_back("T" + (t.name.null ? "#" + std::to_string(t.id.b[15]) : std::string(t.name.v)) + "@" +
                 std::to_string(offset));
  }
  void partition(int32_t index, int64_t size, uint64_t offset) override {
    ev.push_back("P" + std::to_string(index) + ":" + std::to_string(size) + "@" + std::to_string(offset));
  }
  void batch(const BatchHeader& h, uint64_t offset, uint64_t size, bool header, bool complete, bool crc) override {
    ev.push_back("B" + std::to_string(h.records_count) + "c" + std::to_string(h.compression()) + "@" +
                 std::to_string(offset) + "+" + std::to_string(size) + (header ? "" : "!h") + (complete ? "" : "!c") +
                 (crc ? "" : "!crc"));
  }
  void topic_end(uint64_t end) override { ev.push_back("E@" + std::to_string(end)); }
};

struct Result {
  std::vector<std::string> ev;
  bool ok = true;
  bool done = false;
  std::string error;
};

Result walk(Kind kind, int16_t v, const std::string& body, const std::vector<std::string_view>& pieces,
            size_t base = 0) {
  RecordsBodyWalker w(kind, v, body.size(), base, true);
  Recorder rec;
  Result r;
  for (auto p : pieces) {
    if (!w.feed(p, rec)) {
      r.ok = false;
      break;
    }
  }
  r.ev = rec.ev;
  r.done = w.done();
  r.error = w.error().reason ? w.error().describe() : "";
  return r;
}

Result check_all_splits(Kind kind, int16_t v, const std::string& body, size_t base = 0) {
  const Result whole = walk(kind, v, body, {body}, base);
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < body.size(); ++i) bytes.push_back(std::string_view(body).substr(i, 1));
  const Result one = walk(kind, v, body, bytes, base);
  EXPECT_EQ(one.ev, whole.ev);
  EXPECT_EQ(one.ok, whole.ok);
  EXPECT_EQ(one.error, whole.error);
  EXPECT_EQ(one.done, whole.done);
  for (size_t cut = 0; cut <= body.size(); ++cut) {
    const std::string_view b(body);
    const Result two = walk(kind, v, body, {b.substr(0, cut), b.substr(cut)}, base);
    EXPECT_EQ(two.ev, whole.ev) << "cut " << cut;
    EXPECT_EQ(two.ok, whole.ok) << "cut " << cut;
    EXPECT_EQ(two.error, whole.error) << "cut " << cut;
  }
  return whole;
}

std::string produce_body(int16_t v, const std::vector<std::pair<std::string, std::string>>& parts) {
  const bool flex = v >= 9;
  std::string b;
  Writer w(&b);
  if (v >= 3) w.string(flex, Str::none());
  w.i16(1);
  w.i32(1000);
  w.array(flex, static_cast<int32_t>(parts.size()));
  uint8_t id = 1;
  for (const auto& [topic, records] : parts) {
    if (v >= 13) {
      Uuid u;
      u.b[15] = id++;
      w.uuid(u);
    } else {
      w.string(flex, Str::of(topic));
    }
    w.array(flex, 1);
    w.i32(0);
    w.bytes(flex, Str::of(records));
    if (flex) w.no_tagged_fields();
    if (flex) w.no_tagged_fields();
  }
  if (flex) w.no_tagged_fields();
  return b;
}

TEST(KafkaStreamWalker, ProduceEveryFlexAndTopicIdVersion) {
  const std::string a = testing::make_batch(testing::sample_records(3), 1) + testing::make_batch(testing::sample_records(2), 0, 3);
  const std::string b = testing::make_batch(testing::sample_records(4), 4);
  for (int16_t v : {3, 8, 9, 12, 13}) {
    SCOPED_TRACE("v" + std::to_string(v));
    const std::string body = produce_body(v, {{"orders", a}, {"audit", b}});
    const Result r = check_all_splits(Kind::kProduceRequest, v, body, 20);
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_TRUE(r.done);
    // Same topics, partitions and batches as the contiguous decoder.
    ProduceRequest p;
    Error err;
    ASSERT_TRUE(decode_produce_request(body, v, &p, &err, 20));
    std::vector<std::string> want;
    for (const auto& t : p.topics) {
      for (const auto& part : t.partitions) {
        want.push_back("P" + std::to_string(part.index) + ":" + std::to_string(part.records.v.size()) + "@" +
                       std::to_string(20 + part.records_offset));
      }
    }
    std::vector<std::string> got;
    for (const auto& e : r.ev) {
      if (e[0] == 'P') got.push_back(e);
    }
    EXPECT_EQ(got, want);
    int batches = 0;
    for (const auto& e : r.ev) {
      if (e[0] == 'B') {
        ++batches;
        EXPECT_EQ(e.find('!'), std::string::npos) << e;  // complete, crc ok
      }
    }
    EXPECT_EQ(batches, 3);
    EXPECT_EQ(r.ev.front().substr(0, 2), v >= 13 ? "T#" : "To");
  }
}

TEST(KafkaStreamWalker, ProduceErrors) {
  std::string batch = testing::make_batch(testing::sample_records(2), 0);
  // Bad CRC: reported, not an error (the policy decides).
  std::string bad = batch;
  bad[bad.size() - 1] ^= 1;
  Result r = check_all_splits(Kind::kProduceRequest, 9, produce_body(9, {{"t", bad}}));
  ASSERT_TRUE(r.ok);
  EXPECT_NE(r.ev[2].find("!crc"), std::string::npos) << r.ev[2];
  // A batch longer than its records field.
  std::string longer = batch;
  store_be32(longer.data() + 8, load_be32(longer.data() + 8) + 10);
  r = check_all_splits(Kind::kProduceRequest, 9, produce_body(9, {{"t", longer}}));
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("record batch length exceeds records"), std::string::npos) << r.error;
  // Records field cut inside a batch header.
  r = check_all_splits(Kind::kProduceRequest, 9, produce_body(9, {{"t", batch.substr(0, 30)}}));
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("truncated record batch"), std::string::npos) << r.error;
  // Magic 1 in a produce request.
  std::string magic = batch;
  magic[16] = 1;
  r = check_all_splits(Kind::kProduceRequest, 9, produce_body(9, {{"t", magic}}));
  EXPECT_FALSE(r.ok);
  // A huge topic count.
  std::string huge;
  Writer w(&huge);
  w.string(true, Str::none());
  w.i16(1);
  w.i32(0);
  w.uvarint(1u << 30);
  r = check_all_splits(Kind::kProduceRequest, 9, huge + std::string(10, '\0'));
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("array count exceeds frame"), std::string::npos) << r.error;
  // A records length beyond the body.
  std::string body = produce_body(8, {{"t", batch}});
  store_be32(body.data() + body.size() - batch.size() - 4, 0x7ffffff0u);
  r = check_all_splits(Kind::kProduceRequest, 8, body);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("records length exceeds frame"), std::string::npos) << r.error;
  // A version whose layout is unknown.
  RecordsBodyWalker v14(Kind::kProduceRequest, 14, 10);
  Recorder r14;
  EXPECT_FALSE(v14.feed("0123456789", r14));
  EXPECT_STREQ(v14.error().reason, "unsupported api version");
  // More bytes than the body.
  RecordsBodyWalker wk(Kind::kProduceRequest, 9, 3);
  Recorder rec;
  EXPECT_FALSE(wk.feed("abcd", rec));
}

std::string fetch_body(int16_t v, const std::string& records) {
  const bool flex = v >= 12;
  std::string b;
  Writer w(&b);
  if (v >= 1) w.i32(7);
  if (v >= 7) {
    w.i16(0);
    w.i32(1);
  }
  w.array(flex, 1);
  if (v >= 13) {
    Uuid u;
    u.b[15] = 9;
    w.uuid(u);
  } else {
    w.string(flex, Str::of("orders"));
  }
  w.array(flex, 2);
  for (int p = 0; p < 2; ++p) {
    w.i32(p);
    w.i16(0);
    w.i64(10);
    if (v >= 4) w.i64(10);
    if (v >= 5) w.i64(0);
    if (v >= 4) {
      w.array(flex, 1);
      w.i64(5);
      w.i64(6);
      if (flex) w.no_tagged_fields();
    }
    if (v >= 11) w.i32(-1);
    w.bytes(flex, p == 0 ? Str::of(records) : Str::none());
    if (flex) w.no_tagged_fields();
  }
  if (flex) w.no_tagged_fields();
  if (flex) w.no_tagged_fields();
  return b;
}

TEST(KafkaStreamWalker, FetchEveryVersionWithPartialTail) {
  const std::string full = testing::make_batch(testing::sample_records(3), 3) + testing::make_batch(testing::sample_records(2), 2, 3);
  const std::string tail = testing::make_batch(testing::sample_records(5), 0, 5);
  for (int16_t v = 4; v <= 17; ++v) {
    SCOPED_TRACE("v" + std::to_string(v));
    for (size_t keep : {size_t{0}, size_t{10}, size_t{40}, tail.size() - 1}) {
      const std::string body = fetch_body(v, full + tail.substr(0, keep));
      const Result r = check_all_splits(Kind::kFetchResponse, v, body);
      ASSERT_TRUE(r.ok) << r.error;
      EXPECT_TRUE(r.done);
      int complete = 0, partial = 0;
      for (const auto& e : r.ev) {
        if (e[0] != 'B') continue;
        if (e.find("!c") != std::string::npos) {
          ++partial;
        } else {
          ++complete;
          EXPECT_EQ(e.find('!'), std::string::npos) << e;
        }
      }
      EXPECT_EQ(complete, 2);
      EXPECT_EQ(partial, keep ? 1 : 0);
      // Agrees with the contiguous decoder + counter.
      FetchResponse f;
      Error err;
      ASSERT_TRUE(decode_fetch_response(body, v, &f, &err));
      RecordCounts c;
      ASSERT_TRUE(count_records(f.topics[0].partitions[0].records.v, true, &c, &err));
      EXPECT_EQ(c.batches, 2u);
      EXPECT_EQ(c.records, 5u);
    }
  }
}

TEST(KafkaStreamWalker, ThrottleAndAcksFromThePrologue) {
  const std::string body = fetch_body(12, "");
  RecordsBodyWalker w(Kind::kFetchResponse, 12, body.size(), 9);
  Recorder rec;
  ASSERT_TRUE(w.feed(body, rec));
  EXPECT_TRUE(w.done());
  EXPECT_EQ(w.throttle_time_ms(), 7);
  EXPECT_EQ(w.throttle_time_offset(), 9u);
  const std::string p = produce_body(10, {});
  RecordsBodyWalker pw(Kind::kProduceRequest, 10, p.size());
  ASSERT_TRUE(pw.feed(p, rec));
  EXPECT_TRUE(pw.done());
  EXPECT_EQ(pw.acks(), 1);
}

}  // namespace
}  // namespace evmesh::kafka
