// The one table of Kafka APIs: name, versions of the Apache Kafka 4.x specs
// (clients/src/main/resources/common/message/*Request.json) and the first
// flexible version. Header versions are derived from it, nowhere else.
#pragma once

#include <cstdint>

namespace evmesh::kafka {

namespace api {
enum : int16_t {
  kProduce = 0,
  kFetch = 1,
  kListOffsets = 2,
  kMetadata = 3,
  kControlledShutdown = 7,
  kOffsetCommit = 8,
  kOffsetFetch = 9,
  kFindCoordinator = 10,
  kJoinGroup = 11,
  kHeartbeat = 12,
  kLeaveGroup = 13,
  kSyncGroup = 14,
  kApiVersions = 18,
  kCreateTopics = 19,
  kDeleteTopics = 20,
  kDeleteRecords = 21,
  kInitProducerId = 22,
  kOffsetForLeaderEpoch = 23,
  kAddPartitionsToTxn = 24,
  kTxnOffsetCommit = 28,
  kCreatePartitions = 37,
  kElectLeaders = 43,
  kOffsetDelete = 47,
  kDescribeCluster = 60,
  kDescribeProducers = 61,
  kDescribeTopicPartitions = 75,
};
}  // namespace api

struct ApiSpec {
  int16_t key;
  const char* name;
  int16_t min_version;    // lowest version a Kafka 4.x broker accepts (-1: removed from 4.x)
  int16_t max_version;    // highest version in the 4.x specs
  int16_t flexible_from;  // first flexible version; -1 when none is
};

// nullptr for an api key that is not in the table.
const ApiSpec* find_api(int16_t key);
// "Produce", …, or "unknown".
const char* api_name(int16_t key);
// One past the highest api key in the table (for metric arrays).
int16_t api_key_limit();

// Unknown api key: false (its header is read as v1; see header.h).
bool is_flexible(int16_t key, int16_t version);

// Request header version: 0 for ControlledShutdown v0, 2 for flexible
// versions, else 1. Unknown keys: 1 (client_id is read, tagged fields are not).
int request_header_version(int16_t key, int16_t version);
// Response header version: 1 for flexible versions, else 0; ApiVersions
// responses always use 0 (clients must read them before knowing versions).
int response_header_version(int16_t key, int16_t version);

}  // namespace evmesh::kafka
