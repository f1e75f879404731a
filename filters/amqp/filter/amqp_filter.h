// The AMQP 0-9-1 network filter: thin glue between Envoy, the AMQP codec and
// the AMQP policies.
//
//   client ──► on_read ──► Parser(c2s) ──► ACL / body limit / throttle ──► pass | rewrite | hold
//                                                       │ denied: Channel.Close 403 to the client,
//                                                       │         Channel.Close upstream in place of the frame
//   client ◄── on_write ◄── Parser(s2c) ◄── Tune rewrite, drop frames of channels being closed ◄── broker
//
// Read side: complete frames pass untouched (zero copy). A frame that is
// decided only once complete (frame header, method, content header) and is
// split at the end of the read buffer must not leave early; neither may a
// publish whose content header has not arrived yet when max_body_size is
// set. Small buffers are held in place (StopIteration); past
// min(16 KiB, buffer limit / 2) the decided prefix is forwarded and only the
// undecided tail is carried to the next read, so that a held buffer never
// reaches Envoy's high watermark (which would stop reads for good). Holds
// released by events (throttle timer, the broker's Close-Ok for a reopened
// channel) stay in place and end with continue_reading. The buffer is
// otherwise only rebuilt when a frame is dropped or replaced.
//
// A denied publish (or consume/get) on channel N:
//   1. its method frame is replaced, in the upstream stream, by a
//      Channel.Close(N, 200) of our own: the broker never sees the publish
//      and closes its side of N, answering Channel.Close-Ok;
//   2. the client gets Channel.Close(N, 403 ACCESS_REFUSED ..., 60, 40) at
//      the next server-to-client frame boundary, as RabbitMQ would send it;
//   3. client frames on N (the message's header and body, later methods) are
//      swallowed until the client's Channel.Close-Ok (swallowed too: the
//      broker's N is already closing) or a new channel.open on N. That
//      channel.open (and everything after it) is held until the broker's
//      Close-Ok for our Close has arrived: RabbitMQ forgets a channel number
//      only then, and answers an early open with 504 "second 'channel.open'";
//   4. broker frames on N are swallowed up to and including its Close-Ok, so
//      the client never sees frames of the old channel on a reopened N. A
//      broker Channel.Close crossing ours is answered with Close-Ok upstream.
// Other channels are untouched throughout.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "filters/amqp/codec/frame_parser.h"
#include "filters/amqp/policy/config.h"
#include "filters/common/policy/token_bucket.h"
#include "filters/common/codec/chunks.h"
#include "filters/common/envoy/delayed_commits.h"
#include "filters/common/envoy/metrics.h"
#include "filters/common/envoy/module.h"
#include "filters/common/live/live_config.h"

namespace evmesh::amqp {

struct AmqpMetrics : ConnectionMetrics {
  MetricIndex channels_closed_by_policy, server_channel_errors, throttled;
  struct Exchange {
    MetricIndex published_msgs, published_bytes, publish_denied, body_too_large, returned_msgs, confirm_acks,
        confirm_nacks;
  };
  struct Queue {
    MetricIndex delivered_msgs, delivered_bytes, acks, nacks, rejects, consume_denied;
  };
  std::vector<Exchange> exchanges;  // ExchangeGroups order, "other" last
  std::vector<Queue> queues;        // QueueGroups order, "other" last
};

class AmqpFilterConfig : public FilterConfig {
 public:
  AmqpFilterConfig(MetricTable table, AmqpMetrics m) : table_(std::move(table)), m_(std::move(m)) {}
  std::unique_ptr<NetworkFilter> create(evm_filter_envoy_ptr f) const override;

  // The structural config (stat_prefix, groups, max_frame).
  const AmqpConfig& cfg() const { return pol_.base(); }
  // The policies: the parsed config, or the live one when the JSON names a policy.
  live::LivePolicy<AmqpConfig>& pol() { return pol_; }
  const live::LivePolicy<AmqpConfig>& pol() const { return pol_; }
  const MetricTable& table() const { return table_; }
  const AmqpMetrics& m() const { return m_; }
  // Throttled connections wake up through these delayed commits.
  DelayedCommits& commits() const { return commits_; }
  uint64_t now_ns() const { return now_(); }
  void set_clock(uint64_t (*now)()) { now_ = now; }  // tests

 private:
  static uint64_t steady_now_ns();

  live::LivePolicy<AmqpConfig> pol_;
  MetricTable table_;
  AmqpMetrics m_;
  mutable DelayedCommits commits_;
  uint64_t (*now_)() = &steady_now_ns;
};

std::unique_ptr<FilterConfig> make_amqp_config(evm_config_envoy_ptr config_envoy, std::string_view json,
                                               std::string* error);

class AmqpFilter : public NetworkFilter {
 public:
  AmqpFilter(const AmqpFilterConfig& config, evm_filter_envoy_ptr f);
  ~AmqpFilter() override;

  int on_new_connection() override;
  int on_read(size_t length, bool end_stream) override;
  int on_write(size_t length, bool end_stream) override;
  void on_event(int event) override;
  void on_scheduled(uint64_t event_id) override;

 private:
  // Replace stream bytes [begin, end) by `insert` (stream offsets).
  struct Edit {
    uint64_t begin, end;
    std::string insert;
  };
  struct Applied {
    uint64_t at;    // stream offset where the edit ended
    int64_t delta;  // bytes added (negative: removed)
  };
  struct Channel {
    enum class Pub : uint8_t { kIdle, kAwaitHeader, kInBody } pub = Pub::kIdle;
    bool client_denied = false;     // swallowing client frames until Close-Ok / channel.open
    uint16_t upstream_closes = 0;   // our Channel.Close frames upstream not yet answered:
                                    // broker frames on the channel are swallowed meanwhile
    bool confirm = false;
    uint32_t pub_group = 0;         // exchange group of the publish in progress / last publish
    uint32_t queue_group = 0;       // queue group of the last consume/get (acks are counted there)
    uint32_t delivery_group = 0;    // queue group of the delivery in progress (s2c)
    bool delivering = false;
    uint64_t body_remaining = 0;
    uint64_t method_start = 0, method_len = 0;  // the held publish method
    int throttle_rule = -1;                     // of the publish in progress
    bool open_gated = false;                    // a client channel.open waits for the broker's Close-Ok
    std::vector<uint32_t> pending_consumes;     // queue groups awaiting consume-ok (FIFO, short)
  };

  void on_client_frame(const Frame& f);
  void on_server_frame(const Frame& f, uint64_t base);
  void on_publish(const Frame& f, Channel& ch);
  void on_publish_header(const Frame& f, Channel& ch);
  void on_client_denied_channel(const Frame& f, Channel& ch);
  // Closes channel `f.channel` for the client with (code, text) and upstream
  // in place of [replace_begin, replace_end).
  void close_channel(uint16_t id, Channel& ch, uint64_t replace_begin, uint64_t replace_end, uint16_t code,
                     const std::string& text, uint16_t failed_class, uint16_t failed_method);
  void apply_read_edits(size_t total, size_t* kept_total);
  size_t rd_pos(uint64_t s) const;  // read-buffer position of a stream offset
  size_t hold_threshold() const;
  // The first stream offset whose verdict is still open (UINT64_MAX: none).
  uint64_t undecided_from() const;
  // The frame split at the end of the read could still be dropped or
  // replaced (so none of it may leave yet).
  bool partial_may_be_dropped() const;
  // Forwards read-buffer bytes before `cut` and moves the rest into carry_.
  void carry_from(uint64_t cut, size_t kept_total);
  void flush_pending_to_client(bool force = false);
  void protocol_error(bool c2s, const Parser& p);
  void on_tune_ok(uint32_t frame_max);
  Channel& channel(uint16_t id) { return channels_[id]; }
  // Takes a new live policy when its generation moved, between publishes
  // (a publish decided on the old policy keeps it until its header is in).
  void refresh_policy();
  const AmqpConfig& pol() const { return *pol_; }
  std::string denial_prefix() const;
  uint64_t throttle_wait_ns(uint64_t now);
  void arm_timer(uint64_t wait_ns);
  void gate_open(Channel& ch);
  // Hands a held read buffer on when nothing holds it any more.
  void maybe_release();

  const AmqpFilterConfig& config_;
  Connection conn_;
  CounterDeltas deltas_;
  Parser c2s_;
  Parser s2c_;
  codec::ChunkList chunks_;
  std::unordered_map<uint16_t, Channel> channels_;
  std::shared_ptr<const AmqpConfig> pol_;
  uint64_t pol_gen_ = 0;
  std::unordered_map<std::string, uint32_t> consumers_;  // consumer tag -> queue group (bounded)
  std::string last_tag_;           // one-entry cache in front of consumers_ (no allocation per delivery)
  uint32_t last_tag_group_ = 0;

  // Read side.
  size_t held_ = 0;                // read-buffer bytes parsed and held back by StopIteration
  std::string carry_;              // an undecided tail drained from a large read buffer
  uint64_t rd_base_ = 0;           // stream offset of read-buffer position 0
  std::vector<Applied> rd_applied_;  // edits already applied to the held buffer
  std::vector<Edit> rd_edits_;     // edits of this on_read
  uint64_t rd_drop_until_ = 0;     // a dropped frame continues up to here
  size_t awaiting_header_ = 0;     // publishes held until their content header (max_body_size)
  std::string pending_upstream_;   // Close-Ok replies to the broker, at the next c2s frame boundary

  // Write side.
  std::vector<Edit> wr_edits_;
  uint64_t wr_drop_until_ = 0;
  std::string custody_;            // a partial s2c frame taken out of the write buffer
  size_t closing_channels_ = 0;    // channels with upstream_closes > 0
  std::string pending_client_;     // local replies waiting for a s2c frame boundary
  bool in_local_write_ = false;

  // Throttling (publish rate per exchange rule, per connection): while a
  // bucket is in debt the read buffer is held; a delayed commit wakes us.
  struct Buckets {
    bool ready = false;
    policy::TokenBucket msgs, bytes;
  };
  std::vector<Buckets> buckets_;   // by AmqpConfig::throttle index
  evm_scheduler_ptr scheduler_ = nullptr;
  bool timer_pending_ = false;
  bool throttle_hold_ = false;
  bool holding_ = false;           // the last on_read returned StopIteration
  // RabbitMQ frees a channel number only when it sends Channel.Close-Ok: a
  // client channel.open for a channel we closed upstream is held (with all
  // that follows it) until that Close-Ok has come back.
  size_t gated_opens_ = 0;

  uint32_t tune_frame_max_ = 0;    // the broker's Tune value
  std::string vhost_ = "/";
  std::string user_;
  std::vector<std::string_view> words_;  // scratch for routing-key words
  bool closed_ = false;
  bool gauge_closed_ = false;
};

}  // namespace evmesh::amqp
