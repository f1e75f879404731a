// evmesh's own declaration of the subset of Envoy's dynamic-module C ABI
// (version v0.2.0, as compiled into Envoy 1.40.0) that evmesh uses.
//
// Written from the facts in shared/docs/platform.md and checked against the
// exports of the pinned Envoy binary by //filters/common:abi_symbols_test.
// Envoy does NOT check signatures: every declaration here must match the
// binary exactly, and every function declared here must be exercised by an
// integration test.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EVMESH_ENVOY_ABI_VERSION "v0.2.0"

// Memory owned by Envoy, viewed by the module.
typedef struct {
  const char* ptr;
  size_t length;
} envoy_buffer;

// Memory owned by the module, viewed by Envoy for the duration of a call.
typedef struct {
  const char* ptr;
  size_t length;
} module_buffer;

typedef void* evm_filter_envoy_ptr;  // one per connection, owned by Envoy
typedef void* evm_config_envoy_ptr;  // one per filter config, owned by Envoy

// Status returned by on_network_filter_{new_connection,read,write}.
enum { EVM_NET_CONTINUE = 0, EVM_NET_STOP_ITERATION = 1 };

// Connection events.
enum {
  EVM_EVENT_REMOTE_CLOSE = 0,
  EVM_EVENT_LOCAL_CLOSE = 1,
  EVM_EVENT_CONNECTED = 2,
  EVM_EVENT_CONNECTED_ZERO_RTT = 3
};

// How to close a connection.
enum {
  EVM_CLOSE_FLUSH_WRITE = 0,
  EVM_CLOSE_NO_FLUSH = 1,
  EVM_CLOSE_FLUSH_WRITE_AND_DELAY = 2,
  EVM_CLOSE_ABORT = 3,
  EVM_CLOSE_ABORT_RESET = 4
};

// Log levels.
enum {
  EVM_LOG_TRACE = 0,
  EVM_LOG_DEBUG = 1,
  EVM_LOG_INFO = 2,
  EVM_LOG_WARN = 3,
  EVM_LOG_ERROR = 4,
  EVM_LOG_CRITICAL = 5,
  EVM_LOG_OFF = 6
};

// ---- Callbacks exported by the envoy executable (envoy_dynamic_module_callback_*) ----

void envoy_dynamic_module_callback_log(int level, module_buffer message);
bool envoy_dynamic_module_callback_log_enabled(int level);

size_t envoy_dynamic_module_callback_network_filter_get_read_buffer_chunks_size(
    evm_filter_envoy_ptr f);
bool envoy_dynamic_module_callback_network_filter_get_read_buffer_chunks(evm_filter_envoy_ptr f,
                                                                         envoy_buffer* out);
size_t envoy_dynamic_module_callback_network_filter_get_write_buffer_chunks_size(
    evm_filter_envoy_ptr f);
bool envoy_dynamic_module_callback_network_filter_get_write_buffer_chunks(evm_filter_envoy_ptr f,
                                                                          envoy_buffer* out);
bool envoy_dynamic_module_callback_network_filter_drain_read_buffer(evm_filter_envoy_ptr f,
                                                                    size_t length);
bool envoy_dynamic_module_callback_network_filter_drain_write_buffer(evm_filter_envoy_ptr f,
                                                                     size_t length);
bool envoy_dynamic_module_callback_network_filter_append_read_buffer(evm_filter_envoy_ptr f,
                                                                     module_buffer data);
bool envoy_dynamic_module_callback_network_filter_append_write_buffer(evm_filter_envoy_ptr f,
                                                                      module_buffer data);
bool envoy_dynamic_module_callback_network_filter_prepend_read_buffer(evm_filter_envoy_ptr f,
                                                                      module_buffer data);
bool envoy_dynamic_module_callback_network_filter_prepend_write_buffer(evm_filter_envoy_ptr f,
                                                                       module_buffer data);
// Writes to the downstream client. Re-enters on_network_filter_write synchronously.
void envoy_dynamic_module_callback_network_filter_write(evm_filter_envoy_ptr f, module_buffer data,
                                                        bool end_stream);
void envoy_dynamic_module_callback_network_filter_close(evm_filter_envoy_ptr f, int how);
uint64_t envoy_dynamic_module_callback_network_filter_get_connection_id(evm_filter_envoy_ptr f);

int envoy_dynamic_module_callback_network_filter_config_define_counter(evm_config_envoy_ptr c,
                                                                       module_buffer name,
                                                                       size_t* id_out);
int envoy_dynamic_module_callback_network_filter_config_define_gauge(evm_config_envoy_ptr c,
                                                                     module_buffer name,
                                                                     size_t* id_out);
int envoy_dynamic_module_callback_network_filter_config_define_histogram(evm_config_envoy_ptr c,
                                                                         module_buffer name,
                                                                         size_t* id_out);
int envoy_dynamic_module_callback_network_filter_increment_counter(evm_filter_envoy_ptr f,
                                                                   size_t id, uint64_t value);
int envoy_dynamic_module_callback_network_filter_increment_gauge(evm_filter_envoy_ptr f, size_t id,
                                                                 uint64_t value);
int envoy_dynamic_module_callback_network_filter_decrement_gauge(evm_filter_envoy_ptr f, size_t id,
                                                                 uint64_t value);
int envoy_dynamic_module_callback_network_filter_record_histogram_value(evm_filter_envoy_ptr f,
                                                                        size_t id, uint64_t value);

// Backpressure: hand a held read buffer on to the filters after this one
// (Envoy's ReadFilterCallbacks::continueReading).
void envoy_dynamic_module_callback_network_filter_continue_reading(evm_filter_envoy_ptr f);
// Hands `data` (copied by Envoy) to the filters after this one, as if read
// now: forwards a decided prefix while the read buffer holds the rest.
void envoy_dynamic_module_callback_network_filter_inject_read_data(evm_filter_envoy_ptr f, module_buffer data,
                                                                    bool end_stream);
// The connection's buffer limit (per_connection_buffer_limit_bytes); 0 = none.
// The read buffer's high watermark is this limit: a filter that holds more
// than it with StopIteration stalls the connection.
uint32_t envoy_dynamic_module_callback_network_filter_get_buffer_limit(evm_filter_envoy_ptr f);

// A scheduler posts events to the connection's worker thread, where Envoy
// calls envoy_dynamic_module_on_network_filter_scheduled(f, filter_module,
// event_id). commit() may be called from any thread; a commit after the
// connection closed is dropped by Envoy. The module deletes the scheduler once.
typedef void* evm_scheduler_ptr;
evm_scheduler_ptr envoy_dynamic_module_callback_network_filter_scheduler_new(evm_filter_envoy_ptr f);
void envoy_dynamic_module_callback_network_filter_scheduler_commit(evm_scheduler_ptr scheduler, uint64_t event_id);
void envoy_dynamic_module_callback_network_filter_scheduler_delete(evm_scheduler_ptr scheduler);

#ifdef __cplusplus
}  // extern "C"
#endif

// Every callback name above, for the symbol test. Keep in sync.
#define EVMESH_ENVOY_CALLBACKS(X)                      \
  X(log)                                               \
  X(log_enabled)                                       \
  X(network_filter_get_read_buffer_chunks_size)        \
  X(network_filter_get_read_buffer_chunks)             \
  X(network_filter_get_write_buffer_chunks_size)       \
  X(network_filter_get_write_buffer_chunks)            \
  X(network_filter_drain_read_buffer)                  \
  X(network_filter_drain_write_buffer)                 \
  X(network_filter_append_read_buffer)                 \
  X(network_filter_append_write_buffer)                \
  X(network_filter_prepend_read_buffer)                \
  X(network_filter_prepend_write_buffer)               \
  X(network_filter_write)                              \
  X(network_filter_close)                              \
  X(network_filter_get_connection_id)                  \
  X(network_filter_config_define_counter)              \
  X(network_filter_config_define_gauge)                \
  X(network_filter_config_define_histogram)            \
  X(network_filter_increment_counter)                  \
  X(network_filter_increment_gauge)                    \
  X(network_filter_decrement_gauge)                    \
  X(network_filter_record_histogram_value)            \
  X(network_filter_continue_reading)                   \
  X(network_filter_inject_read_data)                   \
  X(network_filter_get_buffer_limit)                   \
  X(network_filter_scheduler_new)                      \
  X(network_filter_scheduler_commit)                   \
  X(network_filter_scheduler_delete)
