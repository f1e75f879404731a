// The AMQP 0-9-1 content header frame payload:
//   class-id(short) weight(short) body-size(longlong) property-flags(short...)
//   property-list
// Properties are decoded for class basic (60); other classes keep their
// property bytes opaque.
#pragma once

#include <cstdint>
#include <string_view>

namespace evmesh::amqp {

// Property flag bits of class basic (bit 15 is the first property).
enum BasicFlag : uint16_t {
  kContentType = 1u << 15, kContentEncoding = 1u << 14, kHeaders = 1u << 13, kDeliveryMode = 1u << 12,
  kPriority = 1u << 11, kCorrelationId = 1u << 10, kReplyTo = 1u << 9, kExpiration = 1u << 8,
  kMessageId = 1u << 7, kTimestamp = 1u << 6, kType = 1u << 5, kUserId = 1u << 4, kAppId = 1u << 3,
  kClusterId = 1u << 2,
};

struct BasicProperties {
  uint16_t flags = 0;
  bool has(BasicFlag f) const { return (flags & f) != 0; }
  std::string_view content_type, content_encoding, correlation_id, reply_to, expiration, message_id, type, user_id,
      app_id, cluster_id;
  std::string_view headers;  // field table content (validated)
  uint8_t delivery_mode = 0, priority = 0;
  uint64_t timestamp = 0;
};

struct ContentHeader {
  uint16_t class_id = 0;
  uint16_t weight = 0;
  uint64_t body_size = 0;
  BasicProperties props;  // class 60 only
  std::string_view raw_properties;  // flags and property list, any class
};

struct HeaderError {
  size_t at = 0;
  const char* reason = "";
};

bool decode_content_header(std::string_view payload, ContentHeader* h, HeaderError* err);

}  // namespace evmesh::amqp
