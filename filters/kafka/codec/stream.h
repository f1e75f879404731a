// Streaming walkers for the two bodies that carry records: Produce requests
// and Fetch responses. Fed the body in pieces of any size (e.g. Envoy's chunk
// views, no copy of the frame), they report topics, partitions and record
// batch headers as the bytes pass; record bytes are never buffered (only a
// batch's 61-byte header and the small structural fields that straddle a
// piece boundary are copied). With check_crc, every complete batch's CRC-32C
// is computed on the fly.
//
// Offsets in events and errors are body offsets plus `base` (pass the header
// size + 4 to get frame offsets).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "filters/kafka/codec/records.h"
#include "filters/kafka/codec/topics.h"
#include "filters/kafka/codec/wire.h"

namespace evmesh::kafka {

class WalkSink {
 public:
  virtual ~WalkSink() = default;
  // A topic element starts at `offset`; views valid during the call.
  virtual void topic(const TopicRef& t, uint64_t offset) {}
  // A partition's records field: `size` bytes (-1: null) starting at `offset`.
  virtual void partition(int32_t index, int64_t size, uint64_t offset) {}
  // A batch of the current partition. complete=false: a partial batch at the
  // end of a fetch response's records (the header may be incomplete:
  // header_complete=false). crc_ok only when check_crc and complete.
  virtual void batch(const BatchHeader& h, uint64_t offset, uint64_t size, bool header_complete, bool complete,
                     bool crc_ok) {}
  // The topic element that started at topic()'s offset ends before `end`.
  virtual void topic_end(uint64_t end) {}
};

class RecordsBodyWalker {
 public:
  enum class Kind : uint8_t { kProduceRequest, kFetchResponse };

  RecordsBodyWalker(Kind kind, int16_t version, uint64_t body_size, size_t base = 0, bool check_crc = false);

  // Feeds the next bytes of the body (never more than body_size in total).
  // Returns false on an error (and from then on).
  bool feed(std::string_view piece, WalkSink& sink);

  bool done() const { return state_ == State::kDone; }
  bool failed() const { return state_ == State::kFailed; }
  const Error& error() const { return err_; }
  uint64_t offset() const { return pos_; }  // body bytes consumed

  // Prologue fields, valid once the first topic was reported.
  int16_t acks() const { return acks_; }                    // Produce
  int32_t throttle_time_ms() const { return throttle_; }    // Fetch
  uint64_t throttle_time_offset() const { return base_; }   // Fetch v1+: the first body field
  bool transactional() const { return transactional_; }     // Produce

 private:
  enum class State : uint8_t {
    kPrologue, kTopic, kPartition, kBatchHead, kBatchBody, kPartitionTail, kTopicTail, kTail, kDone, kFailed
  };

  bool fail(uint64_t at, const char* reason);
  void end_batch(WalkSink& sink, bool complete);

  Kind kind_;
  int16_t version_;
  bool flex_;
  uint64_t body_size_;
  size_t base_;
  bool check_crc_;
  State state_ = State::kPrologue;
  uint64_t pos_ = 0;          // body bytes consumed
  std::string buf_;           // structural bytes carried over from earlier pieces
  int32_t topics_left_ = 0;
  int32_t partitions_left_ = 0;
  uint64_t topic_start_ = 0;
  uint64_t records_left_ = 0;  // of the current partition's records field
  // current batch
  char head_[kBatchHeaderSize] = {};
  uint32_t head_have_ = 0;
  uint64_t batch_start_ = 0;
  uint64_t batch_left_ = 0;
  uint32_t crc_ = 0;
  BatchHeader batch_;
  int16_t acks_ = 0;
  int32_t throttle_ = 0;
  bool transactional_ = false;
  Error err_;
};

}  // namespace evmesh::kafka
