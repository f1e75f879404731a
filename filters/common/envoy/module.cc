// The exported hooks of libevmesh.so: each one a few lines that forward to
// the C++ objects of module.h, with no exception crossing the boundary.
#include "filters/common/envoy/module.h"

#include <exception>
#include <string>

namespace evmesh {

void log(int level, std::string_view message) {
  envoy_dynamic_module_callback_log(level, module_buffer{message.data(), message.size()});
}

bool log_enabled(int level) { return envoy_dynamic_module_callback_log_enabled(level); }

void Connection::read_chunks(std::vector<envoy_buffer>& out) const {
  const size_t n = envoy_dynamic_module_callback_network_filter_get_read_buffer_chunks_size(raw_);
  out.resize(n);
  if (n != 0 && !envoy_dynamic_module_callback_network_filter_get_read_buffer_chunks(raw_, out.data())) {
    out.clear();
  }
}

void Connection::write_chunks(std::vector<envoy_buffer>& out) const {
  const size_t n = envoy_dynamic_module_callback_network_filter_get_write_buffer_chunks_size(raw_);
  out.resize(n);
  if (n != 0 && !envoy_dynamic_module_callback_network_filter_get_write_buffer_chunks(raw_, out.data())) {
    out.clear();
  }
}

const FilterKind* find_filter_kind(std::string_view name) {
  for (const auto& k : filter_kinds()) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

namespace {

void log_exception(const char* hook) {
  std::string msg = "evmesh: unexpected exception in ";
  msg += hook;
  try {
    throw;
  } catch (const std::exception& e) {
    msg += ": ";
    msg += e.what();
  } catch (...) {
  }
  log(EVM_LOG_ERROR, msg);
}

std::string_view view(envoy_buffer b) { return b.ptr ? std::string_view(b.ptr, b.length) : std::string_view(); }

}  // namespace
}  // namespace evmesh

using evmesh::FilterConfig;
using evmesh::NetworkFilter;

extern "C" {

#define EVMESH_EXPORT __attribute__((visibility("default")))

EVMESH_EXPORT const char* envoy_dynamic_module_on_program_init(void) {
  return EVMESH_ENVOY_ABI_VERSION;
}

EVMESH_EXPORT const void* envoy_dynamic_module_on_network_filter_config_new(void* config_envoy,
                                                                            envoy_buffer name,
                                                                            envoy_buffer config) {
  try {
    const std::string_view kind_name = evmesh::view(name);
    const evmesh::FilterKind* kind = evmesh::find_filter_kind(kind_name);
    if (kind == nullptr) {
      std::string names;
      for (const auto& k : evmesh::filter_kinds()) names += (names.empty() ? "" : ", ") + std::string(k.name);
      evmesh::log(EVM_LOG_ERROR, "evmesh: filter_name: unknown filter \"" + std::string(kind_name) +
                                     "\" (known: " + names + ")");
      return nullptr;
    }
    std::string error;
    std::unique_ptr<FilterConfig> cfg = kind->make_config(config_envoy, evmesh::view(config), &error);
    if (!cfg) {
      evmesh::log(EVM_LOG_ERROR, "evmesh: " + std::string(kind_name) + " filter_config rejected: " + error);
      return nullptr;
    }
    return cfg.release();
  } catch (...) {
    evmesh::log_exception("on_network_filter_config_new");
    return nullptr;
  }
}

EVMESH_EXPORT void envoy_dynamic_module_on_network_filter_config_destroy(const void* config_module) {
  delete static_cast<const FilterConfig*>(config_module);
}

EVMESH_EXPORT const void* envoy_dynamic_module_on_network_filter_new(const void* config_module,
                                                                     void* filter_envoy) {
  try {
    return static_cast<const FilterConfig*>(config_module)->create(filter_envoy).release();
  } catch (...) {
    evmesh::log_exception("on_network_filter_new");
    return nullptr;
  }
}

EVMESH_EXPORT int envoy_dynamic_module_on_network_filter_new_connection(void* filter_envoy,
                                                                        const void* filter_module) {
  try {
    return const_cast<NetworkFilter*>(static_cast<const NetworkFilter*>(filter_module))->on_new_connection();
  } catch (...) {
    evmesh::log_exception("on_network_filter_new_connection");
    envoy_dynamic_module_callback_network_filter_close(filter_envoy, EVM_CLOSE_NO_FLUSH);
    return EVM_NET_STOP_ITERATION;
  }
}

EVMESH_EXPORT int envoy_dynamic_module_on_network_filter_read(void* filter_envoy, const void* filter_module,
                                                              size_t data_length, bool end_stream) {
  try {
    return const_cast<NetworkFilter*>(static_cast<const NetworkFilter*>(filter_module))
        ->on_read(data_length, end_stream);
  } catch (...) {
    evmesh::log_exception("on_network_filter_read");
    envoy_dynamic_module_callback_network_filter_close(filter_envoy, EVM_CLOSE_NO_FLUSH);
    return EVM_NET_STOP_ITERATION;
  }
}

EVMESH_EXPORT int envoy_dynamic_module_on_network_filter_write(void* filter_envoy, const void* filter_module,
                                                               size_t data_length, bool end_stream) {
  try {
    return const_cast<NetworkFilter*>(static_cast<const NetworkFilter*>(filter_module))
        ->on_write(data_length, end_stream);
  } catch (...) {
    evmesh::log_exception("on_network_filter_write");
    envoy_dynamic_module_callback_network_filter_close(filter_envoy, EVM_CLOSE_NO_FLUSH);
    return EVM_NET_STOP_ITERATION;
  }
}

EVMESH_EXPORT void envoy_dynamic_module_on_network_filter_event(void* filter_envoy, const void* filter_module,
                                                                int event) {
  try {
    const_cast<NetworkFilter*>(static_cast<const NetworkFilter*>(filter_module))->on_event(event);
  } catch (...) {
    evmesh::log_exception("on_network_filter_event");
  }
}

EVMESH_EXPORT void envoy_dynamic_module_on_network_filter_scheduled(void* /*filter_envoy*/,
                                                                    const void* filter_module, uint64_t event_id) {
  try {
    const_cast<NetworkFilter*>(static_cast<const NetworkFilter*>(filter_module))->on_scheduled(event_id);
  } catch (...) {
    evmesh::log_exception("on_network_filter_scheduled");
  }
}

EVMESH_EXPORT void envoy_dynamic_module_on_network_filter_destroy(const void* filter_module) {
  delete static_cast<const NetworkFilter*>(filter_module);
}

}  // extern "C"
