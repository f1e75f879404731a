#include "filters/amqp/policy/topic.h"

#include <gtest/gtest.h>

namespace evmesh::amqp {
namespace {

TopicPattern P(const char* text) {
  std::string err;
  auto p = TopicPattern::parse(text, &err);
  EXPECT_TRUE(p.has_value()) << text << ": " << err;
  return p ? *p : TopicPattern();
}

TEST(AmqpTopic, RabbitMqTopicSemantics) {
  struct Case {
    const char* pattern;
    const char* key;
    bool match;
  };
  const Case cases[] = {
      {"a.b", "a.b", true},       {"a.b", "a.c", false},      {"a.*", "a.b", true},
      {"a.*", "a", false},        {"a.*", "a.b.c", false},    {"a.#", "a", true},
      {"a.#", "a.b.c", true},     {"#", "", true},            {"#", "x.y", true},
      {"*", "", false},           {"*", "x", true},           {"#.b", "b", true},
      {"#.b", "a.b", true},       {"#.b", "a.b.c", false},    {"a.#.b", "a.b", true},
      {"a.#.b", "a.x.y.b", true}, {"a.#.b", "a.x.b.b", true}, {"a.#.b", "a.x.b.c", false},
      {"*.#", "", false},         {"#.*", "a", true},         {"*.*.#", "a.b", true},
      {"a.*.#.c", "a.b.c", true}, {"a.*.#.c", "a.c", false},  {"#.#", "", true},
      {"a..b", "a..b", true},     {"", "", true},             {"", "a", false},
  };
  for (const Case& c : cases) EXPECT_EQ(P(c.pattern).matches(c.key), c.match) << c.pattern << " vs " << c.key;
}

TEST(AmqpTopic, RejectsPartialWildcards) {
  std::string err;
  EXPECT_FALSE(TopicPattern::parse("a.b*", &err));
  EXPECT_NE(err.find("whole words"), std::string::npos);
  EXPECT_FALSE(TopicPattern::parse("#a", &err));
  EXPECT_FALSE(TopicPattern::parse(std::string(256, 'a'), &err));
}

TEST(AmqpTopic, AclAllowThenDeny) {
  PublishRules pub;
  pub.has_allow = true;
  pub.allow.push_back({"orders", P("eu.#")});
  pub.allow.push_back({"*", P("public.*")});
  pub.deny.push_back({"orders", P("eu.secret.#")});
  QueueRules con;
  con.has_allow = true;
  con.allow.push_back(P("work.*"));
  con.deny.push_back(P("work.admin"));
  const Acl acl(std::move(pub), std::move(con));
  EXPECT_TRUE(acl.allow_publish("orders", "eu.de.new"));
  EXPECT_FALSE(acl.allow_publish("orders", "us.new"));
  EXPECT_FALSE(acl.allow_publish("orders", "eu.secret.x"));
  EXPECT_TRUE(acl.allow_publish("", "public.x"));
  EXPECT_TRUE(acl.allow_publish("other", "public.x"));
  EXPECT_FALSE(acl.allow_publish("other", "public.x.y"));
  EXPECT_TRUE(acl.allow_consume("work.a"));
  EXPECT_FALSE(acl.allow_consume("work.admin"));
  EXPECT_FALSE(acl.allow_consume("play"));
  const Acl open;
  EXPECT_TRUE(open.allow_publish("any", "thing"));
  EXPECT_TRUE(open.allow_consume("any"));
  EXPECT_FALSE(open.restricts_publish());
}

TEST(AmqpTopic, GroupsFirstMatchThenOther) {
  const ExchangeGroups x({{"eu", {"orders", P("eu.#")}}, {"orders", {"orders", P("#")}}});
  std::vector<std::string_view> w;
  split_words("eu.de", &w);
  EXPECT_EQ(x.classify("orders", w), 0u);
  split_words("us", &w);
  EXPECT_EQ(x.classify("orders", w), 1u);
  EXPECT_EQ(x.classify("logs", w), x.other());
  EXPECT_EQ(x.name(x.other()), "other");
  const QueueGroups q({{"work", P("work.#")}});
  EXPECT_EQ(q.classify("work.1"), 0u);
  EXPECT_EQ(q.classify("x"), 1u);
  EXPECT_EQ(q.size(), 2u);
}

}  // namespace
}  // namespace evmesh::amqp
