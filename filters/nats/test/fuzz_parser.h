// The NATS parser fuzz body, shared by the libFuzzer target and the corpus
// replay test. The first byte picks the direction and the split pattern;
// the rest is the stream, fed whole and in pieces. Checks invariants:
// pieces and whole agree, offsets add up, frames tile the stream.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "filters/nats/codec/parser.h"

namespace evmesh::nats::fuzz {

struct Trace {
  std::vector<std::string> frames;
  bool ok = true;
  uint64_t offset = 0;
};

inline Trace run_pieces(Dir dir, std::string_view data, size_t step, Limits limits) {
  Parser p(dir, limits);
  Trace t;
  uint64_t next_start = 0;
  bool tiled = true;
  auto sink = [&](const Frame& f) {
    if (f.start != next_start) tiled = false;
    next_start = f.start + f.frame_len();
    t.frames.push_back(std::string(op_name(f.op)) + "|" + std::string(f.subject) + "|" + std::string(f.sid) + "|" +
                       std::to_string(f.start) + "|" + std::to_string(f.frame_len()));
  };
  for (size_t pos = 0; pos < data.size() && t.ok; pos += step) {
    t.ok = p.feed(data.substr(pos, step), sink);
  }
  if (!tiled) std::abort();
  if (t.ok && p.offset() != data.size()) std::abort();
  t.offset = p.offset();
  return t;
}

inline void fuzz_one(const uint8_t* bytes, size_t size) {
  if (size == 0) return;
  const Dir dir = (bytes[0] & 1) ? Dir::kServerToClient : Dir::kClientToServer;
  const size_t step = 1 + (bytes[0] >> 1) % 17;
  Limits limits;
  limits.max_control_line = 256;
  limits.max_payload = 1 << 16;
  const std::string_view data(reinterpret_cast<const char*>(bytes + 1), size - 1);
  const Trace whole = run_pieces(dir, data, data.size() ? data.size() : 1, limits);
  const Trace split = run_pieces(dir, data, step, limits);
  // A failure may be detected at a different piece boundary, but the frames
  // reported before it and the verdict must agree.
  if (whole.ok != split.ok) std::abort();
  if (whole.frames != split.frames) std::abort();
}

}  // namespace evmesh::nats::fuzz
