#include "filters/kafka/codec/topics.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "filters/kafka/codec/api_keys.h"
#include "filters/kafka/test/test_util.h"

namespace evmesh::kafka {
namespace {

std::vector<std::string> names(const RequestTopics& t) {
  std::vector<std::string> out;
  for (const TopicRef& r : t.topics) out.push_back(r.name.null ? "<id:" + std::to_string(r.id.b[15]) + ">" : std::string(r.name.v));
  return out;
}

Uuid id_of(uint8_t last) {
  Uuid u;
  u.b[15] = last;
  return u;
}

struct Body {
  Body(const Body&) = delete;
  bool flex;
  std::string s;
  Writer w{&s};
  explicit Body(bool f) : flex(f) {}
  Body& i8() { w.i8(0); return *this; }
  Body& i16() { w.i16(0); return *this; }
  Body& i32(int32_t v = 0) { w.i32(v); return *this; }
  Body& i64() { w.i64(0); return *this; }
  Body& str(std::string_view v) { w.string(flex, Str::of(v)); return *this; }
  Body& null_str() { w.string(flex, Str::none()); return *this; }
  Body& bytes(std::string_view v) { w.bytes(flex, Str::of(v)); return *this; }
  Body& uuid(uint8_t last) { w.uuid(id_of(last)); return *this; }
  Body& arr(int32_t n) { w.array(flex, n); return *this; }
  Body& i32s(int32_t n) { arr(n); for (int32_t i = 0; i < n; ++i) w.i32(i); return *this; }
  Body& tags() { if (flex) w.no_tagged_fields(); return *this; }
};

RequestTopics extract(int16_t key, int16_t v, const std::string& body) {
  RequestTopics t;
  Error err;
  EXPECT_EQ(topics_of_request(key, v, body, &t, &err), TopicsStatus::kOk) << api_name(key) << " v" << v << ": "
                                                                        << err.describe();
  // Every truncation is an error or yields a subset, never a crash.
  for (size_t cut = 0; cut < body.size(); ++cut) {
    RequestTopics p;
    Error e;
    const std::string prefix = body.substr(0, cut);
    if (topics_of_request(key, v, prefix, &p, &e) == TopicsStatus::kOk) {
      EXPECT_LE(p.topics.size(), t.topics.size());
    } else {
      EXPECT_LE(e.offset, cut);
    }
  }
  return t;
}

TEST(KafkaTopicsOfRequest, Produce) {
  for (int16_t v : {3, 8, 9, 12}) {
    Body b(v >= 9);
    b.null_str().i16().i32().arr(2);
    b.str("orders").arr(1).i32().bytes("batch").tags().tags();
    b.str("audit").arr(0).tags();
    b.tags();
    EXPECT_EQ(names(extract(api::kProduce, v, b.s)), (std::vector<std::string>{"orders", "audit"}));
  }
  Body b(true);
  b.null_str().i16().i32().arr(1).uuid(5).arr(0).tags().tags();
  EXPECT_EQ(names(extract(api::kProduce, 13, b.s)), (std::vector<std::string>{"<id:5>"}));
}

TEST(KafkaTopicsOfRequest, Fetch) {
  for (int16_t v : {4, 11, 12, 13, 17}) {
    const bool flex = v >= 12;
    Body b(flex);
    if (v <= 14) b.i32(-1);  // replica id
    b.i32().i32().i32().i8();  // max wait, min bytes, max bytes, isolation
    if (v >= 7) b.i32().i32();  // session id, epoch
    b.arr(1);
    if (v >= 13) {
      b.uuid(9);
    } else {
      b.str("orders");
    }
    b.arr(1).i32();
    if (v >= 9) b.i32();
    b.i64();
    if (v >= 12) b.i32();
    b.i64().i32().tags().tags();
    const RequestTopics t = extract(api::kFetch, v, b.s);
    EXPECT_EQ(names(t), (std::vector<std::string>{v >= 13 ? "<id:9>" : "orders"}));
  }
}

TEST(KafkaTopicsOfRequest, Metadata) {
  Body all(true);
  all.arr(-1).i8().i8().tags();
  EXPECT_TRUE(extract(api::kMetadata, 12, all.s).all);
  Body v0(false);
  v0.arr(0);
  EXPECT_TRUE(extract(api::kMetadata, 0, v0.s).all);
  Body some(true);
  some.arr(2).uuid(0).str("a").tags().uuid(3).null_str().tags().i8().i8().tags();
  const RequestTopics t = extract(api::kMetadata, 12, some.s);
  EXPECT_FALSE(t.all);
  EXPECT_EQ(names(t), (std::vector<std::string>{"a", "<id:3>"}));
  Body v4(false);
  v4.arr(1).str("b").i8();
  EXPECT_EQ(names(extract(api::kMetadata, 4, v4.s)), (std::vector<std::string>{"b"}));
}

TEST(KafkaTopicsOfRequest, OffsetCommitAndFetch) {
  Body oc(true);  // v9
  oc.str("g").i32().str("m").null_str().arr(1).str("t1").arr(1).i32().i64().i32().null_str().tags().tags().tags();
  EXPECT_EQ(names(extract(api::kOffsetCommit, 9, oc.s)), (std::vector<std::string>{"t1"}));
  Body oc2(false);  // v2: retention time
  oc2.str("g").i32().str("m").i64().arr(1).str("t2").arr(1).i32().i64().null_str();
  EXPECT_EQ(names(extract(api::kOffsetCommit, 2, oc2.s)), (std::vector<std::string>{"t2"}));
  Body of(true);  // v8: groups
  of.arr(2).str("g1").arr(1).str("x").i32s(2).tags().tags().str("g2").arr(-1).tags().i8().tags();
  EXPECT_EQ(names(extract(api::kOffsetFetch, 8, of.s)), (std::vector<std::string>{"x"}));
  Body of1(false);  // v1
  of1.str("g").arr(1).str("y").i32s(1);
  EXPECT_EQ(names(extract(api::kOffsetFetch, 1, of1.s)), (std::vector<std::string>{"y"}));
}

TEST(KafkaTopicsOfRequest, AdminAndTransactionRequests) {
  Body ct(true);  // CreateTopics v5
  ct.arr(1).str("new").i32(3).i16().arr(0).arr(1).str("cleanup.policy").str("compact").tags().tags().i32().i8().tags();
  EXPECT_EQ(names(extract(api::kCreateTopics, 5, ct.s)), (std::vector<std::string>{"new"}));
  Body dt(false);  // DeleteTopics v1
  dt.arr(2).str("a").str("b").i32();
  EXPECT_EQ(names(extract(api::kDeleteTopics, 1, dt.s)), (std::vector<std::string>{"a", "b"}));
  Body dt6(true);
  dt6.arr(2).str("c").uuid(0).tags().null_str().uuid(4).tags().i32().tags();
  EXPECT_EQ(names(extract(api::kDeleteTopics, 6, dt6.s)), (std::vector<std::string>{"c", "<id:4>"}));
  Body dr(true);  // DeleteRecords v2
  dr.arr(1).str("d").arr(1).i32().i64().tags().tags().i32().tags();
  EXPECT_EQ(names(extract(api::kDeleteRecords, 2, dr.s)), (std::vector<std::string>{"d"}));
  Body lo(true);  // ListOffsets v7
  lo.i32(-1).i8().arr(1).str("e").arr(1).i32().i32().i64().tags().tags().tags();
  EXPECT_EQ(names(extract(api::kListOffsets, 7, lo.s)), (std::vector<std::string>{"e"}));
  Body ap(true);  // AddPartitionsToTxn v4
  ap.arr(1).str("txn").i64().i16().i8().arr(2).str("f").i32s(1).tags().str("g").i32s(0).tags().tags().tags();
  EXPECT_EQ(names(extract(api::kAddPartitionsToTxn, 4, ap.s)), (std::vector<std::string>{"f", "g"}));
  Body ap3(true);  // v3
  ap3.str("txn").i64().i16().arr(1).str("h").i32s(1).tags().tags();
  EXPECT_EQ(names(extract(api::kAddPartitionsToTxn, 3, ap3.s)), (std::vector<std::string>{"h"}));
  Body to(true);  // TxnOffsetCommit v3
  to.str("txn").str("grp").i64().i16().i32().str("m").null_str().arr(1).str("i").arr(1).i32().i64().i32().null_str()
      .tags().tags().tags();
  EXPECT_EQ(names(extract(api::kTxnOffsetCommit, 3, to.s)), (std::vector<std::string>{"i"}));
  Body od(false);  // OffsetDelete v0
  od.str("grp").arr(1).str("j").arr(1).i32();
  EXPECT_EQ(names(extract(api::kOffsetDelete, 0, od.s)), (std::vector<std::string>{"j"}));
  Body dp(true);  // DescribeProducers v0
  dp.arr(1).str("k").i32s(2).tags().tags();
  EXPECT_EQ(names(extract(api::kDescribeProducers, 0, dp.s)), (std::vector<std::string>{"k"}));
  Body cp(true);  // CreatePartitions v2
  cp.arr(1).str("l").i32(6).arr(-1).tags().i32().i8().tags();
  EXPECT_EQ(names(extract(api::kCreatePartitions, 2, cp.s)), (std::vector<std::string>{"l"}));
  Body el(true);  // ElectLeaders v2
  el.i8().arr(1).str("m").i32s(1).tags().i32().tags();
  EXPECT_EQ(names(extract(api::kElectLeaders, 2, el.s)), (std::vector<std::string>{"m"}));
  Body ofe(true);  // OffsetForLeaderEpoch v4
  ofe.i32(-1).arr(1).str("n").arr(1).i32().i32().i32().tags().tags().tags();
  EXPECT_EQ(names(extract(api::kOffsetForLeaderEpoch, 4, ofe.s)), (std::vector<std::string>{"n"}));
  Body dtp(true);  // DescribeTopicPartitions v0
  dtp.arr(1).str("o").tags().i32(2000).i8();
  EXPECT_EQ(names(extract(api::kDescribeTopicPartitions, 0, dtp.s)), (std::vector<std::string>{"o"}));
}

TEST(KafkaTopicsOfRequest, NoTopicsAndErrors) {
  RequestTopics t;
  Error err;
  EXPECT_EQ(topics_of_request(api::kHeartbeat, 4, "x", &t, &err), TopicsStatus::kNoTopics);
  EXPECT_EQ(topics_of_request(4242, 0, "x", &t, &err), TopicsStatus::kNoTopics);
  EXPECT_FALSE(request_carries_topics(api::kApiVersions));
  EXPECT_TRUE(request_carries_topics(api::kProduce));
  // A topic array count far beyond the body.
  Body b(false);
  b.null_str().i16().i32().i32(1 << 30);
  EXPECT_EQ(topics_of_request(api::kProduce, 8, b.s, &t, &err, 20), TopicsStatus::kError);
  EXPECT_STREQ(err.reason, "array count exceeds frame");
  EXPECT_EQ(err.offset, 20u + 8);
}

}  // namespace
}  // namespace evmesh::kafka
