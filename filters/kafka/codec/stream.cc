#include "filters/kafka/codec/stream.h"

#include <algorithm>

namespace evmesh::kafka {

namespace {
constexpr int kNeedMore = -1;
constexpr int kFailed = -2;
constexpr size_t kMagicBytes = 17;  // baseOffset, batchLength, leaderEpoch, magic
}  // namespace

RecordsBodyWalker::RecordsBodyWalker(Kind kind, int16_t version, uint64_t body_size, size_t base, bool check_crc)
    : kind_(kind),
      version_(version),
      flex_(kind == Kind::kProduceRequest ? version >= 9 : version >= 12),
      body_size_(body_size),
      base_(base),
      check_crc_(check_crc) {}

bool RecordsBodyWalker::fail(uint64_t at, const char* reason) {
  if (state_ != State::kFailed) err_ = Error{base_ + at, reason};
  state_ = State::kFailed;
  return false;
}

void RecordsBodyWalker::end_batch(WalkSink& sink, bool complete) {
  const bool header = head_have_ >= kBatchHeaderSize || (head_have_ >= kMagicBytes && batch_.magic != 2);
  bool crc_ok = false;
  if (complete && check_crc_ && batch_.magic == 2) crc_ok = crc_ == batch_.crc;
  sink.batch(batch_, base_ + batch_start_, pos_ - batch_start_, header, complete, crc_ok);
  head_have_ = 0;
  batch_ = BatchHeader{};
}

namespace {

// Reads a records field length: -1 null.
bool records_length(Reader& r, bool flex, int64_t* n) {
  if (flex) {
    uint32_t u = 0;
    if (!r.uvarint(&u)) return false;
    *n = static_cast<int64_t>(u) - 1;
  } else {
    int32_t s = 0;
    if (!r.i32(&s)) return false;
    *n = s;
  }
  if (*n < -1) return r.fail("negative records length");
  return true;
}

}  // namespace

bool RecordsBodyWalker::feed(std::string_view piece, WalkSink& sink) {
  if (state_ == State::kFailed) return false;
  const int16_t max = kind_ == Kind::kProduceRequest ? 13 : 17;
  if (version_ < 0 || version_ > max) return fail(0, "unsupported api version");
  if (piece.size() > body_size_ - pos_ - buf_.size()) return fail(pos_ + buf_.size(), "more bytes than the body");

  // Parses the group of the current structural state from `in`.
  auto group = [&](std::string_view in) -> int {
    const uint64_t extra = body_size_ - pos_ - in.size();
    Reader r(in, base_ + pos_, extra);
    const bool produce = kind_ == Kind::kProduceRequest;
    auto finish = [&]() -> int {
      if (r.ok()) return static_cast<int>(r.pos());
      if (r.need_more()) return kNeedMore;
      err_ = r.error();
      state_ = State::kFailed;
      return kFailed;
    };
    switch (state_) {
      case State::kPrologue: {
        if (produce) {
          Str txn = Str::none();
          if (version_ >= 3) r.string(flex_, true, &txn);
          r.i16(&acks_);
          int32_t timeout = 0;
          r.i32(&timeout);
          transactional_ = !txn.null;
        } else {
          if (version_ >= 1) r.i32(&throttle_);
          if (version_ >= 7) {
            int16_t error = 0;
            int32_t session = 0;
            r.i16(&error);
            r.i32(&session);
          }
        }
        int32_t n = 0;
        r.array(flex_, false, 2, &n);
        const int got = finish();
        if (got >= 0) {
          topics_left_ = n;
          state_ = n > 0 ? State::kTopic : State::kTail;
        }
        return got;
      }
      case State::kTopic: {
        TopicRef t;
        if (version_ >= 13) {
          r.uuid(&t.id);
        } else {
          r.string(flex_, false, &t.name);
        }
        int32_t n = 0;
        r.array(flex_, false, produce ? 5 : 18, &n);
        const int got = finish();
        if (got >= 0) {
          topic_start_ = pos_;
          sink.topic(t, base_ + pos_);
          partitions_left_ = n;
          state_ = n > 0 ? State::kPartition : State::kTopicTail;
        }
        return got;
      }
      case State::kPartition: {
        int32_t index = 0;
        r.i32(&index);
        if (!produce) {
          int16_t error = 0;
          int64_t skip = 0;
          r.i16(&error);
          r.i64(&skip);                     // high watermark
          if (version_ >= 4) r.i64(&skip);  // last stable offset
          if (version_ >= 5) r.i64(&skip);  // log start offset
          if (version_ >= 4) {
            int32_t na = 0;  // aborted transactions
            r.array(flex_, true, 16, &na);
            for (int32_t k = 0; k < na && r.ok(); ++k) {
              r.skip(16);
              if (flex_) r.tagged_fields();
            }
          }
          if (version_ >= 11) {
            int32_t replica = 0;
            r.i32(&replica);
          }
        }
        int64_t len = 0;
        records_length(r, flex_, &len);
        if (r.ok() && len > 0 && static_cast<uint64_t>(len) > body_size_ - pos_ - r.pos()) {
          r.fail("records length exceeds frame");
        }
        const int got = finish();
        if (got >= 0) {
          sink.partition(index, len, base_ + pos_ + static_cast<uint64_t>(got));
          records_left_ = len > 0 ? static_cast<uint64_t>(len) : 0;
          head_have_ = 0;
          state_ = records_left_ > 0 ? State::kBatchHead : State::kPartitionTail;
        }
        return got;
      }
      case State::kPartitionTail: {
        if (flex_) r.tagged_fields();
        const int got = finish();
        if (got >= 0) state_ = --partitions_left_ > 0 ? State::kPartition : State::kTopicTail;
        return got;
      }
      case State::kTopicTail: {
        if (flex_) r.tagged_fields();
        const int got = finish();
        if (got >= 0) {
          sink.topic_end(base_ + pos_ + static_cast<uint64_t>(got));
          state_ = --topics_left_ > 0 ? State::kTopic : State::kTail;
        }
        return got;
      }
      case State::kTail: {
        if (flex_) r.tagged_fields();
        const int got = finish();
        if (got >= 0) state_ = State::kDone;
        return got;
      }
      default:
        return 0;
    }
  };

  while (state_ != State::kDone && state_ != State::kFailed) {
    if (state_ == State::kBatchHead || state_ == State::kBatchBody) {
      if (state_ == State::kBatchBody && batch_left_ == 0) {
        end_batch(sink, true);
        state_ = State::kBatchHead;
        continue;
      }
      if (records_left_ == 0) {
        // The records field ended inside a batch (or right after one).
        if (state_ == State::kBatchBody || head_have_ > 0) {
          if (kind_ == Kind::kProduceRequest) return fail(pos_, "truncated record batch");
          end_batch(sink, false);
        }
        state_ = State::kPartitionTail;
        continue;
      }
      if (piece.empty()) break;
      if (state_ == State::kBatchHead) {
        if (head_have_ == 0) batch_start_ = pos_;
        const uint32_t want = head_have_ < kMagicBytes ? kMagicBytes : kBatchHeaderSize;
        const size_t k = std::min<uint64_t>({want - head_have_, piece.size(), records_left_});
        std::copy(piece.data(), piece.data() + k, head_ + head_have_);
        head_have_ += k;
        piece.remove_prefix(k);
        pos_ += k;
        records_left_ -= k;
        if (head_have_ < want) continue;
        const int32_t len = static_cast<int32_t>(load_be32(head_ + kBatchLengthOffset));
        const int8_t magic = static_cast<int8_t>(head_[16]);
        if (len < 0) return fail(batch_start_ + kBatchLengthOffset, "negative record batch length");
        if (head_have_ == kMagicBytes && magic != 2) {
          if (magic < 0 || magic > 1 || kind_ == Kind::kProduceRequest) {
            return fail(batch_start_ + 16, "unknown record batch magic");
          }
          batch_ = BatchHeader{};
          batch_.magic = magic;
          batch_.batch_length = len;
          if (12 + static_cast<uint64_t>(len) < kMagicBytes) return fail(batch_start_ + 8, "record batch too short");
          batch_left_ = 12 + static_cast<uint64_t>(len) - kMagicBytes;
          state_ = State::kBatchBody;
          continue;
        }
        if (head_have_ < kBatchHeaderSize) continue;
        Error e;
        if (!decode_batch_header(std::string_view(head_, kBatchHeaderSize), &batch_, &e, base_ + batch_start_)) {
          err_ = e;
          state_ = State::kFailed;
          return false;
        }
        const uint64_t rest = batch_.total_size() - kBatchHeaderSize;
        if (rest > records_left_ && kind_ == Kind::kProduceRequest) {
          return fail(batch_start_ + kBatchLengthOffset, "record batch length exceeds records");
        }
        batch_left_ = rest;
        if (check_crc_) crc_ = crc32c(head_ + kBatchAttributesOffset, kBatchHeaderSize - kBatchAttributesOffset);
        state_ = State::kBatchBody;
        continue;
      }
      // kBatchBody (batch_left_ > 0 here)
      const size_t k = std::min<uint64_t>({batch_left_, piece.size(), records_left_});
      if (check_crc_ && batch_.magic == 2) crc_ = crc32c(piece.data(), k, crc_);
      piece.remove_prefix(k);
      pos_ += k;
      records_left_ -= k;
      batch_left_ -= k;
      continue;
    }

    // Structural state.
    if (buf_.empty()) {
      const int n = group(piece);
      if (n == kFailed) return false;
      if (n == kNeedMore) {
        buf_.assign(piece.data(), piece.size());
        break;
      }
      piece.remove_prefix(static_cast<size_t>(n));
      pos_ += static_cast<uint64_t>(n);
      continue;
    }
    if (piece.empty()) break;
    // Carried-over bytes: append a growing slice of this piece and retry.
    const size_t had = buf_.size();
    const size_t take = std::min(piece.size(), std::max<size_t>(256, had));
    buf_.append(piece.data(), take);
    const int n = group(buf_);
    if (n == kFailed) return false;
    if (n == kNeedMore) {
      piece.remove_prefix(take);
      continue;
    }
    if (static_cast<size_t>(n) < had) return fail(pos_, "internal: group shorter than carried bytes");
    piece.remove_prefix(static_cast<size_t>(n) - had);
    pos_ += static_cast<uint64_t>(n);
    buf_.clear();
  }
  if (state_ == State::kFailed) return false;
  if (state_ == State::kDone) {
    // Trailing bytes inside the frame are ignored (as Kafka does).
    pos_ += piece.size() + buf_.size();
    buf_.clear();
  }
  return true;
}

}  // namespace evmesh::kafka
