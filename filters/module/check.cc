// libevmesh_check.so: the filters' own config parsers behind a tiny C API,
// so that `evmesh validate` accepts exactly what the module accepts. Links
// no Envoy symbols.
#include <cstring>
#include <exception>
#include <string>
#include <string_view>

#include "filters/common/abi/envoy_abi.h"
#include "filters/amqp/policy/config.h"
#include "filters/kafka/policy/config.h"
#include "filters/nats/policy/config.h"

namespace {

bool check(std::string_view kind, std::string_view json, std::string* error) {
  if (kind == "nats") return evmesh::nats::parse_nats_config(json, error).has_value();
  if (kind == "amqp") return evmesh::amqp::parse_amqp_config(json, error).has_value();
  if (kind == "kafka") return evmesh::kafka::parse_kafka_config(json, error).has_value();
  *error = "filter_name: unknown filter \"" + std::string(kind) + "\" (known: nats, amqp, kafka)";
  return false;
}

void copy_out(const std::string& msg, char* err, size_t err_len) {
  if (err == nullptr || err_len == 0) return;
  const size_t n = msg.size() < err_len - 1 ? msg.size() : err_len - 1;
  std::memcpy(err, msg.data(), n);
  err[n] = '\0';
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int evmesh_check_filter_config(const char* filter_name, const char* json,
                                                                      size_t json_len, char* err, size_t err_len) {
  try {
    std::string error;
    if (filter_name == nullptr || (json == nullptr && json_len != 0)) {
      copy_out("(config): null argument", err, err_len);
      return 2;
    }
    if (check(filter_name, std::string_view(json ? json : "", json_len), &error)) {
      copy_out("", err, err_len);
      return 0;
    }
    copy_out(error, err, err_len);
    return 1;
  } catch (const std::exception& e) {
    copy_out(std::string("(config): internal error: ") + e.what(), err, err_len);
    return 3;
  } catch (...) {
    copy_out("(config): internal error", err, err_len);
    return 3;
  }
}

__attribute__((visibility("default"))) const char* evmesh_check_abi_version(void) {
  return EVMESH_ENVOY_ABI_VERSION;
}

}  // extern "C"
