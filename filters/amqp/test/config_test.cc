#include "filters/amqp/policy/config.h"

#include <gtest/gtest.h>

namespace evmesh::amqp {
namespace {

std::string error_of(const std::string& json) {
  std::string err;
  EXPECT_FALSE(parse_amqp_config(json, &err).has_value()) << json;
  return err;
}

TEST(AmqpConfig, ParsesAFullConfig) {
  std::string err;
  auto cfg = parse_amqp_config(R"({
    "stat_prefix": "orders", "max_frame": 65536.0, "max_body_size": 1048576,
    "acl": {"publish": {"allow": [{"exchange": "orders", "routing_key": "eu.#"}, {"exchange": ""}],
                        "deny": [{"exchange": "orders", "routing_key": "eu.secret.*"}]},
            "consume": {"allow": ["work.*"], "deny": ["work.admin"]}},
    "exchanges": [{"name": "eu", "exchange": "orders", "routing_key": "eu.#"}],
    "queues": [{"name": "work", "pattern": "work.#"}],
    "throttle": [{"exchange": "orders", "messages_per_second": 100}, {"exchange": "*", "bytes_per_second": 1000}]})",
                               &err);
  ASSERT_TRUE(cfg.has_value()) << err;
  EXPECT_EQ(cfg->stat_prefix, "orders");
  EXPECT_EQ(cfg->max_frame, 65536u);
  EXPECT_EQ(cfg->max_body_size, 1048576u);
  EXPECT_TRUE(cfg->acl.allow_publish("orders", "eu.x"));
  EXPECT_TRUE(cfg->acl.allow_publish("", "anything.at.all"));
  EXPECT_FALSE(cfg->acl.allow_publish("orders", "eu.secret.x"));
  EXPECT_FALSE(cfg->acl.allow_publish("logs", "x"));
  EXPECT_TRUE(cfg->acl.allow_consume("work.a"));
  EXPECT_FALSE(cfg->acl.allow_consume("work.admin"));
  EXPECT_EQ(cfg->exchanges.size(), 2u);
  EXPECT_EQ(cfg->queues.size(), 2u);
  ASSERT_EQ(cfg->throttle.size(), 2u);
  EXPECT_EQ(cfg->throttle_rule("orders"), 0);
  EXPECT_EQ(cfg->throttle_rule("logs"), 1);
}

TEST(AmqpConfig, DefaultsWhenAbsent) {
  std::string err;
  auto cfg = parse_amqp_config(R"({"stat_prefix": "p"})", &err);
  ASSERT_TRUE(cfg.has_value()) << err;
  EXPECT_EQ(cfg->max_frame, 131072u);
  EXPECT_EQ(cfg->max_body_size, 0u);
  EXPECT_TRUE(cfg->acl.allow_publish("x", "y"));
  EXPECT_EQ(cfg->exchanges.size(), 1u);
  EXPECT_EQ(cfg->throttle_rule("x"), -1);
}

TEST(AmqpConfig, ErrorsNameTheField) {
  EXPECT_EQ(error_of("[]"), "(config): must be a JSON object");
  EXPECT_EQ(error_of(R"({})"), "stat_prefix: required");
  EXPECT_EQ(error_of(R"({"stat_prefix": "a b"})"), "stat_prefix: must be 1-64 characters of [A-Za-z0-9_-]");
  EXPECT_EQ(error_of(R"({"stat_prefix": "p", "max_frame": 100})"),
            "max_frame: must be between 4096 and 16777216, got 100");
  EXPECT_EQ(error_of(R"({"stat_prefix": "p", "max_body_size": 0})"),
            "max_body_size: must be between 1 and 2147483648, got 0");
  EXPECT_EQ(error_of(R"({"stat_prefix": "p", "acl": {"publish": {"allow": [{"exchange": "x", "routing_key": "a*"}]}}})"),
            "acl.publish.allow[0].routing_key: invalid pattern \"a*\": '*' and '#' must be whole words");
  EXPECT_EQ(error_of(R"({"stat_prefix": "p", "acl": {"publish": {"deny": [{"routing_key": "a"}]}}})"),
            "acl.publish.deny[0].exchange: required");
  EXPECT_EQ(error_of(R"({"stat_prefix": "p", "acl": {"consume": {"allow": ["ok", "b#"]}}})"),
            "acl.consume.allow[1]: invalid pattern \"b#\": '*' and '#' must be whole words");
  EXPECT_EQ(error_of(R"({"stat_prefix": "p", "acl": {"subscribe": {}}})"),
            "acl.subscribe: unknown field (expected one of: publish, consume)");
  EXPECT_EQ(error_of(R"({"stat_prefix": "p", "exchanges": [{"name": "other", "exchange": "x"}]})"),
            "exchanges[0].name: must be 1-64 characters of [A-Za-z0-9_-] and not \"other\"");
  EXPECT_EQ(error_of(R"({"stat_prefix": "p", "queues": [{"name": "a", "pattern": "x"}, {"name": "a", "pattern": "y"}]})"),
            "queues[1].name: duplicate group name \"a\"");
  EXPECT_EQ(error_of(R"({"stat_prefix": "p", "queues": [{"name": "a"}]})"), "queues[0].pattern: required");
  EXPECT_EQ(error_of(R"({"stat_prefix": "p", "throttle": [{"exchange": "x"}]})"),
            "throttle[0]: needs messages_per_second or bytes_per_second");
  EXPECT_EQ(error_of(R"({"stat_prefix": "p", "throttle": [{"exchange": "x", "messages_per_second": 1},
                                                            {"exchange": "x", "bytes_per_second": 1}]})"),
            "throttle[1].exchange: duplicate throttle rule for exchange \"x\"");
  EXPECT_EQ(error_of(R"({"stat_prefix": "p", "bogus": 1})"),
            "bogus: unknown field (expected one of: stat_prefix, max_frame, max_body_size, acl, exchanges, queues, "
            "throttle, policy)");
}

}  // namespace
}  // namespace evmesh::amqp
