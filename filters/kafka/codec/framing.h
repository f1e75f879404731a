// Kafka framing: a streaming splitter for int32-size-prefixed frames, the
// request/response headers, and the per-connection correlation of responses
// to requests.
//
// The splitter is fed the stream in pieces of any size. For each frame it
// reports the head (start offset, size, and the first `prefix_bytes` of the
// payload, enough for the request header) and then, when the last byte has
// passed, the frame; the whole payload is handed over only when the sink
// asked for it at the head (the body of a frame a policy needs). Views point
// into the fed piece when the bytes lie in one piece (zero copy), else into a
// scratch copy that grows only as bytes arrive (never sized by the wire).
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "filters/kafka/codec/wire.h"

namespace evmesh::kafka {

struct FrameLimits {
  uint32_t max_frame = 100u << 20;  // payload bytes (Kafka's socket.request.max.bytes default)
  uint32_t prefix_bytes = 512;      // payload bytes given at the head
};

struct FrameHead {
  uint64_t start = 0;  // stream offset of the 4-byte size prefix
  uint32_t size = 0;   // payload bytes after the prefix
  std::string_view prefix;  // first min(size, prefix_bytes) payload bytes; valid during the call
  uint64_t end() const { return start + 4 + size; }
};

class FrameSplitter {
 public:
  explicit FrameSplitter(FrameLimits limits = {}) : limits_(limits) {}

  // sink.head(const FrameHead&) -> bool: true to get the whole payload;
  // sink.frame(const FrameHead&, std::string_view payload): after the frame's
  //   last byte; payload empty unless requested. Views valid during the call.
  // Optional: sink.bytes(const FrameHead&, uint64_t payload_offset, std::string_view piece)
  //   gets every payload byte of a frame NOT captured whole, in order, as it
  //   passes (zero copy except the prefix when it straddled pieces): feed a
  //   RecordsBodyWalker from it without buffering the frame.
  // Returns false on a framing error (and from then on).
  template <class Sink>
  bool feed(std::string_view data, Sink&& sink);

  bool failed() const { return state_ == State::kFailed; }
  const std::string& error() const { return error_; }  // "offset N: reason"
  uint64_t offset() const { return offset_; }           // stream bytes consumed
  bool at_frame_boundary() const { return state_ == State::kSize && have_ == 0; }
  // Start of the frame in progress (valid when !at_frame_boundary()).
  uint64_t frame_start() const { return head_.start; }

 private:
  enum class State : uint8_t { kSize, kPrefix, kBody, kFailed };

  bool fail(uint64_t at, std::string reason) {
    state_ = State::kFailed;
    error_ = "offset " + std::to_string(at) + ": " + std::move(reason);
    return false;
  }

  FrameLimits limits_;
  State state_ = State::kSize;
  uint64_t offset_ = 0;
  char size_buf_[4] = {};
  uint32_t have_ = 0;       // bytes of the current part already seen
  uint32_t prefix_len_ = 0;
  bool whole_ = false;
  FrameHead head_;
  std::string scratch_;
  std::string error_;
};

namespace detail {
template <class Sink>
void pass_bytes(Sink& sink, const FrameHead& h, uint64_t at, std::string_view piece) {
  if constexpr (requires { sink.bytes(h, at, piece); }) {
    if (!piece.empty()) sink.bytes(h, at, piece);
  }
}
}  // namespace detail

template <class Sink>
bool FrameSplitter::feed(std::string_view data, Sink&& sink) {
  while (!data.empty()) {
    switch (state_) {
      case State::kSize: {
        if (have_ == 0) head_.start = offset_;
        const size_t k = std::min<size_t>(4 - have_, data.size());
        std::memcpy(size_buf_ + have_, data.data(), k);
        have_ += k;
        offset_ += k;
        data.remove_prefix(k);
        if (have_ < 4) break;
        const int32_t size = static_cast<int32_t>(load_be32(size_buf_));
        if (size < 0) return fail(head_.start, "negative frame size " + std::to_string(size));
        if (static_cast<uint32_t>(size) > limits_.max_frame) {
          return fail(head_.start, "frame size " + std::to_string(size) + " exceeds max " +
                                       std::to_string(limits_.max_frame));
        }
        head_.size = static_cast<uint32_t>(size);
        prefix_len_ = std::min(head_.size, limits_.prefix_bytes);
        have_ = 0;
        whole_ = false;
        scratch_.clear();
        state_ = State::kPrefix;
        if (head_.size == 0) {
          head_.prefix = {};
          sink.head(static_cast<const FrameHead&>(head_));
          sink.frame(static_cast<const FrameHead&>(head_), std::string_view());
          state_ = State::kSize;
        }
        break;
      }
      case State::kPrefix: {
        if (have_ == 0 && data.size() >= prefix_len_) {
          // Zero copy: the prefix (and perhaps the whole frame) is in this piece.
          head_.prefix = data.substr(0, prefix_len_);
          whole_ = sink.head(static_cast<const FrameHead&>(head_));
          if (!whole_) detail::pass_bytes(sink, head_, 0, data.substr(0, std::min<size_t>(head_.size, data.size())));
          if (data.size() >= head_.size) {
            sink.frame(static_cast<const FrameHead&>(head_), whole_ ? data.substr(0, head_.size) : std::string_view());
            offset_ += head_.size;
            data.remove_prefix(head_.size);
            state_ = State::kSize;
            break;
          }
          if (whole_) scratch_.assign(data.data(), data.size());
          have_ = static_cast<uint32_t>(data.size());
          offset_ += data.size();
          data = {};
          state_ = State::kBody;
          break;
        }
        const size_t k = std::min<size_t>(prefix_len_ - have_, data.size());
        scratch_.append(data.data(), k);
        have_ += k;
        offset_ += k;
        data.remove_prefix(k);
        if (have_ < prefix_len_) break;
        head_.prefix = scratch_;
        whole_ = sink.head(static_cast<const FrameHead&>(head_));
        if (!whole_) {
          detail::pass_bytes(sink, head_, 0, scratch_);
          scratch_.clear();
        }
        state_ = State::kBody;
        if (have_ == head_.size) {
          sink.frame(static_cast<const FrameHead&>(head_), whole_ ? std::string_view(scratch_) : std::string_view());
          state_ = State::kSize;
          have_ = 0;
        }
        break;
      }
      case State::kBody: {
        const size_t k = std::min<size_t>(head_.size - have_, data.size());
        if (whole_) {
          scratch_.append(data.data(), k);
        } else {
          detail::pass_bytes(sink, head_, have_, data.substr(0, k));
        }
        have_ += k;
        offset_ += k;
        data.remove_prefix(k);
        if (have_ == head_.size) {
          sink.frame(static_cast<const FrameHead&>(head_), whole_ ? std::string_view(scratch_) : std::string_view());
          state_ = State::kSize;
          have_ = 0;
        }
        break;
      }
      case State::kFailed:
        return false;
    }
  }
  return true;
}

// ---- headers ----------------------------------------------------------------

struct RequestHeader {
  int16_t api_key = 0;
  int16_t api_version = 0;
  int32_t correlation_id = 0;
  Str client_id = Str::none();  // absent in header v0
  int header_version = 1;
  uint32_t size = 0;    // header bytes (tagged fields included); the body starts here
  bool known = false;   // api key in the table (else the body is skipped by the frame size)
};

enum class Status : uint8_t { kOk, kNeedMore, kError };

// Decodes a request header from the start of a frame payload (or its prefix).
// kNeedMore when `payload` is a prefix too short to hold the header; then
// decode again with the whole payload.
Status decode_request_header(std::string_view payload, bool is_whole_payload, RequestHeader* h, Error* err);
void encode_request_header(const RequestHeader& h, std::string* out);

struct ResponseHeader {
  int32_t correlation_id = 0;
  uint32_t size = 0;  // 4, plus the tagged fields in v1
};
Status decode_response_header(std::string_view payload, int header_version, ResponseHeader* h, Error* err);
// Writes the header (v1: with no tagged fields).
void encode_response_header(int32_t correlation_id, int header_version, std::string* out);

// A whole frame (size prefix + header + body) from a header and a body.
std::string make_frame(std::string_view header, std::string_view body);

// ---- correlation --------------------------------------------------------------

struct InFlight {
  int32_t correlation_id = 0;
  int16_t api_key = 0;
  int16_t api_version = 0;
  uint64_t user = 0;            // the filter's own tag (e.g. request start time)
  bool expect_response = true;  // false for Produce with acks=0 (see produce_acks())
};

// Requests that await a response on one connection, oldest first. Kafka
// answers a connection's requests in order, so take() hits the front; an
// answer further in drops the entries before it (never answered: e.g.
// Produce acks=0, which Kafka does not answer but some brokers, like Tansu,
// do). Entries that expect no response give way when the map is full.
class CorrelationMap {
 public:
  explicit CorrelationMap(size_t max_in_flight = 1024) : max_(max_in_flight) {}
  // false when full of requests that expect a response (the filter treats
  // that as a protocol error).
  bool add(const InFlight& r) {
    if (q_.size() >= max_) {
      size_t i = 0;
      while (i < q_.size() && q_[i].expect_response) ++i;
      if (i == q_.size()) return false;
      q_.erase(q_.begin() + static_cast<std::ptrdiff_t>(i));
    }
    q_.push_back(r);
    return true;
  }
  // Removes and returns the request answered by correlation_id; entries in
  // front of it are dropped. false when unknown (pass the response through).
  bool take(int32_t correlation_id, InFlight* out) {
    for (size_t i = 0; i < q_.size(); ++i) {
      if (q_[i].correlation_id == correlation_id) {
        *out = q_[i];
        q_.erase(q_.begin(), q_.begin() + static_cast<std::ptrdiff_t>(i) + 1);
        return true;
      }
    }
    return false;
  }
  // The waiting request with this correlation id, or nullptr (nothing removed).
  const InFlight* peek(int32_t correlation_id) const {
    for (const InFlight& r : q_) {
      if (r.correlation_id == correlation_id) return &r;
    }
    return nullptr;
  }
  size_t size() const { return q_.size(); }
  // Requests still waiting that expect a response.
  size_t awaiting() const {
    size_t n = 0;
    for (const InFlight& r : q_) n += r.expect_response ? 1 : 0;
    return n;
  }

 private:
  size_t max_;
  std::deque<InFlight> q_;
};

}  // namespace evmesh::kafka
