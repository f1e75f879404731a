// Quota buckets shared by every connection of one listener: Kafka applies
// quotas per client id, and one client talks to the sidecar over several
// connections (bootstrap, one per broker), each a separate Envoy listener.
// Keyed by (stat_prefix, rule, client id); bounded per listener (overflow
// clients share one bucket). Thread-safe (workers share it).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "filters/common/policy/token_bucket.h"

namespace evmesh::kafka {

struct QuotaBuckets {
  std::mutex mu;
  policy::TokenBucket records, bytes;
  // Takes the tokens; returns nanoseconds until both balances are >= 0.
  uint64_t take(uint64_t n_records, uint64_t n_bytes, uint64_t now_ns) {
    std::lock_guard<std::mutex> l(mu);
    const uint64_t a = records.take(n_records, now_ns), b = bytes.take(n_bytes, now_ns);
    return a > b ? a : b;
  }
  uint64_t wait(uint64_t now_ns) {
    std::lock_guard<std::mutex> l(mu);
    const uint64_t a = records.wait_ns(now_ns), b = bytes.wait_ns(now_ns);
    return a > b ? a : b;
  }
};

class QuotaRegistry {
 public:
  static QuotaRegistry& instance();
  // The buckets of (listener, rule, direction, client id); created on first use with
  // the given rates (burst = one second).
  std::shared_ptr<QuotaBuckets> get(std::string_view listener, int rule, char direction, std::string_view client_id,
                                    uint64_t records_per_second, uint64_t bytes_per_second, uint64_t now_ns);

 private:
  static constexpr size_t kMaxClientsPerListener = 4096;
  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<QuotaBuckets>> buckets_;
  std::unordered_map<std::string, size_t> clients_;  // per listener
};

}  // namespace evmesh::kafka
