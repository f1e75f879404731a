// The NATS network filter: thin glue between Envoy, the NATS codec and the
// NATS policies.
//
//   client ──► on_read ──► Parser(c2s) ──► Acl / payload limit ──► pass | drop + -ERR | close
//                                                                       │
//   client ◄── on_write ◄── Parser(s2c) ◄── INFO rewrite (max_payload) ◄─┘ broker (via tcp_proxy)
//
// Read side: complete frames pass untouched (zero copy). A control line split
// at the end of the read buffer is held (StopIteration) until its line end
// arrives, so a denied frame is never partly forwarded. The buffer is only
// rebuilt when a frame is dropped. Local -ERR replies are written to the
// client only at a server-to-client frame boundary.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "filters/common/codec/chunks.h"
#include "filters/common/envoy/metrics.h"
#include "filters/common/envoy/module.h"
#include "filters/common/live/live_config.h"
#include "filters/nats/codec/parser.h"
#include "filters/nats/policy/config.h"

namespace evmesh::nats {

struct NatsMetrics : ConnectionMetrics {
  MetricIndex payload_too_large, server_errors, c2s_carried;
  struct Group {
    MetricIndex published_msgs, published_bytes, delivered_msgs, delivered_bytes, publish_denied, subscribe_denied;
  };
  std::vector<Group> groups;  // SubjectGroups order, "other" last
};

class NatsFilterConfig : public FilterConfig {
 public:
  NatsFilterConfig(MetricTable table, NatsMetrics m) : table_(std::move(table)), m_(std::move(m)) {}
  std::unique_ptr<NetworkFilter> create(evm_filter_envoy_ptr f) const override;

  // The structural config (stat_prefix, groups, framing limits).
  const NatsConfig& cfg() const { return pol_.base(); }
  // The policies: the parsed config, or the live one when the JSON names a policy.
  live::LivePolicy<NatsConfig>& pol() { return pol_; }
  const live::LivePolicy<NatsConfig>& pol() const { return pol_; }
  const MetricTable& table() const { return table_; }
  const NatsMetrics& m() const { return m_; }

 private:
  live::LivePolicy<NatsConfig> pol_;
  MetricTable table_;
  NatsMetrics m_;
};

std::unique_ptr<FilterConfig> make_nats_config(evm_config_envoy_ptr config_envoy, std::string_view json,
                                               std::string* error);

class NatsFilter : public NetworkFilter {
 public:
  NatsFilter(const NatsFilterConfig& config, evm_filter_envoy_ptr f);
  ~NatsFilter() override;

  int on_new_connection() override;
  int on_read(size_t length, bool end_stream) override;
  int on_write(size_t length, bool end_stream) override;
  void on_event(int event) override;
  void on_scheduled(uint64_t event_id) override;

 private:
  void on_client_frame(const Frame& f);
  void on_server_frame(const Frame& f, uint64_t write_base);
  void on_info(const Frame& f, uint64_t write_base);
  void deny(const Frame& f, std::string reply_text);
  void flush_pending_to_client();
  void flush_counters();
  bool partial_may_be_dropped(std::string_view line) const;
  size_t hold_threshold() const;
  void server_protocol_error();
  void schedule_close();
  // Takes a new live policy when its generation moved (open connections follow it).
  void refresh_policy() {
    if (config_.pol().live() && config_.pol().generation() != pol_gen_) apply_policy();
  }
  void apply_policy();
  const NatsConfig& pol() const { return *pol_; }

  const NatsFilterConfig& config_;
  std::shared_ptr<const NatsConfig> pol_;
  uint64_t pol_gen_ = 0;
  uint64_t server_max_payload_ = 0;  // from the server's INFO (0: not seen)
  Connection conn_;
  CounterDeltas deltas_;
  Parser c2s_;
  Parser s2c_;
  codec::ChunkList chunks_;

  size_t held_ = 0;              // read-buffer bytes at the front already parsed (held or carried)
  std::string carry_;            // an undecided control line taken out of the read buffer
  uint64_t c2s_frames_ = 0, s2c_frames_ = 0;
  uint64_t drop_until_ = 0;      // c2s stream offset up to which a dropped frame continues
  std::vector<codec::Range> drops_;  // c2s stream ranges dropped during this on_read
  bool payload_violation_ = false;
  std::string pending_;          // local -ERR lines waiting for a s2c frame boundary
  uint64_t max_payload_;         // min(config, server INFO)
  bool info_rewrite_ = false;    // the INFO in this write buffer must be rewritten
  size_t info_pos_ = 0, info_len_ = 0;
  std::string info_line_;
  bool in_local_write_ = false;
  bool closed_ = false;
  bool closing_ = false;           // fatal client error: -ERR pending, then close
  uint64_t violation_start_ = 0;   // stream offset of an oversized PUB/HPUB
  static constexpr uint64_t kCloseEvent = 1;
  evm_scheduler_ptr scheduler_ = nullptr;
  bool gauge_closed_ = false;

  // One-entry decision cache: publishers tend to repeat the last subject.
  std::string last_subject_;
  bool last_allowed_ = true;
  size_t last_group_ = 0;
  std::string last_msg_subject_;
  size_t last_msg_group_ = 0;
};

}  // namespace evmesh::nats
