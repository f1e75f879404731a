// The few frames the filter composes itself (local replies, upstream closes).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "filters/amqp/codec/frame_parser.h"
#include "filters/amqp/codec/wire.h"

namespace evmesh::amqp {

// A whole frame around `payload`.
inline std::string encode_frame(FrameType type, uint16_t channel, std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + kFrameOverhead);
  put_u8(&out, static_cast<uint8_t>(type));
  put_u16(&out, channel);
  put_u32(&out, static_cast<uint32_t>(payload.size()));
  out.append(payload.data(), payload.size());
  put_u8(&out, kFrameEnd);
  return out;
}

// channel.close (20, 40) or connection.close (10, 50) when channel == 0.
inline std::string encode_close(uint16_t channel, uint16_t reply_code, std::string_view reply_text,
                                uint16_t failed_class, uint16_t failed_method) {
  std::string p;
  put_u16(&p, channel == 0 ? 10 : 20);
  put_u16(&p, channel == 0 ? 50 : 40);
  put_u16(&p, reply_code);
  put_shortstr(&p, reply_text);
  put_u16(&p, failed_class);
  put_u16(&p, failed_method);
  return encode_frame(FrameType::kMethod, channel, p);
}

// channel.close-ok (20, 41).
inline std::string encode_channel_close_ok(uint16_t channel) {
  std::string p;
  put_u16(&p, 20);
  put_u16(&p, 41);
  return encode_frame(FrameType::kMethod, channel, p);
}

}  // namespace evmesh::amqp
