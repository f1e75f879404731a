// The small C++ layer over Envoy's dynamic-module ABI that every evmesh filter
// uses. Object graph, one Envoy listener filter chain:
//
//   Envoy config_envoy ──► FilterConfig (one per listener config, main thread)
//                              │ create(filter_envoy) per connection
//                              ▼
//   Envoy filter_envoy ──► NetworkFilter (one per connection, its worker thread)
//                              │ Connection: chunk views, drain/append, write, close
//                              ▼
//                          codec (parse) → policy (decide) → filter applies + counts
//
// No exception crosses the C boundary: module.cc wraps every hook.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "filters/common/abi/envoy_abi.h"

namespace evmesh {

// Logging through Envoy's logger (component "dynamic_modules").
void log(int level, std::string_view message);
bool log_enabled(int level);

// Thin, inlinable wrapper of one connection's Envoy-side filter pointer.
class Connection {
 public:
  explicit Connection(evm_filter_envoy_ptr raw) : raw_(raw) {}

  // Fills `out` with views of the read (client→upstream) or write (upstream→client)
  // buffer. The views are valid until the buffer is modified or the hook returns.
  void read_chunks(std::vector<envoy_buffer>& out) const;
  void write_chunks(std::vector<envoy_buffer>& out) const;

  bool drain_read(size_t n) const {
    return envoy_dynamic_module_callback_network_filter_drain_read_buffer(raw_, n);
  }
  bool drain_write(size_t n) const {
    return envoy_dynamic_module_callback_network_filter_drain_write_buffer(raw_, n);
  }
  bool append_read(std::string_view d) const {
    return d.empty() || envoy_dynamic_module_callback_network_filter_append_read_buffer(
                            raw_, module_buffer{d.data(), d.size()});
  }
  bool prepend_read(std::string_view d) const {
    return d.empty() || envoy_dynamic_module_callback_network_filter_prepend_read_buffer(
                            raw_, module_buffer{d.data(), d.size()});
  }
  bool prepend_write(std::string_view d) const {
    return d.empty() || envoy_dynamic_module_callback_network_filter_prepend_write_buffer(
                            raw_, module_buffer{d.data(), d.size()});
  }
  uint32_t buffer_limit() const { return envoy_dynamic_module_callback_network_filter_get_buffer_limit(raw_); }
  bool append_write(std::string_view d) const {
    return d.empty() || envoy_dynamic_module_callback_network_filter_append_write_buffer(
                            raw_, module_buffer{d.data(), d.size()});
  }
  // Sends bytes to the downstream client (re-enters the filter's on_write).
  void write_to_client(std::string_view d, bool end_stream = false) const {
    envoy_dynamic_module_callback_network_filter_write(raw_, module_buffer{d.data(), d.size()},
                                                       end_stream);
  }
  void close(int how) const { envoy_dynamic_module_callback_network_filter_close(raw_, how); }
  uint64_t id() const { return envoy_dynamic_module_callback_network_filter_get_connection_id(raw_); }
  // Hands bytes to the filters after this one (Envoy copies them).
  void inject_read(std::string_view d) const {
    if (!d.empty()) {
      envoy_dynamic_module_callback_network_filter_inject_read_data(raw_, module_buffer{d.data(), d.size()}, false);
    }
  }
  // Passes a read buffer held by StopIteration on to the next filters.
  void continue_reading() const { envoy_dynamic_module_callback_network_filter_continue_reading(raw_); }
  evm_filter_envoy_ptr raw() const { return raw_; }

 private:
  evm_filter_envoy_ptr raw_;
};

class NetworkFilter {
 public:
  virtual ~NetworkFilter() = default;
  virtual int on_new_connection() { return EVM_NET_CONTINUE; }
  virtual int on_read(size_t length, bool end_stream) = 0;
  virtual int on_write(size_t length, bool end_stream) = 0;
  virtual void on_event(int /*event*/) {}
  // An event committed to this connection's scheduler (see envoy_abi.h).
  virtual void on_scheduled(uint64_t /*event_id*/) {}
};

class FilterConfig {
 public:
  virtual ~FilterConfig() = default;
  virtual std::unique_ptr<NetworkFilter> create(evm_filter_envoy_ptr filter_envoy) const = 0;
};

// A filter kind known to the module ("nats", "kafka", "amqp").
struct FilterKind {
  std::string_view name;
  // Builds the config; on failure returns null and sets *error to "<field path>: <problem>".
  std::unique_ptr<FilterConfig> (*make_config)(evm_config_envoy_ptr config_envoy,
                                               std::string_view json, std::string* error);
};

// The table of filter kinds, defined once in filters/module/filters.cc.
const std::vector<FilterKind>& filter_kinds();
const FilterKind* find_filter_kind(std::string_view name);

}  // namespace evmesh
