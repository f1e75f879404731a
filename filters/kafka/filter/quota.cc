#include "filters/kafka/filter/quota.h"

namespace evmesh::kafka {

QuotaRegistry& QuotaRegistry::instance() {
  static QuotaRegistry* r = new QuotaRegistry();  // never destroyed: workers may outlive static destructors
  return *r;
}

std::shared_ptr<QuotaBuckets> QuotaRegistry::get(std::string_view listener, int rule, char direction,
                                                 std::string_view client_id, uint64_t rps, uint64_t bps,
                                                 uint64_t now_ns) {
  std::string key;
  key.reserve(listener.size() + client_id.size() + 24);
  key.append(listener).push_back('\0');
  // The rates are part of the key: a live policy change gets fresh buckets.
  key.append(std::to_string(rule)).push_back(direction);
  key.append(std::to_string(rps)).push_back('/');
  key.append(std::to_string(bps));
  key.push_back('\0');
  std::lock_guard<std::mutex> l(mu_);
  auto it = buckets_.find(key + std::string(client_id));
  if (it != buckets_.end()) return it->second;
  size_t& n = clients_[std::string(listener)];
  // Beyond the bound every new client id shares the overflow bucket ("\1").
  if (n >= kMaxClientsPerListener) {
    key.push_back('\1');
  } else {
    key.append(client_id);
    ++n;
  }
  auto& slot = buckets_[key];
  if (!slot) {
    slot = std::make_shared<QuotaBuckets>();
    slot->records = policy::TokenBucket(rps, rps, now_ns);
    slot->bytes = policy::TokenBucket(bps, bps, now_ns);
  }
  return slot;
}

}  // namespace evmesh::kafka
