// NATS client protocol parser, both directions, streaming.
//
// A flat state machine fed the stream in pieces of any size. Control lines
// are parsed in place when a piece holds the whole line, and copied into a
// bounded scratch only when a line is split across pieces. Payloads are
// skipped by count (never buffered) and their trailing CRLF is checked.
// The parser reports, it does not act: the sink gets each frame as soon as
// its control line is complete (before its payload), with stream offsets,
// so the caller can decide to pass, drop or answer it.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace evmesh::nats {

enum class Dir : uint8_t { kClientToServer, kServerToClient };

enum class Op : uint8_t { kConnect, kPub, kHpub, kSub, kUnsub, kPing, kPong, kInfo, kMsg, kHmsg, kOk, kErr };

const char* op_name(Op op);

struct Frame {
  Op op = Op::kPing;
  uint64_t start = 0;        // stream offset of the control line's first byte
  uint32_t line_len = 0;     // control line bytes, line end included
  bool has_payload = false;  // PUB, HPUB, MSG, HMSG
  uint64_t header_len = 0;   // HPUB/HMSG header bytes
  uint64_t payload_len = 0;  // payload bytes (headers included), trailing CRLF excluded
  // Views into the control line; valid only during the sink call.
  std::string_view subject, reply, sid, queue;
  std::string_view arg;  // CONNECT/INFO JSON, -ERR text, UNSUB max_msgs
  uint64_t frame_len() const { return line_len + (has_payload ? payload_len + 2 : 0); }
};

struct Limits {
  uint32_t max_control_line = 4096;  // whole control line, line end included
  uint64_t max_payload = 64ull << 20;  // sanity bound; policy limits are the filter's business
};

class Parser {
 public:
  Parser(Dir dir, Limits limits) : dir_(dir), limits_(limits) {}

  // Feeds the next bytes of the stream; calls sink(const Frame&) per frame.
  // Returns false on a protocol error (and from then on).
  template <class Sink>
  bool feed(std::string_view data, Sink&& sink) {
    size_t used = 0;
    return feed_impl(data, sink, false, &used);
  }
  // Like feed, but stops right after the next frame boundary; *used = bytes consumed.
  template <class Sink>
  bool feed_to_boundary(std::string_view data, Sink&& sink, size_t* used) {
    return feed_impl(data, sink, true, used);
  }

  bool failed() const { return state_ == State::kFailed; }
  // "offset N: <reason>; near '<snippet>'"
  const std::string& error() const { return error_; }
  // The text nats-server (2.15) sends in -ERR for this kind of error.
  const char* error_reply() const { return error_reply_; }
  // Stream offset of the frame (or byte) that caused the error.
  uint64_t error_offset() const { return error_offset_; }
  // Stream bytes consumed so far.
  uint64_t offset() const { return offset_; }
  bool at_frame_boundary() const { return state_ == State::kLine && scratch_.empty(); }
  bool in_control_line() const { return state_ == State::kLine && !scratch_.empty(); }
  // The bytes of the control line being assembled (valid when in_control_line()).
  std::string_view partial_line() const { return scratch_; }
  // Stream offset of the control line being assembled (valid when in_control_line()).
  uint64_t line_start() const { return line_start_; }
  // Bytes of payload (and its CRLF) still to come for the current frame.
  uint64_t payload_remaining() const;

 private:
  enum class State : uint8_t { kLine, kPayload, kPayloadCR, kPayloadLF, kFailed };

  template <class Sink>
  bool feed_impl(std::string_view data, Sink& sink, bool stop_at_boundary, size_t* used);
  bool parse_line(std::string_view line, uint64_t start, Frame* f);
  // Keeps a copy of a short, valid line and its parse (views re-pointed into the copy).
  void remember(std::string_view line, const Frame& f);
  bool fail(const char* reason, const char* reply, std::string_view near) { return fail_at(offset_, reason, reply, near); }
  bool fail_at(uint64_t at, const char* reason, const char* reply, std::string_view near);

  Dir dir_;
  Limits limits_;
  State state_ = State::kLine;
  uint64_t offset_ = 0;
  uint64_t line_start_ = 0;
  uint64_t remaining_ = 0;
  uint64_t error_offset_ = 0;
  std::string scratch_;
  std::string cached_line_;  // the last control line parsed (up to kMaxCachedLine bytes)
  Frame cached_frame_;
  std::string error_;
  const char* error_reply_ = "";
};

template <class Sink>
bool Parser::feed_impl(std::string_view data, Sink& sink, bool stop_at_boundary, size_t* used) {
  const size_t size = data.size();
  *used = size;
  while (!data.empty()) {
    switch (state_) {
      case State::kLine: {
        const void* nl = std::memchr(data.data(), '\n', data.size());
        if (nl == nullptr) {
          if (scratch_.empty()) line_start_ = offset_;
          if (scratch_.size() + data.size() > limits_.max_control_line) {
            scratch_.append(data.data(), std::min<size_t>(data.size(), 32));
            return fail_at(line_start_, "control line too long", "maximum control line exceeded", scratch_);
          }
          scratch_.append(data.data(), data.size());
          offset_ += data.size();
          return true;
        }
        const size_t n = static_cast<const char*>(nl) - data.data() + 1;
        std::string_view line;
        uint64_t start;
        if (scratch_.empty()) {
          line = data.substr(0, n);
          start = offset_;
        } else {
          if (scratch_.size() + n > limits_.max_control_line) {
            return fail_at(line_start_, "control line too long", "maximum control line exceeded", scratch_);
          }
          scratch_.append(data.data(), n);
          line = scratch_;
          start = line_start_;
        }
        if (line.size() > limits_.max_control_line) {
          return fail_at(start, "control line too long", "maximum control line exceeded", line);
        }
        offset_ += n;
        data.remove_prefix(n);
        Frame f;
        if (line.size() == cached_line_.size() && line == std::string_view(cached_line_)) {
          // Publishers and subscribers repeat their control lines: reuse the parse.
          f = cached_frame_;
          f.start = start;
        } else {
          if (!parse_line(line, start, &f)) return false;
          remember(line, f);
        }
        sink(static_cast<const Frame&>(f));
        scratch_.clear();
        if (f.has_payload) {
          if (f.payload_len + 2 <= data.size()) {
            // Fast path: the whole payload and its CRLF are in this piece.
            const char* end = data.data() + f.payload_len;
            if (end[0] != '\r' || end[1] != '\n') {
              offset_ += f.payload_len + (end[0] == '\r' ? 1 : 0);
              return fail("payload not followed by CRLF", "Unknown Protocol Operation",
                          data.substr(f.payload_len + (end[0] == '\r' ? 1 : 0)));
            }
            offset_ += f.payload_len + 2;
            data.remove_prefix(f.payload_len + 2);
            if (stop_at_boundary) {
              *used = size - data.size();
              return true;
            }
            break;
          }
          remaining_ = f.payload_len;
          state_ = remaining_ == 0 ? State::kPayloadCR : State::kPayload;
        } else if (stop_at_boundary) {
          *used = size - data.size();
          return true;
        }
        break;
      }
      case State::kPayload: {
        const uint64_t k = remaining_ < data.size() ? remaining_ : data.size();
        offset_ += k;
        remaining_ -= k;
        data.remove_prefix(k);
        if (remaining_ == 0) state_ = State::kPayloadCR;
        break;
      }
      case State::kPayloadCR:
        if (data[0] != '\r') return fail("payload not followed by CRLF", "Unknown Protocol Operation", data);
        ++offset_;
        data.remove_prefix(1);
        state_ = State::kPayloadLF;
        break;
      case State::kPayloadLF:
        if (data[0] != '\n') return fail("payload not followed by CRLF", "Unknown Protocol Operation", data);
        ++offset_;
        data.remove_prefix(1);
        state_ = State::kLine;
        if (stop_at_boundary) {
          *used = size - data.size();
          return true;
        }
        break;
      case State::kFailed:
        return false;
    }
  }
  return true;
}

}  // namespace evmesh::nats
