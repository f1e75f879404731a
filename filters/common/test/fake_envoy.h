// A fake of the Envoy side of the dynamic-module ABI, for filter unit tests:
// one connection's read/write buffers (presented as chunks of `chunk` bytes),
// what the filter wrote to the client, closes, metrics and log lines.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace evmesh::testing {

struct FakeEnvoy {
  std::string read_buf, write_buf;
  std::string to_client;  // network_filter_write
  std::string injected;   // network_filter_inject_read_data: handed to the next filter (upstream)
  size_t chunk = 0;       // 0: one chunk
  uint32_t buffer_limit = 0;
  bool closed = false;
  int close_how = -1;
  std::vector<std::string> metric_names;  // id -> name (counters, gauges, histograms share ids)
  std::map<std::string, int64_t> metrics;
  std::vector<std::string> logs;
  int continue_reading = 0;
  int schedulers = 0;  // created minus deleted
  std::mutex mu;       // committed: written by the DelayedCommits thread
  std::vector<uint64_t> committed;
  size_t committed_count() {
    std::lock_guard<std::mutex> l(mu);
    return committed.size();
  }

  int64_t metric(const std::string& name) const {
    auto it = metrics.find(name);
    return it == metrics.end() ? 0 : it->second;
  }
  void reset() {
    read_buf.clear();
    write_buf.clear();
    to_client.clear();
    injected.clear();
    chunk = 0;
    buffer_limit = 0;
    closed = false;
    close_how = -1;
    metric_names.clear();
    metrics.clear();
    logs.clear();
    continue_reading = 0;
    schedulers = 0;
    std::lock_guard<std::mutex> l(mu);
    committed.clear();
  }
};

FakeEnvoy& fake_envoy();

}  // namespace evmesh::testing
