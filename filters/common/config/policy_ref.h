// The optional "policy" reference of a filter JSON: the listener's policies
// (ACLs, quotas, limits) come live from a control plane (see live/registry.h).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace evmesh::live {

// `"policy": {"name": ..., "source": "host:port"}`.
struct PolicyRef {
  std::string name;
  std::string source;
  bool present() const { return !name.empty(); }
};

// Reads an optional "policy" object: {"name": "<1-64 of [A-Za-z0-9_-]>", "source": "host:port"}.
// False with *error ("policy.<field>: problem") when present but wrong.
bool read_policy_ref(const nlohmann::json& root, PolicyRef* out, std::string* error);

}  // namespace evmesh::live
