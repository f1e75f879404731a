#include "filters/nats/policy/subjects.h"

#include <gtest/gtest.h>

namespace evmesh::nats {
namespace {

SubjectPattern P(const char* s) {
  std::string err;
  auto p = SubjectPattern::parse(s, &err);
  EXPECT_TRUE(p.has_value()) << s << ": " << err;
  return *p;
}

TEST(SubjectPattern, RejectsInvalidPatterns) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"", "empty subject pattern"},
      {"a..b", "empty token"},
      {".a", "empty token"},
      {"a.", "empty token"},
      {"a.>.b", "'>' must be the last token"},
      {"a.b*", "wildcard inside token"},
      {"a.>x", "wildcard inside token"},
      {"a b", "whitespace"},
  };
  for (const auto& [text, why] : bad) {
    std::string err;
    EXPECT_FALSE(SubjectPattern::parse(text, &err).has_value()) << text;
    EXPECT_NE(err.find(why), std::string::npos) << text << " -> " << err;
  }
}

TEST(SubjectPattern, Matches) {
  EXPECT_TRUE(P("foo").matches("foo"));
  EXPECT_FALSE(P("foo").matches("foo.bar"));
  EXPECT_TRUE(P("foo.*").matches("foo.bar"));
  EXPECT_FALSE(P("foo.*").matches("foo"));
  EXPECT_FALSE(P("foo.*").matches("foo.bar.baz"));
  EXPECT_TRUE(P("foo.>").matches("foo.bar"));
  EXPECT_TRUE(P("foo.>").matches("foo.bar.baz"));
  EXPECT_FALSE(P("foo.>").matches("foo"));
  EXPECT_TRUE(P(">").matches("anything.at.all"));
  EXPECT_TRUE(P("*.b.>").matches("a.b.c"));
  EXPECT_FALSE(P("*.b.>").matches("a.c.c"));
  EXPECT_FALSE(P("foo").matches("fo"));
  EXPECT_FALSE(P("foo.bar").matches("foo.ba"));
}

TEST(SubjectPattern, CoversSubscriptions) {
  EXPECT_TRUE(P(">").covers("a.*"));
  EXPECT_TRUE(P(">").covers("a.>"));
  EXPECT_TRUE(P("a.>").covers("a.b.>"));
  EXPECT_TRUE(P("a.>").covers("a.*"));
  EXPECT_FALSE(P("a.>").covers("a"));
  EXPECT_TRUE(P("a.*").covers("a.*"));
  EXPECT_TRUE(P("a.*").covers("a.b"));
  EXPECT_FALSE(P("a.*").covers("a.>"));
  EXPECT_FALSE(P("a.b").covers("a.*"));
  EXPECT_FALSE(P("a.*").covers("*.b"));
}

TEST(SubjectPattern, OverlapsSubscriptions) {
  EXPECT_TRUE(P("a.secret").overlaps("a.*"));
  EXPECT_TRUE(P("a.secret").overlaps("a.>"));
  EXPECT_TRUE(P("a.secret").overlaps(">"));
  EXPECT_TRUE(P("a.secret.>").overlaps("*.secret.x"));
  EXPECT_FALSE(P("a.secret").overlaps("a.public"));
  EXPECT_FALSE(P("a.secret").overlaps("a.*.x"));
  EXPECT_FALSE(P("a.>").overlaps("a"));
  EXPECT_TRUE(P("a.*").overlaps("*.b"));
}

TEST(Acl, AllowThenDeny) {
  SubjectRules pub;
  pub.has_allow = true;
  pub.allow = {P("orders.>"), P("_INBOX.>")};
  pub.deny = {P("orders.secret.>")};
  SubjectRules sub;
  sub.deny = {P("orders.secret.>")};
  Acl acl(pub, sub);
  EXPECT_TRUE(acl.allow_publish("orders.new"));
  EXPECT_TRUE(acl.allow_publish("_INBOX.abc.1"));
  EXPECT_FALSE(acl.allow_publish("orders.secret.x"));
  EXPECT_FALSE(acl.allow_publish("payments.new"));
  EXPECT_TRUE(acl.allow_subscribe("payments.new"));  // no subscribe allow list
  EXPECT_TRUE(acl.allow_subscribe("orders.new"));
  EXPECT_FALSE(acl.allow_subscribe("orders.secret.a"));
  EXPECT_FALSE(acl.allow_subscribe("orders.>"));  // could receive a denied subject
  EXPECT_TRUE(acl.allow_subscribe("orders.*"));   // one token: cannot reach orders.secret.x

  SubjectRules none;
  none.has_allow = true;  // present and empty: nothing allowed
  Acl closed(none, none);
  EXPECT_FALSE(closed.allow_publish("a"));
  EXPECT_FALSE(closed.allow_subscribe("a"));
  EXPECT_TRUE(Acl().allow_publish("a"));
}

TEST(SubjectGroups, FirstMatchWinsRestIsOther) {
  SubjectGroups g({{"orders", P("orders.>")}, {"all_a", P("a.*")}, {"orders_dup", P("orders.x")}});
  EXPECT_EQ(g.size(), 4u);
  EXPECT_EQ(g.classify("orders.x"), 0u);
  EXPECT_EQ(g.classify("a.b"), 1u);
  EXPECT_EQ(g.classify("zzz"), 3u);
  EXPECT_EQ(g.name(3), "other");
}

TEST(ValidSubject, RejectsEmptyTokensAndSpaces) {
  EXPECT_TRUE(valid_subject("a.b"));
  EXPECT_FALSE(valid_subject(""));
  EXPECT_FALSE(valid_subject("a..b"));
  EXPECT_FALSE(valid_subject(".a"));
  EXPECT_FALSE(valid_subject("a."));
}

}  // namespace
}  // namespace evmesh::nats
