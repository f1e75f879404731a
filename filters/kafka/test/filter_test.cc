// The Kafka filter against a fake Envoy: what reaches the broker and the
// client, with real clients' frames and built ones, fed whole and in pieces.
#include "filters/kafka/filter/kafka_filter.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "filters/common/test/fake_envoy.h"
#include "filters/kafka/codec/api_keys.h"
#include "filters/kafka/test/batch_builder.h"
#include "filters/kafka/test/test_util.h"

namespace evmesh {
const std::vector<FilterKind>& filter_kinds() {
  static const std::vector<FilterKind> kinds = {{"kafka", &kafka::make_kafka_config}};
  return kinds;
}
}  // namespace evmesh

namespace evmesh::kafka {
namespace {

using evmesh::testing::fake_envoy;
using testing::make_batch;
using testing::read_file;
using testing::sample_records;

int config_token, filter_token;

struct Harness {
  std::unique_ptr<FilterConfig> cfg;
  std::unique_ptr<NetworkFilter> f;
  std::string upstream, client;
  std::vector<int> statuses;

  explicit Harness(const std::string& json, size_t chunk = 0) {
    fake_envoy().reset();
    fake_envoy().chunk = chunk;
    std::string err;
    cfg = make_kafka_config(&config_token, json, &err);
    EXPECT_TRUE(cfg) << err;
    f = cfg->create(&filter_token);
    f->on_new_connection();
  }
  void client_sends(std::string_view d) {
    auto& fe = fake_envoy();
    fe.read_buf.append(d.data(), d.size());
    const int st = f->on_read(fe.read_buf.size(), false);
    statuses.push_back(st);
    upstream += fe.injected;  // handed on during on_read, ahead of the buffer
    fe.injected.clear();
    if (st == EVM_NET_CONTINUE) {
      upstream += fe.read_buf;
      fe.read_buf.clear();
    }
  }
  void server_sends(std::string_view d) {
    auto& fe = fake_envoy();
    fe.write_buf.assign(d.data(), d.size());
    if (f->on_write(d.size(), false) == EVM_NET_CONTINUE) client += fe.write_buf;
    fe.write_buf.clear();
  }
  void client_in_pieces(const std::string& d, size_t step) {
    if (step == 0) return client_sends(d);
    for (size_t i = 0; i < d.size(); i += step) client_sends(std::string_view(d).substr(i, step));
  }
  void server_in_pieces(const std::string& d, size_t step) {
    if (step == 0) return server_sends(d);
    for (size_t i = 0; i < d.size(); i += step) server_sends(std::string_view(d).substr(i, step));
  }
  int64_t metric(const std::string& n) const { return fake_envoy().metric("kafka.t." + n); }
};

const char* kBase = R"({"stat_prefix":"t","bootstrap_port":19092,"advertised_host":"127.0.0.1",
  "nodes":[{"id":1,"port":19101},{"id":2,"port":19102},{"id":3,"port":19103},{"id":111,"port":19111}])";

std::string cfg_with(const std::string& extra) { return std::string(kBase) + (extra.empty() ? "" : "," + extra) + "}"; }

// Frames of a byte stream (size prefix removed).
std::vector<std::string> split_frames(const std::string& wire) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i + 4 <= wire.size()) {
    const uint32_t n = load_be32(wire.data() + i);
    EXPECT_LE(i + 4 + n, wire.size());
    out.push_back(wire.substr(i + 4, n));
    i += 4 + n;
  }
  EXPECT_EQ(i, wire.size());
  return out;
}

std::string produce_frame(int32_t corr, int16_t version, int16_t acks,
                          const std::vector<std::pair<std::string, std::string>>& topic_batches,
                          const std::string& client_id = "producer-1") {
  ProduceRequest req;
  req.acks = acks;
  req.timeout_ms = 1000;
  for (const auto& [name, batch] : topic_batches) {
    ProduceTopic t;
    t.name = Str::of(name);
    t.partitions.push_back({0, Str::of(batch), 0});
    req.topics.push_back(t);
  }
  RequestHeader h;
  h.api_key = api::kProduce;
  h.api_version = version;
  h.correlation_id = corr;
  h.client_id = Str::of(client_id);
  h.header_version = request_header_version(api::kProduce, version);
  std::string hb;
  encode_request_header(h, &hb);
  return make_frame(hb, encode_produce_request(req, version));
}

std::string produce_response_frame(int32_t corr, int16_t version, const std::vector<std::string>& topics) {
  ProduceResponse r;
  for (const auto& name : topics) {
    ProduceTopicResponse t;
    t.name = Str::of(name);
    ProducePartitionResponse p;
    p.index = 0;
    p.base_offset = 42;
    t.partitions.push_back(p);
    r.topics.push_back(t);
  }
  std::string hb;
  encode_response_header(corr, response_header_version(api::kProduce, version), &hb);
  return make_frame(hb, encode_produce_response(r, version));
}

ProduceRequest decode_upstream_produce(const std::string& payload, int16_t version) {
  RequestHeader h;
  Error err;
  EXPECT_EQ(decode_request_header(payload, true, &h, &err), Status::kOk);
  ProduceRequest req;
  EXPECT_TRUE(decode_produce_request(std::string_view(payload).substr(h.size), version, &req, &err))
      << err.describe();
  return req;
}

ProduceResponse decode_client_produce(const std::string& payload, int16_t version, std::string* storage) {
  *storage = payload;
  ResponseHeader h;
  Error err;
  EXPECT_EQ(decode_response_header(*storage, response_header_version(api::kProduce, version), &h, &err),
            Status::kOk);
  ProduceResponse r;
  EXPECT_TRUE(decode_produce_response(std::string_view(*storage).substr(h.size), version, &r, &err))
      << err.describe();
  return r;
}

std::string fixtures_dir() {
  for (const char* d : {"filters/kafka/test/fixtures", "../filters/kafka/test/fixtures"}) {
    if (std::filesystem::exists(d)) return d;
  }
  return "filters/kafka/test/fixtures";
}

// Every captured client exchange passes through a filter with every policy
// configured (none of them denying): requests reach the broker byte for byte;
// responses reach the client unchanged except for the documented rewrites.
TEST(KafkaFilter, RealClientTrafficPassesWithPoliciesConfigured) {
  const std::string json = cfg_with(
      R"("acl":{"produce":{"allow":["*"],"deny":["never"]},"consume":{"deny":["never"]}},
         "topics":[{"name":"ck","pattern":"ck-*"}],"durability":[{"topic":"never","min_acks":"all"}],
         "max_batch_bytes":1048576,"quotas":[{"topic":"*","records_per_second":1000000}])");
  size_t pairs = 0;
  for (const std::string dir : {fixtures_dir(), fixtures_dir() + "/kafka4"}) {
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      const std::string p = e.path().string();
      if (p.size() < 8 || p.substr(p.size() - 8) != ".c2s.bin") continue;
      const std::string c2s = read_file(p);
      const std::string s2c_path = p.substr(0, p.size() - 8) + ".s2c.bin";
      const std::string s2c = std::filesystem::exists(s2c_path) ? read_file(s2c_path) : std::string();
      const std::string name = e.path().filename().string();
      for (size_t step : {size_t(0), size_t(1), size_t(13)}) {
        SCOPED_TRACE(name + " step " + std::to_string(step));
        Harness h(json, step == 0 ? 0 : 5);
        h.client_in_pieces(c2s, step);
        EXPECT_EQ(h.upstream, c2s);
        h.server_in_pieces(s2c, step);
        EXPECT_FALSE(fake_envoy().closed) << (fake_envoy().logs.empty() ? "" : fake_envoy().logs.back());
        EXPECT_EQ(h.metric("c2s.protocol_errors"), 0);
        EXPECT_EQ(h.metric("s2c.protocol_errors"), 0);
        const bool rewritten = name.find("metadata") != std::string::npos ||
                               name.find("find_coordinator") != std::string::npos ||
                               name.find("describe_cluster") != std::string::npos ||
                               name.find("api_versions") != std::string::npos;
        if (!rewritten) EXPECT_EQ(h.client, s2c);
        if (name.find("metadata") != std::string::npos && !s2c.empty()) {
          EXPECT_NE(h.client, s2c);
          EXPECT_GT(h.metric("addresses_rewritten"), 0);
        }
        if (name.find("_produce_v") != std::string::npos) {
          EXPECT_GT(h.metric("api.Produce.requests"), 0);
        }
      }
      ++pairs;
    }
  }
  EXPECT_GT(pairs, 50u);
}

TEST(KafkaFilter, MetadataAddressesPointAtTheSidecar) {
  const std::string c2s = read_file(fixtures_dir() + "/kafka4/ck_metadata_v13.c2s.bin");
  const std::string s2c = read_file(fixtures_dir() + "/kafka4/ck_metadata_v13.s2c.bin");
  if (c2s.empty()) GTEST_FAIL() << "fixture missing";
  Harness h(cfg_with(""));
  h.client_sends(c2s);
  h.server_sends(s2c);
  auto frames = split_frames(h.client);
  ASSERT_EQ(frames.size(), 1u);
  ResponseHeader rh;
  Error err;
  ASSERT_EQ(decode_response_header(frames[0], 1, &rh, &err), Status::kOk);
  MetadataResponse m;
  ASSERT_TRUE(decode_metadata_response(std::string_view(frames[0]).substr(rh.size), 13, false, &m, &err))
      << err.describe();
  ASSERT_FALSE(m.brokers.empty());
  for (const auto& b : m.brokers) {
    EXPECT_EQ(b.host.v, "127.0.0.1");
    const uint32_t want = b.node_id == 1 ? 19101u : 19092u;
    EXPECT_EQ(static_cast<uint32_t>(b.port), want) << "node " << b.node_id;
  }
}

TEST(KafkaFilter, ApiVersionsCapsProduceAndFetch) {
  const std::string c2s = read_file(fixtures_dir() + "/ck_api_versions_v3.c2s.bin");
  const std::string s2c = read_file(fixtures_dir() + "/ck_api_versions_v3.s2c.bin");
  Harness h(cfg_with(""));
  h.client_sends(c2s);
  h.server_sends(s2c);
  auto frames = split_frames(h.client);
  ASSERT_EQ(frames.size(), 1u);
  ApiVersionsResponse r;
  Error err;
  ASSERT_TRUE(decode_api_versions_response(std::string_view(frames[0]).substr(4), 3, &r, &err));
  for (const auto& a : r.api_keys) {
    if (a.api_key == api::kProduce || a.api_key == api::kFetch) EXPECT_LE(a.max_version, 12);
  }
  EXPECT_EQ(h.metric("api_versions_capped"), 1);
}

class ProduceAcl : public ::testing::TestWithParam<size_t> {};

TEST_P(ProduceAcl, DeniedTopicAnsweredAllowedTopicGoesThrough) {
  const size_t step = GetParam();
  Harness h(cfg_with(R"("acl":{"produce":{"deny":["secret*"]}},"topics":[{"name":"ok","pattern":"ok"}])"),
            step ? 3 : 0);
  const std::string batch = make_batch(sample_records(3), 0);
  const std::string req = produce_frame(7, 9, -1, {{"ok", batch}, {"secret.x", batch}});
  h.client_in_pieces(req, step);
  auto up = split_frames(h.upstream);
  ASSERT_EQ(up.size(), 1u);
  ProduceRequest got = decode_upstream_produce(up[0], 9);
  ASSERT_EQ(got.topics.size(), 1u);
  EXPECT_EQ(got.topics[0].name.v, "ok");
  EXPECT_EQ(got.topics[0].partitions[0].records.v, batch);
  h.server_in_pieces(produce_response_frame(7, 9, {"ok"}), step);
  auto cl = split_frames(h.client);
  ASSERT_EQ(cl.size(), 1u);
  std::string storage;
  ProduceResponse r = decode_client_produce(cl[0], 9, &storage);
  ASSERT_EQ(r.topics.size(), 2u);
  EXPECT_EQ(r.topics[0].name.v, "ok");
  EXPECT_EQ(r.topics[0].partitions[0].error_code, 0);
  EXPECT_EQ(r.topics[1].name.v, "secret.x");
  EXPECT_EQ(r.topics[1].partitions[0].error_code, 29);
  EXPECT_NE(r.topics[1].partitions[0].error_message.v.find("denied"), std::string_view::npos);
  EXPECT_EQ(h.metric("topic.other.produce_denied"), 1);
  EXPECT_EQ(h.metric("topic.ok.produced_records"), 3);
  EXPECT_EQ(h.metric("topic.ok.produced_bytes"), static_cast<int64_t>(batch.size()));
  EXPECT_EQ(h.metric("denied"), 1);
  EXPECT_FALSE(fake_envoy().closed);
  // The connection stays usable: a second, allowed request goes through unchanged.
  const std::string req2 = produce_frame(8, 9, -1, {{"ok", batch}});
  h.client_in_pieces(req2, step);
  EXPECT_EQ(h.upstream.substr(h.upstream.size() - req2.size()), req2);
}

INSTANTIATE_TEST_SUITE_P(Steps, ProduceAcl, ::testing::Values(0, 1, 7, 64));

// A Produce frame under policies is held in Envoy's buffer until its verdict
// (zero copy when nothing is refused); past half the buffer limit its bytes
// move into the filter instead, so reads never stop at the high watermark.
class ProduceHold : public ::testing::TestWithParam<std::tuple<uint32_t, bool>> {};

TEST_P(ProduceHold, HeldOrCapturedNeverLostOrReordered) {
  const auto [limit, deny] = GetParam();
  Harness h(cfg_with(R"("acl":{"produce":{"deny":["secret*"]}})"), 5);
  fake_envoy().buffer_limit = limit;
  const std::string batch = make_batch(sample_records(20), 0);
  const std::string first = produce_frame(1, 9, -1, {{"ok", batch}});
  const std::string second = produce_frame(2, 9, -1, {{"ok", batch}, {deny ? "secret" : "ok2", batch}});
  const std::string wire = first + second;
  size_t held_reads = 0;
  for (size_t i = 0; i < wire.size(); i += 11) {
    h.client_sends(std::string_view(wire).substr(i, 11));
    if (h.statuses.back() == EVM_NET_STOP_ITERATION) ++held_reads;
    // Never more than the hold limit sits in Envoy's read buffer.
    if (limit != 0) EXPECT_LE(fake_envoy().read_buf.size(), limit / 4 * 3 + 11);
  }
  EXPECT_GT(held_reads, 0u);
  auto up = split_frames(h.upstream);
  ASSERT_EQ(up.size(), 2u);
  EXPECT_EQ(up[0], first.substr(4));
  ProduceRequest got = decode_upstream_produce(up[1], 9);
  ASSERT_EQ(got.topics.size(), deny ? 1u : 2u);
  if (!deny) EXPECT_EQ(up[1], second.substr(4));
  EXPECT_EQ(h.metric("topic.other.produced_records"), deny ? 40 : 60);
  EXPECT_EQ(h.metric("denied"), deny ? 1 : 0);
  EXPECT_FALSE(fake_envoy().closed);
}

// Pipelined Produce frames in big reads: every read ends inside a frame, and the
// decided frames in front of it are handed on (injected) instead of held, so
// the held part stays about one frame.
TEST(KafkaFilter, DecidedFramesAheadOfAHeldOneAreHandedOn) {
  Harness h(cfg_with(R"("acl":{"produce":{"deny":["secret*"]}})"));
  fake_envoy().buffer_limit = 16u << 20;
  const std::string batch = make_batch(sample_records(3000), 0);  // ~100 KiB
  std::string wire;
  for (int i = 0; i < 12; ++i) wire += produce_frame(i, 9, -1, {{"ok", batch}});
  size_t max_held = 0;
  const size_t step = wire.size() / 3 + 17;  // reads end inside frames
  for (size_t i = 0; i < wire.size(); i += step) {
    h.client_sends(std::string_view(wire).substr(i, step));
    max_held = std::max(max_held, fake_envoy().read_buf.size());
  }
  EXPECT_EQ(h.upstream, wire);
  EXPECT_LT(max_held, 2 * (batch.size() + 200));
  EXPECT_EQ(h.metric("topic.other.produced_records"), 12 * 3000);
}

INSTANTIATE_TEST_SUITE_P(Limits, ProduceHold,
                         ::testing::Combine(::testing::Values(0u, 256u, 100000u), ::testing::Bool()));

// A client id longer than the head the splitter hands over (512 bytes): the
// frame is captured whole and judged by the same walk as any Produce.
TEST(KafkaFilter, LongClientIdProduceIsJudgedTheSameWay) {
  for (size_t step : {size_t(0), size_t(7)}) {
    Harness h(cfg_with(R"("acl":{"produce":{"deny":["secret*"]}},"topics":[{"name":"ok","pattern":"ok"}])"),
              step ? 3 : 0);
    const std::string batch = make_batch(sample_records(3), 0);
    const std::string cid(700, 'c');
    h.client_in_pieces(produce_frame(7, 9, -1, {{"ok", batch}, {"secret.x", batch}}, cid), step);
    auto up = split_frames(h.upstream);
    ASSERT_EQ(up.size(), 1u);
    ProduceRequest got = decode_upstream_produce(up[0], 9);
    ASSERT_EQ(got.topics.size(), 1u);
    EXPECT_EQ(got.topics[0].name.v, "ok");
    EXPECT_EQ(h.metric("topic.ok.produced_records"), 3);
    EXPECT_EQ(h.metric("denied"), 1);
    h.server_sends(produce_response_frame(7, 9, {"ok"}));
    std::string storage;
    ProduceResponse r = decode_client_produce(split_frames(h.client)[0], 9, &storage);
    ASSERT_EQ(r.topics.size(), 2u);
    EXPECT_EQ(r.topics[1].partitions[0].error_code, 29);
    // Allowed: forwarded byte for byte.
    const std::string ok = produce_frame(8, 9, -1, {{"ok", batch}}, cid);
    h.client_in_pieces(ok, step);
    EXPECT_EQ(h.upstream.substr(h.upstream.size() - ok.size()), ok);
  }
}

TEST(KafkaFilter, AllTopicsDeniedStillAnsweredInOrder) {
  Harness h(cfg_with(R"("acl":{"produce":{"allow":["ok"]}})"));
  const std::string batch = make_batch(sample_records(1), 0);
  h.client_sends(produce_frame(1, 9, 1, {{"ok", batch}}) + produce_frame(2, 9, 1, {{"nope", batch}}));
  auto up = split_frames(h.upstream);
  ASSERT_EQ(up.size(), 2u);
  EXPECT_EQ(decode_upstream_produce(up[1], 9).topics.size(), 0u);  // forwarded empty: the broker answers in order
  h.server_sends(produce_response_frame(1, 9, {"ok"}) + produce_response_frame(2, 9, {}));
  auto cl = split_frames(h.client);
  ASSERT_EQ(cl.size(), 2u);
  std::string s1, s2;
  EXPECT_EQ(decode_client_produce(cl[0], 9, &s1).topics.size(), 1u);
  ProduceResponse r2 = decode_client_produce(cl[1], 9, &s2);
  ASSERT_EQ(r2.topics.size(), 1u);
  EXPECT_EQ(r2.topics[0].partitions[0].error_code, 29);
}

TEST(KafkaFilter, DurabilityAndBatchSize) {
  Harness h(cfg_with(R"("durability":[{"topic":"pay*","min_acks":"all"}],"max_batch_bytes":200)"));
  const std::string small = make_batch(sample_records(1), 0);
  const std::string big = make_batch(sample_records(40), 0);
  ASSERT_GT(big.size(), 200u);
  ASSERT_LE(small.size(), 200u);
  h.client_sends(produce_frame(1, 9, 1, {{"payments", small}, {"logs", big}, {"logs2", small}}));
  auto up = split_frames(h.upstream);
  ASSERT_EQ(up.size(), 1u);
  ProduceRequest got = decode_upstream_produce(up[0], 9);
  ASSERT_EQ(got.topics.size(), 1u);
  EXPECT_EQ(got.topics[0].name.v, "logs2");
  h.server_sends(produce_response_frame(1, 9, {"logs2"}));
  std::string s;
  ProduceResponse r = decode_client_produce(split_frames(h.client)[0], 9, &s);
  ASSERT_EQ(r.topics.size(), 3u);
  EXPECT_EQ(r.topics[1].name.v, "payments");
  EXPECT_EQ(r.topics[1].partitions[0].error_code, 21);
  EXPECT_NE(r.topics[1].partitions[0].error_message.v.find("requires acks=all"), std::string_view::npos);
  EXPECT_EQ(r.topics[2].name.v, "logs");
  EXPECT_EQ(r.topics[2].partitions[0].error_code, 10);
  EXPECT_EQ(h.metric("durability_denied"), 1);
  EXPECT_EQ(h.metric("batch_too_large"), 1);
  // acks=all is accepted for the topic that requires it.
  h.client_sends(produce_frame(2, 9, -1, {{"payments", small}}));
  EXPECT_EQ(split_frames(h.upstream).size(), 2u);
}

TEST(KafkaFilter, AcksZeroRefusedClosesLikeKafka) {
  Harness h(cfg_with(R"("durability":[{"topic":"pay*","min_acks":"all"}])"));
  h.client_sends(produce_frame(1, 9, 0, {{"payments", make_batch(sample_records(1), 0)}}));
  EXPECT_TRUE(h.upstream.empty());
  EXPECT_TRUE(fake_envoy().closed);
  EXPECT_EQ(h.metric("durability_denied"), 1);
  EXPECT_EQ(h.metric("c2s.protocol_errors"), 0);
  ASSERT_FALSE(fake_envoy().logs.empty());
  EXPECT_NE(fake_envoy().logs.back().find("acks=0 refused"), std::string::npos);
}

TEST(KafkaFilter, FetchDeniedTopicAnsweredInsideTheResponse) {
  const std::string c2s = read_file(fixtures_dir() + "/kp_fetch_v12.c2s.bin");
  const std::string s2c = read_file(fixtures_dir() + "/kp_fetch_v12.s2c.bin");
  Harness h(cfg_with(R"("acl":{"consume":{"deny":["kp-gzip"]}})"));
  h.client_sends(c2s);
  auto up = split_frames(h.upstream);
  ASSERT_EQ(up.size(), 1u);
  RequestHeader rq;
  Error err;
  ASSERT_EQ(decode_request_header(up[0], true, &rq, &err), Status::kOk);
  FetchRequest fr;
  ASSERT_TRUE(decode_fetch_request(std::string_view(up[0]).substr(rq.size), 12, &fr, &err)) << err.describe();
  for (const auto& t : fr.topics) EXPECT_NE(t.name.v, "kp-gzip");
  EXPECT_EQ(fr.session_id, 0);
  EXPECT_EQ(fr.session_epoch, -1);
  h.server_sends(s2c);
  auto cl = split_frames(h.client);
  ASSERT_EQ(cl.size(), 1u);
  ResponseHeader rh;
  ASSERT_EQ(decode_response_header(cl[0], 1, &rh, &err), Status::kOk);
  FetchResponse resp;
  ASSERT_TRUE(decode_fetch_response(std::string_view(cl[0]).substr(rh.size), 12, &resp, &err)) << err.describe();
  // The captured broker response answered kp-gzip too (it saw the original
  // request); the sidecar's answer for it is appended at the end.
  ASSERT_FALSE(resp.topics.empty());
  EXPECT_EQ(resp.topics.back().name.v, "kp-gzip");
  ASSERT_FALSE(resp.topics.back().partitions.empty());
  for (const auto& p : resp.topics.back().partitions) EXPECT_EQ(p.error_code, 29);
  EXPECT_EQ(h.metric("topic.other.fetch_denied"), 1);
}

// A request that puts the client's quota into debt is held with everything
// after it (Kafka mutes a throttled channel) until the debt is repaid; its
// response reports throttle_time_ms. Pipelined requests wait too, in order.
TEST(KafkaFilter, ProduceQuotaHoldsReadsAndReportsThrottle) {
  for (const bool policy : {false, true}) {
    SCOPED_TRACE(policy ? "with a produce ACL" : "streamed");
    Harness h(cfg_with(std::string(R"("quotas":[{"topic":"ok","records_per_second":10}])") +
                       (policy ? R"(,"acl":{"produce":{"deny":["x"]}})" : "")));
    const std::string batch = make_batch(sample_records(13), 0);  // 3 over the one-second burst: 0.3 s
    const std::string wire = produce_frame(1, 9, -1, {{"ok", batch}}) + produce_frame(2, 9, -1, {{"ok", batch}});
    const auto t0 = std::chrono::steady_clock::now();
    h.client_sends(wire);
    EXPECT_EQ(h.statuses.back(), EVM_NET_STOP_ITERATION);
    EXPECT_TRUE(h.upstream.empty());
    EXPECT_EQ(h.metric("throttled"), 1);
    // The timer fires once the debt (16 records over at 10/s) is repaid.
    for (int i = 0; i < 400 && fake_envoy().committed_count() == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_GE(fake_envoy().committed_count(), 1u);
    while (fake_envoy().continue_reading == 0 &&
           std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5)) {
      const size_t n = fake_envoy().committed_count();
      h.f->on_scheduled(1);
      for (int i = 0; i < 400 && fake_envoy().continue_reading == 0 && fake_envoy().committed_count() == n; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    ASSERT_EQ(fake_envoy().continue_reading, 1);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1400));
    h.upstream += fake_envoy().read_buf;
    fake_envoy().read_buf.clear();
    EXPECT_EQ(h.upstream, wire);  // both, in order, unchanged
    h.server_sends(produce_response_frame(1, 9, {"ok"}));
    std::string s;
    ProduceResponse r = decode_client_produce(split_frames(h.client)[0], 9, &s);
    EXPECT_GE(r.throttle_time_ms, 250);
    EXPECT_LE(r.throttle_time_ms, 1700);
    EXPECT_EQ(fake_envoy().schedulers, 1);
  }
}

// More than kInFlightHigh requests awaiting answers hold the client's reads
// (Kafka reads one request at a time); answers release them. Nothing is closed.
TEST(KafkaFilter, ManyRequestsInFlightAreHeldNotClosed) {
  Harness h(cfg_with(""));
  const std::string batch = make_batch(sample_records(1), 0);
  std::string wire;
  for (int i = 0; i < 5000; ++i) wire += produce_frame(i, 9, 1, {{"ok", batch}});
  h.client_sends(wire);
  EXPECT_FALSE(fake_envoy().closed);
  EXPECT_EQ(h.statuses.back(), EVM_NET_STOP_ITERATION);
  std::string answers;
  for (int i = 0; i < 3000; ++i) answers += produce_response_frame(i, 9, {"ok"});
  h.server_sends(answers);
  EXPECT_EQ(fake_envoy().continue_reading, 1);
  h.upstream += fake_envoy().read_buf;
  fake_envoy().read_buf.clear();
  EXPECT_EQ(h.upstream, wire);
  EXPECT_EQ(h.metric("c2s.protocol_errors"), 0);
}

TEST(KafkaFilter, StreamingProduceCountsWithoutCopy) {
  Harness h(cfg_with(R"("topics":[{"name":"ok","pattern":"o?"}])"), 5);
  const std::string batch = make_batch(sample_records(4), 2);
  const std::string req = produce_frame(1, 9, -1, {{"ok", batch}});
  h.client_in_pieces(req, 9);
  EXPECT_EQ(h.upstream, req);
  EXPECT_EQ(h.metric("topic.ok.produced_records"), 4);
  // Once the head is in, every later piece is forwarded as it comes.
  EXPECT_EQ(h.statuses.back(), EVM_NET_CONTINUE);
  Harness whole(cfg_with(R"("topics":[{"name":"ok","pattern":"o?"}])"));
  whole.client_sends(req);
  EXPECT_EQ(whole.statuses.back(), EVM_NET_CONTINUE);
  EXPECT_EQ(whole.upstream, req);
}

struct Malformed {
  const char* name;
  std::string bytes;
  bool crc;
};

TEST(KafkaFilter, MalformedFramesCloseTheConnection) {
  std::string neg("\xff\xff\xff\xf0", 4);
  std::string huge("\x7f\x00\x00\x00", 4);
  std::string unknown_key;
  {
    std::string hb;
    Writer w(&hb);
    w.i16(999);
    w.i16(0);
    w.i32(1);
    w.i16(-1);
    unknown_key = make_frame(hb, "");
  }
  std::string bad_version;
  {
    std::string hb;
    Writer w(&hb);
    w.i16(api::kMetadata);
    w.i16(99);
    w.i32(1);
    w.i16(-1);
    bad_version = make_frame(hb, "");
  }
  std::string batch = make_batch(sample_records(2), 0);
  std::string bad_crc_batch = batch;
  bad_crc_batch[bad_crc_batch.size() - 2] ^= 0x55;
  const std::string bad_crc = produce_frame(1, 9, -1, {{"ok", bad_crc_batch}});
  std::string truncated = produce_frame(1, 9, -1, {{"ok", batch}});
  truncated = truncated.substr(0, truncated.size() - 20);
  store_be32(truncated.data(), static_cast<uint32_t>(truncated.size() - 4));
  const std::vector<Malformed> cases = {{"negative size", neg, false},      {"huge size", huge, false},
                                        {"unknown api key", unknown_key, false}, {"bad version", bad_version, false},
                                        {"bad crc", bad_crc, true},           {"truncated", truncated, false}};
  for (const std::string extra : {std::string(), std::string(R"("acl":{"produce":{"deny":["x"]}})")}) {
    for (const auto& c : cases) {
      SCOPED_TRACE(std::string(c.name) + " " + extra);
      Harness h(cfg_with(extra));
      h.client_sends(c.bytes);
      EXPECT_TRUE(fake_envoy().closed);
      EXPECT_EQ(h.metric("c2s.protocol_errors"), 1);
      if (c.crc) EXPECT_EQ(h.metric("crc_errors"), 1);
      EXPECT_TRUE(h.upstream.empty());
      ASSERT_FALSE(fake_envoy().logs.empty());
      EXPECT_NE(fake_envoy().logs.back().find("malformed client-to-broker frame"), std::string::npos);
    }
  }
}

TEST(KafkaFilter, MalformedResponseClosesTheConnection) {
  const std::string c2s = read_file(fixtures_dir() + "/ck_metadata_v12.c2s.bin");
  std::string s2c = read_file(fixtures_dir() + "/ck_metadata_v12.s2c.bin");
  Harness h(cfg_with(""));
  h.client_sends(c2s);
  s2c = s2c.substr(0, 30);
  store_be32(s2c.data(), 26);
  h.server_sends(s2c);
  EXPECT_TRUE(fake_envoy().closed);
  EXPECT_EQ(h.metric("s2c.protocol_errors"), 1);
}

TEST(KafkaFilter, ConnectionGaugeAndLatency) {
  const std::string c2s = read_file(fixtures_dir() + "/ck_heartbeat_v3.c2s.bin");
  const std::string s2c = read_file(fixtures_dir() + "/ck_heartbeat_v3.s2c.bin");
  Harness h(cfg_with(""));
  EXPECT_EQ(h.metric("connections_active"), 1);
  h.client_sends(c2s);
  h.server_sends(s2c);
  EXPECT_EQ(h.metric("api.Heartbeat.requests"), 1);
  EXPECT_EQ(h.client, s2c);
  h.f->on_event(EVM_EVENT_REMOTE_CLOSE);
  EXPECT_EQ(h.metric("connections_active"), 0);
}

}  // namespace
}  // namespace evmesh::kafka
