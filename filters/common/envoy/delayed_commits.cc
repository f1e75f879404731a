#include "filters/common/envoy/delayed_commits.h"

namespace evmesh {

DelayedCommits::~DelayedCommits() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
    due_.clear();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void DelayedCommits::commit_after(evm_scheduler_ptr scheduler, uint64_t event_id, std::chrono::nanoseconds delay) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stop_) return;
    due_.emplace(Clock::now() + delay, std::make_pair(scheduler, event_id));
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  }
  cv_.notify_all();
}

void DelayedCommits::cancel(evm_scheduler_ptr scheduler) {
  std::lock_guard<std::mutex> l(mu_);
  for (auto it = due_.begin(); it != due_.end();) {
    it = it->second.first == scheduler ? due_.erase(it) : std::next(it);
  }
}

size_t DelayedCommits::pending() const {
  std::lock_guard<std::mutex> l(mu_);
  return due_.size();
}

void DelayedCommits::run() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    if (due_.empty()) {
      cv_.wait(l);
      continue;
    }
    const auto next = due_.begin()->first;
    if (Clock::now() < next) {
      cv_.wait_until(l, next);
      continue;
    }
    // Committed under the lock: cancel() cannot run between the check and the commit.
    const auto item = due_.begin()->second;
    due_.erase(due_.begin());
    commit_(item.first, item.second);
  }
}

}  // namespace evmesh
