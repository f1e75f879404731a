// Live policy: a process-wide registry of the policy documents the control
// plane serves, kept current by one module-owned long-poll thread per policy
// source, and read by every connection of every listener that names a policy.
//
//   control plane ──HTTP long-poll──► poller thread ──publish──► Registry
//                                                                  │ generation (atomic)
//   connection: at each read/write, generation moved? ──► LiveConfig::current()
//
// A connection checks one atomic per hook; only when it moved does it take
// the listener's re-parsed config (parsed once per listener config and
// generation). No reconnect, no drain: Envoy's listener config is unchanged.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace evmesh::live {

struct Doc {
  std::string version;  // the control plane's document version
  std::string json;     // this listener's policy object, serialized
};

// A listener config that follows documents of one (source, name).
class Follower {
 public:
  virtual ~Follower() = default;
  // Called on the poller thread after a new document set was published, so
  // that a bad document is found (and reported) at once, not at the next read.
  virtual void on_published() = 0;
};

class Registry {
 public:
  static Registry& instance();

  // The generation counter of (source, name): stable address for the process's lifetime.
  const std::atomic<uint64_t>* generation(const std::string& source, const std::string& name);
  // The current document (nullptr when none has arrived yet).
  std::shared_ptr<const Doc> get(const std::string& source, const std::string& name);
  // Stores a document; bumps the generation when it differs from the stored one.
  void publish(const std::string& source, const std::string& name, Doc doc);

  // Starts the long-poll thread of `source` (once) and waits up to `timeout`
  // for the first document of `name`. False with *error when none came.
  bool ensure(const std::string& source, const std::string& name, std::chrono::milliseconds timeout,
              std::string* error);
  // A listener's parser rejected `name`'s document of `version`: reported to
  // the source with the next poll (once per name and version).
  void report_rejected(const std::string& source, const std::string& name, const std::string& version,
                       const std::string& error);
  void follow(const std::string& source, Follower* f);
  void unfollow(const std::string& source, Follower* f);

 private:
  struct Entry {
    std::atomic<uint64_t> generation{0};
    std::shared_ptr<const Doc> doc;
  };
  struct Source {
    std::string host;
    uint16_t port = 0;
    bool started = false;
    bool answered = false;        // a document set arrived at least once
    std::string last_error;       // of the last failed poll
    std::string applied;          // version to acknowledge with the next poll
    std::map<std::string, std::pair<std::string, std::string>> rejected;  // name -> (version, error)
  };
  void run(std::string source);

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::unique_ptr<Entry>> entries_;  // "source|name"
  std::map<std::string, Source> sources_;
  std::mutex followers_mu_;  // held while followers run: unfollow waits for them
  std::multimap<std::string, Follower*> followers_;  // by source
};

// One HTTP/1.1 GET to host:port (Connection: close, Content-Length body).
// Returns the status code (0 on a transport error, with *error set).
int http_get(const std::string& host, uint16_t port, const std::string& target, int timeout_ms, std::string* body,
             std::string* error);

}  // namespace evmesh::live
