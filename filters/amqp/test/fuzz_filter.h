// The AMQP filter fuzz body (against the fake Envoy), shared by the libFuzzer
// target and the corpus replay test. Input: one setup byte (bit 0-1: chunk
// size, bit 2-3: buffer limit), then records [op][len][len bytes]: op bit 0
// picks the direction (0 client, 1 broker), op == 0xFE fires the scheduled
// release. Invariants: no crash; unless the filter closed the connection,
// what it forwarded to the broker and to the client parses as AMQP frames
// (edits, carries and injected replies never break the framing).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "filters/amqp/codec/frame_parser.h"
#include "filters/amqp/filter/amqp_filter.h"
#include "filters/common/test/fake_envoy.h"

namespace evmesh::amqp::fuzz {

inline void check_stream(Dir dir, const std::string& bytes) {
  Parser p(dir, 1u << 24);
  if (!p.feed(bytes, [](const Frame&) {})) {
    std::fprintf(stderr, "%s stream broken: %s\n", dir == Dir::kClientToServer ? "upstream" : "client",
                 p.error().c_str());
    std::abort();
  }
}

inline void fuzz_filter_one(const uint8_t* data, size_t size) {
  if (size == 0) return;
  auto& fe = evmesh::testing::fake_envoy();
  fe.reset();
  static const size_t kChunks[] = {0, 1, 3, 64};
  static const uint32_t kLimits[] = {0, 16, 256, 4096};
  fe.chunk = kChunks[data[0] & 3];
  fe.buffer_limit = kLimits[(data[0] >> 2) & 3];
  static int config_token, filter_token;
  std::string err;
  auto cfg = make_amqp_config(&config_token, R"({"stat_prefix": "f", "max_body_size": 100, "max_frame": 4096,
      "acl": {"publish": {"deny": [{"exchange": "*", "routing_key": "secret.#"}]}, "consume": {"deny": ["private.#"]}},
      "exchanges": [{"name": "x", "exchange": "x"}], "queues": [{"name": "q", "pattern": "q.#"}]})",
                              &err);
  if (!cfg) std::abort();
  auto f = cfg->create(&filter_token);
  f->on_new_connection();
  std::string upstream, client;
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
      f->on_scheduled(2);
      if (fe.continue_reading != before) {
        upstream += fe.read_buf;
        fe.read_buf.clear();
      }
    } else if ((op & 1) == 0) {
      fe.read_buf += piece;
      if (f->on_read(fe.read_buf.size(), false) == EVM_NET_CONTINUE) {
        upstream += fe.read_buf;
        fe.read_buf.clear();
      }
      client += fe.to_client;
      fe.to_client.clear();
    } else {
      fe.write_buf = piece;
      if (f->on_write(piece.size(), false) == EVM_NET_CONTINUE) client += fe.write_buf;
      fe.write_buf.clear();
    }
  }
  if (!fe.closed) {
    check_stream(Dir::kClientToServer, upstream);
    check_stream(Dir::kServerToClient, client);
  }
  f->on_event(EVM_EVENT_REMOTE_CLOSE);
}

}  // namespace evmesh::amqp::fuzz
