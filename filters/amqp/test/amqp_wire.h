// Test helpers: build AMQP 0-9-1 wire bytes by hand (independent of the codec's
// own encoder except for the frame envelope).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace evmesh::amqp::testing {

struct W {
  std::string b;
  W& u8(uint8_t v) {
    b.push_back(static_cast<char>(v));
    return *this;
  }
  W& u16(uint16_t v) { return u8(v >> 8).u8(v & 0xff); }
  W& u32(uint32_t v) { return u16(v >> 16).u16(v & 0xffff); }
  W& u64(uint64_t v) { return u32(static_cast<uint32_t>(v >> 32)).u32(static_cast<uint32_t>(v)); }
  W& raw(std::string_view s) {
    b.append(s.data(), s.size());
    return *this;
  }
  W& ss(std::string_view s) { return u8(static_cast<uint8_t>(s.size())).raw(s); }
  W& ls(std::string_view s) { return u32(static_cast<uint32_t>(s.size())).raw(s); }
  // Packs bits into octets, first bit in the least significant position.
  W& bits(std::initializer_list<bool> v) {
    uint8_t o = 0;
    int i = 0;
    for (bool x : v) {
      if (x) o |= static_cast<uint8_t>(1u << i);
      if (++i == 8) {
        u8(o);
        o = 0;
        i = 0;
      }
    }
    if (i != 0) u8(o);
    return *this;
  }
};

inline std::string frame(uint8_t type, uint16_t ch, std::string_view payload, uint8_t end = 0xCE) {
  W w;
  w.u8(type).u16(ch).u32(static_cast<uint32_t>(payload.size())).raw(payload).u8(end);
  return w.b;
}

inline std::string method(uint16_t ch, uint16_t cls, uint16_t mid, std::string_view args = {}) {
  W w;
  w.u16(cls).u16(mid).raw(args);
  return frame(1, ch, w.b);
}

inline std::string header(uint16_t ch, uint64_t body_size, uint16_t flags = 0, std::string_view props = {},
                          uint16_t cls = 60) {
  W w;
  w.u16(cls).u16(0).u64(body_size).u16(flags).raw(props);
  return frame(2, ch, w.b);
}

inline std::string body(uint16_t ch, std::string_view data) { return frame(3, ch, data); }

inline std::string heartbeat() { return frame(8, 0, ""); }

inline std::string proto() { return std::string("AMQP\0\0\x09\x01", 8); }

inline std::string publish(uint16_t ch, std::string_view exchange, std::string_view rk, bool mandatory = false) {
  return method(ch, 60, 40, W().u16(0).ss(exchange).ss(rk).bits({mandatory, false}).b);
}

}  // namespace evmesh::amqp::testing
