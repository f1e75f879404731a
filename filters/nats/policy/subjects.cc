#include "filters/nats/policy/subjects.h"

namespace evmesh::nats {

namespace {

// Iterates the '.'-separated tokens of a subject without allocating.
class Tokens {
 public:
  explicit Tokens(std::string_view s) : s_(s) {}
  bool next(std::string_view* tok) {
    if (done_) return false;
    const size_t dot = s_.find('.', pos_);
    if (dot == std::string_view::npos) {
      *tok = s_.substr(pos_);
      done_ = true;
    } else {
      *tok = s_.substr(pos_, dot - pos_);
      pos_ = dot + 1;
    }
    return true;
  }
  bool done() const { return done_; }

 private:
  std::string_view s_;
  size_t pos_ = 0;
  bool done_ = false;
};

bool bad_char(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\0'; }

}  // namespace

std::optional<SubjectPattern> SubjectPattern::parse(std::string_view text, std::string* error) {
  SubjectPattern p;
  p.text_ = std::string(text);
  if (text.empty()) {
    *error = "empty subject pattern";
    return std::nullopt;
  }
  for (char c : text) {
    if (bad_char(c)) {
      *error = "invalid subject pattern \"" + std::string(text) + "\": whitespace or control character";
      return std::nullopt;
    }
  }
  Tokens toks(text);
  std::string_view t;
  while (toks.next(&t)) {
    if (t.empty()) {
      *error = "invalid subject pattern \"" + std::string(text) + "\": empty token";
      return std::nullopt;
    }
    if (p.tail_) {
      *error = "invalid subject pattern \"" + std::string(text) + "\": '>' must be the last token";
      return std::nullopt;
    }
    if (t == ">") {
      p.tail_ = true;
      continue;
    }
    if (t.size() > 1 && (t.find('*') != std::string_view::npos || t.find('>') != std::string_view::npos)) {
      *error = "invalid subject pattern \"" + std::string(text) + "\": wildcard inside token \"" + std::string(t) +
               "\" ('*' and '>' must be whole tokens)";
      return std::nullopt;
    }
    p.tokens_.emplace_back(t);
  }
  return p;
}

bool valid_subject(std::string_view subject) {
  if (subject.empty() || subject.front() == '.' || subject.back() == '.') return false;
  char prev = 0;
  for (char c : subject) {
    if (bad_char(c) || (c == '.' && prev == '.')) return false;
    prev = c;
  }
  return true;
}

bool SubjectPattern::matches(std::string_view subject) const {
  Tokens toks(subject);
  std::string_view t;
  for (const std::string& p : tokens_) {
    if (!toks.next(&t)) return false;
    if (p != "*" && p != t) return false;
  }
  if (tail_) return !toks.done() && toks.next(&t);  // at least one more token
  return toks.done();
}

bool SubjectPattern::covers(std::string_view sub) const {
  Tokens toks(sub);
  std::string_view t;
  for (const std::string& p : tokens_) {
    if (!toks.next(&t)) return false;
    if (t == ">") return false;               // the subscription reaches deeper than `p`
    if (p == "*") continue;                   // any single token, '*' included
    if (t == "*" || p != t) return false;     // literal pattern token
  }
  if (tail_) return !toks.done() && toks.next(&t);
  return toks.done();
}

bool SubjectPattern::overlaps(std::string_view sub) const {
  Tokens toks(sub);
  std::string_view t;
  for (const std::string& p : tokens_) {
    if (!toks.next(&t)) return false;
    if (t == ">") return true;  // the rest of the pattern has tokens to match
    if (p == "*" || t == "*") continue;
    if (p != t) return false;
  }
  if (tail_) return !toks.done() && toks.next(&t);
  return toks.done();
}

bool Acl::allow_publish(std::string_view subject) const {
  if (pub_.has_allow) {
    bool ok = false;
    for (const auto& p : pub_.allow) {
      if (p.matches(subject)) {
        ok = true;
        break;
      }
    }
    if (!ok) return false;
  }
  for (const auto& p : pub_.deny) {
    if (p.matches(subject)) return false;
  }
  return true;
}

bool Acl::allow_subscribe(std::string_view subject) const {
  if (sub_.has_allow) {
    bool ok = false;
    for (const auto& p : sub_.allow) {
      if (p.covers(subject)) {
        ok = true;
        break;
      }
    }
    if (!ok) return false;
  }
  for (const auto& p : sub_.deny) {
    if (p.overlaps(subject)) return false;
  }
  return true;
}

const std::string& SubjectGroups::name(size_t i) const {
  static const std::string kOther = "other";
  return i < groups_.size() ? groups_[i].name : kOther;
}

size_t SubjectGroups::classify(std::string_view subject) const {
  for (size_t i = 0; i < groups_.size(); ++i) {
    if (groups_[i].pattern.matches(subject)) return i;
  }
  return groups_.size();
}

}  // namespace evmesh::nats
