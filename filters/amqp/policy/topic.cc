#include "filters/amqp/policy/topic.h"

namespace evmesh::amqp {

void split_words(std::string_view key, std::vector<std::string_view>* words) {
  words->clear();
  if (key.empty()) return;
  size_t start = 0;
  while (true) {
    const size_t dot = key.find('.', start);
    if (dot == std::string_view::npos) {
      words->push_back(key.substr(start));
      return;
    }
    words->push_back(key.substr(start, dot - start));
    start = dot + 1;
  }
}

std::optional<TopicPattern> TopicPattern::parse(std::string_view text, std::string* error) {
  if (text.size() > 255) {
    *error = "invalid pattern: longer than 255 bytes (an AMQP short string)";
    return std::nullopt;
  }
  TopicPattern p;
  p.text_ = std::string(text);
  std::vector<std::string_view> words;
  split_words(text, &words);
  for (std::string_view w : words) {
    if (w.size() > 1 && (w.find('*') != std::string_view::npos || w.find('#') != std::string_view::npos)) {
      *error = "invalid pattern \"" + std::string(text) + "\": '*' and '#' must be whole words";
      return std::nullopt;
    }
    p.words_.emplace_back(w);
  }
  p.match_all_ = p.words_.size() == 1 && p.words_[0] == "#";
  return p;
}

bool TopicPattern::matches(std::string_view key) const {
  if (match_all_) return true;
  std::vector<std::string_view> words;
  split_words(key, &words);
  return matches(words);
}

// Wildcard matching over words with one backtrack point (the last `#`):
// linear for the usual patterns, O(words * pattern) at worst.
bool TopicPattern::matches(const std::vector<std::string_view>& w) const {
  if (match_all_) return true;
  const size_t m = words_.size(), n = w.size();
  size_t i = 0, j = 0;
  size_t star_i = SIZE_MAX, star_j = 0;
  while (j < n) {
    if (i < m && words_[i] == "#") {
      star_i = i++;
      star_j = j;
    } else if (i < m && (words_[i] == "*" || words_[i] == w[j])) {
      ++i;
      ++j;
    } else if (star_i != SIZE_MAX) {
      i = star_i + 1;
      j = ++star_j;
    } else {
      return false;
    }
  }
  while (i < m && words_[i] == "#") ++i;
  return i == m;
}

bool Acl::allow_publish(std::string_view exchange, const std::vector<std::string_view>& rk) const {
  if (pub_.has_allow) {
    bool ok = false;
    for (const auto& r : pub_.allow) {
      if (r.matches(exchange, rk)) {
        ok = true;
        break;
      }
    }
    if (!ok) return false;
  }
  for (const auto& r : pub_.deny) {
    if (r.matches(exchange, rk)) return false;
  }
  return true;
}

bool Acl::allow_publish(std::string_view exchange, std::string_view routing_key) const {
  std::vector<std::string_view> words;
  split_words(routing_key, &words);
  return allow_publish(exchange, words);
}

bool Acl::allow_consume(std::string_view queue) const {
  if (con_.has_allow) {
    bool ok = false;
    for (const auto& p : con_.allow) {
      if (p.matches(queue)) {
        ok = true;
        break;
      }
    }
    if (!ok) return false;
  }
  for (const auto& p : con_.deny) {
    if (p.matches(queue)) return false;
  }
  return true;
}

namespace {
const std::string kOther = "other";
}

const std::string& ExchangeGroups::name(size_t i) const { return i < groups_.size() ? groups_[i].name : kOther; }

size_t ExchangeGroups::classify(std::string_view exchange, const std::vector<std::string_view>& rk) const {
  for (size_t i = 0; i < groups_.size(); ++i) {
    if (groups_[i].rule.matches(exchange, rk)) return i;
  }
  return other();
}

const std::string& QueueGroups::name(size_t i) const { return i < groups_.size() ? groups_[i].name : kOther; }

size_t QueueGroups::classify(std::string_view queue) const {
  for (size_t i = 0; i < groups_.size(); ++i) {
    if (groups_[i].pattern.matches(queue)) return i;
  }
  return other();
}

}  // namespace evmesh::amqp
