// The Kafka network filter: glue between Envoy, the Kafka codec and the
// Kafka policies.
//
//   client ──► on_read ──► FrameSplitter(c2s) ──► request header, correlation,
//                 Produce: ACL / durability / batch size / CRC / quotas / metrics
//                 Fetch:   consume ACL ──► pass | rewrite (denied topics removed) | close
//   client ◄── on_write ◄── FrameSplitter(s2c) ◄── ApiVersions cap, broker address
//                 rewrite (Metadata, FindCoordinator, DescribeCluster), denied
//                 topics answered inside the broker's response, throttle_time_ms
//
// Frames nobody needs to change pass untouched and zero-copy (Produce bodies
// and Fetch responses are walked as they pass for metrics and CRCs). A frame a
// policy may change is captured whole as it passes (its bytes leave Envoy's
// buffer) and put back, original or rewritten, where it ends. A denied topic
// never reaches the broker: the request goes on without it (possibly with no
// topics at all) and its partitions are answered inside the broker's own
// response, so responses stay in request order.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "filters/common/codec/chunks.h"
#include "filters/common/envoy/delayed_commits.h"
#include "filters/common/envoy/metrics.h"
#include "filters/common/envoy/module.h"
#include "filters/common/live/live_config.h"
#include "filters/kafka/codec/framing.h"
#include "filters/kafka/codec/messages.h"
#include "filters/kafka/codec/stream.h"
#include "filters/kafka/filter/quota.h"
#include "filters/kafka/policy/config.h"

namespace evmesh::kafka {

struct KafkaMetrics : ConnectionMetrics {
  MetricIndex denied, durability_denied, batch_too_large, throttled, unknown_nodes, addresses_rewritten,
      api_versions_capped, crc_errors;
  struct Api {
    MetricIndex requests, latency_us;  // counter, histogram
  };
  std::vector<Api> apis;  // by api key; the last entry is "unknown"
  struct Group {
    MetricIndex produced_records, produced_bytes, fetched_records, fetched_bytes, produce_denied, fetch_denied;
  };
  std::vector<Group> groups;  // cfg.topics order, "other" last
};

class KafkaFilterConfig : public FilterConfig {
 public:
  KafkaFilterConfig(MetricTable table, KafkaMetrics m) : table_(std::move(table)), m_(std::move(m)) {}
  std::unique_ptr<NetworkFilter> create(evm_filter_envoy_ptr f) const override;

  // The structural config (stat_prefix, topic groups, framing).
  const KafkaConfig& cfg() const { return pol_.base(); }
  // The policies (ACL, durability, quotas, the broker map): the parsed config,
  // or the live one when the JSON names a policy.
  live::LivePolicy<KafkaConfig>& pol() { return pol_; }
  const live::LivePolicy<KafkaConfig>& pol() const { return pol_; }
  const MetricTable& table() const { return table_; }
  const KafkaMetrics& m() const { return m_; }
  DelayedCommits& commits() const { return commits_; }
  static uint64_t now_ns();

 private:
  live::LivePolicy<KafkaConfig> pol_;
  MetricTable table_;
  KafkaMetrics m_;
  mutable DelayedCommits commits_;
};

std::unique_ptr<FilterConfig> make_kafka_config(evm_config_envoy_ptr config_envoy, std::string_view json,
                                                std::string* error);

// What a request left for its response: partitions answered by the sidecar
// and the throttle time to report.
struct Pending {
  struct Part {
    int32_t index;
    int16_t error_code;
    std::string message;  // error_message for Produce v8+
  };
  struct Topic {
    std::string name;
    std::vector<Part> parts;
  };
  std::vector<Topic> produce_errors;
  std::vector<Topic> fetch_errors;  // answered with error 29
  int32_t throttle_ms = 0;
  bool empty() const { return produce_errors.empty() && fetch_errors.empty() && throttle_ms == 0; }
};

class KafkaFilter : public NetworkFilter, private WalkSink {
 public:
  KafkaFilter(const KafkaFilterConfig& config, evm_filter_envoy_ptr f);
  ~KafkaFilter() override;

  int on_new_connection() override;
  int on_read(size_t length, bool end_stream) override;
  int on_write(size_t length, bool end_stream) override;
  void on_event(int event) override;
  void on_scheduled(uint64_t event_id) override;

  // Sinks of the two splitters (public for the splitter templates).
  bool c2s_head(const FrameHead& h);
  void c2s_bytes(const FrameHead& h, uint64_t at, std::string_view piece);
  void c2s_frame(const FrameHead& h, std::string_view payload);
  bool s2c_head(const FrameHead& h);
  bool s2c_may_capture(uint64_t frame_start, uint64_t base, size_t total) const;
  bool needs_capture(const InFlight& r) const;
  void s2c_bytes(const FrameHead& h, uint64_t at, std::string_view piece);
  void s2c_frame(const FrameHead& h, std::string_view payload);

 private:
  struct Edit {
    uint64_t begin, end;  // stream range dropped
    std::string insert;   // bytes put in its place
  };
  struct Walk {            // the streaming walk of the current frame's body
    bool produce = true;   // Produce request (c2s) or Fetch response (s2c)
    bool active = false;
    uint32_t header_size = 0;
    std::unique_ptr<RecordsBodyWalker> walker;
    size_t group = 0;      // of the current topic
    int quota = -1;
    uint64_t records = 0, bytes = 0;  // of the current topic
    uint64_t quota_wait_ns = 0;
    bool crc_error = false;
    // Produce under policies: verdicts per partition as the body passes.
    bool decide = false;
    std::string topic;            // current topic name
    int16_t topic_code = 0;       // error for every partition of the topic (ACL, acks)
    std::string topic_message;
    bool in_partition = false;
    int32_t part_index = 0;
    int16_t part_code = 0;
    std::string part_message;
    uint64_t part_records = 0, part_bytes = 0;
    std::vector<Pending::Topic> refused;  // partitions answered by the sidecar
  };

  // WalkSink
  void topic(const TopicRef& t, uint64_t offset) override;
  void topic_end(uint64_t end) override;
  void end_walk_topic(Walk& w);
  void walk_feed(Walk& w, const FrameHead& h, uint64_t at, std::string_view piece, bool c2s);
  void partition(int32_t index, int64_t size, uint64_t offset) override;
  void batch(const BatchHeader& h, uint64_t offset, uint64_t size, bool header_complete, bool complete,
             bool crc_ok) override;

  // Produce under policies, walked: the frame is held in Envoy's buffer (or,
  // past the hold limit, captured into cap_) until its verdicts are in.
  void end_partition(Walk& w);
  bool accept_request(const FrameHead& h);
  void start_produce_walk(const FrameHead& h);
  std::string rewrite_produce(const RequestHeader& hdr, std::string_view payload, const std::vector<Pending::Topic>& refused);
  size_t hold_limit() const;
  std::string process_fetch_request(const RequestHeader& hdr, std::string_view payload);
  std::string process_response(const InFlight& req, uint32_t header_size, std::string_view payload);
  uint64_t take_quota(int rule, char dir, uint64_t records, uint64_t bytes);
  void throttle_for(uint64_t wait_ns);
  void arm_timer(uint64_t wait_ns);
  size_t group_of(std::string_view topic);
  void fatal(bool c2s, const std::string& why, bool count = true);
  bool apply_edits(bool read_side, uint64_t base, size_t total, std::vector<Edit>& edits);
  void flush_counters();
  std::string conn_tag() const;

  void refresh_policy();
  void note_client_id() {
    const std::string_view cid = req_.client_id.null ? std::string_view() : req_.client_id.v;
    if (cid != last_client_id_) last_client_id_.assign(cid.data(), cid.size());
  }

  const KafkaFilterConfig& config_;
  std::shared_ptr<const KafkaConfig> pol_;
  uint64_t pol_gen_ = 0;
  const KafkaConfig* cfg_;  // == pol_.get()
  Connection conn_;
  CounterDeltas deltas_;
  FrameSplitter c2s_, s2c_;
  CorrelationMap inflight_;
  std::unordered_map<int32_t, Pending> pending_;  // by correlation id
  codec::ChunkList chunks_;

  // c2s frame in progress
  RequestHeader req_;
  bool req_header_ok_ = false;
  bool c2s_capture_ = false;
  Walk walks_[2];          // [0] c2s Produce, [1] s2c Fetch
  Walk* cur_walk_ = nullptr;
  // s2c frame in progress
  InFlight resp_req_;
  bool resp_known_ = false;
  bool s2c_capture_ = false;
  uint32_t resp_header_size_ = 0;

  std::vector<Edit> c2s_edits_, s2c_edits_;
  uint64_t cur_base_ = 0;
  // A frame whose head (size + first bytes) is still incomplete at the end
  // of a read/write is undecided: its bytes are taken out and put back in
  // front of the next data (already parsed).
  bool c2s_head_seen_ = false, s2c_head_seen_ = false;
  bool frame_hold_ = false;     // the c2s frame in progress must not leave before its verdict
  bool own_capture_ = false;    // ... and its bytes so far are in cap_ (frame bytes with the size prefix)
  std::string cap_;
  uint64_t cap_from_ = 0;       // stream offset from which the captured frame's bytes are still in the buffer
  std::string c2s_carry_, s2c_carry_;  // stream offset of buffer position 0 during a feed
  bool fatal_ = false;
  bool closed_ = false;
  size_t held_ = 0;        // read-buffer bytes at the front already processed (held by a throttle)
  bool holding_ = false;
  bool timer_pending_ = false;
  uint64_t throttle_until_ = 0;
  int32_t fetch_throttle_owed_ms_ = 0;  // reported in the next Fetch response
  evm_scheduler_ptr scheduler_ = nullptr;
  bool gauge_closed_ = false;
  uint64_t c2s_frames_ = 0, s2c_frames_ = 0;

  // Quota buckets of this connection's client id (by rule; [0] produce, [1] fetch).
  std::string client_id_;       // of the cached buckets
  std::string last_client_id_;  // of the latest request
  std::vector<std::shared_ptr<QuotaBuckets>> buckets_[2];
  // One-entry topic -> group cache.
  std::string last_topic_;
  size_t last_group_ = 0;

  static constexpr uint64_t kEventThrottle = 1;
  // Requests awaiting a response: past kInFlightHigh the client's reads are
  // held (Kafka too reads one request at a time), released below kInFlightLow.
  static constexpr size_t kMaxInFlight = 1u << 20;
  static constexpr size_t kInFlightHigh = 4096, kInFlightLow = 2048;
  static constexpr size_t kInjectAbove = 256u << 10;  // held bytes before decided frames are handed on
  bool inflight_hold_ = false;
  uint64_t cur_fed_start_ = 0;         // stream offset of the first byte fed in this read
  void release_held();
};

}  // namespace evmesh::kafka
