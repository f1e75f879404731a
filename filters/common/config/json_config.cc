#include "filters/common/config/json_config.h"

#include <cmath>

namespace evmesh::config {

bool parse_json(std::string_view text, Json* out, std::string* error) {
  *out = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (out->is_discarded()) {
    *error = "(config): not valid JSON";
    return false;
  }
  if (!out->is_object()) {
    *error = "(config): must be a JSON object";
    return false;
  }
  return true;
}

bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string join(const std::string& path, std::string_view key) {
  if (path.empty()) return std::string(key);
  std::string r = path;
  r += '.';
  r += key;
  return r;
}

std::string join(const std::string& path, size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

namespace {
const char* type_name(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::object: return "an object";
    case Json::value_t::array: return "a list";
    case Json::value_t::string: return "a string";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float: return "a number";
    default: return "an unsupported value";
  }
}
}  // namespace

ObjectReader::ObjectReader(const Json& value, std::string path, std::string* error)
    : value_(value), path_(std::move(path)), error_(error) {
  if (!value_.is_object()) fail(path_.empty() ? "(config)" : path_, std::string("must be an object, got ") + type_name(value_));
}

bool ObjectReader::fail(const std::string& field_path, std::string_view problem) {
  if (error_->empty()) {
    *error_ = field_path;
    *error_ += ": ";
    *error_ += problem;
  }
  return false;
}

bool ObjectReader::only_keys(std::initializer_list<std::string_view> allowed) {
  if (!value_.is_object()) return false;
  for (auto it = value_.begin(); it != value_.end(); ++it) {
    bool known = false;
    for (std::string_view a : allowed) known = known || it.key() == a;
    if (!known) {
      std::string names;
      for (std::string_view a : allowed) {
        if (!names.empty()) names += ", ";
        names += a;
      }
      return fail(join(path_, it.key()), "unknown field (expected one of: " + names + ")");
    }
  }
  return true;
}

bool ObjectReader::has(std::string_view key) const {
  return value_.is_object() && value_.find(std::string(key)) != value_.end();
}

const Json* ObjectReader::get(std::string_view key) const {
  if (!value_.is_object()) return nullptr;
  auto it = value_.find(std::string(key));
  return it == value_.end() ? nullptr : &*it;
}

bool ObjectReader::string(std::string_view key, bool required, std::string* out) {
  const Json* v = get(key);
  if (v == nullptr) return required ? fail(join(path_, key), "required") : true;
  if (!v->is_string()) return fail(join(path_, key), std::string("must be a string, got ") + type_name(*v));
  *out = v->get<std::string>();
  return true;
}

bool ObjectReader::uint(std::string_view key, bool required, uint64_t min, uint64_t max, uint64_t* out) {
  const Json* v = get(key);
  if (v == nullptr) return required ? fail(join(path_, key), "required") : true;
  uint64_t n = 0;
  if (v->is_number_unsigned()) {
    n = v->get<uint64_t>();
  } else if (v->is_number_integer()) {
    if (v->get<int64_t>() < 0) return fail(join(path_, key), "must not be negative");
    n = static_cast<uint64_t>(v->get<int64_t>());
  } else if (v->is_number_float()) {
    // google.protobuf.Struct carries every number as a double.
    const double d = v->get<double>();
    if (!(d >= 0) || d != std::floor(d) || d > 9.0e15) return fail(join(path_, key), "must be a whole number");
    n = static_cast<uint64_t>(d);
  } else if (v->is_string() && !v->get_ref<const std::string&>().empty() &&
             v->get_ref<const std::string&>().size() <= 19 &&
             v->get_ref<const std::string&>().find_first_not_of("0123456789") == std::string::npos) {
    // Envoy's YAML loader hands integers beyond 2^31 to the Struct as
    // strings of digits; they are still numbers.
    n = std::stoull(v->get_ref<const std::string&>());
  } else {
    return fail(join(path_, key), std::string("must be a number, got ") + type_name(*v));
  }
  if (n < min || n > max) {
    return fail(join(path_, key), "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                                      ", got " + std::to_string(n));
  }
  *out = n;
  return true;
}

bool ObjectReader::boolean(std::string_view key, bool required, bool* out) {
  const Json* v = get(key);
  if (v == nullptr) return required ? fail(join(path_, key), "required") : true;
  if (!v->is_boolean()) return fail(join(path_, key), std::string("must be true or false, got ") + type_name(*v));
  *out = v->get<bool>();
  return true;
}

bool ObjectReader::string_list(std::string_view key, bool required, std::vector<std::string>* out) {
  const Json* v = array(key, required);
  if (v == nullptr) return ok();
  out->clear();
  for (size_t i = 0; i < v->size(); ++i) {
    const Json& e = (*v)[i];
    if (!e.is_string()) return fail(join(join(path_, key), i), std::string("must be a string, got ") + type_name(e));
    out->push_back(e.get<std::string>());
  }
  return true;
}

const Json* ObjectReader::object(std::string_view key, bool required) {
  const Json* v = get(key);
  if (v == nullptr) {
    if (required) fail(join(path_, key), "required");
    return nullptr;
  }
  if (!v->is_object()) {
    fail(join(path_, key), std::string("must be an object, got ") + type_name(*v));
    return nullptr;
  }
  return v;
}

const Json* ObjectReader::array(std::string_view key, bool required) {
  const Json* v = get(key);
  if (v == nullptr) {
    if (required) fail(join(path_, key), "required");
    return nullptr;
  }
  if (!v->is_array()) {
    fail(join(path_, key), std::string("must be a list, got ") + type_name(*v));
    return nullptr;
  }
  return v;
}

}  // namespace evmesh::config
