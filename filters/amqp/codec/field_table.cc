#include "filters/amqp/codec/field_table.h"

namespace evmesh::amqp {

namespace {
bool fail(FieldError* err, size_t at, const char* reason) {
  err->at = at;
  err->reason = reason;
  return false;
}
}  // namespace

bool read_field_value(Reader& r, char type, int depth, FieldValue* v, FieldError* err) {
  const size_t at = r.pos();
  v->type = type;
  uint8_t u8 = 0;
  uint16_t u16 = 0;
  uint32_t u32 = 0;
  uint64_t u64 = 0;
  bool ok = true;
  switch (type) {
    case 't':
      ok = r.u8(&u8);
      v->boolean = u8 != 0;
      break;
    case 'b':
      ok = r.u8(&u8);
      v->i = static_cast<int8_t>(u8);
      break;
    case 'B':
      ok = r.u8(&u8);
      v->u = u8;
      break;
    case 's':
      ok = r.u16(&u16);
      v->i = static_cast<int16_t>(u16);
      break;
    case 'u':
      ok = r.u16(&u16);
      v->u = u16;
      break;
    case 'I':
      ok = r.u32(&u32);
      v->i = static_cast<int32_t>(u32);
      break;
    case 'i':
      ok = r.u32(&u32);
      v->u = u32;
      break;
    case 'l':
      ok = r.u64(&u64);
      v->i = static_cast<int64_t>(u64);
      break;
    case 'L':
    case 'T':
      ok = r.u64(&u64);
      v->u = u64;
      break;
    case 'f':
      ok = r.u32(&u32);
      std::memcpy(&v->f, &u32, 4);
      break;
    case 'd':
      ok = r.u64(&u64);
      std::memcpy(&v->d, &u64, 8);
      break;
    case 'D':
      ok = r.remaining() >= 5 && r.u8(&v->scale) && r.u32(&v->decimal);
      break;
    case 'S':
    case 'x':
      ok = r.longstr(&v->bytes);
      break;
    case 'V':
      break;
    case 'F':
    case 'A': {
      if (!r.longstr(&v->bytes)) return fail(err, at, "truncated nested table or array");
      if (depth >= kMaxTableDepth) return fail(err, at, "field tables nested too deep");
      FieldError inner;
      const bool good = type == 'F' ? validate_table(v->bytes, depth + 1, &inner)
                                    : validate_array(v->bytes, depth + 1, &inner);
      if (!good) return fail(err, at + 4 + inner.at, inner.reason);
      return true;
    }
    default:
      return fail(err, at == 0 ? 0 : at - 1, "unknown field value type");
  }
  if (!ok) return fail(err, at, "truncated field value");
  return true;
}

bool validate_table(std::string_view content, int depth, FieldError* err) {
  Reader r(content);
  while (!r.empty()) {
    std::string_view name;
    uint8_t type = 0;
    const size_t at = r.pos();
    if (!r.shortstr(&name) || !r.u8(&type)) return fail(err, at, "truncated field name or type");
    FieldValue v;
    if (!read_field_value(r, static_cast<char>(type), depth, &v, err)) return false;
  }
  return true;
}

bool validate_array(std::string_view content, int depth, FieldError* err) {
  Reader r(content);
  while (!r.empty()) {
    uint8_t type = 0;
    r.u8(&type);
    FieldValue v;
    if (!read_field_value(r, static_cast<char>(type), depth, &v, err)) return false;
  }
  return true;
}

}  // namespace evmesh::amqp
