// A token bucket for rate limits (messages/s, bytes/s), single-threaded (one
// per connection). Time is passed in by the caller (nanoseconds on any
// monotonic clock) so that the bucket is testable and does no I/O.
#pragma once

#include <cstdint>

namespace evmesh::policy {

class TokenBucket {
 public:
  TokenBucket() = default;
  // `rate` tokens per second, at most `burst` saved up (burst >= 1; 0 = rate).
  TokenBucket(uint64_t rate, uint64_t burst, uint64_t now_ns)
      : rate_(rate), burst_(burst == 0 ? rate : burst), tokens_(static_cast<double>(burst_)), last_ns_(now_ns) {}

  bool unlimited() const { return rate_ == 0; }

  // Takes `n` tokens. The bucket may go into debt (a message larger than the
  // burst still passes once the debt is repaid): returns 0 when the caller may
  // go on now, else the nanoseconds to wait before the balance is >= 0 again.
  uint64_t take(uint64_t n, uint64_t now_ns) {
    if (rate_ == 0) return 0;
    refill(now_ns);
    tokens_ -= static_cast<double>(n);
    return wait_ns();
  }

  // Nanoseconds until the balance is >= 0 (0 when it is).
  uint64_t wait_ns(uint64_t now_ns) {
    if (rate_ == 0) return 0;
    refill(now_ns);
    return wait_ns();
  }

 private:
  void refill(uint64_t now_ns) {
    if (now_ns > last_ns_) {
      tokens_ += static_cast<double>(now_ns - last_ns_) * static_cast<double>(rate_) / 1e9;
      if (tokens_ > static_cast<double>(burst_)) tokens_ = static_cast<double>(burst_);
      last_ns_ = now_ns;
    }
  }
  uint64_t wait_ns() const {
    if (tokens_ >= 0) return 0;
    return static_cast<uint64_t>(-tokens_ * 1e9 / static_cast<double>(rate_)) + 1;
  }

  uint64_t rate_ = 0;
  uint64_t burst_ = 0;
  double tokens_ = 0;
  uint64_t last_ns_ = 0;
};

}  // namespace evmesh::policy
