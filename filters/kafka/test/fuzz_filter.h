// The Kafka filter fuzz body (against the fake Envoy), shared by the
// libFuzzer target and the corpus replay test. Input: one setup byte (bit
// 0-1: chunk size, bit 2: verify_crc, bit 3: streaming produce (no produce
// policy)), then records [op][len][len bytes]: op bit 0 picks the direction
// (0 client, 1 broker), op == 0xFE fires the throttle timer. Invariants: no
// crash; unless the filter closed the connection, what it forwarded either way
// is a sequence of well-formed size-prefixed frames (captures, carries and
// rewrites never break the framing), and the broker never sees a frame the
// client did not send in some form (the count of upstream frames <= client frames).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "filters/common/test/fake_envoy.h"
#include "filters/kafka/codec/framing.h"
#include "filters/kafka/filter/kafka_filter.h"

namespace evmesh::kafka::fuzz {

// Complete frames of a stream; aborts on a framing error.
inline size_t check_stream(const char* what, const std::string& bytes) {
  FrameSplitter s(FrameLimits{1u << 30, 0});
  size_t frames = 0;
  struct Sink {
    size_t* n;
    bool head(const FrameHead&) { return false; }
    void frame(const FrameHead&, std::string_view) { ++*n; }
  } sink{&frames};
  if (!s.feed(bytes, sink)) {
    std::fprintf(stderr, "%s stream broken: %s\n", what, s.error().c_str());
    std::abort();
  }
  return frames;
}

inline void fuzz_filter_one(const uint8_t* data, size_t size) {
  if (size == 0) return;
  auto& fe = evmesh::testing::fake_envoy();
  fe.reset();
  static const size_t kChunks[] = {0, 1, 3, 64};
  fe.chunk = kChunks[data[0] & 3];
  const bool crc = (data[0] & 4) != 0;
  const bool streaming = (data[0] & 8) != 0;
  static int config_token, filter_token;
  std::string json = R"({"stat_prefix":"f","bootstrap_port":9092,"nodes":[{"id":1,"port":9093}],"max_frame":65536,
      "topics":[{"name":"k","pattern":"k?-*"}],"quotas":[{"topic":"*","records_per_second":5}],)";
  json += crc ? R"("verify_crc":true,)" : R"("verify_crc":false,)";
  if (!streaming) {
    json += R"("acl":{"produce":{"deny":["*gzip*"]},"consume":{"deny":["*lz4*"]}},
        "durability":[{"topic":"*zstd*","min_acks":"all"}],"max_batch_bytes":300,)";
  }
  json += R"("advertised_host":"127.0.0.1"})";
  std::string err;
  auto cfg = make_kafka_config(&config_token, json, &err);
  if (!cfg) {
    std::fprintf(stderr, "config: %s\n", err.c_str());
    std::abort();
  }
  auto f = cfg->create(&filter_token);
  f->on_new_connection();
  std::string upstream, client, sent;
  size_t pos = 1;
  while (pos + 2 <= size && !fe.closed) {
    const uint8_t op = data[pos];
    size_t len = data[pos + 1];
    pos += 2;
    if (len > size - pos) len = size - pos;
    const std::string piece(reinterpret_cast<const char*>(data + pos), len);
    pos += len;
    if (op == 0xFE) {
      const int before = fe.continue_reading;
      f->on_scheduled(1);
      if (fe.continue_reading != before) {
        upstream += fe.read_buf;
        fe.read_buf.clear();
      }
    } else if ((op & 1) == 0) {
      sent += piece;
      fe.read_buf += piece;
      const int st = f->on_read(fe.read_buf.size(), false);
      upstream += fe.injected;  // handed on during on_read, ahead of the buffer
      fe.injected.clear();
      if (st == EVM_NET_CONTINUE) {
        upstream += fe.read_buf;
        fe.read_buf.clear();
      }
    } else {
      fe.write_buf = piece;
      if (f->on_write(piece.size(), false) == EVM_NET_CONTINUE) client += fe.write_buf;
      fe.write_buf.clear();
    }
  }
  if (!fe.closed) {
    const size_t up = check_stream("upstream", upstream);
    check_stream("client", client);
    FrameSplitter s(FrameLimits{1u << 30, 0});
    size_t in = 0;
    struct Sink {
      size_t* n;
      bool head(const FrameHead&) { return false; }
      void frame(const FrameHead&, std::string_view) { ++*n; }
    } sink{&in};
    s.feed(sent, sink);
    if (up > in) {
      std::fprintf(stderr, "upstream has %zu frames, the client sent %zu\n", up, in);
      std::abort();
    }
  }
  f->on_event(EVM_EVENT_REMOTE_CLOSE);
}

}  // namespace evmesh::kafka::fuzz
