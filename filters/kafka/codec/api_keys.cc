#include "filters/kafka/codec/api_keys.h"

namespace evmesh::kafka {
namespace {

// {key, name, min, max, flexible_from}. Broker-internal APIs removed in 4.0
// (ZooKeeper-era controller requests) keep their key so their headers parse.
constexpr ApiSpec kApis[] = {
    {0, "Produce", 3, 13, 9},
    {1, "Fetch", 4, 17, 12},
    {2, "ListOffsets", 1, 10, 6},
    {3, "Metadata", 0, 13, 9},
    {4, "LeaderAndIsr", -1, 7, 4},
    {5, "StopReplica", -1, 4, 2},
    {6, "UpdateMetadata", -1, 8, 6},
    {7, "ControlledShutdown", -1, 3, 3},
    {8, "OffsetCommit", 2, 10, 8},
    {9, "OffsetFetch", 1, 10, 6},
    {10, "FindCoordinator", 0, 6, 3},
    {11, "JoinGroup", 0, 9, 6},
    {12, "Heartbeat", 0, 4, 4},
    {13, "LeaveGroup", 0, 5, 4},
    {14, "SyncGroup", 0, 5, 4},
    {15, "DescribeGroups", 0, 6, 5},
    {16, "ListGroups", 0, 5, 3},
    {17, "SaslHandshake", 0, 1, -1},
    {18, "ApiVersions", 0, 4, 3},
    {19, "CreateTopics", 2, 7, 5},
    {20, "DeleteTopics", 1, 6, 4},
    {21, "DeleteRecords", 0, 2, 2},
    {22, "InitProducerId", 0, 6, 2},
    {23, "OffsetForLeaderEpoch", 2, 4, 4},
    {24, "AddPartitionsToTxn", 0, 5, 3},
    {25, "AddOffsetsToTxn", 0, 4, 3},
    {26, "EndTxn", 0, 5, 3},
    {27, "WriteTxnMarkers", 1, 1, 1},
    {28, "TxnOffsetCommit", 0, 5, 3},
    {29, "DescribeAcls", 1, 3, 2},
    {30, "CreateAcls", 1, 3, 2},
    {31, "DeleteAcls", 1, 3, 2},
    {32, "DescribeConfigs", 1, 4, 4},
    {33, "AlterConfigs", 0, 2, 2},
    {34, "AlterReplicaLogDirs", 1, 2, 2},
    {35, "DescribeLogDirs", 1, 4, 2},
    {36, "SaslAuthenticate", 0, 2, 2},
    {37, "CreatePartitions", 0, 3, 2},
    {38, "CreateDelegationToken", 1, 3, 2},
    {39, "RenewDelegationToken", 1, 2, 2},
    {40, "ExpireDelegationToken", 1, 2, 2},
    {41, "DescribeDelegationToken", 1, 3, 2},
    {42, "DeleteGroups", 0, 2, 2},
    {43, "ElectLeaders", 0, 2, 2},
    {44, "IncrementalAlterConfigs", 0, 1, 1},
    {45, "AlterPartitionReassignments", 0, 1, 0},
    {46, "ListPartitionReassignments", 0, 0, 0},
    {47, "OffsetDelete", 0, 0, -1},
    {48, "DescribeClientQuotas", 0, 1, 1},
    {49, "AlterClientQuotas", 0, 1, 1},
    {50, "DescribeUserScramCredentials", 0, 0, 0},
    {51, "AlterUserScramCredentials", 0, 0, 0},
    {52, "Vote", 0, 2, 0},
    {53, "BeginQuorumEpoch", 0, 1, 1},
    {54, "EndQuorumEpoch", 0, 1, 1},
    {55, "DescribeQuorum", 0, 2, 0},
    {56, "AlterPartition", 2, 3, 0},
    {57, "UpdateFeatures", 0, 1, 0},
    {58, "Envelope", 0, 0, 0},
    {59, "FetchSnapshot", 0, 1, 0},
    {60, "DescribeCluster", 0, 2, 0},
    {61, "DescribeProducers", 0, 0, 0},
    {62, "BrokerRegistration", 0, 4, 0},
    {63, "BrokerHeartbeat", 0, 1, 0},
    {64, "UnregisterBroker", 0, 0, 0},
    {65, "DescribeTransactions", 0, 0, 0},
    {66, "ListTransactions", 0, 1, 0},
    {67, "AllocateProducerIds", 0, 0, 0},
    {68, "ConsumerGroupHeartbeat", 0, 1, 0},
    {69, "ConsumerGroupDescribe", 0, 1, 0},
    {70, "ControllerRegistration", 0, 0, 0},
    {71, "GetTelemetrySubscriptions", 0, 0, 0},
    {72, "PushTelemetry", 0, 0, 0},
    {73, "AssignReplicasToDirs", 0, 0, 0},
    {74, "ListConfigResources", 0, 1, 0},
    {75, "DescribeTopicPartitions", 0, 0, 0},
    {76, "ShareGroupHeartbeat", 1, 1, 0},
    {77, "ShareGroupDescribe", 1, 1, 0},
    {78, "ShareFetch", 1, 1, 0},
    {79, "ShareAcknowledge", 1, 1, 0},
    {80, "AddRaftVoter", 0, 0, 0},
    {81, "RemoveRaftVoter", 0, 0, 0},
    {82, "UpdateRaftVoter", 0, 0, 0},
    {83, "InitializeShareGroupState", 0, 0, 0},
    {84, "ReadShareGroupState", 0, 0, 0},
    {85, "WriteShareGroupState", 0, 0, 0},
    {86, "DeleteShareGroupState", 0, 0, 0},
    {87, "ReadShareGroupStateSummary", 0, 0, 0},
    {88, "StreamsGroupHeartbeat", 0, 0, 0},
    {89, "StreamsGroupDescribe", 0, 0, 0},
    {90, "DescribeShareGroupOffsets", 0, 0, 0},
    {91, "AlterShareGroupOffsets", 0, 0, 0},
    {92, "DeleteShareGroupOffsets", 0, 0, 0},
};
constexpr int16_t kLimit = sizeof(kApis) / sizeof(kApis[0]);

// The table is indexed by key: keep it dense and in order.
constexpr bool dense() {
  for (int16_t i = 0; i < kLimit; ++i)
    if (kApis[i].key != i) return false;
  return true;
}
static_assert(dense(), "kApis must list keys 0..N-1 in order");

}  // namespace

const ApiSpec* find_api(int16_t key) { return key >= 0 && key < kLimit ? &kApis[key] : nullptr; }

const char* api_name(int16_t key) {
  const ApiSpec* a = find_api(key);
  return a ? a->name : "unknown";
}

int16_t api_key_limit() { return kLimit; }

bool is_flexible(int16_t key, int16_t version) {
  const ApiSpec* a = find_api(key);
  return a && a->flexible_from >= 0 && version >= a->flexible_from;
}

int request_header_version(int16_t key, int16_t version) {
  if (key == api::kControlledShutdown && version == 0) return 0;
  return is_flexible(key, version) ? 2 : 1;
}

int response_header_version(int16_t key, int16_t version) {
  if (key == api::kApiVersions) return 0;
  return is_flexible(key, version) ? 1 : 0;
}

}  // namespace evmesh::kafka
