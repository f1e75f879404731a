// Golden traffic captured from real clients (confluent-kafka 2.16 /
// librdkafka, kafka-python 3.0) against Tansu: see fixtures/README.md.
// Every connection is replayed through the codec the way the filter will
// use it: split into frames (whole, byte by byte, in odd pieces), request
// headers decoded and correlated, responses decoded by the request's api
// key and version, produce and fetch records walked down to the headers.
#include <dirent.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "filters/kafka/codec/api_keys.h"
#include "filters/kafka/codec/framing.h"
#include "filters/kafka/codec/messages.h"
#include "filters/kafka/codec/records.h"
#include "filters/kafka/codec/stream.h"
#include "filters/kafka/codec/topics.h"
#include "filters/kafka/test/test_util.h"

namespace evmesh::kafka {
namespace {

// Tansu 0.6.0 (top level) and Apache Kafka 4.1.1 in KRaft mode (kafka4/).
const std::string kTansu = "filters/kafka/test/fixtures";
const std::string kKafka = "filters/kafka/test/fixtures/kafka4";
const std::string kDirs[] = {kTansu, kKafka};

std::vector<std::string> list(const std::string& dir, const std::string& suffix) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) {
        out.push_back(n.substr(0, n.size() - suffix.size()));
      }
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct Frame {
  uint64_t start;
  std::string payload;
};

// Splits a stream into whole frames, feeding it in pieces of `step` bytes.
std::vector<Frame> split(const std::string& stream, size_t step) {
  std::vector<Frame> out;
  struct Sink {
    std::vector<Frame>* out;
    bool head(const FrameHead&) { return true; }
    void frame(const FrameHead& h, std::string_view p) { out->push_back(Frame{h.start, std::string(p)}); }
  } sink{&out};
  FrameSplitter s;
  for (size_t pos = 0; pos < stream.size(); pos += step) {
    EXPECT_TRUE(s.feed(std::string_view(stream).substr(pos, step), sink)) << s.error();
  }
  EXPECT_TRUE(s.at_frame_boundary());
  return out;
}

// Totals over all fixture connections.
struct Totals {
  std::map<std::string, uint64_t> produced;  // topic -> records in produce requests
  std::map<std::string, std::set<int>> produce_codecs;
  std::map<std::string, uint64_t> fetched;   // topic -> records counted in fetch responses
  std::map<std::string, int> apis;           // "Name vN" seen
  uint64_t records_decoded = 0;
  uint64_t responses = 0;
  uint64_t acks0 = 0;
  TopicNames topic_names;  // from Metadata v10+, for Fetch v13+ (ids only)
};

void walk_batches(std::string_view blob, bool fetch, uint64_t* decoded) {
  BatchIterator it(blob, fetch);
  Batch b;
  std::string scratch;
  while (it.next(&b)) {
    ASSERT_EQ(b.header.magic, 2);
    EXPECT_TRUE(verify_crc(b));
    std::string_view recs;
    Error err;
    ASSERT_TRUE(batch_records(b, 1 << 20, &scratch, &recs, &err)) << err.describe();
    RecordIterator ri(recs, b.header.records_count);
    Record r;
    while (ri.next(&r)) {
      ++*decoded;
      if (b.header.control()) continue;
      EXPECT_FALSE(r.value.null);
      HeaderIterator hi(r);
      RecordHeader h;
      while (hi.next(&h)) EXPECT_FALSE(h.key.v.empty());
      EXPECT_TRUE(hi.ok());
    }
    EXPECT_TRUE(ri.ok()) << ri.error().describe();
    EXPECT_TRUE(ri.done());
  }
  EXPECT_TRUE(it.ok()) << it.error().describe();
}

// The streaming walker over a body in pieces of 7 bytes: complete batches
// and their records must match the contiguous count of every partition.
struct Counter : WalkSink {
  uint64_t batches = 0, records = 0, bad_crc = 0;
  void batch(const BatchHeader& h, uint64_t, uint64_t, bool, bool complete, bool crc_ok) override {
    if (!complete) return;
    ++batches;
    records += static_cast<uint64_t>(h.records_count);
    if (!crc_ok) ++bad_crc;
  }
};

void check_walker(RecordsBodyWalker::Kind kind, int16_t v, std::string_view body, uint64_t want_batches,
                  uint64_t want_records) {
  RecordsBodyWalker w(kind, v, body.size(), 0, true);
  Counter c;
  for (size_t pos = 0; pos < body.size(); pos += 7) ASSERT_TRUE(w.feed(body.substr(pos, 7), c)) << w.error().describe();
  EXPECT_TRUE(w.done());
  EXPECT_EQ(c.batches, want_batches);
  EXPECT_EQ(c.records, want_records);
  EXPECT_EQ(c.bad_crc, 0u);
}

void replay(const std::string& kDir, const std::string& conn, Totals* tot) {
  SCOPED_TRACE(conn);
  const std::string c2s = testing::read_file(kDir + "/raw/" + conn + ".c2s");
  const std::string s2c = testing::read_file(kDir + "/raw/" + conn + ".s2c");
  const std::vector<Frame> reqs = split(c2s, c2s.size() ? c2s.size() : 1);
  const std::vector<Frame> resps = split(s2c, s2c.size() ? s2c.size() : 1);
  // The same frames whatever the piece size.
  for (size_t step : {size_t{1}, size_t{7}, size_t{4096}}) {
    const auto r2 = split(c2s, step);
    ASSERT_EQ(r2.size(), reqs.size());
    for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(r2[i].payload, reqs[i].payload);
    EXPECT_EQ(split(s2c, step).size(), resps.size());
  }
  CorrelationMap inflight(64);
  for (const Frame& f : reqs) {
    RequestHeader h;
    Error err;
    ASSERT_EQ(decode_request_header(f.payload, true, &h, &err), Status::kOk) << err.describe();
    ASSERT_TRUE(h.known);
    // The header prefix alone (as the splitter gives it) is enough.
    RequestHeader h2;
    ASSERT_EQ(decode_request_header(std::string_view(f.payload).substr(0, 512), f.payload.size() <= 512, &h2, &err),
              Status::kOk);
    EXPECT_EQ(h2.size, h.size);
    tot->apis[std::string(api_name(h.api_key)) + " v" + std::to_string(h.api_version)]++;
    const std::string_view body = std::string_view(f.payload).substr(h.size);
    RequestTopics topics;
    const TopicsStatus ts = topics_of_request(h.api_key, h.api_version, body, &topics, &err, 4 + h.size);
    EXPECT_NE(ts, TopicsStatus::kError) << api_name(h.api_key) << " v" << h.api_version << " " << err.describe();
    bool expect_response = true;
    if (h.api_key == api::kFetch) {
      FetchRequest fr;
      ASSERT_TRUE(decode_fetch_request(body, h.api_version, &fr, &err, 4 + h.size)) << err.describe();
      EXPECT_EQ(fr.consumed, body.size());
      EXPECT_EQ(fr.topics.size(), topics.topics.size());
      EXPECT_EQ(splice_array(body, fr.topics_span, std::vector<bool>(fr.topics.size(), true)), body);
    }
    if (h.api_key == api::kProduce) {
      ProduceRequest p;
      ASSERT_TRUE(decode_produce_request(body, h.api_version, &p, &err, 4 + h.size)) << err.describe();
      EXPECT_EQ(p.consumed, body.size());
      expect_response = p.acks != 0;
      if (p.acks == 0) tot->acks0++;
      ASSERT_EQ(topics.topics.size(), p.topics.size());
      uint64_t all_batches = 0, all_records = 0;
      for (const auto& t : p.topics) {
        for (const auto& part : t.partitions) {
          RecordCounts c;
          ASSERT_TRUE(count_records(part.records.v, false, &c, &err));
          all_batches += c.batches;
          all_records += c.records;
        }
      }
      check_walker(RecordsBodyWalker::Kind::kProduceRequest, h.api_version, body, all_batches, all_records);
      for (size_t i = 0; i < p.topics.size(); ++i) {
        const std::string name(p.topics[i].name.v);
        EXPECT_EQ(topics.topics[i].name.v, name);
        for (const auto& part : p.topics[i].partitions) {
          RecordCounts c;
          ASSERT_TRUE(count_records(part.records.v, false, &c, &err)) << err.describe();
          tot->produced[name] += c.records;
          BatchIterator it(part.records.v, false);
          Batch b;
          while (it.next(&b)) tot->produce_codecs[name].insert(b.header.compression());
          walk_batches(part.records.v, false, &tot->records_decoded);
        }
      }
    }
    // Added even when no response is expected: Tansu answers acks=0 too.
    ASSERT_TRUE(inflight.add({h.correlation_id, h.api_key, h.api_version, 0, expect_response}));
  }
  for (const Frame& f : resps) {
    ResponseHeader rh;
    Error err;
    ASSERT_EQ(decode_response_header(f.payload, 0, &rh, &err), Status::kOk);
    InFlight req;
    ASSERT_TRUE(inflight.take(rh.correlation_id, &req)) << "uncorrelated response " << rh.correlation_id;
    ASSERT_EQ(decode_response_header(f.payload, response_header_version(req.api_key, req.api_version), &rh, &err),
              Status::kOk);
    ++tot->responses;
    const std::string_view body = std::string_view(f.payload).substr(rh.size);
    const int16_t v = req.api_version;
    switch (req.api_key) {
      case api::kApiVersions: {
        ApiVersionsResponse a;
        ASSERT_TRUE(decode_api_versions_response(body, v, &a, &err)) << err.describe();
        EXPECT_EQ(a.consumed, body.size());
        EXPECT_EQ(a.error_code, 0);
        EXPECT_GT(a.api_keys.size(), 10u);
        break;
      }
      case api::kMetadata:
      case api::kFindCoordinator:
      case api::kDescribeCluster: {
        std::string out;
        EXPECT_EQ(rewrite_broker_addresses(req.api_key, v, body,
                                           [](int32_t, std::string_view h, int32_t p, std::string* nh, int32_t* np) {
                                             *nh = std::string(h);
                                             *np = p;
                                             return true;
                                           },
                                           &out, &err),
                  Rewrite::kUnchanged)
            << err.describe();
        if (req.api_key == api::kMetadata) {
          MetadataResponse m;
          ASSERT_TRUE(decode_metadata_response(body, v, true, &m, &err, 4 + rh.size)) << err.describe();
          EXPECT_EQ(m.consumed, body.size());
          EXPECT_EQ(encode_metadata_response(m), body);
          ASSERT_EQ(m.brokers.size(), 1u);
          tot->topic_names.learn(m);
          EXPECT_EQ(m.brokers[0].host.v, "127.0.0.1");
        } else if (req.api_key == api::kFindCoordinator) {
          FindCoordinatorResponse fc;
          ASSERT_TRUE(decode_find_coordinator_response(body, v, &fc, &err)) << err.describe();
          EXPECT_EQ(fc.consumed, body.size());
          EXPECT_EQ(encode_find_coordinator_response(fc), body);
        }
        const Rewrite rw = rewrite_broker_addresses(
            req.api_key, v, body,
            [](int32_t id, std::string_view, int32_t, std::string* nh, int32_t* np) {
              *nh = "sidecar.local";
              *np = 30000 + id;
              return true;
            },
            &out, &err);
        EXPECT_NE(rw, Rewrite::kError);
        break;
      }
      case api::kFetch: {
        FetchResponse fr;
        ASSERT_TRUE(decode_fetch_response(body, v, &fr, &err, 4 + rh.size)) << err.describe();
        EXPECT_EQ(fr.consumed, body.size());
        uint64_t all_batches = 0, all_records = 0;
        for (const auto& t : fr.topics) {
          for (const auto& p : t.partitions) {
            RecordCounts c;
            ASSERT_TRUE(count_records(p.records.v, true, &c, &err));
            all_batches += c.batches;
            all_records += c.records;
          }
        }
        check_walker(RecordsBodyWalker::Kind::kFetchResponse, v, body, all_batches, all_records);
        for (const auto& t : fr.topics) {
          for (const auto& p : t.partitions) {
            RecordCounts c;
            ASSERT_TRUE(count_records(p.records.v, true, &c, &err)) << err.describe();
            // Fetch v13+ names topics by id: the filter maps ids from Metadata.
            const std::string* known = v >= 13 ? tot->topic_names.find(t.topic_id) : nullptr;
            ASSERT_TRUE(v < 13 || known != nullptr) << "fetch of a topic id not seen in Metadata";
            const std::string name = known ? *known : std::string(t.name.v);
            tot->fetched[name] += c.records;
            walk_batches(p.records.v, true, &tot->records_decoded);
          }
        }
        break;
      }
      default:
        break;
    }
  }
  EXPECT_EQ(inflight.awaiting(), 0u) << "requests left without a response";
}

TEST(KafkaFixtures, EveryCapturedConnectionReplays) {
 for (const std::string& kDir : kDirs) {
  SCOPED_TRACE(kDir);
  const auto conns = list(kDir + "/raw", ".c2s");
  ASSERT_GE(conns.size(), 20u);
  Totals tot;
  for (const auto& c : conns) replay(kDir, c, &tot);
  // Both clients produced 3 records (at least) to a topic per codec, with that codec.
  const char* codecs[] = {"none", "gzip", "snappy", "lz4", "zstd"};
  for (int i = 0; i < 5; ++i) {
    for (const std::string prefix : {"ck-", "kp-"}) {
      const std::string topic = prefix + codecs[i];
      EXPECT_GE(tot.produced[topic], 3u) << topic;
      EXPECT_EQ(tot.produce_codecs[topic].count(i), 1u) << topic;
      EXPECT_GE(tot.fetched[topic], 3u) << topic;
    }
  }
  EXPECT_GE(tot.acks0, 1u);
  EXPECT_GE(tot.records_decoded, 60u);
  for (const char* api : {"ApiVersions v3", "ApiVersions v4", "Produce v9", "Produce v10", "Fetch v12", "Fetch v16",
                          "FindCoordinator v2", "FindCoordinator v6", "OffsetCommit v8", "OffsetCommit v9",
                          "OffsetFetch v8", "OffsetFetch v9", "ListOffsets v7", "CreateTopics v4"}) {
    EXPECT_GE(tot.apis[api], 1) << api;
  }
  // aiokafka 0.14 speaks the older, non-flexible versions.
  for (const char* api : {"ApiVersions v0", "Metadata v5", "Produce v7", "Fetch v11", "FindCoordinator v1",
                          "OffsetCommit v3", "OffsetFetch v3", "ListOffsets v3"}) {
    EXPECT_GE(tot.apis[api], 1) << api;
  }
  if (kDir == kKafka) {
    EXPECT_GE(tot.apis["Metadata v13"], 1);
    EXPECT_GE(tot.apis["DescribeCluster v2"], 1);
  } else {
    EXPECT_GE(tot.apis["Metadata v12"], 1);
  }
 }
}

// The zero-copy path the filter takes: each direction fed in small pieces
// to a FrameSplitter that never captures whole frames; headers from the
// prefix, correlation, and Produce request / Fetch response bodies streamed
// into RecordsBodyWalkers. Records per topic must match the contiguous path.
struct Direction {
  bool c2s;
  CorrelationMap* inflight;
  std::map<std::string, uint64_t>* records;  // "c2s:topic" / "s2c:topic" (names; ids as "id")
  std::unique_ptr<RecordsBodyWalker> walker;
  uint32_t body_at = 0;  // payload offset where the body starts
  struct TopicCounter : WalkSink {
    std::map<std::string, uint64_t>* records;
    std::string prefix, current;
    void topic(const TopicRef& t, uint64_t) override { current = t.name.null ? "id" : std::string(t.name.v); }
    void batch(const BatchHeader& h, uint64_t, uint64_t, bool, bool complete, bool crc_ok) override {
      EXPECT_TRUE(!complete || crc_ok);
      if (complete) (*records)[prefix + current] += static_cast<uint64_t>(h.records_count);
    }
  } counter;

  bool head(const FrameHead& h) {
    walker.reset();
    Error err;
    if (c2s) {
      RequestHeader rh;
      EXPECT_EQ(decode_request_header(h.prefix, h.prefix.size() == h.size, &rh, &err), Status::kOk);
      inflight->add({rh.correlation_id, rh.api_key, rh.api_version, 0});
      if (rh.api_key == api::kProduce) start(RecordsBodyWalker::Kind::kProduceRequest, rh.api_version, h, rh.size);
      return false;
    }
    ResponseHeader rh;
    EXPECT_EQ(decode_response_header(h.prefix, 0, &rh, &err), Status::kOk);
    InFlight req;
    if (!inflight->take(rh.correlation_id, &req)) return false;
    EXPECT_EQ(decode_response_header(h.prefix, response_header_version(req.api_key, req.api_version), &rh, &err),
              Status::kOk);
    if (req.api_key == api::kFetch) start(RecordsBodyWalker::Kind::kFetchResponse, req.api_version, h, rh.size);
    return false;
  }
  void start(RecordsBodyWalker::Kind kind, int16_t v, const FrameHead& h, uint32_t header_size) {
    body_at = header_size;
    walker = std::make_unique<RecordsBodyWalker>(kind, v, h.size - header_size, 4 + header_size, true);
    counter.records = records;
    counter.prefix = c2s ? "c2s:" : "s2c:";
  }
  void bytes(const FrameHead&, uint64_t at, std::string_view piece) {
    if (!walker) return;
    if (at < body_at) {
      const size_t skip = std::min<uint64_t>(body_at - at, piece.size());
      piece.remove_prefix(skip);
    }
    if (!piece.empty()) {
      EXPECT_TRUE(walker->feed(piece, counter)) << walker->error().describe();
    }
  }
  void frame(const FrameHead&, std::string_view) {
    if (walker) {
      EXPECT_TRUE(walker->done());
    }
    walker.reset();
  }
};

TEST(KafkaFixtures, ZeroCopyStreamingPathCountsTheSameRecords) {
 for (const std::string& kDir : kDirs) {
  SCOPED_TRACE(kDir);
  const auto conns = list(kDir + "/raw", ".c2s");
  std::map<std::string, uint64_t> streamed;
  for (const auto& conn : conns) {
    CorrelationMap inflight(64);
    Direction c2s{true, &inflight, &streamed, nullptr, 0, {}};
    Direction s2c{false, &inflight, &streamed, nullptr, 0, {}};
    FrameSplitter a, b;
    const std::string up = testing::read_file(kDir + "/raw/" + conn + ".c2s");
    const std::string down = testing::read_file(kDir + "/raw/" + conn + ".s2c");
    // Requests first, then responses (the relay kept each direction whole).
    for (size_t pos = 0; pos < up.size(); pos += 5) ASSERT_TRUE(a.feed(std::string_view(up).substr(pos, 5), c2s));
    for (size_t pos = 0; pos < down.size(); pos += 11) ASSERT_TRUE(b.feed(std::string_view(down).substr(pos, 11), s2c));
  }
  for (const std::string prefix : {"ck-", "kp-"}) {
    for (const char* codec : {"none", "gzip", "snappy", "lz4", "zstd"}) {
      EXPECT_GE(streamed["c2s:" + prefix + codec], 3u) << prefix << codec;
    }
  }
  // kafka-python fetches by name (v12); librdkafka by topic id (v16).
  for (const char* codec : {"none", "gzip", "snappy", "lz4", "zstd"}) {
    EXPECT_GE(streamed[std::string("s2c:kp-") + codec], 3u) << codec;
  }
  EXPECT_GE(streamed["s2c:id"], 15u);
 }
}

// The single-frame fixtures (first frame of each kind, named after it).
TEST(KafkaFixtures, SingleFramesDecodeByTheirNames) {
 for (const std::string& kDir : kDirs) {
  SCOPED_TRACE(kDir);
  const auto names = list(kDir, ".c2s.bin");
  ASSERT_GE(names.size(), 30u);
  for (const auto& n : names) {
    SCOPED_TRACE(n);
    const std::string req = testing::read_file(kDir + "/" + n + ".c2s.bin");
    ASSERT_GE(req.size(), 4u);
    EXPECT_EQ(load_be32(req.data()), req.size() - 4);
    RequestHeader h;
    Error err;
    ASSERT_EQ(decode_request_header(std::string_view(req).substr(4), true, &h, &err), Status::kOk);
    EXPECT_NE(n.find("_v" + std::to_string(h.api_version)), std::string::npos);
    const std::string resp = testing::read_file(kDir + "/" + n + ".s2c.bin");
    if (resp.empty()) continue;
    ResponseHeader rh;
    ASSERT_EQ(decode_response_header(std::string_view(resp).substr(4),
                                     response_header_version(h.api_key, h.api_version), &rh, &err),
              Status::kOk);
    EXPECT_EQ(rh.correlation_id, h.correlation_id);
  }
  // A golden look at one response: kafka-python's FindCoordinator v6.
  const std::string fc = testing::read_file(kDir + "/kp_find_coordinator_v6.s2c.bin");
  ResponseHeader rh;
  Error err;
  ASSERT_EQ(decode_response_header(std::string_view(fc).substr(4), 1, &rh, &err), Status::kOk);
  FindCoordinatorResponse f;
  ASSERT_TRUE(decode_find_coordinator_response(std::string_view(fc).substr(4 + rh.size), 6, &f, &err));
  ASSERT_EQ(f.coordinators.size(), 1u);
  EXPECT_EQ(f.coordinators[0].key.v, "g2");
  EXPECT_EQ(f.coordinators[0].node.host.v, "127.0.0.1");
 }
  // Apache Kafka's DescribeCluster v2 (the Java admin client): rewritten to a
  // sidecar address and back, byte for byte.
  const std::string dc = testing::read_file(kKafka + "/java_describe_cluster_v2.s2c.bin");
  ResponseHeader rh;
  Error err;
  ASSERT_EQ(decode_response_header(std::string_view(dc).substr(4), 1, &rh, &err), Status::kOk);
  const std::string body = dc.substr(4 + rh.size);
  DescribeClusterResponse d;
  ASSERT_TRUE(decode_describe_cluster_response(body, 2, &d, &err)) << err.describe();
  EXPECT_EQ(d.consumed, body.size());
  ASSERT_EQ(d.brokers.size(), 1u);
  EXPECT_EQ(d.brokers[0].node_id, 1);
  EXPECT_EQ(d.cluster_id.v, "q1Sh-9_ISia_zwGINzRvyQ");
  EXPECT_EQ(encode_describe_cluster_response(d), body);
  const int32_t kafka_port = d.brokers[0].port;
  std::string out, back;
  ASSERT_EQ(rewrite_broker_addresses(api::kDescribeCluster, 2, body,
                                     [](int32_t, std::string_view, int32_t, std::string* h, int32_t* p) {
                                       *h = "localhost";
                                       *p = 19092;
                                       return true;
                                     },
                                     &out, &err),
            Rewrite::kRewritten);
  ASSERT_EQ(rewrite_broker_addresses(api::kDescribeCluster, 2, out,
                                     [&](int32_t, std::string_view, int32_t, std::string* h, int32_t* p) {
                                       *h = "127.0.0.1";
                                       *p = kafka_port;
                                       return true;
                                     },
                                     &back, &err),
            Rewrite::kRewritten);
  EXPECT_EQ(back, body);
}

}  // namespace
}  // namespace evmesh::kafka
