#include "filters/amqp/codec/frame_parser.h"

namespace evmesh::amqp {

void Parser::set_frame_max(uint32_t frame_max) {
  uint32_t v = (frame_max == 0 || frame_max > cap_) ? cap_ : frame_max;
  if (v < kFrameMinSize) v = kFrameMinSize;
  frame_max_ = v;
}

bool Parser::fail_at(uint64_t at, const std::string& reason) {
  error_ = "offset " + std::to_string(at) + ": " + reason;
  error_offset_ = at;
  state_ = State::kFailed;
  scratch_.clear();
  return false;
}

bool Parser::start_frame() {
  type_ = hdr_[0];
  channel_ = static_cast<uint16_t>((hdr_[1] << 8) | hdr_[2]);
  size_ = (static_cast<uint32_t>(hdr_[3]) << 24) | (static_cast<uint32_t>(hdr_[4]) << 16) |
          (static_cast<uint32_t>(hdr_[5]) << 8) | hdr_[6];
  const std::string where = " (channel " + std::to_string(channel_) + ")";
  switch (type_) {
    case 1:
    case 2:
    case 3:
      break;
    case 8:
      if (size_ != 0) return fail_at(frame_start_, "heartbeat frame with a payload" + where);
      break;
    default:
      return fail_at(frame_start_, "unknown frame type " + std::to_string(type_) + where);
  }
  if (uint64_t{size_} + kFrameOverhead > frame_max_) {
    return fail_at(frame_start_, "frame of " + std::to_string(uint64_t{size_} + kFrameOverhead) +
                                     " bytes exceeds frame_max " + std::to_string(frame_max_) + where);
  }
  if (type_ == 3) {
    remaining_ = size_;
    state_ = size_ == 0 ? State::kBodyEnd : State::kBody;
    return true;
  }
  // Method, header, heartbeat: gathered (size already checked above).
  scratch_.clear();
  if (size_ == 0) {
    state_ = State::kEnd;
  } else {
    state_ = State::kPayload;
  }
  return true;
}

bool Parser::decode(std::string_view payload, Frame* f) {
  const uint64_t base = frame_start_ + 7;
  switch (f->type) {
    case FrameType::kMethod: {
      method_ = Method();
      MethodError err;
      if (!decode_method(payload, &method_, &err)) {
        std::string what = method_.known() ? method_.name() : "method";
        return fail_at(base + err.at, std::string(err.reason) + " in " + what + " (channel " +
                                          std::to_string(f->channel) + ")");
      }
      f->method = &method_;
      return true;
    }
    case FrameType::kHeader: {
      header_ = ContentHeader();
      HeaderError err;
      if (!decode_content_header(payload, &header_, &err)) {
        return fail_at(base + err.at, std::string(err.reason) + " in content header (channel " +
                                          std::to_string(f->channel) + ")");
      }
      f->header = &header_;
      return true;
    }
    default:
      return true;
  }
}

}  // namespace evmesh::amqp
