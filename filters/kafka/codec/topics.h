// The topics a request names, for every request that carries topics, from
// one table of field layouts (topics.cc): Produce, Fetch, ListOffsets,
// Metadata, OffsetCommit, OffsetFetch, CreateTopics, DeleteTopics,
// DeleteRecords, OffsetForLeaderEpoch, AddPartitionsToTxn, TxnOffsetCommit,
// CreatePartitions, ElectLeaders, OffsetDelete, DescribeProducers,
// DescribeTopicPartitions.
//
// The layouts are walked only as far as the last topic-carrying field; each
// struct element that holds a topic name or id yields one TopicRef.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "filters/kafka/codec/wire.h"

namespace evmesh::kafka {

struct TopicRef {
  Str name = Str::none();  // null when only the id is sent
  Uuid id;                 // zero when only the name is sent
};

struct RequestTopics {
  std::vector<TopicRef> topics;
  bool all = false;  // Metadata asking for every topic (null array, or empty in v0)
};

enum class TopicsStatus : uint8_t { kOk, kNoTopics, kError };

// Whether requests of this api key carry topics (in some version).
bool request_carries_topics(int16_t api_key);

// kNoTopics for api keys without topics (or unknown ones); kError with *err
// for a body that does not fit the layout.
TopicsStatus topics_of_request(int16_t api_key, int16_t version, std::string_view body, RequestTopics* out,
                               Error* err, size_t base = 0);

}  // namespace evmesh::kafka
