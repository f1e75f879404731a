// AMQP field tables and arrays as RabbitMQ encodes them (its type codes, not
// the 0-9-1 spec's errata):
//
//   t bool(1)  b int8  B uint8  s int16  u uint16  I int32  i uint32
//   l int64  L uint64  f float  d double  D decimal(scale octet + uint32)
//   S long string  x byte array  A array  T timestamp(uint64)  F table  V void
//
// Tables are read in place; nesting (F inside A inside F ...) is bounded by
// kMaxTableDepth. Every declared length is checked against the bytes present.
#pragma once

#include <cstdint>
#include <string_view>

#include "filters/amqp/codec/wire.h"

namespace evmesh::amqp {

constexpr int kMaxTableDepth = 16;

struct FieldValue {
  char type = 'V';
  bool boolean = false;
  int64_t i = 0;        // b s I l
  uint64_t u = 0;       // B u i L T
  float f = 0;
  double d = 0;
  uint8_t scale = 0;    // D
  uint32_t decimal = 0; // D
  std::string_view bytes;  // S x: the string; A F: the content (without its length)
};

struct FieldError {
  size_t at = 0;           // offset in the input view
  const char* reason = "";
};

// Reads one value of type `type` (the type octet already consumed).
bool read_field_value(Reader& r, char type, int depth, FieldValue* v, FieldError* err);

// Validates a table / array content (the bytes after its 32-bit length).
bool validate_table(std::string_view content, int depth, FieldError* err);
bool validate_array(std::string_view content, int depth, FieldError* err);

// Calls fn(std::string_view name, const FieldValue&) per field; false when malformed.
template <class Fn>
bool for_each_field(std::string_view content, Fn&& fn, FieldError* err = nullptr) {
  FieldError local;
  FieldError* e = err ? err : &local;
  Reader r(content);
  while (!r.empty()) {
    std::string_view name;
    uint8_t type = 0;
    const size_t at = r.pos();
    if (!r.shortstr(&name) || !r.u8(&type)) {
      *e = {at, "truncated field name or type"};
      return false;
    }
    FieldValue v;
    if (!read_field_value(r, static_cast<char>(type), 1, &v, e)) return false;
    fn(name, static_cast<const FieldValue&>(v));
  }
  return true;
}

// Calls fn(const FieldValue&) per array item; false when malformed.
template <class Fn>
bool for_each_array_item(std::string_view content, Fn&& fn, FieldError* err = nullptr) {
  FieldError local;
  FieldError* e = err ? err : &local;
  Reader r(content);
  while (!r.empty()) {
    uint8_t type = 0;
    r.u8(&type);
    FieldValue v;
    if (!read_field_value(r, static_cast<char>(type), 1, &v, e)) return false;
    fn(static_cast<const FieldValue&>(v));
  }
  return true;
}

}  // namespace evmesh::amqp
