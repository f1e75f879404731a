#include "filters/amqp/policy/config.h"

#include "filters/common/config/json_config.h"

namespace evmesh::amqp {

namespace {

using config::Json;
using config::ObjectReader;
using config::valid_name;
using config::join;

constexpr size_t kMaxGroups = 64;
constexpr size_t kMaxRules = 1024;

bool read_pattern(ObjectReader& r, std::string_view key, bool required, const char* dflt, TopicPattern* out) {
  std::string text = dflt;
  if (!r.string(key, required, &text)) return false;
  std::string err;
  auto p = TopicPattern::parse(text, &err);
  if (!p) return r.fail(join(r.path(), key), err);
  *out = std::move(*p);
  return true;
}

bool read_exchange(ObjectReader& r, std::string* out) {
  if (!r.string("exchange", true, out)) return false;
  if (out->size() > 255) return r.fail(join(r.path(), "exchange"), "longer than 255 bytes");
  return true;
}

// {"exchange": "x", "routing_key": "a.#"}
bool read_publish_rule(const Json& v, const std::string& path, std::string* error, PublishRule* out) {
  ObjectReader r(v, path, error);
  if (!r.ok() || !r.only_keys({"exchange", "routing_key"})) return false;
  return read_exchange(r, &out->exchange) && read_pattern(r, "routing_key", false, "#", &out->routing_key);
}

bool read_publish_rules(ObjectReader& r, std::string_view key, std::vector<PublishRule>* out, bool* present,
                        std::string* error) {
  *present = r.has(key);
  const Json* list = r.array(key, false);
  if (!r.ok()) return false;
  if (list == nullptr) return true;
  if (list->size() > kMaxRules) return r.fail(join(r.path(), key), "too many rules (max 1024)");
  for (size_t i = 0; i < list->size(); ++i) {
    PublishRule rule;
    if (!read_publish_rule((*list)[i], join(join(r.path(), key), i), error, &rule)) return false;
    out->push_back(std::move(rule));
  }
  return true;
}

bool read_queue_patterns(ObjectReader& r, std::string_view key, std::vector<TopicPattern>* out, bool* present) {
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

bool check_group_name(ObjectReader& r, const std::string& path, const std::string& name,
                      const std::vector<std::string>& seen) {
  if (!valid_name(name) || name == "other") {
    return r.fail(join(path, "name"), "must be 1-64 characters of [A-Za-z0-9_-] and not \"other\"");
  }
  for (const auto& s : seen) {
    if (s == name) return r.fail(join(path, "name"), "duplicate group name \"" + name + "\"");
  }
  return true;
}

}  // namespace

int AmqpConfig::throttle_rule(std::string_view exchange) const {
  int any = -1;
  for (size_t i = 0; i < throttle.size(); ++i) {
    if (throttle[i].exchange == exchange) return static_cast<int>(i);
    if (throttle[i].exchange == "*" && any < 0) any = static_cast<int>(i);
  }
  return any;
}

std::optional<AmqpConfig> parse_amqp_config(std::string_view json, std::string* error) {
  error->clear();
  Json root;
  if (!config::parse_json(json, &root, error)) return std::nullopt;
  AmqpConfig cfg;
  ObjectReader r(root, "", error);
  if (!r.only_keys({"stat_prefix", "max_frame", "max_body_size", "acl", "exchanges", "queues", "throttle", "policy"})) {
    return std::nullopt;
  }
  if (!live::read_policy_ref(root, &cfg.policy, error)) return std::nullopt;
  if (!r.string("stat_prefix", true, &cfg.stat_prefix)) return std::nullopt;
  if (!valid_name(cfg.stat_prefix)) {
    r.fail("stat_prefix", "must be 1-64 characters of [A-Za-z0-9_-]");
    return std::nullopt;
  }
  uint64_t mf = cfg.max_frame;
  if (!r.uint("max_frame", false, 4096, 16u << 20, &mf)) return std::nullopt;
  cfg.max_frame = static_cast<uint32_t>(mf);
  if (!r.uint("max_body_size", false, 1, 1ull << 31, &cfg.max_body_size)) return std::nullopt;

  PublishRules pub;
  QueueRules con;
  if (const Json* acl = r.object("acl", false)) {
    ObjectReader ar(*acl, "acl", error);
    if (!ar.only_keys({"publish", "consume"})) return std::nullopt;
    if (const Json* p = ar.object("publish", false)) {
      ObjectReader pr(*p, "acl.publish", error);
      bool deny_present = false;
      if (!pr.only_keys({"allow", "deny"}) || !read_publish_rules(pr, "allow", &pub.allow, &pub.has_allow, error) ||
          !read_publish_rules(pr, "deny", &pub.deny, &deny_present, error)) {
        return std::nullopt;
      }
    }
    if (!ar.ok()) return std::nullopt;
    if (const Json* c = ar.object("consume", false)) {
      ObjectReader cr(*c, "acl.consume", error);
      bool deny_present = false;
      if (!cr.only_keys({"allow", "deny"}) || !read_queue_patterns(cr, "allow", &con.allow, &con.has_allow) ||
          !read_queue_patterns(cr, "deny", &con.deny, &deny_present)) {
        return std::nullopt;
      }
    }
    if (!ar.ok()) return std::nullopt;
  }
  if (!r.ok()) return std::nullopt;
  cfg.acl = Acl(std::move(pub), std::move(con));

  std::vector<std::string> names;
  std::vector<ExchangeGroups::Group> xgroups;
  if (const Json* list = r.array("exchanges", false)) {
    if (list->size() > kMaxGroups) {
      r.fail("exchanges", "too many exchange groups (max 64)");
      return std::nullopt;
    }
    for (size_t i = 0; i < list->size(); ++i) {
      const std::string path = join("exchanges", i);
      ObjectReader gr((*list)[i], path, error);
      if (!gr.ok() || !gr.only_keys({"name", "exchange", "routing_key"})) return std::nullopt;
      ExchangeGroups::Group g;
      if (!gr.string("name", true, &g.name) || !check_group_name(gr, path, g.name, names)) return std::nullopt;
      if (!read_exchange(gr, &g.rule.exchange) || !read_pattern(gr, "routing_key", false, "#", &g.rule.routing_key)) {
        return std::nullopt;
      }
      names.push_back(g.name);
      xgroups.push_back(std::move(g));
    }
  }
  if (!r.ok()) return std::nullopt;
  cfg.exchanges = ExchangeGroups(std::move(xgroups));

  names.clear();
  std::vector<QueueGroups::Group> qgroups;
  if (const Json* list = r.array("queues", false)) {
    if (list->size() > kMaxGroups) {
      r.fail("queues", "too many queue groups (max 64)");
      return std::nullopt;
    }
    for (size_t i = 0; i < list->size(); ++i) {
      const std::string path = join("queues", i);
      ObjectReader gr((*list)[i], path, error);
      if (!gr.ok() || !gr.only_keys({"name", "pattern"})) return std::nullopt;
      QueueGroups::Group g;
      if (!gr.string("name", true, &g.name) || !check_group_name(gr, path, g.name, names)) return std::nullopt;
      if (!read_pattern(gr, "pattern", true, "", &g.pattern)) return std::nullopt;
      names.push_back(g.name);
      qgroups.push_back(std::move(g));
    }
  }
  if (!r.ok()) return std::nullopt;
  cfg.queues = QueueGroups(std::move(qgroups));

  if (const Json* list = r.array("throttle", false)) {
    if (list->size() > kMaxGroups) {
      r.fail("throttle", "too many throttle rules (max 64)");
      return std::nullopt;
    }
    for (size_t i = 0; i < list->size(); ++i) {
      const std::string path = join("throttle", i);
      ObjectReader tr((*list)[i], path, error);
      if (!tr.ok() || !tr.only_keys({"exchange", "messages_per_second", "bytes_per_second"})) return std::nullopt;
      ThrottleRule t;
      if (!read_exchange(tr, &t.exchange)) return std::nullopt;
      if (!tr.uint("messages_per_second", false, 1, 10000000, &t.messages_per_second) ||
          !tr.uint("bytes_per_second", false, 1, 1ull << 40, &t.bytes_per_second)) {
        return std::nullopt;
      }
      if (t.messages_per_second == 0 && t.bytes_per_second == 0) {
        tr.fail(path, "needs messages_per_second or bytes_per_second");
        return std::nullopt;
      }
      for (const auto& o : cfg.throttle) {
        if (o.exchange == t.exchange) {
          tr.fail(join(path, "exchange"), "duplicate throttle rule for exchange \"" + t.exchange + "\"");
          return std::nullopt;
        }
      }
      cfg.throttle.push_back(std::move(t));
    }
  }
  if (!r.ok()) return std::nullopt;
  return cfg;
}

}  // namespace evmesh::amqp
