#include "filters/amqp/filter/amqp_filter.h"

#include <algorithm>
#include <chrono>

#include "filters/amqp/codec/encode.h"
#include "filters/amqp/codec/field_table.h"
#include "filters/amqp/codec/wire.h"

namespace evmesh::amqp {

// ---------------------------------------------------------------- config

std::unique_ptr<FilterConfig> make_amqp_config(evm_config_envoy_ptr config_envoy, std::string_view json,
                                               std::string* error) {
  std::optional<AmqpConfig> cfg = parse_amqp_config(json, error);
  if (!cfg) return nullptr;
  MetricsBuilder b(config_envoy, "amqp." + cfg->stat_prefix + ".");
  AmqpMetrics m;
  static_cast<ConnectionMetrics&>(m) = define_connection_metrics(b);
  m.channels_closed_by_policy = b.counter("channels_closed_by_policy");
  m.server_channel_errors = b.counter("server_channel_errors");
  m.throttled = b.counter("throttled");
  for (size_t i = 0; i < cfg->exchanges.size(); ++i) {
    const std::string g = "exchange." + cfg->exchanges.name(i) + ".";
    m.exchanges.push_back({b.counter(g + "published_msgs"), b.counter(g + "published_bytes"),
                           b.counter(g + "publish_denied"), b.counter(g + "body_too_large"),
                           b.counter(g + "returned_msgs"), b.counter(g + "confirm_acks"),
                           b.counter(g + "confirm_nacks")});
  }
  for (size_t i = 0; i < cfg->queues.size(); ++i) {
    const std::string g = "queue." + cfg->queues.name(i) + ".";
    m.queues.push_back({b.counter(g + "delivered_msgs"), b.counter(g + "delivered_bytes"), b.counter(g + "acks"),
                        b.counter(g + "nacks"), b.counter(g + "rejects"), b.counter(g + "consume_denied")});
  }
  if (!b.ok()) {
    *error = b.error();
    return nullptr;
  }
  auto out = std::make_unique<AmqpFilterConfig>(b.take(), std::move(m));
  if (!out->pol().setup(std::move(*cfg), json, {"acl", "max_body_size", "throttle"}, &parse_amqp_config, error)) {
    return nullptr;
  }
  return out;
}

uint64_t AmqpFilterConfig::steady_now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

std::unique_ptr<NetworkFilter> AmqpFilterConfig::create(evm_filter_envoy_ptr f) const {
  return std::make_unique<AmqpFilter>(*this, f);
}

// ---------------------------------------------------------------- filter

namespace {
constexpr size_t kMaxConsumers = 4096;  // consumer-tag map bound per connection
constexpr uint64_t kEventThrottle = 1;  // a throttle wait is over (delayed commit)
constexpr uint64_t kEventRelease = 2;   // a gated channel.open may go (immediate commit)

std::string quoted_exchange(std::string_view x) { return x.empty() ? "amq.default" : std::string(x); }

// The user name from a PLAIN ("\0user\0pass") or AMQPLAIN (table with LOGIN) response.
std::string user_from(const Method& m) {
  if (m.mechanism == "PLAIN") {
    const size_t a = m.response.find('\0');
    if (a == std::string_view::npos) return "";
    const size_t b = m.response.find('\0', a + 1);
    return std::string(m.response.substr(a + 1, b == std::string_view::npos ? std::string_view::npos : b - a - 1));
  }
  if (m.mechanism == "AMQPLAIN") {
    std::string user;
    for_each_field(m.response, [&user](std::string_view k, const FieldValue& v) {
      if (k == "LOGIN" && v.type == 'S') user.assign(v.bytes.data(), v.bytes.size());
    });
    return user;
  }
  return "";
}
}  // namespace

AmqpFilter::AmqpFilter(const AmqpFilterConfig& config, evm_filter_envoy_ptr f)
    : config_(config),
      conn_(f),
      deltas_(config.table()),
      c2s_(Dir::kClientToServer, config.cfg().max_frame),
      s2c_(Dir::kServerToClient, config.cfg().max_frame) {
  deltas_.add(config_.m().connections_total);
  pol_ = config_.pol().get(&pol_gen_);
  buckets_.resize(pol_->throttle.size());
}

AmqpFilter::~AmqpFilter() {
  if (scheduler_ != nullptr) {
    config_.commits().cancel(scheduler_);
    envoy_dynamic_module_callback_network_filter_scheduler_delete(scheduler_);
  }
}

uint64_t AmqpFilter::throttle_wait_ns(uint64_t now) {
  uint64_t wait = 0;
  for (Buckets& b : buckets_) {
    if (!b.ready) continue;
    wait = std::max(wait, std::max(b.msgs.wait_ns(now), b.bytes.wait_ns(now)));
  }
  return wait;
}

void AmqpFilter::arm_timer(uint64_t wait_ns) {
  if (timer_pending_) return;
  if (scheduler_ == nullptr) scheduler_ = envoy_dynamic_module_callback_network_filter_scheduler_new(conn_.raw());
  if (scheduler_ == nullptr) return;
  timer_pending_ = true;
  config_.commits().commit_after(scheduler_, kEventThrottle, std::chrono::nanoseconds(wait_ns));
}

void AmqpFilter::on_scheduled(uint64_t event_id) {
  if (event_id == kEventThrottle) {
    timer_pending_ = false;
    if (closed_ || !throttle_hold_) return;
    const uint64_t wait = throttle_wait_ns(config_.now_ns());
    if (wait > 0) {
      arm_timer(wait);
      return;
    }
    throttle_hold_ = false;
  }
  maybe_release();
}

void AmqpFilter::maybe_release() {
  if (closed_ || !holding_ || throttle_hold_ || gated_opens_ > 0) return;
  // Hand the held buffer on to the next filters, in order, untouched. An
  // undecided tail (a partial frame, a publish awaiting its header) is
  // carried instead: reads may be disabled by now (buffer at its high
  // watermark), so waiting for "the next read" could wait for ever.
  holding_ = false;
  held_ = 0;
  const uint64_t cut = undecided_from();
  if (cut != UINT64_MAX) {
    conn_.read_chunks(chunks_.views());
    carry_from(cut, chunks_.total());
  } else {
    rd_base_ = c2s_.offset();
    rd_applied_.clear();
    if (!pending_upstream_.empty() && c2s_.at_frame_boundary()) {
      conn_.append_read(pending_upstream_);  // at a frame boundary: it goes last
      pending_upstream_.clear();
    }
  }
  conn_.continue_reading();
}

void AmqpFilter::gate_open(Channel& ch) {
  if (ch.upstream_closes > 0 && !ch.open_gated) {
    ch.open_gated = true;
    ++gated_opens_;
  }
}

void AmqpFilter::on_event(int event) {
  if (event == EVM_EVENT_REMOTE_CLOSE || event == EVM_EVENT_LOCAL_CLOSE) {
    if (!gauge_closed_) {
      gauge_closed_ = true;
      gauge_add(conn_.raw(), config_.table(), config_.m().connections_active, -1);
    }
    deltas_.flush(conn_.raw());
  }
}

int AmqpFilter::on_new_connection() {
  gauge_add(conn_.raw(), config_.table(), config_.m().connections_active, 1);
  deltas_.flush(conn_.raw());
  return EVM_NET_CONTINUE;
}

std::string AmqpFilter::denial_prefix() const {
  return "evmesh amqp[" + config_.cfg().stat_prefix + "] connection " + std::to_string(conn_.id()) + ": ";
}

// ---------------------------------------------------------------- client -> broker

void AmqpFilter::refresh_policy() {
  if (!config_.pol().live() || config_.pol().generation() == pol_gen_) return;
  for (const auto& [id, ch] : channels_) {
    if (ch.pub == Channel::Pub::kAwaitHeader) return;  // next time
  }
  pol_ = config_.pol().get(&pol_gen_);
  buckets_.assign(pol_->throttle.size(), Buckets{});
}

int AmqpFilter::on_read(size_t /*length*/, bool end_stream) {
  if (closed_) return EVM_NET_STOP_ITERATION;
  refresh_policy();
  if (!carry_.empty()) {
    // The undecided tail drained at the end of the previous read goes back in
    // front of the new bytes; the parser has already seen it.
    conn_.prepend_read(carry_);
    held_ = carry_.size();
    carry_.clear();
  }
  conn_.read_chunks(chunks_.views());
  const size_t total = chunks_.total();
  const uint64_t fed_start = c2s_.offset();
  rd_edits_.clear();
  if (rd_drop_until_ > fed_start) {
    rd_edits_.push_back({fed_start, rd_drop_until_, {}});
  } else if (!pending_upstream_.empty() && fed_start >= sizeof(kProtocolHeader) && c2s_.at_frame_boundary()) {
    rd_edits_.push_back({fed_start, fed_start, std::move(pending_upstream_)});
    pending_upstream_.clear();
  }

  const bool ok = chunks_.for_each_from(held_, [this](std::string_view piece) {
    return c2s_.feed(piece, [this](const Frame& f) { on_client_frame(f); });
  });
  if (!ok && c2s_.failed()) {
    protocol_error(true, c2s_);
    return EVM_NET_STOP_ITERATION;
  }
  if (closed_) {
    deltas_.flush(conn_.raw());
    return EVM_NET_STOP_ITERATION;
  }
  if (!pending_upstream_.empty() && c2s_.offset() >= sizeof(kProtocolHeader) && c2s_.at_frame_boundary() &&
      rd_drop_until_ <= c2s_.offset()) {
    rd_edits_.push_back({c2s_.offset(), c2s_.offset(), std::move(pending_upstream_)});
    pending_upstream_.clear();
  }

  size_t kept_total = total;
  if (!rd_edits_.empty()) apply_read_edits(total, &kept_total);
  if (closed_) {
    deltas_.flush(conn_.raw());
    return EVM_NET_STOP_ITERATION;
  }

  uint64_t throttle_wait = 0;
  if (!buckets_.empty() && !end_stream) {
    throttle_wait = throttle_wait_ns(config_.now_ns());
    if (throttle_wait > 0) {
      if (!throttle_hold_) deltas_.add(config_.m().throttled);
      throttle_hold_ = true;
      arm_timer(throttle_wait);
    }
  }
  const uint64_t cut = undecided_from();
  int status = EVM_NET_CONTINUE;
  held_ = 0;
  holding_ = false;
  if (!end_stream && (throttle_wait > 0 || gated_opens_ > 0 || (cut != UINT64_MAX && kept_total <= hold_threshold()))) {
    // Hold everything in place: released by the next read, or by an event.
    held_ = kept_total;
    holding_ = true;
    status = EVM_NET_STOP_ITERATION;
  } else if (!end_stream && cut != UINT64_MAX) {
    carry_from(cut, kept_total);  // forward the decided prefix, carry the undecided tail
    throttle_hold_ = false;
  } else {
    rd_base_ = c2s_.offset();
    rd_applied_.clear();
    throttle_hold_ = false;
  }
  flush_pending_to_client();
  deltas_.flush(conn_.raw());
  return status;
}

bool AmqpFilter::partial_may_be_dropped() const {
  if (!c2s_.partial_header_known()) return true;  // type and channel unknown yet: a few bytes
  const uint16_t id = c2s_.partial_channel();
  auto it = channels_.find(id);
  const Channel* ch = it == channels_.end() ? nullptr : &it->second;
  if (ch != nullptr && ch->client_denied) return true;
  const AmqpConfig& cfg = pol();
  switch (c2s_.partial_type()) {
    case 1: {  // method
      Reader r(c2s_.partial_payload());
      uint16_t cls = 0, mth = 0, ticket = 0;
      if (!r.u16(&cls) || !r.u16(&mth)) return true;
      const uint32_t mid = (static_cast<uint32_t>(cls) << 16) | mth;
      if (id == 0) return false;
      switch (mid) {
        case kBasicPublish: {
          if (cfg.max_body_size) return true;  // held until its content header anyway
          if (!cfg.acl.restricts_publish()) return false;
          std::string_view exchange, routing_key;
          if (!r.u16(&ticket) || !r.shortstr(&exchange) || !r.shortstr(&routing_key)) return true;
          return !cfg.acl.allow_publish(exchange, routing_key);
        }
        case kBasicConsume:
        case kBasicGet: {
          if (!cfg.acl.restricts_consume()) return false;
          std::string_view queue;
          if (!r.u16(&ticket) || !r.shortstr(&queue)) return true;
          return !cfg.acl.allow_consume(queue);
        }
        case kChannelOpen:
          return ch != nullptr && ch->upstream_closes > 0;
        default:
          return false;
      }
    }
    case 2:  // content header: the body size decides
      return ch != nullptr && ch->pub == Channel::Pub::kAwaitHeader && cfg.max_body_size != 0;
    default:
      return false;
  }
}

uint64_t AmqpFilter::undecided_from() const {
  uint64_t cut = UINT64_MAX;
  if (c2s_.in_partial_frame() && partial_may_be_dropped()) cut = c2s_.frame_start();
  if (awaiting_header_ > 0) {
    for (const auto& [id, ch] : channels_) {
      if (ch.pub == Channel::Pub::kAwaitHeader && ch.method_start < cut) cut = ch.method_start;
    }
  }
  return cut;
}

void AmqpFilter::carry_from(uint64_t cut, size_t kept_total) {
  const size_t cut_pos = std::min(rd_pos(cut), kept_total);
  conn_.read_chunks(chunks_.views());
  chunks_.copy_range(cut_pos, kept_total, &carry_);
  std::string head;
  if (cut_pos != 0) chunks_.copy_range(0, cut_pos, &head);
  conn_.drain_read(kept_total);
  conn_.append_read(head);
  rd_base_ = cut;
  std::vector<Applied> keep;
  for (const Applied& a : rd_applied_) {
    if (a.at > cut) keep.push_back(a);
  }
  rd_applied_.swap(keep);
}

size_t AmqpFilter::hold_threshold() const {
  constexpr size_t kMaxHold = 16 * 1024;
  const uint32_t limit = conn_.buffer_limit();
  return (limit != 0 && limit / 2 < kMaxHold) ? limit / 2 : kMaxHold;
}

// Buffer position of a stream offset: edits applied to the held part of the
// buffer in earlier reads shift what follows them.
size_t AmqpFilter::rd_pos(uint64_t s) const {
  int64_t shift = 0;
  for (const Applied& a : rd_applied_) {
    if (a.at <= s) shift += a.delta;
  }
  return static_cast<size_t>(static_cast<int64_t>(s - rd_base_) + shift);
}

void AmqpFilter::apply_read_edits(size_t total, size_t* kept_total) {
  std::stable_sort(rd_edits_.begin(), rd_edits_.end(), [](const Edit& a, const Edit& b) { return a.begin < b.begin; });
  const uint64_t stream_end = c2s_.offset();
  auto pos = [this](uint64_t s) { return rd_pos(s); };
  if (rd_edits_.size() == 1 && rd_edits_[0].insert.empty() && rd_edits_[0].begin == rd_base_ &&
      pos(rd_edits_[0].begin) == 0) {
    // The tail of an earlier dropped frame (or a dropped first frame): a cheap front drain.
    const Edit& e = rd_edits_[0];
    const uint64_t end = std::min(e.end, stream_end);
    if (e.end > stream_end) rd_drop_until_ = std::max(rd_drop_until_, e.end);
    const size_t n = static_cast<size_t>(end - e.begin);
    conn_.drain_read(n);
    *kept_total = total - n;
    rd_applied_.push_back({end, -static_cast<int64_t>(n)});
    return;
  }
  std::string out;
  out.reserve(total + 64);
  size_t cur = 0;
  std::vector<Applied> now;
  for (Edit& e : rd_edits_) {
    if (e.begin < rd_base_) {
      // Part of this frame already left: dropping the rest would corrupt the
      // upstream stream and letting it through would bypass the policy. The
      // hold rules exclude this; should it happen anyway, fail closed.
      log(EVM_LOG_ERROR, denial_prefix() + "internal error: a frame to drop was partly forwarded; closing");
      closed_ = true;
      conn_.close(EVM_CLOSE_NO_FLUSH);
      return;
    }
    const uint64_t end = std::min(e.end, stream_end);
    if (e.end > stream_end) rd_drop_until_ = std::max(rd_drop_until_, e.end);
    const size_t pb = pos(e.begin);
    if (pb < cur || pb > total) continue;
    const size_t pe = std::min(total, pb + static_cast<size_t>(end - e.begin));
    chunks_.copy_range(cur, pb, &out);
    out += e.insert;
    cur = pe;
    now.push_back({end, static_cast<int64_t>(e.insert.size()) - static_cast<int64_t>(end - e.begin)});
  }
  chunks_.copy_range(cur, total, &out);
  conn_.drain_read(total);
  conn_.append_read(out);
  *kept_total = out.size();
  rd_applied_.insert(rd_applied_.end(), now.begin(), now.end());
}

void AmqpFilter::on_client_frame(const Frame& f) {
  const AmqpMetrics& m = config_.m();
  deltas_.add(m.c2s_frames);
  deltas_.add(m.c2s_bytes, f.frame_len());
  if (f.type == FrameType::kProtocolHeader) return;
  if (!pending_upstream_.empty() && f.start >= rd_base_ && f.start >= rd_drop_until_) {
    rd_edits_.push_back({f.start, f.start, std::move(pending_upstream_)});
    pending_upstream_.clear();
  }
  if (f.channel == 0) {
    if (f.type != FrameType::kMethod) return;
    switch (f.method->id()) {
      case kConnectionStartOk: user_ = user_from(*f.method); break;
      case kConnectionOpen: vhost_.assign(f.method->vhost.data(), f.method->vhost.size()); break;
      case kConnectionTuneOk: on_tune_ok(f.method->frame_max); break;
      default: break;
    }
    return;
  }
  Channel& ch = channel(f.channel);
  if (ch.client_denied) {
    on_client_denied_channel(f, ch);
    return;
  }
  switch (f.type) {
    case FrameType::kMethod: {
      const Method& mt = *f.method;
      switch (mt.id()) {
        case kBasicPublish:
          on_publish(f, ch);
          break;
        case kBasicConsume:
        case kBasicGet: {
          const uint32_t q = static_cast<uint32_t>(config_.cfg().queues.classify(mt.queue));
          if (!pol().acl.allow_consume(mt.queue)) {
            deltas_.add(m.queues[q].consume_denied);
            close_channel(f.channel, ch, f.start, f.start + f.frame_len(), 403,
                          "ACCESS_REFUSED - access to queue '" + std::string(mt.queue) + "' in vhost '" + vhost_ +
                              "' refused for user '" + user_ + "'",
                          kBasic, mt.method_id);
            break;
          }
          ch.queue_group = q;
          if (mt.id() == kBasicConsume) {
            if (mt.bit(kNoWait)) {
              if (consumers_.size() < kMaxConsumers) consumers_[std::string(mt.consumer_tag)] = q;
              last_tag_.clear();
            } else {
              ch.pending_consumes.push_back(q);
            }
          }
          break;
        }
        case kBasicAck:
          deltas_.add(m.queues[ch.queue_group].acks);
          break;
        case kBasicNack:
          deltas_.add(m.queues[ch.queue_group].nacks);
          break;
        case kBasicReject:
          deltas_.add(m.queues[ch.queue_group].rejects);
          break;
        case kConfirmSelect:
          ch.confirm = true;
          break;
        case kChannelOpen:
        case kChannelClose:
        case kChannelCloseOk: {
          if (ch.pub == Channel::Pub::kAwaitHeader && pol().max_body_size) --awaiting_header_;
          const uint16_t closes = ch.upstream_closes;
          const bool gated = ch.open_gated;
          ch = Channel();
          ch.upstream_closes = closes;
          ch.open_gated = gated;
          if (mt.id() == kChannelOpen) gate_open(ch);
          break;
        }
        default:
          break;
      }
      break;
    }
    case FrameType::kHeader:
      if (ch.pub == Channel::Pub::kAwaitHeader) on_publish_header(f, ch);
      break;
    case FrameType::kBody:
      if (ch.pub == Channel::Pub::kInBody) {
        ch.body_remaining -= std::min<uint64_t>(ch.body_remaining, f.size);
        if (ch.body_remaining == 0) ch.pub = Channel::Pub::kIdle;
      }
      break;
    default:
      break;
  }
}

void AmqpFilter::on_client_denied_channel(const Frame& f, Channel& ch) {
  if (f.type == FrameType::kMethod) {
    switch (f.method->id()) {
      case kChannelOpen: {
        // The client is done with the old channel and opens it again: pass
        // (once the broker has forgotten the old one).
        const uint16_t closes = ch.upstream_closes;
        ch = Channel();
        ch.upstream_closes = closes;
        gate_open(ch);
        return;
      }
      case kChannelClose:
        // Both sides closing at once: answer the client's Close ourselves.
        pending_client_ += encode_channel_close_ok(f.channel);
        break;
      case kChannelCloseOk:
        ch.client_denied = false;
        break;
      default:
        break;
    }
  }
  rd_edits_.push_back({f.start, f.start + f.frame_len(), {}});
}

void AmqpFilter::on_publish(const Frame& f, Channel& ch) {
  const Method& mt = *f.method;
  const AmqpConfig& cfg = pol();
  split_words(mt.routing_key, &words_);
  const uint32_t g = static_cast<uint32_t>(cfg.exchanges.classify(mt.exchange, words_));
  if (!cfg.acl.allow_publish(mt.exchange, words_)) {
    deltas_.add(config_.m().exchanges[g].publish_denied);
    close_channel(f.channel, ch, f.start, f.start + f.frame_len(), 403,
                  "ACCESS_REFUSED - write access to topic '" + std::string(mt.routing_key) + "' in exchange '" +
                      quoted_exchange(mt.exchange) + "' in vhost '" + vhost_ + "' refused for user '" + user_ + "'",
                  kBasic, 40);
    return;
  }
  ch.pub = Channel::Pub::kAwaitHeader;
  ch.pub_group = g;
  ch.method_start = f.start;
  ch.method_len = f.frame_len();
  ch.throttle_rule = cfg.throttle.empty() ? -1 : cfg.throttle_rule(mt.exchange);
  if (cfg.max_body_size) ++awaiting_header_;
}

void AmqpFilter::on_publish_header(const Frame& f, Channel& ch) {
  const AmqpConfig& cfg = pol();
  const uint64_t size = f.header->body_size;
  if (cfg.max_body_size) --awaiting_header_;
  ch.pub = Channel::Pub::kIdle;
  if (cfg.max_body_size && size > cfg.max_body_size) {
    deltas_.add(config_.m().exchanges[ch.pub_group].body_too_large);
    if (ch.method_start < rd_base_) {
      // Cannot happen: the method is held until its header. Never forward half a message.
      log(EVM_LOG_ERROR, denial_prefix() + "oversized message whose method already left; closing");
      closed_ = true;
      conn_.close(EVM_CLOSE_NO_FLUSH);
      return;
    }
    rd_edits_.push_back({ch.method_start, ch.method_start + ch.method_len, {}});
    close_channel(f.channel, ch, f.start, f.start + f.frame_len(), 406,
                  "PRECONDITION_FAILED - message size " + std::to_string(size) +
                      " is larger than configured max size " + std::to_string(cfg.max_body_size),
                  kBasic, 40);
    return;
  }
  const AmqpMetrics::Exchange& x = config_.m().exchanges[ch.pub_group];
  deltas_.add(x.published_msgs);
  deltas_.add(x.published_bytes, size);
  if (ch.throttle_rule >= 0) {
    const ThrottleRule& rule = cfg.throttle[static_cast<size_t>(ch.throttle_rule)];
    Buckets& b = buckets_[static_cast<size_t>(ch.throttle_rule)];
    const uint64_t now = config_.now_ns();
    if (!b.ready) {
      b.msgs = policy::TokenBucket(rule.messages_per_second, 0, now);
      b.bytes = policy::TokenBucket(rule.bytes_per_second, 0, now);
      b.ready = true;
    }
    b.msgs.take(1, now);
    b.bytes.take(size, now);
  }
  if (size > 0) {
    ch.pub = Channel::Pub::kInBody;
    ch.body_remaining = size;
  }
}

void AmqpFilter::close_channel(uint16_t id, Channel& ch, uint64_t replace_begin, uint64_t replace_end,
                               uint16_t code, const std::string& text, uint16_t failed_class,
                               uint16_t failed_method) {
  if (ch.pub == Channel::Pub::kAwaitHeader && pol().max_body_size) --awaiting_header_;
  ch.pub = Channel::Pub::kIdle;
  rd_edits_.push_back({replace_begin, replace_end, encode_close(id, 200, "evmesh: channel closed by policy", 0, 0)});
  pending_client_ += encode_close(id, code, text, failed_class, failed_method);
  ch.client_denied = true;
  if (ch.upstream_closes++ == 0) ++closing_channels_;
  deltas_.add(config_.m().channels_closed_by_policy);
  if (log_enabled(EVM_LOG_DEBUG)) {
    log(EVM_LOG_DEBUG, denial_prefix() + "channel " + std::to_string(id) + " closed: " + text);
  }
}

void AmqpFilter::on_tune_ok(uint32_t frame_max) {
  uint32_t v = frame_max;
  if (tune_frame_max_ != 0 && (v == 0 || v > tune_frame_max_)) v = tune_frame_max_;
  c2s_.set_frame_max(v);
  s2c_.set_frame_max(v);
}

void AmqpFilter::flush_pending_to_client(bool force) {
  // A boundary of the server's stream, and not before its first byte: a
  // server may open with a protocol header, which must come first.
  const bool boundary = (s2c_.at_frame_boundary() && s2c_.offset() > 0) || !custody_.empty();
  if (pending_client_.empty() || !(boundary || force)) return;
  in_local_write_ = true;
  conn_.write_to_client(pending_client_);
  in_local_write_ = false;
  pending_client_.clear();
}

void AmqpFilter::protocol_error(bool c2s, const Parser& p) {
  const AmqpMetrics& m = config_.m();
  deltas_.add(c2s ? m.c2s_protocol_errors : m.s2c_protocol_errors);
  log(EVM_LOG_WARN, denial_prefix() + "malformed " + (c2s ? "client-to-server" : "server-to-client") + " data at " +
                        p.error() + "; closing the connection");
  closed_ = true;
  if (c2s) {
    if (p.error_offset() < sizeof(kProtocolHeader)) {
      // As RabbitMQ does: answer a wrong protocol header with the one it speaks.
      pending_client_ = std::string(kProtocolHeader, sizeof(kProtocolHeader));
    } else {
      pending_client_ += encode_close(0, 501, "FRAME_ERROR - " + p.error(), 0, 0);
    }
    flush_pending_to_client(/*force=*/p.error_offset() < sizeof(kProtocolHeader) || s2c_.at_frame_boundary());
    conn_.close(EVM_CLOSE_FLUSH_WRITE);
  } else {
    conn_.close(EVM_CLOSE_NO_FLUSH);
  }
  deltas_.flush(conn_.raw());
}

// ---------------------------------------------------------------- broker -> client

int AmqpFilter::on_write(size_t /*length*/, bool end_stream) {
  if (in_local_write_) return EVM_NET_CONTINUE;  // our own reply, already accounted for
  if (closed_) return EVM_NET_STOP_ITERATION;
  size_t skip = 0;
  if (!custody_.empty()) {
    envoy_dynamic_module_callback_network_filter_prepend_write_buffer(conn_.raw(),
                                                                      module_buffer{custody_.data(), custody_.size()});
    skip = custody_.size();
    custody_.clear();
  }
  conn_.write_chunks(chunks_.views());
  const size_t total = chunks_.total();
  const uint64_t base = s2c_.offset() - skip;  // stream offset of write-buffer position 0
  wr_edits_.clear();
  if (wr_drop_until_ > s2c_.offset()) wr_edits_.push_back({s2c_.offset(), wr_drop_until_, {}});
  const bool ok = chunks_.for_each_from(skip, [this, base](std::string_view piece) {
    return s2c_.feed(piece, [this, base](const Frame& f) { on_server_frame(f, base); });
  });
  if (!ok && s2c_.failed()) {
    protocol_error(false, s2c_);
    return EVM_NET_STOP_ITERATION;
  }
  const uint64_t stream_end = s2c_.offset();
  // While a channel's frames are being swallowed, a frame split at the end
  // of the buffer is kept back until it is whole, so that it can be judged.
  size_t tail = 0;
  if (!end_stream && closing_channels_ > 0 && s2c_.in_partial_frame() && s2c_.frame_start() >= base) {
    tail = static_cast<size_t>(stream_end - s2c_.frame_start());
  }
  if (!wr_edits_.empty() || tail != 0) {
    std::string out;
    out.reserve(total + 64);
    size_t cur = 0;
    for (const Edit& e : wr_edits_) {
      const uint64_t end = std::min(e.end, stream_end);
      if (e.end > stream_end) wr_drop_until_ = std::max(wr_drop_until_, e.end);
      if (e.begin < base) continue;
      const size_t pb = static_cast<size_t>(e.begin - base);
      if (pb < cur || pb > total) continue;
      chunks_.copy_range(cur, pb, &out);
      out += e.insert;
      cur = std::min(total, pb + static_cast<size_t>(end - e.begin));
    }
    chunks_.copy_range(cur, total, &out);
    if (tail != 0) {
      custody_.assign(out, out.size() - tail, tail);
      out.resize(out.size() - tail);
    }
    conn_.drain_write(total);
    conn_.append_write(out);
  }
  if (!pending_client_.empty() && s2c_.offset() > 0 && (s2c_.at_frame_boundary() || tail != 0)) {
    conn_.append_write(pending_client_);  // after the broker's bytes, at a frame boundary
    pending_client_.clear();
  }
  deltas_.flush(conn_.raw());
  return EVM_NET_CONTINUE;
}

void AmqpFilter::on_server_frame(const Frame& f, uint64_t base) {
  const AmqpMetrics& m = config_.m();
  deltas_.add(m.s2c_frames);
  deltas_.add(m.s2c_bytes, f.frame_len());
  if (f.type == FrameType::kProtocolHeader) return;
  if (f.channel == 0) {
    if (f.type == FrameType::kMethod && f.method->id() == kConnectionTune) {
      const Method& t = *f.method;
      const uint32_t cap = config_.cfg().max_frame;
      tune_frame_max_ = (t.frame_max == 0 || t.frame_max > cap) ? cap : t.frame_max;
      if (tune_frame_max_ != t.frame_max) {
        if (f.start >= base) {
          // Announce our cap so that the client negotiates within it.
          std::string p;
          put_u16(&p, kConnection);
          put_u16(&p, 30);
          put_u16(&p, t.channel_max);
          put_u32(&p, tune_frame_max_);
          put_u16(&p, t.heartbeat);
          wr_edits_.push_back({f.start, f.start + f.frame_len(), encode_frame(FrameType::kMethod, 0, p)});
        } else {
          log(EVM_LOG_DEBUG, denial_prefix() + "Tune split across writes; frame_max not rewritten");
        }
      }
    }
    return;
  }
  Channel& ch = channel(f.channel);
  if (ch.upstream_closes > 0) {
    if (f.start >= base) wr_edits_.push_back({f.start, f.start + f.frame_len(), {}});
    if (f.type == FrameType::kMethod) {
      if (f.method->id() == kChannelCloseOk) {
        if (--ch.upstream_closes == 0) {
          --closing_channels_;
          if (ch.open_gated) {
            ch.open_gated = false;
            if (--gated_opens_ == 0 && holding_) {
              // Release from the worker's event loop, not from inside this write.
              if (scheduler_ == nullptr) {
                scheduler_ = envoy_dynamic_module_callback_network_filter_scheduler_new(conn_.raw());
              }
              if (scheduler_ != nullptr) envoy_dynamic_module_callback_network_filter_scheduler_commit(scheduler_, kEventRelease);
            }
          }
        }
      } else if (f.method->id() == kChannelClose) {
        pending_upstream_ += encode_channel_close_ok(f.channel);  // its Close crossed ours
      }
    }
    return;
  }
  switch (f.type) {
    case FrameType::kMethod: {
      const Method& mt = *f.method;
      switch (mt.id()) {
        case kBasicDeliver: {
          if (mt.consumer_tag != last_tag_) {
            auto it = consumers_.find(std::string(mt.consumer_tag));
            last_tag_.assign(mt.consumer_tag.data(), mt.consumer_tag.size());
            last_tag_group_ =
                it != consumers_.end() ? it->second : static_cast<uint32_t>(config_.cfg().queues.other());
          }
          ch.delivery_group = last_tag_group_;
          ch.delivering = true;
          deltas_.add(m.queues[ch.delivery_group].delivered_msgs);
          break;
        }
        case kBasicGetOk:
          ch.delivery_group = ch.queue_group;
          ch.delivering = true;
          deltas_.add(m.queues[ch.delivery_group].delivered_msgs);
          break;
        case kBasicReturn: {
          split_words(mt.routing_key, &words_);
          deltas_.add(m.exchanges[config_.cfg().exchanges.classify(mt.exchange, words_)].returned_msgs);
          ch.delivering = false;
          break;
        }
        case kBasicAck:
          if (ch.confirm) deltas_.add(m.exchanges[ch.pub_group].confirm_acks);
          break;
        case kBasicNack:
          if (ch.confirm) deltas_.add(m.exchanges[ch.pub_group].confirm_nacks);
          break;
        case kBasicConsumeOk:
          if (!ch.pending_consumes.empty()) {
            if (consumers_.size() < kMaxConsumers) consumers_[std::string(mt.consumer_tag)] = ch.pending_consumes.front();
            ch.pending_consumes.erase(ch.pending_consumes.begin());
            last_tag_.clear();
          }
          break;
        case kBasicCancel:
        case kBasicCancelOk:
          consumers_.erase(std::string(mt.consumer_tag));
          last_tag_.clear();
          break;
        case kChannelClose:
          if (mt.reply_code != 200) deltas_.add(m.server_channel_errors);
          if (ch.pub == Channel::Pub::kAwaitHeader && pol().max_body_size) --awaiting_header_;
          ch.pub = Channel::Pub::kIdle;
          break;
        case kChannelCloseOk:
          // The client's own close is complete: forget the channel (bounds channels_).
          if (!ch.client_denied && !ch.open_gated && ch.pub != Channel::Pub::kAwaitHeader) {
            channels_.erase(f.channel);
            return;
          }
          break;
        default:
          break;
      }
      break;
    }
    case FrameType::kHeader:
      if (ch.delivering) {
        deltas_.add(m.queues[ch.delivery_group].delivered_bytes, f.header->body_size);
        ch.delivering = false;
      }
      break;
    default:
      break;
  }
}

}  // namespace evmesh::amqp
