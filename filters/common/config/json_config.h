// Filter-config reading with field paths: every problem is reported as
// "<field path>: <problem>" and nothing is silently defaulted when present
// but wrong. Unknown keys are rejected (a typo must not disable a policy).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace evmesh::config {

using Json = nlohmann::json;

// Parses JSON text without exceptions. On failure sets *error.
bool parse_json(std::string_view text, Json* out, std::string* error);

// A name that becomes part of a metric name (stat_prefix, group names, policy
// names): 1-64 characters of [A-Za-z0-9_-].
bool valid_name(std::string_view s);

// Joins a path and a key / index: join("acl", "publish") == "acl.publish".
std::string join(const std::string& path, std::string_view key);
std::string join(const std::string& path, size_t index);

// One JSON object being read. The first error is kept in *error.
class ObjectReader {
 public:
  ObjectReader(const Json& value, std::string path, std::string* error);

  bool ok() const { return error_->empty(); }
  const std::string& path() const { return path_; }
  bool fail(const std::string& field_path, std::string_view problem);

  // Rejects keys outside `allowed`.
  bool only_keys(std::initializer_list<std::string_view> allowed);
  bool has(std::string_view key) const;
  const Json* get(std::string_view key) const;

  // Each returns false (and records an error) when the key is present but wrong,
  // or absent and required. An absent optional key leaves *out untouched.
  bool string(std::string_view key, bool required, std::string* out);
  bool uint(std::string_view key, bool required, uint64_t min, uint64_t max, uint64_t* out);
  bool boolean(std::string_view key, bool required, bool* out);
  bool string_list(std::string_view key, bool required, std::vector<std::string>* out);
  // Present and an object / array (or absent and not required).
  const Json* object(std::string_view key, bool required);
  const Json* array(std::string_view key, bool required);

 private:
  const Json& value_;
  std::string path_;
  std::string* error_;
};

}  // namespace evmesh::config
