// The Kafka codec fuzz body, shared by the libFuzzer target and the corpus
// replay test. The first byte picks what the rest is:
//   mode 0: a client-to-server stream (frames, headers, topics, produce
//           bodies down to the records), fed whole and in pieces;
//   mode 1: a response body; the second byte picks the api, the third its
//           version (decode, re-encode byte for byte, rewrite, decode again);
//   mode 2: a records blob (batches, CRC, decompression with a cap, records);
//   mode 3: a Produce request or Fetch response body for the streaming
//           walker (second byte: kind and version), whole against pieces;
// and the top bits pick the piece size. Checks invariants and aborts when
// one breaks: pieces and whole agree, frames tile the stream, errors lie
// within the input, re-encodings are exact.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "filters/kafka/codec/api_keys.h"
#include "filters/kafka/codec/framing.h"
#include "filters/kafka/codec/messages.h"
#include "filters/kafka/codec/records.h"
#include "filters/kafka/codec/stream.h"
#include "filters/kafka/codec/topics.h"

namespace evmesh::kafka::fuzz {

inline void check(bool ok) {
  if (!ok) std::abort();
}

constexpr size_t kCap = 1 << 16;  // decompressed bytes per batch

// Walks a records blob completely; returns a summary for comparisons.
inline std::string walk_records(std::string_view blob, bool partial_ok) {
  std::string summary;
  BatchIterator it(blob, partial_ok, 0);
  Batch b;
  std::string scratch;
  size_t batches = 0;
  while (it.next(&b) && batches++ < 64) {
    check(b.offset + b.bytes.size() <= blob.size());
    if (b.header.magic != 2) continue;
    summary += verify_crc(b) ? "c" : "C";
    std::string_view recs;
    Error err;
    if (!batch_records(b, kCap, &scratch, &recs, &err)) {
      check(scratch.size() <= kCap);
      summary += "d";
      continue;
    }
    RecordIterator ri(recs, b.header.records_count);
    Record r;
    int n = 0;
    while (ri.next(&r) && n++ < 10000) {
      check(r.key.v.size() <= recs.size() && r.value.v.size() <= recs.size());
      HeaderIterator hi(r);
      RecordHeader h;
      int k = 0;
      while (hi.next(&h) && k++ < 10000) {
      }
    }
    if (!ri.ok()) check(ri.error().offset <= recs.size());
    summary += std::to_string(n);
  }
  if (!it.ok()) check(it.error().offset <= blob.size());
  return summary;
}

struct StreamTrace {
  std::vector<std::string> events;
  bool ok = true;
};

inline StreamTrace run_stream(std::string_view data, size_t step) {
  FrameLimits limits;
  limits.max_frame = 1 << 20;
  limits.prefix_bytes = 64;
  FrameSplitter s(limits);
  StreamTrace t;
  uint64_t next = 0;
  struct Sink {
    StreamTrace* t;
    uint64_t* next;
    bool head(const FrameHead& h) {
      check(h.start == *next);
      check(h.prefix.size() == std::min<size_t>(h.size, 64));
      RequestHeader rh;
      Error err;
      const Status st = decode_request_header(h.prefix, h.prefix.size() == h.size, &rh, &err);
      t->events.push_back("h" + std::to_string(static_cast<int>(st)) + ":" + std::to_string(rh.api_key));
      return true;
    }
    void frame(const FrameHead& h, std::string_view payload) {
      check(payload.size() == h.size);
      *next = h.end();
      RequestHeader rh;
      Error err;
      if (decode_request_header(payload, true, &rh, &err) != Status::kOk) {
        check(err.offset <= 4 + payload.size());
        t->events.push_back("bad-header");
        return;
      }
      check(rh.size <= payload.size());
      const std::string_view body = payload.substr(rh.size);
      RequestTopics topics;
      const TopicsStatus ts = topics_of_request(rh.api_key, rh.api_version, body, &topics, &err, 4 + rh.size);
      if (ts == TopicsStatus::kError) check(err.offset <= 4 + payload.size());
      std::string e = "f" + std::to_string(rh.api_key) + "v" + std::to_string(rh.api_version) + "t" +
                      std::to_string(topics.topics.size());
      if (rh.api_key == api::kProduce) {
        ProduceRequest p;
        if (decode_produce_request(body, rh.api_version, &p, &err, 4 + rh.size)) {
          check(p.consumed <= body.size());
          for (const auto& topic : p.topics) {
            for (const auto& part : topic.partitions) {
              if (!part.records.null) e += walk_records(part.records.v, false);
            }
          }
        } else {
          check(err.offset <= 4 + payload.size());
        }
      }
      t->events.push_back(e);
    }
  } sink{&t, &next};
  for (size_t pos = 0; pos < data.size() && t.ok; pos += step) t.ok = s.feed(data.substr(pos, step), sink);
  if (t.ok) check(s.offset() == data.size());
  return t;
}

// The same stream through a splitter that never captures: payload bytes
// handed to bytes() must rebuild exactly the frames captured whole.
inline std::vector<std::string> stream_payloads(std::string_view data, size_t step, bool capture) {
  FrameLimits limits;
  limits.max_frame = 1 << 20;
  limits.prefix_bytes = 16;
  FrameSplitter s(limits);
  struct Sink {
    bool capture;
    std::vector<std::string>* out;
    std::string cur;
    bool head(const FrameHead&) { return capture; }
    void bytes(const FrameHead&, uint64_t at, std::string_view p) {
      check(!capture && at == cur.size());
      cur.append(p);
    }
    void frame(const FrameHead& h, std::string_view payload) {
      out->push_back(capture ? std::string(payload) : cur);
      check(out->back().size() == h.size);
      cur.clear();
    }
  };
  std::vector<std::string> out;
  Sink sink{capture, &out, {}};
  for (size_t pos = 0; pos < data.size(); pos += step) {
    if (!s.feed(data.substr(pos, step), sink)) break;
  }
  return out;
}

inline void fuzz_response(uint8_t api_pick, uint8_t version_pick, std::string_view body) {
  static constexpr int16_t kApis[] = {api::kApiVersions, api::kMetadata, api::kFindCoordinator, api::kDescribeCluster,
                                      api::kFetch, api::kProduce};
  const int16_t key = kApis[api_pick % (sizeof(kApis) / sizeof(kApis[0]))];
  const int16_t max = key == api::kProduce ? 13 : max_decodable_version(key, true);
  const int16_t v = static_cast<int16_t>(version_pick % (max + 1));
  Error err;
  switch (key) {
    case api::kApiVersions: {
      ApiVersionsResponse a;
      if (decode_api_versions_response(body, v, &a, &err)) {
        check(a.consumed <= body.size());
        std::string copy(body);
        for (const auto& k : a.api_keys) cap_api_version(&copy, a, k.api_key, 0);
        ApiVersionsResponse b;
        check(decode_api_versions_response(copy, v, &b, &err));
        check(b.api_keys.size() == a.api_keys.size());
      } else {
        check(err.offset <= body.size());
      }
      return;
    }
    case api::kFetch: {
      FetchRequest q;
      if (decode_fetch_request(body, v, &q, &err)) {
        // Dropping every other topic still decodes, to the kept ones.
        std::vector<bool> keep;
        size_t kept = 0;
        for (size_t i = 0; i < q.topics.size(); ++i) {
          keep.push_back(i % 2 == 0);
          kept += i % 2 == 0;
        }
        FetchRequest q2;
        check(decode_fetch_request(splice_array(body, q.topics_span, keep), v, &q2, &err));
        check(q2.topics.size() == kept);
      }
      FetchResponse f;
      if (decode_fetch_response(body, v, &f, &err)) {
        std::vector<FetchRequestTopic> denied(1);
        denied[0].name = Str::of("denied");
        denied[0].partitions.resize(2);
        FetchResponse f2;
        check(decode_fetch_response(splice_array(body, f.topics_span, {}, fetch_error_topics(denied, v, 29), 1), v,
                                    &f2, &err));
        check(f2.topics.size() == f.topics.size() + 1);
        for (const auto& t : f.topics) {
          for (const auto& p : t.partitions) {
            RecordCounts c;
            count_records(p.records.v, true, &c, &err);
            walk_records(p.records.v, true);
          }
        }
      } else {
        check(err.offset <= body.size());
      }
      return;
    }
    case api::kProduce: {
      ProduceRequest p;
      if (!decode_produce_request(body, v, &p, &err)) check(err.offset <= body.size());
      int16_t acks = 0;
      produce_acks(body, v, &acks, &err);
      if (decode_produce_request(body, v, &p, &err)) {
        ProduceRequest q;
        check(decode_produce_request(encode_produce_request(p, v), v, &q, &err));
        check(q.topics.size() == p.topics.size());
      }
      // The same bytes as a produce response: decode, re-encode, decode.
      ProduceResponse r;
      if (decode_produce_response(body, v, &r, &err)) {
        ProduceResponse r2;
        const std::string enc = encode_produce_response(r, v);
        check(decode_produce_response(enc, v, &r2, &err));
        check(r2.topics.size() == r.topics.size() && r2.throttle_time_ms == r.throttle_time_ms);
      } else {
        check(err.offset <= body.size());
      }
      return;
    }
    default:
      break;
  }
  // The rewritable responses: identity is unchanged, a rewrite re-decodes
  // with the same shape, and the re-encoding of the decoded body is exact.
  std::string out;
  const Rewrite same = rewrite_broker_addresses(
      key, v, body,
      [](int32_t, std::string_view h, int32_t p, std::string* nh, int32_t* np) {
        *nh = std::string(h);
        *np = p;
        return true;
      },
      &out, &err);
  if (same == Rewrite::kError) {
    check(err.offset <= body.size());
    return;
  }
  check(same == Rewrite::kUnchanged);
  const Rewrite changed = rewrite_broker_addresses(
      key, v, body,
      [](int32_t id, std::string_view, int32_t, std::string* nh, int32_t* np) {
        *nh = "sidecar-" + std::to_string(id);
        *np = 1000;
        return true;
      },
      &out, &err);
  check(changed != Rewrite::kError);
  size_t consumed = 0;
  if (key == api::kMetadata) {
    MetadataResponse m;
    check(decode_metadata_response(body, v, true, &m, &err));
    consumed = m.consumed;
    std::string enc = encode_metadata_response(m);
    // The length prefixes of a decoded body may be written differently
    // (overlong varints) but must decode to the same message.
    MetadataResponse m2;
    check(decode_metadata_response(enc, v, true, &m2, &err));
    check(m2.brokers.size() == m.brokers.size() && m2.topics.size() == m.topics.size());
    if (changed == Rewrite::kRewritten) {
      MetadataResponse r;
      check(decode_metadata_response(out, v, true, &r, &err));
      check(r.brokers.size() == m.brokers.size());
      for (const auto& b : r.brokers) check(b.port == 1000);
    }
  } else if (key == api::kFindCoordinator) {
    FindCoordinatorResponse f;
    check(decode_find_coordinator_response(body, v, &f, &err));
    consumed = f.consumed;
    FindCoordinatorResponse f2;
    check(decode_find_coordinator_response(encode_find_coordinator_response(f), v, &f2, &err));
    check(f2.coordinators.size() == f.coordinators.size());
    if (changed == Rewrite::kRewritten) check(decode_find_coordinator_response(out, v, &f2, &err));
  } else {
    DescribeClusterResponse d;
    check(decode_describe_cluster_response(body, v, &d, &err));
    consumed = d.consumed;
    DescribeClusterResponse d2;
    check(decode_describe_cluster_response(encode_describe_cluster_response(d), v, &d2, &err));
    check(d2.brokers.size() == d.brokers.size());
    if (changed == Rewrite::kRewritten) check(decode_describe_cluster_response(out, v, &d2, &err));
  }
  check(consumed <= body.size());
}

struct WalkTrace : WalkSink {
  std::vector<std::string> ev;
  uint64_t partitions = 0;
  void topic(const TopicRef& t, uint64_t offset) override { ev.push_back("t" + std::to_string(offset)); }
  void partition(int32_t index, int64_t size, uint64_t offset) override {
    ++partitions;
    ev.push_back("p" + std::to_string(index) + ":" + std::to_string(size) + "@" + std::to_string(offset));
  }
  void batch(const BatchHeader& h, uint64_t offset, uint64_t size, bool header, bool complete, bool crc) override {
    ev.push_back("b" + std::to_string(offset) + "+" + std::to_string(size) + (header ? "h" : "") +
                 (complete ? "c" : "") + (crc ? "k" : ""));
  }
  void topic_end(uint64_t end) override { ev.push_back("e" + std::to_string(end)); }
};

inline WalkTrace run_walker(RecordsBodyWalker::Kind kind, int16_t v, std::string_view body, size_t step, bool* ok,
                            bool* done, std::string* err) {
  RecordsBodyWalker w(kind, v, body.size(), 0, true);
  WalkTrace t;
  *ok = true;
  for (size_t pos = 0; pos < body.size() && *ok; pos += step) *ok = w.feed(body.substr(pos, step), t);
  *done = w.done();
  *err = w.error().reason ? w.error().describe() : "";
  if (!*ok) check(w.error().offset <= body.size());
  return t;
}

inline void fuzz_walker(uint8_t pick, std::string_view body, size_t step) {
  const auto kind = (pick & 1) ? RecordsBodyWalker::Kind::kFetchResponse : RecordsBodyWalker::Kind::kProduceRequest;
  const int16_t v = static_cast<int16_t>((pick >> 1) % 18);
  bool ok1, done1, ok2, done2;
  std::string e1, e2;
  const WalkTrace whole = run_walker(kind, v, body, body.empty() ? 1 : body.size(), &ok1, &done1, &e1);
  const WalkTrace split = run_walker(kind, v, body, step, &ok2, &done2, &e2);
  check(ok1 == ok2 && done1 == done2 && e1 == e2);
  check(whole.ev == split.ev);
  // A body the walker completed decodes contiguously to the same partitions.
  if (ok1 && done1) {
    Error err;
    uint64_t parts = 0;
    if (kind == RecordsBodyWalker::Kind::kProduceRequest) {
      ProduceRequest p;
      check(decode_produce_request(body, v, &p, &err));
      for (const auto& t : p.topics) parts += t.partitions.size();
    } else {
      FetchResponse f;
      check(decode_fetch_response(body, v, &f, &err));
      for (const auto& t : f.topics) parts += t.partitions.size();
    }
    check(parts == whole.partitions);
  }
}

inline void fuzz_one(const uint8_t* bytes, size_t size) {
  if (size == 0) return;
  const uint8_t mode = bytes[0] & 3;
  const size_t step = 1 + (bytes[0] >> 2) % 23;
  std::string_view data(reinterpret_cast<const char*>(bytes + 1), size - 1);
  if (mode == 3) {
    if (data.empty()) return;
    fuzz_walker(static_cast<uint8_t>(data[0]), data.substr(1), step);
  } else if (mode == 0) {
    const StreamTrace whole = run_stream(data, data.empty() ? 1 : data.size());
    const StreamTrace split = run_stream(data, step);
    check(whole.ok == split.ok);
    check(whole.events == split.events);
    check(stream_payloads(data, step, false) == stream_payloads(data, data.empty() ? 1 : data.size(), true));
  } else if (mode == 1) {
    if (data.size() < 2) return;
    fuzz_response(static_cast<uint8_t>(data[0]), static_cast<uint8_t>(data[1]), data.substr(2));
  } else {
    const std::string a = walk_records(data, true);
    // A copy (exact size) behaves the same: no reads beyond the blob.
    const std::string copy(data);
    check(walk_records(copy, true) == a);
    walk_records(data, false);
  }
}

}  // namespace evmesh::kafka::fuzz
