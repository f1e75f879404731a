#include "filters/kafka/codec/topics.h"

#include "filters/kafka/codec/api_keys.h"

namespace evmesh::kafka {
namespace {

// A field of a request layout, present in versions [from, to].
enum class T : uint8_t { kEnd, kI8, kBool, kI16, kI32, kI64, kUuid, kStr, kBytes, kStructs, kI32s, kStrs };
enum Role : uint8_t { kNone = 0, kName = 1, kId = 2, kAllIfNull = 4 };
struct F {
  T t;
  int16_t from;
  int16_t to;
  uint8_t role;
  const F* sub;  // element layout of kStructs
};
constexpr int16_t X = 0x7fff;
constexpr F kEnd{T::kEnd, 0, 0, 0, nullptr};
constexpr F f(T t, int16_t from = 0, int16_t to = X, uint8_t role = kNone) { return F{t, from, to, role, nullptr}; }
constexpr F structs(const F* sub, int16_t from = 0, int16_t to = X, uint8_t role = kNone) {
  return F{T::kStructs, from, to, role, sub};
}

// Layouts from the Kafka message specs (fields after the last topic-carrying
// one are left out: the walk stops there).

// Produce: transactional_id(3+) acks timeout topics[name(0-12)|topic_id(13+), partitions[index records]]
constexpr F kProducePartitions[] = {f(T::kI32), f(T::kBytes), kEnd};
constexpr F kProduceTopics[] = {f(T::kStr, 0, 12, kName), f(T::kUuid, 13, X, kId), structs(kProducePartitions), kEnd};
constexpr F kProduce[] = {f(T::kStr, 3), f(T::kI16), f(T::kI32), structs(kProduceTopics), kEnd};

// Fetch: replica_id(0-14) max_wait min_bytes max_bytes(3+) isolation(4+) session_id(7+) session_epoch(7+) topics[...]
constexpr F kFetchPartitions[] = {f(T::kI32), f(T::kI32, 9), f(T::kI64), f(T::kI32, 12), f(T::kI64, 5), f(T::kI32),
                                  kEnd};
constexpr F kFetchTopics[] = {f(T::kStr, 0, 12, kName), f(T::kUuid, 13, X, kId), structs(kFetchPartitions), kEnd};
constexpr F kFetch[] = {f(T::kI32, 0, 14), f(T::kI32), f(T::kI32), f(T::kI32, 3), f(T::kI8, 4),
                        f(T::kI32, 7),     f(T::kI32, 7), structs(kFetchTopics), kEnd};

// ListOffsets: replica_id isolation(2+) topics[name, partitions[index leader_epoch(4+) timestamp max_num(0)]]
constexpr F kListOffsetsPartitions[] = {f(T::kI32), f(T::kI32, 4), f(T::kI64), f(T::kI32, 0, 0), kEnd};
constexpr F kListOffsetsTopics[] = {f(T::kStr, 0, X, kName), structs(kListOffsetsPartitions), kEnd};
constexpr F kListOffsets[] = {f(T::kI32), f(T::kI8, 2), structs(kListOffsetsTopics), kEnd};

// Metadata: topics[topic_id(10+) name] (null: all topics)
constexpr F kMetadataTopics[] = {f(T::kUuid, 10, X, kId), f(T::kStr, 0, X, kName), kEnd};
constexpr F kMetadata[] = {structs(kMetadataTopics, 0, X, kAllIfNull), kEnd};

// OffsetCommit: group generation(1+) member(1+) instance(7+) retention(2-4) topics[name(0-9)|id(10+), partitions]
constexpr F kOffsetCommitPartitions[] = {f(T::kI32), f(T::kI64), f(T::kI32, 6), f(T::kI64, 1, 1), f(T::kStr), kEnd};
constexpr F kOffsetCommitTopics[] = {f(T::kStr, 0, 9, kName), f(T::kUuid, 10, X, kId), structs(kOffsetCommitPartitions),
                                     kEnd};
constexpr F kOffsetCommit[] = {f(T::kStr),       f(T::kI32, 1), f(T::kStr, 1), f(T::kStr, 7),
                               f(T::kI64, 2, 4), structs(kOffsetCommitTopics), kEnd};

// OffsetFetch: v0-7 group topics[name partitions]; v8+ groups[group member(9+) epoch(9+) topics[name(8-9)|id(10+) partitions]]
constexpr F kOffsetFetchTopics[] = {f(T::kStr, 0, X, kName), f(T::kI32s), kEnd};
constexpr F kOffsetFetchGroupTopics[] = {f(T::kStr, 8, 9, kName), f(T::kUuid, 10, X, kId), f(T::kI32s), kEnd};
constexpr F kOffsetFetchGroups[] = {f(T::kStr), f(T::kStr, 9), f(T::kI32, 9), structs(kOffsetFetchGroupTopics), kEnd};
constexpr F kOffsetFetch[] = {f(T::kStr, 0, 7), structs(kOffsetFetchTopics, 0, 7), structs(kOffsetFetchGroups, 8), kEnd};

// CreateTopics: topics[name partitions replication assignments[index brokers] configs[name value]]
constexpr F kCreateTopicsAssign[] = {f(T::kI32), f(T::kI32s), kEnd};
constexpr F kCreateTopicsConfigs[] = {f(T::kStr), f(T::kStr), kEnd};
constexpr F kCreateTopicsTopic[] = {f(T::kStr, 0, X, kName), f(T::kI32), f(T::kI16), structs(kCreateTopicsAssign),
                                    structs(kCreateTopicsConfigs), kEnd};
constexpr F kCreateTopics[] = {structs(kCreateTopicsTopic), kEnd};

// DeleteTopics: topic_names(0-5) []string; topics(6+)[name id]
constexpr F kDeleteTopicsTopics[] = {f(T::kStr, 0, X, kName), f(T::kUuid, 0, X, kId), kEnd};
constexpr F kDeleteTopics[] = {f(T::kStrs, 0, 5, kName), structs(kDeleteTopicsTopics, 6), kEnd};

// DeleteRecords: topics[name partitions[index offset]]
constexpr F kDeleteRecordsPartitions[] = {f(T::kI32), f(T::kI64), kEnd};
constexpr F kDeleteRecordsTopics[] = {f(T::kStr, 0, X, kName), structs(kDeleteRecordsPartitions), kEnd};
constexpr F kDeleteRecords[] = {structs(kDeleteRecordsTopics), kEnd};

// OffsetForLeaderEpoch: replica_id(3+) topics[name partitions[index current_epoch(2+) epoch]]
constexpr F kOffsetForLeaderEpochPartitions[] = {f(T::kI32), f(T::kI32, 2), f(T::kI32), kEnd};
constexpr F kOffsetForLeaderEpochTopics[] = {f(T::kStr, 0, X, kName), structs(kOffsetForLeaderEpochPartitions), kEnd};
constexpr F kOffsetForLeaderEpoch[] = {f(T::kI32, 3), structs(kOffsetForLeaderEpochTopics), kEnd};

// AddPartitionsToTxn: v4+ transactions[id producer_id epoch verify_only topics[name partitions]];
// v0-3 id producer_id epoch topics[name partitions]
constexpr F kAddPartitionsTopics[] = {f(T::kStr, 0, X, kName), f(T::kI32s), kEnd};
constexpr F kAddPartitionsTxns[] = {f(T::kStr), f(T::kI64), f(T::kI16), f(T::kBool), structs(kAddPartitionsTopics), kEnd};
constexpr F kAddPartitionsToTxn[] = {structs(kAddPartitionsTxns, 4), f(T::kStr, 0, 3), f(T::kI64, 0, 3),
                                     f(T::kI16, 0, 3), structs(kAddPartitionsTopics, 0, 3), kEnd};

// TxnOffsetCommit: txn group producer_id epoch generation(3+) member(3+) instance(3+) topics[name partitions]
constexpr F kTxnOffsetCommitPartitions[] = {f(T::kI32), f(T::kI64), f(T::kI32, 2), f(T::kStr), kEnd};
constexpr F kTxnOffsetCommitTopics[] = {f(T::kStr, 0, X, kName), structs(kTxnOffsetCommitPartitions), kEnd};
constexpr F kTxnOffsetCommit[] = {f(T::kStr),    f(T::kStr),    f(T::kI64),   f(T::kI16), f(T::kI32, 3),
                                  f(T::kStr, 3), f(T::kStr, 3), structs(kTxnOffsetCommitTopics), kEnd};

// CreatePartitions: topics[name count assignments[broker_ids]]
constexpr F kCreatePartitionsAssign[] = {f(T::kI32s), kEnd};
constexpr F kCreatePartitionsTopics[] = {f(T::kStr, 0, X, kName), f(T::kI32), structs(kCreatePartitionsAssign), kEnd};
constexpr F kCreatePartitions[] = {structs(kCreatePartitionsTopics), kEnd};

// ElectLeaders: election_type(1+) topic_partitions[topic partitions]
constexpr F kElectLeadersTopics[] = {f(T::kStr, 0, X, kName), f(T::kI32s), kEnd};
constexpr F kElectLeaders[] = {f(T::kI8, 1), structs(kElectLeadersTopics), kEnd};

// OffsetDelete: group topics[name partitions[index]]
constexpr F kOffsetDeletePartitions[] = {f(T::kI32), kEnd};
constexpr F kOffsetDeleteTopics[] = {f(T::kStr, 0, X, kName), structs(kOffsetDeletePartitions), kEnd};
constexpr F kOffsetDelete[] = {f(T::kStr), structs(kOffsetDeleteTopics), kEnd};

// DescribeProducers / DescribeTopicPartitions: topics[name ...]
constexpr F kDescribeProducersTopics[] = {f(T::kStr, 0, X, kName), f(T::kI32s), kEnd};
constexpr F kDescribeProducers[] = {structs(kDescribeProducersTopics), kEnd};
constexpr F kDescribeTopicPartitionsTopics[] = {f(T::kStr, 0, X, kName), kEnd};
constexpr F kDescribeTopicPartitions[] = {structs(kDescribeTopicPartitionsTopics), kEnd};

struct Layout {
  int16_t api_key;
  const F* root;
};
constexpr Layout kLayouts[] = {
    {api::kProduce, kProduce},
    {api::kFetch, kFetch},
    {api::kListOffsets, kListOffsets},
    {api::kMetadata, kMetadata},
    {api::kOffsetCommit, kOffsetCommit},
    {api::kOffsetFetch, kOffsetFetch},
    {api::kCreateTopics, kCreateTopics},
    {api::kDeleteTopics, kDeleteTopics},
    {api::kDeleteRecords, kDeleteRecords},
    {api::kOffsetForLeaderEpoch, kOffsetForLeaderEpoch},
    {api::kAddPartitionsToTxn, kAddPartitionsToTxn},
    {api::kTxnOffsetCommit, kTxnOffsetCommit},
    {api::kCreatePartitions, kCreatePartitions},
    {api::kElectLeaders, kElectLeaders},
    {api::kOffsetDelete, kOffsetDelete},
    {api::kDescribeProducers, kDescribeProducers},
    {api::kDescribeTopicPartitions, kDescribeTopicPartitions},
};

const F* find_layout(int16_t key) {
  for (const Layout& l : kLayouts)
    if (l.api_key == key) return l.root;
  return nullptr;
}

struct Walk {
  Reader& r;
  int16_t version;
  bool flex;
  RequestTopics* out;
};

// Walks one struct; topic fields go to *cur (*has set).
bool walk(Walk& w, const F* fields, TopicRef* cur, bool* has) {
  Reader& r = w.r;
  for (const F* f = fields; f->t != T::kEnd; ++f) {
    if (w.version < f->from || w.version > f->to) continue;
    switch (f->t) {
      case T::kI8:
      case T::kBool:
        r.skip(1);
        break;
      case T::kI16:
        r.skip(2);
        break;
      case T::kI32:
        r.skip(4);
        break;
      case T::kI64:
        r.skip(8);
        break;
      case T::kUuid: {
        Uuid u;
        r.uuid(&u);
        if ((f->role & kId) && cur) {
          cur->id = u;
          *has = true;
        }
        break;
      }
      case T::kStr: {
        Str s;
        r.string(w.flex, true, &s);
        if ((f->role & kName) && cur) {
          cur->name = s;
          *has = true;
        }
        break;
      }
      case T::kBytes: {
        Str s;
        r.bytes(w.flex, true, &s);
        break;
      }
      case T::kI32s: {
        int32_t n = 0;
        if (r.array(w.flex, true, 4, &n) && n > 0) r.skip(static_cast<size_t>(n) * 4);
        break;
      }
      case T::kStrs: {
        int32_t n = 0;
        r.array(w.flex, true, w.flex ? 1 : 2, &n);
        for (int32_t i = 0; i < n && r.ok(); ++i) {
          Str s;
          r.string(w.flex, true, &s);
          if (f->role & kName) w.out->topics.push_back(TopicRef{s, Uuid{}});
        }
        break;
      }
      case T::kStructs: {
        int32_t n = 0;
        r.array(w.flex, true, 1, &n);
        if (n == -1 && (f->role & kAllIfNull)) w.out->all = true;
        for (int32_t i = 0; i < n && r.ok(); ++i) {
          TopicRef t;
          bool h = false;
          walk(w, f->sub, &t, &h);
          if (w.flex) r.tagged_fields();
          if (h && r.ok()) w.out->topics.push_back(t);
        }
        break;
      }
      case T::kEnd:
        break;
    }
    if (!r.ok()) return false;
  }
  return true;
}

}  // namespace

bool request_carries_topics(int16_t api_key) { return find_layout(api_key) != nullptr; }

TopicsStatus topics_of_request(int16_t api_key, int16_t version, std::string_view body, RequestTopics* out,
                               Error* err, size_t base) {
  *out = RequestTopics{};
  const F* root = find_layout(api_key);
  if (root == nullptr) return TopicsStatus::kNoTopics;
  Reader r(body, base);
  Walk w{r, version, is_flexible(api_key, version), out};
  bool has = false;
  if (!walk(w, root, nullptr, &has)) {
    *err = r.error();
    return TopicsStatus::kError;
  }
  if (api_key == api::kMetadata && version == 0 && out->topics.empty()) out->all = true;
  return TopicsStatus::kOk;
}

}  // namespace evmesh::kafka
