// AMQP 0-9-1 streaming frame splitter, one per direction.
//
//   client→server: protocol header "AMQP" 0 0 9 1, then frames
//   frame: type(octet) channel(short) size(long) payload(size) frame-end(0xCE)
//
// Fed the stream in pieces of any size. Method and content-header frames
// are decoded in place when a piece holds the whole frame, and copied into a
// scratch buffer (bounded by frame_max, checked first) only when split.
// They are reported once complete and their frame-end checked. Body frames
// are reported as soon as their 7-byte header is seen (payload skipped by
// count, never buffered); their frame end is checked afterwards. Heartbeats
// are reported when complete. Frame sizes are checked against frame_max
// (the configured cap, lowered by set_frame_max once Tune/TuneOk is seen).
// The parser reports, it does not act.
#pragma once

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>

#include "filters/amqp/codec/content_header.h"
#include "filters/amqp/codec/methods.h"

namespace evmesh::amqp {

enum class Dir : uint8_t { kClientToServer, kServerToClient };

enum class FrameType : uint8_t { kProtocolHeader = 0, kMethod = 1, kHeader = 2, kBody = 3, kHeartbeat = 8 };

constexpr uint8_t kFrameEnd = 0xCE;
constexpr uint32_t kFrameOverhead = 8;      // 7-byte header + frame end
constexpr uint32_t kFrameMinSize = 4096;    // the spec's frame-min-size
constexpr char kProtocolHeader[] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};

struct Frame {
  FrameType type = FrameType::kHeartbeat;
  uint16_t channel = 0;
  uint32_t size = 0;       // payload bytes
  uint64_t start = 0;      // stream offset of the frame's first byte
  std::string_view payload;              // method/header/protocol header; valid during the sink call
  const Method* method = nullptr;        // kMethod
  const ContentHeader* header = nullptr; // kHeader
  uint64_t frame_len() const { return type == FrameType::kProtocolHeader ? 8 : uint64_t{size} + kFrameOverhead; }
};

class Parser {
 public:
  // `frame_max_cap`: the largest frame accepted (header and end included).
  Parser(Dir dir, uint32_t frame_max_cap)
      : dir_(dir), cap_(frame_max_cap < kFrameMinSize ? kFrameMinSize : frame_max_cap), frame_max_(cap_) {}

  // Feeds the next bytes; calls sink(const Frame&) per frame. Returns false
  // on a protocol error (and from then on).
  template <class Sink>
  bool feed(std::string_view data, Sink&& sink);

  // The negotiated frame_max (0 = no limit): the effective limit becomes
  // min(cap, frame_max), never below the spec's 4096.
  void set_frame_max(uint32_t frame_max);
  uint32_t frame_max() const { return frame_max_; }

  bool failed() const { return state_ == State::kFailed; }
  // "offset N: <reason> (<context>)"
  const std::string& error() const { return error_; }
  uint64_t error_offset() const { return error_offset_; }
  uint64_t offset() const { return offset_; }
  bool at_frame_boundary() const { return (state_ == State::kHeader || state_ == State::kProto) && have_ == 0; }
  // Inside a frame that is reported only once complete (a frame header, or a
  // method/content-header/heartbeat payload); the caller holds such bytes.
  bool in_partial_frame() const {
    return ((state_ == State::kProto || state_ == State::kHeader) && have_ != 0) || state_ == State::kPayload ||
           state_ == State::kEnd;
  }
  // Stream offset of the frame being assembled (valid when in_partial_frame()).
  uint64_t frame_start() const { return frame_start_; }
  // What is known of the frame being assembled: its 7-byte header once
  // complete (type, channel), and the payload bytes gathered so far.
  bool partial_header_known() const { return state_ == State::kPayload || state_ == State::kEnd; }
  uint8_t partial_type() const { return type_; }
  uint16_t partial_channel() const { return channel_; }
  std::string_view partial_payload() const { return scratch_; }

 private:
  enum class State : uint8_t { kProto, kHeader, kPayload, kEnd, kBody, kBodyEnd, kFailed };

  bool start_frame();  // after the 7 header bytes
  template <class Sink>
  bool finish_frame(std::string_view payload, Sink&& sink);
  bool decode(std::string_view payload, Frame* f);
  bool fail_at(uint64_t at, const std::string& reason);

  Dir dir_;
  uint32_t cap_;
  uint32_t frame_max_;
  State state_ = State::kProto;
  uint64_t offset_ = 0;
  uint64_t frame_start_ = 0;
  uint8_t hdr_[8] = {};
  size_t have_ = 0;        // bytes of hdr_ gathered
  uint8_t type_ = 0;
  uint16_t channel_ = 0;
  uint32_t size_ = 0;
  uint64_t remaining_ = 0; // body bytes still to skip
  std::string scratch_;    // a split method/header payload
  Method method_;
  ContentHeader header_;
  std::string error_;
  uint64_t error_offset_ = 0;
};

template <class Sink>
bool Parser::feed(std::string_view data, Sink&& sink) {
  while (!data.empty()) {
    switch (state_) {
      case State::kProto: {
        if (have_ == 0) {
          frame_start_ = offset_;
          // A server speaks a protocol header only to refuse ours.
          if (dir_ == Dir::kServerToClient && data[0] != 'A') {
            state_ = State::kHeader;
            break;
          }
        }
        const size_t k = std::min(data.size(), 8 - have_);
        std::memcpy(hdr_ + have_, data.data(), k);
        have_ += k;
        offset_ += k;
        data.remove_prefix(k);
        if (have_ < 8) return true;
        have_ = 0;
        const std::string_view got(reinterpret_cast<const char*>(hdr_), 8);
        if (dir_ == Dir::kClientToServer && got != std::string_view(kProtocolHeader, 8)) {
          return fail_at(frame_start_, "protocol header is not AMQP 0-9-1");
        }
        if (dir_ == Dir::kServerToClient && got.substr(0, 4) != "AMQP") {
          return fail_at(frame_start_, "bad protocol header");
        }
        Frame f;
        f.type = FrameType::kProtocolHeader;
        f.start = frame_start_;
        f.size = 0;
        f.payload = got;
        state_ = State::kHeader;
        sink(static_cast<const Frame&>(f));
        break;
      }
      case State::kHeader: {
        if (have_ == 0) frame_start_ = offset_;
        const size_t k = std::min(data.size(), 7 - have_);
        std::memcpy(hdr_ + have_, data.data(), k);
        have_ += k;
        offset_ += k;
        data.remove_prefix(k);
        if (have_ < 7) return true;
        have_ = 0;
        if (!start_frame()) return false;
        if (type_ == 3) {
          Frame f;
          f.type = FrameType::kBody;
          f.channel = channel_;
          f.size = size_;
          f.start = frame_start_;
          sink(static_cast<const Frame&>(f));
        }
        break;
      }
      case State::kPayload: {
        // Whole payload and frame end in this piece, nothing gathered: in place.
        if (scratch_.empty() && data.size() > size_) {
          const std::string_view payload = data.substr(0, size_);
          offset_ += size_;
          data.remove_prefix(size_);
          state_ = State::kEnd;
          if (static_cast<uint8_t>(data[0]) != kFrameEnd) {
            return fail_at(offset_, "frame end octet is not 0xCE");
          }
          ++offset_;
          data.remove_prefix(1);
          if (!finish_frame(payload, sink)) return false;
          break;
        }
        const size_t k = std::min<size_t>(data.size(), size_ - scratch_.size());
        scratch_.append(data.data(), k);
        offset_ += k;
        data.remove_prefix(k);
        if (scratch_.size() == size_) state_ = State::kEnd;
        break;
      }
      case State::kEnd: {
        if (static_cast<uint8_t>(data[0]) != kFrameEnd) return fail_at(offset_, "frame end octet is not 0xCE");
        ++offset_;
        data.remove_prefix(1);
        if (!finish_frame(scratch_, sink)) return false;
        scratch_.clear();
        break;
      }
      case State::kBody: {
        const uint64_t k = remaining_ < data.size() ? remaining_ : data.size();
        offset_ += k;
        remaining_ -= k;
        data.remove_prefix(static_cast<size_t>(k));
        if (remaining_ == 0) state_ = State::kBodyEnd;
        break;
      }
      case State::kBodyEnd:
        if (static_cast<uint8_t>(data[0]) != kFrameEnd) return fail_at(offset_, "frame end octet is not 0xCE");
        ++offset_;
        data.remove_prefix(1);
        state_ = State::kHeader;
        break;
      case State::kFailed:
        return false;
    }
  }
  return true;
}

template <class Sink>
bool Parser::finish_frame(std::string_view payload, Sink&& sink) {
  Frame f;
  f.type = static_cast<FrameType>(type_);
  f.channel = channel_;
  f.size = size_;
  f.start = frame_start_;
  f.payload = payload;
  if (!decode(payload, &f)) return false;
  state_ = State::kHeader;
  sink(static_cast<const Frame&>(f));
  return true;
}

}  // namespace evmesh::amqp
