#include "filters/common/config/policy_ref.h"

#include "filters/common/config/json_config.h"

namespace evmesh::live {

bool read_policy_ref(const nlohmann::json& root, PolicyRef* out, std::string* error) {
  if (!root.is_object() || !root.contains("policy")) return true;
  const nlohmann::json& p = root["policy"];
  if (!p.is_object()) {
    *error = "policy: must be an object {name, source}";
    return false;
  }
  for (auto& [k, v] : p.items()) {
    if (k != "name" && k != "source") {
      *error = "policy." + k + ": unknown key";
      return false;
    }
  }
  if (!p.contains("name") || !p["name"].is_string()) {
    *error = "policy.name: required string";
    return false;
  }
  if (!p.contains("source") || !p["source"].is_string()) {
    *error = "policy.source: required string host:port";
    return false;
  }
  const std::string name = p["name"].get<std::string>();
  if (!config::valid_name(name)) {
    *error = "policy.name: must be 1-64 characters of [A-Za-z0-9_-]";
    return false;
  }
  const std::string source = p["source"].get<std::string>();
  const size_t colon = source.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == source.size() ||
      source.find_first_not_of("0123456789", colon + 1) != std::string::npos || source.size() - colon - 1 > 5 ||
      std::stoul(source.substr(colon + 1)) == 0 || std::stoul(source.substr(colon + 1)) > 65535) {
    *error = "policy.source: must be host:port";
    return false;
  }
  out->name = name;
  out->source = source;
  return true;
}

}  // namespace evmesh::live
