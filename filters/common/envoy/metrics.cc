#include "filters/common/envoy/metrics.h"

namespace evmesh {

namespace {
enum { kCounter, kGauge, kHistogram };
}

size_t MetricsBuilder::define(int kind, std::string_view name) {
  size_t id = 0;
  if (config_envoy_ == nullptr) return 0;  // check-only build of the config
  const std::string full = prefix_ + std::string(name);
  const module_buffer b{full.data(), full.size()};
  int rc = 0;
  switch (kind) {
    case kCounter:
      rc = envoy_dynamic_module_callback_network_filter_config_define_counter(config_envoy_, b, &id);
      break;
    case kGauge:
      rc = envoy_dynamic_module_callback_network_filter_config_define_gauge(config_envoy_, b, &id);
      break;
    default:
      rc = envoy_dynamic_module_callback_network_filter_config_define_histogram(config_envoy_, b, &id);
      break;
  }
  if (rc != 0 && error_.empty()) error_ = "metric " + full + ": Envoy refused the definition (" + std::to_string(rc) + ")";
  return id;
}

MetricIndex MetricsBuilder::counter(std::string_view name) {
  table_.counters.push_back(define(kCounter, name));
  return static_cast<MetricIndex>(table_.counters.size() - 1);
}

MetricIndex MetricsBuilder::gauge(std::string_view name) {
  table_.gauges.push_back(define(kGauge, name));
  return static_cast<MetricIndex>(table_.gauges.size() - 1);
}

MetricIndex MetricsBuilder::histogram(std::string_view name) {
  table_.histograms.push_back(define(kHistogram, name));
  return static_cast<MetricIndex>(table_.histograms.size() - 1);
}

void CounterDeltas::flush(evm_filter_envoy_ptr f) {
  for (MetricIndex i : touched_) {
    envoy_dynamic_module_callback_network_filter_increment_counter(f, table_->counters[i], deltas_[i]);
    deltas_[i] = 0;
  }
  touched_.clear();
}

}  // namespace evmesh
