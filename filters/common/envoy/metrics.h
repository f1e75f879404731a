// Metrics from one table: defined once at config time, counted per connection
// into local deltas, flushed to Envoy once per read/write hook (one callback
// per touched counter instead of one per message).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "filters/common/abi/envoy_abi.h"

namespace evmesh {

using MetricIndex = uint32_t;

struct MetricTable {
  std::vector<size_t> counters;    // Envoy ids, indexed by MetricIndex
  std::vector<size_t> gauges;
  std::vector<size_t> histograms;
};

class MetricsBuilder {
 public:
  // `prefix` is prepended to every name ("nats.orders."). Envoy adds the
  // module's metrics_namespace in front ("evmesh.").
  MetricsBuilder(evm_config_envoy_ptr config_envoy, std::string prefix)
      : config_envoy_(config_envoy), prefix_(std::move(prefix)) {}

  MetricIndex counter(std::string_view name);
  MetricIndex gauge(std::string_view name);
  MetricIndex histogram(std::string_view name);

  // False when Envoy refused a definition; error() names it.
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  MetricTable take() { return std::move(table_); }

 private:
  size_t define(int kind, std::string_view name);

  evm_config_envoy_ptr config_envoy_;
  std::string prefix_;
  MetricTable table_;
  std::string error_;
};

// The metrics every evmesh network filter keeps per listener, whatever the protocol.
struct ConnectionMetrics {
  MetricIndex connections_total, c2s_frames, c2s_bytes, s2c_frames, s2c_bytes, c2s_protocol_errors,
      s2c_protocol_errors;
  MetricIndex connections_active;  // gauge
};

inline ConnectionMetrics define_connection_metrics(MetricsBuilder& b) {
  ConnectionMetrics m;
  m.connections_total = b.counter("connections_total");
  m.connections_active = b.gauge("connections_active");
  m.c2s_frames = b.counter("c2s.frames");
  m.c2s_bytes = b.counter("c2s.bytes");
  m.s2c_frames = b.counter("s2c.frames");
  m.s2c_bytes = b.counter("s2c.bytes");
  m.c2s_protocol_errors = b.counter("c2s.protocol_errors");
  m.s2c_protocol_errors = b.counter("s2c.protocol_errors");
  return m;
}

// Per-connection counter deltas.
class CounterDeltas {
 public:
  explicit CounterDeltas(const MetricTable& table) : table_(&table), deltas_(table.counters.size(), 0) {}

  void add(MetricIndex i, uint64_t v = 1) {
    if (deltas_[i] == 0) touched_.push_back(i);
    deltas_[i] += v;
  }
  // Sends the deltas to Envoy and resets them.
  void flush(evm_filter_envoy_ptr f);

 private:
  const MetricTable* table_;
  std::vector<uint64_t> deltas_;
  std::vector<MetricIndex> touched_;
};

inline void gauge_add(evm_filter_envoy_ptr f, const MetricTable& t, MetricIndex i, int64_t v) {
  if (v >= 0) {
    envoy_dynamic_module_callback_network_filter_increment_gauge(f, t.gauges[i], static_cast<uint64_t>(v));
  } else {
    envoy_dynamic_module_callback_network_filter_decrement_gauge(f, t.gauges[i], static_cast<uint64_t>(-v));
  }
}

inline void histogram_record(evm_filter_envoy_ptr f, const MetricTable& t, MetricIndex i, uint64_t v) {
  envoy_dynamic_module_callback_network_filter_record_histogram_value(f, t.histograms[i], v);
}

}  // namespace evmesh
