// A fake of the Envoy side of the dynamic-module ABI, for filter unit tests:
// one connection's read/write buffers (presented as chunks of `chunk` bytes),
// what the filter wrote to the client, closes, metrics and log lines.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace evmesh::testing {

struct FakeEnvoy {
  std::string read_buf, write_buf;
  std::string to_client;  // network_filter_write
  size_t chunk = 0;       // 0: one chunk
  bool closed = false;
  int close_how = -1;
  std::vector<std::string> metric_names;  // id -> name (counters, gauges, histograms share ids)
  std::map<std::string, int64_t> metrics;
  std::vector<std::string> logs;

  int64_t metric(const std::string& name) const {
    auto it = metrics.find(name);
    return it == metrics.end() ? 0 : it->second;
  }
  void reset() { *this = FakeEnvoy(); }
};

FakeEnvoy& fake_envoy();

}  // namespace evmesh::testing
