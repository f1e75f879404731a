#include "filters/nats/policy/config.h"

#include "filters/common/config/json_config.h"

namespace evmesh::nats {

namespace {

using config::Json;
using config::ObjectReader;
using config::valid_name;

constexpr size_t kMaxGroups = 64;
constexpr size_t kMaxPatterns = 1024;

bool read_patterns(ObjectReader& r, std::string_view key, std::vector<SubjectPattern>* out, bool* present) {
  std::vector<std::string> texts;
  *present = r.has(key);
  if (!r.string_list(key, false, &texts)) return false;
  if (texts.size() > kMaxPatterns) return r.fail(config::join(r.path(), key), "too many patterns (max 1024)");
  for (size_t i = 0; i < texts.size(); ++i) {
    std::string err;
    auto p = SubjectPattern::parse(texts[i], &err);
    if (!p) return r.fail(config::join(config::join(r.path(), key), i), err);
    out->push_back(std::move(*p));
  }
  return true;
}

}  // namespace

std::optional<NatsConfig> parse_nats_config(std::string_view json, std::string* error) {
  error->clear();
  Json root;
  if (!config::parse_json(json, &root, error)) return std::nullopt;
  NatsConfig cfg;
  ObjectReader r(root, "", error);
  if (!r.only_keys({"stat_prefix", "max_control_line", "max_payload", "acl", "subjects", "policy"})) {
    return std::nullopt;
  }
  if (!live::read_policy_ref(root, &cfg.policy, error)) return std::nullopt;
  if (!r.string("stat_prefix", true, &cfg.stat_prefix)) return std::nullopt;
  if (!valid_name(cfg.stat_prefix)) {
    r.fail("stat_prefix", "must be 1-64 characters of [A-Za-z0-9_-]");
    return std::nullopt;
  }
  uint64_t mcl = cfg.max_control_line;
  if (!r.uint("max_control_line", false, 32, 1 << 20, &mcl)) return std::nullopt;
  cfg.max_control_line = static_cast<uint32_t>(mcl);
  if (!r.uint("max_payload", false, 1, 64ull << 20, &cfg.max_payload)) return std::nullopt;

  SubjectRules pub, sub;
  if (const Json* acl = r.object("acl", false)) {
    ObjectReader ar(*acl, "acl", error);
    if (!ar.only_keys({"publish", "subscribe"})) return std::nullopt;
    struct Side {
      const char* key;
      SubjectRules* rules;
    };
    for (Side side : {Side{"publish", &pub}, Side{"subscribe", &sub}}) {
      const Json* v = ar.object(side.key, false);
      if (!ar.ok()) return std::nullopt;
      if (v == nullptr) continue;
      ObjectReader sr(*v, config::join("acl", side.key), error);
      if (!sr.only_keys({"allow", "deny"})) return std::nullopt;
      bool deny_present = false;
      if (!read_patterns(sr, "allow", &side.rules->allow, &side.rules->has_allow)) return std::nullopt;
      if (!read_patterns(sr, "deny", &side.rules->deny, &deny_present)) return std::nullopt;
    }
  }
  if (!r.ok()) return std::nullopt;
  cfg.acl = Acl(std::move(pub), std::move(sub));

  std::vector<SubjectGroups::Group> groups;
  if (const Json* list = r.array("subjects", false)) {
    if (list->size() > kMaxGroups) {
      r.fail("subjects", "too many subject groups (max 64)");
      return std::nullopt;
    }
    for (size_t i = 0; i < list->size(); ++i) {
      const std::string path = config::join("subjects", i);
      ObjectReader gr((*list)[i], path, error);
      if (!gr.ok() || !gr.only_keys({"name", "pattern"})) return std::nullopt;
      std::string name, pattern;
      if (!gr.string("name", true, &name) || !gr.string("pattern", true, &pattern)) return std::nullopt;
      if (!valid_name(name) || name == "other") {
        gr.fail(config::join(path, "name"), "must be 1-64 characters of [A-Za-z0-9_-] and not \"other\"");
        return std::nullopt;
      }
      for (const auto& g : groups) {
        if (g.name == name) {
          gr.fail(config::join(path, "name"), "duplicate subject group name \"" + name + "\"");
          return std::nullopt;
        }
      }
      std::string err;
      auto p = SubjectPattern::parse(pattern, &err);
      if (!p) {
        gr.fail(config::join(path, "pattern"), err);
        return std::nullopt;
      }
      groups.push_back({name, std::move(*p)});
    }
  }
  if (!r.ok()) return std::nullopt;
  cfg.groups = SubjectGroups(std::move(groups));
  return cfg;
}

}  // namespace evmesh::nats
