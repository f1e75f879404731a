#include "filters/kafka/filter/kafka_filter.h"

#include <chrono>

#include "filters/kafka/codec/api_keys.h"
#include "filters/kafka/codec/records.h"

namespace evmesh::kafka {

namespace {

constexpr int16_t kMessageTooLarge = 10;
constexpr int16_t kInvalidRequiredAcks = 21;
constexpr int16_t kTopicAuthorizationFailed = 29;
constexpr uint32_t kMaxResponse = 1u << 30;
constexpr size_t kMaxPending = 4096;

std::string frame_of(std::string_view header, std::string_view body) { return make_frame(header, body); }

const char* acks_name(int16_t acks) { return acks == -1 ? "all" : (acks == 0 ? "0" : "1"); }

}  // namespace

// ---------------------------------------------------------------- config

uint64_t KafkaFilterConfig::now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

std::unique_ptr<FilterConfig> make_kafka_config(evm_config_envoy_ptr config_envoy, std::string_view json,
                                                std::string* error) {
  std::optional<KafkaConfig> cfg = parse_kafka_config(json, error);
  if (!cfg) return nullptr;
  MetricsBuilder b(config_envoy, "kafka." + cfg->stat_prefix + ".");
  KafkaMetrics m;
  static_cast<ConnectionMetrics&>(m) = define_connection_metrics(b);
  m.denied = b.counter("denied");
  m.durability_denied = b.counter("durability_denied");
  m.batch_too_large = b.counter("batch_too_large");
  m.throttled = b.counter("throttled");
  m.unknown_nodes = b.counter("unknown_nodes");
  m.addresses_rewritten = b.counter("addresses_rewritten");
  m.api_versions_capped = b.counter("api_versions_capped");
  m.crc_errors = b.counter("crc_errors");
  const KafkaMetrics::Api unknown{b.counter("api.unknown.requests"), b.histogram("api.unknown.latency_us")};
  for (int16_t k = 0; k < api_key_limit(); ++k) {
    if (find_api(k) == nullptr) {
      m.apis.push_back(unknown);
      continue;
    }
    const std::string p = std::string("api.") + api_name(k) + ".";
    m.apis.push_back({b.counter(p + "requests"), b.histogram(p + "latency_us")});
  }
  m.apis.push_back(unknown);
  for (size_t i = 0; i <= cfg->topics.size(); ++i) {
    const std::string g = "topic." + (i < cfg->topics.size() ? cfg->topics[i].name : std::string("other")) + ".";
    m.groups.push_back({b.counter(g + "produced_records"), b.counter(g + "produced_bytes"),
                        b.counter(g + "fetched_records"), b.counter(g + "fetched_bytes"),
                        b.counter(g + "produce_denied"), b.counter(g + "fetch_denied")});
  }
  if (!b.ok()) {
    *error = b.error();
    return nullptr;
  }
  auto out = std::make_unique<KafkaFilterConfig>(b.take(), std::move(m));
  if (!out->pol().setup(std::move(*cfg), json, {"acl", "durability", "max_batch_bytes", "quotas", "nodes"},
                        &parse_kafka_config, error)) {
    return nullptr;
  }
  return out;
}

std::unique_ptr<NetworkFilter> KafkaFilterConfig::create(evm_filter_envoy_ptr f) const {
  return std::make_unique<KafkaFilter>(*this, f);
}

// ---------------------------------------------------------------- filter

namespace {
struct C2SSink {
  KafkaFilter* f;
  bool head(const FrameHead& h) { return f->c2s_head(h); }
  void bytes(const FrameHead& h, uint64_t at, std::string_view piece) { f->c2s_bytes(h, at, piece); }
  void frame(const FrameHead& h, std::string_view payload) { f->c2s_frame(h, payload); }
};
struct S2CSink {
  KafkaFilter* f;
  bool head(const FrameHead& h) { return f->s2c_head(h); }
  void bytes(const FrameHead& h, uint64_t at, std::string_view piece) { f->s2c_bytes(h, at, piece); }
  void frame(const FrameHead& h, std::string_view payload) { f->s2c_frame(h, payload); }
};
}  // namespace

KafkaFilter::KafkaFilter(const KafkaFilterConfig& config, evm_filter_envoy_ptr f)
    : config_(config),
      cfg_(nullptr),
      conn_(f),
      deltas_(config.table()),
      c2s_(FrameLimits{config.cfg().max_frame, 512}),
      s2c_(FrameLimits{kMaxResponse, 512}),
      inflight_(kMaxInFlight) {
  pol_ = config_.pol().get(&pol_gen_);
  cfg_ = pol_.get();
  walks_[0].produce = true;
  walks_[1].produce = false;
  deltas_.add(config_.m().connections_total);
}

KafkaFilter::~KafkaFilter() {
  if (scheduler_ != nullptr) {
    config_.commits().cancel(scheduler_);
    envoy_dynamic_module_callback_network_filter_scheduler_delete(scheduler_);
  }
}

std::string KafkaFilter::conn_tag() const {
  return "evmesh kafka[" + cfg_->stat_prefix + "] connection " + std::to_string(conn_.id()) + ": ";
}

int KafkaFilter::on_new_connection() {
  gauge_add(conn_.raw(), config_.table(), config_.m().connections_active, 1);
  deltas_.flush(conn_.raw());
  return EVM_NET_CONTINUE;
}

void KafkaFilter::on_event(int event) {
  if (event == EVM_EVENT_REMOTE_CLOSE || event == EVM_EVENT_LOCAL_CLOSE) {
    if (!gauge_closed_) {
      gauge_closed_ = true;
      gauge_add(conn_.raw(), config_.table(), config_.m().connections_active, -1);
    }
    flush_counters();
  }
}

void KafkaFilter::flush_counters() {
  const KafkaMetrics& m = config_.m();
  if (c2s_frames_) deltas_.add(m.c2s_frames, c2s_frames_);
  if (s2c_frames_) deltas_.add(m.s2c_frames, s2c_frames_);
  c2s_frames_ = s2c_frames_ = 0;
  deltas_.flush(conn_.raw());
}

void KafkaFilter::fatal(bool c2s, const std::string& why, bool count) {
  if (fatal_) return;
  fatal_ = true;
  if (count) deltas_.add(c2s ? config_.m().c2s_protocol_errors : config_.m().s2c_protocol_errors);
  log(EVM_LOG_WARN, conn_tag() + (count ? (c2s ? "malformed client-to-broker frame at " : "malformed broker-to-client frame at ")
                                        : std::string()) +
                        why + "; closing the connection");
}

size_t KafkaFilter::group_of(std::string_view topic) {
  if (topic != last_topic_) {
    last_topic_.assign(topic.data(), topic.size());
    last_group_ = cfg_->group(topic);
  }
  return last_group_;
}

// Replaces the edited ranges of the read or write buffer; returns false when
// nothing was changed.
bool KafkaFilter::apply_edits(bool read_side, uint64_t base, size_t total, std::vector<Edit>& edits) {
  if (edits.empty()) return false;
  if (edits.size() == 1 && edits[0].begin <= base) {
    // Only the front changes (a captured frame completing at the start, or a
    // dropped tail of one): drain it and prepend the replacement; the rest of
    // the buffer is not copied.
    const Edit& e = edits[0];
    const size_t n = e.end > base ? static_cast<size_t>(std::min<uint64_t>(e.end - base, total)) : 0;
    if (read_side) {
      conn_.drain_read(n);
      conn_.prepend_read(e.insert);
    } else {
      conn_.drain_write(n);
      conn_.prepend_write(e.insert);
    }
    edits.clear();
    return true;
  }
  std::string out;
  out.reserve(total);
  size_t pos = 0;
  for (const Edit& e : edits) {
    const size_t b = e.begin > base ? static_cast<size_t>(e.begin - base) : 0;
    const size_t en = e.end > base ? static_cast<size_t>(std::min<uint64_t>(e.end - base, total)) : 0;
    if (b > pos) chunks_.copy_range(pos, b, &out);
    out += e.insert;
    if (en > pos) pos = en;
  }
  if (pos < total) chunks_.copy_range(pos, total, &out);
  if (log_enabled(EVM_LOG_DEBUG)) {
    log(EVM_LOG_DEBUG, conn_tag() + (read_side ? "read" : "write") + " buffer rebuilt: " + std::to_string(total) +
                           " -> " + std::to_string(out.size()) + " bytes, " + std::to_string(edits.size()) + " edits");
  }
  if (read_side) {
    conn_.drain_read(total);
    conn_.append_read(out);
  } else {
    conn_.drain_write(total);
    conn_.append_write(out);
  }
  edits.clear();
  return true;
}

// ---------------------------------------------------------------- client -> broker

void KafkaFilter::refresh_policy() {
  if (!config_.pol().live() || config_.pol().generation() == pol_gen_) return;
  pol_ = config_.pol().get(&pol_gen_);
  cfg_ = pol_.get();
  buckets_[0].clear();  // indices of the old quota rules
  buckets_[1].clear();
  client_id_.clear();
}

int KafkaFilter::on_read(size_t /*length*/, bool end_stream) {
  refresh_policy();
  if (closed_ || fatal_) {
    conn_.read_chunks(chunks_.views());
    conn_.drain_read(chunks_.total());
    return EVM_NET_STOP_ITERATION;
  }
  if (!c2s_carry_.empty()) {
    conn_.prepend_read(c2s_carry_);
    held_ = c2s_carry_.size();
    c2s_carry_.clear();
  }
  conn_.read_chunks(chunks_.views());
  const size_t total = chunks_.total();
  const uint64_t fed_start = c2s_.offset();
  const uint64_t base = fed_start - held_;
  c2s_edits_.clear();
  C2SSink sink{this};
  cur_base_ = base;
  cur_fed_start_ = fed_start;
  const bool ok = chunks_.for_each_from(held_, [&](std::string_view piece) {
    return c2s_.feed(piece, sink) && !fatal_;
  });
  // Held: quota debt (from earlier requests or from this read's: the whole
  // read waits, as Kafka mutes a throttled channel), or too many requests
  // awaiting answers (Kafka reads one request at a time). Reads stop at the
  // buffer limit; the timer / the answers release the buffer.
  if (inflight_.size() >= kInFlightHigh) inflight_hold_ = true;
  const bool hold = !end_stream && (throttle_until_ > KafkaFilterConfig::now_ns() || inflight_hold_);
  deltas_.add(config_.m().c2s_bytes, c2s_.offset() - fed_start);
  if (!ok && !fatal_) fatal(true, c2s_.error());
  if (fatal_) {
    closed_ = true;
    conn_.drain_read(total);
    flush_counters();
    conn_.close(EVM_CLOSE_NO_FLUSH);
    return EVM_NET_STOP_ITERATION;
  }
  bool head_held = false;
  if (!c2s_.at_frame_boundary()) {
    const uint64_t fs = std::max<uint64_t>(c2s_.frame_start(), base);
    if (c2s_head_seen_ && frame_hold_ && !own_capture_ && !end_stream &&
        c2s_.offset() - c2s_.frame_start() > hold_limit()) {
      // A Produce frame awaiting its verdict outgrew the hold limit: its bytes
      // so far move into cap_ (and the rest as it comes), so that Envoy's read
      // buffer never reaches its high watermark while we wait.
      own_capture_ = true;
      if (log_enabled(EVM_LOG_DEBUG)) {
        log(EVM_LOG_DEBUG, conn_tag() + "a held Produce frame outgrew the hold limit " +
                               std::to_string(hold_limit()) + " (buffer " + std::to_string(total) + "): copying it");
      }
      cap_.clear();
      chunks_.copy_range(static_cast<size_t>(c2s_.frame_start() - base), total, &cap_);
      c2s_edits_.push_back({c2s_.frame_start(), base + total, std::string()});
      cap_from_ = base + total;
    } else if (c2s_head_seen_ && (own_capture_ || c2s_capture_)) {
      // A captured frame still in progress: its bytes so far leave the buffer
      // (cap_ or the splitter holds them) and come back whole where the frame
      // ends. Only the bytes fed in this read are in the buffer: earlier ones
      // left with earlier reads (a held region in front is not this frame's).
      c2s_edits_.push_back({cap_from_, base + total, std::string()});
      cap_from_ = base + total;
    } else if (!c2s_head_seen_ && !hold && !end_stream) {
      // Undecided (head incomplete): held in place while the buffer is small
      // (the head's last bytes are one read away), else carried to the next
      // read (dropping a tail means rebuilding everything before it).
      if (c2s_edits_.empty() && total <= hold_limit()) {  // (a rebuild anyway: carry for free)
        head_held = true;
      } else {
        chunks_.copy_range(static_cast<size_t>(fs - base), total, &c2s_carry_);
        c2s_edits_.push_back({fs, base + total, std::string()});
      }
    }
  }
  size_t kept = total;
  if (apply_edits(true, base, total, c2s_edits_)) {
    conn_.read_chunks(chunks_.views());
    kept = chunks_.total();
  }
  int status = EVM_NET_CONTINUE;
  const bool frame_held =
      head_held || (!end_stream && frame_hold_ && !own_capture_ && !c2s_.at_frame_boundary());
  if (frame_held && !hold) {
    // Hold in place (zero copy) until the frame's verdict is in. Under load a
    // read ends inside a frame nearly every time; the decided frames in front
    // of it are handed on at once (one copy, by Envoy) rather than held, so
    // the held part stays one frame and never nears the buffer limit.
    const uint64_t in_frame = c2s_.offset() - c2s_.frame_start();
    const size_t decided = in_frame < kept ? kept - static_cast<size_t>(in_frame) : 0;
    if (decided > 0 && kept > kInjectAbove) {
      conn_.read_chunks(chunks_.views());
      size_t left = decided;
      for (const auto& v : chunks_.views()) {
        if (left == 0) break;
        const size_t n = v.length < left ? v.length : left;
        conn_.inject_read(std::string_view(v.ptr, n));
        left -= n;
      }
      conn_.drain_read(decided);
      kept -= decided;
    }
    held_ = kept;
    status = EVM_NET_STOP_ITERATION;
  } else if (hold) {
    held_ = kept;
    holding_ = true;
    const uint64_t now = KafkaFilterConfig::now_ns();
    if (throttle_until_ > now) arm_timer(throttle_until_ - now);
    status = EVM_NET_STOP_ITERATION;
  } else {
    held_ = 0;
    holding_ = false;
    if (kept == 0 && !end_stream) status = EVM_NET_STOP_ITERATION;
  }
  if (pending_.size() > kMaxPending) pending_.clear();  // answers that never came (bounded)
  flush_counters();
  return status;
}

bool KafkaFilter::c2s_head(const FrameHead& h) {
  if (fatal_) return false;
  ++c2s_frames_;
  c2s_head_seen_ = true;
  c2s_capture_ = false;
  walks_[0].active = false;
  Error err;
  const Status st = decode_request_header(h.prefix, h.prefix.size() == h.size, &req_, &err);
  if (st == Status::kError) {
    fatal(true, "offset " + std::to_string(h.start + 4 + err.offset) + ": " + err.reason);
    return false;
  }
  // A frame whose head is seen in this read has all its bytes in the buffer
  // (a held region in front ends with them); a captured frame's first bytes
  // to remove from the buffer start here.
  cap_from_ = std::max<uint64_t>(h.start, cur_base_);
  if (st == Status::kNeedMore) {  // a client id longer than the prefix: decide on the whole frame
    req_header_ok_ = false;
    c2s_capture_ = true;
    return true;
  }
  if (!accept_request(h)) return false;
  if (req_.api_key == api::kProduce) {
    start_produce_walk(h);
  } else if (req_.api_key == api::kFetch && cfg_->consume.restricts()) {
    c2s_capture_ = true;
  }
  return c2s_capture_;
}

// The request header just decoded: its api key must be in the table and its
// version known (ApiVersions excepted: a broker answers a newer one itself).
bool KafkaFilter::accept_request(const FrameHead& h) {
  req_header_ok_ = true;
  note_client_id();
  if (!req_.known) {
    fatal(true, "offset " + std::to_string(h.start) + ": unknown api key " + std::to_string(req_.api_key));
    return false;
  }
  const ApiSpec* api = find_api(req_.api_key);
  if (req_.api_key != api::kApiVersions && (req_.api_version > api->max_version || req_.api_version < 0)) {
    fatal(true, "offset " + std::to_string(h.start) + ": unsupported " + api->name + " version " +
                    std::to_string(req_.api_version));
    return false;
  }
  return true;
}

// A Produce body is walked as it passes (metrics, CRCs, quotas, and under
// policies the per-partition verdicts); under policies it is held until then.
void KafkaFilter::start_produce_walk(const FrameHead& h) {
  Walk& w = walks_[0];
  w.active = true;
  w.header_size = req_.size;
  w.walker = std::make_unique<RecordsBodyWalker>(RecordsBodyWalker::Kind::kProduceRequest, req_.api_version,
                                                 h.size - req_.size, 4 + req_.size, cfg_->verify_crc);
  w.records = w.bytes = w.quota_wait_ns = 0;
  w.crc_error = false;
  w.group = cfg_->topics.size();
  w.quota = -1;
  w.decide = cfg_->produce_needs_body();
  w.in_partition = false;
  w.topic_code = 0;
  w.refused.clear();
  frame_hold_ = w.decide;
  own_capture_ = false;
}

void KafkaFilter::walk_feed(Walk& w, const FrameHead& h, uint64_t at, std::string_view piece, bool c2s) {
  if (fatal_ || !w.active) return;
  if (at + piece.size() <= w.header_size) return;
  if (at < w.header_size) piece.remove_prefix(static_cast<size_t>(w.header_size - at));
  cur_walk_ = &w;
  if (!w.walker->feed(piece, *this)) {
    w.active = false;
    fatal(c2s, "offset " + std::to_string(h.start + w.walker->error().offset) + ": " + w.walker->error().reason);
    return;
  }
  if (w.crc_error) {
    w.active = false;
    deltas_.add(config_.m().crc_errors);
    fatal(c2s, "offset " + std::to_string(h.start) + ": record batch CRC-32C mismatch");
  }
}

void KafkaFilter::c2s_bytes(const FrameHead& h, uint64_t at, std::string_view piece) {
  if (own_capture_) cap_.append(piece.data(), piece.size());
  walk_feed(walks_[0], h, at, piece, true);
}

size_t KafkaFilter::hold_limit() const {
  // Below Envoy's high watermark (the buffer limit), so reads never stop
  // while a frame is held; 1 MiB when the connection has no limit.
  const uint32_t limit = conn_.buffer_limit();
  return limit == 0 ? (1u << 20) : limit / 4 * 3;
}

void KafkaFilter::c2s_frame(const FrameHead& h, std::string_view payload) {
  c2s_head_seen_ = false;
  if (fatal_) return;
  if (!req_header_ok_) {
    Error err;
    if (decode_request_header(payload, true, &req_, &err) != Status::kOk) {
      fatal(true, "offset " + std::to_string(h.start + 4 + err.offset) + ": " +
                      (err.reason ? err.reason : "bad request header"));
      return;
    }
    if (!accept_request(h)) return;
    if (req_.api_key == api::kProduce) {
      // Captured whole (its header outgrew the head): walked now, judged by
      // the same walk as any Produce, and put back (or re-encoded) from cap_.
      c2s_capture_ = false;
      start_produce_walk(h);
      own_capture_ = true;
      cap_ = frame_of(std::string_view(), payload);
      walk_feed(walks_[0], h, 0, payload, true);
      if (fatal_) return;
    }
  }
  const KafkaMetrics& m = config_.m();
  bool expect = true;
  Walk& w = walks_[0];
  if (c2s_capture_) {
    std::string out;
    if (req_.api_key == api::kFetch && cfg_->consume.restricts()) {
      out = process_fetch_request(req_, payload);
    } else {
      out = frame_of(payload.substr(0, 0), payload);
    }
    if (fatal_) return;
    c2s_edits_.push_back({cap_from_, h.end(), std::move(out)});
  } else if (w.active) {
    w.active = false;
    const bool held = frame_hold_, captured = own_capture_;
    frame_hold_ = own_capture_ = false;
    if (!w.walker->done()) {
      fatal(true, "offset " + std::to_string(h.end()) + ": Produce request truncated (frame ends inside its body)");
      return;
    }
    expect = w.walker->acks() != 0;
    if (!w.refused.empty()) {
      if (!expect) {
        // Kafka answers nothing to acks=0; on an error it closes the connection.
        fatal(true,
              "Produce with acks=0 refused (" + w.refused.front().parts.front().message +
                  "); Kafka closes acks=0 connections on errors",
              false);
        return;
      }
      std::string frame;
      if (captured) {
        frame = std::move(cap_);
      } else if (held && h.start >= cur_base_) {
        chunks_.copy_range(static_cast<size_t>(h.start - cur_base_), static_cast<size_t>(h.end() - cur_base_), &frame);
      } else {
        fatal(true, "internal error: refused Produce frame partly forwarded", false);
        return;
      }
      std::string out = rewrite_produce(req_, std::string_view(frame).substr(4), w.refused);
      if (fatal_) return;
      c2s_edits_.push_back({captured ? cap_from_ : std::max<uint64_t>(h.start, cur_base_), h.end(), std::move(out)});
      Pending& p = pending_[req_.correlation_id];
      p.produce_errors = std::move(w.refused);
      w.refused.clear();
    } else if (captured) {
      c2s_edits_.push_back({cap_from_, h.end(), std::move(cap_)});
    }
    cap_.clear();
    if (w.quota_wait_ns > 0) {
      throttle_for(w.quota_wait_ns);
      if (expect) pending_[req_.correlation_id].throttle_ms = static_cast<int32_t>(w.quota_wait_ns / 1000000 + 1);
    }
  }
  const size_t ai = (req_.api_key >= 0 && req_.api_key < api_key_limit()) ? static_cast<size_t>(req_.api_key)
                                                                          : m.apis.size() - 1;
  deltas_.add(m.apis[ai].requests);
  // Requests Kafka does not answer (acks=0) are not remembered: a response to
  // an unknown correlation id passes untouched (Tansu answers them).
  if (expect && !inflight_.add({req_.correlation_id, req_.api_key, req_.api_version,
                                KafkaFilterConfig::now_ns() / 1000, expect})) {
    fatal(true, "offset " + std::to_string(h.start) + ": more than " + std::to_string(kMaxInFlight) +
                    " requests in flight");
  }

}

// WalkSink: Produce request bodies (c2s) and Fetch response bodies (s2c).
void KafkaFilter::topic(const TopicRef& t, uint64_t /*offset*/) {
  Walk& w = *cur_walk_;
  const std::string_view name = t.name.null ? std::string_view() : t.name.v;
  w.group = group_of(name);
  w.quota = cfg_->quotas.empty() ? -1 : cfg_->quota(name);
  w.records = w.bytes = 0;
  w.in_partition = false;
  if (!w.decide) return;
  w.topic.assign(name.data(), name.size());
  w.topic_code = 0;
  w.topic_message.clear();
  const int16_t acks = w.walker->acks();
  const int16_t min_acks = cfg_->durability.empty() ? 0 : cfg_->min_acks(name);
  if (!cfg_->produce.allowed(name)) {
    w.topic_code = kTopicAuthorizationFailed;
    w.topic_message = "evmesh: produce to topic '" + w.topic + "' is denied by the sidecar's ACL";
  } else if (acks_strength(acks) < acks_strength(min_acks)) {
    w.topic_code = kInvalidRequiredAcks;
    w.topic_message = "evmesh: topic '" + w.topic + "' requires acks=" + acks_name(min_acks) +
                      ", request has acks=" + acks_name(acks);
  }
}

void KafkaFilter::partition(int32_t index, int64_t size, uint64_t /*offset*/) {
  Walk& w = *cur_walk_;
  if (!w.decide) {
    if (size > 0) w.bytes += static_cast<uint64_t>(size);
    return;
  }
  end_partition(w);
  w.in_partition = true;
  w.part_index = index;
  w.part_code = w.topic_code;
  w.part_message = w.topic_message;
  w.part_records = 0;
  w.part_bytes = size > 0 ? static_cast<uint64_t>(size) : 0;
}

// Under policies: a partition's records count only when it goes on; a
// refused one is remembered for the response.
void KafkaFilter::end_partition(Walk& w) {
  if (!w.in_partition) return;
  w.in_partition = false;
  const KafkaMetrics& m = config_.m();
  if (w.part_code == 0) {
    w.records += w.part_records;
    w.bytes += w.part_bytes;
    return;
  }
  switch (w.part_code) {
    case kTopicAuthorizationFailed:
      deltas_.add(m.groups[w.group].produce_denied);
      deltas_.add(m.denied);
      break;
    case kInvalidRequiredAcks:
      deltas_.add(m.durability_denied);
      break;
    default:
      deltas_.add(m.batch_too_large);
      break;
  }
  if (log_enabled(EVM_LOG_DEBUG)) log(EVM_LOG_DEBUG, conn_tag() + w.part_message);
  if (w.refused.empty() || w.refused.back().name != w.topic) w.refused.push_back({w.topic, {}});
  w.refused.back().parts.push_back({w.part_index, w.part_code, std::move(w.part_message)});
  w.part_message.clear();
}

void KafkaFilter::batch(const BatchHeader& h, uint64_t, uint64_t, bool, bool complete, bool crc_ok) {
  Walk& w = *cur_walk_;
  if (w.decide && w.in_partition && w.part_code == 0 && cfg_->max_batch_bytes != 0 &&
      h.total_size() > cfg_->max_batch_bytes) {
    w.part_code = kMessageTooLarge;
    w.part_message = "evmesh: record batch of " + std::to_string(h.total_size()) +
                     " bytes exceeds max_batch_bytes " + std::to_string(cfg_->max_batch_bytes);
  }
  if (!complete) return;
  if (h.records_count > 0) (w.decide ? w.part_records : w.records) += static_cast<uint64_t>(h.records_count);
  if (w.produce && cfg_->verify_crc && !crc_ok) w.crc_error = true;
}

void KafkaFilter::topic_end(uint64_t /*end*/) {
  if (cur_walk_->decide) end_partition(*cur_walk_);
  end_walk_topic(*cur_walk_);
}

void KafkaFilter::end_walk_topic(Walk& w) {
  const KafkaMetrics::Group& g = config_.m().groups[w.group];
  if (w.produce) {
    if (w.records) deltas_.add(g.produced_records, w.records);
    if (w.bytes) deltas_.add(g.produced_bytes, w.bytes);
  } else {
    if (w.records) deltas_.add(g.fetched_records, w.records);
    if (w.bytes) deltas_.add(g.fetched_bytes, w.bytes);
  }
  if (w.quota >= 0 && (w.records || w.bytes)) {
    const uint64_t wait = take_quota(w.quota, w.produce ? 'p' : 'f', w.records, w.bytes);
    if (wait > w.quota_wait_ns) w.quota_wait_ns = wait;
    if (!w.produce && wait > 0) {
      // Fetch: the response is already on its way; report the throttle in the
      // next Fetch response and hold the client's next requests meanwhile.
      throttle_for(wait);
      const int32_t ms = static_cast<int32_t>(wait / 1000000 + 1);
      if (ms > fetch_throttle_owed_ms_) fetch_throttle_owed_ms_ = ms;
    }
  }
  w.records = w.bytes = 0;
}

uint64_t KafkaFilter::take_quota(int rule, char dir, uint64_t records, uint64_t bytes) {
  const int d = dir == 'p' ? 0 : 1;
  // The client id of the latest request (owned: the request's bytes are gone
  // by the time a Fetch response is counted).
  if (client_id_ != last_client_id_) {
    client_id_ = last_client_id_;
    buckets_[0].clear();
    buckets_[1].clear();
  }
  auto& v = buckets_[d];
  if (v.size() < cfg_->quotas.size()) v.resize(cfg_->quotas.size());
  const uint64_t now = KafkaFilterConfig::now_ns();
  if (!v[rule]) {
    const QuotaRule& q = cfg_->quotas[rule];
    v[rule] = QuotaRegistry::instance().get(cfg_->stat_prefix, rule, dir, client_id_, q.records_per_second,
                                            q.bytes_per_second, now);
  }
  return v[rule]->take(records, bytes, now);
}

void KafkaFilter::throttle_for(uint64_t wait_ns) {
  const uint64_t until = KafkaFilterConfig::now_ns() + wait_ns;
  if (until > throttle_until_) {
    if (throttle_until_ < KafkaFilterConfig::now_ns()) deltas_.add(config_.m().throttled);
    throttle_until_ = until;
  }
}

void KafkaFilter::arm_timer(uint64_t wait_ns) {
  if (timer_pending_) return;
  if (scheduler_ == nullptr) scheduler_ = envoy_dynamic_module_callback_network_filter_scheduler_new(conn_.raw());
  if (scheduler_ == nullptr) return;
  timer_pending_ = true;
  config_.commits().commit_after(scheduler_, kEventThrottle, std::chrono::nanoseconds(wait_ns));
}

void KafkaFilter::on_scheduled(uint64_t event_id) {
  if (event_id != kEventThrottle) return;
  timer_pending_ = false;
  if (closed_ || !holding_) return;
  const uint64_t now = KafkaFilterConfig::now_ns();
  if (throttle_until_ > now) {
    arm_timer(throttle_until_ - now);
    return;
  }
  if (inflight_hold_) return;  // the answers release it
  release_held();
}

// Hands a held read buffer on. An undecided frame at its end stays: a frame
// head not yet complete is carried to the next read, a Produce frame awaiting
// its verdict moves into cap_ (reads may be stopped at the buffer limit by
// now, so waiting for "the next read" could wait for ever).
void KafkaFilter::release_held() {
  if (closed_ || !holding_) return;
  holding_ = false;
  if (!c2s_.at_frame_boundary() && (!c2s_head_seen_ || (frame_hold_ && !own_capture_))) {
    conn_.read_chunks(chunks_.views());
    const size_t total = chunks_.total();
    const uint64_t in_frame = c2s_.offset() - c2s_.frame_start();
    const size_t fs = in_frame <= total ? total - static_cast<size_t>(in_frame) : 0;
    std::string tail, prefix;
    chunks_.copy_range(fs, total, &tail);
    chunks_.copy_range(0, fs, &prefix);
    if (!c2s_head_seen_) {
      c2s_carry_ = std::move(tail);
    } else {
      own_capture_ = true;
      cap_ = std::move(tail);
      cap_from_ = c2s_.offset();  // none of its bytes is in the buffer any more
    }
    conn_.drain_read(total);
    conn_.append_read(prefix);
  }
  held_ = 0;
  conn_.continue_reading();
}

std::string KafkaFilter::rewrite_produce(const RequestHeader& hdr, std::string_view payload,
                                         const std::vector<Pending::Topic>& refused) {
  const std::string_view body = payload.substr(hdr.size);
  ProduceRequest req;
  Error err;
  if (!decode_produce_request(body, hdr.api_version, &req, &err, 4 + hdr.size)) {
    fatal(true, "offset " + std::to_string(err.offset) + ": " + err.reason);
    return {};
  }
  ProduceRequest kept = req;
  kept.topics.clear();
  size_t ri = 0;  // refused topics come in request order
  for (const ProduceTopic& t : req.topics) {
    const std::string_view name = t.name.null ? std::string_view() : t.name.v;
    const Pending::Topic* r = nullptr;
    if (ri < refused.size() && refused[ri].name == name) r = &refused[ri++];
    ProduceTopic kt = t;
    kt.partitions.clear();
    for (const ProducePartition& p : t.partitions) {
      bool drop = false;
      if (r != nullptr) {
        for (const Pending::Part& rp : r->parts) drop = drop || rp.index == p.index;
      }
      if (!drop) kt.partitions.push_back(p);
    }
    if (!kt.partitions.empty()) kept.topics.push_back(std::move(kt));
  }
  return frame_of(payload.substr(0, hdr.size), encode_produce_request(kept, hdr.api_version));
}

std::string KafkaFilter::process_fetch_request(const RequestHeader& hdr, std::string_view payload) {
  const KafkaMetrics& m = config_.m();
  const std::string_view body = payload.substr(hdr.size);
  FetchRequest req;
  Error err;
  if (!decode_fetch_request(body, hdr.api_version, &req, &err, 4 + hdr.size)) {
    fatal(true, "offset " + std::to_string(err.offset) + ": " + err.reason);
    return {};
  }
  std::vector<bool> keep(req.topics.size(), true);
  Pending pend;
  bool changed = false;
  for (size_t i = 0; i < req.topics.size(); ++i) {
    const FetchRequestTopic& t = req.topics[i];
    const std::string name = t.name.null ? std::string() : std::string(t.name.v);
    if (cfg_->consume.allowed(name)) continue;
    keep[i] = false;
    changed = true;
    Pending::Topic d{name, {}};
    for (const auto& p : t.partitions) d.parts.push_back({p.partition, kTopicAuthorizationFailed, {}});
    pend.fetch_errors.push_back(std::move(d));
    deltas_.add(m.groups[group_of(name)].fetch_denied);
    deltas_.add(m.denied);
  }
  if (!changed) return frame_of(std::string_view(), payload);
  std::string nb = splice_array(body, req.topics_span, keep);
  if (hdr.api_version >= 7 && req.session_offset + 8 <= nb.size()) {
    // Without the denied topics the request no longer matches the client's
    // fetch session: make it a sessionless full fetch.
    store_be32(&nb[req.session_offset], 0);
    store_be32(&nb[req.session_offset + 4], static_cast<uint32_t>(-1));
  }
  pending_[hdr.correlation_id] = std::move(pend);
  return frame_of(payload.substr(0, hdr.size), nb);
}

// ---------------------------------------------------------------- broker -> client

int KafkaFilter::on_write(size_t /*length*/, bool end_stream) {
  refresh_policy();
  if (closed_ || fatal_) return EVM_NET_STOP_ITERATION;
  size_t held = 0;
  if (!s2c_carry_.empty()) {
    conn_.prepend_write(s2c_carry_);
    held = s2c_carry_.size();
    s2c_carry_.clear();
  }
  conn_.write_chunks(chunks_.views());
  const size_t total = chunks_.total();
  const uint64_t fed_start = s2c_.offset();
  const uint64_t base = fed_start - held;
  s2c_edits_.clear();
  S2CSink sink{this};
  cur_base_ = base;
  const bool ok =
      chunks_.for_each_from(held, [&](std::string_view piece) { return s2c_.feed(piece, sink) && !fatal_; });
  deltas_.add(config_.m().s2c_bytes, s2c_.offset() - fed_start);
  if (!ok && !fatal_) fatal(false, s2c_.error());
  if (fatal_) {
    closed_ = true;
    conn_.drain_write(total);
    flush_counters();
    conn_.close(EVM_CLOSE_NO_FLUSH);
    return EVM_NET_STOP_ITERATION;
  }
  if (!s2c_.at_frame_boundary()) {
    const uint64_t fs = std::max<uint64_t>(s2c_.frame_start(), base);
    if (s2c_head_seen_ && s2c_capture_) {
      s2c_edits_.push_back({fs, base + total, std::string()});
    } else if (!s2c_head_seen_ && !end_stream && s2c_may_capture(fs, base, total)) {
      // The response's head is incomplete and it may have to be rewritten:
      // carried to the next write (the write side cannot hold data).
      chunks_.copy_range(static_cast<size_t>(fs - base), total, &s2c_carry_);
      s2c_edits_.push_back({fs, base + total, std::string()});
    }
  }
  apply_edits(false, base, total, s2c_edits_);
  flush_counters();
  if (inflight_hold_ && inflight_.size() < kInFlightLow) {
    inflight_hold_ = false;
    if (throttle_until_ <= KafkaFilterConfig::now_ns()) release_held();
  }
  return EVM_NET_CONTINUE;
}

// From the first 8 bytes of a response (size + correlation id): whether it
// answers a request whose response the filter may rewrite. Fewer bytes: yes.
bool KafkaFilter::s2c_may_capture(uint64_t fs, uint64_t base, size_t total) const {
  if (base + total - fs < 8) return true;
  std::string id;
  chunks_.copy_range(static_cast<size_t>(fs - base) + 4, static_cast<size_t>(fs - base) + 8, &id);
  const int32_t corr = static_cast<int32_t>(load_be32(id.data()));
  const InFlight* r = inflight_.peek(corr);
  if (r == nullptr) return false;  // passes untouched whatever it is
  return needs_capture(*r);
}

bool KafkaFilter::needs_capture(const InFlight& r) const {
  const int16_t key = r.api_key;
  return key == api::kApiVersions || key == api::kMetadata || key == api::kFindCoordinator ||
         key == api::kDescribeCluster || pending_.count(r.correlation_id) != 0 ||
         (key == api::kFetch && fetch_throttle_owed_ms_ > 0);
}

bool KafkaFilter::s2c_head(const FrameHead& h) {
  if (fatal_) return false;
  ++s2c_frames_;
  s2c_head_seen_ = true;
  s2c_capture_ = false;
  resp_known_ = false;
  walks_[1].active = false;
  if (h.size < 4) {
    fatal(false, "offset " + std::to_string(h.start) + ": response of " + std::to_string(h.size) +
                     " bytes has no correlation id");
    return false;
  }
  const int32_t corr = static_cast<int32_t>(load_be32(h.prefix.data()));
  if (!inflight_.take(corr, &resp_req_)) return false;  // not a request we saw (e.g. acks=0 answered): pass
  resp_known_ = true;
  const KafkaMetrics& m = config_.m();
  const size_t ai = (resp_req_.api_key >= 0 && resp_req_.api_key < api_key_limit())
                        ? static_cast<size_t>(resp_req_.api_key)
                        : m.apis.size() - 1;
  const uint64_t now_us = KafkaFilterConfig::now_ns() / 1000;
  histogram_record(conn_.raw(), config_.table(), m.apis[ai].latency_us,
                   now_us > resp_req_.user ? now_us - resp_req_.user : 0);
  ResponseHeader rh;
  Error err;
  const Status st = decode_response_header(h.prefix, response_header_version(resp_req_.api_key, resp_req_.api_version),
                                           &rh, &err);
  if (st == Status::kError) {
    fatal(false, "offset " + std::to_string(h.start + 4 + err.offset) + ": " + err.reason);
    return false;
  }
  resp_header_size_ = st == Status::kOk ? rh.size : 0;  // 0: decode with the whole payload
  const int16_t key = resp_req_.api_key;
  s2c_capture_ = st == Status::kNeedMore || needs_capture(resp_req_);
  if (s2c_capture_ && h.start < cur_base_) {
    // Its first bytes already left (s2c_may_capture said no): cannot happen
    // unless the decision changed in between; never pass it half-rewritten.
    fatal(false, "internal error: a response to rewrite was partly forwarded", false);
    return false;
  }
  if (!s2c_capture_ && key == api::kFetch) {
    Walk& w = walks_[1];
    w.active = true;
    w.header_size = rh.size;
    w.walker = std::make_unique<RecordsBodyWalker>(RecordsBodyWalker::Kind::kFetchResponse, resp_req_.api_version,
                                                   h.size - rh.size, 4 + rh.size, false);
    w.records = w.bytes = w.quota_wait_ns = 0;
    w.group = cfg_->topics.size();
    w.quota = -1;
  }
  return s2c_capture_;
}

void KafkaFilter::s2c_bytes(const FrameHead& h, uint64_t at, std::string_view piece) {
  walk_feed(walks_[1], h, at, piece, false);
}

void KafkaFilter::s2c_frame(const FrameHead& h, std::string_view payload) {
  s2c_head_seen_ = false;
  if (fatal_ || !resp_known_) return;
  Walk& w = walks_[1];
  if (s2c_capture_) {
    uint32_t hs = resp_header_size_;
    if (hs == 0) {
      ResponseHeader rh;
      Error err;
      if (decode_response_header(payload, response_header_version(resp_req_.api_key, resp_req_.api_version), &rh,
                                 &err) != Status::kOk) {
        fatal(false, "offset " + std::to_string(h.start + 4) + ": bad response header");
        return;
      }
      hs = rh.size;
    }
    std::string out = process_response(resp_req_, hs, payload);
    if (fatal_) return;
    s2c_edits_.push_back({std::max<uint64_t>(h.start, cur_base_), h.end(), std::move(out)});
  } else if (w.active) {
    w.active = false;
    if (!w.walker->done()) {
      fatal(false, "offset " + std::to_string(h.end()) + ": Fetch response truncated (frame ends inside its body)");
    }
  }
}

std::string KafkaFilter::process_response(const InFlight& req, uint32_t hs, std::string_view payload) {
  const KafkaMetrics& m = config_.m();
  const std::string_view header = payload.substr(0, hs);
  const std::string_view body = payload.substr(hs);
  const size_t base = 4 + hs;
  const int16_t v = req.api_version;
  Error err;
  Pending pend;
  if (auto it = pending_.find(req.correlation_id); it != pending_.end()) {
    pend = std::move(it->second);
    pending_.erase(it);
  }
  const auto fail = [&](const char* what) {
    fatal(false, "offset " + std::to_string(err.offset) + ": " + what + " " + (err.reason ? err.reason : ""));
    return std::string();
  };
  switch (req.api_key) {
    case api::kApiVersions: {
      ApiVersionsResponse r;
      if (!decode_api_versions_response(body, v, &r, &err, base)) return fail("ApiVersions response:");
      std::string b(body);
      // Produce/Fetch v13+ name topics by id only: cap them so that clients
      // send names, and cap every api the sidecar decodes to what it knows.
      if (cap_to_decodable(&b, r, 12) > 0) deltas_.add(m.api_versions_capped);
      return frame_of(header, b);
    }
    case api::kMetadata:
    case api::kFindCoordinator:
    case api::kDescribeCluster: {
      std::string out;
      size_t rewritten = 0, unknown = 0;
      const AddressMapper mapper = [&](int32_t node_id, std::string_view host, int32_t port, std::string* new_host,
                                       int32_t* new_port) {
        uint32_t p = cfg_->node_port(node_id);
        if (p == 0) {
          // A broker the sidecar has no listener for: keep the client on the
          // sidecar (its bootstrap listener) rather than let it go around.
          ++unknown;
          if (log_enabled(EVM_LOG_WARN)) {
            log(EVM_LOG_WARN, conn_tag() + "broker node " + std::to_string(node_id) + " (" + std::string(host) + ":" +
                                  std::to_string(port) + ") has no sidecar listener; advertising the bootstrap port");
          }
          p = cfg_->bootstrap_port;
        }
        *new_host = cfg_->advertised_host;
        *new_port = static_cast<int32_t>(p);
        ++rewritten;
        return true;
      };
      const Rewrite r = rewrite_broker_addresses(req.api_key, v, body, mapper, &out, &err, base);
      if (unknown) deltas_.add(m.unknown_nodes, unknown);
      switch (r) {
        case Rewrite::kRewritten:
          deltas_.add(m.addresses_rewritten, rewritten);
          return frame_of(header, out);
        case Rewrite::kUnchanged:
        case Rewrite::kNotApplicable:
          return frame_of(std::string_view(), payload);
        case Rewrite::kUnsupportedVersion:
          fatal(false, std::string(api_name(req.api_key)) + " v" + std::to_string(v) +
                           " response cannot be rewritten (the client skipped ApiVersions?); closing so that the "
                           "client cannot bypass the sidecar",
                false);
          return {};
        case Rewrite::kError:
          return fail("broker addresses:");
      }
      return {};
    }
    case api::kProduce: {
      if (pend.empty()) return frame_of(std::string_view(), payload);
      ProduceResponse r;
      if (!decode_produce_response(body, v, &r, &err, base)) return fail("Produce response:");
      for (const Pending::Topic& t : pend.produce_errors) {
        ProduceTopicResponse tr;
        tr.name = Str::of(t.name);
        for (const Pending::Part& p : t.parts) {
          ProducePartitionResponse pr;
          pr.index = p.index;
          pr.error_code = p.error_code;
          if (v >= 8) pr.error_message = Str::of(p.message);
          tr.partitions.push_back(pr);
        }
        r.topics.push_back(std::move(tr));
      }
      if (v >= 1 && pend.throttle_ms > r.throttle_time_ms) r.throttle_time_ms = pend.throttle_ms;
      return frame_of(header, encode_produce_response(r, v));
    }
    case api::kFetch: {
      FetchResponse r;
      if (!decode_fetch_response(body, v, &r, &err, base)) return fail("Fetch response:");
      for (const FetchTopic& t : r.topics) {
        const std::string_view name = t.name.null ? std::string_view() : t.name.v;
        const size_t gi = group_of(name);
        uint64_t recs = 0, bytes = 0;
        for (const FetchPartition& p : t.partitions) {
          if (p.records.null) continue;
          bytes += p.records.v.size();
          RecordCounts rc;
          Error e2;
          if (count_records(p.records.v, true, &rc, &e2)) recs += rc.records;
        }
        if (recs) deltas_.add(m.groups[gi].fetched_records, recs);
        if (bytes) deltas_.add(m.groups[gi].fetched_bytes, bytes);
        if (!cfg_->quotas.empty() && (recs || bytes)) {
          const int q = cfg_->quota(name);
          if (q >= 0) {
            const uint64_t wait = take_quota(q, 'f', recs, bytes);
            if (wait > 0) {
              throttle_for(wait);
              const int32_t ms = static_cast<int32_t>(wait / 1000000 + 1);
              if (ms > fetch_throttle_owed_ms_) fetch_throttle_owed_ms_ = ms;
            }
          }
        }
      }
      std::string b;
      if (!pend.fetch_errors.empty()) {
        std::vector<FetchRequestTopic> denied;
        for (const Pending::Topic& t : pend.fetch_errors) {
          FetchRequestTopic ft;
          ft.name = Str::of(t.name);
          for (const Pending::Part& p : t.parts) ft.partitions.push_back({p.index, 0, 0});
          denied.push_back(std::move(ft));
        }
        b = splice_array(body, r.topics_span, std::vector<bool>(r.topics.size(), true),
                         fetch_error_topics(denied, v, kTopicAuthorizationFailed),
                         static_cast<int32_t>(denied.size()));
      } else {
        b.assign(body);
      }
      const int32_t owed = std::max(pend.throttle_ms, fetch_throttle_owed_ms_);
      if (v >= 1 && owed > r.throttle_time_ms) patch_throttle_time(&b, r.throttle_time_offset, owed);
      fetch_throttle_owed_ms_ = 0;
      return frame_of(header, b);
    }
    default:
      return frame_of(std::string_view(), payload);
  }
}

}  // namespace evmesh::kafka
