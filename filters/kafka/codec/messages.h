// Decoders (and, for the responses that carry broker addresses, encoders) of
// the Kafka message bodies the policies need. Each works on a whole body
// (the frame payload after the header) of one api version; `base` is the
// body's offset in the frame so that errors carry frame offsets. Decoded
// strings are views into the body. Arrays are bounded by the body size (each
// count is checked against the bytes remaining before anything is stored).
//
// Versions: every version in the Kafka 4.x specs, and the older ones still
// sent to older brokers where the layout is known (see each decoder). A
// version above max_decodable_version() fails with "unsupported api version".
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "filters/kafka/codec/topics.h"
#include "filters/kafka/codec/wire.h"

namespace evmesh::kafka {

// ---- ApiVersions response (v0-4) ---------------------------------------------

struct ApiVersionRange {
  int16_t api_key = 0;
  int16_t min_version = 0;
  int16_t max_version = 0;
  size_t max_version_offset = 0;  // of max_version in the body: patch in place to cap it
};
struct ApiVersionsResponse {
  size_t consumed = 0;  // body bytes decoded (trailing bytes are ignored, as Kafka does)
  int16_t version = 0;  // the layout actually decoded (v0 when the broker refused the version)
  int16_t error_code = 0;
  std::vector<ApiVersionRange> api_keys;
  int32_t throttle_time_ms = 0;
};
// A broker answers an unsupported ApiVersions version with error 35
// (UNSUPPORTED_VERSION) in a v0 body; that is recognised and decoded as v0.
bool decode_api_versions_response(std::string_view body, int16_t version, ApiVersionsResponse* out, Error* err,
                                  size_t base = 0);
// Caps the advertised max version of `api_key` to `max` in place (body bytes).
bool cap_api_version(std::string* body, const ApiVersionsResponse& r, int16_t api_key, int16_t max);
// Caps every api whose body this codec decodes to max_decodable_version(),
// and Produce/Fetch further to `max_produce_fetch` when >= 0 (e.g. 12: clients
// then name topics instead of sending topic ids). Returns the number capped.
int cap_to_decodable(std::string* body, const ApiVersionsResponse& r, int16_t max_produce_fetch = -1);

// ---- broker addresses ------------------------------------------------------

struct BrokerEndpoint {
  int32_t node_id = 0;
  Str host;
  int32_t port = 0;
  Str rack = Str::none();
  bool is_fenced = false;         // DescribeCluster v2+
  std::string_view tagged;        // the element's raw tagged fields (flexible versions)
};

// ---- Metadata response (v0-13) -----------------------------------------------

struct MetadataPartition {
  int16_t error_code = 0;
  int32_t partition_index = 0;
  int32_t leader_id = -1;
  int32_t leader_epoch = -1;
};
struct MetadataTopic {
  int16_t error_code = 0;
  Str name;  // null in v12+ when only the id is known
  Uuid topic_id;
  bool is_internal = false;
  std::vector<MetadataPartition> partitions;
};
struct MetadataResponse {
  size_t consumed = 0;  // body bytes decoded (trailing bytes are ignored, as Kafka does)
  int16_t version = 0;
  int32_t throttle_time_ms = 0;
  std::vector<BrokerEndpoint> brokers;
  Str cluster_id = Str::none();
  int32_t controller_id = -1;
  std::vector<MetadataTopic> topics;  // filled only when decoded with_topics
  int16_t error_code = 0;             // v13+
  // Layout for re-encoding: body bytes before and after the brokers array.
  std::string_view before_brokers, after_brokers;
};
bool decode_metadata_response(std::string_view body, int16_t version, bool with_topics, MetadataResponse* out,
                              Error* err, size_t base = 0);
std::string encode_metadata_response(const MetadataResponse& m);

// Topic id -> name, learned from Metadata v10+ responses (decoded with_topics),
// to name the topics of Produce v13 / Fetch v13+ (which send ids only).
// Bounded: beyond max_entries the oldest learned id is forgotten. Not
// thread-safe: one per worker, or guard it.
class TopicNames {
 public:
  explicit TopicNames(size_t max_entries = 65536) : max_(max_entries) {}
  void learn(const MetadataResponse& m);
  // nullptr when unknown (ask Metadata, or refuse: the policy decides).
  const std::string* find(const Uuid& id) const;
  size_t size() const { return names_.size(); }

 private:
  size_t max_;
  std::map<Uuid, std::string> names_;
  std::deque<Uuid> order_;
};

// ---- FindCoordinator response (v0-3 one coordinator, v4+ an array) -----------

struct Coordinator {
  Str key;  // v4+
  BrokerEndpoint node;
  int16_t error_code = 0;
  Str error_message = Str::none();
};
struct FindCoordinatorResponse {
  size_t consumed = 0;  // body bytes decoded (trailing bytes are ignored, as Kafka does)
  int16_t version = 0;
  int32_t throttle_time_ms = 0;
  std::vector<Coordinator> coordinators;  // exactly one for v0-3
  std::string_view tagged;                // top-level raw tagged fields (v3+)
};
bool decode_find_coordinator_response(std::string_view body, int16_t version, FindCoordinatorResponse* out,
                                      Error* err, size_t base = 0);
std::string encode_find_coordinator_response(const FindCoordinatorResponse& r);

// ---- DescribeCluster response (v0-2) -----------------------------------------

struct DescribeClusterResponse {
  size_t consumed = 0;  // body bytes decoded (trailing bytes are ignored, as Kafka does)
  int16_t version = 0;
  int32_t throttle_time_ms = 0;
  int16_t error_code = 0;
  Str error_message = Str::none();
  int8_t endpoint_type = 1;  // v1+
  Str cluster_id;
  int32_t controller_id = -1;
  std::vector<BrokerEndpoint> brokers;
  std::string_view before_brokers, after_brokers;
};
bool decode_describe_cluster_response(std::string_view body, int16_t version, DescribeClusterResponse* out,
                                      Error* err, size_t base = 0);
std::string encode_describe_cluster_response(const DescribeClusterResponse& r);

// ---- the one entry point for the sidecar's address rewrite ---------------------

// Called per broker/coordinator address; set *host/*port (the new host must
// stay alive until the call returns) and return true to change it.
using AddressMapper = std::function<bool(int32_t node_id, std::string_view host, int32_t port, std::string* new_host,
                                         int32_t* new_port)>;
enum class Rewrite : uint8_t { kUnchanged, kRewritten, kNotApplicable, kUnsupportedVersion, kError };
// For Metadata, FindCoordinator and DescribeCluster response bodies: decodes,
// maps every address and, if any changed, writes the re-encoded body to *out.
// kNotApplicable for other api keys; kUnsupportedVersion above the versions
// known here (prevent it with cap_to_decodable() on ApiVersions).
Rewrite rewrite_broker_addresses(int16_t api_key, int16_t version, std::string_view body, const AddressMapper& map,
                                 std::string* out, Error* err, size_t base = 0);

// ---- Produce request (v0-13) -------------------------------------------------

struct ProducePartition {
  int32_t index = 0;
  Str records;               // a record batch sequence (magic 2 from v3 on); null allowed
  size_t records_offset = 0;  // of the records bytes in the body
};
struct ProduceTopic {
  Str name;  // v0-12
  Uuid topic_id;  // v13+
  std::vector<ProducePartition> partitions;
};
struct ProduceRequest {
  size_t consumed = 0;  // body bytes decoded (trailing bytes are ignored, as Kafka does)
  Str transactional_id = Str::none();  // v3+
  int16_t acks = 0;
  int32_t timeout_ms = 0;
  std::vector<ProduceTopic> topics;
};
bool decode_produce_request(std::string_view body, int16_t version, ProduceRequest* out, Error* err,
                            size_t base = 0);
// Just acks (cheap: read before any topic), e.g. to know whether a response
// will come (acks=0: none).
bool produce_acks(std::string_view body, int16_t version, int16_t* acks, Error* err, size_t base = 0);

// Re-encodes a produce request (e.g. with the denied topics removed). Records
// and names are copied from the views; tagged fields are written empty.
std::string encode_produce_request(const ProduceRequest& p, int16_t version);

// ---- Produce response (v0-13) ------------------------------------------------

struct ProducePartitionResponse {
  int32_t index = 0;
  int16_t error_code = 0;
  int64_t base_offset = -1;
  int64_t log_append_time_ms = -1;  // v2+
  int64_t log_start_offset = -1;    // v5+
  std::string_view record_errors;   // v8+: the raw array (count included); empty = none
  Str error_message = Str::none();  // v8+
  std::string_view tagged;          // raw (flexible versions)
};
struct ProduceTopicResponse {
  Str name;       // v0-12
  Uuid topic_id;  // v13+
  std::vector<ProducePartitionResponse> partitions;
  std::string_view tagged;
};
struct ProduceResponse {
  size_t consumed = 0;
  std::vector<ProduceTopicResponse> topics;
  int32_t throttle_time_ms = 0;     // v1+
  size_t throttle_time_offset = 0;  // of throttle_time_ms in the body (patch in place)
  std::string_view tagged;
};
bool decode_produce_response(std::string_view body, int16_t version, ProduceResponse* out, Error* err,
                             size_t base = 0);
std::string encode_produce_response(const ProduceResponse& r, int16_t version);
// The response Kafka gives to `req` when every partition fails with
// error_code (e.g. 29 TOPIC_AUTHORIZATION_FAILED) — for the topics of `req`
// only; merge with the broker's response by appending its topics.
ProduceResponse produce_error_response(const ProduceRequest& req, int16_t error_code);

// ---- array splicing (drop elements, add elements, keep the rest byte for byte) ---

// Where an array sits in a body: its count prefix and each element's bytes.
struct ArraySpan {
  size_t count_offset = 0;
  size_t count_size = 0;
  bool compact = false;
  std::vector<std::pair<size_t, size_t>> elements;  // [begin, end) per element
  size_t end = 0;                                   // first byte after the array
};
// The body with the array's elements filtered by keep[i] and `append`
// (already encoded elements) added at the end; everything else unchanged.
std::string splice_array(std::string_view body, const ArraySpan& a, const std::vector<bool>& keep,
                         std::string_view append = {}, int32_t appended = 0);

// ---- Fetch request (v0-17) ---------------------------------------------------

struct FetchRequestPartition {
  int32_t partition = 0;
  int64_t fetch_offset = 0;
  int32_t partition_max_bytes = 0;
};
struct FetchRequestTopic {
  Str name;       // v0-12
  Uuid topic_id;  // v13+
  std::vector<FetchRequestPartition> partitions;
};
struct FetchRequest {
  size_t consumed = 0;
  int32_t max_wait_ms = 0;
  int32_t min_bytes = 0;
  int32_t max_bytes = 0;
  int8_t isolation_level = 0;
  int32_t session_id = 0;
  int32_t session_epoch = -1;
  size_t session_offset = 0;  // v7+: of session_id (session_epoch follows): patch to 0/-1 for a sessionless fetch
  std::vector<FetchRequestTopic> topics;
  ArraySpan topics_span;                 // to drop denied topics with splice_array()
  std::vector<TopicRef> forgotten;       // v7+
};
bool decode_fetch_request(std::string_view body, int16_t version, FetchRequest* out, Error* err, size_t base = 0);

// ---- Fetch response (v0-17) --------------------------------------------------

struct FetchPartition {
  int32_t index = 0;
  int16_t error_code = 0;
  int64_t high_watermark = 0;
  Str records;  // record batches; the last one may be partial
};
struct FetchTopic {
  Str name;       // v0-12
  Uuid topic_id;  // v13+
  std::vector<FetchPartition> partitions;
};
struct FetchResponse {
  size_t consumed = 0;  // body bytes decoded (trailing bytes are ignored, as Kafka does)
  ArraySpan topics_span;  // to add topics answered locally (see fetch_error_topics)
  int32_t throttle_time_ms = 0;
  size_t throttle_time_offset = 0;  // v1+: of throttle_time_ms in the body (patch in place)
  int16_t error_code = 0;
  int32_t session_id = 0;
  std::vector<FetchTopic> topics;
};
bool decode_fetch_response(std::string_view body, int16_t version, FetchResponse* out, Error* err, size_t base = 0);
// Encoded Fetch response topic elements that answer every partition of
// `topics` with error_code (e.g. 29): splice them in with splice_array().
std::string fetch_error_topics(const std::vector<FetchRequestTopic>& topics, int16_t version, int16_t error_code);

// Sets throttle_time_ms at `offset` of a body in place (quota enforcement).
bool patch_throttle_time(std::string* body, size_t offset, int32_t throttle_ms);

// Highest version each decoder here understands (a higher one: skip the body).
int16_t max_decodable_version(int16_t api_key, bool response);

}  // namespace evmesh::kafka
