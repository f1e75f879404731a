// The AMQP frame-parser fuzz body, shared by the libFuzzer target and the
// corpus replay test. The first byte picks the direction, the split step and
// the frame_max; the rest is the stream, fed whole and in pieces. Checks:
// pieces and whole agree (frames and verdict), frames tile the stream, the
// offset adds up, and every decoded field table can be walked.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "filters/amqp/codec/field_table.h"
#include "filters/amqp/codec/frame_parser.h"

namespace evmesh::amqp::fuzz {

inline void walk(std::string_view table, int depth, size_t* n);

inline void walk_value(const FieldValue& v, int depth, size_t* n) {
  ++*n;
  if (depth > kMaxTableDepth + 1) std::abort();  // validation bounds the nesting
  if (v.type == 'F') walk(v.bytes, depth + 1, n);
  if (v.type == 'A') {
    if (!for_each_array_item(v.bytes, [&](const FieldValue& x) { walk_value(x, depth + 1, n); })) std::abort();
  }
}

// Tables reported by the parser were validated: walking them must succeed.
inline void walk(std::string_view table, int depth, size_t* n) {
  if (!for_each_field(table, [&](std::string_view, const FieldValue& v) { walk_value(v, depth, n); })) std::abort();
}

struct Trace {
  std::vector<std::string> frames;
  bool ok = true;
  std::string error;
  uint64_t offset = 0;
};

inline Trace run_pieces(Dir dir, std::string_view data, size_t step, uint32_t frame_max) {
  Parser p(dir, frame_max);
  Trace t;
  uint64_t next_start = 0;
  bool tiled = true;
  auto sink = [&](const Frame& f) {
    if (f.start != next_start) tiled = false;
    next_start = f.start + f.frame_len();
    std::string s = std::to_string(static_cast<int>(f.type)) + "|" + std::to_string(f.channel) + "|" +
                    std::to_string(f.start) + "|" + std::to_string(f.size);
    size_t fields = 0;
    if (f.method) {
      s += "|" + std::string(f.method->name());
      walk(f.method->arguments, 1, &fields);
      walk(f.method->properties, 1, &fields);
      if (f.method->id() == kConnectionTuneOk) p.set_frame_max(f.method->frame_max);
    }
    if (f.header) walk(f.header->props.headers, 1, &fields);
    s += "|" + std::to_string(fields);
    t.frames.push_back(std::move(s));
  };
  for (size_t pos = 0; pos < data.size() && t.ok; pos += step) {
    t.ok = p.feed(data.substr(pos, step), sink);
  }
  if (!tiled) std::abort();
  if (t.ok && p.offset() != data.size()) std::abort();
  if (!t.ok && p.error().empty()) std::abort();
  t.error = p.error();
  t.offset = p.offset();
  return t;
}

inline void fuzz_one(const uint8_t* bytes, size_t size) {
  if (size == 0) return;
  const Dir dir = (bytes[0] & 1) ? Dir::kServerToClient : Dir::kClientToServer;
  const size_t step = 1 + (bytes[0] >> 1) % 17;
  const uint32_t frame_max = (bytes[0] & 0x80) ? 131072 : 4096;
  const std::string_view data(reinterpret_cast<const char*>(bytes + 1), size - 1);
  const Trace whole = run_pieces(dir, data, data.size() ? data.size() : 1, frame_max);
  const Trace split = run_pieces(dir, data, step, frame_max);
  if (whole.ok != split.ok) std::abort();
  if (whole.frames != split.frames) std::abort();
  if (whole.error != split.error) std::abort();
}

}  // namespace evmesh::amqp::fuzz
