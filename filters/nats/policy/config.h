// The NATS filter's configuration (see docs/architecture.md), parsed and
// checked without touching Envoy so that libevmesh_check.so shares it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "filters/common/config/policy_ref.h"

#include "filters/nats/policy/subjects.h"

namespace evmesh::nats {

struct NatsConfig {
  std::string stat_prefix;
  uint32_t max_control_line = 4096;
  uint64_t max_payload = 1 << 20;
  Acl acl;
  SubjectGroups groups;
  live::PolicyRef policy;  // live policies from a control plane (optional)
};

// On failure returns std::nullopt and sets *error to "<field path>: <problem>".
std::optional<NatsConfig> parse_nats_config(std::string_view json, std::string* error);

}  // namespace evmesh::nats
