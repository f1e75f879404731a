// Message bodies built field by field for every version, decoded whole, with
// garbage appended and truncated everywhere; the rewritable responses are
// re-encoded byte for byte and rewritten.
#include "filters/kafka/codec/messages.h"

#include <gtest/gtest.h>

#include <string>
#include <tuple>

#include "filters/kafka/codec/api_keys.h"
#include "filters/kafka/test/test_util.h"

namespace evmesh::kafka {
namespace {

using testing::BodyDecoder;
using testing::check_body_decoder;

Uuid uuid_of(uint8_t seed) {
  Uuid u;
  for (int i = 0; i < 16; ++i) u.b[i] = static_cast<uint8_t>(seed + i);
  return u;
}

// One tagged field (tag 7, "tg") where the message is flexible, else nothing.
void tags(Writer& w, bool flex, bool with_one = false) {
  if (!flex) return;
  if (!with_one) {
    w.no_tagged_fields();
    return;
  }
  w.uvarint(1);
  w.uvarint(7);
  w.uvarint(2);
  w.raw("tg");
}

void i32s(Writer& w, bool flex, std::initializer_list<int32_t> v) {
  w.array(flex, static_cast<int32_t>(v.size()));
  for (int32_t x : v) w.i32(x);
}

// ---- Metadata ----------------------------------------------------------------

std::string metadata_body(int16_t v) {
  const bool flex = v >= 9;
  std::string b;
  Writer w(&b);
  if (v >= 3) w.i32(5);
  w.array(flex, 2);
  w.i32(1);
  w.string(flex, Str::of("broker-1.kafka.internal"));
  w.i32(9092);
  if (v >= 1) w.string(flex, Str::of("rack-a"));
  tags(w, flex, true);
  w.i32(2);
  w.string(flex, Str::of("b2"));
  w.i32(19092);
  if (v >= 1) w.string(flex, Str::none());
  tags(w, flex);
  if (v >= 2) w.string(flex, Str::of("cluster-x"));
  if (v >= 1) w.i32(2);
  w.array(flex, 2);
  for (int t = 0; t < 2; ++t) {
    w.i16(t == 0 ? 0 : 3);
    w.string(flex, t == 1 && v >= 12 ? Str::none() : Str::of(t == 0 ? "orders" : "gone"));
    if (v >= 10) w.uuid(uuid_of(static_cast<uint8_t>(t * 32)));
    if (v >= 1) w.boolean(false);
    w.array(flex, t == 0 ? 2 : 0);
    for (int p = 0; p < (t == 0 ? 2 : 0); ++p) {
      w.i16(0);
      w.i32(p);
      w.i32(p + 1);
      if (v >= 7) w.i32(4);
      i32s(w, flex, {1, 2});
      i32s(w, flex, {p + 1});
      if (v >= 5) i32s(w, flex, {});
      tags(w, flex);
    }
    if (v >= 8) w.i32(-2147483648);
    tags(w, flex);
  }
  if (v >= 8 && v <= 10) w.i32(-2147483648);
  if (v >= 13) w.i16(0);
  tags(w, flex, true);
  return b;
}

AddressMapper to_sidecar() {
  return [](int32_t id, std::string_view host, int32_t port, std::string* nh, int32_t* np) {
    *nh = "127.0.0.1";
    *np = 20000 + id;
    return true;
  };
}

AddressMapper identity() {
  return [](int32_t, std::string_view host, int32_t port, std::string* nh, int32_t* np) {
    *nh = std::string(host);
    *np = port;
    return true;
  };
}

TEST(KafkaMetadataResponse, EveryVersion) {
  for (int16_t v = 0; v <= 13; ++v) {
    const std::string body = metadata_body(v);
    SCOPED_TRACE("v" + std::to_string(v));
    check_body_decoder(body, [v](std::string_view in, size_t* c, Error* e) {
      MetadataResponse m;
      const bool ok = decode_metadata_response(in, v, true, &m, e, 9);
      *c = m.consumed;
      return ok;
    }, "metadata", 9);
    MetadataResponse m;
    Error err;
    ASSERT_TRUE(decode_metadata_response(body, v, true, &m, &err));
    ASSERT_EQ(m.brokers.size(), 2u);
    EXPECT_EQ(m.brokers[0].node_id, 1);
    EXPECT_EQ(m.brokers[0].host.v, "broker-1.kafka.internal");
    EXPECT_EQ(m.brokers[0].port, 9092);
    EXPECT_EQ(m.brokers[0].rack, v >= 1 ? Str::of("rack-a") : Str::none());
    EXPECT_EQ(m.brokers[1].port, 19092);
    EXPECT_EQ(m.controller_id, v >= 1 ? 2 : -1);
    ASSERT_EQ(m.topics.size(), 2u);
    EXPECT_EQ(m.topics[0].name.v, "orders");
    ASSERT_EQ(m.topics[0].partitions.size(), 2u);
    EXPECT_EQ(m.topics[0].partitions[1].leader_id, 2);
    EXPECT_EQ(m.topics[1].error_code, 3);
    EXPECT_EQ(m.topics[1].name.null, v >= 12);
    // Byte-identical when nothing changes.
    EXPECT_EQ(encode_metadata_response(m), body);
    std::string out;
    EXPECT_EQ(rewrite_broker_addresses(api::kMetadata, v, body, identity(), &out, &err), Rewrite::kUnchanged);
    // Rewritten to sidecar listeners; everything else as it was.
    ASSERT_EQ(rewrite_broker_addresses(api::kMetadata, v, body, to_sidecar(), &out, &err), Rewrite::kRewritten);
    MetadataResponse r;
    ASSERT_TRUE(decode_metadata_response(out, v, true, &r, &err)) << err.describe();
    EXPECT_EQ(r.brokers[0].host.v, "127.0.0.1");
    EXPECT_EQ(r.brokers[0].port, 20001);
    EXPECT_EQ(r.brokers[1].port, 20002);
    EXPECT_EQ(r.brokers[0].rack, m.brokers[0].rack);
    EXPECT_EQ(r.brokers[0].tagged, m.brokers[0].tagged);
    EXPECT_EQ(r.after_brokers, m.after_brokers);
    EXPECT_EQ(r.consumed, out.size());
  }
}

TEST(KafkaMetadataResponse, TopicNamesFromIds) {
  MetadataResponse m;
  Error err;
  const std::string body = metadata_body(12);
  ASSERT_TRUE(decode_metadata_response(body, 12, true, &m, &err));
  TopicNames names(1);
  names.learn(m);  // "orders" (the other topic has an error and no name)
  ASSERT_NE(names.find(uuid_of(0)), nullptr);
  EXPECT_EQ(*names.find(uuid_of(0)), "orders");
  EXPECT_EQ(names.find(uuid_of(32)), nullptr);
  MetadataResponse other = m;
  other.topics[0].topic_id = uuid_of(99);
  other.topics[0].name = Str::of("newer");
  names.learn(other);  // bounded to one entry: the oldest goes
  EXPECT_EQ(names.size(), 1u);
  EXPECT_EQ(names.find(uuid_of(0)), nullptr);
  EXPECT_EQ(*names.find(uuid_of(99)), "newer");
}

TEST(KafkaMetadataResponse, HugeCountsAreErrorsNotAllocations) {
  std::string b;
  Writer w(&b);
  w.i32(0);                // throttle
  w.uvarint(0x7ffffff0);   // compact brokers count
  b += std::string(20, '\0');
  MetadataResponse m;
  Error err;
  EXPECT_FALSE(decode_metadata_response(b, 12, true, &m, &err, 9));
  EXPECT_STREQ(err.reason, "array count exceeds frame");
  EXPECT_EQ(err.offset, 9u + 4);
}

// ---- FindCoordinator ---------------------------------------------------------

std::string find_coordinator_body(int16_t v) {
  const bool flex = v >= 3;
  std::string b;
  Writer w(&b);
  if (v >= 1) w.i32(0);
  if (v <= 3) {
    w.i16(0);
    if (v >= 1) w.string(flex, Str::none());
    w.i32(3);
    w.string(flex, Str::of("coord.kafka"));
    w.i32(9094);
  } else {
    w.array(true, 2);
    w.string(true, Str::of("group-a"));
    w.i32(3);
    w.string(true, Str::of("coord.kafka"));
    w.i32(9094);
    w.i16(0);
    w.string(true, Str::none());
    tags(w, true, true);
    w.string(true, Str::of("group-b"));
    w.i32(-1);
    w.string(true, Str::of(""));
    w.i32(-1);
    w.i16(15);  // COORDINATOR_NOT_AVAILABLE: not rewritten
    w.string(true, Str::of("not yet"));
    tags(w, true);
  }
  tags(w, flex, v == 5);
  return b;
}

TEST(KafkaFindCoordinatorResponse, EveryVersion) {
  for (int16_t v = 0; v <= 6; ++v) {
    SCOPED_TRACE("v" + std::to_string(v));
    const std::string body = find_coordinator_body(v);
    check_body_decoder(body, [v](std::string_view in, size_t* c, Error* e) {
      FindCoordinatorResponse f;
      const bool ok = decode_find_coordinator_response(in, v, &f, e);
      *c = f.consumed;
      return ok;
    }, "find_coordinator");
    FindCoordinatorResponse f;
    Error err;
    ASSERT_TRUE(decode_find_coordinator_response(body, v, &f, &err));
    ASSERT_EQ(f.coordinators.size(), v <= 3 ? 1u : 2u);
    EXPECT_EQ(f.coordinators[0].node.host.v, "coord.kafka");
    EXPECT_EQ(f.coordinators[0].node.port, 9094);
    if (v >= 4) {
      EXPECT_EQ(f.coordinators[0].key.v, "group-a");
    }
    EXPECT_EQ(encode_find_coordinator_response(f), body);
    std::string out;
    ASSERT_EQ(rewrite_broker_addresses(api::kFindCoordinator, v, body, to_sidecar(), &out, &err), Rewrite::kRewritten);
    FindCoordinatorResponse r;
    ASSERT_TRUE(decode_find_coordinator_response(out, v, &r, &err));
    EXPECT_EQ(r.coordinators[0].node.host.v, "127.0.0.1");
    EXPECT_EQ(r.coordinators[0].node.port, 20003);
    if (v >= 4) {
      EXPECT_EQ(r.coordinators[1].node.port, -1);  // an error entry keeps its address
      EXPECT_EQ(r.coordinators[1].error_message.v, "not yet");
    }
    EXPECT_EQ(r.tagged, f.tagged);
  }
}

// ---- DescribeCluster ---------------------------------------------------------

std::string describe_cluster_body(int16_t v) {
  std::string b;
  Writer w(&b);
  w.i32(0);
  w.i16(0);
  w.string(true, Str::none());
  if (v >= 1) w.i8(1);
  w.string(true, Str::of("cluster-x"));
  w.i32(1);
  w.array(true, 3);
  for (int i = 1; i <= 3; ++i) {
    w.i32(i);
    w.string(true, Str::of("kafka-" + std::to_string(i)));
    w.i32(9092);
    w.string(true, i == 2 ? Str::of("r2") : Str::none());
    if (v >= 2) w.boolean(i == 3);
    tags(w, true, i == 1);
  }
  w.i32(-2147483648);
  tags(w, true);
  return b;
}

TEST(KafkaDescribeClusterResponse, EveryVersion) {
  for (int16_t v = 0; v <= 2; ++v) {
    SCOPED_TRACE("v" + std::to_string(v));
    const std::string body = describe_cluster_body(v);
    check_body_decoder(body, [v](std::string_view in, size_t* c, Error* e) {
      DescribeClusterResponse d;
      const bool ok = decode_describe_cluster_response(in, v, &d, e);
      *c = d.consumed;
      return ok;
    }, "describe_cluster");
    DescribeClusterResponse d;
    Error err;
    ASSERT_TRUE(decode_describe_cluster_response(body, v, &d, &err));
    ASSERT_EQ(d.brokers.size(), 3u);
    EXPECT_EQ(d.brokers[2].host.v, "kafka-3");
    EXPECT_EQ(d.brokers[2].is_fenced, v >= 2);
    EXPECT_EQ(d.cluster_id.v, "cluster-x");
    EXPECT_EQ(encode_describe_cluster_response(d), body);
    std::string out;
    ASSERT_EQ(rewrite_broker_addresses(api::kDescribeCluster, v, body, to_sidecar(), &out, &err), Rewrite::kRewritten);
    DescribeClusterResponse r;
    ASSERT_TRUE(decode_describe_cluster_response(out, v, &r, &err));
    for (int i = 0; i < 3; ++i) EXPECT_EQ(r.brokers[i].port, 20001 + i);
    EXPECT_EQ(r.brokers[1].rack.v, "r2");
  }
}

TEST(KafkaRewrite, OtherApisAreNotApplicable) {
  std::string out;
  Error err;
  EXPECT_EQ(rewrite_broker_addresses(api::kProduce, 9, "", to_sidecar(), &out, &err), Rewrite::kNotApplicable);
  EXPECT_EQ(rewrite_broker_addresses(api::kMetadata, 12, "\x00", to_sidecar(), &out, &err), Rewrite::kError);
}

// ---- ApiVersions -------------------------------------------------------------

std::string api_versions_body(int16_t v, int16_t error = 0) {
  const bool flex = v >= 3;
  std::string b;
  Writer w(&b);
  w.i16(error);
  w.array(flex, 3);
  for (int16_t k : {int16_t{0}, int16_t{1}, int16_t{3}}) {
    w.i16(k);
    w.i16(k == 0 ? 3 : 0);
    w.i16(k == 0 ? 13 : k == 1 ? 17 : 13);
    tags(w, flex);
  }
  if (v >= 1) w.i32(0);
  tags(w, flex, true);  // supported features etc. live in tagged fields
  return b;
}

TEST(KafkaApiVersionsResponse, EveryVersionAndTheV0Fallback) {
  for (int16_t v = 0; v <= 4; ++v) {
    SCOPED_TRACE("v" + std::to_string(v));
    const std::string body = api_versions_body(v);
    check_body_decoder(body, [v](std::string_view in, size_t* c, Error* e) {
      ApiVersionsResponse a;
      const bool ok = decode_api_versions_response(in, v, &a, e);
      *c = a.consumed;
      return ok;
    }, "api_versions");
    ApiVersionsResponse a;
    Error err;
    ASSERT_TRUE(decode_api_versions_response(body, v, &a, &err));
    ASSERT_EQ(a.api_keys.size(), 3u);
    EXPECT_EQ(a.api_keys[1].max_version, 17);
    std::string patched = body;
    ASSERT_TRUE(cap_api_version(&patched, a, api::kFetch, 12));
    ApiVersionsResponse b;
    ASSERT_TRUE(decode_api_versions_response(patched, v, &b, &err));
    EXPECT_EQ(b.api_keys[1].max_version, 12);
    EXPECT_EQ(b.api_keys[0].max_version, 13);
    EXPECT_FALSE(cap_api_version(&patched, a, 99, 1));
  }
  // Cap what the codec cannot decode (a future Fetch v18) and Produce/Fetch to 12.
  {
    std::string body;
    Writer w(&body);
    w.i16(0);
    w.array(true, 3);
    for (auto [k, lo, hi] : {std::tuple<int16_t, int16_t, int16_t>{0, 3, 13}, {1, 4, 18}, {3, 0, 13}}) {
      w.i16(k);
      w.i16(lo);
      w.i16(hi);
      w.no_tagged_fields();
    }
    w.i32(0);
    w.no_tagged_fields();
    ApiVersionsResponse a;
    Error err;
    ASSERT_TRUE(decode_api_versions_response(body, 3, &a, &err));
    std::string capped = body;
    EXPECT_EQ(cap_to_decodable(&capped, a), 1);
    ApiVersionsResponse c;
    ASSERT_TRUE(decode_api_versions_response(capped, 3, &c, &err));
    EXPECT_EQ(c.api_keys[1].max_version, 17);
    EXPECT_EQ(c.api_keys[0].max_version, 13);
    capped = body;
    EXPECT_EQ(cap_to_decodable(&capped, a, 12), 2);
    ASSERT_TRUE(decode_api_versions_response(capped, 3, &c, &err));
    EXPECT_EQ(c.api_keys[0].max_version, 12);
    EXPECT_EQ(c.api_keys[1].max_version, 12);
    EXPECT_EQ(c.api_keys[2].max_version, 13);
  }
  // Asked with v4, the broker refused it and answered a v0 body.
  const std::string v0 = api_versions_body(0, 35);
  ApiVersionsResponse a;
  Error err;
  ASSERT_TRUE(decode_api_versions_response(v0, 4, &a, &err)) << err.describe();
  EXPECT_EQ(a.version, 0);
  EXPECT_EQ(a.error_code, 35);
  EXPECT_EQ(a.consumed, v0.size());
  ASSERT_TRUE(decode_api_versions_response(v0, 2, &a, &err)) << err.describe();
  EXPECT_EQ(a.version, 0);
}

// ---- Produce -------------------------------------------------------------------

std::string produce_body(int16_t v) {
  const bool flex = v >= 9;
  std::string b;
  Writer w(&b);
  if (v >= 3) w.string(flex, v == 10 ? Str::of("txn-1") : Str::none());
  w.i16(-1);
  w.i32(30000);
  w.array(flex, 2);
  for (int t = 0; t < 2; ++t) {
    if (v >= 13) {
      w.uuid(uuid_of(static_cast<uint8_t>(t)));
    } else {
      w.string(flex, Str::of(t == 0 ? "orders" : "payments"));
    }
    w.array(flex, t == 0 ? 2 : 1);
    for (int p = 0; p < (t == 0 ? 2 : 1); ++p) {
      w.i32(p);
      w.bytes(flex, p == 1 ? Str::none() : Str::of("RECORDS-" + std::to_string(t)));
      tags(w, flex);
    }
    tags(w, flex);
  }
  tags(w, flex);
  return b;
}

TEST(KafkaProduceRequest, EveryVersion) {
  for (int16_t v = 0; v <= 13; ++v) {
    SCOPED_TRACE("v" + std::to_string(v));
    const std::string body = produce_body(v);
    check_body_decoder(body, [v](std::string_view in, size_t* c, Error* e) {
      ProduceRequest p;
      const bool ok = decode_produce_request(in, v, &p, e);
      *c = p.consumed;
      return ok;
    }, "produce");
    ProduceRequest p;
    Error err;
    ASSERT_TRUE(decode_produce_request(body, v, &p, &err));
    EXPECT_EQ(p.acks, -1);
    EXPECT_EQ(p.timeout_ms, 30000);
    EXPECT_EQ(p.transactional_id, v == 10 ? Str::of("txn-1") : Str::none());
    ASSERT_EQ(p.topics.size(), 2u);
    if (v >= 13) {
      EXPECT_EQ(p.topics[1].topic_id, uuid_of(1));
    } else {
      EXPECT_EQ(p.topics[1].name.v, "payments");
    }
    ASSERT_EQ(p.topics[0].partitions.size(), 2u);
    EXPECT_EQ(p.topics[0].partitions[0].records.v, "RECORDS-0");
    EXPECT_EQ(body.substr(p.topics[0].partitions[0].records_offset, 9), "RECORDS-0");
    EXPECT_TRUE(p.topics[0].partitions[1].records.null);
    int16_t acks = 0;
    ASSERT_TRUE(produce_acks(body, v, &acks, &err));
    EXPECT_EQ(acks, -1);
    // Re-encoded whole: identical; with a topic removed: decodes to the rest.
    EXPECT_EQ(encode_produce_request(p, v), body);
    ProduceRequest sub = p;
    sub.topics.erase(sub.topics.begin());
    const std::string enc = encode_produce_request(sub, v);
    ProduceRequest q;
    ASSERT_TRUE(decode_produce_request(enc, v, &q, &err));
    ASSERT_EQ(q.topics.size(), 1u);
    EXPECT_EQ(q.topics[0].name, p.topics[1].name);
    EXPECT_EQ(q.topics[0].partitions[0].records, p.topics[1].partitions[0].records);
  }
}

std::string produce_response_body(int16_t v) {
  const bool flex = v >= 9;
  std::string b;
  Writer w(&b);
  w.array(flex, 2);
  for (int t = 0; t < 2; ++t) {
    if (v >= 13) {
      w.uuid(uuid_of(static_cast<uint8_t>(t)));
    } else {
      w.string(flex, Str::of(t == 0 ? "orders" : "payments"));
    }
    w.array(flex, 1);
    w.i32(0);
    w.i16(t == 0 ? 0 : 87);
    w.i64(t == 0 ? 1000 : -1);
    if (v >= 2) w.i64(-1);
    if (v >= 5) w.i64(0);
    if (v >= 8) {
      if (t == 1) {
        w.array(flex, 1);
        w.i32(0);
        w.string(flex, Str::of("bad record"));
        tags(w, flex);
        w.string(flex, Str::of("invalid record"));
      } else {
        w.array(flex, 0);
        w.string(flex, Str::none());
      }
    }
    tags(w, flex, t == 0 && v >= 10);  // current leader lives in a tagged field
    tags(w, flex);
  }
  if (v >= 1) w.i32(0);
  tags(w, flex, v >= 10);  // node endpoints
  return b;
}

TEST(KafkaProduceResponse, EveryVersionRoundTripAndDenialMerge) {
  for (int16_t v = 0; v <= 13; ++v) {
    SCOPED_TRACE("v" + std::to_string(v));
    const std::string body = produce_response_body(v);
    check_body_decoder(body, [v](std::string_view in, size_t* c, Error* e) {
      ProduceResponse r;
      const bool ok = decode_produce_response(in, v, &r, e);
      *c = r.consumed;
      return ok;
    }, "produce response");
    ProduceResponse r;
    Error err;
    ASSERT_TRUE(decode_produce_response(body, v, &r, &err));
    ASSERT_EQ(r.topics.size(), 2u);
    EXPECT_EQ(r.topics[1].partitions[0].error_code, 87);
    EXPECT_EQ(r.topics[0].partitions[0].base_offset, 1000);
    EXPECT_EQ(encode_produce_response(r, v), body);
    // Quota: throttle time patched in place.
    if (v >= 1) {
      std::string patched = body;
      ASSERT_TRUE(patch_throttle_time(&patched, r.throttle_time_offset, 1500));
      ProduceResponse t;
      ASSERT_TRUE(decode_produce_response(patched, v, &t, &err));
      EXPECT_EQ(t.throttle_time_ms, 1500);
    }
    // ACL: the denied topic of the request answered with error 29, merged.
    ProduceRequest denied;
    const std::string request = produce_body(v);  // the views point into it
    ASSERT_TRUE(decode_produce_request(request, v, &denied, &err));
    denied.topics.erase(denied.topics.begin());
    ProduceResponse merged = r;
    for (auto& t : produce_error_response(denied, 29).topics) merged.topics.push_back(t);
    const std::string enc = encode_produce_response(merged, v);
    ProduceResponse m;
    ASSERT_TRUE(decode_produce_response(enc, v, &m, &err)) << err.describe();
    ASSERT_EQ(m.topics.size(), 3u);
    EXPECT_EQ(m.topics[2].partitions[0].error_code, 29);
    EXPECT_EQ(m.topics[2].partitions[0].base_offset, -1);
    EXPECT_EQ(m.consumed, enc.size());
  }
}

// ---- Fetch -----------------------------------------------------------------------

std::string fetch_body(int16_t v) {
  const bool flex = v >= 12;
  std::string b;
  Writer w(&b);
  if (v >= 1) w.i32(0);
  if (v >= 7) {
    w.i16(0);
    w.i32(12345);
  }
  w.array(flex, 1);
  if (v >= 13) {
    w.uuid(uuid_of(9));
  } else {
    w.string(flex, Str::of("orders"));
  }
  w.array(flex, 2);
  for (int p = 0; p < 2; ++p) {
    w.i32(p);
    w.i16(0);
    w.i64(100);
    if (v >= 4) w.i64(100);
    if (v >= 5) w.i64(0);
    if (v >= 4) {
      if (p == 0) {
        w.array(flex, -1);
      } else {
        w.array(flex, 1);
        w.i64(7);
        w.i64(50);
        tags(w, flex);
      }
    }
    if (v >= 11) w.i32(-1);
    w.bytes(flex, Str::of(p == 0 ? "BATCHES" : ""));
    tags(w, flex, p == 1);
  }
  tags(w, flex);
  tags(w, flex, v >= 16);  // node endpoints travel as a tagged field
  return b;
}

TEST(KafkaFetchResponse, EveryVersion) {
  for (int16_t v = 0; v <= 17; ++v) {
    SCOPED_TRACE("v" + std::to_string(v));
    const std::string body = fetch_body(v);
    check_body_decoder(body, [v](std::string_view in, size_t* c, Error* e) {
      FetchResponse f;
      const bool ok = decode_fetch_response(in, v, &f, e);
      *c = f.consumed;
      return ok;
    }, "fetch");
    FetchResponse f;
    Error err;
    ASSERT_TRUE(decode_fetch_response(body, v, &f, &err));
    ASSERT_EQ(f.topics.size(), 1u);
    if (v < 13) {
      EXPECT_EQ(f.topics[0].name.v, "orders");
    }
    ASSERT_EQ(f.topics[0].partitions.size(), 2u);
    EXPECT_EQ(f.topics[0].partitions[0].records.v, "BATCHES");
    EXPECT_EQ(f.topics[0].partitions[1].high_watermark, 100);
    EXPECT_EQ(f.session_id, v >= 7 ? 12345 : 0);
    if (v >= 1) {
      std::string patched = body;
      ASSERT_TRUE(patch_throttle_time(&patched, f.throttle_time_offset, 250));
      FetchResponse t;
      ASSERT_TRUE(decode_fetch_response(patched, v, &t, &err));
      EXPECT_EQ(t.throttle_time_ms, 250);
    }
  }
}

std::string fetch_request_body(int16_t v) {
  const bool flex = v >= 12;
  std::string b;
  Writer w(&b);
  if (v <= 14) w.i32(-1);
  w.i32(500);
  w.i32(1);
  if (v >= 3) w.i32(52428800);
  if (v >= 4) w.i8(1);
  if (v >= 7) {
    w.i32(77);
    w.i32(3);
  }
  w.array(flex, 2);
  for (int t = 0; t < 2; ++t) {
    if (v >= 13) {
      w.uuid(uuid_of(static_cast<uint8_t>(t * 16)));
    } else {
      w.string(flex, Str::of(t == 0 ? "secret" : "orders"));
    }
    w.array(flex, 2);
    for (int p = 0; p < 2; ++p) {
      w.i32(p);
      if (v >= 9) w.i32(5);
      w.i64(100 * (p + 1));
      if (v >= 12) w.i32(5);
      if (v >= 5) w.i64(0);
      w.i32(1048576);
      tags(w, flex, v >= 17 && p == 1);  // replica directory id
    }
    tags(w, flex);
  }
  if (v >= 7) {
    w.array(flex, 1);
    if (v >= 13) {
      w.uuid(uuid_of(99));
    } else {
      w.string(flex, Str::of("old"));
    }
    i32s(w, flex, {0, 1});
    tags(w, flex);
  }
  if (v >= 11) w.string(flex, Str::of("rack-a"));
  tags(w, flex, v >= 12);  // cluster id
  return b;
}

TEST(KafkaFetchRequest, EveryVersionAndDroppingADeniedTopic) {
  for (int16_t v = 0; v <= 17; ++v) {
    SCOPED_TRACE("v" + std::to_string(v));
    const std::string body = fetch_request_body(v);
    check_body_decoder(body, [v](std::string_view in, size_t* c, Error* e) {
      FetchRequest f;
      const bool ok = decode_fetch_request(in, v, &f, e);
      *c = f.consumed;
      return ok;
    }, "fetch request");
    FetchRequest f;
    Error err;
    ASSERT_TRUE(decode_fetch_request(body, v, &f, &err));
    ASSERT_EQ(f.topics.size(), 2u);
    EXPECT_EQ(f.topics[0].partitions[1].fetch_offset, 200);
    EXPECT_EQ(f.max_wait_ms, 500);
    if (v >= 7) {
      EXPECT_EQ(f.session_id, 77);
      EXPECT_EQ(f.session_epoch, 3);
      EXPECT_EQ(load_be32(body.data() + f.session_offset), 77u);
      EXPECT_EQ(f.forgotten.size(), 1u);
    }
    if (v < 13) {
      EXPECT_EQ(f.topics[1].name.v, "orders");
    }
    // Keeping everything is the identity; dropping "secret" leaves "orders".
    EXPECT_EQ(splice_array(body, f.topics_span, {true, true}), body);
    const std::string kept = splice_array(body, f.topics_span, {false, true});
    FetchRequest k;
    ASSERT_TRUE(decode_fetch_request(kept, v, &k, &err)) << err.describe();
    ASSERT_EQ(k.topics.size(), 1u);
    EXPECT_EQ(k.topics[0].name, f.topics[1].name);
    EXPECT_EQ(k.topics[0].topic_id, f.topics[1].topic_id);
    EXPECT_EQ(k.consumed, kept.size());
    // The broker's response for "orders" plus the local answer for "secret".
    const std::string resp = fetch_body(v);
    FetchResponse fr;
    ASSERT_TRUE(decode_fetch_response(resp, v, &fr, &err));
    const std::string merged = splice_array(resp, fr.topics_span, {}, fetch_error_topics({f.topics[0]}, v, 29), 1);
    FetchResponse m;
    ASSERT_TRUE(decode_fetch_response(merged, v, &m, &err)) << err.describe();
    ASSERT_EQ(m.topics.size(), 2u);
    EXPECT_EQ(m.consumed, merged.size());
    ASSERT_EQ(m.topics[1].partitions.size(), 2u);
    EXPECT_EQ(m.topics[1].partitions[0].error_code, 29);
    EXPECT_EQ(m.topics[1].partitions[1].records.v.size(), 0u);
    EXPECT_EQ(m.topics[0].partitions[0].records.v, "BATCHES");
  }
}

TEST(KafkaMessages, UnknownVersionsAreRefusedNotMisread) {
  Error err;
  MetadataResponse m;
  EXPECT_FALSE(decode_metadata_response(metadata_body(13), 14, true, &m, &err, 8));
  EXPECT_STREQ(err.reason, "unsupported api version");
  EXPECT_EQ(err.offset, 8u);
  ProduceRequest p;
  EXPECT_FALSE(decode_produce_request(produce_body(13), 14, &p, &err));
  EXPECT_FALSE(decode_produce_request(produce_body(13), -1, &p, &err));
  FetchResponse f;
  EXPECT_FALSE(decode_fetch_response(fetch_body(17), 18, &f, &err));
  std::string out;
  EXPECT_EQ(rewrite_broker_addresses(api::kMetadata, 14, metadata_body(13), to_sidecar(), &out, &err),
            Rewrite::kUnsupportedVersion);
  EXPECT_EQ(rewrite_broker_addresses(api::kDescribeCluster, 3, describe_cluster_body(2), to_sidecar(), &out, &err),
            Rewrite::kUnsupportedVersion);
}

TEST(KafkaMessages, MaxDecodableVersions) {
  EXPECT_EQ(max_decodable_version(api::kProduce, false), 13);
  EXPECT_EQ(max_decodable_version(api::kProduce, true), 13);
  EXPECT_EQ(max_decodable_version(api::kFetch, true), 17);
  EXPECT_EQ(max_decodable_version(api::kFetch, false), 17);
  EXPECT_EQ(max_decodable_version(api::kMetadata, true), 13);
  EXPECT_EQ(max_decodable_version(api::kJoinGroup, true), -1);
}

}  // namespace
}  // namespace evmesh::kafka
