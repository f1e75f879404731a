// Kafka wire primitives: one small reader per wire type over a contiguous
// frame, and the matching writers.
//
// Reader is a bounds-checked cursor with a sticky error: the first failure
// records the offset (relative to the frame, see `base`) and a reason, and
// every later read fails too and yields zero values, so a decoder may read a
// group of fields and check ok() once. Every length and count read from the
// wire is checked against the bytes remaining BEFORE anything is sized by it;
// nothing here allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

namespace evmesh::kafka {

struct Error {
  size_t offset = 0;
  const char* reason = nullptr;  // static text; nullptr when no error
  std::string describe() const { return "offset " + std::to_string(offset) + ": " + (reason ? reason : "ok"); }
};

// A string or bytes field: `null` for a null nullable field (then v is empty).
struct Str {
  std::string_view v;
  bool null = false;
  static Str of(std::string_view s) { return Str{s, false}; }
  static Str none() { return Str{{}, true}; }
  bool operator==(const Str& o) const { return null == o.null && v == o.v; }
};

struct Uuid {
  uint8_t b[16] = {};
  bool is_zero() const {
    for (uint8_t x : b)
      if (x) return false;
    return true;
  }
  bool operator==(const Uuid& o) const { return std::memcmp(b, o.b, 16) == 0; }
  bool operator<(const Uuid& o) const { return std::memcmp(b, o.b, 16) < 0; }
};

class Reader {
 public:
  // `base` is added to positions in errors (e.g. the header size when the
  // reader starts at the body), so errors carry frame offsets.
  explicit Reader(std::string_view buf, size_t base = 0) : buf_(buf), base_(base) {}
  // Streaming use: `extra` more bytes of the frame follow this buffer. Lengths
  // and counts are checked against buffer + extra; a read that runs past the
  // buffer but not past the frame fails with need_more() set.
  Reader(std::string_view buf, size_t base, uint64_t extra) : buf_(buf), base_(base), extra_(extra) {}
  bool need_more() const { return need_more_; }

  bool ok() const { return err_.reason == nullptr; }
  const Error& error() const { return err_; }
  size_t pos() const { return pos_; }  // relative to buf
  size_t remaining() const { return ok() ? buf_.size() - pos_ : 0; }
  std::string_view rest() const { return ok() ? buf_.substr(pos_) : std::string_view(); }
  std::string_view buffer() const { return buf_; }

  bool fail(const char* reason) { return fail_at(pos_, reason); }
  bool fail_at(size_t pos, const char* reason) {
    if (ok()) err_ = Error{base_ + pos, reason};
    return false;
  }

  bool skip(size_t n, const char* what = "truncated") {
    if (!ok()) return false;
    if (n > buf_.size() - pos_) return short_read(n, what);
    pos_ += n;
    return true;
  }
  bool view(size_t n, std::string_view* out, const char* what = "truncated") {
    *out = {};
    if (!ok()) return false;
    if (n > buf_.size() - pos_) return short_read(n, what);
    *out = buf_.substr(pos_, n);
    pos_ += n;
    return true;
  }

  bool i8(int8_t* v) { return fixed(v); }
  bool i16(int16_t* v) { return fixed(v); }
  bool i32(int32_t* v) { return fixed(v); }
  bool i64(int64_t* v) { return fixed(v); }
  bool u32(uint32_t* v) { return fixed(v); }
  bool boolean(bool* v) {
    int8_t b = 0;
    const bool r = fixed(&b);
    *v = b != 0;
    return r;
  }
  bool uuid(Uuid* u) {
    std::string_view s;
    if (!view(16, &s)) {
      *u = Uuid{};
      return false;
    }
    std::memcpy(u->b, s.data(), 16);
    return true;
  }

  // Unsigned LEB128 of at most 32 bits (5 bytes, the 5th < 16).
  bool uvarint(uint32_t* v) {
    uint64_t x = 0;
    const bool r = leb128(&x, 5, 32, "unsigned varint overflows 32 bits");
    *v = static_cast<uint32_t>(x);
    return r;
  }
  bool uvarlong(uint64_t* v) { return leb128(v, 10, 64, "unsigned varlong overflows 64 bits"); }
  // Zigzag-encoded signed varints (record fields).
  bool varint(int32_t* v) {
    uint32_t u = 0;
    const bool r = uvarint(&u);
    *v = static_cast<int32_t>((u >> 1) ^ (~(u & 1) + 1));
    return r;
  }
  bool varlong(int64_t* v) {
    uint64_t u = 0;
    const bool r = uvarlong(&u);
    *v = static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
    return r;
  }

  // STRING / NULLABLE_STRING (int16 length, -1 null) and
  // COMPACT_(NULLABLE_)STRING (unsigned varint length + 1, 0 null).
  bool string(bool compact, bool nullable, Str* out) {
    *out = Str{};
    int64_t n = 0;
    if (compact) {
      uint32_t u = 0;
      if (!uvarint(&u)) return false;
      n = static_cast<int64_t>(u) - 1;
    } else {
      int16_t s = 0;
      if (!i16(&s)) return false;
      n = s;
    }
    return sized(n, nullable, out, "string length exceeds frame", "negative string length");
  }
  // BYTES / NULLABLE_BYTES (int32 length) and COMPACT_(NULLABLE_)BYTES.
  bool bytes(bool compact, bool nullable, Str* out) {
    *out = Str{};
    int64_t n = 0;
    if (compact) {
      uint32_t u = 0;
      if (!uvarint(&u)) return false;
      n = static_cast<int64_t>(u) - 1;
    } else {
      int32_t s = 0;
      if (!i32(&s)) return false;
      n = s;
    }
    return sized(n, nullable, out, "bytes length exceeds frame", "negative bytes length");
  }

  // ARRAY (int32 count, -1 null) / COMPACT_ARRAY (unsigned varint count + 1,
  // 0 null). *count is -1 for null. The count is refused when the elements
  // could not fit: count * min_elem_size must not exceed the bytes remaining.
  bool array(bool compact, bool nullable, size_t min_elem_size, int32_t* count) {
    *count = 0;
    const size_t at = pos_;
    int64_t n = 0;
    if (compact) {
      uint32_t u = 0;
      if (!uvarint(&u)) return false;
      n = static_cast<int64_t>(u) - 1;
    } else {
      int32_t s = 0;
      if (!i32(&s)) return false;
      n = s;
    }
    if (n < 0) {
      if (n == -1 && nullable) {
        *count = -1;
        return true;
      }
      return fail_at(at, n == -1 ? "null array where not nullable" : "negative array count");
    }
    if (min_elem_size == 0) min_elem_size = 1;
    if (static_cast<uint64_t>(n) > (buf_.size() - pos_ + extra_) / min_elem_size) {
      return fail_at(at, "array count exceeds frame");
    }
    *count = static_cast<int32_t>(n);
    return true;
  }

  // Tagged fields of a flexible struct: skipped by size. fn(uint32 tag,
  // std::string_view value) sees each one (pass nullptr-like no-op to skip).
  template <class Fn>
  bool tagged_fields(Fn&& fn) {
    uint32_t n = 0;
    const size_t at = pos_;
    if (!uvarint(&n)) return false;
    if (n > (remaining() + extra_) / 2) return fail_at(at, "tagged field count exceeds frame");
    for (uint32_t i = 0; i < n; ++i) {
      uint32_t tag = 0, size = 0;
      std::string_view v;
      if (!uvarint(&tag) || !uvarint(&size) || !view(size, &v, "tagged field exceeds frame")) return false;
      fn(tag, v);
    }
    return true;
  }
  bool tagged_fields() {
    return tagged_fields([](uint32_t, std::string_view) {});
  }

 private:
  template <class T>
  bool fixed(T* v) {
    *v = 0;
    if (!ok()) return false;
    if (sizeof(T) > buf_.size() - pos_) return short_read(sizeof(T), "truncated");
    uint64_t x = 0;
    for (size_t i = 0; i < sizeof(T); ++i) x = (x << 8) | static_cast<uint8_t>(buf_[pos_ + i]);
    pos_ += sizeof(T);
    *v = static_cast<T>(x);
    return true;
  }

  bool leb128(uint64_t* v, int max_bytes, int bits, const char* overflow) {
    *v = 0;
    if (!ok()) return false;
    const size_t at = pos_;
    uint64_t x = 0;
    for (int i = 0; i < max_bytes; ++i) {
      if (pos_ >= buf_.size()) {
        pos_ = at;
        need_more_ = extra_ > 0;
        return fail("truncated varint");
      }
      const uint8_t b = static_cast<uint8_t>(buf_[pos_++]);
      const int shift = 7 * i;
      if (shift + 7 > bits && (b & 0x7f) >> (bits - shift) != 0) {
        pos_ = at;
        return fail(overflow);
      }
      x |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        *v = x;
        return true;
      }
    }
    pos_ = at;
    return fail(overflow);
  }

  // A read of n bytes past the buffer: more may come (streaming) or not.
  bool short_read(size_t n, const char* what) {
    if (n <= buf_.size() - pos_ + extra_) need_more_ = true;
    return fail(what);
  }

  bool sized(int64_t n, bool nullable, Str* out, const char* too_long, const char* negative) {
    const size_t at = pos_;
    if (n < 0) {
      if (n == -1 && nullable) {
        out->null = true;
        return true;
      }
      return fail_at(at, n == -1 ? "null where not nullable" : negative);
    }
    if (static_cast<uint64_t>(n) > buf_.size() - pos_ + extra_) return fail(too_long);
    if (static_cast<uint64_t>(n) > buf_.size() - pos_) return short_read(static_cast<size_t>(n), too_long);
    out->v = buf_.substr(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return true;
  }

  std::string_view buf_;
  size_t base_ = 0;
  size_t pos_ = 0;
  uint64_t extra_ = 0;
  bool need_more_ = false;
  Error err_;
};

// Appends Kafka wire types to a string.
class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}
  std::string* out() { return out_; }

  void i8(int8_t v) { fixed(v); }
  void i16(int16_t v) { fixed(v); }
  void i32(int32_t v) { fixed(v); }
  void i64(int64_t v) { fixed(v); }
  void u32(uint32_t v) { fixed(v); }
  void boolean(bool v) { i8(v ? 1 : 0); }
  void uuid(const Uuid& u) { out_->append(reinterpret_cast<const char*>(u.b), 16); }
  void raw(std::string_view s) { out_->append(s.data(), s.size()); }

  void uvarlong(uint64_t v) {
    while (v >= 0x80) {
      out_->push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_->push_back(static_cast<char>(v));
  }
  void uvarint(uint32_t v) { uvarlong(v); }
  void varint(int32_t v) { uvarint((static_cast<uint32_t>(v) << 1) ^ static_cast<uint32_t>(v >> 31)); }
  void varlong(int64_t v) { uvarlong((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63)); }

  void string(bool compact, const Str& s) {
    if (compact) {
      uvarint(s.null ? 0 : static_cast<uint32_t>(s.v.size() + 1));
    } else {
      i16(s.null ? -1 : static_cast<int16_t>(s.v.size()));
    }
    if (!s.null) raw(s.v);
  }
  void bytes(bool compact, const Str& s) {
    if (compact) {
      uvarint(s.null ? 0 : static_cast<uint32_t>(s.v.size() + 1));
    } else {
      i32(s.null ? -1 : static_cast<int32_t>(s.v.size()));
    }
    if (!s.null) raw(s.v);
  }
  // count -1 writes a null array.
  void array(bool compact, int32_t count) {
    if (compact) {
      uvarint(static_cast<uint32_t>(count + 1));
    } else {
      i32(count);
    }
  }
  void no_tagged_fields() { uvarint(0); }

 private:
  template <class T>
  void fixed(T v) {
    using U = std::make_unsigned_t<T>;
    const U u = static_cast<U>(v);
    for (int i = sizeof(T) - 1; i >= 0; --i) out_->push_back(static_cast<char>((u >> (8 * i)) & 0xff));
  }
  std::string* out_;
};

// Big-endian helpers for fixed positions (frame size prefixes, in-place patches).
inline uint32_t load_be32(const char* p) {
  return (static_cast<uint32_t>(static_cast<uint8_t>(p[0])) << 24) |
         (static_cast<uint32_t>(static_cast<uint8_t>(p[1])) << 16) |
         (static_cast<uint32_t>(static_cast<uint8_t>(p[2])) << 8) | static_cast<uint32_t>(static_cast<uint8_t>(p[3]));
}
inline uint16_t load_be16(const char* p) {
  return static_cast<uint16_t>((static_cast<uint8_t>(p[0]) << 8) | static_cast<uint8_t>(p[1]));
}
inline void store_be32(char* p, uint32_t v) {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
}
inline void store_be16(char* p, uint16_t v) {
  p[0] = static_cast<char>(v >> 8);
  p[1] = static_cast<char>(v);
}

}  // namespace evmesh::kafka
