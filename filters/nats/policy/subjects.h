// NATS subject patterns and the decisions built on them (no I/O).
//
// Tokens are separated by '.'; `*` matches exactly one token, `>` (last
// token only) matches one or more trailing tokens.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace evmesh::nats {

class SubjectPattern {
 public:
  // Returns std::nullopt and sets *error when `text` is not a valid pattern.
  static std::optional<SubjectPattern> parse(std::string_view text, std::string* error);

  const std::string& text() const { return text_; }
  // A concrete subject (wildcard characters in it are taken literally... by
  // position: a `*`/`>` token in the subject only equals the same pattern token).
  bool matches(std::string_view subject) const;
  // Every subject the subscription `sub` (which may hold wildcards) can
  // receive is matched by this pattern.
  bool covers(std::string_view sub) const;
  // Some subject is matched both by this pattern and by `sub`.
  bool overlaps(std::string_view sub) const;

 private:
  std::string text_;
  std::vector<std::string> tokens_;
  bool tail_ = false;  // ends with '>'
};

// Checks a subject given on the wire (PUB/SUB): non-empty tokens, no whitespace.
bool valid_subject(std::string_view subject);

struct SubjectRules {
  bool has_allow = false;  // absent allow list = allow everything
  std::vector<SubjectPattern> allow;
  std::vector<SubjectPattern> deny;
};

class Acl {
 public:
  Acl() = default;
  Acl(SubjectRules publish, SubjectRules subscribe) : pub_(std::move(publish)), sub_(std::move(subscribe)) {}
  bool allow_publish(std::string_view subject) const;
  bool allow_subscribe(std::string_view subject) const;
  bool restricts_publish() const { return pub_.has_allow || !pub_.deny.empty(); }
  bool restricts_subscribe() const { return sub_.has_allow || !sub_.deny.empty(); }

 private:
  SubjectRules pub_;
  SubjectRules sub_;
};

// Metric groups: first matching pattern wins; the last index is "other".
class SubjectGroups {
 public:
  struct Group {
    std::string name;
    SubjectPattern pattern;
  };
  SubjectGroups() = default;
  explicit SubjectGroups(std::vector<Group> groups) : groups_(std::move(groups)) {}
  size_t size() const { return groups_.size() + 1; }  // + "other"
  size_t other() const { return groups_.size(); }
  const std::string& name(size_t i) const;
  size_t classify(std::string_view subject) const;

 private:
  std::vector<Group> groups_;
};

}  // namespace evmesh::nats
