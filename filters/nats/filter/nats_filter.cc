#include "filters/nats/filter/nats_filter.h"

#include <nlohmann/json.hpp>

namespace evmesh::nats {

// ---------------------------------------------------------------- config

std::unique_ptr<FilterConfig> make_nats_config(evm_config_envoy_ptr config_envoy, std::string_view json,
                                               std::string* error) {
  std::optional<NatsConfig> cfg = parse_nats_config(json, error);
  if (!cfg) return nullptr;
  MetricsBuilder b(config_envoy, "nats." + cfg->stat_prefix + ".");
  NatsMetrics m;
  m.connections_total = b.counter("connections_total");
  m.connections_active = b.gauge("connections_active");
  m.c2s_frames = b.counter("c2s.frames");
  m.c2s_bytes = b.counter("c2s.bytes");
  m.s2c_frames = b.counter("s2c.frames");
  m.s2c_bytes = b.counter("s2c.bytes");
  m.c2s_protocol_errors = b.counter("c2s.protocol_errors");
  m.s2c_protocol_errors = b.counter("s2c.protocol_errors");
  m.payload_too_large = b.counter("payload_too_large");
  m.server_errors = b.counter("server_errors");
  for (size_t i = 0; i < cfg->groups.size(); ++i) {
    const std::string g = "subject." + cfg->groups.name(i) + ".";
    m.groups.push_back({b.counter(g + "published_msgs"), b.counter(g + "published_bytes"),
                        b.counter(g + "delivered_msgs"), b.counter(g + "delivered_bytes"),
                        b.counter(g + "publish_denied"), b.counter(g + "subscribe_denied")});
  }
  if (!b.ok()) {
    *error = b.error();
    return nullptr;
  }
  return std::make_unique<NatsFilterConfig>(std::move(*cfg), b.take(), std::move(m));
}

std::unique_ptr<NetworkFilter> NatsFilterConfig::create(evm_filter_envoy_ptr f) const {
  return std::make_unique<NatsFilter>(*this, f);
}

// ---------------------------------------------------------------- filter

namespace {
constexpr uint64_t kServerPayloadBound = 64ull << 20;
}

NatsFilter::NatsFilter(const NatsFilterConfig& config, evm_filter_envoy_ptr f)
    : config_(config),
      conn_(f),
      deltas_(config.table()),
      c2s_(Dir::kClientToServer, Limits{config.cfg().max_control_line, config.cfg().max_payload}),
      s2c_(Dir::kServerToClient, Limits{config.cfg().max_control_line > 65536 ? config.cfg().max_control_line : 65536,
                                         kServerPayloadBound}),
      max_payload_(config.cfg().max_payload) {
  deltas_.add(config_.m().connections_total);
}

NatsFilter::~NatsFilter() = default;

void NatsFilter::on_event(int event) {
  if (event == EVM_EVENT_REMOTE_CLOSE || event == EVM_EVENT_LOCAL_CLOSE) {
    if (!gauge_closed_) {
      gauge_closed_ = true;
      gauge_add(conn_.raw(), config_.table(), config_.m().connections_active, -1);
    }
    deltas_.flush(conn_.raw());
  }
}

int NatsFilter::on_new_connection() {
  gauge_add(conn_.raw(), config_.table(), config_.m().connections_active, 1);
  deltas_.flush(conn_.raw());
  return EVM_NET_CONTINUE;
}

int NatsFilter::on_read(size_t /*length*/, bool end_stream) {
  if (closed_) return EVM_NET_STOP_ITERATION;
  conn_.read_chunks(chunks_.views());
  const size_t total = chunks_.total();
  const uint64_t fed_start = c2s_.offset();
  const uint64_t base = fed_start - held_;  // stream offset of buffer position 0
  drops_.clear();
  if (drop_until_ > fed_start) drops_.push_back({fed_start, drop_until_});
  payload_violation_ = false;

  const bool ok = chunks_.for_each_from(held_, [this](std::string_view piece) {
    return c2s_.feed(piece, [this](const Frame& f) { on_client_frame(f); }) && !payload_violation_;
  });
  if (!ok && c2s_.failed()) {
    protocol_error(true, c2s_);
    return EVM_NET_STOP_ITERATION;
  }
  if (payload_violation_) {
    deltas_.add(config_.m().payload_too_large);
    log(EVM_LOG_INFO, "evmesh nats[" + config_.cfg().stat_prefix + "] connection " + std::to_string(conn_.id()) +
                          ": payload above max_payload " + std::to_string(max_payload_) + "; closing");
    pending_ += "-ERR 'Maximum Payload Violation'\r\n";
    flush_pending_to_client();
    closed_ = true;
    conn_.close(EVM_CLOSE_FLUSH_WRITE);
    deltas_.flush(conn_.raw());
    return EVM_NET_STOP_ITERATION;
  }

  size_t kept_total = total;
  if (!drops_.empty()) {
    const uint64_t end = base + total;
    std::vector<codec::Range> pos;
    for (const auto& d : drops_) {
      const uint64_t s = d.begin > base ? d.begin : base;
      const uint64_t e = d.end < end ? d.end : end;
      if (s < e) pos.push_back({static_cast<size_t>(s - base), static_cast<size_t>(e - base)});
      if (d.end > end && d.end > drop_until_) drop_until_ = d.end;
    }
    if (!pos.empty()) {
      if (pos.size() == 1 && pos[0].begin == 0) {
        conn_.drain_read(pos[0].end);  // the tail of an earlier dropped frame: cheap front drain
        kept_total = total - pos[0].end;
      } else {
        const std::string kept = codec::collect_kept(chunks_, total, pos);
        conn_.drain_read(total);
        conn_.append_read(kept);
        kept_total = kept.size();
      }
    }
  }

  int status = EVM_NET_CONTINUE;
  if (c2s_.in_control_line() && !end_stream) {
    held_ = kept_total;  // everything left was parsed; wait for the line end
    status = EVM_NET_STOP_ITERATION;
  } else {
    held_ = 0;
  }
  flush_pending_to_client();
  deltas_.flush(conn_.raw());
  return status;
}

void NatsFilter::on_client_frame(const Frame& f) {
  if (payload_violation_) return;
  const NatsMetrics& m = config_.m();
  deltas_.add(m.c2s_frames);
  deltas_.add(m.c2s_bytes, f.frame_len());
  switch (f.op) {
    case Op::kPub:
    case Op::kHpub: {
      if (f.payload_len > max_payload_) {
        payload_violation_ = true;
        return;
      }
      if (f.subject != last_subject_) {
        last_subject_.assign(f.subject.data(), f.subject.size());
        last_allowed_ = config_.cfg().acl.allow_publish(f.subject);
        last_group_ = config_.cfg().groups.classify(f.subject);
      }
      const NatsMetrics::Group& g = m.groups[last_group_];
      if (!last_allowed_) {
        deltas_.add(g.publish_denied);
        deny(f, "Permissions Violation for Publish to \"" + std::string(f.subject) + "\"");
      } else {
        deltas_.add(g.published_msgs);
        deltas_.add(g.published_bytes, f.payload_len);
      }
      break;
    }
    case Op::kSub:
      if (!config_.cfg().acl.allow_subscribe(f.subject)) {
        deltas_.add(m.groups[config_.cfg().groups.classify(f.subject)].subscribe_denied);
        std::string text = "Permissions Violation for Subscription to \"" + std::string(f.subject) + "\"";
        if (!f.queue.empty()) text += " using queue \"" + std::string(f.queue) + "\"";
        deny(f, std::move(text));
      }
      break;
    default:
      break;
  }
}

void NatsFilter::deny(const Frame& f, std::string reply_text) {
  drops_.push_back({f.start, f.start + f.frame_len()});
  pending_ += "-ERR '";
  pending_ += reply_text;
  pending_ += "'\r\n";
  if (log_enabled(EVM_LOG_DEBUG)) {
    log(EVM_LOG_DEBUG, "evmesh nats[" + config_.cfg().stat_prefix + "] connection " + std::to_string(conn_.id()) +
                           ": denied " + op_name(f.op) + " " + std::string(f.subject));
  }
}

void NatsFilter::flush_pending_to_client() {
  if (pending_.empty() || !s2c_.at_frame_boundary()) return;
  in_local_write_ = true;
  conn_.write_to_client(pending_);
  in_local_write_ = false;
  pending_.clear();
}

void NatsFilter::protocol_error(bool c2s, const Parser& p) {
  const NatsMetrics& m = config_.m();
  deltas_.add(c2s ? m.c2s_protocol_errors : m.s2c_protocol_errors);
  log(EVM_LOG_WARN, "evmesh nats[" + config_.cfg().stat_prefix + "] connection " + std::to_string(conn_.id()) +
                        ": malformed " + (c2s ? "client-to-server" : "server-to-client") + " frame at " +
                        p.error() + "; closing the connection");
  closed_ = true;
  if (c2s) {
    pending_ += "-ERR '";
    pending_ += p.error_reply();
    pending_ += "'\r\n";
    flush_pending_to_client();
    conn_.close(EVM_CLOSE_FLUSH_WRITE);
  } else {
    conn_.close(EVM_CLOSE_NO_FLUSH);
  }
  deltas_.flush(conn_.raw());
}

int NatsFilter::on_write(size_t /*length*/, bool /*end_stream*/) {
  if (in_local_write_) return EVM_NET_CONTINUE;  // our own -ERR, already accounted for
  if (closed_) return EVM_NET_STOP_ITERATION;
  conn_.write_chunks(chunks_.views());
  const size_t total = chunks_.total();
  const uint64_t base = s2c_.offset();
  info_rewrite_ = false;
  const bool ok = chunks_.for_each_from(0, [this, base](std::string_view piece) {
    return s2c_.feed(piece, [this, base](const Frame& f) { on_server_frame(f, base); });
  });
  if (!ok && s2c_.failed()) {
    protocol_error(false, s2c_);
    return EVM_NET_STOP_ITERATION;
  }
  if (info_rewrite_) {
    std::string out;
    out.reserve(total + 32);
    chunks_.copy_range(0, info_pos_, &out);
    out += info_line_;
    chunks_.copy_range(info_pos_ + info_len_, total, &out);
    conn_.drain_write(total);
    conn_.append_write(out);
  }
  if (!pending_.empty() && s2c_.at_frame_boundary()) {
    conn_.append_write(pending_);  // after the server's bytes, at a frame boundary
    pending_.clear();
  }
  deltas_.flush(conn_.raw());
  return EVM_NET_CONTINUE;
}

void NatsFilter::on_server_frame(const Frame& f, uint64_t base) {
  const NatsMetrics& m = config_.m();
  deltas_.add(m.s2c_frames);
  deltas_.add(m.s2c_bytes, f.frame_len());
  switch (f.op) {
    case Op::kMsg:
    case Op::kHmsg: {
      const NatsMetrics::Group& g = m.groups[config_.cfg().groups.classify(f.subject)];
      deltas_.add(g.delivered_msgs);
      deltas_.add(g.delivered_bytes, f.payload_len);
      break;
    }
    case Op::kErr:
      deltas_.add(m.server_errors);
      break;
    case Op::kInfo:
      on_info(f, base);
      break;
    default:
      break;
  }
}

void NatsFilter::on_info(const Frame& f, uint64_t base) {
  auto info = nlohmann::ordered_json::parse(f.arg.begin(), f.arg.end(), nullptr, /*allow_exceptions=*/false);
  if (info.is_discarded() || !info.is_object()) {
    log(EVM_LOG_WARN, "evmesh nats[" + config_.cfg().stat_prefix + "]: server INFO is not a JSON object");
    return;
  }
  const uint64_t configured = config_.cfg().max_payload;
  uint64_t server = 0;
  auto it = info.find("max_payload");
  if (it != info.end() && it->is_number_unsigned()) server = it->get<uint64_t>();
  if (it != info.end() && it->is_number_integer() && it->get<int64_t>() > 0) server = it->get<int64_t>();
  max_payload_ = (server != 0 && server < configured) ? server : configured;
  auto tls = info.find("tls_required");
  if (tls != info.end() && tls->is_boolean() && tls->get<bool>()) {
    log(EVM_LOG_WARN, "evmesh nats[" + config_.cfg().stat_prefix +
                          "]: the server requires TLS; the sidecar cannot inspect TLS-wrapped NATS and will close "
                          "the connection at the first encrypted frame");
  }
  // Cluster peers announced in connect_urls would let clients reconnect
  // around the sidecar (and its ACL): they are removed.
  bool changed = info.erase("connect_urls") > 0;
  changed = info.erase("ws_connect_urls") > 0 || changed;
  if (server == 0 || server > configured) {
    info["max_payload"] = configured;  // announce the effective limit
    changed = true;
  }
  if (!changed) return;
  if (f.start < base) {
    // The line began in an earlier write and is already on its way: the
    // limit is still enforced, only the announcement could not be changed.
    log(EVM_LOG_WARN, "evmesh nats[" + config_.cfg().stat_prefix +
                          "]: server INFO split across writes; forwarded without rewriting");
    return;
  }
  info_line_ = "INFO " + info.dump() + "\r\n";
  info_pos_ = static_cast<size_t>(f.start - base);
  info_len_ = f.line_len;
  info_rewrite_ = true;
}

}  // namespace evmesh::nats
