// AMQP topic patterns and the decisions built on them (no I/O).
//
// Words are separated by '.'; `*` matches exactly one word, `#` zero or more
// words (RabbitMQ's topic-exchange semantics). The same syntax names queues
// in consume ACLs and metric groups.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace evmesh::amqp {

// Splits `key` into '.'-separated words (views into key). "" has no words.
void split_words(std::string_view key, std::vector<std::string_view>* words);

class TopicPattern {
 public:
  // Returns std::nullopt and sets *error when `text` is not a valid pattern.
  static std::optional<TopicPattern> parse(std::string_view text, std::string* error);

  const std::string& text() const { return text_; }
  bool matches(std::string_view key) const;
  bool matches(const std::vector<std::string_view>& words) const;
  bool match_all() const { return match_all_; }

 private:
  std::string text_;
  std::vector<std::string> words_;
  bool match_all_ = false;  // "#"
};

// An exchange name (exact; "*" = any exchange, "" = the default exchange)
// and a routing-key pattern.
struct PublishRule {
  std::string exchange;
  TopicPattern routing_key;
  bool matches(std::string_view exchange, const std::vector<std::string_view>& rk_words) const {
    return (this->exchange == "*" || this->exchange == exchange) && routing_key.matches(rk_words);
  }
};

struct PublishRules {
  bool has_allow = false;  // absent allow list = allow everything
  std::vector<PublishRule> allow, deny;
};

struct QueueRules {
  bool has_allow = false;
  std::vector<TopicPattern> allow, deny;
};

class Acl {
 public:
  Acl() = default;
  Acl(PublishRules publish, QueueRules consume) : pub_(std::move(publish)), con_(std::move(consume)) {}
  bool allow_publish(std::string_view exchange, const std::vector<std::string_view>& rk_words) const;
  bool allow_publish(std::string_view exchange, std::string_view routing_key) const;
  bool allow_consume(std::string_view queue) const;
  bool restricts_publish() const { return pub_.has_allow || !pub_.deny.empty(); }
  bool restricts_consume() const { return con_.has_allow || !con_.deny.empty(); }

 private:
  PublishRules pub_;
  QueueRules con_;
};

// Metric groups: the first match wins; the last index is "other".
class ExchangeGroups {
 public:
  struct Group {
    std::string name;
    PublishRule rule;
  };
  ExchangeGroups() = default;
  explicit ExchangeGroups(std::vector<Group> g) : groups_(std::move(g)) {}
  size_t size() const { return groups_.size() + 1; }
  size_t other() const { return groups_.size(); }
  const std::string& name(size_t i) const;
  size_t classify(std::string_view exchange, const std::vector<std::string_view>& rk_words) const;

 private:
  std::vector<Group> groups_;
};

class QueueGroups {
 public:
  struct Group {
    std::string name;
    TopicPattern pattern;
  };
  QueueGroups() = default;
  explicit QueueGroups(std::vector<Group> g) : groups_(std::move(g)) {}
  size_t size() const { return groups_.size() + 1; }
  size_t other() const { return groups_.size(); }
  const std::string& name(size_t i) const;
  size_t classify(std::string_view queue) const;

 private:
  std::vector<Group> groups_;
};

}  // namespace evmesh::amqp
