// AMQP 0-9-1 primitive types: a bounds-checked big-endian cursor over one
// contiguous view (a frame payload). Every read checks the remaining length
// first; nothing is allocated. A failed read leaves the cursor unchanged.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace evmesh::amqp {

class Reader {
 public:
  explicit Reader(std::string_view data) : d_(data) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return d_.size() - pos_; }
  bool empty() const { return pos_ == d_.size(); }

  bool u8(uint8_t* v) {
    if (remaining() < 1) return false;
    *v = static_cast<uint8_t>(d_[pos_]);
    pos_ += 1;
    return true;
  }
  bool u16(uint16_t* v) {
    if (remaining() < 2) return false;
    *v = static_cast<uint16_t>((byte(0) << 8) | byte(1));
    pos_ += 2;
    return true;
  }
  bool u32(uint32_t* v) {
    if (remaining() < 4) return false;
    *v = (static_cast<uint32_t>(byte(0)) << 24) | (static_cast<uint32_t>(byte(1)) << 16) |
         (static_cast<uint32_t>(byte(2)) << 8) | byte(3);
    pos_ += 4;
    return true;
  }
  bool u64(uint64_t* v) {
    if (remaining() < 8) return false;
    uint64_t r = 0;
    for (int i = 0; i < 8; ++i) r = (r << 8) | byte(i);
    *v = r;
    pos_ += 8;
    return true;
  }
  bool bytes(size_t n, std::string_view* out) {
    if (remaining() < n) return false;
    *out = d_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  // short string: octet length + bytes.
  bool shortstr(std::string_view* out) {
    if (remaining() < 1) return false;
    const size_t n = byte(0);
    if (remaining() < 1 + n) return false;
    *out = d_.substr(pos_ + 1, n);
    pos_ += 1 + n;
    return true;
  }
  // long string (and field tables / arrays): 32-bit length + bytes.
  bool longstr(std::string_view* out) {
    if (remaining() < 4) return false;
    const uint64_t n = (static_cast<uint64_t>(byte(0)) << 24) | (static_cast<uint64_t>(byte(1)) << 16) |
                       (static_cast<uint64_t>(byte(2)) << 8) | byte(3);
    if (remaining() - 4 < n) return false;  // checked before any use of n
    *out = d_.substr(pos_ + 4, static_cast<size_t>(n));
    pos_ += 4 + static_cast<size_t>(n);
    return true;
  }

 private:
  uint32_t byte(size_t i) const { return static_cast<uint8_t>(d_[pos_ + i]); }

  std::string_view d_;
  size_t pos_ = 0;
};

// Big-endian writers for the few frames the filter composes itself.
inline void put_u8(std::string* out, uint8_t v) { out->push_back(static_cast<char>(v)); }
inline void put_u16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v));
}
inline void put_u32(std::string* out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out->push_back(static_cast<char>(v >> s));
}
inline void put_u64(std::string* out, uint64_t v) {
  for (int s = 56; s >= 0; s -= 8) out->push_back(static_cast<char>(v >> s));
}
// Truncates to 255 bytes (a short string cannot hold more).
inline void put_shortstr(std::string* out, std::string_view s) {
  if (s.size() > 255) s = s.substr(0, 255);
  put_u8(out, static_cast<uint8_t>(s.size()));
  out->append(s.data(), s.size());
}
inline void put_longstr(std::string* out, std::string_view s) {
  put_u32(out, static_cast<uint32_t>(s.size()));
  out->append(s.data(), s.size());
}

}  // namespace evmesh::amqp
