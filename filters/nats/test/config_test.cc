#include "filters/nats/policy/config.h"

#include <gtest/gtest.h>

namespace evmesh::nats {
namespace {

std::string error_of(const std::string& json) {
  std::string err;
  EXPECT_FALSE(parse_nats_config(json, &err).has_value()) << json;
  return err;
}

TEST(NatsConfig, ParsesAFullConfig) {
  std::string err;
  auto cfg = parse_nats_config(R"({
    "stat_prefix": "orders", "max_control_line": 8192.0, "max_payload": 1024,
    "acl": {"publish": {"allow": ["orders.>"], "deny": ["orders.secret.>"]},
            "subscribe": {"allow": [">"]}},
    "subjects": [{"name": "orders", "pattern": "orders.>"}]})",
                               &err);
  ASSERT_TRUE(cfg.has_value()) << err;
  EXPECT_EQ(cfg->stat_prefix, "orders");
  EXPECT_EQ(cfg->max_control_line, 8192u);
  EXPECT_EQ(cfg->max_payload, 1024u);
  EXPECT_TRUE(cfg->acl.allow_publish("orders.a"));
  EXPECT_FALSE(cfg->acl.allow_publish("orders.secret.a"));
  EXPECT_FALSE(cfg->acl.allow_publish("x"));
  EXPECT_EQ(cfg->groups.size(), 2u);
}

TEST(NatsConfig, DefaultsWhenAbsent) {
  std::string err;
  auto cfg = parse_nats_config(R"({"stat_prefix": "p"})", &err);
  ASSERT_TRUE(cfg.has_value()) << err;
  EXPECT_EQ(cfg->max_control_line, 4096u);
  EXPECT_EQ(cfg->max_payload, 1u << 20);
  EXPECT_TRUE(cfg->acl.allow_publish("anything"));
  EXPECT_EQ(cfg->groups.size(), 1u);
}

TEST(NatsConfig, RejectsWithFieldPaths) {
  EXPECT_EQ(error_of("not json"), "(config): not valid JSON");
  EXPECT_EQ(error_of("{}"), "stat_prefix: required");
  EXPECT_EQ(error_of(R"({"stat_prefix": "a b"})"), "stat_prefix: must be 1-64 characters of [A-Za-z0-9_-]");
  EXPECT_EQ(error_of(R"({"stat_prefix": "p", "max_paylod": 1})"),
            "max_paylod: unknown field (expected one of: stat_prefix, max_control_line, max_payload, acl, subjects, policy)");
  EXPECT_EQ(error_of(R"({"stat_prefix": "p", "max_payload": 0})"),
            "max_payload: must be between 1 and 67108864, got 0");
  EXPECT_EQ(error_of(R"({"stat_prefix": "p", "max_control_line": "4k"})"),
            "max_control_line: must be a number, got a string");
  EXPECT_EQ(error_of(R"({"stat_prefix": "p", "acl": {"publish": {"allow": ["a", "b..c"]}}})"),
            "acl.publish.allow[1]: invalid subject pattern \"b..c\": empty token");
  EXPECT_EQ(error_of(R"({"stat_prefix": "p", "acl": {"subscribe": {"deny": "x"}}})"),
            "acl.subscribe.deny: must be a list, got a string");
  EXPECT_EQ(error_of(R"({"stat_prefix": "p", "acl": {"publish": {"allow": [], "block": []}}})"),
            "acl.publish.block: unknown field (expected one of: allow, deny)");
  EXPECT_EQ(error_of(R"({"stat_prefix": "p", "acl": {"pub": {}}})"),
            "acl.pub: unknown field (expected one of: publish, subscribe)");
  EXPECT_EQ(error_of(R"({"stat_prefix": "p", "subjects": [{"name": "a", "pattern": "a.>"}, {"name": "a", "pattern": "b"}]})"),
            "subjects[1].name: duplicate subject group name \"a\"");
  EXPECT_EQ(error_of(R"({"stat_prefix": "p", "subjects": [{"name": "other", "pattern": "a"}]})"),
            "subjects[0].name: must be 1-64 characters of [A-Za-z0-9_-] and not \"other\"");
  EXPECT_EQ(error_of(R"({"stat_prefix": "p", "subjects": [{"name": "x", "pattern": "a.>.b"}]})"),
            "subjects[0].pattern: invalid subject pattern \"a.>.b\": '>' must be the last token");
  EXPECT_EQ(error_of(R"({"stat_prefix": "p", "subjects": [5]})"), "subjects[0]: must be an object, got a number");
}

}  // namespace
}  // namespace evmesh::nats
