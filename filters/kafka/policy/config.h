// The Kafka filter's configuration (see docs/architecture.md), parsed and
// checked without touching Envoy so that libevmesh_check.so shares it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "filters/common/config/policy_ref.h"
#include <vector>

namespace evmesh::kafka {

// A topic pattern: an exact name, a prefix (one trailing '*') or a glob
// ('*' any run of characters, '?' exactly one). Topic names are 1-249
// characters of [A-Za-z0-9._-], so the wildcards never clash with a name.
class TopicPattern {
 public:
  static std::optional<TopicPattern> parse(std::string_view text, std::string* error);
  bool matches(std::string_view topic) const;
  const std::string& text() const { return text_; }

 private:
  enum class Kind : uint8_t { kExact, kPrefix, kGlob };
  std::string text_;
  std::string prefix_;  // kPrefix: text without the '*'
  Kind kind_ = Kind::kExact;
};

struct PatternList {
  bool has_allow = false;  // allow absent: everything allowed
  std::vector<TopicPattern> allow, deny;
  bool restricts() const { return has_allow || !deny.empty(); }
  bool allowed(std::string_view topic) const;
};

struct TopicGroup {
  std::string name;
  TopicPattern pattern;
};

struct DurabilityRule {
  TopicPattern topic;
  int16_t min_acks = -1;  // -1 (all) | 1 | 0
};

struct QuotaRule {
  TopicPattern topic;
  uint64_t records_per_second = 0;  // 0: no limit on that dimension
  uint64_t bytes_per_second = 0;
};

struct NodePort {
  int32_t id = 0;
  uint32_t port = 0;
};

struct KafkaConfig {
  std::string stat_prefix;
  uint32_t max_frame = 100u << 20;  // Kafka's socket.request.max.bytes default
  std::string advertised_host = "127.0.0.1";
  uint32_t bootstrap_port = 0;
  std::vector<NodePort> nodes;      // the broker map: node id -> sidecar port
  PatternList produce, consume;
  std::vector<TopicGroup> topics;   // metric groups, first match wins; "other" for the rest
  std::vector<DurabilityRule> durability;
  uint64_t max_batch_bytes = 0;     // 0: no limit of the filter's own
  std::vector<QuotaRule> quotas;
  bool verify_crc = true;           // CRC-32C of produced batches the filter reads
  live::PolicyRef policy;  // live policies from a control plane (optional)

  // Index into `topics` for a topic, or topics.size() ("other").
  size_t group(std::string_view topic) const;
  // The strongest min_acks rule matching the topic (-1 all, 1, 0 = none).
  int16_t min_acks(std::string_view topic) const;
  // Index into `quotas` (first match) or -1.
  int quota(std::string_view topic) const;
  // The sidecar port for a broker node, or 0 when the node is unknown.
  uint32_t node_port(int32_t id) const;
  // Whether Produce requests must be read whole (a policy decides on them).
  bool produce_needs_body() const {
    return produce.restricts() || !durability.empty() || max_batch_bytes != 0;
  }
};

// On failure returns std::nullopt and sets *error to "<field path>: <problem>".
std::optional<KafkaConfig> parse_kafka_config(std::string_view json, std::string* error);

// Strength order of acks: 0 < 1 < all (-1).
inline int acks_strength(int16_t acks) { return acks == -1 ? 2 : (acks >= 1 ? 1 : 0); }

}  // namespace evmesh::kafka
