#include "filters/kafka/policy/config.h"

#include "filters/common/config/json_config.h"

namespace evmesh::kafka {

namespace {

using config::Json;
using config::ObjectReader;
using config::valid_name;
using config::join;

constexpr size_t kMaxGroups = 64;
constexpr size_t kMaxRules = 1024;

bool topic_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}

// Iterative glob with one backtrack point: '*' any run, '?' one character.
bool glob_match(std::string_view p, std::string_view s) {
  size_t pi = 0, si = 0, star = std::string_view::npos, mark = 0;
  while (si < s.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == s[si])) {
      ++pi;
      ++si;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = si;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

bool read_patterns(ObjectReader& r, std::string_view key, std::vector<TopicPattern>* out, bool* present) {
  std::vector<std::string> texts;
  *present = r.has(key);
  if (!r.string_list(key, false, &texts)) return false;
  if (texts.size() > kMaxRules) return r.fail(join(r.path(), key), "too many patterns (max 1024)");
  for (size_t i = 0; i < texts.size(); ++i) {
    std::string err;
    auto p = TopicPattern::parse(texts[i], &err);
    if (!p) return r.fail(join(join(r.path(), key), i), err);
    out->push_back(std::move(*p));
  }
  return true;
}

bool read_pattern(ObjectReader& r, std::string_view key, TopicPattern* out) {
  std::string text;
  if (!r.string(key, true, &text)) return false;
  std::string err;
  auto p = TopicPattern::parse(text, &err);
  if (!p) return r.fail(join(r.path(), key), err);
  *out = std::move(*p);
  return true;
}

bool read_list(ObjectReader& r, std::string_view key, PatternList* out, std::string* error) {
  const Json* v = r.object(key, false);
  if (!r.ok()) return false;
  if (v == nullptr) return true;
  ObjectReader lr(*v, join("acl", key), error);
  bool deny_present = false;
  return lr.only_keys({"allow", "deny"}) && read_patterns(lr, "allow", &out->allow, &out->has_allow) &&
         read_patterns(lr, "deny", &out->deny, &deny_present);
}

}  // namespace

std::optional<TopicPattern> TopicPattern::parse(std::string_view text, std::string* error) {
  if (text.empty() || text.size() > 249) {
    *error = "invalid topic pattern \"" + std::string(text) + "\": must be 1-249 characters";
    return std::nullopt;
  }
  size_t wild = 0;
  for (char c : text) {
    if (c == '*' || c == '?') {
      ++wild;
    } else if (!topic_char(c)) {
      *error = "invalid topic pattern \"" + std::string(text) +
               "\": topic names are [A-Za-z0-9._-], plus '*' and '?' in patterns";
      return std::nullopt;
    }
  }
  TopicPattern p;
  p.text_ = std::string(text);
  if (wild == 0) {
    p.kind_ = Kind::kExact;
  } else if (wild == 1 && text.back() == '*') {
    p.kind_ = Kind::kPrefix;
    p.prefix_ = std::string(text.substr(0, text.size() - 1));
  } else {
    p.kind_ = Kind::kGlob;
  }
  return p;
}

bool TopicPattern::matches(std::string_view topic) const {
  switch (kind_) {
    case Kind::kExact:
      return topic == text_;
    case Kind::kPrefix:
      return topic.substr(0, prefix_.size()) == prefix_;
    case Kind::kGlob:
      return glob_match(text_, topic);
  }
  return false;
}

bool PatternList::allowed(std::string_view topic) const {
  if (has_allow) {
    bool any = false;
    for (const auto& p : allow) {
      if (p.matches(topic)) {
        any = true;
        break;
      }
    }
    if (!any) return false;
  }
  for (const auto& p : deny) {
    if (p.matches(topic)) return false;
  }
  return true;
}

size_t KafkaConfig::group(std::string_view topic) const {
  for (size_t i = 0; i < topics.size(); ++i) {
    if (topics[i].pattern.matches(topic)) return i;
  }
  return topics.size();
}

int16_t KafkaConfig::min_acks(std::string_view topic) const {
  int16_t best = 0;
  for (const auto& d : durability) {
    if (d.topic.matches(topic) && acks_strength(d.min_acks) > acks_strength(best)) best = d.min_acks;
  }
  return best;
}

int KafkaConfig::quota(std::string_view topic) const {
  for (size_t i = 0; i < quotas.size(); ++i) {
    if (quotas[i].topic.matches(topic)) return static_cast<int>(i);
  }
  return -1;
}

uint32_t KafkaConfig::node_port(int32_t id) const {
  for (const auto& n : nodes) {
    if (n.id == id) return n.port;
  }
  return 0;
}

std::optional<KafkaConfig> parse_kafka_config(std::string_view json, std::string* error) {
  error->clear();
  Json root;
  if (!config::parse_json(json, &root, error)) return std::nullopt;
  KafkaConfig cfg;
  ObjectReader r(root, "", error);
  if (!r.only_keys({"stat_prefix", "max_frame", "advertised_host", "bootstrap_port", "nodes", "acl", "topics",
                    "durability", "max_batch_bytes", "quotas", "verify_crc", "policy"})) {
    return std::nullopt;
  }
  if (!live::read_policy_ref(root, &cfg.policy, error)) return std::nullopt;
  if (!r.string("stat_prefix", true, &cfg.stat_prefix)) return std::nullopt;
  if (!valid_name(cfg.stat_prefix)) {
    r.fail("stat_prefix", "must be 1-64 characters of [A-Za-z0-9_-]");
    return std::nullopt;
  }
  uint64_t v = cfg.max_frame;
  if (!r.uint("max_frame", false, 1024, 1u << 30, &v)) return std::nullopt;
  cfg.max_frame = static_cast<uint32_t>(v);
  if (!r.string("advertised_host", false, &cfg.advertised_host)) return std::nullopt;
  if (cfg.advertised_host.empty() || cfg.advertised_host.size() > 255) {
    r.fail("advertised_host", "must be 1-255 characters");
    return std::nullopt;
  }
  v = 0;
  if (!r.uint("bootstrap_port", true, 1, 65535, &v)) return std::nullopt;
  cfg.bootstrap_port = static_cast<uint32_t>(v);
  if (!r.boolean("verify_crc", false, &cfg.verify_crc)) return std::nullopt;
  if (!r.uint("max_batch_bytes", false, 1, 1u << 30, &cfg.max_batch_bytes)) return std::nullopt;

  if (const Json* list = r.array("nodes", false)) {
    if (list->size() > 4096) {
      r.fail("nodes", "too many nodes (max 4096)");
      return std::nullopt;
    }
    for (size_t i = 0; i < list->size(); ++i) {
      const std::string path = join("nodes", i);
      ObjectReader nr((*list)[i], path, error);
      if (!nr.ok() || !nr.only_keys({"id", "port"})) return std::nullopt;
      uint64_t id = 0, port = 0;
      if (!nr.uint("id", true, 0, INT32_MAX, &id) || !nr.uint("port", true, 1, 65535, &port)) return std::nullopt;
      for (const auto& n : cfg.nodes) {
        if (n.id == static_cast<int32_t>(id)) {
          nr.fail(join(path, "id"), "duplicate node id " + std::to_string(id));
          return std::nullopt;
        }
      }
      cfg.nodes.push_back({static_cast<int32_t>(id), static_cast<uint32_t>(port)});
    }
  }
  if (!r.ok()) return std::nullopt;

  if (const Json* acl = r.object("acl", false)) {
    ObjectReader ar(*acl, "acl", error);
    if (!ar.only_keys({"produce", "consume"}) || !read_list(ar, "produce", &cfg.produce, error) ||
        !read_list(ar, "consume", &cfg.consume, error)) {
      return std::nullopt;
    }
  }
  if (!r.ok()) return std::nullopt;

  if (const Json* list = r.array("topics", false)) {
    if (list->size() > kMaxGroups) {
      r.fail("topics", "too many topic groups (max 64)");
      return std::nullopt;
    }
    for (size_t i = 0; i < list->size(); ++i) {
      const std::string path = join("topics", i);
      ObjectReader gr((*list)[i], path, error);
      if (!gr.ok() || !gr.only_keys({"name", "pattern"})) return std::nullopt;
      TopicGroup g;
      if (!gr.string("name", true, &g.name)) return std::nullopt;
      if (!valid_name(g.name) || g.name == "other") {
        gr.fail(join(path, "name"), "must be 1-64 characters of [A-Za-z0-9_-] and not \"other\"");
        return std::nullopt;
      }
      for (const auto& s : cfg.topics) {
        if (s.name == g.name) {
          gr.fail(join(path, "name"), "duplicate group name \"" + g.name + "\"");
          return std::nullopt;
        }
      }
      if (!read_pattern(gr, "pattern", &g.pattern)) return std::nullopt;
      cfg.topics.push_back(std::move(g));
    }
  }
  if (!r.ok()) return std::nullopt;

  if (const Json* list = r.array("durability", false)) {
    if (list->size() > kMaxGroups) {
      r.fail("durability", "too many durability rules (max 64)");
      return std::nullopt;
    }
    for (size_t i = 0; i < list->size(); ++i) {
      const std::string path = join("durability", i);
      ObjectReader dr((*list)[i], path, error);
      if (!dr.ok() || !dr.only_keys({"topic", "min_acks"})) return std::nullopt;
      DurabilityRule d;
      if (!read_pattern(dr, "topic", &d.topic)) return std::nullopt;
      const Json* a = dr.get("min_acks");
      if (a == nullptr) {
        dr.fail(join(path, "min_acks"), "required");
        return std::nullopt;
      }
      if (a->is_string() && a->get<std::string>() == "all") {
        d.min_acks = -1;
      } else if (a->is_number_integer() && (a->get<int64_t>() == -1 || a->get<int64_t>() == 0 ||
                                            a->get<int64_t>() == 1)) {
        d.min_acks = static_cast<int16_t>(a->get<int64_t>());
      } else {
        dr.fail(join(path, "min_acks"), "must be \"all\", -1, 1 or 0");
        return std::nullopt;
      }
      cfg.durability.push_back(std::move(d));
    }
  }
  if (!r.ok()) return std::nullopt;

  if (const Json* list = r.array("quotas", false)) {
    if (list->size() > kMaxGroups) {
      r.fail("quotas", "too many quota rules (max 64)");
      return std::nullopt;
    }
    for (size_t i = 0; i < list->size(); ++i) {
      const std::string path = join("quotas", i);
      ObjectReader qr((*list)[i], path, error);
      if (!qr.ok() || !qr.only_keys({"topic", "records_per_second", "bytes_per_second"})) return std::nullopt;
      QuotaRule q;
      if (!read_pattern(qr, "topic", &q.topic) ||
          !qr.uint("records_per_second", false, 1, 10000000, &q.records_per_second) ||
          !qr.uint("bytes_per_second", false, 1, 1ull << 40, &q.bytes_per_second)) {
        return std::nullopt;
      }
      if (q.records_per_second == 0 && q.bytes_per_second == 0) {
        qr.fail(path, "needs records_per_second or bytes_per_second");
        return std::nullopt;
      }
      cfg.quotas.push_back(std::move(q));
    }
  }
  if (!r.ok()) return std::nullopt;
  return cfg;
}

}  // namespace evmesh::kafka
