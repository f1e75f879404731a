// A listener's live config: the structural part of its filter JSON (metric
// groups, limits that shape framing) merged with the policy document the
// control plane serves for it (ACLs, quotas, ...). Parsed once per listener
// config and policy generation, shared by its connections; a document the
// parser rejects keeps the previous config and is reported back.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "filters/common/config/policy_ref.h"
#include "filters/common/envoy/module.h"
#include "filters/common/live/registry.h"

namespace evmesh::live {

template <class T>
class LiveConfig : public Follower {
 public:
  using Parse = std::optional<T> (*)(std::string_view json, std::string* error);

  // `base`: the filter JSON; `keys`: the policy keys the document may set.
  LiveConfig(nlohmann::json base, std::vector<std::string> keys, Parse parse, PolicyRef ref)
      : base_(std::move(base)), keys_(std::move(keys)), parse_(parse), ref_(std::move(ref)) {
    base_.erase("policy");
    for (const auto& k : keys_) base_.erase(k);
    gen_ = Registry::instance().generation(ref_.source, ref_.name);
    Registry::instance().follow(ref_.source, this);
  }
  ~LiveConfig() override { Registry::instance().unfollow(ref_.source, this); }

  void on_published() override {
    uint64_t gen = 0;
    current(&gen);
  }

  uint64_t generation() const { return gen_->load(std::memory_order_acquire); }

  // The config for the current generation; first call decides whether the
  // listener config is accepted (false + *error when the document is bad).
  bool init(std::string* error) {
    std::lock_guard<std::mutex> l(mu_);
    return reparse(error);
  }

  std::shared_ptr<const T> current(uint64_t* gen_out) {
    std::lock_guard<std::mutex> l(mu_);
    if (generation() != parsed_gen_) {
      std::string error;
      if (!reparse(&error)) {
        log(EVM_LOG_WARN, "evmesh policy \"" + ref_.name + "\": rejected, keeping the previous one: " + error);
      }
    }
    *gen_out = parsed_gen_;
    return cur_;
  }

 private:
  bool reparse(std::string* error) {
    const uint64_t gen = generation();
    std::shared_ptr<const Doc> doc = Registry::instance().get(ref_.source, ref_.name);
    parsed_gen_ = gen;  // a rejected generation is not retried
    if (!doc) {
      *error = "no policy document for \"" + ref_.name + "\"";
      return false;
    }
    nlohmann::json merged = base_;
    const nlohmann::json pol = nlohmann::json::parse(doc->json, nullptr, false);
    if (pol.is_discarded() || !pol.is_object()) {
      *error = "policy \"" + ref_.name + "\" is not a JSON object";
      Registry::instance().report_rejected(ref_.source, ref_.name, doc->version, *error);
      return false;
    }
    for (auto& [k, v] : pol.items()) {
      bool allowed = false;
      for (const auto& key : keys_) allowed = allowed || key == k;
      if (!allowed) {
        *error = "policy." + k + ": not a policy key of this filter";
        Registry::instance().report_rejected(ref_.source, ref_.name, doc->version, *error);
        return false;
      }
      merged[k] = v;
    }
    std::string perr;
    std::optional<T> cfg = parse_(merged.dump(), &perr);
    if (!cfg) {
      *error = "policy " + perr;
      Registry::instance().report_rejected(ref_.source, ref_.name, doc->version, *error);
      return false;
    }
    cur_ = std::make_shared<const T>(std::move(*cfg));
    version_ = doc->version;
    return true;
  }

  nlohmann::json base_;
  std::vector<std::string> keys_;
  Parse parse_;
  PolicyRef ref_;
  const std::atomic<uint64_t>* gen_ = nullptr;
  std::mutex mu_;
  uint64_t parsed_gen_ = UINT64_MAX;
  std::shared_ptr<const T> cur_;
  std::string version_;
};

}  // namespace evmesh::live

namespace evmesh::live {

// What a FilterConfig holds: its parsed config and, when the filter JSON names
// a policy, the live config of that policy. Thread-safe.
template <class T>
class LivePolicy {
 public:
  // Takes the parsed config; when it names a policy, waits (up to 2 s) for the
  // policy source's first document and parses the merged config. False with
  // *error ("policy: ...") when that fails: the listener config is rejected.
  bool setup(T parsed, std::string_view json, std::vector<std::string> keys, typename LiveConfig<T>::Parse parse,
             std::string* error) {
    base_ = std::make_shared<const T>(std::move(parsed));
    if (!base_->policy.present()) return true;
    std::string err;
    if (!Registry::instance().ensure(base_->policy.source, base_->policy.name, std::chrono::milliseconds(2000),
                                     &err)) {
      *error = "policy: " + err;
      return false;
    }
    nlohmann::json root = nlohmann::json::parse(json, nullptr, false);
    live_ = std::make_unique<LiveConfig<T>>(std::move(root), std::move(keys), parse, base_->policy);
    if (!live_->init(&err)) {
      *error = err;
      return false;
    }
    return true;
  }
  const T& base() const { return *base_; }
  bool live() const { return live_ != nullptr; }
  uint64_t generation() const { return live_ ? live_->generation() : 0; }
  std::shared_ptr<const T> get(uint64_t* gen) const {
    if (!live_) {
      *gen = 0;
      return base_;
    }
    return live_->current(gen);
  }

 private:
  std::shared_ptr<const T> base_;
  std::unique_ptr<LiveConfig<T>> live_;
};

}  // namespace evmesh::live
