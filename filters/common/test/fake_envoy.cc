#include "filters/common/test/fake_envoy.h"

#include "filters/common/abi/envoy_abi.h"

namespace evmesh::testing {
FakeEnvoy& fake_envoy() {
  static FakeEnvoy f;
  return f;
}
}  // namespace evmesh::testing

using evmesh::testing::fake_envoy;

namespace {
size_t chunk_count(const std::string& b) {
  const size_t c = fake_envoy().chunk;
  if (b.empty()) return 0;
  return c == 0 ? 1 : (b.size() + c - 1) / c;
}
bool chunks(const std::string& b, envoy_buffer* out) {
  const size_t c = fake_envoy().chunk == 0 ? b.size() : fake_envoy().chunk;
  for (size_t i = 0, pos = 0; pos < b.size(); ++i, pos += c) {
    out[i] = envoy_buffer{b.data() + pos, std::min(c, b.size() - pos)};
  }
  return true;
}
int define(evm_config_envoy_ptr, module_buffer name, size_t* id) {
  auto& names = fake_envoy().metric_names;
  *id = names.size();
  names.emplace_back(name.ptr, name.length);
  return 0;
}
int add(size_t id, int64_t v) {
  auto& f = fake_envoy();
  f.metrics[f.metric_names.at(id)] += v;
  return 0;
}
}  // namespace

extern "C" {
void envoy_dynamic_module_callback_log(int, module_buffer m) { fake_envoy().logs.emplace_back(m.ptr, m.length); }
bool envoy_dynamic_module_callback_log_enabled(int) { return true; }
size_t envoy_dynamic_module_callback_network_filter_get_read_buffer_chunks_size(evm_filter_envoy_ptr) {
  return chunk_count(fake_envoy().read_buf);
}
bool envoy_dynamic_module_callback_network_filter_get_read_buffer_chunks(evm_filter_envoy_ptr, envoy_buffer* out) {
  return chunks(fake_envoy().read_buf, out);
}
size_t envoy_dynamic_module_callback_network_filter_get_write_buffer_chunks_size(evm_filter_envoy_ptr) {
  return chunk_count(fake_envoy().write_buf);
}
bool envoy_dynamic_module_callback_network_filter_get_write_buffer_chunks(evm_filter_envoy_ptr, envoy_buffer* out) {
  return chunks(fake_envoy().write_buf, out);
}
bool envoy_dynamic_module_callback_network_filter_drain_read_buffer(evm_filter_envoy_ptr, size_t n) {
  fake_envoy().read_buf.erase(0, n);
  return true;
}
bool envoy_dynamic_module_callback_network_filter_drain_write_buffer(evm_filter_envoy_ptr, size_t n) {
  fake_envoy().write_buf.erase(0, n);
  return true;
}
bool envoy_dynamic_module_callback_network_filter_append_read_buffer(evm_filter_envoy_ptr, module_buffer d) {
  if (d.length == 0) return false;
  fake_envoy().read_buf.append(d.ptr, d.length);
  return true;
}
bool envoy_dynamic_module_callback_network_filter_append_write_buffer(evm_filter_envoy_ptr, module_buffer d) {
  if (d.length == 0) return false;
  fake_envoy().write_buf.append(d.ptr, d.length);
  return true;
}
bool envoy_dynamic_module_callback_network_filter_prepend_read_buffer(evm_filter_envoy_ptr, module_buffer d) {
  if (d.length == 0) return false;
  fake_envoy().read_buf.insert(0, d.ptr, d.length);
  return true;
}
bool envoy_dynamic_module_callback_network_filter_prepend_write_buffer(evm_filter_envoy_ptr, module_buffer d) {
  if (d.length == 0) return false;
  fake_envoy().write_buf.insert(0, d.ptr, d.length);
  return true;
}
void envoy_dynamic_module_callback_network_filter_write(evm_filter_envoy_ptr, module_buffer d, bool) {
  fake_envoy().to_client.append(d.ptr, d.length);
}
void envoy_dynamic_module_callback_network_filter_close(evm_filter_envoy_ptr, int how) {
  fake_envoy().closed = true;
  fake_envoy().close_how = how;
}
uint64_t envoy_dynamic_module_callback_network_filter_get_connection_id(evm_filter_envoy_ptr) { return 7; }
int envoy_dynamic_module_callback_network_filter_config_define_counter(evm_config_envoy_ptr c, module_buffer n,
                                                                       size_t* id) {
  return define(c, n, id);
}
int envoy_dynamic_module_callback_network_filter_config_define_gauge(evm_config_envoy_ptr c, module_buffer n,
                                                                     size_t* id) {
  return define(c, n, id);
}
int envoy_dynamic_module_callback_network_filter_config_define_histogram(evm_config_envoy_ptr c, module_buffer n,
                                                                         size_t* id) {
  return define(c, n, id);
}
int envoy_dynamic_module_callback_network_filter_increment_counter(evm_filter_envoy_ptr, size_t id, uint64_t v) {
  return add(id, static_cast<int64_t>(v));
}
int envoy_dynamic_module_callback_network_filter_increment_gauge(evm_filter_envoy_ptr, size_t id, uint64_t v) {
  return add(id, static_cast<int64_t>(v));
}
int envoy_dynamic_module_callback_network_filter_decrement_gauge(evm_filter_envoy_ptr, size_t id, uint64_t v) {
  return add(id, -static_cast<int64_t>(v));
}
int envoy_dynamic_module_callback_network_filter_record_histogram_value(evm_filter_envoy_ptr, size_t id, uint64_t v) {
  return add(id, static_cast<int64_t>(v));
}
uint32_t envoy_dynamic_module_callback_network_filter_get_buffer_limit(evm_filter_envoy_ptr) {
  return fake_envoy().buffer_limit;
}
void envoy_dynamic_module_callback_network_filter_inject_read_data(evm_filter_envoy_ptr, module_buffer d, bool) {
  fake_envoy().injected.append(d.ptr, d.length);
}
void envoy_dynamic_module_callback_network_filter_continue_reading(evm_filter_envoy_ptr) {
  ++fake_envoy().continue_reading;
}
evm_scheduler_ptr envoy_dynamic_module_callback_network_filter_scheduler_new(evm_filter_envoy_ptr) {
  ++fake_envoy().schedulers;
  return new int(0);
}
void envoy_dynamic_module_callback_network_filter_scheduler_commit(evm_scheduler_ptr, uint64_t event_id) {
  std::lock_guard<std::mutex> l(fake_envoy().mu);
  fake_envoy().committed.push_back(event_id);
}
void envoy_dynamic_module_callback_network_filter_scheduler_delete(evm_scheduler_ptr s) {
  --fake_envoy().schedulers;
  delete static_cast<int*>(s);
}
}  // extern "C"
