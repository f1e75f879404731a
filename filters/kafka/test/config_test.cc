#include <gtest/gtest.h>

#include "filters/kafka/policy/config.h"

namespace evmesh::kafka {
namespace {

std::string error_of(const std::string& json) {
  std::string err;
  EXPECT_FALSE(parse_kafka_config(json, &err).has_value()) << json;
  return err;
}

TEST(KafkaTopicPattern, ExactPrefixGlob) {
  std::string err;
  auto exact = TopicPattern::parse("orders", &err);
  auto prefix = TopicPattern::parse("orders.*", &err);
  auto glob = TopicPattern::parse("*.eu.?", &err);
  ASSERT_TRUE(exact && prefix && glob);
  EXPECT_TRUE(exact->matches("orders"));
  EXPECT_FALSE(exact->matches("orders.x"));
  EXPECT_TRUE(prefix->matches("orders.x.y"));
  EXPECT_TRUE(prefix->matches("orders."));
  EXPECT_FALSE(prefix->matches("orders"));
  EXPECT_TRUE(glob->matches("a.b.eu.1"));
  EXPECT_TRUE(glob->matches(".eu.x"));
  EXPECT_FALSE(glob->matches("a.eu.12"));
  EXPECT_FALSE(TopicPattern::parse("a b", &err));
  EXPECT_NE(err.find("invalid topic pattern"), std::string::npos);
  EXPECT_FALSE(TopicPattern::parse("", &err));
  EXPECT_FALSE(TopicPattern::parse(std::string(250, 'a'), &err));
}

TEST(KafkaConfig, FullConfig) {
  std::string err;
  auto c = parse_kafka_config(R"({"stat_prefix":"k","bootstrap_port":19092,"advertised_host":"127.0.0.1",
    "nodes":[{"id":1,"port":19094},{"id":2,"port":19095}],
    "acl":{"produce":{"allow":["orders.*"],"deny":["orders.secret"]},"consume":{"deny":["x*"]}},
    "topics":[{"name":"orders","pattern":"orders.*"}],
    "durability":[{"topic":"pay*","min_acks":"all"},{"topic":"log*","min_acks":1}],
    "max_batch_bytes":1000,"quotas":[{"topic":"orders.*","records_per_second":10}],"verify_crc":false})",
                              &err);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->node_port(2), 19095u);
  EXPECT_EQ(c->node_port(3), 0u);
  EXPECT_TRUE(c->produce.allowed("orders.new"));
  EXPECT_FALSE(c->produce.allowed("orders.secret"));
  EXPECT_FALSE(c->produce.allowed("other"));
  EXPECT_TRUE(c->consume.allowed("orders"));
  EXPECT_FALSE(c->consume.allowed("xyz"));
  EXPECT_EQ(c->group("orders.a"), 0u);
  EXPECT_EQ(c->group("zzz"), 1u);
  EXPECT_EQ(c->min_acks("payments"), -1);
  EXPECT_EQ(c->min_acks("logs"), 1);
  EXPECT_EQ(c->min_acks("zzz"), 0);
  EXPECT_EQ(c->quota("orders.a"), 0);
  EXPECT_EQ(c->quota("zzz"), -1);
  EXPECT_TRUE(c->produce_needs_body());
  EXPECT_FALSE(c->verify_crc);
}

TEST(KafkaConfig, Defaults) {
  std::string err;
  auto c = parse_kafka_config(R"({"stat_prefix":"k","bootstrap_port":9092})", &err);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->max_frame, 100u << 20);
  EXPECT_FALSE(c->produce_needs_body());
  EXPECT_TRUE(c->verify_crc);
  EXPECT_TRUE(c->produce.allowed("anything"));
}

TEST(KafkaConfig, ErrorsNameTheField) {
  EXPECT_EQ(error_of(R"({"bootstrap_port":1})"), "stat_prefix: required");
  EXPECT_NE(error_of(R"({"stat_prefix":"k"})").find("bootstrap_port"), std::string::npos);
  EXPECT_NE(error_of(R"({"stat_prefix":"k","bootstrap_port":1,"acl":{"produce":{"allow":["a b"]}}})")
                .find("acl.produce.allow[0]"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"stat_prefix":"k","bootstrap_port":1,"durability":[{"topic":"a","min_acks":2}]})")
                .find("durability[0].min_acks"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"stat_prefix":"k","bootstrap_port":1,"quotas":[{"topic":"a"}]})").find("quotas[0]"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"stat_prefix":"k","bootstrap_port":1,"nodes":[{"id":1,"port":2},{"id":1,"port":3}]})")
                .find("nodes[1].id"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"stat_prefix":"k","bootstrap_port":1,"topics":[{"name":"other","pattern":"a"}]})")
                .find("topics[0].name"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"stat_prefix":"k","bootstrap_port":1,"max_frame":10})").find("max_frame"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"stat_prefix":"k","bootstrap_port":1,"acls":{}})").find("acls"), std::string::npos);
}

}  // namespace
}  // namespace evmesh::kafka
