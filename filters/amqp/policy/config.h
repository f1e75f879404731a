// The AMQP filter's configuration (see docs/architecture.md), parsed and
// checked without touching Envoy so that libevmesh_check.so shares it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "filters/common/config/policy_ref.h"
#include <vector>

#include "filters/amqp/policy/topic.h"

namespace evmesh::amqp {

// Publish rate limit for one exchange ("*" = every exchange without a rule
// of its own), per connection. 0 = no limit on that dimension.
struct ThrottleRule {
  std::string exchange;
  uint64_t messages_per_second = 0;
  uint64_t bytes_per_second = 0;
};

struct AmqpConfig {
  std::string stat_prefix;
  uint32_t max_frame = 131072;  // cap on the negotiated frame_max (RabbitMQ's default)
  uint64_t max_body_size = 0;   // 0: no limit of the filter's own
  Acl acl;
  ExchangeGroups exchanges;
  QueueGroups queues;
  std::vector<ThrottleRule> throttle;
  live::PolicyRef policy;  // live policies from a control plane (optional)
  // Index into `throttle` for an exchange, or -1.
  int throttle_rule(std::string_view exchange) const;
};

// On failure returns std::nullopt and sets *error to "<field path>: <problem>".
std::optional<AmqpConfig> parse_amqp_config(std::string_view json, std::string* error);

}  // namespace evmesh::amqp
