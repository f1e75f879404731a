// Envoy's per-connection scheduler posts an event to the worker thread at
// once; it has no delay. DelayedCommits adds one: a single thread, owned by a
// filter config and joined when the config goes, commits (scheduler, event)
// pairs when their time has come. A connection cancels its pending commits
// before it deletes its scheduler, so no commit reaches a deleted scheduler.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <thread>

#include "filters/common/abi/envoy_abi.h"

namespace evmesh {

class DelayedCommits {
 public:
  using Clock = std::chrono::steady_clock;
  // How an event is committed; tests replace it.
  using CommitFn = void (*)(evm_scheduler_ptr, uint64_t);

  explicit DelayedCommits(CommitFn commit = &envoy_dynamic_module_callback_network_filter_scheduler_commit)
      : commit_(commit) {}
  ~DelayedCommits();
  DelayedCommits(const DelayedCommits&) = delete;
  DelayedCommits& operator=(const DelayedCommits&) = delete;

  // Commits `event_id` to `scheduler` after `delay` (starts the thread on first use).
  void commit_after(evm_scheduler_ptr scheduler, uint64_t event_id, std::chrono::nanoseconds delay);
  // Drops every pending commit for `scheduler`.
  void cancel(evm_scheduler_ptr scheduler);
  size_t pending() const;

 private:
  void run();

  CommitFn commit_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::multimap<Clock::time_point, std::pair<evm_scheduler_ptr, uint64_t>> due_;
  std::thread thread_;
  bool stop_ = false;
};

}  // namespace evmesh
