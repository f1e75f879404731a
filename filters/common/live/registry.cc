#include "filters/common/live/registry.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include <nlohmann/json.hpp>

#include "filters/common/envoy/module.h"

namespace evmesh::live {

namespace {

constexpr int kWaitSeconds = 30;
constexpr size_t kMaxBody = 16u << 20;

std::string url_encode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

bool split_source(const std::string& source, std::string* host, uint16_t* port) {
  const size_t colon = source.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  const std::string p = source.substr(colon + 1);
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos) return false;
  const unsigned long v = std::stoul(p);
  if (v == 0 || v > 65535) return false;
  *host = source.substr(0, colon);
  if (host->size() > 2 && host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  *port = static_cast<uint16_t>(v);
  return true;
}

}  // namespace

int http_get(const std::string& host, uint16_t port, const std::string& target, int timeout_ms, std::string* body,
             std::string* error) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || res == nullptr) {
    *error = "cannot resolve " + host;
    return 0;
  }
  const int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    freeaddrinfo(res);
    *error = "socket: " + std::string(std::strerror(errno));
    return 0;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  const auto left_ms = [&] {
    const auto d = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return static_cast<int>(d.count() > 0 ? d.count() : 0);
  };
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const int rc = connect(fd, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  if (rc != 0) {
    *error = "connect " + host + ":" + std::to_string(port) + ": " + std::strerror(errno);
    close(fd);
    return 0;
  }
  const std::string req = "GET " + target + " HTTP/1.1\r\nHost: " + host + ":" + std::to_string(port) +
                          "\r\nConnection: close\r\nAccept: application/json\r\n\r\n";
  if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    *error = "send: " + std::string(std::strerror(errno));
    close(fd);
    return 0;
  }
  std::string in;
  char buf[16384];
  size_t header_end = std::string::npos, content_length = SIZE_MAX;
  while (true) {
    pollfd p{fd, POLLIN, 0};
    const int left = left_ms();
    if (left == 0 || poll(&p, 1, left) <= 0) {
      *error = "timed out";
      close(fd);
      return 0;
    }
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      *error = "recv: " + std::string(std::strerror(errno));
      close(fd);
      return 0;
    }
    if (n == 0) break;
    in.append(buf, static_cast<size_t>(n));
    if (in.size() > kMaxBody) {
      *error = "response larger than 16 MiB";
      close(fd);
      return 0;
    }
    if (header_end == std::string::npos) {
      header_end = in.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        std::string head = in.substr(0, header_end);
        for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        const size_t cl = head.find("\r\ncontent-length:");
        if (cl != std::string::npos) content_length = std::strtoull(head.c_str() + cl + 17, nullptr, 10);
      }
    }
    if (header_end != std::string::npos && content_length != SIZE_MAX &&
        in.size() >= header_end + 4 + content_length) {
      break;
    }
  }
  close(fd);
  if (in.compare(0, 9, "HTTP/1.1 ") != 0 && in.compare(0, 9, "HTTP/1.0 ") != 0) {
    *error = "not an HTTP response";
    return 0;
  }
  const int status = std::atoi(in.c_str() + 9);
  if (header_end == std::string::npos) {
    *error = "truncated HTTP response";
    return 0;
  }
  *body = in.substr(header_end + 4, content_length == SIZE_MAX ? std::string::npos : content_length);
  return status;
}

Registry& Registry::instance() {
  static Registry* r = new Registry();  // never destroyed: poller threads outlive static destructors
  return *r;
}

const std::atomic<uint64_t>* Registry::generation(const std::string& source, const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  auto& e = entries_[source + "|" + name];
  if (!e) e = std::make_unique<Entry>();
  return &e->generation;
}

std::shared_ptr<const Doc> Registry::get(const std::string& source, const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = entries_.find(source + "|" + name);
  return it == entries_.end() || !it->second ? nullptr : it->second->doc;
}

void Registry::publish(const std::string& source, const std::string& name, Doc doc) {
  std::lock_guard<std::mutex> l(mu_);
  auto& e = entries_[source + "|" + name];
  if (!e) e = std::make_unique<Entry>();
  if (e->doc && e->doc->json == doc.json) return;
  e->doc = std::make_shared<const Doc>(std::move(doc));
  e->generation.fetch_add(1, std::memory_order_release);
  cv_.notify_all();
}

void Registry::report_rejected(const std::string& source, const std::string& name, const std::string& version,
                               const std::string& error) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = sources_.find(source);
  if (it != sources_.end()) it->second.rejected[name] = {version, error};
}

void Registry::follow(const std::string& source, Follower* f) {
  std::lock_guard<std::mutex> l(followers_mu_);
  followers_.emplace(source, f);
}

void Registry::unfollow(const std::string& source, Follower* f) {
  std::lock_guard<std::mutex> l(followers_mu_);
  for (auto it = followers_.lower_bound(source); it != followers_.end() && it->first == source; ++it) {
    if (it->second == f) {
      followers_.erase(it);
      return;
    }
  }
}

bool Registry::ensure(const std::string& source, const std::string& name, std::chrono::milliseconds timeout,
                      std::string* error) {
  std::unique_lock<std::mutex> l(mu_);
  Source& s = sources_[source];
  if (!s.started) {
    if (!split_source(source, &s.host, &s.port)) {
      *error = "source \"" + source + "\" is not host:port";
      sources_.erase(source);
      return false;
    }
    s.started = true;
    std::thread([this, source] { run(source); }).detach();
  }
  const std::string key = source + "|" + name;
  const auto have = [&] {
    auto it = entries_.find(key);
    return (it != entries_.end() && it->second && it->second->doc) || sources_[source].answered;
  };
  if (!cv_.wait_for(l, timeout, have)) {
    *error = "no policy document from " + source + " within " + std::to_string(timeout.count()) + " ms" +
             (s.last_error.empty() ? std::string() : " (" + s.last_error + ")");
    return false;
  }
  auto it = entries_.find(key);
  if (it == entries_.end() || !it->second || !it->second->doc) {
    *error = "the policy source " + source + " has no policy named \"" + name + "\"";
    return false;
  }
  return true;
}

void Registry::run(std::string source) {
  std::string version;
  int backoff_ms = 100;
  while (true) {
    std::string host, target;
    uint16_t port = 0;
    {
      std::lock_guard<std::mutex> l(mu_);
      Source& s = sources_[source];
      host = s.host;
      port = s.port;
      target = "/v1/policies?version=" + url_encode(version) + "&wait=" + std::to_string(kWaitSeconds);
      if (!s.applied.empty()) {
        target += "&applied=" + url_encode(s.applied);
        s.applied.clear();
      }
      if (!s.rejected.empty()) {
        auto it = s.rejected.begin();
        target += "&rejected=" + url_encode(it->first) + "&error=" + url_encode(it->second.second);
        s.rejected.erase(it);
      }
    }
    std::string body, error;
    const int status = http_get(host, port, target, (kWaitSeconds + 10) * 1000, &body, &error);
    nlohmann::json doc;
    bool ok = status == 200;
    if (ok) {
      doc = nlohmann::json::parse(body, nullptr, false);
      ok = !doc.is_discarded() && doc.is_object() && doc.contains("version") && doc["version"].is_string() &&
           doc.contains("policies") && doc["policies"].is_object();
      if (!ok) error = "malformed policy document";
    } else if (status != 0) {
      error = "HTTP status " + std::to_string(status);
    }
    if (!ok) {
      {
        std::lock_guard<std::mutex> l(mu_);
        sources_[source].last_error = error;
      }
      log(EVM_LOG_WARN, "evmesh policy source " + source + ": " + error + "; retrying");
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
      backoff_ms = backoff_ms < 2000 ? backoff_ms * 2 : 2000;
      continue;
    }
    backoff_ms = 100;
    const std::string v = doc["version"].get<std::string>();
    if (v != version) {
      for (auto& [name, policy] : doc["policies"].items()) publish(source, name, Doc{v, policy.dump()});
      log(EVM_LOG_INFO, "evmesh policy source " + source + ": version " + v + " (" +
                            std::to_string(doc["policies"].size()) + " policies)");
      version = v;
      {
        // Every listener config re-parses now: the next poll carries the
        // verdict (applied, or the first rejection).
        std::lock_guard<std::mutex> fl(followers_mu_);
        for (auto it = followers_.lower_bound(source); it != followers_.end() && it->first == source; ++it) {
          it->second->on_published();
        }
      }
      std::lock_guard<std::mutex> l(mu_);
      Source& s = sources_[source];
      s.applied = v;
      s.answered = true;
      s.last_error.clear();
      cv_.notify_all();
    }
  }
}

}  // namespace evmesh::live
